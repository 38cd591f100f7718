// faiss_build.cpp: CREATE INDEX, and the merge that folds pending rows in.
//
// Both end the same way: a Faiss index, a label -> TID map and a tombstone
// bitmap written as a new generation of chains (faiss_pages.h).
//
// Build: scan the heap collecting vectors and TIDs in memory (bounded by
// maintenance_work_mem), choose the factory string if none was given,
// train on a sample, add the rows in batches (checking for cancel and
// reporting progress between batches), serialise, and write the pages.
// A table with too few rows to train the chosen structure keeps its rows
// as pending rows (searched exactly) until a merge finds enough.
//
// Merge: with ExclusiveLock on the index (inserts wait, searches go on),
// add the pending rows to a fresh copy of the current structure, or, when
// many rows are dead, re-add only the live ones to an empty copy that keeps
// the training ("compaction"), then switch the metapage to the new chains.
//
// Every Faiss object here is owned by a MemoryContext reset callback, so an
// ERROR (cancel, out of memory) between steps frees it.
#include "pg/faiss.h"

#include "pg/context_owned.h"
#include "pg/faiss_attributes.h"
#include "pg/faiss_cache.h"
#include "pg/faiss_lists.h"
#include "pg/faiss_pages.h"
#include "pg/faiss_search.h"
#include "pg/faiss_tails.h"
#include "pg/guard.h"
#include "pg/guarded.h"
#include "pg/service.h"
#include "pg/vector.h"

extern "C" {
#include "access/tableam.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr int kPhaseCollecting = 2;
constexpr int kPhaseTraining = 3;
constexpr int kPhaseAdding = 4;
constexpr int kPhaseWriting = 5;
constexpr int kPhaseTuning = 6;
constexpr int64 kAddBatch = 8192;
constexpr int64 kDefaultTrainingCap = 262144;

// Zero-filled huge allocation (MemoryContextAllocHuge has no zeroing twin).
void* alloc_huge_zero(Size size) {
    void* p = MemoryContextAllocHuge(CurrentMemoryContext, size);
    memset(p, 0, size);
    return p;
}

// A metapage with no chains (every head invalid: block 0 is the metapage
// itself, so a zeroed head would point a reader at it) and no pending rows.
void init_meta(FaissMeta* meta, int dimensions, benzer::Metric metric, uint32 generation) {
    memset(meta, 0, sizeof(*meta));
    meta->magic = kFaissMagic;
    meta->version = kFaissFormatVersion;
    meta->dimensions = dimensions;
    meta->metric = static_cast<int32>(metric);
    meta->generation = generation;
    meta->blob.head = meta->labels.head = InvalidBlockNumber;
    meta->tombstones.head = meta->attributes.head = InvalidBlockNumber;
    meta->list_directory.head = InvalidBlockNumber;
    meta->pending_head = meta->pending_tail = InvalidBlockNumber;
}

// Rows collected from the heap (or pending pages).
struct RowSet {
    int dim = 0;
    int64 count = 0;
    int64 capacity = 0;
    float* vectors = nullptr;  // count * dim
    ItemPointerData* tids = nullptr;
};

using EngineHolder = ContextOwned<benzer::Engine>;
using AttributesHolder = ContextOwned<benzer::AttributeStore>;

// A holder with an empty store of the index's filter columns (or none).
AttributesHolder* new_attributes_holder(MemoryContext context, const benzer::AttributeKind* kinds,
                                        int count) {
    AttributesHolder* holder = AttributesHolder::create(context);
    if (count > 0)
        guarded("could not prepare filter columns", [&] {
            holder->object = new benzer::AttributeStore(
                std::vector<benzer::AttributeKind>(kinds, kinds + count));
        });
    return holder;
}

// The memory a build of count vectors needs: the vectors and about as much
// again for the Faiss structure.
Size build_memory(int64 count, int dim) {
    return static_cast<Size>(count) * static_cast<Size>(dim) * sizeof(float) * 2;
}

// ERRORs unless count rows fit maintenance_work_mem. expected: the rows
// the whole build will have (an estimate while the table is being read),
// so the hint names the setting that suffices, not the next step up.
void check_build_memory(Relation index, int64 count, int dim, int64 expected) {
    Size limit = static_cast<Size>(maintenance_work_mem) * 1024;
    Size need = build_memory(count, dim);
    if (need <= limit) return;
    Size total = build_memory(Max(count, expected), dim);
    ereport(ERROR,
            (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
             errmsg("faiss index \"%s\" needs about %zu MB to build, maintenance_work_mem is "
                    "%d MB",
                    RelationGetRelationName(index), total / (1024 * 1024) + 1,
                    maintenance_work_mem / 1024),
             errdetail("About %lld rows of %d dimensions, and about as much again for the Faiss "
                       "structure.",
                       static_cast<long long>(Max(count, expected)), dim),
             errhint("SET maintenance_work_mem = '%zuMB' and try again.",
                     total / (1024 * 1024) * 11 / 10 + 16)));
}

void check_dimensions(Relation index, int dim) {
    if (dim > faiss_max_dimensions())
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("faiss indexes support at most %d dimensions, \"%s\" has %d",
                               faiss_max_dimensions(), RelationGetRelationName(index), dim)));
}

