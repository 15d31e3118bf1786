/*
 * timing.c - measured latency of a graph's forward pass, per node and in total, as the
 * median of repeated runs on a random batch: what a pruning result is judged by next
 * to its FLOPs.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

double lop_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

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
    double *samples = lop_malloc((size_t)(reps + 1) * (size_t)(g->n + 1) * sizeof(double));
    double *column = lop_malloc((size_t)(reps + 1) * sizeof(double));
    int st = (!x || !samples || !column) ? LOP_ENOMEM : LOP_OK;
    if (st == LOP_OK) {
        lop_rng r;
        lop_rng_seed(&r, 7);
        for (size_t i = 0; i < x->numel; i++)
            x->data[i] = (float)lop_rng_normal(&r);
        /* One untimed pass sizes every buffer; then reps timed passes. */
        st = lop_graph_forward(g, x, 0);
    }
    for (int r = 0; r < reps && st == LOP_OK; r++) {
        double *row = samples + (size_t)r * (size_t)(g->n + 1);
        memset(row, 0, (size_t)(g->n + 1) * sizeof(double));
        st = lop_graph_forward_timed(g, x, 0, row);
        for (int i = 0; i < g->n; i++)
            row[g->n] += row[i];
    }
    if (st == LOP_OK) {
        for (int i = 0; i <= g->n; i++) {
            for (int r = 0; r < reps; r++)
                column[r] = samples[(size_t)r * (size_t)(g->n + 1) + (size_t)i];
            double ms = 1e3 * median(column, reps);
            if (i < g->n && node_ms)
                node_ms[i] = ms;
            else if (i == g->n && total_ms)
                *total_ms = ms;
        }
    }
    lop_tensor_release(x);
    lop_free(samples);
    lop_free(column);
    return st;
}
