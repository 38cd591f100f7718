-- faiss operator classes for sparsevec: the index stores each key dense,
-- so it takes sparsevecs of at most 16 000 dimensions (Faiss has no sparse
-- index). The distances are the same as on the dense vectors.

CREATE OPERATOR CLASS sparsevec_l2_ops
    DEFAULT FOR TYPE sparsevec USING faiss AS
    OPERATOR 1 <-> (sparsevec, sparsevec) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_l2(internal);
COMMENT ON OPERATOR FAMILY sparsevec_l2_ops USING faiss IS 'faiss indexes on sparsevec ordered by L2 distance';
COMMENT ON OPERATOR CLASS sparsevec_l2_ops USING faiss IS
    'faiss index for ORDER BY embedding <-> query on sparsevec (L2 distance; at most 16 000 dimensions)';

CREATE OPERATOR CLASS sparsevec_ip_ops
    FOR TYPE sparsevec USING faiss AS
    OPERATOR 1 <#> (sparsevec, sparsevec) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_inner_product(internal);
COMMENT ON OPERATOR FAMILY sparsevec_ip_ops USING faiss IS 'faiss indexes on sparsevec ordered by negative inner product';
COMMENT ON OPERATOR CLASS sparsevec_ip_ops USING faiss IS
    'faiss index for ORDER BY embedding <#> query on sparsevec (negative inner product; at most 16 000 dimensions)';

CREATE OPERATOR CLASS sparsevec_cosine_ops
    FOR TYPE sparsevec USING faiss AS
    OPERATOR 1 <=> (sparsevec, sparsevec) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_cosine(internal);
COMMENT ON OPERATOR FAMILY sparsevec_cosine_ops USING faiss IS 'faiss indexes on sparsevec ordered by cosine distance';
COMMENT ON OPERATOR CLASS sparsevec_cosine_ops USING faiss IS
    'faiss index for ORDER BY embedding <=> query on sparsevec (cosine distance; at most 16 000 dimensions)';
