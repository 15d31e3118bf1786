/*
 * prune.c - physical channel removal.  Given a group and the channels to keep, every
 * member loses the same channels: producers' filters and biases, batchnorm entries,
 * depthwise filters, consumers' input slices (whole H*W blocks of linear columns after
 * a flatten, shifted by a concat's offsets; per conv group in a grouped convolution,
 * which is why a group it slices must keep as many channels in each slice).  All new
 * tensors are built and all shapes re-inferred before anything is swapped in, so a
 * failure leaves the graph unchanged.
 */
#include <string.h>

#include "internal.h"

/* Per-node plan: which entries survive along the parameters' output axis (dim 0) and
 * the node's input axis (a grouped conv's weight holds a slice of it per conv group);
 * NULL = untouched. */
typedef struct plan {
    unsigned char *out, *in;
    int out_len, in_len;
} plan;

static unsigned char *axis_mask(unsigned char **mask, int *len_field, int len)
{
    if (!*mask) {
        *mask = lop_malloc((size_t)len);
        if (!*mask)
            return NULL;
        memset(*mask, 1, (size_t)len);
        *len_field = len;
    }
    return *mask;
}

/* Input-axis length of a consumer: a conv's input channels (weight dim 1 per conv
 * group), a linear layer's columns. */
static int input_axis(const lop_node *n)
{
    return n->param[0]->shape[1] * (n->kind == LOP_CONV2D ? n->attr.groups : 1);
}

/* Clear the entries of the dropped channels: channel c sits at offset + c * block. */
static void clear_dropped(unsigned char *mask, const lop_member *m,
                          const unsigned char *kept, int channels)
{
    for (int c = 0; c < channels; c++)
        if (!kept[c])
            memset(mask + m->offset + (size_t)c * m->block, 0, (size_t)m->block);
}

/* Mark, in node n's plan, the channels of the group that are not kept. */
static int plan_member(const lop_graph *g, plan *p, const lop_member *m,
                       const unsigned char *kept, int channels)
{
    const lop_node *n = g->nodes[m->node];
    unsigned char *mask;
    if (m->role == LOP_ROLE_CONSUMER) {
        if (!(mask = axis_mask(&p->in, &p->in_len, input_axis(n))))
            return LOP_ENOMEM;
        clear_dropped(mask, m, kept, channels);
        return LOP_OK;
    }
    if (!lop_member_owns_channels(g, m))
        return LOP_OK;
    if (!(mask = axis_mask(&p->out, &p->out_len, n->param[0]->shape[0])))
        return LOP_ENOMEM;
    clear_dropped(mask, m, kept, channels);
    return LOP_OK;
}

/* t restricted to the kept entries along dim 0 (mask0) and dim 1 (mask1); either mask
 * may be NULL (keep all).  With groups > 1, mask1 spans groups * shape[1] entries and
 * the rows of conv group j (shape[0] / groups of them) read its j-th stretch: an input
 * channel's column in its group's slice.  Each stretch must keep as many entries. */
static lop_tensor *slice(const lop_tensor *t, const unsigned char *mask0,
                         const unsigned char *mask1, int groups)
{
    int shape[LOP_MAX_DIMS];
    int d1 = t->ndim > 1 ? t->shape[1] : 1, rows_per_group = t->shape[0] / groups;
    memcpy(shape, t->shape, sizeof shape);
    if (mask0)
        shape[0] = lop_count_kept(mask0, t->shape[0]);
    if (mask1 && t->ndim > 1)
        shape[1] = lop_count_kept(mask1, groups * d1) / groups;
    lop_tensor *r = lop_tensor_new(t->ndim, shape);
    if (!r)
        return NULL;
    size_t inner = 1;
    for (int d = 2; d < t->ndim; d++)
        inner *= (size_t)t->shape[d];
    float *dst = r->data;
    for (int i = 0; i < t->shape[0]; i++) {
        if (mask0 && !mask0[i])
            continue;
        const unsigned char *cols = mask1 ? mask1 + (size_t)(i / rows_per_group) * d1 : NULL;
        for (int j = 0; j < d1; j++) {
            if (t->ndim > 1 && cols && !cols[j])
                continue;
            memcpy(dst, t->data + ((size_t)i * d1 + j) * inner, inner * sizeof(float));
            dst += inner;
        }
    }
    return r;
}

