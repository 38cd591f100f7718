-- sparsevec: pgvector's sparse vector. Text and binary forms, typmod,
-- casts, distances (merged over the non-zero elements), norms, btree.

SELECT '{1:1.5,3:2}/5'::sparsevec;
SELECT ' { 1 : 1.5 , 3 : 2 } / 5 '::sparsevec;
SELECT '{}/3'::sparsevec;
SELECT '{3:2,1:1.5}/5'::sparsevec;       -- pairs in any order, printed sorted
SELECT '{1:0,2:1}/3'::sparsevec;         -- zeros are not stored
SELECT '{1:0.1,2:123456789}/2'::sparsevec;
SELECT '{1:1,1:2}/3'::sparsevec;
\echo :SQLSTATE
SELECT '{1:1e-46,2:1}/2'::sparsevec;     -- underflow is an error, as in pgvector
SELECT '{2147483648:1}/3'::sparsevec;
SELECT '{}/9223372036854775808'::sparsevec;
SELECT '{}/-9223372036854775809'::sparsevec;
SELECT '{0:1}/3'::sparsevec;
SELECT '{4:1}/3'::sparsevec;
SELECT '{1:1}/0'::sparsevec;
SELECT '{1:1}/1000000001'::sparsevec;
SELECT '{1:NaN}/3'::sparsevec;
SELECT '{1:Infinity}/3'::sparsevec;
SELECT '{1:1e39}/3'::sparsevec;
SELECT '{1:1'::sparsevec;
\echo :SQLSTATE
SELECT '{1:1}'::sparsevec;
SELECT '[1,2]'::sparsevec;
SELECT '{1:1}/3 x'::sparsevec;
SELECT '{1:1}/1000000000'::sparsevec;

SELECT '{1:1}/3'::sparsevec(3);
SELECT '{1:1}/3'::sparsevec(4);
SELECT '{1:1}/3'::sparsevec(0);
SELECT sparsevec_send('{1:1.5,3:2}/5'::sparsevec);

SELECT '[0,1.5,0,2]'::vector::sparsevec;
SELECT '[0,1.5,0,2]'::halfvec::sparsevec;
SELECT '{2:1.5,4:2}/4'::sparsevec::vector;
SELECT '{1:1}/20000'::sparsevec::vector;
SELECT '{2:1.5,4:3.5}/5'::sparsevec::halfvec, '{2:1.5,4:3.5}/5'::sparsevec::halfvec(5);
SELECT '{1:65520}/1'::sparsevec::halfvec;
SELECT '{}/16001'::sparsevec::halfvec;
-- Arrays: their non-zero elements.
SELECT ARRAY[1,0,2,0,3,0]::sparsevec, ARRAY[1.0,0,2]::sparsevec,
       '{0,0.5}'::real[]::sparsevec, '{0,0.5}'::float8[]::sparsevec(2);
SELECT '{1,0,2}'::real[]::sparsevec(2);
SELECT '{NULL}'::real[]::sparsevec;
SELECT '{NaN}'::real[]::sparsevec;
SELECT '{}'::real[]::sparsevec;
SELECT '{{1}}'::real[]::sparsevec;
SELECT '{0,1.5}'::numeric[]::sparsevec;
SELECT sparsevec_cmp('{1:1}/3', '{1:1}/3'), sparsevec_cmp('{1:1}/3', '{}/3'),
       sparsevec_cmp('{1:1,2:2}/2', '{1:1,2:2,3:3}/3');

SELECT l2_distance('{1:3}/2'::sparsevec, '{2:4}/2'), '{1:3}/2'::sparsevec <-> '{2:4}/2';
SELECT sparsevec_l2_squared_distance('{1:3}/2', '{2:4}/2');
SELECT inner_product('{1:1,2:2,3:3}/3'::sparsevec, '{2:4,3:5}/3'), '{1:1,2:2}/3'::sparsevec <#> '{2:4}/3';
SELECT cosine_distance('{1:1,2:2}/3'::sparsevec, '{1:2,2:4}/3'), '{1:1}/2'::sparsevec <=> '{1:-1}/2';
SELECT cosine_distance('{}/2'::sparsevec, '{1:1}/2');
SELECT l1_distance('{1:1,3:-2}/3'::sparsevec, '{2:1,3:2}/3'), '{1:1}/2'::sparsevec <+> '{2:1}/2';
SELECT l2_distance('{1:1}/2'::sparsevec, '{1:1}/3');
-- Distances agree with the dense vector's.
SELECT l2_distance('{1:1.5,3:2,7:-1}/8'::sparsevec, '{2:1,3:0.5,8:4}/8')
     = l2_distance('[1.5,0,2,0,0,0,-1,0]'::vector, '[0,1,0.5,0,0,0,0,4]') AS l2,
       inner_product('{1:1.5,3:2,7:-1}/8'::sparsevec, '{2:1,3:0.5,7:4}/8')
     = inner_product('[1.5,0,2,0,0,0,-1,0]'::vector, '[0,1,0.5,0,0,0,4,0]') AS ip;
