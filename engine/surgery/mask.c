/*
 * mask.c - channel masks: the soft half of pruning.  A mask zeroes a group's channels
 * in every member that owns per-channel parameters and keeps them at zero after each
 * SGD step, so a network can retrain around channels before they are removed for
 * real (the Hessian recipe's mask -> retrain -> remove flow).
 */
#include <string.h>

#include "internal.h"

/* Which parameters a mask zeroes: weights and biases (for batchnorm gamma and beta);
 * running statistics stay, they no longer matter once gamma and beta are zero. */
static int masked_param(const lop_node *n, int k)
{
    return k < 2 && k < n->nparams;
}

void lop_graph_apply_masks(lop_graph *g)
{
    lop_graph_freeze(g, 0);   /* zeroes weights */
    for (int i = 0; i < g->n; i++) {
        lop_node *n = g->nodes[i];
        if (!n->mask)
            continue;
        for (int k = 0; k < n->nparams; k++) {
            if (!masked_param(n, k))
                continue;
            lop_tensor *t = n->param[k];
            size_t inner = t->numel / (size_t)t->shape[0];
            for (int c = 0; c < t->shape[0]; c++)
                if (!n->mask[c])
                    memset(t->data + (size_t)c * inner, 0, inner * sizeof(float));
        }
    }
}

/* A pick among the group's members (its index entries are the channels), or -1. */
static int pick_member(const lop_graph *g, const lop_group *grp)
{
    for (int k = 0; k < grp->nmembers; k++)
        if (g->nodes[grp->members[k].node]->kind == LOP_PICK)
            return grp->members[k].node;
    return -1;
}

int lop_graph_set_mask(lop_graph *g, int node, const unsigned char *keep, int n)
{
    lop_graph_freeze(g, 0);
    if (node < 0 || node >= g->n)
        return lop_fail(LOP_EINVAL, "mask: node %d is not in 0..%d", node, g->n - 1);
    lop_groups gs = {0};
    int st = lop_graph_groups(g, &gs);
    if (st != LOP_OK)
        return st;
    int gi = lop_groups_find(&gs, node);
    const lop_group *grp = gi >= 0 ? &gs.groups[gi] : NULL;
    int pick;
    if (!grp)
        st = lop_fail(LOP_EINVAL, "mask: '%s' does not carry a single channel group",
                      g->nodes[node]->name);
    else if (!grp->prunable)
        st = lop_fail(LOP_EINVAL, "mask: the channels of '%s' cannot be pruned: %s",
                      g->nodes[node]->name, grp->why);
    else if ((pick = pick_member(g, grp)) >= 0)
        /* zeroing a pick's index would pick channel 0, not silence the channel */
        st = lop_fail(LOP_EINVAL, "mask: '%s' is chosen by the pick '%s': prune it instead "
                      "of masking", g->nodes[node]->name, g->nodes[pick]->name);
    else if (!keep || n != grp->channels)
        st = lop_fail(LOP_EINVAL, "mask: '%s' has %d channels, the mask %d",
                      g->nodes[node]->name, grp->channels, keep ? n : 0);
    else if (lop_count_kept(keep, n) == 0)
        st = lop_fail(LOP_EINVAL, "mask: a mask must keep at least one channel of '%s'",
                      g->nodes[node]->name);
    else   /* so that removing the masked channels later is a valid prune */
        st = lop_group_check_slices(g, grp, keep, node, "mask");
    /* allocate every member's mask first, so a failure changes nothing */
    unsigned char **fresh = NULL;
    if (st == LOP_OK && !(fresh = lop_calloc((size_t)g->n, sizeof *fresh)))
        st = LOP_ENOMEM;
    for (int k = 0; st == LOP_OK && k < grp->nmembers; k++) {
        const lop_member *m = &grp->members[k];
        lop_node *t = g->nodes[m->node];
        if (!lop_member_owns_channels(g, m) || t->mask || fresh[m->node])
            continue;
        size_t len = (size_t)t->param[0]->shape[0];
        if (!(fresh[m->node] = lop_malloc(len)))
            st = LOP_ENOMEM;
        else
            memset(fresh[m->node], 1, len);
    }
    if (st == LOP_OK) {
        for (int i = 0; i < g->n; i++)
            if (fresh[i]) {
                g->nodes[i]->mask = fresh[i];
                fresh[i] = NULL;
            }
        for (int k = 0; k < grp->nmembers; k++) {
            const lop_member *m = &grp->members[k];
            if (!lop_member_owns_channels(g, m))
                continue;
            unsigned char *mask = g->nodes[m->node]->mask;
            for (int c = 0; c < n; c++)
                memset(mask + m->offset + (size_t)c * m->block, keep[c] ? 1 : 0,
                       (size_t)m->block);
        }
        lop_graph_apply_masks(g);
    }
    if (fresh)
        for (int i = 0; i < g->n; i++)
            lop_free(fresh[i]);
    lop_free(fresh);
    lop_groups_free(&gs);
    return st;
}

/* The first prunable group whose producer's mask drops a channel, and its keep list
 * (0-based, increasing, in keep[]); -1 when no mask drops anything. */
static int next_masked(const lop_graph *g, const lop_groups *gs, int *keep, int *nkeep)
{
    for (int i = 0; i < gs->n; i++) {
        const lop_group *grp = &gs->groups[i];
        const lop_node *p = g->nodes[grp->members[0].node];
        if (!grp->prunable || grp->members[0].role != LOP_ROLE_PRODUCER || !p->mask)
            continue;
        int k = 0;
        for (int c = 0; c < grp->channels; c++)
            if (p->mask[c])
                keep[k++] = c;
        if (k < grp->channels) {
            *nkeep = k;
            return grp->members[0].node;
        }
    }
    return -1;
}

int lop_graph_remove_masked(lop_graph *g, int *removed)
{
    lop_graph_freeze(g, 0);
    int total = 0, st = LOP_OK;
    for (;;) {
        lop_groups gs = {0};
        if ((st = lop_graph_groups(g, &gs)) != LOP_OK)
            break;
        int widest = 1;
        for (int i = 0; i < gs.n; i++)
            if (gs.groups[i].channels > widest)
                widest = gs.groups[i].channels;
        int *keep = lop_malloc((size_t)widest * sizeof(int)), nkeep = 0;
        int node = keep ? next_masked(g, &gs, keep, &nkeep) : -1;
        int channels = node >= 0 ? gs.groups[lop_groups_find(&gs, node)].channels : 0;
        lop_groups_free(&gs);
        if (!keep) {
            st = LOP_ENOMEM;
            break;
        }
        if (node >= 0 && nkeep == 0)
            st = lop_fail(LOP_EINVAL, "remove masked: the mask of '%s' drops every channel",
                          g->nodes[node]->name);
        else if (node >= 0 && (st = lop_graph_prune(g, node, keep, nkeep)) == LOP_OK)
            total += channels - nkeep;
        lop_free(keep);
        if (node < 0 || st != LOP_OK)
            break;
    }
    if (st == LOP_OK)
        for (int i = 0; i < g->n; i++) {
            lop_free(g->nodes[i]->mask);
            g->nodes[i]->mask = NULL;
        }
    if (removed)
        *removed = total;
    return st;
}
