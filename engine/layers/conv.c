/*
 * conv.c - 2-D convolution (strided, zero-padded, grouped) as im2col + cblas_sgemm,
 * the plan of ggml and darknet: unfolding the input into columns turns the whole
 * convolution into one matrix product that BLAS runs near peak.  Small feature maps
 * give thin products, so several images are unfolded side by side into one column
 * buffer.  A 1x1 stride-1 unpadded ungrouped convolution needs no unfolding at all,
 * because an NCHW image already is its own column matrix; it multiplies each image
 * in place when the map is wide enough for that to be as fast as batching.  Thin
 * stride-1 layers (few output channels) run on conv_stencil.c instead, forward and
 * backward, because there the unfolding costs more than the products.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "internal.h"
#include "layers/conv_stencil.h"

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
    int stencil;              /* stride 1, one group, thin: conv_stencil.c */
} conv_geom;

static void geom_of(const lop_graph *g, const lop_node *n, conv_geom *q)
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
    q->stencil = q->sh == 1 && q->sw == 1 && q->groups == 1 && q->kh * q->kw > 1 &&
                 q->ph < q->kh && q->pw < q->kw &&
                 (q->o <= STENCIL_MAX_OUT ||
                  (q->o <= STENCIL_MAX_OUT_WIDE_MAP && q->wo >= STENCIL_WIDE_MAP));
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
 * calls cost more than the products. */
static void im2col(const float *x, int nb, const conv_geom *q, float *work, float *col)
{
    size_t ncols = (size_t)nb * q->hwo;
    int wp = padded_width(q);
    const int *offset = row_offsets(q, nb, work);
    if (is_padded(q))
        memset(work, 0, (size_t)nb * padded_plane(q) * sizeof *work);
    for (int c = 0; c < q->c; c++) {
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
                    else
                        for (int ox = 0; ox < q->wo; ox++)
                            out[ox] = in[(size_t)ox * q->sw];
                }
            }
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

/* Images per chunk: enough for COLS_TARGET product columns while the chunk's scratch
 * stays under SCRATCH_CAP and its padded planes' offsets within int (but always at
 * least one image), and small enough for MIN_CHUNKS chunks.  It depends on the shapes
 * only, never on the number of threads, so that the weight gradient sums the same
 * products in the same order on any number of threads.  The direct path multiplies
 * each image in place, so it takes them one at a time. */
static int chunk_images(const conv_geom *q, int batch)
{
    if (q->direct)
        return 1;
    size_t per_image = ((size_t)q->c * q->kh * q->kw + (size_t)q->o) * (size_t)q->hwo;
    size_t nb = ((size_t)COLS_TARGET + (size_t)q->hwo - 1) / (size_t)q->hwo;
    if (nb > SCRATCH_CAP / per_image)
        nb = SCRATCH_CAP / per_image;
    if (nb > (size_t)INT_MAX / 2 / image_pitch(q))
        nb = (size_t)INT_MAX / 2 / image_pitch(q);
    size_t share = ((size_t)batch + MIN_CHUNKS - 1) / MIN_CHUNKS;
    if (nb > share)
        nb = share;
    return nb < 1 ? 1 : (int)nb;
}

/* The scratch: first the stencil path's packed weights, shared by the workers; then
 * for each worker the columns and the (un)folding's work space (neither on the direct
 * and stencil paths), product rows
 * [O, nb * HW'] (needed only when a chunk holds several images, since one image's rows
 * already are its NCHW layout; not on the stencil path) and the stencil kernels' work
 * space; then, for backward, the weight and bias gradient sums of parts 1.. (part 0
 * sums into the node's own). */
typedef struct conv_scratch {
    size_t packed, col, rows, stencil, per_worker, grads;
    int threads;
    float *base;
} conv_scratch;

/* What the worker threads share: the layer's tensors and how they are chunked. */
typedef struct conv_job {
    conv_geom q;
    const float *x, *w, *bias, *dy;
    float *y, *dx, *dw, *db;
    int batch, nb;
    /* Backward: the chunks are cut into `parts` runs of consecutive chunks (by shapes
     * alone), each summing its weight and bias gradients apart. */
    long chunks;
    int parts;
    conv_scratch s;
    /* The stencil path's plans: st is the forward pass's, or the input gradient's
     * in backward; wgrad the weight gradient's (the forward geometry). */
    lop_stencil st, wgrad;
    int slices;               /* stencil forward: jobs per image */
} conv_job;

