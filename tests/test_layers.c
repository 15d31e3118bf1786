/*
 * test_layers.c - every layer kind other than input and conv2d: backward passes
 * against central finite differences (gradcheck_graph), forward results against
 * hand-computed values, dropout's statistics, FLOP counts, and shape/attribute
 * errors that must leave the graph unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../engine/internal.h"
#include "gradcheck.h"
#include "graph_build.h"
#include "lopper.h"

#define TOL 1e-2   /* worst relative error of float32 central differences */

static int linear(lop_graph *g, const char *name, int in, int out, int bias)
{
    lop_attrs a = lop_attrs_default();
    a.out_channels = out;
    a.bias = bias;
    return add1(g, LOP_LINEAR, name, in, &a);
}

static lop_attrs pool_attrs(int k, int stride, int pad)
{
    lop_attrs a = lop_attrs_default();
    a.kernel_h = a.kernel_w = k;
    a.stride_h = a.stride_w = stride;
    a.pad_h = a.pad_w = pad;
    return a;
}

/* Zeros: top rows above, bottom below, left columns before, right after. */
static lop_attrs pad_attrs(int top, int bottom, int left, int right)
{
    lop_attrs a = lop_attrs_default();
    a.pad_h = top;
    a.pad_bottom = bottom;
    a.pad_w = left;
    a.pad_right = right;
    return a;
}

static lop_tensor *tensor(int ndim, const int *shape, const float *values)
{
    lop_tensor *t = lop_tensor_new(ndim, shape);
    assert_non_null(t);
    memcpy(t->data, values, t->numel * sizeof(float));
    return t;
}

/* Batch of `batch` samples of the graph's input shape, uniform in [-1, 1). */
static lop_tensor *random_input(const lop_graph *g, int batch, uint64_t seed)
{
    int shape[LOP_MAX_DIMS];
    shape[0] = batch;
    int nd = lop_node_shape(g, 0, shape + 1) + 1;
    lop_tensor *x = gradcheck_random(nd, shape, seed);
    assert_non_null(x);
    return x;
}

/* Input whose entries are a shuffled grid 0.02 apart, so a finite-difference step
 * never changes which entry of a pooling window is the largest. */
static lop_tensor *distinct_input(const lop_graph *g, int batch, uint64_t seed)
{
    lop_tensor *x = random_input(g, batch, seed);
    int *perm = malloc(x->numel * sizeof *perm);
    assert_non_null(perm);
    lop_rng r;
    lop_rng_seed(&r, seed);
    lop_shuffle(perm, (int)x->numel, &r);
    for (size_t i = 0; i < x->numel; i++)
        x->data[i] = 0.02f * ((float)perm[i] - (float)x->numel / 2);
    free(perm);
    return x;
}

/* Gradient check of the whole graph at a random input in the given mode. */
static void check(lop_graph *g, lop_tensor *x, int train)
{
    double worst = gradcheck_graph(g, x, train, 1e-2, 99);
    assert_true(worst >= 0);
    if (worst > TOL)
        fail_msg("worst relative gradient error %g > %g", worst, TOL);
    lop_tensor_release(x);
    lop_graph_free(g);
}

/* check() on gradient buffers an earlier pass left full of NaN, after asserting that a
 * pass on them leaves every gradient finite (check() only samples entries). */
static void check_poisoned(lop_graph *g, lop_tensor *x)
{
    assert_int_equal(gradcheck_poisoned(g, x, 98), 1);
    check(g, x, 1);
}

/* ---- gradient checks ---- */

static void test_grad_batchnorm_maps(void **state)
{
    (void)state;
    int x, c, bn;
    lop_graph *g = new_graph(3, 2, 5, 5, &x);
    c = conv(g, "conv", x, 3, 0);
    bn = add1(g, LOP_BATCHNORM, "bn", c, NULL);
    lop_tensor *gamma = lop_node_param(g, bn, 0), *beta = lop_node_param(g, bn, 1);
    const float gv[3] = {1.5f, -0.7f, 0.3f}, bv[3] = {0.2f, -0.4f, 1.0f};
    memcpy(gamma->data, gv, sizeof gv);
    memcpy(beta->data, bv, sizeof bv);
    check(g, random_input(g, 3, 1), 1);
}

static void test_grad_batchnorm_features(void **state)
{
    (void)state;
    int x, fc, bn;
    lop_graph *g = new_graph(1, 6, 0, 0, &x);
    fc = linear(g, "fc", x, 4, 0);
    bn = add1(g, LOP_BATCHNORM, "bn", fc, NULL);
    lop_node_param(g, bn, 0)->data[1] = 2.0f;
    lop_node_param(g, bn, 1)->data[2] = -1.0f;
    check(g, random_input(g, 5, 2), 1);
}

static void test_grad_relu(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 2, 4, 4, &x);
    add1(g, LOP_RELU, "relu", x, NULL);
    /* keep inputs a step away from the kink at 0, with both signs present */
    lop_tensor *in = random_input(g, 3, 3);
    for (size_t i = 0; i < in->numel; i++)
        in->data[i] += in->data[i] >= 0 ? 0.1f : -0.1f;
    check(g, in, 1);
}

/* Inputs spread over [-2, 8), kept a step away from both kinks (0 and 6). */
static void test_grad_relu6(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 2, 5, 3, &x);
    add1(g, LOP_RELU6, "relu6", x, NULL);
    lop_tensor *in = random_input(g, 3, 30);
    for (size_t i = 0; i < in->numel; i++) {
        float v = 5.0f * in->data[i] + 3.0f;
        if (fabsf(v) < 0.1f || fabsf(v - 6.0f) < 0.1f)
            v += 0.2f;
        in->data[i] = v;
    }
    check(g, in, 1);
}

/* Asymmetric amounts, one side left at zero, under a conv so parameters see it too. */
static void test_grad_pad(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 2, 5, 4, &x);
    lop_attrs a = pad_attrs(1, 2, 0, 3);
    int p = add1(g, LOP_PAD, "pad", x, &a);
    conv(g, "conv", p, 3, 1);
    check(g, random_input(g, 2, 31), 1);

    g = new_graph(3, 3, 1, 1, &x);
    a = pad_attrs(2, 0, 1, 1);
    add1(g, LOP_PAD, "pad", x, &a);
    check(g, random_input(g, 3, 32), 1);
}

static void test_grad_maxpool_stride2(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 2, 6, 6, &x);
    lop_attrs a = pool_attrs(2, 2, 0);
    add1(g, LOP_MAXPOOL, "pool", x, &a);
    check(g, distinct_input(g, 2, 4), 1);
}

static void test_grad_maxpool_overlapping_padded(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 2, 7, 7, &x);
    lop_attrs a = pool_attrs(3, 2, 1);
    add1(g, LOP_MAXPOOL, "pool", x, &a);
    check(g, distinct_input(g, 2, 5), 1);
}

static void test_grad_avgpool(void **state)
{
    (void)state;
    int x, c;
    lop_graph *g = new_graph(3, 2, 6, 6, &x);
    c = conv(g, "conv", x, 3, 1);
    lop_attrs a = pool_attrs(3, 2, 1);
    add1(g, LOP_AVGPOOL, "pool", c, &a);
    check(g, random_input(g, 2, 6), 1);

    g = new_graph(3, 2, 5, 4, &x);
    a = pool_attrs(2, 2, 0);
    a.kernel_w = 1;
    a.stride_w = 1;
    add1(g, LOP_AVGPOOL, "pool", x, &a);
    check(g, random_input(g, 2, 7), 1);
}

/* Ceil mode: windows hanging off the bottom and right edges (7 -> 4 rows with a 3x3
 * window, stride 2, pad 1; 5 -> 3 columns of 2x2 windows, the last one a single
 * column). */
static void test_grad_maxpool_ceil(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 2, 8, 7, &x);
    lop_attrs a = pool_attrs(3, 2, 1);
    a.ceil_mode = 1;
    add1(g, LOP_MAXPOOL, "pool", x, &a);
    check(g, distinct_input(g, 2, 33), 1);

    g = new_graph(3, 2, 5, 5, &x);
    a = pool_attrs(2, 2, 0);
    a.ceil_mode = 1;
    add1(g, LOP_MAXPOOL, "pool", x, &a);
    check(g, distinct_input(g, 2, 34), 1);
}

/* Averages with every divisor rule: ceil mode counting padding, ceil mode and floor
 * mode excluding it, each after a conv so the parameters' gradients go through. */
static void test_grad_avgpool_ceil_and_exclude_pad(void **state)
{
    (void)state;
    static const int modes[][2] = {{1, 0}, {1, 1}, {0, 1}};   /* ceil_mode, exclude_pad */
    for (int m = 0; m < 3; m++) {
        int x, c;
        lop_graph *g = new_graph(3, 2, 6, 7, &x);
        c = conv(g, "conv", x, 3, 1);
        lop_attrs a = pool_attrs(3, 2, 1);
        a.ceil_mode = modes[m][0];
        a.exclude_pad = modes[m][1];
        add1(g, LOP_AVGPOOL, "pool", c, &a);
        check(g, random_input(g, 2, 35 + m), 1);
    }
}

static void test_grad_global_avgpool(void **state)
{
    (void)state;
    int x, c;
    lop_graph *g = new_graph(3, 2, 4, 5, &x);
    c = conv(g, "conv", x, 3, 1);
    add1(g, LOP_GLOBAL_AVGPOOL, "gap", c, NULL);
    check(g, random_input(g, 3, 8), 1);
}

