// faiss_pages.cpp: metapage, chains, tombstones and pending rows.
//
// See faiss_pages.h for the layout and the generation protocol. WAL:
//  - CREATE INDEX writes every page unlogged and logs the whole relation
//    once at the end (log_newpage_range), as PostgreSQL's own bulk builds do.
//  - A merge logs each new chain page as a full-page image, then switches
//    the metapage in one GenericXLog record; a crash before the switch
//    leaves only unreachable pages behind.
//  - Inserts (pending rows), tombstones and pending-row deletion are
//    GenericXLog records of at most three pages.
// All of it replays on a standby like any built-in index.
#include "pg/faiss_pages.h"

extern "C" {
#include "access/generic_xlog.h"
#include "access/xloginsert.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "storage/bufpage.h"
#include "storage/indexfsm.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/rel.h"
}

Size faiss_chain_page_capacity(void) {
    return BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(FaissPageOpaque));
}

void faiss_init_page(Page page, FaissPageKind kind, uint32 generation) {
    PageInit(page, BLCKSZ, sizeof(FaissPageOpaque));
    FaissPageOpaque* opaque = faiss_page_opaque(page);
    opaque->generation = generation;
    opaque->next = InvalidBlockNumber;
    opaque->kind = kind;
    opaque->unused = 0;
    opaque->sequence = 0;
}

// ERRORs unless page is a valid metapage.
static void check_meta_page(Relation index, Page page) {
    FaissMeta* meta = faiss_page_meta(page);
    if (PageIsNew(page) || faiss_page_opaque(page)->kind != kFaissPageMeta ||
        meta->magic != kFaissMagic)
        ereport(ERROR,
                (errcode(ERRCODE_INDEX_CORRUPTED),
                 errmsg("index \"%s\" is not a faiss index", RelationGetRelationName(index))));
    if (meta->version != kFaissFormatVersion && meta->version != kFaissFormatVersionPagedLists)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("faiss index \"%s\" has format version %u, this benzer reads %u and %u",
                        RelationGetRelationName(index), meta->version, kFaissFormatVersion,
                        kFaissFormatVersionPagedLists),
                 errhint("REINDEX the index.")));
}

void faiss_read_meta(Relation index, FaissMeta* meta) {
    Buffer buffer = ReadBuffer(index, kFaissMetaBlock);
    LockBuffer(buffer, BUFFER_LOCK_SHARE);
    Page page = BufferGetPage(buffer);
    check_meta_page(index, page);
    memcpy(meta, faiss_page_meta(page), sizeof(FaissMeta));
    UnlockReleaseBuffer(buffer);
    // No chain can start at block 0, the metapage. Indexes of unlogged
    // tables reset by crash recovery before benzer 0.1.1 had a zeroed
    // attribute chain head there; read it as "no chain".
    FaissChain* chains[] = {&meta->blob,       &meta->labels,         &meta->tombstones,
                            &meta->attributes, &meta->list_directory, &meta->list_page_table,
                            &meta->list_tails};
    for (FaissChain* chain : chains)
        if (chain->head == kFaissMetaBlock) *chain = {InvalidBlockNumber, 0, 0};
}

// Fills page with a metapage holding meta.
static void fill_meta_page(Page page, const FaissMeta* meta) {
    faiss_init_page(page, kFaissPageMeta, meta->generation);
    memcpy(faiss_page_meta(page), meta, sizeof(FaissMeta));
    reinterpret_cast<PageHeader>(page)->pd_lower =
        static_cast<LocationIndex>(PageGetContents(page) + sizeof(FaissMeta) - page);
}

void faiss_write_new_meta(Relation index, ForkNumber fork, const FaissMeta* meta, bool wal_log) {
    Buffer buffer = ReadBufferExtended(index, fork, P_NEW, RBM_NORMAL, nullptr);
    if (BufferGetBlockNumber(buffer) != kFaissMetaBlock)
        elog(ERROR, "faiss index \"%s\" is not empty", RelationGetRelationName(index));
    LockBuffer(buffer, BUFFER_LOCK_EXCLUSIVE);
    START_CRIT_SECTION();
    fill_meta_page(BufferGetPage(buffer), meta);
    MarkBufferDirty(buffer);
    if (wal_log) log_newpage_buffer(buffer, true);
    END_CRIT_SECTION();
    UnlockReleaseBuffer(buffer);
}

void faiss_update_meta(Relation index, const FaissMeta* meta) {
    Buffer buffer = ReadBuffer(index, kFaissMetaBlock);
    LockBuffer(buffer, BUFFER_LOCK_EXCLUSIVE);
    GenericXLogState* state = GenericXLogStart(index);
    Page page = GenericXLogRegisterBuffer(state, buffer, GENERIC_XLOG_FULL_IMAGE);
    fill_meta_page(page, meta);
    GenericXLogFinish(state);
    UnlockReleaseBuffer(buffer);
}

