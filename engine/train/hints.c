/*
 * hints.c - feature hints for a fine-tune (FitNets, Romero et al. 2015): besides the
 * logits, chosen activations of the trained network learn the teacher's at the same
 * places, as the pruning's least-squares refits learnt them on calibration images.  A
 * pruned network's activation keeps some of the original's channels, so each hint maps
 * its channels into the teacher's.  A hint's loss is the relative squared error
 *
 *     E = sum (s - t)^2 / sum t^2     (over the batch's images, channels, positions)
 *
 * so hints at layers of any scale weigh alike; dE/ds = 2 (s - t) / sum t^2.
 */
#include <math.h>

#include "internal.h"

/* The teacher's channel that the student's channel c learns. */
static int source_channel(const lop_hint *h, int c)
{
    return h->channels ? h->channels[c] : c;
}

int lop_hints_check(const lop_graph *g, const lop_graph *teacher, const lop_hint *h, int n)
{
    if (n > 0 && (!h || !teacher))
        return lop_fail(LOP_EINVAL, "train: hints need a teacher");
    for (int k = 0; k < n; k++) {
        if (h[k].student < 1 || h[k].student >= g->n || h[k].teacher < 0 ||
            h[k].teacher >= teacher->n)
            return lop_fail(LOP_EINVAL, "train: hint %d pairs node %d of %d and node %d of "
                            "the teacher's %d (the input is no hint)", k + 1, h[k].student,
                            g->n, h[k].teacher, teacher->n);
        const lop_node *s = g->nodes[h[k].student], *t = teacher->nodes[h[k].teacher];
        int same = s->ndim == t->ndim;
        for (int d = 1; same && d < s->ndim; d++)
            same = s->dims[d] == t->dims[d];
        if (!same || (!h[k].channels && s->dims[0] != t->dims[0]))
            return lop_fail(LOP_ESHAPE, "train: hint %d: %s's output and the teacher's %s's "
                            "differ in shape%s", k + 1, s->name, t->name,
                            h[k].channels ? "" : " (and no channel map)");
        for (int c = 0; h[k].channels && c < s->dims[0]; c++)
            if (h[k].channels[c] < 0 || h[k].channels[c] >= t->dims[0])
                return lop_fail(LOP_EINVAL, "train: hint %d maps channel %d of %s to %d, "
                                "outside the teacher's %s (%d channels)", k + 1, c + 1,
                                s->name, h[k].channels[c] + 1, t->name, t->dims[0]);
    }
    return LOP_OK;
}

/* One hint's pass over its rows (an image's channel: `area` values), cut among the
 * threads: the sums in LOP_PARTS parts, added in part order afterwards, so the loss
 * does not depend on the number of threads; then the gradient, row by row. */
typedef struct hint_pass {
    const lop_hint *h;
    const float *s, *t;
    int rows, channels, teacher_channels;
    size_t area;
    double err[LOP_PARTS], energy[LOP_PARTS];
    float *grad, k;
} hint_pass;

static const float *teacher_row(const hint_pass *p, long row)
{
    long b = row / p->channels, c = row % p->channels;
    return p->t + ((size_t)b * p->teacher_channels + source_channel(p->h, (int)c)) * p->area;
}

/* sum (s - t)^2 and sum t^2 over the rows of parts [begin, end): each row's in eight
 * float lanes (a row is at most a map's size), added up in double. */
static void part_sums(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    hint_pass *p = ctx;
    for (long part = begin; part < end; part++) {
        int lo, hi;
        lop_slice_of(p->rows, part, LOP_PARTS, 1, &lo, &hi);
        double err = 0, energy = 0;
        for (long row = lo; row < hi; row++) {
            const float *sv = p->s + (size_t)row * p->area, *tv = teacher_row(p, row);
            float e[8] = {0}, q[8] = {0};
            size_t i = 0;
            for (; i + 8 <= p->area; i += 8)
                for (int l = 0; l < 8; l++) {
                    float d = sv[i + l] - tv[i + l];
                    e[l] += d * d;
                    q[l] += tv[i + l] * tv[i + l];
                }
            for (int l = 0; l < 8; l++) {
                err += e[l];
                energy += q[l];
            }
            for (; i < p->area; i++) {
                double d = (double)sv[i] - tv[i];
                err += d * d;
                energy += (double)tv[i] * tv[i];
            }
        }
        p->err[part] = err;
        p->energy[part] = energy;
    }
}

static void row_grads(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const hint_pass *p = ctx;
    for (long row = begin; row < end; row++) {
        const float *sv = p->s + (size_t)row * p->area, *tv = teacher_row(p, row);
        float *gv = p->grad + (size_t)row * p->area;
        for (size_t i = 0; i < p->area; i++)
            gv[i] = p->k * (sv[i] - tv[i]);
    }
}

int lop_hint_loss(const lop_graph *g, const lop_graph *teacher, const lop_hint *h,
                  float scale, double *loss, lop_tensor *grad)
{
    const lop_tensor *s = g->nodes[h->student]->out, *t = teacher->nodes[h->teacher]->out;
    if (!s || !t || s->shape[0] != t->shape[0])
        return lop_fail(LOP_ESTATE, "train: a hint's nodes have not both run on the batch");
    if (grad && !lop_tensor_same_shape(grad, s))
        return lop_fail(LOP_ESHAPE, "train: a hint's gradient must have its node's shape");
    const int rows = s->shape[0] * s->shape[1];
    hint_pass p = {.h = h, .s = s->data, .t = t->data, .rows = rows, .channels = s->shape[1],
                   .teacher_channels = t->shape[1], .area = s->numel / (size_t)rows};
    lop_parallel_for(LOP_PARTS, 1, part_sums, &p);
    double err = 0, energy = 0;
    for (int part = 0; part < LOP_PARTS; part++) {
        err += p.err[part];
        energy += p.energy[part];
    }
    /* A teacher's activation that is zero everywhere (dead units) weighs as one of
     * unit energy: the student is still pulled to zero, by a bounded gradient. */
    double norm = energy > 0 ? energy : 1.0;
    *loss = err / norm;
    if (grad) {
        p.grad = grad->data;
        p.k = (float)(2.0 * scale / norm);
        lop_parallel_for(rows, LOP_GRAIN / (long)p.area + 1, row_grads, &p);
    }
    return LOP_OK;
}
