/*
 * conv_winograd.c - 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2,3x3)
 * (Lavin and Gray 2015), the plan of NNPACK: each 2x2 output tile is
 * y = A^T [(G g G^T) . (B^T d B)] A over its 4x4 input tile d, 16 multiplies per input
 * and output channel pair instead of 36.  Summed over input channels, the 16
 * element-wise products become 16 independent matrix products (output channels x
 * input channels x tiles), which OpenBLAS runs near peak once a chunk of images gives
 * them enough tiles; the transforms around them are additions only.  The weight
 * gradient runs the same way backwards: dM = A dY A^T per tile, dU[xi] = dM[xi] V[xi]^T,
 * dW += G^T dU G.
 *
 * Rounding: B and A have entries 0 and +-1 and G entries 0, +-1/2 and 1, so every
 * transformed value is a sum of at most 4 (A, B: 3 nonzero per row) terms of sizes
 * bounded by the inputs'; tests/test_winograd.c states and checks the resulting
 * bound on the error against the exact convolution.
 */
#include <string.h>

#include <cblas.h>

#include "layers/conv_winograd.h"

enum { TILE = LOP_WINO_TILE };

/* Floats from one position's matrix to the next's: n and a cache line more, so that
 * the sixteen streams a transform reads or writes at once do not fall into the same
 * cache sets (n is often a power of two). */
static size_t slab(size_t n)
{
    return n + 16;
}

void lop_wino_plan(lop_wino *p, int c, int h, int w, int o, int ph, int pw)
{
    p->c = c;
    p->h = h;
    p->w = w;
    p->o = o;
    p->ph = ph;
    p->pw = pw;
    p->ho = h + 2 * ph - 2;
    p->wo = w + 2 * pw - 2;
    p->th = (p->ho + 1) / 2;
    p->tw = (p->wo + 1) / 2;
    p->tiles = p->th * p->tw;
    p->plane_h = 2 * p->th + 2;
    p->plane_w = 2 * p->tw + 2;
}

size_t lop_wino_weight_floats(const lop_wino *p)
{
    return TILE * slab((size_t)p->o * p->c);
}

/* The input step's plane and four rows of its row transform; the output steps use
 * 4 * tw floats of it. */
size_t lop_wino_work_floats(const lop_wino *p)
{
    return (size_t)(p->plane_h + 4) * p->plane_w;
}

size_t lop_wino_scratch_floats(const lop_wino *p, int m)
{
    size_t cols = (size_t)m * p->tiles;
    return lop_wino_work_floats(p) + TILE * (slab(p->c * cols) + slab(p->o * cols));
}

float *lop_wino_v(const lop_wino *p, float *scratch)
{
    return scratch + lop_wino_work_floats(p);
}

float *lop_wino_m(const lop_wino *p, int m, float *scratch)
{
    return lop_wino_v(p, scratch) + TILE * slab((size_t)p->c * m * p->tiles);
}

size_t lop_wino_wgrad_floats(const lop_wino *p, int m)
{
    return lop_wino_scratch_floats(p, m) + lop_wino_weight_floats(p);
}

/* U = G g G^T for the kernels of output channels [o0, o1), each row of them into
 * sixteen contiguous runs.  Kernel (oc, ic) is w[oc][ic] or, adjoint, the flipped
 * w[ic][oc]. */
