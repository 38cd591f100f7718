// shard_merge.cpp: one similarity query over shards on other servers.
//
// When a table outgrows one server, its partitions become postgres_fdw
// foreign tables on other servers, each with benzer and its own faiss
// index. PostgreSQL 15 plans the app's query
//
//     SELECT ... FROM items WHERE ... ORDER BY v <-> $1 LIMIT 10
//
// over such a table as a Merge Append of the shards' ordered scans: every
// shard is asked for all its rows in distance order, with no LIMIT, and the
// shards are read one after the other (asynchronous foreign scans run only
// under a plain Append). Measured on Fashion-MNIST over 2 loopback shards,
// that is 21 times slower than one server.
//
// After the planner has made its ordered paths, this hook replaces them,
// for the shapes it covers, with
//
//     Custom Scan (BenzerShardMerge)      sends the session's search settings
//       -> Sort (top-N)                   merges the shards' top k
//         -> Append                       runs the shards concurrently
//           -> Async Foreign Scan         remote: SELECT id, v <-> $1 ...
//                                           ORDER BY v <-> $1 LIMIT 10
//           -> Limit -> Index Scan        a local partition's own faiss index
//
// The remote SQL, its WHERE conditions and parameters are postgres_fdw's
// own: we take the ordered path it made for each shard and ask it for a
// LIMIT, which it renders from the query's LIMIT exactly as it does when a
// whole query goes to one server (the has_limit flag of its path). Every
// WHERE condition must ship, or the shard's LIMIT would be applied before a
// local filter and lose rows; when one does not, the query keeps
// PostgreSQL's own plan. So do all shapes this file does not cover (see
// shard_query_covered) and any query with benzer.shard_pushdown off. Once
// postgres_fdw has made a shard's plan, ship_distance has the shard send
// the distance instead of the vector (the larger half of the time).
//
// The result equals one server's: each shard's k nearest rows under the
// WHERE conditions contain that shard's share of the global k nearest, and
// the Sort keeps the k nearest of their union. The settings that change
// what an index scan returns (benzer.recall, benzer.nprobe, ...) are set on
// every shard's connection, for its remote transaction, before the first
// row is asked for, whenever one of them is not at its default.
#include "pg/faiss.h"
#include "pg/shard_direct.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "access/stratnum.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/foreign.h"
#include "libpq-fe.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planner.h"
#include "optimizer/tlist.h"
#include "parser/parsetree.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/tuplesort.h"
}

namespace {

// benzer.shard_pushdown.
bool shard_pushdown = true;

// benzer.shard_direct.
bool shard_direct = true;

create_upper_paths_hook_type previous_upper_paths_hook = nullptr;

extern const CustomPathMethods shard_merge_path_methods;
extern const CustomScanMethods shard_merge_scan_methods;
extern const CustomExecMethods shard_merge_exec_methods;

// postgres_fdw's functions we call (PostgreSQL 15's postgres_fdw.h). Its
// connection state starts with the pending asynchronous request.
struct PgFdwConnState {
    AsyncRequest* pendingAreq;
};
using IsForeignExprFn = bool (*)(PlannerInfo*, RelOptInfo*, Expr*);
using GetConnectionFn = PGconn* (*)(UserMapping*, bool, PgFdwConnState**);
using GetResultFn = PGresult* (*)(PGconn*, const char*);
using ReportErrorFn = void (*)(int, PGresult*, PGconn*, bool, const char*);
using ProcessPendingFn = void (*)(AsyncRequest*);

// True when a foreign table's server belongs to postgres_fdw.
bool is_postgres_fdw_server(Oid serverid) {
    ForeignServer* server = GetForeignServer(serverid);
    ForeignDataWrapper* fdw = GetForeignDataWrapper(server->fdwid);
    if (!OidIsValid(fdw->fdwhandler)) return false;
    char* handler = get_func_name(fdw->fdwhandler);
    return handler != nullptr && strcmp(handler, "postgres_fdw_handler") == 0;
}

// True when opno is one of benzer's operators: its function is C code in
// benzer's library. Syscache lookups only (the extension's membership is
// in pg_depend, a catalog scan for every query planned).
bool is_benzer_operator(Oid opno) {
    HeapTuple tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(get_opcode(opno)));
    if (!HeapTupleIsValid(tuple)) return false;
    bool isnull;
    Datum library = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_probin, &isnull);
    bool ours = !isnull &&
                reinterpret_cast<Form_pg_proc>(GETSTRUCT(tuple))->prolang == ClanguageId &&
                strcmp(TextDatumGetCString(library), "$libdir/benzer") == 0;
    ReleaseSysCache(tuple);
    return ours;
}

