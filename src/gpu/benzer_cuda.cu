// benzer_cuda.cu: benzer's GPU plugin (libbenzer_cuda.so), the device
// interface of core/device.h on an NVIDIA GPU, behind the C table of
// device_abi.h.
//
// Exact search: the rows live in device memory (uploaded once per index
// generation by the search service). For a batch of queries, cuBLAS
// computes the inner products of every query with a block of rows
// (|q|^2 + |r|^2 - 2 q.r without the constant |q|^2, or -q.r); a kernel
// turns them into scores, +infinity where the query's bitmap disallows the
// row, so a filtered top-k is never under-filled; a selection kernel keeps
// each query's kk best: thread blocks sort 2 048 (score, label) pairs in
// shared memory (bitonic) and keep the first kk, and passes repeat over
// the survivors (each pass at least halves them, kk <= 1 024) until kk are
// left, merged with the best of the previous row blocks. The host re-scores
// the candidates exactly (core/device.cpp), so the device's rounding never
// reaches a result.
//
// k-means assignment: the same product of rows with centroids, and an
// arg-min per row.
//
// Every entry point catches CUDA and cuBLAS failures and reports them in
// the caller's error buffer; nothing here aborts or throws across the C
// boundary. The plugin is built and loaded only where CUDA is installed;
// cudart is linked statically (cuBLAS is found through the build's rpath).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "device_abi.h"

namespace {

constexpr int kChunk = 2048;  // pairs one thread block sorts
constexpr int kThreads = kChunk / 2;

cublasHandle_t g_cublas = nullptr;

void set_error(char* error, size_t size, const char* format, ...) {
    if (error == nullptr || size == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(error, size, format, args);
    va_end(args);
}

struct Failure {
    char text[256];
};

// Throws (inside this file only) on a CUDA or cuBLAS error.
void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) {
        Failure f;
        snprintf(f.text, sizeof f.text, "%s: %s", what, cudaGetErrorString(status));
        throw f;
    }
}
void check(cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS) {
        Failure f;
        snprintf(f.text, sizeof f.text, "%s: cuBLAS status %d", what, static_cast<int>(status));
        throw f;
    }
}

// Device memory freed with its owner.
template <typename T>
struct DeviceBuffer {
    T* data = nullptr;
    explicit DeviceBuffer(size_t count) {
        if (count > 0) check(cudaMalloc(&data, count * sizeof(T)), "cudaMalloc");
    }
    ~DeviceBuffer() {
        if (data != nullptr) cudaFree(data);
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

struct Rows {
    float* vectors = nullptr;  // n x dim
    float* norms = nullptr;    // n
    int64_t n = 0;
    int dim = 0;
};

__global__ void row_norms(const float* rows, int64_t n, int dim, float* norms) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const float* r = rows + i * dim;
    float sum = 0.0f;
    for (int d = 0; d < dim; d++) sum += r[d] * r[d];
    norms[i] = sum;
}

// scores[q * nb + j] from the products (column-major nb x nq: products[j +
// q * nb]); +inf where the bitmap of query q disallows row r0 + j.
__global__ void to_scores(const float* products, const float* norms, const uint8_t* bitmaps,
                          int64_t bitmap_bytes, int64_t r0, int64_t nb, int64_t nq, int l2,
                          float* scores) {
    int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    int64_t q = blockIdx.y;
    if (j >= nb || q >= nq) return;
    int64_t row = r0 + j;
    bool allowed = (bitmaps[q * bitmap_bytes + (row >> 3)] >> (row & 7)) & 1;
    float ip = products[j + q * nb];
    scores[q * nb + j] = !allowed ? INFINITY : (l2 ? norms[row] - 2.0f * ip : -ip);
}

__device__ bool pair_less(float av, int64_t al, float bv, int64_t bl) {
    if (av != bv) return av < bv;
    // -1 (no row) after every real label.
    return static_cast<uint64_t>(al) < static_cast<uint64_t>(bl);
}

// For query blockIdx.y and chunk blockIdx.x of its m values: sorts the
// chunk's (value, label) pairs and writes the kk smallest to out (chunk
// blockIdx.x of out's rows of out_per_query). labels null: label = base +
// index, and +inf values get -1.
__global__ void chunk_top(const float* values, const int64_t* labels, int64_t m,
                          int64_t in_per_query, int64_t base, int kk, float* out_values,
                          int64_t* out_labels, int64_t out_per_query) {
    __shared__ float v[kChunk];
    __shared__ int64_t l[kChunk];
    int64_t q = blockIdx.y;
    int64_t start = static_cast<int64_t>(blockIdx.x) * kChunk;
    for (int t = threadIdx.x; t < kChunk; t += blockDim.x) {
        int64_t i = start + t;
        if (i < m) {
            float value = values[q * in_per_query + i];
            v[t] = value;
            l[t] =
                labels != nullptr ? labels[q * in_per_query + i] : (isinf(value) ? -1 : base + i);
        } else {
            v[t] = INFINITY;
            l[t] = -1;
        }
    }
    __syncthreads();
    for (int size = 2; size <= kChunk; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int t = threadIdx.x; t < kChunk; t += blockDim.x) {
                int partner = t ^ stride;
                if (partner > t) {
                    bool ascending = (t & size) == 0;
                    bool swap = ascending ? pair_less(v[partner], l[partner], v[t], l[t])
                                          : pair_less(v[t], l[t], v[partner], l[partner]);
                    if (swap) {
                        float tv = v[t];
                        v[t] = v[partner];
                        v[partner] = tv;
                        int64_t tl = l[t];
                        l[t] = l[partner];
                        l[partner] = tl;
                    }
                }
            }
            __syncthreads();
        }
    }
    for (int t = threadIdx.x; t < kk; t += blockDim.x) {
        out_values[q * out_per_query + static_cast<int64_t>(blockIdx.x) * kk + t] = v[t];
        out_labels[q * out_per_query + static_cast<int64_t>(blockIdx.x) * kk + t] = l[t];
    }
}

