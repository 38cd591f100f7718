// device.cpp: the CPU device and the exact re-scoring every device shares
// (see device.h).
#include "device.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/utils/Heap.h>

#include "blas.h"
#include "distance.h"
#include "error.h"

namespace benzer {

namespace {

using Heap = faiss::CMax<float, std::int64_t>;

// A 1024-row block of 784 floats (3 MB) stays in the cache while every
// query of the batch is scored against it.
constexpr std::int64_t kRowBlock = 1024;

bool allows(const std::uint8_t* bits, std::int64_t label) {
    return bits == nullptr || ((bits[label >> 3] >> (label & 7)) & 1) != 0;
}

// Rows the CPU searches in place, with their squared norms.
class CpuRows final : public DeviceRows {
  public:
    CpuRows(const float* rows, std::int64_t n, int dim) : rows_(rows), n_(n), dim_(dim) {
        norms_.resize(static_cast<std::size_t>(n));
        std::size_t d = static_cast<std::size_t>(dim);
        for (std::int64_t i = 0; i < n; i++)
            norms_[static_cast<std::size_t>(i)] = inner_product(rows + i * dim, rows + i * dim, d);
    }
    std::int64_t count() const override { return n_; }
    int dim() const override { return dim_; }
    std::size_t bytes() const override { return norms_.size() * sizeof(float); }
    const float* row(std::int64_t label) const { return rows_ + label * dim_; }
    const float* rows() const { return rows_; }
    const float* norms() const { return norms_.data(); }

  private:
    const float* rows_;
    std::int64_t n_;
    int dim_;
    std::vector<float> norms_;
};

class CpuDevice final : public Device {
  public:
    std::string name() const override { return "cpu"; }
    bool is_gpu() const override { return false; }

    std::unique_ptr<DeviceRows> upload(const float* rows, std::int64_t n, int dim) override {
        if (n < 0 || dim < 1) throw Error(ErrorKind::kInvalidParameter, "bad row shape");
        return std::make_unique<CpuRows>(rows, n, dim);
    }

    void candidates(const DeviceRows& device_rows, ExactScore score, const DeviceQuery* queries,
                    std::int64_t nq, std::int64_t kk, Label* labels) override {
        const auto& rows = dynamic_cast<const CpuRows&>(device_rows);
        std::int64_t n = rows.count();
        int dim = rows.dim();
        std::vector<float> heap_scores(static_cast<std::size_t>(nq * kk));
        for (std::int64_t q = 0; q < nq; q++)
            faiss::heap_heapify<Heap>(static_cast<std::size_t>(kk), heap_scores.data() + q * kk,
                                      labels + q * kk);
        // Queries whose bitmaps allow many rows share one pass of matrix
        // products over all rows; the others visit just their allowed rows.
        // "Many" is an eighth of the rows, or a thirty-second in a batch of
        // 32 or more, where the pass is shared widely (measured with
        // bench/device_bench.cpp: at a tenth of the rows, 8 queries ran
        // faster one by one, 64 twice as fast in the shared pass).
        std::int64_t share = nq >= 32 ? 32 : 8;
        std::vector<std::int64_t> dense, sparse;
        for (std::int64_t q = 0; q < nq; q++)
            (queries[q].allowed == nullptr || queries[q].allowed_count * share >= n ? dense
                                                                                    : sparse)
                .push_back(q);
        if (!dense.empty()) scan_dense(rows, score, queries, dense, kk, heap_scores.data(), labels);
#pragma omp parallel for schedule(dynamic)
        for (std::size_t i = 0; i < sparse.size(); i++) {
            std::int64_t q = sparse[i];
            float* hs = heap_scores.data() + q * kk;
            Label* hl = labels + q * kk;
            const std::uint8_t* bits = queries[q].allowed;
            for (std::int64_t byte = 0; byte * 8 < n; byte++) {
                unsigned b = bits[byte];
                while (b != 0) {
                    std::int64_t label = byte * 8 + __builtin_ctz(b);
                    b &= b - 1;
                    if (label >= n) break;
                    float s = exact_score(score, queries[q].vector, rows.row(label), dim);
                    if (s < hs[0])
                        faiss::heap_replace_top<Heap>(static_cast<std::size_t>(kk), hs, hl, s,
                                                      label);
                }
            }
        }
    }

    void assign(const float* centroids, std::int64_t nc, const float* rows, std::int64_t n, int dim,
                std::int64_t* nearest, float* distances) override {
        if (nc < 1 || dim < 1) throw Error(ErrorKind::kInvalidParameter, "bad centroid shape");
        std::size_t d = static_cast<std::size_t>(dim);
        std::vector<float> centroid_norms(static_cast<std::size_t>(nc));
        for (std::int64_t c = 0; c < nc; c++)
            centroid_norms[static_cast<std::size_t>(c)] =
                inner_product(centroids + c * dim, centroids + c * dim, d);
        std::vector<float> products(static_cast<std::size_t>(kRowBlock * nc));
        for (std::int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
            int nr = static_cast<int>(std::min(kRowBlock, n - r0));
            int ncs = static_cast<int>(nc), di = dim;
            float one = 1.0f, zero = 0.0f;
            // products[i * nc + c] = <row r0 + i, centroid c>
            sgemm_("Transpose", "Not transpose", &ncs, &nr, &di, &one, centroids, &di,
                   rows + r0 * dim, &di, &zero, products.data(), &ncs);
#pragma omp parallel for schedule(static)
            for (int i = 0; i < nr; i++) {
                const float* row = rows + (r0 + i) * dim;
                float row_norm = inner_product(row, row, d);
                const float* ip = products.data() + static_cast<std::size_t>(i) * nc;
                float best = std::numeric_limits<float>::infinity();
                std::int64_t best_c = 0;
                for (std::int64_t c = 0; c < nc; c++) {
                    float s = row_norm + centroid_norms[static_cast<std::size_t>(c)] - 2.0f * ip[c];
                    if (s < best) {
                        best = s;
                        best_c = c;
                    }
                }
                nearest[r0 + i] = best_c;
                distances[r0 + i] = std::max(best, 0.0f);
            }
            faiss::InterruptCallback::check();
        }
    }

