/*
 * conv.c - 2-D convolution (strided, zero-padded, grouped) as im2col + sgemm (gemm.h),
 * the plan of ggml and darknet: unfolding the input into columns turns the whole
 * convolution into one matrix product that BLAS runs near peak.  Small feature maps
 * give thin products, so several images are unfolded side by side into one column
 * buffer.  A 1x1 stride-1 unpadded ungrouped convolution needs no unfolding at all,
 * because an NCHW image already is its own column matrix; it multiplies each image
 * in place when the map is wide enough for that to be as fast as batching.  Thin
 * stride-1 layers (few output channels) run on conv_stencil.c instead, forward and
 * backward, because there the unfolding costs more than the products; thin stride-2
 * layers too, forward.  3x3 stride-1 layers of enough channels run on Winograd
 * F(4x4,3x3) or F(2x2,3x3) (conv_winograd.c), 4x or 2.25x fewer multiplies, where
 * measured faster for the pass (winograd_tile).  Maps no larger than the kernel's window, where most taps read
 * padding, run tap by tap on conv_taps.c (taps_rule).  Every path stores its outputs
 * through an epilogue (internal.h): the bias, or in an evaluation pass the batchnorm
 * and activation fused with the layer (graph/fusion.c).
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "internal.h"
#include "layers/conv_stencil.h"
#include "layers/conv_taps.h"
#include "layers/conv_winograd.h"
#include "layers/gemm.h"
#include "layers/vec.h"

enum {
    COLS_TARGET = 4096,       /* columns per product worth batching images to reach */
    SCRATCH_CAP = 1 << 22,    /* floats of column scratch (16 MiB) not to exceed for it */
    /* Narrowest map a 1x1 convolution multiplies per image: measured on OpenBLAS,
     * per-image products of 256 columns match batched ones, 64 columns run at half
     * their speed. */
    DIRECT_MIN_COLS = 256,
    /* Widest layers (output channels) the stencil kernel runs: measured on one 3x3
     * convolution at batch 64, it runs 1.3-3x faster than im2col + sgemm up to 64
     * output channels; at 128 it is faster only on maps of 16 columns or more. */
    STENCIL_MAX_OUT = 64,
    STENCIL_MAX_OUT_WIDE_MAP = 128,
    STENCIL_WIDE_MAP = 16,
    /* Chunks a batch is cut into at least (when it has the images), whatever the
     * number of threads: enough for 4 threads to share. */
    MIN_CHUNKS = 4,
    /* Fewest output channels per row slice of a small batch's products, and the
     * fewest FLOPs of a chunk's products worth slicing (below it, handing slices to
     * threads cost more than it saved: ResNet-20's 32- and 64-channel layers). */
    ROWS_PER_SLICE_MIN = 16,
    COLUMN_ALIGN = 16,        /* column slices start at multiples of this */
    SLICE_MIN_FLOPS = 4000000,
    /* Winograd: tiles per chunk worth batching images to reach (F(4x4)'s tiles have
     * 36 positions where F(2x2)'s have 16: fewer keep a chunk's transformed tiles in
     * cache; 128 measured faster than 64, 256 and 512 on 14x14 to 32x32 maps); the
     * bounds of the rule (winograd_tile). */
    WINO_TILES_TARGET = 512,
    WINO_F4_TILES_TARGET = 128,
    WINO_FULL_BATCH = 32,
    /* Backward: the most floats of V, dM and dU (48 MiB) a weight gradient over the
     * whole batch may take (whole_weight_grad). */
    WINO_WHOLE_FLOATS = 3 << 22,
    /* Output channels per block of a batch-1 pass that makes its transformed weights
     * (lop_wino_block): 512 inputs' F(2x2) weights of 16 channels take 512 KiB, an
     * L2's half. */
    WINO_BLOCK_OUTS = 16,
    /* Transformed weights that stay in an L2 (1 MiB): up to this a batch-1 pass makes
     * them whole (lop_wino_pack), beyond it a block at a time (lop_wino_block), and a
     * frozen graph keeps F(4x4)'s only up to it (kept_weights). */
    WINO_CACHED_FLOATS = 1 << 18,
    WINO_MIN_CHANNELS = 8,
    WINO_F4_MIN_TILES = 4,             /* F(4x4) tiles: 5x5 and wider maps */
    WINO_TINY_MAP_WIDE = 256,          /* 1x1 and 2x2 maps: forward; backward half */
    WINO_SMALL_BATCH_F4_TILES = 49,    /* F(4x4) tiles: 25x25 and wider maps */
    WINO_SMALL_BATCH_MID_F4_TILES = 16,   /* F(4x4) tiles: 13x13 and wider maps */
    WINO_SMALL_BATCH_F4_WIDE = 128,    /* ... channels up to which F(4x4) wins there */
    WINO_SMALL_BATCH_MID_TILES = 16,   /* F(2x2) tiles: 7x7 and wider maps */
    WINO_SMALL_BATCH_MID_WIDE = 256,   /* channels up to which F(2x2) wins there */
    WINO_SMALL_BATCH_TINY_WIDE = 64,   /* ... and on smaller maps */
    TAPS_MIN_BATCH = 4,
};

enum { PARAM_WEIGHT, PARAM_BIAS };

/* Everything the kernels need, derived from the node and its input. */
typedef struct conv_geom {
    int c, h, w;              /* input channels and size */
    int o, ho, wo;            /* output channels and size */
    int kh, kw, sh, sw, ph, pw, groups;
    int cg, og;               /* input and output channels per group */
    int k;                    /* rows of one group's columns: cg * kh * kw */
    int hwo;                  /* ho * wo */
    int direct;               /* 1x1 stride 1, no padding, one group, wide: no im2col */
    int stencil;              /* stride 1 (or 2 forward), one group, thin: conv_stencil.c */
    int winograd;             /* 3x3 stride 1, one group, wide: conv_winograd.c's output
                               * tile size r (2 or 4), else 0 */
    int taps;                 /* one group, a map no larger than the kernel: conv_taps.c */
} conv_geom;

/* lop_debug_conv_winograd's choice: 0 never, 2 or 4 that tile size on every layer it
 * can run, anything else (-1) the rules. */
static int winograd_mode = -1;

void lop_debug_conv_winograd(int mode)
{
    winograd_mode = mode == 0 || mode == 2 || mode == 4 ? mode : -1;
}

/* lop_debug_conv_taps's choice: 0 never, 1 every ungrouped layer, -1 the rule. */
static int taps_mode = -1;

void lop_debug_conv_taps(int mode)
{
    taps_mode = mode == 0 || mode == 1 ? mode : -1;
}

/* Whether a layer runs tap by tap (conv_taps.c): one group, padded, on a map no
 * larger than the kernel's window, so that some taps of every output read padding,
 * from TAPS_MIN_BATCH images.  Measured by tests/bench/bench_winograd.c (3x3 pad 1,
 * against the fastest of the other paths; docs/performance.md, "Small maps"), on one
 * thread at batch 64: on 2x2 maps forward 1.6-2.3x (9 products for 16 where the
 * kernel is 3x3) and backward 1.9-2.3x from 16 to 512 channels, on 1x1 maps 8-12x and
 * 11x, on 3x3 maps 0.97-1.11x and 1.04-1.5x, where 4x4 maps (larger than the window)
 * lose to F(4x4); at 4 images forward 0.9-4.7x on 2x2 maps and 1.2-1.7x on 3x3 maps
 * (2026-12-06, AVX-512: the forward kernel's images fill its vector lanes, so at 4 a
 * quarter of them; 128 channels on a 2x2 map lose, 0.9x, and on two threads 0.4-0.6x).
 * Below 4 images fewer lanes still. */
static int taps_rule(const conv_geom *q, int batch)
{
    return q->groups == 1 && (q->ph > 0 || q->pw > 0) && q->h * q->w <= q->kh * q->kw &&
           batch >= TAPS_MIN_BATCH;
}

/* Winograd tiles of side r covering an h x w map (the last row and column partial). */
static int tiles_of(int h, int w, int r)
{
    return ((h + r - 1) / r) * ((w + r - 1) / r);
}

/* Layers the Winograd kernels can run: 3x3, stride 1, one group, padding up to 2. */
static int winograd_fits(const conv_geom *q)
{
    return q->kh == 3 && q->kw == 3 && q->sh == 1 && q->sw == 1 && q->groups == 1 &&
           q->ph <= 2 && q->pw <= 2;
}

