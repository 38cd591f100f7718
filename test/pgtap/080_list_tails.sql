-- 080_list_tails: rows inserted into an IVF index whose lists live in pages
-- go straight into their list's tail (faiss_tails.h), not into the pending
-- chain: searches read them with their lists, under filter conditions,
-- exactly when told to visit every list, through small-filter exact
-- searches and full scans; benzer_batch_search sees them; an explicit
-- merge folds them into the lists; benzer_index_check agrees throughout.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

SELECT plan(26);

SELECT setseed(0.75);
CREATE FUNCTION lt_vec(i int) RETURNS vector LANGUAGE sql AS $$
    SELECT (SELECT array_agg(random() + (i % 17) ORDER BY j)
            FROM generate_series(1, 24) j WHERE i > 0)::vector
$$;
CREATE TABLE lt (id int PRIMARY KEY, tag int, rare int, v vector(24));
INSERT INTO lt SELECT i, i % 5, (i % 500 = 7)::int, lt_vec(i) FROM generate_series(1, 6000) i;
SET maintenance_work_mem = '256MB';
CREATE INDEX lt_idx ON lt USING faiss (v, tag, rare) WITH (factory = 'IVF32,Flat');

INSERT INTO lt SELECT i, i % 5, (i % 500 = 7)::int, lt_vec(i) FROM generate_series(6001, 7000) i;
SELECT is((SELECT pending_rows FROM benzer_index_info('lt_idx')), 1000::bigint,
          'pending_rows counts the rows inserted since the build');
