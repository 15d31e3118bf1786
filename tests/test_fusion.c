/*
 * test_fusion.c - an evaluation pass runs chains fused (graph/fusion.c): a
 * convolution with the batchnorm and relu / relu6 after it, an add or a batchnorm with
 * the relu after it.  Checked on every convolution path (stencil, im2col, direct 1x1,
 * Winograd F(2x2) and F(4x4), tap by tap), at batch 1 and 5:
 * - a conv -> batchnorm -> relu and a conv -> relu6 chain against naive loops in
 *   double (convolution, bias, batchnorm with running statistics, clamp);
 * - a graph of every chain shape (residual adds among them) and of nodes that must
 *   not fuse (a batchnorm read twice, a convolution read twice, an add of three
 *   inputs, an add whose other input comes after the convolution, the last node a
 *   batchnorm) against the same graph run node by node (lop_graph_forward_until,
 *   which never fuses), on the output and on every node a fused pass still writes;
 * - a training pass after a fused one gives the same output and gradients as before
 *   it (fusion leaves no trace), and failed allocations in a fused pass fail cleanly;
 * - a pass of more than 8 images runs its early nodes in slices of images, depth first
 *   (graph/slices.c): the plan (which nodes, which buffers), and the output and every
 *   node the slices leave written against the graph run node by node, on every path,
 *   with slices of 1, 3 and the rule's 7-8 images, frozen, after failed allocations.
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
#include "graph_build.h"
#include "internal.h"
#include "layers/conv_taps.h"
#include "layers/conv_winograd.h"

/* The convolution paths: Winograd mode and tap-by-tap mode for lop_debug_conv_*. */
typedef struct path {
    const char *name;
    int winograd, taps;
} path;

static const path paths[] = {
    {"stencil, im2col and direct", 0, 0},
    {"Winograd F(2x2)", 2, 0},
    {"Winograd F(4x4)", 4, 0},
    {"tap by tap", 0, 1},
};

static void use_path(const path *p)
{
    lop_debug_conv_winograd(p->winograd);
    lop_debug_conv_taps(p->taps);
}

static void default_paths(void)
{
    lop_debug_conv_winograd(-1);
    lop_debug_conv_taps(-1);
}

static int batchnorm(lop_graph *g, const char *name, int in, lop_rng *r)
{
    int id = add1(g, LOP_BATCHNORM, name, in, NULL);
    batchnorm_terms(g, id, r);
    return id;
}

static lop_tensor *copy_of(const lop_tensor *t)
{
    lop_tensor *c = lop_tensor_new(t->ndim, t->shape);
    assert_non_null(c);
    memcpy(c->data, t->data, t->numel * sizeof *c->data);
    return c;
}

/* got equals want within 1e-5 of want's largest magnitude, NaN where want is NaN. */
static void assert_close(const float *got, const double *want, size_t n, const char *what)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = isnan(want[i]) ? scale : fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (isnan(got[i]) != isnan(want[i]) || fabs(got[i] - want[i]) > 1e-5 * (scale + 1))
            fail_msg("%s[%zu]: got %.9g, want %.9g", what, i, (double)got[i], want[i]);
}

static void assert_same(const lop_tensor *got, const lop_tensor *want, const char *what)
{
    assert_int_equal(got->numel, want->numel);
    double *w = malloc(want->numel * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < want->numel; i++)
        w[i] = want->data[i];
    assert_close(got->data, w, want->numel, what);
    free(w);
}

/* ---- one chain against naive loops ---------------------------------------------- */

enum { NC = 5, NO = 12, NH = 9, NW = 7 };

/* conv(x) + bias at (b, o, y, x) for a 3x3 kernel, padding 1, in double. */
static double naive_conv(const lop_tensor *x, const float *w, const float *bias, int b, int o,
                         int y, int xx)
{
    double s = bias ? bias[o] : 0.0;
    for (int c = 0; c < NC; c++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                int yy = y + i - 1, xc = xx + j - 1;
                if (yy >= 0 && yy < NH && xc >= 0 && xc < NW)
                    s += (double)w[((o * NC + c) * 3 + i) * 3 + j] *
                         x->data[((b * NC + c) * NH + yy) * NW + xc];
            }
    return s;
}

