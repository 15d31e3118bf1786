/*
 * conv_taps.c - convolutions on maps no larger than the kernel's window, tap by tap.
 * On such maps most of a kernel's taps read padding: a 3x3 pad-1 layer on a 2x2 map
 * (VGG-16's last stage at 32x32 input) touches the input with 16 of the 36 taps of its
 * four outputs, yet im2col multiplies all 36 and Winograd transforms tiles that are
 * mostly zeros.  Here each output position sums, over the (input position, tap) pairs
 * that join it, products over a chunk of images, so the padding costs nothing.
 * Forward runs its own kernel: the images of a chunk lie across the vector lanes
 * ([position][channel][image]) and each weight is read where the layer keeps it
 * ([o][c][tap]) and broadcast, so no weights are packed: 256 -> 256 on a 2x2 map at
 * batch 64, one thread (AVX-512), 1.68 -> 1.40 ms against packing them and BLAS
 * packing them again; 512 -> 512 on a 1x1 map 0.75 -> 0.43 ms.  Backward runs
 * BLAS products on position-major copies ([position][image][channel]) and weights
 * packed tap-major ([tap][o][c]).  That layer against the faster of the im2col and
 * Winograd paths: forward 1.18x and backward 2.0x (one thread, AVX-512;
 * tests/bench/bench_winograd.c, docs/performance.md, "Small maps").
 */
#include <string.h>

#include "internal.h"
#include "layers/conv_taps.h"
#include "layers/gemm.h"
#include "layers/vec.h"

/* The forward kernel is left out of sanitizer builds' instrumentation, like BLAS and
 * the stencil kernel: its reads stay inside the chunk's copies and the weights. */
#define UNINSTRUMENTED __attribute__((no_sanitize("address", "undefined")))

enum {
    CHUNK_IMAGES = 64,   /* images per backward chunk: rows of every product */
    /* Forward: a block of sums is FWD_ROWS output channels x FWD_VECS vectors of
     * images, 24 of AVX-512's 32 registers (12 of AVX2's 16); a chunk is as many
     * images as a block's vectors hold. */
    FWD_VECS = 4,
    FWD_ROWS = VEC_LANES == 16 ? 6 : 3,
    FWD_IMAGES = FWD_VECS * VEC_LANES,
    PAIRS_MAX = 16,      /* (input position, tap) pairs one block's pass sums */
    MIN_JOBS = 4,        /* products a position's work is cut into at least, if it can */
    SLICE_MIN = 16,      /* fewest channels of a slice */
    COPY_GRAIN = 1 << 16,   /* floats a thread's share of a copy is worth (grain_of) */
};

/* Channel slices of `channels` that make `positions` x slices reach MIN_JOBS jobs,
 * each slice at least SLICE_MIN channels (one slice if that leaves none). */
static int slices_for(int positions, int channels)
{
    int want = (MIN_JOBS + positions - 1) / positions, most = channels / SLICE_MIN;
    if (want > most)
        want = most;
    return want < 1 ? 1 : want;
}

void lop_taps_plan(lop_taps *p, int c, int h, int w, int o, int kh, int kw, int sh, int sw,
                   int ph, int pw, int batch)
{
    p->c = c;
    p->h = h;
    p->w = w;
    p->o = o;
    p->kh = kh;
    p->kw = kw;
    p->sh = sh;
    p->sw = sw;
    p->ph = ph;
    p->pw = pw;
    p->ho = (h + 2 * ph - kh) / sh + 1;
    p->wo = (w + 2 * pw - kw) / sw + 1;
    p->hw = h * w;
    p->hwo = p->ho * p->wo;
    p->taps = kh * kw;
    p->m = batch < CHUNK_IMAGES ? (batch < 1 ? 1 : batch) : CHUNK_IMAGES;
    p->mf = batch < FWD_IMAGES ? (batch < 1 ? 1 : batch) : FWD_IMAGES;
    p->lanes = (p->mf + VEC_LANES - 1) / VEC_LANES * VEC_LANES;
    p->oslices = slices_for(p->hwo, o);
    p->cslices = slices_for(p->hw, c);
}

static size_t weight_floats(const lop_taps *p)
{
    return (size_t)p->taps * p->o * p->c;
}

