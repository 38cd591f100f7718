// search_rounds_test.cpp: the rounds of a search and the merge of the
// index's rows with pending rows (core/search_rounds.h), as the index scan
// and benzer_batch_search use them.
#if defined(BENZER_HAVE_FAISS)

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/search_rounds.h"

namespace {

using benzer::ResultMerge;
using benzer::SearchOptions;
using benzer::SearchRounds;
using benzer::SearchShape;

SearchShape ivf(int nlist, int default_nprobe) {
    SearchShape shape;
    shape.nlist = nlist;
    shape.default_nprobe = default_nprobe;
    return shape;
}

TEST(SearchRounds, FirstRoundUsesTheGivenSettings) {
    SearchOptions base;
    base.nprobe = 3;
    SearchRounds rounds(base, ivf(64, 8), 10, 1000);
    EXPECT_EQ(rounds.options().nprobe, 3);
    EXPECT_EQ(rounds.k(1000000), 10);
    EXPECT_EQ(rounds.k(4), 4);  // never more than can be found
    EXPECT_EQ(rounds.k(0), 0);
    EXPECT_EQ(rounds.rounds(), 1);
}

TEST(SearchRounds, FullRoundsGoDeeperAndFurther) {
    SearchOptions base;  // nprobe 0: the index's default
    SearchRounds rounds(base, ivf(64, 8), 100, 1000);
    ASSERT_TRUE(rounds.next(false, 5000));
    EXPECT_EQ(rounds.options().nprobe, 16);
    EXPECT_EQ(rounds.k(5000), 200);
    ASSERT_TRUE(rounds.next(false, 5000));
    EXPECT_EQ(rounds.options().nprobe, 32);
    EXPECT_EQ(rounds.k(5000), 400);
    ASSERT_TRUE(rounds.next(false, 5000));
    ASSERT_TRUE(rounds.next(false, 5000));
    EXPECT_EQ(rounds.options().nprobe, 64);  // capped at nlist
    EXPECT_EQ(rounds.k(5000), 1000);         // capped at max_k
    EXPECT_EQ(rounds.rounds(), 5);
}

TEST(SearchRounds, ShortRoundsWidenUntilEveryListIsVisited) {
    SearchOptions base;
    base.nprobe = 20;
    SearchRounds rounds(base, ivf(64, 8), 10, 1000);
    ASSERT_TRUE(rounds.can_widen(100));
    ASSERT_TRUE(rounds.next(true, 100));
    EXPECT_EQ(rounds.options().nprobe, 40);
    ASSERT_TRUE(rounds.next(true, 100));
    EXPECT_EQ(rounds.options().nprobe, 64);
    EXPECT_FALSE(rounds.can_widen(100));
    EXPECT_FALSE(rounds.next(true, 100));  // every list visited: nothing more
    // A full round still deepens.
    EXPECT_TRUE(rounds.next(false, 100));
}

TEST(SearchRounds, NothingReachableEndsTheSearch) {
    SearchRounds rounds(SearchOptions{}, ivf(64, 8), 10, 1000);
    EXPECT_FALSE(rounds.next(false, 0));
    EXPECT_FALSE(rounds.next(true, 0));
}

TEST(SearchRounds, AdaptiveProbesCompareMoreAndNeverWiden) {
    SearchOptions base;
    base.adaptive = true;
    base.min_candidates = 300;
    base.patience = 3;
    SearchRounds rounds(base, ivf(64, 8), 10, 1000);
    EXPECT_FALSE(rounds.can_widen(1000));
    ASSERT_TRUE(rounds.next(false, 1000));
    EXPECT_EQ(rounds.options().min_candidates, 600);
    EXPECT_EQ(rounds.options().patience, 6);
    EXPECT_EQ(rounds.options().nprobe, 0);  // still adaptive
    // A short probe ran to its end: nothing allowed is left.
    EXPECT_FALSE(rounds.next(true, 1000));
}

TEST(SearchRounds, ExactProbesDoNotOverflow) {
    // benzer.recall = 1 asks an adaptive probe to compare every row.
    SearchOptions base;
    base.adaptive = true;
    base.min_candidates = std::numeric_limits<std::int64_t>::max();
    SearchRounds rounds(base, ivf(64, 8), std::numeric_limits<std::int64_t>::max() / 2 + 1,
                        std::numeric_limits<std::int64_t>::max());
    ASSERT_TRUE(rounds.next(false, 10));
    EXPECT_EQ(rounds.options().min_candidates, std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(rounds.k(std::numeric_limits<std::int64_t>::max()),
              std::numeric_limits<std::int64_t>::max());
}

TEST(SearchRounds, AFixedNprobeTurnsAdaptiveProbingOff) {
    SearchOptions base;
    base.adaptive = true;
    base.nprobe = 4;
    SearchRounds rounds(base, ivf(64, 8), 10, 1000);
    EXPECT_FALSE(rounds.options().adaptive);
    EXPECT_TRUE(rounds.next(true, 1000));
    EXPECT_EQ(rounds.options().nprobe, 8);
}

TEST(SearchRounds, HnswCandidatesGrowButNotPastTheRows) {
    SearchShape hnsw;
    hnsw.default_ef_search = 40;
    SearchRounds rounds(SearchOptions{}, hnsw, 10, 1000);
    ASSERT_TRUE(rounds.next(false, 100000));
    EXPECT_EQ(rounds.options().ef_search, 80);  // full: twice the index's
    ASSERT_TRUE(rounds.next(true, 100000));
    EXPECT_EQ(rounds.options().ef_search, 320);  // short: four times
    // Candidates already cover every reachable row: a short round is final.
    EXPECT_FALSE(rounds.next(true, 300));
}

TEST(SearchRounds, FlatStructuresStopWhenShort) {
    // No lists and no efSearch: a short answer is every allowed row.
    SearchRounds rounds(SearchOptions{}, SearchShape{}, 10, 1000);
    EXPECT_FALSE(rounds.can_widen(5000));
    EXPECT_FALSE(rounds.next(true, 5000));
    EXPECT_TRUE(rounds.next(false, 5000));
    EXPECT_EQ(rounds.options().ef_search, 0);
}

std::vector<char> merged(ResultMerge* merge) {
    std::vector<char> sides;
    for (;;) {
        ResultMerge::Next next = merge->peek();
        if (next == ResultMerge::Next::kIndex) {
            sides.push_back('i');
        } else if (next == ResultMerge::Next::kPending) {
            sides.push_back('p');
        } else {
            sides.push_back(next == ResultMerge::Next::kDone          ? '.'
                            : next == ResultMerge::Next::kRefillIndex ? 'I'
                                                                      : 'P');
            return sides;
        }
        merge->take(next);
    }
}

TEST(ResultMerge, NearestFirstTiesToTheIndex) {
    float index[] = {1.0f, 2.0f, 4.0f};
    double pending[] = {0.5, 2.0, 3.0, 9.0};
    ResultMerge merge;
    merge.set_index(index, 3, false);
    merge.set_pending(pending, 4, false);
    EXPECT_EQ(merged(&merge), (std::vector<char>{'p', 'i', 'i', 'p', 'p', 'i', 'p', '.'}));
}

TEST(ResultMerge, StopsWhereASideWithMoreRunsOut) {
    float index[] = {1.0f, 2.0f};
    double pending[] = {1.5, 5.0};
    ResultMerge merge;
    merge.set_index(index, 2, true);
    merge.set_pending(pending, 2, false);
    // After the index's two rows its next one could be nearer than 5.0.
    EXPECT_EQ(merged(&merge), (std::vector<char>{'i', 'p', 'i', 'I'}));
    EXPECT_EQ(merge.pending_position(), 1);
    float more[] = {3.0f};
    merge.set_index(more, 1, false);
    EXPECT_EQ(merged(&merge), (std::vector<char>{'i', 'p', '.'}));

    ResultMerge other;
    other.set_index(index, 2, false);
    other.set_pending(pending, 1, true);
    EXPECT_EQ(merged(&other), (std::vector<char>{'i', 'p', 'P'}));
}

TEST(ResultMerge, NanSortsLastOnBothSides) {
    const float nan_f = std::numeric_limits<float>::quiet_NaN();
    const double nan_d = std::numeric_limits<double>::quiet_NaN();
    float index[] = {1.0f, nan_f};
    double pending[] = {2.0, nan_d};
    ResultMerge merge;
    merge.set_index(index, 2, false);
    merge.set_pending(pending, 2, false);
    // NaN never comes before a number; between two NaNs the index goes first.
    EXPECT_EQ(merged(&merge), (std::vector<char>{'i', 'p', 'i', 'p', '.'}));
}

TEST(ResultMerge, EmptySides) {
    ResultMerge merge;
    merge.set_index(nullptr, 0, false);
    merge.set_pending(nullptr, 0, false);
    EXPECT_EQ(merge.peek(), ResultMerge::Next::kDone);
    merge.set_index(nullptr, 0, true);
    EXPECT_EQ(merge.peek(), ResultMerge::Next::kRefillIndex);
    EXPECT_EQ(merge.take(ResultMerge::Next::kRefillIndex), -1);
}

}  // namespace

#endif  // BENZER_HAVE_FAISS
