/*
 * graph.c - the network as a list of named nodes in topological order: building it
 * (validation, shape inference, parameter creation), running it forward and backward
 * through the per-kind layer table, and answering questions about its nodes.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

lop_attrs lop_attrs_default(void)
{
    lop_attrs a;
    memset(&a, 0, sizeof a);
    a.stride_h = a.stride_w = 1;
    a.groups = 1;
    a.bias = 1;
    a.eps = 1e-5f;
    a.momentum = 0.1f;
    a.p = 0.5f;
    return a;
}

lop_attrs lop_attrs_input(int c, int h, int w)
{
    lop_attrs a = lop_attrs_default();
    a.in_ndim = (h == 0 && w == 0) ? 1 : 3;
    a.in_shape[0] = c;
    a.in_shape[1] = h;
    a.in_shape[2] = w;
    return a;
}

lop_graph *lop_graph_new(uint64_t seed)
{
    lop_graph *g = lop_calloc(1, sizeof *g);
    if (g)
        lop_rng_seed(&g->rng, seed);
    return g;
}

static void node_free(lop_node *n)
{
    if (!n)
        return;
    for (int k = 0; k < n->nparams; k++) {
        lop_tensor_release(n->param[k]);
        lop_tensor_release(n->grad[k]);
        lop_tensor_release(n->velocity[k]);
    }
    lop_tensor_release(n->out);
    lop_tensor_release(n->dout);
    for (int k = 0; k < LOP_MAX_SAVED; k++)
        lop_tensor_release(n->saved[k]);
    lop_tensor_release(n->prepared);
    lop_free(n->inputs);
    lop_free(n->mask);
    lop_free(n);
}

void lop_graph_free(lop_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++)
        node_free(g->nodes[i]);
    lop_free(g->nodes);
    lop_tensor_release(g->workspace);
    lop_tensor_release(g->affine);
    lop_tensor_release(g->slice_pool);
    lop_free(g);
}

static int valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= LOP_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-' || c == '/' || c == ':';
        if (!ok)
            return 0;
    }
    return 1;
}

static int infer_input(lop_node *n)
{
    const lop_attrs *a = &n->attr;
    if (a->in_ndim != 1 && a->in_ndim != 3)
        return lop_fail(LOP_ESHAPE, "input '%s': per-sample rank must be 1 or 3, not %d",
                        n->name, a->in_ndim);
    for (int i = 0; i < a->in_ndim; i++) {
        if (a->in_shape[i] <= 0)
            return lop_fail(LOP_ESHAPE, "input '%s': dimension %d is %d", n->name, i + 1,
                            a->in_shape[i]);
        n->dims[i] = a->in_shape[i];
    }
    n->ndim = a->in_ndim;
    return LOP_OK;
}

static int check_inputs(const lop_graph *g, lop_kind kind, const char *name,
                        const int *inputs, int ninputs)
{
    if (kind == LOP_INPUT) {
        if (ninputs != 0)
            return lop_fail(LOP_EINVAL, "input '%s' takes no inputs", name);
        if (g->n != 0)
            return lop_fail(LOP_EINVAL, "input '%s' must be the graph's first node", name);
        return LOP_OK;
    }
    if (g->n == 0)
        return lop_fail(LOP_EINVAL, "node '%s': the first node must be an input", name);
    int multi = kind == LOP_ADD || kind == LOP_CONCAT;
    if (multi ? ninputs < 2 : ninputs != 1)
        return lop_fail(LOP_EINVAL, "%s '%s' takes %s, got %d", lop_kind_name(kind), name,
                        multi ? "at least 2 inputs" : "exactly 1 input", ninputs);
    if (!inputs)
        return lop_fail(LOP_EINVAL, "node '%s': inputs missing", name);
    for (int k = 0; k < ninputs; k++)
        if (inputs[k] < 0 || inputs[k] >= g->n)
            return lop_fail(LOP_EINVAL, "node '%s': input %d refers to node %d, not in 0..%d",
                            name, k + 1, inputs[k], g->n - 1);
    return LOP_OK;
}

int lop_graph_add(lop_graph *g, lop_kind kind, const char *name, const int *inputs,
                  int ninputs, const lop_attrs *attrs, int *id)
{
    if ((unsigned)kind >= LOP_KIND_COUNT)
        return lop_fail(LOP_EINVAL, "unknown layer kind %d", (int)kind);
    if (!name || !valid_name(name))
        return lop_fail(LOP_EINVAL, "invalid node name '%s' (1..%d characters of "
                        "A-Z a-z 0-9 _ . - / :)", name ? name : "(null)", LOP_NAME_MAX - 1);
    if (lop_graph_find(g, name) >= 0)
        return lop_fail(LOP_EINVAL, "a node named '%s' already exists", name);
    int st = check_inputs(g, kind, name, inputs, ninputs);
    if (st != LOP_OK)
        return st;

    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 16;
        lop_node **nodes = lop_realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return LOP_ENOMEM;
        g->nodes = nodes;
        g->cap = cap;
    }
    lop_node *n = lop_calloc(1, sizeof *n);
    if (!n)
        return LOP_ENOMEM;
    n->kind = kind;
    strcpy(n->name, name);
    n->attr = attrs ? *attrs : lop_attrs_default();
    n->ninputs = ninputs;
    n->inputs = lop_malloc((size_t)(ninputs > 0 ? ninputs : 1) * sizeof(int));
    if (!n->inputs) {
        node_free(n);
        return LOP_ENOMEM;
    }
    for (int k = 0; k < ninputs; k++)
        n->inputs[k] = inputs[k];

    const lop_layer_ops *ops = lop_layer_ops_of(kind);
    if (kind == LOP_INPUT)
        st = infer_input(n);
    else
        st = ops->infer(g, n);
    /* Initialise from a copy of the rng so a failed add leaves the graph unchanged. */
    lop_rng rng = g->rng;
    if (st == LOP_OK && ops && ops->init)
        st = ops->init(g, n, &rng);
    if (st != LOP_OK) {
        node_free(n);
        return st;
    }
    g->rng = rng;
    g->nodes[g->n] = n;
    if (id)
        *id = g->n;
    g->n++;
    return LOP_OK;
}

