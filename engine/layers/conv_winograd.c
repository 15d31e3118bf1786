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

#include "layers/conv_winograd_tiles.h"

/* Floats from one position's matrix to the next's: n and a cache line more, so that
 * the streams a transform reads or writes at once do not fall into the same cache
 * sets (n is often a power of two), and output_row's whole-vector reads past the last
 * tile stay inside the matrix's own slab. */
static size_t slab(size_t n)
{
    return n + 16;
}

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
    p->pitch = r * ((p->tw + VEC_LANES - 1) / VEC_LANES * VEC_LANES);
    p->plane_h = r * p->th + 2;
    p->plane_w = p->pitch + r;
}

size_t lop_wino_weight_floats(const lop_wino *p)
{
    return (size_t)p->positions * slab((size_t)p->o * p->c);
}

/* The input step's plane; the output steps use r rows of pitch floats of it. */
size_t lop_wino_work_floats(const lop_wino *p)
{
    return (size_t)p->plane_h * p->plane_w;
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
 * `positions` contiguous runs.  Kernel (oc, ic) is w[oc][ic] or, adjoint, the flipped
 * w[ic][oc]. */
void lop_wino_pack(const lop_wino *p, const float *w, int adjoint, int o0, int o1, float *u)
{
    const lop_wino_tiles *t = tiles_of(p);
    size_t step = slab((size_t)p->o * p->c);
    size_t so = adjoint ? 9 : (size_t)p->c * 9, si = adjoint ? (size_t)p->o * 9 : 9;
    for (int oc = o0; oc < o1; oc++)
        for (int ic = 0; ic < p->c; ic++) {
            const float *k = w + oc * so + ic * si;
            float g[9];   /* taps read one by one: gathered loads are slower here */
            for (int i = 0; i < 9; i++)
                g[i] = adjoint ? k[8 - i] : k[i];
            t->pack_kernel(g, u + (size_t)oc * p->c + ic, step);
        }
}

/* Channels [c0, c1) of m images into V: each channel of an image is copied into the
 * zero-padded plane, then transformed a row of tiles at a time. */
void lop_wino_input(const lop_wino *p, const float *x, int m, int c0, int c1, float *work,
                    float *v)
{
    const lop_wino_tiles *t = tiles_of(p);
    float *plane = work;
    int pw = p->plane_w;
    size_t cols = (size_t)m * p->tiles, step = slab(p->c * cols);
    memset(plane, 0, (size_t)p->plane_h * pw * sizeof *plane);
    for (int ch = c0; ch < c1; ch++)
        for (int b = 0; b < m; b++) {
            const float *src = x + ((size_t)b * p->c + ch) * p->h * p->w;
            for (int y = 0; y < p->h; y++)
                memcpy(plane + (size_t)(y + p->ph) * pw + p->pw, src + (size_t)y * p->w,
                       (size_t)p->w * sizeof *src);
            float *out = v + (size_t)ch * cols + (size_t)b * p->tiles;
            for (int ty = 0; ty < p->th; ty++)
                t->input_row(plane + (size_t)(p->r * ty) * pw, pw, p->tw,
                             out + (size_t)ty * p->tw, step);
        }
}

void lop_wino_products(const lop_wino *p, const float *u, const float *v, int m, int xi0,
                       int xi1, float *mm)
{
    int cols = m * p->tiles;
    size_t us = slab((size_t)p->o * p->c), vs = slab((size_t)p->c * cols);
    size_t ms = slab((size_t)p->o * cols);
    for (int xi = xi0; xi < xi1; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->o, cols, p->c, 1.0f,
                    u + xi * us, p->c, v + xi * vs, cols, 0.0f, mm + xi * ms, cols);
}

/* Output channels [o0, o1) of m images: each row of tiles' outputs into r rows of
 * pitch floats in work, then into y cropped to wo. */
void lop_wino_output(const lop_wino *p, const float *mm, int m, int o0, int o1,
                     const float *bias, int accumulate, float *work, float *y)
{
    const lop_wino_tiles *t = tiles_of(p);
    int r = p->r, tw = p->tw;
    size_t cols = (size_t)m * p->tiles, step = slab(p->o * cols);
    for (int oc = o0; oc < o1; oc++)
        for (int b = 0; b < m; b++) {
            float *dst = y + ((size_t)b * p->o + oc) * p->ho * p->wo;
            const float *src = mm + (size_t)oc * cols + (size_t)b * p->tiles;
            float add = bias ? bias[oc] : 0.0f;
            for (int ty = 0; ty < p->th; ty++) {
                t->output_row(src + (size_t)ty * tw, step, tw, work, p->pitch);
                for (int i = 0; i < r && r * ty + i < p->ho; i++) {
                    float *restrict d = dst + (size_t)(r * ty + i) * p->wo;
                    const float *restrict row = work + (size_t)i * p->pitch;
                    if (accumulate)
                        for (int k = 0; k < p->wo; k++)
                            d[k] += row[k];
                    else
                        for (int k = 0; k < p->wo; k++)
                            d[k] = row[k] + add;
                }
            }
        }
}

void lop_wino_chunk(const lop_wino *p, const float *u, const float *x, int m,
                    const float *bias, int accumulate, float *scratch, float *y)
{
    float *v = lop_wino_v(p, scratch);
    float *mm = lop_wino_m(p, m, scratch);
    lop_wino_input(p, x, m, 0, p->c, scratch, v);
    lop_wino_products(p, u, v, m, 0, p->positions, mm);
    lop_wino_output(p, mm, m, 0, p->o, bias, accumulate, scratch, y);
}

/* dM [positions][o][T] = A dY A^T per tile, dY's tile zero beyond the output's edges:
 * each row of tiles' r output rows are copied into work (pitch wide, zero beyond wo
 * and ho), then transformed into contiguous runs. */
static void output_grad_tiles(const lop_wino *p, const float *dy, int m, float *work,
                              float *dm)
{
    const lop_wino_tiles *t = tiles_of(p);
    int r = p->r, tw = p->tw;
    size_t cols = (size_t)m * p->tiles, step = slab(p->o * cols);
    memset(work, 0, (size_t)r * p->pitch * sizeof *work);
    for (int oc = 0; oc < p->o; oc++)
        for (int b = 0; b < m; b++) {
            const float *src = dy + ((size_t)b * p->o + oc) * p->ho * p->wo;
            float *out = dm + (size_t)oc * cols + (size_t)b * p->tiles;
            for (int ty = 0; ty < p->th; ty++) {
                for (int i = 0; i < r; i++) {
                    float *row = work + (size_t)i * p->pitch;
                    if (r * ty + i < p->ho)
                        memcpy(row, src + (size_t)(r * ty + i) * p->wo,
                               (size_t)p->wo * sizeof *row);
                    else
                        memset(row, 0, (size_t)p->wo * sizeof *row);
                }
                t->output_grad_row(work, p->pitch, tw, out + (size_t)ty * tw, step);
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
    output_grad_tiles(p, dy, m, scratch, dm);
    for (int xi = 0; xi < p->positions; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->o, p->c, cols, 1.0f,
                    dm + xi * ms, cols, v + xi * vs, cols, 0.0f, du + xi * us, p->c);
    for (size_t k = 0; k < pairs; k++)   /* dw += G^T dU G, dU [positions][o][c] */
        t->weight_grad(du + k, us, dw + k * 9);
}
