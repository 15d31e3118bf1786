/*
 * test_sample_shared.c - what pruning a channel group that several layers read needs
 * (a residual stage, a conv feeding two branches, a conv feeding the classifier):
 *  - a linear layer is sampled once per image, its input features as X: X is checked
 *    against the pooled features a forward pass computes here, and Y = X W^T exactly;
 *  - a layer whose outputs were pruned is sampled against the reference's outputs
 *    through ref_channels: the statistics equal the reference layer's own, restricted
 *    to those channels;
 *  - a group's readers sampled in one pass (lop_sample_layers) get the same bits as
 *    each sampled alone, and a bad layer among them fails the call, writing nothing;
 *  - combined statistics are the parts' A, r and wnorm^2 weighted by 1/yy, summed;
 *  - a group refit gives each layer exactly the weights a refit of that layer alone
 *    gives, removes the channels once, and changes nothing when refused.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../engine/internal.h"
#include "gradcheck.h"
#include "graph_build.h"

enum { CIN = 4, NB = 5, NC = 3, NF = 6, H = 6, NIMG = 20 };

/* x (2x6x6) -> a (CIN, 3x3) -> ra -> b (NB, 3x3) -> rb -> d (2, 1x1)
 *                               ra -> c (NC, 1x1)
 *                               ra -> gap -> fc (NF)
 * The group a produces has three readers: b, c and fc. */
typedef struct ids { int a, b, c, d, gap, fc; } ids;

static lop_graph *branches(uint64_t seed, ids *id)
{
    lop_graph *g = lop_graph_new(seed);
    lop_attrs in = lop_attrs_input(2, H, H), k3 = lop_attrs_default();
    k3.kernel_h = k3.kernel_w = 3;
    k3.pad_h = k3.pad_w = 1;
    lop_attrs k1 = lop_attrs_default(), fc = lop_attrs_default();
    k1.kernel_h = k1.kernel_w = 1;
    int x, ra, rb;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &x), LOP_OK);
    k3.out_channels = CIN;
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "a", &x, 1, &k3, &id->a), LOP_OK);
    assert_int_equal(lop_graph_add(g, LOP_RELU, "ra", &id->a, 1, NULL, &ra), LOP_OK);
    k3.out_channels = NB;
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "b", &ra, 1, &k3, &id->b), LOP_OK);
    assert_int_equal(lop_graph_add(g, LOP_RELU, "rb", &id->b, 1, NULL, &rb), LOP_OK);
    k1.out_channels = 2;
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "d", &rb, 1, &k1, &id->d), LOP_OK);
    k1.out_channels = NC;
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "c", &ra, 1, &k1, &id->c), LOP_OK);
    assert_int_equal(lop_graph_add(g, LOP_GLOBAL_AVGPOOL, "gap", &ra, 1, NULL, &id->gap),
                     LOP_OK);
    fc.out_channels = NF;
    assert_int_equal(lop_graph_add(g, LOP_LINEAR, "fc", &id->gap, 1, &fc, &id->fc), LOP_OK);
    /* some activity through every relu, and nonzero biases */
    for (int k = 0; k < CIN; k++)
        g->nodes[id->a]->param[1]->data[k] = 0.2f;
    for (int k = 0; k < NF; k++)
        g->nodes[id->fc]->param[1]->data[k] = 0.1f * (float)(k + 1);
    return g;
}

static lop_dataset images(uint64_t seed)
{
    return random_images(NIMG, 2, H, H, seed);
}

static lop_sample_opts every_image(void)
{
    return (lop_sample_opts){.images = NIMG, .points = 3, .batch = 7, .seed = 2};
}

static void test_a_linear_layer_is_sampled_once_per_image(void **state)
{
    (void)state;
    ids id;
    lop_graph *g = branches(1, &id);
    lop_dataset data = images(2);
    lop_sample_opts o = every_image();
    lop_stats s;
    assert_int_equal(lop_sample(g, &data, id.fc, &o, NULL, &s), LOP_OK);
    assert_int_equal(s.m, NIMG);            /* one row per image, whatever points says */
    assert_int_equal(s.c, CIN);
    assert_int_equal(s.kh * s.kw, 1);
    assert_int_equal(s.n, NF);
    /* X: the pooled features of every image, from a forward pass here */
    assert_int_equal(lop_graph_forward(g, data.images, 0), LOP_OK);
    const float *pooled = g->nodes[id.gap]->out->data;
    for (int i = 0; i < CIN; i++) {
        double sum = 0;
        for (int im = 0; im < NIMG; im++)
            sum += pooled[im * CIN + i];
        assert_near(s.xsum[i], sum, 1e-5);
        for (int j = 0; j < CIN; j++) {
            double p = 0;
            for (int im = 0; im < NIMG; im++)
                p += (double)pooled[im * CIN + i] * pooled[im * CIN + j];
            assert_near(s.P[i * CIN + j], p, 1e-5);
        }
    }
    /* Y = X W^T (the bias is taken off): C = P W^T */
    const float *W = g->nodes[id.fc]->param[0]->data;
    for (int i = 0; i < CIN; i++)
        for (int k = 0; k < NF; k++) {
            double pw = 0;
            for (int e = 0; e < CIN; e++)
                pw += s.P[i * CIN + e] * W[k * CIN + e];
            assert_near(s.C[i * NF + k], pw, 1e-4);
        }
    lop_stats_free(&s);
    lop_dataset_free(&data);
    lop_graph_free(g);
}

