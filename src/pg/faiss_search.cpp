// faiss_search.cpp: resolving the search settings of one search (see
// faiss_search.h for the order and why).
#include "pg/faiss_search.h"

#include "pg/guarded.h"

extern "C" {
#include "lib/stringinfo.h"
}

#include <cmath>

double faiss_index_recall_target(Relation index) {
    const FaissOptions* options = faiss_get_options(index);
    return options->recall > 0 ? options->recall : benzer::kDefaultRecallTarget;
}

void faiss_choose_search(Relation index, const FaissMeta& meta, FaissSearchChoice* choice) {
    *choice = FaissSearchChoice{};
    benzer::SearchOptions& options = choice->options;
    options.nprobe = benzer_nprobe;
    options.ef_search = benzer_ef_search;
    options.k_factor = static_cast<float>(benzer_k_factor);
    options.exact_filter_limit = benzer_exact_filter_limit;
    if (benzer_nprobe > 0 || benzer_ef_search > 0) {
        choice->source = benzer_nprobe > 0 ? "benzer.nprobe" : "benzer.ef_search";
        return;
    }
    const FaissOptions* index_options = faiss_get_options(index);
    if (index_options->nprobe > 0 || index_options->ef_search > 0) {
        // Baked into the Faiss structure at build: the engine's defaults.
        choice->source =
            index_options->nprobe > 0 ? "index option nprobe" : "index option ef_search";
        return;
    }
    const benzer::TuningTable& table = meta.tuning;
    if (table.kind == benzer::TunedKind::kNone) {
        choice->source = "untuned defaults";
        return;
    }
    double target = benzer_recall > 0 ? benzer_recall : faiss_index_recall_target(index);
    choice->target = target;
    choice->source = benzer_recall > 0 ? "benzer.recall" : "recall target";
    if (table.kind == benzer::TunedKind::kExact) {
        choice->measured = 1.0;
        return;
    }
    if (target >= 1.0) {
        // Exact: every list (IVF), or a candidate list as long as the index.
        options.adaptive = table.kind == benzer::TunedKind::kAdaptive;
        options.min_candidates = INT64_MAX;
        if (table.kind == benzer::TunedKind::kNprobe) options.nprobe = 1 << 20;
        if (table.kind == benzer::TunedKind::kEfSearch)
            options.ef_search = static_cast<int>(Min(meta.main_rows, 1000000));
        choice->measured = 1.0;
        return;
    }
    const benzer::TunedSetting* s = table.for_target(target);
    if (s == nullptr) return;
    choice->setting = s;
    choice->measured = s->recall;
    if (options.k_factor <= 0 && s->k_factor > 0) options.k_factor = s->k_factor;
    switch (table.kind) {
        case benzer::TunedKind::kAdaptive:
            options.adaptive = true;
            options.min_candidates = s->min_candidates;
            options.patience = s->patience;
            options.expected_compared = Max(s->compared, s->compared_filtered);
            break;
        case benzer::TunedKind::kNprobe:
            options.nprobe = s->nprobe;
            break;
        case benzer::TunedKind::kEfSearch:
            options.ef_search = s->ef_search;
            break;
        default:
            break;
    }
}

benzer::SearchShape faiss_search_shape(const benzer::Engine* engine) {
    benzer::SearchShape shape;
    if (engine == nullptr) return shape;
    guarded("faiss index scan", [&] {
        shape.nlist = engine->nlist();
        shape.default_nprobe = engine->default_nprobe();
        shape.default_ef_search = engine->default_ef_search();
    });
    return shape;
}

char* faiss_describe_setting(benzer::TunedKind kind, const benzer::TunedSetting& s) {
    StringInfoData out;
    initStringInfo(&out);
    switch (kind) {
        case benzer::TunedKind::kExact:
            appendStringInfoString(&out, "exact");
            break;
        case benzer::TunedKind::kAdaptive:
            appendStringInfo(
                &out,
                "lists nearest first until %lld rows compared and %lld lists without a better one",
                static_cast<long long>(s.min_candidates), static_cast<long long>(s.patience));
            break;
        case benzer::TunedKind::kNprobe:
            appendStringInfo(&out, "nprobe %d", s.nprobe);
            break;
        case benzer::TunedKind::kEfSearch:
            appendStringInfo(&out, "efSearch %d", s.ef_search);
            break;
        default:
            appendStringInfoString(&out, "untuned");
            break;
    }
    if (s.k_factor > 0) appendStringInfo(&out, ", k_factor %g", s.k_factor);
    return out.data;
}
