/*
 * test_batchnorm.c - batch normalisation semantics against hand-computed numbers and
 * naive double-precision loops: training output from batch statistics, PyTorch-style
 * running-statistic updates (biased variance to normalise, unbiased to track) over
 * two training passes, evaluation from running statistics, and the (F) form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "lopper.h"

#define EPS 1e-5

/* input (C,H,W) or (F) -> batchnorm "bn"; returns the graph, bn is node 1. */
static lop_graph *bn_graph(int ndim, const int *dims, float momentum)
{
    lop_graph *g = lop_graph_new(3);
    assert_non_null(g);
    lop_attrs a = lop_attrs_default();
    a.in_ndim = ndim;
    for (int i = 0; i < ndim; i++)
        a.in_shape[i] = dims[i];
    int x, bn;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &a, &x), LOP_OK);
    lop_attrs b = lop_attrs_default();
    b.momentum = momentum;
    assert_int_equal(lop_graph_add(g, LOP_BATCHNORM, "bn", &x, 1, &b, &bn), LOP_OK);
    assert_int_equal(bn, 1);
    return g;
}

static float *param(lop_graph *g, const char *name)
{
    int k = lop_node_find_param(g, 1, name);
    assert_true(k >= 0);
    return lop_node_param(g, 1, k)->data;
}

/* Naive per-channel statistics of x [n, c, s]: mean, biased and unbiased variance. */
static void channel_stats(const float *x, int n, int c, int s, int ch, double *mean,
                          double *var, double *uvar)
{
    double sum = 0, ss = 0;
    for (int b = 0; b < n; b++)
        for (int i = 0; i < s; i++)
            sum += x[(b * c + ch) * s + i];
    *mean = sum / (n * s);
    for (int b = 0; b < n; b++)
        for (int i = 0; i < s; i++) {
            double d = x[(b * c + ch) * s + i] - *mean;
            ss += d * d;
        }
    *var = ss / (n * s);
    *uvar = ss / (n * s - 1);
}

static void test_parameters_and_initial_values(void **state)
{
    (void)state;
    int dims[3] = {3, 2, 2};
    lop_graph *g = bn_graph(3, dims, 0.1f);
    static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
    static const float init[4] = {1, 0, 0, 1};
    assert_int_equal(lop_node_nparams(g, 1), 4);
    for (int k = 0; k < 4; k++) {
        assert_string_equal(lop_node_param_name(g, 1, k), names[k]);
        lop_tensor *p = lop_node_param(g, 1, k);
        assert_int_equal(p->ndim, 1);
        assert_int_equal(p->shape[0], 3);
        for (int c = 0; c < 3; c++)
            assert_float_equal(p->data[c], init[k], 0);
        /* gamma and beta learn; the running statistics are buffers */
        if (k < 2)
            assert_non_null(lop_node_grad(g, 1, k));
        else
            assert_null(lop_node_grad(g, 1, k));
    }
    assert_float_equal(lop_graph_flops(g), 2.0 * 12, 0);
    lop_graph_free(g);
}