__global__ void fill_best(float* values, int64_t* labels, int64_t count) {
    int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= count) return;
    values[i] = INFINITY;
    labels[i] = -1;
}

// Nearest centroid per row: products column-major nc x nb (products[c + j *
// nc] = <centroid c, row r0 + j>).
__global__ void nearest_centroid(const float* products, const float* centroid_norms,
                                 const float* row_norms_, int64_t nc, int64_t nb, int64_t* nearest,
                                 float* distances) {
    int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (j >= nb) return;
    float best = INFINITY;
    int64_t best_c = 0;
    for (int64_t c = 0; c < nc; c++) {
        float s = row_norms_[j] + centroid_norms[c] - 2.0f * products[c + j * nc];
        if (s < best) {
            best = s;
            best_c = c;
        }
    }
    nearest[j] = best_c;
    distances[j] = fmaxf(best, 0.0f);
}

int blocks_for(int64_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

// Reduces values/labels (nq rows of m pairs, stride m) to kk per query,
// merged with best (nq x kk), into best.
void select_into_best(float* values, int64_t* labels, int64_t m, int64_t nq, int kk, float* best_v,
                      int64_t* best_l, bool implicit_labels, int64_t base) {
    // Pass 1 over the block: chunk winners, plus room for the previous best.
    int64_t chunks = (m + kChunk - 1) / kChunk;
    int64_t width = (chunks + 1) * kk;
    DeviceBuffer<float> a_v(nq * width), b_v(nq * width);
    DeviceBuffer<int64_t> a_l(nq * width), b_l(nq * width);
    chunk_top<<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(nq)), kThreads>>>(
        values, implicit_labels ? nullptr : labels, m, m, base, kk, a_v.data, a_l.data, width);
    check(cudaGetLastError(), "selection kernel");
    check(cudaMemcpy2D(a_v.data + chunks * kk, width * sizeof(float), best_v, kk * sizeof(float),
                       kk * sizeof(float), nq, cudaMemcpyDeviceToDevice),
          "copy best");
    check(cudaMemcpy2D(a_l.data + chunks * kk, width * sizeof(int64_t), best_l,
                       kk * sizeof(int64_t), kk * sizeof(int64_t), nq, cudaMemcpyDeviceToDevice),
          "copy best");
    int64_t count = width;
    float* in_v = a_v.data;
    int64_t* in_l = a_l.data;
    float* out_v = b_v.data;
    int64_t* out_l = b_l.data;
    for (;;) {
        int64_t next_chunks = (count + kChunk - 1) / kChunk;
        chunk_top<<<dim3(static_cast<unsigned>(next_chunks), static_cast<unsigned>(nq)),
                    kThreads>>>(in_v, in_l, count, width, 0, kk, out_v, out_l, width);
        check(cudaGetLastError(), "selection kernel");
        count = next_chunks * kk;
        std::swap(in_v, out_v);
        std::swap(in_l, out_l);
        if (next_chunks == 1) break;
    }
    check(cudaMemcpy2D(best_v, kk * sizeof(float), in_v, width * sizeof(float), kk * sizeof(float),
                       nq, cudaMemcpyDeviceToDevice),
          "copy best");
    check(cudaMemcpy2D(best_l, kk * sizeof(int64_t), in_l, width * sizeof(int64_t),
                       kk * sizeof(int64_t), nq, cudaMemcpyDeviceToDevice),
          "copy best");
}

