// engine.cpp: building, searching and serialising Faiss indexes.
//
// Three things here are not obvious from Faiss's documentation:
//
// 1. Faiss 1.7.3 aborts the process (it cannot be caught) on some misuse:
//    IndexRefine::add_with_ids, IndexIVFPQFastScan::remove_ids, labels that
//    are not consecutive in IndexRefine. The engine only ever calls add()
//    (consecutive labels) and never remove_ids(); deletion is a tombstone
//    filter and compaction rebuilds. Factory strings are checked against a
//    list of components benzer has tested before Faiss sees them.
//
// 2. IndexRefine and the FastScan indexes reject SearchParameters (they
//    throw "search params not supported"). The engine therefore never calls
//    IndexRefine::search: it searches the base index itself (with a selector
//    when the base supports one, or with a growing k and its own filtering)
//    and re-ranks the candidates with exact distances computed by benzer's
//    SIMD kernels over the refine index's stored vectors.
//
// 3. Debian's Faiss kernels run at scalar speed. faiss_kernels.cpp swaps in
//    subclasses whose IVF-Flat list scanner and flat distance computer call
//    benzer's kernels; Faiss serialises them as the base classes, so the
//    on-disk format stays Faiss's own.
#include "engine.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <faiss/IVFlib.h>
#include <faiss/IndexFastScan.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPQFastScan.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/VectorTransform.h>
#include <faiss/clone_index.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/DirectMap.h>

#include "distance.h"
#include "engine_internal.h"
#include "error.h"
#include "exact_batch.h"
#include "factory.h"
#include "faiss_kernels.h"
#include "ivf_probe.h"

