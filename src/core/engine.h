// engine.h: one Faiss index, as benzer uses it.
//
// The engine hides Faiss behind the few operations an index access method
// needs: build from a factory string, train, add, search with a filter,
// serialise to bytes and back. It is core code: no PostgreSQL headers. It
// may throw (benzer::Error or Faiss's exceptions); the PostgreSQL side calls
// it only through run_guarded().
//
// Labels. Rows get consecutive labels 0..n-1 in the order they were added;
// the caller keeps the label -> heap TID map. Consecutive labels are the one
// id scheme every Faiss index supports (HNSW and IndexRefine cannot store
// arbitrary ids, and IndexIDMap rejects search parameters), so one design
// works for every factory string.
//
// Distances. search() returns the value of the SQL operator, not Faiss's
// internal score: L2 distance (not squared), negative inner product, or
// cosine distance. Cosine indexes store L2-normalised vectors and search by
// inner product; the engine normalises on add and on search.
//
// Filters. A LabelFilter (a bitmap over labels) restricts a search to the
// rows the caller allows: live rows, rows that match WHERE conditions. Faiss
// 1.7.3 applies such a selector inside IVF-Flat/PQ/SQ, HNSW and Flat
// searches, and throws for FastScan and IndexRefine; for those the engine
// searches with a growing k and filters the results itself, so a filter is
// never ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace faiss {
struct Index;
struct IndexFlat;
struct IndexIVFFlat;
}  // namespace faiss

namespace benzer {

enum class Metric : int { kL2 = 0, kInnerProduct = 1, kCosine = 2 };

// "l2", "inner_product", "cosine".
const char* metric_name(Metric metric);

using Label = std::int64_t;

// Allowed labels: bit (label % 8) of bits[label / 8]. Labels at or beyond
// count are not allowed.
// Labels from here on name entries a caller adds to a paged search on
// its own terms (PagedSearch's extra_rows): no filter judges them.
constexpr Label kExternalLabelBase = Label(1) << 62;

struct LabelFilter {
    const std::uint8_t* bits = nullptr;
    std::int64_t count = 0;
    std::int64_t allowed = 0;  // number of set bits, for choosing a strategy

    bool contains(Label label) const {
        return label >= 0 && label < count && ((bits[label >> 3] >> (label & 7)) & 1) != 0;
    }
};

// Search-time knobs; zero means "the index's default".
struct SearchOptions {
    int nprobe = 0;         // IVF lists to visit
    int ef_search = 0;      // HNSW candidate list size
    float k_factor = 0.0f;  // exact re-ranking: candidates per result
    // With a filter that allows at most this many rows, compute exact
    // distances to just those rows instead of searching the index (when the
    // index keeps exact vectors). 0 disables.
    std::int64_t exact_filter_limit = 0;
    // IVF: probe lists nearest first under a stop rule (ivf_probe.h) instead
    // of a fixed nprobe. Ignored when nprobe is set or the index has no list
    // scanner (FastScan).
    bool adaptive = false;
    std::int64_t min_candidates = 0;
    std::int64_t patience = 0;
    // The rows such a search was measured to compare (tuning), for choosing
    // between it and an exact scan of a filter's rows. 0: unknown.
    double expected_compared = 0.0;
};

// What one search did, for EXPLAIN and benzer_index_info.
struct SearchStats {
    std::int64_t candidates = 0;            // results Faiss returned before filtering
    std::int64_t rounds = 0;                // Faiss calls (grows when filtering ourselves)
    bool selector_used = false;             // the filter was applied inside Faiss
    bool exact_scan = false;                // the filter was small: exact distances
    int nprobe = 0;                         // widest nprobe used (IVF)
    bool adaptive = false;                  // IVF lists probed under the stop rule
    std::int64_t lists = 0;                 // IVF lists visited by such probes
    std::int64_t compared = 0;              // rows whose distance was computed by them
    std::int64_t service = 0;               // exact searches the search service answered
    bool service_gpu = false;               // ... on a GPU
    int service_batch = 0;                  // largest batch such an answer came in
    const char* service_why_not = nullptr;  // why the last exact search ran here
};

// One of the independent searches Engine::search_each runs: search()'s
// arguments and results.
struct SearchRequest {
    const float* query = nullptr;
    std::int64_t k = 0;
    const LabelFilter* filter = nullptr;  // may be null
    float* distances = nullptr;           // k entries
    Label* labels = nullptr;              // k entries
    std::int64_t found = 0;
    SearchStats stats;
    bool failed = false;
    char error[256] = {0};  // why, when failed
};

struct TuningRequest;
struct TuningTable;
struct RowSource;
class ListProbe;
class Engine;

// Exact distances from one query to rows the caller hands over one by one
// (the allowed rows of a small filter, read from pages), keeping the k
// nearest. The stored vectors are in the index's space (cosine: normalised).
class ExactCandidates {
  public:
    ExactCandidates(const Engine& engine, const float* query, std::int64_t k);
    // Whether add() is needed at all (false for a zero cosine query: every
    // distance is NaN, finish() returns the first k labels it was given).
    void add(Label label, const float* stored);
    // The query as add() scores it (cosine: normalised), whether it is a
    // zero cosine query, and the score space: squared L2, or the negative
    // inner product.
    const float* query() const { return query_.data(); }
    bool zero_query() const { return zero_; }
    bool scores_l2() const;
    // A row scored elsewhere with the same kernels (core/device.h: the
    // search service): score as add() would have computed it.
    void add_scored(Label label, float score);
    // Rows compared elsewhere besides those handed to add_scored (stats).
    void note_compared(std::int64_t rows) { seen_ += rows; }
    // Nearest first, as operator distances; returns how many.
    std::int64_t finish(float* distances, Label* labels, SearchStats* stats);

