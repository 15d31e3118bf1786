/*
 * test_loader.c - streamed data sets and the loader every loop reads batches from.  A
 * synthetic lop_source defined here makes item i's pixels a known function of i (and
 * of the seed it is read with, when asked), fails on chosen items, records the seed
 * of every read and can sleep in each read, so the checks compare against values
 * computed here: batches in order with their labels, the last partial batch, the
 * same batches whatever the number of workers, one seed per item and per epoch,
 * skip_bad compaction and counting, errors that name the item, closing early with
 * slow workers (promptly, without spinning, without leaks - run it under ASan too),
 * subsets sharing the source, the input-shape messages, and training, evaluation,
 * sampling, Hessian and head calibration giving bit-identical results on a streamed
 * set and on the same images in memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lopper.h"
#include "graph_build.h"

enum { C = 2, H = 3, W = 4, ITEM = C * H * W, CLASSES = 5 };

/* ---- the synthetic source --------------------------------------------------------- */

typedef struct synth {
    lop_source s;           /* first: the engine sees only this */
    int n;
    unsigned char *bad;     /* per item: read fails */
    long sleep_ns;          /* per read */
    int use_seed;           /* the image depends on the seed it is read with */
    long reads;             /* every read, counted atomically */
    uint64_t *seen;         /* the seed each item was last read with */
    int *destroyed;         /* set by destroy (may be NULL) */
} synth;

/* Pixel p of item i read with seed: exact in float for i < 512. */
static float pixel(int item, int p, uint64_t seed, int use_seed)
{
    float mark = use_seed && seed ? (float)(seed % 16 + 1) / 4096.0f : 0.0f;
    return (float)item + (float)p / 256.0f + mark;
}

static int synth_read(lop_source *src, int item, uint64_t seed, float *out, char *why,
                      size_t whylen)
{
    synth *s = (synth *)src;
    __atomic_fetch_add(&s->reads, 1, __ATOMIC_RELAXED);
    if (s->sleep_ns) {
        struct timespec t = {0, s->sleep_ns};
        nanosleep(&t, NULL);
    }
    if (item < 0 || item >= s->n) {
        snprintf(why, whylen, "synthetic item %d does not exist", item);
        return LOP_EINVAL;
    }
    s->seen[item] = seed;
    if (s->bad[item]) {
        snprintf(why, whylen, "synthetic item %d is unreadable", item);
        return LOP_EIO;
    }
    for (int p = 0; p < ITEM; p++)
        out[p] = pixel(item, p, seed, s->use_seed);
    return LOP_OK;
}

static void synth_destroy(lop_source *src)
{
    synth *s = (synth *)src;
    if (s->destroyed)
        *s->destroyed = 1;
    free(s->bad);
    free(s->seen);
    free(s);
}

static int label_of(int item)
{
    return item * 7 % CLASSES;
}

/* A streamed data set of n synthetic items. */
static lop_dataset streamed(int n, int workers, int skip_bad)
{
    synth *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->n = n;
    s->bad = calloc((size_t)n, 1);
    s->seen = calloc((size_t)n, sizeof *s->seen);
    assert_non_null(s->bad);
    assert_non_null(s->seen);
    s->s = (lop_source){.c = C, .h = H, .w = W, .workers = workers, .skip_bad = skip_bad,
                        .read = synth_read, .destroy = synth_destroy, .refs = 1,
                        .kind = "synthetic source"};
    int *labels = malloc((size_t)n * sizeof *labels);
    assert_non_null(labels);
    for (int i = 0; i < n; i++)
        labels[i] = label_of(i);
    return (lop_dataset){.labels = labels, .n = n, .classes = CLASSES, .source = &s->s};
}

static synth *synth_of(const lop_dataset *d)
{
    return (synth *)d->source;
}

static int *identity(int n)
{
    int *order = malloc((size_t)n * sizeof *order);
    assert_non_null(order);
    for (int i = 0; i < n; i++)
        order[i] = i;
    return order;
}

/* Every batch of a loader over order[0..n): the images one after another into out, the
 * labels into labels, each batch's size into sizes (room for n); returns the number of
 * batches. */
static int drain(const lop_dataset *d, const int *order, int n, int batch,
                 const lop_augment *aug, lop_rng *rng, float *out, int *labels, int *sizes)
{
    lop_loader *l;
    assert_int_equal(lop_loader_open(d, order, n, batch, aug, rng, &l), LOP_OK);
    lop_tensor *x = NULL;
    int count, nb = 0, total = 0;
    while (1) {
        int st = lop_loader_next(l, &x, labels + total, &count);
        if (st != LOP_OK)
            fail_msg("lop_loader_next: %s", lop_errmsg());
        if (count == 0)
            break;
        assert_int_equal(x->shape[0], count);
        assert_int_equal(x->shape[1], C);
        assert_int_equal(x->shape[2], H);
        assert_int_equal(x->shape[3], W);
        memcpy(out + (size_t)total * ITEM, x->data, (size_t)count * ITEM * sizeof(float));
        total += count;
        sizes[nb++] = count;
    }
    assert_int_equal(lop_loader_done(l), n);
    assert_int_equal(lop_loader_next(l, &x, NULL, &count), LOP_OK);   /* still the end */
    assert_int_equal(count, 0);
    lop_tensor_release(x);
    lop_loader_close(l);
    return nb;
}

