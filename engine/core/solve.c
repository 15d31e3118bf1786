/*
 * solve.c - symmetric positive (semi-)definite solves through LAPACK's Cholesky
 * (dposv, shipped inside OpenBLAS): the normal equations of every least-squares fit
 * in the engine (a new classifier head, the solvers' reconstruction) go through
 * here, in double precision, with a ridge that grows until the system factors.
 */
#include <string.h>

#include "internal.h"

extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
                   double *b, const int *ldb, int *info);

int lop_solve_spd(const double *A, int n, const double *B, int k, double ridge, double *X)
{
    if (n < 1 || k < 1)
        return lop_fail(LOP_EINVAL, "solve: empty system (%d x %d)", n, k);
    double *a = lop_malloc((size_t)n * (size_t)n * sizeof *a);
    double *b = lop_malloc((size_t)n * (size_t)k * sizeof *b);
    int st = (!a || !b) ? LOP_ENOMEM : LOP_OK;
    double scale = 0;
    for (int i = 0; i < n && st == LOP_OK; i++)
        scale += A[(size_t)i * n + i];
    scale = scale > 0 ? scale / n : 1.0;
    /* ridge is relative to the mean diagonal; escalate while Cholesky fails */
    for (int attempt = 0; st == LOP_OK; attempt++) {
        memcpy(a, A, (size_t)n * (size_t)n * sizeof *a);   /* symmetric: layout-free */
        for (int i = 0; i < n; i++)
            a[(size_t)i * n + i] += ridge * scale;
        for (int i = 0; i < n; i++)      /* B row-major n x k -> column-major */
            for (int j = 0; j < k; j++)
                b[(size_t)j * n + i] = B[(size_t)i * k + j];
        int info = 0;
        dposv_("L", &n, &k, a, &n, b, &n, &info);
        if (info == 0)
            break;
        if (info < 0 || attempt == 6) {
            st = lop_fail(LOP_EINVAL, "solve: the system is not positive definite even with "
                          "ridge %g", ridge * scale);
            break;
        }
        ridge = ridge > 0 ? ridge * 100 : 1e-8;
    }
    if (st == LOP_OK)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++)
                X[(size_t)i * k + j] = b[(size_t)j * n + i];
    lop_free(a);
    lop_free(b);
    return st;
}