// A page from the free space map is reusable unless it belongs to the
// generation in use (the FSM is not crash-safe, so check). Callers may hold
// the metapage lock, so the generation is passed in rather than read here.
Buffer faiss_new_buffer(Relation index, uint32 in_use_generation) {
    // Pages whose lock is not free right away are skipped and given back to
    // the free space map afterwards. Waiting could deadlock: after a crash
    // the FSM may list a page this very backend holds locked (the pending
    // tail page, while appending a new one).
    BlockNumber skipped[8];
    int nskipped = 0;
    Buffer result = InvalidBuffer;
    for (int attempt = 0; attempt < 64 && !BufferIsValid(result); attempt++) {
        BlockNumber block = GetFreeIndexPage(index);
        if (block == InvalidBlockNumber) break;
        if (block == kFaissMetaBlock) continue;
        Buffer buffer = ReadBuffer(index, block);
        if (!ConditionalLockBuffer(buffer)) {
            ReleaseBuffer(buffer);
            if (nskipped < static_cast<int>(lengthof(skipped))) skipped[nskipped++] = block;
            continue;
        }
        Page page = BufferGetPage(buffer);
        if (PageIsNew(page) || faiss_page_opaque(page)->generation != in_use_generation)
            result = buffer;
        else
            UnlockReleaseBuffer(buffer);  // in use: the FSM was stale
    }
    for (int i = 0; i < nskipped; i++) RecordFreeIndexPage(index, skipped[i]);
    if (BufferIsValid(result)) return result;

    LockRelationForExtension(index, ExclusiveLock);
    Buffer buffer = ReadBuffer(index, P_NEW);
    LockBuffer(buffer, BUFFER_LOCK_EXCLUSIVE);
    UnlockRelationForExtension(index, ExclusiveLock);
    return buffer;
}

// Marks the end of a chain page's payload so full-page images skip the hole.
static void set_payload_length(Page page, Size length) {
    reinterpret_cast<PageHeader>(page)->pd_lower =
        static_cast<LocationIndex>(PageGetContents(page) - page + length);
}

static Size payload_length(Page page) {
    return static_cast<Size>(reinterpret_cast<PageHeader>(page)->pd_lower) -
           static_cast<Size>(PageGetContents(page) - page);
}

// Finishes a chain page: links it to next, dirties it and, unless the
// builder logs the whole relation at the end, logs it, in one critical
// section (WAL of a page must not be interrupted half-way). Never for an
// unlogged relation: replaying a record of its main fork would recreate the
// file that crash recovery is about to reset from the init fork, and the
// server would not start again ("could not create file ...: File exists").
static void finish_chain_page(Relation index, Buffer buffer, BlockNumber next, bool log_each) {
    START_CRIT_SECTION();
    faiss_page_opaque(BufferGetPage(buffer))->next = next;
    MarkBufferDirty(buffer);
    if (log_each && RelationNeedsWAL(index)) log_newpage_buffer(buffer, true);
    END_CRIT_SECTION();
    UnlockReleaseBuffer(buffer);
}

// faiss_write_pages, for pages that must not reuse one of in_use_generation.
static FaissChain write_pages(Relation index, FaissPageKind kind, uint32 generation,
                              uint32 in_use_generation, bool log_each, FaissPageFill fill,
                              void* arg, BlockNumber* blocks) {
    FaissChain chain = {InvalidBlockNumber, 0, 0};
    Size capacity = faiss_chain_page_capacity();
    Buffer previous = InvalidBuffer;
    bool more = true;
    // Even an empty stream gets one page, so every chain has a head.
    while (more) {
        Buffer buffer = faiss_new_buffer(index, in_use_generation);
        Page page = BufferGetPage(buffer);
        BlockNumber block = BufferGetBlockNumber(buffer);
        // Filled while locked and unreachable (no metapage points here yet);
        // finish_chain_page dirties and logs it.
        faiss_init_page(page, kind, generation);
        faiss_page_opaque(page)->sequence = chain.pages;
        if (blocks != nullptr) blocks[chain.pages] = block;
        more = false;
        Size length = fill(arg, PageGetContents(page), capacity, chain.pages, &more);
        Assert(length <= capacity);
        set_payload_length(page, length);
        if (BufferIsValid(previous))
            finish_chain_page(index, previous, block, log_each);
        else
            chain.head = block;
        previous = buffer;
        chain.bytes += length;
        chain.pages++;
        if ((chain.pages & 255) == 0) CHECK_FOR_INTERRUPTS();
    }
    finish_chain_page(index, previous, InvalidBlockNumber, log_each);
    return chain;
}

FaissChain faiss_write_pages(Relation index, FaissPageKind kind, uint32 generation, bool log_each,
                             FaissPageFill fill, void* arg, BlockNumber* blocks) {
    // The chain is for a new generation; the one before it is in use.
    return write_pages(index, kind, generation, generation - 1, log_each, fill, arg, blocks);
}

namespace {

// A byte stream cut across pages (faiss_write_chain).
struct StreamFill {
    const char* data;
    uint64 bytes;
    uint64 offset;
};

Size fill_from_stream(void* arg, char* contents, Size capacity, uint32, bool* more) {
    auto* stream = static_cast<StreamFill*>(arg);
    Size length =
        static_cast<Size>(Min(static_cast<uint64>(capacity), stream->bytes - stream->offset));
    if (length > 0) memcpy(contents, stream->data + stream->offset, length);
    stream->offset += length;
    *more = stream->offset < stream->bytes;
    return length;
}

}  // namespace

FaissChain faiss_write_chain(Relation index, FaissPageKind kind, uint32 generation,
                             const char* data, uint64 bytes, bool log_each) {
    StreamFill stream = {data, bytes, 0};
    return faiss_write_pages(index, kind, generation, log_each, fill_from_stream, &stream);
}

