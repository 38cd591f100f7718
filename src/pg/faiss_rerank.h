// faiss_rerank.h: exact distances from the table for searches over
// compressed codes.
//
// An IVF-SQ or IVF-PQ index with its lists in pages keeps only codes, heap
// TIDs and filter values: its distances are those of the codes, and its
// order only roughly the true one. The table has the vectors. So a search
// over such lists asks for k x k_factor candidates (benzer.k_factor, else
// the index's measured setting, else kFaissDefaultRerankFactor), reads each
// candidate's vector from its heap row under the query's snapshot, and
// returns them by exact distance: the k nearest of the candidates come
// first, with the distances the operator gives. A candidate the snapshot
// cannot see goes last (the executor skips it anyway).
//
// Only an index whose vector is a plain column of the table can be
// re-ranked this way (an expression would have to be evaluated per row);
// other indexes return the codes' order and distances, as before.
#pragma once

#include "core/engine.h"
#include "pg/faiss.h"

extern "C" {
#include "access/relscan.h"
#include "executor/tuptable.h"
#include "utils/snapshot.h"
}

constexpr double kFaissDefaultRerankFactor = 4.0;

struct FaissReranker {
    Relation heap;
    AttrNumber attno;  // the vector column
    IndexFetchTableData* fetch;
    TupleTableSlot* slot;
    Snapshot snapshot;
    benzer::Metric metric;
    int dim;
    int64 fetched;  // heap rows read, for EXPLAIN
};

// Whether searches of index read compressed codes from pages and can be
// re-ranked from heap (a plain column): then sets up reranker (ended with
// faiss_reranker_end, or with the memory context).
bool faiss_reranker_begin(FaissReranker* reranker, Relation heap, Relation index, Snapshot snapshot,
                          benzer::Metric metric, int dim);
void faiss_reranker_end(FaissReranker* reranker);
// Ends reranker when context is reset or deleted (a scan's context).
void faiss_reranker_end_on_reset(MemoryContext context, FaissReranker* reranker);

// The candidates to ask for: k x factor, within bounds. factor: the
// search's k_factor (benzer.k_factor, or the tuned one), else the index's
// k_factor option, else kFaissDefaultRerankFactor.
int64 faiss_rerank_candidates(int64 k, double factor, double index_factor, int64 available);

// Reorders n candidates (tids, with their labels alongside) by exact
// distance to query, which replaces distances; candidates the snapshot
// cannot see go last at +infinity (NaN distances, a zero cosine query, go
// last among the visible ones as the operator orders them).
void faiss_rerank(FaissReranker* reranker, const float* query, ItemPointerData* tids,
                  benzer::Label* labels, float* distances, int64 n);
