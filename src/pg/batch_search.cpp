// batch_search.cpp: benzer_batch_search(), many nearest-neighbour queries in
// one call.
//
//   benzer_batch_search(index regclass, queries vector[], k integer,
//                       filter jsonb)
//     RETURNS TABLE (query integer, rank integer, tid tid,
//                    distance double precision)
//
// `query` is the 1-based position in the array, `tid` the heap tuple of the
// row (join with `ON t.ctid = r.tid`), `distance` the value of the index's
// operator. What a query gets is what `ORDER BY embedding <op> q LIMIT k`
// through the same index would give:
//
//  - the index's rows only (so a partial index's predicate holds), minus
//    the rows VACUUM tombstoned; rows inserted since the last merge
//    (pending rows) are searched exactly and merged in distance order;
//  - filter: conditions on the index's filter columns, as a JSON object
//    ({"season": "winter", "tags&&": ["floral"]}), applied inside the
//    search like WHERE conditions on an ordered index scan;
//  - visibility: every candidate is fetched from the heap (following HOT
//    chains) under the statement's snapshot, and only visible rows are
//    returned, with the TID of the visible version; when invisible rows
//    leave a query short of k, it searches again deeper (twice the rows,
//    or more IVF lists / HNSW candidates), never returning a row twice,
//    until it has k rows, the index has no more, or benzer.max_scan_tuples
//    candidates were examined.
//
// The Faiss work for a batch of queries is one Engine::search_batch call
// (Faiss's batched paths, OpenMP over queries with benzer.threads threads)
// and one BLAS pass over the pending rows, instead of one index scan per
// query.
//
// Cleanup: the cache pin is released by a reset callback on this call's
// memory context, so an ERROR (cancel, bad filter) cannot leak it.
#include "pg/faiss.h"

#include "core/distance.h"
#include "core/exact_batch.h"
#include "pg/faiss_attributes.h"
#include "pg/faiss_cache.h"
#include "pg/faiss_engine_search.h"
#include "pg/faiss_lists.h"
#include "pg/faiss_pages.h"
#include "pg/faiss_rerank.h"
#include "pg/faiss_search.h"
#include "pg/faiss_tails.h"
#include "pg/faiss_view.h"
#include "pg/guard.h"
#include "pg/guarded.h"
#include "pg/vector.h"

extern "C" {
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/tuptable.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
}

#include <cmath>
#include <string_view>

namespace {

constexpr int32 kMaxK = 100000;
// Queries searched together (one Faiss call, one BLAS pass).
constexpr int64 kQueryBatch = 1024;
// Bytes one result entry (a candidate of a query, then maybe an output row)
// takes across the search buffers, the seen-rows table and the output,
// generously. work_mem / kEntryBytes entries are held at once.
constexpr Size kEntryBytes = 128;
// Most result entries (queries x candidates) held at once.

// --- The index and what a search needs of it ----------------------------

struct BatchState {
    Relation heap;
    Relation index;
    FaissMeta meta;
    FaissLoadedIndex* entry;  // pinned while the call runs
    benzer::Metric metric;
    int dim;

    uint8* allowed;  // live labels that match the filter
    int64 nlabels;
    int64 allowed_count;

    // Rows inserted into list tails (faiss_tails.h), searched with their
    // lists; tails.kinds / conditions judge them.
    bool have_tails;
    FaissTailSearch tails;
    benzer::AttributeKind kinds[kFaissMaxFilterColumns];

    // Compressed codes in pages: candidates re-ranked by the heap rows'
    // vectors (faiss_rerank.h).
    bool reranking;
    FaissReranker reranker;

    // Pending rows that match the filter.
    FaissPendingRows pending;
    float* pending_search;  // normalised copies (cosine), else pending.vectors

    // Visibility.
    IndexFetchTableData* fetch;
    TupleTableSlot* slot;
    Snapshot snapshot;

    // Result entries held at once (work_mem / kEntryBytes).
    int64 max_entries;

    // Statistics for the DEBUG1 line.
    int64 rounds;
    int64 candidates;
    int64 fetched;
    int64 invisible;
};

// --- filter: JSON object -> core conditions ------------------------------

struct FilterColumns {
    int count;
    benzer::AttributeKind kinds[kFaissMaxFilterColumns];
    Oid types[kFaissMaxFilterColumns];
    const char* names[kFaissMaxFilterColumns];
};

[[noreturn]] void bad_filter(const char* message, const char* detail = nullptr) {
    if (detail != nullptr)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("benzer_batch_search: %s", message), errdetail("%s", detail),
                        errhint("A filter is a JSON object like {\"season\": \"winter\", "
                                "\"quality\": [\"A\", \"B\"], \"tags&&\": [\"floral\"]}.")));
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("benzer_batch_search: %s", message),
             errhint("A filter is a JSON object like {\"season\": \"winter\", "
                     "\"quality\": [\"A\", \"B\"], \"tags&&\": [\"floral\"]}.")));
    pg_unreachable();
}

