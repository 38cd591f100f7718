-- 070_wide_vectors: vectors wider than a page (2 048-d CNN features, 4 096-d
-- embeddings, up to the type's 16 000). IVF list entries straddle list
-- pages; a row inserted into a 2 048-d IVF-Flat list tail, and a pending
-- row, keep their vector out of line, in a chain of its own that VACUUM and
-- merges free. Recall at the default settings, exact
-- answers under filters, and benzer_index_check at every step.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

SELECT plan(25);

SET maintenance_work_mem = '512MB';
SELECT setseed(0.5);

-- Rows around 40 centres, like features of 40 kinds of fabric.
CREATE FUNCTION wide_rows(dim int, first int, last int)
RETURNS TABLE (id int, tag int, v vector) LANGUAGE sql AS $$
    WITH centre AS (
        SELECT c, array_agg(random() * 4 ORDER BY j) AS x
        FROM generate_series(0, 39) c, generate_series(1, dim) j GROUP BY c)
    SELECT i, i % 10, (SELECT array_agg(centre.x[j] + random() ORDER BY j)
                       FROM generate_series(1, dim) j)::vector
    FROM generate_series(first, last) i JOIN centre ON centre.c = i % 40
$$;

-- recall@10 of the index at its default settings against a sequential
-- scan, for the row q's vector, over table t.
CREATE FUNCTION wide_recall(t regclass, q int) RETURNS float LANGUAGE plpgsql AS $$
DECLARE
    got int[];
    want int[];
    query text := format('SELECT array_agg(id) FROM (SELECT id FROM %s ORDER BY v <-> '
                         '(SELECT v FROM %s WHERE id = %s), id LIMIT 10) s', t, t, q);
BEGIN
    SET LOCAL enable_seqscan = off;
    EXECUTE query INTO got;
    SET LOCAL enable_indexscan = off;
    SET LOCAL enable_bitmapscan = off;
    SET LOCAL enable_seqscan = on;
    EXECUTE query INTO want;
    RETURN (SELECT count(*) FROM unnest(got) g WHERE g = ANY (want)) / 10.0;
END $$;

-- The exact top 10 under a condition, when told to visit every list.
CREATE FUNCTION wide_exact(t regclass, q int, cond text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    got int[];
    want int[];
    query text := format('SELECT array_agg(id) FROM (SELECT id FROM %s WHERE %s ORDER BY v <-> '
                         '(SELECT v FROM %s WHERE id = %s), id LIMIT 10) s', t, cond, t, q);
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

-- 2 048 dimensions, IVF-Flat: an entry (label + 8 kB vector) takes two pages.
CREATE TABLE w2048 (id int PRIMARY KEY, tag int, v vector(2048));
INSERT INTO w2048 SELECT * FROM wide_rows(2048, 1, 2000);
CREATE INDEX w2048_idx ON w2048 USING faiss (v, tag) WITH (factory = 'IVF16,Flat');
SELECT matches((SELECT description FROM benzer_index_info('w2048_idx')),
               '^rows 2000, nlist 16, .*lists in [0-9]+ pages read through shared buffers',
               '2048-d: an IVF-Flat index keeps its (straddling) lists in pages');
SELECT cmp_ok((SELECT list_pages FROM benzer_index_info('w2048_idx') i,
                      LATERAL (SELECT substring(i.description from 'lists in ([0-9]+) pages')::int
                               AS list_pages) p), '>=', 4000,
              '... two pages an entry');
SELECT is_empty($$SELECT * FROM benzer_index_check('w2048_idx')$$,
                'benzer_index_check: a fresh 2048-d index agrees with its table');
SELECT cmp_ok((SELECT avg(wide_recall('w2048', q)) FROM generate_series(7, 2000, 97) q), '>=',
              0.95::float, '2048-d: recall@10 >= 0.95 at the default settings');
SELECT ok(bool_and(wide_exact('w2048', q, 'tag = 3')),
          '2048-d: benzer.recall = 1 under a filter column condition is exact')
FROM generate_series(5, 2000, 199) q;

-- Inserted rows of 2 048 dimensions go to their list's tail, each 8 kB
-- vector out of line: nothing waits for a merge that rewrites the index.
SELECT pg_relation_size('w2048_idx') AS size_before \gset
INSERT INTO w2048 SELECT * FROM wide_rows(2048, 2001, 2100);
SELECT matches((SELECT description FROM benzer_index_info('w2048_idx')),
               '100 rows inserted into list tails',
               '2048-d IVF-Flat: inserted rows go to list tails');
SELECT is((SELECT pending_rows FROM benzer_index_info('w2048_idx')), 100::bigint,
          '... and count as inserted since the build');
SELECT cmp_ok(pg_relation_size('w2048_idx') - :size_before, '<=', 100 * 3 * 8192::bigint,
              '... about two pages a row, not a rewritten index');
SELECT is_empty($$SELECT * FROM benzer_index_check('w2048_idx')$$,
                'benzer_index_check: with 2048-d rows in list tails');
SET enable_seqscan = off;
SELECT is((SELECT count(*) FROM generate_series(2001, 2100, 9) q
           WHERE (SELECT id FROM w2048 ORDER BY v <-> (SELECT v FROM w2048 WHERE id = q)
                  LIMIT 1) = q),
          12::bigint, 'every looked-up inserted row is its own nearest neighbour');
SELECT is((SELECT count(*) FROM (SELECT id FROM w2048 WHERE tag = 4 ORDER BY v <->
                                 (SELECT v FROM w2048 WHERE id = 2014) LIMIT 10) s),
          10::bigint, 'a filtered LIMIT 10 over list and tail rows is filled');
SELECT ok(bool_and(wide_exact('w2048', q, 'tag = 2')),
          '2048-d: benzer.recall = 1 over lists and wide tails is exact')
FROM generate_series(2003, 2100, 31) q;
RESET enable_seqscan;
DELETE FROM w2048 WHERE id % 7 = 0;
SELECT is_empty($$SELECT * FROM benzer_index_check('w2048_idx')$$,
                'benzer_index_check: after deleting list and tail rows');
SELECT is(benzer_index_merge('w2048_idx'), 2100::bigint,
          'a merge folds the 2048-d tail rows in (deleted ones until VACUUM sees them)');
SELECT is_empty($$SELECT * FROM benzer_index_check('w2048_idx')$$,
                'benzer_index_check: after the merge');
SELECT cmp_ok((SELECT avg(wide_recall('w2048', q)) FROM generate_series(1, 2100, 97) q
               WHERE q % 7 <> 0), '>=', 0.95::float,
              '2048-d: recall@10 >= 0.95 after the merge');

-- 4 096 dimensions, IVF-SQ8 (4 kB codes, whole entries a page).
CREATE TABLE w4096 (id int PRIMARY KEY, tag int, v vector(4096));
INSERT INTO w4096 SELECT * FROM wide_rows(4096, 1, 1500);
CREATE INDEX w4096_idx ON w4096 USING faiss (v, tag) WITH (factory = 'IVF12,SQ8');
SELECT matches((SELECT description FROM benzer_index_info('w4096_idx')),
               '^rows 1500, nlist 12, .*lists in [0-9]+ pages',
               '4096-d: an IVF-SQ8 index keeps its lists in pages');
SELECT cmp_ok((SELECT avg(wide_recall('w4096', q)) FROM generate_series(3, 1500, 83) q), '>=',
              0.95::float, '4096-d: recall@10 >= 0.95 at the default settings');
INSERT INTO w4096 SELECT * FROM wide_rows(4096, 1501, 1560);
SELECT is_empty($$SELECT * FROM benzer_index_check('w4096_idx')$$,
                'benzer_index_check: with 4096-d pending rows');
SELECT cmp_ok((SELECT avg(wide_recall('w4096', q)) FROM generate_series(1501, 1560, 7) q), '>=',
              0.95::float, '4096-d: recall@10 >= 0.95 for pending rows');

-- 16 000 dimensions, the type's limit, on an untyped column: every row is
-- pending until there are enough to train on, eight pages each.
CREATE TABLE w16k (id int PRIMARY KEY, v vector);
INSERT INTO w16k SELECT i, (SELECT array_agg(random() + i % 5 ORDER BY j)
                            FROM generate_series(1, 16000) j WHERE i > 0)::vector
FROM generate_series(1, 40) i;
CREATE INDEX w16k_idx ON w16k USING faiss (v);
INSERT INTO w16k SELECT i, (SELECT array_agg(random() + i % 5 ORDER BY j)
                            FROM generate_series(1, 16000) j WHERE i > 0)::vector
FROM generate_series(41, 60) i;
SET enable_seqscan = off;
SELECT is((SELECT count(*) FROM generate_series(1, 60) q
           WHERE (SELECT id FROM w16k ORDER BY v <-> (SELECT v FROM w16k WHERE id = q)
                  LIMIT 1) = q),
          60::bigint, '16000-d: every row is its own nearest neighbour');
RESET enable_seqscan;
SELECT throws_ok($$INSERT INTO w16k VALUES (100, array_fill(1.0, ARRAY[15999])::vector)$$,
                 '22000', NULL, 'a row of another dimension is refused');
DELETE FROM w16k WHERE id > 50;
SELECT is_empty($$SELECT * FROM benzer_index_check('w16k_idx')$$,
                'benzer_index_check: 16000-d pending rows, some deleted');
SELECT is(benzer_index_merge('w16k_idx'), 60::bigint, 'a merge of 16000-d rows');
SELECT is_empty($$SELECT * FROM benzer_index_check('w16k_idx')$$,
                'benzer_index_check: after the 16000-d merge');

SELECT * FROM finish();
ROLLBACK;
