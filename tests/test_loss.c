/*
 * test_loss.c - the training losses.  Softmax cross-entropy: loss, gradient and top-1
 * count against values worked out by hand, the gradient against finite differences of
 * the loss, stability for huge logits, and rejection of bad labels and shapes without
 * touching outputs.  Distillation: a two-class case worked out by hand, its limits
 * (weight 0 is plain cross-entropy; a student equal to its teacher has no soft loss),
 * the gradient against finite differences, huge logits, bad arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "lopper.h"

static lop_tensor *matrix(int rows, int cols, const float *values)
{
    int shape[2] = {rows, cols};
    lop_tensor *t = lop_tensor_new(2, shape);
    assert_non_null(t);
    for (size_t i = 0; values && i < t->numel; i++)
        t->data[i] = values[i];
    return t;
}

static void test_hand_computed_case(void **state)
{
    (void)state;
    /* Row 0: logits (2, 1, 0), label 1.  Row 1: logits (0, ln 2, ln 3) -> softmax
     * (1/6, 2/6, 3/6), label 2, loss ln 2. */
    const float z[6] = {2, 1, 0, 0, (float)log(2.0), (float)log(3.0)};
    int labels[2] = {1, 2};
    lop_tensor *logits = matrix(2, 3, z), *d = matrix(2, 3, NULL);
    double loss = 0;
    int correct = -1;
    assert_int_equal(lop_softmax_xent(logits, labels, &loss, d, &correct), LOP_OK);

    double s0 = exp(2.0) + exp(1.0) + 1.0;
    double loss0 = log(s0) - 1.0, loss1 = log(2.0);
    assert_float_equal(loss, (loss0 + loss1) / 2, 1e-6);
    assert_int_equal(correct, 1);   /* row 0 predicts class 0, row 1 class 2 */

    double want[6] = {exp(2.0) / s0 / 2, (exp(1.0) / s0 - 1) / 2, 1.0 / s0 / 2,
                      1.0 / 6 / 2,      2.0 / 6 / 2,             (3.0 / 6 - 1) / 2};
    for (int i = 0; i < 6; i++)
        assert_float_equal(d->data[i], want[i], 1e-6);

    /* dlogits and correct are optional */
    double loss2 = 0;
    assert_int_equal(lop_softmax_xent(logits, labels, &loss2, NULL, NULL), LOP_OK);
    assert_float_equal(loss2, loss, 1e-12);
    lop_tensor_release(logits);
    lop_tensor_release(d);
}

static void test_gradient_matches_finite_differences(void **state)
{
    (void)state;
    int shape[2] = {4, 5};
    lop_tensor *logits = gradcheck_random(2, shape, 11), *d = matrix(4, 5, NULL);
    assert_non_null(logits);
    for (size_t i = 0; i < logits->numel; i++)
        logits->data[i] *= 3.0f;
    int labels[4] = {0, 4, 2, 2};
    double loss;
    assert_int_equal(lop_softmax_xent(logits, labels, &loss, d, NULL), LOP_OK);
    for (size_t i = 0; i < logits->numel; i++) {
        float saved = logits->data[i];
        float up = saved + 1e-2f, down = saved - 1e-2f;
        double lp, lm;
        logits->data[i] = up;
        assert_int_equal(lop_softmax_xent(logits, labels, &lp, NULL, NULL), LOP_OK);
        logits->data[i] = down;
        assert_int_equal(lop_softmax_xent(logits, labels, &lm, NULL, NULL), LOP_OK);
        logits->data[i] = saved;
        double numeric = (lp - lm) / ((double)up - (double)down);
        assert_float_equal(d->data[i], numeric, 2e-5);
    }
    lop_tensor_release(logits);
    lop_tensor_release(d);
}

static void test_huge_logits_stay_finite(void **state)
{
    (void)state;
    const float z[6] = {1e4f, 0, -1e4f, 1e4f, 1e4f, -1e4f};
    int labels[2] = {1, 0};
    lop_tensor *logits = matrix(2, 3, z), *d = matrix(2, 3, NULL);
    double loss;
    int correct;
    assert_int_equal(lop_softmax_xent(logits, labels, &loss, d, &correct), LOP_OK);
    /* row 0: -log softmax_1 = 1e4 (the other terms vanish); row 1: ln 2 */
    assert_float_equal(loss, (1e4 + log(2.0)) / 2, 1e-6);
    const float want[6] = {0.5f, -0.5f, 0, -0.25f, 0.25f, 0};
    for (int i = 0; i < 6; i++) {
        assert_true(isfinite(d->data[i]));
        assert_float_equal(d->data[i], want[i], 1e-6);
    }
    assert_int_equal(correct, 1);   /* row 1: the first of two equal maxima, class 0 */
    lop_tensor_release(logits);
    lop_tensor_release(d);
}

