// index_list.cpp: benzer_indexes(), every faiss index of the database.
//
// Reads the catalogs through SPI, then each index's metapage and pending
// pages. Unlike benzer_index_info(), it never loads an index into memory,
// so listing a database with many large indexes stays cheap. Indexes on
// tables the caller may not read are listed without their contents.
#include "pg/faiss.h"

#include "pg/faiss_cache.h"
#include "pg/faiss_pages.h"
#include "pg/faiss_tails.h"

extern "C" {
#include "access/relation.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
}

namespace {

// One index as the catalog query describes it.
struct ListedIndex {
    Oid index;
    Oid table;
    Datum columns;  // text[], copied out of SPI
    bool columns_null;
    char* predicate;  // NULL when not partial
    bool valid;
};

constexpr int kColumns = 15;

}  // namespace

// benzer_indexes() RETURNS TABLE (index regclass, "table" regclass,
//   vector_column text, filter_columns text[], predicate text, valid
//   boolean, factory text, metric text, dimensions integer, rows bigint,
//   pending_rows bigint, dead_rows bigint, bytes bigint, size text,
//   loaded_bytes bigint)
BENZER_FUNCTION(benzer_indexes) {
    InitMaterializedSRF(fcinfo, 0);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    MemoryContext outer = CurrentMemoryContext;

    // Other sessions' temporary indexes cannot be read; leave them out.
    const char* query =
        "SELECT c.oid, i.indrelid, "
        "       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a "
        "             WHERE a.attrelid = c.oid AND a.attnum > 0 ORDER BY a.attnum), "
        "       pg_catalog.pg_get_expr(i.indpred, i.indrelid), i.indisvalid AND i.indisready "
        "FROM pg_catalog.pg_index i "
        "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_catalog.pg_am am ON am.oid = c.relam "
        "WHERE am.amname = 'faiss' AND NOT pg_catalog.pg_is_other_temp_schema(c.relnamespace) "
        "ORDER BY c.relnamespace::regnamespace::text, c.relname";
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    if (SPI_execute(query, true, 0) != SPI_OK_SELECT)
        elog(ERROR, "benzer_indexes: catalog query failed");
    uint64 count = SPI_processed;
    MemoryContext spi = MemoryContextSwitchTo(outer);
    auto* listed = static_cast<ListedIndex*>(palloc0(sizeof(ListedIndex) * Max(count, 1)));
    MemoryContextSwitchTo(spi);
    for (uint64 i = 0; i < count; i++) {
        HeapTuple tuple = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        listed[i].index = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
        listed[i].table = DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
        Datum columns = SPI_getbinval(tuple, desc, 3, &listed[i].columns_null);
        if (!listed[i].columns_null) listed[i].columns = SPI_datumTransfer(columns, false, -1);
        char* predicate = SPI_getvalue(tuple, desc, 4);
        if (predicate != nullptr) {
            MemoryContext old = MemoryContextSwitchTo(outer);
            listed[i].predicate = pstrdup(predicate);
            MemoryContextSwitchTo(old);
        }
        listed[i].valid = DatumGetBool(SPI_getbinval(tuple, desc, 5, &isnull));
    }
    SPI_finish();

    for (uint64 i = 0; i < count; i++) {
        const ListedIndex& item = listed[i];
        Datum values[kColumns];
        bool nulls[kColumns];
        memset(nulls, true, sizeof(nulls));
        values[0] = ObjectIdGetDatum(item.index);
        nulls[0] = false;
        values[1] = ObjectIdGetDatum(item.table);
        nulls[1] = false;
        if (!item.columns_null) {
            ArrayType* columns = DatumGetArrayTypeP(item.columns);
            Datum* names;
            bool* name_nulls;
            int n;
            deconstruct_array(columns, TEXTOID, -1, false, TYPALIGN_INT, &names, &name_nulls, &n);
            if (n >= 1) {
                values[2] = names[0];
                nulls[2] = false;
                values[3] = PointerGetDatum(
                    construct_array(names + 1, n - 1, TEXTOID, -1, false, TYPALIGN_INT));
                nulls[3] = false;
            }
        }
        if (item.predicate != nullptr) {
            values[4] = CStringGetTextDatum(item.predicate);
            nulls[4] = false;
        }
        values[5] = BoolGetDatum(item.valid);
        nulls[5] = false;

        // The index may have been dropped since the catalog query. What is
        // inside it (row counts, factory) is shown only to roles that may
        // read its table (faiss_access.cpp); the catalog facts above are
        // public anyway.
        bool readable = item.valid && faiss_may_read(item.table, item.index);
        Relation index = readable ? try_relation_open(item.index, AccessShareLock) : nullptr;
        if (index != nullptr && RelationGetNumberOfBlocks(index) > 0) {
            FaissMeta meta;
            faiss_read_meta(index, &meta);
            int64 pending = faiss_count_inserted(index, meta);
            int64 bytes = static_cast<int64>(RelationGetNumberOfBlocks(index)) * BLCKSZ;
            if (meta.factory[0] != '\0') {
                values[6] = CStringGetTextDatum(meta.factory);
                nulls[6] = false;
            }
            values[7] =
                CStringGetTextDatum(benzer::metric_name(static_cast<benzer::Metric>(meta.metric)));
            values[8] = Int32GetDatum(meta.dimensions);
            values[9] = Int64GetDatum(meta.main_rows - meta.dead_rows);
            values[10] = Int64GetDatum(pending);
            values[11] = Int64GetDatum(meta.dead_rows);
            values[12] = Int64GetDatum(bytes);
            values[13] = DirectFunctionCall1(pg_size_pretty, Int64GetDatum(bytes));
            values[14] = Int64GetDatum(static_cast<int64>(faiss_cache_bytes(index)));
            for (int c = 7; c < kColumns; c++) nulls[c] = false;
        }
        if (index != nullptr) relation_close(index, AccessShareLock);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return static_cast<Datum>(0);
}
