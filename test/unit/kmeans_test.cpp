// kmeans_test.cpp: the core k-means wrapper (core/kmeans.h) around
// faiss::Clustering: validation, sampling, determinism, stepwise runs,
// assignment and distances, spherical k-means, interruption.
#ifdef BENZER_HAVE_FAISS

#include "core/kmeans.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/distance.h"
#include "core/engine.h"
#include "core/error.h"

namespace {

using benzer::KMeans;
using benzer::KMeansOptions;

// n points around `groups` centres far apart, in dim dimensions; group of
// row i is i % groups.
std::vector<float> blobs(std::int64_t n, int dim, int groups, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n) * dim);
    for (std::int64_t i = 0; i < n; i++) {
        int g = static_cast<int>(i % groups);
        for (int j = 0; j < dim; j++)
            x[static_cast<size_t>(i) * dim + j] = (j % groups == g ? 100.0f : 0.0f) + noise(rng);
    }
    return x;
}

KMeansOptions options(int k, int iterations = 300, std::int64_t seed = 1234) {
    KMeansOptions o;
    o.k = k;
    o.iterations = iterations;
    o.seed = seed;
    return o;
}

void run_all(KMeans& kmeans) {
    while (!kmeans.done()) kmeans.run(10);
}

bool always_interrupt() { return true; }

TEST(KMeans, RejectsBadOptions) {
    auto kind_of = [](auto&& fn) {
        try {
            fn();
        } catch (const benzer::Error& e) {
            return e.kind();
        }
        return benzer::ErrorKind::kNone;
    };
    EXPECT_EQ(kind_of([] { KMeans(4, options(0)); }), benzer::ErrorKind::kInvalidParameter);
    EXPECT_EQ(kind_of([] { KMeans(4, options(2, 0)); }), benzer::ErrorKind::kInvalidParameter);
    EXPECT_EQ(kind_of([] { KMeans(0, options(2)); }), benzer::ErrorKind::kInvalidParameter);
    KMeansOptions negative = options(2);
    negative.sample_size = -1;
    EXPECT_EQ(kind_of([&] { KMeans(4, negative); }), benzer::ErrorKind::kInvalidParameter);
    // More clusters than rows.
    std::vector<float> x(3 * 4, 1.0f);
    KMeans kmeans(4, options(5));
    EXPECT_EQ(kind_of([&] { kmeans.set_data(x.data(), 3); }), benzer::ErrorKind::kInvalidParameter);
}

TEST(KMeans, EffectiveSampleSize) {
    KMeansOptions o = options(10);
    EXPECT_EQ(KMeans::effective_sample_size(o, 100000), 2560);  // 256 per centroid
    EXPECT_EQ(KMeans::effective_sample_size(o, 1000), 1000);    // capped at n
    o.sample_size = 50;
    EXPECT_EQ(KMeans::effective_sample_size(o, 1000), 50);
    o.sample_size = 3;
    EXPECT_EQ(KMeans::effective_sample_size(o, 1000), 10);  // never fewer than k
    o.sample_size = 5000;
    EXPECT_EQ(KMeans::effective_sample_size(o, 1000), 1000);
}

