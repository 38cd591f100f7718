// faiss_tails.cpp: list tails, rows inserted into paged IVF lists (see
// faiss_tails.h).
//
// Locking: an appender locks the metapage, then the directory page, then
// the tail's last page (and a fresh page), all exclusively, and changes
// them in one GenericXLog record (at most four pages). Readers take one
// page at a time in share mode: the directory page to copy a list's first
// page, then each tail page in turn; VACUUM takes tail pages exclusively,
// one at a time, and the metapage alone afterwards. Tail pages are never
// unlinked before a merge frees them all, and a merge needs a lock that
// inserts and VACUUM conflict with; searches hold the lists lock
// (faiss_lock_lists_for_reading), so a merge frees no tail page a search
// may still read.
#include "pg/faiss_tails.h"

#include "core/engine.h"
#include "pg/faiss_lists.h"
#include "pg/guard.h"

extern "C" {
#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "storage/indexfsm.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

namespace {

// Directory entries a page holds.
Size tails_per_page() { return faiss_chain_page_capacity() / sizeof(FaissListTail); }

[[noreturn]] void raise_bad_tail_page(Relation index, BlockNumber block, const char* what) {
    ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                    errmsg("faiss index \"%s\": list tail page %u is damaged (%s)",
                           RelationGetRelationName(index), block, what),
                    errhint("Rebuild the index with REINDEX.")));
}

// Whether page is a page of kind of meta's generation.
bool page_is(Page page, FaissPageKind kind, const FaissMeta& meta) {
    FaissPageOpaque* opaque = faiss_page_opaque(page);
    return !PageIsNew(page) && opaque->kind == kind && opaque->generation == meta.generation;
}

// The directory page holding list's entry, pinned and locked in mode, and
// the entry's place on it. Returns InvalidBuffer on a race with a merge.
Buffer lock_directory_entry(Relation index, const FaissMeta& meta, const BlockNumber* directory,
                            int64 list, int mode, Size* slot) {
    if (list < 0 || list >= static_cast<int64>(meta.list_count))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\": IVF list %lld out of range",
                               RelationGetRelationName(index), static_cast<long long>(list))));
    Size per_page = tails_per_page();
    Buffer buffer = ReadBuffer(index, directory[static_cast<Size>(list) / per_page]);
    LockBuffer(buffer, mode);
    if (!page_is(BufferGetPage(buffer), kFaissPageListTails, meta)) {
        UnlockReleaseBuffer(buffer);
        return InvalidBuffer;
    }
    *slot = static_cast<Size>(list) % per_page;
    return buffer;
}

FaissListTail* directory_entry(Page page, Size slot) {
    return reinterpret_cast<FaissListTail*>(PageGetContents(page)) + slot;
}

// The first page of list's tail (InvalidBlockNumber: none), or false on a
// race with a merge.
bool tail_head(Relation index, const FaissMeta& meta, const BlockNumber* directory, int64 list,
               BlockNumber* head) {
    Size slot = 0;
    Buffer buffer = lock_directory_entry(index, meta, directory, list, BUFFER_LOCK_SHARE, &slot);
    if (!BufferIsValid(buffer)) return false;
    *head = directory_entry(BufferGetPage(buffer), slot)->head;
    UnlockReleaseBuffer(buffer);
    return true;
}

// The tuple at off of a tail page, or null for an unused or short item.
FaissTailTuple* tail_tuple(Page page, OffsetNumber off, Size code_size) {
    ItemId item = PageGetItemId(page, off);
    if (!ItemIdIsUsed(item) || ItemIdIsDead(item)) return nullptr;
    auto* tuple = reinterpret_cast<FaissTailTuple*>(PageGetItem(page, item));
    if (ItemIdGetLength(item) < offsetof(FaissTailTuple, data) ||
        ItemIdGetLength(item) < faiss_tail_item_size(tuple, code_size))
        return nullptr;
    return tuple;
}

