/*
 * lasso.c - He et al.'s channel selection (ICCV 2017, see SOLVERS.md): the LASSO
 *   min_b 1/2 b'Ab - r'b + lambda |b|_1
 * on the c x c Gram matrix A = Z'Z of per-channel contributions Z_j = X_j W_j' and
 * r = Z'Y, never on samples.  As in the paper's eq. 2 (||W_j||_F = 1), each channel's
 * contribution is first scaled to that of a unit-norm filter, so a channel is not
 * favoured just because its filter is large: with norms w_j the problem is solved on
 * A_ij / (w_i w_j) and r_j / w_j.  Coordinate descent (warm-started) runs at penalties
 * halved down from max |r| (where every b is 0) and then bisected until the requested
 * number of channels survives; exactly that many largest |b| are kept.  A solve that
 * coordinate descent does not finish within its sweep cap is finished exactly by
 * feature-sign search; whether every solve met the optimality conditions is reported,
 * not assumed.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* Per solve; feature_sign finishes a solve that needs more.  VGG-16's fc6-fc8 at keep
 * 0.25-0.75 pick the same channels with a cap of 100 as with 1000, 2-7x sooner. */
enum { LASSO_MAX_SWEEPS = 100 };

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
 * (feature_sign then finishes the solve). */
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

/* Work space of feature_sign: an active set S of n channels with signs, the system on
 * it and its solution, the current b with q = A b, and a step d with A d. */
typedef struct {
    int *S;
    double *sign, *ASS, *rhs, *bS, *bx, *qx, *dir, *Ad;
} fs_work;

static int fs_work_get(fs_work *w, int c)
{
    w->S = lop_malloc((size_t)c * sizeof *w->S);
    w->ASS = lop_malloc((size_t)c * c * sizeof *w->ASS);
    double **vec[] = {&w->sign, &w->rhs, &w->bS, &w->bx, &w->qx, &w->dir, &w->Ad};
    int ok = w->S && w->ASS;
    for (size_t i = 0; i < sizeof vec / sizeof *vec; i++)
        ok = (*vec[i] = lop_malloc((size_t)c * sizeof(double))) && ok;
    return ok;
}

static void fs_work_free(fs_work *w)
{
    lop_free(w->S);
    double *all[] = {w->ASS, w->sign, w->rhs, w->bS, w->bx, w->qx, w->dir, w->Ad};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        lop_free(all[i]);
}

/* q = A b for a b that is zero outside the n channels S. */
static void product_on(const double *A, int c, const int *S, int n, const double *b, double *q)
{
    for (int j = 0; j < c; j++) {
        double sum = 0;
        for (int i = 0; i < n; i++)
            sum += A[(size_t)j * c + S[i]] * b[S[i]];
        q[j] = sum;
    }
}

/* One feature-sign step from w->bx: solve A_SS b_S = r_S - lambda s on the active set,
 * then move along d = b_S - w->bx to the point of lowest objective among t = 1 and the
 * points where a coefficient crosses zero on the way (the objective is quadratic
 * between them).  Along the line the objective changes by t d'(q - r) + t^2 d'Ad / 2 +
 * lambda (|b + t d|_1 - |b|_1), so each candidate costs O(n) once Ad is known.  Returns
 * 1 when the objective went down, 0 when the system did not solve or nothing was
 * gained. */
