// engine_robustness_test.cpp: every factory form benzer accepts, on
// degenerate data, through every engine operation.
//
// Faiss 1.7.3 aborts, divides by zero or loops on some inputs (factory.h).
// benzer's grammar keeps those strings out; this test drives each accepted
// form through train, add, search (single and batched, filtered and not,
// k from 1 to beyond the row count), serialisation and compaction on data
// that breaks careless code: one row, exactly the training minimum, all rows
// equal, three repeated values, zeros. An abort kills the test binary, so
// "the test ran" is itself the main assertion; the rest checks that
// searches return what they should.
#if defined(BENZER_HAVE_FAISS)

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/engine.h"
#include "core/error.h"
#include "core/factory.h"

namespace {

using benzer::Engine;
using benzer::Error;
using benzer::Label;
using benzer::LabelFilter;
using benzer::Metric;
using benzer::SearchOptions;

constexpr int kDim = 16;

// Data shapes that have crashed Faiss-based code.
enum class Shape { kRandom, kEqual, kThreeValues, kZeros };

std::vector<float> make_rows(Shape shape, std::int64_t n, unsigned seed) {
    std::vector<float> x(static_cast<size_t>(n) * kDim);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (std::int64_t i = 0; i < n; i++)
        for (int j = 0; j < kDim; j++) {
            float& v = x[static_cast<size_t>(i * kDim + j)];
            switch (shape) {
                case Shape::kRandom:
                    v = uniform(rng);
                    break;
                case Shape::kEqual:
                    v = 0.5f;
                    break;
                case Shape::kThreeValues:
                    v = i % 3 == 0 ? 0.5f : (i % 3 == 1 ? 0.25f : uniform(rng));
                    break;
                case Shape::kZeros:
                    v = 0.0f;
                    break;
            }
        }
    return x;
}

// The accepted forms (factory.h), small enough for 16 dimensions.
const char* const kFactories[] = {"Flat",
                                  "HNSW2",
                                  "HNSW8",
                                  "HNSW8,SQ4",
                                  "HNSW8_PQ4",
                                  "HNSW4,SQfp16",
                                  "IVF1,Flat",
                                  "IVF4,Flat",
                                  "IVF4,PQ4np",
                                  "IVF4,PQ4x4fs",
                                  "IVF4,PQ16x4fs",
                                  "IVF4,SQ8",
                                  "IVF4,SQ4",
                                  "PQ4x4fs",
                                  "PQ16x4fs",
                                  "PQ4",
                                  "PQ4x1",
                                  "PQ4x2",
                                  "PQ8x3",
                                  "PQ2",
                                  "SQ4",
                                  "SQ6",
                                  "SQ8",
                                  "SQfp16",
                                  "PCA1,Flat",
                                  "PCA4,IVF2,Flat",
                                  "PCAR8,HNSW4",
                                  "OPQ4,IVF2,PQ4np",
                                  "OPQ2_8,Flat",
                                  "RR8,Flat",
                                  "RR16,HNSW4,SQ8",
                                  "L2norm,Flat",
                                  "IVF4,PQ4np,RFlat",
                                  "PQ4x4fs,RFlat",
                                  "HNSW8,RFlat",
                                  "Flat,RFlat",
                                  "IVF2,SQfp16,RFlat",
                                  "PCA8,HNSW3_PQ2"};

struct Case {
    const char* factory;
    Metric metric;
    Shape shape;
};

class Robustness : public ::testing::TestWithParam<Case> {
  protected:
    void SetUp() override {
        saved_ = omp_get_max_threads();
        omp_set_num_threads(1);
    }
    void TearDown() override { omp_set_num_threads(saved_); }
    int saved_ = 1;
};

// Searches with every k and filter; every row must be reachable once the
// search is wide enough (nprobe = nlist), and results never repeat a label.
void check_searches(const Engine& engine, const std::vector<float>& rows, std::int64_t n,
                    const char* factory) {
    std::int64_t ks[] = {1, 5, 21, 50, n, n + 5};
    SearchOptions wide;
    wide.nprobe = 1 << 20;  // every list: the index must then find every row
    wide.exact_filter_limit = 0;
    std::vector<std::uint8_t> half((n + 7) / 8, 0);
    std::int64_t half_count = 0;
    for (std::int64_t i = 0; i < n; i += 2) {
        half[i >> 3] |= static_cast<std::uint8_t>(1u << (i & 7));
        half_count++;
    }
    LabelFilter filter{half.data(), n, half_count};
    for (std::int64_t k : ks) {
        if (k <= 0) continue;
        for (int filtered = 0; filtered < 2; filtered++) {
            const LabelFilter* f = filtered ? &filter : nullptr;
            std::int64_t expect = std::min(k, filtered ? half_count : n);
            std::vector<float> d(static_cast<size_t>(k));
            std::vector<Label> l(static_cast<size_t>(k));
            std::int64_t found =
                engine.search(rows.data(), k, wide, f, d.data(), l.data(), nullptr);
            std::set<Label> seen(l.begin(), l.begin() + found);
            EXPECT_EQ(static_cast<std::int64_t>(seen.size()), found) << factory << " k=" << k;
            for (std::int64_t i = 0; i < found; i++) {
                EXPECT_GE(l[i], 0) << factory;
                EXPECT_LT(l[i], n) << factory;
                if (f != nullptr) {
                    EXPECT_TRUE(f->contains(l[i])) << factory;
                }
            }
            EXPECT_EQ(found, expect) << factory << " k=" << k << " filtered=" << filtered;

            // The same queries batched (3 copies of row 0's vector).
            std::int64_t nq = 3;
            std::vector<float> queries;
            for (int q = 0; q < nq; q++)
                queries.insert(queries.end(), rows.begin(), rows.begin() + kDim);
            std::vector<float> bd(static_cast<size_t>(nq * k));
            std::vector<Label> bl(static_cast<size_t>(nq * k));
            std::vector<std::int64_t> counts(static_cast<size_t>(nq));
            engine.search_batch(nq, queries.data(), k, wide, f, bd.data(), bl.data(), counts.data(),
                                nullptr);
            for (int q = 0; q < nq; q++)
                EXPECT_EQ(counts[static_cast<size_t>(q)], expect)
                    << factory << " batch k=" << k << " filtered=" << filtered;
        }
    }
}

TEST_P(Robustness, TrainAddSearchSerialiseCompact) {
    const Case& c = GetParam();
    std::unique_ptr<Engine> engine(Engine::create(c.factory, kDim, c.metric));
    std::int64_t need = engine->min_training_rows();
    // Too few rows: a clear error, never a crash.
    if (need > 1) {
        std::vector<float> few = make_rows(c.shape, need - 1, 7);
        EXPECT_THROW(engine->train(few.data(), need - 1), Error) << c.factory;
    }
    std::int64_t n = std::max<std::int64_t>(need, 1);
    if (c.shape == Shape::kThreeValues) n = std::max<std::int64_t>(n, 600);
    std::vector<float> rows = make_rows(c.shape, n, 11);
    engine->train(rows.data(), n);
    engine->add(rows.data(), n);
    ASSERT_EQ(engine->size(), n);
    check_searches(*engine, rows, n, c.factory);

    // Serialise, load, search again; compact into an empty copy.
    std::vector<std::uint8_t> bytes(engine->serialized_size());
    engine->serialize(bytes.data(), bytes.size());
    std::unique_ptr<Engine> loaded(Engine::deserialize(bytes.data(), bytes.size(), c.metric));
    check_searches(*loaded, rows, n, c.factory);
    std::unique_ptr<Engine> empty(loaded->clone_empty());
    EXPECT_EQ(empty->size(), 0);
    empty->add(rows.data(), n);
    check_searches(*empty, rows, n, c.factory);
}

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    for (const char* f : kFactories) {
        for (Shape shape : {Shape::kRandom, Shape::kEqual, Shape::kThreeValues, Shape::kZeros})
            cases.push_back({f, Metric::kL2, shape});
        cases.push_back({f, Metric::kInnerProduct, Shape::kRandom});
        cases.push_back({f, Metric::kInnerProduct, Shape::kEqual});
        cases.push_back({f, Metric::kInnerProduct, Shape::kThreeValues});
        cases.push_back({f, Metric::kCosine, Shape::kThreeValues});
        cases.push_back({f, Metric::kCosine, Shape::kZeros});
    }
    return cases;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
    std::string name;
    for (const char* p = info.param.factory; *p; p++)
        name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
    const char* metrics[] = {"l2", "ip", "cos"};
    const char* shapes[] = {"random", "equal", "three", "zeros"};
    return name + "_" + metrics[static_cast<int>(info.param.metric)] + "_" +
           shapes[static_cast<int>(info.param.shape)] + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(EveryForm, Robustness, ::testing::ValuesIn(all_cases()), case_name);

// --- The grammar ---------------------------------------------------------

TEST(FactoryGrammar, AcceptsTheDocumentedForms) {
    for (const char* f : kFactories) EXPECT_NO_THROW(benzer::parse_factory(f, kDim)) << f;
    EXPECT_NO_THROW(benzer::parse_factory("IVF1024, PQ8x4fs, RFlat", 16));
    EXPECT_EQ(benzer::parse_factory("IVF1024, PQ8x4fs, RFlat", 16).canonical,
              "IVF1024,PQ8x4fs,RFlat");
}

TEST(FactoryGrammar, RefusesWhatFaissMisuses) {
    // Each of these crashed, hung or silently misbehaved in Faiss 1.7.3.
    const char* bad[] = {"HNSW0",
                         "HNSW1",
                         "HNSW999",
                         "PQ8x0",
                         "IVF16,PQ8x0",
                         "OPQ4_0,Flat",
                         "NSG0",
                         "NSG2",
                         "NSG32",
                         "PCA0,Flat",
                         "RR0,Flat",
                         "IVF0,Flat",
                         "IVF99999999999,Flat",
                         "OPQ3,Flat",
                         "PQ3",
                         "PQ17",
                         "PQ8x9",
                         "IVF16,PQ4x12",
                         "PQ4x8fs",
                         "PCA17,Flat",
                         "IDMap,Flat",
                         "BFlat",
                         "IVF16_HNSW8,Flat",
                         "IVF16(PQ4),Flat",
                         "Flat,Refine(Flat)",
                         "RFlat,Flat",
                         "IVF16",
                         "IVF16,RFlat",
                         "LSH",
                         "Flat,Flat",
                         "",
                         ",Flat",
                         "Flat,",
                         "SQ7",
                         "SQ8_direct",
                         "PCAW8,Flat",
                         "HNSW8_PQ4x4",
                         "IVF16,LSQ4x4",
                         "Residual4x8",
                         "HNSW8,PQ4x4fs",
                         "IVF-1,Flat",
                         "IVF1e3,Flat",
                         "PQ+4"};
    for (const char* f : bad) {
        try {
            benzer::parse_factory(f, kDim);
            ADD_FAILURE() << "accepted " << f;
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), benzer::ErrorKind::kInvalidParameter) << f;
            EXPECT_NE(std::string(e.what()), "") << f;
        }
    }
}