/* ---- order, labels, batches ----------------------------------------------------- */

static void test_batches_come_in_order_with_their_labels(void **state)
{
    lop_dataset d = streamed(10, 2, 0);
    int order[10] = {7, 2, 9, 0, 4, 4, 1, 8, 3, 6};   /* a repeat is allowed */
    float out[10 * ITEM];
    int labels[10], sizes[10];
    int nb = drain(&d, order, 10, 4, NULL, NULL, out, labels, sizes);
    assert_int_equal(nb, 3);
    assert_int_equal(sizes[0], 4);
    assert_int_equal(sizes[1], 4);
    assert_int_equal(sizes[2], 2);   /* the last batch is the rest */
    for (int k = 0; k < 10; k++) {
        assert_int_equal(labels[k], label_of(order[k]));
        for (int p = 0; p < ITEM; p++)
            assert_true(out[k * ITEM + p] == pixel(order[k], p, 0, 1));
        assert_true(synth_of(&d)->seen[order[k]] == 0);   /* the evaluation transform */
    }
    /* A batch larger than the set, and a prefix of the order. */
    assert_int_equal(drain(&d, order, 3, 50, NULL, NULL, out, labels, sizes), 1);
    assert_int_equal(sizes[0], 3);
    assert_true(out[2 * ITEM] == pixel(9, 0, 0, 1));
    lop_dataset_free(&d);
}

/* Whether item out is src shifted by some (dy, dx) with |dy|, |dx| <= pad and maybe
 * mirrored, zero outside (a naive reading of the documented transform). */
static int is_crop_flip(const float *out, const float *src, int pad, int *identity_seen)
{
    for (int dy = -pad; dy <= pad; dy++)
        for (int dx = -pad; dx <= pad; dx++)
            for (int m = 0; m < 2; m++) {
                int same = 1;
                for (int c = 0; c < C && same; c++)
                    for (int y = 0; y < H && same; y++)
                        for (int x = 0; x < W && same; x++) {
                            int sy = y + dy, sx = (m ? W - 1 - x : x) + dx;
                            float want = sy >= 0 && sy < H && sx >= 0 && sx < W
                                             ? src[(c * H + sy) * W + sx] : 0.0f;
                            same = out[(c * H + y) * W + x] == want;
                        }
                if (same) {
                    if (!dy && !dx && !m)
                        *identity_seen = 1;
                    return 1;
                }
            }
    return 0;
}

static void test_results_do_not_depend_on_the_worker_count(void **state)
{
    enum { N = 37, B = 5 };
    lop_augment aug = {.crop_pad = 1, .flip = 1};
    float first[N * ITEM], out[N * ITEM];
    int first_labels[N], labels[N], sizes[N];
    uint64_t first_seen[N];
    int order[N];
    for (int i = 0; i < N; i++)
        order[i] = (i * 11) % N;
    const int workers[] = {1, 2, 4};
    for (int w = 0; w < 3; w++) {
        lop_dataset d = streamed(N, workers[w], 0);
        synth_of(&d)->use_seed = 1;
        synth_of(&d)->sleep_ns = w == 2 ? 200000 : 0;   /* 0.2 ms: workers overtake */
        lop_rng rng;
        lop_rng_seed(&rng, 5);
        int nb = drain(&d, order, N, B, &aug, &rng, out, labels, sizes);
        assert_int_equal(nb, (N + B - 1) / B);
        if (w == 0) {
            memcpy(first, out, sizeof out);
            memcpy(first_labels, labels, sizeof labels);
            memcpy(first_seen, synth_of(&d)->seen, sizeof first_seen);
        } else {
            assert_memory_equal(first, out, sizeof out);
            assert_memory_equal(first_labels, labels, sizeof labels);
            assert_memory_equal(first_seen, synth_of(&d)->seen, sizeof first_seen);
        }
        /* lop_dataset_batch reads a streamed set the same way, on this thread */
        lop_rng again;
        lop_rng_seed(&again, 5);
        lop_tensor *x = NULL;
        int blabels[N];
        assert_int_equal(lop_dataset_batch(&d, order, N, &aug, &again, &x, blabels), LOP_OK);
        assert_memory_equal(x->data, first, sizeof first);
        assert_memory_equal(blabels, first_labels, sizeof blabels);
        assert_memory_equal(&again, &rng, sizeof rng);   /* the same draws */
        lop_tensor_release(x);
        lop_dataset_free(&d);
    }
    /* Each item is a crop / flip of the source's image for its seed, and some are not
     * the plain image. */
    int plain = 0, moved = 0;
    for (int k = 0; k < N; k++) {
        float src[ITEM];
        for (int p = 0; p < ITEM; p++)
            src[p] = pixel(order[k], p, first_seen[order[k]], 1);
        int was_plain = 0;
        if (!is_crop_flip(first + k * ITEM, src, 1, &was_plain))
            fail_msg("item %d is no crop or flip of its image", k);
        plain += was_plain;
        moved += !was_plain;
        assert_int_equal(first_labels[k], label_of(order[k]));
    }
    assert_true(plain > 0 && moved > 0);
}

