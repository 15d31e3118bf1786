/*
 * prefix_errors.c - how a convolution's reconstruction error falls as it keeps more
 * of its input channels, for every count at once.  Choosing layer widths (issue 19)
 * weighs each layer's error at every candidate width, and c refits through
 * lop_reconstruct would cost c Cholesky factorisations.  With the normal equations
 * permuted into a selection order, every kept prefix is a leading block, and the
 * Cholesky factor of a leading block is the leading block of the whole factor L: one
 * factorisation gives every fit.  With W = L^-1 R and M = L^-1, the fit of the first
 * p rows is B_p = M_p' W_p, and its error on the samples is
 *     yy - ||W_p||^2 - lambda ||B_p||^2
 * (the second term is what the ridge lambda adds to the regularised objective, so the
 * error is that of the ridge fit on the plain Gram, as lop_reconstruct reports it).
 * B_p grows by one rank-kk update per channel: O(D^3 + D^2 n) in all.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "internal.h"

extern void dtrtri_(const char *uplo, const char *diag, const int *n, double *a,
                    const int *lda, int *info);

/* The normal equations of one refit permuted into order: G (dim x dim) and R
 * (dim x nrhs), row-major, the bias row (when lead) first. */
typedef struct normal_eqs {
    int dim, nrhs, lead, width;   /* width: rows per channel */
    double *G, *R;
} normal_eqs;

/* Fill G and R for mode: the patch rows of the channels in order (after a bias row
 * when lead) for the weights refit, one row per channel from A and r for the scale. */
static void fill(const lop_stats *s, const int *order, lop_recon mode, normal_eqs *sy)
{
    const int dim = sy->dim, lead = sy->lead, w = sy->width, nrhs = sy->nrhs, c = s->c;
    const double *gram = mode == LOP_RECON_SCALE ? s->A : s->P;
    const double *cross = mode == LOP_RECON_SCALE ? s->r : s->C;
    const size_t stride = (size_t)c * w;
    for (int a = 0; a < c; a++)
        for (int e = 0; e < w; e++) {
            const size_t i = (size_t)lead + (size_t)a * w + e, from = (size_t)order[a] * w + e;
            for (int b = 0; b < c; b++)
                memcpy(sy->G + i * dim + lead + (size_t)b * w,
                       gram + from * stride + (size_t)order[b] * w, (size_t)w * sizeof *sy->G);
            memcpy(sy->R + i * nrhs, cross + from * nrhs, (size_t)nrhs * sizeof *sy->R);
            if (lead)
                sy->G[i] = sy->G[i * dim] = s->xsum[from];
        }
    if (lead) {
        sy->G[0] = (double)s->m;
        memcpy(sy->R, s->ysum, (size_t)nrhs * sizeof *sy->R);
    }
}

/* The sum of squares of v[0..n) in eight interleaved partial sums (so that it
 * vectorises), added in a fixed order. */
