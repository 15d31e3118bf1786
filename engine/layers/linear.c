/*
 * linear.c - the fully connected layer y = x W^T + b on feature vectors.  The products
 * run on lop_sgemm (gemm.h; a single input's on cblas_sgemv), which is where the time goes;
 * the weight is [out, in] (PyTorch's layout) so pruning an input feature removes a
 * column.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "internal.h"
#include "layers/gemm.h"

enum { LIN_WEIGHT, LIN_BIAS };

static int linear_infer(const lop_graph *g, lop_node *n)
{
    if (n->ninputs != 1)
        return lop_fail(LOP_EINVAL, "linear '%s' takes 1 input, got %d", n->name, n->ninputs);
    const lop_node *in = lop_input_node(g, n, 0);
    if (in->ndim != 1)
        return lop_fail(LOP_ESHAPE,
                        "linear '%s' needs a feature vector (rank 1), '%s' gives rank %d "
                        "(add a flatten or global_avgpool)", n->name, in->name, in->ndim);
    if (n->attr.out_channels < 1)
        return lop_fail(LOP_EINVAL, "linear '%s': out_channels must be at least 1, got %d",
                        n->name, n->attr.out_channels);
    if (n->attr.bias != 0 && n->attr.bias != 1)
        return lop_fail(LOP_EINVAL, "linear '%s': bias must be 0 or 1, got %d", n->name,
                        n->attr.bias);
    n->ndim = 1;
    n->dims[0] = n->attr.out_channels;
    return LOP_OK;
}

static int linear_init(const lop_graph *g, lop_node *n, lop_rng *rng)
{
    int in = lop_input_node(g, n, 0)->dims[0], out = n->dims[0];
    int shape[2] = {out, in};
    int st = lop_node_add_param(n, "weight", 2, shape, 1);
    if (st == LOP_OK && n->attr.bias)
        st = lop_node_add_param(n, "bias", 1, &out, 1);
    if (st != LOP_OK)
        return st;
    /* Uniform in +-1/sqrt(in), PyTorch's default for linear layers: a fully connected
     * head with Kaiming-normal weights (2.4x larger) and dropout diverges at the
     * learning rates the reference recipes use (VGG-16 at lr 0.05 stays at chance). */
    lop_tensor *w = n->param[LIN_WEIGHT];
    double bound = 1.0 / sqrt((double)in);
    for (size_t i = 0; i < w->numel; i++)
        w->data[i] = (float)(bound * (2.0 * lop_rng_uniform(rng) - 1.0));
    return LOP_OK;
}

/* The products are split across the worker threads by hand (OpenBLAS runs
 * single-threaded inside them).  Each product is cut along the longer side of its
 * result, so every thread writes its own rows or columns, no sum depends on the
 * number of threads, and the operand each thread reads in full is the smaller one
 * (the weight, for the usual batch sizes, is read once in all).  GRAIN is the fewest
 * multiply-adds worth a thread. */
#define GRAIN (1L << 18)

/* One row-major product C = op(A) op(B) + beta C, the side it is cut along and into
 * how many parts.  The parts depend on the shapes only: OpenBLAS's kernels for a row
 * or column of C can differ with the product's size (its Haswell kernels do), so a
 * cut per thread would make the result depend on the number of threads. */
typedef struct gemm_job {
    CBLAS_TRANSPOSE ta, tb;
    int m, n, k, lda, ldb, ldc;
    const float *a, *b;
    float beta;
    float *c;
    int by_rows;
    long side, parts;
} gemm_job;

static void gemm_parts(void *ctx, long first, long last, int worker)
{
    const gemm_job *j = ctx;
    for (long part = first; part < last; part++) {
        long p0 = j->side * part / j->parts, p1 = j->side * (part + 1) / j->parts;
        int len = (int)(p1 - p0);
        if (j->by_rows)
            lop_sgemm(j->ta, j->tb, len, j->n, j->k, 1.0f,
                      j->a + (j->ta == CblasNoTrans ? p0 * j->lda : p0), j->lda, j->b,
                      j->ldb, j->beta, j->c + p0 * j->ldc, j->ldc);
        else
            lop_sgemm(j->ta, j->tb, j->m, len, j->k, 1.0f, j->a, j->lda,
                      j->b + (j->tb == CblasNoTrans ? p0 : p0 * j->ldb), j->ldb, j->beta,
                      j->c + p0, j->ldc);
    }
}

/* Parts of a product cut along `side` units of `per_unit` multiply-adds each, each
 * part at least `grain` multiply-adds, 1 to LOP_PARTS of them. */
