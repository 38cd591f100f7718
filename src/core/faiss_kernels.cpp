// faiss_kernels.cpp: Faiss subclasses that call benzer's distance kernels.
//
// FastFlat replaces IndexFlat (HNSW storage, IVF coarse quantizers): its
// distance computer and its single-query search use benzer::l2_squared and
// benzer::inner_product. FastIVFFlat replaces IndexIVFFlat: its inverted
// list scanner does the same over each list's contiguous raw vectors.
// FastIVFSQ8 replaces an 8-bit IndexIVFScalarQuantizer: its scanner decodes
// and compares in one pass (benzer::sq8_l2_squared, sq8_dot).
// Results are identical to Faiss's up to float rounding order.
#include "faiss_kernels.h"

#include <atomic>
#include <cstring>
#include <utility>
#include <vector>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/invlists/DirectMap.h>
#include <faiss/utils/Heap.h>

#include "distance.h"

namespace benzer {

namespace {

using FaissLabel = faiss::Index::idx_t;

std::atomic<bool> g_enabled{true};

// Distance from query to one stored vector in Faiss's convention: squared
// L2 (smaller is better) or inner product (larger is better).
inline float faiss_distance(bool inner_product_metric, const float* q, const float* v, size_t d) {
    return inner_product_metric ? benzer::inner_product(q, v, d) : benzer::l2_squared(q, v, d);
}

// Distance computer over a flat array of float vectors (HNSW's storage).
struct FastFlatDistanceComputer : faiss::FlatCodesDistanceComputer {
    size_t d;
    bool ip;
    const float* q = nullptr;
    const float* xb;

    FastFlatDistanceComputer(const float* xb_, size_t d_, bool ip_)
        : faiss::FlatCodesDistanceComputer(reinterpret_cast<const uint8_t*>(xb_),
                                           d_ * sizeof(float)),
          d(d_),
          ip(ip_),
          xb(xb_) {}

    void set_query(const float* x) override { q = x; }

    float distance_to_code(const uint8_t* code) override {
        return faiss_distance(ip, q, reinterpret_cast<const float*>(code), d);
    }

    float symmetric_dis(idx_t i, idx_t j) override {
        return faiss_distance(ip, xb + i * d, xb + j * d, d);
    }
};

// IndexFlat with benzer's kernels. Serialises as IndexFlat.
struct FastFlat : faiss::IndexFlat {
    FastFlat(faiss::Index::idx_t d, faiss::MetricType metric) : faiss::IndexFlat(d, metric) {}

    faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer() const override {
        if (metric_type != faiss::METRIC_L2 && metric_type != faiss::METRIC_INNER_PRODUCT)
            return faiss::IndexFlat::get_FlatCodesDistanceComputer();
        return new FastFlatDistanceComputer(get_xb(), static_cast<size_t>(d),
                                            metric_type == faiss::METRIC_INNER_PRODUCT);
    }

