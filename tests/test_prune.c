/*
 * test_prune.c - channel groups and physical pruning at the engine level: the groups
 * of a hand-made graph with every coupling the engine knows (residual adds with an
 * identity and a projection shortcut, a concat, a depthwise and a grouped conv,
 * flatten -> linear, a linear head) against member lists worked out by hand; the
 * slices grouped convs impose (RegNet's block, plain and residual, two group counts,
 * concats they can and cannot cut); pruning channels that were zeroed first leaves the
 * output unchanged; kept weights, shapes, params and FLOPs after a prune match hand
 * computation; every refused call (a keep list or mask uneven across slices among
 * them) and every failed allocation leaves the graph bit-identical; a pruned graph
 * trains, has correct gradients and survives a save/load round trip.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "lopper.h"

static char dir[64];

/* ---- building graphs by name -------------------------------------------------- */

static int add_node(lop_graph *g, lop_kind kind, const char *name, const char *a,
                    const char *b, const lop_attrs *attrs)
{
    int in[2] = {a ? lop_graph_find(g, a) : -1, b ? lop_graph_find(g, b) : -1};
    int id = -1;
    int st = lop_graph_add(g, kind, name, in, b ? 2 : 1, attrs, &id);
    if (st != LOP_OK)
        fail_msg("adding %s: %s", name, lop_errmsg());
    return id;
}

static void conv(lop_graph *g, const char *name, const char *in, int out, int k, int stride,
                 int groups, int bias)
{
    lop_attrs a = lop_attrs_default();
    a.out_channels = out;
    a.kernel_h = a.kernel_w = k;
    a.stride_h = a.stride_w = stride;
    a.pad_h = a.pad_w = k / 2;
    a.groups = groups;
    a.bias = bias;
    add_node(g, LOP_CONV2D, name, in, NULL, &a);
}

static void layer(lop_graph *g, lop_kind kind, const char *name, const char *in)
{
    lop_attrs a = lop_attrs_default();
    if (kind == LOP_MAXPOOL)
        a.kernel_h = a.kernel_w = a.stride_h = a.stride_w = 2;
    add_node(g, kind, name, in, NULL, &a);
}

static void linear(lop_graph *g, const char *name, const char *in, int out)
{
    lop_attrs a = lop_attrs_default();
    a.out_channels = out;
    add_node(g, LOP_LINEAR, name, in, NULL, &a);
}

static void merge(lop_graph *g, lop_kind kind, const char *name, const char *a, const char *b)
{
    lop_attrs at = lop_attrs_default();
    add_node(g, kind, name, a, b, &at);
}

/* Biases and batchnorm parameters random (BN running variance positive), so that
 * every per-channel entry matters and a misplaced slice shows in the output. */
static void randomize(lop_graph *g, uint64_t seed)
{
    lop_rng r;
    lop_rng_seed(&r, seed);
    for (int i = 0; i < lop_graph_size(g); i++)
        for (int k = 0; k < lop_node_nparams(g, i); k++) {
            const char *pn = lop_node_param_name(g, i, k);
            lop_tensor *t = lop_node_param(g, i, k);
            int bn = lop_node_kind(g, i) == LOP_BATCHNORM;
            if (!bn && strcmp(pn, "weight") == 0)
                continue;   /* keep the initialiser's scale */
            for (size_t j = 0; j < t->numel; j++) {
                double u = lop_rng_uniform(&r);
                t->data[j] = (float)(strcmp(pn, "running_var") == 0 ? 0.5 + u
                                     : strcmp(pn, "weight") == 0 ? 0.5 + u
                                     : bn ? u - 0.5 : 0.2 * u - 0.1);
            }
        }
}

/*
 * The test graph, input 4x8x8 (shapes in brackets):
 *   x -> c0 -> in_add(x, c0)                        residual on the input: unprunable
 *   -> c1 -> bn1 -> r1 -> c2 -> bn2 -> sum1(bn2, r1) -> r2        identity shortcut [6x8x8]
 *   r2 -> c3(s2) -> bn3 -> r3 -> c4 -> bn4 ; r2 -> proj(1x1 s2) -> pbn
 *   sum2(bn4, pbn) -> r4                                projection shortcut [8x4x4]
 *   r4 -> ba(1x1, 3, bias, no BN) ; r4 -> bb(5) -> bbn ; cat(ba, bbn) -> cr [8x4x4]
 *   cr -> c5(1x1, 6) -> bn5 -> r5 -> dw(depthwise, bias) -> dbn -> dr
 *   dr -> c6(4) -> bn6 -> r6 -> gc(groups 2) -> gr -> c7(5, bias, no BN) -> r7
 *   -> pool(2) [5x2x2] -> flat [20] -> fc1(7) -> fr -> drop -> fc2(6) -> fc3(3)
 */
static lop_graph *big_graph(void)
{
    lop_graph *g = lop_graph_new(11);
    lop_attrs in = lop_attrs_input(4, 8, 8);
    int x;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &x), LOP_OK);
    conv(g, "c0", "x", 4, 3, 1, 1, 1);
    merge(g, LOP_ADD, "in_add", "x", "c0");
    conv(g, "c1", "in_add", 6, 3, 1, 1, 0);
    layer(g, LOP_BATCHNORM, "bn1", "c1");
    layer(g, LOP_RELU, "r1", "bn1");
    conv(g, "c2", "r1", 6, 3, 1, 1, 0);
    layer(g, LOP_BATCHNORM, "bn2", "c2");
    merge(g, LOP_ADD, "sum1", "bn2", "r1");
    layer(g, LOP_RELU, "r2", "sum1");
    conv(g, "c3", "r2", 8, 3, 2, 1, 0);
    layer(g, LOP_BATCHNORM, "bn3", "c3");
    layer(g, LOP_RELU, "r3", "bn3");
    conv(g, "c4", "r3", 8, 3, 1, 1, 0);
    layer(g, LOP_BATCHNORM, "bn4", "c4");
    conv(g, "proj", "r2", 8, 1, 2, 1, 0);
    layer(g, LOP_BATCHNORM, "pbn", "proj");
    merge(g, LOP_ADD, "sum2", "bn4", "pbn");
    layer(g, LOP_RELU, "r4", "sum2");
    conv(g, "ba", "r4", 3, 1, 1, 1, 1);
    conv(g, "bb", "r4", 5, 3, 1, 1, 0);
    layer(g, LOP_BATCHNORM, "bbn", "bb");
    merge(g, LOP_CONCAT, "cat", "ba", "bbn");
    layer(g, LOP_RELU, "cr", "cat");
    conv(g, "c5", "cr", 6, 1, 1, 1, 0);
    layer(g, LOP_BATCHNORM, "bn5", "c5");
    layer(g, LOP_RELU, "r5", "bn5");
    conv(g, "dw", "r5", 6, 3, 1, 6, 1);
    layer(g, LOP_BATCHNORM, "dbn", "dw");
    layer(g, LOP_RELU, "dr", "dbn");
    conv(g, "c6", "dr", 4, 1, 1, 1, 0);
    layer(g, LOP_BATCHNORM, "bn6", "c6");
    layer(g, LOP_RELU, "r6", "bn6");
    conv(g, "gc", "r6", 4, 3, 1, 2, 1);
    layer(g, LOP_RELU, "gr", "gc");
    conv(g, "c7", "gr", 5, 3, 1, 1, 1);
    layer(g, LOP_RELU, "r7", "c7");
    layer(g, LOP_MAXPOOL, "pool", "r7");
    layer(g, LOP_FLATTEN, "flat", "pool");
    linear(g, "fc1", "flat", 7);
    layer(g, LOP_RELU, "fr", "fc1");
    layer(g, LOP_DROPOUT, "drop", "fr");
    linear(g, "fc2", "drop", 6);
    linear(g, "fc3", "fc2", 3);
    randomize(g, 5);
    return g;
}