static void test_each_item_and_epoch_gets_its_own_seed(void **state)
{
    enum { N = 30 };
    lop_dataset d = streamed(N, 3, 0);
    int *order = identity(N);
    float out[N * ITEM];
    int labels[N], sizes[N];
    uint64_t epoch1[N];
    lop_rng rng;
    lop_rng_seed(&rng, 1);
    lop_rng before = rng;
    drain(&d, order, N, 7, NULL, &rng, out, labels, sizes);
    /* N seeds were drawn from rng, in order: the same stream drawn here */
    for (int i = 0; i < N; i++) {
        uint64_t want = lop_rng_u64(&before);
        assert_true(synth_of(&d)->seen[i] == (want ? want : 1));
    }
    assert_memory_equal(&before, &rng, sizeof rng);
    memcpy(epoch1, synth_of(&d)->seen, sizeof epoch1);
    for (int i = 0; i < N; i++) {
        assert_true(epoch1[i] != 0);
        for (int j = 0; j < i; j++)
            assert_true(epoch1[i] != epoch1[j]);
    }
    lop_rng_seed(&rng, 2);   /* another epoch's stream */
    drain(&d, order, N, 7, NULL, &rng, out, labels, sizes);
    for (int i = 0; i < N; i++)
        assert_true(synth_of(&d)->seen[i] != epoch1[i]);
    free(order);
    lop_dataset_free(&d);
}

/* ---- bad items ------------------------------------------------------------------- */

static void test_skip_bad_compacts_batches_and_counts(void **state)
{
    enum { N = 14 };
    lop_dataset d = streamed(N, 2, 1);
    synth *s = synth_of(&d);
    /* batch 4: {0 1 2 3} loses 1, {4 5 6 7} is all bad, {8 9 10 11} loses 11, {12 13} */
    s->bad[1] = s->bad[4] = s->bad[5] = s->bad[6] = s->bad[7] = s->bad[11] = 1;
    int *order = identity(N);
    lop_loader *l;
    assert_int_equal(lop_loader_open(&d, order, N, 4, NULL, NULL, &l), LOP_OK);
    lop_tensor *x = NULL;
    int labels[4], count;
    const int want[][4] = {{0, 2, 3, -1}, {8, 9, 10, -1}, {12, 13, -1, -1}};
    const int done[] = {4, 12, 14};
    for (int b = 0; b < 3; b++) {
        assert_int_equal(lop_loader_next(l, &x, labels, &count), LOP_OK);
        int k = 0;
        for (; k < 4 && want[b][k] >= 0; k++) {
            assert_int_equal(labels[k], label_of(want[b][k]));
            assert_true(x->data[k * ITEM + 5] == pixel(want[b][k], 5, 0, 0));
        }
        assert_int_equal(count, k);
        assert_int_equal(x->shape[0], k);
        assert_int_equal(lop_loader_done(l), done[b]);   /* the bad batch passed over */
    }
    assert_int_equal(lop_loader_next(l, &x, labels, &count), LOP_OK);
    assert_int_equal(count, 0);
    lop_loader_close(l);
    assert_int_equal(s->s.skipped, 6);
    assert_string_equal(s->s.first_skipped, "synthetic item 1 is unreadable");
    /* A subset skips through the same source, and the count goes on. */
    lop_dataset sub;
    assert_int_equal(lop_dataset_subset(&d, 4, 3, &sub), LOP_OK);
    float out[3 * ITEM];
    int sizes[3], sublabels[3];
    assert_int_equal(drain(&sub, order, 3, 2, NULL, NULL, out, sublabels, sizes), 0);
    assert_int_equal(s->s.skipped, 9);
    assert_string_equal(s->s.first_skipped, "synthetic item 1 is unreadable");
    /* lop_dataset_batch has a fixed count: a bad item fails it even with skip_bad */
    assert_int_equal(lop_dataset_batch(&d, order, 3, NULL, NULL, &x, NULL), LOP_EIO);
    assert_string_equal(lop_errmsg(), "synthetic item 1 is unreadable");
    lop_tensor_release(x);
    lop_dataset_free(&sub);
    free(order);
    lop_dataset_free(&d);
}

