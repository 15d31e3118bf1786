/*
 * node.c - what every layer implementation asks of the node it runs in: parameters
 * created on the node at init, and the graph's one scratch buffer shared by all
 * layers (grown on demand).  Kept here, below the graph, so the layers never call
 * back into graph.c, which calls them.
 */
#include "internal.h"

float *lop_graph_scratch(lop_graph *g, size_t count)
{
    if (g->workspace && g->workspace->storage && count <= g->workspace->numel)
        return g->workspace->data;
    int shape[1] = {(int)(count > 0 ? count : 1)};
    if (count > (size_t)0x7fffffff) {
        lop_fail(LOP_ENOMEM, "scratch request of %zu floats is too large", count);
        return NULL;
    }
    lop_tensor *w = lop_tensor_new(1, shape);
    if (!w)
        return NULL;
    lop_tensor_release(g->workspace);
    g->workspace = w;
    return w->data;
}

int lop_node_add_param(lop_node *n, const char *name, int ndim, const int *shape,
                       int trainable)
{
    if (n->nparams >= LOP_MAX_PARAMS)
        return lop_fail(LOP_EINVAL, "node '%s' has too many parameters", n->name);
    lop_tensor *p = lop_tensor_new(ndim, shape);
    lop_tensor *gr = trainable ? lop_tensor_new(ndim, shape) : NULL;
    if (!p || (trainable && !gr)) {
        lop_tensor_release(p);
        lop_tensor_release(gr);
        return LOP_ENOMEM;
    }
    int k = n->nparams++;
    n->param_name[k] = name;
    n->param[k] = p;
    n->grad[k] = gr;
    return LOP_OK;
}
