-- 030_btree: the btree operator class orders vectors consistently (element
-- by element, then by length, like real[]), and ORDER BY, DISTINCT, GROUP BY,
-- UNIQUE indexes, index scans and merge joins all agree with it.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

SELECT plan(27);

-- 3000 vectors of 1 to 4 dimensions with few distinct element values, so
-- there are many duplicates, common prefixes, -0 next to 0, and vectors that
-- differ only in length.
SELECT setseed(0.5);
CREATE TEMP TABLE vecs AS
SELECT i AS id,
       (SELECT array_agg((ARRAY[-1.5, -0.0, 0, 1e-45, 2, 3.4028235e38])[1 + floor(random() * 6)::int]
                         ORDER BY j)
        FROM generate_series(1, 1 + (i % 4)) AS j WHERE i > 0)::real[]::vector AS v
FROM generate_series(1, 3000) AS i;
INSERT INTO vecs VALUES (0, NULL);
ANALYZE vecs;

SELECT is((SELECT count(*) FROM vecs WHERE v IS NOT NULL), 3000::bigint, '3000 vectors');

-- Ordering ------------------------------------------------------------------

SELECT results_eq(
    $$SELECT id FROM vecs ORDER BY v, id$$,
    $$SELECT id FROM vecs ORDER BY v::real[], id$$,
    'ORDER BY v matches ORDER BY v::real[]');
SELECT results_eq(
    $$SELECT id FROM vecs ORDER BY v DESC, id$$,
    $$SELECT id FROM vecs ORDER BY v::real[] DESC, id$$,
    'ORDER BY v DESC matches ORDER BY v::real[] DESC');
SELECT results_eq(
    $$SELECT id FROM vecs ORDER BY v NULLS FIRST, id$$,
    $$SELECT id FROM vecs ORDER BY v::real[] NULLS FIRST, id$$,
    'ORDER BY v NULLS FIRST');
SELECT is(
    (SELECT ARRAY[v::text] FROM vecs WHERE v IS NOT NULL ORDER BY v LIMIT 1),
    ARRAY['[-1.5]'], 'the smallest vector is [-1.5]');
SELECT is(
    (SELECT vector_dims(v) FROM vecs WHERE v IS NOT NULL ORDER BY v DESC LIMIT 1), 4,
    'the largest vector is a longest one');

-- The comparison functions agree with each other ----------------------------

CREATE TEMP TABLE sample AS SELECT v FROM vecs WHERE v IS NOT NULL AND id % 30 = 0;
CREATE TEMP TABLE pairs AS
SELECT a.v AS a, b.v AS b, vector_cmp(a.v, b.v) AS cmp, vector_cmp(b.v, a.v) AS rcmp,
       btarraycmp(a.v::real[], b.v::real[]) AS array_cmp
FROM sample a, sample b;
SELECT is((SELECT count(*) FROM pairs), 10000::bigint, '10000 pairs compared');
SELECT is((SELECT count(*) FROM pairs WHERE cmp NOT IN (-1, 0, 1)), 0::bigint,
          'vector_cmp returns -1, 0 or 1');
SELECT is((SELECT count(*) FROM pairs WHERE cmp <> -rcmp), 0::bigint,
          'vector_cmp is antisymmetric');
SELECT is((SELECT count(*) FROM pairs WHERE sign(cmp) <> sign(array_cmp)), 0::bigint,
          'vector_cmp agrees with real[] comparison');
SELECT is((SELECT count(*) FROM pairs
           WHERE (a < b) IS DISTINCT FROM (cmp < 0) OR (a <= b) IS DISTINCT FROM (cmp <= 0)
              OR (a = b) IS DISTINCT FROM (cmp = 0) OR (a <> b) IS DISTINCT FROM (cmp <> 0)
              OR (a >= b) IS DISTINCT FROM (cmp >= 0) OR (a > b) IS DISTINCT FROM (cmp > 0)),
          0::bigint, '< <= = <> >= > agree with vector_cmp');
SELECT ok('[-0]'::vector = '[0]' AND vector_cmp('[-0,1]', '[0,1]') = 0, '-0 equals 0');
SELECT ok('[1,2]'::vector < '[1,2,0]' AND '[1,3]'::vector > '[1,2,9]', 'elements first, then length');