// One JSON scalar as an operand of column c (integer or text by its kind).
void scalar_operand(const FilterColumns& columns, int c, const JsonbValue& v, int64* integer,
                    std::string_view* text) {
    bool text_column = columns.kinds[c] == benzer::AttributeKind::kText ||
                       columns.kinds[c] == benzer::AttributeKind::kTextArray;
    const char* name = columns.names[c];
    if (v.type == jbvNull)
        bad_filter(psprintf("null in the filter on \"%s\": NULL never matches", name));
    if (text_column) {
        if (v.type != jbvString)
            bad_filter(psprintf("filter column \"%s\" is text: give strings", name));
        new (text) std::string_view(v.val.string.val, static_cast<size_t>(v.val.string.len));
        return;
    }
    if (columns.types[c] == BOOLOID) {
        if (v.type != jbvBool)
            bad_filter(psprintf("filter column \"%s\" is boolean: give true or false", name));
        *integer = v.val.boolean ? 1 : 0;
        return;
    }
    if (v.type != jbvNumeric)
        bad_filter(psprintf("filter column \"%s\" is an integer column: give numbers", name));
    Datum numeric = NumericGetDatum(v.val.numeric);
    Datum rounded = DirectFunctionCall2(numeric_round, numeric, Int32GetDatum(0));
    if (!DatumGetBool(DirectFunctionCall2(numeric_eq, numeric, rounded)))
        bad_filter(psprintf("filter column \"%s\" is an integer column: %s is not an integer", name,
                            DatumGetCString(DirectFunctionCall1(numeric_out, numeric))));
    Datum lowest = NumericGetDatum(int64_to_numeric(PG_INT64_MIN));
    Datum highest = NumericGetDatum(int64_to_numeric(PG_INT64_MAX));
    if (DatumGetBool(DirectFunctionCall2(numeric_lt, numeric, lowest)) ||
        DatumGetBool(DirectFunctionCall2(numeric_gt, numeric, highest)))
        ereport(ERROR,
                (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                 errmsg("benzer_batch_search: the filter value %s for column \"%s\" is out of "
                        "range for an integer column",
                        DatumGetCString(DirectFunctionCall1(numeric_out, numeric)), name)));
    *integer = DatumGetInt64(DirectFunctionCall1(numeric_int8, numeric));
}

