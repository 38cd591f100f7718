// service.h: the search service, one background worker per server that
// answers the exact searches of every backend (see the essay at the top of
// service_worker.cpp).
//
// A backend asks it through service_exact_search_many(); whenever the service
// cannot answer (not preloaded, turned off, down, busy past
// benzer.service_timeout, the request too large for a slot, the index
// changed), the call returns false and the backend searches itself, with
// the very same results: the service is a faster road, never a different
// answer and never an error.
#pragma once

#include "core/engine.h"
#include "core/exact_batch.h"
#include "pg/postgres_headers.h"

extern "C" {
#include "utils/rel.h"
}

// Settings (service.cpp).
extern bool benzer_use_service;
extern int benzer_device;  // ServiceDevice

// benzer.device: where the service computes.
enum ServiceDevice { kServiceDeviceAuto, kServiceDeviceCpu, kServiceDeviceGpu };

// From _PG_init: the settings and, when the library is being preloaded,
// the shared memory and the background worker.
void service_init(void);

// One exact search for the service: the k rows of the index's lists (labels
// 0..rows-1, in the index's space: a cosine query normalised) nearest to
// vector among those filter allows (null: all), scored as
// benzer::ExactCandidates scores them.
struct ServiceQuery {
    const float* vector;
    int dim;
    benzer::ExactScore score;
    int64 k;
    const benzer::LabelFilter* filter;
    int64 rows;
    // Whether benzer.service_min_rows applies: only where the backend has a
    // cheap exact search of its own (rows read page by page); otherwise
    // even a small search is cheaper in the service.
    bool small_stays_here;
};

// Where a search ran, for EXPLAIN.
struct ServiceOutcome {
    bool served;      // the service answered
    bool gpu;         // ... on a GPU
    int batch;        // queries in the device call that answered it
    const char* why;  // when not served: why (a static string), or null
};

// Whether the service may answer searches of index at all (wanted, running,
// a shared index): a cheap check before preparing a request.
bool service_may_answer(Relation index);

// Asks the service for n exact searches at once (one from a scan, all of
// a benzer_batch_search call): they are handed over together, so the
// service answers them with one pass. answers[i] brings buffers for
// queries[i].k results and receives found and served (nearest first).
// Returns how many were served; the others the caller searches itself
// (outcome->why says why). Waits on the backend's latch; a cancel while
// waiting withdraws the requests and raises the cancel.
struct ServiceAnswer {
    float* scores;
    benzer::Label* labels;
    int64 found;
    bool served;
};
int service_exact_search_many(Relation index, uint32 generation, const ServiceQuery* queries, int n,
                              ServiceAnswer* answers, ServiceOutcome* outcome);

// A line for benzer_index_info: whether the service holds this index
// (palloc'd), or null.
char* service_describe_index(Relation index);