/* The outputs of b the pruned copies keep. */
static const int b_keep[3] = {0, 2, 3};

/* A reference net and a copy of it with b's outputs pruned to keep. */
static lop_graph *pruned_copy(uint64_t seed, ids *id, lop_graph **ref)
{
    *ref = branches(seed, id);
    lop_graph *g = lop_graph_clone(*ref);
    assert_int_equal(lop_graph_prune(g, id->b, b_keep, 3), LOP_OK);
    return g;
}

/* b's outputs pruned to {0, 2, 3}: sampled against the reference through
 * ref_channels, b's statistics are the reference b's, restricted to those outputs. */
static void test_pruned_outputs_are_mapped_to_the_reference(void **state)
{
    (void)state;
    ids id;
    lop_graph *ref, *g = pruned_copy(3, &id, &ref);
    lop_dataset data = images(4);
    lop_sample_opts o = every_image();
    lop_stats s, whole;
    assert_int_equal(lop_sample(g, &data, id.b, &o, ref, &s), LOP_ESHAPE);   /* no map */
    const int bad[3] = {0, 2, NB};
    o.ref_channels = bad;
    assert_int_equal(lop_sample(g, &data, id.b, &o, ref, &s), LOP_EINVAL);
    o.ref_channels = b_keep;
    assert_int_equal(lop_sample(g, &data, id.b, &o, NULL, &s), LOP_EINVAL);  /* no ref */
    assert_int_equal(lop_sample(g, &data, id.b, &o, ref, &s), LOP_OK);
    o.ref_channels = NULL;
    assert_int_equal(lop_sample(ref, &data, id.b, &o, NULL, &whole), LOP_OK);
    const int D = CIN * 9;
    assert_int_equal(s.n, 3);
    assert_int_equal(s.m, whole.m);
    for (int e = 0; e < D * D; e++)
        assert_near(s.P[e], whole.P[e], 1e-6);
    double yy = 0;
    for (int k = 0; k < 3; k++) {
        for (int e = 0; e < D; e++)
            assert_near(s.C[e * 3 + k], whole.C[e * NB + b_keep[k]], 1e-6);
        assert_near(s.ysum[k], whole.ysum[b_keep[k]], 1e-6);
        /* yy over the kept outputs: w_k' P w_k with the reference's weights */
        const float *w = ref->nodes[id.b]->param[0]->data + (size_t)b_keep[k] * D;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++)
                yy += w[i] * whole.P[i * D + j] * w[j];
    }
    assert_near(s.yy, yy, 1e-4);
    lop_stats_free(&s);
    lop_stats_free(&whole);
    lop_dataset_free(&data);
    lop_graph_free(g);
    lop_graph_free(ref);
}

static void assert_same_stats(const lop_stats *a, const lop_stats *b)
{
    const size_t D = (size_t)a->c * a->kh * a->kw;
    assert_int_equal(a->node, b->node);
    assert_int_equal(a->m, b->m);
    assert_int_equal(a->n, b->n);
    assert_int_equal(D, (size_t)b->c * b->kh * b->kw);
    assert_memory_equal(a->P, b->P, D * D * sizeof(double));
    assert_memory_equal(a->C, b->C, D * a->n * sizeof(double));
    assert_memory_equal(a->A, b->A, (size_t)a->c * a->c * sizeof(double));
    assert_memory_equal(a->r, b->r, (size_t)a->c * sizeof(double));
    assert_memory_equal(a->wnorm, b->wnorm, (size_t)a->c * sizeof(double));
    assert_memory_equal(a->xsum, b->xsum, D * sizeof(double));
    assert_memory_equal(a->ysum, b->ysum, (size_t)a->n * sizeof(double));
    assert_true(a->yy == b->yy);
}

