/*
 * pool.c - spatial pooling: windowed max and average over (C,H,W) maps, and the global
 * average that turns a feature map into a feature vector in front of a classifier.
 * Pools work plane by plane (one sample's channel at a time), so pruning channels
 * never needs to touch them beyond their shapes.
 *
 * Window geometry follows PyTorch exactly, ceil_mode included, because networks come
 * from there (through ONNX): GoogLeNet, SqueezeNet and DenseNet pool with ceil_mode,
 * whose last window may hang off the end of the input.  Every window holds at least
 * one input cell: padding is at most half the kernel, and ceil mode drops a last
 * window that would start in the right padding.
 */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "layers/vec.h"

/* Window geometry of a max/avg pool node; a stride of 0 means "= kernel". */
typedef struct pool_geom {
    int h, w, oh, ow;
    int kh, kw, sh, sw, ph, pw;
    int exclude;           /* avgpool: divide by the taps inside the input only */
} pool_geom;

/* Output size along one axis, as PyTorch computes it: the windows that fit in the
 * padded input, and in ceil mode one more partial window at the end - unless that
 * one would start at or past size + pad (inside the right padding or beyond it),
 * where it would average or maximise padding alone.  0 when not even one fits. */
static long long out_size(int size, int k, int stride, int pad, int ceil_mode)
{
    long long span = (long long)size + 2LL * pad - k + (ceil_mode ? stride - 1 : 0);
    if (span < 0)
        return 0;
    long long out = span / stride + 1;
    if (ceil_mode && (out - 1) * stride >= (long long)size + pad)
        out--;
    return out;
}

static pool_geom geom_of(const lop_node *in, const lop_node *n)
{
    const lop_attrs *a = &n->attr;
    pool_geom p;
    p.h = in->dims[1];
    p.w = in->dims[2];
    p.kh = a->kernel_h;
    p.kw = a->kernel_w;
    p.sh = a->stride_h > 0 ? a->stride_h : a->kernel_h;
    p.sw = a->stride_w > 0 ? a->stride_w : a->kernel_w;
    p.ph = a->pad_h;
    p.pw = a->pad_w;
    p.oh = (int)out_size(p.h, p.kh, p.sh, p.ph, a->ceil_mode);
    p.ow = (int)out_size(p.w, p.kw, p.sw, p.pw, a->ceil_mode);
    p.exclude = a->exclude_pad;
    return p;
}

/* The flags: ceil_mode for both pools, exclude_pad for avgpool only (a max never
 * counts padding, so a maxpool asking for it is a mistake, not a no-op). */
static int check_flags(const lop_node *n)
{
    const char *kind = lop_kind_name(n->kind);
    const lop_attrs *a = &n->attr;
    if (a->ceil_mode != 0 && a->ceil_mode != 1)
        return lop_fail(LOP_EINVAL, "%s '%s': ceil_mode must be 0 or 1, got %d", kind,
                        n->name, a->ceil_mode);
    if (a->exclude_pad != 0 && a->exclude_pad != 1)
        return lop_fail(LOP_EINVAL, "%s '%s': exclude_pad must be 0 or 1, got %d", kind,
                        n->name, a->exclude_pad);
    if (n->kind == LOP_MAXPOOL && a->exclude_pad)
        return lop_fail(LOP_EINVAL, "maxpool '%s': exclude_pad is an avgpool option (a max "
                        "never counts padding)", n->name);
    return LOP_OK;
}