// Walks list's tail, calling visit(buffer) with each page pinned and
// locked in mode (it must not raise an ERROR). Returns false on a race.
template <typename Visit>
bool walk_tail(Relation index, const FaissMeta& meta, const BlockNumber* directory, int64 list,
               int mode, Visit visit) {
    BlockNumber block = InvalidBlockNumber;
    if (!tail_head(index, meta, directory, list, &block)) return false;
    uint32 sequence = 0;
    while (block != InvalidBlockNumber) {
        Buffer buffer = ReadBuffer(index, block);
        LockBuffer(buffer, mode);
        Page page = BufferGetPage(buffer);
        if (!page_is(page, kFaissPageListTail, meta)) {
            UnlockReleaseBuffer(buffer);
            return false;
        }
        if (faiss_page_opaque(page)->sequence != sequence) {
            UnlockReleaseBuffer(buffer);
            raise_bad_tail_page(index, block, "out of sequence");
        }
        BlockNumber next = faiss_page_opaque(page)->next;
        visit(buffer);
        UnlockReleaseBuffer(buffer);
        block = next;
        if ((++sequence & 63) == 0) CHECK_FOR_INTERRUPTS();
    }
    return true;
}

// Room for one more row in rows.
// Arrays start empty: a search reads the tail of every list it probes,
// and most tails are short or empty, so nothing is allocated until a row
// is found.
template <typename T>
T* grow(T* array, Size bytes) {
    return static_cast<T*>(array == nullptr ? MemoryContextAllocHuge(CurrentMemoryContext, bytes)
                                            : repalloc_huge(array, bytes));
}

void reserve_row(FaissTailRows* rows, Size attribute_bytes) {
    if (rows->count == rows->capacity) {
        int64 capacity = Max(rows->capacity * 2, static_cast<int64>(16));
        rows->lists = grow(rows->lists, sizeof(int64) * capacity);
        rows->tids = grow(rows->tids, sizeof(ItemPointerData) * capacity);
        rows->codes = grow(rows->codes, Max(rows->code_size, static_cast<Size>(1)) * capacity);
        bool first = rows->attribute_offsets == nullptr;
        rows->attribute_offsets = grow(rows->attribute_offsets, sizeof(uint64) * (capacity + 1));
        if (first) rows->attribute_offsets[0] = 0;
        rows->capacity = capacity;
    }
    uint64 used = rows->attribute_offsets[rows->count];
    if (used + attribute_bytes > rows->attribute_capacity || rows->attributes == nullptr) {
        rows->attribute_capacity = Max(Max(rows->attribute_capacity * 2, used + attribute_bytes),
                                       static_cast<uint64>(256));
        rows->attributes = grow(rows->attributes, rows->attribute_capacity);
    }
}

// Whether a code of code_size fits a tail item with attribute_bytes.
bool fits_in_line(Size code_size, Size attribute_bytes) {
    return faiss_tail_tuple_size(code_size, attribute_bytes) <= faiss_max_pending_tuple_size();
}

}  // namespace

bool faiss_tail_fits(const FaissMeta& meta, Size attribute_bytes) {
    return fits_in_line(meta.list_code_size, attribute_bytes) ||
           fits_in_line(sizeof(FaissWideVector), attribute_bytes);
}

void faiss_write_tail_directory(Relation index, FaissMeta* meta, bool log_each) {
    Size bytes = sizeof(FaissListTail) * static_cast<Size>(meta->list_count);
    char* data = static_cast<char*>(
        MemoryContextAllocHuge(CurrentMemoryContext, Max(bytes, static_cast<Size>(1))));
    memset(data, 0xFF, bytes);  // every head and tail InvalidBlockNumber
    // Whole entries a page: a list's entry is found by arithmetic.
    Size per_page = tails_per_page() * sizeof(FaissListTail);
    struct Fill {
        const char* data;
        Size bytes, offset, per_page;
    } fill = {data, bytes, 0, per_page};
    meta->list_tails = faiss_write_pages(
        index, kFaissPageListTails, meta->generation, log_each,
        [](void* arg, char* contents, Size, uint32, bool* more) -> Size {
            auto* f = static_cast<Fill*>(arg);
            Size length = Min(f->per_page, f->bytes - f->offset);
            memcpy(contents, f->data + f->offset, length);
            f->offset += length;
            *more = f->offset < f->bytes;
            return length;
        },
        &fill);
    meta->tail_rows = 0;
    pfree(data);
}

