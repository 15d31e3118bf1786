/*
 * test_image_preprocess.c - what an image folder does to decoded pixels, on images
 * built in memory: the resize against hand-computed PIL BILINEAR examples and a naive
 * double-precision reference (full 2-D resize, then crop), the resized size, the
 * centred and random crops and the flip (drawn as documented, from the item's seed,
 * at every offset over many seeds), (v / 255 - mean) / std per channel, grey repeated
 * into three planes, pixel-exact output when no resize is needed, the raw plan, and
 * images too small for the crop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"

#define WHY 512

static lop_image make_image(int w, int h, int c)
{
    lop_image im = {w, h, c, malloc((size_t)w * h * c)};
    for (int i = 0; i < w * h * c; i++)
        im.px[i] = (unsigned char)((i * 7919 + i / 5 * 13) % 256);
    return im;
}

static lop_folder_opts opts(int channels, int size_h, int size_w, int resize)
{
    lop_folder_opts o = lop_folder_opts_default();
    o.channels = channels;
    o.size_h = size_h;
    o.size_w = size_w;
    o.resize = resize;
    return o;
}

/* Run the folder plan of o on im; out has room for o's output. */
static void run(const lop_image *im, const lop_folder_opts *o, uint64_t seed, float *out,
                lop_image_plan *plan)
{
    char why[WHY] = "";
    lop_image_plan p;
    if (lop_image_plan_folder(im, o, seed, &p, why, sizeof why) != LOP_OK)
        fail_msg("plan failed: %s", why);
    assert_int_equal(lop_image_run(im, &p, out), LOP_OK);
    if (plan)
        *plan = p;
}

static void test_hand_examples(void **state)
{
    /* Shrinking [0 70 140 210] to 2: the triangle widened to support 2 gives taps
     * (3/7, 3/7, 1/7) and (1/7, 3/7, 3/7): 50 and 160.  Two equal rows shrink to one. */
    lop_image im = {4, 2, 1, (unsigned char[]){0, 70, 140, 210, 0, 70, 140, 210}};
    lop_folder_opts o = opts(1, 1, 2, 1);
    float out[16];
    run(&im, &o, 0, out, NULL);
    assert_float_equal(out[0] * 255, 50, 1e-3);
    assert_float_equal(out[1] * 255, 160, 1e-3);
    /* Growing [0 100] to 4: plain bilinear, 0 25 75 100 (the edges clamp). */
    lop_image up = {2, 2, 1, (unsigned char[]){0, 100, 0, 100}};
    o = opts(1, 4, 4, 4);
    run(&up, &o, 0, out, NULL);
    const float want[4] = {0, 25, 75, 100};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            assert_float_equal(out[y * 4 + x] * 255, want[x], 1e-3);
}

static void test_resized_size(void **state)
{
    /* Shorter side to `resize`, the other floor(resize * longer / shorter). */
    const int cases[][5] = {{500, 375, 256, 341, 256}, {375, 500, 256, 256, 341},
                            {300, 300, 224, 224, 224}, {7, 3, 5, 11, 5}, {33, 34, 10, 10, 10}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lop_image im = {cases[i][0], cases[i][1], 1, NULL};
        lop_folder_opts o = opts(1, 1, 1, cases[i][2]);
        lop_image_plan p;
        char why[WHY];
        assert_int_equal(lop_image_plan_folder(&im, &o, 0, &p, why, sizeof why), LOP_OK);
        assert_int_equal(p.rw, cases[i][3]);
        assert_int_equal(p.rh, cases[i][4]);
    }
}

/* PIL's BILINEAR weights, written out plainly: the taps of output j of in -> out. */
static void reference_taps(int in, int out, int j, double *w)
{
    double scale = (double)in / out, fs = scale > 1 ? scale : 1, support = fs;
    double center = (j + 0.5) * scale, sum = 0;
    int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
    for (int i = 0; i < in; i++) {
        double x = fabs((i - center + 0.5) / fs);
        w[i] = i >= lo && i < hi && x < 1 ? 1 - x : 0;
        sum += w[i];
    }
    for (int i = 0; i < in; i++)
        w[i] /= sum;
}

