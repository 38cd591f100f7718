-- 090_rerank: an IVF index of compressed codes (SQ, PQ) with its lists in
-- pages keeps no vectors; its searches re-rank k x k_factor candidates by
-- the exact distance of their heap rows' vectors (faiss_rerank.h), so the
-- order is exact among the candidates, and with every list visited the
-- answers are exactly a sequential scan's. The same holds for rows in list
-- tails and for benzer_batch_search.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS benzer;

SELECT plan(11);

SELECT setseed(0.125);
CREATE FUNCTION rr_vec(i int) RETURNS vector LANGUAGE sql AS $$
    SELECT (SELECT array_agg(random() + (i % 13) * 0.2 ORDER BY j)
            FROM generate_series(1, 24) j WHERE i > 0)::vector
$$;
CREATE TABLE rr (id int PRIMARY KEY, tag int, v vector(24));
INSERT INTO rr SELECT i, i % 4, rr_vec(i) FROM generate_series(1, 4000) i;
SET maintenance_work_mem = '256MB';
CREATE INDEX rr_idx ON rr USING faiss (v, tag) WITH (factory = 'IVF16,SQ4');
INSERT INTO rr SELECT i, i % 4, rr_vec(i) FROM generate_series(4001, 4300) i;

CREATE FUNCTION rr_explain(q text) RETURNS text LANGUAGE plpgsql AS $$
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
SELECT matches(rr_explain('SELECT id FROM rr ORDER BY v <-> (SELECT v FROM rr WHERE id = 9) LIMIT 10'),
               '40 candidates re-ranked by the table''s vectors',
               'EXPLAIN: 10 x 4 candidates re-ranked by the table''s vectors');
RESET enable_seqscan;

-- Every list visited: exactly a sequential scan's answer, in its order.
CREATE FUNCTION rr_same(q int, cond text, k int DEFAULT 10) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    got text;
    want text;
    query text := format('SELECT string_agg(id || '':'' || round((v <-> %s)::numeric, 4), '','') '
                         'FROM (SELECT id, v FROM rr WHERE %s ORDER BY v <-> %s LIMIT %s) s',
                         '(SELECT v FROM rr WHERE id = ' || q || ')', cond,
                         '(SELECT v FROM rr WHERE id = ' || q || ')', k);
BEGIN
    SET LOCAL benzer.recall = 1;
    SET LOCAL enable_seqscan = off;
    EXECUTE query INTO got;
    SET LOCAL enable_indexscan = off;
    SET LOCAL enable_bitmapscan = off;
    SET LOCAL enable_seqscan = on;
    EXECUTE query INTO want;
    IF got IS DISTINCT FROM want THEN
        RAISE NOTICE 'query %: index %, exact %', q, got, want;
    END IF;
    RETURN got IS NOT DISTINCT FROM want;
END $$;
SELECT ok(bool_and(rr_same(q, 'true')), 'SQ4 codes, every list: the exact top 10 in exact order')
FROM generate_series(1, 4300, 331) q;
SELECT ok(bool_and(rr_same(q, 'tag = 2')), '... under a filter column condition')
FROM generate_series(2, 4300, 331) q;
SELECT ok(bool_and(rr_same(q, 'true')), '... for rows inserted into list tails')
FROM generate_series(4001, 4300, 37) q;

-- The tuned default: the distances come out in order, and each row is its
-- own nearest neighbour.
SET enable_seqscan = off;
SELECT ok(bool_and(ordered), 'at the default settings the distances come out in order')
FROM (SELECT q, (SELECT bool_and(d >= coalesce(prev, 0))
                 FROM (SELECT d, lag(d) OVER (ORDER BY n) AS prev
                       FROM (SELECT row_number() OVER () AS n, v <-> (SELECT v FROM rr WHERE id = q) AS d
                             FROM (SELECT v FROM rr ORDER BY v <-> (SELECT v FROM rr WHERE id = q)
                                   LIMIT 20) s) t) u) AS ordered
      FROM generate_series(5, 4300, 211) q) w;
SELECT is((SELECT count(*) FROM generate_series(3, 4300, 43) q
           WHERE (SELECT id FROM rr ORDER BY v <-> (SELECT v FROM rr WHERE id = q) LIMIT 1) = q),
          100::bigint, 'every looked-up row (built or inserted) is its own nearest neighbour');
SET benzer.k_factor = 1;
SELECT matches(rr_explain('SELECT id FROM rr ORDER BY v <-> (SELECT v FROM rr WHERE id = 9) LIMIT 10'),
               ' 10 candidates re-ranked', 'benzer.k_factor = 1: just the k candidates, re-ranked');
RESET benzer.k_factor;
RESET enable_seqscan;

-- benzer_batch_search re-ranks too.
SET benzer.nprobe = 16;
SELECT is((SELECT string_agg(rr.id::text, ',' ORDER BY r.rank) FROM benzer_batch_search('rr_idx',
               ARRAY[(SELECT v FROM rr WHERE id = 1234)], 10) r JOIN rr ON rr.ctid = r.tid),
          (SELECT string_agg(id::text, ',') FROM (SELECT id FROM rr ORDER BY v <->
               (SELECT v FROM rr WHERE id = 1234), id LIMIT 10) s),
          'benzer_batch_search, every list: the exact top 10');
SELECT ok((SELECT bool_and(abs(r.distance - (rr.v <-> (SELECT v FROM rr WHERE id = 4100))) < 1e-4)
           FROM benzer_batch_search('rr_idx', ARRAY[(SELECT v FROM rr WHERE id = 4100)], 10) r
           JOIN rr ON rr.ctid = r.tid),
          'benzer_batch_search returns the exact distances');
RESET benzer.nprobe;

-- Lists holding vectors (IVF-Flat) have nothing to re-rank.
CREATE INDEX rr_flat ON rr USING faiss (v) WITH (factory = 'IVF16,Flat');
DROP INDEX rr_idx;
SET enable_seqscan = off;
SELECT doesnt_match(rr_explain('SELECT id FROM rr ORDER BY v <-> (SELECT v FROM rr WHERE id = 9) LIMIT 10'),
                    're-ranked', 'IVF-Flat lists: no re-ranking');
RESET enable_seqscan;

-- An index on an expression cannot be re-ranked from the table: codes' order.
CREATE INDEX rr_expr ON rr USING faiss ((v + v)) WITH (factory = 'IVF16,SQ8');
DROP INDEX rr_flat;
SET enable_seqscan = off;
SELECT doesnt_match(rr_explain('SELECT id FROM rr ORDER BY (v + v) <-> (SELECT v + v FROM rr WHERE id = 9) LIMIT 10'),
                    're-ranked', 'an expression index: no re-ranking');
RESET enable_seqscan;

SELECT * FROM finish();
ROLLBACK;
