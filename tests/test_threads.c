/*
 * test_threads.c - a seed gives the same model whatever the number of threads.  A
 * small CNN covering every convolution path (im2col, the thin stencil kernel, the
 * unfolding-free 1x1 product, a strided and a grouped conv, the tap-by-tap products
 * of a 2x2 map), batchnorm, ReLU, max
 * pooling, a residual add and a linear head is trained for a few SGD steps on 1, 2
 * and 3 threads from the same seed; the parameters must agree bit for bit, and so
 * must lop_evaluate's loss and lop_sample's statistics on the trained network, and
 * the forward passes of small batches and batch 1's own paths (a stride-2 stencil,
 * Winograd weights made in blocks).  (The
 * pool itself is test_pool.c's.)  The same again with a teacher whose logits and two
 * activations (feature hints) the network also learns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "graph_build.h"
#include "internal.h"

enum { C = 3, H = 16, NIMG = 80, CLASSES = 4, BATCH = 40, HIDDEN = 64 };

static int bn_relu(lop_graph *g, const char *name, int in)
{
    char bn[32], relu[32];
    snprintf(bn, sizeof bn, "%s_bn", name);
    snprintf(relu, sizeof relu, "%s_relu", name);
    lop_attrs a = lop_attrs_default();
    return add1(g, LOP_RELU, relu, add1(g, LOP_BATCHNORM, bn, in, &a), &a);
}

/* 3x16x16 -> stencil conv 8 -> 1x1 direct conv 24 (16x16 = 256 columns) -> grouped
 * 3x3 conv 24 (3 groups) + residual add -> max pool -> im2col conv 96 (3x3) ->
 * strided conv 96 (4x4 out) -> max pool -> conv 48 on the 2x2 map (tap by tap) ->
 * flatten -> linear 64 (a product wide enough to be cut between threads) -> linear 4.  Convolutions are followed by batchnorm and ReLU. */
static lop_graph *small_cnn(int *sampled)
{
    int x;
    lop_graph *g = new_graph(3, C, H, H, &x);
    lop_attrs a = lop_attrs_default();
    int s = bn_relu(g, "stem", conv_k(g, "stem", x, 8, 3, 1, 1));
    int d = bn_relu(g, "wide", conv_k(g, "wide", s, 24, 1, 1, 1));
    int gr = conv_k(g, "grouped", d, 24, 3, 1, 3);
    int sum;
    int ins[2] = {gr, d};
    assert_int_equal(lop_graph_add(g, LOP_ADD, "add", ins, 2, &a, &sum), LOP_OK);
    a.kernel_h = a.kernel_w = 2;
    int p = add1(g, LOP_MAXPOOL, "pool", sum, &a);
    int big = bn_relu(g, "big", conv_k(g, "big", p, 96, 3, 1, 1));
    int down = bn_relu(g, "down", conv_k(g, "down", big, 96, 3, 2, 1));
    int p2 = add1(g, LOP_MAXPOOL, "pool2", down, &a);
    int tiny = bn_relu(g, "tiny", conv_k(g, "tiny", p2, 48, 3, 1, 1));
    a = lop_attrs_default();
    int f = add1(g, LOP_FLATTEN, "flat", tiny, &a);
    a.out_channels = HIDDEN;
    int hidden = add1(g, LOP_RELU, "fc1_relu", add1(g, LOP_LINEAR, "fc1", f, &a), &a);
    a.out_channels = CLASSES;
    add1(g, LOP_LINEAR, "fc2", hidden, &a);
    *sampled = lop_graph_find(g, "big");
    return g;
}

static void random_set(lop_dataset *d)
{
    int shape[4] = {NIMG, C, H, H};
    lop_tensor *t = lop_tensor_new(4, shape);
    assert_non_null(t);
    int labels[NIMG];
    uint64_t s = 12345;
    for (size_t i = 0; i < t->numel; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        t->data[i] = (float)((s >> 40) / (double)(1 << 24)) - 0.5f;
    }
    for (int i = 0; i < NIMG; i++)
        labels[i] = (i * 7 + i / 3) % CLASSES;
    assert_int_equal(lop_dataset_from_tensor(t, labels, CLASSES, d), LOP_OK);
    lop_tensor_release(t);
}

