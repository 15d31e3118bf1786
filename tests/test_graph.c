/*
 * test_graph.c - building graphs: validation errors leave the graph unchanged, failed
 * allocations at every site are clean, parameter and FLOP counts match hand-computed
 * totals, clones compute the same function, a forward pass stopped at a node computes
 * what the whole pass does up to it, and calls out of order are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "internal.h"
#include "lopper.h"

static lop_attrs conv_attrs(int cout, int k, int pad)
{
    lop_attrs a = lop_attrs_default();
    a.out_channels = cout;
    a.kernel_h = a.kernel_w = k;
    a.pad_h = a.pad_w = pad;
    return a;
}

/* input 3x8x8 -> conv 4 (3x3, pad 1) -> bn -> relu -> gap -> linear 5.  Returns the
 * status of the first failing add so allocation-failure tests can use it. */
static int build(lop_graph *g)
{
    lop_attrs a = lop_attrs_input(3, 8, 8), c = conv_attrs(4, 3, 1), fc = lop_attrs_default();
    lop_attrs d = lop_attrs_default();
    fc.out_channels = 5;
    int id = 0, st;
    if ((st = lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &a, &id)) ||
        (st = lop_graph_add(g, LOP_CONV2D, "conv", &id, 1, &c, &id)) ||
        (st = lop_graph_add(g, LOP_BATCHNORM, "bn", &id, 1, &d, &id)) ||
        (st = lop_graph_add(g, LOP_RELU, "relu", &id, 1, &d, &id)) ||
        (st = lop_graph_add(g, LOP_GLOBAL_AVGPOOL, "gap", &id, 1, &d, &id)) ||
        (st = lop_graph_add(g, LOP_LINEAR, "fc", &id, 1, &fc, &id)))
        return st;
    return LOP_OK;
}

static void test_counts_match_hand_computation(void **state)
{
    (void)state;
    lop_graph *g = lop_graph_new(1);
    assert_int_equal(build(g), LOP_OK);
    /* conv 4*3*3*3 + 4 = 112; bn 4 * 4 = 16; fc 4*5 + 5 = 25 */
    assert_int_equal(lop_graph_params(g), 112 + 16 + 25);
    /* conv 2*108*64 = 13824; bn 2*256 = 512; relu 256; gap 64*4 = 256; fc 2*20 = 40 */
    assert_float_equal(lop_graph_flops(g), 13824 + 512 + 256 + 256 + 40, 1e-9);
    int shape[3];
    assert_int_equal(lop_node_shape(g, lop_graph_find(g, "gap"), shape), 1);
    assert_int_equal(shape[0], 4);
    lop_graph_free(g);
}