static const float *param(lop_graph *g, int id, const char *name)
{
    int k = lop_node_find_param(g, id, name);
    assert_true(k >= 0);
    return lop_node_param(g, id, k)->data;
}

/* x -> conv (bias) -> batchnorm -> relu, or with relu6 -> conv -> relu6. */
static void chain_against_naive(int with_bn, int batch)
{
    int x;
    lop_graph *g = new_graph(3, NC, NH, NW, &x);
    lop_rng r;
    lop_rng_seed(&r, 41);
    int c = conv(g, "c", x, NO, 1);
    fill_param(g, c, "weight", -0.4, 0.4, &r);
    fill_param(g, c, "bias", -0.5, 0.5, &r);
    int bn = with_bn ? batchnorm(g, "bn", c, &r) : -1;
    add1(g, with_bn ? LOP_RELU : LOP_RELU6, "act", with_bn ? bn : c, NULL);
    lop_tensor *in = random_maps(batch, NC, NH, NW, 42);
    for (int i = 0; i < NO * NC * 9; i++)   /* relu6's upper clamp must be reached */
        ((float *)param(g, c, "weight"))[i] *= with_bn ? 1.0f : 6.0f;
    size_t n = (size_t)batch * NO * NH * NW;
    double *want = malloc(n * sizeof *want);
    assert_non_null(want);
    const float *w = param(g, c, "weight"), *bias = param(g, c, "bias");
    int clamped = 0;
    for (int b = 0; b < batch; b++)
        for (int o = 0; o < NO; o++)
            for (int y = 0; y < NH; y++)
                for (int xx = 0; xx < NW; xx++) {
                    double v = naive_conv(in, w, bias, b, o, y, xx);
                    if (with_bn)
                        v = (v - param(g, bn, "running_mean")[o]) /
                                sqrt(param(g, bn, "running_var")[o] + 1e-5) *
                                param(g, bn, "weight")[o] +
                            param(g, bn, "bias")[o];
                    double hi = with_bn ? INFINITY : 6.0;
                    clamped += v > hi;
                    want[((b * NO + o) * NH + y) * NW + xx] = v < 0 ? 0 : v > hi ? hi : v;
                }
    if (!with_bn)
        assert_true(clamped > 0);
    for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
        use_path(&paths[p]);
        assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
        assert_close(lop_graph_output(g)->data, want, n, paths[p].name);
    }
    default_paths();
    free(want);
    lop_tensor_release(in);
    lop_graph_free(g);
}

static void conv_batchnorm_relu_naive(void **state)
{
    chain_against_naive(1, 1);
    chain_against_naive(1, 5);
}

static void conv_relu6_naive(void **state)
{
    chain_against_naive(0, 1);
    chain_against_naive(0, 5);
}

/* ---- every chain shape against the graph run node by node ------------------------ */

/* An add of a and b (and c unless it is -1). */
static int sum(lop_graph *g, const char *name, int a, int b, int c)
{
    int in[3] = {a, b, c}, id;
    assert_int_equal(lop_graph_add(g, LOP_ADD, name, in, c < 0 ? 2 : 3, NULL, &id), LOP_OK);
    return id;
}

/* x [6, 16, 16]:
 *   c1 -> bn1 -> r1                       conv, batchnorm, relu
 *   c2 (bias) -> r2 (relu6)               conv, relu6
 *   c3 -> bn3, read by s3 = bn3 + r2      conv, batchnorm (bn3 read twice, its last
 *   and by r3                             reader a relu that must not fuse)
 *   a4 = r3 + s3 -> r4                    add, relu
 *   bn5 -> r5                             batchnorm, relu
 *   c6 (1x1), read by a6 = c6 + r5        not fused (read twice, last by a batchnorm)
 *   and by bn6 -> r6                      batchnorm, relu
 *   a7 = r6 + a6 + r5 -> r7               add of three, relu
 *   c9 -> bn9 -> a9 = bn9 + r7 -> r9      conv, batchnorm, residual add, relu
 *   c10 -> a10 = c10 + r9                 conv, residual add
 *   c11 -> bn11, c12 -> bn12,             the add joins c12's chain (bn11 comes
 *   a12 = bn11 + bn12 -> r12              before c12), not c11's (bn12 after c11)
 *   c8 (stride 2, 2 groups) -> bn8        conv, batchnorm: the last node */
