// faiss_lists.cpp: writing, reading and searching IVF lists in pages.
//
// See faiss_lists.h for the layout. The search loop lives here, between
// PagedSearch calls (core/engine.h): the core decides which list to visit
// and keeps the top k, this file pins and share-locks one page at a time
// and hands its entries over in place (no copy unless an entry straddles
// pages). No PostgreSQL call happens inside a guarded block, and no C++
// object with a destructor lives on these stack frames, so an ERROR or a
// cancel between pages unwinds cleanly; the PagedSearch itself belongs to
// the caller's memory context.
#include "pg/faiss_lists.h"
#include "pg/faiss_tails.h"

#include "core/engine.h"
#include "pg/context_owned.h"
#include "pg/faiss_cache.h"
#include "pg/guard.h"
#include "pg/guarded.h"
#include "pg/service.h"

#include <cmath>
#include <vector>

extern "C" {
#include "miscadmin.h"
#include "storage/indexfsm.h"
#include "utils/rel.h"
}

namespace {

constexpr Size kHeaderBytes = sizeof(FaissListPageHeader);
static_assert(kHeaderBytes == 8, "labels after the header must stay 8-byte aligned");

// Entries of entry_bytes a page holds whole (0: entries straddle pages).
Size entries_per_page(Size entry_bytes) {
    return (faiss_chain_page_capacity() - kHeaderBytes) / entry_bytes;
}

// One list being written.
struct ListFill {
    const benzer::Label* labels;
    const uint8* codes;
    int64 rows;
    Size code_size;
    Size per_page;      // whole entries a page (0: straddling)
    int64 position;     // next entry
    Size entry_offset;  // straddling: bytes of the current entry written
};

Size fill_list_page(void* arg, char* contents, Size capacity, uint32, bool* more) {
    auto* fill = static_cast<ListFill*>(arg);
    auto* header = reinterpret_cast<FaissListPageHeader*>(contents);
    char* payload = contents + kHeaderBytes;
    Size entry_bytes = sizeof(benzer::Label) + fill->code_size;
    if (fill->per_page > 0) {
        int64 count = Min(static_cast<int64>(fill->per_page), fill->rows - fill->position);
        memcpy(payload, fill->labels + fill->position, sizeof(benzer::Label) * count);
        memcpy(payload + sizeof(benzer::Label) * count,
               fill->codes + static_cast<Size>(fill->position) * fill->code_size,
               fill->code_size * count);
        header->count = static_cast<uint32>(count);
        header->bytes = static_cast<uint32>(entry_bytes * count);
        fill->position += count;
    } else {
        // The entry's bytes are its label, then its code.
        Size take = Min(capacity - kHeaderBytes, entry_bytes - fill->entry_offset);
        Size done = 0;
        while (done < take) {
            Size at = fill->entry_offset + done;
            Size piece;
            if (at < sizeof(benzer::Label)) {
                piece = Min(take - done, sizeof(benzer::Label) - at);
                memcpy(payload + done,
                       reinterpret_cast<const char*>(fill->labels + fill->position) + at, piece);
            } else {
                piece = take - done;
                memcpy(payload + done,
                       fill->codes + static_cast<Size>(fill->position) * fill->code_size +
                           (at - sizeof(benzer::Label)),
                       piece);
            }
            done += piece;
        }
        header->count = fill->entry_offset == 0 ? 1 : 0;
        header->bytes = static_cast<uint32>(take);
        fill->entry_offset += take;
        if (fill->entry_offset == entry_bytes) {
            fill->entry_offset = 0;
            fill->position++;
        }
    }
    *more = fill->position < fill->rows;
    return kHeaderBytes + header->bytes;
}

[[noreturn]] void raise_bad_page(Relation index, BlockNumber block, const char* what) {
    ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                    errmsg("faiss index \"%s\": list page %u is damaged: %s",
                           RelationGetRelationName(index), block, what),
                    errhint("Rebuild the index with REINDEX.")));
}

// Walks one list's pages, calling visit(labels, codes, count) for every
// run of whole entries (a straddling entry is gathered into scratch
// first). Returns false on a page of another generation. visit must not
// raise an ERROR: it runs with the page locked (it returns false to have
// the error raised after the page is released).
template <typename Visit>
bool walk_list(Relation index, const FaissMeta& meta, const FaissListRef& list, char* scratch,
               Visit&& visit) {
    Size code_size = meta.list_code_size;
    Size entry_bytes = sizeof(benzer::Label) + code_size;
    Size per_page = entries_per_page(entry_bytes);
    Size capacity = faiss_chain_page_capacity();
    Size gathered = 0;
    int64 seen = 0;
    BlockNumber block = list.head;
    for (uint32 i = 0; i < list.pages; i++) {
        if (block == InvalidBlockNumber) return false;
        Buffer buffer = ReadBuffer(index, block);
        LockBuffer(buffer, BUFFER_LOCK_SHARE);
        Page page = BufferGetPage(buffer);
        FaissPageOpaque* opaque = faiss_page_opaque(page);
        if (PageIsNew(page) || opaque->generation != meta.generation ||
            opaque->kind != kFaissPageList || opaque->sequence != i) {
            UnlockReleaseBuffer(buffer);
            return false;
        }
        const char* contents = PageGetContents(page);
        const auto* header = reinterpret_cast<const FaissListPageHeader*>(contents);
        const char* payload = contents + kHeaderBytes;
        const char* damage = nullptr;
        bool ok = true;
        if (header->bytes > capacity - kHeaderBytes ||
            kHeaderBytes + header->bytes != faiss_page_payload_length(page)) {
            damage = "payload length";
        } else if (per_page > 0) {
            if (header->count > per_page || header->bytes != header->count * entry_bytes) {
                damage = "entry count";
            } else {
                ok = visit(
                    reinterpret_cast<const benzer::Label*>(payload),
                    reinterpret_cast<const uint8*>(payload) + sizeof(benzer::Label) * header->count,
                    static_cast<int64>(header->count));
                seen += header->count;
            }
        } else if ((header->count == 1) != (gathered == 0) ||
                   gathered + header->bytes > entry_bytes) {
            damage = "entry pieces";
        } else {
            memcpy(scratch + gathered, payload, header->bytes);
            gathered += header->bytes;
            if (gathered == entry_bytes) {
                ok = visit(reinterpret_cast<const benzer::Label*>(scratch),
                           reinterpret_cast<const uint8*>(scratch) + sizeof(benzer::Label), 1);
                gathered = 0;
                seen++;
            }
        }
        BlockNumber here = block;
        block = opaque->next;
        UnlockReleaseBuffer(buffer);
        if (damage != nullptr) raise_bad_page(index, here, damage);
        if (!ok) return true;  // the caller raises its error
        if ((i & 63) == 63) CHECK_FOR_INTERRUPTS();
    }
    if (seen != list.rows || gathered != 0)
        ereport(ERROR,
                (errcode(ERRCODE_INDEX_CORRUPTED),
                 errmsg("faiss index \"%s\": an IVF list holds %lld rows, its directory says %lld",
                        RelationGetRelationName(index), static_cast<long long>(seen),
                        static_cast<long long>(list.rows)),
                 errhint("Rebuild the index with REINDEX.")));
    return true;
}

