/*
 * test_small_gemm.c - lop_small_gemm (the Winograd products of thin layers) against
 * the textbook triple loop in double: every count of rows up to three blocks and more
 * (blocks of up to 6 or 8 rows, the rows shared out evenly), columns around its one- and
 * two-vector blocks (1 to 2 vectors + 3, for 8- and 16-lane builds), inner sizes from
 * 0, and row pitches wider than the rows, with the columns beyond each row of C left
 * untouched; lop_small_gemm_nt (c = a b^T) the same way.
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

/* c (m x n, row pitch ldc) against the product in double of a's rows (a_row floats
 * apart, a_step along k) and b's columns (b_col apart, b_step along k); c's columns
 * from n to ldc must still hold the 7.0 they were filled with. */
static void expect_product(const char *what, int m, int n, int k, const float *a, int a_row,
                           int a_step, const float *b, int b_step, int b_col, const float *c,
                           int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < ldc; j++) {
            double want = 7.0;
            if (j < n) {
                want = 0.0;
                for (int p = 0; p < k; p++)
                    want += (double)a[i * a_row + p * a_step] * b[p * b_step + j * b_col];
            }
            if (fabs(c[i * ldc + j] - want) > 1e-5 * (1 + k))
                fail_msg("%sm %d n %d k %d: c[%d][%d] = %.7g, want %.7g", what, m, n, k, i, j,
                         (double)c[i * ldc + j], want);
        }
}

/* rows x pitch floats (and one more): the first `used` of each row drawn from seed, the
 * rest 1e30, which would swamp any sum that read them. */
static float *operand(int rows, int pitch, int used, uint32_t *seed)
{
    float *x = malloc(sizeof *x * ((size_t)rows * pitch + 1));
    assert_non_null(x);
    for (int i = 0; i < rows * pitch; i++)
        x[i] = i % pitch < used ? value(seed) : 1e30f;
    return x;
}

/* m x ldc floats of 7.0: stale values, stored over, never added to. */
static float *stale(int m, int ldc)
{
    float *c = malloc(sizeof *c * (size_t)m * ldc);
    assert_non_null(c);
    for (int i = 0; i < m * ldc; i++)
        c[i] = 7.0f;
    return c;
}

static void check(int m, int n, int k, int ldb, int ldc)
{
    uint32_t seed = (uint32_t)(m * 131 + n * 17 + k);
    float *a = operand(m, k, k, &seed), *b = operand(k, ldb, ldb, &seed);
    float *c = stale(m, ldc);
    lop_small_gemm(m, n, k, a, b, ldb, c, ldc);
    expect_product("", m, n, k, a, k, 1, b, ldb, 1, c, ldc);
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

/* lop_small_gemm_nt (c = a b^T) against the double loop: every count of rows and
 * columns around its 4 x 3 blocks, inner sizes from 0 with every remainder of a vector
 * of 8 or 16 lanes, row pitches wider than the rows (their floats beyond k never
 * read into a sum) and C's columns beyond n left untouched. */
static void check_nt(int m, int n, int k)
{
    int lda = k + 3, ldb = k + 5, ldc = n + 2;
    uint32_t seed = (uint32_t)(m * 37 + n * 11 + k);
    float *a = operand(m, lda, k, &seed), *b = operand(n, ldb, k, &seed);
    float *c = stale(m, ldc);
    lop_small_gemm_nt(m, n, k, a, lda, b, ldb, c, ldc);
    expect_product("nt ", m, n, k, a, lda, 1, b, 1, ldb, c, ldc);
    free(a);
    free(b);
    free(c);
}

static void test_nt_matches_double_loop(void **state)
{
    (void)state;
    static const int ks[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 128, 131};
    for (int m = 1; m <= 9; m++)
        for (int n = 1; n <= 7; n++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                check_nt(m, n, ks[ki]);
    check_nt(13, 13, 128);
    check_nt(32, 29, 256);
}

/* The rules conv_winograd.c follows: few rows or one vector of columns always, else B
 * small enough for L1; the transposed product where k fills whole vectors and both
 * operands stay in L1, unless OpenBLAS runs its AVX-512 kernels (OPENBLAS_CORETYPE
 * decides which, so both answers are checked on the same shapes). */
static void test_suits_small_products_only(void **state)
{
    (void)state;
    assert_true(lop_small_gemm_suits(16, 128, 16));
    assert_true(lop_small_gemm_suits(64, 128, 64));
    assert_true(lop_small_gemm_suits(8, 512, 256));
    assert_false(lop_small_gemm_suits(64, 512, 64));
    assert_false(lop_small_gemm_suits(256, 128, 256));
    assert_true(lop_small_gemm_suits(512, 8, 512));   /* one vector on any build */
    int nt = !lop_blas_has_avx512();
    assert_int_equal(lop_small_gemm_nt_suits(13, 13, 128), nt);
    assert_int_equal(lop_small_gemm_nt_suits(32, 32, 128), nt);
    assert_false(lop_small_gemm_nt_suits(64, 64, 128));
    assert_false(lop_small_gemm_nt_suits(13, 13, 100));   /* a partial last vector */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_triple_loop),
        cmocka_unit_test(test_nt_matches_double_loop),
        cmocka_unit_test(test_suits_small_products_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