// Parses the filter into conditions (palloc'd); returns their number.
int parse_filter(Jsonb* filter, const FilterColumns& columns, benzer::Condition* out, int max) {
    if (JB_ROOT_IS_SCALAR(filter) || !JB_ROOT_IS_OBJECT(filter))
        bad_filter("filter must be a JSON object");
    int count = 0;
    JsonbIterator* it = JsonbIteratorInit(&filter->root);
    JsonbValue v;
    JsonbIteratorToken token;
    char* key = nullptr;
    while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
        if (token == WJB_KEY) {
            key = pnstrdup(v.val.string.val, v.val.string.len);
            continue;
        }
        if (token != WJB_VALUE) continue;
        // "column", "column=", "column&&" or "column@>".
        size_t length = strlen(key);
        benzer::ConditionOp op = benzer::ConditionOp::kEqualsAny;
        bool explicit_op = false;
        if (length > 2 && strcmp(key + length - 2, "&&") == 0) {
            op = benzer::ConditionOp::kOverlaps;
            key[length - 2] = '\0';
            explicit_op = true;
        } else if (length > 2 && strcmp(key + length - 2, "@>") == 0) {
            op = benzer::ConditionOp::kContains;
            key[length - 2] = '\0';
            explicit_op = true;
        } else if (length > 1 && key[length - 1] == '=') {
            key[length - 1] = '\0';
            explicit_op = true;
        }
        int c = -1;
        for (int i = 0; i < columns.count; i++)
            if (strcmp(columns.names[i], key) == 0) c = i;
        if (c < 0) {
            StringInfoData names;
            initStringInfo(&names);
            for (int i = 0; i < columns.count; i++)
                appendStringInfo(&names, "%s\"%s\"", i > 0 ? ", " : "", columns.names[i]);
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_COLUMN),
                     errmsg("benzer_batch_search: the index has no filter column \"%s\"", key),
                     columns.count > 0
                         ? errhint("Its filter columns are %s.", names.data)
                         : errhint("The index has no filter columns: add columns after the "
                                   "vector in CREATE INDEX ... USING faiss (embedding, season, "
                                   "tags).")));
        }
        bool array_column = columns.kinds[c] == benzer::AttributeKind::kIntegerArray ||
                            columns.kinds[c] == benzer::AttributeKind::kTextArray;
        if (array_column && op == benzer::ConditionOp::kEqualsAny)
            bad_filter(
                psprintf("filter column \"%s\" is an array: use \"%s&&\" (shares an "
                         "element) or \"%s@>\" (contains all)",
                         key, key, key));
        if (!array_column && op != benzer::ConditionOp::kEqualsAny)
            bad_filter(
                psprintf("filter column \"%s\" is not an array: use \"%s\" (equals one "
                         "of the values)",
                         key, key));
        (void)explicit_op;
        if (count >= max) bad_filter("too many conditions in the filter");
        benzer::Condition* cond = new (&out[count++]) benzer::Condition();
        cond->column = c;
        cond->op = op;
        // The operands: one scalar, or an array of scalars.
        int capacity = 1;
        JsonbContainer* elements = nullptr;
        if (v.type == jbvBinary) {
            if (!JsonContainerIsArray(v.val.binary.data))
                bad_filter(
                    psprintf("the filter on \"%s\" must be a value or an array of values", key));
            elements = v.val.binary.data;
            capacity = Max(JsonContainerSize(elements), 1);
        }
        bool text_column = columns.kinds[c] == benzer::AttributeKind::kText ||
                           columns.kinds[c] == benzer::AttributeKind::kTextArray;
        int64* integers =
            text_column ? nullptr : static_cast<int64*>(palloc(sizeof(int64) * capacity));
        auto* texts =
            text_column
                ? static_cast<std::string_view*>(palloc(sizeof(std::string_view) * capacity))
                : nullptr;
        uint32 n = 0;
        if (elements == nullptr) {
            scalar_operand(columns, c, v, integers, texts);
            n = 1;
        } else {
            JsonbIterator* eit = JsonbIteratorInit(elements);
            JsonbValue e;
            JsonbIteratorToken t;
            while ((t = JsonbIteratorNext(&eit, &e, true)) != WJB_DONE) {
                if (t != WJB_ELEM) continue;
                if (e.type == jbvBinary)
                    bad_filter(
                        psprintf("the filter on \"%s\" must be a value or an array of "
                                 "values, not nested arrays or objects",
                                 key));
                scalar_operand(columns, c, e, integers != nullptr ? &integers[n] : nullptr,
                               texts != nullptr ? &texts[n] : nullptr);
                n++;
            }
        }
        cond->integers = integers;
        cond->texts = texts;
        cond->count = n;
    }
    return count;
}

// --- loading --------------------------------------------------------------

// Loads the index, the allowed bitmap and the pending rows (retrying when a
// merge races the load), in the current memory context.
void load_index(BatchState* state, MemoryContext context, Jsonb* filter) {
    Relation index = state->index;
    FilterColumns columns;
    columns.count = faiss_filter_kinds(index, columns.kinds);
    TupleDesc desc = RelationGetDescr(index);
    for (int i = 0; i < columns.count; i++) {
        columns.types[i] = TupleDescAttr(desc, i + 1)->atttypid;
        columns.names[i] = NameStr(TupleDescAttr(desc, i + 1)->attname);
    }
    constexpr int kMaxConditions = 64;
    auto* conditions =
        static_cast<benzer::Condition*>(palloc0(sizeof(benzer::Condition) * kMaxConditions));
    int nconditions =
        filter != nullptr ? parse_filter(filter, columns, conditions, kMaxConditions) : 0;

    for (int attempt = 0;; attempt++) {
        if (attempt > 100)
            ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                            errmsg("faiss index \"%s\" kept changing while being read",
                                   RelationGetRelationName(index))));
        if (state->entry != nullptr) {
            faiss_cache_release(state->entry);
            state->entry = nullptr;
        }
        faiss_lock_lists_for_reading(index);  // before the metapage (faiss_pages.h)
        faiss_read_meta(index, &state->meta);
        const FaissMeta& meta = state->meta;
        FaissView view;
        if (!faiss_load_view(index, meta, columns.kinds, columns.count, conditions, nconditions,
                             &state->entry, &view))
            continue;
        state->allowed = view.allowed;
        state->nlabels = view.nlabels;
        state->allowed_count = view.allowed_count;
        state->have_tails = state->entry != nullptr && state->entry->tail_blocks != nullptr &&
                            faiss_has_tails(meta) && meta.tail_rows > 0;
        memcpy(state->kinds, columns.kinds, sizeof(columns.kinds));
        state->tails.rows = state->have_tails ? meta.tail_rows : 0;
        state->tails.kinds = state->kinds;
        state->tails.nkinds = columns.count;
        state->tails.conditions = conditions;
        state->tails.nconditions = nconditions;
        state->tails.returned = nullptr;  // the caller's seen table skips rows returned
        FaissPendingRows& pending = view.pending;
        int dim = meta.dimensions;
        state->pending = pending;
        state->pending_search = pending.vectors;
        if (state->metric == benzer::Metric::kCosine && pending.count > 0) {
            Size size = sizeof(float) * static_cast<Size>(dim) * pending.count;
            state->pending_search = static_cast<float*>(MemoryContextAllocHuge(context, size));
            memcpy(state->pending_search, pending.vectors, size);
            float* vectors = state->pending_search;
            int64 count = pending.count;
            guarded("benzer_batch_search", [&] { benzer::normalize_vectors(vectors, count, dim); });
        }
        break;
    }
}

