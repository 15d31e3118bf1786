/*
 * conv_stencil.c - stride-1 or stride-2 ungrouped convolution straight from a
 * zero-padded copy of each image, without im2col.  im2col + sgemm spends most of a
 * thin layer's time copying: the unfolded columns are written once and packed once
 * more by sgemm, and with few output channels that copying is shared by few rows of
 * products.  Here a block of STENCIL_OUT output channels x STENCIL_SPAN output
 * positions stays in vector registers (a few channels at a time where registers are
 * few) while every input channel and kernel tap adds into it.  The padded image is
 * flattened with its padded width, so for every tap, output position i reads input
 * i + (tap row * padded width + tap column): one contiguous vector load.  The
 * positions that fall in the padding columns are computed and dropped.
 *
 * Stride 2 becomes the same stencil over the padded image split by the parity of its
 * rows and columns into four phase images half as wide: output (y, x) under tap
 * (i, j) reads input (2y + i, 2x + j), which is phase (i % 2, j % 2) at (y + i / 2,
 * x + j / 2) - again one contiguous load per tap, from the phase's flattened rows,
 * with no taps multiplied for nothing (ResNet stems' 7x7 convolutions of 3 channels,
 * a pruned ResNet's downsampling layers).
 *
 * The same kernel gives a layer's input gradient: it is the stride-1 convolution of
 * the output gradient, padded by kernel - 1 - pad, with the weights' two channel
 * axes swapped and their taps rotated by 180 degrees (lop_stencil_pack's adjoint).
 * The weight gradient (lop_stencil_wgrad, at the end) reads the same padded layout.
 */
#include <string.h>

#include "internal.h"
#include "layers/conv_stencil.h"
#include "layers/vec.h"

/* The two inner kernels are left out of sanitizer builds' instrumentation, like BLAS:
 * checking each of their vector loads made the sanitized test suite 4-5x slower.
 * Their reads stay inside the buffers lop_stencil_plan sizes (rows padded, read
 * slack at the end); test_conv ran clean under ASan with them instrumented. */
#define UNINSTRUMENTED __attribute__((no_sanitize("address", "undefined")))

enum {
    /* Vectors of positions per block, and the block's output channels summed at once
     * over them: 8 x 3 sums of 16 lanes in 24 of AVX-512's 32 registers (ResNet-18's
     * 7x7 stem 3% faster than with 2 vectors).  AVX2 has 16 registers: 8 x 2 sums
     * spilled, 4 x 2 took as long; 4 x 3 (two passes over the block's inputs) made
     * the stride-2 layers faster on Zen 1 (one thread, batch 64, three runs: 16 -> 32
     * on 32x32 5.35-6.16 -> 5.22-5.38 ms, 32 -> 64 on 16x16 5.79-6.40 -> 4.98-5.14;
     * ResNet-18's stem at batch 1 4.06-4.39 -> 3.87-3.88 on two threads). */
    STENCIL_VECS = 3,
    STENCIL_SPAN = STENCIL_VECS * VEC_LANES,          /* positions per block */
    PASS_ROWS = VEC_LANES == 16 ? STENCIL_OUT : 4,
};

/* The offset of the last kernel tap in the flattened (phase) image: how far past an
 * output position its loads read. */
static size_t tap_reach(const lop_stencil *s)
{
    return (size_t)((s->kh - 1) / s->stride) * s->pitch + (size_t)((s->kw - 1) / s->stride);
}

