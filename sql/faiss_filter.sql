-- Filter columns: WHERE conditions on columns stored in the faiss index
-- restrict the search itself, so the index returns only matching rows,
-- nearest first, and a LIMIT is always filled when enough rows match.
SET client_min_messages = warning;
SET enable_seqscan = off;

CREATE TABLE catalog (
    id int PRIMARY KEY,
    season text,
    quality char(1),
    design_id int8,
    small smallint,
    is_new boolean,
    tags text[],
    codes int4[],
    embedding vector(8));
INSERT INTO catalog
SELECT i,
       (ARRAY['winter', 'spring', 'summer', 'autumn'])[1 + i % 4],
       (ARRAY['A', 'B', 'C'])[1 + (i / 4) % 3],
       i % 50,
       (i % 7)::smallint,
       i % 5 = 0,
       CASE WHEN i % 10 = 0 THEN NULL
            ELSE ARRAY[(ARRAY['floral', 'striped', 'plain'])[1 + i % 3],
                       (ARRAY['cotton', 'wool'])[1 + i % 2]] END,
       ARRAY[i % 11, i % 13],
       array(SELECT sin(i * j * 0.13) * 5 FROM generate_series(1, 8) j)::real[]
FROM generate_series(1, 6000) i;
UPDATE catalog SET season = NULL WHERE id % 97 = 0;

-- quality is char(1): not a supported filter type.
CREATE INDEX ON catalog USING faiss (embedding, quality);
CREATE INDEX catalog_idx ON catalog USING faiss
    (embedding vector_l2_ops, season, design_id, small, is_new, tags, codes)
    WITH (factory = 'IVF16,Flat', nprobe = 2);
SELECT factory, rows FROM benzer_index_info('catalog_idx');

-- The exact answer for a condition, with the index disabled.
-- (SET clauses on the functions scope the settings to each call.)
CREATE FUNCTION exact(cond text, q vector, k int DEFAULT 10) RETURNS int[] LANGUAGE plpgsql
SET enable_indexscan = off SET enable_bitmapscan = off SET enable_seqscan = on AS $$
DECLARE result int[];
BEGIN
  EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM catalog WHERE %s ORDER BY embedding <-> $1, id LIMIT %s) s', cond, k)
    INTO result USING q;
  RETURN result;
END $$;
-- The index's answer, and whether the condition was an index condition.
CREATE FUNCTION indexed(cond text, q vector, k int DEFAULT 10) RETURNS int[] LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE result int[];
BEGIN
  EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM catalog WHERE %s ORDER BY embedding <-> $1 LIMIT %s) s', cond, k)
    INTO result USING q;
  RETURN result;
END $$;
CREATE FUNCTION plan_has_index_cond(cond text) RETURNS boolean LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE line text; has_cond boolean := false;
BEGIN
  FOR line IN EXECUTE format('EXPLAIN (COSTS OFF) SELECT id FROM catalog WHERE %s ORDER BY embedding <-> ''[0,0,0,0,0,0,0,0]'' LIMIT 10', cond) LOOP
    IF line LIKE '%Index Cond:%' THEN has_cond := true; END IF;
  END LOOP;
  RETURN has_cond;
END $$;

CREATE TABLE cases (cond text);
INSERT INTO cases VALUES
  ('season = ''winter'''),
  ('season IN (''winter'', ''summer'')'),
  ('season = ANY (ARRAY[''spring''])'),
  ('design_id = 7'),
  ('design_id = 7::int2'),
  ('design_id IN (1, 2, 3)'),
  ('small = 3'),
  ('small IN (1, 6)'),
  ('tags && ARRAY[''floral'']'),
  ('tags && ARRAY[''floral'', ''wool'']'),
  ('tags @> ARRAY[''striped'', ''wool'']'),
  ('tags @> ARRAY[]::text[]'),
  ('codes && ARRAY[3]'),
  ('codes @> ARRAY[3, 4]'),
  ('season = ''winter'' AND design_id = 8'),
  ('season = ''autumn'' AND tags && ARRAY[''plain''] AND small = 2'),
  ('season = ''nowhere'''),
  ('tags @> ARRAY[''velvet'']'),
  ('design_id = 7 AND design_id = 8');

