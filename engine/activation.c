/*
 * activation.c - the elementwise layers: relu, and dropout (inverted, so evaluation
 * is the identity and pruning statistics gathered in eval mode need no rescaling).
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* relu and dropout keep their input's shape; one input of any rank. */
static int same_shape_infer(const lop_graph *g, lop_node *n)
{
    if (n->ninputs != 1)
        return lop_fail(LOP_EINVAL, "%s '%s' takes 1 input, got %d", lop_kind_name(n->kind),
                        n->name, n->ninputs);
    const lop_node *in = lop_input_node(g, n, 0);
    n->ndim = in->ndim;
    memcpy(n->dims, in->dims, sizeof n->dims);
    return LOP_OK;
}

/* ---- relu ---- */

static int relu_forward(lop_graph *g, lop_node *n, int train)
{
    const float *x = lop_input_node(g, n, 0)->out->data;
    float *y = n->out->data;
    size_t count = n->out->numel;
    for (size_t i = 0; i < count; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return LOP_OK;
}

static int relu_backward(lop_graph *g, lop_node *n)
{
    const float *y = n->out->data, *dy = n->dout->data;
    float *dx = lop_input_node(g, n, 0)->dout->data;
    size_t count = n->out->numel;
    for (size_t i = 0; i < count; i++)
        dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    return LOP_OK;
}

static double relu_flops(const lop_graph *g, const lop_node *n)
{
    return (double)lop_shape_numel(n->ndim, n->dims);
}

const lop_layer_ops lop_relu_ops = {
    .infer = same_shape_infer,
    .forward = relu_forward,
    .backward = relu_backward,
    .flops = relu_flops,
};

/* ---- dropout: the saved mask holds each element's factor, 0 or 1/(1-p) ---- */

static int dropout_infer(const lop_graph *g, lop_node *n)
{
    float p = n->attr.p;
    if (!(p >= 0.0f && p < 1.0f))
        return lop_fail(LOP_EINVAL, "dropout '%s': p must be in [0, 1), got %g", n->name,
                        (double)p);
    return same_shape_infer(g, n);
}

static int dropout_forward(lop_graph *g, lop_node *n, int train)
{
    const float *x = lop_input_node(g, n, 0)->out->data;
    float *y = n->out->data;
    size_t count = n->out->numel;
    if (!train) {
        memcpy(y, x, count * sizeof(float));
        return LOP_OK;
    }
    int st = lop_tensor_ensure(&n->saved[0], n->out->ndim, n->out->shape);
    if (st != LOP_OK)
        return st;
    float *mask = n->saved[0]->data;
    double p = n->attr.p;
    float scale = (float)(1.0 / (1.0 - p));
    for (size_t i = 0; i < count; i++)
        mask[i] = lop_rng_uniform(&g->rng) >= p ? scale : 0.0f;
    for (size_t i = 0; i < count; i++)
        y[i] = x[i] * mask[i];
    return LOP_OK;
}

static int dropout_backward(lop_graph *g, lop_node *n)
{
    const float *mask = n->saved[0]->data, *dy = n->dout->data;
    float *dx = lop_input_node(g, n, 0)->dout->data;
    size_t count = n->out->numel;
    for (size_t i = 0; i < count; i++)
        dx[i] += dy[i] * mask[i];
    return LOP_OK;
}

const lop_layer_ops lop_dropout_ops = {
    .infer = dropout_infer,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
