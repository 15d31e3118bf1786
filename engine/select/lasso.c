/*
 * lasso.c - He et al.'s channel selection (ICCV 2017, see SOLVERS.md): the LASSO
 *   min_b 1/2 b'Ab - r'b + lambda |b|_1
 * on the c x c Gram matrix A = Z'Z of per-channel contributions Z_j = X_j W_j' and
 * r = Z'Y, never on samples.  As in the paper's eq. 2 (||W_j||_F = 1), each channel's
 * contribution is first scaled to that of a unit-norm filter, so a channel is not
 * favoured just because its filter is large: with norms w_j the problem is solved on
 * A_ij / (w_i w_j) and r_j / w_j.  Coordinate descent (warm-started) runs at penalties
 * halved down from max |r| (where every b is 0) and then bisected until the requested
 * number of channels survives; exactly that many largest |b| are kept.  Whether the
 * descent met its tolerance is reported, not assumed.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

enum { LASSO_MAX_SWEEPS = 1000 };   /* per solve; a solve that needs more is reported */

static double soft(double x, double t)
{
    return x > t ? x - t : x < -t ? x + t : 0.0;
}

/* How far b is from the optimality conditions at lambda, given q = A b: |r_j - q_j|
 * must equal lambda (with b_j's sign) where b_j is nonzero, and be at most lambda where
 * it is zero.  The largest shortfall. */
static double kkt_gap(const double *r, const double *q, const double *b, int c, double lambda)
{
    double worst = 0;
    for (int j = 0; j < c; j++) {
        double g = r[j] - q[j];
        worst = fmax(worst, b[j] != 0 ? fabs(g - (b[j] > 0 ? lambda : -lambda))
                                      : fabs(g) - lambda);
    }
    return worst;
}

/* Coordinate descent from the current b (warm start); q = A b is kept up to date.
 * Returns the sweeps used, or -1 when LASSO_MAX_SWEEPS did not bring kkt_gap to tol
 * (the test exact_on_support's answer must pass too). */
static int lasso_cd(const double *A, const double *r, int c, double lambda, double tol,
                    double *b, double *q)
{
    for (int sweep = 1; sweep <= LASSO_MAX_SWEEPS; sweep++) {
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
        }
        if (kkt_gap(r, q, b, c, lambda) <= tol)
            return sweep;
    }
    return -1;
}

static int nonzeros(const double *b, int c)
{
    int n = 0;
    for (int j = 0; j < c; j++)
        n += b[j] != 0;
    return n;
}

/* Coordinate descent creeps along a valley of nearly collinear channels (VGG-16's fc7
 * seen through fc8's ten outputs) by a factor close to 1 per sweep.  When it stops at
 * its cap, its support S - the nonzero coefficients, signs s - is usually already
 * right, and there the LASSO's optimality conditions are linear: A_SS b_S = r_S -
 * lambda s.  Solve them; the result is the exact minimiser if every sign holds and it
 * meets all the conditions (kkt_gap, to coordinate descent's tolerance: a wrong support
 * or a system too singular to solve exactly does not).  Then b and q = A b take it and
 * 1 is returned; else they stay as they were and 0 is returned. */
static int exact_on_support(const double *A, const double *r, int c, double lambda,
                            double tol, double *b, double *q)
{
    int n = 0;
    int *S = lop_malloc((size_t)c * sizeof *S);
    double *ASS = lop_malloc((size_t)c * c * sizeof *ASS);
    double *rhs = lop_malloc((size_t)c * sizeof *rhs), *bS = lop_malloc((size_t)c * sizeof *bS);
    double *qn = lop_malloc((size_t)c * sizeof *qn);
    int exact = S && ASS && rhs && bS && qn;
    for (int j = 0; exact && j < c; j++)
        if (b[j] != 0)
            S[n++] = j;
    for (int i = 0; exact && i < n; i++) {
        for (int k = 0; k < n; k++)
            ASS[(size_t)i * n + k] = A[(size_t)S[i] * c + S[k]];
        rhs[i] = r[S[i]] - (b[S[i]] > 0 ? lambda : -lambda);
    }
    exact = exact && n > 0 && lop_solve_spd(ASS, n, rhs, 1, 0, bS) == LOP_OK;
    for (int i = 0; exact && i < n; i++)
        exact = (bS[i] > 0) == (b[S[i]] > 0) && bS[i] != 0;
    double *full = ASS;   /* A_SS is done with: bS placed among all c channels */
    if (exact) {
        memset(full, 0, (size_t)c * sizeof *full);
        for (int i = 0; i < n; i++)
            full[S[i]] = bS[i];
        for (int j = 0; j < c; j++) {
            double sum = 0;
            for (int i = 0; i < n; i++)
                sum += A[(size_t)j * c + S[i]] * bS[i];
            qn[j] = sum;
        }
        /* to coordinate descent's tolerance: the solve may have needed a ridge */
        exact = kkt_gap(r, qn, full, c, lambda) <= tol;
    }
    if (exact) {
        memcpy(b, full, (size_t)c * sizeof *b);
        memcpy(q, qn, (size_t)c * sizeof *q);
    }
    lop_free(S);
    lop_free(ASS);
    lop_free(rhs);
    lop_free(bS);
    lop_free(qn);
    return exact;
}

