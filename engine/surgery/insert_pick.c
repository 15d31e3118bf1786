/*
 * insert.c - surgery that adds a node in the middle of a network: a channel pick in
 * front of a convolution (He et al.'s "sampler" for residual blocks; see pick.c).  The
 * graph is rebuilt as a copy with the new node in place and swapped in, so a failure
 * at any step leaves it untouched.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

int lop_graph_insert_pick(lop_graph *g, int conv, int *pick)
{
    lop_graph_freeze(g, 0);
    if (conv < 1 || conv >= g->n || g->nodes[conv]->kind != LOP_CONV2D)
        return lop_fail(LOP_EINVAL, "insert_pick: node %d is not a conv2d", conv);
    const lop_node *c = g->nodes[conv];
    const lop_node *src = lop_input_node(g, c, 0);
    if (c->attr.groups != 1)
        return lop_fail(LOP_EINVAL, "insert_pick: '%s' is a grouped convolution", c->name);
    if (src->kind == LOP_PICK)
        return lop_fail(LOP_EINVAL, "insert_pick: '%s' already reads a pick ('%s')", c->name,
                        src->name);
    char name[LOP_NAME_MAX];
    if (snprintf(name, sizeof name, "%s_pick", c->name) >= (int)sizeof name)
        return lop_fail(LOP_EINVAL, "insert_pick: the name '%s_pick' is too long", c->name);
    if (lop_graph_find(g, name) >= 0)
        return lop_fail(LOP_EINVAL, "insert_pick: a node named '%s' already exists", name);

    lop_graph *fresh;
    int at = -1, st = lop_graph_prefix(g, conv, &fresh);
    if (st != LOP_OK)
        return st;
    lop_attrs a = lop_attrs_default();
    a.out_channels = src->dims[0];
    st = lop_graph_add(fresh, LOP_PICK, name, &c->inputs[0], 1, &a, &at);
    /* the rest, reading ids shifted past the pick; the conv reads the pick */
    int most = 1;
    for (int i = conv; i < g->n; i++)
        most = g->nodes[i]->ninputs > most ? g->nodes[i]->ninputs : most;
    int *in = lop_malloc((size_t)most * sizeof *in);
    if (!in && st == LOP_OK)
        st = LOP_ENOMEM;
    for (int i = conv; i < g->n && st == LOP_OK; i++) {
        const lop_node *n = g->nodes[i];
        for (int k = 0; k < n->ninputs; k++)
            in[k] = i == conv ? at : n->inputs[k] >= conv ? n->inputs[k] + 1 : n->inputs[k];
        st = lop_graph_copy_node(n, in, fresh);
    }
    lop_free(in);
    if (st != LOP_OK) {
        lop_graph_free(fresh);
        return st;
    }
    lop_graph_swap_in(g, fresh);
    if (pick)
        *pick = at;
    return LOP_OK;
}
