// ivf_probe.cpp: IVF search nearest list first with a stop rule (see the
// header for the rule and why).
#include "ivf_probe.h"

#include <algorithm>
#include <limits>
#include <memory>

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/utils/Heap.h>

#include "distance.h"

namespace benzer {

using FaissLabel = faiss::Index::idx_t;

namespace {

// How many lists to sort at first, and by how much to extend the sorted
// prefix: most searches stop within the first few dozen.
constexpr std::int64_t kFirstSorted = 32;

// Allowed rows among ids (all of them without a selector).
std::int64_t count_allowed(const faiss::IDSelector* sel, const FaissLabel* ids, std::size_t n) {
    if (sel == nullptr) return static_cast<std::int64_t>(n);
    std::int64_t count = 0;
    for (std::size_t i = 0; i < n; i++) count += sel->is_member(ids[i]) ? 1 : 0;
    return count;
}

}  // namespace

bool can_probe(const faiss::IndexIVF* ivf) {
    if (ivf == nullptr || dynamic_cast<const faiss::IndexIVFFastScan*>(ivf) != nullptr)
        return false;
    return dynamic_cast<const faiss::IndexIVFFlat*>(ivf) != nullptr ||
           dynamic_cast<const faiss::IndexIVFPQ*>(ivf) != nullptr ||
           dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(ivf) != nullptr;
}

ListOrder::ListOrder(const faiss::IndexIVF* ivf, const float* query) {
    std::int64_t nlist = static_cast<std::int64_t>(ivf->nlist);
    larger_is_better_ = ivf->metric_type == faiss::METRIC_INNER_PRODUCT;
    distances_.resize(static_cast<std::size_t>(nlist));
    order_.resize(static_cast<std::size_t>(nlist));
    const auto* flat = dynamic_cast<const faiss::IndexFlat*>(ivf->quantizer);
    if (flat != nullptr && flat->ntotal == nlist) {
        // benzer's SIMD kernels over the centroids (Faiss's run at scalar
        // speed in Debian's build).
        const float* centroids = flat->get_xb();
        std::size_t d = static_cast<std::size_t>(ivf->d);
        for (std::int64_t i = 0; i < nlist; i++)
            distances_[static_cast<std::size_t>(i)] =
                larger_is_better_ ? inner_product(query, centroids + i * d, d)
                                  : l2_squared(query, centroids + i * d, d);
        for (std::int64_t i = 0; i < nlist; i++) order_[static_cast<std::size_t>(i)] = i;
        return;
    }
    // Any other quantizer: ask it for every list, best first.
    std::vector<float> d(static_cast<std::size_t>(nlist));
    ivf->quantizer->search(1, query, nlist, d.data(), order_.data());
    std::int64_t found = 0;
    while (found < nlist && order_[static_cast<std::size_t>(found)] >= 0) found++;
    order_.resize(static_cast<std::size_t>(found));
    // distances_ is indexed by list number.
    for (std::int64_t j = 0; j < found; j++)
        distances_[static_cast<std::size_t>(order_[static_cast<std::size_t>(j)])] =
            d[static_cast<std::size_t>(j)];
    sorted_ = found;
}

void ListOrder::sort_through(std::int64_t j) {
    if (j < sorted_) return;
    std::int64_t n = size();
    std::int64_t upto = std::min(n, std::max(j + 1, std::max(kFirstSorted, sorted_ * 2)));
    const std::vector<float>& d = distances_;
    bool larger = larger_is_better_;
    std::partial_sort(order_.begin() + sorted_, order_.begin() + upto, order_.end(),
                      [&d, larger](FaissLabel a, FaissLabel b) {
                          float da = d[static_cast<std::size_t>(a)];
                          float db = d[static_cast<std::size_t>(b)];
                          if (da != db) return larger ? da > db : da < db;
                          return a < b;
                      });
    sorted_ = upto;
}

FaissLabel ListOrder::list(std::int64_t j) {
    sort_through(j);
    return order_[static_cast<std::size_t>(j)];
}

float ListOrder::distance(std::int64_t j) { return distances_[static_cast<std::size_t>(list(j))]; }

ListProbe::ListProbe(const faiss::IndexIVF* ivf, const float* query, std::int64_t k,
                     const ProbePolicy& policy, const faiss::IDSelector* sel,
                     ProbeObserver* observer)
    : order_(ivf, query),
      scanner_(ivf->get_InvertedListScanner(false, sel)),
      sel_(sel),
      observer_(observer),
      policy_(policy),
      k_(std::max<std::int64_t>(k, 0)),
      larger_is_better_(ivf->metric_type == faiss::METRIC_INNER_PRODUCT),
      code_size_(ivf->code_size),
      distances_(static_cast<std::size_t>(k_)),
      labels_(static_cast<std::size_t>(k_)) {
    if (larger_is_better_)
        faiss::minheap_heapify(static_cast<std::size_t>(k_), distances_.data(), labels_.data());
    else
        faiss::maxheap_heapify(static_cast<std::size_t>(k_), distances_.data(), labels_.data());
    scanner_->set_query(query);
    done_ = k_ == 0;
}

ListProbe::~ListProbe() = default;

bool ListProbe::keep_going() {
    since_improvement_ = list_improved_ > 0 ? 0 : since_improvement_ + (list_allowed_ > 0 ? 1 : 0);
    if (list_allowed_ > 0) stats_.allowed_lists++;
    bool full = labels_[0] >= 0;  // the heap's top is its worst entry
    if (observer_ != nullptr)
        return observer_->after_list(stats_, since_improvement_, full, distances_.data(),
                                     labels_.data());
    return !(full && stats_.lists >= policy_.min_lists &&
             stats_.compared >= policy_.min_candidates && since_improvement_ >= policy_.patience);
}

FaissLabel ListProbe::next_list() {
    if (done_) return -1;
    if (in_list_) {
        in_list_ = false;
        if (!keep_going()) {
            done_ = true;
            return -1;
        }
    }
    if (next_ >= order_.size()) {
        done_ = true;
        return -1;
    }
    FaissLabel list_no = order_.list(next_);
    if (list_no < 0) {
        done_ = true;
        return -1;
    }
    float coarse = order_.distance(next_);
    next_++;
    stats_.lists++;
    if ((stats_.lists & 63) == 0) faiss::InterruptCallback::check();
    scanner_->set_list(list_no, coarse);
    list_improved_ = 0;
    list_allowed_ = 0;
    return list_no;
}

void ListProbe::scan(std::size_t n, const std::uint8_t* codes, const FaissLabel* ids) {
    if (done_ || n == 0) return;
    in_list_ = true;
    list_improved_ += scanner_->scan_codes(n, codes, ids, distances_.data(), labels_.data(),
                                           static_cast<std::size_t>(k_));
    std::int64_t allowed = count_allowed(sel_, ids, n);
    list_allowed_ += allowed;
    stats_.rows += static_cast<std::int64_t>(n);
    stats_.compared += allowed;
}

std::int64_t ListProbe::finish(float* distances, FaissLabel* labels) {
    done_ = true;
    std::size_t k = static_cast<std::size_t>(k_);
    std::size_t found = larger_is_better_
                            ? faiss::minheap_reorder(k, distances_.data(), labels_.data())
                            : faiss::maxheap_reorder(k, distances_.data(), labels_.data());
    std::copy(distances_.begin(), distances_.end(), distances);
    std::copy(labels_.begin(), labels_.end(), labels);
    return static_cast<std::int64_t>(found);
}

std::int64_t probe_ivf(const faiss::IndexIVF* ivf, const float* query, std::int64_t k,
                       const ProbePolicy& policy, const faiss::IDSelector* sel, float* distances,
                       FaissLabel* labels, ProbeStats* stats, ProbeObserver* observer) {
    if (k <= 0) return 0;
    ListProbe probe(ivf, query, k, policy, sel, observer);
    const faiss::InvertedLists* lists = ivf->invlists;
    for (FaissLabel list_no; (list_no = probe.next_list()) >= 0;) {
        std::size_t n = lists->list_size(static_cast<std::size_t>(list_no));
        if (n == 0) continue;
        faiss::InvertedLists::ScopedCodes codes(lists, static_cast<std::size_t>(list_no));
        faiss::InvertedLists::ScopedIds ids(lists, static_cast<std::size_t>(list_no));
        probe.scan(n, codes.get(), ids.get());
    }
    std::int64_t found = probe.finish(distances, labels);
    if (stats != nullptr) *stats = probe.stats();
    return found;
}

}  // namespace benzer
