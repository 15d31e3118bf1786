/*
 * sample.c - the statistics channel selection works from.  Calibration images run
 * through the network (and, optionally, an original reference network side by side);
 * at random output positions of one convolution (or, for a fully connected layer, once
 * per image, its input features read as c channels of kh x kw) its input patches X and
 * outputs Y
 * (from the reference when given - He et al.'s correction for error accumulated
 * upstream - minus THIS conv's bias, which a refit keeps and adds back) are turned
 * into sufficient statistics, accumulated batch by batch so memory does not grow with
 * the number of samples:
 *   P = X^T X (patch Gram), C = X^T Y, sums of X and Y, Y^T Y, and for the selection
 *   rules the Gram of per-channel contributions Z_j = X_j W_j^T: A = Z^T Z, r = Z^T Y.
 * With `residual`, a conv that feeds batchnorm -> add (a residual block's last conv)
 * gets targets that make the block's sum match the reference's even though the
 * shortcut S (the add's other input) now differs: Y = (a' Y_ref + b' + S_ref - S - b)/a
 * minus the bias, a z + b being the batchnorm here and a' z + b' in the reference.
 * When the layer's own outputs were pruned before, ref_channels names the reference's
 * output channel of each of them, so the targets stay the original network's.
 * Several layers (a channel group's readers) are sampled from one set of passes, each
 * with its own sums and its own copy of the position generator, so each gets the bits
 * it gets alone; the passes stop at the furthest node the layers read.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "internal.h"

enum { Z_FLOATS = 1 << 22 };   /* 16 MiB of per-channel contributions at a time */

lop_sample_opts lop_sample_opts_default(void)
{
    return (lop_sample_opts){.images = 500, .points = 10, .batch = 64, .seed = 1};
}

void lop_stats_free(lop_stats *s)
{
    if (!s)
        return;
    lop_free(s->P);
    lop_free(s->C);
    lop_free(s->A);
    lop_free(s->r);
    lop_free(s->wnorm);
    lop_free(s->xsum);
    lop_free(s->ysum);
    memset(s, 0, sizeof *s);
}

/* Per batch, shared by the layers sampled in turn: the samples' patches X and outputs
 * Y, the contributions Z, and the batch's sums before they join the doubles. */
typedef struct scratch {
    float *X, *Y, *Z, *Pb, *Cb, *Ab;
} scratch;

static void scratch_free(scratch *b)
{
    lop_free(b->X);
    lop_free(b->Y);
    lop_free(b->Z);
    lop_free(b->Pb);
    lop_free(b->Cb);
    lop_free(b->Ab);
}

/* What is sampled: a conv2d's patches at ho x wo positions, or a linear layer's input
 * features once per image, read as c channels of kh x kw (a flatten's source shape, or
 * c features of 1 x 1) so that a channel's weights are a conv filter's. */
typedef struct layer_view {
    const lop_node *src;   /* the node whose output is X */
    int linear, c, h, w, kh, kw, ho, wo, n;
} layer_view;

static int view_layer(const lop_graph *g, int node, layer_view *v)
{
    const lop_node *n = g->nodes[node];
    memset(v, 0, sizeof *v);
    v->n = n->dims[0];
    v->src = lop_input_node(g, n, 0);
    if (n->kind == LOP_CONV2D) {
        v->c = v->src->dims[0];
        v->h = v->src->dims[1];
        v->w = v->src->dims[2];
        v->kh = n->attr.kernel_h;
        v->kw = n->attr.kernel_w;
        v->ho = n->dims[1];
        v->wo = n->dims[2];
        return LOP_OK;
    }
    if (n->kind != LOP_LINEAR)
        return lop_fail(LOP_EINVAL, "sample: '%s' is not a conv2d or linear layer", n->name);
    const lop_node *shape = v->src;
    if (shape->kind == LOP_FLATTEN && lop_input_node(g, shape, 0)->ndim == 3)
        shape = lop_input_node(g, shape, 0);
    v->linear = 1;
    v->c = shape->dims[0];
    v->kh = shape->ndim == 3 ? shape->dims[1] : 1;
    v->kw = shape->ndim == 3 ? shape->dims[2] : 1;
    v->ho = v->wo = 1;
    if ((size_t)v->c * v->kh * v->kw != (size_t)n->param[0]->shape[1])
        return lop_fail(LOP_ESHAPE, "sample: '%s' reads %d features, not %dx%dx%d", n->name,
                        n->param[0]->shape[1], v->c, v->kh, v->kw);
    return LOP_OK;
}