void lop_stencil_plan(lop_stencil *s, int c, int h, int w, int o, int kh, int kw, int ph,
                      int pw, int stride)
{
    s->c = c;
    s->h = h;
    s->w = w;
    s->o = o;
    s->kh = kh;
    s->kw = kw;
    s->ph = ph;
    s->pw = pw;
    s->stride = stride;
    s->hp = h + 2 * ph;
    s->wp = w + 2 * pw;
    s->ho = (s->hp - kh) / stride + 1;
    s->wo = (s->wp - kw) / stride + 1;
    s->pitch = (s->wp + stride - 1) / stride;
    int used = (s->ho - 1) * s->pitch + s->wo;   /* last output position + 1 */
    s->span = (used + STENCIL_SPAN - 1) / STENCIL_SPAN * STENCIL_SPAN;
    /* A block's loads reach span - 1 + the last tap's offset; a phase holds its share
     * of the padded image's rows, which the loads of real outputs stay within. */
    size_t rows = (size_t)(s->hp + stride - 1) / stride * s->pitch;
    s->phase = (size_t)s->span + tap_reach(s);
    if (s->phase < rows)
        s->phase = rows;
    s->frame = (size_t)stride * stride * s->phase;
    s->blocks = (o + STENCIL_OUT - 1) / STENCIL_OUT;
}

size_t lop_stencil_weight_floats(const lop_stencil *s)
{
    return (size_t)s->blocks * s->c * s->kh * s->kw * STENCIL_OUT;
}

size_t lop_stencil_scratch_floats(const lop_stencil *s)
{
    return (size_t)s->c * s->frame + (size_t)STENCIL_OUT * s->span;
}

/* packed[block][c][tap][r] = weight of output channel block * STENCIL_OUT + r (zero
 * past the last one).  Forward: w is [o][c][kh][kw].  Adjoint: w is the forward
 * layer's [c][o][kh][kw] (its outputs are this plan's inputs) and tap (i, j) reads
 * its tap (kh - 1 - i, kw - 1 - j). */
void lop_stencil_pack(const lop_stencil *s, const float *w, int adjoint, float *packed)
{
    int taps = s->kh * s->kw;
    memset(packed, 0, lop_stencil_weight_floats(s) * sizeof *packed);
    for (int oc = 0; oc < s->o; oc++)
        for (int ic = 0; ic < s->c; ic++)
            for (int t = 0; t < taps; t++) {
                size_t from = adjoint ? ((size_t)ic * s->o + oc) * taps + (taps - 1 - t)
                                      : ((size_t)oc * s->c + ic) * taps + t;
                packed[(((size_t)(oc / STENCIL_OUT) * s->c + ic) * taps + t) * STENCIL_OUT +
                       oc % STENCIL_OUT] = w[from];
            }
}

/* One image [c][h][w] copied into the interior of zeroed padded images, rows wp apart:
 * channel ic's at xp + ic * channel_stride. */
static void copy_padded(const lop_stencil *s, const float *x, size_t channel_stride,
                        float *xp)
{
    for (int ic = 0; ic < s->c; ic++)
        for (int y = 0; y < s->h; y++)
            memcpy(xp + ic * channel_stride + (size_t)(y + s->ph) * s->wp + s->pw,
                   x + ((size_t)ic * s->h + y) * s->w, (size_t)s->w * sizeof *xp);
}

/* The same for stride 2: padded row y and column x go to phase (y % 2, x % 2) at
 * (y / 2, x / 2), the phases `phase` floats apart in the order (0,0) (0,1) (1,0)
 * (1,1), rows pitch apart; channel ic's at xp + ic * frame.  A row's even and odd
 * columns are split a pair of vectors at a time (element by element this copy took 30%
 * of a 16 -> 32 stride-2 layer's pass at batch 64). */
