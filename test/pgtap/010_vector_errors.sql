-- 010_vector_errors: every rejected input and failing operation raises an
-- ERROR with the right SQLSTATE and a clear message; the limits themselves
-- are accepted.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

SELECT plan(96);

-- Malformed text: 22P02, the message shows the input ------------------------

SELECT throws_ok($$SELECT '[1,2'::vector$$, '22P02',
    'invalid input syntax for type vector: "[1,2"', 'text: missing ]');
SELECT throws_ok($$SELECT '1,2]'::vector$$, '22P02',
    'invalid input syntax for type vector: "1,2]"', 'text: missing [');
SELECT throws_ok($$SELECT ''::vector$$, '22P02',
    'invalid input syntax for type vector: ""', 'text: empty string');
SELECT throws_ok($$SELECT 'hello'::vector$$, '22P02',
    'invalid input syntax for type vector: "hello"', 'text: not a vector');
SELECT throws_ok($$SELECT '[1,,2]'::vector$$, '22P02',
    'invalid input syntax for type vector: "[1,,2]"', 'text: empty element');
SELECT throws_ok($$SELECT '[1,]'::vector$$, '22P02',
    'invalid input syntax for type vector: "[1,]"', 'text: trailing comma');
SELECT throws_ok($$SELECT '[1 2]'::vector$$, '22P02',
    'invalid input syntax for type vector: "[1 2]"', 'text: missing comma');
SELECT throws_ok($$SELECT '[1,2] x'::vector$$, '22P02',
    'invalid input syntax for type vector: "[1,2] x"', 'text: trailing garbage');
SELECT throws_ok($$SELECT '[1,two]'::vector$$, '22P02',
    'invalid input syntax for type vector: "[1,two]"', 'text: not a number');
SELECT throws_ok($$SELECT '{1,2}'::vector$$, '22P02',
    'invalid input syntax for type vector: "{1,2}"', 'text: array braces');
SELECT throws_ok($$SELECT '[--1]'::vector$$, '22P02',
    'invalid input syntax for type vector: "[--1]"', 'text: two signs');

-- Empty, NaN, infinite, out of range, too many dimensions -------------------

SELECT throws_ok($$SELECT '[]'::vector$$, '22000',
    'vector must have at least 1 dimension', 'text: []');
SELECT throws_ok($$SELECT ' [ ] '::vector$$, '22000',
    'vector must have at least 1 dimension', 'text: [ ] with spaces');
SELECT throws_ok($$SELECT '[NaN]'::vector$$, '22000',
    'NaN not allowed in vector', 'text: NaN');
SELECT throws_ok($$SELECT '[1,nan]'::vector$$, '22000',
    'NaN not allowed in vector', 'text: nan');
SELECT throws_ok($$SELECT '[Infinity]'::vector$$, '22000',
    'infinite value not allowed in vector', 'text: Infinity');
SELECT throws_ok($$SELECT '[-Infinity,1]'::vector$$, '22000',
    'infinite value not allowed in vector', 'text: -Infinity');
SELECT throws_ok($$SELECT '[inf]'::vector$$, '22000',
    'infinite value not allowed in vector', 'text: inf');
SELECT throws_ok($$SELECT '[1e39]'::vector$$, '22003',
    '"1e39" is out of range for type vector', 'text: 1e39 is out of range');
SELECT throws_ok($$SELECT '[1,-3.4028236e38]'::vector$$, '22003',
    '"-3.4028236e38" is out of range for type vector', 'text: just beyond -FLT_MAX');
SELECT throws_ok($$SELECT ('[' || repeat('1,', 16000) || '1]')::vector$$, '54000',
    'vector cannot have more than 16000 dimensions', 'text: 16001 dimensions');
SELECT lives_ok($$SELECT ('[' || repeat('1,', 15999) || '1]')::vector$$,
    'text: 16000 dimensions are accepted');
