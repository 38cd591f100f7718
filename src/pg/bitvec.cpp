// bitvec.cpp: pgvector's distances on PostgreSQL's bit type, and
// binary_quantize.
//
// Binary embeddings (one bit per dimension, from binary_quantize or a
// model that emits them) are compared by Hamming distance (<~>, the number
// of differing bits) or Jaccard distance (<%>, 1 - |a & b| / |a | b|).
// A faiss index on a bit column (bit_hamming_ops) stores each bit as a 0/1
// float and searches by L2: for 0/1 vectors the squared L2 distance is the
// Hamming distance, so the order is the same. Jaccard has no index class
// (it is no monotone function of a distance faiss computes).
#include "pg/vector.h"

#include <cmath>

extern "C" {
#include "catalog/pg_type.h"
#include "utils/varbit.h"
}

namespace {

// ERRORs unless both bit strings have the same length.
void check_same_length(const VarBit* a, const VarBit* b) {
    if (VARBITLEN(a) != VARBITLEN(b))
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("different bit lengths %u and %u", VARBITLEN(a), VARBITLEN(b))));
}

// The bits set in n bytes of a, combined byte by byte with b by op.
template <typename Op>
uint64 count_bits(const bits8* a, const bits8* b, int bytes, Op op) {
    uint64 count = 0;
    for (int i = 0; i < bytes; i++) count += __builtin_popcount(op(a[i], b[i]) & 0xff);
    return count;
}

// bit(n) with bit i set where element i of values is above zero.
VarBit* quantize(const float* values, int dim) {
    int size = VARBITTOTALLEN(dim);
    auto* result = static_cast<VarBit*>(palloc0(size));
    SET_VARSIZE(result, size);
    VARBITLEN(result) = dim;
    bits8* bits = VARBITS(result);
    for (int i = 0; i < dim; i++)
        if (values[i] > 0) bits[i / 8] |= static_cast<bits8>(0x80 >> (i % 8));
    return result;
}

}  // namespace

Vector* bits_to_vector(Datum d) {
    VarBit* bits = DatumGetVarBitP(d);
    int dim = VARBITLEN(bits);
    check_vector_dim(dim, "bit");
    Vector* v = new_vector(dim);
    const bits8* data = VARBITS(bits);
    for (int i = 0; i < dim; i++) v->x[i] = (data[i / 8] & (0x80 >> (i % 8))) ? 1.0f : 0.0f;
    return v;
}

Vector* key_vector(Datum d, Oid key_type) {
    if (key_type == BITOID || key_type == VARBITOID) return bits_to_vector(d);
    if (is_sparsevec_type(key_type)) return sparsevec_dense(d);
    return datum_vector(d);
}

// Hamming distance: the number of bits that differ; the <~> operator.
BENZER_FUNCTION(hamming_distance) {
    VarBit* a = PG_GETARG_VARBIT_P(0);
    VarBit* b = PG_GETARG_VARBIT_P(1);
    check_same_length(a, b);
    uint64 differ =
        count_bits(VARBITS(a), VARBITS(b), VARBITBYTES(a), [](bits8 x, bits8 y) { return x ^ y; });
    PG_RETURN_FLOAT8(static_cast<double>(differ));
}

// Jaccard distance: 1 - |a & b| / |a | b| (1 when no bit is set in both);
// the <%> operator.
BENZER_FUNCTION(jaccard_distance) {
    VarBit* a = PG_GETARG_VARBIT_P(0);
    VarBit* b = PG_GETARG_VARBIT_P(1);
    check_same_length(a, b);
    int bytes = VARBITBYTES(a);
    uint64 both = count_bits(VARBITS(a), VARBITS(b), bytes, [](bits8 x, bits8 y) { return x & y; });
    uint64 either =
        count_bits(VARBITS(a), VARBITS(b), bytes, [](bits8 x, bits8 y) { return x | y; });
    if (both == 0) PG_RETURN_FLOAT8(1.0);
    PG_RETURN_FLOAT8(1.0 - static_cast<double>(both) / static_cast<double>(either));
}

// binary_quantize(vector): bit i is 1 where element i is above zero.
BENZER_FUNCTION(binary_quantize) {
    Vector* v = PG_GETARG_VECTOR_P(0);
    PG_RETURN_VARBIT_P(quantize(v->x, v->dim));
}

// binary_quantize(halfvec).
BENZER_FUNCTION(halfvec_binary_quantize) {
    Vector* v = datum_vector(PG_GETARG_DATUM(0));
    PG_RETURN_VARBIT_P(quantize(v->x, v->dim));
}