static void copy_phases(const lop_stencil *s, const float *x, float *xp)
{
    /* source column i lands in phase column (i + pw) / 2: the even ones in phase
     * pw % 2 from pw / 2 on, the odd ones in the other from (pw + 1) / 2 on */
    int evens = (s->w + 1) / 2, odds = s->w / 2;
    size_t even_at = (size_t)(s->pw % 2) * s->phase + (size_t)s->pw / 2;
    size_t odd_at = (size_t)(1 - s->pw % 2) * s->phase + (size_t)(s->pw + 1) / 2;
    for (int ic = 0; ic < s->c; ic++)
        for (int y = 0; y < s->h; y++) {
            int yp = y + s->ph;
            float *row = xp + ic * s->frame + (size_t)(yp % 2) * 2 * s->phase +
                         (size_t)(yp / 2) * s->pitch;
            const float *src = x + ((size_t)ic * s->h + y) * s->w;
            for (int k = 0; k < evens; k += VEC_LANES) {
                int left = s->w - 2 * k;   /* source floats from column 2k on */
                vec even, odd;
                vec_load_evens_odds(src + 2 * k, left < 2 * VEC_LANES ? left : 2 * VEC_LANES,
                                    &even, &odd);
                vec_store_first(row + even_at + k, even,
                                evens - k < VEC_LANES ? evens - k : VEC_LANES);
                if (odds > k)
                    vec_store_first(row + odd_at + k, odd,
                                    odds - k < VEC_LANES ? odds - k : VEC_LANES);
            }
        }
}

/* One pass over a block: out[r][p + i] for i < STENCIL_SPAN, r < rows <= PASS_ROWS,
 * the weights of output channel r at wb[r] of each tap's STENCIL_OUT.  Inlined with
 * constant `rows` and `stride` (block_kernel), the loops over r unroll completely and
 * tap (i, j)'s offset costs a shift and a mask. */
UNINSTRUMENTED __attribute__((always_inline))
static inline void block_rows(const lop_stencil *s, const float *wb, const float *xp, int p,
                              float *out, int rows, int stride)
{
    vec acc[PASS_ROWS][STENCIL_VECS] = {{{0}}};
    const float *wt = wb;   /* the weights of (ic, i, j), in loop order */
    int odd = stride - 1;   /* phase bit mask and shift: 0 at stride 1 */
    for (int ic = 0; ic < s->c; ic++)
        for (int i = 0; i < s->kh; i++) {
            const float *xrow = xp + ic * s->frame + (size_t)(i & odd) * 2 * s->phase +
                                (size_t)(i >> odd) * s->pitch + p;
            for (int j = 0; j < s->kw; j++, wt += STENCIL_OUT) {
                const float *at = xrow + (size_t)(j & odd) * s->phase + (j >> odd);
                vec in[STENCIL_VECS];
#pragma GCC unroll 4
                for (int v = 0; v < STENCIL_VECS; v++)
                    in[v] = vec_load(at + v * VEC_LANES);
#pragma GCC unroll 16
                for (int r = 0; r < rows; r++) {
#pragma GCC unroll 4
                    for (int v = 0; v < STENCIL_VECS; v++)
                        acc[r][v] += wt[r] * in[v];
                }
            }
        }
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < STENCIL_VECS; v++)
            vec_store(out + (size_t)r * s->span + p + v * VEC_LANES, acc[r][v]);
}

/* A count of rows no larger than a pass's (the cases of BLOCK_CASES past PASS_ROWS are
 * never taken). */
#define PASS_OF(rows) ((rows) < PASS_ROWS ? (rows) : PASS_ROWS)

/* block_rows compiled for each row count and stride: a last pass of fewer than
 * PASS_ROWS channels multiplies only its own (pruned layers' widths are rarely
 * multiples of 8: 13 outputs ran as 16, 9 as 16). */
#define BLOCK_CASES(stride)                                                            \
    switch (rows) {                                                                    \
    case 1: block_rows(s, wb, xp, p, out, 1, stride); break;                           \
    case 2: block_rows(s, wb, xp, p, out, 2, stride); break;                           \
    case 3: block_rows(s, wb, xp, p, out, 3, stride); break;                           \
    case 4: block_rows(s, wb, xp, p, out, PASS_OF(4), stride); break;                  \
    case 5: block_rows(s, wb, xp, p, out, PASS_OF(5), stride); break;                  \
    case 6: block_rows(s, wb, xp, p, out, PASS_OF(6), stride); break;                  \
    case 7: block_rows(s, wb, xp, p, out, PASS_OF(7), stride); break;                  \
    default: block_rows(s, wb, xp, p, out, PASS_ROWS, stride); break;                  \
    }

