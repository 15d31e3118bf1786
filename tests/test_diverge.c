/*
 * test_diverge.c - a training run that diverges (engine/train/rollback.c): lop_train
 * stops with LOP_ENUMERIC and a message that says what happened, and hands the network
 * back byte for byte as it was - weights, batchnorm running statistics and SGD
 * velocities - whether the loss went non-finite during the run or the very last step
 * overflowed the weights; a later run with a sane learning rate then trains as usual.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <float.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "graph_build.h"
#include "internal.h"

/* input 2 x 5 x 5 -> conv (4) -> batchnorm -> relu -> global average -> linear 10 */
static lop_graph *small_net(void)
{
    int x;
    lop_graph *g = new_graph(3, 2, 5, 5, &x);
    int id = add1(g, LOP_BATCHNORM, "bn", conv(g, "c", x, 4, 1), NULL);
    id = add1(g, LOP_GLOBAL_AVGPOOL, "gap", add1(g, LOP_RELU, "r", id, NULL), NULL);
    lop_attrs a = lop_attrs_default();
    a.out_channels = 10;
    add1(g, LOP_LINEAR, "fc", id, &a);
    return g;
}

/* Every parameter and velocity of g, concatenated (velocities absent count as none). */
typedef struct net_state { float *v; size_t n; int velocities; } net_state;

static net_state state_of(const lop_graph *g)
{
    net_state s = {NULL, 0, 0};
    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0;
        for (int i = 0; i < g->n; i++) {
            const lop_node *n = g->nodes[i];
            for (int k = 0; k < n->nparams; k++) {
                size_t count = n->param[k]->numel;
                if (pass)
                    memcpy(s.v + at, n->param[k]->data, count * sizeof(float));
                at += count;
                if (n->velocity[k]) {
                    if (pass)
                        memcpy(s.v + at, n->velocity[k]->data, count * sizeof(float));
                    at += count;
                    s.velocities += pass;
                }
            }
        }
        if (!pass) {
            s.n = at;
            s.v = test_malloc(at * sizeof(float));
        }
    }
    return s;
}

static void assert_same_state(const lop_graph *g, net_state want)
{
    net_state got = state_of(g);
    assert_int_equal(got.n, want.n);
    assert_int_equal(got.velocities, want.velocities);
    assert_memory_equal(got.v, want.v, want.n * sizeof(float));
    test_free(got.v);
}

static void test_a_loss_gone_non_finite_gives_the_network_back(void **state)
{
    (void)state;
    /* two equal nets trained alike (velocities made, running statistics moved) */
    lop_graph *g = small_net(), *twin = small_net();
    lop_dataset d = random_images(32, 2, 5, 5, 3);
    lop_train_opts o = lop_train_opts_default();
    o.batch = 4;
    o.sgd.lr = 0.05f;
    assert_int_equal(lop_train(g, &d, &o, NULL), LOP_OK);
    assert_int_equal(lop_train(twin, &d, &o, NULL), LOP_OK);
    net_state before = state_of(g);
    assert_true(before.velocities > 0);
    assert_same_state(twin, before);

    lop_train_opts wild = o;
    wild.sgd.lr = 1e30f;
    wild.epochs = 3;
    assert_int_equal(lop_train(g, &d, &wild, NULL), LOP_ENUMERIC);
    assert_non_null(strstr(lop_errmsg(), "the loss became"));
    assert_non_null(strstr(lop_errmsg(), "training diverged"));
    assert_non_null(strstr(lop_errmsg(), "back as it was"));
    assert_same_state(g, before);

    /* the failed run left no trace: one more sane epoch gives both nets the same bytes */
    o.seed = 2;
    lop_eval e;
    assert_int_equal(lop_train(g, &d, &o, &e), LOP_OK);
    assert_true(isfinite(e.loss));
    assert_int_equal(lop_train(twin, &d, &o, NULL), LOP_OK);
    net_state after = state_of(twin);
    assert_same_state(g, after);
    assert_true(memcmp(after.v, before.v, before.n * sizeof(float)) != 0);   /* it trained */

    test_free(before.v);
    test_free(after.v);
    lop_dataset_free(&d);
    lop_graph_free(twin);
    lop_graph_free(g);
}

/* One step whose loss is finite (the first weights) but whose update overflows: the
 * fc bias's gradient is about -0.9 (every label 0 of 10), times the largest float. */
static void test_an_overflowing_last_step_is_caught(void **state)
{
    (void)state;
    lop_graph *g = small_net();
    lop_dataset d = random_images(2, 2, 5, 5, 4);
    lop_train_opts o = lop_train_opts_default();
    o.batch = 2;
    o.sgd.lr = FLT_MAX;
    net_state before = state_of(g);
    assert_int_equal(before.velocities, 0);
    assert_int_equal(lop_train(g, &d, &o, NULL), LOP_ENUMERIC);
    assert_non_null(strstr(lop_errmsg(), "the last step"));
    assert_same_state(g, before);   /* and the velocities made by the step are gone */
    test_free(before.v);
    lop_dataset_free(&d);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_loss_gone_non_finite_gives_the_network_back),
        cmocka_unit_test(test_an_overflowing_last_step_is_caught),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
