// engine_test.cpp: benzer::Engine (one Faiss index) on small random data:
// build + search for several factory strings and every metric against brute
// force, label filters (inside Faiss and applied by benzer), the exact
// filtered scan, serialisation, clone_empty, exact vectors, default knobs,
// choose_factory, error handling and the fast-kernel switch.
//
// Only built with Faiss (engine.cpp is part of the core only then).
#if defined(BENZER_HAVE_FAISS)

#include "core/engine.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/faiss_kernels.h"

namespace {

using benzer::Engine;
using benzer::Error;
using benzer::ErrorKind;
using benzer::Label;
using benzer::LabelFilter;
using benzer::Metric;
using benzer::SearchOptions;
using benzer::SearchStats;

// Faiss parallelises training, adding and searching with OpenMP. On this
// small data, with two cores, libgomp's spinning waits (and OpenBLAS's
// OpenMP threads on top) made these tests 5-10x slower than one thread, and
// ctest runs two at once. Every test here runs with one thread (restored
// afterwards, so other test files are unaffected); one thread also makes
// HNSW graphs deterministic.
template <typename Base>
class OneThread : public Base {
  protected:
    void SetUp() override {
        saved_threads_ = omp_get_max_threads();
        omp_set_num_threads(1);
    }
    void TearDown() override { omp_set_num_threads(saved_threads_); }

