/*
 * merge.c - the layers that join or reshape activations without learning anything:
 * add (residual connections), concat (channel-wise joins, as in Inception/DenseNet
 * blocks) and flatten (feature map to feature vector).  Their shape rules are what
 * channel pruning has to respect: add ties its inputs' channels together, concat
 * lays them side by side.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Per-sample element count of a node's output. */
static size_t sample_size(const lop_node *n)
{
    return lop_shape_numel(n->ndim, n->dims);
}

/* dx += dy: how every layer here passes a gradient back. */
static void accumulate(float *dx, const float *dy, size_t count)
{
    for (size_t i = 0; i < count; i++)
        dx[i] += dy[i];
}

/* "(a, b, c)" for messages. */
static const char *shape_str(const lop_node *n, char *buf, size_t size)
{
    if (n->ndim == 3)
        snprintf(buf, size, "(%d, %d, %d)", n->dims[0], n->dims[1], n->dims[2]);
    else
        snprintf(buf, size, "(%d)", n->dims[0]);
    return buf;
}

/* ---- add ---- */

static int add_infer(const lop_graph *g, lop_node *n)
{
    if (n->ninputs < 2)
        return lop_fail(LOP_EINVAL, "add '%s' takes at least 2 inputs, got %d", n->name,
                        n->ninputs);
    const lop_node *first = lop_input_node(g, n, 0);
    for (int k = 1; k < n->ninputs; k++) {
        const lop_node *in = lop_input_node(g, n, k);
        int same = in->ndim == first->ndim;
        for (int i = 0; same && i < in->ndim; i++)
            same = in->dims[i] == first->dims[i];
        if (!same) {
            char a[48], b[48];
            return lop_fail(LOP_ESHAPE, "add '%s': input '%s' has shape %s but '%s' has %s",
                            n->name, in->name, shape_str(in, a, sizeof a), first->name,
                            shape_str(first, b, sizeof b));
        }
    }
    n->ndim = first->ndim;
    memcpy(n->dims, first->dims, sizeof n->dims);
    return LOP_OK;
}

static int add_forward(lop_graph *g, lop_node *n, int train)
{
    float *y = n->out->data;
    size_t count = n->out->numel;
    memcpy(y, lop_input_node(g, n, 0)->out->data, count * sizeof(float));
    for (int k = 1; k < n->ninputs; k++) {
        const float *x = lop_input_node(g, n, k)->out->data;
        for (size_t i = 0; i < count; i++)
            y[i] += x[i];
    }
    return LOP_OK;
}

static int add_backward(lop_graph *g, lop_node *n)
{
    const float *dy = n->dout->data;
    size_t count = n->out->numel;
    for (int k = 0; k < n->ninputs; k++)
        accumulate(lop_input_node(g, n, k)->dout->data, dy, count);
    return LOP_OK;
}

static double add_flops(const lop_graph *g, const lop_node *n)
{
    return (double)(n->ninputs - 1) * (double)sample_size(n);
}

const lop_layer_ops lop_add_ops = {
    .infer = add_infer,
    .forward = add_forward,
    .backward = add_backward,
    .flops = add_flops,
};

/* ---- concat: along dim 0 of the per-sample shape (channels, or features) ---- */

static int concat_infer(const lop_graph *g, lop_node *n)
{
    if (n->ninputs < 2)
        return lop_fail(LOP_EINVAL, "concat '%s' takes at least 2 inputs, got %d", n->name,
                        n->ninputs);
    const lop_node *first = lop_input_node(g, n, 0);
    long long channels = 0;
    for (int k = 0; k < n->ninputs; k++) {
        const lop_node *in = lop_input_node(g, n, k);
        int same = in->ndim == first->ndim;
        for (int i = 1; same && i < in->ndim; i++)
            same = in->dims[i] == first->dims[i];
        if (!same) {
            char a[48], b[48];
            return lop_fail(LOP_ESHAPE,
                            "concat '%s': input '%s' has shape %s, which does not fit "
                            "'%s' with %s outside the channel axis", n->name, in->name,
                            shape_str(in, a, sizeof a), first->name,
                            shape_str(first, b, sizeof b));
        }
        channels += in->dims[0];
    }
    if (channels > INT_MAX)
        return lop_fail(LOP_ESHAPE, "concat '%s': output too large", n->name);
    n->ndim = first->ndim;
    memcpy(n->dims, first->dims, sizeof n->dims);
    n->dims[0] = (int)channels;
    return LOP_OK;
}

static int concat_forward(lop_graph *g, lop_node *n, int train)
{
    int nb = lop_node_batch(n);
    size_t osz = sample_size(n), off = 0;
    for (int k = 0; k < n->ninputs; k++) {
        const lop_node *in = lop_input_node(g, n, k);
        size_t isz = sample_size(in);
        for (int b = 0; b < nb; b++)
            memcpy(n->out->data + (size_t)b * osz + off, in->out->data + (size_t)b * isz,
                   isz * sizeof(float));
        off += isz;
    }
    return LOP_OK;
}

static int concat_backward(lop_graph *g, lop_node *n)
{
    int nb = lop_node_batch(n);
    size_t osz = sample_size(n), off = 0;
    for (int k = 0; k < n->ninputs; k++) {
        const lop_node *in = lop_input_node(g, n, k);
        size_t isz = sample_size(in);
        for (int b = 0; b < nb; b++)
            accumulate(in->dout->data + (size_t)b * isz, n->dout->data + (size_t)b * osz + off,
                       isz);
        off += isz;
    }
    return LOP_OK;
}

const lop_layer_ops lop_concat_ops = {
    .infer = concat_infer,
    .forward = concat_forward,
    .backward = concat_backward,
};

/* ---- flatten ---- */

static int flatten_infer(const lop_graph *g, lop_node *n)
{
    if (n->ninputs != 1)
        return lop_fail(LOP_EINVAL, "flatten '%s' takes 1 input, got %d", n->name,
                        n->ninputs);
    const lop_node *in = lop_input_node(g, n, 0);
    size_t count = sample_size(in);
    if (count > INT_MAX)
        return lop_fail(LOP_ESHAPE, "flatten '%s': %zu features are too many", n->name, count);
    n->ndim = 1;
    n->dims[0] = (int)count;
    return LOP_OK;
}

static int flatten_forward(lop_graph *g, lop_node *n, int train)
{
    memcpy(n->out->data, lop_input_node(g, n, 0)->out->data, n->out->numel * sizeof(float));
    return LOP_OK;
}

static int flatten_backward(lop_graph *g, lop_node *n)
{
    accumulate(lop_input_node(g, n, 0)->dout->data, n->dout->data, n->out->numel);
    return LOP_OK;
}

const lop_layer_ops lop_flatten_ops = {
    .infer = flatten_infer,
    .forward = flatten_forward,
    .backward = flatten_backward,
};
