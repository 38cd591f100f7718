-- k-means in SQL: benzer_kmeans, benzer_kmeans_centroids, benzer_kmeans_assign.
SET client_min_messages = warning;
\set VERBOSITY default
-- Own schema: the other tests leave tables of the same names behind.
CREATE SCHEMA workflow_kmeans;
SET search_path = workflow_kmeans, public;

-- Three well separated groups of 100 points in 8 dimensions (group g
-- around g * 100), deterministic.
CREATE TABLE points (id int, grp int, v vector(8));
INSERT INTO points
SELECT i, i % 3,
       array(SELECT (i % 3) * 100 + ((i * 7 + j * 13) % 10) / 10.0
             FROM generate_series(1, 8) j)::real[]
FROM generate_series(1, 300) i;

-- Every group lands in one cluster of its own.
CREATE TEMP TABLE km AS
SELECT * FROM benzer_kmeans('SELECT id, v FROM points', 3, seed => 7);
SELECT count(*) AS rows, count(DISTINCT cluster) AS clusters,
       min(cluster) AS first, max(cluster) AS last FROM km;
SELECT p.grp, count(DISTINCT km.cluster) AS clusters_of_group, count(*) AS rows
FROM km JOIN points p ON p.id = km.id GROUP BY p.grp ORDER BY p.grp;

-- The centroids: one per cluster, sizes add up, and each row's distance is
-- exactly the L2 distance to its centroid.
CREATE TEMP TABLE kc AS
SELECT * FROM benzer_kmeans_centroids('SELECT id, v FROM points', 3, seed => 7);
SELECT count(*) AS centroids, sum(size) AS rows, min(size) AS smallest,
       min(vector_dims(centroid)) AS dims FROM kc;
SELECT count(*) AS sizes_differ FROM kc
WHERE size <> (SELECT count(*) FROM km WHERE km.cluster = kc.cluster);
SELECT count(*) AS distances_differ
FROM km JOIN points p USING (id) JOIN kc USING (cluster)
WHERE km.distance <> (p.v <-> kc.centroid);
-- Each group's centroid is its mean (the groups are the clusters).
SELECT p.grp, round((avg(p.v) <-> kc.centroid)::numeric, 4) AS centroid_vs_mean
FROM points p JOIN km USING (id) JOIN kc USING (cluster)
GROUP BY p.grp, kc.centroid ORDER BY p.grp;

-- The result depends on the rows, not on the order the query returns them.
SELECT count(*) AS differ FROM (
  (SELECT id, cluster FROM km
   EXCEPT SELECT id, cluster FROM benzer_kmeans('SELECT id, v FROM points ORDER BY id DESC', 3, seed => 7))
  UNION ALL
  (SELECT id, cluster FROM benzer_kmeans('SELECT id, v FROM points ORDER BY grp, id', 3, seed => 7)
   EXCEPT SELECT id, cluster FROM km)) d;

-- New rows join the nearest cluster: benzer_kmeans_assign agrees with
-- benzer_kmeans on every row.
SELECT count(*) AS assign_differs
FROM km JOIN points p USING (id)
WHERE benzer_kmeans_assign(p.v, (SELECT array_agg(centroid ORDER BY cluster) FROM kc))
      <> km.cluster;
SELECT benzer_kmeans_assign('[1,2]', ARRAY['[0,0]', NULL, '[1,2.5]', '[1,2.5]']::vector[]) AS nearest;

-- Integer ids of any width; NULL ids pass through; NULL vectors are skipped.
CREATE TABLE odd (id smallint, v vector);
INSERT INTO odd VALUES (1, '[0,0]'), (2, '[0,1]'), (NULL, '[10,10]'), (4, NULL), (5, '[10,11]');
SELECT id, cluster, round(distance::numeric, 3) AS distance
FROM benzer_kmeans('SELECT id, v FROM odd', 2, seed => 1) ORDER BY id NULLS LAST;

-- As many clusters as rows: every row is its own centroid.
SELECT count(DISTINCT cluster) AS clusters, max(distance) AS max_distance
FROM benzer_kmeans('SELECT id, v FROM points WHERE id <= 5', 5);

-- Few iterations, a small training sample, or a sample larger than the table.
SELECT count(*), count(DISTINCT cluster)
FROM benzer_kmeans('SELECT id, v FROM points', 3, iterations => 1, seed => 7);
SELECT count(*), count(DISTINCT cluster)
FROM benzer_kmeans('SELECT id, v FROM points', 3, seed => 7, sample_size => 30);
SELECT count(*) AS differ FROM (
  SELECT id, cluster FROM benzer_kmeans('SELECT id, v FROM points', 3, seed => 7, sample_size => 1000000)
  EXCEPT SELECT id, cluster FROM benzer_kmeans('SELECT id, v FROM points', 3, seed => 7, sample_size => 300)) d;

-- Spherical k-means (cosine): unit centroids, cosine distances.
CREATE TABLE directions (id int, v vector(3));
INSERT INTO directions
SELECT i, CASE i % 2 WHEN 0 THEN ARRAY[1 + i % 5, 0.1 * (i % 3), 0]
                     ELSE ARRAY[0, 0.1 * (i % 3), 1 + i % 7] END::real[]
