/*
 * test_fold_batchnorm.c - batchnorm folded into the convolution before it
 * (lop_graph_fold_batchnorm): on a graph with a conv without bias -> batchnorm ->
 * relu, a grouped conv with bias -> batchnorm, a conv read by its batchnorm and by a
 * relu (not folded) and a batchnorm after a maxpool (not folded), all with non-trivial
 * statistics and affine terms, the folded graph's evaluation matches the original's;
 * the nodes left, their names, the parameter count and the folded weights and biases
 * match hand computation; the result still trains (gradients against finite
 * differences); nothing to fold changes nothing; every failed allocation leaves the
 * graph as it was.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "graph_build.h"
#include "lopper.h"

static const char *const before_names[] = {"x", "c1", "bn1", "r1", "c2", "bn2", "c3", "bn3",
                                           "r3", "add3", "mp", "bn4", "gap", "fc"};
static const char *const after_names[] = {"x", "c1", "r1", "c2", "c3", "bn3", "r3", "add3",
                                          "mp", "bn4", "gap", "fc"};

/* x [3, 8, 8] -> c1 (no bias) -> bn1 -> r1 -> c2 (2 groups, bias) -> bn2 -> c3 -> bn3
 * and r3, both reading c3 -> add3 -> mp -> bn4 -> gap -> fc. */
static lop_graph *make_graph(void)
{
    int x;
    lop_graph *g = new_graph(3, 3, 8, 8, &x);
    lop_attrs bn = lop_attrs_default(), pool = lop_attrs_default(), fc = lop_attrs_default();
    bn.eps = 1e-3f;
    pool.kernel_h = pool.kernel_w = 2;
    fc.out_channels = 3;
    int c1 = conv(g, "c1", x, 4, 0);
    int bn1 = add1(g, LOP_BATCHNORM, "bn1", c1, &bn);
    int r1 = add1(g, LOP_RELU, "r1", bn1, NULL);
    int c2 = conv_k(g, "c2", r1, 6, 3, 1, 2);
    int bn2 = add1(g, LOP_BATCHNORM, "bn2", c2, NULL);
    int c3 = conv(g, "c3", bn2, 6, 1);
    int bn3 = add1(g, LOP_BATCHNORM, "bn3", c3, NULL);
    int r3 = add1(g, LOP_RELU, "r3", c3, NULL);
    int sum[2] = {bn3, r3}, add3;
    assert_int_equal(lop_graph_add(g, LOP_ADD, "add3", sum, 2, NULL, &add3), LOP_OK);
    int mp = add1(g, LOP_MAXPOOL, "mp", add3, &pool);
    int bn4 = add1(g, LOP_BATCHNORM, "bn4", mp, NULL);
    int gap = add1(g, LOP_GLOBAL_AVGPOOL, "gap", bn4, NULL);
    add1(g, LOP_LINEAR, "fc", gap, &fc);
    lop_rng r;
    lop_rng_seed(&r, 18);
    int bns[4] = {bn1, bn2, bn3, bn4};
    for (int i = 0; i < 4; i++)
        batchnorm_terms(g, bns[i], &r);
    fill_param(g, c2, "bias", -0.5, 0.5, &r);
    fill_param(g, c3, "bias", -0.5, 0.5, &r);
    return g;
}

/* The graph's evaluation output on x, copied. */
static lop_tensor *eval(lop_graph *g, const lop_tensor *x)
{
    assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
    const lop_tensor *y = lop_graph_output(g);
    lop_tensor *c = lop_tensor_new(y->ndim, y->shape);
    assert_non_null(c);
    memcpy(c->data, y->data, y->numel * sizeof *c->data);
    return c;
}

static void assert_close(const lop_tensor *want, const lop_tensor *got)
{
    assert_int_equal(want->numel, got->numel);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < want->numel; i++) {
        worst = fmax(worst, fabs((double)want->data[i] - got->data[i]));
        scale = fmax(scale, fabs((double)want->data[i]));
    }
    if (worst > 1e-5 * scale)
        fail_msg("folded output off by %g (largest value %g)", worst, scale);
}