/* b (pruned, mapped to the reference), d after it, c and the linear fc: one pass. */
static void test_readers_sampled_in_one_pass_get_their_own_statistics(void **state)
{
    (void)state;
    ids id;
    lop_graph *ref, *g = pruned_copy(5, &id, &ref);
    lop_dataset data = images(6);
    lop_sample_opts o = every_image();
    const int nodes[4] = {id.d, id.b, id.fc, id.c};
    const int *maps[4] = {NULL, b_keep, NULL, NULL};
    lop_stats together[4], alone;
    assert_int_equal(lop_sample_layers(g, &data, nodes, 4, &o, maps, ref, together), LOP_OK);
    for (int i = 0; i < 4; i++) {
        o.ref_channels = maps[i];
        assert_int_equal(lop_sample(g, &data, nodes[i], &o, ref, &alone), LOP_OK);
        assert_same_stats(&together[i], &alone);
        lop_stats_free(&alone);
        lop_stats_free(&together[i]);
    }
    /* A layer that cannot be sampled (gap) fails the call; nothing is written. */
    const int bad[2] = {id.c, id.gap};
    lop_stats none[2];
    memset(none, 0, sizeof none);
    o.ref_channels = NULL;
    assert_int_equal(lop_sample_layers(g, &data, bad, 2, &o, NULL, ref, none), LOP_EINVAL);
    assert_null(none[0].P);
    assert_int_equal(lop_sample_layers(g, &data, bad, 0, &o, NULL, ref, none), LOP_EINVAL);
    lop_dataset_free(&data);
    lop_graph_free(g);
    lop_graph_free(ref);
}

static void test_combined_statistics_weigh_each_layer_by_its_energy(void **state)
{
    (void)state;
    ids id;
    lop_graph *g = branches(5, &id);
    lop_dataset data = images(6);
    lop_sample_opts o = every_image();
    lop_stats b, c, fc, sum;
    assert_int_equal(lop_sample(g, &data, id.b, &o, NULL, &b), LOP_OK);
    assert_int_equal(lop_sample(g, &data, id.c, &o, NULL, &c), LOP_OK);
    assert_int_equal(lop_sample(g, &data, id.fc, &o, NULL, &fc), LOP_OK);
    const lop_stats *parts[3] = {&b, &c, &fc};
    assert_int_equal(lop_stats_combine(parts, 3, &sum), LOP_OK);
    assert_int_equal(sum.c, CIN);
    assert_null(sum.P);
    assert_near(sum.yy, 3, 1e-12);
    assert_int_equal(sum.m, b.m + c.m + fc.m);
    for (int i = 0; i < CIN; i++) {
        assert_near(sum.r[i], b.r[i] / b.yy + c.r[i] / c.yy + fc.r[i] / fc.yy, 1e-9);
        assert_near(sum.wnorm[i], sqrt(b.wnorm[i] * b.wnorm[i] / b.yy +
                                        c.wnorm[i] * c.wnorm[i] / c.yy +
                                        fc.wnorm[i] * fc.wnorm[i] / fc.yy), 1e-9);
        for (int j = 0; j < CIN; j++)
            assert_near(sum.A[i * CIN + j], b.A[i * CIN + j] / b.yy +
                         c.A[i * CIN + j] / c.yy + fc.A[i * CIN + j] / fc.yy, 1e-9);
    }
    /* it selects, but cannot refit */
    const int keep[2] = {0, 1};
    assert_int_equal(lop_reconstruct(g, &sum, keep, 2, LOP_RECON_WEIGHTS, 1e-6, NULL),
                     LOP_EINVAL);
    lop_stats other;   /* another channel count */
    assert_int_equal(lop_sample(g, &data, id.d, &o, NULL, &other), LOP_OK);
    const lop_stats *mixed[2] = {&b, &other};
    lop_stats never;
    assert_int_equal(lop_stats_combine(mixed, 2, &never), LOP_ESHAPE);
    lop_stats_free(&other);
    lop_stats_free(&sum);
    lop_stats_free(&b);
    lop_stats_free(&c);
    lop_stats_free(&fc);
    lop_dataset_free(&data);
    lop_graph_free(g);
}

/* The weights of layer `at` in g and h agree. */
static void same_weights(const lop_graph *g, const lop_graph *h, int at)
{
    const lop_tensor *a = g->nodes[at]->param[0], *b = h->nodes[at]->param[0];
    assert_int_equal(a->numel, b->numel);
    for (size_t e = 0; e < a->numel; e++)
        assert_near(a->data[e], b->data[e], 1e-6);
    const lop_tensor *ab = g->nodes[at]->param[1], *bb = h->nodes[at]->param[1];
    for (size_t e = 0; e < ab->numel; e++)
        assert_near(ab->data[e], bb->data[e], 1e-6);
}