TEST(FactoryGrammar, UnknownDimensionSkipsOnlyDivisibility) {
    EXPECT_NO_THROW(benzer::parse_factory("PQ3", 0));
    EXPECT_NO_THROW(benzer::parse_factory("OPQ3,IVF8,PQ3np", 0));
    EXPECT_THROW(benzer::parse_factory("HNSW0", 0), Error);
    EXPECT_THROW(benzer::parse_factory("NSG32", 0), Error);
}

TEST(FactoryGrammar, TrainingMinimum) {
    EXPECT_EQ(benzer::parse_factory("Flat", 16).min_training_rows, 1);
    EXPECT_EQ(benzer::parse_factory("IVF300,Flat", 16).min_training_rows, 300);
    EXPECT_EQ(benzer::parse_factory("IVF16,PQ4np", 16).min_training_rows, 256);
    EXPECT_EQ(benzer::parse_factory("PQ4x4fs", 16).min_training_rows, 16);
    EXPECT_EQ(benzer::parse_factory("OPQ4,Flat", 16).min_training_rows, 256);
}

TEST(FactoryGrammar, MessagesNameTheProblem) {
    try {
        benzer::parse_factory("IVF99999999999,Flat", 16);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("between 1 and 1048576"), std::string::npos)
            << e.what();
    }
    try {
        benzer::parse_factory("NSG32", 16);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("HNSW"), std::string::npos) << e.what();
    }
}

}  // namespace

#endif  // BENZER_HAVE_FAISS
