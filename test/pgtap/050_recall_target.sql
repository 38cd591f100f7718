-- 050_recall_target: search settings follow a recall target (tuned at
-- build), explicit knobs win, EXPLAIN and benzer_index_info say what was
-- used, and a scan's first round asks for the query's LIMIT without
-- changing any answer.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

SELECT plan(28);

-- 20 000 rows around 100 centres (deterministic), a filter column.
SELECT setseed(0.5);
CREATE TABLE centres AS
  SELECT c, array(SELECT random() * 4 FROM generate_series(1, 16) j WHERE c > 0) AS x
  FROM generate_series(1, 100) c;
CREATE TABLE items (id int PRIMARY KEY, tag int, v vector(16));
INSERT INTO items
SELECT i, i % 10, (SELECT array_agg(x[j] + (random() - 0.5) ORDER BY j)
                   FROM centres, generate_series(1, 16) j WHERE c = 1 + (i * 7919) % 100)::vector
FROM generate_series(1, 20000) i;
SET maintenance_work_mem = '256MB';
CREATE INDEX items_idx ON items USING faiss (v, tag);

-- The lines EXPLAIN prints, as one text.
CREATE FUNCTION explained(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; result text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || query LOOP
    result := result || line || E'\n';
  END LOOP;
  RETURN result;
END $$;

-- Recall at the default target on queries the tuner did not see.
CREATE FUNCTION recall_of(cond text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE q int; hits int := 0; total int := 0; a int[]; e int[];
BEGIN
  FOR q IN SELECT generate_series(1, 20000, 400) LOOP
    SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM items WHERE %s ORDER BY v <-> (SELECT v FROM items WHERE id = %s) LIMIT 10) s', cond, q) INTO a;
    SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM items WHERE %s ORDER BY v <-> (SELECT v FROM items WHERE id = %s) LIMIT 10) s', cond, q) INTO e;
    hits := hits + (SELECT count(*) FROM unnest(a) x WHERE x = ANY (e));
    total := total + 10;
  END LOOP;
  RETURN hits::numeric / total;
END $$;

-- The tuned settings.
SELECT is((SELECT factory FROM benzer_index_info('items_idx')), 'IVF565,Flat',
          'the automatic structure for 20 000 rows');
SELECT is((SELECT recall_target FROM benzer_index_info('items_idx')), 0.97::float8,
          'the default recall target is 0.97');
SELECT cmp_ok((SELECT recall_measured FROM benzer_index_info('items_idx')), '>=', 0.97::float8,
              'the chosen setting measured at least the target');
SELECT matches((SELECT search_settings FROM benzer_index_info('items_idx')),
               '^recall target 0\.97, measured recall@10 [01]\.[0-9]+ on 200 sampled rows: lists nearest first until [0-9]+ rows compared and [0-9]+ lists without a better one$',
               'search_settings says what the target chose');

-- benzer.recall picks another stored setting; explicit knobs win.
SET benzer.recall = 0.8;
SELECT is((SELECT recall_target FROM benzer_index_info('items_idx')), 0.8::float8,
          'benzer.recall is the target of this session');
SELECT matches((SELECT search_settings FROM benzer_index_info('items_idx')), '^benzer.recall 0\.8, ',
               'and says so');
SET benzer.recall = 1;
SELECT matches((SELECT search_settings FROM benzer_index_info('items_idx')), 'every list or candidate',
               'benzer.recall = 1 searches everything');
RESET benzer.recall;
SET benzer.nprobe = 7;
SELECT is((SELECT recall_target FROM benzer_index_info('items_idx')), NULL::float8,
          'benzer.nprobe: no target');
SELECT is((SELECT search_settings FROM benzer_index_info('items_idx')), 'nprobe 7 (benzer.nprobe)',
          'benzer.nprobe wins over the target');
RESET benzer.nprobe;

-- The index option.
SELECT throws_ok($$CREATE INDEX bad ON items USING faiss (v) WITH (recall = 1.5)$$, '22023', NULL,
                 'recall above 1 is refused');
CREATE INDEX items_strict ON items USING faiss (v) WITH (recall = 0.999);
SELECT is((SELECT recall_target FROM benzer_index_info('items_strict')), 0.999::float8,
          'the recall option is the index''s target');
SELECT cmp_ok((SELECT recall_measured FROM benzer_index_info('items_strict')), '>=',
              (SELECT recall_measured FROM benzer_index_info('items_idx')),
              'a higher target measured at least as high');
DROP INDEX items_strict;

-- EXPLAIN shows the settings and what the scan did; the first round asks
-- for the LIMIT (+ OFFSET).
SELECT matches(explained('SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10'),
               'search: recall target 0\.97, measured recall@10', 'EXPLAIN ANALYZE shows the target');
SELECT matches(explained('SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10'),
               'lists probed, [0-9]+ rows compared, first round k 10\M', 'LIMIT 10 asks for 10 rows');
