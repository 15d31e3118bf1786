/*
 * conv_winograd.c - 3x3 stride-1 convolution by Winograd's minimal filtering
 * F(2x2,3x3) or F(4x4,3x3) (Lavin and Gray 2015), the plan of NNPACK: each r x r output
 * tile is y = A^T [(G g G^T) . (B^T d B)] A over its (r + 2) x (r + 2) input tile d.
 * Summed over input channels, the element-wise products become (r + 2)^2 independent
 * matrix products (output channels x input channels x tiles), which OpenBLAS runs near
 * peak once a chunk of images gives them enough tiles; the transforms around them
 * (conv_winograd_f2.c, conv_winograd_f4.c) are a few additions and small multiples per
 * value.  The weight gradient runs the same way backwards: dM = A dY A^T per tile,
 * dU[xi] = dM[xi] V[xi]^T, dW += G^T dU G.
 */
#include <string.h>

#include <cblas.h>

#include "internal.h"
#include "layers/conv_winograd_tiles.h"
#include "layers/small_gemm.h"

/* Floats from one position's matrix to the next's: n and a cache line more, so that
 * the streams a transform reads or writes at once do not fall into the same cache
 * sets (n is often a power of two). */
static size_t slab(size_t n)
{
    return n + 16;
}

/* Groups of VEC_LANES kernels ahead that lop_wino_pack asks the memory for: a batch-1
 * pass reads a wide layer's weights once, from memory, and the loads waited on it
 * (ResNet-18's 512-channel 7x7 layers at batch 1: 1.28-1.34 -> 1.15-1.19 ms with 4
 * groups ahead, 1.16-1.17 with 2, 1.17-1.19 with 8). */
enum { PACK_AHEAD = 4 };

/* A strip row holds whole images' rows of tiles, as many images as make it at least
 * this many tiles long (a few vectors), so that small maps fill the vectors too. */
enum { STRIP_TILES = 4 * VEC_LANES };

void lop_wino_plan(lop_wino *p, int r, int c, int h, int w, int o, int ph, int pw)
{
    p->r = r;
    p->positions = (r + 2) * (r + 2);
    p->c = c;
    p->h = h;
    p->w = w;
    p->o = o;
    p->ph = ph;
    p->pw = pw;
    p->ho = h + 2 * ph - 2;
    p->wo = w + 2 * pw - 2;
    p->th = (p->ho + r - 1) / r;
    p->tw = (p->wo + r - 1) / r;
    p->tiles = p->th * p->tw;
    p->period = p->tw + 1;
    int per_image = p->th * p->period;
    p->group = per_image >= STRIP_TILES ? 1 : (STRIP_TILES + per_image - 1) / per_image;
    int tiles = p->group * per_image;
    p->pitch = r * ((tiles + VEC_LANES - 1) / VEC_LANES * VEC_LANES) + r;
}

size_t lop_wino_weight_floats(const lop_wino *p)
{
    return (size_t)p->positions * slab((size_t)p->o * p->c);
}

/* The input step's strip row of r + 2 rows; the output steps use r of them. */
size_t lop_wino_work_floats(const lop_wino *p)
{
    return (size_t)(p->r + 2) * p->pitch;
}

size_t lop_wino_scratch_floats(const lop_wino *p, int m)
{
    size_t cols = (size_t)m * p->tiles;
    return lop_wino_work_floats(p) +
           (size_t)p->positions * (slab(p->c * cols) + slab(p->o * cols));
}

float *lop_wino_v(const lop_wino *p, float *scratch)
{
    return scratch + lop_wino_work_floats(p);
}

float *lop_wino_m(const lop_wino *p, int m, float *scratch)
{
    return lop_wino_v(p, scratch) +
           (size_t)p->positions * slab((size_t)p->c * m * p->tiles);
}

size_t lop_wino_wgrad_floats(const lop_wino *p, int m)
{
    return lop_wino_scratch_floats(p, m) + lop_wino_weight_floats(p);
}

static const lop_wino_tiles *tiles_of(const lop_wino *p)
{
    return p->r == 2 ? &lop_wino_f2 : &lop_wino_f4;
}

/* U = G g G^T for the kernels of output channels [o0, o1), each row of them into
 * `positions` contiguous runs, VEC_LANES input channels at a time (their taps
 * gathered into vectors).  Kernel (oc, ic) is w[oc][ic] or, adjoint, the flipped
 * w[ic][oc]. */
