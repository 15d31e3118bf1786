/*
 * test_winograd.c - the Winograd F(2x2,3x3) and F(4x4,3x3) kernels
 * (engine/layers/conv_winograd.c)
 * against the textbook seven-loop convolution in double: forward (with bias, and
 * accumulating), input gradient (the adjoint plan) and weight gradient (adding onto
 * what dw held), on odd shapes - odd and unequal H and W so that partial tiles occur,
 * padding 0, 1 and 2 (2 - p for the adjoint), channel counts that are multiples of
 * nothing, 1x1 and 2x2 maps, batches of 1 and 5, a single image's steps split by
 * ranges as conv.c shares them out over threads; then the layer through a graph:
 * finite differences, a weight gradient taken over the whole batch against the
 * textbook one, and outputs and gradients byte-identical on 1 and 2 threads.
 *
 * Error bound.  For every output, |y - y_ref| <= C_BOUND * eps * S, eps = 2^-23 the
 * float epsilon and S the largest sum of |w| |x| over one output's terms (for the
 * gradients: |w| |dy| over one input's, |dy| |x| over one weight's).
 * - F(2x2,3x3), C_BOUND_F2 = 4: B^T and A have entries 0 and +-1 and G entries 0,
 *   +-1/2 and 1, so in one dimension the absolute transforms |A^T| (|G| |g| . |B^T| |d|)
 *   sum, per output, 8 products |g_k| |d_l| where the convolution has 3 (ratio 8/3),
 *   in two dimensions 64 where it has 9 (ratio 7.1); each transformed value passes
 *   through at most 4 roundings before the products and 4 after, and the products'
 *   sums over channels round as a direct convolution's do.  So the error is that of a
 *   direct convolution grown by at most about 7 x (4 + 4 + 1), some 64 eps * S if every
 *   rounding added up; with random signs they mostly cancel.  Measured on the cases
 *   below (uniform data in [-1, 1], printed by the tests): at most 1.13 eps * S forward
 *   and 1.09 eps * S for the gradients.  4 leaves a margin of 3.5x over that.
 * - F(4x4,3x3), C_BOUND_F4 = 40: B^T's entries reach 5, A^T's 8, G's go down to 1/24,
 *   and the same absolute sums reach 48 products per output in one dimension (the
 *   last output of a tile; 16, 17 and 24 for the others) where the convolution has 3,
 *   so in two dimensions up to 256x the direct sum; each value passes through about
 *   twice as many roundings.  The worst case is some thousands of eps * S; measured
 *   on the same cases 12.2 eps * S forward and 9.2 eps * S for the gradients (also
 *   with 128 channels, whose sums over channels add their own rounding), ten times
 *   F(2x2)'s.  40 keeps a margin of 3.3x.
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
#include "internal.h"
#include "layers/conv_winograd.h"
#include "layers/vec.h"

#define C_BOUND_F2 4.0
#define C_BOUND_F4 40.0
#define EPS_F32 1.1920928955078125e-7

typedef struct wcase {
    const char *what;
    int c, h, w, o, ph, pw, batch;
} wcase;

static const wcase cases[] = {
    {"odd map, pad 1", 3, 7, 5, 5, 1, 1, 5},
    {"unpadded, H != W", 5, 9, 6, 7, 0, 0, 1},
    {"pad 2, even map", 2, 5, 8, 3, 2, 2, 5},
    {"1x1 map", 7, 1, 1, 4, 1, 1, 5},
    {"2x2 map", 4, 2, 2, 3, 1, 1, 1},
    {"mixed pads 2 and 1", 3, 2, 3, 6, 2, 1, 5},
    {"pad 1 x 0, wider", 6, 11, 4, 9, 1, 0, 2},
    {"one output", 1, 3, 3, 1, 0, 0, 1},
    {"more channels", 13, 6, 7, 11, 1, 1, 3},
    {"wide", 128, 8, 8, 16, 1, 1, 2},
    {"a map of 81 F(2x2) tiles", 3, 17, 15, 4, 1, 1, 2},
    /* rows of tiles a whole number of loads long (conv_winograd_tiles.h), and rows
     * padded with junk tiles to one (7 -> 8 F(4x4) tiles, 14 -> 16 F(2x2)): partial
     * tiles, padding reached by the loads r columns to the right, a last vector of
     * tiles part full */
    {"whole loads, unpadded", 5, 18, 18, 6, 0, 0, 3},
    {"whole loads, pad 2, partial tiles", 4, 12, 13, 5, 2, 2, 3},
    {"whole loads, pads 1 and 2, 32 columns", 3, 9, 30, 7, 1, 2, 3},
    {"rows of tiles padded with junk tiles", 2, 6, 27, 3, 1, 1, 2},
    {"junk tiles packed out of V, wide enough", 48, 5, 27, 40, 1, 1, 2},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static int out_h(const wcase *k) { return k->h + 2 * k->ph - 2; }