int lop_graph_copy_node(const lop_node *n, const int *inputs, lop_graph *c)
{
    int st = lop_graph_add(c, n->kind, n->name, inputs, n->ninputs, &n->attr, NULL);
    if (st != LOP_OK)
        return st;
    lop_node *m = c->nodes[c->n - 1];
    for (int k = 0; k < n->nparams; k++)
        memcpy(m->param[k]->data, n->param[k]->data, n->param[k]->numel * sizeof(float));
    if (n->mask) {
        size_t len = (size_t)n->param[0]->shape[0];
        if (!(m->mask = lop_malloc(len)))
            return LOP_ENOMEM;
        memcpy(m->mask, n->mask, len);
    }
    return LOP_OK;
}

int lop_graph_prefix(const lop_graph *g, int upto, lop_graph **out)
{
    *out = NULL;
    lop_graph *c = lop_graph_new(0);
    if (!c)
        return LOP_ENOMEM;
    c->rng = g->rng;
    for (int i = 0; i < upto; i++) {
        int st = lop_graph_copy_node(g->nodes[i], g->nodes[i]->inputs, c);
        if (st != LOP_OK) {
            lop_graph_free(c);
            return st;
        }
    }
    *out = c;
    return LOP_OK;
}

void lop_graph_swap_in(lop_graph *g, lop_graph *fresh)
{
    uint64_t generation = g->generation;
    lop_graph old = *g;
    *g = *fresh;
    *fresh = old;
    g->generation = generation + 1;
    g->trained_forward = 0;
    g->frozen = 0;   /* the fresh nodes hold nothing prepared */
    lop_graph_free(fresh);
}

lop_graph *lop_graph_clone(const lop_graph *g)
{
    lop_graph *c;
    return lop_graph_prefix(g, g->n, &c) == LOP_OK ? c : NULL;
}

int lop_graph_size(const lop_graph *g)
{
    return g->n;
}

