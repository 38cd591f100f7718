// faiss_cache.cpp: the per-backend cache of loaded indexes.
//
// Entries live in a small array; each owns a memory context (see
// faiss_cache.h) that holds its labels and, through reset callbacks, its
// C++ objects, so freeing an entry is deleting its context, and an entry
// that fails half-way through loading is freed with the caller's memory.
// An entry is published (put in the array, moved under the cache's
// context) only as the last step, after everything that can raise an
// ERROR. Nothing here runs C++ code that can throw outside run_guarded().
#include "pg/faiss_cache.h"

#include "pg/faiss_lists.h"
#include "pg/faiss_search.h"
#include "pg/faiss_tails.h"
#include "pg/guard.h"
#include "pg/service.h"

extern "C" {
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

namespace {

constexpr int kMaxEntries = 32;

using EngineHolder = ContextOwned<benzer::Engine>;
using AttributesHolder = ContextOwned<benzer::AttributeStore>;

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
    MemoryContextDelete(entry->context);  // runs the engine's and store's deleters
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

// An unpublished entry with its own context, a child of the current one
// (so an ERROR before publish() frees it), and holders for its objects.
FaissLoadedIndex* begin_entry(Relation index, uint32 generation, EngineHolder** engine,
                              AttributesHolder** attributes) {
    MemoryContext context =
        AllocSetContextCreate(CurrentMemoryContext, "benzer loaded index", ALLOCSET_DEFAULT_SIZES);
    auto* entry =
        static_cast<FaissLoadedIndex*>(MemoryContextAllocZero(context, sizeof(FaissLoadedIndex)));
    entry->context = context;
    entry->relid = RelationGetRelid(index);
    entry->node = index->rd_node;
    entry->generation = generation;
    *engine = EngineHolder::create(context);
    *attributes = AttributesHolder::create(context);
    entry->engine_holder = *engine;
    return entry;
}

// The search knobs the entry's engine was built with (for RESET).
void read_built_defaults(FaissLoadedIndex* entry) {
    benzer::Engine* e = entry->engine;
    benzer::GuardedError error;
    if (!benzer::run_guarded(error, [&] {
            entry->built_nprobe = e->default_nprobe();
            entry->built_ef_search = e->default_ef_search();
            entry->built_k_factor = e->default_k_factor();
        }))
        raise_guarded_error(error, "could not read faiss index defaults");
}

// Fills in what the entry's objects say about themselves (this can raise),
// then makes room and publishes it: the last step, after which it belongs
// to the cache.
void publish(Relation index, FaissLoadedIndex* entry, EngineHolder* engine,
             AttributesHolder* attributes) {
    entry->engine = engine->object;
    entry->attributes = attributes->object;
    entry->attribute_holder = attributes;
    if (entry->engine != nullptr) read_built_defaults(entry);
    supersede(index, entry->generation);
    evict(entry->bytes);
    int slot = free_slot();
    entry->last_used = ++g_clock;
    MemoryContextSetParent(entry->context, cache_context());
    g_entries[slot] = entry;
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

// Raises a failure to load part of an index, with the way out.
[[noreturn]] void raise_load_error(Relation index, const benzer::GuardedError& error,
                                   const char* what) {
    ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                    errmsg("could not load %s of faiss index \"%s\": %s", what,
                           RelationGetRelationName(index), error.message),
                    errhint("Rebuild the index: REINDEX INDEX %s.",
                            quote_identifier(RelationGetRelationName(index)))));
}

// Deserialises in a guarded call, raising a failure as a load error.
void deserialize_engine(Relation index, const FaissMeta& meta, const char* data, uint64 bytes,
                        EngineHolder* engine) {
    benzer::GuardedError error;
    benzer::Metric metric = static_cast<benzer::Metric>(meta.metric);
    if (!benzer::run_guarded(error, [&] {
            engine->object = benzer::Engine::deserialize(reinterpret_cast<const uint8*>(data),
                                                         static_cast<std::size_t>(bytes), metric);
        }))
        raise_load_error(index, error, "the Faiss structure");
}

}  // namespace