static void test_a_bad_item_fails_the_batch_with_its_message(void **state)
{
    enum { N = 40 };
    lop_dataset d = streamed(N, 4, 0);
    synth_of(&d)->bad[9] = synth_of(&d)->bad[22] = 1;
    int *order = identity(N);
    lop_loader *l;
    assert_int_equal(lop_loader_open(&d, order, N, 8, NULL, NULL, &l), LOP_OK);
    lop_tensor *x = NULL;
    int count;
    assert_int_equal(lop_loader_next(l, &x, NULL, &count), LOP_OK);
    assert_int_equal(count, 8);
    assert_int_equal(lop_loader_next(l, &x, NULL, &count), LOP_EIO);
    assert_string_equal(lop_errmsg(), "synthetic item 9 is unreadable");
    assert_int_equal(count, 0);
    assert_int_equal(lop_loader_done(l), 8);
    lop_dataset_subset(NULL, 0, 0, NULL);   /* another message in between */
    assert_int_equal(lop_loader_next(l, &x, NULL, &count), LOP_EIO);   /* it stays failed */
    assert_string_equal(lop_errmsg(), "synthetic item 9 is unreadable");
    lop_loader_close(l);
    assert_int_equal(d.source->skipped, 0);
    lop_tensor_release(x);
    free(order);
    lop_dataset_free(&d);
}

/* ---- threads: ahead of the caller, bounded, stopped promptly ------------------- */

static double cpu_seconds(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

/* Waits (2 s at most) until the process spends under 5 ms of processor time in 50 ms.
 * OpenBLAS's own thread polls with sched_yield for about 2^28 cycles after the library
 * starts (0.10-0.12 s here), and the tests that count processor time run that soon:
 * counted, it failed them now and then. */
static void wait_until_quiet(void)
{
    struct timespec pause = {0, 50000000};
    for (int i = 0; i < 40; i++) {
        double before = cpu_seconds();
        nanosleep(&pause, NULL);
        if (cpu_seconds() - before < 0.005)
            return;
    }
}

static void test_workers_run_ahead_in_a_bounded_ring_and_stop_promptly(void **state)
{
    enum { N = 400, B = 8 };
    int destroyed = 0;
    lop_dataset d = streamed(N, 2, 0);
    synth *s = synth_of(&d);
    s->destroyed = &destroyed;
    s->sleep_ns = 5000000;   /* 5 ms a read: the whole pass would take a second */
    int *order = identity(N);
    lop_loader *l;
    wait_until_quiet();
    assert_int_equal(lop_loader_open(&d, order, N, B, NULL, NULL, &l), LOP_OK);
    assert_int_equal(d.source->refs, 2);   /* the loader holds one */
    struct timespec pause = {0, 150000000};
    double cpu = cpu_seconds();
    nanosleep(&pause, NULL);
    long ahead = __atomic_load_n(&s->reads, __ATOMIC_RELAXED);
    /* decoded before anything was asked, but no more than the ring holds (three
     * batches) plus what the two workers had in hand */
    assert_true(ahead >= B);
    assert_true(ahead <= 3 * B + 2);
    lop_tensor *x = NULL;
    int count;
    assert_int_equal(lop_loader_next(l, &x, NULL, &count), LOP_OK);
    assert_int_equal(count, B);
    nanosleep(&pause, NULL);
    assert_true(__atomic_load_n(&s->reads, __ATOMIC_RELAXED) <= 4 * B + 2);
    /* waiting cost (next to) no processor time: nobody spins */
    double spent = cpu_seconds() - cpu;
    if (spent >= 0.1)
        fail_msg("waiting 0.3 s took %.3f s of processor time", spent);
    lop_loader_close(l);   /* mid-epoch */
    assert_int_equal(d.source->refs, 1);

    /* Closing while the workers are busy: back after the reads in hand, without
     * filling the ring (two more batches of 50: a quarter of a second). */
    long before = __atomic_load_n(&s->reads, __ATOMIC_RELAXED);
    assert_int_equal(lop_loader_open(&d, order, N, 50, NULL, NULL, &l), LOP_OK);
    assert_int_equal(lop_loader_next(l, &x, NULL, &count), LOP_OK);
    assert_int_equal(count, 50);
    double t = lop_seconds();
    lop_loader_close(l);
    double took = lop_seconds() - t;
    if (took > 0.1)
        fail_msg("closing took %.3f s", took);
    assert_true(__atomic_load_n(&s->reads, __ATOMIC_RELAXED) - before < 60);
    assert_int_equal(d.source->refs, 1);
    lop_tensor_release(x);
    free(order);
    lop_dataset_free(&d);
    assert_int_equal(destroyed, 1);
}

static void test_the_caller_waits_without_spinning(void **state)
{
    enum { N = 24 };
    lop_dataset d = streamed(N, 1, 0);
    synth_of(&d)->sleep_ns = 15000000;   /* 15 ms a read, 0.36 s in all */
    int *order = identity(N);
    float out[N * ITEM];
    int labels[N], sizes[N];
    wait_until_quiet();
    double cpu = cpu_seconds(), t = lop_seconds();
    assert_int_equal(drain(&d, order, N, 6, NULL, NULL, out, labels, sizes), 4);
    assert_true(lop_seconds() - t > 0.3);
    double spent = cpu_seconds() - cpu;
    if (spent >= 0.1)
        fail_msg("waiting 0.36 s took %.3f s of processor time", spent);
    free(order);
    lop_dataset_free(&d);
}

static void test_open_fails_cleanly_on_bad_requests_and_allocation_failures(void **state)
{
    lop_dataset d = streamed(6, 2, 0);
    int order[3] = {0, 5, 2}, bad[2] = {1, 6};
    lop_loader *l = (lop_loader *)(uintptr_t)0x10;
    lop_augment crop = {.crop_pad = 4}, flip = {.flip = 1};
    lop_rng rng;
    lop_rng_seed(&rng, 1);
    assert_int_equal(lop_loader_open(&d, bad, 2, 2, NULL, NULL, &l), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "item 6"));
    assert_int_equal(lop_loader_open(&d, order, 3, 0, NULL, NULL, &l), LOP_EINVAL);
    assert_int_equal(lop_loader_open(&d, order, 3, 2, &crop, &rng, &l), LOP_EINVAL);
    assert_int_equal(lop_loader_open(&d, order, 3, 2, &flip, NULL, &l), LOP_EINVAL);
    assert_int_equal(lop_loader_open(NULL, order, 3, 2, NULL, NULL, &l), LOP_EINVAL);
    assert_true(l == (lop_loader *)(uintptr_t)0x10);   /* untouched */
    lop_loader_close(NULL);
    /* every allocation of an open failing in turn: a clean failure each time */
    lop_tensor *t = lop_tensor_new(4, (int[]){6, C, H, W});
    int labels[6] = {0, 1, 2, 3, 4, 0};
    lop_dataset mem;
    assert_int_equal(lop_dataset_from_tensor(t, labels, 0, &mem), LOP_OK);
    const lop_dataset *sets[2] = {&d, &mem};
    for (int k = 0; k < 2; k++) {
        int st = LOP_ENOMEM;
        for (long n = 1; st == LOP_ENOMEM; n++) {
            lop_rng r = rng;
            lop_debug_fail_alloc(n);
            st = lop_loader_open(sets[k], order, 3, 2, &flip, &r, &l);
            lop_debug_fail_alloc(0);
            if (st == LOP_ENOMEM)
                assert_memory_equal(&r, &rng, sizeof r);   /* nothing drawn */
        }
        assert_int_equal(st, LOP_OK);
        lop_loader_close(l);
    }
    assert_int_equal(d.source->refs, 1);
    lop_tensor_release(t);
    lop_dataset_free(&mem);
    lop_dataset_free(&d);
}

