/*
 * train.c - the training and evaluation loops: seeded shuffling and augmentation,
 * batches (from a lop_loader, so streamed data sets train like ones in memory) through
 * forward / softmax cross-entropy (or distillation from a teacher network, and feature
 * hints at chosen nodes) / backward / SGD, the learning-rate schedule, a progress
 * callback after every batch, resuming at an epoch boundary, and undoing a run that
 * diverges (rollback.c).
 */
#include <math.h>
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
    o.distill = 0.5f;
    o.temperature = 4.0f;
    o.hint_weight = 1.0f;
    return o;
}

/* The images must fit the input, and the output must be [B, K] logits with K covering
 * the dataset's classes. */
static int check_classifier(const lop_graph *g, const lop_dataset *d, const char *who)
{
    if (g->n < 2)
        return lop_fail(LOP_ESTATE, "the graph needs an input and at least one layer");
    int st = lop_dataset_check_input(d, g, who);
    if (st != LOP_OK)
        return st;
    const lop_node *out = g->nodes[g->n - 1];
    if (out->ndim != 1 || out->dims[0] < d->classes)
        return lop_fail(LOP_ESHAPE, "the network's output must be %d class scores per image",
                        d->classes);
    return LOP_OK;
}

/* A teacher must be another graph that classifies the same images into as many
 * classes (its own output the same shape as the student's). */
static int check_teacher(const lop_graph *g, const lop_graph *teacher, const lop_dataset *d)
{
    if (teacher == g)
        return lop_fail(LOP_EINVAL, "train: the teacher must be another network than the "
                        "one trained");
    int st = check_classifier(teacher, d, "train (teacher)");
    if (st != LOP_OK)
        return st;
    const lop_node *a = g->nodes[g->n - 1], *t = teacher->nodes[teacher->n - 1];
    if (t->dims[0] != a->dims[0])
        return lop_fail(LOP_ESHAPE, "train: the teacher gives %d class scores, the network "
                        "%d", t->dims[0], a->dims[0]);
    return LOP_OK;
}

/* Scratch for one batch: images, labels, the loss gradient, and each hint's node and
 * gradient there. */
typedef struct batch_buf {
    lop_tensor *x, *dlogits;
    int *labels;
    int *order;
    int nhints;
    int *hint_nodes;
    lop_tensor **hint_grads;
} batch_buf;

static void batch_buf_free(batch_buf *b)
{
    lop_tensor_release(b->x);
    lop_tensor_release(b->dlogits);
    for (int k = 0; b->hint_grads && k < b->nhints; k++)
        lop_tensor_release(b->hint_grads[k]);
    lop_free(b->hint_grads);
    lop_free(b->hint_nodes);
    lop_free(b->labels);
    lop_free(b->order);
}