static size_t input_floats(const lop_taps *p)
{
    return (size_t)p->m * p->c * p->hw;
}

static size_t output_floats(const lop_taps *p)
{
    return (size_t)p->m * p->o * p->hwo;
}

/* A 3x3 kernel of stride 1 and padding 1 on a 2x2 map.  Along each axis the two
 * outputs are y0 = w1 x0 + w2 x1 and y1 = w0 x0 + w1 x1, which three products give
 * (Winograd's minimal filtering): m0 = w1 (x0 + x1), m1 = (w2 - w1) x1,
 * m2 = (w0 - w1) x0; y0 = m0 + m1, y1 = m0 + m2.  In two dimensions that is 9
 * products a pair of channels where the taps take 16 (VGG-16's last stage at 32x32
 * input): the weights go to U = G w G^T ([o][9][c]), the inputs to V = A x A^T
 * ([9][c][lanes]), each of the 9 positions sums U V over the input channels
 * ([9][o][lanes]), and Y = C M C^T.  The transforms only add and subtract. */
enum {
    MINIMAL_POSITIONS = 9,
    MINIMAL_SLICES = 2,   /* 18 even jobs: one share each for 2 threads */
    /* Unless kept (lop_taps_kept_floats), the weights are transformed on every pass:
     * from 16 images a chunk the products pay for it (256 -> 256, one thread: 8 images
     * 0.34 ms against the taps' 0.30, 16 0.36 against 0.38, 32 0.57 against 0.67, 64
     * 0.97 against 1.41). */
    MINIMAL_MIN_IMAGES = 16,
};

static int minimal_fits(const lop_taps *p)
{
    return p->h == 2 && p->w == 2 && p->kh == 3 && p->kw == 3 && p->sh == 1 &&
           p->sw == 1 && p->ph == 1 && p->pw == 1 && p->mf >= MINIMAL_MIN_IMAGES;
}

size_t lop_taps_kept_floats(const lop_taps *p)
{
    return minimal_fits(p) ? (size_t)MINIMAL_POSITIONS * p->o * p->c : 0;
}

/* Forward: [input | output], image-minor (on a padded 2x2 map [U | V | M]); backward:
 * [packed weights | their gradient | input | output gradient | input gradient],
 * position-major. */
size_t lop_taps_scratch_floats(const lop_taps *p, int backward)
{
    if (!backward && minimal_fits(p))   /* [U | V | M] */
        return (size_t)MINIMAL_POSITIONS *
               ((size_t)p->o * p->c + ((size_t)p->c + p->o) * p->lanes);
    if (!backward)
        return ((size_t)p->hw * p->c + (size_t)p->hwo * p->o) * p->lanes;
    return 2 * weight_floats(p) + 2 * input_floats(p) + output_floats(p);
}

/* The tap joining output position `out` to input position `in`, -1 for none. */
static int tap_of(const lop_taps *p, int out, int in)
{
    int ki = in / p->w - out / p->wo * p->sh + p->ph;
    int kj = in % p->w - out % p->wo * p->sw + p->pw;
    return ki >= 0 && ki < p->kh && kj >= 0 && kj < p->kw ? ki * p->kw + kj : -1;
}

/* The input position tap t reads for output position `out`, -1 for padding. */
static int input_of(const lop_taps *p, int out, int t)
{
    int iy = out / p->wo * p->sh - p->ph + t / p->kw;
    int ix = out % p->wo * p->sw - p->pw + t % p->kw;
    return iy >= 0 && iy < p->h && ix >= 0 && ix < p->w ? iy * p->w + ix : -1;
}

/* Whether kernel offset k along an axis (size inputs, outs outputs, stride s, padding
 * pad; output i reads input i s - pad + k) reads an input for some output: the first
 * output whose input is not in the padding before the map must not be past its end. */
static int axis_reads(int k, int size, int outs, int s, int pad)
{
    int first = pad - k <= 0 ? 0 : (pad - k + s - 1) / s;
    return first < outs && first * s - pad + k < size;
}

/* Whether tap t reads the input for some output position (input_of is not -1 for
 * every output): its row for some output row and its column for some output column.
 * On a 1x1 map only the centre tap of a 3x3 kernel does, and packing the other
 * eight's weights (and zeroing and unpacking their gradient) was most of a 512 -> 512
 * layer's time on such a map (batch 64, one thread: 1.66 ms, 54% of it packing). */
