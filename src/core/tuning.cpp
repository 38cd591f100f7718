// tuning.cpp: Engine::tune, measuring candidate search settings (see
// tuning.h for what and why).
//
// The adaptive IVF rule is not measured setting by setting. One probe per
// query and filter mode runs with no stop rule and records, after every
// list, what the rule looks at (rows compared, rows since the top k last
// improved, whether k were found) and the recall so far. Any (min
// candidates, patience) pair then stops at the first recorded point that
// satisfies it, so the whole grid is read off the same traces. A trace ends
// once the top k is exact (nothing can change it after that; the cost of
// stopping later is extrapolated) or at a cap.
#include "tuning.h"
#include "engine.h"
#include "engine_internal.h"
#include "error.h"
#include "ivf_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include <faiss/IndexIVF.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/invlists/InvertedLists.h>

#include "distance.h"

namespace benzer {

using FaissLabel = faiss::Index::idx_t;
using internal::find_hnsw;
using internal::find_ivf;

const TunedSetting* TuningTable::for_target(double wanted) const {
    if (kind == TunedKind::kNone || count <= 0) return nullptr;
    const TunedSetting* best = nullptr;
    for (int i = 0; i < count; i++) {
        const TunedSetting& s = settings[i];
        if (s.recall + 1e-6 >= wanted && (best == nullptr || s.compared < best->compared))
            best = &s;
    }
    if (best != nullptr) return best;
    for (int i = 0; i < count; i++) {
        const TunedSetting& s = settings[i];
        if (best == nullptr || s.recall > best->recall ||
            (s.recall == best->recall && s.compared < best->compared))
            best = &s;
    }
    return best;
}

namespace {

// Filters measured besides none: random rows kept with these
// probabilities, when that leaves enough rows that a search would use the
// index rather than an exact scan of them.
constexpr double kFilterKeeps[] = {0.1, 0.01};
constexpr std::int64_t kMinFilteredRows = 2000;

// Recall targets each index keeps a setting for (besides its own).
constexpr float kTargetLadder[] = {0.8f, 0.9f, 0.95f, 0.98f, 0.99f, 0.995f, 0.999f};

// Rows compared before a trace gives up on reaching the exact top k.
constexpr std::int64_t kTraceCap = 65536;

// One filter mode: none, or a random bitmap.
struct Mode {
    double keep = 1.0;
    std::vector<std::uint8_t> bits;
    LabelFilter filter;
    bool filtered = false;
    bool from_column = false;  // a condition on a filter column, not random rows
};

// A label filter that also leaves out the query's own row.
struct ExcludeSelf : faiss::IDSelector {
    const LabelFilter* filter = nullptr;
    FaissLabel self = -1;
    bool is_member(FaissLabel id) const override {
        return id != self && (filter == nullptr || filter->contains(id));
    }
};

// The exact top k of one query under one mode, without the query's row.
struct Truth {
    std::vector<Label> labels;
    float kth = 0.0f;  // the k-th smallest score (or the last one)
};

// Scores in the tuner's convention: smaller is nearer for every metric.
float score_of(bool inner, const float* q, const float* v, int dim) {
    return inner ? -inner_product(q, v, static_cast<std::size_t>(dim))
                 : l2_squared(q, v, static_cast<std::size_t>(dim));
}

// One point of a probe trace.
struct TracePoint {
    std::int64_t compared;
    std::int64_t rows;
    std::int64_t allowed_lists;
    std::int64_t since;
    bool full;
    float recall;
};

struct Trace {
    std::vector<TracePoint> points;
};

// Recall of candidates (Faiss labels, -1 ignored) after exact re-ranking
// to the best k, against truth. A label counts when it is a true one or
// ties with the k-th true score.
float recall_of(const RowSource& rows, int dim, bool inner, const float* query,
                const FaissLabel* candidates, std::int64_t count, std::int64_t k,
                const Truth& truth) {
    if (truth.labels.empty()) return 1.0f;
    std::vector<std::pair<float, FaissLabel>> scored;
    scored.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < count; i++)
        if (candidates[i] >= 0)
            scored.emplace_back(score_of(inner, query, rows.get(candidates[i], dim), dim),
                                candidates[i]);
    std::int64_t top = std::min<std::int64_t>(k, static_cast<std::int64_t>(scored.size()));
    std::partial_sort(scored.begin(), scored.begin() + top, scored.end());
    float tolerance = 1e-5f * std::fabs(truth.kth) + 1e-6f;
    std::int64_t hits = 0;
    for (std::int64_t i = 0; i < top; i++) {
        const auto& [score, label] = scored[static_cast<std::size_t>(i)];
        bool known =
            std::find(truth.labels.begin(), truth.labels.end(), label) != truth.labels.end();
        if (known || score <= truth.kth + tolerance) hits++;
    }
    return static_cast<float>(std::min<std::int64_t>(hits, truth.labels.size())) /
           static_cast<float>(truth.labels.size());
}

// Records a trace (see the top of the file).
struct TraceObserver : ProbeObserver {
    const RowSource* rows;
    int dim;
    bool inner;
    const float* query;
    std::int64_t k;
    std::int64_t heap_size;
    const Truth* truth;
    Trace* trace;
    float recall = 0.0f;