static void assert_names(const lop_graph *g, const char *const *names, int n)
{
    assert_int_equal(lop_graph_size(g), n);
    for (int i = 0; i < n; i++)
        assert_string_equal(lop_node_name(g, i), names[i]);
}

static const float *param(const lop_graph *g, const char *node, const char *name)
{
    int id = lop_graph_find(g, node), k = lop_node_find_param(g, id, name);
    assert_true(id >= 0 && k >= 0);
    return lop_node_param(g, id, k)->data;
}

/* Conv `conv` of `after` holds conv's weights and bias (zero when it had none) of
 * `before` with batchnorm bn folded in, each filter of `per` weights. */
static void assert_folded(const lop_graph *before, const lop_graph *after, const char *conv,
                          const char *bn, int channels, int per, int had_bias)
{
    const float *w = param(before, conv, "weight"), *fw = param(after, conv, "weight");
    const float *b = had_bias ? param(before, conv, "bias") : NULL;
    const float *fb = param(after, conv, "bias");
    const float *gamma = param(before, bn, "weight"), *beta = param(before, bn, "bias");
    const float *mean = param(before, bn, "running_mean");
    const float *var = param(before, bn, "running_var");
    double eps = lop_node_attrs(before, lop_graph_find(before, bn))->eps;
    for (int o = 0; o < channels; o++) {
        double a = gamma[o] / sqrt((double)var[o] + eps);
        for (int i = 0; i < per; i++)
            assert_float_equal(fw[o * per + i], w[o * per + i] * a, 1e-6);
        assert_float_equal(fb[o], ((b ? b[o] : 0.0) - mean[o]) * a + beta[o], 1e-6);
    }
}

static void test_fold_matches_evaluation(void **state)
{
    (void)state;
    lop_graph *g = make_graph();
    lop_graph *orig = lop_graph_clone(g);
    assert_non_null(orig);
    int shape[4] = {5, 3, 8, 8};
    lop_tensor *x = gradcheck_random(4, shape, 1818);
    lop_tensor *want = eval(g, x);
    assert_names(g, before_names, 14);
    /* c1 108 + bn1 16 + c2 (6 x 2 x 3 x 3 + 6) 114 + bn2 24 + c3 (6 x 6 x 9 + 6) 330 +
     * bn3 24 + bn4 24 + fc 21 */
    assert_int_equal(lop_graph_params(g), 661);
    uint64_t gen = lop_graph_generation(g);

    int folded = -1;
    assert_int_equal(lop_graph_fold_batchnorm(g, &folded), LOP_OK);
    assert_int_equal(folded, 2);
    assert_int_equal(lop_graph_generation(g), gen + 1);
    assert_names(g, after_names, 12);
    /* c1 gains 4 biases; bn1 and bn2 go */
    assert_int_equal(lop_graph_params(g), 661 + 4 - 16 - 24);
    assert_int_equal(lop_node_input(g, lop_graph_find(g, "r1"), 0), lop_graph_find(g, "c1"));
    assert_int_equal(lop_node_input(g, lop_graph_find(g, "c3"), 0), lop_graph_find(g, "c2"));
    assert_int_equal(lop_node_attrs(g, lop_graph_find(g, "c1"))->bias, 1);
    assert_int_equal(lop_node_attrs(g, lop_graph_find(g, "c2"))->groups, 2);
    assert_folded(orig, g, "c1", "bn1", 4, 3 * 9, 0);
    assert_folded(orig, g, "c2", "bn2", 6, 2 * 9, 1);
    assert_memory_equal(param(orig, "c3", "weight"), param(g, "c3", "weight"),
                        6 * 6 * 9 * sizeof(float));

    lop_tensor *got = eval(g, x);
    assert_close(want, got);

    /* nothing left to fold: nothing changes */
    gen = lop_graph_generation(g);
    assert_int_equal(lop_graph_fold_batchnorm(g, &folded), LOP_OK);
    assert_int_equal(folded, 0);
    assert_int_equal(lop_graph_generation(g), gen);
    assert_names(g, after_names, 12);

    lop_tensor_release(x);
    lop_tensor_release(want);
    lop_tensor_release(got);
    lop_graph_free(orig);
    lop_graph_free(g);
}

