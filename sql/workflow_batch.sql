-- benzer_batch_search: many queries in one call, the same answers as
-- ORDER BY ... LIMIT through the index; and benzer_indexes().
SET client_min_messages = warning;
\set VERBOSITY default
-- Own schema: the other tests leave tables of the same names behind.
CREATE SCHEMA workflow_batch;
SET search_path = workflow_batch, public;

CREATE TABLE items (id int PRIMARY KEY, season text, tags text[], quality int,
                    note text, v vector(8));
INSERT INTO items
SELECT i, (ARRAY['winter', 'spring', 'summer', 'autumn'])[1 + i % 4],
       ARRAY['t' || (i % 5), 'u' || (i % 7)], i % 3, 'n',
       array(SELECT ((i * 37 + j * 101) % 2003) / 10.0 FROM generate_series(1, 8) j)::real[]
FROM generate_series(1, 2000) i;
CREATE INDEX items_flat ON items USING faiss (v, season, tags, quality);

-- The queries: 25 of the items' own vectors and a few others.
CREATE TABLE queries (qid int, v vector(8));
INSERT INTO queries SELECT id, v FROM items WHERE id % 80 = 1;
INSERT INTO queries VALUES (9001, '[0,0,0,0,0,0,0,0]'), (9002, '[50,50,50,50,50,50,50,50]');

-- A helper: the top k of every query by ORDER BY through the index, and
-- the batch's answer. differ: (query, rank) pairs whose distances differ
-- (the rows may differ only where distances tie); wrong: returned rows
-- whose distance is not their real distance to the query.
CREATE FUNCTION compare_batch(idx regclass, k int, filter jsonb, where_clause text)
RETURNS TABLE (queries bigint, rows bigint, differ bigint, wrong bigint)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE format($q$
    WITH qs AS (SELECT array_agg(qid ORDER BY qid) AS ids, array_agg(v ORDER BY qid) AS vs FROM queries),
    batch AS (
      SELECT qs.ids[r.query] AS qid, r.rank::bigint AS rank, i.id, r.distance,
             i.v <-> qs.vs[r.query] AS real_distance
      FROM qs, benzer_batch_search(%L, qs.vs, %s, %L) r JOIN items i ON i.ctid = r.tid),
    single AS (
      SELECT q.qid, s.rank, s.id, s.distance
      FROM queries q, LATERAL (
        SELECT i.id, row_number() OVER () AS rank, i.v <-> q.v AS distance
        FROM (SELECT * FROM items WHERE %s ORDER BY v <-> q.v LIMIT %s) i) s)
    SELECT (SELECT count(DISTINCT qid) FROM batch), (SELECT count(*) FROM batch),
           (SELECT count(*) FROM batch b FULL JOIN single s USING (qid, rank)
            WHERE b.qid IS NULL OR s.qid IS NULL OR abs(b.distance - s.distance) > 1e-3),
           (SELECT count(*) FROM batch WHERE abs(distance - real_distance) > 1e-3)
  $q$, idx, k, filter, where_clause, k);
END $$;

-- Flat index (exact): the same rows, ranks and distances as ORDER BY.
SET enable_seqscan = off;
SELECT * FROM compare_batch('items_flat', 10, NULL, 'true');
SELECT count(*) AS distance_differs
FROM (SELECT array_agg(v ORDER BY qid) AS vs FROM queries) qs,
     benzer_batch_search('items_flat', qs.vs, 5) r JOIN items i ON i.ctid = r.tid
WHERE abs(r.distance - (i.v <-> qs.vs[r.query])) > 1e-4;
-- Output order: by query, then rank.
SELECT query, rank, distance = 0 AS is_itself
FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries ORDER BY qid LIMIT 2), 3);

-- Filters on the index's filter columns, as WHERE conditions would apply.
SELECT * FROM compare_batch('items_flat', 10, '{"season": "winter"}', 'season = ''winter''');
SELECT * FROM compare_batch('items_flat', 10, '{"season": ["winter", "summer"], "quality": 2}',
                            'season IN (''winter'', ''summer'') AND quality = 2');
SELECT * FROM compare_batch('items_flat', 7, '{"tags&&": ["t1", "u3"]}', 'tags && ''{t1,u3}''');
SELECT * FROM compare_batch('items_flat', 7, '{"tags@>": ["t1", "u3"]}', 'tags @> ''{t1,u3}''');
SELECT * FROM compare_batch('items_flat', 7, '{"season=": "spring", "tags@>": []}',
                            'season = ''spring''');