    // Few queries (the coarse quantizer of an IVF index, one query per
    // scan): a heap over benzer's kernels. Many queries: Faiss's BLAS path.
    void search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
                const faiss::SearchParameters* params) const override {
        bool supported =
            metric_type == faiss::METRIC_L2 || metric_type == faiss::METRIC_INNER_PRODUCT;
        if (n > 8 || !supported) {
            faiss::IndexFlat::search(n, x, k, distances, labels, params);
            return;
        }
        const faiss::IDSelector* sel = params ? params->sel : nullptr;
        bool ip = metric_type == faiss::METRIC_INNER_PRODUCT;
        const float* xb = get_xb();
        size_t dim = static_cast<size_t>(d);
        for (idx_t q = 0; q < n; q++) {
            float* dis = distances + q * k;
            idx_t* lab = labels + q * k;
            const float* query = x + q * d;
            if (ip)
                faiss::minheap_heapify(k, dis, lab);
            else
                faiss::maxheap_heapify(k, dis, lab);
            for (idx_t i = 0; i < ntotal; i++) {
                if (sel && !sel->is_member(i)) continue;
                float v = faiss_distance(ip, query, xb + i * dim, dim);
                if (ip) {
                    if (v > dis[0]) faiss::minheap_replace_top(k, dis, lab, v, i);
                } else {
                    if (v < dis[0]) faiss::maxheap_replace_top(k, dis, lab, v, i);
                }
            }
            if (ip)
                faiss::minheap_reorder(k, dis, lab);
            else
                faiss::maxheap_reorder(k, dis, lab);
        }
    }
};

// The list scan both scanners below share: the distance of each entry
// (distance(code)), kept in the caller's heap of k (a min-heap for inner
// products, a max-heap otherwise). Under a filter the allowed rows are
// scattered through the list, which defeats the hardware prefetcher: they
// are found first, then each one's code is fetched while the previous
// distance is computed.
template <typename Distance>
size_t scan_list_codes(const faiss::InvertedListScanner& scanner, bool ip, size_t code_size,
                       std::vector<std::uint32_t>& allowed, size_t n, const uint8_t* codes,
                       const FaissLabel* ids, float* distances, FaissLabel* labels, size_t k,
                       Distance distance) {
    const faiss::IDSelector* sel = scanner.sel;
    size_t updates = 0;
    if (sel != nullptr) {
        allowed.clear();
        for (size_t j = 0; j < n; j++)
            if (sel->is_member(ids[j])) allowed.push_back(static_cast<std::uint32_t>(j));
    }
    size_t count = sel != nullptr ? allowed.size() : n;
    for (size_t i = 0; i < count; i++) {
        size_t j = sel != nullptr ? allowed[i] : i;
        if (sel != nullptr && i + 1 < count) {
            const uint8_t* next = codes + allowed[i + 1] * code_size;
            for (size_t b = 0; b < code_size; b += 64) __builtin_prefetch(next + b);
        }
        float v = distance(codes + j * code_size);
        FaissLabel id = scanner.store_pairs
                            ? static_cast<FaissLabel>(faiss::lo_build(scanner.list_no, j))
                            : ids[j];
        if (ip) {
            if (v > distances[0]) {
                faiss::minheap_replace_top(k, distances, labels, v, id);
                updates++;
            }
        } else if (v < distances[0]) {
            faiss::maxheap_replace_top(k, distances, labels, v, id);
            updates++;
        }
    }
    return updates;
}

// Inverted-list scanner for IVF-Flat: codes are raw float vectors.
struct FastIVFFlatScanner : faiss::InvertedListScanner {
    size_t d;
    bool ip;
    const float* q = nullptr;
    mutable std::vector<std::uint32_t> allowed_positions_;  // scan_codes' scratch

    FastIVFFlatScanner(size_t d_, bool ip_, bool store_pairs, const faiss::IDSelector* sel)
        : faiss::InvertedListScanner(store_pairs, sel), d(d_), ip(ip_) {
        keep_max = ip_;
        code_size = d_ * sizeof(float);
    }

    void set_query(const float* query) override { q = query; }

    void set_list(idx_t list, float) override { list_no = list; }

    float distance_to_code(const uint8_t* code) const override {
        return faiss_distance(ip, q, reinterpret_cast<const float*>(code), d);
    }

    size_t scan_codes(size_t n, const uint8_t* codes, const idx_t* ids, float* distances,
                      idx_t* labels, size_t k) const override {
        return scan_list_codes(*this, ip, code_size, allowed_positions_, n, codes, ids, distances,
                               labels, k, [this](const uint8_t* code) {
                                   return faiss_distance(ip, q,
                                                         reinterpret_cast<const float*>(code), d);
                               });
    }
};

// Inverted-list scanner for IVF-SQ8 (Faiss's QT_8bit: element i of a code
// decodes to vmin_i + (code_i + 0.5) / 255 * vdiff_i = offset_i + code_i *
// scale_i). L2 compares the query's residual to the list's centroid with
// the decoded residuals; inner products add the query's product with the
// centroid (coarse_dis, as Faiss's own scanner does) to its product with
// the decoded residual.
struct FastIVFSQ8Scanner : faiss::InvertedListScanner {
    const faiss::IndexIVFScalarQuantizer* ivf;
    size_t d;
    bool ip;
    const float* offset;  // per element, the index's
    const float* scale;
    const float* q = nullptr;
    std::vector<float> work;  // L2: residual - offset; IP: query * scale
    float constant = 0.0f;    // IP: coarse_dis + query . offset
    float query_offset = 0.0f;
    mutable std::vector<std::uint32_t> allowed_positions_;

