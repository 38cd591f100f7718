-- sparsevec: pgvector's sparse vector. Text and binary forms, typmod,
-- casts, distances (merged over the non-zero elements), norms, btree.

SELECT '{1:1.5,3:2}/5'::sparsevec;
SELECT ' { 1 : 1.5 , 3 : 2 } / 5 '::sparsevec;
SELECT '{}/3'::sparsevec;
SELECT '{3:2,1:1.5}/5'::sparsevec;       -- indexes in ascending order only
SELECT '{1:0,2:1}/3'::sparsevec;         -- zeros are not stored
SELECT '{1:0.1,2:123456789}/2'::sparsevec;
SELECT '{1:1,1:2}/3'::sparsevec;
\echo :SQLSTATE
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

SELECT '{1:1}/3'::sparsevec < '{1:2}/3', '{1:1}/3'::sparsevec = '{1:1}/3',
       '{2:1}/3'::sparsevec > '{1:1}/3', '{1:1}/3'::sparsevec < '{1:1}/4',
       '{1:-1}/3'::sparsevec < '{}/3';
CREATE TABLE sparse_items (id int, s sparsevec(5));
INSERT INTO sparse_items VALUES (1, '{1:1}/5'), (2, '{2:1}/5'), (3, '{1:1,5:3}/5'), (4, NULL), (5, '{1:1}/5');
CREATE INDEX ON sparse_items (s);
SELECT id, s FROM sparse_items ORDER BY s, id;
SELECT id FROM sparse_items ORDER BY s <-> '{1:1,5:2}/5' LIMIT 2;
DROP TABLE sparse_items;
