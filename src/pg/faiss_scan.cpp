// faiss_scan.cpp: answering ORDER BY <distance> with a faiss index.
//
// PostgreSQL does not tell an index scan the query's LIMIT, and WHERE
// conditions the index cannot check are applied above it, so a scan must be
// able to go on producing rows, nearest first, for as long as it is asked.
// pgvector's scans stop after ef_search candidates and silently return
// fewer rows than the LIMIT when a filter discards many of them; this one
// works in rounds instead:
//
//   round 1: search for k = benzer.scan_rows (100) rows among the allowed
//            labels;
//   round n: search again, excluding every label already returned (the
//            "allowed" bitmap loses a bit per returned row), with k doubled
//            and twice the IVF lists or HNSW candidates (four times HNSW's
//            when the last round found fewer rows than asked): a further
//            round means rows are being discarded above the scan, and the
//            nearest rows that survive lie further out;
//   end:     when no allowed label is reachable any more, or when
//            benzer.max_scan_tuples rows were returned.
//
// So no row is returned twice, and under any filter the scan keeps going
// until the query is satisfied. Rows inserted since the last merge
// (pending rows) are searched exactly and merged in distance order with
// each round's results. The rules of the rounds and of that merge live in
// core/search_rounds.h, shared with benzer_batch_search. Dead rows VACUUM has seen are excluded
// through the tombstone bitmap; other dead or invisible rows are skipped by the executor, which
// simply asks for more.
//
// Cleanup: amendscan is not called when a query fails, so the pinned cache
// entry is released by a reset callback on the scan's memory context.
#include "pg/faiss.h"

#include "core/distance.h"
#include "pg/faiss_attributes.h"
#include "pg/faiss_cache.h"
#include "pg/faiss_engine_search.h"
#include "pg/faiss_lists.h"
#include "pg/faiss_pages.h"
#include "pg/faiss_rerank.h"
#include "pg/faiss_scan.h"
#include "pg/faiss_search.h"
#include "pg/faiss_tails.h"
#include "pg/faiss_view.h"
#include "pg/guard.h"
#include "pg/guarded.h"
#include "pg/vector.h"