CREATE FUNCTION lt_explain(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    line text;
    result text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
        result := result || line || E'\n';
    END LOOP;
    RETURN result;
END $$;
SET enable_seqscan = off;
SELECT matches(lt_explain('SELECT id FROM lt ORDER BY v <-> (SELECT v FROM lt WHERE id = 6500) LIMIT 5'),
               'from 0 pending rows',
               'none of them is searched as a pending row: they are in their lists');
RESET enable_seqscan;
SELECT matches((SELECT description FROM benzer_index_info('lt_idx')),
               '^rows 6000, .*1000 rows inserted into list tails, largest list',
               'benzer_index_info counts the rows in list tails');
SELECT is_empty($$SELECT * FROM benzer_index_check('lt_idx')$$,
                'benzer_index_check: every inserted row is in a list tail once');

-- Inserted rows are found by their lists.
SET enable_seqscan = off;
SELECT is((SELECT count(*) FROM generate_series(6001, 7000, 9) q
           WHERE (SELECT id FROM lt ORDER BY v <-> (SELECT v FROM lt WHERE id = q) LIMIT 1) = q),
          112::bigint, 'the default settings: every looked-up inserted row is its own nearest');
SELECT is((SELECT count(*) FROM generate_series(6003, 7000, 9) q
           WHERE (SELECT id FROM lt WHERE tag = q % 5 ORDER BY v <->
                  (SELECT v FROM lt WHERE id = q) LIMIT 1) = q),
          111::bigint, '... and under a filter column condition');
RESET enable_seqscan;

CREATE FUNCTION lt_same(q int, cond text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    got int[];
    want int[];
    query text := format('SELECT array_agg(id) FROM (SELECT id FROM lt WHERE %s ORDER BY v <-> '
                         '(SELECT v FROM lt WHERE id = %s), id LIMIT 10) s', cond, q);
BEGIN
    SET LOCAL benzer.recall = 1;
    SET LOCAL enable_seqscan = off;
    EXECUTE query INTO got;
    SET LOCAL enable_indexscan = off;
    SET LOCAL enable_bitmapscan = off;
    SET LOCAL enable_seqscan = on;
    EXECUTE query INTO want;
    RETURN got = want;
END $$;
SELECT ok(bool_and(lt_same(q, 'true')), 'benzer.recall = 1 over lists and tails: the exact top 10')
FROM generate_series(6001, 7000, 97) q;
SELECT ok(bool_and(lt_same(q, 'tag = 3')), '... under a filter column condition')
FROM generate_series(6002, 7000, 97) q;
SELECT ok(bool_and(lt_same(q, 'tag IN (1, 4) AND id % 3 = 0')),
          '... with conditions above the scan')
FROM generate_series(6003, 7000, 97) q;

-- A filter too small to probe for: exact distances to its rows, tails too.
SET enable_seqscan = off;
SELECT is((SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM lt WHERE rare = 1 ORDER BY v <->
                                                  (SELECT v FROM lt WHERE id = 1) LIMIT 20) s),
          (SELECT array_agg(id ORDER BY id) FROM lt WHERE rare = 1),
          'a 14-row filter returns its 12 built and 2 inserted rows');
SELECT is((SELECT count(*) FROM (SELECT id FROM lt WHERE tag = 2 ORDER BY v <->
                                 (SELECT v FROM lt WHERE id = 6500) LIMIT 10) s),
          10::bigint, 'a filtered LIMIT 10 is filled');

-- A full index scan returns every row once.
SET benzer.max_scan_tuples = 100000;
SELECT is((SELECT count(*) || ' ' || count(DISTINCT id)
           FROM (SELECT id FROM lt ORDER BY v <-> (SELECT v FROM lt WHERE id = 77)
                 LIMIT 100000) s),
          '7000 7000', 'a full index scan returns all 7000 rows once');
SELECT is((SELECT count(*) || ' ' || count(DISTINCT id)
           FROM (SELECT id FROM lt WHERE tag = 4 ORDER BY v <-> (SELECT v FROM lt WHERE id = 77)
                 LIMIT 100000) s),
          '1400 1400', '... and every row of a filter once');
RESET benzer.max_scan_tuples;
RESET enable_seqscan;

-- benzer_batch_search sees the inserted rows.
SELECT is((SELECT count(*) FROM generate_series(6001, 7000, 50) q,
                  LATERAL benzer_batch_search('lt_idx',
                      ARRAY[(SELECT v FROM lt WHERE id = q)], 1) r
                  JOIN lt ON lt.ctid = r.tid
           WHERE lt.id = q),
          20::bigint, 'benzer_batch_search: every inserted row is its own nearest neighbour');
SELECT is((SELECT count(*) FROM benzer_batch_search('lt_idx',
               ARRAY[(SELECT v FROM lt WHERE id = 6500)], 10, '{"tag": 3}') r
           JOIN lt ON lt.ctid = r.tid WHERE lt.tag = 3),
          10::bigint, 'benzer_batch_search: a filtered query gets 10 rows that match');
SET benzer.recall = 1;
SELECT is((SELECT array_agg(lt.id ORDER BY r.rank) FROM benzer_batch_search('lt_idx',
               ARRAY[(SELECT v FROM lt WHERE id = 6789)], 10) r JOIN lt ON lt.ctid = r.tid),
          (SELECT array_agg(id) FROM (SELECT id FROM lt ORDER BY v <-> (SELECT v FROM lt WHERE id = 6789),
                                      id LIMIT 10) s),
          'benzer_batch_search at benzer.recall = 1: the exact top 10');
RESET benzer.recall;

-- Deleted rows of the tails are invisible; the check notices nothing wrong.
DELETE FROM lt WHERE id > 6900;
SELECT is_empty($$SELECT * FROM benzer_index_check('lt_idx')$$,
                'benzer_index_check: deleted tail rows await VACUUM');
SET enable_seqscan = off;
SET benzer.max_scan_tuples = 100000;
SELECT is((SELECT count(*) FROM (SELECT id FROM lt ORDER BY v <-> (SELECT v FROM lt WHERE id = 6899)
                                 LIMIT 100000) s),
          6900::bigint, 'a full scan after the DELETE returns the 6900 rows left');
RESET benzer.max_scan_tuples;
RESET enable_seqscan;

-- An explicit merge folds the tails into the lists.
SELECT is(benzer_index_merge('lt_idx'), 7000::bigint,
          'benzer_index_merge folds the tails into the lists');
SELECT doesnt_match((SELECT description FROM benzer_index_info('lt_idx')), 'list tails',
                    'after the merge no row is in a list tail');
SELECT is_empty($$SELECT * FROM benzer_index_check('lt_idx')$$,
                'benzer_index_check: after the merge');
SELECT ok(bool_and(lt_same(q, 'tag = 1')), 'after the merge: the exact top 10 under a filter')
FROM generate_series(6001, 6900, 97) q;

-- Compressed codes: IVF-SQ8 tails hold SQ8 codes.
CREATE TABLE lq (id int PRIMARY KEY, v vector(24));
INSERT INTO lq SELECT i, lt_vec(i) FROM generate_series(1, 4000) i;
CREATE INDEX lq_idx ON lq USING faiss (v) WITH (factory = 'IVF16,SQ8');
INSERT INTO lq SELECT i, lt_vec(i) FROM generate_series(4001, 4500) i;
SELECT matches((SELECT description FROM benzer_index_info('lq_idx')),
               '500 rows inserted into list tails', 'IVF-SQ8: inserted rows go to list tails');
SELECT is_empty($$SELECT * FROM benzer_index_check('lq_idx')$$,
                'benzer_index_check: IVF-SQ8 with list tails');
SET enable_seqscan = off;
SELECT cmp_ok((SELECT count(*) FROM generate_series(4001, 4500, 5) q
               WHERE (SELECT id FROM lq ORDER BY v <-> (SELECT v FROM lq WHERE id = q)
                      LIMIT 1) = q), '>=', 95::bigint,
              'IVF-SQ8: inserted rows are (almost always) their own nearest neighbour');
RESET enable_seqscan;

-- lists_in_pages = off: no tails; rows wait in the pending chain.
CREATE INDEX lq_memory ON lq USING faiss (v) WITH (factory = 'IVF16,Flat', lists_in_pages = off);
INSERT INTO lq SELECT i, lt_vec(i) FROM generate_series(4501, 4510) i;
SELECT is((SELECT pending_rows FROM benzer_index_info('lq_memory')), 10::bigint,
          'lists in memory: inserted rows wait in the pending chain');

SELECT * FROM finish();
ROLLBACK;
