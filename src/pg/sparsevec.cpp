// sparsevec.cpp: pgvector's sparse vector type.
//
// A sparsevec is a dimension count (up to 1 000 000 000) and its non-zero
// elements (up to 16 000) as sorted 0-based indices and float values, in
// pgvector's layout, text form ({1:1.5,3:2}/5, 1-based) and binary form.
// Distances merge the two index lists, so their cost is the non-zero
// count, not the dimension count. A faiss index on sparsevec stores each
// key dense (sparsevec_dense), so it takes sparsevecs of at most 16 000
// dimensions, the vector limit: Faiss has no sparse index, and a dense
// index of a billion dimensions is no index. Wider sparse vectors (SPLADE
// vocabularies) are searched exactly, or reduced to a dense expression.
#include "pg/vector.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>

extern "C" {
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
}

namespace {

constexpr int kSparseMaxDim = 1000000000;
constexpr int kSparseMaxNnz = 16000;

struct SparseVector {
    int32 vl_len_;
    int32 dim;
    int32 nnz;
    int32 unused;
    int32 indices[FLEXIBLE_ARRAY_MEMBER];
    // followed by float values[nnz]
};

inline float* sparse_values(SparseVector* s) {
    return reinterpret_cast<float*>(reinterpret_cast<char*>(s) + offsetof(SparseVector, indices) +
                                    sizeof(int32) * static_cast<Size>(s->nnz));
}

inline SparseVector* DatumGetSparseVector(Datum d) {
    return reinterpret_cast<SparseVector*>(PG_DETOAST_DATUM(d));
}

SparseVector* new_sparsevec(int dim, int nnz) {
    Size size = offsetof(SparseVector, indices) + (sizeof(int32) + sizeof(float)) * nnz;
    auto* s = static_cast<SparseVector*>(palloc0(size));
    SET_VARSIZE(s, size);
    s->dim = dim;
    s->nnz = nnz;
    return s;
}

void check_sparse_dim(long dim) {
    if (dim < 1)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("sparsevec must have at least 1 dimension")));
    if (dim > kSparseMaxDim)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("sparsevec cannot have more than %d dimensions", kSparseMaxDim)));
}

void check_sparse_nnz(int nnz) {
    if (nnz > kSparseMaxNnz)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("sparsevec cannot have more than %d non-zero elements", kSparseMaxNnz)));
}

[[noreturn]] void syntax_error(const char* text) {
    ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
                    errmsg("invalid input syntax for type sparsevec: \"%s\"", text),
                    errdetail("Sparse vectors look like \"{1:1.5,3:2}/5\" (1-based indices).")));
}

const char* skip_spaces(const char* p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\v' || *p == '\f') p++;
    return p;
}

void check_same_sparse_dims(const SparseVector* a, const SparseVector* b) {
    if (a->dim != b->dim)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("different sparsevec dimensions %d and %d", a->dim, b->dim)));
}

// Calls f(a_value, b_value) for every index non-zero in a or b (0 for the
// other side), in index order.
template <typename F>
void merge(SparseVector* a, SparseVector* b, F f) {
    float* av = sparse_values(a);
    float* bv = sparse_values(b);
    int i = 0, j = 0;
    while (i < a->nnz || j < b->nnz) {
        if (j >= b->nnz || (i < a->nnz && a->indices[i] < b->indices[j])) {
            f(av[i++], 0.0f);
        } else if (i >= a->nnz || b->indices[j] < a->indices[i]) {
            f(0.0f, bv[j++]);
        } else {
            f(av[i++], bv[j++]);
        }
    }
}

SparseVector* sparse_args(FunctionCallInfo fcinfo, int n) {
    return DatumGetSparseVector(PG_GETARG_DATUM(n));
}

// Distances sum in float4, as vector's do (and pgvector's): the same
// results as on the dense vectors, overflow to infinity included.

// The squared L2 distance of two sparsevecs of one dimension count.
double l2_squared(SparseVector* a, SparseVector* b) {
    check_same_sparse_dims(a, b);
    float sum = 0;
    merge(a, b, [&](float x, float y) { sum += (x - y) * (x - y); });
    return sum;
}

