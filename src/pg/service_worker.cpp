// service_worker.cpp: the search service, a background worker that answers
// the exact searches of every backend of the server.
//
// Why a service. An exact search (a Flat index, or an IVF-Flat index under
// a filter small enough that exact distances to its rows are cheapest) reads
// every allowed row once per query: with eight connections searching at
// once, the same rows cross the memory bus eight times, and a GPU would need
// a CUDA context (hundreds of MB, seconds to start) in every backend. The
// service holds each index's rows once per server, in the device's memory
// (core/device.h: the CPU's, or a GPU's through the plugin), takes the
// requests that arrived together (benzer.service_batch_window) and answers
// them with one pass over the rows: a matrix product of all their queries
// with blocks of rows, each query keeping only the rows its own bitmap
// allows. Results are re-scored on the host with the kernels the backends
// use, so the service returns the backends' answers, exactly.
//
// Where the truth lives. The rows come from the index's own pages (its IVF
// lists, faiss_lists.h), read through shared buffers like any backend
// reads them, so WAL, replicas, crash recovery and dumps are untouched; the
// service's copy is a cache keyed by relfilenode and generation, which a
// merge or REINDEX changes. Rows inserted since (list tails) are not in the
// copy: the backend searches them itself and merges (faiss_lists.cpp).
// One process serves every database: it connects to none and reads pages
// through a fake relcache entry (the relfilenode the request names), as
// recovery does. The backend that asked holds its lock on the index while
// it waits, so the pages cannot go away under a request that is still
// wanted.
//
// Failure. An ERROR while serving fails the batch (its backends search
// themselves) and the service goes on; a FATAL (pg_terminate_backend, a
// postmaster shutdown) ends the process, which the postmaster starts again
// a second later, and its successor fails whatever was left running. No
// PostgreSQL call happens inside the C++ calls (run_guarded), and no C++
// object lives in a frame an ERROR can unwind.
#include <sys/stat.h>

#include <new>
#include <vector>

#include "core/device.h"
#include "core/kmeans.h"
#include "gpu/device_abi.h"
#include "pg/context_owned.h"
#include "pg/faiss.h"
#include "pg/faiss_cache.h"
#include "pg/faiss_lists.h"
#include "pg/faiss_pages.h"
#include "pg/guard.h"
#include "pg/service.h"
#include "pg/service_shmem.h"

extern "C" {
#include "access/xlogutils.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/smgr.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
}

