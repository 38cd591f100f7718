// search_rounds.cpp: see search_rounds.h.
#include "core/search_rounds.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace benzer {

namespace {

// HNSW candidates are never widened past this (Faiss allocates per
// candidate).
constexpr int kMaxEfSearch = 1000000;
// efSearch when neither the session nor the index sets one.
constexpr int kDefaultEfSearch = 64;

// Doubles a count, saturating (a recall target of 1 asks for INT64_MAX
// rows compared).
std::int64_t twice(std::int64_t n) {
    n = std::max<std::int64_t>(n, 1);
    return n > std::numeric_limits<std::int64_t>::max() / 2
               ? std::numeric_limits<std::int64_t>::max()
               : n * 2;
}

// NaN sorts after every number.
bool nan_aware_less(double a, double b) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
    return a < b;
}

}  // namespace

SearchRounds::SearchRounds(const SearchOptions& base, const SearchShape& shape,
                           std::int64_t first_k, std::int64_t max_k)
    : options_(base),
      shape_(shape),
      k_(std::max<std::int64_t>(first_k, 1)),
      max_k_(std::max<std::int64_t>(max_k, 1)) {
    // A fixed nprobe turns adaptive probing off (as Engine::search does).
    if (options_.nprobe > 0) options_.adaptive = false;
}

std::int64_t SearchRounds::k(std::int64_t reachable) const {
    return std::max<std::int64_t>(0, std::min(k_, reachable));
}

int SearchRounds::current_nprobe() const {
    return options_.nprobe > 0 ? options_.nprobe : shape_.default_nprobe;
}

bool SearchRounds::can_widen(std::int64_t reachable) const {
    if (options_.adaptive) return false;  // a probe runs until it has its rows
    if (shape_.nlist > 0) return current_nprobe() < shape_.nlist;
    // No lists and no graph: the search compared every allowed row, so a
    // short answer is all there is.
    if (shape_.default_ef_search == 0) return false;
    int ef = options_.ef_search > 0 ? options_.ef_search : kDefaultEfSearch;
    return ef < reachable && ef <= kMaxEfSearch;
}

bool SearchRounds::next(bool came_back_short, std::int64_t reachable) {
    if (reachable <= 0) return false;
    if (came_back_short) {
        // The current reach holds no more allowed rows: widen it, if it can.
        if (!can_widen(reachable)) return false;
        if (shape_.nlist > 0)
            options_.nprobe = std::min(std::max(current_nprobe(), 1) * 2, shape_.nlist);
        else
            options_.ef_search =
                (options_.ef_search > 0 ? options_.ef_search : kDefaultEfSearch) * 4;
    } else if (options_.adaptive) {
        // More rows wanted than the last probe gave: compare more before
        // stopping.
        options_.min_candidates = twice(options_.min_candidates);
        options_.patience = twice(options_.patience);
    } else if (shape_.nlist > 0) {
        // Rows are being discarded after the search (WHERE conditions,
        // invisible rows): the ones still wanted lie further out, so search
        // further as well as for more rows, or a post-filtered query fills
        // its LIMIT with rows that are not the nearest matches.
        options_.nprobe = std::min(std::max(current_nprobe(), 1) * 2, shape_.nlist);
    } else {
        int ef = options_.ef_search > 0 ? options_.ef_search : shape_.default_ef_search;
        if (ef > 0) options_.ef_search = std::min(ef * 2, kMaxEfSearch);
    }
    k_ = std::min(twice(k_), max_k_);
    rounds_++;
    return true;
}

void ResultMerge::set_index(const float* distances, std::int64_t n, bool more) {
    index_ = distances;
    index_count_ = n;
    index_position_ = 0;
    index_more_ = more;
}

void ResultMerge::set_pending(const double* distances, std::int64_t n, bool more) {
    pending_ = distances;
    pending_count_ = n;
    pending_position_ = 0;
    pending_more_ = more;
}

ResultMerge::Next ResultMerge::peek() const {
    bool have_index = index_position_ < index_count_;
    bool have_pending = pending_position_ < pending_count_;
    // A side that ran out but has more must be refilled before anything is
    // compared with it: its next row may be the nearest.
    if (!have_index && index_more_) return Next::kRefillIndex;
    if (!have_pending && pending_more_) return Next::kRefillPending;
    if (!have_index && !have_pending) return Next::kDone;
    if (!have_pending) return Next::kIndex;
    if (!have_index) return Next::kPending;
    return nan_aware_less(pending_[pending_position_], index_[index_position_]) ? Next::kPending
                                                                                : Next::kIndex;
}

std::int64_t ResultMerge::take(Next side) {
    if (side == Next::kIndex) return index_position_++;
    if (side == Next::kPending) return pending_position_++;
    return -1;
}

}  // namespace benzer
