/*
 * timing.c - measured speed of a graph: the latency of its forward pass and the time
 * of a whole training step, per node and in total, as the fastest of repeated runs on
 * a random batch - what a pruning result is judged by next to its FLOPs, and what the
 * engine's speed is compared with PyTorch's by.  The fastest pass, not the median: on
 * a shared machine every slower pass also times the other processes.  (On a loaded
 * 2-core machine, VGG-16 against three pruned models of equal widths, 3 trials each,
 * gave batch-64 speed-ups of 2.19-3.10x by medians and 2.60-2.76x by fastest passes.)
 */
#include <math.h>
#include <string.h>

#include "internal.h"

static int check_args(const lop_graph *g, int batch, int reps)
{
    if (batch < 1 || reps < 1)
        return lop_fail(LOP_EINVAL, "time: need batch >= 1 and reps >= 1 (got %d, %d)", batch,
                        reps);
    if (g->n < 2)
        return lop_fail(LOP_ESTATE, "the graph needs an input and at least one layer");
    return LOP_OK;
}

/* A batch of standard normal values shaped like the output of node n (NULL on
 * allocation failure). */
static lop_tensor *random_batch(const lop_node *n, int batch, uint64_t seed)
{
    int shape[LOP_MAX_DIMS] = {batch};
    for (int i = 0; i < n->ndim; i++)
        shape[i + 1] = n->dims[i];
    lop_tensor *t = lop_tensor_new(n->ndim + 1, shape);
    if (!t)
        return NULL;
    lop_rng r;
    lop_rng_seed(&r, seed);
    for (size_t i = 0; i < t->numel; i++)
        t->data[i] = (float)lop_rng_normal(&r);
    return t;
}

/* Per-node and total times in `row` (g->n + 1 entries, the total last) folded into
 * the fastest so far. */
static void keep_fastest(int n, double *row, double *fastest)
{
    for (int i = 0; i <= n; i++)
        fastest[i] = fmin(fastest[i], row[i]);
}

static void report(int n, const double *fastest, double *node_ms, double *total_ms)
{
    if (node_ms)
        for (int i = 0; i < n; i++)
            node_ms[i] = 1e3 * fastest[i];
    if (total_ms)
        *total_ms = 1e3 * fastest[n];
}

int lop_graph_time(lop_graph *g, int batch, int reps, double *node_ms, double *total_ms)
{
    int st = check_args(g, batch, reps);
    if (st != LOP_OK)
        return st;
    lop_tensor *x = random_batch(g->nodes[0], batch, 7);
    /* row: one pass per node and (last) in total; fastest: the minimum of each so far */
    double *row = lop_malloc((size_t)(g->n + 1) * sizeof(double));
    double *fastest = lop_malloc((size_t)(g->n + 1) * sizeof(double));
    st = (!x || !row || !fastest) ? LOP_ENOMEM : LOP_OK;
    for (int i = 0; st == LOP_OK && i <= g->n; i++)
        fastest[i] = HUGE_VAL;
    /* One untimed pass sizes every buffer; then reps timed passes. */
    if (st == LOP_OK)
        st = lop_graph_forward(g, x, 0);
    for (int r = 0; r < reps && st == LOP_OK; r++) {
        memset(row, 0, (size_t)(g->n + 1) * sizeof(double));
        st = lop_graph_forward_timed(g, x, 0, row);
        for (int i = 0; i < g->n; i++)
            row[g->n] += row[i];
        keep_fastest(g->n, row, fastest);
    }
    if (st == LOP_OK)
        report(g->n, fastest, node_ms, total_ms);
    lop_tensor_release(x);
    lop_free(row);
    lop_free(fastest);
    return st;
}

/* The gradient one training step starts backward from: softmax cross-entropy's
 * against labels 0, 1, 2, ... for a classifier's logits [B, K], else a random one. */