static int out_w(const wcase *k) { return k->w + 2 * k->pw - 2; }

static float *uniform(size_t n, uint64_t seed)
{
    int dims[1] = {(int)n};
    lop_tensor *t = gradcheck_random(1, dims, seed);
    assert_non_null(t);
    float *f = malloc(n * sizeof *f);
    assert_non_null(f);
    memcpy(f, t->data, n * sizeof *f);
    lop_tensor_release(t);
    return f;
}

/* The textbook convolution in double with the sums of absolute terms beside each
 * result: y and ys per output; with dy, dx / dxs per input and dw / dws per weight. */
static void naive(const wcase *k, const float *x, const float *w, const float *bias,
                  const float *dy, double *y, double *ys, double *dx, double *dxs, double *dw,
                  double *dws)
{
    int ho = out_h(k), wo = out_w(k);
    size_t nx = (size_t)k->batch * k->c * k->h * k->w, nw = (size_t)k->o * k->c * 9;
    if (dy) {
        memset(dx, 0, nx * sizeof *dx);
        memset(dxs, 0, nx * sizeof *dxs);
        memset(dw, 0, nw * sizeof *dw);
        memset(dws, 0, nw * sizeof *dws);
    }
    for (int b = 0; b < k->batch; b++)
        for (int oc = 0; oc < k->o; oc++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    size_t yi = (((size_t)b * k->o + oc) * ho + oy) * wo + ox;
                    double s = bias ? bias[oc] : 0.0, sa = 0, g = dy ? dy[yi] : 0.0;
                    for (int ci = 0; ci < k->c; ci++)
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                int iy = oy - k->ph + ki, ix = ox - k->pw + kj;
                                if (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w)
                                    continue;
                                size_t xi = (((size_t)b * k->c + ci) * k->h + iy) * k->w + ix;
                                size_t wi = ((size_t)oc * k->c + ci) * 9 + ki * 3 + kj;
                                s += (double)x[xi] * w[wi];
                                sa += fabs((double)x[xi] * w[wi]);
                                if (dy) {
                                    dx[xi] += g * w[wi];
                                    dxs[xi] += fabs(g * w[wi]);
                                    dw[wi] += g * x[xi];
                                    dws[wi] += fabs(g * x[xi]);
                                }
                            }
                    if (y) {
                        y[yi] = s;
                        ys[yi] = sa;
                    }
                }
}

static double worst_ratio = 0;
static int tile = 2;   /* the output tile size r the cases run with */

/* Every |got - (base + want)| within C_BOUND * eps * max(sums); records the ratio. */
static void assert_bounded(const float *got, const float *base, const double *want,
                           const double *sums, size_t n, const char *what, const char *which)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s = sums[i] > s ? sums[i] : s;
    double bound = (tile == 2 ? C_BOUND_F2 : C_BOUND_F4) * EPS_F32 * (s > 0 ? s : 1.0);
    for (size_t i = 0; i < n; i++) {
        double ref = want[i] + (base ? base[i] : 0.0f);
        double err = fabs((double)got[i] - ref);
        if (s > 0 && err / (EPS_F32 * s) > worst_ratio)
            worst_ratio = err / (EPS_F32 * s);
        if (err > bound)
            fail_msg("%s, %s[%zu]: got %.9g, want %.9g (error %.3g, bound %.3g)", what, which,
                     i, (double)got[i], ref, err, bound);
    }
}

static float *scratch_for(size_t floats)
{
    float *s = malloc(floats * sizeof *s);
    assert_non_null(s);
    return s;
}

/* An epilogue as a fused batchnorm, residual add and relu6 give it, against the naive
 * sums ref of the convolution without bias: y = min(max(ref * mul + add + res, 0), 6). */
