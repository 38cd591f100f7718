// device_test.cpp: the CPU device and device_search (core/device.h), which
// the search service runs, against a plain loop over every row. The GPU
// plugin's own tests (test/gpu/) compare its kernels with this CPU device.
#if defined(BENZER_HAVE_FAISS)

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/distance.h"
#include "core/error.h"
#include "random_rows.h"

namespace {

using benzer::DeviceQuery;
using benzer::ExactScore;
using benzer::Label;

using benzer_test::random_rows;

std::vector<std::uint8_t> random_bitmap(std::int64_t n, double keep, unsigned seed,
                                        std::int64_t* allowed) {
    std::mt19937 gen(seed);
    std::bernoulli_distribution coin(keep);
    std::vector<std::uint8_t> bits(static_cast<std::size_t>((n + 7) / 8), 0);
    *allowed = 0;
    for (std::int64_t i = 0; i < n; i++)
        if (coin(gen)) {
            bits[static_cast<std::size_t>(i / 8)] |= static_cast<std::uint8_t>(1u << (i % 8));
            (*allowed)++;
        }
    return bits;
}

// The k allowed rows with the smallest exact scores, ties by label.
std::vector<std::pair<float, Label>> brute_force(const std::vector<float>& rows, int dim,
                                                 ExactScore score, const float* query,
                                                 const std::uint8_t* bits, std::int64_t k) {
    std::vector<std::pair<float, Label>> all;
    std::int64_t n = static_cast<std::int64_t>(rows.size()) / dim;
    for (std::int64_t i = 0; i < n; i++) {
        if (bits != nullptr && ((bits[i / 8] >> (i % 8)) & 1) == 0) continue;
        const float* r = rows.data() + i * dim;
        float s = score == ExactScore::kL2Squared ? benzer::l2_squared(query, r, dim)
                                                  : -benzer::inner_product(query, r, dim);
        all.emplace_back(s, i);
    }
    std::sort(all.begin(), all.end());
    if (static_cast<std::int64_t>(all.size()) > k) all.resize(static_cast<std::size_t>(k));
    return all;
}

// A batch mixing unfiltered, dense-filtered and sparse-filtered queries
// with different k returns, for each, exactly the brute-force answer.
void check_batch(ExactScore score, std::int64_t n, int dim) {
    auto rows = random_rows(n, dim, 7);
    auto device = benzer::make_cpu_device();
    auto uploaded = device->upload(rows.data(), n, dim);
    ASSERT_EQ(uploaded->count(), n);
    const int nq = 9;
    auto queries = random_rows(nq, dim, 11);
    std::vector<std::vector<std::uint8_t>> bitmaps(nq);
    std::vector<DeviceQuery> batch(nq);
    const double keeps[] = {1.0, 0.5, 0.3, 0.02, 0.001, 1.0, 0.2, 0.05, 0.0};
    std::int64_t kmax = 0;
    for (int q = 0; q < nq; q++) {
        batch[q].vector = queries.data() + q * dim;
        batch[q].k = 1 + (q * 7) % 40;
        kmax = std::max(kmax, batch[q].k);
        if (q == 0) {
            batch[q].allowed_count = n;
            continue;
        }
        bitmaps[q] = random_bitmap(n, keeps[q], 100 + q, &batch[q].allowed_count);
        batch[q].allowed = bitmaps[q].data();
    }
    std::vector<float> scores(nq * kmax);
    std::vector<Label> labels(nq * kmax);
    std::vector<std::int64_t> counts(nq);
    benzer::device_search(*device, *uploaded, rows.data(), score, batch.data(), nq, kmax,
                          scores.data(), labels.data(), counts.data());
    for (int q = 0; q < nq; q++) {
        auto expected =
            brute_force(rows, dim, score, batch[q].vector, batch[q].allowed, batch[q].k);
        ASSERT_EQ(counts[q], static_cast<std::int64_t>(expected.size())) << "query " << q;
        for (std::size_t i = 0; i < expected.size(); i++) {
            EXPECT_EQ(labels[q * kmax + i], expected[i].second) << "query " << q << " rank " << i;
            EXPECT_EQ(scores[q * kmax + i], expected[i].first) << "query " << q << " rank " << i;
        }
        for (std::int64_t i = counts[q]; i < kmax; i++) EXPECT_EQ(labels[q * kmax + i], -1);
    }
}

TEST(Device, CpuBatchMatchesBruteForceL2) { check_batch(ExactScore::kL2Squared, 3000, 24); }

TEST(Device, CpuBatchMatchesBruteForceInnerProduct) {
    check_batch(ExactScore::kNegativeInnerProduct, 2500, 17);
}

TEST(Device, CpuBatchAcrossSeveralRowBlocks) { check_batch(ExactScore::kL2Squared, 5000, 8); }

TEST(Device, FewerRowsThanK) {
    auto rows = random_rows(5, 4, 3);
    auto device = benzer::make_cpu_device();
    auto uploaded = device->upload(rows.data(), 5, 4);
    DeviceQuery query;
    query.vector = rows.data();
    query.k = 10;
    query.allowed_count = 5;
    std::vector<float> scores(10);
    std::vector<Label> labels(10);
    std::int64_t count = 0;
    benzer::device_search(*device, *uploaded, rows.data(), ExactScore::kL2Squared, &query, 1, 10,
                          scores.data(), labels.data(), &count);
    EXPECT_EQ(count, 5);
    EXPECT_EQ(labels[0], 0);
    EXPECT_EQ(scores[0], 0.0f);
}

TEST(Device, KLargerThanKmaxIsRefused) {
    auto rows = random_rows(5, 4, 3);
    auto device = benzer::make_cpu_device();
    auto uploaded = device->upload(rows.data(), 5, 4);
    DeviceQuery query;
    query.vector = rows.data();
    query.k = 3;
    float score;
    Label label;
    std::int64_t count;
    EXPECT_THROW(benzer::device_search(*device, *uploaded, rows.data(), ExactScore::kL2Squared,
                                       &query, 1, 1, &score, &label, &count),
                 benzer::Error);
}

TEST(Device, CpuAssignFindsTheNearestCentroid) {
    const int dim = 12, nc = 37;
    const std::int64_t n = 2100;
    auto centroids = random_rows(nc, dim, 5);
    auto rows = random_rows(n, dim, 6);
    auto device = benzer::make_cpu_device();
    std::vector<std::int64_t> nearest(n);
    std::vector<float> distances(n);
    device->assign(centroids.data(), nc, rows.data(), n, dim, nearest.data(), distances.data());
    int disagreements = 0;
    for (std::int64_t i = 0; i < n; i++) {
        float best = 1e30f;
        std::int64_t best_c = -1;
        for (int c = 0; c < nc; c++) {
            float d = benzer::l2_squared(rows.data() + i * dim, centroids.data() + c * dim, dim);
            if (d < best) {
                best = d;
                best_c = c;
            }
        }
        // The product form rounds differently: a different centroid only
        // at a near tie.
        if (nearest[i] != best_c) {
            disagreements++;
            float other =
                benzer::l2_squared(rows.data() + i * dim, centroids.data() + nearest[i] * dim, dim);
            EXPECT_NEAR(other, best, 1e-4f * best + 1e-5f);
        }
        EXPECT_NEAR(distances[i], best, 1e-4f * best + 1e-4f);
    }
    EXPECT_LT(disagreements, 3);
}

TEST(Device, MissingPluginIsReportedNotFatal) {
    std::string why;
    auto device = benzer::load_gpu_device("/nonexistent/libbenzer_cuda.so", &why);
    EXPECT_EQ(device, nullptr);
    EXPECT_NE(why.find("cannot load"), std::string::npos) << why;
}

}  // namespace

#endif  // BENZER_HAVE_FAISS
