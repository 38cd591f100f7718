// faiss_cache.h: each backend's loaded Faiss indexes.
//
// Loading means reading the blob chain and deserialising it, which for a
// large index takes a while, so a backend keeps what it loaded, keyed by
// relation, relfilenode (REINDEX and TRUNCATE change it) and generation
// (a merge changes it). A scan pins the entry it uses; eviction (when the
// cache outgrows benzer.cache_memory) only frees unpinned entries.
#pragma once

#include "core/attributes.h"
#include "core/search_rounds.h"
#include "pg/context_owned.h"
#include "pg/faiss_pages.h"

struct FaissListRef;
struct ServiceEngineSummary;

// One loaded index. Everything it holds lives in its own memory context:
// the labels directly, the engine and the attribute store through reset
// callbacks (context_owned.h). While an entry is being loaded, that context
// is a child of the caller's, so an ERROR or a cancel at any point frees it
// all; only a complete entry moves under the cache's context.
struct FaissLoadedIndex {
    MemoryContext context;  // owns this struct and all below
    Oid relid;
    RelFileNode node;
    uint32 generation;
    // null while the index is untrained, and while the search service holds
    // the structure for this backend (served)
    benzer::Engine* engine;
    ContextOwned<benzer::Engine>* engine_holder;  // owns engine
    // The structure the search service holds (a whole Faiss structure:
    // HNSW, ...), or null: searches go there (faiss_engine_search.cpp).
    ServiceEngineSummary* served;
    // label -> heap TID: a copy where this backend built or merged the
    // index; otherwise null, and faiss_cache_label_tid reads the label pages
    // (a copy would be 6 bytes per row in every backend: 60 MB at 10 M rows).
    ItemPointerData* labels;
    BlockNumber* label_blocks;  // the label chain's pages, in order, when labels is null
    FaissChain label_chain;
    int64 nlabels;
    // Filter column values: null if the index has none, or until the first
    // search with conditions on them loads them (faiss_cache_attributes).
    benzer::AttributeStore* attributes;
    ContextOwned<benzer::AttributeStore>* attribute_holder;  // owns attributes
    // IVF lists in pages (faiss_lists.h): their directory, and then the
    // engine holds the trained structure without rows. Null when the lists
    // are inside the engine.
    FaissListRef* lists;
    BlockNumber* list_blocks;  // every list page's block, list by list
    BlockNumber* tail_blocks;  // the list tail directory's pages (faiss_tails.h), or null
    Size bytes;                // memory held (approximate)
    int pins;
    int option_nprobe;  // index options applied to engine
    int option_ef_search;
    double option_k_factor;
    int built_nprobe;  // the engine's own defaults, for RESET
    int built_ef_search;
    float built_k_factor;
    uint64 last_used;
    bool stale;  // superseded: free when unpinned
};

// The loaded index for meta's generation, loaded if needed and pinned.
// Returns null when a merge raced the load; re-read the metapage and retry.
FaissLoadedIndex* faiss_cache_acquire(Relation index, const FaissMeta& meta);

// The filter column values of a pinned entry, read from meta's chain the
// first time a search needs them (most searches without conditions never
// do, which keeps a fresh connection's first query cheap). Sets *store to
// null when the index has no filter columns. Returns false when a merge
// raced the read; re-read the metapage and retry.
bool faiss_cache_attributes(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry,
                            benzer::AttributeStore** store);

// Loads the Faiss structure into a pinned entry the search service held it
// for, when this backend must search it itself after all (the service
// stopped answering, benzer.search_service turned off). Returns false when
// a merge raced the read.
bool faiss_cache_engine(Relation index, const FaissMeta& meta, FaissLoadedIndex* entry);

// Reads meta's Faiss structure from its blob pages into engine->object.
// Returns false when a merge raced the read.
bool faiss_cache_read_engine(Relation index, const FaissMeta& meta,
                             ContextOwned<benzer::Engine>* engine);

// What rounds of a search of entry (null: nothing) can widen, whether the
// structure is here or in the search service.
benzer::SearchShape faiss_entry_shape(Relation index, const FaissLoadedIndex* entry);

// The heap TID of label in a pinned entry. ERRORs (serialization failure,
// "run the query again") when a merge has reused the label pages since the
// entry was loaded.
ItemPointerData faiss_cache_label_tid(Relation index, const FaissLoadedIndex* entry, int64 label);

// Unpins an entry returned by faiss_cache_acquire.
void faiss_cache_release(FaissLoadedIndex* entry);

// Unpins *slot (if set) when context is reset or deleted, and clears it.
// A scan registers this on its memory context, since amendscan is not
// called when a query fails.
void faiss_cache_release_on_reset(MemoryContext context, FaissLoadedIndex** slot);

// Hands a freshly built or merged index to the cache: the engine and the
// attribute store move out of their holders (which keep owning them until
// the cache's own holders do, so nothing leaks at any point); labels are
// copied.
void faiss_cache_insert(Relation index, uint32 generation, ContextOwned<benzer::Engine>* engine,
                        ContextOwned<benzer::AttributeStore>* attributes,
                        const ItemPointerData* labels, int64 nlabels);

// Marks every loaded generation of the index but this one stale (a build or
// merge whose result is not handed to the cache: list pages are read from
// shared buffers, and the next search loads the small rest).
void faiss_cache_supersede(Relation index, uint32 generation);

// Bytes this backend holds for the index (0 if not loaded).
Size faiss_cache_bytes(Relation index);
