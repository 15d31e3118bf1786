/*
 * test_pick.c - the channel pick layer and lop_graph_insert_pick: forward against a
 * hand-made gather, backward against finite differences (repeated, permuted and
 * unpicked channels; a gradient the pick stores or adds into, on buffers full of
 * NaN), bad indices refused, and the insertion surgery on a residual block - the
 * output does not change, the conv's inputs become a prunable group while the block
 * input stays whole, pruning that group equals zeroing the dropped input slices of
 * the conv, and the result survives a save/load round trip.
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

#include "gradcheck.h"
#include "graph_build.h"
#include "lopper.h"

static int pick(lop_graph *g, const char *name, int in, int k, const float *index)
{
    lop_attrs a = lop_attrs_default();
    a.out_channels = k;
    int id = add1(g, LOP_PICK, name, in, &a);
    memcpy(lop_node_param(g, id, 0)->data, index, (size_t)k * sizeof(float));
    return id;
}

static void test_forward_is_a_gather(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 4, 2, 3, &x);
    const float index[5] = {2, 0, 3, 3, 1};
    pick(g, "p", x, 5, index);
    lop_tensor *in = random_maps(2, 4, 2, 3, 5);
    assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
    const lop_tensor *out = lop_graph_output(g);
    assert_int_equal(out->shape[1], 5);
    for (int b = 0; b < 2; b++)
        for (int j = 0; j < 5; j++)
            for (int e = 0; e < 6; e++)
                assert_true(out->data[(b * 5 + j) * 6 + e] ==
                            in->data[(b * 4 + (int)index[j]) * 6 + e]);
    assert_true(lop_graph_flops(g) == 0);
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* Finite differences on gradient buffers an earlier pass left full of NaN, after a
 * pass on them that must leave every gradient finite.  The graphs are linear in each
 * entry, so a step of 0.1 has no truncation error and less float rounding than 0.01
 * (at 0.01, roundoff reaches 3% on a small weight gradient). */
static void check_poisoned(lop_graph *g, uint64_t seed)
{
    lop_tensor *in = random_maps(2, 3, 4, 4, seed);
    assert_int_equal(gradcheck_poisoned(g, in, 98), 1);
    double worst = gradcheck_graph(g, in, 1, 0.1, 99);
    assert_true(worst >= 0 && worst < 1e-2);
    lop_tensor_release(in);
    lop_graph_free(g);
}

static void test_backward_matches_finite_differences(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 3, 4, 4, &x);
    int c = conv(g, "c", x, 4, 1);
    const float index[6] = {3, 1, 1, 0, 2, 3};   /* repeats sum their gradients */
    conv(g, "d", pick(g, "p", c, 6, index), 2, 1);
    check_poisoned(g, 9);
}

/* A pick that reaches c's gradient first stores it: channels 0 and 2 unpicked (zero),
 * channel 1 picked twice (stored, then added).  Then c read by two picks: p2 runs
 * its backward first (channel 2 twice, the rest unpicked), p1 adds into it. */
static void test_backward_writes_or_adds(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 3, 4, 4, &x);
    int c = conv(g, "c", x, 4, 1);
    conv(g, "d", pick(g, "p", c, 3, (const float[]){3, 1, 1}), 2, 1);
    check_poisoned(g, 10);

    g = new_graph(3, 3, 4, 4, &x);
    c = conv(g, "c", x, 4, 1);
    int ins[2];
    ins[0] = conv(g, "d", pick(g, "p1", c, 5, (const float[]){3, 1, 1, 0, 3}), 2, 1);
    ins[1] = pick(g, "p2", c, 2, (const float[]){2, 2});
    assert_int_equal(lop_graph_add(g, LOP_ADD, "sum", ins, 2, NULL, NULL), LOP_OK);
    check_poisoned(g, 11);
}

static void test_bad_index_is_an_error(void **state)
{
    (void)state;
    int x;
    lop_graph *g = new_graph(3, 3, 2, 2, &x);
    const float index[2] = {0, 1};
    int p = pick(g, "p", x, 2, index);
    lop_tensor *in = random_maps(1, 3, 2, 2, 1);
    const float bad[] = {3, -1, 0.5f, NAN};
    for (int i = 0; i < 4; i++) {
        lop_node_param(g, p, 0)->data[1] = bad[i];
        assert_int_equal(lop_graph_forward(g, in, 0), LOP_EINVAL);
        assert_non_null(strstr(lop_errmsg(), "index entry 2"));
    }
    lop_attrs a = lop_attrs_default();
    a.out_channels = 0;
    assert_int_equal(lop_graph_add(g, LOP_PICK, "q", &x, 1, &a, NULL), LOP_EINVAL);
    lop_tensor_release(in);
    lop_graph_free(g);
}

/* x(3) -> conv a(4) -> relu r -> [conv b(4) -> conv c(4)] + r -> sum -> conv out(2) */
static lop_graph *block(int *b_id)
{
    int x, ins[2];
    lop_graph *g = new_graph(3, 3, 5, 5, &x);
    int a = conv(g, "a", x, 4, 1);
    int r = add1(g, LOP_RELU, "r", a, NULL);
    int b = conv(g, "b", r, 4, 1);
    ins[0] = conv(g, "c", b, 4, 1);
    ins[1] = r;
    int sum;
    assert_int_equal(lop_graph_add(g, LOP_ADD, "sum", ins, 2, NULL, &sum), LOP_OK);
    conv(g, "out", sum, 2, 1);
    *b_id = b;
    return g;
}

