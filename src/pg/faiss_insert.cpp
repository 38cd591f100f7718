// faiss_insert.cpp: INSERT into a faiss index.
//
// An IVF index whose lists live in pages takes a new row straight into
// its list's tail (faiss_tails.h): the row is assigned and encoded with the
// trained structure this backend loads (the coarse centroids and the
// codebooks, not the lists), and only the pages it touches are written.
// A code wider than a page (IVF-Flat beyond about 2 000 dimensions) is
// kept out of line, in a page chain the tail item points to. Every other
// index (untrained, HNSW, Flat, transforms) appends the row to the pending
// chain instead, where
// every search finds it by exact distance until a merge (VACUUM or
// benzer_index_merge) folds it into the Faiss structure.
#include "pg/faiss.h"

#include "pg/faiss_attributes.h"
#include "pg/faiss_cache.h"
#include "pg/faiss_pages.h"
#include "pg/faiss_tails.h"
#include "pg/guarded.h"
#include "pg/vector.h"

extern "C" {
#include "utils/memutils.h"
#include "utils/rel.h"
}

namespace {

// Appends the row to its list's tail if the index takes rows there.
// Returns false when it does not (the row then goes to the pending chain).
bool insert_into_list(Relation index, ItemPointer tid, const Vector* v, const uint8* attributes,
                      Size attribute_bytes) {
    FaissMeta meta;
    faiss_read_meta(index, &meta);
    if (!faiss_has_tails(meta) || meta.dimensions != v->dim ||
        !faiss_tail_fits(meta, attribute_bytes))
        return false;
    // The loaded structure stays pinned only for this row: the pin is
    // released however the insert ends (an ERROR resets the context).
    MemoryContext context =
        AllocSetContextCreate(CurrentMemoryContext, "benzer faiss insert", ALLOCSET_SMALL_SIZES);
    MemoryContext old = MemoryContextSwitchTo(context);
    // The slot lives in the context, which outlives this frame on an ERROR.
    auto** slot = static_cast<FaissLoadedIndex**>(palloc0(sizeof(FaissLoadedIndex*)));
    faiss_cache_release_on_reset(context, slot);
    *slot = faiss_cache_acquire(index, meta);
    FaissLoadedIndex* entry = *slot;
    bool done = false;
    if (entry != nullptr && entry->engine != nullptr && entry->tail_blocks != nullptr) {
        benzer::Engine* engine = entry->engine;
        auto* code = static_cast<uint8*>(palloc(Max(meta.list_code_size, 1u)));
        int64 list = -1;
        guarded("could not insert into faiss index",
                [&] { list = engine->encode_for_list(v->x, code); });
        faiss_append_tail(index, meta, entry->tail_blocks, list, tid, code, attributes,
                          attribute_bytes);
        done = true;
    }
    MemoryContextSwitchTo(old);
    MemoryContextDelete(context);  // releases the pin
    return done;
}

}  // namespace

bool faiss_insert(Relation index, Datum* values, bool* isnull, ItemPointer heap_tid, Relation,
                  IndexUniqueCheck, bool, IndexInfo*) {
    if (isnull[0]) return false;  // NULL vectors are not indexed
    Vector* v = key_vector(values[0], TupleDescAttr(RelationGetDescr(index), 0)->atttypid);
    if (v->dim > faiss_max_dimensions())
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("faiss indexes support at most %d dimensions, not %d",
                               faiss_max_dimensions(), v->dim)));
    faiss_check_norm(index, v->x, v->dim, "vector");
    // Filter columns travel with the pending row.
    benzer::AttributeKind kinds[kFaissMaxFilterColumns];
    int filter_columns = faiss_filter_kinds(index, kinds);
    uint8* attributes = nullptr;
    Size attribute_bytes = 0;
    if (filter_columns > 0) {
        auto* row = static_cast<benzer::AttributeValue*>(
            palloc0(sizeof(benzer::AttributeValue) * filter_columns));
        faiss_attribute_values(kinds, filter_columns, index, values, isnull, row);
        attributes = faiss_encode_attributes(kinds, filter_columns, row, &attribute_bytes);
    }
    if (!insert_into_list(index, heap_tid, v, attributes, attribute_bytes))
        faiss_append_pending(index, heap_tid, v->x, v->dim, attributes, attribute_bytes);
    return false;
}