static int check_sample(const lop_graph *g, const lop_dataset *d, int node,
                        const lop_sample_opts *o, const lop_graph *ref, layer_view *v)
{
    if (node < 0 || node >= g->n)
        return lop_fail(LOP_EINVAL, "sample: no node %d", node);
    const lop_node *n = g->nodes[node];
    int st = lop_check_ungrouped(g, node, "sample");
    if (st == LOP_OK)
        st = view_layer(g, node, v);
    if (st == LOP_OK)
        st = lop_dataset_check_input(d, g, "sample");
    if (st != LOP_OK)
        return st;
    if (o->images < 1 || o->points < 1)
        return lop_fail(LOP_EINVAL, "sample: need images >= 1 and points >= 1 (got %d, %d)",
                        o->images, o->points);
    if (o->images > d->n)
        return lop_fail(LOP_EINVAL, "sample: %d images asked, the data set has %d", o->images,
                        d->n);
    if (o->residual && v->linear)
        return lop_fail(LOP_EINVAL, "sample: residual targets need a conv2d, '%s' is linear",
                        n->name);
    if (o->ref_channels && !ref)
        return lop_fail(LOP_EINVAL, "sample: ref_channels without a reference network");
    const lop_node *in = g->nodes[0];
    if (ref) {
        int rid = lop_graph_find(ref, n->name);
        if (rid < 0 || ref->nodes[rid]->kind != n->kind)
            return lop_fail(LOP_EINVAL, "sample: the reference network has no %s '%s'",
                            lop_kind_name(n->kind), n->name);
        const lop_node *rn = ref->nodes[rid];
        if (!o->ref_channels && rn->dims[0] != n->dims[0])
            return lop_fail(LOP_ESHAPE, "sample: '%s' has %d outputs in the reference, %d here "
                            "(pass ref_channels to say which of the reference's they are)",
                            n->name, rn->dims[0], n->dims[0]);
        for (int i = 1; i < n->ndim; i++)
            if (rn->ndim != n->ndim || rn->dims[i] != n->dims[i])
                return lop_fail(LOP_ESHAPE, "sample: '%s' outputs %dx%dx%d in the reference, "
                                "%dx%dx%d here", n->name, rn->dims[0], rn->dims[1], rn->dims[2],
                                n->dims[0], n->dims[1], n->dims[2]);
        for (int k = 0; o->ref_channels && k < n->dims[0]; k++)
            if (o->ref_channels[k] < 0 || o->ref_channels[k] >= rn->dims[0])
                return lop_fail(LOP_EINVAL, "sample: ref_channels[%d] = %d is not a channel of "
                                "the reference's '%s' (0..%d)", k, o->ref_channels[k], n->name,
                                rn->dims[0] - 1);
        const lop_node *rin = ref->nodes[0];
        for (int i = 0; i < in->ndim; i++)
            if (rin->dims[i] != in->dims[i])
                return lop_fail(LOP_ESHAPE, "sample: the reference takes other inputs");
    }
    return LOP_OK;
}

/* The only node reading node id's output, or -1 if none or several do. */
static int only_consumer(const lop_graph *g, int id)
{
    int found = -1;
    for (int j = id + 1; j < g->n; j++)
        for (int k = 0; k < g->nodes[j]->ninputs; k++)
            if (g->nodes[j]->inputs[k] == id) {
                if (found >= 0 && found != j)
                    return -1;
                found = j;
            }
    return found;
}

/* The residual path after conv `node`: its batchnorm, and the add's other input
 * (the shortcut); both as ids of g.  Fails unless conv -> batchnorm -> add(2 inputs)
 * with nothing else reading the conv or the batchnorm. */
typedef struct residual_path {
    int bn, shortcut;
} residual_path;