static int batch_buf_init(batch_buf *b, int n, int batch, const lop_hint *hints, int nhints)
{
    b->x = b->dlogits = NULL;
    b->nhints = nhints;
    b->hint_nodes = nhints ? lop_malloc((size_t)nhints * sizeof(int)) : NULL;
    b->hint_grads = nhints ? lop_calloc((size_t)nhints, sizeof(lop_tensor *)) : NULL;
    for (int k = 0; b->hint_nodes && k < nhints; k++)
        b->hint_nodes[k] = hints[k].student;
    b->labels = lop_malloc((size_t)batch * sizeof(int));
    b->order = lop_malloc((size_t)n * sizeof(int));
    if (!b->labels || !b->order || (nhints && (!b->hint_nodes || !b->hint_grads))) {
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
    if (o->teacher && !(o->distill >= 0.0f && o->distill <= 1.0f && o->temperature > 0.0f &&
                        isfinite(o->temperature)))
        return lop_fail(LOP_EINVAL, "train: distillation needs a weight in [0, 1] and a "
                        "temperature > 0 (got %g, %g)", (double)o->distill,
                        (double)o->temperature);
    if (o->nhints < 0 || (o->nhints && !(o->hint_weight >= 0.0f && isfinite(o->hint_weight))))
        return lop_fail(LOP_EINVAL, "train: hints need a count >= 0 and a weight >= 0 (got "
                        "%d, %g)", o->nhints, (double)o->hint_weight);
    return LOP_OK;
}

/* Epoch e's shuffle and augmentation stream: the seed itself for the first epoch, a
 * distinct well-mixed seed (splitmix64 increment times e) for each later one, so any
 * epoch can be replayed without replaying the ones before it. */
static uint64_t epoch_seed(uint64_t seed, int epoch)
{
    return seed + 0x9e3779b97f4a7c15ull * (uint64_t)epoch;
}

/* Report the progress of a loop; nonzero when the callback asks to stop. */
static int report(lop_progress_fn fn, void *ud, const lop_progress *p)
{
    return fn && fn(ud, p);
}

/* The loss of the batch just run forward and its gradient into b->dlogits: softmax
 * cross-entropy, or distillation from the teacher's logits for the same images; plus
 * the hints' losses, their gradients into b->hint_grads.  With hints the teacher runs
 * unfused, so that every node it has keeps its output. */
static int batch_loss(lop_graph *g, const lop_train_opts *o, batch_buf *b, double *loss,
                      int *correct)
{
    lop_tensor *logits = lop_graph_output(g);
    if (!o->teacher)
        return lop_softmax_xent(logits, b->labels, loss, b->dlogits, correct);
    lop_graph *t = o->teacher;
    int st = o->nhints ? lop_graph_forward_until(t, b->x, t->n - 1)
                       : lop_graph_forward(t, b->x, 0);
    if (st == LOP_OK)
        st = lop_distill_xent(logits, b->labels, lop_graph_output(t), o->distill,
                              o->temperature, loss, b->dlogits, correct);
    float scale = o->nhints ? o->hint_weight / (float)o->nhints : 0.0f;
    for (int k = 0; st == LOP_OK && k < o->nhints; k++) {
        const lop_tensor *at = g->nodes[o->hints[k].student]->out;
        double hint;
        if ((st = lop_tensor_ensure(&b->hint_grads[k], at->ndim, at->shape)) == LOP_OK &&
            (st = lop_hint_loss(g, t, &o->hints[k], scale, &hint, b->hint_grads[k])) == LOP_OK)
            *loss += scale * hint;
    }
    return st;
}

/* One epoch over b->order, batches from a loader.  A last batch of one image is left
 * out, and so is a batch that bad images shrank to one: batchnorm needs two samples
 * for batch statistics.  Progress counts the images used or skipped. */
static int train_epoch(lop_graph *g, const lop_dataset *d, const lop_train_opts *o,
                       batch_buf *b, lop_rng *rng, int epoch, lop_eval *ev)
{
    const long steps_per_epoch = (d->n + o->batch - 1) / o->batch;
    const long total_steps = steps_per_epoch * o->epochs;
    const int n = d->n % o->batch == 1 ? d->n - 1 : d->n;
    lop_sgd sgd = o->sgd;
    lop_loader *l;
    int st = lop_loader_open(d, b->order, n, o->batch, &o->augment, rng, &l);
    if (st != LOP_OK)
        return st;
    double loss_sum = 0;
    long seen = 0, hits = 0;
    int done = 0, count;
    lop_progress p = {"train", epoch + 1, o->epochs, 0, d->n, 0, 0, sgd.lr};
    while ((st = lop_loader_next(l, &b->x, b->labels, &count)) == LOP_OK && count > 0) {
        done = lop_loader_done(l);
        if (count >= 2) {
            double loss;
            int correct;
            long step = (done - 1) / o->batch;
            sgd.lr = lop_lr_at(o->schedule, o->sgd.lr,
                               (double)(epoch * steps_per_epoch + step) / (double)total_steps,
                               o->epochs, o->step_epochs, o->gamma);
            /* the hints read their nodes' outputs and add to their gradients */
            if ((st = lop_graph_forward_keeping(g, b->x, b->nhints, b->hint_nodes)) != LOP_OK)
                break;
            lop_tensor *logits = lop_graph_output(g);
            if ((st = lop_tensor_ensure(&b->dlogits, logits->ndim, logits->shape)) != LOP_OK ||
                (st = batch_loss(g, o, b, &loss, &correct)) != LOP_OK)
                break;
            if (!isfinite(loss)) {
                st = lop_fail(LOP_ENUMERIC, "train: the loss became %s in epoch %d at batch "
                              "%ld of %ld (learning rate %g): training diverged, and the "
                              "network is back as it was before this run; try a lower "
                              "learning rate%s", isnan(loss) ? "NaN" : "infinite", epoch + 1,
                              step + 1, steps_per_epoch,
                              (double)sgd.lr, o->nhints ? " or hint weight" : "");
                break;
            }
            lop_graph_zero_grad(g);
            if ((st = lop_graph_backward_adding(g, b->dlogits, b->nhints, b->hint_nodes,
                                                b->hint_grads)) != LOP_OK ||
                (st = lop_sgd_step(g, &sgd)) != LOP_OK)
                break;
            loss_sum += loss * count;
            hits += correct;
            seen += count;
            p.loss = loss_sum / (double)seen;
            p.top1 = (double)hits / (double)seen;
            p.lr = sgd.lr;
        }
        p.done = done;
        if (report(o->progress, o->progress_ud, &p)) {
            st = lop_fail(LOP_ECANCEL, "training stopped by the progress callback");
            break;
        }
    }
    lop_loader_close(l);
    if (st == LOP_OK && seen == 0)
        return lop_fail(LOP_EIO, "train: epoch %d had no batch of two readable images",
                        epoch + 1);
    /* Batches of bad images only at the end: the epoch is over all the same. */
    p.done = n;
    if (st == LOP_OK && done < n && report(o->progress, o->progress_ud, &p))
        st = lop_fail(LOP_ECANCEL, "training stopped by the progress callback");
    *ev = (lop_eval){.top1 = p.top1, .loss = p.loss, .n = seen};
    return st;
}

int lop_train(lop_graph *g, const lop_dataset *d, const lop_train_opts *o, lop_eval *last)
{
    int st = check_opts(o);
    if (st == LOP_OK)
        st = lop_hints_check(g, o->teacher, o->hints, o->nhints);
    if (st == LOP_OK)
        st = check_classifier(g, d, "train");
    if (st == LOP_OK && o->teacher)
        st = check_teacher(g, o->teacher, d);
    if (st != LOP_OK)
        return st;
    if (d->n < 2)
        return lop_fail(LOP_EINVAL, "train: the dataset has %d images", d->n);
    batch_buf b;
    if ((st = batch_buf_init(&b, d->n, o->batch, o->hints, o->nhints)) != LOP_OK)
        return st;
    lop_rollback before;
    if ((st = lop_rollback_take(g, &before)) != LOP_OK) {
        batch_buf_free(&b);
        return st;
    }
    lop_rng rng;
    lop_eval ev = {0};
    for (int epoch = o->from_epoch; epoch < until_epoch(o) && st == LOP_OK; epoch++) {
        lop_rng_seed(&rng, epoch_seed(o->seed, epoch));
        for (int i = 0; i < d->n; i++)
            b.order[i] = i;
        lop_shuffle(b.order, d->n, &rng);
        st = train_epoch(g, d, o, &b, &rng, epoch, &ev);
    }
    batch_buf_free(&b);
    if (st == LOP_OK && !lop_graph_params_finite(g))   /* the last step overflowed */
        st = lop_fail(LOP_ENUMERIC, "train: the weights became NaN or infinite in the last "
                      "step: training diverged, and the network is back as it was before "
                      "this run; try a lower learning rate");
    if (st == LOP_ENUMERIC)
        lop_rollback_restore(g, &before);
    lop_rollback_free(&before);
    if (st == LOP_OK && last)
        *last = ev;
    return st;
}

int lop_evaluate(lop_graph *g, const lop_dataset *d, int batch, lop_progress_fn progress,
                 void *progress_ud, lop_eval *out)
{
    if (batch < 1)
        return lop_fail(LOP_EINVAL, "evaluate: batch must be >= 1 (got %d)", batch);
    int st = check_classifier(g, d, "evaluate");
    if (st != LOP_OK)
        return st;
    batch_buf b;
    if ((st = batch_buf_init(&b, d->n, batch, NULL, 0)) != LOP_OK)
        return st;
    lop_loader *l = NULL;
    double loss_sum = 0;
    long hits = 0, seen = 0;
    int done = 0, count;
    lop_progress p = {"eval", 1, 1, 0, d->n, 0, 0, 0};
    if ((st = lop_loader_open(d, b.order, d->n, batch, NULL, NULL, &l)) != LOP_OK)
        goto end;
    while ((st = lop_loader_next(l, &b.x, b.labels, &count)) == LOP_OK && count > 0) {
        double loss;
        int correct;
        if ((st = lop_graph_forward(g, b.x, 0)) != LOP_OK ||
            (st = lop_softmax_xent(lop_graph_output(g), b.labels, &loss, NULL, &correct)) !=
                LOP_OK)
            break;
        loss_sum += loss * count;
        hits += correct;
        seen += count;
        p.done = done = lop_loader_done(l);
        p.loss = loss_sum / (double)seen;
        p.top1 = (double)hits / (double)seen;
        if (report(progress, progress_ud, &p)) {
            st = lop_fail(LOP_ECANCEL, "evaluation stopped by the progress callback");
            break;
        }
    }
    if (st == LOP_OK && seen == 0)
        st = lop_fail(LOP_EIO, "evaluate: every image was skipped as unreadable");
    p.done = d->n;
    if (st == LOP_OK && done < d->n && report(progress, progress_ud, &p))
        st = lop_fail(LOP_ECANCEL, "evaluation stopped by the progress callback");
    if (st == LOP_OK && out)
        *out = (lop_eval){.top1 = p.top1, .loss = p.loss, .n = seen};
end:
    lop_loader_close(l);
    batch_buf_free(&b);
    return st;
}