Size faiss_page_payload_length(Page page) { return payload_length(page); }

Buffer faiss_lock_chain_page(Relation index, BlockNumber block, FaissPageKind kind,
                             uint32 generation, uint32 sequence) {
    if (block == InvalidBlockNumber) return InvalidBuffer;
    Buffer buffer = ReadBuffer(index, block);
    LockBuffer(buffer, BUFFER_LOCK_SHARE);
    Page page = BufferGetPage(buffer);
    FaissPageOpaque* opaque = faiss_page_opaque(page);
    if (PageIsNew(page) || opaque->generation != generation || opaque->kind != kind ||
        opaque->sequence != sequence) {
        UnlockReleaseBuffer(buffer);
        return InvalidBuffer;
    }
    return buffer;
}

// A chain whose pages hold more bytes than the metapage records, or fewer
// than its contents say it holds.
[[noreturn]] static void raise_chain_mismatch(Relation index) {
    ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                    errmsg("faiss index \"%s\": a page chain does not hold the bytes recorded",
                           RelationGetRelationName(index)),
                    errhint("Rebuild the index: REINDEX INDEX %s.",
                            quote_identifier(RelationGetRelationName(index)))));
}

// Calls visit(block, page) for each page of a chain in order, the page
// share-locked (visit may raise an ERROR; the lock goes with the
// transaction). Returns false, holding nothing, when a page is not the
// chain's: a merge raced the walk.
template <typename Visit>
static bool walk_chain(Relation index, const FaissChain& chain, FaissPageKind kind,
                       uint32 generation, Visit visit) {
    BlockNumber block = chain.head;
    for (uint32 i = 0; i < chain.pages; i++) {
        Buffer buffer = faiss_lock_chain_page(index, block, kind, generation, i);
        if (!BufferIsValid(buffer)) return false;
        Page page = BufferGetPage(buffer);
        visit(block, page);
        block = faiss_page_opaque(page)->next;
        UnlockReleaseBuffer(buffer);
        if ((i & 255) == 255) CHECK_FOR_INTERRUPTS();
    }
    return true;
}

bool faiss_read_chain(Relation index, const FaissChain& chain, FaissPageKind kind,
                      uint32 generation, char** data) {
    char* out = static_cast<char*>(
        MemoryContextAllocHuge(CurrentMemoryContext, Max(chain.bytes, static_cast<uint64>(1))));
    uint64 offset = 0;
    bool same = walk_chain(index, chain, kind, generation, [&](BlockNumber, Page page) {
        Size length = payload_length(page);
        if (offset + length > chain.bytes) raise_chain_mismatch(index);
        memcpy(out + offset, PageGetContents(page), length);
        offset += length;
    });
    if (!same || offset != chain.bytes) {
        pfree(out);
        return false;
    }
    *data = out;
    return true;
}

bool faiss_chain_blocks(Relation index, const FaissChain& chain, FaissPageKind kind,
                        uint32 generation, BlockNumber** blocks) {
    auto* out = static_cast<BlockNumber*>(
        palloc(sizeof(BlockNumber) * Max(chain.pages, static_cast<uint32>(1))));
    uint32 n = 0;
    if (!walk_chain(index, chain, kind, generation,
                    [&](BlockNumber block, Page) { out[n++] = block; })) {
        pfree(out);
        return false;
    }
    *blocks = out;
    return true;
}

bool faiss_chain_read_at(Relation index, const FaissChain& chain, const BlockNumber* blocks,
                         FaissPageKind kind, uint32 generation, uint64 offset, char* out,
                         Size bytes) {
    Size capacity = faiss_chain_page_capacity();
    if (offset + bytes > chain.bytes) raise_chain_mismatch(index);
    while (bytes > 0) {
        uint32 page = static_cast<uint32>(offset / capacity);
        Size at = static_cast<Size>(offset % capacity);
        if (page >= chain.pages) raise_chain_mismatch(index);
        Buffer buffer = faiss_lock_chain_page(index, blocks[page], kind, generation, page);
        if (!BufferIsValid(buffer)) return false;
        Page p = BufferGetPage(buffer);
        Size length = payload_length(p);
        if (at >= length) {
            UnlockReleaseBuffer(buffer);
            raise_chain_mismatch(index);
        }
        Size take = Min(bytes, length - at);
        memcpy(out, PageGetContents(p) + at, take);
        UnlockReleaseBuffer(buffer);
        out += take;
        offset += take;
        bytes -= take;
    }
    return true;
}

FaissChainReader faiss_chain_reader(const FaissChain& chain, FaissPageKind kind,
                                    uint32 generation) {
    return {chain, kind, generation, chain.head, 0, 0, 0};
}