static int tap_used(const lop_taps *p, int t)
{
    return axis_reads(t / p->kw, p->h, p->ho, p->sh, p->ph) &&
           axis_reads(t % p->kw, p->w, p->wo, p->sw, p->pw);
}

/* The grain of a share-out whose items copy `floats` floats each: a share copies at
 * least COPY_GRAIN floats, so that a batch's copies in and out (64 images of 256
 * channels on a 2x2 map: 65,536 floats, some 30 microseconds) run on one thread
 * rather than pay two more hand-overs to the pool, which cost far more than that
 * when another process has the other core. */
static long grain_of(size_t floats)
{
    size_t grain = COPY_GRAIN / (floats > 0 ? floats : 1);
    return grain < 1 ? 1 : (long)grain;
}

/* What the jobs share: the pass's operands, the current chunk (m images from b0) and
 * the position-major copies in the scratch. */
typedef struct taps_job {
    const lop_taps *p;
    const float *w, *bias, *x, *dy;
    float *y, *dx, *dw;
    float *wp, *dwp, *xt, *yt, *dxt;   /* yt holds the output gradient in backward */
    int b0, m, accumulate;
} taps_job;

/* Packed weights wp [t][o][c] = w [o][c][t] for the taps in use (the others' rows are
 * left as they are: no product reads them), output channels [o0, o1): each write
 * stream contiguous, the reads strided within one output channel's weights (a few
 * KiB, in cache) - three times faster than the other way round. */
static void pack_weights(void *ctx, long o0, long o1, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    const lop_taps *p = j->p;
    for (long oc = o0; oc < o1; oc++) {
        const float *src = j->w + (size_t)oc * p->c * p->taps;   /* [c][taps], in cache */
        for (int t = 0; t < p->taps; t++) {
            if (!tap_used(p, t))
                continue;
            float *dst = j->wp + ((size_t)t * p->o + oc) * p->c;
            for (int ic = 0; ic < p->c; ic++)
                dst[ic] = src[(size_t)ic * p->taps + t];
        }
    }
}

/* dw [o][c][t] += dwp [t][o][c] for the taps in use (the others' gradient is 0),
 * output channels [o0, o1). */
static void unpack_gradient(void *ctx, long o0, long o1, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    const lop_taps *p = j->p;
    for (long oc = o0; oc < o1; oc++) {
        float *dst = j->dw + (size_t)oc * p->c * p->taps;   /* [c][taps], in cache */
        for (int t = 0; t < p->taps; t++) {
            if (!tap_used(p, t))
                continue;
            const float *src = j->dwp + ((size_t)t * p->o + oc) * p->c;
            for (int ic = 0; ic < p->c; ic++)
                dst[(size_t)ic * p->taps + t] += src[ic];
        }
    }
}

/* Image b of m [b][ch][pos] into the position-major dst [pos][m][ch]. */
static void to_positions(const float *src, int b, int m, int ch, int pos, float *dst)
{
    const float *img = src + (size_t)b * ch * pos;
    for (int k = 0; k < ch; k++)
        for (int q = 0; q < pos; q++)
            dst[((size_t)q * m + b) * ch + k] = img[(size_t)k * pos + q];
}

/* Image b of the position-major src [pos][m][ch] into dst [b][ch][pos], stored or
 * added. */
static void from_positions(const float *src, int b, int m, int ch, int pos, int accumulate,
                           float *dst)
{
    float *img = dst + (size_t)b * ch * pos;
    for (int k = 0; k < ch; k++) {
        float *row = img + (size_t)k * pos;
        for (int q = 0; q < pos; q++) {
            float v = src[((size_t)q * m + b) * ch + k];
            row[q] = accumulate ? row[q] + v : v;
        }
    }
}

/* Forward copy in: channels [c0, c1) of the chunk's images into xt [q][c][lanes],
 * the lanes past its images zero (they are summed, and their sums not stored). */
