-- Every bad input to a faiss index is a clear ERROR with a proper SQLSTATE,
-- and the server keeps running.
SET client_min_messages = warning;
\set VERBOSITY default
CREATE TABLE t (id int, v vector(8));
INSERT INTO t SELECT i, array(SELECT (i * j) % 17 FROM generate_series(1, 8) j)::real[]
FROM generate_series(1, 300) i;

-- Factory strings Faiss cannot build or benzer cannot use.
CREATE INDEX ON t USING faiss (v) WITH (factory = 'Bogus12');
\echo :SQLSTATE
CREATE INDEX ON t USING faiss (v) WITH (factory = 'IVF16,PQ3');
\echo :SQLSTATE
CREATE INDEX ON t USING faiss (v) WITH (factory = 'IVF16,PQ16');
\echo :SQLSTATE
CREATE INDEX ON t USING faiss (v) WITH (factory = 'IDMap,Flat');
\echo :SQLSTATE
CREATE INDEX ON t USING faiss (v) WITH (factory = 'IVF16,Flat;DROP TABLE t');
\echo :SQLSTATE
CREATE INDEX ON t USING faiss (v) WITH (factory = 'RFlat,IVF16,Flat');
\echo :SQLSTATE
CREATE INDEX ON t USING faiss (v) WITH (factory = 'IVF,Flat');
\echo :SQLSTATE
CREATE INDEX ON t USING faiss (v) WITH (factory = 'BHNSW32');
\echo :SQLSTATE
-- More IVF lists than rows to train them.
CREATE INDEX ON t USING faiss (v) WITH (factory = 'IVF1000,Flat');
\echo :SQLSTATE
-- 8-bit PQ needs 256 training rows per sub-quantizer codebook.
CREATE TABLE small AS SELECT * FROM t WHERE id <= 100;
CREATE INDEX ON small USING faiss (v) WITH (factory = 'PQ4');
\echo :SQLSTATE
-- Unknown or out-of-range options.
CREATE INDEX ON t USING faiss (v) WITH (nlist = 10);
\echo :SQLSTATE
CREATE INDEX ON t USING faiss (v) WITH (nprobe = -1);
\echo :SQLSTATE
CREATE INDEX ON t USING faiss (v) WITH (k_factor = 'many');
\echo :SQLSTATE
-- A faiss index must start with the vector (integers are filter columns).
CREATE TABLE ints (i int);
CREATE INDEX ON ints USING faiss (i);
\echo :SQLSTATE

-- Mixed dimensions: at build, and on insert.
CREATE TABLE mixed (v vector);
INSERT INTO mixed VALUES ('[1,2,3]'), ('[1,2]');
CREATE INDEX ON mixed USING faiss (v);
\echo :SQLSTATE
DELETE FROM mixed WHERE vector_dims(v) = 2;
CREATE INDEX mixed_idx ON mixed USING faiss (v);
INSERT INTO mixed VALUES ('[1,2,3,4]');
\echo :SQLSTATE

-- Too little memory to build.
SET maintenance_work_mem = '1MB';
CREATE TABLE big AS SELECT i AS id, array_fill(i::real, ARRAY[512])::vector(512) AS v
  FROM generate_series(1, 1000) i;
CREATE INDEX ON big USING faiss (v);
\echo :SQLSTATE
RESET maintenance_work_mem;

-- Rows wider than a page are indexed (their vectors stored out of line).
CREATE TABLE wide (id int, v vector(3000));
CREATE INDEX wide_v_idx ON wide USING faiss (v);
INSERT INTO wide SELECT i, array_fill(i::real, ARRAY[3000])::vector FROM generate_series(1, 3) i;
SET enable_seqscan = off;
SELECT id FROM wide ORDER BY v <-> array_fill(2.2::real, ARRAY[3000])::vector LIMIT 2;
RESET enable_seqscan;
INSERT INTO wide VALUES (4, array_fill(1::real, ARRAY[2999])::vector);
\echo :SQLSTATE

-- A build cancelled by statement_timeout is a cancel, not a crash.
CREATE TABLE slow AS SELECT i AS id,
  array(SELECT sin(i * j) FROM generate_series(1, 64) j)::vector(64) AS v
  FROM generate_series(1, 40000) i;
SET statement_timeout = '200ms';
CREATE INDEX ON slow USING faiss (v) WITH (factory = 'IVF1000,PQ16np');
\echo :SQLSTATE
RESET statement_timeout;
SELECT 1 AS server_still_running;

-- Inspection functions on things that are not faiss indexes.
CREATE INDEX t_btree ON t (id);
SELECT * FROM benzer_index_info('t_btree');
\echo :SQLSTATE
SELECT benzer_index_merge('t');
\echo :SQLSTATE