namespace benzer {

using FaissLabel = faiss::Index::idx_t;

// Vector elements an exact scan of a filter's rows may read at no
// noticeable cost (2^20 floats: about 0.2 ms with benzer's kernels).
constexpr double kCheapExactValues = 1048576.0;

const char* metric_name(Metric metric) {
    switch (metric) {
        case Metric::kL2:
            return "l2";
        case Metric::kInnerProduct:
            return "inner_product";
        case Metric::kCosine:
            return "cosine";
    }
    return "unknown";
}

namespace {

faiss::MetricType faiss_metric(Metric metric) {
    return metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

[[noreturn]] void invalid(const std::string& message) {
    throw Error(ErrorKind::kInvalidParameter, message);
}

// The InterruptCallback Faiss consults in its long loops.
struct InterruptBridge : faiss::InterruptCallback {
    bool (*check)();
    explicit InterruptBridge(bool (*c)()) : check(c) {}
    bool want_interrupt() override { return check != nullptr && check(); }
};

// Squared norms and normalisation for cosine indexes.
void normalize_one(float* v, int dim) {
    double sum = 0.0;
    for (int i = 0; i < dim; i++) sum += static_cast<double>(v[i]) * v[i];
    if (sum > 0.0) {
        double inv = 1.0 / std::sqrt(sum);
        for (int i = 0; i < dim; i++) v[i] = static_cast<float>(v[i] * inv);
    }
}

}  // namespace

namespace internal {

bool is_zero(const float* v, int dim) {
    for (int i = 0; i < dim; i++)
        if (v[i] != 0.0f) return false;
    return true;
}

// The first k allowed labels, in label order, at distance NaN.
std::int64_t first_allowed(std::int64_t total, const LabelFilter* filter, std::int64_t k,
                           float* distances, Label* labels) {
    std::int64_t found = 0;
    for (Label label = 0; label < total && found < k; label++) {
        if (filter != nullptr && !filter->contains(label)) continue;
        distances[found] = std::numeric_limits<float>::quiet_NaN();
        labels[found++] = label;
    }
    return found;
}

faiss::IndexIVF* find_ivf(faiss::Index* index) {
    if (auto* refine = dynamic_cast<faiss::IndexRefine*>(index)) index = refine->base_index;
    return faiss::ivflib::try_extract_index_ivf(index);
}

const faiss::IndexIVF* find_ivf(const faiss::Index* index) {
    return find_ivf(const_cast<faiss::Index*>(index));
}

// The index under an IndexRefine and IndexPreTransform wrappers.
faiss::Index* unwrap(faiss::Index* index) {
    if (auto* refine = dynamic_cast<faiss::IndexRefine*>(index)) index = refine->base_index;
    if (auto* pre = dynamic_cast<faiss::IndexPreTransform*>(index)) index = pre->index;
    return index;
}

faiss::IndexHNSW* find_hnsw(faiss::Index* index) {
    return dynamic_cast<faiss::IndexHNSW*>(unwrap(index));
}

const faiss::IndexHNSW* find_hnsw(const faiss::Index* index) {
    return find_hnsw(const_cast<faiss::Index*>(index));
}

faiss::ProductQuantizer* find_pq(faiss::Index* index) {
    index = unwrap(index);
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index)) index = hnsw->storage;
    if (auto* p = dynamic_cast<faiss::IndexIVFPQ*>(index)) return &p->pq;
    if (auto* p = dynamic_cast<faiss::IndexIVFPQFastScan*>(index)) return &p->pq;
    if (auto* p = dynamic_cast<faiss::IndexPQ*>(index)) return &p->pq;
    if (auto* p = dynamic_cast<faiss::IndexPQFastScan*>(index)) return &p->pq;
    return nullptr;
}

bool supports_selector(const faiss::Index* index) {
    if (dynamic_cast<const faiss::IndexFlat*>(index)) return true;
    if (dynamic_cast<const faiss::IndexHNSW*>(index)) return true;
    if (dynamic_cast<const faiss::IndexIVFFastScan*>(index)) return false;
    if (dynamic_cast<const faiss::IndexIVFFlat*>(index) ||
        dynamic_cast<const faiss::IndexIVFPQ*>(index) ||
        dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(index))
        return true;
    return false;
}

namespace {

// The gates of knob fields (engine_internal.h), by field address.
struct KnobGate {
    int active;         // searches holding the field at current
    long long own;      // the object's own value, restored by the last one out
    long long current;  // the value they hold it at
};
std::mutex g_knob_mutex;
std::condition_variable g_knob_released;
std::unordered_map<const void*, KnobGate> g_knob_gates;

template <typename T>
void enter_gate(T* field, T value) {
    std::unique_lock<std::mutex> lock(g_knob_mutex);
    for (;;) {
        auto it = g_knob_gates.find(field);
        if (it == g_knob_gates.end()) {
            g_knob_gates[field] = {1, static_cast<long long>(*field),
                                   static_cast<long long>(value)};
            *field = value;
            return;
        }
        if (it->second.current == static_cast<long long>(value)) {
            it->second.active++;
            return;
        }
        g_knob_released.wait(lock);
    }
}

template <typename T>
void leave_gate(T* field) {
    std::lock_guard<std::mutex> lock(g_knob_mutex);
    auto it = g_knob_gates.find(field);
    if (it == g_knob_gates.end()) return;
    if (--it->second.active > 0) return;
    *field = static_cast<T>(it->second.own);
    g_knob_gates.erase(it);
    g_knob_released.notify_all();
}

template <typename T>
T own_value(const T* field) {
    std::lock_guard<std::mutex> lock(g_knob_mutex);
    auto it = g_knob_gates.find(field);
    return it == g_knob_gates.end() ? *field : static_cast<T>(it->second.own);
}

}  // namespace

void knob_enter(int* field, int value) { enter_gate(field, value); }
void knob_enter(std::size_t* field, std::size_t value) { enter_gate(field, value); }
void knob_leave(int* field) { leave_gate(field); }
void knob_leave(std::size_t* field) { leave_gate(field); }
int knob_own_value(const int* field) { return own_value(field); }
std::size_t knob_own_value(const std::size_t* field) { return own_value(field); }

SearchSetup::SearchSetup(const faiss::Index* index, std::int64_t k, const SearchOptions& options,
                         const LabelFilter* filter, SearchStats* stats)
    : selector_(filter) {
    std::int64_t total = index->ntotal;
    const faiss::IndexIVF* ivf = find_ivf(index);
    hnsw_ = dynamic_cast<const faiss::IndexHNSW*>(index);
    use_selector = filter != nullptr && supports_selector(index);
    filter_here = filter != nullptr && !use_selector;
    if (filter != nullptr && filter->allowed < total && total > 0)
        keep = std::max(static_cast<double>(filter->allowed) / static_cast<double>(total), 1e-6);
    if (ivf != nullptr) {
        int nprobe =
            options.nprobe > 0 ? options.nprobe : static_cast<int>(knob_own_value(&ivf->nprobe));
        nprobe = static_cast<int>(
            std::min<double>(std::ceil(nprobe / keep), static_cast<double>(ivf->nlist)));
        covers_all = static_cast<size_t>(nprobe) >= ivf->nlist;
        stats->nprobe = std::max(stats->nprobe, nprobe);
        ivf_params_.nprobe = static_cast<size_t>(nprobe);
        if (supports_selector(index)) {
            ivf_params_.sel = use_selector ? &selector_ : nullptr;
            params = &ivf_params_;
        } else {
            nprobe_override_.set(const_cast<faiss::IndexIVF*>(ivf), static_cast<size_t>(nprobe));
        }
    }
    if (const faiss::IndexHNSW* graph = find_hnsw(index)) {
        int ef = options.ef_search > 0 ? options.ef_search : knob_own_value(&graph->hnsw.efSearch);
        std::int64_t rows = filter != nullptr ? std::min(filter->allowed, total) : total;
        exhaustive = ef >= rows;
    }
    if (hnsw_ != nullptr) {
        int ef = options.ef_search > 0 ? options.ef_search : knob_own_value(&hnsw_->hnsw.efSearch);
        ef = static_cast<int>(std::min<double>(std::ceil(ef / keep), std::max(ef, 2048)));
        hnsw_params_.efSearch = ef;
        hnsw_params_.sel = use_selector ? &selector_ : nullptr;
        params = &hnsw_params_;
        widen(k);
    }
    if (use_selector && params == nullptr) {
        flat_params_.sel = &selector_;
        params = &flat_params_;
    }
    stats->selector_used = stats->selector_used || use_selector;
}

void SearchSetup::widen(std::int64_t want) {
    if (hnsw_ == nullptr) return;
    hnsw_params_.efSearch = std::max<int>(hnsw_params_.efSearch, static_cast<int>(want));
    // Faiss 1.7.3 sizes its candidate queue from the index's own efSearch
    // and only stops by the parameter's, so the stored value is raised too.
    ef_override_.set(const_cast<faiss::IndexHNSW*>(hnsw_), hnsw_params_.efSearch);
}

namespace {

// Distances from one query to rows by label, in Faiss's space for index
// (squared L2, or inner product where larger is better), from the best
// source there is: the caller's exact rows, a graph's storage, or vectors
// Faiss reconstructs from its codes (in blocks, to bound memory).
class RowDistances {
  public:
    RowDistances(const faiss::Index* index, const float* exact_rows, const float* query)
        : index_(index), exact_(exact_rows), query_(query), dim_(static_cast<int>(index->d)) {
        ip_ = index->metric_type == faiss::METRIC_INNER_PRODUCT;
        if (exact_ != nullptr) return;
        if (const faiss::IndexHNSW* hnsw = find_hnsw(index)) {
            const float* q = query;
            if (auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
                q = pre->apply_chain(1, query);
                if (q != query) transformed_.reset(q);
            }
            dc_.reset(hnsw->storage->get_distance_computer());
            dc_->set_query(q);
            ip_ = hnsw->storage->metric_type == faiss::METRIC_INNER_PRODUCT;
        }
    }

    bool larger_is_better() const { return ip_; }

    float operator()(Label label) {
        if (dc_ != nullptr) return (*dc_)(label);
        const float* v;
        if (exact_ != nullptr) {
            v = exact_ + label * dim_;
        } else {
            // Reconstruction, a block of labels at a time (IVF indexes
            // reconstruct by scanning every list).
            std::int64_t block = std::max<std::int64_t>(1, (std::int64_t(64) << 20) / (4 * dim_));
            if (label < first_ || label >= first_ + loaded_) {
                first_ = label - label % block;
                loaded_ = std::min(block, index_->ntotal - first_);
                rows_.resize(static_cast<size_t>(loaded_) * dim_);
                index_->reconstruct_n(first_, loaded_, rows_.data());
            }
            v = rows_.data() + (label - first_) * dim_;
        }
        size_t d = static_cast<size_t>(dim_);
        return ip_ ? inner_product(query_, v, d) : l2_squared(query_, v, d);
    }

