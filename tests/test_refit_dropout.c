/*
 * test_refit_dropout.c - refitted for training (LOP_RECON_DROPOUT), a layer whose input
 * passes through dropout is fitted for that noise: its weights solve the normal equations with (1-q)/q times
 * the Gram's diagonal added (built here by naive loops over a forward pass and solved
 * by Gaussian elimination), and the fit does what that is for - a lower expected
 * training-mode error, averaged over many dropout masks, than the plain least squares
 * that an eval-mode fit gives, at a small cost in evaluation-mode error.  Without the
 * flag the fit is the plain one; an unknown mode is refused and changes nothing.
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
#include "gauss_jordan.h"
#include "gradcheck.h"
#include "graph_build.h"

enum { NIMG = 40, NA = 6, NB = 3, NKEEP = 3, DIM = NKEEP + 1 };
static const int keep[NKEEP] = {0, 2, 5};

typedef struct ids { int a, drop, b; } ids;

/* x (2x3x3) -> flatten -> a (NA) -> relu -> dropout(p) -> flatten -> b (NB) */
static lop_graph *head(float p, ids *id)
{
    int x;
    lop_graph *g = new_graph(3, 2, 3, 3, &x);
    lop_attrs fc = lop_attrs_default(), d = lop_attrs_default();
    int f = add1(g, LOP_FLATTEN, "flat", x, NULL);
    fc.out_channels = NA;
    id->a = add1(g, LOP_LINEAR, "a", f, &fc);
    int r = add1(g, LOP_RELU, "ra", id->a, NULL);
    d.p = p;
    id->drop = add1(g, LOP_DROPOUT, "drop", r, &d);
    int f2 = add1(g, LOP_FLATTEN, "flat2", id->drop, NULL);
    fc.out_channels = NB;
    id->b = add1(g, LOP_LINEAR, "b", f2, &fc);
    for (int k = 0; k < NA; k++)   /* every unit active on most images */
        g->nodes[id->a]->param[1]->data[k] = 0.5f;
    return g;
}

/* Refit b to the kept outputs of a (for training: LOP_RECON_DROPOUT); the reference
 * weights [NB][NKEEP] and biases from naive normal equations with `noise` times the
 * diagonal added. */
static void refit_and_reference(lop_graph *g, const ids *id, const lop_dataset *data,
                                int for_training, double noise, double want_w[NB][NKEEP],
                                double want_b[NB])
{
    /* features after the relu, and b's outputs, before anything changes */
    assert_int_equal(lop_graph_forward(g, data->images, 0), LOP_OK);
    float feat[NIMG][NA], out[NIMG][NB];
    memcpy(feat, g->nodes[id->drop]->out->data, sizeof feat);
    memcpy(out, g->nodes[id->b]->out->data, sizeof out);
    double A[DIM][DIM] = {{0}}, B[DIM][NB] = {{0}};
    for (int im = 0; im < NIMG; im++) {
        double z[DIM];
        for (int i = 0; i < NKEEP; i++)
            z[i] = feat[im][keep[i]];
        z[NKEEP] = 1.0;
        for (int i = 0; i < DIM; i++) {
            for (int j = 0; j < DIM; j++)
                A[i][j] += z[i] * z[j];
            for (int k = 0; k < NB; k++)
                B[i][k] += z[i] * out[im][k];
        }
    }
    for (int i = 0; i < NKEEP; i++)
        A[i][i] *= 1.0 + noise;
    gauss_jordan(&A[0][0], DIM, &B[0][0], NB);
    for (int k = 0; k < NB; k++) {
        for (int i = 0; i < NKEEP; i++)
            want_w[k][i] = B[i][k];
        want_b[k] = B[NKEEP][k];
    }
    lop_sample_opts o = {.images = NIMG, .points = 1, .batch = 16, .seed = 3};
    lop_stats s;
    assert_int_equal(lop_sample(g, data, id->b, &o, NULL, &s), LOP_OK);
    double err = -1;
    lop_recon mode = for_training ? LOP_RECON_WEIGHTS | LOP_RECON_DROPOUT : LOP_RECON_WEIGHTS;
    assert_int_equal(lop_reconstruct(g, &s, keep, NKEEP, mode, 0.0, &err), LOP_OK);
    lop_stats_free(&s);
    assert_true(err >= 0 && err < 1);
}

