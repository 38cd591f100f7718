// engine_paged.cpp: IVF lists that live outside the engine.
//
// A PostgreSQL index keeps an IVF index's lists in its own pages, read
// through shared buffers, so that every connection shares one copy and a
// new connection loads nothing but the coarse centroids. The engine then
// holds the trained structure with empty lists; PagedSearch runs the same
// probe as Engine::search() (ivf_probe.h's ListProbe: lists nearest first,
// the same stop rule) over entries its caller reads from the pages, so
// settings measured by the tuner on the in-memory index mean the same on
// pages. The engine never calls out: the caller drives the loop and does
// its page reads (which may raise PostgreSQL errors) between the calls.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <faiss/IndexIVFFlat.h>
#include <faiss/invlists/DirectMap.h>
#include <faiss/invlists/InvertedLists.h>

#include "distance.h"
#include "engine.h"
#include "engine_internal.h"
#include "error.h"
#include "ivf_probe.h"

namespace benzer {

using internal::find_ivf;

namespace {

// ERRORs unless list is one of ivf's lists.
void check_list(const faiss::IndexIVF* ivf, std::int64_t list) {
    if (list < 0 || static_cast<std::size_t>(list) >= ivf->nlist)
        throw Error(ErrorKind::kInternal, "IVF list " + std::to_string(list) + " out of range");
}

// The IVF of an engine whose lists can be paged, or an error.
const faiss::IndexIVF* pageable_ivf(const Engine& engine, const faiss::Index* index) {
    if (!engine.lists_pageable())
        throw Error(ErrorKind::kInternal, "this index does not keep its lists in pages");
    return find_ivf(index);
}

}  // namespace

bool Engine::lists_pageable() const {
    // The IVF itself at the top (no transform, no re-ranking wrapper), with
    // a list scanner (IVF-Flat, IVF-SQ, IVF-PQ; not FastScan).
    if (refine_ || base_ != index_) return false;
    auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index_);
    return ivf != nullptr && benzer::can_probe(ivf) &&
           dynamic_cast<const faiss::ArrayInvertedLists*>(ivf->invlists) != nullptr;
}

bool Engine::list_codes_are_vectors() const {
    return lists_pageable() && dynamic_cast<const faiss::IndexIVFFlat*>(index_) != nullptr;
}

std::size_t Engine::list_code_size() const { return pageable_ivf(*this, index_)->code_size; }

std::int64_t Engine::list_size(std::int64_t list) const {
    const faiss::IndexIVF* ivf = pageable_ivf(*this, index_);
    check_list(ivf, list);
    return static_cast<std::int64_t>(ivf->invlists->list_size(static_cast<std::size_t>(list)));
}

const std::uint8_t* Engine::list_codes(std::int64_t list) const {
    const faiss::IndexIVF* ivf = pageable_ivf(*this, index_);
    check_list(ivf, list);
    // ArrayInvertedLists hands out its own storage: nothing to release.
    return ivf->invlists->get_codes(static_cast<std::size_t>(list));
}

const Label* Engine::list_labels(std::int64_t list) const {
    const faiss::IndexIVF* ivf = pageable_ivf(*this, index_);
    check_list(ivf, list);
    return ivf->invlists->get_ids(static_cast<std::size_t>(list));
}

void Engine::append_list(std::int64_t list, std::int64_t n, const std::uint8_t* codes,
                         const Label* labels) {
    faiss::IndexIVF* ivf = find_ivf(index_);
    pageable_ivf(*this, index_);
    check_list(ivf, list);
    if (n <= 0) return;
    ivf->invlists->add_entries(static_cast<std::size_t>(list), static_cast<std::size_t>(n), labels,
                               codes);
    ivf->ntotal += n;
}

void Engine::finish_lists() {
    faiss::IndexIVF* ivf = find_ivf(index_);
    pageable_ivf(*this, index_);
    // Labels must be exactly 0..ntotal-1, each once: the direct map and the
    // caller's label -> row map depend on it. A damaged page must give an
    // error here, not a wrong row later.
    std::int64_t total = ivf->ntotal;
    std::vector<bool> seen(static_cast<std::size_t>(total), false);
    for (std::size_t list = 0; list < ivf->nlist; list++) {
        std::size_t n = ivf->invlists->list_size(list);
        const Label* ids = ivf->invlists->get_ids(list);
        for (std::size_t i = 0; i < n; i++) {
            Label label = ids[i];
            if (label < 0 || label >= total || seen[static_cast<std::size_t>(label)])
                throw Error(ErrorKind::kInternal, "IVF list " + std::to_string(list) +
                                                      " holds label " + std::to_string(label) +
                                                      " twice or out of range (rows " +
                                                      std::to_string(total) + ")");
            seen[static_cast<std::size_t>(label)] = true;
        }
    }
    if (ivf->direct_map.type == faiss::DirectMap::Array) {
        ivf->set_direct_map_type(faiss::DirectMap::NoMap);
        ivf->set_direct_map_type(faiss::DirectMap::Array);
    }
    analyse();
}

