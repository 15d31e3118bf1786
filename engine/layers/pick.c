/*
 * pick.c - channel selection as a layer: out[:, j] = in[:, index[j]].  He et al. prune a
 * residual block's first convolution by its input channels without touching the
 * block input, which the shortcut also reads; a pick in front of that convolution
 * (lop_graph_insert_pick) gives it a channel space of its own, so pruning it is
 * ordinary surgery on the pick's index and the convolution's weights.  The index is a
 * parameter (saved with the model, never trained); entries are checked on every
 * forward, so a corrupted file gives an error, not a stray read.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

static int pick_infer(const lop_graph *g, lop_node *n)
{
    if (n->ninputs != 1)
        return lop_fail(LOP_EINVAL, "pick '%s': takes one input", n->name);
    const lop_node *in = lop_input_node(g, n, 0);
    if (in->ndim != 3)
        return lop_fail(LOP_ESHAPE, "pick '%s': input '%s' is not a feature map (C, H, W)",
                        n->name, in->name);
    int k = n->attr.out_channels;   /* a channel may be picked more than once */
    if (k < 1 || k > 65536)
        return lop_fail(LOP_EINVAL, "pick '%s': picks %d channels (need 1 to 65536)",
                        n->name, k);
    n->ndim = 3;
    n->dims[0] = k;
    n->dims[1] = in->dims[1];
    n->dims[2] = in->dims[2];
    return LOP_OK;
}

/* The first out_channels channels in order (channel numbers wrap around when there
 * are fewer; the index is meant to be set). */
static int pick_init(const lop_graph *g, lop_node *n, lop_rng *rng)
{
    int k = n->attr.out_channels;
    int st = lop_node_add_param(n, "index", 1, &k, 0);
    if (st != LOP_OK)
        return st;
    int c = lop_input_node(g, n, 0)->dims[0];
    for (int j = 0; j < k; j++)
        n->param[0]->data[j] = (float)(j % c);
    return LOP_OK;
}

/* The index entries as channel numbers, or an error naming the first bad one. */
static int check_index(const lop_node *n, int channels)
{
    const float *idx = n->param[0]->data;
    for (int j = 0; j < n->dims[0]; j++)
        if (!(idx[j] >= 0 && idx[j] < channels) || idx[j] != floorf(idx[j]))
            return lop_fail(LOP_EINVAL, "pick '%s': index entry %d is %g, not a channel "
                            "0..%d", n->name, j + 1, (double)idx[j], channels - 1);
    return LOP_OK;
}

static int pick_forward(lop_graph *g, lop_node *n, int train)
{
    const lop_node *in = lop_input_node(g, n, 0);
    int st = check_index(n, in->dims[0]);
    if (st != LOP_OK)
        return st;
    const int c = in->dims[0], k = n->dims[0], batch = lop_node_batch(n);
    const size_t plane = (size_t)n->dims[1] * n->dims[2];
    const float *idx = n->param[0]->data;
    for (int b = 0; b < batch; b++)
        for (int j = 0; j < k; j++)
            memcpy(n->out->data + ((size_t)b * k + j) * plane,
                   in->out->data + ((size_t)b * c + (int)idx[j]) * plane,
                   plane * sizeof(float));
    return LOP_OK;
}

/* A channel's gradient is the sum of its picks' gradients, in pick order.  When the
 * pick is the first to reach its input's gradient (lop_input_grad), each channel's
 * first pick stores and the channels nothing picks are zeroed, so the gradient is
 * never zeroed as a whole first.  first[ch], in the graph's scratch, is the first
 * pick of channel ch or -1 (floats hold pick numbers up to 65536 exactly). */
static int pick_backward(lop_graph *g, lop_node *n)
{
    lop_node *in = lop_input_node(g, n, 0);
    const int c = in->dims[0], k = n->dims[0], batch = lop_node_batch(n);
    const size_t plane = (size_t)n->dims[1] * n->dims[2];
    const float *idx = n->param[0]->data;
    float *first = lop_graph_scratch(g, (size_t)c);
    if (!first)
        return LOP_ENOMEM;
    for (int ch = 0; ch < c; ch++)
        first[ch] = -1.0f;
    for (int j = k - 1; j >= 0; j--)
        first[(int)idx[j]] = (float)j;
    int overwrite;
    float *grad = lop_input_grad(g, n, 0, &overwrite);
    for (int b = 0; b < batch; b++) {
        float *dx = grad + (size_t)b * c * plane;
        const float *dy = n->dout->data + (size_t)b * k * plane;
        for (int j = 0; j < k; j++) {
            float *to = dx + (size_t)idx[j] * plane;
            const float *from = dy + (size_t)j * plane;
            if (overwrite && first[(int)idx[j]] == (float)j)
                memcpy(to, from, plane * sizeof(float));
            else
                for (size_t i = 0; i < plane; i++)
                    to[i] += from[i];
        }
        for (int ch = 0; overwrite && ch < c; ch++)
            if (first[ch] < 0)
                memset(dx + (size_t)ch * plane, 0, plane * sizeof(float));
    }
    return LOP_OK;
}

const lop_layer_ops lop_pick_ops = {
    .infer = pick_infer,
    .init = pick_init,
    .forward = pick_forward,
    .backward = pick_backward,
};