  private:
    int saved_threads_ = 1;
};

constexpr int kDim = 16;
constexpr std::int64_t kRows = 2000;
constexpr int kQueries = 30;
constexpr std::int64_t kK = 10;

// 8-bit PQ training dominates the run time; where only the structure
// matters those indexes train on fewer rows. (FastScan trains fast, and
// trained on few rows it hits the Faiss abort of EngineFastScan.WideSearchDoesNotAbort.)
std::int64_t train_rows_for(const std::string& factory) {
    return factory.find("np") != std::string::npos ? 300 : kRows;
}

// The metrics a test covers: all three, but fewer for the 8-bit PQ
// indexes (their training is slow, under ASan above all); kCosine covers
// the inner-product path as well.
std::vector<Metric> metrics_for(const std::string& factory) {
    if (factory.find("np") != std::string::npos) return {Metric::kL2, Metric::kCosine};
    return {Metric::kL2, Metric::kInnerProduct, Metric::kCosine};
}

// Clustered Gaussian data (32 centres), like real embeddings more than
// uniform noise is, so that IVF and PQ have structure to find.
std::vector<float> random_vectors(std::int64_t n, int dim, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::mt19937 centre_rng(12345);  // the same centres for data and queries
    std::vector<float> centres(32 * static_cast<std::size_t>(dim));
    for (float& c : centres) c = 2.0f * normal(centre_rng);
    std::vector<float> v(static_cast<std::size_t>(n * dim));
    for (std::int64_t i = 0; i < n; i++) {
        std::size_t c = rng() % 32;
        for (int j = 0; j < dim; j++)
            v[static_cast<std::size_t>(i * dim + j)] =
                centres[c * static_cast<std::size_t>(dim) + static_cast<std::size_t>(j)] +
                normal(rng);
    }
    return v;
}

const std::vector<float>& data() {
    static const std::vector<float> d = random_vectors(kRows, kDim, 1);
    return d;
}

const std::vector<float>& queries() {
    static const std::vector<float> q = random_vectors(kQueries, kDim, 2);
    return q;
}

const float* row(const std::vector<float>& v, std::int64_t i) { return v.data() + i * kDim; }

double dot(const float* a, const float* b, int dim) {
    double s = 0.0;
    for (int i = 0; i < dim; i++) s += static_cast<double>(a[i]) * b[i];
    return s;
}

// The SQL operator's value, in double precision.
double op_distance(Metric metric, const float* q, const float* x, int dim) {
    switch (metric) {
        case Metric::kL2: {
            double s = 0.0;
            for (int i = 0; i < dim; i++) {
                double d = static_cast<double>(q[i]) - x[i];
                s += d * d;
            }
            return std::sqrt(s);
        }
        case Metric::kInnerProduct:
            return -dot(q, x, dim);
        case Metric::kCosine: {
            double nq = std::sqrt(dot(q, q, dim)), nx = std::sqrt(dot(x, x, dim));
            return 1.0 - dot(q, x, dim) / (nq * nx);
        }
    }
    return 0.0;
}

// Float rounding allowance for a distance computed in single precision:
// about 10x (dim * 2^-24 * the size of the terms).
double float_tolerance(Metric metric, const float* q, const float* x, int dim) {
    double scale = metric == Metric::kCosine ? 2.0 : dot(q, q, dim) + dot(x, x, dim);
    return 1e-5 * scale * std::max(1.0, dim / 16.0) + 1e-6;
}

struct Hit {
    double distance;
    Label label;
    bool operator<(const Hit& o) const {
        return distance < o.distance || (distance == o.distance && label < o.label);
    }
};

// Brute force over the allowed labels.
std::vector<Hit> brute_force(Metric metric, const std::vector<float>& base, std::int64_t n,
                             const float* q, std::int64_t k, const LabelFilter* filter) {
    std::vector<Hit> hits;
    for (std::int64_t i = 0; i < n; i++)
        if (filter == nullptr || filter->contains(i))
            hits.push_back({op_distance(metric, q, row(base, i), kDim), i});
    std::int64_t m = std::min<std::int64_t>(k, static_cast<std::int64_t>(hits.size()));
    std::partial_sort(hits.begin(), hits.begin() + m, hits.end());
    hits.resize(static_cast<std::size_t>(m));
    return hits;
}

struct Result {
    std::vector<float> distances;
    std::vector<Label> labels;
    SearchStats stats;
};

Result search(const Engine& engine, const float* q, std::int64_t k, const SearchOptions& options,
              const LabelFilter* filter = nullptr) {
    Result r;
    r.distances.assign(static_cast<std::size_t>(k), -12345.0f);
    r.labels.assign(static_cast<std::size_t>(k), -12345);
    std::int64_t found =
        engine.search(q, k, options, filter, r.distances.data(), r.labels.data(), &r.stats);
    EXPECT_GE(found, 0);
    EXPECT_LE(found, k);
    r.distances.resize(static_cast<std::size_t>(std::max<std::int64_t>(found, 0)));
    r.labels.resize(static_cast<std::size_t>(std::max<std::int64_t>(found, 0)));
    return r;
}

std::unique_ptr<Engine> make(const std::string& factory, Metric metric) {
    return std::unique_ptr<Engine>(Engine::create(factory, kDim, metric));
}

// Trains on the first train_rows rows (fewer where only the structure
// matters: 8-bit PQ training dominates the run time), adds all.
std::unique_ptr<Engine> build(const std::string& factory, Metric metric,
                              std::int64_t train_rows = kRows) {
    auto engine = make(factory, metric);
    engine->train(data().data(), train_rows);
    engine->add(data().data(), kRows);
    return engine;
}

// Options that visit every IVF list.
SearchOptions full_probe(const Engine& engine) {
    SearchOptions o;
    o.nprobe = engine.nlist();
    return o;
}

const char* metric_label(Metric m) {
    switch (m) {
        case Metric::kL2:
            return "L2";
        case Metric::kInnerProduct:
            return "InnerProduct";
        case Metric::kCosine:
            return "Cosine";
    }
    return "?";
}

std::string param_name(const std::string& factory) {
    std::string s;
    for (char c : factory) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return s;
}

// A random bitmap over labels 0..count-1 keeping about fraction of them.
struct Bitmap {
    std::vector<std::uint8_t> bits;
    LabelFilter filter;
    Bitmap(std::int64_t count, double fraction, std::uint32_t seed) {
        std::mt19937 rng(seed);
        std::bernoulli_distribution keep(fraction);
        bits.assign(static_cast<std::size_t>((count + 7) / 8), 0);
        std::int64_t allowed = 0;
        for (std::int64_t i = 0; i < count; i++)
            if (keep(rng)) {
                bits[static_cast<std::size_t>(i >> 3)] |= static_cast<std::uint8_t>(1u << (i & 7));
                allowed++;
            }
        filter = {bits.data(), count, allowed};
    }
    explicit Bitmap(const std::vector<Label>& labels, std::int64_t count) {
        bits.assign(static_cast<std::size_t>((count + 7) / 8), 0);
        for (Label l : labels)
            bits[static_cast<std::size_t>(l >> 3)] |= static_cast<std::uint8_t>(1u << (l & 7));
        filter = {bits.data(), count, static_cast<std::int64_t>(labels.size())};
    }
};

// For SQ8: per-dimension value ranges of what the index stores (normalised
// for cosine). The IVF encodes residuals, whose range per dimension is at
// most twice that, and 8-bit codes are off by at most half a step of
// range/255: each coordinate is off by at most range/255.
double sq8_error_bound(Metric metric) {
    std::vector<float> v = data();
    if (metric == Metric::kCosine) benzer::normalize_vectors(v.data(), kRows, kDim);
    double sum = 0.0;
    for (int j = 0; j < kDim; j++) {
        float lo = v[static_cast<std::size_t>(j)], hi = lo;
        for (std::int64_t i = 0; i < kRows; i++) {
            lo = std::min(lo, v[static_cast<std::size_t>(i * kDim + j)]);
            hi = std::max(hi, v[static_cast<std::size_t>(i * kDim + j)]);
        }
        double step = (static_cast<double>(hi) - lo) / 255.0;
        sum += step * step;
    }
    return 1.5 * std::sqrt(sum);
}

class EngineTest : public OneThread<::testing::Test> {};
class EngineHnsw : public OneThread<::testing::Test> {};
class EngineSerialize : public OneThread<::testing::Test> {};
class EngineFastScan : public OneThread<::testing::Test> {};

// ---------------------------------------------------------------------------
// Search against brute force, for every factory and metric.

struct FactoryMetric {
    std::string factory;
    Metric metric;
    bool exact_distances;  // distances are the exact operator values
};

void PrintTo(const FactoryMetric& p, std::ostream* os) {
    *os << '"' << p.factory << "\" " << metric_label(p.metric);
}

class EngineSearch : public OneThread<::testing::TestWithParam<FactoryMetric>> {};

TEST_P(EngineSearch, MatchesBruteForce) {
    const FactoryMetric& p = GetParam();
    auto engine = make(p.factory, p.metric);
    EXPECT_EQ(engine->dim(), kDim);
    EXPECT_EQ(engine->metric(), p.metric);
    EXPECT_EQ(engine->size(), 0);
    engine->train(data().data(), kRows);
    EXPECT_TRUE(engine->is_trained());
    engine->add(data().data(), kRows / 2);
    engine->add(data().data() + kRows / 2 * kDim, kRows - kRows / 2);  // labels go on
    EXPECT_EQ(engine->size(), kRows);

    double sq8_bound = sq8_error_bound(p.metric);
    SearchOptions options = full_probe(*engine);
    double recall = 0.0;
    for (int qi = 0; qi < kQueries; qi++) {
        const float* q = row(queries(), qi);
        Result r = search(*engine, q, kK, options);
        ASSERT_EQ(static_cast<std::int64_t>(r.labels.size()), kK) << "query " << qi;
        std::set<Label> seen;
        for (std::size_t i = 0; i < r.labels.size(); i++) {
            Label l = r.labels[i];
            ASSERT_GE(l, 0);
            ASSERT_LT(l, kRows);
            EXPECT_TRUE(seen.insert(l).second) << "label " << l << " returned twice";
            if (i > 0) {
                EXPECT_LE(r.distances[i - 1], r.distances[i]) << "query " << qi;
            }
            const float* x = row(data(), l);
            double want = op_distance(p.metric, q, x, kDim);
            double tol = float_tolerance(p.metric, q, x, kDim);
            if (!p.exact_distances) {
                // Quantised vectors: the distance is off by at most the
                // quantisation error's effect.
                double nq = std::sqrt(dot(q, q, kDim));
                tol += p.metric == Metric::kInnerProduct ? nq * sq8_bound : sq8_bound;
            }
            if (p.metric == Metric::kL2 && p.exact_distances) {
                // Compare squares: float rounding is relative to them.
                EXPECT_NEAR(static_cast<double>(r.distances[i]) * r.distances[i], want * want, tol)
                    << "query " << qi << " label " << l;
            } else {
                EXPECT_NEAR(r.distances[i], want, tol) << "query " << qi << " label " << l;
            }
        }
        std::vector<Hit> truth = brute_force(p.metric, data(), kRows, q, kK, nullptr);
        int hits = 0;
        for (const Hit& h : truth) hits += seen.count(h.label) ? 1 : 0;
        recall += hits / static_cast<double>(kK);
    }
    recall /= kQueries;
    EXPECT_GE(recall, 0.9) << p.factory << " " << metric_label(p.metric);
    RecordProperty("recall_at_10", std::to_string(recall));

    // Asking for more rows than there are.
    Result all = search(*engine, row(queries(), 0), kRows + 5, options);
    if (p.factory == "Flat" || p.factory == "IVF16,Flat")
        EXPECT_EQ(static_cast<std::int64_t>(all.labels.size()), kRows);
    else
        EXPECT_GT(all.labels.size(), 0u);
    std::set<Label> distinct(all.labels.begin(), all.labels.end());
    EXPECT_EQ(distinct.size(), all.labels.size());
}

std::vector<FactoryMetric> search_params() {
    std::vector<FactoryMetric> out;
    for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
        out.push_back({"Flat", m, true});
        out.push_back({"IVF16,Flat", m, true});
        out.push_back({"HNSW16", m, true});
        out.push_back({"IVF16,PQ4np,RFlat", m, true});
        out.push_back({"IVF8,SQ8", m, false});
    }
    return out;
}