void lop_wino_pack(const lop_wino *p, const float *w, int adjoint, int o0, int o1, float *u)
{
    const lop_wino_tiles *t = tiles_of(p);
    size_t step = slab((size_t)p->o * p->c);
    size_t so = adjoint ? 9 : (size_t)p->c * 9, si = adjoint ? (size_t)p->o * 9 : 9;
    for (int oc = o0; oc < o1; oc++)
        for (int ic = 0; ic < p->c; ic += VEC_LANES) {
            int n = p->c - ic < VEC_LANES ? p->c - ic : VEC_LANES;
            const float *k = w + oc * so + ic * si;
            vec g[9];
            if (!adjoint)   /* the group PACK_AHEAD on: its 9 cache lines */
                for (int l = 0; l < 9; l++)
                    __builtin_prefetch(k + (size_t)PACK_AHEAD * 9 * VEC_LANES + 16 * l, 0, 0);
            vec_gather_kernels(k, (int)si, n, g);
            for (int i = 0; adjoint && i < 4; i++) {   /* flipped: tap i is 8 - i */
                vec tap = g[i];
                g[i] = g[8 - i];
                g[8 - i] = tap;
            }
            t->pack_kernels(g, n, u + (size_t)oc * p->c + ic, step);
        }
}

/* dst[0..n) = src[0..n), or with accumulate dst[0..n) += src[0..n). */
static void copy_row(float *restrict dst, const float *restrict src, int n, int accumulate)
{
    for (int k = 0; k < n; k += VEC_LANES) {
        int left = n - k < VEC_LANES ? n - k : VEC_LANES;
        vec s = vec_load_first(src + k, left);
        vec_store_first(dst + k, accumulate ? vec_load_first(dst + k, left) + s : s, left);
    }
}

/* A channel's epilogue (internal.h) as vectors; clamp 0 when there are no bounds
 * (so that a NaN stays one). */
typedef struct row_epilogue {
    vec mul, add, lo, hi;
    int clamp;
} row_epilogue;

static row_epilogue row_epilogue_of(const lop_epilogue *e, int oc)
{
    row_epilogue r;
    float mul = e->mul ? e->mul[oc] : 1.0f, add = e->add ? e->add[oc] : 0.0f;
    r.clamp = lop_epilogue_clamps(e);
    for (int l = 0; l < VEC_LANES; l++) {
        r.mul[l] = mul;
        r.add[l] = add;
        r.lo[l] = e->lo;
        r.hi[l] = e->hi;
    }
    return r;
}

/* dst[0..n) = min(max(src[0..n) * mul + add + res[0..n), lo), hi) (res may be NULL). */
static void store_row(float *restrict dst, const float *restrict src,
                      const float *restrict res, int n, const row_epilogue *r)
{
    for (int k = 0; k < n; k += VEC_LANES) {
        int left = n - k < VEC_LANES ? n - k : VEC_LANES;
        vec v = vec_load_first(src + k, left) * r->mul + r->add;
        if (res)
            v += vec_load_first(res + k, left);
        vec_store_first(dst + k, r->clamp ? vec_clamp(v, r->lo, r->hi) : v, left);
    }
}

/* The strip row's tiles [v, v + VEC_LANES) that are real, as a lane mask (the last
 * tile of each row of tiles is junk); *first is the first one's index among the real
 * tiles. */
static unsigned real_lanes(const lop_wino *p, int v, int tiles, int *first)
{
    int n = tiles - v < VEC_LANES ? tiles - v : VEC_LANES, rows = v / p->period;
    unsigned mask = (1u << n) - 1;
    for (int l = p->period - 1 - (v - rows * p->period); l < n; l += p->period)
        mask &= ~(1u << l);
    *first = v - rows;
    return mask;
}

/* The tiles of a strip row of g images: each image's rows of tiles and a junk tile
 * after each. */
static int strip_tiles(const lop_wino *p, int g)
{
    return g * p->th * p->period;
}

/* The images of a strip row from image b0 of m: the plan's group, or those left. */
static int group_at(const lop_wino *p, int m, int b0)
{
    return m - b0 < p->group ? m - b0 : p->group;
}

/* Where row i of image b's row of tiles ty starts in a strip row. */
static float *strip_at(const lop_wino *p, float *rows, int b, int ty, int i)
{
    return rows + (size_t)i * p->pitch + (size_t)(b * p->th + ty) * p->period * p->r;
}