// Scratch space for one straddling entry (null when entries fit a page).
char* entry_scratch(const FaissMeta& meta) {
    Size entry_bytes = sizeof(benzer::Label) + meta.list_code_size;
    return entries_per_page(entry_bytes) > 0 ? nullptr : static_cast<char*>(palloc(entry_bytes));
}

}  // namespace

bool faiss_walk_list(Relation index, const FaissMeta& meta, const FaissListRef& list,
                     FaissListVisitor visit, void* arg) {
    char* scratch = entry_scratch(meta);
    bool same = walk_list(index, meta, list, scratch,
                          [&](const benzer::Label* labels, const uint8* codes, int64 n) {
                              return visit(arg, labels, codes, n);
                          });
    if (scratch != nullptr) pfree(scratch);
    return same;
}

void faiss_write_lists(Relation index, FaissMeta* meta, benzer::Engine* engine, bool log_each) {
    int64 nlist = 0;
    Size code_size = 0;
    int64 total_rows = 0;
    guarded("could not write faiss lists", [&] {
        nlist = engine->nlist();
        code_size = engine->list_code_size();
        total_rows = engine->size();
    });
    Size entry_bytes = sizeof(benzer::Label) + code_size;
    Size per_page = entries_per_page(entry_bytes);
    // Pages a straddling entry takes.
    Size entry_pages = per_page > 0
                           ? 0
                           : (entry_bytes + faiss_chain_page_capacity() - kHeaderBytes - 1) /
                                 (faiss_chain_page_capacity() - kHeaderBytes);
    auto* directory = static_cast<FaissListRef*>(
        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(FaissListRef) * Max(nlist, 1)));
    // Every page of every list, in order: at most this many.
    uint64 max_pages = 0;
    for (int64 list = 0; list < nlist; list++) {
        int64 rows = 0;
        guarded("could not write faiss lists", [&] { rows = engine->list_size(list); });
        max_pages += per_page > 0 ? (rows + per_page - 1) / per_page : rows * entry_pages;
    }
    auto* blocks = static_cast<BlockNumber*>(MemoryContextAllocHuge(
        CurrentMemoryContext, sizeof(BlockNumber) * Max(max_pages, static_cast<uint64>(1))));
    uint64 pages = 0;
    int64 next_label = 0;
    bool ordered = true;
    for (int64 list = 0; list < nlist; list++) {
        ListFill fill = {};
        guarded("could not write faiss lists", [&] {
            fill.rows = engine->list_size(list);
            fill.labels = engine->list_labels(list);
            fill.codes = engine->list_codes(list);
        });
        fill.code_size = code_size;
        fill.per_page = per_page;
        FaissListRef& ref = directory[list];
        ref = {InvalidBlockNumber, 0, fill.rows, next_label, static_cast<uint32>(pages), 0};
        for (int64 i = 0; i < fill.rows && ordered; i++) ordered = fill.labels[i] == next_label + i;
        next_label += fill.rows;
        if (fill.rows > 0) {
            FaissChain chain = faiss_write_pages(index, kFaissPageList, meta->generation, log_each,
                                                 fill_list_page, &fill, blocks + pages);
            ref.head = chain.head;
            ref.pages = chain.pages;
            pages += chain.pages;
            Assert(pages <= max_pages);
        }
        CHECK_FOR_INTERRUPTS();
    }
    // Labels not in list order (an engine not relabelled): nothing may be
    // inferred from a page's position.
    if (!ordered || next_label != total_rows)
        for (int64 list = 0; list < nlist; list++) directory[list].first_label = -1;
    meta->list_directory = faiss_write_chain(
        index, kFaissPageListDirectory, meta->generation, reinterpret_cast<const char*>(directory),
        sizeof(FaissListRef) * static_cast<uint64>(nlist), log_each);
    meta->list_page_table = faiss_write_chain(index, kFaissPageListPageTable, meta->generation,
                                              reinterpret_cast<const char*>(blocks),
                                              sizeof(BlockNumber) * pages, log_each);
    meta->list_pages = pages;
    meta->list_count = static_cast<uint32>(nlist);
    meta->list_code_size = static_cast<uint32>(code_size);
    pfree(blocks);
    pfree(directory);
}

