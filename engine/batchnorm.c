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
enum { SAVED_XHAT, SAVED_INVSTD };

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

static int bn_forward(lop_graph *g, lop_node *n, int train)
{
    const float *x = lop_input_node(g, n, 0)->out->data;
    float *y = n->out->data;
    const float *gamma = n->param[BN_GAMMA]->data, *beta = n->param[BN_BETA]->data;
    float *rmean = n->param[BN_MEAN]->data, *rvar = n->param[BN_VAR]->data;
    int nb = lop_node_batch(n), nc = n->dims[0];
    size_t s = spatial(n), m = (size_t)nb * s;

    if (!train) {
        for (int c = 0; c < nc; c++) {
            float scale = gamma[c] / sqrtf(rvar[c] + n->attr.eps);
            float shift = beta[c] - rmean[c] * scale;
            for (int b = 0; b < nb; b++) {
                const float *xp = x + ((size_t)b * nc + c) * s;
                float *yp = y + ((size_t)b * nc + c) * s;
                for (size_t i = 0; i < s; i++)
                    yp[i] = xp[i] * scale + shift;
            }
        }
        return LOP_OK;
    }

    if (m < 2)
        return lop_fail(LOP_ESHAPE,
                        "batchnorm '%s': training needs more than one value per channel "
                        "(batch %d)", n->name, nb);
    int st = lop_tensor_ensure(&n->saved[SAVED_XHAT], n->out->ndim, n->out->shape);
    if (st == LOP_OK)
        st = lop_tensor_ensure(&n->saved[SAVED_INVSTD], 1, &nc);
    if (st != LOP_OK)
        return st;
    float *xhat = n->saved[SAVED_XHAT]->data, *invstd = n->saved[SAVED_INVSTD]->data;
    float mom = n->attr.momentum;

    for (int c = 0; c < nc; c++) {
        /* Two passes in double: the variance of large activations loses everything to
         * cancellation in one-pass float sums. */
        double sum = 0.0;
        for (int b = 0; b < nb; b++) {
            const float *xp = x + ((size_t)b * nc + c) * s;
            for (size_t i = 0; i < s; i++)
                sum += xp[i];
        }
        double mean = sum / (double)m, ss = 0.0;
        for (int b = 0; b < nb; b++) {
            const float *xp = x + ((size_t)b * nc + c) * s;
            for (size_t i = 0; i < s; i++) {
                double d = xp[i] - mean;
                ss += d * d;
            }
        }
        double var = ss / (double)m;
        float is = (float)(1.0 / sqrt(var + n->attr.eps)), fmean = (float)mean;
        float gc = gamma[c], bc = beta[c];
        invstd[c] = is;
        for (int b = 0; b < nb; b++) {
            size_t off = ((size_t)b * nc + c) * s;
            for (size_t i = 0; i < s; i++) {
                float h = (x[off + i] - fmean) * is;
                xhat[off + i] = h;
                y[off + i] = gc * h + bc;
            }
        }
        rmean[c] = (1.0f - mom) * rmean[c] + mom * fmean;
        rvar[c] = (1.0f - mom) * rvar[c] + mom * (float)(ss / (double)(m - 1));
    }
    return LOP_OK;
}

static int bn_backward(lop_graph *g, lop_node *n)
{
    const float *dy = n->dout->data;
    float *dx = lop_input_node(g, n, 0)->dout->data;
    const float *xhat = n->saved[SAVED_XHAT]->data, *invstd = n->saved[SAVED_INVSTD]->data;
    const float *gamma = n->param[BN_GAMMA]->data;
    float *dgamma = n->grad[BN_GAMMA]->data, *dbeta = n->grad[BN_BETA]->data;
    int nb = lop_node_batch(n), nc = n->dims[0];
    size_t s = spatial(n), m = (size_t)nb * s;

    for (int c = 0; c < nc; c++) {
        double sdy = 0.0, sdyh = 0.0;
        for (int b = 0; b < nb; b++) {
            size_t off = ((size_t)b * nc + c) * s;
            for (size_t i = 0; i < s; i++) {
                sdy += dy[off + i];
                sdyh += (double)dy[off + i] * xhat[off + i];
            }
        }
        dbeta[c] += (float)sdy;
        dgamma[c] += (float)sdyh;
        /* dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
        float k = gamma[c] * invstd[c];
        float mdy = (float)(sdy / (double)m), mdyh = (float)(sdyh / (double)m);
        for (int b = 0; b < nb; b++) {
            size_t off = ((size_t)b * nc + c) * s;
            for (size_t i = 0; i < s; i++)
                dx[off + i] += k * (dy[off + i] - mdy - xhat[off + i] * mdyh);
        }
    }
    return LOP_OK;
}

static double bn_flops(const lop_graph *g, const lop_node *n)
{
    return 2.0 * (double)lop_shape_numel(n->ndim, n->dims);
}

const lop_layer_ops lop_batchnorm_ops = {
    .infer = bn_infer,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .flops = bn_flops,
};