// The inner product of two sparsevecs of one dimension count.
double dot(SparseVector* a, SparseVector* b) {
    check_same_sparse_dims(a, b);
    float sum = 0;
    merge(a, b, [&](float x, float y) { sum += x * y; });
    return sum;
}

}  // namespace

namespace {

// One index:value pair of the text form, index 0-based.
struct SparseElement {
    int32 index;
    float value;
};

[[noreturn]] void index_out_of_bounds() {
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("sparsevec index out of bounds")));
    pg_unreachable();
}

// ERRORs unless index (0-based) is one of dim's.
void check_sparse_index(long index, long dim) {
    if (index < 0 || index >= dim) index_out_of_bounds();
}

// A dimension count as written, clamped into the int range so that
// check_sparse_dim names the limit it passed (strtol clamps to LONG_MIN/MAX).
long clamp_dim(long dim) {
    return dim < 0 ? (dim < INT_MIN ? INT_MIN : dim) : (dim > INT_MAX ? INT_MAX : dim);
}

}  // namespace

// Text input: {1:1.5,3:2}/5. As pgvector: pairs in any order (sorted
// here), zeros dropped, a repeated index an error.
BENZER_FUNCTION(sparsevec_in) {
    char* text = PG_GETARG_CSTRING(0);
    int32 typmod = PG_GETARG_INT32(2);
    int capacity = 1;
    for (const char* p = text; *p; p++)
        if (*p == ',') capacity++;
    if (capacity > kSparseMaxNnz + 1) capacity = kSparseMaxNnz + 1;
    auto* elements = static_cast<SparseElement*>(palloc(sizeof(SparseElement) * capacity));
    int n = 0;
    const char* p = skip_spaces(text);
    if (*p++ != '{') syntax_error(text);
    p = skip_spaces(p);
    if (*p != '}') {
        for (;;) {
            char* end;
            errno = 0;
            long index = std::strtol(p, &end, 10);
            if (end == p) syntax_error(text);
            // Beyond int32 (or clamped by strtol): no dimension holds it.
            if (errno == ERANGE || index < 1 || index > INT_MAX) index_out_of_bounds();
            p = skip_spaces(end);
            if (*p++ != ':') syntax_error(text);
            p = skip_spaces(p);
            errno = 0;
            float value = std::strtof(p, &end);
            if (end == p) syntax_error(text);
            // Unlike vector's text form, pgvector's sparsevec refuses
            // underflow too.
            if (errno == ERANGE)
                ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                                errmsg("\"%.*s\" is out of range for type sparsevec",
                                       static_cast<int>(end - p), p)));
            check_element(value, "sparsevec");
            if (n >= kSparseMaxNnz) check_sparse_nnz(n + 1);
            elements[n++] = {static_cast<int32>(index - 1), value};
            p = skip_spaces(end);
            if (*p == ',') {
                p = skip_spaces(p + 1);
                continue;
            }
            if (*p == '}') break;
            syntax_error(text);
        }
    }
    p = skip_spaces(p + 1);
    if (*p++ != '/') syntax_error(text);
    p = skip_spaces(p);
    char* end;
    long dim = std::strtol(p, &end, 10);
    if (end == p) syntax_error(text);
    if (*skip_spaces(end) != '\0') syntax_error(text);
    dim = clamp_dim(dim);
    check_sparse_dim(dim);
    check_expected_dim(typmod, static_cast<int>(dim));
    std::stable_sort(elements, elements + n, [](const SparseElement& a, const SparseElement& b) {
        return a.index < b.index;
    });
    int nnz = 0;
    for (int i = 0; i < n; i++) {
        check_sparse_index(elements[i].index, dim);
        if (i > 0 && elements[i].index == elements[i - 1].index)
            ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                            errmsg("sparsevec indices must not contain duplicates")));
        if (elements[i].value != 0.0f) nnz++;
    }
    SparseVector* result = new_sparsevec(static_cast<int>(dim), nnz);
    float* values = sparse_values(result);
    for (int i = 0, k = 0; i < n; i++)
        if (elements[i].value != 0.0f) {
            result->indices[k] = elements[i].index;
            values[k++] = elements[i].value;
        }
    pfree(elements);
    PG_RETURN_POINTER(result);
}

