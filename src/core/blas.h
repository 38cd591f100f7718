// blas.h: the one BLAS routine benzer calls directly.
//
// The Fortran interface with 32-bit integers (LP64), as Faiss itself calls
// it; Debian's OpenBLAS and reference BLAS both provide it.
#pragma once

extern "C" {
int sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
           const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
           const float* beta, float* c, const int* ldc);
}
