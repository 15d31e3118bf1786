/*
 * gemm.h - row-major C = alpha op(A) op(B) + beta C for the convolutions' and linear
 * layers' products: OpenBLAS's sgemm, or the engine's own blocked product where
 * OpenBLAS runs narrower vectors than the engine's build (gemm.c says when).
 */
#ifndef LOPPER_GEMM_H
#define LOPPER_GEMM_H

#include <cblas.h>

/* cblas_sgemm's row-major call, run by whichever of the two is faster here
 * (lop_sgemm_blocked_runs).  One thread: callers split the work across the pool. */
void lop_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta, float *c,
               int ldc);

/* Whether lop_sgemm runs lop_sgemm_blocked: in an AVX-512 build whose OpenBLAS runs
 * kernels without AVX-512. */
int lop_sgemm_blocked_runs(void);

/* The engine's blocked product itself, whatever lop_sgemm_blocked_runs says: 0, or -1
 * without touching c where it cannot run (a build without AVX-512, no memory for its
 * packed panels, m, n or k below 1). */
int lop_sgemm_blocked(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb,
                      float beta, float *c, int ldc);

/* dst (cols x rows, row pitch ldd) = src^T, src rows x cols with row pitch ld: 16 x 16
 * blocks turned in registers on AVX-512, else float by float. */
void lop_transpose(const float *src, int ld, int rows, int cols, float *dst, int ldd);

#endif