extern "C" {
#include "access/relscan.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

#include <algorithm>
#include <cmath>

namespace {

struct FaissScanState {
    Relation index;
    MemoryContext parent;   // where the state and the query vector live
    MemoryContext context;  // everything below; reset on rescan
    bool started;
    bool done;
    float* query;
    int dim;
    FaissMeta meta;
    FaissLoadedIndex* entry;  // pinned while the scan runs

    // Labels that may still be returned: live and not returned yet.
    uint8* allowed;
    int64 nlabels;
    int64 allowed_count;

    // The current round of results from the Faiss structure, and the
    // settings of the rounds (core/search_rounds.h).
    float* main_distances;
    benzer::Label* main_labels;
    int64 main_count;
    int64 limit;               // the query's LIMIT (+ OFFSET), 0: unknown
    FaissSearchChoice choice;  // settings of the first round (faiss_search.h)
    benzer::SearchRounds rounds;
    bool widen;  // last round found fewer rows than asked
    // Rounds of this scan (stats.rounds adds up every rescan, for EXPLAIN):
    // the first round of a rescan is a first round again.
    int64 scan_rounds;
    bool main_exhausted;
    // Merges each round with the pending rows, nearest first.
    benzer::ResultMerge merge;

    // Rows inserted into list tails (faiss_tails.h): searched with their
    // lists; those returned are remembered so later rounds skip them.
    bool have_tails;
    FaissTailSearch tails;
    int64 tail_remaining;  // tail rows that may still be returned (upper bound)

    // Compressed codes in pages: candidates re-ranked by the heap rows'
    // vectors (faiss_rerank.h).
    bool reranking;
    FaissReranker reranker;

    // Pending rows with exact distances, nearest first.
    ItemPointerData* pending_tids;
    double* pending_distances;
    int64 pending_count;

    int64 returned;
    FaissScanStats stats;
};

// Loads the index (retrying if a merge races us), the allowed bitmap and
// the pending rows. state->meta holds a fresh copy of the metapage.
void start_scan(IndexScanDesc scan, FaissScanState* state) {
    Relation index = scan->indexRelation;
    for (int attempt = 0;; attempt++) {
        if (attempt > 100)
            ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                            errmsg("faiss index \"%s\" kept changing while being read",
                                   RelationGetRelationName(index))));
        MemoryContextReset(state->context);
        state->entry = nullptr;
        // The caller read the metapage; a retry (a merge raced us) reads it
        // again.
        if (attempt > 0) faiss_read_meta(index, &state->meta);
        const FaissMeta& meta = state->meta;
        MemoryContext old = MemoryContextSwitchTo(state->context);
        faiss_cache_release_on_reset(state->context, &state->entry);

        // WHERE conditions on filter columns (scan keys).
        benzer::AttributeKind kinds[kFaissMaxFilterColumns];
        int nkinds = faiss_filter_kinds(index, kinds);
        auto* conditions = static_cast<benzer::Condition*>(
            palloc0(sizeof(benzer::Condition) * Max(scan->numberOfKeys, 1)));
        int nconditions = faiss_scan_conditions(scan, kinds, conditions);
        state->stats.conditions = nconditions;

        FaissView view;
        if (!faiss_load_view(index, meta, kinds, nkinds, conditions, nconditions, &state->entry,
                             &view)) {
            MemoryContextSwitchTo(old);
            continue;
        }
        state->allowed = view.allowed;
        state->nlabels = view.nlabels;
        state->allowed_count = view.allowed_count;
        state->stats.allowed_rows = view.allowed_count;
        FaissPendingRows& pending = view.pending;

        // Pending rows, exact distances, nearest first (NaN last).
        benzer::Metric metric = static_cast<benzer::Metric>(meta.metric);
        state->pending_count = pending.count;
        state->pending_tids = pending.tids;
        state->pending_distances =
            static_cast<double*>(palloc(sizeof(double) * Max(pending.count, 1)));
        int64* order = static_cast<int64*>(palloc(sizeof(int64) * Max(pending.count, 1)));
        for (int64 i = 0; i < pending.count; i++) {
            state->pending_distances[i] =
                state->dim == meta.dimensions
                    ? benzer::operator_distance(metric, state->query,
                                                pending.vectors + i * meta.dimensions,
                                                meta.dimensions)
                    : 0.0;
            order[i] = i;
        }
        double* d = state->pending_distances;
        std::sort(order, order + pending.count, [d](int64 a, int64 b) {
            if (std::isnan(d[a])) return false;
            if (std::isnan(d[b])) return true;
            return d[a] < d[b] || (d[a] == d[b] && a < b);
        });
        ItemPointerData* tids =
            static_cast<ItemPointerData*>(palloc(sizeof(ItemPointerData) * Max(pending.count, 1)));
        double* distances = static_cast<double*>(palloc(sizeof(double) * Max(pending.count, 1)));
        for (int64 i = 0; i < pending.count; i++) {
            tids[i] = pending.tids[order[i]];
            distances[i] = d[order[i]];
        }
        state->pending_tids = tids;
        state->pending_distances = distances;
        state->stats.pending_rows = pending.count;

        // List tails, when rows went into them.
        state->have_tails = false;
        state->tail_remaining = 0;
        if (state->entry != nullptr && state->entry->tail_blocks != nullptr &&
            faiss_has_tails(meta) && meta.tail_rows > 0) {
            HASHCTL ctl = {};
            ctl.keysize = sizeof(ItemPointerData);
            ctl.entrysize = sizeof(ItemPointerData);
            ctl.hcxt = state->context;
            auto* kept_kinds =
                static_cast<benzer::AttributeKind*>(palloc(sizeof(kinds[0]) * Max(nkinds, 1)));
            memcpy(kept_kinds, kinds, sizeof(kinds[0]) * nkinds);
            state->tails.kinds = kept_kinds;
            state->tails.nkinds = nkinds;
            state->tails.conditions = conditions;
            state->tails.nconditions = nconditions;
            state->tails.returned = hash_create("benzer faiss scan tail rows", 256, &ctl,
                                                HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
            state->tail_remaining = meta.tail_rows;
            state->have_tails = true;
        }

        // Compressed codes in pages: re-rank from the table.
        state->reranking = false;
        if (state->entry != nullptr && state->entry->lists != nullptr &&
            state->entry->engine != nullptr) {
            bool vectors = true;
            benzer::Engine* engine = state->entry->engine;
            guarded("faiss index scan", [&] { vectors = engine->list_codes_are_vectors(); });
            if (!vectors &&
                faiss_reranker_begin(&state->reranker, scan->heapRelation, index, scan->xs_snapshot,
                                     static_cast<benzer::Metric>(meta.metric), meta.dimensions)) {
                state->reranking = true;
                faiss_reranker_end_on_reset(state->context, &state->reranker);
            }
        }

        state->main_count = 0;
        faiss_choose_search(index, meta, &state->choice);
        // With the LIMIT known, the first round asks for just that many.
        state->rounds = benzer::SearchRounds(
            state->choice.options, faiss_entry_shape(index, state->entry),
            state->limit > 0 ? state->limit : benzer_scan_rows, benzer_max_scan_tuples);
        state->stats.recall_target = state->choice.target;
        state->stats.recall_measured = state->choice.measured;
        state->stats.setting_source = state->choice.source;
        state->widen = false;
        state->scan_rounds = 0;
        state->main_exhausted =
            state->entry == nullptr ||
            (state->entry->engine == nullptr && state->entry->served == nullptr) ||
            state->allowed_count + state->tail_remaining == 0;
        state->merge = benzer::ResultMerge();
        state->merge.set_index(nullptr, 0, !state->main_exhausted);
        state->merge.set_pending(state->pending_distances, state->pending_count, false);
        MemoryContextSwitchTo(old);
        break;
    }
    state->started = true;
}

// Runs the next round of the Faiss search (see the essay above): the first
// with the chosen settings, later ones as core/search_rounds.h widens or
// deepens them. Leaves main_exhausted set when no round can find more.
void next_round(FaissScanState* state) {
    int64 reachable = state->allowed_count + state->tail_remaining;
    if (reachable == 0 ||
        (state->scan_rounds > 0 && !state->rounds.next(state->widen, reachable))) {
        state->main_exhausted = true;
        state->merge.set_index(nullptr, 0, false);
        return;
    }
    int64 k = state->rounds.k(reachable);
    // Re-ranking asks for more candidates, and orders them exactly.
    if (state->reranking)
        k = faiss_rerank_candidates(k, state->choice.options.k_factor,
                                    state->entry->option_k_factor, reachable);
    MemoryContext old = MemoryContextSwitchTo(state->context);
    if (state->main_distances != nullptr) {
        pfree(state->main_distances);
        pfree(state->main_labels);
    }
    state->main_distances = static_cast<float*>(palloc(sizeof(float) * k));
    state->main_labels = static_cast<benzer::Label*>(palloc(sizeof(benzer::Label) * k));
    MemoryContextSwitchTo(old);

    benzer::SearchOptions options = state->rounds.options();
    benzer::LabelFilter filter;
    filter.bits = state->allowed;
    filter.count = state->nlabels;
    filter.allowed = state->allowed_count;
    benzer::SearchStats stats;
    int64 found = 0;
    if (state->entry->lists != nullptr) {
        // Lists in pages: read the probed ones through shared buffers.
        state->tails.rows = state->tail_remaining;
        found = faiss_paged_search(state->index, state->meta, state->entry, state->query, k,
                                   options, &filter, state->have_tails ? &state->tails : nullptr,
                                   state->main_distances, state->main_labels, &stats);
    } else {
        // The whole structure: in the search service when it holds it.
        faiss_engine_search(state->index, state->meta, state->entry, state->query, 1, k, options,
                            &filter, state->main_distances, state->main_labels, &found, &stats);
    }
    if (state->reranking && found > 0) {
        auto* tids = static_cast<ItemPointerData*>(palloc(sizeof(ItemPointerData) * found));
        for (int64 i = 0; i < found; i++) {
            benzer::Label label = state->main_labels[i];
            tids[i] = faiss_is_tail_label(label)
                          ? faiss_tail_label_tid(label)
                          : faiss_cache_label_tid(state->index, state->entry, label);
        }
        faiss_rerank(&state->reranker, state->query, tids, state->main_labels,
                     state->main_distances, found);
        pfree(tids);
        state->stats.reranked += found;
    }
    state->stats.rounds++;
    state->scan_rounds++;
    state->stats.candidates += stats.candidates;
    state->stats.selector_used = state->stats.selector_used || stats.selector_used;
    state->stats.exact_scan = state->stats.exact_scan || stats.exact_scan;
    if (stats.nprobe > state->stats.max_nprobe) state->stats.max_nprobe = stats.nprobe;
    state->stats.adaptive = state->stats.adaptive || stats.adaptive;
    state->stats.lists += stats.lists;
    state->stats.compared += stats.compared;
    state->stats.service += stats.service;
    state->stats.service_gpu = state->stats.service_gpu || stats.service_gpu;
    state->stats.service_batch = Max(state->stats.service_batch, stats.service_batch);
    if (stats.service_why_not != nullptr) state->stats.service_why_not = stats.service_why_not;
    state->stats.first_k = state->stats.first_k > 0 ? state->stats.first_k : k;
    state->main_count = found;
    state->widen = found < k;
    if (found == 0 && !state->widen) state->main_exhausted = true;
    state->merge.set_index(state->main_distances, found, !state->main_exhausted);
}

}  // namespace

