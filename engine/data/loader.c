/*
 * loader.c - the batches every loop over a data set reads (training, evaluation,
 * sampling, calibration).  In memory, a batch is gathered on the caller's thread when
 * asked for, by lop_dataset_batch, so the random draws are exactly those of a direct
 * call.  Streamed, the source's worker threads decode items into a ring of RING batch
 * buffers ahead of the caller: they take items in order, one at a time, while the
 * batch an item belongs to has a buffer, and sleep on a condition variable when none
 * is free; the caller sleeps on another until the batch it wants is complete.  Every
 * random choice about an item comes from a seed drawn for it when the loader opens, so
 * which worker decodes which item changes nothing.  A bad item's message waits in its
 * buffer until the caller reaches it, in order: then it fails the call, or with
 * skip_bad it is counted and left out of its batch.  The workers use only what the
 * loader copied at open (items, labels, seeds, a reference to the source), so the
 * data set may change under a running loader without harm to them.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

enum {
    RING = 3,              /* batch buffers: the one being read and two ahead */
    WHY_LEN = 256,         /* a bad item's message */
    MAX_WORKERS = 64
};

/* A batch buffer: batch b is decoded into ring[b % nslots]. */
typedef struct slot {
    float *x;              /* the batch's items */
    int *status;           /* per item */
    char *why;             /* per item, WHY_LEN bytes each */
    int done;              /* items of the batch decoded so far */
} slot;

typedef struct worker {
    lop_loader *l;
    float *scratch;        /* one item before the augmentation (when there is one) */
    pthread_t thread;
} worker;

struct lop_loader {
    const lop_dataset *d;  /* in memory: the batches' images */
    int *order;            /* in memory: the caller's order, copied */
    int n, batch;
    int pos;               /* entries of the order used (delivered or skipped) */
    lop_augment aug;
    lop_rng *rng;          /* in memory: drawn from per batch, as lop_dataset_batch does */
    int failed;            /* the status of an earlier failure, repeated from then on */
    char failure[512];

    /* Streamed. */
    lop_source *src;       /* one reference */
    int c, h, w;
    size_t item;           /* floats per image */
    int *items, *labels;   /* per entry of the order: the source's item, its label */
    uint64_t *seeds;       /* per entry; NULL without rng (evaluation transform) */
    slot ring[RING];
    int nslots;
    worker *workers;       /* nworkers of them, the first `started` running */
    int nworkers, started;
    int synced;            /* the mutex and conditions exist */
    pthread_mutex_t mu;    /* guards claimed, freed, stop and every slot's done */
    pthread_cond_t work;   /* workers wait for a free buffer */
    pthread_cond_t ready;  /* the caller waits for a complete batch */
    int claimed;           /* entries handed to workers */
    int freed;             /* batches whose buffers the caller gave back */
    int stop;
};

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

/* Entries in batch b. */
static int batch_size(const lop_loader *l, int b)
{
    return min_int(l->batch, l->n - b * l->batch);
}

static void *work(void *arg)
{
    worker *me = arg;
    lop_loader *l = me->l;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->claimed < l->n && l->claimed / l->batch >= l->freed + l->nslots)
            pthread_cond_wait(&l->work, &l->mu);
        if (l->stop || l->claimed >= l->n)
            break;
        int k = l->claimed++, b = k / l->batch, j = k % l->batch;
        slot *s = &l->ring[b % l->nslots];
        pthread_mutex_unlock(&l->mu);
        s->status[j] = lop_source_read_item(l->src, l->items[k], l->seeds ? l->seeds[k] : 0,
                                            &l->aug, s->x + (size_t)j * l->item, me->scratch,
                                            s->why + (size_t)j * WHY_LEN, WHY_LEN);
        pthread_mutex_lock(&l->mu);
        if (++s->done == batch_size(l, b))
            pthread_cond_signal(&l->ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

void lop_loader_close(lop_loader *l)
{
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->started; i++)
            pthread_join(l->workers[i].thread, NULL);
    }
    if (l->synced) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->work);
        pthread_cond_destroy(&l->ready);
    }
    for (int i = 0; l->workers && i < l->nworkers; i++)
        lop_free(l->workers[i].scratch);
    lop_free(l->workers);
    for (int i = 0; i < RING; i++) {
        lop_free(l->ring[i].x);
        lop_free(l->ring[i].status);
        lop_free(l->ring[i].why);
    }
    lop_free(l->order);
    lop_free(l->items);
    lop_free(l->labels);
    lop_free(l->seeds);
    if (l->src)
        lop_source_release(l->src);
    lop_free(l);
}

