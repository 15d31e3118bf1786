/*
 * gradcheck.c - central-difference gradient checking for any graph.  The loss is a
 * fixed random projection of the output, so every output element's gradient path is
 * exercised; entries are sampled so big layers stay quick to check.  Also the check
 * that a backward pass never adds into a gradient buffer left over from the last one.
 */
#include <math.h>
#include <string.h>

#include "gradcheck.h"
#include "../engine/internal.h"

#define MAX_ENTRIES 48

lop_tensor *gradcheck_random(int ndim, const int *shape, uint64_t seed)
{
    lop_tensor *t = lop_tensor_new(ndim, shape);
    lop_rng r;
    lop_rng_seed(&r, seed);
    for (size_t i = 0; t && i < t->numel; i++)
        t->data[i] = (float)(2.0 * lop_rng_uniform(&r) - 1.0);
    return t;
}

/* Loss of one forward pass with the rng rewound to the same state each time. */
static int projected_loss(lop_graph *g, const lop_tensor *x, int train, const lop_rng *rng0,
                          const lop_tensor *R, double *loss)
{
    g->rng = *rng0;
    if (lop_graph_forward(g, x, train) != LOP_OK)
        return -1;
    const lop_tensor *out = lop_graph_output(g);
    double s = 0;
    for (size_t i = 0; i < out->numel; i++)
        s += (double)out->data[i] * R->data[i];
    *loss = s;
    return 0;
}

/* Worst relative error over sampled entries of `value` against `analytic`. */
static double check_tensor(lop_graph *g, lop_tensor *value, const float *analytic,
                           const lop_tensor *x, int train, const lop_rng *rng0,
                           const lop_tensor *R, double h, lop_rng *pick)
{
    double worst = 0;
    size_t n = value->numel;
    size_t count = n < MAX_ENTRIES ? n : MAX_ENTRIES;
    for (size_t e = 0; e < count; e++) {
        size_t i = n <= MAX_ENTRIES ? e : (size_t)(lop_rng_uniform(pick) * n);
        float saved = value->data[i];
        double lp, lm;
        value->data[i] = (float)(saved + h);
        int bad = projected_loss(g, x, train, rng0, R, &lp);
        value->data[i] = (float)(saved - h);
        bad |= projected_loss(g, x, train, rng0, R, &lm);
        value->data[i] = saved;
        if (bad)
            return -1;
        double numeric = (lp - lm) / (2 * h);
        double a = analytic[i];
        double denom = fabs(a) + fabs(numeric);
        double rel = fabs(a - numeric) / (denom > 1e-3 ? denom : 1e-3);
        if (isnan(rel))
            rel = HUGE_VAL;   /* a NaN gradient is as wrong as can be, not skipped */
        if (rel > worst)
            worst = rel;
    }
    return worst;
}

double gradcheck_graph(lop_graph *g, const lop_tensor *x, int train, double h,
                       uint64_t seed)
{
    lop_rng rng0 = g->rng, pick;
    lop_rng_seed(&pick, seed ^ 0x5eed);
    double worst = -1;
    lop_tensor *xc = lop_tensor_clone(x);
    lop_tensor *R = NULL, *dx = NULL;
    float **grads = NULL;
    int total_params = 0;
    if (!xc)
        goto done;
    g->rng = rng0;
    if (lop_graph_forward(g, xc, train) != LOP_OK)
        goto done;
    const lop_tensor *out = lop_graph_output(g);
    R = gradcheck_random(out->ndim, out->shape, seed);
    if (!R)
        goto done;
    lop_graph_zero_grad(g);
    if (lop_graph_backward(g, R) != LOP_OK)
        goto done;
    dx = lop_tensor_clone(lop_graph_input_grad(g));
    for (int i = 0; i < g->n; i++)
        total_params += g->nodes[i]->nparams;
    grads = lop_calloc((size_t)total_params + 1, sizeof *grads);
    if (!dx || !grads)
        goto done;
    /* Snapshot analytic gradients: the finite-difference passes don't touch them,
     * but copying keeps the check independent of that. */
    int k = 0;
    for (int i = 0; i < g->n; i++)
        for (int p = 0; p < g->nodes[i]->nparams; p++, k++) {
            lop_tensor *gr = g->nodes[i]->grad[p];
            if (!gr)
                continue;
            grads[k] = lop_malloc(gr->numel * sizeof(float));
            if (!grads[k])
                goto done;
            memcpy(grads[k], gr->data, gr->numel * sizeof(float));
        }

    worst = check_tensor(g, xc, dx->data, xc, train, &rng0, R, h, &pick);
    k = 0;
    for (int i = 0; i < g->n && worst >= 0; i++)
        for (int p = 0; p < g->nodes[i]->nparams && worst >= 0; p++, k++) {
            if (!grads[k])
                continue;
            double e = check_tensor(g, g->nodes[i]->param[p], grads[k], xc, train, &rng0, R,
                                    h, &pick);
            worst = e < 0 ? e : (e > worst ? e : worst);
        }
done:
    if (grads)
        for (int i = 0; i < total_params; i++)
            lop_free(grads[i]);
    lop_free(grads);
    lop_tensor_release(dx);
    lop_tensor_release(R);
    lop_tensor_release(xc);
    g->rng = rng0;
    return worst;
}

/* Every node's activation gradient set to NaN. */
static void fill_grads_nan(lop_graph *g)
{
    for (int i = 0; i < g->n; i++)
        lop_tensor_fill(g->nodes[i]->dout, NAN);
}

static int all_finite(const lop_tensor *t)
{
    for (size_t i = 0; i < t->numel; i++)
        if (!isfinite(t->data[i]))
            return 0;
    return 1;
}

int gradcheck_poisoned(lop_graph *g, const lop_tensor *x, uint64_t seed)
{
    lop_rng rng0 = g->rng;
    lop_tensor *R = NULL;
    int result = -1;
    if (lop_graph_forward(g, x, 1) != LOP_OK)
        goto done;
    const lop_tensor *out = lop_graph_output(g);
    R = gradcheck_random(out->ndim, out->shape, seed);
    if (!R || lop_graph_backward(g, R) != LOP_OK)
        goto done;
    fill_grads_nan(g);
    lop_graph_zero_grad(g);
    g->rng = rng0;
    if (lop_graph_forward(g, x, 1) != LOP_OK || lop_graph_backward(g, R) != LOP_OK)
        goto done;
    result = 1;
    for (int i = 0; i < g->n; i++) {
        const lop_node *n = g->nodes[i];
        /* a batchnorm or add fused with its relu has no gradient of its own */
        result &= n->train_tail || all_finite(n->dout);
        for (int p = 0; p < n->nparams; p++)
            result &= !n->grad[p] || all_finite(n->grad[p]);
    }
    fill_grads_nan(g);
done:
    lop_tensor_release(R);
    g->rng = rng0;
    return result;
}