/* The whole image resized to rh x rw in double, channel-planar [c][y][x]. */
static double *reference_resize(const lop_image *im, int rh, int rw)
{
    double *wx = malloc((size_t)rw * im->w * sizeof *wx), *wy = malloc((size_t)rh * im->h * sizeof *wy);
    double *out = calloc((size_t)im->c * rh * rw, sizeof *out);
    for (int x = 0; x < rw; x++)
        reference_taps(im->w, rw, x, wx + (size_t)x * im->w);
    for (int y = 0; y < rh; y++)
        reference_taps(im->h, rh, y, wy + (size_t)y * im->h);
    for (int c = 0; c < im->c; c++)
        for (int y = 0; y < rh; y++)
            for (int x = 0; x < rw; x++) {
                double s = 0;
                for (int i = 0; i < im->h; i++)
                    for (int j = 0; j < im->w; j++)
                        s += wy[(size_t)y * im->h + i] * wx[(size_t)x * im->w + j] *
                             im->px[((size_t)i * im->w + j) * im->c + c];
                out[((size_t)c * rh + y) * rw + x] = s;
            }
    free(wx);
    free(wy);
    return out;
}

static void test_resize_reference(void **state)
{
    /* Shrinking by 1.4 and 3.7, growing by 2.3, crops centred and off-centre. */
    const int cases[][6] = {/* w, h, c, resize, crop h, crop w */
                            {37, 28, 3, 20, 16, 20}, {60, 74, 1, 16, 16, 9},
                            {10, 13, 3, 23, 20, 23}, {9, 9, 1, 5, 5, 5}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int *cs = cases[k];
        lop_image im = make_image(cs[0], cs[1], cs[2]);
        lop_folder_opts o = opts(cs[2], cs[4], cs[5], cs[3]);
        o.random_crop = 1;
        float *out = malloc((size_t)cs[2] * cs[4] * cs[5] * sizeof *out);
        for (uint64_t seed = 0; seed < 4; seed++) {
            lop_image_plan p;
            run(&im, &o, seed, out, &p);
            double *ref = reference_resize(&im, p.rh, p.rw);
            double worst = 0;
            for (int c = 0; c < cs[2]; c++)
                for (int y = 0; y < p.oh; y++)
                    for (int x = 0; x < p.ow; x++) {
                        double r = ref[((size_t)c * p.rh + p.y0 + y) * p.rw + p.x0 + x];
                        double d = fabs(out[((size_t)c * p.oh + y) * p.ow + x] * 255.0 - r);
                        worst = d > worst ? d : worst;
                    }
            if (worst > 2e-3)
                fail_msg("case %zu seed %d: %g levels from the reference", k, (int)seed, worst);
            free(ref);
        }
        free(out);
        free(im.px);
    }
}

static void test_no_resize_is_exact(void **state)
{
    /* resize equal to the shorter side, or 0: the pixels themselves, v / 255. */
    lop_image im = make_image(28, 28, 1);
    float out[28 * 28];
    for (int resize = 0; resize <= 28; resize += 28) {
        lop_folder_opts o = opts(1, 28, 28, resize);
        run(&im, &o, 0, out, NULL);
        for (int i = 0; i < 28 * 28; i++)
            assert_true(out[i] == im.px[i] / 255.0f);
    }
    free(im.px);
}