static void test_grad_flatten_linear(void **state)
{
    (void)state;
    int x, f;
    lop_graph *g = new_graph(3, 2, 3, 3, &x);
    f = add1(g, LOP_FLATTEN, "flat", x, NULL);
    linear(g, "fc", f, 4, 1);
    check(g, random_input(g, 3, 9), 1);
}

static void test_grad_linear_with_and_without_bias(void **state)
{
    (void)state;
    for (int bias = 0; bias <= 1; bias++) {
        int x, fc;
        lop_graph *g = new_graph(1, 7, 0, 0, &x);
        fc = linear(g, "fc", x, 5, bias);
        assert_int_equal(lop_node_nparams(g, fc), 1 + bias);
        assert_int_equal(lop_node_params(g, fc), 35 + 5 * bias);
        if (bias) {
            /* a nonzero bias, so the forward check below sees it */
            lop_tensor *b = lop_node_param(g, fc, 1);
            for (int o = 0; o < 5; o++)
                b->data[o] = 0.1f * (float)(o + 1);
        }
        /* forward against a naive product */
        lop_tensor *in = random_input(g, 4, 10);
        assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
        const float *w = lop_node_param(g, fc, 0)->data, *y = lop_graph_output(g)->data;
        for (int b = 0; b < 4; b++)
            for (int o = 0; o < 5; o++) {
                double s = bias ? lop_node_param(g, fc, 1)->data[o] : 0.0;
                for (int i = 0; i < 7; i++)
                    s += (double)w[o * 7 + i] * in->data[b * 7 + i];
                assert_float_equal(y[b * 5 + o], s, 1e-5);
            }
        check(g, in, 1);
    }
}

static void test_grad_add(void **state)
{
    (void)state;
    int x, ins[3];
    lop_graph *g = new_graph(3, 2, 4, 4, &x);
    ins[0] = conv(g, "a", x, 2, 1);
    ins[1] = conv(g, "b", x, 2, 1);
    ins[2] = x;   /* the identity shortcut of a residual block */
    assert_int_equal(lop_graph_add(g, LOP_ADD, "sum", ins, 3, NULL, NULL), LOP_OK);
    check(g, random_input(g, 2, 11), 1);
}

/* More inputs than add's backward takes in one pass (32): 40 inputs, x and two
 * linears given many times over, so each input's gradient is written by its first
 * copy and added to by copies in the same and in later passes. */
static void test_grad_add_many_inputs(void **state)
{
    (void)state;
    int x, ins[40];
    lop_graph *g = new_graph(1, 5, 0, 0, &x);
    int a = linear(g, "a", x, 5, 1), b = linear(g, "b", x, 5, 0);
    for (int k = 0; k < 40; k++)
        ins[k] = k % 3 == 0 ? x : k % 3 == 1 ? a : b;
    assert_int_equal(lop_graph_add(g, LOP_ADD, "sum", ins, 40, NULL, NULL), LOP_OK);
    /* by hand: a's and b's gradients are dy times their number of copies (x's also
     * gets the linears' share: finite differences check it) */
    lop_tensor *in = random_input(g, 3, 18);
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    lop_tensor *dy = gradcheck_random(2, lop_graph_output(g)->shape, 19);
    assert_non_null(dy);
    assert_int_equal(lop_graph_backward(g, dy), LOP_OK);
    const int copies[2] = {13, 13}, node[2] = {a, b};
    for (int m = 0; m < 2; m++) {
        const lop_tensor *d = g->nodes[node[m]]->dout;
        for (size_t i = 0; i < d->numel; i++)
            assert_float_equal(d->data[i], copies[m] * dy->data[i], 1e-5);
    }
    lop_tensor_release(dy);
    check(g, in, 1);
}

/* Backward writes each gradient on its first use and adds into it after: an input
 * read twice by one add, a node read by an add and a batchnorm (the add runs its
 * backward first, the batchnorm adds), and a branch nothing reads (its gradient must
 * be zero, not stale). */
static void test_grad_shared_and_unread_outputs(void **state)
{
    (void)state;
    int x, ins[2];
    lop_graph *g = new_graph(3, 2, 4, 4, &x);
    int c = conv(g, "c", x, 3, 1);
    int r = add1(g, LOP_RELU, "r", c, NULL);
    conv(g, "unread", r, 2, 1);
    ins[0] = ins[1] = r;
    int twice;
    assert_int_equal(lop_graph_add(g, LOP_ADD, "twice", ins, 2, NULL, &twice), LOP_OK);
    int bn = add1(g, LOP_BATCHNORM, "bn", r, NULL);
    ins[0] = twice;
    ins[1] = bn;
    assert_int_equal(lop_graph_add(g, LOP_ADD, "sum", ins, 2, NULL, NULL), LOP_OK);
    lop_tensor *x0 = random_input(g, 3, 21);
    lop_tensor *dy = lop_tensor_new(4, (int[]){3, 3, 4, 4});
    assert_non_null(dy);
    lop_tensor_fill(dy, 1.0f);
    /* Leave NaN in the unread branch's gradient buffer: the next backward pass must
     * treat it as zero. */
    int unread = lop_graph_find(g, "unread");
    assert_int_equal(lop_graph_forward(g, x0, 1), LOP_OK);
    assert_int_equal(lop_graph_backward(g, dy), LOP_OK);
    lop_tensor_fill(g->nodes[unread]->dout, NAN);
    lop_graph_zero_grad(g);
    assert_int_equal(lop_graph_forward(g, x0, 1), LOP_OK);
    assert_int_equal(lop_graph_backward(g, dy), LOP_OK);
    const lop_tensor *dw = lop_node_grad(g, unread, 0);
    for (size_t i = 0; i < dw->numel; i++)
        assert_true(dw->data[i] == 0.0f);
    lop_tensor_release(dy);
    check(g, x0, 1);
}

static void test_grad_concat(void **state)
{
    (void)state;
    int x, ins[3];
    lop_graph *g = new_graph(3, 2, 4, 4, &x);
    ins[0] = conv(g, "a", x, 3, 1);
    ins[1] = conv(g, "b", x, 1, 1);
    ins[2] = x;
    assert_int_equal(lop_graph_add(g, LOP_CONCAT, "cat", ins, 3, NULL, NULL), LOP_OK);
    int shape[3];
    assert_int_equal(lop_node_shape(g, 3, shape), 3);
    assert_int_equal(shape[0], 6);
    check(g, random_input(g, 2, 12), 1);

    g = new_graph(1, 5, 0, 0, &x);
    ins[0] = linear(g, "a", x, 3, 1);
    ins[1] = linear(g, "b", x, 4, 1);
    assert_int_equal(lop_graph_add(g, LOP_CONCAT, "cat", ins, 2, NULL, NULL), LOP_OK);
    assert_int_equal(lop_node_shape(g, 3, shape), 1);
    assert_int_equal(shape[0], 7);
    check(g, random_input(g, 3, 13), 1);
}

/* Concat writes the gradients it reaches first and adds into the others: x and a
 * (given twice: stored, then added) are first reached by cat; b by conv t, which
 * runs its backward before cat; x is then added to by convs a and b.  Then a
 * concat of 36 inputs, more than one pass of its backward takes (32). */
static void test_grad_concat_written_or_added(void **state)
{
    (void)state;
    int x, ins[36];
    lop_graph *g = new_graph(3, 2, 4, 4, &x);
    int a = conv(g, "a", x, 2, 1), b = conv(g, "b", x, 2, 1);
    ins[0] = x;
    ins[1] = ins[2] = a;
    ins[3] = b;
    int cat;
    assert_int_equal(lop_graph_add(g, LOP_CONCAT, "cat", ins, 4, NULL, &cat), LOP_OK);
    ins[0] = cat;
    ins[1] = conv(g, "t", b, 8, 1);
    assert_int_equal(lop_graph_add(g, LOP_ADD, "sum", ins, 2, NULL, NULL), LOP_OK);
    check_poisoned(g, random_input(g, 2, 40));

    g = new_graph(1, 5, 0, 0, &x);
    a = linear(g, "a", x, 3, 1);
    b = linear(g, "b", x, 2, 0);
    for (int k = 0; k < 36; k++)
        ins[k] = k % 3 == 0 ? x : k % 3 == 1 ? a : b;
    assert_int_equal(lop_graph_add(g, LOP_CONCAT, "cat", ins, 36, NULL, NULL), LOP_OK);
    check_poisoned(g, random_input(g, 3, 41));
}

/* Global average pooling writes c's gradient (g1 runs its backward first), flatten
 * and g0 add into it; flatten writes d's gradient (fd runs first) and gd adds. */
static void test_grad_global_avgpool_written_or_added(void **state)
{
    (void)state;
    int x, ins[5];
    lop_graph *g = new_graph(3, 2, 4, 5, &x);
    int c = conv(g, "c", x, 3, 1), d = conv(g, "d", x, 2, 1);
    ins[0] = add1(g, LOP_GLOBAL_AVGPOOL, "g0", c, NULL);
    ins[1] = add1(g, LOP_FLATTEN, "f", c, NULL);
    ins[2] = add1(g, LOP_GLOBAL_AVGPOOL, "g1", c, NULL);
    ins[3] = add1(g, LOP_GLOBAL_AVGPOOL, "gd", d, NULL);
    ins[4] = add1(g, LOP_FLATTEN, "fd", d, NULL);
    assert_int_equal(lop_graph_add(g, LOP_CONCAT, "cat", ins, 5, NULL, NULL), LOP_OK);
    check_poisoned(g, random_input(g, 3, 42));
}

