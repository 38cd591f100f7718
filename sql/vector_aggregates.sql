-- vector_aggregates: avg(vector) and sum(vector), serial and parallel.
--
-- After each error, \echo :SQLSTATE shows its SQLSTATE.

SELECT avg(v), sum(v) FROM (VALUES ('[1,2,3]'::vector), ('[4,5,6]')) AS t(v);
SELECT avg(v), sum(v) FROM (VALUES ('[1,-2]'::vector), ('[2,2]'), ('[4,4]')) AS t(v);
-- One row: the row itself.
SELECT avg(v), sum(v) FROM (VALUES ('[-1.5,1e-45,3.4028235e38]'::vector)) AS t(v);
-- NULLs are skipped; no rows (or only NULLs) give NULL.
SELECT avg(v), sum(v) FROM (VALUES ('[1,2]'::vector), (NULL), ('[3,4]')) AS t(v);
SELECT avg(v) IS NULL AS avg_null, sum(v) IS NULL AS sum_null
FROM (VALUES (NULL::vector), (NULL)) AS t(v);
SELECT avg(v) IS NULL AS avg_null, sum(v) IS NULL AS sum_null
FROM (VALUES ('[1]'::vector)) AS t(v) WHERE false;
-- avg accumulates in double precision: the mean of 0.1, 0.2 and 0.3 (as
-- float4) rounds to 0.2, and 3.4028235e38 + 3.4028235e38 does not overflow.
SELECT avg(v) FROM (VALUES ('[0.1]'::vector), ('[0.2]'), ('[0.3]')) AS t(v);
SELECT avg(v) FROM (VALUES ('[3.4028235e38,-3.4028235e38]'::vector),
                           ('[3.4028235e38,-3.4028235e38]')) AS t(v);
-- sum is float4 arithmetic and reports overflow.
SELECT sum(v) FROM (VALUES ('[3.4028235e38]'::vector), ('[3.4028235e38]')) AS t(v);
\echo :SQLSTATE
-- Vectors of different dimensions.
SELECT avg(v) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) AS t(v);
\echo :SQLSTATE
SELECT sum(v) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) AS t(v);
\echo :SQLSTATE
-- GROUP BY, FILTER, ORDER BY inside the aggregate, window functions.
SELECT g, avg(v), sum(v), count(*)
FROM (VALUES (1, '[1,1]'::vector), (1, '[3,3]'), (2, '[10]'), (2, '[20]'), (2, '[30]')) AS t(g, v)
GROUP BY g ORDER BY g;
SELECT avg(v) FILTER (WHERE i > 1) AS avg_filtered, sum(v ORDER BY i DESC) AS sum_ordered
FROM (VALUES (1, '[1,2]'::vector), (2, '[3,4]'), (3, '[5,6]')) AS t(i, v);
SELECT i, sum(v) OVER (ORDER BY i) AS running_sum, avg(v) OVER (ORDER BY i) AS running_avg
FROM (VALUES (1, '[1,2]'::vector), (2, '[3,4]'), (3, '[5,6]')) AS t(i, v)
ORDER BY i;
-- 16000 dimensions.
SELECT vector_dims(avg(v)) AS avg_dims, vector_dims(sum(v)) AS sum_dims,
       avg(v) = array_fill(2, ARRAY[16000])::vector AS avg_ok,
       sum(v) = array_fill(6, ARRAY[16000])::vector AS sum_ok
FROM (SELECT array_fill(i, ARRAY[16000])::vector AS v FROM generate_series(1, 3) AS i) AS t;

-- Parallel aggregation ------------------------------------------------------

-- Integer-valued vectors, so every partial sum is exact and the parallel
-- result must equal the serial one bit for bit whatever the split.
CREATE TABLE vector_agg (id int, g int, v vector(3)) WITH (parallel_workers = 2);
INSERT INTO vector_agg
SELECT i, i % 4, ARRAY[i % 7, (i % 11) - 5, (i * i) % 101]::vector
FROM generate_series(1, 5000) AS i;
ANALYZE vector_agg;
-- The serial result.
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE serial_total AS SELECT avg(v) AS avg, sum(v) AS sum FROM vector_agg;
CREATE TEMP TABLE serial_groups AS
SELECT g, avg(v) AS avg, sum(v) AS sum, count(*) AS n FROM vector_agg GROUP BY g;
CREATE TEMP TABLE serial_filtered AS
SELECT avg(v) AS avg, sum(v) AS sum FROM vector_agg WHERE id <= 3;
SELECT avg, sum FROM serial_total;
-- Force a parallel plan.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT avg(v), sum(v) FROM vector_agg;
SELECT avg(v), sum(v) FROM vector_agg;
SELECT p.avg = s.avg AS avg_equal, vector_send(p.avg) = vector_send(s.avg) AS avg_same_bytes,
       p.sum = s.sum AS sum_equal, vector_send(p.sum) = vector_send(s.sum) AS sum_same_bytes
