// kmeans.cpp: k-means in SQL.
//
//   benzer_kmeans(query, k, iterations, spherical, seed, sample_size)
//       -> (id, cluster, distance): every row's cluster
//   benzer_kmeans_centroids(same arguments)
//       -> (cluster, centroid, size): the clusters themselves
//   benzer_kmeans_assign(vector, centroids vector[], spherical)
//       -> the nearest centroid's cluster number (new rows, later)
//
// The query (any SELECT returning an integer id and a vector) is read
// through an SPI cursor in batches into one array, bounded by
// maintenance_work_mem like an index build (SQLSTATE 54000 beyond it). The
// rows are put in id order first, so the clusters depend on the rows, the
// options and the seed only, not on the order the query returns them in:
// benzer_kmeans and benzer_kmeans_centroids over the same query agree.
// Clustering runs in steps of ten iterations with CHECK_FOR_INTERRUPTS
// and a DEBUG1 progress line between steps (SET client_min_messages =
// debug1 shows them); Faiss also stops mid-step on a cancel or
// statement_timeout through its InterruptCallback.
//
// The KMeans object belongs to a MemoryContext reset callback, so an ERROR
// between steps frees it.
#include "pg/faiss.h"

#include "core/distance.h"
#include "core/kmeans.h"
#include "pg/context_owned.h"
#include "pg/guard.h"
#include "pg/guarded.h"
#include "pg/service.h"
#include "pg/vector.h"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/portal.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
}

#include <cmath>

namespace {

constexpr int kIterationStep = 10;  // iterations between progress lines
constexpr long kFetchRows = 1000;   // rows per SPI cursor fetch

// The arguments common to benzer_kmeans and benzer_kmeans_centroids.
struct KMeansArguments {
    const char* function;
    char* query;
    benzer::KMeansOptions options;
};

void require_argument(FunctionCallInfo fcinfo, int n, const char* name, const char* function) {
    if (PG_ARGISNULL(n))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("%s: %s must not be NULL", function, name)));
}

KMeansArguments read_arguments(FunctionCallInfo fcinfo, const char* function) {
    static const char* const names[] = {"query",     "k",    "iterations",
                                        "spherical", "seed", "sample_size"};
    for (int i = 0; i < 6; i++) require_argument(fcinfo, i, names[i], function);
    KMeansArguments args;
    args.function = function;
    args.query = text_to_cstring(PG_GETARG_TEXT_PP(0));
    args.options.k = PG_GETARG_INT32(1);
    args.options.iterations = PG_GETARG_INT32(2);
    args.options.spherical = PG_GETARG_BOOL(3);
    args.options.seed = PG_GETARG_INT32(4);
    args.options.sample_size = PG_GETARG_INT32(5);
    if (args.options.k < 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: k must be at least 1, not %d", function, args.options.k)));
    if (args.options.iterations < 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: iterations must be at least 1, not %d", function,
                               args.options.iterations)));
    if (args.options.sample_size < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: sample_size must not be negative", function),
                        errhint("0 trains on 256 rows per cluster, as Faiss does.")));
    return args;
}

// The vector type of this installation: the one in the function's schema.
Oid extension_vector_type(FunctionCallInfo fcinfo) {
    Oid ns = get_func_namespace(fcinfo->flinfo->fn_oid);
    Oid type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("vector"),
                               ObjectIdGetDatum(ns));
    if (!OidIsValid(type)) elog(ERROR, "type vector not found in the extension's schema");
    return type;
}

// The rows the query returned, in this function's context.
struct Rows {
    int dim;
    int64 count;
    int64 capacity;
    float* vectors;  // count * dim
    int64* ids;
    bool* id_nulls;
    int64 null_vectors;  // rows skipped for a NULL vector
};

// Memory the rows themselves take (vectors, ids, results).
Size rows_memory(int dim, int64 count) {
    return static_cast<Size>(count) *
           (static_cast<Size>(dim) * sizeof(float) + sizeof(int64) + sizeof(bool) + sizeof(int32) +
            sizeof(double) + sizeof(int64));
}