bool faiss_chain_read(Relation index, FaissChainReader* reader, char* out, uint64 bytes) {
    if (bytes > reader->chain.bytes - reader->delivered) raise_chain_mismatch(index);
    while (bytes > 0) {
        if (reader->sequence >= reader->chain.pages) return false;
        Buffer buffer = faiss_lock_chain_page(index, reader->block, reader->kind,
                                              reader->generation, reader->sequence);
        if (!BufferIsValid(buffer)) return false;
        Page page = BufferGetPage(buffer);
        Size length = payload_length(page);
        if (reader->page_offset > length) {
            UnlockReleaseBuffer(buffer);
            return false;
        }
        Size take =
            static_cast<Size>(Min(static_cast<uint64>(length - reader->page_offset), bytes));
        memcpy(out, PageGetContents(page) + reader->page_offset, take);
        out += take;
        bytes -= take;
        reader->delivered += take;
        reader->page_offset += take;
        if (reader->page_offset == length) {
            reader->block = faiss_page_opaque(page)->next;
            reader->sequence++;
            reader->page_offset = 0;
        }
        UnlockReleaseBuffer(buffer);
        if ((reader->sequence & 255) == 255) CHECK_FOR_INTERRUPTS();
    }
    return true;
}

void faiss_free_chain(Relation index, const FaissChain& chain, FaissPageKind kind,
                      uint32 generation) {
    BlockNumber block = chain.head;
    for (uint32 i = 0; i < chain.pages && block != InvalidBlockNumber; i++) {
        Buffer buffer = ReadBuffer(index, block);
        LockBuffer(buffer, BUFFER_LOCK_SHARE);
        Page page = BufferGetPage(buffer);
        FaissPageOpaque* opaque = faiss_page_opaque(page);
        BlockNumber next = opaque->next;
        bool ours = !PageIsNew(page) && opaque->generation == generation && opaque->kind == kind;
        UnlockReleaseBuffer(buffer);
        if (!ours) break;
        RecordFreeIndexPage(index, block);
        block = next;
    }
}

void faiss_reclaim_orphans(Relation index, const FaissMeta& meta) {
    uint64 live = static_cast<uint64>(meta.blob.pages) + meta.labels.pages + meta.tombstones.pages +
                  meta.attributes.pages + meta.list_directory.pages + meta.list_page_table.pages +
                  meta.list_pages + 1;
    BlockNumber blocks = RelationGetNumberOfBlocks(index);
    // After a merge the old generation's pages are free (in the free space
    // map) and about as many as the new one's: up to about 2 * live blocks
    // is normal. Beyond 3 * live, pages went astray. (Pending pages of this
    // generation are live too; the scan keeps them, whatever the count.)
    if (static_cast<uint64>(blocks) <= 3 * live + 64) return;
    if (!faiss_try_lock_lists_for_freeing(index)) return;
    BlockNumber reclaimed = 0;
    for (BlockNumber block = kFaissMetaBlock + 1; block < blocks; block++) {
        Buffer buffer = ReadBuffer(index, block);
        LockBuffer(buffer, BUFFER_LOCK_SHARE);
        Page page = BufferGetPage(buffer);
        // A new page, or one of an older generation, belongs to no chain.
        // (A pending page of this generation that an appender is just
        // filling is skipped by faiss_new_buffer even if listed.)
        bool orphan = PageIsNew(page) || faiss_page_opaque(page)->generation != meta.generation;
        UnlockReleaseBuffer(buffer);
        if (orphan) {
            RecordFreeIndexPage(index, block);
            reclaimed++;
        }
        if ((block & 1023) == 0) CHECK_FOR_INTERRUPTS();
    }
    faiss_unlock_lists_for_freeing(index);
    IndexFreeSpaceMapVacuum(index);
    ereport(DEBUG1, (errmsg("faiss index \"%s\": %u of %u pages free for reuse",
                            RelationGetRelationName(index), reclaimed, blocks)));
}

// The lock's tag: a page number no index reaches.
constexpr BlockNumber kFaissListLockBlock = MaxBlockNumber;

void faiss_lock_lists_for_reading(Relation index) {
    LockPage(index, kFaissListLockBlock, ShareLock);
}

bool faiss_try_lock_lists_for_freeing(Relation index) {
    return ConditionalLockPage(index, kFaissListLockBlock, ExclusiveLock);
}

void faiss_unlock_lists_for_freeing(Relation index) {
    UnlockPage(index, kFaissListLockBlock, ExclusiveLock);
}

void faiss_set_tombstones(Relation index, const FaissMeta& meta, const int64* labels, int64 count) {
    Size capacity = faiss_chain_page_capacity();
    int64 labels_per_page = static_cast<int64>(capacity) * 8;
    BlockNumber block = meta.tombstones.head;
    int64 next = 0;
    for (uint32 i = 0; i < meta.tombstones.pages && next < count; i++) {
        int64 first = static_cast<int64>(i) * labels_per_page;
        int64 end = first + labels_per_page;
        Buffer buffer = ReadBuffer(index, block);
        LockBuffer(buffer, BUFFER_LOCK_EXCLUSIVE);
        Page page = BufferGetPage(buffer);
        FaissPageOpaque* opaque = faiss_page_opaque(page);
        if (opaque->generation != meta.generation || opaque->kind != kFaissPageTombstones)
            ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
                            errmsg("faiss index \"%s\": tombstone page %u is not of generation %u",
                                   RelationGetRelationName(index), block, meta.generation)));
        BlockNumber following = opaque->next;
        if (labels[next] < end) {
            GenericXLogState* state = GenericXLogStart(index);
            Page copy = GenericXLogRegisterBuffer(state, buffer, 0);
            uint8* bits = reinterpret_cast<uint8*>(PageGetContents(copy));
            for (; next < count && labels[next] < end; next++) {
                int64 bit = labels[next] - first;
                bits[bit >> 3] |= static_cast<uint8>(1u << (bit & 7));
            }
            GenericXLogFinish(state);
        }
        UnlockReleaseBuffer(buffer);
        block = following;
    }
}