  private:
    const faiss::Index* index_;
    const float* exact_;
    const float* query_;
    int dim_;
    bool ip_ = false;
    std::unique_ptr<const float[]> transformed_;
    std::unique_ptr<faiss::DistanceComputer> dc_;
    std::vector<float> rows_;
    std::int64_t first_ = 0;
    std::int64_t loaded_ = 0;
};

}  // namespace

std::int64_t complete_search(const faiss::Index* index, const float* exact_rows, const float* query,
                             std::int64_t k, const LabelFilter* filter, float* distances,
                             Label* labels, std::int64_t found) {
    std::int64_t total = index->ntotal;
    if (found >= k || found >= total) return found;
    RowDistances distance_of(index, exact_rows, query);
    bool larger_is_better = distance_of.larger_is_better();
    std::vector<bool> have(static_cast<size_t>(total), false);
    for (std::int64_t i = 0; i < found; i++)
        if (labels[i] >= 0 && labels[i] < total) have[static_cast<size_t>(labels[i])] = true;
    // "Badness" (smaller is better) of the k - found best missing rows.
    using Entry = std::pair<float, Label>;
    std::priority_queue<Entry> heap;
    std::int64_t want = k - found;
    for (Label label = 0; label < total; label++) {
        if (have[static_cast<size_t>(label)]) continue;
        if (filter != nullptr && !filter->contains(label)) continue;
        if ((label & 65535) == 65535) faiss::InterruptCallback::check();
        float d = distance_of(label);
        float badness = larger_is_better ? -d : d;
        if (std::isnan(badness)) badness = std::numeric_limits<float>::infinity();
        if (static_cast<std::int64_t>(heap.size()) < want) {
            heap.emplace(badness, label);
        } else if (badness < heap.top().first) {
            heap.pop();
            heap.emplace(badness, label);
        }
    }
    std::int64_t extra = static_cast<std::int64_t>(heap.size());
    std::vector<Entry> more(static_cast<size_t>(extra));
    for (std::int64_t i = extra - 1; i >= 0; i--) {
        more[static_cast<size_t>(i)] = heap.top();
        heap.pop();
    }
    // Merge both lists in distance order (Faiss's results first on ties).
    std::vector<Entry> merged;
    merged.reserve(static_cast<size_t>(found + extra));
    std::int64_t a = 0, b = 0;
    while (a < found || b < extra) {
        float da = a < found ? (larger_is_better ? -distances[a] : distances[a]) : 0.0f;
        if (a < found && (b >= extra || !(more[static_cast<size_t>(b)].first < da))) {
            merged.emplace_back(da, labels[a]);
            a++;
        } else {
            merged.push_back(more[static_cast<size_t>(b)]);
            b++;
        }
    }
    for (size_t i = 0; i < merged.size(); i++) {
        distances[i] = larger_is_better ? -merged[i].first : merged[i].first;
        labels[i] = merged[i].second;
    }
    return found + extra;
}

}  // namespace internal

using namespace internal;

Engine::Engine(faiss::Index* index, int dim, Metric metric)
    : index_(index), dim_(dim), metric_(metric) {
    analyse();
}

Engine::~Engine() { delete index_; }

// Finds the parts of the structure the search path needs.
void Engine::analyse() {
    index_ = install_fast_kernels(index_);
    // Faiss 1.7.3's default FastScan search (implem 0 picks a reservoir for
    // k > 20) can hit assert(n_eq == 0) in utils/partitioning.cpp and
    // abort() the server. The heap-based implementation 10 does not. The
    // setting is not serialised, so it is applied on every load.
    if (auto* fastscan = dynamic_cast<faiss::IndexIVFFastScan*>(find_ivf(index_)))
        fastscan->implem = 10;
    // IndexPQFastScan has the same trap (its implementations 12-15 use the
    // reservoir for k > 20); implementation 2 keeps a heap.
    if (auto* fastscan = dynamic_cast<faiss::IndexFastScan*>(unwrap(index_))) fastscan->implem = 2;
    base_ = index_;
    flat_ = nullptr;
    ivf_flat_ = nullptr;
    if (auto* ivf = dynamic_cast<const faiss::IndexIVFFlat*>(index_))
        if (ivf->direct_map.type == faiss::DirectMap::Array) ivf_flat_ = ivf;
    refine_ = false;
    if (auto* refine = dynamic_cast<faiss::IndexRefine*>(index_)) {
        refine_ = true;
        base_ = refine->base_index;
        flat_ = dynamic_cast<const faiss::IndexFlat*>(refine->refine_index);
        default_k_factor_ = refine->k_factor > 1.0f ? refine->k_factor : 4.0f;
    } else if (auto* flat = dynamic_cast<const faiss::IndexFlat*>(index_)) {
        flat_ = flat;
    } else if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index_)) {
        flat_ = dynamic_cast<const faiss::IndexFlat*>(hnsw->storage);
    }
}

Engine* Engine::create(const std::string& factory, int dim, Metric metric) {
    if (dim < 1) invalid("the dimension must be positive");
    // Only strings benzer's own grammar accepts reach Faiss (factory.h).
    FactorySpec spec = parse_factory(factory, dim);
    faiss::Index* index = nullptr;
    try {
        index = faiss::index_factory(dim, spec.canonical.c_str(), faiss_metric(metric));
    } catch (const faiss::FaissException& e) {
        invalid("Faiss cannot build \"" + factory + "\" for " + std::to_string(dim) +
                " dimensions: " + e.msg);
    }
    if (index == nullptr) invalid("Faiss cannot build \"" + factory + "\"");
    // Faiss's defaults favour speed over recall (nprobe 1, efSearch 16,
    // k_factor 1); benzer's aim for recall@10 >= 0.95 (bench/README.md).
    if (auto* refine = dynamic_cast<faiss::IndexRefine*>(index)) {
        if (refine->k_factor <= 1.0f) refine->k_factor = 4.0f;
    }
    if (faiss::IndexIVF* ivf = find_ivf(index)) {
        ivf->nprobe = std::max<size_t>(1, ivf->nlist / 16);
        // IVF-Flat keeps exact vectors; a direct map (8 bytes a row) lets
        // benzer read them back by label for exact filtered scans and for
        // compaction.
        if (dynamic_cast<faiss::IndexIVFFlat*>(ivf) != nullptr)
            ivf->set_direct_map_type(faiss::DirectMap::Array);
    }
    if (faiss::IndexHNSW* hnsw = find_hnsw(index)) hnsw->hnsw.efSearch = 64;
    // Each PQ sub-quantizer is a k-means of 2^nbits centroids in a few
    // dimensions; Faiss samples 256 points per centroid, which made PQ
    // training most of the build time. 64 per centroid trains 4x faster
    // with no measurable loss of recall after exact re-ranking.
    // min_points_per_centroid only decides when Faiss prints "WARNING
    // clustering ..." to the server's stderr; benzer checks the row count
    // itself (min_training_rows), so the warning is turned off.
    if (faiss::ProductQuantizer* pq = find_pq(index)) {
        pq->cp.max_points_per_centroid = 64;
        pq->cp.min_points_per_centroid = 1;
    }
    if (faiss::IndexIVF* ivf = find_ivf(index)) ivf->cp.min_points_per_centroid = 1;
    // Polysemous training takes minutes and cannot be cancelled; benzer
    // never searches in polysemous mode, so "PQ8" means "PQ8np".
    faiss::Index* structure = unwrap(index);
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(structure)) structure = hnsw->storage;
    if (auto* pq = dynamic_cast<faiss::IndexPQ*>(structure)) pq->do_polysemous_training = false;
    if (auto* ivfpq = dynamic_cast<faiss::IndexIVFPQ*>(structure))
        ivfpq->do_polysemous_training = false;
    auto* engine = new Engine(index, dim, metric);
    engine->min_training_rows_ = spec.min_training_rows;
    return engine;
}

