/*
 * rollback.c - the way back from a training run that diverged.  A learning rate, a
 * distillation or a hint weight set too high can blow the loss up to infinity or NaN
 * within a few steps; every step after that writes NaN into the weights, and what
 * the caller got back was a network that answers one class for every image.
 * lop_train takes a copy of the parameters (and of the SGD velocities, which carry
 * the run's momentum into the next call) before its first step and puts it back when
 * the loss stops being finite, so a failed run costs the time it took and nothing
 * else.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* The floats a copy of g's parameters and of the velocities it has takes. */
static size_t floats_needed(const lop_graph *g)
{
    size_t total = 0;
    for (int i = 0; i < g->n; i++) {
        const lop_node *n = g->nodes[i];
        for (int k = 0; k < n->nparams; k++)
            total += n->param[k]->numel * (n->velocity[k] ? 2 : 1);
    }
    return total;
}

int lop_rollback_take(const lop_graph *g, lop_rollback *r)
{
    *r = (lop_rollback){0};
    size_t total = floats_needed(g);
    r->saved = lop_malloc((total ? total : 1) * sizeof(float));
    r->had = lop_calloc((size_t)g->n * LOP_MAX_PARAMS + 1, 1);
    if (!r->saved || !r->had) {
        lop_rollback_free(r);
        return LOP_ENOMEM;
    }
    float *at = r->saved;
    for (int i = 0; i < g->n; i++) {
        const lop_node *n = g->nodes[i];
        for (int k = 0; k < n->nparams; k++) {
            size_t count = n->param[k]->numel;
            memcpy(at, n->param[k]->data, count * sizeof(float));
            at += count;
            if (n->velocity[k]) {
                memcpy(at, n->velocity[k]->data, count * sizeof(float));
                at += count;
                r->had[i * LOP_MAX_PARAMS + k] = 1;
            }
        }
    }
    return LOP_OK;
}

void lop_rollback_restore(lop_graph *g, const lop_rollback *r)
{
    lop_graph_freeze(g, 0);   /* kept Winograd weights were made from the old values */
    const float *at = r->saved;
    for (int i = 0; i < g->n; i++) {
        lop_node *n = g->nodes[i];
        for (int k = 0; k < n->nparams; k++) {
            size_t count = n->param[k]->numel;
            memcpy(n->param[k]->data, at, count * sizeof(float));
            at += count;
            if (r->had[i * LOP_MAX_PARAMS + k]) {
                memcpy(n->velocity[k]->data, at, count * sizeof(float));
                at += count;
            } else if (n->velocity[k]) {
                lop_tensor_release(n->velocity[k]);
                n->velocity[k] = NULL;
            }
        }
    }
}

void lop_rollback_free(lop_rollback *r)
{
    lop_free(r->saved);
    lop_free(r->had);
    *r = (lop_rollback){0};
}

int lop_graph_params_finite(const lop_graph *g)
{
    for (int i = 0; i < g->n; i++) {
        const lop_node *n = g->nodes[i];
        for (int k = 0; k < n->nparams; k++) {
            const float *v = n->param[k]->data;
            for (size_t j = 0; j < n->param[k]->numel; j++)
                if (!isfinite(v[j]))
                    return 0;
        }
    }
    return 1;
}