  private:
    // One pass over every row, a block at a time, for the dense queries.
    static void scan_dense(const CpuRows& rows, ExactScore score, const DeviceQuery* queries,
                           const std::vector<std::int64_t>& dense, std::int64_t kk,
                           float* heap_scores, Label* labels) {
        std::int64_t n = rows.count();
        int dim = rows.dim();
        int nd = static_cast<int>(dense.size());
        std::vector<float> vectors(static_cast<std::size_t>(nd) * static_cast<std::size_t>(dim));
        for (int i = 0; i < nd; i++)
            std::memcpy(vectors.data() + static_cast<std::size_t>(i) * dim,
                        queries[dense[i]].vector, sizeof(float) * static_cast<std::size_t>(dim));
        std::vector<float> products(static_cast<std::size_t>(nd * kRowBlock));
        for (std::int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
            int nb = static_cast<int>(std::min(kRowBlock, n - r0));
            int di = dim;
            float one = 1.0f, zero = 0.0f;
            // products[i * nb + j] = <query dense[i], row r0 + j>
            sgemm_("Transpose", "Not transpose", &nb, &nd, &di, &one, rows.row(r0), &di,
                   vectors.data(), &di, &zero, products.data(), &nb);
            const float* norms = rows.norms() + r0;
#pragma omp parallel for schedule(static)
            for (int i = 0; i < nd; i++) {
                std::int64_t q = dense[static_cast<std::size_t>(i)];
                const std::uint8_t* bits = queries[q].allowed;
                float* hs = heap_scores + q * kk;
                Label* hl = labels + q * kk;
                const float* ip = products.data() + static_cast<std::size_t>(i) * nb;
                for (int j = 0; j < nb; j++) {
                    if (!allows(bits, r0 + j)) continue;
                    // |q|^2 is the same for every row of a query: left out.
                    float s = score == ExactScore::kL2Squared ? norms[j] - 2.0f * ip[j] : -ip[j];
                    if (s < hs[0])
                        faiss::heap_replace_top<Heap>(static_cast<std::size_t>(kk), hs, hl, s,
                                                      r0 + j);
                }
            }
            faiss::InterruptCallback::check();
        }
    }
};

}  // namespace

std::unique_ptr<Device> make_cpu_device() { return std::make_unique<CpuDevice>(); }

std::int64_t device_candidates_per_query(std::int64_t kmax, std::int64_t rows) {
    return std::max<std::int64_t>(std::min(std::max(2 * kmax, kmax + 16), rows), 1);
}

void device_search(Device& device, const DeviceRows& rows, const float* host_rows, ExactScore score,
                   const DeviceQuery* queries, std::int64_t nq, std::int64_t kmax, float* scores,
                   Label* labels, std::int64_t* counts) {
    for (std::int64_t i = 0; i < nq * kmax; i++) {
        scores[i] = std::numeric_limits<float>::infinity();
        labels[i] = -1;
    }
    for (std::int64_t q = 0; q < nq; q++) {
        counts[q] = 0;
        if (queries[q].k > kmax || queries[q].k < 0)
            throw Error(ErrorKind::kInvalidParameter, "a query asks for more rows than kmax");
    }
    std::int64_t n = rows.count();
    if (nq <= 0 || kmax <= 0 || n <= 0) return;
    int dim = rows.dim();
    std::int64_t kk = device_candidates_per_query(kmax, n);
    std::vector<Label> candidates(static_cast<std::size_t>(nq * kk));
    device.candidates(rows, score, queries, nq, kk, candidates.data());
    std::vector<std::pair<float, Label>> scratch(static_cast<std::size_t>(nq * kk));
#pragma omp parallel for schedule(static)
    for (std::int64_t q = 0; q < nq; q++) {
        std::pair<float, Label>* c = scratch.data() + q * kk;
        const Label* cl = candidates.data() + q * kk;
        std::int64_t found = 0;
        for (std::int64_t i = 0; i < kk; i++) {
            Label label = cl[i];
            // A device's answer is checked, not trusted: in range, allowed.
            if (label < 0 || label >= n || !allows(queries[q].allowed, label)) continue;
            c[found++] = {exact_score(score, queries[q].vector, host_rows + label * dim, dim),
                          label};
        }
        std::sort(c, c + found);
        found = std::unique(c, c + found) - c;
        std::int64_t keep = std::min(queries[q].k, found);
        for (std::int64_t i = 0; i < keep; i++) {
            scores[q * kmax + i] = c[i].first;
            labels[q * kmax + i] = c[i].second;
        }
        counts[q] = keep;
    }
}

}  // namespace benzer