/* ---- data sets: subsets, in-memory loaders, shapes ---------------------------------- */

static void test_subsets_of_a_streamed_set_share_its_source(void **state)
{
    lop_dataset d = streamed(12, 2, 0);
    lop_dataset sub, subsub;
    assert_int_equal(lop_dataset_subset(&d, 3, 6, &sub), LOP_OK);   /* items 3..8 */
    assert_int_equal(lop_dataset_subset(&sub, 2, 3, &subsub), LOP_OK);   /* items 5..7 */
    assert_ptr_equal(sub.source, d.source);
    assert_null(sub.images);
    assert_int_equal(d.source->refs, 3);
    assert_int_equal(subsub.n, 3);
    assert_int_equal(subsub.classes, CLASSES);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(subsub.source_item[i], 5 + i);
        assert_int_equal(subsub.labels[i], label_of(5 + i));
    }
    int shape[3];
    lop_dataset_shape(&subsub, shape);
    assert_int_equal(shape[0], C);
    assert_int_equal(shape[1], H);
    assert_int_equal(shape[2], W);
    int order[2] = {2, 0};
    float out[2 * ITEM];
    int labels[2], sizes[2];
    drain(&subsub, order, 2, 2, NULL, NULL, out, labels, sizes);
    assert_true(out[3] == pixel(7, 3, 0, 0));
    assert_true(out[ITEM + 3] == pixel(5, 3, 0, 0));
    assert_int_equal(labels[0], label_of(7));
    lop_tensor *x = NULL;
    assert_int_equal(lop_dataset_batch(&sub, order, 2, NULL, NULL, &x, labels), LOP_OK);
    assert_true(x->data[0] == pixel(5, 0, 0, 0));
    assert_int_equal(labels[1], label_of(3));
    lop_tensor_release(x);
    /* the parent may go first: the source lives while a subset holds it */
    lop_dataset_free(&d);
    lop_dataset_free(&sub);
    assert_int_equal(subsub.source->refs, 1);
    drain(&subsub, order, 2, 1, NULL, NULL, out, labels, sizes);
    assert_true(out[0] == pixel(7, 0, 0, 0));
    lop_dataset_free(&subsub);
    assert_null(subsub.source);
}