// Rows per block: the products and scores of all queries stay under
// about 256 MB.
int64_t rows_per_block(int64_t nq, int64_t n) {
    int64_t budget = (int64_t(256) << 20) / (2 * sizeof(float) * std::max<int64_t>(nq, 1));
    return std::max<int64_t>(std::min<int64_t>(budget, n), kChunk);
}

int open_device(char* name, size_t name_size, char* error, size_t error_size) {
    try {
        int count = 0;
        cudaError_t status = cudaGetDeviceCount(&count);
        if (status != cudaSuccess) {
            set_error(error, error_size, "%s", cudaGetErrorString(status));
            return 1;
        }
        if (count == 0) {
            set_error(error, error_size, "no CUDA device");
            return 1;
        }
        check(cudaSetDevice(0), "cudaSetDevice");
        cudaDeviceProp properties;
        check(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
        if (g_cublas == nullptr) check(cublasCreate(&g_cublas), "cublasCreate");
        snprintf(name, name_size, "%s", properties.name);
        return 0;
    } catch (const Failure& f) {
        set_error(error, error_size, "%s", f.text);
    } catch (...) {
        set_error(error, error_size, "unexpected failure opening the GPU");
    }
    return 1;
}

int upload_rows(const float* rows, int64_t n, int dim, void** handle, size_t* bytes, char* error,
                size_t error_size) {
    Rows* r = nullptr;
    try {
        r = new Rows;
        r->n = n;
        r->dim = dim;
        size_t values = static_cast<size_t>(n) * dim;
        check(cudaMalloc(&r->vectors, std::max<size_t>(values, 1) * sizeof(float)), "cudaMalloc");
        check(cudaMalloc(&r->norms, std::max<int64_t>(n, 1) * sizeof(float)), "cudaMalloc");
        check(cudaMemcpy(r->vectors, rows, values * sizeof(float), cudaMemcpyHostToDevice),
              "copy rows");
        if (n > 0) row_norms<<<blocks_for(n, 256), 256>>>(r->vectors, n, dim, r->norms);
        check(cudaGetLastError(), "norm kernel");
        check(cudaDeviceSynchronize(), "norm kernel");
        *handle = r;
        *bytes = (values + n) * sizeof(float);
        return 0;
    } catch (const Failure& f) {
        set_error(error, error_size, "%s", f.text);
    } catch (...) {
        set_error(error, error_size, "unexpected failure uploading rows");
    }
    if (r != nullptr) {
        if (r->vectors) cudaFree(r->vectors);
        if (r->norms) cudaFree(r->norms);
        delete r;
    }
    return 1;
}

void release_rows(void* handle) {
    Rows* r = static_cast<Rows*>(handle);
    if (r == nullptr) return;
    cudaFree(r->vectors);
    cudaFree(r->norms);
    delete r;
}

int search_candidates(void* handle, int score, const BenzerDeviceQuery* queries, int64_t nq,
                      int64_t kk, int64_t* labels, char* error, size_t error_size) {
    try {
        const Rows* rows = static_cast<const Rows*>(handle);
        if (kk < 1 || kk > BENZER_DEVICE_MAX_CANDIDATES) {
            set_error(error, error_size, "candidates per query must be 1 to %d",
                      BENZER_DEVICE_MAX_CANDIDATES);
            return 1;
        }
        int64_t n = rows->n;
        int dim = rows->dim;
        int64_t bitmap_bytes = (n + 7) / 8;
        std::vector<float> host_queries(static_cast<size_t>(nq) * dim);
        std::vector<uint8_t> host_bitmaps(static_cast<size_t>(nq * bitmap_bytes), 0xFF);
        for (int64_t q = 0; q < nq; q++) {
            memcpy(host_queries.data() + q * dim, queries[q].vector, sizeof(float) * dim);
            if (queries[q].allowed != nullptr)
                memcpy(host_bitmaps.data() + q * bitmap_bytes, queries[q].allowed, bitmap_bytes);
        }
        DeviceBuffer<float> d_queries(host_queries.size());
        DeviceBuffer<uint8_t> d_bitmaps(host_bitmaps.size());
        check(cudaMemcpy(d_queries.data, host_queries.data(), host_queries.size() * sizeof(float),
                         cudaMemcpyHostToDevice),
              "copy queries");
        check(cudaMemcpy(d_bitmaps.data, host_bitmaps.data(), host_bitmaps.size(),
                         cudaMemcpyHostToDevice),
              "copy bitmaps");
        DeviceBuffer<float> best_v(nq * kk);
        DeviceBuffer<int64_t> best_l(nq * kk);
        fill_best<<<blocks_for(nq * kk, 256), 256>>>(best_v.data, best_l.data, nq * kk);
        check(cudaGetLastError(), "fill kernel");
        int64_t block = rows_per_block(nq, n);
        DeviceBuffer<float> products(block * nq), scores(block * nq);
        const float one = 1.0f, zero = 0.0f;
        for (int64_t r0 = 0; r0 < n; r0 += block) {
            int64_t nb = std::min(block, n - r0);
            // products (nb x nq, column-major) = rows[r0 .. r0 + nb)^T queries
            check(cublasSgemm(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(nb),
                              static_cast<int>(nq), dim, &one, rows->vectors + r0 * dim, dim,
                              d_queries.data, dim, &zero, products.data, static_cast<int>(nb)),
                  "cublasSgemm");
            to_scores<<<dim3(blocks_for(nb, 256), static_cast<unsigned>(nq)), 256>>>(
                products.data, rows->norms, d_bitmaps.data, bitmap_bytes, r0, nb, nq,
                score == 0 ? 1 : 0, scores.data);
            check(cudaGetLastError(), "score kernel");
            select_into_best(scores.data, nullptr, nb, nq, static_cast<int>(kk), best_v.data,
                             best_l.data, true, r0);
        }
        check(cudaMemcpy(labels, best_l.data, sizeof(int64_t) * nq * kk, cudaMemcpyDeviceToHost),
              "copy labels");
        return 0;
    } catch (const Failure& f) {
        set_error(error, error_size, "%s", f.text);
    } catch (...) {
        set_error(error, error_size, "unexpected failure in the GPU search");
    }
    return 1;
}

int assign_rows(const float* centroids, int64_t nc, const float* rows, int64_t n, int dim,
                int64_t* nearest, float* distances, char* error, size_t error_size) {
    try {
        DeviceBuffer<float> d_centroids(nc * dim), centroid_norms(nc);
        check(cudaMemcpy(d_centroids.data, centroids, sizeof(float) * nc * dim,
                         cudaMemcpyHostToDevice),
              "copy centroids");
        row_norms<<<blocks_for(nc, 256), 256>>>(d_centroids.data, nc, dim, centroid_norms.data);
        check(cudaGetLastError(), "norm kernel");
        int64_t block = std::max<int64_t>(
            std::min<int64_t>(n, (int64_t(256) << 20) / (sizeof(float) * (nc + dim))), 1);
        DeviceBuffer<float> d_rows(block * dim), norms(block), products(block * nc),
            d_distances(block);
        DeviceBuffer<int64_t> d_nearest(block);
        const float one = 1.0f, zero = 0.0f;
        for (int64_t r0 = 0; r0 < n; r0 += block) {
            int64_t nb = std::min(block, n - r0);
            check(cudaMemcpy(d_rows.data, rows + r0 * dim, sizeof(float) * nb * dim,
                             cudaMemcpyHostToDevice),
                  "copy rows");
            row_norms<<<blocks_for(nb, 256), 256>>>(d_rows.data, nb, dim, norms.data);
            check(cudaGetLastError(), "norm kernel");
            check(cublasSgemm(g_cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(nc),
                              static_cast<int>(nb), dim, &one, d_centroids.data, dim, d_rows.data,
                              dim, &zero, products.data, static_cast<int>(nc)),
                  "cublasSgemm");
            nearest_centroid<<<blocks_for(nb, 256), 256>>>(products.data, centroid_norms.data,
                                                           norms.data, nc, nb, d_nearest.data,
                                                           d_distances.data);
            check(cudaGetLastError(), "assignment kernel");
            check(cudaMemcpy(nearest + r0, d_nearest.data, sizeof(int64_t) * nb,
                             cudaMemcpyDeviceToHost),
                  "copy assignment");
            check(cudaMemcpy(distances + r0, d_distances.data, sizeof(float) * nb,
                             cudaMemcpyDeviceToHost),
                  "copy distances");
        }
        return 0;
    } catch (const Failure& f) {
        set_error(error, error_size, "%s", f.text);
    } catch (...) {
        set_error(error, error_size, "unexpected failure in the GPU assignment");
    }
    return 1;
}

const BenzerDeviceApi kApi = {
    BENZER_DEVICE_ABI_VERSION, open_device, upload_rows, release_rows,
    search_candidates,         assign_rows,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const BenzerDeviceApi* benzer_device_api(void) {
    return &kApi;
}