    bool after_list(const ProbeStats& stats, std::int64_t since, bool full, const float*,
                    const FaissLabel* labels) override {
        if (since == 0 || trace->points.empty())
            recall = recall_of(*rows, dim, inner, query, labels, heap_size, k, *truth);
        trace->points.push_back(
            {stats.compared, stats.rows, stats.allowed_lists, since, full, recall});
        // Once the top k is exact nothing changes but the cost (replay
        // extrapolates it).
        if (full && recall >= 1.0f) return false;
        return stats.compared < kTraceCap;
    }
};

// Where the rule (c, p) stops on a trace: recall and cost (rows compared
// plus rows skipped at the price of a bit test each).
struct Outcome {
    double recall;
    double compared;
    double rows;
};

Outcome replay(const Trace& trace, std::int64_t c, std::int64_t p, std::int64_t allowed_total,
               std::int64_t rows_total) {
    for (const TracePoint& point : trace.points)
        if (point.full && point.compared >= c && point.since >= p)
            return {point.recall, static_cast<double>(point.compared),
                    static_cast<double>(point.rows)};
    if (trace.points.empty()) return {1.0, 0.0, 0.0};
    const TracePoint& last = trace.points.back();
    // Beyond the trace nothing improves: the rule stops once both counts
    // are met (rows and lists grow in proportion, roughly), or when every
    // list was visited.
    double per_list = last.allowed_lists > 0 ? static_cast<double>(last.compared) /
                                                   static_cast<double>(last.allowed_lists)
                                             : 1.0;
    double lists = static_cast<double>(last.allowed_lists - last.since + p);
    double stop = std::max<double>(static_cast<double>(c), lists * per_list);
    stop = std::max<double>(stop, static_cast<double>(last.compared));
    stop = std::min<double>(stop, static_cast<double>(allowed_total));
    double rows = last.compared > 0
                      ? static_cast<double>(last.rows) * stop / static_cast<double>(last.compared)
                      : static_cast<double>(rows_total);
    return {last.recall, stop, std::min<double>(rows, static_cast<double>(rows_total))};
}

// One candidate setting with what it measured.
struct Candidate {
    TunedSetting setting;
    double cost;
};

// Picks, for every target of the ladder (and the index's own), the
// cheapest candidate reaching it, or the one with the highest recall.
void fill_table(const std::vector<Candidate>& candidates, double own_target, TuningTable* table) {
    std::vector<float> targets(std::begin(kTargetLadder), std::end(kTargetLadder));
    if (std::find(targets.begin(), targets.end(), static_cast<float>(own_target)) == targets.end())
        targets.push_back(static_cast<float>(own_target));
    std::sort(targets.begin(), targets.end());
    while (static_cast<int>(targets.size()) > kMaxTunedSettings) targets.erase(targets.begin());
    table->count = 0;
    for (float target : targets) {
        const Candidate* best = nullptr;
        for (const Candidate& c : candidates)
            if (c.setting.recall + 1e-6 >= target && (best == nullptr || c.cost < best->cost))
                best = &c;
        if (best == nullptr)
            for (const Candidate& c : candidates)
                if (best == nullptr || c.setting.recall > best->setting.recall ||
                    (c.setting.recall == best->setting.recall && c.cost < best->cost))
                    best = &c;
        if (best == nullptr) break;
        TunedSetting s = best->setting;
        s.target = target;
        table->settings[table->count++] = s;
    }
}

}  // namespace

