// faiss_vacuum.cpp: VACUUM of a faiss index.
//
// Bulk delete marks dead labels in the tombstone bitmap (the Faiss
// structure itself is not touched: several Faiss structures cannot remove
// rows, and one aborts the process when asked) and deletes dead rows of
// list tails (faiss_tails.h) and dead pending rows outright. Cleanup merges
// pending rows into the structure once there are enough of them, and
// compacts when a fifth of the rows are dead, except an index whose lists
// live in pages, which only REINDEX or an explicit merge rewrites. It never
// waits for the merge's lock, so VACUUM never blocks on inserts.
#include "pg/faiss.h"

#include "pg/faiss_lists.h"
#include "pg/faiss_pages.h"
#include "pg/faiss_tails.h"

extern "C" {
#include "storage/indexfsm.h"
#include "utils/builtins.h"
}

extern "C" {
#include "access/parallel.h"
#include "access/xact.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
}

// Merges for VACUUM (faiss_merge without waiting), in a subtransaction:
// a merge that fails must not fail VACUUM, or VACUUM (and autovacuum, in a
// loop) would never finish the table and relfrozenxid would never advance.
// The failure becomes one WARNING with a HINT; the pending rows stay where
// they are, searched exactly, and a cancel still cancels. In a parallel
// VACUUM no subtransaction can start, so the merge waits for the next one.
static void merge_for_vacuum(Relation index, bool compact) {
    if (IsInParallelMode()) {
        ereport(DEBUG1, (errmsg("faiss index \"%s\": merge left to the next VACUUM (parallel "
                                "mode)",
                                RelationGetRelationName(index))));
        return;
    }
    MemoryContext context = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    BeginInternalSubTransaction(nullptr);
    PG_TRY();
    {
        if (!faiss_merge(index, compact, false))
            ereport(DEBUG1, (errmsg("faiss index \"%s\": merge skipped, inserts in progress",
                                    RelationGetRelationName(index))));
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(context);
        CurrentResourceOwner = owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(context);
        ErrorData* error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(context);
        CurrentResourceOwner = owner;
        if (error->sqlerrcode == ERRCODE_QUERY_CANCELED ||
            error->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
            ReThrowError(error);
        ereport(WARNING, (errcode(error->sqlerrcode),
                          errmsg("faiss index \"%s\": pending rows were not merged: %s",
                                 RelationGetRelationName(index), error->message),
                          errdetail("VACUUM went on; the pending rows are still searched exactly."),
                          errhint("If this repeats, fix the index's options (ALTER INDEX ... SET) "
                                  "or rebuild it: REINDEX INDEX %s.",
                                  quote_identifier(RelationGetRelationName(index)))));
        FreeErrorData(error);
    }
    PG_END_TRY();
}

IndexBulkDeleteResult* faiss_bulk_delete(IndexVacuumInfo* info, IndexBulkDeleteResult* stats,
                                         IndexBulkDeleteCallback callback, void* callback_state) {
    Relation index = info->index;
    if (stats == nullptr)
        stats = static_cast<IndexBulkDeleteResult*>(palloc0(sizeof(IndexBulkDeleteResult)));
    FaissMeta meta;
    faiss_read_meta(index, &meta);

    int64 live_main = 0;
    if (meta.generation > 0 && meta.main_rows > 0) {
        char* label_bytes = nullptr;
        char* tomb_bytes = nullptr;
        // No merge can run meanwhile: it needs a lock VACUUM conflicts with.
        if (!faiss_read_chain(index, meta.labels, kFaissPageLabels, meta.generation,
                              &label_bytes) ||
            !faiss_read_chain(index, meta.tombstones, kFaissPageTombstones, meta.generation,
                              &tomb_bytes))
            ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                            errmsg("faiss index \"%s\" changed during VACUUM",
                                   RelationGetRelationName(index))));
        auto* labels = reinterpret_cast<ItemPointerData*>(label_bytes);
        auto* tombstones = reinterpret_cast<uint8*>(tomb_bytes);
        int64* dead = static_cast<int64*>(
            MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * meta.main_rows));
        int64 ndead = 0;
        for (int64 label = 0; label < meta.main_rows; label++) {
            if ((label & 1023) == 0) vacuum_delay_point();
            if (tombstones[label >> 3] & (1 << (label & 7))) continue;
            if (callback(&labels[label], callback_state))
                dead[ndead++] = label;
            else
                live_main++;
        }
        if (ndead > 0) {
            faiss_set_tombstones(index, meta, dead, ndead);
            faiss_add_dead_rows(index, ndead);
        }
        stats->tuples_removed += static_cast<double>(ndead);
        pfree(dead);
        pfree(label_bytes);
        pfree(tomb_bytes);
    }
    // Rows inserted into list tails are deleted in place.
    int64 tail_remaining = 0;
    int64 tail_deleted = faiss_vacuum_tails(index, meta, callback, callback_state, &tail_remaining);
    stats->tuples_removed += static_cast<double>(tail_deleted);
    live_main += tail_remaining;
    int64 remaining = 0;
    int64 deleted = faiss_vacuum_pending(index, meta, callback, callback_state, &remaining);
    // An untyped index whose only rows were rolled back forgets the
    // dimension they gave it.
    if (remaining == 0 && meta.main_rows == 0 && meta.dimensions != 0 && meta.factory[0] == '\0')
        faiss_reset_dimensions(index);
    stats->tuples_removed += static_cast<double>(deleted);
    stats->num_index_tuples = static_cast<double>(live_main + remaining);
    stats->num_pages = RelationGetNumberOfBlocks(index);
    return stats;
}

IndexBulkDeleteResult* faiss_vacuum_cleanup(IndexVacuumInfo* info, IndexBulkDeleteResult* stats) {
    Relation index = info->index;
    if (info->analyze_only) return stats;
    FaissMeta meta;
    faiss_read_meta(index, &meta);
    int64 pending = faiss_count_pending(index, meta);
    FaissOptions* options = faiss_get_options(index);
    int64 threshold = options->merge_threshold > 0
                          ? options->merge_threshold
                          : Max(static_cast<int64>(1000), meta.main_rows / 10);
    // A fifth of the rows dead: compact (a merge that drops them), except
    // an index whose lists live in pages. VACUUM never rewrites such an
    // index (a rewrite WAL-logs every page, and a replica replays it): its
    // dead rows stay masked by tombstones until REINDEX or
    // benzer_index_merge(index, true), and benzer_index_info says when.
    bool many_dead =
        meta.dead_rows > 0 && meta.dead_rows * 5 > meta.main_rows && !faiss_lists_paged(meta);
    if (pending > 0 && (pending >= threshold || meta.factory[0] == '\0' || many_dead)) {
        merge_for_vacuum(index, false);
        faiss_read_meta(index, &meta);
        pending = faiss_count_pending(index, meta);
    } else if (many_dead) {
        merge_for_vacuum(index, true);
        faiss_read_meta(index, &meta);
    }
    // Pages freed by this VACUUM (out-of-line vectors of deleted rows)
    // become findable for the next insert, as nbtree's cleanup does.
    IndexFreeSpaceMapVacuum(index);
    if (stats == nullptr) {
        stats = static_cast<IndexBulkDeleteResult*>(palloc0(sizeof(IndexBulkDeleteResult)));
        stats->num_index_tuples =
            static_cast<double>(meta.main_rows - meta.dead_rows + meta.tail_rows + pending);
    }
    stats->num_pages = RelationGetNumberOfBlocks(index);
    return stats;
}