// Reads the Faiss structure into engine. When the blob keeps the coarse
// centroids apart (core/engine.h), the structure is read into a buffer and
// the centroids straight from the pages into the quantizer: a fresh
// connection's first search pays one copy of them, not two. Returns false
// when a merge raced the read.
bool faiss_cache_read_engine(Relation index, const FaissMeta& meta, EngineHolder* engine) {
    FaissChainReader reader = faiss_chain_reader(meta.blob, kFaissPageBlob, meta.generation);
    benzer::CentroidsApartHeader header;
    bool apart = false;
    if (meta.blob.bytes >= sizeof(header)) {
        if (!faiss_chain_read(index, &reader, reinterpret_cast<char*>(&header), sizeof(header)))
            return false;
        benzer::GuardedError error;
        uint64 blob_bytes = meta.blob.bytes;
        if (!benzer::run_guarded(error, [&] {
                apart = benzer::Engine::read_apart_header(reinterpret_cast<const uint8*>(&header),
                                                          blob_bytes, &header);
            }))
            raise_load_error(index, error, "the Faiss structure");
    }
    if (!apart) {
        char* blob = nullptr;
        if (!faiss_read_chain(index, meta.blob, kFaissPageBlob, meta.generation, &blob))
            return false;
        deserialize_engine(index, meta, blob, meta.blob.bytes, engine);
        pfree(blob);
        return true;
    }
    char* structure = static_cast<char*>(MemoryContextAllocHuge(
        CurrentMemoryContext, Max(header.structure_bytes, static_cast<uint64>(1))));
    if (!faiss_chain_read(index, &reader, structure, header.structure_bytes)) return false;
    deserialize_engine(index, meta, structure, header.structure_bytes, engine);
    pfree(structure);
    if (header.centroid_bytes == 0) return true;
    uint8* centroids = nullptr;
    benzer::GuardedError error;
    benzer::Engine* loaded = engine->object;
    if (!benzer::run_guarded(error, [&] {
            centroids = loaded->centroid_storage(static_cast<std::size_t>(header.centroid_bytes));
        }))
        raise_load_error(index, error, "the coarse centroids");
    return faiss_chain_read(index, &reader, reinterpret_cast<char*>(centroids),
                            header.centroid_bytes);
}

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

    EngineHolder* engine;
    AttributesHolder* attributes;
    FaissLoadedIndex* entry = begin_entry(index, meta.generation, &engine, &attributes);
    MemoryContext context = entry->context;

    // Labels stay in their pages: only the page table of their chain.
    BlockNumber* label_blocks = nullptr;
    MemoryContext old_context = MemoryContextSwitchTo(context);
    bool have_blocks =
        faiss_chain_blocks(index, meta.labels, kFaissPageLabels, meta.generation, &label_blocks);
    MemoryContextSwitchTo(old_context);
    if (!have_blocks) {
        MemoryContextDelete(context);
        return nullptr;
    }
    entry->labels = nullptr;
    entry->label_blocks = label_blocks;
    entry->label_chain = meta.labels;
    entry->nlabels = static_cast<int64>(meta.labels.bytes / sizeof(ItemPointerData));
    entry->bytes = sizeof(BlockNumber) * meta.labels.pages;

    // Filter column values wait for the first search that filters on them
    // (faiss_cache_attributes).
    // A structure that lives whole in the blob (HNSW, ...) stays in the
    // search service when it will hold it: one copy per server, not one
    // per connection. Otherwise, or if it later cannot answer, this
    // backend loads its own (faiss_cache_engine).
    if (meta.factory[0] != '\0') {
        ServiceEngineSummary summary;
        const char* why = nullptr;
        if (!faiss_lists_paged(meta) && benzer_service_structures && service_may_answer(index) &&
            service_describe_engine(index, meta.generation, meta.dimensions, &summary, &why)) {
            entry->served = static_cast<ServiceEngineSummary*>(
                MemoryContextAlloc(context, sizeof(ServiceEngineSummary)));
            *entry->served = summary;
            entry->bytes += sizeof(ServiceEngineSummary);
        } else {
            if (!faiss_cache_read_engine(index, meta, engine)) {
                MemoryContextDelete(context);
                return nullptr;
            }
            entry->bytes += meta.blob.bytes;
        }
    }
    if (faiss_lists_paged(meta)) {
        FaissListRef* directory = nullptr;
        BlockNumber* blocks = nullptr;
        MemoryContext old = MemoryContextSwitchTo(context);
        BlockNumber* tails = nullptr;
        bool ok = faiss_read_list_directory(index, meta, &directory) &&
                  faiss_read_list_page_table(index, meta, &blocks) &&
                  (!faiss_has_tails(meta) || faiss_read_tail_directory_blocks(index, meta, &tails));
        MemoryContextSwitchTo(old);
        if (!ok) {
            MemoryContextDelete(context);
            return nullptr;
        }
        entry->lists = directory;
        entry->list_blocks = blocks;
        entry->tail_blocks = tails;
        entry->bytes += meta.list_directory.bytes + meta.list_page_table.bytes;
    }
    publish(index, entry, engine, attributes);
    apply_options(index, entry);
    entry->pins++;
    return entry;
}

bool faiss_cache_engine(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry) {
    Assert(entry->pins > 0 && entry->generation == meta.generation);
    if (entry->engine != nullptr || meta.factory[0] == '\0') return true;
    // Read into a holder of a scratch context first: an ERROR half-way
    // (or a merge racing the read) leaves the entry as it was.
    MemoryContext scratch =
        AllocSetContextCreate(CurrentMemoryContext, "benzer engine load", ALLOCSET_DEFAULT_SIZES);
    EngineHolder* loading = EngineHolder::create(scratch);
    MemoryContext old = MemoryContextSwitchTo(scratch);
    bool ok = faiss_cache_read_engine(index, meta, loading);
    MemoryContextSwitchTo(old);
    if (ok) {
        benzer::Engine* engine = loading->release();
        entry->engine_holder->object = engine;
        entry->engine = engine;
        entry->bytes += meta.blob.bytes;
        read_built_defaults(entry);
        // The index's options apply from here as to any loaded engine
        // (the option fields are still zero: nothing was applied).
        apply_options(index, entry);
    }
    MemoryContextDelete(scratch);
    return ok;
}

