/*
 * test_select.c - the selection rules on planted problems: outputs built from a known
 * subset of channels (plus small noise) must lead ThiNet and LASSO back to exactly
 * that subset, LASSO must keep exactly the requested count whatever the scale of each
 * channel's filter, say when its solve did not converge, be optimal whenever it says
 * it did and match the minimiser found by trying every sign pattern, and ThiNet's
 * greedy pass on the Gram matrix must match the same greedy rule evaluated sample by
 * sample.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../engine/internal.h"
#include "gauss_jordan.h"

enum { M = 600, C = 16 };

static const int planted[8] = {1, 3, 4, 7, 8, 10, 13, 15};
static const double weights[8] = {2.0, 1.2, 1.7, 0.9, 1.5, 1.1, 1.9, 0.8};

/* Z: M samples x C channel contributions, standard normal. */
static double *random_z(uint64_t seed)
{
    double *z = malloc(sizeof(double) * M * C);
    lop_rng r;
    lop_rng_seed(&r, seed);
    for (int i = 0; i < M * C; i++)
        z[i] = lop_rng_normal(&r);
    return z;
}

static void gram(const double *z, const double *y, double *A, double *r)
{
    for (int i = 0; i < C; i++) {
        for (int j = 0; j < C; j++) {
            double s = 0;
            for (int k = 0; k < M; k++)
                s += z[k * C + i] * z[k * C + j];
            A[i * C + j] = s;
        }
        if (r) {
            double s = 0;
            for (int k = 0; k < M; k++)
                s += z[k * C + i] * y[k];
            r[i] = s;
        }
    }
}

static void test_lasso_recovers_planted_subset(void **state)
{
    (void)state;
    double *z = random_z(11), y[M], A[C * C], r[C], beta[C];
    lop_rng noise;
    lop_rng_seed(&noise, 5);
    for (int k = 0; k < M; k++) {
        y[k] = 0.01 * lop_rng_normal(&noise);
        for (int s = 0; s < 8; s++)
            y[k] += weights[s] * z[k * C + planted[s]];
    }
    gram(z, y, A, r);
    int keep[C];
    assert_int_equal(lop_select_lasso(A, r, NULL, C, 8, keep, beta, NULL), LOP_OK);
    for (int s = 0; s < 8; s++)
        assert_int_equal(keep[s], planted[s]);
    /* fewer: the strongest planted channels (weights 2.0, 1.9, 1.7, 1.5) */
    assert_int_equal(lop_select_lasso(A, r, NULL, C, 4, keep, NULL, NULL), LOP_OK);
    const int strongest[4] = {1, 4, 8, 13};
    for (int s = 0; s < 4; s++)
        assert_int_equal(keep[s], strongest[s]);
    /* every count from 1 to C is honoured exactly, increasing and in range */
    for (int n = 1; n <= C; n++) {
        assert_int_equal(lop_select_lasso(A, r, NULL, C, n, keep, NULL, NULL), LOP_OK);
        for (int s = 0; s < n; s++) {
            assert_in_range(keep[s], 0, C - 1);
            if (s > 0)
                assert_true(keep[s] > keep[s - 1]);
        }
    }
    free(z);
}

/* ThiNet: channels outside the planted set contribute almost nothing to the output,
 * so removing them costs least. */
static void test_thinet_recovers_planted_subset(void **state)
{
    (void)state;
    double *z = random_z(12), G[C * C];
    for (int k = 0; k < M; k++)
        for (int j = 0; j < C; j++) {
            int in_set = 0;
            for (int s = 0; s < 8; s++)
                in_set |= planted[s] == j;
            z[k * C + j] *= in_set ? 1.0 : 0.02;
        }
    gram(z, NULL, G, NULL);
    int keep[C];
    assert_int_equal(lop_select_thinet(G, C, 8, keep), LOP_OK);
    for (int s = 0; s < 8; s++)
        assert_int_equal(keep[s], planted[s]);
    free(z);
}