// True when the query is one this file rewrites: a plain SELECT of one
// partitioned table (the scan/join rel), ordered by one ascending benzer
// distance, with a LIMIT that can be sent to a shard and no OFFSET,
// grouping, DISTINCT, window functions, set-returning functions or row
// locks.
bool shard_query_covered(PlannerInfo* root, RelOptInfo* input_rel) {
    Query* parse = root->parse;
    if (parse->commandType != CMD_SELECT || parse->limitCount == nullptr ||
        parse->limitOffset != nullptr || parse->limitOption != LIMIT_OPTION_COUNT ||
        list_length(parse->sortClause) != 1 || parse->groupClause != NIL ||
        parse->groupingSets != NIL || parse->hasAggs || parse->hasWindowFuncs ||
        parse->distinctClause != NIL || parse->hasTargetSRFs || parse->rowMarks != NIL ||
        parse->setOperations != nullptr || parse->havingQual != nullptr)
        return false;
    if (IsA(parse->limitCount, Const) && castNode(Const, parse->limitCount)->constisnull)
        return false;  // LIMIT ALL
    if (input_rel->reloptkind != RELOPT_BASEREL || !IS_PARTITIONED_REL(input_rel)) return false;
    if (list_length(root->sort_pathkeys) != 1) return false;
    PathKey* pathkey = static_cast<PathKey*>(linitial(root->sort_pathkeys));
    if (pathkey->pk_strategy != BTLessStrategyNumber || pathkey->pk_nulls_first) return false;

    SortGroupClause* sort = static_cast<SortGroupClause*>(linitial(parse->sortClause));
    TargetEntry* entry = get_sortgroupclause_tle(sort, parse->targetList);
    if (!IsA(entry->expr, OpExpr) || exprType(reinterpret_cast<Node*>(entry->expr)) != FLOAT8OID)
        return false;
    return is_benzer_operator(castNode(OpExpr, entry->expr)->opno);
}

// The cheapest of a shard's paths that postgres_fdw ordered by the query's
// distance (the ORDER BY goes to the shard), or nullptr. *target is the
// path's output (a projection over the scan may have set it).
ForeignPath* ordered_foreign_path(RelOptInfo* child, List* pathkeys, PathTarget** target) {
    ForeignPath* best = nullptr;
    ListCell* cell;
    foreach (cell, child->pathlist) {
        Path* path = static_cast<Path*>(lfirst(cell));
        PathTarget* output = path->pathtarget;
        if (IsA(path, ProjectionPath)) path = reinterpret_cast<ProjectionPath*>(path)->subpath;
        if (!IsA(path, ForeignPath) || path->param_info != nullptr ||
            compare_pathkeys(pathkeys, path->pathkeys) != PATHKEYS_EQUAL)
            continue;
        auto* foreign = reinterpret_cast<ForeignPath*>(path);
        if (foreign->fdw_private != NIL || foreign->fdw_outerpath != nullptr) continue;
        if (best == nullptr || path->total_cost < best->path.total_cost) {
            best = foreign;
            *target = output;
        }
    }
    return best;
}

// The path that asks a shard for its k nearest rows: a copy of its ordered
// path that postgres_fdw will render with the query's LIMIT, computing the
// query's output (the distance included) from the rows it fetched.
Path* shard_top_k_path(ForeignPath* ordered, PathTarget* target, double k) {
    ForeignPath* top_k = makeNode(ForeignPath);
    memcpy(top_k, ordered, sizeof(ForeignPath));
    top_k->path.pathtarget = target;
    top_k->path.rows = Min(ordered->path.rows, k);
    // postgres_fdw's FdwPathPrivateIndex: has_final_sort, has_limit.
    top_k->fdw_private = list_make2(makeBoolean(false), makeBoolean(true));
    return &top_k->path;
}

// The path that reads a local partition's k nearest rows: its cheapest
// ordered path (a faiss index scan where there is one) under a Limit.
Path* local_top_k_path(PlannerInfo* root, RelOptInfo* child, List* pathkeys, double k) {
    double fraction = child->rows > 0 ? Min(1.0, k / child->rows) : 1.0;
    Path* ordered =
        get_cheapest_fractional_path_for_pathkeys(child->pathlist, pathkeys, nullptr, fraction);
    if (ordered == nullptr)
        ordered = &create_sort_path(root, child, child->cheapest_total_path, pathkeys, k)->path;
    return &create_limit_path(root, child, ordered, nullptr,
                              static_cast<Node*>(copyObjectImpl(root->parse->limitCount)),
                              LIMIT_OPTION_COUNT, 0, static_cast<int64>(k))
                ->path;
}