void Engine::relabel_by_list(Label* new_label) {
    faiss::IndexIVF* ivf = find_ivf(index_);
    pageable_ivf(*this, index_);
    std::int64_t total = ivf->ntotal;
    for (std::int64_t i = 0; i < total; i++) new_label[i] = -1;
    Label next = 0;
    for (std::size_t list = 0; list < ivf->nlist; list++) {
        std::size_t n = ivf->invlists->list_size(list);
        if (n == 0) continue;
        std::vector<Label> ids(ivf->invlists->get_ids(list), ivf->invlists->get_ids(list) + n);
        for (Label& id : ids) {
            if (id < 0 || id >= total || new_label[id] >= 0)
                throw Error(ErrorKind::kInternal, "IVF lists hold a label twice or out of range");
            new_label[id] = next;
            id = next++;
        }
        ivf->invlists->update_entries(list, 0, n, ids.data(), ivf->invlists->get_codes(list));
    }
    if (next != total) throw Error(ErrorKind::kInternal, "IVF lists do not hold every row");
    if (ivf->direct_map.type == faiss::DirectMap::Array) {
        ivf->set_direct_map_type(faiss::DirectMap::NoMap);
        ivf->set_direct_map_type(faiss::DirectMap::Array);
    }
}

ExactCandidates::ExactCandidates(const Engine& engine, const float* query, std::int64_t k)
    : engine_(engine), k_(std::max<std::int64_t>(k, 0)), query_(query, query + engine.dim()) {
    if (engine.metric() == Metric::kCosine) {
        zero_ = internal::is_zero(query_.data(), engine.dim());
        if (!zero_) normalize_vectors(query_.data(), 1, engine.dim());
    }
    heap_.reserve(static_cast<std::size_t>(std::min<std::int64_t>(k_, 4096)));
}

bool ExactCandidates::scores_l2() const { return engine_.metric() == Metric::kL2; }

void ExactCandidates::add(Label label, const float* stored) {
    if (k_ == 0) {
        seen_++;
        return;
    }
    std::size_t d = static_cast<std::size_t>(engine_.dim());
    // Smaller is better in this "badness" space for every metric.
    float badness = zero_                             ? 0.0f
                    : engine_.metric() == Metric::kL2 ? l2_squared(query_.data(), stored, d)
                                                      : -inner_product(query_.data(), stored, d);
    add_scored(label, badness);
}

void ExactCandidates::add_scored(Label label, float badness) {
    seen_++;
    if (k_ == 0) return;
    std::pair<float, Label> entry(badness, label);
    if (static_cast<std::int64_t>(heap_.size()) < k_) {
        heap_.push_back(entry);
        std::push_heap(heap_.begin(), heap_.end());
    } else if (entry < heap_.front()) {
        std::pop_heap(heap_.begin(), heap_.end());
        heap_.back() = entry;
        std::push_heap(heap_.begin(), heap_.end());
    }
}

std::int64_t ExactCandidates::finish(float* distances, Label* labels, SearchStats* stats) {
    std::sort_heap(heap_.begin(), heap_.end());
    std::int64_t found = static_cast<std::int64_t>(heap_.size());
    for (std::int64_t i = 0; i < found; i++) {
        const auto& entry = heap_[static_cast<std::size_t>(i)];
        labels[i] = entry.second;
        float faiss_space = engine_.metric() == Metric::kL2 ? entry.first : -entry.first;
        distances[i] = zero_ ? std::numeric_limits<float>::quiet_NaN()
                             : engine_.to_operator_distance(faiss_space);
    }
    if (stats != nullptr) {
        stats->rounds++;
        stats->exact_scan = true;
        stats->candidates += seen_;
    }
    return found;
}

// The filter judges the index's own labels; external ones were judged by
// the caller.
struct PagedSearch::Selector : internal::FilterSelector {
    using FilterSelector::FilterSelector;
    bool is_member(faiss::IDSelector::idx_t id) const override {
        return id >= kExternalLabelBase || filter->contains(id);
    }
};

