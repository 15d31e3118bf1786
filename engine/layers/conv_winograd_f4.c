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
static inline void g_of(const float *s, float *t)
{
    float even = s[0] + s[2], far = s[0] / 24 + s[2] / 6;
    t[0] = s[0] / 4;
    t[1] = -(even + s[1]) / 6;
    t[2] = -(even - s[1]) / 6;
    t[3] = far + s[1] / 12;
    t[4] = far - s[1] / 12;
    t[5] = s[2];
}

static inline void bt_of(const float *s, float *t)
{
    float a = s[4] - 4 * s[2], b = s[3] - 4 * s[1];   /* rows 1 and 2 */
    float c = s[4] - s[2], d = 2 * (s[3] - s[1]);       /* rows 3 and 4 */
    t[0] = 4 * s[0] - 5 * s[2] + s[4];
    t[1] = a + b;
    t[2] = a - b;
    t[3] = c + d;
    t[4] = c - d;
    t[5] = 4 * s[1] - 5 * s[3] + s[5];
}

static inline void at_of(const float *s, float *t)
{
    float p1 = s[1] + s[2], m1 = s[1] - s[2], p2 = s[3] + s[4], m2 = s[3] - s[4];
    t[0] = s[0] + p1 + p2;
    t[1] = m1 + 2 * m2;
    t[2] = p1 + 4 * p2;
    t[3] = m1 + 8 * m2 + s[5];
}

static inline void a_of(const float *s, float *t)
{
    float even1 = s[0] + s[2], odd1 = s[1] + s[3];
    float even2 = s[0] + 4 * s[2], odd2 = 2 * s[1] + 8 * s[3];
    t[0] = s[0];
    t[1] = even1 + odd1;
    t[2] = even1 - odd1;
    t[3] = even2 + odd2;
    t[4] = even2 - odd2;
    t[5] = s[3];
}

static inline void gt_of(const float *s, float *t)
{
    float p1 = s[1] + s[2], m1 = s[2] - s[1], p2 = s[3] + s[4], m2 = s[3] - s[4];
    t[0] = s[0] / 4 - p1 / 6 + p2 / 24;
    t[1] = m1 / 6 + m2 / 12;
    t[2] = (p2 - p1) / 6 + s[5];
}

static void pack_kernel(const float *g, float *dst, size_t step)
{
    float rows[ALPHA][3];   /* G down each column of g */
    for (int j = 0; j < 3; j++) {
        float col[3] = {g[j], g[3 + j], g[6 + j]}, t[ALPHA];
        g_of(col, t);
        for (int i = 0; i < ALPHA; i++)
            rows[i][j] = t[i];
    }
    for (int i = 0; i < ALPHA; i++) {   /* then along each row */
        float t[ALPHA];
        g_of(rows[i], t);
        for (int j = 0; j < ALPHA; j++)
            dst[(size_t)(ALPHA * i + j) * step] = t[j];
    }
}

/* B^T down the six plane rows over the plane's width, then along each transformed
 * row, tile by tile, into six contiguous runs. */
static void input_row(const float *plane, int pw, int tw, float *rows, float *out,
                      size_t step)
{
    const float *restrict a0 = plane, *restrict a1 = a0 + pw, *restrict a2 = a1 + pw,
                         *restrict a3 = a2 + pw, *restrict a4 = a3 + pw, *restrict a5 = a4 + pw;
    float *restrict t0 = rows, *restrict t1 = t0 + pw, *restrict t2 = t1 + pw,
                    *restrict t3 = t2 + pw, *restrict t4 = t3 + pw, *restrict t5 = t4 + pw;
    for (int i = 0; i < pw; i++) {
        float a = a4[i] - 4 * a2[i], b = a3[i] - 4 * a1[i];
        float c = a4[i] - a2[i], d = 2 * (a3[i] - a1[i]);
        t0[i] = 4 * a0[i] - 5 * a2[i] + a4[i];
        t1[i] = a + b;
        t2[i] = a - b;
        t3[i] = c + d;
        t4[i] = c - d;
        t5[i] = 4 * a1[i] - 5 * a3[i] + a5[i];
    }
    for (int i = 0; i < ALPHA; i++) {
        const float *restrict a = rows + (size_t)i * pw;
        float *restrict o = out + (size_t)(ALPHA * i) * step;
        for (int tx = 0; tx < tw; tx++) {
            float t[ALPHA];
            bt_of(a + R * tx, t);
            for (int j = 0; j < ALPHA; j++)
                o[j * step + tx] = t[j];
        }
    }
}

static void output_row(const float *m, size_t step, int tw, float *rows)
{
    const float *restrict s = m;
    for (int tx = 0; tx < tw; tx++) {
        float down[R][ALPHA];   /* A^T down each column of the tile */
        for (int j = 0; j < ALPHA; j++) {
            float col[ALPHA], t[R];
            for (int i = 0; i < ALPHA; i++)
                col[i] = s[(size_t)(ALPHA * i + j) * step + tx];
            at_of(col, t);
            for (int i = 0; i < R; i++)
                down[i][j] = t[i];
        }
        for (int i = 0; i < R; i++)   /* then along each row */
            at_of(down[i], rows + (size_t)i * R * tw + R * tx);
    }
}

static void output_grad_row(const float *rows, int tw, float *out, size_t step)
{
    float *restrict o = out;
    for (int tx = 0; tx < tw; tx++) {
        float down[ALPHA][R];   /* A down each column of the tile */
        for (int j = 0; j < R; j++) {
            float col[R], t[ALPHA];
            for (int i = 0; i < R; i++)
                col[i] = rows[(size_t)i * R * tw + R * tx + j];
            a_of(col, t);
            for (int i = 0; i < ALPHA; i++)
                down[i][j] = t[i];
        }
        for (int i = 0; i < ALPHA; i++) {   /* then along each row */
            float t[ALPHA];
            a_of(down[i], t);
            for (int j = 0; j < ALPHA; j++)
                o[(size_t)(ALPHA * i + j) * step + tx] = t[j];
        }
    }
}

static void weight_grad(const float *du, size_t step, float *dw)
{
    float down[3][ALPHA];   /* G^T down each column of dU */
    for (int j = 0; j < ALPHA; j++) {
        float col[ALPHA], t[3];
        for (int i = 0; i < ALPHA; i++)
            col[i] = du[(size_t)(ALPHA * i + j) * step];
        gt_of(col, t);
        for (int i = 0; i < 3; i++)
            down[i][j] = t[i];
    }
    for (int i = 0; i < 3; i++) {   /* then along each row */
        float t[3];
        gt_of(down[i], t);
        for (int j = 0; j < 3; j++)
            dw[3 * i + j] += t[j];
    }
}

const lop_wino_tiles lop_wino_f4 = {pack_kernel, input_row, output_row, output_grad_row,
                                    weight_grad};