IndexScanDesc faiss_begin_scan(Relation index, int nkeys, int norderbys) {
    IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
    // The access method owns these arrays (GiST allocates them the same way).
    if (norderbys > 0) {
        scan->xs_orderbyvals = static_cast<Datum*>(palloc0(sizeof(Datum) * norderbys));
        scan->xs_orderbynulls = static_cast<bool*>(palloc(sizeof(bool) * norderbys));
        memset(scan->xs_orderbynulls, true, sizeof(bool) * norderbys);
    }
    auto* state = static_cast<FaissScanState*>(palloc0(sizeof(FaissScanState)));
    state->index = index;
    state->parent = CurrentMemoryContext;
    state->context =
        AllocSetContextCreate(CurrentMemoryContext, "benzer faiss scan", ALLOCSET_DEFAULT_SIZES);
    scan->opaque = state;
    faiss_scan_register(state->context, &state->stats, index);
    return scan;
}

void faiss_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys) {
    auto* state = static_cast<FaissScanState*>(scan->opaque);
    if (keys != nullptr && scan->numberOfKeys > 0)
        memmove(scan->keyData, keys, scan->numberOfKeys * sizeof(ScanKeyData));
    if (orderbys != nullptr && scan->numberOfOrderBys > 0)
        memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
    MemoryContextReset(state->context);  // releases the pin
    state->entry = nullptr;
    state->started = false;
    state->done = false;
    state->main_distances = nullptr;
    state->main_labels = nullptr;
    state->returned = 0;
}