bool faiss_read_tail_directory_blocks(Relation index, const FaissMeta& meta, BlockNumber** blocks) {
    auto* out = static_cast<BlockNumber*>(
        palloc(sizeof(BlockNumber) * Max(meta.list_tails.pages, static_cast<uint32>(1))));
    BlockNumber block = meta.list_tails.head;
    for (uint32 i = 0; i < meta.list_tails.pages; i++) {
        if (block == InvalidBlockNumber) {
            pfree(out);
            return false;
        }
        Buffer buffer = ReadBuffer(index, block);
        LockBuffer(buffer, BUFFER_LOCK_SHARE);
        Page page = BufferGetPage(buffer);
        bool ours =
            page_is(page, kFaissPageListTails, meta) && faiss_page_opaque(page)->sequence == i;
        BlockNumber next = faiss_page_opaque(page)->next;
        UnlockReleaseBuffer(buffer);
        if (!ours) {
            pfree(out);
            return false;
        }
        out[i] = block;
        block = next;
    }
    if (static_cast<Size>(meta.list_tails.pages) * tails_per_page() < meta.list_count)
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\": the list tail directory is too short",
                               RelationGetRelationName(index))));
    *blocks = out;
    return true;
}

void faiss_append_tail(Relation index, const FaissMeta& meta, const BlockNumber* directory,
                       int64 list, ItemPointer tid, const uint8* code, const uint8* attributes,
                       Size attribute_bytes) {
    Size code_size = meta.list_code_size;
    bool out_of_line = !fits_in_line(code_size, attribute_bytes);
    Size size =
        faiss_tail_tuple_size(out_of_line ? sizeof(FaissWideVector) : code_size, attribute_bytes);
    auto* tuple = static_cast<FaissTailTuple*>(palloc0(size));
    tuple->tid = *tid;
    tuple->attribute_bytes = static_cast<uint16>(attribute_bytes);
    if (out_of_line) {
        // Written before any lock is taken: the insert's lock keeps merges,
        // and so the generation, away until the item points here.
        FaissWideVector wide = faiss_write_wide(index, meta.generation,
                                                reinterpret_cast<const char*>(code), code_size);
        memcpy(tuple->data, &wide, sizeof(wide));
        tuple->attribute_bytes |= kFaissTailOutOfLine;
    } else {
        memcpy(tuple->data, code, code_size);
    }
    if (attribute_bytes > 0)
        memcpy(const_cast<uint8*>(faiss_tail_attributes(tuple, code_size)), attributes,
               attribute_bytes);

    // Lock order: metapage, directory page, tail pages (see the top).
    Buffer meta_buffer = ReadBuffer(index, kFaissMetaBlock);
    LockBuffer(meta_buffer, BUFFER_LOCK_EXCLUSIVE);
    if (faiss_page_meta(BufferGetPage(meta_buffer))->generation != meta.generation)
        elog(ERROR, "faiss index \"%s\" was merged during an insert",
             RelationGetRelationName(index));
    Size slot = 0;
    Buffer dir_buffer =
        lock_directory_entry(index, meta, directory, list, BUFFER_LOCK_EXCLUSIVE, &slot);
    if (!BufferIsValid(dir_buffer))
        elog(ERROR, "faiss index \"%s\": list tail directory of another generation",
             RelationGetRelationName(index));
    FaissListTail entry = *directory_entry(BufferGetPage(dir_buffer), slot);
    Buffer tail_buffer = InvalidBuffer;
    if (entry.tail != InvalidBlockNumber) {
        tail_buffer = ReadBuffer(index, entry.tail);
        LockBuffer(tail_buffer, BUFFER_LOCK_EXCLUSIVE);
        Page page = BufferGetPage(tail_buffer);
        if (!page_is(page, kFaissPageListTail, meta) ||
            faiss_page_opaque(page)->next != InvalidBlockNumber) {
            UnlockReleaseBuffer(tail_buffer);
            raise_bad_tail_page(index, entry.tail, "not the last page of its tail");
        }
        if (PageGetFreeSpace(page) >= size) {
            GenericXLogState* state = GenericXLogStart(index);
            Page meta_copy = GenericXLogRegisterBuffer(state, meta_buffer, 0);
            Page copy = GenericXLogRegisterBuffer(state, tail_buffer, 0);
            if (PageAddItem(copy, reinterpret_cast<Item>(tuple), size, InvalidOffsetNumber, false,
                            false) == InvalidOffsetNumber)
                elog(ERROR, "could not add a row to faiss list tail page %u", entry.tail);
            faiss_page_meta(meta_copy)->tail_rows++;
            GenericXLogFinish(state);
            UnlockReleaseBuffer(tail_buffer);
            UnlockReleaseBuffer(dir_buffer);
            UnlockReleaseBuffer(meta_buffer);
            pfree(tuple);
            return;
        }
    }
    // A fresh page at the end of the tail, linked in the same record.
    Buffer buffer = faiss_new_buffer(index, meta.generation);
    BlockNumber block = BufferGetBlockNumber(buffer);
    GenericXLogState* state = GenericXLogStart(index);
    Page meta_copy = GenericXLogRegisterBuffer(state, meta_buffer, 0);
    Page dir_copy = GenericXLogRegisterBuffer(state, dir_buffer, 0);
    faiss_add_linked_item_page(state, buffer, tail_buffer, kFaissPageListTail, meta.generation,
                               tuple, size);
    FaissListTail* dir = directory_entry(dir_copy, slot);
    if (!BufferIsValid(tail_buffer)) dir->head = block;
    dir->tail = block;
    faiss_page_meta(meta_copy)->tail_rows++;
    GenericXLogFinish(state);
    UnlockReleaseBuffer(buffer);
    if (BufferIsValid(tail_buffer)) UnlockReleaseBuffer(tail_buffer);
    UnlockReleaseBuffer(dir_buffer);
    UnlockReleaseBuffer(meta_buffer);
    pfree(tuple);
}

