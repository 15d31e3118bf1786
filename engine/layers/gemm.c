/*
 * gemm.c - the engine's own blocked matrix product, for an AVX-512 build whose OpenBLAS
 * runs narrower kernels: OPENBLAS_CORETYPE=Haswell holds OpenBLAS to AVX2 on CPUs
 * whose AVX-512 its older builds are not trusted on, and its sgemm then runs at half
 * the speed the CPU has (gemm.h).  The shape is BLIS's and OpenBLAS's: op(B) packed in
 * panels two vectors of columns wide and op(A) in panels of ROWS rows, KC of the inner
 * size at a time, and a register block of ROWS rows x two vectors summed over them
 * from one broadcast of A per row and B's two vectors per step.  Packing transposes
 * where the operand is stored the other way (op(B) = B^T: 16 x 16 blocks turned in
 * registers), so the block is the same for every op.  Every entry of C gets its sum
 * in the same order on every call, whatever thread makes it.
 */
#include <pthread.h>
#include <stdlib.h>

#include "layers/gemm.h"
#include "layers/small_gemm.h"
#include "layers/vec.h"

#ifdef __AVX512F__

enum {
    COLS = 2 * VEC_LANES,   /* a B panel's columns: two vectors */
    /* rows of a register block: 12 x 2 accumulators, B's two vectors and the
     * broadcast fill 27 of the 32 registers */
    ROWS = 12,
    /* The inner size per packing: a B panel (KC x COLS floats, 32 KiB) stays in L1
     * while every row block of A passes it. */
    KC = 256,
    NC = 12 * COLS,         /* columns of op(B) packed at once (384 KiB, in L2) */
    MC = 16 * ROWS,         /* rows of op(A) packed at once (192 KiB) */
};

/* Each thread's packed panels, made on its first product and freed as it ends. */
static pthread_key_t buffer_key;
static pthread_once_t buffer_once = PTHREAD_ONCE_INIT;
static int buffer_key_ok;

static void make_buffer_key(void)
{
    buffer_key_ok = pthread_key_create(&buffer_key, free) == 0;
}

static float *thread_buffer(void)
{
    pthread_once(&buffer_once, make_buffer_key);
    if (!buffer_key_ok)
        return NULL;
    float *buf = pthread_getspecific(buffer_key);
    if (!buf) {
        void *p = NULL;
        if (posix_memalign(&p, 64, ((size_t)MC * KC + (size_t)KC * NC) * sizeof(float)))
            return NULL;
        if (pthread_setspecific(buffer_key, p)) {
            free(p);
            return NULL;
        }
        buf = p;
    }
    return buf;
}

/* Turns 16 rows of 16 floats into 16 columns: each level swaps the off-diagonal
 * half-blocks of every 2h x 2h block, h = 8, 4, 2, 1. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16])
{
#pragma GCC unroll 4
    for (int h = 8; h >= 1; h /= 2) {
        int lo[16], hi[16];
        for (int l = 0; l < 16; l++) {
            lo[l] = (l & h) ? 16 + l - h : l;
            hi[l] = (l & h) ? 16 + l : l + h;
        }
        __m512i ilo = _mm512_loadu_si512(lo), ihi = _mm512_loadu_si512(hi);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            if (!(i & h)) {
                __m512 a = r[i], b = r[i + h];
                r[i] = _mm512_permutex2var_ps(a, ilo, b);
                r[i + h] = _mm512_permutex2var_ps(a, ihi, b);
            }
    }
}

/* Rows [0, rows) (rows <= 16) of src, kc floats each, turned into kc runs `pitch`
 * floats apart: run p gets lane r = src row r's float p, its first `lanes` lanes
 * stored (rows past `rows` zero).  16 x 16 blocks at a time, turned in registers. */
static void turn_rows(const float *src, int ld, int rows, int kc, float *out, int pitch,
                      int lanes)
{
    for (int p = 0; p < kc; p += VEC_LANES) {
        int n = kc - p < VEC_LANES ? kc - p : VEC_LANES;
        __m512 r[16];
        for (int i = 0; i < 16; i++)
            r[i] = i < rows ? (__m512)vec_load_first(src + (size_t)i * ld + p, n)
                            : _mm512_setzero_ps();
        transpose16(r);
        for (int q = 0; q < n; q++)
            vec_store_first(out + (size_t)(p + q) * pitch, (vec)r[q], lanes);
    }
}

