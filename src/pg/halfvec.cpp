// halfvec.cpp: pgvector's halfvec type, a vector of 2-byte floats.
//
// A 2 048-d vector row is 8 kB and goes to TOAST; as halfvec it is 4 kB.
// The text, binary and array forms, the casts, operators, functions,
// aggregates and btree class are pgvector's (names, signatures, errors).
// Every computation converts the elements to float (exactly) and calls
// the vector type's own function, so distances, norms and sums behave as
// the vector ones do; results that are halfvecs are rounded back to
// nearest-even halves, and a value beyond +-65504 is an error, as in
// pgvector. The faiss access method reads halfvec keys and queries as
// float vectors (datum_vector), so the same index works on either type.
#include "pg/vector.h"

#include <cmath>

extern "C" {
#include "catalog/pg_type.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
}

// The vector functions the halfvec ones call.
extern "C" {
Datum vector_to_float4(PG_FUNCTION_ARGS);
Datum l2_distance(PG_FUNCTION_ARGS);
Datum vector_l2_squared_distance(PG_FUNCTION_ARGS);
Datum inner_product(PG_FUNCTION_ARGS);
Datum vector_negative_inner_product(PG_FUNCTION_ARGS);
Datum cosine_distance(PG_FUNCTION_ARGS);
Datum l1_distance(PG_FUNCTION_ARGS);
Datum vector_norm(PG_FUNCTION_ARGS);
Datum l2_normalize(PG_FUNCTION_ARGS);
Datum vector_add(PG_FUNCTION_ARGS);
Datum vector_sub(PG_FUNCTION_ARGS);
Datum vector_mul(PG_FUNCTION_ARGS);
Datum vector_cmp(PG_FUNCTION_ARGS);
Datum vector_avg(PG_FUNCTION_ARGS);
}

namespace {

inline HalfVector* DatumGetHalfVector(Datum d) {
    return reinterpret_cast<HalfVector*>(PG_DETOAST_DATUM(d));
}

HalfVector* new_halfvec(int dim) {
    Size size = halfvec_size(dim);
    auto* h = static_cast<HalfVector*>(palloc0(size));
    SET_VARSIZE(h, size);
    h->dim = static_cast<int16>(dim);
    return h;
}

// The halfvec of a float vector; ERRORs on values no half can hold.
HalfVector* to_halfvec(const Vector* v) {
    HalfVector* h = new_halfvec(v->dim);
    for (int i = 0; i < v->dim; i++) {
        check_element(v->x[i], "halfvec");
        if (!benzer::fits_half(v->x[i]))
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                            errmsg("\"%g\" is out of range for type halfvec",
                                   static_cast<double>(v->x[i]))));
        h->x[i] = benzer::float_to_half(v->x[i]);
    }
    return h;
}

// The float vector of a halfvec (exact).
Vector* to_vector(const HalfVector* h) {
    Vector* v = new_vector(h->dim);
    benzer::halves_to_floats(h->x, v->x, h->dim);
    return v;
}

Datum vector_arg(FunctionCallInfo fcinfo, int n) {
    return PointerGetDatum(to_vector(DatumGetHalfVector(PG_GETARG_DATUM(n))));
}

// The two halfvec arguments as float vectors, each detoasted once; with
// same_dims, ERRORs unless they have the same number of dimensions (before
// the vector function would, naming the vector type).
void vector_args(FunctionCallInfo fcinfo, bool same_dims, Datum* a, Datum* b) {
    HalfVector* x = DatumGetHalfVector(PG_GETARG_DATUM(0));
    HalfVector* y = DatumGetHalfVector(PG_GETARG_DATUM(1));
    if (same_dims && x->dim != y->dim)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("different halfvec dimensions %d and %d", x->dim, y->dim)));
    *a = PointerGetDatum(to_vector(x));
    *b = PointerGetDatum(to_vector(y));
}

// f(halfvec, halfvec) through the vector function f: a float8 result.
Datum binary_to_float8(FunctionCallInfo fcinfo, PGFunction f) {
    Datum a, b;
    vector_args(fcinfo, true, &a, &b);
    return DirectFunctionCall2(f, a, b);
}

// The halfvec of an arithmetic result r = a op b, with pgvector's errors
// for a result that no half holds: overflow, or (for a product of non-zero
// halves) underflow to zero.
HalfVector* arithmetic_result(const Vector* r, const Vector* a, const Vector* b,
                              bool check_underflow) {
    HalfVector* h = new_halfvec(r->dim);
    for (int i = 0; i < r->dim; i++) {
        if (!benzer::fits_half(r->x[i]))
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                            errmsg("value out of range: overflow")));
        h->x[i] = benzer::float_to_half(r->x[i]);
        if (check_underflow && benzer::half_to_float(h->x[i]) == 0.0f && a->x[i] != 0.0f &&
            b->x[i] != 0.0f)
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                            errmsg("value out of range: underflow")));
    }
    return h;
}