static int id_of(const lop_graph *g, const char *name)
{
    int id = lop_graph_find(g, name);
    if (id < 0)
        fail_msg("no node %s", name);
    return id;
}

/* ---- group derivation ----------------------------------------------------------- */

enum { P = LOP_ROLE_PRODUCER, C = LOP_ROLE_CONSUMER, S = LOP_ROLE_PASS };

typedef struct want_member { const char *node; int role, offset, block; } want_member;
typedef struct want_group {
    int channels, slices, prunable;
    const char *why;
    want_member m[12];
} want_group;

/* Worked out by hand from the rules in lopper.h: members in node order, a node that
 * both produces and consumes lists its producer entry first; groups in the order of
 * their first producer. */
static const want_group WANT[] = {
    {4, 1, 0, "it reaches the network input",
     {{"c0", P, 0, 1}, {"c0", C, 0, 1}, {"in_add", S, 0, 1}, {"c1", C, 0, 1}}},
    {6, 1, 1, "",
     {{"c1", P, 0, 1}, {"bn1", S, 0, 1}, {"r1", S, 0, 1}, {"c2", P, 0, 1}, {"c2", C, 0, 1},
      {"bn2", S, 0, 1}, {"sum1", S, 0, 1}, {"r2", S, 0, 1}, {"c3", C, 0, 1},
      {"proj", C, 0, 1}}},
    {8, 1, 1, "", {{"c3", P, 0, 1}, {"bn3", S, 0, 1}, {"r3", S, 0, 1}, {"c4", C, 0, 1}}},
    {8, 1, 1, "",
     {{"c4", P, 0, 1}, {"bn4", S, 0, 1}, {"proj", P, 0, 1}, {"pbn", S, 0, 1},
      {"sum2", S, 0, 1}, {"r4", S, 0, 1}, {"ba", C, 0, 1}, {"bb", C, 0, 1}}},
    {3, 1, 1, "", {{"ba", P, 0, 1}, {"cat", S, 0, 1}, {"cr", S, 0, 1}, {"c5", C, 0, 1}}},
    {5, 1, 1, "",
     {{"bb", P, 0, 1}, {"bbn", S, 0, 1}, {"cat", S, 3, 1}, {"cr", S, 3, 1}, {"c5", C, 3, 1}}},
    {6, 1, 1, "",
     {{"c5", P, 0, 1}, {"bn5", S, 0, 1}, {"r5", S, 0, 1}, {"dw", S, 0, 1}, {"dbn", S, 0, 1},
      {"dr", S, 0, 1}, {"c6", C, 0, 1}}},
    {4, 2, 1, "", {{"c6", P, 0, 1}, {"bn6", S, 0, 1}, {"r6", S, 0, 1}, {"gc", C, 0, 1}}},
    {4, 2, 1, "", {{"gc", P, 0, 1}, {"gr", S, 0, 1}, {"c7", C, 0, 1}}},
    {5, 1, 1, "",
     {{"c7", P, 0, 1}, {"r7", S, 0, 1}, {"pool", S, 0, 1}, {"flat", S, 0, 4},
      {"fc1", C, 0, 4}}},
    {7, 1, 1, "", {{"fc1", P, 0, 1}, {"fr", S, 0, 1}, {"drop", S, 0, 1}, {"fc2", C, 0, 1}}},
    {6, 1, 1, "", {{"fc2", P, 0, 1}, {"fc3", C, 0, 1}}},
    {3, 1, 0, "it reaches the network output", {{"fc3", P, 0, 1}}},
};
#define NWANT ((int)(sizeof WANT / sizeof WANT[0]))

/* grp against w; label says which group a failure is about. */
static void check_group(const lop_graph *g, const lop_group *grp, const want_group *w,
                        const char *label)
{
    int nm = 0;
    while (nm < 12 && w->m[nm].node)
        nm++;
    if (grp->nmembers != nm)
        fail_msg("group %s: %d members, want %d", label, grp->nmembers, nm);
    if (grp->channels != w->channels || grp->slices != w->slices ||
        grp->prunable != w->prunable || strcmp(grp->why, w->why) != 0)
        fail_msg("group %s: %d channels, %d slices, prunable %d '%s'; want %d, %d, %d '%s'",
                 label, grp->channels, grp->slices, grp->prunable, grp->why, w->channels,
                 w->slices, w->prunable, w->why);
    for (int k = 0; k < nm; k++) {
        const lop_member *m = &grp->members[k];
        if (m->node != id_of(g, w->m[k].node) || (int)m->role != w->m[k].role ||
            m->offset != w->m[k].offset || m->block != w->m[k].block)
            fail_msg("group %s member %d: %s role %d offset %d block %d, want %s %d %d %d",
                     label, k, lop_node_name(g, m->node), m->role, m->offset, m->block,
                     w->m[k].node, w->m[k].role, w->m[k].offset, w->m[k].block);
    }
}