/* Channels [c0, c1) of m images into V: the rows of each image channel's rows of
 * tiles are copied into a strip row (zero where they reach into the padding), then
 * transformed a strip row at a time. */
void lop_wino_input(const lop_wino *p, const float *x, int m, int c0, int c1, float *work,
                    float *v)
{
    const lop_wino_tiles *t = tiles_of(p);
    int alpha = p->r + 2;
    size_t cols = (size_t)m * p->tiles, step = slab(p->c * cols);
    memset(work, 0, lop_wino_work_floats(p) * sizeof *work);
    for (int ch = c0; ch < c1; ch++)
        for (int b0 = 0; b0 < m; b0 += p->group) {
            int g = group_at(p, m, b0);
            for (int b = 0; b < g; b++) {
                const float *src = x + ((size_t)(b0 + b) * p->c + ch) * p->h * p->w;
                for (int ty = 0; ty < p->th; ty++)
                    for (int i = 0; i < alpha; i++) {
                        int y = p->r * ty + i - p->ph;
                        if (y >= 0 && y < p->h)
                            copy_row(strip_at(p, work, b, ty, i) + p->pw,
                                     src + (size_t)y * p->w, p->w, 0);
                    }
            }
            float *out = v + (size_t)ch * cols + (size_t)b0 * p->tiles;
            for (int tv = 0, n = strip_tiles(p, g); tv < n; tv += VEC_LANES) {
                int first;
                unsigned real = real_lanes(p, tv, n, &first);
                t->input_vector(work + (size_t)p->r * tv, p->pitch, real, out + first,
                                step);
            }
        }
}

void lop_wino_products(const lop_wino *p, const float *u, const float *v, int m, int xi0,
                       int xi1, float *mm)
{
    int cols = m * p->tiles;
    size_t us = slab((size_t)p->o * p->c), vs = slab((size_t)p->c * cols);
    size_t ms = slab((size_t)p->o * cols);
    int small = lop_small_gemm_suits(p->o, cols, p->c);
    for (int xi = xi0; xi < xi1; xi++)
        if (small)
            lop_small_gemm(p->o, cols, p->c, u + xi * us, v + xi * vs, cols, mm + xi * ms,
                           cols);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->o, cols, p->c, 1.0f,
                        u + xi * us, p->c, v + xi * vs, cols, 0.0f, mm + xi * ms, cols);
}

/* Output channels [o0, o1) of m images: a strip row's outputs at a time into work,
 * then into y cropped to ho x wo, through the epilogue or added. */
void lop_wino_output(const lop_wino *p, const float *mm, int m, int o0, int o1,
                     const lop_epilogue *e, int accumulate, float *work, float *y)
{
    const lop_wino_tiles *t = tiles_of(p);
    int r = p->r;
    size_t cols = (size_t)m * p->tiles, step = slab(p->o * cols);
    for (int oc = o0; oc < o1; oc++)
        for (int b0 = 0; b0 < m; b0 += p->group) {
            int g = group_at(p, m, b0);
            const float *src = mm + (size_t)oc * cols + (size_t)b0 * p->tiles;
            for (int tv = 0, n = strip_tiles(p, g); tv < n; tv += VEC_LANES) {
                int first;
                unsigned real = real_lanes(p, tv, n, &first);
                t->output_vector(src + first, step, real, work + (size_t)r * tv, p->pitch);
            }
            row_epilogue re;
            if (e)
                re = row_epilogue_of(e, oc);
            for (int b = 0; b < g; b++) {
                float *dst = y + ((size_t)(b0 + b) * p->o + oc) * p->ho * p->wo;
                for (int ty = 0; ty < p->th; ty++)
                    for (int i = 0; i < r && r * ty + i < p->ho; i++) {
                        float *row = dst + (size_t)(r * ty + i) * p->wo;
                        if (e)
                            store_row(row, strip_at(p, work, b, ty, i),
                                      lop_epilogue_residual_at(e, row), p->wo, &re);
                        else
                            copy_row(row, strip_at(p, work, b, ty, i), p->wo, accumulate);
                    }
            }
        }
}

void lop_wino_chunk(const lop_wino *p, const float *u, const float *x, int m,
                    const lop_epilogue *e, int accumulate, float *scratch, float *y)
{
    float *v = lop_wino_v(p, scratch);
    float *mm = lop_wino_m(p, m, scratch);
    lop_wino_input(p, x, m, 0, p->c, scratch, v);
    lop_wino_products(p, u, v, m, 0, p->positions, mm);
    lop_wino_output(p, mm, m, 0, p->o, e, accumulate, scratch, y);
}

