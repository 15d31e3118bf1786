/*
 * demo_train.c - `make demo` until the Lua recipes exist: trains a small CNN on
 * Fashion-MNIST with the engine alone and prints accuracy, parameters, FLOPs and
 * measured latency - the numbers every pruning result will be reported in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lopper.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static int add(lop_graph *g, lop_kind k, const char *name, int in, lop_attrs a)
{
    int id;
    if (lop_graph_add(g, k, name, &in, 1, &a, &id) != LOP_OK) {
        fprintf(stderr, "demo: %s\n", lop_errmsg());
        exit(1);
    }
    return id;
}

static int block(lop_graph *g, int in, int index, int cout)
{
    char name[32];
    lop_attrs c = lop_attrs_default(), p = lop_attrs_default();
    c.out_channels = cout;
    c.kernel_h = c.kernel_w = 3;
    c.pad_h = c.pad_w = 1;
    c.bias = 0;
    p.kernel_h = p.kernel_w = p.stride_h = p.stride_w = 2;
    snprintf(name, sizeof name, "conv%d", index);
    int h = add(g, LOP_CONV2D, name, in, c);
    snprintf(name, sizeof name, "bn%d", index);
    h = add(g, LOP_BATCHNORM, name, h, lop_attrs_default());
    snprintf(name, sizeof name, "relu%d", index);
    h = add(g, LOP_RELU, name, h, lop_attrs_default());
    snprintf(name, sizeof name, "pool%d", index);
    return add(g, LOP_MAXPOOL, name, h, p);
}

static int progress(void *ud, const lop_progress *p)
{
    (void)ud;
    if (isatty(2))
        fprintf(stderr, "\r%s epoch %d/%d  %ld/%ld  loss %.4f  top1 %.4f   ", p->phase,
                p->epoch, p->epochs, p->done, p->total, p->loss, p->top1);
    return 0;
}

int main(void)
{
    lop_dataset train, test;
    if (lop_dataset_load_idx(FMNIST "train-images-idx3-ubyte.gz",
                             FMNIST "train-labels-idx1-ubyte.gz", &train) != LOP_OK ||
        lop_dataset_load_idx(FMNIST "t10k-images-idx3-ubyte.gz",
                             FMNIST "t10k-labels-idx1-ubyte.gz", &test) != LOP_OK) {
        fprintf(stderr, "demo: %s\n(install the Debian package dataset-fashion-mnist)\n",
                lop_errmsg());
        return 1;
    }
    const float mean = 0.2860f, std = 0.3530f;
    lop_dataset_normalize(&train, &mean, &std, 1);
    lop_dataset_normalize(&test, &mean, &std, 1);

    lop_graph *g = lop_graph_new(1);
    lop_attrs in = lop_attrs_default(), fc = lop_attrs_default();
    in.in_ndim = 3;
    in.in_shape[0] = 1;
    in.in_shape[1] = in.in_shape[2] = 28;
    int h;
    lop_graph_add(g, LOP_INPUT, "input", NULL, 0, &in, &h);
    h = block(g, h, 1, 32);
    h = block(g, h, 2, 64);
    h = add(g, LOP_GLOBAL_AVGPOOL, "gap", h, lop_attrs_default());
    fc.out_channels = 10;
    add(g, LOP_LINEAR, "fc", h, fc);

    lop_train_opts o = lop_train_opts_default();
    o.epochs = 2;
    o.augment.flip = 1;
    o.progress = progress;
    lop_eval tr, te;
    printf("training a small CNN on Fashion-MNIST (60000 images, %d epochs)...\n", o.epochs);
    if (lop_train(g, &train, &o, &tr) != LOP_OK ||
        lop_evaluate(g, &test, 256, progress, NULL, &te) != LOP_OK) {
        fprintf(stderr, "\ndemo: %s\n", lop_errmsg());
        return 1;
    }
    double ms1, ms64;
    lop_graph_time(g, 1, 20, NULL, &ms1);
    lop_graph_time(g, 64, 10, NULL, &ms64);
    if (isatty(2))
        fprintf(stderr, "\n");
    printf("%-22s %10s\n", "test top-1", "");
    printf("  %-20s %9.2f%%\n", "accuracy", 100 * te.top1);
    printf("  %-20s %10zu\n", "params", lop_graph_params(g));
    printf("  %-20s %9.2fM (multiply-add = 2 FLOPs)\n", "FLOPs / image", lop_graph_flops(g) / 1e6);
    printf("  %-20s %9.3f ms\n", "latency, batch 1", ms1);
    printf("  %-20s %9.3f ms\n", "latency, batch 64", ms64);
    lop_graph_free(g);
    lop_dataset_free(&train);
    lop_dataset_free(&test);
    return 0;
}