std::string factory_metric_name(const ::testing::TestParamInfo<FactoryMetric>& info) {
    return param_name(info.param.factory) + "_" + metric_label(info.param.metric);
}

INSTANTIATE_TEST_SUITE_P(Factories, EngineSearch, ::testing::ValuesIn(search_params()),
                         factory_metric_name);

// ---------------------------------------------------------------------------
// Label filters: nothing outside the filter, ever.

struct FilterCase {
    std::string factory;
    bool inside_faiss;  // the selector is applied by Faiss
    bool complete;      // at nprobe = nlist every allowed row is reachable
    bool exact;         // results are the exact top k of the allowed rows
};

void PrintTo(const FilterCase& p, std::ostream* os) { *os << '"' << p.factory << '"'; }

class EngineFilter : public OneThread<::testing::TestWithParam<FilterCase>> {};

TEST_P(EngineFilter, RestrictsResults) {
    const FilterCase& p = GetParam();
    // (The filter logic does not depend on the metric; cosine adds the
    // normalised path. 8-bit PQ: L2 only, for time.)
    std::vector<Metric> metrics{Metric::kL2, Metric::kCosine};
    if (p.factory.find("np") != std::string::npos) metrics = {Metric::kL2};
    for (Metric metric : metrics) {
        SCOPED_TRACE(metric_label(metric));
        auto engine = build(p.factory, metric, train_rows_for(p.factory));
        EXPECT_EQ(engine->filters_inside_faiss(), p.inside_faiss);
        SearchOptions options = full_probe(*engine);

        // Fractions of the rows, a single row, and a bitmap shorter than the
        // index (labels at or past count are not allowed).
        std::vector<Bitmap> bitmaps;
        bitmaps.emplace_back(kRows, 0.5, 11);
        bitmaps.emplace_back(kRows, 0.1, 12);
        bitmaps.emplace_back(kRows, 0.01, 13);
        bitmaps.emplace_back(std::vector<Label>{1234}, kRows);
        bitmaps.emplace_back(std::vector<Label>{0, 7, 8, 1999}, kRows);
        bitmaps.emplace_back(kRows / 2 + 3, 0.3, 14);
        for (std::size_t b = 0; b < bitmaps.size(); b++) {
            const LabelFilter& filter = bitmaps[b].filter;
            for (int qi = 0; qi < 10; qi++) {
                SCOPED_TRACE("bitmap " + std::to_string(b) + " query " + std::to_string(qi));
                const float* q = row(queries(), qi);
                Result r = search(*engine, q, kK, options, &filter);
                for (Label l : r.labels) ASSERT_TRUE(filter.contains(l)) << "label " << l;
                std::set<Label> distinct(r.labels.begin(), r.labels.end());
                EXPECT_EQ(distinct.size(), r.labels.size());
                for (std::size_t i = 1; i < r.distances.size(); i++)
                    EXPECT_LE(r.distances[i - 1], r.distances[i]);
                if (p.factory == "Flat")
                    EXPECT_TRUE(r.stats.exact_scan);  // benzer's own scan, not Faiss
                else
                    EXPECT_EQ(r.stats.selector_used, p.inside_faiss);
                std::int64_t want = std::min(kK, filter.allowed);
                if (p.complete) {
                    EXPECT_EQ(static_cast<std::int64_t>(r.labels.size()), want);
                } else if (filter.allowed >= 100) {
                    // (HNSW, very few allowed rows: EngineHnsw.RestrictiveFilter...)
                    EXPECT_GT(r.labels.size(), 0u);
                }
                if (p.exact) {
                    std::vector<Hit> truth = brute_force(metric, data(), kRows, q, kK, &filter);
                    ASSERT_EQ(r.labels.size(), truth.size());
                    for (std::size_t i = 0; i < truth.size(); i++) {
                        EXPECT_EQ(r.labels[i], truth[i].label) << "rank " << i;
                        EXPECT_NEAR(r.distances[i], truth[i].distance, 1e-3);
                    }
                }
            }
        }
        // An empty filter finds nothing.
        Bitmap none(std::vector<Label>{}, kRows);
        EXPECT_EQ(search(*engine, row(queries(), 0), kK, options, &none.filter).labels.size(), 0u);
    }
}

INSTANTIATE_TEST_SUITE_P(Factories, EngineFilter,
                         ::testing::Values(FilterCase{"Flat", true, true, true},
                                           FilterCase{"IVF16,Flat", true, true, true},
                                           FilterCase{"HNSW16", true, false, false},
                                           FilterCase{"IVF16,PQ4np", true, true, false},
                                           FilterCase{"IVF8,SQ8", true, true, false},
                                           FilterCase{"IVF16,PQ4np,RFlat", true, true, false},
                                           // FastScan: Faiss rejects a selector; benzer filters.
                                           FilterCase{"IVF16,PQ4x4fs", false, true, false},
                                           FilterCase{"IVF16,PQ4x4fs,RFlat", false, true, false}),
                         [](const ::testing::TestParamInfo<FilterCase>& info) {
                             return param_name(info.param.factory);
                         });

// ---------------------------------------------------------------------------
// HNSW's search width. SearchOptions::ef_search, and the wider efSearch the
// engine asks for under a restrictive filter, must act like the index's
// stored efSearch. (Faiss 1.7.3's HNSW::search sizes its candidate queue
// from the index's own efSearch and reads SearchParametersHNSW::efSearch
// only in its stopping rule, so a larger value passed per search is lost.)