// Adds the shard merge path to the ordered rel when the query is covered
// and at least one live partition is a postgres_fdw foreign table, and
// drops the paths PostgreSQL made: the rewrite never reads more rows than
// they would. Any partition it cannot handle leaves them alone.
void shard_upper_paths(PlannerInfo* root, UpperRelationKind stage, RelOptInfo* input_rel,
                       RelOptInfo* output_rel, void* extra) {
    if (previous_upper_paths_hook != nullptr)
        previous_upper_paths_hook(root, stage, input_rel, output_rel, extra);
    if (stage != UPPERREL_ORDERED || !shard_pushdown || !shard_query_covered(root, input_rel))
        return;

    IsForeignExprFn is_foreign_expr = nullptr;
    List* pathkeys = root->sort_pathkeys;
    double k = root->limit_tuples > 0 ? root->limit_tuples : 10.0;
    List* subpaths = NIL;
    int shards = 0;
    int part = -1;
    while ((part = bms_next_member(input_rel->live_parts, part)) >= 0) {
        RelOptInfo* child = input_rel->part_rels[part];
        if (child == nullptr || IS_DUMMY_REL(child)) continue;
        if (child->part_scheme != nullptr || child->rtekind != RTE_RELATION) return;
        if (child->fdwroutine == nullptr) {
            subpaths = lappend(subpaths, local_top_k_path(root, child, pathkeys, k));
            continue;
        }
        if (!is_postgres_fdw_server(child->serverid)) return;
        if (is_foreign_expr == nullptr) {
            is_foreign_expr =
                reinterpret_cast<IsForeignExprFn>(postgres_fdw_function("is_foreign_expr"));
            if (is_foreign_expr == nullptr) return;
        }
        // Every condition must run on the shard, and so must the LIMIT.
        ListCell* cell;
        foreach (cell, child->baserestrictinfo) {
            RestrictInfo* rinfo = static_cast<RestrictInfo*>(lfirst(cell));
            if (!rinfo->pseudoconstant && !is_foreign_expr(root, child, rinfo->clause)) return;
        }
        if (!is_foreign_expr(root, child, reinterpret_cast<Expr*>(root->parse->limitCount))) return;
        PathTarget* target = nullptr;
        ForeignPath* ordered = ordered_foreign_path(child, pathkeys, &target);
        if (ordered == nullptr) return;  // the distance operator does not ship
        subpaths = lappend(subpaths, shard_top_k_path(ordered, target, k));
        shards++;
    }
    if (shards == 0) return;

    // No parallel workers: asynchronous Append needs a parallel-unsafe path.
    AppendPath* append =
        create_append_path(root, input_rel, subpaths, NIL, NIL, nullptr, 0, false, -1);
    append->path.parallel_safe = false;
    Path* merged = &create_sort_path(root, output_rel, &append->path, pathkeys, k)->path;
    PathTarget* target = root->upper_targets[UPPERREL_ORDERED];
    if (target != nullptr && !equal(target->exprs, merged->pathtarget->exprs))
        merged = apply_projection_to_path(root, output_rel, merged, target);

    CustomPath* path = makeNode(CustomPath);
    path->path.pathtype = T_CustomScan;
    path->path.parent = output_rel;
    path->path.pathtarget = merged->pathtarget;
    path->path.param_info = nullptr;
    path->path.parallel_aware = false;
    path->path.parallel_safe = false;
    path->path.parallel_workers = 0;
    path->path.rows = merged->rows;
    path->path.startup_cost = merged->startup_cost;
    path->path.total_cost = merged->total_cost;
    path->path.pathkeys = pathkeys;
    path->flags = 0;
    path->custom_paths = list_make1(merged);
    path->custom_private = NIL;
    path->methods = &shard_merge_path_methods;

    output_rel->pathlist = NIL;
    output_rel->partial_pathlist = NIL;
    add_path(output_rel, &path->path);
}

// A shard column's name on its server (the column_name option, or its own).
char* remote_column_name(Oid relid, AttrNumber attno) {
    ListCell* cell;
    foreach (cell, GetForeignColumnOptions(relid, attno)) {
        DefElem* option = static_cast<DefElem*>(lfirst(cell));
        if (strcmp(option->defname, "column_name") == 0) return defGetString(option);
    }
    return get_attname(relid, attno, false);
}

// Where " FROM " ends postgres_fdw's select list (skipping quoted names),
// or nullptr.
const char* end_of_select_list(const char* sql) {
    bool quoted = false;
    for (const char* p = sql; *p != '\0'; p++) {
        if (*p == '"') quoted = !quoted;
        if (!quoted && strncmp(p, " FROM ", 6) == 0) return p;
    }
    return nullptr;
}

// The last occurrence of needle in text, or nullptr.
const char* last_occurrence(const char* text, const char* needle) {
    const char* last = nullptr;
    for (const char* p = strstr(text, needle); p != nullptr; p = strstr(p + 1, needle)) last = p;
    return last;
}

