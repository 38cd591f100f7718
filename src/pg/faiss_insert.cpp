// faiss_insert.cpp: INSERT into a faiss index.
//
// New rows do not touch the Faiss structure (most structures cannot take a
// row without rewriting the serialised blob). They are appended to the
// pending chain, where every search finds them by exact distance, and a
// merge (VACUUM or benzer_index_merge) later folds them in.
#include "pg/faiss.h"

#include "pg/faiss_attributes.h"
#include "pg/faiss_pages.h"
#include "pg/vector.h"

extern "C" {
#include "utils/rel.h"
}

bool faiss_insert(Relation index, Datum* values, bool* isnull, ItemPointer heap_tid, Relation,
                  IndexUniqueCheck, bool, IndexInfo*) {
    if (isnull[0]) return false;  // NULL vectors are not indexed
    Vector* v = DatumGetVector(values[0]);
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
    faiss_append_pending(index, heap_tid, v->x, v->dim, attributes, attribute_bytes);
    return false;
}