static int find_residual(const lop_graph *g, int node, residual_path *rp)
{
    const char *name = g->nodes[node]->name;
    int bn = only_consumer(g, node);
    if (bn < 0 || g->nodes[bn]->kind != LOP_BATCHNORM)
        return lop_fail(LOP_EINVAL, "sample: residual needs '%s' to feed one batchnorm only",
                        name);
    int add = only_consumer(g, bn);
    if (add < 0 || g->nodes[add]->kind != LOP_ADD || g->nodes[add]->ninputs != 2)
        return lop_fail(LOP_EINVAL, "sample: residual needs the batchnorm after '%s' to "
                        "feed one two-input add only", name);
    const lop_node *a = g->nodes[add];
    rp->bn = bn;
    rp->shortcut = a->inputs[0] == bn ? a->inputs[1] : a->inputs[0];
    return LOP_OK;
}

/* The same path in the reference, found by the names of g's path. */
static int find_residual_ref(const lop_graph *g, const residual_path *rp, const lop_graph *ref,
                             int rnode, residual_path *rr)
{
    int st = find_residual(ref, rnode, rr);
    if (st != LOP_OK)
        return st;
    if (strcmp(ref->nodes[rr->bn]->name, g->nodes[rp->bn]->name) != 0 ||
        strcmp(ref->nodes[rr->shortcut]->name, g->nodes[rp->shortcut]->name) != 0)
        return lop_fail(LOP_EINVAL, "sample: the residual path after '%s' differs in the "
                        "reference", ref->nodes[rnode]->name);
    return LOP_OK;
}

/* The reference's output channel for channel k here (the identity without a map). */
static int ref_channel(const int *ref_channels, int k)
{
    return ref_channels ? ref_channels[k] : k;
}

/* The batchnorms' maps per output channel k, into affine[4 k ..]: a, b here, a', b' in
 * the reference (y = a z + b, the reference's at k's channel there). */
static void residual_affine(const lop_graph *g, const residual_path *rp, const lop_graph *ref,
                            const residual_path *rr, const int *ref_channels, int n,
                            float *affine)
{
    for (int k = 0; k < n; k++) {
        lop_batchnorm_affine(g->nodes[rp->bn], k, &affine[4 * k], &affine[4 * k + 1]);
        lop_batchnorm_affine(ref->nodes[rr->bn], ref_channel(ref_channels, k),
                             &affine[4 * k + 2], &affine[4 * k + 3]);
    }
}

/* The residual target of output channel k at flat position `at` here, `at_ref` in the
 * reference (see the top). */
static float residual_target(const lop_graph *g, const residual_path *rp, const lop_graph *ref,
                             const residual_path *rr, const float *affine, int k, size_t at,
                             size_t at_ref, float yref, const float *bias)
{
    const float a = affine[4 * k], b = affine[4 * k + 1];
    float sum_ref = affine[4 * k + 2] * yref + affine[4 * k + 3] +
                    ref->nodes[rr->shortcut]->out->data[at_ref];
    float z = fabsf(a) > 1e-12f ? (sum_ref - g->nodes[rp->shortcut]->out->data[at] - b) / a
                                : yref;   /* a dead channel: nothing here can match */
    return z - (bias ? bias[k] : 0);
}

/* The patch of image b at output position (p, q), zero-padded, into x (D floats,
 * channel major, then kernel row, then kernel column - the weight's layout); for a
 * linear layer, the image's features. */
static void patch(const lop_node *layer, const layer_view *v, const float *in, int p, int q,
                  float *x)
{
    const int c = v->c, h = v->h, w = v->w;
    if (v->linear) {
        memcpy(x, in, (size_t)c * v->kh * v->kw * sizeof *x);
        return;
    }
    const lop_attrs *a = &layer->attr;
    for (int j = 0; j < c; j++)
        for (int u = 0; u < a->kernel_h; u++) {
            int y = p * a->stride_h - a->pad_h + u;
            for (int t = 0; t < a->kernel_w; t++) {
                int xx = q * a->stride_w - a->pad_w + t;
                *x++ = (y >= 0 && y < h && xx >= 0 && xx < w)
                           ? in[((size_t)j * h + y) * w + xx] : 0.0f;
            }
        }
}

static void add_into(double *dst, const float *src, size_t count)
{
    for (size_t i = 0; i < count; i++)
        dst[i] += src[i];
}

/* One layer's sampling within a shared pass: what it reads, where its targets come
 * from, its own copy of the position generator, and its sums. */
typedef struct sampler {
    int node, rid, ref_n;
    int last, ref_last;   /* the furthest nodes its reads need computed, here and in ref */
    layer_view v;
    residual_path rp, rr;
    const int *ref_channels;
    float *affine;        /* residual targets: the batchnorms' maps (residual_affine) */
    lop_rng rng;
    lop_stats s;
} sampler;

