/*
 * test_conv.c - the conv2d layer against independent references: forward and backward
 * against the textbook seven-loop convolution (every path: strided, padded, 1x1 without
 * im2col, grouped, depthwise, non-square, batches split into several chunks with a
 * remainder, thin stride-1 layers on the stencil kernel and thin stride-2 ones on its
 * phase images (forward), one image split over
 * threads, maps no larger than the kernel run tap by tap; every case also forced
 * onto Winograd F(2x2,3x3) and F(4x4,3x3), every ungrouped case onto the tap-by-tap
 * kernels, and run by conv.c's rule of which takes what), input gradients accumulating over
 * several consumers, gradients against finite differences, Kaiming initialisation
 * statistics, FLOP and parameter counts by hand, and attribute validation.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "layers/conv_taps.h"
#include "layers/conv_winograd.h"
#include "lopper.h"

typedef struct conv_case {
    const char *what;
    int c, h, w, o, kh, kw, sh, sw, ph, pw, groups, bias, batch;
} conv_case;

/* The engine unfolds images in chunks of about 4096 output columns (fewer when the
 * column buffer would pass 4M floats), so the "chunked" rows below are sized to give
 * several chunks plus a shorter last one.  Ungrouped stride-1 layers with a kernel
 * above 1x1, padding below the kernel and at most 64 output channels (128 on maps of
 * 16+ columns) run forward and input gradient on the stencil kernel (blocks of 8
 * output channels x 2-3 vectors of positions of the padded-width map); stride-2 ones
 * (up to 64 outputs) the same way forward, their backward on im2col; the others on
 * im2col. */
