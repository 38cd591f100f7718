// faiss_rerank.cpp: exact distances from the table (see faiss_rerank.h).
#include "pg/faiss_rerank.h"

#include "core/distance.h"
#include "pg/faiss_cache.h"
#include "pg/guarded.h"
#include "pg/vector.h"

extern "C" {
#include "access/tableam.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

#include <cmath>
#include <limits>

bool faiss_reranker_begin(FaissReranker* reranker, Relation heap, Relation index, Snapshot snapshot,
                          benzer::Metric metric, int dim) {
    *reranker = FaissReranker{};
    if (heap == nullptr || snapshot == nullptr || dim <= 0) return false;
    AttrNumber attno = index->rd_index->indkey.values[0];
    if (attno <= 0) return false;  // an expression
    reranker->heap = heap;
    reranker->attno = attno;
    reranker->snapshot = snapshot;
    reranker->metric = metric;
    reranker->dim = dim;
    reranker->fetch = table_index_fetch_begin(heap);
    reranker->slot = table_slot_create(heap, nullptr);
    return true;
}

void faiss_reranker_end(FaissReranker* reranker) {
    if (reranker->fetch != nullptr) table_index_fetch_end(reranker->fetch);
    if (reranker->slot != nullptr) ExecDropSingleTupleTableSlot(reranker->slot);
    reranker->fetch = nullptr;
    reranker->slot = nullptr;
}

void faiss_reranker_end_on_reset(MemoryContext context, FaissReranker* reranker) {
    auto* callback = static_cast<MemoryContextCallback*>(
        MemoryContextAllocZero(context, sizeof(MemoryContextCallback)));
    callback->func = [](void* arg) { faiss_reranker_end(static_cast<FaissReranker*>(arg)); };
    callback->arg = reranker;
    MemoryContextRegisterResetCallback(context, callback);
}

int64 faiss_rerank_candidates(int64 k, double factor, double index_factor, int64 available) {
    if (factor < 1.0) factor = index_factor;
    if (factor < 1.0) factor = kFaissDefaultRerankFactor;
    double want = Min(static_cast<double>(k) * factor, static_cast<double>(k) + 4096.0);
    return Max(k, Min(static_cast<int64>(want), Max(available, k)));
}

namespace {

struct Ranked {
    double distance;
    int64 position;
};

// Nearest first, NaN after every number, then by position (stable).
int compare_ranked(const void* a, const void* b) {
    const auto* x = static_cast<const Ranked*>(a);
    const auto* y = static_cast<const Ranked*>(b);
    bool xn = std::isnan(x->distance), yn = std::isnan(y->distance);
    if (xn != yn) return xn ? 1 : -1;
    if (!xn && x->distance != y->distance) return x->distance < y->distance ? -1 : 1;
    return x->position < y->position ? -1 : (x->position > y->position ? 1 : 0);
}

}  // namespace

// PostgreSQL calls (heap fetches, detoasting, interrupts) may raise an
// ERROR here: no C++ object lives in this frame, only palloc'd arrays.
void faiss_rerank(FaissReranker* reranker, const float* query, ItemPointerData* tids,
                  benzer::Label* labels, float* distances, int64 n) {
    if (n <= 0) return;
    auto* ranked = static_cast<Ranked*>(palloc(sizeof(Ranked) * n));
    for (int64 i = 0; i < n; i++) {
        double d = std::numeric_limits<double>::infinity();
        ItemPointerData tid = tids[i];
        bool call_again = false, all_dead = false;
        if (table_index_fetch_tuple(reranker->fetch, &tid, reranker->snapshot, reranker->slot,
                                    &call_again, &all_dead)) {
            bool isnull = false;
            Datum value = slot_getattr(reranker->slot, reranker->attno, &isnull);
            if (!isnull) {
                Vector* v = key_vector(
                    value, TupleDescAttr(reranker->slot->tts_tupleDescriptor, reranker->attno - 1)
                               ->atttypid);
                if (v->dim == reranker->dim)
                    d = benzer::operator_distance(reranker->metric, query, v->x, v->dim);
                if (reinterpret_cast<Pointer>(v) != DatumGetPointer(value)) pfree(v);
            }
            ExecClearTuple(reranker->slot);
        }
        reranker->fetched++;
        ranked[i] = {d, i};
        if ((i & 63) == 63) CHECK_FOR_INTERRUPTS();
    }
    qsort(ranked, static_cast<size_t>(n), sizeof(Ranked), compare_ranked);
    auto* t = static_cast<ItemPointerData*>(palloc(sizeof(ItemPointerData) * n));
    auto* l = static_cast<benzer::Label*>(palloc(sizeof(benzer::Label) * n));
    memcpy(t, tids, sizeof(ItemPointerData) * n);
    memcpy(l, labels, sizeof(benzer::Label) * n);
    for (int64 i = 0; i < n; i++) {
        int64 from = ranked[i].position;
        tids[i] = t[from];
        labels[i] = l[from];
        distances[i] = static_cast<float>(ranked[i].distance);
    }
    pfree(t);
    pfree(l);
    pfree(ranked);
}