// Memory a k-means over count rows needs: the rows, the results and the
// clustering's own buffers.
Size kmeans_memory(const KMeansArguments& args, int dim, int64 count) {
    Size core = 0;
    guarded("k-means", [&] {
        int64 sample = benzer::KMeans::effective_sample_size(args.options, count);
        core = benzer::KMeans::memory_bytes(dim, args.options.k, count, sample);
    });
    return rows_memory(dim, count) + core;
}

// While reading: the rows alone must fit.
void check_rows_memory(const KMeansArguments& args, int dim, int64 count) {
    Size limit = static_cast<Size>(maintenance_work_mem) * 1024;
    Size need = rows_memory(dim, count);
    if (need > limit)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("%s: the query returns more rows than maintenance_work_mem (%d MB) "
                               "holds: %lld rows of %d dimensions so far",
                               args.function, maintenance_work_mem / 1024,
                               static_cast<long long>(count), dim),
                        errhint("SET maintenance_work_mem to a few times the size of the vectors "
                                "and try again, or cluster fewer rows.")));
}

// Once all rows are read: the rows and the clustering.
void check_memory(const KMeansArguments& args, int dim, int64 count) {
    Size limit = static_cast<Size>(maintenance_work_mem) * 1024;
    Size need = kmeans_memory(args, dim, count);
    if (need > limit)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("%s: clustering %lld rows of %d dimensions needs about %zu MB, "
                        "maintenance_work_mem is %d MB",
                        args.function, static_cast<long long>(count), dim, need / (1024 * 1024) + 1,
                        maintenance_work_mem / 1024),
                 errhint("SET maintenance_work_mem = '%zuMB' and try again, or cluster fewer "
                         "rows.",
                         need / (1024 * 1024) + 16)));
}

void append_row(const KMeansArguments& args, MemoryContext context, Rows* rows, const float* x,
                int64 id, bool id_null) {
    if (rows->count == rows->capacity) {
        int64 capacity = rows->capacity == 0 ? 1024 : rows->capacity * 2;
        check_rows_memory(args, rows->dim, rows->count + 1);
        // Grow no further than the memory limit allows (plus one row, so
        // that the check above fails on the next row, with a clear error).
        int64 fit = static_cast<int64>(static_cast<Size>(maintenance_work_mem) * 1024 /
                                       rows_memory(rows->dim, 1));
        capacity = Max(Min(capacity, fit + 1), rows->count + 1);
        Size vector_bytes = sizeof(float) * static_cast<Size>(rows->dim) * capacity;
        if (rows->vectors == nullptr) {
            rows->vectors = static_cast<float*>(MemoryContextAllocHuge(context, vector_bytes));
            rows->ids =
                static_cast<int64*>(MemoryContextAllocHuge(context, sizeof(int64) * capacity));
            rows->id_nulls =
                static_cast<bool*>(MemoryContextAllocHuge(context, sizeof(bool) * capacity));
        } else {
            rows->vectors = static_cast<float*>(repalloc_huge(rows->vectors, vector_bytes));
            rows->ids = static_cast<int64*>(repalloc_huge(rows->ids, sizeof(int64) * capacity));
            rows->id_nulls =
                static_cast<bool*>(repalloc_huge(rows->id_nulls, sizeof(bool) * capacity));
        }
        rows->capacity = capacity;
    }
    memcpy(rows->vectors + rows->count * rows->dim, x, sizeof(float) * rows->dim);
    rows->ids[rows->count] = id;
    rows->id_nulls[rows->count] = id_null;
    rows->count++;
}

bool is_integer_type(Oid type) { return type == INT2OID || type == INT4OID || type == INT8OID; }

// ERRORs unless plan is one plain SELECT. "DELETE ... RETURNING id, v"
// also returns rows (SPI_is_cursor_plan accepts it), and a clustering
// function must never change data.
void require_select(const KMeansArguments& args, SPIPlanPtr plan) {
    List* sources = SPI_plan_get_plan_sources(plan);
    bool select = list_length(sources) == 1 && SPI_is_cursor_plan(plan);
    if (select) {
        auto* source = static_cast<CachedPlanSource*>(linitial(sources));
        select = source->commandTag == CMDTAG_SELECT && list_length(source->query_list) == 1;
        if (select) {
            // No "WITH d AS (DELETE ...)" and no row locks either.
            auto* query = static_cast<Query*>(linitial(source->query_list));
            select = query->commandType == CMD_SELECT && !query->hasModifyingCTE &&
                     query->rowMarks == NIL && query->utilityStmt == nullptr;
        }
    }
    if (!select)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: the query must be a single SELECT returning (id, vector) rows",
                               args.function)));
}

