/*
 * train.c - the training and evaluation loops: seeded shuffling and augmentation,
 * batches through forward / softmax cross-entropy / backward / SGD, the learning-rate
 * schedule, a progress callback after every batch, and resuming at an epoch boundary.
 */
#include <stdlib.h>

#include "internal.h"

lop_train_opts lop_train_opts_default(void)
{
    lop_train_opts o = {0};
    o.epochs = 1;
    o.batch = 128;
    o.sgd.lr = 0.05f;
    o.sgd.momentum = 0.9f;
    o.sgd.weight_decay = 5e-4f;
    o.sgd.nesterov = 1;
    o.schedule = LOP_SCHEDULE_COSINE;
    o.step_epochs = 1;
    o.gamma = 0.1f;
    o.seed = 1;
    return o;
}

/* The output must be [B, K] logits with K covering the dataset's classes. */
static int check_classifier(const lop_graph *g, const lop_dataset *d)
{
    if (g->n < 2)
        return lop_fail(LOP_ESTATE, "the graph needs an input and at least one layer");
    const lop_node *in = g->nodes[0], *out = g->nodes[g->n - 1];
    if (out->ndim != 1 || out->dims[0] < d->classes)
        return lop_fail(LOP_ESHAPE, "the network's output must be %d class scores per image",
                        d->classes);
    if (!d->images || d->images->ndim != in->ndim + 1)
        return lop_fail(LOP_ESHAPE, "the dataset's images do not fit the network's input");
    for (int i = 0; i < in->ndim; i++)
        if (d->images->shape[i + 1] != in->dims[i])
            return lop_fail(LOP_ESHAPE, "dataset images are %dx%dx%d, the network takes %dx%dx%d",
                            d->images->shape[1], d->images->shape[2], d->images->shape[3],
                            in->dims[0], in->dims[1], in->dims[2]);
    return LOP_OK;
}

/* Scratch for one batch: images, labels, and the loss gradient. */
typedef struct batch_buf {
    lop_tensor *x, *dlogits;
    int *labels;
    int *order;
} batch_buf;

static void batch_buf_free(batch_buf *b)
{
    lop_tensor_release(b->x);
    lop_tensor_release(b->dlogits);
    lop_free(b->labels);
    lop_free(b->order);
}

static int batch_buf_init(batch_buf *b, int n, int batch)
{
    b->x = b->dlogits = NULL;
    b->labels = lop_malloc((size_t)batch * sizeof(int));
    b->order = lop_malloc((size_t)n * sizeof(int));
    if (!b->labels || !b->order) {
        batch_buf_free(b);
        return LOP_ENOMEM;
    }
    for (int i = 0; i < n; i++)
        b->order[i] = i;
    return LOP_OK;
}

/* The end of the epoch range to run: until_epoch, or all epochs when it is 0. */
static int until_epoch(const lop_train_opts *o)
{
    return o->until_epoch ? o->until_epoch : o->epochs;
}

static int check_opts(const lop_train_opts *o)
{
    if (o->epochs < 1 || o->batch < 2)
        return lop_fail(LOP_EINVAL, "train: need epochs >= 1 and batch >= 2 (got %d, %d)",
                        o->epochs, o->batch);
    if (!(o->sgd.lr > 0))
        return lop_fail(LOP_EINVAL, "train: learning rate must be > 0 (got %g)", o->sgd.lr);
    if (o->augment.crop_pad < 0)
        return lop_fail(LOP_EINVAL, "train: crop padding must be >= 0");
    if (o->schedule == LOP_SCHEDULE_STEP && (o->step_epochs < 1 || !(o->gamma > 0)))
        return lop_fail(LOP_EINVAL, "train: step schedule needs step_epochs >= 1, gamma > 0");
    if (o->from_epoch < 0 || until_epoch(o) > o->epochs || o->from_epoch >= until_epoch(o))
        return lop_fail(LOP_EINVAL, "train: need 0 <= from_epoch < until_epoch <= epochs "
                        "(got %d, %d, %d)", o->from_epoch, o->until_epoch, o->epochs);
    return LOP_OK;
}

/* Epoch e's shuffle and augmentation stream: the seed itself for the first epoch, a
 * distinct well-mixed seed (splitmix64 increment times e) for each later one, so any
 * epoch can be replayed without replaying the ones before it. */
static uint64_t epoch_seed(uint64_t seed, int epoch)
{
    return seed + 0x9e3779b97f4a7c15ull * (uint64_t)epoch;
}