/* The Winograd tile size r (4 or 2) for a layer's forward pass at `batch` images or
 * its backward pass (weight and input gradient together), 0 for the stencil or
 * im2col path: where each measurably wins, by tests/bench/bench_winograd.c (ratios old
 * path / F(2x2) and / F(4x4), 2 threads, 1 thread in brackets where it disagrees; the
 * table is in docs/performance.md, "Winograd"):
 * - From WINO_FULL_BATCH images (and backward at any batch), from 8 channels in and
 *   out (3 -> 64 loses: 0.73 / 0.89; 4 -> 4 ties backward, 0.96-1.03):
 *   - F(4x4) on maps of 5x5 and more (F(4x4) tiles >= 4): 1.31-3.44 forward and
 *     1.34-3.62 backward on 16 to 512 channels, 7x7 to 56x56 maps, where F(2x2) gives
 *     1.07-2.20 / 1.02-2.33; pruned widths such as 8 -> 16, 16 -> 8 and 8 -> 8 on 32x32
 *     1.08-1.90 forward and 1.02-1.17 backward, 32 -> 15, 15 -> 32 and 12 -> 12 on
 *     16x16 1.5-1.8 both ways;
 *   - on 3x3 and 4x4 maps F(4x4) (3x3 maps run tap by tap from 4 images): measured
 *     up to 128 channels 1.65-3.41 (F(2x2) 1.38-2.90), and once its transforms had
 *     been vectorised and read in place, from 256 channels too - 256 and 512 on 4x4,
 *     256 -> 512, on 1 and 2 threads: forward 2.31-3.24 against F(2x2)'s 1.66-1.93,
 *     backward 1.55-1.98 against 1.47-1.71 (2026-12-06, AVX-512; VGG-16's conv4_2
 *     6.7 -> 4.0 ms at batch 64, one thread);
 *   - on 1x1 and 2x2 maps F(2x2), forward up to 256 channels (1.27-5.32; 512: 0.95),
 *     backward up to 128 (1.09-6.12; 256 and 512: 0.81-0.95).
 * - Below WINO_FULL_BATCH the weight transform and the transformed weights are paid
 *   for few images; from 2 to 31 images, as measured at batch 1 when the transformed
 *   weights were made whole, and from 8 channels since 2026-12-06 (late; below 32
 *   the stencil kernel had run them, which pruned layers' widths fall to: 64 -> 31 on
 *   8x8 at batch 1, one thread / two, 45 / 36 us against F(2x2)'s 19 / 21, 16 -> 8 on
 *   32x32 28 / 28 against F(4x4)'s 16 / 26, 32 -> 16 on 16x16 30 / 23 against 12 /
 *   17; at 8 images F(2x2) or F(4x4) 1.2-2.3x on 8 to 64 channels):
 *   - on maps of 25x25 and more F(4x4): 1.58-3.34 (F(2x2) 1.16-2.14);
 *   - on 13x13 to 24x24 maps F(4x4) up to 128 channels (1.35-3.57), else F(2x2)
 *     (256 on 14x14: 1.86 against 1.71 [1.44 against 1.06]);
 *   - on 7x7 and 8x8 maps F(2x2) up to 256 channels (1.15-2.44 [1.05-1.61]; 512:
 *     0.80 [0.52]), on smaller maps up to 64 (1.33-2.30 [1.28-1.95]; 128: 0.25-0.68).
 *   With the weights kept (`kept`: a frozen graph's forward, lop_graph_freeze) the
 *   transform is paid once, but at batch 1 the products read the transformed weights
 *   from memory, 16/9 of the weights' size for F(2x2) and 36/9 for F(4x4), and that
 *   reading bounds wide layers: from 8 channels F(4x4) on maps of 13x13 and more,
 *   F(2x2) on 7x7 to 12x12 maps at any width (512 on 7x7: 0.96-1.0 ms against 1.95 on
 *   im2col, once lop_small_gemm took products one vector wide), and on smaller maps
 *   as without.  F(4x4) on 13x13 to 24x24 maps, whose 16 tiles a batch-1 product
 *   takes in one vector, against F(2x2)'s 49 on BLAS: ResNet-18's 256 on 14x14
 *   5-7% faster, VGG-16 and ResNet-20 at 32x32 as fast or faster (2 threads,
 *   2026-12-06, AVX-512).
 * - At batch 1 without kept weights, each block of WINO_BLOCK_OUTS output channels'
 *   transformed weights is made just before its products (lop_wino_block), in cache
 *   (when all of them would not fit: WINO_CACHED_FLOATS), so that the kept weights'
 *   rule holds: ResNet-18's 256 on 14x14 0.80-0.83 -> 0.65 ms (F(4x4) against F(2x2)
 *   made whole), 512 on 7x7 2.0 -> 1.25-1.33 ms (F(2x2) against im2col), the whole
 *   pass 17.0 -> 14.2-14.5 ms.  From 8 channels it lost when this was measured
 *   (resnet-small 0.84-0.87 -> 1.0 ms), and won once the transforms were vectorised:
 *   resnet-small 0.62 -> 0.52 ms on one thread, 0.51 -> 0.52-0.54 on two; ResNet-20
 *   0.69 -> 0.54 and 0.58 -> 0.57 (2026-12-06, late).
 * The rule depends on shapes, batch and `kept` alone, never on the number of threads: a seed
 * gives the same bits on any number of them. */
static int winograd_tile(const conv_geom *q, int backward, int kept, int batch)
{
    int narrow = q->c < q->o ? q->c : q->o, wide = q->c < q->o ? q->o : q->c;
    int tiles2 = tiles_of(q->ho, q->wo, 2), tiles4 = tiles_of(q->ho, q->wo, 4);
    /* kept: no weight transform to pay for; batch 1: made a block at a time, in cache */
    if ((kept || batch == 1) && !backward && batch < WINO_FULL_BATCH) {
        if (narrow < WINO_MIN_CHANNELS)
            return 0;
        if (tiles4 >= WINO_SMALL_BATCH_MID_F4_TILES)
            return 4;
        if (tiles2 >= WINO_SMALL_BATCH_MID_TILES)
            return 2;
        return wide <= WINO_SMALL_BATCH_TINY_WIDE ? 2 : 0;
    }
    if (!backward && batch < WINO_FULL_BATCH) {
        if (narrow < WINO_MIN_CHANNELS)
            return 0;
        if (tiles4 >= WINO_SMALL_BATCH_F4_TILES)
            return 4;
        if (tiles4 >= WINO_SMALL_BATCH_MID_F4_TILES)
            return wide <= WINO_SMALL_BATCH_F4_WIDE ? 4 : 2;
        if (tiles2 >= WINO_SMALL_BATCH_MID_TILES)
            return wide <= WINO_SMALL_BATCH_MID_WIDE ? 2 : 0;
        return wide <= WINO_SMALL_BATCH_TINY_WIDE ? 2 : 0;
    }
    if (narrow < WINO_MIN_CHANNELS)
        return 0;
    if (tiles4 >= WINO_F4_MIN_TILES)
        return 4;
    if (tiles2 > 1)   /* 3x3 and 4x4 maps */
        return 4;
    return wide <= (backward ? WINO_TINY_MAP_WIDE / 2 : WINO_TINY_MAP_WIDE) ? 2 : 0;
}

/* The geometry of node n for its forward or backward pass (which may take different
 * paths). */
static void geom_of(const lop_graph *g, const lop_node *n, int backward, conv_geom *q)
{
    const lop_node *in = lop_input_node(g, n, 0);
    const lop_attrs *a = &n->attr;
    q->c = in->dims[0];
    q->h = in->dims[1];
    q->w = in->dims[2];
    q->o = n->dims[0];
    q->ho = n->dims[1];
    q->wo = n->dims[2];
    q->kh = a->kernel_h;
    q->kw = a->kernel_w;
    q->sh = a->stride_h;
    q->sw = a->stride_w;
    q->ph = a->pad_h;
    q->pw = a->pad_w;
    q->groups = a->groups;
    q->cg = q->c / q->groups;
    q->og = q->o / q->groups;
    q->k = q->cg * q->kh * q->kw;
    q->hwo = q->ho * q->wo;
    q->direct = q->kh == 1 && q->kw == 1 && q->sh == 1 && q->sw == 1 && q->ph == 0 &&
                q->pw == 0 && q->groups == 1 && q->hwo >= DIRECT_MIN_COLS;
    /* Stride 2 forward up to STENCIL_MAX_OUT outputs (measured at batch 64 on 8 to 32
     * inputs, 16x16 and 32x32 maps, 1.13-1.45x im2col; a 7x7 stem of 3 channels on
     * 224x224 1.2-1.4x at batch 1 and 1.5x at 8; 64 -> 128 on 56x56 lost, 0.91x). */
    int stencil_stride = q->sh == 1 ||
                         (q->sh == 2 && !backward && q->o <= STENCIL_MAX_OUT);
    q->stencil = q->sh == q->sw && stencil_stride && q->groups == 1 && q->kh * q->kw > 1 &&
                 q->ph < q->kh && q->pw < q->kw &&
                 (q->o <= STENCIL_MAX_OUT ||
                  (q->o <= STENCIL_MAX_OUT_WIDE_MAP && q->wo >= STENCIL_WIDE_MAP));
    q->winograd = !winograd_fits(q) ? 0
                  : winograd_mode < 0 ? winograd_tile(q, backward, !backward && g->frozen,
                                                      lop_node_batch(n))
                                      : winograd_mode;
    if (q->winograd)
        q->stencil = 0;
    q->taps = taps_mode >= 0 ? taps_mode && q->groups == 1
                             : taps_rule(q, lop_node_batch(n));
    if (q->winograd && winograd_mode > 0)   /* forced onto Winograd */
        q->taps = 0;
    if (q->taps)
        q->direct = q->stencil = q->winograd = 0;
}

/* Output size along one axis, or 0 when the kernel does not fit the padded input. */
static long long out_size(int in, int kernel, int stride, int pad)
{
    long long span = (long long)in + 2LL * pad - kernel;
    return span < 0 ? 0 : span / stride + 1;
}