// Makes a shard send its rows' distances instead of their vectors.
//
// postgres_fdw computes a base table's output expressions locally, so for
// "ORDER BY v <-> q" each shard would send back every row's whole vector
// as text (784 floats: about 7 kB to print, send and parse per row, most
// of the query's time) for the coordinator to compute the distance it has
// already ordered by. Its remote SQL for the shard is
//     SELECT <columns> FROM <table> [WHERE ...] ORDER BY <distance> ASC NULLS LAST LIMIT <k>
// and here its select list becomes the columns the query needs besides the
// vector, then <distance>; the scan reads them through fdw_scan_tlist, as
// postgres_fdw's own pushed-down joins do, and setrefs.c points the
// distance in the output at that column. Any other shape of SQL or output
// (whole-row or system columns) leaves the scan as postgres_fdw made it,
// which is slower but returns the same rows.
void ship_distance(ForeignScan* scan, Index sortref, Oid relid) {
    Index rti = scan->scan.scanrelid;
    if (rti == 0 || scan->fdw_scan_tlist != NIL || scan->scan.plan.qual != NIL ||
        list_length(scan->fdw_private) != 3 || !IsA(linitial(scan->fdw_private), String))
        return;
    const char* sql = strVal(linitial(scan->fdw_private));
    TargetEntry* distance = nullptr;
    List* columns = NIL;
    ListCell* cell;
    foreach (cell, scan->scan.plan.targetlist) {
        TargetEntry* entry = static_cast<TargetEntry*>(lfirst(cell));
        if (entry->ressortgroupref == sortref && distance == nullptr) {
            distance = entry;
            continue;
        }
        columns = list_concat_unique(columns, pull_var_clause((Node*)entry->expr, 0));
    }
    if (distance == nullptr) return;
    foreach (cell, columns) {
        Var* var = static_cast<Var*>(lfirst(cell));
        if (var->varno != static_cast<int>(rti) || var->varattno <= 0 || var->varlevelsup != 0)
            return;
    }
    const char* from = end_of_select_list(sql);
    const char* order_by = last_occurrence(sql, " ORDER BY ");
    const char* limit = last_occurrence(sql, " ASC NULLS LAST LIMIT ");
    if (strncmp(sql, "SELECT ", 7) != 0 || from == nullptr || order_by == nullptr ||
        limit == nullptr || order_by < from || limit < order_by)
        return;

    StringInfoData rewritten;
    initStringInfo(&rewritten);
    appendStringInfoString(&rewritten, "SELECT ");
    List* scan_tlist = NIL;
    List* retrieved = NIL;
    foreach (cell, columns) {
        Var* var = static_cast<Var*>(lfirst(cell));
        appendStringInfo(&rewritten, "%s, ",
                         quote_identifier(remote_column_name(relid, var->varattno)));
        scan_tlist =
            lappend(scan_tlist, makeTargetEntry(reinterpret_cast<Expr*>(copyObjectImpl(var)),
                                                list_length(scan_tlist) + 1, nullptr, false));
        retrieved = lappend_int(retrieved, list_length(scan_tlist));
    }
    const char* expression = order_by + strlen(" ORDER BY ");
    appendBinaryStringInfo(&rewritten, expression, static_cast<int>(limit - expression));
    appendStringInfoString(&rewritten, from);
    scan_tlist =
        lappend(scan_tlist, makeTargetEntry(static_cast<Expr*>(copyObjectImpl(distance->expr)),
                                            list_length(scan_tlist) + 1, nullptr, false));
    retrieved = lappend_int(retrieved, list_length(scan_tlist));

    // postgres_fdw's FdwScanPrivateIndex: the SQL, the retrieved columns,
    // the fetch size and, for a scan that is not of one table, the range
    // table indexes EXPLAIN names ("Relations").
    scan->fdw_private = list_make4(makeString(rewritten.data), retrieved, lthird(scan->fdw_private),
                                   makeString(psprintf("%u", rti)));
    scan->fdw_scan_tlist = scan_tlist;
    // Rechecks serve EvalPlanQual, which a SELECT without row locks never
    // runs; their columns are not in the new scan tuple.
    scan->fdw_recheck_quals = NIL;
    scan->scan.scanrelid = 0;
}

// Finds the shards' foreign scans below the merge's Sort and has each send
// distances instead of vectors.
void ship_distances(PlannerInfo* root, Plan* plan, Index sortref) {
    if (plan == nullptr) return;
    if (IsA(plan, ForeignScan)) {
        auto* scan = reinterpret_cast<ForeignScan*>(plan);
        if (scan->scan.scanrelid > 0 && is_postgres_fdw_server(scan->fs_server))
            ship_distance(scan, sortref, planner_rt_fetch(scan->scan.scanrelid, root)->relid);
    } else if (IsA(plan, Append)) {
        ListCell* cell;
        foreach (cell, reinterpret_cast<Append*>(plan)->appendplans)
            ship_distances(root, static_cast<Plan*>(lfirst(cell)), sortref);
    } else if (IsA(plan, Sort) || IsA(plan, Result)) {
        ship_distances(root, plan->lefttree, sortref);
    }
}

// The plan of the merge: a pass-through over its one child (the Sort),
// whose output is its own.
Plan* plan_shard_merge(PlannerInfo* root, RelOptInfo* rel, CustomPath* best_path, List* tlist,
                       List* clauses, List* custom_plans) {
    CustomScan* scan = makeNode(CustomScan);
    Plan* child = static_cast<Plan*>(linitial(custom_plans));
    SortGroupClause* sort = static_cast<SortGroupClause*>(linitial(root->parse->sortClause));
    ship_distances(root, child, sort->tleSortGroupRef);
    scan->scan.plan.targetlist = tlist;
    scan->scan.plan.qual = NIL;
    scan->scan.scanrelid = 0;
    scan->flags = best_path->flags;
    scan->custom_plans = custom_plans;
    scan->custom_exprs = NIL;
    scan->custom_private = NIL;
    scan->custom_scan_tlist = static_cast<List*>(copyObjectImpl(child->targetlist));
    scan->methods = &shard_merge_scan_methods;
    return &scan->scan.plan;
}

// A shard's part of the query when each shard gets one plain statement
// (shard_direct.h): its foreign scan's SQL and parameters, and how its
// rows become the Append's.
struct DirectShard {
    ForeignScan* plan;
    Oid user;
    List* params;            // ExprStates of the scan's fdw_exprs
    FmgrInfo* param_output;  // their output functions
    TupleTableSlot* row;     // a row as the shard sends it (fdw_scan_tlist)
    FmgrInfo* column_input;
    Oid* column_ioparam;
    ProjectionInfo* projection;  // the row as the Append returns it
};

struct ShardMergeState {
    CustomScanState css;
    bool settings_sent;
    bool direct_eligible;  // the plan's shape allows one statement per shard
    bool direct;           // this execution sends one statement per shard
    int shard_count;
    DirectShard* shards;
    ExprContext* row_context;
    Tuplesortstate* sorted;  // the shards' rows, once they answered
    TupleTableSlot* sorted_row;
};

