/*
 * test_train_fmnist.c - the whole engine at work: a small CNN trained from scratch on a
 * 10,000-image subset of Fashion-MNIST for three epochs must reach 80% top-1 on the
 * full 10,000-image test set.  Seeded, so the run is repeatable; an accuracy check,
 * not a timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <cmocka.h>

#include "lopper.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static int add(lop_graph *g, lop_kind k, const char *name, int in, lop_attrs a)
{
    int id;
    int st = lop_graph_add(g, k, name, &in, 1, &a, &id);
    if (st != LOP_OK)
        fail_msg("%s: %s", name, lop_errmsg());
    return id;
}

static int conv_bn_relu(lop_graph *g, const char *name, int in, int cout)
{
    char buf[32];
    lop_attrs a = lop_attrs_default();
    a.out_channels = cout;
    a.kernel_h = a.kernel_w = 3;
    a.pad_h = a.pad_w = 1;
    a.bias = 0;
    snprintf(buf, sizeof buf, "%s", name);
    int c = add(g, LOP_CONV2D, buf, in, a);
    snprintf(buf, sizeof buf, "%s_bn", name);
    int b = add(g, LOP_BATCHNORM, buf, c, lop_attrs_default());
    snprintf(buf, sizeof buf, "%s_relu", name);
    return add(g, LOP_RELU, buf, b, lop_attrs_default());
}

static lop_graph *small_cnn(void)
{
    lop_graph *g = lop_graph_new(2024);
    lop_attrs a = lop_attrs_default();
    int x;
    a.in_ndim = 3;
    a.in_shape[0] = 1;
    a.in_shape[1] = a.in_shape[2] = 28;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "input", NULL, 0, &a, &x), LOP_OK);
    lop_attrs pool = lop_attrs_default();
    pool.kernel_h = pool.kernel_w = 2;
    pool.stride_h = pool.stride_w = 2;
    int h = conv_bn_relu(g, "conv1", x, 16);
    h = add(g, LOP_MAXPOOL, "pool1", h, pool);
    h = conv_bn_relu(g, "conv2", h, 32);
    h = add(g, LOP_MAXPOOL, "pool2", h, pool);
    h = add(g, LOP_FLATTEN, "flatten", h, lop_attrs_default());
    lop_attrs fc = lop_attrs_default();
    fc.out_channels = 10;
    add(g, LOP_LINEAR, "fc", h, fc);
    return g;
}

static void test_small_cnn_learns_fashion_mnist(void **state)
{
    (void)state;
    if (access(FMNIST "train-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    lop_dataset train_all, train, test;
    assert_int_equal(lop_dataset_load_idx(FMNIST "train-images-idx3-ubyte.gz",
                                          FMNIST "train-labels-idx1-ubyte.gz", &train_all),
                     LOP_OK);
    assert_int_equal(lop_dataset_load_idx(FMNIST "t10k-images-idx3-ubyte.gz",
                                          FMNIST "t10k-labels-idx1-ubyte.gz", &test),
                     LOP_OK);
    assert_int_equal(lop_dataset_subset(&train_all, 0, 10000, &train), LOP_OK);
    lop_dataset_free(&train_all);
    const float mean = 0.2860f, std = 0.3530f;
    assert_int_equal(lop_dataset_normalize(&train, &mean, &std, 1), LOP_OK);
    assert_int_equal(lop_dataset_normalize(&test, &mean, &std, 1), LOP_OK);

    lop_graph *g = small_cnn();
    lop_train_opts o = lop_train_opts_default();
    o.epochs = 3;
    o.batch = 32;
    o.sgd.lr = 0.02f;
    o.seed = 7;
    lop_eval tr, te;
    assert_int_equal(lop_train(g, &train, &o, &tr), LOP_OK);
    assert_int_equal(lop_evaluate(g, &test, 256, NULL, NULL, &te), LOP_OK);
    print_message("train top1 %.4f loss %.4f; test top1 %.4f loss %.4f\n", tr.top1, tr.loss,
                  te.top1, te.loss);
    assert_int_equal(te.n, 10000);
    assert_true(te.top1 >= 0.80);
    lop_graph_free(g);
    lop_dataset_free(&train);
    lop_dataset_free(&test);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_cnn_learns_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
