-- bench/workflow.sql: timings and quality figures of docs/workflow.md on
-- the Fashion-MNIST demo tables (images, features; demo/README.md).
--
--   psql -X -d DB -v queries=1000 -f bench/workflow.sql
--
-- Builds two faiss indexes on features (pixels, train split) one after the
-- other and drops them again; everything else is temporary tables. Needs
-- about 1 GB of maintenance_work_mem and 40 s. Prints psql \timing for every step.
-- The machine should be otherwise idle: OpenMP threads that wait for a
-- busy core make every timing meaningless.
\set ON_ERROR_STOP 1
\if :{?queries}
\else
\set queries 1000
\endif
SET maintenance_work_mem = '1GB';
SET client_min_messages = warning;

-- The query vectors: the first :queries test images.
CREATE TEMP TABLE q AS
SELECT image_id, embedding FROM features
WHERE model = 'pixels' AND version = 'v1' AND image_id > 60000
ORDER BY image_id LIMIT :queries;
CREATE TEMP TABLE qs AS
SELECT array_agg(image_id ORDER BY image_id) AS ids, array_agg(embedding ORDER BY image_id) AS vs
FROM q;

-- One index at a time over the 60 000 train vectors (model pixels, v1), so
-- that the single searches use the index the batch uses.
DROP INDEX IF EXISTS features_pixels_flat, features_pixels_ivf;

\echo '== exact (Flat) index: batch search vs single ORDER BY ... LIMIT 10 searches'
\timing on
CREATE INDEX features_pixels_flat ON features USING faiss (embedding)
    WITH (factory = 'Flat') WHERE model = 'pixels' AND version = 'v1' AND image_id <= 60000;
\timing off
-- Load the index into this backend's cache first (a first search pays for
-- reading it from its pages).
SELECT count(*) FROM benzer_batch_search('features_pixels_flat', (SELECT vs[1:1] FROM qs), 1);
SET benzer.threads = 1;
\timing on
-- :queries single searches, one statement (LATERAL: no client round trips)
CREATE TEMP TABLE single_flat AS
SELECT q.image_id AS query_image, r.image_id, r.rank
FROM q, LATERAL (
    SELECT f.image_id, row_number() OVER () AS rank
    FROM (SELECT image_id FROM features f
          WHERE f.model = 'pixels' AND f.version = 'v1' AND f.image_id <= 60000
          ORDER BY f.embedding <-> q.embedding LIMIT 10) f) r;
-- one batch call, 1 thread
CREATE TEMP TABLE batch_flat AS
SELECT qs.ids[r.query] AS query_image, f.image_id, r.rank
FROM qs, benzer_batch_search('features_pixels_flat', qs.vs, 10) r JOIN features f ON f.ctid = r.tid;
SET benzer.threads = 2;
-- one batch call, 2 threads
CREATE TEMP TABLE batch_flat2 AS
SELECT qs.ids[r.query] AS query_image, f.image_id, r.rank
FROM qs, benzer_batch_search('features_pixels_flat', qs.vs, 10) r JOIN features f ON f.ctid = r.tid;
\timing off
SELECT (SELECT count(*) FROM single_flat) AS single_rows, (SELECT count(*) FROM batch_flat) AS batch_rows,
       (SELECT count(*) FROM single_flat JOIN batch_flat USING (query_image, image_id)) AS same_rows;
DROP INDEX features_pixels_flat;

\echo '== IVF index (the automatic choice for 60 000 rows): batch search vs single searches'
\timing on
CREATE INDEX features_pixels_ivf ON features USING faiss (embedding)
    WHERE model = 'pixels' AND version = 'v1' AND image_id <= 60000;
\timing off
SELECT index, factory, rows, size FROM benzer_indexes() WHERE "table" = 'features'::regclass;
SELECT count(*) FROM benzer_batch_search('features_pixels_ivf', (SELECT vs[1:1] FROM qs), 1);
SET benzer.threads = 1;
\timing on
CREATE TEMP TABLE single_ivf AS
SELECT q.image_id AS query_image, r.image_id, r.rank
FROM q, LATERAL (
    SELECT f.image_id, row_number() OVER () AS rank
    FROM (SELECT image_id FROM features f
          WHERE f.model = 'pixels' AND f.version = 'v1' AND f.image_id <= 60000
          ORDER BY f.embedding <-> q.embedding LIMIT 10) f) r;
CREATE TEMP TABLE batch_ivf AS
SELECT qs.ids[r.query] AS query_image, f.image_id, r.rank
FROM qs, benzer_batch_search('features_pixels_ivf', qs.vs, 10) r JOIN features f ON f.ctid = r.tid;
SET benzer.threads = 2;
CREATE TEMP TABLE batch_ivf2 AS
SELECT qs.ids[r.query] AS query_image, f.image_id, r.rank
FROM qs, benzer_batch_search('features_pixels_ivf', qs.vs, 10) r JOIN features f ON f.ctid = r.tid;
\timing off
-- The same single searches as :queries separate statements, as an
-- application sends them (each parsed, planned and answered on its own).
SET benzer.threads = 1;
SELECT clock_timestamp() AS started \gset
\o /dev/null
SELECT format('SELECT image_id FROM features f WHERE f.model = ''pixels'' AND f.version = ''v1'' '
              'AND f.image_id <= 60000 ORDER BY f.embedding <-> %L::vector LIMIT 10', embedding)
