-- benzer demo: one faiss index per feature model, with filter columns.
-- scripts/demo.sh runs this after loading the data; it can be run again
-- (IF NOT EXISTS).
--
-- Each index is partial: one model and version, so all its vectors have one
-- dimension count.  The columns after the vector are filter columns: the
-- index stores each row's design, season, quality and tags, and conditions
-- on them in a query (=, IN (...), and && or @> on tags) can be applied
-- inside the Faiss search (for IN (...) the planner decides by cost; see
-- demo/README.md), so ORDER BY ... LIMIT k returns the k nearest rows that
-- match.  features carries copies of the image's metadata for this
-- (demo/schema.sql).
--
-- Without a factory option benzer chooses the structure from the row count:
-- for 70 000 rows IVF1058,Flat (4 * sqrt(rows) lists; nprobe = lists / 16).
-- A build needs about rows x dimensions x 8 bytes of maintenance_work_mem:
-- 440 MB for the 784-d pixels vectors.

\timing off
SET maintenance_work_mem = '1GB';
\timing on

\echo 'pixels model, v1: Euclidean distance (<->)'
CREATE INDEX IF NOT EXISTS features_pixels_v1_faiss ON features
    USING faiss (embedding vector_l2_ops, design, season, quality, tags)
    WHERE model = 'pixels' AND version = 'v1';

\echo 'pooled model, v1: cosine distance (<=>)'
CREATE INDEX IF NOT EXISTS features_pooled_v1_faiss ON features
    USING faiss (embedding vector_cosine_ops, design, season, quality, tags)
    WHERE model = 'pooled' AND version = 'v1';

-- benzer_index_info loads each index into this backend's memory: when they
-- were not just built here, that takes about half a second for the two.
\pset footer off
SELECT i.name AS index, i.factory, i.metric, i.dimensions AS dim, i.rows,
       pg_size_pretty(i.bytes_on_disk) AS size, i.description
FROM   unnest(ARRAY['features_pixels_v1_faiss', 'features_pooled_v1_faiss']::regclass[]) AS idx,
       benzer_index_info(idx) AS i;
