// service_shmem.h: the shared memory between backends and the search
// service (service.cpp is the backends' side, service_worker.cpp the
// service's).
//
// A fixed array of request slots, each with its own data area
// (benzer.service_slot_size). A slot goes
//
//   FREE -> FILLING (a backend took it and writes the request)
//        -> QUEUED (the service's latch is set)
//        -> RUNNING (the service took it into a batch)
//        -> DONE | FAILED (the owner's latch is set) -> FREE (the owner read it)
//
// A backend that stops waiting (cancel, timeout) frees a QUEUED slot
// itself and marks a RUNNING one ABANDONED, which the service frees when
// it is done with it: neither side ever writes a slot the other owns. A
// restarted service fails the slots its predecessor left RUNNING (their
// owners fall back to searching themselves) and frees the abandoned ones.
#pragma once

#include "pg/postgres_headers.h"
#include "pg/service.h"

extern "C" {
#include "storage/latch.h"
#include "storage/relfilenode.h"
#include "storage/spin.h"
}

enum ServiceSlotState : uint32 {
    kSlotFree,
    kSlotFilling,
    kSlotQueued,
    kSlotRunning,
    kSlotDone,
    kSlotFailed,
    kSlotAbandoned,
};

struct ServiceSlot {
    slock_t mutex;  // guards state and owner
    uint32 state;
    Latch* owner_latch;  // set when the answer is there
    // The request (written in FILLING, read in RUNNING).
    int32 kind;  // ServiceRequestKind
    RelFileNode node;
    uint32 generation;
    int32 dim;
    int32 score;   // benzer::ExactScore
    int32 device;  // ServiceDevice
    int64 k;
    int64 rows;     // labels 0..rows-1
    int64 allowed;  // rows the bitmap allows
    bool has_bitmap;
    benzer::SearchOptions options;  // kServiceEngine
    bool batch_call;                // kServiceEngine: ServiceQuery::batch
    uint32 segment;                 // kServiceKMeans: the dsm_handle of its ServiceKMeansJob
    int32 progress;                 // kServiceKMeans: iterations run so far
    // The answer (written in RUNNING, read in DONE/FAILED).
    int64 found;
    bool gpu;
    int32 batch;
    benzer::SearchStats stats;     // kServiceEngine (service_why_not unused)
    ServiceEngineSummary summary;  // kServiceDescribe
    char message[128];             // why it FAILED
};

// Counters and what the service holds, for benzer_search_service().
struct ServiceHeldIndex {
    RelFileNode node;
    uint32 generation;
    int64 rows;
    int64 bytes;
    int64 queries;
    bool on_gpu;
    bool engine;  // the whole Faiss structure (HNSW ...), not rows for exact searches
};
constexpr int kServiceHeldShown = 32;

struct ServiceShared {
    slock_t mutex;  // guards everything but the slots
    pid_t pid;      // 0 while no service runs
    Latch* latch;   // the service's latch
    char device[96];
    bool gpu;
    char gpu_absent[160];  // why there is no GPU
    int64 requests;        // answered
    int64 failed;
    int64 batches;
    int64 largest_batch;
    int64 loads;  // index generations read from pages
    // The index being read from its pages right now: backends waiting on
    // it wait past benzer.service_timeout (a large index takes a while,
    // and their fallback, each reading it for itself, is what the service
    // exists to avoid).
    bool loading;
    RelFileNode loading_node;
    int held_count;
    ServiceHeldIndex held[kServiceHeldShown];
    int nslots;
    Size slot_bytes;
    ServiceSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

// Attached in every process after startup (null without preloading).
extern ServiceShared* service_shared;

// The slot's data area: the query (dim floats), the bitmap ((rows + 7) / 8
// bytes, when has_bitmap), then the answer: k floats, k labels (8-byte
// aligned).
inline char* service_slot_data(int slot) {
    char* base = reinterpret_cast<char*>(&service_shared->slots[service_shared->nslots]);
    return reinterpret_cast<char*>(MAXALIGN(reinterpret_cast<uintptr_t>(base))) +
           static_cast<Size>(slot) * service_shared->slot_bytes;
}
inline Size service_bitmap_offset(int32 dim) { return MAXALIGN(sizeof(float) * dim); }
inline Size service_answer_offset(int32 dim, int64 rows, bool has_bitmap) {
    return service_bitmap_offset(dim) + (has_bitmap ? MAXALIGN((rows + 7) / 8) : 0);
}
inline Size service_request_bytes(int32 dim, int64 rows, bool has_bitmap, int64 k) {
    return service_answer_offset(dim, rows, has_bitmap) + MAXALIGN(sizeof(float) * k) +
           sizeof(int64) * k;
}

// A k-means request lives in a dynamic shared memory segment of its own
// (the rows are too large for a slot): this header, then the rows (n * dim
// floats), the centroids (k * dim floats), and, when assign_rows, every
// row's cluster (int32) and distance (double).
struct ServiceKMeansJob {
    int32 dim;
    int32 k;
    int32 iterations;
    bool spherical;
    bool assign_rows;
    int64 seed;
    int64 sample_size;
    int64 n;
    // Written by the service.
    int32 iterations_run;
    char device[64];
};
inline Size service_kmeans_rows_offset() { return MAXALIGN(sizeof(ServiceKMeansJob)); }
inline Size service_kmeans_centroids_offset(const ServiceKMeansJob& job) {
    return service_kmeans_rows_offset() + MAXALIGN(sizeof(float) * job.n * job.dim);
}
inline Size service_kmeans_clusters_offset(const ServiceKMeansJob& job) {
    return service_kmeans_centroids_offset(job) + MAXALIGN(sizeof(float) * job.k * job.dim);
}
inline Size service_kmeans_distances_offset(const ServiceKMeansJob& job) {
    return service_kmeans_clusters_offset(job) + MAXALIGN(sizeof(int32) * job.n);
}
inline Size service_kmeans_bytes(const ServiceKMeansJob& job) {
    return job.assign_rows ? service_kmeans_distances_offset(job) + sizeof(double) * job.n
                           : service_kmeans_clusters_offset(job);
}

// The worker's entry point (service_worker.cpp).
extern "C" PGDLLEXPORT void benzer_service_main(Datum arg);

// Settings the worker reads (service.cpp).
extern int benzer_service_batch_window_us;
extern int benzer_service_memory_mb;
extern int benzer_service_threads;
extern char* benzer_gpu_plugin;
extern int benzer_gpu_min_rows;