static int conv_infer(const lop_graph *g, lop_node *n)
{
    const lop_attrs *a = &n->attr;
    if (n->ninputs != 1)
        return lop_fail(LOP_EINVAL, "conv2d '%s' takes 1 input, got %d", n->name, n->ninputs);
    const lop_node *in = lop_input_node(g, n, 0);
    if (in->ndim != 3)
        return lop_fail(LOP_ESHAPE, "conv2d '%s' needs a (C,H,W) input, '%s' gives rank %d",
                        n->name, in->name, in->ndim);
    if (a->out_channels <= 0)
        return lop_fail(LOP_EINVAL, "conv2d '%s': out_channels must be positive, got %d",
                        n->name, a->out_channels);
    if (a->kernel_h <= 0 || a->kernel_w <= 0)
        return lop_fail(LOP_EINVAL, "conv2d '%s': kernel must be positive, got %dx%d",
                        n->name, a->kernel_h, a->kernel_w);
    if (a->stride_h <= 0 || a->stride_w <= 0)
        return lop_fail(LOP_EINVAL, "conv2d '%s': stride must be positive, got %dx%d",
                        n->name, a->stride_h, a->stride_w);
    if (a->pad_h < 0 || a->pad_w < 0)
        return lop_fail(LOP_EINVAL, "conv2d '%s': padding must not be negative, got %dx%d",
                        n->name, a->pad_h, a->pad_w);
    if (a->groups < 1)
        return lop_fail(LOP_EINVAL, "conv2d '%s': groups must be at least 1, got %d",
                        n->name, a->groups);
    if (a->bias != 0 && a->bias != 1)
        return lop_fail(LOP_EINVAL, "conv2d '%s': bias must be 0 or 1, got %d", n->name,
                        a->bias);
    int c = in->dims[0];
    if (c % a->groups != 0)
        return lop_fail(LOP_ESHAPE, "conv2d '%s': groups %d does not divide the %d input "
                        "channels of '%s'", n->name, a->groups, c, in->name);
    if (a->out_channels % a->groups != 0)
        return lop_fail(LOP_EINVAL, "conv2d '%s': groups %d does not divide out_channels %d",
                        n->name, a->groups, a->out_channels);
    long long ho = out_size(in->dims[1], a->kernel_h, a->stride_h, a->pad_h);
    long long wo = out_size(in->dims[2], a->kernel_w, a->stride_w, a->pad_w);
    if (ho < 1 || wo < 1)
        return lop_fail(LOP_ESHAPE, "conv2d '%s': kernel %dx%d is larger than the padded "
                        "input %dx%d (padding %dx%d)", n->name, a->kernel_h, a->kernel_w,
                        in->dims[1], in->dims[2], a->pad_h, a->pad_w);
    /* The kernels index with int where BLAS does. */
    long long unfolded = (long long)c * a->kernel_h * a->kernel_w;
    long long padded =
        ((long long)in->dims[1] + 2LL * a->pad_h) * (in->dims[2] + 2LL * a->pad_w);
    long long image = (long long)c * in->dims[1] * in->dims[2];
    if (unfolded > INT_MAX / 2 || ho * wo > INT_MAX / 2 || padded > INT_MAX / 2 ||
        image > INT_MAX / 2 ||
        (long long)a->out_channels * ho * wo > INT_MAX)
        return lop_fail(LOP_ESHAPE, "conv2d '%s': kernel or output too large", n->name);
    n->ndim = 3;
    n->dims[0] = a->out_channels;
    n->dims[1] = (int)ho;
    n->dims[2] = (int)wo;
    return LOP_OK;
}

/* Channels per group of the input, which the weight's second axis spans. */
static int in_channels_per_group(const lop_graph *g, const lop_node *n)
{
    return lop_input_node(g, n, 0)->dims[0] / n->attr.groups;
}

static int conv_init(const lop_graph *g, lop_node *n, lop_rng *rng)
{
    const lop_attrs *a = &n->attr;
    int shape[4] = {a->out_channels, in_channels_per_group(g, n), a->kernel_h, a->kernel_w};
    int st = lop_node_add_param(n, "weight", 4, shape, 1);
    if (st != LOP_OK)
        return st;
    /* Kaiming-normal for ReLU networks: keeps activation variance across depth. */
    double std = sqrt(2.0 / ((double)shape[1] * shape[2] * shape[3]));
    lop_tensor *w = n->param[PARAM_WEIGHT];
    for (size_t i = 0; i < w->numel; i++)
        w->data[i] = (float)(std * lop_rng_normal(rng));
    if (a->bias)
        return lop_node_add_param(n, "bias", 1, &a->out_channels, 1);
    return LOP_OK;
}

/* Padded layers unfold from zero-padded copies of the input planes, one channel at a
 * time; unpadded ones straight from the input. */
static int is_padded(const conv_geom *q)
{
    return q->ph > 0 || q->pw > 0;
}

/* Row pitch of a zero-padded plane. */
static int padded_width(const conv_geom *q)
{
    return q->w + 2 * q->pw;
}

/* Floats of one channel's zero-padded plane: every position any kernel tap reads. */
static size_t padded_plane(const conv_geom *q)
{
    return (size_t)(q->h + 2 * q->ph) * (size_t)padded_width(q);
}

/* Floats from one image's planes to the next's in what the taps read. */
static size_t image_pitch(const conv_geom *q)
{
    return is_padded(q) ? padded_plane(q) : (size_t)q->c * q->h * q->w;
}

/* The (un)folding's work space for a chunk of nb images, in floats: one channel of
 * every image as zero-padded planes (padded layers only), then an int per output row
 * (the offsets below). */
static size_t unfold_floats(const conv_geom *q, int nb)
{
    return (is_padded(q) ? (size_t)nb * padded_plane(q) : 0) + (size_t)nb * q->ho;
}

/* Output row (b, oy) of a chunk reads, under kernel tap (ki, kj), every sw-th float
 * from offset[b * ho + oy] + ki * padded_width(q) + kj on, counted from one channel's
 * plane of the chunk's first image (padded or not; unpadded, padded_width is w).
 * conv_infer and chunk_images keep the offsets within int. */
static int *row_offsets(const conv_geom *q, int nb, float *work)
{
    _Static_assert(sizeof(int) == sizeof(float), "offsets share the float scratch");
    int *offset = (int *)(work + (is_padded(q) ? (size_t)nb * padded_plane(q) : 0));
    int wp = padded_width(q), image = (int)image_pitch(q), i = 0;
    for (int b = 0; b < nb; b++)
        for (int oy = 0; oy < q->ho; oy++)
            offset[i++] = b * image + oy * q->sh * wp;
    return offset;
}

/* Copy n floats.  Small maps' rows (2, 4 or 8 floats) get loops of constant length,
 * which compile to single vector moves: with the length only known at run time, the
 * copy loop costs more per row than the row's data (unfolding 4x4 maps took 28 % of
 * a 135 -> 135 3x3 convolution). */
static inline void copy_row(float *restrict out, const float *restrict in, int n)
{
    switch (n) {
    case 2:
        for (int i = 0; i < 2; i++) out[i] = in[i];
        break;
    case 4:
        for (int i = 0; i < 4; i++) out[i] = in[i];
        break;
    case 8:
        for (int i = 0; i < 8; i++) out[i] = in[i];
        break;
    default:
        for (int i = 0; i < n; i++) out[i] = in[i];
    }
}

/* out[i] = in[2 i] for i < n, a vector of outputs at a time (a stride-2 layer's
 * unfolded row; reads in[0 .. 2 n - 1)).  Float by float this gather took a fifth of
 * a 64 -> 128 stride-2 layer's time on a 56x56 map at batch 1. */
static void copy_row_stride2(float *restrict out, const float *restrict in, int n)
{
    for (int k = 0; k < n; k += VEC_LANES) {
        int left = n - k, floats = 2 * left - 1;
        vec even, odd;
        vec_load_evens_odds(in + 2 * k, floats < 2 * VEC_LANES ? floats : 2 * VEC_LANES,
                            &even, &odd);
        if (left >= VEC_LANES)
            vec_store(out + k, even);
        else
            vec_store_first(out + k, even, left);
    }
}

/* Channel c of nb images [nb, C, H, W] into the interiors of their padded planes (the
 * borders are left as they are). */
static void pad_channel(const float *x, int nb, int c, const conv_geom *q, float *planes)
{
    int wp = padded_width(q);
    for (int b = 0; b < nb; b++) {
        const float *src = x + ((size_t)b * q->c + c) * q->h * q->w;
        float *dst = planes + (size_t)b * padded_plane(q) + (size_t)q->ph * wp + q->pw;
        for (int y = 0; y < q->h; y++)
            copy_row(dst + (size_t)y * wp, src + (size_t)y * q->w, q->w);
    }
}

/* Unfold nb images [nb, C, H, W] into col [C * kh * kw, nb * HW']: row (c, ki, kj)
 * holds, for every image and output position, the input value under kernel tap
 * (ki, kj) of channel c.  Group g's rows are the contiguous block g * K .. g * K + K.
 * Padded layers first copy each channel into zero-padded planes, so that every output
 * row is a plain copy without bounds checks: on small maps, per-row bounds and copy
 * calls cost more than the products.  im2col_channels unfolds the rows of channels
 * [c0, c1) only, so that workers with their own work space can share a chunk. */
