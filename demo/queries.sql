-- benzer demo: similarity search with filters over Fashion-MNIST.
-- Run with: psql -h <socket dir> -p <port> -U postgres benzer_demo -f demo/queries.sql
--
-- The queries are written so that the faiss indexes of demo/indexes.sql
-- answer them (without the indexes they still work, as exact sequential
-- scans):
--
--   * the query vector comes from a scalar subquery,
--       ORDER BY f.embedding <-> (SELECT embedding FROM features WHERE ...)
--     which the planner evaluates once, before the scan, and hands to the
--     index.  With the query row joined in FROM instead (FROM features f,
--     features q ... ORDER BY f.embedding <-> q.embedding) the distance is
--     no longer "column <-> value known before the scan" and no index can be
--     used: every row's distance is computed and sorted;
--   * the filters are on features' own copies of the metadata (f.season,
--     f.quality, f.design, f.tags), which the index carries as filter
--     columns: the index applies them inside its search and returns only
--     matching rows, nearest first.  images is joined only for the file name.
--
-- The first query of a session on an index loads it into the backend's
-- memory (the 217 MB pixels index takes a few hundred ms, the 57 MB pooled
-- one less); later queries reuse it.

\pset footer off
\timing on

\echo
\echo '1. The 10 images most like train/000001.png (an ankle boot): pixels model, Euclidean distance <->'
\echo '   (the first query of the session: it includes loading the index into memory)'
SELECT i.filename, f.design, f.season, f.quality,
       round((f.embedding <-> (SELECT embedding FROM features
                                WHERE image_id = 1 AND model = 'pixels' AND version = 'v1'))::numeric, 1) AS distance
FROM   features f JOIN images i USING (image_id)
WHERE  f.model = 'pixels' AND f.version = 'v1'
ORDER  BY f.embedding <-> (SELECT embedding FROM features
                           WHERE image_id = 1 AND model = 'pixels' AND version = 'v1')
LIMIT  10;

\echo
\echo '2. The app''s query (README.md, "What benzer is"): winter patterns most like train/000001.png'
\echo '   (season = ''winter'' is an index condition: 1 row in 4 matches, and all 10 rows returned are winter)'
SELECT i.filename, f.design, f.season, f.quality,
       f.embedding <-> (SELECT embedding FROM features
                        WHERE image_id = 1 AND model = 'pixels' AND version = 'v1') AS distance
FROM   features f JOIN images i USING (image_id)
WHERE  f.model = 'pixels' AND f.version = 'v1' AND f.season = 'winter'
ORDER  BY distance
LIMIT  10;

\echo
\echo '3. An IN list: winter or autumn patterns most like train/000001.png'
\echo '   (the planner decides by cost whether IN (...) is applied inside the index search or to the rows'
\echo '   the index scan returns; either way all 10 rows match, nearest first)'
SELECT i.filename, f.design, f.season, f.quality,
       round((f.embedding <-> (SELECT embedding FROM features
                                WHERE image_id = 1 AND model = 'pixels' AND version = 'v1'))::numeric, 1) AS distance
FROM   features f JOIN images i USING (image_id)
WHERE  f.model = 'pixels' AND f.version = 'v1' AND f.season IN ('winter', 'autumn')
ORDER  BY f.embedding <-> (SELECT embedding FROM features
                           WHERE image_id = 1 AND model = 'pixels' AND version = 'v1')
LIMIT  10;

\echo
\echo '4. A tag filter: floral items most like train/000004.png (a dress tagged geometric): tags && ARRAY[''floral'']'
SELECT i.filename, f.design, f.tags, f.season,
       round((f.embedding <-> (SELECT embedding FROM features
                                WHERE image_id = 4 AND model = 'pixels' AND version = 'v1'))::numeric, 1) AS distance
FROM   features f JOIN images i USING (image_id)
WHERE  f.model = 'pixels' AND f.version = 'v1' AND f.tags && ARRAY['floral']
ORDER  BY f.embedding <-> (SELECT embedding FROM features
                           WHERE image_id = 4 AND model = 'pixels' AND version = 'v1')
LIMIT  10;

\echo
\echo '5. Cosine distance <=> on the pooled model (196-d, its own index): quality-A leather items most like'
\echo '   train/000007.png (a sneaker): quality = ''A'' AND tags @> ARRAY[''leather'']'
\echo '   (the first query on the pooled index: it includes loading that index)'
SELECT i.filename, f.design, f.quality, f.tags,
       round((f.embedding <=> (SELECT embedding FROM features
                                WHERE image_id = 7 AND model = 'pooled' AND version = 'v1'))::numeric, 4) AS distance