static int pool_infer(const lop_graph *g, lop_node *n)
{
    const char *kind = lop_kind_name(n->kind);
    const lop_attrs *a = &n->attr;
    if (n->ninputs != 1)
        return lop_fail(LOP_EINVAL, "%s '%s' takes 1 input, got %d", kind, n->name,
                        n->ninputs);
    const lop_node *in = lop_input_node(g, n, 0);
    if (in->ndim != 3)
        return lop_fail(LOP_ESHAPE, "%s '%s' needs a (C,H,W) input, '%s' gives rank %d",
                        kind, n->name, in->name, in->ndim);
    if (a->kernel_h < 1 || a->kernel_w < 1)
        return lop_fail(LOP_EINVAL, "%s '%s': kernel %dx%d must be at least 1x1", kind,
                        n->name, a->kernel_h, a->kernel_w);
    if (a->stride_h < 0 || a->stride_w < 0)
        return lop_fail(LOP_EINVAL, "%s '%s': stride %dx%d must be positive (0 = kernel)",
                        kind, n->name, a->stride_h, a->stride_w);
    if (a->pad_h < 0 || a->pad_w < 0 || a->pad_h > a->kernel_h / 2 ||
        a->pad_w > a->kernel_w / 2)
        return lop_fail(LOP_EINVAL,
                        "%s '%s': padding %dx%d must be in 0..half the kernel %dx%d", kind,
                        n->name, a->pad_h, a->pad_w, a->kernel_h, a->kernel_w);
    int st = check_flags(n);
    if (st != LOP_OK)
        return st;
    pool_geom p = geom_of(in, n);
    if (p.oh < 1 || p.ow < 1)
        return lop_fail(LOP_ESHAPE, "%s '%s': kernel %dx%d does not fit the %dx%d input "
                        "padded by %dx%d%s", kind, n->name, a->kernel_h, a->kernel_w,
                        p.h, p.w, a->pad_h, a->pad_w, a->ceil_mode ? " (ceil mode)" : "");
    n->ndim = 3;
    n->dims[0] = in->dims[0];
    n->dims[1] = p.oh;
    n->dims[2] = p.ow;
    return LOP_OK;
}

/* Rows [*lo, *hi) of the input that output row o's window covers, padding excluded. */
static void window(int o, int stride, int pad, int k, int size, int *lo, int *hi)
{
    int start = o * stride - pad;
    *lo = start < 0 ? 0 : start;
    *hi = start + k > size ? size : start + k;
}

/* kh*kw per output value, also for windows that are partly padding or (in ceil mode)
 * hang past its end: one count for every window, as padded windows always were
 * counted, and as PyTorch-side counters count pools (kernel area times outputs). */
static double pool_flops(const lop_graph *g, const lop_node *n)
{
    return (double)n->attr.kernel_h * n->attr.kernel_w * (double)lop_shape_numel(n->ndim, n->dims);
}

/* Number of (sample, channel) planes in the node's last output. */
static long planes(const lop_node *n)
{
    return (long)lop_node_batch(n) * n->dims[0];
}

/* What the workers share: the geometry and the tensors of one pass.  Work is split
 * into runs of whole planes, one run per worker, so no two threads write the same
 * plane. */
typedef struct pool_job {
    pool_geom p;
    const float *x, *dy;
    float *y, *dx, *arg;
    int overwrite;         /* backward: dx is stored, not added to (lop_input_grad) */
} pool_job;

static void run_planes(pool_job *j, long np, lop_range_fn fn)
{
    lop_parallel_for(np, 1 + LOP_GRAIN / ((long)j->p.h * j->p.w), fn, j);
}

/* Plane q of the input's gradient, for a windowed pool's backward to add into.  When
 * this pool writes the gradient first, the plane is cleared here, by the worker that
 * then adds into it while the plane is still in its cache: input cells no window
 * covers (a 7x7 map under 2x2 windows of stride 2 leaves the last row and column out)
 * get their 0, and overlapping windows still add.  Clearing the whole gradient before
 * the pass had cost one more write and read of it through memory. */
static float *grad_plane(const pool_job *j, long q, size_t isz)
{
    float *dx = j->dx + (size_t)q * isz;
    if (j->overwrite)
        memset(dx, 0, isz * sizeof *dx);
    return dx;
}

/* ---- maxpool: padded cells never win; the argmax of each window is saved (as a float
 * index within its plane) so backward routes the gradient to it ---- */

/* Output columns [*lo, *hi) whose window's column kj lies inside the input row. */
static void columns_reaching(const pool_geom *p, int kj, int *lo, int *hi)
{
    int first = p->pw - kj, last = p->w - 1 + p->pw - kj;
    *lo = first <= 0 ? 0 : (first + p->sw - 1) / p->sw;
    *hi = last < 0 ? 0 : last / p->sw + 1;
    if (*hi > p->ow)
        *hi = p->ow;
}

