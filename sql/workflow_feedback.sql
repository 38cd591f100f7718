-- Similarity scores, Rocchio relevance feedback, and the feedback schema of
-- docs/workflow.md.
SET client_min_messages = warning;
\set VERBOSITY default
-- Own schema: the other tests leave tables of the same names behind.
CREATE SCHEMA workflow_feedback;
SET search_path = workflow_feedback, public;

-- Scores ----------------------------------------------------------------------
SELECT cosine_similarity('[1,0]', '[1,0]') AS same,
       cosine_similarity('[1,0]', '[0,2]') AS orthogonal,
       cosine_similarity('[1,0]', '[-3,0]') AS opposite,
       round(cosine_similarity('[1,2,3]', '[2,4,6.5]')::numeric, 6) AS close;
SELECT cosine_similarity('[0,0]', '[1,2]') AS zero_vector;
SELECT euclidean_similarity('[1,2]', '[1,2]') AS same,
       euclidean_similarity('[0,0]', '[3,4]') AS distance_5,
       euclidean_similarity('[0,0]', '[3e18,4e18]') > 0 AS far_but_positive;
-- They agree with the distance operators.
SELECT cosine_similarity(a, b) = 1 - (a <=> b) AS cosine_ok,
       euclidean_similarity(a, b) = 1 / (1 + (a <-> b)) AS euclidean_ok
FROM (VALUES ('[1,2,3]'::vector, '[-1,0.5,2]'::vector)) t(a, b);
SELECT cosine_similarity(NULL, '[1,2]') IS NULL AS strict;
SELECT cosine_similarity('[1,2]', '[1,2,3]');
\echo :SQLSTATE
SELECT euclidean_similarity('[1,2]', '[1,2,3]');
\echo :SQLSTATE

-- Rocchio ---------------------------------------------------------------------
-- alpha * q + beta * mean(liked) - gamma * mean(disliked), by default
-- alpha 1, beta 0.75, gamma 0.15.
SELECT rocchio('[1,1]', ARRAY['[3,1]', '[1,3]']::vector[], ARRAY['[10,0]']::vector[]);
SELECT rocchio('[1,1]', ARRAY['[3,1]', '[1,3]']::vector[], ARRAY['[10,0]']::vector[], 0, 1, 0);
SELECT rocchio('[1,1]', ARRAY['[3,1]']::vector[], ARRAY['[10,0]']::vector[],
               alpha => 0.5, beta => 0.5, gamma => 0.1);
-- No feedback: the query scaled by alpha. NULL arrays (array_agg over no
-- rows), empty arrays and NULL elements add nothing.
SELECT rocchio('[1,2]', NULL, NULL) AS no_feedback,
       rocchio('[1,2]', '{}', '{}', alpha => 2) AS empty,
       rocchio('[1,2]', ARRAY[NULL, '[3,4]']::vector[], ARRAY[NULL]::vector[]) AS null_elements;
-- A NULL query or weight gives NULL.
SELECT rocchio(NULL, ARRAY['[1,2]']::vector[], NULL) IS NULL AS null_query,
       rocchio('[1,2]', NULL, NULL, beta => NULL) IS NULL AS null_weight;
-- Errors: mixed dimensions, a weight that is not finite, overflow, and a
-- two-dimensional array.
SELECT rocchio('[1,2]', ARRAY['[1,2,3]']::vector[], NULL);
\echo :SQLSTATE
SELECT rocchio('[1,2]', NULL, ARRAY['[1,2]', '[1]']::vector[]);
\echo :SQLSTATE
SELECT rocchio('[1,2]', NULL, NULL, alpha => 'NaN');
\echo :SQLSTATE
SELECT rocchio('[1,2]', NULL, NULL, gamma => 'Infinity');
\echo :SQLSTATE
SELECT rocchio('[3e38,1]', ARRAY['[3e38,1]']::vector[], NULL, 1, 1, 0);
\echo :SQLSTATE
SELECT rocchio('[1,2]', ARRAY[['[1,2]'], ['[1,2]']]::vector[], NULL);
\echo :SQLSTATE

