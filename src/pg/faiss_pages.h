// faiss_pages.h: how a faiss index lives in PostgreSQL pages.
//
//   block 0           the metapage (FaissMeta)
//   blob chain        the serialised Faiss index, cut across pages
//   label chain       heap TID of every label 0..n-1 (6 bytes each)
//   tombstone chain   a bitmap over labels: rows VACUUM found dead
//   attribute chain   the filter columns' values of every label
//                     (core/attributes.h), when the index has any
//   pending chain     rows inserted since the last build or merge
//                     (TID + vector + filter values), searched exactly
//   wide rows         the vector of a pending row too large for one page
//                     (more than about 2 000 dimensions), cut across a
//                     chain of its own that the pending item points to
//   list directory    IVF-Flat/SQ/PQ: where each IVF list's pages start
//   list chains       IVF-Flat/SQ/PQ: each list's entries (label + code),
//                     read by searches through shared buffers
//                     (faiss_lists.h); the blob then holds the trained
//                     structure with empty lists (the coarse centroids)
//   list tails        IVF-Flat/SQ/PQ: rows inserted since, each in its
//                     list's tail (TID + code + filter values), and the
//                     directory of tails (faiss_tails.h)
//
// A "generation" is one immutable triple of blob, label and tombstone
// chains (only tombstone bits change in place). A merge writes the chains
// of the next generation on fresh pages, switches the metapage in one WAL
// record, and frees the old pages. Every chain page carries the generation
// it was written for in its special space; a reader that finds a page of
// another generation knows it raced with a merge (the page was freed and
// reused) and starts over. So readers never lock more than one page at a
// time and never block a merge.
#pragma once

#include "pg/faiss.h"

#include "core/tuning.h"

extern "C" {
#include "access/generic_xlog.h"
#include "storage/block.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
}

constexpr uint32 kFaissMagic = 0xBE52E401u;
// Version 2: IVF lists in pages (list_directory set). An index without
// them stays version 1, which benzer 0.1 reads too; 0.1 refuses version 2
// ("REINDEX") instead of searching an empty blob.
constexpr uint32 kFaissFormatVersion = 1;
constexpr uint32 kFaissFormatVersionPagedLists = 2;
constexpr BlockNumber kFaissMetaBlock = 0;
constexpr int kFaissMaxFactory = 256;

enum FaissPageKind : uint16 {
    kFaissPageMeta = 1,
    kFaissPageBlob = 2,
    kFaissPageLabels = 3,
    kFaissPageTombstones = 4,
    kFaissPagePending = 5,
    kFaissPageAttributes = 6,
    kFaissPageList = 7,
    kFaissPageListDirectory = 8,
    kFaissPageListPageTable = 9,
    kFaissPageWideRow = 10,
    kFaissPageListTails = 11,
    kFaissPageListTail = 12,
};

// The special space of every page.
struct FaissPageOpaque {
    uint32 generation;  // the generation the page was written for
    BlockNumber next;   // next page of the chain, or InvalidBlockNumber
    uint16 kind;        // FaissPageKind
    uint16 unused;
    uint32 sequence;  // position in the chain, from 0
};

// A chain of pages holding one byte stream.
struct FaissChain {
    BlockNumber head;  // InvalidBlockNumber when empty
    uint32 pages;
    uint64 bytes;
};

// The metapage's contents.
struct FaissMeta {
    uint32 magic;
    uint32 version;
    int32 dimensions;  // 0 until the first vector is seen
    int32 metric;      // benzer::Metric
    uint32 generation;
    int32 unused;
    char factory[kFaissMaxFactory];  // the resolved factory string; "" when untrained
    FaissChain blob;
    FaissChain labels;
    FaissChain tombstones;
    FaissChain attributes;  // head InvalidBlockNumber: no filter columns
    int64 main_rows;        // labels in the Faiss structure
    int64 dead_rows;        // of which tombstoned
    BlockNumber pending_head;
    BlockNumber pending_tail;
    int64 built_rows;  // rows at CREATE INDEX / REINDEX
    int64 merges;      // merges since the build
    // Search settings measured for recall targets (core/tuning.h) at the
    // last build or merge. Metapages written before it existed read as
    // zeros: kind kNone, the old fixed defaults.
    benzer::TuningTable tuning;
    // IVF lists in pages (faiss_lists.h). Head InvalidBlockNumber (old
    // metapages read zeros, which faiss_read_meta maps to it): the lists
    // live in the blob with the rest of the Faiss structure.
    FaissChain list_directory;
    FaissChain list_page_table;  // BlockNumber of every list page, list by list
    uint64 list_pages;           // pages of all list chains
    uint32 list_count;           // IVF lists (entries in the directory)
    uint32 list_code_size;
    // Rows inserted since the lists were written go straight into their
    // list, on pages of their own after it (faiss_tails.h): where each
    // list's tail starts and ends, and how many entries they hold (an upper
    // bound: VACUUM's deletions are counted just after they are made).
    // Head InvalidBlockNumber: rows wait in the pending chain instead.
    FaissChain list_tails;
    int64 tail_rows;
};