-- A filter nothing matches.
SELECT count(*) FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 5,
                                         '{"season": "monsoon"}');
SELECT count(*) FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 5,
                                         '{"quality": []}');

-- IVF (all lists probed, so exact), and more rows asked than a filter allows.
CREATE INDEX items_ivf ON items USING faiss (v, season) WITH (factory = 'IVF16,Flat', nprobe = 16);
SELECT * FROM compare_batch('items_ivf', 10, NULL, 'true');
SELECT * FROM compare_batch('items_ivf', 10, '{"season": "autumn"}', 'season = ''autumn''');
SELECT query, count(*) FROM benzer_batch_search('items_ivf', ARRAY['[1,1,1,1,1,1,1,1]']::vector[],
                                                3000, '{"season": "autumn"}') GROUP BY query;
DROP INDEX items_ivf;
-- One IVF list probed by default: selective filters still fill every query.
CREATE INDEX items_ivf1 ON items USING faiss (v, season, tags, quality)
  WITH (factory = 'IVF16,Flat', nprobe = 1);
SELECT count(*) AS rows, count(DISTINCT query) AS queries
FROM benzer_batch_search('items_ivf1', ARRAY(SELECT v FROM queries), 10,
                         '{"tags@>": ["t1", "u3"], "quality": [0, 2]}');
DROP INDEX items_ivf1;
-- HNSW: the batch answers as the index scan does.
CREATE INDEX items_hnsw ON items USING faiss (v, season) WITH (factory = 'HNSW16');
SELECT * FROM compare_batch('items_hnsw', 10, NULL, 'true');
SELECT * FROM compare_batch('items_hnsw', 5, '{"season": "summer"}', 'season = ''summer''');
DROP INDEX items_hnsw;

-- Cosine and inner product indexes.
CREATE INDEX items_cos ON items USING faiss (v vector_cosine_ops);
SELECT count(*) AS rows, count(*) FILTER (WHERE abs(r.distance - (i.v <=> qs.vs[r.query])) > 1e-5) AS differ
FROM (SELECT array_agg(v ORDER BY qid) AS vs FROM queries WHERE qid < 9000) qs,
     benzer_batch_search('items_cos', qs.vs, 5) r JOIN items i ON i.ctid = r.tid;
SELECT count(*) AS differ FROM
  (SELECT array_agg(v ORDER BY qid) AS vs, array_agg(qid ORDER BY qid) AS ids FROM queries WHERE qid < 9000) qs,
  benzer_batch_search('items_cos', qs.vs, 5) r
WHERE abs(r.distance - (SELECT x.v <=> q.v FROM items x JOIN queries q ON q.qid = qs.ids[r.query]
                        ORDER BY x.v <=> q.v OFFSET r.rank - 1 LIMIT 1)) > 1e-5;
