// tuning.h: choosing an index's search settings for a recall target, by
// measurement.
//
// Knobs such as nprobe and efSearch trade recall for time, and where the
// trade lies depends on the data: nprobe 8 of 2 828 lists finds every true
// neighbour of clustered 256-d rows, while Fashion-MNIST needs many more of
// its 979. So benzer measures instead of guessing. After a build (and after
// every merge that can read exact vectors back) Engine::tune():
//
//   1. samples `queries` indexed rows as queries (each query's own row is
//      left out of both answers: a row finding itself proves nothing);
//   2. computes their exact top k by batched matrix products
//      (exact_batch.h), unfiltered and under filters: random ones that keep
//      10 % and 1 % of the rows (the latter only when that leaves enough
//      rows for the index to be used rather than an exact scan), and
//      conditions on the index's own filter columns (their common values),
//      which are what correlated real filters look like;
//   3. measures the recall@k and the cost of every candidate setting:
//      for IVF the stop rule of ivf_probe.h (min_candidates x patience,
//      and k_factor with exact re-ranking), replayed from one trace per
//      query, so all of them cost one search; for HNSW efSearch; for
//      FastScan IVF a fixed nprobe;
//   4. keeps, for each of a ladder of recall targets, the cheapest setting
//      whose recall (the lowest over the filter modes) reaches it.
//
// The table is small and plain (it is stored in the metapage); a search
// picks the entry for the index's target or the session's benzer.recall.
//
// Core code: no PostgreSQL headers. May throw.
#pragma once

#include <cstdint>

#include "core/exact_batch.h"

namespace benzer {

// How a tuned setting is applied.
enum class TunedKind : std::int32_t {
    kNone = 0,      // not tuned (an index of an older build, or no rows)
    kExact = 1,     // Flat: every search is exact
    kAdaptive = 2,  // IVF probed nearest first under a stop rule
    kNprobe = 3,    // IVF with a fixed nprobe (FastScan has no list scanner)
    kEfSearch = 4,  // HNSW
};

// One measured setting. Plain data with fixed-width fields: it is copied
// into the metapage as it is.
struct TunedSetting {
    float target;                 // the recall target it was chosen for
    float recall;                 // measured recall@k, lowest over the modes
    float recall_unfiltered;      // measured recall@k without a filter
    float k_factor;               // exact re-ranking: candidates per result (0: none)
    std::int64_t min_candidates;  // kAdaptive
    std::int64_t patience;        // kAdaptive
    std::int32_t nprobe;          // kNprobe
    std::int32_t ef_search;       // kEfSearch
    float compared;               // mean rows compared per query, unfiltered
    float compared_filtered;      // the same under the 10 % filter (0: not measured)
};

constexpr int kMaxTunedSettings = 8;

struct TuningTable {
    TunedKind kind;
    std::int32_t queries;                      // queries measured
    std::int32_t k;                            // recall@k
    std::int32_t count;                        // settings used
    float target;                              // the index's own target
    float seconds;                             // time the tuning took
    TunedSetting settings[kMaxTunedSettings];  // ascending target

    // The cheapest setting whose measured recall reaches target, or the
    // one with the highest recall when none does. Null when untuned.
    const TunedSetting* for_target(double target) const;
};

struct TuningRequest {
    double target = 0.95;  // the index's recall target
    std::int32_t queries = 200;
    std::int32_t k = 10;
    std::uint64_t seed = 20261202;
    // Filters measured besides the random ones: conditions on the index's
    // own filter columns (AttributeStore::sample_filters). Real filters are
    // correlated with the vectors (a class label keeps one region of the
    // space), which random ones are not.
    const LabelFilter* filters = nullptr;
    std::int32_t filter_count = 0;
};

// The default recall target (see README, "Recall targets": measured).
constexpr double kDefaultRecallTarget = 0.97;

}  // namespace benzer