static void forward_gather(void *ctx, long c0, long c1, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    const lop_taps *p = j->p;
    for (long c = c0; c < c1; c++)
        for (int q = 0; q < p->hw; q++) {
            float *row = j->xt + ((size_t)q * p->c + c) * p->lanes;
            const float *src = j->x + (size_t)c * p->hw + q;
            for (int b = 0; b < j->m; b++)
                row[b] = src[(size_t)b * p->c * p->hw];
            for (int b = j->m; b < p->lanes; b++)
                row[b] = 0.0f;
        }
}

/* Forward copy out: output channels [o0, o1) from yt [p][o][lanes], plus the bias. */
static void forward_scatter(void *ctx, long o0, long o1, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    const lop_taps *p = j->p;
    for (long oc = o0; oc < o1; oc++) {
        float add = j->bias ? j->bias[oc] : 0.0f;
        for (int b = 0; b < j->m; b++) {
            float *dst = j->y + ((size_t)b * p->o + oc) * p->hwo;
            for (int q = 0; q < p->hwo; q++)
                dst[q] = j->yt[((size_t)q * p->o + oc) * p->lanes + b] + add;
        }
    }
}

/* One block of sums: out[r][v] (r < rows output channels, v < vecs vectors of
 * images) = the sum over input channels k < kn and the pairs i of
 * w[r * per_row + k * per_k + at[i]] x in[i][k][v] - each weight where the layer keeps
 * it, broadcast.  Inlined with constant rows and vecs, the sums stay in registers. */
UNINSTRUMENTED __attribute__((always_inline))
static inline void block_sums(const float *w, size_t per_row, int per_k, int kn,
                              const float *const *in, const int *at, int pairs,
                              size_t lanes, int accumulate, float *out, int rows, int vecs)
{
    vec acc[FWD_ROWS][FWD_VECS];
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < vecs; v++)
            acc[r][v] = accumulate ? vec_load(out + r * lanes + v * VEC_LANES) : (vec){0};
    for (int k = 0; k < kn; k++, w += per_k)
        for (int i = 0; i < pairs; i++) {
            const float *src = in[i] + k * lanes;
            vec x[FWD_VECS];
#pragma GCC unroll 4
            for (int v = 0; v < vecs; v++)
                x[v] = vec_load(src + v * VEC_LANES);
#pragma GCC unroll 8
            for (int r = 0; r < rows; r++) {
                float s = w[r * per_row + at[i]];
#pragma GCC unroll 4
                for (int v = 0; v < vecs; v++)
                    acc[r][v] += s * x[v];
            }
        }
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < vecs; v++)
            vec_store(out + r * lanes + v * VEC_LANES, acc[r][v]);
}

#define SUMS(rows, vecs)                                                               \
    block_sums(w, per_row, per_k, kn, in, at, pairs, lanes, acc, out, rows, vecs)
#define VECS_CASES(rows)                                                               \
    switch (vecs) {                                                                    \
    case 1: SUMS(rows, 1); break;                                                      \
    case 2: SUMS(rows, 2); break;                                                      \
    case 3: SUMS(rows, 3); break;                                                      \
    default: SUMS(rows, 4); break;                                                     \
    }

/* block_sums compiled for each count of rows and vectors: a layer's last block of
 * output channels and a batch's last chunk of images multiply only their own. */
UNINSTRUMENTED
static void block_kernel(const float *w, size_t per_row, int per_k, int kn,
                         const float *const *in, const int *at, int pairs, size_t lanes,
                         int acc, float *out, int rows, int vecs)
{
    switch (rows) {
    case 1: VECS_CASES(1) break;
    case 2: VECS_CASES(2) break;
#if VEC_LANES == 16   /* FWD_ROWS 6 */
    case 3: VECS_CASES(3) break;
    case 4: VECS_CASES(4) break;
    case 5: VECS_CASES(5) break;
#endif
    default: VECS_CASES(FWD_ROWS) break;
    }
}

/* Output channels [o0, o1) of one position's sums, out [o][lanes] from o0, a block of
 * FWD_ROWS at a time; the weights of channel o start at w + o * per_row. */
static void position_sums(const taps_job *j, const float *w, size_t per_row, int per_k,
                          int kn, const float *const *in, const int *at, int pairs,
                          int accumulate, float *out, int o0, int o1)
{
    size_t lanes = (size_t)j->p->lanes;
    for (int r = o0; r < o1; r += FWD_ROWS)
        block_kernel(w + (size_t)r * per_row, per_row, per_k, kn, in, at, pairs, lanes,
                     accumulate, out + (size_t)(r - o0) * lanes,
                     o1 - r < FWD_ROWS ? o1 - r : FWD_ROWS, (int)(lanes / VEC_LANES));
}