/* 2x2 windows at stride 2 that all lie inside the map (the pool of VGG and most CNNs,
 * on even maps): each output the max of two input rows' cells 2 ow and 2 ow + 1, in
 * max_rows's order of comparisons so that the results are the same bits. */
static int whole_2x2(const pool_geom *p)
{
    return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0 &&
           2 * p->oh <= p->h && 2 * p->ow <= p->w;
}

static void max_2x2(const pool_geom *p, const float *x, float *y)
{
    for (int oh = 0; oh < p->oh; oh++) {
        const float *restrict r0 = x + (size_t)2 * oh * p->w, *restrict r1 = r0 + p->w;
        float *restrict out = y + (size_t)oh * p->ow;
        for (int ow = 0; ow < p->ow; ow++) {
            float v = r0[2 * ow] > -INFINITY ? r0[2 * ow] : -INFINITY;
            v = r0[2 * ow + 1] > v ? r0[2 * ow + 1] : v;
            v = r1[2 * ow] > v ? r1[2 * ow] : v;
            out[ow] = r1[2 * ow + 1] > v ? r1[2 * ow + 1] : v;
        }
    }
}

/* Stride-2 rows no wider than this (padded) are pooled by max_rows_stride2, whose
 * row buffers live on the stack. */
enum { STRIDE2_ROW_MAX = 2048 };

static int stride2_fits(const pool_geom *p)
{
    return p->sw == 2 && 2 * p->ow + p->kw - 1 <= STRIDE2_ROW_MAX;
}

/* Windows of column stride 2 (ResNet's 3x3 stem pool): each output row's window rows
 * are folded into one padded row first, down the columns, then split by column parity
 * a vector at a time, so that window column kj of output ow is the (kj / 2 + ow)-th
 * even or odd cell: every loop runs along contiguous floats.  Read in place, stride 2
 * left the compiler a gather per cell (0.25 ms of ResNet-18's pass at batch 1). */
static void max_rows_stride2(const pool_geom *p, const float *x, float *y)
{
    float row[STRIDE2_ROW_MAX], even[STRIDE2_ROW_MAX / 2], odd[STRIDE2_ROW_MAX / 2];
    int span = 2 * p->ow + p->kw - 1;   /* padded columns the windows cover */
    int pairs = (span + 1) / 2;
    for (int oh = 0; oh < p->oh; oh++) {
        int h0, h1;
        window(oh, p->sh, p->ph, p->kh, p->h, &h0, &h1);
        for (int i = 0; i < span; i++)
            row[i] = -INFINITY;
        int c0 = p->pw, c1 = p->pw + p->w < span ? p->pw + p->w : span;
        for (int h = h0; h < h1; h++) {
            const float *restrict in = x + (size_t)h * p->w;
            for (int i = c0; i < c1; i++)
                row[i] = in[i - c0] > row[i] ? in[i - c0] : row[i];
        }
        for (int k = 0; k < pairs; k += VEC_LANES) {
            vec e, o;
            int n = span - 2 * k, lanes = pairs - k < VEC_LANES ? pairs - k : VEC_LANES;
            vec_load_evens_odds(row + 2 * k, n < 2 * VEC_LANES ? n : 2 * VEC_LANES, &e, &o);
            vec_store_first(even + k, e, lanes);
            vec_store_first(odd + k, o, lanes);
        }
        float *restrict out = y + (size_t)oh * p->ow;
        for (int ow = 0; ow < p->ow; ow++)
            out[ow] = -INFINITY;
        for (int kj = 0; kj < p->kw; kj++) {
            const float *restrict cells = (kj % 2 ? odd : even) + kj / 2;
            for (int ow = 0; ow < p->ow; ow++)
                out[ow] = cells[ow] > out[ow] ? cells[ow] : out[ow];
        }
    }
}

/* The max of each window without its argmax (inference): a window row's cells are
 * folded into a whole output row at a time, which vectorises; window by window, the
 * chain of compares ran several times slower. */