static void test_train_forward_and_running_stats_by_hand(void **state)
{
    (void)state;
    int dims[3] = {2, 2, 2}, shape[4] = {2, 2, 2, 2};
    lop_graph *g = bn_graph(3, dims, 0.1f);
    float *gamma = param(g, "weight"), *beta = param(g, "bias");
    gamma[0] = 2.0f;
    gamma[1] = 0.5f;
    beta[0] = 1.0f;
    beta[1] = -1.0f;
    /* channel 0 holds 1..8: mean 4.5, biased variance 5.25, unbiased 6.
     * channel 1 holds 0,0,0,0,2,2,2,2: mean 1, biased variance 1, unbiased 8/7. */
    const float x1[16] = {1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8, 2, 2, 2, 2};
    lop_tensor *x = lop_tensor_new(4, shape);
    memcpy(x->data, x1, sizeof x1);
    assert_int_equal(lop_graph_forward(g, x, 1), LOP_OK);
    const float *y = lop_graph_output(g)->data;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 4; i++) {
            float v0 = x1[b * 8 + i], v1 = x1[b * 8 + 4 + i];
            assert_float_equal(y[b * 8 + i], 2.0 * (v0 - 4.5) / sqrt(5.25 + EPS) + 1.0, 1e-5);
            assert_float_equal(y[b * 8 + 4 + i], 0.5 * (v1 - 1.0) / sqrt(1.0 + EPS) - 1.0,
                               1e-5);
        }
    float *rm = param(g, "running_mean"), *rv = param(g, "running_var");
    assert_float_equal(rm[0], 0.45, 1e-6);
    assert_float_equal(rm[1], 0.1, 1e-6);
    assert_float_equal(rv[0], 0.9 + 0.1 * 6.0, 1e-6);
    assert_float_equal(rv[1], 0.9 + 0.1 * 8.0 / 7.0, 1e-6);

    /* A second training pass on different data folds in with the same momentum. */
    lop_tensor *x2 = gradcheck_random(4, shape, 17);
    for (size_t i = 0; i < x2->numel; i++)
        x2->data[i] = 3.0f * x2->data[i] + 2.0f;
    assert_int_equal(lop_graph_forward(g, x2, 1), LOP_OK);
    y = lop_graph_output(g)->data;
    for (int c = 0; c < 2; c++) {
        double mean, var, uvar;
        channel_stats(x2->data, 2, 2, 4, c, &mean, &var, &uvar);
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 4; i++) {
                int at = (b * 2 + c) * 4 + i;
                double want = gamma[c] * (x2->data[at] - mean) / sqrt(var + EPS) + beta[c];
                assert_float_equal(y[at], want, 1e-5);
            }
    }
    double m0, v0, u0, m1, v1, u1;
    channel_stats(x2->data, 2, 2, 4, 0, &m0, &v0, &u0);
    channel_stats(x2->data, 2, 2, 4, 1, &m1, &v1, &u1);
    assert_float_equal(rm[0], 0.9 * 0.45 + 0.1 * m0, 1e-5);
    assert_float_equal(rm[1], 0.9 * 0.1 + 0.1 * m1, 1e-5);
    assert_float_equal(rv[0], 0.9 * 1.5 + 0.1 * u0, 1e-5);
    assert_float_equal(rv[1], 0.9 * (0.9 + 0.8 / 7.0) + 0.1 * u1, 1e-5);
    lop_tensor_release(x2);
    lop_tensor_release(x);
    lop_graph_free(g);
}

static void test_eval_uses_running_stats_and_leaves_them(void **state)
{
    (void)state;
    int dims[3] = {2, 1, 3}, shape[4] = {1, 2, 1, 3};
    lop_graph *g = bn_graph(3, dims, 0.1f);
    float *gamma = param(g, "weight"), *beta = param(g, "bias");
    float *rm = param(g, "running_mean"), *rv = param(g, "running_var");
    gamma[0] = 3.0f, gamma[1] = -1.0f;
    beta[0] = 0.5f, beta[1] = 2.0f;
    rm[0] = 1.0f, rm[1] = -2.0f;
    rv[0] = 4.0f, rv[1] = 0.25f;
    const float xv[6] = {1, 3, -1, 0, -2, 1};
    lop_tensor *x = lop_tensor_new(4, shape);   /* a single sample is fine in eval */
    memcpy(x->data, xv, sizeof xv);
    assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
    const float *y = lop_graph_output(g)->data;
    for (int i = 0; i < 3; i++) {
        assert_float_equal(y[i], 3.0 * (xv[i] - 1.0) / sqrt(4.0 + EPS) + 0.5, 1e-5);
        assert_float_equal(y[3 + i], -1.0 * (xv[3 + i] + 2.0) / sqrt(0.25 + EPS) + 2.0, 1e-5);
    }
    assert_float_equal(rm[0], 1.0f, 0);
    assert_float_equal(rm[1], -2.0f, 0);
    assert_float_equal(rv[0], 4.0f, 0);
    assert_float_equal(rv[1], 0.25f, 0);
    lop_tensor_release(x);
    lop_graph_free(g);
}

static void test_feature_vectors_and_momentum(void **state)
{
    (void)state;
    int dims[1] = {3}, shape[2] = {5, 3};
    lop_graph *g = bn_graph(1, dims, 0.5f);
    lop_tensor *x = gradcheck_random(2, shape, 23);
    assert_int_equal(lop_graph_forward(g, x, 1), LOP_OK);
    const float *y = lop_graph_output(g)->data;
    float *rm = param(g, "running_mean"), *rv = param(g, "running_var");
    for (int c = 0; c < 3; c++) {
        double mean, var, uvar;
        channel_stats(x->data, 5, 3, 1, c, &mean, &var, &uvar);
        for (int b = 0; b < 5; b++)
            assert_float_equal(y[b * 3 + c], (x->data[b * 3 + c] - mean) / sqrt(var + EPS),
                               1e-5);
        assert_float_equal(rm[c], 0.5 * mean, 1e-6);
        assert_float_equal(rv[c], 0.5 + 0.5 * uvar, 1e-6);
    }
    lop_tensor_release(x);
    lop_graph_free(g);
}

/* Batches large enough that the channels are split between threads (on a multi-core
 * machine).  Training and evaluation outputs and running statistics against naive
 * double loops, optionally with a large common offset that one-pass float sums
 * would not survive; backward against finite differences. */