  private:
    const Engine& engine_;
    std::int64_t k_;
    std::vector<float> query_;
    bool zero_ = false;
    std::vector<std::pair<float, Label>> heap_;  // max-heap on badness
    std::int64_t seen_ = 0;
};

// A search of an IVF index whose lists the caller keeps outside the engine
// (the pages of a PostgreSQL index, faiss_lists.cpp): the engine holds only
// the trained structure (coarse centroids), the caller walks the lists the
// search asks for and hands their entries over. The same stop rule,
// settings and result conventions as Engine::search() on an index that
// holds its lists:
//
//     PagedSearch search(engine, query, k, options, filter, rows);
//     for (Label list; (list = search.next_list()) >= 0;)
//         for each piece of the list: search.scan(n, codes, labels);
//     found = search.finish(distances, labels, &stats);
//
// No PostgreSQL call happens inside: the caller reads its pages between
// the calls.
class PagedSearch {
  public:
    // rows: the labels the index holds (0..rows-1). filter may be null.
    // extra_rows: entries the caller may add to lists besides them, with
    // labels from kExternalLabelBase on, which the filter does not judge
    // (the caller applies its own conditions to them): rows inserted into
    // a paged list since it was written.
    PagedSearch(const Engine& engine, const float* query, std::int64_t k,
                const SearchOptions& options, const LabelFilter* filter, std::int64_t rows,
                std::int64_t extra_rows = 0);
    ~PagedSearch();
    PagedSearch(const PagedSearch&) = delete;
    PagedSearch& operator=(const PagedSearch&) = delete;

    // The next list to visit, or -1 when the search is done.
    Label next_list();
    // n entries of that list: codes of Engine::list_code_size() bytes each.
    void scan(std::int64_t n, const std::uint8_t* codes, const Label* labels);
    // The k nearest allowed rows found, as operator distances, nearest
    // first; returns how many. Call once, after next_list() returned -1.
    std::int64_t finish(float* distances, Label* labels, SearchStats* stats);

    // For a search that does not probe adaptively: the lists it visits at
    // least (nprobe, widened for the filter), and the rows that must have
    // been seen before it stops there (min(k, rows)); it goes on, list by
    // list, until both hold. 0 lists for an adaptive or trivial search
    // (nothing to search, a zero cosine query), which only scanning decides.
    std::int64_t planned_lists() const { return planned_lists_; }
    std::int64_t rows_to_fill() const { return k_ < rows_ ? k_ : rows_; }

