// vector_ops.cpp: distances, arithmetic, comparison and aggregates.
//
// Distances call the core's multiversioned kernels (core/distance.h), which
// are noexcept and never allocate, so no guard is needed here. Semantics
// follow pgvector (NaN cosine distance for a zero vector, comparison by
// elements then by length, overflow checks on arithmetic) so SQL written for
// pgvector gives the same answers.
#include "pg/vector.h"

#include "core/distance.h"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/float.h"
}

#include <cmath>

// ERRORs if an arithmetic result overflowed.
static void check_overflow(float value) {
    if (std::isinf(value))
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("value out of range: overflow")));
}

// L2 distance, the <-> operator.
BENZER_FUNCTION(l2_distance) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    float squared = benzer::l2_squared(a->x, b->x, static_cast<size_t>(a->dim));
    PG_RETURN_FLOAT8(std::sqrt(static_cast<double>(squared)));
}

// Squared L2 distance; orders like <-> without the square root.
BENZER_FUNCTION(vector_l2_squared_distance) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    PG_RETURN_FLOAT8(
        static_cast<double>(benzer::l2_squared(a->x, b->x, static_cast<size_t>(a->dim))));
}

// Inner product.
BENZER_FUNCTION(inner_product) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    PG_RETURN_FLOAT8(
        static_cast<double>(benzer::inner_product(a->x, b->x, static_cast<size_t>(a->dim))));
}

// Negative inner product, the <#> operator (smaller is more similar).
BENZER_FUNCTION(vector_negative_inner_product) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    PG_RETURN_FLOAT8(
        -static_cast<double>(benzer::inner_product(a->x, b->x, static_cast<size_t>(a->dim))));
}

// Cosine distance, the <=> operator.
BENZER_FUNCTION(cosine_distance) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    PG_RETURN_FLOAT8(benzer::cosine_distance(a->x, b->x, static_cast<size_t>(a->dim)));
}

// L1 (taxicab) distance, the <+> operator.
BENZER_FUNCTION(l1_distance) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    PG_RETURN_FLOAT8(
        static_cast<double>(benzer::l1_distance(a->x, b->x, static_cast<size_t>(a->dim))));
}

// Number of dimensions.
BENZER_FUNCTION(vector_dims) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    PG_RETURN_INT32(a->dim);
}

// Euclidean norm, accumulated in double as pgvector does.
BENZER_FUNCTION(vector_norm) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    double sum = 0.0;
    for (int i = 0; i < a->dim; i++) sum += static_cast<double>(a->x[i]) * a->x[i];
    PG_RETURN_FLOAT8(std::sqrt(sum));
}

// Scales to unit length; a zero vector stays zero.
BENZER_FUNCTION(l2_normalize) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* result = new_vector(a->dim);
    double sum = 0.0;
    for (int i = 0; i < a->dim; i++) sum += static_cast<double>(a->x[i]) * a->x[i];
    double norm = std::sqrt(sum);
    if (norm > 0) {
        for (int i = 0; i < a->dim; i++) {
            result->x[i] = static_cast<float>(a->x[i] / norm);
            check_overflow(result->x[i]);
        }
    }
    PG_RETURN_VECTOR_P(result);
}

// The elements from start (1-based) for count elements, clipped to the
// vector like substring() is clipped to a string; type names the SQL type
// in the error for an empty result.
Vector* vector_slice(const Vector* a, int32 start, int32 count, const char* type) {
    // Compute in 64 bits: start + count may overflow int32.
    int64 end = static_cast<int64>(start) + count;
    if (start < 1) start = 1;
    if (end > a->dim + 1) end = a->dim + 1;
    if (count < 1 || end <= start) check_vector_dim(0, type);
    int dim = static_cast<int>(end - start);
    Vector* result = new_vector(dim);
    memcpy(result->x, a->x + (start - 1), sizeof(float) * static_cast<Size>(dim));
    return result;
}

// subvector(vector, start, count).
BENZER_FUNCTION(subvector) {
    PG_RETURN_VECTOR_P(
        vector_slice(PG_GETARG_VECTOR_P(0), PG_GETARG_INT32(1), PG_GETARG_INT32(2), "vector"));
}