static void im2col_channels(const float *x, int nb, const conv_geom *q, int c0, int c1,
                            float *work, float *col)
{
    size_t ncols = (size_t)nb * q->hwo;
    int wp = padded_width(q);
    const int *offset = row_offsets(q, nb, work);
    if (is_padded(q))
        memset(work, 0, (size_t)nb * padded_plane(q) * sizeof *work);
    for (int c = c0; c < c1; c++) {
        const float *planes = work;
        if (is_padded(q))
            pad_channel(x, nb, c, q, work);
        else
            planes = x + (size_t)c * q->h * q->w;
        for (int ki = 0; ki < q->kh; ki++)
            for (int kj = 0; kj < q->kw; kj++) {
                const float *from = planes + (size_t)ki * wp + kj;
                float *row = col + ((size_t)(c * q->kh + ki) * q->kw + kj) * ncols;
                for (int r = 0; r < nb * q->ho; r++) {
                    const float *restrict in = from + offset[r];
                    float *restrict out = row + (size_t)r * q->wo;
                    if (q->sw == 1)
                        copy_row(out, in, q->wo);
                    else if (q->sw == 2)
                        copy_row_stride2(out, in, q->wo);
                    else
                        for (int ox = 0; ox < q->wo; ox++)
                            out[ox] = in[(size_t)ox * q->sw];
                }
            }
    }
}

static void im2col(const float *x, int nb, const conv_geom *q, float *work, float *col)
{
    im2col_channels(x, nb, q, 0, q->c, work, col);
}

/* The adjoint of copy_row_stride2 for two neighbouring taps at once: acc[2 i] += even[i]
 * and acc[2 i + 1] += odd[i] for i < n, the two rows alternated into whole vectors of
 * acc; with odd NULL only the even places (acc[2 n - 1] is not touched), the odd ones
 * given -0, which adds nothing to any float.  Each place gets its taps' values in the
 * order the tap-by-tap loop adds them.  Float by float, the strided adds took a third
 * of a 16 -> 32 stride-2 layer's backward pass on 28x28 maps. */
static void add_rows_stride2(float *restrict acc, const float *restrict even,
                             const float *restrict odd, int n)
{
    vec none = -(vec){0};   /* -0 in every lane */
    for (int k = 0; k < n; k += VEC_LANES) {
        int left = n - k < VEC_LANES ? n - k : VEC_LANES;
        int floats = 2 * left - (odd == NULL);   /* of acc from acc[2 k] on */
        vec a = vec_load_first(even + k, left), b = odd ? vec_load_first(odd + k, left) : none;
        vec lo, hi;
        vec_alternate(a, b, &lo, &hi);
        float *at = acc + 2 * (size_t)k;
        int first = floats < VEC_LANES ? floats : VEC_LANES, second = floats - first;
        vec_store_first(at, vec_load_first(at, first) + lo, first);
        if (second > 0)
            vec_store_first(at + VEC_LANES, vec_load_first(at + VEC_LANES, second) + hi,
                            second);
    }
}

/* The adjoint of im2col: add every column entry back onto the input value it was
 * read from (entries that came from padding are dropped). */
static void col2im(const float *col, int nb, const conv_geom *q, float *work, float *dx)
{
    size_t ncols = (size_t)nb * q->hwo;
    int wp = padded_width(q);
    const int *offset = row_offsets(q, nb, work);
    for (int c = 0; c < q->c; c++) {
        float *planes = work;
        if (is_padded(q))
            memset(work, 0, (size_t)nb * padded_plane(q) * sizeof *work);
        else
            planes = dx + (size_t)c * q->h * q->w;
        for (int ki = 0; ki < q->kh; ki++)
            for (int kj = 0; kj < q->kw; kj++) {
                float *to = planes + (size_t)ki * wp + kj;
                const float *row = col + ((size_t)(c * q->kh + ki) * q->kw + kj) * ncols;
                if (q->sw == 2) {   /* taps kj and kj + 1 together, or kj alone */
                    const float *next = kj + 1 < q->kw ? row + ncols : NULL;
                    for (int r = 0; r < nb * q->ho; r++)
                        add_rows_stride2(to + offset[r], row + (size_t)r * q->wo,
                                         next ? next + (size_t)r * q->wo : NULL, q->wo);
                    kj += next != NULL;
                    continue;
                }
                for (int r = 0; r < nb * q->ho; r++) {
                    float *restrict acc = to + offset[r];
                    const float *restrict d = row + (size_t)r * q->wo;
                    for (int ox = 0; ox < q->wo; ox++)
                        acc[(size_t)ox * q->sw] += d[ox];
                }
            }
        for (int b = 0; is_padded(q) && b < nb; b++) {
            const float *src = work + (size_t)b * padded_plane(q) + (size_t)q->ph * wp + q->pw;
            float *dst = dx + ((size_t)b * q->c + c) * q->h * q->w;
            for (int y = 0; y < q->h; y++)
                for (int i = 0; i < q->w; i++)
                    dst[(size_t)y * q->w + i] += src[(size_t)y * wp + i];
        }
    }
}

/* Images per chunk: enough for COLS_TARGET product columns (on the Winograd path
 * WINO_TILES_TARGET tiles) while the chunk's scratch stays under SCRATCH_CAP and its
 * padded planes' offsets within int (but always at least one image), and small enough
 * for MIN_CHUNKS chunks.  It depends on the shapes only, never on the number of
 * threads, so that the weight gradient sums the same products in the same order on
 * any number of threads.  The direct path multiplies
 * each image in place, so it takes them one at a time. */
static int chunk_images(const conv_geom *q, int batch)
{
    if (q->direct)
        return 1;
    size_t per_image = ((size_t)q->c * q->kh * q->kw + (size_t)q->o) * (size_t)q->hwo;
    size_t cols = (size_t)q->hwo, target = COLS_TARGET;
    if (q->winograd) {  /* transformed tiles of the output (forward) or input (dx) */
        int r = q->winograd;
        size_t out = (size_t)tiles_of(q->ho, q->wo, r), in = (size_t)tiles_of(q->h, q->w, r);
        cols = out;
        target = r == 4 ? WINO_F4_TILES_TARGET : WINO_TILES_TARGET;
        per_image = (size_t)(r + 2) * (r + 2) * ((size_t)q->c + (size_t)q->o) *
                    (out > in ? out : in);
    }
    size_t nb = (target + cols - 1) / cols;
    if (nb > SCRATCH_CAP / per_image)
        nb = SCRATCH_CAP / per_image;
    if (nb > (size_t)INT_MAX / 2 / image_pitch(q))
        nb = (size_t)INT_MAX / 2 / image_pitch(q);
    size_t share = ((size_t)batch + MIN_CHUNKS - 1) / MIN_CHUNKS;
    if (nb > share)
        nb = share;
    return nb < 1 ? 1 : (int)nb;
}

/* The scratch: first the stencil or Winograd path's packed weights, shared by the
 * workers; then for each worker the columns and the (un)folding's work space (neither
 * on the direct, stencil and Winograd paths), product rows
 * [O, nb * HW'] (needed only when a chunk holds several images, since one image's rows
 * already are its NCHW layout; not on the stencil and Winograd paths) and the stencil
 * or Winograd kernels' work space; then, for backward, the weight and bias gradient sums of parts 1.. (part 0
 * sums into the node's own), and a whole batch's weight gradient steps (conv_job's
 * whole). */
typedef struct conv_scratch {
    size_t packed, col, rows, stencil, per_worker, grads, whole;
    int threads;
    float *base;
} conv_scratch;

/* What the worker threads share: the layer's tensors and how they are chunked. */
typedef struct conv_job {
    conv_geom q;
    const float *x, *w, *dy;
    const lop_epilogue *ep;   /* forward: how the outputs are stored */
    float *y, *dx, *dw, *db;
    int batch, nb;
    /* Backward: the chunks are cut into `parts` runs of consecutive chunks (by shapes
     * alone), each summing its weight and bias gradients apart. */
    long chunks;
    int parts;
    conv_scratch s;
    /* The Winograd path's plans: the forward convolution (also the weight gradient's)
     * and, in backward, the input gradient's. */
    lop_wino wf, wdx;
    /* The Winograd forward's transformed weights: at the scratch's start, made on
     * every pass, or a frozen graph's node->prepared, made once (kept_weights). */
    float *u;
    int u_ready;              /* u already holds them */
    int blocked;              /* batch 1, U made per pass and large: a block at a time */
    int whole;                /* backward: the weight gradient over the whole batch */
    /* The stencil path's plans: st is the forward pass's, or the input gradient's
     * in backward; wgrad the weight gradient's (the forward geometry). */
    lop_stencil st, wgrad;
    int slices;               /* stencil forward: jobs per image; else product slices */
    int b0, m;                /* Winograd and sliced forward: the chunk shared out */
    const float *src;         /* sliced forward: the chunk's columns (or input) */
    float *col;               /* sliced forward: where the workers unfold the chunk */
    int overwrite;            /* backward: the input gradient is stored, not added to */
    float *rows;              /* sliced forward: its product rows */
} conv_job;