// Text output: {1:1.5,3:2}/5 with the shortest round-trip floats.
BENZER_FUNCTION(sparsevec_out) {
    SparseVector* s = sparse_args(fcinfo, 0);
    float* values = sparse_values(s);
    StringInfoData out;
    initStringInfo(&out);
    appendStringInfoChar(&out, '{');
    char number[32];
    for (int i = 0; i < s->nnz; i++) {
        // format_vector prints "[x]"; take the x.
        char one[40];
        benzer::format_vector(&values[i], 1, one);
        size_t len = strlen(one);
        memcpy(number, one + 1, len - 2);
        number[len - 2] = '\0';
        appendStringInfo(&out, "%s%d:%s", i > 0 ? "," : "", s->indices[i] + 1, number);
    }
    appendStringInfo(&out, "}/%d", s->dim);
    PG_RETURN_CSTRING(out.data);
}

// Typmod input: sparsevec(n), 1 <= n <= 1 000 000 000.
BENZER_FUNCTION(sparsevec_typmod_in) {
    PG_RETURN_INT32(read_typmod(PG_GETARG_ARRAYTYPE_P(0), "sparsevec", kSparseMaxDim));
}

// Binary input: int32 dim, int32 nnz, int32 zero, nnz int32 0-based
// indices, nnz float4 values (pgvector's wire format).
BENZER_FUNCTION(sparsevec_recv) {
    StringInfo buffer = reinterpret_cast<StringInfo>(PG_GETARG_POINTER(0));
    int32 typmod = PG_GETARG_INT32(2);
    int32 dim = pq_getmsgint(buffer, sizeof(int32));
    int32 nnz = pq_getmsgint(buffer, sizeof(int32));
    int32 unused = pq_getmsgint(buffer, sizeof(int32));
    check_sparse_dim(dim);
    check_expected_dim(typmod, dim);
    if (nnz < 0)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("sparsevec cannot have a negative number of elements")));
    check_sparse_nnz(nnz);
    if (unused != 0)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("expected unused to be 0, not %d", unused)));
    SparseVector* s = new_sparsevec(dim, nnz);
    for (int i = 0; i < nnz; i++) {
        s->indices[i] = pq_getmsgint(buffer, sizeof(int32));
        check_sparse_index(s->indices[i], dim);
        if (i > 0 && s->indices[i] < s->indices[i - 1])
            ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                            errmsg("sparsevec indices must be in ascending order")));
        if (i > 0 && s->indices[i] == s->indices[i - 1])
            ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                            errmsg("sparsevec indices must not contain duplicates")));
    }
    float* values = sparse_values(s);
    for (int i = 0; i < nnz; i++) {
        values[i] = pq_getmsgfloat4(buffer);
        check_element(values[i], "sparsevec");
        if (values[i] == 0.0f)
            ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION), errmsg("values must not be zero")));
    }
    PG_RETURN_POINTER(s);
}

// Binary output, the mirror of sparsevec_recv.
BENZER_FUNCTION(sparsevec_send) {
    SparseVector* s = sparse_args(fcinfo, 0);
    float* values = sparse_values(s);
    StringInfoData buffer;
    pq_begintypsend(&buffer);
    pq_sendint32(&buffer, s->dim);
    pq_sendint32(&buffer, s->nnz);
    pq_sendint32(&buffer, s->unused);
    for (int i = 0; i < s->nnz; i++) pq_sendint32(&buffer, s->indices[i]);
    for (int i = 0; i < s->nnz; i++) pq_sendfloat4(&buffer, values[i]);
    PG_RETURN_BYTEA_P(pq_endtypsend(&buffer));
}

// Length coercion: sparsevec(n) checks the dimension count.
BENZER_FUNCTION(sparsevec) {
    SparseVector* s = sparse_args(fcinfo, 0);
    check_expected_dim(PG_GETARG_INT32(1), s->dim);
    PG_RETURN_POINTER(s);
}

// vector -> sparsevec: its non-zero elements.
namespace {

// The sparsevec of dim dense values: their non-zero elements.
SparseVector* nonzero_elements(const float* dense, int dim) {
    int nnz = 0;
    for (int i = 0; i < dim; i++)
        if (dense[i] != 0.0f) nnz++;
    check_sparse_nnz(nnz);
    SparseVector* s = new_sparsevec(dim, nnz);
    float* values = sparse_values(s);
    for (int i = 0, k = 0; i < dim; i++)
        if (dense[i] != 0.0f) {
            s->indices[k] = i;
            values[k++] = dense[i];
        }
    return s;
}

}  // namespace

