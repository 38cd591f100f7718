-- vector_input: the text form, its output, the typmod, and binary send.
--
-- Errors are shown at default verbosity (no LOCATION lines, which carry
-- source line numbers); the SQLSTATE of each error follows it via
-- \echo :SQLSTATE, and test/pgtap/010_vector_errors.sql checks them again.

-- Text input --------------------------------------------------------------

SELECT '[1,2.5,-3e-2]'::vector;
SELECT '[1,2,3]'::vector(3);
SELECT '[42]'::vector;
-- Whitespace around the brackets, the numbers and the commas.
SELECT ' [ 1 , 2 , 3 ] '::vector;
-- (E'' strings have no \v escape, hence chr(11) for the vertical tab.)
SELECT (E'\t[\n1,\r\n2\t,\f3' || chr(11) || E']\n')::vector;
-- Signs, leading/trailing dots, exponents.
SELECT '[+1,-1,.5,5.,1e3,1E-3,-2.5e+2,+0.0]'::vector;
-- NULL in, NULL out.
SELECT NULL::vector IS NULL AS is_null;

-- Output: the shortest text that reads back to the same float4 --------------

-- 0.1 is not exact; 123456789 is not representable (nearest is 123456792);
-- 0.100000024 needs 9 significant digits; 0.33333334 is 1/3 as float4.
SELECT '[0.1,123456789,0.100000024,0.33333334,1.0000001]'::vector;
-- The smallest denormal (any text that rounds to it prints as 1e-45), the
-- largest denormal, the smallest normal and the largest finite float4.
SELECT '[1e-45,1.4e-45,1.401298464324817e-45,1.1754942e-38,1.17549435e-38,3.4028235e38]'::vector;
SELECT '[-1e-45,-3.4028235e38]'::vector;
-- Underflow rounds to zero (as with float4 and pgvector), keeping the sign.
SELECT '[1e-46,-1e-46,7.1e-46,1e-400]'::vector;
-- Negative zero is kept.
SELECT '[-0,0,-0.0]'::vector;
-- Large and small magnitudes.
SELECT '[1e8,1e15,1e-5,0.0001,16777217,8388608]'::vector;
-- Output reads back to the same vector (and the same bytes).
SELECT v::text, v::text::vector = v AS same_value,
       vector_send(v::text::vector) = vector_send(v) AS same_bytes
FROM (VALUES ('[0.1,0.2,0.3]'::vector), ('[1e-45,-0,3.4028235e38]'),
             ('[0.100000024,-1.17549435e-38]')) AS t(v);

-- Round trip of 20000 pseudo-random bit patterns: every finite float4 built
-- from the bits (denormals and -0 included) prints as text that reads back
-- to exactly the same bits.
CREATE TEMP TABLE random_bits AS
SELECT i, ((i * 2654435761) % 4294967296) AS bits
FROM generate_series(1, 20000) AS i;
CREATE TEMP TABLE random_floats AS
SELECT i, bits,
       ((CASE WHEN bits >= 2147483648 THEN -1 ELSE 1 END) *
        (CASE WHEN (bits >> 23) & 255 = 0
              THEN (bits & 8388607) * power(2::float8, -149)
              ELSE ((bits & 8388607) + 8388608) * power(2::float8, ((bits >> 23) & 255) - 150)
         END))::float4 AS f
FROM random_bits
WHERE (bits >> 23) & 255 <> 255;
-- The generator is exact: each float4 has the intended bit pattern.
SELECT count(*) AS floats,
       count(*) FILTER (WHERE substring(vector_send(ARRAY[f]::vector) FROM 5)
                              = int4send((bits - CASE WHEN bits >= 2147483648 THEN 4294967296 ELSE 0 END)::int4))
         AS exact_bits,
       count(*) FILTER (WHERE bits & 2139095040 = 0) > 0 AS has_denormals,
       count(*) FILTER (WHERE bits >= 2147483648) > 0 AS has_negatives
FROM random_floats;
SELECT count(*) AS vectors,
       count(*) FILTER (WHERE vector_send(v::text::vector) = vector_send(v)) AS round_trips
FROM (SELECT ARRAY[f]::vector AS v FROM random_floats) AS s;
-- The same with all values in one 16000-dimensional vector.
SELECT vector_dims(v), vector_send(v::text::vector) = vector_send(v) AS round_trips
FROM (SELECT array_agg(f ORDER BY i)::vector AS v
      FROM (SELECT i, f FROM random_floats ORDER BY i LIMIT 16000) AS s) AS t;
DROP TABLE random_bits, random_floats;

-- Rejected input -----------------------------------------------------------

