// kmeans.h: k-means clustering with Faiss (faiss::Clustering), as benzer
// uses it for benzer_kmeans().
//
// Core code: no PostgreSQL headers; methods may throw (benzer::Error,
// std::bad_alloc, Faiss's exceptions). The PostgreSQL side owns a KMeans
// through a memory-context reset callback and calls it only through
// run_guarded().
//
// The clustering runs in steps (run(n) does n more iterations) so that the
// caller can check for cancellation and report progress between steps;
// Faiss itself also stops at its InterruptCallback (set_interrupt_check in
// engine.h). Running 300 iterations in steps of 10 gives the very same
// centroids as one run of 300: each step starts from the previous step's
// centroids, and Faiss's iterations depend on nothing else.
//
// Determinism: the training sample and the initial centroids depend on the
// seed and on the order of the rows only (see KMeans::sample_rows), and
// every Faiss step is deterministic for a given thread count, so the same
// rows in the same order with the same options give the same clusters.
//
// Distances: for plain k-means, the L2 distance of a row to its centroid
// (the value of the <-> operator); for spherical k-means (cosine), the
// cosine distance (the value of <=>), with centroids of unit length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace benzer {

class Device;

struct KMeansOptions {
    int k = 0;                 // clusters, at least 1
    int iterations = 300;      // at least 1 (the seed application used 300)
    bool spherical = false;    // cosine: unit-length data and centroids
    std::int64_t seed = 1234;  // random sample and initial centroids
    // Rows the centroids are trained on. 0: Faiss's default of 256 rows
    // per centroid (k * 256), or every row when there are fewer. Every row
    // is assigned to its nearest centroid whatever the sample.
    std::int64_t sample_size = 0;
};

// What the clustering has done so far.
struct KMeansProgress {
    int iterations = 0;      // iterations run
    double objective = 0.0;  // Faiss's objective after the last iteration:
                             // sum of squared L2 distances (or of inner
                             // products, spherical) over the sample
    double imbalance = 1.0;  // Faiss's imbalance factor (1: equal sizes)
    int splits = 0;          // empty clusters re-seeded so far
};

class KMeans {
  public:
    // Throws Error(kInvalidParameter) for k < 1, iterations < 1, dim < 1 or
    // sample_size < 0.
    KMeans(int dim, const KMeansOptions& options);
    ~KMeans();
    KMeans(const KMeans&) = delete;
    KMeans& operator=(const KMeans&) = delete;

    // The training sample size for n rows (n itself when it is smaller).
    static std::int64_t effective_sample_size(const KMeansOptions& options, std::int64_t n);

    // The rows (ascending positions among n) a sample of size `sample`
    // takes with this seed: all of them when sample >= n.
    static std::vector<std::int64_t> sample_rows(std::int64_t n, std::int64_t sample,
                                                 std::int64_t seed);

    // Bytes the clustering itself allocates (sample copy, Faiss's
    // buffers, centroids), not counting the caller's n rows.
    static std::size_t memory_bytes(int dim, int k, std::int64_t n, std::int64_t sample);

    // Copies the training sample out of n rows (row-major, dim floats each;
    // normalised copies when spherical). Throws Error(kInvalidParameter)
    // when n < k. The rows need not stay alive afterwards.
    void set_data(const float* vectors, std::int64_t n);

    // Runs up to `iterations` more iterations (fewer at the end); returns
    // the number run. Throws Faiss's "computation interrupted" exception
    // when the interrupt check fires.
    int run(int iterations);

    bool done() const { return progress_.iterations >= options_.iterations; }
    const KMeansProgress& progress() const { return progress_; }
    std::int64_t sample_size() const { return sample_count_; }
    int dim() const { return dim_; }
    int k() const { return options_.k; }

    // Runs the assignment steps (each iteration's, and assign()'s) on
    // device (core/device.h: the search service's GPU, or its CPU
    // implementation) instead of benzer's BLAS kernel; null: the kernel.
    // The centroid updates stay Faiss's. Not owned; must outlive its use.
    // A device may break distance ties differently in the last bits, so
    // clusters can differ from the kernel's where rows are equidistant.
    void set_device(Device* device) { device_ = device; }

    // The centroids, k * dim floats (after at least one run()).
    const float* centroids() const { return centroids_.data(); }

    // Assigns n rows to their nearest centroid: clusters[i] in 0..k-1 and
    // distances[i] as described above (NaN for a zero row when spherical,
    // as <=> gives). Runs in batches and honours the interrupt check.
    void assign(const float* vectors, std::int64_t n, std::int32_t* clusters,
                double* distances) const;

  private:
    int dim_;
    KMeansOptions options_;
    std::vector<float> sample_;        // sample_count_ * dim_
    std::vector<float> sample_norms_;  // squared norms of the sample rows
    std::int64_t sample_count_ = 0;
    std::vector<float> centroids_;
    KMeansProgress progress_;
    Device* device_ = nullptr;
};

}  // namespace benzer