static void test_padding_and_normalising_refuse_streamed_sets(void **state)
{
    lop_dataset d = streamed(4, 1, 0);
    float m = 0, s = 1;
    assert_int_equal(lop_dataset_pad(&d, 8), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "streamed from synthetic source"));
    assert_int_equal(lop_dataset_normalize(&d, &m, &s, 1), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "options of the function that opened it"));
    lop_dataset_free(&d);
}

static void test_in_memory_loaders_gather_as_lop_dataset_batch_does(void **state)
{
    enum { N = 23, B = 6 };
    int shape[4] = {N, C, H, W}, labels[N], order[N];
    lop_tensor *t = lop_tensor_new(4, shape);
    for (size_t i = 0; i < t->numel; i++)
        t->data[i] = (float)((i * 37) % 101) / 7.0f;
    for (int i = 0; i < N; i++) {
        labels[i] = label_of(i);
        order[i] = (i * 5) % N;
    }
    lop_dataset d;
    assert_int_equal(lop_dataset_from_tensor(t, labels, 0, &d), LOP_OK);
    assert_int_equal(d.classes, CLASSES);
    lop_augment aug = {.crop_pad = 2, .flip = 1};
    lop_rng r1, r2;
    lop_rng_seed(&r1, 9);
    r2 = r1;
    lop_loader *l;
    assert_int_equal(lop_loader_open(&d, order, N, B, &aug, &r1, &l), LOP_OK);
    lop_tensor *x = NULL, *y = NULL;
    int lx[B], ly[B], count;
    for (int start = 0; start < N; start += B) {
        int size = N - start < B ? N - start : B;
        assert_int_equal(lop_loader_next(l, &x, lx, &count), LOP_OK);
        assert_int_equal(count, size);
        assert_int_equal(lop_dataset_batch(&d, order + start, size, &aug, &r2, &y, ly), LOP_OK);
        assert_memory_equal(x->data, y->data, (size_t)size * ITEM * sizeof(float));
        assert_memory_equal(lx, ly, (size_t)size * sizeof(int));
        assert_memory_equal(&r1, &r2, sizeof r1);   /* drawn batch by batch, as there */
    }
    assert_int_equal(lop_loader_next(l, &x, lx, &count), LOP_OK);
    assert_int_equal(count, 0);
    lop_loader_close(l);
    /* the set holds a copy */
    t->data[0] = 1000;
    assert_true(d.images->data[0] != 1000);
    lop_tensor_release(x);
    lop_tensor_release(y);
    lop_tensor_release(t);
    lop_dataset_free(&d);
}

static void test_from_tensor_validates(void **state)
{
    lop_tensor *t = lop_tensor_new(4, (int[]){2, 1, 2, 2});
    lop_tensor *flat = lop_tensor_new(2, (int[]){2, 4});
    int labels[2] = {0, 3}, neg[2] = {0, -1};
    lop_dataset d = {0};
    assert_int_equal(lop_dataset_from_tensor(flat, labels, 0, &d), LOP_ESHAPE);
    assert_int_equal(lop_dataset_from_tensor(t, neg, 0, &d), LOP_EINVAL);
    assert_string_equal(lop_errmsg(), "label -1 of item 2 is outside 0..2147483646");
    assert_int_equal(lop_dataset_from_tensor(t, labels, 3, &d), LOP_EINVAL);
    assert_string_equal(lop_errmsg(), "label 3 of item 2 is outside 0..2");
    t->data[6] = -INFINITY;
    assert_int_equal(lop_dataset_from_tensor(t, labels, 0, &d), LOP_EINVAL);
    assert_string_equal(lop_errmsg(), "image 2 holds -inf, not a finite number");
    assert_null(d.images);
    t->data[6] = 2;
    assert_int_equal(lop_dataset_from_tensor(t, labels, 7, &d), LOP_OK);
    assert_int_equal(d.classes, 7);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.labels[1], 3);
    lop_dataset_free(&d);
    lop_tensor_release(t);
    lop_tensor_release(flat);
}

static void test_input_shape_messages_name_both_shapes(void **state)
{
    lop_dataset d = streamed(4, 1, 0);
    int x;
    lop_graph *g = new_graph(3, 3, 8, 8, &x);
    assert_int_equal(lop_dataset_check_input(&d, g, "train"), LOP_ESHAPE);
    assert_string_equal(lop_errmsg(), "train: the images are 2x3x4, the network takes 3x8x8");
    add1(g, LOP_GLOBAL_AVGPOOL, "gap", x, NULL);
    lop_eval e;
    assert_int_equal(lop_evaluate(g, &d, 2, NULL, NULL, &e), LOP_ESHAPE);
    assert_string_equal(lop_errmsg(), "evaluate: the images are 2x3x4, the network takes 3x8x8");
    lop_graph_free(g);
    g = new_graph(1, 10, 0, 0, &x);
    assert_int_equal(lop_dataset_check_input(&d, g, "sample"), LOP_ESHAPE);
    assert_string_equal(lop_errmsg(), "sample: the images are 2x3x4, the network takes 10");
    lop_graph_free(g);
    g = new_graph(3, C, H, W, &x);
    assert_int_equal(lop_dataset_check_input(&d, g, "train"), LOP_OK);
    lop_graph_free(g);
    lop_dataset_free(&d);
}