bool faiss_read_list_page_table(Relation index, const FaissMeta& meta, BlockNumber** blocks) {
    char* data = nullptr;
    if (!faiss_read_chain(index, meta.list_page_table, kFaissPageListPageTable, meta.generation,
                          &data))
        return false;
    if (meta.list_page_table.bytes != sizeof(BlockNumber) * meta.list_pages)
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\": the IVF page table has the wrong size",
                               RelationGetRelationName(index)),
                        errhint("Rebuild the index with REINDEX.")));
    *blocks = reinterpret_cast<BlockNumber*>(data);
    return true;
}

bool faiss_read_list_directory(Relation index, const FaissMeta& meta, FaissListRef** directory) {
    char* data = nullptr;
    if (!faiss_read_chain(index, meta.list_directory, kFaissPageListDirectory, meta.generation,
                          &data))
        return false;
    if (meta.list_directory.bytes != sizeof(FaissListRef) * static_cast<uint64>(meta.list_count))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\": the IVF list directory has the wrong size",
                               RelationGetRelationName(index)),
                        errhint("Rebuild the index with REINDEX.")));
    *directory = reinterpret_cast<FaissListRef*>(data);
    return true;
}

void faiss_load_lists(Relation index, const FaissMeta& meta, benzer::Engine* shell) {
    FaissListRef* directory = nullptr;
    if (!faiss_read_list_directory(index, meta, &directory))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\" changed during a merge",
                               RelationGetRelationName(index))));
    char* scratch = entry_scratch(meta);
    benzer::GuardedError error;
    for (uint32 list = 0; list < meta.list_count; list++) {
        bool ok = walk_list(index, meta, directory[list], scratch,
                            [&](const benzer::Label* labels, const uint8* codes, int64 n) {
                                return benzer::run_guarded(
                                    error, [&] { shell->append_list(list, n, codes, labels); });
                            });
        if (!ok)
            ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                            errmsg("faiss index \"%s\" changed during a merge",
                                   RelationGetRelationName(index))));
        if (error.kind != benzer::ErrorKind::kNone)
            raise_guarded_error(error, "could not read faiss lists");
    }
    guarded("could not read faiss lists", [&] { shell->finish_lists(); });
    pfree(directory);
    if (scratch != nullptr) pfree(scratch);
}

bool faiss_free_lists(Relation index, const FaissMeta& meta) {
    if (!faiss_try_lock_lists_for_freeing(index)) return false;
    faiss_free_chain(index, meta.labels, kFaissPageLabels, meta.generation);
    if (!faiss_lists_paged(meta)) {
        faiss_unlock_lists_for_freeing(index);
        return true;
    }
    FaissListRef* directory = nullptr;
    if (faiss_read_list_directory(index, meta, &directory)) {
        for (uint32 list = 0; list < meta.list_count; list++) {
            FaissChain chain = {directory[list].head, directory[list].pages, 0};
            if (chain.head != InvalidBlockNumber)
                faiss_free_chain(index, chain, kFaissPageList, meta.generation);
        }
        pfree(directory);
    }
    faiss_free_chain(index, meta.list_directory, kFaissPageListDirectory, meta.generation);
    if (meta.list_page_table.head != InvalidBlockNumber)
        faiss_free_chain(index, meta.list_page_table, kFaissPageListPageTable, meta.generation);
    faiss_free_tails(index, meta);
    faiss_unlock_lists_for_freeing(index);
    return true;
}

namespace {

// Whether filter allows any label in [first, end).
bool any_allowed(const benzer::LabelFilter* filter, int64 first, int64 end) {
    if (filter == nullptr) return true;
    end = Min(end, filter->count);
    for (int64 label = first; label < end; label++) {
        if ((label & 7) == 0 && label + 8 <= end) {
            if (filter->bits[label >> 3] != 0) return true;
            label += 7;
            continue;
        }
        if (filter->contains(label)) return true;
    }
    return false;
}

// The next list the search wants read, or -1 when it is done.
benzer::Label next_list_to_read(Relation index, const FaissMeta& meta,
                                benzer::PagedSearch* search) {
    benzer::Label list = -1;
    benzer::GuardedError error;
    if (!benzer::run_guarded(error, [&] { list = search->next_list(); })) {
        CHECK_FOR_INTERRUPTS();
        raise_guarded_error(error, "faiss index scan");
    }
    if (list >= static_cast<benzer::Label>(meta.list_count))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\": IVF list %lld out of range",
                               RelationGetRelationName(index), static_cast<long long>(list))));
    return list;
}

// Pins page `page` of list ref (through the page table), unlocked, and
// asks the CPU for the start of its contents, so that the memory is on its
// way while the caller scans the page before it.
Buffer pin_list_page(Relation index, const BlockNumber* blocks, const FaissListRef& ref,
                     uint32 page) {
    Buffer buffer = ReadBuffer(index, blocks[ref.first_page + page]);
    const char* contents = PageGetContents(BufferGetPage(buffer));
    for (int line = 0; line < 4; line++) __builtin_prefetch(contents + 64 * line);
    return buffer;
}

// Share-locks a pinned list page and checks it is the page of meta's
// generation it should be, holding labels [first, first + count). Returns
// false (the buffer unlocked, still pinned) when the page belongs to
// another generation; ERRORs on a damaged page.
bool lock_list_page(Relation index, const FaissMeta& meta, Buffer buffer, uint32 page, int64 first,
                    int64 count) {
    LockBuffer(buffer, BUFFER_LOCK_SHARE);
    Page p = BufferGetPage(buffer);
    FaissPageOpaque* opaque = faiss_page_opaque(p);
    if (PageIsNew(p) || opaque->generation != meta.generation || opaque->kind != kFaissPageList ||
        opaque->sequence != page) {
        LockBuffer(buffer, BUFFER_LOCK_UNLOCK);
        return false;
    }
    const char* contents = PageGetContents(p);
    const auto* header = reinterpret_cast<const FaissListPageHeader*>(contents);
    const auto* labels = reinterpret_cast<const benzer::Label*>(contents + kHeaderBytes);
    if (header->count != static_cast<uint64>(count) || (count > 0 && labels[0] != first) ||
        header->bytes != count * (sizeof(benzer::Label) + meta.list_code_size)) {
        BlockNumber block = BufferGetBlockNumber(buffer);
        UnlockReleaseBuffer(buffer);
        raise_bad_page(index, block, "entries not as the directory says");
    }
    return true;
}