void faiss_tail_rows_init(FaissTailRows* rows, Size code_size) {
    *rows = FaissTailRows{};
    rows->code_size = code_size;
}

void faiss_tail_rows_free(FaissTailRows* rows) {
    void* arrays[] = {rows->lists, rows->tids, rows->codes, rows->attributes,
                      rows->attribute_offsets};
    for (void* array : arrays)
        if (array != nullptr) pfree(array);
    faiss_tail_rows_init(rows, rows->code_size);
}

bool faiss_read_list_tail(Relation index, const FaissMeta& meta, const BlockNumber* directory,
                          int64 list, FaissTailRows* rows, const FaissTailFilter* filter) {
    Size code_size = meta.list_code_size;
    if (rows->code_size != code_size) elog(ERROR, "faiss list tail read with the wrong code size");
    benzer::GuardedError error;
    bool wide_raced = false;
    bool same = walk_tail(index, meta, directory, list, BUFFER_LOCK_SHARE, [&](Buffer buffer) {
        Page page = BufferGetPage(buffer);
        OffsetNumber max = PageGetMaxOffsetNumber(page);
        for (OffsetNumber off = FirstOffsetNumber; off <= max; off = OffsetNumberNext(off)) {
            if (error.kind != benzer::ErrorKind::kNone || wide_raced) return;
            FaissTailTuple* tuple = tail_tuple(page, off, code_size);
            if (tuple == nullptr) continue;
            const uint8* attributes = faiss_tail_attributes(tuple, code_size);
            Size attribute_bytes = faiss_tail_attribute_bytes(tuple);
            if (filter != nullptr) {
                if (filter->returned != nullptr &&
                    hash_search(filter->returned, &tuple->tid, HASH_FIND, nullptr) != nullptr)
                    continue;
                bool match = true;
                if (filter->nconditions > 0 && !benzer::run_guarded(error, [&] {
                        match = benzer::AttributeStore::encoded_row_matches(
                            filter->kinds, filter->nkinds, attributes, attribute_bytes,
                            filter->conditions, filter->nconditions);
                    }))
                    return;  // raised below, with the page unlocked
                if (!match) continue;
            }
            // palloc under a buffer lock: an out-of-memory ERROR releases
            // the lock with the transaction.
            reserve_row(rows, attribute_bytes);
            int64 i = rows->count;
            uint8* code = rows->codes + static_cast<Size>(i) * code_size;
            if (faiss_tail_out_of_line(tuple)) {
                // The page stays locked, so VACUUM cannot free the chain.
                FaissWideVector wide;
                memcpy(&wide, tuple->data, sizeof(wide));
                if (!faiss_read_wide(index, wide, meta.generation, reinterpret_cast<char*>(code),
                                     code_size)) {
                    wide_raced = true;
                    return;
                }
            } else {
                memcpy(code, tuple->data, code_size);
            }
            rows->count++;
            rows->lists[i] = list;
            rows->tids[i] = tuple->tid;
            uint64 at = rows->attribute_offsets[i];
            memcpy(rows->attributes + at, attributes, attribute_bytes);
            rows->attribute_offsets[i + 1] = at + attribute_bytes;
        }
    });
    if (error.kind != benzer::ErrorKind::kNone)
        raise_guarded_error(error, "could not apply filter columns to inserted rows");
    return same && !wide_raced;
}

