// device.h: where exact nearest-neighbour arithmetic runs: the CPU, or a
// GPU through the optional CUDA plugin (src/gpu/).
//
// The search service (src/pg/service*.cpp) holds each index's rows once per
// server and answers the exact searches of every backend with one pass over
// them for all the queries that arrived together. That pass is what a
// Device does:
//
//     rows = device.upload(host_rows, n, dim);       // once per index generation
//     device_search(device, *rows, host_rows, ...);  // per batch of queries
//
// A device proposes candidates by its own arithmetic (a matrix product,
// |q|^2 + |r|^2 - 2 q.r, which rounds differently from a direct sum);
// device_search() re-scores them on the host with core/distance.h's
// kernels, so every device returns the very same scores as the backends'
// own exact search (ExactCandidates): the rows returned are the exact k
// nearest except, at worst, for near ties at the candidate cut-off (2k
// candidates, at least k + 16, are re-scored), as in exact_batch.h.
//
// Each query brings its own allowed-row bitmap (filter columns, dead rows),
// so one batch mixes queries with different filters and a filtered top-k is
// never under-filled: a query gets min(k, allowed rows) rows.
//
// Core code: no PostgreSQL headers. Methods may throw (benzer::Error,
// std::bad_alloc, the plugin's errors as Error(kInternal)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/engine.h"
#include "core/exact_batch.h"

namespace benzer {

// Rows a device holds: labels 0..count()-1, dim floats each.
class DeviceRows {
  public:
    virtual ~DeviceRows() = default;
    virtual std::int64_t count() const = 0;
    virtual int dim() const = 0;
    // Memory the device holds for them (device memory for a GPU).
    virtual std::size_t bytes() const = 0;
};

// One query of a batch.
struct DeviceQuery {
    const float* vector = nullptr;          // dim floats
    const std::uint8_t* allowed = nullptr;  // bitmap over labels (bit l of byte l/8); null: all
    std::int64_t allowed_count = 0;         // rows the bitmap allows (count() when null)
    std::int64_t k = 0;                     // rows wanted
};

class Device {
  public:
    virtual ~Device() = default;
    // "cpu", or "gpu: <device name>".
    virtual std::string name() const = 0;
    virtual bool is_gpu() const = 0;
    // Makes n rows (row-major, host memory) available to candidates(). The
    // CPU device keeps a pointer to them (they must outlive the result); a
    // GPU copies them.
    virtual std::unique_ptr<DeviceRows> upload(const float* rows, std::int64_t n, int dim) = 0;
    // For each query, up to kk allowed rows with the smallest scores as the
    // device computes them; labels[q * kk + i], -1 where fewer exist (in
    // no particular order).
    virtual void candidates(const DeviceRows& rows, ExactScore score, const DeviceQuery* queries,
                            std::int64_t nq, std::int64_t kk, Label* labels) = 0;
    // k-means' assignment step: for each of n rows, the nearest of nc
    // centroids by L2 distance (ties: the lower index), and that squared
    // distance as the device computes it.
    virtual void assign(const float* centroids, std::int64_t nc, const float* rows, std::int64_t n,
                        int dim, std::int64_t* nearest, float* distances) = 0;
};

// The CPU implementation: BLAS sgemm over blocks of rows for the queries
// whose bitmaps allow many rows, and the allowed rows one by one for the
// others. The reference the GPU plugin's tests compare against.
std::unique_ptr<Device> make_cpu_device();

// The GPU plugin (libbenzer_cuda.so) loaded with dlopen from path, and its
// first device opened. Returns null, with *why set, when the library is
// missing, has another interface version, or finds no usable GPU (no
// driver, no device): the caller then uses the CPU.
std::unique_ptr<Device> load_gpu_device(const std::string& path, std::string* why);

// Exact search of a batch: candidates from the device, re-scored with the
// host rows (the rows uploaded) and core/distance.h's kernels. Writes row q
// of scores/labels (stride kmax, nearest first, ties by label; scores as
// ExactCandidates computes them: squared L2 or the negative inner product)
// and counts[q] = min(queries[q].k, allowed rows). Every queries[q].k must be
// at most kmax.
void device_search(Device& device, const DeviceRows& rows, const float* host_rows, ExactScore score,
                   const DeviceQuery* queries, std::int64_t nq, std::int64_t kmax, float* scores,
                   Label* labels, std::int64_t* counts);

// How many candidates device_search asks for per query.
std::int64_t device_candidates_per_query(std::int64_t kmax, std::int64_t rows);

}  // namespace benzer
