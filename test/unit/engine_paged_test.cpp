// engine_paged_test.cpp: IVF lists kept outside the engine (PagedSearch,
// Engine::append_list) give exactly what the engine gives with its own
// lists, whatever pieces the caller cuts the lists into.
#if defined(BENZER_HAVE_FAISS)

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/engine.h"
#include "core/error.h"

namespace {

using benzer::Engine;
using benzer::Label;
using benzer::LabelFilter;
using benzer::Metric;
using benzer::PagedSearch;
using benzer::SearchOptions;
using benzer::SearchStats;

constexpr int kDim = 24;
constexpr std::int64_t kRows = 6000;

std::vector<float> random_rows(std::uint64_t seed, std::int64_t rows) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> data(static_cast<std::size_t>(rows * kDim));
    for (float& x : data) x = normal(rng);
    return data;
}

std::unique_ptr<Engine> build(Metric metric, const std::vector<float>& data) {
    std::unique_ptr<Engine> engine(Engine::create("IVF64,Flat", kDim, metric));
    engine->train(data.data(), kRows);
    engine->add(data.data(), kRows);
    return engine;
}

// Searches source's lists as a caller keeping them in pages would:
// `piece` entries at a time, through a shell that holds no rows.
std::int64_t paged(const Engine& shell, const Engine& source, const float* query, std::int64_t k,
                   const SearchOptions& options, const LabelFilter* filter, std::int64_t piece,
                   float* distances, Label* labels, SearchStats* stats) {
    PagedSearch search(shell, query, k, options, filter, source.size());
    std::size_t code_size = source.list_code_size();
    for (Label list; (list = search.next_list()) >= 0;) {
        std::int64_t n = source.list_size(list);
        const std::uint8_t* codes = source.list_codes(list);
        const Label* ids = source.list_labels(list);
        for (std::int64_t i = 0; i < n; i += piece)
            search.scan(std::min(piece, n - i), codes + i * code_size, ids + i);
    }
    return search.finish(distances, labels, stats);
}

class PagedSearchTest : public ::testing::TestWithParam<Metric> {};