// Runs the query and collects its (id, vector) rows. The query runs
// read-only: a read-only cursor refuses data-modifying CTEs and FOR UPDATE,
// and the transaction is read-only while it runs, so neither can functions
// it calls write anything (XactReadOnly is restored on every exit).
void read_rows_readonly(const KMeansArguments& args, Oid vector_type, MemoryContext context,
                        Rows* rows);

void read_rows(const KMeansArguments& args, Oid vector_type, MemoryContext context, Rows* rows) {
    bool was_read_only = XactReadOnly;
    XactReadOnly = true;
    PG_TRY();
    { read_rows_readonly(args, vector_type, context, rows); }
    PG_FINALLY();
    { XactReadOnly = was_read_only; }
    PG_END_TRY();
}

void read_rows_readonly(const KMeansArguments& args, Oid vector_type, MemoryContext context,
                        Rows* rows) {
    memset(rows, 0, sizeof(Rows));
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    SPIPlanPtr plan = SPI_prepare(args.query, 0, nullptr);
    if (plan == nullptr)
        elog(ERROR, "%s: could not prepare the query: %s", args.function,
             SPI_result_code_string(SPI_result));
    require_select(args, plan);
    Portal portal = SPI_cursor_open(nullptr, plan, nullptr, nullptr, true);
    TupleDesc desc = portal->tupDesc;
    Oid id_type = desc->natts >= 1 ? getBaseType(TupleDescAttr(desc, 0)->atttypid) : InvalidOid;
    Oid v_type = desc->natts >= 2 ? getBaseType(TupleDescAttr(desc, 1)->atttypid) : InvalidOid;
    if (desc->natts != 2 || !is_integer_type(id_type) || v_type != vector_type) {
        StringInfoData types;
        initStringInfo(&types);
        for (int i = 0; i < desc->natts; i++)
            appendStringInfo(&types, "%s%s", i > 0 ? ", " : "",
                             format_type_be(TupleDescAttr(desc, i)->atttypid));
        ereport(ERROR,
                (errcode(ERRCODE_DATATYPE_MISMATCH),
                 errmsg("%s: the query must return two columns, an integer id and a vector",
                        args.function),
                 errdetail("It returns %d column(s)%s%s.", desc->natts, desc->natts > 0 ? ": " : "",
                           types.data),
                 errhint("For example: SELECT image_id, embedding FROM features WHERE model = "
                         "'pixels'.")));
    }

    MemoryContext batch_context =
        AllocSetContextCreate(CurrentMemoryContext, "benzer kmeans fetch", ALLOCSET_DEFAULT_SIZES);
    for (;;) {
        SPI_cursor_fetch(portal, true, kFetchRows);
        uint64 fetched = SPI_processed;
        if (fetched == 0) break;
        SPITupleTable* table = SPI_tuptable;
        MemoryContext old = MemoryContextSwitchTo(batch_context);
        for (uint64 i = 0; i < fetched; i++) {
            HeapTuple tuple = table->vals[i];
            bool id_null = false, v_null = false;
            Datum id = SPI_getbinval(tuple, table->tupdesc, 1, &id_null);
            Datum value = SPI_getbinval(tuple, table->tupdesc, 2, &v_null);
            if (v_null) {
                rows->null_vectors++;
                continue;
            }
            Vector* v = DatumGetVector(value);
            if (rows->dim == 0) {
                rows->dim = v->dim;
            } else if (v->dim != rows->dim) {
                ereport(ERROR,
                        (errcode(ERRCODE_DATA_EXCEPTION),
                         errmsg("%s: different vector dimensions %d and %d", args.function,
                                rows->dim, v->dim),
                         errhint("Cluster the vectors of one model and version at a time.")));
            }
            int64 id_value = 0;
            if (!id_null) {
                switch (id_type) {
                    case INT2OID:
                        id_value = DatumGetInt16(id);
                        break;
                    case INT4OID:
                        id_value = DatumGetInt32(id);
                        break;
                    default:
                        id_value = DatumGetInt64(id);
                        break;
                }
            }
            double norm = benzer::vector_norm(v->x, static_cast<size_t>(v->dim));
            if (norm > benzer::kMaxIndexableNorm)
                ereport(ERROR,
                        (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                         errmsg("%s: vector norm %g is too large to cluster", args.function, norm),
                         errdetail("k-means takes vectors of L2 norm up to %g: larger ones "
                                   "overflow the single-precision sums Faiss computes.",
                                   benzer::kMaxIndexableNorm),
                         errhint("Scale the vectors down or leave such rows out of the query.")));
            append_row(args, context, rows, v->x, id_value, id_null);
        }
        MemoryContextSwitchTo(old);
        MemoryContextReset(batch_context);
        SPI_freetuptable(table);
        CHECK_FOR_INTERRUPTS();
    }
    MemoryContextDelete(batch_context);
    SPI_cursor_close(portal);
    SPI_finish();
}