static void max_rows(const pool_geom *p, const float *x, float *y)
{
    if (whole_2x2(p)) {
        max_2x2(p, x, y);
        return;
    }
    if (stride2_fits(p)) {
        max_rows_stride2(p, x, y);
        return;
    }
    for (int oh = 0; oh < p->oh; oh++) {
        float *restrict out = y + (size_t)oh * p->ow;
        for (int ow = 0; ow < p->ow; ow++)
            out[ow] = -INFINITY;
        int h0, h1;
        window(oh, p->sh, p->ph, p->kh, p->h, &h0, &h1);
        for (int h = h0; h < h1; h++)
            for (int kj = 0; kj < p->kw; kj++) {
                int lo, hi;
                columns_reaching(p, kj, &lo, &hi);
                const float *restrict in = x + (size_t)h * p->w + kj - p->pw;
                for (int ow = lo; ow < hi; ow++) {
                    float u = in[(size_t)ow * p->sw];
                    out[ow] = u > out[ow] ? u : out[ow];
                }
            }
    }
}

/* Training's whole 2x2 windows: the maximum and its index a vector of outputs at a
 * time, the cells taken in the generic loop's order (row by row, left to right) with
 * the same strict comparisons, so that a tie or a NaN picks the same cell.  Cell by
 * cell, the pools took 8.6 ms of VGG-16's 456 ms training step at batch 64 (one
 * thread), their backward 3.1.  The indices are floats, exact while a plane's cells
 * are (whole_2x2_arg_fits). */
static int whole_2x2_arg_fits(const pool_geom *p)
{
    return whole_2x2(p) && (double)p->h * p->w <= 16777216.0;   /* 2^24 */
}

static void max_2x2_arg(const pool_geom *p, const float *x, float *y, float *arg)
{
    typedef int bits __attribute__((vector_size(sizeof(vec))));
    vec lane;   /* the first column of each lane's window, from the vector's first */
    for (int k = 0; k < VEC_LANES; k++)
        lane[k] = (float)(2 * k);
    for (int oh = 0; oh < p->oh; oh++) {
        size_t top = (size_t)2 * oh * p->w;
        const float *r0 = x + top, *r1 = r0 + p->w;
        for (int ow = 0; ow < p->ow; ow += VEC_LANES) {
            int n = p->ow - ow < VEC_LANES ? p->ow - ow : VEC_LANES;
            vec cell[4], at = lane + (float)(top + 2 * (size_t)ow);
            vec_load_evens_odds(r0 + 2 * ow, 2 * n, &cell[0], &cell[1]);
            vec_load_evens_odds(r1 + 2 * ow, 2 * n, &cell[2], &cell[3]);
            vec v = (vec){0} - INFINITY, best = at;
            for (int c = 0; c < 4; c++) {   /* cell c: row c / 2, column c % 2 */
                bits wins = cell[c] > v;
                vec index = at + (float)(c / 2 * p->w + c % 2);
                v = (vec)(((bits)cell[c] & wins) | ((bits)v & ~wins));
                best = (vec)(((bits)index & wins) | ((bits)best & ~wins));
            }
            vec_store_first(y + (size_t)oh * p->ow + ow, v, n);
            vec_store_first(arg + (size_t)oh * p->ow + ow, best, n);
        }
    }
}

static void maxpool_planes(void *ctx, long q0, long q1, int worker)
{
    const pool_job *j = ctx;
    const pool_geom *p = &j->p;
    size_t isz = (size_t)p->h * p->w, osz = (size_t)p->oh * p->ow;
    for (long q = q0; q < q1; q++) {
        const float *x = j->x + (size_t)q * isz;
        float *y = j->y + (size_t)q * osz;
        float *arg = j->arg ? j->arg + (size_t)q * osz : NULL;
        if (!arg) {
            max_rows(p, x, y);
            continue;
        }
        if (whole_2x2_arg_fits(p)) {
            max_2x2_arg(p, x, y, arg);
            continue;
        }
        for (int oh = 0; oh < p->oh; oh++) {
            int h0, h1;
            window(oh, p->sh, p->ph, p->kh, p->h, &h0, &h1);
            for (int ow = 0; ow < p->ow; ow++) {
                int w0, w1;
                window(ow, p->sw, p->pw, p->kw, p->w, &w0, &w1);
                int best = h0 * p->w + w0;
                float v = -INFINITY;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                        if (x[h * p->w + w] > v) {
                            v = x[h * p->w + w];
                            best = h * p->w + w;
                        }
                y[oh * p->ow + ow] = v;
                arg[oh * p->ow + ow] = (float)best;
            }
        }
    }
}