void lop_transpose(const float *src, int ld, int rows, int cols, float *dst, int ldd)
{
    for (int r = 0; r < rows; r += VEC_LANES) {
        int n = rows - r < VEC_LANES ? rows - r : VEC_LANES;
        turn_rows(src + (size_t)r * ld, ld, n, cols, dst + r, ldd, n);
    }
}

/* op(B) rows [p0, p0 + kc), columns [j0, j0 + nc) into panels of COLS columns, each
 * kc rows of COLS floats (columns past nc zero). */
static void pack_b(CBLAS_TRANSPOSE tb, const float *b, int ldb, int p0, int kc, int j0, int nc,
                   float *out)
{
    for (int j = 0; j < nc; j += COLS, out += (size_t)kc * COLS) {
        int cols = nc - j < COLS ? nc - j : COLS;
        if (tb == CblasNoTrans) {
            const float *src = b + (size_t)p0 * ldb + j0 + j;
            for (int p = 0; p < kc; p++, src += ldb)
                for (int v = 0; v < 2; v++) {
                    int n = cols - v * VEC_LANES;
                    n = n < 0 ? 0 : n > VEC_LANES ? VEC_LANES : n;
                    vec_store(out + (size_t)p * COLS + v * VEC_LANES,
                              vec_load_first(src + v * VEC_LANES, n));
                }
            continue;
        }
        /* B stored n x k: its rows are op(B)'s columns */
        for (int v = 0; v < 2; v++) {
            int rows = cols - v * VEC_LANES;
            rows = rows < 0 ? 0 : rows > VEC_LANES ? VEC_LANES : rows;
            turn_rows(b + (size_t)(j0 + j + v * VEC_LANES) * ldb + p0, ldb, rows, kc,
                      out + v * VEC_LANES, COLS, VEC_LANES);
        }
    }
}

/* op(A) rows [i0, i0 + mc), columns [p0, p0 + kc) into panels of the row blocks'
 * sizes (blocks of `base` or base + 1 rows, the first `extra` of them larger), each
 * kc steps of ROWS floats (the block's rows first). */
static void pack_a(CBLAS_TRANSPOSE ta, const float *a, int lda, int i0, int mc, int p0, int kc,
                   int blocks, int base, int extra, float *out)
{
    for (int bi = 0, i = i0; bi < blocks; bi++, out += (size_t)kc * ROWS) {
        int rows = base + (bi < extra);
        if (ta == CblasTrans) {   /* A stored k x m: a step's rows lie side by side */
            const float *src = a + (size_t)p0 * lda + i;
            for (int p = 0; p < kc; p++, src += lda)
                vec_store_first(out + (size_t)p * ROWS, vec_load_first(src, rows), rows);
        } else {
            turn_rows(a + (size_t)i * lda + p0, lda, rows, kc, out, ROWS, rows);
        }
        i += rows;
    }
}

