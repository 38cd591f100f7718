// faiss_info.cpp: looking inside faiss indexes.
//
//   benzer_index_info(regclass)  factory, metric, rows, pending and dead
//                                rows, bytes on disk and in this backend
//   benzer_index_merge(regclass, compact)  fold pending rows in now
//   EXPLAIN                      a line per faiss index scan saying what
//                                the index is and, with ANALYZE, what the
//                                scan did (rounds, candidates, nprobe)
#include "pg/faiss.h"

#include "core/distance.h"

#include "pg/faiss_cache.h"
#include "pg/faiss_lists.h"
#include "pg/faiss_pages.h"
#include "pg/faiss_scan.h"
#include "pg/faiss_search.h"
#include "pg/faiss_tails.h"
#include "pg/guard.h"
#include "pg/service.h"

extern "C" {
#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

#include <cstdio>
#include <string>

// --- Scan statistics registry --------------------------------------------------

namespace {

constexpr int kMaxTrackedScans = 64;

FaissScanStats* g_active[kMaxTrackedScans];
FaissScanStats g_finished[kMaxTrackedScans];
int g_finished_count = 0;

// Drops the pointer to a scan's stats when its memory goes away without an
// endscan (the query failed).
void forget_active_callback(void* arg) {
    for (int i = 0; i < kMaxTrackedScans; i++)
        if (g_active[i] == arg) g_active[i] = nullptr;
}

}  // namespace

void faiss_scan_register(MemoryContext context, FaissScanStats* stats, Relation index) {
    memset(stats, 0, sizeof(*stats));
    stats->index_relid = RelationGetRelid(index);
    for (int i = 0; i < kMaxTrackedScans; i++) {
        if (g_active[i] == nullptr) {
            g_active[i] = stats;
            // Registered on the parent of the scan context, which outlives
            // rescans (the scan context itself is reset on every rescan),
            // and allocated there too: a callback allocated in the scan
            // context was freed with it at amendscan while still registered
            // on the parent, which then called freed memory (found by the
            // assertion-enabled build, whose freed memory is clobbered).
            MemoryContext owner = context->parent != nullptr ? context->parent : context;
            auto* callback = static_cast<MemoryContextCallback*>(
                MemoryContextAllocZero(owner, sizeof(MemoryContextCallback)));
            callback->func = forget_active_callback;
            callback->arg = stats;
            MemoryContextRegisterResetCallback(owner, callback);
            return;
        }
    }
}

void faiss_scan_unregister(FaissScanStats* stats) {
    for (int i = 0; i < kMaxTrackedScans; i++) {
        if (g_active[i] == stats) {
            g_active[i] = nullptr;
            if (g_finished_count < kMaxTrackedScans) g_finished[g_finished_count++] = *stats;
        }
    }
}

void faiss_scan_reset_finished(void) { g_finished_count = 0; }

// --- benzer_index_info ---------------------------------------------------------

// What faiss_choose_search picked, in words: "probe lists until ... (recall
// target 0.95, measured 0.97 on 200 sampled rows)".
static char* describe_choice(const FaissMeta& meta, const FaissSearchChoice& choice) {
    StringInfoData out;
    initStringInfo(&out);
    const benzer::TuningTable& table = meta.tuning;
    if (table.kind == benzer::TunedKind::kExact && choice.target > 0) {
        appendStringInfoString(&out, "exact (Flat)");
        return out.data;
    }
    if (choice.target > 0) appendStringInfo(&out, "%s %.3g, ", choice.source, choice.target);
    if (choice.setting != nullptr)
        appendStringInfo(&out, "measured recall@%d %.3f on %d sampled rows: %s", Max(table.k, 1),
                         choice.measured, table.queries,
                         faiss_describe_setting(table.kind, *choice.setting));
    else if (choice.target >= 1.0)
        appendStringInfoString(&out, "every list or candidate (exact)");
    else if (choice.options.nprobe > 0)
        appendStringInfo(&out, "nprobe %d (%s)", choice.options.nprobe, choice.source);
    else if (choice.options.ef_search > 0)
        appendStringInfo(&out, "efSearch %d (%s)", choice.options.ef_search, choice.source);
    else
        appendStringInfo(&out, "the structure's defaults (%s)", choice.source);
    return out.data;
}

// Adds the EXPLAIN line with the search settings a scan of index would use.
static void append_search_settings(StringInfo str, Relation index, const FaissMeta& meta) {
    if (meta.factory[0] == '\0') return;
    FaissSearchChoice choice;
    faiss_choose_search(index, meta, &choice);
    appendStringInfo(str, "  search: %s\n", describe_choice(meta, choice));
}

// Opens a faiss index for one of the functions below, once the caller's
// rights on its table are checked (faiss_access.cpp). lock is taken on the
// table first (as an index scan or VACUUM does), then AccessShareLock on the
// index; the index must still belong to the table then.
static Relation open_checked_index(Oid relid, bool owner, LOCKMODE table_lock, Oid* table) {
    Oid heap_oid = faiss_index_table(relid);
    if (owner)
        faiss_require_owner(heap_oid, relid);
    else
        faiss_require_read(heap_oid, relid);
    LockRelationOid(heap_oid, table_lock);
    Relation index = relation_open(relid, AccessShareLock);
    if (IndexGetRelation(relid, false) != heap_oid)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("index \"%s\" changed while it was being opened",
                               RelationGetRelationName(index))));
    *table = heap_oid;
    return index;
}

