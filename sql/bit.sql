-- bit: pgvector's Hamming (<~>) and Jaccard (<%>) distances on PostgreSQL's
-- bit type, binary_quantize, and a faiss index ordered by Hamming distance.

SELECT hamming_distance(B'111', B'111'), hamming_distance(B'111', B'110'),
       hamming_distance(B'111', B'100'), hamming_distance(B'111', B'000');
SELECT B'1010' <~> B'0101';
SELECT hamming_distance(B'111', B'00');
\echo :SQLSTATE
SELECT hamming_distance(repeat('1', 100)::bit(100), repeat('0', 100)::bit(100));

SELECT jaccard_distance(B'1111', B'1111'), jaccard_distance(B'1111', B'0111'),
       jaccard_distance(B'1111', B'0011'), jaccard_distance(B'1111', B'0001'),
       jaccard_distance(B'1111', B'0000'), jaccard_distance(B'0000', B'0000');
SELECT B'1100' <%> B'0110';
SELECT jaccard_distance(B'1111', B'000');

SELECT binary_quantize('[1,0,-1,0.5,-0.5]'::vector);
SELECT binary_quantize('[0,0,0,1,1,1,1,1,1]'::vector);
SELECT binary_quantize('[1,0,-1,0.5,-0.5]'::halfvec);
SELECT binary_quantize('[1,2,3]'::vector) <~> binary_quantize('[-1,2,-3]'::vector);

-- A faiss index on bit(n), ordered by Hamming distance.
CREATE TABLE bit_items (id int PRIMARY KEY, b bit(16));
INSERT INTO bit_items SELECT i, (i * 2654435761 % 65536)::bit(16) FROM generate_series(1, 500) i;
CREATE INDEX bit_items_hamming ON bit_items USING faiss (b bit_hamming_ops);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM bit_items ORDER BY b <~> B'1010101010101010' LIMIT 5;
-- The index orders as the exact Hamming distance does (distances compared:
-- the data has ties).
SELECT (SELECT array_agg(d) FROM (SELECT b <~> B'1010101010101010' AS d FROM bit_items
            ORDER BY b <~> B'1010101010101010' LIMIT 20) a)
     = (SELECT array_agg(d) FROM (SELECT hamming_distance(b, B'1010101010101010') AS d
            FROM bit_items ORDER BY 1 LIMIT 20) e) AS same;
RESET enable_seqscan;
-- An index on binary_quantize of a vector column (an expression).
CREATE TABLE quantized (id int PRIMARY KEY, v vector(8));
INSERT INTO quantized SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(2 * i), sin(3 * i), cos(3 * i),
                                      sin(5 * i), cos(5 * i)]::vector FROM generate_series(1, 200) i;
CREATE INDEX quantized_hamming ON quantized
    USING faiss ((binary_quantize(v)::bit(8)) bit_hamming_ops);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM quantized
    ORDER BY binary_quantize(v)::bit(8) <~> binary_quantize('[1,1,1,1,-1,-1,-1,-1]'::vector) LIMIT 5;
SELECT (SELECT array_agg(d) FROM (SELECT binary_quantize(v)::bit(8) <~> B'11110000' AS d
            FROM quantized ORDER BY binary_quantize(v)::bit(8) <~> B'11110000' LIMIT 10) a)
     = (SELECT array_agg(d) FROM (SELECT hamming_distance(binary_quantize(v)::bit(8), B'11110000') AS d
            FROM quantized ORDER BY 1 LIMIT 10) e) AS same;
RESET enable_seqscan;
DROP TABLE bit_items, quantized;
-- bit varying arguments, and lengths that differ only through varbit.
SELECT hamming_distance('111', '000'::varbit(4)), jaccard_distance('1111', '0001'::varbit(5));
SELECT hamming_distance('111', '0000'::varbit(4));
