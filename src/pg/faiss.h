// faiss.h: declarations shared by the faiss index access method's files.
//
// The access method is split by concern, like PostgreSQL's own AMs:
//   faiss_am.cpp       handler, reloptions, opclass validation
//   faiss_pages.cpp    page layout: metapage, chains, pending rows, WAL
//   faiss_cache.cpp    per-backend cache of loaded Faiss indexes
//   faiss_build.cpp    CREATE INDEX, and the merge that folds pending rows in
//   faiss_insert.cpp   INSERT
//   faiss_scan.cpp     ORDER BY ... LIMIT searches
//   faiss_vacuum.cpp   VACUUM
//   faiss_cost.cpp     planner costs
//   faiss_plan.cpp     planner hook: IN (...) on filter columns
//   faiss_limit.cpp    executor hook: the query's LIMIT to the scan
//   faiss_search.cpp   which search settings a search uses
//   faiss_attributes.cpp  filter columns: Datums <-> core values
//   faiss_info.cpp     benzer_index_info() and friends
//   faiss_access.cpp   privilege checks of the SQL functions
// Files talk through this header and faiss_pages.h, never to each other's
// internals.
#pragma once

#include "pg/postgres_headers.h"

extern "C" {
#include "access/amapi.h"
#include "access/genam.h"
#include "access/reloptions.h"
#include "nodes/pathnodes.h"
#include "utils/relcache.h"
}

#include "core/engine.h"

// Reloptions of a faiss index (WITH (...)).
struct FaissOptions {
    int32 vl_len_;        // varlena header (do not touch)
    int factory_offset;   // factory string; empty: benzer chooses
    int nprobe;           // default IVF lists to visit (0: benzer's choice)
    int ef_search;        // default HNSW efSearch (0: benzer's choice)
    double k_factor;      // default re-ranking factor (0: 4)
    int training_sample;  // rows used for training (0: all, up to a cap)
    int merge_threshold;  // pending rows that make VACUUM merge (0: auto)
    int ef_construction;  // HNSW efConstruction (0: Faiss's default)
    double recall;        // recall target of the tuned settings (0: the default)
    bool lists_in_pages;  // IVF lists in pages read through shared buffers
};

// Settings (GUCs), defined in faiss_am.cpp.
extern int benzer_nprobe;
extern int benzer_ef_search;
extern double benzer_k_factor;
extern double benzer_recall;
extern int benzer_threads;
extern int benzer_build_threads;
extern int benzer_max_scan_tuples;
extern int benzer_scan_rows;
extern int benzer_exact_filter_limit;
extern int benzer_cache_memory_mb;
extern bool benzer_fast_kernels;

// Registers the settings above (from _PG_init).
void faiss_define_settings(void);

// Options of an index, with defaults filled in.
FaissOptions* faiss_get_options(Relation index);
const char* faiss_option_factory(const FaissOptions* options);

// The metric of the index's first column (from its operator class).
benzer::Metric faiss_index_metric(Relation index);

// The dimension fixed by the column's type modifier, or 0.
int faiss_column_typmod_dim(Relation index);

// Largest vector dimension a faiss index accepts: the vector type's (16 000);
// rows and list entries larger than a page straddle pages.
int faiss_max_dimensions(void);

// ERRORs (22023) unless factory is empty (automatic) or a string benzer's
// grammar accepts (core/factory.h) for dim dimensions (0: not known yet).
void faiss_check_factory(const char* factory, int dim);

// ERRORs (22003) unless the vector's norm is within kMaxIndexableNorm.
// what: "row" or "query vector".
void faiss_check_norm(Relation index, const float* vector, int dim, const char* what);

// Access checks for benzer's SQL functions (faiss_access.cpp); all decided
// from the catalogs, before any lock.
//   faiss_relation_am    the access method of a relation (InvalidOid if none)
//   faiss_index_table    the table of a faiss index; ERRORs (42809) for
//                        anything else
//   faiss_may_read       SELECT on the table, or on every column the index
//                        reads (keys, expressions, predicate)
//   faiss_require_read   ... or ERROR 42501
//   faiss_require_owner  ownership of the table (as VACUUM), or ERROR 42501
Oid faiss_relation_am(Oid relid);
Oid faiss_index_table(Oid index_oid);
bool faiss_may_read(Oid heap_oid, Oid index_oid);
void faiss_require_read(Oid heap_oid, Oid index_oid);
void faiss_require_owner(Oid heap_oid, Oid index_oid);

// Access method callbacks (each in its own file).
IndexBuildResult* faiss_build(Relation heap, Relation index, IndexInfo* info);
void faiss_build_empty(Relation index);
bool faiss_insert(Relation index, Datum* values, bool* isnull, ItemPointer heap_tid, Relation heap,
                  IndexUniqueCheck check_unique, bool index_unchanged, IndexInfo* info);
IndexBulkDeleteResult* faiss_bulk_delete(IndexVacuumInfo* info, IndexBulkDeleteResult* stats,
                                         IndexBulkDeleteCallback callback, void* callback_state);
IndexBulkDeleteResult* faiss_vacuum_cleanup(IndexVacuumInfo* info, IndexBulkDeleteResult* stats);
void faiss_cost_estimate(PlannerInfo* root, IndexPath* path, double loop_count, Cost* startup_cost,
                         Cost* total_cost, Selectivity* selectivity, double* correlation,
                         double* pages);
IndexScanDesc faiss_begin_scan(Relation index, int nkeys, int norderbys);
void faiss_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys);
bool faiss_get_tuple(IndexScanDesc scan, ScanDirection direction);
void faiss_end_scan(IndexScanDesc scan);

// Folds pending rows into the Faiss structure and, when compact is true or
// many rows are dead, rebuilds it without them. Takes ExclusiveLock on the
// index (inserts wait; searches go on). When wait is false and the lock is
// not free, returns false without doing anything.
bool faiss_merge(Relation index, bool compact, bool wait);

// Sets OpenMP's thread count for the next Faiss call, creating worker
// threads with all signals blocked (they must never run PostgreSQL's signal
// handlers) the first time a larger pool is needed.
void faiss_use_threads(int threads);

// Installs the Faiss interrupt callback that reads InterruptPending.
void faiss_install_interrupt_check(void);

// Adds the faiss lines to EXPLAIN output (from _PG_init).
void faiss_install_explain_hook(void);

// Lets IN (...) conditions on filter columns reach ordered faiss index
// scans (faiss_plan.cpp; from _PG_init).
void faiss_install_planner_hook(void);

// Passes a query's LIMIT to the faiss index scan below it (faiss_limit.cpp;
// from _PG_init).
void faiss_install_limit_hook(void);

// Sends each postgres_fdw shard of a partitioned table its own ORDER BY
// distance LIMIT k and merges their answers (shard_merge.cpp; from
// _PG_init, before the "benzer" settings prefix is reserved).
void shard_install_planner_hook(void);
