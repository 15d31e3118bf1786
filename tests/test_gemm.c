/*
 * test_gemm.c - the engine's blocked product (lop_sgemm_blocked) and lop_sgemm against
 * the textbook triple loop in double, for all four transpose combinations: row counts
 * around its register blocks (12 rows, shared out evenly) and its 192-row packing,
 * columns around its two-vector panels and its 384-column packing, inner sizes around
 * its 256-step packing (the later steps added to the first's result), alpha and beta
 * (beta 0 never reading C, which holds NaN there), row pitches wider than the rows
 * (floats past them 1e30, which would swamp a sum that read them) and C's columns past
 * n left as they were.  Builds without AVX-512 have no blocked product: there only
 * lop_sgemm (OpenBLAS) is checked.  lop_transpose (the same 16 x 16 turns, which the
 * Winograd weight gradient uses) against the element-by-element transpose.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "layers/gemm.h"
#include "layers/small_gemm.h"

static float value(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

/* rows x pitch floats: the first `used` of each row drawn from seed, the rest 1e30. */
static float *operand(int rows, int pitch, int used, uint32_t *seed)
{
    float *x = malloc(sizeof *x * ((size_t)rows * pitch + 1));
    assert_non_null(x);
    for (size_t i = 0; i < (size_t)rows * pitch; i++)
        x[i] = (int)(i % pitch) < used ? value(seed) : 1e30f;
    return x;
}

typedef int (*product_fn)(CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, int, int, int, float, const float *,
                          int, const float *, int, float, float *, int);

static int through_lop_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                             float alpha, const float *a, int lda, const float *b, int ldb,
                             float beta, float *c, int ldc)
{
    lop_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return 0;
}

/* C = alpha op(A) op(B) + beta C by `product`, checked entry by entry. */
static void check(product_fn product, int ta, int tb, int m, int n, int k, float alpha,
                  float beta)
{
    uint32_t seed = (uint32_t)(m * 131 + n * 17 + k * 7 + ta * 3 + tb);
    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
    float *a = ta ? operand(k, lda, m, &seed) : operand(m, lda, k, &seed);
    float *b = tb ? operand(n, ldb, k, &seed) : operand(k, ldb, n, &seed);
    float *c = malloc(sizeof *c * (size_t)m * ldc), *c0 = malloc(sizeof *c0 * (size_t)m * ldc);
    assert_non_null(c);
    assert_non_null(c0);
    for (size_t i = 0; i < (size_t)m * ldc; i++)
        c[i] = c0[i] = (int)(i % ldc) < n ? (beta == 0.0f ? NAN : value(&seed)) : 7.0f;
    assert_int_equal(product(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                             n, k, alpha, a, lda, b, ldb, beta, c, ldc),
                     0);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < ldc; j++) {
            double want = c0[(size_t)i * ldc + j], scale = 1.0;
            if (j < n) {
                double sum = 0.0;
                for (int p = 0; p < k; p++) {
                    double x = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                    double y = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                    sum += x * y;
                }
                want = alpha * sum + (beta == 0.0f ? 0.0 : beta * want);
                scale = 1.0 + k;
            }
            double got = c[(size_t)i * ldc + j];
            if (!(fabs(got - want) <= 1e-5 * scale))
                fail_msg("op %c%c m %d n %d k %d alpha %g beta %g: c[%d][%d] = %.7g, want %.7g",
                         "NT"[ta], "NT"[tb], m, n, k, (double)alpha, (double)beta, i, j, got,
                         want);
        }
    free(a);
    free(b);
    free(c);
    free(c0);
}

/* Whether this build has the blocked product: a 1 x 1 x 1 product runs. */
static int blocked_here(void)
{
    float a = 2.0f, b = 3.0f, c = 0.0f;
    int ok = lop_sgemm_blocked(CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f,
                               &c, 1) == 0;
    if (ok)
        assert_true(c == 6.0f);
    return ok;
}

