/*
 * batchnorm.c - batch normalisation over the channel axis, for feature maps (C,H,W)
 * and for feature vectors (F) after a linear layer.  Training uses the batch's own
 * statistics and folds them into the running ones (PyTorch's convention: biased
 * variance to normalise, unbiased variance for the running estimate); evaluation uses
 * the running statistics.  It is the layer whose gamma drives channel pruning, so the
 * parameters keep PyTorch's names and order.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

enum { BN_GAMMA, BN_BETA, BN_MEAN, BN_VAR };
/* Backward recomputes x-hat from the input and these two per-channel values: storing
 * it would cost a write pass over the activation in every training forward. */
enum { SAVED_MEAN, SAVED_INVSTD };

static int bn_infer(const lop_graph *g, lop_node *n)
{
    if (n->ninputs != 1)
        return lop_fail(LOP_EINVAL, "batchnorm '%s' takes 1 input, got %d", n->name,
                        n->ninputs);
    const lop_node *in = lop_input_node(g, n, 0);
    if (in->ndim != 3 && in->ndim != 1)
        return lop_fail(LOP_ESHAPE,
                        "batchnorm '%s' needs a (C,H,W) or (F) input, '%s' gives rank %d",
                        n->name, in->name, in->ndim);
    if (!(n->attr.eps > 0.0f) || !isfinite(n->attr.eps))
        return lop_fail(LOP_EINVAL, "batchnorm '%s': eps must be positive, got %g", n->name,
                        (double)n->attr.eps);
    if (!(n->attr.momentum >= 0.0f && n->attr.momentum <= 1.0f))
        return lop_fail(LOP_EINVAL, "batchnorm '%s': momentum must be in [0, 1], got %g",
                        n->name, (double)n->attr.momentum);
    n->ndim = in->ndim;
    memcpy(n->dims, in->dims, sizeof n->dims);
    return LOP_OK;
}

static int bn_init(const lop_graph *g, lop_node *n, lop_rng *rng)
{
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var"};
    static const float values[] = {1.0f, 0.0f, 0.0f, 1.0f};
    int c = n->dims[0];
    for (int k = 0; k < 4; k++) {
        int st = lop_node_add_param(n, names[k], 1, &c, k == BN_GAMMA || k == BN_BETA);
        if (st != LOP_OK)
            return st;
        lop_tensor_fill(n->param[k], values[k]);
    }
    return LOP_OK;
}

/* Values per channel and sample: H*W for feature maps, 1 for feature vectors. */
static size_t spatial(const lop_node *n)
{
    return n->ndim == 3 ? (size_t)n->dims[1] * (size_t)n->dims[2] : 1;
}

/* Work split: whole channels per worker, so every channel's sums run in one fixed
 * order whatever the number of threads.  LOP_GRAIN is the fewest values worth a thread. */

/* The plane reductions keep LANES independent float partial sums: that is what lets
 * the compiler vectorise them (a single float accumulator must stay in order).  They
 * are folded pairwise, and planes shorter than LANES (feature vectors have one value
 * per plane) skip the lanes altogether. */
#define LANES 16

/* Pairwise, in fixed-size steps the compiler turns into vector adds. */
static float fold(float *acc)
{
    _Static_assert(LANES == 16, "fold() is written for 16 lanes");
    for (int k = 0; k < 8; k++)
        acc[k] += acc[k + 8];
    for (int k = 0; k < 4; k++)
        acc[k] += acc[k + 4];
    for (int k = 0; k < 2; k++)
        acc[k] += acc[k + 2];
    return acc[0] + acc[1];
}

static float plane_sum(const float *x, size_t s)
{
    float acc[LANES] = {0}, total = 0.0f;
    size_t i = 0;
    if (s >= LANES) {
        for (; i + LANES <= s; i += LANES)
            for (int k = 0; k < LANES; k++)
                acc[k] += x[i + k];
        total = fold(acc);
    }
    for (; i < s; i++)
        total += x[i];
    return total;
}

/* sum over the plane of (x - m)^2 */
static float plane_sqdev(const float *x, size_t s, float m)
{
    float acc[LANES] = {0}, total = 0.0f;
    size_t i = 0;
    if (s >= LANES) {
        for (; i + LANES <= s; i += LANES)
            for (int k = 0; k < LANES; k++) {
                float d = x[i + k] - m;
                acc[k] += d * d;
            }
        total = fold(acc);
    }
    for (; i < s; i++)
        total += (x[i] - m) * (x[i] - m);
    return total;
}