/* Pools and pad sharing one input x of (c, h, w) maps, each flattened into one concat:
 * 2x2 max windows of stride 2 (on odd sizes the last row and column stay out), 3x3 max
 * windows of stride 2 in ceil mode and 3x3 averages of stride 2, both padded by 1, and
 * an asymmetric pad.  Backward runs the consumer added last first: it stores x's
 * gradient, the others add into it; `first` picks which kind comes last. */
enum { SHARED_KINDS = 4 };
static lop_graph *pools_and_pad_sharing_x(int c, int h, int w, int first)
{
    const lop_kind kinds[SHARED_KINDS] = {LOP_MAXPOOL, LOP_MAXPOOL, LOP_AVGPOOL, LOP_PAD};
    lop_attrs a[SHARED_KINDS] = {pool_attrs(2, 2, 0), pool_attrs(3, 2, 1), pool_attrs(3, 2, 1),
                                 pad_attrs(1, 0, 2, 1)};
    a[1].ceil_mode = 1;
    int x, ins[SHARED_KINDS];
    lop_graph *g = new_graph(3, c, h, w, &x);
    for (int i = 1; i <= SHARED_KINDS; i++) {
        int k = (first + i) % SHARED_KINDS;
        char name[8], flat[8];
        snprintf(name, sizeof name, "n%d", k);
        snprintf(flat, sizeof flat, "f%d", k);
        ins[i - 1] = add1(g, LOP_FLATTEN, flat, add1(g, kinds[k], name, x, &a[k]), NULL);
    }
    assert_int_equal(lop_graph_add(g, LOP_CONCAT, "cat", ins, SHARED_KINDS, NULL, NULL),
                     LOP_OK);
    return g;
}

/* Each kind writing x's gradient once (on NaN-filled buffers) and adding into it in
 * the other orders, against finite differences. */
static void test_grad_pools_and_pad_written_or_added(void **state)
{
    (void)state;
    for (int first = 0; first < SHARED_KINDS; first++) {
        lop_graph *g = pools_and_pad_sharing_x(2, 7, 7, first);
        check_poisoned(g, distinct_input(g, 2, 43 + first));
    }
}

static void test_grad_dropout(void **state)
{
    (void)state;
    int x, fc;
    lop_graph *g = new_graph(1, 6, 0, 0, &x);
    fc = linear(g, "fc", x, 8, 1);
    lop_attrs a = lop_attrs_default();
    a.p = 0.3f;
    add1(g, LOP_DROPOUT, "drop", fc, &a);
    check(g, random_input(g, 4, 14), 1);
}

static void test_param_grads_accumulate(void **state)
{
    (void)state;
    int x, fc;
    lop_graph *g = new_graph(1, 5, 0, 0, &x);
    fc = linear(g, "fc", x, 4, 1);
    add1(g, LOP_BATCHNORM, "bn", fc, NULL);
    lop_tensor *in = random_input(g, 3, 16);
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    lop_tensor *r = gradcheck_random(2, lop_graph_output(g)->shape, 17);
    lop_graph_zero_grad(g);
    assert_int_equal(lop_graph_backward(g, r), LOP_OK);
    lop_tensor *once[4];
    int k = 0;
    for (int id = 1; id < lop_graph_size(g); id++)
        for (int p = 0; p < lop_node_nparams(g, id); p++)
            if (lop_node_grad(g, id, p))
                assert_non_null(once[k++] = lop_tensor_clone(lop_node_grad(g, id, p)));
    assert_int_equal(k, 4);   /* fc weight, bias; bn gamma, beta */
    assert_int_equal(lop_graph_backward(g, r), LOP_OK);
    k = 0;
    for (int id = 1; id < lop_graph_size(g); id++)
        for (int p = 0; p < lop_node_nparams(g, id); p++) {
            const lop_tensor *gr = lop_node_grad(g, id, p);
            if (!gr)
                continue;
            for (size_t i = 0; i < gr->numel; i++)
                assert_float_equal(gr->data[i], 2.0f * once[k]->data[i],
                                   1e-6 + 1e-5 * fabsf(once[k]->data[i]));
            lop_tensor_release(once[k++]);
        }
    lop_tensor_release(r);
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* ---- forward values ---- */

static void test_maxpool_forward_by_hand(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 1, 4, 4, &x);
    lop_attrs a2 = pool_attrs(2, 2, 0), a3 = pool_attrs(3, 2, 1);
    int p2 = add1(g, LOP_MAXPOOL, "p2", x, &a2);
    add1(g, LOP_MAXPOOL, "p3", x, &a3);
    /* all negative: a padded cell taken as 0 would win every border window */
    float v[16];
    for (int i = 0; i < 16; i++)
        v[i] = -(float)(i + 1);
    int shape[4] = {1, 1, 4, 4};
    lop_tensor *in = tensor(4, shape, v);
    assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
    const float want2[4] = {-1, -3, -9, -11}, want3[4] = {-1, -2, -5, -6};
    const float *y2 = lop_node_output(g, p2)->data, *y3 = lop_graph_output(g)->data;
    int oshape[3];
    assert_int_equal(lop_node_shape(g, p2 + 1, oshape), 3);
    assert_int_equal(oshape[1], 2);
    assert_int_equal(oshape[2], 2);
    for (int i = 0; i < 4; i++) {
        assert_float_equal(y2[i], want2[i], 0);
        assert_float_equal(y3[i], want3[i], 0);
    }
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* Output size by PyTorch's documented rule: floor, or in ceil mode ceil, of
 * (size + 2 pad - kernel) / stride, plus one - and in ceil mode one less when the last
 * window would start at or past size + pad, in the right padding. */
static int naive_out_size(int size, int k, int stride, int pad, int ceil_mode)
{
    double q = (double)(size + 2 * pad - k) / stride;
    int out = (int)(ceil_mode ? ceil(q) : floor(q)) + 1;
    if (ceil_mode && (out - 1) * stride >= size + pad)
        out--;
    return out;
}

/* Max of window (oy, ox) of one plane by the definition: cells inside the input only. */
static float naive_window_max(const float *x, int h, int w, int k, int stride, int pad, int oy,
                              int ox)
{
    float best = -INFINITY;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            int y = oy * stride - pad + i, xx = ox * stride - pad + j;
            if (y >= 0 && y < h && xx >= 0 && xx < w && x[y * w + xx] > best)
                best = x[y * w + xx];
        }
    return best;
}

/* Naive max/avg pooling of `planes` planes (h, w) with a's square window (kernel_h,
 * stride_h, pad_h, ceil_mode, exclude_pad): the output y and, for the output gradient
 * r, the input gradient dx.  Padded cells never win a max; an average divides by the
 * number of its window's cells inside the padded plane [-pad, h + pad) x [-pad,
 * w + pad) - padding counts as zeros, a ceil-mode overhang past it does not - or,
 * with exclude_pad, by the number inside the input. */
static void naive_pool(int is_max, const lop_attrs *at, const float *x, const float *r,
                       int planes, int h, int w, float *y, double *dx)
{
    int k = at->kernel_h, stride = at->stride_h, pad = at->pad_h;
    int oh = naive_out_size(h, k, stride, pad, at->ceil_mode);
    int ow = naive_out_size(w, k, stride, pad, at->ceil_mode);
    for (int q = 0; q < planes; q++)
        for (int i = 0; i < h * w; i++)
            dx[(size_t)q * h * w + i] = 0;
    for (int q = 0; q < planes; q++)
        for (int oi = 0; oi < oh; oi++)
            for (int oj = 0; oj < ow; oj++) {
                double acc = is_max ? -INFINITY : 0;
                int best = -1, inside = 0, padded = 0;
                for (int a = 0; a < k; a++)
                    for (int c = 0; c < k; c++) {
                        int i = oi * stride - pad + a, j = oj * stride - pad + c;
                        padded += i >= -pad && i < h + pad && j >= -pad && j < w + pad;
                        if (i < 0 || i >= h || j < 0 || j >= w)
                            continue;
                        inside++;
                        float v = x[((size_t)q * h + i) * w + j];
                        if (!is_max)
                            acc += v;
                        else if (v > acc) {
                            acc = v;
                            best = i * w + j;
                        }
                    }
                assert_true(inside > 0);
                double div = at->exclude_pad ? inside : padded;
                size_t o = ((size_t)q * oh + oi) * ow + oj;
                y[o] = (float)(is_max ? acc : acc / div);
                if (is_max) {
                    dx[(size_t)q * h * w + best] += r[o];
                    continue;
                }
                for (int a = 0; a < k; a++)
                    for (int c = 0; c < k; c++) {
                        int i = oi * stride - pad + a, j = oj * stride - pad + c;
                        if (i >= 0 && i < h && j >= 0 && j < w)
                            dx[((size_t)q * h + i) * w + j] += r[o] / div;
                    }
            }
}

/* The pool's output (within ytol of the naive y, relative) and its input's gradient
 * (within 1e-6 of the naive dx) after a training step; frees y and dx. */
