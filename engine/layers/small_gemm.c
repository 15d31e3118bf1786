/*
 * small_gemm.c - small row-major products in registers (small_gemm.h): blocks of rows
 * of C by one or two vectors of columns, each block's accumulators summed over k from
 * one broadcast of A per row and one load of B's row per vector.  Nothing is packed
 * and C is written once; B's rows (k x n floats of a thin layer's product) stay in
 * cache.  A product one vector wide (a batch-1 pass's 16 tiles of a 7x7 map) takes
 * blocks one vector wide, so that no lanes of a second vector are multiplied for
 * nothing.  The transposed form (lop_small_gemm_nt, C = A B^T, the Winograd weight
 * gradient) sums dot products along both operands' rows instead.
 */
#include <strings.h>

#include <cblas.h>

#include "layers/small_gemm.h"
#include "layers/vec.h"

enum {
    /* Rows of C per block at most: 8 rows x 2 vectors fill half of AVX-512's 32
     * registers with accumulators; with 16 registers (AVX2), 6 rows x 2 vectors, B's
     * two vectors and a broadcast.  On Zen 1, one thread, 36 products of n = 128
     * columns (m x k): 16 x 16 30.2 -> 32.5 GFLOP/s against blocks of 4 rows, 26 x 26
     * 31.3 -> 34.0, 8 x 8 25.1 both. */
    ROWS_WIDE = VEC_LANES == 16 ? 8 : 6,
    ROWS_NARROW = 8,          /* rows per block one vector wide */
    FEW_ROWS = 8,             /* rows of C below which it always wins */
    CACHED_B = 8192,          /* floats of B (k x n) that stay in L1 between row blocks */
    /* lop_small_gemm_nt's blocks: rows of A by rows of B (C's rows by its columns) */
    NT_ROWS = 4,
    NT_COLS = 3,
    /* Floats of A and B (m + n rows of k) up to which lop_small_gemm_nt beats OpenBLAS:
     * they stay in L1 while every block reads them again (below) */
    NT_CACHED = 8192,
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

/* block compiled for every row count up to the full block's, one or two vectors wide,
 * so that blocks of any count (row_blocks below) keep their sums in registers; a block
 * per row loaded B's row for every row of C (ran 7.5% of a pruned ResNet-56's batch-64
 * pass as single rows). */
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

/* Rows of C cut into the fewest blocks of at most `full` rows, their sizes apart by at
 * most one: `blocks` blocks, the first `extra` of them base + 1 rows.  A pruned layer's
 * 13 outputs run as 5 + 4 + 4 rows, not 6 + 6 + 1 (or 4 + 4 + 4 + 1 in blocks of 4),
 * whose last block loaded B's row for a single row of C: on Zen 1, as above, 13 x 13
 * 23.3 -> 30.0 GFLOP/s, 9 x 9 17.9 -> 27.4, 11 x 11 22.2 -> 29.7.  Worked out once a
 * product: a division for each block took a tenth of an 8 x 8 product's time. */
typedef struct row_blocks {
    int blocks, base, extra;
} row_blocks;

static row_blocks row_blocks_of(int m, int full)
{
    int blocks = (m + full - 1) / full;
    return (row_blocks){blocks, m / blocks, m % blocks};
}

void lop_small_gemm(int m, int n, int k, const float *a, const float *b, int ldb, float *c,
                    int ldc)
{
    if (m <= 0)
        return;
    row_blocks wide = row_blocks_of(m, ROWS_WIDE), one_vector = row_blocks_of(m, ROWS_NARROW);
    for (int j = 0; j < n; j += 2 * VEC_LANES) {
        int left = n - j, narrow = left <= VEC_LANES;
        row_blocks rb = narrow ? one_vector : wide;
        for (int bi = 0, i = 0; bi < rb.blocks; bi++) {
            int rows = rb.base + (bi < rb.extra);
            (narrow ? block_narrow : block_wide)(k, a + (size_t)i * k, b + j, ldb, left,
                                                 c + (size_t)i * ldc + j, ldc, rows);
            i += rows;
        }
    }
}

/* acc[r][j] += A's row r times B's row j over the n <= VEC_LANES floats from p (the
 * lanes past n zero). */
static inline __attribute__((always_inline)) void nt_step(const float *a, int lda,
                                                          const float *b, int ldb, int p, int n,
                                                          int rows, int cols,
                                                          vec acc[NT_ROWS][NT_COLS])
{
    vec bv[NT_COLS];
#pragma GCC unroll 3
    for (int j = 0; j < cols; j++)
        bv[j] = load_part(b + (size_t)j * ldb + p, n);
#pragma GCC unroll 4
    for (int r = 0; r < rows; r++) {
        vec av = load_part(a + (size_t)r * lda + p, n);
#pragma GCC unroll 3
        for (int j = 0; j < cols; j++)
            acc[r][j] += av * bv[j];
    }
}

/* Rows [0, rows) of C at columns [0, cols) (at most NT_ROWS x NT_COLS): each entry the
 * dot product of a row of A and a row of B over k, VEC_LANES products at a time in a
 * vector of sums, then its lanes summed.  Inlined with constant rows and cols: 12 sums,
 * B's 3 vectors and one of A fill AVX2's 16 registers. */
static inline __attribute__((always_inline)) void block_nt(int k, const float *a, int lda,
                                                           const float *b, int ldb, float *c,
                                                           int ldc, int rows, int cols)
{
    vec acc[NT_ROWS][NT_COLS] = {{{0}}};
    int p = 0;
    for (; p + VEC_LANES <= k; p += VEC_LANES)
        nt_step(a, lda, b, ldb, p, VEC_LANES, rows, cols, acc);
    if (p < k)
        nt_step(a, lda, b, ldb, p, k - p, rows, cols, acc);
#pragma GCC unroll 4
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 3
        for (int j = 0; j < cols; j++)
            c[(size_t)r * ldc + j] = vec_sum(acc[r][j]);
}

#define NT_COLS_CASES(rows)                                                            \
    switch (cols) {                                                                    \
    case 1: block_nt(k, a, lda, b, ldb, c, ldc, rows, 1); break;                       \
    case 2: block_nt(k, a, lda, b, ldb, c, ldc, rows, 2); break;                       \
    default: block_nt(k, a, lda, b, ldb, c, ldc, rows, NT_COLS); break;                \
    }

/* block_nt compiled for every count of rows and columns up to a block's. */
static void block_nt_cases(int k, const float *a, int lda, const float *b, int ldb, float *c,
                           int ldc, int rows, int cols)
{
    switch (rows) {
    case 1: NT_COLS_CASES(1) break;
    case 2: NT_COLS_CASES(2) break;
    case 3: NT_COLS_CASES(3) break;
    default: NT_COLS_CASES(NT_ROWS) break;
    }
}

/* Whether OpenBLAS runs its AVX-512 kernels (OPENBLAS_CORETYPE or its own choice of
 * kernels for the CPU): those multiply the Winograd weight gradient's products twice
 * as fast as lop_small_gemm_nt, whose dot products end in a sum across each vector's
 * lanes.  One thread, 36 products m x n over k tiles, GFLOP/s (lop_small_gemm_nt /
 * OpenBLAS's SkylakeX kernels / its Haswell kernels), on an AVX-512 Zen 5: 16 x 16 over
 * 128 84 / 179 / 67, 8 x 16 over 128 83 / 165 / 49, 32 x 32 over 64 75 / 165 / 83, 64 x
 * 64 over 32 54 / 151 / 97.  Without them the dot products stay where they won on AVX2
 * (NT_CACHED).  Read once; every thread finds the same answer. */
int lop_blas_has_avx512(void)
{
    static _Atomic int known = -1;
    int has = known;
    if (has < 0) {
        const char *core = openblas_get_corename();
        has = core && (strncasecmp(core, "skylakex", 8) == 0 ||
                       strncasecmp(core, "cooperlake", 10) == 0 ||
                       strncasecmp(core, "sapphirerapids", 14) == 0);
        known = has;
    }
    return has;
}

/* Measured against OpenBLAS 0.3.21 on Zen 1 (one thread, 36 products each, m x n from
 * 5 x 3 to 256 x 256): with k a multiple of the vector (k = 128 or 512 tiles, as the
 * Winograd chunks lay them out) 1.22-10.3x faster, 26-35 GFLOP/s where OpenBLAS ran
 * 3-24; with a partial last vector (k = 100) its masked loads cost more than they save
 * from 16 x 16 up (0.68-0.92x).  Inside a layer, whose operands come from L2, 64 x 64
 * over 128 tiles ran no faster: hence the bound on A and B together. */
int lop_small_gemm_nt_suits(int m, int n, int k)
{
    return k % VEC_LANES == 0 && (long)(m + n) * k <= NT_CACHED && !lop_blas_has_avx512();
}

void lop_small_gemm_nt(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                       float *c, int ldc)
{
    for (int i = 0; i < m; i += NT_ROWS)
        for (int j = 0; j < n; j += NT_COLS)
            block_nt_cases(k, a + (size_t)i * lda, lda, b + (size_t)j * ldb, ldb,
                           c + (size_t)i * ldc + j, ldc, m - i < NT_ROWS ? m - i : NT_ROWS,
                           n - j < NT_COLS ? n - j : NT_COLS);
}