void faiss_add_linked_item_page(GenericXLogState* state, Buffer buffer, Buffer tail_buffer,
                                FaissPageKind kind, uint32 generation, const void* item,
                                Size size) {
    Page page = GenericXLogRegisterBuffer(state, buffer, GENERIC_XLOG_FULL_IMAGE);
    faiss_init_page(page, kind, generation);
    if (PageAddItem(page, reinterpret_cast<Item>(const_cast<void*>(item)), size,
                    InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
        elog(ERROR, "could not add an item to a fresh faiss page");
    if (BufferIsValid(tail_buffer)) {
        Page tail = GenericXLogRegisterBuffer(state, tail_buffer, 0);
        faiss_page_opaque(tail)->next = BufferGetBlockNumber(buffer);
        faiss_page_opaque(page)->sequence = faiss_page_opaque(tail)->sequence + 1;
    }
}

// Fills a fresh pending page and links it after tail (if any) and into the
// metapage, all in one WAL record with the item.
static void append_on_new_page(Relation index, Buffer meta_buffer, Buffer tail_buffer,
                               const FaissPendingTuple* tuple, Size size) {
    uint32 generation = faiss_page_meta(BufferGetPage(meta_buffer))->generation;
    Buffer buffer = faiss_new_buffer(index, generation);
    GenericXLogState* state = GenericXLogStart(index);
    Page meta_page = GenericXLogRegisterBuffer(state, meta_buffer, 0);
    FaissMeta* meta = faiss_page_meta(meta_page);
    faiss_add_linked_item_page(state, buffer, tail_buffer, kFaissPagePending, meta->generation,
                               tuple, size);
    BlockNumber block = BufferGetBlockNumber(buffer);
    if (!BufferIsValid(tail_buffer)) meta->pending_head = block;
    meta->pending_tail = block;
    GenericXLogFinish(state);
    UnlockReleaseBuffer(buffer);
}

// Adds a pending row to a locked pending page with room for it, in one
// GenericXLog record.
static void add_pending_item(Relation index, Buffer buffer, FaissPendingTuple* tuple, Size size) {
    GenericXLogState* state = GenericXLogStart(index);
    Page page = GenericXLogRegisterBuffer(state, buffer, 0);
    if (PageAddItem(page, reinterpret_cast<Item>(tuple), size, InvalidOffsetNumber, false, false) ==
        InvalidOffsetNumber)
        elog(ERROR, "could not add a pending row to faiss page %u", BufferGetBlockNumber(buffer));
    GenericXLogFinish(state);
}

Size faiss_max_pending_tuple_size(void) {
    return MAXALIGN_DOWN(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) -
                         MAXALIGN(sizeof(FaissPageOpaque)) - sizeof(ItemIdData));
}

// ERRORs for a row of dim dimensions in an index of index_dim. untrained:
// the index has no Faiss structure yet, so its dimension may have come
// from a row that was rolled back.
[[noreturn]] static void wrong_dimensions(Relation index, int index_dim, int dim, bool untrained) {
    if (untrained && faiss_column_typmod_dim(index) == 0)
        ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                        errmsg("faiss index \"%s\" holds vectors of %d dimensions, not %d",
                               RelationGetRelationName(index), index_dim, dim),
                        errhint("An index on a column without a type modifier takes the "
                                "dimension of its first row; if that row was rolled back, "
                                "VACUUM the table to reset it.")));
    ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                    errmsg("faiss index \"%s\" holds vectors of %d dimensions, not %d",
                           RelationGetRelationName(index), index_dim, dim)));
    pg_unreachable();
}

FaissWideVector faiss_write_wide(Relation index, uint32 generation, const char* data,
                                 uint64 bytes) {
    StreamFill stream = {data, bytes, 0};
    FaissChain chain = write_pages(index, kFaissPageWideRow, generation, generation, true,
                                   fill_from_stream, &stream, nullptr);
    return {chain.head, chain.pages};
}

bool faiss_read_wide(Relation index, const FaissWideVector& wide, uint32 generation, char* out,
                     uint64 bytes) {
    FaissChain chain = {wide.head, wide.pages, bytes};
    FaissChainReader reader = faiss_chain_reader(chain, kFaissPageWideRow, generation);
    return faiss_chain_read(index, &reader, out, bytes);
}

void faiss_free_wide(Relation index, const FaissWideVector& wide, uint32 generation) {
    FaissChain chain = {wide.head, wide.pages, 0};
    faiss_free_chain(index, chain, kFaissPageWideRow, generation);
}

// Writes a vector too large for a pending page as a chain of its own, of
// the generation in use (an insert holds a lock that keeps merges away, so
// it cannot change before the item pointing here is added). A crash before
// the item is added leaves the pages unreferenced until the next merge,
// which reclaims every page of an older generation.
static FaissWideVector write_wide_vector(Relation index, const float* vector, int dim) {
    FaissMeta meta;
    faiss_read_meta(index, &meta);
    return faiss_write_wide(index, meta.generation, reinterpret_cast<const char*>(vector),
                            sizeof(float) * static_cast<uint64>(dim));
}