SELECT l2_norm('{1:3,2:4}/5'::sparsevec), l2_normalize('{1:3,2:4}/5'::sparsevec),
       l2_normalize('{}/5'::sparsevec);
-- Elements that normalize to zero in float4 are dropped.
SELECT l2_normalize('{1:3e38,2:1e-37}/2'::sparsevec);
SELECT vector_dims('{1:1}/7'::sparsevec), vector_dims('{}/1000000000'::sparsevec);
-- Distances sum in float4, as on vector: overflow is infinity.
SELECT inner_product('{1:3e38}/1'::sparsevec, '{1:3e38}/1'),
       l1_distance('{1:3e38}/1'::sparsevec, '{1:-3e38}/1'),
       cosine_distance('{1:3e38}/1'::sparsevec, '{1:3e38}/1');

SELECT '{1:1}/3'::sparsevec < '{1:2}/3', '{1:1}/3'::sparsevec = '{1:1}/3',
       '{2:1}/3'::sparsevec > '{1:1}/3', '{1:1}/3'::sparsevec < '{1:1}/4',
       '{1:-1}/3'::sparsevec < '{}/3';
CREATE TABLE sparse_items (id int, s sparsevec(5));
INSERT INTO sparse_items VALUES (1, '{1:1}/5'), (2, '{2:1}/5'), (3, '{1:1,5:3}/5'), (4, NULL), (5, '{1:1}/5');
CREATE INDEX ON sparse_items (s);
SELECT id, s FROM sparse_items ORDER BY s, id;
SELECT id FROM sparse_items ORDER BY s <-> '{1:1,5:2}/5' LIMIT 2;
DROP TABLE sparse_items;

-- A faiss index on sparsevec (keys stored dense: at most 16 000 dimensions).
CREATE TABLE sparse_items (id int PRIMARY KEY, s sparsevec(6));
INSERT INTO sparse_items
    SELECT i, format('{%s:%s,%s:%s}/6', 1 + i % 3, 1 + i % 7, 4 + i % 3, -(i % 5))::sparsevec
    FROM generate_series(1, 300) i;
INSERT INTO sparse_items VALUES (0, '{}/6'), (301, NULL);
CREATE INDEX sparse_items_l2 ON sparse_items USING faiss (s);
CREATE INDEX sparse_items_cos ON sparse_items USING faiss (s sparsevec_cosine_ops);
CREATE INDEX sparse_items_ip ON sparse_items USING faiss (s sparsevec_ip_ops);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM sparse_items ORDER BY s <-> '{1:3,5:-1}/6' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM sparse_items ORDER BY s <=> '{1:3,5:-1}/6' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM sparse_items ORDER BY s <#> '{1:3,5:-1}/6' LIMIT 5;
-- The index answers what an exact scan answers (distances: the data has ties).
SELECT (SELECT array_agg(round(d::numeric, 4)) FROM
          (SELECT s <-> '{1:3,5:-1}/6' AS d FROM sparse_items ORDER BY s <-> '{1:3,5:-1}/6' LIMIT 10) a)
     = (SELECT array_agg(round(d::numeric, 4)) FROM
          (SELECT (s::vector) <-> '[3,0,0,0,-1,0]' AS d FROM sparse_items WHERE s IS NOT NULL ORDER BY 1 LIMIT 10) b) AS same;
SELECT (SELECT array_agg(round(d::numeric, 4)) FROM
          (SELECT s <#> '{2:1,6:-2}/6' AS d FROM sparse_items ORDER BY s <#> '{2:1,6:-2}/6' LIMIT 10) a)
     = (SELECT array_agg(round(d::numeric, 4)) FROM
          (SELECT (s::vector) <#> '[0,1,0,0,0,-2]' AS d FROM sparse_items WHERE s IS NOT NULL ORDER BY 1 LIMIT 10) b) AS same;
RESET enable_seqscan;
-- Rows inserted after the build are found.
INSERT INTO sparse_items VALUES (1000, '{1:100,6:100}/6');
SELECT id FROM sparse_items ORDER BY s <-> '{1:99,6:99}/6' LIMIT 1;
DROP TABLE sparse_items;
-- Wider sparse vectors are refused with a hint.
CREATE TABLE sparse_wide (s sparsevec);
INSERT INTO sparse_wide VALUES ('{1:1}/20000');
CREATE INDEX ON sparse_wide USING faiss (s);
DROP TABLE sparse_wide;