static long parts_of(long side, long per_unit, long grain)
{
    long parts = side / (1 + grain / per_unit);
    return parts < 1 ? 1 : parts > LOP_PARTS ? LOP_PARTS : parts;
}

static void parallel_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                           const float *a, int lda, const float *b, int ldb, float beta,
                           float *c, int ldc)
{
    gemm_job j = {ta, tb, m, n, k, lda, ldb, ldc, a, b, beta, c, m >= n, 0, 0};
    long across = j.by_rows ? n : m;
    j.side = j.by_rows ? m : n;
    j.parts = parts_of(j.side, across * k, GRAIN);
    lop_parallel_for(j.parts, 1, gemm_parts, &j);
}

/* A single input's y = W x + beta y, W [rows][k], on cblas_sgemv, its rows cut into
 * parts of at least GEMV_GRAIN multiply-adds (again by the shapes alone).  As one
 * product OpenBLAS 0.3.21 packed the whole weight first, on one thread (ResNet-18's
 * 1000 x 512 head at batch 1, 2 threads: 0.35 -> 0.10 ms). */
#define GEMV_GRAIN (1L << 16)

typedef struct gemv_job {
    int rows, k;
    const float *w, *x;
    float beta;
    float *y;
    long parts;
} gemv_job;

static void gemv_parts(void *ctx, long first, long last, int worker)
{
    const gemv_job *j = ctx;
    for (long part = first; part < last; part++) {
        int r0, r1;
        lop_slice_of(j->rows, part, (int)j->parts, 1, &r0, &r1);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, r1 - r0, j->k, 1.0f,
                    j->w + (size_t)r0 * j->k, j->k, j->x, 1, j->beta, j->y + r0, 1);
    }
}

static void parallel_sgemv(int rows, int k, const float *w, const float *x, float beta,
                           float *y)
{
    gemv_job j = {rows, k, w, x, beta, y, parts_of(rows, k, GEMV_GRAIN)};
    lop_parallel_for(j.parts, 1, gemv_parts, &j);
}

static int linear_forward(lop_graph *g, lop_node *n, int train)
{
    const float *x = lop_input_node(g, n, 0)->out->data;
    const float *w = n->param[LIN_WEIGHT]->data;
    float *y = n->out->data;
    int nb = lop_node_batch(n), out = n->dims[0], in = n->param[LIN_WEIGHT]->shape[1];
    float beta = 0.0f;
    if (n->attr.bias) {
        const float *bias = n->param[LIN_BIAS]->data;
        for (int b = 0; b < nb; b++)
            memcpy(y + (size_t)b * out, bias, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    if (nb == 1)
        parallel_sgemv(out, in, w, x, beta, y);
    else
        parallel_sgemm(CblasNoTrans, CblasTrans, nb, out, in, x, in, w, in, beta, y, out);
    return LOP_OK;
}

static int linear_backward(lop_graph *g, lop_node *n)
{
    const lop_node *src = lop_input_node(g, n, 0);
    const float *dy = n->dout->data, *x = src->out->data, *w = n->param[LIN_WEIGHT]->data;
    int nb = lop_node_batch(n), out = n->dims[0], in = n->param[LIN_WEIGHT]->shape[1];
    /* dx (+)= dy W;  dW += dy^T x;  db += column sums of dy */
    int overwrite;
    float *dx = lop_input_grad(g, n, 0, &overwrite);
    parallel_sgemm(CblasNoTrans, CblasNoTrans, nb, in, out, dy, out, w, in,
                   overwrite ? 0.0f : 1.0f, dx, in);
    parallel_sgemm(CblasTrans, CblasNoTrans, out, in, nb, dy, out, x, in, 1.0f,
                   n->grad[LIN_WEIGHT]->data, in);
    if (n->attr.bias) {
        float *db = n->grad[LIN_BIAS]->data;
        for (int b = 0; b < nb; b++) {
            const float *row = dy + (size_t)b * out;
            for (int o = 0; o < out; o++)
                db[o] += row[o];
        }
    }
    return LOP_OK;
}

static double linear_flops(const lop_graph *g, const lop_node *n)
{
    return 2.0 * (double)n->param[LIN_WEIGHT]->shape[1] * n->dims[0];
}

const lop_layer_ops lop_linear_ops = {
    .infer = linear_infer,
    .init = linear_init,
    .forward = linear_forward,
    .backward = linear_backward,
    .flops = linear_flops,
};