static lop_graph *every_chain(void)
{
    int x;
    lop_graph *g = new_graph(3, 6, 16, 16, &x);
    lop_rng r;
    lop_rng_seed(&r, 43);
    int c1 = conv(g, "c1", x, 8, 0);
    int r1 = add1(g, LOP_RELU, "r1", batchnorm(g, "bn1", c1, &r), NULL);
    int c2 = conv(g, "c2", r1, 8, 1);
    fill_param(g, c2, "bias", -0.5, 0.5, &r);
    int r2 = add1(g, LOP_RELU6, "r2", c2, NULL);
    int bn3 = batchnorm(g, "bn3", conv(g, "c3", r2, 8, 0), &r);
    int s3 = sum(g, "s3", bn3, r2, -1);
    int r3 = add1(g, LOP_RELU, "r3", bn3, NULL);
    int r4 = add1(g, LOP_RELU, "r4", sum(g, "a4", r3, s3, -1), NULL);
    int r5 = add1(g, LOP_RELU, "r5", batchnorm(g, "bn5", r4, &r), NULL);
    int c6 = conv_k(g, "c6", r5, 8, 1, 1, 1);
    int a6 = sum(g, "a6", c6, r5, -1);
    int r6 = add1(g, LOP_RELU, "r6", batchnorm(g, "bn6", c6, &r), NULL);
    int r7 = add1(g, LOP_RELU, "r7", sum(g, "a7", r6, a6, r5), NULL);
    int bn9 = batchnorm(g, "bn9", conv(g, "c9", r7, 8, 0), &r);
    int r9 = add1(g, LOP_RELU, "r9", sum(g, "a9", bn9, r7, -1), NULL);
    int c10 = conv(g, "c10", r9, 8, 1);
    fill_param(g, c10, "bias", -0.5, 0.5, &r);
    int a10 = sum(g, "a10", c10, r9, -1);
    int bn11 = batchnorm(g, "bn11", conv(g, "c11", a10, 8, 0), &r);
    int bn12 = batchnorm(g, "bn12", conv(g, "c12", a10, 8, 0), &r);
    int r12 = add1(g, LOP_RELU, "r12", sum(g, "a12", bn11, bn12, -1), NULL);
    batchnorm(g, "bn8", conv_k(g, "c8", r12, 8, 3, 2, 2), &r);
    return g;
}

/* Nodes a fused pass still writes: all but those fused away (and the convolutions,
 * batchnorms and adds heading a chain, whose own outputs it skips). */
static const char *const written[] = {"x",  "r1", "r2", "bn3", "s3", "r3",  "r4",  "r5",
                                      "c6", "a6", "r6", "r7",  "r9", "a10", "bn11", "r12",
                                      "bn8"};

static void every_chain_against_unfused(void **state)
{
    lop_graph *g = every_chain();
    int n = lop_graph_size(g);
    /* batch 1, batch 5, and batch 5 with a NaN pixel: a relu gives 0 for it, fused or
     * not, and a node without an activation passes it on */
    for (int run = 0; run < 3; run++) {
        int batch = run == 0 ? 1 : 5;
        lop_tensor *in = random_maps(batch, 6, 16, 16, 44 + batch);
        if (run == 2)
            in->data[3 * 256 + 5 * 16 + 7] = NAN;
        for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
            use_path(&paths[p]);
            assert_int_equal(lop_graph_forward_until(g, in, n - 1), LOP_OK);
            size_t k = sizeof written / sizeof *written;
            lop_tensor *want[sizeof written / sizeof *written];
            for (size_t i = 0; i < k; i++)
                want[i] = copy_of(lop_node_output(g, lop_graph_find(g, written[i])));
            for (size_t i = 1; i < k; i++)   /* stale values must not pass */
                memset(lop_node_output(g, lop_graph_find(g, written[i]))->data, 0xff,
                       want[i]->numel * sizeof(float));
            assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
            for (size_t i = 0; i < k; i++) {
                char what[96];
                snprintf(what, sizeof what, "%s, batch %d, %s", paths[p].name, batch,
                         written[i]);
                assert_same(lop_node_output(g, lop_graph_find(g, written[i])), want[i], what);
                lop_tensor_release(want[i]);
            }
        }
        lop_tensor_release(in);
    }
    default_paths();
    lop_graph_free(g);
}