FROM (SELECT avg(v) AS avg, sum(v) AS sum FROM vector_agg) AS p, serial_total AS s;
-- With grouping.
EXPLAIN (COSTS OFF) SELECT g, avg(v), sum(v), count(*) FROM vector_agg GROUP BY g;
SELECT p.g, p.n, p.avg = s.avg AS avg_equal, p.sum = s.sum AS sum_equal
FROM (SELECT g, avg(v) AS avg, sum(v) AS sum, count(*) AS n FROM vector_agg GROUP BY g) AS p
JOIN serial_groups AS s USING (g, n)
ORDER BY g;
-- Most partial states empty: only 3 rows match.
SELECT p.avg, p.sum, p.avg = s.avg AS avg_equal, p.sum = s.sum AS sum_equal
FROM (SELECT avg(v) AS avg, sum(v) AS sum FROM vector_agg WHERE id <= 3) AS p, serial_filtered AS s;
-- No row at all.
SELECT avg(v) IS NULL AS avg_null, sum(v) IS NULL AS sum_null FROM vector_agg WHERE id < 0;
-- Workers only: every row goes through a worker's partial aggregate and the
-- leader's combine step.
SET parallel_leader_participation = off;
SELECT p.avg = s.avg AS avg_equal, p.sum = s.sum AS sum_equal
FROM (SELECT avg(v) AS avg, sum(v) AS sum FROM vector_agg) AS p, serial_total AS s;
-- Different dimensions are still detected in parallel plans. Whether a
-- worker's transition step or the leader's combine step sees them first
-- depends on the split, so only the SQLSTATE is shown.
INSERT INTO vector_agg SELECT 0, 0, NULL;
ALTER TABLE vector_agg ALTER COLUMN v TYPE vector;
UPDATE vector_agg SET v = '[1,2]' WHERE id = 0;
\set VERBOSITY sqlstate
SELECT avg(v) FROM vector_agg;
SELECT sum(v) FROM vector_agg;
\set VERBOSITY default
RESET parallel_leader_participation;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE vector_agg;

-- The support functions, called directly ------------------------------------

-- The avg(vector) state is {count, sum_1, ..., sum_n}; '{0}' is empty.
SELECT vector_accum('{0}', '[1,2]') AS first, vector_accum('{1,1,2}', '[3,4]') AS second;
SELECT vector_combine('{0}', '{2,4,6}') AS empty_left, vector_combine('{2,4,6}', '{0}') AS empty_right,
       vector_combine('{1,1,2}', '{2,3,4}') AS both, vector_combine('{0}', '{0}') AS both_empty;
SELECT vector_avg('{2,4,6}') AS avg, vector_avg('{0}') IS NULL AS empty_is_null;
SELECT vector_accum('{1,1,2}', '[1,2,3]');
\echo :SQLSTATE
SELECT vector_combine('{1,1,2}', '{1,1,2,3}');
\echo :SQLSTATE
SELECT vector_avg('{}');
\echo :SQLSTATE
SELECT vector_avg('{{1,2},{3,4}}');
\echo :SQLSTATE
SELECT vector_avg('{1,NULL}');
\echo :SQLSTATE
SELECT vector_accum('{1,NULL}', '[1]');
\echo :SQLSTATE
SELECT vector_combine('{1,1}', '{{1,1}}');
\echo :SQLSTATE
-- A state whose mean is not a finite float4 is rejected, never turned into
-- a vector holding NaN or infinity.
SELECT vector_avg('{1,1e39}');
\echo :SQLSTATE
SELECT vector_avg('{1,Infinity}');
\echo :SQLSTATE
SELECT vector_avg('{1,NaN}');
\echo :SQLSTATE
SELECT vector_avg('{NaN,1}');
\echo :SQLSTATE
-- The final step refuses a state array of more than 16 000 dimensions.
SELECT vector_avg(array_agg(n)) FROM generate_series(1, 16002) n;
-- Combining: an empty side gives the other; both empty stay empty (workers
-- that saw no rows); a side past 16 000 dimensions is refused.
SELECT vector_combine('{0}', '{2,2,4}'), vector_combine('{1,1,2}', '{0}'),
       vector_combine('{0}', '{0}');
SELECT vector_combine('{0}', (SELECT array_agg(n) FROM generate_series(1, 16002) n));
SELECT vector_combine('{}', '{0}');