// Reads page `page` of list ref: pinned and share-locked, or InvalidBuffer
// when the page belongs to another generation.
Buffer read_list_page(Relation index, const FaissMeta& meta, const BlockNumber* blocks,
                      const FaissListRef& ref, uint32 page, int64 first, int64 count) {
    Buffer buffer = pin_list_page(index, blocks, ref, page);
    if (lock_list_page(index, meta, buffer, page, first, count)) return buffer;
    ReleaseBuffer(buffer);
    return InvalidBuffer;
}

// Reads list's tail (rows inserted since the lists were written) and
// hands scan(n, codes, labels) the entries the search may return: those
// the filter conditions accept, not returned already, labelled by TID.
// Returns false on a page of another generation.
template <typename Scan>
bool scan_list_tail(Relation index, const FaissMeta& meta, const BlockNumber* tail_blocks,
                    int64 list, const FaissTailSearch* tails, Scan scan) {
    FaissTailRows rows;
    faiss_tail_rows_init(&rows, meta.list_code_size);
    FaissTailFilter filter = {tails->kinds, tails->nkinds, tails->conditions, tails->nconditions,
                              tails->returned};
    if (!faiss_read_list_tail(index, meta, tail_blocks, list, &rows, &filter)) return false;
    if (rows.count > 0) {
        auto* labels = static_cast<benzer::Label*>(palloc(sizeof(benzer::Label) * rows.count));
        for (int64 i = 0; i < rows.count; i++) labels[i] = faiss_tail_label(rows.tids[i]);
        scan(rows.count, rows.codes, labels);
        pfree(labels);
    }
    faiss_tail_rows_free(&rows);
    return true;
}

// A search's scan of one list's tail, when the index has tails.
bool search_list_tail(Relation index, const FaissMeta& meta, const BlockNumber* tail_blocks,
                      const FaissTailSearch* tails, benzer::Label list,
                      benzer::PagedSearch* search) {
    if (tails == nullptr) return true;
    benzer::GuardedError error;
    bool same =
        scan_list_tail(index, meta, tail_blocks, list, tails,
                       [&](int64 n, const uint8* codes, const benzer::Label* labels) {
                           if (!benzer::run_guarded(error, [&] { search->scan(n, codes, labels); }))
                               raise_guarded_error(error, "faiss index scan");
                       });
    return same;
}

// The lists the search asks for, visited through the page table, skipping
// pages that hold no label the filter allows (labels in list order only).
// The next page to read is pinned, and its memory requested, before the
// current one is scanned. Returns false on a page of another generation.
bool search_ordered_lists(Relation index, const FaissMeta& meta, const FaissListRef* directory,
                          const BlockNumber* blocks, const benzer::LabelFilter* filter,
                          const BlockNumber* tail_blocks, const FaissTailSearch* tails,
                          benzer::PagedSearch* search) {
    Size entry_bytes = sizeof(benzer::Label) + meta.list_code_size;
    int64 per_page = static_cast<int64>(entries_per_page(entry_bytes));
    benzer::GuardedError error;
    for (;;) {
        benzer::Label list = next_list_to_read(index, meta, search);
        if (list < 0) return true;
        const FaissListRef& ref = directory[list];
        // The next page with an allowed row, from `from` on (ref.pages: none).
        auto next_page = [&](uint32 from) {
            for (uint32 page = from; page < ref.pages; page++) {
                int64 first = ref.first_label + static_cast<int64>(page) * per_page;
                int64 count = Min(per_page, ref.rows - static_cast<int64>(page) * per_page);
                if (any_allowed(filter, first, first + count)) return page;
            }
            return ref.pages;
        };
        uint32 page = next_page(0);
        Buffer buffer = page < ref.pages ? pin_list_page(index, blocks, ref, page) : InvalidBuffer;
        while (page < ref.pages) {
            uint32 following = next_page(page + 1);
            Buffer ahead = following < ref.pages ? pin_list_page(index, blocks, ref, following)
                                                 : InvalidBuffer;
            int64 first = ref.first_label + static_cast<int64>(page) * per_page;
            int64 count = Min(per_page, ref.rows - static_cast<int64>(page) * per_page);
            if (!lock_list_page(index, meta, buffer, page, first, count)) {
                ReleaseBuffer(buffer);
                if (BufferIsValid(ahead)) ReleaseBuffer(ahead);
                return false;
            }
            const char* payload = PageGetContents(BufferGetPage(buffer)) + kHeaderBytes;
            const auto* labels = reinterpret_cast<const benzer::Label*>(payload);
            const auto* codes = reinterpret_cast<const uint8*>(payload) +
                                sizeof(benzer::Label) * static_cast<Size>(count);
            bool ok = benzer::run_guarded(error, [&] { search->scan(count, codes, labels); });
            UnlockReleaseBuffer(buffer);
            if (!ok) {
                if (BufferIsValid(ahead)) ReleaseBuffer(ahead);
                raise_guarded_error(error, "faiss index scan");
            }
            page = following;
            buffer = ahead;
        }
        if (!search_list_tail(index, meta, tail_blocks, tails, list, search)) return false;
        CHECK_FOR_INTERRUPTS();
    }
}

