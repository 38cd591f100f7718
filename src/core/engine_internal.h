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

// Knobs Faiss reads only from the index object itself (FastScan's nprobe,
// which rejects SearchParameters; HNSW's efSearch, which Faiss 1.7.3 uses
// to size the candidate queue whatever the parameters say) are set on the
// object for the length of one search. Searches of one structure may run
// at once on several threads (Engine::search_each, the search service), so
// each such field has a gate: searches that need the same value share it,
// one that needs another waits until they are done, and the last one out
// restores the object's own value. Every search thus sees exactly the
// value it would see alone. A single-threaded caller pays an uncontended
// mutex.
void knob_enter(int* field, int value);
void knob_enter(std::size_t* field, std::size_t value);
void knob_leave(int* field);
void knob_leave(std::size_t* field);
// The field's own value (not one a running search set).
int knob_own_value(const int* field);
std::size_t knob_own_value(const std::size_t* field);

// Holds a knob at a value for one search (set() again to change it).
template <typename T>
struct KnobOverride {
    T* field = nullptr;
    T value = 0;
    void set(T* target, T wanted) {
        if (field == target && value == wanted) return;
        if (field != nullptr) knob_leave(field);
        field = target;
        value = wanted;
        knob_enter(field, wanted);
    }
    ~KnobOverride() {
        if (field != nullptr) knob_leave(field);
    }
};

// An IVF index's nprobe for one search: a widened search never changes the
// cached index's default.
struct NprobeOverride {
    KnobOverride<std::size_t> knob;
    void set(faiss::IndexIVF* target, std::size_t nprobe) { knob.set(&target->nprobe, nprobe); }
};

// HNSW's efSearch for one search: a wider search needs the stored value
// raised for the call too.
struct EfSearchOverride {
    KnobOverride<int> knob;
    void set(faiss::IndexHNSW* target, int ef) { knob.set(&target->hnsw.efSearch, ef); }
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