namespace {

// Reads from a caller-owned buffer without copying it (a loaded index can
// be hundreds of megabytes).
struct BufferReader : faiss::IOReader {
    const std::uint8_t* data;
    std::size_t size;
    std::size_t position = 0;
    BufferReader(const std::uint8_t* d, std::size_t s) : data(d), size(s) {}
    size_t operator()(void* ptr, size_t item_size, size_t nitems) override {
        if (item_size == 0 || nitems == 0) return 0;
        std::size_t available = (size - position) / item_size;
        std::size_t n = std::min(nitems, available);
        if (n == 0) return 0;
        std::memcpy(ptr, data + position, n * item_size);
        position += n * item_size;
        return n;
    }
};

}  // namespace

Engine* Engine::deserialize(const std::uint8_t* data, std::size_t size, Metric metric) {
    CentroidsApartHeader header;
    if (read_apart_header(data, size, &header)) {
        const std::uint8_t* structure = data + sizeof(header);
        std::unique_ptr<Engine> engine(
            deserialize(structure, static_cast<std::size_t>(header.structure_bytes), metric));
        if (header.centroid_bytes > 0)
            std::memcpy(engine->centroid_storage(static_cast<std::size_t>(header.centroid_bytes)),
                        structure + header.structure_bytes,
                        static_cast<std::size_t>(header.centroid_bytes));
        return engine.release();
    }
    BufferReader reader(data, size);
    faiss::Index* index = faiss::read_index(&reader);
    return new Engine(index, static_cast<int>(index->d), metric);
}

bool Engine::read_apart_header(const std::uint8_t* data, std::size_t size,
                               CentroidsApartHeader* header) {
    if (size < sizeof(CentroidsApartHeader)) return false;
    std::memcpy(header, data, sizeof(CentroidsApartHeader));
    if (header->magic != kCentroidsApartMagic) return false;
    std::uint64_t rest = size - sizeof(CentroidsApartHeader);
    if (header->structure_bytes > rest || header->centroid_bytes != rest - header->structure_bytes)
        throw Error(ErrorKind::kDataException, "the index's centroid header is inconsistent");
    return true;
}

std::int64_t Engine::size() const { return index_->ntotal; }

bool Engine::is_trained() const { return index_->is_trained; }

std::int64_t Engine::min_training_rows() const {
    std::int64_t need = std::max<std::int64_t>(1, min_training_rows_);
    if (const faiss::IndexIVF* ivf = find_ivf(index_))
        need = std::max<std::int64_t>(need, static_cast<std::int64_t>(ivf->nlist));
    // A product quantizer trains 2^nbits centroids per sub-space.
    const faiss::ProductQuantizer* pq = find_pq(index_);
    if (pq != nullptr) need = std::max<std::int64_t>(need, std::int64_t(1) << pq->nbits);
    return need;
}

namespace {

// OPQ trains a product quantizer of its own, with Faiss's default
// clustering settings (which print "WARNING clustering" lines to the
// server's stderr). For the duration of a training this lends each OPQ
// matrix one with benzer's settings; the matrix does not own it.
struct OpqTrainingQuantizers {
    std::vector<std::pair<faiss::OPQMatrix*, std::unique_ptr<faiss::ProductQuantizer>>> lent;

    explicit OpqTrainingQuantizers(faiss::Index* index) {
        if (auto* refine = dynamic_cast<faiss::IndexRefine*>(index)) index = refine->base_index;
        auto* pre = dynamic_cast<faiss::IndexPreTransform*>(index);
        if (pre == nullptr) return;
        for (faiss::VectorTransform* t : pre->chain) {
            auto* opq = dynamic_cast<faiss::OPQMatrix*>(t);
            if (opq == nullptr || opq->pq != nullptr) continue;
            auto pq = std::make_unique<faiss::ProductQuantizer>(opq->d_out, opq->M, 8);
            pq->cp.min_points_per_centroid = 1;
            pq->cp.max_points_per_centroid = 64;
            opq->pq = pq.get();
            lent.emplace_back(opq, std::move(pq));
        }
    }
    ~OpqTrainingQuantizers() {
        for (auto& entry : lent) entry.first->pq = nullptr;
    }
};

}  // namespace

void Engine::train(const float* vectors, std::int64_t n) {
    OpqTrainingQuantizers opq(index_);
    if (index_->is_trained) return;
    std::int64_t need = min_training_rows();
    if (n < need)
        throw Error(ErrorKind::kInvalidParameter,
                    "this index needs at least " + std::to_string(need) +
                        " rows to train, but only " + std::to_string(n) +
                        " are available (use fewer IVF lists or PQ bits, or a Flat index)");
    if (metric_ == Metric::kCosine) {
        std::vector<float> copy(vectors, vectors + n * dim_);
        normalize_vectors(copy.data(), n, dim_);
        index_->train(n, copy.data());
    } else {
        index_->train(n, vectors);
    }
}

bool Engine::coarse_training(CoarseTraining* plan) const {
    auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index_);
    if (ivf == nullptr || index_->is_trained || ivf->quantizer == nullptr ||
        dynamic_cast<const faiss::IndexFlat*>(ivf->quantizer) == nullptr ||
        ivf->quantizer->ntotal != 0 || ivf->quantizer_trains_alone != 0 ||
        ivf->clustering_index != nullptr)
        return false;
    plan->nlist = static_cast<int>(ivf->nlist);
    plan->iterations = ivf->cp.niter;
    plan->spherical = ivf->cp.spherical || ivf->metric_type == faiss::METRIC_INNER_PRODUCT;
    plan->seed = ivf->cp.seed;
    plan->points_per_centroid = ivf->cp.max_points_per_centroid;
    return true;
}