std::int64_t Engine::encode_for_list(const float* vector, std::uint8_t* code) const {
    const faiss::IndexIVF* ivf = pageable_ivf(*this, index_);
    std::vector<float> copy(vector, vector + dim_);
    if (metric_ == Metric::kCosine) normalize_vectors(copy.data(), 1, dim_);
    faiss::Index::idx_t list = -1;
    ivf->quantizer->assign(1, copy.data(), &list);
    check_list(ivf, list);
    ivf->encode_vectors(1, copy.data(), &list, code, false);
    return static_cast<std::int64_t>(list);
}

PagedSearch::PagedSearch(const Engine& engine, const float* query, std::int64_t k,
                         const SearchOptions& options, const LabelFilter* filter, std::int64_t rows,
                         std::int64_t extra_rows)
    : engine_(engine),
      k_(std::max<std::int64_t>(k, 0)),
      rows_(rows),
      filter_(filter),
      query_(query, query + engine.dim()) {
    const faiss::IndexIVF* ivf = pageable_ivf(engine, engine.index_);
    extra_rows = std::max<std::int64_t>(extra_rows, 0);
    if (k_ == 0 || rows_ + extra_rows <= 0 ||
        (extra_rows == 0 && filter != nullptr && filter->allowed == 0)) {
        trivial_ = true;
        k_ = 0;
        return;
    }
    if (engine.metric() == Metric::kCosine) {
        // A zero query has no direction: every cosine distance is NaN, any
        // order is right (as Engine::search).
        if (internal::is_zero(query_.data(), engine.dim())) {
            trivial_ = true;
            return;
        }
        normalize_vectors(query_.data(), 1, engine.dim());
    }
    ProbePolicy policy;
    adaptive_ = options.adaptive && options.nprobe == 0;
    if (adaptive_) {
        policy.min_candidates = options.min_candidates;
        policy.patience = options.patience;
    } else {
        // A fixed nprobe, widened by the filter as Engine::search widens it
        // (a filter that keeps a fraction s of the rows needs nprobe / s).
        double nprobe = options.nprobe > 0 ? options.nprobe : static_cast<double>(ivf->nprobe);
        double keep = 1.0;
        if (filter != nullptr && filter->allowed < rows_)
            keep = std::max(static_cast<double>(filter->allowed + extra_rows) /
                                static_cast<double>(rows_ + extra_rows),
                            1e-6);
        policy.min_lists = static_cast<std::int64_t>(
            std::min(std::ceil(nprobe / keep), static_cast<double>(ivf->nlist)));
        planned_lists_ = policy.min_lists;
    }
    if (filter != nullptr) selector_.reset(new Selector(filter));
    rows_ += extra_rows;
    probe_.reset(new ListProbe(ivf, query_.data(), std::min(k_, rows_), policy, selector_.get()));
}

PagedSearch::~PagedSearch() = default;

Label PagedSearch::next_list() { return probe_ != nullptr ? probe_->next_list() : -1; }

void PagedSearch::scan(std::int64_t n, const std::uint8_t* codes, const Label* labels) {
    if (probe_ != nullptr && n > 0) probe_->scan(static_cast<std::size_t>(n), codes, labels);
}

std::int64_t PagedSearch::finish(float* distances, Label* labels, SearchStats* stats) {
    SearchStats local;
    if (stats == nullptr) stats = &local;
    if (trivial_) return internal::first_allowed(rows_, filter_, k_, distances, labels);
    std::int64_t kb = std::min(k_, rows_);
    std::vector<float> d(static_cast<std::size_t>(kb));
    std::vector<Label> l(static_cast<std::size_t>(kb));
    std::int64_t found = probe_->finish(d.data(), l.data());
    const ProbeStats& probe = probe_->stats();
    stats->rounds++;
    stats->adaptive = adaptive_;
    stats->selector_used = stats->selector_used || filter_ != nullptr;
    stats->candidates += found;
    stats->lists += probe.lists;
    stats->compared += probe.compared;
    stats->nprobe = std::max(stats->nprobe, static_cast<int>(probe.lists));
    for (std::int64_t i = 0; i < found; i++) {
        labels[i] = l[static_cast<std::size_t>(i)];
        distances[i] = engine_.to_operator_distance(d[static_cast<std::size_t>(i)]);
    }
    return found;
}

}  // namespace benzer