static void test_groups_of_a_graph_with_every_coupling(void **state)
{
    (void)state;
    lop_graph *g = big_graph();
    lop_groups gs;
    assert_int_equal(lop_graph_groups(g, &gs), LOP_OK);
    assert_int_equal(gs.n, NWANT);
    for (int i = 0; i < NWANT; i++) {
        char label[16];
        snprintf(label, sizeof label, "%d", i);
        check_group(g, &gs.groups[i], &WANT[i], label);
    }
    /* the group a node's output carries; none for the input and a two-group concat */
    struct { const char *node; int group; } find[] = {
        {"x", -1},   {"c0", 0},   {"in_add", 0}, {"c1", 1},   {"r1", 1},  {"c2", 1},
        {"sum1", 1}, {"proj", 3}, {"ba", 4},     {"bbn", 5},  {"cat", -1}, {"cr", -1},
        {"c5", 6},   {"dw", 6},   {"dr", 6},     {"c6", 7},   {"gc", 8},  {"pool", 9},
        {"flat", 9}, {"fc1", 10}, {"drop", 10},  {"fc3", 12},
    };
    for (size_t k = 0; k < sizeof find / sizeof find[0]; k++)
        if (lop_groups_find(&gs, id_of(g, find[k].node)) != find[k].group)
            fail_msg("%s carries group %d, want %d", find[k].node,
                     lop_groups_find(&gs, id_of(g, find[k].node)), find[k].group);
    lop_groups_free(&gs);
    lop_groups_free(&gs);   /* idempotent */
    lop_graph_free(g);
}

/* ---- invariance ------------------------------------------------------------------- */

/* Whether one of the group's batchnorm members reads node's output. */
static int normalised(const lop_graph *g, const lop_group *grp, int node)
{
    for (int k = 0; k < grp->nmembers; k++) {
        int n = grp->members[k].node;
        if (lop_node_kind(g, n) == LOP_BATCHNORM && lop_node_input(g, n, 0) == node)
            return 1;
    }
    return 0;
}

/* Make channel c of the group exactly zero wherever it is created: batchnorm members
 * get gamma = beta = 0; producers (and depthwise convs) not followed by one of the
 * group's batchnorms get their filters and bias zeroed. */
static void zero_channel(lop_graph *g, const lop_group *grp, int c)
{
    for (int k = 0; k < grp->nmembers; k++) {
        const lop_member *m = &grp->members[k];
        lop_kind kind = lop_node_kind(g, m->node);
        int at = m->offset + c * m->block;
        if (kind == LOP_BATCHNORM) {
            for (int j = 0; j < m->block; j++) {
                lop_node_param(g, m->node, 0)->data[at + j] = 0;
                lop_node_param(g, m->node, 1)->data[at + j] = 0;
            }
            continue;
        }
        int filters = m->role == LOP_ROLE_PRODUCER ||
                      (m->role == LOP_ROLE_PASS && kind == LOP_CONV2D);
        if (!filters || normalised(g, grp, m->node))
            continue;
        lop_tensor *w = lop_node_param(g, m->node, 0);
        size_t row = w->numel / (size_t)w->shape[0];
        memset(w->data + (size_t)at * row, 0, row * m->block * sizeof(float));
        int b = lop_node_find_param(g, m->node, "bias");
        if (b >= 0)
            memset(lop_node_param(g, m->node, b)->data + at, 0, m->block * sizeof(float));
    }
}

static lop_tensor *eval_output(lop_graph *g, const lop_tensor *x)
{
    assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
    return lop_tensor_clone(lop_graph_output(g));
}

static double max_abs_diff(const lop_tensor *a, const lop_tensor *b)
{
    assert_true(lop_tensor_same_shape(a, b));
    double worst = 0;
    for (size_t i = 0; i < a->numel; i++)
        worst = fmax(worst, fabs((double)a->data[i] - b->data[i]));
    return worst;
}

static double max_abs(const lop_tensor *a)
{
    double m = 0;
    for (size_t i = 0; i < a->numel; i++)
        m = fmax(m, fabs(a->data[i]));
    return m;
}

/* Zero the channels of `carrier`'s group that keep[] leaves out, then prune them:
 * the output must not move.  Returns the group's channel count before. */
static int prune_zeroed(lop_graph *g, const char *carrier, const int *keep, int nkeep,
                        const lop_tensor *x)
{
    lop_groups gs;
    assert_int_equal(lop_graph_groups(g, &gs), LOP_OK);
    int gi = lop_groups_find(&gs, id_of(g, carrier));
    assert_true(gi >= 0);
    const lop_group *grp = &gs.groups[gi];
    int channels = grp->channels;
    for (int c = 0, j = 0; c < channels; c++) {
        if (j < nkeep && keep[j] == c)
            j++;
        else
            zero_channel(g, grp, c);
    }
    lop_groups_free(&gs);
    lop_tensor *before = eval_output(g, x);
    uint64_t gen = lop_graph_generation(g);
    if (lop_graph_prune(g, id_of(g, carrier), keep, nkeep) != LOP_OK)
        fail_msg("prune %s: %s", carrier, lop_errmsg());
    assert_true(lop_graph_generation(g) > gen);
    lop_tensor *after = eval_output(g, x);
    double diff = max_abs_diff(before, after), scale = fmax(1.0, max_abs(before));
    if (diff > 1e-5 * scale)
        fail_msg("pruning %s moved the output by %g (scale %g)", carrier, diff, scale);
    assert_true(max_abs(before) > 1e-3);   /* the comparison is not between zeros */
    lop_tensor_release(before);
    lop_tensor_release(after);
    return channels;
}

static lop_tensor *input_batch(int b, uint64_t seed)
{
    int shape[4] = {b, 4, 8, 8};
    return gradcheck_random(4, shape, seed);
}

/* Channels c with (7c + salt) % 3 != 0: about two thirds, never none. */
static int some_channels(int channels, int salt, int *keep)
{
    int n = 0;
    for (int c = 0; c < channels; c++)
        if ((7 * c + salt) % 3 != 0)
            keep[n++] = c;
    return n;
}

/* The carriers of the prunable groups, each once, then the depthwise group and the
 * concat's second segment again, down to one channel (the depthwise conv ends up
 * with groups = 1). */
