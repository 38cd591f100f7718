-- vector_functions: distance functions, vector_dims, vector_norm,
-- l2_normalize, subvector and benzer_simd_kernel.
--
-- After each error, \echo :SQLSTATE shows its SQLSTATE.

-- Distance functions --------------------------------------------------------

SELECT l2_distance('[0,0]'::vector, '[3,4]') AS l2,
       inner_product('[1,2,3]'::vector, '[4,5,6]') AS ip,
       cosine_distance('[1,2]'::vector, '[2,4]') AS cos_parallel,
       cosine_distance('[1,0]'::vector, '[-1,0]') AS cos_opposite,
       l1_distance('[1,-2,3]'::vector, '[-1,2,0]') AS l1;
SELECT vector_l2_squared_distance('[0,0]', '[3,4]') AS l2_squared,
       vector_negative_inner_product('[1,2,3]', '[4,5,6]') AS negative_ip;
-- Non-integral inputs: results are float8 computed from float4 sums.
SELECT round(l2_distance('[0.1,0.2]'::vector, '[0.3,0.5]')::numeric, 6) AS l2,
       round(inner_product('[0.1,0.2]'::vector, '[0.3,0.5]')::numeric, 6) AS ip,
       round(cosine_distance('[1,2,3]'::vector, '[3,2,1]')::numeric, 6) AS cos,
       round(l1_distance('[0.1,0.2]'::vector, '[0.3,0.5]')::numeric, 6) AS l1;
-- The squared distance orders like the distance.
SELECT abs(vector_l2_squared_distance('[1,2,3]', '[-1,0.5,7]')
           - l2_distance('[1,2,3]'::vector, '[-1,0.5,7]') ^ 2) < 1e-5 AS squared;
SELECT cosine_distance('[0,0,0]'::vector, '[0,0,0]') AS zero_zero, cosine_distance('[1e-45]'::vector, '[1]') AS tiny;
-- Strict: NULL in, NULL out.
SELECT l2_distance(NULL, '[1]'::vector) IS NULL AS l2, inner_product('[1]'::vector, NULL) IS NULL AS ip,
       cosine_distance(NULL::vector, NULL) IS NULL AS cos, l1_distance('[1]'::vector, NULL) IS NULL AS l1;
-- Different dimensions.
SELECT l2_distance('[1,2]'::vector, '[1,2,3]');
\echo :SQLSTATE
SELECT inner_product('[1,2]'::vector, '[1,2,3]');
\echo :SQLSTATE
SELECT cosine_distance('[1,2]'::vector, '[1,2,3]');
\echo :SQLSTATE
SELECT l1_distance('[1,2]'::vector, '[1,2,3]');
\echo :SQLSTATE
SELECT vector_l2_squared_distance('[1,2]', '[1,2,3]');
\echo :SQLSTATE
SELECT vector_negative_inner_product('[1,2]', '[1,2,3]');
\echo :SQLSTATE

-- vector_dims and vector_norm -----------------------------------------------

SELECT vector_dims('[1]'::vector), vector_dims('[1,2,3]'::vector),
       vector_dims(('[' || repeat('0,', 15999) || '0]')::vector);
SELECT vector_norm('[3,4]') AS norm, vector_norm('[0,0]') AS zero, vector_norm('[-2]') AS negative,
       vector_norm('[1e-45]') AS denormal, vector_norm('[3e38,3e38]') AS huge;
-- Accumulated in double: 16000 ones have norm exactly sqrt(16000).
SELECT vector_norm(('[' || repeat('1,', 15999) || '1]')::vector) = sqrt(16000::float8) AS exact;
SELECT vector_dims(NULL::vector) IS NULL AS dims, vector_norm(NULL) IS NULL AS norm;

-- l2_normalize --------------------------------------------------------------

SELECT l2_normalize('[3,4]'::vector) AS v, l2_normalize('[0,-5]'::vector) AS axis, l2_normalize('[7]'::vector) AS one;
-- A zero vector stays zero.
SELECT l2_normalize('[0,0,0]'::vector) AS zero;
-- Tiny and huge values normalize without underflow or overflow.
SELECT l2_normalize('[1e-45,0]'::vector) AS denormal, l2_normalize('[3e38,3e38]'::vector) AS huge,
       l2_normalize('[3e38,1e-45]'::vector) AS mixed;
-- The result has norm 1 (up to float4 rounding).
SELECT abs(vector_norm(l2_normalize('[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]'::vector)) - 1) < 1e-6
    AS unit;
SELECT l2_normalize(NULL::vector) IS NULL AS is_null;

-- subvector(v, start, count) -----------------------------------------------

SELECT subvector('[1,2,3,4,5]'::vector, 1, 3) AS head, subvector('[1,2,3,4,5]'::vector, 3, 3) AS tail,
       subvector('[1,2,3,4,5]'::vector, 2, 1) AS one, subvector('[1,2,3,4,5]'::vector, 1, 5) AS all;
-- Clipped to the vector, like substring().
SELECT subvector('[1,2,3,4,5]'::vector, 4, 10) AS past_end, subvector('[1,2,3,4,5]'::vector, 0, 3) AS start_0,
       subvector('[1,2,3,4,5]'::vector, -2, 5) AS negative_start,
       subvector('[1,2,3,4,5]'::vector, 5, 2147483647) AS huge_count,
       subvector('[1,2,3,4,5]'::vector, -2147483645, 2147483647) AS far_start;
SELECT subvector('[-0,1e-45,0.1]'::vector, 1, 3) AS exact;
SELECT vector_dims(subvector(('[' || repeat('1,', 15999) || '1]')::vector, 2, 15999)) AS dims;
-- No elements left: errors.
SELECT subvector('[1,2,3]'::vector, 4, 1);
\echo :SQLSTATE
SELECT subvector('[1,2,3]'::vector, 1, 0);
\echo :SQLSTATE
SELECT subvector('[1,2,3]'::vector, 1, -1);
\echo :SQLSTATE
SELECT subvector('[1,2,3]'::vector, -5, 5);
\echo :SQLSTATE
SELECT subvector('[1,2,3]'::vector, 2147483647, 2147483647);
\echo :SQLSTATE
SELECT subvector('[1,2,3]'::vector, -2147483648, 1);
\echo :SQLSTATE
SELECT subvector(NULL::vector, 1, 1) IS NULL AS v, subvector('[1]'::vector, NULL, 1) IS NULL AS start,
       subvector('[1]'::vector, 1, NULL) IS NULL AS count;

-- benzer_simd_kernel --------------------------------------------------------

SELECT benzer_simd_kernel() IN ('avx512', 'avx2', 'generic') AS known_kernel;