// Appends one row to a RowSet, growing it geometrically.
// expected: the rows the whole build will have (for check_build_memory).
void append_row(Relation index, RowSet* rows, const float* vector, ItemPointer tid,
                int64 expected) {
    if (rows->count == rows->capacity) {
        check_build_memory(index, rows->count + 1, rows->dim, expected);
        int64 capacity = rows->capacity == 0 ? 1024 : rows->capacity * 2;
        Size limit_rows = static_cast<Size>(maintenance_work_mem) * 1024 /
                          (static_cast<Size>(rows->dim) * sizeof(float) * 2);
        if (static_cast<Size>(capacity) > limit_rows + 1)
            capacity = static_cast<int64>(limit_rows) + 1;
        Size vector_bytes = sizeof(float) * static_cast<Size>(rows->dim) * capacity;
        Size tid_bytes = sizeof(ItemPointerData) * capacity;
        if (rows->vectors == nullptr) {
            rows->vectors =
                static_cast<float*>(MemoryContextAllocHuge(CurrentMemoryContext, vector_bytes));
            rows->tids = static_cast<ItemPointerData*>(
                MemoryContextAllocHuge(CurrentMemoryContext, tid_bytes));
        } else {
            rows->vectors = static_cast<float*>(repalloc_huge(rows->vectors, vector_bytes));
            rows->tids = static_cast<ItemPointerData*>(repalloc_huge(rows->tids, tid_bytes));
        }
        rows->capacity = capacity;
    }
    memcpy(rows->vectors + rows->count * rows->dim, vector, sizeof(float) * rows->dim);
    rows->tids[rows->count] = *tid;
    rows->count++;
}

struct BuildState {
    Relation index;
    BlockNumber heap_blocks;  // the table's size when the build started
    RowSet rows;
    MemoryContext tuple_context;
    benzer::AttributeKind kinds[kFaissMaxFilterColumns];
    int filter_columns;
    AttributesHolder* attributes;
    benzer::AttributeValue* values;  // scratch, filter_columns entries
};

// table_index_build_scan callback: collects one row.
void build_callback(Relation index, ItemPointer tid, Datum* values, bool* isnull, bool, void* arg) {
    auto* state = static_cast<BuildState*>(arg);
    if (isnull[0]) return;  // NULL vectors are not indexed
    MemoryContext old = MemoryContextSwitchTo(state->tuple_context);
    Vector* v = key_vector(values[0], TupleDescAttr(RelationGetDescr(index), 0)->atttypid);
    if (state->rows.dim == 0) {
        check_dimensions(index, v->dim);
        state->rows.dim = v->dim;
    } else if (v->dim != state->rows.dim) {
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION),
                 errmsg("faiss index \"%s\" needs vectors of one dimension: expected %d, found %d",
                        RelationGetRelationName(index), state->rows.dim, v->dim),
                 errhint("Give the column a type modifier, e.g. vector(%d), or index a partial "
                         "subset with one dimension.",
                         state->rows.dim)));
    }
    if (state->filter_columns > 0) {
        faiss_attribute_values(state->kinds, state->filter_columns, index, values, isnull,
                               state->values);
        benzer::AttributeStore* store = state->attributes->object;
        const benzer::AttributeValue* row = state->values;
        benzer::GuardedError error;
        if (!benzer::run_guarded(error, [&] { store->append(row); }))
            raise_guarded_error(error, "could not store filter columns");
    }
    MemoryContextSwitchTo(old);
    faiss_check_norm(index, v->x, v->dim, "vector");
    // Rows expected in all, from how far into the table this row is.
    BlockNumber block = ItemPointerGetBlockNumber(tid);
    int64 expected = static_cast<int64>(static_cast<double>(state->rows.count + 1) *
                                        Max(state->heap_blocks, block + 1) / (block + 1));
    append_row(index, &state->rows, v->x, tid, expected);
    MemoryContextReset(state->tuple_context);
    if ((state->rows.count & 1023) == 0)
        pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, state->rows.count);
}

// A training sample: every k-th row, deterministic.
float* training_sample(const RowSet& rows, int64 wanted, int64* sample_count) {
    if (wanted >= rows.count) {
        *sample_count = rows.count;
        return rows.vectors;
    }
    float* sample = static_cast<float*>(MemoryContextAllocHuge(
        CurrentMemoryContext, sizeof(float) * static_cast<Size>(rows.dim) * wanted));
    double step = static_cast<double>(rows.count) / static_cast<double>(wanted);
    for (int64 i = 0; i < wanted; i++) {
        int64 source = static_cast<int64>(static_cast<double>(i) * step);
        memcpy(sample + i * rows.dim, rows.vectors + source * rows.dim, sizeof(float) * rows.dim);
    }
    *sample_count = wanted;
    return sample;
}