static int fs_step(const double *A, const double *r, int c, double lambda, int n, fs_work *w)
{
    const int *S = w->S;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++)
            w->ASS[(size_t)i * n + k] = A[(size_t)S[i] * c + S[k]];
        w->rhs[i] = r[S[i]] - lambda * w->sign[i];
    }
    if (lop_solve_spd(w->ASS, n, w->rhs, 1, 0, w->bS) != LOP_OK)
        return 0;
    double *d = w->dir, slope = 0, curve = 0, l1 = 0;
    memset(d, 0, (size_t)c * sizeof *d);
    for (int i = 0; i < n; i++)
        d[S[i]] = w->bS[i] - w->bx[S[i]];
    product_on(A, c, S, n, d, w->Ad);
    for (int i = 0; i < n; i++) {
        int j = S[i];
        slope += d[j] * (w->qx[j] - r[j]);
        curve += d[j] * w->Ad[j];
        l1 += fabs(w->bx[j]);
    }
    double best = 0, best_t = 0;
    int best_hit = -1;   /* the coefficient that crosses zero at the best point */
    for (int pass = 0; pass <= n; pass++) {   /* t = 1, then every zero crossing */
        double t = 1;
        int hit = -1;
        if (pass > 0) {
            double from = w->bx[S[pass - 1]], to = w->bS[pass - 1];
            if (!(from > 0 && to < 0) && !(from < 0 && to > 0))
                continue;
            t = from / (from - to);
            hit = pass - 1;
        }
        double l1t = 0;
        for (int i = 0; i < n; i++)
            l1t += i == hit ? 0 : fabs(w->bx[S[i]] + t * d[S[i]]);
        double change = t * slope + 0.5 * t * t * curve + lambda * (l1t - l1);
        if (change < best) {
            best = change;
            best_t = t;
            best_hit = hit;
        }
    }
    if (!(best < 0))
        return 0;
    for (int i = 0; i < n; i++)
        w->bx[S[i]] += best_t * d[S[i]];
    if (best_hit >= 0)
        w->bx[S[best_hit]] = 0;
    product_on(A, c, S, n, w->bx, w->qx);
    return 1;
}

/* Coordinate descent creeps along a valley of nearly collinear channels (VGG-16's fc7
 * seen through fc8's ten outputs) by a factor close to 1 per sweep.  Where it stops at
 * its cap, feature-sign search (Lee, Battle, Raina and Ng, NIPS 2006) finishes the
 * solve exactly: on an active set S with signs s the optimality conditions are linear,
 * A_SS b_S = r_S - lambda s; each step solves them and moves towards the solution, to
 * the lowest objective on the way (a coefficient that crosses zero leaves S), and when
 * S is solved a zero coefficient that breaks its condition, the worst, enters S with
 * the sign of its gradient.  The objective falls at every step, so no active set comes
 * back and the search ends.  It starts from coordinate descent's b, whose support is
 * usually right or nearly so: one to a few steps.  The answer is taken when it meets
 * all the conditions (kkt_gap, to coordinate descent's tolerance): then b and q = A b
 * take it and 1 is returned.  A step that gains nothing - a system too singular to
 * solve, an objective with no minimum - leaves them as they were, and 0 is returned. */
static int feature_sign(const double *A, const double *r, int c, double lambda, double tol,
                        double *b, double *q)
{
    fs_work w;
    int done = 0;
    if (!fs_work_get(&w, c)) {
        fs_work_free(&w);
        return 0;
    }
    memcpy(w.bx, b, (size_t)c * sizeof *b);
    memcpy(w.qx, q, (size_t)c * sizeof *q);
    for (int step = 0; step < 4 * c + 16; step++) {
        if (kkt_gap(r, w.qx, w.bx, c, lambda) <= tol) {
            done = 1;
            break;
        }
        int n = 0, enter = -1;
        double held = 0, worst = lambda + tol;
        for (int j = 0; j < c; j++) {
            double g = r[j] - w.qx[j];
            if (w.bx[j] != 0) {
                w.S[n] = j;
                w.sign[n++] = w.bx[j] > 0 ? 1 : -1;
                held = fmax(held, fabs(g - (w.bx[j] > 0 ? lambda : -lambda)));
            } else if (fabs(g) > worst) {
                worst = fabs(g);
                enter = j;
            }
        }
        if (held <= tol) {   /* S is solved: the worst zero coefficient enters */
            if (enter < 0)
                break;
            w.S[n] = enter;
            w.sign[n++] = r[enter] - w.qx[enter] > 0 ? 1 : -1;
        }
        if (!fs_step(A, r, c, lambda, n, &w))
            break;
    }
    if (done) {
        memcpy(b, w.bx, (size_t)c * sizeof *b);
        memcpy(q, w.qx, (size_t)c * sizeof *q);
    }
    fs_work_free(&w);
    return done;
}

/* One solve at lambda, warm-started from b; counts its sweeps and whether it met the
 * tolerance (or, at the sweep cap, was finished by feature-sign search) into info. */
static void solve_at(const double *A, const double *r, int c, double lambda, double tol,
                     double *b, double *q, lop_lasso_info *info)
{
    int sweeps = lasso_cd(A, r, c, lambda, tol, b, q);
    info->sweeps += sweeps < 0 ? LASSO_MAX_SWEEPS : sweeps;
    info->converged = info->converged && (sweeps >= 0 ||
                                           feature_sign(A, r, c, lambda, tol, b, q));
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