static void assert_pool_matches(const lop_graph *g, const lop_tensor *in, float *y, double *dx,
                                double ytol)
{
    const lop_tensor *out = lop_graph_output(g);
    const float *got = lop_graph_input_grad(g)->data;
    for (size_t i = 0; i < out->numel; i++)
        assert_float_equal(out->data[i], y[i], ytol * (1 + fabsf(y[i])));
    for (size_t i = 0; i < in->numel; i++)
        assert_float_equal(got[i], dx[i], 1e-6);
    free(y);
    free(dx);
}

/* input (c, h, w) -> one pool (kind with attrs a, or global average when a is NULL),
 * batch samples; shape, forward and backward against naive loops.  The backward
 * compared runs on gradient buffers left full of NaN (the pool writes its input's
 * gradient first), so a cell the pool fails to store - one no window covers - shows. */
static void check_pool(lop_kind kind, const lop_attrs *a, int c, int h, int w, int batch)
{
    int x;
    lop_graph *g = new_graph(3, c, h, w, &x);
    add1(g, kind, "pool", x, a);
    lop_tensor *in = distinct_input(g, batch, 21);
    assert_int_equal(gradcheck_poisoned(g, in, 23), 1);
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    const lop_tensor *out = lop_graph_output(g);
    if (a) {
        assert_int_equal(out->shape[2], naive_out_size(h, a->kernel_h, a->stride_h, a->pad_h,
                                                       a->ceil_mode));
        assert_int_equal(out->shape[3], naive_out_size(w, a->kernel_h, a->stride_h, a->pad_h,
                                                       a->ceil_mode));
    }
    lop_tensor *r = gradcheck_random(out->ndim, out->shape, 22);
    lop_graph_zero_grad(g);
    assert_int_equal(lop_graph_backward(g, r), LOP_OK);
    int planes = batch * c, size = h * w;
    float *y = malloc(out->numel * sizeof *y);
    double *dx = malloc(in->numel * sizeof *dx);
    assert_non_null(y);
    assert_non_null(dx);
    if (a)
        naive_pool(kind == LOP_MAXPOOL, a, in->data, r->data, planes, h, w, y, dx);
    else
        for (int q = 0; q < planes; q++) {
            double s = 0;
            for (int i = 0; i < size; i++) {
                s += in->data[(size_t)q * size + i];
                dx[(size_t)q * size + i] = r->data[q] / size;
            }
            y[q] = (float)(s / size);
        }
    assert_pool_matches(g, in, y, dx, 1e-4);
    lop_tensor_release(r);
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* Inference (no argmax kept) and training take different loops, and inference one of
 * its own for 2x2 windows of stride 2 inside the map; all must give the window maxima,
 * on odd sizes where windows are clipped by padding and by the edge, and in ceil mode
 * by the end of the input. */
static void test_maxpool_forward_matches_definition(void **state)
{
    (void)state;
    static const int geoms[][6] = {
        /* h, w, kernel, stride, pad, ceil_mode */
        {6, 6, 2, 2, 0, 0}, {7, 9, 2, 2, 0, 0}, {7, 7, 3, 2, 1, 0}, {5, 8, 3, 1, 1, 0},
        {9, 6, 3, 3, 0, 0}, {7, 9, 2, 2, 0, 1}, {6, 8, 3, 2, 1, 1}, {9, 5, 3, 3, 1, 1},
        {5, 6, 2, 2, 1, 1}, {1, 3, 2, 2, 0, 1}, {10, 11, 3, 2, 0, 1},
        {4, 36, 2, 2, 0, 0}, {5, 35, 2, 2, 0, 0},   /* rows of whole 2x2 windows, vectorised */
        /* stride-2 rows split by column parity, more than a vector of pairs, and one
         * row too wide for that (4200 columns) */
        {5, 40, 3, 2, 1, 0}, {4, 67, 3, 2, 1, 1}, {6, 37, 2, 2, 1, 0}, {3, 70, 5, 2, 2, 0},
        {3, 4200, 3, 2, 1, 0},
    };
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
        const int *q = geoms[gi];
        int x;
        lop_graph *g = new_graph(3, 3, q[0], q[1], &x);
        lop_attrs a = pool_attrs(q[2], q[3], q[4]);
        a.ceil_mode = q[5];
        add1(g, LOP_MAXPOOL, "pool", x, &a);
        lop_tensor *in = random_input(g, 2, 40 + gi);
        for (int train = 0; train <= 1; train++) {
            assert_int_equal(lop_graph_forward(g, in, train), LOP_OK);
            const lop_tensor *y = lop_graph_output(g);
            int oh = y->shape[2], ow = y->shape[3];
            assert_int_equal(oh, naive_out_size(q[0], q[2], q[3], q[4], q[5]));
            assert_int_equal(ow, naive_out_size(q[1], q[2], q[3], q[4], q[5]));
            for (int plane = 0; plane < 2 * 3; plane++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++)
                        assert_float_equal(y->data[(plane * oh + oy) * ow + ox],
                                           naive_window_max(in->data + plane * q[0] * q[1],
                                                            q[0], q[1], q[2], q[3], q[4], oy,
                                                            ox),
                                           0);
        }
        lop_tensor_release(in);
        lop_graph_free(g);
    }
}

/* Ties: training's max pools send each window's gradient to its first largest cell
 * (row by row, left to right), as PyTorch's and the naive loop's strict comparisons
 * do - on 2x2 windows of stride 2, which run a vector of windows at a time (rows of
 * 18 and 17 of them: whole vectors and a part), and on the generic loop's 3x3.  The
 * input takes only the values -1, 0 and 1, so most windows tie. */
static void test_maxpool_ties_go_to_the_first_cell(void **state)
{
    (void)state;
    static const int geoms[][5] = {
        /* h, w, kernel, stride, pad */
        {4, 36, 2, 2, 0}, {5, 35, 2, 2, 0}, {6, 6, 2, 2, 0}, {7, 9, 3, 2, 1},
    };
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
        const int *q = geoms[gi];
        int x;
        lop_graph *g = new_graph(3, 3, q[0], q[1], &x);
        lop_attrs a = pool_attrs(q[2], q[3], q[4]);
        add1(g, LOP_MAXPOOL, "pool", x, &a);
        lop_tensor *in = random_input(g, 2, 60 + gi);
        for (size_t i = 0; i < in->numel; i++)
            in->data[i] = (float)((i * 7 + i / 5) % 3) - 1.0f;
        assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
        const lop_tensor *out = lop_graph_output(g);
        lop_tensor *r = gradcheck_random(out->ndim, out->shape, 70 + gi);
        lop_graph_zero_grad(g);
        assert_int_equal(lop_graph_backward(g, r), LOP_OK);
        float *y = malloc(out->numel * sizeof *y);
        double *dx = malloc(in->numel * sizeof *dx);
        assert_non_null(y);
        assert_non_null(dx);
        naive_pool(1, &a, in->data, r->data, 2 * 3, q[0], q[1], y, dx);
        assert_pool_matches(g, in, y, dx, 0);
        lop_tensor_release(r);
        lop_tensor_release(in);
        lop_graph_free(g);
    }
}

static void test_avgpool_forward_by_hand(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 1, 4, 4, &x);
    lop_attrs a2 = pool_attrs(2, 2, 0), a3 = pool_attrs(3, 2, 1);
    int p2 = add1(g, LOP_AVGPOOL, "p2", x, &a2);
    int p3 = add1(g, LOP_AVGPOOL, "p3", x, &a3);
    a3.exclude_pad = 1;
    int p3x = add1(g, LOP_AVGPOOL, "p3x", x, &a3);
    add1(g, LOP_GLOBAL_AVGPOOL, "gap", x, NULL);
    float v[16];
    for (int i = 0; i < 16; i++)
        v[i] = (float)i;
    int shape[4] = {1, 1, 4, 4};
    lop_tensor *in = tensor(4, shape, v);
    assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
    /* padding counts in the divisor: the corner window holds 0+1+4+5 over 9 cells */
    const float want2[4] = {2.5f, 4.5f, 10.5f, 12.5f};
    const double want3[4] = {10.0 / 9, 24.0 / 9, 51.0 / 9, 90.0 / 9};
    /* without padding in the divisor: the corner window averages its 4 cells, the
     * edge windows their 6 */
    const double want3x[4] = {10.0 / 4, 24.0 / 6, 51.0 / 6, 90.0 / 9};
    const float *y2 = lop_node_output(g, p2)->data, *y3 = lop_node_output(g, p3)->data;
    const float *y3x = lop_node_output(g, p3x)->data;
    for (int i = 0; i < 4; i++) {
        assert_float_equal(y2[i], want2[i], 1e-6);
        assert_float_equal(y3[i], want3[i], 1e-6);
        assert_float_equal(y3x[i], want3x[i], 1e-6);
    }
    assert_float_equal(lop_graph_output(g)->data[0], 7.5f, 1e-6);
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* relu6 by its definition, at the kinks too: y = min(max(x, 0), 6); the gradient is
 * 1 strictly inside (0, 6) and 0 at and beyond both ends. */