/* ---- slices of images --------------------------------------------------------- */

/* When node i's output is written in a fused pass (its chain's head runs), and the
 * last node that reads it. */
static int written_at(const int *fused, int n, int i)
{
    for (int h = 1; h < n; h++)
        if (fused[h] == i)
            return h;
    return i;
}

static int last_reader(const lop_graph *g, int i)
{
    int last = i;
    for (int j = i + 1; j < g->n; j++)
        for (int k = 0; k < g->nodes[j]->ninputs; k++)
            if (g->nodes[j]->inputs[k] == i)
                last = j;
    return last;
}

/* The plan of every_chain at batch 20: slices of 7 images through every node up to
 * r12 (c8's output is 8x8, below the rule's 13x13); x and r12 (which c8 reads after
 * the slices) in their whole tensors; the inside of every chain (its head too: the
 * chain writes into its last node) unwritten; every other node in a pool buffer, no
 * two nodes sharing one while both are in use (from the write to the last read), and
 * fewer buffers than nodes.  No slices at batch 8, or when switched off. */
static void slices_plan(void **state)
{
    lop_graph *g = every_chain();
    int n = lop_graph_size(g), *fused = malloc((size_t)n * sizeof *fused);
    assert_non_null(fused);
    assert_int_equal(lop_fusion_plan(g, fused), LOP_OK);
    lop_slices s;
    assert_int_equal(lop_slices_plan(g, n - 1, 20, fused, &s), LOP_OK);
    int r12 = lop_graph_find(g, "r12");
    assert_int_equal(s.end, r12);
    assert_int_equal(s.images, 7);
    assert_int_equal(s.place[0], LOP_SLICE_WHOLE);
    assert_int_equal(s.place[r12], LOP_SLICE_WHOLE);
    int pooled = 0;
    for (int i = 1; i < r12; i++) {
        if (written_at(fused, n, i) == i && fused[i] != LOP_FUSED_SELF) {
            assert_int_equal(s.place[i], LOP_SLICE_UNWRITTEN);
            continue;
        }
        assert_in_range(s.place[i], 0, s.buffers - 1);
        pooled++;
        for (int j = 1; j < i; j++)
            if (s.place[j] == s.place[i] &&
                !(last_reader(g, j) < written_at(fused, n, i) ||
                  last_reader(g, i) < written_at(fused, n, j)))
                fail_msg("%s and %s share buffer %d while both are in use",
                         g->nodes[j]->name, g->nodes[i]->name, s.place[i]);
    }
    assert_true(s.buffers >= 2 && s.buffers < pooled);
    assert_int_equal(s.buffer_floats, (size_t)7 * 8 * 16 * 16);
    free(s.place);
    assert_int_equal(lop_slices_plan(g, n - 1, 8, fused, &s), LOP_OK);
    assert_int_equal(s.end, 0);
    lop_debug_forward_slices(0);
    assert_int_equal(lop_slices_plan(g, n - 1, 20, fused, &s), LOP_OK);
    assert_int_equal(s.end, 0);
    lop_debug_forward_slices(-1);
    free(fused);
    lop_graph_free(g);
}

/* every_chain's output, and the nodes after the slices and those they read (r12,
 * bn8), against the graph run node by node, which never slices: on every path, at
 * batch 20 with slices of 1, 3 and the rule's 7, at batch 64 with the rule's 8, and a
 * frozen graph at batch 20. */