/* The greedy rule of the paper, evaluated the slow way on the samples themselves. */
static void naive_thinet(const double *z, int c, int nkeep, int *keep)
{
    int removed[C] = {0};
    for (int step = 0; step < c - nkeep; step++) {
        int best = -1;
        double best_err = 0;
        for (int j = 0; j < c; j++) {
            if (removed[j])
                continue;
            double err = 0;
            for (int k = 0; k < M; k++) {
                double s = z[k * C + j];
                for (int t = 0; t < c; t++)
                    if (removed[t])
                        s += z[k * C + t];
                err += s * s;
            }
            if (best < 0 || err < best_err) {
                best = j;
                best_err = err;
            }
        }
        removed[best] = 1;
    }
    for (int j = 0, n = 0; j < c; j++)
        if (!removed[j])
            keep[n++] = j;
}

static void test_thinet_matches_sample_by_sample_greedy(void **state)
{
    (void)state;
    double *z = random_z(13), G[C * C];
    /* correlated channels make the greedy order matter */
    for (int k = 0; k < M; k++)
        for (int j = 1; j < C; j++)
            z[k * C + j] += 0.5 * z[k * C + j - 1] * (j % 3 == 0 ? -1 : 1);
    gram(z, NULL, G, NULL);
    for (int n = 1; n <= C; n++) {
        int fast[C], slow[C];
        assert_int_equal(lop_select_thinet(G, C, n, fast), LOP_OK);
        naive_thinet(z, C, n, slow);
        assert_memory_equal(fast, slow, sizeof(int) * (size_t)n);
    }
    free(z);
}

/* He et al.'s eq. 2 (||W_j||_F = 1): scaling channel j's filter by s_j scales its
 * contribution Z_j, and so row and column j of A and r_j, by s_j; given the filter
 * norms, LASSO must select exactly as before.  Unnormalised, the cheaply scaled-up
 * weak channels 0 and 15 (|beta| shrinks by 20) would displace strong ones. */
static void test_lasso_ignores_filter_scale(void **state)
{
    (void)state;
    double *z = random_z(11), y[M], A[C * C], r[C], norm[C];
    lop_rng noise;
    lop_rng_seed(&noise, 5);
    for (int k = 0; k < M; k++) {
        y[k] = 0.01 * lop_rng_normal(&noise) + 0.6 * z[k * C + 0];
        for (int s = 0; s < 8; s++)
            y[k] += weights[s] * z[k * C + planted[s]];
    }
    for (int j = 0; j < C; j++)
        norm[j] = j == 0 || j == 15 ? 20.0 : 1.0;
    for (int k = 0; k < M; k++)
        for (int j = 0; j < C; j++)
            z[k * C + j] *= norm[j];
    gram(z, y, A, r);
    int keep[C], unnormalised[C];
    const int strongest[4] = {1, 4, 8, 13};
    assert_int_equal(lop_select_lasso(A, r, norm, C, 4, keep, NULL, NULL), LOP_OK);
    for (int s = 0; s < 4; s++)
        assert_int_equal(keep[s], strongest[s]);
    assert_int_equal(lop_select_lasso(A, r, NULL, C, 4, unnormalised, NULL, NULL), LOP_OK);
    int same = 1;
    for (int s = 0; s < 4; s++)
        same = same && unnormalised[s] == strongest[s];
    assert_false(same);   /* the scale would have mattered */
    /* a zero filter contributes nothing and is never kept */
    norm[3] = 0;
    assert_int_equal(lop_select_lasso(A, r, norm, C, 8, keep, NULL, NULL), LOP_OK);
    for (int s = 0; s < 8; s++)
        assert_int_not_equal(keep[s], 3);
    free(z);
}

/* How far beta is from the LASSO's optimality conditions at lambda, relative to
 * max |r|: |r_j - (A beta)_j| must equal lambda (with beta_j's sign) where beta_j is
 * nonzero and be at most lambda where it is zero. */
static double kkt_violation(const double *A, const double *r, const double *beta, int c,
                            double lambda)
{
    double worst = 0, scale = 0;
    for (int j = 0; j < c; j++) {
        double g = r[j];
        for (int i = 0; i < c; i++)
            g -= A[j * c + i] * beta[i];
        double v = beta[j] != 0 ? fabs(g - (beta[j] > 0 ? lambda : -lambda))
                                : fmax(0, fabs(g) - lambda);
        worst = fmax(worst, v);
        scale = fmax(scale, fabs(r[j]));
    }
    return worst / scale;
}