/* Job = output position x output channel slice: Y_p = the sum over the taps t that
 * read an input position q for p, in order of t, of W_t X_q, PAIRS_MAX pairs a pass
 * over the block's sums. */
static void forward_products(void *ctx, long first, long last, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    const lop_taps *p = j->p;
    for (long job = first; job < last; job++) {
        int out = (int)(job / p->oslices), o0, o1;
        lop_slice_of(p->o, job % p->oslices, p->oslices, 1, &o0, &o1);
        float *y = j->yt + ((size_t)out * p->o + o0) * p->lanes;
        int t = 0, accumulate = 0;
        do {
            const float *in[PAIRS_MAX];
            int tap[PAIRS_MAX], pairs = 0;
            for (; t < p->taps && pairs < PAIRS_MAX; t++) {
                int q = input_of(p, out, t);
                if (q < 0)
                    continue;
                in[pairs] = j->xt + (size_t)q * p->c * p->lanes;
                tap[pairs++] = t;
            }
            position_sums(j, j->w, (size_t)p->c * p->taps, p->taps, p->c, in, tap, pairs,
                          accumulate, y, o0, o1);
            accumulate = 1;
        } while (t < p->taps);
    }
}

/* (w1, w2 - w1, w0 - w1) of three taps along an axis. */
static inline void minimal_axis(vec w0, vec w1, vec w2, vec u[3])
{
    u[0] = w1;
    u[1] = w2 - w1;
    u[2] = w0 - w1;
}

/* U = G w G^T for output channels [o0, o1), VEC_LANES input channels at a time. */
static void minimal_weights(void *ctx, long o0, long o1, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    int c = j->p->c;
    for (long o = o0; o < o1; o++)
        for (int c0 = 0; c0 < c; c0 += VEC_LANES) {
            int n = c - c0 < VEC_LANES ? c - c0 : VEC_LANES;
            vec g[9], rows[3][3], u[3];
            float *dst = j->wp + (size_t)o * MINIMAL_POSITIONS * c + c0;
            vec_gather_kernels(j->w + ((size_t)o * c + c0) * 9, 9, n, g);
            for (int a = 0; a < 3; a++)   /* along each row of the kernel */
                minimal_axis(g[3 * a], g[3 * a + 1], g[3 * a + 2], rows[a]);
            for (int b = 0; b < 3; b++) {   /* then down each column */
                minimal_axis(rows[0][b], rows[1][b], rows[2][b], u);
                for (int a = 0; a < 3; a++)
                    vec_store_first(dst + (size_t)(3 * a + b) * c, u[a], n);
            }
        }
}

/* V = A x A^T for input channels [c0, c1) of the chunk's images, A's rows (1, 1),
 * (0, 1), (1, 0), a vector of images at a time; the lanes past the images zero. */
static void minimal_inputs(void *ctx, long c0, long c1, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    const lop_taps *p = j->p;
    size_t plane = (size_t)p->c * p->lanes;
    int stride = p->c * 4;   /* from one image's channel to the next image's */
    for (long c = c0; c < c1; c++)
        for (int b = 0; b < p->lanes; b += VEC_LANES) {
            int n = j->m - b < VEC_LANES ? j->m - b : VEC_LANES;
            vec x[4];
            vec_gather_quads(j->x + ((size_t)b * p->c + c) * 4, stride, n, x);
            vec r[2][3] = {{x[0] + x[1], x[1], x[0]}, {x[2] + x[3], x[3], x[2]}};
            float *v = j->xt + (size_t)c * p->lanes + b;
            for (int k = 0; k < 3; k++) {
                vec_store(v + (size_t)k * plane, r[0][k] + r[1][k]);
                vec_store(v + (size_t)(3 + k) * plane, r[1][k]);
                vec_store(v + (size_t)(6 + k) * plane, r[0][k]);
            }
        }
}

