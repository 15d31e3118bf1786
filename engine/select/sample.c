/*
 * sample.c - the statistics channel selection works from.  Calibration images run
 * through the network (and, optionally, an original reference network side by side);
 * at random output positions of one convolution its input patches X and outputs Y
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

/* Per batch: the samples' patches and outputs, and the contributions Z; with residual
 * targets, the two batchnorms' per-channel affine maps (see residual_target). */
typedef struct buffers {
    float *X, *Y, *Z, *Pb, *Cb, *Ab, *affine;
    lop_tensor *x;
    int *order;
} buffers;

static void buffers_free(buffers *b)
{
    lop_free(b->X);
    lop_free(b->Y);
    lop_free(b->Z);
    lop_free(b->Pb);
    lop_free(b->Cb);
    lop_free(b->Ab);
    lop_free(b->affine);
    lop_tensor_release(b->x);
    lop_free(b->order);
}

static int check_sample(const lop_graph *g, const lop_dataset *d, int node,
                        const lop_sample_opts *o, const lop_graph *ref)
{
    if (node < 0 || node >= g->n || g->nodes[node]->kind != LOP_CONV2D)
        return lop_fail(LOP_EINVAL, "sample: node %d is not a conv2d", node);
    const lop_node *n = g->nodes[node];
    int st = lop_check_ungrouped(g, node, "sample");
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
    const lop_node *in = g->nodes[0];
    if (ref) {
        int rid = lop_graph_find(ref, n->name);
        if (rid < 0 || ref->nodes[rid]->kind != LOP_CONV2D)
            return lop_fail(LOP_EINVAL, "sample: the reference network has no conv2d '%s'",
                            n->name);
        const lop_node *rn = ref->nodes[rid];
        if (rn->dims[0] != n->dims[0] || rn->dims[1] != n->dims[1] || rn->dims[2] != n->dims[2])
            return lop_fail(LOP_ESHAPE, "sample: '%s' outputs %dx%dx%d in the reference, "
                            "%dx%dx%d here", n->name, rn->dims[0], rn->dims[1], rn->dims[2],
                            n->dims[0], n->dims[1], n->dims[2]);
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

/* The batchnorms' maps per output channel k, into affine[4 k ..]: a, b here, a', b' in
 * the reference (y = a z + b). */
static void residual_affine(const lop_graph *g, const residual_path *rp, const lop_graph *ref,
                            const residual_path *rr, int n, float *affine)
{
    for (int k = 0; k < n; k++) {
        lop_batchnorm_affine(g->nodes[rp->bn], k, &affine[4 * k], &affine[4 * k + 1]);
        lop_batchnorm_affine(ref->nodes[rr->bn], k, &affine[4 * k + 2], &affine[4 * k + 3]);
    }
}

/* The residual target of output channel k at flat position `at` (see the top). */
static float residual_target(const lop_graph *g, const residual_path *rp, const lop_graph *ref,
                             const residual_path *rr, const float *affine, int k, size_t at,
                             float yref, const float *bias)
{
    const float a = affine[4 * k], b = affine[4 * k + 1];
    float sum_ref = affine[4 * k + 2] * yref + affine[4 * k + 3] +
                    ref->nodes[rr->shortcut]->out->data[at];
    float z = fabsf(a) > 1e-12f ? (sum_ref - g->nodes[rp->shortcut]->out->data[at] - b) / a
                                : yref;   /* a dead channel: nothing here can match */
    return z - (bias ? bias[k] : 0);
}

/* Patch of image b at output position (p, q), zero-padded, into x (D floats, channel
 * major, then kernel row, then kernel column - the weight's layout). */
static void patch(const lop_node *conv, const float *in, int c, int h, int w, int p, int q,
                  float *x)
{
    const lop_attrs *a = &conv->attr;
    for (int j = 0; j < c; j++)
        for (int u = 0; u < a->kernel_h; u++) {
            int y = p * a->stride_h - a->pad_h + u;
            for (int v = 0; v < a->kernel_w; v++) {
                int xx = q * a->stride_w - a->pad_w + v;
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

int lop_sample(lop_graph *g, const lop_dataset *d, int node, const lop_sample_opts *o,
               lop_graph *ref, lop_stats *out)
{
    int st = check_sample(g, d, node, o, ref);
    if (st != LOP_OK)
        return st;
    const lop_node *conv = g->nodes[node];
    const lop_node *src = lop_input_node(g, conv, 0);
    const int c = src->dims[0], h = src->dims[1], w = src->dims[2];
    const int kk = conv->attr.kernel_h * conv->attr.kernel_w, D = c * kk, n = conv->dims[0];
    const int ho = conv->dims[1], wo = conv->dims[2], batch = o->batch > 0 ? o->batch : 64;
    const int per_batch = batch * o->points;
    /* rows of Z per chunk: Z holds c * rows * n floats, at most Z_FLOATS */
    const size_t zfit = (size_t)Z_FLOATS / ((size_t)n * c);
    const int zrows = zfit < 1 ? 1 : zfit > (size_t)per_batch ? per_batch : (int)zfit;
    const int rid = ref ? lop_graph_find(ref, conv->name) : node;
    const float *W = conv->param[0]->data, *bias = conv->attr.bias ? conv->param[1]->data : NULL;
    residual_path rp, rr;
    if (o->residual) {
        if (!ref)
            return lop_fail(LOP_EINVAL, "sample: residual targets need a reference network");
        if ((st = find_residual(g, node, &rp)) != LOP_OK ||
            (st = find_residual_ref(g, &rp, ref, rid, &rr)) != LOP_OK)
            return st;
    }

    lop_stats s = {0};
    buffers b = {0};
    lop_loader *loader = NULL;
    s.node = node;
    s.generation = g->generation;
    s.c = c;
    s.kh = conv->attr.kernel_h;
    s.kw = conv->attr.kernel_w;
    s.n = n;
    s.P = lop_calloc((size_t)D * D, sizeof(double));
    s.C = lop_calloc((size_t)D * n, sizeof(double));
    s.A = lop_calloc((size_t)c * c, sizeof(double));
    s.r = lop_calloc((size_t)c, sizeof(double));
    s.wnorm = lop_calloc((size_t)c, sizeof(double));
    s.xsum = lop_calloc((size_t)D, sizeof(double));
    s.ysum = lop_calloc((size_t)n, sizeof(double));
    b.X = lop_malloc((size_t)per_batch * D * sizeof(float));
    b.Y = lop_malloc((size_t)per_batch * n * sizeof(float));
    b.Z = lop_malloc((size_t)zrows * n * c * sizeof(float));
    b.Pb = lop_malloc((size_t)D * D * sizeof(float));
    b.Cb = lop_malloc((size_t)D * n * sizeof(float));
    b.Ab = lop_malloc((size_t)c * c * sizeof(float));
    b.order = lop_malloc((size_t)d->n * sizeof(int));
    if (o->residual)
        b.affine = lop_malloc((size_t)4 * n * sizeof(float));
    if (!s.P || !s.C || !s.A || !s.r || !s.wnorm || !s.xsum || !s.ysum || !b.X || !b.Y || !b.Z || !b.Pb ||
        !b.Cb || !b.Ab || !b.order || (o->residual && !b.affine)) {
        st = LOP_ENOMEM;
        goto done;
    }
    if (o->residual)
        residual_affine(g, &rp, ref, &rr, n, b.affine);
    for (int k = 0; k < n; k++)            /* ||W_j||_F over every output and tap */
        for (int j = 0; j < c; j++)
            for (int e = 0; e < kk; e++)
                s.wnorm[j] += (double)W[((size_t)k * c + j) * kk + e] *
                              W[((size_t)k * c + j) * kk + e];
    for (int j = 0; j < c; j++)
        s.wnorm[j] = sqrt(s.wnorm[j]);
    lop_rng rng;
    lop_rng_seed(&rng, o->seed);
    for (int i = 0; i < d->n; i++)
        b.order[i] = i;
    lop_shuffle(b.order, d->n, &rng);
    if ((st = lop_loader_open(d, b.order, o->images, batch, NULL, NULL, &loader)) != LOP_OK)
        goto done;
    int count;
    while ((st = lop_loader_next(loader, &b.x, NULL, &count)) == LOP_OK && count > 0) {
        if ((st = lop_graph_forward(g, b.x, 0)) != LOP_OK ||
            (ref && (st = lop_graph_forward(ref, b.x, 0)) != LOP_OK))
            break;
        const float *xin = src->out->data;
        const float *yout = (ref ? ref->nodes[rid] : conv)->out->data;
        int m = count * o->points;
        for (int im = 0; im < count; im++)
            for (int t = 0; t < o->points; t++) {
                int row = im * o->points + t;
                int p = lop_rng_below(&rng, ho), q = lop_rng_below(&rng, wo);
                patch(conv, xin + (size_t)im * c * h * w, c, h, w, p, q, b.X + (size_t)row * D);
                for (int k = 0; k < n; k++) {
                    size_t at = (((size_t)im * n + k) * ho + p) * wo + q;
                    b.Y[(size_t)row * n + k] = o->residual
                        ? residual_target(g, &rp, ref, &rr, b.affine, k, at, yout[at], bias)
                        : yout[at] - (bias ? bias[k] : 0);
                }
            }
        /* P += X^T X, C += X^T Y (in float per batch, summed in double) */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, D, m, 1.0f, b.X, D, 0.0f, b.Pb, D);
        for (int i = 0; i < D; i++)
            for (int j = i; j < D; j++) {
                s.P[(size_t)i * D + j] += b.Pb[(size_t)i * D + j];
                if (j != i)
                    s.P[(size_t)j * D + i] += b.Pb[(size_t)i * D + j];
            }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, n, m, 1.0f, b.X, D, b.Y, n,
                    0.0f, b.Cb, n);
        add_into(s.C, b.Cb, (size_t)D * n);
        /* Z_j[row, k] = X_j(row) . W[k, j, :], one product per channel; Z is laid out
         * as c rows of (rows x n) contributions, so A += Z Z^T; rows go in chunks that
         * keep Z under Z_FLOATS */
        for (int r0 = 0; r0 < m; r0 += zrows) {
            int mr = m - r0 < zrows ? m - r0 : zrows;
            size_t len = (size_t)mr * n;
            for (int j = 0; j < c; j++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mr, n, kk, 1.0f,
                            b.X + (size_t)r0 * D + (size_t)j * kk, D, W + (size_t)j * kk, D,
                            0.0f, b.Z + (size_t)j * len, n);
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, c, (int)len, 1.0f, b.Z,
                        (int)len, 0.0f, b.Ab, c);
            for (int i = 0; i < c; i++)
                for (int j = i; j < c; j++) {
                    s.A[(size_t)i * c + j] += b.Ab[(size_t)i * c + j];
                    if (j != i)
                        s.A[(size_t)j * c + i] += b.Ab[(size_t)i * c + j];
                }
            const float *y = b.Y + (size_t)r0 * n;
            for (int j = 0; j < c; j++) {
                const float *z = b.Z + (size_t)j * len;
                double acc = 0;
                for (size_t e = 0; e < len; e++)
                    acc += (double)z[e] * y[e];
                s.r[j] += acc;
            }
        }
        for (int row = 0; row < m; row++) {
            const float *x = b.X + (size_t)row * D, *y = b.Y + (size_t)row * n;
            for (int i = 0; i < D; i++)
                s.xsum[i] += x[i];
            for (int k = 0; k < n; k++) {
                s.ysum[k] += y[k];
                s.yy += (double)y[k] * y[k];
            }
        }
        s.m += m;
    }
    if (st == LOP_OK && s.m == 0)
        st = lop_fail(LOP_EIO, "sample: every image was skipped as unreadable");
done:
    lop_loader_close(loader);
    buffers_free(&b);
    if (st != LOP_OK) {
        lop_stats_free(&s);
        return st;
    }
    *out = s;
    return LOP_OK;
}
