/*
 * hessian.c - second-order filter importance (HAWQ-style): the dominant eigenpair of
 * the training loss's Hessian restricted to one layer's weights, by power iteration
 * on Hessian-vector products.  A product is a central difference of exact gradients,
 * Hv ~ (g(w + eps v) - g(w - eps v)) / (2 eps) with eps scaled to ||w||, so no Hessian
 * is ever formed.  The loss is averaged over a fixed calibration set; batchnorm runs
 * on batch statistics (as in training) and its running statistics, the weights and
 * the random state are restored afterwards, so the network is left as it was (the
 * calibration images are read once, through a loader, and kept for every product).  A
 * filter's importance is then the L1 norm of the eigenvector's entries for it (times
 * its squared weight norm when weighted), the ranking that lop_select_top cuts.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* What one gradient evaluation needs: the calibration batches, read once (so a
 * streamed set is decoded once, not twice per iteration), and scratch. */
typedef struct hess_job {
    lop_graph *g;
    lop_node *layer;
    int batch, nbatches, nx;
    lop_tensor **x;        /* nx tensors, the first nbatches a batch of two images or more */
    int *labels;           /* batch k's at labels + k * batch */
    lop_tensor *dlogits;
    lop_rng rng0;
} hess_job;

/* Read the calibration set, the first `images` entries of order, into j.  A batch of
 * one image is left out (batchnorm needs two samples). */
static int read_calibration(hess_job *j, const lop_dataset *d, const int *order, int images)
{
    int count;
    j->nx = (images + j->batch - 1) / j->batch;
    j->x = lop_calloc((size_t)j->nx, sizeof *j->x);
    j->labels = lop_malloc((size_t)j->nx * j->batch * sizeof *j->labels);
    if (!j->x || !j->labels)
        return LOP_ENOMEM;
    lop_loader *l;
    int st = lop_loader_open(d, order, images, j->batch, NULL, NULL, &l);
    while (st == LOP_OK &&
           (st = lop_loader_next(l, &j->x[j->nbatches], j->labels + (size_t)j->nbatches *
                                 j->batch, &count)) == LOP_OK && count > 0)
        if (count >= 2)
            j->nbatches++;
    lop_loader_close(l);
    if (st == LOP_OK && j->nbatches == 0)
        st = lop_fail(LOP_EINVAL, "hessian: need at least two calibration images");
    return st;
}

/* Mean gradient of the loss w.r.t. the layer's weights over the calibration set. */
static int gradient(hess_job *j, float *out)
{
    lop_tensor *grad = j->layer->grad[0];
    size_t count = grad->numel;
    memset(out, 0, count * sizeof *out);
    int st = LOP_OK;
    for (int k = 0; k < j->nbatches && st == LOP_OK; k++) {
        double loss;
        j->g->rng = j->rng0;   /* the same dropout masks for every evaluation */
        if ((st = lop_graph_forward(j->g, j->x[k], 1)) != LOP_OK)
            break;
        lop_tensor *logits = lop_graph_output(j->g);
        if ((st = lop_tensor_ensure(&j->dlogits, logits->ndim, logits->shape)) != LOP_OK ||
            (st = lop_softmax_xent(logits, j->labels + (size_t)k * j->batch, &loss,
                                   j->dlogits, NULL)) != LOP_OK)
            break;
        lop_graph_zero_grad(j->g);
        if ((st = lop_graph_backward(j->g, j->dlogits)) != LOP_OK)
            break;
        for (size_t i = 0; i < count; i++)
            out[i] += grad->data[i];
    }
    for (size_t i = 0; st == LOP_OK && i < count; i++)
        out[i] /= (float)j->nbatches;
    return st;
}

/* out = H v by a central difference of gradients; w is the layer's weight data. */
static int hvp(hess_job *j, const float *v, float *out, float *gm, double eps)
{
    float *w = j->layer->param[0]->data;
    size_t count = j->layer->param[0]->numel;
    for (size_t i = 0; i < count; i++)
        w[i] += (float)(eps * v[i]);
    int st = gradient(j, out);
    for (size_t i = 0; i < count; i++)
        w[i] -= (float)(2 * eps * v[i]);
    if (st == LOP_OK)
        st = gradient(j, gm);
    for (size_t i = 0; i < count; i++)
        w[i] += (float)(eps * v[i]);
    for (size_t i = 0; st == LOP_OK && i < count; i++)
        out[i] = (float)((out[i] - gm[i]) / (2 * eps));
    return st;
}