// --- searching --------------------------------------------------------------

// A row that has been returned, or found invisible, for a query.
struct SeenKey {
    int64 query;
    int64 key;  // label, or -(pending position + 1)
};

struct OutputRow {
    int32 query;
    int32 rank;
    ItemPointerData tid;
    double distance;
};

int compare_output(const void* a, const void* b) {
    const auto* x = static_cast<const OutputRow*>(a);
    const auto* y = static_cast<const OutputRow*>(b);
    if (x->query != y->query) return x->query < y->query ? -1 : 1;
    return x->rank < y->rank ? -1 : (x->rank > y->rank ? 1 : 0);
}

// The visible version of the row at tid under the statement's snapshot.
bool fetch_visible(BatchState* state, ItemPointer tid, ItemPointer visible) {
    ItemPointerData t = *tid;
    bool call_again = false, all_dead = false;
    bool found = table_index_fetch_tuple(state->fetch, &t, state->snapshot, state->slot,
                                         &call_again, &all_dead);
    if (found) *visible = state->slot->tts_tid;
    ExecClearTuple(state->slot);
    state->fetched++;
    if (!found) state->invisible++;
    return found;
}

// What one query of the batch has done so far.
struct QueryState {
    int32 position;  // 1-based position in the array
    int32 emitted;
    bool done;
};

bool nan_aware_less(double a, double b) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
    return a < b;
}

struct PendingCandidate {
    double distance;
    int64 position;
};

int compare_pending(const void* a, const void* b) {
    const auto* x = static_cast<const PendingCandidate*>(a);
    const auto* y = static_cast<const PendingCandidate*>(b);
    if (nan_aware_less(x->distance, y->distance)) return -1;
    if (nan_aware_less(y->distance, x->distance)) return 1;
    return x->position < y->position ? -1 : (x->position > y->position ? 1 : 0);
}

