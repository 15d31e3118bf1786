/*
 * internal.h - structures and helpers shared by the engine's source files but not by
 * its users, in the order of the subsystems (core, layers, graph, io, data, surgery,
 * select): error setting and the allocator every engine allocation goes through (so
 * tests can make it fail), the thread pool, the node and graph records, the per-kind
 * layer table, and the few helpers one subsystem offers the ones above it.
 */
#ifndef LOPPER_INTERNAL_H
#define LOPPER_INTERNAL_H

#include <math.h>

#include "lopper.h"

#define LOP_NAME_MAX 128   /* node names up to 127 characters: exporters' paths run long */
#define LOP_MAX_PARAMS 4
#define LOP_MAX_SAVED 3

/* ---- core: errors, allocation, threads, dense solves (engine/core/) ------------- */

/* Set the thread's error message and return code (printf-style). */
int lop_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

void *lop_malloc(size_t size);                 /* NULL + LOP_ENOMEM message on failure */
void *lop_calloc(size_t count, size_t size);
void *lop_realloc(void *p, size_t size);
void  lop_free(void *p);

/* Run fn over [0, n) split into one contiguous share per worker thread:
 * fn(ctx, begin, end, worker) with worker in [0, lop_parallel_threads()).  Runs
 * inline (worker 0, whole range) when n < 2 * grain, when called from inside a job,
 * or while another thread is using the pool.  Returns when every share is done. */
#define LOP_GRAIN 16384   /* fewest values of per-element work worth a thread */
typedef void (*lop_range_fn)(void *ctx, long begin, long end, int worker);
void lop_parallel_for(long n, long grain, lop_range_fn fn, void *ctx);
int lop_parallel_threads(void);

/* Results must not depend on the number of threads: work that sums over a split (a
 * weight gradient over images, a BLAS product's cut) splits into LOP_PARTS parts (or
 * fewer, by problem size alone), never one share per worker; each part keeps its own
 * partial result, and the parts are added in part order on one thread. */
#define LOP_PARTS 8

/* Slice `slice` of `count` of n items (channels, positions): [*lo, *hi), cut at
 * multiples of `align` (the last slice takes the rest) - how a product is cut into
 * jobs by its shape alone. */
static inline void lop_slice_of(int n, long slice, int count, int align, int *lo, int *hi)
{
    *lo = (int)((long)n * slice / count) / align * align;
    *hi = slice + 1 == count ? n : (int)((long)n * (slice + 1) / count) / align * align;
}

/* Solve (A + ridge * mean(diag A) * I) X = B for a symmetric positive semi-definite
 * A (n x n), B and X n x k, all row-major doubles; the ridge grows (x100, up to six
 * times) until the Cholesky factorisation succeeds. */
int lop_solve_spd(const double *A, int n, const double *B, int k, double ridge, double *X);
/* The same factorisation alone, in place: the row-major lower triangle of a (n x n,
 * symmetric) receives L with L L' = a + lambda I, the strict upper triangle keeps a;
 * *lambda is the ridge used (ridge x the mean diagonal, grown as above). */
int lop_factor_spd(double *a, int n, double ridge, double *lambda);

/* ---- the node and graph records ------------------------------------------------- */

typedef struct lop_node {
    lop_kind kind;
    char name[LOP_NAME_MAX];
    int ninputs;
    int *inputs;                       /* ids of earlier nodes */
    lop_attrs attr;
    int ndim;                          /* per-sample output shape */
    int dims[3];

    int nparams;
    const char *param_name[LOP_MAX_PARAMS];
    lop_tensor *param[LOP_MAX_PARAMS];
    lop_tensor *grad[LOP_MAX_PARAMS];     /* NULL for buffers (BN running stats) */
    lop_tensor *velocity[LOP_MAX_PARAMS]; /* SGD momentum, allocated on first step */
    /* Channel mask along the parameters' output axis (filters, BN entries): entries
     * that are 0 stay zero through training (NULL = no mask). */
    unsigned char *mask;

    /* Runtime state of the last forward/backward, owned by the node. */
    lop_tensor *out;                   /* [B, dims...] */
    lop_tensor *dout;                  /* gradient w.r.t. out, same shape */
    int dout_written;                  /* dout holds a value in this backward pass */
    lop_tensor *saved[LOP_MAX_SAVED];  /* layer-private (BN batch stats, pool argmax, ...) */
    /* During an evaluation pass that fuses this node with the ones after it
     * (graph/fusion.c): what to apply as it stores its output, and where; else NULL. */
    const struct lop_epilogue *epilogue;
    /* The last training forward's fusion (lop_fusion_train_plan): train_tail, the id of
     * the relu / relu6 whose output this batchnorm or add wrote (its own output and
     * gradient then unused; its backward takes the relu's gradient, masked), else 0;
     * train_skipped, 1 for that relu (its backward is the other node's). */
    int train_tail, train_skipped;
    /* In a frozen graph (lop_graph_freeze): the weights as the layer's kernels take
     * them (a convolution's Winograd-transformed weights, or its tap-by-tap forward's),
     * kept from one evaluation pass to the next; prepared_for says for which path (the
     * layer's own code). */
    lop_tensor *prepared;
    int prepared_for;
} lop_node;

