/*
 * timing.c - measured latency of a graph's forward pass, per node and in total, as the
 * fastest of repeated runs on a random batch: what a pruning result is judged by next
 * to its FLOPs.  The fastest pass, not the median: on a shared machine every slower
 * pass also times the other processes.  (On a loaded 2-core machine, VGG-16 against
 * three pruned models of equal widths, 3 trials each, gave batch-64 speed-ups of
 * 2.19-3.10x by medians and 2.60-2.76x by fastest passes.)
 */
#include <math.h>
#include <string.h>

#include "internal.h"

int lop_graph_time(lop_graph *g, int batch, int reps, double *node_ms, double *total_ms)
{
    if (batch < 1 || reps < 1)
        return lop_fail(LOP_EINVAL, "time: need batch >= 1 and reps >= 1 (got %d, %d)", batch,
                        reps);
    if (g->n < 2)
        return lop_fail(LOP_ESTATE, "the graph needs an input and at least one layer");
    const lop_node *in = g->nodes[0];
    int shape[LOP_MAX_DIMS] = {batch, in->dims[0], in->dims[1], in->dims[2]};
    lop_tensor *x = lop_tensor_new(in->ndim + 1, shape);
    /* row: one pass per node and (last) in total; fastest: the minimum of each so far */
    double *row = lop_malloc((size_t)(g->n + 1) * sizeof(double));
    double *fastest = lop_malloc((size_t)(g->n + 1) * sizeof(double));
    int st = (!x || !row || !fastest) ? LOP_ENOMEM : LOP_OK;
    if (st == LOP_OK) {
        lop_rng r;
        lop_rng_seed(&r, 7);
        for (size_t i = 0; i < x->numel; i++)
            x->data[i] = (float)lop_rng_normal(&r);
        for (int i = 0; i <= g->n; i++)
            fastest[i] = HUGE_VAL;
        /* One untimed pass sizes every buffer; then reps timed passes. */
        st = lop_graph_forward(g, x, 0);
    }
    for (int r = 0; r < reps && st == LOP_OK; r++) {
        memset(row, 0, (size_t)(g->n + 1) * sizeof(double));
        st = lop_graph_forward_timed(g, x, 0, row);
        for (int i = 0; i < g->n; i++)
            row[g->n] += row[i];
        for (int i = 0; i <= g->n; i++)
            fastest[i] = fmin(fastest[i], row[i]);
    }
    if (st == LOP_OK) {
        if (node_ms)
            for (int i = 0; i < g->n; i++)
                node_ms[i] = 1e3 * fastest[i];
        if (total_ms)
            *total_ms = 1e3 * fastest[g->n];
    }
    lop_tensor_release(x);
    lop_free(row);
    lop_free(fastest);
    return st;
}
