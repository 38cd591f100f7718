// faiss_cost.cpp: planner costs for faiss index scans.
//
// A faiss index answers only ORDER BY <distance>; without one the path is
// made prohibitively expensive. With one, the start-up cost models the
// search (distances to a fraction of the rows: the IVF lists probed or the
// HNSW candidates, about N / 16 rows, at a cost that grows with the
// dimension) and the run cost is small per row, so for ORDER BY ... LIMIT k
// the planner prefers the index unless the table is tiny, and a selective
// WHERE on the table raises the fraction of the scan the LIMIT needs, which
// is how an extremely selective filter with a btree index ends up choosing
// the btree and an exact sort instead.
#include "pg/faiss.h"

#include "pg/faiss_pages.h"

extern "C" {
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
}

#include <cmath>

void faiss_cost_estimate(PlannerInfo* root, IndexPath* path, double loop_count, Cost* startup_cost,
                         Cost* total_cost, Selectivity* selectivity, double* correlation,
                         double* pages) {
    if (path->indexorderbys == NIL) {
        // Unusable (faiss_plan.cpp removes such paths). Costlier than a
        // disabled sequential scan, so it can never make add_path throw
        // that away first.
        *startup_cost = 1.0e100;
        *total_cost = 1.0e100;
        *selectivity = 0;
        *correlation = 0;
        *pages = 0;
        return;
    }
    GenericCosts costs;
    memset(&costs, 0, sizeof(costs));
    genericcostestimate(root, path, loop_count, &costs);

    double rows = Max(path->indexinfo->tuples, 1.0);
    // The fraction of rows that satisfy the index conditions on filter
    // columns (1 without any): only those come out of the index.
    double selectivity_of_conditions = Min(Max(costs.indexSelectivity, 1.0 / rows), 1.0);
    double matching = Max(rows * selectivity_of_conditions, 1.0);
    int nconditions = list_length(path->indexclauses);

    // Dimensions are not in the catalog; 128 is a middling guess that makes
    // a distance cost about four cpu_operator_costs.
    double distance_cost = 4.0 * cpu_operator_cost;
    // Conditions are evaluated over a columnar array, a few nanoseconds a
    // row: a tenth of a cpu_operator_cost.
    double condition_cost = 0.1 * cpu_operator_cost;
    double search;
    if (nconditions > 0 && matching <= benzer_exact_filter_limit) {
        // Conditions checked against every indexed row, then exact
        // distances to the rows that match.
        search = rows * nconditions * condition_cost + matching * distance_cost;
    } else {
        // An approximate search visits about N / 16 rows (the IVF lists
        // probed or HNSW candidates), more when conditions discard rows.
        double examined = Min(rows, Max(1000.0, rows / 16.0) / selectivity_of_conditions);
        search = rows * nconditions * condition_cost + examined * distance_cost;
    }
    *startup_cost = search + random_page_cost;
    // Returning rows is cheap per row; the heap fetches are costed by the
    // planner on top, from the selectivity.
    *total_cost = *startup_cost + matching * cpu_index_tuple_cost;
    *selectivity = selectivity_of_conditions;
    *correlation = 0.0;
    *pages = 1;  // the metapage; the index itself is cached per backend
}