struct lop_graph {
    int n, cap;
    lop_node **nodes;
    lop_rng rng;                       /* weight init and dropout */
    uint64_t generation;
    int trained_forward;               /* last forward was train mode (backward ok) */
    int frozen;                        /* lop_graph_freeze: weights taken as constant */
    lop_tensor *workspace;             /* shared scratch, grown on demand */
    lop_tensor *affine;                /* a fused batchnorm's scale and shift */
    lop_tensor *slice_pool;            /* an evaluation pass's slice buffers (slices.c) */
};

static inline lop_node *lop_input_node(const lop_graph *g, const lop_node *n, int k)
{
    return g->nodes[n->inputs[k]];
}

/* The gradient of n's k-th input, for n's backward to write into.  A backward pass
 * does not zero the gradients first: the first layer to reach an input's gradient
 * writes it (*overwrite is then 1: store, do not add), the others add into it.
 * Zeroing every gradient and adding into it cost a write and a read pass over every
 * activation of the network per step.  Call it once per input (an input read twice
 * gets 1 then 0) before starting the work. */
static inline float *lop_input_grad(const lop_graph *g, const lop_node *n, int k,
                                    int *overwrite)
{
    lop_node *in = g->nodes[n->inputs[k]];
    *overwrite = !in->dout_written;
    in->dout_written = 1;
    return in->dout->data;
}

/* n->out allocated as [batch, n->dims...] (kept when it already has that shape). */
int lop_node_ensure_out(lop_node *n, int batch);

/* Batch size of the last forward (from n->out), 0 if none. */
static inline int lop_node_batch(const lop_node *n)
{
    return n->out ? n->out->shape[0] : 0;
}

/* ---- layers: what each kind provides (engine/layers/) --------------------------- */

/*
 * What each kind of layer provides.  The graph calls:
 *  - infer: check attributes and inputs' shapes, set n->ndim/n->dims (status);
 *  - init: create parameters with their final shapes and initial values (may be NULL
 *    for kinds without parameters); rng for random weights;
 *  - forward: inputs' ->out hold [B, ...]; n->out is already allocated as
 *    [B, n->dims]; fill it (train selects training behaviour);
 *  - backward: n->dout holds the gradient w.r.t. n->out; pass the gradient w.r.t.
 *    each input into that input's ->dout (allocated, not zeroed), storing or adding
 *    as lop_input_grad says, and add parameter gradients into n->grad[k];
 *  - flops: FLOPs of one sample's forward (multiply-add = 2); NULL means none.
 */
typedef struct lop_layer_ops {
    int (*infer)(const lop_graph *g, lop_node *n);
    int (*init)(const lop_graph *g, lop_node *n, lop_rng *rng);
    int (*forward)(lop_graph *g, lop_node *n, int train);
    int (*backward)(lop_graph *g, lop_node *n);
    double (*flops)(const lop_graph *g, const lop_node *n);
} lop_layer_ops;

extern const lop_layer_ops lop_conv2d_ops, lop_batchnorm_ops, lop_relu_ops,
    lop_maxpool_ops, lop_avgpool_ops, lop_global_avgpool_ops, lop_flatten_ops,
    lop_linear_ops, lop_add_ops, lop_concat_ops, lop_dropout_ops, lop_pick_ops,
    lop_relu6_ops, lop_pad_ops;

const lop_layer_ops *lop_layer_ops_of(lop_kind kind);

/* Helpers for layers' init: add a named parameter of the given shape
 * (trainable = has a gradient). */
int lop_node_add_param(lop_node *n, const char *name, int ndim, const int *shape,
                       int trainable);

