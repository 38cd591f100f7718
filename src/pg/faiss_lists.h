// faiss_lists.h: IVF lists in index pages, read through shared buffers.
//
// An IVF index (IVF-Flat, IVF-SQ, IVF-PQ; no transform, no RFlat) keeps
// its lists in pages of the index itself, one chain of pages a list, a
// directory (FaissListRef per list) that says where each chain starts and
// which labels it holds, and a page table of every list page's block. A backend loads only the
// trained structure (the coarse centroids: nlist x dim floats), the directory and the label map; a
// search reads just the pages of the lists it probes, through shared buffers, so every connection
// shares one copy, nothing large is loaded by a new connection, and an index larger than memory
// works (pages come and go like any index's).
//
// A list page holds an 8-byte header (FaissListPageHeader), then either
// whole entries (labels first, then their codes, so the page can be
// scanned in place) or, when one entry (label + code: dim floats for
// IVF-Flat) is larger than a page, a piece of one entry: such entries start on a fresh page and
// straddle as many pages as they need, so any dimension fits.
#pragma once

#include "core/attributes.h"
#include "core/engine.h"
#include "pg/faiss_pages.h"

extern "C" {
#include "utils/hsearch.h"
}

// One list in the directory.
struct FaissListRef {
    BlockNumber head;  // InvalidBlockNumber: the list is empty
    uint32 pages;
    int64 rows;
    // The list's rows carry labels first_label .. first_label + rows - 1 in
    // list order (Engine::relabel_by_list), or first_label is -1. With
    // ordered labels a page's labels are known without reading it.
    int64 first_label;
    uint32 first_page;  // the list's first page in the page table
    uint32 unused;
};

// The start of every list page's payload.
struct FaissListPageHeader {
    uint32 count;  // entries starting on this page
    uint32 bytes;  // payload bytes after the header
};

// Whether a search of this index reads its lists from pages.
inline bool faiss_lists_paged(const FaissMeta& meta) {
    return meta.list_directory.head != InvalidBlockNumber;
}

// Writes engine's lists (engine->lists_pageable()) as list chains of
// meta's generation, and their directory; fills meta's list fields.
// log_each as faiss_write_chain.
void faiss_write_lists(Relation index, FaissMeta* meta, benzer::Engine* engine, bool log_each);

// Reads meta's list directory (palloc'd, meta.list_count entries). Returns
// false on a race with a merge (faiss_read_chain).
bool faiss_read_list_directory(Relation index, const FaissMeta& meta, FaissListRef** directory);

// Appends the entries of every list to shell, a copy of the structure with
// no rows, and checks the result (a merge reads the lists back). The
// caller holds the merge lock.
void faiss_load_lists(Relation index, const FaissMeta& meta, benzer::Engine* shell);

// Frees the pages searches read while they run, after a merge switched the
// metapage away from them: meta's label chain (faiss_cache_label_tid) and,
// for lists in pages, the list pages, directory and tails. Unless a search
// may still read them: they are then reclaimed later as orphans. Returns
// whether it freed them.
bool faiss_free_lists(Relation index, const FaissMeta& meta);

// Reads meta's page table (every list page's block, list by list;
// palloc'd). Returns false on a race with a merge.
bool faiss_read_list_page_table(Relation index, const FaissMeta& meta, BlockNumber** blocks);

// Rows in list tails (faiss_tails.h) for a search: each probed list's tail
// is read right after the list, its entries judged by the filter
// conditions on their own values (the label filter knows only the lists'
// labels), and those already returned skipped.
struct FaissTailSearch {
    int64 rows;  // tail entries that may exist (meta.tail_rows)
    const benzer::AttributeKind* kinds;
    int nkinds;
    const benzer::Condition* conditions;
    int nconditions;
    HTAB* returned;  // TIDs (keys ItemPointerData) a scan returned already, or null
};

// One search of the lists of a loaded index (entry->lists set) for the k
// nearest rows filter allows (see benzer::PagedSearch): the same settings
// and results as Engine::search() on the index with its lists in memory.
// With tails, the rows inserted since are searched with their lists, and
// come back with labels faiss_is_tail_label() (faiss_tail_label_tid gives
// their TIDs). Returns the number found; distances/labels receive them
// nearest first. ERRORs (40001) if a merge replaced the lists during the
// search.
struct FaissLoadedIndex;
int64 faiss_paged_search(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                         const float* query, int64 k, const benzer::SearchOptions& options,
                         const benzer::LabelFilter* filter, const FaissTailSearch* tails,
                         float* distances, benzer::Label* labels, benzer::SearchStats* stats);

// faiss_paged_search for nq queries (row-major), the same settings and
// filter: found[i] results at distances/labels + i * k. The exact ones are
// handed to the search service together, which answers them with one pass
// over the rows (benzer_batch_search).
void faiss_paged_search_many(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                             const float* queries, int64 nq, int64 k,
                             const benzer::SearchOptions& options,
                             const benzer::LabelFilter* filter, const FaissTailSearch* tails,
                             float* distances, benzer::Label* labels, int64* found,
                             benzer::SearchStats* stats);

// Walks one list's pages in order, checking each page, and calls
// visit(arg, labels, codes, n) for each run of whole entries. visit runs
// with a page share-locked: it must not raise an ERROR, and returns false
// to stop the walk. Returns false when a page of another generation was
// met; ERRORs (XX002) on a damaged page or a row count that disagrees with
// the directory.
using FaissListVisitor = bool (*)(void* arg, const benzer::Label* labels, const uint8* codes,
                                  int64 n);
bool faiss_walk_list(Relation index, const FaissMeta& meta, const FaissListRef& list,
                     FaissListVisitor visit, void* arg);

// Pages and rows of the lists, and how far the list sizes have drifted:
// the largest list's rows over the mean.
struct FaissListSummary {
    int64 lists;
    int64 empty_lists;
    int64 rows;
    int64 largest;
    double imbalance;  // largest / mean, 0 without rows
};
// tail_rows, when given, adds each list's rows inserted since (list tails).
void faiss_summarize_lists(const FaissMeta& meta, const FaissListRef* directory,
                           const int64* tail_rows, FaissListSummary* summary);
