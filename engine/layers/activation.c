/*
 * activation.c - the elementwise layers: relu and relu6 (one clamp with two ceilings,
 * MobileNetV2's activation being ReLU capped at 6), and dropout (inverted, so
 * evaluation is the identity and pruning statistics gathered in eval mode need no
 * rescaling).
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* relu, relu6 and dropout keep their input's shape; one input of any rank. */
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

/* Elementwise layers split their tensors into contiguous ranges, one per worker;
 * below LOP_GRAIN values per thread a range is not worth waking a thread for. */

/* What the workers share: an input, an optional second operand, the output, and the
 * clamp's ceiling. */
typedef struct elem_job {
    const float *a, *b;
    float *out;
    float cap;
    int overwrite;            /* backward: store into out instead of adding */
} elem_job;

/* ---- relu and relu6: y = min(max(x, 0), cap), cap = +inf for relu, 6 for relu6 ---- */

float lop_activation_cap(const lop_node *n)
{
    return n->kind == LOP_RELU6 ? 6.0f : INFINITY;
}

static void clamp_range(void *ctx, long begin, long end, int worker)
{
    const elem_job *j = ctx;
    const float *x = j->a;
    float *y = j->out, cap = j->cap;
    for (long i = begin; i < end; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < cap ? v : cap;
    }
}

static int clamp_forward(lop_graph *g, lop_node *n, int train)
{
    elem_job j = {lop_input_node(g, n, 0)->out->data, NULL, n->out->data,
                  lop_activation_cap(n), 0};
    lop_parallel_for((long)n->out->numel, LOP_GRAIN, clamp_range, &j);
    return LOP_OK;
}

/* dx from dy by lop_relu_grad (a = y, b = dy, out = dx). */
static void clamp_grad_range(void *ctx, long begin, long end, int worker)
{
    const elem_job *j = ctx;
    const float *y = j->a, *dy = j->b, cap = j->cap;
    float *dx = j->out;
    if (j->overwrite)
        for (long i = begin; i < end; i++)
            dx[i] = lop_relu_grad(y[i], cap, dy[i]);
    else
        for (long i = begin; i < end; i++)
            dx[i] += lop_relu_grad(y[i], cap, dy[i]);
}

static int clamp_backward(lop_graph *g, lop_node *n)
{
    elem_job j = {n->out->data, n->dout->data, NULL, lop_activation_cap(n), 0};
    j.out = lop_input_grad(g, n, 0, &j.overwrite);
    lop_parallel_for((long)n->out->numel, LOP_GRAIN, clamp_grad_range, &j);
    return LOP_OK;
}

/* One FLOP per value: the clamp is one elementwise operation, with or without its
 * ceiling. */
static double clamp_flops(const lop_graph *g, const lop_node *n)
{
    return (double)lop_shape_numel(n->ndim, n->dims);
}

const lop_layer_ops lop_relu_ops = {
    .infer = same_shape_infer,
    .forward = clamp_forward,
    .backward = clamp_backward,
    .flops = clamp_flops,
};

const lop_layer_ops lop_relu6_ops = {
    .infer = same_shape_infer,
    .forward = clamp_forward,
    .backward = clamp_backward,
    .flops = clamp_flops,
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

/* The mask is drawn serially: the rng's sequence, and so every mask, must not depend
 * on the number of threads.  Dropout is cheap next to the layers around it. */
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
    for (size_t i = 0; i < count; i++) {
        mask[i] = lop_rng_uniform(&g->rng) >= p ? scale : 0.0f;
        y[i] = x[i] * mask[i];
    }
    return LOP_OK;
}

/* a = mask, b = dy, out = dx */
static void dropout_grad_range(void *ctx, long begin, long end, int worker)
{
    const elem_job *j = ctx;
    const float *mask = j->a, *dy = j->b;
    float *dx = j->out;
    if (j->overwrite)
        for (long i = begin; i < end; i++)
            dx[i] = dy[i] * mask[i];
    else
        for (long i = begin; i < end; i++)
            dx[i] += dy[i] * mask[i];
}

static int dropout_backward(lop_graph *g, lop_node *n)
{
    elem_job j = {.a = n->saved[0]->data, .b = n->dout->data};
    j.out = lop_input_grad(g, n, 0, &j.overwrite);
    lop_parallel_for((long)n->out->numel, LOP_GRAIN, dropout_grad_range, &j);
    return LOP_OK;
}

const lop_layer_ops lop_dropout_ops = {
    .infer = dropout_infer,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