static double norm(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

/* Snapshot of everything a training-mode pass changes: all parameters (batchnorm
 * running statistics, the layer's weights) and the random state. */
typedef struct snapshot { lop_tensor **saved; int count; lop_rng rng; } snapshot;

static int snapshot_take(lop_graph *g, snapshot *s)
{
    s->count = 0;
    for (int i = 0; i < g->n; i++)
        s->count += g->nodes[i]->nparams;
    s->saved = lop_calloc((size_t)(s->count > 0 ? s->count : 1), sizeof *s->saved);
    if (!s->saved)
        return LOP_ENOMEM;
    s->rng = g->rng;
    int k = 0;
    for (int i = 0; i < g->n; i++)
        for (int p = 0; p < g->nodes[i]->nparams; p++, k++)
            if (!(s->saved[k] = lop_tensor_clone(g->nodes[i]->param[p])))
                return LOP_ENOMEM;
    return LOP_OK;
}

static void snapshot_restore_free(lop_graph *g, snapshot *s, int restore)
{
    int k = 0;
    for (int i = 0; i < g->n && s->saved; i++)
        for (int p = 0; p < g->nodes[i]->nparams; p++, k++) {
            lop_tensor *t = s->saved[k];
            if (t && restore)
                memcpy(g->nodes[i]->param[p]->data, t->data, t->numel * sizeof(float));
            lop_tensor_release(t);
        }
    if (restore && s->saved)
        g->rng = s->rng;
    lop_free(s->saved);
}

int lop_hessian_top(lop_graph *g, const lop_dataset *d, int node, const lop_hessian_opts *o,
                    double *eigenvalue, float *eigenvector, int *iterations)
{
    lop_graph_freeze(g, 0);   /* moves the weights along the eigenvector, then back */
    int st = lop_check_filter_layer(g, node, "hessian");
    if (st == LOP_OK)
        st = lop_dataset_check_input(d, g, "hessian");
    if (st != LOP_OK)
        return st;
    if (o->images < 2 || o->images > d->n || o->batch < 2 || o->max_iter < 1 || !(o->tol > 0))
        return lop_fail(LOP_EINVAL, "hessian: need 2 <= images <= %d, batch >= 2, "
                        "max_iter >= 1 and tol > 0", d->n);
    hess_job j = {.g = g, .layer = g->nodes[node], .batch = o->batch};
    size_t count = j.layer->param[0]->numel;
    snapshot snap = {0};
    float *v = lop_malloc(count * sizeof *v), *hv = lop_malloc(count * sizeof *hv);
    float *scratch = lop_malloc(count * sizeof *scratch);
    int *order = lop_malloc((size_t)d->n * sizeof *order);
    st = (!v || !hv || !scratch || !order) ? LOP_ENOMEM : LOP_OK;
    lop_rng r;
    lop_rng_seed(&r, o->seed);
    if (st == LOP_OK) {
        for (int i = 0; i < d->n; i++)
            order[i] = i;
        lop_shuffle(order, d->n, &r);
        st = read_calibration(&j, d, order, o->images);
    }
    if (st == LOP_OK)
        st = snapshot_take(g, &snap);
    double lambda = 0;
    int it = 0;
    if (st == LOP_OK) {
        for (size_t i = 0; i < count; i++)
            v[i] = (float)lop_rng_normal(&r);
        j.rng0 = r;
        double nv = norm(v, count);
        for (size_t i = 0; i < count; i++)
            v[i] = (float)(v[i] / nv);
        double wn = norm(j.layer->param[0]->data, count);
        double eps = 1e-3 * (wn > 0 ? wn : 1.0);
        for (it = 1; it <= o->max_iter && st == LOP_OK; it++) {
            if ((st = hvp(&j, v, hv, scratch, eps)) != LOP_OK)
                break;
            double next = 0;
            for (size_t i = 0; i < count; i++)
                next += (double)v[i] * hv[i];
            double hn = norm(hv, count);
            if (hn == 0)
                break;
            for (size_t i = 0; i < count; i++)
                v[i] = (float)(hv[i] / hn);
            int done = it > 1 && fabs(next - lambda) <= o->tol * fabs(next);
            lambda = next;
            if (done)
                break;
        }
        if (it > o->max_iter)
            it = o->max_iter;
    }
    snapshot_restore_free(g, &snap, 1);
    lop_graph_zero_grad(g);
    g->trained_forward = 0;
    if (st == LOP_OK) {
        *eigenvalue = lambda;
        if (eigenvector)
            memcpy(eigenvector, v, count * sizeof *v);
        if (iterations)
            *iterations = it;
    }
    for (int k = 0; j.x && k < j.nx; k++)
        lop_tensor_release(j.x[k]);
    lop_free(j.x);
    lop_free(j.labels);
    lop_tensor_release(j.dlogits);
    lop_free(order);
    lop_free(v);
    lop_free(hv);
    lop_free(scratch);
    return st;
}

lop_hessian_opts lop_hessian_opts_default(void)
{
    return (lop_hessian_opts){.images = 128, .batch = 64, .max_iter = 100, .tol = 1e-3,
                              .seed = 1};
}

int lop_hessian_importance(const lop_graph *g, int node, const float *eigenvector,
                           int weighted, double *score)
{
    int st = lop_check_filter_layer(g, node, "hessian");
    if (st != LOP_OK)
        return st;
    const lop_tensor *w = g->nodes[node]->param[0];
    int filters = w->shape[0];
    size_t per = w->numel / (size_t)filters;
    for (int f = 0; f < filters; f++) {
        double l1 = 0, w2 = 0;
        for (size_t e = 0; e < per; e++) {
            l1 += fabs(eigenvector[(size_t)f * per + e]);
            w2 += (double)w->data[(size_t)f * per + e] * w->data[(size_t)f * per + e];
        }
        score[f] = weighted ? l1 * w2 : l1;
    }
    return LOP_OK;
}
