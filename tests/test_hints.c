/*
 * test_hints.c - feature hints (engine/train/hints.c) and the backward pass that adds
 * their gradients (lop_graph_backward_adding): a relative error worked out by hand with
 * a channel map, the whole gradient of output projection plus two hints (one mapped,
 * one not) against central differences through a training-mode graph, and the
 * rejection of bad hints and bad extra gradients, by lop_train before any step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "graph_build.h"
#include "internal.h"

/* A batch of rows, [rows, cols]. */
static lop_tensor *rows_of(int rows, int cols, const float *values)
{
    int shape[2] = {rows, cols};
    lop_tensor *t = lop_tensor_new(2, shape);
    assert_non_null(t);
    memcpy(t->data, values, t->numel * sizeof(float));
    return t;
}

/* Student: 2 features -> relu; teacher: 3 features -> relu.  Student (1, 2) against the
 * teacher's relu(3, -1, 4) = (3, 0, 4) through channels {2, 0}, i.e. (4, 3):
 * E = (9 + 1) / (16 + 9) = 0.4, dE/ds = 2 (s - t) / 25 = (-6, -2) / 25. */
static void test_hand_computed_case(void **state)
{
    (void)state;
    int xs, xt;
    lop_graph *s = new_graph(1, 2, 0, 0, &xs), *t = new_graph(1, 3, 0, 0, &xt);
    int rs = add1(s, LOP_RELU, "r", xs, NULL), rt = add1(t, LOP_RELU, "r", xt, NULL);
    lop_tensor *in_s = rows_of(1, 2, (float[]){1, 2}), *in_t = rows_of(1, 3, (float[]){3, -1, 4});
    assert_int_equal(lop_graph_forward(s, in_s, 0), LOP_OK);
    assert_int_equal(lop_graph_forward_until(t, in_t, rt), LOP_OK);
    const int map[2] = {2, 0};
    lop_hint h = {rs, rt, map};
    assert_int_equal(lop_hints_check(s, t, &h, 1), LOP_OK);
    lop_tensor *grad = rows_of(1, 2, (float[]){7, 7});
    double loss = -1;
    assert_int_equal(lop_hint_loss(s, t, &h, 0.5f, &loss, grad), LOP_OK);
    assert_float_equal(loss, 0.4, 1e-9);
    assert_float_equal(grad->data[0], 0.5 * -6.0 / 25, 1e-7);   /* scaled by 0.5 */
    assert_float_equal(grad->data[1], 0.5 * -2.0 / 25, 1e-7);
    /* without a map, channel c learns channel c: not possible for 2 against 3 */
    h.channels = NULL;
    assert_int_equal(lop_hints_check(s, t, &h, 1), LOP_ESHAPE);
    lop_tensor_release(in_s);
    lop_tensor_release(in_t);
    lop_tensor_release(grad);
    lop_graph_free(s);
    lop_graph_free(t);
}

/* conv(c) -> batchnorm -> conv(4) -> batchnorm, with c filters first; *bn1 and *conv2
 * receive the nodes the hints read.  No relu: a finite-difference step across a relu's
 * kink breaks the comparison (relu's own gradient is checked in test_layers). */
static lop_graph *two_convs(int c, lop_rng *r, int *bn1, int *conv2)
{
    int x;
    lop_graph *g = new_graph(3, 2, 5, 5, &x);
    int c1 = conv(g, "c1", x, c, 1);
    *bn1 = add1(g, LOP_BATCHNORM, "bn", c1, NULL);
    *conv2 = conv(g, "c2", *bn1, 4, 1);
    int bn2 = add1(g, LOP_BATCHNORM, "bn2", *conv2, NULL);
    fill_param(g, c1, "weight", -0.5, 0.5, r);
    fill_param(g, c1, "bias", -0.2, 0.2, r);
    batchnorm_terms(g, *bn1, r);
    fill_param(g, *conv2, "weight", -0.4, 0.4, r);
    batchnorm_terms(g, bn2, r);
    return g;
}

typedef struct setup {
    lop_graph *s, *t;
    lop_hint hints[2];
    lop_tensor *x, *proj;
} setup;