static void test_pruning_zeroed_channels_keeps_the_output(void **state)
{
    (void)state;
    lop_graph *g = big_graph();
    lop_tensor *x = input_batch(3, 21);
    static const char *carriers[] = {"c1", "r3", "sum2", "ba", "bbn", "dw", "c7", "drop", "fc2"};
    static const int want_channels[] = {6, 8, 8, 3, 5, 6, 5, 7, 6};
    for (int i = 0; i < 9; i++) {
        int keep[8];
        int n = some_channels(want_channels[i], i, keep);
        assert_int_equal(prune_zeroed(g, carriers[i], keep, n, x), want_channels[i]);
    }
    /* every carrier now has the kept count; spot-check shapes node by node */
    int shape[3];
    lop_node_shape(g, id_of(g, "cat"), shape);
    assert_int_equal(shape[0], 2 + 4);   /* ba 3 -> 2, bb 5 -> 4 */
    lop_node_shape(g, id_of(g, "flat"), shape);
    assert_int_equal(shape[0], 3 * 4);   /* c7 5 -> 3 channels of 2x2 */
    assert_int_equal(lop_node_param(g, id_of(g, "fc1"), 0)->shape[1], 12);

    int one = 3;
    assert_int_equal(prune_zeroed(g, "r5", &one, 1, x), 4);
    int first = 0;
    assert_int_equal(prune_zeroed(g, "bb", &first, 1, x), 4);
    /* the grouped conv's input, one channel per slice at different places in its two
     * conv groups, then its output: 2 in, 2 out in 2 groups makes it depthwise */
    int apart[2] = {1, 2}, ends[2] = {0, 3};
    assert_int_equal(prune_zeroed(g, "r6", apart, 2, x), 4);
    assert_int_equal(lop_node_param(g, id_of(g, "gc"), 0)->shape[1], 1);
    assert_int_equal(prune_zeroed(g, "gc", ends, 2, x), 4);
    const lop_attrs *gc = lop_node_attrs(g, id_of(g, "gc"));
    assert_true(gc->groups == 2 && gc->out_channels == 2);
    const lop_attrs *dw = lop_node_attrs(g, id_of(g, "dw"));
    assert_int_equal(dw->groups, 1);
    assert_int_equal(dw->out_channels, 1);
    assert_int_equal(lop_node_param(g, id_of(g, "c5"), 0)->shape[1], 2 + 1);
    lop_tensor_release(x);
    lop_graph_free(g);
}

/* input 2x4x4 -> c1 (3, 3x3 pad 1, bias) -> bn1 -> dw (depthwise 3x3 pad 1, no bias)
 * -> flat [48] -> fc (5, bias).  Small enough to count by hand. */
static lop_graph *small_graph(void)
{
    lop_graph *g = lop_graph_new(3);
    lop_attrs in = lop_attrs_input(2, 4, 4);
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, NULL), LOP_OK);
    conv(g, "c1", "x", 3, 3, 1, 1, 1);
    layer(g, LOP_BATCHNORM, "bn1", "c1");
    conv(g, "dw", "bn1", 3, 3, 1, 3, 0);
    layer(g, LOP_FLATTEN, "flat", "dw");
    linear(g, "fc", "flat", 5);
    randomize(g, 8);
    return g;
}

static void test_kept_weights_counts_and_gradients(void **state)
{
    (void)state;
    lop_graph *g = small_graph();
    /* c1 3*2*9 + 3 = 57, bn1 4*3 = 12, dw 3*9 = 27, fc 48*5 + 5 = 245 */
    assert_int_equal(lop_graph_params(g), 57 + 12 + 27 + 245);
    /* c1 2*3*2*9*16 = 1728, bn1 2*48 = 96, dw 2*3*1*9*16 = 864, fc 2*48*5 = 480 */
    assert_float_equal(lop_graph_flops(g), 1728 + 96 + 864 + 480, 1e-9);
    lop_graph *orig = lop_graph_clone(g);
    int keep[2] = {0, 2};
    assert_int_equal(lop_graph_prune(g, id_of(g, "bn1"), keep, 2), LOP_OK);
    /* c1 2*2*9 + 2 = 38, bn1 8, dw 18, fc 32*5 + 5 = 165 */
    assert_int_equal(lop_graph_params(g), 38 + 8 + 18 + 165);
    /* c1 2*2*2*9*16 = 1152, bn1 2*32 = 64, dw 2*2*9*16 = 576, fc 2*32*5 = 320 */
    assert_float_equal(lop_graph_flops(g), 1152 + 64 + 576 + 320, 1e-9);
    int shape[3];
    assert_int_equal(lop_node_shape(g, id_of(g, "dw"), shape), 3);
    assert_true(shape[0] == 2 && shape[1] == 4 && shape[2] == 4);
    assert_int_equal(lop_node_shape(g, id_of(g, "flat"), shape), 1);
    assert_int_equal(shape[0], 32);
    assert_int_equal(lop_node_attrs(g, id_of(g, "dw"))->groups, 2);

    /* surviving entries are the originals' rows 0 and 2 (fc: column blocks of 16) */
    for (int i = 0; i < lop_graph_size(g); i++)
        for (int k = 0; k < lop_node_nparams(g, i); k++) {
            const lop_tensor *now = lop_node_param(g, i, k), *was = lop_node_param(orig, i, k);
            const char *name = lop_node_name(g, i);
            if (strcmp(name, "fc") == 0 && k == 0) {
                assert_true(now->shape[0] == 5 && now->shape[1] == 32);
                for (int r = 0; r < 5; r++)
                    for (int j = 0; j < 32; j++) {
                        int src = (j < 16 ? j : j + 16);
                        assert_true(now->data[r * 32 + j] == was->data[r * 48 + src]);
                    }
                continue;
            }
            if (strcmp(name, "fc") == 0) {
                assert_memory_equal(now->data, was->data, 5 * sizeof(float));
                continue;
            }
            size_t row = was->numel / (size_t)was->shape[0];
            assert_int_equal(now->shape[0], 2);
            assert_int_equal(now->numel, 2 * row);
            for (int r = 0; r < 2; r++)
                assert_memory_equal(now->data + r * row, was->data + keep[r] * row,
                                    row * sizeof(float));
        }
    /* the pruned graph's backward agrees with finite differences */
    int xs[4] = {3, 2, 4, 4};
    lop_tensor *x = gradcheck_random(4, xs, 4);
    double worst = gradcheck_graph(g, x, 1, 1e-2, 6);
    assert_true(worst >= 0 && worst < 2e-2);
    lop_tensor_release(x);
    lop_graph_free(orig);
    lop_graph_free(g);
}

/* ---- refusals and failures leave the graph alone -------------------------------- */

/* Everything a prune could touch: parameter pointers and values, attributes, shapes,
 * the generation and the counts. */
typedef struct snapshot {
    int n;
    uint64_t generation;
    size_t params;
    double flops;
    lop_attrs attrs[64];
    int shape[64][4];
    lop_tensor *ptr[64][4];
    lop_tensor *copy[64][4];
} snapshot;