/* ---- the loops: streamed and in-memory sets give the same results ------------------ */

/* input C x H x W -> conv "c" (4) -> batchnorm -> relu -> global average -> linear 5 */
static lop_graph *small_net(int *conv_id)
{
    int x;
    lop_graph *g = new_graph(3, C, H, W, &x);
    *conv_id = conv(g, "c", x, 4, 1);
    int id = add1(g, LOP_BATCHNORM, "bn", *conv_id, NULL);
    id = add1(g, LOP_RELU, "r", id, NULL);
    id = add1(g, LOP_GLOBAL_AVGPOOL, "gap", id, NULL);
    lop_attrs a = lop_attrs_default();
    a.out_channels = CLASSES;
    add1(g, LOP_LINEAR, "fc", id, &a);
    return g;
}

/* The streamed set's images in memory (evaluation transform). */
static lop_dataset in_memory_copy(const lop_dataset *d)
{
    int *order = identity(d->n);
    lop_tensor *x = NULL;
    assert_int_equal(lop_dataset_batch(d, order, d->n, NULL, NULL, &x, NULL), LOP_OK);
    lop_dataset m;
    assert_int_equal(lop_dataset_from_tensor(x, d->labels, d->classes, &m), LOP_OK);
    lop_tensor_release(x);
    free(order);
    return m;
}

static void assert_same_params(const lop_graph *a, const lop_graph *b)
{
    assert_int_equal(lop_graph_size(a), lop_graph_size(b));
    for (int i = 0; i < lop_graph_size(a); i++)
        for (int p = 0; p < lop_node_nparams(a, i); p++) {
            const lop_tensor *ta = lop_node_param(a, i, p), *tb = lop_node_param(b, i, p);
            assert_memory_equal(ta->data, tb->data, ta->numel * sizeof(float));
        }
}

static void test_loops_give_the_same_results_streamed_and_in_memory(void **state)
{
    lop_dataset d = streamed(33, 3, 0);   /* 33 = 4 batches of 8 and one left out */
    lop_dataset m = in_memory_copy(&d);
    int c1, c2;
    lop_graph *g1 = small_net(&c1), *g2 = small_net(&c2);
    lop_train_opts o = lop_train_opts_default();
    o.epochs = 2;
    o.batch = 8;
    lop_eval e1, e2;
    assert_int_equal(lop_train(g1, &d, &o, &e1), LOP_OK);
    assert_int_equal(lop_train(g2, &m, &o, &e2), LOP_OK);
    assert_memory_equal(&e1, &e2, sizeof e1);
    assert_int_equal(e1.n, 32);
    assert_same_params(g1, g2);
    assert_int_equal(lop_evaluate(g1, &d, 7, NULL, NULL, &e1), LOP_OK);
    assert_int_equal(lop_evaluate(g2, &m, 7, NULL, NULL, &e2), LOP_OK);
    assert_memory_equal(&e1, &e2, sizeof e1);
    assert_int_equal(e1.n, 33);

    lop_sample_opts so = lop_sample_opts_default();
    so.images = 20;
    so.batch = 6;
    lop_stats s1, s2;
    assert_int_equal(lop_sample(g1, &d, c1, &so, NULL, &s1), LOP_OK);
    assert_int_equal(lop_sample(g2, &m, c2, &so, NULL, &s2), LOP_OK);
    assert_int_equal(s1.m, 200);
    assert_int_equal(s1.m, s2.m);
    size_t dd = (size_t)s1.c * s1.kh * s1.kw;
    assert_memory_equal(s1.P, s2.P, dd * dd * sizeof(double));
    assert_memory_equal(s1.C, s2.C, dd * s1.n * sizeof(double));
    lop_stats_free(&s1);
    lop_stats_free(&s2);

    lop_hessian_opts ho = lop_hessian_opts_default();
    ho.images = 17;   /* batches of 8, 8 and one left out */
    ho.batch = 8;
    ho.max_iter = 4;
    double l1, l2;
    int it1, it2;
    assert_int_equal(lop_hessian_top(g1, &d, c1, &ho, &l1, NULL, &it1), LOP_OK);
    assert_int_equal(lop_hessian_top(g2, &m, c2, &ho, &l2, NULL, &it2), LOP_OK);
    assert_true(l1 == l2);
    assert_int_equal(it1, it2);
    assert_same_params(g1, g2);   /* the network is left as it was */
    lop_graph_free(g1);
    lop_graph_free(g2);
    lop_dataset_free(&m);
    lop_dataset_free(&d);
}