// A pending row, stored as one item on a pending page: the vector, then
// attribute_bytes of encoded filter values (AttributeStore::encode_row).
// A vector too large for a page (faiss_pending_fits) lives out of line, in
// a chain of kFaissPageWideRow pages of the same generation: the item then
// holds a FaissWideVector where the vector would be, and attribute_bytes
// carries kFaissPendingOutOfLine. Such pages are read only while the
// pending page that points to them is locked, so VACUUM, which deletes the
// item under an exclusive lock before it frees them, never frees pages a
// reader is about to read.
struct FaissPendingTuple {
    ItemPointerData tid;
    uint16 attribute_bytes;
    float vector[FLEXIBLE_ARRAY_MEMBER];
};

constexpr uint16 kFaissPendingOutOfLine = 0x8000;

struct FaissWideVector {
    BlockNumber head;
    uint32 pages;
};

// A byte string too large for an item (a pending row's vector, a list tail
// entry's IVF-Flat code), written as a chain of its own of generation,
// WAL-logged page by page, before the item that points to it. Read it only
// while that item's page is locked; free it after deleting the item.
FaissWideVector faiss_write_wide(Relation index, uint32 generation, const char* data, uint64 bytes);
// Copies it (bytes long) into out. False when a page is not the chain's.
bool faiss_read_wide(Relation index, const FaissWideVector& wide, uint32 generation, char* out,
                     uint64 bytes);
void faiss_free_wide(Relation index, const FaissWideVector& wide, uint32 generation);

inline bool faiss_pending_out_of_line(const FaissPendingTuple* tuple) {
    return (tuple->attribute_bytes & kFaissPendingOutOfLine) != 0;
}

inline Size faiss_pending_attribute_bytes(const FaissPendingTuple* tuple) {
    return tuple->attribute_bytes & ~kFaissPendingOutOfLine;
}

// The encoded filter values of a pending tuple of dim dimensions.
inline const uint8* faiss_pending_attributes(const FaissPendingTuple* tuple, int dim) {
    const char* start = reinterpret_cast<const char*>(tuple->vector);
    return reinterpret_cast<const uint8*>(start + (faiss_pending_out_of_line(tuple)
                                                       ? sizeof(FaissWideVector)
                                                       : sizeof(float) * static_cast<Size>(dim)));
}

inline Size faiss_pending_tuple_size(int dim, Size attribute_bytes) {
    return MAXALIGN(offsetof(FaissPendingTuple, vector) + sizeof(float) * static_cast<Size>(dim) +
                    attribute_bytes);
}

inline Size faiss_pending_out_of_line_size(Size attribute_bytes) {
    return MAXALIGN(offsetof(FaissPendingTuple, vector) + sizeof(FaissWideVector) +
                    attribute_bytes);
}

// The size of the item a pending tuple occupies.
inline Size faiss_pending_item_size(const FaissPendingTuple* tuple, int dim) {
    Size attribute_bytes = faiss_pending_attribute_bytes(tuple);
    return faiss_pending_out_of_line(tuple) ? faiss_pending_out_of_line_size(attribute_bytes)
                                            : faiss_pending_tuple_size(dim, attribute_bytes);
}

// The largest pending tuple a page holds.
Size faiss_max_pending_tuple_size(void);

inline FaissPageOpaque* faiss_page_opaque(Page page) {
    return reinterpret_cast<FaissPageOpaque*>(PageGetSpecialPointer(page));
}

