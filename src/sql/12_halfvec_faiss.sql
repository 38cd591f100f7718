-- faiss operator classes for halfvec: the index reads halfvec keys and
-- queries as float vectors, so it is the same index as on vector.

CREATE OPERATOR CLASS halfvec_l2_ops
    DEFAULT FOR TYPE halfvec USING faiss AS
    OPERATOR 1 <-> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_l2(internal);
COMMENT ON OPERATOR FAMILY halfvec_l2_ops USING faiss IS 'faiss indexes on halfvec ordered by L2 distance';
COMMENT ON OPERATOR CLASS halfvec_l2_ops USING faiss IS
    'faiss index for ORDER BY embedding <-> query on halfvec (L2 distance)';

CREATE OPERATOR CLASS halfvec_ip_ops
    FOR TYPE halfvec USING faiss AS
    OPERATOR 1 <#> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_inner_product(internal);
COMMENT ON OPERATOR FAMILY halfvec_ip_ops USING faiss IS 'faiss indexes on halfvec ordered by negative inner product';
COMMENT ON OPERATOR CLASS halfvec_ip_ops USING faiss IS
    'faiss index for ORDER BY embedding <#> query on halfvec (negative inner product)';

CREATE OPERATOR CLASS halfvec_cosine_ops
    FOR TYPE halfvec USING faiss AS
    OPERATOR 1 <=> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_cosine(internal);
COMMENT ON OPERATOR FAMILY halfvec_cosine_ops USING faiss IS 'faiss indexes on halfvec ordered by cosine distance';
COMMENT ON OPERATOR CLASS halfvec_cosine_ops USING faiss IS
    'faiss index for ORDER BY embedding <=> query on halfvec (cosine distance)';
