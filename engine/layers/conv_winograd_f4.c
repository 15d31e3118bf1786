/*
 * conv_winograd_f4.c - the transforms of Winograd F(4x4,3x3) for conv_winograd.c (the
 * matrices of Lavin and Gray 2015, interpolation points 0, +-1, +-2): each 4x4 output
 * tile is y = A^T [(G g G^T) . (B^T d B)] A over its 6x6 input tile d, 36 multiplies
 * per input and output channel pair where the direct convolution has 144 and F(2x2)
 * 64 for the same outputs, and 2.25 transformed values per output where F(2x2) has 4.
 * The price is in the transforms, whose entries reach 5 (B), 8 (A) and 1/24 (G):
 * more arithmetic per value, and rounding errors about ten times F(2x2)'s
 * (tests/test_winograd.c).  Each transform runs down the columns of a tile, then
 * along its rows, as conv_winograd_f2.c's do.
 */
#include "layers/conv_winograd_tiles.h"

enum { ALPHA = 6, R = 4 };

/* The one-dimensional transforms t = M s: G (6x3) on a kernel row or column, B^T
 * (6x6) on an input one, A^T (4x6) on a product one; for the weight gradient A (6x4)
 * on an output gradient one and G^T (3x6) on a weight gradient one. */
static inline void g_of(const vec *s, vec *t)
{
    vec even = s[0] + s[2], far = s[0] * (1.0f / 24) + s[2] * (1.0f / 6);
    t[0] = s[0] * 0.25f;
    t[1] = -(even + s[1]) * (1.0f / 6);
    t[2] = -(even - s[1]) * (1.0f / 6);
    t[3] = far + s[1] * (1.0f / 12);
    t[4] = far - s[1] * (1.0f / 12);
    t[5] = s[2];
}

static inline void bt_of(const vec *s, vec *t)
{
    vec a = s[4] - 4 * s[2], b = s[3] - 4 * s[1];   /* rows 1 and 2 */
    vec c = s[4] - s[2], d = 2 * (s[3] - s[1]);       /* rows 3 and 4 */
    t[0] = 4 * s[0] - 5 * s[2] + s[4];
    t[1] = a + b;
    t[2] = a - b;
    t[3] = c + d;
    t[4] = c - d;
    t[5] = 4 * s[1] - 5 * s[3] + s[5];
}

static inline void at_of(const vec *s, vec *t)
{
    vec p1 = s[1] + s[2], m1 = s[1] - s[2], p2 = s[3] + s[4], m2 = s[3] - s[4];
    t[0] = s[0] + p1 + p2;
    t[1] = m1 + 2 * m2;
    t[2] = p1 + 4 * p2;
    t[3] = m1 + 8 * m2 + s[5];
}

static inline void a_of(const vec *s, vec *t)
{
    vec even1 = s[0] + s[2], odd1 = s[1] + s[3];
    vec even2 = s[0] + 4 * s[2], odd2 = 2 * s[1] + 8 * s[3];
    t[0] = s[0];
    t[1] = even1 + odd1;
    t[2] = even1 - odd1;
    t[3] = even2 + odd2;
    t[4] = even2 - odd2;
    t[5] = s[3];
}

static inline void gt_of(const vec *s, vec *t)
{
    vec p1 = s[1] + s[2], m1 = s[2] - s[1], p2 = s[3] + s[4], m2 = s[3] - s[4];
    t[0] = s[0] * 0.25f - p1 * (1.0f / 6) + p2 * (1.0f / 24);
    t[1] = m1 * (1.0f / 6) + m2 * (1.0f / 12);
    t[2] = (p2 - p1) * (1.0f / 6) + s[5];
}

/* Inlined with n constant, as conv_winograd_f2.c's. */
static inline __attribute__((always_inline)) void pack_stored(const vec *g, int n, float *dst,
                                                              size_t step)
{
    vec rows[ALPHA][3];   /* G down each column of g */
    for (int j = 0; j < 3; j++) {
        vec col[3] = {g[j], g[3 + j], g[6 + j]}, t[ALPHA];
        g_of(col, t);
        for (int i = 0; i < ALPHA; i++)
            rows[i][j] = t[i];
    }
    for (int i = 0; i < ALPHA; i++) {   /* then along each row */
        vec t[ALPHA];
        g_of(rows[i], t);
        for (int j = 0; j < ALPHA; j++)
            vec_store_first(dst + (size_t)(ALPHA * i + j) * step, t[j], n);
    }
}

static void pack_kernels(const vec *g, int n, float *dst, size_t step)
{
    n == VEC_LANES ? pack_stored(g, VEC_LANES, dst, step) : pack_stored(g, n, dst, step);
}

/* Each of the six rows' columns 4 l .. 4 l + 5 for tile l, loaded straight from the
 * input, split into six vectors (vec_split4_of: tile l in a lane of the build's order)
 * and transformed along the row, then B^T down each column of the tile into its six
 * runs.  Inlined with `several` and `whole` constant (lop_wino_load). */