struct SortKey {
    int64 id;
    int64 position;
    bool null;
};

int compare_sort_keys(const void* a, const void* b, void*) {
    const auto* x = static_cast<const SortKey*>(a);
    const auto* y = static_cast<const SortKey*>(b);
    if (x->null != y->null) return x->null ? 1 : -1;
    if (!x->null && x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->position < y->position ? -1 : (x->position > y->position ? 1 : 0);
}

// Puts the rows in id order (NULL ids last; equal ids keep the query's
// order), moving the vectors in place along the permutation's cycles.
void sort_rows_by_id(Rows* rows) {
    int64 n = rows->count;
    if (n < 2) return;
    auto* keys =
        static_cast<SortKey*>(MemoryContextAllocHuge(CurrentMemoryContext, sizeof(SortKey) * n));
    for (int64 i = 0; i < n; i++) keys[i] = {rows->ids[i], i, rows->id_nulls[i]};
    qsort_arg(keys, n, sizeof(SortKey), compare_sort_keys, nullptr);
    int64* order =
        static_cast<int64*>(MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * n));
    for (int64 i = 0; i < n; i++) order[i] = keys[i].position;
    pfree(keys);
    bool sorted = true;
    for (int64 i = 0; i < n && sorted; i++) sorted = order[i] == i;
    if (!sorted) {
        int dim = rows->dim;
        float* scratch = static_cast<float*>(palloc(sizeof(float) * dim));
        bool* placed = static_cast<bool*>(MemoryContextAllocHuge(CurrentMemoryContext, n));
        memset(placed, 0, n);
        // Position i receives row order[i].
        for (int64 start = 0; start < n; start++) {
            if (placed[start] || order[start] == start) {
                placed[start] = true;
                continue;
            }
            memcpy(scratch, rows->vectors + start * dim, sizeof(float) * dim);
            int64 saved_id = rows->ids[start];
            bool saved_null = rows->id_nulls[start];
            int64 i = start;
            for (;;) {
                int64 from = order[i];
                placed[i] = true;
                if (from == start) {
                    memcpy(rows->vectors + i * dim, scratch, sizeof(float) * dim);
                    rows->ids[i] = saved_id;
                    rows->id_nulls[i] = saved_null;
                    break;
                }
                memcpy(rows->vectors + i * dim, rows->vectors + from * dim, sizeof(float) * dim);
                rows->ids[i] = rows->ids[from];
                rows->id_nulls[i] = rows->id_nulls[from];
                i = from;
            }
        }
        pfree(placed);
        pfree(scratch);
    }
    pfree(order);
}

double elapsed_seconds(instr_time start) {
    instr_time now;
    INSTR_TIME_SET_CURRENT(now);
    INSTR_TIME_SUBTRACT(now, start);
    return INSTR_TIME_GET_DOUBLE(now);
}