static const conv_case cases[] = {
    {"stride 2, pad 1", 3, 9, 9, 4, 3, 3, 2, 2, 1, 1, 1, 1, 2},
    {"pad 2, no bias", 2, 7, 8, 5, 3, 3, 1, 1, 2, 2, 1, 0, 3},
    /* 1x1 convolutions over maps of 256+ positions skip im2col; smaller ones don't. */
    {"1x1 direct", 6, 16, 17, 4, 1, 1, 1, 1, 0, 0, 1, 1, 3},
    {"1x1 direct, no bias", 5, 16, 16, 3, 1, 1, 1, 1, 0, 0, 1, 0, 2},
    {"1x1 small map", 6, 5, 5, 4, 1, 1, 1, 1, 0, 0, 1, 1, 3},
    {"1x1 stride 2", 4, 7, 7, 3, 1, 1, 2, 2, 0, 0, 1, 0, 2},
    {"groups 2", 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 2, 1, 2},
    {"depthwise", 5, 7, 7, 5, 3, 3, 1, 1, 1, 1, 5, 1, 2},
    {"non-square", 3, 8, 11, 4, 2, 5, 2, 1, 0, 2, 1, 1, 2},
    /* stride above the kernel: rows of the padded planes that no tap reads */
    {"stride 3, 2x2 kernel", 2, 8, 7, 3, 2, 2, 3, 3, 1, 1, 1, 1, 2},
    /* kernels wider or taller than they are padded */
    {"wide kernel, same width", 3, 6, 7, 4, 3, 5, 1, 1, 1, 2, 1, 1, 2},
    {"tall kernel, same width", 2, 8, 6, 3, 5, 3, 1, 1, 0, 1, 1, 0, 2},
    {"single image", 3, 6, 5, 2, 3, 2, 1, 2, 1, 0, 1, 1, 1},
    /* 36 columns per image: chunks of 114, 114 and 22 images. */
    {"chunked", 2, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 250},
    /* 16 columns per image: chunks of 256 and 44, two groups in each product. */
    {"chunked groups", 4, 4, 4, 6, 3, 3, 1, 1, 1, 1, 2, 0, 300},
    /* 49 columns per image: chunks of 84 and 16. */
    {"chunked depthwise", 5, 7, 7, 5, 3, 3, 1, 1, 1, 1, 5, 1, 100},
    /* One column and 1168 unfolded rows per image: the 4M-float cap gives chunks
     * of 3591 and 9. */
    {"chunked at the cap", 128, 3, 3, 16, 3, 3, 1, 1, 0, 0, 1, 1, 3600},
    /* stencil: 11 outputs = a full block and a partial one; 37 columns, so each row
     * spans two position blocks */
    {"stencil, block remainder", 3, 5, 37, 11, 3, 3, 1, 1, 1, 1, 1, 1, 3},
    /* 15 outputs: a full block and one of 7 rows; the input gradient's 7 outputs one
     * block of 7 (with the cases around, last blocks of every row count 1..8) */
    {"stencil, blocks of 7 rows", 7, 6, 9, 15, 3, 3, 1, 1, 1, 1, 1, 1, 2},
    /* stencil: one image, three blocks shared out over the threads */
    {"stencil, one image", 4, 6, 6, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1},
    {"stencil, 5x5 unpadded", 2, 9, 8, 5, 5, 5, 1, 1, 0, 0, 1, 0, 2},
    /* padding kernel - 1: the input gradient's stencil runs unpadded */
    {"stencil, padding kernel - 1", 3, 4, 5, 6, 3, 2, 1, 1, 2, 1, 1, 1, 2},
    /* one input channel: the input gradient is one partial block */
    {"stencil, one input channel", 1, 7, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 2},
    {"stencil, 128 outputs on 16 columns", 2, 3, 16, 128, 3, 3, 1, 1, 1, 1, 1, 0, 2},
    /* the same layers a little wider, or on a narrower map, go through im2col */
    {"stride 1, too wide for the stencil", 2, 3, 16, 129, 3, 3, 1, 1, 1, 1, 1, 0, 2},
    {"stride 1, 65 outputs on a narrow map", 3, 6, 6, 65, 3, 3, 1, 1, 1, 1, 1, 1, 2},
    /* im2col copies rows of 2, 4 and 8 floats (input and output rows) by their own loops */
    {"im2col, 2x2 maps", 3, 2, 2, 65, 3, 3, 1, 1, 1, 1, 1, 1, 3},
    {"im2col, 4x4 maps", 4, 4, 4, 66, 3, 3, 1, 1, 1, 1, 1, 0, 3},
    {"im2col, 8x8 maps", 2, 8, 8, 65, 3, 3, 1, 1, 1, 1, 1, 1, 2},
    /* Fewer chunks than 4: each chunk's products cut into slices for the threads, by
     * output channels (a small map), or by positions (a wide map, few channels; 992
     * positions, so the last slice is not a multiple of 16; stride 3, as stride 2
     * would take the stencil). */
    {"one image, sliced by channels", 64, 8, 8, 160, 3, 3, 1, 1, 1, 1, 1, 1, 1},
    {"two-image chunks, sliced by channels", 64, 8, 8, 160, 3, 3, 1, 1, 1, 1, 1, 0, 5},
    {"one image, sliced by positions", 3, 64, 61, 30, 7, 7, 3, 3, 3, 3, 1, 1, 1},
    /* Stride 2 on im2col (more than 64 outputs), one image: its channels unfolded by
     * every thread, rows of 18 outputs (a vector and two floats) sliced by positions,
     * rows of 6 by channels. */
    {"one image, stride 2, sliced by positions", 16, 35, 35, 80, 3, 3, 2, 2, 1, 1, 1, 1, 1},
    {"one image, stride 2, sliced by channels", 128, 12, 11, 160, 3, 3, 2, 2, 1, 1, 1, 0, 1},
    /* Stride 2 on the stencil's phase images: a 7x7 stem of 3 channels on a map of odd
     * width, a 3x3 layer on an odd map, a 2x2 kernel unpadded, 5x5 pad 2 with 11
     * outputs (a partial block), 64 outputs; 65 outputs go through im2col (the wider
     * maps' allowance of stride 1 does not apply). */
    {"stride 2 stencil, 7x7 stem", 3, 64, 61, 30, 7, 7, 2, 2, 3, 3, 1, 1, 1},
    {"stride 2 stencil, odd map", 5, 9, 11, 13, 3, 3, 2, 2, 1, 1, 1, 0, 3},
    {"stride 2 stencil, 2x2 unpadded", 4, 8, 10, 9, 2, 2, 2, 2, 0, 0, 1, 1, 2},
    {"stride 2 stencil, 5x5 pad 2", 2, 12, 13, 11, 5, 5, 2, 2, 2, 2, 1, 1, 2},
    {"stride 2 stencil, 64 outputs", 2, 6, 33, 64, 3, 3, 2, 2, 1, 1, 1, 0, 2},
    {"stride 2, 65 outputs", 3, 6, 33, 65, 3, 3, 2, 2, 1, 1, 1, 1, 2},
    /* Winograd by conv.c's own rule (test_winograd_path_matches_naive): 32 channels
     * on an 8x7 map at 33 images take F(4x4) both ways (partial tiles); 128 channels
     * on a 16x16 map F(4x4) forward even for one image, its transformed weights (2.4 MB)
     * made a block of outputs at a time, the blocks shared out over the threads. */
    {"winograd by the rule", 32, 8, 7, 33, 3, 3, 1, 1, 1, 1, 1, 1, 33},
    {"winograd by the rule, one image", 128, 16, 16, 128, 3, 3, 1, 1, 1, 1, 1, 0, 1},
    /* pruned widths below 32 at small batches (the stencil's before 2026-12-06):
     * 13 -> 8 on 16x16 at one image F(4x4), 31 -> 12 on 8x8 at three F(2x2) */
    {"winograd by the rule, thin, one image", 13, 16, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1},
    {"winograd by the rule, thin, 8x8", 31, 8, 8, 12, 3, 3, 1, 1, 1, 1, 1, 0, 3},
    /* one image, transformed weights past 1 MiB: made 16 output channels at a time
     * (lop_wino_block), 150 = 9 blocks and one of 6; F(2x2) by the rule, F(4x4) forced */
    {"winograd blocks, one image", 128, 9, 9, 150, 3, 3, 1, 1, 1, 1, 1, 1, 1},
    /* Tap by tap (conv_taps.c) by the rule: padded, one group, a map no larger than
     * the kernel, 4 images or more.  70 outputs on a 1x1 map are cut into 4 slices of
     * the product, 40 inputs into 2; 150 images are chunks of 64, 64 and 22. */
    {"taps, 2x2 map", 8, 2, 2, 20, 3, 3, 1, 1, 1, 1, 1, 1, 17},
    {"taps, 1x1 map, channel slices", 40, 1, 1, 70, 3, 3, 1, 1, 1, 1, 1, 0, 16},
    {"taps, stride 2 on a 3x3 map", 6, 3, 3, 9, 3, 3, 2, 2, 1, 1, 1, 1, 20},
    {"taps, 2x5 kernel on a 1x4 map", 3, 1, 4, 5, 2, 5, 1, 1, 1, 2, 1, 1, 16},
    {"taps, chunked", 4, 2, 2, 6, 3, 3, 1, 1, 1, 1, 1, 1, 150},
    /* forward sums a block over at most 16 (input position, tap) pairs a pass: the
     * centre of a 5x5 map under a 5x5 kernel joins 25, two passes; 40 images are
     * three vectors of 16 (five of 8 in two chunks with AVX2), 10 outputs a block of
     * 6 and one of 4 (3, 3, 3 and 1) */
    {"taps, 25 pairs an output", 3, 5, 5, 10, 5, 5, 1, 1, 2, 2, 1, 1, 40},
    /* from 16 images a 3x3 pad-1 kernel on a 2x2 map takes 9 products a channel pair,
     * not 16: the weights transformed a vector of 16 input channels at a time (20: one
     * and 4), 33 images in three vectors (the last one lane), 7 outputs in slices of 3
     * and 4; "taps, 2x2 map" and "taps, chunked" above run the same way */
    {"taps, 2x2 map, 20 inputs", 20, 2, 2, 7, 3, 3, 1, 1, 1, 1, 1, 0, 33},
    /* a padded 1x1 kernel: the border outputs read padding alone (im2col by the rule,
     * every tap on padding when forced onto the taps path) */
    {"outputs on padding only", 3, 2, 2, 4, 1, 1, 1, 1, 1, 1, 1, 1, 16},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static const conv_case *find_case(const char *what)
{
    for (int i = 0; i < NCASES; i++)
        if (strcmp(cases[i].what, what) == 0)
            return &cases[i];
    fail_msg("no case '%s'", what);
    return NULL;
}

static int out_h(const conv_case *k) { return (k->h + 2 * k->ph - k->kh) / k->sh + 1; }
static int out_w(const conv_case *k) { return (k->w + 2 * k->pw - k->kw) / k->sw + 1; }

static lop_attrs case_attrs(const conv_case *k)
{
    lop_attrs a = lop_attrs_default();
    a.out_channels = k->o;
    a.kernel_h = k->kh;
    a.kernel_w = k->kw;
    a.stride_h = k->sh;
    a.stride_w = k->sw;
    a.pad_h = k->ph;
    a.pad_w = k->pw;
    a.groups = k->groups;
    a.bias = k->bias;
    return a;
}

/* input -> conv; *cid receives the conv's id.  Returns the first failing status. */
static int build(lop_graph *g, const conv_case *k, int *cid)
{
    lop_attrs in = lop_attrs_input(k->c, k->h, k->w), a = case_attrs(k);
    int x, st = lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &x);
    return st ? st : lop_graph_add(g, LOP_CONV2D, "conv", &x, 1, &a, cid);
}