namespace {

// One index generation the service holds. Everything but the device rows
// lives in context.
struct HeldIndex {
    MemoryContext context;
    RelFileNode node;
    uint32 generation;
    int64 rows;
    int dim;
    float* vectors;                // rows x dim, by label
    benzer::DeviceRows* cpu_rows;  // owned
    benzer::DeviceRows* gpu_rows;  // owned, uploaded on first GPU use, or null
    // Or a whole Faiss structure (kServiceEngine): owned through context.
    benzer::Engine* engine;
    ServiceEngineSummary summary;
    // Its search lanes (Engine::search_lane: a graph's copy over the same
    // rows), so that searches needing different widths run at once; owned
    // here, deleted before the engine. lanes_tried: none can be made.
    benzer::Engine** lanes;
    int nlanes;
    bool lanes_tried;
    Size bytes;
    uint64 last_used;
    TimestampTz last_use_time;
    int64 queries;
    HeldIndex* next;
};

MemoryContext g_service_context;  // the held indexes
MemoryContext g_load_context;     // an index being read (reset on ERROR)
MemoryContext g_batch_context;    // one batch's scratch
HeldIndex* g_held = nullptr;
Size g_held_bytes = 0;
uint64 g_clock = 0;
benzer::Device* g_cpu = nullptr;
benzer::Device* g_gpu = nullptr;
Relation g_open_relation = nullptr;  // a fake relcache entry in use

// The slots of the batch being served.
int* g_batch = nullptr;
int g_batch_count = 0;

void finish_slot(int index, bool ok, const char* message) {
    ServiceSlot* slot = &service_shared->slots[index];
    if (!ok) strlcpy(slot->message, message != nullptr ? message : "", sizeof(slot->message));
    SpinLockAcquire(&slot->mutex);
    Latch* owner = nullptr;
    if (slot->state == kSlotAbandoned) {
        slot->state = kSlotFree;
    } else if (slot->state == kSlotRunning) {
        slot->state = ok ? kSlotDone : kSlotFailed;
        owner = slot->owner_latch;
    }
    SpinLockRelease(&slot->mutex);
    if (owner != nullptr) SetLatch(owner);
}

// Fails every slot a service left running, and frees abandoned ones
// (at start, and when this process exits).
void release_all_slots(const char* message) {
    for (int i = 0; i < service_shared->nslots; i++) {
        ServiceSlot* slot = &service_shared->slots[i];
        SpinLockAcquire(&slot->mutex);
        uint32 state = slot->state;
        SpinLockRelease(&slot->mutex);
        if (state == kSlotRunning || state == kSlotAbandoned) finish_slot(i, false, message);
    }
}

void on_service_exit(int, Datum) {
    SpinLockAcquire(&service_shared->mutex);
    service_shared->pid = 0;
    service_shared->latch = nullptr;
    SpinLockRelease(&service_shared->mutex);
    release_all_slots("the search service stopped");
}

// Publishes what the service holds, for benzer_search_service() and
// benzer_index_info().
void publish_held() {
    SpinLockAcquire(&service_shared->mutex);
    int n = 0;
    for (HeldIndex* h = g_held; h != nullptr && n < kServiceHeldShown; h = h->next) {
        ServiceHeldIndex& out = service_shared->held[n++];
        out.node = h->node;
        out.generation = h->generation;
        out.rows = h->rows;
        out.bytes = static_cast<int64>(h->bytes);
        out.queries = h->queries;
        out.on_gpu = h->gpu_rows != nullptr;
        out.engine = h->engine != nullptr;
    }
    service_shared->held_count = n;
    SpinLockRelease(&service_shared->mutex);
}

void drop_device_rows(benzer::DeviceRows* rows) {
    if (rows == nullptr) return;
    benzer::GuardedError error;
    (void)benzer::run_guarded(error, [&] { delete rows; });
}

void forget(HeldIndex* held) {
    HeldIndex** link = &g_held;
    while (*link != held) link = &(*link)->next;
    *link = held->next;
    for (int i = 0; i < held->nlanes; i++) {
        benzer::Engine* lane = held->lanes[i];
        benzer::GuardedError error;
        (void)benzer::run_guarded(error, [&] { delete lane; });
    }
    held->nlanes = 0;
    drop_device_rows(held->cpu_rows);
    drop_device_rows(held->gpu_rows);
    g_held_bytes -= held->bytes;
    MemoryContextDelete(held->context);
}

// Frees the least recently used indexes until bytes more fit.
void make_room(Size bytes) {
    Size limit = static_cast<Size>(benzer_service_memory_mb) * 1024 * 1024;
    while (g_held != nullptr && g_held_bytes + bytes > limit) {
        HeldIndex* oldest = g_held;
        for (HeldIndex* h = g_held; h != nullptr; h = h->next)
            if (h->last_used < oldest->last_used) oldest = h;
        forget(oldest);
    }
}

struct CopyState {
    float* vectors;
    int64 rows;
    int dim;
    uint8* seen;
    bool bad;
};

// faiss_walk_list's visitor: each entry's vector to its label's place.
bool copy_entries(void* arg, const benzer::Label* labels, const uint8* codes, int64 n) {
    auto* state = static_cast<CopyState*>(arg);
    Size width = sizeof(float) * state->dim;
    for (int64 i = 0; i < n; i++) {
        benzer::Label label = labels[i];
        if (label < 0 || label >= state->rows || (state->seen[label >> 3] >> (label & 7)) & 1) {
            state->bad = true;
            return false;
        }
        state->seen[label >> 3] |= static_cast<uint8>(1 << (label & 7));
        memcpy(state->vectors + label * state->dim, codes + i * width, width);
    }
    return true;
}

// Keeps a loaded index (moved under the service's context) and counts the
// load.
HeldIndex* hold(HeldIndex* held) {
    MemoryContextSetParent(held->context, g_service_context);
    held->next = g_held;
    g_held = held;
    g_held_bytes += held->bytes;
    SpinLockAcquire(&service_shared->mutex);
    service_shared->loads++;
    SpinLockRelease(&service_shared->mutex);
    return held;
}

// Reads the rows of the index generation a request names from its pages.
// Returns null (with *why) when the index is not what the request says (a
// merge or REINDEX since) or too large for benzer.service_memory.
HeldIndex* load_index(const ServiceSlot& request, const char** why) {
    Relation relation = CreateFakeRelcacheEntry(request.node);
    g_open_relation = relation;
    FaissMeta meta;
    faiss_read_meta(relation, &meta);
    HeldIndex* held = nullptr;
    *why = "the index changed";
    FaissListRef* directory = nullptr;
    if (meta.generation == request.generation && faiss_lists_paged(meta) &&
        meta.dimensions == request.dim &&
        meta.list_code_size == sizeof(float) * static_cast<Size>(request.dim) &&
        faiss_read_list_directory(relation, meta, &directory)) {
        int64 total = 0;
        for (uint32 l = 0; l < meta.list_count; l++) total += directory[l].rows;
        Size bytes = sizeof(float) * static_cast<Size>(total) * request.dim;
        if (total != request.rows) {
            *why = "the index changed";
        } else if (bytes > static_cast<Size>(benzer_service_memory_mb) * 1024 * 1024) {
            *why = "the index is larger than benzer.service_memory";
        } else {
            make_room(bytes);
            MemoryContext context = AllocSetContextCreate(g_load_context, "benzer service index",
                                                          ALLOCSET_DEFAULT_SIZES);
            held = static_cast<HeldIndex*>(MemoryContextAllocZero(context, sizeof(HeldIndex)));
            held->context = context;
            held->node = request.node;
            held->generation = request.generation;
            held->rows = total;
            held->dim = request.dim;
            held->vectors = static_cast<float*>(
                MemoryContextAllocExtended(context, Max(bytes, 1), MCXT_ALLOC_HUGE));
            held->bytes = bytes;
            CopyState state = {held->vectors, total, request.dim,
                               static_cast<uint8*>(MemoryContextAllocZero(
                                   context, static_cast<Size>((total + 7) / 8) + 1)),
                               false};
            bool same = true;
            for (uint32 l = 0; l < meta.list_count && same && !state.bad; l++)
                same = faiss_walk_list(relation, meta, directory[l], copy_entries, &state);
            if (!same || state.bad) {
                MemoryContextDelete(context);
                held = nullptr;
                *why = state.bad ? "the index's labels are not as expected" : "the index changed";
            } else {
                pfree(state.seen);
            }
        }
    }
    g_open_relation = nullptr;
    FreeFakeRelcacheEntry(relation);
    if (held == nullptr) return nullptr;
    benzer::GuardedError error;
    benzer::Device* cpu = g_cpu;
    if (!benzer::run_guarded(error, [&] {
            held->cpu_rows = cpu->upload(held->vectors, held->rows, held->dim).release();
        })) {
        MemoryContextDelete(held->context);
        raise_guarded_error(error, "search service");
    }
    return hold(held);
}

// Says which index the service is reading (null node: none), so that
// backends waiting for it wait on (service_shmem.h).
void set_loading(const RelFileNode* node) {
    SpinLockAcquire(&service_shared->mutex);
    service_shared->loading = node != nullptr;
    if (node != nullptr) service_shared->loading_node = *node;
    SpinLockRelease(&service_shared->mutex);
}

// Reads the whole Faiss structure of the index generation a request names
// (HNSW, ...) from its blob pages. Returns null (with *why) when the index
// is not what the request says or too large for benzer.service_memory.
HeldIndex* load_engine(const ServiceSlot& request, const char** why) {
    Relation relation = CreateFakeRelcacheEntry(request.node);
    g_open_relation = relation;
    FaissMeta meta;
    faiss_read_meta(relation, &meta);
    HeldIndex* held = nullptr;
    *why = "the index changed";
    Size limit = static_cast<Size>(benzer_service_memory_mb) * 1024 * 1024;
    if (meta.generation != request.generation || meta.factory[0] == '\0' ||
        faiss_lists_paged(meta)) {
        *why = "the index changed";
    } else if (meta.blob.bytes > limit) {
        *why = "the index is larger than benzer.service_memory";
    } else {
        make_room(meta.blob.bytes);
        MemoryContext context =
            AllocSetContextCreate(g_load_context, "benzer service index", ALLOCSET_DEFAULT_SIZES);
        held = static_cast<HeldIndex*>(MemoryContextAllocZero(context, sizeof(HeldIndex)));
        held->context = context;
        held->node = request.node;
        held->generation = request.generation;
        held->dim = meta.dimensions;
        auto* holder = ContextOwned<benzer::Engine>::create(context);
        MemoryContext old = MemoryContextSwitchTo(context);
        bool same = faiss_cache_read_engine(relation, meta, holder);
        MemoryContextSwitchTo(old);
        if (!same) {
            MemoryContextDelete(context);
            held = nullptr;
        } else {
            held->engine = holder->object;
            benzer::Engine* engine = held->engine;
            ServiceEngineSummary& summary = held->summary;
            benzer::GuardedError error;
            if (!benzer::run_guarded(error, [&] {
                    summary.rows = engine->size();
                    summary.nlist = engine->nlist();
                    summary.default_nprobe = engine->default_nprobe();
                    summary.default_ef_search = engine->default_ef_search();
                    summary.default_k_factor = engine->default_k_factor();
                    summary.has_exact_vectors = engine->has_exact_vectors();
                    summary.memory_bytes = static_cast<int64>(engine->memory_bytes());
                    std::string text = engine->describe();
                    snprintf(summary.description, sizeof(summary.description), "%s", text.c_str());
                })) {
                MemoryContextDelete(context);
                raise_guarded_error(error, "search service");
            }
            held->rows = summary.rows;
            held->bytes = Max(static_cast<Size>(summary.memory_bytes), meta.blob.bytes);
        }
    }
    g_open_relation = nullptr;
    FreeFakeRelcacheEntry(relation);
    if (held == nullptr) return nullptr;
    return hold(held);
}

// The held index a request names, read if needed; older generations of
// the same relation are dropped.
HeldIndex* find_index(const ServiceSlot& request, const char** why) {
    HeldIndex* found = nullptr;
    bool engine = request.kind != kServiceExact;
    for (HeldIndex* h = g_held; h != nullptr;) {
        HeldIndex* next = h->next;
        if (RelFileNodeEquals(h->node, request.node)) {
            // A request for an older generation (a search that began
            // before a merge) must not push out the newer copy; reading
            // the metapage tells it that it is stale.
            bool same =
                h->generation == request.generation &&
                (engine ? h->engine != nullptr
                        : h->engine == nullptr && h->dim == request.dim && h->rows == request.rows);
            if (h->generation < request.generation)
                forget(h);
            else if (same)
                found = h;
        }
        h = next;
    }
    if (found == nullptr) {
        set_loading(&request.node);
        found = engine ? load_engine(request, why) : load_index(request, why);
        set_loading(nullptr);
    }
    if (found != nullptr) {
        found->last_used = ++g_clock;
        found->last_use_time = GetCurrentTimestamp();
    }
    return found;
}

// Forgets indexes no search asked for in ten minutes (dropped, rebuilt or
// just idle: their next search reads them again).
void forget_idle() {
    TimestampTz now = GetCurrentTimestamp();
    bool changed = false;
    for (HeldIndex* h = g_held; h != nullptr;) {
        HeldIndex* next = h->next;
        if (TimestampDifferenceExceeds(h->last_use_time, now, 600 * 1000)) {
            forget(h);
            changed = true;
        }
        h = next;
    }
    if (changed) publish_held();
}

// The device a request wants, as far as the service has it.
bool wants_gpu(const ServiceSlot& slot) {
    // The plugin selects at most BENZER_DEVICE_MAX_CANDIDATES per query.
    if (g_gpu == nullptr || slot.kind != kServiceExact ||
        benzer::device_candidates_per_query(slot.k, slot.rows) > BENZER_DEVICE_MAX_CANDIDATES)
        return false;
    if (slot.device == kServiceDeviceGpu) return true;
    return slot.device == kServiceDeviceAuto && slot.rows >= benzer_gpu_min_rows;
}

// Whether two requests' allowed-row bitmaps are the same (or both absent).
bool same_bitmap(int a, int b) {
    const ServiceSlot& x = service_shared->slots[a];
    const ServiceSlot& y = service_shared->slots[b];
    if (x.has_bitmap != y.has_bitmap || x.rows != y.rows || x.allowed != y.allowed) return false;
    return !x.has_bitmap ||
           memcmp(service_slot_data(a) + service_bitmap_offset(x.dim),
                  service_slot_data(b) + service_bitmap_offset(y.dim), (x.rows + 7) / 8) == 0;
}

// Whether requests a and b (slots) can be answered together: the same
// index and device; for structure searches also the same settings.
bool same_group(int a, int b) {
    if (a == b) return true;
    const ServiceSlot& x = service_shared->slots[a];
    const ServiceSlot& y = service_shared->slots[b];
    if (x.kind != y.kind || !RelFileNodeEquals(x.node, y.node) || x.generation != y.generation ||
        x.dim != y.dim || x.rows != y.rows)
        return false;
    if (x.kind == kServiceKMeans) return false;  // each its own
    if (x.kind == kServiceDescribe) return true;
    if (x.kind == kServiceExact) return x.score == y.score && wants_gpu(x) == wants_gpu(y);
    return x.batch_call == y.batch_call && memcmp(&x.options, &y.options, sizeof(x.options)) == 0;
}

// Counts a group's outcome and publishes it.
void count_group(HeldIndex* held, int n, bool ok) {
    held->queries += n;
    SpinLockAcquire(&service_shared->mutex);
    if (ok) {
        service_shared->requests += n;
        service_shared->batches++;
        service_shared->largest_batch = Max(service_shared->largest_batch, n);
    } else {
        service_shared->failed += n;
    }
    SpinLockRelease(&service_shared->mutex);
    publish_held();
}

// Gives held the lanes for `threads` concurrent searches (the engine itself
// is the first), when its structure has them (a graph): each costs a copy
// of the graph, not of the rows.
void ensure_lanes(HeldIndex* held, int threads) {
    int wanted = Min(threads, 64) - 1;
    if (held->lanes_tried || held->nlanes >= wanted) return;
    if (held->lanes == nullptr)
        held->lanes = static_cast<benzer::Engine**>(
            MemoryContextAllocZero(held->context, sizeof(benzer::Engine*) * 64));
    benzer::Engine* engine = held->engine;
    Size bytes = 0;
    benzer::GuardedError error;
    while (held->nlanes < wanted) {
        benzer::Engine* lane = nullptr;
        if (!benzer::run_guarded(error,
                                 [&] {
                                     lane = engine->search_lane();
                                     if (lane != nullptr) bytes = engine->lane_bytes();
                                 }) ||
            lane == nullptr) {
            held->lanes_tried = true;
            return;
        }
        held->lanes[held->nlanes++] = lane;
        held->bytes += bytes;
        g_held_bytes += bytes;
    }
}

// Answers structure searches members[0..n) (one index, the same
// settings). Those of benzer_batch_search calls that share k and the
// allowed rows are one Engine::search_batch call (Faiss runs the queries in
// parallel); index scans' are Engine::search calls on the structure's
// lanes, benzer.service_threads at once, each with its own filter (or, for
// structures without lanes, with a gate per stored knob). Every answer is
// what the backend's own copy gives on the same path.
void serve_engine_group(HeldIndex* held, const int* members, int n) {
    const ServiceSlot& first = service_shared->slots[members[0]];
    int dim = held->dim;
    // Index scans' searches are answered one by one, as a backend's scan
    // answers them (Engine::search); benzer_batch_search's with one batched
    // call, as the backend's batch path does.
    bool batch = first.batch_call && n > 1;
    int64 kmax = 1;
    for (int i = 0; i < n; i++) {
        const ServiceSlot& slot = service_shared->slots[members[i]];
        batch = batch && slot.k == first.k && same_bitmap(members[0], members[i]);
        kmax = Max(kmax, slot.k);
    }
    auto* distances = static_cast<float*>(palloc(sizeof(float) * n * kmax));
    auto* labels = static_cast<benzer::Label*>(palloc(sizeof(benzer::Label) * n * kmax));
    auto* filters = static_cast<benzer::LabelFilter*>(palloc0(sizeof(benzer::LabelFilter) * n));
    auto* requests = static_cast<benzer::SearchRequest*>(palloc(sizeof(benzer::SearchRequest) * n));
    for (int i = 0; i < n; i++) {
        const ServiceSlot& slot = service_shared->slots[members[i]];
        char* data = service_slot_data(members[i]);
        filters[i].bits = reinterpret_cast<const uint8*>(data + service_bitmap_offset(slot.dim));
        filters[i].count = slot.rows;
        filters[i].allowed = slot.allowed;
        new (&requests[i]) benzer::SearchRequest();
        requests[i].query = reinterpret_cast<const float*>(data);
        requests[i].k = slot.k;
        requests[i].filter = slot.has_bitmap ? &filters[i] : nullptr;
        requests[i].distances = distances + i * kmax;
        requests[i].labels = labels + i * kmax;
        if (slot.dim != dim) {
            requests[i].failed = true;
            snprintf(requests[i].error, sizeof(requests[i].error), "dimensions differ");
        }
    }
    benzer::SearchOptions options = first.options;
    benzer::Engine* engine = held->engine;
    int threads = benzer_service_threads;
    if (!batch && n > 1) ensure_lanes(held, threads);
    // The engine, then its lanes (as many as threads).
    int nlanes = 1 + Min(held->nlanes, threads - 1);
    auto* lanes =
        static_cast<const benzer::Engine**>(palloc(sizeof(benzer::Engine*) * Max(nlanes, 1)));
    lanes[0] = engine;
    for (int i = 1; i < nlanes; i++) lanes[i] = held->lanes[i - 1];
    faiss_use_threads(threads);
    benzer::GuardedError error;
    bool ok = first.dim == dim && benzer::run_guarded(error, [&] {
                  if (batch) {
                      std::vector<float> queries(static_cast<size_t>(dim) * n);
                      for (int i = 0; i < n; i++)
                          memcpy(queries.data() + static_cast<size_t>(i) * dim, requests[i].query,
                                 sizeof(float) * dim);
                      std::vector<int64_t> counts(n);
                      benzer::SearchStats stats;
                      engine->search_batch(n, queries.data(), first.k, options, requests[0].filter,
                                           distances, labels, counts.data(), &stats);
                      for (int i = 0; i < n; i++) {
                          requests[i].found = counts[i];
                          // Each request carries the call's work: it was one call.
                          requests[i].stats = stats;
                      }
                  } else if (nlanes > 1) {
                      benzer::Engine::search_each_on_lanes(lanes, nlanes, requests, n, options);
                  } else {
                      engine->search_each(requests, n, options, threads);
                  }
              });
    if (first.dim != dim) snprintf(error.message, sizeof(error.message), "dimensions differ");
    CHECK_FOR_INTERRUPTS();
    int answered = 0;
    for (int i = 0; i < n; i++) {
        ServiceSlot* slot = &service_shared->slots[members[i]];
        const benzer::SearchRequest& r = requests[i];
        bool this_ok = ok && !r.failed;
        if (this_ok) {
            char* answer = service_slot_data(members[i]) +
                           service_answer_offset(slot->dim, slot->rows, slot->has_bitmap);
            int64 found = Min(r.found, slot->k);
            memcpy(answer, r.distances, sizeof(float) * found);
            memcpy(answer + MAXALIGN(sizeof(float) * slot->k), r.labels, sizeof(int64) * found);
            slot->found = found;
            slot->gpu = false;
            slot->batch = n;
            slot->stats = r.stats;
            slot->stats.service_why_not = nullptr;
            answered++;
        }
        finish_slot(members[i], this_ok, !ok ? error.message : r.error);
    }
    count_group(held, answered, answered > 0);
    if (answered < n) count_group(held, n - answered, false);
}

// Whether a slot's owner still wants its answer.
bool still_wanted(const ServiceSlot* slot) {
    SpinLockAcquire(const_cast<slock_t*>(&slot->mutex));
    bool wanted = slot->state == kSlotRunning;
    SpinLockRelease(const_cast<slock_t*>(&slot->mutex));
    return wanted;
}

// Runs a k-means request (service_kmeans in service.cpp): the rows, the
// options and room for the results are in the request's own dynamic
// shared memory segment. The assignment steps run on the GPU when the
// request may use it, else on the CPU device; between steps of ten
// iterations the service checks that the backend still waits (a cancel
// abandons the request) and reports progress in the slot.
void serve_kmeans(int member) {
    ServiceSlot* slot = &service_shared->slots[member];
    dsm_segment* segment = dsm_attach(slot->segment);
    if (segment == nullptr) {
        finish_slot(member, false, "the request's shared memory is gone");
        return;
    }
    char* base = static_cast<char*>(dsm_segment_address(segment));
    ServiceKMeansJob* job = reinterpret_cast<ServiceKMeansJob*>(base);
    if (dsm_segment_map_length(segment) < service_kmeans_bytes(*job)) {
        dsm_detach(segment);
        finish_slot(member, false, "the request's shared memory is too small");
        return;
    }
    benzer::KMeansOptions options;
    options.k = job->k;
    options.iterations = job->iterations;
    options.spherical = job->spherical;
    options.seed = job->seed;
    options.sample_size = job->sample_size;
    bool gpu =
        g_gpu != nullptr && (slot->device == kServiceDeviceGpu ||
                             (slot->device == kServiceDeviceAuto && job->n >= benzer_gpu_min_rows));
    benzer::Device* device = gpu ? g_gpu : g_cpu;
    auto* holder = ContextOwned<benzer::KMeans>::create(g_batch_context);
    const float* rows = reinterpret_cast<const float*>(base + service_kmeans_rows_offset());
    int dim = job->dim;
    int64 n = job->n;
    benzer::GuardedError error;
    bool ok = benzer::run_guarded(error, [&] {
        holder->object = new benzer::KMeans(dim, options);
        holder->object->set_device(device);
        holder->object->set_data(rows, n);
    });
    benzer::KMeans* kmeans = holder->object;
    faiss_use_threads(benzer_service_threads);
    bool done = false;
    while (ok && !done) {
        ok = benzer::run_guarded(error, [&] {
            kmeans->run(10);
            done = kmeans->done();
        });
        CHECK_FOR_INTERRUPTS();
        if (ok) slot->progress = kmeans->progress().iterations;
        if (!still_wanted(slot)) {
            ok = false;
            snprintf(error.message, sizeof(error.message), "withdrawn");
        }
    }
    if (ok) {
        float* centroids = reinterpret_cast<float*>(base + service_kmeans_centroids_offset(*job));
        int32* clusters = reinterpret_cast<int32*>(base + service_kmeans_clusters_offset(*job));
        double* distances = reinterpret_cast<double*>(base + service_kmeans_distances_offset(*job));
        bool assign_rows = job->assign_rows;
        int k = job->k;
        ok = benzer::run_guarded(error, [&] {
            if (assign_rows) kmeans->assign(rows, n, clusters, distances);
            memcpy(centroids, kmeans->centroids(), sizeof(float) * k * dim);
        });
        job->iterations_run = kmeans->progress().iterations;
        std::string* name = nullptr;
        if (benzer::run_guarded(error, [&] { name = new std::string(device->name()); })) {
            strlcpy(job->device, name->c_str(), sizeof(job->device));
            (void)benzer::run_guarded(error, [&] { delete name; });
        }
    }
    delete holder->release();
    dsm_detach(segment);
    finish_slot(member, ok, ok ? nullptr : error.message);
    SpinLockAcquire(&service_shared->mutex);
    if (ok) {
        service_shared->requests++;
        service_shared->batches++;
    } else {
        service_shared->failed++;
    }
    SpinLockRelease(&service_shared->mutex);
}

// Answers the requests members[0..n) (one index, one device) with one
// device call.
void serve_group(const int* members, int n) {
    const ServiceSlot& first = service_shared->slots[members[0]];
    if (first.kind == kServiceKMeans) {
        for (int i = 0; i < n; i++) serve_kmeans(members[i]);
        return;
    }
    const char* why = nullptr;
    HeldIndex* held = find_index(first, &why);
    if (held == nullptr) {
        for (int i = 0; i < n; i++) finish_slot(members[i], false, why);
        publish_held();
        return;
    }
    if (first.kind == kServiceDescribe) {
        for (int i = 0; i < n; i++) {
            service_shared->slots[members[i]].summary = held->summary;
            finish_slot(members[i], true, nullptr);
        }
        publish_held();
        return;
    }
    if (first.kind == kServiceEngine) {
        serve_engine_group(held, members, n);
        return;
    }
    benzer::GuardedError error;
    bool gpu = wants_gpu(first);
    if (gpu && held->gpu_rows == nullptr) {
        benzer::Device* device = g_gpu;
        if (!benzer::run_guarded(error, [&] {
                held->gpu_rows = device->upload(held->vectors, held->rows, held->dim).release();
            })) {
            ereport(LOG, (errmsg("benzer search service: GPU upload failed, using the CPU: %s",
                                 error.message)));
            gpu = false;
        }
    }
    auto* queries = static_cast<benzer::DeviceQuery*>(palloc0(sizeof(benzer::DeviceQuery) * n));
    int64 kmax = 1;
    for (int i = 0; i < n; i++) {
        const ServiceSlot& slot = service_shared->slots[members[i]];
        char* data = service_slot_data(members[i]);
        queries[i].vector = reinterpret_cast<const float*>(data);
        queries[i].allowed =
            slot.has_bitmap ? reinterpret_cast<const uint8*>(data + service_bitmap_offset(slot.dim))
                            : nullptr;
        queries[i].allowed_count = slot.allowed;
        queries[i].k = slot.k;
        kmax = Max(kmax, slot.k);
    }
    auto* scores = static_cast<float*>(palloc(sizeof(float) * n * kmax));
    auto* labels = static_cast<benzer::Label*>(palloc(sizeof(benzer::Label) * n * kmax));
    auto* counts = static_cast<int64*>(palloc(sizeof(int64) * n));
    auto score = static_cast<benzer::ExactScore>(first.score);
    faiss_use_threads(benzer_service_threads);
    benzer::Device* device = gpu ? g_gpu : g_cpu;
    const benzer::DeviceRows* rows = gpu ? held->gpu_rows : held->cpu_rows;
    const float* vectors = held->vectors;
    bool ok = benzer::run_guarded(error, [&] {
        benzer::device_search(*device, *rows, vectors, score, queries, n, kmax, scores, labels,
                              counts);
    });
    if (!ok && gpu) {
        ereport(LOG, (errmsg("benzer search service: GPU search failed, using the CPU: %s",
                             error.message)));
        gpu = false;
        device = g_cpu;
        rows = held->cpu_rows;
        ok = benzer::run_guarded(error, [&] {
            benzer::device_search(*device, *rows, vectors, score, queries, n, kmax, scores, labels,
                                  counts);
        });
    }
    CHECK_FOR_INTERRUPTS();
    for (int i = 0; i < n; i++) {
        ServiceSlot* slot = &service_shared->slots[members[i]];
        if (ok) {
            char* answer = service_slot_data(members[i]) +
                           service_answer_offset(slot->dim, slot->rows, slot->has_bitmap);
            int64 found = counts[i];
            memcpy(answer, scores + i * kmax, sizeof(float) * found);
            memcpy(answer + MAXALIGN(sizeof(float) * slot->k), labels + i * kmax,
                   sizeof(int64) * found);
            slot->found = found;
            slot->gpu = gpu;
            slot->batch = n;
        }
        finish_slot(members[i], ok, ok ? nullptr : error.message);
    }
    count_group(held, n, ok);
}

// Moves every QUEUED slot into the batch (RUNNING).
void collect_queued() {
    for (int i = 0; i < service_shared->nslots; i++) {
        ServiceSlot* slot = &service_shared->slots[i];
        SpinLockAcquire(&slot->mutex);
        bool queued = slot->state == kSlotQueued;
        if (queued) slot->state = kSlotRunning;
        SpinLockRelease(&slot->mutex);
        if (queued) g_batch[g_batch_count++] = i;
    }
}

// Serves the batch's slots, grouped by index and device.
void serve_groups() {
    int* members = static_cast<int*>(palloc(sizeof(int) * g_batch_count));
    bool* done = static_cast<bool*>(palloc0(sizeof(bool) * g_batch_count));
    for (int i = 0; i < g_batch_count; i++) {
        if (done[i]) continue;
        int n = 0;
        for (int j = i; j < g_batch_count; j++) {
            if (!done[j] && same_group(g_batch[i], g_batch[j])) {
                members[n++] = g_batch[j];
                done[j] = true;
            }
        }
        serve_group(members, n);
    }
}

// After an ERROR: report it, release what the failed work held, and fail
// the batch's requests (their backends search themselves).
void recover_from_error() {
    HOLD_INTERRUPTS();
    MemoryContextSwitchTo(g_service_context);
    ErrorData* error = CopyErrorData();
    FlushErrorState();
    ereport(LOG, (errmsg("benzer search service: %s", error->message),
                  errdetail("The requests of this batch were searched by their backends.")));
    LWLockReleaseAll();
    AbortBufferIO();
    UnlockBuffers();
    if (g_open_relation != nullptr) {
        FreeFakeRelcacheEntry(g_open_relation);
        g_open_relation = nullptr;
    }
    ResourceOwnerRelease(CurrentResourceOwner, RESOURCE_RELEASE_BEFORE_LOCKS, false, true);
    ResourceOwnerRelease(CurrentResourceOwner, RESOURCE_RELEASE_LOCKS, false, true);
    ResourceOwnerRelease(CurrentResourceOwner, RESOURCE_RELEASE_AFTER_LOCKS, false, true);
    MemoryContextReset(g_load_context);
    set_loading(nullptr);
    for (int i = 0; i < g_batch_count; i++) {
        ServiceSlot* slot = &service_shared->slots[g_batch[i]];
        SpinLockAcquire(&slot->mutex);
        uint32 state = slot->state;
        SpinLockRelease(&slot->mutex);
        if (state == kSlotRunning || state == kSlotAbandoned)
            finish_slot(g_batch[i], false, error->message);
    }
    SpinLockAcquire(&service_shared->mutex);
    service_shared->failed += g_batch_count;
    SpinLockRelease(&service_shared->mutex);
    FreeErrorData(error);
    publish_held();
    RESUME_INTERRUPTS();
}

// Takes what is queued (waiting benzer.service_batch_window for more) and
// serves it. Returns whether there was anything.
bool serve_batch() {
    g_batch_count = 0;
    collect_queued();
    if (g_batch_count == 0) return false;
    if (benzer_service_batch_window_us > 0 && g_batch_count < service_shared->nslots) {
        pg_usleep(benzer_service_batch_window_us);
        collect_queued();
    }
    pgstat_report_activity(STATE_RUNNING, "serving a batch of searches");
    MemoryContext old = MemoryContextSwitchTo(g_batch_context);
    PG_TRY();
    { serve_groups(); }
    PG_CATCH();
    { recover_from_error(); }
    PG_END_TRY();
    MemoryContextSwitchTo(old);
    MemoryContextReset(g_batch_context);
    pgstat_report_activity(STATE_IDLE, nullptr);
    return true;
}

// The plugin path with $libdir expanded.
char* plugin_path() {
    const char* setting = benzer_gpu_plugin != nullptr ? benzer_gpu_plugin : "";
    if (strncmp(setting, "$libdir", 7) == 0) return psprintf("%s%s", pkglib_path, setting + 7);
    return pstrdup(setting);
}

// The CPU device, and the GPU when the plugin finds one.
void open_devices() {
    benzer::GuardedError error;
    if (!benzer::run_guarded(error, [&] { g_cpu = benzer::make_cpu_device().release(); }))
        raise_guarded_error(error, "search service");
    char* path = plugin_path();
    struct stat st;
    char absent[160];
    if (path[0] == '\0' || stat(path, &st) != 0) {
        snprintf(absent, sizeof absent, "no GPU plugin at %s", path[0] ? path : "(none set)");
    } else {
        std::string* why = nullptr;
        benzer::Device* gpu = nullptr;
        bool ok = benzer::run_guarded(error, [&] {
            why = new std::string;
            gpu = benzer::load_gpu_device(path, why).release();
        });
        if (!ok)
            snprintf(absent, sizeof absent, "%s", error.message);
        else if (gpu == nullptr)
            snprintf(absent, sizeof absent, "%s", why->c_str());
        else
            absent[0] = '\0';
        (void)benzer::run_guarded(error, [&] { delete why; });
        g_gpu = gpu;
    }
    std::string* name = nullptr;
    char device[96] = "cpu";
    if (g_gpu != nullptr &&
        benzer::run_guarded(error, [&] { name = new std::string(g_gpu->name()); })) {
        snprintf(device, sizeof device, "%s", name->c_str());
        (void)benzer::run_guarded(error, [&] { delete name; });
    }
    SpinLockAcquire(&service_shared->mutex);
    strlcpy(service_shared->device, device, sizeof(service_shared->device));
    service_shared->gpu = g_gpu != nullptr;
    strlcpy(service_shared->gpu_absent, absent, sizeof(service_shared->gpu_absent));
    SpinLockRelease(&service_shared->mutex);
    ereport(LOG, (errmsg("benzer search service started on %s", device),
                  absent[0] ? errdetail("GPU: %s.", absent) : 0));
}

}  // namespace

void benzer_service_main(Datum) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    // Connected to no database: the service reads pages of every one.
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
    CurrentResourceOwner = ResourceOwnerCreate(nullptr, "benzer search service");
    g_service_context =
        AllocSetContextCreate(TopMemoryContext, "benzer search service", ALLOCSET_DEFAULT_SIZES);
    g_load_context =
        AllocSetContextCreate(g_service_context, "benzer service load", ALLOCSET_DEFAULT_SIZES);
    g_batch_context =
        AllocSetContextCreate(g_service_context, "benzer service batch", ALLOCSET_DEFAULT_SIZES);
    g_batch = static_cast<int*>(
        MemoryContextAlloc(g_service_context, sizeof(int) * service_shared->nslots));
    faiss_install_interrupt_check();
    open_devices();
    release_all_slots("the search service restarted");
    before_shmem_exit(on_service_exit, 0);
    SpinLockAcquire(&service_shared->mutex);
    service_shared->pid = MyProcPid;
    service_shared->latch = MyLatch;
    SpinLockRelease(&service_shared->mutex);
    pgstat_report_activity(STATE_IDLE, nullptr);
    for (;;) {
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10000L,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        while (serve_batch()) CHECK_FOR_INTERRUPTS();
        forget_idle();
    }
}