// The clustering both functions share: reads the rows, clusters them and
// assigns every row. Results are palloc'd in the current context.
struct KMeansResult {
    Rows rows;
    int32* clusters;
    double* distances;
    float* centroids;  // k * dim
};

void run_kmeans(FunctionCallInfo fcinfo, const KMeansArguments& args, MemoryContext context,
                KMeansResult* result) {
    instr_time start;
    INSTR_TIME_SET_CURRENT(start);
    Rows* rows = &result->rows;
    read_rows(args, extension_vector_type(fcinfo), context, rows);
    if (rows->count == 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s: the query returned no rows with a vector to cluster", args.function)));
    if (args.options.k > rows->count)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s: k (%d) is larger than the number of rows with a vector (%lld)",
                        args.function, args.options.k, static_cast<long long>(rows->count))));
    check_memory(args, rows->dim, rows->count);
    sort_rows_by_id(rows);

    int dim = rows->dim;
    int64 n = rows->count;
    result->clusters = static_cast<int32*>(MemoryContextAllocHuge(context, sizeof(int32) * n));
    result->distances = static_cast<double*>(MemoryContextAllocHuge(context, sizeof(double) * n));
    result->centroids = static_cast<float*>(
        MemoryContextAllocHuge(context, sizeof(float) * static_cast<Size>(dim) * args.options.k));

    // On a GPU (or with benzer.device = gpu), the search service clusters:
    // it owns the device. Whatever it cannot do, this backend does.
    if (service_wants_device(n)) {
        ServiceKMeansOutcome outcome;
        if (service_kmeans(rows->vectors, n, dim, args.options, result->centroids, result->clusters,
                           result->distances, &outcome)) {
            ereport(DEBUG1,
                    (errmsg("%s: %lld rows clustered by the search service on %s, %d iterations, "
                            "%.2f s",
                            args.function, static_cast<long long>(n), outcome.device,
                            outcome.iterations, elapsed_seconds(start))));
            return;
        }
        ereport(DEBUG1, (errmsg("%s: clustering in this backend: %s", args.function,
                                outcome.why != nullptr ? outcome.why : "the service declined")));
    }

    faiss_install_interrupt_check();
    auto* holder = ContextOwned<benzer::KMeans>::create(context);
    const float* vectors = rows->vectors;
    int64 sample = 0;
    guarded("k-means", [&] {
        holder->object = new benzer::KMeans(dim, args.options);
        holder->object->set_data(vectors, n);
        sample = holder->object->sample_size();
    });
    ereport(DEBUG1,
            (errmsg("%s: %lld rows of %d dimensions (%lld NULL vectors skipped), %d clusters "
                    "trained on %lld rows, %d iterations%s, read in %.2f s",
                    args.function, static_cast<long long>(n), dim,
                    static_cast<long long>(rows->null_vectors), args.options.k,
                    static_cast<long long>(sample), args.options.iterations,
                    args.options.spherical ? ", spherical" : "", elapsed_seconds(start))));

    benzer::KMeans* kmeans = holder->object;
    bool done = false;
    while (!done) {
        CHECK_FOR_INTERRUPTS();
        faiss_use_threads(benzer_build_threads);
        benzer::KMeansProgress progress;
        guarded("k-means", [&] {
            kmeans->run(kIterationStep);
            progress = kmeans->progress();
            done = kmeans->done();
        });
        ereport(DEBUG1, (errmsg("%s: iteration %d of %d, objective %g, imbalance %.3f, %.2f s",
                                args.function, progress.iterations, args.options.iterations,
                                progress.objective, progress.imbalance, elapsed_seconds(start))));
    }
    CHECK_FOR_INTERRUPTS();
    faiss_use_threads(benzer_build_threads);
    int32* clusters = result->clusters;
    double* distances = result->distances;
    float* centroids = result->centroids;
    guarded("k-means", [&] {
        kmeans->assign(vectors, n, clusters, distances);
        memcpy(centroids, kmeans->centroids(),
               sizeof(float) * static_cast<Size>(dim) * args.options.k);
    });
    ereport(DEBUG1, (errmsg("%s: assigned %lld rows, %.2f s", args.function,
                            static_cast<long long>(n), elapsed_seconds(start))));
    // Frees the clustering now rather than at the end of the query.
    delete holder->release();
}

}  // namespace