static int conv_scratch_get(lop_graph *g, const conv_job *j, int threads, size_t wsize,
                            conv_scratch *s)
{
    const conv_geom *q = &j->q;
    size_t ncols = (size_t)j->nb * q->hwo;
    s->packed = q->stencil ? lop_stencil_weight_floats(&j->st)
                : q->winograd && !j->u && !j->blocked ? lop_wino_weight_floats(&j->wf) : 0;
    s->col = q->direct || q->stencil || q->winograd
                 ? 0 : (size_t)q->c * q->kh * q->kw * ncols + unfold_floats(q, j->nb);
    s->rows = j->nb > 1 && !q->stencil && !q->winograd ? (size_t)q->o * ncols : 0;
    /* with the weight gradient over the whole batch, the parts sum only the bias's */
    s->grads = wsize ? (j->whole ? 0 : wsize) + (size_t)q->o : 0;
    s->stencil = 0;
    if (q->stencil) {
        s->stencil = lop_stencil_scratch_floats(&j->st);
        size_t wgrad = wsize ? lop_stencil_wgrad_floats(&j->wgrad, j->nb) : 0;
        if (wgrad > s->stencil)
            s->stencil = wgrad;
    }
    if (q->winograd) {   /* the stencil kernels' share holds the Winograd ones' */
        s->stencil = lop_wino_scratch_floats(wsize ? &j->wdx : &j->wf, j->nb);
        size_t wgrad = wsize && !j->whole ? lop_wino_wgrad_floats(&j->wf, j->nb) : 0;
        if (wgrad > s->stencil)
            s->stencil = wgrad;
        if (j->blocked)   /* after worker 0's V, which the blocks share */
            s->stencil += lop_wino_block_floats(&j->wf, WINO_BLOCK_OUTS);
    }
    s->per_worker = s->col + s->rows + s->stencil;
    s->threads = threads;
    s->base = NULL;
    s->whole = j->whole ? lop_wino_wgrad_floats(&j->wf, j->batch) : 0;
    size_t total = s->packed + s->per_worker * (size_t)threads +
                   s->grads * (size_t)(j->parts - 1) + s->whole;
    if (total == 0)
        return LOP_OK;
    s->base = lop_graph_scratch(g, total);
    return s->base ? LOP_OK : LOP_ENOMEM;
}

/* Worker w's share of the scratch. */
static float *worker_scratch(const conv_scratch *s, int worker)
{
    return s->base ? s->base + s->packed + (size_t)worker * s->per_worker : NULL;
}

/* Part p's own weight and bias gradient sums (p >= 1), after the workers' scratch. */
static float *part_sums(const conv_scratch *s, int part)
{
    return s->base + s->packed + s->per_worker * (size_t)s->threads +
           s->grads * (size_t)(part - 1);
}

/* The whole batch's weight gradient steps' scratch, after the sums of parts
 * 1 .. parts - 1. */
static float *whole_area(const conv_job *j)
{
    return part_sums(&j->s, j->parts);
}

/* Where part p sums its weight and bias gradients: straight into the node's for part
 * 0, the others into their own sums, added to the node's in part order afterwards.
 * With the weight gradient over the whole batch (conv_job's whole) the parts sum only
 * the bias's. */
static void part_grads(const conv_job *j, int part, float **dw, float **db)
{
    float *mine = part == 0 ? NULL : part_sums(&j->s, part);
    *dw = j->whole ? NULL : part == 0 ? j->dw : mine;
    *db = !j->db ? NULL : part == 0 ? j->db : mine + (j->s.grads - j->q.o);
}

/* The chunks [*c0, *c1) of part p. */
static void part_chunks(const conv_job *j, long part, long *c0, long *c1)
{
    *c0 = j->chunks * part / j->parts;
    *c1 = j->chunks * (part + 1) / j->parts;
}

/* db[oc] += the output gradient of m images [m, O, HW'] summed over channel oc. */
static void add_bias_grad(const float *dy, int m, const conv_geom *q, float *db)
{
    for (int oc = 0; oc < q->o; oc++) {
        double sum = 0;
        for (int b = 0; b < m; b++) {
            const float *r = dy + ((size_t)b * q->o + oc) * q->hwo;
            for (int p = 0; p < q->hwo; p++)
                sum += r[p];
        }
        db[oc] += (float)sum;
    }
}

/* Whether e adds a bias (or nothing) and no more: what the stencil and tap-by-tap
 * kernels do as they store. */
static int epilogue_bias_only(const lop_epilogue *e)
{
    return !e->mul && !e->residual && !lop_epilogue_clamps(e);
}

/* Whether e stores the sums as they are. */
static int epilogue_idle(const lop_epilogue *e)
{
    return epilogue_bias_only(e) && !e->add;
}

/* epilogue_span's loop; inlined with constant `residual` and `clamp`, each case is a
 * loop without branches, which the compiler vectorises (one loop testing them per
 * value was not: 1.6x slower on a 1x1 layer's copy). */
static inline void span_loop(const float *s, const float *r, float *d, size_t n, float mul,
                             float add, float lo, float hi, int residual, int clamp)
{
    for (size_t p = 0; p < n; p++) {
        float v = s[p] * mul + add;
        if (residual)
            v += r[p];
        if (clamp) {
            v = v > lo ? v : lo;
            v = v < hi ? v : hi;
        }
        d[p] = v;
    }
}

/* d[0..n) = output channel oc's s[0..n) through e (d may be s; d lies in e->y, and
 * the residual at the same place); without bounds no clamp, so that a NaN stays one. */
static void epilogue_span(const lop_epilogue *e, int oc, const float *s, float *d, size_t n)
{
    float mul = e->mul ? e->mul[oc] : 1.0f, add = e->add ? e->add[oc] : 0.0f;
    const float *r = lop_epilogue_residual_at(e, d);
    int clamp = lop_epilogue_clamps(e);
    if (r && clamp)
        span_loop(s, r, d, n, mul, add, e->lo, e->hi, 1, 1);
    else if (r)
        span_loop(s, r, d, n, mul, add, e->lo, e->hi, 1, 0);
    else if (clamp)
        span_loop(s, r, d, n, mul, add, e->lo, e->hi, 0, 1);
    else
        span_loop(s, r, d, n, mul, add, e->lo, e->hi, 0, 0);
}

/* Output channels [o0, o1) of images [b0, b0 + m) of y through e, in place: for the
 * kernels that store sums (or sums and the bias) and leave the rest to this pass. */
static void epilogue_images(const lop_epilogue *e, const conv_geom *q, int b0, int m,
                            int o0, int o1, float *y)
{
    for (int b = b0; b < b0 + m; b++)
        for (int oc = o0; oc < o1; oc++) {
            float *d = y + ((size_t)b * q->o + oc) * q->hwo;
            epilogue_span(e, oc, d, d, (size_t)q->hwo);
        }
}

/* Product rows [O, m * HW'] -> m images [O, HW'] through e, for output channels
 * [o0, o1).  With m == 1 the layouts coincide and rows may be y. */
static void rows_to_images(const float *rows, int m, const conv_geom *q, const lop_epilogue *e,
                           int o0, int o1, float *y)
{
    size_t ncols = (size_t)m * q->hwo;
    for (int b = 0; b < m; b++)
        for (int oc = o0; oc < o1; oc++)
            epilogue_span(e, oc, rows + (size_t)oc * ncols + (size_t)b * q->hwo,
                          y + ((size_t)b * q->o + oc) * q->hwo, (size_t)q->hwo);
}

/* m images [O, HW'] -> product rows [O, m * HW']. */
static void images_to_rows(const float *y, int m, const conv_geom *q, float *rows)
{
    size_t ncols = (size_t)m * q->hwo;
    for (int b = 0; b < m; b++)
        for (int oc = 0; oc < q->o; oc++)
            memcpy(rows + (size_t)oc * ncols + (size_t)b * q->hwo,
                   y + ((size_t)b * q->o + oc) * q->hwo, (size_t)q->hwo * sizeof *rows);
}

/* Where the (un)folding works in a worker's scratch: after the columns. */
static float *unfold_work(const conv_job *j, float *col)
{
    return col + (size_t)j->q.c * j->q.kh * j->q.kw * j->nb * j->q.hwo;
}

/* Chunk `chunk`'s first image *b0 and image count *m. */
static void chunk_span(const conv_job *j, long chunk, int *b0, int *m)
{
    *b0 = (int)chunk * j->nb;
    *m = j->batch - *b0 < j->nb ? j->batch - *b0 : j->nb;
}

/* Chunk `chunk`'s first image *b0 and image count *m; returns the right-hand side of
 * its products: the input itself on the direct path, else its columns in col. */
static const float *chunk_source(const conv_job *j, long chunk, float *col, int *b0, int *m)
{
    const conv_geom *q = &j->q;
    chunk_span(j, chunk, b0, m);
    const float *xb = j->x + (size_t)*b0 * q->c * q->h * q->w;
    if (q->direct)
        return xb;
    im2col(xb, *m, q, unfold_work(j, col), col);
    return col;
}

