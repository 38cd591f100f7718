// vector.h: the on-disk and in-memory layout of the vector type.
//
// The layout is pgvector's, byte for byte (varlena header, int16 dimension
// count, int16 reserved, float4 elements), so the binary wire format and
// client adapters written for pgvector work unchanged.
#pragma once

#include "pg/postgres_headers.h"

#include "core/vector_text.h"

extern "C" {
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

// Allocates a zeroed vector of dim elements in the current memory context.
Vector* new_vector(int dim);

// ERRORs unless dim is between 1 and kVectorMaxDim.
void check_vector_dim(int dim);

// ERRORs unless dim matches the typmod (-1 accepts any).
void check_expected_dim(int32 typmod, int dim);

// ERRORs unless both vectors have the same number of dimensions.
void check_same_dims(const Vector* a, const Vector* b);

// ERRORs on NaN and infinite elements.
void check_element(float value);

// The elements of a one-dimensional vector[] argument; ERRORs (naming
// `what`, e.g. "rocchio: liked") for a multi-dimensional array. Returns the
// element count; NULL elements are flagged in *nulls.
int vector_array_elements(ArrayType* array, const char* what, Datum** elements, bool** nulls);
