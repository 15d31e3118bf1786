/*
 * thinet.c - ThiNet's channel selection (Luo et al., see SOLVERS.md): grow the removed
 * set greedily, each step taking the channel whose removal adds least to the next
 * layer's reconstruction error.  It works on the c x c Gram matrix of per-channel
 * contributions, never on samples: O(c^2) in all.
 */
#include "internal.h"

int lop_select_thinet(const double *G, int c, int nkeep, int *keep)
{
    int st = lop_check_keep(c, nkeep, "thinet");
    if (st != LOP_OK)
        return st;
    double *cross = lop_calloc((size_t)c, sizeof *cross);  /* sum over removed t of G[t][j] */
    char *removed = lop_calloc((size_t)c, 1);
    if (!cross || !removed) {
        lop_free(cross);
        lop_free(removed);
        return LOP_ENOMEM;
    }
    /* removing j adds G[j][j] + 2 * sum_{t removed} G[t][j] to the error */
    for (int step = 0; step < c - nkeep; step++) {
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
        for (int j = 0; j < c; j++)
            cross[j] += G[(size_t)best * c + j];
    }
    for (int j = 0, k = 0; j < c; j++)
        if (!removed[j])
            keep[k++] = j;
    lop_free(cross);
    lop_free(removed);
    return LOP_OK;
}