// Reads the out-of-line vector of a pending tuple (its pending page locked)
// into out. Returns false when a page is not the one it should be: the
// pending page was freed by a merge and the chain's pages reused.
static bool read_wide_vector(Relation index, const FaissPendingTuple* tuple, int dim,
                             uint32 generation, float* out) {
    FaissWideVector wide;
    memcpy(&wide, tuple->vector, sizeof(wide));
    return faiss_read_wide(index, wide, generation, reinterpret_cast<char*>(out),
                           sizeof(float) * static_cast<uint64>(dim));
}

void faiss_append_pending(Relation index, ItemPointer tid, const float* vector, int dim,
                          const uint8* attributes, Size attribute_bytes) {
    bool out_of_line =
        faiss_pending_tuple_size(dim, attribute_bytes) > faiss_max_pending_tuple_size();
    Size size = out_of_line ? faiss_pending_out_of_line_size(attribute_bytes)
                            : faiss_pending_tuple_size(dim, attribute_bytes);
    if (size > faiss_max_pending_tuple_size())
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("row too large for faiss index \"%s\": %zu bytes, at most %zu",
                        RelationGetRelationName(index), size, faiss_max_pending_tuple_size()),
                 errhint("Filter columns hold too much data (long texts or arrays).")));
    if (out_of_line) {
        // Check the dimension before writing pages for it.
        FaissMeta meta;
        faiss_read_meta(index, &meta);
        if (meta.dimensions != 0 && meta.dimensions != dim)
            wrong_dimensions(index, meta.dimensions, dim,
                             meta.main_rows == 0 && meta.factory[0] == '\0');
    }
    FaissPendingTuple* tuple = static_cast<FaissPendingTuple*>(palloc0(size));
    tuple->tid = *tid;
    tuple->attribute_bytes = static_cast<uint16>(attribute_bytes);
    char* after_vector;
    if (out_of_line) {
        FaissWideVector wide = write_wide_vector(index, vector, dim);
        memcpy(tuple->vector, &wide, sizeof(wide));
        tuple->attribute_bytes |= kFaissPendingOutOfLine;
        after_vector = reinterpret_cast<char*>(tuple->vector) + sizeof(wide);
    } else {
        memcpy(tuple->vector, vector, sizeof(float) * static_cast<Size>(dim));
        after_vector = reinterpret_cast<char*>(tuple->vector + dim);
    }
    if (attribute_bytes > 0) memcpy(after_vector, attributes, attribute_bytes);

    // The metapage stays locked (share on the fast path, exclusive on the
    // slow one) until the row is on its page, so the dimension checked here
    // cannot change meanwhile (VACUUM resets it, faiss_reset_dimensions).
    // Lock order: metapage, then pending pages.
    Buffer meta_buffer = ReadBuffer(index, kFaissMetaBlock);
    LockBuffer(meta_buffer, BUFFER_LOCK_SHARE);
    FaissMeta* meta = faiss_page_meta(BufferGetPage(meta_buffer));
    int index_dim = meta->dimensions;
    BlockNumber tail = meta->pending_tail;
    bool untrained = meta->main_rows == 0 && meta->factory[0] == '\0';
    if (index_dim != 0 && index_dim != dim) {
        UnlockReleaseBuffer(meta_buffer);
        wrong_dimensions(index, index_dim, dim, untrained);
    }
    // Fast path: the dimension is set and the tail page has room.
    if (index_dim == dim && tail != InvalidBlockNumber) {
        Buffer buffer = ReadBuffer(index, tail);
        LockBuffer(buffer, BUFFER_LOCK_EXCLUSIVE);
        Page page = BufferGetPage(buffer);
        if (faiss_page_opaque(page)->kind == kFaissPagePending &&
            faiss_page_opaque(page)->next == InvalidBlockNumber && PageGetFreeSpace(page) >= size) {
            add_pending_item(index, buffer, tuple, size);
            UnlockReleaseBuffer(buffer);
            UnlockReleaseBuffer(meta_buffer);
            pfree(tuple);
            return;
        }
        UnlockReleaseBuffer(buffer);
    }

    // Slow path: take the metapage exclusively and look again; another
    // backend may have set the dimension or added a page.
    LockBuffer(meta_buffer, BUFFER_LOCK_UNLOCK);
    LockBuffer(meta_buffer, BUFFER_LOCK_EXCLUSIVE);
    meta = faiss_page_meta(BufferGetPage(meta_buffer));
    if (meta->dimensions == 0) {
        // The first row of an index on an untyped column sets its dimension.
        GenericXLogState* state = GenericXLogStart(index);
        Page copy = GenericXLogRegisterBuffer(state, meta_buffer, 0);
        faiss_page_meta(copy)->dimensions = dim;
        GenericXLogFinish(state);
    } else if (meta->dimensions != dim) {
        index_dim = meta->dimensions;
        untrained = meta->main_rows == 0 && meta->factory[0] == '\0';
        UnlockReleaseBuffer(meta_buffer);
        wrong_dimensions(index, index_dim, dim, untrained);
    }
    tail = meta->pending_tail;
    Buffer tail_buffer = InvalidBuffer;
    if (tail != InvalidBlockNumber) {
        tail_buffer = ReadBuffer(index, tail);
        LockBuffer(tail_buffer, BUFFER_LOCK_EXCLUSIVE);
        Page page = BufferGetPage(tail_buffer);
        if (PageGetFreeSpace(page) >= size) {
            add_pending_item(index, tail_buffer, tuple, size);
            UnlockReleaseBuffer(tail_buffer);
            UnlockReleaseBuffer(meta_buffer);
            pfree(tuple);
            return;
        }
    }
    append_on_new_page(index, meta_buffer, tail_buffer, tuple, size);
    if (BufferIsValid(tail_buffer)) UnlockReleaseBuffer(tail_buffer);
    UnlockReleaseBuffer(meta_buffer);
    pfree(tuple);
}