// a op b on halfvecs through the vector function f (which computes in
// float4 and checks float4's range), rounded back to halves.
Datum arithmetic(FunctionCallInfo fcinfo, PGFunction f, bool check_underflow) {
    Datum a, b;
    vector_args(fcinfo, true, &a, &b);
    Vector* r = DatumGetVector(DirectFunctionCall2(f, a, b));
    PG_RETURN_POINTER(arithmetic_result(r, DatumGetVector(a), DatumGetVector(b), check_underflow));
}

}  // namespace

Vector* datum_vector(Datum d) {
    auto* v = reinterpret_cast<Vector*>(PG_DETOAST_DATUM(d));
    if (VARSIZE(v) == halfvec_size(v->dim) && v->dim > 0)
        return to_vector(reinterpret_cast<HalfVector*>(v));
    return v;
}

// Text input: "[1,2,3]", as a vector, then rounded to halves.
BENZER_FUNCTION(halfvec_in) {
    HalfVector* h = to_halfvec(read_vector_text(PG_GETARG_CSTRING(0), -1, "halfvec"));
    check_expected_dim(PG_GETARG_INT32(2), h->dim);
    PG_RETURN_POINTER(h);
}

// Text output: each half as the shortest float text that reads back to it.
BENZER_FUNCTION(halfvec_out) {
    Vector* v = to_vector(DatumGetHalfVector(PG_GETARG_DATUM(0)));
    char* buffer = static_cast<char*>(palloc(benzer::format_vector_capacity(v->dim)));
    benzer::format_vector(v->x, v->dim, buffer);
    PG_RETURN_CSTRING(buffer);
}

// Typmod input: halfvec(n) with 1 <= n <= 16000.
BENZER_FUNCTION(halfvec_typmod_in) {
    PG_RETURN_INT32(read_typmod(PG_GETARG_ARRAYTYPE_P(0), "halfvec"));
}

// Binary input: int16 dim, int16 zero, dim big-endian binary16 values.
BENZER_FUNCTION(halfvec_recv) {
    StringInfo buffer = reinterpret_cast<StringInfo>(PG_GETARG_POINTER(0));
    int dim = read_binary_header(buffer, PG_GETARG_INT32(2), "halfvec");
    HalfVector* h = new_halfvec(dim);
    for (int i = 0; i < dim; i++) {
        h->x[i] = static_cast<uint16>(pq_getmsgint(buffer, sizeof(int16)));
        check_element(benzer::half_to_float(h->x[i]), "halfvec");
    }
    PG_RETURN_POINTER(h);
}

// Binary output, the mirror of halfvec_recv.
BENZER_FUNCTION(halfvec_send) {
    HalfVector* h = DatumGetHalfVector(PG_GETARG_DATUM(0));
    StringInfoData buffer;
    pq_begintypsend(&buffer);
    pq_sendint(&buffer, static_cast<uint16>(h->dim), sizeof(int16));
    pq_sendint(&buffer, static_cast<uint16>(h->unused), sizeof(int16));
    for (int i = 0; i < h->dim; i++) pq_sendint(&buffer, h->x[i], sizeof(int16));
    PG_RETURN_BYTEA_P(pq_endtypsend(&buffer));
}

// Length coercion: halfvec(3) := some halfvec checks the dimension count.
BENZER_FUNCTION(halfvec) {
    HalfVector* h = DatumGetHalfVector(PG_GETARG_DATUM(0));
    check_expected_dim(PG_GETARG_INT32(1), h->dim);
    PG_RETURN_POINTER(h);
}

// Casts integer[], real[], double precision[] and numeric[] to halfvec.
BENZER_FUNCTION(array_to_halfvec) {
    int count;
    float* values = array_to_floats(PG_GETARG_ARRAYTYPE_P(0), "halfvec", &count);
    check_vector_dim(count, "halfvec");
    check_expected_dim(PG_GETARG_INT32(1), count);
    Vector* v = new_vector(count);
    memcpy(v->x, values, sizeof(float) * static_cast<Size>(count));
    PG_RETURN_POINTER(to_halfvec(v));
}

// Casts sparsevec to halfvec: dense, at most 16 000 dimensions.
BENZER_FUNCTION(sparsevec_to_halfvec) {
    Vector* v = sparsevec_to_dense(PG_GETARG_DATUM(0), "halfvec");
    check_expected_dim(PG_GETARG_INT32(1), v->dim);
    PG_RETURN_POINTER(to_halfvec(v));
}

// Casts halfvec to real[].
BENZER_FUNCTION(halfvec_to_float4) {
    return DirectFunctionCall3(vector_to_float4, vector_arg(fcinfo, 0), Int32GetDatum(-1),
                               BoolGetDatum(false));
}

// Casts vector to halfvec (rounding to halves) and halfvec to vector.
BENZER_FUNCTION(vector_to_halfvec) {
    HalfVector* h = to_halfvec(DatumGetVector(PG_GETARG_DATUM(0)));
    check_expected_dim(PG_GETARG_INT32(1), h->dim);
    PG_RETURN_POINTER(h);
}

BENZER_FUNCTION(halfvec_to_vector) {
    Vector* v = to_vector(DatumGetHalfVector(PG_GETARG_DATUM(0)));
    check_expected_dim(PG_GETARG_INT32(1), v->dim);
    PG_RETURN_VECTOR_P(v);
}