static void test_a_group_refit_is_each_layers_own_refit(void **state)
{
    (void)state;
    const int keep[2] = {1, 3};
    for (int mode = LOP_RECON_WEIGHTS; mode <= LOP_RECON_SCALE; mode++) {
        ids id;
        lop_graph *original = branches(7, &id);
        lop_dataset data = images(8);
        lop_sample_opts o = every_image();
        lop_graph *g = lop_graph_clone(original);
        lop_stats parts[3];
        const int layers[3] = {id.b, id.c, id.fc};
        for (int i = 0; i < 3; i++)
            assert_int_equal(lop_sample(g, &data, layers[i], &o, NULL, &parts[i]), LOP_OK);
        const lop_stats *list[3] = {&parts[0], &parts[1], &parts[2]};
        double errors[3];
        assert_int_equal(lop_reconstruct_group(g, list, 3, keep, 2, (lop_recon)mode, 1e-6,
                                               errors), LOP_OK);
        assert_int_equal(g->nodes[id.a]->dims[0], 2);     /* the channels went once */
        for (int i = 0; i < 3; i++) {
            /* the same layer refitted alone, on a fresh copy */
            lop_graph *alone = lop_graph_clone(original);
            lop_stats s;
            double err;
            assert_int_equal(lop_sample(alone, &data, layers[i], &o, NULL, &s), LOP_OK);
            assert_int_equal(lop_reconstruct(alone, &s, keep, 2, (lop_recon)mode, 1e-6, &err),
                             LOP_OK);
            same_weights(g, alone, layers[i]);
            assert_near(errors[i], err, 1e-9);
            lop_stats_free(&s);
            lop_graph_free(alone);
            lop_stats_free(&parts[i]);
        }
        lop_dataset_free(&data);
        lop_graph_free(g);
        lop_graph_free(original);
    }
}

static void test_a_refused_group_refit_changes_nothing(void **state)
{
    (void)state;
    ids id;
    lop_graph *g = branches(9, &id);
    lop_dataset data = images(10);
    lop_sample_opts o = every_image();
    lop_stats b, d, b2;
    assert_int_equal(lop_sample(g, &data, id.b, &o, NULL, &b), LOP_OK);
    assert_int_equal(lop_sample(g, &data, id.d, &o, NULL, &d), LOP_OK);
    assert_int_equal(lop_sample(g, &data, id.b, &o, NULL, &b2), LOP_OK);
    const uint64_t generation = g->generation;
    lop_tensor *w = lop_tensor_clone(g->nodes[id.b]->param[0]);
    const int keep[2] = {0, 1};
    const lop_stats *other_groups[2] = {&b, &d};   /* b reads ra, d reads rb */
    const lop_stats *twice[2] = {&b, &b2};
    assert_int_equal(lop_reconstruct_group(g, other_groups, 2, keep, 2, LOP_RECON_WEIGHTS,
                                           1e-6, NULL), LOP_EINVAL);
    assert_int_equal(lop_reconstruct_group(g, twice, 2, keep, 2, LOP_RECON_WEIGHTS, 1e-6,
                                           NULL), LOP_EINVAL);
    const int unsorted[2] = {1, 0};
    assert_int_equal(lop_reconstruct_group(g, other_groups, 1, unsorted, 2, LOP_RECON_WEIGHTS,
                                           1e-6, NULL), LOP_EINVAL);
    assert_int_equal(g->generation, generation);
    assert_int_equal(g->nodes[id.a]->dims[0], CIN);
    for (size_t e = 0; e < w->numel; e++)
        assert_true(w->data[e] == g->nodes[id.b]->param[0]->data[e]);
    lop_tensor_release(w);
    lop_stats_free(&b);
    lop_stats_free(&b2);
    lop_stats_free(&d);
    lop_dataset_free(&data);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_linear_layer_is_sampled_once_per_image),
        cmocka_unit_test(test_pruned_outputs_are_mapped_to_the_reference),
        cmocka_unit_test(test_readers_sampled_in_one_pass_get_their_own_statistics),
        cmocka_unit_test(test_combined_statistics_weigh_each_layer_by_its_energy),
        cmocka_unit_test(test_a_group_refit_is_each_layers_own_refit),
        cmocka_unit_test(test_a_refused_group_refit_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
