// faiss_view.cpp: loading what one search sees of a faiss index.
#include "pg/faiss_view.h"

#include "pg/guarded.h"

extern "C" {
#include "utils/rel.h"
}

#include <vector>

namespace {

// Keeps only the pending rows whose filter values satisfy the conditions.
void filter_pending(const benzer::AttributeKind* kinds, int nkinds,
                    const benzer::Condition* conditions, int nconditions, FaissPendingRows* pending,
                    int dim) {
    int64 count = pending->count;
    uint8* match = static_cast<uint8*>(palloc((count + 7) / 8 + 1));
    memset(match, 0xff, (count + 7) / 8 + 1);
    // The temporary store lives inside the guarded call only.
    guarded("could not apply filter columns to pending rows", [&] {
        benzer::AttributeStore store(std::vector<benzer::AttributeKind>(kinds, kinds + nkinds));
        for (int64 i = 0; i < count; i++)
            store.append_encoded(pending->attributes + pending->attribute_offsets[i],
                                 pending->attribute_offsets[i + 1] - pending->attribute_offsets[i]);
        store.filter(conditions, nconditions, match, count);
    });
    int64 kept = 0;
    for (int64 i = 0; i < count; i++) {
        if (!((match[i >> 3] >> (i & 7)) & 1)) continue;
        pending->tids[kept] = pending->tids[i];
        memmove(pending->vectors + kept * dim, pending->vectors + i * dim, sizeof(float) * dim);
        kept++;
    }
    pending->count = kept;
    pfree(match);
}

}  // namespace

bool faiss_load_view(Relation index, const FaissMeta& meta, const benzer::AttributeKind* kinds,
                     int nkinds, const benzer::Condition* conditions, int nconditions,
                     FaissLoadedIndex** entry, FaissView* view) {
    if (meta.generation > 0 && meta.labels.head != InvalidBlockNumber) {
        *entry = faiss_cache_acquire(index, meta);
        if (*entry == nullptr) return false;
    }
    char* tombstones = nullptr;
    if (meta.tombstones.head != InvalidBlockNumber &&
        !faiss_read_chain(index, meta.tombstones, kFaissPageTombstones, meta.generation,
                          &tombstones))
        return false;
    FaissPendingRows pending = {0, nullptr, nullptr, nullptr, nullptr};
    if (!faiss_read_pending(index, meta, &pending)) return false;

    // Allowed = live labels (no bits past the last one) that match.
    view->nlabels = *entry != nullptr ? (*entry)->nlabels : 0;
    Size bytes = static_cast<Size>((view->nlabels + 7) / 8) + 1;
    view->allowed = static_cast<uint8*>(MemoryContextAllocHuge(CurrentMemoryContext, bytes));
    // Every query builds this bitmap (62 kB at 500 000 rows): word-wise.
    memset(view->allowed, 0xff, bytes);
    if (tombstones != nullptr) {
        Size dead_bytes = Min(bytes, static_cast<Size>(meta.tombstones.bytes));
        Size i = 0;
        for (; i + 8 <= dead_bytes; i += 8) {
            uint64 dead, live;
            memcpy(&dead, tombstones + i, 8);
            live = ~dead;
            memcpy(view->allowed + i, &live, 8);
        }
        for (; i < dead_bytes; i++) view->allowed[i] = static_cast<uint8>(~tombstones[i]);
    }
    for (int64 label = view->nlabels; label < static_cast<int64>(bytes) * 8; label++)
        view->allowed[label >> 3] &= static_cast<uint8>(~(1u << (label & 7)));
    if (tombstones != nullptr) pfree(tombstones);
    if (nconditions > 0 && view->nlabels > 0) {
        benzer::AttributeStore* store = nullptr;
        if (!faiss_cache_attributes(index, meta, *entry, &store)) {
            pfree(view->allowed);
            return false;
        }
        if (store == nullptr)
            ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                            errmsg("faiss index \"%s\" has no filter column data",
                                   RelationGetRelationName(index))));
        uint8* allowed = view->allowed;
        int64 nlabels = view->nlabels;
        guarded("could not apply filter columns",
                [&] { store->filter(conditions, nconditions, allowed, nlabels); });
    }
    view->allowed_count = benzer::count_bits(view->allowed, bytes);

    if (nconditions > 0 && pending.count > 0)
        filter_pending(kinds, nkinds, conditions, nconditions, &pending, meta.dimensions);
    view->pending = pending;
    return true;
}