/* Job = position x output channel slice: M = the sum over input channels of U V. */
static void minimal_products(void *ctx, long first, long last, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    const lop_taps *p = j->p;
    for (long job = first; job < last; job++) {
        int pos = (int)(job / MINIMAL_SLICES), o0, o1;
        lop_slice_of(p->o, job % MINIMAL_SLICES, MINIMAL_SLICES, 1, &o0, &o1);
        const float *in[1] = {j->xt + (size_t)pos * p->c * p->lanes};
        int at[1] = {pos * p->c};
        position_sums(j, j->wp, (size_t)MINIMAL_POSITIONS * p->c, 1, p->c, in, at, 1, 0,
                      j->yt + ((size_t)pos * p->o + o0) * p->lanes, o0, o1);
    }
}

/* Y = C M C^T plus the bias for output channels [o0, o1), C's rows (1, 1, 0) and
 * (1, 0, 1), into the chunk's images. */
static void minimal_outputs(void *ctx, long o0, long o1, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    const lop_taps *p = j->p;
    size_t plane = (size_t)p->o * p->lanes;
    for (long o = o0; o < o1; o++) {
        const float *m = j->yt + (size_t)o * p->lanes;
        float add = j->bias ? j->bias[o] : 0.0f;
        for (int b = 0; b < j->m; b++) {
            float s[3][2];
            for (int i = 0; i < 3; i++) {
                float m0 = m[(size_t)(3 * i) * plane + b];
                s[i][0] = m0 + m[(size_t)(3 * i + 1) * plane + b];
                s[i][1] = m0 + m[(size_t)(3 * i + 2) * plane + b];
            }
            float *dst = j->y + ((size_t)b * p->o + o) * 4;
            for (int k = 0; k < 2; k++) {
                dst[k] = s[0][k] + s[1][k] + add;
                dst[2 + k] = s[0][k] + s[2][k] + add;
            }
        }
    }
}

void lop_taps_forward(const lop_taps *p, const float *w, const float *bias, const float *x,
                      int batch, float *kept, int made, float *scratch, float *y)
{
    int minimal = minimal_fits(p);
    taps_job j = {.p = p, .w = w, .bias = bias, .wp = scratch};
    j.xt = j.wp + (minimal ? (size_t)p->o * MINIMAL_POSITIONS * p->c : 0);
    j.yt = j.xt + (size_t)(minimal ? MINIMAL_POSITIONS : p->hw) * p->c * p->lanes;
    if (minimal && kept)
        j.wp = kept;
    if (minimal && !(kept && made))
        lop_parallel_for(p->o, grain_of((size_t)p->c * MINIMAL_POSITIONS), minimal_weights,
                         &j);
    for (j.b0 = 0; j.b0 < batch; j.b0 += p->mf) {
        j.m = batch - j.b0 < p->mf ? batch - j.b0 : p->mf;
        j.x = x + (size_t)j.b0 * p->c * p->hw;
        j.y = y + (size_t)j.b0 * p->o * p->hwo;
        if (minimal) {
            lop_parallel_for(p->c, grain_of((size_t)p->lanes * MINIMAL_POSITIONS),
                             minimal_inputs, &j);
            lop_parallel_for((long)MINIMAL_POSITIONS * MINIMAL_SLICES, 1, minimal_products,
                             &j);
            lop_parallel_for(p->o, grain_of((size_t)j.m * p->hwo), minimal_outputs, &j);
            continue;
        }
        lop_parallel_for(p->c, grain_of((size_t)j.m * p->hw), forward_gather, &j);
        lop_parallel_for((long)p->hwo * p->oslices, 1, forward_products, &j);
        lop_parallel_for(p->o, grain_of((size_t)j.m * p->hwo), forward_scatter, &j);
    }
}

static void backward_gather(void *ctx, long b0, long b1, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    for (long b = b0; b < b1; b++) {
        to_positions(j->x, (int)b, j->m, j->p->c, j->p->hw, j->xt);
        to_positions(j->dy, (int)b, j->m, j->p->o, j->p->hwo, j->yt);
    }
}

static void backward_scatter(void *ctx, long b0, long b1, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    for (long b = b0; b < b1; b++)
        from_positions(j->dxt, (int)b, j->m, j->p->c, j->p->hw, j->accumulate, j->dx);
}

