/*
 * conv_winograd_tiles.h - the transforms of each Winograd tile size, F(2x2,3x3) in
 * conv_winograd_f2.c and F(4x4,3x3) in conv_winograd_f4.c, for conv_winograd.c, which
 * runs the loops over channels and images around them and the products between them.
 * r is the output tile's side, alpha = r + 2 the input tile's, and a transformed
 * matrix's positions lie `step` floats apart.
 *
 * The tile transforms run on VEC_LANES tiles at once, one tile a lane: consecutive
 * tiles of a chunk's m images as conv_winograd.c lays them out (image, row of tiles,
 * column; each row of tiles padded with junk tiles to `span`), read straight from the
 * input (or output gradient) and written straight into the output through
 * lop_wino_loads below; the tiles of one vector may belong to several rows of tiles
 * and images, so that small maps fill the vectors too.  l->real marks the lanes whose
 * tiles are real: their transformed values, packed in order, are the run
 * out[xi * step + tile] (or m[...]) of each position xi, the junk lanes left out - and
 * where every tile of a vector is real, its run is in the order the vector holds its
 * tiles (lop_wino_store_tiles, lop_wino_spread).
 * - pack_kernels: U = G g G^T of the n <= VEC_LANES 3x3 kernels whose taps are the
 *   lanes of g[0..8] into dst[xi * step + lane];
 * - input_vector: B^T d B of a vector of tiles of alpha input rows (zero in the
 *   padding);
 * - output_vector: A^T M A of a vector's real tiles into r output rows, as
 *   lop_wino_put says;
 * - output_grad_vector: A dY A^T of a vector of tiles, dY in r rows (zero beyond the
 *   output's edges);
 * - weight_grads: dw[9 l .. 9 l + 8] += G^T dU G for the n <= VEC_LANES channel pairs
 *   l, dU at du[xi * step + l].
 */
#ifndef LOPPER_CONV_WINOGRAD_TILES_H
#define LOPPER_CONV_WINOGRAD_TILES_H

#include "layers/conv_winograd.h"
#include "layers/vec.h"

/* A vector's tiles are read and written load by load: load k (k < r, in the order of
 * vec_split2_of / vec_split4_of's arguments) holds the r columns of VEC_LANES / r
 * consecutive tiles, and its parts are the runs of them that lie in one row of tiles
 * of one image: one, or several whole rows where rows of tiles are shorter than a load
 * (conv_winograd.c lays them out so), none past the last tile.  Lane j of a part, in
 * input (or output) row i of its tiles, is in[at + i * w + j] (or out[...]; row0 + i
 * that row of the image), for its lanes [lo, hi) inside the image's columns - and for
 * the input, [lo_shifted, hi_shifted) of the load r columns to its right. */
enum { LOP_WINO_PARTS = VEC_LANES / 2 };   /* at most: a tile per part, F(2x2) */

typedef struct lop_wino_part {
    ptrdiff_t at;
    int row0, lo, hi, lo_shifted, hi_shifted;
} lop_wino_part;

typedef struct lop_wino_loads {
    lop_wino_part part[LOP_WINO_PARTS][4];   /* part q of load k: part[q][k] */
    int parts;   /* of every load: the most any has, the others padded with empty parts */
    unsigned real;   /* the lanes whose tiles are real, not junk */
    /* Every vector the loads read lies whole within the chunk's images, so that they
     * may read the lanes outside their parts too (vec_load_lanes_readable). */
    int whole;
    size_t first;    /* the first real tile's place among the chunk's real tiles */
    int h, w;    /* the input's (or output's) rows and columns */
    const float *in;
    float *out;
} lop_wino_loads;

/* Lanes [*lo, *hi) of part p in row i (*hi = *lo when row0 + i is not one of the h
 * rows), with shifted those of the load r columns to its right. */
static inline void lop_wino_lanes(const lop_wino_part *p, int i, int h, int shifted, int *lo,
                                  int *hi)
{
    *lo = shifted ? p->lo_shifted : p->lo;
    *hi = (unsigned)(p->row0 + i) < (unsigned)h ? (shifted ? p->hi_shifted : p->hi) : *lo;
}

/* Lanes [lo, hi) of the vector at p, the others 0; with whole (l->whole) p's other
 * lanes may be read. */
static inline __attribute__((always_inline)) vec lop_wino_load_lanes(const float *p, int lo,
                                                                     int hi, int whole)
{
    return whole ? vec_load_lanes_readable(p, lo, hi) : vec_load_lanes(p, lo, hi);
}

/* Load k of input row i, or with shifted the one r columns to its right (zero outside
 * the image).  Inlined with `several` and `whole` constant: several 0 when every load
 * of the vector has one part, so that nothing stands between the loads and the
 * transforms around them, else all l->parts parts of each load (loads with fewer
 * padded with empty ones), their lanes merged; whole as l->whole. */
