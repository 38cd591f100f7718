// faiss_limit.cpp: telling a faiss index scan the query's LIMIT.
//
// PostgreSQL never tells an index scan how many rows the query wants: the
// Limit node above simply stops asking. A faiss scan's first round must
// still choose how many rows to ask Faiss for, and for "ORDER BY v <-> q
// LIMIT 10" asking for benzer.scan_rows (100) costs a heap of 100 and, for
// re-ranking indexes, ten times the exact distances.
//
// So an ExecutorStart hook looks for Limit nodes directly above a faiss
// index scan whose LIMIT (and OFFSET) are constants or parameters of the
// statement, and hands count + offset to the scan. The index scan's
// descriptor only exists once the executor first asks it for a row
// (nodeIndexscan.c creates it lazily), so the hook creates it here exactly
// as the executor would (index_beginscan, then index_rescan when the scan
// keys are ready); the executor then finds it and goes on as usual.
//
// The hint only sizes the first round. When WHERE conditions above the
// scan discard rows, or the LIMIT is WITH TIES, the scan goes on in further
// rounds as before, so results never depend on it.
#include "pg/faiss.h"

#include "pg/faiss_scan.h"

extern "C" {
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "nodes/nodeFuncs.h"
#include "utils/rel.h"
}

namespace {

ExecutorStart_hook_type previous_executor_start = nullptr;

// The value of a LIMIT or OFFSET expression when it is known before
// execution (a constant or a statement parameter): true with *value set,
// or false. A NULL LIMIT means no limit.
bool known_value(Node* expression, ExprState* state, ExprContext* econtext, int64* value) {
    if (expression == nullptr) {
        *value = 0;
        return true;
    }
    bool knowable =
        IsA(expression, Const) ||
        (IsA(expression, Param) && reinterpret_cast<Param*>(expression)->paramkind == PARAM_EXTERN);
    if (!knowable || state == nullptr || econtext == nullptr) return false;
    bool isnull = false;
    Datum datum = ExecEvalExprSwitchContext(state, econtext, &isnull);
    if (isnull) return false;
    *value = DatumGetInt64(datum);
    return *value >= 0;
}

bool is_faiss_scan(IndexScanState* node) {
    Relation index = node->iss_RelationDesc;
    return index != nullptr && index->rd_indam != nullptr &&
           index->rd_indam->amgettuple == faiss_get_tuple && node->iss_NumOrderByKeys > 0;
}

// Passes a Limit's count + offset to the faiss index scan right below it.
bool pass_limits(PlanState* node, void* context) {
    if (node == nullptr) return false;
    int eflags = *static_cast<int*>(context);
    if (IsA(node, LimitState)) {
        auto* limit = reinterpret_cast<LimitState*>(node);
        auto* plan = reinterpret_cast<Limit*>(node->plan);
        PlanState* child = outerPlanState(node);
        int64 count = 0, offset = 0;
        if (child != nullptr && IsA(child, IndexScanState) && plan->limitCount != nullptr &&
            is_faiss_scan(reinterpret_cast<IndexScanState*>(child)) &&
            known_value(plan->limitCount, limit->limitCount, node->ps_ExprContext, &count) &&
            known_value(plan->limitOffset, limit->limitOffset, node->ps_ExprContext, &offset) &&
            count > 0) {
            auto* scan = reinterpret_cast<IndexScanState*>(child);
            EState* estate = node->state;
            if (scan->iss_ScanDesc == nullptr && !(eflags & EXEC_FLAG_EXPLAIN_ONLY)) {
                // What IndexNext / IndexNextWithReorder do on their first call.
                scan->iss_ScanDesc = index_beginscan(
                    scan->ss.ss_currentRelation, scan->iss_RelationDesc, estate->es_snapshot,
                    scan->iss_NumScanKeys, scan->iss_NumOrderByKeys);
                if (scan->iss_NumRuntimeKeys == 0 || scan->iss_RuntimeKeysReady)
                    index_rescan(scan->iss_ScanDesc, scan->iss_ScanKeys, scan->iss_NumScanKeys,
                                 scan->iss_OrderByKeys, scan->iss_NumOrderByKeys);
            }
            if (scan->iss_ScanDesc != nullptr) {
                int64 wanted = count > PG_INT64_MAX - offset ? 0 : count + offset;
                faiss_scan_set_limit(scan->iss_ScanDesc, wanted);
            }
        }
    }
    // (void (*)(void) is the type GCC lets a function pointer pass through.)
    return planstate_tree_walker(
        node, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(pass_limits)), context);
}

void faiss_executor_start(QueryDesc* query, int eflags) {
    if (previous_executor_start != nullptr)
        previous_executor_start(query, eflags);
    else
        standard_ExecutorStart(query, eflags);
    if (query->planstate != nullptr) pass_limits(query->planstate, &eflags);
}

}  // namespace

void faiss_install_limit_hook(void) {
    previous_executor_start = ExecutorStart_hook;
    ExecutorStart_hook = faiss_executor_start;
}