static void randomize_params(lop_graph *g, int id, uint64_t seed)
{
    for (int p = 0; p < lop_node_nparams(g, id); p++) {
        lop_tensor *t = lop_node_param(g, id, p);
        lop_tensor *r = gradcheck_random(t->ndim, t->shape, seed + (uint64_t)p);
        assert_non_null(r);
        memcpy(t->data, r->data, t->numel * sizeof(float));
        lop_tensor_release(r);
    }
}

/* A graph for case k with the weights (and bias) set to seeded uniform values so
 * that the bias path is exercised too, and a random input batch. */
static lop_graph *setup(const conv_case *k, int *cid, lop_tensor **x)
{
    lop_graph *g = lop_graph_new(7);
    assert_non_null(g);
    assert_int_equal(build(g, k, cid), LOP_OK);
    assert_int_equal(lop_node_nparams(g, *cid), k->bias ? 2 : 1);
    randomize_params(g, *cid, 100);
    int shape[4] = {k->batch, k->c, k->h, k->w};
    *x = gradcheck_random(4, shape, 11);
    assert_non_null(*x);
    return g;
}

/* The textbook convolution in double: forward into y when y is given; with dy, the
 * gradients dx, dw and db (db may be NULL) accumulated from zero. */
static void naive(const conv_case *k, const float *x, const float *w, const float *bias,
                  const float *dy, double *y, double *dx, double *dw, double *db)
{
    int ho = out_h(k), wo = out_w(k), cg = k->c / k->groups, og = k->o / k->groups;
    if (dy) {
        memset(dx, 0, (size_t)k->batch * k->c * k->h * k->w * sizeof *dx);
        memset(dw, 0, (size_t)k->o * cg * k->kh * k->kw * sizeof *dw);
        if (db)
            memset(db, 0, (size_t)k->o * sizeof *db);
    }
    for (int b = 0; b < k->batch; b++)
        for (int oc = 0; oc < k->o; oc++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    size_t yi = (((size_t)b * k->o + oc) * ho + oy) * wo + ox;
                    double s = bias ? bias[oc] : 0.0, g = dy ? dy[yi] : 0.0;
                    if (db)
                        db[oc] += g;
                    for (int ci = 0; ci < cg; ci++)
                        for (int ki = 0; ki < k->kh; ki++)
                            for (int kj = 0; kj < k->kw; kj++) {
                                int iy = oy * k->sh - k->ph + ki, ix = ox * k->sw - k->pw + kj;
                                if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w)
                                    continue;
                                int c = oc / og * cg + ci;
                                size_t xi = (((size_t)b * k->c + c) * k->h + iy) * k->w + ix;
                                size_t wi = (((size_t)oc * cg + ci) * k->kh + ki) * k->kw + kj;
                                s += (double)x[xi] * w[wi];
                                if (dy) {
                                    dx[xi] += g * w[wi];
                                    dw[wi] += g * x[xi];
                                }
                            }
                    if (y)
                        y[yi] = s;
                }
}

