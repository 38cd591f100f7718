// ivf_probe.h: searching IVF lists nearest first, until the answer is good
// enough.
//
// A classic IVF search visits a fixed number of lists (nprobe) whatever the
// query. That number has to be set for the hardest queries, so most queries
// pay for lists that change nothing, and a filter that keeps a fraction s of
// the rows forces nprobe / s (its allowed rows lie further out). Here the
// lists are visited in order of their centroid's distance to the query and
// the search stops by a rule on what it has seen:
//
//   - at least `min_candidates` allowed rows compared,
//   - k allowed rows found (a filtered search is never under-filled while
//     any list is left), and
//   - the last `patience` lists that held allowed rows did not improve the
//     top k.
//
// Patience counts lists with allowed rows, not lists: a filter that keeps
// 10 % of the rows, or only the rows of a few clusters far from the query,
// makes the search go on past the lists where nothing is allowed, until it
// has looked at `patience` lists of allowed rows in vain. Rows it skips cost
// a bit test, not a distance. The pair is chosen per index by measurement
// (tuning.h) for a recall target.
//
// Core code: no PostgreSQL headers. May throw (Faiss's errors, its
// "computation interrupted" when the interrupt check fires).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <faiss/Index.h>
#include <faiss/IndexIVF.h>

namespace faiss {
struct IndexIVF;
struct IDSelector;
}  // namespace faiss

namespace benzer {

// The stop rule (see above). All zeros probe one list (and then on until k
// rows were found).
struct ProbePolicy {
    std::int64_t min_candidates = 0;
    std::int64_t patience = 0;
    // A classic fixed nprobe: visit at least this many lists (and then on
    // until k rows were found).
    std::int64_t min_lists = 0;
};

// What one probe did.
struct ProbeStats {
    std::int64_t lists = 0;          // lists visited (empty ones included)
    std::int64_t rows = 0;           // rows in those lists
    std::int64_t compared = 0;       // allowed rows among them (distances computed)
    std::int64_t allowed_lists = 0;  // lists with at least one allowed row
};

// The lists of an IVF index in order of their centroid's distance to one
// query, sorted lazily (most searches need only the first few).
class ListOrder {
  public:
    ListOrder(const faiss::IndexIVF* ivf, const float* query);
    std::int64_t size() const { return static_cast<std::int64_t>(order_.size()); }
    // The j-th nearest list and its coarse distance (Faiss's convention).
    faiss::Index::idx_t list(std::int64_t j);
    float distance(std::int64_t j);

  private:
    void sort_through(std::int64_t j);
    std::vector<float> distances_;
    std::vector<faiss::Index::idx_t> order_;
    std::int64_t sorted_ = 0;
    bool larger_is_better_ = false;
};

// Called after every visited list with the heap as it stands; returns
// false to stop the probe there (the tuner records and decides itself).
struct ProbeObserver {
    virtual ~ProbeObserver() = default;
    // since_improvement: lists with allowed rows since the top k improved.
    virtual bool after_list(const ProbeStats& stats, std::int64_t since_improvement, bool full,
                            const float* distances, const faiss::Index::idx_t* labels) = 0;
};

// One probe, driven by its caller: the caller asks which list to visit
// next, hands over that list's entries in as many spans as it likes (the
// pages of a PostgreSQL index hold a list in pieces), and asks again until
// the probe says it is done. The lists themselves may live anywhere: the
// probe needs only the IVF's quantizer and list scanner. probe_ivf() is
// this loop over Faiss's own lists, so the stop rule exists once.
class ListProbe {
  public:
    // As probe_ivf (below): query in the IVF's space, sel may be null.
    ListProbe(const faiss::IndexIVF* ivf, const float* query, std::int64_t k,
              const ProbePolicy& policy, const faiss::IDSelector* sel,
              ProbeObserver* observer = nullptr);
    ~ListProbe();
    ListProbe(const ListProbe&) = delete;
    ListProbe& operator=(const ListProbe&) = delete;

    // The next list to visit, or -1 when the rule (or the observer) ends the
    // probe or every list was visited.
    faiss::Index::idx_t next_list();
    // n entries of the list next_list() returned: n codes of code_size()
    // bytes each, and their labels.
    void scan(std::size_t n, const std::uint8_t* codes, const faiss::Index::idx_t* ids);
    // The result in Faiss's convention, best first, -1 labels after the
    // last found (k each); returns the number found. Ends the probe.
    std::int64_t finish(float* distances, faiss::Index::idx_t* labels);

    const ProbeStats& stats() const { return stats_; }
    std::size_t code_size() const { return code_size_; }

  private:
    bool keep_going();  // the rule, after a list that held entries

    ListOrder order_;
    std::unique_ptr<faiss::InvertedListScanner> scanner_;
    const faiss::IDSelector* sel_;
    ProbeObserver* observer_;
    ProbePolicy policy_;
    std::int64_t k_;
    bool larger_is_better_;
    std::size_t code_size_;
    std::vector<float> distances_;
    std::vector<faiss::Index::idx_t> labels_;
    ProbeStats stats_;
    std::int64_t next_ = 0;  // position in order_ of the next list
    std::int64_t since_improvement_ = 0;
    bool in_list_ = false;  // entries of the current list were scanned
    std::size_t list_improved_ = 0;
    std::int64_t list_allowed_ = 0;
    bool done_ = false;
};

// Searches ivf for the k best rows sel allows (sel may be null), visiting
// lists nearest first under policy (or, with an observer, for as long as
// the observer says). query is in the IVF's own space (transformed,
// normalised). distances/labels (k each) receive the result in Faiss's
// convention, best first, -1 labels after the last found. Returns the
// number found.
std::int64_t probe_ivf(const faiss::IndexIVF* ivf, const float* query, std::int64_t k,
                       const ProbePolicy& policy, const faiss::IDSelector* sel, float* distances,
                       faiss::Index::idx_t* labels, ProbeStats* stats,
                       ProbeObserver* observer = nullptr);

// Whether probe_ivf can search this IVF (it has a list scanner: FastScan
// indexes do not).
bool can_probe(const faiss::IndexIVF* ivf);

}  // namespace benzer