static void sliced_pass_against_unfused(void **state)
{
    static const char *const whole[] = {"r12", "bn8"};
    static const struct { int batch, images, frozen; } runs[] = {
        {20, 1, 0}, {20, 3, 0}, {20, -1, 0}, {64, -1, 0}, {20, -1, 1},
    };
    lop_graph *g = every_chain();
    int n = lop_graph_size(g);
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        lop_tensor *in = random_maps(runs[r].batch, 6, 16, 16, 60 + r);
        in->data[7 * 6 * 256 + 3 * 256 + 9] = NAN;   /* image 7: in the second slice */
        for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
            use_path(&paths[p]);
            lop_debug_forward_slices(0);
            assert_int_equal(lop_graph_forward_until(g, in, n - 1), LOP_OK);
            lop_tensor *want[2];
            for (int i = 0; i < 2; i++) {
                lop_tensor *t = lop_node_output(g, lop_graph_find(g, whole[i]));
                want[i] = copy_of(t);
                memset(t->data, 0xff, t->numel * sizeof(float));   /* stale must not pass */
            }
            lop_debug_forward_slices(runs[r].images);
            lop_graph_freeze(g, runs[r].frozen);
            assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
            for (int i = 0; i < 2; i++) {
                char what[96];
                snprintf(what, sizeof what, "%s, batch %d, slices of %d%s, %s", paths[p].name,
                         runs[r].batch, runs[r].images, runs[r].frozen ? ", frozen" : "",
                         whole[i]);
                assert_same(lop_node_output(g, lop_graph_find(g, whole[i])), want[i], what);
                lop_tensor_release(want[i]);
            }
            lop_graph_freeze(g, 0);
        }
        lop_tensor_release(in);
    }
    lop_debug_forward_slices(-1);
    default_paths();
    lop_graph_free(g);
}