static int conv_scratch_get(lop_graph *g, const conv_job *j, int threads, size_t wsize,
                            conv_scratch *s)
{
    const conv_geom *q = &j->q;
    size_t ncols = (size_t)j->nb * q->hwo;
    s->packed = q->stencil ? lop_stencil_weight_floats(&j->st) : 0;
    s->col = q->direct || q->stencil ? 0 : (size_t)q->c * q->kh * q->kw * ncols +
                                           unfold_floats(q, j->nb);
    s->rows = j->nb > 1 && !q->stencil ? (size_t)q->o * ncols : 0;
    s->grads = wsize ? wsize + (size_t)q->o : 0;
    s->stencil = 0;
    if (q->stencil) {
        s->stencil = lop_stencil_scratch_floats(&j->st);
        size_t wgrad = wsize ? lop_stencil_wgrad_floats(&j->wgrad, j->nb) : 0;
        if (wgrad > s->stencil)
            s->stencil = wgrad;
    }
    s->per_worker = s->col + s->rows + s->stencil;
    s->threads = threads;
    s->base = NULL;
    size_t total = s->packed + s->per_worker * (size_t)threads +
                   s->grads * (size_t)(j->parts - 1);
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

/* Where part p sums its weight and bias gradients: straight into the node's for part
 * 0, the others into their own sums, added to the node's in part order afterwards. */
static void part_grads(const conv_job *j, int part, float **dw, float **db)
{
    float *mine = part == 0 ? NULL : part_sums(&j->s, part);
    *dw = part == 0 ? j->dw : mine;
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

/* Product rows [O, m * HW'] -> m images [O, HW'] plus bias (bias may be NULL).  With
 * m == 1 the layouts coincide and rows may be y itself. */
static void rows_to_images(const float *rows, int m, const conv_geom *q, const float *bias,
                           float *y)
{
    size_t ncols = (size_t)m * q->hwo;
    for (int b = 0; b < m; b++)
        for (int oc = 0; oc < q->o; oc++) {
            const float *s = rows + (size_t)oc * ncols + (size_t)b * q->hwo;
            float *d = y + ((size_t)b * q->o + oc) * q->hwo;
            float bv = bias ? bias[oc] : 0.0f;
            for (int p = 0; p < q->hwo; p++)
                d[p] = s[p] + bv;
        }
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

/* Chunk `chunk`'s first image *b0 and image count *m; returns the right-hand side of
 * its products: the input itself on the direct path, else its columns in col. */
static const float *chunk_source(const conv_job *j, long chunk, float *col, int *b0, int *m)
{
    const conv_geom *q = &j->q;
    *b0 = (int)chunk * j->nb;
    *m = j->batch - *b0 < j->nb ? j->batch - *b0 : j->nb;
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q->og, ncols, q->k, 1.0f,
                        j->w + (size_t)gi * q->og * q->k, q->k,
                        src + (size_t)gi * q->k * ncols, ncols, 0.0f,
                        dst + (size_t)gi * q->og * ncols, ncols);
        if (m > 1 || j->bias)
            rows_to_images(dst, m, q, j->bias, yb);
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
        lop_stencil_image(&j->st, j->s.base, j->x + (size_t)b * q->c * q->h * q->w, j->bias,
                          lo, hi, 0, scratch, j->y + (size_t)b * q->o * q->hwo);
    }
}

static int conv_forward(lop_graph *g, lop_node *n, int train)
{
    conv_job j;
    geom_of(g, n, &j.q);
    const conv_geom *q = &j.q;
    int threads = lop_parallel_threads();
    j.x = lop_input_node(g, n, 0)->out->data;
    j.w = n->param[PARAM_WEIGHT]->data;
    j.bias = n->attr.bias ? n->param[PARAM_BIAS]->data : NULL;
    j.y = n->out->data;
    j.batch = lop_node_batch(n);
    j.nb = q->stencil ? 1 : chunk_images(q, j.batch);
    j.chunks = (j.batch + j.nb - 1) / j.nb;
    j.parts = 1;
    if (q->stencil)
        lop_stencil_plan(&j.st, q->c, q->h, q->w, q->o, q->kh, q->kw, q->ph, q->pw);
    int st = conv_scratch_get(g, &j, threads, 0, &j.s);
    if (st != LOP_OK)
        return st;
    if (!q->stencil) {
        lop_parallel_for(j.chunks, 1, forward_chunks, &j);
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
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q->og, q->k, ncols, 1.0f, dg,
                    ncols, src + (size_t)gi * q->k * ncols, ncols, 1.0f,
                    dw + (size_t)gi * q->og * q->k, q->k);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, q->k, ncols, q->og, 1.0f,
                    j->w + (size_t)gi * q->og * q->k, q->k, dg, ncols,
                    q->direct ? 1.0f : 0.0f, dcol + (size_t)gi * q->k * ncols, ncols);
    }
    if (!q->direct)
        col2im(col, m, q, unfold_work(j, col), dxb);
}