// The lists the search asks for, page by page along their chains.
bool search_chained_lists(Relation index, const FaissMeta& meta, const FaissListRef* directory,
                          const BlockNumber* tail_blocks, const FaissTailSearch* tails,
                          benzer::PagedSearch* search) {
    char* scratch = entry_scratch(meta);
    benzer::GuardedError error;
    for (;;) {
        benzer::Label list = next_list_to_read(index, meta, search);
        if (list < 0) break;
        bool same_generation = walk_list(
            index, meta, directory[list], scratch,
            [&](const benzer::Label* labels, const uint8* codes, int64 n) {
                return benzer::run_guarded(error, [&] { search->scan(n, codes, labels); });
            });
        if (!same_generation) return false;
        if (error.kind != benzer::ErrorKind::kNone) raise_guarded_error(error, "faiss index scan");
        if (!search_list_tail(index, meta, tail_blocks, tails, list, search)) return false;
        CHECK_FOR_INTERRUPTS();
    }
    if (scratch != nullptr) pfree(scratch);
    return true;
}

// The list holding label (labels in list order): binary search on
// first_label.
uint32 list_of_label(const FaissMeta& meta, const FaissListRef* directory, int64 label) {
    uint32 low = 0, high = meta.list_count;  // the answer is in [low, high)
    while (high - low > 1) {
        uint32 middle = low + (high - low) / 2;
        if (directory[middle].first_label <= label)
            low = middle;
        else
            high = middle;
    }
    return low;
}

bool search_all_tails(Relation index, const FaissMeta& meta, const BlockNumber* tail_blocks,
                      const FaissTailSearch* tails, benzer::ExactCandidates* exact);

// Exact distances to every allowed label, each read from its page (labels
// in list order, whole entries a page). Returns false on a page of another
// generation.
bool search_allowed_rows(Relation index, const FaissMeta& meta, const FaissListRef* directory,
                         const BlockNumber* blocks, const benzer::LabelFilter* filter,
                         const BlockNumber* tail_blocks, const FaissTailSearch* tails,
                         benzer::ExactCandidates* exact) {
    Size entry_bytes = sizeof(benzer::Label) + meta.list_code_size;
    int64 per_page = static_cast<int64>(entries_per_page(entry_bytes));
    Buffer buffer = InvalidBuffer;
    uint32 buffer_list = 0, buffer_page = 0;
    benzer::GuardedError error;
    for (int64 byte = 0; byte * 8 < filter->count; byte++) {
        uint8 bits = filter->bits[byte];
        while (bits != 0) {
            int bit = __builtin_ctz(bits);
            bits &= static_cast<uint8>(bits - 1);
            int64 label = byte * 8 + bit;
            if (label >= filter->count) break;
            uint32 list = list_of_label(meta, directory, label);
            const FaissListRef& ref = directory[list];
            int64 position = label - ref.first_label;
            if (position < 0 || position >= ref.rows) {
                if (BufferIsValid(buffer)) UnlockReleaseBuffer(buffer);
                ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                                errmsg("faiss index \"%s\": label %lld is in no IVF list",
                                       RelationGetRelationName(index), (long long)label)));
            }
            uint32 page = static_cast<uint32>(position / per_page);
            if (!BufferIsValid(buffer) || buffer_list != list || buffer_page != page) {
                if (BufferIsValid(buffer)) UnlockReleaseBuffer(buffer);
                int64 first = ref.first_label + static_cast<int64>(page) * per_page;
                int64 count = Min(per_page, ref.rows - static_cast<int64>(page) * per_page);
                buffer = read_list_page(index, meta, blocks, ref, page, first, count);
                if (!BufferIsValid(buffer)) return false;
                buffer_list = list;
                buffer_page = page;
            }
            const char* payload = PageGetContents(BufferGetPage(buffer)) + kHeaderBytes;
            int64 count = Min(per_page, ref.rows - static_cast<int64>(page) * per_page);
            const auto* vector = reinterpret_cast<const float*>(
                payload + sizeof(benzer::Label) * static_cast<Size>(count) +
                static_cast<Size>(position % per_page) * meta.list_code_size);
            if (!benzer::run_guarded(error, [&] { exact->add(label, vector); })) {
                UnlockReleaseBuffer(buffer);
                raise_guarded_error(error, "faiss index scan");
            }
        }
        if ((byte & 4095) == 4095) {
            if (BufferIsValid(buffer)) UnlockReleaseBuffer(buffer);
            buffer = InvalidBuffer;
            CHECK_FOR_INTERRUPTS();
        }
    }
    if (BufferIsValid(buffer)) UnlockReleaseBuffer(buffer);
    return search_all_tails(index, meta, tail_blocks, tails, exact);
}

// The request for the service that exact's search is (the query as exact
// scores it).
ServiceQuery service_request(const FaissMeta& meta, const benzer::ExactCandidates* exact, int64 k,
                             const benzer::LabelFilter* filter, int64 rows, bool small_stays_here) {
    ServiceQuery query = {};
    query.kind = kServiceExact;
    query.vector = exact->query();
    query.dim = meta.dimensions;
    query.score = exact->scores_l2() ? benzer::ExactScore::kL2Squared
                                     : benzer::ExactScore::kNegativeInnerProduct;
    query.k = Max(k, static_cast<int64>(1));
    query.filter = filter;
    query.rows = rows;
    query.small_stays_here = small_stays_here;
    return query;
}

// Hands the service's answer to exact, as if it had scored the allowed
// rows itself.
void absorb_answer(benzer::ExactCandidates* exact, const ServiceAnswer& answer, int64 allowed) {
    guarded("faiss index scan", [&] {
        for (int64 i = 0; i < answer.found; i++)
            exact->add_scored(answer.labels[i], answer.scores[i]);
        exact->note_compared(Max(allowed - answer.found, static_cast<int64>(0)));
    });
}