// Creates and trains the engine for rows. When there are too few rows for
// the structure: ERROR, or, with allow_pending (a merge of an index built on
// an empty table), leaves holder empty so the rows stay pending.
// On a GPU (or with benzer.device = gpu), an IVF index's coarse k-means
// runs in the search service, which owns the device (service_kmeans), and
// Faiss then trains only the rest here. Returns false when it did not (the
// structure has no such step, raw inner product, the service declined):
// the caller trains as usual.
bool train_coarse_in_service(Relation index, benzer::Engine* engine, benzer::Metric metric,
                             const float* sample, int64 count, int dim) {
    benzer::Engine::CoarseTraining plan;
    bool coarse = false;
    guarded("could not train faiss index", [&] { coarse = engine->coarse_training(&plan); });
    // Our k-means is L2 or cosine (spherical on normalised rows); Faiss's
    // inner-product clustering keeps raw rows.
    // One list (a Flat index kept in pages) needs no clustering worth a trip.
    if (!coarse || plan.nlist < 2 || metric == benzer::Metric::kInnerProduct ||
        !service_wants_device(count))
        return false;
    benzer::KMeansOptions options;
    options.k = plan.nlist;
    options.iterations = Max(plan.iterations, 1);
    options.spherical = plan.spherical;
    options.seed = plan.seed;
    options.sample_size = static_cast<int64>(plan.nlist) * Max(plan.points_per_centroid, 1);
    if (count < options.k) return false;
    auto* centroids =
        static_cast<float*>(palloc(sizeof(float) * static_cast<Size>(plan.nlist) * dim));
    ServiceKMeansOutcome outcome;
    if (!service_kmeans(sample, count, dim, options, centroids, nullptr, nullptr, &outcome)) {
        ereport(DEBUG1, (errmsg("faiss index \"%s\": coarse k-means in this backend: %s",
                                RelationGetRelationName(index),
                                outcome.why != nullptr ? outcome.why : "the service declined")));
        pfree(centroids);
        return false;
    }
    guarded("could not train faiss index",
            [&] { engine->train_with_centroids(sample, count, centroids); });
    ereport(DEBUG1, (errmsg("faiss index \"%s\": %d coarse centroids trained by the search "
                            "service on %s (%d iterations)",
                            RelationGetRelationName(index), plan.nlist, outcome.device,
                            outcome.iterations)));
    pfree(centroids);
    return true;
}

void create_and_train(Relation index, const FaissOptions* options, benzer::Metric metric,
                      const RowSet& rows, EngineHolder* holder, char* factory_out,
                      bool allow_pending) {
    const char* requested = faiss_option_factory(options);
    char factory[kFaissMaxFactory];
    // The std::string lives only inside the guarded lambda: nothing with a
    // destructor may be live when an ERROR longjmps out of this frame.
    guarded("could not choose a faiss index", [&] {
        std::string chosen = requested[0] != '\0'
                                 ? std::string(requested)
                                 : benzer::choose_factory(rows.count, rows.dim, metric);
        snprintf(factory, sizeof(factory), "%s", chosen.c_str());
    });
    // A plain Flat index keeps its rows in pages too: as one IVF list,
    // which a search reads whole through shared buffers (exact, like Flat),
    // instead of a private copy in every backend. The index still says
    // "Flat"; lists_in_pages = off keeps the in-memory structure.
    const char* structure =
        options->lists_in_pages && strcmp(factory, "Flat") == 0 ? "IVF1,Flat" : factory;
    guarded("invalid faiss index", [&] {
        holder->object = benzer::Engine::create(structure, rows.dim, metric);
        holder->object->set_defaults(options->nprobe, options->ef_search, options->ef_construction,
                                     static_cast<float>(options->k_factor));
    });
    int64 need = 0;
    guarded("invalid faiss index", [&] { need = holder->object->min_training_rows(); });
    if (rows.count < need) {
        // An empty table is normal (the index is created before the data);
        // its rows wait as pending rows until a merge can train. Some rows,
        // but too few, means the factory string does not fit the table.
        if (rows.count > 0 && !allow_pending)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("faiss index \"%s\": \"%s\" needs at least %lld rows to train, the "
                            "table has %lld",
                            RelationGetRelationName(index), factory, static_cast<long long>(need),
                            static_cast<long long>(rows.count)),
                     errhint("Use fewer IVF lists (nlist of 4 to 16 times the square root of "
                             "the row count), fewer PQ bits, or a Flat index; or leave out "
                             "factory and let benzer choose.")));
        delete holder->release();
        factory_out[0] = '\0';
        return;
    }
    strlcpy(factory_out, factory, kFaissMaxFactory);

    int64 wanted = options->training_sample > 0 ? options->training_sample : kDefaultTrainingCap;
    wanted = Max(wanted, need);
    int64 sample_count = 0;
    float* sample = training_sample(rows, wanted, &sample_count);
    pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, kPhaseTraining);
    faiss_use_threads(benzer_build_threads);
    if (!train_coarse_in_service(index, holder->object, metric, sample, sample_count, rows.dim))
        guarded("could not train faiss index",
                [&] { holder->object->train(sample, sample_count); });
    if (sample != rows.vectors) pfree(sample);
}

// Adds rows to the engine in batches, checking for cancel between them.
void add_rows(benzer::Engine* engine, const float* vectors, int64 count, int dim,
              int64 progress_base) {
    pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, kPhaseAdding);
    faiss_use_threads(benzer_build_threads);
    for (int64 done = 0; done < count; done += kAddBatch) {
        CHECK_FOR_INTERRUPTS();
        int64 n = Min(kAddBatch, count - done);
        guarded("could not add rows to faiss index", [&] { engine->add(vectors + done * dim, n); });
        pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, progress_base + done + n);
    }
}