static void check_big(int ndim, const int *dims, int batch, float offset, uint64_t seed)
{
    lop_graph *g = bn_graph(ndim, dims, 0.1f);
    int nc = dims[0], s = 1, shape[4] = {batch};
    for (int i = 0; i < ndim; i++)
        shape[i + 1] = dims[i];
    if (ndim == 3)
        s = dims[1] * dims[2];
    float *gamma = param(g, "weight"), *beta = param(g, "bias");
    for (int c = 0; c < nc; c++) {
        gamma[c] = 0.5f + 0.01f * (float)c;
        beta[c] = 0.1f * (float)(c % 7) - 0.3f;
    }
    lop_tensor *x = gradcheck_random(ndim + 1, shape, seed);
    for (size_t i = 0; i < x->numel; i++)
        x->data[i] += offset;
    assert_int_equal(lop_graph_forward(g, x, 1), LOP_OK);
    const float *y = lop_graph_output(g)->data;
    const float *rm = param(g, "running_mean"), *rv = param(g, "running_var");
    for (int c = 0; c < nc; c++) {
        double mean, var, uvar;
        channel_stats(x->data, batch, nc, s, c, &mean, &var, &uvar);
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < s; i++) {
                int at = (b * nc + c) * s + i;
                double want = gamma[c] * (x->data[at] - mean) / sqrt(var + EPS) + beta[c];
                assert_float_equal(y[at], want, 1e-4);
            }
        assert_float_equal(rm[c], 0.1 * mean, 1e-5 * (1 + fabs(offset)));
        assert_float_equal(rv[c], 0.9 + 0.1 * uvar, 1e-5);
    }
    assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
    y = lop_graph_output(g)->data;
    for (int c = 0; c < nc; c++)
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < s; i++) {
                int at = (b * nc + c) * s + i;
                double want = gamma[c] * (x->data[at] - rm[c]) / sqrt(rv[c] + EPS) + beta[c];
                assert_float_equal(y[at], want, 1e-4 * (1 + fabs(offset)));
            }
    /* A float mean near 1000 cannot move by the h/m a finite difference gives it,
     * so the gradient is checked without the offset. */
    if (offset == 0.0f) {
        double worst = gradcheck_graph(g, x, 1, 1e-2, seed + 1);
        assert_true(worst >= 0);
        if (worst > 1e-2)
            fail_msg("worst relative gradient error %g > 1e-2", worst);
    }
    lop_tensor_release(x);
    lop_graph_free(g);
}

static void test_big_batches_split_by_channel(void **state)
{
    (void)state;
    /* 8 samples of (16, 20, 20) maps, and 64 samples of 1024 features */
    int maps[3] = {16, 20, 20}, features[1] = {1024};
    check_big(3, maps, 8, 0.0f, 31);
    check_big(3, maps, 8, 1000.0f, 32);
    check_big(1, features, 64, 0.0f, 33);
}

static void test_single_value_per_channel_cannot_train(void **state)
{
    (void)state;
    int dims[1] = {4}, shape[2] = {1, 4};
    lop_graph *g = bn_graph(1, dims, 0.1f);
    lop_tensor *x = gradcheck_random(2, shape, 2);
    assert_int_equal(lop_graph_forward(g, x, 1), LOP_ESHAPE);
    assert_non_null(strstr(lop_errmsg(), "bn"));
    const float *rm = param(g, "running_mean"), *rv = param(g, "running_var");
    for (int c = 0; c < 4; c++) {
        assert_float_equal(rm[c], 0.0f, 0);
        assert_float_equal(rv[c], 1.0f, 0);
    }
    assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
    lop_tensor_release(x);
    lop_graph_free(g);
}

static void test_invalid_attributes(void **state)
{
    (void)state;
    int dims[3] = {2, 2, 2};
    lop_graph *g = bn_graph(3, dims, 0.1f);
    lop_attrs a = lop_attrs_default();
    int x = 0;
    a.eps = 0.0f;
    assert_int_equal(lop_graph_add(g, LOP_BATCHNORM, "bad_eps", &x, 1, &a, NULL), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "bad_eps"));
    a = lop_attrs_default();
    a.momentum = 1.5f;
    assert_int_equal(lop_graph_add(g, LOP_BATCHNORM, "bad_mom", &x, 1, &a, NULL), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "bad_mom"));
    assert_int_equal(lop_graph_size(g), 2);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parameters_and_initial_values),
        cmocka_unit_test(test_train_forward_and_running_stats_by_hand),
        cmocka_unit_test(test_eval_uses_running_stats_and_leaves_them),
        cmocka_unit_test(test_feature_vectors_and_momentum),
        cmocka_unit_test(test_big_batches_split_by_channel),
        cmocka_unit_test(test_single_value_per_channel_cannot_train),
        cmocka_unit_test(test_invalid_attributes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