static void test_relu6_forward_and_kinks(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(1, 10, 0, 0, &x);
    add1(g, LOP_RELU6, "relu6", x, NULL);
    const float v[10] = {-3.0f, -0.0f, 0.0f, 1e-6f, 2.5f, 5.999f, 6.0f, 6.001f, 1e30f,
                         -INFINITY};
    const float want_y[10] = {0, 0, 0, 1e-6f, 2.5f, 5.999f, 6, 6, 6, 0};
    const float want_dx[10] = {0, 0, 0, 1, 1, 1, 0, 0, 0, 0};
    int shape[2] = {1, 10};
    lop_tensor *in = tensor(2, shape, v), *ones = lop_tensor_new(2, shape);
    assert_non_null(ones);
    lop_tensor_fill(ones, 1.0f);
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    assert_int_equal(lop_graph_backward(g, ones), LOP_OK);
    const float *y = lop_graph_output(g)->data, *dx = lop_graph_input_grad(g)->data;
    for (int i = 0; i < 10; i++) {
        assert_float_equal(y[i], want_y[i], 0);
        assert_float_equal(dx[i], want_dx[i], 0);
    }
    lop_tensor_release(ones);
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* Zero padding of plane (h, w) by (top, bottom, left, right), by the definition:
 * output cell (i, j) is input cell (i - top, j - left) when that exists, else 0. */
static float naive_pad_at(const float *x, int h, int w, int top, int left, int i, int j)
{
    int si = i - top, sj = j - left;
    return si >= 0 && si < h && sj >= 0 && sj < w ? x[si * w + sj] : 0.0f;
}

static void test_pad_forward_and_backward_match_definition(void **state)
{
    (void)state;
    static const int cases[][6] = {
        /* h, w, top, bottom, left, right */
        {3, 4, 1, 1, 1, 1}, {5, 2, 0, 3, 2, 0}, {1, 1, 2, 1, 0, 3}, {4, 7, 0, 0, 0, 0},
        {2, 3, 1024, 0, 0, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int *q = cases[ci];
        int x, shape[3];
        lop_graph *g = new_graph(3, 3, q[0], q[1], &x);
        lop_attrs a = pad_attrs(q[2], q[3], q[4], q[5]);
        int p = add1(g, LOP_PAD, "pad", x, &a);
        assert_int_equal(lop_node_shape(g, p, shape), 3);
        int oh = q[0] + q[2] + q[3], ow = q[1] + q[4] + q[5];
        assert_int_equal(shape[0], 3);
        assert_int_equal(shape[1], oh);
        assert_int_equal(shape[2], ow);
        assert_int_equal(lop_node_params(g, p), 0);
        assert_float_equal(lop_node_flops(g, p), 0, 0);
        lop_tensor *in = random_input(g, 2, 50 + ci);
        assert_int_equal(gradcheck_poisoned(g, in, 70 + ci), 1);   /* the crop is stored */
        assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
        const lop_tensor *out = lop_graph_output(g);
        lop_tensor *r = gradcheck_random(out->ndim, out->shape, 60 + ci);
        lop_graph_zero_grad(g);
        assert_int_equal(lop_graph_backward(g, r), LOP_OK);
        const float *dx = lop_graph_input_grad(g)->data;
        for (int plane = 0; plane < 2 * 3; plane++) {
            const float *xp = in->data + plane * q[0] * q[1];
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                    assert_float_equal(out->data[(plane * oh + i) * ow + j],
                                       naive_pad_at(xp, q[0], q[1], q[2], q[4], i, j), 0);
            /* the crop: each input cell's gradient is its output cell's */
            for (int i = 0; i < q[0]; i++)
                for (int j = 0; j < q[1]; j++)
                    assert_float_equal(dx[(plane * q[0] + i) * q[1] + j],
                                       r->data[(plane * oh + i + q[2]) * ow + j + q[4]], 0);
        }
        lop_tensor_release(r);
        lop_tensor_release(in);
        lop_graph_free(g);
    }
}

/* Ceil mode by hand, on planes 0, 1, 2, ... row by row (PyTorch gives the same). */
static void test_pools_ceil_mode_by_hand(void **state)
{
    (void)state;
    struct {
        int h, k, s, p, oh;      /* square planes: size, kernel, stride, pad; output */
        float max[16], avg[16], avg_exclude[16];
    } cases[] = {
        /* 5x5, 2x2 windows, stride 2: ceil((5 - 2) / 2) + 1 = 3 (floor mode: 2); the
         * last row and column of windows hold one input row/column, and no padding, so
         * both averages divide the corner by 1 */
        {5, 2, 2, 0, 3,
         {6, 8, 9, 16, 18, 19, 21, 23, 24},
         {3, 5, 6.5f, 13, 15, 16.5f, 20.5f, 22.5f, 24},
         {3, 5, 6.5f, 13, 15, 16.5f, 20.5f, 22.5f, 24}},
        /* 5x5, 2x2, stride 2, pad 1: ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window
         * would start at row 5 = H, inside the bottom padding: minus 1 gives 3.  The
         * first window holds padding and cell (0,0): 0/4 with padding counted, 0/1
         * without; (0,1) holds cells 1 and 2: 3/4, or 3/2 */
        {5, 2, 2, 1, 3,
         {0, 2, 4, 10, 12, 14, 20, 22, 24},
         {0, 0.75f, 1.75f, 3.75f, 9, 11, 8.75f, 19, 21},
         {0, 1.5f, 3.5f, 7.5f, 9, 11, 17.5f, 19, 21}},
        /* 6x6, 3x3, stride 2, pad 1: ceil((6 + 2 - 3) / 2) + 1 = 4 (floor: 3); the last
         * window starts at row 5, inside the input, so it stays: rows 5, 6 (padding) and
         * 7 (past the padding), divided by 2 rows with padding counted, 1 without */
        {6, 3, 2, 1, 4,
         {7, 9, 11, 11, 19, 21, 23, 23, 31, 33, 35, 35, 31, 33, 35, 35},
         {14.0f / 9, 30.0f / 9, 42.0f / 9, 16.0f / 6, 50.0f / 6, 14, 16, 51.0f / 6,
          98.0f / 6, 26, 28, 87.0f / 6, 61.0f / 6, 16, 17, 8.75f},
         {3.5f, 5, 7, 8, 12.5f, 14, 16, 17, 24.5f, 26, 28, 29, 30.5f, 32, 34, 35}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int x, h = cases[ci].h, oh = cases[ci].oh, shape[4] = {1, 1, h, h}, ids[3];
        lop_graph *g = new_graph(3, 1, h, h, &x);
        for (int m = 0; m < 3; m++) {
            lop_attrs a = pool_attrs(cases[ci].k, cases[ci].s, cases[ci].p);
            a.ceil_mode = 1;
            a.exclude_pad = m == 2;
            char name[16];
            snprintf(name, sizeof name, "p%d", m);
            ids[m] = add1(g, m == 0 ? LOP_MAXPOOL : LOP_AVGPOOL, name, x, &a);
        }
        float v[36];
        for (int i = 0; i < h * h; i++)
            v[i] = (float)i;
        lop_tensor *in = tensor(4, shape, v);
        assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
        const float *want[3] = {cases[ci].max, cases[ci].avg, cases[ci].avg_exclude};
        for (int m = 0; m < 3; m++) {
            const lop_tensor *y = lop_node_output(g, ids[m]);
            assert_int_equal(y->shape[2], oh);
            assert_int_equal(y->shape[3], oh);
            for (int i = 0; i < oh * oh; i++)
                assert_float_equal(y->data[i], want[m][i], 1e-5);
        }
        lop_tensor_release(in);
        lop_graph_free(g);
    }
}

/* Averages and maxima on odd shapes and every mode, forward and backward, against
 * naive loops that count each window's cells one by one.  Windows that do not overlap
 * leave cells out: 2x2 stride 2 on 7x7 the last row and column, stride 3 the rows and
 * columns between windows too. */
static void test_pools_match_definition(void **state)
{
    (void)state;
    static const int geoms[][7] = {
        /* h, w, kernel, stride, pad, ceil_mode, exclude_pad */
        {7, 5, 3, 2, 1, 0, 1}, {7, 5, 3, 2, 1, 1, 0}, {7, 5, 3, 2, 1, 1, 1},
        {6, 9, 2, 2, 1, 1, 0}, {6, 9, 2, 2, 1, 1, 1}, {8, 3, 3, 3, 0, 1, 0},
        {1, 4, 2, 2, 0, 1, 1}, {11, 10, 5, 3, 2, 1, 0}, {11, 10, 5, 3, 2, 1, 1},
        {4, 4, 4, 1, 2, 0, 1}, {9, 9, 3, 1, 1, 1, 1}, {7, 7, 2, 2, 0, 0, 0},
        {7, 7, 2, 3, 0, 0, 0}, {8, 7, 2, 3, 1, 1, 0}, {6, 7, 2, 2, 1, 0, 1},
        {7, 7, 2, 2, 0, 1, 0}, {5, 7, 3, 3, 1, 0, 0},
    };
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
        const int *q = geoms[gi];
        lop_attrs a = pool_attrs(q[2], q[3], q[4]);
        a.ceil_mode = q[5];
        a.exclude_pad = q[6];
        check_pool(LOP_AVGPOOL, &a, 3, q[0], q[1], 2);
        if (!a.exclude_pad)
            check_pool(LOP_MAXPOOL, &a, 3, q[0], q[1], 2);
    }
}

/* Only ceil mode lets a window outgrow the padded input: PyTorch pools a 1x1 map with a
 * 2x2 window in ceil mode (one window, one cell), not in floor mode. */
static void test_ceil_mode_pools_small_maps(void **state)
{
    (void)state;
    int x, shape[3];
    lop_graph *g = new_graph(3, 2, 1, 1, &x);
    lop_attrs a = pool_attrs(2, 2, 0);
    assert_int_equal(lop_graph_add(g, LOP_MAXPOOL, "floor", &x, 1, &a, NULL), LOP_ESHAPE);
    assert_non_null(strstr(lop_errmsg(), "does not fit"));
    a.ceil_mode = 1;
    int p = add1(g, LOP_AVGPOOL, "ceil", x, &a);
    assert_int_equal(lop_node_shape(g, p, shape), 3);
    assert_int_equal(shape[1], 1);
    assert_int_equal(shape[2], 1);
    lop_graph_free(g);
}

static void test_stride_zero_means_kernel(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 1, 6, 6, &x);
    lop_attrs a = pool_attrs(3, 0, 0);
    int p = add1(g, LOP_MAXPOOL, "pool", x, &a);
    int shape[3];
    lop_node_shape(g, p, shape);
    assert_int_equal(shape[1], 2);
    assert_int_equal(shape[2], 2);
    lop_graph_free(g);
}

static void test_concat_and_flatten_forward(void **state)
{
    (void)state;
    int x, ins[2];
    lop_graph *g = new_graph(3, 2, 1, 2, &x);
    ins[0] = x;
    ins[1] = add1(g, LOP_RELU, "relu", x, NULL);
    int cat;
    assert_int_equal(lop_graph_add(g, LOP_CONCAT, "cat", ins, 2, NULL, &cat), LOP_OK);
    int flat = add1(g, LOP_FLATTEN, "flat", cat, NULL);
    const float v[8] = {1, -2, 3, -4, -5, 6, -7, 8};
    int shape[4] = {2, 2, 1, 2};
    lop_tensor *in = tensor(4, shape, v);
    assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
    /* per sample: its 2 channels, then their relu */
    const float want[16] = {1, -2, 3, -4, 1, 0, 3, 0, -5, 6, -7, 8, 0, 6, 0, 8};
    lop_tensor *c = lop_node_output(g, cat), *f = lop_node_output(g, flat);
    assert_int_equal(c->ndim, 4);
    assert_int_equal(c->shape[1], 4);
    assert_int_equal(f->ndim, 2);
    assert_int_equal(f->shape[1], 8);
    for (int i = 0; i < 16; i++) {
        assert_float_equal(c->data[i], want[i], 0);
        assert_float_equal(f->data[i], want[i], 0);
    }
    lop_tensor_release(in);
    lop_graph_free(g);
}

static void test_dropout_statistics(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(1, 1000, 0, 0, &x);
    lop_attrs a = lop_attrs_default();
    a.p = 0.3f;
    add1(g, LOP_DROPOUT, "drop", x, &a);
    lop_tensor *in = random_input(g, 10, 15);
    for (size_t i = 0; i < in->numel; i++)
        in->data[i] += in->data[i] >= 0 ? 0.5f : -0.5f;   /* no zeros of its own */
    size_t n = in->numel;
    float *first = malloc(n * sizeof *first);
    assert_non_null(first);

    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    const float *y = lop_graph_output(g)->data;
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else
            assert_float_equal(y[i], in->data[i] / 0.7, 1e-6);
    }
    /* 10000 draws: the standard deviation of the fraction is under 0.005 */
    assert_in_range(zeros, 2700, 3300);
    memcpy(first, y, n * sizeof *first);

    /* the next training pass draws a new mask */
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    size_t changed = 0;
    for (size_t i = 0; i < n; i++)
        changed += (first[i] == 0.0f) != (y[i] == 0.0f);
    assert_true(changed > 1000);

    assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
    assert_memory_equal(lop_graph_output(g)->data, in->data, n * sizeof(float));
    free(first);
    lop_tensor_release(in);
    lop_graph_free(g);
}

