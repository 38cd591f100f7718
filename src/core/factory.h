// factory.h: the Faiss factory strings benzer accepts.
//
// faiss::index_factory parses far more than benzer can use safely, and
// Faiss 1.7.3 does not check the numbers it parses: "HNSW0" segfaults,
// "PQ8x0" divides by zero (SIGFPE), "NSG2" loops forever in
// NSG::attach_unlinked, "PCA0,Flat" makes every distance 0, "OPQ3" on 16
// dimensions builds a quantizer that cannot work. Any of these reached
// through CREATE INDEX, ALTER INDEX ... SET or a merge in autovacuum
// would take the whole server down.
//
// So benzer reads factory strings with its own strict grammar, bounds
// every number, and only hands Faiss the strings it has accepted:
//
//   factory    := (transform ",")* structure ["," "RFlat"]
//   transform  := "PCA" ["R"] d | "OPQ" m ["_" d] | "RR" d | "L2norm"
//   structure  := "Flat"
//               | "IVF" nlist "," ("Flat" | pq | sq)
//               | "HNSW" M [("_" | ",") ("Flat" | "PQ" m ["np"] | sq)]
//               | pq | sq
//   pq         := "PQ" m ["x" bits] ["np" | "fs"]     (fs needs x4)
//   sq         := "SQ4" | "SQ6" | "SQ8" | "SQfp16"
//
// "PQ<m>x4fs" on its own (not after IVF) is built as "PQ<m>x4": Faiss's
// IndexPQFastScan aborts on ties (factory.cpp says why).
//
// Bounds: 1 <= nlist <= 1 048 576; 2 <= M <= 256; m divides the dimension
// it applies to; 1 <= bits <= 8; transforms keep 1..d dimensions. PQ without
// "np" is accepted and means the same as with it (benzer never runs
// polysemous training: it takes minutes and cannot be cancelled).
//
// Core code: no PostgreSQL headers. Throws Error(kInvalidParameter) with a
// message naming the component and the rule.
#pragma once

#include <cstdint>
#include <string>

namespace benzer {

struct FactorySpec {
    std::string canonical;  // what Faiss is given (spaces removed)
    int nlist = 0;          // IVF lists, 0 when not IVF
    int hnsw_m = 0;         // HNSW neighbours per node, 0 when not HNSW
    int pq_m = 0;           // product quantizer sub-quantizers, 0 when none
    int pq_bits = 0;
    bool fast_scan = false;
    bool refine = false;                 // ends in RFlat
    int transformed_dim = 0;             // dimension after the transforms (0: unknown)
    std::int64_t min_training_rows = 1;  // fewest rows training accepts
};

// The largest L2 norm a vector may have in an index built from factory
// ("" for the automatic choice): kMaxIndexableNorm (engine.h), or, when
// the index stores half floats (SQfp16, whose largest value is 65504),
// 3e4: an element of a vector, of its difference from an IVF centroid or a
// PCA mean, stays below twice the norm. Never throws.
double max_indexable_norm(const char* factory) noexcept;

// Longest factory string accepted.
constexpr int kMaxFactoryLength = 200;

// Parses factory for vectors of dim dimensions. dim = 0 means the dimension
// is not known yet (an untyped column): the checks that need it (PQ m
// divides d, PCA d <= input d) are skipped, and made again at the build.
FactorySpec parse_factory(const std::string& factory, int dim);

}  // namespace benzer
