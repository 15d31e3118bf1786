/*
 * test_sample.c - sampling statistics and reconstruction.  Without a reference
 * network a convolution's output is exactly its patches times its weights, so the
 * statistics must satisfy identities computed here independently (C = P W^T,
 * ysum = W xsum, yy = sum_k w_k' P w_k, A_ij = sum_k w_ik' P_ij w_jk, r_j =
 * sum_k w_jk' C_jk, wnorm_j = ||W_j||_F); statistics gathered in small batches must equal those gathered
 * in one; a planted layer whose weights ignore some input channels must lead the
 * selection to the others, and reconstruction must then recover the weights and
 * leave the network's output unchanged; a grouped convolution is refused by name
 * where it is not supported and sliced where it is.
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

enum { CIN = 4, COUT = 5, H = 7, NIMG = 24 };

/* input 2x7x7 -> conv "a" (CIN, 3x3 pad 1) -> relu -> conv "b" (COUT, 3x3 pad 1, bias) */
static lop_graph *two_convs(uint64_t seed, int *b_id)
{
    lop_graph *g = lop_graph_new(seed);
    lop_attrs in = lop_attrs_input(2, H, H), c = lop_attrs_default();
    int id;
    c.kernel_h = c.kernel_w = 3;
    c.pad_h = c.pad_w = 1;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &id), LOP_OK);
    c.out_channels = CIN;
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "a", &id, 1, &c, &id), LOP_OK);
    assert_int_equal(lop_graph_add(g, LOP_RELU, "ra", &id, 1, NULL, &id), LOP_OK);
    c.out_channels = COUT;
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "b", &id, 1, &c, b_id), LOP_OK);
    /* a nonzero bias, so that "bias removed" is really checked */
    for (int k = 0; k < COUT; k++)
        g->nodes[*b_id]->param[1]->data[k] = 0.1f * (float)(k + 1);
    return g;
}

static lop_dataset images(uint64_t seed)
{
    return random_images(NIMG, 2, H, H, seed);
}

static void test_statistics_satisfy_the_convolution_identities(void **state)
{
    (void)state;
    int b;
    lop_graph *g = two_convs(1, &b);
    lop_dataset data = images(2);
    lop_sample_opts o = {.images = NIMG, .points = 6, .batch = 7, .seed = 3};
    lop_stats s;
    assert_int_equal(lop_sample(g, &data, b, &o, NULL, &s), LOP_OK);
    assert_int_equal(s.m, NIMG * 6);
    assert_int_equal(s.c, CIN);
    assert_int_equal(s.n, COUT);
    const int kk = 9, D = CIN * kk;
    const float *W = g->nodes[b]->param[0]->data;
    double yy = 0;
    for (int k = 0; k < COUT; k++) {
        double ys = 0, wPw = 0;
        for (int d = 0; d < D; d++) {
            double pw = 0;
            for (int e = 0; e < D; e++)
                pw += s.P[d * D + e] * W[k * D + e];
            assert_near(s.C[d * COUT + k], pw, 1e-4);   /* C = P W^T */
            ys += W[k * D + d] * s.xsum[d];
            wPw += W[k * D + d] * pw;
        }
        assert_near(s.ysum[k], ys, 1e-4);
        yy += wPw;
    }
    assert_near(s.yy, yy, 1e-4);
    for (int i = 0; i < CIN; i++) {
        double rj = 0;
        for (int k = 0; k < COUT; k++)
            for (int e = 0; e < kk; e++)
                rj += W[k * D + i * kk + e] * s.C[(i * kk + e) * COUT + k];
        assert_near(s.r[i], rj, 1e-4);
        double w2 = 0;   /* ||W_i||_F over every output and tap */
        for (int k = 0; k < COUT; k++)
            for (int e = 0; e < kk; e++)
                w2 += (double)W[k * D + i * kk + e] * W[k * D + i * kk + e];
        assert_near(s.wnorm[i], sqrt(w2), 1e-6);
        for (int j = 0; j < CIN; j++) {
            double a = 0;
            for (int k = 0; k < COUT; k++)
                for (int u = 0; u < kk; u++)
                    for (int v = 0; v < kk; v++)
                        a += W[k * D + i * kk + u] * s.P[(i * kk + u) * D + j * kk + v] *
                             W[k * D + j * kk + v];
            assert_near(s.A[i * CIN + j], a, 1e-4);
        }
    }
    lop_stats_free(&s);
    lop_dataset_free(&data);
    lop_graph_free(g);
}

