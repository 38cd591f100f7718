-- CREATE INDEX ... USING faiss: factories, opclasses, empty tables, NULLs,
-- partial and expression indexes, CONCURRENTLY, REINDEX, unlogged tables.
SET client_min_messages = warning;
SET enable_seqscan = off;

-- Deterministic 16-d test data: 2 000 rows, ids 1..2000.
CREATE TABLE items (id int PRIMARY KEY, cat int, model text, v vector(16));
INSERT INTO items
SELECT i, i % 10, CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END,
       array(SELECT sin(i * j * 0.37) + cos(j * i * 0.11) FROM generate_series(1, 16) j)::real[]
FROM generate_series(1, 2000) i;
INSERT INTO items VALUES (2001, 1, 'odd', NULL);   -- NULL vectors are not indexed

-- The automatic choice for 2 000 rows is Flat.
CREATE INDEX items_auto ON items USING faiss (v);
SELECT factory, auto_factory, metric, dimensions, rows, pending_rows, dead_rows
FROM benzer_index_info('items_auto');

-- The index returns exactly what an exact scan returns for Flat.
SELECT array_agg(id) AS index_top5 FROM
  (SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 42) LIMIT 5) s;
SET enable_indexscan = off; SET enable_seqscan = on;
SELECT array_agg(id) AS exact_top5 FROM
  (SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 42) LIMIT 5) s;
RESET enable_indexscan; SET enable_seqscan = off;
DROP INDEX items_auto;

-- Each opclass with several factory strings.
CREATE INDEX items_ivf ON items USING faiss (v vector_l2_ops) WITH (factory = 'IVF16,Flat', nprobe = 4);
CREATE INDEX items_hnsw ON items USING faiss (v vector_ip_ops) WITH (factory = 'HNSW16', ef_search = 32);
CREATE INDEX items_pq ON items USING faiss (v vector_cosine_ops) WITH (factory = 'IVF8,PQ4np,RFlat', k_factor = 8);
CREATE INDEX items_sq ON items USING faiss (v vector_l2_ops) WITH (factory = 'IVF8,SQ8');
SELECT name, factory, auto_factory, metric, rows, description
FROM (VALUES ('items_ivf'::regclass), ('items_hnsw'), ('items_pq'), ('items_sq')) t(i),
     LATERAL benzer_index_info(i) ORDER BY name;

-- The planner uses them for the matching operator only.
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <#> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 3;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <=> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 3;
-- No ORDER BY: a faiss index cannot serve the query.
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE v = '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]';
DROP INDEX items_ivf, items_hnsw, items_pq, items_sq;

-- Partial indexes per model, and an expression index.
CREATE INDEX items_even ON items USING faiss (v) WHERE model = 'even';
CREATE INDEX items_expr ON items USING faiss ((subvector(v, 1, 8)));
SELECT name, factory, dimensions, rows FROM benzer_index_info('items_even')
UNION ALL SELECT name, factory, dimensions, rows FROM benzer_index_info('items_expr');
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE model = 'even'
  ORDER BY v <-> (SELECT v FROM items WHERE id = 42) LIMIT 3;
SELECT bool_and(id % 2 = 0) AS all_even, count(*) FROM
  (SELECT id FROM items WHERE model = 'even'
   ORDER BY v <-> (SELECT v FROM items WHERE id = 43) LIMIT 20) s;
SELECT id FROM items ORDER BY subvector(v, 1, 8) <-> (SELECT subvector(v, 1, 8) FROM items WHERE id = 7) LIMIT 1;
DROP INDEX items_even, items_expr;

-- CONCURRENTLY and REINDEX.
CREATE INDEX CONCURRENTLY items_cc ON items USING faiss (v) WITH (factory = 'IVF16,Flat');
SELECT factory, rows FROM benzer_index_info('items_cc');
INSERT INTO items SELECT 3000 + id, 0, 'odd', v FROM items WHERE id <= 10;
REINDEX INDEX items_cc;
SELECT factory, rows, pending_rows, generation FROM benzer_index_info('items_cc');
REINDEX INDEX CONCURRENTLY items_cc;
SELECT factory, rows, pending_rows FROM benzer_index_info('items_cc');
DROP INDEX items_cc;

-- An empty table: rows wait as pending rows (searched exactly) until a
-- merge can train the requested structure.
CREATE TABLE later (id int, v vector(4));
CREATE INDEX later_idx ON later USING faiss (v) WITH (factory = 'IVF4,Flat');
SELECT factory, rows, pending_rows, description FROM benzer_index_info('later_idx');
INSERT INTO later SELECT i, ARRAY[i, i % 3, i % 5, 1] FROM generate_series(1, 100) i;
SELECT array_agg(id) FROM (SELECT id FROM later ORDER BY v <-> '[50,2,0,1]' LIMIT 3) s;
SELECT benzer_index_merge('later_idx');
SELECT factory, rows, pending_rows, merges FROM benzer_index_info('later_idx');
SELECT array_agg(id) FROM (SELECT id FROM later ORDER BY v <-> '[50,2,0,1]' LIMIT 3) s;

-- An unlogged table.
CREATE UNLOGGED TABLE scratch (id int, v vector(3));
INSERT INTO scratch SELECT i, ARRAY[i, -i, i % 4] FROM generate_series(1, 500) i;
CREATE INDEX ON scratch USING faiss (v) WITH (factory = 'HNSW8');
SELECT id FROM scratch ORDER BY v <-> '[250,-250,2]' LIMIT 3;

-- ALTER INDEX ... SET changes search defaults at the next scan; RESET goes
-- back to the value the index was built with.
CREATE INDEX items_opts ON items USING faiss (v) WITH (factory = 'IVF16,Flat');
SELECT description FROM benzer_index_info('items_opts');
ALTER INDEX items_opts SET (nprobe = 7);
SELECT description FROM benzer_index_info('items_opts');
ALTER INDEX items_opts RESET (nprobe);
SELECT description FROM benzer_index_info('items_opts');
