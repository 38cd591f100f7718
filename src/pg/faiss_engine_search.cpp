// faiss_engine_search.cpp: searching a Faiss structure that lives whole in
// an index's blob (HNSW, IVF-PQ FastScan, PQ, IVF with a transform, ...).
//
// Such a structure cannot be read page by page the way IVF lists are
// (faiss_lists.cpp): a graph search jumps anywhere in it. Until the search
// service, every backend that searched the index deserialised a private
// copy: with 10 M rows of 768 dimensions that is some 30 GB per
// connection, and seconds to minutes before a fresh connection's first
// answer. With benzer preloaded, the service (service_worker.cpp) reads the
// structure from the index's pages once per server and keeps it; a backend
// keeps only a summary of it (faiss_cache.cpp) and sends each search there
// with the settings this backend chose (the session's knobs, the index's
// options, the recall target's tuned setting) and its allowed-row bitmap.
// The service runs the very same benzer::Engine::search, so the rows and
// distances are the ones a private copy would give.
//
// Whenever the service cannot answer (stopped, busy past
// benzer.service_timeout, benzer.search_service off, a request larger than
// a slot), the backend loads the structure after all and searches itself:
// slower the first time, the same answers, never an error.
#include "pg/faiss_engine_search.h"

#include "pg/faiss.h"
#include "pg/faiss_cache.h"
#include "pg/guard.h"
#include "pg/guarded.h"
#include "pg/service.h"

namespace {

// options with the index's WITH options filled in where options leave the
// structure's default: a loaded engine has them applied as its defaults
// (faiss_cache.cpp, apply_options), the service's copy keeps the defaults
// it was built with.
benzer::SearchOptions with_index_options(Relation index, const benzer::SearchOptions& options) {
    FaissOptions* index_options = faiss_get_options(index);
    benzer::SearchOptions out = options;
    if (out.nprobe == 0 && index_options->nprobe > 0) out.nprobe = index_options->nprobe;
    if (out.ef_search == 0 && index_options->ef_search > 0)
        out.ef_search = index_options->ef_search;
    if (out.k_factor == 0.0f && index_options->k_factor > 0)
        out.k_factor = Max(static_cast<float>(index_options->k_factor), 1.0f);
    return out;
}

// Adds what one search did to the total.
void add_stats(benzer::SearchStats* total, const benzer::SearchStats& one) {
    total->candidates += one.candidates;
    total->rounds += one.rounds;
    total->selector_used = total->selector_used || one.selector_used;
    total->exact_scan = total->exact_scan || one.exact_scan;
    total->nprobe = Max(total->nprobe, one.nprobe);
    total->adaptive = total->adaptive || one.adaptive;
    total->lists += one.lists;
    total->compared += one.compared;
}

// Asks the service for the queries; marks served[q] for those it answered
// (their results in place). Returns how many.
int64 search_in_service(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                        const float* queries, int64 nq, int64 k,
                        const benzer::SearchOptions& options, const benzer::LabelFilter* filter,
                        float* distances, benzer::Label* labels, int64* counts, bool* served,
                        benzer::SearchStats* stats) {
    if (nq > INT_MAX / 2) return 0;
    auto* requests = static_cast<ServiceQuery*>(palloc0(sizeof(ServiceQuery) * nq));
    auto* answers = static_cast<ServiceAnswer*>(palloc0(sizeof(ServiceAnswer) * nq));
    benzer::SearchOptions sent = with_index_options(index, options);
    for (int64 q = 0; q < nq; q++) {
        ServiceQuery& r = requests[q];
        r.kind = kServiceEngine;
        r.vector = queries + q * meta.dimensions;
        r.dim = meta.dimensions;
        r.k = k;
        r.filter = filter;
        r.rows = filter != nullptr ? filter->count : entry->nlabels;
        r.small_stays_here = false;
        r.options = sent;
        r.batch = nq > 1;
        answers[q].scores = distances + q * k;
        answers[q].labels = labels + q * k;
    }
    ServiceOutcome outcome;
    int served_count = service_search_many(index, meta.generation, requests, static_cast<int>(nq),
                                           answers, &outcome);
    service_note_outcome(stats, outcome, served_count);
    for (int64 q = 0; q < nq; q++) {
        served[q] = answers[q].served;
        if (!served[q]) continue;
        counts[q] = answers[q].found;
        for (int64 j = counts[q]; j < k; j++) labels[q * k + j] = -1;
        add_stats(stats, answers[q].stats);
    }
    pfree(requests);
    pfree(answers);
    return served_count;
}

}  // namespace

void faiss_engine_search(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                         const float* queries, int64 nq, int64 k,
                         const benzer::SearchOptions& options, const benzer::LabelFilter* filter,
                         float* distances, benzer::Label* labels, int64* counts,
                         benzer::SearchStats* stats) {
    if (nq <= 0) return;
    auto* served = static_cast<bool*>(palloc0(sizeof(bool) * nq));
    int64 remaining = nq;
    if (entry->engine == nullptr && entry->served != nullptr && k > 0)
        remaining -= search_in_service(index, meta, entry, queries, nq, k, options, filter,
                                       distances, labels, counts, served, stats);
    if (remaining > 0) {
        // This backend searches the rest itself, with its own copy.
        if (!faiss_cache_engine(index, meta, entry))
            ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                            errmsg("faiss index \"%s\" was merged while a search read it",
                                   RelationGetRelationName(index)),
                            errhint("Run the query again.")));
        benzer::Engine* engine = entry->engine;
        faiss_use_threads(benzer_threads);
        if (remaining == nq && nq > 1) {
            guarded("faiss index search", [&] {
                engine->search_batch(nq, queries, k, options, filter, distances, labels, counts,
                                     stats);
            });
        } else {
            for (int64 q = 0; q < nq; q++) {
                if (served[q]) continue;
                float* d = distances + q * k;
                benzer::Label* l = labels + q * k;
                int64 found = 0;
                guarded("faiss index search", [&] {
                    found = engine->search(queries + q * meta.dimensions, k, options, filter, d, l,
                                           stats);
                });
                counts[q] = found;
                for (int64 j = found; j < k; j++) l[j] = -1;
                CHECK_FOR_INTERRUPTS();
            }
        }
    }
    pfree(served);
}