BENZER_FUNCTION(benzer_index_info) {
    Oid relid = PG_GETARG_OID(0);
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "benzer_index_info must return a composite type");
    desc = BlessTupleDesc(desc);

    Oid table;
    Relation index = open_checked_index(relid, false, AccessShareLock, &table);
    FaissMeta meta;
    faiss_read_meta(index, &meta);
    int64 pending = faiss_count_inserted(index, meta);
    FaissOptions* options = faiss_get_options(index);

    // Loading the index (if this backend has not yet) gives the details.
    char description[512] = "";
    if (meta.factory[0] != '\0' && meta.generation > 0) {
        FaissLoadedIndex* entry = nullptr;
        for (int attempt = 0; attempt < 10 && entry == nullptr; attempt++) {
            faiss_read_meta(index, &meta);
            entry = faiss_cache_acquire(index, meta);
        }
        if (entry != nullptr && entry->engine != nullptr) {
            benzer::GuardedError error;
            benzer::Engine* engine = entry->engine;
            // Lists in pages: the engine holds none of the rows itself.
            char paged[384] = "";
            if (entry->lists != nullptr) {
                // Rows inserted since go to their lists' tails: count them
                // per list, so the imbalance says how far the lists drifted.
                int64* tail_rows = nullptr;
                FaissTailRows tails;
                faiss_tail_rows_init(&tails, meta.list_code_size);
                if (faiss_has_tails(meta) && faiss_read_tails(index, meta, &tails)) {
                    tail_rows =
                        static_cast<int64*>(palloc0(sizeof(int64) * Max(meta.list_count, 1u)));
                    for (int64 i = 0; i < tails.count; i++) tail_rows[tails.lists[i]]++;
                }
                FaissListSummary lists;
                faiss_summarize_lists(meta, entry->lists, tail_rows, &lists);
                char inserted[64] = "";
                if (tails.count > 0)
                    snprintf(inserted, sizeof(inserted), ", %lld rows inserted into list tails",
                             static_cast<long long>(tails.count));
                // VACUUM never rewrites these lists: dead rows stay masked
                // in them until the user asks for a rewrite.
                char dead[160] = "";
                if (meta.dead_rows > 0 && meta.main_rows > 0) {
                    double share = 100.0 * static_cast<double>(meta.dead_rows) /
                                   static_cast<double>(meta.main_rows);
                    snprintf(dead, sizeof(dead), ", %lld dead rows masked (%.0f%% of the lists)%s",
                             static_cast<long long>(meta.dead_rows), share,
                             share > 20.0
                                 ? ": REINDEX or benzer_index_merge(index, true) drops them"
                                 : "");
                }
                snprintf(paged, sizeof(paged),
                         ", lists in %llu pages read through shared buffers%s, largest list "
                         "%lld rows (%.1fx the mean), %lld empty%s",
                         static_cast<unsigned long long>(meta.list_pages), inserted,
                         static_cast<long long>(lists.largest), lists.imbalance,
                         static_cast<long long>(lists.empty_lists), dead);
            }
            long long rows = static_cast<long long>(meta.main_rows);
            bool ok = benzer::run_guarded(error, [&] {
                std::string text = engine->describe();
                if (paged[0] != '\0') {
                    std::string::size_type comma = text.find(',');
                    text = "rows " + std::to_string(rows) +
                           (comma == std::string::npos ? std::string() : text.substr(comma)) +
                           paged;
                }
                snprintf(description, sizeof(description), "%s", text.c_str());
            });
            faiss_cache_release(entry);
            if (!ok) raise_guarded_error(error, "could not describe faiss index");
        } else if (entry != nullptr) {
            // The search service holds the structure for this backend.
            if (entry->served != nullptr)
                snprintf(description, sizeof(description), "%s", entry->served->description);
            faiss_cache_release(entry);
        }
    }
    if (description[0] == '\0' && meta.factory[0] == '\0')
        snprintf(description, sizeof(description),
                 "untrained: rows are searched exactly until a merge can train the index");

    // Where exact searches of it run, when the search service holds it.
    char* held = service_describe_index(index);
    if (held != nullptr) {
        size_t used = strlen(description);
        snprintf(description + used, sizeof(description) - used, "%s%s", used > 0 ? "; " : "",
                 held);
    }

    FaissSearchChoice choice;
    faiss_choose_search(index, meta, &choice);
    Datum values[18];
    bool nulls[18] = {false};
    values[0] = CStringGetTextDatum(RelationGetRelationName(index));
    const char* requested = faiss_option_factory(options);
    if (meta.factory[0] != '\0')
        values[1] = CStringGetTextDatum(meta.factory);
    else
        nulls[1] = true;
    values[2] = BoolGetDatum(requested[0] == '\0');
    values[3] = CStringGetTextDatum(benzer::metric_name(static_cast<benzer::Metric>(meta.metric)));
    values[4] = Int32GetDatum(meta.dimensions);
    values[5] = Int64GetDatum(meta.main_rows - meta.dead_rows);
    values[6] = Int64GetDatum(pending);
    values[7] = Int64GetDatum(meta.dead_rows);
    values[8] = Int64GetDatum(static_cast<int64>(RelationGetNumberOfBlocks(index)) * BLCKSZ);
    // The Faiss structure: with lists in pages, the trained part plus the
    // list pages and their directory.
    values[9] = Int64GetDatum(
        static_cast<int64>(meta.blob.bytes + meta.list_directory.bytes + meta.list_pages * BLCKSZ));
    values[10] = Int64GetDatum(static_cast<int64>(faiss_cache_bytes(index)));
    values[11] = Int64GetDatum(meta.generation);
    values[12] = Int64GetDatum(meta.merges);
    values[13] = CStringGetTextDatum(description);
    values[14] = CStringGetTextDatum(benzer::distance_kernel_name());
    values[15] = Float8GetDatum(choice.target);
    nulls[15] = choice.target <= 0;
    values[16] = Float8GetDatum(choice.measured);
    nulls[16] = choice.target <= 0;
    values[17] = CStringGetTextDatum(describe_choice(meta, choice));
    relation_close(index, AccessShareLock);
    UnlockRelationOid(table, AccessShareLock);
    HeapTuple tuple = heap_form_tuple(desc, values, nulls);
    PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}