int lop_train(lop_graph *g, const lop_dataset *d, const lop_train_opts *o, lop_eval *last)
{
    int st = check_opts(o);
    if (st == LOP_OK)
        st = check_classifier(g, d);
    if (st != LOP_OK)
        return st;
    if (d->n < 2)
        return lop_fail(LOP_EINVAL, "train: the dataset has %d images", d->n);
    batch_buf b;
    if ((st = batch_buf_init(&b, d->n, o->batch)) != LOP_OK)
        return st;
    lop_rng rng;
    const long steps_per_epoch = (d->n + o->batch - 1) / o->batch;
    const long total_steps = steps_per_epoch * o->epochs;
    const int until = until_epoch(o);
    lop_sgd sgd = o->sgd;
    lop_eval ev = {0};
    for (int epoch = o->from_epoch; epoch < until && st == LOP_OK; epoch++) {
        lop_rng_seed(&rng, epoch_seed(o->seed, epoch));
        for (int i = 0; i < d->n; i++)
            b.order[i] = i;
        lop_shuffle(b.order, d->n, &rng);
        double loss_sum = 0;
        long seen = 0, hits = 0;
        for (long step = 0; step < steps_per_epoch && st == LOP_OK; step++) {
            int start = (int)(step * o->batch);
            int count = d->n - start < o->batch ? d->n - start : o->batch;
            if (count < 2)   /* batchnorm needs two samples for batch statistics */
                break;
            double loss;
            int correct;
            sgd.lr = lop_lr_at(o->schedule, o->sgd.lr,
                               (double)(epoch * steps_per_epoch + step) / (double)total_steps,
                               o->epochs, o->step_epochs, o->gamma);
            if ((st = lop_dataset_batch(d, b.order + start, count, &o->augment, &rng, &b.x,
                                        b.labels)) != LOP_OK ||
                (st = lop_graph_forward(g, b.x, 1)) != LOP_OK)
                break;
            lop_tensor *logits = lop_graph_output(g);
            if ((st = lop_tensor_ensure(&b.dlogits, logits->ndim, logits->shape)) != LOP_OK ||
                (st = lop_softmax_xent(logits, b.labels, &loss, b.dlogits, &correct)) != LOP_OK)
                break;
            lop_graph_zero_grad(g);
            if ((st = lop_graph_backward(g, b.dlogits)) != LOP_OK ||
                (st = lop_sgd_step(g, &sgd)) != LOP_OK)
                break;
            loss_sum += loss * count;
            hits += correct;
            seen += count;
            ev.loss = loss_sum / (double)seen;
            ev.top1 = (double)hits / (double)seen;
            ev.n = seen;
            if (o->progress) {
                lop_progress p = {"train", epoch + 1, o->epochs, seen, d->n, ev.loss, ev.top1,
                                  sgd.lr};
                if (o->progress(o->progress_ud, &p))
                    st = lop_fail(LOP_ECANCEL, "training stopped by the progress callback");
            }
        }
    }
    batch_buf_free(&b);
    if (st == LOP_OK && last)
        *last = ev;
    return st;
}

int lop_evaluate(lop_graph *g, const lop_dataset *d, int batch, lop_progress_fn progress,
                 void *progress_ud, lop_eval *out)
{
    if (batch < 1)
        return lop_fail(LOP_EINVAL, "evaluate: batch must be >= 1 (got %d)", batch);
    int st = check_classifier(g, d);
    if (st != LOP_OK)
        return st;
    if (d->n < 1)
        return lop_fail(LOP_EINVAL, "evaluate: the dataset is empty");
    batch_buf b;
    if ((st = batch_buf_init(&b, d->n, batch)) != LOP_OK)
        return st;
    double loss_sum = 0;
    long hits = 0, seen = 0;
    for (int start = 0; start < d->n && st == LOP_OK; start += batch) {
        int count = d->n - start < batch ? d->n - start : batch;
        double loss;
        int correct;
        if ((st = lop_dataset_batch(d, b.order + start, count, NULL, NULL, &b.x, b.labels)) !=
                LOP_OK ||
            (st = lop_graph_forward(g, b.x, 0)) != LOP_OK ||
            (st = lop_softmax_xent(lop_graph_output(g), b.labels, &loss, NULL, &correct)) !=
                LOP_OK)
            break;
        loss_sum += loss * count;
        hits += correct;
        seen += count;
        if (progress) {
            lop_progress p = {"eval", 1, 1, seen, d->n, loss_sum / (double)seen,
                              (double)hits / (double)seen, 0};
            if (progress(progress_ud, &p))
                st = lop_fail(LOP_ECANCEL, "evaluation stopped by the progress callback");
        }
    }
    batch_buf_free(&b);
    if (st == LOP_OK && out) {
        out->loss = loss_sum / (double)seen;
        out->top1 = (double)hits / (double)seen;
        out->n = seen;
    }
    return st;
}