static inline __attribute__((always_inline)) void input_loaded(const lop_wino_loads *l,
                                                               float *out, size_t step,
                                                               int several, int whole)
{
    unsigned real = l->real;   /* read once: the stores may alias l */
    vec along[ALPHA][ALPHA];
    for (int i = 0; i < ALPHA; i++) {
        vec a[R], b[R], d[ALPHA + 2];
        for (int k = 0; k < R; k++) {
            a[k] = lop_wino_load(l, k, i, R, 0, several, whole);
            /* columns 4 l + 4, 4 l + 5 */
            b[k] = lop_wino_load(l, k, i, R, 1, several, whole);
        }
        vec_split4_of(a, d);
        vec_split4_of(b, d + R);
        bt_of(d, along[i]);
    }
    /* Unrolled on request (GCC left these loops rolled even at -O3, with their loop
     * and index work around the 36 stores): callgrind counts 1,530 instructions a
     * vector of tiles rolled, 1,160 unrolled.  One thread, batch 64, input step: 13 ->
     * 13 on 32x32 1.75 -> 1.34 ms, 32 -> 32 on 16x16 1.33 -> 1.05.  Unrolling the row
     * loop above too, or the output transform's loops, was slower. */
#pragma GCC unroll 6
    for (int j = 0; j < ALPHA; j++) {
        vec col[ALPHA], t[ALPHA];
#pragma GCC unroll 6
        for (int i = 0; i < ALPHA; i++)
            col[i] = along[i][j];
        bt_of(col, t);
#pragma GCC unroll 6
        for (int i = 0; i < ALPHA; i++)
            lop_wino_store_tiles(out + (size_t)(ALPHA * i + j) * step, t[i], real, VEC_SPLIT4);
    }
}

static void input_vector(const lop_wino_loads *l, float *out, size_t step)
{
    LOP_WINO_BY_LOADS(input_loaded, l, out, step);
}

/* A^T down each column of the n tiles, then along each row into its four output
 * columns, interleaved (vec_join4_of) and stored straight into the output. */
static inline __attribute__((always_inline)) void output_stored(const float *m, size_t step,
                                                                const lop_wino_loads *l,
                                                                const lop_wino_put *put,
                                                                int several, int kind)
{
    unsigned real = l->real;   /* read once: the stores may alias l */
    int n = __builtin_popcount(real);
    vec down[R][ALPHA];
    for (int j = 0; j < ALPHA; j++) {
        vec col[ALPHA], t[R];
        for (int i = 0; i < ALPHA; i++)
            col[i] = vec_load_first(m + (size_t)(ALPHA * i + j) * step, n);
        at_of(col, t);
        for (int i = 0; i < R; i++)
            down[i][j] = t[i];
    }
    for (int i = 0; i < R; i++) {
        vec y[R], row[R];
        at_of(down[i], y);
        for (int j = 0; j < R; j++)
            y[j] = lop_wino_spread(y[j], real, VEC_SPLIT4);
        vec_join4_of(y, row);
        for (int k = 0; k < R; k++)
            lop_wino_store(l, put, kind, k, i, row[k], several);
    }
}

static void output_vector(const float *m, size_t step, const lop_wino_loads *l,
                          const lop_wino_put *put)
{
    LOP_WINO_BY_PUT(output_stored, m, step, l, put);
}

/* Each dY row, loaded straight from the output gradient, split into the tiles' four
 * columns, A down each column, then along each row into the tile's 36 runs. */
static inline __attribute__((always_inline)) void output_grad_loaded(const lop_wino_loads *l,
                                                                     float *out,
                                                                     size_t step, int several,
                                                                     int whole)
{
    unsigned real = l->real;   /* read once: the stores may alias l */
    vec dy[R][R], down[ALPHA][R];
    for (int i = 0; i < R; i++) {
        vec a[R];
        for (int k = 0; k < R; k++)
            a[k] = lop_wino_load(l, k, i, R, 0, several, whole);
        vec_split4_of(a, dy[i]);
    }
    for (int j = 0; j < R; j++) {
        vec col[R], t[ALPHA];
        for (int i = 0; i < R; i++)
            col[i] = dy[i][j];
        a_of(col, t);
        for (int i = 0; i < ALPHA; i++)
            down[i][j] = t[i];
    }
#pragma GCC unroll 6   /* as input_loaded's stores */
    for (int i = 0; i < ALPHA; i++) {
        vec t[ALPHA];
        a_of(down[i], t);
#pragma GCC unroll 6
        for (int j = 0; j < ALPHA; j++)
            lop_wino_store_tiles(out + (size_t)(ALPHA * i + j) * step, t[j], real, VEC_SPLIT4);
    }
}

static void output_grad_vector(const lop_wino_loads *l, float *out, size_t step)
{
    LOP_WINO_BY_LOADS(output_grad_loaded, l, out, step);
}

static void weight_grads(const float *du, size_t step, int n, float *dw)
{
    vec down[3][ALPHA], taps[9];   /* G^T down each column of dU */
    for (int j = 0; j < ALPHA; j++) {
        vec col[ALPHA], t[3];
        for (int i = 0; i < ALPHA; i++)
            col[i] = vec_load_first(du + (size_t)(ALPHA * i + j) * step, n);
        gt_of(col, t);
        for (int i = 0; i < 3; i++)
            down[i][j] = t[i];
    }
    for (int i = 0; i < 3; i++)   /* then along each row */
        gt_of(down[i], taps + 3 * i);
    lop_wino_add_taps(taps, n, dw);
}

const lop_wino_tiles lop_wino_f4 = {pack_kernels, input_vector, output_vector,
                                    output_grad_vector, weight_grads};
