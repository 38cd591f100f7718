// faiss_attributes.cpp: Datums of filter columns to and from core values.
#include "pg/faiss_attributes.h"

#include "pg/guard.h"

extern "C" {
#include "access/relscan.h"
#include "access/skey.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/pg_locale.h"
#include "utils/rel.h"
}

#include <string_view>

namespace {

bool is_integer_type(Oid type) {
    return type == INT2OID || type == INT4OID || type == INT8OID || type == BOOLOID;
}

bool is_text_type(Oid type) { return type == TEXTOID || type == VARCHAROID; }

// An integer-like Datum of type as int64.
int64 datum_to_int64(Datum value, Oid type) {
    switch (type) {
        case INT2OID:
            return DatumGetInt16(value);
        case INT4OID:
            return DatumGetInt32(value);
        case INT8OID:
            return DatumGetInt64(value);
        case BOOLOID:
            return DatumGetBool(value) ? 1 : 0;
        default:
            elog(ERROR, "faiss filter: unexpected integer type %u", type);
    }
    return 0;
}

std::string_view datum_to_text(Datum value) {
    text* t = DatumGetTextPP(value);
    return std::string_view(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

// The non-NULL elements of an array Datum as integers or texts; returns the
// element type. *had_null (if given) tells whether NULL elements were left
// out.
Oid array_elements(Datum value, int64** integers, std::string_view** texts, uint32* count,
                   bool* had_null = nullptr) {
    ArrayType* array = DatumGetArrayTypeP(value);
    Oid type = ARR_ELEMTYPE(array);
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
    Datum* elements;
    bool* nulls;
    int n;
    deconstruct_array(array, type, typlen, typbyval, typalign, &elements, &nulls, &n);
    *count = 0;
    if (had_null != nullptr) {
        *had_null = false;
        for (int i = 0; i < n; i++) *had_null = *had_null || nulls[i];
    }
    if (is_integer_type(type)) {
        *integers = static_cast<int64*>(palloc(sizeof(int64) * Max(n, 1)));
        for (int i = 0; i < n; i++)
            if (!nulls[i]) (*integers)[(*count)++] = datum_to_int64(elements[i], type);
    } else if (is_text_type(type)) {
        *texts = static_cast<std::string_view*>(palloc(sizeof(std::string_view) * Max(n, 1)));
        for (int i = 0; i < n; i++)
            if (!nulls[i]) new (&(*texts)[(*count)++]) std::string_view(datum_to_text(elements[i]));
    } else {
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("faiss filter columns do not support arrays of %s", format_type_be(type))));
    }
    return type;
}

}  // namespace

int faiss_filter_kinds(Relation index, benzer::AttributeKind* kinds) {
    TupleDesc desc = RelationGetDescr(index);
    int count = 0;
    for (int attno = 2; attno <= desc->natts; attno++) {
        Form_pg_attribute attr = TupleDescAttr(desc, attno - 1);
        Oid type = attr->atttypid;
        benzer::AttributeKind kind;
        if (is_integer_type(type)) {
            kind = benzer::AttributeKind::kInteger;
        } else if (is_text_type(type)) {
            kind = benzer::AttributeKind::kText;
        } else if (type == INT2ARRAYOID || type == INT4ARRAYOID || type == INT8ARRAYOID) {
            kind = benzer::AttributeKind::kIntegerArray;
        } else if (type == TEXTARRAYOID || type == get_array_type(VARCHAROID)) {
            kind = benzer::AttributeKind::kTextArray;
        } else {
            ereport(
                ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("faiss index column \"%s\" has type %s, which cannot be a filter column",
                        NameStr(attr->attname), format_type_be(type)),
                 errhint("Filter columns may be int2, int4, int8, bool, text, varchar, "
                         "and arrays of integers or text.")));
        }
        // Equality is compared byte for byte: fine for deterministic
        // collations only.
        if (kind == benzer::AttributeKind::kText || kind == benzer::AttributeKind::kTextArray) {
            Oid collation = index->rd_indcollation[attno - 1];
            if (OidIsValid(collation) && !get_collation_isdeterministic(collation))
                ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                                errmsg("faiss filter column \"%s\" has a nondeterministic "
                                       "collation",
                                       NameStr(attr->attname))));
        }
        kinds[count++] = kind;
    }
    return count;
}