int lop_graph_find(const lop_graph *g, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->nodes[i]->name, name) == 0)
            return i;
    return -1;
}

void lop_graph_freeze(lop_graph *g, int frozen)
{
    if (frozen) {
        g->frozen = 1;
        return;
    }
    g->frozen = 0;
    for (int i = 0; i < g->n; i++) {
        lop_tensor_release(g->nodes[i]->prepared);
        g->nodes[i]->prepared = NULL;
    }
}

int lop_graph_frozen(const lop_graph *g)
{
    return g->frozen;
}

uint64_t lop_graph_generation(const lop_graph *g)
{
    return g->generation;
}

const char *lop_node_name(const lop_graph *g, int id) { return g->nodes[id]->name; }
lop_kind lop_node_kind(const lop_graph *g, int id) { return g->nodes[id]->kind; }
const lop_attrs *lop_node_attrs(const lop_graph *g, int id) { return &g->nodes[id]->attr; }
int lop_node_ninputs(const lop_graph *g, int id) { return g->nodes[id]->ninputs; }
int lop_node_input(const lop_graph *g, int id, int k) { return g->nodes[id]->inputs[k]; }
int lop_node_nparams(const lop_graph *g, int id) { return g->nodes[id]->nparams; }
lop_tensor *lop_node_output(const lop_graph *g, int id) { return g->nodes[id]->out; }

int lop_node_shape(const lop_graph *g, int id, int *shape)
{
    const lop_node *n = g->nodes[id];
    for (int i = 0; i < n->ndim; i++)
        shape[i] = n->dims[i];
    return n->ndim;
}

const char *lop_node_param_name(const lop_graph *g, int id, int k)
{
    return g->nodes[id]->param_name[k];
}

lop_tensor *lop_node_param(const lop_graph *g, int id, int k)
{
    return g->nodes[id]->param[k];
}

lop_tensor *lop_node_grad(const lop_graph *g, int id, int k)
{
    return g->nodes[id]->grad[k];
}

int lop_node_find_param(const lop_graph *g, int id, const char *name)
{
    const lop_node *n = g->nodes[id];
    for (int k = 0; k < n->nparams; k++)
        if (strcmp(n->param_name[k], name) == 0)
            return k;
    return -1;
}

size_t lop_node_params(const lop_graph *g, int id)
{
    const lop_node *n = g->nodes[id];
    size_t total = 0;
    for (int k = 0; k < n->nparams; k++)
        total += n->param[k]->numel;
    return total;
}

double lop_node_flops(const lop_graph *g, int id)
{
    const lop_layer_ops *ops = lop_layer_ops_of(g->nodes[id]->kind);
    return ops && ops->flops ? ops->flops(g, g->nodes[id]) : 0.0;
}

size_t lop_graph_params(const lop_graph *g)
{
    size_t total = 0;
    for (int i = 0; i < g->n; i++)
        total += lop_node_params(g, i);
    return total;
}

double lop_graph_flops(const lop_graph *g)
{
    double total = 0;
    for (int i = 0; i < g->n; i++)
        total += lop_node_flops(g, i);
    return total;
}

int lop_node_ensure_out(lop_node *n, int batch)
{
    int shape[LOP_MAX_DIMS];
    shape[0] = batch;
    for (int i = 0; i < n->ndim; i++)
        shape[i + 1] = n->dims[i];
    return lop_tensor_ensure(&n->out, n->ndim + 1, shape);
}

/* One node's forward: alone, or heading the chain fused[i] ends (fused may be NULL). */
static int forward_node(lop_graph *g, int i, int train, const int *fused)
{
    lop_node *n = g->nodes[i];
    if (!fused || fused[i] == LOP_FUSED_SELF)
        return lop_layer_ops_of(n->kind)->forward(g, n, train);
    lop_epilogue e;
    int st = lop_fusion_epilogue(g, i, fused[i], lop_node_batch(n), &e);
    if (st != LOP_OK)
        return st;
    n->epilogue = &e;
    st = lop_layer_ops_of(n->kind)->forward(g, n, train);
    n->epilogue = NULL;
    return st;
}