/* A block's `count` output channels, PASS_ROWS at a time. */
UNINSTRUMENTED
static void block_kernel(const lop_stencil *s, const float *block, const float *xp, int p,
                         float *block_out, int count)
{
    for (int r0 = 0; r0 < count; r0 += PASS_ROWS) {
        int rows = count - r0 < PASS_ROWS ? count - r0 : PASS_ROWS;
        const float *wb = block + r0;
        float *out = block_out + (size_t)r0 * s->span;
        if (s->stride == 1) {
            BLOCK_CASES(1)
        } else {
            BLOCK_CASES(2)
        }
    }
}

void lop_stencil_image(const lop_stencil *s, const float *packed, const float *x,
                       const float *bias, int block_first, int block_last, int accumulate,
                       float *scratch, float *y)
{
    float *xp = scratch, *out = scratch + (size_t)s->c * s->frame;
    memset(xp, 0, (size_t)s->c * s->frame * sizeof *xp);
    if (s->stride == 1)
        copy_padded(s, x, s->frame, xp);
    else
        copy_phases(s, x, xp);
    size_t per_block = (size_t)s->c * s->kh * s->kw * STENCIL_OUT;
    for (int b = block_first; b < block_last; b++) {
        int first = b * STENCIL_OUT;
        int count = s->o - first < STENCIL_OUT ? s->o - first : STENCIL_OUT;
        for (int p = 0; p < s->span; p += STENCIL_SPAN)
            block_kernel(s, packed + (size_t)b * per_block, xp, p, out, count);
        for (int r = 0; r < count; r++) {
            float add = bias ? bias[first + r] : 0.0f;
            for (int oy = 0; oy < s->ho; oy++) {
                const float *restrict from = out + (size_t)r * s->span + (size_t)oy * s->pitch;
                float *restrict to = y + ((size_t)(first + r) * s->ho + oy) * s->wo;
                if (accumulate)
                    for (int ox = 0; ox < s->wo; ox++)
                        to[ox] += from[ox];
                else
                    for (int ox = 0; ox < s->wo; ox++)
                        to[ox] = from[ox] + add;
            }
        }
    }
}

/* The weight gradient, dW[o][c][i][j] = sum over images and output positions of
 * dY[o][pos] * X_padded[c][pos + (i, j)], lays m images out one after another: each
 * takes `frame` positions of a channel's row, its padded image first, zeros after.
 * The output gradient goes to the same positions (zero in the padding columns and
 * past the image), so one long dot product per (o, c, tap) covers all m images, and
 * the input under tap (i, j) is the padded row read from offset i * wp + j. */
enum {
    WGRAD_OUT = 4,            /* output channels per block */
    WGRAD_TAPS = 4,           /* (input channel, tap) pairs per block */
};

/* Positions of m images, rounded up to whole vectors. */
static size_t wgrad_positions(const lop_stencil *s, int m)
{
    size_t n = (size_t)m * s->frame;
    return (n + VEC_LANES - 1) / VEC_LANES * VEC_LANES;
}

/* Floats per input channel: the positions and what the last tap reads past them. */
static size_t wgrad_input_row(const lop_stencil *s, int m)
{
    return wgrad_positions(s, m) + tap_reach(s);
}

size_t lop_stencil_wgrad_floats(const lop_stencil *s, int m)
{
    return (size_t)s->c * wgrad_input_row(s, m) + (size_t)s->o * wgrad_positions(s, m);
}

