/*
 * gauss_jordan.h - a dense solve by Gauss-Jordan elimination with partial pivoting,
 * for tests that need a reference independent of the engine's Cholesky (solve.c).
 */
#ifndef GAUSS_JORDAN_H
#define GAUSS_JORDAN_H

#include <math.h>

/* Solve A X = B in place: A is n x n and B n x k, both row-major with row lengths n
 * and k; A is destroyed and B becomes X.  No check for a singular A. */
static inline void gauss_jordan(double *A, int n, double *B, int k)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r * n + c]) > fabs(A[piv * n + c]))
                piv = r;
        for (int j = 0; j < n; j++) {
            double t = A[c * n + j];
            A[c * n + j] = A[piv * n + j];
            A[piv * n + j] = t;
        }
        for (int j = 0; j < k; j++) {
            double t = B[c * k + j];
            B[c * k + j] = B[piv * k + j];
            B[piv * k + j] = t;
        }
        for (int r = 0; r < n; r++) {
            if (r == c)
                continue;
            double f = A[r * n + c] / A[c * n + c];
            for (int j = 0; j < n; j++)
                A[r * n + j] -= f * A[c * n + j];
            for (int j = 0; j < k; j++)
                B[r * k + j] -= f * B[c * k + j];
        }
    }
    for (int c = 0; c < n; c++)
        for (int j = 0; j < k; j++)
            B[c * k + j] /= A[c * n + c];
}

#endif
