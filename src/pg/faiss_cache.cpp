// faiss_cache.cpp: the per-backend cache of loaded indexes.
//
// Entries live in a small array in TopMemoryContext; engines are C++ heap
// objects deleted explicitly. Nothing here runs C++ code that can throw
// outside run_guarded().
#include "pg/faiss_cache.h"

#include "pg/guard.h"

extern "C" {
#include "utils/memutils.h"
#include "utils/rel.h"
}

namespace {

constexpr int kMaxEntries = 32;

FaissLoadedIndex* g_entries[kMaxEntries];
uint64 g_clock = 0;
MemoryContext g_context = nullptr;

MemoryContext cache_context() {
    if (g_context == nullptr)
        g_context =
            AllocSetContextCreate(TopMemoryContext, "benzer index cache", ALLOCSET_DEFAULT_SIZES);
    return g_context;
}

void free_entry(int slot) {
    FaissLoadedIndex* entry = g_entries[slot];
    g_entries[slot] = nullptr;
    delete entry->engine;
    delete entry->attributes;
    if (entry->labels != nullptr) pfree(entry->labels);
    pfree(entry);
}

// Frees unpinned stale entries, then least recently used unpinned ones
// while the cache is over its budget.
void evict(Size incoming) {
    for (int i = 0; i < kMaxEntries; i++)
        if (g_entries[i] != nullptr && g_entries[i]->stale && g_entries[i]->pins == 0)
            free_entry(i);
    Size budget = static_cast<Size>(benzer_cache_memory_mb) * 1024 * 1024;
    for (;;) {
        Size total = incoming;
        int victim = -1;
        for (int i = 0; i < kMaxEntries; i++) {
            if (g_entries[i] == nullptr) continue;
            total += g_entries[i]->bytes;
            if (g_entries[i]->pins == 0 &&
                (victim < 0 || g_entries[i]->last_used < g_entries[victim]->last_used))
                victim = i;
        }
        if (total <= budget || victim < 0) break;
        free_entry(victim);
    }
}

int free_slot() {
    for (int i = 0; i < kMaxEntries; i++)
        if (g_entries[i] == nullptr) return i;
    // All slots used: free the least recently used unpinned entry.
    int victim = -1;
    for (int i = 0; i < kMaxEntries; i++)
        if (g_entries[i]->pins == 0 &&
            (victim < 0 || g_entries[i]->last_used < g_entries[victim]->last_used))
            victim = i;
    if (victim < 0)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("too many faiss indexes in use at once in one query")));
    free_entry(victim);
    return victim;
}

// Marks older generations of the relation stale.
void supersede(Relation index, uint32 generation) {
    for (int i = 0; i < kMaxEntries; i++) {
        FaissLoadedIndex* e = g_entries[i];
        if (e == nullptr || e->relid != RelationGetRelid(index)) continue;
        if (e->generation != generation || !RelFileNodeEquals(e->node, index->rd_node))
            e->stale = true;
    }
}

void record_built_defaults(FaissLoadedIndex* entry);

FaissLoadedIndex* new_entry(Relation index, uint32 generation, benzer::Engine* engine,
                            benzer::AttributeStore* attributes, ItemPointerData* labels,
                            int64 nlabels, Size bytes) {
    supersede(index, generation);
    evict(bytes);
    int slot = free_slot();
    auto* entry = static_cast<FaissLoadedIndex*>(
        MemoryContextAllocZero(cache_context(), sizeof(FaissLoadedIndex)));
    entry->relid = RelationGetRelid(index);
    entry->node = index->rd_node;
    entry->generation = generation;
    entry->engine = engine;
    entry->attributes = attributes;
    entry->labels = labels;
    entry->nlabels = nlabels;
    entry->bytes = bytes;
    entry->last_used = ++g_clock;
    g_entries[slot] = entry;
    record_built_defaults(entry);
    return entry;
}

// Applies the index's WITH options to a loaded engine when they differ from
// what it has (ALTER INDEX ... SET takes effect at the next scan).
void apply_options(Relation index, FaissLoadedIndex* entry) {
    FaissOptions* options = faiss_get_options(index);
    if (entry->engine == nullptr ||
        (options->nprobe == entry->option_nprobe && options->ef_search == entry->option_ef_search &&
         options->k_factor == entry->option_k_factor))
        return;
    benzer::Engine* engine = entry->engine;
    // An option of 0 (or RESET) means the value the index was built with.
    int nprobe = options->nprobe > 0 ? options->nprobe : entry->built_nprobe;
    int ef_search = options->ef_search > 0 ? options->ef_search : entry->built_ef_search;
    float k_factor =
        options->k_factor > 0 ? static_cast<float>(options->k_factor) : entry->built_k_factor;
    benzer::GuardedError error;
    if (!benzer::run_guarded(error, [&] { engine->set_defaults(nprobe, ef_search, 0, k_factor); }))
        raise_guarded_error(error, "could not apply faiss index options");
    entry->option_nprobe = options->nprobe;
    entry->option_ef_search = options->ef_search;
    entry->option_k_factor = options->k_factor;
}

// Remembers a freshly loaded engine's own defaults.
void record_built_defaults(FaissLoadedIndex* entry) {
    if (entry->engine == nullptr) return;
    benzer::Engine* engine = entry->engine;
    benzer::GuardedError error;
    if (!benzer::run_guarded(error, [&] {
            entry->built_nprobe = engine->default_nprobe();
            entry->built_ef_search = engine->default_ef_search();
            entry->built_k_factor = engine->default_k_factor();
        }))
        raise_guarded_error(error, "could not read faiss index defaults");
}

}  // namespace