static void test_batches_accumulate_to_one_pass(void **state)
{
    (void)state;
    int b;
    lop_graph *g = two_convs(4, &b);
    lop_dataset d = images(5);
    lop_sample_opts small = {.images = 20, .points = 4, .batch = 3, .seed = 9};
    lop_sample_opts whole = small;
    whole.batch = 20;
    lop_stats s1, s2;
    assert_int_equal(lop_sample(g, &d, b, &small, NULL, &s1), LOP_OK);
    assert_int_equal(lop_sample(g, &d, b, &whole, NULL, &s2), LOP_OK);
    const int D = CIN * 9;
    assert_int_equal(s1.m, s2.m);
    for (int i = 0; i < D * D; i++)
        assert_near(s1.P[i], s2.P[i], 1e-5);
    for (int i = 0; i < D * COUT; i++)
        assert_near(s1.C[i], s2.C[i], 1e-5);
    for (int i = 0; i < CIN * CIN; i++)
        assert_near(s1.A[i], s2.A[i], 1e-5);
    for (int i = 0; i < CIN; i++)
        assert_near(s1.r[i], s2.r[i], 1e-5);
    assert_near(s1.yy, s2.yy, 1e-5);
    lop_stats_free(&s1);
    lop_stats_free(&s2);
    lop_dataset_free(&d);
    lop_graph_free(g);
}

/* Conv b ignores input channels 1 and 3: selection finds {0, 2}; reconstruction
 * (either mode) keeps the output where it was and the weights where they were. */
static void test_planted_channels_are_found_and_reconstructed(void **state)
{
    (void)state;
    for (int mode = LOP_RECON_WEIGHTS; mode <= LOP_RECON_SCALE; mode++) {
        int b;
        lop_graph *g = two_convs(6, &b);
        float *W = g->nodes[b]->param[0]->data;
        const int kk = 9;
        for (int k = 0; k < COUT; k++)
            for (int e = 0; e < kk; e++)
                W[(k * CIN + 1) * kk + e] = W[(k * CIN + 3) * kk + e] = 0;
        float kept_w[COUT][2][9];
        for (int k = 0; k < COUT; k++)
            for (int e = 0; e < kk; e++) {
                kept_w[k][0][e] = W[(k * CIN + 0) * kk + e];
                kept_w[k][1][e] = W[(k * CIN + 2) * kk + e];
            }
        lop_dataset d = images(7);
        lop_sample_opts o = {.images = NIMG, .points = 10, .batch = 8, .seed = 1};
        lop_stats s;
        assert_int_equal(lop_sample(g, &d, b, &o, NULL, &s), LOP_OK);
        int keep_t[2], keep_l[2];
        assert_int_equal(lop_select_thinet(s.A, CIN, 2, keep_t), LOP_OK);
        assert_int_equal(lop_select_lasso(s.A, s.r, s.wnorm, CIN, 2, keep_l, NULL, NULL), LOP_OK);
        assert_int_equal(keep_t[0], 0);
        assert_int_equal(keep_t[1], 2);
        assert_int_equal(keep_l[0], 0);
        assert_int_equal(keep_l[1], 2);

        lop_tensor *x = lop_tensor_clone(d.images);
        assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
        lop_tensor *before = lop_tensor_clone(lop_graph_output(g));
        double err = -1;
        assert_int_equal(lop_reconstruct(g, &s, keep_l, 2, (lop_recon)mode, 1e-9, &err),
                         LOP_OK);
        /* the kept channels explain the outputs exactly */
        assert_true(err >= 0 && err < 1e-6);
        assert_int_equal(g->nodes[b]->param[0]->shape[1], 2);
        assert_int_equal(g->nodes[1]->dims[0], 2);   /* conv a lost two filters */
        const float *nw = g->nodes[b]->param[0]->data;
        for (int k = 0; k < COUT; k++)
            for (int a = 0; a < 2; a++)
                for (int e = 0; e < kk; e++)
                    assert_near(nw[(k * 2 + a) * kk + e], kept_w[k][a][e], 1e-3);
        assert_int_equal(lop_graph_forward(g, x, 0), LOP_OK);
        const lop_tensor *after = lop_graph_output(g);
        for (size_t i = 0; i < after->numel; i++)
            assert_near(after->data[i], before->data[i], 1e-3);
        /* the statistics are stale now */
        assert_int_equal(lop_reconstruct(g, &s, keep_l, 2, (lop_recon)mode, 1e-9, NULL),
                         LOP_ESTATE);
        lop_tensor_release(x);
        lop_tensor_release(before);
        lop_stats_free(&s);
        lop_dataset_free(&d);
        lop_graph_free(g);
    }
}

