/*
 * small_gemm.c - small row-major products in registers (small_gemm.h): blocks of rows
 * of C by one or two vectors of columns, each block's accumulators summed over k from
 * one broadcast of A per row and one load of B's row per vector.  Nothing is packed
 * and C is written once; B's rows (k x n floats of a thin layer's product) stay in
 * cache.  A product one vector wide (a batch-1 pass's 16 tiles of a 7x7 map) takes
 * blocks one vector wide, so that no lanes of a second vector are multiplied for
 * nothing.
 */
#include "layers/small_gemm.h"
#include "layers/vec.h"

enum {
    /* Rows of C per block: 8 rows x 2 vectors fill half of AVX-512's 32 registers
     * with accumulators; with 16 registers (AVX2), 4 rows x 2 vectors. */
    ROWS_WIDE = VEC_LANES == 16 ? 8 : 4,
    ROWS_NARROW = 8,          /* rows per block one vector wide */
    FEW_ROWS = 8,             /* rows of C below which it always wins */
    CACHED_B = 8192,          /* floats of B (k x n) that stay in L1 between row blocks */
};

/* Measured against OpenBLAS 0.3.21 (one thread, m, k from 8 to 256, n 16 to 512):
 * on AVX2, 1.06-2.9x faster wherever B's k x n floats fit in L1 (k <= 64 at n = 128,
 * k <= 16 at n = 512) and for 8 rows of C at any size (1.27-2.9x); beyond, BLAS's
 * blocking wins (0.65-0.98x for k = 256).  On AVX-512, products one vector wide
 * (n <= 16) 1.02-1.97x at any size (512 x 512 weights: 97 GFLOP/s against 46-56),
 * elsewhere within 0.94-1.24x except 49 columns (0.78-0.83 from 32 to 128 rows). */
int lop_small_gemm_suits(int m, int n, int k)
{
    return m <= FEW_ROWS || n <= VEC_LANES || (long)k * n <= CACHED_B;
}

/* B's row at columns [j, j + n): the first min(n, VEC_LANES) lanes. */
static inline __attribute__((always_inline)) vec load_part(const float *row, int n)
{
    return n >= VEC_LANES ? vec_load(row) : vec_load_first(row, n);
}

static inline __attribute__((always_inline)) void store_part(float *out, vec v, int n)
{
    if (n >= VEC_LANES)
        vec_store(out, v);
    else
        vec_store_first(out, v, n);
}

/* Rows [0, rows) of C at columns [0, n), n <= vecs * VEC_LANES (and more than
 * (vecs - 1) * VEC_LANES).  Inlined with constant rows and vecs, the loops over them
 * unroll and the accumulators stay in registers. */
static inline __attribute__((always_inline)) void block(int k, const float *a, const float *b,
                                                        int ldb, int n, float *c, int ldc,
                                                        int rows, int vecs)
{
    vec acc[ROWS_NARROW][2] = {{{0}}};   /* the taller of the two blocks */
    for (int p = 0; p < k; p++) {
        vec row[2];
#pragma GCC unroll 2
        for (int v = 0; v < vecs; v++)
            row[v] = load_part(b + (size_t)p * ldb + v * VEC_LANES, n - v * VEC_LANES);
#pragma GCC unroll 8
        for (int r = 0; r < rows; r++) {
            float s = a[(size_t)r * k + p];
#pragma GCC unroll 2
            for (int v = 0; v < vecs; v++)
                acc[r][v] += row[v] * s;
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 2
        for (int v = 0; v < vecs; v++)
            store_part(c + (size_t)r * ldc + v * VEC_LANES, acc[r][v], n - v * VEC_LANES);
}

/* block compiled for every row count up to the full block's, one or two vectors wide:
 * the rows left below the last full block (a pruned layer's 13 outputs: 8 + 5) take
 * one block of their own count, not a block per row, which loaded B's row for every
 * row of C (ran 7.5% of a pruned ResNet-56's batch-64 pass as single rows). */
#define ROW_CASES(vecs)                                                                \
    switch (rows) {                                                                    \
    case 1: block(k, a, b, ldb, n, c, ldc, 1, vecs); break;                            \
    case 2: block(k, a, b, ldb, n, c, ldc, 2, vecs); break;                            \
    case 3: block(k, a, b, ldb, n, c, ldc, 3, vecs); break;                            \
    case 4: block(k, a, b, ldb, n, c, ldc, 4, vecs); break;                            \
    case 5: block(k, a, b, ldb, n, c, ldc, 5, vecs); break;                            \
    case 6: block(k, a, b, ldb, n, c, ldc, 6, vecs); break;                            \
    case 7: block(k, a, b, ldb, n, c, ldc, 7, vecs); break;                            \
    default: block(k, a, b, ldb, n, c, ldc, ROWS_NARROW, vecs); break;                 \
    }

static void block_wide(int k, const float *a, const float *b, int ldb, int n, float *c,
                       int ldc, int rows)
{
    ROW_CASES(2)
}

static void block_narrow(int k, const float *a, const float *b, int ldb, int n, float *c,
                         int ldc, int rows)
{
    ROW_CASES(1)
}

void lop_small_gemm(int m, int n, int k, const float *a, const float *b, int ldb, float *c,
                    int ldc)
{
    for (int j = 0; j < n; j += 2 * VEC_LANES) {
        int left = n - j, narrow = left <= VEC_LANES;
        int full = narrow ? ROWS_NARROW : ROWS_WIDE;
        for (int i = 0; i < m; i += full) {
            int rows = m - i < full ? m - i : full;
            (narrow ? block_narrow : block_wide)(k, a + (size_t)i * k, b + j, ldb, left,
                                                 c + (size_t)i * ldc + j, ldc, rows);
        }
    }
}