static void test_flops_per_kind(void **state)
{
    (void)state;
    int x, ins[2];
    lop_graph *g = new_graph(3, 4, 6, 6, &x);
    lop_attrs mp = pool_attrs(2, 2, 0), ap = pool_attrs(3, 2, 1), d = lop_attrs_default();
    int relu = add1(g, LOP_RELU, "relu", x, NULL);
    int bn = add1(g, LOP_BATCHNORM, "bn", x, NULL);
    int maxp = add1(g, LOP_MAXPOOL, "maxp", x, &mp);      /* 4x3x3 out */
    int avgp = add1(g, LOP_AVGPOOL, "avgp", x, &ap);      /* 4x3x3 out */
    ins[0] = relu;
    ins[1] = bn;
    int sum, cat;
    assert_int_equal(lop_graph_add(g, LOP_ADD, "sum", ins, 2, NULL, &sum), LOP_OK);
    assert_int_equal(lop_graph_add(g, LOP_CONCAT, "cat", ins, 2, NULL, &cat), LOP_OK);
    int gap = add1(g, LOP_GLOBAL_AVGPOOL, "gap", x, NULL);
    int flat = add1(g, LOP_FLATTEN, "flat", x, NULL);
    int drop = add1(g, LOP_DROPOUT, "drop", flat, &d);
    int fc = linear(g, "fc", drop, 10, 1);
    lop_attrs pd = pad_attrs(1, 0, 2, 1);
    int relu6 = add1(g, LOP_RELU6, "relu6", x, NULL);
    int pad = add1(g, LOP_PAD, "pad", x, &pd);            /* 4x7x9 out */
    lop_attrs cp = pool_attrs(3, 2, 0);
    cp.ceil_mode = cp.exclude_pad = 1;
    int ceilp = add1(g, LOP_AVGPOOL, "ceilp", x, &cp);    /* 4x3x3 out */
    assert_float_equal(lop_node_flops(g, relu), 144, 0);
    assert_float_equal(lop_node_flops(g, relu6), 144, 0);
    assert_float_equal(lop_node_flops(g, pad), 0, 0);
    /* the kernel area per output value, also where the last windows hang off the end */
    assert_float_equal(lop_node_flops(g, ceilp), 9 * 36, 0);
    assert_int_equal(lop_node_params(g, pad), 0);
    assert_float_equal(lop_node_flops(g, bn), 288, 0);
    assert_float_equal(lop_node_flops(g, maxp), 4 * 36, 0);
    assert_float_equal(lop_node_flops(g, avgp), 9 * 36, 0);
    assert_float_equal(lop_node_flops(g, sum), 144, 0);
    assert_float_equal(lop_node_flops(g, cat), 0, 0);
    assert_float_equal(lop_node_flops(g, gap), 144, 0);
    assert_float_equal(lop_node_flops(g, flat), 0, 0);
    assert_float_equal(lop_node_flops(g, drop), 0, 0);
    assert_float_equal(lop_node_flops(g, fc), 2 * 144 * 10, 0);
    lop_graph_free(g);
}

/* ---- shapes big enough that each layer splits its work across threads ---- */

/* 8 samples of (16, 20, 20): 51200 values, over twice the share below which the
 * elementwise layers, pools and batchnorm run on one thread, so on a multi-core
 * machine these tests exercise the split paths.  References are naive loops. */
enum { BIG_B = 8, BIG_C = 16, BIG_HW = 20 };

static void test_split_relu_add_concat_flatten(void **state)
{
    (void)state;
    int x, ins[2], sum, cat;
    lop_graph *g = new_graph(3, BIG_C, BIG_HW, BIG_HW, &x);
    ins[0] = add1(g, LOP_RELU, "relu", x, NULL);
    ins[1] = x;
    assert_int_equal(lop_graph_add(g, LOP_ADD, "sum", ins, 2, NULL, &sum), LOP_OK);
    ins[0] = sum;
    assert_int_equal(lop_graph_add(g, LOP_CONCAT, "cat", ins, 2, NULL, &cat), LOP_OK);
    add1(g, LOP_FLATTEN, "flat", cat, NULL);
    lop_tensor *in = random_input(g, BIG_B, 19);
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    lop_tensor *r = gradcheck_random(2, lop_graph_output(g)->shape, 20);
    lop_graph_zero_grad(g);
    assert_int_equal(lop_graph_backward(g, r), LOP_OK);
    const float *y = lop_graph_output(g)->data, *dx = lop_graph_input_grad(g)->data;
    size_t per = (size_t)BIG_C * BIG_HW * BIG_HW;
    for (size_t b = 0; b < BIG_B; b++)
        for (size_t i = 0; i < per; i++) {
            /* sample b of the output is relu(x) + x, then x itself */
            float v = in->data[b * per + i];
            size_t first = 2 * b * per + i, second = (2 * b + 1) * per + i;
            assert_float_equal(y[first], (v > 0 ? v : 0) + v, 1e-6);
            assert_float_equal(y[second], v, 0);
            double want = r->data[first] * (v > 0 ? 2.0 : 1.0) + r->data[second];
            assert_float_equal(dx[b * per + i], want, 1e-5);
        }
    lop_tensor_release(r);
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* input -> pad -> relu6, on maps big enough to split: forward and backward against
 * the definitions. */
static void test_split_pad_relu6(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, BIG_C, BIG_HW, BIG_HW, &x);
    lop_attrs a = pad_attrs(2, 1, 0, 3);
    int p = add1(g, LOP_PAD, "pad", x, &a);
    add1(g, LOP_RELU6, "relu6", p, NULL);
    lop_tensor *in = random_input(g, BIG_B, 25);
    for (size_t i = 0; i < in->numel; i++)
        in->data[i] *= 8.0f;   /* both kinks in play */
    assert_int_equal(gradcheck_poisoned(g, in, 27), 1);   /* stored on NaN-filled buffers */
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    const lop_tensor *out = lop_graph_output(g);
    lop_tensor *r = gradcheck_random(out->ndim, out->shape, 26);
    lop_graph_zero_grad(g);
    assert_int_equal(lop_graph_backward(g, r), LOP_OK);
    const float *dx = lop_graph_input_grad(g)->data;
    int oh = BIG_HW + 3, ow = BIG_HW + 3;
    for (int plane = 0; plane < BIG_B * BIG_C; plane++) {
        const float *xp = in->data + (size_t)plane * BIG_HW * BIG_HW;
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                float v = naive_pad_at(xp, BIG_HW, BIG_HW, 2, 0, i, j);
                float want = v < 0 ? 0 : v > 6 ? 6 : v;
                assert_float_equal(out->data[((size_t)plane * oh + i) * ow + j], want, 0);
            }
        for (int i = 0; i < BIG_HW; i++)
            for (int j = 0; j < BIG_HW; j++) {
                float v = xp[i * BIG_HW + j];
                float d = r->data[((size_t)plane * oh + i + 2) * ow + j];
                assert_float_equal(dx[((size_t)plane * BIG_HW + i) * BIG_HW + j],
                                   v > 0 && v < 6 ? d : 0, 0);
            }
    }
    lop_tensor_release(r);
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* The input gradient that pools and pad sharing x write and add, on 1 and 2 threads,
 * over NaN-filled buffers: the same bits. */