-- The feedback workflow -------------------------------------------------------
-- Images of two designs along two axes, one feature model.
CREATE TABLE images (image_id int PRIMARY KEY, design text NOT NULL);
CREATE TABLE features (image_id int REFERENCES images, model text, version text,
                       embedding vector(2), PRIMARY KEY (image_id, model, version));
INSERT INTO images SELECT i, CASE WHEN i <= 50 THEN 'stripes' ELSE 'dots' END
FROM generate_series(1, 100) i;
-- stripes lie along x, dots along y; both crowd near the origin.
INSERT INTO features
SELECT i, 'pattern', 'v1',
       CASE WHEN i <= 50 THEN ARRAY[i / 10.0, (i % 5) / 10.0]
            ELSE ARRAY[(i % 5) / 10.0, (i - 50) / 10.0] END::real[]
FROM generate_series(1, 100) i;
CREATE INDEX ON features USING faiss (embedding) WHERE model = 'pattern' AND version = 'v1';

-- The feedback table (docs/workflow.md): one row per judgement.
CREATE TABLE feedback (
    feedback_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    query_image  int NOT NULL REFERENCES images,
    result_image int NOT NULL REFERENCES images,
    model        text NOT NULL,
    version      text NOT NULL,
    verdict      boolean NOT NULL,          -- true: a good result, false: a bad one
    user_name    text NOT NULL DEFAULT current_user,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (query_image, result_image, model, version, user_name)
);
CREATE INDEX ON feedback (query_image, model, version);

-- Image 3 (stripes, near the origin): the first 10 results mix designs.
CREATE TEMP TABLE first_results AS
SELECT f.image_id, i.design, row_number() OVER (ORDER BY f.embedding <-> q.embedding) AS rank
FROM features f JOIN images i USING (image_id),
     (SELECT embedding FROM features WHERE image_id = 3 AND model = 'pattern' AND version = 'v1') q
WHERE f.model = 'pattern' AND f.version = 'v1' AND f.image_id <> 3
ORDER BY f.embedding <-> q.embedding LIMIT 10;
SELECT count(*) FILTER (WHERE design = 'stripes') AS stripes_in_top10 FROM first_results;

-- The user marks them: stripes good, dots bad.
INSERT INTO feedback (query_image, result_image, model, version, verdict)
SELECT 3, image_id, 'pattern', 'v1', design = 'stripes' FROM first_results;

-- The refined query: Rocchio over the judged results' vectors.
CREATE TEMP TABLE refined AS
SELECT rocchio(q.embedding,
               array_agg(r.embedding) FILTER (WHERE fb.verdict),
               array_agg(r.embedding) FILTER (WHERE NOT fb.verdict)) AS embedding
FROM features q
JOIN feedback fb ON fb.query_image = q.image_id AND fb.model = q.model AND fb.version = q.version
JOIN features r ON r.image_id = fb.result_image AND r.model = fb.model AND r.version = fb.version
WHERE q.image_id = 3 AND q.model = 'pattern' AND q.version = 'v1'
GROUP BY q.embedding;
SELECT count(*) FILTER (WHERE i.design = 'stripes') AS stripes_in_top10_after_feedback
FROM (SELECT f.image_id FROM features f, refined
      WHERE f.model = 'pattern' AND f.version = 'v1' AND f.image_id <> 3
      ORDER BY f.embedding <-> refined.embedding LIMIT 10) r
JOIN images i USING (image_id);

-- With scores for display.
SELECT f.image_id, i.design,
       round(euclidean_similarity(f.embedding, refined.embedding)::numeric, 3) AS score
FROM features f JOIN images i USING (image_id), refined
WHERE f.model = 'pattern' AND f.version = 'v1'
ORDER BY f.embedding <-> refined.embedding, f.image_id LIMIT 3;

RESET search_path;
DROP SCHEMA workflow_feedback CASCADE;
