/*
 * fusion.c - an evaluation pass runs a convolution together with the batchnorm, the
 * residual add and the relu (or relu6) after it, and an add or a lone batchnorm
 * together with the relu after it: the chain's first node computes the last one's
 * values as it stores its output, straight into the last node's output, and the
 * nodes in between do not run.  A batchnorm, an add and a relu after a convolution
 * are each a pass over memory that computes almost nothing; fused they cost a
 * multiply-add, an add and a clamp per value while the value is still in registers
 * or cache.  lop_graph_forward_until never fuses: it serves callers that read the
 * nodes in between.
 *
 * A training pass fuses less: its backward needs a convolution's output (the
 * batchnorm's input), and a relu's backward its output or what decides it.  So only a
 * batchnorm or add whose one reader is a relu / relu6 writes that relu's output, and
 * the relu's backward runs inside theirs: the batchnorm's recomputes its output from
 * the input it reads anyway, with the forward's own arithmetic, to mask the relu's
 * gradient; the add's masks it by the relu's output.  One memory pass forward and one
 * backward fewer per relu, with the same bits as the nodes run one by one. */
#include <math.h>

#include "internal.h"

static int is_act(const lop_node *n)
{
    return n->kind == LOP_RELU || n->kind == LOP_RELU6;
}

/* The node that reads node i, when it is i's only reader and reads it once; else -1.
 * readers[i] counts i's reads, last[i] is i's last reader. */
static int sole_reader(const int *readers, const int *last, int i)
{
    return readers[i] == 1 ? last[i] : -1;
}

/* Add node a's input other than node `id` (a has two). */
static int other_input(const lop_node *a, int id)
{
    return a->inputs[0] == id ? a->inputs[1] : a->inputs[0];
}

/* The node before t in the chain node `head` starts: an add's input from the chain
 * (its other input, the residual, comes before the head), else t's one input. */
static int chain_before(const lop_graph *g, int t, int head)
{
    const lop_node *n = g->nodes[t];
    return n->kind == LOP_ADD && n->inputs[0] < head ? n->inputs[1] : n->inputs[0];
}

/* The last node of the chain node `head` starts, or head itself:
 *   conv [-> batchnorm] [-> add of it and a node before the conv] [-> relu / relu6]
 *   batchnorm -> relu / relu6,  add -> relu / relu6 */
static int chain_tail(const lop_graph *g, const int *readers, const int *last, int head)
{
    const lop_node *h = g->nodes[head];
    int t = head, next = sole_reader(readers, last, t);
    if (h->kind == LOP_CONV2D) {
        if (next >= 0 && g->nodes[next]->kind == LOP_BATCHNORM) {
            t = next;
            next = sole_reader(readers, last, t);
        }
        const lop_node *a = next >= 0 ? g->nodes[next] : NULL;
        if (a && a->kind == LOP_ADD && a->ninputs == 2 && other_input(a, t) < head) {
            t = next;
            next = sole_reader(readers, last, t);
        }
    } else if (h->kind != LOP_BATCHNORM && h->kind != LOP_ADD) {
        return head;
    }
    return next >= 0 && is_act(g->nodes[next]) ? next : t;
}

/* readers[i]: how many times later nodes read node i; last[i]: its last reader (both
 * g->n ints, the caller's to free); and every fused[i] LOP_FUSED_SELF. */
static int count_readers(const lop_graph *g, int **readers, int **last, int *fused)
{
    *readers = lop_calloc((size_t)g->n, sizeof **readers);
    *last = lop_malloc((size_t)g->n * sizeof **last);
    if (!*readers || !*last) {
        lop_free(*readers);
        lop_free(*last);
        return LOP_ENOMEM;
    }
    for (int i = 1; i < g->n; i++)
        for (int k = 0; k < g->nodes[i]->ninputs; k++) {
            (*readers)[g->nodes[i]->inputs[k]]++;
            (*last)[g->nodes[i]->inputs[k]] = i;
        }
    for (int i = 0; i < g->n; i++)
        fused[i] = LOP_FUSED_SELF;
    return LOP_OK;
}

int lop_fusion_plan(const lop_graph *g, int *fused)
{
    int *readers, *last;
    if (count_readers(g, &readers, &last, fused) != LOP_OK)
        return LOP_ENOMEM;
    for (int i = 1; i < g->n; i++) {
        if (fused[i] != LOP_FUSED_SELF)
            continue;
        int tail = chain_tail(g, readers, last, i);
        if (tail == i)
            continue;
        for (int t = tail; t != i; t = chain_before(g, t, i))
            fused[t] = LOP_FUSED_AWAY;
        fused[i] = tail;
    }
    lop_free(last);
    lop_free(readers);
    return LOP_OK;
}

static int train_fusion = 1;

void lop_debug_train_fusion(int on)
{
    train_fusion = on != 0;
}

int lop_fusion_train_plan(const lop_graph *g, const unsigned char *keep, int *fused)
{
    int *readers, *last;
    if (count_readers(g, &readers, &last, fused) != LOP_OK)
        return LOP_ENOMEM;
    for (int h = 1; train_fusion && h < g->n; h++) {
        lop_kind kind = g->nodes[h]->kind;
        int t = sole_reader(readers, last, h);
        if ((kind == LOP_BATCHNORM || kind == LOP_ADD) && t >= 0 && is_act(g->nodes[t]) &&
            !(keep && keep[h])) {
            fused[h] = t;
            fused[t] = LOP_FUSED_AWAY;
        }
    }
    lop_free(last);
    lop_free(readers);
    return LOP_OK;
}

/* The clamp of an activation node, or none. */
static void clamp_of(const lop_node *n, lop_epilogue *e)
{
    e->lo = is_act(n) ? 0.0f : -INFINITY;
    e->hi = is_act(n) ? lop_activation_cap(n) : INFINITY;
}

int lop_fusion_epilogue(lop_graph *g, int head, int tail, int batch, lop_epilogue *e)
{
    lop_node *h = g->nodes[head], *t = g->nodes[tail];
    int st = lop_node_ensure_out(t, batch);
    if (st != LOP_OK)
        return st;
    clamp_of(t, e);
    e->y = t->out->data;
    e->mul = e->add = e->residual = NULL;
    if (h->kind != LOP_CONV2D)
        return LOP_OK;
    /* back from the tail: the activation, the add (its input that is not the chain's
     * is the residual), the batchnorm */
    int id = is_act(t) ? chain_before(g, tail, head) : tail;
    if (g->nodes[id]->kind == LOP_ADD) {
        const lop_node *a = g->nodes[id];
        id = chain_before(g, id, head);
        e->residual = g->nodes[other_input(a, id)]->out->data;
    }
    const lop_node *bn = g->nodes[id]->kind == LOP_BATCHNORM ? g->nodes[id] : NULL;
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