static void forward_chunks(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    const conv_geom *q = &j->q;
    float *col = worker_scratch(&j->s, worker);
    float *rows = col ? col + j->s.col : NULL;
    for (long chunk = first; chunk < last; chunk++) {
        int b0, m;
        const float *src = chunk_source(j, chunk, col, &b0, &m);
        int ncols = m * q->hwo;
        float *yb = j->y + (size_t)b0 * q->o * q->hwo;
        float *dst = m == 1 ? yb : rows;
        for (int gi = 0; gi < q->groups; gi++)
            lop_sgemm(CblasNoTrans, CblasNoTrans, q->og, ncols, q->k, 1.0f,
                      j->w + (size_t)gi * q->og * q->k, q->k,
                      src + (size_t)gi * q->k * ncols, ncols, 0.0f,
                      dst + (size_t)gi * q->og * ncols, ncols);
        if (m > 1 || !epilogue_idle(j->ep))
            rows_to_images(dst, m, q, j->ep, 0, q->o, yb);
    }
}

/* Whether a chunk of m images is sliced by its columns (output positions) rather than
 * its rows (output channels): each slice packs its own copy of the other operand, so
 * the cut goes across the larger one - columns for a wide map and few channels (a
 * stem), rows for many channels on a small map.  Column slices need m == 1, where the
 * product rows are the output image itself. */
static int slice_by_columns(const conv_geom *q, int m)
{
    return m == 1 && q->hwo > q->o;
}

/* A chunk's products cut into this many slices (im2col and direct paths): a batch of
 * fewer chunks than MIN_CHUNKS - a single image above all - would otherwise keep one
 * thread busy and the others idle.  Shapes alone set the cut. */
static int row_slices(const conv_geom *q, long chunks, int nb)
{
    double flops = 2.0 * q->o * q->k * (double)nb * q->hwo;   /* one chunk's products */
    if (q->groups != 1 || chunks >= MIN_CHUNKS || flops < SLICE_MIN_FLOPS)
        return 1;
    int slices = slice_by_columns(q, nb) ? q->hwo / COLUMN_ALIGN : q->o / ROWS_PER_SLICE_MIN;
    return slices < 1 ? 1 : slices > MIN_CHUNKS ? MIN_CHUNKS : slices;
}

/* Channels [c0, c1) of the chunk j->b0, j->m unfolded into j->col, in the worker's
 * own work space: the columns every slice reads, unfolded by all threads (on one, they
 * took 0.1 of a 64 -> 128 stride-2 layer's 0.75 ms on a 56x56 map at batch 1). */
static void unfold_shares(void *ctx, long c0, long c1, int worker)
{
    const conv_job *j = ctx;
    const conv_geom *q = &j->q;
    im2col_channels(j->x + (size_t)j->b0 * q->c * q->h * q->w, j->m, q, (int)c0, (int)c1,
                    unfold_work(j, worker_scratch(&j->s, worker)), j->col);
}

/* Slices [first, last) of the products of the chunk j->src unfolds (images j->b0 ..
 * j->b0 + j->m - 1): a range of output positions of a single image, or a range of
 * output channels [o0, o1). */
static void forward_slices(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    const conv_geom *q = &j->q;
    int ncols = j->m * q->hwo;
    float *yb = j->y + (size_t)j->b0 * q->o * q->hwo;
    float *dst = j->m == 1 ? yb : j->rows;
    for (long slice = first; slice < last; slice++) {
        if (slice_by_columns(q, j->m)) {
            int p0, p1;
            lop_slice_of(ncols, slice, j->slices, COLUMN_ALIGN, &p0, &p1);
            lop_sgemm(CblasNoTrans, CblasNoTrans, q->o, p1 - p0, q->k, 1.0f,
                      j->w, q->k, j->src + p0, ncols, 0.0f, yb + p0, ncols);
            for (int oc = 0; !epilogue_idle(j->ep) && oc < q->o; oc++)
                epilogue_span(j->ep, oc, yb + (size_t)oc * ncols + p0,
                              yb + (size_t)oc * ncols + p0, (size_t)(p1 - p0));
            continue;
        }
        int o0, o1;
        lop_slice_of(q->o, slice, j->slices, 1, &o0, &o1);
        lop_sgemm(CblasNoTrans, CblasNoTrans, o1 - o0, ncols, q->k, 1.0f,
                  j->w + (size_t)o0 * q->k, q->k, j->src, ncols, 0.0f,
                  dst + (size_t)o0 * ncols, ncols);
        if (j->m > 1 || !epilogue_idle(j->ep))
            rows_to_images(dst, j->m, q, j->ep, o0, o1, yb);
    }
}

/* The stencil path forward: job i is image i / slices, its slice i % slices of the
 * output channel blocks.  Images are split only when there are fewer of them than
 * threads, so that a single image still keeps every thread busy. */
static void stencil_chunks(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    const conv_geom *q = &j->q;
    float *scratch = worker_scratch(&j->s, worker);
    for (long job = first; job < last; job++) {
        long b = job / j->slices, slice = job % j->slices;
        int lo = (int)(j->st.blocks * slice / j->slices);
        int hi = (int)(j->st.blocks * (slice + 1) / j->slices);
        int plain = epilogue_bias_only(j->ep);
        lop_stencil_image(&j->st, j->s.base, j->x + (size_t)b * q->c * q->h * q->w,
                          plain ? j->ep->add : NULL, lo, hi, 0, scratch,
                          j->y + (size_t)b * q->o * q->hwo);
        if (!plain) {
            int o1 = hi * STENCIL_OUT < q->o ? hi * STENCIL_OUT : q->o;
            epilogue_images(j->ep, q, (int)b, 1, lo * STENCIL_OUT, o1, j->y);
        }
    }
}

/* The Winograd path forward, a chunk of images per job. */
static void winograd_chunks(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    const conv_geom *q = &j->q;
    float *scratch = worker_scratch(&j->s, worker);
    for (long chunk = first; chunk < last; chunk++) {
        int b0, m;
        chunk_span(j, chunk, &b0, &m);
        lop_wino_chunk(&j->wf, j->u, j->x + (size_t)b0 * q->c * q->h * q->w, m, j->ep,
                       0, scratch, j->y + (size_t)b0 * q->o * q->hwo);
    }
}

/* With fewer chunks than threads (a single image, say), each chunk's three steps are
 * shared out in turn: input channels, tile positions, output channels; the transformed
 * tiles V and products M live in worker 0's scratch.  Every value is computed as on one
 * thread. */
static float *winograd_shared_v(const conv_job *j)
{
    return lop_wino_v(&j->wf, worker_scratch(&j->s, 0));
}

static float *winograd_shared_m(const conv_job *j)
{
    return lop_wino_m(&j->wf, j->m, worker_scratch(&j->s, 0));
}

static void winograd_share_input(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    lop_wino_input(&j->wf, j->x + (size_t)j->b0 * j->q.c * j->q.h * j->q.w, j->m, (int)first,
                   (int)last, winograd_shared_v(j));
}

static void winograd_share_products(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    lop_wino_products(&j->wf, j->u, winograd_shared_v(j), j->m, (int)first, (int)last,
                      winograd_shared_m(j));
}

static void winograd_share_output(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    lop_wino_output(&j->wf, winograd_shared_m(j), j->m, (int)first, (int)last, j->ep, 0,
                    j->y + (size_t)j->b0 * j->q.o * j->q.hwo);
}

/* The transformed weights, shared out by output channels: forward U from the
 * forward plan, backward U' (the adjoint) from the input gradient's. */
static void winograd_pack_share(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    int adjoint = j->dy != NULL;
    lop_wino_pack(adjoint ? &j->wdx : &j->wf, j->w, adjoint, (int)first, (int)last,
                  adjoint ? j->s.base : j->u);
}

/* Blocks [first, last) of WINO_BLOCK_OUTS output channels of a batch-1 pass. */
static void winograd_blocks(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    float *scratch = worker_scratch(&j->s, worker) + lop_wino_scratch_floats(&j->wf, 1);
    for (long blk = first; blk < last; blk++) {
        int o0 = (int)blk * WINO_BLOCK_OUTS;
        int o1 = o0 + WINO_BLOCK_OUTS < j->q.o ? o0 + WINO_BLOCK_OUTS : j->q.o;
        lop_wino_block(&j->wf, j->w, winograd_shared_v(j), o0, o1, j->ep, scratch, j->y);
    }
}

static void winograd_forward(conv_job *j, int threads)
{
    if (j->blocked) {
        j->b0 = 0;
        j->m = 1;
        lop_parallel_for(j->q.c, 1, winograd_share_input, j);
        lop_parallel_for((j->q.o + WINO_BLOCK_OUTS - 1) / WINO_BLOCK_OUTS, 1, winograd_blocks,
                         j);
        return;
    }
    if (!j->u_ready)
        lop_parallel_for(j->q.o, 1, winograd_pack_share, j);
    if (j->chunks >= threads) {
        lop_parallel_for(j->chunks, 1, winograd_chunks, j);
        return;
    }
    for (long chunk = 0; chunk < j->chunks; chunk++) {
        chunk_span(j, chunk, &j->b0, &j->m);
        lop_parallel_for(j->q.c, 1, winograd_share_input, j);
        lop_parallel_for(j->wf.positions, 1, winograd_share_products, j);
        lop_parallel_for(j->q.o, 1, winograd_share_output, j);
    }
}

