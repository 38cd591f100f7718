// distance_bench.cpp: squared L2 distance from one query to a set of vectors.
//
// Compares benzer::l2_squared (multiversioned, 16 partial sums), a plain loop
// with one accumulator (what a compiler makes of the obvious code without
// -ffast-math), and Faiss's fvec_L2sqr when Faiss is available (Debian's
// build targets baseline x86-64).
//
// Two data sets per dimension: 1 000 vectors (0.8 MB at d = 196, 3.1 MB at
// d = 784: cache resident) and 60 000 vectors (the Fashion-MNIST train set
// size, 47 MB and 188 MB: memory bound). bytes_per_second counts the base
// vectors read, one pass over the set per iteration (Google Benchmark prints
// it in binary units: G/s is GiB/s).
//
//   build/benzer_distance_bench --benchmark_min_time=0.5
#include "core/distance.h"

#include <benchmark/benchmark.h>

#include <cstddef>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#ifdef BENZER_HAVE_FAISS
#include <faiss/utils/distances.h>
#endif

namespace {

struct DataSet {
    std::size_t d;
    std::size_t n;
    std::vector<float> base;
    std::vector<float> query;
};

// Built once per (d, n) and kept for all implementations.
const DataSet& data_set(std::size_t d, std::size_t n) {
    static std::map<std::pair<std::size_t, std::size_t>, DataSet> cache;
    auto it = cache.find({d, n});
    if (it != cache.end()) return it->second;
    DataSet ds{d, n, std::vector<float>(d * n), std::vector<float>(d)};
    std::mt19937 rng(static_cast<unsigned>(d * 31 + n));
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    for (float& f : ds.base) f = uniform(rng);
    for (float& f : ds.query) f = uniform(rng);
    return cache.emplace(std::make_pair(d, n), std::move(ds)).first->second;
}

__attribute__((noinline)) float plain_l2_squared(const float* a, const float* b, std::size_t n) {
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
        float diff = a[i] - b[i];
        sum += diff * diff;
    }
    return sum;
}

float benzer_l2(const float* a, const float* b, std::size_t n) {
    return benzer::l2_squared(a, b, n);
}

#ifdef BENZER_HAVE_FAISS
float faiss_l2(const float* a, const float* b, std::size_t n) { return faiss::fvec_L2sqr(a, b, n); }
#endif

template <float (*Distance)(const float*, const float*, std::size_t)>
void scan(benchmark::State& state) {
    const std::size_t d = static_cast<std::size_t>(state.range(0));
    const std::size_t n = static_cast<std::size_t>(state.range(1));
    const DataSet& ds = data_set(d, n);
    const float* query = ds.query.data();
    const float* base = ds.base.data();
    for (auto _ : state) {
        float total = 0.0f;
        for (std::size_t i = 0; i < n; ++i) total += Distance(query, base + i * d, d);
        benchmark::DoNotOptimize(total);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(n * d * sizeof(float)));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(n));
}

void arguments(benchmark::internal::Benchmark* b) {
    b->ArgNames({"d", "n"});
    for (std::int64_t d : {196, 784})
        for (std::int64_t n : {1000, 60000}) b->Args({d, n});
    b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(scan<benzer_l2>)->Name("benzer_l2_squared")->Apply(arguments);
BENCHMARK(scan<plain_l2_squared>)->Name("plain_loop")->Apply(arguments);
#ifdef BENZER_HAVE_FAISS
BENCHMARK(scan<faiss_l2>)->Name("faiss_fvec_L2sqr")->Apply(arguments);
#endif

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("benzer_kernel", benzer::distance_kernel_name());
#ifdef BENZER_HAVE_FAISS
    benchmark::AddCustomContext("faiss", "yes");
#else
    benchmark::AddCustomContext("faiss", "not found at build time");
#endif
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