static void sampler_free(sampler *sm)
{
    lop_free(sm->affine);
    lop_stats_free(&sm->s);
}

/* Everything but the sums' data: paths, allocations, the filter norms. */
static int sampler_open(lop_graph *g, lop_graph *ref, int node, const lop_sample_opts *o,
                        const layer_view *v, sampler *sm)
{
    const lop_node *conv = g->nodes[node];
    const int c = v->c, kk = v->kh * v->kw, D = c * kk, n = v->n;
    sm->node = sm->last = node;
    sm->v = *v;
    sm->ref_channels = o->ref_channels;
    sm->rid = sm->ref_last = ref ? lop_graph_find(ref, conv->name) : node;
    sm->ref_n = ref ? ref->nodes[sm->rid]->dims[0] : n;
    int st;
    if (o->residual) {
        if (!ref)
            return lop_fail(LOP_EINVAL, "sample: residual targets need a reference network");
        if ((st = find_residual(g, node, &sm->rp)) != LOP_OK ||
            (st = find_residual_ref(g, &sm->rp, ref, sm->rid, &sm->rr)) != LOP_OK)
            return st;
        /* The shortcut may come after this layer in the graph's order. */
        sm->last = sm->rp.shortcut > node ? sm->rp.shortcut : node;
        sm->ref_last = sm->rr.shortcut > sm->rid ? sm->rr.shortcut : sm->rid;
    }
    lop_stats *s = &sm->s;
    s->node = node;
    s->generation = g->generation;
    s->c = c;
    s->kh = v->kh;
    s->kw = v->kw;
    s->n = n;
    s->P = lop_calloc((size_t)D * D, sizeof(double));
    s->C = lop_calloc((size_t)D * n, sizeof(double));
    s->A = lop_calloc((size_t)c * c, sizeof(double));
    s->r = lop_calloc((size_t)c, sizeof(double));
    s->wnorm = lop_calloc((size_t)c, sizeof(double));
    s->xsum = lop_calloc((size_t)D, sizeof(double));
    s->ysum = lop_calloc((size_t)n, sizeof(double));
    if (o->residual)
        sm->affine = lop_malloc((size_t)4 * n * sizeof(float));
    if (!s->P || !s->C || !s->A || !s->r || !s->wnorm || !s->xsum || !s->ysum ||
        (o->residual && !sm->affine))
        return LOP_ENOMEM;
    if (o->residual)
        residual_affine(g, &sm->rp, ref, &sm->rr, sm->ref_channels, n, sm->affine);
    const float *W = conv->param[0]->data;
    for (int k = 0; k < n; k++)            /* ||W_j||_F over every output and tap */
        for (int j = 0; j < c; j++)
            for (int e = 0; e < kk; e++)
                s->wnorm[j] += (double)W[((size_t)k * c + j) * kk + e] *
                               W[((size_t)k * c + j) * kk + e];
    for (int j = 0; j < c; j++)
        s->wnorm[j] = sqrt(s->wnorm[j]);
    return LOP_OK;
}

/* Images per calibration batch (o->batch, 64 when unset). */
static int batch_images(const lop_sample_opts *o)
{
    return o->batch > 0 ? o->batch : 64;
}

/* Sample rows a batch gives a layer: points per image, one for a linear layer. */
static int rows_per_batch(const layer_view *v, const lop_sample_opts *o)
{
    return batch_images(o) * (v->linear ? 1 : o->points);
}

/* Rows of Z per chunk: Z holds c * rows * n floats, at most Z_FLOATS. */
static int z_rows(const layer_view *v, int per_batch)
{
    const size_t zfit = (size_t)Z_FLOATS / ((size_t)v->n * v->c);
    return zfit < 1 ? 1 : zfit > (size_t)per_batch ? per_batch : (int)zfit;
}