void faiss_attribute_values(const benzer::AttributeKind* kinds, int count, Relation index,
                            const Datum* values, const bool* isnull, benzer::AttributeValue* out) {
    TupleDesc desc = RelationGetDescr(index);
    for (int c = 0; c < count; c++) {
        benzer::AttributeValue* v = new (&out[c]) benzer::AttributeValue();
        int attno = c + 2;
        if (isnull[attno - 1]) continue;
        v->is_null = false;
        Oid type = TupleDescAttr(desc, attno - 1)->atttypid;
        Datum value = values[attno - 1];
        switch (kinds[c]) {
            case benzer::AttributeKind::kInteger:
                v->integer = datum_to_int64(value, type);
                break;
            case benzer::AttributeKind::kText:
                v->text = datum_to_text(value);
                break;
            case benzer::AttributeKind::kIntegerArray: {
                int64* integers = nullptr;
                std::string_view* texts = nullptr;
                array_elements(value, &integers, &texts, &v->count);
                v->integers = integers;
                break;
            }
            case benzer::AttributeKind::kTextArray: {
                int64* integers = nullptr;
                std::string_view* texts = nullptr;
                array_elements(value, &integers, &texts, &v->count);
                v->texts = texts;
                break;
            }
        }
    }
}

uint8* faiss_encode_attributes(const benzer::AttributeKind* kinds, int count,
                               const benzer::AttributeValue* values, Size* length) {
    Size size = 0;
    benzer::GuardedError error;
    if (!benzer::run_guarded(
            error, [&] { size = benzer::AttributeStore::encoded_row_size(kinds, count, values); }))
        raise_guarded_error(error, "could not encode filter columns");
    uint8* out = static_cast<uint8*>(palloc(Max(size, 1)));
    if (!benzer::run_guarded(error, [&] {
            benzer::AttributeStore::encode_row_into(kinds, count, values, out, size);
        }))
        raise_guarded_error(error, "could not encode filter columns");
    *length = size;
    return out;
}

int faiss_scan_conditions(IndexScanDesc scan, const benzer::AttributeKind* kinds,
                          benzer::Condition* out) {
    int count = 0;
    TupleDesc desc = RelationGetDescr(scan->indexRelation);
    for (int i = 0; i < scan->numberOfKeys; i++) {
        ScanKey key = &scan->keyData[i];
        if (key->sk_attno < 2) continue;  // only filter columns have keys
        benzer::Condition* cond = new (&out[count++]) benzer::Condition();
        cond->column = key->sk_attno - 2;
        if (key->sk_flags & SK_ISNULL) {
            cond->op = benzer::ConditionOp::kNever;  // x = NULL is never true
            continue;
        }
        benzer::AttributeKind kind = kinds[cond->column];
        bool array_column = kind == benzer::AttributeKind::kIntegerArray ||
                            kind == benzer::AttributeKind::kTextArray;
        switch (key->sk_strategy) {
            case kFaissStrategyEquals:
                cond->op = benzer::ConditionOp::kEqualsAny;
                break;
            case kFaissStrategyOverlaps:
                cond->op = benzer::ConditionOp::kOverlaps;
                break;
            case kFaissStrategyContains:
                cond->op = benzer::ConditionOp::kContains;
                break;
            default:
                elog(ERROR, "faiss index: unexpected strategy %d", key->sk_strategy);
        }
        if (array_column == (cond->op == benzer::ConditionOp::kEqualsAny))
            elog(ERROR, "faiss index: strategy %d does not apply to column %d", key->sk_strategy,
                 key->sk_attno);
        int64* integers = nullptr;
        std::string_view* texts = nullptr;
        uint32 n = 0;
        if ((key->sk_flags & SK_SEARCHARRAY) || array_column) {
            bool had_null = false;
            array_elements(key->sk_argument, &integers, &texts, &n, &had_null);
            // "a @> b" needs every element of b in a, and a NULL element is
            // never found (array_contains): no row can match. (= ANY and &&
            // just ignore NULL elements.)
            if (had_null && cond->op == benzer::ConditionOp::kContains) {
                cond->op = benzer::ConditionOp::kNever;
                continue;
            }
        } else {
            Oid type = OidIsValid(key->sk_subtype)
                           ? key->sk_subtype
                           : TupleDescAttr(desc, key->sk_attno - 1)->atttypid;
            n = 1;
            if (kind == benzer::AttributeKind::kInteger) {
                integers = static_cast<int64*>(palloc(sizeof(int64)));
                integers[0] = datum_to_int64(key->sk_argument, type);
            } else {
                texts = static_cast<std::string_view*>(palloc(sizeof(std::string_view)));
                new (&texts[0]) std::string_view(datum_to_text(key->sk_argument));
            }
        }
        cond->integers = integers;
        cond->texts = texts;
        cond->count = n;
        // Element kinds must match the column's (an int column compared
        // with a text array cannot come from our operator classes).
        bool integer_column =
            kind == benzer::AttributeKind::kInteger || kind == benzer::AttributeKind::kIntegerArray;
        if (n > 0 && (integer_column ? integers == nullptr : texts == nullptr))
            elog(ERROR, "faiss index: operand type does not match filter column %d", key->sk_attno);
    }
    return count;
}