/* What tolerances are multiplied by: 10 while the layers run on F(4x4,3x3), whose
 * error bound is ten times F(2x2)'s and the direct sums' (tests/test_winograd.c). */
static double tol_scale = 1.0;

/* Every entry within tol (times tol_scale) relative to max(1, |reference|). */
static void assert_close(const float *got, const double *want, size_t n, double scale,
                         double tol, const char *what, const char *which)
{
    tol *= tol_scale;
    for (size_t i = 0; i < n; i++) {
        double r = scale * want[i];
        double err = fabs(got[i] - r) / (fabs(r) > 1.0 ? fabs(r) : 1.0);
        if (err > tol)
            fail_msg("%s, %s[%zu]: got %.7g, want %.7g", what, which, i, (double)got[i], r);
    }
}

static void test_forward_matches_naive(void **state)
{
    (void)state;
    for (int ci = 0; ci < NCASES; ci++) {
        const conv_case *k = &cases[ci];
        int cid, shape[3];
        lop_tensor *x;
        lop_graph *g = setup(k, &cid, &x);
        assert_int_equal(lop_node_shape(g, cid, shape), 3);
        assert_int_equal(shape[0], k->o);
        assert_int_equal(shape[1], out_h(k));
        assert_int_equal(shape[2], out_w(k));
        for (int train = 0; train <= 1; train++) {
            assert_int_equal(lop_graph_forward(g, x, train), LOP_OK);
            const lop_tensor *y = lop_graph_output(g);
            assert_int_equal(y->ndim, 4);
            assert_int_equal(y->shape[0], k->batch);
            double *ref = malloc(y->numel * sizeof *ref);
            assert_non_null(ref);
            naive(k, x->data, lop_node_param(g, cid, 0)->data,
                  k->bias ? lop_node_param(g, cid, 1)->data : NULL, NULL, ref, NULL, NULL, NULL);
            assert_close(y->data, ref, y->numel, 1.0, 1e-4, k->what, "y");
            free(ref);
        }
        lop_tensor_release(x);
        lop_graph_free(g);
    }
}