    FastIVFSQ8Scanner(const faiss::IndexIVFScalarQuantizer* ivf_, const float* offset_,
                      const float* scale_, bool store_pairs, const faiss::IDSelector* sel)
        : faiss::InvertedListScanner(store_pairs, sel),
          ivf(ivf_),
          d(static_cast<size_t>(ivf_->d)),
          ip(ivf_->metric_type == faiss::METRIC_INNER_PRODUCT),
          offset(offset_),
          scale(scale_),
          work(d) {
        keep_max = ip;
        code_size = ivf_->code_size;
    }

    void set_query(const float* query) override {
        q = query;
        if (ip) {
            query_offset = benzer::inner_product(q, offset, d);
            for (size_t i = 0; i < d; i++) work[i] = q[i] * scale[i];
        }
    }

    void set_list(idx_t list, float coarse_dis) override {
        list_no = list;
        if (ip) {
            constant = (ivf->by_residual ? coarse_dis : 0.0f) + query_offset;
            return;
        }
        if (ivf->by_residual)
            ivf->quantizer->compute_residual(q, work.data(), list);
        else
            std::memcpy(work.data(), q, sizeof(float) * d);
        for (size_t i = 0; i < d; i++) work[i] -= offset[i];
    }

    float distance(const uint8_t* code) const {
        return ip ? constant + benzer::sq8_dot(work.data(), code, d)
                  : benzer::sq8_l2_squared(work.data(), scale, code, d);
    }

    float distance_to_code(const uint8_t* code) const override { return distance(code); }

    size_t scan_codes(size_t n, const uint8_t* codes, const idx_t* ids, float* distances,
                      idx_t* labels, size_t k) const override {
        return scan_list_codes(*this, ip, code_size, allowed_positions_, n, codes, ids, distances,
                               labels, k, [this](const uint8_t* code) { return distance(code); });
    }
};

// IndexIVFScalarQuantizer (QT_8bit) with benzer's list scanner. Serialises
// as IndexIVFScalarQuantizer.
struct FastIVFSQ8 : faiss::IndexIVFScalarQuantizer {
    std::vector<float> offset, scale;  // from sq.trained, after training

    using faiss::IndexIVFScalarQuantizer::IndexIVFScalarQuantizer;

    // The decoding constants, once the quantizer is trained.
    bool ready() const { return offset.size() == static_cast<size_t>(d); }
    void prepare() {
        if (sq.trained.size() != 2 * static_cast<size_t>(d)) return;
        offset.resize(static_cast<size_t>(d));
        scale.resize(static_cast<size_t>(d));
        for (size_t i = 0; i < static_cast<size_t>(d); i++) {
            float vmin = sq.trained[i], vdiff = sq.trained[static_cast<size_t>(d) + i];
            scale[i] = vdiff / 255.0f;
            offset[i] = vmin + 0.5f * scale[i];
        }
    }

    void train(idx_t n, const float* x) override {
        faiss::IndexIVFScalarQuantizer::train(n, x);
        prepare();
    }

    faiss::InvertedListScanner* get_InvertedListScanner(
        bool store_pairs, const faiss::IDSelector* sel) const override {
        bool metric_ok =
            metric_type == faiss::METRIC_L2 || metric_type == faiss::METRIC_INNER_PRODUCT;
        if (!metric_ok || sq.qtype != faiss::ScalarQuantizer::QT_8bit || !ready())
            return faiss::IndexIVFScalarQuantizer::get_InvertedListScanner(store_pairs, sel);
        return new FastIVFSQ8Scanner(this, offset.data(), scale.data(), store_pairs, sel);
    }
};

// IndexIVFFlat with benzer's list scanner. Serialises as IndexIVFFlat.
struct FastIVFFlat : faiss::IndexIVFFlat {
    FastIVFFlat(faiss::Index* quantizer, size_t d, size_t nlist, faiss::MetricType metric)
        : faiss::IndexIVFFlat(quantizer, d, nlist, metric) {}

