/*
 * test_prefix_errors.c - the reconstruction error of every kept count from one
 * selection order (lop_prefix_errors) and ThiNet's full ranking
 * (lop_select_thinet_order).  The reference for each count is lop_reconstruct itself,
 * run on a fresh clone of the network with the same first-k channels (sorted): both
 * refit modes, with and without a bias, a 3x3 and a 1x1 conv, targets from another
 * network so that no count fits exactly.  A 2-channel scale case is solved by hand;
 * every prefix of ThiNet's order must be ThiNet's keep list for that count; bad
 * orders and systems are refused, and failing allocations give LOP_ENOMEM.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lopper.h"
#include "gradcheck.h"
#include "graph_build.h"

enum { CIN = 6, COUT = 5, H = 6, NIMG = 24 };

/* input 2xHxH -> conv "a" (CIN, 3x3 pad 1) -> relu -> conv "b" (COUT, k x k, pad k / 2,
 * with or without bias); *b receives b's id. */
static lop_graph *two_convs(int k, int bias, int *b)
{
    int x;
    lop_graph *g = new_graph(3, 2, H, H, &x);
    int relu = add1(g, LOP_RELU, "ra", conv(g, "a", x, CIN, 1), NULL);
    lop_attrs at = lop_attrs_default();
    at.out_channels = COUT;
    at.kernel_h = at.kernel_w = k;
    at.pad_h = at.pad_w = k / 2;
    at.bias = bias;
    *b = add1(g, LOP_CONV2D, "b", relu, &at);
    return g;
}

/* A clone of g whose convolutions a and b have other (seeded random) weights: a
 * reference no count of b's channels can fit exactly. */
static lop_graph *other_weights(const lop_graph *g, int b, uint64_t seed)
{
    lop_graph *o = lop_graph_clone(g);
    assert_non_null(o);
    const int convs[2] = {1, b};
    for (int i = 0; i < 2; i++) {
        lop_tensor *w = lop_node_param(o, convs[i], 0);
        lop_tensor *r = gradcheck_random(w->ndim, w->shape, seed + (uint64_t)i);
        memcpy(w->data, r->data, w->numel * sizeof *w->data);
        lop_tensor_release(r);
    }
    return o;
}

/* Statistics of conv b on NIMG random images, the targets from ref when not NULL. */
static lop_stats sample_b(lop_graph *g, int b, lop_graph *ref, uint64_t seed)
{
    lop_dataset d = random_images(NIMG, 2, H, H, seed);
    lop_sample_opts o = {.images = NIMG, .points = 10, .batch = 8, .seed = 1};
    lop_stats s;
    assert_int_equal(lop_sample(g, &d, b, &o, ref, &s), LOP_OK);
    lop_dataset_free(&d);
    return s;
}