/* What one run produces: every parameter, the evaluation, the sampled statistics. */
typedef struct run {
    float *params;
    size_t nparams;
    lop_eval ev;
    lop_stats st;
} run;

/* Every parameter of g, in node order, in one malloc'ed array of *n floats. */
static float *params_of(const lop_graph *g, size_t *n)
{
    float *all = NULL;
    *n = 0;
    for (int id = 0; id < lop_graph_size(g); id++)
        for (int k = 0; k < lop_node_nparams(g, id); k++) {
            const lop_tensor *p = lop_node_param(g, id, k);
            all = realloc(all, (*n + p->numel) * sizeof(float));
            assert_non_null(all);
            memcpy(all + *n, p->data, p->numel * sizeof(float));
            *n += p->numel;
        }
    return all;
}

/* Train small_cnn on d; with hints, also learning from a teacher (small_cnn with other
 * weights in "big") its logits and two activations: one mapped, one not. */
static void train_on(int threads, const lop_dataset *d, int hinted, run *r)
{
    assert_int_equal(lop_set_threads(threads), LOP_OK);
    int node;
    lop_graph *g = small_cnn(&node), *teacher = NULL;
    lop_train_opts o = lop_train_opts_default();
    o.epochs = 2;
    o.batch = BATCH;
    o.seed = 3;
    static int reversed[96];
    for (int c = 0; c < 96; c++)
        reversed[c] = 95 - c;
    lop_hint hints[2];
    if (hinted) {
        int ignored;
        teacher = small_cnn(&ignored);
        lop_rng rng;
        lop_rng_seed(&rng, 5);
        fill_param(teacher, lop_graph_find(teacher, "big"), "weight", -0.1, 0.1, &rng);
        hints[0] = (lop_hint){node, lop_graph_find(teacher, "big"), reversed};
        hints[1] = (lop_hint){lop_graph_find(g, "fc1"), lop_graph_find(teacher, "fc1"), NULL};
        o.teacher = teacher;
        o.hints = hints;
        o.nhints = 2;
    }
    lop_eval last;
    assert_int_equal(lop_train(g, d, &o, &last), LOP_OK);
    lop_graph_free(teacher);
    assert_int_equal(lop_evaluate(g, d, BATCH, NULL, NULL, &r->ev), LOP_OK);
    lop_sample_opts so = lop_sample_opts_default();
    so.images = NIMG;
    so.batch = BATCH;
    assert_int_equal(lop_sample(g, d, node, &so, NULL, &r->st), LOP_OK);
    r->params = params_of(g, &r->nparams);
    lop_graph_free(g);
}

static void assert_same_doubles(const double *a, const double *b, size_t n)
{
    assert_memory_equal(a, b, n * sizeof(double));
}

