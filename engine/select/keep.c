/*
 * keep.c - what every selection rule shares: how many channels a kept fraction means,
 * the validation of a request (and of the layer whose filters a rule ranks, or whose
 * grouped convolution it cannot handle yet), and the one top-k (highest scores, ties
 * to the lower channel, returned in increasing channel order) that LASSO's final cut,
 * the L1 rule and the Hessian ranking all go through - per slice for a group a grouped
 * convolution slices.
 */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

int lop_keep_count(double fraction, int c)
{
    if (c < 1)
        return 0;
    double want = ceil(fraction * c - 1e-9);
    return want < 1 ? 1 : want > c ? c : (int)want;
}

int lop_check_keep(int c, int nkeep, const char *what)
{
    if (c < 1)
        return lop_fail(LOP_EINVAL, "%s: no channels to select from", what);
    if (nkeep < 1 || nkeep > c)
        return lop_fail(LOP_EINVAL, "%s: cannot keep %d of %d channels", what, nkeep, c);
    return LOP_OK;
}

int lop_check_filter_layer(const lop_graph *g, int node, const char *what)
{
    if (node < 0 || node >= g->n ||
        (g->nodes[node]->kind != LOP_CONV2D && g->nodes[node]->kind != LOP_LINEAR))
        return lop_fail(LOP_EINVAL, "%s: node %d is not a conv2d or linear layer", what, node);
    return LOP_OK;
}

int lop_check_ungrouped(const lop_graph *g, int node, const char *what)
{
    const lop_node *n = g->nodes[node];
    if (n->kind == LOP_CONV2D && n->attr.groups > 1)
        return lop_fail(LOP_EINVAL, "grouped convolution '%s': %s does not support it yet",
                        n->name, what);
    return LOP_OK;
}

typedef struct scored { double score; int channel; } scored;

static int by_score_descending(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return (x->score < y->score) - (x->score > y->score);
    return (x->channel > y->channel) - (x->channel < y->channel);
}

static int by_value(const void *a, const void *b)
{
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

void lop_sort_channels(int *keep, int n)
{
    qsort(keep, (size_t)n, sizeof *keep, by_value);
}

int lop_select_top(const double *score, int c, int nkeep, int *keep)
{
    int st = lop_check_keep(c, nkeep, "top");
    if (st != LOP_OK)
        return st;
    for (int j = 0; j < c; j++)
        if (isnan(score[j]))
            return lop_fail(LOP_EINVAL, "top: the score of channel %d is not a number", j);
    scored *order = lop_malloc((size_t)c * sizeof *order);
    if (!order)
        return LOP_ENOMEM;
    for (int j = 0; j < c; j++)
        order[j] = (scored){score[j], j};
    qsort(order, (size_t)c, sizeof *order, by_score_descending);
    for (int i = 0; i < nkeep; i++)
        keep[i] = order[i].channel;
    lop_sort_channels(keep, nkeep);
    lop_free(order);
    return LOP_OK;
}

int lop_select_top_sliced(const double *score, int c, int slices, int nkeep, int *keep)
{
    int per = c / slices, each = nkeep / slices, st = LOP_OK;
    for (int s = 0; s < slices && st == LOP_OK; s++) {
        st = lop_select_top(score + (size_t)s * per, per, each, keep + (size_t)s * each);
        for (int i = 0; st == LOP_OK && i < each; i++)
            keep[s * each + i] += s * per;
    }
    return st;
}