/* New parameters (and gradient buffers) of node n under its plan. */
typedef struct fresh {
    lop_tensor *param[LOP_MAX_PARAMS], *grad[LOP_MAX_PARAMS];
    unsigned char *mask;
} fresh;

static int build_fresh(const lop_node *n, const plan *p, fresh *f)
{
    if (n->mask && p->out) {
        int len = lop_count_kept(p->out, p->out_len), j = 0;
        if (!(f->mask = lop_malloc((size_t)len)))
            return LOP_ENOMEM;
        for (int i = 0; i < p->out_len; i++)
            if (p->out[i])
                f->mask[j++] = n->mask[i];
    }
    int groups = p->in && n->kind == LOP_CONV2D ? n->attr.groups : 1;
    for (int k = 0; k < n->nparams; k++) {
        /* every per-channel parameter spans the output axis; weights also the input */
        f->param[k] = slice(n->param[k], p->out, n->param[k]->ndim > 1 ? p->in : NULL,
                            n->param[k]->ndim > 1 ? groups : 1);
        if (!f->param[k])
            return LOP_ENOMEM;
        if (n->grad[k]) {
            f->grad[k] = lop_tensor_new(f->param[k]->ndim, f->param[k]->shape);
            if (!f->grad[k])
                return LOP_ENOMEM;
        }
    }
    return LOP_OK;
}

static int check_keep(const lop_graph *g, int node, const lop_group *grp, const int *keep,
                      int nkeep)
{
    const char *name = g->nodes[node]->name;
    if (!grp->prunable)
        return lop_fail(LOP_EINVAL, "prune: the channels of '%s' cannot be pruned: %s", name,
                        grp->why);
    if (!keep || nkeep < 1)
        return lop_fail(LOP_EINVAL, "prune: keep at least one of the %d channels of '%s'",
                        grp->channels, name);
    if (nkeep > grp->channels)
        return lop_fail(LOP_EINVAL, "prune: %d channels to keep, but '%s' has %d", nkeep, name,
                        grp->channels);
    for (int i = 0; i < nkeep; i++) {
        if (keep[i] < 0 || keep[i] >= grp->channels)
            return lop_fail(LOP_EINVAL, "prune: channel %d is outside 0..%d of '%s'", keep[i],
                            grp->channels - 1, name);
        if (i > 0 && keep[i] <= keep[i - 1])
            return lop_fail(LOP_EINVAL, "prune: keep list must be strictly increasing "
                            "(%d after %d)", keep[i], keep[i - 1]);
    }
    return LOP_OK;
}

/* Shapes follow the new parameters: set the attributes that carry channel counts,
 * then re-infer every node in order.  Restores everything on failure. */
static int reshape(lop_graph *g, const plan *plans)
{
    lop_attrs *old_attrs = lop_malloc((size_t)g->n * sizeof *old_attrs);
    int (*old_dims)[4] = lop_malloc((size_t)g->n * sizeof *old_dims);
    int st = (!old_attrs || !old_dims) ? LOP_ENOMEM : LOP_OK;
    for (int i = 0; i < g->n && st == LOP_OK; i++) {
        lop_node *n = g->nodes[i];
        old_attrs[i] = n->attr;
        old_dims[i][0] = n->ndim;
        memcpy(&old_dims[i][1], n->dims, sizeof n->dims);
        if (plans[i].out && (n->kind == LOP_CONV2D || n->kind == LOP_LINEAR ||
                              n->kind == LOP_PICK)) {
            int c = lop_count_kept(plans[i].out, plans[i].out_len);
            if (lop_conv_depthwise(g, n))
                n->attr.groups = c;   /* depthwise stays depthwise; a grouped conv keeps
                                         its groups, each as much smaller */
            n->attr.out_channels = c;
        }
    }
    for (int i = 1; i < g->n && st == LOP_OK; i++)
        st = lop_layer_ops_of(g->nodes[i]->kind)->infer(g, g->nodes[i]);
    if (st != LOP_OK && old_attrs && old_dims)
        for (int i = 0; i < g->n; i++) {
            g->nodes[i]->attr = old_attrs[i];
            g->nodes[i]->ndim = old_dims[i][0];
            memcpy(g->nodes[i]->dims, &old_dims[i][1], sizeof g->nodes[i]->dims);
        }
    lop_free(old_attrs);
    lop_free(old_dims);
    return st;
}