/* The batch's count images, just run through g (and ref), into sm's sums. */
static void sampler_add(sampler *sm, const lop_graph *g, const lop_graph *ref,
                        const lop_sample_opts *o, int count, scratch *b)
{
    const layer_view *v = &sm->v;
    const lop_node *conv = g->nodes[sm->node];
    const int c = v->c, kk = v->kh * v->kw, D = c * kk, n = v->n;
    const int ho = v->ho, wo = v->wo, points = v->linear ? 1 : o->points;
    const int zrows = z_rows(v, rows_per_batch(v, o));
    const float *W = conv->param[0]->data, *bias = conv->attr.bias ? conv->param[1]->data : NULL;
    lop_stats *s = &sm->s;
    const float *xin = v->src->out->data;
    const float *yout = (ref ? ref->nodes[sm->rid] : conv)->out->data;
    const size_t image_in = (size_t)c * (v->linear ? (size_t)kk : (size_t)v->h * v->w);
    int m = count * points;
    for (int im = 0; im < count; im++)
        for (int t = 0; t < points; t++) {
            int row = im * points + t;
            int p = v->linear ? 0 : lop_rng_below(&sm->rng, ho);
            int q = v->linear ? 0 : lop_rng_below(&sm->rng, wo);
            patch(conv, v, xin + (size_t)im * image_in, p, q, b->X + (size_t)row * D);
            for (int k = 0; k < n; k++) {
                size_t at = (((size_t)im * n + k) * ho + p) * wo + q;
                size_t at_ref =
                    (((size_t)im * sm->ref_n + ref_channel(sm->ref_channels, k)) * ho + p) * wo +
                    q;
                b->Y[(size_t)row * n + k] = o->residual
                    ? residual_target(g, &sm->rp, ref, &sm->rr, sm->affine, k, at, at_ref,
                                      yout[at_ref], bias)
                    : yout[at_ref] - (bias ? bias[k] : 0);
            }
        }
    /* P += X^T X, C += X^T Y (in float per batch, summed in double) */
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, D, m, 1.0f, b->X, D, 0.0f, b->Pb, D);
    for (int i = 0; i < D; i++)
        for (int j = i; j < D; j++) {
            s->P[(size_t)i * D + j] += b->Pb[(size_t)i * D + j];
            if (j != i)
                s->P[(size_t)j * D + i] += b->Pb[(size_t)i * D + j];
        }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, n, m, 1.0f, b->X, D, b->Y, n,
                0.0f, b->Cb, n);
    add_into(s->C, b->Cb, (size_t)D * n);
    /* Z_j[row, k] = X_j(row) . W[k, j, :], one product per channel; Z is laid out as c
     * rows of (rows x n) contributions, so A += Z Z^T; rows go in chunks that keep Z
     * under Z_FLOATS */
    for (int r0 = 0; r0 < m; r0 += zrows) {
        int mr = m - r0 < zrows ? m - r0 : zrows;
        size_t len = (size_t)mr * n;
        for (int j = 0; j < c; j++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mr, n, kk, 1.0f,
                        b->X + (size_t)r0 * D + (size_t)j * kk, D, W + (size_t)j * kk, D,
                        0.0f, b->Z + (size_t)j * len, n);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, c, (int)len, 1.0f, b->Z,
                    (int)len, 0.0f, b->Ab, c);
        for (int i = 0; i < c; i++)
            for (int j = i; j < c; j++) {
                s->A[(size_t)i * c + j] += b->Ab[(size_t)i * c + j];
                if (j != i)
                    s->A[(size_t)j * c + i] += b->Ab[(size_t)i * c + j];
            }
        const float *y = b->Y + (size_t)r0 * n;
        for (int j = 0; j < c; j++) {
            const float *z = b->Z + (size_t)j * len;
            double acc = 0;
            for (size_t e = 0; e < len; e++)
                acc += (double)z[e] * y[e];
            s->r[j] += acc;
        }
    }
    for (int row = 0; row < m; row++) {
        const float *x = b->X + (size_t)row * D, *y = b->Y + (size_t)row * n;
        for (int i = 0; i < D; i++)
            s->xsum[i] += x[i];
        for (int k = 0; k < n; k++) {
            s->ysum[k] += y[k];
            s->yy += (double)y[k] * y[k];
        }
    }
    s->m += m;
}

