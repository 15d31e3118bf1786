/*
 * head_gap.c - ThiNet-GAP's head surgery: the flatten + fully connected stack after
 * the last convolution becomes global average pooling + one linear layer.  The new
 * layer is fitted by least squares so that, on calibration images, it reproduces the
 * old head's logits from the pooled features - a starting point that fine-tuning only
 * has to polish.  The network is rebuilt and swapped in whole, so a failure leaves the
 * original untouched.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int head_kind(lop_kind k)
{
    return k == LOP_LINEAR || k == LOP_RELU || k == LOP_DROPOUT || k == LOP_BATCHNORM;
}

/* The flatten that starts a head: every later node is a linear, relu, dropout or
 * batchnorm fed by the node just before it.  -1 if the graph has no such head. */
static int find_head(const lop_graph *g)
{
    for (int f = 1; f < g->n; f++) {
        if (g->nodes[f]->kind != LOP_FLATTEN)
            continue;
        int ok = g->n - 1 > f;
        for (int i = f + 1; i < g->n && ok; i++)
            ok = head_kind(g->nodes[i]->kind) && g->nodes[i]->ninputs == 1 &&
                 g->nodes[i]->inputs[0] == i - 1;
        if (ok && lop_input_node(g, g->nodes[f], 0)->ndim == 3)
            return f;
    }
    return -1;
}

/* Normal equations of [features 1] W = old logits over the calibration images,
 * accumulated in double: G ((C+1) x (C+1)) and R ((C+1) x K). */
static int accumulate(lop_graph *old, lop_graph *fresh, int gap, const lop_dataset *d,
                      int images, int batch, double *G, double *R, int c, int k)
{
    lop_tensor *x = NULL;
    lop_loader *l = NULL;
    int *order = lop_malloc((size_t)images * sizeof(int));
    int st = order ? LOP_OK : LOP_ENOMEM, count, used = 0;
    for (int i = 0; st == LOP_OK && i < images; i++)
        order[i] = i;
    if (st == LOP_OK)
        st = lop_loader_open(d, order, images, batch, NULL, NULL, &l);
    while (st == LOP_OK && (st = lop_loader_next(l, &x, NULL, &count)) == LOP_OK && count > 0) {
        if ((st = lop_graph_forward(old, x, 0)) != LOP_OK ||
            (st = lop_graph_forward(fresh, x, 0)) != LOP_OK)
            break;
        const float *t = lop_graph_output(old)->data, *f = lop_node_output(fresh, gap)->data;
        used += count;
        for (int s = 0; s < count; s++) {
            const float *fs = f + (size_t)s * c, *ts = t + (size_t)s * k;
            for (int i = 0; i <= c; i++) {
                double fi = i < c ? fs[i] : 1.0;
                double *gi = G + (size_t)i * (c + 1);
                for (int j = 0; j < c; j++)
                    gi[j] += fi * fs[j];
                gi[c] += fi;
                for (int j = 0; j < k; j++)
                    R[(size_t)i * k + j] += fi * ts[j];
            }
        }
    }
    lop_loader_close(l);
    if (st == LOP_OK && used == 0)
        st = lop_fail(LOP_EIO, "replace_head_gap: every calibration image was skipped as "
                      "unreadable");
    lop_tensor_release(x);
    lop_free(order);
    return st;
}

/* Fit the new linear layer (node lin) to the old head's logits. */
static int fit_head(lop_graph *old, lop_graph *fresh, int gap, int lin, const lop_dataset *d,
                    int images)
{
    int c = fresh->nodes[gap]->dims[0], k = fresh->nodes[lin]->dims[0];
    size_t gsize = (size_t)(c + 1) * (size_t)(c + 1), rsize = (size_t)(c + 1) * (size_t)k;
    double *G = lop_calloc(gsize, sizeof *G), *R = lop_calloc(rsize, sizeof *R);
    double *X = lop_malloc(rsize * sizeof *X);
    int st = (!G || !R || !X) ? LOP_ENOMEM : LOP_OK;
    if (st == LOP_OK)
        st = accumulate(old, fresh, gap, d, images, 128, G, R, c, k);
    if (st == LOP_OK)
        st = lop_solve_spd(G, c + 1, R, k, 1e-4, X);
    if (st == LOP_OK) {
        float *w = fresh->nodes[lin]->param[0]->data, *b = fresh->nodes[lin]->param[1]->data;
        for (int j = 0; j < k; j++) {
            for (int i = 0; i < c; i++)
                w[(size_t)j * c + i] = (float)X[(size_t)i * k + j];
            b[j] = (float)X[(size_t)c * k + j];
        }
    }
    lop_free(G);
    lop_free(R);
    lop_free(X);
    return st;
}

static int check_calibration(const lop_graph *g, const lop_dataset *d, int images)
{
    int st = lop_dataset_check_input(d, g, "replace_head_gap");
    if (st != LOP_OK)
        return st;
    if (images < 1 || images > d->n)
        return lop_fail(LOP_EINVAL, "replace_head_gap: %d calibration images asked, the data "
                        "set has %d", images, d->n);
    return LOP_OK;
}

int lop_graph_replace_head_gap(lop_graph *g, const lop_dataset *calib, int images)
{
    lop_graph_freeze(g, 0);
    int f = find_head(g);
    if (f < 0)
        return lop_fail(LOP_EINVAL, "replace_head_gap: no flatten + fully connected head "
                        "after the last convolution");
    if (calib) {
        int st = check_calibration(g, calib, images);
        if (st != LOP_OK)
            return st;
    }
    const lop_node *last = g->nodes[g->n - 1];
    char gap_name[LOP_NAME_MAX] = "gap";
    for (int i = 1; lop_graph_find(g, gap_name) >= 0 && lop_graph_find(g, gap_name) < f; i++)
        snprintf(gap_name, sizeof gap_name, "gap_%d", i);
    lop_graph *fresh;
    int st = lop_graph_prefix(g, f, &fresh);
    if (st != LOP_OK)
        return st;
    lop_attrs lin = lop_attrs_default();
    lin.out_channels = last->dims[0];
    int trunk = g->nodes[f]->inputs[0], gap = -1, fc = -1;
    st = lop_graph_add(fresh, LOP_GLOBAL_AVGPOOL, gap_name, &trunk, 1, NULL, &gap);
    if (st == LOP_OK)
        st = lop_graph_add(fresh, LOP_LINEAR, last->name, &gap, 1, &lin, &fc);
    if (st == LOP_OK && calib)
        st = fit_head(g, fresh, gap, fc, calib, images);
    if (st != LOP_OK) {
        lop_graph_free(fresh);
        return st;
    }
    lop_graph_swap_in(g, fresh);
    return LOP_OK;
}