// Searches one batch of queries (vectors: nq * dim, of the array positions
// in positions[]), appending rows to out.
void search_batch(BatchState* state, const float* vectors, const int32* positions, int64 nq,
                  int32 k, HTAB* seen, OutputRow** out, int64* out_count, int64* out_capacity) {
    int dim = state->dim;
    bool searchable = state->entry != nullptr &&
                      (state->entry->engine != nullptr || state->entry->served != nullptr);
    int64 main_total = searchable ? state->allowed_count + state->tails.rows : 0;
    int64 pending_total = state->pending.count;
    // Deeper rounds (invisible rows) stop at benzer.max_scan_tuples, and
    // at what work_mem holds.
    int64 cap = Max(static_cast<int64>(k),
                    Min(static_cast<int64>(benzer_max_scan_tuples), state->max_entries));

    QueryState* queries = static_cast<QueryState*>(palloc0(sizeof(QueryState) * nq));
    for (int64 i = 0; i < nq; i++) queries[i].position = positions[i];
    int64* active = static_cast<int64*>(palloc(sizeof(int64) * nq));
    int64 nactive = nq;
    for (int64 i = 0; i < nq; i++) active[i] = i;

    // The settings an index scan of this index would use (faiss_search.h):
    // the session's knobs, the index's options, else the tuned setting for
    // the recall target; later rounds widen and deepen them as the scan's
    // do (core/search_rounds.h).
    FaissSearchChoice choice;
    faiss_choose_search(state->index, state->meta, &choice);
    const benzer::SearchOptions& base = choice.options;
    benzer::SearchRounds rounds(base, faiss_entry_shape(state->index, state->entry), k, cap);

    while (nactive > 0) {
        int64 want = rounds.k(INT64_MAX);
        int64 want_main = Min(want, main_total);
        // Re-ranking asks for more candidates, and orders them exactly.
        if (state->reranking && want_main > 0)
            want_main = faiss_rerank_candidates(want_main, base.k_factor,
                                                state->entry->option_k_factor, main_total);
        int64 want_pending = Min(want, pending_total);
        bool any_full = false, any_short = false;
        // Whether a short answer from the structure can still grow: more
        // IVF lists, or more HNSW candidates. Exact searches are never
        // short while allowed rows remain.
        bool can_widen = rounds.can_widen(main_total);
        // Slices of the active queries small enough for the result buffers.
        int64 slice =
            Max(static_cast<int64>(1), state->max_entries / Max(want, static_cast<int64>(1)));
        int64 next_active = 0;
        for (int64 s0 = 0; s0 < nactive; s0 += slice) {
            int64 ns = Min(slice, nactive - s0);
            float* x = static_cast<float*>(
                MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * dim * ns));
            for (int64 i = 0; i < ns; i++)
                memcpy(x + i * dim, vectors + active[s0 + i] * dim, sizeof(float) * dim);

            // The Faiss structure.
            float* main_d = nullptr;
            benzer::Label* main_l = nullptr;
            int64* main_n = static_cast<int64*>(palloc0(sizeof(int64) * ns));
            if (want_main > 0) {
                main_d = static_cast<float*>(
                    MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * ns * want_main));
                main_l = static_cast<benzer::Label*>(MemoryContextAllocHuge(
                    CurrentMemoryContext, sizeof(benzer::Label) * ns * want_main));
                benzer::SearchOptions options = rounds.options();
                benzer::LabelFilter filter;
                filter.bits = state->allowed;
                filter.count = state->nlabels;
                filter.allowed = state->allowed_count;
                benzer::SearchStats stats;
                if (state->entry->lists != nullptr) {
                    // Lists in pages: one probe a query, through shared buffers
                    // (exact searches go to the search service together).
                    faiss_paged_search_many(state->index, state->meta, state->entry, x, ns,
                                            want_main, options, &filter,
                                            state->have_tails ? &state->tails : nullptr, main_d,
                                            main_l, main_n, &stats);
                    for (int64 i = 0; i < ns; i++) {
                        float* d = main_d + i * want_main;
                        benzer::Label* l = main_l + i * want_main;
                        if (state->reranking && main_n[i] > 0) {
                            auto* tids = static_cast<ItemPointerData*>(
                                palloc(sizeof(ItemPointerData) * main_n[i]));
                            for (int64 j = 0; j < main_n[i]; j++)
                                tids[j] =
                                    faiss_is_tail_label(l[j])
                                        ? faiss_tail_label_tid(l[j])
                                        : faiss_cache_label_tid(state->index, state->entry, l[j]);
                            faiss_rerank(&state->reranker, x + i * dim, tids, l, d, main_n[i]);
                            pfree(tids);
                        }
                        for (int64 j = main_n[i]; j < want_main; j++) l[j] = -1;
                        CHECK_FOR_INTERRUPTS();
                    }
                } else {
                    // The whole structure: in the search service when it holds it.
                    faiss_engine_search(state->index, state->meta, state->entry, x, ns, want_main,
                                        options, &filter, main_d, main_l, main_n, &stats);
                }
                state->rounds += stats.rounds;
                state->candidates += stats.candidates;
            }

            // Pending rows, exactly (candidates with BLAS, then the
            // operator's distance on the raw vectors, as scans compute it).
            float* pending_s = nullptr;
            benzer::Label* pending_l = nullptr;
            int64* pending_n = static_cast<int64*>(palloc0(sizeof(int64) * ns));
            PendingCandidate* pending_c = nullptr;
            if (want_pending > 0) {
                pending_s = static_cast<float*>(MemoryContextAllocHuge(
                    CurrentMemoryContext, sizeof(float) * ns * want_pending));
                pending_l = static_cast<benzer::Label*>(MemoryContextAllocHuge(
                    CurrentMemoryContext, sizeof(benzer::Label) * ns * want_pending));
                pending_c = static_cast<PendingCandidate*>(MemoryContextAllocHuge(
                    CurrentMemoryContext, sizeof(PendingCandidate) * ns * want_pending));
                float* xs = x;
                if (state->metric == benzer::Metric::kCosine) {
                    xs = static_cast<float*>(
                        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * dim * ns));
                    memcpy(xs, x, sizeof(float) * dim * ns);
                }
                benzer::RowSource rows;
                rows.count = pending_total;
                rows.contiguous = state->pending_search;
                benzer::ExactScore score = state->metric == benzer::Metric::kL2
                                               ? benzer::ExactScore::kL2Squared
                                               : benzer::ExactScore::kNegativeInnerProduct;
                bool cosine = state->metric == benzer::Metric::kCosine;
                faiss_use_threads(benzer_threads);
                guarded("benzer_batch_search", [&] {
                    if (cosine) benzer::normalize_vectors(xs, ns, dim);
                    benzer::exact_batch_search(rows, dim, score, xs, ns, want_pending, nullptr,
                                               pending_s, pending_l, pending_n);
                });
                for (int64 i = 0; i < ns; i++) {
                    PendingCandidate* c = pending_c + i * want_pending;
                    for (int64 j = 0; j < pending_n[i]; j++) {
                        int64 p = pending_l[i * want_pending + j];
                        c[j].position = p;
                        c[j].distance = benzer::operator_distance(
                            state->metric, x + i * dim, state->pending.vectors + p * dim, dim);
                    }
                    qsort(c, pending_n[i], sizeof(PendingCandidate), compare_pending);
                }
                if (xs != x) pfree(xs);
            }
            CHECK_FOR_INTERRUPTS();
            // One query's pending distances at a time, for the merge.
            auto* pending_d = static_cast<double*>(MemoryContextAllocHuge(
                CurrentMemoryContext, sizeof(double) * Max(want_pending, 1)));

            // Merge both in distance order and keep the visible rows.
            for (int64 i = 0; i < ns; i++) {
                int64 qi = active[s0 + i];
                QueryState* q = &queries[qi];
                int64 mn = main_n[i], pn = pending_n[i];
                // Either list may hold more rows than this round fetched:
                // the merge stops at the end of such a list, since the next
                // of its rows may be nearer than the other list's next.
                bool main_full = want_main > 0 && mn == want_main && want_main < main_total;
                bool main_short = want_main > 0 && mn < want_main && mn < main_total && can_widen;
                bool main_more = main_full || main_short;
                bool pending_more = want_pending < pending_total;
                for (int64 j = 0; j < pn; j++)
                    pending_d[j] = pending_c[i * want_pending + j].distance;
                benzer::ResultMerge merge;
                merge.set_index(main_d != nullptr ? main_d + i * want_main : nullptr, mn,
                                main_more);
                merge.set_pending(pending_d, pn, pending_more);
                while (q->emitted < k) {
                    benzer::ResultMerge::Next next = merge.peek();
                    if (next != benzer::ResultMerge::Next::kIndex &&
                        next != benzer::ResultMerge::Next::kPending)
                        break;  // done, or a side must be fetched further
                    int64 position = merge.take(next);
                    bool take_main = next == benzer::ResultMerge::Next::kIndex;
                    SeenKey key;
                    key.query = qi;
                    ItemPointerData tid;
                    double distance;
                    if (take_main) {
                        benzer::Label label = main_l[i * want_main + position];
                        distance = main_d[i * want_main + position];
                        key.key = label;
                        // Rows of list tails carry their TID in the label.
                        tid = faiss_is_tail_label(label)
                                  ? faiss_tail_label_tid(label)
                                  : faiss_cache_label_tid(state->index, state->entry, label);
                    } else {
                        const PendingCandidate& c = pending_c[i * want_pending + position];
                        distance = c.distance;
                        key.key = -(c.position + 1);
                        tid = state->pending.tids[c.position];
                    }
                    bool found;
                    hash_search(seen, &key, HASH_ENTER, &found);
                    if (found) continue;  // returned (or invisible) in an earlier round
                    ItemPointerData visible;
                    if (!fetch_visible(state, &tid, &visible)) continue;
                    if (*out_count == *out_capacity) {
                        *out_capacity *= 2;
                        *out = static_cast<OutputRow*>(
                            repalloc_huge(*out, sizeof(OutputRow) * *out_capacity));
                    }
                    OutputRow* row = &(*out)[(*out_count)++];
                    row->query = q->position;
                    row->rank = ++q->emitted;
                    row->tid = visible;
                    row->distance = distance;
                }
                if (q->emitted >= k || (!main_more && !pending_more)) {
                    q->done = true;  // k rows, or the index has no more
                    continue;
                }
                any_full = any_full || main_full || pending_more;
                any_short = any_short || main_short;
                active[next_active++] = qi;  // s0 + i >= next_active: safe in place
            }
            // This slice's buffers (later rounds allocate larger ones).
            pfree(x);
            pfree(main_n);
            pfree(pending_n);
            if (main_d != nullptr) pfree(main_d);
            if (main_l != nullptr) pfree(main_l);
            if (pending_s != nullptr) pfree(pending_s);
            if (pending_l != nullptr) pfree(pending_l);
            if (pending_c != nullptr) pfree(pending_c);
            pfree(pending_d);
            CHECK_FOR_INTERRUPTS();
        }
        nactive = next_active;
        if (nactive == 0) break;

        // Next round: wider when the structure came back short, deeper
        // when rows were wanted beyond a full answer (stopping at the row
        // cap: rows already seen come back with the same k).
        bool progressed = false;
        if (any_short || any_full) {
            // A short answer widens the structure's reach (main_total rows
            // of it); a full one deepens both sides.
            progressed = any_short ? rounds.next(true, main_total)
                                   : rounds.next(false, main_total + pending_total);
            if (progressed && !any_short && rounds.k(INT64_MAX) <= want) progressed = false;
        }
        // The rows examined so far (returned or invisible) fill work_mem:
        // stop, as at benzer.max_scan_tuples.
        if (hash_get_num_entries(seen) > state->max_entries) progressed = false;
        if (!progressed) break;  // benzer.max_scan_tuples, or nothing left to widen
    }
}

}  // namespace

