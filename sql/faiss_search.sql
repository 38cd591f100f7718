-- Searching: WHERE filters never under-fill a LIMIT, pending rows are found
-- at once, deleted rows disappear, merges and compaction keep results.
SET client_min_messages = warning;
SET enable_seqscan = off;

CREATE TABLE docs (id int PRIMARY KEY, cat int, v vector(8));
INSERT INTO docs
SELECT i, i % 100, array(SELECT cos(i * j * 0.21) * 10 FROM generate_series(1, 8) j)::real[]
FROM generate_series(1, 20000) i;
-- nprobe 1 of 64 lists: a single list holds far fewer rows than a selective
-- filter needs, so the scan must widen.
CREATE INDEX docs_idx ON docs USING faiss (v) WITH (factory = 'IVF64,Flat', nprobe = 1);

-- Exact answers for comparison, computed with the index disabled.
CREATE FUNCTION exact_ids(q vector, filter int, k int) RETURNS int[] LANGUAGE plpgsql
SET enable_indexscan = off SET enable_seqscan = on AS $$
DECLARE result int[];
BEGIN
  SELECT array_agg(id ORDER BY d, id) INTO result FROM
    (SELECT id, v <-> q AS d FROM docs WHERE filter IS NULL OR cat = filter ORDER BY d, id LIMIT k) s;
  RETURN result;
END $$;

-- A 1 % filter (cat = 7) with LIMIT 10: 10 rows, all matching, no repeats.
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows, bool_and(cat = 7) AS all_match
FROM (SELECT id, cat FROM docs WHERE cat = 7 ORDER BY v <-> (SELECT v FROM docs WHERE id = 1) LIMIT 10) s;
-- A 0.01 % filter (2 rows match): both are returned.
SELECT array_agg(id ORDER BY id) FROM
  (SELECT id FROM docs WHERE id IN (123, 19999) ORDER BY v <-> (SELECT v FROM docs WHERE id = 1) LIMIT 10) s;
-- A filter nothing matches: empty, and the scan ends.
SELECT count(*) FROM (SELECT id FROM docs WHERE cat = 1000 ORDER BY v <-> '[0,0,0,0,0,0,0,0]' LIMIT 10) s;

-- With nprobe 16 the filtered top-10 is the exact filtered top-10.
SET benzer.nprobe = 16;
SELECT (SELECT array_agg(id) FROM (SELECT id FROM docs WHERE cat = 7
          ORDER BY v <-> (SELECT v FROM docs WHERE id = 1) LIMIT 10) s)
       = exact_ids((SELECT v FROM docs WHERE id = 1), 7, 10) AS filtered_exact;
RESET benzer.nprobe;

-- Every row comes back exactly once when the scan is read to the end.
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows FROM
  (SELECT id FROM docs ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 30000) s;

-- Inserted rows are found at once, in the same transaction and after it.
BEGIN;
INSERT INTO docs VALUES (30001, 5, '[100,100,100,100,100,100,100,100]');
SELECT id FROM docs ORDER BY v <-> '[100,100,100,100,100,100,100,99]' LIMIT 1;
COMMIT;
SELECT id FROM docs ORDER BY v <-> '[100,100,100,100,100,100,100,99]' LIMIT 1;
SELECT rows, pending_rows FROM benzer_index_info('docs_idx');

-- Pending and indexed rows merge in distance order.
INSERT INTO docs SELECT 30001 + i, 5, (SELECT v FROM docs WHERE id = 10) FROM generate_series(1, 3) i;
SELECT array_agg(id ORDER BY id) FROM
  (SELECT id FROM docs ORDER BY v <-> (SELECT v FROM docs WHERE id = 10) LIMIT 4) s;

-- Deleted rows disappear (the executor skips them at once, VACUUM removes
-- their entries).
DELETE FROM docs WHERE id BETWEEN 1 AND 1000;
SELECT count(*) FROM (SELECT id FROM docs WHERE id <= 1000 ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 5) s;
VACUUM docs;
SELECT rows, pending_rows, dead_rows FROM benzer_index_info('docs_idx');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows FROM
  (SELECT id FROM docs ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 30000) s;

-- A merge folds the pending rows in; compaction drops the dead ones.
SELECT benzer_index_merge('docs_idx');
SELECT rows, pending_rows, dead_rows, merges FROM benzer_index_info('docs_idx');
SELECT benzer_index_merge('docs_idx', compact => true);
SELECT rows, pending_rows, dead_rows, merges FROM benzer_index_info('docs_idx');
SELECT id FROM docs ORDER BY v <-> '[100,100,100,100,100,100,100,99]' LIMIT 1;
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows FROM
  (SELECT id FROM docs ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 30000) s;

-- The scan limit bounds how far a scan goes.
SET benzer.max_scan_tuples = 50;
SELECT count(*) FROM (SELECT id FROM docs WHERE cat = 7 ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 10) s;
RESET benzer.max_scan_tuples;

-- A NULL query returns the rows (in no particular order), like a seqscan.
SELECT count(*) FROM (SELECT id FROM docs ORDER BY v <-> NULL LIMIT 7) s;
-- A query of the wrong dimension is an error, as with the operator.
SELECT id FROM docs ORDER BY v <-> '[1,2,3]' LIMIT 1;
