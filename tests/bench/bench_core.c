/*
 * bench_core.c - the first line of `make bench`: the machine's sgemm rate (OpenBLAS,
 * 1024^3), the ceiling the engine's GFLOP/s in the tables that follow
 * (tests/bench/bench_speed.lua) are read against.  Reported, never asserted: the
 * machine is shared and noisy, compare within one run.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double sgemm_gflops(void)
{
    const int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0;
    }
    for (int i = 0; i < n * n; i++)
        a[i] = b[i] = (float)(i % 7) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    int reps = 0;
    double t0 = now(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        reps++;
    } while ((t = now() - t0) < 2.0);
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * (double)n * reps / t / 1e9;
}

int main(void)
{
    double peak = sgemm_gflops();
    if (peak == 0) {
        fprintf(stderr, "bench_core: out of memory\n");
        return 1;
    }
    printf("sgemm 1024^3 (OpenBLAS, %d threads): %.1f GFLOP/s\n", openblas_get_num_threads(),
           peak);
    return 0;
}
