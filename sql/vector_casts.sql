-- vector_casts: integer[], real[], double precision[] and numeric[] to
-- vector, vector to real[], and vector(n) length coercion.
--
-- After each error, \echo :SQLSTATE shows its SQLSTATE.

-- Arrays to vector ----------------------------------------------------------

SELECT ARRAY[1,2,3]::vector AS int4, ARRAY[1.5,2,-3]::real[]::vector AS float4,
       ARRAY[1.5,2,-3]::float8[]::vector AS float8, ARRAY[1.5,2,-3]::numeric[]::vector AS numeric;
SELECT '{1,2,3}'::int[]::vector(3) AS int4, '{1,2,3}'::real[]::vector(3) AS float4,
       '{1,2,3}'::float8[]::vector(3) AS float8, '{1,2,3}'::numeric[]::vector(3) AS numeric;
-- Extreme integers round to the nearest float4.
SELECT ARRAY[16777217, 2147483647, -2147483648]::vector AS int4;
-- real[] is copied bit for bit (-0, denormals, the largest float4).
SELECT '{-0,1e-45,3.4028235e38,0.1}'::real[]::vector AS float4,
       vector_send('{-0,1e-45,3.4028235e38,0.1}'::real[]::vector) AS bytes;
-- double precision and numeric round to the nearest float4.
SELECT ARRAY[0.1, 1/3::float8, 1e-45, 1e-46, -0::float8]::float8[]::vector AS float8,
       ARRAY[0.1, 1/3::numeric, 1e-45, 123456789]::numeric[]::vector AS numeric;
SELECT ARRAY['-0'::float8]::vector AS float8_minus_zero;
-- The largest double that still rounds to a finite float4.
SELECT ARRAY[3.4028235e38::float8, 3.4028235677973362e38::float8]::vector AS float8_max;
-- Any lower bound is fine; the elements are taken in order.
SELECT '[0:2]={7,8,9}'::int[]::vector AS bounds, '[-5:-4]={1.5,2.5}'::real[]::vector AS negative;
-- 16000 elements is the limit.
SELECT vector_dims(array_fill(1, ARRAY[16000])::vector) AS int4,
       vector_dims(array_fill(1::real, ARRAY[16000])::vector(16000)) AS float4;
-- NULL array in, NULL out.
SELECT NULL::int[]::vector IS NULL AS int4, NULL::real[]::vector IS NULL AS float4;

-- Rejected arrays.
SELECT ARRAY[1,NULL,3]::vector;
\echo :SQLSTATE
SELECT ARRAY[1.5,NULL]::real[]::vector;
\echo :SQLSTATE
SELECT ARRAY[NULL]::float8[]::vector;
\echo :SQLSTATE
SELECT ARRAY[NULL, 1]::numeric[]::vector;
\echo :SQLSTATE
SELECT '{}'::int[]::vector;
\echo :SQLSTATE
SELECT '{}'::real[]::vector;
\echo :SQLSTATE
SELECT ARRAY[[1,2],[3,4]]::vector;
\echo :SQLSTATE
SELECT ARRAY[[1.5,2.5]]::float8[]::vector;
\echo :SQLSTATE
SELECT ARRAY['NaN']::real[]::vector;
\echo :SQLSTATE
SELECT ARRAY[1, 'Infinity']::real[]::vector;
\echo :SQLSTATE
SELECT ARRAY['-Infinity']::real[]::vector;
\echo :SQLSTATE
SELECT ARRAY['NaN']::float8[]::vector;
\echo :SQLSTATE
SELECT ARRAY['Infinity']::float8[]::vector;
\echo :SQLSTATE
SELECT ARRAY[1e39]::float8[]::vector;
\echo :SQLSTATE
SELECT ARRAY[-1e300]::float8[]::vector;
\echo :SQLSTATE
SELECT ARRAY['NaN']::numeric[]::vector;
\echo :SQLSTATE
SELECT ARRAY['Infinity']::numeric[]::vector;
\echo :SQLSTATE
SELECT ARRAY[1e39]::numeric[]::vector;
\echo :SQLSTATE
SELECT array_fill(1, ARRAY[16001])::vector;
\echo :SQLSTATE
SELECT array_fill(1.5::float8, ARRAY[16001])::vector;
\echo :SQLSTATE
-- The typmod is checked.
SELECT ARRAY[1,2]::vector(3);
\echo :SQLSTATE
SELECT ARRAY[1,2,3,4]::real[]::vector(3);
\echo :SQLSTATE
SELECT ARRAY[1,2]::float8[]::vector(3);
\echo :SQLSTATE
SELECT ARRAY[1,2]::numeric[]::vector(3);
\echo :SQLSTATE
-- Arrays of other types have no cast.
SELECT ARRAY['1','2']::text[]::vector;
\echo :SQLSTATE
SELECT ARRAY[1,2]::bigint[]::vector;
\echo :SQLSTATE