TEST_F(EngineHnsw, EfSearchOptionActsLikeStoredEfSearch) {
    // A sparse graph (M = 4) and a small stored efSearch, where the width
    // matters.
    auto narrow = build("HNSW4", Metric::kL2);
    narrow->set_defaults(0, 10, 0, 0.0f);
    std::vector<std::uint8_t> bytes(narrow->serialized_size());
    narrow->serialize(bytes.data(), bytes.size());
    // The same graph with efSearch 400 stored.
    std::unique_ptr<Engine> wide(Engine::deserialize(bytes.data(), bytes.size(), Metric::kL2));
    wide->set_defaults(0, 400, 0, 0.0f);
    SearchOptions ef400;
    ef400.ef_search = 400;
    int same = 0;
    double recall_option = 0.0, recall_stored = 0.0;
    for (int qi = 0; qi < kQueries; qi++) {
        const float* q = row(queries(), qi);
        Result a = search(*narrow, q, kK, ef400);
        Result b = search(*wide, q, kK, SearchOptions{});
        same += a.labels == b.labels ? 1 : 0;
        std::vector<Hit> truth = brute_force(Metric::kL2, data(), kRows, q, kK, nullptr);
        for (const Hit& h : truth) {
            recall_option += std::count(a.labels.begin(), a.labels.end(), h.label);
            recall_stored += std::count(b.labels.begin(), b.labels.end(), h.label);
        }
    }
    EXPECT_EQ(same, kQueries) << "recall@10 with options.ef_search 400 over a stored efSearch "
                                 "of 10: "
                              << recall_option / (kQueries * kK)
                              << "; with efSearch 400 stored: " << recall_stored / (kQueries * kK);
}

TEST_F(EngineHnsw, RestrictiveFilterFindsAllowedRows) {
    // With one allowed row in 1%, the engine widens efSearch to 2048, more
    // than the index has rows: every allowed row is within reach.
    auto engine = build("HNSW16", Metric::kL2);
    Bitmap one(std::vector<Label>{1234}, kRows);
    Bitmap few(kRows, 0.01, 13);
    int found_one = 0;
    double recall = 0.0;
    for (int qi = 0; qi < kQueries; qi++) {
        const float* q = row(queries(), qi);
        Result r = search(*engine, q, kK, SearchOptions{}, &one.filter);
        found_one += r.labels == std::vector<Label>{1234} ? 1 : 0;
        Result f = search(*engine, q, kK, SearchOptions{}, &few.filter);
        for (Label l : f.labels) EXPECT_TRUE(few.filter.contains(l));
        std::vector<Hit> truth = brute_force(Metric::kL2, data(), kRows, q, kK, &few.filter);
        for (const Hit& h : truth) recall += std::count(f.labels.begin(), f.labels.end(), h.label);
    }
    recall /= kQueries * kK;
    EXPECT_EQ(found_one, kQueries)
        << "the single allowed row was found for " << found_one << " of " << kQueries << " queries";
    EXPECT_GE(recall, 0.9) << "recall@10 under a 1% filter (" << few.filter.allowed << " rows)";
}

// ---------------------------------------------------------------------------
// Small filters: exact distances to the allowed rows only.

TEST_F(EngineTest, ExactFilterLimit) {
    for (const char* factory : {"IVF16,Flat", "HNSW16", "IVF16,PQ4np,RFlat", "Flat"}) {
        for (Metric metric : metrics_for(factory)) {
            SCOPED_TRACE(std::string(factory) + " " + metric_label(metric));
            auto engine = build(factory, metric, train_rows_for(factory));
            ASSERT_TRUE(engine->has_exact_vectors());
            Bitmap small(kRows, 0.025, 21);  // about 50 rows
            ASSERT_GT(small.filter.allowed, 10);
            ASSERT_LT(small.filter.allowed, 100);
            SearchOptions options;
            options.exact_filter_limit = 100;
            for (int qi = 0; qi < 10; qi++) {
                const float* q = row(queries(), qi);
                Result r = search(*engine, q, kK, options, &small.filter);
                EXPECT_TRUE(r.stats.exact_scan);
                std::vector<Hit> truth = brute_force(metric, data(), kRows, q, kK, &small.filter);
                ASSERT_EQ(r.labels.size(), truth.size());
                for (std::size_t i = 0; i < truth.size(); i++) {
                    EXPECT_EQ(r.labels[i], truth[i].label) << "query " << qi << " rank " << i;
                    const float* x = row(data(), truth[i].label);
                    double tol = float_tolerance(metric, q, x, kDim);
                    if (metric == Metric::kL2)
                        EXPECT_NEAR(static_cast<double>(r.distances[i]) * r.distances[i],
                                    truth[i].distance * truth[i].distance, tol);
                    else
                        EXPECT_NEAR(r.distances[i], truth[i].distance, tol);
                }
                // k larger than the filter: every allowed row, in order.
                Result every = search(*engine, q, 200, options, &small.filter);
                EXPECT_EQ(static_cast<std::int64_t>(every.labels.size()), small.filter.allowed);
            }
            // Above the limit the index is searched.
            if (std::string(factory) != "Flat") {
                Bitmap large(kRows, 0.2, 22);
                Result r = search(*engine, row(queries(), 0), kK, options, &large.filter);
                EXPECT_FALSE(r.stats.exact_scan);
                for (Label l : r.labels) EXPECT_TRUE(large.filter.contains(l));
            }
        }
    }
    // Without exact vectors the limit does not apply.
    auto pq = build("IVF16,PQ4np", Metric::kL2, 300);
    ASSERT_FALSE(pq->has_exact_vectors());
    Bitmap small(kRows, 0.025, 21);
    SearchOptions options;
    options.exact_filter_limit = 100;
    options.nprobe = 16;
    Result r = search(*pq, row(queries(), 0), kK, options, &small.filter);
    EXPECT_FALSE(r.stats.exact_scan);
    EXPECT_EQ(static_cast<std::int64_t>(r.labels.size()), kK);
    for (Label l : r.labels) EXPECT_TRUE(small.filter.contains(l));
}

// ---------------------------------------------------------------------------
// Serialisation.

std::vector<std::uint8_t> serialize(const Engine& engine) {
    std::vector<std::uint8_t> bytes(engine.serialized_size());
    engine.serialize(bytes.data(), bytes.size());
    return bytes;
}

class EngineFactory : public OneThread<::testing::TestWithParam<std::string>> {};

