// tuning_test.cpp: adaptive IVF probing (ivf_probe.h) and the recall
// tuner (tuning.h) on clustered data, where the right answer is known.
#if defined(BENZER_HAVE_FAISS)

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/engine.h"
#include "core/exact_batch.h"
#include "core/tuning.h"

namespace {

using benzer::Engine;
using benzer::Label;
using benzer::LabelFilter;
using benzer::Metric;
using benzer::SearchOptions;
using benzer::SearchStats;
using benzer::TunedKind;
using benzer::TunedSetting;
using benzer::TuningRequest;
using benzer::TuningTable;

constexpr int kDim = 32;
constexpr std::int64_t kRows = 20000;

// kRows rows around 200 gamma-distributed centres, ReLU'd (the shape of the
// benchmark generator, smaller).
std::vector<float> clustered(std::uint64_t seed, std::int64_t rows = kRows) {
    std::mt19937_64 rng(seed);
    std::gamma_distribution<float> gamma(2.0f, 1.0f);
    std::normal_distribution<float> noise(0.0f, 0.5f);
    std::vector<float> centres(200 * kDim);
    for (float& c : centres) c = gamma(rng);
    std::uniform_int_distribution<int> pick(0, 199);
    std::vector<float> data(static_cast<std::size_t>(rows * kDim));
    for (std::int64_t i = 0; i < rows; i++) {
        int c = pick(rng);
        for (int j = 0; j < kDim; j++)
            data[i * kDim + j] = std::max(0.0f, centres[c * kDim + j] + noise(rng));
    }
    return data;
}

std::unique_ptr<Engine> build(const std::string& factory, Metric metric,
                              const std::vector<float>& data) {
    std::unique_ptr<Engine> engine(Engine::create(factory, kDim, metric));
    std::int64_t n = static_cast<std::int64_t>(data.size()) / kDim;
    engine->train(data.data(), n);
    engine->add(data.data(), n);
    return engine;
}

benzer::RowSource source(const std::vector<float>& data) {
    benzer::RowSource rows;
    rows.count = static_cast<std::int64_t>(data.size()) / kDim;
    rows.contiguous = data.data();
    return rows;
}

// Mean recall@10 of search with options over the given query rows (each
// row finds itself; it counts like the app's "similar to this row").
double measured_recall(const Engine& engine, const std::vector<float>& data,
                       const SearchOptions& options, const LabelFilter* filter,
                       std::int64_t* compared = nullptr) {
    constexpr int k = 10;
    constexpr int nq = 100;
    std::int64_t rows = static_cast<std::int64_t>(data.size()) / kDim;
    std::vector<float> queries(nq * kDim);
    for (int q = 0; q < nq; q++)
        std::copy_n(data.begin() + ((q * 97 + 13) % rows) * kDim, kDim, queries.begin() + q * kDim);
    std::vector<float> scores(nq * k);
    std::vector<Label> truth(nq * k);
    std::vector<std::int64_t> counts(nq);
    benzer::exact_batch_search(source(data), kDim, benzer::ExactScore::kL2Squared, queries.data(),
                               nq, k, filter, scores.data(), truth.data(), counts.data());
    double hits = 0;
    std::vector<float> d(k);
    std::vector<Label> l(k);
    for (int q = 0; q < nq; q++) {
        SearchStats stats;
        std::int64_t found = engine.search(queries.data() + q * kDim, k, options, filter, d.data(),
                                           l.data(), &stats);
        EXPECT_EQ(found, counts[q]) << "under-filled";
        if (compared != nullptr) *compared += stats.compared;
        std::set<Label> want(truth.begin() + q * k, truth.begin() + q * k + counts[q]);
        for (std::int64_t i = 0; i < found; i++) hits += want.count(l[i]) ? 1 : 0;
    }
    return hits / (nq * k);
}

SearchOptions adaptive(const TunedSetting& s) {
    SearchOptions options;
    options.adaptive = true;
    options.min_candidates = s.min_candidates;
    options.patience = s.patience;
    options.k_factor = s.k_factor;
    return options;
}

TEST(Tuning, AdaptiveIvfReachesTheTargetAtAFractionOfTheRows) {
    std::vector<float> data = clustered(1);
    auto engine = build("IVF256,Flat", Metric::kL2, data);
    TuningTable table;
    TuningRequest request;
    request.target = 0.95;
    engine->tune(request, source(data), &table);
    ASSERT_EQ(table.kind, TunedKind::kAdaptive);
    ASSERT_GT(table.count, 0);
    const TunedSetting* s = table.for_target(0.95);
    ASSERT_NE(s, nullptr);
    EXPECT_GE(s->recall, 0.95f);
    // Measured on other queries than the tuner's.
    std::int64_t compared = 0;
    double recall = measured_recall(*engine, data, adaptive(*s), nullptr, &compared);
    EXPECT_GE(recall, 0.93);
    // Far fewer rows than the table: the cost follows the query.
    EXPECT_LT(compared / 100, kRows / 8);
    // A higher target never costs less.
    const TunedSetting* strict = table.for_target(0.999);
    ASSERT_NE(strict, nullptr);
    EXPECT_GE(strict->compared, s->compared);
}

TEST(Tuning, FilteredProbesAreNeverUnderFilledAndKeepRecall) {
    std::vector<float> data = clustered(2);
    auto engine = build("IVF256,Flat", Metric::kL2, data);
    TuningTable table;
    engine->tune(TuningRequest{}, source(data), &table);
    const TunedSetting* s = table.for_target(0.95);
    ASSERT_NE(s, nullptr);
    for (int keep_per_mille : {500, 100, 10, 1}) {
        std::vector<std::uint8_t> bits(static_cast<std::size_t>((kRows + 7) / 8), 0);
        std::mt19937_64 rng(keep_per_mille);
        std::int64_t allowed = 0;
        for (std::int64_t i = 0; i < kRows; i++)
            if (static_cast<int>(rng() % 1000) < keep_per_mille) {
                bits[i >> 3] |= static_cast<std::uint8_t>(1u << (i & 7));
                allowed++;
            }
        LabelFilter filter{bits.data(), kRows, allowed};
        double recall = measured_recall(*engine, data, adaptive(*s), &filter);
        EXPECT_GE(recall, 0.9) << "keep " << keep_per_mille << "/1000";
    }
}

TEST(Tuning, ExactReRankingAndHnswAndFlat) {
    std::vector<float> data = clustered(3, 6000);
    {
        auto engine = build("IVF64,PQ8,RFlat", Metric::kL2, data);
        TuningTable table;
        engine->tune(TuningRequest{}, source(data), &table);
        ASSERT_EQ(table.kind, TunedKind::kAdaptive);
        const TunedSetting* s = table.for_target(0.95);
        ASSERT_NE(s, nullptr);
        EXPECT_GE(s->k_factor, 1.0f);
        EXPECT_GE(measured_recall(*engine, data, adaptive(*s), nullptr), 0.9);
    }
    {
        auto engine = build("HNSW16", Metric::kL2, data);
        TuningTable table;
        engine->tune(TuningRequest{}, engine->exact_rows(), &table);
        ASSERT_EQ(table.kind, TunedKind::kEfSearch);
        const TunedSetting* s = table.for_target(0.95);
        ASSERT_NE(s, nullptr);
        EXPECT_GE(s->ef_search, 16);
        SearchOptions options;
        options.ef_search = s->ef_search;
        EXPECT_GE(measured_recall(*engine, data, options, nullptr), 0.9);
    }
    {
        auto engine = build("Flat", Metric::kL2, data);
        TuningTable table;
        engine->tune(TuningRequest{}, source(data), &table);
        EXPECT_EQ(table.kind, TunedKind::kExact);
        EXPECT_EQ(table.for_target(0.99)->recall, 1.0f);
    }
}

TEST(Tuning, AProbeWithAnImpossibleRuleVisitsEveryListAndIsExact) {
    std::vector<float> data = clustered(4, 5000);
    auto engine = build("IVF32,Flat", Metric::kL2, data);
    SearchOptions options;
    options.adaptive = true;
    options.min_candidates = 1 << 30;
    SearchStats stats;
    std::vector<float> d(10);
    std::vector<Label> l(10);
    engine->search(data.data(), 10, options, nullptr, d.data(), l.data(), &stats);
    EXPECT_EQ(stats.lists, 32);
    EXPECT_EQ(stats.compared, 5000);
    EXPECT_EQ(l[0], 0);
    EXPECT_EQ(measured_recall(*engine, data, options, nullptr), 1.0);
}

}  // namespace

#endif
