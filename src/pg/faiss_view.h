// faiss_view.h: what one search sees of a faiss index.
//
// A scan and a batch search both need, for one generation of the index:
// the loaded index (pinned in the cache), the labels they may return (live
// and matching the WHERE conditions on filter columns) and the pending rows
// that match. Reading them races merges, so faiss_load_view() reports a
// race and the caller re-reads the metapage and tries again.
#pragma once

#include "pg/faiss_attributes.h"
#include "pg/faiss_cache.h"

struct FaissView {
    uint8* allowed;            // bitmap over labels: live and matching
    int64 nlabels;             // labels in the loaded index
    int64 allowed_count;       // set bits in allowed
    FaissPendingRows pending;  // pending rows that match, with their vectors
};

// Loads the view of meta's generation in the current memory context, and
// pins the cache entry into *entry (the caller releases it, also after a
// race). conditions restrict both the labels and the pending rows; kinds
// are the index's filter column kinds. Returns false when a merge raced
// the load.
bool faiss_load_view(Relation index, const FaissMeta& meta, const benzer::AttributeKind* kinds,
                     int nkinds, const benzer::Condition* conditions, int nconditions,
                     FaissLoadedIndex** entry, FaissView* view);