TEST_P(EngineFactory, SerializeRoundTrip) {
    for (Metric metric : metrics_for(GetParam())) {
        SCOPED_TRACE(metric_label(metric));
        auto engine = build(GetParam(), metric, train_rows_for(GetParam()));
        engine->set_defaults(3, 40, 0, 5.0f);
        std::vector<std::uint8_t> bytes = serialize(*engine);
        EXPECT_GT(engine->memory_bytes(), 0u);
        std::unique_ptr<Engine> copy(Engine::deserialize(bytes.data(), bytes.size(), metric));
        EXPECT_EQ(copy->dim(), kDim);
        EXPECT_EQ(copy->size(), kRows);
        EXPECT_TRUE(copy->is_trained());
        EXPECT_EQ(copy->describe(), engine->describe());
        EXPECT_EQ(copy->default_nprobe(), engine->default_nprobe());
        EXPECT_EQ(copy->nlist(), engine->nlist());
        EXPECT_EQ(copy->has_exact_vectors(), engine->has_exact_vectors());
        EXPECT_EQ(copy->filters_inside_faiss(), engine->filters_inside_faiss());
        EXPECT_EQ(serialize(*copy), bytes);

        Bitmap half(kRows, 0.5, 31);
        for (int qi = 0; qi < kQueries; qi++) {
            const float* q = row(queries(), qi);
            for (const LabelFilter* filter : {static_cast<const LabelFilter*>(nullptr),
                                              static_cast<const LabelFilter*>(&half.filter)}) {
                SearchOptions defaults;  // the stored knobs
                Result a = search(*engine, q, kK, defaults, filter);
                Result b = search(*copy, q, kK, defaults, filter);
                ASSERT_EQ(a.labels, b.labels) << "query " << qi;
                ASSERT_EQ(a.distances, b.distances) << "query " << qi;
            }
        }
        // The copy accepts more rows, with the next labels.
        copy->add(row(queries(), 0), 1);
        EXPECT_EQ(copy->size(), kRows + 1);
        SearchOptions options = full_probe(*copy);
        options.k_factor = 50.0f;  // re-ranking: the row itself among the candidates
        Result r = search(*copy, row(queries(), 0), 1, options);
        ASSERT_EQ(r.labels.size(), 1u);
        if (copy->has_exact_vectors() && metric != Metric::kInnerProduct) {
            // (Under inner product a row need not be its own nearest.)
            EXPECT_EQ(r.labels[0], kRows);
            EXPECT_NEAR(r.distances[0], 0.0, 1e-5);
        }
    }
}

TEST_P(EngineFactory, CloneEmptyKeepsTraining) {
    // (clone_empty() goes through serialize().)
    for (Metric metric : {Metric::kL2, Metric::kCosine}) {
        SCOPED_TRACE(metric_label(metric));
        auto engine = build(GetParam(), metric, train_rows_for(GetParam()));
        engine->set_defaults(5, 50, 0, 0.0f);
        std::string described = engine->describe();
        std::unique_ptr<Engine> empty(engine->clone_empty());
        EXPECT_TRUE(empty->is_trained());
        EXPECT_EQ(empty->size(), 0);
        EXPECT_EQ(empty->dim(), kDim);
        EXPECT_EQ(empty->metric(), metric);
        EXPECT_EQ(empty->default_nprobe(), engine->default_nprobe());
        EXPECT_EQ(empty->has_exact_vectors(), engine->has_exact_vectors());
        EXPECT_EQ(empty->filters_inside_faiss(), engine->filters_inside_faiss());
        // The original is untouched.
        EXPECT_EQ(engine->size(), kRows);
        EXPECT_EQ(engine->describe(), described);
        SearchOptions options = full_probe(*engine);
        EXPECT_EQ(search(*empty, row(queries(), 0), kK, options).labels.size(), 0u);

        // Re-adding the rows without training gives the same index.
        empty->add(data().data(), kRows);
        EXPECT_EQ(empty->size(), kRows);
        EXPECT_EQ(empty->describe(), described);
        for (int qi = 0; qi < 10; qi++) {
            const float* q = row(queries(), qi);
            Result a = search(*engine, q, kK, options);
            Result b = search(*empty, q, kK, options);
            EXPECT_EQ(a.labels, b.labels) << "query " << qi;
        }
        // Exact vectors come back by their new labels.
        if (empty->has_exact_vectors()) {
            std::vector<float> a(kDim), b(kDim);
            for (Label l : {Label(0), Label(999), Label(kRows - 1)}) {
                engine->exact_vector(l, a.data());
                empty->exact_vector(l, b.data());
                EXPECT_EQ(a, b) << "label " << l;
            }
        }
        // The refilled copy serialises and loads again (compaction writes
        // it to the index's pages).
        std::vector<std::uint8_t> bytes = serialize(*empty);
        std::unique_ptr<Engine> loaded(Engine::deserialize(bytes.data(), bytes.size(), metric));
        EXPECT_EQ(loaded->size(), kRows);
        Result a = search(*empty, row(queries(), 1), kK, options);
        Result b = search(*loaded, row(queries(), 1), kK, options);
        EXPECT_EQ(a.labels, b.labels);
    }
}

INSTANTIATE_TEST_SUITE_P(Factories, EngineFactory,
                         ::testing::Values("Flat", "IVF16,Flat", "HNSW16", "IVF16,PQ4np,RFlat",
                                           "IVF8,SQ8", "IVF16,PQ4np", "IVF16,PQ4x4fs",
                                           "IVF16,PQ4x4fs,RFlat"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                             return param_name(info.param);
                         });

// ---------------------------------------------------------------------------
// Exact vectors.

