// search_rounds.h: the rounds of a nearest-neighbour search, and the merge
// of the index's rows with the rows inserted since it was built.
//
// An index scan cannot know how many rows the query will take (WHERE
// conditions above it discard some, invisible rows are skipped), and
// benzer_batch_search drops rows that are not visible. Both therefore search
// in rounds: ask the index for k rows; when more are wanted, ask again,
// deeper (k doubles) and further out (twice the IVF lists or HNSW
// candidates, or a probe that compares twice as many rows), because the
// rows still wanted lie further from the query than those already seen.
// A round that comes back short (fewer rows than asked) means the current
// reach is exhausted: widen it (IVF lists, four times the HNSW candidates)
// or, when it cannot widen (every list visited, an adaptive probe that ran
// to its end), stop.
//
// Each round's rows are merged, nearest first, with the exact results over
// the rows not in the index (pending rows). Either side may be only the
// first part of what it could give: the merge then stops where that side's
// next row, not yet fetched, could come before the other side's next one.
//
// The index scan (src/pg/faiss_scan.cpp) and benzer_batch_search
// (src/pg/batch_search.cpp) both run these two classes; this file knows
// nothing of PostgreSQL, so the rules are unit tested on their own
// (test/unit/search_rounds_test.cpp).
#pragma once

#include <cstdint>

#include "core/engine.h"

namespace benzer {

// What the structure being searched allows a round to grow.
struct SearchShape {
    int nlist = 0;              // IVF lists; 0 for HNSW and flat structures
    int default_nprobe = 0;     // the index's own nprobe (IVF)
    int default_ef_search = 0;  // the index's own efSearch (HNSW); 0: not a graph
};

// The settings of successive rounds.
class SearchRounds {
  public:
    // base: the first round's options (nprobe / ef_search 0 mean the index's
    // defaults); first_k: the first round's rows (the LIMIT when known);
    // max_k: the most rows one round asks for.
    SearchRounds(const SearchOptions& base, const SearchShape& shape, std::int64_t first_k,
                 std::int64_t max_k);

    // The options of the coming round.
    const SearchOptions& options() const { return options_; }

    // Rows the coming round asks for, when `reachable` rows may still be
    // found (allowed and not yet returned, or not yet seen).
    std::int64_t k(std::int64_t reachable) const;

    // Rounds begun so far (next() calls plus the first).
    std::int64_t rounds() const { return rounds_; }

    // Prepares the next round after one that came back short (fewer rows
    // than it asked for) or full. Returns false when no further round can
    // find a row the last ones could not: nothing reachable, a short
    // adaptive probe, every IVF list visited, HNSW candidates beyond the
    // reachable rows. After a full round it always deepens.
    bool next(bool came_back_short, std::int64_t reachable);

    // Whether a round that came back short could still be widened.
    bool can_widen(std::int64_t reachable) const;

  private:
    int current_nprobe() const;

    SearchOptions options_;
    SearchShape shape_;
    std::int64_t k_;
    std::int64_t max_k_;
    std::int64_t rounds_ = 1;
};

// Merges one round of the index's rows (distances ascending) with the
// pending rows' (ascending, NaN last), nearest first; ties go to the index.
class ResultMerge {
  public:
    enum class Next {
        kIndex,          // the index's next row comes first
        kPending,        // the pending rows' next row comes first
        kRefillIndex,    // the index's rows ran out but it has more: a round
        kRefillPending,  // the pending rows ran out but there are more
        kDone,           // both sides are exhausted
    };

    // The index side: n distances; more: it could give further rows.
    void set_index(const float* distances, std::int64_t n, bool more);
    // The pending side, likewise.
    void set_pending(const double* distances, std::int64_t n, bool more);

    // Which row comes next; the caller then calls take().
    Next peek() const;
    // Consumes the row peek() named and returns its position on its side.
    std::int64_t take(Next side);

    std::int64_t index_position() const { return index_position_; }
    std::int64_t pending_position() const { return pending_position_; }

  private:
    const float* index_ = nullptr;
    std::int64_t index_count_ = 0;
    std::int64_t index_position_ = 0;
    bool index_more_ = false;
    const double* pending_ = nullptr;
    std::int64_t pending_count_ = 0;
    std::int64_t pending_position_ = 0;
    bool pending_more_ = false;
};

}  // namespace benzer