/* Node i's output during slice [b0, b0 + nb) (slices.c): its images' part of its
 * whole tensor, or of pool buffer place; NULL without memory.  A node a chain leaves
 * unwritten gets its part too: the chain's head takes its batch from its own output. */
static lop_tensor *slice_output(lop_graph *g, const lop_slices *s, lop_tensor *whole, int place,
                                int b0, int nb)
{
    int shape[LOP_MAX_DIMS];
    memcpy(shape, whole->shape, sizeof shape);
    shape[0] = nb;
    size_t per_image = whole->numel / (size_t)whole->shape[0];
    float *at = place < 0 ? whole->data + per_image * b0
                          : g->slice_pool->data + s->buffer_floats * place;
    return lop_tensor_borrow(at, whole->ndim, shape);
}

/* Nodes 0..s->end forward, a slice of at most s->images images at a time through all
 * of them, each node's output for the slice where s->place says (its whole tensor's
 * part, or a pool buffer the slices reuse).  node_seconds (may be NULL) sums over the
 * slices. */
static int forward_slices(lop_graph *g, const lop_tensor *x, const lop_slices *s, int batch,
                          const int *fused, double *node_seconds)
{
    int end = s->end, pool = (int)(s->buffers * s->buffer_floats);
    int st = s->buffers ? lop_tensor_ensure(&g->slice_pool, 1, &pool) : LOP_OK;
    lop_tensor **whole = st == LOP_OK ? lop_malloc(((size_t)end + 1) * sizeof *whole) : NULL;
    if (!whole)
        return st == LOP_OK ? LOP_ENOMEM : st;
    for (int i = 0; st == LOP_OK && i <= end; i++) {
        st = lop_node_ensure_out(g->nodes[i], batch);
        whole[i] = g->nodes[i]->out;
        if (node_seconds)
            node_seconds[i] = 0;
    }
    if (st == LOP_OK)
        memcpy(whole[0]->data, x->data, x->numel * sizeof(float));
    int slices = (batch + s->images - 1) / s->images;
    for (int k = 0; st == LOP_OK && k < slices; k++) {
        /* sizes apart by at most one, so that every slice takes the same paths */
        int b0 = (int)((long)batch * k / slices), nb = (int)((long)batch * (k + 1) / slices) - b0;
        for (int i = 0; st == LOP_OK && i <= end; i++) {
            lop_tensor *out = slice_output(g, s, whole[i], s->place[i], b0, nb);
            if (out)
                g->nodes[i]->out = out;
            else
                st = LOP_ENOMEM;
        }
        for (int i = 1; st == LOP_OK && i <= end; i++) {
            if (fused[i] == LOP_FUSED_AWAY)   /* an earlier node wrote it */
                continue;
            double t0 = node_seconds ? lop_seconds() : 0;
            st = forward_node(g, i, 0, fused);
            if (node_seconds)
                node_seconds[i] += lop_seconds() - t0;
        }
        for (int i = 0; i <= end; i++)
            if (g->nodes[i]->out != whole[i]) {
                lop_tensor_release(g->nodes[i]->out);
                g->nodes[i]->out = whole[i];
            }
    }
    lop_free(whole);
    return st;
}

/* Nodes 0..last forward; the rest keep what an earlier pass left.  With fuse (a pass
 * of the whole graph), chains of nodes run fused (fusion.c: an evaluation pass's
 * chains, or a training pass's, which leave out the nodes keep marks - keep may be
 * NULL), and the outputs of the nodes before each chain's last are not written. */
