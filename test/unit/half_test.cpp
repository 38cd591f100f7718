// half_test.cpp: the binary16 conversions of halfvec (src/core/half.h).
#include "core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

TEST(Half, ExactValuesRoundTrip) {
    for (float f : {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 1.5f, 2.0f, 1024.0f, 65504.0f, -65504.0f,
                    0.000061035156f /* smallest normal */, 5.9604645e-08f /* smallest subnormal */})
        EXPECT_EQ(benzer::half_to_float(benzer::float_to_half(f)), f) << f;
}

TEST(Half, EveryHalfConvertsBackToItself) {
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t bits = static_cast<uint16_t>(h);
        float f = benzer::half_to_float(bits);
        if (std::isnan(f)) {
            EXPECT_TRUE(std::isnan(benzer::half_to_float(benzer::float_to_half(f))));
            continue;
        }
        EXPECT_EQ(benzer::float_to_half(f), bits) << std::hex << h;
    }
}

TEST(Half, RoundsToNearestEven) {
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: to even, 1.
    EXPECT_EQ(benzer::half_to_float(benzer::float_to_half(1.0f + 0.00048828125f)), 1.0f);
    // 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 and 1 + 2^-9: to even.
    EXPECT_EQ(benzer::half_to_float(benzer::float_to_half(1.0f + 3 * 0.00048828125f)),
              1.0f + 0.001953125f);
    EXPECT_FLOAT_EQ(benzer::half_to_float(benzer::float_to_half(0.1f)), 0.099975586f);
}

TEST(Half, OverflowAndSpecialValues) {
    EXPECT_TRUE(benzer::fits_half(65504.0f));
    EXPECT_TRUE(benzer::fits_half(65519.0f));   // rounds down to 65504
    EXPECT_FALSE(benzer::fits_half(65520.0f));  // rounds up to infinity
    EXPECT_FALSE(benzer::fits_half(1e10f));
    EXPECT_FALSE(benzer::fits_half(std::numeric_limits<float>::infinity()));
    EXPECT_TRUE(std::isinf(benzer::half_to_float(benzer::float_to_half(-1e10f))));
    EXPECT_TRUE(std::isnan(benzer::half_to_float(benzer::float_to_half(std::nanf("")))));
    EXPECT_EQ(benzer::half_to_float(benzer::float_to_half(1e-10f)), 0.0f);  // underflow to zero
}

}  // namespace

// halves_to_floats (F16C where the CPU has it) gives half_to_float's bits
// for every half but NaNs, at every length and offset around its 8-wide
// steps.
TEST(HalfArrays, ConvertLikeTheScalarConversion) {
    std::vector<uint16_t> halves(0x10000 + 13);
    for (size_t i = 0; i < halves.size(); i++) halves[i] = static_cast<uint16_t>(i * 40503u);
    for (uint32_t h = 0; h < 0x10000; h++) halves[h] = static_cast<uint16_t>(h);
    for (int offset : {0, 1, 3, 7}) {
        for (int n : {0, 1, 7, 8, 9, 15, 16, 17, 0x10000}) {
            std::vector<float> floats(static_cast<size_t>(n) + 1, -1.0f);
            benzer::halves_to_floats(halves.data() + offset, floats.data(), n);
            for (int i = 0; i < n; i++) {
                float want = benzer::half_to_float(halves[static_cast<size_t>(offset + i)]);
                if (std::isnan(want)) {
                    EXPECT_TRUE(std::isnan(floats[static_cast<size_t>(i)]));
                    continue;
                }
                uint32_t got_bits, want_bits;
                std::memcpy(&got_bits, &floats[static_cast<size_t>(i)], 4);
                std::memcpy(&want_bits, &want, 4);
                ASSERT_EQ(got_bits, want_bits) << "offset " << offset << " n " << n << " i " << i;
            }
            EXPECT_EQ(floats[static_cast<size_t>(n)], -1.0f) << "wrote past n = " << n;
        }
    }
    const std::string name = benzer::half_conversion_name();
    EXPECT_TRUE(name == "f16c" || name == "scalar") << name;
}
