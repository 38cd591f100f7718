-- benzer demo: similarity search with filters over Fashion-MNIST.
-- Run with: psql -h <socket dir> -p <port> -U postgres benzer_demo -f demo/queries.sql
-- Without indexes each query is an exact sequential scan; demo/indexes.sql
-- (run by scripts/demo.sh when it exists) adds Faiss indexes, with which
-- the same queries become approximate and fast.

\pset footer off
\timing on

\echo
\echo '1. The 10 images most like train/000001.png (an ankle boot): pixels model, Euclidean distance <->'
SELECT i.filename, i.design, i.season, i.quality,
       round((f.embedding <-> q.embedding)::numeric, 1) AS distance
FROM   features f
JOIN   images i USING (image_id),
       (SELECT embedding FROM features
         WHERE image_id = 1 AND model = 'pixels' AND version = 'v1') q
WHERE  f.model = 'pixels' AND f.version = 'v1'
ORDER  BY f.embedding <-> q.embedding
LIMIT  10;

\echo
\echo '2. The same, but only winter patterns of quality A (about 1 image in 12)'
SELECT i.filename, i.design, i.season, i.quality,
       round((f.embedding <-> q.embedding)::numeric, 1) AS distance
FROM   features f
JOIN   images i USING (image_id),
       (SELECT embedding FROM features
         WHERE image_id = 1 AND model = 'pixels' AND version = 'v1') q
WHERE  f.model = 'pixels' AND f.version = 'v1'
  AND  i.season = 'winter' AND i.quality = 'A'
ORDER  BY f.embedding <-> q.embedding
LIMIT  10;

\echo
\echo '3. The app''s query (DESIGN.md §1): winter patterns most like train/000002.png (a T-shirt/top)'
SELECT i.filename, i.design, i.season, i.quality,
       round((f.embedding <-> q.embedding)::numeric, 1) AS distance
FROM   features f
JOIN   images   i USING (image_id),
       (SELECT embedding FROM features
         WHERE image_id = 2 AND model = 'pixels' AND version = 'v1') q
WHERE  f.model = 'pixels' AND f.version = 'v1' AND i.season = 'winter'
ORDER  BY f.embedding <-> q.embedding
LIMIT  10;

\echo
\echo '4. Cosine distance <=> on the pooled model (196-d): quality-A items most like train/000007.png (a sneaker)'
SELECT i.filename, i.design, i.season, i.quality,
       round((f.embedding <=> q.embedding)::numeric, 4) AS distance
FROM   features f
JOIN   images   i USING (image_id),
       (SELECT embedding FROM features
         WHERE image_id = 7 AND model = 'pooled' AND version = 'v1') q
WHERE  f.model = 'pooled' AND f.version = 'v1' AND i.quality = 'A'
ORDER  BY f.embedding <=> q.embedding
LIMIT  10;

\echo
\echo '5. A tag filter: floral items most like train/000004.png (a dress tagged geometric): pixels model, <->'
SELECT i.filename, i.design, i.tags, i.season,
       round((f.embedding <-> q.embedding)::numeric, 1) AS distance
FROM   features f
JOIN   images   i USING (image_id),
       (SELECT embedding FROM features
         WHERE image_id = 4 AND model = 'pixels' AND version = 'v1') q
WHERE  f.model = 'pixels' AND f.version = 'v1' AND i.tags && ARRAY['floral']
ORDER  BY f.embedding <-> q.embedding
LIMIT  10;

\echo
\echo '6. Sanity check: of the 10 nearest train images of 20 test images (pixels, <->), how many share the test image''s design'
SELECT count(*) AS test_images,
       sum(nn.hits) || ' of ' || 10 * count(*) AS same_design,
       round(avg(nn.hits) / 10, 3) AS "precision@10"
FROM   (SELECT i.design, f.embedding
        FROM   images i JOIN features f USING (image_id)
        WHERE  i.split = 'test' AND f.model = 'pixels' AND f.version = 'v1'
        ORDER  BY i.image_id
        LIMIT  20) q,
       LATERAL (SELECT count(*) FILTER (WHERE n.design = q.design) AS hits
                FROM  (SELECT i.design
                       FROM   features f JOIN images i USING (image_id)
                       WHERE  f.model = 'pixels' AND f.version = 'v1' AND i.split = 'train'
                       ORDER  BY f.embedding <-> q.embedding
                       LIMIT  10) n) nn;