SELECT matches(explained('SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10 OFFSET 5'),
               'first round k 15\M', 'LIMIT 10 OFFSET 5 asks for 15');
SELECT matches(explained('SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5)'),
               'first round k 100\M', 'no LIMIT: benzer.scan_rows');
-- A 10 % filter: exact distances to its rows or a probe that reads only the
-- list pages holding its rows, whichever the cost model prefers; at least 9
-- of the exact 10 either way.
SELECT matches(explained('SELECT id FROM items WHERE tag = 3 ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10'),
               '(exact distances|filter inside Faiss)', 'a 10 % filter is applied inside the search');
SELECT cmp_ok((SELECT count(*) FROM
                 (SELECT id FROM items WHERE tag = 3
                  ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10) got
               JOIN (SELECT id FROM items WHERE tag = 3
                     ORDER BY l2_distance(v, (SELECT v FROM items WHERE id = 5)) LIMIT 10) want
               USING (id)), '>=', 9::bigint, 'a 10 % filter: at least 9 of the exact 10');
SET benzer.exact_filter_limit = 0;
SELECT matches(explained('SELECT id FROM items WHERE tag = 3 ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10'),
               'filter inside Faiss, [0-9]+ lists probed', 'otherwise the filter goes into the probe');
SELECT cmp_ok(recall_of('tag = 3'), '>=', 0.95, 'recall@10 of such probes');
RESET benzer.exact_filter_limit;

-- Answers do not depend on the hint: with benzer.recall = 1 (every list,
-- exact) the LIMIT 10 rows are the first 10 of a LIMIT 200 scan, and WHERE
-- conditions above the scan still get LIMIT rows.
SET benzer.recall = 1;
SELECT is(ARRAY(SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10),
          ARRAY(SELECT id FROM (SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 200) s LIMIT 10),
          'LIMIT 10 gives the first 10 of LIMIT 200');
SELECT is(ARRAY(SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10),
          ARRAY(SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10 OFFSET 0),
          'the same with OFFSET 0');
RESET benzer.recall;
SELECT is((SELECT count(*) FROM (SELECT id FROM items WHERE id % 7 = 0
                                 ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 10) s),
          10::bigint, 'a condition above the scan still gets 10 rows');
CREATE FUNCTION limited(n int) RETURNS bigint LANGUAGE sql AS
  'SELECT count(*) FROM (SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT $1) s';
SELECT is(limited(3), 3::bigint, 'a LIMIT parameter works');

SELECT cmp_ok(recall_of('true'), '>=', 0.95, 'recall@10 without a filter');
SELECT cmp_ok(recall_of('tag = 3'), '>=', 0.95, 'recall@10 with a 10 % filter column');
SELECT cmp_ok(recall_of('tag IN (1, 2)'), '>=', 0.95, 'recall@10 with a 20 % IN filter');

-- A rescan (a correlated subquery runs the same scan once per outer row)
-- is a new scan: its first round is a first round again, so it answers as
-- a scan of its own does. (Rounds counted across rescans made later ones
-- start deeper: an HNSW search then returns its rows in another order.)
CREATE FUNCTION pseudo_vector(seed int) RETURNS vector LANGUAGE sql IMMUTABLE AS $$
  SELECT array(SELECT 2 * (h - floor(h)) - 1
               FROM (SELECT sin(seed * 12.9898 + j * 78.233) * 43758.5453 AS h
                     FROM generate_series(1, 24) j) s)::vector $$;
CREATE TABLE graph (id int PRIMARY KEY, cat int, v vector(24));
INSERT INTO graph SELECT i, i % 20, pseudo_vector(i) FROM generate_series(1, 4000) i;
CREATE INDEX graph_idx ON graph USING faiss (v, cat) WITH (factory = 'HNSW16');
CREATE TEMP TABLE fresh (s int, answer text);
SET enable_seqscan = off;
DO $$
BEGIN
  FOR s IN 1 .. 60 LOOP
    EXECUTE format('INSERT INTO fresh SELECT %s, (SELECT string_agg(id::text, '','') FROM
                      (SELECT id FROM graph WHERE cat <= %s ORDER BY v <-> pseudo_vector(%s)
                       LIMIT 10) x)', s, s % 20, s);
  END LOOP;
END $$;
SELECT is((SELECT count(*) FROM fresh f,
                LATERAL (SELECT string_agg(id::text, ',') AS answer FROM
                         (SELECT id FROM graph WHERE cat <= f.s % 20
                          ORDER BY v <-> pseudo_vector(f.s) LIMIT 10) x) r
           WHERE r.answer IS DISTINCT FROM f.answer), 0::bigint,
          'a rescanned index scan answers as a fresh scan does');
RESET enable_seqscan;

SELECT * FROM finish();
ROLLBACK;