static lop_tensor *forward_copy(lop_graph *g, const lop_tensor *in)
{
    assert_int_equal(lop_graph_forward(g, in, 0), LOP_OK);
    lop_tensor *out = lop_tensor_clone(lop_graph_output(g));
    assert_non_null(out);
    return out;
}

static void assert_close(const lop_tensor *a, const lop_tensor *b)
{
    assert_int_equal(a->numel, b->numel);
    for (size_t i = 0; i < a->numel; i++)
        assert_true(fabsf(a->data[i] - b->data[i]) <= 1e-4f * (1 + fabsf(b->data[i])));
}

static void test_insert_pick_then_prune(void **state)
{
    (void)state;
    int b;
    lop_graph *g = block(&b);
    lop_tensor *in = random_maps(2, 3, 5, 5, 4);
    lop_tensor *before = forward_copy(g, in);
    int n = lop_graph_size(g), p;

    /* the block input r feeds the shortcut: its group ties a's filters to the add */
    lop_groups gs;
    assert_int_equal(lop_graph_groups(g, &gs), LOP_OK);
    int gr = lop_groups_find(&gs, lop_graph_find(g, "r"));
    assert_true(gr >= 0 && gs.groups[gr].prunable);
    lop_groups_free(&gs);

    assert_int_equal(lop_graph_insert_pick(g, b, &p), LOP_OK);
    assert_int_equal(lop_graph_size(g), n + 1);
    assert_string_equal(lop_node_name(g, p), "b_pick");
    assert_int_equal(lop_node_input(g, lop_graph_find(g, "b"), 0), p);
    assert_int_equal(lop_graph_insert_pick(g, lop_graph_find(g, "b"), NULL), LOP_EINVAL);
    lop_tensor *same = forward_copy(g, in);
    assert_close(same, before);

    assert_int_equal(lop_graph_groups(g, &gs), LOP_OK);
    gr = lop_groups_find(&gs, lop_graph_find(g, "r"));
    assert_false(gs.groups[gr].prunable);
    assert_non_null(strstr(gs.groups[gr].why, "channel pick"));
    int gp = lop_groups_find(&gs, p);
    assert_true(gp >= 0 && gs.groups[gp].prunable && gs.groups[gp].channels == 4);
    assert_int_equal(gs.groups[gp].members[0].node, p);
    lop_groups_free(&gs);
    const unsigned char ones[4] = {1, 0, 1, 1};
    assert_int_equal(lop_graph_set_mask(g, p, ones, 4), LOP_EINVAL);   /* prune, not mask */
    assert_non_null(strstr(lop_errmsg(), "prune it instead"));

    /* reference: the original block with b's input slices 1 and 3 zeroed */
    int b0;
    lop_graph *ref = block(&b0);
    lop_tensor *w = lop_node_param(ref, b0, 0);   /* [4][4][3][3] */
    for (int o = 0; o < 4; o++)
        for (int i = 1; i < 4; i += 2)
            memset(w->data + ((size_t)o * 4 + i) * 9, 0, 9 * sizeof(float));
    lop_tensor *want = forward_copy(ref, in);

    const int keep[2] = {0, 2};
    assert_int_equal(lop_graph_prune(g, p, keep, 2), LOP_OK);
    assert_int_equal(lop_node_param(g, lop_graph_find(g, "b"), 0)->shape[1], 2);
    assert_true(lop_node_param(g, p, 0)->data[0] == 0 && lop_node_param(g, p, 0)->data[1] == 2);
    lop_tensor *got = forward_copy(g, in);
    assert_close(got, want);

    /* save and load: the pick and its index come back */
    char path[] = "/tmp/lopper_pick_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    lop_graph *back = NULL;
    assert_int_equal(lop_graph_load(path, &back), LOP_OK);
    remove(path);
    lop_tensor *again = forward_copy(back, in);
    assert_close(again, want);

    lop_tensor_release(again);
    lop_tensor_release(got);
    lop_tensor_release(want);
    lop_tensor_release(same);
    lop_tensor_release(before);
    lop_tensor_release(in);
    lop_graph_free(back);
    lop_graph_free(ref);
    lop_graph_free(g);
}

static void test_insert_pick_refusals_leave_graph_unchanged(void **state)
{
    (void)state;
    int b;
    lop_graph *g = block(&b);
    int n = lop_graph_size(g);
    assert_int_equal(lop_graph_insert_pick(g, lop_graph_find(g, "r"), NULL), LOP_EINVAL);
    assert_int_equal(lop_graph_insert_pick(g, 0, NULL), LOP_EINVAL);
    assert_int_equal(lop_graph_insert_pick(g, 99, NULL), LOP_EINVAL);
    int x = 0, r = lop_graph_find(g, "r");
    lop_attrs a = lop_attrs_default();
    a.out_channels = 4;
    assert_int_equal(lop_graph_add(g, LOP_PICK, "b_pick", &r, 1, &a, &x), LOP_OK);
    assert_int_equal(lop_graph_insert_pick(g, b, NULL), LOP_EINVAL);   /* name taken */
    assert_non_null(strstr(lop_errmsg(), "b_pick"));
    assert_int_equal(lop_graph_size(g), n + 1);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_is_a_gather),
        cmocka_unit_test(test_backward_matches_finite_differences),
        cmocka_unit_test(test_backward_writes_or_adds),
        cmocka_unit_test(test_bad_index_is_an_error),
        cmocka_unit_test(test_insert_pick_then_prune),
        cmocka_unit_test(test_insert_pick_refusals_leave_graph_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
