// service.cpp: the backends' side of the search service: its settings, its
// shared memory, its registration, and the request a backend hands it
// (service.h; the protocol is in service_shmem.h, the service itself in
// service_worker.cpp).
#include "pg/service.h"

#include "pg/service_shmem.h"

#include <sys/statvfs.h>

extern "C" {
#include "access/htup_details.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/dsm_impl.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
}

bool benzer_use_service = true;
bool benzer_service_structures = true;
int benzer_device = kServiceDeviceAuto;
int benzer_service_batch_window_us = 0;
int benzer_service_memory_mb = 2048;
int benzer_service_threads = 2;
static int benzer_service_min_rows = 1000;
// An engine search asks for k rows, and the answer must fit a slot.
static constexpr int64 benzer_max_service_k = 100000;
char* benzer_gpu_plugin = nullptr;
int benzer_gpu_min_rows = 50000;
static int benzer_service_timeout_ms = 2000;
static int benzer_service_slots = 16;
static int benzer_service_slot_kb = 1024;

ServiceShared* service_shared = nullptr;

static shmem_request_hook_type previous_shmem_request = nullptr;
static shmem_startup_hook_type previous_shmem_startup = nullptr;

namespace {

const struct config_enum_entry kDeviceOptions[] = {
    {"auto", kServiceDeviceAuto, false},
    {"cpu", kServiceDeviceCpu, false},
    {"gpu", kServiceDeviceGpu, false},
    {nullptr, 0, false},
};

Size shared_size() {
    Size size = add_size(offsetof(ServiceShared, slots),
                         mul_size(sizeof(ServiceSlot), benzer_service_slots));
    size = add_size(size, MAXIMUM_ALIGNOF);
    return add_size(
        size, mul_size(static_cast<Size>(benzer_service_slot_kb) * 1024, benzer_service_slots));
}

void request_shared_memory() {
    if (previous_shmem_request != nullptr) previous_shmem_request();
    RequestAddinShmemSpace(shared_size());
}

void attach_shared_memory() {
    if (previous_shmem_startup != nullptr) previous_shmem_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found = false;
    service_shared = static_cast<ServiceShared*>(
        ShmemInitStruct("benzer search service", shared_size(), &found));
    if (!found) {
        memset(static_cast<void*>(service_shared), 0, offsetof(ServiceShared, slots));
        SpinLockInit(&service_shared->mutex);
        service_shared->nslots = benzer_service_slots;
        service_shared->slot_bytes =
            MAXALIGN_DOWN(static_cast<Size>(benzer_service_slot_kb) * 1024);
        for (int i = 0; i < benzer_service_slots; i++) {
            ServiceSlot* slot = &service_shared->slots[i];
            memset(static_cast<void*>(slot), 0, sizeof(*slot));
            SpinLockInit(&slot->mutex);
            slot->state = kSlotFree;
        }
    }
    LWLockRelease(AddinShmemInitLock);
}

void register_worker() {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof(worker));
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    // Hot standbys search too.
    worker.bgw_start_time = BgWorkerStart_ConsistentState;
    worker.bgw_restart_time = 1;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "benzer");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "benzer_service_main");
    snprintf(worker.bgw_name, BGW_MAXLEN, "benzer search service");
    snprintf(worker.bgw_type, BGW_MAXLEN, "benzer search service");
    RegisterBackgroundWorker(&worker);
}