// Element-wise sum, the + operator.
BENZER_FUNCTION(vector_add) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    Vector* result = new_vector(a->dim);
    for (int i = 0; i < a->dim; i++) result->x[i] = a->x[i] + b->x[i];
    for (int i = 0; i < a->dim; i++) check_overflow(result->x[i]);
    PG_RETURN_VECTOR_P(result);
}

// Element-wise difference, the - operator.
BENZER_FUNCTION(vector_sub) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    Vector* result = new_vector(a->dim);
    for (int i = 0; i < a->dim; i++) result->x[i] = a->x[i] - b->x[i];
    for (int i = 0; i < a->dim; i++) check_overflow(result->x[i]);
    PG_RETURN_VECTOR_P(result);
}

// Element-wise product, the * operator.
BENZER_FUNCTION(vector_mul) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    check_same_dims(a, b);
    Vector* result = new_vector(a->dim);
    for (int i = 0; i < a->dim; i++) result->x[i] = a->x[i] * b->x[i];
    for (int i = 0; i < a->dim; i++) {
        check_overflow(result->x[i]);
        if (result->x[i] == 0.0f && a->x[i] != 0.0f && b->x[i] != 0.0f)
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                            errmsg("value out of range: underflow")));
    }
    PG_RETURN_VECTOR_P(result);
}

// Concatenation, the || operator.
BENZER_FUNCTION(vector_concat) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    int dim = a->dim + b->dim;
    check_vector_dim(dim);
    Vector* result = new_vector(dim);
    memcpy(result->x, a->x, sizeof(float) * static_cast<Size>(a->dim));
    memcpy(result->x + a->dim, b->x, sizeof(float) * static_cast<Size>(b->dim));
    PG_RETURN_VECTOR_P(result);
}

// Total order for btree: element by element, then the shorter first (the
// order PostgreSQL uses for arrays).
static int compare_vectors(const Vector* a, const Vector* b) {
    int dim = a->dim < b->dim ? a->dim : b->dim;
    for (int i = 0; i < dim; i++) {
        if (a->x[i] < b->x[i]) return -1;
        if (a->x[i] > b->x[i]) return 1;
    }
    if (a->dim < b->dim) return -1;
    if (a->dim > b->dim) return 1;
    return 0;
}

// Defines the comparison function name(a, b) returning compare_vectors OP 0.
#define BENZER_COMPARISON(name, op)                 \
    BENZER_FUNCTION(name) {                         \
        Vector* a = PG_GETARG_VECTOR_P(0);          \
        Vector* b = PG_GETARG_VECTOR_P(1);          \
        PG_RETURN_BOOL(compare_vectors(a, b) op 0); \
    }

BENZER_COMPARISON(vector_lt, <)
BENZER_COMPARISON(vector_le, <=)
BENZER_COMPARISON(vector_eq, ==)
BENZER_COMPARISON(vector_ne, !=)
BENZER_COMPARISON(vector_ge, >=)
BENZER_COMPARISON(vector_gt, >)

// btree support function 1.
BENZER_FUNCTION(vector_cmp) {
    Vector* a = PG_GETARG_VECTOR_P(0);
    Vector* b = PG_GETARG_VECTOR_P(1);
    PG_RETURN_INT32(compare_vectors(a, b));
}

// The avg(vector) transition state is a float8[]: the row count followed by
// the running sums, so partial aggregates can be combined in parallel plans.
// The state is an ordinary array a caller can pass in directly: caller
// names the function in the error, as pgvector does.
static float8* state_values(ArrayType* state, int* length, const char* caller) {
    if (ARR_NDIM(state) != 1 || ARR_DIMS(state)[0] < 1 || ARR_HASNULL(state) ||
        ARR_ELEMTYPE(state) != FLOAT8OID)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION), errmsg("%s: expected state array", caller)));
    *length = ARR_DIMS(state)[0];
    return reinterpret_cast<float8*>(ARR_DATA_PTR(state));
}

