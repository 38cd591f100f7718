// half.h: IEEE 754 binary16 ("half") conversions for the halfvec type.
//
// halfvec stores each element in 2 bytes, halving a 2 048-d row from 8 kB
// (TOASTed) to 4 kB. Elements are converted to float for every computation
// (exactly: every half is a float), and from float with round-to-nearest-
// even, as the F16C instruction and pgvector do. Plain bit arithmetic, so
// that no compiler or CPU flag is needed.
#pragma once

#include <cstdint>
#include <cstring>

namespace benzer {

// The largest finite half.
constexpr float kHalfMax = 65504.0f;

// The float a half's bits stand for (exact).
inline float half_to_float(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000 | (mantissa << 13);  // infinity, NaN
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;  // zero
    } else {
        // A subnormal half is a normal float: shift its mantissa up.
        int shift = 0;
        while ((mantissa & 0x400) == 0) {
            mantissa <<= 1;
            shift++;
        }
        bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | ((mantissa & 0x3ff) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
}

// The nearest half to f (ties to even); infinity beyond kHalfMax's
// rounding range, NaN for NaN.
inline uint16_t float_to_half(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof(bits));
    uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
    uint32_t exponent = (bits >> 23) & 0xff;
    uint32_t mantissa = bits & 0x7fffff;
    if (exponent == 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);  // inf, NaN
    int e = static_cast<int>(exponent) - 127 + 15;
    if (e >= 0x1f) return sign | 0x7c00;  // overflow
    if (e <= 0) {
        // Subnormal half (or zero): the implicit bit becomes explicit.
        if (e < -10) return sign;
        mantissa |= 0x800000;
        int shift = 14 - e;
        uint32_t half_mantissa = mantissa >> shift;
        uint32_t rest = mantissa & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half_mantissa & 1))) half_mantissa++;
        return sign | static_cast<uint16_t>(half_mantissa);
    }
    uint32_t half_bits = (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half_bits & 1))) half_bits++;  // may carry into inf
    return sign | static_cast<uint16_t>(half_bits);
}

// True when f converts to a finite half (its rounding stays below infinity).
inline bool fits_half(float f) { return (float_to_half(f) & 0x7c00) != 0x7c00; }

// floats[i] = half_to_float(halves[i]) for i < n, eight at a time with the
// F16C instruction where the CPU has it (half.cpp).
void halves_to_floats(const uint16_t* halves, float* floats, int n);

// Which conversion halves_to_floats uses: "f16c" or "scalar".
const char* half_conversion_name();

}  // namespace benzer