void define_settings() {
    DefineCustomBoolVariable(
        "benzer.search_service", "Let the search service answer exact searches.",
        "With benzer in shared_preload_libraries, one background worker holds each index's rows "
        "once per server and answers the exact searches of all connections together. Off, or "
        "whenever the service cannot answer, the backend searches itself: same results.",
        &benzer_use_service, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "benzer.service_structures",
        "Let the search service hold whole Faiss structures (HNSW ...) for this session.",
        "On, a backend's first search of such an index asks the service to hold it once per "
        "server and sends its searches there; off, the backend loads its own copy (more memory "
        "per connection, but searches with different filters run in parallel in the backends).",
        &benzer_service_structures, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomEnumVariable(
        "benzer.device", "Where the search service computes: auto, cpu or gpu.",
        "auto: the GPU when the service has one and the index holds at least "
        "benzer.gpu_min_rows rows; gpu: the GPU whenever there is one; cpu: never the GPU. "
        "Where a GPU is used (and always with gpu), k-means and fixed IVF-Flat probes also "
        "run in the service.",
        &benzer_device, kServiceDeviceAuto, kDeviceOptions, PGC_USERSET, 0, nullptr, nullptr,
        nullptr);
    DefineCustomIntVariable(
        "benzer.gpu_min_rows", "Rows from which benzer.device = auto uses the GPU.", nullptr,
        &benzer_gpu_min_rows, 50000, 0, INT_MAX, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "benzer.service_timeout",
        "How long a backend waits for the search service before searching itself.", nullptr,
        &benzer_service_timeout_ms, 2000, 1, INT_MAX, PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);
    DefineCustomIntVariable(
        "benzer.service_batch_window",
        "How long the search service waits for more requests before a device call.",
        "Requests that arrive within this window are answered by one pass over the rows. "
        "Requests that arrive while the service computes are batched anyway.",
        &benzer_service_batch_window_us, 0, 0, 100000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("benzer.service_min_rows",
                            "Exact searches comparing fewer rows than this run in the backend.",
                            "Below it the round trip to the service costs more than the search.",
                            &benzer_service_min_rows, 1000, 0, INT_MAX, PGC_USERSET, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("benzer.service_memory",
                            "Memory for the index rows the search service holds.", nullptr,
                            &benzer_service_memory_mb, 2048, 1, INT_MAX / 2, PGC_SIGHUP,
                            GUC_UNIT_MB, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("benzer.service_threads", "Threads the search service computes with.",
                            nullptr, &benzer_service_threads, 2, 1, 64, PGC_SIGHUP, 0, nullptr,
                            nullptr, nullptr);
    // PGC_POSTMASTER settings exist only when the library is preloaded:
    // defining one later is a FATAL error in PostgreSQL (and they would
    // mean nothing then: there is no service).
    if (!process_shared_preload_libraries_in_progress) return;
    DefineCustomIntVariable("benzer.service_slots", "Requests the search service can hold at once.",
                            nullptr, &benzer_service_slots, 16, 1, 1024, PGC_POSTMASTER, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable(
        "benzer.service_slot_size", "Shared memory for one request to the search service.",
        "The query, the allowed-row bitmap (one bit per indexed row) and the answer must fit; "
        "larger requests are searched by the backend.",
        &benzer_service_slot_kb, 1024, 64, 1024 * 1024, PGC_POSTMASTER, GUC_UNIT_KB, nullptr,
        nullptr, nullptr);
    DefineCustomStringVariable("benzer.gpu_plugin",
                               "The GPU plugin the search service loads, if it exists.", nullptr,
                               &benzer_gpu_plugin, "$libdir/libbenzer_cuda.so", PGC_POSTMASTER, 0,
                               nullptr, nullptr, nullptr);
}

// The service's pid and latch, or false when none runs.
bool service_latch(Latch** latch) {
    SpinLockAcquire(&service_shared->mutex);
    bool running = service_shared->pid != 0;
    *latch = service_shared->latch;
    SpinLockRelease(&service_shared->mutex);
    return running && *latch != nullptr;
}

// A free slot, now FILLING and ours, or -1.
int take_slot() {
    int n = service_shared->nslots;
    int start = MyProcPid % n;
    for (int i = 0; i < n; i++) {
        int index = (start + i) % n;
        ServiceSlot* slot = &service_shared->slots[index];
        SpinLockAcquire(&slot->mutex);
        bool free = slot->state == kSlotFree;
        if (free) {
            slot->state = kSlotFilling;
            slot->owner_latch = MyLatch;
        }
        SpinLockRelease(&slot->mutex);
        if (free) return index;
    }
    return -1;
}

// Whether the service is reading index from its pages right now.
bool service_loading(Relation index) {
    SpinLockAcquire(&service_shared->mutex);
    bool loading =
        service_shared->loading && RelFileNodeEquals(service_shared->loading_node, index->rd_node);
    SpinLockRelease(&service_shared->mutex);
    return loading;
}

uint32 slot_state(ServiceSlot* slot) {
    SpinLockAcquire(&slot->mutex);
    uint32 state = slot->state;
    SpinLockRelease(&slot->mutex);
    return state;
}

}  // namespace

void service_init(void) {
    define_settings();
    if (!process_shared_preload_libraries_in_progress) return;
    previous_shmem_request = shmem_request_hook;
    shmem_request_hook = request_shared_memory;
    previous_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = attach_shared_memory;
    register_worker();
}

namespace {

// Why a query cannot go to the service at all (static string), or null.
const char* refuse(const ServiceQuery& query) {
    bool has_bitmap = query.filter != nullptr;
    if (query.kind == kServiceEngine && query.k > benzer_max_service_k)
        return "more rows asked than the service answers at once";
    if (query.small_stays_here &&
        (has_bitmap ? query.filter->allowed : query.rows) < benzer_service_min_rows)
        return "fewer rows than benzer.service_min_rows";
    if (has_bitmap && query.filter->count != query.rows) return "filter of another size";
    if (service_request_bytes(query.dim, query.rows, has_bitmap, query.k) >
        service_shared->slot_bytes)
        return "request larger than benzer.service_slot_size";
    return nullptr;
}

// Writes a request into a slot we took, and queues it.
void submit(int index_slot, Relation index, uint32 generation, const ServiceQuery& query) {
    ServiceSlot* slot = &service_shared->slots[index_slot];
    char* data = service_slot_data(index_slot);
    bool has_bitmap = query.filter != nullptr;
    slot->kind = query.kind;
    slot->node = index->rd_node;
    slot->generation = generation;
    slot->dim = query.dim;
    slot->score = static_cast<int32>(query.score);
    slot->device = benzer_device;
    slot->k = query.k;
    slot->rows = query.rows;
    slot->allowed = has_bitmap ? query.filter->allowed : query.rows;
    slot->has_bitmap = has_bitmap;
    slot->options = query.options;
    slot->batch_call = query.batch;
    slot->found = 0;
    slot->message[0] = '\0';
    if (query.vector != nullptr) memcpy(data, query.vector, sizeof(float) * query.dim);
    if (has_bitmap)
        memcpy(data + service_bitmap_offset(query.dim), query.filter->bits, (query.rows + 7) / 8);
    SpinLockAcquire(&slot->mutex);
    slot->state = kSlotQueued;
    SpinLockRelease(&slot->mutex);
}

// Gives up a slot whose answer we will not read: the service frees it if
// it is working on it, we do otherwise.
void abandon(ServiceSlot* slot) {
    SpinLockAcquire(&slot->mutex);
    slot->state = slot->state == kSlotRunning ? kSlotAbandoned : kSlotFree;
    SpinLockRelease(&slot->mutex);
}

// At the deadline: takes a request back unless it is answered already
// (then it stays ours to read). Returns the state it had.
uint32 take_back(ServiceSlot* slot) {
    SpinLockAcquire(&slot->mutex);
    uint32 state = slot->state;
    if (state == kSlotRunning)
        slot->state = kSlotAbandoned;
    else if (state == kSlotQueued)
        slot->state = kSlotFree;
    SpinLockRelease(&slot->mutex);
    return state;
}

void release(ServiceSlot* slot) {
    SpinLockAcquire(&slot->mutex);
    slot->state = kSlotFree;
    SpinLockRelease(&slot->mutex);
}

}  // namespace

int service_search_many(Relation index, uint32 generation, const ServiceQuery* queries, int n,
                        ServiceAnswer* answers, ServiceOutcome* outcome) {
    *outcome = {};
    for (int i = 0; i < n; i++) {
        answers[i].found = 0;
        answers[i].served = false;
        answers[i].stats = benzer::SearchStats();
    }
    Latch* latch = nullptr;
    // No service wanted or none configured: nothing worth telling EXPLAIN.
    if (!benzer_use_service || service_shared == nullptr || n <= 0) return 0;
    if (RelationUsesLocalBuffers(index)) {
        outcome->why = "temporary index";
        return 0;
    }
    if (!service_latch(&latch)) {
        outcome->why = "the service is not running";
        return 0;
    }
    int* slot_of = static_cast<int*>(palloc(sizeof(int) * n));
    int served = 0;
    int next = 0;  // the first query not submitted or refused yet
    while (next < n) {
        // Submit as many as there are free slots.
        int first = next;
        int submitted = 0;
        for (; next < n; next++) {
            slot_of[next] = -1;
            const char* why = refuse(queries[next]);
            if (why != nullptr) {
                outcome->why = why;
                continue;
            }
            int index_slot = take_slot();
            if (index_slot < 0) break;
            slot_of[next] = index_slot;
            submit(index_slot, index, generation, queries[next]);
            submitted++;
        }
        if (submitted == 0) {
            if (next < n) outcome->why = "every service slot busy";
            break;
        }
        SetLatch(latch);
        // Wait for this round's answers.
        TimestampTz deadline =
            TimestampTzPlusMilliseconds(GetCurrentTimestamp(), benzer_service_timeout_ms);
        for (;;) {
            bool pending = false;
            for (int i = first; i < next && !pending; i++) {
                if (slot_of[i] < 0) continue;
                uint32 state = slot_state(&service_shared->slots[slot_of[i]]);
                pending = state != kSlotDone && state != kSlotFailed;
            }
            if (!pending) break;
            if (InterruptPending) {
                // Give every slot back first: the cancel may longjmp out of here.
                for (int i = first; i < next; i++)
                    if (slot_of[i] >= 0) abandon(&service_shared->slots[slot_of[i]]);
                CHECK_FOR_INTERRUPTS();
                outcome->why = "interrupted while waiting";
                pfree(slot_of);
                return served;
            }
            long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
            if (remaining <= 0 && service_loading(index)) {
                // The service is reading this index: waiting is still
                // cheaper than every backend reading it for itself.
                deadline =
                    TimestampTzPlusMilliseconds(GetCurrentTimestamp(), benzer_service_timeout_ms);
                continue;
            }
            if (remaining <= 0) {
                for (int i = first; i < next; i++) {
                    if (slot_of[i] < 0) continue;
                    uint32 state = take_back(&service_shared->slots[slot_of[i]]);
                    if (state != kSlotDone && state != kSlotFailed) {
                        slot_of[i] = -1;
                        outcome->why = "the service was busy past benzer.service_timeout";
                    }
                }
                break;
            }
            (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, remaining,
                            PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
        }
        // Read the answers and free the slots.
        for (int i = first; i < next; i++) {
            if (slot_of[i] < 0) continue;
            ServiceSlot* slot = &service_shared->slots[slot_of[i]];
            if (slot_state(slot) == kSlotDone) {
                const ServiceQuery& query = queries[i];
                const char* answer =
                    service_slot_data(slot_of[i]) +
                    service_answer_offset(query.dim, query.rows, query.filter != nullptr);
                ServiceAnswer& out = answers[i];
                out.found = Min(slot->found, query.k);
                if (out.found > 0) {
                    memcpy(out.scores, answer, sizeof(float) * out.found);
                    memcpy(out.labels, answer + MAXALIGN(sizeof(float) * query.k),
                           sizeof(int64) * out.found);
                }
                if (query.kind == kServiceEngine) {
                    out.stats = slot->stats;
                    out.stats.service_why_not = nullptr;
                }
                if (query.kind == kServiceDescribe && out.summary != nullptr)
                    *out.summary = slot->summary;
                out.served = true;
                served++;
                outcome->gpu = outcome->gpu || slot->gpu;
                outcome->batch = Max(outcome->batch, slot->batch);
            } else {
                outcome->why = "the service could not answer";
            }
            release(slot);
        }
    }
    outcome->served = served > 0;
    pfree(slot_of);
    return served;
}

bool service_describe_engine(Relation index, uint32 generation, int dim,
                             ServiceEngineSummary* summary, const char** why) {
    ServiceQuery query = {};
    query.kind = kServiceDescribe;
    query.dim = dim;
    ServiceAnswer answer = {};
    answer.summary = summary;
    ServiceOutcome outcome;
    (void)service_search_many(index, generation, &query, 1, &answer, &outcome);
    *why = outcome.why;
    return answer.served;
}

bool service_wants_device(int64 rows) {
    Latch* latch = nullptr;
    if (!benzer_use_service || service_shared == nullptr || !service_latch(&latch)) return false;
    if (benzer_device == kServiceDeviceGpu) return true;
    SpinLockAcquire(&service_shared->mutex);
    bool gpu = service_shared->gpu;
    SpinLockRelease(&service_shared->mutex);
    return benzer_device == kServiceDeviceAuto && gpu && rows >= benzer_gpu_min_rows;
}

namespace {

// Whether a dynamic shared memory segment of bytes is likely to be created
// without an ERROR: POSIX segments live in /dev/shm, which containers
// often keep small, and dsm_create raises an ERROR when it is full.
bool shared_memory_fits(Size bytes) {
    if (dynamic_shared_memory_type != DSM_IMPL_POSIX) return true;
    struct statvfs fs;
    if (statvfs("/dev/shm", &fs) != 0) return false;
    double available = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
    return static_cast<double>(bytes) * 1.25 + 16.0 * 1024 * 1024 < available;
}

}  // namespace

bool service_kmeans(const float* rows, int64 n, int dim, const benzer::KMeansOptions& options,
                    float* centroids, int32* clusters, double* distances,
                    ServiceKMeansOutcome* outcome) {
    memset(outcome, 0, sizeof(*outcome));
    Latch* latch = nullptr;
    if (service_shared == nullptr || !service_latch(&latch)) {
        outcome->why = "the service is not running";
        return false;
    }
    ServiceKMeansJob job = {};
    job.dim = dim;
    job.k = options.k;
    job.iterations = options.iterations;
    job.spherical = options.spherical;
    job.assign_rows = clusters != nullptr;
    job.seed = options.seed;
    job.sample_size = options.sample_size;
    job.n = n;
    Size bytes = service_kmeans_bytes(job);
    if (!shared_memory_fits(bytes)) {
        outcome->why = "too little shared memory (/dev/shm) for the rows";
        return false;
    }
    int index_slot = take_slot();
    if (index_slot < 0) {
        outcome->why = "every service slot busy";
        return false;
    }
    ServiceSlot* slot = &service_shared->slots[index_slot];
    dsm_segment* segment = dsm_create(bytes, DSM_CREATE_NULL_IF_MAXSEGMENTS);
    if (segment == nullptr) {
        release(slot);
        outcome->why = "no dynamic shared memory segment left";
        return false;
    }
    char* base = static_cast<char*>(dsm_segment_address(segment));
    memcpy(base, &job, sizeof(job));
    memcpy(base + service_kmeans_rows_offset(), rows, sizeof(float) * n * dim);
    slot->kind = kServiceKMeans;
    slot->node = {};
    slot->generation = 0;
    slot->dim = dim;
    slot->device = benzer_device;
    slot->k = options.k;
    slot->rows = n;
    slot->allowed = n;
    slot->has_bitmap = false;
    slot->segment = dsm_segment_handle(segment);
    slot->progress = 0;
    slot->found = 0;
    slot->message[0] = '\0';
    SpinLockAcquire(&slot->mutex);
    slot->state = kSlotQueued;
    SpinLockRelease(&slot->mutex);
    SetLatch(latch);
    // Queued past benzer.service_timeout: cluster here. Once the service
    // works on it, wait as long as it takes (a cancel still withdraws it).
    TimestampTz deadline =
        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), benzer_service_timeout_ms);
    uint32 state;
    for (;;) {
        state = slot_state(slot);
        if (state == kSlotDone || state == kSlotFailed) break;
        if (InterruptPending) {
            abandon(slot);
            CHECK_FOR_INTERRUPTS();
            outcome->why = "interrupted while waiting";
            dsm_detach(segment);
            return false;
        }
        long remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
        if (state == kSlotQueued && remaining <= 0) {
            state = take_back(slot);
            if (state == kSlotQueued) {
                outcome->why = "the service was busy past benzer.service_timeout";
                dsm_detach(segment);
                return false;
            }
            continue;
        }
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                        state == kSlotQueued ? Max(remaining, 1L) : 1000L, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
    bool ok = state == kSlotDone;
    if (ok) {
        const auto* done = reinterpret_cast<const ServiceKMeansJob*>(base);
        memcpy(centroids, base + service_kmeans_centroids_offset(job),
               sizeof(float) * options.k * dim);
        if (clusters != nullptr) {
            memcpy(clusters, base + service_kmeans_clusters_offset(job), sizeof(int32) * n);
            memcpy(distances, base + service_kmeans_distances_offset(job), sizeof(double) * n);
        }
        strlcpy(outcome->device, done->device, sizeof(outcome->device));
        outcome->iterations = done->iterations_run;
    } else {
        outcome->why = "the service could not run it";
    }
    release(slot);
    dsm_detach(segment);
    return ok;
}

bool service_may_answer(Relation index) {
    Latch* latch = nullptr;
    return benzer_use_service && service_shared != nullptr && !RelationUsesLocalBuffers(index) &&
           service_latch(&latch);
}

char* service_describe_index(Relation index) {
    if (service_shared == nullptr) return nullptr;
    char* out = nullptr;
    SpinLockAcquire(&service_shared->mutex);
    ServiceHeldIndex held = {};
    bool found = false;
    for (int i = 0; i < service_shared->held_count && !found; i++) {
        if (RelFileNodeEquals(service_shared->held[i].node, index->rd_node)) {
            held = service_shared->held[i];
            found = true;
        }
    }
    SpinLockRelease(&service_shared->mutex);
    if (found)
        out = psprintf(
            "the search service holds generation %u (%lld rows, %lld MB%s) and "
            "answered %lld queries from it",
            held.generation, static_cast<long long>(held.rows),
            static_cast<long long>(held.bytes >> 20), held.on_gpu ? ", on the GPU" : "",
            static_cast<long long>(held.queries));
    return out;
}

// benzer_search_service(): whether the service runs, where it computes and
// what it has done since it started.
BENZER_FUNCTION(benzer_search_service) {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("benzer_search_service must return a record")));
    desc = BlessTupleDesc(desc);
    Datum values[10];
    bool nulls[10] = {false};
    if (service_shared == nullptr) {
        for (bool& n : nulls) n = true;
        values[1] = CStringGetTextDatum("not preloaded: add benzer to shared_preload_libraries");
        nulls[1] = false;
        PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
    }
    SpinLockAcquire(&service_shared->mutex);
    ServiceShared copy;
    memcpy(&copy, service_shared, offsetof(ServiceShared, slots));
    SpinLockRelease(&service_shared->mutex);
    int64 bytes = 0;
    for (int i = 0; i < copy.held_count; i++) bytes += copy.held[i].bytes;
    values[0] = Int32GetDatum(copy.pid);
    nulls[0] = copy.pid == 0;
    values[1] = CStringGetTextDatum(copy.pid == 0 ? "not running" : copy.device);
    values[2] = CStringGetTextDatum(copy.gpu_absent);
    nulls[2] = copy.gpu_absent[0] == '\0';
    values[3] = Int64GetDatum(copy.requests);
    values[4] = Int64GetDatum(copy.failed);
    values[5] = Int64GetDatum(copy.batches);
    values[6] = Int64GetDatum(copy.largest_batch);
    values[7] = Int64GetDatum(copy.loads);
    values[8] = Int32GetDatum(copy.held_count);
    values[9] = Int64GetDatum(bytes);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
