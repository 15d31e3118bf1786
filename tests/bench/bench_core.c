/*
 * bench_core.c - `make bench` for the engine: the machine's 2-thread sgemm rate, then
 * forward and training-step throughput of two small networks at batch 64 on 1x28x28
 * inputs, with the GFLOP/s they achieve as a fraction of that sgemm rate.  Numbers are
 * reported, never asserted: the machine is shared and noisy, compare within one run.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lopper.h"

#define BATCH 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, lop_errmsg());
    exit(1);
}

static int add(lop_graph *g, lop_kind k, const char *name, const int *in, int nin, lop_attrs a)
{
    int id;
    if (lop_graph_add(g, k, name, in, nin, &a, &id) != LOP_OK)
        die(name);
    return id;
}

static int conv_bn(lop_graph *g, const char *name, int in, int cout, int k, int stride)
{
    char buf[80];
    lop_attrs a = lop_attrs_default();
    a.out_channels = cout;
    a.kernel_h = a.kernel_w = k;
    a.pad_h = a.pad_w = k / 2;
    a.stride_h = a.stride_w = stride;
    a.bias = 0;
    int c = add(g, LOP_CONV2D, name, &in, 1, a);
    snprintf(buf, sizeof buf, "%s_bn", name);
    return add(g, LOP_BATCHNORM, buf, &c, 1, lop_attrs_default());
}

static int relu(lop_graph *g, const char *name, int in)
{
    char buf[80];
    snprintf(buf, sizeof buf, "%s_relu", name);
    return add(g, LOP_RELU, buf, &in, 1, lop_attrs_default());
}

static int input(lop_graph *g)
{
    lop_attrs a = lop_attrs_default();
    a.in_ndim = 3;
    a.in_shape[0] = 1;
    a.in_shape[1] = a.in_shape[2] = 28;
    return add(g, LOP_INPUT, "input", NULL, 0, a);
}

static void head(lop_graph *g, int h)
{
    lop_attrs fc = lop_attrs_default();
    fc.out_channels = 10;
    h = add(g, LOP_GLOBAL_AVGPOOL, "gap", &h, 1, lop_attrs_default());
    add(g, LOP_LINEAR, "fc", &h, 1, fc);
}

static lop_graph *vgg_small(void)
{
    static const int widths[] = {32, 32, 0, 64, 64, 0, 128, 128, 0};
    lop_graph *g = lop_graph_new(1);
    int h = input(g), conv = 0, pool = 0;
    char name[32];
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        if (widths[i] == 0) {
            lop_attrs p = lop_attrs_default();
            p.kernel_h = p.kernel_w = p.stride_h = p.stride_w = 2;
            snprintf(name, sizeof name, "pool%d", ++pool);
            h = add(g, LOP_MAXPOOL, name, &h, 1, p);
            continue;
        }
        snprintf(name, sizeof name, "conv%d", ++conv);
        h = relu(g, name, conv_bn(g, name, h, widths[i], 3, 1));
    }
    head(g, h);
    return g;
}

static lop_graph *resnet_small(void)
{
    lop_graph *g = lop_graph_new(1);
    int h = relu(g, "conv1", conv_bn(g, "conv1", input(g), 16, 3, 1));
    int width = 16;
    char name[64];
    for (int stage = 1; stage <= 3; stage++) {
        int cout = 16 << (stage - 1);
        for (int b = 1; b <= 3; b++) {
            int stride = (stage > 1 && b == 1) ? 2 : 1;
            snprintf(name, sizeof name, "s%db%d_conv1", stage, b);
            int y = relu(g, name, conv_bn(g, name, h, cout, 3, stride));
            snprintf(name, sizeof name, "s%db%d_conv2", stage, b);
            y = conv_bn(g, name, y, cout, 3, 1);
            int shortcut = h;
            if (stride != 1 || cout != width) {
                snprintf(name, sizeof name, "s%db%d_down", stage, b);
                shortcut = conv_bn(g, name, h, cout, 1, stride);
            }
            int both[2] = {y, shortcut};
            snprintf(name, sizeof name, "s%db%d_add", stage, b);
            h = relu(g, name, add(g, LOP_ADD, name, both, 2, lop_attrs_default()));
            width = cout;
        }
    }
    head(g, h);
    return g;
}

static double sgemm_gflops(void)
{
    const int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++)
        a[i] = b[i] = (float)(i % 7) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    int reps = 0;
    double t0 = now(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        reps++;
    } while ((t = now() - t0) < 2.0);
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * (double)n * reps / t / 1e9;
}

/* Where a forward pass spends its time, by layer kind (the -v option). */
static void kind_breakdown(lop_graph *g)
{
    double node_ms[256], total, by_kind[LOP_KIND_COUNT] = {0};
    if (lop_graph_size(g) > 256 || lop_graph_time(g, BATCH, 10, node_ms, &total) != LOP_OK)
        die("time");
    for (int i = 0; i < lop_graph_size(g); i++)
        by_kind[lop_node_kind(g, i)] += node_ms[i];
    printf("    forward %.2f ms at batch %d:", total, BATCH);
    for (int k = 0; k < LOP_KIND_COUNT; k++)
        if (by_kind[k] > 0)
            printf(" %s %.0f%%", lop_kind_name((lop_kind)k), 100 * by_kind[k] / total);
    printf("\n");
}

