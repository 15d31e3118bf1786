/*
 * solve.c - symmetric positive (semi-)definite solves through LAPACK's Cholesky
 * (dpotrf / dpotrs, shipped inside OpenBLAS): the normal equations of every
 * least-squares fit in the engine (a new classifier head, the solvers' reconstruction,
 * the per-count errors) go through here, in double precision, with a ridge that grows
 * until the system factors.
 */
#include <string.h>

#include "internal.h"

extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
extern void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a,
                    const int *lda, double *b, const int *ldb, int *info);

int lop_factor_spd(double *a, int n, double ridge, double *lambda)
{
    if (n < 1)
        return lop_fail(LOP_EINVAL, "solve: empty system (%d x %d)", n, n);
    double *diag = lop_malloc((size_t)n * sizeof *diag);
    if (!diag)
        return LOP_ENOMEM;
    double scale = 0;
    for (int i = 0; i < n; i++)
        scale += diag[i] = a[(size_t)i * n + i];
    scale = scale > 0 ? scale / n : 1.0;
    /* ridge is relative to the mean diagonal; escalate while Cholesky fails.  LAPACK's
     * column-major upper triangle is the row-major lower one; the strict upper triangle
     * keeps A, from which a failed attempt's lower triangle is restored. */
    int st = LOP_OK;
    for (int attempt = 0;; attempt++) {
        *lambda = ridge * scale;
        for (int i = 0; i < n; i++)
            a[(size_t)i * n + i] = diag[i] + *lambda;
        int info = 0;
        dpotrf_("U", &n, a, &n, &info);
        if (info == 0)
            break;
        if (info < 0 || attempt == 6) {
            st = lop_fail(LOP_EINVAL, "solve: the system is not positive definite even with "
                          "ridge %g", *lambda);
            break;
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++)
                a[(size_t)i * n + j] = a[(size_t)j * n + i];
        ridge = ridge > 0 ? ridge * 100 : 1e-8;
    }
    lop_free(diag);
    return st;
}

int lop_solve_spd(const double *A, int n, const double *B, int k, double ridge, double *X)
{
    if (n < 1 || k < 1)
        return lop_fail(LOP_EINVAL, "solve: empty system (%d x %d)", n, k);
    double *a = lop_malloc((size_t)n * (size_t)n * sizeof *a);
    double *b = lop_malloc((size_t)n * (size_t)k * sizeof *b);
    int st = (!a || !b) ? LOP_ENOMEM : LOP_OK;
    double lambda;
    if (st == LOP_OK) {
        memcpy(a, A, (size_t)n * (size_t)n * sizeof *a);
        st = lop_factor_spd(a, n, ridge, &lambda);
    }
    if (st == LOP_OK) {
        for (int i = 0; i < n; i++)      /* B row-major n x k -> column-major */
            for (int j = 0; j < k; j++)
                b[(size_t)j * n + i] = B[(size_t)i * k + j];
        int info = 0;
        dpotrs_("U", &n, &k, a, &n, b, &n, &info);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++)
                X[(size_t)i * k + j] = b[(size_t)j * n + i];
    }
    lop_free(a);
    lop_free(b);
    return st;
}
