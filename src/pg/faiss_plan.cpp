// faiss_plan.cpp: letting IN (...) conditions reach a faiss index scan.
//
// PostgreSQL's planner only passes "column = ANY (array)" conditions (which
// is what IN (...) becomes) to an index scan when the column is the index's
// first, or when the scan need not be ordered: a ScalarArrayOpExpr on a
// later column makes a btree scan unordered, so indxpath.c drops the
// ordering of any such path. A faiss index is different: its first column
// is the vector, its filter columns follow, and its ORDER BY <distance>
// order does not depend on how many values a filter column may take.
//
// So after the planner has built its paths for a table, this hook takes
// each ordered faiss index path and, where the query has IN / = ANY
// conditions on the index's filter columns, adds a copy of the path with
// those conditions as index conditions. It is costed like any other path
// (faiss_cost.cpp) and wins by its smaller row count.
#include "pg/faiss.h"

#include "pg/faiss_attributes.h"

extern "C" {
#include "catalog/pg_am.h"
#include "commands/defrem.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/restrictinfo.h"
#include "utils/lsyscache.h"
}

static set_rel_pathlist_hook_type previous_pathlist_hook = nullptr;

// The index column (1-based position > 1, as a 0-based indexcol) that
// clause's left side is, or -1.
static int filter_column_of(PlannerInfo* root, RelOptInfo* rel, IndexOptInfo* index,
                            RestrictInfo* rinfo) {
    if (!IsA(rinfo->clause, ScalarArrayOpExpr)) return -1;
    auto* saop = reinterpret_cast<ScalarArrayOpExpr*>(rinfo->clause);
    if (!saop->useOr || list_length(saop->args) != 2) return -1;
    Node* left = static_cast<Node*>(linitial(saop->args));
    Node* right = static_cast<Node*>(lsecond(saop->args));
    while (IsA(left, RelabelType))
        left = reinterpret_cast<Node*>(reinterpret_cast<RelabelType*>(left)->arg);
    if (!IsA(left, Var)) return -1;
    Var* var = reinterpret_cast<Var*>(left);
    if (var->varno != static_cast<int>(rel->relid) || var->varlevelsup != 0) return -1;
    // The array must be known before the scan starts.
    if (bms_is_member(rel->relid, pull_varnos(root, right)) || contain_volatile_functions(right))
        return -1;
    for (int col = 1; col < index->ncolumns; col++) {
        if (index->indexkeys[col] != var->varattno) continue;
        // The index compares with its column's collation: a condition under
        // another one (t COLLATE ci IN (...)) must stay above the scan, as
        // indxpath.c requires for every index clause.
        Oid collation = index->indexcollations[col];
        if (OidIsValid(collation) && collation != saop->inputcollid) continue;
        if (op_in_opfamily(saop->opno, index->opfamily[col])) return col;
    }
    return -1;
}

// Removes faiss index paths without ORDER BY <distance>: such a scan has
// nothing to answer (faiss_get_tuple refuses it), but with enable_seqscan
// off the planner would otherwise choose it, its disable_cost being no
// worse than the sequential scan's.
static void drop_unordered_paths(RelOptInfo* rel, Oid faiss_am) {
    ListCell* cell;
    foreach (cell, rel->pathlist) {
        Path* path = static_cast<Path*>(lfirst(cell));
        if (!IsA(path, IndexPath)) continue;
        auto* ipath = reinterpret_cast<IndexPath*>(path);
        if (ipath->indexinfo->relam == faiss_am && ipath->indexorderbys == NIL)
            rel->pathlist = foreach_delete_current(rel->pathlist, cell);
    }
}

// Whether clauses already has rinfo.
static bool has_clause(List* clauses, RestrictInfo* rinfo) {
    ListCell* cell;
    foreach (cell, clauses)
        if (static_cast<IndexClause*>(lfirst(cell))->rinfo == rinfo) return true;
    return false;
}

// Orders index clauses by index column, as the planner keeps them.
static int compare_indexcol(const ListCell* a, const ListCell* b) {
    int ca = static_cast<IndexClause*>(lfirst(a))->indexcol;
    int cb = static_cast<IndexClause*>(lfirst(b))->indexcol;
    return ca < cb ? -1 : (ca > cb ? 1 : 0);
}

static void benzer_set_rel_pathlist(PlannerInfo* root, RelOptInfo* rel, Index rti,
                                    RangeTblEntry* rte) {
    if (previous_pathlist_hook != nullptr) previous_pathlist_hook(root, rel, rti, rte);
    if (rte->rtekind != RTE_RELATION || rel->indexlist == NIL) return;
    Oid faiss_am = get_index_am_oid("faiss", true);
    if (!OidIsValid(faiss_am)) return;
    drop_unordered_paths(rel, faiss_am);
    if (rel->reloptkind != RELOPT_BASEREL || rel->baserestrictinfo == NIL) return;

    List* new_paths = NIL;
    ListCell* cell;
    foreach (cell, rel->pathlist) {
        Path* path = static_cast<Path*>(lfirst(cell));
        if (!IsA(path, IndexPath)) continue;
        auto* ipath = reinterpret_cast<IndexPath*>(path);
        IndexOptInfo* index = ipath->indexinfo;
        if (index->relam != faiss_am || ipath->indexorderbys == NIL || path->param_info != nullptr)
            continue;
        List* clauses = list_copy(ipath->indexclauses);
        bool added = false;
        ListCell* rcell;
        foreach (rcell, rel->baserestrictinfo) {
            RestrictInfo* rinfo = static_cast<RestrictInfo*>(lfirst(rcell));
            if (rinfo->pseudoconstant || has_clause(clauses, rinfo)) continue;
            int col = filter_column_of(root, rel, index, rinfo);
            if (col < 0) continue;
            IndexClause* iclause = makeNode(IndexClause);
            iclause->rinfo = rinfo;
            iclause->indexquals = list_make1(rinfo);
            iclause->lossy = false;
            iclause->indexcol = static_cast<AttrNumber>(col);
            iclause->indexcols = NIL;
            clauses = lappend(clauses, iclause);
            added = true;
        }
        if (!added) continue;
        list_sort(clauses, compare_indexcol);
        IndexPath* with_arrays =
            create_index_path(root, index, clauses, ipath->indexorderbys, ipath->indexorderbycols,
                              path->pathkeys, ForwardScanDirection, false, nullptr, 1.0, false);
        new_paths = lappend(new_paths, with_arrays);
    }
    foreach (cell, new_paths) add_path(rel, static_cast<Path*>(lfirst(cell)));
}

void faiss_install_planner_hook(void) {
    previous_pathlist_hook = set_rel_pathlist_hook;
    set_rel_pathlist_hook = benzer_set_rel_pathlist;
}
