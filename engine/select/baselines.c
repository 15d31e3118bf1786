/*
 * baselines.c - the selection rules that need no statistics, against which ThiNet and
 * LASSO are measured: the first k channels, a seeded random k, and the k channels
 * whose producing filters have the largest L1 norm (Li et al., "Pruning filters for
 * efficient ConvNets").  The L1 rule sums over every producer of the channel group
 * (a residual stage has several), looks through channel picks to the filters the
 * picked channels come from, and ranks within each slice of a group that a grouped
 * convolution slices, so that its keep list is one the group can be pruned to.
 */
#include <math.h>

#include "internal.h"

int lop_select_first(int c, int nkeep, int *keep)
{
    int st = lop_check_keep(c, nkeep, "first");
    for (int i = 0; st == LOP_OK && i < nkeep; i++)
        keep[i] = i;
    return st;
}

int lop_select_random(int c, int nkeep, uint64_t seed, int *keep)
{
    int st = lop_check_keep(c, nkeep, "random");
    int *perm = st == LOP_OK ? lop_malloc((size_t)c * sizeof *perm) : NULL;
    if (st != LOP_OK || !perm)
        return st != LOP_OK ? st : LOP_ENOMEM;
    lop_rng r;
    lop_rng_seed(&r, seed);
    for (int j = 0; j < c; j++)
        perm[j] = j;
    lop_shuffle(perm, c, &r);
    for (int i = 0; i < nkeep; i++)
        keep[i] = perm[i];
    lop_sort_channels(keep, nkeep);
    lop_free(perm);
    return LOP_OK;
}

/* score[j] += the L1 norm of every filter producing channel j of the group that
 * node's output carries (c channels); *producers counts the filters' layers.  A pick
 * producer passes on the scores of the channels it picks. */
static int add_filter_l1(const lop_graph *g, const lop_groups *gs, int node, int c,
                         double *score, int *producers, int depth)
{
    int gi = lop_groups_find(gs, node);
    if (gi < 0 || gs->groups[gi].channels != c || depth > g->n)
        return LOP_OK;
    const lop_group *grp = &gs->groups[gi];
    int st = LOP_OK;
    for (int k = 0; k < grp->nmembers && st == LOP_OK; k++) {
        const lop_member *m = &grp->members[k];
        const lop_node *p = g->nodes[m->node];
        if (m->role != LOP_ROLE_PRODUCER)
            continue;
        const lop_tensor *w = p->param[0];
        if (p->kind == LOP_PICK) {
            const lop_node *up = lop_input_node(g, p, 0);
            int cu = up->dims[0];
            double *inner = lop_calloc((size_t)cu, sizeof *inner);
            if (!inner)
                return LOP_ENOMEM;
            st = add_filter_l1(g, gs, p->inputs[0], cu, inner, producers, depth + 1);
            for (int j = 0; st == LOP_OK && j < c; j++) {
                float at = w->data[m->offset + j];
                if (!(at >= 0 && at < cu))
                    st = lop_fail(LOP_EINVAL, "l1: pick '%s' has no channel %g", p->name, at);
                else
                    score[j] += inner[(int)at];
            }
            lop_free(inner);
            continue;
        }
        size_t per = w->numel / (size_t)w->shape[0];
        for (int j = 0; j < c && m->offset + j < w->shape[0]; j++)
            for (size_t e = 0; e < per; e++)
                score[j] += fabs(w->data[(size_t)(m->offset + j) * per + e]);
        (*producers)++;
    }
    return st;
}

int lop_select_l1(const lop_graph *g, int node, int nkeep, int *keep)
{
    int st = lop_check_filter_layer(g, node, "l1");
    if (st != LOP_OK)
        return st;
    const lop_node *layer = g->nodes[node];
    int c = lop_input_node(g, layer, 0)->dims[0];
    st = lop_check_keep(c, nkeep, "l1");
    if (st != LOP_OK)
        return st;
    lop_groups gs = {0};
    double *score = lop_calloc((size_t)c, sizeof *score);
    if (!score)
        return LOP_ENOMEM;
    int producers = 0, slices = 1;
    st = lop_graph_groups(g, &gs);
    if (st == LOP_OK)
        st = add_filter_l1(g, &gs, layer->inputs[0], c, score, &producers, 0);
    if (st == LOP_OK && producers == 0)
        st = lop_fail(LOP_EINVAL, "l1: the input channels of '%s' have no producing filters "
                      "to rank", layer->name);
    if (st == LOP_OK)   /* producers found: the input is one group of c channels */
        slices = gs.groups[lop_groups_find(&gs, layer->inputs[0])].slices;
    if (st == LOP_OK && nkeep % slices != 0)
        st = lop_fail(LOP_EINVAL, "l1: cannot keep %d of the %d input channels of '%s': a "
                      "grouped convolution splits them into %d slices, which must keep as "
                      "many each", nkeep, c, layer->name, slices);
    if (st == LOP_OK)
        st = lop_select_top_sliced(score, c, slices, nkeep, keep);
    lop_groups_free(&gs);
    lop_free(score);
    return st;
}