static int by_value(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* What lop_reconstruct reports for the first n channels of order, on a clone of g. */
static double reconstructed_error(const lop_graph *g, const lop_stats *s, const int *order,
                                  int n, lop_recon mode, double ridge)
{
    int keep[CIN];
    memcpy(keep, order, (size_t)n * sizeof *keep);
    qsort(keep, (size_t)n, sizeof *keep, by_value);
    lop_graph *c = lop_graph_clone(g);
    assert_non_null(c);
    double err = -1;
    assert_int_equal(lop_reconstruct(c, s, keep, n, mode, ridge, &err), LOP_OK);
    lop_graph_free(c);
    return err;
}

/* Every count of ThiNet's order and of another order, both modes, against
 * lop_reconstruct: errors also fall (or stay) as channels are added. */
static void check_against_reconstruct(int k, int bias)
{
    int b;
    lop_graph *g = two_convs(k, bias, &b), *ref = other_weights(g, b, 4);
    lop_stats s = sample_b(g, b, ref, 5);
    int thinet[CIN], shuffled[CIN] = {4, 1, 5, 0, 3, 2};
    assert_int_equal(lop_select_thinet_order(s.A, CIN, thinet), LOP_OK);
    const int *orders[2] = {thinet, shuffled};
    /* lop_reconstruct's ridge is relative to each fit's own mean diagonal, ours to the
     * whole system's: the errors differ in the square of the ridge (measured: 2e-12
     * at 1e-6, 1e-6 at 1e-3; 1.5e-6 at 1e-6 without the ridge's term of the error) */
    const double ridges[2] = {1e-6, 1e-3}, tolerance[2] = {1e-9, 1e-5};
    for (int mode = LOP_RECON_WEIGHTS; mode <= LOP_RECON_SCALE; mode++)
        for (int oi = 0; oi < 2; oi++)
            for (int ri = 0; ri < 2; ri++) {
                double err[CIN];
                assert_int_equal(lop_prefix_errors(&s, orders[oi], (lop_recon)mode, bias,
                                                   ridges[ri], err), LOP_OK);
                for (int n = 1; n <= CIN; n++) {
                    double want = reconstructed_error(g, &s, orders[oi], n, (lop_recon)mode,
                                                      ridges[ri]);
                    if (fabs(err[n - 1] - want) > tolerance[ri] * want)
                        fail_msg("k %d bias %d mode %d order %d ridge %g: %d kept: %.12g, "
                                 "lop_reconstruct %.12g", k, bias, mode, oi, ridges[ri], n,
                                 err[n - 1], want);
                    assert_true(err[n - 1] > 1e-3 && err[n - 1] < 1.5);   /* not trivial */
                    if (n > 1)
                        assert_true(err[n - 1] <= err[n - 2] * (1 + 1e-9));
                }
            }
    lop_stats_free(&s);
    lop_graph_free(g);
    lop_graph_free(ref);
}

static void test_every_count_matches_reconstruct_3x3(void **state)
{
    (void)state;
    check_against_reconstruct(3, 1);
    check_against_reconstruct(3, 0);
}

static void test_every_count_matches_reconstruct_1x1(void **state)
{
    (void)state;
    check_against_reconstruct(1, 1);
    check_against_reconstruct(1, 0);
}

/* Statistics of c channels for the scale refit only (A, r, yy). */
static lop_stats scale_stats(int c, double *A, double *r, double yy)
{
    return (lop_stats){.c = c, .kh = 1, .kw = 1, .n = 1, .m = 1, .A = A, .r = r, .yy = yy};
}

/* A = [4 2; 2 3], r = (4, 1), yy = 10, no ridge.  Channel 0 alone: f = 1, error
 * 10 - 4 = 6; channel 1 alone: f = 1/3, error 10 - 1/3; both: f = A^-1 r =
 * (1.25, -0.5), error 10 - f.r = 5.5. */
static void test_two_channel_scale_by_hand(void **state)
{
    (void)state;
    double A[4] = {4, 2, 2, 3}, r[2] = {4, 1}, err[2];
    lop_stats s = scale_stats(2, A, r, 10);
    int first[2] = {0, 1}, second[2] = {1, 0};
    assert_int_equal(lop_prefix_errors(&s, first, LOP_RECON_SCALE, 0, 0, err), LOP_OK);
    assert_true(fabs(err[0] - 0.6) < 1e-12 && fabs(err[1] - 0.55) < 1e-12);
    assert_int_equal(lop_prefix_errors(&s, second, LOP_RECON_SCALE, 1, 0, err), LOP_OK);
    assert_true(fabs(err[0] - (10 - 1.0 / 3) / 10) < 1e-12 && fabs(err[1] - 0.55) < 1e-12);
}

/* Every prefix of the order, sorted, is what lop_select_thinet keeps for that count:
 * on sampled statistics and on a random Gram of 40 channels. */
static void test_thinet_order_prefixes_are_thinet_keep_lists(void **state)
{
    (void)state;
    enum { C = 40 };
    double *G = calloc(C * C, sizeof *G), z[C * 60];
    for (int i = 0; i < C * 60; i++)
        z[i] = sin(1.7 * i + 0.3 * (i % 7)) + 0.2 * ((i * 37) % 11);
    for (int i = 0; i < C; i++)   /* Gram of 40 random-looking vectors of length 60 */
        for (int j = 0; j < C; j++)
            for (int t = 0; t < 60; t++)
                G[i * C + j] += z[i * 60 + t] * z[j * 60 + t];
    int order[C], keep[C], prefix[C];
    assert_int_equal(lop_select_thinet_order(G, C, order), LOP_OK);
    char seen[C] = {0};
    for (int i = 0; i < C; i++) {
        assert_true(order[i] >= 0 && order[i] < C && !seen[order[i]]);
        seen[order[i]] = 1;
    }
    for (int n = 1; n <= C; n++) {
        assert_int_equal(lop_select_thinet(G, C, n, keep), LOP_OK);
        memcpy(prefix, order, (size_t)n * sizeof *prefix);
        qsort(prefix, (size_t)n, sizeof *prefix, by_value);
        assert_memory_equal(prefix, keep, (size_t)n * sizeof *keep);
    }
    free(G);

    int b;
    lop_graph *g = two_convs(3, 1, &b);
    lop_stats s = sample_b(g, b, NULL, 9);
    assert_int_equal(lop_select_thinet_order(s.A, CIN, order), LOP_OK);
    for (int n = 1; n <= CIN; n++) {
        assert_int_equal(lop_select_thinet(s.A, CIN, n, keep), LOP_OK);
        memcpy(prefix, order, (size_t)n * sizeof *prefix);
        qsort(prefix, (size_t)n, sizeof *prefix, by_value);
        assert_memory_equal(prefix, keep, (size_t)n * sizeof *keep);
    }
    /* all channels kept by a full refit on a net's own outputs: an exact fit */
    double err[CIN];
    assert_int_equal(lop_prefix_errors(&s, order, LOP_RECON_WEIGHTS, 1, 1e-9, err), LOP_OK);
    assert_true(err[CIN - 1] < 1e-6 && err[0] > 1e-3);
    lop_stats_free(&s);
    lop_graph_free(g);
}

static void test_bad_requests_are_refused(void **state)
{
    (void)state;
    double A[4] = {4, 2, 2, 3}, r[2] = {4, 1}, err[2];
    lop_stats s = scale_stats(2, A, r, 10);
    int twice[2] = {1, 1}, outside[2] = {0, 2}, order[2] = {0, 1};
    assert_int_equal(lop_prefix_errors(&s, twice, LOP_RECON_SCALE, 0, 1e-6, err), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "channel 1 is listed twice"));
    assert_int_equal(lop_prefix_errors(&s, outside, LOP_RECON_SCALE, 0, 1e-6, err), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "order[1] = 2 is not a channel in 0..1"));
    assert_int_equal(lop_prefix_errors(&s, order, (lop_recon)7, 0, 1e-6, err), LOP_EINVAL);
    assert_int_equal(lop_prefix_errors(&s, order, LOP_RECON_SCALE, 0, -1, err), LOP_EINVAL);
    assert_int_equal(lop_prefix_errors(&s, order, LOP_RECON_SCALE, 0, NAN, err), LOP_EINVAL);
    assert_int_equal(lop_prefix_errors(NULL, order, LOP_RECON_SCALE, 0, 1e-6, err), LOP_EINVAL);
    lop_stats empty = {0};
    assert_int_equal(lop_prefix_errors(&empty, order, LOP_RECON_WEIGHTS, 0, 1e-6, err),
                     LOP_EINVAL);
    assert_int_equal(lop_prefix_errors(&s, order, LOP_RECON_WEIGHTS, 0, 1e-6, err),
                     LOP_EINVAL);   /* no patch statistics */
    assert_non_null(strstr(lop_errmsg(), "no statistics"));
    assert_int_equal(lop_select_thinet_order(A, 0, order), LOP_EINVAL);
    /* singular: the ridge is raised until it factors, as lop_solve_spd does */
    double flat[4] = {1, 1, 1, 1};
    s.A = flat;
    assert_int_equal(lop_prefix_errors(&s, order, LOP_RECON_SCALE, 0, 0, err), LOP_OK);
    /* indefinite beyond any ridge lop_solve_spd would try */
    double bad[4] = {-1e9, 0, 0, 1};
    s.A = bad;
    assert_int_equal(lop_prefix_errors(&s, order, LOP_RECON_SCALE, 0, 1e-6, err), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "not positive definite"));
}

