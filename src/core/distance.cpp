// distance.cpp: multiversioned distance kernels.
//
// Why not Faiss's fvec_L2sqr: Debian builds Faiss for baseline x86-64, and
// on cache-resident data its kernels ran at 8.4 GB/s here, the speed of a
// plain loop. The loops below keep kLanes independent partial sums, which
// GCC vectorises without any reassociation (each lane is its own chain), so
// no -ffast-math is needed and the result does not depend on the vector
// width: SSE, AVX2 and AVX-512 variants perform identical float operations.
// The file is compiled with -ffp-contract=off so no variant fuses a
// multiply-add that another variant would round twice.
#include "distance.h"

#include <cmath>

// GCC emits one clone per target and an ifunc resolver that picks one when
// the library is loaded. Other compilers get the portable version only.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(BENZER_NO_MULTIVERSION)
#define BENZER_MULTIVERSION __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
#else
#define BENZER_MULTIVERSION
#endif

#define BENZER_INLINE inline __attribute__((always_inline))

namespace benzer {

namespace {

// Sixteen independent chains: one AVX-512 register or two AVX2 ones. More
// lanes measured slower here (register pressure in the cosine kernel).
constexpr std::size_t kLanes = 16;

// Reduces the partial sums in a fixed order, the same in every variant.
BENZER_INLINE float reduce_lanes(const float* acc) {
    float sum = 0.0f;
    for (std::size_t j = 0; j < kLanes; ++j) sum += acc[j];
    return sum;
}

}  // namespace

BENZER_MULTIVERSION
float l2_squared(const float* a, const float* b, std::size_t n) noexcept {
    float acc[kLanes] = {};
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (std::size_t j = 0; j < kLanes; ++j) {
            float d = a[i + j] - b[i + j];
            acc[j] += d * d;
        }
    for (std::size_t j = 0; i < n; ++i, ++j) {
        float d = a[i] - b[i];
        acc[j] += d * d;
    }
    return reduce_lanes(acc);
}

BENZER_MULTIVERSION
float inner_product(const float* a, const float* b, std::size_t n) noexcept {
    float acc[kLanes] = {};
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (std::size_t j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
    for (std::size_t j = 0; i < n; ++i, ++j) acc[j] += a[i] * b[i];
    return reduce_lanes(acc);
}

BENZER_MULTIVERSION
float sq8_l2_squared(const float* a, const float* scale, const std::uint8_t* code,
                     std::size_t n) noexcept {
    float acc[kLanes] = {};
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (std::size_t j = 0; j < kLanes; ++j) {
            float d = a[i + j] - static_cast<float>(code[i + j]) * scale[i + j];
            acc[j] += d * d;
        }
    for (std::size_t j = 0; i < n; ++i, ++j) {
        float d = a[i] - static_cast<float>(code[i]) * scale[i];
        acc[j] += d * d;
    }
    return reduce_lanes(acc);
}

BENZER_MULTIVERSION
float sq8_dot(const float* w, const std::uint8_t* code, std::size_t n) noexcept {
    float acc[kLanes] = {};
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (std::size_t j = 0; j < kLanes; ++j)
            acc[j] += w[i + j] * static_cast<float>(code[i + j]);
    for (std::size_t j = 0; i < n; ++i, ++j) acc[j] += w[i] * static_cast<float>(code[i]);
    return reduce_lanes(acc);
}

BENZER_MULTIVERSION
float l1_distance(const float* a, const float* b, std::size_t n) noexcept {
    float acc[kLanes] = {};
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (std::size_t j = 0; j < kLanes; ++j) acc[j] += std::fabs(a[i + j] - b[i + j]);
    for (std::size_t j = 0; i < n; ++i, ++j) acc[j] += std::fabs(a[i] - b[i]);
    return reduce_lanes(acc);
}

BENZER_MULTIVERSION
CosineTerms cosine_terms(const float* a, const float* b, std::size_t n) noexcept {
    float dot[kLanes] = {};
    float na[kLanes] = {};
    float nb[kLanes] = {};
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (std::size_t j = 0; j < kLanes; ++j) {
            dot[j] += a[i + j] * b[i + j];
            na[j] += a[i + j] * a[i + j];
            nb[j] += b[i + j] * b[i + j];
        }
    for (std::size_t j = 0; i < n; ++i, ++j) {
        dot[j] += a[i] * b[i];
        na[j] += a[i] * a[i];
        nb[j] += b[i] * b[i];
    }
    return CosineTerms{reduce_lanes(dot), reduce_lanes(na), reduce_lanes(nb)};
}

double cosine_distance(const float* a, const float* b, std::size_t n) noexcept {
    CosineTerms t = cosine_terms(a, b, n);
    double similarity = static_cast<double>(t.dot) /
                        std::sqrt(static_cast<double>(t.norm_a) * static_cast<double>(t.norm_b));
    if (std::isnan(similarity)) return similarity;  // a zero vector
    // Rounding can push the cosine just outside [-1, 1].
    if (similarity > 1.0) similarity = 1.0;
    if (similarity < -1.0) similarity = -1.0;
    return 1.0 - similarity;
}

// The resolver picks the clone by the same CPU checks.
const char* distance_kernel_name() noexcept {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(BENZER_NO_MULTIVERSION)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "avx512";
    if (__builtin_cpu_supports("avx2")) return "avx2";
#endif
    return "generic";
}

namespace reference {

double l2_squared(const float* a, const float* b, std::size_t n) {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        double d = static_cast<double>(a[i]) - b[i];
        sum += d * d;
    }
    return sum;
}

double inner_product(const float* a, const float* b, std::size_t n) {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) sum += static_cast<double>(a[i]) * b[i];
    return sum;
}

double l1_distance(const float* a, const float* b, std::size_t n) {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) sum += std::fabs(static_cast<double>(a[i]) - b[i]);
    return sum;
}

}  // namespace reference

}  // namespace benzer