Node* create_shard_merge_state(CustomScan* scan) {
    auto* state = static_cast<ShardMergeState*>(palloc0(sizeof(ShardMergeState)));
    NodeSetTag(state, T_CustomScanState);
    state->css.methods = &shard_merge_exec_methods;
    return reinterpret_cast<Node*>(state);
}

// The shards' foreign scans when the merge's child is a Sort over an
// Append (without run-time pruning) of postgres_fdw scans that send
// distances, or over one such scan; NIL for any other shape (a local
// partition among them, for one).
List* direct_scans(Plan* child) {
    if (!IsA(child, Sort)) return NIL;
    Plan* below = child->lefttree;
    List* plans = list_make1(below);
    if (IsA(below, Append)) {
        auto* append = reinterpret_cast<Append*>(below);
        if (append->part_prune_info != nullptr) return NIL;
        plans = append->appendplans;
    }
    ListCell* cell;
    foreach (cell, plans) {
        auto* plan = static_cast<Plan*>(lfirst(cell));
        if (!IsA(plan, ForeignScan)) return NIL;
        auto* scan = reinterpret_cast<ForeignScan*>(plan);
        if (scan->scan.scanrelid != 0 || scan->fdw_scan_tlist == NIL ||
            list_length(scan->fdw_private) != 4 || plan->qual != NIL ||
            !is_postgres_fdw_server(scan->fs_server))
            return NIL;
    }
    return plans;
}

// Prepares the direct execution of each scan in scans.
void begin_direct(ShardMergeState* state, List* scans) {
    EState* estate = state->css.ss.ps.state;
    PlanState* parent = &state->css.ss.ps;
    state->shard_count = list_length(scans);
    state->shards = static_cast<DirectShard*>(palloc0(state->shard_count * sizeof(DirectShard)));
    state->row_context = CreateExprContext(estate);
    ListCell* cell;
    int i = 0;
    foreach (cell, scans) {
        DirectShard* shard = &state->shards[i++];
        auto* scan = static_cast<ForeignScan*>(lfirst(cell));
        shard->plan = scan;
        // As postgres_fdw picks the user: the table's range table entry.
        RangeTblEntry* rte = exec_rt_fetch(bms_next_member(scan->fs_relids, -1), estate);
        shard->user = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();

        shard->params = ExecInitExprList(scan->fdw_exprs, parent);
        shard->param_output = static_cast<FmgrInfo*>(
            palloc0(Max(1, list_length(scan->fdw_exprs)) * sizeof(FmgrInfo)));
        int p = 0;
        ListCell* expr;
        foreach (expr, scan->fdw_exprs) {
            Oid output;
            bool varlena;
            getTypeOutputInfo(exprType(static_cast<Node*>(lfirst(expr))), &output, &varlena);
            fmgr_info(output, &shard->param_output[p++]);
        }

        TupleDesc row_type = ExecTypeFromTL(scan->fdw_scan_tlist);
        shard->row = ExecInitExtraTupleSlot(estate, row_type, &TTSOpsVirtual);
        shard->column_input = static_cast<FmgrInfo*>(palloc0(row_type->natts * sizeof(FmgrInfo)));
        shard->column_ioparam = static_cast<Oid*>(palloc0(row_type->natts * sizeof(Oid)));
        for (int c = 0; c < row_type->natts; c++) {
            Oid input;
            getTypeInputInfo(TupleDescAttr(row_type, c)->atttypid, &input,
                             &shard->column_ioparam[c]);
            fmgr_info(input, &shard->column_input[c]);
        }
        TupleDesc output_type = ExecTypeFromTL(scan->scan.plan.targetlist);
        TupleTableSlot* output = ExecInitExtraTupleSlot(estate, output_type, &TTSOpsVirtual);
        shard->projection = ExecBuildProjectionInfo(scan->scan.plan.targetlist, state->row_context,
                                                    output, parent, row_type);
    }
    TupleDesc merged = ExecTypeFromTL(state->shards[0].plan->scan.plan.targetlist);
    state->sorted_row = ExecInitExtraTupleSlot(estate, merged, &TTSOpsMinimalTuple);
}

void begin_shard_merge(CustomScanState* node, EState* estate, int eflags) {
    auto* state = reinterpret_cast<ShardMergeState*>(node);
    auto* scan = reinterpret_cast<CustomScan*>(node->ss.ps.plan);
    Plan* child_plan = static_cast<Plan*>(linitial(scan->custom_plans));
    List* scans = direct_scans(child_plan);
    state->direct_eligible = shard_direct && scans != NIL;
    state->direct =
        state->direct_eligible && !(eflags & EXEC_FLAG_EXPLAIN_ONLY) && shard_direct_possible();
    // The child plan runs only when the shards are read through
    // postgres_fdw; otherwise it is there for EXPLAIN (its remote SQL).
    PlanState* child =
        ExecInitNode(child_plan, estate, eflags | (state->direct ? EXEC_FLAG_EXPLAIN_ONLY : 0));
    node->custom_ps = list_make1(child);
    if (state->direct) begin_direct(state, scans);
    // Without a projection the Sort's slots pass through, so the nodes
    // above must expect its kind of slot (as for a Limit).
    if (node->ss.ps.ps_ProjInfo == nullptr)
        node->ss.ps.resultops = ExecGetResultSlotOps(child, &node->ss.ps.resultopsfixed);
}