// Asks the search service (service.h) for the exact distances to the
// allowed rows of the lists, into exact. Returns false, with the reason in
// stats, when it did not answer: the caller then reads the rows itself.
bool search_in_service(Relation index, const FaissMeta& meta, int64 rows, int64 k,
                       const benzer::LabelFilter* filter, bool small_stays_here,
                       benzer::ExactCandidates* exact, benzer::SearchStats* stats) {
    if (exact->zero_query()) {
        if (stats != nullptr) stats->service_why_not = "a zero cosine query";
        return false;
    }
    ServiceQuery query = service_request(meta, exact, k, filter, rows, small_stays_here);
    ServiceAnswer answer = {};
    answer.scores = static_cast<float*>(palloc(sizeof(float) * query.k));
    answer.labels = static_cast<benzer::Label*>(palloc(sizeof(benzer::Label) * query.k));
    ServiceOutcome outcome;
    int served = service_search_many(index, meta.generation, &query, 1, &answer, &outcome);
    service_note_outcome(stats, outcome, served);
    if (answer.served) absorb_answer(exact, answer, filter != nullptr ? filter->allowed : rows);
    pfree(answer.scores);
    pfree(answer.labels);
    return answer.served;
}

// Rows inserted since: every tail, their codes being the vectors.
bool search_all_tails(Relation index, const FaissMeta& meta, const BlockNumber* tail_blocks,
                      const FaissTailSearch* tails, benzer::ExactCandidates* exact) {
    benzer::GuardedError error;
    for (uint32 list = 0; tails != nullptr && list < meta.list_count; list++) {
        bool same = scan_list_tail(index, meta, tail_blocks, list, tails,
                                   [&](int64 n, const uint8* codes, const benzer::Label* labels) {
                                       if (!benzer::run_guarded(error, [&] {
                                               for (int64 i = 0; i < n; i++)
                                                   exact->add(labels[i],
                                                              reinterpret_cast<const float*>(
                                                                  codes + i * meta.list_code_size));
                                           }))
                                           raise_guarded_error(error, "faiss index scan");
                                   });
        if (!same) return false;
        CHECK_FOR_INTERRUPTS();
    }
    return true;
}

// Whether exact distances to a filter's rows cost less than a tuned probe,
// counting what pages cost. Both read only pages that hold an allowed row:
// exact reads all of them, a probe those of the lists it visits (it visits
// about expected_compared / keep rows to compare expected_compared). A page
// read (buffer lookup, lock, cache misses) costs about a microsecond here,
// a distance about dim / 2000 microseconds, a page's bit test next to
// nothing.
bool exact_pays_in_pages(const FaissMeta& meta, const benzer::SearchOptions& options,
                         const benzer::LabelFilter& filter, int64 rows) {
    double per_page =
        static_cast<double>(entries_per_page(sizeof(benzer::Label) + meta.list_code_size));
    double keep = Max(static_cast<double>(filter.allowed) / Max(rows, static_cast<int64>(1)), 1e-9);
    double page_has_allowed = 1.0 - pow(1.0 - Min(keep, 1.0), per_page);
    double distance = meta.dimensions / 2000.0;
    double exact = static_cast<double>(meta.list_pages) * page_has_allowed +
                   static_cast<double>(filter.allowed) * distance;
    double visited_pages =
        Min(options.expected_compared / keep, static_cast<double>(rows)) / per_page;
    double probe = visited_pages * page_has_allowed + options.expected_compared * distance +
                   visited_pages * 0.01;
    return exact <= probe;
}

[[noreturn]] void raise_merged_during_search(Relation index) {
    ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                    errmsg("faiss index \"%s\" was merged while a search read it",
                           RelationGetRelationName(index)),
                    errhint("Run the query again.")));
}

// Whether labels are in list order with whole entries a page (pages are
// then found without following chains, and skipped when they hold no
// allowed row).
bool lists_ordered(const FaissMeta& meta, const FaissLoadedIndex* entry) {
    return meta.list_count > 0 && entry->lists[0].first_label == 0 &&
           entry->list_blocks != nullptr &&
           entries_per_page(sizeof(benzer::Label) + meta.list_code_size) > 0;
}

// How a search with this filter and these settings computes exact
// distances, if it does.
struct ExactChoice {
    bool vectors;     // the lists' codes are the vectors
    bool here;        // the backend reads the allowed rows from their pages
                      // (a small filter, labels in list order)
    bool to_service;  // the search service may answer it: exact here, a
                      // small filter over lists in any order, or a Flat index
};

ExactChoice choose_exact(const FaissMeta& meta, const FaissLoadedIndex* entry,
                         const benzer::SearchOptions& options, const benzer::LabelFilter* filter) {
    ExactChoice choice = {};
    bool prefers = false;
    const benzer::Engine* engine = entry->engine;
    int64 rows = entry->nlabels;
    guarded("faiss index scan", [&] {
        choice.vectors = engine->list_codes_are_vectors();
        prefers = filter != nullptr && choice.vectors &&
                  engine->prefers_exact_subset(options, *filter, rows);
    });
    bool ordered = lists_ordered(meta, entry);
    choice.here =
        ordered && prefers &&
        (options.expected_compared <= 0.0 || exact_pays_in_pages(meta, options, *filter, rows));
    // Rows wider than a page (2 048 dimensions) leave the lists unordered:
    // the service reads them whole all the same.
    choice.to_service =
        choice.vectors && (choice.here || meta.list_count == 1 || (!ordered && prefers));
    return choice;
}