/* Start the workers with the asynchronous signals blocked: those (a terminal's ^C)
 * go to the caller's thread, and no read of a worker is interrupted by one.  Faults
 * (SIGSEGV and the like) stay deliverable: blocking them is undefined. */
static int start_workers(lop_loader *l)
{
    sigset_t all, old;
    sigfillset(&all);
    const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = 0;
    while (l->started < l->nworkers && !err) {
        err = pthread_create(&l->workers[l->started].thread, NULL, work,
                             &l->workers[l->started]);
        if (!err)
            l->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return lop_fail(LOP_ENOMEM, "lop_loader_open: cannot start a worker thread (error "
                        "%d)", err);
    return LOP_OK;
}

/* The streamed half of lop_loader_open: copy what the workers read, draw the seeds
 * (from a copy of rng, committed when everything else worked), allocate the ring,
 * start the threads. */
static int open_streamed(lop_loader *l, const lop_dataset *d, const int *order, lop_rng *rng)
{
    lop_rng draws = rng ? *rng : (lop_rng){{0}};
    lop_source *src = d->source;
    l->c = src->c;
    l->h = src->h;
    l->w = src->w;
    l->item = (size_t)l->c * l->h * l->w;
    int augment = l->aug.crop_pad || l->aug.flip, most = min_int(l->batch, l->n);
    l->nslots = min_int(RING, (l->n + l->batch - 1) / l->batch);
    l->nworkers = min_int(min_int(src->workers > 1 ? src->workers : 1, MAX_WORKERS), l->n);
    l->items = lop_malloc((size_t)l->n * sizeof *l->items);
    l->labels = lop_malloc((size_t)l->n * sizeof *l->labels);
    l->seeds = rng ? lop_malloc((size_t)l->n * sizeof *l->seeds) : NULL;
    l->workers = lop_calloc((size_t)l->nworkers, sizeof *l->workers);
    if (!l->items || !l->labels || (rng && !l->seeds) || !l->workers)
        return LOP_ENOMEM;
    for (int i = 0; i < l->nslots; i++) {
        slot *s = &l->ring[i];
        s->x = lop_malloc((size_t)most * l->item * sizeof *s->x);
        s->status = lop_malloc((size_t)most * sizeof *s->status);
        s->why = lop_malloc((size_t)most * WHY_LEN);
        if (!s->x || !s->status || !s->why)
            return LOP_ENOMEM;
    }
    for (int i = 0; i < l->nworkers; i++) {
        l->workers[i].l = l;
        if (augment && !(l->workers[i].scratch = lop_malloc(l->item * sizeof(float))))
            return LOP_ENOMEM;
    }
    for (int k = 0; k < l->n; k++) {
        l->items[k] = lop_dataset_source_item(d, order[k]);
        l->labels[k] = d->labels[order[k]];
        if (rng)
            l->seeds[k] = lop_item_seed(&draws);
    }
    if (pthread_mutex_init(&l->mu, NULL) != 0)
        return lop_fail(LOP_ENOMEM, "lop_loader_open: cannot create a mutex");
    if (pthread_cond_init(&l->work, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        return lop_fail(LOP_ENOMEM, "lop_loader_open: cannot create a condition variable");
    }
    if (pthread_cond_init(&l->ready, NULL) != 0) {
        pthread_cond_destroy(&l->work);
        pthread_mutex_destroy(&l->mu);
        return lop_fail(LOP_ENOMEM, "lop_loader_open: cannot create a condition variable");
    }
    l->synced = 1;
    l->src = lop_source_retain(src);
    int st = start_workers(l);
    if (st == LOP_OK && rng)
        *rng = draws;
    return st;
}

int lop_loader_open(const lop_dataset *d, const int *order, int n, int batch,
                    const lop_augment *aug, lop_rng *rng, lop_loader **out)
{
    int st = lop_dataset_check(d, "lop_loader_open");
    if (st != LOP_OK)
        return st;
    if (!out || (!order && n > 0) || n < 0 || batch < 1)
        return lop_fail(LOP_EINVAL, "lop_loader_open: need an order of n >= 0 entries, a "
                        "batch >= 1 and an output (got n %d, batch %d)", n, batch);
    for (int k = 0; k < n; k++)
        if (order[k] < 0 || order[k] >= d->n)
            return lop_fail(LOP_EINVAL, "lop_loader_open: entry %d of the order is item %d, "
                            "outside 0..%d", k, order[k], d->n - 1);
    int chw[3];
    lop_dataset_shape(d, chw);
    lop_augment a = aug ? *aug : (lop_augment){0};
    if (a.crop_pad < 0 || a.crop_pad > chw[1] || a.crop_pad > chw[2])
        return lop_fail(LOP_EINVAL, "lop_loader_open: crop_pad %d is outside 0..%d",
                        a.crop_pad, min_int(chw[1], chw[2]));
    if ((a.crop_pad || a.flip) && !rng)
        return lop_fail(LOP_EINVAL, "lop_loader_open: augmentation needs an rng");
    lop_loader *l = lop_calloc(1, sizeof *l);
    if (!l)
        return LOP_ENOMEM;
    l->n = n;
    l->batch = batch;
    l->aug = a;
    if (d->source && n > 0) {
        st = open_streamed(l, d, order, rng);
    } else {
        l->d = d;
        l->rng = rng;
        l->order = lop_malloc((size_t)(n > 0 ? n : 1) * sizeof *l->order);
        if (!l->order)
            st = LOP_ENOMEM;
        else if (n > 0)
            memcpy(l->order, order, (size_t)n * sizeof *l->order);
    }
    if (st != LOP_OK) {
        lop_loader_close(l);
        return st;
    }
    *out = l;
    return LOP_OK;
}

/* The next batch of the ring, bad items left out (or failing it); *count may be 0. */
static int take_batch(lop_loader *l, lop_tensor **x, int *labels, int *count)
{
    int b = l->pos / l->batch, size = batch_size(l, b);
    slot *s = &l->ring[b % l->nslots];
    pthread_mutex_lock(&l->mu);
    while (s->done < size)
        pthread_cond_wait(&l->ready, &l->mu);
    pthread_mutex_unlock(&l->mu);
    int good = 0;
    for (int j = 0; j < size; j++) {
        if (s->status[j] == LOP_OK)
            good++;
        else if (!l->src->skip_bad)
            return lop_fail(s->status[j], "%s", s->why + (size_t)j * WHY_LEN);
    }
    int shape[4] = {good, l->c, l->h, l->w};
    int st = good ? lop_tensor_ensure(x, 4, shape) : LOP_OK;
    if (st != LOP_OK)
        return st;
    for (int j = 0, k = 0; j < size; j++) {
        if (s->status[j] != LOP_OK) {
            lop_source_note_skip(l->src, s->why + (size_t)j * WHY_LEN);
            continue;
        }
        memcpy((*x)->data + (size_t)k * l->item, s->x + (size_t)j * l->item,
               l->item * sizeof(float));
        if (labels)
            labels[k] = l->labels[l->pos + j];
        k++;
    }
    pthread_mutex_lock(&l->mu);
    s->done = 0;
    l->freed++;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    l->pos += size;
    *count = good;
    return LOP_OK;
}

int lop_loader_next(lop_loader *l, lop_tensor **x, int *labels, int *count)
{
    if (!l || !x || !count)
        return lop_fail(LOP_EINVAL, "lop_loader_next: NULL argument");
    *count = 0;
    if (l->failed)
        return lop_fail(l->failed, "%s", l->failure);
    int st = LOP_OK;
    while (st == LOP_OK && *count == 0 && l->pos < l->n) {
        if (l->src) {
            st = take_batch(l, x, labels, count);
        } else {
            int size = batch_size(l, l->pos / l->batch);
            st = lop_dataset_batch(l->d, l->order + l->pos, size, &l->aug, l->rng, x, labels);
            if (st == LOP_OK) {
                l->pos += size;
                *count = size;
            }
        }
    }
    if (st != LOP_OK) {
        l->failed = st;
        snprintf(l->failure, sizeof l->failure, "%s", lop_errmsg());
        *count = 0;
    }
    return st;
}

int lop_loader_done(const lop_loader *l)
{
    return l ? l->pos : 0;
}
