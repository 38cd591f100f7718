-- 060_paged_lists: an IVF-Flat index keeps its lists in index pages, read
-- through shared buffers (faiss_lists.h). Searches over the pages give the
-- exact answers when told to visit every list, under filters too; merges
-- read the lists back and write them again; benzer_index_check agrees at
-- every step, and finds what is wrong when something is.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

SELECT plan(23);

SELECT setseed(0.25);
CREATE TABLE pl (id int PRIMARY KEY, tag int, v vector(24));
INSERT INTO pl
SELECT i, i % 5, (SELECT array_agg(random() + (i % 17) ORDER BY j)
                  FROM generate_series(1, 24) j WHERE i > 0)::vector
FROM generate_series(1, 6000) i;
SET maintenance_work_mem = '256MB';
CREATE INDEX pl_idx ON pl USING faiss (v, tag) WITH (factory = 'IVF32,Flat');

SELECT matches((SELECT description FROM benzer_index_info('pl_idx')),
               '^rows 6000, nlist 32, .*lists in [0-9]+ pages read through shared buffers',
               'an IVF-Flat index keeps its lists in pages');
SELECT cmp_ok((SELECT faiss_bytes FROM benzer_index_info('pl_idx')), '>=',
              6000::bigint * 24 * 4, 'faiss_bytes counts the list pages (at least the vectors)');
SELECT is_empty($$SELECT * FROM benzer_index_check('pl_idx')$$,
                'benzer_index_check: a fresh index agrees with its table');

-- Exact answers when every list is visited (recall_one), or at the
-- default settings for structures that are exact anyway.
CREATE FUNCTION pl_same(q int, cond text, recall_one boolean DEFAULT true) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    got int[];
    want int[];
BEGIN
    IF recall_one THEN
        SET LOCAL benzer.recall = 1;
    END IF;
    SET LOCAL enable_seqscan = off;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM pl WHERE %s ORDER BY v <-> '
                   '(SELECT v FROM pl WHERE id = %s), id LIMIT 10) s', cond, q) INTO got;
    SET LOCAL enable_indexscan = off;
    SET LOCAL enable_bitmapscan = off;
    SET LOCAL enable_seqscan = on;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM pl WHERE %s ORDER BY v <-> '
                   '(SELECT v FROM pl WHERE id = %s), id LIMIT 10) s', cond, q) INTO want;
    RETURN got = want;
END $$;
SELECT ok(bool_and(pl_same(q, 'true')), 'benzer.recall = 1 over the pages: the exact top 10')
FROM generate_series(1, 60, 7) q;
SELECT ok(bool_and(pl_same(q, 'tag = 3')), '... and under a filter column condition')
FROM generate_series(2, 60, 7) q;
SELECT ok(bool_and(pl_same(q, 'tag IN (1, 4) AND id % 3 = 0')),
          '... and with conditions above the scan')
FROM generate_series(3, 60, 7) q;

-- The tuned default finds a row's own vector first.
SET enable_seqscan = off;
SELECT is((SELECT count(*) FROM generate_series(100, 5900, 100) q
           WHERE (SELECT id FROM pl ORDER BY v <-> (SELECT v FROM pl WHERE id = q) LIMIT 1) = q),
          59::bigint, 'the default settings: every looked-up row is its own nearest neighbour');
RESET enable_seqscan;

-- Pending rows, deleted rows, a merge that reads the lists back.
INSERT INTO pl
SELECT i, i % 5, (SELECT array_agg(random() + (i % 17) ORDER BY j)
                  FROM generate_series(1, 24) j WHERE i > 0)::vector
FROM generate_series(6001, 6300) i;
DELETE FROM pl WHERE id % 11 = 0;
SELECT is_empty($$SELECT * FROM benzer_index_check('pl_idx')$$,
                'benzer_index_check: with pending and deleted rows');
SELECT is(benzer_index_merge('pl_idx'), 6300::bigint, 'a merge folds the pending rows in');
SELECT matches((SELECT description FROM benzer_index_info('pl_idx')),
               '^rows 6300, .*lists in [0-9]+ pages', 'the merged index keeps its lists in pages');