/* C's rows [0, rows) at columns [0, cols) = alpha (A panel x B panel) + beta C, over kc
 * steps; `vecs` is 1 where cols fit one vector.  Inlined with rows and vecs constant,
 * so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void block(int kc, const float *ap,
                                                        const float *bp, float *c, int ldc,
                                                        int cols, float alpha, float beta,
                                                        int rows, int vecs)
{
    vec acc[ROWS][2] = {{{0}}};
    for (int p = 0; p < kc; p++, ap += ROWS, bp += COLS) {
        vec b0 = vec_load(bp), b1 = vecs > 1 ? vec_load(bp + VEC_LANES) : b0;
#pragma GCC unroll 12
        for (int r = 0; r < rows; r++) {
            acc[r][0] += b0 * ap[r];
            if (vecs > 1)
                acc[r][1] += b1 * ap[r];
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 2
        for (int v = 0; v < vecs; v++) {
            float *out = c + (size_t)r * ldc + v * VEC_LANES;
            int n = cols - v * VEC_LANES < VEC_LANES ? cols - v * VEC_LANES : VEC_LANES;
            vec x = acc[r][v] * alpha;
            vec_store_first(out, beta == 0.0f ? x : vec_load_first(out, n) * beta + x, n);
        }
}

#define BLOCK_ROWS(vecs)                                                               \
    switch (rows) {                                                                    \
    case 1: block(kc, ap, bp, c, ldc, cols, alpha, beta, 1, vecs); break;              \
    case 2: block(kc, ap, bp, c, ldc, cols, alpha, beta, 2, vecs); break;              \
    case 3: block(kc, ap, bp, c, ldc, cols, alpha, beta, 3, vecs); break;              \
    case 4: block(kc, ap, bp, c, ldc, cols, alpha, beta, 4, vecs); break;              \
    case 5: block(kc, ap, bp, c, ldc, cols, alpha, beta, 5, vecs); break;              \
    case 6: block(kc, ap, bp, c, ldc, cols, alpha, beta, 6, vecs); break;              \
    case 7: block(kc, ap, bp, c, ldc, cols, alpha, beta, 7, vecs); break;              \
    case 8: block(kc, ap, bp, c, ldc, cols, alpha, beta, 8, vecs); break;              \
    case 9: block(kc, ap, bp, c, ldc, cols, alpha, beta, 9, vecs); break;              \
    case 10: block(kc, ap, bp, c, ldc, cols, alpha, beta, 10, vecs); break;            \
    case 11: block(kc, ap, bp, c, ldc, cols, alpha, beta, 11, vecs); break;            \
    default: block(kc, ap, bp, c, ldc, cols, alpha, beta, ROWS, vecs); break;          \
    }

/* block compiled for every row count, one or two vectors wide. */
static void block_cases(int kc, const float *ap, const float *bp, float *c, int ldc, int rows,
                        int cols, float alpha, float beta)
{
    if (cols > VEC_LANES) {
        BLOCK_ROWS(2)
    } else {
        BLOCK_ROWS(1)
    }
}

int lop_sgemm_blocked(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb,
                      float beta, float *c, int ldc)
{
    float *bbuf = m > 0 && n > 0 && k > 0 ? thread_buffer() : NULL;
    if (!bbuf)
        return -1;
    float *abuf = bbuf + (size_t)KC * NC;
    for (int j0 = 0; j0 < n; j0 += NC) {
        int nc = n - j0 < NC ? n - j0 : NC;
        for (int p0 = 0; p0 < k; p0 += KC) {
            int kc = k - p0 < KC ? k - p0 : KC;
            float beta_here = p0 == 0 ? beta : 1.0f;
            pack_b(tb, b, ldb, p0, kc, j0, nc, bbuf);
            for (int i0 = 0; i0 < m; i0 += MC) {
                int mc = m - i0 < MC ? m - i0 : MC;
                /* the fewest row blocks, sizes apart by at most one (13 rows as 7 + 6) */
                int blocks = (mc + ROWS - 1) / ROWS, base = mc / blocks, extra = mc % blocks;
                pack_a(ta, a, lda, i0, mc, p0, kc, blocks, base, extra, abuf);
                for (int j = 0; j < nc; j += COLS) {
                    int cols = nc - j < COLS ? nc - j : COLS;
                    const float *bp = bbuf + (size_t)j * kc;
                    for (int bi = 0, i = 0; bi < blocks; bi++) {
                        int rows = base + (bi < extra);
                        block_cases(kc, abuf + (size_t)bi * kc * ROWS, bp,
                                    c + (size_t)(i0 + i) * ldc + j0 + j, ldc, rows, cols,
                                    alpha, beta_here);
                        i += rows;
                    }
                }
            }
        }
    }
    return 0;
}

int lop_sgemm_blocked_runs(void)
{
    return !lop_blas_has_avx512();
}

#else   /* narrower vectors: OpenBLAS's kernels for them are as wide as the build's */

int lop_sgemm_blocked(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb,
                      float beta, float *c, int ldc)
{
    return -1;
}

int lop_sgemm_blocked_runs(void)
{
    return 0;
}

void lop_transpose(const float *src, int ld, int rows, int cols, float *dst, int ldd)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)c * ldd + r] = src[(size_t)r * ld + c];
}

#endif

void lop_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta, float *c,
               int ldc)
{
    if (lop_sgemm_blocked_runs() &&
        lop_sgemm_blocked(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0)
        return;
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