static void test_crop_and_flip(void **state)
{
    /* A 9-wide, 7-high image, 4 x 4 crop: centred at y0 = 1, x0 = 2 for evaluation
     * (seed 0) whatever random_crop and flip say. */
    lop_image im = make_image(9, 7, 3);
    lop_folder_opts o = opts(3, 4, 4, 0);
    o.random_crop = o.flip = 1;
    float out[3 * 16];
    lop_image_plan p;
    run(&im, &o, 0, out, &p);
    assert_int_equal(p.y0, 1);
    assert_int_equal(p.x0, 2);
    assert_int_equal(p.flip, 0);
    /* Training: y0, x0, then the flip from lop_rng seeded with the seed; every offset
     * and both flips appear over 400 seeds, and the values are those pixels. */
    int seen[4][6][2] = {{{0}}};
    for (uint64_t seed = 1; seed <= 400; seed++) {
        lop_rng rng;
        lop_rng_seed(&rng, seed);
        int y0 = lop_rng_below(&rng, 4), x0 = lop_rng_below(&rng, 6),
            flip = lop_rng_below(&rng, 2);
        run(&im, &o, seed, out, &p);
        assert_int_equal(p.y0, y0);
        assert_int_equal(p.x0, x0);
        assert_int_equal(p.flip, flip);
        seen[y0][x0][flip]++;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++) {
                    int sx = x0 + (flip ? 3 - x : x);
                    float v = im.px[((y0 + y) * 9 + sx) * 3 + c] / 255.0f;
                    assert_true(out[(c * 4 + y) * 4 + x] == v);
                }
    }
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 6; x++)
            for (int f = 0; f < 2; f++)
                assert_true(seen[y][x][f] > 0);
    /* Flip alone keeps the centred crop and draws only the flip. */
    o.random_crop = 0;
    lop_rng rng;
    lop_rng_seed(&rng, 77);
    run(&im, &o, 77, out, &p);
    assert_int_equal(p.y0, 1);
    assert_int_equal(p.x0, 2);
    assert_int_equal(p.flip, lop_rng_below(&rng, 2));
    free(im.px);
}

static void test_normalize_and_channels(void **state)
{
    lop_image im = make_image(5, 4, 3);
    lop_folder_opts o = opts(3, 4, 5, 0);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(o.mean, mean, sizeof mean);
    memcpy(o.std, std, sizeof std);
    float out[3 * 20];
    run(&im, &o, 0, out, NULL);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 20; i++)
            assert_float_equal(out[c * 20 + i], (im.px[i * 3 + c] / 255.0 - mean[c]) / std[c],
                               1e-5);
    free(im.px);
    /* A grey image into three channels: the plane repeated, each normalised as its
     * channel says. */
    lop_image g = make_image(5, 4, 1);
    run(&g, &o, 0, out, NULL);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 20; i++)
            assert_float_equal(out[c * 20 + i], (g.px[i] / 255.0 - mean[c]) / std[c], 1e-5);
    free(g.px);
}

static void test_raw_plan(void **state)
{
    lop_image g = make_image(3, 2, 1);
    lop_image_plan p;
    lop_image_plan_raw(&g, 3, &p);
    float out[18];
    assert_int_equal(lop_image_run(&g, &p, out), LOP_OK);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 6; i++)
            assert_true(out[c * 6 + i] == g.px[i]);
    free(g.px);
}

static void test_too_small(void **state)
{
    lop_image im = {10, 12, 1, NULL};
    char why[WHY];
    lop_image_plan p;
    lop_folder_opts o = opts(1, 11, 11, 0);
    assert_int_equal(lop_image_plan_folder(&im, &o, 0, &p, why, sizeof why), LOP_EFORMAT);
    assert_non_null(strstr(why, "10x12"));
    assert_non_null(strstr(why, "11x11 crop"));
    o = opts(1, 9, 9, 8);   /* 10 x 12 resized to 8 x 9 */
    assert_int_equal(lop_image_plan_folder(&im, &o, 0, &p, why, sizeof why), LOP_EFORMAT);
    assert_non_null(strstr(why, "8x9 after resizing to 8"));
    assert_non_null(strstr(why, "9x9 crop"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_examples),
        cmocka_unit_test(test_resized_size),
        cmocka_unit_test(test_resize_reference),
        cmocka_unit_test(test_no_resize_is_exact),
        cmocka_unit_test(test_crop_and_flip),
        cmocka_unit_test(test_normalize_and_channels),
        cmocka_unit_test(test_raw_plan),
        cmocka_unit_test(test_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
