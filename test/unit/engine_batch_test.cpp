// engine_batch_test.cpp: Engine::search_batch and exact_batch_search
// answer many queries as Engine::search answers each one.
#ifdef BENZER_HAVE_FAISS

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/distance.h"
#include "core/engine.h"
#include "core/exact_batch.h"

namespace {

using benzer::Engine;
using benzer::Label;
using benzer::LabelFilter;
using benzer::Metric;

std::vector<float> random_vectors(std::int64_t n, int dim, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n) * dim);
    for (float& v : x) v = u(rng);
    return x;
}

struct Bitmap {
    std::vector<std::uint8_t> bits;
    LabelFilter filter;
    // Allows label i when keep(i).
    template <typename Keep>
    Bitmap(std::int64_t n, Keep keep) : bits(static_cast<size_t>((n + 7) / 8), 0) {
        std::int64_t allowed = 0;
        for (std::int64_t i = 0; i < n; i++)
            if (keep(i)) {
                bits[i >> 3] |= static_cast<std::uint8_t>(1u << (i & 7));
                allowed++;
            }
        filter.bits = bits.data();
        filter.count = n;
        filter.allowed = allowed;
    }
};

std::unique_ptr<Engine> build(const std::string& factory, Metric metric,
                              const std::vector<float>& x, int dim) {
    std::unique_ptr<Engine> engine(Engine::create(factory, dim, metric));
    std::int64_t n = static_cast<std::int64_t>(x.size()) / dim;
    engine->train(x.data(), n);
    engine->add(x.data(), n);
    return engine;
}

// Runs search() per query and search_batch() once; expects the same labels
// (or, when `same_labels` is false, the same distances) and only allowed
// labels.
void expect_batch_matches(const Engine& engine, const std::vector<float>& queries, int dim,
                          std::int64_t k, const benzer::SearchOptions& options,
                          const LabelFilter* filter, bool same_labels = true) {
    std::int64_t nq = static_cast<std::int64_t>(queries.size()) / dim;
    std::vector<float> bd(nq * k);
    std::vector<Label> bl(nq * k);
    std::vector<std::int64_t> counts(nq);
    std::int64_t total = engine.search_batch(nq, queries.data(), k, options, filter, bd.data(),
                                             bl.data(), counts.data(), nullptr);
    std::int64_t sum = 0;
    for (std::int64_t q = 0; q < nq; q++) {
        std::vector<float> d(k);
        std::vector<Label> l(k);
        std::int64_t found = engine.search(queries.data() + q * dim, k, options, filter, d.data(),
                                           l.data(), nullptr);
        ASSERT_EQ(counts[q], found) << "query " << q;
        sum += found;
        for (std::int64_t i = 0; i < found; i++) {
            if (same_labels) {
                EXPECT_EQ(bl[q * k + i], l[i]) << "query " << q << " rank " << i;
            }
            EXPECT_NEAR(bd[q * k + i], d[i], 1e-4 * std::max(1.0f, std::fabs(d[i])))
                << "query " << q << " rank " << i;
            if (filter != nullptr) {
                EXPECT_TRUE(filter->contains(bl[q * k + i]));
            }
        }
        for (std::int64_t i = found; i < k; i++) EXPECT_EQ(bl[q * k + i], -1);
    }
    EXPECT_EQ(total, sum);
}

TEST(EngineBatch, FlatMatchesSingleSearches) {
    const int dim = 24;
    std::vector<float> x = random_vectors(3000, dim, 1);
    std::vector<float> q = random_vectors(50, dim, 2);
    for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
        auto engine = build("Flat", metric, x, dim);
        benzer::SearchOptions options;
        expect_batch_matches(*engine, q, dim, 10, options, nullptr);
        Bitmap odd(3000, [](std::int64_t i) { return i % 2 == 1; });
        expect_batch_matches(*engine, q, dim, 10, options, &odd.filter);
        // Fewer allowed rows than k.
        Bitmap few(3000, [](std::int64_t i) { return i % 1000 == 7; });
        expect_batch_matches(*engine, q, dim, 10, options, &few.filter);
    }
}

TEST(EngineBatch, IvfMatchesSingleSearches) {
    const int dim = 16;
    std::vector<float> x = random_vectors(4000, dim, 3);
    std::vector<float> q = random_vectors(40, dim, 4);
    auto engine = build("IVF32,Flat", Metric::kL2, x, dim);
    benzer::SearchOptions options;
    options.nprobe = 4;
    expect_batch_matches(*engine, q, dim, 10, options, nullptr);
    Bitmap third(4000, [](std::int64_t i) { return i % 3 == 0; });
    expect_batch_matches(*engine, q, dim, 10, options, &third.filter);
    // Small filters take the exact path in both.
    options.exact_filter_limit = 1000;
    Bitmap small(4000, [](std::int64_t i) { return i % 10 == 0; });
    expect_batch_matches(*engine, q, dim, 10, options, &small.filter);
}