  private:
    const Engine& engine_;
    std::int64_t k_;
    std::int64_t rows_;
    const LabelFilter* filter_;
    std::vector<float> query_;
    bool trivial_ = false;  // nothing to search, or a zero cosine query
    bool adaptive_ = false;
    std::int64_t planned_lists_ = 0;
    struct Selector;
    std::unique_ptr<Selector> selector_;
    std::unique_ptr<ListProbe> probe_;
};

// A blob in which the coarse centroids of an IVF structure follow the rest
// of it (Engine::serialize_apart) starts with this header. A backend that
// loads such a blob from index pages copies the centroids straight into the
// quantizer (Engine::centroid_storage): one pass over them instead of two
// (into a buffer, then out of it), which is most of a fresh connection's
// first search. Faiss blobs start with a four-letter code, never this magic.
struct CentroidsApartHeader {
    std::uint32_t magic;
    std::uint32_t reserved;
    std::uint64_t structure_bytes;  // the Faiss structure, without its centroids
    std::uint64_t centroid_bytes;   // then the centroids (0: they stayed inside)
};
constexpr std::uint32_t kCentroidsApartMagic = 0x61437a42;  // "BzCa"

class Engine {
  public:
    // Creates an empty, untrained index. Throws Error(kInvalidParameter)
    // naming the problem for a factory string Faiss cannot build or that
    // benzer cannot use (IDMap, binary indexes, ...).
    static Engine* create(const std::string& factory, int dim, Metric metric);

    // Reads an index written by serialize() or serialize_apart().
    static Engine* deserialize(const std::uint8_t* data, std::size_t size, Metric metric);

    // True when data starts with a CentroidsApartHeader (copied to *header)
    // whose sizes add up to size. Throws on a header that does not.
    static bool read_apart_header(const std::uint8_t* data, std::size_t size,
                                  CentroidsApartHeader* header);

    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    int dim() const { return dim_; }
    Metric metric() const { return metric_; }
    std::int64_t size() const;  // rows added so far (labels 0..size()-1)
    bool is_trained() const;

    // The fewest training rows this index accepts (e.g. nlist for IVF, 256
    // for 8-bit PQ); train() throws a clear error below it.
    std::int64_t min_training_rows() const;

    // Trains on n vectors (row-major, dim floats each). For cosine the
    // engine normalises a copy.
    void train(const float* vectors, std::int64_t n);

    // The coarse k-means of training, when it may run elsewhere (the search
    // service's GPU, core/kmeans.h): an untrained IVF over a flat quantizer
    // without a transform. Fills what Faiss's own clustering would use and
    // returns true; false for other structures (train() does it all).
    struct CoarseTraining {
        int nlist = 0;
        int iterations = 0;  // Faiss's for this index (ClusteringParameters)
        bool spherical = false;
        std::int64_t seed = 0;
        std::int64_t points_per_centroid = 0;  // Faiss's sample: nlist * this
    };
    bool coarse_training(CoarseTraining* plan) const;

    // train() with the coarse centroids computed elsewhere (nlist * dim
    // floats, for the rows as train() sees them: cosine rows normalised):
    // they become the quantizer's, and Faiss trains only the rest (PQ or
    // SQ codes on the residuals). Only when coarse_training() is true.
    void train_with_centroids(const float* vectors, std::int64_t n, const float* centroids);

    // Adds n vectors with labels size() .. size()+n-1.
    void add(const float* vectors, std::int64_t n);

    // The k nearest allowed rows to query, nearest first. Writes up to k
    // results and returns how many: fewer than k when the index has no more
    // reachable allowed rows under these options. filter may be null.
    std::int64_t search(const float* query, std::int64_t k, const SearchOptions& options,
                        const LabelFilter* filter, float* distances, Label* labels,
                        SearchStats* stats) const;
    // search() for nq queries in Faiss's batched paths (engine_batch.cpp): row q of
    // distances/labels (nq*k) holds counts[q] results, the rest -1; returns their sum.
    std::int64_t search_batch(std::int64_t nq, const float* queries, std::int64_t k,
                              const SearchOptions& options, const LabelFilter* filter,
                              float* distances, Label* labels, std::int64_t* counts,
                              SearchStats* stats) const;

    // search() for n independent requests (each its own query, k and
    // filter; the same options) on up to threads threads: each request gets
    // exactly what search() alone would give it. A request that fails is
    // marked failed; the others are answered. Searches needing different
    // values of a knob Faiss reads from the object (HNSW efSearch, FastScan
    // nprobe) wait for each other (engine_internal.h). Never throws for a
    // request's failure; the caller must not modify the engine meanwhile.
    void search_each(SearchRequest* requests, std::int64_t n, const SearchOptions& options,
                     int threads) const;

