/* device_abi.h: the C interface between benzer and its GPU plugin.
 *
 * libbenzer_cuda.so exports one function, benzer_device_api(), returning a
 * table of plain C functions. benzer (core/device_plugin.cpp) loads the
 * library with dlopen only in the search service, so benzer.so never links
 * CUDA and a server without a GPU or driver never touches it. No C++ type
 * and no exception crosses this boundary: every function returns 0 on
 * success, or nonzero with a message in error (at most error_size bytes,
 * NUL-terminated).
 *
 * Bitmaps: bit l of byte l / 8 allows label l; a null bitmap allows every
 * row. Scores: 0 = squared L2 distance, 1 = negative inner product.
 */
#ifndef BENZER_DEVICE_ABI_H
#define BENZER_DEVICE_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BENZER_DEVICE_ABI_VERSION 1

/* Largest number of candidates per query the plugin selects on the device. */
#define BENZER_DEVICE_MAX_CANDIDATES 1024

typedef struct BenzerDeviceQuery {
    const float* vector;    /* dim floats (host) */
    const uint8_t* allowed; /* bitmap over labels (host), or NULL */
} BenzerDeviceQuery;

typedef struct BenzerDeviceApi {
    uint32_t abi_version; /* BENZER_DEVICE_ABI_VERSION */
    /* Opens the first device: fills name; nonzero when there is none. */
    int (*open)(char* name, size_t name_size, char* error, size_t error_size);
    /* Copies n x dim rows to the device; *handle receives them. */
    int (*upload)(const float* rows, int64_t n, int dim, void** handle, size_t* bytes, char* error,
                  size_t error_size);
    void (*release)(void* handle);
    /* For each query, up to kk (<= BENZER_DEVICE_MAX_CANDIDATES) allowed
     * labels with the smallest scores; -1 where fewer exist. */
    int (*candidates)(void* handle, int score, const BenzerDeviceQuery* queries, int64_t nq,
                      int64_t kk, int64_t* labels, char* error, size_t error_size);
    /* Nearest centroid (squared L2) of each row, and that distance. */
    int (*assign)(const float* centroids, int64_t nc, const float* rows, int64_t n, int dim,
                  int64_t* nearest, float* distances, char* error, size_t error_size);
} BenzerDeviceApi;

typedef const BenzerDeviceApi* (*BenzerDeviceApiFunction)(void);

const BenzerDeviceApi* benzer_device_api(void);

#ifdef __cplusplus
}
#endif

#endif /* BENZER_DEVICE_ABI_H */