// Measures the engine's search settings for the index's recall target
// (core/tuning.h) into *table. rows: the indexed rows by label in the
// engine's space, or null to read them from the engine (which must keep
// exact vectors; otherwise the table is left as it is). attributes: the
// filter columns' values, whose common values are measured as filters.
void tune_engine(Relation index, benzer::Engine* engine, const benzer::RowSource* rows,
                 const benzer::AttributeStore* attributes, benzer::TuningTable* table) {
    pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, kPhaseTuning);
    faiss_use_threads(benzer_build_threads);
    double target = faiss_index_recall_target(index);
    guarded("could not tune faiss index search settings", [&] {
        benzer::TuningRequest request;
        request.target = target;
        std::vector<std::vector<uint8>> samples;
        std::vector<benzer::LabelFilter> filters;
        if (attributes != nullptr) {
            samples = attributes->sample_filters(4, 2000, 0.5);
            for (const auto& bits : samples)
                filters.push_back({bits.data(), attributes->rows(),
                                   benzer::count_bits(bits.data(), bits.size())});
        }
        request.filters = filters.data();
        request.filter_count = static_cast<int32>(filters.size());
        if (rows != nullptr) {
            engine->tune(request, *rows, table);
        } else if (engine->has_exact_vectors()) {
            engine->tune(request, engine->exact_rows(), table);
        }
    });
}

// The rows of a build in the engine's space: the engine's own copy when it
// keeps exact vectors, else the collected rows (normalised in place for
// cosine: they are not needed after adding).
void tune_build(Relation index, benzer::Engine* engine, RowSet* rows, benzer::Metric metric,
                const benzer::AttributeStore* attributes, benzer::TuningTable* table) {
    bool exact = false;
    guarded("could not tune faiss index search settings",
            [&] { exact = engine->has_exact_vectors(); });
    if (exact) {
        tune_engine(index, engine, nullptr, attributes, table);
        return;
    }
    if (metric == benzer::Metric::kCosine)
        benzer::normalize_vectors(rows->vectors, rows->count, rows->dim);
    benzer::RowSource source;
    source.count = rows->count;
    source.contiguous = rows->vectors;
    tune_engine(index, engine, &source, attributes, table);
}

// Gives the engine's rows labels in list order when its lists go to pages
// (Engine::relabel_by_list: each list page then holds a known range of
// labels), and permutes what is kept by label the same way: the TIDs, the
// tombstone bitmap (if any) and the filter columns' values (into a fresh
// store with the same kinds).
void relabel_for_pages(Relation index, benzer::Engine* engine, ItemPointerData* tids, int64 count,
                       uint8* tombstones, AttributesHolder* attributes) {
    if (!faiss_get_options(index)->lists_in_pages) return;
    bool pageable = false;
    int64 rows = 0;
    guarded("could not write faiss index", [&] {
        pageable = engine->lists_pageable();
        rows = engine->size();
    });
    if (!pageable || rows != count || count <= 0) return;
    auto* new_label = static_cast<benzer::Label*>(
        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(benzer::Label) * count));
    guarded("could not write faiss index", [&] { engine->relabel_by_list(new_label); });
    auto* old_label = static_cast<benzer::Label*>(
        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(benzer::Label) * count));
    for (int64 old = 0; old < count; old++) old_label[new_label[old]] = old;

    auto* moved = static_cast<ItemPointerData*>(
        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ItemPointerData) * count));
    for (int64 label = 0; label < count; label++) moved[label] = tids[old_label[label]];
    memcpy(tids, moved, sizeof(ItemPointerData) * count);
    pfree(moved);
    if (tombstones != nullptr) {
        Size bytes = static_cast<Size>((count + 7) / 8);
        auto* bits = static_cast<uint8*>(alloc_huge_zero(bytes));
        for (int64 label = 0; label < count; label++) {
            int64 old = old_label[label];
            if (tombstones[old >> 3] & (1 << (old & 7)))
                bits[label >> 3] |= static_cast<uint8>(1u << (label & 7));
        }
        memcpy(tombstones, bits, bytes);
        pfree(bits);
    }
    if (attributes != nullptr && attributes->object != nullptr) {
        benzer::AttributeStore* from = attributes->object;
        benzer::AttributeStore* to = nullptr;
        guarded("could not store filter columns", [&] {
            std::vector<benzer::AttributeKind> kinds;
            for (int c = 0; c < from->columns(); c++) kinds.push_back(from->kind(c));
            to = new benzer::AttributeStore(kinds);
            std::unique_ptr<benzer::AttributeStore> owner(to);
            for (int64 label = 0; label < count; label++) to->append_from(*from, old_label[label]);
            owner.release();
        });
        attributes->object = to;
        delete from;
    }
    pfree(old_label);
    pfree(new_label);
}

// Serialises the engine into a palloc'd buffer; apart: with the coarse
// centroids after the rest (Engine::serialize_apart), for lists in pages.
char* serialize_engine(benzer::Engine* engine, uint64* bytes, bool apart = false) {
    Size size = 0;
    guarded("could not serialise faiss index",
            [&] { size = apart ? engine->serialized_apart_size() : engine->serialized_size(); });
    char* buffer = static_cast<char*>(MemoryContextAllocHuge(CurrentMemoryContext, Max(size, 1)));
    guarded("could not serialise faiss index", [&] {
        if (apart)
            engine->serialize_apart(reinterpret_cast<uint8*>(buffer), size);
        else
            engine->serialize(reinterpret_cast<uint8*>(buffer), size);
    });
    *bytes = size;
    return buffer;
}

