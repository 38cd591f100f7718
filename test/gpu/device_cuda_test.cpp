// device_cuda_test.cpp: the GPU plugin (libbenzer_cuda.so) against the CPU
// device on random data: every kernel the search service uses, through the
// same core/device.h interface. Without a GPU (no driver, no device) every
// test skips with "no GPU: skipped", which scripts/gpu-check.sh reports as
// skipped, never as passed.
//
//   benzer_cuda_tests [path/to/libbenzer_cuda.so]
//   (default: BENZER_CUDA_PLUGIN from the build)
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../unit/random_rows.h"
#include "core/device.h"
#include "core/distance.h"
#include "core/kmeans.h"

namespace {

using benzer::DeviceQuery;
using benzer::ExactScore;
using benzer::Label;

std::string g_plugin = BENZER_CUDA_PLUGIN;

using benzer_test::random_rows;

class Gpu : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why;
        gpu_ = benzer::load_gpu_device(g_plugin, &why);
        if (gpu_ == nullptr) GTEST_SKIP() << "no GPU: skipped (" << why << ")";
        cpu_ = benzer::make_cpu_device();
    }
    std::unique_ptr<benzer::Device> gpu_, cpu_;
};

// device_search on both devices: the same rows, the same exact scores.
void compare(benzer::Device& gpu, benzer::Device& cpu, ExactScore score, std::int64_t n, int dim,
             double keep, std::int64_t k, int nq) {
    auto rows = random_rows(n, dim, 3);
    auto queries = random_rows(nq, dim, 4);
    std::mt19937 gen(5);
    std::bernoulli_distribution coin(keep);
    std::vector<std::vector<std::uint8_t>> bitmaps(static_cast<std::size_t>(nq));
    std::vector<DeviceQuery> batch(static_cast<std::size_t>(nq));
    for (int q = 0; q < nq; q++) {
        batch[q].vector = queries.data() + q * dim;
        batch[q].k = k;
        batch[q].allowed_count = n;
        if (keep < 1.0) {
            bitmaps[q].assign(static_cast<std::size_t>((n + 7) / 8), 0);
            batch[q].allowed_count = 0;
            for (std::int64_t i = 0; i < n; i++)
                if (coin(gen)) {
                    bitmaps[q][i / 8] |= static_cast<std::uint8_t>(1u << (i % 8));
                    batch[q].allowed_count++;
                }
            batch[q].allowed = bitmaps[q].data();
        }
    }
    auto gpu_rows = gpu.upload(rows.data(), n, dim);
    auto cpu_rows = cpu.upload(rows.data(), n, dim);
    std::vector<float> gs(nq * k), cs(nq * k);
    std::vector<Label> gl(nq * k), cl(nq * k);
    std::vector<std::int64_t> gc(nq), cc(nq);
    benzer::device_search(gpu, *gpu_rows, rows.data(), score, batch.data(), nq, k, gs.data(),
                          gl.data(), gc.data());
    benzer::device_search(cpu, *cpu_rows, rows.data(), score, batch.data(), nq, k, cs.data(),
                          cl.data(), cc.data());
    for (int q = 0; q < nq; q++) {
        ASSERT_EQ(gc[q], cc[q]) << "query " << q;
        for (std::int64_t i = 0; i < gc[q]; i++) {
            EXPECT_EQ(gl[q * k + i], cl[q * k + i]) << "query " << q << " rank " << i;
            EXPECT_EQ(gs[q * k + i], cs[q * k + i]) << "query " << q << " rank " << i;
        }
    }
}

TEST_F(Gpu, ExactL2MatchesCpu) {
    compare(*gpu_, *cpu_, ExactScore::kL2Squared, 20000, 64, 1.0, 10, 8);
}
TEST_F(Gpu, ExactInnerProductMatchesCpu) {
    compare(*gpu_, *cpu_, ExactScore::kNegativeInnerProduct, 20000, 64, 1.0, 10, 8);
}
TEST_F(Gpu, FilteredTopKIsNeverUnderFilled) {
    compare(*gpu_, *cpu_, ExactScore::kL2Squared, 30000, 32, 0.01, 50, 16);
}
TEST_F(Gpu, LargeKAcrossSelectionPasses) {
    compare(*gpu_, *cpu_, ExactScore::kL2Squared, 100000, 16, 0.5, 400, 4);
}
TEST_F(Gpu, ManyRowBlocks) {
    compare(*gpu_, *cpu_, ExactScore::kL2Squared, 300000, 8, 0.3, 10, 64);
}
TEST_F(Gpu, FewerAllowedRowsThanK) {
    compare(*gpu_, *cpu_, ExactScore::kL2Squared, 5000, 24, 0.001, 20, 3);
}
TEST_F(Gpu, Wide2048Dimensions) {
    compare(*gpu_, *cpu_, ExactScore::kL2Squared, 3000, 2048, 1.0, 10, 4);
}

TEST_F(Gpu, KMeansAssignmentMatchesCpu) {
    const int dim = 48, nc = 300;
    const std::int64_t n = 50000;
    auto centroids = random_rows(nc, dim, 8);
    auto rows = random_rows(n, dim, 9);
    std::vector<std::int64_t> gn(n), cn(n);
    std::vector<float> gd(n), cd(n);
    gpu_->assign(centroids.data(), nc, rows.data(), n, dim, gn.data(), gd.data());
    cpu_->assign(centroids.data(), nc, rows.data(), n, dim, cn.data(), cd.data());
    std::int64_t differ = 0;
    for (std::int64_t i = 0; i < n; i++) {
        if (gn[i] != cn[i]) {
            differ++;  // a near tie, rounded differently: both must be as near
            float a =
                benzer::l2_squared(rows.data() + i * dim, centroids.data() + gn[i] * dim, dim);
            float b =
                benzer::l2_squared(rows.data() + i * dim, centroids.data() + cn[i] * dim, dim);
            EXPECT_NEAR(a, b, 1e-3f * b + 1e-3f);
        }
        EXPECT_NEAR(gd[i], cd[i], 1e-3f * cd[i] + 1e-3f);
    }
    EXPECT_LT(differ, n / 1000);
}

// benzer's k-means with its assignment steps on the GPU (the search
// service's IVF training and benzer_kmeans) against the CPU device.
TEST_F(Gpu, KMeansOnTheGpuMatchesCpu) {
    const int dim = 32, k = 64;
    const std::int64_t n = 40000;
    auto rows = random_rows(n, dim, 12);
    benzer::KMeansOptions options;
    options.k = k;
    options.iterations = 20;
    benzer::KMeans on_gpu(dim, options), on_cpu(dim, options);
    on_gpu.set_device(gpu_.get());
    on_cpu.set_device(cpu_.get());
    on_gpu.set_data(rows.data(), n);
    on_cpu.set_data(rows.data(), n);
    while (!on_gpu.done()) on_gpu.run(10);
    while (!on_cpu.done()) on_cpu.run(10);
    // Rounding may move a near-tie row; the objectives agree closely.
    EXPECT_NEAR(on_gpu.progress().objective, on_cpu.progress().objective,
                1e-3 * on_cpu.progress().objective);
    std::vector<std::int32_t> gc(n), cc(n);
    std::vector<double> gd(n), cd(n);
    on_gpu.assign(rows.data(), n, gc.data(), gd.data());
    on_cpu.assign(rows.data(), n, cc.data(), cd.data());
    std::int64_t same = 0;
    for (std::int64_t i = 0; i < n; i++) same += gc[i] == cc[i];
    EXPECT_GT(same, n * 95 / 100);
}

}  // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc > 1) g_plugin = argv[1];
    return RUN_ALL_TESTS();
}
