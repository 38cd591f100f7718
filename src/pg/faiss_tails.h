// faiss_tails.h: rows inserted into an IVF index whose lists live in pages.
//
// A build or merge writes each list as a chain of pages holding labels and
// codes (faiss_lists.h). A row inserted afterwards goes straight into its
// list: the backend assigns it to the nearest coarse centroid, encodes it
// as the list stores codes (the vector for IVF-Flat, SQ or PQ codes
// otherwise) and appends it to the list's tail, a chain of ordinary
// PostgreSQL pages after the list whose items carry the heap TID, the code
// and the filter values:
//
//   tail directory    one FaissListTail per list: the tail's first and
//                     last page (InvalidBlockNumber while it has none);
//                     written empty with the lists, updated in place
//   tail pages        items (FaissTailTuple), appended at the last page;
//                     VACUUM deletes dead ones in place
//
// An insert WAL-logs only what it touches (the item, and the directory
// entry and page links when it starts a page), so an index is no longer
// rewritten every merge_threshold rows: a search reads a probed list's
// tail right after the list itself, with the same scanner and the same
// filters, so inserted rows cost a search no more than built ones. Only
// REINDEX (or an explicit benzer_index_merge / compaction) folds tails back
// into the lists.
//
// A tail entry has no label; searches name it by its heap TID, as a label
// from benzer::kExternalLabelBase on (faiss_tail_label), which no filter
// bitmap judges: the search applies the filter conditions to the entry's
// own values instead.
#pragma once

#include "core/attributes.h"
#include "pg/faiss_pages.h"

extern "C" {
#include "utils/hsearch.h"
}

// One list's tail in the directory.
struct FaissListTail {
    BlockNumber head;
    BlockNumber tail;
};

// One inserted row on a tail page: the code (meta.list_code_size bytes),
// then attribute_bytes of encoded filter values. A code too wide for a page
// (IVF-Flat beyond about 2 000 dimensions) lives out of line, in a chain of
// kFaissPageWideRow pages (faiss_write_wide): the item then holds a
// FaissWideVector where the code would be, and attribute_bytes carries
// kFaissTailOutOfLine. Readers read that chain while the tail page is
// locked; VACUUM frees it after deleting the item, a merge with the tails.
struct FaissTailTuple {
    ItemPointerData tid;
    uint16 attribute_bytes;
    uint8 data[FLEXIBLE_ARRAY_MEMBER];
};

constexpr uint16 kFaissTailOutOfLine = 0x8000;

inline bool faiss_tail_out_of_line(const FaissTailTuple* tuple) {
    return (tuple->attribute_bytes & kFaissTailOutOfLine) != 0;
}

inline Size faiss_tail_attribute_bytes(const FaissTailTuple* tuple) {
    return tuple->attribute_bytes & ~kFaissTailOutOfLine;
}

inline Size faiss_tail_tuple_size(Size code_size, Size attribute_bytes) {
    return MAXALIGN(offsetof(FaissTailTuple, data) + code_size + attribute_bytes);
}

// The size of tuple's item (code in line or out of line).
inline Size faiss_tail_item_size(const FaissTailTuple* tuple, Size code_size) {
    return faiss_tail_tuple_size(
        faiss_tail_out_of_line(tuple) ? sizeof(FaissWideVector) : code_size,
        faiss_tail_attribute_bytes(tuple));
}

// The encoded filter values of tuple.
inline const uint8* faiss_tail_attributes(const FaissTailTuple* tuple, Size code_size) {
    return tuple->data + (faiss_tail_out_of_line(tuple) ? sizeof(FaissWideVector) : code_size);
}

// Whether meta's index takes inserted rows into list tails.
inline bool faiss_has_tails(const FaissMeta& meta) {
    return meta.list_tails.head != InvalidBlockNumber;
}

// Whether a row with attribute_bytes of filter values fits a tail page,
// its code in line or, when wider than a page, out of line.
bool faiss_tail_fits(const FaissMeta& meta, Size attribute_bytes);

