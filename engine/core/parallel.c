/*
 * parallel.c - the engine's own worker threads.  Convolution at small batch-sized
 * products, batchnorm, pooling and elementwise layers cost as much as the GEMMs on
 * small networks, and OpenBLAS only parallelises inside each GEMM while its idle
 * threads spin.  So the engine splits whole layers across a persistent pool of
 * threads (one per core, LOP_THREADS or lop_set_threads to override) and runs OpenBLAS
 * single-threaded inside them.  A call from inside a worker, or while another thread
 * owns the pool, simply runs inline.  Workers beyond the count in use sleep through
 * the jobs.
 *
 * A layer at batch 1 takes tens of microseconds, about what waking a sleeping thread
 * costs, so a worker that has finished a job, and the caller waiting for the others,
 * first spin for up to SPIN_NS on the job counters before they sleep on the condition
 * variables: back-to-back layers then hand over without a system call, and a thread
 * idle for longer still gives its core away.
 */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MAX_THREADS 64
#define SPIN_NS 100000L   /* how long a thread polls for the next job before sleeping */
#define TICKET_SPAN (MAX_THREADS + 1)

static struct {
    pthread_once_t once;
    int nthreads;                  /* threads a job runs on, the caller included */
    int started;                   /* the same plus sleeping workers */
    pthread_mutex_t owner;         /* held by the caller running a job on the pool */
    pthread_mutex_t lock;          /* guards the job fields below */
    pthread_cond_t start, done, warmed;
    int warm;                      /* workers that have run their first product */
    /* ticket and pending change under lock but are also polled without it: the job
     * fields are written before ticket's release store.  A job's ticket is the count
     * of jobs started times TICKET_SPAN plus the threads it runs on, one word: a
     * worker that reads the thread count apart from the job can pair a job that
     * skipped it with a count set later (lop_set_threads) and run its share of an
     * ended job, whose context is gone. */
    atomic_ulong ticket;
    unsigned long born[MAX_THREADS];   /* the ticket when each worker was started */
    atomic_int pending;            /* workers still running the current job */
    lop_range_fn fn;
    void *ctx;
    long n;
} pool = {
    .once = PTHREAD_ONCE_INIT,
    .nthreads = 1,
    .started = 1,
    .owner = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .start = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .warmed = PTHREAD_COND_INITIALIZER,
};

static _Thread_local int inside_job;

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* What a worker polls for: a job after ticket `seen` has started; and the caller: no
 * worker is left running the job (seen unused). */
static int job_started(unsigned long seen)
{
    return atomic_load_explicit(&pool.ticket, memory_order_acquire) != seen;
}

static int job_done(unsigned long seen)
{
    (void)seen;
    return atomic_load_explicit(&pool.pending, memory_order_acquire) == 0;
}

/* Polls ready(seen) for up to SPIN_NS; returns whether it came true. */
static int spin_until(int (*ready)(unsigned long), unsigned long seen)
{
    long deadline = now_ns() + SPIN_NS;
    for (int i = 1;; i++) {
        if (ready(seen))
            return 1;
        cpu_relax();
        if (i % 64 == 0 && now_ns() > deadline)
            return 0;
    }
}

static void run_share(int w, int threads)
{
    long begin = pool.n * w / threads, end = pool.n * (w + 1) / threads;
    if (begin < end)
        pool.fn(pool.ctx, begin, end, w);
}

/* OpenBLAS (0.3.21) keeps a work buffer for each concurrent caller, mapped but left
 * untouched until a product reaches into it.  A product whose result is at most about
 * 320 columns wide packs B a few columns at a time into the buffer's start, and its
 * kernel evidently reads ahead into pages no call has touched: such products ran at a
 * third of their speed for as long as the process lived (64 x 256 x 1024, one thread:
 * 12 against 35 GFLOP/s; the same 35 once the buffer was mapped with MAP_POPULATE, or
 * after one wider product).  They are the stride-2 convolutions at batch 1 and the
 * small-map layers' backward products (docs/performance.md, "OpenBLAS's work
 * buffers").  So every engine thread runs one wider product as it starts, the caller
 * and the workers at the same time, so that each holds a buffer of its own; its
 * operands are zeros and its result is thrown away.  Whoever starts workers waits
 * for their products to end (wait_for_warm_workers): a process that exited during one
 * ran OpenBLAS's exit-time cleanup under it and crashed (a program that only asked
 * for the thread count: 131 segmentation faults in 500 runs). */
