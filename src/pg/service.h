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
#include "core/kmeans.h"
#include "pg/postgres_headers.h"

extern "C" {
#include "utils/rel.h"
}

// Settings (service.cpp).
extern bool benzer_use_service;
extern bool benzer_service_structures;
extern int benzer_device;  // ServiceDevice

// benzer.device: where the service computes.
enum ServiceDevice { kServiceDeviceAuto, kServiceDeviceCpu, kServiceDeviceGpu };

// From _PG_init: the settings and, when the library is being preloaded,
// the shared memory and the background worker.
void service_init(void);

// What a request asks.
enum ServiceRequestKind {
    // An exact search of the rows of an index's lists (Flat, IVF-Flat).
    kServiceExact,
    // A search of a Faiss structure that lives whole in the index's blob
    // (HNSW, IVF-PQ FastScan, ...), which the service holds once per server.
    kServiceEngine,
    // Hold such a structure and describe it (before a backend's first
    // search of an index generation).
    kServiceDescribe,
    // A k-means clustering on the service's device (service_kmeans).
    kServiceKMeans,
};

// What a backend needs to know of a structure the service holds for it.
struct ServiceEngineSummary {
    int64 rows;
    int nlist;
    int default_nprobe;
    int default_ef_search;
    float default_k_factor;
    bool has_exact_vectors;
    int64 memory_bytes;
    char description[256];  // benzer::Engine::describe()
};

// One search for the service.
//
// kServiceExact: the k rows of the index's lists (labels 0..rows-1, in the
// index's space: a cosine query normalised) nearest to vector among those
// filter allows (null: all), scored as benzer::ExactCandidates scores them.
//
// kServiceEngine: benzer::Engine::search(vector, k, options, filter) on
// the structure of the index generation (rows: its labels, the filter's
// count); the query as the SQL operator sees it.
//
// kServiceDescribe: no vector, k 0; the answer's summary is filled.
struct ServiceQuery {
    ServiceRequestKind kind;
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
    benzer::SearchOptions options;  // kServiceEngine
    // kServiceEngine: one of a benzer_batch_search call's queries, answered
    // as Engine::search_batch answers it (the backend's own batch path);
    // otherwise as Engine::search does (an index scan's). The two may order
    // near-equal distances differently.
    bool batch;
};

// Where a search ran, for EXPLAIN.
struct ServiceOutcome {
    bool served;      // the service answered
    bool gpu;         // ... on a GPU
    int batch;        // queries in the device call that answered it
    const char* why;  // when not served: why (a static string), or null
};

// Records in stats where the service's answers came from, or why it gave
// none (for EXPLAIN).
inline void service_note_outcome(benzer::SearchStats* stats, const ServiceOutcome& outcome,
                                 int served) {
    if (stats == nullptr) return;
    stats->service += served;
    stats->service_gpu = stats->service_gpu || outcome.gpu;
    stats->service_batch = Max(stats->service_batch, outcome.batch);
    if (outcome.why != nullptr) stats->service_why_not = outcome.why;
}

// Whether the service may answer searches of index at all (wanted, running,
// a shared index): a cheap check before preparing a request.
bool service_may_answer(Relation index);

// Asks the service for n searches at once (one from a scan, all of a
// benzer_batch_search call): they are handed over together, so the
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
    benzer::SearchStats stats;      // kServiceEngine: what the search did
    ServiceEngineSummary* summary;  // kServiceDescribe: filled when given
};
int service_search_many(Relation index, uint32 generation, const ServiceQuery* queries, int n,
                        ServiceAnswer* answers, ServiceOutcome* outcome);

// Has the service hold the Faiss structure of index's generation (reading
// it if it does not yet) and describe it. False when it cannot (the same
// reasons as a search; *why says which): the backend loads it itself.
bool service_describe_engine(Relation index, uint32 generation, int dim,
                             ServiceEngineSummary* summary, const char** why);

// Whether work over rows rows that only a device speeds up (k-means, IVF
// probes) should go to the service: benzer.device = gpu, or auto when the
// service has a GPU and rows reach benzer.gpu_min_rows (on the CPU, the
// backend does it as fast and leaves the service to exact searches).
bool service_wants_device(int64 rows);

// k-means of n rows (dim floats each) with options in the service, on its
// GPU when it has one (else its CPU implementation of the device): the
// assignment steps on the device, Faiss's centroid updates on the host
// (core/kmeans.h). Fills centroids (k * dim) and, when clusters is not
// null, every row's cluster and distance. Returns false, with *why, when
// the service could not (the backend then clusters itself): the same
// reasons as a search, or too little shared memory for the rows. Waits
// as long as the service works on it; a cancel withdraws it.
struct ServiceKMeansOutcome {
    char device[64];  // where it ran
    int iterations;
    const char* why;  // when it did not run there
};
bool service_kmeans(const float* rows, int64 n, int dim, const benzer::KMeansOptions& options,
                    float* centroids, int32* clusters, double* distances,
                    ServiceKMeansOutcome* outcome);

// A line for benzer_index_info: whether the service holds this index
// (palloc'd), or null.
char* service_describe_index(Relation index);