FROM q ORDER BY image_id \gexec
\o
SELECT round(extract(epoch FROM clock_timestamp() - :'started') * 1000) AS separate_statements_ms;
SELECT (SELECT count(*) FROM single_ivf) AS single_rows, (SELECT count(*) FROM batch_ivf) AS batch_rows,
       (SELECT count(*) FROM single_ivf JOIN batch_ivf USING (query_image, image_id)) AS same_rows,
       (SELECT count(*) FROM single_flat JOIN batch_ivf USING (query_image, image_id)) AS same_as_exact;

\echo '== relevance feedback (Rocchio) on the IVF index, simulated judgements'
-- Precision@10: the share of the top 10 train images of the query's design.
-- The "user" marks each of the first 10 results good (same design) or bad.
CREATE TEMP TABLE feedback AS
SELECT b.query_image, b.image_id AS result_image, 'pixels'::text AS model, 'v1'::text AS version,
       qi.design = ri.design AS verdict
FROM batch_ivf b JOIN images qi ON qi.image_id = b.query_image
JOIN images ri ON ri.image_id = b.image_id;
SELECT round(avg(verdict::int), 4) AS precision_at_10_before FROM feedback;

-- Refined queries, then a new batch search (20 rows, for the residual
-- measure that leaves out the 10 judged images).
CREATE TEMP TABLE refine_settings (setting text, alpha float8, beta float8, gamma float8);
-- The textbook defaults, and weights with alpha + beta - gamma = 1, which
-- keep the query's scale (it matters for L2 distance).
INSERT INTO refine_settings VALUES ('defaults 1, 0.75, 0.15', 1, 0.75, 0.15),
                                   ('scale kept 0.5, 1, 0.5', 0.5, 1, 0.5),
                                   ('liked only 0.5, 0.5, 0', 0.5, 0.5, 0);
CREATE TEMP TABLE refined AS
SELECT s.setting, fb.query_image,
       rocchio(q.embedding,
               array_agg(r.embedding) FILTER (WHERE fb.verdict),
               array_agg(r.embedding) FILTER (WHERE NOT fb.verdict),
               s.alpha, s.beta, s.gamma) AS embedding
FROM refine_settings s, feedback fb
JOIN features q ON q.image_id = fb.query_image AND q.model = fb.model AND q.version = fb.version
JOIN features r ON r.image_id = fb.result_image AND r.model = fb.model AND r.version = fb.version
GROUP BY s.setting, s.alpha, s.beta, s.gamma, fb.query_image, q.embedding;
SET benzer.threads = 2;
CREATE TEMP TABLE after AS
SELECT x.setting, x.ids[r.query] AS query_image, f.image_id, r.rank
FROM (SELECT setting, array_agg(query_image ORDER BY query_image) AS ids,
             array_agg(embedding ORDER BY query_image) AS vs
      FROM refined GROUP BY setting) x,
     LATERAL benzer_batch_search('features_pixels_ivf', x.vs, 20) r
JOIN features f ON f.ctid = r.tid;
SELECT a.setting,
       round(avg((qi.design = ri.design)::int) FILTER (WHERE a.rank <= 10), 4) AS precision_at_10_after,
       round(avg((qi.design = ri.design)::int) FILTER (WHERE a.residual_rank <= 10), 4)
           AS residual_precision_at_10
FROM (SELECT after.*, CASE WHEN fb.result_image IS NULL THEN
                          row_number() OVER (PARTITION BY after.setting, after.query_image, fb.result_image IS NULL
                                             ORDER BY after.rank) END AS residual_rank
      FROM after LEFT JOIN feedback fb
        ON fb.query_image = after.query_image AND fb.result_image = after.image_id) a
JOIN images qi ON qi.image_id = a.query_image JOIN images ri ON ri.image_id = a.image_id
GROUP BY a.setting ORDER BY a.setting;
-- Without feedback, the residual baseline: results 11..20 of the first search.
CREATE TEMP TABLE before20 AS
SELECT qs.ids[r.query] AS query_image, f.image_id, r.rank
FROM qs, benzer_batch_search('features_pixels_ivf', qs.vs, 20) r JOIN features f ON f.ctid = r.tid;
SELECT round(avg((qi.design = ri.design)::int) FILTER (WHERE b.rank > 10), 4)
           AS precision_of_results_11_to_20_before
FROM before20 b JOIN images qi ON qi.image_id = b.query_image JOIN images ri ON ri.image_id = b.image_id;

DROP INDEX features_pixels_ivf;