// Writes the chains of a generation and fills their places in meta.
void write_generation(Relation index, FaissMeta* meta, benzer::Engine* engine,
                      benzer::AttributeStore* attributes, const ItemPointerData* labels,
                      int64 nlabels, const uint8* tombstones, bool log_each) {
    pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, kPhaseWriting);
    uint64 blob_bytes = 0;
    char* blob = nullptr;
    bool paged = false;
    if (engine != nullptr && faiss_get_options(index)->lists_in_pages)
        guarded("could not write faiss index", [&] { paged = engine->lists_pageable(); });
    meta->list_directory = {InvalidBlockNumber, 0, 0};
    meta->list_tails = {InvalidBlockNumber, 0, 0};
    meta->tail_rows = 0;
    meta->list_pages = 0;
    meta->list_count = 0;
    meta->list_code_size = 0;
    if (paged) {
        // IVF lists go to their own pages (faiss_lists.h); the blob keeps
        // the trained structure without rows.
        faiss_write_lists(index, meta, engine, log_each);
        faiss_write_tail_directory(index, meta, log_each);
        meta->version = kFaissFormatVersionPagedLists;
        EngineHolder* shell = EngineHolder::create(CurrentMemoryContext);
        guarded("could not write faiss index", [&] { shell->object = engine->clone_empty(); });
        blob = serialize_engine(shell->object, &blob_bytes, true);
        delete shell->release();
    } else {
        meta->version = kFaissFormatVersion;
        if (engine != nullptr) blob = serialize_engine(engine, &blob_bytes);
    }
    meta->blob =
        faiss_write_chain(index, kFaissPageBlob, meta->generation, blob, blob_bytes, log_each);
    if (blob != nullptr) pfree(blob);
    meta->labels = faiss_write_chain(
        index, kFaissPageLabels, meta->generation, reinterpret_cast<const char*>(labels),
        sizeof(ItemPointerData) * static_cast<uint64>(nlabels), log_each);
    uint64 bitmap_bytes = static_cast<uint64>((nlabels + 7) / 8);
    char* zeros = nullptr;
    if (tombstones == nullptr) zeros = static_cast<char*>(alloc_huge_zero(bitmap_bytes + 1));
    meta->tombstones =
        faiss_write_chain(index, kFaissPageTombstones, meta->generation,
                          tombstones != nullptr ? reinterpret_cast<const char*>(tombstones) : zeros,
                          bitmap_bytes, log_each);
    if (zeros != nullptr) pfree(zeros);
    meta->attributes = {InvalidBlockNumber, 0, 0};
    if (attributes != nullptr) {
        Size size = 0;
        guarded("could not store filter columns", [&] { size = attributes->serialized_size(); });
        char* data = static_cast<char*>(MemoryContextAllocHuge(CurrentMemoryContext, Max(size, 1)));
        guarded("could not store filter columns",
                [&] { attributes->serialize(reinterpret_cast<uint8*>(data), size); });
        meta->attributes =
            faiss_write_chain(index, kFaissPageAttributes, meta->generation, data, size, log_each);
        pfree(data);
    }
    meta->main_rows = nlabels;
}

}  // namespace

IndexBuildResult* faiss_build(Relation heap, Relation index, IndexInfo* info) {
    if (RelationGetNumberOfBlocks(index) != 0)
        elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
    faiss_install_interrupt_check();
    FaissOptions* options = faiss_get_options(index);
    benzer::Metric metric = faiss_index_metric(index);

    MemoryContext build_context =
        AllocSetContextCreate(CurrentMemoryContext, "benzer faiss build", ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(build_context);
    EngineHolder* holder = EngineHolder::create(build_context);

    BuildState state;
    state.index = index;
    state.heap_blocks = RelationGetNumberOfBlocks(heap);
    state.rows.dim = faiss_column_typmod_dim(index);
    if (state.rows.dim > 0) check_dimensions(index, state.rows.dim);
    // Before reading the table, and even when it is empty: a bad string
    // would otherwise wait for the first merge (in autovacuum).
    faiss_check_factory(faiss_option_factory(options), state.rows.dim);
    state.tuple_context =
        AllocSetContextCreate(build_context, "benzer faiss build tuple", ALLOCSET_DEFAULT_SIZES);
    state.filter_columns = faiss_filter_kinds(index, state.kinds);
    state.attributes = new_attributes_holder(build_context, state.kinds, state.filter_columns);
    state.values = static_cast<benzer::AttributeValue*>(
        palloc0(sizeof(benzer::AttributeValue) * Max(state.filter_columns, 1)));

    pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, kPhaseCollecting);
    // The scan's return value counts every live heap row; the callback
    // only sees the rows of a partial index's predicate, and reporting
    // those would make the table look smaller to the planner.
    double heap_tuples =
        table_index_build_scan(heap, index, info, true, true, build_callback, &state, nullptr);
    RowSet& rows = state.rows;

    FaissMeta meta;
    init_meta(&meta, rows.dim, metric, 1);
    meta.built_rows = rows.count;

    pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, rows.count);
    if (rows.count > 0) create_and_train(index, options, metric, rows, holder, meta.factory, false);

    // Block 0 is the metapage; chains follow. (Rows too few to train
    // cannot happen here: create_and_train ERRORs unless the table is
    // empty.)
    faiss_write_new_meta(index, MAIN_FORKNUM, &meta, false);
    if (holder->object != nullptr) {
        add_rows(holder->object, rows.vectors, rows.count, rows.dim, 0);
        tune_build(index, holder->object, &rows, metric, state.attributes->object, &meta.tuning);
        relabel_for_pages(index, holder->object, rows.tids, rows.count, nullptr, state.attributes);
        write_generation(index, &meta, holder->object, state.attributes->object, rows.tids,
                         rows.count, nullptr, false);
    } else {
        write_generation(index, &meta, nullptr, state.attributes->object, nullptr, 0, nullptr,
                         false);
    }
    faiss_update_meta(index, &meta);

    if (RelationNeedsWAL(index))
        log_newpage_range(index, MAIN_FORKNUM, 0, RelationGetNumberOfBlocks(index), true);

    // Keep what we built: the next query in this backend need not load it.
    // (Lists in pages are read through shared buffers; the rest is small.)
    if (faiss_lists_paged(meta))
        faiss_cache_supersede(index, meta.generation);
    else if (holder->object != nullptr)
        faiss_cache_insert(index, meta.generation, holder, state.attributes, rows.tids, rows.count);

    MemoryContextSwitchTo(old);
    IndexBuildResult* result = static_cast<IndexBuildResult*>(palloc(sizeof(IndexBuildResult)));
    result->heap_tuples = heap_tuples;
    result->index_tuples = static_cast<double>(rows.count);
    MemoryContextDelete(build_context);
    return result;
}