static int forward_through(lop_graph *g, const lop_tensor *x, int train, int last,
                           int fuse, const unsigned char *keep, double *node_seconds)
{
    if (g->n < 2)
        return lop_fail(LOP_ESTATE, "the graph needs an input and at least one layer");
    lop_node *in = g->nodes[0];
    int ok = x && x->ndim == in->ndim + 1;
    for (int i = 0; ok && i < in->ndim; i++)
        ok = x->shape[i + 1] == in->dims[i];
    if (!ok) {
        char want[64];
        if (in->ndim == 3)
            snprintf(want, sizeof want, "%d, %d, %d", in->dims[0], in->dims[1], in->dims[2]);
        else
            snprintf(want, sizeof want, "%d", in->dims[0]);
        return lop_fail(LOP_ESHAPE, "forward: input must have shape [batch, %s]", want);
    }
    if (train)   /* training changes the weights */
        lop_graph_freeze(g, 0);
    int batch = x->shape[0];
    int *fused = NULL;
    if (fuse) {
        fused = lop_malloc((size_t)g->n * sizeof *fused);
        if (!fused || (train ? lop_fusion_train_plan(g, keep, fused)
                             : lop_fusion_plan(g, fused)) != LOP_OK) {
            lop_free(fused);
            return LOP_ENOMEM;
        }
    }
    g->trained_forward = 0;
    for (int i = 0; i <= last; i++) {   /* what the backward pass will find */
        int f = fused && train ? fused[i] : LOP_FUSED_SELF;
        g->nodes[i]->train_tail = f >= 0 ? f : 0;
        g->nodes[i]->train_skipped = f == LOP_FUSED_AWAY;
    }
    /* a whole evaluation pass runs its early nodes in slices of images (slices.c) */
    lop_slices s = {0};
    int st = fused && !train ? lop_slices_plan(g, last, batch, fused, &s) : LOP_OK;
    if (st == LOP_OK && s.end > 0)
        st = forward_slices(g, x, &s, batch, fused, node_seconds);
    lop_free(s.place);
    for (int i = s.end > 0 ? s.end + 1 : 0; st == LOP_OK && i <= last; i++) {
        lop_node *n = g->nodes[i];
        if ((st = lop_node_ensure_out(n, batch)) != LOP_OK)
            break;
        if (i == 0) {
            memcpy(n->out->data, x->data, x->numel * sizeof(float));
            continue;
        }
        if (fused && fused[i] == LOP_FUSED_AWAY) {   /* an earlier node wrote it */
            if (node_seconds)
                node_seconds[i] = 0;
            continue;
        }
        double t0 = node_seconds ? lop_seconds() : 0;
        st = forward_node(g, i, train, fused);
        if (node_seconds)
            node_seconds[i] = lop_seconds() - t0;
    }
    lop_free(fused);
    if (st != LOP_OK)
        return st;
    g->trained_forward = train && last == g->n - 1;
    return LOP_OK;
}

int lop_graph_forward_timed(lop_graph *g, const lop_tensor *x, int train, double *node_seconds)
{
    return forward_through(g, x, train, g->n - 1, 1, NULL, node_seconds);
}

int lop_graph_forward_keeping(lop_graph *g, const lop_tensor *x, int count, const int *nodes)
{
    if (count < 0 || (count > 0 && !nodes))
        return lop_fail(LOP_EINVAL, "forward: %d nodes to keep", count);
    for (int k = 0; k < count; k++)
        if (nodes[k] < 0 || nodes[k] >= g->n)
            return lop_fail(LOP_EINVAL, "forward: node %d to keep is not in the graph (%d "
                            "nodes)", nodes[k], g->n);
    unsigned char *keep = lop_calloc(g->n > 0 ? (size_t)g->n : 1, 1);
    if (!keep)
        return LOP_ENOMEM;
    for (int k = 0; k < count; k++)
        keep[nodes[k]] = 1;
    int st = forward_through(g, x, 1, g->n - 1, 1, keep, NULL);
    lop_free(keep);
    return st;
}

int lop_graph_forward_until(lop_graph *g, const lop_tensor *x, int last)
{
    if (last < 0 || last >= g->n)
        return lop_fail(LOP_EINVAL, "forward: node %d is not in the graph (%d nodes)", last,
                        g->n);
    return forward_through(g, x, 0, last, 0, NULL, NULL);
}

int lop_graph_forward(lop_graph *g, const lop_tensor *x, int train)
{
    return lop_graph_forward_timed(g, x, train, NULL);
}

lop_tensor *lop_graph_output(const lop_graph *g)
{
    return g->n ? g->nodes[g->n - 1]->out : NULL;
}

