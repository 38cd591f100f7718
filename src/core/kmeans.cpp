// kmeans.cpp: k-means with faiss::Clustering (see kmeans.h).
#include "kmeans.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <faiss/impl/AuxIndexStructures.h>

#include "blas.h"
#include "device.h"
#include "distance.h"
#include "error.h"

namespace benzer {

namespace {

// Faiss's default: more rows per centroid hardly move the centroids.
constexpr std::int64_t kPointsPerCentroid = 256;

// Rows assigned per Faiss search call (bounds the temporary copies).
constexpr std::int64_t kAssignBatch = 16384;

[[noreturn]] void invalid(const std::string& message) {
    throw Error(ErrorKind::kInvalidParameter, message);
}

void normalize_row(float* v, int dim) {
    double sum = 0.0;
    for (int i = 0; i < dim; i++) sum += static_cast<double>(v[i]) * v[i];
    if (sum > 0.0) {
        double inv = 1.0 / std::sqrt(sum);
        for (int i = 0; i < dim; i++) v[i] = static_cast<float>(v[i] * inv);
    }
}

using FaissLabel = faiss::Index::idx_t;

// The index faiss::Clustering assigns rows with. Faiss's IndexFlat
// recomputes the squared norms of all rows on every search, at scalar speed
// in Debian's build: half of every iteration. The rows are the same
// sample in every iteration, so this index keeps their norms (computed once
// with benzer's SIMD kernel) and does the rest as Faiss does: a BLAS
// product per block, then the nearest centroid per row. Other searches
// (k > 1, parameters) go to IndexFlat.
struct AssignIndex : faiss::IndexFlat {
    const float* rows = nullptr;       // the sample
    const float* row_norms = nullptr;  // its squared norms
    std::int64_t nrows = 0;
    Device* device = nullptr;  // assigns instead of the kernel below, when set

    AssignIndex(int dim, bool inner_product)
        : faiss::IndexFlat(dim, inner_product ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2) {}

    void search(FaissLabel n, const float* x, FaissLabel k, float* distances, FaissLabel* labels,
                const faiss::SearchParameters* params = nullptr) const override {
        if (k != 1 || params != nullptr || ntotal == 0) {
            faiss::IndexFlat::search(n, x, k, distances, labels, params);
            return;
        }
        const bool l2 = metric_type == faiss::METRIC_L2;
        const std::size_t dim = static_cast<std::size_t>(d);
        const float* centroids = get_xb();
        const int nc = static_cast<int>(ntotal);
        if (device != nullptr) {
            assign_on_device(n, x, distances, labels, l2);
            return;
        }
        std::vector<float> centroid_norms(static_cast<std::size_t>(nc));
        for (int c = 0; c < nc; c++)
            centroid_norms[c] = inner_product(centroids + c * dim, centroids + c * dim, dim);
        const bool cached = x == rows && n == nrows && row_norms != nullptr;
        constexpr FaissLabel kBlock = 4096;
        std::vector<float> products(static_cast<std::size_t>(kBlock) * nc);
        std::vector<float> norms(static_cast<std::size_t>(kBlock));
        for (FaissLabel i0 = 0; i0 < n; i0 += kBlock) {
            int nb = static_cast<int>(std::min(kBlock, n - i0));
            const float* block = x + i0 * d;
            const float* block_norms = cached ? row_norms + i0 : norms.data();
            if (l2 && !cached) {
#pragma omp parallel for schedule(static)
                for (int i = 0; i < nb; i++)
                    norms[i] = inner_product(block + i * dim, block + i * dim, dim);
            }
            // products[i * nc + c] = <row i0 + i, centroid c>
            int di = static_cast<int>(d);
            float one = 1.0f, zero = 0.0f;
            sgemm_("Transpose", "Not transpose", &nc, &nb, &di, &one, centroids, &di, block, &di,
                   &zero, products.data(), &nc);
#pragma omp parallel for schedule(static)
            for (int i = 0; i < nb; i++) {
                const float* p = products.data() + static_cast<std::size_t>(i) * nc;
                int best = 0;
                float best_value = 0.0f;
                for (int c = 0; c < nc; c++) {
                    // L2: squared distance (smaller is better); IP: the
                    // product itself (larger is better), as Faiss reports.
                    float v = l2 ? block_norms[i] + centroid_norms[c] - 2.0f * p[c] : p[c];
                    if (c == 0 || (l2 ? v < best_value : v > best_value)) {
                        best = c;
                        best_value = v;
                    }
                }
                distances[i0 + i] = l2 ? std::max(best_value, 0.0f) : best_value;
                labels[i0 + i] = best;
            }
            faiss::InterruptCallback::check();
        }
    }