static void test_gradient_in_place(void **state)
{
    (void)state;
    int shape[2] = {3, 4};
    lop_tensor *logits = gradcheck_random(2, shape, 5), *d = matrix(3, 4, NULL);
    assert_non_null(logits);
    int labels[3] = {3, 0, 1};
    double loss, loss_inplace;
    assert_int_equal(lop_softmax_xent(logits, labels, &loss, d, NULL), LOP_OK);
    assert_int_equal(lop_softmax_xent(logits, labels, &loss_inplace, logits, NULL), LOP_OK);
    assert_float_equal(loss_inplace, loss, 1e-12);
    assert_memory_equal(logits->data, d->data, d->numel * sizeof(float));
    lop_tensor_release(logits);
    lop_tensor_release(d);
}

static void test_bad_arguments_are_rejected(void **state)
{
    (void)state;
    const float z[6] = {1, 2, 3, 4, 5, 6};
    lop_tensor *logits = matrix(2, 3, z), *d = matrix(2, 3, NULL);
    lop_tensor_fill(d, 7.0f);
    double loss = 42;
    int correct = 42;
    int bad_labels[][2] = {{0, 3}, {-1, 0}, {1, 100}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lop_softmax_xent(logits, bad_labels[i], &loss, d, &correct),
                         LOP_EINVAL);
        assert_non_null(strstr(lop_errmsg(), "label"));
    }
    /* nothing written on failure */
    assert_float_equal(loss, 42, 0);
    assert_int_equal(correct, 42);
    for (size_t i = 0; i < d->numel; i++)
        assert_float_equal(d->data[i], 7.0f, 0);

    int labels[2] = {0, 1};
    int s1[1] = {6}, s3[3] = {2, 3, 1};
    lop_tensor *flat = lop_tensor_new(1, s1), *cube = lop_tensor_new(3, s3);
    lop_tensor *wrong_d = matrix(3, 2, NULL);
    assert_int_equal(lop_softmax_xent(flat, labels, &loss, NULL, NULL), LOP_ESHAPE);
    assert_int_equal(lop_softmax_xent(cube, labels, &loss, NULL, NULL), LOP_ESHAPE);
    assert_int_equal(lop_softmax_xent(logits, labels, &loss, wrong_d, NULL), LOP_ESHAPE);
    assert_int_equal(lop_softmax_xent(NULL, labels, &loss, NULL, NULL), LOP_EINVAL);
    assert_int_equal(lop_softmax_xent(logits, NULL, &loss, NULL, NULL), LOP_EINVAL);
    assert_int_equal(lop_softmax_xent(logits, labels, NULL, NULL, NULL), LOP_EINVAL);
    assert_float_equal(loss, 42, 0);
    lop_tensor_release(flat);
    lop_tensor_release(cube);
    lop_tensor_release(wrong_d);
    lop_tensor_release(logits);
    lop_tensor_release(d);
}

/* ---- distillation (lop_distill_xent) ---- */

static void test_distill_hand_computed_case(void **state)
{
    (void)state;
    /* One image, two classes, label 0.  Student logits (0, 0): p = p_T = (1/2, 1/2).
     * Teacher logits (T ln 4, 0) at T = 2: q_T = (4/5, 1/5). */
    const double t = 2.0, a = 0.25;
    const float s[2] = {0, 0}, q[2] = {(float)(t * log(4.0)), 0};
    int label = 0;
    lop_tensor *logits = matrix(1, 2, s), *teacher = matrix(1, 2, q), *d = matrix(1, 2, NULL);
    double loss = 0;
    int correct = -1;
    assert_int_equal(lop_distill_xent(logits, &label, teacher, (float)a, (float)t, &loss, d,
                                      &correct),
                     LOP_OK);
    double kl = 0.8 * log(0.8 / 0.5) + 0.2 * log(0.2 / 0.5);
    assert_float_equal(loss, (1 - a) * log(2.0) + a * t * t * kl, 1e-6);
    assert_float_equal(d->data[0], (1 - a) * (0.5 - 1) + a * t * (0.5 - 0.8), 1e-6);
    assert_float_equal(d->data[1], (1 - a) * 0.5 + a * t * (0.5 - 0.2), 1e-6);
    assert_int_equal(correct, 1);   /* a tie goes to the first class, the label */
    lop_tensor_release(logits);
    lop_tensor_release(teacher);
    lop_tensor_release(d);
}