/* Batchnorm node bn at inference on channel c: y = scale * x + shift. */
void lop_batchnorm_affine(const lop_node *bn, int c, float *scale, float *shift);
/* The same in double: what folding a batchnorm into a convolution computes with. */
void lop_batchnorm_affine_double(const lop_node *bn, int c, double *scale, double *shift);
/* A relu's or relu6's ceiling: INFINITY or 6 (its floor is 0). */
float lop_activation_cap(const lop_node *n);
/* The gradient a relu / relu6 of ceiling cap passes back at its output y: dy where y
 * lies strictly between 0 and the cap, else 0 - at the kinks themselves too, as in
 * PyTorch (threshold_backward, hardtanh_backward).  dy is an argument, read for every
 * value, and the tests are joined with &, not &&: with dy read only where the output
 * passes, GCC vectorised its callers' loops with masked loads, which Zen 1 runs
 * slowly (the relus' backward over a training step at batch 64, one thread:
 * prune_resnet56_25_3ep's shape 29.2-30.9 -> 15.9-16.4 ms, VGG-16 12.3 -> 7.2). */
static inline float lop_relu_grad(float y, float cap, float dy)
{
    return ((y > 0.0f) & (y < cap)) ? dy : 0.0f;
}

/* What a node fused with the nodes after it (graph/fusion.c) applies to each output
 * value v of channel c as it stores it, into y (the last fused node's output):
 * y[i] = min(max(v * mul[c] + add[c] + residual[i], lo), hi).  A convolution's v is
 * its sum without bias (the bias is in add); a batchnorm's and an add's v is their
 * own result, for which mul, add and residual are NULL. */
typedef struct lop_epilogue {
    const float *mul;        /* per channel, or NULL for 1 */
    const float *add;        /* per channel, or NULL for 0 */
    const float *residual;   /* an output-shaped tensor (a fused add's other input) */
    float lo, hi;            /* -INFINITY and INFINITY: no clamp */
    float *y;
} lop_epilogue;

/* v clamped as e says (the multiply-add is the caller's). */
static inline float lop_epilogue_clamp(const lop_epilogue *e, float v)
{
    v = v > e->lo ? v : e->lo;
    return v < e->hi ? v : e->hi;
}

/* Whether e has bounds to clamp to (without, a NaN stays one). */
static inline int lop_epilogue_clamps(const lop_epilogue *e)
{
    return e->lo != -INFINITY || e->hi != INFINITY;
}

/* The residual values that go with the outputs at d (a place in e->y), or NULL. */
static inline const float *lop_epilogue_residual_at(const lop_epilogue *e, const float *d)
{
    return e->residual ? e->residual + (d - e->y) : NULL;
}

/* A tensor over memory it does not own (data, at least the shape's count of floats):
 * releasing it frees its headers, never data.  Unlike lop_tensor_view, it is its
 * storage's sole user, so lop_tensor_ensure keeps it when asked for its own shape. */
lop_tensor *lop_tensor_borrow(float *data, int ndim, const int *shape);

/* Scratch memory shared by all layers of a graph: at least count floats, valid
 * until the next call. */
float *lop_graph_scratch(lop_graph *g, size_t count);

/* ---- graph: rebuilding and timing (engine/graph/) ------------------------------- */

/* An evaluation pass's fusion (graph/fusion.c).  lop_fusion_plan marks in fused[i]
 * the chains nodes [0, g->n) run as: LOP_FUSED_SELF (node i runs alone),
 * LOP_FUSED_AWAY (a node before it writes its output) or the id of the chain's last
 * node (node i heads a chain).  fused holds g->n ints.  lop_fusion_epilogue fills e for
 * the chain node `head` heads, its output allocated for `batch` images. */
enum { LOP_FUSED_SELF = -1, LOP_FUSED_AWAY = -2 };
int lop_fusion_plan(const lop_graph *g, int *fused);
/* A training pass's fusion, in the same form: a batchnorm or add whose only reader is
 * a relu / relu6 heads a chain of the two, unless keep[id] (keep may be NULL). */
int lop_fusion_train_plan(const lop_graph *g, const unsigned char *keep, int *fused);
/* Test hook: 0 runs training passes unfused, anything else fused (the default). */
void lop_debug_train_fusion(int on);
int lop_fusion_epilogue(lop_graph *g, int head, int tail, int batch, lop_epilogue *e);

