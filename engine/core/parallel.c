/*
 * parallel.c - the engine's own worker threads.  Convolution at small batch-sized
 * products, batchnorm, pooling and elementwise layers cost as much as the GEMMs on
 * small networks, and OpenBLAS only parallelises inside each GEMM while its idle
 * threads spin.  So the engine splits whole layers across a persistent pool of
 * threads (one per core, LOP_THREADS to override) and runs OpenBLAS single-threaded
 * inside them.  A call from inside a worker, or while another thread owns the pool,
 * simply runs inline.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define MAX_THREADS 64

static struct {
    pthread_once_t once;
    int nthreads;
    pthread_mutex_t owner;         /* held by the caller running a job on the pool */
    pthread_mutex_t lock;          /* guards the job fields below */
    pthread_cond_t start, done;
    unsigned long generation;
    int pending;
    lop_range_fn fn;
    void *ctx;
    long n;
} pool = {
    .once = PTHREAD_ONCE_INIT,
    .nthreads = 1,
    .owner = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .start = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

static _Thread_local int inside_job;

static void run_share(int w)
{
    long begin = pool.n * w / pool.nthreads, end = pool.n * (w + 1) / pool.nthreads;
    if (begin < end)
        pool.fn(pool.ctx, begin, end, w);
}

static void *worker_main(void *arg)
{
    int w = (int)(intptr_t)arg;
    unsigned long seen = 0;
    inside_job = 1;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen)
            pthread_cond_wait(&pool.start, &pool.lock);
        seen = pool.generation;
        pthread_mutex_unlock(&pool.lock);
        run_share(w);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static void pool_init(void)
{
    long want = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("LOP_THREADS");
    if (env && atoi(env) > 0)
        want = atoi(env);
    if (want < 1)
        want = 1;
    if (want > MAX_THREADS)
        want = MAX_THREADS;
    int started = 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int w = 1; w < want; w++) {
        pthread_t t;
        if (pthread_create(&t, &attr, worker_main, (void *)(intptr_t)w) != 0)
            break;
        started++;
    }
    pthread_attr_destroy(&attr);
    pool.nthreads = started;
    /* Always: with one engine thread (LOP_THREADS=1, one core) the user asked for one
     * core, and OpenBLAS threads spinning beside busy processes cost a time slice each. */
    openblas_set_num_threads(1);
}

int lop_parallel_threads(void)
{
    pthread_once(&pool.once, pool_init);
    return pool.nthreads;
}

void lop_parallel_for(long n, long grain, lop_range_fn fn, void *ctx)
{
    int threads = lop_parallel_threads();
    if (n <= 0)
        return;
    if (threads == 1 || inside_job || n < 2 * (grain > 0 ? grain : 1) ||
        pthread_mutex_trylock(&pool.owner) != 0) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.pending = threads - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.lock);

    inside_job = 1;
    run_share(0);
    inside_job = 0;

    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.owner);
}