/* L = sum(output .* proj) + 0.7 E(hint 1) + 1.3 E(hint 2), the student in training mode
 * (batch statistics), the teacher in evaluation mode. */
static double total_loss(setup *u, lop_tensor **grads)
{
    assert_int_equal(lop_graph_forward(u->s, u->x, 1), LOP_OK);
    assert_int_equal(lop_graph_forward_until(u->t, u->x, lop_graph_size(u->t) - 1), LOP_OK);
    const lop_tensor *out = lop_graph_output(u->s);
    double loss = 0;
    for (size_t i = 0; u->proj && i < out->numel; i++)
        loss += (double)out->data[i] * u->proj->data[i];
    const float scale[2] = {0.7f, 1.3f};
    for (int k = 0; k < 2; k++) {
        double e;
        assert_int_equal(lop_hint_loss(u->s, u->t, &u->hints[k], scale[k], &e,
                                       grads ? grads[k] : NULL), LOP_OK);
        loss += scale[k] * e;
    }
    return loss;
}

static void test_gradient_matches_finite_differences(void **state)
{
    (void)state;
    lop_rng r;
    lop_rng_seed(&r, 11);
    setup u;
    int mid_s, conv_s, mid_t, conv_t;
    u.s = two_convs(3, &r, &mid_s, &conv_s);
    u.t = two_convs(6, &r, &mid_t, &conv_t);
    static const int map[3] = {5, 1, 3};
    u.hints[0] = (lop_hint){mid_s, mid_t, map};
    u.hints[1] = (lop_hint){conv_s, conv_t, NULL};
    assert_int_equal(lop_hints_check(u.s, u.t, u.hints, 2), LOP_OK);
    u.x = random_maps(3, 2, 5, 5, 5);
    lop_tensor *grads[2] = {NULL, NULL};
    u.proj = NULL;
    total_loss(&u, NULL);   /* for the output's shape */
    const lop_tensor *o = lop_graph_output(u.s);
    u.proj = gradcheck_random(o->ndim, o->shape, 9);
    for (int k = 0; k < 2; k++) {
        const lop_tensor *at = lop_node_output(u.s, u.hints[k].student);
        assert_int_equal(lop_tensor_ensure(&grads[k], at->ndim, at->shape), LOP_OK);
    }
    total_loss(&u, grads);
    lop_graph_zero_grad(u.s);
    const int nodes[2] = {mid_s, conv_s};
    assert_int_equal(lop_graph_backward_adding(u.s, u.proj, 2, nodes, grads), LOP_OK);

    /* every weight of the first conv (before both hints) and of the second (before the
     * second hint only), and the batchnorm's scale */
    const char *names[3] = {"c1", "bn", "c2"};
    double worst = 0;
    for (int n = 0; n < 3; n++) {
        int id = lop_graph_find(u.s, names[n]);
        lop_tensor *w = lop_node_param(u.s, id, 0), *gw = lop_node_grad(u.s, id, 0);
        lop_tensor *analytic = lop_tensor_clone(gw);
        for (size_t i = 0; i < w->numel; i++) {
            const float keep = w->data[i], h = 1e-2f;
            w->data[i] = keep + h;
            double up = total_loss(&u, NULL);
            w->data[i] = keep - h;
            double down = total_loss(&u, NULL);
            w->data[i] = keep;
            double numeric = (up - down) / (2.0 * h), a = analytic->data[i];
            double rel = fabs(a - numeric) / fmax(1e-3, fabs(a) + fabs(numeric));
            worst = fmax(worst, rel);
        }
        lop_tensor_release(analytic);
    }
    assert_true(worst < 3e-2);   /* 0.011 found; a gradient off by its factor 2 gives 1 */

    /* the hints' part is there: without it the same gradient differs */
    lop_tensor *with = lop_tensor_clone(lop_node_grad(u.s, lop_graph_find(u.s, "c1"), 0));
    total_loss(&u, NULL);
    lop_graph_zero_grad(u.s);
    assert_int_equal(lop_graph_backward(u.s, u.proj), LOP_OK);
    const lop_tensor *without = lop_node_grad(u.s, lop_graph_find(u.s, "c1"), 0);
    double diff = 0;
    for (size_t i = 0; i < with->numel; i++)
        diff = fmax(diff, fabs(with->data[i] - without->data[i]));
    assert_true(diff > 1e-3);

    lop_tensor_release(with);
    for (int k = 0; k < 2; k++)
        lop_tensor_release(grads[k]);
    lop_tensor_release(u.x);
    lop_tensor_release(u.proj);
    lop_graph_free(u.s);
    lop_graph_free(u.t);
}