static void test_blocked_matches_triple_loop(void **state)
{
    (void)state;
    if (!blocked_here())
        skip();
    static const int ns[] = {1, 15, 16, 17, 31, 32, 33, 49};
    static const int ks[] = {1, 2, 17, 255, 256, 257};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int m = 1; m <= 26; m += m < 14 ? 1 : 12)
                for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                        check(lop_sgemm_blocked, ta, tb, m, ns[ni], ks[ki], 1.0f,
                              ki % 2 ? 0.0f : 1.0f);
}

/* Past one packing of each side: 193 rows (192 a packing), 385 columns (384), 513 steps
 * (256): every block's partial sums added in, with alpha and beta neither 0 nor 1. */
static void test_blocked_crosses_its_packings(void **state)
{
    (void)state;
    if (!blocked_here())
        skip();
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            check(lop_sgemm_blocked, ta, tb, 193, 385, 513, 1.5f, -0.5f);
    check(lop_sgemm_blocked, 0, 0, 200, 40, 300, 1.0f, 0.0f);
}

static void test_blocked_refuses_empty_products(void **state)
{
    (void)state;
    float a = 1.0f, b = 1.0f, c = 5.0f;
    assert_int_equal(lop_sgemm_blocked(CblasNoTrans, CblasNoTrans, 1, 1, 0, 1.0f, &a, 1, &b, 1,
                                       0.0f, &c, 1),
                     -1);
    assert_int_equal(lop_sgemm_blocked(CblasNoTrans, CblasNoTrans, 0, 1, 1, 1.0f, &a, 1, &b, 1,
                                       0.0f, &c, 1),
                     -1);
    assert_true(c == 5.0f);
}

/* lop_sgemm runs the blocked product exactly where OpenBLAS lacks AVX-512 kernels and
 * the build has the product; either way its results are the triple loop's, an empty
 * inner size included (C = beta C). */
static void test_lop_sgemm_matches_and_dispatches(void **state)
{
    (void)state;
    assert_int_equal(lop_sgemm_blocked_runs(), blocked_here() && !lop_blas_has_avx512());
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check(through_lop_sgemm, ta, tb, 37, 70, 300, 1.0f, 0.0f);
            check(through_lop_sgemm, ta, tb, 5, 3, 0, 1.0f, 0.5f);
        }
}

/* lop_transpose against the element-by-element transpose: every shape around its
 * 16 x 16 blocks, pitches wider than the rows, and dst's floats past its rows left as
 * they were. */
static void test_transpose_turns_every_shape(void **state)
{
    (void)state;
    static const int sizes[] = {1, 2, 15, 16, 17, 31, 33, 40};
    enum { N = sizeof sizes / sizeof sizes[0] };
    for (int ri = 0; ri < N; ri++)
        for (int ci = 0; ci < N; ci++) {
            int rows = sizes[ri], cols = sizes[ci], ld = cols + 3, ldd = rows + 2;
            uint32_t seed = (uint32_t)(rows * 41 + cols);
            float *src = operand(rows, ld, cols, &seed);
            float *dst = malloc(sizeof *dst * (size_t)cols * ldd);
            assert_non_null(dst);
            for (int i = 0; i < cols * ldd; i++)
                dst[i] = 7.0f;
            lop_transpose(src, ld, rows, cols, dst, ldd);
            for (int c = 0; c < cols; c++)
                for (int r = 0; r < ldd; r++) {
                    float want = r < rows ? src[(size_t)r * ld + c] : 7.0f;
                    if (dst[(size_t)c * ldd + r] != want)
                        fail_msg("%d x %d: dst[%d][%d] = %g, want %g", rows, cols, c, r,
                                 (double)dst[(size_t)c * ldd + r], (double)want);
                }
            free(src);
            free(dst);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocked_matches_triple_loop),
        cmocka_unit_test(test_blocked_crosses_its_packings),
        cmocka_unit_test(test_blocked_refuses_empty_products),
        cmocka_unit_test(test_lop_sgemm_matches_and_dispatches),
        cmocka_unit_test(test_transpose_turns_every_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