void lop_wino_pack(const lop_wino *p, const float *w, int adjoint, int o0, int o1, float *u)
{
    size_t step = slab((size_t)p->o * p->c);
    size_t so = adjoint ? 9 : (size_t)p->c * 9, si = adjoint ? (size_t)p->o * 9 : 9;
    for (int oc = o0; oc < o1; oc++) {
        float *restrict dst = u + (size_t)oc * p->c;
        for (int ic = 0; ic < p->c; ic++) {
            const float *k = w + oc * so + ic * si;
            float g[9];   /* taps read one by one: gathered loads are slower here */
            if (adjoint) {
                g[0] = k[8], g[1] = k[7], g[2] = k[6], g[3] = k[5], g[4] = k[4];
                g[5] = k[3], g[6] = k[2], g[7] = k[1], g[8] = k[0];
            } else {
                memcpy(g, k, sizeof g);
            }
            float r[4][3];
            for (int j = 0; j < 3; j++) {
                r[0][j] = g[j];
                r[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                r[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                r[3][j] = g[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                float *d = dst + (size_t)(4 * i) * step + ic;
                d[0] = r[i][0];
                d[step] = 0.5f * (r[i][0] + r[i][1] + r[i][2]);
                d[2 * step] = 0.5f * (r[i][0] - r[i][1] + r[i][2]);
                d[3 * step] = r[i][2];
            }
        }
    }
}

/* Channels [c0, c1) of m images into V: each 4x4 tile d of the zero-padded plane
 * becomes B^T d B.  The row transform runs once per row of tiles over the plane's
 * width, the column transform over the row of tiles into four contiguous runs. */
void lop_wino_input(const lop_wino *p, const float *x, int m, int c0, int c1, float *work,
                    float *v)
{
    float *plane = work;
    int pw = p->plane_w, tw = p->tw;
    float *rows[4];
    rows[0] = plane + (size_t)p->plane_h * pw;
    for (int i = 1; i < 4; i++)
        rows[i] = rows[i - 1] + pw;
    size_t cols = (size_t)m * p->tiles, step = slab(p->c * cols);
    memset(plane, 0, (size_t)p->plane_h * pw * sizeof *plane);
    for (int ch = c0; ch < c1; ch++)
        for (int b = 0; b < m; b++) {
            const float *src = x + ((size_t)b * p->c + ch) * p->h * p->w;
            for (int y = 0; y < p->h; y++)
                memcpy(plane + (size_t)(y + p->ph) * pw + p->pw, src + (size_t)y * p->w,
                       (size_t)p->w * sizeof *src);
            float *out = v + (size_t)ch * cols + (size_t)b * p->tiles;
            for (int ty = 0; ty < p->th; ty++) {
                const float *restrict r0 = plane + (size_t)(2 * ty) * pw;
                const float *restrict r1 = r0 + pw, *restrict r2 = r1 + pw,
                                      *restrict r3 = r2 + pw;
                float *restrict t0 = rows[0], *restrict t1 = rows[1], *restrict t2 = rows[2],
                                *restrict t3 = rows[3];
                for (int i = 0; i < pw; i++) {
                    t0[i] = r0[i] - r2[i];
                    t1[i] = r1[i] + r2[i];
                    t2[i] = r2[i] - r1[i];
                    t3[i] = r1[i] - r3[i];
                }
                for (int i = 0; i < 4; i++) {
                    const float *restrict a = rows[i];
                    float *restrict o0 = out + (size_t)(4 * i) * step + (size_t)ty * tw;
                    float *restrict o1 = o0 + step, *restrict o2 = o1 + step,
                                    *restrict o3 = o2 + step;
                    for (int tx = 0; tx < tw; tx++) {
                        float a0 = a[2 * tx], a1 = a[2 * tx + 1], a2 = a[2 * tx + 2],
                              a3 = a[2 * tx + 3];
                        o0[tx] = a0 - a2;
                        o1[tx] = a1 + a2;
                        o2[tx] = a2 - a1;
                        o3[tx] = a1 - a3;
                    }
                }
            }
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

/* Output channels [o0, o1) of m images: each row of tiles' 2x2 outputs A^T M A into
 * two output rows of 2 * tw in work, then into y cropped to wo. */
void lop_wino_output(const lop_wino *p, const float *mm, int m, int o0, int o1,
                     const float *bias, int accumulate, float *work, float *y)
{
    int tw = p->tw;
    size_t cols = (size_t)m * p->tiles, step = slab(p->o * cols);
    float *restrict y0 = work, *restrict y1 = work + 2 * tw;
    for (int oc = o0; oc < o1; oc++)
        for (int b = 0; b < m; b++) {
            float *dst = y + ((size_t)b * p->o + oc) * p->ho * p->wo;
            const float *src = mm + (size_t)oc * cols + (size_t)b * p->tiles;
            float add = bias ? bias[oc] : 0.0f;
            for (int ty = 0; ty < p->th; ty++) {
                const float *restrict s = src + (size_t)ty * tw;
                for (int tx = 0; tx < tw; tx++) {
                    float r0[4], r1[4];
                    for (int j = 0; j < 4; j++) {
                        float m0 = s[(size_t)j * step + tx], m1 = s[(size_t)(4 + j) * step + tx];
                        float m2 = s[(size_t)(8 + j) * step + tx];
                        float m3 = s[(size_t)(12 + j) * step + tx];
                        r0[j] = m0 + m1 + m2;
                        r1[j] = m1 - m2 - m3;
                    }
                    y0[2 * tx] = r0[0] + r0[1] + r0[2];
                    y0[2 * tx + 1] = r0[1] - r0[2] - r0[3];
                    y1[2 * tx] = r1[0] + r1[1] + r1[2];
                    y1[2 * tx + 1] = r1[1] - r1[2] - r1[3];
                }
                for (int i = 0; i < 2 && 2 * ty + i < p->ho; i++) {
                    float *restrict d = dst + (size_t)(2 * ty + i) * p->wo;
                    const float *restrict r = i ? y1 : y0;
                    if (accumulate)
                        for (int k = 0; k < p->wo; k++)
                            d[k] += r[k];
                    else
                        for (int k = 0; k < p->wo; k++)
                            d[k] = r[k] + add;
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
    lop_wino_products(p, u, v, m, 0, TILE, mm);
    lop_wino_output(p, mm, m, 0, p->o, bias, accumulate, scratch, y);
}

/* dM [16][o][T] = A dY A^T per tile, dY's 2x2 tile zero beyond the output's edges:
 * each row of tiles' two output rows are copied into work (2 * tw wide, zero-filled
 * beyond wo and ho), then transformed into sixteen contiguous runs. */
static void output_grad_tiles(const lop_wino *p, const float *dy, int m, float *work,
                              float *dm)
{
    int tw = p->tw;
    size_t cols = (size_t)m * p->tiles, step = slab(p->o * cols);
    float *restrict d0 = work, *restrict d1 = work + 2 * tw;
    memset(work, 0, (size_t)4 * tw * sizeof *work);
    for (int oc = 0; oc < p->o; oc++)
        for (int b = 0; b < m; b++) {
            const float *src = dy + ((size_t)b * p->o + oc) * p->ho * p->wo;
            float *out = dm + (size_t)oc * cols + (size_t)b * p->tiles;
            for (int ty = 0; ty < p->th; ty++) {
                memcpy(d0, src + (size_t)(2 * ty) * p->wo, (size_t)p->wo * sizeof *d0);
                if (2 * ty + 1 < p->ho)
                    memcpy(d1, src + (size_t)(2 * ty + 1) * p->wo, (size_t)p->wo * sizeof *d1);
                else
                    memset(d1, 0, (size_t)p->wo * sizeof *d1);
                float *restrict o = out + (size_t)ty * tw;
                for (int tx = 0; tx < tw; tx++) {
                    float a0 = d0[2 * tx], a1 = d0[2 * tx + 1];
                    float b0 = d1[2 * tx], b1 = d1[2 * tx + 1];
                    /* A d: rows d0, d0 + d1, d0 - d1, -d1; then the same on columns. */
                    float e[4][2] = {{a0, a1}, {a0 + b0, a1 + b1}, {a0 - b0, a1 - b1}, {-b0, -b1}};
                    for (int i = 0; i < 4; i++) {
                        o[(size_t)(4 * i) * step + tx] = e[i][0];
                        o[(size_t)(4 * i + 1) * step + tx] = e[i][0] + e[i][1];
                        o[(size_t)(4 * i + 2) * step + tx] = e[i][0] - e[i][1];
                        o[(size_t)(4 * i + 3) * step + tx] = -e[i][1];
                    }
                }
            }
        }
}

/* dw [o][c][3][3] += G^T dU G for every channel pair, dU [16][o][c]. */
static void add_weight_grads(const lop_wino *p, const float *du, float *dw)
{
    size_t pairs = (size_t)p->o * p->c, step = slab(pairs);
    for (size_t k = 0; k < pairs; k++) {
        const float *x = du + k;
        float s[3][4];
        for (int j = 0; j < 4; j++) {
            float x0 = x[j * step], x1 = x[(4 + j) * step];
            float x2 = x[(8 + j) * step], x3 = x[(12 + j) * step];
            s[0][j] = x0 + 0.5f * (x1 + x2);
            s[1][j] = 0.5f * (x1 - x2);
            s[2][j] = 0.5f * (x1 + x2) + x3;
        }
        float *d = dw + k * 9;
        for (int i = 0; i < 3; i++) {
            d[3 * i] += s[i][0] + 0.5f * (s[i][1] + s[i][2]);
            d[3 * i + 1] += 0.5f * (s[i][1] - s[i][2]);
            d[3 * i + 2] += 0.5f * (s[i][1] + s[i][2]) + s[i][3];
        }
    }
}

void lop_wino_wgrad(const lop_wino *p, const float *x, const float *dy, int m,
                    float *scratch, float *dw)
{
    int cols = m * p->tiles;
    size_t vs = slab((size_t)p->c * cols), ms = slab((size_t)p->o * cols);
    size_t us = slab((size_t)p->o * p->c);
    float *v = lop_wino_v(p, scratch), *dm = lop_wino_m(p, m, scratch);
    float *du = dm + TILE * ms;
    lop_wino_input(p, x, m, 0, p->c, scratch, v);
    output_grad_tiles(p, dy, m, scratch, dm);
    for (int xi = 0; xi < TILE; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->o, p->c, cols, 1.0f,
                    dm + xi * ms, cols, v + xi * vs, cols, 0.0f, du + xi * us, p->c);
    add_weight_grads(p, du, dw);
}
