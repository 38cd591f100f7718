// random_rows.h: normally distributed test vectors, shared by the device
// tests (test/unit/device_test.cpp) and the GPU plugin's tests
// (test/gpu/device_cuda_test.cpp), so both compare on the same data.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace benzer_test {

// n rows of dim floats, N(0, 1), from seed.
inline std::vector<float> random_rows(std::int64_t n, int dim, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(static_cast<std::size_t>(n * dim));
    for (float& x : v) x = normal(gen);
    return v;
}

}  // namespace benzer_test