int lop_graph_prune(lop_graph *g, int node, const int *keep, int nkeep)
{
    lop_graph_freeze(g, 0);   /* replaces parameters in place */
    if (node < 0 || node >= g->n)
        return lop_fail(LOP_EINVAL, "prune: node %d is not in 0..%d", node, g->n - 1);
    lop_groups gs = {0};
    int st = lop_graph_groups(g, &gs);
    if (st != LOP_OK)
        return st;
    int gi = lop_groups_find(&gs, node);
    plan *plans = NULL;
    fresh *made = NULL;
    unsigned char *kept = NULL;
    if (gi < 0) {
        st = lop_fail(LOP_EINVAL, "prune: '%s' does not carry a single channel group",
                      g->nodes[node]->name);
        goto done;
    }
    const lop_group *grp = &gs.groups[gi];
    if ((st = check_keep(g, node, grp, keep, nkeep)) != LOP_OK)
        goto done;
    plans = lop_calloc((size_t)g->n, sizeof *plans);
    made = lop_calloc((size_t)g->n, sizeof *made);
    kept = lop_calloc((size_t)grp->channels, 1);
    if (!plans || !made || !kept) {
        st = LOP_ENOMEM;
        goto done;
    }
    for (int i = 0; i < nkeep; i++)
        kept[keep[i]] = 1;
    if ((st = lop_group_check_slices(g, grp, kept, node, "prune")) != LOP_OK)
        goto done;
    for (int k = 0; k < grp->nmembers && st == LOP_OK; k++)
        st = plan_member(g, &plans[grp->members[k].node], &grp->members[k], kept,
                         grp->channels);
    for (int i = 0; i < g->n && st == LOP_OK; i++)
        if (plans[i].out || plans[i].in)
            st = build_fresh(g->nodes[i], &plans[i], &made[i]);
    if (st == LOP_OK)
        st = reshape(g, plans);
    if (st != LOP_OK)
        goto done;
    /* commit: nothing below can fail */
    for (int i = 0; i < g->n; i++) {
        if (!plans[i].out && !plans[i].in)
            continue;
        lop_node *n = g->nodes[i];
        for (int k = 0; k < n->nparams; k++) {
            lop_tensor_release(n->param[k]);
            lop_tensor_release(n->grad[k]);
            lop_tensor_release(n->velocity[k]);
            n->param[k] = made[i].param[k];
            n->grad[k] = made[i].grad[k];
            n->velocity[k] = NULL;
            made[i].param[k] = made[i].grad[k] = NULL;
        }
        if (made[i].mask) {
            lop_free(n->mask);
            n->mask = made[i].mask;
            made[i].mask = NULL;
        }
    }
    g->generation++;
    g->trained_forward = 0;
done:
    if (made)
        for (int i = 0; i < g->n; i++) {
            for (int k = 0; k < LOP_MAX_PARAMS; k++) {
                lop_tensor_release(made[i].param[k]);
                lop_tensor_release(made[i].grad[k]);
            }
            lop_free(made[i].mask);
        }
    if (plans)
        for (int i = 0; i < g->n; i++) {
            lop_free(plans[i].out);
            lop_free(plans[i].in);
        }
    lop_free(plans);
    lop_free(made);
    lop_free(kept);
    lop_groups_free(&gs);
    return st;
}
