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
    return (size_t)TILE * p->o * p->c;
}

/* The plane, then four rows of the row transform of one row of tiles. */
size_t lop_wino_plane_floats(const lop_wino *p)
{
    return (size_t)(p->plane_h + 4) * p->plane_w;
}

size_t lop_wino_scratch_floats(const lop_wino *p, int m)
{
    size_t cols = (size_t)m * p->tiles;
    return lop_wino_plane_floats(p) + (size_t)TILE * (p->c + p->o) * cols;
}

size_t lop_wino_wgrad_floats(const lop_wino *p, int m)
{
    return lop_wino_scratch_floats(p, m) + lop_wino_weight_floats(p);
}

/* u[16] (stride `step`) = G g G^T for one 3x3 kernel g[3][3]. */
static void weight_tile(const float g[9], float *u, size_t step)
{
    float r[4][3];
    for (int j = 0; j < 3; j++) {
        r[0][j] = g[j];
        r[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        r[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        r[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        u[(size_t)(4 * i) * step] = r[i][0];
        u[(size_t)(4 * i + 1) * step] = 0.5f * (r[i][0] + r[i][1] + r[i][2]);
        u[(size_t)(4 * i + 2) * step] = 0.5f * (r[i][0] - r[i][1] + r[i][2]);
        u[(size_t)(4 * i + 3) * step] = r[i][2];
    }
}

void lop_wino_pack(const lop_wino *p, const float *w, int adjoint, float *u)
{
    size_t step = (size_t)p->o * p->c;
    for (int oc = 0; oc < p->o; oc++)
        for (int ic = 0; ic < p->c; ic++) {
            float g[9];
            if (adjoint) {
                const float *k = w + ((size_t)ic * p->o + oc) * 9;
                for (int i = 0; i < 9; i++)
                    g[i] = k[8 - i];
            } else {
                memcpy(g, w + ((size_t)oc * p->c + ic) * 9, sizeof g);
            }
            weight_tile(g, u + (size_t)oc * p->c + ic, step);
        }
}

/* Channel ch of m images into V: each 4x4 tile d of the zero-padded plane becomes
 * B^T d B, the row transform done once per row of tiles over the plane's width. */
void lop_wino_input(const lop_wino *p, const float *x, int m, int c0, int c1, float *plane,
                    float *v)
{
    int pw = p->plane_w;
    float *t0 = plane + (size_t)p->plane_h * pw, *t1 = t0 + pw, *t2 = t1 + pw, *t3 = t2 + pw;
    size_t cols = (size_t)m * p->tiles, step = (size_t)p->c * cols;
    memset(plane, 0, (size_t)p->plane_h * pw * sizeof *plane);
    for (int ch = c0; ch < c1; ch++)
        for (int b = 0; b < m; b++) {
            const float *src = x + ((size_t)b * p->c + ch) * p->h * p->w;
            for (int y = 0; y < p->h; y++)
                memcpy(plane + (size_t)(y + p->ph) * pw + p->pw, src + (size_t)y * p->w,
                       (size_t)p->w * sizeof *src);
            float *out = v + (size_t)ch * cols + (size_t)b * p->tiles;
            for (int ty = 0; ty < p->th; ty++) {
                const float *r0 = plane + (size_t)(2 * ty) * pw, *r1 = r0 + pw, *r2 = r1 + pw,
                            *r3 = r2 + pw;
                for (int i = 0; i < pw; i++) {
                    t0[i] = r0[i] - r2[i];
                    t1[i] = r1[i] + r2[i];
                    t2[i] = r2[i] - r1[i];
                    t3[i] = r1[i] - r3[i];
                }
                const float *rows[4] = {t0, t1, t2, t3};
                for (int tx = 0; tx < p->tw; tx++) {
                    size_t t = (size_t)ty * p->tw + tx;
                    for (int i = 0; i < 4; i++) {
                        const float *a = rows[i] + 2 * tx;
                        float *o = out + (size_t)(4 * i) * step + t;
                        o[0] = a[0] - a[2];
                        o[step] = a[1] + a[2];
                        o[2 * step] = a[2] - a[1];
                        o[3 * step] = a[1] - a[3];
                    }
                }
            }
        }
}

void lop_wino_products(const lop_wino *p, const float *u, const float *v, int m, int xi0,
                       int xi1, float *mm)
{
    int cols = m * p->tiles;
    for (int xi = xi0; xi < xi1; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->o, cols, p->c, 1.0f,
                    u + (size_t)xi * p->o * p->c, p->c, v + (size_t)xi * p->c * cols, cols,
                    0.0f, mm + (size_t)xi * p->o * cols, cols);
}

/* Output channels [o0, o1) of m images: each tile's 2x2 outputs A^T M A, cropped at
 * the odd edges. */
void lop_wino_output(const lop_wino *p, const float *mm, int m, int o0, int o1,
                     const float *bias, int accumulate, float *y)
{
    size_t cols = (size_t)m * p->tiles, step = (size_t)p->o * cols;
    for (int oc = o0; oc < o1; oc++)
        for (int b = 0; b < m; b++) {
            float *dst = y + ((size_t)b * p->o + oc) * p->ho * p->wo;
            const float *src = mm + (size_t)oc * cols + (size_t)b * p->tiles;
            float add = bias ? bias[oc] : 0.0f;
            for (int ty = 0; ty < p->th; ty++)
                for (int tx = 0; tx < p->tw; tx++) {
                    const float *s = src + (size_t)ty * p->tw + tx;
                    float r[2][4];
                    for (int j = 0; j < 4; j++) {
                        float m0 = s[(size_t)j * step], m1 = s[(size_t)(4 + j) * step];
                        float m2 = s[(size_t)(8 + j) * step], m3 = s[(size_t)(12 + j) * step];
                        r[0][j] = m0 + m1 + m2;
                        r[1][j] = m1 - m2 - m3;
                    }
                    int oy = 2 * ty, ox = 2 * tx;
                    int ny = oy + 1 < p->ho ? 2 : 1, nx = ox + 1 < p->wo ? 2 : 1;
                    for (int i = 0; i < ny; i++) {
                        float out[2] = {r[i][0] + r[i][1] + r[i][2], r[i][1] - r[i][2] - r[i][3]};
                        float *d = dst + (size_t)(oy + i) * p->wo + ox;
                        for (int k = 0; k < nx; k++)
                            d[k] = accumulate ? d[k] + out[k] : out[k] + add;
                    }
                }
        }
}

void lop_wino_chunk(const lop_wino *p, const float *u, const float *x, int m,
                    const float *bias, int accumulate, float *scratch, float *y)
{
    float *v = scratch + lop_wino_plane_floats(p);
    float *mm = v + (size_t)TILE * p->c * m * p->tiles;
    lop_wino_input(p, x, m, 0, p->c, scratch, v);
    lop_wino_products(p, u, v, m, 0, TILE, mm);
    lop_wino_output(p, mm, m, 0, p->o, bias, accumulate, y);
}

/* dM [16][o][T] = A dY A^T per tile, dY's 2x2 tile zero beyond the output's edges. */
static void output_grad_tiles(const lop_wino *p, const float *dy, int m, float *dm)
{
    size_t cols = (size_t)m * p->tiles, step = (size_t)p->o * cols;
    for (int oc = 0; oc < p->o; oc++)
        for (int b = 0; b < m; b++) {
            const float *src = dy + ((size_t)b * p->o + oc) * p->ho * p->wo;
            float *out = dm + (size_t)oc * cols + (size_t)b * p->tiles;
            for (int ty = 0; ty < p->th; ty++)
                for (int tx = 0; tx < p->tw; tx++) {
                    int oy = 2 * ty, ox = 2 * tx;
                    int ny = oy + 1 < p->ho ? 2 : 1, nx = ox + 1 < p->wo ? 2 : 1;
                    float d[2][2] = {{0, 0}, {0, 0}};
                    for (int i = 0; i < ny; i++)
                        for (int k = 0; k < nx; k++)
                            d[i][k] = src[(size_t)(oy + i) * p->wo + ox + k];
                    float e[4][2];   /* A d: rows d0, d0 + d1, d0 - d1, -d1 */
                    for (int k = 0; k < 2; k++) {
                        e[0][k] = d[0][k];
                        e[1][k] = d[0][k] + d[1][k];
                        e[2][k] = d[0][k] - d[1][k];
                        e[3][k] = -d[1][k];
                    }
                    float *o = out + (size_t)ty * p->tw + tx;
                    for (int i = 0; i < 4; i++) {
                        o[(size_t)(4 * i) * step] = e[i][0];
                        o[(size_t)(4 * i + 1) * step] = e[i][0] + e[i][1];
                        o[(size_t)(4 * i + 2) * step] = e[i][0] - e[i][1];
                        o[(size_t)(4 * i + 3) * step] = -e[i][1];
                    }
                }
        }
}

/* dw [o][c][3][3] += G^T dU G for every channel pair, dU [16][o][c]. */
static void add_weight_grads(const lop_wino *p, const float *du, float *dw)
{
    size_t step = (size_t)p->o * p->c;
    for (size_t k = 0; k < step; k++) {
        float s[3][4];
        for (int j = 0; j < 4; j++) {
            float x0 = du[(size_t)j * step + k], x1 = du[(size_t)(4 + j) * step + k];
            float x2 = du[(size_t)(8 + j) * step + k], x3 = du[(size_t)(12 + j) * step + k];
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
    float *v = scratch + lop_wino_plane_floats(p);
    float *dm = v + (size_t)TILE * p->c * cols;
    float *du = dm + (size_t)TILE * p->o * cols;
    lop_wino_input(p, x, m, 0, p->c, scratch, v);
    output_grad_tiles(p, dy, m, dm);
    for (int xi = 0; xi < TILE; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->o, p->c, cols, 1.0f,
                    dm + (size_t)xi * p->o * cols, cols, v + (size_t)xi * p->c * cols, cols,
                    0.0f, du + (size_t)xi * p->o * p->c, p->c);
    add_weight_grads(p, du, dw);
}