// An IVF-Flat probe on the search service's device (a GPU, or with
// benzer.device = gpu its CPU implementation): the service holds every
// list's rows by label (its copy of the lists, read again when the index
// generation changes), and lists whose labels are in list order are label
// ranges. So the lists this search would visit become one allowed-row
// bitmap (the filter's rows in those lists), and the device computes the
// exact distances to just those rows, batched with the other searches of
// the moment. The lists are the ones PagedSearch visits: the nearest
// planned_lists() of them (nprobe, widened for the filter), then more, one
// by one, until they hold rows_to_fill() allowed rows. Adaptive probes
// (whose stop depends on the distances seen) and indexes with rows in
// list tails stay in the backend. Returns false when it did not run.
bool probe_in_service(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                      const float* query, int64 k, const benzer::SearchOptions& options,
                      const benzer::LabelFilter* filter, float* distances, benzer::Label* labels,
                      int64* found, benzer::SearchStats* stats, MemoryContext context) {
    int64 rows = entry->nlabels;
    if (!service_wants_device(rows) || !service_may_answer(index)) return false;
    benzer::Engine* engine = entry->engine;
    auto* search = ContextOwned<benzer::PagedSearch>::create(context);
    guarded("faiss index scan", [&] {
        search->object = new benzer::PagedSearch(*engine, query, k, options, filter, rows, 0);
    });
    benzer::PagedSearch* probe = search->object;
    int64 planned = probe->planned_lists();
    int64 fill = probe->rows_to_fill();
    if (planned <= 0) return false;
    const FaissListRef* directory = entry->lists;
    auto* bits = static_cast<uint8*>(palloc0(static_cast<Size>((rows + 7) / 8)));
    int64 allowed = 0;
    int64 visited = 0;
    for (;;) {
        benzer::Label list = -1;
        guarded("faiss index scan", [&] { list = probe->next_list(); });
        if (list < 0 || list >= static_cast<benzer::Label>(meta.list_count)) break;
        const FaissListRef& ref = directory[list];
        for (int64 label = ref.first_label; label < ref.first_label + ref.rows; label++) {
            if (label < 0 || label >= rows) break;
            if (filter != nullptr && !filter->contains(label)) continue;
            bits[label >> 3] |= static_cast<uint8>(1 << (label & 7));
            allowed++;
        }
        visited++;
        if (visited >= planned && allowed >= fill) break;
    }
    benzer::LabelFilter lists_filter;
    lists_filter.bits = bits;
    lists_filter.count = rows;
    lists_filter.allowed = allowed;
    auto* candidates = ContextOwned<benzer::ExactCandidates>::create(context);
    guarded("faiss index scan",
            [&] { candidates->object = new benzer::ExactCandidates(*engine, query, k); });
    benzer::SearchStats exact_stats;
    if (!search_in_service(index, meta, rows, k, &lists_filter, false, candidates->object,
                           &exact_stats)) {
        if (stats != nullptr) stats->service_why_not = exact_stats.service_why_not;
        return false;
    }
    benzer::ExactCandidates* c = candidates->object;
    guarded("faiss index scan", [&] { *found = c->finish(distances, labels, &exact_stats); });
    if (stats != nullptr) {
        stats->rounds++;
        stats->selector_used = stats->selector_used || filter != nullptr;
        stats->candidates += *found;
        stats->lists += visited;
        stats->compared += allowed;
        stats->nprobe = Max(stats->nprobe, static_cast<int>(visited));
        stats->service += exact_stats.service;
        stats->service_gpu = stats->service_gpu || exact_stats.service_gpu;
        stats->service_batch = Max(stats->service_batch, exact_stats.service_batch);
    }
    return true;
}

}  // namespace

void faiss_summarize_lists(const FaissMeta& meta, const FaissListRef* directory,
                           const int64* tail_rows, FaissListSummary* summary) {
    *summary = {};
    summary->lists = meta.list_count;
    for (uint32 list = 0; list < meta.list_count; list++) {
        int64 rows = directory[list].rows + (tail_rows != nullptr ? tail_rows[list] : 0);
        summary->rows += rows;
        summary->largest = Max(summary->largest, rows);
        if (rows == 0) summary->empty_lists++;
    }
    if (summary->rows > 0 && summary->lists > 0)
        summary->imbalance = static_cast<double>(summary->largest) /
                             (static_cast<double>(summary->rows) / summary->lists);
}

