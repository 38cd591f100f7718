// faiss_check.cpp: benzer_index_check(index), an index verified against its
// table.
//
// The crash, replica and concurrency tests need a verdict stronger than "a
// few queries look right": every live row of the table indexed exactly
// once, no entry for a row the table no longer has, and the index's own
// structures consistent with each other. This reads everything once:
//
//   - the metapage, the label map and the tombstone bitmap;
//   - with lists in pages, every list page (checking each page's header,
//     generation and sequence, and each list's row count against its
//     directory entry), and that every label appears in exactly one list
//     exactly once;
//   - the rows inserted into list tails, and the pending rows;
//   - the table, through the same scan CREATE INDEX uses (so partial-index
//     predicates, expressions and HOT chains count exactly as a build would
//     count them). An entry whose row is gone is a problem only if the
//     row's line pointer is free (it could be reused by another row); a row
//     that died since the last VACUUM is counted in a NOTICE.
//
// It returns one line per problem found (at most 20 of each kind, then a
// count): no rows means the index agrees with its table. A damaged page
// raises ERROR (XX002) naming it. ShareLock on the table holds off writes,
// VACUUM and merges while it runs, as amcheck's heapallindexed does.
#include "pg/faiss.h"

#include "pg/faiss_lists.h"
#include "pg/faiss_pages.h"
#include "pg/faiss_tails.h"
#include "pg/postgres_headers.h"

extern "C" {
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
}

#include <algorithm>

namespace {

constexpr int kShownPerKind = 20;

// Where problems go: the function's result rows.
struct Report {
    Tuplestorestate* store;
    TupleDesc desc;
    int64 total;
};

void report(Report* out, const char* text) {
    Datum value = CStringGetTextDatum(text);
    bool null = false;
    tuplestore_putvalues(out->store, out->desc, &value, &null);
    out->total++;
}

// Reports one problem of a kind, or just counts it past kShownPerKind.
struct Kind {
    const char* what;
    int64 count = 0;
    explicit Kind(const char* w) : what(w) {}
};

void problem(Report* out, Kind* kind, const char* detail) {
    kind->count++;
    if (kind->count > kShownPerKind) return;
    report(out, psprintf("%s: %s", kind->what, detail));
}

void summarize(Report* out, const Kind& kind) {
    if (kind.count > kShownPerKind)
        report(out, psprintf("%s: %lld in all", kind.what, static_cast<long long>(kind.count)));
}

int compare_tids(const void* a, const void* b) {
    return ItemPointerCompare(const_cast<ItemPointer>(static_cast<const ItemPointerData*>(a)),
                              const_cast<ItemPointer>(static_cast<const ItemPointerData*>(b)));
}

// The table's rows an index build would index, by TID.
struct HeapRows {
    ItemPointerData* tids;
    bool* alive;
    int64 count;
    int64 capacity;
};

// Whether tid's line pointer is in use: an entry for a row that died since
// the last VACUUM still points at one (VACUUM tombstones the entry before it
// frees the line pointer). An unused or absent line pointer may be reused
// by another row: an entry for it would return the wrong row.
bool line_pointer_used(Relation heap, ItemPointer tid) {
    BlockNumber block = ItemPointerGetBlockNumber(tid);
    if (block >= RelationGetNumberOfBlocks(heap)) return false;
    Buffer buffer = ReadBuffer(heap, block);
    LockBuffer(buffer, BUFFER_LOCK_SHARE);
    Page page = BufferGetPage(buffer);
    OffsetNumber offset = ItemPointerGetOffsetNumber(tid);
    bool used = !PageIsNew(page) && offset >= FirstOffsetNumber &&
                offset <= PageGetMaxOffsetNumber(page) && ItemIdIsUsed(PageGetItemId(page, offset));
    UnlockReleaseBuffer(buffer);
    return used;
}

void collect_heap_row(Relation, ItemPointer tid, Datum*, bool* isnull, bool alive, void* arg) {
    auto* rows = static_cast<HeapRows*>(arg);
    if (isnull[0]) return;  // NULL vectors are not indexed
    if (rows->count == rows->capacity) {
        rows->capacity = Max(rows->capacity * 2, static_cast<int64>(1024));
        rows->tids = static_cast<ItemPointerData*>(
            repalloc_huge(rows->tids, sizeof(ItemPointerData) * static_cast<Size>(rows->capacity)));
        rows->alive = static_cast<bool*>(
            repalloc_huge(rows->alive, sizeof(bool) * static_cast<Size>(rows->capacity)));
    }
    rows->tids[rows->count] = *tid;
    rows->alive[rows->count] = alive;
    rows->count++;
}

// Counts the labels of the lists (faiss_walk_list's visitor).
struct LabelTally {
    uint8* seen;  // per label: lists holding it (saturating is not needed: >1 is enough)
    int64 rows;
    int64 outside;
    int64 twice;
};

bool tally_labels(void* arg, const benzer::Label* labels, const uint8*, int64 n) {
    auto* tally = static_cast<LabelTally*>(arg);
    for (int64 i = 0; i < n; i++) {
        benzer::Label label = labels[i];
        if (label < 0 || label >= tally->rows) {
            tally->outside++;
        } else if (tally->seen[label] != 0) {
            tally->twice++;
        } else {
            tally->seen[label] = 1;
        }
    }
    return true;
}

// Checks that every label 0..meta.main_rows-1 is in exactly one list,
// once; walks every list page.
void check_lists(Relation index, const FaissMeta& meta, Report* out) {
    FaissListRef* directory = nullptr;
    if (!faiss_read_list_directory(index, meta, &directory))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\": the list directory is not of generation %u",
                               RelationGetRelationName(index), meta.generation)));
    int64 rows = meta.main_rows;
    auto* seen = static_cast<uint8*>(
        MemoryContextAllocHuge(CurrentMemoryContext, static_cast<Size>(Max(rows, 1))));
    memset(seen, 0, static_cast<Size>(Max(rows, 1)));
    Kind outside("label outside the index");
    Kind twice("label in the lists more than once");
    Kind missing("label in no list");
    LabelTally tally = {seen, rows, 0, 0};
    for (uint32 list = 0; list < meta.list_count; list++) {
        bool same = faiss_walk_list(index, meta, directory[list], tally_labels, &tally);
        if (!same)
            ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                            errmsg("faiss index \"%s\": IVF list %u has a page of another "
                                   "generation",
                                   RelationGetRelationName(index), list)));
        CHECK_FOR_INTERRUPTS();
    }
    outside.count = tally.outside;
    twice.count = tally.twice;
    for (int64 label = 0; label < rows; label++)
        if (seen[label] == 0) problem(out, &missing, psprintf("label %lld", (long long)label));
    if (outside.count > 0)
        report(out, psprintf("%s: %lld entries", outside.what, (long long)outside.count));
    if (twice.count > 0)
        report(out, psprintf("%s: %lld entries", twice.what, (long long)twice.count));
    summarize(out, missing);
    pfree(seen);
    pfree(directory);
}

}  // namespace