-- Malformed text: the message shows the input, the detail the position.
SELECT ''::vector;
\echo :SQLSTATE
SELECT '   '::vector;
\echo :SQLSTATE
SELECT '1,2,3'::vector;
\echo :SQLSTATE
SELECT '[1,2,3'::vector;
\echo :SQLSTATE
SELECT '1,2,3]'::vector;
\echo :SQLSTATE
SELECT '[1,,3]'::vector;
\echo :SQLSTATE
SELECT '[,1]'::vector;
\echo :SQLSTATE
SELECT '[1,]'::vector;
\echo :SQLSTATE
SELECT '[1 2]'::vector;
\echo :SQLSTATE
SELECT '[1,2]x'::vector;
\echo :SQLSTATE
SELECT '[1,2][3]'::vector;
\echo :SQLSTATE
SELECT '[a]'::vector;
\echo :SQLSTATE
SELECT '[1e]'::vector;
\echo :SQLSTATE
SELECT '[--1]'::vector;
\echo :SQLSTATE
SELECT '[+-1]'::vector;
\echo :SQLSTATE
SELECT '[- 1]'::vector;
\echo :SQLSTATE
SELECT '[0x10]'::vector;
\echo :SQLSTATE
SELECT '{1,2,3}'::vector;
\echo :SQLSTATE
SELECT '(1,2,3)'::vector;
\echo :SQLSTATE
SELECT '[1;2]'::vector;
\echo :SQLSTATE
-- No elements.
SELECT '[]'::vector;
\echo :SQLSTATE
SELECT ' [ ] '::vector;
\echo :SQLSTATE
-- NaN and infinities, in any spelling.
SELECT '[NaN]'::vector;
\echo :SQLSTATE
SELECT '[1,nan,3]'::vector;
\echo :SQLSTATE
SELECT '[-NaN]'::vector;
\echo :SQLSTATE
SELECT '[Infinity]'::vector;
\echo :SQLSTATE
SELECT '[1,-Infinity]'::vector;
\echo :SQLSTATE
SELECT '[inf]'::vector;
\echo :SQLSTATE
SELECT '[-inf,1]'::vector;
\echo :SQLSTATE
-- Finite text beyond the float4 range.
SELECT '[1e39]'::vector;
\echo :SQLSTATE
SELECT '[1,-3.5e38]'::vector;
\echo :SQLSTATE
SELECT '[3.4028236e38]'::vector;
\echo :SQLSTATE
SELECT '[1e400]'::vector;
\echo :SQLSTATE
-- Too many dimensions: 16000 is the limit.
SELECT vector_dims(('[' || repeat('1,', 15999) || '1]')::vector);
SELECT ('[' || repeat('1,', 16000) || '1]')::vector;
\echo :SQLSTATE
SELECT ('[' || repeat('0.5,', 20000) || '1]')::vector;
\echo :SQLSTATE

-- The typmod: vector(n) with 1 <= n <= 16000 --------------------------------

SELECT '[1,2,3]'::vector(3);
SELECT vector_dims(('[' || repeat('1,', 15999) || '1]')::vector(16000));
SELECT '[1,2]'::vector(3);
\echo :SQLSTATE
SELECT '[1,2,3,4]'::vector(3);
\echo :SQLSTATE
SELECT '[1]'::vector(0);
\echo :SQLSTATE
SELECT '[1]'::vector(-1);
\echo :SQLSTATE
SELECT '[1]'::vector(16001);
\echo :SQLSTATE
SELECT '[1]'::vector(1, 2);
\echo :SQLSTATE
CREATE TABLE vector_typmod_bad (v vector(0));
\echo :SQLSTATE
CREATE TABLE vector_typmod_bad (v vector(16001));
\echo :SQLSTATE
CREATE TABLE vector_typmod (id int, v vector(3), w vector);
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'vector_typmod'::regclass AND attnum > 0 ORDER BY attnum;
INSERT INTO vector_typmod VALUES (1, '[1,2,3]', '[1]');
INSERT INTO vector_typmod VALUES (2, '[1,2]', '[1]');
\echo :SQLSTATE
INSERT INTO vector_typmod VALUES (3, '[1,2,3,4]', '[1]');
\echo :SQLSTATE
UPDATE vector_typmod SET v = '[1,2]' WHERE id = 1;
\echo :SQLSTATE
UPDATE vector_typmod SET v = w WHERE id = 1;
\echo :SQLSTATE
UPDATE vector_typmod SET v = w || '[5,6]' WHERE id = 1;
INSERT INTO vector_typmod SELECT 4, w || w, w FROM vector_typmod WHERE id = 1;
\echo :SQLSTATE
-- Text COPY into a typmod column checks it too.
COPY vector_typmod FROM stdin;
5	[4,5,6]	[7,8]
\.
COPY vector_typmod FROM stdin;
6	[4,5]	[7,8]
\.
SELECT * FROM vector_typmod ORDER BY id;
DROP TABLE vector_typmod;

-- Binary output: int16 dimensions, int16 zero, big-endian float4s ------------

SELECT vector_send('[1,-2,0.5]');
SELECT vector_send('[-0]'), vector_send('[1e-45]'), vector_send('[3.4028235e38]');
SELECT length(vector_send(('[' || repeat('1,', 15999) || '1]')::vector)) AS bytes;