// benzer_index_merge(index, compact): folds pending rows into the Faiss
// structure now (and drops dead rows when compact), waiting for inserts in
// progress to finish. Returns the rows in the structure afterwards.
BENZER_FUNCTION(benzer_index_merge) {
    Oid relid = PG_GETARG_OID(0);
    bool compact = PG_GETARG_BOOL(1);
    // ShareUpdateExclusiveLock on the table serialises with VACUUM, which
    // also merges. Only the table's owner may (as for VACUUM and REINDEX).
    Oid table;
    Relation index = open_checked_index(relid, true, ShareUpdateExclusiveLock, &table);
    faiss_merge(index, compact, true);
    FaissMeta meta;
    faiss_read_meta(index, &meta);
    relation_close(index, AccessShareLock);
    PG_RETURN_INT64(meta.main_rows - meta.dead_rows);
}

// --- EXPLAIN -------------------------------------------------------------------

static ExplainOneQuery_hook_type previous_explain_hook = nullptr;

// Collects the faiss index scans of a plan tree.
static bool collect_faiss_scans(Plan* plan, List** indexes) {
    if (plan == nullptr) return false;
    if (IsA(plan, IndexScan)) {
        Oid index = reinterpret_cast<IndexScan*>(plan)->indexid;
        if (faiss_relation_am(index) == get_index_am_oid("faiss", true))
            *indexes = list_append_unique_oid(*indexes, index);
    }
    collect_faiss_scans(plan->lefttree, indexes);
    collect_faiss_scans(plan->righttree, indexes);
    ListCell* cell;
    if (IsA(plan, Append))
        foreach (cell, reinterpret_cast<Append*>(plan)->appendplans)
            collect_faiss_scans(static_cast<Plan*>(lfirst(cell)), indexes);
    if (IsA(plan, SubqueryScan))
        collect_faiss_scans(reinterpret_cast<SubqueryScan*>(plan)->subplan, indexes);
    return false;
}