BENZER_FUNCTION(halfvec_l2_distance) { return binary_to_float8(fcinfo, l2_distance); }
BENZER_FUNCTION(halfvec_l2_squared_distance) {
    return binary_to_float8(fcinfo, vector_l2_squared_distance);
}
BENZER_FUNCTION(halfvec_inner_product) { return binary_to_float8(fcinfo, inner_product); }
BENZER_FUNCTION(halfvec_negative_inner_product) {
    return binary_to_float8(fcinfo, vector_negative_inner_product);
}
BENZER_FUNCTION(halfvec_cosine_distance) { return binary_to_float8(fcinfo, cosine_distance); }
BENZER_FUNCTION(halfvec_l1_distance) { return binary_to_float8(fcinfo, l1_distance); }

BENZER_FUNCTION(halfvec_vector_dims) {
    PG_RETURN_INT32(DatumGetHalfVector(PG_GETARG_DATUM(0))->dim);
}
BENZER_FUNCTION(halfvec_l2_norm) { return DirectFunctionCall1(vector_norm, vector_arg(fcinfo, 0)); }
BENZER_FUNCTION(halfvec_l2_normalize) {
    Datum v = DirectFunctionCall1(l2_normalize, vector_arg(fcinfo, 0));
    PG_RETURN_POINTER(to_halfvec(DatumGetVector(v)));
}
BENZER_FUNCTION(halfvec_subvector) {
    Vector* v = DatumGetVector(vector_arg(fcinfo, 0));
    PG_RETURN_POINTER(
        to_halfvec(vector_slice(v, PG_GETARG_INT32(1), PG_GETARG_INT32(2), "halfvec")));
}

BENZER_FUNCTION(halfvec_add) { return arithmetic(fcinfo, vector_add, false); }
BENZER_FUNCTION(halfvec_sub) { return arithmetic(fcinfo, vector_sub, false); }
BENZER_FUNCTION(halfvec_mul) { return arithmetic(fcinfo, vector_mul, true); }
BENZER_FUNCTION(halfvec_concat) {
    HalfVector* a = DatumGetHalfVector(PG_GETARG_DATUM(0));
    HalfVector* b = DatumGetHalfVector(PG_GETARG_DATUM(1));
    check_vector_dim(a->dim + b->dim, "halfvec");
    HalfVector* h = new_halfvec(a->dim + b->dim);
    memcpy(h->x, a->x, sizeof(uint16) * static_cast<Size>(a->dim));
    memcpy(h->x + a->dim, b->x, sizeof(uint16) * static_cast<Size>(b->dim));
    PG_RETURN_POINTER(h);
}

// Comparison: by element, then by dimension count (vector_cmp's order).
namespace {
int compare_halfvecs(FunctionCallInfo fcinfo) {
    return DatumGetInt32(
        DirectFunctionCall2(vector_cmp, vector_arg(fcinfo, 0), vector_arg(fcinfo, 1)));
}
}  // namespace
BENZER_FUNCTION(halfvec_cmp) { PG_RETURN_INT32(compare_halfvecs(fcinfo)); }
BENZER_FUNCTION(halfvec_lt) { PG_RETURN_BOOL(compare_halfvecs(fcinfo) < 0); }
BENZER_FUNCTION(halfvec_le) { PG_RETURN_BOOL(compare_halfvecs(fcinfo) <= 0); }
BENZER_FUNCTION(halfvec_eq) { PG_RETURN_BOOL(compare_halfvecs(fcinfo) == 0); }
BENZER_FUNCTION(halfvec_ne) { PG_RETURN_BOOL(compare_halfvecs(fcinfo) != 0); }
BENZER_FUNCTION(halfvec_ge) { PG_RETURN_BOOL(compare_halfvecs(fcinfo) >= 0); }
BENZER_FUNCTION(halfvec_gt) { PG_RETURN_BOOL(compare_halfvecs(fcinfo) > 0); }

// avg(halfvec): the vector aggregate's double precision sums.
BENZER_FUNCTION(halfvec_accum) {
    PG_RETURN_ARRAYTYPE_P(accumulate(PG_GETARG_ARRAYTYPE_P(0),
                                     DatumGetVector(vector_arg(fcinfo, 1)), "halfvec_accum"));
}
BENZER_FUNCTION(halfvec_avg) {
    // No rows: NULL (which DirectFunctionCall would not pass through).
    ArrayType* state = PG_GETARG_ARRAYTYPE_P(0);
    if (ArrayGetNItems(ARR_NDIM(state), ARR_DIMS(state)) <= 1 || ARR_HASNULL(state) ||
        reinterpret_cast<float8*>(ARR_DATA_PTR(state))[0] == 0.0)
        PG_RETURN_NULL();
    check_vector_dim(ARR_DIMS(state)[0] - 1, "halfvec");
    Datum v = DirectFunctionCall1(vector_avg, PG_GETARG_DATUM(0));
    PG_RETURN_POINTER(to_halfvec(DatumGetVector(v)));
}