void Engine::train_with_centroids(const float* vectors, std::int64_t n, const float* centroids) {
    CoarseTraining plan;
    if (!coarse_training(&plan))
        throw Error(ErrorKind::kInternal, "this index does not take coarse centroids");
    auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_);
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(plan.nlist) * dim_; i++)
        if (!std::isfinite(centroids[i]))
            throw Error(ErrorKind::kInternal, "coarse centroids are not finite");
    ivf->quantizer->add(plan.nlist, centroids);
    // Faiss skips its own clustering for a quantizer that holds nlist
    // centroids already, and trains the rest.
    train(vectors, n);
}

void Engine::add(const float* vectors, std::int64_t n) {
    if (n == 0) return;
    if (!index_->is_trained)
        throw Error(ErrorKind::kInternal, "cannot add rows to an untrained index");
    if (metric_ == Metric::kCosine) {
        std::vector<float> copy(vectors, vectors + n * dim_);
        normalize_vectors(copy.data(), n, dim_);
        index_->add(n, copy.data());
    } else {
        index_->add(n, vectors);
    }
}

bool Engine::filters_inside_faiss() const { return supports_selector(base_); }

bool Engine::has_exact_vectors() const { return flat_ != nullptr || ivf_flat_ != nullptr; }

// The stored vector of a label (exact-vector indexes only).
const float* Engine::vector_of(Label label) const {
    if (flat_ != nullptr) return flat_->get_xb() + label * dim_;
    faiss::Index::idx_t entry = ivf_flat_->direct_map.get(label);
    return reinterpret_cast<const float*>(
        ivf_flat_->invlists->get_single_code(faiss::lo_listno(entry), faiss::lo_offset(entry)));
}

void Engine::exact_vector(Label label, float* out) const {
    if (!has_exact_vectors() || label < 0 || label >= index_->ntotal)
        throw Error(ErrorKind::kInternal, "no exact vector for label " + std::to_string(label));
    std::memcpy(out, vector_of(label), sizeof(float) * dim_);
}

float Engine::to_operator_distance(float d) const {
    switch (metric_) {
        case Metric::kL2:
            return std::sqrt(std::max(d, 0.0f));
        case Metric::kInnerProduct:
            return -d;
        case Metric::kCosine:
            return 1.0f - d;
    }
    return d;
}

// Exact distances to the allowed labels only: for small filters this beats
// any index (and is exact).
std::int64_t Engine::search_exact_subset(const float* query, std::int64_t k,
                                         const LabelFilter& filter, float* distances,
                                         Label* labels) const {
    using Entry = std::pair<float, Label>;  // max-heap on faiss-space "badness"
    std::priority_queue<Entry> heap;
    for (std::int64_t byte = 0; byte * 8 < filter.count; byte++) {
        std::uint8_t bits = filter.bits[byte];
        while (bits != 0) {
            int bit = __builtin_ctz(bits);
            bits &= static_cast<std::uint8_t>(bits - 1);
            Label label = byte * 8 + bit;
            if (label >= index_->ntotal || label >= filter.count) continue;
            const float* v = vector_of(label);
            // Smaller is better in this "badness" space for every metric.
            float badness = metric_ == Metric::kL2 ? l2_squared(query, v, dim_)
                                                   : -inner_product(query, v, dim_);
            if (static_cast<std::int64_t>(heap.size()) < k) {
                heap.emplace(badness, label);
            } else if (badness < heap.top().first ||
                       (badness == heap.top().first && label < heap.top().second)) {
                heap.pop();
                heap.emplace(badness, label);
            }
        }
    }
    std::int64_t found = static_cast<std::int64_t>(heap.size());
    for (std::int64_t i = found - 1; i >= 0; i--) {
        float badness = heap.top().first;
        labels[i] = heap.top().second;
        distances[i] = to_operator_distance(metric_ == Metric::kL2 ? badness : -badness);
        heap.pop();
    }
    return found;
}

// Searches one Faiss index (never an IndexRefine) for the k best allowed
// labels, in Faiss's distance space. Applies the filter inside Faiss when
// it can, otherwise asks for more and more results and filters them here.
std::int64_t Engine::search_base(const faiss::Index* index, const float* query, std::int64_t k,
                                 const SearchOptions& options, const LabelFilter* filter,
                                 float* distances, Label* labels, SearchStats* stats) const {
    // The base of an exact re-ranking index keeps the exact vectors beside
    // it: completions use those.
    const float* exact_rows =
        refine_ && index == base_ && flat_ != nullptr ? flat_->get_xb() : nullptr;
    std::int64_t total = index->ntotal;
    if (total == 0 || k <= 0) return 0;
    SearchSetup setup(index, k, options, filter, stats);
    if (setup.exhaustive) {
        stats->rounds++;
        stats->candidates += filter != nullptr ? filter->allowed : total;
        return complete_search(index, nullptr, query, k, filter, distances, labels, 0);
    }
    bool filter_here = setup.filter_here;
    // Filtering here, expect to discard (1 - allowed/total) of the results.
    std::int64_t want = k;
    if (filter_here && filter->allowed > 0)
        want = static_cast<std::int64_t>(std::ceil(static_cast<double>(k) / setup.keep));
    std::vector<float> d;
    std::vector<FaissLabel> l;
    for (;;) {
        want = std::min(want, total);
        d.assign(static_cast<size_t>(want), 0.0f);
        l.assign(static_cast<size_t>(want), -1);
        setup.widen(want);
        index->search(1, query, want, d.data(), l.data(), setup.params);
        stats->rounds++;
        std::int64_t returned = 0;
        std::int64_t found = 0;
        for (std::int64_t i = 0; i < want; i++) {
            if (l[i] < 0) break;
            returned++;
            if (filter_here && !filter->contains(l[i])) continue;
            if (found < k) {
                distances[found] = d[i];
                labels[found] = l[i];
                found++;
            }
        }
        stats->candidates += returned;
        // Done when we have k, when Faiss ran out of reachable rows, or when
        // we already asked for everything. A search that covered the whole
        // index yet came back short (a graph's unreachable rows, FastScan's
        // lost ties) is completed from every allowed row's distance.
        if (found >= k || returned < want || want >= total) {
            if (setup.covers_all)
                found =
                    complete_search(index, exact_rows, query, k, filter, distances, labels, found);
            return found;
        }
        want *= 2;
    }
}

