/*
 * test_small_gemm.c - lop_small_gemm (the Winograd products of thin layers) against
 * the textbook triple loop in double: every count of rows up to three blocks and more
 * (blocks of up to 6 or 8 rows, the rows shared out evenly), columns around its one- and
 * two-vector blocks (1 to 2 vectors + 3, for 8- and 16-lane builds), inner sizes from 0, and row pitches wider than the rows, with the columns beyond
 * each row of C left untouched.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "layers/small_gemm.h"

static float value(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

static void check(int m, int n, int k, int ldb, int ldc)
{
    uint32_t seed = (uint32_t)(m * 131 + n * 17 + k);
    float *a = malloc(sizeof *a * (size_t)(m * k + 1));
    float *b = malloc(sizeof *b * (size_t)(k * ldb + 1));
    float *c = malloc(sizeof *c * (size_t)m * ldc);
    assert_true(a && b && c);
    for (int i = 0; i < m * k; i++)
        a[i] = value(&seed);
    for (int i = 0; i < k * ldb; i++)
        b[i] = value(&seed);
    for (int i = 0; i < m * ldc; i++)
        c[i] = 7.0f;   /* stale values: stored over, never added to */
    lop_small_gemm(m, n, k, a, b, ldb, c, ldc);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < ldc; j++) {
            double want = 7.0;
            if (j < n) {
                want = 0.0;
                for (int p = 0; p < k; p++)
                    want += (double)a[i * k + p] * b[p * ldb + j];
            }
            if (fabs(c[i * ldc + j] - want) > 1e-5 * (1 + k))
                fail_msg("m %d n %d k %d: c[%d][%d] = %.7g, want %.7g", m, n, k, i, j,
                         (double)c[i * ldc + j], want);
        }
    free(a);
    free(b);
    free(c);
}

static void test_matches_triple_loop(void **state)
{
    (void)state;
    static const int ns[] = {1, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 35, 128, 131};
    for (int m = 1; m <= 25; m++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int k = 0; k <= 17; k += k < 3 ? 1 : 7) {
                check(m, ns[ni], k, ns[ni], ns[ni]);
                check(m, ns[ni], k, ns[ni] + 5, ns[ni] + 3);
            }
    check(64, 128, 64, 128, 128);
    check(512, 16, 512, 16, 16);
}

/* The rule conv_winograd.c follows: few rows or one vector of columns always, else B
 * small enough for L1. */
static void test_suits_small_products_only(void **state)
{
    (void)state;
    assert_true(lop_small_gemm_suits(16, 128, 16));
    assert_true(lop_small_gemm_suits(64, 128, 64));
    assert_true(lop_small_gemm_suits(8, 512, 256));
    assert_false(lop_small_gemm_suits(64, 512, 64));
    assert_false(lop_small_gemm_suits(256, 128, 256));
    assert_true(lop_small_gemm_suits(512, 8, 512));   /* one vector on any build */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_triple_loop),
        cmocka_unit_test(test_suits_small_products_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
