// engine_batch.cpp: Engine::search_batch, many queries in one Faiss call.
//
// search() (engine.cpp) answers one query. A batch of queries given to
// Faiss at once is answered with its batched code paths: the IVF coarse
// quantizer assigns all queries with one matrix product, list scans run in
// parallel over the queries (OpenMP), and exact scans become BLAS matrix
// products (core/exact_batch.h). The semantics are search()'s, query by
// query:
//
//  - small filters on indexes that keep exact vectors, and plain Flat
//    indexes: exact distances (batched with BLAS instead of one scan per
//    query);
//  - a filter Faiss can apply (IVF-Flat/PQ/SQ, HNSW): a selector, with the
//    same nprobe / efSearch widening for selective filters as search();
//  - a filter Faiss cannot apply (FastScan): a growing k per query and
//    benzer's own filtering, each query stopping as soon as it has k rows;
//  - RFlat: k * k_factor candidates from the base, re-ranked exactly.
//
// IVF-Flat (benzer's default up to 2 million rows) gets a path of its own.
// Faiss scans each probed list once per query, reading every list from
// memory again for every query that probes it: a batch is as slow as its
// queries one by one. ivf_flat_batch() goes list by list instead: each
// probed list is read once and multiplied with all the queries that probe
// it (BLAS sgemm), and the best candidates of every query are re-scored
// with benzer's exact kernels. Same lists probed, same exact distances,
// several times faster.
//
// The small helpers below repeat engine.cpp's (they live in its anonymous
// namespace); engine.h may only grow by the one declaration of
// search_batch.
#include "engine.h"
#include "engine_internal.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include <omp.h>

#include <faiss/IVFlib.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/utils/Heap.h>

#include "blas.h"
#include "distance.h"
#include "error.h"
#include "exact_batch.h"

