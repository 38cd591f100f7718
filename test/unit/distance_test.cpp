// distance_test.cpp: the distance kernels against double-precision
// references and against a scalar emulation of their exact summation order.
//
// This file is compiled into benzer_unit_tests (the multiversioned kernels,
// whichever clone this CPU selects) and, with BENZER_TEST_VARIANT set, into
// one test program per clone target (generic, avx2, avx512) linked against a
// copy of distance.cpp built for that target alone. Each must match the same
// emulation bit for bit, which is what makes distances identical across CPUs.
// Like the kernels, it is compiled with -ffp-contract=off.
#include "core/distance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kLanes = 16;

std::vector<std::size_t> test_dimensions() {
    std::vector<std::size_t> dims;
    for (std::size_t n = 1; n <= 70; ++n) dims.push_back(n);
    for (std::size_t n : {100, 127, 128, 129, 783, 784, 785, 1024, 16000}) dims.push_back(n);
    return dims;
}

std::uint32_t bits_of(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

std::uint64_t bits_of(double d) {
    std::uint64_t u;
    std::memcpy(&u, &d, sizeof u);
    return u;
}

// 64-byte aligned float buffer with room for an offset.
struct Buffer {
    explicit Buffer(std::size_t n, std::size_t offset = 0)
        : storage(static_cast<float*>(std::aligned_alloc(64, round_up((n + offset + 1) * 4)))),
          data(storage.get() + offset) {}
    static std::size_t round_up(std::size_t bytes) { return (bytes + 63) / 64 * 64; }
    struct Free {
        void operator()(float* p) const { std::free(p); }
    };
    std::unique_ptr<float, Free> storage;
    float* data;
};

enum class Values { kUniform, kWideRange };

void fill(float* p, std::size_t n, std::mt19937& rng, Values kind) {
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::uniform_real_distribution<float> exponent(-12.0f, 12.0f);
    for (std::size_t i = 0; i < n; ++i) {
        if (kind == Values::kUniform) {
            p[i] = uniform(rng);
        } else {
            // Magnitudes over many orders, so that any change in summation
            // order shows in the low bits.
            float sign = (rng() & 1) ? 1.0f : -1.0f;
            p[i] = sign * std::exp2(exponent(rng));
        }
    }
}

// ---------------------------------------------------------------------------
// The emulation: element i goes to partial sum i % 16 (full blocks of 16 give
// lane j element i + j; the tail after the last full block, which starts at a
// multiple of 16, fills lanes 0, 1, ...), each lane accumulates in element
// order, and the lanes are then added in order 0..15 onto 0.0f.

float reduce(const float* acc) {
    float sum = 0.0f;
    for (std::size_t j = 0; j < kLanes; ++j) sum += acc[j];
    return sum;
}

float emulate_l2(const float* a, const float* b, std::size_t n) {
    float acc[kLanes] = {};
    for (std::size_t i = 0; i < n; ++i) {
        float d = a[i] - b[i];
        float sq = d * d;
        acc[i % kLanes] = acc[i % kLanes] + sq;
    }
    return reduce(acc);
}

float emulate_ip(const float* a, const float* b, std::size_t n) {
    float acc[kLanes] = {};
    for (std::size_t i = 0; i < n; ++i) {
        float p = a[i] * b[i];
        acc[i % kLanes] = acc[i % kLanes] + p;
    }
    return reduce(acc);
}

float emulate_l1(const float* a, const float* b, std::size_t n) {
    float acc[kLanes] = {};
    for (std::size_t i = 0; i < n; ++i) {
        float d = std::fabs(a[i] - b[i]);
        acc[i % kLanes] = acc[i % kLanes] + d;
    }
    return reduce(acc);
}

benzer::CosineTerms emulate_cosine_terms(const float* a, const float* b, std::size_t n) {
    return benzer::CosineTerms{emulate_ip(a, b, n), emulate_ip(a, a, n), emulate_ip(b, b, n)};
}

double emulate_cosine_distance(const float* a, const float* b, std::size_t n) {
    benzer::CosineTerms t = emulate_cosine_terms(a, b, n);
    double sim = static_cast<double>(t.dot) /
                 std::sqrt(static_cast<double>(t.norm_a) * static_cast<double>(t.norm_b));
    if (std::isnan(sim)) return sim;
    if (sim > 1.0) sim = 1.0;
    if (sim < -1.0) sim = -1.0;
    return 1.0 - sim;
}

// ---------------------------------------------------------------------------
// Tolerances. A float sum of nonnegative-or-not terms t_i, accumulated in a
// chain of k additions, is off by at most about k * u * sum |t_i| (u = 2^-24).
// Here each lane chain has ceil(n/16) additions, the reduction 16 more, and
// forming a term costs up to 2 roundings.
double error_bound(std::size_t n, double sum_abs_terms) {
    const double u = std::ldexp(1.0, -24);
    double k = static_cast<double>((n + kLanes - 1) / kLanes + kLanes + 3);
    return k * u * sum_abs_terms + 1e-300;
}

double sum_abs_products(const float* a, const float* b, std::size_t n) {
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += std::fabs(static_cast<double>(a[i]) * b[i]);
    return s;
}

// ---------------------------------------------------------------------------
// Tests run against one kernel variant; a variant this CPU cannot execute is
// skipped.

bool variant_supported(std::string* why) {
#ifdef BENZER_TEST_VARIANT
    std::string variant = BENZER_TEST_VARIANT;
    __builtin_cpu_init();
    if (variant == "avx2" && !__builtin_cpu_supports("avx2")) {
        *why = "CPU lacks AVX2";
        return false;
    }
    if (variant == "avx512" &&
        !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
          __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("avx512f") &&
          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))) {
        *why = "CPU lacks x86-64-v4 (AVX-512)";
        return false;
    }
