// half.cpp: converting whole arrays of halves to floats.
//
// Every halfvec distance, norm and comparison converts its arguments to
// floats first (exactly) and runs the vector code. Element by element in
// bit arithmetic that conversion cost more than the distance itself; the
// F16C instruction converts eight halves at once, exactly as
// half_to_float does (halfvec holds no NaN, the one value F16C would
// change: it quiets signalling NaNs). The choice is made once, at load.
#include "core/half.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace benzer {
namespace {

void halves_to_floats_scalar(const uint16_t* halves, float* floats, int n) {
    for (int i = 0; i < n; i++) floats[i] = half_to_float(halves[i]);
}

#if defined(__x86_64__)
__attribute__((target("avx,f16c"))) void halves_to_floats_f16c(const uint16_t* halves,
                                                               float* floats, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(halves + i));
        _mm256_storeu_ps(floats + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) floats[i] = half_to_float(halves[i]);
}
#endif

using Converter = void (*)(const uint16_t*, float*, int);

Converter choose_converter() {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c"))
        return halves_to_floats_f16c;
#endif
    return halves_to_floats_scalar;
}

const Converter converter = choose_converter();

}  // namespace

void halves_to_floats(const uint16_t* halves, float* floats, int n) {
    converter(halves, floats, n);
}

const char* half_conversion_name() {
    return converter == halves_to_floats_scalar ? "scalar" : "f16c";
}

}  // namespace benzer
