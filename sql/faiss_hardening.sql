-- Adversarial inputs (issue 9): each of these crashed the server, hung it,
-- returned wrong rows or crossed a privilege before benzer 0.1.1. The
-- numbers refer to the issue's list.
SET client_min_messages = warning;
CREATE FUNCTION rv(seed int, dim int) RETURNS vector LANGUAGE sql IMMUTABLE AS $$
  SELECT array(SELECT 2 * (h - floor(h)) - 1
               FROM (SELECT sin(seed * 12.9898 + j * 78.233) * 43758.5453 AS h
                     FROM generate_series(1, dim) j) s)::vector $$;
CREATE TABLE h16 (id int, v vector(16), c int, ia int4[], t text);
INSERT INTO h16 SELECT i, rv(i, 16), i % 5, ARRAY[i % 3, i % 7], CASE WHEN i % 2 = 0 THEN 'winter' ELSE 'summer' END
FROM generate_series(1, 600) i;
\set VERBOSITY terse

-- 1-3, 12, 20: factory strings Faiss misuses are refused at CREATE INDEX,
-- on an empty table too, and at ALTER INDEX ... SET (22023).
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'HNSW0');
\echo :SQLSTATE
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'HNSW1');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'PQ8x0');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'IVF16,PQ8x0');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'OPQ4_0,Flat');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'NSG0');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'NSG2');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'NSG32');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'PCA0,Flat');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'RR0,Flat');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'IVF99999999999,Flat');
CREATE INDEX ON h16 USING faiss (v) WITH (factory = 'OPQ3,Flat');
CREATE TABLE empty16 (v vector(16));
CREATE INDEX ON empty16 USING faiss (v) WITH (factory = 'HNSW0');
\echo :SQLSTATE
CREATE INDEX e_idx ON empty16 USING faiss (v) WITH (factory = 'HNSW8');
ALTER INDEX e_idx SET (factory = 'NSG2');
\echo :SQLSTATE
ALTER INDEX e_idx SET (factory = 'HNSW0');
-- So an INSERT into the empty table and autovacuum's merge never see them.
INSERT INTO empty16 SELECT rv(i, 16) FROM generate_series(1, 600) i;
VACUUM empty16;
SELECT factory, rows, pending_rows FROM benzer_index_info('e_idx');

-- 4: a 4-bit PQ index on many equal vectors, more than 20 rows asked.
CREATE TABLE dup (id int, v vector(16));
INSERT INTO dup SELECT i, CASE i % 3 WHEN 0 THEN array_fill(0.5::real, ARRAY[16])::vector
                                      WHEN 1 THEN array_fill(0.25::real, ARRAY[16])::vector
                                      ELSE rv(i, 16) END
FROM generate_series(1, 5000) i;
CREATE INDEX ON dup USING faiss (v) WITH (factory = 'PQ8x4fs');
SELECT count(*) FROM (SELECT id FROM dup ORDER BY v <-> array_fill(0.5::real, ARRAY[16])::vector LIMIT 1000) s;

