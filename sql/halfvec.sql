-- halfvec: pgvector's vector of 2-byte floats. Input and output, typmod,
-- binary form, casts, operators, functions, aggregates, btree and a faiss
-- index on a halfvec column and on a halfvec expression.

-- Input and output ---------------------------------------------------------

SELECT '[1,2,3]'::halfvec;
SELECT '[-1,-2,-3]'::halfvec;
SELECT '[1.,2.,3.]'::halfvec;
SELECT ' [ 1,  2 ,    3  ] '::halfvec;
SELECT '[1.23456]'::halfvec;   -- rounded to the nearest half
SELECT '[65504,-65504,0.00006103515625,5.96e-08]'::halfvec;
SELECT '[65519]'::halfvec;     -- rounds down to 65504
SELECT '[65520]'::halfvec;
\echo :SQLSTATE
SELECT '[1e-8]'::halfvec;      -- underflows to zero
SELECT '[NaN]'::halfvec;
\echo :SQLSTATE
SELECT '[Infinity]'::halfvec;
\echo :SQLSTATE
SELECT '[-Infinity]'::halfvec;
SELECT '[]'::halfvec;
\echo :SQLSTATE
SELECT '[1,2,3'::halfvec;
\echo :SQLSTATE
SELECT '[1,,3]'::halfvec;
SELECT '1,2,3'::halfvec;
SELECT '[1a]'::halfvec;

-- Typmod -----------------------------------------------------------------

SELECT '[1,2,3]'::halfvec(3);
SELECT '[1,2,3]'::halfvec(2);
\echo :SQLSTATE
SELECT '[1,2,3]'::halfvec(3, 2);
SELECT '[1]'::halfvec(0);
SELECT '[1]'::halfvec(16001);
CREATE TABLE half_typmod (v halfvec(3));
INSERT INTO half_typmod VALUES ('[1,2,3]');
INSERT INTO half_typmod VALUES ('[1,2]');
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
    WHERE attrelid = 'half_typmod'::regclass AND attname = 'v';
DROP TABLE half_typmod;

-- Binary form: pgvector's (int16 dim, int16 0, big-endian binary16) --------

SELECT halfvec_send('[1,2,3]'::halfvec);
SELECT halfvec_send('[-0.5,65504]'::halfvec);

-- Casts --------------------------------------------------------------------

SELECT '[1,2,3]'::vector::halfvec;
SELECT '[1.23456]'::vector::halfvec;
SELECT '[65520]'::vector::halfvec;
SELECT '[1,2,3]'::halfvec::vector;
SELECT '[1,2,3]'::halfvec::vector(3);
SELECT '[1,2,3]'::halfvec::vector(2);
SELECT '[1,2,3]'::vector::halfvec(2);
SELECT ARRAY[1,2,3]::halfvec;
SELECT ARRAY[1.5,2.5,3.5]::real[]::halfvec;
SELECT ARRAY[1,2,3]::double precision[]::halfvec;
SELECT ARRAY[1,2,3]::numeric[]::halfvec;
SELECT ARRAY[1,2,3]::halfvec(2);
SELECT ARRAY[1e10]::double precision[]::halfvec;
SELECT ARRAY[1,NULL,3]::halfvec;
SELECT ARRAY[[1,2],[3,4]]::halfvec;
SELECT '[1,2,3]'::halfvec::real[];
SELECT '{1,2,3}'::real[]::halfvec;
-- An implicit cast from vector: a halfvec column takes vector values.
CREATE TABLE half_cast (v halfvec(3));
INSERT INTO half_cast VALUES ('[1,2,3]'::vector);
SELECT v FROM half_cast;
DROP TABLE half_cast;

-- Operators and functions ----------------------------------------------------

SELECT '[1,2,3]'::halfvec + '[4,5,6]';
SELECT '[65504]'::halfvec + '[65504]';
-- Arithmetic beyond a half's range, in pgvector's words.
SELECT '[-65504]'::halfvec - '[65504]';
SELECT '[1e-7]'::halfvec * '[1e-7]';
SELECT sum(v) FROM unnest(ARRAY['[65504]'::halfvec, '[65504]']) v;
SELECT array_fill(0, ARRAY[16000])::halfvec || '[1]';
SELECT '[1,2,3]'::halfvec - '[4,5,6]';
SELECT '[1,2,3]'::halfvec * '[4,5,6]';
SELECT '[1,2,3]'::halfvec || '[4,5]';
SELECT '[1,2]'::halfvec + '[3]';
\echo :SQLSTATE
SELECT l2_distance('[0,0]'::halfvec, '[3,4]');
SELECT '[0,0]'::halfvec <-> '[3,4]';
SELECT halfvec_l2_squared_distance('[0,0]'::halfvec, '[3,4]');
SELECT inner_product('[1,2]'::halfvec, '[3,4]');
SELECT '[1,2]'::halfvec <#> '[3,4]';
SELECT cosine_distance('[1,2]'::halfvec, '[2,4]');
SELECT '[1,1]'::halfvec <=> '[-1,-1]';
SELECT cosine_distance('[0,0]'::halfvec, '[1,1]');
SELECT l1_distance('[0,0]'::halfvec, '[3,4]');
SELECT '[0,0]'::halfvec <+> '[3,-4]';
SELECT l2_distance('[1,2]'::halfvec, '[3]');
SELECT vector_dims('[1,2,3]'::halfvec);
SELECT round(l2_norm('[3,4]'::halfvec)::numeric, 5);
SELECT l2_normalize('[3,4]'::halfvec);
SELECT l2_normalize('[0,0]'::halfvec);
SELECT subvector('[1,2,3,4,5]'::halfvec, 2, 3);
SELECT subvector('[1,2,3,4,5]'::halfvec, 5, 3);
SELECT subvector('[1,2,3,4,5]'::halfvec, 6, 1);