#endif
    (void)why;
    return true;
}

class Distance : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why;
        if (!variant_supported(&why)) GTEST_SKIP() << why;
    }
};

TEST_F(Distance, KernelName) {
    std::string name = benzer::distance_kernel_name();
    EXPECT_TRUE(name == "avx512" || name == "avx2" || name == "generic") << name;
#if !defined(BENZER_TEST_VARIANT) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    // The multiversioned build uses a SIMD clone wherever the CPU has one.
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        EXPECT_NE(name, "generic");
    }
#endif
    std::printf("[   INFO   ] distance kernel: %s\n", name.c_str());
}

TEST_F(Distance, ZeroLength) {
    float a[1] = {1.0f};
    float b[1] = {2.0f};
    EXPECT_EQ(bits_of(benzer::l2_squared(a, b, 0)), bits_of(0.0f));
    EXPECT_EQ(bits_of(benzer::inner_product(a, b, 0)), bits_of(0.0f));
    EXPECT_EQ(bits_of(benzer::l1_distance(a, b, 0)), bits_of(0.0f));
    benzer::CosineTerms t = benzer::cosine_terms(a, b, 0);
    EXPECT_EQ(t.dot, 0.0f);
    EXPECT_EQ(t.norm_a, 0.0f);
    EXPECT_EQ(t.norm_b, 0.0f);
    EXPECT_TRUE(std::isnan(benzer::cosine_distance(a, b, 0)));
}

TEST_F(Distance, SmallKnownValues) {
    const float a[] = {1.0f, 2.0f, 3.0f};
    const float b[] = {4.0f, -6.0f, 8.0f};
    EXPECT_EQ(benzer::l2_squared(a, b, 3), 9.0f + 64.0f + 25.0f);
    EXPECT_EQ(benzer::inner_product(a, b, 3), 4.0f - 12.0f + 24.0f);
    EXPECT_EQ(benzer::l1_distance(a, b, 3), 3.0f + 8.0f + 5.0f);
    benzer::CosineTerms t = benzer::cosine_terms(a, b, 3);
    EXPECT_EQ(t.dot, 16.0f);
    EXPECT_EQ(t.norm_a, 14.0f);
    EXPECT_EQ(t.norm_b, 116.0f);
    EXPECT_DOUBLE_EQ(benzer::cosine_distance(a, b, 3), 1.0 - 16.0 / std::sqrt(14.0 * 116.0));
}