SELECT lives_ok($$SELECT '[3.4028235e38,-3.4028235e38,1e-45,-0]'::vector$$,
    'text: the extreme finite float4 values are accepted');

-- The typmod ----------------------------------------------------------------

SELECT throws_ok($$SELECT '[1]'::vector(0)$$, '22023',
    'dimensions for type vector must be at least 1', 'typmod: vector(0)');
SELECT throws_ok($$SELECT '[1]'::vector(16001)$$, '22023',
    'dimensions for type vector cannot exceed 16000', 'typmod: vector(16001)');
SELECT throws_ok($$SELECT '[1]'::vector(1, 2)$$, '22023',
    'invalid type modifier', 'typmod: vector(1, 2)');
SELECT throws_ok($$CREATE TEMP TABLE t_bad (v vector(16001))$$, '22023',
    'dimensions for type vector cannot exceed 16000', 'typmod: column vector(16001)');
SELECT lives_ok($$CREATE TEMP TABLE t_limits (a vector(1), b vector(16000))$$,
    'typmod: vector(1) and vector(16000) are accepted');
SELECT throws_ok($$SELECT '[1,2]'::vector(3)$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: text input with too few dimensions');
SELECT throws_ok($$SELECT '[1,2,3,4]'::vector(3)$$, '22000',
    'expected 3 dimensions, not 4', 'typmod: text input with too many dimensions');
SELECT throws_ok($$SELECT '[1,2,3]'::vector::vector(2)$$, '22000',
    'expected 2 dimensions, not 3', 'typmod: cast vector to vector(2)');
SELECT throws_ok($$SELECT ARRAY[1,2]::vector(3)$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: cast integer[] to vector(3)');
SELECT throws_ok($$SELECT ARRAY[1,2]::real[]::vector(3)$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: cast real[] to vector(3)');
SELECT throws_ok($$SELECT ARRAY[1,2]::float8[]::vector(3)$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: cast double precision[] to vector(3)');
SELECT throws_ok($$SELECT ARRAY[1,2]::numeric[]::vector(3)$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: cast numeric[] to vector(3)');
CREATE TEMP TABLE t3 (id int, v vector(3), w vector);
INSERT INTO t3 VALUES (1, '[1,2,3]', '[1,2]');
SELECT throws_ok($$INSERT INTO t3 (v) VALUES ('[1,2]')$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: INSERT of text');
SELECT throws_ok($$INSERT INTO t3 (v) VALUES (ARRAY[1,2])$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: INSERT of an array (assignment cast)');
SELECT throws_ok($$UPDATE t3 SET v = w$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: UPDATE from an unconstrained vector');
SELECT throws_ok($$INSERT INTO t3 (v) SELECT w FROM t3$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: INSERT ... SELECT');
SELECT throws_ok($$COPY t3 (v) FROM PROGRAM 'echo [1,2]'$$, '22000',
    'expected 3 dimensions, not 2', 'typmod: text COPY');
SELECT lives_ok($$INSERT INTO t3 (v) VALUES ('[4,5,6]'), (ARRAY[7,8,9])$$,
    'typmod: matching dimensions are accepted');

-- Operations on vectors of different dimensions -----------------------------

SELECT throws_ok(format('SELECT %s', e), '22000', 'different vector dimensions 2 and 3',
                 'different dimensions: ' || e)
FROM unnest(ARRAY[
    $$'[1,2]'::vector <-> '[1,2,3]'$$,
    $$'[1,2]'::vector <#> '[1,2,3]'$$,
    $$'[1,2]'::vector <=> '[1,2,3]'$$,
    $$'[1,2]'::vector <+> '[1,2,3]'$$,
    $$'[1,2]'::vector + '[1,2,3]'$$,
    $$'[1,2]'::vector - '[1,2,3]'$$,
    $$'[1,2]'::vector * '[1,2,3]'$$,
    $$l2_distance('[1,2]'::vector, '[1,2,3]')$$,
    $$inner_product('[1,2]'::vector, '[1,2,3]')$$,
    $$cosine_distance('[1,2]'::vector, '[1,2,3]')$$,
    $$l1_distance('[1,2]'::vector, '[1,2,3]')$$,
    $$vector_l2_squared_distance('[1,2]', '[1,2,3]')$$,
    $$vector_negative_inner_product('[1,2]', '[1,2,3]')$$,
    $$sum(v) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) AS t(v)$$
]) AS e;
-- avg words it as pgvector does.
SELECT throws_ok($$SELECT avg(v) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) AS t(v)$$, '22000',
    'expected 2 dimensions, not 3', 'different dimensions: avg (pgvector''s words)');

-- Arithmetic overflow and underflow -----------------------------------------

SELECT throws_ok($$SELECT '[3e38]'::vector + '[3e38]'$$, '22003',
    'value out of range: overflow', '+ overflows');
SELECT throws_ok($$SELECT '[-3e38]'::vector - '[3e38]'$$, '22003',
    'value out of range: overflow', '- overflows');
SELECT throws_ok($$SELECT '[1e20]'::vector * '[1e20]'$$, '22003',
    'value out of range: overflow', '* overflows');
SELECT throws_ok($$SELECT '[1e-30]'::vector * '[1e-30]'$$, '22003',
    'value out of range: underflow', '* underflows');
SELECT throws_ok($$SELECT sum(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) AS t(v)$$,
    '22003', 'value out of range: overflow', 'sum(vector) overflows');
SELECT lives_ok($$SELECT '[1e-45]'::vector * '[1]', '[1e-45]'::vector * '[0]'$$,
    '* of a denormal, or by zero, is no underflow');

-- Concatenation and subvector -----------------------------------------------

SELECT throws_ok($$SELECT ('[' || repeat('1,', 15999) || '1]')::vector || '[1]'$$, '54000',
    'vector cannot have more than 16000 dimensions', '|| beyond 16000 dimensions');
SELECT lives_ok($$SELECT ('[' || repeat('1,', 15998) || '1]')::vector || '[1]'$$,
    '|| up to 16000 dimensions');
SELECT throws_ok($$SELECT subvector('[1,2,3]'::vector, 4, 1)$$, '22000',
    'vector must have at least 1 dimension', 'subvector: start past the end');
SELECT throws_ok($$SELECT subvector('[1,2,3]'::vector, 1, 0)$$, '22000',
    'vector must have at least 1 dimension', 'subvector: count 0');
SELECT throws_ok($$SELECT subvector('[1,2,3]'::vector, 2, -1)$$, '22000',
    'vector must have at least 1 dimension', 'subvector: negative count');
SELECT throws_ok($$SELECT subvector('[1,2,3]'::vector, -3, 4)$$, '22000',
    'vector must have at least 1 dimension', 'subvector: ends before the start');
SELECT throws_ok($$SELECT subvector('[1,2,3]'::vector, 2147483647, 2147483647)$$, '22000',
    'vector must have at least 1 dimension', 'subvector: int32 overflow of start + count');

-- Casts from arrays ---------------------------------------------------------

SELECT throws_ok($$SELECT ARRAY[1,NULL]::vector$$, '22004',
    'array must not contain nulls', 'cast integer[] with NULL');
SELECT throws_ok($$SELECT ARRAY[1,NULL]::real[]::vector$$, '22004',
    'array must not contain nulls', 'cast real[] with NULL');
SELECT throws_ok($$SELECT ARRAY[1,NULL]::float8[]::vector$$, '22004',
    'array must not contain nulls', 'cast double precision[] with NULL');
SELECT throws_ok($$SELECT ARRAY[1,NULL]::numeric[]::vector$$, '22004',
    'array must not contain nulls', 'cast numeric[] with NULL');
SELECT throws_ok($$SELECT '{}'::int[]::vector$$, '22000',
    'vector must have at least 1 dimension', 'cast of an empty array');
SELECT throws_ok($$SELECT '{{1,2},{3,4}}'::real[]::vector$$, '22000',
    'array must be 1-D', 'cast of a 2-D array');
SELECT throws_ok($$SELECT array_fill(1, ARRAY[16001])::vector$$, '54000',
    'vector cannot have more than 16000 dimensions', 'cast of a 16001-element array');
SELECT throws_ok($$SELECT ARRAY['NaN']::real[]::vector$$, '22000',
    'NaN not allowed in vector', 'cast real[] with NaN');
SELECT throws_ok($$SELECT ARRAY['Infinity']::real[]::vector$$, '22000',
    'infinite value not allowed in vector', 'cast real[] with Infinity');
SELECT throws_ok($$SELECT ARRAY['-Infinity']::real[]::vector$$, '22000',
    'infinite value not allowed in vector', 'cast real[] with -Infinity');
SELECT throws_ok($$SELECT ARRAY['NaN']::float8[]::vector$$, '22000',
    'NaN not allowed in vector', 'cast double precision[] with NaN');
SELECT throws_ok($$SELECT ARRAY['-Infinity']::float8[]::vector$$, '22000',
    'infinite value not allowed in vector', 'cast double precision[] with -Infinity');
SELECT throws_ok($$SELECT ARRAY[1e39]::float8[]::vector$$, '22000',
    'infinite value not allowed in vector', 'cast double precision[] beyond the float4 range (pgvector''s words)');
SELECT throws_ok($$SELECT ARRAY['NaN']::numeric[]::vector$$, '22000',
    'NaN not allowed in vector', 'cast numeric[] with NaN');
SELECT throws_ok($$SELECT ARRAY['Infinity']::numeric[]::vector$$, '22000',
    'infinite value not allowed in vector', 'cast numeric[] with Infinity');
SELECT throws_ok($$SELECT ARRAY[1e39]::numeric[]::vector$$, '22003',
    NULL, 'cast numeric[] beyond the float4 range');
SELECT throws_ok($$SELECT ARRAY['1']::text[]::vector$$, '42846',
    NULL, 'no cast from text[]');

-- avg(vector) support functions ---------------------------------------------

SELECT throws_ok($$SELECT vector_avg('{1,NaN}')$$, '22000',
    'NaN not allowed in vector', 'vector_avg: a NaN mean is rejected');
SELECT throws_ok($$SELECT vector_avg('{NaN,1}')$$, '22000',
    'NaN not allowed in vector', 'vector_avg: a NaN count is rejected');
SELECT throws_ok($$SELECT vector_avg('{1,1e39}')$$, '22003',
    'value out of range: overflow', 'vector_avg: a mean beyond float4 is rejected');
SELECT throws_ok($$SELECT vector_avg('{1,Infinity}')$$, '22003',
    'value out of range: overflow', 'vector_avg: an infinite mean is rejected');
SELECT throws_ok($$SELECT vector_avg('{{1,2}}')$$, '22000',
    'vector_avg: expected state array', 'vector_avg: a 2-D state is rejected');
SELECT throws_ok($$SELECT vector_accum('{1,NULL}', '[1]')$$, '22000',
    'vector_accum: expected state array', 'vector_accum: a state with NULL is rejected');
SELECT throws_ok($$SELECT vector_accum('{1,1,2}', '[1]')$$, '22000',
    'expected 2 dimensions, not 1', 'vector_accum: different dimensions (pgvector''s words)');
SELECT throws_ok($$SELECT vector_combine('{1,1,2}', '{1,1}')$$, '22000',
    'expected 2 dimensions, not 1', 'vector_combine: different dimensions (pgvector''s words)');

-- Errors leave the session usable ------------------------------------------

SELECT is((SELECT count(*) FROM t3), 3::bigint, 'the table holds only the valid rows');
SELECT is('[1,2,3]'::vector <-> '[1,2,3]', 0::float8, 'the session still works');

SELECT * FROM finish();
ROLLBACK;