static void test_split_pools_and_pad_same_bits(void **state)
{
    (void)state;
    lop_graph *g = pools_and_pad_sharing_x(BIG_C, BIG_HW + 1, BIG_HW + 1, 0);
    lop_tensor *in = distinct_input(g, BIG_B, 28);
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    const lop_tensor *out = lop_graph_output(g);
    lop_tensor *r = gradcheck_random(out->ndim, out->shape, 29);
    float *dx[2];
    size_t len = in->numel * sizeof(float);
    for (int t = 0; t < 2; t++) {
        assert_int_equal(lop_set_threads(t + 1), LOP_OK);
        assert_int_equal(gradcheck_poisoned(g, in, 30), 1);
        assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
        assert_int_equal(lop_graph_backward(g, r), LOP_OK);
        dx[t] = malloc(len);
        assert_non_null(dx[t]);
        memcpy(dx[t], lop_graph_input_grad(g)->data, len);
    }
    assert_memory_equal(dx[0], dx[1], len);
    for (size_t i = 0; i < in->numel; i++)
        assert_true(isfinite(dx[0][i]));
    free(dx[0]);
    free(dx[1]);
    lop_tensor_release(r);
    lop_tensor_release(in);
    lop_graph_free(g);
}

static void test_split_pools(void **state)
{
    (void)state;
    lop_attrs max2 = pool_attrs(2, 2, 0), max3 = pool_attrs(3, 2, 1), avg3 = pool_attrs(3, 2, 1);
    lop_attrs max3c = pool_attrs(3, 2, 0), avg3ce = pool_attrs(3, 2, 1);
    max3c.ceil_mode = 1;   /* 20 -> 10 windows, the last one hanging off the end */
    avg3ce.ceil_mode = avg3ce.exclude_pad = 1;
    check_pool(LOP_MAXPOOL, &max2, BIG_C, BIG_HW, BIG_HW, BIG_B);
    check_pool(LOP_MAXPOOL, &max3, BIG_C, BIG_HW, BIG_HW, BIG_B);
    check_pool(LOP_MAXPOOL, &max3c, BIG_C, BIG_HW, BIG_HW, BIG_B);
    check_pool(LOP_AVGPOOL, &avg3, BIG_C, BIG_HW, BIG_HW, BIG_B);
    check_pool(LOP_AVGPOOL, &avg3ce, BIG_C, BIG_HW, BIG_HW, BIG_B);
    check_pool(LOP_GLOBAL_AVGPOOL, NULL, BIG_C, BIG_HW, BIG_HW, BIG_B);
}

/* Linear layers whose products are large enough to be cut between threads, along
 * the batch or along the features depending on the shape, and single inputs (their
 * product a matrix-vector one, cut by rows: 1000 x 512 into 7 parts), with and
 * without bias: forward, dx, dW and db against naive double loops. */
static void test_split_linear(void **state)
{
    (void)state;
    static const int shapes[][4] = {{32, 256, 128, 1}, {512, 128, 16, 1}, {64, 64, 256, 1},
                                    {1, 512, 1000, 1}, {1, 512, 1000, 0}, {1, 37, 5, 1},
                                    {3, 37, 5, 0}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int nb = shapes[t][0], nin = shapes[t][1], nout = shapes[t][2], x;
        lop_graph *g = new_graph(1, nin, 0, 0, &x);
        int fc = linear(g, "fc", x, nout, shapes[t][3]);
        float zeros[1000] = {0}, *bias = zeros;
        if (shapes[t][3]) {
            bias = lop_node_param(g, fc, 1)->data;
            for (int o = 0; o < nout; o++)
                bias[o] = 0.01f * (float)o;
        }
        lop_tensor *in = random_input(g, nb, 23 + t);
        assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
        lop_tensor *r = gradcheck_random(2, lop_graph_output(g)->shape, 24 + t);
        lop_graph_zero_grad(g);
        assert_int_equal(lop_graph_backward(g, r), LOP_OK);
        const float *w = lop_node_param(g, fc, 0)->data, *xv = in->data, *dy = r->data;
        const float *y = lop_graph_output(g)->data, *dx = lop_graph_input_grad(g)->data;
        const float *dw = lop_node_grad(g, fc, 0)->data;
        const float *db = shapes[t][3] ? lop_node_grad(g, fc, 1)->data : NULL;
        for (int b = 0; b < nb; b++)
            for (int o = 0; o < nout; o++) {
                double s = bias[o];
                for (int i = 0; i < nin; i++)
                    s += (double)w[o * nin + i] * xv[b * nin + i];
                assert_float_equal(y[b * nout + o], s, 1e-4);
            }
        for (int b = 0; b < nb; b++)
            for (int i = 0; i < nin; i++) {
                double s = 0;
                for (int o = 0; o < nout; o++)
                    s += (double)dy[b * nout + o] * w[o * nin + i];
                assert_float_equal(dx[b * nin + i], s, 1e-4);
            }
        for (int o = 0; o < nout; o++) {
            double sb = 0;
            for (int b = 0; b < nb; b++)
                sb += dy[b * nout + o];
            if (db)
                assert_float_equal(db[o], sb, 1e-4);
            for (int i = 0; i < nin; i++) {
                double s = 0;
                for (int b = 0; b < nb; b++)
                    s += (double)dy[b * nout + o] * xv[b * nin + i];
                assert_float_equal(dw[o * nin + i], s, 1e-4);
            }
        }
        lop_tensor_release(r);
        lop_tensor_release(in);
        lop_graph_free(g);
    }
}

/* input -> maxpool -> flatten -> dropout -> linear -> bn: every layer that keeps
 * state for backward allocates it during a training forward; bn comes last so any
 * failure happens before its running statistics may change. */
static lop_graph *stateful_chain(int *bn)
{
    int x;
    lop_graph *g = new_graph(3, 2, 4, 4, &x);
    lop_attrs mp = pool_attrs(2, 2, 0), d = lop_attrs_default();
    int id = add1(g, LOP_MAXPOOL, "pool", x, &mp);
    id = add1(g, LOP_FLATTEN, "flat", id, NULL);
    id = add1(g, LOP_DROPOUT, "drop", id, &d);
    id = linear(g, "fc", id, 3, 1);
    *bn = add1(g, LOP_BATCHNORM, "bn", id, NULL);
    return g;
}

static void test_forward_allocation_failures_are_clean(void **state)
{
    (void)state;
    int bn;
    lop_graph *ref = stateful_chain(&bn);
    lop_tensor *in = random_input(ref, 2, 18);
    assert_int_equal(lop_graph_forward(ref, in, 1), LOP_OK);
    lop_tensor *want = lop_graph_output(ref);
    for (long k = 1;; k++) {
        lop_graph *g = stateful_chain(&bn);
        lop_debug_fail_alloc(k);
        int st = lop_graph_forward(g, in, 1);
        lop_debug_fail_alloc(0);
        if (st == LOP_OK) {
            assert_memory_equal(lop_graph_output(g)->data, want->data,
                                want->numel * sizeof(float));
            lop_graph_free(g);
            break;
        }
        assert_int_equal(st, LOP_ENOMEM);
        /* batchnorm updates its running statistics only once it cannot fail */
        const lop_tensor *rm = lop_node_param(g, bn, 2), *rv = lop_node_param(g, bn, 3);
        for (size_t i = 0; i < rm->numel; i++) {
            assert_float_equal(rm->data[i], 0.0f, 0);
            assert_float_equal(rv->data[i], 1.0f, 0);
        }
        lop_graph_free(g);
        assert_true(k < 100);
    }
    lop_tensor_release(in);
    lop_graph_free(ref);
}

/* ---- invalid graphs ---- */

