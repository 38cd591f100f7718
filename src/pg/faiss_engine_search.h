// faiss_engine_search.h: searching a Faiss structure that lives whole in an
// index's blob (HNSW, ...), in the search service when it holds it for this
// backend, else in the backend (see faiss_engine_search.cpp).
#pragma once

#include "core/engine.h"
#include "pg/faiss_pages.h"

struct FaissLoadedIndex;

// Engine::search for nq queries (row-major, as the SQL operator sees them)
// on the structure of a pinned entry without lists in pages: row q of
// distances/labels (nq * k) receives counts[q] results, nearest first, the
// rest of its labels -1. stats gathers what the searches did, and where
// they ran. ERRORs (40001) when a merge raced a load this needed.
void faiss_engine_search(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                         const float* queries, int64 nq, int64 k,
                         const benzer::SearchOptions& options, const benzer::LabelFilter* filter,
                         float* distances, benzer::Label* labels, int64* counts,
                         benzer::SearchStats* stats);