/* Input gradient job = input position q x input channel slice: dX_q = sum over the
 * output positions p a tap joins to q of dY_p W_t, in order of p. */
static void input_gradient(const taps_job *j, long job)
{
    const lop_taps *p = j->p;
    int in = (int)(job / p->cslices), c0, c1;
    lop_slice_of(p->c, job % p->cslices, p->cslices, 1, &c0, &c1);
    float *dx = j->dxt + (size_t)in * j->m * p->c + c0;
    float beta = 0.0f;
    for (int out = 0; out < p->hwo; out++) {
        int t = tap_of(p, out, in);
        if (t < 0)
            continue;
        lop_sgemm(CblasNoTrans, CblasNoTrans, j->m, c1 - c0, p->o, 1.0f,
                  j->yt + (size_t)out * j->m * p->o, p->o,
                  j->wp + (size_t)t * p->o * p->c + c0, p->c, beta, dx, p->c);
        beta = 1.0f;
    }
    for (int b = 0; beta == 0.0f && b < j->m; b++)   /* no tap reads this position */
        memset(dx + (size_t)b * p->c, 0, (size_t)(c1 - c0) * sizeof *dx);
}

/* Weight gradient job = tap t x output channel slice: dW_t += dY_p^T X_q over the
 * output positions p whose tap t reads an input position q, in order of p. */
static void weight_gradient(const taps_job *j, long job)
{
    const lop_taps *p = j->p;
    int t = (int)(job / p->oslices), o0, o1;
    lop_slice_of(p->o, job % p->oslices, p->oslices, 1, &o0, &o1);
    for (int out = 0; out < p->hwo; out++) {
        int in = input_of(p, out, t);
        if (in < 0)
            continue;
        lop_sgemm(CblasTrans, CblasNoTrans, o1 - o0, p->c, j->m, 1.0f,
                  j->yt + (size_t)out * j->m * p->o + o0, p->o,
                  j->xt + (size_t)in * j->m * p->c, p->c, 1.0f,
                  j->dwp + ((size_t)t * p->o + o0) * p->c, p->c);
    }
}

/* The input gradient's jobs, then the weight gradient's, in one share-out. */
static void backward_products(void *ctx, long first, long last, int worker)
{
    (void)worker;
    const taps_job *j = ctx;
    long dx_jobs = (long)j->p->hw * j->p->cslices;
    for (long job = first; job < last; job++)
        if (job < dx_jobs)
            input_gradient(j, job);
        else
            weight_gradient(j, job - dx_jobs);
}

void lop_taps_backward(const lop_taps *p, const float *w, const float *x, const float *dy,
                       int batch, int accumulate, float *scratch, float *dx, float *dw)
{
    taps_job j = {.p = p, .w = w, .dw = dw, .accumulate = accumulate, .wp = scratch};
    j.dwp = j.wp + weight_floats(p);
    j.xt = j.dwp + weight_floats(p);
    j.yt = j.xt + input_floats(p);
    j.dxt = j.yt + output_floats(p);
    long grain_w = grain_of((size_t)p->c * p->taps);
    lop_parallel_for(p->o, grain_w, pack_weights, &j);
    for (int t = 0; t < p->taps; t++)   /* the gradient rows the products add into */
        if (tap_used(p, t))
            memset(j.dwp + (size_t)t * p->o * p->c, 0, (size_t)p->o * p->c * sizeof *j.dwp);
    long jobs = (long)p->hw * p->cslices + (long)p->taps * p->oslices;
    for (j.b0 = 0; j.b0 < batch; j.b0 += p->m) {
        j.m = batch - j.b0 < p->m ? batch - j.b0 : p->m;
        j.x = x + (size_t)j.b0 * p->c * p->hw;
        j.dy = dy + (size_t)j.b0 * p->o * p->hwo;
        j.dx = dx + (size_t)j.b0 * p->c * p->hw;
        lop_parallel_for(j.m, grain_of((size_t)p->c * p->hw + (size_t)p->o * p->hwo),
                         backward_gather, &j);
        lop_parallel_for(jobs, 1, backward_products, &j);
        lop_parallel_for(j.m, grain_of((size_t)p->c * p->hw), backward_scatter, &j);
    }
    lop_parallel_for(p->o, grain_w, unpack_gradient, &j);
}