static void check_epilogue(const wcase *k, const lop_wino *p, const float *u, const float *x,
                           const double *ref, const double *sums, float *scratch)
{
    size_t hw = (size_t)p->ho * p->wo, ny = (size_t)k->batch * k->o * hw;
    float *mul = uniform((size_t)k->o, 5), *add = uniform((size_t)k->o, 6);
    float *res = uniform(ny, 7), *y = malloc(ny * sizeof *y);
    double *want = malloc(ny * sizeof *want);
    assert_true(mul && add && y && want);
    for (int oc = 0; oc < k->o; oc++)
        mul[oc] = 2.0f * mul[oc] + 1.0f;   /* 1 +- 2 */
    lop_epilogue e = {.mul = mul, .add = add, .residual = res, .lo = 0.0f, .hi = 6.0f,
                      .y = y};
    lop_wino_chunk(p, u, x, k->batch, &e, 0, scratch, y);
    for (size_t i = 0; i < ny; i++) {
        int oc = (int)(i / hw % (size_t)k->o);
        double v = ref[i] * mul[oc] + add[oc] + res[i];
        want[i] = v < 0 ? 0 : v > 6 ? 6 : v;
    }
    double *scaled = malloc(ny * sizeof *scaled);
    assert_non_null(scaled);
    for (size_t i = 0; i < ny; i++)   /* the bound grows with |mul| (at most 3) */
        scaled[i] = 3.0 * sums[i] + 1.0;
    assert_bounded(y, NULL, want, scaled, ny, k->what, "y through an epilogue");
    free(mul), free(add), free(res), free(y), free(want), free(scaled);
}

/* Floats of case k's input, weights and output. */
static void sizes(const wcase *k, size_t *nx, size_t *nw, size_t *ny)
{
    *nx = (size_t)k->batch * k->c * k->h * k->w;
    *nw = (size_t)k->o * k->c * 9;
    *ny = (size_t)k->batch * k->o * out_h(k) * out_w(k);
}

/* Run check on every case with each tile size; print the worst error ratio met. */
static void each_case(void (*check)(const wcase *k, int ci), const char *what)
{
    for (tile = 2; tile <= 4; tile += 2) {
        worst_ratio = 0;
        for (int ci = 0; ci < NCASES; ci++)
            check(&cases[ci], ci);
        print_message("F(%dx%d,3x3): worst %s error / (eps * S): %.3f\n", tile, tile, what,
                      worst_ratio);
    }
}

/* Forward: y = conv(x) + bias in one chunk of the whole batch, then y += conv(x)
 * image by image with the steps split into ranges (as conv.c shares them out). */
static void forward_case(const wcase *k, int ci)
{
    size_t nx, nw, ny;
    sizes(k, &nx, &nw, &ny);
    float *x = uniform(nx, 1 + ci), *w = uniform(nw, 2 + ci), *bias = uniform(k->o, 3);
    double *ref = malloc(ny * sizeof *ref), *sums = malloc(ny * sizeof *sums);
    assert_true(ref && sums);
    lop_wino p;
    lop_wino_plan(&p, tile, k->c, k->h, k->w, k->o, k->ph, k->pw);
    assert_int_equal(p.ho, out_h(k));
    assert_int_equal(p.wo, out_w(k));
    float *u = scratch_for(lop_wino_weight_floats(&p));
    float *scratch = scratch_for(lop_wino_scratch_floats(&p, k->batch));
    float *y = malloc(ny * sizeof *y), *y1 = malloc(ny * sizeof *y1);
    assert_true(y && y1);
    /* packed in two ranges of output channels */
    lop_wino_pack(&p, w, 0, 0, k->o / 2, u);
    lop_wino_pack(&p, w, 0, k->o / 2, k->o, u);
    lop_epilogue biased = {.add = bias, .lo = -INFINITY, .hi = INFINITY, .y = y};
    lop_wino_chunk(&p, u, x, k->batch, &biased, 0, scratch, y);
    naive(k, x, w, bias, NULL, ref, sums, NULL, NULL, NULL, NULL);
    assert_bounded(y, NULL, ref, sums, ny, k->what, "y");

    memcpy(y1, y, ny * sizeof *y);
    naive(k, x, w, NULL, NULL, ref, sums, NULL, NULL, NULL, NULL);
    check_epilogue(k, &p, u, x, ref, sums, scratch);
    size_t xs = (size_t)k->c * k->h * k->w, ys = (size_t)k->o * p.ho * p.wo;
    for (int b = 0; b < k->batch; b++) {
        lop_wino_input(&p, x + b * xs, 1, 0, k->c / 2, lop_wino_v(&p, scratch));
        lop_wino_input(&p, x + b * xs, 1, k->c / 2, k->c, lop_wino_v(&p, scratch));
        for (int xi = 0; xi < p.positions; xi += 5)
            lop_wino_products(&p, u, lop_wino_v(&p, scratch), 1, xi,
                              xi + 5 < p.positions ? xi + 5 : p.positions,
                              lop_wino_m(&p, 1, scratch));
        lop_wino_output(&p, lop_wino_m(&p, 1, scratch), 1, 0, 1, NULL, 1, y1 + b * ys);
        lop_wino_output(&p, lop_wino_m(&p, 1, scratch), 1, 1, k->o, NULL, 1, y1 + b * ys);
    }
    assert_bounded(y1, y, ref, sums, ny, k->what, "y accumulated");
    free(x), free(w), free(bias), free(ref), free(sums), free(u), free(scratch);
    free(y), free(y1);
}