bool faiss_get_tuple(IndexScanDesc scan, ScanDirection) {
    auto* state = static_cast<FaissScanState*>(scan->opaque);
    if (state->done) return false;
    if (!state->started) {
        if (scan->numberOfOrderBys == 0 || scan->orderByData[0].sk_attno != 1)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("a faiss index can only be scanned with ORDER BY a distance")));
        // Before the metapage is read: no merge frees list pages this scan
        // may read (faiss_pages.h).
        faiss_lock_lists_for_reading(scan->indexRelation);
        // start_scan uses this read of the metapage for its first attempt.
        faiss_read_meta(scan->indexRelation, &state->meta);
        const FaissMeta& meta = state->meta;
        // A NULL query orders nothing: every row is returned, in any order.
        ScanKey order = &scan->orderByData[0];
        // The query lives in the parent context: it must survive the resets
        // start_scan does.
        if (state->query != nullptr) pfree(state->query);
        state->query = nullptr;
        if (order->sk_flags & SK_ISNULL) {
            state->dim = meta.dimensions;
            state->query = static_cast<float*>(
                MemoryContextAllocZero(state->parent, sizeof(float) * Max(state->dim, 1)));
        } else {
            Vector* q =
                key_vector(order->sk_argument,
                           TupleDescAttr(RelationGetDescr(scan->indexRelation), 0)->atttypid);
            if (meta.dimensions != 0 && q->dim != meta.dimensions)
                ereport(ERROR,
                        (errcode(ERRCODE_DATA_EXCEPTION),
                         errmsg("different vector dimensions %d and %d", meta.dimensions, q->dim)));
            faiss_check_norm(scan->indexRelation, q->x, q->dim, "query vector");
            state->dim = q->dim;
            state->query =
                static_cast<float*>(MemoryContextAlloc(state->parent, sizeof(float) * q->dim));
            memcpy(state->query, q->x, sizeof(float) * q->dim);
        }
        start_scan(scan, state);
    }

    for (;;) {
        if (state->returned >= benzer_max_scan_tuples) {
            state->stats.hit_limit = true;
            state->done = true;
            return false;
        }
        benzer::ResultMerge::Next next = state->merge.peek();
        if (next == benzer::ResultMerge::Next::kRefillIndex) {
            next_round(state);
            CHECK_FOR_INTERRUPTS();
            continue;
        }
        if (next != benzer::ResultMerge::Next::kIndex &&
            next != benzer::ResultMerge::Next::kPending) {
            state->done = true;  // kDone (pending rows are never refilled)
            return false;
        }
        int64 position = state->merge.take(next);
        double distance;
        if (next == benzer::ResultMerge::Next::kIndex) {
            benzer::Label label = state->main_labels[position];
            distance = state->main_distances[position];
            if (faiss_is_tail_label(label)) {
                // A row of a list tail: remembered, so later rounds skip it.
                ItemPointerData tid = faiss_tail_label_tid(label);
                bool found = false;
                hash_search(state->tails.returned, &tid, HASH_ENTER, &found);
                if (found) continue;  // defensive: never twice
                state->tail_remaining = Max(state->tail_remaining - 1, 0);
                scan->xs_heaptid = tid;
                state->stats.main_returned++;
                goto returned;
            }
            // Returned rows leave the allowed set, so later rounds skip them.
            uint8 bit = static_cast<uint8>(1u << (label & 7));
            if (!(state->allowed[label >> 3] & bit)) continue;  // defensive: never twice
            state->allowed[label >> 3] &= static_cast<uint8>(~bit);
            state->allowed_count--;
            scan->xs_heaptid = faiss_cache_label_tid(state->index, state->entry, label);
            state->stats.main_returned++;
        } else {
            distance = state->pending_distances[position];
            scan->xs_heaptid = state->pending_tids[position];
            state->stats.pending_returned++;
        }
    returned:
        state->returned++;
        scan->xs_recheck = false;
        scan->xs_recheckorderby = false;
        if (scan->numberOfOrderBys > 0) {
            scan->xs_orderbyvals[0] = Float8GetDatum(distance);
            scan->xs_orderbynulls[0] = (scan->orderByData[0].sk_flags & SK_ISNULL) != 0;
        }
        return true;
    }
}

void faiss_scan_set_limit(IndexScanDesc scan, int64 limit) {
    auto* state = static_cast<FaissScanState*>(scan->opaque);
    if (state != nullptr) state->limit = Max(limit, 0);
}

void faiss_end_scan(IndexScanDesc scan) {
    auto* state = static_cast<FaissScanState*>(scan->opaque);
    faiss_scan_unregister(&state->stats);
    MemoryContextDelete(state->context);  // releases the pin
    pfree(state);
    scan->opaque = nullptr;
}