BENZER_FUNCTION(vector_to_sparsevec) {
    Vector* v = datum_vector(PG_GETARG_DATUM(0));
    check_expected_dim(PG_GETARG_INT32(1), v->dim);
    PG_RETURN_POINTER(nonzero_elements(v->x, v->dim));
}

namespace {

// The dense vector of s (at most 16 000 dimensions).
Vector* dense(const SparseVector* s) {
    Vector* v = new_vector(s->dim);
    const float* values = sparse_values(const_cast<SparseVector*>(s));
    for (int i = 0; i < s->nnz; i++) v->x[s->indices[i]] = values[i];
    return v;
}

}  // namespace

Vector* sparsevec_dense(Datum d) {
    SparseVector* s = DatumGetSparseVector(d);
    if (s->dim > kVectorMaxDim)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a faiss index on sparsevec takes at most %d dimensions, not %d",
                               kVectorMaxDim, s->dim),
                        errhint("Search it without an index, or index a dense expression of "
                                "fewer dimensions.")));
    return dense(s);
}

bool is_sparsevec_type(Oid type) {
    // One type is asked about over and over (the index's key type): keep
    // the last answer. Type OIDs are not reused while a backend can still
    // hold an index on the old one open.
    static Oid last_type = InvalidOid;
    static bool last_answer = false;
    if (type != last_type) {
        char* name = format_type_extended(type, -1, FORMAT_TYPE_FORCE_QUALIFY);
        const char* dot = strrchr(name, '.');
        last_answer = strcmp(dot != nullptr ? dot + 1 : name, "sparsevec") == 0;
        pfree(name);
        last_type = type;
    }
    return last_answer;
}

Vector* sparsevec_to_dense(Datum d, const char* type) {
    SparseVector* s = DatumGetSparseVector(d);
    check_vector_dim(s->dim, type);
    return dense(s);
}

// sparsevec -> vector: dense (at most 16 000 dimensions).
BENZER_FUNCTION(sparsevec_to_vector) {
    Vector* v = sparsevec_to_dense(PG_GETARG_DATUM(0), "vector");
    check_expected_dim(PG_GETARG_INT32(1), v->dim);
    PG_RETURN_VECTOR_P(v);
}

// integer[], real[], double precision[], numeric[] -> sparsevec: the
// non-zero elements.
BENZER_FUNCTION(array_to_sparsevec) {
    int count;
    float* values = array_to_floats(PG_GETARG_ARRAYTYPE_P(0), "sparsevec", &count);
    check_sparse_dim(count);
    check_expected_dim(PG_GETARG_INT32(1), count);
    SparseVector* s = nonzero_elements(values, count);
    pfree(values);
    PG_RETURN_POINTER(s);
}

BENZER_FUNCTION(sparsevec_l2_squared_distance) {
    PG_RETURN_FLOAT8(l2_squared(sparse_args(fcinfo, 0), sparse_args(fcinfo, 1)));
}

BENZER_FUNCTION(sparsevec_l2_distance) {
    PG_RETURN_FLOAT8(std::sqrt(l2_squared(sparse_args(fcinfo, 0), sparse_args(fcinfo, 1))));
}

BENZER_FUNCTION(sparsevec_inner_product) {
    PG_RETURN_FLOAT8(dot(sparse_args(fcinfo, 0), sparse_args(fcinfo, 1)));
}

BENZER_FUNCTION(sparsevec_negative_inner_product) {
    PG_RETURN_FLOAT8(-dot(sparse_args(fcinfo, 0), sparse_args(fcinfo, 1)));
}

// 1 - cosine similarity, clamped to [0, 2]; NaN when either is all zeros.
BENZER_FUNCTION(sparsevec_cosine_distance) {
    SparseVector *a = sparse_args(fcinfo, 0), *b = sparse_args(fcinfo, 1);
    check_same_sparse_dims(a, b);
    float dot = 0, aa = 0, bb = 0;
    merge(a, b, [&](float x, float y) {
        dot += x * y;
        aa += x * x;
        bb += y * y;
    });
    if (aa == 0 || bb == 0) PG_RETURN_FLOAT8(std::nan(""));
    double similarity = static_cast<double>(dot) / std::sqrt(static_cast<double>(aa) * bb);
    if (similarity > 1) similarity = 1;
    if (similarity < -1) similarity = -1;
    PG_RETURN_FLOAT8(1 - similarity);
}

