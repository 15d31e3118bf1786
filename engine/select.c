/*
 * select.c - channel selection from sufficient statistics (see SOLVERS.md).  Both
 * rules work on the c x c Gram matrix of per-channel contributions, never on samples:
 *  - ThiNet grows the removed set greedily, each step taking the channel whose
 *    removal adds least to the reconstruction error (O(c^2) in all);
 *  - LASSO (He et al.) solves min 1/2 b'Ab - r'b + lambda |b|_1 by coordinate descent,
 *    searching lambda (doubling, then bisection, warm-started) until the requested
 *    number of channels survives, and keeps exactly that many largest |b|.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int check_request(int c, int nkeep, const char *what)
{
    if (c < 1)
        return lop_fail(LOP_EINVAL, "%s: no channels to select from", what);
    if (nkeep < 1 || nkeep > c)
        return lop_fail(LOP_EINVAL, "%s: cannot keep %d of %d channels", what, nkeep, c);
    return LOP_OK;
}

int lop_select_thinet(const double *G, int c, int nkeep, int *keep)
{
    int st = check_request(c, nkeep, "thinet");
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

static double soft(double x, double t)
{
    return x > t ? x - t : x < -t ? x + t : 0.0;
}

/* Coordinate descent from the current b (warm start); q = A b is kept up to date. */
static void lasso_cd(const double *A, const double *r, int c, double lambda, double *b,
                     double *q)
{
    double scale = 0;
    for (int j = 0; j < c; j++)
        scale = fmax(scale, fabs(r[j]));
    for (int sweep = 0; sweep < 300; sweep++) {
        double biggest = 0;
        for (int j = 0; j < c; j++) {
            double ajj = A[(size_t)j * c + j];
            if (ajj <= 0)
                continue;
            double rho = r[j] - (q[j] - ajj * b[j]);
            double nb = soft(rho, lambda) / ajj, d = nb - b[j];
            if (d == 0)
                continue;
            for (int i = 0; i < c; i++)
                q[i] += A[(size_t)i * c + j] * d;
            b[j] = nb;
            biggest = fmax(biggest, fabs(d) * ajj);
        }
        if (biggest <= 1e-8 * (scale > 0 ? scale : 1))
            break;
    }
}

static int nonzeros(const double *b, int c)
{
    int n = 0;
    for (int j = 0; j < c; j++)
        n += b[j] != 0;
    return n;
}

typedef struct ranked { double magnitude; int channel; } ranked;

static int cmp_ranked(const void *x, const void *y)
{
    const ranked *a = x, *b = y;
    if (a->magnitude != b->magnitude)
        return (a->magnitude < b->magnitude) - (a->magnitude > b->magnitude);
    return (a->channel > b->channel) - (a->channel < b->channel);
}

static int cmp_int(const void *x, const void *y)
{
    return (*(const int *)x > *(const int *)y) - (*(const int *)x < *(const int *)y);
}

int lop_select_lasso(const double *A, const double *r, int c, int nkeep, int *keep,
                     double *beta)
{
    int st = check_request(c, nkeep, "lasso");
    if (st != LOP_OK)
        return st;
    double *b = lop_calloc((size_t)c, sizeof *b), *q = lop_calloc((size_t)c, sizeof *q);
    double *best = lop_malloc((size_t)c * sizeof *best);
    ranked *order = lop_malloc((size_t)c * sizeof *order);
    if (!b || !q || !best || !order) {
        st = LOP_ENOMEM;
        goto done;
    }
    double rmax = 0;
    for (int j = 0; j < c; j++)
        rmax = fmax(rmax, fabs(r[j]));
    /* lambda >= max|r| zeroes everything; start far below and double */
    double lo = 0, hi = rmax > 0 ? rmax : 1, lambda = hi * 1e-6;
    lasso_cd(A, r, c, 0, b, q);                 /* least squares: the densest solution */
    memcpy(best, b, (size_t)c * sizeof *b);
    while (lambda < hi) {
        lasso_cd(A, r, c, lambda, b, q);
        if (nonzeros(b, c) < nkeep) {
            hi = lambda;
            break;
        }
        lo = lambda;
        memcpy(best, b, (size_t)c * sizeof *b);
        lambda *= 2;
    }
    /* bisect between lo (>= nkeep survive) and hi (fewer) */
    for (int it = 0; it < 60 && nonzeros(best, c) != nkeep; it++) {
        lambda = 0.5 * (lo + hi);
        memcpy(b, best, (size_t)c * sizeof *b);
        for (int i = 0; i < c; i++) {             /* q = A b for the warm start */
            double s = 0;
            for (int j = 0; j < c; j++)
                s += A[(size_t)i * c + j] * b[j];
            q[i] = s;
        }
        lasso_cd(A, r, c, lambda, b, q);
        int nz = nonzeros(b, c);
        if (nz >= nkeep) {
            lo = lambda;
            memcpy(best, b, (size_t)c * sizeof *b);
        } else {
            hi = lambda;
        }
    }
    /* exactly nkeep: the largest |beta| of the last solution with enough survivors */
    for (int j = 0; j < c; j++)
        order[j] = (ranked){fabs(best[j]), j};
    qsort(order, (size_t)c, sizeof *order, cmp_ranked);
    for (int k = 0; k < nkeep; k++)
        keep[k] = order[k].channel;
    qsort(keep, (size_t)nkeep, sizeof *keep, cmp_int);
    if (beta)
        memcpy(beta, best, (size_t)c * sizeof *best);
done:
    lop_free(b);
    lop_free(q);
    lop_free(best);
    lop_free(order);
    return st;
}
