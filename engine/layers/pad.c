/*
 * pad.c - zero padding around each (H,W) plane, with an amount of its own on every
 * side: pad_h rows above, pad_bottom below, pad_w columns on the left, pad_right on
 * the right.  Convolutions and pools pad themselves, but only symmetrically; this
 * layer exists for what they cannot say.  The ONNX reader turns a convolution's
 * asymmetric padding (pads that differ before and after, as exporters write for
 * "SAME" padding on even sizes) and a standalone Pad operator into a pad node in front
 * of the layer.  Backward crops the gradient.  No parameters and no FLOPs (it only
 * moves values); channels pass straight through, so pruning only changes its shape.
 */
#include <limits.h>
#include <string.h>

#include "internal.h"

/* Most zeros on one side: real networks pad by a few pixels; this only stops a
 * hostile model file from declaring maps that cannot be allocated. */
#define PAD_MAX 1024

static int pad_infer(const lop_graph *g, lop_node *n)
{
    const lop_attrs *a = &n->attr;
    const lop_node *in = lop_input_node(g, n, 0);
    if (in->ndim != 3)
        return lop_fail(LOP_ESHAPE, "pad '%s' needs a (C,H,W) input, '%s' gives rank %d",
                        n->name, in->name, in->ndim);
    const int sides[4] = {a->pad_h, a->pad_bottom, a->pad_w, a->pad_right};
    for (int i = 0; i < 4; i++)
        if (sides[i] < 0 || sides[i] > PAD_MAX)
            return lop_fail(LOP_EINVAL, "pad '%s': padding top %d, bottom %d, left %d, "
                            "right %d: each must be in 0..%d", n->name, a->pad_h,
                            a->pad_bottom, a->pad_w, a->pad_right, PAD_MAX);
    long long h = (long long)in->dims[1] + a->pad_h + a->pad_bottom;
    long long w = (long long)in->dims[2] + a->pad_w + a->pad_right;
    if (in->dims[0] * h * w > INT_MAX)
        return lop_fail(LOP_ESHAPE, "pad '%s': the padded %dx%lldx%lld output is too large",
                        n->name, in->dims[0], h, w);
    n->ndim = 3;
    n->dims[0] = in->dims[0];
    n->dims[1] = (int)h;
    n->dims[2] = (int)w;
    return LOP_OK;
}

/* What the workers share: the input plane's size, where it sits in the output plane,
 * and the tensors of one pass.  Work is split into runs of whole planes. */
typedef struct pad_job {
    int h, w, oh, ow, top, left;
    int overwrite;         /* backward: dx is stored, not added to (lop_input_grad) */
    const float *x, *dy;
    float *y, *dx;
} pad_job;

static void run_planes(const lop_node *n, pad_job *j, lop_range_fn fn)
{
    long planes = (long)lop_node_batch(n) * n->dims[0];
    lop_parallel_for(planes, 1 + LOP_GRAIN / ((long)j->oh * j->ow), fn, j);
}

static pad_job job_of(const lop_graph *g, const lop_node *n)
{
    const lop_node *in = lop_input_node(g, n, 0);
    return (pad_job){.h = in->dims[1], .w = in->dims[2], .oh = n->dims[1],
                     .ow = n->dims[2], .top = n->attr.pad_h, .left = n->attr.pad_w};
}

static void pad_planes(void *ctx, long q0, long q1, int worker)
{
    const pad_job *j = ctx;
    size_t isz = (size_t)j->h * j->w, osz = (size_t)j->oh * j->ow;
    for (long q = q0; q < q1; q++) {
        const float *x = j->x + (size_t)q * isz;
        float *y = j->y + (size_t)q * osz;
        memset(y, 0, osz * sizeof(float));
        for (int i = 0; i < j->h; i++)
            memcpy(y + (size_t)(i + j->top) * j->ow + j->left, x + (size_t)i * j->w,
                   (size_t)j->w * sizeof(float));
    }
}

static int pad_forward(lop_graph *g, lop_node *n, int train)
{
    pad_job j = job_of(g, n);
    j.x = lop_input_node(g, n, 0)->out->data;
    j.y = n->out->data;
    run_planes(n, &j, pad_planes);
    return LOP_OK;
}

/* The gradient of the input is the part of the output's gradient it was copied to:
 * every input cell has one, so the crop is stored when this pad writes the gradient
 * first, and added otherwise. */
static void crop_planes(void *ctx, long q0, long q1, int worker)
{
    const pad_job *j = ctx;
    size_t isz = (size_t)j->h * j->w, osz = (size_t)j->oh * j->ow;
    for (long q = q0; q < q1; q++) {
        float *dx = j->dx + (size_t)q * isz;
        const float *dy = j->dy + (size_t)q * osz;
        for (int i = 0; i < j->h; i++) {
            const float *restrict row = dy + (size_t)(i + j->top) * j->ow + j->left;
            float *restrict out = dx + (size_t)i * j->w;
            if (j->overwrite)
                memcpy(out, row, (size_t)j->w * sizeof *out);
            else
                for (int k = 0; k < j->w; k++)
                    out[k] += row[k];
        }
    }
}

static int pad_backward(lop_graph *g, lop_node *n)
{
    pad_job j = job_of(g, n);
    j.dy = n->dout->data;
    j.dx = lop_input_grad(g, n, 0, &j.overwrite);
    run_planes(n, &j, crop_planes);
    return LOP_OK;
}

const lop_layer_ops lop_pad_ops = {
    .infer = pad_infer,
    .forward = pad_forward,
    .backward = pad_backward,
};