static inline __attribute__((always_inline)) vec lop_wino_load(const lop_wino_loads *l, int k,
                                                               int i, int r, int shifted,
                                                               int several, int whole)
{
    const float *row = l->in + (ptrdiff_t)i * l->w + shifted * r;
    if (!several) {
        const lop_wino_part *p = &l->part[0][k];
        if ((unsigned)(p->row0 + i) >= (unsigned)l->h)
            return (vec){0};
        return lop_wino_load_lanes(row + p->at, shifted ? p->lo_shifted : p->lo,
                                   shifted ? p->hi_shifted : p->hi, whole);
    }
    vec v = {0};
    for (int q = 0; q < l->parts; q++) {
        int lo, hi;
        lop_wino_lanes(&l->part[q][k], i, l->h, shifted, &lo, &hi);
        if (hi > lo)   /* no load where a part has no lanes: it may lie far outside */
            v = vec_merge(v, lop_wino_load_lanes(row + l->part[q][k].at, lo, hi, whole));
    }
    return v;
}

/* fn(l, out, step, several, whole), an always-inlined transform that loads its tiles
 * with lop_wino_load, run on the copy compiled for l's case: several parts or one,
 * whole vectors readable or not. */
#define LOP_WINO_BY_LOADS(fn, l, out, step)                                            \
    do {                                                                               \
        if ((l)->parts > 1 && (l)->whole)                                              \
            fn(l, out, step, 1, 1);                                                    \
        else if ((l)->parts > 1)                                                       \
            fn(l, out, step, 1, 0);                                                    \
        else if ((l)->whole)                                                           \
            fn(l, out, step, 0, 1);                                                    \
        else                                                                           \
            fn(l, out, step, 0, 0);                                                    \
    } while (0)

/* What lop_wino_store makes of the outputs: y = v * mul + add (+ the residual
 * `residual` floats from y when has_residual), clamped to [lo, hi] when clamp (with
 * epilogue); y += v (accumulate); else y = v. */
typedef struct lop_wino_put {
    int epilogue, has_residual, clamp, accumulate;
    ptrdiff_t residual;
    vec mul, add, lo, hi;
} lop_wino_put;

/* A put's flags as bits, each of the six cases of LOP_WINO_BY_PUT a constant: the
 * output transforms are compiled for each, so that their 16 stores a vector of tiles
 * test nothing (with the flags read from *put, which the stores may alias, each store
 * tested all four again).  One thread, batch 64: F(4x4)'s output step of 13 -> 13 on
 * 32x32 1.17-1.19 -> 0.94 ms; ResNet-56's forward pass 248-252 -> 240-241 ms. */
enum {
    LOP_WINO_EPILOGUE = 1,
    LOP_WINO_RESIDUAL = 2,
    LOP_WINO_CLAMP = 4,
    LOP_WINO_ACCUMULATE = 8,
};

static inline int lop_wino_put_kind(const lop_wino_put *put)
{
    return (put->epilogue ? LOP_WINO_EPILOGUE : 0) |
           (put->has_residual ? LOP_WINO_RESIDUAL : 0) | (put->clamp ? LOP_WINO_CLAMP : 0) |
           (put->accumulate ? LOP_WINO_ACCUMULATE : 0);
}

/* Lanes [lo, hi) of output row i at d from v (put's epilogue already applied), as the
 * constant kind says. */
static inline __attribute__((always_inline)) void lop_wino_store_lanes(const lop_wino_put *put,
                                                                       int kind, float *d,
                                                                       int lo, int hi, vec v)
{
    if (kind & LOP_WINO_RESIDUAL)
        v += vec_load_lanes(d + put->residual, lo, hi);
    else if (kind & LOP_WINO_ACCUMULATE)
        v += vec_load_lanes(d, lo, hi);
    if (kind & LOP_WINO_CLAMP)
        v = vec_clamp(v, put->lo, put->hi);
    vec_store_lanes(d, v, lo, hi);
}

/* Output row i of load k's tiles from v (their columns in order, as vec_join4_of or
 * vec_join2_of leave them); `several` as lop_wino_load's, kind as above. */
static inline __attribute__((always_inline)) void lop_wino_store(const lop_wino_loads *l,
                                                                 const lop_wino_put *put,
                                                                 int kind, int k, int i, vec v,
                                                                 int several)
{
    float *row = l->out + (ptrdiff_t)i * l->w;
    if (kind & LOP_WINO_EPILOGUE)
        v = v * put->mul + put->add;
    if (!several) {
        const lop_wino_part *p = &l->part[0][k];
        if ((unsigned)(p->row0 + i) < (unsigned)l->h)
            lop_wino_store_lanes(put, kind, row + p->at, p->lo, p->hi, v);
        return;
    }
    for (int q = 0; q < l->parts; q++) {
        int lo, hi;
        lop_wino_lanes(&l->part[q][k], i, l->h, 0, &lo, &hi);
        lop_wino_store_lanes(put, kind, row + l->part[q][k].at, lo, hi, v);
    }
}