-- Comparison and btree -------------------------------------------------------

SELECT '[1,2,3]'::halfvec < '[1,2,4]', '[1,2,3]'::halfvec <= '[1,2,3]',
       '[1,2,3]'::halfvec = '[1,2,3]', '[1,2,3]'::halfvec <> '[1,2]',
       '[1,2,3]'::halfvec >= '[1,2]', '[1,2,3]'::halfvec > '[1,2,3]';
SELECT halfvec_cmp('[1,2]', '[1,2,3]'), halfvec_cmp('[2]', '[1,2,3]'), halfvec_cmp('[1]', '[1]');
CREATE TABLE half_btree (v halfvec);
INSERT INTO half_btree VALUES ('[1,2,3]'), ('[1,2]'), ('[0,9]'), ('[1,2,3]'), (NULL);
CREATE INDEX ON half_btree (v);
SET enable_seqscan = off;
SELECT v FROM half_btree WHERE v = '[1,2,3]';
SELECT v FROM half_btree ORDER BY v;
RESET enable_seqscan;
SELECT DISTINCT v FROM half_btree ORDER BY v;
DROP TABLE half_btree;

-- Aggregates -----------------------------------------------------------------

SELECT avg(v) FROM (VALUES ('[1,2,3]'::halfvec), ('[3,5,7]')) t(v);
SELECT avg(v) FROM (VALUES ('[1,2,3]'::halfvec), (NULL)) t(v);
SELECT avg(v) FROM (SELECT '[1]'::halfvec WHERE false) t(v);
SELECT sum(v) FROM (VALUES ('[1,2,3]'::halfvec), ('[3,5,7]')) t(v);
SELECT avg(v) FROM (VALUES ('[1,2]'::halfvec), ('[1]')) t(v);
-- The final step refuses a state array of more than 16 000 dimensions.
SELECT halfvec_avg(array_agg(n)) FROM generate_series(1, 16002) n;

-- A faiss index on halfvec ---------------------------------------------------

CREATE TABLE half_items (id int PRIMARY KEY, v halfvec(4), w vector(4));
INSERT INTO half_items
    SELECT i, ARRAY[i % 7, i % 11, i % 13, i % 17]::halfvec,
              ARRAY[i % 7, i % 11, i % 13, i % 17]::vector
    FROM generate_series(1, 300) i;
CREATE INDEX half_items_l2 ON half_items USING faiss (v);
CREATE INDEX half_items_cos ON half_items USING faiss (v halfvec_cosine_ops);
CREATE INDEX half_items_w ON half_items USING faiss ((w::halfvec(4)) halfvec_ip_ops);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM half_items ORDER BY v <-> '[3,3,3,3]' LIMIT 5;
SELECT id, v <-> '[3,3,3,3]' AS d FROM half_items ORDER BY v <-> '[3,3,3,3]', id LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM half_items ORDER BY v <=> '[1,2,3,4]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM half_items ORDER BY w::halfvec(4) <#> '[1,2,3,4]' LIMIT 5;
-- The index answers what an exact scan answers.
-- (Distances, not ids: the data has ties.)
SELECT (SELECT array_agg(round(d::numeric, 4)) FROM
          (SELECT v <-> '[5,1,7,2]' AS d FROM half_items ORDER BY v <-> '[5,1,7,2]' LIMIT 10) a)
     = (SELECT array_agg(round(d::numeric, 4)) FROM
          (SELECT (v::vector) <-> '[5,1,7,2]' AS d FROM half_items ORDER BY 1 LIMIT 10) b) AS same;
SELECT (SELECT array_agg(round(d::numeric, 4)) FROM
          (SELECT v <=> '[1,2,3,4]' AS d FROM half_items ORDER BY v <=> '[1,2,3,4]' LIMIT 10) a)
     = (SELECT array_agg(round(d::numeric, 4)) FROM
          (SELECT cosine_distance(v::vector, '[1,2,3,4]') AS d FROM half_items ORDER BY 1 LIMIT 10) b) AS same;
RESET enable_seqscan;
-- Rows inserted after the build are found.
INSERT INTO half_items VALUES (1000, '[100,100,100,100]', '[100,100,100,100]');
SELECT id FROM half_items ORDER BY v <-> '[99,99,99,99]' LIMIT 1;
DROP TABLE half_items;
