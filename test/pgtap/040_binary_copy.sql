-- 040_binary_copy: binary send/receive use pgvector's wire layout (int16
-- dimensions, int16 zero, big-endian float4s); binary and text COPY round
-- trip every bit; vector_recv checks what it receives.
--
-- COPY writes server-side files into the data directory, so this needs a
-- superuser (pg_virtualenv's default user is one).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

SELECT plan(33);

-- A scratch file for this backend.
CREATE FUNCTION pg_temp.scratch(suffix text) RETURNS text LANGUAGE sql AS $$
    SELECT current_setting('data_directory') || '/benzer_pgtap_040_' || pg_backend_pid()
           || '_' || suffix
$$;

-- Writes payload as the one field of a one-row binary COPY file: the file a
-- client sending these exact bytes for a vector column would produce. Returns
-- the COPY statement that loads it into target.
CREATE FUNCTION pg_temp.binary_copy_of(payload bytea, target text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('COPY (SELECT %L::bytea) TO %L (FORMAT binary)', payload,
                   pg_temp.scratch('payload.bin'));
    RETURN format('COPY %s FROM %L (FORMAT binary)', target, pg_temp.scratch('payload.bin'));
END
$$;

-- Turns a float4 bit pattern into the float4 (exact: the value is built in
-- double precision from the sign, exponent and mantissa).
CREATE FUNCTION pg_temp.float4_from_bits(bits bigint) RETURNS real LANGUAGE sql AS $$
    SELECT ((CASE WHEN bits >= 2147483648 THEN -1 ELSE 1 END) *
            (CASE WHEN (bits >> 23) & 255 = 0
                  THEN (bits & 8388607) * power(2::float8, -149)
                  ELSE ((bits & 8388607) + 8388608) * power(2::float8, ((bits >> 23) & 255) - 150)
             END))::real
$$;

-- The wire layout -----------------------------------------------------------

SELECT is(vector_send('[1,-2,0.5]'), '\x000300003f800000c00000003f000000'::bytea,
          'vector_send: int16 dims, int16 zero, big-endian float4s');
SELECT is(vector_send('[-0,1e-45,3.4028235e38,-1.1754944e-38]'),
          '\x0004000080000000000000017f7fffff80800000'::bytea,
          'vector_send keeps -0, denormals and extremes bit for bit');
SELECT is(length(vector_send(array_fill(1, ARRAY[16000])::vector)), 64004,
          'vector_send of 16000 dimensions is 4 + 4 * 16000 bytes');

-- What binary COPY writes for a vector is exactly vector_send's bytes.
CREATE TEMP TABLE one (v vector);
INSERT INTO one VALUES ('[1,-2,0.5]');
CREATE TEMP TABLE raw (b bytea);
SELECT lives_ok(format('COPY one TO %L (FORMAT binary)', pg_temp.scratch('one.bin')),
                'binary COPY TO of a vector');
SELECT lives_ok(format('COPY raw FROM %L (FORMAT binary)', pg_temp.scratch('one.bin')),
                'the same file read back as bytea');
SELECT is((SELECT b FROM raw), '\x000300003f800000c00000003f000000'::bytea,
          'binary COPY writes the pgvector wire layout');

-- Bytes a pgvector client would send are read as the same vector.
CREATE TEMP TABLE recv (v vector);
SELECT lives_ok(pg_temp.binary_copy_of('\x000200003f80000040000000', 'recv'),
                'binary COPY FROM of pgvector wire bytes');
SELECT is((SELECT v::text FROM recv), '[1,2]', 'the received vector is [1,2]');

-- Round trips of tricky values ----------------------------------------------

CREATE TEMP TABLE src (id int, v vector);
INSERT INTO src VALUES
    (1, '[0.1,0.2,0.3]'),
    (2, '[-0,0,1e-45,-1e-45]'),
    (3, '[3.4028235e38,-3.4028235e38,1.1754944e-38,1.1754942e-38]'),
    (4, '[0.100000024,123456792,0.33333334,16777216]'),
    (5, NULL),
    (6, (SELECT array_fill(0.5::real, ARRAY[16000])::vector)),
    (7, '[42]');
-- 2000 random bit patterns, all finite, in 1- to 64-dimensional vectors.
SELECT setseed(0.25);
INSERT INTO src
SELECT 100 + k, array_agg(f ORDER BY j)::vector
FROM (SELECT k, j, pg_temp.float4_from_bits(bits) AS f
      FROM (SELECT k, j, floor(random() * 4294967296)::bigint AS bits
            FROM generate_series(1, 60) AS k, generate_series(1, 64) AS j) AS r
      WHERE (bits >> 23) & 255 <> 255 AND j <= k + 4) AS s
GROUP BY k;
SELECT cmp_ok((SELECT count(*) FROM src), '>=', 60::bigint, 'the source table has 60+ rows');

-- Binary COPY.
CREATE TEMP TABLE dst_binary (id int, v vector);
SELECT lives_ok(format('COPY src TO %L (FORMAT binary)', pg_temp.scratch('src.bin')),
                'binary COPY TO');
SELECT lives_ok(format('COPY dst_binary FROM %L (FORMAT binary)', pg_temp.scratch('src.bin')),
                'binary COPY FROM');
SELECT is((SELECT count(*) FROM dst_binary), (SELECT count(*) FROM src),
          'binary COPY: all rows');
SELECT is_empty(
    $$SELECT id FROM src s FULL JOIN dst_binary d USING (id)
      WHERE vector_send(s.v) IS DISTINCT FROM vector_send(d.v)$$,
    'binary COPY: every vector bit for bit, NULLs kept');

-- Text COPY.
CREATE TEMP TABLE dst_text (id int, v vector);
SELECT lives_ok(format('COPY src TO %L', pg_temp.scratch('src.txt')), 'text COPY TO');
SELECT lives_ok(format('COPY dst_text FROM %L', pg_temp.scratch('src.txt')), 'text COPY FROM');
SELECT is((SELECT count(*) FROM dst_text), (SELECT count(*) FROM src), 'text COPY: all rows');
SELECT is_empty(
    $$SELECT id FROM src s FULL JOIN dst_text d USING (id)
      WHERE vector_send(s.v) IS DISTINCT FROM vector_send(d.v)$$,
    'text COPY: every vector bit for bit, NULLs kept');

-- CSV COPY.
CREATE TEMP TABLE dst_csv (id int, v vector);
SELECT lives_ok(format('COPY src TO %L (FORMAT csv)', pg_temp.scratch('src.csv')), 'CSV COPY TO');
SELECT lives_ok(format('COPY dst_csv FROM %L (FORMAT csv)', pg_temp.scratch('src.csv')),
                'CSV COPY FROM');
SELECT is_empty(
    $$SELECT id FROM src s FULL JOIN dst_csv d USING (id)
      WHERE vector_send(s.v) IS DISTINCT FROM vector_send(d.v)$$,
    'CSV COPY: every vector bit for bit, NULLs kept');

-- The typmod is checked on receive ------------------------------------------

CREATE TEMP TABLE typed (v vector(3));
SELECT lives_ok(pg_temp.binary_copy_of('\x000300003f8000004000000040400000', 'typed'),
                'binary COPY FROM into vector(3) with 3 dimensions');
SELECT throws_ok(pg_temp.binary_copy_of('\x000200003f80000040000000', 'typed'), '22000',
                 'expected 3 dimensions, not 2', 'binary COPY FROM into vector(3) with 2 dimensions');

-- vector_recv rejects what the type does not allow --------------------------

SELECT throws_ok(pg_temp.binary_copy_of('\x000100007fc00000', 'recv'), '22000',
                 'NaN not allowed in vector', 'receive: NaN');
SELECT throws_ok(pg_temp.binary_copy_of('\x00010000ffc00001', 'recv'), '22000',
                 'NaN not allowed in vector', 'receive: a negative NaN with a payload');
SELECT throws_ok(pg_temp.binary_copy_of('\x000100007f800000', 'recv'), '22000',
                 'infinite value not allowed in vector', 'receive: +Infinity');
SELECT throws_ok(pg_temp.binary_copy_of('\x00020000ff8000003f800000', 'recv'), '22000',
                 'infinite value not allowed in vector', 'receive: -Infinity');
SELECT throws_ok(pg_temp.binary_copy_of('\x00000000', 'recv'), '22000',
                 'vector must have at least 1 dimension', 'receive: 0 dimensions');
SELECT throws_ok(pg_temp.binary_copy_of('\xffff0000', 'recv'), '22000',
                 'vector must have at least 1 dimension', 'receive: -1 dimensions');
SELECT throws_ok(pg_temp.binary_copy_of('\x3e810000', 'recv'), '54000',
                 'vector cannot have more than 16000 dimensions', 'receive: 16001 dimensions');
SELECT throws_ok(pg_temp.binary_copy_of('\x000100013f800000', 'recv'), '22000',
                 'expected unused to be 0, not 1', 'receive: nonzero reserved field');
SELECT throws_ok(pg_temp.binary_copy_of('\x000200003f800000', 'recv'), '08P01',
                 'insufficient data left in message', 'receive: fewer floats than dimensions');
SELECT throws_ok(pg_temp.binary_copy_of('\x000100003f80000000', 'recv'), '22P03',
                 'incorrect binary data format', 'receive: trailing bytes');
SELECT is((SELECT count(*) FROM recv), 1::bigint, 'no rejected row was stored');

SELECT * FROM finish();
ROLLBACK;