// Every element is counted exactly once, whatever its position (full block or
// tail, any lane).
TEST_F(Distance, EveryElementCountedOnce) {
    for (std::size_t n : test_dimensions()) {
        SCOPED_TRACE(n);
        std::vector<float> zero(n, 0.0f);
        std::vector<float> a(n, 0.0f);
        std::vector<std::size_t> positions;
        if (n <= 1024) {
            for (std::size_t i = 0; i < n; ++i) positions.push_back(i);
        } else {
            for (std::size_t i : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{16},
                                  n / 2, n - 17, n - 16, n - 15, n - 2, n - 1})
                positions.push_back(i);
        }
        for (std::size_t i : positions) {
            a[i] = 3.0f;
            ASSERT_EQ(benzer::l2_squared(a.data(), zero.data(), n), 9.0f) << "position " << i;
            ASSERT_EQ(benzer::l1_distance(a.data(), zero.data(), n), 3.0f) << "position " << i;
            ASSERT_EQ(benzer::inner_product(a.data(), a.data(), n), 9.0f) << "position " << i;
            benzer::CosineTerms t = benzer::cosine_terms(a.data(), zero.data(), n);
            ASSERT_EQ(t.norm_a, 9.0f) << "position " << i;
            ASSERT_EQ(t.norm_b, 0.0f) << "position " << i;
            a[i] = 0.0f;
        }
        // And all of them together.
        std::vector<float> ones(n, 1.0f);
        EXPECT_EQ(benzer::l2_squared(ones.data(), zero.data(), n), static_cast<float>(n));
        EXPECT_EQ(benzer::l1_distance(ones.data(), zero.data(), n), static_cast<float>(n));
        EXPECT_EQ(benzer::inner_product(ones.data(), ones.data(), n), static_cast<float>(n));
    }
}

TEST_F(Distance, MatchesReference) {
    std::mt19937 rng(12345);
    for (Values kind : {Values::kUniform, Values::kWideRange}) {
        for (std::size_t n : test_dimensions()) {
            SCOPED_TRACE(testing::Message() << "n = " << n << ", kind " << static_cast<int>(kind));
            std::vector<float> a(n), b(n);
            fill(a.data(), n, rng, kind);
            fill(b.data(), n, rng, kind);

            double ref_l2 = benzer::reference::l2_squared(a.data(), b.data(), n);
            EXPECT_NEAR(benzer::l2_squared(a.data(), b.data(), n), ref_l2, error_bound(n, ref_l2));

            double ref_ip = benzer::reference::inner_product(a.data(), b.data(), n);
            double abs_ip = sum_abs_products(a.data(), b.data(), n);
            EXPECT_NEAR(benzer::inner_product(a.data(), b.data(), n), ref_ip,
                        error_bound(n, abs_ip));

            double ref_l1 = benzer::reference::l1_distance(a.data(), b.data(), n);
            EXPECT_NEAR(benzer::l1_distance(a.data(), b.data(), n), ref_l1, error_bound(n, ref_l1));

            double ref_na = benzer::reference::inner_product(a.data(), a.data(), n);
            double ref_nb = benzer::reference::inner_product(b.data(), b.data(), n);
            benzer::CosineTerms t = benzer::cosine_terms(a.data(), b.data(), n);
            EXPECT_NEAR(t.dot, ref_ip, error_bound(n, abs_ip));
            EXPECT_NEAR(t.norm_a, ref_na, error_bound(n, ref_na));
            EXPECT_NEAR(t.norm_b, ref_nb, error_bound(n, ref_nb));

            // 1 - dot / sqrt(na nb): a relative error e in dot and the norms
            // moves the cosine by at most about 2e * sum|ab| / sqrt(na nb).
            double ref_cos = 1.0 - ref_ip / std::sqrt(ref_na * ref_nb);
            double rel = error_bound(n, 1.0);
            double tol = 3.0 * rel * (abs_ip / std::sqrt(ref_na * ref_nb) + 1.0) + 1e-12;
            double cos = benzer::cosine_distance(a.data(), b.data(), n);
            EXPECT_NEAR(cos, ref_cos, tol);
            EXPECT_GE(cos, 0.0);
            EXPECT_LE(cos, 2.0);
        }
    }
}

