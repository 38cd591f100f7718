-- The pattern-search workflow: scores, clustering, batch search, feedback,
-- inspection. docs/workflow.md has the reference with examples.

-- Scores ----------------------------------------------------------------------

CREATE FUNCTION cosine_similarity(vector, vector) RETURNS double precision
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cosine_similarity(vector, vector) IS
    'similarity score 1 - cosine distance: 1 same direction, 0 orthogonal, -1 opposite (NaN for a zero vector)';

CREATE FUNCTION euclidean_similarity(vector, vector) RETURNS double precision
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION euclidean_similarity(vector, vector) IS
    'similarity score 1 / (1 + L2 distance): 1 for equal vectors, towards 0 as they move apart';

-- k-means -------------------------------------------------------------------

CREATE FUNCTION benzer_kmeans(
    query text,
    k integer,
    iterations integer DEFAULT 300,
    spherical boolean DEFAULT false,
    seed integer DEFAULT 1234,
    sample_size integer DEFAULT 0)
    RETURNS TABLE (id bigint, cluster integer, distance double precision)
    AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 10000;
COMMENT ON FUNCTION benzer_kmeans(text, integer, integer, boolean, integer, integer) IS
    'k-means (Faiss) over the (id, vector) rows a query returns: every row''s cluster 0..k-1 and its distance to the centroid (L2, or cosine distance when spherical)';

CREATE FUNCTION benzer_kmeans_centroids(
    query text,
    k integer,
    iterations integer DEFAULT 300,
    spherical boolean DEFAULT false,
    seed integer DEFAULT 1234,
    sample_size integer DEFAULT 0)
    RETURNS TABLE (cluster integer, centroid vector, size bigint)
    AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100;
COMMENT ON FUNCTION benzer_kmeans_centroids(text, integer, integer, boolean, integer, integer) IS
    'the clusters benzer_kmeans finds with the same arguments: each cluster''s centroid and number of rows';

CREATE FUNCTION benzer_kmeans_assign(v vector, centroids vector[], spherical boolean DEFAULT false)
    RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION benzer_kmeans_assign(vector, vector[], boolean) IS
    'the cluster of the centroid nearest to v: its 0-based position in centroids (pass array_agg(centroid ORDER BY cluster)); cosine distance when spherical';

-- Batch search --------------------------------------------------------------

CREATE FUNCTION benzer_batch_search(
    index regclass,
    queries vector[],
    k integer DEFAULT 10,
    filter jsonb DEFAULT NULL)
    RETURNS TABLE (query integer, rank integer, tid tid, distance double precision)
    AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 1000;
COMMENT ON FUNCTION benzer_batch_search(regclass, vector[], integer, jsonb) IS
    'the k nearest visible rows of a faiss index for every query vector in one call: query position, rank, heap tid (join ON t.ctid = tid), distance; filter: {"column": value(s), "array_column&&": [...], "array_column@>": [...]}';

-- Relevance feedback ---------------------------------------------------------

CREATE FUNCTION rocchio(
    query vector,
    liked vector[],
    disliked vector[],
    alpha double precision DEFAULT 1,
    beta double precision DEFAULT 0.75,
    gamma double precision DEFAULT 0.15)
    RETURNS vector
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION rocchio(vector, vector[], vector[], double precision, double precision, double precision) IS
    'relevance feedback (Rocchio): alpha * query + beta * mean(liked) - gamma * mean(disliked); NULL or empty arrays add nothing';

-- Inspection ----------------------------------------------------------------

CREATE FUNCTION benzer_indexes(
    OUT index regclass,
    OUT "table" regclass,
    OUT vector_column text,
    OUT filter_columns text[],
    OUT predicate text,
    OUT valid boolean,
    OUT factory text,
    OUT metric text,
    OUT dimensions integer,
    OUT rows bigint,
    OUT pending_rows bigint,
    OUT dead_rows bigint,
    OUT bytes bigint,
    OUT size text,
    OUT loaded_bytes bigint)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION benzer_indexes() IS
    'every faiss index of the database: table, columns, partial-index predicate, factory, rows, pending and dead rows, size on disk, bytes loaded in this backend (never loads an index)';
