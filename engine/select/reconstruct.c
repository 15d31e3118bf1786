/*
 * reconstruct.c - after a selection rule has chosen which input channels of a
 * convolution stay, fit what remains to the sampled outputs and cut the rest:
 *  - weights (He et al.): least squares for all of the conv's weights on the kept
 *    channels (and its bias, when it has one) from the patch statistics;
 *  - scale (ThiNet): one least-squares factor per kept channel, from the Gram of the
 *    per-channel contributions.
 * With LOP_RECON_DROPOUT, a layer whose input passes through dropout in training is
 * fitted for the noise it will see there (dropout_noise), so that fine-tuning starts
 * where the fit ended.
 * The normal equations go through lop_solve_spd (LAPACK Cholesky); the channels then
 * leave every member of their group through lop_graph_prune.  A group several layers
 * read (a residual stage) has each of them refitted before the channels go, once.
 * A linear layer is refitted as a conv whose kernel covers its whole input (see
 * lop_sample).  Nothing changes when any step fails.
 */
#include <cblas.h>
#include <string.h>

#include "internal.h"

/* Inverted dropout with keep probability q multiplies each input x_j by m_j / q, m_j
 * ~ Bernoulli(q): its mean stays x_j and its variance is x_j^2 (1 - q) / q, so the
 * expected squared error of a linear map w over the samples is the plain one plus
 * (1 - q) / q * sum_j G_jj w_j^2, G the inputs' Gram.  A least-squares refit that
 * ignores this (an eval-mode fit) can lean on large cancelling weights that dropout
 * then tears apart: a refitted fc7 of VGG-16 took the training loss from 0.11 to 8.
 * Returns (1 - q) / q for the dropout nodes (through flattens) right before layer, 0
 * when there are none. */
static double dropout_noise(const lop_graph *g, const lop_node *layer)
{
    double q = 1.0;
    const lop_node *n = lop_input_node(g, layer, 0);
    while (n->kind == LOP_DROPOUT || n->kind == LOP_FLATTEN) {
        if (n->kind == LOP_DROPOUT)
            q *= 1.0 - n->attr.p;
        n = lop_input_node(g, n, 0);
    }
    return (1.0 - q) / q;
}

/* Add noise * G_ii to the first k diagonal entries of the dim x dim G, or take it off
 * again (sign -1), so the reported residual is the noise-free one. */
static void add_noise(double *G, int dim, int k, double noise, double *diag, int sign)
{
    for (int i = 0; i < k && noise > 0; i++) {
        if (sign > 0)
            diag[i] = G[(size_t)i * dim + i];
        G[(size_t)i * dim + i] = sign > 0 ? diag[i] * (1.0 + noise) : diag[i];
    }
}

/* Least squares on the kept channels' patch entries (plus a constant when the conv
 * has a bias), with the expected dropout noise on the entries: new weights
 * [n][nkeep * kk] and bias change [n] into w, db. */
static int fit_weights(const lop_stats *s, const int *keep, int nkeep, int with_bias,
                       double ridge, double noise, float *w, float *db, double *residual)
{
    const int kk = s->kh * s->kw, D = s->c * kk, n = s->n, Ds = nkeep * kk;
    const int dim = Ds + (with_bias ? 1 : 0);
    double *G = lop_malloc((size_t)dim * dim * sizeof *G);
    double *R = lop_malloc((size_t)dim * n * sizeof *R);
    double *X = lop_malloc((size_t)dim * n * sizeof *X);
    int *rows = lop_malloc((size_t)Ds * sizeof *rows);
    double *diag = lop_malloc((size_t)Ds * sizeof *diag);
    int st = (!G || !R || !X || !rows || !diag) ? LOP_ENOMEM : LOP_OK;
    if (st == LOP_OK) {
        for (int a = 0; a < nkeep; a++)
            for (int e = 0; e < kk; e++)
                rows[a * kk + e] = keep[a] * kk + e;
        for (int i = 0; i < Ds; i++) {
            for (int j = 0; j < Ds; j++)
                G[(size_t)i * dim + j] = s->P[(size_t)rows[i] * D + rows[j]];
            memcpy(R + (size_t)i * n, s->C + (size_t)rows[i] * n, (size_t)n * sizeof *R);
            if (with_bias)
                G[(size_t)i * dim + Ds] = G[(size_t)Ds * dim + i] = s->xsum[rows[i]];
        }
        if (with_bias) {
            G[(size_t)Ds * dim + Ds] = (double)s->m;
            memcpy(R + (size_t)Ds * n, s->ysum, (size_t)n * sizeof *R);
        }
        add_noise(G, dim, Ds, noise, diag, 1);
        st = lop_solve_spd(G, dim, R, n, ridge, X);
        add_noise(G, dim, Ds, noise, diag, -1);
    }
    if (st == LOP_OK) {
        /* ||Y - [X 1] B||^2 = yy - 2 tr(B'R) + tr(B'GB), G and R before the ridge;
         * GB by one dgemm into R, which is not needed once tr(B'R) is summed */
        double cross = 0, quad = 0;
        for (size_t e = 0; e < (size_t)dim * n; e++)
            cross += X[e] * R[e];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, n, dim, 1.0, G, dim, X, n,
                    0.0, R, n);
        for (size_t e = 0; e < (size_t)dim * n; e++)
            quad += X[e] * R[e];
        *residual = s->yy - 2 * cross + quad;
        for (int k = 0; k < n; k++) {
            for (int i = 0; i < Ds; i++)
                w[(size_t)k * Ds + i] = (float)X[(size_t)i * n + k];
            db[k] = with_bias ? (float)X[(size_t)Ds * n + k] : 0.0f;
        }
    }
    lop_free(G);
    lop_free(R);
    lop_free(X);
    lop_free(rows);
    lop_free(diag);
    return st;
}