/* Two training steps without zeroing: parameter gradients must be twice the
 * reference (they accumulate), the input gradient equal to it (it is per pass). */
static void test_backward_matches_naive(void **state)
{
    (void)state;
    for (int ci = 0; ci < NCASES; ci++) {
        const conv_case *k = &cases[ci];
        int cid;
        lop_tensor *x;
        lop_graph *g = setup(k, &cid, &x);
        assert_int_equal(lop_graph_forward(g, x, 1), LOP_OK);
        const lop_tensor *y = lop_graph_output(g);
        lop_tensor *dy = gradcheck_random(y->ndim, y->shape, 23);
        assert_non_null(dy);
        lop_graph_zero_grad(g);
        assert_int_equal(lop_graph_backward(g, dy), LOP_OK);
        /* a second step on the same scratch, which the forward pass has written over:
         * nothing a backward pass reads may be left from an earlier one */
        assert_int_equal(lop_graph_forward(g, x, 1), LOP_OK);
        assert_int_equal(lop_graph_backward(g, dy), LOP_OK);
        const lop_tensor *w = lop_node_param(g, cid, 0);
        double *dx = malloc(x->numel * sizeof *dx), *dw = malloc(w->numel * sizeof *dw);
        double *db = malloc((size_t)k->o * sizeof *db);
        assert_true(dx && dw && db);
        naive(k, x->data, w->data, NULL, dy->data, NULL, dx, dw, k->bias ? db : NULL);
        /* Gradient sums run over the whole batch, so allow for float accumulation. */
        assert_close(lop_graph_input_grad(g)->data, dx, x->numel, 1.0, 1e-4, k->what, "dx");
        assert_close(lop_node_grad(g, cid, 0)->data, dw, w->numel, 2.0, 2e-4, k->what, "dw");
        if (k->bias)
            assert_close(lop_node_grad(g, cid, 1)->data, db, (size_t)k->o, 2.0, 2e-4, k->what,
                         "db");
        free(dx);
        free(dw);
        free(db);
        lop_tensor_release(dy);
        lop_tensor_release(x);
        lop_graph_free(g);
    }
}

/* x -> conv a, x -> conv b, a + b: the input gradient is the sum of both convs'
 * contributions, so each must add into it rather than overwrite it. */
