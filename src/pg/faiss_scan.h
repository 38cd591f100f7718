// faiss_scan.h: what a faiss index scan did, for EXPLAIN.
//
// Scans register their statistics here; faiss_info.cpp's EXPLAIN hook
// prints them after the plan. Finished scans keep their figures until the
// next top-level statement starts, since EXPLAIN ANALYZE prints after the
// executor has ended the scans.
#pragma once

#include "pg/faiss.h"

struct FaissScanStats {
    Oid index_relid;
    int64 rounds;                 // Faiss searches run
    int64 candidates;             // results Faiss returned before filtering
    int64 main_returned;          // rows returned from the Faiss structure
    int64 pending_returned;       // rows returned from the pending rows
    int64 pending_rows;           // pending rows searched exactly
    int conditions;               // WHERE conditions applied inside the index
    int64 allowed_rows;           // indexed rows that satisfied them (and are live)
    int max_nprobe;               // widest nprobe used (0: the index default)
    bool selector_used;           // filter applied inside Faiss
    bool exact_scan;              // exact distances over a small filter
    bool hit_limit;               // stopped at benzer.max_scan_tuples
    bool adaptive;                // IVF lists probed under the tuned stop rule
    int64 lists;                  // lists those probes visited
    int64 compared;               // rows they computed a distance for
    int64 first_k;                // rows the first round asked for
    int64 reranked;               // candidates re-ranked by their heap rows' vectors
    int64 service;                // rounds the search service answered
    bool service_gpu;             // ... on a GPU
    int service_batch;            // largest batch such an answer came in
    const char* service_why_not;  // why an exact round ran in the backend (static)
    double recall_target;         // the recall target followed (0: explicit knobs)
    double recall_measured;       // what the tuner measured for its setting
    const char* setting_source;   // where the settings came from (static string)
};

// Tells a faiss index scan the query's LIMIT (plus OFFSET), from the
// executor hook in faiss_limit.cpp: its first round then asks the index
// for just that many rows.
void faiss_scan_set_limit(IndexScanDesc scan, int64 limit);

// Records a scan (stats stays owned by the scan until unregister copies it).
void faiss_scan_register(MemoryContext context, FaissScanStats* stats, Relation index);
void faiss_scan_unregister(FaissScanStats* stats);

// Forgets the figures of finished scans (at the start of an EXPLAIN).
void faiss_scan_reset_finished(void);
