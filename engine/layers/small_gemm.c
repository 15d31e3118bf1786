/*
 * small_gemm.c - small row-major products in registers (small_gemm.h): blocks of 4
 * rows of C by two vectors of columns, each block's 8 accumulators summed over k
 * from one broadcast of A and two loads of B's row.  Nothing is packed and C is
 * written once; B's rows (k x n floats of a thin layer's product) stay in cache.
 */
#include "layers/small_gemm.h"
#include "layers/vec.h"

enum {
    ROWS = 4,                 /* rows of C per block */
    FEW_ROWS = 8,             /* rows of C below which it always wins */
    CACHED_B = 8192,          /* floats of B (k x n) that stay in L1 between row blocks */
};

/* Measured against OpenBLAS 0.3.21 (one thread, AVX2; m, k from 8 to 256, n 128 and
 * 512): 1.06-2.9x faster wherever B's k x n floats fit in L1 (k <= 64 at n = 128,
 * k <= 16 at n = 512) and for 8 rows of C at any size (1.27-2.9x); beyond, BLAS's
 * blocking wins (0.65-0.98x for k = 256). */
int lop_small_gemm_suits(int m, int n, int k)
{
    return m <= FEW_ROWS || (long)k * n <= CACHED_B;
}

/* B's row p at columns [j, j + n0 + n1): n0 up to VEC_LANES in *lo, n1 in *hi. */
static inline __attribute__((always_inline)) void load_row(const float *row, int n0, int n1,
                                                           vec *lo, vec *hi)
{
    vec zero = {0};
    *lo = n0 == VEC_LANES ? vec_load(row) : vec_load_first(row, n0);
    *hi = n1 == VEC_LANES ? vec_load(row + VEC_LANES)
          : n1 > 0        ? vec_load_first(row + VEC_LANES, n1) : zero;
}

static inline __attribute__((always_inline)) void store_row(float *out, vec lo, vec hi,
                                                            int n0, int n1)
{
    if (n0 == VEC_LANES)
        vec_store(out, lo);
    else
        vec_store_first(out, lo, n0);
    if (n1 == VEC_LANES)
        vec_store(out + VEC_LANES, hi);
    else if (n1 > 0)
        vec_store_first(out + VEC_LANES, hi, n1);
}

/* Rows [i, i + 4) of C at columns [j, j + n0 + n1), the 8 accumulators named so that
 * GCC keeps them in registers (as an array they went to the stack every step). */
static void block4(int k, const float *a, const float *b, int ldb, int n0, int n1, float *c,
                   int ldc)
{
    vec l0 = {0}, h0 = {0}, l1 = {0}, h1 = {0}, l2 = {0}, h2 = {0}, l3 = {0}, h3 = {0};
    const float *a0 = a, *a1 = a + k, *a2 = a + 2 * k, *a3 = a + 3 * k;
    for (int p = 0; p < k; p++) {
        vec lo, hi;
        load_row(b + (size_t)p * ldb, n0, n1, &lo, &hi);
        l0 += lo * a0[p];
        h0 += hi * a0[p];
        l1 += lo * a1[p];
        h1 += hi * a1[p];
        l2 += lo * a2[p];
        h2 += hi * a2[p];
        l3 += lo * a3[p];
        h3 += hi * a3[p];
    }
    store_row(c, l0, h0, n0, n1);
    store_row(c + ldc, l1, h1, n0, n1);
    store_row(c + 2 * (size_t)ldc, l2, h2, n0, n1);
    store_row(c + 3 * (size_t)ldc, l3, h3, n0, n1);
}

/* One row of C at columns [j, j + n0 + n1): the rows left over below a block of 4. */
static void block1(int k, const float *a, const float *b, int ldb, int n0, int n1, float *c)
{
    vec l0 = {0}, h0 = {0};
    for (int p = 0; p < k; p++) {
        vec lo, hi;
        load_row(b + (size_t)p * ldb, n0, n1, &lo, &hi);
        l0 += lo * a[p];
        h0 += hi * a[p];
    }
    store_row(c, l0, h0, n0, n1);
}

void lop_small_gemm(int m, int n, int k, const float *a, const float *b, int ldb, float *c,
                    int ldc)
{
    for (int j = 0; j < n; j += 2 * VEC_LANES) {
        int n0 = n - j < VEC_LANES ? n - j : VEC_LANES;
        int n1 = n - j - n0 < VEC_LANES ? n - j - n0 : VEC_LANES;
        int i = 0;
        for (; i + ROWS <= m; i += ROWS)
            block4(k, a + (size_t)i * k, b + j, ldb, n0, n1, c + (size_t)i * ldc + j, ldc);
        for (; i < m; i++)
            block1(k, a + (size_t)i * k, b + j, ldb, n0, n1, c + (size_t)i * ldc + j);
    }
}
