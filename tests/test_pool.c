/*
 * test_pool.c - the engine's thread pool (core/parallel.c) runs every index of every
 * job exactly once: with its workers still polling for the next job or gone to sleep,
 * and with the thread count changed between jobs; and a process may exit as soon as
 * its workers are started.  The Makefile builds it twice: as
 * every test, and with ThreadSanitizer on the pool's own source alone
 * (test_pool_tsan), which reports an unsynchronised access even when the run does not
 * hit the interleaving that makes it go wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"

enum { JOBS = 3000, MOST = 257 };
typedef struct {
    int hits[MOST];
    int bad_worker;
} tally;

static void count_range(void *ctx, long begin, long end, int worker)
{
    tally *t = ctx;
    if (worker < 0 || worker >= lop_parallel_threads())
        t->bad_worker = 1;
    for (long i = begin; i < end; i++)
        t->hits[i]++;   /* shares do not overlap: no two threads touch one index */
}

/* Jobs of 1..MOST indices back to back (the workers still polling), with pauses of
 * 0.3 ms now and then (longer than the poll: they sleep) and thread counts changed in
 * between; each index must be counted exactly once per job. */
static void pool_runs_every_index_once_polling_or_asleep(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 3; threads++) {
        assert_int_equal(lop_set_threads(threads), LOP_OK);
        for (int j = 0; j < JOBS; j++) {
            tally t = {{0}, 0};
            long n = 1 + (j * 37) % MOST;
            lop_parallel_for(n, 1, count_range, &t);
            for (long i = 0; i < MOST; i++)
                if (t.hits[i] != (i < n))
                    fail_msg("threads %d, job %d: index %ld run %d times", threads, j, i,
                             t.hits[i]);
            assert_false(t.bad_worker);
            if (j % 100 == 99) {
                struct timespec pause = {0, 300000};
                nanosleep(&pause, NULL);
            }
        }
    }
    assert_int_equal(lop_set_threads(2), LOP_OK);
}

/* A job on few threads while the other workers wake from sleep, then the thread count
 * raised and a job on all of them, over and over: a woken worker that the first job
 * skipped must not take the raised count for that job's and run a share of it after it
 * ended (which ran indices twice, and hung the pool, before the count became part of
 * the job's ticket).  The tallies are checked once all jobs are over, so that a share
 * run late still shows; alarm turns a hung pool into a failure. */
enum { ROUNDS = 3000, WIDE = 64 };
static void count_wide(void *ctx, long begin, long end, int worker)
{
    int *hits = ctx;
    for (long i = begin; i < end; i++)
        hits[i]++;
}

static void raised_thread_count_never_reruns_an_ended_job(void **state)
{
    (void)state;
    int *hits = calloc((size_t)2 * ROUNDS * WIDE, sizeof *hits);
    assert_non_null(hits);
    alarm(120);
    for (int r = 0; r < ROUNDS; r++) {
        struct timespec pause = {0, 150000};   /* longer than the poll: workers sleep */
        nanosleep(&pause, NULL);
        assert_int_equal(lop_set_threads(2), LOP_OK);
        lop_parallel_for(WIDE, 1, count_wide, hits + (size_t)2 * r * WIDE);
        assert_int_equal(lop_set_threads(8), LOP_OK);
        lop_parallel_for(WIDE, 1, count_wide, hits + (size_t)(2 * r + 1) * WIDE);
    }
    assert_int_equal(lop_set_threads(2), LOP_OK);
    struct timespec settle = {0, 20000000};
    nanosleep(&settle, NULL);
    alarm(0);
    for (size_t i = 0; i < (size_t)2 * ROUNDS * WIDE; i++)
        if (hits[i] != 1)
            fail_msg("job %zu: index %zu run %d times", i / WIDE, i % WIDE, hits[i]);
    free(hits);
}

/* Child processes start the pool (three workers) and exit at once, running
 * OpenBLAS's exit-time cleanup; each must exit normally.  When the workers' first
 * product could still be running then, a quarter of such processes crashed.  Runs
 * before any other test, so that this process has no workers of its own to fork. */
static void exiting_right_after_starting_workers_is_clean(void **state)
{
    (void)state;
    enum { CHILDREN = 30 };
    for (int i = 0; i < CHILDREN; i++) {
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            setenv("LOP_THREADS", "4", 1);
            exit(lop_parallel_threads() == 4 ? 0 : 3);
        }
        int status;
        assert_int_equal(waitpid(child, &status, 0), child);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("child %d: %s %d", i, WIFEXITED(status) ? "exit status" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
}

static void thread_counts_out_of_range_are_refused(void **state)
{
    (void)state;
    assert_int_equal(lop_set_threads(0), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "lop_set_threads"));
    assert_int_equal(lop_set_threads(65), LOP_EINVAL);
    assert_int_equal(lop_set_threads(2), LOP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exiting_right_after_starting_workers_is_clean),
        cmocka_unit_test(pool_runs_every_index_once_polling_or_asleep),
        cmocka_unit_test(raised_thread_count_never_reruns_an_ended_job),
        cmocka_unit_test(thread_counts_out_of_range_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