static void zero_unwritten(lop_node *n)
{
    if (!n->dout_written)
        memset(n->dout->data, 0, n->dout->numel * sizeof(float));
    n->dout_written = 1;
}

/* Add the extra gradients meant for node i (lop_graph_backward_adding) to its dout. */
static void add_extra(lop_node *n, int i, int count, const int *nodes,
                      lop_tensor *const *grads)
{
    for (int k = 0; k < count; k++)
        if (nodes[k] == i)
            for (size_t j = 0; j < n->dout->numel; j++)
                n->dout->data[j] += grads[k]->data[j];
}

static int backward_pass(lop_graph *g, const lop_tensor *dout, double *node_seconds,
                         int count, const int *nodes, lop_tensor *const *grads)
{
    if (!g->trained_forward)
        return lop_fail(LOP_ESTATE, "backward needs a training-mode forward pass first");
    lop_node *last = g->nodes[g->n - 1];
    if (!dout || !lop_tensor_same_shape(dout, last->out))
        return lop_fail(LOP_ESHAPE, "backward: the gradient must have the output's shape");
    for (int i = 0; i < g->n; i++) {
        lop_node *n = g->nodes[i];
        int st = lop_tensor_ensure(&n->dout, n->out->ndim, n->out->shape);
        if (st != LOP_OK)
            return st;
        n->dout_written = 0;
    }
    memcpy(last->dout->data, dout->data, dout->numel * sizeof(float));
    last->dout_written = 1;
    for (int i = g->n - 1; i > 0; i--) {
        lop_node *n = g->nodes[i];
        double t0 = node_seconds ? lop_seconds() : 0;
        if (!n->train_tail) {   /* a fused head's own gradient goes unused */
            zero_unwritten(n);   /* a node nothing reads has a zero gradient */
            add_extra(n, i, count, nodes, grads);
        }
        int st = n->train_skipped ? LOP_OK : lop_layer_ops_of(n->kind)->backward(g, n);
        if (st != LOP_OK)
            return st;
        if (node_seconds)
            node_seconds[i] = lop_seconds() - t0;
    }
    zero_unwritten(g->nodes[0]);
    return LOP_OK;
}

int lop_graph_backward_timed(lop_graph *g, const lop_tensor *dout, double *node_seconds)
{
    return backward_pass(g, dout, node_seconds, 0, NULL, NULL);
}

int lop_graph_backward_adding(lop_graph *g, const lop_tensor *dout, int count,
                              const int *nodes, lop_tensor *const *grads)
{
    for (int k = 0; g->trained_forward && k < count; k++) {   /* else backward_pass fails */
        if (nodes[k] < 1 || nodes[k] >= g->n ||
            !lop_tensor_same_shape(grads[k], g->nodes[nodes[k]]->out))
            return lop_fail(LOP_ESHAPE, "backward: extra gradient %d must have the shape of "
                            "the output of a node after the input", k);
        const lop_node *n = g->nodes[nodes[k]];
        if (n->train_tail)
            return lop_fail(LOP_ESTATE, "backward: extra gradient %d is for '%s', which the "
                            "training forward ran together with the %s after it, so it has "
                            "no gradient of its own: keep it (lop_graph_forward_keeping)",
                            k, n->name, lop_kind_name(g->nodes[n->train_tail]->kind));
    }
    return backward_pass(g, dout, NULL, count, nodes, grads);
}

int lop_graph_backward(lop_graph *g, const lop_tensor *dout)
{
    return lop_graph_backward_timed(g, dout, NULL);
}

void lop_graph_zero_grad(lop_graph *g)
{
    for (int i = 0; i < g->n; i++) {
        lop_node *n = g->nodes[i];
        for (int k = 0; k < n->nparams; k++)
            if (n->grad[k])
                memset(n->grad[k]->data, 0, n->grad[k]->numel * sizeof(float));
    }
}

lop_tensor *lop_graph_input_grad(const lop_graph *g)
{
    return g->n ? g->nodes[0]->dout : NULL;
}
