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

/* dx += dy: add's sum, and each gradient passed back to an input that another
 * consumer has written first. */
static void accumulate(float *dx, const float *dy, size_t count)
{
    for (size_t i = 0; i < count; i++)
        dx[i] += dy[i];
}

/* Work is split into contiguous ranges of elements (add, flatten) or of samples
 * (concat), one per worker; below LOP_GRAIN values per thread it runs inline. */

/* What the workers share: the graph and the node they work on. */
typedef struct merge_job {
    const lop_graph *g;
    const lop_node *n;
} merge_job;

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

/* add has at least two inputs: the first two are summed in one pass.  Fused with
 * the activation after it (graph/fusion.c), the sum is clamped into that node's
 * output: with two inputs in the same pass. */
static void add_range(void *ctx, long begin, long end, int worker)
{
    const merge_job *j = ctx;
    const lop_epilogue *e = j->n->epilogue;
    const float *a = lop_input_node(j->g, j->n, 0)->out->data;
    const float *b = lop_input_node(j->g, j->n, 1)->out->data;
    float *y = e ? e->y : j->n->out->data;
    if (e && j->n->ninputs == 2) {
        for (long i = begin; i < end; i++)
            y[i] = lop_epilogue_clamp(e, a[i] + b[i]);
        return;
    }
    for (long i = begin; i < end; i++)
        y[i] = a[i] + b[i];
    for (int k = 2; k < j->n->ninputs; k++)
        accumulate(y + begin, lop_input_node(j->g, j->n, k)->out->data + begin,
                   (size_t)(end - begin));
    for (long i = begin; e && i < end; i++)
        y[i] = lop_epilogue_clamp(e, y[i]);
}

static int add_forward(lop_graph *g, lop_node *n, int train)
{
    merge_job j = {g, n};
    lop_parallel_for((long)n->out->numel, LOP_GRAIN, add_range, &j);
    return LOP_OK;
}

/* A backward pass takes its node's inputs in groups of up to MERGE_GROUP (nearly every
 * add or concat is one group), one parallel pass per group, so the per-input write
 * flags live on the stack and a training step allocates nothing.  Inputs keep their
 * order, so an input given twice is written by its first copy and added to by the
 * next, as in one pass. */
#define MERGE_GROUP 32

typedef struct grad_job {
    const lop_graph *g;
    const lop_node *n;
    int k0, k1;                            /* this pass's inputs: [k0, k1) */
    unsigned char overwrite[MERGE_GROUP];  /* input k0 + i's gradient is stored, not added to */
    const lop_node *relu;   /* an add's training forward wrote this relu's output, or NULL */
} grad_job;

/* dx = dy or dx += dy, as lop_input_grad said. */
static void pass_back(float *dx, const float *dy, size_t count, int overwrite)
{
    if (overwrite)
        memcpy(dx, dy, count * sizeof *dy);
    else
        accumulate(dx, dy, count);
}

/* Run fn over [0, count) once per group of inputs, after claiming their gradients. */
static void backward_by_groups(lop_graph *g, lop_node *n, long count, long grain,
                               lop_range_fn fn)
{
    grad_job j = {.g = g, .n = n, .relu = n->train_tail ? g->nodes[n->train_tail] : NULL};
    for (j.k0 = 0; j.k0 < n->ninputs; j.k0 = j.k1) {
        j.k1 = n->ninputs - j.k0 < MERGE_GROUP ? n->ninputs : j.k0 + MERGE_GROUP;
        for (int k = j.k0; k < j.k1; k++) {
            int overwrite;
            lop_input_grad(g, n, k, &overwrite);
            j.overwrite[k - j.k0] = (unsigned char)overwrite;
        }
        lop_parallel_for(count, grain, fn, &j);
    }
}

/* Every input's gradient is the output's as it is (add, and flatten's single input,
 * whose gradient has the output's elements in the same order).  Each worker owns the
 * same range of every input's gradient, so an input given twice is still updated by
 * one thread. */