/* Each allocation failing in turn gives LOP_ENOMEM (and, under the sanitizers, no
 * leak) until the call needs no more and gives the errors it gives without failures. */
static void test_allocation_failures(void **state)
{
    (void)state;
    int b;
    lop_graph *g = two_convs(3, 1, &b);
    lop_stats s = sample_b(g, b, NULL, 9);
    int order[CIN];
    assert_int_equal(lop_select_thinet_order(s.A, CIN, order), LOP_OK);
    for (int mode = LOP_RECON_WEIGHTS; mode <= LOP_RECON_SCALE; mode++) {
        double want[CIN], err[CIN];
        assert_int_equal(lop_prefix_errors(&s, order, (lop_recon)mode, 1, 1e-6, want), LOP_OK);
        int st = LOP_ENOMEM;
        for (long n = 1; st == LOP_ENOMEM; n++) {
            int got[CIN];
            lop_debug_fail_alloc(n);
            st = lop_select_thinet_order(s.A, CIN, got);
            if (st == LOP_OK)
                st = lop_prefix_errors(&s, order, (lop_recon)mode, 1, 1e-6, err);
            lop_debug_fail_alloc(0);
            assert_true(st == LOP_OK || st == LOP_ENOMEM);
            assert_true(n < 10);
        }
        assert_memory_equal(err, want, sizeof want);
    }
    lop_stats_free(&s);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_count_matches_reconstruct_3x3),
        cmocka_unit_test(test_every_count_matches_reconstruct_1x1),
        cmocka_unit_test(test_two_channel_scale_by_hand),
        cmocka_unit_test(test_thinet_order_prefixes_are_thinet_keep_lists),
        cmocka_unit_test(test_bad_requests_are_refused),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
