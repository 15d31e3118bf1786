/*
 * test_hessian.c - the Hessian power iteration against an explicit Hessian.  For a
 * linear classifier with softmax cross-entropy the Hessian w.r.t. the weights is
 * known in closed form, H = mean_s (diag(p_s) - p_s p_s') (x) (x_s x_s'); its top
 * eigenpair from LAPACK (dsyev) must match what power iteration on finite-difference
 * Hessian-vector products finds, and the network must be left exactly as it was.
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
#include "gradcheck.h"

extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *info);

enum { N = 40, F = 4, K = 3, P = K * F };

static void test_power_iteration_finds_the_explicit_top_eigenpair(void **state)
{
    (void)state;
    lop_graph *g = lop_graph_new(3);
    lop_attrs in = lop_attrs_input(F, 1, 1), fc = lop_attrs_default();
    int id, lin;
    fc.out_channels = K;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &id), LOP_OK);
    assert_int_equal(lop_graph_add(g, LOP_FLATTEN, "f", &id, 1, NULL, &id), LOP_OK);
    assert_int_equal(lop_graph_add(g, LOP_LINEAR, "fc", &id, 1, &fc, &lin), LOP_OK);
    int shape[4] = {N, F, 1, 1};
    lop_dataset d = {.images = gradcheck_random(4, shape, 5), .labels = malloc(N * sizeof(int)),
                     .n = N, .classes = K};
    for (int s = 0; s < N; s++)
        d.labels[s] = s % K;
    const float *W = g->nodes[lin]->param[0]->data, *b = g->nodes[lin]->param[1]->data;

    /* the explicit Hessian, (k, f) x (k', f') in the weights' row-major order */
    double H[P * P] = {0};
    for (int s = 0; s < N; s++) {
        const float *x = d.images->data + s * F;
        double z[K], p[K], zmax = -1e300, sum = 0;
        for (int k = 0; k < K; k++) {
            z[k] = b[k];
            for (int f = 0; f < F; f++)
                z[k] += W[k * F + f] * x[f];
            zmax = fmax(zmax, z[k]);
        }
        for (int k = 0; k < K; k++)
            sum += p[k] = exp(z[k] - zmax);
        for (int k = 0; k < K; k++)
            p[k] /= sum;
        for (int k = 0; k < K; k++)
            for (int k2 = 0; k2 < K; k2++)
                for (int f = 0; f < F; f++)
                    for (int f2 = 0; f2 < F; f2++)
                        H[(k * F + f) * P + k2 * F + f2] +=
                            ((k == k2 ? p[k] : 0) - p[k] * p[k2]) * x[f] * x[f2] / N;
    }
    double evals[P], work[10 * P], A[P * P];
    int n = P, lwork = 10 * P, info;
    memcpy(A, H, sizeof A);
    dsyev_("V", "U", &n, A, &n, evals, work, &lwork, &info);
    assert_int_equal(info, 0);
    const double *top = A + (P - 1) * P;   /* eigenvectors are columns (column-major) */

    float before[P + K];
    memcpy(before, W, P * sizeof(float));
    memcpy(before + P, b, K * sizeof(float));
    lop_hessian_opts o = {.images = N, .batch = N, .max_iter = 500, .tol = 1e-7, .seed = 2};
    double lambda;
    float v[P];
    int iters;
    assert_int_equal(lop_hessian_top(g, &d, lin, &o, &lambda, v, &iters), LOP_OK);
    print_message("lambda %.6f (LAPACK %.6f, next %.6f) after %d products\n", lambda,
                  evals[P - 1], evals[P - 2], iters);
    assert_float_equal(lambda, evals[P - 1], 2e-3 * evals[P - 1]);
    double dot = 0;
    for (int i = 0; i < P; i++)
        dot += v[i] * top[i];
    assert_true(fabs(dot) > 0.99);
    /* the network is left exactly as it was */
    assert_memory_equal(W, before, P * sizeof(float));
    assert_memory_equal(b, before + P, K * sizeof(float));

    assert_int_equal(lop_hessian_top(g, &d, 1, &o, &lambda, NULL, NULL), LOP_EINVAL);
    lop_hessian_opts bad = o;
    bad.images = N + 1;
    assert_int_equal(lop_hessian_top(g, &d, lin, &bad, &lambda, NULL, NULL), LOP_EINVAL);
    lop_dataset_free(&d);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_iteration_finds_the_explicit_top_eigenpair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