void faiss_build_empty(Relation index) {
    FaissMeta meta;
    // Generation 0: no chains yet; the first insert or merge writes them.
    init_meta(&meta, faiss_column_typmod_dim(index), faiss_index_metric(index), 0);
    faiss_write_new_meta(index, INIT_FORKNUM, &meta, true);
}

// Reads a whole chain, which must be of meta's generation (the caller holds
// ExclusiveLock, so no merge can race).
static char* read_chain_or_error(Relation index, const FaissMeta& meta, const FaissChain& chain,
                                 FaissPageKind kind) {
    char* data = nullptr;
    if (chain.head == InvalidBlockNumber) return nullptr;
    if (!faiss_read_chain(index, chain, kind, meta.generation, &data))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\" changed during a merge",
                               RelationGetRelationName(index))));
    return data;
}

// Appends the rows of meta's list tails to engine's lists (loaded from the
// pages), with labels *nold on, and their TIDs, live tombstone bits and
// filter values to the old generation's arrays, which grow; *nold grows.
static void fold_tails_in(Relation index, const FaissMeta& meta, benzer::Engine* engine,
                          ItemPointerData** labels, uint8** tombstones,
                          benzer::AttributeStore* attributes, int64* nold) {
    FaissTailRows tails;
    faiss_tail_rows_init(&tails, meta.list_code_size);
    if (!faiss_read_tails(index, meta, &tails))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\" changed during a merge",
                               RelationGetRelationName(index))));
    if (tails.count == 0) return;
    int64 first = *nold, total = first + tails.count;
    auto* grown_labels = static_cast<ItemPointerData*>(
        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ItemPointerData) * total));
    if (first > 0) memcpy(grown_labels, *labels, sizeof(ItemPointerData) * first);
    memcpy(grown_labels + first, tails.tids, sizeof(ItemPointerData) * tails.count);
    auto* grown_tombstones = static_cast<uint8*>(alloc_huge_zero((total + 7) / 8 + 1));
    if (first > 0 && *tombstones != nullptr) memcpy(grown_tombstones, *tombstones, (first + 7) / 8);
    // Bits past the old rows may be set as padding: clear the tails' bits.
    for (int64 label = first; label < total; label++)
        grown_tombstones[label >> 3] &= static_cast<uint8>(~(1u << (label & 7)));
    guarded("could not merge faiss list tails", [&] {
        // Rows come list by list: one call a run of the same list.
        int64 i = 0;
        while (i < tails.count) {
            int64 end = i + 1;
            while (end < tails.count && tails.lists[end] == tails.lists[i]) end++;
            std::vector<benzer::Label> run(static_cast<size_t>(end - i));
            for (int64 j = i; j < end; j++) run[static_cast<size_t>(j - i)] = first + j;
            engine->append_list(tails.lists[i], end - i, tails.codes + i * tails.code_size,
                                run.data());
            i = end;
        }
        engine->finish_lists();
        if (attributes != nullptr)
            for (int64 j = 0; j < tails.count; j++)
                attributes->append_encoded(
                    tails.attributes + tails.attribute_offsets[j],
                    tails.attribute_offsets[j + 1] - tails.attribute_offsets[j]);
    });
    *labels = grown_labels;
    *tombstones = grown_tombstones;
    *nold = total;
}