/* ThiNet's scaling: factors f minimising ||y - sum_{j kept} f_j Z_j||^2, plus the
 * expected dropout noise on each channel's contribution. */
static int fit_scales(const lop_stats *s, const int *keep, int nkeep, double ridge,
                      double noise, const float *w_old, float *w, double *residual)
{
    const int kk = s->kh * s->kw, c = s->c, n = s->n;
    double *G = lop_malloc((size_t)nkeep * nkeep * sizeof *G);
    double *r = lop_malloc((size_t)nkeep * sizeof *r), *f = lop_malloc((size_t)nkeep * sizeof *f);
    double *diag = lop_malloc((size_t)nkeep * sizeof *diag);
    int st = (!G || !r || !f || !diag) ? LOP_ENOMEM : LOP_OK;
    if (st == LOP_OK) {
        for (int a = 0; a < nkeep; a++) {
            for (int b = 0; b < nkeep; b++)
                G[(size_t)a * nkeep + b] = s->A[(size_t)keep[a] * c + keep[b]];
            r[a] = s->r[keep[a]];
        }
        add_noise(G, nkeep, nkeep, noise, diag, 1);
        st = lop_solve_spd(G, nkeep, r, 1, ridge, f);
        add_noise(G, nkeep, nkeep, noise, diag, -1);
    }
    if (st == LOP_OK) {
        double cross = 0, quad = 0;
        for (int a = 0; a < nkeep; a++) {
            cross += f[a] * r[a];
            for (int b = 0; b < nkeep; b++)
                quad += f[a] * G[(size_t)a * nkeep + b] * f[b];
        }
        *residual = s->yy - 2 * cross + quad;
    }
    if (st == LOP_OK)
        for (int k = 0; k < n; k++)
            for (int a = 0; a < nkeep; a++)
                for (int e = 0; e < kk; e++)
                    w[((size_t)k * nkeep + a) * kk + e] =
                        (float)(f[a] * w_old[((size_t)k * c + keep[a]) * kk + e]);
    lop_free(G);
    lop_free(r);
    lop_free(f);
    lop_free(diag);
    return st;
}

/* One part's fitted weights, written once the channels are gone. */
typedef struct fitted {
    float *w, *db;
    double residual;
} fitted;

/* Refuse statistics that cannot refit layer s->node of g to nkeep channels now. */
static int check_part(const lop_graph *g, const lop_stats *s, int nkeep)
{
    if (!s || s->node < 0 || s->node >= g->n ||
        (g->nodes[s->node]->kind != LOP_CONV2D && g->nodes[s->node]->kind != LOP_LINEAR))
        return lop_fail(LOP_EINVAL, "reconstruct: the statistics are not of a conv2d or "
                        "linear layer here");
    if (!s->P)
        return lop_fail(LOP_EINVAL, "reconstruct: combined statistics select channels but "
                        "cannot refit a layer; refit each sampled layer");
    int st = lop_check_ungrouped(g, s->node, "reconstruct");
    if (st != LOP_OK)
        return st;
    const lop_node *layer = g->nodes[s->node];
    if (s->generation != g->generation)
        return lop_fail(LOP_ESTATE, "reconstruct: the statistics of '%s' were sampled before "
                        "the network last changed; sample again", layer->name);
    const int inputs = layer->kind == LOP_LINEAR ? s->c * s->kh * s->kw : s->c;
    if (layer->param[0]->shape[1] != inputs || layer->dims[0] != s->n)
        return lop_fail(LOP_ESTATE, "reconstruct: '%s' no longer has the sampled shape",
                        layer->name);
    if (nkeep < 1 || nkeep > s->c)
        return lop_fail(LOP_EINVAL, "reconstruct: cannot keep %d of %d channels", nkeep, s->c);
    return LOP_OK;
}

/* The group that layer `node` reads, which must be exactly its c input channels, so
 * that pruning the group keeps them; -1 (with the error set) otherwise. */
static int group_read(const lop_graph *g, const lop_groups *gs, int node, int c)
{
    int gi = lop_groups_find(gs, g->nodes[node]->inputs[0]);
    if (gi < 0 || gs->groups[gi].channels != c) {
        lop_fail(LOP_EINVAL, "reconstruct: the input channels of '%s' are not one channel "
                 "group", g->nodes[node]->name);
        return -1;
    }
    return gi;
}