static void warm_blas_buffer(void)
{
    enum { ROWS = 64, COLS = 384, INNER = 1024 };
    float *a = calloc((size_t)ROWS * INNER + (size_t)INNER * COLS + (size_t)ROWS * COLS,
                      sizeof *a);
    if (!a)
        return;   /* only speed is lost */
    float *b = a + (size_t)ROWS * INNER, *c = b + (size_t)INNER * COLS;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ROWS, COLS, INNER, 1.0f, a, INNER,
                b, COLS, 0.0f, c, COLS);
    free(a);
}

static void *worker_main(void *arg)
{
    int w = (int)(intptr_t)arg;
    unsigned long seen = pool.born[w];
    inside_job = 1;
    warm_blas_buffer();
    pthread_mutex_lock(&pool.lock);
    pool.warm++;
    pthread_cond_signal(&pool.warmed);
    pthread_mutex_unlock(&pool.lock);
    for (;;) {
        if (!spin_until(job_started, seen)) {
            pthread_mutex_lock(&pool.lock);
            while (!job_started(seen))
                pthread_cond_wait(&pool.start, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        /* A job cannot end before every worker it runs on has run it, so no job of
         * this worker's is skipped here, and the job fields stay this ticket's until
         * this worker is done. */
        seen = atomic_load_explicit(&pool.ticket, memory_order_acquire);
        int threads = (int)(seen % TICKET_SPAN);
        if (w >= threads)
            continue;
        run_share(w, threads);
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.lock);   /* the caller may be about to sleep */
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* Start workers until `want` threads exist in all (or creating one fails); returns how
 * many exist.  Called with no job running. */
static int start_workers(int want)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (pool.started < want) {
        pthread_t t;
        pool.born[pool.started] = atomic_load(&pool.ticket);
        if (pthread_create(&t, &attr, worker_main, (void *)(intptr_t)pool.started) != 0)
            break;
        pool.started++;
    }
    pthread_attr_destroy(&attr);
    return pool.started < want ? pool.started : want;
}

/* Until every worker started has run its first product (warm_blas_buffer); called
 * with pool.lock held. */
static void wait_for_warm_workers(void)
{
    while (pool.warm < pool.started - 1)
        pthread_cond_wait(&pool.warmed, &pool.lock);
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
    /* Always, and before any worker's first product: with one engine thread
     * (LOP_THREADS=1, one core) the user asked for one core, and OpenBLAS threads
     * spinning beside busy processes cost a time slice each. */
    openblas_set_num_threads(1);
    pool.nthreads = start_workers((int)want);
    warm_blas_buffer();
    pthread_mutex_lock(&pool.lock);
    wait_for_warm_workers();
    pthread_mutex_unlock(&pool.lock);
}

int lop_parallel_threads(void)
{
    pthread_once(&pool.once, pool_init);
    return pool.nthreads;
}

int lop_set_threads(int n)
{
    if (n < 1 || n > MAX_THREADS)
        return lop_fail(LOP_EINVAL, "lop_set_threads: %d threads, expected 1..%d", n,
                        MAX_THREADS);
    if (inside_job)
        return lop_fail(LOP_ESTATE, "lop_set_threads: called from inside a parallel job");
    pthread_once(&pool.once, pool_init);
    pthread_mutex_lock(&pool.owner);       /* waits for a running job to end */
    pthread_mutex_lock(&pool.lock);
    pool.nthreads = start_workers(n);
    wait_for_warm_workers();
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.owner);
    return LOP_OK;
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
    threads = pool.nthreads;   /* as lop_set_threads left it, now that no job runs */
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    atomic_store_explicit(&pool.pending, threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool.lock);    /* a worker may be between its check and its sleep */
    unsigned long jobs = atomic_load_explicit(&pool.ticket, memory_order_relaxed) / TICKET_SPAN;
    atomic_store_explicit(&pool.ticket, (jobs + 1) * TICKET_SPAN + (unsigned long)threads,
                          memory_order_release);
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.lock);

    inside_job = 1;
    run_share(0, threads);
    inside_job = 0;

    if (!spin_until(job_done, 0)) {
        pthread_mutex_lock(&pool.lock);
        while (!job_done(0))
            pthread_cond_wait(&pool.done, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.owner);
}