-- 5, 6: vectors whose squared norm overflows float are refused, at
-- CREATE INDEX, at INSERT and as queries (22003); large but finite norms
-- are indexed and found.
CREATE TABLE huge (id int, v vector(16), c int);
INSERT INTO huge SELECT i, rv(i, 16), i % 5 FROM generate_series(1, 2000) i;
INSERT INTO huge VALUES (0, array_fill(1e20::real, ARRAY[16])::vector, 3);
CREATE INDEX ON huge USING faiss (v, c) WITH (factory = 'IVF16,Flat');
\echo :SQLSTATE
DELETE FROM huge WHERE id = 0;
CREATE INDEX huge_idx ON huge USING faiss (v, c) WITH (factory = 'IVF16,Flat');
INSERT INTO huge VALUES (0, array_fill(1e20::real, ARRAY[16])::vector, 3);
\echo :SQLSTATE
SELECT id FROM huge ORDER BY v <-> array_fill(1e20::real, ARRAY[16])::vector LIMIT 2;
\echo :SQLSTATE
INSERT INTO huge SELECT 5000 + i, array_fill(1e13::real, ARRAY[16])::vector, 3 FROM generate_series(1, 5) i;
SELECT benzer_index_merge('huge_idx');
SELECT count(*) FROM (SELECT id FROM huge WHERE c = 3 ORDER BY v <-> rv(1, 16) LIMIT 3000) s;
SELECT count(*) FROM benzer_batch_search('huge_idx', ARRAY[rv(1, 16)], 1000, '{"c": 3}');
CREATE INDEX huge_pq ON huge USING faiss (v) WITH (factory = 'PQ8np');
SELECT count(*) FROM (SELECT id FROM huge ORDER BY v <-> rv(1, 16) LIMIT 3000) s;
SELECT count(*) FROM (SELECT id FROM huge ORDER BY v <-> array_fill(1e13::real, ARRAY[16])::vector LIMIT 2) s;
DROP INDEX huge_pq;
VACUUM huge;

-- 7: a merge that cannot work is a WARNING, and VACUUM completes.
CREATE TABLE untyped (id int, v vector);
CREATE INDEX untyped_idx ON untyped USING faiss (v) WITH (factory = 'PQ3');
INSERT INTO untyped SELECT i, rv(i, 16) FROM generate_series(1, 1200) i;
VACUUM untyped;
SELECT pending_rows, rows FROM benzer_index_info('untyped_idx');
SELECT count(*) FROM (SELECT id FROM untyped ORDER BY v <-> rv(3, 16) LIMIT 5) s;

-- 9: a NULL element on the right of @> is never found: no row matches.
CREATE INDEX h16_filters ON h16 USING faiss (v, ia, c, t);
SELECT count(*) FROM (SELECT id FROM h16 WHERE ia @> '{1,NULL}' ORDER BY v <-> rv(1, 16) LIMIT 100) s;
SELECT count(*) FROM (SELECT id FROM h16 WHERE ia @> '{NULL}' ORDER BY v <-> rv(1, 16) LIMIT 100) s;
SELECT count(*) FROM (SELECT id FROM h16 WHERE ia && '{1,NULL}' ORDER BY v <-> rv(1, 16) LIMIT 1000) s;
SELECT count(*) FROM h16 WHERE ia && '{1,NULL}';

-- 10: IN / = ANY under a nondeterministic collation stays above the scan.
CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
SELECT count(*) FROM (SELECT id FROM h16 WHERE t COLLATE ci IN ('WINTER', 'xyz') ORDER BY v <-> rv(1, 16) LIMIT 1000) s;
SELECT count(*) FROM (SELECT id FROM h16 WHERE t = ANY (ARRAY['WINTER', 'x'] COLLATE ci) ORDER BY v <-> rv(1, 16) LIMIT 1000) s;
CREATE TABLE cit (v vector(4), t text COLLATE ci);
CREATE INDEX ON cit USING faiss (v, t);
\echo :SQLSTATE

-- 11: HNSW graphs leave rows unreachable; the scan still finds every one.
CREATE TABLE g (id int, v vector(16));
INSERT INTO g SELECT i, rv(i, 16) FROM generate_series(1, 3000) i;
CREATE INDEX g_idx ON g USING faiss (v) WITH (factory = 'HNSW8,SQ4');
SELECT count(*) FROM (SELECT id FROM g ORDER BY v <-> rv(7, 16)) s;
SELECT count(*) FROM (SELECT id FROM g WHERE id = ANY (ARRAY[5, 77, 1500, 2999, 3000, 12])
                      ORDER BY v <-> rv(7, 16) LIMIT 5) s;
DROP INDEX g_idx;
CREATE INDEX ON g USING faiss (v) WITH (factory = 'HNSW32_PQ8');
SELECT count(*) FROM (SELECT id FROM g WHERE id <= 630 ORDER BY v <-> rv(7, 16)) s;