/* What a frozen graph's node keeps in node->prepared (prepared_for): the Winograd
 * path's transformed weights for its tile size (2 or 4, kept_weights below), or
 * PREPARED_TAPS, the tap-by-tap forward's (conv_taps.h). */
enum { PREPARED_TAPS = 1 };

/* A frozen graph's node n keeping `floats` floats for the path `code` (prepared_for):
 * *data where they are, *ready whether a pass before made them for that path; *data
 * NULL when they are too many to keep (then made on every pass). */
static int prepared_of(lop_node *n, int code, size_t floats, float **data, int *ready)
{
    *data = NULL;
    *ready = n->prepared && n->prepared_for == code;
    if (!*ready) {
        if (floats > INT_MAX)
            return LOP_OK;
        int len = (int)floats;
        n->prepared_for = 0;
        int st = lop_tensor_ensure(&n->prepared, 1, &len);
        if (st != LOP_OK)
            return st;
        n->prepared_for = code;
    }
    *data = n->prepared->data;
    return LOP_OK;
}

/* The tap-by-tap forward's transformed weights kept in a frozen graph's node n, as the
 * Winograd path keeps its own: *kept where they go (NULL: nothing to keep, or too
 * many to keep), *made whether a pass before made them already.  VGG-16's conv5 on 2x2
 * maps otherwise transforms its weights on every pass, about a fifth of the layer's
 * time at batch 64. */
static int kept_taps_weights(lop_node *n, const lop_taps *p, float **kept, int *made)
{
    size_t floats = lop_taps_kept_floats(p);
    *kept = NULL;
    *made = 0;
    return floats ? prepared_of(n, PREPARED_TAPS, floats, kept, made) : LOP_OK;
}

/* The tap-by-tap path (conv_taps.c), forward or backward; the bias gradient here.
 * keep: the frozen graph's node whose transformed weights a forward keeps, or NULL. */
static int taps_pass(lop_graph *g, const conv_job *j, int backward, lop_node *keep)
{
    const conv_geom *q = &j->q;
    lop_taps p;
    lop_taps_plan(&p, q->c, q->h, q->w, q->o, q->kh, q->kw, q->sh, q->sw, q->ph, q->pw,
                  j->batch);
    float *scratch = lop_graph_scratch(g, lop_taps_scratch_floats(&p, backward));
    if (!scratch)
        return LOP_ENOMEM;
    if (!backward) {
        float *kept = NULL;
        int made = 0;
        int st = keep ? kept_taps_weights(keep, &p, &kept, &made) : LOP_OK;
        if (st != LOP_OK)
            return st;
        int plain = epilogue_bias_only(j->ep);
        lop_taps_forward(&p, j->w, plain ? j->ep->add : NULL, j->x, j->batch, kept, made,
                         scratch, j->y);
        if (!plain)
            epilogue_images(j->ep, q, 0, j->batch, 0, q->o, j->y);
        return LOP_OK;
    }
    if (j->db)
        add_bias_grad(j->dy, j->batch, q, j->db);
    lop_taps_backward(&p, j->w, j->x, j->dy, j->batch, !j->overwrite, scratch, j->dx, j->dw);
    return LOP_OK;
}

/* Whether a batch-1 pass's transformed weights, made whole, would not stay in cache
 * (WINO_CACHED_FLOATS). */
static int weights_outgrow_cache(const conv_job *j)
{
    return j->batch == 1 && lop_wino_weight_floats(&j->wf) > WINO_CACHED_FLOATS;
}

/* In a frozen graph (lop_graph_freeze) the Winograd weights are made once and kept in
 * the node, for the tile size they were made for: j->u points there (u_ready when they
 * are already made).  Otherwise j->u stays NULL, for the scratch to hold them - or at
 * batch 1 for lop_wino_block to make a block at a time.  That is faster than reading
 * kept F(4x4) weights (36/9 of the layer's) from memory once they outgrow an L2
 * (ResNet-18's 128 channels on 28x28, 2.4 MB kept: 0.53-0.57 ms against 0.49-0.54;
 * 256 on 14x14, 9.4 MB: 0.77-0.81 against 0.66-0.67; its 64 channels, 0.6 MB, stay
 * kept: 0.39-0.40 against 0.47-0.50; F(2x2)'s 16/9 on 7x7 stay kept too: 1.0-1.05
 * against 1.37-1.40 ms; 2 threads, 2026-12-06, AVX-512). */
static int kept_weights(lop_node *n, int frozen, conv_job *j)
{
    j->u = NULL;
    j->u_ready = 0;
    if (!frozen || !j->q.winograd)
        return LOP_OK;
    if (j->q.winograd == 4 && weights_outgrow_cache(j))
        return LOP_OK;
    return prepared_of(n, j->q.winograd, lop_wino_weight_floats(&j->wf), &j->u, &j->u_ready);
}

static int conv_forward(lop_graph *g, lop_node *n, int train)
{
    conv_job j;
    geom_of(g, n, 0, &j.q);
    const conv_geom *q = &j.q;
    int threads = lop_parallel_threads();
    j.x = lop_input_node(g, n, 0)->out->data;
    j.w = n->param[PARAM_WEIGHT]->data;
    /* alone, the outputs take the bias; fused, what the graph says */
    lop_epilogue alone = {.add = n->attr.bias ? n->param[PARAM_BIAS]->data : NULL,
                          .lo = -INFINITY, .hi = INFINITY, .y = n->out->data};
    j.ep = n->epilogue ? n->epilogue : &alone;
    j.y = j.ep->y;
    j.dy = NULL;
    j.batch = lop_node_batch(n);
    j.whole = 0;
    if (q->taps)
        return taps_pass(g, &j, 0, g->frozen && !train ? n : NULL);
    j.nb = q->stencil ? 1 : chunk_images(q, j.batch);
    j.chunks = (j.batch + j.nb - 1) / j.nb;
    j.parts = 1;
    if (q->stencil)
        lop_stencil_plan(&j.st, q->c, q->h, q->w, q->o, q->kh, q->kw, q->ph, q->pw, q->sh);
    if (q->winograd)
        lop_wino_plan(&j.wf, q->winograd, q->c, q->h, q->w, q->o, q->ph, q->pw);
    int st = kept_weights(n, g->frozen && !train, &j);
    /* made whole when they fit in cache (ResNet-18's 64 channels on 56x56, 0.6 MB: 0.48
     * -> 0.39 ms against blocks, whose products of 16 rows went to BLAS 4x as often) */
    j.blocked = q->winograd && !j.u && weights_outgrow_cache(&j);
    if (st == LOP_OK)
        st = conv_scratch_get(g, &j, threads, 0, &j.s);
    if (st != LOP_OK)
        return st;
    if (q->winograd) {
        if (!j.u)
            j.u = j.s.base;
        winograd_forward(&j, threads);
        return LOP_OK;
    }
    if (!q->stencil) {
        j.slices = row_slices(q, j.chunks, j.nb);
        if (j.slices == 1) {
            lop_parallel_for(j.chunks, 1, forward_chunks, &j);
            return LOP_OK;
        }
        /* The first worker's scratch holds the columns, which every slice reads. */
        float *col = worker_scratch(&j.s, 0);
        j.rows = col ? col + j.s.col : NULL;
        j.col = col;
        for (long chunk = 0; chunk < j.chunks; chunk++) {
            chunk_span(&j, chunk, &j.b0, &j.m);
            if (q->direct) {
                j.src = j.x + (size_t)j.b0 * q->c * q->h * q->w;
            } else {
                long per_channel = (long)q->kh * q->kw * j.m * q->hwo;
                lop_parallel_for(q->c, 1 + LOP_GRAIN / per_channel, unfold_shares, &j);
                j.src = col;
            }
            lop_parallel_for(j.slices, 1, forward_slices, &j);
        }
        return LOP_OK;
    }
    lop_stencil_pack(&j.st, j.w, 0, j.s.base);
    j.slices = j.batch >= threads ? 1 : (threads + j.batch - 1) / j.batch;
    if (j.slices > j.st.blocks)
        j.slices = j.st.blocks;
    lop_parallel_for((long)j.batch * j.slices, 1, stencil_chunks, &j);
    return LOP_OK;
}

/* One chunk's backward: its bias and weight gradients added into db and dw, its input
 * gradient into dX; col is the worker's scratch. */
static void backward_chunk(const conv_job *j, long chunk, float *col, float *dw, float *db)
{
    const conv_geom *q = &j->q;
    int b0, m;
    const float *src = chunk_source(j, chunk, col, &b0, &m);
    int ncols = m * q->hwo;
    float *dxb = j->dx + (size_t)b0 * q->c * q->h * q->w;
    const float *d = j->dy + (size_t)b0 * q->o * q->hwo;
    if (db)
        add_bias_grad(d, m, q, db);
    if (m > 1) {
        float *rows = col + j->s.col;
        images_to_rows(d, m, q, rows);
        d = rows;
    }
    /* The direct path adds W^T dY straight into dX; otherwise group g's columns,
     * once used for its dW, are overwritten by its column gradient. */
    float *dcol = q->direct ? dxb : col;
    for (int gi = 0; gi < q->groups; gi++) {
        const float *dg = d + (size_t)gi * q->og * ncols;
        lop_sgemm(CblasNoTrans, CblasTrans, q->og, q->k, ncols, 1.0f, dg,
                  ncols, src + (size_t)gi * q->k * ncols, ncols, 1.0f,
                  dw + (size_t)gi * q->og * q->k, q->k);
        lop_sgemm(CblasTrans, CblasNoTrans, q->k, ncols, q->og, 1.0f,
                  j->w + (size_t)gi * q->og * q->k, q->k, dg, ncols,
                  q->direct && !j->overwrite ? 1.0f : 0.0f, dcol + (size_t)gi * q->k * ncols,
                  ncols);
    }
    if (!q->direct) {
        if (j->overwrite)   /* col2im adds its columns into the images */
            memset(dxb, 0, (size_t)m * q->c * q->h * q->w * sizeof *dxb);
        col2im(col, m, q, unfold_work(j, col), dxb);
    }
}