// benzer_index_check(index): one row per problem; none when the index
// agrees with its table.
BENZER_FUNCTION(benzer_index_check) {
    Oid relid = PG_GETARG_OID(0);
    // A set of text (InitMaterializedSRF wants a row type).
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    if (rsinfo == nullptr || !IsA(rsinfo, ReturnSetInfo) ||
        !(rsinfo->allowedModes & SFRM_Materialize))
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("benzer_index_check must be called where a set is accepted")));
    MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
    TupleDesc desc = CreateTemplateTupleDesc(1);
    TupleDescInitEntry(desc, 1, "problem", TEXTOID, -1, 0);
    Tuplestorestate* store = tuplestore_begin_heap(true, false, work_mem);
    rsinfo->returnMode = SFRM_Materialize;
    rsinfo->setResult = store;
    rsinfo->setDesc = desc;
    MemoryContextSwitchTo(old);
    Report out = {store, desc, 0};

    // The table's owner only: the check reads every row.
    Oid heap_oid = faiss_index_table(relid);
    faiss_require_owner(heap_oid, relid);
    // A standby cannot take ShareLock, and nothing but replay writes there.
    LOCKMODE heap_lock = RecoveryInProgress() ? AccessShareLock : ShareLock;
    Relation heap = table_open(heap_oid, heap_lock);
    Relation index = index_open(relid, AccessShareLock);
    if (IndexGetRelation(relid, false) != heap_oid)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("index \"%s\" changed while it was being opened",
                               RelationGetRelationName(index))));
    FaissMeta meta;
    faiss_read_meta(index, &meta);

    // The index's rows: live labels (not tombstoned) and pending rows.
    ItemPointerData* labels = nullptr;
    uint8* tombstones = nullptr;
    int64 nlabels = 0;
    if (meta.labels.head != InvalidBlockNumber) {
        char* data = nullptr;
        if (!faiss_read_chain(index, meta.labels, kFaissPageLabels, meta.generation, &data))
            ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                            errmsg("faiss index \"%s\": the label map is not of generation %u",
                                   RelationGetRelationName(index), meta.generation)));
        labels = reinterpret_cast<ItemPointerData*>(data);
        nlabels = static_cast<int64>(meta.labels.bytes / sizeof(ItemPointerData));
    }
    if (nlabels != meta.main_rows)
        report(&out, psprintf("the label map holds %lld rows, the metapage says %lld",
                              (long long)nlabels, (long long)meta.main_rows));
    if (meta.tombstones.head != InvalidBlockNumber && nlabels > 0) {
        char* data = nullptr;
        if (!faiss_read_chain(index, meta.tombstones, kFaissPageTombstones, meta.generation,
                              &data) ||
            meta.tombstones.bytes < static_cast<uint64>((nlabels + 7) / 8))
            ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                            errmsg("faiss index \"%s\": the tombstone bitmap is damaged",
                                   RelationGetRelationName(index))));
        tombstones = reinterpret_cast<uint8*>(data);
    }
    int64 dead = 0;
    for (int64 label = 0; tombstones != nullptr && label < nlabels; label++)
        if (tombstones[label >> 3] & (1 << (label & 7))) dead++;
    if (dead != meta.dead_rows)
        report(&out, psprintf("%lld rows are tombstoned, the metapage counts %lld", (long long)dead,
                              (long long)meta.dead_rows));
    if (faiss_lists_paged(meta) && nlabels == meta.main_rows) check_lists(index, meta, &out);

    FaissPendingRows pending;
    if (!faiss_read_pending(index, meta, &pending))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\": the pending rows are not of generation %u",
                               RelationGetRelationName(index), meta.generation)));

    // Rows inserted into list tails.
    FaissTailRows tails;
    faiss_tail_rows_init(&tails, meta.list_code_size);
    if (faiss_has_tails(meta) && !faiss_read_tails(index, meta, &tails))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\": the list tails are not of generation %u",
                               RelationGetRelationName(index), meta.generation)));
    if (tails.count > meta.tail_rows)
        report(&out, psprintf("the list tails hold %lld rows, the metapage counts %lld",
                              (long long)tails.count, (long long)meta.tail_rows));

    int64 nindexed = nlabels - dead + pending.count + tails.count;
    auto* indexed = static_cast<ItemPointerData*>(MemoryContextAllocHuge(
        CurrentMemoryContext, sizeof(ItemPointerData) * static_cast<Size>(Max(nindexed, 1))));
    int64 n = 0;
    for (int64 label = 0; label < nlabels; label++)
        if (tombstones == nullptr || !(tombstones[label >> 3] & (1 << (label & 7))))
            indexed[n++] = labels[label];
    for (int64 i = 0; i < pending.count; i++) indexed[n++] = pending.tids[i];
    for (int64 i = 0; i < tails.count; i++) indexed[n++] = tails.tids[i];
    qsort(indexed, static_cast<size_t>(n), sizeof(ItemPointerData), compare_tids);

    // The table's rows, as a build would see them.
    HeapRows rows = {};
    rows.capacity = 1024;
    rows.tids = static_cast<ItemPointerData*>(
        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ItemPointerData) * 1024));
    rows.alive = static_cast<bool*>(MemoryContextAllocHuge(CurrentMemoryContext, 1024));
    IndexInfo* info = BuildIndexInfo(index);
    table_index_build_scan(heap, index, info, false, false, collect_heap_row, &rows, nullptr);
    // The build scan visits rows in TID order; sort anyway (cheap).
    int64* order = static_cast<int64*>(MemoryContextAllocHuge(
        CurrentMemoryContext, sizeof(int64) * static_cast<Size>(Max(rows.count, 1))));
    for (int64 i = 0; i < rows.count; i++) order[i] = i;
    std::sort(order, order + rows.count, [&rows](int64 a, int64 b) {
        return ItemPointerCompare(&rows.tids[a], &rows.tids[b]) < 0;
    });

    // Merge the two sorted lists.
    Kind unindexed("live row not in the index");
    Kind repeated("row in the index more than once");
    Kind orphan("index entry for a row the table does not have");
    int64 awaiting_vacuum = 0;
    int64 i = 0, j = 0;
    while (i < n || j < rows.count) {
        ItemPointer heap_tid = j < rows.count ? &rows.tids[order[j]] : nullptr;
        int cmp = i >= n ? 1 : heap_tid == nullptr ? -1 : ItemPointerCompare(&indexed[i], heap_tid);
        if (cmp < 0) {
            if (line_pointer_used(heap, &indexed[i]))
                awaiting_vacuum++;  // a dead row: VACUUM tombstones its entry
            else
                problem(&out, &orphan,
                        psprintf("(%u,%u)", ItemPointerGetBlockNumber(&indexed[i]),
                                 ItemPointerGetOffsetNumber(&indexed[i])));
            i++;
        } else if (cmp > 0) {
            if (rows.alive[order[j]])
                problem(&out, &unindexed,
                        psprintf("(%u,%u)", ItemPointerGetBlockNumber(heap_tid),
                                 ItemPointerGetOffsetNumber(heap_tid)));
            j++;
        } else {
            int64 copies = 0;
            while (i < n && ItemPointerCompare(&indexed[i], heap_tid) == 0) {
                copies++;
                i++;
            }
            if (copies > 1)
                problem(&out, &repeated,
                        psprintf("(%u,%u) %lld times", ItemPointerGetBlockNumber(heap_tid),
                                 ItemPointerGetOffsetNumber(heap_tid), (long long)copies));
            j++;
        }
        if (((i + j) & 65535) == 0) CHECK_FOR_INTERRUPTS();
    }
    summarize(&out, unindexed);
    summarize(&out, repeated);
    summarize(&out, orphan);
    if (awaiting_vacuum > 0)
        ereport(NOTICE, (errmsg("%lld index entries are for dead rows that VACUUM has not yet "
                                "processed",
                                static_cast<long long>(awaiting_vacuum))));

    index_close(index, AccessShareLock);
    table_close(heap, heap_lock);
    return static_cast<Datum>(0);
}