static void test_forward_matches_naive(void **state)
{
    (void)state;
    each_case(forward_case, "forward");
}

/* The input gradient through the adjoint plan (pad 2 - p, flipped transposed
 * weights), added onto what dx held; the weight gradient added onto what dw held. */
static void gradients_case(const wcase *k, int ci)
{
    size_t nx, nw, ny;
    sizes(k, &nx, &nw, &ny);
    float *x = uniform(nx, 10 + ci), *w = uniform(nw, 20 + ci), *dy = uniform(ny, 30 + ci);
    float *dx = uniform(nx, 40), *dx0 = malloc(nx * sizeof *dx0);
    float *dw = uniform(nw, 50), *dw0 = malloc(nw * sizeof *dw0);
    double *rx = malloc(nx * sizeof *rx), *sx = malloc(nx * sizeof *sx);
    double *rw = malloc(nw * sizeof *rw), *sw = malloc(nw * sizeof *sw);
    assert_true(dx0 && dw0 && rx && sx && rw && sw);
    memcpy(dx0, dx, nx * sizeof *dx);
    memcpy(dw0, dw, nw * sizeof *dw);
    naive(k, x, w, NULL, dy, NULL, NULL, rx, sx, rw, sw);

    lop_wino f, d;
    lop_wino_plan(&f, tile, k->c, k->h, k->w, k->o, k->ph, k->pw);
    lop_wino_plan(&d, tile, k->o, out_h(k), out_w(k), k->c, 2 - k->ph, 2 - k->pw);
    assert_int_equal(d.ho, k->h);
    assert_int_equal(d.wo, k->w);
    float *u = scratch_for(lop_wino_weight_floats(&d));
    size_t need = lop_wino_scratch_floats(&d, k->batch);
    if (lop_wino_wgrad_floats(&f, k->batch) > need)
        need = lop_wino_wgrad_floats(&f, k->batch);
    float *scratch = scratch_for(need);
    lop_wino_pack(&d, w, 1, 0, k->c, u);
    lop_wino_chunk(&d, u, dy, k->batch, NULL, 1, scratch, dx);
    assert_bounded(dx, dx0, rx, sx, nx, k->what, "dx");
    lop_wino_wgrad(&f, x, dy, k->batch, scratch, dw);
    assert_bounded(dw, dw0, rw, sw, nw, k->what, "dw");
    /* the weight gradient's steps split into ranges, as conv.c shares them out */
    memcpy(dw, dw0, nw * sizeof *dw);
    float *v = lop_wino_v(&f, scratch), *dm = lop_wino_m(&f, k->batch, scratch);
    float *du = lop_wino_du(&f, k->batch, scratch);
    lop_wino_input(&f, x, k->batch, 0, k->c / 2, v);
    lop_wino_input(&f, x, k->batch, k->c / 2, k->c, v);
    lop_wino_grad_tiles(&f, dy, k->batch, 0, k->o / 2, dm);
    lop_wino_grad_tiles(&f, dy, k->batch, k->o / 2, k->o, dm);
    for (int xi = 0; xi < f.positions; xi += 5)
        lop_wino_wgrad_products(&f, v, dm, k->batch, xi,
                                xi + 5 < f.positions ? xi + 5 : f.positions, du);
    size_t pairs = (size_t)k->o * k->c, half = pairs / 2 / VEC_LANES * VEC_LANES;
    lop_wino_wgrad_fold(&f, du, 0, half, dw);
    lop_wino_wgrad_fold(&f, du, half, pairs, dw);
    assert_bounded(dw, dw0, rw, sw, nw, k->what, "dw by steps");
    free(x), free(w), free(dy), free(dx), free(dx0), free(dw), free(dw0);
    free(rx), free(sx), free(rw), free(sw), free(u), free(scratch);
}