std::int64_t Engine::search(const float* query_in, std::int64_t k, const SearchOptions& options,
                            const LabelFilter* filter, float* distances, Label* labels,
                            SearchStats* stats) const {
    SearchStats local;
    if (stats == nullptr) stats = &local;
    if (k <= 0 || index_->ntotal == 0) return 0;
    if (filter != nullptr && filter->allowed == 0) return 0;

    std::vector<float> query(query_in, query_in + dim_);
    if (metric_ == Metric::kCosine) {
        // A zero query has no direction: every cosine distance is NaN, as
        // the <=> operator says, so any order is right. (Faiss's quantised
        // searches return nothing at all for it.)
        if (is_zero(query.data(), dim_))
            return first_allowed(index_->ntotal, filter, k, distances, labels);
        normalize_one(query.data(), dim_);
    }

    // Small filters: exact distances to just the allowed rows.
    if (filter != nullptr && has_exact_vectors() &&
        prefers_exact_subset(options, *filter, index_->ntotal)) {
        stats->exact_scan = true;
        stats->candidates += filter->allowed;
        return search_exact_subset(query.data(), k, *filter, distances, labels);
    }

    // A plain Flat index: benzer's own scan is exact and faster than Faiss's
    // scalar one for a single query.
    if (!refine_ && flat_ == index_) {
        LabelFilter all;
        std::vector<std::uint8_t> everything;
        if (filter == nullptr) {
            everything.assign(static_cast<size_t>((index_->ntotal + 7) / 8), 0xff);
            all.bits = everything.data();
            all.count = index_->ntotal;
            all.allowed = index_->ntotal;
            filter = &all;
        }
        stats->exact_scan = true;
        stats->candidates += filter->allowed;
        return search_exact_subset(query.data(), k, *filter, distances, labels);
    }

    if (options.adaptive && options.nprobe == 0 && can_probe())
        return search_probed(query.data(), k, options, filter, distances, labels, stats);

    if (!refine_) {
        std::int64_t found =
            search_base(index_, query.data(), k, options, filter, distances, labels, stats);
        for (std::int64_t i = 0; i < found; i++) distances[i] = to_operator_distance(distances[i]);
        return found;
    }

    // Exact re-ranking: k * k_factor candidates from the base, exact
    // distances from the stored vectors, best k.
    float factor = options.k_factor > 0.0f ? options.k_factor : default_k_factor_;
    factor = std::max(factor, 1.0f);
    std::int64_t kb = static_cast<std::int64_t>(std::ceil(static_cast<double>(k) * factor));
    kb = std::min<std::int64_t>(kb, index_->ntotal);
    std::vector<float> cd(static_cast<size_t>(kb));
    std::vector<Label> cl(static_cast<size_t>(kb));
    std::int64_t candidates =
        search_base(base_, query.data(), kb, options, filter, cd.data(), cl.data(), stats);
    return rerank_exact(query.data(), cl.data(), candidates, k, distances, labels);
}

// The best k of count candidates by exact distance to the stored vectors
// (exact re-ranking), as operator distances.
std::int64_t Engine::rerank_exact(const float* query, const Label* candidates, std::int64_t count,
                                  std::int64_t k, float* distances, Label* labels) const {
    std::vector<std::pair<float, Label>> exact(static_cast<size_t>(count));
    for (std::int64_t i = 0; i < count; i++) {
        const float* v = vector_of(candidates[i]);
        float badness =
            metric_ == Metric::kL2 ? l2_squared(query, v, dim_) : -inner_product(query, v, dim_);
        exact[i] = {badness, candidates[i]};
    }
    std::int64_t found = std::min(k, count);
    std::partial_sort(exact.begin(), exact.begin() + found, exact.end());
    for (std::int64_t i = 0; i < found; i++) {
        labels[i] = exact[i].second;
        float faiss_space = metric_ == Metric::kL2 ? exact[i].first : -exact[i].first;
        distances[i] = to_operator_distance(faiss_space);
    }
    return found;
}

// ("Small": few rows, and a real restriction. The scan's own filter of rows
// not yet returned allows almost everything and must not count.) For IVF
// the choice is also by cost: a filtered IVF search computes distances to
// about rows * nprobe / nlist allowed rows whatever the filter (nprobe grows
// as the filter narrows), so exact distances to all allowed rows pay only
// when there are at most about twice as many.
bool Engine::prefers_exact_subset(const SearchOptions& options, const LabelFilter& filter,
                                  std::int64_t rows) const {
    if (options.exact_filter_limit <= 0 || filter.allowed > options.exact_filter_limit ||
        !(static_cast<double>(filter.allowed) < 0.6 * static_cast<double>(rows)))
        return false;
    const faiss::IndexIVF* ivf = find_ivf(index_);
    if (ivf == nullptr) return true;
    bool probed = options.adaptive && options.nprobe == 0 && can_probe();
    double ivf_work;
    if (probed && options.expected_compared > 0.0) {
        // A probe compares about as many allowed rows whatever the filter,
        // and skips the others at the price of a bit test (about 8 / dim of
        // a distance).
        double keep = std::max(static_cast<double>(filter.allowed) /
                                   static_cast<double>(std::max<std::int64_t>(rows, 1)),
                               1e-6);
        ivf_work = options.expected_compared * (1.0 + 8.0 / (keep * dim_));
        // The tuner measured random filters. A filter that keeps whole
        // clusters far from the query makes a probe visit many lists; where
        // exact distances cost next to nothing (about 0.2 ms), they are the
        // safer answer.
        ivf_work = std::max(ivf_work, kCheapExactValues / dim_);
    } else {
        int nprobe =
            options.nprobe > 0 ? options.nprobe : static_cast<int>(knob_own_value(&ivf->nprobe));
        ivf_work = 2.0 * static_cast<double>(rows) * nprobe /
                   static_cast<double>(std::max<size_t>(ivf->nlist, 1));
    }
    return static_cast<double>(filter.allowed) <= ivf_work;
}

bool Engine::can_probe() const { return benzer::can_probe(find_ivf(base_)); }

RowSource Engine::exact_rows() const {
    RowSource rows;
    rows.count = index_->ntotal;
    if (flat_ != nullptr) {
        rows.contiguous = flat_->get_xb();
    } else if (ivf_flat_ != nullptr) {
        rows.context = this;
        rows.row = [](const void* context, Label label) {
            return static_cast<const Engine*>(context)->vector_of(label);
        };
    } else {
        throw Error(ErrorKind::kInternal, "this index keeps no exact vectors");
    }
    return rows;
}