// The text of the parameters of every shard's statement, written in the
// unambiguous styles the shards' sessions were set to (as postgres_fdw
// writes them).
ShardStatement* direct_statements(ShardMergeState* state) {
    using SetModesFn = int (*)(void);
    using ResetModesFn = void (*)(int);
    auto set_modes = reinterpret_cast<SetModesFn>(postgres_fdw_function("set_transmission_modes"));
    auto reset_modes =
        reinterpret_cast<ResetModesFn>(postgres_fdw_function("reset_transmission_modes"));
    if (set_modes == nullptr || reset_modes == nullptr)
        ereport(ERROR, (errcode(ERRCODE_FDW_ERROR),
                        errmsg("postgres_fdw lacks the functions benzer's shard merge calls"),
                        errhint("Turn benzer.shard_pushdown off.")));

    ExprContext* econtext = state->css.ss.ps.ps_ExprContext;
    auto* statements =
        static_cast<ShardStatement*>(palloc0(state->shard_count * sizeof(ShardStatement)));
    int nestlevel = set_modes();
    for (int i = 0; i < state->shard_count; i++) {
        DirectShard* shard = &state->shards[i];
        ShardStatement* statement = &statements[i];
        statement->server = shard->plan->fs_server;
        statement->user = shard->user;
        statement->sql = strVal(linitial(shard->plan->fdw_private));
        statement->param_count = list_length(shard->params);
        auto** params =
            static_cast<const char**>(palloc0(Max(1, statement->param_count) * sizeof(char*)));
        for (int p = 0; p < statement->param_count; p++) {
            // The query vector, written once for all shards (a 2 048-d one
            // is 20 kB of text).
            auto* expr = static_cast<Node*>(list_nth(shard->plan->fdw_exprs, p));
            if (i > 0 && p < statements[0].param_count &&
                equal(expr, list_nth(state->shards[0].plan->fdw_exprs, p))) {
                params[p] = statements[0].params[p];
                continue;
            }
            bool isnull;
            Datum value = ExecEvalExpr(static_cast<ExprState*>(list_nth(shard->params, p)),
                                       econtext, &isnull);
            params[p] = isnull ? nullptr : OutputFunctionCall(&shard->param_output[p], value);
        }
        statement->params = params;
    }
    reset_modes(nestlevel);
    return statements;
}

// Adds a shard's rows to the sort, each as the Append would return it.
void sort_shard_rows(ShardMergeState* state, DirectShard* shard, PGresult* result) {
    ExprContext* row_context = state->row_context;
    TupleTableSlot* row = shard->row;
    int columns = row->tts_tupleDescriptor->natts;
    if (PQnfields(result) != columns)
        ereport(ERROR, (errcode(ERRCODE_FDW_ERROR),
                        errmsg("server \"%s\" returned %d columns where %d were expected",
                               GetForeignServer(shard->plan->fs_server)->servername,
                               PQnfields(result), columns)));
    for (int r = 0; r < PQntuples(result); r++) {
        ResetExprContext(row_context);
        MemoryContext old = MemoryContextSwitchTo(row_context->ecxt_per_tuple_memory);
        ExecClearTuple(row);
        for (int c = 0; c < columns; c++) {
            bool isnull = PQgetisnull(result, r, c);
            row->tts_isnull[c] = isnull;
            row->tts_values[c] = InputFunctionCall(
                &shard->column_input[c], isnull ? nullptr : PQgetvalue(result, r, c),
                shard->column_ioparam[c], TupleDescAttr(row->tts_tupleDescriptor, c)->atttypmod);
        }
        ExecStoreVirtualTuple(row);
        MemoryContextSwitchTo(old);
        row_context->ecxt_scantuple = row;
        tuplesort_puttupleslot(state->sorted, ExecProject(shard->projection));
    }
}

// Sends every shard its SQL as one statement, all at once, and sorts the
// rows they return as the Sort below would have.
void run_direct(ShardMergeState* state) {
    ShardStatement* statements = direct_statements(state);
    auto* results = static_cast<PGresult**>(palloc0(state->shard_count * sizeof(PGresult*)));
    shard_run_statements(statements, state->shard_count, results);

    auto* sort = reinterpret_cast<Sort*>(
        linitial(reinterpret_cast<CustomScan*>(state->css.ss.ps.plan)->custom_plans));
    state->sorted = tuplesort_begin_heap(state->sorted_row->tts_tupleDescriptor, sort->numCols,
                                         sort->sortColIdx, sort->sortOperators, sort->collations,
                                         sort->nullsFirst, work_mem, nullptr, TUPLESORT_NONE);
    PG_TRY();
    {
        for (int i = 0; i < state->shard_count; i++)
            sort_shard_rows(state, &state->shards[i], results[i]);
    }
    PG_FINALLY();
    {
        for (int i = 0; i < state->shard_count; i++) PQclear(results[i]);
    }
    PG_END_TRY();
    tuplesort_performsort(state->sorted);
}