TEST_F(Distance, MatchesReferenceRelativeSpotChecks) {
    // The brief's plain relative tolerances, on ordinary data.
    std::mt19937 rng(777);
    for (std::size_t n : {std::size_t{128}, std::size_t{784}, std::size_t{16000}}) {
        SCOPED_TRACE(n);
        std::vector<float> a(n), b(n);
        fill(a.data(), n, rng, Values::kUniform);
        fill(b.data(), n, rng, Values::kUniform);
        double ref_l2 = benzer::reference::l2_squared(a.data(), b.data(), n);
        double ref_l1 = benzer::reference::l1_distance(a.data(), b.data(), n);
        EXPECT_LT(std::fabs(benzer::l2_squared(a.data(), b.data(), n) - ref_l2) / ref_l2, 1e-5);
        EXPECT_LT(std::fabs(benzer::l1_distance(a.data(), b.data(), n) - ref_l1) / ref_l1, 1e-5);
    }
}

TEST_F(Distance, BitIdenticalToLaneEmulation) {
    std::mt19937 rng(2024);
    for (int round = 0; round < 3; ++round) {
        Values kind = round == 0 ? Values::kUniform : Values::kWideRange;
        for (std::size_t n : test_dimensions()) {
            SCOPED_TRACE(testing::Message() << "n = " << n << ", round " << round);
            Buffer a(n), b(n);
            fill(a.data, n, rng, kind);
            fill(b.data, n, rng, kind);
            ASSERT_EQ(bits_of(benzer::l2_squared(a.data, b.data, n)),
                      bits_of(emulate_l2(a.data, b.data, n)));
            ASSERT_EQ(bits_of(benzer::inner_product(a.data, b.data, n)),
                      bits_of(emulate_ip(a.data, b.data, n)));
            ASSERT_EQ(bits_of(benzer::l1_distance(a.data, b.data, n)),
                      bits_of(emulate_l1(a.data, b.data, n)));
            benzer::CosineTerms t = benzer::cosine_terms(a.data, b.data, n);
            benzer::CosineTerms e = emulate_cosine_terms(a.data, b.data, n);
            ASSERT_EQ(bits_of(t.dot), bits_of(e.dot));
            ASSERT_EQ(bits_of(t.norm_a), bits_of(e.norm_a));
            ASSERT_EQ(bits_of(t.norm_b), bits_of(e.norm_b));
            ASSERT_EQ(bits_of(benzer::cosine_distance(a.data, b.data, n)),
                      bits_of(emulate_cosine_distance(a.data, b.data, n)));
        }
    }
}

// The bit-equality test above has teeth: on wide-range data a different
// summation order (one accumulator) gives different bits for most inputs.
TEST_F(Distance, SummationOrderIsObservable) {
    std::mt19937 rng(31337);
    int differ = 0;
    const int trials = 50;
    for (int k = 0; k < trials; ++k) {
        const std::size_t n = 784;
        std::vector<float> a(n), b(n);
        fill(a.data(), n, rng, Values::kWideRange);
        fill(b.data(), n, rng, Values::kWideRange);
        float one = 0.0f;
        for (std::size_t i = 0; i < n; ++i) one += a[i] * b[i];
        if (bits_of(one) != bits_of(benzer::inner_product(a.data(), b.data(), n))) ++differ;
    }
    EXPECT_GT(differ, trials / 2);
}

TEST_F(Distance, CosineOfZeroVectorIsNaN) {
    for (std::size_t n : test_dimensions()) {
        SCOPED_TRACE(n);
        std::vector<float> zero(n, 0.0f);
        std::vector<float> a(n, 0.5f);
        EXPECT_TRUE(std::isnan(benzer::cosine_distance(zero.data(), a.data(), n)));
        EXPECT_TRUE(std::isnan(benzer::cosine_distance(a.data(), zero.data(), n)));
        EXPECT_TRUE(std::isnan(benzer::cosine_distance(zero.data(), zero.data(), n)));
    }
}