-- Each condition: it is an index condition, and the index returns the exact
-- filtered top-10 (nprobe widens with the filter, small filters are exact).
SELECT cond,
       plan_has_index_cond(cond) AS index_cond,
       coalesce(array_length(indexed(cond, q), 1), 0) AS rows,
       indexed(cond, q) IS NOT DISTINCT FROM exact(cond, q) AS exact_match
FROM cases, (SELECT embedding AS q FROM catalog WHERE id = 1234) q
ORDER BY cond;

-- NULLs: a NULL filter value never matches =, a condition with NULL
-- matches nothing, IS NULL is applied above the index.
SELECT count(*) FROM catalog WHERE season IS NULL;
SELECT count(*) FROM (SELECT id FROM catalog WHERE season = NULL ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 10) s;
SELECT count(*) FROM (SELECT id FROM catalog WHERE season IS NULL ORDER BY embedding <-> '[0,0,0,0,0,0,0,0]' LIMIT 100) s;

-- Booleans: "= $1" (a parameter, in a generic plan) is an index condition;
-- a constant is folded into "WHERE is_new", which is applied above the
-- index like any other condition.
SET plan_cache_mode = force_generic_plan;
PREPARE by_flag(boolean) AS
  SELECT id FROM catalog WHERE is_new = $1 ORDER BY embedding <-> '[1,1,1,1,1,1,1,1]' LIMIT 5;
EXPLAIN (COSTS OFF) EXECUTE by_flag(true);
EXECUTE by_flag(true);
EXECUTE by_flag(false);
RESET plan_cache_mode;

-- Rows inserted after the build carry their filter values (pending rows),
-- updates that change a filter value move the row, and merges and
-- compaction keep every value with its row.
INSERT INTO catalog (id, season, design_id, small, is_new, tags, codes, embedding)
VALUES (7001, 'winter', 999, 1, true, ARRAY['velvet'], ARRAY[77], '[9,9,9,9,9,9,9,9]'),
       (7002, 'summer', 999, 1, true, ARRAY['velvet'], ARRAY[77], '[9,9,9,9,9,9,9,9.1]');
SELECT array_agg(id) FROM (SELECT id FROM catalog WHERE design_id = 999 AND season = 'winter'
                           ORDER BY embedding <-> '[9,9,9,9,9,9,9,9]' LIMIT 10) s;
SELECT array_agg(id) FROM (SELECT id FROM catalog WHERE tags @> ARRAY['velvet']
                           ORDER BY embedding <-> '[9,9,9,9,9,9,9,9]' LIMIT 10) s;
UPDATE catalog SET season = 'summer' WHERE id = 7001;
UPDATE catalog SET season = 'winter', design_id = 999 WHERE id = 10;
SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM catalog WHERE design_id = 999 AND season = 'winter'
                           ORDER BY embedding <-> '[9,9,9,9,9,9,9,9]' LIMIT 10) s;
SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM catalog WHERE design_id = 999 AND season = 'summer'
                           ORDER BY embedding <-> '[9,9,9,9,9,9,9,9]' LIMIT 10) s;
VACUUM catalog;
SELECT benzer_index_merge('catalog_idx');
SELECT rows, pending_rows, dead_rows FROM benzer_index_info('catalog_idx');
SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM catalog WHERE design_id = 999 AND season = 'summer'
                           ORDER BY embedding <-> '[9,9,9,9,9,9,9,9]' LIMIT 10) s;
SELECT benzer_index_merge('catalog_idx', compact => true);
SELECT rows, pending_rows, dead_rows FROM benzer_index_info('catalog_idx');
SELECT cond, indexed(cond, q) IS NOT DISTINCT FROM exact(cond, q) AS exact_match
FROM cases, (SELECT embedding AS q FROM catalog WHERE id = 4321) q
ORDER BY cond;

-- EXPLAIN ANALYZE says how many indexed rows the conditions matched.
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT id FROM catalog WHERE season = 'winter' AND small = 2
ORDER BY embedding <-> '[1,1,1,1,1,1,1,1]' LIMIT 5;
