// faiss_am.cpp: the faiss access method's handler, options and settings.
//
// The handler advertises an index that can only answer ORDER BY <distance>
// (amcanorderbyop) and is never used for plain WHERE scans; its costs are
// set in faiss_cost.cpp so the planner picks it for top-k queries only.
#include "pg/faiss.h"

#include "core/factory.h"
#include "core/faiss_kernels.h"
#include "core/vector_text.h"
#include "pg/faiss_cache.h"
#include "pg/faiss_pages.h"
#include "pg/guard.h"

#include <omp.h>
#include <pthread.h>
#include <csignal>

extern "C" {
#include "access/amvalidate.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_amproc.h"
#include "catalog/pg_opclass.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

int benzer_nprobe = 0;
int benzer_ef_search = 0;
double benzer_k_factor = 0.0;
double benzer_recall = 0.0;
int benzer_threads = 1;
int benzer_build_threads = 0;
int benzer_max_scan_tuples = 100000;
int benzer_scan_rows = 100;
int benzer_exact_filter_limit = 20000;
int benzer_cache_memory_mb = 4096;
bool benzer_fast_kernels = true;

static relopt_kind faiss_relopt_kind;

void faiss_check_factory(const char* factory, int dim) {
    if (factory == nullptr || factory[0] == '\0') return;  // automatic
    benzer::GuardedError error;
    // The spec (with its strings) lives only inside the guarded call.
    if (!benzer::run_guarded(error, [&] { (void)benzer::parse_factory(factory, dim); }))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid faiss factory string: %s", error.message),
                        errhint("Factory strings look like \"IVF1024,Flat\", \"HNSW32\" or "
                                "\"IVF1024,PQ64np,RFlat\"; see benzer's README.")));
}

// WITH (factory = ...) at CREATE INDEX and ALTER INDEX ... SET: the whole
// grammar, bounds included, before anything is stored (the dimension is
// not known here; the build checks what depends on it).
static void validate_factory_option(const char* value) { faiss_check_factory(value, 0); }

// Keeps the pool and the callback in step with benzer.fast_kernels.
static void assign_fast_kernels(bool value, void*) { benzer::set_fast_kernels_enabled(value); }