// The label a search gives a tail entry, and back.
inline benzer::Label faiss_tail_label(const ItemPointerData& tid) {
    return benzer::kExternalLabelBase +
           ((static_cast<benzer::Label>(ItemPointerGetBlockNumberNoCheck(&tid)) << 16) |
            ItemPointerGetOffsetNumberNoCheck(&tid));
}
inline bool faiss_is_tail_label(benzer::Label label) { return label >= benzer::kExternalLabelBase; }
inline ItemPointerData faiss_tail_label_tid(benzer::Label label) {
    ItemPointerData tid;
    uint64 bits = static_cast<uint64>(label - benzer::kExternalLabelBase);
    ItemPointerSet(&tid, static_cast<BlockNumber>(bits >> 16),
                   static_cast<OffsetNumber>(bits & 0xFFFF));
    return tid;
}

// Writes meta's empty tail directory (meta.list_count lists) and sets
// meta.list_tails and meta.tail_rows. log_each as faiss_write_chain.
void faiss_write_tail_directory(Relation index, FaissMeta* meta, bool log_each);

// The tail directory's pages, in order (palloc'd, meta.list_tails.pages).
// Returns false on a race with a merge.
bool faiss_read_tail_directory_blocks(Relation index, const FaissMeta& meta, BlockNumber** blocks);

// Appends an inserted row to its list's tail (WAL-logged, with the
// metapage's tail_rows). directory: faiss_read_tail_directory_blocks().
// The caller holds a lock that keeps merges away (an insert's).
void faiss_append_tail(Relation index, const FaissMeta& meta, const BlockNumber* directory,
                       int64 list, ItemPointer tid, const uint8* code, const uint8* attributes,
                       Size attribute_bytes);

// Entries of tails, copied out: parallel arrays, palloc'd (null while
// count is 0).
struct FaissTailRows {
    int64 count;
    int64 capacity;
    Size code_size;
    int64* lists;
    ItemPointerData* tids;
    uint8* codes;               // count * code_size
    uint8* attributes;          // encoded filter values, concatenated
    uint64* attribute_offsets;  // count + 1 offsets into attributes
    uint64 attribute_capacity;
};
// Empty rows (nothing allocated until a row is added), and back.
void faiss_tail_rows_init(FaissTailRows* rows, Size code_size);
void faiss_tail_rows_free(FaissTailRows* rows);

// Which tail entries a reader wants: those whose filter values satisfy
// the conditions, and whose TID is not in returned (either may be absent).
// Judged as the pages are read, so only wanted codes are copied.
struct FaissTailFilter {
    const benzer::AttributeKind* kinds;
    int nkinds;
    const benzer::Condition* conditions;
    int nconditions;
    HTAB* returned;  // keys ItemPointerData, or null
};

// Appends the entries of one list's tail (those filter wants, when given)
// to rows. Returns false when a page of another generation was met (a race
// with a merge).
bool faiss_read_list_tail(Relation index, const FaissMeta& meta, const BlockNumber* directory,
                          int64 list, FaissTailRows* rows, const FaissTailFilter* filter = nullptr);

// Appends the entries of every tail to rows, list by list. Returns false
// on a race with a merge.
bool faiss_read_tails(Relation index, const FaissMeta& meta, FaissTailRows* rows);

// The entries of every tail (walks the tail pages).
int64 faiss_count_tails(Relation index, const FaissMeta& meta);

// Rows inserted since the last build or merge: in list tails, or waiting
// in the pending chain (what benzer_index_info calls pending_rows).
int64 faiss_count_inserted(Relation index, const FaissMeta& meta);

// Deletes tail entries whose TID the callback reports dead, in place.
// Returns the number deleted; *remaining gets the number left.
int64 faiss_vacuum_tails(Relation index, const FaissMeta& meta, IndexBulkDeleteCallback callback,
                         void* state, int64* remaining);

// Frees meta's tail pages and directory (after a merge folded them into
// the lists of the next generation; the caller holds the lists lock).
void faiss_free_tails(Relation index, const FaissMeta& meta);