/* The batchnorm's output, as the forward pass computes it: the same operations in the
 * same order, so that the backward pass of a batchnorm fused with the relu after it
 * (graph/fusion.c) recomputes the forward's bits.  This file is built without
 * -ffp-contract=fast (the Makefile gives it to the kernels only), so neither side
 * turns the multiply-add into one fused instruction. */
static inline float normalized(float x, float mean, float scale, float shift)
{
    return (x - mean) * scale + shift;
}

/* In a training pass fused with the relu / relu6 after it, the gradient arrives at
 * the relu's output and passes back through it (lop_relu_grad) at the batchnorm's
 * output, recomputed. */
typedef struct relu_mask {
    float mean, scale, shift, cap;
} relu_mask;

static inline float masked(const relu_mask *r, float dy, float x)
{
    if (!r)
        return dy;
    return lop_relu_grad(normalized(x, r->mean, r->scale, r->shift), r->cap, dy);
}

/* sum of a and of a .* (b - shift) over the plane, a masked by r (may be NULL) from b;
 * inlined with r NULL or not */
static inline __attribute__((always_inline)) void plane_sum_dot(const float *a,
                                                                const float *b, float shift,
                                                                const relu_mask *r, size_t s,
                                                                float *sa, float *sab)
{
    float acc[LANES] = {0}, dot[LANES] = {0}, ta = 0.0f, tab = 0.0f;
    size_t i = 0;
    if (s >= LANES) {
        for (; i + LANES <= s; i += LANES)
            for (int k = 0; k < LANES; k++) {
                float d = masked(r, a[i + k], b[i + k]);
                acc[k] += d;
                dot[k] += d * (b[i + k] - shift);
            }
        ta = fold(acc);
        tab = fold(dot);
    }
    for (; i < s; i++) {
        float d = masked(r, a[i], b[i]);
        ta += d;
        tab += d * (b[i] - shift);
    }
    *sa = ta;
    *sab = tab;
}

/* One channel's terms of dx = k (dy - mdy - (x - mean) is mdyh). */
typedef struct dx_terms {
    float k, mdy, mean, is, mdyh;
} dx_terms;

/* dx over a plane, stored (overwrite) or added, dy masked by r (may be NULL) from x;
 * inlined with r NULL or not, as plane_sum_dot */
static inline __attribute__((always_inline)) void plane_dx(float *dx, const float *dy,
                                                           const float *x, const relu_mask *r,
                                                           const dx_terms *t, size_t s,
                                                           int overwrite)
{
    float k = t->k, mdy = t->mdy, mean = t->mean, is = t->is, mdyh = t->mdyh;
    if (overwrite)
        for (size_t i = 0; i < s; i++)
            dx[i] = k * (masked(r, dy[i], x[i]) - mdy - (x[i] - mean) * is * mdyh);
    else
        for (size_t i = 0; i < s; i++)
            dx[i] += k * (masked(r, dy[i], x[i]) - mdy - (x[i] - mean) * is * mdyh);
}

/* What the workers share for one forward or backward. */
typedef struct bn_job {
    const lop_node *n;
    const float *x, *dy;
    float *y, *mean, *invstd, *dx;
    int nb, nc, train, overwrite;
    size_t s;
    float cap;   /* backward: dy is a fused relu's gradient, with this cap; else 0 */
} bn_job;

/* Asks the memory for a plane of s floats, a cache line at a time.  A channel's
 * passes read its nb planes, each s floats long and nc s apart, and the hardware's
 * prefetchers, which follow a stream only after it has begun, left the start of each
 * plane to wait on memory: a training pass reads its batchnorms' inputs long after the
 * forward pass wrote them.  Each pass asks for the next plane while it works on one.
 * The batchnorms of a training step at batch 64, one thread, forward / backward, ms:
 * resnet-small 4.3-5.0 / 7.9-8.4 -> 4.2-4.5 / 6.7-7.1, VGG-16 5.7-6.1 / 11.5-11.8 ->
 * 5.0-5.2 / 9.6-9.9. */