static void test_gradients_match_naive(void **state)
{
    (void)state;
    each_case(gradients_case, "gradient");
}

/* x -> conv -> conv (Winograd when forced or chosen), padded `pad` and 1. */
static lop_graph *two_layers(int c, int h, int w, int o, int pad)
{
    lop_graph *g = lop_graph_new(5);
    assert_non_null(g);
    lop_attrs in = lop_attrs_input(c, h, w), a = lop_attrs_default();
    a.out_channels = o;
    a.kernel_h = a.kernel_w = 3;
    a.pad_h = a.pad_w = pad;
    int x, c1, c2;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &x), LOP_OK);
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "c1", &x, 1, &a, &c1), LOP_OK);
    a.pad_h = a.pad_w = 1;
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "c2", &c1, 1, &a, &c2), LOP_OK);
    return g;
}

static void test_layer_matches_finite_differences(void **state)
{
    (void)state;
    static const int shapes[][5] = {{3, 7, 5, 4, 1}, {2, 5, 6, 3, 2}, {4, 6, 7, 5, 0}};
    for (int r = 2; r <= 4; r += 2) {
        lop_debug_conv_winograd(r);
        for (int i = 0; i < 3; i++) {
            const int *s = shapes[i];
            lop_graph *g = two_layers(s[0], s[1], s[2], s[3], s[4]);
            int dims[4] = {3, s[0], s[1], s[2]};
            lop_tensor *x = gradcheck_random(4, dims, 60 + (uint64_t)i);
            assert_non_null(x);
            /* The loss is linear in each input and weight, so central differences are
             * exact but for rounding, which a step of 0.1 keeps small. */
            double err = gradcheck_graph(g, x, 1, 0.1, 70 + (uint64_t)i);
            if (!(err >= 0 && err < 1e-2))
                fail_msg("F(%dx%d), shape %d: worst relative gradient error %g", r, r, i, err);
            lop_tensor_release(x);
            lop_graph_free(g);
        }
    }
    lop_debug_conv_winograd(-1);
}

/* A layer whose chunks' dU outweigh their V and dM (32 -> 32 on a 5x4 map, chunks of 3
 * images of 2 tiles) takes its weight gradient over the whole batch in shared steps
 * (conv.c's whole_weight_grad), its chunks summing only the bias gradient: the graph's
 * weight, bias and input gradients against the textbook convolution and a double sum
 * of dy, on 1 and 2 threads. */
static void test_whole_batch_weight_gradient_matches_naive(void **state)
{
    (void)state;
    wcase k = {"whole batch", 32, 5, 4, 32, 1, 1, 9};
    lop_graph *g = lop_graph_new(2);
    assert_non_null(g);
    lop_attrs in = lop_attrs_input(k.c, k.h, k.w), a = lop_attrs_default();
    a.out_channels = k.o;
    a.kernel_h = a.kernel_w = 3;
    a.pad_h = a.pad_w = 1;
    int x_id, c_id;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &x_id), LOP_OK);
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "c1", &x_id, 1, &a, &c_id), LOP_OK);
    size_t nx, nw, ny;
    sizes(&k, &nx, &nw, &ny);
    int xdims[4] = {k.batch, k.c, k.h, k.w}, ydims[4] = {k.batch, k.o, out_h(&k), out_w(&k)};
    lop_tensor *x = gradcheck_random(4, xdims, 90), *dy = gradcheck_random(4, ydims, 91);
    assert_true(x && dy);
    const float *w = lop_node_param(g, c_id, 0)->data;
    double *rx = malloc(nx * sizeof *rx), *sx = malloc(nx * sizeof *sx);
    double *rw = malloc(nw * sizeof *rw), *sw = malloc(nw * sizeof *sw);
    assert_true(rx && sx && rw && sw);
    naive(&k, x->data, w, NULL, dy->data, NULL, NULL, rx, sx, rw, sw);
    double rb[32] = {0}, sb[32] = {0};   /* db[oc]: dy summed over channel oc */
    for (size_t i = 0; i < ny; i++) {
        int oc = (int)(i / ((size_t)out_h(&k) * out_w(&k)) % (size_t)k.o);
        rb[oc] += dy->data[i];
        sb[oc] += fabs(dy->data[i]);
    }
    lop_debug_conv_winograd(4);
    tile = 4;
    float *first = NULL;
    for (int threads = 1; threads <= 2; threads++) {
        assert_int_equal(lop_set_threads(threads), LOP_OK);
        lop_graph_zero_grad(g);
        assert_int_equal(lop_graph_forward(g, x, 1), LOP_OK);
        assert_int_equal(lop_graph_backward(g, dy), LOP_OK);
        const float *dw = lop_node_grad(g, c_id, 0)->data;
        assert_bounded(dw, NULL, rw, sw, nw, k.what, "dw");
        assert_bounded(lop_node_grad(g, c_id, 1)->data, NULL, rb, sb, (size_t)k.o, k.what,
                       "db");
        assert_bounded(lop_graph_input_grad(g)->data, NULL, rx, sx, nx, k.what, "dx");
        if (!first) {
            first = malloc(nw * sizeof *first);
            assert_non_null(first);
            memcpy(first, dw, nw * sizeof *first);
        } else {
            assert_memory_equal(first, dw, nw * sizeof *first);
        }
    }
    lop_debug_conv_winograd(-1);
    free(first), free(rx), free(sx), free(rw), free(sw);
    lop_tensor_release(x);
    lop_tensor_release(dy);
    lop_graph_free(g);
}

