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

#include "core/engine.h"
#include "pg/context_owned.h"
#include "pg/faiss_cache.h"
#include "pg/guard.h"
#include "pg/guarded.h"

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
    guarded("could not write faiss lists", [&] {
        nlist = engine->nlist();
        code_size = engine->list_code_size();
    });
    auto* directory = static_cast<FaissListRef*>(
        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(FaissListRef) * Max(nlist, 1)));
    uint64 pages = 0;
    for (int64 list = 0; list < nlist; list++) {
        ListFill fill = {};
        guarded("could not write faiss lists", [&] {
            fill.rows = engine->list_size(list);
            fill.labels = engine->list_labels(list);
            fill.codes = engine->list_codes(list);
        });
        fill.code_size = code_size;
        fill.per_page = entries_per_page(sizeof(benzer::Label) + code_size);
        FaissListRef& ref = directory[list];
        ref = {InvalidBlockNumber, 0, fill.rows};
        if (fill.rows > 0) {
            FaissChain chain = faiss_write_pages(index, kFaissPageList, meta->generation, log_each,
                                                 fill_list_page, &fill);
            ref.head = chain.head;
            ref.pages = chain.pages;
            pages += chain.pages;
        }
        CHECK_FOR_INTERRUPTS();
    }
    meta->list_directory = faiss_write_chain(
        index, kFaissPageListDirectory, meta->generation, reinterpret_cast<const char*>(directory),
        sizeof(FaissListRef) * static_cast<uint64>(nlist), log_each);
    meta->list_pages = pages;
    meta->list_count = static_cast<uint32>(nlist);
    meta->list_code_size = static_cast<uint32>(code_size);
    pfree(directory);
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
    if (!faiss_lists_paged(meta)) return true;
    if (!faiss_try_lock_lists_for_freeing(index)) return false;
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
    faiss_unlock_lists_for_freeing(index);
    return true;
}

bool faiss_search_lists(Relation index, const FaissMeta& meta, const FaissListRef* directory,
                        benzer::PagedSearch* search) {
    char* scratch = entry_scratch(meta);
    benzer::GuardedError error;
    for (;;) {
        benzer::Label list = -1;
        if (!benzer::run_guarded(error, [&] { list = search->next_list(); })) {
            CHECK_FOR_INTERRUPTS();
            raise_guarded_error(error, "faiss index scan");
        }
        if (list < 0) break;
        if (list >= static_cast<benzer::Label>(meta.list_count))
            ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                            errmsg("faiss index \"%s\": IVF list %lld out of range",
                                   RelationGetRelationName(index), static_cast<long long>(list))));
        bool same_generation = walk_list(
            index, meta, directory[list], scratch,
            [&](const benzer::Label* labels, const uint8* codes, int64 n) {
                return benzer::run_guarded(error, [&] { search->scan(n, codes, labels); });
            });
        if (!same_generation) return false;
        if (error.kind != benzer::ErrorKind::kNone) raise_guarded_error(error, "faiss index scan");
        CHECK_FOR_INTERRUPTS();
    }
    if (scratch != nullptr) pfree(scratch);
    return true;
}

void faiss_summarize_lists(const FaissMeta& meta, const FaissListRef* directory,
                           FaissListSummary* summary) {
    *summary = {};
    summary->lists = meta.list_count;
    for (uint32 list = 0; list < meta.list_count; list++) {
        int64 rows = directory[list].rows;
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
                         const benzer::LabelFilter* filter, float* distances, benzer::Label* labels,
                         benzer::SearchStats* stats) {
    // The search object belongs to a context of its own: an ERROR or a
    // cancel while pages are read frees it with the query's memory.
    MemoryContext context = AllocSetContextCreate(CurrentMemoryContext, "benzer faiss list search",
                                                  ALLOCSET_SMALL_SIZES);
    MemoryContext old = MemoryContextSwitchTo(context);
    auto* search = ContextOwned<benzer::PagedSearch>::create(context);
    benzer::Engine* engine = entry->engine;
    int64 rows = entry->nlabels;
    guarded("faiss index scan", [&] {
        search->object = new benzer::PagedSearch(*engine, query, k, options, filter, rows);
    });
    if (!faiss_search_lists(index, meta, entry->lists, search->object))
        ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                        errmsg("faiss index \"%s\" was merged while a search read it",
                               RelationGetRelationName(index)),
                        errhint("Run the query again.")));
    int64 found = 0;
    benzer::PagedSearch* s = search->object;
    guarded("faiss index scan", [&] { found = s->finish(distances, labels, stats); });
    MemoryContextSwitchTo(old);
    MemoryContextDelete(context);
    return found;
}