int lop_reconstruct_group(lop_graph *g, const lop_stats *const *parts, int nparts,
                          const int *keep, int nkeep, lop_recon mode, double ridge,
                          double *rel_errors)
{
    lop_graph_freeze(g, 0);   /* refits the weights */
    if (nparts < 1 || !parts)
        return lop_fail(LOP_EINVAL, "reconstruct: no statistics");
    const int for_training = (mode & LOP_RECON_DROPOUT) != 0;
    mode = (lop_recon)(mode & ~LOP_RECON_DROPOUT);
    if (mode != LOP_RECON_WEIGHTS && mode != LOP_RECON_SCALE)
        return lop_fail(LOP_EINVAL, "reconstruct: unknown refit mode %d", (int)mode);
    int st = LOP_OK;
    for (int i = 0; i < nparts && st == LOP_OK; i++) {
        st = check_part(g, parts[i], nkeep);
        for (int j = 0; j < i && st == LOP_OK; j++)
            if (parts[j]->node == parts[i]->node)
                st = lop_fail(LOP_EINVAL, "reconstruct: '%s' is sampled twice",
                              g->nodes[parts[i]->node]->name);
    }
    if (st != LOP_OK)
        return st;
    const int c = parts[0]->c;
    for (int i = 0; i < nkeep; i++)
        if (keep[i] < 0 || keep[i] >= c || (i > 0 && keep[i] <= keep[i - 1]))
            return lop_fail(LOP_EINVAL, "reconstruct: keep must be increasing channels in "
                            "0..%d", c - 1);
    /* every part reads the same group, exactly */
    lop_groups gs = {0};
    if ((st = lop_graph_groups(g, &gs)) != LOP_OK)
        return st;
    const int group = group_read(g, &gs, parts[0]->node, c);
    for (int i = 1; i < nparts && group >= 0 && st == LOP_OK; i++) {
        int gi = group_read(g, &gs, parts[i]->node, parts[i]->c);
        if (gi >= 0 && gi != group)
            st = lop_fail(LOP_EINVAL, "reconstruct: '%s' and '%s' read different channel "
                          "groups", g->nodes[parts[0]->node]->name,
                          g->nodes[parts[i]->node]->name);
        else if (gi < 0)
            st = LOP_EINVAL;
    }
    const int producer = group >= 0 ? g->nodes[parts[0]->node]->inputs[0] : -1;
    lop_groups_free(&gs);
    if (group < 0)
        return LOP_EINVAL;
    if (st != LOP_OK)
        return st;

    fitted *fit = lop_calloc((size_t)nparts, sizeof *fit);
    st = fit ? LOP_OK : LOP_ENOMEM;
    for (int i = 0; i < nparts && st == LOP_OK; i++) {
        const lop_stats *s = parts[i];
        const lop_node *layer = g->nodes[s->node];
        const int kk = s->kh * s->kw, with_bias = layer->attr.bias;
        fit[i].w = lop_malloc((size_t)s->n * nkeep * kk * sizeof *fit[i].w);
        fit[i].db = lop_calloc((size_t)s->n, sizeof *fit[i].db);
        st = (!fit[i].w || !fit[i].db) ? LOP_ENOMEM : LOP_OK;
        const double noise = for_training ? dropout_noise(g, layer) : 0.0;
        if (st == LOP_OK)
            st = mode == LOP_RECON_SCALE
                     ? fit_scales(s, keep, nkeep, ridge, noise, layer->param[0]->data,
                                  fit[i].w, &fit[i].residual)
                     : fit_weights(s, keep, nkeep, with_bias, ridge, noise, fit[i].w,
                                   fit[i].db, &fit[i].residual);
    }
    if (st == LOP_OK)
        st = lop_graph_prune(g, producer, keep, nkeep);
    for (int i = 0; i < nparts && st == LOP_OK; i++) {
        const lop_stats *s = parts[i];
        lop_node *layer = g->nodes[s->node];
        memcpy(layer->param[0]->data, fit[i].w,
               (size_t)s->n * nkeep * s->kh * s->kw * sizeof *fit[i].w);
        if (layer->attr.bias && mode == LOP_RECON_WEIGHTS)
            for (int k = 0; k < s->n; k++)
                layer->param[1]->data[k] += fit[i].db[k];
        if (rel_errors)
            rel_errors[i] = s->yy > 0 ? (fit[i].residual > 0 ? fit[i].residual : 0) / s->yy
                                      : 0;
    }
    for (int i = 0; fit && i < nparts; i++) {
        lop_free(fit[i].w);
        lop_free(fit[i].db);
    }
    lop_free(fit);
    return st;
}

int lop_reconstruct(lop_graph *g, const lop_stats *s, const int *keep, int nkeep,
                    lop_recon mode, double ridge, double *rel_error)
{
    return lop_reconstruct_group(g, &s, 1, keep, nkeep, mode, ridge, rel_error);
}
