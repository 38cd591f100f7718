// faiss_search.h: which search settings a faiss index search uses.
//
// Four sources, strongest first:
//   1. the session's benzer.nprobe / benzer.ef_search (explicit knobs);
//   2. the index's nprobe / ef_search options (explicit, baked in at build);
//   3. a recall target: benzer.recall, else the index's recall option, else
//      the default; the index's tuning table (measured at build, see
//      core/tuning.h) gives the cheapest setting that reached it;
//   4. for an index built before tuning existed, the old fixed defaults.
// Scans and batch searches both resolve their settings here, once per
// search, so EXPLAIN and benzer_index_info can say what was used and why.
#pragma once

#include "core/search_rounds.h"
#include "pg/faiss_pages.h"

struct FaissSearchChoice {
    benzer::SearchOptions options;
    double target;                        // the recall target followed (0: none, explicit knobs)
    double measured;                      // the recall the tuner measured for the chosen setting
    const benzer::TunedSetting* setting;  // into the meta given; null if none
    const char* source;                   // "benzer.nprobe", "recall target", ...
};

// Fills choice for a search of index described by meta (which must outlive
// choice->setting).
void faiss_choose_search(Relation index, const FaissMeta& meta, FaissSearchChoice* choice);

// The index's own recall target (its option, or the default).
double faiss_index_recall_target(Relation index);

// "nprobe 8", "probe >= 40 rows, patience 80, k_factor 2", ... for EXPLAIN
// and benzer_index_info. Returns a palloc'd string.
char* faiss_describe_setting(benzer::TunedKind kind, const benzer::TunedSetting& setting);

// What rounds of a search of engine's structure can widen (lists, graph
// candidates); an empty shape for a null engine.
benzer::SearchShape faiss_search_shape(const benzer::Engine* engine);