static void test_distill_limits(void **state)
{
    (void)state;
    int shape[2] = {3, 4};
    lop_tensor *logits = gradcheck_random(2, shape, 7), *teacher = gradcheck_random(2, shape, 8);
    lop_tensor *d = matrix(3, 4, NULL), *d_xent = matrix(3, 4, NULL);
    assert_non_null(logits);
    assert_non_null(teacher);
    int labels[3] = {2, 0, 3};
    double loss, loss_xent;
    int correct, correct_xent;
    /* weight 0: exactly cross-entropy, whatever the teacher says */
    assert_int_equal(lop_distill_xent(logits, labels, teacher, 0.0f, 3.0f, &loss, d, &correct),
                     LOP_OK);
    assert_int_equal(lop_softmax_xent(logits, labels, &loss_xent, d_xent, &correct_xent),
                     LOP_OK);
    assert_float_equal(loss, loss_xent, 1e-9);
    assert_int_equal(correct, correct_xent);
    for (size_t i = 0; i < d->numel; i++)
        assert_float_equal(d->data[i], d_xent->data[i], 1e-7);
    /* weight 1 and the teacher's own logits: no loss and no gradient */
    assert_int_equal(lop_distill_xent(logits, labels, logits, 1.0f, 5.0f, &loss, d, NULL),
                     LOP_OK);
    assert_float_equal(loss, 0.0, 1e-9);
    for (size_t i = 0; i < d->numel; i++)
        assert_float_equal(d->data[i], 0.0, 1e-8);
    lop_tensor_release(logits);
    lop_tensor_release(teacher);
    lop_tensor_release(d);
    lop_tensor_release(d_xent);
}

static void test_distill_gradient_matches_finite_differences(void **state)
{
    (void)state;
    int shape[2] = {4, 5};
    lop_tensor *logits = gradcheck_random(2, shape, 11), *teacher = gradcheck_random(2, shape, 12);
    lop_tensor *d = matrix(4, 5, NULL);
    assert_non_null(logits);
    assert_non_null(teacher);
    for (size_t i = 0; i < logits->numel; i++) {
        logits->data[i] *= 3.0f;
        teacher->data[i] *= 4.0f;
    }
    int labels[4] = {0, 4, 2, 2};
    const float weights[3] = {0.3f, 0.7f, 1.0f}, temperatures[3] = {1.0f, 3.0f, 0.5f};
    for (int c = 0; c < 3; c++) {
        float a = weights[c], t = temperatures[c];
        double loss;
        assert_int_equal(lop_distill_xent(logits, labels, teacher, a, t, &loss, d, NULL),
                         LOP_OK);
        for (size_t i = 0; i < logits->numel; i++) {
            float saved = logits->data[i];
            float up = saved + 1e-2f, down = saved - 1e-2f;
            double lp, lm;
            logits->data[i] = up;
            assert_int_equal(lop_distill_xent(logits, labels, teacher, a, t, &lp, NULL, NULL),
                             LOP_OK);
            logits->data[i] = down;
            assert_int_equal(lop_distill_xent(logits, labels, teacher, a, t, &lm, NULL, NULL),
                             LOP_OK);
            logits->data[i] = saved;
            double numeric = (lp - lm) / ((double)up - (double)down);
            assert_float_equal(d->data[i], numeric, 5e-5);
        }
    }
    lop_tensor_release(logits);
    lop_tensor_release(teacher);
    lop_tensor_release(d);
}