    faiss::InvertedListScanner* get_InvertedListScanner(
        bool store_pairs, const faiss::IDSelector* sel) const override {
        if (metric_type != faiss::METRIC_L2 && metric_type != faiss::METRIC_INNER_PRODUCT)
            return faiss::IndexIVFFlat::get_InvertedListScanner(store_pairs, sel);
        return new FastIVFFlatScanner(static_cast<size_t>(d),
                                      metric_type == faiss::METRIC_INNER_PRODUCT, store_pairs, sel);
    }
};

// Moves a plain IndexFlat's vectors into a FastFlat.
faiss::Index* replace_flat(faiss::Index* index) {
    if (index == nullptr) return index;
    // Only exact IndexFlat / IndexFlatL2 / IndexFlatIP objects.
    bool plain = typeid(*index) == typeid(faiss::IndexFlat) ||
                 typeid(*index) == typeid(faiss::IndexFlatL2) ||
                 typeid(*index) == typeid(faiss::IndexFlatIP);
    if (!plain) return index;
    auto* old = static_cast<faiss::IndexFlat*>(index);
    auto* fast = new FastFlat(old->d, old->metric_type);
    fast->codes.swap(old->codes);
    fast->ntotal = old->ntotal;
    fast->is_trained = old->is_trained;
    fast->metric_arg = old->metric_arg;
    fast->verbose = old->verbose;
    delete old;
    return fast;
}

// Moves old's lists, quantizer and settings into fast, a new object of a
// subclass built with old's dimensions, frees old, and returns fast with its
// quantizer on benzer's kernels too.
template <typename Fast>
Fast* move_ivf_into(faiss::IndexIVF* old, Fast* fast) {
    fast->code_size = old->code_size;
    fast->replace_invlists(old->invlists, old->own_invlists);
    old->own_invlists = false;
    old->invlists = nullptr;
    fast->own_fields = old->own_fields;
    old->own_fields = false;
    fast->nprobe = old->nprobe;
    fast->max_codes = old->max_codes;
    fast->parallel_mode = old->parallel_mode;
    fast->direct_map = old->direct_map;
    fast->ntotal = old->ntotal;
    fast->is_trained = old->is_trained;
    fast->metric_arg = old->metric_arg;
    fast->cp = old->cp;
    fast->quantizer_trains_alone = old->quantizer_trains_alone;
    fast->clustering_index = old->clustering_index;
    old->clustering_index = nullptr;
    fast->verbose = old->verbose;
    delete old;
    fast->quantizer = replace_flat(fast->quantizer);
    return fast;
}

// Moves a plain IndexIVFFlat's lists and quantizer into a FastIVFFlat.
faiss::Index* replace_ivf_flat(faiss::Index* index) {
    if (typeid(*index) != typeid(faiss::IndexIVFFlat)) return index;
    auto* old = static_cast<faiss::IndexIVFFlat*>(index);
    return move_ivf_into(old, new FastIVFFlat(old->quantizer, static_cast<size_t>(old->d),
                                              old->nlist, old->metric_type));
}

// Moves a plain IVF-SQ8 index's lists and quantizer into a FastIVFSQ8.
faiss::Index* replace_ivf_sq8(faiss::Index* index) {
    if (typeid(*index) != typeid(faiss::IndexIVFScalarQuantizer)) return index;
    auto* old = static_cast<faiss::IndexIVFScalarQuantizer*>(index);
    if (old->sq.qtype != faiss::ScalarQuantizer::QT_8bit) {
        old->quantizer = replace_flat(old->quantizer);
        return old;
    }
    auto* fast = new FastIVFSQ8(old->quantizer, static_cast<size_t>(old->d), old->nlist,
                                old->sq.qtype, old->metric_type, old->by_residual);
    fast->sq = old->sq;
    move_ivf_into(old, fast)->prepare();
    return fast;
}

}  // namespace

void set_fast_kernels_enabled(bool enabled) { g_enabled = enabled; }

bool fast_kernels_enabled() { return g_enabled; }

faiss::Index* install_fast_kernels(faiss::Index* index) {
    if (!g_enabled || index == nullptr) return index;
    if (auto* refine = dynamic_cast<faiss::IndexRefine*>(index)) {
        refine->base_index = install_fast_kernels(refine->base_index);
        refine->refine_index = replace_flat(refine->refine_index);
        return refine;
    }
    if (auto* pre = dynamic_cast<faiss::IndexPreTransform*>(index)) {
        pre->index = install_fast_kernels(pre->index);
        return pre;
    }
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index)) {
        hnsw->storage = replace_flat(hnsw->storage);
        return hnsw;
    }
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index)) {
        if (typeid(*ivf) == typeid(faiss::IndexIVFFlat)) return replace_ivf_flat(ivf);
        if (typeid(*ivf) == typeid(faiss::IndexIVFScalarQuantizer)) return replace_ivf_sq8(ivf);
        ivf->quantizer = replace_flat(ivf->quantizer);
        return ivf;
    }
    return replace_flat(index);
}

}  // namespace benzer