// IVF lists probed nearest first under the stop rule in options
// (ivf_probe.h), with exact re-ranking when the index keeps exact vectors
// beside a lossy base. query is normalised already (cosine).
std::int64_t Engine::search_probed(const float* query, std::int64_t k, const SearchOptions& options,
                                   const LabelFilter* filter, float* distances, Label* labels,
                                   SearchStats* stats) const {
    const faiss::IndexIVF* ivf = find_ivf(base_);
    // OPQ, PCA, ... map the query into the IVF's space.
    const float* q = query;
    std::unique_ptr<const float[]> transformed;
    if (auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(base_)) {
        q = pre->apply_chain(1, query);
        if (q != query) transformed.reset(q);
    }
    std::int64_t kb = k;
    if (refine_) {
        float factor = options.k_factor > 0.0f ? options.k_factor : default_k_factor_;
        kb = static_cast<std::int64_t>(std::ceil(static_cast<double>(k) * std::max(factor, 1.0f)));
    }
    kb = std::min<std::int64_t>(kb, index_->ntotal);
    std::vector<float> d(static_cast<size_t>(kb));
    std::vector<FaissLabel> l(static_cast<size_t>(kb));
    FilterSelector selector(filter);
    ProbePolicy policy;
    policy.min_candidates = options.min_candidates;
    policy.patience = options.patience;
    ProbeStats probe;
    std::int64_t found = probe_ivf(ivf, q, kb, policy, filter != nullptr ? &selector : nullptr,
                                   d.data(), l.data(), &probe);
    stats->rounds++;
    stats->adaptive = true;
    stats->selector_used = stats->selector_used || filter != nullptr;
    stats->candidates += found;
    stats->lists += probe.lists;
    stats->compared += probe.compared;
    stats->nprobe = std::max(stats->nprobe, static_cast<int>(probe.lists));
    if (refine_) return rerank_exact(query, l.data(), found, k, distances, labels);
    for (std::int64_t i = 0; i < found; i++) {
        labels[i] = l[static_cast<size_t>(i)];
        distances[i] = to_operator_distance(d[static_cast<size_t>(i)]);
    }
    return found;
}

Engine* Engine::clone_empty() const {
    // A round trip through Faiss's own serialisation, not faiss::clone_index:
    // in 1.7.3 clone_index turns an IndexHNSWFlat into a plain IndexHNSW,
    // which write_index then refuses ("h != 0"), so compaction of HNSW
    // indexes failed.
    std::size_t size = serialized_size();
    std::vector<std::uint8_t> bytes(size);
    serialize(bytes.data(), size);
    std::unique_ptr<Engine> copy(deserialize(bytes.data(), size, metric_));
    bytes.clear();
    bytes.shrink_to_fit();
    copy->index_->reset();
    copy->analyse();
    return copy.release();
}

namespace {

// Counts bytes without storing them (first pass of serialize).
struct CountingWriter : faiss::IOWriter {
    std::size_t bytes = 0;
    size_t operator()(const void*, size_t size, size_t nitems) override {
        bytes += size * nitems;
        return nitems;
    }
};

// Writes into a caller-provided buffer (so the PostgreSQL side can palloc
// it before any C++ code runs).
struct BufferWriter : faiss::IOWriter {
    std::uint8_t* out;
    std::size_t capacity;
    std::size_t used = 0;
    BufferWriter(std::uint8_t* o, std::size_t c) : out(o), capacity(c) {}
    size_t operator()(const void* ptr, size_t size, size_t nitems) override {
        std::size_t bytes = size * nitems;
        if (bytes == 0) return nitems;  // ptr may be null (an empty vector)
        if (used + bytes > capacity)
            throw Error(ErrorKind::kInternal, "serialised index larger than computed");
        std::memcpy(out + used, ptr, bytes);
        used += bytes;
        return nitems;
    }
};

}  // namespace

std::size_t Engine::serialized_size() const {
    CountingWriter counter;
    faiss::write_index(index_, &counter);
    return counter.bytes;
}

void Engine::serialize(std::uint8_t* out, std::size_t size) const {
    BufferWriter writer(out, size);
    faiss::write_index(index_, &writer);
    if (writer.used != size)
        throw Error(ErrorKind::kInternal, "serialised index smaller than computed");
}

namespace {

// The flat coarse quantizer whose centroids serialize_apart() keeps apart:
// only that of a bare IVF-Flat or IVF-SQ structure (no transform, no
// refinement). IVF-PQ computes tables from the centroids while it is read,
// so it keeps them inside. Null for any other structure.
faiss::IndexFlat* apart_quantizer(faiss::Index* index) {
    auto* ivf = dynamic_cast<faiss::IndexIVF*>(index);
    if (ivf == nullptr) return nullptr;
    if (dynamic_cast<faiss::IndexIVFFlat*>(ivf) == nullptr &&
        dynamic_cast<faiss::IndexIVFScalarQuantizer*>(ivf) == nullptr)
        return nullptr;
    auto* flat = dynamic_cast<faiss::IndexFlat*>(ivf->quantizer);
    if (flat == nullptr || flat->d != ivf->d) return nullptr;
    return flat;
}

// Asks the kernel for transparent huge pages over the 2 MB-aligned part of
// a fresh allocation, before anything touches it. A new connection's first
// search fills megabytes of coarse centroids, and on virtual machines a 4 kB
// page fault (allocate, clear, account) costs microseconds: one 2 MB fault
// replaces 512 of them. Where THP is off or unsupported this does nothing.
void advise_huge_pages(void* start, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::uintptr_t kHuge = std::uintptr_t(2) << 20;
    auto from = (reinterpret_cast<std::uintptr_t>(start) + kHuge - 1) & ~(kHuge - 1);
    auto to = (reinterpret_cast<std::uintptr_t>(start) + bytes) & ~(kHuge - 1);
    if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
#else
    (void)start;
    (void)bytes;
#endif
}

// Empties a quantizer's storage while the structure around it is written,
// and puts it back afterwards, also when writing throws.
struct CentroidsSetAside {
    faiss::IndexFlat* quantizer;
    std::vector<std::uint8_t> codes;
    faiss::Index::idx_t ntotal = 0;
    explicit CentroidsSetAside(faiss::IndexFlat* q) : quantizer(q) {
        if (quantizer == nullptr) return;
        codes.swap(quantizer->codes);
        ntotal = quantizer->ntotal;
        quantizer->ntotal = 0;
    }
    ~CentroidsSetAside() {
        if (quantizer == nullptr) return;
        codes.swap(quantizer->codes);
        quantizer->ntotal = ntotal;
    }
};

}  // namespace

std::size_t Engine::serialized_apart_size() const {
    // The quantizer is put back before this returns; the engine is not
    // searched meanwhile (one thread owns it).
    CentroidsSetAside aside(apart_quantizer(index_));
    CountingWriter counter;
    faiss::write_index(index_, &counter);
    return sizeof(CentroidsApartHeader) + counter.bytes + aside.codes.size();
}