static int maxpool_forward(lop_graph *g, lop_node *n, int train)
{
    const lop_node *in = lop_input_node(g, n, 0);
    if (train) {
        int st = lop_tensor_ensure(&n->saved[0], n->out->ndim, n->out->shape);
        if (st != LOP_OK)
            return st;
    }
    pool_job j = {.p = geom_of(in, n), .x = in->out->data, .y = n->out->data,
                  .arg = train ? n->saved[0]->data : NULL};
    run_planes(&j, planes(n), maxpool_planes);
    return LOP_OK;
}

static void maxpool_grad_planes(void *ctx, long q0, long q1, int worker)
{
    const pool_job *j = ctx;
    size_t isz = (size_t)j->p.h * j->p.w, osz = (size_t)j->p.oh * j->p.ow;
    for (long q = q0; q < q1; q++) {
        float *dx = grad_plane(j, q, isz);
        const float *arg = j->arg + (size_t)q * osz, *dy = j->dy + (size_t)q * osz;
        for (size_t i = 0; i < osz; i++)
            dx[(size_t)arg[i]] += dy[i];
    }
}

static int maxpool_backward(lop_graph *g, lop_node *n)
{
    const lop_node *in = lop_input_node(g, n, 0);
    pool_job j = {.p = geom_of(in, n), .dy = n->dout->data, .arg = n->saved[0]->data};
    j.dx = lop_input_grad(g, n, 0, &j.overwrite);
    run_planes(&j, planes(n), maxpool_grad_planes);
    return LOP_OK;
}

const lop_layer_ops lop_maxpool_ops = {
    .infer = pool_infer,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .flops = pool_flops,
};

/* ---- avgpool: by default padding counts as zeros in the window's divisor
 * (PyTorch's count_include_pad=True); with exclude_pad only the input cells count
 * (count_include_pad=False, ONNX's count_include_pad=0) ---- */

/* Rows (or columns) of output o's window inside the padded extent [-pad, size + pad):
 * the whole kernel but for the part of a ceil-mode window hanging past the padding. */
static int padded_span(int o, int stride, int pad, int k, int size)
{
    int start = o * stride - pad, end = start + k;
    return (end < size + pad ? end : size + pad) - start;
}

/* What output (oh, ow) divides its sum by; [h0, h1) x [w0, w1) is its window's part
 * inside the input, never empty. */
static float avg_divisor(const pool_geom *p, int oh, int ow, int h0, int h1, int w0, int w1)
{
    if (p->exclude)
        return (float)(h1 - h0) * (float)(w1 - w0);
    return (float)padded_span(oh, p->sh, p->ph, p->kh, p->h) *
           (float)padded_span(ow, p->sw, p->pw, p->kw, p->w);
}

static void avgpool_planes(void *ctx, long q0, long q1, int worker)
{
    const pool_job *j = ctx;
    const pool_geom *p = &j->p;
    size_t isz = (size_t)p->h * p->w, osz = (size_t)p->oh * p->ow;
    for (long q = q0; q < q1; q++) {
        const float *x = j->x + (size_t)q * isz;
        float *y = j->y + (size_t)q * osz;
        for (int oh = 0; oh < p->oh; oh++) {
            int h0, h1;
            window(oh, p->sh, p->ph, p->kh, p->h, &h0, &h1);
            for (int ow = 0; ow < p->ow; ow++) {
                int w0, w1;
                window(ow, p->sw, p->pw, p->kw, p->w, &w0, &w1);
                float sum = 0.0f;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                        sum += x[h * p->w + w];
                y[oh * p->ow + ow] = sum / avg_divisor(p, oh, ow, h0, h1, w0, w1);
            }
        }
    }
}

static int avgpool_forward(lop_graph *g, lop_node *n, int train)
{
    const lop_node *in = lop_input_node(g, n, 0);
    pool_job j = {.p = geom_of(in, n), .x = in->out->data, .y = n->out->data};
    run_planes(&j, planes(n), avgpool_planes);
    return LOP_OK;
}