/* input -> conv "c" (4) -> relu -> flatten -> linear 6 -> relu -> linear 5 */
static lop_graph *fc_head_net(void)
{
    int x;
    lop_graph *g = new_graph(3, C, H, W, &x);
    int id = add1(g, LOP_RELU, "r", conv(g, "c", x, 4, 1), NULL);
    id = add1(g, LOP_FLATTEN, "flat", id, NULL);
    lop_attrs a = lop_attrs_default();
    a.out_channels = 6;
    id = add1(g, LOP_RELU, "r2", add1(g, LOP_LINEAR, "fc1", id, &a), NULL);
    a.out_channels = CLASSES;
    add1(g, LOP_LINEAR, "fc2", id, &a);
    return g;
}

static void test_head_calibration_reads_streamed_sets(void **state)
{
    lop_dataset d = streamed(20, 2, 0);
    lop_dataset m = in_memory_copy(&d);
    lop_graph *g1 = fc_head_net(), *g2 = fc_head_net();
    assert_int_equal(lop_graph_replace_head_gap(g1, &d, 19), LOP_OK);
    assert_int_equal(lop_graph_replace_head_gap(g2, &m, 19), LOP_OK);
    assert_same_params(g1, g2);
    lop_graph_free(g1);
    lop_graph_free(g2);
    lop_dataset_free(&m);
    lop_dataset_free(&d);
}

/* A progress callback recording the last report and stopping after `stop_after`. */
typedef struct watch { long last_done, total; int calls, stop_after; } watch;

static int watch_progress(void *ud, const lop_progress *p)
{
    watch *w = ud;
    w->last_done = p->done;
    w->total = p->total;
    return ++w->calls == w->stop_after;
}

static void test_training_skips_bad_images_and_stops_early(void **state)
{
    lop_dataset d = streamed(36, 2, 1);
    synth *s = synth_of(&d);
    s->bad[3] = s->bad[17] = 1;
    s->bad[32] = s->bad[33] = s->bad[34] = s->bad[35] = 1;   /* a last batch all bad */
    int c;
    lop_graph *g = small_net(&c);
    lop_train_opts o = lop_train_opts_default();
    o.epochs = 2;
    o.batch = 8;
    o.augment.flip = 1;
    watch w = {0};
    o.progress = watch_progress;
    o.progress_ud = &w;
    lop_eval e;
    assert_int_equal(lop_train(g, &d, &o, &e), LOP_OK);
    assert_int_equal(s->s.skipped, 12);
    assert_int_equal(e.n, 30);
    assert_int_equal(w.last_done, 36);   /* the epoch's end is reported */
    assert_int_equal(w.total, 36);
    lop_eval ev;
    assert_int_equal(lop_evaluate(g, &d, 10, NULL, NULL, &ev), LOP_OK);
    assert_int_equal(ev.n, 30);
    assert_int_equal(s->s.skipped, 18);

    /* a slow source, the callback stopping after the first batch: back at once */
    lop_dataset slow = streamed(300, 2, 0);
    synth_of(&slow)->sleep_ns = 5000000;
    w = (watch){.stop_after = 1};
    double t = lop_seconds();
    assert_int_equal(lop_train(g, &slow, &o, &e), LOP_ECANCEL);
    assert_true(lop_seconds() - t < 0.4);   /* the whole epoch: 0.75 s */
    assert_true(synth_of(&slow)->reads < 300);
    assert_int_equal(slow.source->refs, 1);
    lop_graph_free(g);
    lop_dataset_free(&slow);
    lop_dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_come_in_order_with_their_labels),
        cmocka_unit_test(test_results_do_not_depend_on_the_worker_count),
        cmocka_unit_test(test_each_item_and_epoch_gets_its_own_seed),
        cmocka_unit_test(test_skip_bad_compacts_batches_and_counts),
        cmocka_unit_test(test_a_bad_item_fails_the_batch_with_its_message),
        cmocka_unit_test(test_workers_run_ahead_in_a_bounded_ring_and_stop_promptly),
        cmocka_unit_test(test_the_caller_waits_without_spinning),
        cmocka_unit_test(test_open_fails_cleanly_on_bad_requests_and_allocation_failures),
        cmocka_unit_test(test_subsets_of_a_streamed_set_share_its_source),
        cmocka_unit_test(test_padding_and_normalising_refuse_streamed_sets),
        cmocka_unit_test(test_in_memory_loaders_gather_as_lop_dataset_batch_does),
        cmocka_unit_test(test_from_tensor_validates),
        cmocka_unit_test(test_input_shape_messages_name_both_shapes),
        cmocka_unit_test(test_loops_give_the_same_results_streamed_and_in_memory),
        cmocka_unit_test(test_head_calibration_reads_streamed_sets),
        cmocka_unit_test(test_training_skips_bad_images_and_stops_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
