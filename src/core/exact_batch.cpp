// exact_batch.cpp: batched exact search with BLAS (see exact_batch.h).
#include "exact_batch.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/utils/Heap.h>

#include "blas.h"
#include "distance.h"

namespace benzer {

namespace {

// Block sizes: a 1024 x 1024 block of scores is 4 MB, and a block of 1024
// rows of 784 floats (3 MB) stays in the cache while every query block
// passes over it.
constexpr std::int64_t kQueryBlock = 1024;
constexpr std::int64_t kRowBlock = 1024;

using Heap = faiss::CMax<float, std::int64_t>;

}  // namespace

float exact_score(ExactScore score, const float* a, const float* b, int dim) noexcept {
    return score == ExactScore::kL2Squared ? l2_squared(a, b, static_cast<std::size_t>(dim))
                                           : -inner_product(a, b, static_cast<std::size_t>(dim));
}

void exact_batch_search(const RowSource& rows, int dim, ExactScore score, const float* queries,
                        std::int64_t nq, std::int64_t k, const LabelFilter* filter, float* scores,
                        Label* labels, std::int64_t* counts) {
    for (std::int64_t i = 0; i < nq * k; i++) {
        scores[i] = std::numeric_limits<float>::infinity();
        labels[i] = -1;
    }
    for (std::int64_t q = 0; q < nq; q++) counts[q] = 0;
    std::int64_t allowed = filter != nullptr ? std::min(filter->allowed, rows.count) : rows.count;
    if (nq <= 0 || k <= 0 || allowed <= 0) return;

    // Candidates per query, re-scored exactly at the end.
    std::int64_t kk = std::min(std::max(2 * k, k + 16), allowed);
    std::size_t d = static_cast<std::size_t>(dim);
    std::vector<float> heap_scores(static_cast<std::size_t>(nq * kk));
    std::vector<std::int64_t> heap_labels(static_cast<std::size_t>(nq * kk));
    for (std::int64_t q = 0; q < nq; q++)
        faiss::heap_heapify<Heap>(static_cast<std::size_t>(kk), heap_scores.data() + q * kk,
                                  heap_labels.data() + q * kk);

    std::vector<float> query_norms(static_cast<std::size_t>(nq), 0.0f);
    if (score == ExactScore::kL2Squared)
        for (std::int64_t q = 0; q < nq; q++)
            query_norms[static_cast<std::size_t>(q)] =
                inner_product(queries + q * dim, queries + q * dim, d);

    std::vector<float> block(static_cast<std::size_t>(kRowBlock) * d);
    std::vector<std::int64_t> block_labels(static_cast<std::size_t>(kRowBlock));
    std::vector<float> block_norms(static_cast<std::size_t>(kRowBlock));
    std::vector<float> products(static_cast<std::size_t>(kQueryBlock * kRowBlock));

    Label cursor = 0;
    while (cursor < rows.count) {
        // Gather the next block of allowed rows (or point into contiguous
        // rows when every row is allowed).
        int nb = 0;
        const float* y = block.data();
        if (filter == nullptr && rows.contiguous != nullptr) {
            nb = static_cast<int>(std::min<std::int64_t>(kRowBlock, rows.count - cursor));
            y = rows.contiguous + cursor * static_cast<std::int64_t>(dim);
            for (int j = 0; j < nb; j++) block_labels[static_cast<std::size_t>(j)] = cursor + j;
            cursor += nb;
        } else {
            while (cursor < rows.count && nb < kRowBlock) {
                if (filter != nullptr) {
                    if ((cursor & 7) == 0 && cursor + 8 <= filter->count &&
                        filter->bits[cursor >> 3] == 0) {
                        cursor += 8;  // a byte of excluded rows
                        continue;
                    }
                    if (!filter->contains(cursor)) {
                        cursor++;
                        continue;
                    }
                }
                std::memcpy(block.data() + static_cast<std::size_t>(nb) * d, rows.get(cursor, dim),
                            sizeof(float) * d);
                block_labels[static_cast<std::size_t>(nb)] = cursor;
                nb++;
                cursor++;
            }
        }
        if (nb == 0) continue;
        if (score == ExactScore::kL2Squared)
            for (int j = 0; j < nb; j++)
                block_norms[static_cast<std::size_t>(j)] = inner_product(
                    y + static_cast<std::size_t>(j) * d, y + static_cast<std::size_t>(j) * d, d);

        for (std::int64_t q0 = 0; q0 < nq; q0 += kQueryBlock) {
            int nqb = static_cast<int>(std::min(kQueryBlock, nq - q0));
            // products[i * nb + j] = <query q0 + i, row j>
            float one = 1.0f, zero = 0.0f;
            int di = dim;
            sgemm_("Transpose", "Not transpose", &nb, &nqb, &di, &one, y, &di,
                   queries + q0 * static_cast<std::int64_t>(dim), &di, &zero, products.data(), &nb);
            const float* qn = query_norms.data() + q0;
#pragma omp parallel for schedule(static)
            for (int i = 0; i < nqb; i++) {
                float* hs = heap_scores.data() + (q0 + i) * kk;
                std::int64_t* hl = heap_labels.data() + (q0 + i) * kk;
                const float* ip = products.data() + static_cast<std::size_t>(i) * nb;
                for (int j = 0; j < nb; j++) {
                    float s = score == ExactScore::kL2Squared
                                  ? qn[i] + block_norms[static_cast<std::size_t>(j)] - 2.0f * ip[j]
                                  : -ip[j];
                    if (s < hs[0])
                        faiss::heap_replace_top<Heap>(static_cast<std::size_t>(kk), hs, hl, s,
                                                      block_labels[static_cast<std::size_t>(j)]);
                }
            }
        }
        faiss::InterruptCallback::check();
    }

    // Exact scores for the candidates, best k.
    std::vector<std::pair<float, std::int64_t>> scratch(static_cast<std::size_t>(nq * kk));
#pragma omp parallel for schedule(static)
    for (std::int64_t q = 0; q < nq; q++) {
        std::pair<float, std::int64_t>* c = scratch.data() + q * kk;
        const std::int64_t* hl = heap_labels.data() + q * kk;
        const float* query = queries + q * dim;
        std::int64_t n = 0;
        for (std::int64_t i = 0; i < kk; i++) {
            if (hl[i] < 0) continue;
            c[n++] = {exact_score(score, query, rows.get(hl[i], dim), dim), hl[i]};
        }
        std::int64_t found = std::min(k, n);
        std::partial_sort(c, c + found, c + n);
        for (std::int64_t i = 0; i < found; i++) {
            scores[q * k + i] = c[i].first;
            labels[q * k + i] = c[i].second;
        }
        counts[q] = found;
    }
}

}  // namespace benzer