TEST(EngineBatch, IvfListByListAllMetricsAndLongLists) {
    // IVF-Flat batches go list by list (ivf_flat_batch); lists of more
    // than one BLAS block (1024 rows) and every metric.
    const int dim = 12;
    std::vector<float> x = random_vectors(9000, dim, 15);
    std::vector<float> q = random_vectors(64, dim, 16);
    for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
        auto engine = build("IVF4,Flat", metric, x, dim);
        benzer::SearchOptions options;
        options.nprobe = 2;
        expect_batch_matches(*engine, q, dim, 15, options, nullptr);
        Bitmap some(9000, [](std::int64_t i) { return i % 4 != 1; });
        expect_batch_matches(*engine, q, dim, 15, options, &some.filter);
        // A selective filter: nprobe grows as in search(), and rows run out.
        Bitmap rare(9000, [](std::int64_t i) { return i % 900 == 0; });
        expect_batch_matches(*engine, q, dim, 15, options, &rare.filter);
    }
}

TEST(EngineBatch, HnswMatchesSingleSearches) {
    const int dim = 16;
    std::vector<float> x = random_vectors(3000, dim, 5);
    std::vector<float> q = random_vectors(30, dim, 6);
    auto engine = build("HNSW16", Metric::kL2, x, dim);
    benzer::SearchOptions options;
    expect_batch_matches(*engine, q, dim, 8, options, nullptr);
    Bitmap half(3000, [](std::int64_t i) { return i % 2 == 0; });
    expect_batch_matches(*engine, q, dim, 8, options, &half.filter);
}

TEST(EngineBatch, FastScanWithRefineFiltersItself) {
    // FastScan rejects selectors: the batch asks for more per query and
    // filters, as search() does; exact re-ranking makes distances exact.
    const int dim = 16;
    std::vector<float> x = random_vectors(5000, dim, 7);
    std::vector<float> q = random_vectors(20, dim, 8);
    auto engine = build("IVF16,PQ8x4fs,RFlat", Metric::kL2, x, dim);
    ASSERT_FALSE(engine->filters_inside_faiss());
    benzer::SearchOptions options;
    options.nprobe = 16;
    Bitmap sparse(5000, [](std::int64_t i) { return i % 7 == 0; });
    expect_batch_matches(*engine, q, dim, 10, options, &sparse.filter, /*same_labels=*/false);
    expect_batch_matches(*engine, q, dim, 10, options, nullptr, /*same_labels=*/false);
}

TEST(EngineBatch, EmptyAndDegenerateInputs) {
    const int dim = 4;
    std::vector<float> x = random_vectors(100, dim, 9);
    auto engine = build("Flat", Metric::kL2, x, dim);
    benzer::SearchOptions options;
    std::vector<float> q = random_vectors(3, dim, 10);
    std::vector<float> d(3 * 5);
    std::vector<Label> l(3 * 5);
    std::vector<std::int64_t> counts(3, 99);
    Bitmap none(100, [](std::int64_t) { return false; });
    EXPECT_EQ(engine->search_batch(3, q.data(), 5, options, &none.filter, d.data(), l.data(),
                                   counts.data(), nullptr),
              0);
    for (std::int64_t c : counts) EXPECT_EQ(c, 0);
    for (Label label : l) EXPECT_EQ(label, -1);
    EXPECT_EQ(engine->search_batch(0, q.data(), 5, options, nullptr, d.data(), l.data(),
                                   counts.data(), nullptr),
              0);
    // k larger than the index.
    std::vector<float> d2(3 * 200);
    std::vector<Label> l2(3 * 200);
    EXPECT_EQ(engine->search_batch(3, q.data(), 200, options, nullptr, d2.data(), l2.data(),
                                   counts.data(), nullptr),
              300);
}

// Brute force reference for exact_batch_search.
std::vector<std::pair<float, Label>> brute(const std::vector<float>& x, int dim, const float* query,
                                           const LabelFilter* filter, std::int64_t k) {
    std::vector<std::pair<float, Label>> all;
    std::int64_t n = static_cast<std::int64_t>(x.size()) / dim;
    for (std::int64_t i = 0; i < n; i++)
        if (filter == nullptr || filter->contains(i))
            all.push_back({benzer::l2_squared(query, x.data() + i * dim, dim), i});
    std::sort(all.begin(), all.end());
    if (static_cast<std::int64_t>(all.size()) > k) all.resize(k);
    return all;
}

const float* row_of(const void* context, Label label) {
    const auto* x = static_cast<const std::vector<float>*>(context);
    return x->data() + label * 12;
}