static void test_bad_hints_are_rejected(void **state)
{
    (void)state;
    lop_rng r;
    lop_rng_seed(&r, 3);
    int mid_s, conv_s, mid_t, conv_t;
    lop_graph *s = two_convs(3, &r, &mid_s, &conv_s), *t = two_convs(6, &r, &mid_t, &conv_t);
    const int map[3] = {5, 1, 6}, ok_map[3] = {0, 1, 2};
    lop_hint h = {mid_s, mid_t, map};
    assert_int_equal(lop_hints_check(s, t, &h, 1), LOP_EINVAL);   /* channel 6 of 6 */
    h = (lop_hint){0, 0, NULL};
    assert_int_equal(lop_hints_check(s, t, &h, 1), LOP_EINVAL);   /* the input */
    h = (lop_hint){mid_s, lop_graph_size(t), ok_map};
    assert_int_equal(lop_hints_check(s, t, &h, 1), LOP_EINVAL);   /* past the teacher */
    h = (lop_hint){mid_s, conv_t, ok_map};                        /* 5x5 against 5x5: */
    assert_int_equal(lop_hints_check(s, t, &h, 1), LOP_OK);        /* only channels differ */
    h = (lop_hint){conv_s, 1, NULL};   /* the teacher's c1 has 6 channels, c2 4 */
    assert_int_equal(lop_hints_check(s, t, &h, 1), LOP_ESHAPE);
    h = (lop_hint){mid_s, mid_t, ok_map};
    assert_int_equal(lop_hints_check(s, NULL, &h, 1), LOP_EINVAL);   /* no teacher */

    /* lop_train refuses before any step: the weights stay as they were */
    lop_dataset d = random_images(8, 2, 5, 5, 1);
    lop_tensor *before = lop_tensor_clone(lop_node_param(s, 1, 0));
    lop_train_opts o = lop_train_opts_default();
    o.batch = 4;
    o.hints = &h;
    o.nhints = 1;
    assert_int_equal(lop_train(s, &d, &o, NULL), LOP_EINVAL);      /* hints, no teacher */
    o.teacher = t;
    o.hint_weight = -1;
    assert_int_equal(lop_train(s, &d, &o, NULL), LOP_EINVAL);
    assert_memory_equal(before->data, lop_node_param(s, 1, 0)->data,
                        before->numel * sizeof(float));

    /* an extra gradient of the wrong shape, or for the input node */
    lop_tensor *x = random_maps(2, 2, 5, 5, 4);
    assert_int_equal(lop_graph_forward(s, x, 1), LOP_OK);
    const lop_tensor *out = lop_graph_output(s);
    lop_tensor *dout = gradcheck_random(out->ndim, out->shape, 2);
    lop_tensor *wrong = random_maps(2, 4, 5, 5, 6);   /* conv2's shape, not bn1's */
    int node = mid_s;
    assert_int_equal(lop_graph_backward_adding(s, dout, 1, &node, &wrong), LOP_ESHAPE);
    node = 0;
    assert_int_equal(lop_graph_backward_adding(s, dout, 1, &node, &wrong), LOP_ESHAPE);
    node = conv_s;
    assert_int_equal(lop_graph_backward_adding(s, dout, 1, &node, &wrong), LOP_OK);

    lop_tensor_release(wrong);
    lop_tensor_release(dout);
    lop_tensor_release(x);
    lop_tensor_release(before);
    lop_dataset_free(&d);
    lop_graph_free(s);
    lop_graph_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed_case),
        cmocka_unit_test(test_gradient_matches_finite_differences),
        cmocka_unit_test(test_bad_hints_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