/* The stencil or Winograd path's chunk: bias and weight gradients into db and dw,
 * the input gradient (the adjoint convolution) added into dX. */
static void kernel_backward_chunk(const conv_job *j, long chunk, float *work, float *dw,
                                  float *db)
{
    const conv_geom *q = &j->q;
    int b0, m;
    chunk_span(j, chunk, &b0, &m);
    const float *dy = j->dy + (size_t)b0 * q->o * q->hwo;
    const float *x = j->x + (size_t)b0 * q->c * q->h * q->w;
    float *dx = j->dx + (size_t)b0 * q->c * q->h * q->w;
    if (db)
        add_bias_grad(dy, m, q, db);
    if (q->winograd) {
        if (!j->whole)
            lop_wino_wgrad(&j->wf, x, dy, m, work, dw);
        lop_wino_chunk(&j->wdx, j->s.base, dy, m, NULL, !j->overwrite, work, dx);
        return;
    }
    lop_stencil_wgrad(&j->wgrad, x, dy, m, work, dw);
    for (int b = 0; b < m; b++)
        lop_stencil_image(&j->st, j->s.base, dy + (size_t)b * q->o * q->hwo, NULL, 0,
                          j->st.blocks, !j->overwrite, work,
                          dx + (size_t)b * q->c * q->h * q->w);
}

/* A wide layer on a small map takes its Winograd weight gradient over the whole batch
 * at once, each step shared out to the threads by channels, positions or channel pairs
 * (conv_job's whole), where chunk by chunk each chunk paid for its own dU (36 floats a
 * weight) and its own fold back into dw, more than its V and dM: VGG-16's 4x4 maps
 * hold one tile an image, 16 in a chunk.  Each value is computed by one thread, so the
 * bits do not depend on their number.  Backward at batch 64, one thread (two), ms,
 * chunk by chunk -> whole: 256 -> 256 on 4x4 41.0-42.9 -> 31.7-32.0 (24.3-25.1 ->
 * 17.3-17.6), on 8x8 108.6 -> 99.3 (58.5 -> 51.9); 128 -> 128 on 8x8 30.5 -> 27.0 (18.7
 * -> 15.3).  Where a chunk's dU is smaller than its V and dM the chunks stay: whole,
 * 16 -> 16 on 32x32 took 10.8 -> 15.2 ms, 32 -> 32 on 8x8 2.30 -> 2.43. */
static int whole_weight_grad(const conv_job *j)
{
    const conv_geom *q = &j->q;
    size_t chunk_cols = (size_t)j->nb * j->wf.tiles;
    return q->winograd && j->chunks > 1 &&
           chunk_cols * (size_t)(q->c + q->o) <= (size_t)q->c * q->o &&
           lop_wino_wgrad_floats(&j->wf, j->batch) <= WINO_WHOLE_FLOATS;
}

static void whole_input(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    lop_wino_input(&j->wf, j->x, j->batch, (int)first, (int)last,
                   lop_wino_v(&j->wf, whole_area(j)));
}

static void whole_grad_tiles(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    lop_wino_grad_tiles(&j->wf, j->dy, j->batch, (int)first, (int)last,
                        lop_wino_m(&j->wf, j->batch, whole_area(j)));
}

static void whole_products(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    float *area = whole_area(j);
    float *v = lop_wino_v(&j->wf, area), *dm = lop_wino_m(&j->wf, j->batch, area);
    lop_wino_wgrad_products(&j->wf, v, dm, j->batch, (int)first, (int)last,
                            lop_wino_du(&j->wf, j->batch, area));
}

/* Groups [first, last) of VEC_LANES channel pairs. */
static void whole_fold(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    size_t pairs = (size_t)j->q.o * j->q.c, k1 = (size_t)last * VEC_LANES;
    lop_wino_wgrad_fold(&j->wf, lop_wino_du(&j->wf, j->batch, whole_area(j)),
                        (size_t)first * VEC_LANES, k1 < pairs ? k1 : pairs, j->dw);
}

static void whole_weight_grad_run(conv_job *j)
{
    size_t pairs = (size_t)j->q.o * j->q.c;
    lop_parallel_for(j->q.c, 1, whole_input, j);
    lop_parallel_for(j->q.o, 1, whole_grad_tiles, j);
    lop_parallel_for(j->wf.positions, 1, whole_products, j);
    lop_parallel_for((long)((pairs + VEC_LANES - 1) / VEC_LANES), 1, whole_fold, j);
}

/* Parts [first, last), each summing its weight and bias gradients apart, its chunks
 * in order. */
static void backward_parts(void *ctx, long first, long last, int worker)
{
    const conv_job *j = ctx;
    float *col = worker_scratch(&j->s, worker), *dw, *db;
    for (long part = first; part < last; part++) {
        long c0, c1;
        part_chunks(j, part, &c0, &c1);
        part_grads(j, (int)part, &dw, &db);
        for (long chunk = c0; chunk < c1; chunk++)
            if (j->q.stencil || j->q.winograd)
                kernel_backward_chunk(j, chunk, col, dw, db);
            else
                backward_chunk(j, chunk, col, dw, db);
    }
}

static int conv_backward(lop_graph *g, lop_node *n)
{
    conv_job j;
    geom_of(g, n, 1, &j.q);
    int threads = lop_parallel_threads();
    const lop_node *in = lop_input_node(g, n, 0);
    j.x = in->out->data;
    j.w = n->param[PARAM_WEIGHT]->data;
    j.dy = n->dout->data;
    j.dx = lop_input_grad(g, n, 0, &j.overwrite);
    j.dw = n->grad[PARAM_WEIGHT]->data;
    j.db = n->attr.bias ? n->grad[PARAM_BIAS]->data : NULL;
    j.u = NULL;   /* the adjoint weights go to the scratch */
    j.blocked = 0;
    j.whole = 0;
    j.batch = lop_node_batch(n);
    if (j.q.taps)
        return taps_pass(g, &j, 1, NULL);
    j.nb = chunk_images(&j.q, j.batch);
    j.chunks = (j.batch + j.nb - 1) / j.nb;
    j.parts = j.chunks < LOP_PARTS ? (int)j.chunks : LOP_PARTS;
    const conv_geom *q = &j.q;
    if (q->stencil) {   /* the weight gradient; the input gradient as the adjoint stencil */
        lop_stencil_plan(&j.wgrad, q->c, q->h, q->w, q->o, q->kh, q->kw, q->ph, q->pw, 1);
        lop_stencil_plan(&j.st, q->o, q->ho, q->wo, q->c, q->kh, q->kw, q->kh - 1 - q->ph,
                         q->kw - 1 - q->pw, 1);
    }
    if (q->winograd) {  /* the input gradient: the flipped, transposed kernel, pad 2 - p */
        lop_wino_plan(&j.wf, q->winograd, q->c, q->h, q->w, q->o, q->ph, q->pw);
        lop_wino_plan(&j.wdx, q->winograd, q->o, q->ho, q->wo, q->c, 2 - q->ph, 2 - q->pw);
        j.whole = whole_weight_grad(&j);
    }
    size_t wsize = n->param[PARAM_WEIGHT]->numel;
    int st = conv_scratch_get(g, &j, threads, wsize, &j.s);
    if (st != LOP_OK)
        return st;
    if (q->stencil)
        lop_stencil_pack(&j.st, j.w, 1, j.s.base);
    if (q->winograd)
        lop_parallel_for(q->c, 1, winograd_pack_share, &j);
    if (j.parts > 1)
        memset(part_sums(&j.s, 1), 0, j.s.grads * (size_t)(j.parts - 1) * sizeof(float));
    lop_parallel_for(j.parts, 1, backward_parts, &j);
    if (j.whole)
        whole_weight_grad_run(&j);
    for (int p = 1; p < j.parts; p++) {
        const float *part = part_sums(&j.s, p), *bias = part + (j.s.grads - q->o);
        for (size_t i = 0; !j.whole && i < wsize; i++)
            j.dw[i] += part[i];
        for (int oc = 0; j.db && oc < j.q.o; oc++)
            j.db[oc] += bias[oc];
    }
    return LOP_OK;
}

static double conv_flops(const lop_graph *g, const lop_node *n)
{
    const lop_attrs *a = &n->attr;
    return 2.0 * a->out_channels * in_channels_per_group(g, n) * a->kernel_h * a->kernel_w *
           n->dims[1] * n->dims[2];
}

const lop_layer_ops lop_conv2d_ops = {
    .infer = conv_infer,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .flops = conv_flops,
};