    // search_each() over lanes (search_lane()): request i runs on the lane
    // of the thread that takes it, so searches needing different widths
    // never wait for each other. lanes[0] may be the engine itself.
    static void search_each_on_lanes(const Engine* const* lanes, int nlanes,
                                     SearchRequest* requests, std::int64_t n,
                                     const SearchOptions& options);

    // A second engine over the same rows with search knobs of its own, for
    // concurrent searches: an HNSW structure's graph copied, its rows'
    // storage shared (lane_bytes() more memory, not the rows again). Null
    // for other structures (search_each's gates serve those). The lane
    // must be deleted before this engine, and neither changed meanwhile.
    Engine* search_lane() const;
    std::size_t lane_bytes() const;

    // Measures recall and cost of candidate search settings on rows sampled
    // from the index and fills table (tuning.h). rows: every indexed row by
    // label, in the index's space (cosine: normalised).
    void tune(const TuningRequest& request, const RowSource& rows, TuningTable* table) const;

    // Whether search() can probe this index's IVF lists adaptively.
    bool can_probe() const;

    // The stored rows by label, when has_exact_vectors() (for tune()).
    RowSource exact_rows() const;

    // True when search() with a filter runs it inside Faiss.
    bool filters_inside_faiss() const;

    // True when the exact vector of every row can be read back (Flat, HNSW
    // over flat storage, exact re-ranking): exact scans and lossless
    // compaction are possible.
    bool has_exact_vectors() const;

    // Copies the stored vector of label into out (dim floats). Only when
    // has_exact_vectors(); cosine indexes return the normalised vector.
    void exact_vector(Label label, float* out) const;

    // A copy of this index with the training kept and no rows: compaction
    // re-adds live rows to it without training again.
    Engine* clone_empty() const;

    // Serialisation in Faiss's own format.
    std::size_t serialized_size() const;
    void serialize(std::uint8_t* out, std::size_t size) const;

    // The same, with the coarse centroids of an IVF over a flat quantizer
    // after the rest, behind a CentroidsApartHeader (other structures: the
    // header, then serialize()'s bytes).
    std::size_t serialized_apart_size() const;
    void serialize_apart(std::uint8_t* out, std::size_t size) const;

    // For an engine deserialized from the structure part of such a blob:
    // room for its bytes of centroids inside the quantizer, to be filled by
    // the caller before any other use. Throws when bytes do not match the
    // quantizer or it already holds centroids.
    std::uint8_t* centroid_storage(std::size_t bytes);

    // Approximate bytes this index holds in memory.
    std::size_t memory_bytes() const;

    // A short description of the structure ("IVF245,PQ392x4fs,RFlat: nlist
    // 245, ..."), for benzer_index_info.
    std::string describe() const;

    // Stores default knobs in the index itself (they are serialised with
    // it): IVF nprobe, HNSW efSearch/efConstruction, re-ranking factor.
    // Zero leaves a knob unchanged.
    void set_defaults(int nprobe, int ef_search, int ef_construction, float k_factor);

    // Default search knobs of this index (after create/deserialize).
    int default_nprobe() const;
    int default_ef_search() const;   // 0 when not HNSW
    float default_k_factor() const;  // 0 without exact re-ranking
    int nlist() const;               // 0 when not IVF