int64 faiss_paged_search(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                         const float* query, int64 k, const benzer::SearchOptions& options,
                         const benzer::LabelFilter* filter, const FaissTailSearch* tails,
                         float* distances, benzer::Label* labels, benzer::SearchStats* stats) {
    benzer::Engine* engine = entry->engine;
    // Tails to read: only where rows went into them.
    if (entry->tail_blocks == nullptr || !faiss_has_tails(meta) || meta.tail_rows <= 0)
        tails = nullptr;
    const BlockNumber* tail_blocks = entry->tail_blocks;
    int64 extra_rows = tails != nullptr ? tails->rows : 0;
    int64 rows = entry->nlabels;
    const FaissListRef* directory = entry->lists;
    // Labels in list order, whole entries a page: pages are found without
    // following chains, and skipped when they hold no allowed row.
    bool ordered = lists_ordered(meta, entry);
    // The search objects belong to a context of their own: an ERROR or a
    // cancel while pages are read frees them with the query's memory.
    MemoryContext context = AllocSetContextCreate(CurrentMemoryContext, "benzer faiss list search",
                                                  ALLOCSET_SMALL_SIZES);
    MemoryContext old = MemoryContextSwitchTo(context);
    int64 found = 0;
    ExactChoice choice = choose_exact(meta, entry, options, filter);
    bool exact = choice.here;
    // An exact search (a small filter, or a Flat index: one list of
    // vectors) goes to the search service first, which answers the exact
    // searches of all connections together from one copy of the rows.
    bool served = false;
    // Without a service to ask, only the backend's own exact path needs the
    // candidates.
    if (choice.to_service && (choice.here || service_may_answer(index))) {
        auto* candidates = ContextOwned<benzer::ExactCandidates>::create(context);
        guarded("faiss index scan",
                [&] { candidates->object = new benzer::ExactCandidates(*engine, query, k); });
        served =
            search_in_service(index, meta, rows, k, filter, choice.here, candidates->object, stats);
        bool same = true;
        if (served)
            same = search_all_tails(index, meta, tail_blocks, tails, candidates->object);
        else if (exact)
            // A small filter: exact distances to just its rows.
            same = search_allowed_rows(index, meta, directory, entry->list_blocks, filter,
                                       tail_blocks, tails, candidates->object);
        if (!same) raise_merged_during_search(index);
        if (served || exact) {
            benzer::ExactCandidates* c = candidates->object;
            guarded("faiss index scan", [&] { found = c->finish(distances, labels, stats); });
        }
    }
    // A fixed probe of IVF-Flat lists on a device, when the service has one.
    if (!served && !exact && choice.vectors && ordered && tails == nullptr &&
        probe_in_service(index, meta, entry, query, k, options, filter, distances, labels, &found,
                         stats, context))
        served = true;
    if (!served && !exact) {
        auto* search = ContextOwned<benzer::PagedSearch>::create(context);
        guarded("faiss index scan", [&] {
            search->object =
                new benzer::PagedSearch(*engine, query, k, options, filter, rows, extra_rows);
        });
        bool same = ordered ? search_ordered_lists(index, meta, directory, entry->list_blocks,
                                                   filter, tail_blocks, tails, search->object)
                            : search_chained_lists(index, meta, directory, tail_blocks, tails,
                                                   search->object);
        if (!same) raise_merged_during_search(index);
        benzer::PagedSearch* s = search->object;
        guarded("faiss index scan", [&] { found = s->finish(distances, labels, stats); });
    }
    MemoryContextSwitchTo(old);
    MemoryContextDelete(context);
    return found;
}

void faiss_paged_search_many(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                             const float* queries, int64 nq, int64 k,
                             const benzer::SearchOptions& options,
                             const benzer::LabelFilter* filter, const FaissTailSearch* tails,
                             float* distances, benzer::Label* labels, int64* found,
                             benzer::SearchStats* stats) {
    ExactChoice choice = choose_exact(meta, entry, options, filter);
    bool* done = static_cast<bool*>(palloc0(sizeof(bool) * Max(nq, static_cast<int64>(1))));
    if (nq > 1 && choice.to_service && service_may_answer(index)) {
        const FaissTailSearch* tail_search =
            entry->tail_blocks != nullptr && faiss_has_tails(meta) && meta.tail_rows > 0 ? tails
                                                                                         : nullptr;
        // Every query goes to the search service at once, so that it answers
        // them with one pass over the rows; the objects belong to a context of
        // their own, freed with the query's memory on an ERROR.
        MemoryContext context = AllocSetContextCreate(
            CurrentMemoryContext, "benzer faiss batch search", ALLOCSET_DEFAULT_SIZES);
        MemoryContext old = MemoryContextSwitchTo(context);
        auto** candidates =
            static_cast<benzer::ExactCandidates**>(palloc(sizeof(benzer::ExactCandidates*) * nq));
        auto* requests = static_cast<ServiceQuery*>(palloc(sizeof(ServiceQuery) * nq));
        auto* answers = static_cast<ServiceAnswer*>(palloc(sizeof(ServiceAnswer) * nq));
        auto* sent = static_cast<int64*>(palloc(sizeof(int64) * nq));
        benzer::Engine* engine = entry->engine;
        int64 want = Max(k, static_cast<int64>(1));
        int nsent = 0;
        for (int64 i = 0; i < nq; i++) {
            auto* holder = ContextOwned<benzer::ExactCandidates>::create(context);
            const float* query = queries + i * meta.dimensions;
            guarded("faiss index scan",
                    [&] { holder->object = new benzer::ExactCandidates(*engine, query, k); });
            benzer::ExactCandidates* c = holder->object;
            candidates[i] = c;
            // A zero cosine query is left to the backend (every distance NaN).
            if (c->zero_query()) continue;
            requests[nsent] = service_request(meta, c, k, filter, entry->nlabels, choice.here);
            answers[nsent] = {};
            answers[nsent].scores = static_cast<float*>(palloc(sizeof(float) * want));
            answers[nsent].labels =
                static_cast<benzer::Label*>(palloc(sizeof(benzer::Label) * want));
            sent[nsent++] = i;
        }
        ServiceOutcome outcome = {};
        int served = nsent > 0 ? service_search_many(index, meta.generation, requests, nsent,
                                                     answers, &outcome)
                               : 0;
        service_note_outcome(stats, outcome, served);
        int64 allowed = filter != nullptr ? filter->allowed : entry->nlabels;
        for (int j = 0; j < nsent; j++) {
            if (!answers[j].served) continue;
            int64 i = sent[j];
            benzer::ExactCandidates* c = candidates[i];
            absorb_answer(c, answers[j], allowed);
            if (!search_all_tails(index, meta, entry->tail_blocks, tail_search, c))
                raise_merged_during_search(index);
            guarded("faiss index scan",
                    [&] { found[i] = c->finish(distances + i * k, labels + i * k, stats); });
            done[i] = true;
        }
        MemoryContextSwitchTo(old);
        MemoryContextDelete(context);
    }
    for (int64 i = 0; i < nq; i++) {
        if (done[i]) continue;
        found[i] = faiss_paged_search(index, meta, entry, queries + i * meta.dimensions, k, options,
                                      filter, tails, distances + i * k, labels + i * k, stats);
        CHECK_FOR_INTERRUPTS();
    }
    pfree(done);
}