    // The device's nearest centroid by L2. Spherical k-means compares unit
    // rows with unit centroids, where the nearest by L2 is the one with the
    // largest inner product; Faiss then wants that product, computed here
    // exactly for the chosen centroid.
    void assign_on_device(FaissLabel n, const float* x, float* distances, FaissLabel* labels,
                          bool l2) const {
        const std::size_t dim = static_cast<std::size_t>(d);
        constexpr FaissLabel kBlock = 65536;
        std::vector<std::int64_t> nearest(static_cast<std::size_t>(std::min(kBlock, n)));
        std::vector<float> squared(nearest.size());
        for (FaissLabel i0 = 0; i0 < n; i0 += kBlock) {
            FaissLabel nb = std::min(kBlock, n - i0);
            device->assign(get_xb(), ntotal, x + i0 * d, nb, d, nearest.data(), squared.data());
            for (FaissLabel i = 0; i < nb; i++) {
                std::int64_t c = nearest[static_cast<std::size_t>(i)];
                if (c < 0 || c >= ntotal) c = 0;
                labels[i0 + i] = c;
                distances[i0 + i] = l2 ? std::max(squared[static_cast<std::size_t>(i)], 0.0f)
                                       : inner_product(x + (i0 + i) * dim, get_xb() + c * dim, dim);
            }
            faiss::InterruptCallback::check();
        }
    }
};

}  // namespace

KMeans::KMeans(int dim, const KMeansOptions& options) : dim_(dim), options_(options) {
    if (dim < 1) invalid("the dimension must be positive");
    if (options.k < 1) invalid("k must be at least 1");
    if (options.iterations < 1) invalid("iterations must be at least 1");
    if (options.sample_size < 0) invalid("sample_size must not be negative");
}

KMeans::~KMeans() = default;

std::int64_t KMeans::effective_sample_size(const KMeansOptions& options, std::int64_t n) {
    std::int64_t wanted = options.sample_size > 0
                              ? options.sample_size
                              : static_cast<std::int64_t>(options.k) * kPointsPerCentroid;
    // Never fewer rows than clusters (when there are that many).
    wanted = std::max<std::int64_t>(wanted, options.k);
    return std::min(wanted, n);
}

std::vector<std::int64_t> KMeans::sample_rows(std::int64_t n, std::int64_t sample,
                                              std::int64_t seed) {
    std::vector<std::int64_t> rows;
    if (sample >= n) {
        rows.resize(static_cast<size_t>(n));
        for (std::int64_t i = 0; i < n; i++) rows[static_cast<size_t>(i)] = i;
        return rows;
    }
    // Partial Fisher-Yates over positions, with a generator whose output
    // the C++ standard fixes (std::mt19937_64), so every platform picks the
    // same rows. (The modulo bias is below 2^-40 for any realistic n.)
    std::vector<std::int64_t> perm(static_cast<size_t>(n));
    for (std::int64_t i = 0; i < n; i++) perm[static_cast<size_t>(i)] = i;
    std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
    for (std::int64_t i = 0; i < sample; i++) {
        std::uint64_t span = static_cast<std::uint64_t>(n - i);
        std::int64_t j = i + static_cast<std::int64_t>(rng() % span);
        std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
    }
    rows.assign(perm.begin(), perm.begin() + sample);
    std::sort(rows.begin(), rows.end());
    return rows;
}

std::size_t KMeans::memory_bytes(int dim, int k, std::int64_t n, std::int64_t sample) {
    std::size_t d = static_cast<std::size_t>(dim);
    std::size_t s = static_cast<std::size_t>(std::min(sample, n));
    std::size_t bytes = 0;
    bytes += s * d * sizeof(float);                                       // the sample
    bytes += s * (sizeof(float) + sizeof(std::int64_t) + sizeof(float));  // norms, assign, dis
    bytes += static_cast<std::size_t>(k) * d * sizeof(float) * 4;         // centroids and copies
    // AssignIndex's blocks (4096 rows x k products, norms).
    bytes += 4096u * (static_cast<std::size_t>(k) + 1) * sizeof(float);
    // The assignment batches of all rows.
    std::size_t batch = static_cast<std::size_t>(std::min<std::int64_t>(n, kAssignBatch));
    bytes += batch * (d * sizeof(float) + sizeof(std::int64_t) + sizeof(float));
    // Sampling positions (partial Fisher-Yates).
    if (sample < n) bytes += static_cast<std::size_t>(n) * sizeof(std::int64_t);
    return bytes;
}

void KMeans::set_data(const float* vectors, std::int64_t n) {
    if (n < options_.k)
        invalid("k (" + std::to_string(options_.k) + ") is larger than the number of rows (" +
                std::to_string(n) + ")");
    std::int64_t wanted = effective_sample_size(options_, n);
    std::vector<std::int64_t> rows = sample_rows(n, wanted, options_.seed);
    sample_count_ = static_cast<std::int64_t>(rows.size());
    std::size_t d = static_cast<std::size_t>(dim_);
    sample_.assign(static_cast<std::size_t>(sample_count_) * d, 0.0f);
    for (std::size_t i = 0; i < rows.size(); i++) {
        float* out = sample_.data() + i * d;
        std::memcpy(out, vectors + static_cast<std::size_t>(rows[i]) * d, sizeof(float) * d);
        if (options_.spherical) normalize_row(out, dim_);
    }
    sample_norms_.clear();
    centroids_.clear();
    progress_ = KMeansProgress();
}

int KMeans::run(int iterations) {
    if (sample_count_ == 0) throw Error(ErrorKind::kInternal, "k-means has no data");
    int remaining = options_.iterations - progress_.iterations;
    int steps = std::min(iterations, remaining);
    if (steps <= 0) return 0;

    faiss::ClusteringParameters cp;
    cp.niter = steps;
    cp.nredo = 1;
    cp.verbose = false;
    cp.spherical = options_.spherical;
    // The sample is already drawn: Faiss must not subsample again, nor
    // print its "please provide at least 39 points per centroid" warning
    // to the server's stderr.
    cp.max_points_per_centroid = INT_MAX / 2;
    cp.min_points_per_centroid = 1;
    // Faiss's seed is an int; fold the 64-bit seed into it.
    cp.seed = static_cast<int>(options_.seed ^ (options_.seed >> 32));

    faiss::Clustering clustering(dim_, options_.k, cp);
    // Later steps start from the centroids the previous step ended with.
    clustering.centroids = centroids_;
    if (sample_norms_.size() != static_cast<std::size_t>(sample_count_)) {
        sample_norms_.resize(static_cast<std::size_t>(sample_count_));
        std::size_t d = static_cast<std::size_t>(dim_);
        for (std::int64_t i = 0; i < sample_count_; i++)
            sample_norms_[static_cast<std::size_t>(i)] =
                inner_product(sample_.data() + i * d, sample_.data() + i * d, d);
    }
    AssignIndex index(dim_, options_.spherical);
    index.device = device_;
    index.rows = sample_.data();
    index.row_norms = sample_norms_.data();
    index.nrows = sample_count_;
    clustering.train(sample_count_, sample_.data(), index);
    centroids_ = clustering.centroids;
    if (!clustering.iteration_stats.empty()) {
        const faiss::ClusteringIterationStats& last = clustering.iteration_stats.back();
        progress_.objective = last.obj;
        progress_.imbalance = last.imbalance_factor;
        for (const faiss::ClusteringIterationStats& s : clustering.iteration_stats)
            progress_.splits += s.nsplit;
    }
    progress_.iterations += steps;
    // With as many rows as clusters Faiss copies the rows and stops: there
    // is nothing left to iterate.
    if (sample_count_ == options_.k) progress_.iterations = options_.iterations;
    return steps;
}

void KMeans::assign(const float* vectors, std::int64_t n, std::int32_t* clusters,
                    double* distances) const {
    if (centroids_.size() != static_cast<std::size_t>(options_.k) * dim_)
        throw Error(ErrorKind::kInternal, "k-means has not run");
    std::unique_ptr<AssignIndex> index(new AssignIndex(dim_, options_.spherical));
    index->device = device_;
    index->add(options_.k, centroids_.data());

    std::size_t d = static_cast<std::size_t>(dim_);
    std::int64_t batch = std::min<std::int64_t>(n, kAssignBatch);
    std::vector<float> copy(options_.spherical ? static_cast<std::size_t>(batch) * d : 0);
    std::vector<float> scores(static_cast<std::size_t>(batch));
    std::vector<faiss::Index::idx_t> labels(static_cast<std::size_t>(batch));
    for (std::int64_t start = 0; start < n; start += batch) {
        std::int64_t count = std::min(batch, n - start);
        const float* x = vectors + static_cast<std::size_t>(start) * d;
        if (options_.spherical) {
            std::memcpy(copy.data(), x, sizeof(float) * d * static_cast<std::size_t>(count));
            for (std::int64_t i = 0; i < count; i++)
                normalize_row(copy.data() + static_cast<std::size_t>(i) * d, dim_);
            x = copy.data();
        }
        index->search(count, x, 1, scores.data(), labels.data());
        for (std::int64_t i = 0; i < count; i++) {
            std::int64_t label = labels[static_cast<std::size_t>(i)];
            if (label < 0 || label >= options_.k) label = 0;  // all scores NaN: cannot happen
            const float* row = vectors + static_cast<std::size_t>(start + i) * d;
            const float* centroid = centroids_.data() + static_cast<std::size_t>(label) * d;
            clusters[start + i] = static_cast<std::int32_t>(label);
            // Exact distances with benzer's kernels, so they equal what
            // the SQL operators give for the row and the centroid.
            if (options_.spherical)
                distances[start + i] = cosine_distance(row, centroid, d);
            else
                distances[start + i] = std::sqrt(static_cast<double>(l2_squared(row, centroid, d)));
        }
        faiss::InterruptCallback::check();
    }
}

}  // namespace benzer
