/*
 * test_vec.c - layers/vec.h's lane operations against lane-by-lane references, for
 * every count and range of lanes and every lane mask: loads and strided gathers of the
 * first n lanes (the others 0), 3x3 kernels' taps and 2x2 maps gathered, stores of the
 * first n lanes and of the selected lanes (nothing past them written), loads and
 * stores of lanes [lo, hi) and merges, lanes [lo, hi) of a vector readable whole (the
 * others cleared whatever they hold), a row split by parity, lanes spread back over a
 * mask, and a row of tiles split by column and joined again, in whatever lane order
 * the build's split leaves them.
 * The AVX-512 and AVX2 builds replace the lane loops with instructions (masked moves,
 * gathers, permutes, transposes in registers); this is the check that they mean the
 * same.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "layers/vec.h"

enum { GUARD = 2 * VEC_LANES };
static const float SENTINEL = -777.0f;

static void fill(float *p, int n, float base)
{
    for (int i = 0; i < n; i++)
        p[i] = base + (float)i;
}

static void test_first_lanes_load_gather_and_store(void **state)
{
    (void)state;
    float src[3 * VEC_LANES * 3];
    fill(src, 3 * VEC_LANES * 3, 1.0f);
    for (int n = 0; n <= VEC_LANES; n++) {
        vec v = vec_load_first(src + 1, n);
        for (int l = 0; l < VEC_LANES; l++)
            assert_true(v[l] == (l < n ? src[1 + l] : 0.0f));
        for (int stride = 1; stride <= 3; stride++) {
            vec g = vec_gather_first(src + 2, stride, n);
            for (int l = 0; l < VEC_LANES; l++)
                assert_true(g[l] == (l < n ? src[2 + l * stride] : 0.0f));
        }
        float dst[VEC_LANES + GUARD];
        for (int i = 0; i < VEC_LANES + GUARD; i++)
            dst[i] = SENTINEL;
        vec_store_first(dst + 1, vec_load(src), n);
        for (int i = 0; i < VEC_LANES + GUARD; i++)
            assert_true(dst[i] == (i >= 1 && i <= n ? src[i - 1] : SENTINEL));
    }
}

/* The taps of n 3x3 kernels `stride` apart, one vector per tap, the lanes past n 0. */
static void test_kernel_taps_gathered(void **state)
{
    (void)state;
    float src[9 * 2 * VEC_LANES + 9];
    fill(src, (int)(sizeof src / sizeof *src), 1.0f);
    for (int n = 0; n <= VEC_LANES; n++)
        for (int stride = 9; stride <= 18; stride += 9) {
            vec g[9];
            vec_gather_kernels(src + 1, stride, n, g);
            for (int i = 0; i < 9; i++)
                for (int l = 0; l < VEC_LANES; l++)
                    assert_true(g[i][l] == (l < n ? src[1 + l * stride + i] : 0.0f));
        }
}

/* Four consecutive floats from each of n places `stride` apart, the lanes past n 0,
 * from a buffer that ends at the last place's fourth float (an exact allocation, so
 * that ASan sees a read past it). */
static void test_quads_gathered(void **state)
{
    (void)state;
    for (int n = -1; n <= VEC_LANES; n++)   /* -1: none, as for 0 */
        for (int stride = 4; stride <= 12; stride += 8) {
            int floats = n > 0 ? (n - 1) * stride + 4 : 1;
            float *src = malloc((size_t)floats * sizeof *src);
            assert_non_null(src);
            fill(src, floats, 1.0f);
            vec q[4];
            vec_gather_quads(src, stride, n, q);
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < VEC_LANES; l++)
                    assert_true(q[j][l] == (l < n ? src[l * stride + j] : 0.0f));
            free(src);
        }
}

/* Ranges of lanes [lo, hi) loaded (the others 0) and stored (nothing else written),
 * and vectors with zeros in each other's lanes merged. */
/* A stride-2 row: n floats split by parity, for every n up to two vectors, from a
 * buffer of exactly n floats (an exact allocation, so that ASan sees a read past it). */
static void test_pairs_split_by_parity(void **state)
{
    (void)state;
    for (int n = 0; n <= 2 * VEC_LANES; n++) {
        float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
        fill(p, n, 1.0f);
        vec even, odd;
        vec_load_evens_odds(p, n, &even, &odd);
        for (int l = 0; l < VEC_LANES; l++) {
            assert_true(even[l] == (2 * l < n ? p[2 * l] : 0.0f));
            assert_true(odd[l] == (2 * l + 1 < n ? p[2 * l + 1] : 0.0f));
        }
        free(p);
    }
}

static void test_lane_ranges_loaded_stored_and_merged(void **state)
{
    (void)state;
    float src[VEC_LANES];
    fill(src, VEC_LANES, 10.0f);
    for (int lo = 0; lo <= VEC_LANES; lo++)
        for (int hi = lo; hi <= VEC_LANES; hi++) {
            vec v = vec_load_lanes(src, lo, hi);
            vec rest = vec_load_lanes(src, 0, lo) + vec_load_lanes(src, hi, VEC_LANES);
            vec all = vec_merge(v, rest);
            for (int l = 0; l < VEC_LANES; l++) {
                assert_true(v[l] == (l >= lo && l < hi ? src[l] : 0.0f));
                assert_true(all[l] == src[l]);
            }
            float dst[VEC_LANES + GUARD];
            for (int i = 0; i < VEC_LANES + GUARD; i++)
                dst[i] = SENTINEL;
            vec_store_lanes(dst + 1, vec_load(src), lo, hi);
            for (int i = 0; i < VEC_LANES + GUARD; i++)
                assert_true(dst[i] == (i > lo && i <= hi ? src[i - 1] : SENTINEL));
        }
}