/* Coordinate descent on two nearly identical channels (correlation 1 - 1e-7) moves by
 * a factor (1 - 1e-7)^2 per sweep: it reaches its cap on the way, and feature-sign
 * search must finish the job - converged, and optimal to the tolerance.  A
 * five-channel problem whose Gram matrix is singular (channels 0 and 2 the same up to
 * rounding) has no minimiser at the penalty the search reaches: along d = e2 - e0, A d
 * = 0 and r'd = 0.32 > lambda |d|_1 = 0.22, so the objective falls without end.  It
 * must say that it did not converge, and its coefficients are indeed off the
 * conditions.  A well-conditioned problem converges in few sweeps and says so. */
static void test_lasso_reports_convergence(void **state)
{
    (void)state;
    const double rho = 1 - 1e-7;
    double A[4] = {1, rho, rho, 1}, r[2] = {1, 1}, beta[2];
    int keep[3];
    lop_lasso_info info = {0};
    assert_int_equal(lop_select_lasso(A, r, NULL, 2, 1, keep, beta, &info), LOP_OK);
    assert_true(info.converged);
    assert_true(info.sweeps >= 100);   /* a solve reached the cap */
    assert_true(kkt_violation(A, r, beta, 2, info.lambda) < 1e-8);

    double A5[25] = {
        0.15375073364564221, -0.11086570996075039, 0.15375076224529963, -0.11301595500675152,
        -0.12569155167009058, -0.11086570996075039, 0.15374467814853993, -0.11086550630875278,
        0.15156496115187718, 0.082808140195531843, 0.15375076224529963, -0.11086550630875278,
        0.15375079084582477, -0.11301574212474155, -0.12569165997444268, -0.11301595500675152,
        0.15156496115187718, -0.11301574212474155, 0.15373556634402311, 0.084956887255439012,
        -0.12569155167009058, 0.082808140195531843, -0.12569165997444268, 0.084956887255439012,
        0.1537510318167567};
    double r5[5] = {-0.26688111376337759, 0.42657579478182639, 0.051442931197324238,
                    0.43342002245291134, -0.005593119890239584}, beta5[5];
    assert_int_equal(lop_select_lasso(A5, r5, NULL, 5, 3, keep, beta5, &info), LOP_OK);
    assert_false(info.converged);
    assert_true(kkt_violation(A5, r5, beta5, 5, info.lambda) > 1e-3);

    double I[4] = {2, 0, 0, 1}, q[2] = {3, 1};
    assert_int_equal(lop_select_lasso(I, q, NULL, 2, 1, keep, NULL, &info), LOP_OK);
    assert_true(info.converged);
    assert_int_equal(keep[0], 0);   /* beta = (1.5, 1) unpenalised: channel 0 is larger */
    assert_true(info.sweeps >= 1 && info.sweeps < 100);
}

/* A c-channel LASSO problem (c <= 8) from 16 samples: with noise > 0 each channel is a
 * random sign times one shared direction plus that much noise (nearly collinear, A's
 * condition number about 1 / noise^2), with noise 0 channels drawn independently;
 * r standard normal. */
static void random_problem(lop_rng *g, int c, double noise, double *A, double *r)
{
    enum { SAMPLES = 16 };
    double v[8][SAMPLES], base[SAMPLES];
    for (int k = 0; k < SAMPLES; k++)
        base[k] = lop_rng_normal(g);
    for (int i = 0; i < c; i++) {
        double sign = lop_rng_uniform(g) < 0.5 ? 1 : -1;
        for (int k = 0; k < SAMPLES; k++)
            v[i][k] = noise > 0 ? sign * base[k] + noise * lop_rng_normal(g) : lop_rng_normal(g);
    }
    for (int i = 0; i < c; i++) {
        for (int j = 0; j < c; j++) {
            double sum = 0;
            for (int k = 0; k < SAMPLES; k++)
                sum += v[i][k] * v[j][k];
            A[i * c + j] = sum;
        }
        r[i] = lop_rng_normal(g);
    }
}

/* Whenever the LASSO says it converged, its coefficients meet the optimality
 * conditions at its lambda: 300 random problems of 3-8 channels, half of them nearly
 * collinear (noise 1e-3), where coordinate descent alone often stops at its cap.  Each
 * has a minimiser (A is positive definite), so each must say it converged.  (At noise
 * 1e-4 the coefficients reach 1e7, and rounding in A b alone exceeds the check.) */