static void test_input_gradient_accumulates_across_consumers(void **state)
{
    (void)state;
    static const char *const which[] = {"stride 2, pad 1", "1x1 direct", "chunked",
                                        "taps, chunked"};
    for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
        const conv_case *k = find_case(which[i]);
        lop_graph *g = lop_graph_new(9);
        lop_attrs in = lop_attrs_input(k->c, k->h, k->w), a = case_attrs(k);
        lop_attrs plain = lop_attrs_default();
        int x, ca, cb, sum, two[2];
        assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &x), LOP_OK);
        assert_int_equal(lop_graph_add(g, LOP_CONV2D, "a", &x, 1, &a, &ca), LOP_OK);
        assert_int_equal(lop_graph_add(g, LOP_CONV2D, "b", &x, 1, &a, &cb), LOP_OK);
        two[0] = ca;
        two[1] = cb;
        assert_int_equal(lop_graph_add(g, LOP_ADD, "sum", two, 2, &plain, &sum), LOP_OK);
        randomize_params(g, ca, 200);
        randomize_params(g, cb, 300);
        int shape[4] = {k->batch, k->c, k->h, k->w};
        lop_tensor *xt = gradcheck_random(4, shape, 13);
        assert_non_null(xt);
        assert_int_equal(lop_graph_forward(g, xt, 1), LOP_OK);
        const lop_tensor *y = lop_graph_output(g);
        lop_tensor *dy = gradcheck_random(y->ndim, y->shape, 29);
        assert_non_null(dy);
        assert_int_equal(lop_graph_backward(g, dy), LOP_OK);
        const lop_tensor *wa = lop_node_param(g, ca, 0), *wb = lop_node_param(g, cb, 0);
        double *dxa = malloc(xt->numel * sizeof *dxa), *dxb = malloc(xt->numel * sizeof *dxb);
        double *dw = malloc(wa->numel * sizeof *dw);
        assert_true(dxa && dxb && dw);
        naive(k, xt->data, wa->data, NULL, dy->data, NULL, dxa, dw, NULL);
        naive(k, xt->data, wb->data, NULL, dy->data, NULL, dxb, dw, NULL);
        for (size_t e = 0; e < xt->numel; e++)
            dxa[e] += dxb[e];
        assert_close(lop_graph_input_grad(g)->data, dxa, xt->numel, 1.0, 1e-4, k->what, "dx");
        free(dxa);
        free(dxb);
        free(dw);
        lop_tensor_release(dy);
        lop_tensor_release(xt);
        lop_graph_free(g);
    }
}

/* Finite differences of step h over every case of at most 300 images. */
static void gradients_match_finite_differences(double h)
{
    /* Every case but the largest (entries are sampled, so even the chunked ones are
     * quick); the projection's seed differs per case. */
    for (int ci = 0; ci < NCASES; ci++) {
        const conv_case *k = &cases[ci];
        if (k->batch > 300)
            continue;
        int cid;
        lop_tensor *x;
        lop_graph *g = setup(k, &cid, &x);
        double err = gradcheck_graph(g, x, 1, h, 31 + (uint64_t)ci);
        if (!(err >= 0 && err < 1e-2))
            fail_msg("%s: worst relative gradient error %g", k->what, err);
        lop_tensor_release(x);
        lop_graph_free(g);
    }
}

/* The layer is linear in each input and weight, so central differences are exact but
 * for rounding, which a step of 0.1 keeps small: Winograd layers round a few times
 * more than direct sums (with a step of 1e-2, the 128-channel case's worst error was
 * 1.3%). */
static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    gradients_match_finite_differences(0.1);
}

/* The same cases with every layer the Winograd kernels can run (3x3, stride 1, one
 * group, padding up to 2) forced onto them, with either tile size: forward, backward
 * and finite differences (at a step of 1e-2 one case's worst error was 1.4%; F(4x4)
 * rounds ten times more, so its differences take a step of 1 - exact but for rounding,
 * the layer being linear - and its tolerances are ten times wider); then as conv.c's
 * rule picks, with F(4x4)'s tolerances. */
static void test_winograd_path_matches_naive(void **state)
{
    for (int r = 2; r <= 4; r += 2) {
        lop_debug_conv_winograd(r);
        tol_scale = r == 4 ? 10.0 : 1.0;
        test_forward_matches_naive(state);
        test_backward_matches_naive(state);
        test_input_gradient_accumulates_across_consumers(state);
        gradients_match_finite_differences(r == 4 ? 1.0 : 0.1);
    }
    /* conv.c's own rule, which picks F(4x4) for many of these layers. */
    lop_debug_conv_winograd(-1);
    tol_scale = 10.0;
    test_forward_matches_naive(state);
    test_backward_matches_naive(state);
    gradients_match_finite_differences(1.0);
    tol_scale = 1.0;
    lop_debug_conv_winograd(0);
}