DROP INDEX items_cos;
CREATE INDEX items_ip ON items USING faiss (v vector_ip_ops);
SELECT count(*) AS rows, count(*) FILTER (WHERE abs(r.distance - (i.v <#> qs.vs[r.query])) > 1e-2) AS differ
FROM (SELECT array_agg(v ORDER BY qid) AS vs FROM queries WHERE qid < 9000) qs,
     benzer_batch_search('items_ip', qs.vs, 5) r JOIN items i ON i.ctid = r.tid;
DROP INDEX items_ip;

-- Rows inserted since the build (pending rows) are found, merged in order.
INSERT INTO items
SELECT 10000 + id, season, tags, quality, note, v + '[0.01,0,0,0,0,0,0,0]' FROM items WHERE id % 80 = 1;
SELECT pending_rows FROM benzer_indexes() WHERE index = 'items_flat'::regclass;
SELECT * FROM compare_batch('items_flat', 10, NULL, 'true');
SELECT * FROM compare_batch('items_flat', 10, '{"season": "spring"}', 'season = ''spring''');

-- Visibility: deleted rows (before VACUUM and after), rows deleted in this
-- transaction, and HOT-updated rows (a new tid) are handled like ORDER BY.
DELETE FROM items WHERE id % 80 = 1 AND id < 1000;
SELECT * FROM compare_batch('items_flat', 10, NULL, 'true');
VACUUM items;
SELECT dead_rows > 0 AS tombstones FROM benzer_indexes() WHERE index = 'items_flat'::regclass;
SELECT * FROM compare_batch('items_flat', 10, NULL, 'true');
BEGIN;
DELETE FROM items WHERE id % 7 = 0;
SELECT * FROM compare_batch('items_flat', 10, NULL, 'true');
ROLLBACK;
UPDATE items SET note = 'updated' WHERE id % 3 = 0;
SELECT * FROM compare_batch('items_flat', 10, NULL, 'true');
SELECT count(*) FILTER (WHERE i.note = 'updated') > 0 AS sees_updated_rows
FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 10) r JOIN items i ON i.ctid = r.tid;

-- A partial index holds only its predicate's rows.
CREATE INDEX items_winter ON items USING faiss (v) WHERE season = 'winter';
SELECT count(*) AS rows, count(*) FILTER (WHERE i.season <> 'winter') AS not_winter
FROM benzer_batch_search('items_winter', ARRAY(SELECT v FROM queries), 10) r
JOIN items i ON i.ctid = r.tid;
SELECT * FROM compare_batch('items_winter', 10, NULL, 'season = ''winter''');

-- NULL and empty inputs: a NULL query finds nothing, the others are
-- numbered by their position in the array.
SELECT query, count(*) FROM benzer_batch_search('items_flat',
    ARRAY[NULL, '[1,1,1,1,1,1,1,1]', NULL, '[2,2,2,2,2,2,2,2]']::vector[], 4) GROUP BY query ORDER BY query;
SELECT count(*) FROM benzer_batch_search('items_flat', NULL, 4);
SELECT count(*) FROM benzer_batch_search('items_flat', '{}', 4);
SELECT count(*) FROM benzer_batch_search('items_flat', ARRAY[NULL]::vector[], 4);
-- An index of an empty table.
CREATE TABLE empty (v vector(3));
CREATE INDEX empty_idx ON empty USING faiss (v);
SELECT count(*) FROM benzer_batch_search('empty_idx', ARRAY['[1,2,3]']::vector[], 4);

-- benzer_indexes(): every faiss index of the database.
SELECT index, "table", vector_column, filter_columns, predicate, valid, factory, metric,
       dimensions, rows, dead_rows, bytes > 0 AS has_bytes, size IS NOT NULL AS has_size
FROM benzer_indexes() WHERE "table"::text IN ('items', 'empty') ORDER BY index::text;

-- Bad arguments --------------------------------------------------------------
SELECT * FROM benzer_batch_search(NULL, ARRAY['[1,2,3]']::vector[], 4);
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY['[1,2,3]']::vector[], NULL);
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 0);
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 100001);
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_pkey', ARRAY(SELECT v FROM queries), 4);
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items', ARRAY(SELECT v FROM queries), 4);
\echo :SQLSTATE
-- Mixed dimensions.
SELECT * FROM benzer_batch_search('items_flat', ARRAY['[1,1,1,1,1,1,1,1]', '[1,2,3]']::vector[], 4);
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY[['[1,1,1,1,1,1,1,1]'], ['[1,1,1,1,1,1,1,1]']]::vector[], 4);
\echo :SQLSTATE
-- Bad filters.
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '["winter"]');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '"winter"');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"design": "x"}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_winter', ARRAY(SELECT v FROM queries), 4, '{"season": "x"}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"season": 1}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"quality": "1"}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"quality": 1.5}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"quality": 1e30}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"season": null}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"season": [["a"]]}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"season": {"a": 1}}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"tags": ["t1"]}');
\echo :SQLSTATE
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT v FROM queries), 4, '{"season&&": ["winter"]}');
\echo :SQLSTATE
-- Privileges: SELECT on the table (or on the indexed columns) is needed,
-- and tables with row-level security are refused.
CREATE ROLE regress_benzer_reader;
GRANT USAGE ON SCHEMA workflow_batch TO regress_benzer_reader;
SET ROLE regress_benzer_reader;
SELECT * FROM benzer_batch_search('items_flat', ARRAY(SELECT '[1,1,1,1,1,1,1,1]'::vector), 4);
\echo :SQLSTATE
RESET ROLE;
GRANT SELECT (id, v, season, tags, quality) ON items TO regress_benzer_reader;
SET ROLE regress_benzer_reader;
SELECT count(*) FROM benzer_batch_search('items_flat', ARRAY['[1,1,1,1,1,1,1,1]']::vector[], 4);
RESET ROLE;
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
CREATE POLICY everything ON items USING (true);
SET ROLE regress_benzer_reader;
SELECT * FROM benzer_batch_search('items_flat', ARRAY['[1,1,1,1,1,1,1,1]']::vector[], 4);
\echo :SQLSTATE
RESET ROLE;

RESET enable_seqscan;
RESET search_path;
DROP SCHEMA workflow_batch CASCADE;
DROP ROLE regress_benzer_reader;