static void test_lasso_converged_means_optimal(void **state)
{
    (void)state;
    lop_rng g;
    lop_rng_seed(&g, 11);
    for (int trial = 0; trial < 300; trial++) {
        int c = 3 + trial % 6, keep[8];
        double A[64], r[8], beta[8];
        random_problem(&g, c, trial % 2 ? 1e-3 : 0, A, r);
        lop_lasso_info info;
        assert_int_equal(lop_select_lasso(A, r, NULL, c, 1 + trial % (c - 1), keep, beta, &info),
                         LOP_OK);
        assert_true(info.converged);   /* positive definite: every one has a minimiser */
        assert_true(kkt_violation(A, r, beta, c, info.lambda) < 2e-8);
    }
}

/* The LASSO's minimiser by exhaustion, for a positive definite A: every sign pattern s
 * in {-1, 0, 1}^c, b_S solved from A_SS b_S = r_S - lambda s_S by Gaussian elimination,
 * kept when its signs are s's and |r_j - (A b)_j| <= lambda at its zeros - the unique
 * point meeting the optimality conditions.  Returns 0 when no pattern does. */
static int lasso_by_exhaustion(const double *A, const double *r, int c, double lambda,
                               double *beta)
{
    int patterns = 1;
    for (int j = 0; j < c; j++)
        patterns *= 3;
    for (int p = 0; p < patterns; p++) {
        int s[8], S[8], n = 0;
        for (int j = 0, code = p; j < c; j++, code /= 3) {
            s[j] = code % 3 - 1;
            if (s[j])
                S[n++] = j;
        }
        double ASS[64], b_S[8];
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < n; k++)
                ASS[i * n + k] = A[S[i] * c + S[k]];
            b_S[i] = r[S[i]] - lambda * s[S[i]];
        }
        gauss_jordan(ASS, n, b_S, 1);
        int ok = 1;
        double b[8] = {0};
        for (int i = 0; i < n; i++) {
            b[S[i]] = b_S[i];
            ok = ok && b[S[i]] * s[S[i]] > 0;
        }
        for (int j = 0; ok && j < c; j++) {
            double g = r[j];
            for (int k = 0; k < c; k++)
                g -= A[j * c + k] * b[k];
            ok = s[j] || fabs(g) <= lambda * (1 + 1e-9);
        }
        if (ok) {
            memcpy(beta, b, sizeof(double) * c);
            return 1;
        }
    }
    return 0;
}

/* Problems where coordinate descent stops at its cap with a wrong support: 200 random
 * positive definite problems of 4-7 channels, nearly collinear (noise 1e-3, A's
 * condition number about 1e6).  Every solve must converge, and its coefficients must
 * be the minimiser found by exhaustion at the same penalty.  Most of them need
 * feature-sign search: without it, coordinate descent's answers here are off by far
 * more than the tolerance. */
static void test_lasso_matches_exhaustion(void **state)
{
    (void)state;
    lop_rng g;
    lop_rng_seed(&g, 5);
    int capped = 0;
    for (int trial = 0; trial < 200; trial++) {
        int c = 4 + trial % 4;
        double A[64], r[8], beta[8], ref[8];
        random_problem(&g, c, 1e-3, A, r);
        int keep[8];
        lop_lasso_info info;
        assert_int_equal(lop_select_lasso(A, r, NULL, c, 1 + trial % (c - 1), keep, beta, &info),
                         LOP_OK);
        assert_true(info.converged);
        capped += info.sweeps >= 100;
        assert_true(lasso_by_exhaustion(A, r, c, info.lambda, ref));
        double scale = 0;
        for (int j = 0; j < c; j++)
            scale = fmax(scale, fabs(ref[j]));
        for (int j = 0; j < c; j++)
            assert_true(fabs(beta[j] - ref[j]) <= 1e-6 * scale);
    }
    assert_true(capped > 100);
}

/* Kept counts are ceil(fraction * c) within 1..c; top-k keeps the highest scores,
 * ties to the lower channel, in increasing channel order; first-k is the prefix. */