static void bench_net(const char *name, lop_graph *g, double peak)
{
    int shape[4] = {BATCH, 1, 28, 28}, oshape[2] = {BATCH, 10};
    lop_tensor *x = lop_tensor_new(4, shape), *d = lop_tensor_new(2, oshape);
    int labels[BATCH];
    lop_rng r;
    lop_rng_seed(&r, 3);
    for (size_t i = 0; i < x->numel; i++)
        x->data[i] = (float)lop_rng_normal(&r);
    for (int i = 0; i < BATCH; i++)
        labels[i] = i % 10;
    double flops = lop_graph_flops(g);
    lop_sgd sgd = {0.01f, 0.9f, 5e-4f, 1};

    if (lop_graph_forward(g, x, 0) != LOP_OK)
        die(name);
    int reps = 0;
    double t0 = now(), t;
    do {
        if (lop_graph_forward(g, x, 0) != LOP_OK)
            die(name);
        reps++;
    } while ((t = now() - t0) < 3.0);
    double fwd = BATCH * reps / t;

    reps = 0;
    t0 = now();
    do {
        double loss;
        if (lop_graph_forward(g, x, 1) != LOP_OK ||
            lop_softmax_xent(lop_graph_output(g), labels, &loss, d, NULL) != LOP_OK)
            die(name);
        lop_graph_zero_grad(g);
        if (lop_graph_backward(g, d) != LOP_OK || lop_sgd_step(g, &sgd) != LOP_OK)
            die(name);
        reps++;
    } while ((t = now() - t0) < 3.0);
    double train = BATCH * reps / t;
    /* a training step costs about three forward passes (forward, dX, dW) */
    double fwd_gf = flops * fwd / 1e9, train_gf = 3 * flops * train / 1e9;
    printf("%-13s %7.1f MFLOP %9.0f %8.1f %5.0f%% %9.0f %8.1f %5.0f%%\n", name, flops / 1e6, fwd,
           fwd_gf, 100 * fwd_gf / peak, train, train_gf, 100 * train_gf / peak);
    lop_tensor_release(x);
    lop_tensor_release(d);
}

int main(int argc, char **argv)
{
    int verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    double peak = sgemm_gflops();
    printf("sgemm 1024^3 (OpenBLAS, %d threads): %.1f GFLOP/s\n", openblas_get_num_threads(),
           peak);
    printf("batch %d, 1x28x28 inputs; FLOPs count a multiply-add as 2; training GFLOP/s "
           "assume 3x forward FLOPs\n", BATCH);
    printf("%-13s %13s %9s %8s %6s %9s %8s %6s\n", "network", "fwd/image", "fwd img/s",
           "GFLOP/s", "of gemm", "train img/s", "GFLOP/s", "of gemm");
    lop_graph *v = vgg_small(), *r = resnet_small();
    bench_net("vgg-small", v, peak);
    if (verbose)
        kind_breakdown(v);
    bench_net("resnet-small", r, peak);
    if (verbose)
        kind_breakdown(r);
    lop_graph_free(v);
    lop_graph_free(r);
    return 0;
}