/* Every ungrouped case forced onto the tap-by-tap kernels: exact sums in another
 * order, so the direct paths' tolerances. */
static void test_taps_path_matches_naive(void **state)
{
    lop_debug_conv_taps(1);
    test_forward_matches_naive(state);
    test_backward_matches_naive(state);
    test_input_gradient_accumulates_across_consumers(state);
    gradients_match_finite_differences(0.1);
    lop_debug_conv_taps(-1);
}

static void test_init_is_kaiming_normal(void **state)
{
    (void)state;
    const conv_case k = {"init", 32, 5, 5, 64, 3, 3, 1, 1, 1, 1, 2, 1, 1};
    lop_graph *g = lop_graph_new(3);
    int cid;
    assert_int_equal(build(g, &k, &cid), LOP_OK);
    assert_int_equal(lop_node_nparams(g, cid), 2);
    assert_string_equal(lop_node_param_name(g, cid, 0), "weight");
    assert_string_equal(lop_node_param_name(g, cid, 1), "bias");
    const lop_tensor *w = lop_node_param(g, cid, 0), *b = lop_node_param(g, cid, 1);
    int want[4] = {64, 16, 3, 3};
    assert_int_equal(w->ndim, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(w->shape[i], want[i]);
    assert_int_equal(b->ndim, 1);
    assert_int_equal(b->shape[0], 64);
    assert_non_null(lop_node_grad(g, cid, 0));
    assert_non_null(lop_node_grad(g, cid, 1));
    for (int i = 0; i < 64; i++)
        assert_true(b->data[i] == 0.0f);
    /* fan_in = 16 * 3 * 3 = 144; 9216 draws pin the std to within about 1.5%. */
    double s = 0, s2 = 0;
    for (size_t i = 0; i < w->numel; i++) {
        s += w->data[i];
        s2 += (double)w->data[i] * w->data[i];
    }
    double mean = s / w->numel, sd = sqrt(s2 / w->numel - mean * mean);
    double expect = sqrt(2.0 / 144.0);
    assert_true(fabs(mean) < 0.05 * expect);
    assert_true(fabs(sd - expect) < 0.05 * expect);
    lop_graph_free(g);

    /* Without a bias the weight is the only parameter. */
    conv_case nb = k;
    nb.bias = 0;
    g = lop_graph_new(3);
    assert_int_equal(build(g, &nb, &cid), LOP_OK);
    assert_int_equal(lop_node_nparams(g, cid), 1);
    assert_int_equal(lop_node_find_param(g, cid, "bias"), -1);
    lop_graph_free(g);
}

static void test_flops_and_params_by_hand(void **state)
{
    (void)state;
    /* 4x10x10 -> 6 filters 3x3, stride 2, pad 1, 2 groups: output 6x5x5, each output
     * a 2*3*3 = 18-term dot product: 2 * 18 * 150 = 5400 FLOPs; 6*2*3*3 + 6 = 114
     * parameters. */
    const conv_case k = {"flops", 4, 10, 10, 6, 3, 3, 2, 2, 1, 1, 2, 1, 1};
    lop_graph *g = lop_graph_new(1);
    int cid;
    assert_int_equal(build(g, &k, &cid), LOP_OK);
    assert_float_equal(lop_node_flops(g, cid), 5400.0, 1e-9);
    assert_int_equal(lop_node_params(g, cid), 114);
    lop_graph_free(g);
}

/* Adding the conv fails with `status`, names the node, and changes nothing. */
static void expect_refused(int c, int h, int w, int in_ndim, lop_attrs a, int status)
{
    lop_graph *g = lop_graph_new(1);
    lop_attrs in = lop_attrs_input(c, h, w);
    in.in_ndim = in_ndim;
    int x, id = -5;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &x), LOP_OK);
    uint64_t gen = lop_graph_generation(g);
    int st = lop_graph_add(g, LOP_CONV2D, "bad_conv", &x, 1, &a, &id);
    if (st != status)
        fail_msg("expected %s, got %s: %s", lop_status_name(status), lop_status_name(st),
                 lop_errmsg());
    assert_non_null(strstr(lop_errmsg(), "bad_conv"));
    assert_int_equal(id, -5);
    assert_int_equal(lop_graph_size(g), 1);
    assert_true(lop_graph_generation(g) == gen);
    assert_int_equal(lop_graph_find(g, "bad_conv"), -1);
    lop_graph_free(g);
}