TEST_F(EngineTest, ExactVectors) {
    for (const char* factory : {"Flat", "HNSW16", "IVF16,Flat", "IVF16,PQ4np,RFlat"}) {
        for (Metric metric : metrics_for(factory)) {
            SCOPED_TRACE(std::string(factory) + " " + metric_label(metric));
            auto engine = build(factory, metric, train_rows_for(factory));
            ASSERT_TRUE(engine->has_exact_vectors());
            std::vector<float> want = data();
            if (metric == Metric::kCosine) benzer::normalize_vectors(want.data(), kRows, kDim);
            std::vector<float> got(kDim);
            for (Label l = 0; l < kRows; l++) {
                engine->exact_vector(l, got.data());
                ASSERT_EQ(0, std::memcmp(got.data(), row(want, l), sizeof(float) * kDim))
                    << "label " << l;
                if (metric == Metric::kCosine) {
                    ASSERT_NEAR(dot(got.data(), got.data(), kDim), 1.0, 1e-5);
                }
            }
            EXPECT_THROW(engine->exact_vector(kRows, got.data()), Error);
            EXPECT_THROW(engine->exact_vector(-1, got.data()), Error);
        }
    }
    for (const char* factory : {"IVF16,PQ4np", "IVF8,SQ8", "IVF16,PQ4x4fs", "HNSW16,SQ8"}) {
        SCOPED_TRACE(factory);
        auto engine = build(factory, Metric::kL2, train_rows_for(factory));
        EXPECT_FALSE(engine->has_exact_vectors());
        std::vector<float> got(kDim);
        EXPECT_THROW(engine->exact_vector(0, got.data()), Error);
    }
}

// ---------------------------------------------------------------------------
// Default knobs.

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

TEST_F(EngineTest, SetDefaultsChangesDescribe) {
    auto ivf = make("IVF16,Flat", Metric::kL2);
    EXPECT_EQ(ivf->nlist(), 16);
    EXPECT_EQ(ivf->default_nprobe(), 1);  // nlist / 16
    EXPECT_TRUE(contains(ivf->describe(), "nlist 16, nprobe 1")) << ivf->describe();
    ivf->set_defaults(4, 0, 0, 0.0f);
    EXPECT_EQ(ivf->default_nprobe(), 4);
    EXPECT_TRUE(contains(ivf->describe(), "nprobe 4")) << ivf->describe();
    ivf->set_defaults(0, 0, 0, 0.0f);  // zero: unchanged
    EXPECT_EQ(ivf->default_nprobe(), 4);
    ivf->set_defaults(1000, 0, 0, 0.0f);  // at most nlist
    EXPECT_EQ(ivf->default_nprobe(), 16);
    EXPECT_TRUE(contains(ivf->describe(), "filters inside Faiss")) << ivf->describe();

    auto hnsw = make("HNSW16", Metric::kL2);
    EXPECT_EQ(hnsw->nlist(), 0);
    EXPECT_EQ(hnsw->default_nprobe(), 0);
    EXPECT_TRUE(contains(hnsw->describe(), "efSearch 64")) << hnsw->describe();
    hnsw->set_defaults(7, 99, 77, 0.0f);
    EXPECT_TRUE(contains(hnsw->describe(), "efSearch 99, efConstruction 77")) << hnsw->describe();

    auto refine = make("IVF16,PQ4np,RFlat", Metric::kL2);
    EXPECT_TRUE(contains(refine->describe(), "exact re-ranking x4")) << refine->describe();
    refine->set_defaults(8, 0, 0, 6.0f);
    EXPECT_TRUE(contains(refine->describe(), "exact re-ranking x6")) << refine->describe();
    EXPECT_TRUE(contains(refine->describe(), "nprobe 8")) << refine->describe();
    refine->set_defaults(0, 0, 0, 0.5f);  // at least 1
    EXPECT_TRUE(contains(refine->describe(), "exact re-ranking x1")) << refine->describe();

    auto fastscan = make("IVF16,PQ4x4fs", Metric::kL2);
    EXPECT_TRUE(contains(fastscan->describe(), "filters applied by benzer"))
        << fastscan->describe();

    auto flat = build("Flat", Metric::kL2);
    EXPECT_TRUE(contains(flat->describe(), "rows 2000")) << flat->describe();
    std::string before = flat->describe();
    flat->set_defaults(5, 5, 5, 5.0f);  // nothing to set
    EXPECT_EQ(flat->describe(), before);
}

TEST_F(EngineTest, SearchUsesDefaultNprobe) {
    // The stored nprobe is used when the options say 0, and an explicit
    // nprobe does not change it.
    auto engine = build("IVF16,Flat", Metric::kL2);
    engine->set_defaults(16, 0, 0, 0.0f);
    SearchOptions defaults;
    double recall = 0.0;
    for (int qi = 0; qi < kQueries; qi++) {
        const float* q = row(queries(), qi);
        Result r = search(*engine, q, kK, defaults);
        EXPECT_EQ(r.stats.nprobe, 16);
        std::vector<Hit> truth = brute_force(Metric::kL2, data(), kRows, q, kK, nullptr);
        for (std::size_t i = 0; i < truth.size(); i++)
            recall += (i < r.labels.size() && r.labels[i] == truth[i].label) ? 1 : 0;
    }
    EXPECT_EQ(recall, static_cast<double>(kQueries * kK));
    SearchOptions one;
    one.nprobe = 1;
    Result r = search(*engine, row(queries(), 0), kK, one);
    EXPECT_EQ(r.stats.nprobe, 1);
    EXPECT_EQ(engine->default_nprobe(), 16);
}

// ---------------------------------------------------------------------------
// choose_factory.

TEST(ChooseFactory, SmallIsFlat) {
    for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine})
        for (std::int64_t rows : {0, 1, 100, 9999, 10000})
            for (int dim : {1, 3, 16, 784}) EXPECT_EQ(benzer::choose_factory(rows, dim, m), "Flat");
}

TEST(ChooseFactory, MediumIsIvfFlat) {
    auto want = [](std::int64_t rows) {
        int nlist = std::max(16, static_cast<int>(4.0 * std::sqrt(static_cast<double>(rows))));
        return "IVF" + std::to_string(nlist) + ",Flat";
    };
    for (std::int64_t rows : {10001, 20000, 100000, 500000}) {
        for (int dim : {1, 3, 16, 101, 784}) {
            std::string f = benzer::choose_factory(rows, dim, Metric::kL2);
            EXPECT_EQ(f, want(rows)) << rows << " rows";
            std::unique_ptr<Engine> e;
            EXPECT_NO_THROW(e.reset(Engine::create(f, dim, Metric::kL2))) << f << " dim " << dim;
        }
    }
    EXPECT_EQ(benzer::choose_factory(10001, 16, Metric::kL2), "IVF400,Flat");
    EXPECT_EQ(benzer::choose_factory(500000, 16, Metric::kL2), "IVF2828,Flat");
}

TEST(ChooseFactory, LargeIsIvfSq8) {
    EXPECT_EQ(benzer::choose_factory(500001, 16, Metric::kL2), "IVF2828,SQ8");
    EXPECT_EQ(benzer::choose_factory(10000000, 2048, Metric::kCosine), "IVF12649,SQ8");
}