void Engine::tune(const TuningRequest& request, const RowSource& rows, TuningTable* table) const {
    auto started = std::chrono::steady_clock::now();
    *table = TuningTable{};
    table->target = static_cast<float>(request.target);
    table->k = request.k;
    std::int64_t total = index_->ntotal;
    if (total <= 1) return;
    const faiss::IndexIVF* ivf = find_ivf(base_);
    bool flat_only = !refine_ && flat_ == index_;
    if (flat_only) {
        table->kind = TunedKind::kExact;
        table->count = 1;
        table->settings[0] = TunedSetting{};
        table->settings[0].target = 1.0f;
        table->settings[0].recall = table->settings[0].recall_unfiltered = 1.0f;
        table->settings[0].compared = static_cast<float>(total);
        return;
    }
    bool adaptive = ivf != nullptr && benzer::can_probe(ivf);
    bool hnsw = find_hnsw(index_) != nullptr;
    if (!adaptive && ivf == nullptr && !hnsw) return;  // nothing to tune (e.g. plain PQ)
    bool inner = metric_ != Metric::kL2;
    std::int64_t k = request.k;

    // Queries: distinct rows, each left out of its own answers.
    std::mt19937_64 rng(request.seed);
    std::int64_t nq = std::min<std::int64_t>(request.queries, total);
    if (!adaptive) nq = std::min<std::int64_t>(nq, 100);  // each setting is a full search
    std::vector<Label> query_labels;
    {
        std::uniform_int_distribution<std::int64_t> pick(0, total - 1);
        while (static_cast<std::int64_t>(query_labels.size()) < nq) {
            Label l = pick(rng);
            if (std::find(query_labels.begin(), query_labels.end(), l) == query_labels.end())
                query_labels.push_back(l);
        }
    }
    std::vector<float> queries(static_cast<std::size_t>(nq * dim_));
    for (std::int64_t i = 0; i < nq; i++)
        std::copy_n(rows.get(query_labels[static_cast<std::size_t>(i)], dim_), dim_,
                    queries.begin() + i * dim_);

    // Filter modes.
    std::vector<Mode> modes(1);
    for (double keep : kFilterKeeps) {
        if (static_cast<double>(total) * keep < kMinFilteredRows) continue;
        Mode mode;
        mode.keep = keep;
        mode.filtered = true;
        mode.bits.assign(static_cast<std::size_t>((total + 7) / 8), 0);
        std::bernoulli_distribution in(keep);
        std::int64_t allowed = 0;
        for (std::int64_t l = 0; l < total; l++)
            if (in(rng)) {
                mode.bits[static_cast<std::size_t>(l >> 3)] |=
                    static_cast<std::uint8_t>(1u << (l & 7));
                allowed++;
            }
        mode.filter.bits = mode.bits.data();
        mode.filter.count = total;
        mode.filter.allowed = allowed;
        modes.push_back(std::move(mode));
    }
    // The caller's filters (the index's filter columns).
    for (std::int32_t i = 0; i < request.filter_count; i++) {
        const LabelFilter& f = request.filters[i];
        if (f.allowed < kMinFilteredRows || f.count > total) continue;
        Mode mode;
        mode.keep = static_cast<double>(f.allowed) / static_cast<double>(total);
        mode.filtered = true;
        mode.from_column = true;
        mode.bits.assign(f.bits, f.bits + (f.count + 7) / 8);
        mode.bits.resize(static_cast<std::size_t>((total + 7) / 8), 0);
        mode.filter.bits = mode.bits.data();
        mode.filter.count = total;
        mode.filter.allowed = f.allowed;
        modes.push_back(std::move(mode));
    }

    // Exact answers: k + 1 per query, the query's own row dropped.
    std::vector<std::vector<Truth>> truths(modes.size());
    {
        std::vector<float> scores(static_cast<std::size_t>(nq * (k + 1)));
        std::vector<Label> labels(static_cast<std::size_t>(nq * (k + 1)));
        std::vector<std::int64_t> counts(static_cast<std::size_t>(nq));
        for (std::size_t m = 0; m < modes.size(); m++) {
            exact_batch_search(
                rows, dim_, inner ? ExactScore::kNegativeInnerProduct : ExactScore::kL2Squared,
                queries.data(), nq, k + 1, modes[m].filtered ? &modes[m].filter : nullptr,
                scores.data(), labels.data(), counts.data());
            truths[m].resize(static_cast<std::size_t>(nq));
            for (std::int64_t q = 0; q < nq; q++) {
                Truth& t = truths[m][static_cast<std::size_t>(q)];
                for (std::int64_t i = 0; i < counts[static_cast<std::size_t>(q)]; i++) {
                    Label l = labels[static_cast<std::size_t>(q * (k + 1) + i)];
                    if (l == query_labels[static_cast<std::size_t>(q)] ||
                        static_cast<std::int64_t>(t.labels.size()) >= k)
                        continue;
                    t.labels.push_back(l);
                    t.kth = scores[static_cast<std::size_t>(q * (k + 1) + i)];
                }
            }
        }
    }

    std::vector<Candidate> candidates;
    table->queries = static_cast<std::int32_t>(nq);
    if (adaptive) {
        table->kind = TunedKind::kAdaptive;
        // The query in the IVF's space (OPQ, PCA, ...).
        const auto* pre = dynamic_cast<const faiss::IndexPreTransform*>(base_);
        std::vector<float> factors =
            refine_ ? std::vector<float>{1, 2, 4, 8} : std::vector<float>{1};
        std::vector<std::int64_t> mins{0};
        for (std::int64_t c = k; c <= 4096 * k; c *= 2) {
            mins.push_back(c);
            mins.push_back(c + c / 2);
        }
        std::vector<std::int64_t> patiences{0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128};
        for (float factor : factors) {
            std::int64_t heap = std::min<std::int64_t>(
                static_cast<std::int64_t>(std::ceil(static_cast<double>(k) * factor)), total);
            // traces[m][q]
            std::vector<std::vector<Trace>> traces(modes.size());
            std::vector<FaissLabel> heap_labels(static_cast<std::size_t>(heap));
            std::vector<float> heap_distances(static_cast<std::size_t>(heap));
            for (std::size_t m = 0; m < modes.size(); m++) {
                traces[m].resize(static_cast<std::size_t>(nq));
                for (std::int64_t q = 0; q < nq; q++) {
                    faiss::InterruptCallback::check();
                    const float* query = queries.data() + q * dim_;
                    const float* ivf_query = query;
                    std::unique_ptr<const float[]> transformed;
                    if (pre != nullptr) {
                        ivf_query = pre->apply_chain(1, query);
                        if (ivf_query != query) transformed.reset(ivf_query);
                    }
                    ExcludeSelf selector;
                    selector.filter = modes[m].filtered ? &modes[m].filter : nullptr;
                    selector.self = query_labels[static_cast<std::size_t>(q)];
                    TraceObserver observer;
                    observer.rows = &rows;
                    observer.dim = dim_;
                    observer.inner = inner;
                    observer.query = query;
                    observer.k = k;
                    observer.heap_size = heap;
                    observer.truth = &truths[m][static_cast<std::size_t>(q)];
                    observer.trace = &traces[m][static_cast<std::size_t>(q)];
                    probe_ivf(ivf, ivf_query, heap, ProbePolicy{}, &selector, heap_distances.data(),
                              heap_labels.data(), nullptr, &observer);
                }
            }
            for (std::int64_t c : mins)
                for (std::int64_t p : patiences) {
                    Candidate candidate{};
                    TunedSetting& s = candidate.setting;
                    s.min_candidates = c;
                    s.patience = p;
                    s.k_factor = refine_ ? factor : 0.0f;
                    s.recall = 1.0f;
                    double cost = 0.0;
                    for (std::size_t m = 0; m < modes.size(); m++) {
                        std::int64_t allowed = modes[m].filtered ? modes[m].filter.allowed : total;
                        double recall = 0.0, compared = 0.0, rows_seen = 0.0;
                        for (const Trace& trace : traces[m]) {
                            Outcome o = replay(trace, c, p, allowed, total);
                            recall += o.recall;
                            compared += o.compared;
                            rows_seen += o.rows;
                        }
                        recall /= static_cast<double>(nq);
                        compared /= static_cast<double>(nq);
                        rows_seen /= static_cast<double>(nq);
                        s.recall = std::min(s.recall, static_cast<float>(recall));
                        if (m == 0) {
                            s.recall_unfiltered = static_cast<float>(recall);
                            s.compared = static_cast<float>(compared);
                        } else if (modes[m].keep == kFilterKeeps[0] && !modes[m].from_column) {
                            s.compared_filtered = static_cast<float>(compared);
                        }
                        cost += compared + rows_seen * 8.0 / dim_;
                    }
                    candidate.cost = cost / static_cast<double>(modes.size()) +
                                     static_cast<double>(refine_ ? heap : 0);
                    candidates.push_back(candidate);
                }
        }
    } else {
        // Whole searches per setting: HNSW efSearch, or a fixed nprobe
        // (FastScan), each with the re-ranking factors when there are any.
        table->kind = hnsw ? TunedKind::kEfSearch : TunedKind::kNprobe;
        std::vector<int> values;
        if (hnsw) {
            values = {16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048};
        } else {
            for (int n = 1; n < static_cast<int>(ivf->nlist); n *= 2) values.push_back(n);
            values.push_back(static_cast<int>(ivf->nlist));
        }
        std::vector<float> factors =
            refine_ ? std::vector<float>{1, 2, 4, 8} : std::vector<float>{0};
        std::vector<float> distances(static_cast<std::size_t>(k + 1));
        std::vector<Label> labels(static_cast<std::size_t>(k + 1));
        double rows_per_list =
            ivf != nullptr ? static_cast<double>(total) / static_cast<double>(ivf->nlist) : 0.0;
        for (float factor : factors)
            for (int value : values) {
                Candidate candidate{};
                TunedSetting& s = candidate.setting;
                s.k_factor = factor;
                (hnsw ? s.ef_search : s.nprobe) = value;
                s.recall = 1.0f;
                SearchOptions options;
                options.nprobe = hnsw ? 0 : value;
                options.ef_search = hnsw ? value : 0;
                options.k_factor = factor;
                for (std::size_t m = 0; m < modes.size(); m++) {
                    double recall = 0.0;
                    for (std::int64_t q = 0; q < nq; q++) {
                        faiss::InterruptCallback::check();
                        const float* query = queries.data() + q * dim_;
                        Label self = query_labels[static_cast<std::size_t>(q)];
                        std::int64_t found;
                        if (modes[m].filtered) {
                            // Leave the query's row out of the filter for
                            // this search.
                            std::uint8_t& byte = modes[m].bits[static_cast<std::size_t>(self >> 3)];
                            std::uint8_t saved = byte;
                            byte &= static_cast<std::uint8_t>(~(1u << (self & 7)));
                            LabelFilter f = modes[m].filter;
                            if (saved != byte) f.allowed--;
                            found = search(query, k, options, &f, distances.data(), labels.data(),
                                           nullptr);
                            byte = saved;
                        } else {
                            found = search(query, k + 1, options, nullptr, distances.data(),
                                           labels.data(), nullptr);
                            auto end = std::remove(labels.begin(), labels.begin() + found, self);
                            found = std::min<std::int64_t>(end - labels.begin(), k);
                        }
                        recall += recall_of(rows, dim_, inner, query, labels.data(), found, k,
                                            truths[m][static_cast<std::size_t>(q)]);
                    }
                    recall /= static_cast<double>(nq);
                    s.recall = std::min(s.recall, static_cast<float>(recall));
                    if (m == 0) s.recall_unfiltered = static_cast<float>(recall);
                }
                double base_cost =
                    hnsw ? value * 16.0 : value * rows_per_list * (refine_ ? 0.25 : 1.0);
                candidate.cost = base_cost + (refine_ ? k * factor : 0.0);
                s.compared = static_cast<float>(candidate.cost);
                candidates.push_back(candidate);
                if (s.recall >= 0.999f) break;  // wider settings only cost more
            }
    }
    fill_table(candidates, request.target, table);
    table->seconds = static_cast<float>(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

}  // namespace benzer