static void test_invalid_adds_leave_graph_unchanged(void **state)
{
    (void)state;
    lop_graph *g = lop_graph_new(1);
    assert_int_equal(build(g), LOP_OK);
    int n = lop_graph_size(g);
    uint64_t gen = lop_graph_generation(g);
    lop_attrs c = conv_attrs(4, 3, 1), in = lop_attrs_input(1, 4, 4);
    int bad_input = 99, conv = lop_graph_find(g, "conv"), two[2] = {1, 2};
    struct { int st; int got; } cases[] = {
        {LOP_EINVAL, lop_graph_add(g, LOP_CONV2D, "conv", &conv, 1, &c, NULL)},   /* dup */
        {LOP_EINVAL, lop_graph_add(g, LOP_CONV2D, "", &conv, 1, &c, NULL)},
        {LOP_EINVAL, lop_graph_add(g, LOP_CONV2D, "bad name", &conv, 1, &c, NULL)},
        {LOP_EINVAL, lop_graph_add(g, LOP_CONV2D, "c2", &bad_input, 1, &c, NULL)},
        {LOP_EINVAL, lop_graph_add(g, LOP_INPUT, "x2", NULL, 0, &in, NULL)},
        {LOP_EINVAL, lop_graph_add(g, LOP_RELU, "r2", two, 2, NULL, NULL)},
        {LOP_EINVAL, lop_graph_add(g, LOP_ADD, "a2", two, 1, NULL, NULL)},
        {LOP_EINVAL, lop_graph_add(g, (lop_kind)77, "k", &conv, 1, NULL, NULL)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(cases[i].got, cases[i].st);
    }
    assert_true(strlen(lop_errmsg()) > 0);
    assert_int_equal(lop_graph_size(g), n);
    assert_int_equal(lop_graph_generation(g), gen);
    lop_graph_free(g);
}

static void test_every_allocation_failure_is_clean(void **state)
{
    (void)state;
    for (long k = 1;; k++) {
        lop_graph *g = lop_graph_new(1);
        assert_non_null(g);
        lop_debug_fail_alloc(k);
        int st = build(g);
        lop_debug_fail_alloc(0);
        lop_graph_free(g);
        if (st == LOP_OK)
            break;
        assert_int_equal(st, LOP_ENOMEM);
        assert_true(k < 1000);
    }
}

static void test_forward_shape_and_order_errors(void **state)
{
    (void)state;
    lop_graph *g = lop_graph_new(1);
    assert_int_equal(build(g), LOP_OK);
    int wrong[4] = {2, 3, 8, 9};
    lop_tensor *x = lop_tensor_new(4, wrong);
    assert_int_equal(lop_graph_forward(g, x, 0), LOP_ESHAPE);
    assert_non_null(strstr(lop_errmsg(), "3, 8, 8"));
    lop_tensor_release(x);
    int good[4] = {2, 3, 8, 8};
    x = gradcheck_random(4, good, 3);
    assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
    int oshape[2] = {2, 5};
    lop_tensor *d = lop_tensor_new(2, oshape);
    assert_int_equal(lop_graph_backward(g, d), LOP_ESTATE);   /* eval forward only */
    assert_int_equal(lop_graph_forward(g, x, 1), LOP_OK);
    assert_int_equal(lop_graph_backward(g, d), LOP_OK);
    lop_tensor_release(d);
    lop_tensor_release(x);
    lop_graph_free(g);
}

static void test_clone_computes_the_same_function(void **state)
{
    (void)state;
    lop_graph *g = lop_graph_new(5);
    assert_int_equal(build(g), LOP_OK);
    lop_graph *c = lop_graph_clone(g);
    assert_non_null(c);
    int shape[4] = {3, 3, 8, 8};
    lop_tensor *x = gradcheck_random(4, shape, 9);
    assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
    assert_int_equal(lop_graph_forward(c, x, 0), LOP_OK);
    lop_tensor *a = lop_graph_output(g), *b = lop_graph_output(c);
    assert_memory_equal(a->data, b->data, a->numel * sizeof(float));
    /* independent weights: changing the clone leaves the original alone */
    lop_node_param(c, 1, 0)->data[0] += 1.0f;
    assert_true(lop_node_param(g, 1, 0)->data[0] != lop_node_param(c, 1, 0)->data[0]);
    lop_tensor_release(x);
    lop_graph_free(c);
    lop_graph_free(g);
}

static void test_forward_until_stops_at_the_node(void **state)
{
    (void)state;
    lop_graph *g = lop_graph_new(5), *whole = lop_graph_new(5);
    assert_int_equal(build(g), LOP_OK);
    assert_int_equal(build(whole), LOP_OK);
    int shape[4] = {3, 3, 8, 8};
    lop_tensor *x1 = gradcheck_random(4, shape, 9), *x2 = gradcheck_random(4, shape, 10);
    assert_int_equal(lop_graph_forward(g, x1, 0), LOP_OK);
    float logits1[15];
    memcpy(logits1, lop_graph_output(g)->data, sizeof logits1);
    /* Through relu (node 3) on other images: nodes 1-3 as a whole pass node by node
     * computes them (an evaluation pass by lop_graph_forward fuses conv, batchnorm and
     * relu and skips writing the first two), gap and fc still hold the first images'
     * values. */
    assert_int_equal(lop_graph_forward_until(g, x2, 3), LOP_OK);
    assert_int_equal(lop_graph_forward_until(whole, x2, lop_graph_size(whole) - 1), LOP_OK);
    for (int i = 1; i <= 3; i++) {
        lop_tensor *a = lop_node_output(g, i), *b = lop_node_output(whole, i);
        assert_memory_equal(a->data, b->data, a->numel * sizeof(float));
    }
    assert_memory_equal(lop_graph_output(g)->data, logits1, sizeof logits1);
    assert_true(memcmp(lop_graph_output(whole)->data, logits1, sizeof logits1) != 0);
    assert_int_equal(lop_graph_forward_until(g, x2, 6), LOP_EINVAL);
    assert_int_equal(lop_graph_forward_until(g, x2, -1), LOP_EINVAL);
    lop_tensor_release(x1);
    lop_tensor_release(x2);
    lop_graph_free(whole);
    lop_graph_free(g);
}

static void test_timing_reports_every_node(void **state)
{
    (void)state;
    lop_graph *g = lop_graph_new(1);
    assert_int_equal(build(g), LOP_OK);
    double node_ms[8], total;
    assert_int_equal(lop_graph_time(g, 4, 3, node_ms, &total), LOP_OK);
    double sum = 0;
    for (int i = 0; i < lop_graph_size(g); i++) {
        assert_true(node_ms[i] >= 0);
        sum += node_ms[i];
    }
    assert_true(total > 0);
    assert_true(sum > 0);
    /* Each node's fastest pass is at most its time in the fastest whole pass. */
    assert_true(sum <= total * (1 + 1e-9)); /* up to rounding of the ms scaling */
    assert_int_equal(lop_graph_time(g, 0, 3, NULL, &total), LOP_EINVAL);
    lop_graph_free(g);
}

static void test_training_timing_leaves_the_graph_alone(void **state)
{
    (void)state;
    lop_graph *g = lop_graph_new(1);
    assert_int_equal(build(g), LOP_OK);
    int n = lop_graph_size(g);
    lop_tensor *before = lop_tensor_clone(lop_node_param(g, 1, 0));
    double fwd[8], bwd[8], total;
    assert_int_equal(lop_graph_time_train(g, 4, 3, fwd, bwd, &total), LOP_OK);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        assert_true(fwd[i] >= 0 && bwd[i] >= 0);
        sum += fwd[i] + bwd[i];
    }
    /* The step holds every node's forward and backward pass and the SGD update. */
    assert_true(sum > 0 && sum <= total * (1 + 1e-9));
    /* The clone took the steps: the weights are the same bits as before. */
    const lop_tensor *w = lop_node_param(g, 1, 0);
    assert_memory_equal(w->data, before->data, w->numel * sizeof(float));
    assert_int_equal(lop_graph_time_train(g, 4, 0, NULL, NULL, &total), LOP_EINVAL);
    lop_tensor_release(before);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_match_hand_computation),
        cmocka_unit_test(test_training_timing_leaves_the_graph_alone),
        cmocka_unit_test(test_invalid_adds_leave_graph_unchanged),
        cmocka_unit_test(test_every_allocation_failure_is_clean),
        cmocka_unit_test(test_forward_shape_and_order_errors),
        cmocka_unit_test(test_clone_computes_the_same_function),
        cmocka_unit_test(test_forward_until_stops_at_the_node),
        cmocka_unit_test(test_timing_reports_every_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