/* An evaluation pass's slices (graph/slices.c): nodes 0..end run `images` images at a
 * time (at most; end 0: no slices), depth first, each node's output in place[i]:
 * LOP_SLICE_WHOLE its own tensor (read after the slices), LOP_SLICE_UNWRITTEN none (a
 * fused chain's inside), else pool buffer place[i] of `buffers`, each buffer_floats
 * floats.  lop_slices_plan plans a pass of `batch` images through 0..last whose chains
 * fused says; lop_free(s->place) when done. */
enum { LOP_SLICE_WHOLE = -1, LOP_SLICE_UNWRITTEN = -2 };
typedef struct lop_slices {
    int end, images, buffers;
    size_t buffer_floats;
    int *place;
} lop_slices;
int lop_slices_plan(const lop_graph *g, int last, int batch, const int *fused, lop_slices *s);
/* Test hook: slices of this many images wherever the rule's maps allow (0: none), -1
 * the rule. */
void lop_debug_forward_slices(int images);

/* A new graph *out holding copies of g's nodes [0, upto) (parameter values and
 * masks included) and g's random state - the start of a rebuilt g; on failure *out is
 * NULL.  lop_graph_copy_node appends a copy of one node n to c, reading the given ids
 * of c. */
int lop_graph_prefix(const lop_graph *g, int upto, lop_graph **out);
int lop_graph_copy_node(const lop_node *n, const int *inputs, lop_graph *c);

/* Replace g's nodes by fresh's (built by copying g and changing it), as one more
 * generation of g (handles and statistics of the old nodes go stale); frees the old
 * nodes with fresh. */
void lop_graph_swap_in(lop_graph *g, lop_graph *fresh);

/* Forward pass that also records each node's wall time in seconds (may be NULL). */
int lop_graph_forward_timed(lop_graph *g, const lop_tensor *x, int train, double *node_seconds);
/* Evaluation-mode forward through nodes 0..last only - all a reader of node last's
 * activations, or of any node before it, needs (the samplers: the layers after the one
 * sampled cost as much again).  Later nodes keep stale outputs; no backward follows. */
int lop_graph_forward_until(lop_graph *g, const lop_tensor *x, int last);
/* Backward pass that also records each node's wall time in seconds (may be NULL). */
int lop_graph_backward_timed(lop_graph *g, const lop_tensor *dout, double *node_seconds);
/* A training forward in which the `count` nodes listed keep their own output and
 * gradient: none of them runs fused with the relu after it (fusion.c), so a caller may
 * read their outputs and give them gradients of their own (below). */
int lop_graph_forward_keeping(lop_graph *g, const lop_tensor *x, int count, const int *nodes);
/* Backward pass with extra gradients: grads[k] (node nodes[k]'s output shape) is added
 * to that node's output gradient before its backward runs, as for a loss that reads
 * the node's output besides the graph's (feature hints).  nodes[k] >= 1, and kept by
 * the forward (lop_graph_forward_keeping) when it is a batchnorm or add. */
int lop_graph_backward_adding(lop_graph *g, const lop_tensor *dout, int n, const int *nodes,
                              lop_tensor *const *grads);

/* ---- feature hints (engine/train/hints.c) ---------------------------------------- */

/* Hints h[0..n) must pair a node of g after the input with a node of the teacher whose
 * outputs agree in rank and in every dimension but the channels, which map into the
 * teacher's. */
int lop_hints_check(const lop_graph *g, const lop_graph *teacher, const lop_hint *h, int n);
/* The relative squared error of hint h after a forward pass of both graphs on the same
 * batch, E = sum (s - t)^2 / sum t^2, into *loss, and scale * dE/ds = scale * 2 (s - t)
 * / sum t^2 into grad (optional; the student node's output shape).  The teacher's node
 * must hold its output: an evaluation pass by lop_graph_forward_until, which does not
 * fuse, writes every node's. */
int lop_hint_loss(const lop_graph *g, const lop_graph *teacher, const lop_hint *h,
                  float scale, double *loss, lop_tensor *grad);


/* ---- a training run's way back (engine/train/rollback.c) ------------------------ */

/* A copy of every parameter of a graph (weights, batchnorm running statistics) and of
 * the SGD velocities it has, taken before training so that a diverged run can hand
 * the graph back unchanged. */
typedef struct lop_rollback {
    float *saved;        /* the values, node by node, parameter by parameter */
    unsigned char *had;  /* [node * LOP_MAX_PARAMS + parameter]: it had a velocity */
} lop_rollback;