/* The shared scratch, sized for the largest of the layers sampled. */
static int scratch_open(const sampler *sms, int count, const lop_sample_opts *o, scratch *b)
{
    size_t x = 1, y = 1, z = 1, pb = 1, cb = 1, ab = 1;
    for (int i = 0; i < count; i++) {
        const layer_view *v = &sms[i].v;
        const size_t D = (size_t)v->c * v->kh * v->kw;
        const int per_batch = rows_per_batch(v, o);
#define AT_LEAST(var, value) var = (value) > var ? (value) : var
        AT_LEAST(x, (size_t)per_batch * D);
        AT_LEAST(y, (size_t)per_batch * v->n);
        AT_LEAST(z, (size_t)z_rows(v, per_batch) * v->n * v->c);
        AT_LEAST(pb, D * D);
        AT_LEAST(cb, D * v->n);
        AT_LEAST(ab, (size_t)v->c * v->c);
#undef AT_LEAST
    }
    b->X = lop_malloc(x * sizeof(float));
    b->Y = lop_malloc(y * sizeof(float));
    b->Z = lop_malloc(z * sizeof(float));
    b->Pb = lop_malloc(pb * sizeof(float));
    b->Cb = lop_malloc(cb * sizeof(float));
    b->Ab = lop_malloc(ab * sizeof(float));
    return b->X && b->Y && b->Z && b->Pb && b->Cb && b->Ab ? LOP_OK : LOP_ENOMEM;
}

int lop_sample_layers(lop_graph *g, const lop_dataset *d, const int *nodes, int count,
                      const lop_sample_opts *o, const int *const *ref_channels,
                      lop_graph *ref, lop_stats *out)
{
    if (count < 1)
        return lop_fail(LOP_EINVAL, "sample: no layers to sample");
    sampler *sms = lop_calloc((size_t)count, sizeof *sms);
    if (!sms)
        return LOP_ENOMEM;
    scratch b = {0};
    lop_loader *loader = NULL;
    lop_tensor *x = NULL;
    int *order = NULL;
    int st = LOP_OK, last = 0, ref_last = 0;
    for (int i = 0; st == LOP_OK && i < count; i++) {
        lop_sample_opts oi = *o;
        oi.ref_channels = ref_channels ? ref_channels[i] : NULL;
        layer_view v;
        if ((st = check_sample(g, d, nodes[i], &oi, ref, &v)) == LOP_OK &&
            (st = sampler_open(g, ref, nodes[i], &oi, &v, &sms[i])) == LOP_OK) {
            last = sms[i].last > last ? sms[i].last : last;
            ref_last = sms[i].ref_last > ref_last ? sms[i].ref_last : ref_last;
        }
    }
    if (st == LOP_OK)
        st = scratch_open(sms, count, o, &b);
    if (st == LOP_OK && !(order = lop_malloc((size_t)d->n * sizeof(int))))
        st = LOP_ENOMEM;
    if (st != LOP_OK)
        goto done;
    /* One image order for all; each layer draws its positions from its own copy of the
     * generator, so it gets the samples lop_sample gives it alone. */
    lop_rng rng;
    lop_rng_seed(&rng, o->seed);
    for (int i = 0; i < d->n; i++)
        order[i] = i;
    lop_shuffle(order, d->n, &rng);
    for (int i = 0; i < count; i++)
        sms[i].rng = rng;
    if ((st = lop_loader_open(d, order, o->images, batch_images(o), NULL, NULL, &loader)) !=
        LOP_OK)
        goto done;
    int got;
    while ((st = lop_loader_next(loader, &x, NULL, &got)) == LOP_OK && got > 0) {
        if ((st = lop_graph_forward_until(g, x, last)) != LOP_OK ||
            (ref && (st = lop_graph_forward_until(ref, x, ref_last)) != LOP_OK))
            break;
        for (int i = 0; i < count; i++)
            sampler_add(&sms[i], g, ref, o, got, &b);
    }
    if (st == LOP_OK && sms[0].s.m == 0)
        st = lop_fail(LOP_EIO, "sample: every image was skipped as unreadable");
done:
    lop_loader_close(loader);
    lop_tensor_release(x);
    lop_free(order);
    scratch_free(&b);
    for (int i = 0; i < count; i++) {
        if (st == LOP_OK) {
            out[i] = sms[i].s;
            memset(&sms[i].s, 0, sizeof sms[i].s);
        }
        sampler_free(&sms[i]);
    }
    lop_free(sms);
    return st;
}

int lop_sample(lop_graph *g, const lop_dataset *d, int node, const lop_sample_opts *o,
               lop_graph *ref, lop_stats *out)
{
    const int *const maps[1] = {o->ref_channels};
    return lop_sample_layers(g, d, &node, 1, o, maps, ref, out);
}