/* A training pass right after a fused evaluation gives what it gives without one. */
static void training_after_fused_pass(void **state)
{
    lop_graph *g = every_chain();
    lop_tensor *in = random_maps(4, 6, 16, 16, 50);
    lop_tensor *runs[2][2];
    for (int fused_first = 0; fused_first < 2; fused_first++) {
        if (fused_first)
            assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
        lop_graph_zero_grad(g);
        assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
        runs[fused_first][0] = copy_of(lop_graph_output(g));
        lop_tensor *dout = copy_of(lop_graph_output(g));
        for (size_t i = 0; i < dout->numel; i++)
            dout->data[i] = (float)((i % 7) - 3) / 3.0f;
        assert_int_equal(lop_graph_backward(g, dout), LOP_OK);
        int c1 = lop_graph_find(g, "c1");
        runs[fused_first][1] = copy_of(lop_node_grad(g, c1, lop_node_find_param(g, c1, "weight")));
        lop_tensor_release(dout);
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(runs[0][k]->numel, runs[1][k]->numel);
        assert_memory_equal(runs[0][k]->data, runs[1][k]->data,
                            runs[0][k]->numel * sizeof(float));
        lop_tensor_release(runs[0][k]);
        lop_tensor_release(runs[1][k]);
    }
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* ---- training passes: a batchnorm or add with the relu that alone reads it -------- */

/* x [6, 8, 8]: c1 -> bn1 -> q1 (relu6) -> c2 -> bn2, a2 = bn2 + q1 -> q2 (relu6), the
 * batchnorms' scales large enough that the cap clips. */
static lop_graph *relu6_chains(void)
{
    int x;
    lop_graph *g = new_graph(3, 6, 8, 8, &x);
    lop_rng r;
    lop_rng_seed(&r, 45);
    int bn1 = batchnorm(g, "bn1", conv(g, "c1", x, 8, 0), &r);
    fill_param(g, bn1, "weight", 3, 8, &r);
    int q1 = add1(g, LOP_RELU6, "q1", bn1, NULL);
    int bn2 = batchnorm(g, "bn2", conv(g, "c2", q1, 8, 0), &r);
    fill_param(g, bn2, "weight", 3, 8, &r);
    add1(g, LOP_RELU6, "q2", sum(g, "a2", bn2, q1, -1), NULL);
    return g;
}

/* One training step (forward, backward of a fixed output gradient) from zeroed
 * gradients. */
static void training_step(lop_graph *g, const lop_tensor *in)
{
    lop_graph_zero_grad(g);
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    lop_tensor *dout = copy_of(lop_graph_output(g));
    for (size_t i = 0; i < dout->numel; i++)
        dout->data[i] = (float)((i % 7) - 3) / 3.0f;
    assert_int_equal(lop_graph_backward(g, dout), LOP_OK);
    lop_tensor_release(dout);
}

static void assert_same_bits(const lop_tensor *got, const lop_tensor *want, const char *what,
                             const char *node)
{
    assert_int_equal(got->numel, want->numel);
    if (memcmp(got->data, want->data, got->numel * sizeof(float)) != 0)
        fail_msg("%s of node %s differs between the fused and the unfused step", what, node);
}

/* The same bits in every parameter (the batchnorms' running statistics among them),
 * its gradient, and the input's gradient, in two copies of a graph after a step. */
static void assert_same_parameters(const lop_graph *got, const lop_graph *want)
{
    for (int i = 1; i < want->n; i++) {
        const lop_node *a = got->nodes[i], *b = want->nodes[i];
        for (int k = 0; k < b->nparams; k++) {
            assert_same_bits(a->param[k], b->param[k], b->param_name[k], b->name);
            if (b->grad[k])
                assert_same_bits(a->grad[k], b->grad[k], "a gradient", b->name);
        }
    }
    assert_same_bits(lop_graph_input_grad(got), lop_graph_input_grad(want), "the gradient",
                     "x");
}

/* A training step fused (the default) and unfused (lop_debug_train_fusion(0)) from
 * the same weights: the same bits everywhere a caller may look - the input's gradient,
 * every parameter and its gradient (the batchnorms' running statistics among them),
 * every node's output and gradient but a fused head's own - on every chain shape of
 * every_chain (bn1 -> r1, a4 -> r4, bn5 -> r5, bn6 -> r6, an add of three a7 -> r7,
 * a9 -> r9 and a12 -> r12 fuse; r2 after a convolution and r3 after bn3, which s3
 * reads too, do not), and on relu6 after a batchnorm and after an add, clipping at the
 * cap.  (A NaN pixel would make every batch statistic after it NaN, and the check
 * blind.) */
static void training_fused_matches_unfused(void **state)
{
    static const char *const fused_relus[] = {"r1", "r4", "r5", "r6", "r7", "r9", "r12",
                                              "q1", "q2"};
    for (int net = 0; net < 2; net++) {
        lop_graph *g = net == 0 ? every_chain() : relu6_chains();
        lop_tensor *in = net == 0 ? random_maps(4, 6, 16, 16, 52) : random_maps(5, 6, 8, 8, 53);
        lop_graph *f = lop_graph_clone(g);
        assert_non_null(f);
        lop_debug_train_fusion(0);
        training_step(g, in);
        lop_debug_train_fusion(1);
        training_step(f, in);
        int skipped = 0;
        for (int i = 1; i < g->n; i++) {
            const lop_node *a = f->nodes[i], *b = g->nodes[i];
            int expected = 0;
            for (size_t k = 0; k < sizeof fused_relus / sizeof *fused_relus; k++)
                expected |= strcmp(a->name, fused_relus[k]) == 0;
            assert_int_equal(a->train_skipped, expected);
            assert_int_equal(b->train_skipped | b->train_tail, 0);
            skipped += a->train_skipped;
            if (!a->train_tail) {
                assert_same_bits(a->out, b->out, "the output", a->name);
                assert_same_bits(a->dout, b->dout, "the output's gradient", a->name);
            }
        }
        assert_int_equal(skipped, net == 0 ? 7 : 2);
        assert_same_parameters(f, g);
        lop_graph_free(f);
        lop_tensor_release(in);
        lop_graph_free(g);
    }
}

/* A node given a gradient of its own (feature hints: lop_graph_backward_adding) must
 * not run fused: refused with a message after a fused forward; kept by the forward
 * (lop_graph_forward_keeping), the same step as unfused, while the other chain still
 * fuses. */
static void training_keeps_nodes_with_extra_gradients(void **state)
{
    lop_graph *g = relu6_chains();
    lop_tensor *in = random_maps(3, 6, 8, 8, 54);
    int bn1 = lop_graph_find(g, "bn1"), a2 = lop_graph_find(g, "a2");
    lop_graph *f = lop_graph_clone(g), *kept = lop_graph_clone(g);
    assert_non_null(f);
    assert_non_null(kept);
    assert_int_equal(lop_graph_forward(f, in, 1), LOP_OK);
    lop_tensor *extra = copy_of(f->nodes[bn1]->out), *dout = copy_of(lop_graph_output(f));
    for (size_t i = 0; i < extra->numel; i++)
        extra->data[i] = (float)((i % 5) - 2) / 4.0f;
    lop_tensor_fill(dout, 0.5f);
    assert_int_equal(lop_graph_backward_adding(f, dout, 1, &bn1, &extra), LOP_ESTATE);
    assert_non_null(strstr(lop_errmsg(), "'bn1'"));
    assert_non_null(strstr(lop_errmsg(), "relu6"));
    lop_debug_train_fusion(0);
    assert_int_equal(lop_graph_forward(g, in, 1), LOP_OK);
    assert_int_equal(lop_graph_backward_adding(g, dout, 1, &bn1, &extra), LOP_OK);
    lop_debug_train_fusion(1);
    assert_int_equal(lop_graph_forward_keeping(kept, in, 1, &bn1), LOP_OK);
    assert_int_equal(kept->nodes[bn1]->train_tail, 0);
    assert_int_not_equal(kept->nodes[a2]->train_tail, 0);
    assert_int_equal(lop_graph_backward_adding(kept, dout, 1, &bn1, &extra), LOP_OK);
    assert_same_parameters(kept, g);
    int bad = -1;
    assert_int_equal(lop_graph_forward_keeping(kept, in, 1, &bad), LOP_EINVAL);
    lop_tensor_release(dout);
    lop_tensor_release(extra);
    lop_tensor_release(in);
    lop_graph_free(kept);
    lop_graph_free(f);
    lop_graph_free(g);
}

/* Every allocation of a fused pass of `batch` images failing in turn: an error, then
 * a good pass. */
static void failed_allocations_at(int batch)
{
    lop_graph *g = every_chain();
    lop_tensor *in = random_maps(batch, 6, 16, 16, 51);
    assert_int_equal(lop_graph_forward_until(g, in, lop_graph_size(g) - 1), LOP_OK);
    lop_tensor *want = copy_of(lop_graph_output(g));
    int failures = 0;
    for (long k = 1; k < 400; k++) {
        lop_graph *c = lop_graph_clone(g);
        assert_non_null(c);
        lop_debug_fail_alloc(k);
        int st = lop_graph_forward(c, in, 0);
        lop_debug_fail_alloc(0);
        if (st != LOP_OK) {
            assert_int_equal(st, LOP_ENOMEM);
            failures++;
        }
        assert_int_equal(lop_graph_forward(c, in, 0), LOP_OK);
        assert_same(lop_graph_output(c), want, "after a failed allocation");
        lop_graph_free(c);
        if (st == LOP_OK)
            break;
    }
    assert_true(failures > 0);
    lop_tensor_release(want);
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* Every allocation of a fused pass failing in turn: an error, then a good pass; at
 * batch 2, and at 20, which runs in slices. */
static void failed_allocations(void **state)
{
    failed_allocations_at(2);
    failed_allocations_at(20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_batchnorm_relu_naive),
        cmocka_unit_test(conv_relu6_naive),
        cmocka_unit_test(every_chain_against_unfused),
        cmocka_unit_test(slices_plan),
        cmocka_unit_test(sliced_pass_against_unfused),
        cmocka_unit_test(training_after_fused_pass),
        cmocka_unit_test(training_fused_matches_unfused),
        cmocka_unit_test(training_keeps_nodes_with_extra_gradients),
        cmocka_unit_test(failed_allocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