-- 20: no faiss path without ORDER BY, whatever the planner settings.
SET enable_seqscan = off;
SELECT count(*) FROM g;
RESET enable_seqscan;

-- 20: a rolled-back first row no longer fixes an untyped index's dimension
-- for good: VACUUM resets it.
CREATE TABLE dims (id int, v vector);
CREATE INDEX dims_idx ON dims USING faiss (v);
BEGIN;
INSERT INTO dims VALUES (1, '[1,2,3]');
ROLLBACK;
INSERT INTO dims VALUES (2, '[1,2,3,4,5]');
\echo :SQLSTATE
VACUUM dims;
INSERT INTO dims VALUES (2, '[1,2,3,4,5]');
SELECT id FROM dims ORDER BY v <-> '[1,2,3,4,5]' LIMIT 1;

-- 13-16: privileges.
CREATE TABLE secret (id int, v vector(4), salary int);
INSERT INTO secret SELECT i, rv(i, 4), i * 1000 FROM generate_series(1, 300) i;
CREATE INDEX secret_rich ON secret USING faiss (v) WHERE salary > 150000;
CREATE INDEX secret_all ON secret USING faiss (v);
CREATE TABLE km (id int, v vector(4));
INSERT INTO km SELECT i, rv(i, 4) FROM generate_series(1, 100) i;
CREATE ROLE benzer_snoop;
GRANT SELECT (id, v) ON secret TO benzer_snoop;
GRANT SELECT ON km TO benzer_snoop;
SET ROLE benzer_snoop;
SELECT benzer_index_merge('secret_rich');
\echo :SQLSTATE
SELECT count(*) FROM benzer_batch_search('secret_rich', ARRAY[rv(1, 4)], 10);
\echo :SQLSTATE
SELECT count(*) FROM benzer_batch_search('secret_all', ARRAY[rv(1, 4)], 10);
SELECT rows FROM benzer_index_info('secret_rich');
\echo :SQLSTATE
SELECT index, rows, factory FROM benzer_indexes() WHERE "table" = 'secret'::regclass ORDER BY 1;
RESET ROLE;
SELECT index, rows, factory FROM benzer_indexes() WHERE "table" = 'secret'::regclass ORDER BY 1;
SELECT count(*) FROM benzer_kmeans('DELETE FROM km WHERE id > 90 RETURNING id, v', 3);
\echo :SQLSTATE
SELECT count(*) FROM benzer_kmeans('WITH d AS (DELETE FROM km WHERE id > 90 RETURNING id, v) SELECT * FROM d', 3);
SELECT count(*) FROM benzer_kmeans('SELECT id, v FROM km FOR UPDATE', 3);
CREATE FUNCTION km_delete() RETURNS int LANGUAGE sql VOLATILE AS 'DELETE FROM km WHERE id = 1 RETURNING id';
SELECT count(*) FROM benzer_kmeans('SELECT km_delete(), v FROM km', 3);
\echo :SQLSTATE
SELECT count(*) FROM km;
SELECT count(*) FROM benzer_kmeans('SELECT id, v FROM km', 3);

-- 18: batch search memory is bounded by work_mem.
SET work_mem = '64kB';
SELECT count(*) FROM benzer_batch_search('secret_all', ARRAY[rv(1, 4)], 1000);
\echo :SQLSTATE
RESET work_mem;
SELECT count(*) FROM benzer_batch_search('secret_all', ARRAY[rv(1, 4), rv(2, 4)], 300);

-- A zero query under cosine has no direction: rows still come back.
CREATE TABLE zc (id int, v vector(16));
INSERT INTO zc SELECT i, rv(i, 16) FROM generate_series(1, 400) i;
CREATE INDEX ON zc USING faiss (v vector_cosine_ops) WITH (factory = 'IVF4,PQ4x4fs');
SELECT count(*) FROM (SELECT id FROM zc ORDER BY v <=> array_fill(0::real, ARRAY[16])::vector LIMIT 10) s;

DROP OWNED BY benzer_snoop;
DROP ROLE benzer_snoop;