// benzer_kmeans(query, k, iterations, spherical, seed, sample_size)
//   RETURNS TABLE (id bigint, cluster integer, distance double precision)
BENZER_FUNCTION(benzer_kmeans) {
    KMeansArguments args = read_arguments(fcinfo, "benzer_kmeans");
    InitMaterializedSRF(fcinfo, 0);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    MemoryContext context =
        AllocSetContextCreate(CurrentMemoryContext, "benzer kmeans", ALLOCSET_DEFAULT_SIZES);
    KMeansResult result;
    run_kmeans(fcinfo, args, context, &result);
    for (int64 i = 0; i < result.rows.count; i++) {
        Datum values[3];
        bool nulls[3] = {false, false, false};
        values[0] = Int64GetDatum(result.rows.ids[i]);
        nulls[0] = result.rows.id_nulls[i];
        values[1] = Int32GetDatum(result.clusters[i]);
        values[2] = Float8GetDatum(result.distances[i]);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    MemoryContextDelete(context);
    return static_cast<Datum>(0);
}

// benzer_kmeans_centroids(query, k, iterations, spherical, seed, sample_size)
//   RETURNS TABLE (cluster integer, centroid vector, size bigint)
BENZER_FUNCTION(benzer_kmeans_centroids) {
    KMeansArguments args = read_arguments(fcinfo, "benzer_kmeans_centroids");
    InitMaterializedSRF(fcinfo, 0);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    MemoryContext context =
        AllocSetContextCreate(CurrentMemoryContext, "benzer kmeans", ALLOCSET_DEFAULT_SIZES);
    KMeansResult result;
    run_kmeans(fcinfo, args, context, &result);
    int k = args.options.k;
    int dim = result.rows.dim;
    int64* sizes = static_cast<int64*>(MemoryContextAllocZero(context, sizeof(int64) * k));
    for (int64 i = 0; i < result.rows.count; i++) sizes[result.clusters[i]]++;
    for (int c = 0; c < k; c++) {
        Vector* centroid = new_vector(dim);
        memcpy(centroid->x, result.centroids + static_cast<Size>(c) * dim, sizeof(float) * dim);
        Datum values[3];
        bool nulls[3] = {false, false, false};
        values[0] = Int32GetDatum(c);
        values[1] = PointerGetDatum(centroid);
        values[2] = Int64GetDatum(sizes[c]);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        pfree(centroid);
    }
    MemoryContextDelete(context);
    return static_cast<Datum>(0);
}

// benzer_kmeans_assign(v vector, centroids vector[], spherical boolean)
//   RETURNS integer: the 0-based position of the nearest centroid (NULL
//   elements are never nearest), i.e. benzer_kmeans's cluster number when
//   centroids is array_agg(centroid ORDER BY cluster).
BENZER_FUNCTION(benzer_kmeans_assign) {
    Vector* v = PG_GETARG_VECTOR_P(0);
    ArrayType* array = PG_GETARG_ARRAYTYPE_P(1);
    bool spherical = PG_GETARG_BOOL(2);
    Datum* elements;
    bool* nulls;
    int n = vector_array_elements(array, "benzer_kmeans_assign: centroids", &elements, &nulls);
    int best = -1;
    double best_distance = 0.0;
    for (int i = 0; i < n; i++) {
        if (nulls[i]) continue;
        Vector* c = DatumGetVector(elements[i]);
        if (c->dim != v->dim)
            ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                            errmsg("different vector dimensions %d and %d", v->dim, c->dim)));
        double d =
            spherical
                ? benzer::cosine_distance(v->x, c->x, static_cast<size_t>(v->dim))
                : static_cast<double>(benzer::l2_squared(v->x, c->x, static_cast<size_t>(v->dim)));
        // NaN (a zero vector under cosine) is never nearer than a number.
        if (best < 0 || d < best_distance || (std::isnan(best_distance) && !std::isnan(d))) {
            best = i;
            best_distance = d;
        }
    }
    if (best < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("benzer_kmeans_assign: centroids has no non-NULL element")));
    PG_RETURN_INT32(best);
}