SELECT is_empty($$SELECT * FROM benzer_index_check('pl_idx')$$,
                'benzer_index_check: after the merge');
SELECT ok(bool_and(pl_same(q, 'true')), 'after the merge: the exact top 10')
FROM generate_series(6001, 6300, 37) q;

-- lists_in_pages = off: one Faiss structure that each backend loads, with
-- the same answers.
CREATE INDEX pl_blob ON pl USING faiss (v, tag) WITH (factory = 'IVF32,Flat', lists_in_pages = off);
SELECT doesnt_match((SELECT description FROM benzer_index_info('pl_blob')), 'lists in',
                    'lists_in_pages = off keeps the lists in the Faiss blob');
SELECT is_empty($$SELECT * FROM benzer_index_check('pl_blob')$$, 'benzer_index_check: blob lists');
DROP INDEX pl_idx;
SELECT ok(bool_and(pl_same(q, 'tag = 2')), 'lists_in_pages = off: the exact top 10 too')
FROM generate_series(4, 60, 7) q;

-- A plain Flat index keeps its rows in pages too, as one list that a
-- search reads whole: exact at the default settings, inserts in its tail.
DROP INDEX pl_blob;
CREATE INDEX pl_flat ON pl USING faiss (v, tag) WITH (factory = 'Flat');
SELECT matches((SELECT factory || ': ' || description FROM benzer_index_info('pl_flat')),
               '^Flat: rows 6300, nlist 1, .*lists in [0-9]+ pages read through shared buffers',
               'a Flat index keeps its rows in pages, as one list');
INSERT INTO pl SELECT i, i % 5, (SELECT array_agg(random() + (i % 17) ORDER BY j)
                                 FROM generate_series(1, 24) j WHERE i > 0)::vector
FROM generate_series(6301, 6350) i;
SELECT matches((SELECT description FROM benzer_index_info('pl_flat')),
               '50 rows inserted into list tails', '... and inserted rows in its tail');
SELECT ok(bool_and(pl_same(q, 'true', false) AND pl_same(q, 'tag = 1', false)),
          'Flat in pages: the exact top 10 at the default settings, filtered or not')
FROM generate_series(6, 6350, 401) q;
SELECT is_empty($$SELECT * FROM benzer_index_check('pl_flat')$$, 'benzer_index_check: Flat');
DROP INDEX pl_flat;

-- Other structures keep their lists in the Faiss blob; the check still
-- compares rows.
CREATE INDEX pl_hnsw ON pl USING faiss (v) WITH (factory = 'HNSW8');
SELECT doesnt_match((SELECT description FROM benzer_index_info('pl_hnsw')), 'lists in',
                    'HNSW stays one Faiss structure');
SELECT is_empty($$SELECT * FROM benzer_index_check('pl_hnsw')$$, 'benzer_index_check: HNSW');

-- A broken index: rows written while it was not ready for inserts
-- (pg_index.indisready = false) are missing from it.
CREATE TABLE broken (id int, v vector(4));
INSERT INTO broken SELECT i, ARRAY[i, 0, 0, 0]::vector FROM generate_series(1, 100) i;
CREATE INDEX broken_idx ON broken USING faiss (v) WITH (factory = 'Flat');
UPDATE pg_index SET indisready = false WHERE indexrelid = 'broken_idx'::regclass;
INSERT INTO broken SELECT i, ARRAY[i, 0, 0, 0]::vector FROM generate_series(101, 103) i;
UPDATE pg_index SET indisready = true WHERE indexrelid = 'broken_idx'::regclass;
SELECT is((SELECT count(*) FROM benzer_index_check('broken_idx')
           WHERE problem LIKE 'live row not in the index: %'), 3::bigint,
          'benzer_index_check names the rows an index misses');
SELECT throws_ok($$SELECT * FROM benzer_index_check('pl_pkey')$$, '42809', NULL,
                 'benzer_index_check refuses an index that is not a faiss index');

SELECT * FROM finish();
ROLLBACK;