/* One solve at lambda, warm-started from b; counts its sweeps and whether it met the
 * tolerance (or, at the sweep cap, was made exact on its support) into info. */
static void solve_at(const double *A, const double *r, int c, double lambda, double tol,
                     double *b, double *q, lop_lasso_info *info)
{
    int sweeps = lasso_cd(A, r, c, lambda, tol, b, q);
    info->sweeps += sweeps < 0 ? LASSO_MAX_SWEEPS : sweeps;
    info->converged = info->converged && (sweeps >= 0 ||
                                           exact_on_support(A, r, c, lambda, tol, b, q));
}

/* Channel j's factor to a unit-norm filter: 1 / norm_j, 1 without norms, and 0 for a
 * zero filter (it contributes nothing, so the LASSO never prefers it). */
static double unit_scale(const double *norm, int j)
{
    return !norm ? 1 : norm[j] > 0 ? 1 / norm[j] : 0;
}

/* The normalised problem: An = D A D, rn = D r with D = diag(unit_scale). */
static void normalise(const double *A, const double *r, const double *norm, int c,
                      double *An, double *rn)
{
    for (int i = 0; i < c; i++) {
        double di = unit_scale(norm, i);
        rn[i] = r[i] * di;
        for (int j = 0; j < c; j++)
            An[(size_t)i * c + j] = A[(size_t)i * c + j] * di * unit_scale(norm, j);
    }
}

int lop_select_lasso(const double *A, const double *r, const double *norm, int c, int nkeep,
                     int *keep, double *beta, lop_lasso_info *info)
{
    int st = lop_check_keep(c, nkeep, "lasso");
    if (st != LOP_OK)
        return st;
    lop_lasso_info run = {.converged = 1};
    double *An = lop_malloc((size_t)c * c * sizeof *An), *rn = lop_malloc((size_t)c * sizeof *rn);
    double *b = lop_calloc((size_t)c, sizeof *b), *q = lop_calloc((size_t)c, sizeof *q);
    double *best = lop_malloc((size_t)c * sizeof *best), *magnitude = lop_malloc((size_t)c *
                                                                                 sizeof *magnitude);
    if (!An || !rn || !b || !q || !best || !magnitude) {
        st = LOP_ENOMEM;
        goto done;
    }
    normalise(A, r, norm, c, An, rn);
    double rmax = 0;
    for (int j = 0; j < c; j++)
        rmax = fmax(rmax, fabs(rn[j]));
    /* lambda >= max|r| zeroes everything: come down from there, halving, to the first
     * penalty that keeps enough channels, each solve warm-started from the sparser one
     * before it.  The dense end of the path, where coordinate descent is slowest on
     * correlated channels, is reached only when fewer channels never survive. */
    const double top = rmax > 0 ? rmax : 1;
    const double tol = 1e-8 * top;   /* on kkt_gap: relative to the largest |r| */
    double lo = 0, hi = top, lambda = top;
    for (;;) {
        lambda *= 0.5;
        solve_at(An, rn, c, lambda, tol, b, q, &run);
        if (nonzeros(b, c) >= nkeep || lambda < top * 1e-12) {
            lo = run.lambda = lambda;
            memcpy(best, b, (size_t)c * sizeof *b);
            break;
        }
        hi = lambda;
    }
    /* bisect between lo (>= nkeep survive) and hi (fewer) */
    for (int it = 0; it < 60 && nonzeros(best, c) != nkeep; it++) {
        lambda = 0.5 * (lo + hi);
        memcpy(b, best, (size_t)c * sizeof *b);
        for (int i = 0; i < c; i++) {             /* q = A b for the warm start */
            double s = 0;
            for (int j = 0; j < c; j++)
                s += An[(size_t)i * c + j] * b[j];
            q[i] = s;
        }
        solve_at(An, rn, c, lambda, tol, b, q, &run);
        if (nonzeros(b, c) >= nkeep) {
            lo = run.lambda = lambda;
            memcpy(best, b, (size_t)c * sizeof *b);
        } else {
            hi = lambda;
        }
    }
    /* exactly nkeep: the largest |beta| of the last solution with enough survivors */
    for (int j = 0; j < c; j++)
        magnitude[j] = fabs(best[j]);
    st = lop_select_top(magnitude, c, nkeep, keep);
    if (st == LOP_OK && beta)
        memcpy(beta, best, (size_t)c * sizeof *best);
    if (st == LOP_OK && info)
        *info = run;
done:
    lop_free(An);
    lop_free(rn);
    lop_free(b);
    lop_free(q);
    lop_free(best);
    lop_free(magnitude);
    return st;
}
