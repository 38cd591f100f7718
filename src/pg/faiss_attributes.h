// faiss_attributes.h: filter columns of a faiss index, PostgreSQL side.
//
// CREATE INDEX ON catalog USING faiss (embedding vector_cosine_ops, season,
// quality, design_id, tags): columns after the vector are filter columns.
// Their values are stored per label (core/attributes.h), and WHERE
// conditions on them (=, IN / = ANY, and && / @> for arrays) arrive as scan
// keys that become a bitmap of matching labels before Faiss searches.
//
// This file converts between Datums and the core's plain values. All
// memory is palloc'd in the current context; nothing here runs C++ code
// that can throw outside run_guarded().
#pragma once

#include "core/attributes.h"
#include "pg/faiss.h"

constexpr int kFaissMaxFilterColumns = INDEX_MAX_KEYS - 1;

// Strategy numbers of the faiss operator classes.
constexpr StrategyNumber kFaissStrategyDistance = 1;  // ORDER BY vector <op> query
constexpr StrategyNumber kFaissStrategyEquals = 2;    // column = value, = ANY (array)
constexpr StrategyNumber kFaissStrategyOverlaps = 3;  // array column && array
constexpr StrategyNumber kFaissStrategyContains = 4;  // array column @> array

// The kinds of the index's filter columns (attributes 2..n). Returns their
// number; ERRORs for a column type benzer cannot filter on.
int faiss_filter_kinds(Relation index, benzer::AttributeKind* kinds);

// The filter values of one index row: values[1..] and isnull[1..] as
// passed to aminsert or the build callback.
void faiss_attribute_values(const benzer::AttributeKind* kinds, int count, Relation index,
                            const Datum* values, const bool* isnull, benzer::AttributeValue* out);

// Encodes one row's filter values for a pending tuple (palloc'd).
uint8* faiss_encode_attributes(const benzer::AttributeKind* kinds, int count,
                               const benzer::AttributeValue* values, Size* length);

// The scan's keys as core conditions; returns their number.
int faiss_scan_conditions(IndexScanDesc scan, const benzer::AttributeKind* kinds,
                          benzer::Condition* out);