FaissLoadedIndex* faiss_cache_acquire(Relation index, const FaissMeta& meta) {
    for (int i = 0; i < kMaxEntries; i++) {
        FaissLoadedIndex* e = g_entries[i];
        if (e != nullptr && !e->stale && e->relid == RelationGetRelid(index) &&
            e->generation == meta.generation && RelFileNodeEquals(e->node, index->rd_node)) {
            apply_options(index, e);
            e->pins++;
            e->last_used = ++g_clock;
            return e;
        }
    }

    // Read the chains into temporary memory, then deserialise.
    char* labels_bytes = nullptr;
    if (!faiss_read_chain(index, meta.labels, kFaissPageLabels, meta.generation, &labels_bytes))
        return nullptr;
    int64 nlabels = static_cast<int64>(meta.labels.bytes / sizeof(ItemPointerData));
    ItemPointerData* labels = static_cast<ItemPointerData*>(
        MemoryContextAllocHuge(cache_context(), Max(meta.labels.bytes, static_cast<uint64>(1))));
    memcpy(labels, labels_bytes, meta.labels.bytes);
    pfree(labels_bytes);

    // Filter column values.
    benzer::AttributeStore* attributes = nullptr;
    Size bytes = meta.labels.bytes;
    if (meta.attributes.head != InvalidBlockNumber) {
        char* data = nullptr;
        if (!faiss_read_chain(index, meta.attributes, kFaissPageAttributes, meta.generation,
                              &data)) {
            pfree(labels);
            return nullptr;
        }
        benzer::GuardedError error;
        bool ok = benzer::run_guarded(error, [&] {
            attributes = benzer::AttributeStore::deserialize(reinterpret_cast<const uint8*>(data),
                                                             meta.attributes.bytes);
        });
        pfree(data);
        if (!ok) {
            pfree(labels);
            raise_guarded_error(error, "could not load faiss filter columns");
        }
        bytes += meta.attributes.bytes;
    }

    benzer::Engine* engine = nullptr;
    if (meta.factory[0] != '\0') {
        char* blob = nullptr;
        if (!faiss_read_chain(index, meta.blob, kFaissPageBlob, meta.generation, &blob)) {
            pfree(labels);
            delete attributes;
            return nullptr;
        }
        benzer::GuardedError error;
        benzer::Metric metric = static_cast<benzer::Metric>(meta.metric);
        bool ok = benzer::run_guarded(error, [&] {
            engine = benzer::Engine::deserialize(reinterpret_cast<const uint8*>(blob),
                                                 meta.blob.bytes, metric);
        });
        pfree(blob);
        if (!ok) {
            pfree(labels);
            delete attributes;
            raise_guarded_error(error, "could not load faiss index");
        }
        bytes += meta.blob.bytes;
    }
    FaissLoadedIndex* entry;
    PG_TRY();
    { entry = new_entry(index, meta.generation, engine, attributes, labels, nlabels, bytes); }
    PG_CATCH();
    {
        delete engine;
        delete attributes;
        PG_RE_THROW();
    }
    PG_END_TRY();
    apply_options(index, entry);
    entry->pins++;
    return entry;
}

void faiss_cache_release(FaissLoadedIndex* entry) {
    if (entry == nullptr) return;
    Assert(entry->pins > 0);
    entry->pins--;
    if (entry->stale && entry->pins == 0) {
        for (int i = 0; i < kMaxEntries; i++)
            if (g_entries[i] == entry) free_entry(i);
    }
}

void faiss_cache_release_on_reset(MemoryContext context, FaissLoadedIndex** slot) {
    auto* callback = static_cast<MemoryContextCallback*>(
        MemoryContextAllocZero(context, sizeof(MemoryContextCallback)));
    callback->func = [](void* arg) {
        auto** entry = static_cast<FaissLoadedIndex**>(arg);
        if (*entry != nullptr) {
            faiss_cache_release(*entry);
            *entry = nullptr;
        }
    };
    callback->arg = slot;
    MemoryContextRegisterResetCallback(context, callback);
}

void faiss_cache_insert(Relation index, uint32 generation, benzer::Engine* engine,
                        benzer::AttributeStore* attributes, const ItemPointerData* labels,
                        int64 nlabels) {
    Size label_bytes = sizeof(ItemPointerData) * static_cast<Size>(nlabels);
    ItemPointerData* copy = nullptr;
    PG_TRY();
    {
        copy = static_cast<ItemPointerData*>(
            MemoryContextAllocHuge(cache_context(), Max(label_bytes, static_cast<Size>(1))));
        if (label_bytes > 0) memcpy(copy, labels, label_bytes);
        Size bytes = label_bytes;
        if (engine != nullptr) {
            benzer::GuardedError error;
            Size engine_bytes = 0;
            if (benzer::run_guarded(error, [&] { engine_bytes = engine->memory_bytes(); }))
                bytes += engine_bytes;
        }
        if (attributes != nullptr) {
            benzer::GuardedError error;
            Size attribute_bytes = 0;
            if (benzer::run_guarded(error, [&] { attribute_bytes = attributes->memory_bytes(); }))
                bytes += attribute_bytes;
        }
        new_entry(index, generation, engine, attributes, copy, nlabels, bytes);
    }
    PG_CATCH();
    {
        delete engine;
        delete attributes;
        PG_RE_THROW();
    }
    PG_END_TRY();
}

Size faiss_cache_bytes(Relation index) {
    Size total = 0;
    for (int i = 0; i < kMaxEntries; i++) {
        FaissLoadedIndex* e = g_entries[i];
        if (e != nullptr && e->relid == RelationGetRelid(index)) total += e->bytes;
    }
    return total;
}