TEST_F(Distance, CosineOfParallelVectors) {
    std::mt19937 rng(5);
    for (Values kind : {Values::kUniform, Values::kWideRange}) {
        for (std::size_t n : test_dimensions()) {
            SCOPED_TRACE(n);
            std::vector<float> a(n), twice(n), negated(n);
            fill(a.data(), n, rng, kind);
            for (std::size_t i = 0; i < n; ++i) {
                twice[i] = 2.0f * a[i];
                negated[i] = -a[i];
            }
            // Identical (or exactly scaled) vectors: the cosine is exactly 1,
            // or clamped to it, so the distance is exactly 0; opposite: 2.
            EXPECT_EQ(benzer::cosine_distance(a.data(), a.data(), n), 0.0);
            EXPECT_EQ(benzer::cosine_distance(a.data(), twice.data(), n), 0.0);
            EXPECT_EQ(benzer::cosine_distance(a.data(), negated.data(), n), 2.0);
            EXPECT_EQ(benzer::l2_squared(a.data(), a.data(), n), 0.0f);
            EXPECT_EQ(benzer::l1_distance(a.data(), a.data(), n), 0.0f);
        }
    }
}

TEST_F(Distance, CosineIsClampedForNearlyParallelVectors) {
    // Rounding can make dot / sqrt(na nb) land just above 1; the result must
    // still lie in [0, 2].
    std::mt19937 rng(8);
    for (std::size_t n : test_dimensions()) {
        std::vector<float> a(n), b(n);
        fill(a.data(), n, rng, Values::kWideRange);
        for (std::size_t i = 0; i < n; ++i) b[i] = std::nextafter(a[i], 2.0f * a[i]);
        double d = benzer::cosine_distance(a.data(), b.data(), n);
        EXPECT_GE(d, 0.0) << n;
        EXPECT_LE(d, 1e-6) << n;
        for (std::size_t i = 0; i < n; ++i) b[i] = -b[i];
        d = benzer::cosine_distance(a.data(), b.data(), n);
        EXPECT_LE(d, 2.0) << n;
        EXPECT_GE(d, 2.0 - 1e-6) << n;
    }
}

TEST_F(Distance, UnalignedPointers) {
    std::mt19937 rng(99);
    for (std::size_t n : test_dimensions()) {
        SCOPED_TRACE(n);
        Buffer a(n), b(n);
        fill(a.data, n, rng, Values::kWideRange);
        fill(b.data, n, rng, Values::kWideRange);
        const float l2 = benzer::l2_squared(a.data, b.data, n);
        const float ip = benzer::inner_product(a.data, b.data, n);
        const float l1 = benzer::l1_distance(a.data, b.data, n);
        const double cos = benzer::cosine_distance(a.data, b.data, n);
        for (std::size_t offset : {std::size_t{1}, std::size_t{3}, std::size_t{15}}) {
            SCOPED_TRACE(offset);
            Buffer ua(n, offset), ub(n, 1);
            std::memcpy(ua.data, a.data, n * sizeof(float));
            std::memcpy(ub.data, b.data, n * sizeof(float));
            ASSERT_EQ(bits_of(benzer::l2_squared(ua.data, ub.data, n)), bits_of(l2));
            ASSERT_EQ(bits_of(benzer::inner_product(ua.data, ub.data, n)), bits_of(ip));
            ASSERT_EQ(bits_of(benzer::l1_distance(ua.data, ub.data, n)), bits_of(l1));
            ASSERT_EQ(bits_of(benzer::cosine_distance(ua.data, ub.data, n)), bits_of(cos));
        }
    }
}

TEST_F(Distance, Deterministic) {
    std::mt19937 rng(4242);
    for (std::size_t n : test_dimensions()) {
        SCOPED_TRACE(n);
        std::vector<float> a(n), b(n);
        fill(a.data(), n, rng, Values::kWideRange);
        fill(b.data(), n, rng, Values::kWideRange);
        for (int repeat = 0; repeat < 2; ++repeat) {
            ASSERT_EQ(bits_of(benzer::l2_squared(a.data(), b.data(), n)),
                      bits_of(benzer::l2_squared(a.data(), b.data(), n)));
            ASSERT_EQ(bits_of(benzer::inner_product(a.data(), b.data(), n)),
                      bits_of(benzer::inner_product(a.data(), b.data(), n)));
            ASSERT_EQ(bits_of(benzer::l1_distance(a.data(), b.data(), n)),
                      bits_of(benzer::l1_distance(a.data(), b.data(), n)));
            ASSERT_EQ(bits_of(benzer::cosine_distance(a.data(), b.data(), n)),
                      bits_of(benzer::cosine_distance(a.data(), b.data(), n)));
        }
    }
}