bool faiss_merge(Relation index, bool compact, bool wait) {
    if (wait)
        LockRelation(index, ExclusiveLock);
    else if (!ConditionalLockRelation(index, ExclusiveLock))
        return false;
    faiss_install_interrupt_check();

    FaissMeta meta;
    faiss_read_meta(index, &meta);
    FaissOptions* options = faiss_get_options(index);
    benzer::Metric metric = static_cast<benzer::Metric>(meta.metric);
    // Before writing: pages a crashed or failed merge left behind are then
    // what this one writes into.
    faiss_reclaim_orphans(index, meta);

    MemoryContext merge_context =
        AllocSetContextCreate(CurrentMemoryContext, "benzer faiss merge", ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(merge_context);
    EngineHolder* holder = EngineHolder::create(merge_context);

    FaissPendingRows pending;
    if (!faiss_read_pending(index, meta, &pending))
        ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                        errmsg("faiss index \"%s\": pending rows changed during a merge",
                               RelationGetRelationName(index))));
    bool drop_dead = meta.dead_rows > 0 && (compact || meta.dead_rows * 5 > meta.main_rows);
    // An explicit merge (benzer_index_merge waits) also folds the rows
    // inserted into list tails back into the lists; VACUUM's merges do so
    // only when they run for other reasons.
    bool fold_tails = wait && faiss_has_tails(meta) && meta.tail_rows > 0;
    if (pending.count == 0 && !drop_dead && !fold_tails) {
        MemoryContextSwitchTo(old);
        MemoryContextDelete(merge_context);
        UnlockRelation(index, ExclusiveLock);
        return true;
    }
    int dim = meta.dimensions;
    if (!wait && build_memory(meta.main_rows + pending.count, Max(dim, 1)) >
                     static_cast<Size>(maintenance_work_mem) * 1024) {
        // VACUUM must not fail because the index outgrew the setting: the
        // rows stay pending (and searched exactly) until a merge with more
        // memory.
        ereport(
            WARNING,
            (errmsg("faiss index \"%s\": %lld pending rows not merged, the merge needs about "
                    "%zu MB and maintenance_work_mem is %d MB",
                    RelationGetRelationName(index), static_cast<long long>(pending.count),
                    build_memory(meta.main_rows + pending.count, Max(dim, 1)) / (1024 * 1024) + 1,
                    maintenance_work_mem / 1024),
             errhint("Raise maintenance_work_mem and run VACUUM or benzer_index_merge().")));
        MemoryContextSwitchTo(old);
        MemoryContextDelete(merge_context);
        UnlockRelation(index, ExclusiveLock);
        return false;
    }
    check_build_memory(index, meta.main_rows + pending.count, Max(dim, 1),
                       meta.main_rows + pending.count);

    ItemPointerData* old_labels = reinterpret_cast<ItemPointerData*>(
        read_chain_or_error(index, meta, meta.labels, kFaissPageLabels));
    uint8* old_tombstones = reinterpret_cast<uint8*>(
        read_chain_or_error(index, meta, meta.tombstones, kFaissPageTombstones));
    int64 nold = meta.main_rows;

    FaissMeta next = meta;
    next.generation = meta.generation + 1;
    next.pending_head = InvalidBlockNumber;
    next.pending_tail = InvalidBlockNumber;
    next.merges = meta.merges + 1;

    ItemPointerData* labels = nullptr;
    uint8* tombstones = nullptr;
    int64 nlabels = 0;

    // Filter columns: the old values, and a new store that receives the
    // values of every row the new generation keeps, in label order.
    benzer::AttributeKind kinds[kFaissMaxFilterColumns];
    int filter_columns = faiss_filter_kinds(index, kinds);
    AttributesHolder* old_attributes = new_attributes_holder(merge_context, kinds, 0);
    AttributesHolder* attributes = new_attributes_holder(merge_context, kinds, filter_columns);
    if (filter_columns > 0 && meta.attributes.head != InvalidBlockNumber) {
        char* data = read_chain_or_error(index, meta, meta.attributes, kFaissPageAttributes);
        guarded("could not load filter columns", [&] {
            old_attributes->object = benzer::AttributeStore::deserialize(
                reinterpret_cast<const uint8*>(data), meta.attributes.bytes);
        });
        pfree(data);
    }
    // Appends the old values of label, or of pending row i, to the new store.
    auto keep_old_attributes = [&](int64 label) {
        if (attributes->object == nullptr || old_attributes->object == nullptr) return;
        benzer::AttributeStore* to = attributes->object;
        benzer::AttributeStore* from = old_attributes->object;
        guarded("could not merge filter columns", [&] { to->append_from(*from, label); });
    };
    auto add_pending_attributes = [&]() {
        if (attributes->object == nullptr) return;
        benzer::AttributeStore* to = attributes->object;
        for (int64 i = 0; i < pending.count; i++) {
            const uint8* bytes = pending.attributes + pending.attribute_offsets[i];
            Size length = pending.attribute_offsets[i + 1] - pending.attribute_offsets[i];
            guarded("could not merge filter columns", [&] { to->append_encoded(bytes, length); });
        }
    };

    if (meta.factory[0] == '\0') {
        // Untrained: train on the pending rows if there are enough now.
        RowSet rows;
        rows.dim = dim;
        rows.count = rows.capacity = pending.count;
        rows.vectors = pending.vectors;
        rows.tids = pending.tids;
        create_and_train(index, options, metric, rows, holder, next.factory, true);
        if (holder->object == nullptr) {
            MemoryContextSwitchTo(old);
            MemoryContextDelete(merge_context);
            UnlockRelation(index, ExclusiveLock);
            return true;  // still too few rows; nothing changes
        }
        add_rows(holder->object, pending.vectors, pending.count, dim, 0);
        tune_build(index, holder->object, &rows, metric, attributes->object, &next.tuning);
        labels = pending.tids;
        nlabels = pending.count;
        add_pending_attributes();
        next.dead_rows = 0;
    } else {
        char* blob = read_chain_or_error(index, meta, meta.blob, kFaissPageBlob);
        guarded("could not load faiss index", [&] {
            holder->object = benzer::Engine::deserialize(reinterpret_cast<const uint8*>(blob),
                                                         meta.blob.bytes, metric);
        });
        pfree(blob);
        // Lists in pages: read them back into the structure.
        if (faiss_lists_paged(meta)) faiss_load_lists(index, meta, holder->object);
        // Rows inserted into list tails join their lists as old rows with
        // the next labels (the new generation starts with empty tails).
        if (faiss_has_tails(meta))
            fold_tails_in(index, meta, holder->object, &old_labels, &old_tombstones,
                          old_attributes->object, &nold);
        bool exact = false;
        guarded("could not merge faiss index",
                [&] { exact = holder->object->has_exact_vectors(); });
        if (drop_dead && !exact && compact)
            ereport(NOTICE, (errmsg("faiss index \"%s\" (%s) keeps no exact vectors: dead rows "
                                    "stay masked until REINDEX",
                                    RelationGetRelationName(index), meta.factory)));
        if (drop_dead && exact) {
            // Compaction: live rows into an empty copy that keeps the training.
            EngineHolder* fresh = EngineHolder::create(merge_context);
            guarded("could not compact faiss index",
                    [&] { fresh->object = holder->object->clone_empty(); });
            int64 live = 0;
            for (int64 label = 0; label < nold; label++)
                if (!(old_tombstones[label >> 3] & (1 << (label & 7)))) live++;
            float* vectors = static_cast<float*>(MemoryContextAllocHuge(
                CurrentMemoryContext, sizeof(float) * dim * Max(live + pending.count, 1)));
            labels = static_cast<ItemPointerData*>(MemoryContextAllocHuge(
                CurrentMemoryContext, sizeof(ItemPointerData) * Max(live + pending.count, 1)));
            int64 n = 0;
            for (int64 label = 0; label < nold; label++) {
                if (old_tombstones[label >> 3] & (1 << (label & 7))) continue;
                guarded("could not compact faiss index",
                        [&] { holder->object->exact_vector(label, vectors + n * dim); });
                labels[n++] = old_labels[label];
                keep_old_attributes(label);
            }
            add_pending_attributes();
            memcpy(vectors + n * dim, pending.vectors, sizeof(float) * dim * pending.count);
            memcpy(labels + n, pending.tids, sizeof(ItemPointerData) * pending.count);
            nlabels = n + pending.count;
            delete holder->release();
            holder->object = fresh->release();
            add_rows(holder->object, vectors, nlabels, dim, 0);
            next.dead_rows = 0;
        } else {
            add_rows(holder->object, pending.vectors, pending.count, dim, 0);
            nlabels = nold + pending.count;
            labels = static_cast<ItemPointerData*>(MemoryContextAllocHuge(
                CurrentMemoryContext, sizeof(ItemPointerData) * Max(nlabels, 1)));
            if (nold > 0) memcpy(labels, old_labels, sizeof(ItemPointerData) * nold);
            memcpy(labels + nold, pending.tids, sizeof(ItemPointerData) * pending.count);
            tombstones = static_cast<uint8*>(alloc_huge_zero((nlabels + 7) / 8 + 1));
            if (nold > 0) memcpy(tombstones, old_tombstones, (nold + 7) / 8);
            for (int64 label = 0; label < nold; label++) keep_old_attributes(label);
            add_pending_attributes();
            next.dead_rows = meta.dead_rows;
        }
    }

    // The rows changed: measure again where the rows can be read back (an
    // index without exact vectors keeps the settings measured at build).
    if (meta.factory[0] != '\0')
        tune_engine(index, holder->object, nullptr, attributes->object, &next.tuning);
    if (holder->object != nullptr)
        relabel_for_pages(index, holder->object, labels, nlabels, tombstones, attributes);
    write_generation(index, &next, holder->object, attributes->object, labels, nlabels, tombstones,
                     true);
    faiss_update_meta(index, &next);

    // The old generation's pages are free once the metapage points away.
    if (meta.generation > 0) {
        faiss_free_chain(index, meta.blob, kFaissPageBlob, meta.generation);
        faiss_free_chain(index, meta.tombstones, kFaissPageTombstones, meta.generation);
        if (meta.attributes.head != InvalidBlockNumber)
            faiss_free_chain(index, meta.attributes, kFaissPageAttributes, meta.generation);
        // Searches still running may read the old labels and lists: then
        // they are left for a later merge to reclaim.
        if (!faiss_free_lists(index, meta))
            ereport(DEBUG1, (errmsg("faiss index \"%s\": old labels and lists left for later, "
                                    "searches may still read them",
                                    RelationGetRelationName(index))));
    }
    faiss_free_pending(index, meta);
    IndexFreeSpaceMapVacuum(index);

    if (faiss_lists_paged(next))
        faiss_cache_supersede(index, next.generation);
    else
        faiss_cache_insert(index, next.generation, holder, attributes, labels, nlabels);
    MemoryContextSwitchTo(old);
    MemoryContextDelete(merge_context);
    UnlockRelation(index, ExclusiveLock);
    return true;
}
