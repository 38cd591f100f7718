-- Recall@10 at default settings on 12 000 rows, for L2, inner product and
-- cosine, against exact results computed in the same run. The data are
-- 32-d points around 60 random centres (deterministic: setseed), the shape
-- real embeddings have; 50 held-out points are the queries.
SET client_min_messages = warning;
SELECT setseed(0.42);
CREATE TABLE centres AS
  SELECT c, array(SELECT random() * 2 - 1 FROM generate_series(1, 32) j WHERE c > 0) AS x
  FROM generate_series(1, 60) c;
CREATE TABLE points (id int PRIMARY KEY, v vector(32));
INSERT INTO points
SELECT i, (SELECT array_agg(x[j] + (random() - 0.5) * 0.6 ORDER BY j)
           FROM centres, generate_series(1, 32) j WHERE c = 1 + (i * 7919) % 60)::vector
FROM generate_series(1, 12050) i;
CREATE TABLE queries AS SELECT id, v FROM points WHERE id > 12000;
DELETE FROM points WHERE id > 12000;

-- recall(opclass operator): mean overlap of index and exact top-10.
CREATE FUNCTION recall(op text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE q record; hits int := 0; total int := 0; a int[]; e int[];
BEGIN
  FOR q IN SELECT id, v FROM queries ORDER BY id LOOP
    SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM points ORDER BY v %s $1 LIMIT 10) s', op)
      INTO a USING q.v;
    SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM points ORDER BY v %s $1 LIMIT 10) s', op)
      INTO e USING q.v;
    hits := hits + (SELECT count(*) FROM unnest(a) x WHERE x = ANY (e));
    total := total + 10;
  END LOOP;
  RETURN round(hits::numeric / total, 3);
END $$;

-- Default (automatic) index for 12 000 rows: IVF-Flat.
CREATE INDEX points_l2 ON points USING faiss (v vector_l2_ops);
SELECT factory, rows FROM benzer_index_info('points_l2');
SELECT recall('<->') >= 0.95 AS l2_recall_ok;
DROP INDEX points_l2;
CREATE INDEX points_ip ON points USING faiss (v vector_ip_ops);
SELECT recall('<#>') >= 0.95 AS ip_recall_ok;
DROP INDEX points_ip;
CREATE INDEX points_cos ON points USING faiss (v vector_cosine_ops);
SELECT recall('<=>') >= 0.95 AS cosine_recall_ok;
DROP INDEX points_cos;
-- HNSW at its defaults too.
CREATE INDEX points_hnsw ON points USING faiss (v vector_cosine_ops) WITH (factory = 'HNSW32');
SELECT recall('<=>') >= 0.95 AS hnsw_cosine_recall_ok;
DROP INDEX points_hnsw;

-- Recall@10 under filters keeping 50 %, 10 %, 1 % and 0.1 % of the rows,
-- at the same default settings, with the filter columns in the index. Each
-- query must also return min(10, matching rows) rows.
ALTER TABLE points ADD COLUMN f50 int, ADD COLUMN f10 int, ADD COLUMN f1 int, ADD COLUMN f01 int;
UPDATE points SET f50 = id % 2, f10 = id % 10, f1 = id % 100, f01 = id % 1000;
CREATE INDEX points_filtered ON points USING faiss (v, f50, f10, f1, f01);
SELECT factory FROM benzer_index_info('points_filtered');
CREATE FUNCTION filtered_recall(cond text) RETURNS TABLE (recall numeric, always_full boolean)
LANGUAGE plpgsql AS $$
DECLARE q record; hits int := 0; total int := 0; full_ok boolean := true; a int[]; e int[]; matching int;
BEGIN
  EXECUTE format('SELECT count(*) FROM points WHERE %s', cond) INTO matching;
  FOR q IN SELECT id, v FROM queries ORDER BY id LOOP
    SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM points WHERE %s ORDER BY v <-> $1 LIMIT 10) s', cond)
      INTO a USING q.v;
    SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM points WHERE %s ORDER BY v <-> $1 LIMIT 10) s', cond)
      INTO e USING q.v;
    hits := hits + (SELECT count(*) FROM unnest(a) x WHERE x = ANY (e));
    total := total + least(10, matching);
    full_ok := full_ok AND coalesce(array_length(a, 1), 0) = least(10, matching);
  END LOOP;
  RETURN QUERY SELECT round(hits::numeric / greatest(total, 1), 3), full_ok;
END $$;
SELECT cond, recall >= 0.95 AS recall_ok, always_full
FROM (VALUES ('f50 = 1'), ('f10 = 3'), ('f1 = 42'), ('f01 = 777')) c(cond),
     LATERAL filtered_recall(cond);
