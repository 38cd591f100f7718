// vector_io.cpp: the vector type's input, output, typmod and casts.
//
// Text and binary forms are pgvector's, so dumps, COPY files and client
// adapters move between the two extensions unchanged. Parsing and printing
// live in the core (vector_text.cpp) and never throw or allocate; this file
// sizes the buffers with palloc and turns parse results into ereports.
#include "pg/vector.h"

#include <cmath>

extern "C" {
#include "catalog/pg_type.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
}

Vector* new_vector(int dim) {
    Size size = vector_size(dim);
    Vector* v = static_cast<Vector*>(palloc0(size));
    SET_VARSIZE(v, size);
    v->dim = static_cast<int16>(dim);
    return v;
}

void check_vector_dim(int dim, const char* type) {
    if (dim < 1)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("%s must have at least 1 dimension", type)));
    if (dim > kVectorMaxDim)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("%s cannot have more than %d dimensions", type, kVectorMaxDim)));
}

void check_expected_dim(int32 typmod, int dim) {
    if (typmod != -1 && typmod != dim)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("expected %d dimensions, not %d", typmod, dim)));
}

void check_same_dims(const Vector* a, const Vector* b) {
    if (a->dim != b->dim)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("different vector dimensions %d and %d", a->dim, b->dim)));
}

void check_element(float value, const char* type) {
    if (std::isnan(value))
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("NaN not allowed in %s", type)));
    if (std::isinf(value))
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("infinite value not allowed in %s", type)));
}

Vector* read_vector_text(char* text, int32 typmod, const char* type) {
    int capacity = benzer::count_elements_upper_bound(text);
    if (capacity > kVectorMaxDim) capacity = kVectorMaxDim;
    float* values = static_cast<float*>(palloc(sizeof(float) * static_cast<Size>(capacity)));
    benzer::ParseResult r = benzer::parse_vector(text, values, capacity);
    switch (r.status) {
        case benzer::ParseStatus::kOk:
            break;
        case benzer::ParseStatus::kMalformed:
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
                     errmsg("invalid input syntax for type %s: \"%s\"", type, text),
                     errdetail("Vector contents must look like \"[1,2.5,-3e-2]\"; the problem "
                               "is at character %d.",
                               static_cast<int>(r.position) + 1)));
            break;
        case benzer::ParseStatus::kEmpty:
            check_vector_dim(0, type);
            break;
        case benzer::ParseStatus::kTooMany:
            check_vector_dim(kVectorMaxDim + 1, type);
            break;
        case benzer::ParseStatus::kNotANumber:
            check_element(std::nanf(""), type);
            break;
        case benzer::ParseStatus::kInfinite:
            check_element(HUGE_VALF, type);
            break;
        case benzer::ParseStatus::kOutOfRange:
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                            errmsg("\"%.*s\" is out of range for type %s",
                                   static_cast<int>(r.length), text + r.position, type)));
            break;
    }
    check_expected_dim(typmod, r.dimensions);
    Vector* result = new_vector(r.dimensions);
    memcpy(result->x, values, sizeof(float) * static_cast<Size>(r.dimensions));
    pfree(values);
    return result;
}

// Text input: "[1,2,3]".
BENZER_FUNCTION(vector_in) {
    PG_RETURN_VECTOR_P(read_vector_text(PG_GETARG_CSTRING(0), PG_GETARG_INT32(2), "vector"));
}

// Text output: the shortest text that reads back to the same floats.
BENZER_FUNCTION(vector_out) {
    Vector* v = PG_GETARG_VECTOR_P(0);
    char* buffer = static_cast<char*>(palloc(benzer::format_vector_capacity(v->dim)));
    benzer::format_vector(v->x, v->dim, buffer);
    PG_FREE_IF_COPY(v, 0);
    PG_RETURN_CSTRING(buffer);
}

int32 read_typmod(ArrayType* array, const char* type, int32 max_dim) {
    int n = 0;
    int32* mods = ArrayGetIntegerTypmods(array, &n);
    if (n != 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid type modifier")));
    if (mods[0] < 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("dimensions for type %s must be at least 1", type)));
    if (mods[0] > max_dim)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("dimensions for type %s cannot exceed %d", type, max_dim)));
    return mods[0];
}

// Typmod input: vector(n) with 1 <= n <= 16000.
BENZER_FUNCTION(vector_typmod_in) {
    PG_RETURN_INT32(read_typmod(PG_GETARG_ARRAYTYPE_P(0), "vector"));
}

