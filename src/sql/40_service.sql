
-- The search service ----------------------------------------------------------

CREATE FUNCTION benzer_search_service(
    OUT pid integer,
    OUT device text,
    OUT gpu_absent text,
    OUT requests bigint,
    OUT failed bigint,
    OUT batches bigint,
    OUT largest_batch bigint,
    OUT index_loads bigint,
    OUT indexes integer,
    OUT bytes bigint)
    RETURNS record
    AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION benzer_search_service() IS
    'the search service (a background worker when benzer is in shared_preload_libraries): its pid, where it computes (cpu or gpu), why there is no GPU, exact searches answered and failed, device calls (batches) and the largest, index generations read from pages, indexes held and their bytes';