/* The stencil path's chunk: bias and weight gradients into db and dw, each image's
 * input gradient added into dX. */
static void stencil_backward_chunk(const conv_job *j, long chunk, float *work, float *dw,
                                   float *db)
{
    const conv_geom *q = &j->q;
    int b0 = (int)chunk * j->nb;
    int m = j->batch - b0 < j->nb ? j->batch - b0 : j->nb;
    const float *dy = j->dy + (size_t)b0 * q->o * q->hwo;
    if (db)
        add_bias_grad(dy, m, q, db);
    lop_stencil_wgrad(&j->wgrad, j->x + (size_t)b0 * q->c * q->h * q->w, dy, m, work, dw);
    for (int b = 0; b < m; b++)
        lop_stencil_image(&j->st, j->s.base, dy + (size_t)b * q->o * q->hwo, NULL, 0,
                          j->st.blocks, 1, work, j->dx + (size_t)(b0 + b) * q->c * q->h * q->w);
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
            if (j->q.stencil)
                stencil_backward_chunk(j, chunk, col, dw, db);
            else
                backward_chunk(j, chunk, col, dw, db);
    }
}

static int conv_backward(lop_graph *g, lop_node *n)
{
    conv_job j;
    geom_of(g, n, &j.q);
    int threads = lop_parallel_threads();
    const lop_node *in = lop_input_node(g, n, 0);
    j.x = in->out->data;
    j.w = n->param[PARAM_WEIGHT]->data;
    j.dy = n->dout->data;
    j.dx = lop_input_grad_zeroed(g, n, 0);
    j.dw = n->grad[PARAM_WEIGHT]->data;
    j.db = n->attr.bias ? n->grad[PARAM_BIAS]->data : NULL;
    j.batch = lop_node_batch(n);
    j.nb = chunk_images(&j.q, j.batch);
    j.chunks = (j.batch + j.nb - 1) / j.nb;
    j.parts = j.chunks < LOP_PARTS ? (int)j.chunks : LOP_PARTS;
    const conv_geom *q = &j.q;
    if (q->stencil) {   /* the weight gradient; the input gradient as the adjoint stencil */
        lop_stencil_plan(&j.wgrad, q->c, q->h, q->w, q->o, q->kh, q->kw, q->ph, q->pw);
        lop_stencil_plan(&j.st, q->o, q->ho, q->wo, q->c, q->kh, q->kw, q->kh - 1 - q->ph,
                         q->kw - 1 - q->pw);
    }
    size_t wsize = n->param[PARAM_WEIGHT]->numel;
    int st = conv_scratch_get(g, &j, threads, wsize, &j.s);
    if (st != LOP_OK)
        return st;
    if (q->stencil)
        lop_stencil_pack(&j.st, j.w, 1, j.s.base);
    if (j.parts > 1)
        memset(part_sums(&j.s, 1), 0, j.s.grads * (size_t)(j.parts - 1) * sizeof(float));
    lop_parallel_for(j.parts, 1, backward_parts, &j);
    for (int p = 1; p < j.parts; p++) {
        const float *part = part_sums(&j.s, p);
        for (size_t i = 0; i < wsize; i++)
            j.dw[i] += part[i];
        for (int oc = 0; j.db && oc < j.q.o; oc++)
            j.db[oc] += part[wsize + oc];
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