inline FaissMeta* faiss_page_meta(Page page) {
    return reinterpret_cast<FaissMeta*>(PageGetContents(page));
}

// Registers buffer, a fresh page, in a GenericXLog record as a page of
// kind and generation holding one item, linked after tail_buffer's page
// when that is valid (registered too). The caller points its own head or
// tail at the new page.
void faiss_add_linked_item_page(GenericXLogState* state, Buffer buffer, Buffer tail_buffer,
                                FaissPageKind kind, uint32 generation, const void* item, Size size);

// Bytes of payload a chain page holds.
Size faiss_chain_page_capacity(void);

// Initialises page as an empty page of the given kind and generation.
void faiss_init_page(Page page, FaissPageKind kind, uint32 generation);

// Reads a copy of the metapage (share lock held only while copying).
// ERRORs if the relation is not a faiss index of this format.
void faiss_read_meta(Relation index, FaissMeta* meta);

// Writes a fresh metapage into block 0 of the given fork (build).
void faiss_write_new_meta(Relation index, ForkNumber fork, const FaissMeta* meta, bool wal_log);

// Replaces the metapage contents with meta in one GenericXLog record.
void faiss_update_meta(Relation index, const FaissMeta* meta);

// A new page for writing: from the free space map (skipping pages of the
// generation in use), or by extending the relation. Returned pinned and
// exclusively locked.
Buffer faiss_new_buffer(Relation index, uint32 in_use_generation);

// Writes bytes as a chain of pages of the given kind and generation (the
// generation before it is taken to be the one in use).
// During a build (log_each = false) pages are not WAL-logged one by one;
// the builder logs the whole relation at the end. Otherwise each page is
// logged as a full-page image.
FaissChain faiss_write_chain(Relation index, FaissPageKind kind, uint32 generation,
                             const char* data, uint64 bytes, bool log_each);

// Writes a chain whose pages the caller fills: fill(arg, contents,
// capacity, sequence) writes one page's payload (at most capacity bytes)
// and returns its length, setting *more while further pages follow. Pages
// are WAL-logged as faiss_write_chain's are.
using FaissPageFill = Size (*)(void* arg, char* contents, Size capacity, uint32 sequence,
                               bool* more);
// blocks, when given, receives each page's block number in chain order.
FaissChain faiss_write_pages(Relation index, FaissPageKind kind, uint32 generation, bool log_each,
                             FaissPageFill fill, void* arg, BlockNumber* blocks = nullptr);

// Bytes of payload on a chain page (what its writer's fill returned).
Size faiss_page_payload_length(Page page);

// Reads a whole chain into a palloc'd buffer (MemoryContextAllocHuge).
// Returns false if a page of another generation was met (a merge raced us):
// the caller re-reads the metapage and tries again.
bool faiss_read_chain(Relation index, const FaissChain& chain, FaissPageKind kind,
                      uint32 generation, char** data);

// Reads and share-locks page `sequence` of a chain at block. Returns an
// invalid buffer (nothing held) when the page is not that page of that
// generation's chain: a merge raced the reader.
Buffer faiss_lock_chain_page(Relation index, BlockNumber block, FaissPageKind kind,
                             uint32 generation, uint32 sequence);

// The block of each page of a chain, in order (palloc'd). Returns false on
// a race with a merge (see faiss_read_chain).
bool faiss_chain_blocks(Relation index, const FaissChain& chain, FaissPageKind kind,
                        uint32 generation, BlockNumber** blocks);

// Copies bytes of a chain's contents from offset, reading only the pages
// that hold them (blocks from faiss_chain_blocks; every page but the last
// is full). Returns false when a page is no longer the chain's.
bool faiss_chain_read_at(Relation index, const FaissChain& chain, const BlockNumber* blocks,
                         FaissPageKind kind, uint32 generation, uint64 offset, char* out,
                         Size bytes);

// A chain read in parts, each into a destination of the caller's choosing
// (a loaded index copies its coarse centroids straight into the quantizer).
struct FaissChainReader {
    FaissChain chain;
    FaissPageKind kind;
    uint32 generation;
    BlockNumber block;  // the page holding the next byte
    uint32 sequence;    // its place in the chain
    Size page_offset;   // the next byte's offset in its payload
    uint64 delivered;   // bytes read so far
};

