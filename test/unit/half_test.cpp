// half_test.cpp: the binary16 conversions of halfvec (src/core/half.h).
#include "core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

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
