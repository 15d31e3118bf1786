/*
 * small_gemm.h - C = A B for products too small for BLAS to be worth calling: the
 * Winograd products of thin layers (16 x 16 weights times 16 x 128 tiles, one such
 * product per tile position), where OpenBLAS spent more of each call zeroing C
 * (sgemm_beta), packing the operands and dispatching than multiplying - and
 * products one vector of columns wide (batch 1's 16 tiles of a 7x7 map, 512 x 512
 * weights), where OpenBLAS ran at half its speed.
 */
#ifndef LOPPER_SMALL_GEMM_H
#define LOPPER_SMALL_GEMM_H

/* Whether an m x k times k x n product is small or narrow enough for lop_small_gemm
 * to beat cblas_sgemm (measured on the Winograd products, docs/performance.md "Winograd"). */
int lop_small_gemm_suits(int m, int n, int k);

/* c (m x n, row pitch ldc) = a (m x k, row pitch k) b (k x n, row pitch ldb), row-major,
 * each entry summed over k in order. */
void lop_small_gemm(int m, int n, int k, const float *a, const float *b, int ldb, float *c,
                    int ldc);

/* c (m x n, row pitch ldc) = a (m x k, row pitch lda) b^T, b n x k (row pitch ldb): the
 * Winograd weight gradient's dU = dM V^T, whose inner size is the tiles (k) and whose
 * outputs are few (a thin layer's 13 x 13 channel pairs), where OpenBLAS ran at 3-24
 * GFLOP/s.  Each entry summed over k in VEC_LANES interleaved runs, then across them;
 * suits says where it beats cblas_sgemm: never where OpenBLAS has AVX-512 kernels. */
int lop_small_gemm_nt_suits(int m, int n, int k);
/* Whether OpenBLAS runs its AVX-512 kernels, which take those products over. */
int lop_blas_has_avx512(void);
void lop_small_gemm_nt(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                       float *c, int ldc);

#endif
