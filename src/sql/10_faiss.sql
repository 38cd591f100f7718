-- The faiss index access method ---------------------------------------------

CREATE FUNCTION faiss_handler(internal) RETURNS index_am_handler
    AS 'MODULE_PATHNAME' LANGUAGE C;
COMMENT ON FUNCTION faiss_handler(internal) IS 'index access method handler of faiss';

CREATE ACCESS METHOD faiss TYPE INDEX HANDLER faiss_handler;
COMMENT ON ACCESS METHOD faiss IS
    'Faiss-backed nearest-neighbour index, stored in PostgreSQL pages (WAL-logged)';

CREATE FUNCTION faiss_metric_l2(internal) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION faiss_metric_l2(internal) IS
    'faiss operator class support: the index searches by L2 distance';
CREATE FUNCTION faiss_metric_inner_product(internal) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION faiss_metric_inner_product(internal) IS
    'faiss operator class support: the index searches by inner product';
CREATE FUNCTION faiss_metric_cosine(internal) RETURNS integer
    AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION faiss_metric_cosine(internal) IS
    'faiss operator class support: the index searches by cosine distance';

CREATE OPERATOR CLASS vector_l2_ops
    DEFAULT FOR TYPE vector USING faiss AS
    OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_l2(internal);
COMMENT ON OPERATOR CLASS vector_l2_ops USING faiss IS
    'faiss index for ORDER BY embedding <-> query (L2 distance)';
COMMENT ON OPERATOR FAMILY vector_l2_ops USING faiss IS 'faiss indexes ordered by L2 distance';

CREATE OPERATOR CLASS vector_ip_ops
    FOR TYPE vector USING faiss AS
    OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_inner_product(internal);
COMMENT ON OPERATOR CLASS vector_ip_ops USING faiss IS
    'faiss index for ORDER BY embedding <#> query (negative inner product)';
COMMENT ON OPERATOR FAMILY vector_ip_ops USING faiss IS 'faiss indexes ordered by negative inner product';

CREATE OPERATOR CLASS vector_cosine_ops
    FOR TYPE vector USING faiss AS
    OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_cosine(internal);
COMMENT ON OPERATOR CLASS vector_cosine_ops USING faiss IS
    'faiss index for ORDER BY embedding <=> query (cosine distance)';
COMMENT ON OPERATOR FAMILY vector_cosine_ops USING faiss IS 'faiss indexes ordered by cosine distance';

CREATE FUNCTION benzer_index_info(
    index regclass,
    OUT name text,
    OUT factory text,
    OUT auto_factory boolean,
    OUT metric text,
    OUT dimensions integer,
    OUT rows bigint,
    OUT pending_rows bigint,
    OUT dead_rows bigint,
    OUT bytes_on_disk bigint,
    OUT faiss_bytes bigint,
    OUT bytes_in_memory bigint,
    OUT generation bigint,
    OUT merges bigint,
    OUT description text,
    OUT simd_kernel text,
    OUT recall_target double precision,
    OUT recall_measured double precision,
    OUT search_settings text)
    RETURNS record
    AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION benzer_index_info(regclass) IS
    'what a faiss index holds: factory, metric, rows in the Faiss structure, pending and dead rows, bytes on disk and in this backend, and the search settings this session would use (recall target, measured recall)';

CREATE FUNCTION benzer_index_merge(index regclass, compact boolean DEFAULT false)
    RETURNS bigint
    AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION benzer_index_merge(regclass, boolean) IS
    'folds pending rows into a faiss index now (compact: also drop dead rows); returns the rows it then holds';

CREATE FUNCTION benzer_index_check(index regclass)
    RETURNS TABLE (problem text)
    AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION benzer_index_check(regclass) IS
    'verifies a faiss index against its table: every live row indexed exactly once, no entry for a dead or missing row, list pages and counts consistent; one row per problem, none when the index is sound';