// Calls fn on every postgres_fdw foreign scan below state, looking through
// the nodes this file puts there.
template <typename Fn>
void for_each_shard_scan(PlanState* state, Fn fn) {
    if (state == nullptr) return;
    switch (nodeTag(state)) {
        case T_ForeignScanState:
            if (is_postgres_fdw_server(reinterpret_cast<ForeignScan*>(state->plan)->fs_server))
                fn(reinterpret_cast<ForeignScanState*>(state));
            break;
        case T_AppendState: {
            auto* append = reinterpret_cast<AppendState*>(state);
            for (int i = 0; i < append->as_nplans; i++)
                for_each_shard_scan(append->appendplans[i], fn);
            break;
        }
        default:
            for_each_shard_scan(outerPlanState(state), fn);
            break;
    }
}

// The top-level transaction in which settings were last sent to shards.
LocalTransactionId settings_sent_in = InvalidLocalTransactionId;

// True when the shards must be told the search settings: one of them is
// not at benzer's built-in default (set by SET, ALTER ROLE / DATABASE or
// the configuration file), or this transaction already sent some (the
// shards keep them until its end, so a value back at its default must
// reach them too). When all are at their defaults and nothing was sent,
// the shards' own defaults apply and the round trip is saved.
bool search_settings_needed(void) {
    if (settings_sent_in == MyProc->lxid) return true;
    for (int i = 0; i < kShardSearchSettingCount; i++)
        if (shard_search_setting(i) != nullptr) return true;
    return false;
}

// The statement that sets kSearchSettings on a shard's connection for its
// remote transaction.
char* settings_statement(void) {
    StringInfoData sql;
    initStringInfo(&sql);
    appendStringInfoString(&sql, "SELECT ");
    for (int i = 0; i < kShardSearchSettingCount; i++) {
        const char* value = GetConfigOption(kShardSearchSettings[i], true, false);
        if (value == nullptr) continue;
        if (sql.len > 7) appendStringInfoString(&sql, ", ");
        appendStringInfo(&sql, "pg_catalog.set_config(%s, %s, true)",
                         quote_literal_cstr(kShardSearchSettings[i]), quote_literal_cstr(value));
    }
    return sql.data;
}

// Sets the session's search settings on every shard's connection, all
// shards at once, before the Append below asks them for rows. The
// connections are postgres_fdw's (the foreign scans opened them, inside
// the remote transaction it manages), so errors, cancels and aborts go
// through its own handling.
void send_search_settings(CustomScanState* node) {
    auto get_connection = reinterpret_cast<GetConnectionFn>(postgres_fdw_function("GetConnection"));
    auto get_result = reinterpret_cast<GetResultFn>(postgres_fdw_function("pgfdw_get_result"));
    auto report_error =
        reinterpret_cast<ReportErrorFn>(postgres_fdw_function("pgfdw_report_error"));
    auto process_pending =
        reinterpret_cast<ProcessPendingFn>(postgres_fdw_function("process_pending_request"));
    if (get_connection == nullptr || get_result == nullptr || report_error == nullptr ||
        process_pending == nullptr)
        ereport(ERROR, (errcode(ERRCODE_FDW_ERROR),
                        errmsg("postgres_fdw lacks the functions benzer's shard merge calls"),
                        errhint("Turn benzer.shard_pushdown off.")));

    if (!search_settings_needed()) return;
    EState* estate = node->ss.ps.state;
    List* connections = NIL;
    for_each_shard_scan(
        static_cast<PlanState*>(linitial(node->custom_ps)), [&](ForeignScanState* scan) {
            auto* plan = reinterpret_cast<ForeignScan*>(scan->ss.ps.plan);
            // As postgres_fdw picks the user: the table's range table
            // entry (a scan that sends distances has it in fs_relids).
            Index rti = plan->scan.scanrelid > 0 ? plan->scan.scanrelid
                                                 : bms_next_member(plan->fs_relids, -1);
            RangeTblEntry* rte = exec_rt_fetch(rti, estate);
            Oid user = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
            PgFdwConnState* state = nullptr;
            PGconn* conn = get_connection(GetUserMapping(user, plan->fs_server), false, &state);
            if (list_member_ptr(connections, conn)) return;
            if (state != nullptr && state->pendingAreq != nullptr)
                process_pending(state->pendingAreq);
            connections = lappend(connections, conn);
        });
    if (connections == NIL) return;

    settings_sent_in = MyProc->lxid;
    char* sql = settings_statement();
    ListCell* cell;
    foreach (cell, connections) {
        PGconn* conn = static_cast<PGconn*>(lfirst(cell));
        if (!PQsendQuery(conn, sql)) report_error(ERROR, nullptr, conn, false, sql);
    }
    foreach (cell, connections) {
        PGconn* conn = static_cast<PGconn*>(lfirst(cell));
        PGresult* result = get_result(conn, sql);
        if (PQresultStatus(result) != PGRES_TUPLES_OK) report_error(ERROR, result, conn, true, sql);
        PQclear(result);
    }
}

// The next row of the merge: from the shards' sorted rows when each shard
// got one statement, else from the Sort over postgres_fdw's scans.
TupleTableSlot* next_merged_row(ShardMergeState* state) {
    CustomScanState* node = &state->css;
    if (state->direct) {
        if (state->sorted == nullptr) run_direct(state);
        if (!tuplesort_gettupleslot(state->sorted, true, false, state->sorted_row, nullptr))
            return nullptr;
        return state->sorted_row;
    }
    if (!state->settings_sent) {
        send_search_settings(node);
        state->settings_sent = true;
    }
    return ExecProcNode(static_cast<PlanState*>(linitial(node->custom_ps)));
}

