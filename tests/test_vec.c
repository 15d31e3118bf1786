/*
 * test_vec.c - layers/vec.h's lane operations against lane-by-lane references, for
 * every count of lanes and every lane mask: loads and strided gathers of the first n
 * lanes (the others 0), stores of the first n lanes and of the selected lanes (nothing
 * past them written), lanes spread back over a mask, and (de)interleaving.  The
 * AVX-512 and AVX2 builds replace the lane loops with instructions (masked moves,
 * gathers, permutes indexed through BMI2); this is the check that they mean the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
        vec_store_selected(dst, v, mask);
        int k = 0;
        for (int l = 0; l < VEC_LANES; l++)
            if (mask >> l & 1)
                assert_true(dst[k++] == src[l]);
        for (int i = k; i < VEC_LANES + GUARD; i++)
            assert_true(dst[i] == SENTINEL);

        vec s = vec_spread(v, mask);
        k = 0;
        for (int l = 0; l < VEC_LANES; l++)
            assert_true(s[l] == (mask >> l & 1 ? src[k++] : 0.0f));
    }
}

static void test_interleave_and_back(void **state)
{
    (void)state;
    float a[VEC_LANES], b[VEC_LANES];
    fill(a, VEC_LANES, 0.0f);
    fill(b, VEC_LANES, 100.0f);
    vec lo, hi, even, odd;
    vec_interleave(vec_load(a), vec_load(b), &lo, &hi);
    for (int l = 0; l < VEC_LANES; l++) {
        int i = l / 2, j = (VEC_LANES + l) / 2;
        assert_true(lo[l] == (l % 2 ? b[i] : a[i]));
        assert_true(hi[l] == (l % 2 ? b[j] : a[j]));
    }
    vec_deinterleave(lo, hi, &even, &odd);
    for (int l = 0; l < VEC_LANES; l++) {
        assert_true(even[l] == a[l]);
        assert_true(odd[l] == b[l]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_lanes_load_gather_and_store),
        cmocka_unit_test(test_selected_lanes_stored_and_spread_back),
        cmocka_unit_test(test_interleave_and_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