static snapshot *take(const lop_graph *g)
{
    snapshot *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->n = lop_graph_size(g);
    assert_true(s->n <= 64);
    s->generation = lop_graph_generation(g);
    s->params = lop_graph_params(g);
    s->flops = lop_graph_flops(g);
    for (int i = 0; i < s->n; i++) {
        s->attrs[i] = *lop_node_attrs(g, i);
        s->shape[i][3] = lop_node_shape(g, i, s->shape[i]);
        for (int k = 0; k < lop_node_nparams(g, i); k++) {
            s->ptr[i][k] = lop_node_param(g, i, k);
            s->copy[i][k] = lop_tensor_clone(s->ptr[i][k]);
        }
    }
    return s;
}

static void assert_unchanged(const lop_graph *g, snapshot *s)
{
    assert_int_equal(lop_graph_size(g), s->n);
    assert_int_equal(lop_graph_generation(g), s->generation);
    assert_int_equal(lop_graph_params(g), s->params);
    assert_true(lop_graph_flops(g) == s->flops);
    for (int i = 0; i < s->n; i++) {
        int shape[4] = {0};
        shape[3] = lop_node_shape(g, i, shape);
        assert_memory_equal(shape, s->shape[i], sizeof shape);
        assert_memory_equal(lop_node_attrs(g, i), &s->attrs[i], sizeof(lop_attrs));
        for (int k = 0; k < lop_node_nparams(g, i); k++) {
            const lop_tensor *t = lop_node_param(g, i, k), *c = s->copy[i][k];
            assert_ptr_equal(t, s->ptr[i][k]);
            assert_int_equal(t->ndim, c->ndim);
            assert_memory_equal(t->shape, c->shape, sizeof t->shape);
            assert_memory_equal(t->data, c->data, c->numel * sizeof(float));
        }
    }
}

static void drop(snapshot *s)
{
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < 4; k++)
            lop_tensor_release(s->copy[i][k]);
    free(s);
}

static void test_refused_prunes_change_nothing(void **state)
{
    (void)state;
    lop_graph *g = big_graph();
    snapshot *s = take(g);
    int c1 = id_of(g, "c1"), n = lop_graph_size(g);
    int ok2[2] = {0, 1}, dup[2] = {1, 1}, high[2] = {0, 6}, neg[2] = {-1, 2}, down[2] = {3, 2};
    int all7[7] = {0, 1, 2, 3, 4, 5, 6};
    struct { const char *why; int node; const int *keep; int nkeep; const char *msg; } cases[] = {
        {"NULL keep", c1, NULL, 0, "keep at least one"},
        {"empty keep", c1, ok2, 0, "keep at least one"},
        {"negative count", c1, ok2, -3, "keep at least one"},
        {"duplicate", c1, dup, 2, "strictly increasing"},
        {"past the end", c1, high, 2, "outside 0..5"},
        {"negative", c1, neg, 2, "outside 0..5"},
        {"decreasing", c1, down, 2, "strictly increasing"},
        {"more than there are", c1, all7, 7, "7 channels to keep"},
        {"input group", id_of(g, "c0"), ok2, 2, "network input"},
        {"into a grouped conv, unevenly", id_of(g, "r6"), ok2, 2,
         "keep 0 of the 2 channels in slice 2, but 2 in slice 1: grouped convolution 'gc' "
         "(2 groups) needs the same number kept in each of the 2 slices of the 4 channels of "
         "'r6' (kept per slice: 2 0)"},
        {"out of a grouped conv, unevenly", id_of(g, "gc"), ok2, 2, "in slice 2, but 2 in"},
        {"logits", id_of(g, "fc3"), ok2, 2, "network output"},
        {"input node", id_of(g, "x"), ok2, 2, "single channel group"},
        {"concat", id_of(g, "cat"), ok2, 2, "single channel group"},
        {"after concat", id_of(g, "cr"), ok2, 2, "single channel group"},
        {"id -1", -1, ok2, 2, "not in 0..43"},
        {"id n", n, ok2, 2, "not in 0..43"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = lop_graph_prune(g, cases[i].node, cases[i].keep, cases[i].nkeep);
        if (st != LOP_EINVAL || !strstr(lop_errmsg(), cases[i].msg))
            fail_msg("%s: status %s, message '%s'", cases[i].why, lop_status_name(st),
                     lop_errmsg());
        assert_unchanged(g, s);
    }
    drop(s);
    lop_graph_free(g);
}

/* Fail each allocation of a prune in turn: LOP_ENOMEM and an untouched graph, until
 * it succeeds - and then the zeroed channels are gone without a trace in the output. */
static void test_failed_allocations_change_nothing(void **state)
{
    (void)state;
    static const struct { const char *carrier; int keep[4]; int nkeep; } cuts[] = {
        {"sum1", {1, 2, 4}, 3},   /* the group with most members */
        {"bbn", {0, 2, 4}, 3},    /* a concat segment */
        {"dbn", {1, 5}, 2},       /* through the depthwise conv */
        {"c7", {0, 3}, 2},        /* flatten blocks */
        {"r6", {1, 2}, 2},        /* a grouped conv's columns */
    };
    lop_tensor *x = input_batch(2, 77);
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        lop_graph *g = big_graph();
        lop_groups gs;
        assert_int_equal(lop_graph_groups(g, &gs), LOP_OK);
        const lop_group *grp = &gs.groups[lop_groups_find(&gs, id_of(g, cuts[i].carrier))];
        for (int c = 0, j = 0; c < grp->channels; c++) {
            if (j < cuts[i].nkeep && cuts[i].keep[j] == c)
                j++;
            else
                zero_channel(g, grp, c);
        }
        lop_groups_free(&gs);
        lop_tensor *before = eval_output(g, x);
        snapshot *s = take(g);
        long k;
        for (k = 1; k < 10000; k++) {
            lop_debug_fail_alloc(k);
            int st = lop_graph_prune(g, id_of(g, cuts[i].carrier), cuts[i].keep,
                                     cuts[i].nkeep);
            lop_debug_fail_alloc(0);
            if (st == LOP_OK)
                break;
            if (st != LOP_ENOMEM)
                fail_msg("%s, allocation %ld: %s", cuts[i].carrier, k, lop_errmsg());
            assert_unchanged(g, s);
        }
        assert_true(k > 1 && k < 10000);
        lop_tensor *after = eval_output(g, x);
        assert_true(max_abs_diff(before, after) <= 1e-5 * fmax(1.0, max_abs(before)));
        drop(s);
        lop_tensor_release(before);
        lop_tensor_release(after);
        lop_graph_free(g);
    }
    /* groups alone fail cleanly too */
    lop_graph *g = big_graph();
    for (long k = 1;; k++) {
        lop_groups gs = {0};
        lop_debug_fail_alloc(k);
        int st = lop_graph_groups(g, &gs);
        lop_debug_fail_alloc(0);
        if (st == LOP_OK) {
            assert_int_equal(gs.n, NWANT);
            lop_groups_free(&gs);
            break;
        }
        assert_int_equal(st, LOP_ENOMEM);
        assert_true(gs.n == 0 && gs.groups == NULL);
    }
    lop_graph_free(g);
    lop_tensor_release(x);
}

