/*
 * thinet.c - ThiNet's channel selection (Luo et al., see SOLVERS.md): grow the removed
 * set greedily, each step taking the channel whose removal adds least to the next
 * layer's reconstruction error.  It works on the c x c Gram matrix of per-channel
 * contributions, never on samples: O(c^2) in all.  Run to the end, the removals give
 * a full ranking (lop_select_thinet_order), whose every prefix is ThiNet's keep list
 * for that count - what the per-count reconstruction errors of prefix_errors.c walk.
 */
#include "internal.h"

/* Remove `steps` channels greedily: removed[j] (zeroed by the caller) marks them, and
 * order (when not NULL) receives the t-th removal at order[c - 1 - t]. */
static int remove_greedily(const double *G, int c, int steps, char *removed, int *order)
{
    double *cross = lop_calloc((size_t)c, sizeof *cross);  /* sum over removed t of G[t][j] */
    if (!cross)
        return LOP_ENOMEM;
    /* removing j adds G[j][j] + 2 * sum_{t removed} G[t][j] to the error */
    for (int step = 0; step < steps; step++) {
        int best = -1;
        double best_cost = 0;
        for (int j = 0; j < c; j++) {
            if (removed[j])
                continue;
            double cost = G[(size_t)j * c + j] + 2 * cross[j];
            if (best < 0 || cost < best_cost) {
                best = j;
                best_cost = cost;
            }
        }
        removed[best] = 1;
        if (order)
            order[c - 1 - step] = best;
        for (int j = 0; j < c; j++)
            cross[j] += G[(size_t)best * c + j];
    }
    lop_free(cross);
    return LOP_OK;
}

int lop_select_thinet(const double *G, int c, int nkeep, int *keep)
{
    int st = lop_check_keep(c, nkeep, "thinet");
    if (st != LOP_OK)
        return st;
    char *removed = lop_calloc((size_t)c, 1);
    if (!removed)
        return LOP_ENOMEM;
    st = remove_greedily(G, c, c - nkeep, removed, NULL);
    if (st == LOP_OK)
        for (int j = 0, k = 0; j < c; j++)
            if (!removed[j])
                keep[k++] = j;
    lop_free(removed);
    return st;
}

int lop_select_thinet_order(const double *G, int c, int *order)
{
    if (c < 1)
        return lop_fail(LOP_EINVAL, "thinet_order: no channels to order");
    char *removed = lop_calloc((size_t)c, 1);
    if (!removed)
        return LOP_ENOMEM;
    int st = remove_greedily(G, c, c, removed, order);
    lop_free(removed);
    return st;
}