static void test_counts_and_top_k_by_hand(void **state)
{
    (void)state;
    assert_int_equal(lop_keep_count(0.5, 16), 8);
    assert_int_equal(lop_keep_count(0.3, 16), 5);        /* 4.8 rounds up */
    assert_int_equal(lop_keep_count(0.25, 16), 4);       /* exact: no rounding up */
    assert_int_equal(lop_keep_count(1e-9, 5), 1);
    assert_int_equal(lop_keep_count(1.0, 5), 5);
    const double score[6] = {0.5, 2.0, -1.0, 2.0, 0.7, 0.5};
    int keep[6];
    assert_int_equal(lop_select_top(score, 6, 3, keep), LOP_OK);
    assert_int_equal(keep[0], 1);
    assert_int_equal(keep[1], 3);
    assert_int_equal(keep[2], 4);
    assert_int_equal(lop_select_top(score, 6, 4, keep), LOP_OK);   /* 0.5 tie: channel 0 */
    assert_int_equal(keep[0], 0);
    assert_int_equal(keep[3], 4);
    assert_int_equal(lop_select_first(6, 2, keep), LOP_OK);
    assert_int_equal(keep[0], 0);
    assert_int_equal(keep[1], 1);
    assert_int_equal(lop_select_random(6, 3, 1, keep), LOP_OK);
    for (int i = 0; i < 3; i++) {
        assert_in_range(keep[i], 0, 5);
        if (i > 0)
            assert_true(keep[i] > keep[i - 1]);
    }
    const double nan_score[2] = {NAN, 1};
    assert_int_equal(lop_select_top(nan_score, 2, 1, keep), LOP_EINVAL);
    assert_int_equal(lop_select_top(score, 6, 7, keep), LOP_EINVAL);
    assert_int_equal(lop_select_first(6, 0, keep), LOP_EINVAL);
    assert_int_equal(lop_select_random(0, 1, 1, keep), LOP_EINVAL);
}

static void test_impossible_requests_are_refused(void **state)
{
    (void)state;
    double G[4] = {1, 0, 0, 1}, r[2] = {1, 1};
    int keep[2];
    assert_int_equal(lop_select_thinet(G, 2, 0, keep), LOP_EINVAL);
    assert_int_equal(lop_select_thinet(G, 2, 3, keep), LOP_EINVAL);
    assert_int_equal(lop_select_lasso(G, r, NULL, 2, 0, keep, NULL, NULL), LOP_EINVAL);
    assert_int_equal(lop_select_lasso(G, r, NULL, 2, 3, keep, NULL, NULL), LOP_EINVAL);
    assert_int_equal(lop_select_lasso(G, r, NULL, 0, 1, keep, NULL, NULL), LOP_EINVAL);
}

static void test_spd_solve_matches_hand_computed(void **state)
{
    (void)state;
    /* [4 2; 2 3] X = [2 1; 1 2]: the inverse is [3 -2; -2 4] / 8, so
     * X = [3*2-2*1, 3*1-2*2; -2*2+4*1, -2*1+4*2] / 8 = [0.5 -0.125; 0 0.75] */
    double A[4] = {4, 2, 2, 3}, B[4] = {2, 1, 1, 2}, X[4];
    assert_int_equal(lop_solve_spd(A, 2, B, 2, 0, X), LOP_OK);
    assert_float_equal(X[0], 0.5, 1e-12);
    assert_float_equal(X[1], -0.125, 1e-12);
    assert_float_equal(X[2], 0.0, 1e-12);
    assert_float_equal(X[3], 0.75, 1e-12);
    /* singular: the ridge makes it solvable */
    double S[4] = {1, 1, 1, 1}, b[2] = {2, 2}, x[2];
    assert_int_equal(lop_solve_spd(S, 2, b, 1, 0, x), LOP_OK);
    assert_float_equal(x[0] + x[1], 2.0, 1e-3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lasso_recovers_planted_subset),
        cmocka_unit_test(test_lasso_ignores_filter_scale),
        cmocka_unit_test(test_lasso_reports_convergence),
        cmocka_unit_test(test_lasso_converged_means_optimal),
        cmocka_unit_test(test_lasso_matches_exhaustion),
        cmocka_unit_test(test_thinet_recovers_planted_subset),
        cmocka_unit_test(test_thinet_matches_sample_by_sample_greedy),
        cmocka_unit_test(test_counts_and_top_k_by_hand),
        cmocka_unit_test(test_impossible_requests_are_refused),
        cmocka_unit_test(test_spd_solve_matches_hand_computed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