/* fn(m, step, l, put, several, kind), an always-inlined output transform that stores
 * with lop_wino_store, run on the copy compiled for l's parts and put's kind; put is
 * copied, so that its fields stay in registers across the stores. */
#define LOP_WINO_BY_PUT_KIND(fn, m, step, l, put, several)                               \
    do {                                                                                 \
        const lop_wino_put copy = *(put);                                                \
        switch (lop_wino_put_kind(&copy)) {                                              \
        case 0: fn(m, step, l, &copy, several, 0); break;                                \
        case LOP_WINO_ACCUMULATE:                                                        \
            fn(m, step, l, &copy, several, LOP_WINO_ACCUMULATE);                         \
            break;                                                                       \
        case LOP_WINO_EPILOGUE: fn(m, step, l, &copy, several, LOP_WINO_EPILOGUE); break;  \
        case LOP_WINO_EPILOGUE | LOP_WINO_CLAMP:                                         \
            fn(m, step, l, &copy, several, LOP_WINO_EPILOGUE | LOP_WINO_CLAMP);          \
            break;                                                                       \
        case LOP_WINO_EPILOGUE | LOP_WINO_RESIDUAL:                                      \
            fn(m, step, l, &copy, several, LOP_WINO_EPILOGUE | LOP_WINO_RESIDUAL);       \
            break;                                                                       \
        default:                                                                         \
            fn(m, step, l, &copy, several,                                               \
               LOP_WINO_EPILOGUE | LOP_WINO_RESIDUAL | LOP_WINO_CLAMP);                  \
            break;                                                                       \
        }                                                                                \
    } while (0)

#define LOP_WINO_BY_PUT(fn, m, step, l, put)                                             \
    do {                                                                                 \
        if ((l)->parts > 1)                                                              \
            LOP_WINO_BY_PUT_KIND(fn, m, step, l, put, 1);                                \
        else                                                                             \
            LOP_WINO_BY_PUT_KIND(fn, m, step, l, put, 0);                                \
    } while (0)

/* Where every tile of a vector is real (real == LOP_WINO_ALL_REAL) its values are stored
 * as the vector holds them, in the build's order o, not put in the tiles' order: the
 * products treat every tile alike, and the steps that read them back (output_vector
 * with lop_wino_spread, the weight gradient's products of two runs stored so) take them
 * in the same order.  AVX2's lane-crossing permute costs 3 micro-ops a store on Zen 1,
 * 36 stores per vector of F(4x4) tiles: one thread, batch 64, 13 -> 8 channels on 32x32
 * 3.06-3.21 -> 2.90-2.95 ms, 16 -> 16 5.47-5.62 -> 5.34-5.53 (32 -> 32 on 16x16,
 * where the products weigh more, 3.52-3.56 both). */
#define LOP_WINO_ALL_REAL ((1u << VEC_LANES) - 1)

static inline void lop_wino_store_tiles(float *p, vec v, unsigned real, vec_order o)
{
    if (real == LOP_WINO_ALL_REAL)
        vec_store(p, v);
    else
        vec_store_selected(p, v, real, o);
}

/* lop_wino_store_tiles undone in registers: v, a run's values as loaded (after the
 * products, which keep the order of their columns), back in the lanes of their tiles
 * (order o), the junk lanes 0. */
static inline vec lop_wino_spread(vec v, unsigned real, vec_order o)
{
    return real == LOP_WINO_ALL_REAL ? v : vec_spread(v, real, o);
}

typedef struct lop_wino_tiles {
    void (*pack_kernels)(const vec *g, int n, float *dst, size_t step);
    void (*input_vector)(const lop_wino_loads *l, float *out, size_t step);
    void (*output_vector)(const float *m, size_t step, const lop_wino_loads *l,
                          const lop_wino_put *put);
    void (*output_grad_vector)(const lop_wino_loads *l, float *out, size_t step);
    void (*weight_grads)(const float *du, size_t step, int n, float *dw);
} lop_wino_tiles;

extern const lop_wino_tiles lop_wino_f2, lop_wino_f4;

/* dw[9 l + j] += taps[j] lane l for the first n lanes: weight_grads' results, tap by
 * tap, added into n consecutive 3x3 kernels. */
static inline void lop_wino_add_taps(const vec taps[9], int n, float *dw)
{
    float t[9][VEC_LANES];
    for (int j = 0; j < 9; j++)
        vec_store(t[j], taps[j]);
    for (int l = 0; l < n; l++)
        for (int j = 0; j < 9; j++)
            dw[9 * l + j] += t[j][l];
}

#endif