/* ---- grouped convolutions ---------------------------------------------------------- */

/* A 1x1 conv with cout filters and a bias. */
static void pointwise(lop_graph *g, const char *name, const char *in, int cout)
{
    conv(g, name, in, cout, 1, 1, 1, 1);
}

static lop_graph *graph_on(int c, const char *first_conv, int cout)
{
    lop_graph *g = lop_graph_new(13);
    lop_attrs in = lop_attrs_input(c, 6, 6);
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, NULL), LOP_OK);
    pointwise(g, first_conv, "x", cout);
    return g;
}

/* c -> cbn -> cr -> flat -> fc (3): a prunable group for c, then the logits. */
static lop_graph *finish(lop_graph *g, const char *in, int cout)
{
    pointwise(g, "c", in, cout);
    layer(g, LOP_BATCHNORM, "cbn", "c");
    layer(g, LOP_RELU, "cr", "cbn");
    layer(g, LOP_FLATTEN, "flat", "cr");
    linear(g, "fc", "flat", 3);
    randomize(g, 17);
    return g;
}

/* RegNet's block, input 8x6x6: a (1x1, 16) -> abn -> ar -> b (3x3, 16 in 4 groups of
 * 4, bias), then
 *   plain:    b -> br (relu) -> c (1x1, 8) -> cbn -> cr -> flat -> fc (3)
 *   residual: b -> bbn -> sum (bbn, ar) -> sr -> c ... as above. */
static lop_graph *grouped_graph(int residual)
{
    lop_graph *g = graph_on(8, "a", 16);
    layer(g, LOP_BATCHNORM, "abn", "a");
    layer(g, LOP_RELU, "ar", "abn");
    conv(g, "b", "ar", 16, 3, 1, 4, 1);
    if (!residual) {
        layer(g, LOP_RELU, "br", "b");
        return finish(g, "br", 8);
    }
    layer(g, LOP_BATCHNORM, "bbn", "b");
    merge(g, LOP_ADD, "sum", "bbn", "ar");
    layer(g, LOP_RELU, "sr", "sum");
    return finish(g, "sr", 8);
}

/* Two grouped convs of 2 and 3 groups reading one group and adding up into another
 * (slices lcm(2, 3) = 6 for both), input 4x6x6: a (1x1, 12) -> ar -> b2 (3x3, 12 in
 * 2 groups), b3 (3x3, 12 in 3 groups) -> sum -> sr -> c (1x1, 4) -> ... */
static lop_graph *lcm_graph(void)
{
    lop_graph *g = graph_on(4, "a", 12);
    layer(g, LOP_RELU, "ar", "a");
    conv(g, "b2", "ar", 12, 3, 1, 2, 1);
    conv(g, "b3", "ar", 12, 3, 1, 3, 1);
    merge(g, LOP_ADD, "sum", "b2", "b3");
    layer(g, LOP_RELU, "sr", "sum");
    return finish(g, "sr", 4);
}

/* input 4x6x6 -> a (1x1, ca), z (1x1, ca) -> cat (a, second) -> gc (3x3, 12 in
 * `groups` groups) -> c ...: second is "a" or "z". */
static lop_graph *concat_graph(int ca, const char *second, int groups)
{
    lop_graph *g = graph_on(4, "a", ca);
    pointwise(g, "z", "x", ca);
    merge(g, LOP_CONCAT, "cat", "a", second);
    conv(g, "gc", "cat", 12, 3, 1, groups, 1);
    return finish(g, "gc", 4);
}

static void expect_group(const lop_graph *g, const char *carrier, const want_group *w)
{
    lop_groups gs;
    assert_int_equal(lop_graph_groups(g, &gs), LOP_OK);
    int gi = lop_groups_find(&gs, id_of(g, carrier));
    if (gi < 0)
        fail_msg("%s carries no group", carrier);
    check_group(g, &gs.groups[gi], w, carrier);
    lop_groups_free(&gs);
}

static void test_grouped_convs_slice_their_groups(void **state)
{
    (void)state;
    lop_graph *g = grouped_graph(0);
    expect_group(g, "ar", &(want_group){16, 4, 1, "",
        {{"a", P, 0, 1}, {"abn", S, 0, 1}, {"ar", S, 0, 1}, {"b", C, 0, 1}}});
    expect_group(g, "b", &(want_group){16, 4, 1, "",
        {{"b", P, 0, 1}, {"br", S, 0, 1}, {"c", C, 0, 1}}});
    expect_group(g, "c", &(want_group){8, 1, 1, "",
        {{"c", P, 0, 1}, {"cbn", S, 0, 1}, {"cr", S, 0, 1}, {"flat", S, 0, 36},
         {"fc", C, 0, 36}}});
    lop_graph_free(g);

    g = grouped_graph(1);   /* b reads and writes the same group */
    expect_group(g, "sum", &(want_group){16, 4, 1, "",
        {{"a", P, 0, 1}, {"abn", S, 0, 1}, {"ar", S, 0, 1}, {"b", P, 0, 1}, {"b", C, 0, 1},
         {"bbn", S, 0, 1}, {"sum", S, 0, 1}, {"sr", S, 0, 1}, {"c", C, 0, 1}}});
    lop_graph_free(g);

    g = lcm_graph();
    expect_group(g, "ar", &(want_group){12, 6, 1, "",
        {{"a", P, 0, 1}, {"ar", S, 0, 1}, {"b2", C, 0, 1}, {"b3", C, 0, 1}}});
    expect_group(g, "sum", &(want_group){12, 6, 1, "",
        {{"b2", P, 0, 1}, {"b3", P, 0, 1}, {"sum", S, 0, 1}, {"sr", S, 0, 1},
         {"c", C, 0, 1}}});
    lop_graph_free(g);

    /* a concat of two groups: each conv group is one of them, which cannot shrink
     * alone */
    g = concat_graph(4, "z", 2);
    const char *mixed = "grouped convolution 'gc' reads it along with other groups";
    expect_group(g, "a", &(want_group){4, 1, 0, mixed,
        {{"a", P, 0, 1}, {"cat", S, 0, 1}, {"gc", C, 0, 1}}});
    expect_group(g, "z", &(want_group){4, 1, 0, mixed,
        {{"z", P, 0, 1}, {"cat", S, 4, 1}, {"gc", C, 4, 1}}});
    lop_graph_free(g);
    /* one group twice: conv groups 0-1 and 2-3 are its two halves, twice over */
    g = concat_graph(4, "a", 4);
    expect_group(g, "a", &(want_group){4, 2, 1, "",
        {{"a", P, 0, 1}, {"cat", S, 0, 1}, {"cat", S, 4, 1}, {"gc", C, 0, 1},
         {"gc", C, 4, 1}}});
    lop_graph_free(g);
    /* 3 channels twice in conv groups of 2: the second copy starts inside one */
    g = concat_graph(3, "a", 3);
    expect_group(g, "a", &(want_group){3, 1, 0,
        "its channels straddle the groups of grouped convolution 'gc'",
        {{"a", P, 0, 1}, {"cat", S, 0, 1}, {"cat", S, 3, 1}, {"gc", C, 0, 1},
         {"gc", C, 3, 1}}});
    lop_graph_free(g);

    /* relu6 and pad pass a group through as relu does */
    g = graph_on(4, "a", 4);
    layer(g, LOP_RELU6, "r6", "a");
    lop_attrs pad = lop_attrs_default();
    pad.pad_h = pad.pad_w = pad.pad_bottom = pad.pad_right = 1;
    add_node(g, LOP_PAD, "pad", "r6", NULL, &pad);
    finish(g, "pad", 4);
    expect_group(g, "pad", &(want_group){4, 1, 1, "",
        {{"a", P, 0, 1}, {"r6", S, 0, 1}, {"pad", S, 0, 1}, {"c", C, 0, 1}}});
    lop_graph_free(g);
}