/* The outputs and gradients a graph gives on `threads` threads, copied: run[0] the
 * output, run[1] the first conv's weight gradient, run[2] the input gradient. */
static void run_on(int threads, lop_graph *g, const lop_tensor *x, const lop_tensor *dy,
                   float *run[3], size_t len[3])
{
    assert_int_equal(lop_set_threads(threads), LOP_OK);
    lop_graph_zero_grad(g);
    assert_int_equal(lop_graph_forward(g, x, 1), LOP_OK);
    assert_int_equal(lop_graph_backward(g, dy), LOP_OK);
    const lop_tensor *t[3] = {lop_graph_output(g), lop_node_grad(g, lop_graph_find(g, "c1"), 0),
                              lop_graph_input_grad(g)};
    for (int i = 0; i < 3; i++) {
        len[i] = t[i]->numel * sizeof(float);
        run[i] = malloc(len[i]);
        assert_non_null(run[i]);
        memcpy(run[i], t[i]->data, len[i]);
    }
}

/* Two 128 -> 128 layers conv.c's own rules run on Winograd give the same bytes on 1
 * and 2 threads: on 8x8 maps at batch 40 both passes (F(4x4) forward, F(2x2)
 * backward; 4 chunks, the weight gradient summed in 4 parts); on 4x4 maps at batch 16
 * the backward pass, its weight gradient over the whole batch; on 16x16 (F(2x2)) and
 * 32x32 (F(4x4)) maps at batch 1 the forward pass, whose steps 2 threads share out
 * while 1 thread runs them whole. */
static void test_same_bytes_on_1_and_2_threads(void **state)
{
    (void)state;
    static const int shapes[][2] = {{8, 40}, {4, 16}, {16, 1}, {32, 1}};   /* map, batch */
    for (int s = 0; s < 4; s++) {
        int map = shapes[s][0], batch = shapes[s][1];
        lop_graph *g = two_layers(128, map, map, 128, 1);
        int dims[4] = {batch, 128, map, map};
        lop_tensor *x = gradcheck_random(4, dims, 80), *dy = gradcheck_random(4, dims, 81);
        assert_true(x && dy);
        float *one[3], *two[3];
        size_t len[3], len2[3];
        run_on(1, g, x, dy, one, len);
        run_on(2, g, x, dy, two, len2);
        for (int i = 0; i < 3; i++) {
            assert_true(len[i] == len2[i]);
            assert_memory_equal(one[i], two[i], len[i]);
            free(one[i]);
            free(two[i]);
        }
        lop_tensor_release(x);
        lop_tensor_release(dy);
        lop_graph_free(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_naive),
        cmocka_unit_test(test_gradients_match_naive),
        cmocka_unit_test(test_layer_matches_finite_differences),
        cmocka_unit_test(test_whole_batch_weight_gradient_matches_naive),
        cmocka_unit_test(test_same_bytes_on_1_and_2_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
