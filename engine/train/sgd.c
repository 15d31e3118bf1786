/*
 * sgd.c - stochastic gradient descent with momentum, Nesterov momentum and weight
 * decay, plus the learning-rate schedules the training loop follows.
 */
#include <math.h>

#include "internal.h"

/* Weight decay applies to the weights of conv2d and linear layers only: decaying
 * biases and batchnorm scales only hurts (the usual practice). */
static int decays(const lop_node *n, int k)
{
    return (n->kind == LOP_CONV2D || n->kind == LOP_LINEAR) && k == 0;
}

int lop_sgd_step(lop_graph *g, const lop_sgd *opt)
{
    lop_graph_freeze(g, 0);
    if (!(opt->lr >= 0) || !(opt->momentum >= 0 && opt->momentum < 1) ||
        !(opt->weight_decay >= 0))
        return lop_fail(LOP_EINVAL, "sgd: need lr >= 0, 0 <= momentum < 1, weight_decay >= 0 "
                        "(got %g, %g, %g)", opt->lr, opt->momentum, opt->weight_decay);
    /* Allocate every missing velocity first, so a failure changes no weight. */
    if (opt->momentum > 0)
        for (int i = 0; i < g->n; i++) {
            lop_node *n = g->nodes[i];
            for (int k = 0; k < n->nparams; k++)
                if (n->grad[k] && !n->velocity[k]) {
                    n->velocity[k] = lop_tensor_new(n->param[k]->ndim, n->param[k]->shape);
                    if (!n->velocity[k])
                        return LOP_ENOMEM;
                }
        }
    const float lr = opt->lr, mu = opt->momentum;
    for (int i = 0; i < g->n; i++) {
        lop_node *n = g->nodes[i];
        for (int k = 0; k < n->nparams; k++) {
            if (!n->grad[k])
                continue;
            float *w = n->param[k]->data;
            const float *gr = n->grad[k]->data;
            const float wd = decays(n, k) ? opt->weight_decay : 0.0f;
            size_t count = n->param[k]->numel;
            if (mu == 0) {
                for (size_t j = 0; j < count; j++)
                    w[j] -= lr * (gr[j] + wd * w[j]);
                continue;
            }
            float *v = n->velocity[k]->data;
            if (opt->nesterov) {
                for (size_t j = 0; j < count; j++) {
                    float d = gr[j] + wd * w[j];
                    v[j] = mu * v[j] + d;
                    w[j] -= lr * (d + mu * v[j]);
                }
            } else {
                for (size_t j = 0; j < count; j++) {
                    v[j] = mu * v[j] + gr[j] + wd * w[j];
                    w[j] -= lr * v[j];
                }
            }
        }
    }
    lop_graph_apply_masks(g);
    return LOP_OK;
}

float lop_lr_at(lop_schedule s, float base, double t, int epochs, int step_epochs, float gamma)
{
    if (t < 0)
        t = 0;
    if (t > 1)
        t = 1;
    switch (s) {
    case LOP_SCHEDULE_COSINE:
        return (float)(base * 0.5 * (1.0 + cos(3.14159265358979323846 * t)));
    case LOP_SCHEDULE_STEP: {
        if (step_epochs <= 0)
            return base;
        int steps = (int)floor(t * epochs / step_epochs + 1e-9);
        return (float)(base * pow(gamma, steps));
    }
    case LOP_SCHEDULE_CONSTANT:
    default:
        return base;
    }
}