namespace benzer {

namespace {

using FaissLabel = faiss::Index::idx_t;

// The k best allowed labels of every query from one Faiss index (never an
// IndexRefine), in Faiss's distance space; search_base() for a batch.
// exact_rows: the exact vectors of an IndexRefine's base, or null
// (complete_search).
void base_batch(const faiss::Index* index, const float* exact_rows, const float* queries,
                std::int64_t nq, int dim, std::int64_t k, const SearchOptions& options,
                const LabelFilter* filter, float* distances, Label* labels, std::int64_t* counts,
                SearchStats* stats) {
    for (std::int64_t q = 0; q < nq; q++) counts[q] = 0;
    std::int64_t total = index->ntotal;
    if (total == 0 || k <= 0 || nq <= 0) return;
    internal::SearchSetup setup(index, k, options, filter, stats);
    if (setup.exhaustive) {
        stats->rounds++;
        for (std::int64_t q = 0; q < nq; q++) {
            stats->candidates += filter != nullptr ? filter->allowed : total;
            counts[q] = internal::complete_search(index, exact_rows, queries + q * dim, k, filter,
                                                  distances + q * k, labels + q * k, 0);
        }
        return;
    }
    bool filter_here = setup.filter_here;
    std::int64_t want = k;
    if (filter_here && filter->allowed > 0)
        want = static_cast<std::int64_t>(std::ceil(static_cast<double>(k) / setup.keep));

    // Queries still short of k rows (all of them at first).
    std::vector<std::int64_t> active(static_cast<size_t>(nq));
    for (std::int64_t q = 0; q < nq; q++) active[static_cast<size_t>(q)] = q;
    std::vector<float> batch;
    std::vector<float> d;
    std::vector<FaissLabel> l;
    size_t dsize = static_cast<size_t>(dim);
    for (;;) {
        want = std::min(want, total);
        std::int64_t na = static_cast<std::int64_t>(active.size());
        const float* x = queries;
        if (na != nq) {
            batch.resize(static_cast<size_t>(na) * dsize);
            for (std::int64_t i = 0; i < na; i++)
                std::memcpy(batch.data() + static_cast<size_t>(i) * dsize,
                            queries + active[static_cast<size_t>(i)] * dim, sizeof(float) * dsize);
            x = batch.data();
        }
        d.assign(static_cast<size_t>(na * want), 0.0f);
        l.assign(static_cast<size_t>(na * want), -1);
        setup.widen(want);
        index->search(na, x, want, d.data(), l.data(), setup.params);
        stats->rounds++;
        std::vector<std::int64_t> next;
        for (std::int64_t i = 0; i < na; i++) {
            std::int64_t q = active[static_cast<size_t>(i)];
            const float* di = d.data() + i * want;
            const FaissLabel* li = l.data() + i * want;
            std::int64_t returned = 0, found = 0;
            for (std::int64_t j = 0; j < want; j++) {
                if (li[j] < 0) break;
                returned++;
                if (filter_here && !filter->contains(li[j])) continue;
                if (found < k) {
                    distances[q * k + found] = di[j];
                    labels[q * k + found] = li[j];
                    found++;
                }
            }
            counts[q] = found;
            stats->candidates += returned;
            if (!(found >= k || returned < want || want >= total))
                next.push_back(q);
            else
                counts[q] = setup.covers_all ? internal::complete_search(
                                                   index, exact_rows, queries + q * dim, k, filter,
                                                   distances + q * k, labels + q * k, found)
                                             : found;
        }
        if (next.empty()) return;
        active.swap(next);
        want *= 2;
    }
}

using Heap = faiss::CMax<float, std::int64_t>;

// The list-major IVF-Flat batch (see the comment at the top). Queries are
// normalised already for cosine. Writes Faiss-space exact scores (squared
// L2, or negative inner product) and labels, nq * k, and counts.
void ivf_flat_batch(const faiss::IndexIVFFlat* ivf, const float* queries, std::int64_t nq, int dim,
                    std::int64_t k, const SearchOptions& options, const LabelFilter* filter,
                    bool l2, const float* (*row)(const void*, Label), const void* row_context,
                    float* scores, Label* labels, std::int64_t* counts, SearchStats* stats) {
    std::int64_t total = ivf->ntotal;
    size_t d = static_cast<size_t>(dim);
    double keep = 1.0;
    if (filter != nullptr && filter->allowed < total)
        keep = std::max(static_cast<double>(filter->allowed) / static_cast<double>(total), 1e-6);
    int nprobe = options.nprobe > 0 ? options.nprobe
                                    : static_cast<int>(internal::knob_own_value(&ivf->nprobe));
    nprobe = static_cast<int>(
        std::min<double>(std::ceil(nprobe / keep), static_cast<double>(ivf->nlist)));
    nprobe = std::max(nprobe, 1);
    stats->nprobe = std::max(stats->nprobe, nprobe);
    stats->selector_used = stats->selector_used || filter != nullptr;
    stats->rounds++;

    // 1. The lists each query probes: exact distances to the centroids, as
    // a single query's search computes them.
    std::vector<float> coarse_scores(static_cast<size_t>(nq * nprobe));
    std::vector<Label> coarse(static_cast<size_t>(nq * nprobe));
    std::vector<std::int64_t> coarse_counts(static_cast<size_t>(nq));
    const auto* flat_quantizer = dynamic_cast<const faiss::IndexFlat*>(ivf->quantizer);
    if (flat_quantizer != nullptr) {
        RowSource centroids;
        centroids.count = flat_quantizer->ntotal;
        centroids.contiguous = flat_quantizer->get_xb();
        exact_batch_search(centroids, dim,
                           l2 ? ExactScore::kL2Squared : ExactScore::kNegativeInnerProduct, queries,
                           nq, nprobe, nullptr, coarse_scores.data(), coarse.data(),
                           coarse_counts.data());
    } else {
        std::vector<FaissLabel> faiss_coarse(static_cast<size_t>(nq * nprobe));
        ivf->quantizer->search(nq, queries, nprobe, coarse_scores.data(), faiss_coarse.data());
        for (size_t i = 0; i < faiss_coarse.size(); i++) coarse[i] = faiss_coarse[i];
    }

    // 2. For every list, the queries that probe it (compressed rows).
    size_t nlist = ivf->nlist;
    std::vector<std::int64_t> start(nlist + 1, 0);
    for (std::int64_t i = 0; i < nq * nprobe; i++)
        if (coarse[static_cast<size_t>(i)] >= 0) start[static_cast<size_t>(coarse[i]) + 1]++;
    for (size_t l = 0; l < nlist; l++) start[l + 1] += start[l];
    std::vector<std::int64_t> probing(static_cast<size_t>(start[nlist]));
    {
        std::vector<std::int64_t> fill(start.begin(), start.end() - 1);
        for (std::int64_t q = 0; q < nq; q++)
            for (int j = 0; j < nprobe; j++) {
                Label l = coarse[static_cast<size_t>(q * nprobe + j)];
                if (l >= 0) probing[static_cast<size_t>(fill[static_cast<size_t>(l)]++)] = q;
            }
    }
    std::vector<float> query_norms(static_cast<size_t>(nq), 0.0f);
    if (l2)
        for (std::int64_t q = 0; q < nq; q++)
            query_norms[static_cast<size_t>(q)] =
                inner_product(queries + q * dim, queries + q * dim, d);

    // 3. List by list, in parallel: each thread keeps its own heaps for all
    // queries (merged afterwards), its own query and score buffers.
    std::int64_t kk = std::max(2 * k, k + 16);
    int threads = std::max(1, omp_get_max_threads());
    std::vector<float> heap_scores(static_cast<size_t>(threads) * nq * kk);
    std::vector<std::int64_t> heap_labels(static_cast<size_t>(threads) * nq * kk);
    for (std::int64_t h = 0; h < threads * nq; h++)
        faiss::heap_heapify<Heap>(static_cast<size_t>(kk), heap_scores.data() + h * kk,
                                  heap_labels.data() + h * kk);
    constexpr std::int64_t kRowBlock = 1024;
    std::int64_t max_probing = 0;
    for (size_t l = 0; l < nlist; l++) max_probing = std::max(max_probing, start[l + 1] - start[l]);
    std::vector<float> gathered(static_cast<size_t>(threads) * max_probing * d);
    std::vector<float> products(static_cast<size_t>(threads) * max_probing * kRowBlock);
    std::vector<float> norms(static_cast<size_t>(threads) * kRowBlock);
    std::vector<std::int64_t> scanned(static_cast<size_t>(threads), 0);
    const faiss::InvertedLists* lists = ivf->invlists;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
    for (size_t l = 0; l < nlist; l++) {
        std::int64_t nql = start[l + 1] - start[l];
        size_t size = lists->list_size(l);
        if (nql == 0 || size == 0) continue;
        int t = omp_get_thread_num();
        const float* codes = reinterpret_cast<const float*>(lists->get_codes(l));
        const FaissLabel* ids = lists->get_ids(l);
        const std::int64_t* who = probing.data() + start[l];
        float* x = gathered.data() + static_cast<size_t>(t) * max_probing * d;
        for (std::int64_t i = 0; i < nql; i++)
            std::memcpy(x + i * dim, queries + who[i] * dim, sizeof(float) * d);
        float* ip = products.data() + static_cast<size_t>(t) * max_probing * kRowBlock;
        float* yn = norms.data() + static_cast<size_t>(t) * kRowBlock;
        float* hs = heap_scores.data() + static_cast<size_t>(t) * nq * kk;
        std::int64_t* hl = heap_labels.data() + static_cast<size_t>(t) * nq * kk;
        for (size_t r0 = 0; r0 < size; r0 += kRowBlock) {
            int nb = static_cast<int>(std::min<size_t>(kRowBlock, size - r0));
            const float* y = codes + r0 * d;
            if (l2)
                for (int j = 0; j < nb; j++) yn[j] = inner_product(y + j * d, y + j * d, d);
            int m = static_cast<int>(nql), di = dim;
            float one = 1.0f, zero = 0.0f;
            // ip[i * nb + j] = <query who[i], row r0 + j>
            sgemm_("Transpose", "Not transpose", &nb, &m, &di, &one, y, &di, x, &di, &zero, ip,
                   &nb);
            for (std::int64_t i = 0; i < nql; i++) {
                float* qs = hs + who[i] * kk;
                std::int64_t* ql = hl + who[i] * kk;
                const float* row_ip = ip + i * nb;
                float qn = query_norms[static_cast<size_t>(who[i])];
                for (int j = 0; j < nb; j++) {
                    std::int64_t label = ids[r0 + j];
                    if (filter != nullptr && !filter->contains(label)) continue;
                    float score = l2 ? qn + yn[j] - 2.0f * row_ip[j] : -row_ip[j];
                    if (score < qs[0])
                        faiss::heap_replace_top<Heap>(static_cast<size_t>(kk), qs, ql, score,
                                                      label);
                }
            }
        }
        scanned[static_cast<size_t>(t)] += nql * static_cast<std::int64_t>(size);
    }
    for (std::int64_t s : scanned) stats->candidates += s;
    faiss::InterruptCallback::check();

    // 4. Per query: the candidates of every thread, exact scores, best k.
    std::vector<std::pair<float, Label>> merged(static_cast<size_t>(nq) * threads * kk);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::int64_t q = 0; q < nq; q++) {
        std::pair<float, Label>* c = merged.data() + q * threads * kk;
        std::int64_t n = 0;
        const float* query = queries + q * dim;
        for (int t = 0; t < threads; t++) {
            const std::int64_t* hl = heap_labels.data() + (static_cast<size_t>(t) * nq + q) * kk;
            for (std::int64_t i = 0; i < kk; i++) {
                if (hl[i] < 0) continue;
                const float* v = row(row_context, hl[i]);
                float score = l2 ? l2_squared(query, v, d) : -inner_product(query, v, d);
                c[n++] = {score, hl[i]};
            }
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

}  // namespace

std::int64_t Engine::search_batch(std::int64_t nq, const float* queries_in, std::int64_t k,
                                  const SearchOptions& options, const LabelFilter* filter,
                                  float* distances, Label* labels, std::int64_t* counts,
                                  SearchStats* stats) const {
    SearchStats local;
    if (stats == nullptr) stats = &local;
    for (std::int64_t i = 0; i < nq * std::max<std::int64_t>(k, 0); i++) {
        distances[i] = std::numeric_limits<float>::infinity();
        labels[i] = -1;
    }
    for (std::int64_t q = 0; q < nq; q++) counts[q] = 0;
    if (nq <= 0 || k <= 0 || index_->ntotal == 0) return 0;
    if (filter != nullptr && filter->allowed == 0) return 0;

    size_t dsize = static_cast<size_t>(dim_);
    if (metric_ == Metric::kCosine) {
        // Zero queries have no direction (search() says why): answered
        // apart, and the others searched as a batch of their own.
        std::vector<std::int64_t> directed;
        for (std::int64_t q = 0; q < nq; q++)
            if (!internal::is_zero(queries_in + q * dim_, dim_)) directed.push_back(q);
        if (static_cast<std::int64_t>(directed.size()) < nq) {
            std::int64_t nd = static_cast<std::int64_t>(directed.size());
            std::vector<float> x(static_cast<size_t>(nd) * dsize);
            for (std::int64_t i = 0; i < nd; i++)
                std::memcpy(x.data() + i * dim_, queries_in + directed[i] * dim_,
                            sizeof(float) * dsize);
            std::vector<float> d(static_cast<size_t>(nd * k));
            std::vector<Label> l(static_cast<size_t>(nd * k));
            std::vector<std::int64_t> c(static_cast<size_t>(nd));
            if (nd > 0)
                search_batch(nd, x.data(), k, options, filter, d.data(), l.data(), c.data(), stats);
            std::int64_t sum = 0;
            for (std::int64_t i = 0, next = 0; i < nq; i++) {
                if (next < nd && directed[static_cast<size_t>(next)] == i) {
                    std::copy(d.begin() + next * k, d.begin() + (next + 1) * k, distances + i * k);
                    std::copy(l.begin() + next * k, l.begin() + (next + 1) * k, labels + i * k);
                    counts[i] = c[static_cast<size_t>(next++)];
                } else {
                    counts[i] = internal::first_allowed(index_->ntotal, filter, k,
                                                        distances + i * k, labels + i * k);
                }
                sum += counts[i];
            }
            return sum;
        }
    }
    std::vector<float> queries(queries_in, queries_in + static_cast<size_t>(nq) * dsize);
    if (metric_ == Metric::kCosine) normalize_vectors(queries.data(), nq, dim_);

    auto total_found = [&]() {
        std::int64_t sum = 0;
        for (std::int64_t q = 0; q < nq; q++) sum += counts[q];
        return sum;
    };
    ExactScore score =
        metric_ == Metric::kL2 ? ExactScore::kL2Squared : ExactScore::kNegativeInnerProduct;
    // Faiss-space value of an exact score.
    auto faiss_space = [&](float s) { return metric_ == Metric::kL2 ? s : -s; };

    // Small filters (the same rule as search()) and plain Flat indexes:
    // exact distances, batched with BLAS.
    bool small_filter =
        filter != nullptr && has_exact_vectors() && options.exact_filter_limit > 0 &&
        filter->allowed <= options.exact_filter_limit &&
        static_cast<double>(filter->allowed) < 0.6 * static_cast<double>(index_->ntotal);
    bool plain_flat = !refine_ && flat_ == index_;
    if (small_filter || plain_flat) {
        RowSource rows;
        rows.count = index_->ntotal;
        if (plain_flat) {
            rows.contiguous = flat_->get_xb();
        } else {
            rows.row = [](const void* context, Label label) {
                return static_cast<const Engine*>(context)->vector_of(label);
            };
            rows.context = this;
        }
        stats->exact_scan = true;
        stats->rounds++;
        stats->candidates += (filter != nullptr ? filter->allowed : index_->ntotal) * nq;
        exact_batch_search(rows, dim_, score, queries.data(), nq, k, filter, distances, labels,
                           counts);
        for (std::int64_t i = 0; i < nq * k; i++)
            if (labels[i] >= 0) distances[i] = to_operator_distance(faiss_space(distances[i]));
        return total_found();
    }

    // IVF-Flat with a direct map (every IVF-Flat benzer builds): list by
    // list. A handful of queries gain nothing from it.
    if (!refine_ && ivf_flat_ == index_ && nq >= 8 &&
        dynamic_cast<const faiss::ArrayInvertedLists*>(ivf_flat_->invlists) != nullptr) {
        auto row = [](const void* context, Label label) {
            return static_cast<const Engine*>(context)->vector_of(label);
        };
        ivf_flat_batch(ivf_flat_, queries.data(), nq, dim_, k, options, filter,
                       metric_ == Metric::kL2, row, this, distances, labels, counts, stats);
        for (std::int64_t i = 0; i < nq * k; i++)
            if (labels[i] >= 0) distances[i] = to_operator_distance(faiss_space(distances[i]));
        return total_found();
    }

    if (!refine_) {
        base_batch(index_, nullptr, queries.data(), nq, dim_, k, options, filter, distances, labels,
                   counts, stats);
        for (std::int64_t q = 0; q < nq; q++)
            for (std::int64_t i = 0; i < counts[q]; i++)
                distances[q * k + i] = to_operator_distance(distances[q * k + i]);
        return total_found();
    }

    // Exact re-ranking: k * k_factor candidates per query from the base,
    // exact distances from the stored vectors, best k.
    float factor = options.k_factor > 0.0f ? options.k_factor : default_k_factor_;
    factor = std::max(factor, 1.0f);
    std::int64_t kb = static_cast<std::int64_t>(std::ceil(static_cast<double>(k) * factor));
    kb = std::min<std::int64_t>(kb, index_->ntotal);
    std::vector<float> cd(static_cast<size_t>(nq * kb));
    std::vector<Label> cl(static_cast<size_t>(nq * kb), -1);
    std::vector<std::int64_t> cc(static_cast<size_t>(nq));
    base_batch(base_, flat_->get_xb(), queries.data(), nq, dim_, kb, options, filter, cd.data(),
               cl.data(), cc.data(), stats);
    const float* xb = flat_->get_xb();
    std::vector<std::pair<float, Label>> exact(static_cast<size_t>(nq * kb));
#pragma omp parallel for schedule(static)
    for (std::int64_t q = 0; q < nq; q++) {
        std::pair<float, Label>* e = exact.data() + q * kb;
        const float* query = queries.data() + q * dim_;
        std::int64_t n = cc[static_cast<size_t>(q)];
        for (std::int64_t i = 0; i < n; i++) {
            Label label = cl[static_cast<size_t>(q * kb + i)];
            const float* v = xb + label * dim_;
            float badness = metric_ == Metric::kL2 ? l2_squared(query, v, dsize)
                                                   : -inner_product(query, v, dsize);
            e[i] = {badness, label};
        }
        std::int64_t found = std::min(k, n);
        std::partial_sort(e, e + found, e + n);
        for (std::int64_t i = 0; i < found; i++) {
            labels[q * k + i] = e[i].second;
            distances[q * k + i] = to_operator_distance(faiss_space(e[i].first));
        }
        counts[q] = found;
    }
    return total_found();
}

namespace {

// One request of search_each: its answer, or why it failed (nothing may
// escape an OpenMP loop).
void answer_request(const Engine& engine, SearchRequest& r, const SearchOptions& options) {
    try {
        r.found = engine.search(r.query, r.k, options, r.filter, r.distances, r.labels, &r.stats);
    } catch (const std::exception& e) {
        r.failed = true;
        std::snprintf(r.error, sizeof(r.error), "%s", e.what());
    } catch (...) {
        r.failed = true;
        std::snprintf(r.error, sizeof(r.error), "unknown error");
    }
}

}  // namespace

void Engine::search_each(SearchRequest* requests, std::int64_t n, const SearchOptions& options,
                         int threads) const {
    if (n <= 0) return;
    int team = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, n)));
#pragma omp parallel for schedule(dynamic) num_threads(team)
    for (std::int64_t i = 0; i < n; i++) answer_request(*this, requests[i], options);
}