/* Take the copy: LOP_ENOMEM if it does not fit. */
int lop_rollback_take(const lop_graph *g, lop_rollback *r);
/* Put g's parameters and velocities back as taken; velocities made since are released
 * (the next SGD step makes them anew, at zero).  g must have the structure it had. */
void lop_rollback_restore(lop_graph *g, const lop_rollback *r);
void lop_rollback_free(lop_rollback *r);
/* Whether every parameter of g (weights and running statistics) is finite. */
int lop_graph_params_finite(const lop_graph *g);

/* ---- io: what the file formats share (engine/io/files.c) ------------------------ */

/* Write path atomically: fill(fd, ctx) writes a temporary file beside it, which is
 * flushed to disk and renamed over path; on failure path is untouched. */
typedef int (*lop_fill_fn)(int fd, void *ctx);
int lop_file_replace(const char *path, lop_fill_fn fill, void *ctx);
/* n float32 values to and from little-endian bytes (4 n of them); may work in place. */
void lop_floats_to_le(unsigned char *dst, const float *src, size_t n);
void lop_floats_from_le(float *dst, const unsigned char *src, size_t n);
/* The .lop reader alone (lop_graph_load picks it or the ONNX reader by content). */
int lop_graph_load_lop(const char *path, lop_graph **out);

/* ---- data: what data sets, sources and loaders share (engine/data/) ------------- */

/* Refuse (LOP_EINVAL, the message starting with fn) anything but a loaded data set, in
 * memory or streamed. */
int lop_dataset_check(const lop_dataset *d, const char *fn);
/* The source's item behind item i of a streamed set d. */
static inline int lop_dataset_source_item(const lop_dataset *d, int i)
{
    return d->source_item ? d->source_item[i] : i;
}
/* One c x h x w item from src into dst with aug (NULL or inactive: a copy), drawing
 * from rng as lop_dataset_batch documents. */
void lop_augment_apply(float *dst, const float *src, int c, int h, int w,
                       const lop_augment *aug, lop_rng *rng);
/* The seed of the next item of a training pass: never 0 (the evaluation transform). */
uint64_t lop_item_seed(lop_rng *rng);
/* Item `item` of s with seed, then aug (active only with a seed) from an rng seeded
 * from it; scratch holds an item when aug is active.  Runs on any thread: a failure's
 * message goes to why (never empty then), never to lop_fail. */
int lop_source_read_item(lop_source *s, int item, uint64_t seed, const lop_augment *aug,
                         float *out, float *scratch, char *why, size_t whylen);
/* Count one skipped bad image of s (atomically); the first one's message is kept. */
void lop_source_note_skip(lop_source *s, const char *why);

/* ---- surgery (engine/surgery/) -------------------------------------------------- */

/* Whether a group member has per-channel parameters along its output axis that the
 * group's channels index (producers, batchnorm, depthwise conv). */
int lop_member_owns_channels(const lop_graph *g, const lop_member *m);
/* Whether n is a depthwise conv2d (groups = input channels = output channels > 1):
 * it passes its input's group through rather than starting one. */
int lop_conv_depthwise(const lop_graph *g, const lop_node *n);
/* How many of kept[0..n) are nonzero. */
int lop_count_kept(const unsigned char *kept, int n);
/* Refuse (LOP_EINVAL, the message starting with what and naming node, the carrier)
 * unless kept[] (one flag per channel of grp) keeps as many channels in each of the
 * group's slices. */
int lop_group_check_slices(const lop_graph *g, const lop_group *grp, const unsigned char *kept,
                           int node, const char *what);

/* Zero the masked entries of every masked node's parameters. */
void lop_graph_apply_masks(lop_graph *g);

/* ---- select (engine/select/) ---------------------------------------------------- */

/* Selection rules: refuse keeping nkeep of c channels unless 1 <= nkeep <= c (the
 * message starts with what); sort channel indices increasing. */
int lop_check_keep(int c, int nkeep, const char *what);
/* Refuse node unless it is a conv2d or linear layer (one with filters to rank). */
int lop_check_filter_layer(const lop_graph *g, int node, const char *what);
/* Refuse a grouped (or depthwise) conv2d node: "grouped convolution 'x': <what> does
 * not support it yet". */
int lop_check_ungrouped(const lop_graph *g, int node, const char *what);
void lop_sort_channels(int *keep, int n);

#endif
