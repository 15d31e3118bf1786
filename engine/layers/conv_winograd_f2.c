/*
 * conv_winograd_f2.c - the transforms of Winograd F(2x2,3x3) for conv_winograd.c: each
 * 2x2 output tile is y = A^T [(G g G^T) . (B^T d B)] A over its 4x4 input tile d, 16
 * multiplies per input and output channel pair instead of 36.  B^T and A have entries
 * 0 and +-1 and G entries 0, +-1/2 and 1, so the transforms are additions and halvings.
 */
#include "layers/conv_winograd_tiles.h"

/* Inlined with n constant: VEC_LANES (every group of a layer's kernels but the last)
 * stores whole vectors, with no test of n a store. */
static inline __attribute__((always_inline)) void pack_stored(const vec *g, int n, float *dst,
                                                              size_t step)
{
    vec r[4][3];
    for (int j = 0; j < 3; j++) {
        r[0][j] = g[j];
        r[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        r[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        r[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        float *d = dst + (size_t)(4 * i) * step;
        vec_store_first(d, r[i][0], n);
        vec_store_first(d + step, 0.5f * (r[i][0] + r[i][1] + r[i][2]), n);
        vec_store_first(d + 2 * step, 0.5f * (r[i][0] - r[i][1] + r[i][2]), n);
        vec_store_first(d + 3 * step, r[i][2], n);
    }
}

static void pack_kernels(const vec *g, int n, float *dst, size_t step)
{
    n == VEC_LANES ? pack_stored(g, VEC_LANES, dst, step) : pack_stored(g, n, dst, step);
}

/* Each of the four rows' columns 2 l .. 2 l + 3 for tile l, loaded straight from the
 * input and split into four vectors (vec_split2_of: tile l in a lane of the build's
 * order), then B^T d B in registers, down the columns and along the rows, into the n
 * tiles' runs.  Inlined with `several` and `whole` constant (lop_wino_load). */
static inline __attribute__((always_inline)) void input_loaded(const lop_wino_loads *l,
                                                               float *out, size_t step,
                                                               int several, int whole)
{
    unsigned real = l->real;   /* read once: the stores may alias l */
    vec d[4][4];
    for (int i = 0; i < 4; i++)
        for (int s = 0; s < 2; s++)   /* columns 2 l, 2 l + 1, then 2 l + 2, 2 l + 3 */
            vec_split2_of(lop_wino_load(l, 0, i, 2, s, several, whole),
                          lop_wino_load(l, 1, i, 2, s, several, whole), &d[i][2 * s],
                          &d[i][2 * s + 1]);
    vec t[4][4];
    for (int j = 0; j < 4; j++) {
        t[0][j] = d[0][j] - d[2][j];
        t[1][j] = d[1][j] + d[2][j];
        t[2][j] = d[2][j] - d[1][j];
        t[3][j] = d[1][j] - d[3][j];
    }
#pragma GCC unroll 4   /* as conv_winograd_f4.c's: 64 -> 64 on 8x8, 0.93 -> 0.83 ms */
    for (int i = 0; i < 4; i++) {
        float *o = out + (size_t)(4 * i) * step;
        lop_wino_store_tiles(o, t[i][0] - t[i][2], real, VEC_SPLIT2);
        lop_wino_store_tiles(o + step, t[i][1] + t[i][2], real, VEC_SPLIT2);
        lop_wino_store_tiles(o + 2 * step, t[i][2] - t[i][1], real, VEC_SPLIT2);
        lop_wino_store_tiles(o + 3 * step, t[i][1] - t[i][3], real, VEC_SPLIT2);
    }
}

static void input_vector(const lop_wino_loads *l, float *out, size_t step)
{
    LOP_WINO_BY_LOADS(input_loaded, l, out, step);
}

/* A^T M A in registers on the n tiles, each output row's two columns interleaved
 * (vec_join2_of) and stored straight into the output. */
static inline __attribute__((always_inline)) void output_stored(const float *m, size_t step,
                                                                const lop_wino_loads *l,
                                                                const lop_wino_put *put,
                                                                int several, int kind)
{
    unsigned real = l->real;   /* read once: the stores may alias l */
    int n = __builtin_popcount(real);
    vec r0[4], r1[4];
    for (int j = 0; j < 4; j++) {
        vec m0 = vec_load_first(m + (size_t)j * step, n);
        vec m1 = vec_load_first(m + (size_t)(4 + j) * step, n);
        vec m2 = vec_load_first(m + (size_t)(8 + j) * step, n);
        vec m3 = vec_load_first(m + (size_t)(12 + j) * step, n);
        r0[j] = m0 + m1 + m2;
        r1[j] = m1 - m2 - m3;
    }
    vec y[2][2] = {{r0[0] + r0[1] + r0[2], r0[1] - r0[2] - r0[3]},
                   {r1[0] + r1[1] + r1[2], r1[1] - r1[2] - r1[3]}};
    for (int i = 0; i < 2; i++) {
        vec row[2];
        vec_join2_of(lop_wino_spread(y[i][0], real, VEC_SPLIT2),
                     lop_wino_spread(y[i][1], real, VEC_SPLIT2), row);
        lop_wino_store(l, put, kind, 0, i, row[0], several);
        lop_wino_store(l, put, kind, 1, i, row[1], several);
    }
}

static void output_vector(const float *m, size_t step, const lop_wino_loads *l,
                          const lop_wino_put *put)
{
    LOP_WINO_BY_PUT(output_stored, m, step, l, put);
}

/* The two dY rows, loaded straight from the output gradient and split into the
 * tiles' two columns, A d A^T into the n tiles' runs. */
static inline __attribute__((always_inline)) void output_grad_loaded(const lop_wino_loads *l,
                                                                     float *out,
                                                                     size_t step, int several,
                                                                     int whole)
{
    unsigned real = l->real;   /* read once: the stores may alias l */
    vec a0, a1, b0, b1;
    vec_split2_of(lop_wino_load(l, 0, 0, 2, 0, several, whole),
                  lop_wino_load(l, 1, 0, 2, 0, several, whole), &a0, &a1);
    vec_split2_of(lop_wino_load(l, 0, 1, 2, 0, several, whole),
                  lop_wino_load(l, 1, 1, 2, 0, several, whole), &b0, &b1);
    /* A d: rows d0, d0 + d1, d0 - d1, -d1; then the same on columns. */
    vec e[4][2] = {{a0, a1}, {a0 + b0, a1 + b1}, {a0 - b0, a1 - b1}, {-b0, -b1}};
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        float *o = out + (size_t)(4 * i) * step;
        lop_wino_store_tiles(o, e[i][0], real, VEC_SPLIT2);
        lop_wino_store_tiles(o + step, e[i][0] + e[i][1], real, VEC_SPLIT2);
        lop_wino_store_tiles(o + 2 * step, e[i][0] - e[i][1], real, VEC_SPLIT2);
        lop_wino_store_tiles(o + 3 * step, -e[i][1], real, VEC_SPLIT2);
    }
}

static void output_grad_vector(const lop_wino_loads *l, float *out, size_t step)
{
    LOP_WINO_BY_LOADS(output_grad_loaded, l, out, step);
}

static void weight_grads(const float *du, size_t step, int n, float *dw)
{
    vec s[3][4], taps[9];
    for (int j = 0; j < 4; j++) {
        vec x0 = vec_load_first(du + j * step, n);
        vec x1 = vec_load_first(du + (4 + j) * step, n);
        vec x2 = vec_load_first(du + (8 + j) * step, n);
        vec x3 = vec_load_first(du + (12 + j) * step, n);
        s[0][j] = x0 + 0.5f * (x1 + x2);
        s[1][j] = 0.5f * (x1 - x2);
        s[2][j] = 0.5f * (x1 + x2) + x3;
    }
    for (int i = 0; i < 3; i++) {
        taps[3 * i] = s[i][0] + 0.5f * (s[i][1] + s[i][2]);
        taps[3 * i + 1] = 0.5f * (s[i][1] - s[i][2]);
        taps[3 * i + 2] = 0.5f * (s[i][1] + s[i][2]) + s[i][3];
    }
    lop_wino_add_taps(taps, n, dw);
}

const lop_wino_tiles lop_wino_f2 = {pack_kernels, input_vector, output_vector,
                                    output_grad_vector, weight_grads};
