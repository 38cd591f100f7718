-- benzer 0.1.0: the vector type, its operators and functions.
-- Names, signatures and semantics follow pgvector so that existing SQL,
-- dumps and client adapters work unchanged.

\echo Use "CREATE EXTENSION benzer" to load this file. \quit

-- The type ------------------------------------------------------------------

CREATE TYPE vector;

CREATE FUNCTION vector_in(cstring, oid, integer) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_in(cstring, oid, integer) IS
    'text input of a vector: ''[1,2.5,-3e-2]''';

CREATE FUNCTION vector_out(vector) RETURNS cstring
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_out(vector) IS
    'text output of a vector: the shortest text that reads back to the same floats';

CREATE FUNCTION vector_typmod_in(cstring[]) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_typmod_in(cstring[]) IS
    'type modifier input: vector(n), 1 <= n <= 16000';

CREATE FUNCTION vector_recv(internal, oid, integer) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_recv(internal, oid, integer) IS
    'binary input of a vector (pgvector wire format)';

CREATE FUNCTION vector_send(vector) RETURNS bytea
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_send(vector) IS
    'binary output of a vector: int16 dimensions, int16 zero, big-endian float4s';

-- STORAGE external: large vectors may move out of line but are never
-- compressed (float data barely compresses and decompression slows scans).
CREATE TYPE vector (
    INPUT     = vector_in,
    OUTPUT    = vector_out,
    TYPMOD_IN = vector_typmod_in,
    RECEIVE   = vector_recv,
    SEND      = vector_send,
    STORAGE   = external
);
COMMENT ON TYPE vector IS
    'a vector of float4 values (up to 16000 dimensions), e.g. ''[1,2,3]''::vector(3)';

-- Casts ---------------------------------------------------------------------