TupleTableSlot* exec_shard_merge(CustomScanState* node) {
    TupleTableSlot* slot = next_merged_row(reinterpret_cast<ShardMergeState*>(node));
    if (TupIsNull(slot) || node->ss.ps.ps_ProjInfo == nullptr) return slot;
    // The projection was compiled for the scan slot's kind (virtual), not
    // for the Sort's minimal tuples.
    TupleTableSlot* scan_slot = node->ss.ss_ScanTupleSlot;
    ExecCopySlot(scan_slot, slot);
    node->ss.ps.ps_ExprContext->ecxt_scantuple = scan_slot;
    return ExecProject(node->ss.ps.ps_ProjInfo);
}

void end_shard_merge(CustomScanState* node) {
    auto* state = reinterpret_cast<ShardMergeState*>(node);
    if (state->sorted != nullptr) tuplesort_end(state->sorted);
    state->sorted = nullptr;
    ExecEndNode(static_cast<PlanState*>(linitial(node->custom_ps)));
}

// A rescan with new parameter values (a correlated subquery's) must reach
// the Sort, or it would replay its last answer; with one statement per
// shard, the shards are asked again.
void rescan_shard_merge(CustomScanState* node) {
    auto* state = reinterpret_cast<ShardMergeState*>(node);
    if (state->direct) {
        if (state->sorted != nullptr) tuplesort_end(state->sorted);
        state->sorted = nullptr;
        return;
    }
    PlanState* child = static_cast<PlanState*>(linitial(node->custom_ps));
    if (node->ss.ps.chgParam != nullptr) UpdateChangedParamSet(child, node->ss.ps.chgParam);
    ExecReScan(child);
}

// EXPLAIN: the shards' servers (each shard's remote SQL, with its LIMIT,
// is on its Foreign Scan under VERBOSE).
void explain_shard_merge(CustomScanState* node, List* ancestors, ExplainState* es) {
    StringInfoData servers;
    initStringInfo(&servers);
    int shards = 0;
    for_each_shard_scan(static_cast<PlanState*>(linitial(node->custom_ps)),
                        [&](ForeignScanState* scan) {
                            auto* plan = reinterpret_cast<ForeignScan*>(scan->ss.ps.plan);
                            const char* name = GetForeignServer(plan->fs_server)->servername;
                            appendStringInfo(&servers, "%s%s", shards > 0 ? ", " : "", name);
                            shards++;
                        });
    ExplainPropertyText("Shards", servers.data, es);
    // Under ANALYZE, what this execution did; else what it would do.
    auto* state = reinterpret_cast<ShardMergeState*>(node);
    bool direct = es->analyze ? state->direct : state->direct_eligible && shard_direct_possible();
    ExplainPropertyText("Shard Queries",
                        direct ? "one statement per shard" : "postgres_fdw remote transactions",
                        es);
    if (es->verbose && search_settings_needed()) {
        StringInfoData settings;
        initStringInfo(&settings);
        for (int i = 0; i < kShardSearchSettingCount; i++)
            appendStringInfo(&settings, "%s%s", i > 0 ? ", " : "", kShardSearchSettings[i]);
        ExplainPropertyText("Settings Sent", settings.data, es);
    }
}

const CustomPathMethods shard_merge_path_methods = {
    "BenzerShardMerge",
    plan_shard_merge,
};

const CustomScanMethods shard_merge_scan_methods = {
    "BenzerShardMerge",
    create_shard_merge_state,
};

const CustomExecMethods shard_merge_exec_methods = {
    "BenzerShardMerge",
    begin_shard_merge,
    exec_shard_merge,
    end_shard_merge,
    rescan_shard_merge,
    nullptr,  // MarkPosCustomScan
    nullptr,  // RestrPosCustomScan
    nullptr,  // EstimateDSMCustomScan
    nullptr,  // InitializeDSMCustomScan
    nullptr,  // ReInitializeDSMCustomScan
    nullptr,  // InitializeWorkerCustomScan
    nullptr,  // ShutdownCustomScan
    explain_shard_merge,
};

}  // namespace

void shard_install_planner_hook(void) {
    DefineCustomBoolVariable(
        "benzer.shard_pushdown",
        "Send each shard of a partitioned table its own ORDER BY distance LIMIT k.",
        "For ORDER BY <distance> LIMIT k over a partitioned table with postgres_fdw partitions: "
        "the shards run concurrently and the coordinator merges their top k.",
        &shard_pushdown, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "benzer.shard_direct",
        "Outside a transaction block, send each shard one plain statement of its own.",
        "The shard merge then reads the shards on benzer's own connections, all at once, instead "
        "of through postgres_fdw's remote transactions and cursors (five round trips per shard, "
        "some one shard after the other). Inside a transaction block, or after a write in the "
        "same transaction, postgres_fdw's remote transactions are always used.",
        &shard_direct, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    RegisterCustomScanMethods(&shard_merge_scan_methods);
    previous_upper_paths_hook = create_upper_paths_hook;
    create_upper_paths_hook = shard_upper_paths;
}