/* Lanes [lo, hi) of a vector whose other lanes may be read: those lanes are cleared
 * bit by bit, even where they hold NaN or infinity. */
static void test_lane_ranges_loaded_from_readable_vectors(void **state)
{
    (void)state;
    float src[VEC_LANES];
    for (int lo = 0; lo <= VEC_LANES; lo++)
        for (int hi = lo; hi <= VEC_LANES; hi++) {
            for (int l = 0; l < VEC_LANES; l++)
                src[l] = l >= lo && l < hi ? 10.0f + (float)l : l % 2 ? NAN : -INFINITY;
            vec v = vec_load_lanes_readable(src, lo, hi);
            for (int l = 0; l < VEC_LANES; l++) {
                uint32_t bits;
                memcpy(&bits, (const float *)&v + l, sizeof bits);
                if (l >= lo && l < hi)
                    assert_true(v[l] == src[l]);
                else
                    assert_int_equal(bits, 0);   /* +0.0f, not -0.0f nor a NaN */
            }
        }
}

/* Selected lanes stored in order and spread back (VEC_IN_ORDER): lane l is tile l. */
static void test_selected_lanes_stored_and_spread_back(void **state)
{
    (void)state;
    float src[VEC_LANES];
    fill(src, VEC_LANES, 10.0f);
    vec v = vec_load(src);
    for (unsigned mask = 0; mask < 1u << VEC_LANES; mask++) {
        float dst[VEC_LANES + GUARD];
        for (int i = 0; i < VEC_LANES + GUARD; i++)
            dst[i] = SENTINEL;
        vec_store_selected(dst, v, mask, VEC_IN_ORDER);
        int k = 0;
        for (int l = 0; l < VEC_LANES; l++)
            if (mask >> l & 1)
                assert_true(dst[k++] == src[l]);
        for (int i = k; i < VEC_LANES + GUARD; i++)
            assert_true(dst[i] == SENTINEL);

        vec s = vec_spread(v, mask, VEC_IN_ORDER);
        k = 0;
        for (int l = 0; l < VEC_LANES; l++)
            assert_true(s[l] == (mask >> l & 1 ? src[k++] : 0.0f));
    }
}

/* VEC_LANES tiles of `cols` columns at row[]: split, each column's selected tiles
 * stored in the tiles' order, spread back over them and joined - whatever lane order
 * the build gives the split, tile t's column k is row[cols t + k] and an unselected
 * tile comes back as zeros. */
static void check_split(int cols, unsigned mask)
{
    float row[4 * VEC_LANES], back[4 * VEC_LANES];
    fill(row, 4 * VEC_LANES, 1.0f);
    vec a[4] = {vec_load(row), vec_load(row + VEC_LANES), vec_load(row + 2 * VEC_LANES),
                vec_load(row + 3 * VEC_LANES)}, q[4], out[4];
    vec_order order = cols == 2 ? VEC_SPLIT2 : VEC_SPLIT4;
    if (cols == 2)
        vec_split2_of(a[0], a[1], &q[0], &q[1]);
    else
        vec_split4_of(a, q);
    for (int k = 0; k < cols; k++) {
        float dst[VEC_LANES + GUARD];
        for (int i = 0; i < VEC_LANES + GUARD; i++)
            dst[i] = SENTINEL;
        vec_store_selected(dst, q[k], mask, order);
        int n = 0;
        for (int t = 0; t < VEC_LANES; t++)
            if (mask >> t & 1)
                assert_true(dst[n++] == row[cols * t + k]);
        for (int i = n; i < VEC_LANES + GUARD; i++)
            assert_true(dst[i] == SENTINEL);
        q[k] = vec_spread(vec_load(dst), mask, order);
    }
    if (cols == 2)
        vec_join2_of(q[0], q[1], out);
    else
        vec_join4_of(q, out);
    for (int k = 0; k < cols; k++)
        vec_store(back + k * VEC_LANES, out[k]);
    for (int t = 0; t < VEC_LANES; t++)
        for (int k = 0; k < cols; k++)
            assert_true(back[cols * t + k] == (mask >> t & 1 ? row[cols * t + k] : 0.0f));
}

static void test_tiles_split_stored_spread_and_joined(void **state)
{
    (void)state;
    for (unsigned mask = 0; mask < 1u << VEC_LANES; mask++) {
        check_split(2, mask);
        check_split(4, mask);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_lanes_load_gather_and_store),
        cmocka_unit_test(test_kernel_taps_gathered),
        cmocka_unit_test(test_quads_gathered),
        cmocka_unit_test(test_pairs_split_by_parity),
        cmocka_unit_test(test_lane_ranges_loaded_stored_and_merged),
        cmocka_unit_test(test_lane_ranges_loaded_from_readable_vectors),
        cmocka_unit_test(test_selected_lanes_stored_and_spread_back),
        cmocka_unit_test(test_tiles_split_stored_spread_and_joined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
