// vector.h: the on-disk and in-memory layout of the vector type.
//
// The layout is pgvector's, byte for byte (varlena header, int16 dimension
// count, int16 reserved, float4 elements), so the binary wire format and
// client adapters written for pgvector work unchanged.
#pragma once

#include "pg/postgres_headers.h"

#include "core/half.h"
#include "core/vector_text.h"

extern "C" {
#include "lib/stringinfo.h"
#include "utils/array.h"
}

struct Vector {
    int32 vl_len_;  // varlena header; use SET_VARSIZE
    int16 dim;      // number of elements
    int16 unused;   // reserved, always 0
    float x[FLEXIBLE_ARRAY_MEMBER];
};

constexpr int kVectorMaxDim = benzer::kMaxDimensions;

inline Size vector_size(int dim) {
    return offsetof(Vector, x) + sizeof(float) * static_cast<Size>(dim);
}

inline Vector* DatumGetVector(Datum d) { return reinterpret_cast<Vector*>(PG_DETOAST_DATUM(d)); }

#define PG_GETARG_VECTOR_P(n) DatumGetVector(PG_GETARG_DATUM(n))
#define PG_RETURN_VECTOR_P(v) PG_RETURN_POINTER(v)

// halfvec: the same header, then 2-byte IEEE binary16 elements (pgvector's
// layout, so its binary format and clients work unchanged).
struct HalfVector {
    int32 vl_len_;
    int16 dim;
    int16 unused;
    uint16 x[FLEXIBLE_ARRAY_MEMBER];
};

inline Size halfvec_size(int dim) {
    return offsetof(HalfVector, x) + sizeof(uint16) * static_cast<Size>(dim);
}

// The float vector of a faiss index's key or query: a vector as it is, a
// halfvec converted to a new one. The two are told apart by their size,
// which differs for every dimension count.
Vector* datum_vector(Datum d);

// The 0/1 float vector of a bit string (a faiss index on bit: squared L2
// between 0/1 vectors is the Hamming distance).
Vector* bits_to_vector(Datum d);

// The dense float vector of a sparsevec; ERRORs above 16 000 dimensions
// (a faiss index on sparsevec stores its keys dense).
Vector* sparsevec_dense(Datum d);

// Whether type is benzer's sparsevec.
bool is_sparsevec_type(Oid type);

// The float vector of a faiss index key of type key_type: a bit string's
// bits as 0/1, a sparsevec dense, else datum_vector's.
Vector* key_vector(Datum d, Oid key_type);

// Allocates a zeroed vector of dim elements in the current memory context.
Vector* new_vector(int dim);

// ERRORs unless dim is between 1 and kVectorMaxDim (type names the type
// in the message: "vector", "halfvec").
void check_vector_dim(int dim, const char* type = "vector");

// ERRORs unless dim matches the typmod (-1 accepts any).
void check_expected_dim(int32 typmod, int dim);

// ERRORs unless both vectors have the same number of dimensions.
void check_same_dims(const Vector* a, const Vector* b);

// ERRORs on NaN and infinite elements.
void check_element(float value, const char* type = "vector");

// The vector that text ("[1,2,3]") stands for; ERRORs, naming type, on
// malformed text, NaN, infinity, out-of-range values and a dimension count
// other than typmod's.
Vector* read_vector_text(char* text, int32 typmod, const char* type);

// Elements start (1-based) .. start + count - 1 of a, clipped to a like
// substring(); ERRORs, naming type, when nothing is left.
Vector* vector_slice(const Vector* a, int32 start, int32 count, const char* type);

// The elements of a one-dimensional integer[], real[], double precision[]
// or numeric[] without NULLs, as floats; ERRORs (naming type) on NaN and
// infinite elements. *count is the element count.
float* array_to_floats(ArrayType* array, const char* type, int* count);

// The dense float vector of a sparsevec, as a cast to type ("vector",
// "halfvec") makes it: ERRORs above 16 000 dimensions.
Vector* sparsevec_to_dense(Datum d, const char* type);

// The avg() transition state (a float8[]: row count, then the sums) with
// v added; caller names the SQL function in errors about the state.
ArrayType* accumulate(ArrayType* state, const Vector* v, const char* caller);

// The dimension count of a type modifier such as vector(n) / halfvec(n),
// at most max_dim.
int32 read_typmod(ArrayType* array, const char* type, int32 max_dim = kVectorMaxDim);

// Reads the header of the binary form (int16 dimensions, int16 zero) and
// returns the dimension count, checked against typmod.
int read_binary_header(StringInfo buffer, int32 typmod, const char* type);

// The elements of a one-dimensional vector[] argument; ERRORs (naming
// `what`, e.g. "rocchio: liked") for a multi-dimensional array. Returns the
// element count; NULL elements are flagged in *nulls.
int vector_array_elements(ArrayType* array, const char* what, Datum** elements, bool** nulls);