int read_binary_header(StringInfo buffer, int32 typmod, const char* type) {
    int dim = static_cast<int16>(pq_getmsgint(buffer, sizeof(int16)));
    int unused = static_cast<int16>(pq_getmsgint(buffer, sizeof(int16)));
    check_vector_dim(dim, type);
    check_expected_dim(typmod, dim);
    if (unused != 0)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("expected unused to be 0, not %d", unused)));
    return dim;
}

// Binary input: int16 dim, int16 zero, dim big-endian float4s.
BENZER_FUNCTION(vector_recv) {
    StringInfo buffer = reinterpret_cast<StringInfo>(PG_GETARG_POINTER(0));
    int dim = read_binary_header(buffer, PG_GETARG_INT32(2), "vector");
    Vector* result = new_vector(dim);
    for (int i = 0; i < dim; i++) {
        result->x[i] = pq_getmsgfloat4(buffer);
        check_element(result->x[i]);
    }
    PG_RETURN_VECTOR_P(result);
}

// Binary output, the mirror of vector_recv.
BENZER_FUNCTION(vector_send) {
    Vector* v = PG_GETARG_VECTOR_P(0);
    StringInfoData buffer;
    pq_begintypsend(&buffer);
    pq_sendint(&buffer, static_cast<uint16>(v->dim), sizeof(int16));
    pq_sendint(&buffer, static_cast<uint16>(v->unused), sizeof(int16));
    for (int i = 0; i < v->dim; i++) pq_sendfloat4(&buffer, v->x[i]);
    PG_RETURN_BYTEA_P(pq_endtypsend(&buffer));
}

// Length coercion: vector(3) := some vector checks the dimension count.
BENZER_FUNCTION(vector) {
    Vector* v = PG_GETARG_VECTOR_P(0);
    int32 typmod = PG_GETARG_INT32(1);
    check_expected_dim(typmod, v->dim);
    PG_RETURN_VECTOR_P(v);
}

// Reads element i of a deconstructed array as a float.
static float array_element_to_float(Oid element_type, Datum element) {
    switch (element_type) {
        case INT4OID:
            return static_cast<float>(DatumGetInt32(element));
        case FLOAT8OID:
            return static_cast<float>(DatumGetFloat8(element));
        case FLOAT4OID:
            return DatumGetFloat4(element);
        case NUMERICOID:
            return DatumGetFloat4(DirectFunctionCall1(numeric_float4, element));
        default:
            ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                            errmsg("unsupported array type %u", element_type)));
    }
    return 0.0f;
}

float* array_to_floats(ArrayType* array, const char* type, int* count) {
    if (ARR_NDIM(array) > 1)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("array must be 1-D")));
    if (ARR_HASNULL(array) && array_contains_nulls(array))
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("array must not contain nulls")));
    Oid element_type = ARR_ELEMTYPE(array);
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(element_type, &typlen, &typbyval, &typalign);
    Datum* elements;
    deconstruct_array(array, element_type, typlen, typbyval, typalign, &elements, nullptr, count);
    float* values = static_cast<float*>(palloc(sizeof(float) * static_cast<Size>(Max(*count, 1))));
    for (int i = 0; i < *count; i++) {
        // A finite double too large for float4 becomes infinity here and is
        // refused as one, in pgvector's words.
        values[i] = array_element_to_float(element_type, elements[i]);
        check_element(values[i], type);
    }
    pfree(elements);
    return values;
}

// Casts integer[], real[], double precision[] and numeric[] to vector.
BENZER_FUNCTION(array_to_vector) {
    int count;
    float* values = array_to_floats(PG_GETARG_ARRAYTYPE_P(0), "vector", &count);
    check_vector_dim(count);
    check_expected_dim(PG_GETARG_INT32(1), count);
    Vector* result = new_vector(count);
    memcpy(result->x, values, sizeof(float) * static_cast<Size>(count));
    pfree(values);
    PG_RETURN_VECTOR_P(result);
}

// Casts vector to real[].
BENZER_FUNCTION(vector_to_float4) {
    Vector* v = PG_GETARG_VECTOR_P(0);
    Datum* elements = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<Size>(v->dim)));
    for (int i = 0; i < v->dim; i++) elements[i] = Float4GetDatum(v->x[i]);
    ArrayType* result =
        construct_array(elements, v->dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
    pfree(elements);
    PG_RETURN_POINTER(result);
}

int vector_array_elements(ArrayType* array, const char* what, Datum** elements, bool** nulls) {
    if (ARR_NDIM(array) > 1)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("%s must be a one-dimensional array of vectors", what)));
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(ARR_ELEMTYPE(array), &typlen, &typbyval, &typalign);
    int count;
    deconstruct_array(array, ARR_ELEMTYPE(array), typlen, typbyval, typalign, elements, nulls,
                      &count);
    return count;
}