static double sum_squares(const double *v, size_t n)
{
    double part[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            part[l] += v[i + l] * v[i + l];
    for (; i < n; i++)
        part[0] += v[i] * v[i];
    return ((part[0] + part[1]) + (part[2] + part[3])) +
           ((part[4] + part[5]) + (part[6] + part[7]));
}

/* Fill G and R, and factor G + lambda I = L L' in place (lop_factor_spd: row-major
 * lower, the upper triangle keeping G).  *lambda receives the ridge used. */
static int factor(const lop_stats *s, const int *order, lop_recon mode, normal_eqs *sy,
                  double ridge, double *lambda)
{
    fill(s, order, mode, sy);
    return lop_factor_spd(sy->G, sy->dim, ridge, lambda);
}

/* With G factored: the error of every prefix that ends a channel, relative to yy. */
static int prefix_residuals(normal_eqs *sy, double yy, double lambda, int c, double *rel_error)
{
    const int dim = sy->dim, nrhs = sy->nrhs;
    double *B = lop_calloc((size_t)dim * nrhs, sizeof *B);
    if (!B)
        return LOP_ENOMEM;
    double *L = sy->G, *W = sy->R;
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, dim, nrhs,
                1.0, L, dim, W, nrhs);
    int info = 0;
    dtrtri_("U", "N", &dim, L, &dim, &info);   /* L <- M = L^-1, still row-major lower */
    if (info != 0) {   /* cannot happen after a successful dpotrf */
        lop_free(B);
        return lop_fail(LOP_EINVAL, "errors: the Cholesky factor is singular");
    }
    for (int i = 0; i < dim; i++)   /* the upper triangle still holds G */
        for (int j = i + 1; j < dim; j++)
            L[(size_t)i * dim + j] = 0;
    double ww = 0;
    for (int a = -1, p = 0; a < c; a++) {
        int w = a < 0 ? sy->lead : sy->width, end = p + w;
        if (w == 0)
            continue;
        /* rows p..end of M and W add M[p:end, 0:end]' W[p:end] to B[0:end] */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, end, nrhs, w, 1.0,
                    L + (size_t)p * dim, dim, W + (size_t)p * nrhs, nrhs, 1.0, B, nrhs);
        ww += sum_squares(W + (size_t)p * nrhs, (size_t)w * nrhs);
        double bb = sum_squares(B, (size_t)end * nrhs);
        if (a >= 0) {
            double residual = yy - ww - lambda * bb;
            rel_error[a] = yy > 0 ? (residual > 0 ? residual : 0) / yy : 0;
        }
        p = end;
    }
    lop_free(B);
    return LOP_OK;
}

int lop_prefix_errors(const lop_stats *s, const int *order, lop_recon mode, int with_bias,
                      double ridge, double *rel_error)
{
    if (mode != LOP_RECON_WEIGHTS && mode != LOP_RECON_SCALE)
        return lop_fail(LOP_EINVAL, "errors: unknown refit mode %d", (int)mode);
    if (!s || s->c < 1 ||
        (mode == LOP_RECON_SCALE ? !s->A || !s->r : !s->P || !s->C || !s->xsum || !s->ysum))
        return lop_fail(LOP_EINVAL, "errors: no statistics");
    if (!(ridge >= 0) || !isfinite(ridge))
        return lop_fail(LOP_EINVAL, "errors: the ridge must be a number >= 0, not %g", ridge);
    const int c = s->c;
    char *seen = lop_calloc((size_t)c, 1);
    if (!seen)
        return LOP_ENOMEM;
    int st = LOP_OK;
    for (int i = 0; i < c && st == LOP_OK; i++) {
        if (order[i] < 0 || order[i] >= c)
            st = lop_fail(LOP_EINVAL, "errors: order[%d] = %d is not a channel in 0..%d", i,
                          order[i], c - 1);
        else if (seen[order[i]]++)
            st = lop_fail(LOP_EINVAL, "errors: channel %d is listed twice in the order",
                          order[i]);
    }
    lop_free(seen);
    if (st != LOP_OK)
        return st;

    normal_eqs sy = {.width = mode == LOP_RECON_SCALE ? 1 : s->kh * s->kw, .nrhs = 1};
    if (mode == LOP_RECON_WEIGHTS) {
        sy.lead = with_bias ? 1 : 0;
        sy.nrhs = s->n;
    }
    sy.dim = sy.lead + c * sy.width;
    sy.G = lop_malloc((size_t)sy.dim * sy.dim * sizeof *sy.G);
    sy.R = lop_malloc((size_t)sy.dim * sy.nrhs * sizeof *sy.R);
    st = (!sy.G || !sy.R) ? LOP_ENOMEM : LOP_OK;
    double lambda = 0;
    if (st == LOP_OK)
        st = factor(s, order, mode, &sy, ridge, &lambda);
    if (st == LOP_OK)
        st = prefix_residuals(&sy, s->yy, lambda, c, rel_error);
    lop_free(sy.G);
    lop_free(sy.R);
    return st;
}
