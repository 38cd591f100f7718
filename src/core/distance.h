// distance.h: distance kernels over float arrays.
//
// Debian's Faiss is built for generic x86-64, so its distance functions run
// at scalar speed. These kernels are compiled several times (generic, AVX2,
// AVX-512) and the loader picks the best one for the CPU at hand (GCC
// function multiversioning through ifunc).
//
// Every variant computes the very same floating point operations in the same
// order: 16 independent partial sums that are reduced in a fixed sequence,
// with contraction into FMA disabled. A primary and a replica on different
// CPUs therefore return bit-identical distances, and ORDER BY is stable
// across machines.
#pragma once

#include <cstddef>
#include <cstdint>

namespace benzer {

// Sum of squared differences (the square of the L2 distance).
float l2_squared(const float* a, const float* b, std::size_t n) noexcept;

// Dot product.
float inner_product(const float* a, const float* b, std::size_t n) noexcept;

// Sum of absolute differences.
float l1_distance(const float* a, const float* b, std::size_t n) noexcept;

// 8-bit scalar-quantised codes (Faiss's QT_8bit: element i decodes to
// offset_i + code_i * scale_i): sum over i of (a_i - code_i * scale_i)^2,
// with a = query - offset (the L2 distance), and of w_i * code_i, with
// w = query * scale (the inner product, less the constant query . offset).
float sq8_l2_squared(const float* a, const float* scale, const std::uint8_t* code,
                     std::size_t n) noexcept;
float sq8_dot(const float* w, const std::uint8_t* code, std::size_t n) noexcept;

// Dot product and both squared norms in one pass (for cosine distance).
struct CosineTerms {
    float dot;
    float norm_a;  // squared
    float norm_b;  // squared
};
CosineTerms cosine_terms(const float* a, const float* b, std::size_t n) noexcept;

// 1 - cos(a, b), clamped to [0, 2]; NaN when either vector is all zeros,
// which is what pgvector returns.
double cosine_distance(const float* a, const float* b, std::size_t n) noexcept;

// The name of the kernel variant the loader chose: "avx512", "avx2" or
// "generic". Shown by benzer_version_info() so a user can tell.
const char* distance_kernel_name() noexcept;

// Straightforward one-accumulator versions, the reference the unit tests
// compare the kernels against.
namespace reference {
double l2_squared(const float* a, const float* b, std::size_t n);
double inner_product(const float* a, const float* b, std::size_t n);
double l1_distance(const float* a, const float* b, std::size_t n);
}  // namespace reference

}  // namespace benzer