void faiss_define_settings(void) {
    faiss_relopt_kind = add_reloption_kind();
    add_string_reloption(faiss_relopt_kind, "factory",
                         "Faiss index_factory string (default: chosen from the row count)", "",
                         validate_factory_option, AccessExclusiveLock);
    add_int_reloption(faiss_relopt_kind, "nprobe", "default IVF lists searched per query", 0, 0,
                      65536, AccessExclusiveLock);
    add_int_reloption(faiss_relopt_kind, "ef_search", "default HNSW efSearch", 0, 0, 100000,
                      AccessExclusiveLock);
    add_real_reloption(faiss_relopt_kind, "k_factor",
                       "default candidates per result re-ranked exactly (RFlat)", 0, 0, 1000,
                       AccessExclusiveLock);
    add_int_reloption(faiss_relopt_kind, "training_sample",
                      "rows used to train the index (0: all rows up to 262144)", 0, 0, INT_MAX,
                      AccessExclusiveLock);
    add_int_reloption(faiss_relopt_kind, "merge_threshold",
                      "pending rows that make VACUUM merge them into the index (0: automatic)", 0,
                      0, INT_MAX, AccessExclusiveLock);
    add_int_reloption(faiss_relopt_kind, "ef_construction", "HNSW efConstruction", 0, 0, 100000,
                      AccessExclusiveLock);
    add_real_reloption(faiss_relopt_kind, "recall",
                       "recall@10 the search settings are tuned for (0: 0.97)", 0, 0, 1,
                       AccessExclusiveLock);
    add_bool_reloption(
        faiss_relopt_kind, "lists_in_pages",
        "keep Flat and IVF lists in index pages read through shared buffers (off: one "
        "Faiss structure that every backend loads)",
        true, AccessExclusiveLock);

    DefineCustomIntVariable("benzer.nprobe", "IVF lists searched per query (0: the index's).",
                            nullptr, &benzer_nprobe, 0, 0, 65536, PGC_USERSET, 0, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("benzer.ef_search", "HNSW efSearch (0: the index's).", nullptr,
                            &benzer_ef_search, 0, 0, 100000, PGC_USERSET, 0, nullptr, nullptr,
                            nullptr);
    DefineCustomRealVariable(
        "benzer.k_factor", "Candidates per result re-ranked exactly (0: the index's).", nullptr,
        &benzer_k_factor, 0, 0, 1000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomRealVariable(
        "benzer.recall", "Recall@10 a faiss index search should reach (0: the index's target).",
        "Picks the cheapest of the search settings the index measured when it was built. 1 "
        "searches every IVF list. benzer.nprobe and benzer.ef_search, when set, win.",
        &benzer_recall, 0, 0, 1, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("benzer.threads", "Threads Faiss may use for one search.", nullptr,
                            &benzer_threads, 1, 1, 64, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "benzer.build_threads", "Threads Faiss may use to build or merge (0: one per CPU).",
        nullptr, &benzer_build_threads, 0, 0, 64, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "benzer.max_scan_tuples",
        "Most rows one faiss index scan returns while WHERE conditions discard rows.",
        "The scan widens its search until the query is satisfied or this many rows were "
        "returned.",
        &benzer_max_scan_tuples, 100000, 1, INT_MAX, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "benzer.scan_rows", "Rows the first round of a faiss index scan asks the index for.",
        "Later rounds double it. The index is not told the query's LIMIT; a LIMIT above this "
        "costs a second round, and for HNSW and exact re-ranking it is also the least number "
        "of candidates (efSearch, k_factor) per search.",
        &benzer_scan_rows, 100, 1, 100000, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "benzer.exact_filter_limit",
        "Filters allowing at most this many rows are answered by exact distances.", nullptr,
        &benzer_exact_filter_limit, 20000, 0, INT_MAX, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("benzer.cache_memory", "Memory for loaded faiss indexes per backend.",
                            nullptr, &benzer_cache_memory_mb, 4096, 1, INT_MAX / 2, PGC_USERSET,
                            GUC_UNIT_MB, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "benzer.fast_kernels",
        "Use benzer's SIMD kernels inside Faiss's IVF-Flat and HNSW searches.",
        "Takes effect for indexes loaded afterwards. Off measures Faiss's own kernels.",
        &benzer_fast_kernels, true, PGC_USERSET, 0, nullptr, assign_fast_kernels, nullptr);
    MarkGUCPrefixReserved("benzer");
}

// Parses WITH (...) options.
static bytea* faiss_options(Datum reloptions, bool validate) {
    static const relopt_parse_elt table[] = {
        {"factory", RELOPT_TYPE_STRING, offsetof(FaissOptions, factory_offset)},
        {"nprobe", RELOPT_TYPE_INT, offsetof(FaissOptions, nprobe)},
        {"ef_search", RELOPT_TYPE_INT, offsetof(FaissOptions, ef_search)},
        {"k_factor", RELOPT_TYPE_REAL, offsetof(FaissOptions, k_factor)},
        {"training_sample", RELOPT_TYPE_INT, offsetof(FaissOptions, training_sample)},
        {"merge_threshold", RELOPT_TYPE_INT, offsetof(FaissOptions, merge_threshold)},
        {"ef_construction", RELOPT_TYPE_INT, offsetof(FaissOptions, ef_construction)},
        {"recall", RELOPT_TYPE_REAL, offsetof(FaissOptions, recall)},
        {"lists_in_pages", RELOPT_TYPE_BOOL, offsetof(FaissOptions, lists_in_pages)},
    };
    return static_cast<bytea*>(build_reloptions(reloptions, validate, faiss_relopt_kind,
                                                sizeof(FaissOptions), table, lengthof(table)));
}

FaissOptions* faiss_get_options(Relation index) {
    FaissOptions* options = reinterpret_cast<FaissOptions*>(index->rd_options);
    if (options != nullptr) return options;
    // No WITH clause: all defaults.
    static FaissOptions defaults;
    memset(&defaults, 0, sizeof(defaults));
    defaults.lists_in_pages = true;
    return &defaults;
}

const char* faiss_option_factory(const FaissOptions* options) {
    if (options->factory_offset == 0) return "";
    return reinterpret_cast<const char*>(options) + options->factory_offset;
}

benzer::Metric faiss_index_metric(Relation index) {
    Oid vector_type = TupleDescAttr(RelationGetDescr(index), 0)->atttypid;
    if (!OidIsValid(index_getprocid(index, 1, 1)))
        ereport(ERROR, (errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
                        errmsg("the first column of faiss index \"%s\" must be the vector, with a "
                               "vector operator class, not %s",
                               RelationGetRelationName(index), format_type_be(vector_type)),
                        errhint("Put the vector first: USING faiss (embedding, season, ...).")));
    FmgrInfo* proc = index_getprocinfo(index, 1, 1);
    int32 code = DatumGetInt32(FunctionCall1(proc, PointerGetDatum(nullptr)));
    if (code < 0 || code > 2) elog(ERROR, "faiss operator class returned unknown metric %d", code);
    return static_cast<benzer::Metric>(code);
}

int faiss_column_typmod_dim(Relation index) {
    int32 typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
    return typmod > 0 ? typmod : 0;
}

int faiss_max_dimensions(void) { return benzer::kMaxDimensions; }

void faiss_check_norm(Relation index, const float* vector, int dim, const char* what) {
    double norm = benzer::vector_norm(vector, static_cast<size_t>(dim));
    double limit = benzer::max_indexable_norm(faiss_option_factory(faiss_get_options(index)));
    if (norm <= limit) return;
    ereport(ERROR,
            (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
             errmsg("%s norm %g is too large for faiss index \"%s\"", what, norm,
                    RelationGetRelationName(index)),
             errdetail("This faiss index takes vectors of L2 norm up to %g: larger ones overflow "
                       "the %s Faiss computes or stores.",
                       limit,
                       limit < benzer::kMaxIndexableNorm ? "half-precision values"
                                                         : "single-precision distances and sums"),
             errhint("Scale the vectors down, or keep such rows out of the index with a partial "
                     "index (CREATE INDEX ... WHERE ...).")));
}

// Names of the build's subphases in pg_stat_progress_create_index.
static char* faiss_build_phase_name(int64 phase) {
    switch (phase) {
        case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
            return const_cast<char*>("initializing");
        case 2:
            return const_cast<char*>("collecting vectors");
        case 3:
            return const_cast<char*>("training");
        case 4:
            return const_cast<char*>("adding vectors");
        case 5:
            return const_cast<char*>("writing index pages");
        case 6:
            return const_cast<char*>("tuning search settings");
        default:
            return nullptr;
    }
}

// Checks the operator classes of the faiss access method: each needs the
// metric support function (1) and one ORDER BY operator.
static bool faiss_validate(Oid opclassoid) {
    bool ok = true;
    HeapTuple tuple = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclassoid));
    if (!HeapTupleIsValid(tuple))
        elog(ERROR, "cache lookup failed for operator class %u", opclassoid);
    Form_pg_opclass form = reinterpret_cast<Form_pg_opclass>(GETSTRUCT(tuple));
    Oid family = form->opcfamily;
    Oid type = form->opcintype;
    char* name = pstrdup(NameStr(form->opcname));
    ReleaseSysCache(tuple);

    CatCList* procs = SearchSysCacheList1(AMPROCNUM, ObjectIdGetDatum(family));
    bool has_metric = false;
    for (int i = 0; i < procs->n_members; i++) {
        Form_pg_amproc proc =
            reinterpret_cast<Form_pg_amproc>(GETSTRUCT(&procs->members[i]->tuple));
        if (proc->amproclefttype == type && proc->amprocnum == 1) has_metric = true;
    }
    ReleaseCatCacheList(procs);
    if (!has_metric) {
        ereport(INFO, (errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
                       errmsg("faiss operator class \"%s\" lacks support function 1", name)));
        ok = false;
    }
    return ok;
}

// The access method handler.
BENZER_FUNCTION(faiss_handler) {
    IndexAmRoutine* am = makeNode(IndexAmRoutine);
    am->amstrategies = 0;
    am->amsupport = 1;
    am->amoptsprocnum = 0;
    am->amcanorder = false;
    am->amcanorderbyop = true;
    am->amcanbackward = false;
    am->amcanunique = false;
    am->amcanmulticol = true;  // filter columns after the vector
    am->amoptionalkey = true;
    am->amsearcharray = true;  // column = ANY (array), i.e. IN (...)
    am->amsearchnulls = false;
    am->amstorage = false;
    am->amclusterable = false;
    am->ampredlocks = false;
    am->amcanparallel = false;
    am->amcaninclude = false;
    am->amusemaintenanceworkmem = true;
    am->amparallelvacuumoptions = VACUUM_OPTION_NO_PARALLEL;
    am->amkeytype = InvalidOid;

    am->ambuild = faiss_build;
    am->ambuildempty = faiss_build_empty;
    am->aminsert = faiss_insert;
    am->ambulkdelete = faiss_bulk_delete;
    am->amvacuumcleanup = faiss_vacuum_cleanup;
    am->amcanreturn = nullptr;
    am->amcostestimate = faiss_cost_estimate;
    am->amoptions = faiss_options;
    am->amproperty = nullptr;
    am->ambuildphasename = faiss_build_phase_name;
    am->amvalidate = faiss_validate;
    am->amadjustmembers = nullptr;
    am->ambeginscan = faiss_begin_scan;
    am->amrescan = faiss_rescan;
    am->amgettuple = faiss_get_tuple;
    am->amgetbitmap = nullptr;
    am->amendscan = faiss_end_scan;
    am->ammarkpos = nullptr;
    am->amrestrpos = nullptr;
    am->amestimateparallelscan = nullptr;
    am->aminitparallelscan = nullptr;
    am->amparallelrescan = nullptr;
    PG_RETURN_POINTER(am);
}

// Operator-class support function 1 of each metric: returns the metric.
BENZER_FUNCTION(faiss_metric_l2) { PG_RETURN_INT32(static_cast<int32>(benzer::Metric::kL2)); }
BENZER_FUNCTION(faiss_metric_inner_product) {
    PG_RETURN_INT32(static_cast<int32>(benzer::Metric::kInnerProduct));
}
BENZER_FUNCTION(faiss_metric_cosine) {
    PG_RETURN_INT32(static_cast<int32>(benzer::Metric::kCosine));
}

// --- Threads -----------------------------------------------------------------

static int g_thread_pool = 1;

void faiss_use_threads(int threads) {
    if (threads <= 0) threads = omp_get_num_procs();
    if (threads > 64) threads = 64;
    if (threads > g_thread_pool) {
        // libgomp keeps its worker threads; create them now with every
        // signal blocked, so PostgreSQL's handlers only ever run on the
        // backend's own thread.
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        omp_set_num_threads(threads);
#pragma omp parallel
        { (void)omp_get_thread_num(); }
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        g_thread_pool = threads;
    }
    omp_set_num_threads(threads);
}

// Read from Faiss's threads: plain loads of sig_atomic_t flags. Only a
// cancel or a termination stops Faiss; InterruptPending alone is also set
// for harmless events (cache invalidation catch-up, notifications) that
// CHECK_FOR_INTERRUPTS handles without an error.
static bool interrupt_pending(void) { return QueryCancelPending != 0 || ProcDiePending != 0; }

void faiss_install_interrupt_check(void) {
    static bool installed = false;
    if (installed) return;
    benzer::GuardedError error;
    if (!benzer::run_guarded(error, [] { benzer::set_interrupt_check(interrupt_pending); }))
        raise_guarded_error(error, "could not install the interrupt callback");
    installed = true;
}