/* The plan of output channels [o0, o1) alone: the same input and tiles, o1 - o0
 * outputs. */
static lop_wino block_plan(const lop_wino *p, int o0, int o1)
{
    lop_wino b = *p;
    b.o = o1 - o0;
    return b;
}

size_t lop_wino_block_floats(const lop_wino *p, int outs)
{
    lop_wino b = block_plan(p, 0, outs);
    return lop_wino_work_floats(p) + lop_wino_weight_floats(&b) +
           (size_t)p->positions * slab((size_t)outs * p->tiles);
}

void lop_wino_block(const lop_wino *p, const float *w, const float *v, int o0, int o1,
                    const lop_epilogue *e, float *scratch, float *y)
{
    lop_wino b = block_plan(p, o0, o1);
    float *u = scratch + lop_wino_work_floats(p), *mm = u + lop_wino_weight_floats(&b);
    lop_wino_pack(&b, w + (size_t)o0 * p->c * 9, 0, 0, b.o, u);
    lop_wino_products(&b, u, v, 1, 0, p->positions, mm);
    /* the block's channels are channels 0.. of its plan: its epilogue starts at o0 */
    lop_epilogue shifted = *e;
    shifted.mul = e->mul ? e->mul + o0 : NULL;
    shifted.add = e->add ? e->add + o0 : NULL;
    lop_wino_output(&b, mm, 1, 0, b.o, &shifted, 0, scratch,
                    y + (size_t)o0 * p->ho * p->wo);
}

/* dM [positions][o][T] = A dY A^T per tile, dY's tile zero beyond the output's edges:
 * each image channel's rows of tiles are copied into a strip row of r rows (zero beyond
 * wo and ho), then transformed a strip row at a time. */
static void output_grad_transform(const lop_wino *p, const float *dy, int m, float *work,
                                  float *dm)
{
    const lop_wino_tiles *t = tiles_of(p);
    int r = p->r;
    size_t cols = (size_t)m * p->tiles, step = slab(p->o * cols);
    memset(work, 0, (size_t)r * p->pitch * sizeof *work);
    for (int oc = 0; oc < p->o; oc++)
        for (int b0 = 0; b0 < m; b0 += p->group) {
            int g = group_at(p, m, b0);
            for (int b = 0; b < g; b++) {
                const float *src = dy + ((size_t)(b0 + b) * p->o + oc) * p->ho * p->wo;
                for (int ty = 0; ty < p->th; ty++)
                    for (int i = 0; i < r && r * ty + i < p->ho; i++)
                        copy_row(strip_at(p, work, b, ty, i),
                                 src + (size_t)(r * ty + i) * p->wo, p->wo, 0);
            }
            float *out = dm + (size_t)oc * cols + (size_t)b0 * p->tiles;
            for (int tv = 0, n = strip_tiles(p, g); tv < n; tv += VEC_LANES) {
                int first;
                unsigned real = real_lanes(p, tv, n, &first);
                t->output_grad_vector(work + (size_t)r * tv, p->pitch, real, out + first,
                                      step);
            }
        }
}

void lop_wino_wgrad(const lop_wino *p, const float *x, const float *dy, int m,
                    float *scratch, float *dw)
{
    const lop_wino_tiles *t = tiles_of(p);
    int cols = m * p->tiles;
    size_t vs = slab((size_t)p->c * cols), ms = slab((size_t)p->o * cols);
    size_t pairs = (size_t)p->o * p->c, us = slab(pairs);
    float *v = lop_wino_v(p, scratch), *dm = lop_wino_m(p, m, scratch);
    float *du = dm + (size_t)p->positions * ms;
    lop_wino_input(p, x, m, 0, p->c, scratch, v);
    output_grad_transform(p, dy, m, scratch, dm);
    for (int xi = 0; xi < p->positions; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->o, p->c, cols, 1.0f,
                    dm + xi * ms, cols, v + xi * vs, cols, 0.0f, du + xi * us, p->c);
    /* dw += G^T dU G, dU [positions][o][c] */
    for (size_t k = 0; k < pairs; k += VEC_LANES)
        t->weight_grads(du + k, us, pairs - k < VEC_LANES ? (int)(pairs - k) : VEC_LANES,
                        dw + k * 9);
}
