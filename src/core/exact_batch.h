// exact_batch.h: exact k-nearest-neighbour search for many queries at once.
//
// One query at a time, an exact search is bound by memory bandwidth: every
// row is read once per query. Many queries at once turn the distance
// computations into a matrix product (BLAS sgemm over blocks of queries and
// rows), which reads each row once per block of queries and runs at the
// CPU's arithmetic speed instead.
//
// Faiss 1.7.3 has such a batched search (knn_L2sqr), but it falls back to
// its scalar one-pair-at-a-time loop as soon as a selector is passed (20x
// slower here), and a batched search in benzer always has a selector (dead
// rows, filter columns). So benzer gathers the allowed rows of each block
// itself, and re-scores the best candidates of every query with its own
// exact kernels (core/distance.h): the scores returned are exact, and the
// rows returned are the exact k nearest except, at worst, for near ties
// at the candidate cut-off (2k candidates, at least k + 16, are re-scored).
//
// Core code: no PostgreSQL headers. May throw (std::bad_alloc, and Faiss's
// "computation interrupted" between blocks when the interrupt check fires).
// Uses OpenMP threads and the BLAS's own threads as set by the caller.
#pragma once

#include <cstdint>

#include "core/engine.h"

namespace benzer {

// The rows searched: labels 0..count-1, either stored one after the other
// (contiguous) or handed out one by one by row(context, label).
struct RowSource {
    std::int64_t count = 0;
    const float* contiguous = nullptr;
    const float* (*row)(const void* context, Label label) = nullptr;
    const void* context = nullptr;

    const float* get(Label label, int dim) const {
        return contiguous != nullptr ? contiguous + label * static_cast<std::int64_t>(dim)
                                     : row(context, label);
    }
};

// Scores: squared L2 distance, or the negative inner product; smaller is
// nearer for both.
enum class ExactScore { kL2Squared, kNegativeInnerProduct };

// One row's score, computed exactly (core/distance.h's kernels).
float exact_score(ExactScore score, const float* a, const float* b, int dim) noexcept;

// For each of nq queries (row-major, dim floats each), the k allowed rows
// with the smallest scores. Writes row q of scores/labels (nq * k entries,
// nearest first, ties by label) and counts[q] = the number found, which is
// min(k, allowed rows); unused entries get label -1. filter may be null
// (every row allowed).
void exact_batch_search(const RowSource& rows, int dim, ExactScore score, const float* queries,
                        std::int64_t nq, std::int64_t k, const LabelFilter* filter, float* scores,
                        Label* labels, std::int64_t* counts);

}  // namespace benzer