static void prefetch_plane(const float *p, size_t s)
{
    for (size_t i = 0; i < s; i += 64 / sizeof *p)
        __builtin_prefetch(p + i, 0, 3);
}

/* Mean and biased variance of channel c.  Each plane's mean and squared deviations
 * are taken in float while the plane is in cache (two short passes, no cancellation),
 * then the planes are combined in double around the first plane's mean, so a large
 * offset shared by all values costs no precision. */
static void channel_stats(const bn_job *j, int c, double *mean, double *m2)
{
    size_t s = j->s;
    double shift = 0.0, sd = 0.0, sq = 0.0;
    for (int b = 0; b < j->nb; b++) {
        const float *xp = j->x + ((size_t)b * j->nc + c) * s;
        if (b + 1 < j->nb)
            prefetch_plane(xp + (size_t)j->nc * s, s);
        float pm = plane_sum(xp, s) / (float)s;
        float pm2 = plane_sqdev(xp, s, pm);
        if (b == 0)
            shift = pm;
        double d = (double)pm - shift;
        sd += d;
        sq += (double)pm2 + (double)s * d * d;
    }
    *mean = shift + sd / j->nb;
    *m2 = sq - (double)s * sd * sd / j->nb;
    if (*m2 < 0.0)
        *m2 = 0.0;
}

static void forward_channels(void *ctx, long c0, long c1, int worker)
{
    const bn_job *j = ctx;
    const lop_node *n = j->n;
    const float *gamma = n->param[BN_GAMMA]->data, *beta = n->param[BN_BETA]->data;
    float *rmean = n->param[BN_MEAN]->data, *rvar = n->param[BN_VAR]->data;
    float eps = n->attr.eps, mom = n->attr.momentum;
    size_t s = j->s, m = (size_t)j->nb * s;
    for (int c = (int)c0; c < (int)c1; c++) {
        float mean, is;
        if (j->train) {
            double dmean, m2;
            channel_stats(j, c, &dmean, &m2);
            mean = (float)dmean;
            is = (float)(1.0 / sqrt(m2 / (double)m + eps));
            j->mean[c] = mean;
            j->invstd[c] = is;
            rmean[c] = (1.0f - mom) * rmean[c] + mom * mean;
            rvar[c] = (1.0f - mom) * rvar[c] + mom * (float)(m2 / (double)(m - 1));
        } else {
            mean = rmean[c];
            is = 1.0f / sqrtf(rvar[c] + eps);
        }
        /* Subtracting the mean first keeps precision when it is large. */
        float gc = gamma[c], bc = beta[c], scale = gc * is;
        for (int b = 0; b < j->nb; b++) {
            size_t off = ((size_t)b * j->nc + c) * s;
            const float *xp = j->x + off;
            float *yp = j->y + off;
            if (n->epilogue)   /* fused with the activation after it */
                for (size_t i = 0; i < s; i++)
                    yp[i] = lop_epilogue_clamp(n->epilogue, normalized(xp[i], mean, scale, bc));
            else
                for (size_t i = 0; i < s; i++)
                    yp[i] = normalized(xp[i], mean, scale, bc);
        }
    }
}

static int bn_forward(lop_graph *g, lop_node *n, int train)
{
    bn_job j = {
        .n = n,
        .x = lop_input_node(g, n, 0)->out->data,
        .y = n->epilogue ? n->epilogue->y : n->out->data,
        .nb = lop_node_batch(n),
        .nc = n->dims[0],
        .train = train,
        .s = spatial(n),
    };
    size_t m = (size_t)j.nb * j.s;
    if (train) {
        if (m < 2)
            return lop_fail(LOP_ESHAPE,
                            "batchnorm '%s': training needs more than one value per channel "
                            "(batch %d)", n->name, j.nb);
        int st = lop_tensor_ensure(&n->saved[SAVED_MEAN], 1, &j.nc);
        if (st == LOP_OK)
            st = lop_tensor_ensure(&n->saved[SAVED_INVSTD], 1, &j.nc);
        if (st != LOP_OK)
            return st;
        j.mean = n->saved[SAVED_MEAN]->data;
        j.invstd = n->saved[SAVED_INVSTD]->data;
    }
    lop_parallel_for(j.nc, 1 + LOP_GRAIN / (long)m, forward_channels, &j);
    return LOP_OK;
}