Buffer faiss_pending_walk_next(Relation index, FaissPendingWalk* walk, int mode) {
    if (walk->next == InvalidBlockNumber || walk->raced) return InvalidBuffer;
    Buffer buffer = ReadBuffer(index, walk->next);
    LockBuffer(buffer, mode);
    Page page = BufferGetPage(buffer);
    FaissPageOpaque* opaque = faiss_page_opaque(page);
    if (PageIsNew(page) || opaque->kind != kFaissPagePending ||
        opaque->generation != walk->generation) {
        UnlockReleaseBuffer(buffer);
        walk->raced = true;
        return InvalidBuffer;
    }
    // Read under the lock: an appender sets it only with this page locked
    // exclusively, which the caller's lock excludes while it works.
    walk->next = opaque->next;
    return buffer;
}

// The pending tuple at off of a pending page, or null for an unused item
// or one whose size does not fit dim dimensions (never written by benzer;
// read as absent rather than past its end).
static FaissPendingTuple* pending_tuple(Page page, OffsetNumber off, int dim) {
    ItemId item = PageGetItemId(page, off);
    if (!ItemIdIsUsed(item)) return nullptr;
    auto* tuple = reinterpret_cast<FaissPendingTuple*>(PageGetItem(page, item));
    if (ItemIdGetLength(item) < offsetof(FaissPendingTuple, vector) ||
        ItemIdGetLength(item) < faiss_pending_item_size(tuple, dim))
        return nullptr;
    return tuple;
}

bool faiss_read_pending(Relation index, const FaissMeta& meta, FaissPendingRows* rows) {
    int dim = meta.dimensions;
    int64 capacity = 64;
    int64 attribute_capacity = 1024;
    uint64 attribute_used = 0;
    rows->count = 0;
    rows->tids = static_cast<ItemPointerData*>(palloc(sizeof(ItemPointerData) * capacity));
    rows->vectors = static_cast<float*>(
        MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(dim, 1) * capacity));
    rows->attributes = static_cast<uint8*>(palloc(attribute_capacity));
    rows->attribute_offsets = static_cast<uint64*>(palloc(sizeof(uint64) * (capacity + 1)));
    rows->attribute_offsets[0] = 0;
    FaissPendingWalk walk(meta);
    Buffer buffer;
    while ((buffer = faiss_pending_walk_next(index, &walk, BUFFER_LOCK_SHARE)) != InvalidBuffer) {
        Page page = BufferGetPage(buffer);
        OffsetNumber max = PageGetMaxOffsetNumber(page);
        for (OffsetNumber off = FirstOffsetNumber; off <= max; off = OffsetNumberNext(off)) {
            FaissPendingTuple* tuple = pending_tuple(page, off, dim);
            if (tuple == nullptr) continue;
            if (rows->count == capacity) {
                capacity *= 2;
                rows->tids = static_cast<ItemPointerData*>(
                    repalloc_huge(rows->tids, sizeof(ItemPointerData) * capacity));
                rows->vectors = static_cast<float*>(
                    repalloc_huge(rows->vectors, sizeof(float) * Max(dim, 1) * capacity));
                rows->attribute_offsets = static_cast<uint64*>(
                    repalloc_huge(rows->attribute_offsets, sizeof(uint64) * (capacity + 1)));
            }
            Size attribute_bytes = faiss_pending_attribute_bytes(tuple);
            if (attribute_used + attribute_bytes > static_cast<uint64>(attribute_capacity)) {
                attribute_capacity = Max(attribute_capacity * 2,
                                         static_cast<int64>(attribute_used + attribute_bytes));
                rows->attributes =
                    static_cast<uint8*>(repalloc_huge(rows->attributes, attribute_capacity));
            }
            rows->tids[rows->count] = tuple->tid;
            float* vector = rows->vectors + rows->count * dim;
            if (!faiss_pending_out_of_line(tuple)) {
                memcpy(vector, tuple->vector, sizeof(float) * dim);
            } else if (!read_wide_vector(index, tuple, dim, meta.generation, vector)) {
                UnlockReleaseBuffer(buffer);
                return false;
            }
            memcpy(rows->attributes + attribute_used, faiss_pending_attributes(tuple, dim),
                   attribute_bytes);
            attribute_used += attribute_bytes;
            rows->count++;
            rows->attribute_offsets[rows->count] = attribute_used;
        }
        UnlockReleaseBuffer(buffer);
    }
    return !walk.raced;
}