static void test_invalid_attributes_are_refused(void **state)
{
    (void)state;
    const conv_case ok = {"ok", 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 2, 1, 1};
    lop_attrs a;
    /* groups must divide both channel counts */
    a = case_attrs(&ok);
    expect_refused(3, 6, 6, 3, a, LOP_ESHAPE);
    a.out_channels = 5;
    expect_refused(4, 6, 6, 3, a, LOP_EINVAL);
    /* kernel larger than the padded input, in either direction */
    a = case_attrs(&ok);
    a.kernel_h = 9;
    expect_refused(4, 6, 6, 3, a, LOP_ESHAPE);
    a = case_attrs(&ok);
    a.kernel_w = 5;
    a.pad_w = 0;
    expect_refused(4, 6, 4, 3, a, LOP_ESHAPE);
    /* a feature-vector input */
    a = case_attrs(&ok);
    a.groups = 1;
    expect_refused(4, 0, 0, 1, a, LOP_ESHAPE);
    /* attributes out of range */
    int *fields[] = {&a.out_channels, &a.kernel_h, &a.kernel_w, &a.stride_h, &a.stride_w,
                     &a.groups};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        a = case_attrs(&ok);
        *fields[i] = 0;
        expect_refused(4, 6, 6, 3, a, LOP_EINVAL);
    }
    a = case_attrs(&ok);
    a.pad_h = -1;
    expect_refused(4, 6, 6, 3, a, LOP_EINVAL);
    a = case_attrs(&ok);
    a.bias = 2;
    expect_refused(4, 6, 6, 3, a, LOP_EINVAL);
    /* the kernel exactly filling the padded input is fine: a 1x1 output */
    lop_graph *g = lop_graph_new(1);
    conv_case fit = ok;
    fit.kh = 8;
    fit.kw = 8;
    int cid, shape[3];
    assert_int_equal(build(g, &fit, &cid), LOP_OK);
    assert_int_equal(lop_node_shape(g, cid, shape), 3);
    assert_int_equal(shape[1], 1);
    assert_int_equal(shape[2], 1);
    lop_graph_free(g);
}

/* Every allocation of building, forward and backward failing in turn gives
 * LOP_ENOMEM and leaks nothing (the sanitizer build checks the leaks). */
static void test_allocation_failures_are_clean(void **state)
{
    (void)state;
    const conv_case *k = find_case("chunked");   /* uses the column scratch */
    int shape[4] = {k->batch, k->c, k->h, k->w};
    lop_tensor *x = gradcheck_random(4, shape, 5);
    assert_non_null(x);
    int succeeded = 0;
    for (long n = 1; !succeeded && n < 1000; n++) {
        lop_graph *g = lop_graph_new(1);
        if (!g)
            continue;
        lop_debug_fail_alloc(n);
        int cid, st = build(g, k, &cid);
        if (st == LOP_OK)
            st = lop_graph_forward(g, x, 1);
        if (st == LOP_OK)
            st = lop_graph_backward(g, lop_graph_output(g));
        lop_debug_fail_alloc(0);
        if (st != LOP_OK && st != LOP_ENOMEM)
            fail_msg("allocation %ld failing gave %s: %s", n, lop_status_name(st),
                     lop_errmsg());
        succeeded = st == LOP_OK;
        lop_graph_free(g);
    }
    assert_true(succeeded);
    lop_tensor_release(x);
}

int main(void)
{
    /* At least two workers, so that chunks and a single image's blocks are split. */
    setenv("LOP_THREADS", "2", 0);
    /* The other paths at their own tolerances; test_winograd_path_matches_naive runs
     * the cases on the Winograd kernels and by conv.c's rule. */
    lop_debug_conv_winograd(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_naive),
        cmocka_unit_test(test_backward_matches_naive),
        cmocka_unit_test(test_input_gradient_accumulates_across_consumers),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_winograd_path_matches_naive),
        cmocka_unit_test(test_taps_path_matches_naive),
        cmocka_unit_test(test_init_is_kaiming_normal),
        cmocka_unit_test(test_flops_and_params_by_hand),
        cmocka_unit_test(test_invalid_attributes_are_refused),
        cmocka_unit_test(test_allocation_failures_are_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