benzer::SearchShape faiss_entry_shape(Relation index, const FaissLoadedIndex* entry) {
    if (entry == nullptr || entry->engine != nullptr || entry->served == nullptr)
        return faiss_search_shape(entry != nullptr ? entry->engine : nullptr);
    // The service's copy keeps the defaults it was built with; this
    // index's options (ALTER INDEX ... SET) go with each request.
    FaissOptions* options = faiss_get_options(index);
    benzer::SearchShape shape;
    shape.nlist = entry->served->nlist;
    shape.default_nprobe = options->nprobe > 0 ? options->nprobe : entry->served->default_nprobe;
    shape.default_ef_search =
        options->ef_search > 0 ? options->ef_search : entry->served->default_ef_search;
    return shape;
}

bool faiss_cache_attributes(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                            benzer::AttributeStore** store) {
    Assert(entry->pins > 0 && entry->generation == meta.generation);
    if (entry->attributes != nullptr || meta.attributes.head == InvalidBlockNumber) {
        *store = entry->attributes;
        return true;
    }
    // The serialised form is read into the caller's memory (freed right
    // after, or with it on an ERROR); the store goes to the entry's holder
    // only when complete.
    char* data = nullptr;
    if (!faiss_read_chain(index, meta.attributes, kFaissPageAttributes, meta.generation, &data))
        return false;
    benzer::GuardedError error;
    benzer::AttributeStore* loaded = nullptr;
    if (!benzer::run_guarded(error, [&] {
            loaded = benzer::AttributeStore::deserialize(reinterpret_cast<const uint8*>(data),
                                                         meta.attributes.bytes);
        }))
        raise_load_error(index, error, "the filter columns");
    entry->attribute_holder->object = loaded;
    entry->attributes = loaded;
    entry->bytes += meta.attributes.bytes;
    pfree(data);
    *store = loaded;
    return true;
}

ItemPointerData faiss_cache_label_tid(Relation index, const FaissLoadedIndex* entry, int64 label) {
    Assert(label >= 0 && label < entry->nlabels);
    if (entry->labels != nullptr) return entry->labels[label];
    ItemPointerData tid;
    if (!faiss_chain_read_at(index, entry->label_chain, entry->label_blocks, kFaissPageLabels,
                             entry->generation,
                             sizeof(ItemPointerData) * static_cast<uint64>(label),
                             reinterpret_cast<char*>(&tid), sizeof(tid)))
        ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                        errmsg("faiss index \"%s\" was merged while a search read it",
                               RelationGetRelationName(index)),
                        errhint("Run the query again.")));
    return tid;
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

void faiss_cache_insert(Relation index, uint32 generation, EngineHolder* engine,
                        AttributesHolder* attributes, const ItemPointerData* labels,
                        int64 nlabels) {
    EngineHolder* own_engine;
    AttributesHolder* own_attributes;
    FaissLoadedIndex* entry = begin_entry(index, generation, &own_engine, &own_attributes);
    own_engine->object = engine->release();
    own_attributes->object = attributes->release();

    Size label_bytes = sizeof(ItemPointerData) * static_cast<Size>(nlabels);
    entry->labels = static_cast<ItemPointerData*>(
        MemoryContextAllocHuge(entry->context, Max(label_bytes, static_cast<Size>(1))));
    if (label_bytes > 0) memcpy(entry->labels, labels, label_bytes);
    entry->nlabels = nlabels;
    entry->bytes = label_bytes;
    benzer::GuardedError error;
    Size object_bytes = 0;
    benzer::Engine* e = own_engine->object;
    benzer::AttributeStore* a = own_attributes->object;
    if (benzer::run_guarded(error, [&] {
            if (e != nullptr) object_bytes += e->memory_bytes();
            if (a != nullptr) object_bytes += a->memory_bytes();
        }))
        entry->bytes += object_bytes;
    publish(index, entry, own_engine, own_attributes);
}

void faiss_cache_supersede(Relation index, uint32 generation) {
    supersede(index, generation);
    for (int i = 0; i < kMaxEntries; i++)
        if (g_entries[i] != nullptr && g_entries[i]->stale && g_entries[i]->pins == 0)
            free_entry(i);
}

Size faiss_cache_bytes(Relation index) {
    Size total = 0;
    for (int i = 0; i < kMaxEntries; i++) {
        FaissLoadedIndex* e = g_entries[i];
        if (e != nullptr && e->relid == RelationGetRelid(index)) total += e->bytes;
    }
    return total;
}