void Engine::serialize_apart(std::uint8_t* out, std::size_t size) const {
    CentroidsSetAside aside(apart_quantizer(index_));
    if (size < sizeof(CentroidsApartHeader))
        throw Error(ErrorKind::kInternal, "serialised index smaller than computed");
    BufferWriter writer(out + sizeof(CentroidsApartHeader), size - sizeof(CentroidsApartHeader));
    faiss::write_index(index_, &writer);
    CentroidsApartHeader header = {kCentroidsApartMagic, 0, writer.used, aside.codes.size()};
    if (sizeof(header) + writer.used + aside.codes.size() != size)
        throw Error(ErrorKind::kInternal, "serialised index smaller than computed");
    std::memcpy(out, &header, sizeof(header));
    if (!aside.codes.empty())
        std::memcpy(out + sizeof(header) + writer.used, aside.codes.data(), aside.codes.size());
}

std::uint8_t* Engine::centroid_storage(std::size_t bytes) {
    faiss::IndexFlat* quantizer = apart_quantizer(index_);
    auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_);
    std::size_t row_bytes = sizeof(float) * static_cast<std::size_t>(dim_);
    if (quantizer == nullptr || quantizer->ntotal != 0 ||
        bytes != row_bytes * static_cast<std::size_t>(ivf->nlist) ||
        static_cast<int>(quantizer->d) != dim_)
        throw Error(ErrorKind::kDataException, "the index's centroids do not fit its structure");
    quantizer->codes.reserve(bytes);
    advise_huge_pages(quantizer->codes.data(), bytes);
    quantizer->codes.resize(bytes);
    quantizer->ntotal = static_cast<faiss::Index::idx_t>(ivf->nlist);
    return quantizer->codes.data();
}

std::size_t Engine::memory_bytes() const { return serialized_size(); }

void Engine::set_defaults(int nprobe, int ef_search, int ef_construction, float k_factor) {
    if (faiss::IndexIVF* ivf = find_ivf(index_)) {
        if (nprobe > 0) ivf->nprobe = static_cast<size_t>(std::min<long>(nprobe, ivf->nlist));
    }
    if (faiss::IndexHNSW* hnsw = find_hnsw(index_)) {
        if (ef_search > 0) hnsw->hnsw.efSearch = ef_search;
        if (ef_construction > 0) hnsw->hnsw.efConstruction = ef_construction;
    }
    if (auto* refine = dynamic_cast<faiss::IndexRefine*>(index_)) {
        if (k_factor > 0.0f) refine->k_factor = std::max(k_factor, 1.0f);
        default_k_factor_ = refine->k_factor;
    }
}

int Engine::default_nprobe() const {
    const faiss::IndexIVF* ivf = find_ivf(index_);
    return ivf ? static_cast<int>(knob_own_value(&ivf->nprobe)) : 0;
}

int Engine::default_ef_search() const {
    const faiss::IndexHNSW* hnsw = find_hnsw(index_);
    return hnsw ? knob_own_value(&hnsw->hnsw.efSearch) : 0;
}

float Engine::default_k_factor() const { return refine_ ? default_k_factor_ : 0.0f; }

int Engine::nlist() const {
    const faiss::IndexIVF* ivf = find_ivf(index_);
    return ivf ? static_cast<int>(ivf->nlist) : 0;
}

std::string Engine::describe() const {
    std::ostringstream out;
    out << "rows " << index_->ntotal;
    if (const faiss::IndexIVF* ivf = find_ivf(index_))
        out << ", nlist " << ivf->nlist << ", nprobe " << ivf->nprobe;
    if (const faiss::IndexHNSW* hnsw = find_hnsw(index_))
        out << ", efSearch " << hnsw->hnsw.efSearch << ", efConstruction "
            << hnsw->hnsw.efConstruction;
    if (refine_) out << ", exact re-ranking x" << default_k_factor_;
    out << (filters_inside_faiss() ? ", filters inside Faiss" : ", filters applied by benzer");
    return out.str();
}

// Default index choice, following the seed's tuning notes where they hold
// on this Faiss build, and measurements where they do not (bench/README.md):
//  - up to 10 000 rows: Flat. Exact, no training; benzer's SIMD scan over
//    10 000 x 784 floats takes about a millisecond.
//  - up to 500 000 rows: IVF with nlist = 4 * sqrt(rows) (the low end of
//    the seed's 4..16 * sqrt(N): fewer, larger lists keep recall high at a
//    small nprobe) over flat lists, scanned by benzer's SIMD kernels. The
//    seed suggests 4-bit PQ FastScan with exact re-ranking (RFlat), but
//    RFlat keeps every raw vector in each backend, and Debian's generic
//    Faiss runs PQ and FastScan kernels at scalar speed: IVF-Flat was 3-4x
//    faster at equal recall on Fashion-MNIST.
//  - beyond: IVF over 8-bit scalar-quantised codes, with lists in pages and
//    candidates re-ranked by the table's vectors (src/pg/faiss_rerank.h).
//    Measured (bench/results/compressed_codes.md): at 500 000 x 256 it
//    matched IVF-Flat's queries per second and recall (1.000) with a
//    quarter of the index (147 against 574 MB); at 60 000 x 784 it was
//    two thirds as fast (re-ranking reads toasted vectors), so smaller
//    tables keep IVF-Flat.
std::string choose_factory(std::int64_t rows, int dim, Metric /*metric*/) {
    (void)dim;
    if (rows <= 10000) return "Flat";
    int nlist = static_cast<int>(4.0 * std::sqrt(static_cast<double>(rows)));
    nlist = std::max(nlist, 16);
    std::ostringstream out;
    out << "IVF" << nlist << (rows <= 500000 ? ",Flat" : ",SQ8");
    return out.str();
}

void set_interrupt_check(bool (*check)()) {
    faiss::InterruptCallback::instance.reset(check ? new InterruptBridge(check) : nullptr);
}

double operator_distance(Metric metric, const float* a, const float* b, std::size_t n) noexcept {
    switch (metric) {
        case Metric::kL2:
            return std::sqrt(static_cast<double>(l2_squared(a, b, n)));
        case Metric::kInnerProduct:
            return -static_cast<double>(inner_product(a, b, n));
        case Metric::kCosine:
            return cosine_distance(a, b, n);
    }
    return 0.0;
}

double vector_norm(const float* v, std::size_t n) noexcept {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; i++) sum += static_cast<double>(v[i]) * v[i];
    return std::sqrt(sum);
}

void normalize_vectors(float* vectors, std::int64_t n, int dim) {
    for (std::int64_t i = 0; i < n; i++) normalize_one(vectors + i * dim, dim);
}

}  // namespace benzer