static void test_bad_requests_are_refused(void **state)
{
    (void)state;
    int b;
    lop_graph *g = two_convs(8, &b);
    lop_graph *other = two_convs(9, &b);
    lop_dataset d = images(10);
    lop_sample_opts o = {.images = 4, .points = 2, .batch = 2, .seed = 1};
    lop_stats s;
    assert_int_equal(lop_sample(g, &d, 2, &o, NULL, &s), LOP_EINVAL);      /* relu */
    lop_sample_opts too_many = o;
    too_many.images = NIMG + 1;
    assert_int_equal(lop_sample(g, &d, b, &too_many, NULL, &s), LOP_EINVAL);
    lop_sample_opts no_points = o;
    no_points.points = 0;
    assert_int_equal(lop_sample(g, &d, b, &no_points, NULL, &s), LOP_EINVAL);
    /* a reference whose conv has another shape */
    lop_attrs in = lop_attrs_input(2, H, H), c = lop_attrs_default();
    lop_graph *odd = lop_graph_new(1);
    int id;
    c.out_channels = 3;
    c.kernel_h = c.kernel_w = 3;
    assert_int_equal(lop_graph_add(odd, LOP_INPUT, "x", NULL, 0, &in, &id), LOP_OK);
    assert_int_equal(lop_graph_add(odd, LOP_CONV2D, "b", &id, 1, &c, &id), LOP_OK);
    assert_int_equal(lop_sample(g, &d, b, &o, odd, &s), LOP_ESHAPE);
    /* with a same-shaped reference it works, and keep lists are validated */
    assert_int_equal(lop_sample(g, &d, b, &o, other, &s), LOP_OK);
    int bad[2] = {2, 1};
    assert_int_equal(lop_reconstruct(g, &s, bad, 2, LOP_RECON_WEIGHTS, 1e-6, NULL), LOP_EINVAL);
    assert_int_equal(lop_reconstruct(g, &s, bad, 0, LOP_RECON_WEIGHTS, 1e-6, NULL), LOP_EINVAL);
    assert_int_equal(g->nodes[b]->param[0]->shape[1], CIN);
    lop_stats_free(&s);
    lop_graph_free(odd);
    lop_graph_free(other);
    lop_dataset_free(&d);
    lop_graph_free(g);
}

/* input 2x7x7 -> conv "a" (CIN, 3x3 pad 1) -> relu -> "g" (4, 3x3 pad 1, 2 groups):
 * sampling or refitting the grouped conv is refused by name; L1 ranks g's input
 * channels within each of their two slices. */
static void test_grouped_convolutions_are_refused_or_sliced(void **state)
{
    (void)state;
    int b;
    lop_graph *g = two_convs(8, &b);
    lop_attrs c = *lop_node_attrs(g, b);
    c.out_channels = 4;
    c.groups = 2;
    int gid, ra = b - 1;
    assert_int_equal(lop_graph_add(g, LOP_CONV2D, "g", &ra, 1, &c, &gid), LOP_OK);
    lop_dataset d = images(11);
    lop_sample_opts o = {.images = 4, .points = 2, .batch = 2, .seed = 1};
    lop_stats s = {0};
    assert_int_equal(lop_sample(g, &d, gid, &o, NULL, &s), LOP_EINVAL);
    assert_string_equal(lop_errmsg(), "grouped convolution 'g': sample does not support it yet");
    /* statistics made by hand for it fare no better */
    assert_int_equal(lop_sample(g, &d, b, &o, NULL, &s), LOP_OK);
    s.node = gid;
    int keep[4];
    assert_int_equal(lop_reconstruct(g, &s, keep, 1, LOP_RECON_WEIGHTS, 1e-6, NULL),
                     LOP_EINVAL);
    assert_string_equal(lop_errmsg(),
                        "grouped convolution 'g': reconstruct does not support it yet");
    lop_stats_free(&s);
    /* a's filter j has L1 norm 9 * 2 * mag[j]: the largest two are 2 and 3, the
     * largest of each slice 1 and 3 */
    static const float mag[CIN] = {1, 3, 4, 5};
    lop_tensor *w = g->nodes[1]->param[0];
    for (int j = 0; j < CIN; j++)
        for (int e = 0; e < 18; e++)
            w->data[j * 18 + e] = mag[j];
    assert_int_equal(lop_select_l1(g, gid, 2, keep), LOP_OK);
    assert_true(keep[0] == 1 && keep[1] == 3);
    assert_int_equal(lop_select_l1(g, b, 2, keep), LOP_OK);   /* b reads them too */
    assert_true(keep[0] == 1 && keep[1] == 3);
    assert_int_equal(lop_select_l1(g, gid, 3, keep), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "cannot keep 3 of the 4 input channels of 'g': a "
                                         "grouped convolution splits them into 2 slices"));
    lop_dataset_free(&d);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statistics_satisfy_the_convolution_identities),
        cmocka_unit_test(test_batches_accumulate_to_one_pass),
        cmocka_unit_test(test_planted_channels_are_found_and_reconstructed),
        cmocka_unit_test(test_bad_requests_are_refused),
        cmocka_unit_test(test_grouped_convolutions_are_refused_or_sliced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