static void backward_channels(void *ctx, long c0, long c1, int worker)
{
    const bn_job *j = ctx;
    const lop_node *n = j->n;
    const float *gamma = n->param[BN_GAMMA]->data, *beta = n->param[BN_BETA]->data;
    float *dgamma = n->grad[BN_GAMMA]->data, *dbeta = n->grad[BN_BETA]->data;
    size_t s = j->s, m = (size_t)j->nb * s;
    for (int c = (int)c0; c < (int)c1; c++) {
        /* x-hat = (x - mean) * invstd, recomputed from the input */
        float mean = j->mean[c], is = j->invstd[c];
        relu_mask mask = {mean, gamma[c] * is, beta[c], j->cap};
        const relu_mask *r = j->cap > 0.0f ? &mask : NULL;
        double sdy = 0.0, sdyd = 0.0;   /* sums of dy and of dy * (x - mean) */
        for (int b = 0; b < j->nb; b++) {
            size_t off = ((size_t)b * j->nc + c) * s;
            float pdy, pdyd;
            if (b + 1 < j->nb) {
                prefetch_plane(j->dy + off + (size_t)j->nc * s, s);
                prefetch_plane(j->x + off + (size_t)j->nc * s, s);
            }
            if (r)
                plane_sum_dot(j->dy + off, j->x + off, mean, r, s, &pdy, &pdyd);
            else
                plane_sum_dot(j->dy + off, j->x + off, mean, NULL, s, &pdy, &pdyd);
            sdy += pdy;
            sdyd += pdyd;
        }
        double sdyh = sdyd * is;
        dbeta[c] += (float)sdy;
        dgamma[c] += (float)sdyh;
        /* dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
        dx_terms t = {gamma[c] * is, (float)(sdy / (double)m), mean, is,
                      (float)(sdyh / (double)m)};
        for (int b = 0; b < j->nb; b++) {
            size_t off = ((size_t)b * j->nc + c) * s;
            const float *dyp = j->dy + off, *xp = j->x + off;
            float *dxp = j->dx + off;
            if (r)
                plane_dx(dxp, dyp, xp, r, &t, s, j->overwrite);
            else
                plane_dx(dxp, dyp, xp, NULL, &t, s, j->overwrite);
        }
    }
}

static int bn_backward(lop_graph *g, lop_node *n)
{
    bn_job j = {
        .n = n,
        .x = lop_input_node(g, n, 0)->out->data,
        .dy = n->dout->data,
        .mean = n->saved[SAVED_MEAN]->data,
        .invstd = n->saved[SAVED_INVSTD]->data,
        .nb = lop_node_batch(n),
        .nc = n->dims[0],
        .s = spatial(n),
    };
    if (n->train_tail) {   /* the forward wrote the relu after it (graph/fusion.c) */
        const lop_node *relu = g->nodes[n->train_tail];
        j.dy = relu->dout->data;
        j.cap = lop_activation_cap(relu);
    }
    j.dx = lop_input_grad(g, n, 0, &j.overwrite);
    lop_parallel_for(j.nc, 1 + LOP_GRAIN / (long)((size_t)j.nb * j.s), backward_channels, &j);
    return LOP_OK;
}

static double bn_flops(const lop_graph *g, const lop_node *n)
{
    return 2.0 * (double)lop_shape_numel(n->ndim, n->dims);
}

void lop_batchnorm_affine(const lop_node *bn, int c, float *scale, float *shift)
{
    float a = bn->param[BN_GAMMA]->data[c] / sqrtf(bn->param[BN_VAR]->data[c] + bn->attr.eps);
    *scale = a;
    *shift = bn->param[BN_BETA]->data[c] - a * bn->param[BN_MEAN]->data[c];
}

void lop_batchnorm_affine_double(const lop_node *bn, int c, double *scale, double *shift)
{
    double a = bn->param[BN_GAMMA]->data[c] / sqrt((double)bn->param[BN_VAR]->data[c] +
                                                    bn->attr.eps);
    *scale = a;
    *shift = bn->param[BN_BETA]->data[c] - a * bn->param[BN_MEAN]->data[c];
}

const lop_layer_ops lop_batchnorm_ops = {
    .infer = bn_infer,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .flops = bn_flops,
};