FaissChainReader faiss_chain_reader(const FaissChain& chain, FaissPageKind kind, uint32 generation);

// Copies the chain's next bytes into out. Returns false on a race with a
// merge (see faiss_read_chain); ERROR when fewer bytes are left.
bool faiss_chain_read(Relation index, FaissChainReader* reader, char* out, uint64 bytes);

// Adds the chain's pages to the free space map (after a merge switched the
// metapage away from them).
void faiss_free_chain(Relation index, const FaissChain& chain, FaissPageKind kind,
                      uint32 generation);

// Lists in the free space map every page that belongs to no chain of
// meta's generation (unless searches may still read old list pages: see
// faiss_lock_lists_for_reading), when the index has grown well beyond what its chains
// use: pages left behind by a merge that failed or crashed half-way, and
// freed pages a crash dropped from the (unlogged) free space map. Called
// by a merge before it writes, under its ExclusiveLock, so a merge reuses
// them even when crashes keep the free space map from ever being flushed.
void faiss_reclaim_orphans(Relation index, const FaissMeta& meta);

// Searches read an index's list pages (faiss_lists.h) for as long as a
// scan runs, not in one go at its start, so the list pages of a generation
// a merge replaced must not be reused while a search may still read them.
// Searches of such an index hold this lock in share mode until their
// transaction ends; whoever frees pages of an older generation (a merge,
// faiss_reclaim_orphans) takes it exclusively, without waiting, and leaves
// the pages for a later merge when it cannot.
void faiss_lock_lists_for_reading(Relation index);
bool faiss_try_lock_lists_for_freeing(Relation index);
void faiss_unlock_lists_for_freeing(Relation index);

// Sets bits in the tombstone chain (labels sorted ascending), WAL-logged.
void faiss_set_tombstones(Relation index, const FaissMeta& meta, const int64* labels, int64 count);

// Appends one pending row (WAL-logged). The index's dimension must be dim;
// an index without one (untyped column, no rows yet) takes dim. ERRORs
// (22000) otherwise.
void faiss_append_pending(Relation index, ItemPointer tid, const float* vector, int dim,
                          const uint8* attributes, Size attribute_bytes);

// Walks the pending chain of one generation, page by page:
//
//     FaissPendingWalk walk(meta);
//     while ((buffer = faiss_pending_walk_next(index, &walk, mode)) != InvalidBuffer) {
//         ... the page, locked in mode ...
//         UnlockReleaseBuffer(buffer);
//     }
//     if (walk.raced) ... a merge took the chain: re-read the metapage
//
// A page that is new, not a pending page, or of another generation ends
// the walk with raced set.
struct FaissPendingWalk {
    BlockNumber next;
    uint32 generation;
    bool raced = false;
    explicit FaissPendingWalk(const FaissMeta& meta)
        : next(meta.pending_head), generation(meta.generation) {}
};
Buffer faiss_pending_walk_next(Relation index, FaissPendingWalk* walk, int mode);

// All pending rows: parallel arrays, palloc'd. Returns false on a
// generation race (see faiss_read_chain).
struct FaissPendingRows {
    int64 count;
    ItemPointerData* tids;
    float* vectors;             // count * dim
    uint8* attributes;          // encoded filter values, concatenated
    uint64* attribute_offsets;  // count + 1 offsets into attributes
};
bool faiss_read_pending(Relation index, const FaissMeta& meta, FaissPendingRows* rows);

// Deletes pending rows whose TID the callback reports dead. Returns the
// number deleted; *remaining gets the number left.
int64 faiss_vacuum_pending(Relation index, const FaissMeta& meta, IndexBulkDeleteCallback callback,
                           void* state, int64* remaining);

// Frees the pending pages of meta (after a merge folded them in).
void faiss_free_pending(Relation index, const FaissMeta& meta);

// Forgets the dimension an untyped, untrained index took from its first
// row, when no row is left in it (VACUUM, after a rolled-back first
// INSERT). Returns whether it did.
bool faiss_reset_dimensions(Relation index);

// Adds delta to the metapage's dead-row count (WAL-logged).
void faiss_add_dead_rows(Relation index, int64 delta);

// Number of pending rows (walks the pending pages).
int64 faiss_count_pending(Relation index, const FaissMeta& meta);