-- DISTINCT and GROUP BY -----------------------------------------------------

SELECT is((SELECT count(DISTINCT v) FROM vecs), (SELECT count(DISTINCT v::real[]) FROM vecs),
          'count(DISTINCT v) matches real[]');
SELECT bag_eq(
    $$SELECT DISTINCT v::real[] FROM vecs$$,
    $$SELECT DISTINCT v::real[] FROM (SELECT DISTINCT v FROM vecs) AS d$$,
    'SELECT DISTINCT v keeps one of each value');
SELECT results_eq(
    $$SELECT count(*) FROM vecs GROUP BY v ORDER BY v$$,
    $$SELECT count(*) FROM vecs GROUP BY v::real[] ORDER BY v::real[]$$,
    'GROUP BY v matches GROUP BY v::real[]');

-- UNIQUE index --------------------------------------------------------------

CREATE TEMP TABLE uniq (id int, v vector);
CREATE UNIQUE INDEX uniq_v ON uniq (v);
SELECT lives_ok($$INSERT INTO uniq SELECT min(id), v FROM vecs WHERE v IS NOT NULL GROUP BY v$$,
                'a UNIQUE index takes the distinct vectors');
SELECT throws_ok($$INSERT INTO uniq VALUES (-1, '[-1.5]')$$, '23505', NULL,
                 'a UNIQUE index rejects a duplicate');
SELECT throws_ok($$INSERT INTO uniq VALUES (-2, '[0,0]')$$, '23505', NULL,
                 'a UNIQUE index treats -0 and 0 as equal');
SELECT lives_ok($$INSERT INTO uniq VALUES (-3, '[0,0,0,0,0]'), (-4, '[7]')$$,
                'a UNIQUE index takes new values and new lengths');
SELECT lives_ok($$INSERT INTO uniq VALUES (-5, NULL), (-6, NULL)$$,
                'a UNIQUE index takes several NULLs');

-- Index scans ---------------------------------------------------------------

CREATE INDEX vecs_v ON vecs (v);
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SET LOCAL enable_sort = off;
SELECT results_eq(
    $$SELECT id FROM vecs ORDER BY v, id$$,
    $$SELECT id FROM vecs ORDER BY v::real[], id$$,
    'an index scan returns the same order');
SELECT bag_eq(
    $$SELECT id FROM vecs WHERE v = '[2,-0]'$$,
    $$SELECT id FROM vecs WHERE v::real[] = '{2,0}'$$,
    'an index scan finds equal vectors');
SELECT bag_eq(
    $$SELECT id FROM vecs WHERE v > '[0,2]' AND v <= '[2,1e-45,-1.5]'$$,
    $$SELECT id FROM vecs WHERE v::real[] > '{0,2}' AND v::real[] <= '{2,1e-45,-1.5}'$$,
    'an index range scan finds the same rows');
SELECT is(
    (SELECT count(*) FROM vecs WHERE v = '[2,-0]'),
    (SELECT count(*) FROM vecs WHERE v::real[] = '{2,0}'),
    'index and array equality agree on counts');
RESET enable_seqscan;
RESET enable_bitmapscan;
RESET enable_sort;

-- Merge join ----------------------------------------------------------------

SET LOCAL enable_hashjoin = off;
SET LOCAL enable_nestloop = off;
SELECT is(
    (SELECT count(*) FROM sample a JOIN sample b ON a.v = b.v),
    (SELECT count(*) FROM pairs WHERE cmp = 0),
    'a merge join on = finds the equal pairs');
RESET enable_hashjoin;
RESET enable_nestloop;

-- min/max through ORDER BY ... LIMIT (no min(vector) aggregate exists).
SELECT is(
    (SELECT vecs.v::text FROM vecs WHERE vecs.v IS NOT NULL ORDER BY vecs.v DESC LIMIT 1),
    (SELECT s.a::vector::text FROM (SELECT v::real[] AS a FROM vecs WHERE v IS NOT NULL
                                    ORDER BY a DESC LIMIT 1) AS s),
    'the largest vector agrees with real[]');

SELECT * FROM finish();
ROLLBACK;