// Prints one line per faiss index used by the plan, after the plan.
static void explain_faiss(ExplainState* es, PlannedStmt* planned) {
    List* indexes = NIL;
    collect_faiss_scans(planned->planTree, &indexes);
    ListCell* cell;
    foreach (cell, planned->subplans)
        collect_faiss_scans(static_cast<Plan*>(lfirst(cell)), &indexes);
    if (indexes == NIL || es->format != EXPLAIN_FORMAT_TEXT) return;
    foreach (cell, indexes) {
        Oid relid = lfirst_oid(cell);
        Relation index = relation_open(relid, AccessShareLock);
        FaissMeta meta;
        faiss_read_meta(index, &meta);
        int64 pending = faiss_count_inserted(index, meta);
        appendStringInfo(es->str, "Faiss index %s: %s, %s, %d dimensions, %lld rows",
                         RelationGetRelationName(index),
                         meta.factory[0] ? meta.factory : "untrained (exact search)",
                         benzer::metric_name(static_cast<benzer::Metric>(meta.metric)),
                         meta.dimensions, static_cast<long long>(meta.main_rows - meta.dead_rows));
        appendStringInfo(es->str, ", %lld pending, %lld dead\n", static_cast<long long>(pending),
                         static_cast<long long>(meta.dead_rows));
        // The settings depend on a measurement (and on the session's
        // settings): shown when asked for details.
        if (es->analyze || es->verbose) append_search_settings(es->str, index, meta);
        relation_close(index, AccessShareLock);
        for (int i = 0; i < g_finished_count; i++) {
            const FaissScanStats& s = g_finished[i];
            if (s.index_relid != relid) continue;
            appendStringInfo(
                es->str,
                "  scan: %lld Faiss rounds, %lld candidates, %lld rows from the index, %lld from "
                "%lld pending rows%s%s%s",
                static_cast<long long>(s.rounds), static_cast<long long>(s.candidates),
                static_cast<long long>(s.main_returned), static_cast<long long>(s.pending_returned),
                static_cast<long long>(s.pending_rows),
                s.selector_used ? ", filter inside Faiss" : "",
                s.exact_scan ? ", exact distances" : "",
                s.hit_limit ? ", stopped at benzer.max_scan_tuples" : "");
            if (s.adaptive)
                appendStringInfo(es->str, ", %lld lists probed, %lld rows compared",
                                 static_cast<long long>(s.lists),
                                 static_cast<long long>(s.compared));
            else if (s.max_nprobe > 0)
                appendStringInfo(es->str, ", nprobe up to %d", s.max_nprobe);
            if (s.first_k > 0)
                appendStringInfo(es->str, ", first round k %lld",
                                 static_cast<long long>(s.first_k));
            if (s.reranked > 0)
                appendStringInfo(es->str, ", %lld candidates re-ranked by the table's vectors",
                                 static_cast<long long>(s.reranked));
            if (s.service > 0)
                appendStringInfo(
                    es->str, "; %lld rounds in the search service (%s, batches up to %d queries)",
                    static_cast<long long>(s.service), s.service_gpu ? "gpu" : "cpu",
                    s.service_batch);
            else if (s.service_why_not != nullptr)
                appendStringInfo(es->str, "; searched in this backend: %s", s.service_why_not);
            if (s.conditions > 0)
                appendStringInfo(es->str, "; %d index conditions matched %lld indexed rows",
                                 s.conditions, static_cast<long long>(s.allowed_rows));
            appendStringInfoChar(es->str, '\n');
        }
    }
}

// ExplainOneQuery, followed by the faiss lines.
static void benzer_explain_one_query(Query* query, int cursor_options, IntoClause* into,
                                     ExplainState* es, const char* query_string,
                                     ParamListInfo params, QueryEnvironment* query_env) {
    if (previous_explain_hook != nullptr) {
        // Another extension explains; let it, without our lines.
        previous_explain_hook(query, cursor_options, into, es, query_string, params, query_env);
        return;
    }
    faiss_scan_reset_finished();
    instr_time plan_start, plan_duration;
    BufferUsage bufusage_start, bufusage;
    if (es->buffers) bufusage_start = pgBufferUsage;
    INSTR_TIME_SET_CURRENT(plan_start);
    PlannedStmt* planned = pg_plan_query(query, query_string, cursor_options, params);
    INSTR_TIME_SET_CURRENT(plan_duration);
    INSTR_TIME_SUBTRACT(plan_duration, plan_start);
    if (es->buffers) {
        memset(&bufusage, 0, sizeof(BufferUsage));
        BufferUsageAccumDiff(&bufusage, &pgBufferUsage, &bufusage_start);
    }
    ExplainOnePlan(planned, into, es, query_string, params, query_env, &plan_duration,
                   es->buffers ? &bufusage : nullptr);
    explain_faiss(es, planned);
    faiss_scan_reset_finished();
}

void faiss_install_explain_hook(void) {
    previous_explain_hook = ExplainOneQuery_hook;
    ExplainOneQuery_hook = benzer_explain_one_query;
}