static void test_invalid_layers_leave_graph_unchanged(void **state)
{
    (void)state;
    int x, a3, b2, fc;
    lop_graph *g = new_graph(3, 2, 4, 4, &x);
    a3 = conv(g, "a3", x, 3, 1);
    b2 = conv(g, "b2", x, 2, 1);
    fc = linear(g, "fc", add1(g, LOP_FLATTEN, "flat", x, NULL), 3, 1);
    int n = lop_graph_size(g);
    uint64_t gen = lop_graph_generation(g);

    lop_attrs p15 = lop_attrs_default(), p1 = lop_attrs_default(), lin = lop_attrs_default();
    lop_attrs big = pool_attrs(5, 1, 0), overpad = pool_attrs(2, 1, 2);
    lop_attrs negstride = pool_attrs(2, -1, 0), nokernel = pool_attrs(0, 1, 0);
    lop_attrs padneg = pad_attrs(0, -1, 0, 0), padhuge = pad_attrs(0, 0, 1025, 0);
    lop_attrs ceil2 = pool_attrs(2, 2, 0), excl2 = pool_attrs(2, 2, 0), maxexcl = excl2;
    ceil2.ceil_mode = 2;
    excl2.exclude_pad = -1;
    maxexcl.exclude_pad = 1;
    p15.p = 1.5f;
    p1.p = 1.0f;
    lin.out_channels = 4;
    int mismatched[2] = {a3, b2}, mixed_rank[2] = {a3, fc};
    struct {
        const char *name;
        int want, got;
    } cases[] = {
        {"add_bad", LOP_ESHAPE, lop_graph_add(g, LOP_ADD, "add_bad", mismatched, 2, NULL, NULL)},
        {"add_rank", LOP_ESHAPE, lop_graph_add(g, LOP_ADD, "add_rank", mixed_rank, 2, NULL, NULL)},
        {"cat_rank", LOP_ESHAPE,
         lop_graph_add(g, LOP_CONCAT, "cat_rank", mixed_rank, 2, NULL, NULL)},
        {"lin3d", LOP_ESHAPE, lop_graph_add(g, LOP_LINEAR, "lin3d", &x, 1, &lin, NULL)},
        {"lin0", LOP_EINVAL, lop_graph_add(g, LOP_LINEAR, "lin0", &fc, 1, NULL, NULL)},
        {"drop15", LOP_EINVAL, lop_graph_add(g, LOP_DROPOUT, "drop15", &x, 1, &p15, NULL)},
        {"drop1", LOP_EINVAL, lop_graph_add(g, LOP_DROPOUT, "drop1", &x, 1, &p1, NULL)},
        {"pool_big", LOP_ESHAPE, lop_graph_add(g, LOP_MAXPOOL, "pool_big", &x, 1, &big, NULL)},
        {"pool_pad", LOP_EINVAL,
         lop_graph_add(g, LOP_AVGPOOL, "pool_pad", &x, 1, &overpad, NULL)},
        {"pool_stride", LOP_EINVAL,
         lop_graph_add(g, LOP_MAXPOOL, "pool_stride", &x, 1, &negstride, NULL)},
        {"pool_k0", LOP_EINVAL, lop_graph_add(g, LOP_AVGPOOL, "pool_k0", &x, 1, &nokernel, NULL)},
        {"pool_1d", LOP_ESHAPE, lop_graph_add(g, LOP_MAXPOOL, "pool_1d", &fc, 1, &big, NULL)},
        {"gap_1d", LOP_ESHAPE,
         lop_graph_add(g, LOP_GLOBAL_AVGPOOL, "gap_1d", &fc, 1, NULL, NULL)},
        {"pool_ceil2", LOP_EINVAL,
         lop_graph_add(g, LOP_MAXPOOL, "pool_ceil2", &x, 1, &ceil2, NULL)},
        {"pool_excl", LOP_EINVAL, lop_graph_add(g, LOP_AVGPOOL, "pool_excl", &x, 1, &excl2, NULL)},
        {"max_excl", LOP_EINVAL, lop_graph_add(g, LOP_MAXPOOL, "max_excl", &x, 1, &maxexcl, NULL)},
        {"pad_neg", LOP_EINVAL, lop_graph_add(g, LOP_PAD, "pad_neg", &x, 1, &padneg, NULL)},
        {"pad_huge", LOP_EINVAL, lop_graph_add(g, LOP_PAD, "pad_huge", &x, 1, &padhuge, NULL)},
        {"pad_1d", LOP_ESHAPE, lop_graph_add(g, LOP_PAD, "pad_1d", &fc, 1, NULL, NULL)},
        {"relu6_two", LOP_EINVAL, lop_graph_add(g, LOP_RELU6, "relu6_two", mismatched, 2, NULL,
                                                NULL)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].got != cases[i].want)
            fail_msg("%s: got %s, want %s", cases[i].name, lop_status_name(cases[i].got),
                     lop_status_name(cases[i].want));
    }
    assert_int_equal(lop_graph_size(g), n);
    assert_int_equal(lop_graph_generation(g), gen);
    lop_graph_free(g);
}

static void test_error_messages_name_the_node(void **state)
{
    (void)state;
    int x, ins[2];
    lop_graph *g = new_graph(3, 2, 4, 4, &x);
    ins[0] = conv(g, "a", x, 3, 1);
    ins[1] = conv(g, "b", x, 2, 1);
    assert_int_equal(lop_graph_add(g, LOP_ADD, "merge_me", ins, 2, NULL, NULL), LOP_ESHAPE);
    assert_non_null(strstr(lop_errmsg(), "merge_me"));
    lop_attrs a = lop_attrs_default();
    a.p = 1.5f;
    assert_int_equal(lop_graph_add(g, LOP_DROPOUT, "drop_me", &x, 1, &a, NULL), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "drop_me"));
    a = lop_attrs_default();
    a.out_channels = 2;
    assert_int_equal(lop_graph_add(g, LOP_LINEAR, "fc_me", &x, 1, &a, NULL), LOP_ESHAPE);
    assert_non_null(strstr(lop_errmsg(), "fc_me"));
    a = pool_attrs(2, 2, 0);
    a.exclude_pad = 1;
    assert_int_equal(lop_graph_add(g, LOP_MAXPOOL, "max_me", &x, 1, &a, NULL), LOP_EINVAL);
    assert_string_equal(lop_errmsg(), "maxpool 'max_me': exclude_pad is an avgpool option (a "
                                      "max never counts padding)");
    a.exclude_pad = 0;
    a.ceil_mode = 3;
    assert_int_equal(lop_graph_add(g, LOP_AVGPOOL, "ceil_me", &x, 1, &a, NULL), LOP_EINVAL);
    assert_string_equal(lop_errmsg(), "avgpool 'ceil_me': ceil_mode must be 0 or 1, got 3");
    a = pad_attrs(0, 2000, 0, 0);
    assert_int_equal(lop_graph_add(g, LOP_PAD, "pad_me", &x, 1, &a, NULL), LOP_EINVAL);
    assert_string_equal(lop_errmsg(), "pad 'pad_me': padding top 0, bottom 2000, left 0, "
                                      "right 0: each must be in 0..1024");
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_batchnorm_maps),
        cmocka_unit_test(test_grad_batchnorm_features),
        cmocka_unit_test(test_grad_relu),
        cmocka_unit_test(test_grad_relu6),
        cmocka_unit_test(test_grad_pad),
        cmocka_unit_test(test_grad_maxpool_stride2),
        cmocka_unit_test(test_grad_maxpool_overlapping_padded),
        cmocka_unit_test(test_grad_avgpool),
        cmocka_unit_test(test_grad_maxpool_ceil),
        cmocka_unit_test(test_grad_avgpool_ceil_and_exclude_pad),
        cmocka_unit_test(test_grad_global_avgpool),
        cmocka_unit_test(test_grad_flatten_linear),
        cmocka_unit_test(test_grad_linear_with_and_without_bias),
        cmocka_unit_test(test_grad_add),
        cmocka_unit_test(test_grad_add_many_inputs),
        cmocka_unit_test(test_grad_shared_and_unread_outputs),
        cmocka_unit_test(test_grad_concat),
        cmocka_unit_test(test_grad_concat_written_or_added),
        cmocka_unit_test(test_grad_global_avgpool_written_or_added),
        cmocka_unit_test(test_grad_pools_and_pad_written_or_added),
        cmocka_unit_test(test_grad_dropout),
        cmocka_unit_test(test_param_grads_accumulate),
        cmocka_unit_test(test_maxpool_forward_by_hand),
        cmocka_unit_test(test_maxpool_forward_matches_definition),
        cmocka_unit_test(test_maxpool_ties_go_to_the_first_cell),
        cmocka_unit_test(test_avgpool_forward_by_hand),
        cmocka_unit_test(test_relu6_forward_and_kinks),
        cmocka_unit_test(test_pad_forward_and_backward_match_definition),
        cmocka_unit_test(test_pools_ceil_mode_by_hand),
        cmocka_unit_test(test_pools_match_definition),
        cmocka_unit_test(test_ceil_mode_pools_small_maps),
        cmocka_unit_test(test_stride_zero_means_kernel),
        cmocka_unit_test(test_concat_and_flatten_forward),
        cmocka_unit_test(test_dropout_statistics),
        cmocka_unit_test(test_flops_per_kind),
        cmocka_unit_test(test_split_relu_add_concat_flatten),
        cmocka_unit_test(test_split_pad_relu6),
        cmocka_unit_test(test_split_pools),
        cmocka_unit_test(test_split_pools_and_pad_same_bits),
        cmocka_unit_test(test_split_linear),
        cmocka_unit_test(test_forward_allocation_failures_are_clean),
        cmocka_unit_test(test_invalid_layers_leave_graph_unchanged),
        cmocka_unit_test(test_error_messages_name_the_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