FROM generate_series(1, 100) i;
CREATE TEMP TABLE sk AS
SELECT * FROM benzer_kmeans('SELECT id, v FROM directions', 2, spherical => true);
CREATE TEMP TABLE sc AS
SELECT * FROM benzer_kmeans_centroids('SELECT id, v FROM directions', 2, spherical => true);
SELECT d.id % 2 AS parity, count(DISTINCT sk.cluster) AS clusters
FROM sk JOIN directions d USING (id) GROUP BY 1 ORDER BY 1;
SELECT round(vector_norm(centroid)::numeric, 5) AS norm, size FROM sc ORDER BY cluster;
SELECT count(*) AS distances_differ
FROM sk JOIN directions d USING (id) JOIN sc USING (cluster)
WHERE sk.distance <> (d.v <=> sc.centroid);
SELECT count(*) AS assign_differs
FROM sk JOIN directions d USING (id)
WHERE benzer_kmeans_assign(d.v, (SELECT array_agg(centroid ORDER BY cluster) FROM sc), true)
      <> sk.cluster;

-- One model/version at a time into a clusters table (the docs' example).
CREATE TABLE features (image_id int, model text, version text, embedding vector);
INSERT INTO features SELECT id, 'pattern', 'v1', v FROM points;
INSERT INTO features SELECT id, 'pattern', 'v2', v + v FROM points;
INSERT INTO features SELECT id, 'color', 'v1', subvector(v, 1, 4) FROM points;
CREATE TABLE clusters (image_id int, model text, version text, cluster int,
                       PRIMARY KEY (image_id, model, version));
INSERT INTO clusters (image_id, model, version, cluster)
SELECT k.id, mv.model, mv.version, k.cluster
FROM (SELECT DISTINCT model, version FROM features) mv,
     LATERAL benzer_kmeans(
         format('SELECT image_id, embedding FROM features WHERE model = %L AND version = %L',
                mv.model, mv.version),
         3, seed => 7) k;
SELECT model, version, cluster, count(*) AS size
FROM clusters GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- Bad arguments --------------------------------------------------------------

-- k larger than the rows, zero or negative k, zero iterations, negative sample.
SELECT * FROM benzer_kmeans('SELECT id, v FROM points WHERE id <= 5', 6);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELECT id, v FROM points', 0);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans_centroids('SELECT id, v FROM points', -3);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELECT id, v FROM points', 3, iterations => 0);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELECT id, v FROM points', 3, sample_size => -1);
\echo :SQLSTATE
-- Empty input, and input with only NULL vectors.
SELECT * FROM benzer_kmeans('SELECT id, v FROM points WHERE false', 2);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELECT id, v FROM odd WHERE v IS NULL', 1);
\echo :SQLSTATE
-- NULL arguments.
SELECT * FROM benzer_kmeans(NULL, 3);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELECT id, v FROM points', NULL);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans_centroids('SELECT id, v FROM points', 3, seed => NULL);
\echo :SQLSTATE
-- Mixed dimensions.
CREATE TABLE mixed (id int, v vector);
INSERT INTO mixed VALUES (1, '[1,2,3]'), (2, '[1,2]');
SELECT * FROM benzer_kmeans('SELECT id, v FROM mixed', 1);
\echo :SQLSTATE
-- Queries of the wrong shape.
SELECT * FROM benzer_kmeans('SELECT v FROM points', 3);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELECT id::text, v FROM points', 3);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELECT id, v::real[] FROM points', 3);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELECT id, v, grp FROM points', 3);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('DELETE FROM points', 3);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELEKT 1', 3);
\echo :SQLSTATE
SELECT * FROM benzer_kmeans('SELECT id, v FROM no_such_table', 3);
\echo :SQLSTATE
-- benzer_kmeans_assign: mixed dimensions, nothing to choose from.
SELECT benzer_kmeans_assign('[1,2]', ARRAY['[1,2,3]']::vector[]);
\echo :SQLSTATE
SELECT benzer_kmeans_assign('[1,2]', ARRAY[NULL]::vector[]);
\echo :SQLSTATE
SELECT benzer_kmeans_assign('[1,2]', '{}'::vector[]);
\echo :SQLSTATE

-- Too little memory: maintenance_work_mem bounds the rows held.
CREATE TABLE wide AS
SELECT i AS id, array_fill((i % 10)::real, ARRAY[512])::vector(512) AS v
FROM generate_series(1, 1000) i;
SET maintenance_work_mem = '1MB';
SELECT count(*) FROM benzer_kmeans('SELECT id, v FROM wide', 10);
\echo :SQLSTATE
-- The rows fit, the rows and the clustering's own buffers do not.
SET maintenance_work_mem = '4MB';
SELECT count(*) FROM benzer_kmeans('SELECT id, v FROM wide', 10);
\echo :SQLSTATE
RESET maintenance_work_mem;

-- Cancellation: statement_timeout stops a long clustering (Faiss's
-- interrupt check, or the check between steps), and the session goes on.
CREATE TABLE slow AS
SELECT i AS id, array_fill((i % 97)::real, ARRAY[64])::vector(64) AS v
FROM generate_series(1, 20000) i;
SET statement_timeout = '200ms';
SELECT count(*) FROM benzer_kmeans('SELECT id, v FROM slow', 200, sample_size => 20000);
\echo :SQLSTATE
RESET statement_timeout;
SELECT count(*) FROM benzer_kmeans('SELECT id, v FROM points', 3, iterations => 5);

RESET search_path;
DROP SCHEMA workflow_kmeans CASCADE;