BENZER_FUNCTION(benzer_batch_search) {
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("benzer_batch_search: index must not be NULL")));
    if (PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("benzer_batch_search: k must not be NULL")));
    Oid index_oid = PG_GETARG_OID(0);
    int32 k = PG_GETARG_INT32(2);
    if (k < 1 || k > kMaxK)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("benzer_batch_search: k must be between 1 and %d, not %d", kMaxK, k)));
    // Memory: k rows of one query must fit work_mem (kEntryBytes each);
    // more queries are searched together as far as it holds them.
    int64 max_entries = static_cast<int64>(static_cast<Size>(work_mem) * 1024 / kEntryBytes);
    if (k > max_entries)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("benzer_batch_search: k = %d needs about %zu kB, work_mem is %d kB",
                               k, static_cast<Size>(k) * kEntryBytes / 1024 + 1, work_mem),
                        errhint("SET work_mem = '%zukB', or ask for fewer rows per query.",
                                static_cast<Size>(k) * kEntryBytes / 1024 + 64)));
    InitMaterializedSRF(fcinfo, 0);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    Jsonb* filter = PG_ARGISNULL(3) ? nullptr : PG_GETARG_JSONB_P(3);

    // Open the table, then the index, as an index scan does.
    Oid heap_oid = faiss_index_table(index_oid);
    MemoryContext context =
        AllocSetContextCreate(CurrentMemoryContext, "benzer batch search", ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(context);
    auto* state = static_cast<BatchState*>(palloc0(sizeof(BatchState)));
    state->max_entries = max_entries;
    faiss_cache_release_on_reset(context, &state->entry);

    faiss_require_read(heap_oid, index_oid);
    state->heap = table_open(heap_oid, AccessShareLock);
    state->index = index_open(index_oid, AccessShareLock);
    if (check_enable_rls(heap_oid, InvalidOid, false) == RLS_ENABLED)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("benzer_batch_search does not support tables with row-level "
                               "security (\"%s\")",
                               RelationGetRelationName(state->heap)),
                        errhint("Search with ORDER BY ... LIMIT, which applies the policies.")));
    state->metric = faiss_index_metric(state->index);
    load_index(state, context, filter);
    state->dim = state->meta.dimensions;

    int64 nq_total = 0;
    float* vectors = nullptr;
    int32* positions = nullptr;
    if (!PG_ARGISNULL(1) && state->dim > 0) {
        ArrayType* array = PG_GETARG_ARRAYTYPE_P(1);
        Datum* elements;
        bool* nulls;
        int n = vector_array_elements(array, "benzer_batch_search: queries", &elements, &nulls);
        vectors = static_cast<float*>(MemoryContextAllocHuge(
            context, sizeof(float) * static_cast<Size>(state->dim) * Max(n, 1)));
        positions = static_cast<int32*>(palloc(sizeof(int32) * Max(n, 1)));
        for (int i = 0; i < n; i++) {
            if (nulls[i]) continue;  // a NULL query finds nothing
            Vector* v = DatumGetVector(elements[i]);
            if (v->dim != state->dim)
                ereport(ERROR,
                        (errcode(ERRCODE_DATA_EXCEPTION),
                         errmsg("different vector dimensions %d and %d", state->dim, v->dim),
                         errdetail("Query %d has %d dimensions, index \"%s\" %d.", i + 1, v->dim,
                                   RelationGetRelationName(state->index), state->dim)));
            faiss_check_norm(state->index, v->x, v->dim, "query vector");
            memcpy(vectors + nq_total * state->dim, v->x, sizeof(float) * state->dim);
            positions[nq_total++] = i + 1;
        }
    }

    if (nq_total > 0 &&
        (state->allowed_count > 0 || state->tails.rows > 0 || state->pending.count > 0)) {
        state->snapshot = GetActiveSnapshot();
        state->fetch = table_index_fetch_begin(state->heap);
        state->slot = table_slot_create(state->heap, nullptr);
        // Compressed codes in pages: candidates re-ranked from the table.
        state->reranking = false;
        if (state->entry != nullptr && state->entry->lists != nullptr &&
            state->entry->engine != nullptr) {
            bool vectors = true;
            benzer::Engine* engine = state->entry->engine;
            guarded("benzer_batch_search", [&] { vectors = engine->list_codes_are_vectors(); });
            state->reranking =
                !vectors && faiss_reranker_begin(&state->reranker, state->heap, state->index,
                                                 state->snapshot, state->metric, state->dim);
        }
        HASHCTL ctl;
        memset(&ctl, 0, sizeof(ctl));
        ctl.keysize = sizeof(SeenKey);
        ctl.entrysize = sizeof(SeenKey);
        ctl.hcxt = context;
        int64 out_capacity = 1024;
        auto* out = static_cast<OutputRow*>(
            MemoryContextAllocHuge(context, sizeof(OutputRow) * out_capacity));
        // As many queries at once as work_mem holds k rows for.
        int64 query_batch = Max(static_cast<int64>(1), Min(kQueryBatch, state->max_entries / k));
        for (int64 b0 = 0; b0 < nq_total; b0 += query_batch) {
            int64 nb = Min(query_batch, nq_total - b0);
            HTAB* seen = hash_create("benzer batch search seen rows",
                                     Min(nb * static_cast<int64>(k) * 2, int64(1) << 20), &ctl,
                                     HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
            int64 out_count = 0;
            MemoryContext batch =
                AllocSetContextCreate(context, "benzer batch search batch", ALLOCSET_DEFAULT_SIZES);
            MemoryContext previous = MemoryContextSwitchTo(batch);
            search_batch(state, vectors + b0 * state->dim, positions + b0, nb, k, seen, &out,
                         &out_count, &out_capacity);
            MemoryContextSwitchTo(previous);
            MemoryContextDelete(batch);
            hash_destroy(seen);
            qsort(out, out_count, sizeof(OutputRow), compare_output);
            MemoryContextSwitchTo(old);
            for (int64 i = 0; i < out_count; i++) {
                Datum values[4];
                bool nulls[4] = {false, false, false, false};
                values[0] = Int32GetDatum(out[i].query);
                values[1] = Int32GetDatum(out[i].rank);
                values[2] = PointerGetDatum(&out[i].tid);
                values[3] = Float8GetDatum(out[i].distance);
                tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
            }
            MemoryContextSwitchTo(context);
        }
        table_index_fetch_end(state->fetch);
        ExecDropSingleTupleTableSlot(state->slot);
        if (state->reranking) faiss_reranker_end(&state->reranker);
    }
    ereport(
        DEBUG1,
        (errmsg("benzer_batch_search: %lld queries, %lld Faiss rounds, %lld candidates, "
                "%lld heap fetches (%lld invisible), %lld pending rows",
                static_cast<long long>(nq_total), static_cast<long long>(state->rounds),
                static_cast<long long>(state->candidates), static_cast<long long>(state->fetched),
                static_cast<long long>(state->invisible),
                static_cast<long long>(state->pending.count))));
    index_close(state->index, AccessShareLock);
    table_close(state->heap, AccessShareLock);
    MemoryContextSwitchTo(old);
    MemoryContextDelete(context);  // releases the pin
    return static_cast<Datum>(0);
}