bool faiss_read_tails(Relation index, const FaissMeta& meta, FaissTailRows* rows) {
    BlockNumber* directory = nullptr;
    if (!faiss_read_tail_directory_blocks(index, meta, &directory)) return false;
    for (uint32 list = 0; list < meta.list_count; list++)
        if (!faiss_read_list_tail(index, meta, directory, list, rows)) {
            pfree(directory);
            return false;
        }
    pfree(directory);
    return true;
}

int64 faiss_count_tails(Relation index, const FaissMeta& meta) {
    if (!faiss_has_tails(meta)) return 0;
    BlockNumber* directory = nullptr;
    if (!faiss_read_tail_directory_blocks(index, meta, &directory)) return 0;
    Size code_size = meta.list_code_size;
    int64 count = 0;
    for (uint32 list = 0; list < meta.list_count; list++) {
        bool same = walk_tail(index, meta, directory, list, BUFFER_LOCK_SHARE, [&](Buffer buffer) {
            Page page = BufferGetPage(buffer);
            OffsetNumber max = PageGetMaxOffsetNumber(page);
            for (OffsetNumber off = FirstOffsetNumber; off <= max; off = OffsetNumberNext(off))
                if (tail_tuple(page, off, code_size) != nullptr) count++;
        });
        if (!same) break;  // a merge folded them in meanwhile
    }
    pfree(directory);
    return count;
}

int64 faiss_count_inserted(Relation index, const FaissMeta& meta) {
    return faiss_count_pending(index, meta) + faiss_count_tails(index, meta);
}