// Builds a state array from values.
static ArrayType* make_state(const float8* values, int length) {
    Datum* datums = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<Size>(length)));
    for (int i = 0; i < length; i++) datums[i] = Float8GetDatum(values[i]);
    ArrayType* result = construct_array(datums, length, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
                                        TYPALIGN_DOUBLE);
    pfree(datums);
    return result;
}

ArrayType* accumulate(ArrayType* state, const Vector* v, const char* caller) {
    int length;
    float8* old_values = state_values(state, &length, caller);
    bool first = (length == 1);  // the initial state is '{0}'
    if (!first && length - 1 != v->dim)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("expected %d dimensions, not %d", length - 1, v->dim)));
    float8* values = static_cast<float8*>(palloc(sizeof(float8) * static_cast<Size>(v->dim + 1)));
    values[0] = old_values[0] + 1.0;
    for (int i = 0; i < v->dim; i++) {
        values[i + 1] = (first ? 0.0 : old_values[i + 1]) + static_cast<double>(v->x[i]);
        if (std::isinf(values[i + 1]))
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                            errmsg("value out of range: overflow")));
    }
    return make_state(values, v->dim + 1);
}

// avg(vector) transition: adds one vector to the running sums.
BENZER_FUNCTION(vector_accum) {
    PG_RETURN_ARRAYTYPE_P(
        accumulate(PG_GETARG_ARRAYTYPE_P(0), PG_GETARG_VECTOR_P(1), "vector_accum"));
}

// avg(vector) combine step for parallel aggregation.
BENZER_FUNCTION(vector_combine) {
    ArrayType* left = PG_GETARG_ARRAYTYPE_P(0);
    ArrayType* right = PG_GETARG_ARRAYTYPE_P(1);
    int left_length, right_length;
    float8* a = state_values(left, &left_length, "vector_combine");
    float8* b = state_values(right, &right_length, "vector_combine");
    // Both empty (workers that saw no rows): still empty. pgvector errors
    // here; an empty partial state is normal in a parallel plan.
    if (a[0] == 0.0 && b[0] == 0.0) PG_RETURN_ARRAYTYPE_P(make_state(a, 1));
    // One side empty: the other, which must hold a vector.
    if (a[0] == 0.0) {
        check_vector_dim(right_length - 1);
        PG_RETURN_ARRAYTYPE_P(make_state(b, right_length));
    }
    if (b[0] == 0.0) {
        check_vector_dim(left_length - 1);
        PG_RETURN_ARRAYTYPE_P(make_state(a, left_length));
    }
    check_vector_dim(left_length - 1);
    if (left_length != right_length)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION),
                 errmsg("expected %d dimensions, not %d", left_length - 1, right_length - 1)));
    float8* values = static_cast<float8*>(palloc(sizeof(float8) * static_cast<Size>(left_length)));
    for (int i = 0; i < left_length; i++) {
        values[i] = a[i] + b[i];
        if (std::isinf(values[i]))
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                            errmsg("value out of range: overflow")));
    }
    PG_RETURN_ARRAYTYPE_P(make_state(values, left_length));
}

// avg(vector) final step: sums divided by the count; NULL for no rows.
BENZER_FUNCTION(vector_avg) {
    ArrayType* state = PG_GETARG_ARRAYTYPE_P(0);
    int length;
    float8* values = state_values(state, &length, "vector_avg");
    if (length == 1 || values[0] == 0.0) PG_RETURN_NULL();
    check_vector_dim(length - 1);  // a caller can pass any array
    Vector* result = new_vector(length - 1);
    for (int i = 1; i < length; i++) {
        result->x[i - 1] = static_cast<float>(values[i] / values[0]);
        // The state is an ordinary array a caller can pass in directly.
        if (std::isnan(result->x[i - 1])) check_element(result->x[i - 1]);
        check_overflow(result->x[i - 1]);
    }
    PG_RETURN_VECTOR_P(result);
}

// Which distance kernel this CPU runs ("avx512", "avx2", "generic").
BENZER_FUNCTION(benzer_simd_kernel) {
    PG_RETURN_TEXT_P(cstring_to_text(benzer::distance_kernel_name()));
}
