/*
 * fold_batchnorm.c - batchnorm folded into the convolution before it, for inference:
 * at evaluation a batchnorm is y = a x + s per channel (a = gamma / sqrt(var + eps),
 * s = beta - a mean), so a conv whose output only that batchnorm reads can take it
 * over by scaling each filter by a and its bias b to a b + s - one layer and one
 * memory pass fewer.  Training the result trains a different model (a biased conv,
 * no batch statistics).  The ONNX writer folds with it too, which is why it sits in
 * graph/ rather than surgery/: io/ may only use what comes before it.  The graph is
 * rebuilt as a copy and swapped in, so a failure leaves it untouched.
 */
#include <string.h>

#include "internal.h"

/* partner[i]: for a conv, the batchnorm folded into it; for that batchnorm, the conv;
 * else -1.  A batchnorm is folded when its input is a conv2d it alone reads (the
 * graph's output counts as a reader).  Returns the number of pairs, or -1 when out of
 * memory. */
static int pair_up(const lop_graph *g, int *partner)
{
    int *readers = lop_calloc((size_t)g->n, sizeof *readers), pairs = 0;
    if (!readers)
        return -1;
    readers[g->n - 1] = 1;
    for (int i = 0; i < g->n; i++) {
        partner[i] = -1;
        for (int k = 0; k < g->nodes[i]->ninputs; k++)
            readers[g->nodes[i]->inputs[k]]++;
    }
    for (int i = 0; i < g->n; i++) {
        int c = g->nodes[i]->kind == LOP_BATCHNORM ? g->nodes[i]->inputs[0] : -1;
        if (c >= 0 && g->nodes[c]->kind == LOP_CONV2D && readers[c] == 1) {
            partner[i] = c;
            partner[c] = i;
            pairs++;
        }
    }
    lop_free(readers);
    return pairs;
}

/* Append to fresh a copy of conv node c, reading ids in, with batchnorm bn folded in:
 * w'[o] = a[o] w[o], b'[o] = a[o] b[o] + s[o] (b = 0 for a conv without bias), in
 * double. */
static int copy_folded(const lop_node *c, const lop_node *bn, const int *in,
                       lop_graph *fresh)
{
    lop_node biased = *c;
    biased.attr.bias = 1;   /* the copy gains a zero bias when c has none */
    int st = lop_graph_copy_node(&biased, in, fresh);
    if (st != LOP_OK)
        return st;
    lop_node *m = fresh->nodes[fresh->n - 1];
    float *w = m->param[0]->data, *b = m->param[1]->data;
    size_t per = m->param[0]->numel / (size_t)c->attr.out_channels;
    for (int o = 0; o < c->attr.out_channels; o++) {
        double a, s;
        lop_batchnorm_affine_double(bn, o, &a, &s);
        for (size_t i = (size_t)o * per; i < (size_t)(o + 1) * per; i++)
            w[i] = (float)(a * w[i]);
        b[o] = (float)(a * b[o] + s);
    }
    return LOP_OK;
}

int lop_graph_fold_batchnorm(lop_graph *g, int *folded)
{
    lop_graph_freeze(g, 0);   /* rescales convolutions' weights */
    if (folded)
        *folded = 0;
    if (g->n < 2)
        return LOP_OK;
    int *partner = lop_malloc(2 * (size_t)g->n * sizeof *partner);
    int pairs = partner ? pair_up(g, partner) : -1;
    if (pairs <= 0) {
        lop_free(partner);
        return pairs < 0 ? LOP_ENOMEM : LOP_OK;
    }
    int *map = partner + g->n, first = 0, most = 1;   /* map: old id -> new id */
    while (partner[first] < 0)
        first++;   /* the first conv folded into: the nodes before it stay as they are */
    for (int i = 0; i < g->n; i++) {
        map[i] = i;
        most = g->nodes[i]->ninputs > most ? g->nodes[i]->ninputs : most;
    }
    lop_graph *fresh = NULL;
    int *in = lop_malloc((size_t)most * sizeof *in);
    int st = in ? lop_graph_prefix(g, first, &fresh) : LOP_ENOMEM;
    for (int i = first; i < g->n && st == LOP_OK; i++) {
        const lop_node *n = g->nodes[i];
        if (n->kind == LOP_BATCHNORM && partner[i] >= 0) {
            map[i] = map[partner[i]];   /* its readers read the conv */
            continue;
        }
        for (int k = 0; k < n->ninputs; k++)
            in[k] = map[n->inputs[k]];
        st = partner[i] >= 0 ? copy_folded(n, g->nodes[partner[i]], in, fresh)
                             : lop_graph_copy_node(n, in, fresh);
        map[i] = fresh->n - 1;
    }
    if (st == LOP_OK) {
        lop_graph_swap_in(g, fresh);
        fresh = NULL;
        if (folded)
            *folded = pairs;
    }
    lop_graph_free(fresh);
    lop_free(in);
    lop_free(partner);
    return st;
}