TEST_P(PagedSearchTest, SameAnswersAsTheEngineItself) {
    Metric metric = GetParam();
    std::vector<float> data = random_rows(7, kRows);
    std::unique_ptr<Engine> engine = build(metric, data);
    ASSERT_TRUE(engine->lists_pageable());
    std::unique_ptr<Engine> shell(engine->clone_empty());
    EXPECT_EQ(shell->size(), 0);

    std::vector<std::uint8_t> bits(static_cast<std::size_t>((kRows + 7) / 8), 0);
    LabelFilter filter;
    filter.bits = bits.data();
    filter.count = kRows;
    for (Label l = 0; l < kRows; l += 7) {
        bits[static_cast<std::size_t>(l >> 3)] |= static_cast<std::uint8_t>(1u << (l & 7));
        filter.allowed++;
    }
    std::vector<float> queries = random_rows(11, 20);
    for (int q = 0; q < 20; q++) {
        for (bool adaptive : {true, false}) {
            for (const LabelFilter* f : {static_cast<const LabelFilter*>(nullptr),
                                         static_cast<const LabelFilter*>(&filter)}) {
                SearchOptions options;
                options.adaptive = adaptive;
                options.min_candidates = 300;
                options.patience = 3;
                if (!adaptive) options.nprobe = 4;
                const float* query = queries.data() + q * kDim;
                float d1[10], d2[10];
                Label l1[10], l2[10];
                SearchStats s1, s2;
                std::int64_t n1 = engine->search(query, 10, options, f, d1, l1, &s1);
                std::int64_t n2 = paged(*shell, *engine, query, 10, options, f, 5, d2, l2, &s2);
                ASSERT_EQ(n1, n2);
                for (std::int64_t i = 0; i < n1; i++) {
                    EXPECT_EQ(l1[i], l2[i]) << "query " << q << " rank " << i << " adaptive "
                                            << adaptive << " filter " << (f != nullptr);
                    EXPECT_FLOAT_EQ(d1[i], d2[i]);
                    if (f != nullptr) {
                        EXPECT_EQ(l2[i] % 7, 0);
                    }
                }
                if (adaptive) {
                    EXPECT_EQ(s1.lists, s2.lists);
                } else {
                    EXPECT_GE(s2.lists, 4);
                }
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Metrics, PagedSearchTest,
                         ::testing::Values(Metric::kL2, Metric::kInnerProduct, Metric::kCosine));

TEST(PagedSearch, QuantisedListsGiveTheSameAnswersToo) {
    std::vector<float> data = random_rows(17, kRows);
    for (const char* factory : {"IVF64,SQ8", "IVF64,PQ8np"}) {
        std::unique_ptr<Engine> engine(Engine::create(factory, kDim, Metric::kL2));
        engine->train(data.data(), kRows);
        engine->add(data.data(), kRows);
        ASSERT_TRUE(engine->lists_pageable()) << factory;
        EXPECT_FALSE(engine->list_codes_are_vectors());
        std::unique_ptr<Engine> shell(engine->clone_empty());
        SearchOptions options;
        options.adaptive = true;
        options.min_candidates = 200;
        options.patience = 2;
        for (int q = 0; q < 10; q++) {
            const float* query = data.data() + q * 97 * kDim;
            float d1[10], d2[10];
            Label l1[10], l2[10];
            std::int64_t n1 = engine->search(query, 10, options, nullptr, d1, l1, nullptr);
            std::int64_t n2 =
                paged(*shell, *engine, query, 10, options, nullptr, 3, d2, l2, nullptr);
            ASSERT_EQ(n1, n2) << factory;
            for (std::int64_t i = 0; i < n1; i++) {
                EXPECT_EQ(l1[i], l2[i]) << factory;
                EXPECT_FLOAT_EQ(d1[i], d2[i]) << factory;
            }
        }
    }
    std::unique_ptr<Engine> refine(Engine::create("IVF64,SQ8,RFlat", kDim, Metric::kL2));
    EXPECT_FALSE(refine->lists_pageable());
}

// Rows encoded with encode_for_list() and scanned with their lists under
// external labels give what adding them to the engine gives; the filter
// judges only the engine's own labels.
TEST(PagedSearch, RowsEncodedForTheirListsJoinTheSearch) {
    constexpr std::int64_t kBuilt = 5000;
    std::vector<float> data = random_rows(23, kRows);
    for (const char* factory : {"IVF64,Flat", "IVF64,SQ8"}) {
        for (Metric metric : {Metric::kL2, Metric::kCosine}) {
            std::unique_ptr<Engine> whole(Engine::create(factory, kDim, metric));
            whole->train(data.data(), kBuilt);
            std::unique_ptr<Engine> built(whole->clone_empty());
            whole->add(data.data(), kRows);
            built->add(data.data(), kBuilt);
            std::unique_ptr<Engine> shell(built->clone_empty());
            std::size_t code_size = built->list_code_size();
            // The inserted rows, list by list.
            std::vector<std::vector<std::uint8_t>> codes(64);
            std::vector<std::vector<Label>> ids(64);
            std::vector<std::uint8_t> code(code_size);
            for (std::int64_t row = kBuilt; row < kRows; row++) {
                std::int64_t list = shell->encode_for_list(data.data() + row * kDim, code.data());
                ASSERT_GE(list, 0);
                ASSERT_LT(list, 64);
                codes[list].insert(codes[list].end(), code.begin(), code.end());
                ids[list].push_back(benzer::kExternalLabelBase + row);
            }
            // Half the built rows allowed; every inserted one (its own terms).
            std::vector<std::uint8_t> bits((kRows + 7) / 8, 0);
            for (std::int64_t label = 0; label < kRows; label += 2)
                bits[label >> 3] |= static_cast<std::uint8_t>(1u << (label & 7));
            LabelFilter half;
            half.bits = bits.data();
            half.count = kBuilt;
            half.allowed = kBuilt / 2;
            LabelFilter whole_half = half;
            for (std::int64_t label = kBuilt; label < kRows; label++)
                bits[label >> 3] |= static_cast<std::uint8_t>(1u << (label & 7));
            whole_half.count = kRows;
            whole_half.allowed = kBuilt / 2 + (kRows - kBuilt);
            SearchOptions options;
            options.nprobe = 8;
            for (int q = 0; q < 8; q++) {
                const float* query = data.data() + (q * 613 + 11) * kDim;
                for (int filtered = 0; filtered < 2; filtered++) {
                    float d1[10], d2[10];
                    Label l1[10], l2[10];
                    std::int64_t n1 = whole->search(
                        query, 10, options, filtered ? &whole_half : nullptr, d1, l1, nullptr);
                    PagedSearch search(*shell, query, 10, options, filtered ? &half : nullptr,
                                       kBuilt, kRows - kBuilt);
                    for (Label list; (list = search.next_list()) >= 0;) {
                        std::int64_t n = built->list_size(list);
                        search.scan(n, built->list_codes(list), built->list_labels(list));
                        search.scan(static_cast<std::int64_t>(ids[list].size()), codes[list].data(),
                                    ids[list].data());
                    }
                    std::int64_t n2 = search.finish(d2, l2, nullptr);
                    ASSERT_EQ(n1, n2) << factory;
                    for (std::int64_t i = 0; i < n1; i++) {
                        Label expect = l1[i] >= kBuilt ? benzer::kExternalLabelBase + l1[i] : l1[i];
                        EXPECT_EQ(expect, l2[i]) << factory << " query " << q;
                        EXPECT_NEAR(d1[i], d2[i], 1e-5f * (1.0f + std::fabs(d1[i]))) << factory;
                    }
                }
            }
        }
    }
}

TEST(PagedSearch, NeverUnderFilledWhileRowsRemain) {
    std::vector<float> data = random_rows(3, kRows);
    std::unique_ptr<Engine> engine = build(Metric::kL2, data);
    std::unique_ptr<Engine> shell(engine->clone_empty());
    // Three allowed rows, anywhere: a fixed nprobe of 1 must go on.
    std::vector<std::uint8_t> bits(static_cast<std::size_t>((kRows + 7) / 8), 0);
    for (Label l : {5, 2500, 5999})
        bits[static_cast<std::size_t>(l >> 3)] |= static_cast<std::uint8_t>(1u << (l & 7));
    LabelFilter filter{bits.data(), kRows, 3};
    SearchOptions options;
    options.nprobe = 1;
    float d[10];
    Label l[10];
    std::int64_t n =
        paged(*shell, *engine, data.data() + 5 * kDim, 10, options, &filter, 1000, d, l, nullptr);
    ASSERT_EQ(n, 3);
    EXPECT_EQ(l[0], 5);  // the query is row 5 itself
    EXPECT_FLOAT_EQ(d[0], 0.0f);
}

TEST(PagedSearch, ZeroCosineQueryAndEmptyFilter) {
    std::vector<float> data = random_rows(5, kRows);
    std::unique_ptr<Engine> engine = build(Metric::kCosine, data);
    std::unique_ptr<Engine> shell(engine->clone_empty());
    std::vector<float> zero(kDim, 0.0f);
    float d[4];
    Label l[4];
    std::int64_t n =
        paged(*shell, *engine, zero.data(), 4, SearchOptions{}, nullptr, 8, d, l, nullptr);
    ASSERT_EQ(n, 4);
    EXPECT_TRUE(std::isnan(d[0]));
    std::vector<std::uint8_t> none(static_cast<std::size_t>((kRows + 7) / 8), 0);
    LabelFilter empty{none.data(), kRows, 0};
    EXPECT_EQ(paged(*shell, *engine, data.data(), 4, SearchOptions{}, &empty, 8, d, l, nullptr), 0);
}

TEST(PagedSearch, ListsReloadIntoTheShell) {
    std::vector<float> data = random_rows(9, kRows);
    std::unique_ptr<Engine> engine = build(Metric::kL2, data);
    std::unique_ptr<Engine> copy(engine->clone_empty());
    for (int list = 0; list < engine->nlist(); list++)
        copy->append_list(list, engine->list_size(list), engine->list_codes(list),
                          engine->list_labels(list));
    copy->finish_lists();
    EXPECT_EQ(copy->size(), kRows);
    ASSERT_TRUE(copy->has_exact_vectors());
    std::vector<float> v(kDim);
    copy->exact_vector(1234, v.data());
    for (int j = 0; j < kDim; j++) EXPECT_EQ(v[j], data[1234 * kDim + j]);
    float d[5];
    Label l[5];
    ASSERT_EQ(copy->search(data.data() + 77 * kDim, 5, SearchOptions{}, nullptr, d, l, nullptr), 5);
    EXPECT_EQ(l[0], 77);
}

// A shell serialised with its centroids apart reads back two ways: whole
// (Engine::deserialize) and in parts, the structure first and then the
// centroids copied into centroid_storage(), as a backend loading it from
// pages does. Both search exactly like the shell they came from.
TEST(PagedSearch, CentroidsApartReadBackBothWays) {
    for (const char* factory : {"IVF64,Flat", "IVF64,SQ8", "IVF64,PQ8np"}) {
        for (Metric metric : {Metric::kL2, Metric::kCosine}) {
            std::vector<float> data = random_rows(31, kRows);
            std::unique_ptr<Engine> engine(Engine::create(factory, kDim, metric));
            engine->train(data.data(), kRows);
            engine->add(data.data(), kRows);
            std::unique_ptr<Engine> shell(engine->clone_empty());
            std::size_t size = shell->serialized_apart_size();
            std::vector<std::uint8_t> blob(size);
            shell->serialize_apart(blob.data(), size);
            // The shell still has its centroids after being written.
            EXPECT_EQ(shell->serialized_apart_size(), size);

            benzer::CentroidsApartHeader header;
            ASSERT_TRUE(Engine::read_apart_header(blob.data(), size, &header));
            // IVF-PQ derives tables from its centroids as it is read: they
            // stay inside its structure.
            bool pq = std::string(factory).find("PQ") != std::string::npos;
            EXPECT_EQ(header.centroid_bytes, pq ? 0u : sizeof(float) * kDim * 64) << factory;
            std::unique_ptr<Engine> whole(Engine::deserialize(blob.data(), size, metric));
            std::unique_ptr<Engine> parts(
                Engine::deserialize(blob.data() + sizeof(header), header.structure_bytes, metric));
            if (!pq) {
                std::uint8_t* room = parts->centroid_storage(header.centroid_bytes);
                std::copy(blob.begin() + sizeof(header) + header.structure_bytes, blob.end(), room);
            }
            // Storage is handed out once (and never for IVF-PQ).
            EXPECT_THROW(parts->centroid_storage(sizeof(float) * kDim * 64), benzer::Error);

            std::vector<float> queries = random_rows(32, 10);
            for (int q = 0; q < 10; q++) {
                const float* query = queries.data() + q * kDim;
                float d0[10], d1[10], d2[10];
                Label l0[10], l1[10], l2[10];
                SearchOptions options;
                std::int64_t n0 =
                    paged(*shell, *engine, query, 10, options, nullptr, 9, d0, l0, nullptr);
                std::int64_t n1 =
                    paged(*whole, *engine, query, 10, options, nullptr, 9, d1, l1, nullptr);
                std::int64_t n2 =
                    paged(*parts, *engine, query, 10, options, nullptr, 9, d2, l2, nullptr);
                ASSERT_EQ(n0, 10);
                ASSERT_EQ(n1, n0);
                ASSERT_EQ(n2, n0);
                for (int i = 0; i < 10; i++) {
                    EXPECT_EQ(l1[i], l0[i]) << factory;
                    EXPECT_EQ(l2[i], l0[i]) << factory;
                    EXPECT_FLOAT_EQ(d2[i], d0[i]);
                }
            }
        }
    }
}

TEST(PagedSearch, CentroidHeadersAreChecked) {
    std::vector<float> data = random_rows(33, kRows);
    std::unique_ptr<Engine> engine = build(Metric::kL2, data);
    std::unique_ptr<Engine> shell(engine->clone_empty());
    // An ordinary Faiss blob has no header.
    std::vector<std::uint8_t> plain(shell->serialized_size());
    shell->serialize(plain.data(), plain.size());
    benzer::CentroidsApartHeader header;
    EXPECT_FALSE(Engine::read_apart_header(plain.data(), plain.size(), &header));
    EXPECT_FALSE(Engine::read_apart_header(plain.data(), 3, &header));
    // A header whose sizes do not add up is an error, not a read past the end.
    std::vector<std::uint8_t> blob(shell->serialized_apart_size());
    shell->serialize_apart(blob.data(), blob.size());
    EXPECT_THROW(Engine::read_apart_header(blob.data(), blob.size() - 1, &header), benzer::Error);
    EXPECT_THROW(Engine::deserialize(blob.data(), blob.size() + 4, Metric::kL2), benzer::Error);
    // Centroids of the wrong size do not fit the quantizer.
    ASSERT_TRUE(Engine::read_apart_header(blob.data(), blob.size(), &header));
    std::unique_ptr<Engine> parts(
        Engine::deserialize(blob.data() + sizeof(header), header.structure_bytes, Metric::kL2));
    EXPECT_THROW(parts->centroid_storage(header.centroid_bytes - 4), benzer::Error);
    // Structures without a flat IVF quantizer keep everything in the structure.
    std::unique_ptr<Engine> flat(Engine::create("Flat", kDim, Metric::kL2));
    flat->add(data.data(), 100);
    std::vector<std::uint8_t> flat_blob(flat->serialized_apart_size());
    flat->serialize_apart(flat_blob.data(), flat_blob.size());
    ASSERT_TRUE(Engine::read_apart_header(flat_blob.data(), flat_blob.size(), &header));
    EXPECT_EQ(header.centroid_bytes, 0u);
    std::unique_ptr<Engine> back(
        Engine::deserialize(flat_blob.data(), flat_blob.size(), Metric::kL2));
    EXPECT_EQ(back->size(), 100);
}

TEST(PagedSearch, RelabelByListGivesEachListARangeOfLabels) {
    std::vector<float> data = random_rows(21, kRows);
    std::unique_ptr<Engine> engine = build(Metric::kL2, data);
    std::vector<Label> new_label(kRows);
    engine->relabel_by_list(new_label.data());
    Label next = 0;
    for (int list = 0; list < engine->nlist(); list++) {
        const Label* ids = engine->list_labels(list);
        for (std::int64_t i = 0; i < engine->list_size(list); i++) EXPECT_EQ(ids[i], next++);
    }
    EXPECT_EQ(next, kRows);
    // Each row's vector is found under its new label.
    std::vector<float> v(kDim);
    for (Label old : {0, 17, 5999}) {
        engine->exact_vector(new_label[old], v.data());
        for (int j = 0; j < kDim; j++) EXPECT_EQ(v[j], data[old * kDim + j]);
    }
    float d[1];
    Label l[1];
    ASSERT_EQ(engine->search(data.data() + 42 * kDim, 1, SearchOptions{}, nullptr, d, l, nullptr),
              1);
    EXPECT_EQ(l[0], new_label[42]);
}

TEST(PagedSearch, ExactCandidatesMatchTheEnginesExactSubset) {
    for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
        std::vector<float> data = random_rows(31, kRows);
        std::unique_ptr<Engine> engine = build(metric, data);
        std::vector<std::uint8_t> bits(static_cast<std::size_t>((kRows + 7) / 8), 0);
        LabelFilter filter{bits.data(), kRows, 0};
        for (Label l = 3; l < kRows; l += 50) {
            bits[static_cast<std::size_t>(l >> 3)] |= static_cast<std::uint8_t>(1u << (l & 7));
            filter.allowed++;
        }
        SearchOptions options;
        options.exact_filter_limit = 1000;
        ASSERT_TRUE(engine->prefers_exact_subset(options, filter, kRows));
        const float* query = data.data() + 9 * kDim;
        float d1[10], d2[10];
        Label l1[10], l2[10];
        SearchStats stats;
        std::int64_t n1 = engine->search(query, 10, options, &filter, d1, l1, &stats);
        EXPECT_TRUE(stats.exact_scan);
        benzer::ExactCandidates exact(*engine, query, 10);
        std::vector<float> v(kDim);
        for (Label l = 3; l < kRows; l += 50) {
            engine->exact_vector(l, v.data());
            exact.add(l, v.data());
        }
        std::int64_t n2 = exact.finish(d2, l2, nullptr);
        ASSERT_EQ(n1, n2);
        for (std::int64_t i = 0; i < n1; i++) {
            EXPECT_EQ(l1[i], l2[i]);
            EXPECT_FLOAT_EQ(d1[i], d2[i]);
        }
    }
    std::vector<float> data = random_rows(33, kRows);
    std::unique_ptr<Engine> engine = build(Metric::kL2, data);
    std::vector<std::uint8_t> all(static_cast<std::size_t>((kRows + 7) / 8), 0xff);
    LabelFilter everything{all.data(), kRows, kRows};
    SearchOptions options;
    options.exact_filter_limit = 100000;
    EXPECT_FALSE(engine->prefers_exact_subset(options, everything, kRows));
}

TEST(PagedSearch, DamagedListsAreAnErrorNotAWrongRow) {
    std::vector<float> data = random_rows(13, kRows);
    std::unique_ptr<Engine> engine = build(Metric::kL2, data);
    std::unique_ptr<Engine> copy(engine->clone_empty());
    // Every list but one twice: labels repeat.
    for (int list = 0; list < engine->nlist(); list++)
        copy->append_list(list, engine->list_size(list), engine->list_codes(list),
                          engine->list_labels(list));
    copy->append_list(0, engine->list_size(1), engine->list_codes(1), engine->list_labels(1));
    EXPECT_THROW(copy->finish_lists(), benzer::Error);
    EXPECT_THROW(copy->append_list(64, 1, engine->list_codes(0), engine->list_labels(0)),
                 benzer::Error);
    std::unique_ptr<Engine> hnsw(Engine::create("HNSW16", kDim, Metric::kL2));
    EXPECT_FALSE(hnsw->lists_pageable());
    EXPECT_THROW(hnsw->list_code_size(), benzer::Error);
}

}  // namespace

#endif