TEST(ExactBatch, MatchesBruteForceAcrossBlocks) {
    const int dim = 12;
    // More rows and queries than one block (1024) of each.
    std::vector<float> x = random_vectors(2500, dim, 11);
    std::vector<float> q = random_vectors(1100, dim, 12);
    const std::int64_t nq = 1100, k = 7;
    Bitmap filter(2500, [](std::int64_t i) { return i % 5 != 3; });
    for (int variant = 0; variant < 3; variant++) {
        benzer::RowSource rows;
        rows.count = 2500;
        const LabelFilter* f = nullptr;
        if (variant == 0) rows.contiguous = x.data();
        if (variant >= 1) {
            rows.row = row_of;
            rows.context = &x;
        }
        if (variant == 2) f = &filter.filter;
        std::vector<float> s(nq * k);
        std::vector<Label> l(nq * k);
        std::vector<std::int64_t> counts(nq);
        benzer::exact_batch_search(rows, dim, benzer::ExactScore::kL2Squared, q.data(), nq, k, f,
                                   s.data(), l.data(), counts.data());
        for (std::int64_t i = 0; i < nq; i += 13) {
            auto expected = brute(x, dim, q.data() + i * dim, f, k);
            ASSERT_EQ(counts[i], k);
            for (std::int64_t j = 0; j < k; j++) {
                EXPECT_EQ(l[i * k + j], expected[j].second) << "variant " << variant;
                EXPECT_EQ(s[i * k + j], expected[j].first);
            }
        }
    }
}

TEST(ExactBatch, NegativeInnerProductAndFewRows) {
    const int dim = 5;
    std::vector<float> x = random_vectors(30, dim, 13);
    std::vector<float> q = random_vectors(4, dim, 14);
    benzer::RowSource rows;
    rows.count = 30;
    rows.contiguous = x.data();
    Bitmap three(30, [](std::int64_t i) { return i == 2 || i == 17 || i == 29; });
    std::vector<float> s(4 * 10);
    std::vector<Label> l(4 * 10);
    std::vector<std::int64_t> counts(4);
    benzer::exact_batch_search(rows, dim, benzer::ExactScore::kNegativeInnerProduct, q.data(), 4,
                               10, &three.filter, s.data(), l.data(), counts.data());
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(counts[i], 3);
        for (int j = 0; j < 3; j++) {
            EXPECT_TRUE(three.filter.contains(l[i * 10 + j]));
            EXPECT_EQ(s[i * 10 + j], -benzer::inner_product(q.data() + i * dim,
                                                            x.data() + l[i * 10 + j] * dim, dim));
            if (j > 0) {
                EXPECT_LE(s[i * 10 + j - 1], s[i * 10 + j]);
            }
        }
        for (int j = 3; j < 10; j++) EXPECT_EQ(l[i * 10 + j], -1);
    }
}

// search_each runs independent searches, each with its own filter (so its
// own widened efSearch or nprobe), on several threads: every answer must
// equal search()'s alone, and the structure's own knobs must be as before.
void expect_each_equals_search(const std::string& factory) {
    const int dim = 16;
    const std::int64_t n = 3000;
    std::vector<float> x = random_vectors(n, dim, 77);
    auto engine = build(factory, Metric::kL2, x, dim);
    int ef_before = engine->default_ef_search();
    int nprobe_before = engine->default_nprobe();
    const int nq = 48;
    std::vector<float> queries = random_vectors(nq, dim, 78);
    std::vector<std::unique_ptr<Bitmap>> bitmaps;
    std::vector<benzer::SearchRequest> requests(nq);
    std::vector<float> distances(static_cast<size_t>(nq) * 10);
    std::vector<Label> labels(static_cast<size_t>(nq) * 10);
    for (int q = 0; q < nq; q++) {
        // Filters of different densities: every search widens differently.
        int modulo = 1 + q % 7;
        bitmaps.push_back(
            std::make_unique<Bitmap>(n, [&](std::int64_t i) { return i % modulo == 0; }));
        benzer::SearchRequest& r = requests[q];
        r.query = queries.data() + q * dim;
        r.k = 10;
        r.filter = q % 5 == 0 ? nullptr : &bitmaps.back()->filter;
        r.distances = distances.data() + q * 10;
        r.labels = labels.data() + q * 10;
    }
    benzer::SearchOptions options;
    engine->search_each(requests.data(), nq, options, 4);
    for (int q = 0; q < nq; q++) {
        const benzer::SearchRequest& r = requests[q];
        ASSERT_FALSE(r.failed) << r.error;
        std::vector<float> d(10);
        std::vector<Label> l(10);
        std::int64_t found =
            engine->search(r.query, 10, options, r.filter, d.data(), l.data(), nullptr);
        ASSERT_EQ(r.found, found) << factory << " query " << q;
        for (std::int64_t j = 0; j < found; j++) {
            EXPECT_EQ(r.labels[j], l[j]) << factory << " query " << q << " rank " << j;
            EXPECT_EQ(r.distances[j], d[j]) << factory << " query " << q << " rank " << j;
        }
    }
    EXPECT_EQ(engine->default_ef_search(), ef_before);
    EXPECT_EQ(engine->default_nprobe(), nprobe_before);
}

