/*
 * test_sgd.c - one SGD update (plain, momentum, Nesterov, weight decay) and the
 * learning-rate schedules, checked against values worked out by hand.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lopper.h"

/* input(2) -> linear(1), with weight w and bias b set, gradients set by hand. */
static lop_graph *tiny(float w0, float w1, float b)
{
    lop_graph *g = lop_graph_new(1);
    lop_attrs a = lop_attrs_default();
    int x, l;
    a.in_ndim = 1;
    a.in_shape[0] = 2;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &a, &x), LOP_OK);
    a = lop_attrs_default();
    a.out_channels = 1;
    assert_int_equal(lop_graph_add(g, LOP_LINEAR, "fc", &x, 1, &a, &l), LOP_OK);
    lop_node_param(g, l, 0)->data[0] = w0;
    lop_node_param(g, l, 0)->data[1] = w1;
    lop_node_param(g, l, 1)->data[0] = b;
    return g;
}

static void set_grads(lop_graph *g, float g0, float g1, float gb)
{
    lop_node_grad(g, 1, 0)->data[0] = g0;
    lop_node_grad(g, 1, 0)->data[1] = g1;
    lop_node_grad(g, 1, 1)->data[0] = gb;
}

static void test_plain_step_with_decay(void **state)
{
    (void)state;
    lop_graph *g = tiny(1.0f, -2.0f, 0.5f);
    set_grads(g, 0.1f, 0.2f, 0.3f);
    lop_sgd o = {.lr = 0.1f, .momentum = 0, .weight_decay = 0.01f, .nesterov = 0};
    assert_int_equal(lop_sgd_step(g, &o), LOP_OK);
    /* w0: 1 - 0.1 * (0.1 + 0.01 * 1) = 0.989;  w1: -2 - 0.1 * (0.2 - 0.02) = -2.018;
     * bias is not decayed: 0.5 - 0.1 * 0.3 = 0.47 */
    assert_float_equal(lop_node_param(g, 1, 0)->data[0], 0.989, 1e-6);
    assert_float_equal(lop_node_param(g, 1, 0)->data[1], -2.018, 1e-6);
    assert_float_equal(lop_node_param(g, 1, 1)->data[0], 0.47, 1e-6);
    lop_graph_free(g);
}

static void test_momentum_two_steps(void **state)
{
    (void)state;
    lop_graph *g = tiny(1.0f, 0.0f, 0.0f);
    lop_sgd o = {.lr = 0.5f, .momentum = 0.9f, .weight_decay = 0, .nesterov = 0};
    set_grads(g, 1.0f, 0, 0);
    assert_int_equal(lop_sgd_step(g, &o), LOP_OK);
    /* v = 1, w = 1 - 0.5 = 0.5 */
    assert_float_equal(lop_node_param(g, 1, 0)->data[0], 0.5, 1e-6);
    set_grads(g, 2.0f, 0, 0);
    assert_int_equal(lop_sgd_step(g, &o), LOP_OK);
    /* v = 0.9 * 1 + 2 = 2.9, w = 0.5 - 1.45 = -0.95 */
    assert_float_equal(lop_node_param(g, 1, 0)->data[0], -0.95, 1e-6);
    lop_graph_free(g);
}

static void test_nesterov_two_steps(void **state)
{
    (void)state;
    lop_graph *g = tiny(1.0f, 0.0f, 0.0f);
    lop_sgd o = {.lr = 0.5f, .momentum = 0.9f, .weight_decay = 0.1f, .nesterov = 1};
    set_grads(g, 1.0f, 0, 0);
    assert_int_equal(lop_sgd_step(g, &o), LOP_OK);
    /* d = 1 + 0.1 * 1 = 1.1; v = 1.1; step = 1.1 + 0.9 * 1.1 = 2.09; w = 1 - 1.045 */
    assert_float_equal(lop_node_param(g, 1, 0)->data[0], -0.045, 1e-6);
    set_grads(g, 0.0f, 0, 0);
    assert_int_equal(lop_sgd_step(g, &o), LOP_OK);
    /* d = 0.1 * -0.045 = -0.0045; v = 0.99 - 0.0045 = 0.9855;
     * step = -0.0045 + 0.88695 = 0.88245; w = -0.045 - 0.441225 = -0.486225 */
    assert_float_equal(lop_node_param(g, 1, 0)->data[0], -0.486225, 1e-6);
    lop_graph_free(g);
}

static void test_bad_options_change_nothing(void **state)
{
    (void)state;
    lop_graph *g = tiny(1.0f, 2.0f, 3.0f);
    set_grads(g, 1, 1, 1);
    lop_sgd o = {.lr = 0.1f, .momentum = 1.5f};
    assert_int_equal(lop_sgd_step(g, &o), LOP_EINVAL);
    assert_true(lop_errmsg()[0] != '\0');
    assert_float_equal(lop_node_param(g, 1, 0)->data[1], 2.0, 0);
    lop_graph_free(g);
}

static void test_schedules(void **state)
{
    (void)state;
    assert_float_equal(lop_lr_at(LOP_SCHEDULE_COSINE, 0.1f, 0.0, 10, 1, 0.1f), 0.1, 1e-7);
    assert_float_equal(lop_lr_at(LOP_SCHEDULE_COSINE, 0.1f, 0.5, 10, 1, 0.1f), 0.05, 1e-7);
    assert_float_equal(lop_lr_at(LOP_SCHEDULE_COSINE, 0.1f, 1.0, 10, 1, 0.1f), 0.0, 1e-7);
    /* cos(pi/4) = 0.70710678: 0.1 * (1 + 0.70710678) / 2 */
    assert_float_equal(lop_lr_at(LOP_SCHEDULE_COSINE, 0.1f, 0.25, 10, 1, 0.1f), 0.0853553,
                       1e-6);
    /* step every 3 of 9 epochs by 0.5: epochs 0-2 -> 1, 3-5 -> 0.5, 6-8 -> 0.25 */
    assert_float_equal(lop_lr_at(LOP_SCHEDULE_STEP, 1.0f, 2.9 / 9, 9, 3, 0.5f), 1.0, 1e-7);
    assert_float_equal(lop_lr_at(LOP_SCHEDULE_STEP, 1.0f, 3.0 / 9, 9, 3, 0.5f), 0.5, 1e-7);
    assert_float_equal(lop_lr_at(LOP_SCHEDULE_STEP, 1.0f, 6.5 / 9, 9, 3, 0.5f), 0.25, 1e-7);
    assert_float_equal(lop_lr_at(LOP_SCHEDULE_CONSTANT, 0.3f, 0.7, 9, 3, 0.5f), 0.3, 1e-7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_step_with_decay),
        cmocka_unit_test(test_momentum_two_steps),
        cmocka_unit_test(test_nesterov_two_steps),
        cmocka_unit_test(test_bad_options_change_nothing),
        cmocka_unit_test(test_schedules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