static void test_weights_solve_the_noisy_normal_equations(void **state)
{
    (void)state;
    const float rates[3] = {0.0f, 0.2f, 0.5f};
    for (int r = 0; r < 3; r++) {
        ids id;
        lop_graph *g = head(rates[r], &id);
        lop_dataset data = random_images(NIMG, 2, 3, 3, 11);
        double want_w[NB][NKEEP], want_b[NB];
        refit_and_reference(g, &id, &data, 1, rates[r] / (1.0 - rates[r]), want_w, want_b);
        const lop_node *b = g->nodes[id.b];
        assert_int_equal(b->param[0]->shape[1], NKEEP);
        for (int k = 0; k < NB; k++) {
            for (int i = 0; i < NKEEP; i++)
                assert_near(b->param[0]->data[k * NKEEP + i], want_w[k][i], 1e-4);
            assert_near(b->param[1]->data[k], want_b[k], 1e-4);
        }
        lop_dataset_free(&data);
        lop_graph_free(g);
    }
    /* without the flag, dropout or not, the plain least squares */
    ids id;
    lop_graph *g = head(0.5f, &id);
    lop_dataset data = random_images(NIMG, 2, 3, 3, 11);
    double want_w[NB][NKEEP], want_b[NB];
    refit_and_reference(g, &id, &data, 0, 0.0, want_w, want_b);
    for (int k = 0; k < NB; k++)
        for (int i = 0; i < NKEEP; i++)
            assert_near(g->nodes[id.b]->param[0]->data[k * NKEEP + i], want_w[k][i], 1e-4);
    lop_dataset_free(&data);
    lop_graph_free(g);
}

/* Mean squared distance of b's outputs from target over NIMG images: in evaluation
 * mode, or averaged over `draws` training-mode passes (fresh dropout masks). */
static double error_of(lop_graph *g, const ids *id, const lop_dataset *data,
                       const float target[NIMG][NB], int draws)
{
    double sum = 0;
    for (int t = 0; t < (draws ? draws : 1); t++) {
        assert_int_equal(lop_graph_forward(g, data->images, draws > 0), LOP_OK);
        const float *y = g->nodes[id->b]->out->data;
        for (int e = 0; e < NIMG * NB; e++) {
            double d = y[e] - target[e / NB][e % NB];
            sum += d * d;
        }
    }
    return sum / (draws ? draws : 1);
}

static void test_the_fit_lowers_the_training_mode_error(void **state)
{
    (void)state;
    /* The same network and data twice; one refit knows about the dropout (p = 0.5),
     * the other sees p = 0 (plain least squares) and gets p = 0.5 back afterwards. */
    ids id, id0;
    lop_graph *g = head(0.5f, &id), *plain = head(0.0f, &id0);
    lop_dataset data = random_images(NIMG, 2, 3, 3, 12);
    float target[NIMG][NB];
    assert_int_equal(lop_graph_forward(g, data.images, 0), LOP_OK);
    memcpy(target, g->nodes[id.b]->out->data, sizeof target);
    double w[NB][NKEEP], bias[NB];
    refit_and_reference(g, &id, &data, 1, 1.0, w, bias);
    refit_and_reference(plain, &id0, &data, 1, 0.0, w, bias);
    plain->nodes[id0.drop]->attr.p = 0.5f;
    double train_noisy = error_of(g, &id, &data, target, 400);
    double train_plain = error_of(plain, &id0, &data, target, 400);
    double eval_noisy = error_of(g, &id, &data, target, 0);
    double eval_plain = error_of(plain, &id0, &data, target, 0);
    if (!(train_noisy < train_plain))
        fail_msg("training-mode error %g (noise-aware) vs %g (plain)", train_noisy,
                 train_plain);
    if (!(eval_plain <= eval_noisy && eval_noisy < train_noisy))
        fail_msg("evaluation error %g (noise-aware) vs %g (plain), training %g", eval_noisy,
                 eval_plain, train_noisy);
    lop_dataset_free(&data);
    lop_graph_free(g);
    lop_graph_free(plain);
}

static void test_unknown_modes_are_refused_and_change_nothing(void **state)
{
    (void)state;
    ids id;
    lop_graph *g = head(0.5f, &id);
    lop_dataset data = random_images(NIMG, 2, 3, 3, 13);
    lop_sample_opts o = {.images = NIMG, .points = 1, .batch = 16, .seed = 3};
    lop_stats s;
    assert_int_equal(lop_sample(g, &data, id.b, &o, NULL, &s), LOP_OK);
    float before[NB * NA];
    memcpy(before, g->nodes[id.b]->param[0]->data, sizeof before);
    const int bad[3] = {2, 2 | LOP_RECON_DROPOUT, 7};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lop_reconstruct(g, &s, keep, NKEEP, (lop_recon)bad[i], 0.0, NULL),
                         LOP_EINVAL);
        assert_non_null(strstr(lop_errmsg(), "mode"));
    }
    assert_int_equal(g->nodes[id.b]->param[0]->shape[1], NA);
    assert_memory_equal(g->nodes[id.b]->param[0]->data, before, sizeof before);
    lop_stats_free(&s);
    lop_dataset_free(&data);
    lop_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_solve_the_noisy_normal_equations),
        cmocka_unit_test(test_the_fit_lowers_the_training_mode_error),
        cmocka_unit_test(test_unknown_modes_are_refused_and_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