int64 faiss_vacuum_pending(Relation index, const FaissMeta& meta, IndexBulkDeleteCallback callback,
                           void* state, int64* remaining) {
    int64 deleted = 0;
    *remaining = 0;
    FaissPendingWalk walk(meta);
    Buffer buffer;
    // A race ends the walk: a concurrent merge took the pending rows.
    while ((buffer = faiss_pending_walk_next(index, &walk, BUFFER_LOCK_EXCLUSIVE)) !=
           InvalidBuffer) {
        Page page = BufferGetPage(buffer);
        OffsetNumber dead[MaxOffsetNumber];
        FaissWideVector wide[MaxOffsetNumber];
        int ndead = 0, nwide = 0;
        OffsetNumber max = PageGetMaxOffsetNumber(page);
        for (OffsetNumber off = FirstOffsetNumber; off <= max; off = OffsetNumberNext(off)) {
            if (!ItemIdIsUsed(PageGetItemId(page, off))) continue;
            FaissPendingTuple* tuple = pending_tuple(page, off, meta.dimensions);
            if (tuple == nullptr || callback(&tuple->tid, state)) {
                dead[ndead++] = off;
                if (tuple != nullptr && faiss_pending_out_of_line(tuple))
                    memcpy(&wide[nwide++], tuple->vector, sizeof(FaissWideVector));
            } else {
                (*remaining)++;
            }
        }
        if (ndead > 0) {
            GenericXLogState* xlog = GenericXLogStart(index);
            Page copy = GenericXLogRegisterBuffer(xlog, buffer, 0);
            PageIndexMultiDelete(copy, dead, ndead);
            GenericXLogFinish(xlog);
            deleted += ndead;
        }
        UnlockReleaseBuffer(buffer);
        // Nothing points to these pages any more (see FaissPendingTuple).
        for (int i = 0; i < nwide; i++) faiss_free_wide(index, wide[i], meta.generation);
        vacuum_delay_point();
    }
    return deleted;
}

void faiss_free_pending(Relation index, const FaissMeta& meta) {
    FaissPendingWalk walk(meta);
    Buffer buffer;
    while ((buffer = faiss_pending_walk_next(index, &walk, BUFFER_LOCK_SHARE)) != InvalidBuffer) {
        Page page = BufferGetPage(buffer);
        OffsetNumber max = PageGetMaxOffsetNumber(page);
        for (OffsetNumber off = FirstOffsetNumber; off <= max; off = OffsetNumberNext(off)) {
            FaissPendingTuple* tuple = pending_tuple(page, off, meta.dimensions);
            if (tuple == nullptr || !faiss_pending_out_of_line(tuple)) continue;
            FaissWideVector wide;
            memcpy(&wide, tuple->vector, sizeof(wide));
            faiss_free_wide(index, wide, meta.generation);
        }
        BlockNumber block = BufferGetBlockNumber(buffer);
        UnlockReleaseBuffer(buffer);
        RecordFreeIndexPage(index, block);
    }
}

bool faiss_reset_dimensions(Relation index) {
    Buffer meta_buffer = ReadBuffer(index, kFaissMetaBlock);
    LockBuffer(meta_buffer, BUFFER_LOCK_EXCLUSIVE);
    Page meta_page = BufferGetPage(meta_buffer);
    check_meta_page(index, meta_page);
    FaissMeta meta;
    memcpy(&meta, faiss_page_meta(meta_page), sizeof(FaissMeta));
    bool reset = meta.dimensions != 0 && meta.main_rows == 0 && meta.factory[0] == '\0' &&
                 faiss_column_typmod_dim(index) == 0;
    // With the metapage locked no row can be appended: check that none is
    // left (a pending page locked after the metapage follows the order).
    if (reset && faiss_count_pending(index, meta) > 0) reset = false;
    if (reset) {
        GenericXLogState* state = GenericXLogStart(index);
        Page copy = GenericXLogRegisterBuffer(state, meta_buffer, 0);
        faiss_page_meta(copy)->dimensions = 0;
        GenericXLogFinish(state);
    }
    UnlockReleaseBuffer(meta_buffer);
    return reset;
}

void faiss_add_dead_rows(Relation index, int64 delta) {
    Buffer buffer = ReadBuffer(index, kFaissMetaBlock);
    LockBuffer(buffer, BUFFER_LOCK_EXCLUSIVE);
    Page page = BufferGetPage(buffer);
    check_meta_page(index, page);
    GenericXLogState* state = GenericXLogStart(index);
    Page copy = GenericXLogRegisterBuffer(state, buffer, 0);
    faiss_page_meta(copy)->dead_rows += delta;
    GenericXLogFinish(state);
    UnlockReleaseBuffer(buffer);
}

int64 faiss_count_pending(Relation index, const FaissMeta& meta) {
    int64 count = 0;
    FaissPendingWalk walk(meta);
    Buffer buffer;
    while ((buffer = faiss_pending_walk_next(index, &walk, BUFFER_LOCK_SHARE)) != InvalidBuffer) {
        Page page = BufferGetPage(buffer);
        OffsetNumber max = PageGetMaxOffsetNumber(page);
        for (OffsetNumber off = FirstOffsetNumber; off <= max; off = OffsetNumberNext(off))
            if (pending_tuple(page, off, meta.dimensions) != nullptr) count++;
        UnlockReleaseBuffer(buffer);
    }
    return count;
}