BENZER_FUNCTION(sparsevec_l1_distance) {
    SparseVector *a = sparse_args(fcinfo, 0), *b = sparse_args(fcinfo, 1);
    check_same_sparse_dims(a, b);
    float sum = 0;
    merge(a, b, [&](float x, float y) { sum += std::fabs(x - y); });
    PG_RETURN_FLOAT8(sum);
}

BENZER_FUNCTION(sparsevec_l2_norm) {
    SparseVector* s = sparse_args(fcinfo, 0);
    float* values = sparse_values(s);
    double sum = 0;
    for (int i = 0; i < s->nnz; i++) sum += static_cast<double>(values[i]) * values[i];
    PG_RETURN_FLOAT8(std::sqrt(sum));
}

// The sparsevec scaled to norm 1 (a zero one stays zero). Elements that
// become zero in float4 are dropped: a sparsevec stores no zeros.
BENZER_FUNCTION(sparsevec_l2_normalize) {
    SparseVector* s = sparse_args(fcinfo, 0);
    float* values = sparse_values(s);
    double sum = 0;
    for (int i = 0; i < s->nnz; i++) sum += static_cast<double>(values[i]) * values[i];
    double norm = std::sqrt(sum);
    if (norm == 0) PG_RETURN_POINTER(new_sparsevec(s->dim, 0));
    float* scaled = static_cast<float*>(palloc(sizeof(float) * Max(s->nnz, 1)));
    int nnz = 0;
    for (int i = 0; i < s->nnz; i++) {
        scaled[i] = static_cast<float>(values[i] / norm);
        if (scaled[i] != 0.0f) nnz++;
    }
    SparseVector* result = new_sparsevec(s->dim, nnz);
    float* out = sparse_values(result);
    for (int i = 0, k = 0; i < s->nnz; i++)
        if (scaled[i] != 0.0f) {
            result->indices[k] = s->indices[i];
            out[k++] = scaled[i];
        }
    pfree(scaled);
    PG_RETURN_POINTER(result);
}

// The number of dimensions, vector_dims(sparsevec).
BENZER_FUNCTION(sparsevec_vector_dims) { PG_RETURN_INT32(sparse_args(fcinfo, 0)->dim); }

// Order: element by element as dense vectors, then by dimension count.
BENZER_FUNCTION(sparsevec_cmp) {
    SparseVector *a = sparse_args(fcinfo, 0), *b = sparse_args(fcinfo, 1);
    float* av = sparse_values(a);
    float* bv = sparse_values(b);
    int i = 0, j = 0;
    int common = Min(a->dim, b->dim);
    for (;;) {
        int ai = i < a->nnz && a->indices[i] < common ? a->indices[i] : common;
        int bj = j < b->nnz && b->indices[j] < common ? b->indices[j] : common;
        int at = Min(ai, bj);
        if (at >= common) break;
        float x = ai == at ? av[i] : 0.0f;
        float y = bj == at ? bv[j] : 0.0f;
        if (x != y) PG_RETURN_INT32(x < y ? -1 : 1);
        if (ai == at) i++;
        if (bj == at) j++;
    }
    PG_RETURN_INT32(a->dim < b->dim ? -1 : (a->dim > b->dim ? 1 : 0));
}

#define BENZER_SPARSE_COMPARISON(name, op)                                                     \
    BENZER_FUNCTION(name) {                                                                    \
        return BoolGetDatum(DatumGetInt32(                                                     \
            DirectFunctionCall2(sparsevec_cmp, PG_GETARG_DATUM(0), PG_GETARG_DATUM(1))) op 0); \
    }
BENZER_SPARSE_COMPARISON(sparsevec_lt, <)
BENZER_SPARSE_COMPARISON(sparsevec_le, <=)
BENZER_SPARSE_COMPARISON(sparsevec_eq, ==)
BENZER_SPARSE_COMPARISON(sparsevec_ne, !=)
BENZER_SPARSE_COMPARISON(sparsevec_ge, >=)
BENZER_SPARSE_COMPARISON(sparsevec_gt, >)