FROM   features f JOIN images i USING (image_id)
WHERE  f.model = 'pooled' AND f.version = 'v1'
  AND  f.quality = 'A' AND f.tags @> ARRAY['leather']
ORDER  BY f.embedding <=> (SELECT embedding FROM features
                           WHERE image_id = 7 AND model = 'pooled' AND version = 'v1')
LIMIT  10;

\echo
\echo '6. A very selective filter: winter dresses of quality A (about 0.8 % of the rows) most like train/000004.png'
SELECT i.filename, f.design, f.season, f.quality,
       round((f.embedding <-> (SELECT embedding FROM features
                                WHERE image_id = 4 AND model = 'pixels' AND version = 'v1'))::numeric, 1) AS distance
FROM   features f JOIN images i USING (image_id)
WHERE  f.model = 'pixels' AND f.version = 'v1'
  AND  f.design = 'Dress' AND f.season = 'winter' AND f.quality = 'A'
ORDER  BY f.embedding <-> (SELECT embedding FROM features
                           WHERE image_id = 4 AND model = 'pixels' AND version = 'v1')
LIMIT  10;

\echo
\echo '7. How query 2 runs: the faiss index scan with season = ''winter'' as its Index Cond; benzer adds the'
\echo '   "Faiss index" line (the structure) and the "scan:" line (what this scan did)'
EXPLAIN (ANALYZE, COSTS OFF)
SELECT i.filename, f.design, f.season, f.quality,
       f.embedding <-> (SELECT embedding FROM features
                        WHERE image_id = 1 AND model = 'pixels' AND version = 'v1') AS distance
FROM   features f JOIN images i USING (image_id)
WHERE  f.model = 'pixels' AND f.version = 'v1' AND f.season = 'winter'
ORDER  BY distance
LIMIT  10;

\echo
\echo '8. Query 2 checked against the exact answer: its 10 image_ids from the index, then from a sequential'
\echo '   scan that computes every distance and sorts (SET LOCAL enable_indexscan = off)'
\echo '   from the index:'
SELECT array_agg(image_id) AS index_ids
FROM  (SELECT f.image_id
       FROM   features f
       WHERE  f.model = 'pixels' AND f.version = 'v1' AND f.season = 'winter'
       ORDER  BY f.embedding <-> (SELECT embedding FROM features
                                  WHERE image_id = 1 AND model = 'pixels' AND version = 'v1')
       LIMIT  10) s
\gset
\timing off
BEGIN;
SET LOCAL enable_indexscan = off;
\timing on
\echo '   exact (sequential scan and sort):'
SELECT array_agg(image_id) AS exact_ids
FROM  (SELECT f.image_id
       FROM   features f
       WHERE  f.model = 'pixels' AND f.version = 'v1' AND f.season = 'winter'
       ORDER  BY f.embedding <-> (SELECT embedding FROM features
                                  WHERE image_id = 1 AND model = 'pixels' AND version = 'v1')
       LIMIT  10) s
\gset
\timing off
COMMIT;
SELECT :'index_ids'::int[] = :'exact_ids'::int[] AS same \gset
\echo '   index:' :index_ids
\echo '   exact:' :exact_ids
\echo '   same 10 rows:' :same
\timing on

\echo
\echo '9. Sanity check: of the 10 nearest train images of 20 test images (pixels, <->, through the index),'
\echo '   how many share the test image''s design (0.82 with exact search on the full data)'
SELECT count(*) AS test_images,
       sum(nn.hits) || ' of ' || 10 * count(*) AS same_design,
       round(avg(nn.hits) / 10, 3) AS "precision@10"
FROM   (SELECT f.design, f.embedding
        FROM   features f JOIN images i USING (image_id)
        WHERE  i.split = 'test' AND f.model = 'pixels' AND f.version = 'v1'
        ORDER  BY f.image_id
        LIMIT  20) q,
       LATERAL (SELECT count(*) FILTER (WHERE n.design = q.design) AS hits
                FROM  (SELECT f.design
                       FROM   features f JOIN images i USING (image_id)
                       WHERE  f.model = 'pixels' AND f.version = 'v1' AND i.split = 'train'
                       ORDER  BY f.embedding <-> q.embedding
                       LIMIT  10) n) nn;
