/*
 * conv_winograd_f2.c - the transforms of Winograd F(2x2,3x3) for conv_winograd.c: each
 * 2x2 output tile is y = A^T [(G g G^T) . (B^T d B)] A over its 4x4 input tile d, 16
 * multiplies per input and output channel pair instead of 36.  B^T and A have entries
 * 0 and +-1 and G entries 0, +-1/2 and 1, so the transforms are additions and halvings.
 */
#include "layers/conv_winograd_tiles.h"

static void pack_kernel(const float *g, float *dst, size_t step)
{
    float r[4][3];
    for (int j = 0; j < 3; j++) {
        r[0][j] = g[j];
        r[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        r[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        r[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        float *d = dst + (size_t)(4 * i) * step;
        d[0] = r[i][0];
        d[step] = 0.5f * (r[i][0] + r[i][1] + r[i][2]);
        d[2 * step] = 0.5f * (r[i][0] - r[i][1] + r[i][2]);
        d[3 * step] = r[i][2];
    }
}

/* The row transform once over the plane's width, then the column transform over the
 * row of tiles into four contiguous runs per transformed row. */
static void input_row(const float *plane, int pw, int tw, float *rows, float *out,
                      size_t step)
{
    const float *restrict r0 = plane, *restrict r1 = r0 + pw, *restrict r2 = r1 + pw,
                         *restrict r3 = r2 + pw;
    float *restrict t0 = rows, *restrict t1 = t0 + pw, *restrict t2 = t1 + pw,
                    *restrict t3 = t2 + pw;
    for (int i = 0; i < pw; i++) {
        t0[i] = r0[i] - r2[i];
        t1[i] = r1[i] + r2[i];
        t2[i] = r2[i] - r1[i];
        t3[i] = r1[i] - r3[i];
    }
    for (int i = 0; i < 4; i++) {
        const float *restrict a = rows + (size_t)i * pw;
        float *restrict o0 = out + (size_t)(4 * i) * step;
        float *restrict o1 = o0 + step, *restrict o2 = o1 + step, *restrict o3 = o2 + step;
        for (int tx = 0; tx < tw; tx++) {
            float a0 = a[2 * tx], a1 = a[2 * tx + 1], a2 = a[2 * tx + 2], a3 = a[2 * tx + 3];
            o0[tx] = a0 - a2;
            o1[tx] = a1 + a2;
            o2[tx] = a2 - a1;
            o3[tx] = a1 - a3;
        }
    }
}

static void output_row(const float *m, size_t step, int tw, float *rows)
{
    const float *restrict s = m;
    float *restrict y0 = rows, *restrict y1 = rows + 2 * tw;
    for (int tx = 0; tx < tw; tx++) {
        float r0[4], r1[4];
        for (int j = 0; j < 4; j++) {
            float m0 = s[(size_t)j * step + tx], m1 = s[(size_t)(4 + j) * step + tx];
            float m2 = s[(size_t)(8 + j) * step + tx], m3 = s[(size_t)(12 + j) * step + tx];
            r0[j] = m0 + m1 + m2;
            r1[j] = m1 - m2 - m3;
        }
        y0[2 * tx] = r0[0] + r0[1] + r0[2];
        y0[2 * tx + 1] = r0[1] - r0[2] - r0[3];
        y1[2 * tx] = r1[0] + r1[1] + r1[2];
        y1[2 * tx + 1] = r1[1] - r1[2] - r1[3];
    }
}

static void output_grad_row(const float *rows, int tw, float *out, size_t step)
{
    const float *restrict d0 = rows, *restrict d1 = rows + 2 * tw;
    float *restrict o = out;
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

static void weight_grad(const float *du, size_t step, float *dw)
{
    float s[3][4];
    for (int j = 0; j < 4; j++) {
        float x0 = du[j * step], x1 = du[(4 + j) * step];
        float x2 = du[(8 + j) * step], x3 = du[(12 + j) * step];
        s[0][j] = x0 + 0.5f * (x1 + x2);
        s[1][j] = 0.5f * (x1 - x2);
        s[2][j] = 0.5f * (x1 + x2) + x3;
    }
    for (int i = 0; i < 3; i++) {
        dw[3 * i] += s[i][0] + 0.5f * (s[i][1] + s[i][2]);
        dw[3 * i + 1] += 0.5f * (s[i][1] - s[i][2]);
        dw[3 * i + 2] += 0.5f * (s[i][1] + s[i][2]) + s[i][3];
    }
}

const lop_wino_tiles lop_wino_f2 = {pack_kernel, input_row, output_row, output_grad_row,
                                    weight_grad};
