// feedback.cpp: similarity scores and relevance feedback.
//
//   cosine_similarity(a, b)     1 - cosine distance (1: same direction)
//   euclidean_similarity(a, b)  1 / (1 + L2 distance) (1: equal vectors)
//   rocchio(query, liked[], disliked[], alpha, beta, gamma)
//       alpha * query + beta * mean(liked) - gamma * mean(disliked)
//
// Distances come from the core's kernels (noexcept, no allocation), so no
// guard is needed; the arithmetic is done in double precision.
#include "pg/vector.h"

#include "core/distance.h"

extern "C" {
#include "utils/array.h"
#include "utils/lsyscache.h"
}

#include <cmath>

// cosine_similarity(vector, vector): NaN when either vector is all zeros
// (it has no direction), as <=> gives NaN.
BENZER_FUNCTION(cosine_similarity) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    PG_RETURN_FLOAT8(1.0 - benzer::cosine_distance(a->x, b->x, static_cast<size_t>(a->dim)));
}

// euclidean_similarity(vector, vector): in (0, 1], 1 for equal vectors.
BENZER_FUNCTION(euclidean_similarity) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    double distance =
        std::sqrt(static_cast<double>(benzer::l2_squared(a->x, b->x, static_cast<size_t>(a->dim))));
    PG_RETURN_FLOAT8(1.0 / (1.0 + distance));
}

namespace {

// Adds the non-NULL vectors of array (argument n; NULL: none) to sum;
// returns how many there were.
int add_vectors(FunctionCallInfo fcinfo, int n, const char* name, int dim, double* sum) {
    if (PG_ARGISNULL(n)) return 0;
    ArrayType* array = PG_GETARG_ARRAYTYPE_P(n);
    Datum* elements;
    bool* nulls;
    int count = vector_array_elements(array, psprintf("rocchio: %s", name), &elements, &nulls);
    int used = 0;
    for (int i = 0; i < count; i++) {
        if (nulls[i]) continue;
        Vector* v = DatumGetVector(elements[i]);
        if (v->dim != dim)
            ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                            errmsg("different vector dimensions %d and %d", dim, v->dim),
                            errdetail("Element %d of %s does not match the query.", i + 1, name)));
        for (int j = 0; j < dim; j++) sum[j] += v->x[j];
        used++;
    }
    return used;
}

double weight_argument(FunctionCallInfo fcinfo, int n, const char* name) {
    double w = PG_GETARG_FLOAT8(n);
    if (!std::isfinite(w))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("rocchio: %s must be a finite number", name)));
    return w;
}

}  // namespace

// rocchio(query vector, liked vector[], disliked vector[], alpha, beta,
// gamma) RETURNS vector. NULL or empty arrays contribute nothing (so
// array_agg over no feedback rows works), NULL elements are skipped; a NULL
// query or weight gives NULL.
BENZER_FUNCTION(rocchio) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(3) || PG_ARGISNULL(4) || PG_ARGISNULL(5)) PG_RETURN_NULL();
    Vector* query = PG_GETARG_VECTOR_P(0);
    double alpha = weight_argument(fcinfo, 3, "alpha");
    double beta = weight_argument(fcinfo, 4, "beta");
    double gamma = weight_argument(fcinfo, 5, "gamma");
    int dim = query->dim;
    double* liked = static_cast<double*>(palloc0(sizeof(double) * dim));
    double* disliked = static_cast<double*>(palloc0(sizeof(double) * dim));
    int nliked = add_vectors(fcinfo, 1, "liked", dim, liked);
    int ndisliked = add_vectors(fcinfo, 2, "disliked", dim, disliked);
    Vector* result = new_vector(dim);
    for (int j = 0; j < dim; j++) {
        double x = alpha * query->x[j];
        if (nliked > 0) x += beta * liked[j] / nliked;
        if (ndisliked > 0) x -= gamma * disliked[j] / ndisliked;
        float f = static_cast<float>(x);
        if (!std::isfinite(f))
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                            errmsg("value out of range: overflow")));
        result->x[j] = f;
    }
    pfree(liked);
    pfree(disliked);
    PG_RETURN_VECTOR_P(result);
}