// For more than 2M rows the choice must be a factory Engine::create takes,
// for any dimension.
void expect_large_choice_creatable(const std::vector<int>& dims) {
    for (int dim : dims) {
        for (Metric m : {Metric::kL2, Metric::kCosine}) {
            std::string f = benzer::choose_factory(5000000, dim, m);
            EXPECT_TRUE(contains(f, "IVF")) << f;
            try {
                std::unique_ptr<Engine> e(Engine::create(f, dim, m));
                EXPECT_EQ(e->dim(), dim);
                EXPECT_GT(e->nlist(), 0);
            } catch (const Error& e) {
                ADD_FAILURE() << "choose_factory(5000000, " << dim << ") = \"" << f
                              << "\", which Engine::create rejects: " << e.what();
            }
        }
    }
}

TEST(ChooseFactory, LargeEvenDimensionsCreatable) {
    expect_large_choice_creatable({2, 4, 14, 16, 26, 96, 128, 384, 768, 784, 1536});
}

TEST(ChooseFactory, LargeOddDimensionsCreatable) {
    expect_large_choice_creatable({1, 3, 15, 101, 785, 999});
}

// ---------------------------------------------------------------------------
// Errors.

TEST_F(EngineTest, CreateRejectsBadFactories) {
    struct Case {
        const char* factory;
        int dim;
    };
    for (const Case& c :
         {Case{"", 16}, Case{"Bogus", 16}, Case{"IDMap,Flat", 16}, Case{"IDMap2,Flat", 16},
          Case{"IVF16,PQ5", 16}, Case{"RFlat,Flat", 16}, Case{"BHNSW32", 16}, Case{"BFlat", 16},
          Case{"IVF,Flat", 16}, Case{"IVF0,Flat", 16}, Case{"IVF16,PQ32", 16}, Case{"PQ", 16},
          Case{"Flat,", 16}, Case{"IVF16,Flatx", 16}, Case{"IVF16_HNSW32,Flat", 16},
          Case{"IVF16,Flat,Refine(Flat)", 16}, Case{"Flat", 0}, Case{"Flat", -3}}) {
        try {
            std::unique_ptr<Engine> e(Engine::create(c.factory, c.dim, Metric::kL2));
            ADD_FAILURE() << "\"" << c.factory << "\" dim " << c.dim << " accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::kInvalidParameter) << c.factory;
            EXPECT_GT(std::strlen(e.what()), 10u);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "\"" << c.factory << "\": not a benzer::Error: " << e.what();
        }
    }
}

TEST_F(EngineTest, TrainWithTooFewRowsThrows) {
    struct Case {
        const char* factory;
        std::int64_t need;
    };
    for (const Case& c :
         {Case{"IVF16,Flat", 16}, Case{"IVF16,PQ4np", 256}, Case{"IVF16,PQ4x4fs", 16},
          Case{"IVF8,SQ8", 8}, Case{"IVF16,PQ4np,RFlat", 256}}) {
        SCOPED_TRACE(c.factory);
        auto engine = make(c.factory, Metric::kL2);
        EXPECT_EQ(engine->min_training_rows(), c.need);
        try {
            engine->train(data().data(), c.need - 1);
            ADD_FAILURE() << "trained on " << c.need - 1 << " rows";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::kInvalidParameter);
        }
        EXPECT_FALSE(engine->is_trained());
        // Adding to an untrained index is refused too.
        EXPECT_THROW(engine->add(data().data(), 10), Error);
        EXPECT_EQ(engine->size(), 0);
        engine->train(data().data(), c.need);
        EXPECT_TRUE(engine->is_trained());
    }
    auto flat = make("Flat", Metric::kL2);
    EXPECT_EQ(flat->min_training_rows(), 1);
    EXPECT_TRUE(flat->is_trained());
}

TEST_F(EngineTest, EmptyIndexAndDegenerateSearches) {
    auto engine = make("Flat", Metric::kL2);
    Result r = search(*engine, row(queries(), 0), kK, SearchOptions{});
    EXPECT_EQ(r.labels.size(), 0u);
    engine->add(data().data(), 0);  // nothing
    EXPECT_EQ(engine->size(), 0);
    engine->add(data().data(), 3);
    EXPECT_EQ(search(*engine, row(queries(), 0), kK, SearchOptions{}).labels.size(), 3u);
    EXPECT_EQ(search(*engine, row(queries(), 0), 0, SearchOptions{}).labels.size(), 0u);

    // Cosine with a zero vector stored and a zero query: no crash, no NaN
    // labels.
    auto cosine = make("Flat", Metric::kCosine);
    std::vector<float> zero(kDim, 0.0f);
    cosine->add(zero.data(), 1);
    cosine->add(data().data(), 5);
    Result z = search(*cosine, zero.data(), kK, SearchOptions{});
    EXPECT_EQ(z.labels.size(), 6u);
    std::vector<float> back(kDim, 1.0f);
    cosine->exact_vector(0, back.data());
    EXPECT_EQ(back, zero);
}

// ---------------------------------------------------------------------------
// Crashes, each in a test of its own.

// Serialising an index whose Faiss form holds an empty vector (IVF without a
// direct map; any empty index) must not be undefined behaviour.
TEST_F(EngineSerialize, EmptyVectorsUnderSanitizers) {
    for (const char* factory : {"IVF8,SQ8", "Flat", "HNSW16", "IVF16,Flat"}) {
        SCOPED_TRACE(factory);
        auto engine = make(factory, Metric::kL2);  // empty
        if (!engine->is_trained()) engine->train(data().data(), kRows);
        std::vector<std::uint8_t> bytes = serialize(*engine);
        std::unique_ptr<Engine> copy(Engine::deserialize(bytes.data(), bytes.size(), Metric::kL2));
        EXPECT_EQ(copy->size(), 0);
        copy->add(data().data(), 100);
        std::vector<std::uint8_t> again = serialize(*copy);
        std::unique_ptr<Engine> copy2(Engine::deserialize(again.data(), again.size(), Metric::kL2));
        EXPECT_EQ(copy2->size(), 100);
    }
}