/* A batchnorm that is the graph's output: the conv becomes the output. */
static void test_fold_at_the_output(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 2, 5, 5, &x);
    int c = conv_k(g, "c", x, 3, 1, 2, 1);
    int bn = add1(g, LOP_BATCHNORM, "bn", c, NULL);
    lop_rng r;
    lop_rng_seed(&r, 5);
    batchnorm_terms(g, bn, &r);
    int shape[4] = {2, 2, 5, 5};
    lop_tensor *in = gradcheck_random(4, shape, 55);
    lop_tensor *want = eval(g, in);
    int folded;
    assert_int_equal(lop_graph_fold_batchnorm(g, &folded), LOP_OK);
    assert_int_equal(folded, 1);
    const char *names[] = {"x", "c"};
    assert_names(g, names, 2);
    lop_tensor *got = eval(g, in);
    assert_close(want, got);
    lop_tensor_release(in);
    lop_tensor_release(want);
    lop_tensor_release(got);
    lop_graph_free(g);
}

/* The folded graph trains: a biased conv whose gradients match finite differences. */
static void test_folded_graph_trains(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 2, 6, 6, &x);
    int c1 = conv(g, "c1", x, 3, 0);
    int bn1 = add1(g, LOP_BATCHNORM, "bn1", c1, NULL);
    add1(g, LOP_BATCHNORM, "bn2", conv(g, "c2", bn1, 4, 1), NULL);
    lop_rng r;
    lop_rng_seed(&r, 9);
    batchnorm_terms(g, bn1, &r);
    int folded;
    assert_int_equal(lop_graph_fold_batchnorm(g, &folded), LOP_OK);
    assert_int_equal(folded, 2);
    assert_non_null(lop_node_grad(g, 1, lop_node_find_param(g, 1, "bias")));
    int shape[4] = {2, 2, 6, 6};
    lop_tensor *in = gradcheck_random(4, shape, 66);
    double worst = gradcheck_graph(g, in, 1, 1e-2, 67);
    assert_true(worst >= 0);
    if (worst > 1e-2)
        fail_msg("worst relative gradient error %g > 1e-2", worst);
    lop_tensor_release(in);
    lop_graph_free(g);
}

static void test_failed_allocations_change_nothing(void **state)
{
    (void)state;
    lop_graph *g = make_graph();
    int shape[4] = {2, 3, 8, 8};
    lop_tensor *x = gradcheck_random(4, shape, 7);
    lop_tensor *want = eval(g, x);
    uint64_t gen = lop_graph_generation(g);
    long k;
    for (k = 1; k < 10000; k++) {
        int folded = -1;
        lop_debug_fail_alloc(k);
        int st = lop_graph_fold_batchnorm(g, &folded);
        lop_debug_fail_alloc(0);
        if (st == LOP_OK) {
            assert_int_equal(folded, 2);
            break;
        }
        assert_int_equal(st, LOP_ENOMEM);
        assert_int_equal(folded, 0);
        assert_int_equal(lop_graph_generation(g), gen);
        assert_names(g, before_names, 14);
        lop_tensor *same = eval(g, x);
        assert_memory_equal(want->data, same->data, want->numel * sizeof *want->data);
        lop_tensor_release(same);
    }
    assert_true(k > 1 && k < 10000);
    lop_tensor *got = eval(g, x);
    assert_close(want, got);
    lop_tensor_release(got);
    lop_tensor_release(want);
    lop_tensor_release(x);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_matches_evaluation),
        cmocka_unit_test(test_fold_at_the_output),
        cmocka_unit_test(test_folded_graph_trains),
        cmocka_unit_test(test_failed_allocations_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
