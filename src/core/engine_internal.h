// engine_internal.h: helpers shared by engine.cpp and engine_batch.cpp.
//
// Not part of the engine's interface: they know about Faiss's concrete
// index classes and the quirks of Faiss 1.7.3.
#pragma once

#include <cstddef>
#include <cstdint>

#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/IDSelector.h>

#include "engine.h"

namespace faiss {
struct ProductQuantizer;
}

namespace benzer {
namespace internal {

// A bitmap-backed IDSelector over our labels.
struct FilterSelector : faiss::IDSelector {
    const LabelFilter* filter;
    explicit FilterSelector(const LabelFilter* f) : filter(f) {}
    bool is_member(faiss::IDSelector::idx_t id) const override { return filter->contains(id); }
};

// The IndexIVF inside index (through IndexRefine and IndexPreTransform),
// if any. Faiss's own try_extract_index_ivf does not look inside
// IndexRefine, which left the base of "IVF...,RFlat" at nprobe 1.
faiss::IndexIVF* find_ivf(faiss::Index* index);
const faiss::IndexIVF* find_ivf(const faiss::Index* index);

// Whether all dim elements of v are zero.
bool is_zero(const float* v, int dim);

// The first k allowed labels (all labels below total when filter is null),
// in label order, at distance NaN: the answer for a query without a
// direction (a zero vector under cosine). Returns how many.
std::int64_t first_allowed(std::int64_t total, const LabelFilter* filter, std::int64_t k,
                           float* distances, Label* labels);

// The index below IndexRefine and IndexPreTransform wrappers.
faiss::Index* unwrap(faiss::Index* index);

// The IndexHNSW at the top of index or below its IndexRefine and
// IndexPreTransform, if any.
faiss::IndexHNSW* find_hnsw(faiss::Index* index);
const faiss::IndexHNSW* find_hnsw(const faiss::Index* index);

// The product quantizer of an (IVF-)PQ index, if any.
faiss::ProductQuantizer* find_pq(faiss::Index* index);

// Completes a search that visited the whole index yet returned found < k
// rows: an HNSW graph cannot reach every row from its entry point (small
// M, quantised storage, many equal vectors), and FastScan drops rows whose
// quantised distances tie with its heap's bound. This computes the
// distance to every allowed row not among the results, from exact_rows
// when given (an IndexRefine's stored vectors), else from the graph's
// storage, else from vectors Faiss reconstructs, and merges the best of
// them in: distances/labels (Faiss space, k entries) hold the result, and
// the new count is returned.
std::int64_t complete_search(const faiss::Index* index, const float* exact_rows, const float* query,
                             std::int64_t k, const LabelFilter* filter, float* distances,
                             Label* labels, std::int64_t found);

// Whether Faiss 1.7.3 applies SearchParameters::sel for this index.
bool supports_selector(const faiss::Index* index);

// Sets an IVF index's nprobe for one search and restores it afterwards, so
// a widened search never changes the cached index's default. (FastScan
// rejects SearchParameters, so its nprobe must be set on the object.)
struct NprobeOverride {
    faiss::IndexIVF* ivf = nullptr;
    std::size_t saved = 0;
    void set(faiss::IndexIVF* target, std::size_t nprobe) {
        if (ivf == nullptr) {
            ivf = target;
            saved = target->nprobe;
        }
        target->nprobe = nprobe;
    }
    ~NprobeOverride() {
        if (ivf != nullptr) ivf->nprobe = saved;
    }
};

// The same for HNSW's efSearch: Faiss 1.7.3 sizes its candidate queue from
// the index's own efSearch and only stops by the parameter's, so a wider
// search needs the stored value raised for the call too.
struct EfSearchOverride {
    faiss::IndexHNSW* hnsw = nullptr;
    int saved = 0;
    void set(faiss::IndexHNSW* target, int ef) {
        if (hnsw == nullptr) {
            hnsw = target;
            saved = target->hnsw.efSearch;
        }
        target->hnsw.efSearch = ef;
    }
    ~EfSearchOverride() {
        if (hnsw != nullptr) hnsw->hnsw.efSearch = saved;
    }
};

// The Faiss parameters of one search (or batch) of a base index (never an
// IndexRefine) under options and filter. Knobs go into SearchParameters
// where Faiss accepts them; FastScan rejects parameters, so its nprobe is set
// on the object for the duration of the search (the overrides restore the
// index's own values when the setup goes out of scope). A filter keeping a
// fraction of the rows scales nprobe and efSearch by 1 / fraction: the
// nearest allowed rows lie further out.
struct SearchSetup {
    SearchSetup(const faiss::Index* index, std::int64_t k, const SearchOptions& options,
                const LabelFilter* filter, SearchStats* stats);
    SearchSetup(const SearchSetup&) = delete;
    SearchSetup& operator=(const SearchSetup&) = delete;

    // Asks HNSW for at least want candidates (Faiss searches at least k).
    void widen(std::int64_t want);

    const faiss::SearchParameters* params = nullptr;
    bool use_selector = false;  // the filter is applied inside Faiss
    // A graph search asked to consider at least as many candidates as there
    // are rows to search: distances to all of them cost no more than the
    // graph walk, are exact for the storage, and reach rows the graph
    // cannot (many equal vectors disconnect an HNSW graph).
    bool exhaustive = false;
    // The search visits every row it may return (every IVF list, a graph
    // completed by complete_search, a flat scan): a short answer means rows
    // were lost, not left unvisited.
    bool covers_all = true;
    bool filter_here = false;  // the caller must filter Faiss's results
    double keep = 1.0;         // the fraction of rows the filter allows

  private:
    const faiss::IndexHNSW* hnsw_ = nullptr;
    faiss::SearchParametersIVF ivf_params_;
    faiss::SearchParametersHNSW hnsw_params_;
    faiss::SearchParameters flat_params_;
    FilterSelector selector_;
    NprobeOverride nprobe_override_;
    EfSearchOverride ef_override_;
};

}  // namespace internal
}  // namespace benzer