static lop_tensor *batch_of(int c, uint64_t seed)
{
    int shape[4] = {3, c, 6, 6};
    return gradcheck_random(4, shape, seed);
}

/* Pruning channels zeroed at their source leaves the output as it was, through a
 * grouped conv's input columns (kept at other places in each conv group), its output
 * filters, a residual group it both reads and writes, two grouped convs of different
 * group counts and a concat of one group twice. */
static void test_pruning_through_grouped_convs_keeps_the_output(void **state)
{
    (void)state;
    static const int half[8] = {0, 3, 5, 6, 8, 9, 14, 15};
    static const int other[8] = {1, 2, 4, 7, 9, 10, 12, 13};
    lop_tensor *x8 = batch_of(8, 31), *x4 = batch_of(4, 32);
    lop_graph *g = grouped_graph(0);
    int b = id_of(g, "b");
    lop_tensor *wb = lop_tensor_clone(lop_node_param(g, b, 0));   /* [16, 4, 3, 3] */
    assert_int_equal(prune_zeroed(g, "ar", half, 8, x8), 16);
    /* filter o of conv group j = o / 4 keeps the columns of the channels kept in input
     * group j: channel half[2j + k] at column half[2j + k] % 4 */
    const lop_tensor *now = lop_node_param(g, b, 0);
    assert_true(now->shape[0] == 16 && now->shape[1] == 2);
    for (int o = 0; o < 16; o++)
        for (int k = 0; k < 2; k++)
            assert_memory_equal(now->data + (o * 2 + k) * 9,
                                wb->data + (o * 4 + half[o / 4 * 2 + k] % 4) * 9,
                                9 * sizeof(float));
    assert_int_equal(prune_zeroed(g, "b", other, 8, x8), 16);
    const lop_attrs *ab = lop_node_attrs(g, b);
    assert_true(ab->groups == 4 && ab->out_channels == 8);
    assert_int_equal(lop_node_param(g, b, 0)->shape[1], 2);
    lop_tensor_release(wb);
    lop_graph_free(g);

    g = grouped_graph(1);
    assert_int_equal(prune_zeroed(g, "sum", other, 8, x8), 16);
    assert_int_equal(lop_node_param(g, id_of(g, "b"), 0)->shape[0], 8);
    lop_graph_free(g);

    g = lcm_graph();
    static const int pairs_in[6] = {1, 2, 5, 6, 8, 11}, pairs_out[6] = {0, 3, 4, 7, 9, 10};
    assert_int_equal(prune_zeroed(g, "ar", pairs_in, 6, x4), 12);
    assert_int_equal(prune_zeroed(g, "sum", pairs_out, 6, x4), 12);
    assert_int_equal(lop_node_param(g, id_of(g, "b2"), 0)->shape[1], 3);
    assert_int_equal(lop_node_param(g, id_of(g, "b3"), 0)->shape[1], 2);
    lop_graph_free(g);

    g = concat_graph(4, "a", 4);
    static const int one_each[2] = {1, 2};
    assert_int_equal(prune_zeroed(g, "a", one_each, 2, x4), 4);
    assert_int_equal(lop_node_param(g, id_of(g, "gc"), 0)->shape[1], 1);
    lop_graph_free(g);
    lop_tensor_release(x8);
    lop_tensor_release(x4);
}

/* A keep list or mask that keeps more in one slice than in another is refused and
 * changes nothing; an even mask turns into an even prune. */
