/*
 * fusion.c - an evaluation pass runs a convolution together with the batchnorm and
 * the relu (or relu6) after it, and an add or a lone batchnorm together with the
 * relu after it: the chain's first node computes the last one's values as it stores
 * its output, straight into the last node's output, and the nodes in between do not
 * run.  A batchnorm and a relu after a convolution are each a pass over memory that
 * computes almost nothing; fused they cost a multiply-add and a clamp per value
 * while the value is still in registers or cache.  Training passes never fuse (the
 * backward pass needs every node's output), and nor does lop_graph_forward_until,
 * which serves callers that read the nodes in between.
 */
#include <math.h>

#include "internal.h"

/* Whether node `next` may join a chain as the node after `prev`: prev's one reader,
 * reading it once, and of a kind that follows prev's in a chain. */
static int joins(const lop_graph *g, const int *readers, int prev, int next)
{
    if (next < 0 || readers[prev] != 1)
        return 0;
    const lop_node *p = g->nodes[prev], *n = g->nodes[next];
    int act = n->kind == LOP_RELU || n->kind == LOP_RELU6;
    if (n->kind == LOP_BATCHNORM)
        return p->kind == LOP_CONV2D;
    return act && (p->kind == LOP_CONV2D || p->kind == LOP_BATCHNORM || p->kind == LOP_ADD);
}

int lop_fusion_plan(const lop_graph *g, int *fused)
{
    /* readers[i]: how many times later nodes read node i; fused[] holds, until the
     * chains are marked, each node's last reader. */
    int *readers = lop_calloc((size_t)g->n, sizeof *readers);
    if (!readers)
        return LOP_ENOMEM;
    for (int i = 0; i < g->n; i++)
        fused[i] = -1;
    for (int i = 1; i < g->n; i++)
        for (int k = 0; k < g->nodes[i]->ninputs; k++) {
            readers[g->nodes[i]->inputs[k]]++;
            fused[g->nodes[i]->inputs[k]] = i;
        }
    int *next = lop_malloc((size_t)g->n * sizeof *next);
    if (!next) {
        lop_free(readers);
        return LOP_ENOMEM;
    }
    for (int i = 0; i < g->n; i++)
        next[i] = joins(g, readers, i, fused[i]) ? fused[i] : -1;
    for (int i = 0; i < g->n; i++)
        fused[i] = LOP_FUSED_SELF;
    for (int i = 1; i < g->n; i++) {
        if (fused[i] != LOP_FUSED_SELF || next[i] < 0)
            continue;
        int tail = next[i];
        /* conv -> batchnorm -> relu; a batchnorm or add takes one relu */
        if (g->nodes[i]->kind == LOP_CONV2D && g->nodes[tail]->kind == LOP_BATCHNORM &&
            next[tail] >= 0) {
            fused[tail] = LOP_FUSED_AWAY;
            tail = next[tail];
        }
        fused[tail] = LOP_FUSED_AWAY;
        fused[i] = tail;
    }
    lop_free(next);
    lop_free(readers);
    return LOP_OK;
}

/* The clamp of an activation node, or none. */
static void clamp_of(const lop_node *n, lop_epilogue *e)
{
    e->lo = -INFINITY;
    e->hi = INFINITY;
    if (n->kind == LOP_RELU || n->kind == LOP_RELU6)
        e->lo = 0.0f;
    if (n->kind == LOP_RELU6)
        e->hi = 6.0f;
}

/* n's output allocated for `batch` images, as a pass would. */
static int ensure_out(lop_node *n, int batch)
{
    int shape[4] = {batch, n->dims[0], n->dims[1], n->dims[2]};
    return lop_tensor_ensure(&n->out, n->ndim + 1, shape);
}

int lop_fusion_epilogue(lop_graph *g, int head, int tail, int batch, lop_epilogue *e)
{
    lop_node *h = g->nodes[head], *t = g->nodes[tail];
    int st = ensure_out(t, batch);
    if (st != LOP_OK)
        return st;
    clamp_of(t, e);
    e->y = t->out->data;
    e->mul = e->add = NULL;
    if (h->kind != LOP_CONV2D)
        return LOP_OK;
    /* the batchnorm: the tail, or the node between the convolution and the tail */
    const lop_node *bn = t->kind == LOP_BATCHNORM ? t
                         : t->inputs[0] != head ? g->nodes[t->inputs[0]] : NULL;
    const float *bias = h->attr.bias ? h->param[1]->data : NULL;
    if (!bn) {
        e->add = bias;
        return LOP_OK;
    }
    int c = h->dims[0], shape[1] = {2 * c};
    if ((st = lop_tensor_ensure(&g->affine, 1, shape)) != LOP_OK)
        return st;
    float *mul = g->affine->data, *add = mul + c;
    for (int k = 0; k < c; k++) {   /* in double, as folding the batchnorm would */
        double a, b;
        lop_batchnorm_affine_double(bn, k, &a, &b);
        mul[k] = (float)a;
        add[k] = (float)(bias ? b + a * bias[k] : b);
    }
    e->mul = mul;
    e->add = add;
    return LOP_OK;
}