int64 faiss_vacuum_tails(Relation index, const FaissMeta& meta, IndexBulkDeleteCallback callback,
                         void* callback_state, int64* remaining) {
    *remaining = 0;
    if (!faiss_has_tails(meta)) return 0;
    BlockNumber* directory = nullptr;
    // No merge can run meanwhile: it needs a lock VACUUM conflicts with.
    if (!faiss_read_tail_directory_blocks(index, meta, &directory))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\" changed during VACUUM",
                               RelationGetRelationName(index))));
    Size code_size = meta.list_code_size;
    int64 deleted = 0;
    for (uint32 list = 0; list < meta.list_count; list++) {
        bool same =
            walk_tail(index, meta, directory, list, BUFFER_LOCK_EXCLUSIVE, [&](Buffer buffer) {
                Page page = BufferGetPage(buffer);
                OffsetNumber dead[MaxOffsetNumber];
                FaissWideVector wide[MaxOffsetNumber];
                int ndead = 0, nwide = 0;
                OffsetNumber max = PageGetMaxOffsetNumber(page);
                for (OffsetNumber off = FirstOffsetNumber; off <= max;
                     off = OffsetNumberNext(off)) {
                    if (!ItemIdIsUsed(PageGetItemId(page, off))) continue;
                    FaissTailTuple* tuple = tail_tuple(page, off, code_size);
                    if (tuple == nullptr || callback(&tuple->tid, callback_state)) {
                        dead[ndead++] = off;
                        if (tuple != nullptr && faiss_tail_out_of_line(tuple))
                            memcpy(&wide[nwide++], tuple->data, sizeof(FaissWideVector));
                    } else {
                        (*remaining)++;
                    }
                }
                if (ndead > 0) {
                    GenericXLogState* state = GenericXLogStart(index);
                    Page copy = GenericXLogRegisterBuffer(state, buffer, 0);
                    PageIndexMultiDelete(copy, dead, ndead);
                    GenericXLogFinish(state);
                    deleted += ndead;
                }
                // The items are gone: their out-of-line codes are unreachable.
                for (int i = 0; i < nwide; i++) faiss_free_wide(index, wide[i], meta.generation);
            });
        if (!same)
            ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                            errmsg("faiss index \"%s\" changed during VACUUM",
                                   RelationGetRelationName(index))));
        vacuum_delay_point();
    }
    pfree(directory);
    if (deleted > 0) {
        Buffer meta_buffer = ReadBuffer(index, kFaissMetaBlock);
        LockBuffer(meta_buffer, BUFFER_LOCK_EXCLUSIVE);
        GenericXLogState* state = GenericXLogStart(index);
        Page copy = GenericXLogRegisterBuffer(state, meta_buffer, 0);
        FaissMeta* m = faiss_page_meta(copy);
        m->tail_rows = Max(m->tail_rows - deleted, static_cast<int64>(0));
        GenericXLogFinish(state);
        UnlockReleaseBuffer(meta_buffer);
    }
    return deleted;
}

void faiss_free_tails(Relation index, const FaissMeta& meta) {
    if (!faiss_has_tails(meta)) return;
    BlockNumber* directory = nullptr;
    if (faiss_read_tail_directory_blocks(index, meta, &directory)) {
        // Out-of-line codes first, while the items that point to them can
        // still be read.
        Size code_size = meta.list_code_size;
        for (uint32 list = 0; list < meta.list_count && !fits_in_line(code_size, 0); list++) {
            List* chains = NIL;
            walk_tail(index, meta, directory, list, BUFFER_LOCK_SHARE, [&](Buffer buffer) {
                Page page = BufferGetPage(buffer);
                OffsetNumber max = PageGetMaxOffsetNumber(page);
                for (OffsetNumber off = FirstOffsetNumber; off <= max;
                     off = OffsetNumberNext(off)) {
                    FaissTailTuple* tuple = tail_tuple(page, off, code_size);
                    if (tuple == nullptr || !faiss_tail_out_of_line(tuple)) continue;
                    auto* wide = static_cast<FaissWideVector*>(palloc(sizeof(FaissWideVector)));
                    memcpy(wide, tuple->data, sizeof(FaissWideVector));
                    chains = lappend(chains, wide);
                }
            });
            ListCell* cell;
            foreach (cell, chains)
                faiss_free_wide(index, *static_cast<FaissWideVector*>(lfirst(cell)),
                                meta.generation);
            list_free_deep(chains);
        }
        for (uint32 list = 0; list < meta.list_count; list++) {
            BlockNumber head = InvalidBlockNumber;
            if (!tail_head(index, meta, directory, list, &head)) break;
            // Pages of this generation only: a page that is not stops the walk.
            FaissChain chain = {head, MaxBlockNumber, 0};
            if (head != InvalidBlockNumber)
                faiss_free_chain(index, chain, kFaissPageListTail, meta.generation);
        }
        pfree(directory);
    }
    faiss_free_chain(index, meta.list_tails, kFaissPageListTails, meta.generation);
}