static void same_model_on_1_2_3_threads(int hinted)
{
    lop_dataset d;
    random_set(&d);
    run r[3];
    for (int t = 0; t < 3; t++)
        train_on(t + 1, &d, hinted, &r[t]);
    for (int t = 1; t < 3; t++) {
        assert_int_equal(r[t].nparams, r[0].nparams);
        assert_memory_equal(r[t].params, r[0].params, r[0].nparams * sizeof(float));
        assert_memory_equal(&r[t].ev.loss, &r[0].ev.loss, sizeof(double));
        assert_memory_equal(&r[t].ev.top1, &r[0].ev.top1, sizeof(double));
        const lop_stats *a = &r[0].st, *b = &r[t].st;
        size_t D = (size_t)a->c * a->kh * a->kw;
        assert_int_equal(b->m, a->m);
        assert_same_doubles(b->P, a->P, D * D);
        assert_same_doubles(b->C, a->C, D * a->n);
        assert_same_doubles(b->xsum, a->xsum, D);
        assert_same_doubles(b->ysum, a->ysum, (size_t)a->n);
        assert_same_doubles(&b->yy, &a->yy, 1);
        assert_same_doubles(b->A, a->A, (size_t)a->c * a->c);
        assert_same_doubles(b->r, a->r, (size_t)a->c);
    }
    /* The training moved the weights (a run that changed nothing would pass too). */
    int node;
    size_t n;
    lop_graph *fresh = small_cnn(&node);
    float *initial = params_of(fresh, &n);
    assert_int_equal(n, r[0].nparams);
    assert_memory_not_equal(initial, r[0].params, n * sizeof(float));
    free(initial);
    lop_graph_free(fresh);
    for (int t = 0; t < 3; t++) {
        free(r[t].params);
        lop_stats_free(&r[t].st);
    }
    lop_dataset_free(&d);
}

static void same_model_trained_on_1_2_3_threads(void **state)
{
    (void)state;
    same_model_on_1_2_3_threads(0);
}

static void same_model_taught_with_hints_on_1_2_3_threads(void **state)
{
    (void)state;
    same_model_on_1_2_3_threads(1);
}

/* One forward pass of g on `batch` random c x h x h images gives the same bytes on 1, 2
 * and 3 threads. */
static void same_forward_on_1_2_3_threads(lop_graph *g, int batch, int c, int h)
{
    int shape[4] = {batch, c, h, h};
    lop_tensor *x = lop_tensor_new(4, shape);
    assert_non_null(x);
    lop_rng r;
    lop_rng_seed(&r, (uint64_t)batch);
    for (size_t i = 0; i < x->numel; i++)
        x->data[i] = (float)lop_rng_normal(&r);
    float *first = NULL;
    size_t n = 0;
    for (int t = 1; t <= 3; t++) {
        assert_int_equal(lop_set_threads(t), LOP_OK);
        assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
        const lop_tensor *y = lop_graph_output(g);
        if (!first) {
            n = y->numel;
            first = malloc(n * sizeof *first);
            assert_non_null(first);
            memcpy(first, y->data, n * sizeof *first);
        } else {
            assert_memory_equal(y->data, first, n * sizeof *first);
        }
    }
    free(first);
    lop_tensor_release(x);
}

/* Batches smaller than a convolution's chunk count cut its products' output rows into
 * slices shared out over the threads (conv.c, row_slices): still the same bytes. */
static void small_batches_same_on_1_2_3_threads(void **state)
{
    (void)state;
    int node;
    lop_graph *g = small_cnn(&node);
    for (int batch = 1; batch <= 3; batch += 2)
        same_forward_on_1_2_3_threads(g, batch, C, H);
    lop_graph_free(g);
}

/* Batch 1's own paths: a thin stride-2 layer on the stencil's phase images, then
 * Winograd F(2x2) on 9x9 maps whose transformed weights (136 x 136 x 16 floats) pass
 * 1 MiB, made 16 output channels at a time (8 blocks and one of 8) and shared out over
 * the threads by blocks. */
static void batch1_paths_same_on_1_2_3_threads(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 40, 18, 18, &x);
    int down = bn_relu(g, "down", conv_k(g, "down", x, 48, 3, 2, 1));
    int mid = bn_relu(g, "mid", conv_k(g, "mid", down, 136, 3, 1, 1));
    conv_k(g, "wide", mid, 136, 3, 1, 1);
    same_forward_on_1_2_3_threads(g, 1, 40, 18);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_model_trained_on_1_2_3_threads),
        cmocka_unit_test(same_model_taught_with_hints_on_1_2_3_threads),
        cmocka_unit_test(small_batches_same_on_1_2_3_threads),
        cmocka_unit_test(batch1_paths_same_on_1_2_3_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