CREATE FUNCTION vector(vector, integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector(vector, integer, boolean) IS
    'checks that a vector has the dimensions of its vector(n) type';

CREATE FUNCTION array_to_vector(integer[], integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION array_to_vector(integer[], integer, boolean) IS
    'converts an integer array to a vector';

CREATE FUNCTION array_to_vector(real[], integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION array_to_vector(real[], integer, boolean) IS
    'converts a real array to a vector';

CREATE FUNCTION array_to_vector(double precision[], integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION array_to_vector(double precision[], integer, boolean) IS
    'converts a double precision array to a vector (values rounded to float4)';

CREATE FUNCTION array_to_vector(numeric[], integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION array_to_vector(numeric[], integer, boolean) IS
    'converts a numeric array to a vector (values rounded to float4)';

CREATE FUNCTION vector_to_float4(vector, integer, boolean) RETURNS real[]
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_to_float4(vector, integer, boolean) IS
    'converts a vector to a real array';

CREATE CAST (vector AS vector)
    WITH FUNCTION vector(vector, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS vector)
    WITH FUNCTION array_to_vector(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS vector)
    WITH FUNCTION array_to_vector(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS vector)
    WITH FUNCTION array_to_vector(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS vector)
    WITH FUNCTION array_to_vector(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (vector AS real[])
    WITH FUNCTION vector_to_float4(vector, integer, boolean) AS IMPLICIT;

COMMENT ON CAST (vector AS vector) IS 'checks the dimensions against vector(n)';
COMMENT ON CAST (integer[] AS vector) IS 'an integer array as a vector';
COMMENT ON CAST (real[] AS vector) IS 'a real array as a vector';
COMMENT ON CAST (double precision[] AS vector) IS
    'a double precision array as a vector (rounded to float4)';
COMMENT ON CAST (numeric[] AS vector) IS 'a numeric array as a vector (rounded to float4)';
COMMENT ON CAST (vector AS real[]) IS 'a vector as a real array';

-- Distances -----------------------------------------------------------------

CREATE FUNCTION l2_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION l2_distance(vector, vector) IS
    'Euclidean (L2) distance; the <-> operator';

CREATE FUNCTION inner_product(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION inner_product(vector, vector) IS
    'inner (dot) product; <#> is its negation';

CREATE FUNCTION cosine_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cosine_distance(vector, vector) IS
    '1 - cosine similarity, in [0, 2]; NaN for a zero vector; the <=> operator';

CREATE FUNCTION l1_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION l1_distance(vector, vector) IS
    'taxicab (L1) distance; the <+> operator';

CREATE FUNCTION vector_l2_squared_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_l2_squared_distance(vector, vector) IS
    'squared Euclidean distance (orders like <-> without the square root)';

CREATE FUNCTION vector_negative_inner_product(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_negative_inner_product(vector, vector) IS
    'negative inner product (smaller is more similar); the <#> operator';

CREATE OPERATOR <-> (
    LEFTARG = vector, RIGHTARG = vector, FUNCTION = l2_distance, COMMUTATOR = '<->'
);
COMMENT ON OPERATOR <-> (vector, vector) IS 'Euclidean (L2) distance';

CREATE OPERATOR <#> (
    LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_negative_inner_product,
    COMMUTATOR = '<#>'
);
COMMENT ON OPERATOR <#> (vector, vector) IS 'negative inner product';

CREATE OPERATOR <=> (
    LEFTARG = vector, RIGHTARG = vector, FUNCTION = cosine_distance, COMMUTATOR = '<=>'
);
COMMENT ON OPERATOR <=> (vector, vector) IS 'cosine distance';

CREATE OPERATOR <+> (
    LEFTARG = vector, RIGHTARG = vector, FUNCTION = l1_distance, COMMUTATOR = '<+>'
);
COMMENT ON OPERATOR <+> (vector, vector) IS 'taxicab (L1) distance';

-- Other functions -----------------------------------------------------------

CREATE FUNCTION vector_dims(vector) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_dims(vector) IS 'number of dimensions';

CREATE FUNCTION vector_norm(vector) RETURNS float8
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_norm(vector) IS 'Euclidean norm (length)';

CREATE FUNCTION l2_normalize(vector) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION l2_normalize(vector) IS
    'the vector scaled to unit length (a zero vector stays zero)';

CREATE FUNCTION subvector(vector, integer, integer) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subvector(vector, integer, integer) IS
    'subvector(v, start, count): count elements from position start (1-based)';

CREATE FUNCTION benzer_simd_kernel() RETURNS text
    AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION benzer_simd_kernel() IS
    'the distance kernel variant this CPU runs: avx512, avx2 or generic';

-- Arithmetic ----------------------------------------------------------------

CREATE FUNCTION vector_add(vector, vector) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_add(vector, vector) IS 'element-wise sum';

CREATE FUNCTION vector_sub(vector, vector) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_sub(vector, vector) IS 'element-wise difference';

CREATE FUNCTION vector_mul(vector, vector) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_mul(vector, vector) IS 'element-wise product';

CREATE FUNCTION vector_concat(vector, vector) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_concat(vector, vector) IS 'concatenation';

CREATE OPERATOR + (
    LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_add, COMMUTATOR = +
);
COMMENT ON OPERATOR + (vector, vector) IS 'element-wise sum';

CREATE OPERATOR - (
    LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_sub
);
COMMENT ON OPERATOR - (vector, vector) IS 'element-wise difference';

CREATE OPERATOR * (
    LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_mul, COMMUTATOR = *
);
COMMENT ON OPERATOR * (vector, vector) IS 'element-wise product';

CREATE OPERATOR || (
    LEFTARG = vector, RIGHTARG = vector, FUNCTION = vector_concat
);
COMMENT ON OPERATOR || (vector, vector) IS 'concatenation';

-- Comparison and the btree operator class -----------------------------------

CREATE FUNCTION vector_lt(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_lt(vector, vector) IS 'less than (elements first, then length)';
CREATE FUNCTION vector_le(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_le(vector, vector) IS 'less than or equal';
CREATE FUNCTION vector_eq(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_eq(vector, vector) IS 'equal';
CREATE FUNCTION vector_ne(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_ne(vector, vector) IS 'not equal';
CREATE FUNCTION vector_ge(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_ge(vector, vector) IS 'greater than or equal';
CREATE FUNCTION vector_gt(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_gt(vector, vector) IS 'greater than';
CREATE FUNCTION vector_cmp(vector, vector) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_cmp(vector, vector) IS 'btree comparison: -1, 0 or 1';

CREATE OPERATOR < (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_lt,
    COMMUTATOR = > , NEGATOR = >= ,
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
COMMENT ON OPERATOR < (vector, vector) IS 'less than';
CREATE OPERATOR <= (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_le,
    COMMUTATOR = >= , NEGATOR = > ,
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
COMMENT ON OPERATOR <= (vector, vector) IS 'less than or equal';
CREATE OPERATOR = (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_eq,
    COMMUTATOR = = , NEGATOR = <> ,
    RESTRICT = eqsel, JOIN = eqjoinsel, MERGES
);
COMMENT ON OPERATOR = (vector, vector) IS 'equal';
CREATE OPERATOR <> (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_ne,
    COMMUTATOR = <> , NEGATOR = = ,
    RESTRICT = neqsel, JOIN = neqjoinsel
);
COMMENT ON OPERATOR <> (vector, vector) IS 'not equal';
CREATE OPERATOR >= (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_ge,
    COMMUTATOR = <= , NEGATOR = < ,
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);
COMMENT ON OPERATOR >= (vector, vector) IS 'greater than or equal';
CREATE OPERATOR > (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_gt,
    COMMUTATOR = < , NEGATOR = <= ,
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
COMMENT ON OPERATOR > (vector, vector) IS 'greater than';

CREATE OPERATOR CLASS vector_ops
    DEFAULT FOR TYPE vector USING btree AS
    OPERATOR 1 < ,
    OPERATOR 2 <= ,
    OPERATOR 3 = ,
    OPERATOR 4 >= ,
    OPERATOR 5 > ,
    FUNCTION 1 vector_cmp(vector, vector);
COMMENT ON OPERATOR CLASS vector_ops USING btree IS
    'btree ordering of vectors (ORDER BY, DISTINCT, UNIQUE, merge joins)';
COMMENT ON OPERATOR FAMILY vector_ops USING btree IS 'btree ordering of vectors';

-- Aggregates ----------------------------------------------------------------

CREATE FUNCTION vector_accum(double precision[], vector) RETURNS double precision[]
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_accum(double precision[], vector) IS
    'avg(vector) transition: count and running sums';

CREATE FUNCTION vector_combine(double precision[], double precision[])
    RETURNS double precision[]
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_combine(double precision[], double precision[]) IS
    'avg(vector) combine step for parallel aggregation';

CREATE FUNCTION vector_avg(double precision[]) RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_avg(double precision[]) IS
    'avg(vector) final step: the element-wise mean';

CREATE AGGREGATE avg(vector) (
    SFUNC = vector_accum,
    STYPE = double precision[],
    FINALFUNC = vector_avg,
    COMBINEFUNC = vector_combine,
    INITCOND = '{0}',
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE avg(vector) IS 'element-wise mean of vectors (e.g. a centroid)';

CREATE AGGREGATE sum(vector) (
    SFUNC = vector_add,
    STYPE = vector,
    COMBINEFUNC = vector_add,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE sum(vector) IS 'element-wise sum of vectors';
