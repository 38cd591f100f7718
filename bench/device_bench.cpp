// device_bench.cpp: exact search through core/device.h on the CPU and, when
// the plugin finds one, the GPU: milliseconds per batch and queries per
// second for batches of 1, 8 and 64 queries (k = 10), unfiltered and with a
// 10 % bitmap, on random rows. scripts/gpu-check.sh runs it.
//
//   benzer_device_bench [rows] [dim] [path/to/libbenzer_cuda.so]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/device.h"

namespace {

double time_batch(benzer::Device& device, const benzer::DeviceRows& rows, const float* host,
                  const std::vector<benzer::DeviceQuery>& batch, int repeats) {
    std::int64_t nq = static_cast<std::int64_t>(batch.size()), k = 10;
    std::vector<float> scores(nq * k);
    std::vector<benzer::Label> labels(nq * k);
    std::vector<std::int64_t> counts(nq);
    benzer::device_search(device, rows, host, benzer::ExactScore::kL2Squared, batch.data(), nq, k,
                          scores.data(), labels.data(), counts.data());  // warm
    auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < repeats; r++)
        benzer::device_search(device, rows, host, benzer::ExactScore::kL2Squared, batch.data(), nq,
                              k, scores.data(), labels.data(), counts.data());
    std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
    return elapsed.count() / repeats;
}

}  // namespace

int main(int argc, char** argv) {
    std::int64_t n = argc > 1 ? std::atoll(argv[1]) : 200000;
    int dim = argc > 2 ? std::atoi(argv[2]) : 784;
    std::string plugin = argc > 3 ? argv[3] : BENZER_CUDA_PLUGIN;
    std::mt19937 gen(1);
    std::normal_distribution<float> normal;
    std::vector<float> rows(static_cast<std::size_t>(n) * dim);
    for (float& x : rows) x = normal(gen);
    std::vector<float> queries(64 * static_cast<std::size_t>(dim));
    for (float& x : queries) x = normal(gen);
    std::vector<std::uint8_t> bitmap(static_cast<std::size_t>((n + 7) / 8), 0);
    std::int64_t allowed = 0;
    for (std::int64_t i = 0; i < n; i += 10, allowed++) bitmap[i / 8] |= 1u << (i % 8);

    std::vector<std::unique_ptr<benzer::Device>> devices;
    devices.push_back(benzer::make_cpu_device());
    std::string why;
    auto gpu = benzer::load_gpu_device(plugin, &why);
    if (gpu != nullptr)
        devices.push_back(std::move(gpu));
    else
        std::printf("no GPU: skipped (%s)\n", why.c_str());

    std::printf("%lld rows x %d dimensions, k = 10\n\n", static_cast<long long>(n), dim);
    std::printf("| device | filter | queries per batch | ms per batch | queries/s |\n");
    std::printf("|---|---|---:|---:|---:|\n");
    for (auto& device : devices) {
        auto uploaded = device->upload(rows.data(), n, dim);
        for (bool filtered : {false, true})
            for (int nq : {1, 8, 64}) {
                std::vector<benzer::DeviceQuery> batch(static_cast<std::size_t>(nq));
                for (int q = 0; q < nq; q++) {
                    batch[q].vector = queries.data() + static_cast<std::size_t>(q) * dim;
                    batch[q].k = 10;
                    batch[q].allowed = filtered ? bitmap.data() : nullptr;
                    batch[q].allowed_count = filtered ? allowed : n;
                }
                double ms = time_batch(*device, *uploaded, rows.data(), batch, nq == 64 ? 3 : 5);
                std::printf("| %s | %s | %d | %.2f | %.0f |\n", device->name().c_str(),
                            filtered ? "10 %" : "none", nq, ms, nq * 1000.0 / ms);
            }
    }
    return 0;
}