TEST_F(Distance, Symmetric) {
    std::mt19937 rng(17);
    for (std::size_t n : test_dimensions()) {
        SCOPED_TRACE(n);
        std::vector<float> a(n), b(n);
        fill(a.data(), n, rng, Values::kWideRange);
        fill(b.data(), n, rng, Values::kWideRange);
        ASSERT_EQ(bits_of(benzer::l2_squared(a.data(), b.data(), n)),
                  bits_of(benzer::l2_squared(b.data(), a.data(), n)));
        ASSERT_EQ(bits_of(benzer::inner_product(a.data(), b.data(), n)),
                  bits_of(benzer::inner_product(b.data(), a.data(), n)));
        ASSERT_EQ(bits_of(benzer::l1_distance(a.data(), b.data(), n)),
                  bits_of(benzer::l1_distance(b.data(), a.data(), n)));
        ASSERT_EQ(bits_of(benzer::cosine_distance(a.data(), b.data(), n)),
                  bits_of(benzer::cosine_distance(b.data(), a.data(), n)));
        benzer::CosineTerms ab = benzer::cosine_terms(a.data(), b.data(), n);
        benzer::CosineTerms ba = benzer::cosine_terms(b.data(), a.data(), n);
        ASSERT_EQ(bits_of(ab.norm_a), bits_of(ba.norm_b));
        ASSERT_EQ(bits_of(ab.norm_b), bits_of(ba.norm_a));
    }
}

TEST_F(Distance, CosineTermsAgreeWithSingleKernels) {
    std::mt19937 rng(23);
    for (std::size_t n : test_dimensions()) {
        SCOPED_TRACE(n);
        std::vector<float> a(n), b(n);
        fill(a.data(), n, rng, Values::kWideRange);
        fill(b.data(), n, rng, Values::kWideRange);
        benzer::CosineTerms t = benzer::cosine_terms(a.data(), b.data(), n);
        ASSERT_EQ(bits_of(t.dot), bits_of(benzer::inner_product(a.data(), b.data(), n)));
        ASSERT_EQ(bits_of(t.norm_a), bits_of(benzer::inner_product(a.data(), a.data(), n)));
        ASSERT_EQ(bits_of(t.norm_b), bits_of(benzer::inner_product(b.data(), b.data(), n)));
    }
}

TEST_F(Distance, NonFiniteInputsPropagate) {
    // The type rejects NaN and infinity, but a kernel must not hide them.
    for (std::size_t n : {std::size_t{1}, std::size_t{17}, std::size_t{784}}) {
        std::vector<float> a(n, 1.0f), b(n, 2.0f);
        a[n - 1] = std::nanf("");
        EXPECT_TRUE(std::isnan(benzer::l2_squared(a.data(), b.data(), n))) << n;
        EXPECT_TRUE(std::isnan(benzer::inner_product(a.data(), b.data(), n))) << n;
        EXPECT_TRUE(std::isnan(benzer::l1_distance(a.data(), b.data(), n))) << n;
        a[n - 1] = HUGE_VALF;
        EXPECT_TRUE(std::isinf(benzer::l2_squared(a.data(), b.data(), n))) << n;
    }
}

TEST_F(Distance, ReferenceIsStraightforward) {
    const float a[] = {1.0f, -2.0f, 0.5f};
    const float b[] = {0.0f, 2.0f, 0.25f};
    EXPECT_DOUBLE_EQ(benzer::reference::l2_squared(a, b, 3), 1.0 + 16.0 + 0.0625);
    EXPECT_DOUBLE_EQ(benzer::reference::inner_product(a, b, 3), 0.0 - 4.0 + 0.125);
    EXPECT_DOUBLE_EQ(benzer::reference::l1_distance(a, b, 3), 1.0 + 4.0 + 0.25);
}

}  // namespace
