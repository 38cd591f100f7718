-- A faiss index on bit strings, ordered by Hamming distance: each bit is
-- stored as a 0/1 float and searched by L2, whose square between 0/1
-- vectors is the Hamming distance (the same order).

CREATE OPERATOR CLASS bit_hamming_ops
    FOR TYPE bit USING faiss AS
    OPERATOR 1 <~> (bit, bit) FOR ORDER BY float_ops,
    FUNCTION 1 faiss_metric_l2(internal);
COMMENT ON OPERATOR FAMILY bit_hamming_ops USING faiss IS 'faiss indexes on bit ordered by Hamming distance';
COMMENT ON OPERATOR CLASS bit_hamming_ops USING faiss IS
    'faiss index for ORDER BY embedding <~> query on bit (Hamming distance)';