static void test_distill_huge_logits_stay_finite(void **state)
{
    (void)state;
    /* Student certain of class 1, teacher certain of class 0, at T = 1: the soft loss
     * is the student's log-odds gap, 2e4; the label (1) costs nothing. */
    const float s[3] = {-1e4f, 1e4f, -1e4f}, q[3] = {1e4f, -1e4f, -1e4f};
    int label = 1;
    lop_tensor *logits = matrix(1, 3, s), *teacher = matrix(1, 3, q), *d = matrix(1, 3, NULL);
    double loss;
    assert_int_equal(lop_distill_xent(logits, &label, teacher, 0.5f, 1.0f, &loss, d, NULL),
                     LOP_OK);
    assert_float_equal(loss, 0.5 * 2e4, 1e-6);
    const float want[3] = {-0.5f, 0.5f, 0};
    for (int i = 0; i < 3; i++) {
        assert_true(isfinite(d->data[i]));
        assert_float_equal(d->data[i], want[i], 1e-6);
    }
    lop_tensor_release(logits);
    lop_tensor_release(teacher);
    lop_tensor_release(d);
}

static void test_distill_bad_arguments_are_rejected(void **state)
{
    (void)state;
    const float z[6] = {1, 2, 3, 4, 5, 6};
    lop_tensor *logits = matrix(2, 3, z), *teacher = matrix(2, 3, z), *d = matrix(2, 3, NULL);
    lop_tensor *narrow = matrix(2, 2, NULL), *tall = matrix(3, 3, NULL);
    lop_tensor_fill(d, 7.0f);
    double loss = 42;
    int correct = 42, labels[2] = {0, 1}, bad_labels[2] = {0, 3};
    struct {
        const lop_tensor *logits, *teacher;
        const int *labels;
        float a, t;
        lop_tensor *d;
        int status;
        const char *message;
    } cases[] = {
        {logits, teacher, bad_labels, 0.5f, 2, d, LOP_EINVAL, "label"},
        {logits, teacher, labels, -0.1f, 2, d, LOP_EINVAL, "weight"},
        {logits, teacher, labels, 1.5f, 2, d, LOP_EINVAL, "weight"},
        {logits, teacher, labels, NAN, 2, d, LOP_EINVAL, "weight"},
        {logits, teacher, labels, 0.5f, 0, d, LOP_EINVAL, "temperature"},
        {logits, teacher, labels, 0.5f, -1, d, LOP_EINVAL, "temperature"},
        {logits, teacher, labels, 0.5f, INFINITY, d, LOP_EINVAL, "temperature"},
        {logits, narrow, labels, 0.5f, 2, d, LOP_ESHAPE, "teacher"},
        {logits, tall, labels, 0.5f, 2, d, LOP_ESHAPE, "teacher"},
        {logits, teacher, labels, 0.5f, 2, narrow, LOP_ESHAPE, "dlogits"},
        {logits, teacher, labels, 0.5f, 2, logits, LOP_EINVAL, "memory"},
        {logits, teacher, labels, 0.5f, 2, teacher, LOP_EINVAL, "memory"},
        {logits, NULL, labels, 0.5f, 2, d, LOP_EINVAL, "teacher"},
        {logits, teacher, NULL, 0.5f, 2, d, LOP_EINVAL, "labels"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        assert_int_equal(lop_distill_xent(cases[k].logits, cases[k].labels, cases[k].teacher,
                                          cases[k].a, cases[k].t, &loss, cases[k].d, &correct),
                         cases[k].status);
        assert_non_null(strstr(lop_errmsg(), cases[k].message));
    }
    /* nothing written on failure */
    assert_float_equal(loss, 42, 0);
    assert_int_equal(correct, 42);
    for (size_t i = 0; i < d->numel; i++)
        assert_float_equal(d->data[i], 7.0f, 0);
    assert_memory_equal(logits->data, z, sizeof z);
    lop_tensor_release(logits);
    lop_tensor_release(teacher);
    lop_tensor_release(d);
    lop_tensor_release(narrow);
    lop_tensor_release(tall);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed_case),
        cmocka_unit_test(test_gradient_matches_finite_differences),
        cmocka_unit_test(test_huge_logits_stay_finite),
        cmocka_unit_test(test_gradient_in_place),
        cmocka_unit_test(test_bad_arguments_are_rejected),
        cmocka_unit_test(test_distill_hand_computed_case),
        cmocka_unit_test(test_distill_limits),
        cmocka_unit_test(test_distill_gradient_matches_finite_differences),
        cmocka_unit_test(test_distill_huge_logits_stay_finite),
        cmocka_unit_test(test_distill_bad_arguments_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