-- Vector to real[] ----------------------------------------------------------

SELECT '[1,2.5,-3]'::vector::real[] AS arr, array_dims('[1,2.5,-3]'::vector::real[]) AS dims;
SELECT '[-0,1e-45,3.4028235e38,0.1]'::vector::real[] AS exact;
SELECT vector_dims(v) = cardinality(v::real[]) AS same_length
FROM (SELECT ('[' || repeat('0.5,', 15999) || '1]')::vector AS v) AS t;
-- Round trips through real[] keep every bit.
SELECT vector_send(v::real[]::vector) = vector_send(v) AS same_bytes
FROM (VALUES ('[-0,1e-45,3.4028235e38,0.1,-1.17549435e-38]'::vector)) AS t(v);
-- The cast is implicit: a vector can be passed where real[] is expected.
CREATE FUNCTION vector_casts_second(a real[]) RETURNS real
    LANGUAGE sql IMMUTABLE STRICT AS 'SELECT a[2]';
SELECT vector_casts_second('[4,5,6]'::vector) AS second;
DROP FUNCTION vector_casts_second(real[]);
SELECT NULL::vector::real[] IS NULL AS is_null;

-- Assignment casts and vector(n) length coercion ----------------------------

CREATE TABLE vector_casts (id int, v vector(3));
INSERT INTO vector_casts VALUES (1, ARRAY[1,2,3]);
INSERT INTO vector_casts VALUES (2, ARRAY[1.5,2.5,3.5]::real[]);
INSERT INTO vector_casts VALUES (3, ARRAY[0.1,0.2,0.3]::float8[]);
INSERT INTO vector_casts VALUES (4, ARRAY[0.1,0.2,0.3]::numeric[]);
INSERT INTO vector_casts VALUES (5, '[4,5,6]'::vector);
INSERT INTO vector_casts SELECT 6, '[7,8]'::vector || '[9]'::vector;
SELECT * FROM vector_casts ORDER BY id;
INSERT INTO vector_casts VALUES (7, ARRAY[1,2]);
\echo :SQLSTATE
INSERT INTO vector_casts VALUES (8, ARRAY[1,2,3,4]::real[]);
\echo :SQLSTATE
INSERT INTO vector_casts VALUES (9, ARRAY[1,2]::float8[]);
\echo :SQLSTATE
INSERT INTO vector_casts VALUES (10, ARRAY[1,2]::numeric[]);
\echo :SQLSTATE
INSERT INTO vector_casts VALUES (11, '[1,2]'::vector);
\echo :SQLSTATE
UPDATE vector_casts SET v = subvector(v, 1, 2) WHERE id = 1;
\echo :SQLSTATE
UPDATE vector_casts SET v = ARRAY[9,9,9] WHERE id = 1;
SELECT v FROM vector_casts WHERE id = 1;
-- Explicit length coercion.
SELECT '[1,2,3]'::vector::vector(3) AS same;
SELECT '[1,2,3]'::vector::vector(2);
\echo :SQLSTATE
SELECT '[1,2,3]'::vector(3)::vector(4);
\echo :SQLSTATE
SELECT CAST(v AS vector(2)) FROM vector_casts WHERE id = 1;
\echo :SQLSTATE
-- A plain vector column takes any dimension.
ALTER TABLE vector_casts ALTER COLUMN v TYPE vector;
INSERT INTO vector_casts VALUES (12, ARRAY[1]), (13, ARRAY[1,2,3,4,5]);
SELECT id, vector_dims(v) FROM vector_casts WHERE id > 10 ORDER BY id;
-- Narrowing back checks every row.
ALTER TABLE vector_casts ALTER COLUMN v TYPE vector(3);
\echo :SQLSTATE
DELETE FROM vector_casts WHERE id > 10;
ALTER TABLE vector_casts ALTER COLUMN v TYPE vector(3);
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'vector_casts'::regclass AND attname = 'v';
-- And to real[].
ALTER TABLE vector_casts ALTER COLUMN v TYPE real[];
SELECT id, v FROM vector_casts ORDER BY id;
ALTER TABLE vector_casts ALTER COLUMN v TYPE vector(3);
SELECT id, v FROM vector_casts ORDER BY id;
DROP TABLE vector_casts;