    // Paged lists. An index whose lists can live outside the engine (in
    // the pages of a PostgreSQL index) and be searched with PagedSearch:
    // IVF-Flat, IVF-SQ and IVF-PQ, without transforms or re-ranking.
    bool lists_pageable() const;
    // Whether a list entry's code is the stored vector itself (IVF-Flat):
    // exact distances can be computed from the pages (ExactCandidates).
    bool list_codes_are_vectors() const;
    std::size_t list_code_size() const;
    // The entries of one list: codes (list_code_size() bytes each) and
    // their labels, valid until the engine changes.
    std::int64_t list_size(std::int64_t list) const;
    const std::uint8_t* list_codes(std::int64_t list) const;
    const Label* list_labels(std::int64_t list) const;
    // Reloads lists into an engine that holds none (a merge reads the pages
    // back): append every list's entries, then call finish_lists(), which
    // checks that the labels are exactly 0..n-1 and rebuilds the map from
    // label to entry. Throws kInternal on a bad list number or label.
    void append_list(std::int64_t list, std::int64_t n, const std::uint8_t* codes,
                     const Label* labels);
    void finish_lists();
    // The list a new row belongs to, and its code there (list_code_size()
    // bytes into code): what add() would store, for a row that goes
    // straight into a paged list instead (cosine rows are normalised, as
    // add() does). Throws kInternal unless lists_pageable().
    std::int64_t encode_for_list(const float* vector, std::uint8_t* code) const;
    // Gives the rows new labels in list order (list 0's rows first, in
    // their order in the list), so that each list, and each page of it,
    // holds a contiguous range of labels: a filtered search can then skip
    // a page without reading it, and a label's page is computed, not
    // looked up. new_label[old] receives each row's new label (size()
    // entries); the caller permutes whatever it keeps by label the same way.
    void relabel_by_list(Label* new_label);

    // Whether a filtered search should compute exact distances to just the
    // allowed rows rather than probe lists (Engine::search's rule), for an
    // index of rows rows.
    bool prefers_exact_subset(const SearchOptions& options, const LabelFilter& filter,
                              std::int64_t rows) const;

  private:
    friend class PagedSearch;
    friend class ExactCandidates;
    Engine(faiss::Index* index, int dim, Metric metric);
    void analyse();
    std::int64_t search_exact_subset(const float* query, std::int64_t k, const LabelFilter& filter,
                                     float* distances, Label* labels) const;
    std::int64_t search_base(const faiss::Index* index, const float* query, std::int64_t k,
                             const SearchOptions& options, const LabelFilter* filter,
                             float* distances, Label* labels, SearchStats* stats) const;
    float to_operator_distance(float faiss_distance) const;
    std::int64_t search_probed(const float* query, std::int64_t k, const SearchOptions& options,
                               const LabelFilter* filter, float* distances, Label* labels,
                               SearchStats* stats) const;
    std::int64_t rerank_exact(const float* query, const Label* candidates, std::int64_t count,
                              std::int64_t k, float* distances, Label* labels) const;

    faiss::Index* index_;                 // owned
    const faiss::Index* base_ = nullptr;  // index_ or the base of an IndexRefine
    const float* vector_of(Label label) const;

    const faiss::IndexFlat* flat_ = nullptr;         // exact vectors, if the index keeps them
    const faiss::IndexIVFFlat* ivf_flat_ = nullptr;  // or IVF-Flat lists with a direct map
    bool refine_ = false;
    float default_k_factor_ = 1.0f;
    std::int64_t min_training_rows_ = 0;  // from the factory string (0: ask Faiss)
    int dim_;
    Metric metric_;
};

// The factory string benzer picks when the user gives none, for rows rows
// of dim dimensions (see the comment in engine.cpp for the reasoning).
std::string choose_factory(std::int64_t rows, int dim, Metric metric);

// Makes Faiss's long loops (training, adding) call check() and abort with a
// kCanceled error when it returns true. check() may be called from any
// thread, so it must only read a flag.
void set_interrupt_check(bool (*check)());

// The SQL operator's value for two vectors, computed exactly: L2 distance
// (<->), negative inner product (<#>) or cosine distance (<=>, NaN for a
// zero vector), as the scans compute it for pending rows.
double operator_distance(Metric metric, const float* a, const float* b, std::size_t n) noexcept;

// The largest L2 norm a vector in a faiss index (or a query of one) may
// have. Beyond about 1e19 the squared norm overflows single precision, and
// Faiss then assigns the row to no IVF list (its direct map gets -1), drops
// it from searches, or aborts in k-means (Clustering.cpp) and hangs in
// LAPACK (OPQ, PCA); training also sums squared norms over many rows. 1e15
// keeps every such sum finite with a wide margin, and is far beyond any
// real embedding.
constexpr double kMaxIndexableNorm = 1e15;

// The L2 norm of v, computed in double precision (never overflows for
// finite float elements).
double vector_norm(const float* v, std::size_t n) noexcept;

// L2-normalises n vectors of dim floats in place (zero vectors stay zero).
void normalize_vectors(float* vectors, std::int64_t n, int dim);

}  // namespace benzer
