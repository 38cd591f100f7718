-- Search cost of rows in list tails against the same rows merged into the
-- lists: 60 000 Fashion-MNIST rows, the automatic index, 10 000 rows inserted
-- (they go to list tails), ms per query unfiltered and under a 10 % filter,
-- twice; then benzer_index_merge and the same again.
--   psql -d benzer_scale -f bench/tail_search_cost.sql   (needs table fmnist)
DROP TABLE IF EXISTS tq;
CREATE TABLE tq AS SELECT id, label, v FROM fmnist;
SET maintenance_work_mem = '1GB';
CREATE INDEX tq_idx ON tq USING faiss (v, label);
INSERT INTO tq SELECT id + 100000, label, v FROM fmnist WHERE id <= 10000;
CREATE OR REPLACE FUNCTION tq_time(n int, cond text) RETURNS float LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; q vector; r int;
BEGIN
  SET LOCAL enable_seqscan = off;
  t0 := clock_timestamp();
  FOR i IN 1..n LOOP
    SELECT v INTO q FROM fmnist WHERE id = 20000 + i * 37;
    EXECUTE format('SELECT count(*) FROM (SELECT id FROM tq WHERE %s ORDER BY v <-> $1 LIMIT 10) s', cond) INTO r USING q;
  END LOOP;
  RETURN round(extract(epoch FROM clock_timestamp() - t0) * 1000 / n, 3);
END $$;
SELECT description FROM benzer_index_info('tq_idx');
SELECT 'tails' AS state, tq_time(300, 'true') AS ms_unfiltered, tq_time(300, 'label = 3') AS ms_10pct;
SELECT 'tails' AS state, tq_time(300, 'true') AS ms_unfiltered, tq_time(300, 'label = 3') AS ms_10pct;
SELECT benzer_index_merge('tq_idx');
SELECT 'merged' AS state, tq_time(300, 'true') AS ms_unfiltered, tq_time(300, 'label = 3') AS ms_10pct;
SELECT 'merged' AS state, tq_time(300, 'true') AS ms_unfiltered, tq_time(300, 'label = 3') AS ms_10pct;
DROP TABLE tq;
DROP FUNCTION tq_time(int, text);