static void pass_to_inputs(const grad_job *j, const float *dy, long begin, long end)
{
    for (int k = j->k0; k < j->k1; k++)
        pass_back(lop_input_node(j->g, j->n, k)->dout->data + begin, dy,
                  (size_t)(end - begin), j->overwrite[k - j->k0]);
}

/* Values per block of an add's masked gradient, on a worker's stack. */
enum { MASKED_BLOCK = 1024 };

/* With j->relu (an add fused with the relu after it, graph/fusion.c), the gradient is
 * the relu's, passed back through it (lop_relu_grad) a block at a time, each block
 * then given to every input. */
static void same_grad_range(void *ctx, long begin, long end, int worker)
{
    const grad_job *j = ctx;
    if (!j->relu) {
        pass_to_inputs(j, j->n->dout->data + begin, begin, end);
        return;
    }
    const float *y = j->relu->out->data, *dy = j->relu->dout->data;
    float cap = lop_activation_cap(j->relu), block[MASKED_BLOCK];
    for (long b0 = begin; b0 < end; b0 += MASKED_BLOCK) {
        long b1 = end - b0 < MASKED_BLOCK ? end : b0 + MASKED_BLOCK;
        for (long i = b0; i < b1; i++)
            block[i - b0] = lop_relu_grad(y[i], cap, dy[i]);
        pass_to_inputs(j, block, b0, b1);
    }
}

static int add_backward(lop_graph *g, lop_node *n)
{
    backward_by_groups(g, n, (long)n->out->numel, LOP_GRAIN, same_grad_range);
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

static void concat_samples(void *ctx, long first, long last, int worker)
{
    const merge_job *j = ctx;
    size_t osz = sample_size(j->n), off = 0;
    for (int k = 0; k < j->n->ninputs; k++) {
        const lop_node *in = lop_input_node(j->g, j->n, k);
        size_t isz = sample_size(in);
        for (long b = first; b < last; b++)
            memcpy(j->n->out->data + (size_t)b * osz + off, in->out->data + (size_t)b * isz,
                   isz * sizeof(float));
        off += isz;
    }
}

static int concat_forward(lop_graph *g, lop_node *n, int train)
{
    merge_job j = {g, n};
    lop_parallel_for(lop_node_batch(n), 1 + LOP_GRAIN / (long)sample_size(n), concat_samples, &j);
    return LOP_OK;
}

static void concat_grad_samples(void *ctx, long first, long last, int worker)
{
    const grad_job *j = ctx;
    size_t osz = sample_size(j->n), off = 0;
    for (int k = 0; k < j->k0; k++)
        off += sample_size(lop_input_node(j->g, j->n, k));
    for (int k = j->k0; k < j->k1; k++) {
        const lop_node *in = lop_input_node(j->g, j->n, k);
        size_t isz = sample_size(in);
        for (long b = first; b < last; b++)
            pass_back(in->dout->data + (size_t)b * isz,
                      j->n->dout->data + (size_t)b * osz + off, isz, j->overwrite[k - j->k0]);
        off += isz;
    }
}

static int concat_backward(lop_graph *g, lop_node *n)
{
    backward_by_groups(g, n, lop_node_batch(n), 1 + LOP_GRAIN / (long)sample_size(n),
                       concat_grad_samples);
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

static void flatten_range(void *ctx, long begin, long end, int worker)
{
    const merge_job *j = ctx;
    memcpy(j->n->out->data + begin, lop_input_node(j->g, j->n, 0)->out->data + begin,
           (size_t)(end - begin) * sizeof(float));
}

static int flatten_forward(lop_graph *g, lop_node *n, int train)
{
    merge_job j = {g, n};
    lop_parallel_for((long)n->out->numel, LOP_GRAIN, flatten_range, &j);
    return LOP_OK;
}

static int flatten_backward(lop_graph *g, lop_node *n)
{
    backward_by_groups(g, n, (long)n->out->numel, LOP_GRAIN, same_grad_range);
    return LOP_OK;
}

const lop_layer_ops lop_flatten_ops = {
    .infer = flatten_infer,
    .forward = flatten_forward,
    .backward = flatten_backward,
};