static int output_grad(lop_graph *g, lop_tensor *dout)
{
    const lop_tensor *out = lop_graph_output(g);
    if (out->ndim != 2) {
        lop_rng r;
        lop_rng_seed(&r, 11);
        for (size_t i = 0; i < dout->numel; i++)
            dout->data[i] = (float)lop_rng_normal(&r) / (float)dout->numel;
        return LOP_OK;
    }
    int *labels = lop_malloc((size_t)out->shape[0] * sizeof *labels);
    if (!labels)
        return LOP_ENOMEM;
    for (int b = 0; b < out->shape[0]; b++)
        labels[b] = b % out->shape[1];
    double loss;
    int st = lop_softmax_xent(out, labels, &loss, dout, NULL);
    lop_free(labels);
    return st;
}

/* One timed training step of t: forward, loss gradient, backward, SGD update. */
static int train_step(lop_graph *t, const lop_tensor *x, lop_tensor **dout, double *fwd,
                      double *bwd, double *total)
{
    static const lop_sgd sgd = {0.01f, 0.9f, 5e-4f, 1};
    double t0 = lop_seconds();
    int st = lop_graph_forward_timed(t, x, 1, fwd);
    const lop_tensor *out = lop_graph_output(t);
    if (st == LOP_OK && !*dout) {
        *dout = lop_tensor_new(out->ndim, out->shape);
        st = *dout ? LOP_OK : LOP_ENOMEM;
    }
    if (st == LOP_OK)
        st = output_grad(t, *dout);
    if (st == LOP_OK) {
        lop_graph_zero_grad(t);
        st = lop_graph_backward_timed(t, *dout, bwd);
    }
    if (st == LOP_OK)
        st = lop_sgd_step(t, &sgd);
    *total = lop_seconds() - t0;
    return st;
}

int lop_graph_time_train(const lop_graph *g, int batch, int reps, double *fwd_ms,
                         double *bwd_ms, double *total_ms)
{
    int st = check_args(g, batch, reps);
    if (st != LOP_OK)
        return st;
    /* A clone takes the steps, so that g's weights and statistics stay as they are. */
    lop_graph *t = lop_graph_clone(g);
    lop_tensor *x = random_batch(g->nodes[0], batch, 7), *dout = NULL;
    size_t n1 = (size_t)g->n + 1;
    double *fwd = lop_malloc(n1 * sizeof(double)), *bwd = lop_malloc(n1 * sizeof(double));
    double *fast_fwd = lop_malloc(n1 * sizeof(double));
    double *fast_bwd = lop_malloc(n1 * sizeof(double));
    st = (!t || !x || !fwd || !bwd || !fast_fwd || !fast_bwd) ? LOP_ENOMEM : LOP_OK;
    for (size_t i = 0; st == LOP_OK && i < n1; i++)
        fast_fwd[i] = fast_bwd[i] = HUGE_VAL;
    double step = HUGE_VAL, total;
    /* One untimed step sizes every buffer and the velocities; then reps timed ones. */
    for (int r = 0; r <= reps && st == LOP_OK; r++) {
        memset(fwd, 0, n1 * sizeof(double));
        memset(bwd, 0, n1 * sizeof(double));
        st = train_step(t, x, &dout, fwd, bwd, &total);
        if (r == 0)
            continue;
        keep_fastest(g->n, fwd, fast_fwd);
        keep_fastest(g->n, bwd, fast_bwd);
        step = fmin(step, total);
    }
    if (st == LOP_OK) {
        report(g->n, fast_fwd, fwd_ms, NULL);
        report(g->n, fast_bwd, bwd_ms, NULL);
        if (total_ms)
            *total_ms = 1e3 * step;
    }
    lop_graph_free(t);
    lop_tensor_release(x);
    lop_tensor_release(dout);
    lop_free(fwd);
    lop_free(bwd);
    lop_free(fast_fwd);
    lop_free(fast_bwd);
    return st;
}