// Faiss 1.7.3's IVF FastScan search collects more than 20 results in a
// "reservoir" whose partitioning assert()s (utils/partitioning.cpp:113,
// `n_eq == 0`) on some ties of its 16-bit distances, aborting the process.
// benzer asks Faiss for more than 20 whenever it re-ranks (k x k_factor, 40
// for k = 10 by default) or filters a FastScan index itself (k / fraction
// allowed, doubling), so a SQL query can take the backend down.
TEST_F(EngineFastScan, WideSearchDoesNotAbort) {
    // Faiss aborts here with its default implementation (query 28); the
    // engine selects implementation 10 on every load (engine.cpp).
    auto engine = build("IVF16,PQ4x4fs", Metric::kL2, 512);
    SearchOptions options;
    options.nprobe = 7;
    for (int qi = 0; qi < kQueries; qi++) {
        Result r = search(*engine, row(queries(), qi), 21, options);
        EXPECT_EQ(r.labels.size(), 21u) << "query " << qi;
    }
}

// ---------------------------------------------------------------------------
// benzer's kernels inside Faiss against Faiss's own.

// Turns the fast kernels off for its lifetime.
struct FastKernelsOff {
    FastKernelsOff() { benzer::set_fast_kernels_enabled(false); }
    ~FastKernelsOff() { benzer::set_fast_kernels_enabled(true); }
};

void expect_same_results(const Engine& a, const Engine& b, const SearchOptions& options,
                         const LabelFilter* filter) {
    for (int qi = 0; qi < kQueries; qi++) {
        const float* q = row(queries(), qi);
        Result ra = search(a, q, kK, options, filter);
        Result rb = search(b, q, kK, options, filter);
        ASSERT_EQ(ra.labels, rb.labels) << "query " << qi;
        for (std::size_t i = 0; i < ra.distances.size(); i++)
            EXPECT_NEAR(ra.distances[i], rb.distances[i],
                        1e-4 * std::max(1.0f, std::fabs(ra.distances[i])))
                << "query " << qi << " rank " << i;
    }
}

class EngineFastKernels : public OneThread<::testing::TestWithParam<std::string>> {};

TEST_P(EngineFastKernels, SameResultsAsFaiss) {
    ASSERT_TRUE(benzer::fast_kernels_enabled());
    for (Metric metric : metrics_for(GetParam())) {
        SCOPED_TRACE(metric_label(metric));
        // One structure, searched with each set of kernels: the index built
        // with the fast kernels, and the same bytes loaded without them.
        auto fast = build(GetParam(), metric, train_rows_for(GetParam()));
        std::vector<std::uint8_t> bytes = serialize(*fast);
        std::unique_ptr<Engine> plain;
        {
            FastKernelsOff off;
            EXPECT_FALSE(benzer::fast_kernels_enabled());
            plain.reset(Engine::deserialize(bytes.data(), bytes.size(), metric));
        }
        EXPECT_TRUE(benzer::fast_kernels_enabled());
        // Both serialise to the same Faiss format.
        EXPECT_EQ(serialize(*plain), bytes);

        Bitmap filter(kRows, 0.3, 41);
        for (int nprobe : {0, 4, 16}) {
            SearchOptions options;
            options.nprobe = nprobe;
            expect_same_results(*fast, *plain, options, nullptr);
            expect_same_results(*fast, *plain, options, &filter.filter);
        }
        SearchOptions ef;
        ef.ef_search = 200;
        expect_same_results(*fast, *plain, ef, nullptr);

        // Built from scratch without the fast kernels (training and adding
        // through Faiss's own code): IVF is deterministic, so the same.
        if (GetParam().find("HNSW") == std::string::npos) {
            std::unique_ptr<Engine> plain_built;
            {
                FastKernelsOff off;
                plain_built = build(GetParam(), metric, train_rows_for(GetParam()));
            }
            expect_same_results(*fast, *plain_built, full_probe(*fast), nullptr);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Factories, EngineFastKernels,
                         ::testing::Values("IVF16,Flat", "HNSW16", "IVF16,PQ4np,RFlat",
                                           "IVF16,SQ8"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                             return param_name(info.param);
                         });

// The coarse k-means of an IVF index can run elsewhere (the search
// service's device): the plan says what Faiss would run, and the
// centroids handed over are the quantizer's, bit for bit.
TEST(EngineCoarseTraining, PlanAndCentroidsHandedOver) {
    const int dim = 8;
    const std::int64_t n = 2000;
    std::vector<float> x = random_vectors(n, dim, 31);
    for (const char* factory : {"IVF16,Flat", "IVF16,PQ4", "IVF16,SQ8"}) {
        std::unique_ptr<Engine> engine(Engine::create(factory, dim, Metric::kL2));
        Engine::CoarseTraining plan;
        ASSERT_TRUE(engine->coarse_training(&plan)) << factory;
        EXPECT_EQ(plan.nlist, 16);
        EXPECT_GT(plan.iterations, 0);
        EXPECT_FALSE(plan.spherical);
        // Centroids no clustering would produce: recognisable in the blob.
        std::vector<float> centroids(16 * dim);
        for (size_t i = 0; i < centroids.size(); i++) centroids[i] = 0.001f * i + 0.0001f;
        engine->train_with_centroids(x.data(), n, centroids.data());
        EXPECT_TRUE(engine->is_trained());
        EXPECT_FALSE(engine->coarse_training(&plan)) << "trained: nothing left to hand over";
        engine->add(x.data(), n);
        std::vector<std::uint8_t> blob(engine->serialized_size());
        engine->serialize(blob.data(), blob.size());
        const std::uint8_t* raw = reinterpret_cast<const std::uint8_t*>(centroids.data());
        EXPECT_NE(
            std::search(blob.begin(), blob.end(), raw, raw + sizeof(float) * centroids.size()),
            blob.end())
            << factory << ": the quantizer holds the centroids given";
        std::vector<float> d(5);
        std::vector<Label> l(5);
        EXPECT_EQ(
            engine->search(x.data(), 5, SearchOptions(), nullptr, d.data(), l.data(), nullptr), 5);
    }
    std::unique_ptr<Engine> cosine(Engine::create("IVF16,Flat", dim, Metric::kCosine));
    Engine::CoarseTraining plan;
    ASSERT_TRUE(cosine->coarse_training(&plan));
    EXPECT_TRUE(plan.spherical) << "inner-product IVF clusters spherically";
    for (const char* other : {"HNSW8", "Flat", "PCA4,IVF16,Flat"}) {
        std::unique_ptr<Engine> engine(Engine::create(other, dim, Metric::kL2));
        EXPECT_FALSE(engine->coarse_training(&plan)) << other;
    }
}

}  // namespace

#endif  // BENZER_HAVE_FAISS