TEST(KMeans, SampleRowsAreDeterministicSortedAndDistinct) {
    std::vector<std::int64_t> a = KMeans::sample_rows(1000, 100, 42);
    std::vector<std::int64_t> b = KMeans::sample_rows(1000, 100, 42);
    std::vector<std::int64_t> c = KMeans::sample_rows(1000, 100, 43);
    ASSERT_EQ(a.size(), 100u);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
    EXPECT_EQ(std::set<std::int64_t>(a.begin(), a.end()).size(), a.size());
    EXPECT_GE(a.front(), 0);
    EXPECT_LT(a.back(), 1000);
    std::vector<std::int64_t> all = KMeans::sample_rows(5, 10, 1);
    EXPECT_EQ(all, (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
}

TEST(KMeans, FindsSeparatedGroups) {
    const int dim = 8, groups = 4;
    const std::int64_t n = 2000;
    std::vector<float> x = blobs(n, dim, groups, 1);
    KMeans kmeans(dim, options(groups, 50, 7));
    kmeans.set_data(x.data(), n);
    EXPECT_EQ(kmeans.sample_size(), 1024);  // 4 clusters * 256 rows
    run_all(kmeans);
    EXPECT_EQ(kmeans.progress().iterations, 50);
    std::vector<std::int32_t> clusters(n);
    std::vector<double> distances(n);
    kmeans.assign(x.data(), n, clusters.data(), distances.data());
    // Every group maps to exactly one cluster, and the clusters differ.
    std::vector<std::set<int>> of_group(groups);
    for (std::int64_t i = 0; i < n; i++) of_group[i % groups].insert(clusters[i]);
    std::set<int> used;
    for (int g = 0; g < groups; g++) {
        EXPECT_EQ(of_group[g].size(), 1u) << "group " << g;
        used.insert(*of_group[g].begin());
    }
    EXPECT_EQ(used.size(), static_cast<size_t>(groups));
    // Distances are the exact L2 distances to the assigned centroid, and the
    // assigned centroid is the nearest.
    for (std::int64_t i = 0; i < n; i += 37) {
        const float* row = x.data() + i * dim;
        double expected = std::sqrt(static_cast<double>(
            benzer::l2_squared(row, kmeans.centroids() + clusters[i] * dim, dim)));
        EXPECT_EQ(distances[i], expected);
        for (int c = 0; c < groups; c++)
            EXPECT_LE(distances[i] * distances[i],
                      benzer::l2_squared(row, kmeans.centroids() + c * dim, dim) * 1.0001 + 1e-6);
    }
}

TEST(KMeans, StepsGiveTheSameCentroidsAsOneRun) {
    const int dim = 16;
    const std::int64_t n = 3000;
    std::vector<float> x = blobs(n, dim, 5, 2);
    KMeans whole(dim, options(7, 40));
    whole.set_data(x.data(), n);
    EXPECT_EQ(whole.run(1000), 40);
    EXPECT_TRUE(whole.done());
    EXPECT_EQ(whole.run(10), 0);
    KMeans steps(dim, options(7, 40));
    steps.set_data(x.data(), n);
    int total = 0;
    while (!steps.done()) total += steps.run(7);  // 7, 7, ..., 5
    EXPECT_EQ(total, 40);
    EXPECT_EQ(0, std::memcmp(whole.centroids(), steps.centroids(), sizeof(float) * 7 * dim));
}

TEST(KMeans, SameSeedSameClustersOtherSeedOtherStart) {
    const int dim = 8;
    const std::int64_t n = 5000;
    std::vector<float> x = blobs(n, dim, 3, 3);
    auto centroids = [&](std::int64_t seed, std::int64_t sample) {
        KMeansOptions o = options(20, 5, seed);
        o.sample_size = sample;
        KMeans kmeans(dim, o);
        kmeans.set_data(x.data(), n);
        run_all(kmeans);
        return std::vector<float>(kmeans.centroids(), kmeans.centroids() + 20 * dim);
    };
    EXPECT_EQ(centroids(1, 0), centroids(1, 0));
    EXPECT_NE(centroids(1, 0), centroids(2, 0));
    EXPECT_EQ(centroids(1, 500), centroids(1, 500));
    EXPECT_NE(centroids(1, 500), centroids(1, 600));
}

TEST(KMeans, SphericalCentroidsAreUnitAndDistancesAreCosine) {
    const int dim = 6;
    const std::int64_t n = 600;
    std::vector<float> x = blobs(n, dim, 3, 4);
    // Scale rows differently: spherical k-means must not care about length.
    for (std::int64_t i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) x[i * dim + j] *= 1.0f + static_cast<float>(i % 7);
    KMeansOptions o = options(3, 20, 5);
    o.spherical = true;
    KMeans kmeans(dim, o);
    kmeans.set_data(x.data(), n);
    run_all(kmeans);
    for (int c = 0; c < 3; c++) {
        const float* centroid = kmeans.centroids() + c * dim;
        EXPECT_NEAR(std::sqrt(benzer::inner_product(centroid, centroid, dim)), 1.0, 1e-5);
    }
    std::vector<std::int32_t> clusters(n);
    std::vector<double> distances(n);
    kmeans.assign(x.data(), n, clusters.data(), distances.data());
    std::vector<std::set<int>> of_group(3);
    for (std::int64_t i = 0; i < n; i++) {
        of_group[i % 3].insert(clusters[i]);
        EXPECT_EQ(distances[i],
                  benzer::cosine_distance(x.data() + i * dim,
                                          kmeans.centroids() + clusters[i] * dim, dim));
    }
    for (int g = 0; g < 3; g++) EXPECT_EQ(of_group[g].size(), 1u);
}

TEST(KMeans, AsManyClustersAsRows) {
    std::vector<float> x = {0, 0, 5, 5, 10, 0};
    KMeans kmeans(2, options(3));
    kmeans.set_data(x.data(), 3);
    run_all(kmeans);
    std::vector<std::int32_t> clusters(3);
    std::vector<double> distances(3);
    kmeans.assign(x.data(), 3, clusters.data(), distances.data());
    EXPECT_EQ(std::set<int>(clusters.begin(), clusters.end()).size(), 3u);
    for (double d : distances) EXPECT_EQ(d, 0.0);
}

TEST(KMeans, AssignsInBatchesBeyondOneBatch) {
    // More rows than one assignment batch (16384).
    const int dim = 4;
    const std::int64_t n = 40000;
    std::vector<float> x = blobs(n, dim, 2, 6);
    KMeans kmeans(dim, options(2, 10));
    kmeans.set_data(x.data(), n);
    EXPECT_EQ(kmeans.sample_size(), 512);
    run_all(kmeans);
    std::vector<std::int32_t> clusters(n);
    std::vector<double> distances(n);
    kmeans.assign(x.data(), n, clusters.data(), distances.data());
    for (std::int64_t i = 2; i < n; i++) EXPECT_EQ(clusters[i], clusters[i % 2]);
    EXPECT_NE(clusters[0], clusters[1]);
}

TEST(KMeans, StopsWhenInterrupted) {
    const int dim = 8;
    const std::int64_t n = 2000;
    std::vector<float> x = blobs(n, dim, 2, 8);
    KMeans kmeans(dim, options(4, 100));
    kmeans.set_data(x.data(), n);
    benzer::set_interrupt_check(always_interrupt);
    bool interrupted = false;
    try {
        kmeans.run(10);
    } catch (const std::exception& e) {
        interrupted = std::string(e.what()).find("computation interrupted") != std::string::npos;
    }
    benzer::set_interrupt_check(nullptr);
    EXPECT_TRUE(interrupted);
    // Without the interrupt, a fresh run works.
    KMeans again(dim, options(4, 5));
    again.set_data(x.data(), n);
    run_all(again);
    EXPECT_TRUE(again.done());
}

TEST(KMeans, MemoryEstimateGrowsWithTheSample) {
    std::size_t small = KMeans::memory_bytes(784, 10, 60000, 2560);
    std::size_t large = KMeans::memory_bytes(784, 10, 60000, 60000);
    EXPECT_GT(small, 2560u * 784u * 4u);
    EXPECT_GT(large, small + 50000u * 784u * 4u);
}

// A device that counts the assignments it is asked for, and answers them
// with the CPU implementation (the GPU plugin's reference).
class CountingDevice : public benzer::Device {
  public:
    CountingDevice() : cpu_(benzer::make_cpu_device()) {}
    std::string name() const override { return "counting cpu"; }
    bool is_gpu() const override { return false; }
    std::unique_ptr<benzer::DeviceRows> upload(const float* rows, std::int64_t n,
                                               int dim) override {
        return cpu_->upload(rows, n, dim);
    }
    void candidates(const benzer::DeviceRows& rows, benzer::ExactScore score,
                    const benzer::DeviceQuery* queries, std::int64_t nq, std::int64_t kk,
                    benzer::Label* labels) override {
        cpu_->candidates(rows, score, queries, nq, kk, labels);
    }
    void assign(const float* centroids, std::int64_t nc, const float* rows, std::int64_t n, int dim,
                std::int64_t* nearest, float* distances) override {
        calls++;
        cpu_->assign(centroids, nc, rows, n, dim, nearest, distances);
    }
    int calls = 0;

  private:
    std::unique_ptr<benzer::Device> cpu_;
};

// k-means whose assignment steps run on a device gives the clusters of
// k-means with benzer's kernel: the same rows per cluster and centroids
// equal to rounding.
void expect_device_matches_kernel(bool spherical) {
    const int dim = 16, groups = 6;
    const std::int64_t n = 3000;
    std::vector<float> x = blobs(n, dim, groups, 11);
    KMeansOptions o = options(groups, 30, 5);
    o.spherical = spherical;
    KMeans plain(dim, o);
    plain.set_data(x.data(), n);
    run_all(plain);
    CountingDevice device;
    KMeans on_device(dim, o);
    on_device.set_device(&device);
    on_device.set_data(x.data(), n);
    run_all(on_device);
    EXPECT_GE(device.calls, 30) << "one assignment per iteration at least";
    std::vector<std::int32_t> a(n), b(n);
    std::vector<double> da(n), db(n);
    plain.assign(x.data(), n, a.data(), da.data());
    on_device.assign(x.data(), n, b.data(), db.data());
    std::int64_t same = 0;
    for (std::int64_t i = 0; i < n; i++) same += a[i] == b[i];
    EXPECT_EQ(same, n);
    for (std::int64_t i = 0; i < n; i++) EXPECT_NEAR(da[i], db[i], 1e-3 * (1.0 + da[i]));
    for (int j = 0; j < groups * dim; j++)
        EXPECT_NEAR(plain.centroids()[j], on_device.centroids()[j], 1e-3);
    EXPECT_NEAR(plain.progress().objective, on_device.progress().objective,
                1e-4 * std::abs(plain.progress().objective));
}

TEST(KMeans, AssignmentOnADeviceGivesTheSameClusters) { expect_device_matches_kernel(false); }

TEST(KMeans, SphericalAssignmentOnADeviceGivesTheSameClusters) {
    expect_device_matches_kernel(true);
}

}  // namespace

#endif  // BENZER_HAVE_FAISS
