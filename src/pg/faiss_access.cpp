// faiss_access.cpp: who may use benzer's functions on a faiss index.
//
// The SQL functions that take an index (benzer_batch_search,
// benzer_index_info, benzer_index_merge) must not let a role learn or do
// through the index what it could not through the table:
//
//  - reading (batch search, the row counts and factory string of
//    benzer_index_info and benzer_indexes) needs SELECT on the table, or
//    SELECT on every column the index reads: its key columns, the columns
//    its expressions use and those of a partial index's predicate (the
//    rows of "WHERE salary > 150000" tell which salaries are that high);
//  - merging rewrites the index and locks the table against VACUUM and
//    DDL, so it needs ownership, as VACUUM and REINDEX do.
//
// Everything is decided from the catalogs before any lock is taken, so a
// role without rights cannot even queue behind (or in front of) the
// owner's locks.
#include "pg/faiss.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "commands/defrem.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

Oid faiss_relation_am(Oid relid) {
    HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tuple)) return InvalidOid;
    Oid am = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relam;
    ReleaseSysCache(tuple);
    return am;
}

Oid faiss_index_table(Oid index_oid) {
    Oid heap_oid = IndexGetRelation(index_oid, true);
    if (!OidIsValid(heap_oid) || faiss_relation_am(index_oid) != get_index_am_oid("faiss", false)) {
        char* name = get_rel_name(index_oid);
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("\"%s\" is not a faiss index",
                               name != nullptr ? name : psprintf("%u", index_oid))));
    }
    return heap_oid;
}

// Adds the columns an expression list stored in pg_index reads.
static void add_expression_columns(HeapTuple tuple, int attribute, Bitmapset** columns) {
    bool isnull = true;
    Datum datum = SysCacheGetAttr(INDEXRELID, tuple, attribute, &isnull);
    if (isnull) return;
    Node* expression = static_cast<Node*>(stringToNode(TextDatumGetCString(datum)));
    pull_varattnos(expression, 1, columns);
}

bool faiss_may_read(Oid heap_oid, Oid index_oid) {
    if (pg_class_aclcheck(heap_oid, GetUserId(), ACL_SELECT) == ACLCHECK_OK) return true;
    HeapTuple tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(index_oid));
    if (!HeapTupleIsValid(tuple)) return false;
    auto* form = reinterpret_cast<Form_pg_index>(GETSTRUCT(tuple));
    // pull_varattnos offsets attribute numbers by this (system columns are
    // negative).
    constexpr int offset = FirstLowInvalidHeapAttributeNumber;
    Bitmapset* columns = nullptr;
    for (int i = 0; i < form->indnatts; i++)
        if (form->indkey.values[i] != 0)
            columns = bms_add_member(columns, form->indkey.values[i] - offset);
    add_expression_columns(tuple, Anum_pg_index_indexprs, &columns);
    add_expression_columns(tuple, Anum_pg_index_indpred, &columns);
    ReleaseSysCache(tuple);
    bool ok = !bms_is_empty(columns);
    int member = -1;
    while (ok && (member = bms_next_member(columns, member)) >= 0) {
        AttrNumber attno = static_cast<AttrNumber>(member + offset);
        // A whole-row reference (attno 0) or a system column needs the table.
        ok = attno > 0 &&
             pg_attribute_aclcheck(heap_oid, attno, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
    }
    return ok;
}

void faiss_require_read(Oid heap_oid, Oid index_oid) {
    if (faiss_may_read(heap_oid, index_oid)) return;
    char* name = get_rel_name(heap_oid);
    aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(get_rel_relkind(heap_oid)),
                   name != nullptr ? name : "?");
}

void faiss_require_owner(Oid heap_oid, Oid index_oid) {
    if (pg_class_ownercheck(heap_oid, GetUserId())) return;
    char* name = get_rel_name(index_oid);
    aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_INDEX, name != nullptr ? name : "?");
}
