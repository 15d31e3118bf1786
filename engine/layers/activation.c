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

/* Elementwise layers split their tensors into contiguous ranges, one per worker;
 * below LOP_GRAIN values per thread a range is not worth waking a thread for. */

/* What the workers share: an input, an optional second operand, the output. */
typedef struct elem_job {
    const float *a, *b;
    float *out;
} elem_job;

/* ---- relu ---- */

static void relu_range(void *ctx, long begin, long end, int worker)
{
    const elem_job *j = ctx;
    const float *x = j->a;
    float *y = j->out;
    for (long i = begin; i < end; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static int relu_forward(lop_graph *g, lop_node *n, int train)
{
    elem_job j = {lop_input_node(g, n, 0)->out->data, NULL, n->out->data};
    lop_parallel_for((long)n->out->numel, LOP_GRAIN, relu_range, &j);
    return LOP_OK;
}

/* The gradient passes where the output is positive (a = y, b = dy, out = dx). */
static void relu_grad_range(void *ctx, long begin, long end, int worker)
{
    const elem_job *j = ctx;
    const float *y = j->a, *dy = j->b;
    float *dx = j->out;
    for (long i = begin; i < end; i++)
        dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

static int relu_backward(lop_graph *g, lop_node *n)
{
    elem_job j = {n->out->data, n->dout->data, lop_input_node(g, n, 0)->dout->data};
    lop_parallel_for((long)n->out->numel, LOP_GRAIN, relu_grad_range, &j);
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
    for (long i = begin; i < end; i++)
        dx[i] += dy[i] * mask[i];
}

static int dropout_backward(lop_graph *g, lop_node *n)
{
    elem_job j = {n->saved[0]->data, n->dout->data, lop_input_node(g, n, 0)->dout->data};
    lop_parallel_for((long)n->out->numel, LOP_GRAIN, dropout_grad_range, &j);
    return LOP_OK;
}

const lop_layer_ops lop_dropout_ops = {
    .infer = dropout_infer,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