static void avgpool_grad_planes(void *ctx, long q0, long q1, int worker)
{
    const pool_job *j = ctx;
    const pool_geom *p = &j->p;
    size_t isz = (size_t)p->h * p->w, osz = (size_t)p->oh * p->ow;
    for (long q = q0; q < q1; q++) {
        float *dx = grad_plane(j, q, isz);
        const float *dy = j->dy + (size_t)q * osz;
        for (int oh = 0; oh < p->oh; oh++) {
            int h0, h1;
            window(oh, p->sh, p->ph, p->kh, p->h, &h0, &h1);
            for (int ow = 0; ow < p->ow; ow++) {
                int w0, w1;
                window(ow, p->sw, p->pw, p->kw, p->w, &w0, &w1);
                float d = dy[oh * p->ow + ow] / avg_divisor(p, oh, ow, h0, h1, w0, w1);
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                        dx[h * p->w + w] += d;
            }
        }
    }
}

static int avgpool_backward(lop_graph *g, lop_node *n)
{
    const lop_node *in = lop_input_node(g, n, 0);
    pool_job j = {.p = geom_of(in, n), .dy = n->dout->data};
    j.dx = lop_input_grad(g, n, 0, &j.overwrite);
    run_planes(&j, planes(n), avgpool_grad_planes);
    return LOP_OK;
}

const lop_layer_ops lop_avgpool_ops = {
    .infer = pool_infer,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .flops = pool_flops,
};

/* ---- global_avgpool: (C,H,W) -> (C) ---- */

static int gap_infer(const lop_graph *g, lop_node *n)
{
    if (n->ninputs != 1)
        return lop_fail(LOP_EINVAL, "global_avgpool '%s' takes 1 input, got %d", n->name,
                        n->ninputs);
    const lop_node *in = lop_input_node(g, n, 0);
    if (in->ndim != 3)
        return lop_fail(LOP_ESHAPE,
                        "global_avgpool '%s' needs a (C,H,W) input, '%s' gives rank %d",
                        n->name, in->name, in->ndim);
    n->ndim = 1;
    n->dims[0] = in->dims[0];
    return LOP_OK;
}

static void gap_planes(void *ctx, long q0, long q1, int worker)
{
    const pool_job *j = ctx;
    size_t s = (size_t)j->p.h * j->p.w;
    float inv = 1.0f / (float)s;
    for (long q = q0; q < q1; q++) {
        const float *x = j->x + (size_t)q * s;
        float sum = 0.0f;
        for (size_t i = 0; i < s; i++)
            sum += x[i];
        j->y[q] = sum * inv;
    }
}

static int gap_forward(lop_graph *g, lop_node *n, int train)
{
    const lop_node *in = lop_input_node(g, n, 0);
    /* the whole plane is the window: only p.h and p.w are used */
    pool_job j = {.p = {.h = in->dims[1], .w = in->dims[2]}, .x = in->out->data,
                  .y = n->out->data};
    run_planes(&j, planes(n), gap_planes);
    return LOP_OK;
}

static void gap_grad_planes(void *ctx, long q0, long q1, int worker)
{
    const pool_job *j = ctx;
    size_t s = (size_t)j->p.h * j->p.w;
    float inv = 1.0f / (float)s;
    for (long q = q0; q < q1; q++) {
        float *dx = j->dx + (size_t)q * s;
        float d = j->dy[q] * inv;
        if (j->overwrite)
            for (size_t i = 0; i < s; i++)
                dx[i] = d;
        else
            for (size_t i = 0; i < s; i++)
                dx[i] += d;
    }
}

static int gap_backward(lop_graph *g, lop_node *n)
{
    const lop_node *in = lop_input_node(g, n, 0);
    pool_job j = {.p = {.h = in->dims[1], .w = in->dims[2]}, .dy = n->dout->data};
    j.dx = lop_input_grad(g, n, 0, &j.overwrite);
    run_planes(&j, planes(n), gap_grad_planes);
    return LOP_OK;
}

static double gap_flops(const lop_graph *g, const lop_node *n)
{
    const lop_node *in = lop_input_node(g, n, 0);
    return (double)lop_shape_numel(in->ndim, in->dims);
}

const lop_layer_ops lop_global_avgpool_ops = {
    .infer = gap_infer,
    .forward = gap_forward,
    .backward = gap_backward,
    .flops = gap_flops,
};