/* sums[r][t] = dot(dy[r], x[t]) over n positions (a multiple of the vector width). */
UNINSTRUMENTED
static void wgrad_block(const float *const dy[WGRAD_OUT], const float *const x[WGRAD_TAPS],
                        size_t n, float sums[WGRAD_OUT][WGRAD_TAPS])
{
    vec acc[WGRAD_OUT][WGRAD_TAPS] = {{{0}}};
    for (size_t p = 0; p < n; p += VEC_LANES) {
        vec d[WGRAD_OUT], in[WGRAD_TAPS];
#pragma GCC unroll 16
        for (int r = 0; r < WGRAD_OUT; r++)
            d[r] = vec_load(dy[r] + p);
#pragma GCC unroll 16
        for (int t = 0; t < WGRAD_TAPS; t++)
            in[t] = vec_load(x[t] + p);
        /* Keep each loaded vector in a register: left alone, GCC 12 folds the loads
         * into the multiply-adds as memory operands, loading every vector four
         * times, and the kernel ran at half the forward kernel's speed, bound by its
         * loads (36 against 78 GFLOP/s, 32 -> 32 channels on 16x16 maps). */
#pragma GCC unroll 16
        for (int r = 0; r < WGRAD_OUT; r++)
            IN_REGISTER(d[r]);
#pragma GCC unroll 16
        for (int t = 0; t < WGRAD_TAPS; t++)
            IN_REGISTER(in[t]);
#pragma GCC unroll 16
        for (int r = 0; r < WGRAD_OUT; r++)
#pragma GCC unroll 16
            for (int t = 0; t < WGRAD_TAPS; t++)
                acc[r][t] += d[r] * in[t];
    }
    for (int r = 0; r < WGRAD_OUT; r++)
        for (int t = 0; t < WGRAD_TAPS; t++) {
            float sum = 0.0f;
            for (int l = 0; l < VEC_LANES; l++)
                sum += acc[r][t][l];
            sums[r][t] = sum;
        }
}

void lop_stencil_wgrad(const lop_stencil *s, const float *x, const float *dy, int m,
                       float *scratch, float *dw)
{
    size_t n = wgrad_positions(s, m), xrow = wgrad_input_row(s, m);
    float *xq = scratch, *dyq = scratch + (size_t)s->c * xrow;
    memset(scratch, 0, lop_stencil_wgrad_floats(s, m) * sizeof *scratch);
    size_t out_plane = (size_t)s->ho * s->wo;
    for (int b = 0; b < m; b++) {
        copy_padded(s, x + (size_t)b * s->c * s->h * s->w, xrow, xq + (size_t)b * s->frame);
        for (int oc = 0; oc < s->o; oc++)
            for (int y = 0; y < s->ho; y++)
                memcpy(dyq + oc * n + (size_t)b * s->frame + (size_t)y * s->wp,
                       dy + ((size_t)b * s->o + oc) * out_plane + (size_t)y * s->wo,
                       (size_t)s->wo * sizeof *dyq);
    }
    int taps = s->kh * s->kw, pairs = s->c * taps;
    for (int o0 = 0; o0 < s->o; o0 += WGRAD_OUT) {
        const float *d[WGRAD_OUT];
        for (int r = 0; r < WGRAD_OUT; r++)   /* past the last channel: repeat it */
            d[r] = dyq + (size_t)(o0 + r < s->o ? o0 + r : s->o - 1) * n;
        for (int p0 = 0; p0 < pairs; p0 += WGRAD_TAPS) {
            const float *in[WGRAD_TAPS];
            for (int t = 0; t < WGRAD_TAPS; t++) {
                int pair = p0 + t < pairs ? p0 + t : pairs - 1;
                int ic = pair / taps, tap = pair % taps;
                in[t] = xq + ic * xrow + (size_t)(tap / s->kw) * s->wp + tap % s->kw;
            }
            float sums[WGRAD_OUT][WGRAD_TAPS];
            wgrad_block(d, in, n, sums);
            for (int r = 0; r < WGRAD_OUT && o0 + r < s->o; r++)
                for (int t = 0; t < WGRAD_TAPS && p0 + t < pairs; t++)
                    dw[(size_t)(o0 + r) * pairs + p0 + t] += sums[r][t];
        }
    }
}