TEST(SearchEach, HnswWithDifferentFiltersEqualsSearch) { expect_each_equals_search("HNSW16"); }

// Lanes (a graph copy over shared rows) answer as the engine does, also
// at once with different filters, and leave its knobs alone.
TEST(SearchEach, LanesAnswerAsTheEngine) {
    const int dim = 16;
    const std::int64_t n = 3000;
    std::vector<float> x = random_vectors(n, dim, 91);
    auto engine = build("HNSW16", Metric::kL2, x, dim);
    std::unique_ptr<Engine> lane(engine->search_lane());
    ASSERT_NE(lane, nullptr);
    EXPECT_GT(engine->lane_bytes(), 0u);
    EXPECT_LT(engine->lane_bytes(), engine->memory_bytes());
    EXPECT_EQ(lane->size(), engine->size());
    EXPECT_EQ(lane->default_ef_search(), engine->default_ef_search());
    const int nq = 40;
    std::vector<float> queries = random_vectors(nq, dim, 92);
    std::vector<std::unique_ptr<Bitmap>> bitmaps;
    std::vector<benzer::SearchRequest> requests(nq);
    std::vector<float> distances(static_cast<size_t>(nq) * 10);
    std::vector<Label> labels(static_cast<size_t>(nq) * 10);
    for (int q = 0; q < nq; q++) {
        int modulo = 1 + q % 9;
        bitmaps.push_back(
            std::make_unique<Bitmap>(n, [&](std::int64_t i) { return i % modulo == 0; }));
        requests[q].query = queries.data() + q * dim;
        requests[q].k = 10;
        requests[q].filter = &bitmaps.back()->filter;
        requests[q].distances = distances.data() + q * 10;
        requests[q].labels = labels.data() + q * 10;
    }
    const Engine* lanes[] = {engine.get(), lane.get()};
    Engine::search_each_on_lanes(lanes, 2, requests.data(), nq, benzer::SearchOptions());
    for (int q = 0; q < nq; q++) {
        ASSERT_FALSE(requests[q].failed) << requests[q].error;
        std::vector<float> d(10);
        std::vector<Label> l(10);
        std::int64_t found = engine->search(requests[q].query, 10, benzer::SearchOptions(),
                                            requests[q].filter, d.data(), l.data(), nullptr);
        ASSERT_EQ(requests[q].found, found);
        for (std::int64_t j = 0; j < found; j++) {
            EXPECT_EQ(requests[q].labels[j], l[j]) << "query " << q << " rank " << j;
            EXPECT_EQ(requests[q].distances[j], d[j]);
        }
    }
    EXPECT_EQ(engine->default_ef_search(), lane->default_ef_search());
    std::unique_ptr<Engine> flat(build("Flat", Metric::kL2, x, dim));
    EXPECT_EQ(flat->search_lane(), nullptr) << "only graphs have lanes";
}

TEST(SearchEach, FastScanWithDifferentFiltersEqualsSearch) {
    expect_each_equals_search("IVF16,PQ8x4fs");
}

bool interrupt_always() { return true; }

TEST(SearchEach, ACanceledSearchIsMarkedFailedAndNothingEscapes) {
    const int dim = 8;
    std::vector<float> x = random_vectors(500, dim, 5);
    auto engine = build("HNSW8", Metric::kL2, x, dim);
    std::vector<float> q = random_vectors(3, dim, 6);
    std::vector<float> d(30);
    std::vector<Label> l(30);
    benzer::SearchRequest requests[3];
    for (int i = 0; i < 3; i++) {
        requests[i].query = q.data() + i * dim;
        requests[i].k = 10;
        requests[i].distances = d.data() + i * 10;
        requests[i].labels = l.data() + i * 10;
    }
    // Faiss's HNSW search checks for interrupts and throws: each request
    // records it, none escapes search_each.
    benzer::set_interrupt_check(interrupt_always);
    EXPECT_NO_THROW(engine->search_each(requests, 3, benzer::SearchOptions(), 2));
    benzer::set_interrupt_check(nullptr);
    for (const auto& r : requests) {
        EXPECT_TRUE(r.failed);
        EXPECT_STRNE(r.error, "");
    }
    // And the structure still answers afterwards.
    benzer::SearchRequest again = requests[0];
    again.failed = false;
    again.error[0] = '\0';
    engine->search_each(&again, 1, benzer::SearchOptions(), 1);
    EXPECT_FALSE(again.failed) << again.error;
    EXPECT_EQ(again.found, 10);
}

}  // namespace

#endif  // BENZER_HAVE_FAISS