static void test_uneven_keeps_and_masks_are_refused(void **state)
{
    (void)state;
    lop_graph *g = grouped_graph(0);
    snapshot *s = take(g);
    static const int uneven[8] = {0, 1, 2, 3, 4, 5, 6, 8};
    assert_int_equal(lop_graph_prune(g, id_of(g, "ar"), uneven, 8), LOP_EINVAL);
    assert_string_equal(lop_errmsg(),
        "prune: keep 3 of the 4 channels in slice 2, but 4 in slice 1: grouped convolution "
        "'b' (4 groups) needs the same number kept in each of the 4 slices of the 16 "
        "channels of 'ar' (kept per slice: 4 3 1 0)");
    assert_unchanged(g, s);
    unsigned char mask[16] = {1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0};
    assert_int_equal(lop_graph_set_mask(g, id_of(g, "b"), mask, 16), LOP_EINVAL);
    assert_true(strstr(lop_errmsg(), "mask: keep 3 of the 4 channels in slice 2, but 4 in "
                                     "slice 1: grouped convolution 'b'") != NULL);
    assert_unchanged(g, s);
    int removed = -1;
    assert_int_equal(lop_graph_remove_masked(g, &removed), LOP_OK);
    assert_int_equal(removed, 0);
    assert_unchanged(g, s);
    drop(s);

    /* half of each slice masked, trained around, then removed */
    lop_tensor *x = batch_of(8, 33);
    for (int c = 0; c < 16; c++)
        mask[c] = c % 4 == 1 || c % 4 == 2;
    assert_int_equal(lop_graph_set_mask(g, id_of(g, "ar"), mask, 16), LOP_OK);
    lop_tensor *masked = eval_output(g, x);
    assert_int_equal(lop_graph_remove_masked(g, &removed), LOP_OK);
    assert_int_equal(removed, 8);
    lop_tensor *after = eval_output(g, x);
    assert_true(max_abs_diff(masked, after) <= 1e-5 * fmax(1.0, max_abs(masked)));
    assert_int_equal(lop_node_param(g, id_of(g, "b"), 0)->shape[1], 2);
    lop_tensor_release(masked);
    lop_tensor_release(after);
    lop_tensor_release(x);
    lop_graph_free(g);

    /* even per conv group of both convs (3 of each 6, 2 of each 4), yet not per slice
     * of lcm(2, 3) = 6: the rule is the slices' */
    g = lcm_graph();
    s = take(g);
    static const int halves_and_thirds[6] = {0, 1, 4, 7, 10, 11};
    assert_int_equal(lop_graph_prune(g, id_of(g, "ar"), halves_and_thirds, 6), LOP_EINVAL);
    assert_true(strstr(lop_errmsg(), "keep 0 of the 2 channels in slice 2, but 2 in slice 1")
                != NULL);
    assert_true(strstr(lop_errmsg(), "each of the 6 slices of the 12 channels of 'ar' "
                                     "(kept per slice: 2 0 1 1 0 2)") != NULL);
    assert_unchanged(g, s);
    drop(s);
    lop_graph_free(g);
}

/* ---- life after pruning ------------------------------------------------------------- */

static int all_finite(const lop_graph *g)
{
    for (int i = 0; i < lop_graph_size(g); i++)
        for (int k = 0; k < lop_node_nparams(g, i); k++) {
            const lop_tensor *t = lop_node_param(g, i, k);
            for (size_t j = 0; j < t->numel; j++)
                if (!isfinite(t->data[j]))
                    return 0;
        }
    return 1;
}

static void train_step(lop_graph *g, const lop_tensor *x)
{
    lop_sgd opt = {.lr = 0.01f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = 1};
    assert_int_equal(lop_graph_forward(g, x, 1), LOP_OK);
    lop_tensor *out = lop_graph_output(g);
    lop_tensor *d = gradcheck_random(out->ndim, out->shape, 9);
    lop_graph_zero_grad(g);
    assert_int_equal(lop_graph_backward(g, d), LOP_OK);
    assert_int_equal(lop_sgd_step(g, &opt), LOP_OK);
    lop_tensor_release(d);
}

/* A graph trained before the prune (so momentum buffers exist at the old sizes)
 * trains after it, moving its weights, and a save/load round trip gives the same
 * outputs bit for bit. */
static void test_pruned_graph_trains_and_round_trips(void **state)
{
    (void)state;
    lop_graph *g = big_graph();
    lop_tensor *x = input_batch(4, 3);
    train_step(g, x);
    static const char *carriers[] = {"c2", "c3", "proj", "ba", "bb", "c5", "c7", "fc1", "fc2"};
    static const int channels[] = {6, 8, 8, 3, 5, 6, 5, 7, 6};
    for (int i = 0; i < 9; i++) {
        int keep[8];
        int n = some_channels(channels[i], i + 1, keep);
        assert_int_equal(lop_graph_prune(g, id_of(g, carriers[i]), keep, n), LOP_OK);
    }
    /* backward refuses until a new training forward */
    int oshape[2] = {4, 3};
    lop_tensor *d = lop_tensor_new(2, oshape);
    assert_int_equal(lop_graph_backward(g, d), LOP_ESTATE);
    lop_tensor_release(d);

    lop_tensor *w0 = lop_tensor_clone(lop_node_param(g, id_of(g, "c4"), 0));
    train_step(g, x);
    train_step(g, x);
    assert_true(all_finite(g));
    lop_tensor *w1 = lop_node_param(g, id_of(g, "c4"), 0);
    assert_true(lop_tensor_same_shape(w0, w1));
    assert_true(max_abs_diff(w0, w1) > 0);
    lop_tensor_release(w0);

    char path[128];
    snprintf(path, sizeof path, "%s/pruned.lop", dir);
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    lop_graph *back = NULL;
    assert_int_equal(lop_graph_load(path, &back), LOP_OK);
    assert_int_equal(lop_graph_params(back), lop_graph_params(g));
    assert_true(lop_graph_flops(back) == lop_graph_flops(g));
    lop_tensor *a = eval_output(g, x), *b = eval_output(back, x);
    assert_true(lop_tensor_same_shape(a, b));
    assert_memory_equal(a->data, b->data, a->numel * sizeof(float));
    /* the loaded graph derives the same groups */
    lop_groups ga, gb;
    assert_int_equal(lop_graph_groups(g, &ga), LOP_OK);
    assert_int_equal(lop_graph_groups(back, &gb), LOP_OK);
    assert_int_equal(ga.n, gb.n);
    for (int i = 0; i < ga.n; i++) {
        assert_int_equal(ga.groups[i].channels, gb.groups[i].channels);
        assert_int_equal(ga.groups[i].nmembers, gb.groups[i].nmembers);
        assert_memory_equal(ga.groups[i].members, gb.groups[i].members,
                            ga.groups[i].nmembers * sizeof(lop_member));
    }
    lop_groups_free(&ga);
    lop_groups_free(&gb);
    remove(path);
    lop_tensor_release(a);
    lop_tensor_release(b);
    lop_tensor_release(x);
    lop_graph_free(back);
    lop_graph_free(g);
}

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lop_prune_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups_of_a_graph_with_every_coupling),
        cmocka_unit_test(test_pruning_zeroed_channels_keeps_the_output),
        cmocka_unit_test(test_kept_weights_counts_and_gradients),
        cmocka_unit_test(test_refused_prunes_change_nothing),
        cmocka_unit_test(test_failed_allocations_change_nothing),
        cmocka_unit_test(test_grouped_convs_slice_their_groups),
        cmocka_unit_test(test_pruning_through_grouped_convs_keeps_the_output),
        cmocka_unit_test(test_uneven_keeps_and_masks_are_refused),
        cmocka_unit_test(test_pruned_graph_trains_and_round_trips),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