void Engine::search_each_on_lanes(const Engine* const* lanes, int nlanes, SearchRequest* requests,
                                  std::int64_t n, const SearchOptions& options) {
    if (n <= 0 || nlanes <= 0) return;
    int team = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(nlanes, n)));
#pragma omp parallel num_threads(team)
    {
        const Engine& lane = *lanes[omp_get_thread_num() % nlanes];
#pragma omp for schedule(dynamic)
        for (std::int64_t i = 0; i < n; i++) answer_request(lane, requests[i], options);
    }
}

Engine* Engine::search_lane() const {
    // Only a graph straight over its rows: transforms and re-ranking wrap
    // it in objects of their own.
    auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index_);
    if (hnsw == nullptr || hnsw->reconstruct_from_neighbors != nullptr) return nullptr;
    std::unique_ptr<faiss::IndexHNSW> shell(new faiss::IndexHNSW(*hnsw));
    shell->own_fields = false;  // the storage stays this engine's
    // The stored efSearch is the structure's own, not one a search holds.
    shell->hnsw.efSearch = internal::knob_own_value(&hnsw->hnsw.efSearch);
    Engine* lane = new Engine(shell.get(), dim_, metric_);
    shell.release();
    return lane;
}

std::size_t Engine::lane_bytes() const {
    auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index_);
    if (hnsw == nullptr) return 0;
    const faiss::HNSW& g = hnsw->hnsw;
    return g.neighbors.size() * sizeof(g.neighbors[0]) + g.offsets.size() * sizeof(g.offsets[0]) +
           g.levels.size() * sizeof(g.levels[0]) + sizeof(faiss::IndexHNSW);
}

}  // namespace benzer
