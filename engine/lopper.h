/*
 * lopper.h - the public C API of the Lopper engine.
 *
 * Lopper trains, measures and prunes convolutional networks.  The engine is plain C11
 * on OpenBLAS and zlib; it never exits, aborts or prints on bad input.  Every call that
 * can fail returns a status (LOP_OK on success) and leaves a message that
 * lop_errmsg() returns; on failure the objects passed in are unchanged.
 *
 * A typical program:
 *
 *     lop_graph *g = lop_graph_new(42);                 // seed for weight init, dropout
 *     lop_attrs a = lop_attrs_default();
 *     int x, c, id;
 *     a.in_ndim = 3; a.in_shape[0] = 1; a.in_shape[1] = 28; a.in_shape[2] = 28;
 *     lop_graph_add(g, LOP_INPUT, "input", NULL, 0, &a, &x);
 *     a = lop_attrs_default(); a.out_channels = 32; a.kernel_h = a.kernel_w = 3;
 *     a.pad_h = a.pad_w = 1;
 *     lop_graph_add(g, LOP_CONV2D, "conv1", &x, 1, &a, &c);
 *     ...                                               // the last node is the output
 *     lop_dataset train;
 *     lop_dataset_load_idx(images_gz, labels_gz, &train);
 *     lop_train_opts o = lop_train_opts_default();
 *     lop_train(g, &train, &o);
 *     lop_graph_save(g, "model.lop");                   // atomic: temp file + rename
 *
 * Threads: the engine splits layers across its own worker threads, one per core
 * (LOP_THREADS=n or lop_set_threads overrides), and then runs OpenBLAS single-threaded
 * inside them.  Results are bit-identical whatever the number of threads.  Graphs are
 * not shared between threads; separate graphs may run concurrently.
 *
 * Tensors are float32, contiguous, row-major (NCHW), at most 4 dimensions, reference
 * counted; a view shares its base's storage.  Nodes of a graph are kept in
 * topological order: a node's inputs must exist when it is added, and the last node
 * added is the network's output.  Per-sample shapes exclude the batch dimension.
 * FLOPs count one multiply-add as 2 FLOPs everywhere.
 *
 * The sections below follow the engine's folders, each built on the ones before it:
 * core, layers, graph, io, data, surgery, select, train.
 */
#ifndef LOPPER_H
#define LOPPER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* ==== core: errors, random numbers, tensors, the clock (engine/core/) ============ */

/* ---- status codes and errors ---------------------------------------------------- */

enum {
    LOP_OK = 0,
    LOP_ENOMEM,   /* allocation failed */
    LOP_EINVAL,   /* an argument is invalid (bad attribute, unknown name, ...) */
    LOP_ESHAPE,   /* shapes do not fit together */
    LOP_EIO,      /* a file could not be opened, read or written */
    LOP_EFORMAT,  /* a file is not what it claims to be (magic, size, CRC, version) */
    LOP_ESTATE,   /* the call is out of order (backward before a training forward) */
    LOP_ECANCEL,  /* a progress callback asked to stop */
    LOP_ENUMERIC, /* a result is NaN or infinite (a training run that diverged) */
};

/* Message describing the last failure in this thread ("" if none). */
const char *lop_errmsg(void);
/* Symbolic name of a status code ("LOP_EINVAL"). */
const char *lop_status_name(int status);

/* Run the engine's layers on n threads (1..64, the caller's included) from now on,
 * instead of one per core or LOP_THREADS.  Call it while no engine work runs on other
 * threads.  LOP_EINVAL for n out of range; fewer threads run if the system refuses to
 * start more.  Results do not depend on n. */
int lop_set_threads(int n);

/* Test hook: make the n-th allocation from now fail (n >= 1), or never (n = 0).
 * Returns how many allocations were made since the last call. */
long lop_debug_fail_alloc(long n);

/* ---- random numbers ------------------------------------------------------------- */

typedef struct lop_rng { uint64_t s[4]; } lop_rng;   /* xoshiro256** state */

void     lop_rng_seed(lop_rng *r, uint64_t seed);
uint64_t lop_rng_u64(lop_rng *r);
double   lop_rng_uniform(lop_rng *r);               /* [0, 1) */
double   lop_rng_normal(lop_rng *r);                /* mean 0, variance 1 */
int      lop_rng_below(lop_rng *r, int n);          /* uniform integer in [0, n) */

/* ---- tensors -------------------------------------------------------------------- */

#define LOP_MAX_DIMS 4

typedef struct lop_storage lop_storage;

typedef struct lop_tensor {
    int ndim;
    int shape[LOP_MAX_DIMS];
    size_t numel;
    float *data;              /* points into storage; contiguous */
    lop_storage *storage;
    int refs;
} lop_tensor;

/* New zero-filled tensor; NULL on failure (lop_errmsg says why). */
lop_tensor *lop_tensor_new(int ndim, const int *shape);
/* A view of numel(shape) elements of base starting at element offset. */
lop_tensor *lop_tensor_view(lop_tensor *base, size_t offset, int ndim, const int *shape);
lop_tensor *lop_tensor_clone(const lop_tensor *t);
void lop_tensor_retain(lop_tensor *t);
void lop_tensor_release(lop_tensor *t);             /* NULL is fine */
/* Make *t a tensor of the given shape, reallocating only when the element count
 * grows; contents are unspecified after a reshape. */
int  lop_tensor_ensure(lop_tensor **t, int ndim, const int *shape);
int  lop_tensor_same_shape(const lop_tensor *a, const lop_tensor *b);
void lop_tensor_fill(lop_tensor *t, float v);
size_t lop_shape_numel(int ndim, const int *shape);

/* ---- clock ---------------------------------------------------------------------- */

/* Seconds on a monotonic clock (for measuring intervals). */
double lop_seconds(void);

/* ==== layers: kinds, attributes, the loss (engine/layers/) ======================= */

typedef enum lop_kind {
    LOP_INPUT,
    LOP_CONV2D,
    LOP_BATCHNORM,
    LOP_RELU,
    LOP_MAXPOOL,
    LOP_AVGPOOL,
    LOP_GLOBAL_AVGPOOL,
    LOP_FLATTEN,
    LOP_LINEAR,
    LOP_ADD,
    LOP_CONCAT,
    LOP_DROPOUT,
    LOP_PICK,          /* out[:, j] = in[:, index[j]] (see lop_graph_insert_pick) */
    LOP_RELU6,         /* min(max(x, 0), 6) (MobileNetV2's activation) */
    LOP_PAD,           /* zeros around each (H,W) plane: pad_h/pad_w rows/columns
                          before, pad_bottom/pad_right after */
    LOP_KIND_COUNT
} lop_kind;

const char *lop_kind_name(lop_kind k);               /* "conv2d", ... */
int lop_kind_from_name(const char *name, lop_kind *out);

/* Attributes of a node; lop_attrs_default() sets neutral values and each kind reads
 * the fields it needs (the rest must keep their defaults). */
typedef struct lop_attrs {
    int in_ndim, in_shape[3];      /* input: per-sample shape (C,H,W) or (F) */
    int out_channels;              /* conv2d: filters; linear: output features */
    int kernel_h, kernel_w;        /* conv2d, maxpool, avgpool */
    int stride_h, stride_w;        /* default 1; pools read 0 as = kernel */
    int pad_h, pad_w;              /* default 0 */
    int pad_bottom, pad_right;     /* pad: zeros after (pad_h/pad_w are before); 0 */
    int ceil_mode;                 /* maxpool, avgpool: 1 rounds the output size up
                                      as PyTorch's ceil_mode does (default 0) */
    int exclude_pad;               /* avgpool: 1 divides each window by its taps inside
                                      the image only (ONNX count_include_pad=0);
                                      default 0: padding counts as zeros */
    int groups;                    /* conv2d: default 1; = channels for depthwise */
    int bias;                      /* conv2d, linear: 1 to have a bias (default 1) */
    float eps;                     /* batchnorm: default 1e-5 */
    float momentum;                /* batchnorm running-stat momentum: default 0.1 */
    float p;                       /* dropout probability: default 0.5 */
} lop_attrs;

lop_attrs lop_attrs_default(void);
/* Attributes of an input node taking per-sample images (c, h, w), or feature vectors
 * of c values when h = w = 0. */
lop_attrs lop_attrs_input(int c, int h, int w);

/* Mean softmax cross-entropy of logits [B, K] against labels (0..K-1).  When dlogits
 * is non-NULL it receives d(mean loss)/d(logits); correct (optional) receives the
 * number of top-1 hits. */
int lop_softmax_xent(const lop_tensor *logits, const int *labels, double *loss,
                     lop_tensor *dlogits, int *correct);

/* Knowledge distillation: (1 - alpha) times the mean softmax cross-entropy plus alpha
 * times T^2 KL(softmax(teacher / T) || softmax(logits / T)), teacher being another
 * network's logits for the same images (same shape); alpha in [0, 1], T > 0.  dlogits
 * (optional, not sharing memory with either input) and correct as for
 * lop_softmax_xent; alpha = 0 gives its loss. */
int lop_distill_xent(const lop_tensor *logits, const int *labels, const lop_tensor *teacher,
                     float alpha, float temperature, double *loss, lop_tensor *dlogits,
                     int *correct);

/* ==== graph: building, running, timing, folding (engine/graph/) ================== */

typedef struct lop_graph lop_graph;

/* New empty graph; seed drives weight initialisation and dropout. */
lop_graph *lop_graph_new(uint64_t seed);
void lop_graph_free(lop_graph *g);                    /* NULL is fine */
lop_graph *lop_graph_clone(const lop_graph *g);       /* weights and structure */

/* Append a node.  Validates attributes and input shapes, infers the output shape,
 * allocates and initialises parameters (conv weights Kaiming-normal, linear weights
 * uniform in +-1/sqrt(fan_in), zero biases, BN gamma 1 / beta 0 / mean 0 / var 1).
 * On failure the graph is unchanged. */
int lop_graph_add(lop_graph *g, lop_kind kind, const char *name,
                  const int *inputs, int ninputs, const lop_attrs *attrs, int *id);

int lop_graph_size(const lop_graph *g);               /* number of nodes */
int lop_graph_find(const lop_graph *g, const char *name);   /* id or -1 */
/* Bumped by every change that renumbers nodes or replaces their parameters
 * (surgery; appending a node is not one); lets handles detect that they are stale. */
uint64_t lop_graph_generation(const lop_graph *g);

/* The deployment setting.  While g is frozen, evaluation passes take its weights as
 * constant: what a layer derives from them (the Winograd-transformed weights of 3x3
 * convolutions) is kept from one pass to the next instead of derived on every pass,
 * and small batches take the Winograd paths that pay off only then - batch-1 latency
 * drops (1.08-1.40x faster on the shipped networks and their pruned shapes, 1.09x on
 * ResNet-18 at 224x224), at the memory of the kept weights (16/9 of a 3x3
 * convolution's own for F(2x2), 36/9 for F(4x4)).  A training pass, an optimizer step and
 * every engine call that changes parameters (surgery, refits, masks, folding) unfreeze
 * it first; a write through a parameter's data (lop_node_param) does not: unfreeze
 * before it.  Not frozen (the default), nothing is kept. */
void lop_graph_freeze(lop_graph *g, int frozen);
int lop_graph_frozen(const lop_graph *g);

/* Node queries; id must be in [0, size). */
const char *lop_node_name(const lop_graph *g, int id);
lop_kind lop_node_kind(const lop_graph *g, int id);
const lop_attrs *lop_node_attrs(const lop_graph *g, int id);
int lop_node_ninputs(const lop_graph *g, int id);
int lop_node_input(const lop_graph *g, int id, int k);
/* Per-sample output shape; returns ndim. */
int lop_node_shape(const lop_graph *g, int id, int *shape);
/* Parameters: conv2d/linear "weight", "bias"; batchnorm "weight" (gamma), "bias"
 * (beta), "running_mean", "running_var".  Trainable ones have a gradient. */
int lop_node_nparams(const lop_graph *g, int id);
const char *lop_node_param_name(const lop_graph *g, int id, int k);
lop_tensor *lop_node_param(const lop_graph *g, int id, int k);
lop_tensor *lop_node_grad(const lop_graph *g, int id, int k);     /* NULL if frozen */
int lop_node_find_param(const lop_graph *g, int id, const char *name);  /* k or -1 */
/* The node's activation from the last forward (NULL before one), batch first.  An
 * evaluation pass (lop_graph_forward with train=0) fuses chains - a conv2d with the
 * batchnorm, the add of it and an earlier node, and the relu / relu6 that read it
 * alone, one after the other; a batchnorm or add with the relu / relu6 that alone
 * reads it - and does not write the activations inside them: they keep what an
 * earlier pass left, and the chain's last node holds its values.  An evaluation pass
 * of more than 8 images runs its early nodes (maps of 13x13 and more) a slice of
 * images at a time through all of them, and of those it writes only the input, the
 * last node and the nodes read by a node after them (graph/slices.c).  A training pass
 * fuses only a batchnorm or add with the relu / relu6 that alone reads it, and writes
 * every other node's. */
lop_tensor *lop_node_output(const lop_graph *g, int id);

/* Counts: number of parameter values; FLOPs of one sample's forward pass. */
size_t lop_node_params(const lop_graph *g, int id);
double lop_node_flops(const lop_graph *g, int id);
size_t lop_graph_params(const lop_graph *g);
double lop_graph_flops(const lop_graph *g);

/* Run the graph on x ([B, per-sample input shape]).  train=1 uses batch statistics
 * in batchnorm (and updates running statistics) and applies dropout.  train=0 runs
 * each convolution with the batchnorm, residual add and relu after it (and a batchnorm
 * or add with the relu after it) as one step, one memory pass instead of up to four,
 * and its early layers a few images at a time, so that their activations stay in
 * cache (lop_node_output says which activations that leaves unwritten). */
int lop_graph_forward(lop_graph *g, const lop_tensor *x, int train);
lop_tensor *lop_graph_output(const lop_graph *g);
/* Back-propagate dout (same shape as the output) after a training forward;
 * parameter gradients accumulate until lop_graph_zero_grad. */
int lop_graph_backward(lop_graph *g, const lop_tensor *dout);
void lop_graph_zero_grad(lop_graph *g);
/* Gradient w.r.t. the graph's input from the last backward (NULL before one). */
lop_tensor *lop_graph_input_grad(const lop_graph *g);

/* Wall time of the fastest of `reps` forward passes (eval mode) at batch size `batch`,
 * per node (node_ms[i], may be NULL; each node's fastest pass; 0 for a node fused into
 * the one heading its chain, whose time includes it) and in total, in milliseconds. */
int lop_graph_time(lop_graph *g, int batch, int reps, double *node_ms, double *total_ms);

/* Wall time of the fastest of `reps` training steps at batch size `batch` (forward in
 * training mode, softmax cross-entropy's gradient for a classifier's [B, K] output or
 * a random one, backward, one SGD step), in milliseconds, and per node the fastest of
 * its forward (fwd_ms[i]) and backward (bwd_ms[i]) passes (either may be NULL).  The
 * steps run on a clone: g's weights and statistics do not change. */
int lop_graph_time_train(const lop_graph *g, int batch, int reps, double *fwd_ms,
                         double *bwd_ms, double *total_ms);

/* Fold every batchnorm whose input is a conv2d that only it reads into that conv, for
 * inference: w'[o] = w[o] gamma[o] / sqrt(var[o] + eps) and b'[o] = (b[o] - mean[o])
 * gamma[o] / sqrt(var[o] + eps) + beta[o] (a conv without bias gains one), computed in
 * double; the batchnorm goes and its readers read the conv, which keeps its name.
 * Evaluation gives the same outputs (to rounding); training the result trains a
 * different model (a biased conv, no batch statistics).  A batchnorm after anything
 * else (a pool, a linear layer, a conv others read too) stays.  *folded (may be NULL)
 * receives the count.  A new generation when anything was folded (ids after the first
 * fold shift); on failure the graph is unchanged.  The ONNX writer's fold_batchnorm
 * is this, on a clone. */
int lop_graph_fold_batchnorm(lop_graph *g, int *folded);

/* ==== io: model files (engine/io/) =============================================== */

/* Save a .lop file atomically (temporary file in the same directory, then rename).  A
 * model file holds at most 10,000 nodes; header lines are limited to 64 KiB. */
int lop_graph_save(const lop_graph *g, const char *path);
/* Load a .lop file or an ONNX model, told apart by content (a .lop file is a gzip
 * stream); on failure *out is untouched and nothing leaks. */
int lop_graph_load(const char *path, lop_graph **out);

/* ONNX (docs/onnx.md).  The reader maps the operators the engine has layers for and
 * refuses anything else with one message naming the operator and the node.  The
 * writer emits opset 13, node names kept, atomically; with fold_batchnorm, a
 * batchnorm right after a convolution (its only reader) is folded into it, the
 * deployable form. */
typedef struct lop_onnx_opts {
    int fold_batchnorm;    /* default 0: BatchNormalization written as is */
} lop_onnx_opts;

int lop_graph_load_onnx(const char *path, lop_graph **out);
int lop_graph_save_onnx(const lop_graph *g, const char *path, const lop_onnx_opts *o);

/* ==== data: data sets and batches (engine/data/) ================================= */

typedef struct lop_augment {
    int crop_pad;          /* random crop after zero padding by this many pixels,
                              0 <= crop_pad <= min(H, W) */
    int flip;              /* random horizontal flip with probability 1/2 */
} lop_augment;

/* A source produces the images of a streamed data set on demand (image folders, .npy
 * files): sets too large for memory, decoded on worker threads ahead of the engine.
 * Sources are refcounted; a data set and its subsets share one.  An opener makes it
 * zeroed but for its fields, with refs = 1 (the data set's reference). */
typedef struct lop_source lop_source;
struct lop_source {
    int c, h, w;           /* every image it produces is c x h x w floats */
    int workers;           /* decoding threads a loader runs for it (>= 1) */
    int skip_bad;          /* a bad image leaves its batch (counted) instead of failing */
    /* Write image `item` (0-based, of the source) into out.  seed != 0 asks for the
     * source's random training augmentation drawn from that seed (a random crop, a
     * flip); seed 0 for the deterministic evaluation transform.  Called from several
     * threads at once on distinct items.  A bad item returns LOP_EIO or LOP_EFORMAT
     * with a message naming the file in why (never through lop_fail: it runs on a
     * worker thread). */
    int (*read)(lop_source *s, int item, uint64_t seed, float *out, char *why,
                size_t whylen);
    void (*destroy)(lop_source *s);  /* frees everything, s included */
    int refs;              /* lop_source_retain / lop_source_release */
    long skipped;          /* bad images skipped so far (updated atomically) */
    char first_skipped[256];   /* the first one's message */
    const char *kind;      /* what it reads, for messages: "image folder", ".npy" (or NULL) */
};
lop_source *lop_source_retain(lop_source *s);
void lop_source_release(lop_source *s);

/* A data set: images in memory, or from a source; labels are always in memory. */
typedef struct lop_dataset {
    lop_tensor *images;    /* [N, C, H, W], values as read (0..1 for image files);
                              NULL for a streamed set */
    int *labels;           /* N labels in [0, classes) */
    int n;
    int classes;
    lop_source *source;    /* streamed sets only (one reference held) */
    int *source_item;      /* streamed: item i is source item source_item[i] (NULL: i) */
} lop_dataset;

/* C, H, W of every image of d (in memory or streamed). */
void lop_dataset_shape(const lop_dataset *d, int chw[3]);
/* LOP_OK when d's images fit g's input, otherwise an error that says both shapes:
 * "<who>: the images are 1x28x28, the network takes 3x224x224". */
int lop_dataset_check_input(const lop_dataset *d, const lop_graph *g, const char *who);

/* Batches of d's items order[0..n) in that order, `batch` at a time: what training,
 * evaluation, sampling and calibration iterate over.  In memory, each batch is
 * gathered on the caller's thread by lop_dataset_batch (aug and rng exactly as
 * there).  Streamed, the source's workers produce images up to a few batches ahead
 * of the caller; with rng (training) the loader draws one seed per item from rng
 * when opened, in order, and the item's source augmentation and aug (applied after
 * the source, as lop_dataset_batch does, from an rng seeded with the item's seed
 * xor a constant, so the two draw independently) depend on that seed alone, so
 * results do not depend on the number of workers.  Without rng every item gets the
 * evaluation transform and aug must be inactive. */
typedef struct lop_loader lop_loader;
int lop_loader_open(const lop_dataset *d, const int *order, int n, int batch,
                    const lop_augment *aug, lop_rng *rng, lop_loader **out);
/* The next batch into x (resized to [count, C, H, W]) and labels (count entries, may
 * be NULL); *count = 0 after the last.  A bad streamed image fails the call with its
 * message, or with the source's skip_bad leaves the batch, which is then smaller
 * (possibly empty: count 0 is returned only at the end, empty batches are passed
 * over). */
int lop_loader_next(lop_loader *l, lop_tensor **x, int *labels, int *count);
/* Entries of order used so far: delivered in batches or skipped (progress reports). */
int lop_loader_done(const lop_loader *l);
void lop_loader_close(lop_loader *l);   /* stops and joins the workers; NULL is fine */

/* An image folder: root/<class>/<image>, classes sorted by name (bytewise), images
 * sorted by name within a class; PNG and JPEG (by content, not extension; other files
 * are an error naming them unless skip_bad), 8-bit grey or colour (palette, 16-bit
 * and alpha PNGs converted), converted to `channels` (grey -> colour repeats the
 * plane, colour -> grey is 0.299 R + 0.587 G + 0.114 B).  Each image: resize so the
 * shorter side is `resize` (0: no resize), then crop size_h x size_w - centred for
 * evaluation, at a random place when training with random_crop - then flip
 * left-right with probability 1/2 when training with flip, then x = (v / 255 -
 * mean[c]) / std[c].  An image smaller than the crop after the resize is an error
 * naming it. */
typedef struct lop_folder_opts {
    int channels;          /* 1 or 3 (default 3) */
    int size_h, size_w;    /* output size (required) */
    int resize;            /* shorter side before cropping; 0 = none (default) */
    int random_crop;       /* training: crop at a random place (default 0) */
    int flip;              /* training: random left-right flip (default 0) */
    float mean[3], std[3]; /* per channel (default 0 and 1) */
    int workers;           /* decoding threads (default 2) */
    int skip_bad;          /* skip unreadable images, counted (default 0) */
} lop_folder_opts;
lop_folder_opts lop_folder_opts_default(void);
int lop_dataset_open_folder(const char *root, const lop_folder_opts *o, lop_dataset *out);
/* Name of class k (the folder's name) of a data set opened from an image folder (or a
 * subset of one); NULL for any other data set or k outside 0..classes-1. */
const char *lop_folder_class_name(const lop_dataset *d, int k);
/* One image file into a new [C, H, W] tensor *out.  With o, exactly what an image
 * folder with options o makes of it (seed as lop_source.read takes it; channels is
 * not used).  Without (o NULL), its decoded 8-bit values unscaled (0..255), at its own
 * size, converted to `channels` as a folder would (0: as stored, 1 for a grey file,
 * 3 for a colour one). */
int lop_image_read(const char *path, const lop_folder_opts *o, int channels, uint64_t seed,
                   lop_tensor **out);

/* NumPy .npy images (uint8 or float32, [N, C, H, W] or [N, H, W, C] - told by
 * channels_last - or [N, H, W] for one channel) and labels (a 1-D integer array of
 * N: int8..int64 or uint8..uint64), memory-mapped: images are converted per batch
 * (uint8 / 255, float32 as stored), then x = (v - mean[c]) / std[c].  Labels must be
 * in 0..classes-1 (classes = 1 + the largest label unless given). */
typedef struct lop_npy_opts {
    int channels_last;     /* images are [N, H, W, C] (default 0: [N, C, H, W]) */
    int classes;           /* 0 = 1 + the largest label */
    float mean[3], std[3]; /* per channel (default 0 and 1); more channels use [0] */
} lop_npy_opts;
lop_npy_opts lop_npy_opts_default(void);
int lop_dataset_open_npy(const char *images_path, const char *labels_path,
                         const lop_npy_opts *o, lop_dataset *out);

/* Fashion-MNIST / MNIST IDX files, gzip-compressed or plain.  Pixels become 0..1. */
int lop_dataset_load_idx(const char *images_path, const char *labels_path,
                         lop_dataset *out);
/* CIFAR-10 binary batches (data_batch_*.bin, test_batch.bin), concatenated. */
int lop_dataset_load_cifar10(const char *const *paths, int npaths, lop_dataset *out);
/* An in-memory data set holding a copy of images ([N, C, H, W], finite values) and of
 * labels (N, in 0..classes-1; classes = 0 means 1 + the largest label). */
int lop_dataset_from_tensor(const lop_tensor *images, const int *labels, int classes,
                            lop_dataset *out);
/* Frees what d holds (a streamed set releases its source); d becomes all zero. */
void lop_dataset_free(lop_dataset *d);
/* Items [start, start + count): a copy in memory; of a streamed set, a set sharing its
 * source (the items mapped through source_item, the labels copied). */
int lop_dataset_subset(const lop_dataset *d, int start, int count, lop_dataset *out);
/* Zero-pad every image in place to size x size, centred (28 -> 32 pads 2 per side);
 * an odd difference puts the extra row/column at the bottom/right.  In memory only:
 * a streamed set's size and normalisation are its opener's options. */
int lop_dataset_pad(lop_dataset *d, int size);
/* x = (x - mean[c]) / std[c] for each of the nchannels channels (1 or C values); in
 * memory only. */
int lop_dataset_normalize(lop_dataset *d, const float *mean, const float *std,
                          int nchannels);
/* perm = a seeded random permutation of 0..n-1. */
void lop_shuffle(int *perm, int n, lop_rng *rng);

/* Gather items idx[0..count) into x ([count, C, H, W], resized as needed) and labels
 * (may be NULL), applying aug (may be NULL) with rng (required when aug is active).
 * For each item in order the rng draws dy = below(2p+1) - p, then dx likewise, then
 * mirror = below(2) (nothing is drawn for a disabled augmentation), and
 * out[c][y][x] = in[c][y + dy][xs + dx] with xs = mirror ? W-1-x : x, zero outside.
 * A streamed set reads each item through its source on the caller's thread, as a
 * loader would: with rng, one seed per item drawn in order (the source's training
 * transform, then aug from an rng seeded with it); without, the evaluation transform.
 * A bad image fails the call (skip_bad does not apply: the count is fixed). */
int lop_dataset_batch(const lop_dataset *d, const int *idx, int count,
                      const lop_augment *aug, lop_rng *rng, lop_tensor **x, int *labels);

/* ==== surgery: channel groups, pruning, masks, picks, heads (engine/surgery/) ==== */

/* A channel group is a set of channel axes that must shrink together, derived from
 * the graph: conv2d and linear create a channel space (their outputs); batchnorm,
 * relu, relu6, pad, pools, dropout and global_avgpool pass it through; add merges its
 * inputs' spaces; concat lays its inputs' spaces side by side; flatten turns channel c
 * into the block of H*W features c*H*W.. of the next linear layer; a depthwise conv
 * ties its input and output channels.  A grouped convolution (1 < groups, not
 * depthwise) consumes its input's group and produces its output's like any conv, and
 * splits each into `slices`: the lcm of the groups of every grouped conv reading or
 * writing the group (a conv reading a concat of several copies of one group counts
 * the conv groups each copy spans).  A group touching the network input or the
 * output (logits) is not prunable, nor one whose channels a grouped conv reads along
 * with other groups' (a concat) or across its conv groups' boundaries. */
typedef enum {
    LOP_ROLE_PRODUCER,     /* conv2d/linear whose output filters are the group, or a
                              pick whose index entries are */
    LOP_ROLE_CONSUMER,     /* conv2d/linear whose input slices are the group (a grouped
                              conv's weight holds, per conv group, its slice's share) */
    LOP_ROLE_PASS          /* carries the group through (batchnorm and depthwise conv
                              prune their per-channel parameters too) */
} lop_role;

typedef struct lop_member {
    int node;
    lop_role role;
    int offset;            /* where the group's channel 0 sits on the node's axis */
    int block;             /* features per channel on that axis (H*W after flatten) */
} lop_member;

typedef struct lop_group {
    int channels;
    int slices;            /* a grouped convolution in the group splits its channels
                              into this many equal consecutive slices, and a keep list
                              must keep as many channels in each (1: no constraint) */
    int prunable;
    char why[96];          /* why not, when not prunable */
    int nmembers;
    lop_member *members;   /* in node order */
} lop_group;

typedef struct lop_groups {
    int n;
    lop_group *groups;     /* in order of their first producer */
} lop_groups;

int lop_graph_groups(const lop_graph *g, lop_groups *out);
void lop_groups_free(lop_groups *gs);
/* Index of the group whose channels node's output carries (a producer, batchnorm,
 * relu, flatten, ...), or -1 when node's output is no single group (the input, a
 * concat of several groups, or what follows one). */
int lop_groups_find(const lop_groups *gs, int node);

/* Keep only channels keep[0..nkeep) (0-based, strictly increasing) of the group that
 * node's output carries, in every member: producers' filters and biases, batchnorm
 * entries, depthwise filters, consumers' input slices (the linear columns after a
 * flatten, the segments of a concat, a grouped conv's columns per conv group).  A
 * group with slices > 1 must keep as many channels in each slice (a grouped conv
 * keeps its groups, each narrower).  Validates everything first; on failure the
 * graph is unchanged.  Bumps the generation; optimizer state of touched nodes resets. */
int lop_graph_prune(lop_graph *g, int node, const int *keep, int nkeep);

/* Mask channels of the group node's output carries: keep[c] = 0 zeroes channel c in
 * every member with per-channel parameters (filters and biases, batchnorm gamma and
 * beta, depthwise filters), now and after every SGD step, so masked channels output
 * exactly zero while the network retrains.  keep has the group's channel count of
 * entries; all ones clears the mask; with slices > 1 it must keep as many channels in
 * each slice, as a prune would.  Masks are not saved in model files. */
int lop_graph_set_mask(lop_graph *g, int node, const unsigned char *keep, int n);
/* Remove every masked channel physically (lop_graph_prune per masked group, each one
 * atomic), then drop the masks.  *removed (may be NULL) receives the number of
 * channels removed. */
int lop_graph_remove_masked(lop_graph *g, int *removed);

/* He et al.'s sampler: put a pick node (named "<conv>_pick", picking every channel, in
 * order) between conv2d node `conv` and its input, so the conv's input channels form
 * a group of their own that can be pruned while the input itself - read by a
 * shortcut, say - stays whole.  Ids after the conv shift by one; handles and
 * statistics go stale.  *pick (may be NULL) receives the new node's id.  On failure
 * the graph is unchanged. */
int lop_graph_insert_pick(lop_graph *g, int conv, int *pick);

/* ThiNet-GAP: replace the flatten + fully connected head after the last convolution
 * by global average pooling + one linear layer (named like the old output layer).
 * With calib, the new layer is fitted by least squares to reproduce the old head's
 * logits from the pooled features of calib's first `images` images; without, it keeps
 * its random initialisation.  On failure the graph is unchanged. */
int lop_graph_replace_head_gap(lop_graph *g, const lop_dataset *calib, int images);

/* ==== select: sampling, selection rules, reconstruction (engine/select/) ========= */

typedef struct lop_sample_opts {
    int images;            /* calibration images (default 500) */
    int points;            /* random output positions per image (default 10) */
    int batch;             /* images per forward pass (default 64) */
    uint64_t seed;         /* image order and positions (default 1) */
    int residual;          /* with a reference, for a conv -> batchnorm -> add: target the
                              add's output, Y = (a' (Y_ref) + b' + S_ref - S - b) / a - bias,
                              where a z + b is the batchnorm here (a', b' the reference's)
                              and S, S_ref the add's other input (the shortcut) here and in
                              the reference (He et al.'s residual handling); default 0 */
    const int *ref_channels;   /* with a reference: for each output channel of the layer
                              sampled, its channel in the reference's same layer (0-based),
                              when this layer's outputs were pruned; NULL = the same */
} lop_sample_opts;

lop_sample_opts lop_sample_opts_default(void);

/* Sufficient statistics of one convolution's inputs and outputs at the sampled
 * positions (m samples; D = c * kh * kw patch entries; n outputs; Y minus this
 * conv's bias): P = X^T X (D x D), C = X^T Y (D x n), xsum, ysum, yy = sum Y^2, the
 * Gram of the per-channel contributions Z_j = X_j W_j^T: A = Z^T Z (c x c),
 * r = Z^T Y (c), and wnorm (c), each input channel's filter norm ||W_j||_F over every
 * output and tap.  All row-major doubles. */
typedef struct lop_stats {
    int node;
    uint64_t generation;   /* of the graph sampled: stale after surgery */
    int c, kh, kw, n;
    long m;
    double *P, *C, *xsum, *ysum, yy;
    double *A, *r, *wnorm;
} lop_stats;

/* Sample conv `node` of g on d's images (a seeded random subset), taking Y from the
 * same conv of ref when ref is not NULL (the original network, for He et al.).  A
 * linear layer is sampled once per image (points does not apply), its input features
 * read as c channels of kh x kw: the shape a flatten flattened, or c features of 1 x 1.
 * A grouped or depthwise conv is refused (not supported yet). */
int lop_sample(lop_graph *g, const lop_dataset *d, int node, const lop_sample_opts *o,
               lop_graph *ref, lop_stats *out);
/* lop_sample of count layers of g at once, out[i] the statistics of nodes[i], each the
 * same as lop_sample gives it alone (ref_channels[i] its reference map, or NULL; the
 * map in o is not used), for the price of one calibration pass through the furthest
 * of them: a channel group's readers.  On failure nothing is written to out. */
int lop_sample_layers(lop_graph *g, const lop_dataset *d, const int *nodes, int count,
                      const lop_sample_opts *o, const int *const *ref_channels,
                      lop_graph *ref, lop_stats *out);
void lop_stats_free(lop_stats *s);

/* Selection statistics for a channel group several layers read (a residual stage):
 * the sum of the parts' A and r, each divided by its yy, so a rule on them minimises
 * the sum of the layers' relative errors; wnorm_j = sqrt(sum ||W_j||^2 / yy) and yy =
 * the number of parts.  The parts must be of one graph generation with the same c.
 * out has no P or C: it selects, it cannot reconstruct (lop_reconstruct_group fits
 * each part). */
int lop_stats_combine(const lop_stats *const *parts, int nparts, lop_stats *out);

/* ---- selection rules ------------------------------------------------------------ */

/* Every rule fills keep with nkeep channel indices (0-based, increasing) out of c,
 * and refuses nkeep outside 1..c.  lop_keep_count is how many channels a kept
 * fraction means: ceil(fraction * c), at least 1 and at most c. */
int lop_keep_count(double fraction, int c);

/* The nkeep channels of highest score (ties go to the lower channel). */
int lop_select_top(const double *score, int c, int nkeep, int *keep);
/* The same within each of `slices` equal consecutive slices of the c channels (a
 * group that grouped convolutions slice): nkeep / slices of every slice (nkeep a
 * multiple of slices); keep stays increasing. */
int lop_select_top_sliced(const double *score, int c, int slices, int nkeep, int *keep);
/* Baselines: the first nkeep channels; a seeded random subset; the input channels of
 * conv2d/linear `node` whose producing filters have the largest L1 norm (summed over
 * every producer of their group, looking through channel picks to the filters the
 * picked channels come from; when the group has slices, nkeep / slices from each
 * slice, nkeep a multiple of slices). */
int lop_select_first(int c, int nkeep, int *keep);
int lop_select_random(int c, int nkeep, uint64_t seed, int *keep);
int lop_select_l1(const lop_graph *g, int node, int nkeep, int *keep);

/* ThiNet: greedy removal on the Gram matrix of per-channel contributions (c x c,
 * row-major doubles: lop_stats.A). */
int lop_select_thinet(const double *G, int c, int nkeep, int *keep);
/* The same greedy removal run to the end: order receives all c channels from most to
 * least worth keeping (the removals reversed), so that the first n of order, sorted,
 * are what lop_select_thinet keeps for n. */
int lop_select_thinet_order(const double *G, int c, int *order);

/* He et al.'s LASSO on A and r = Z^T Y (lop_stats.A, .r) with each channel's
 * contribution scaled to that of a unit-norm filter by norm (lop_stats.wnorm; NULL
 * leaves A and r as they are): beta (may be NULL, c entries) receives the coefficients
 * of the normalised problem, info (may be NULL) how the search went. */
typedef struct lop_lasso_info {
    double lambda;         /* the penalty of the solution the keep list comes from */
    int sweeps;            /* coordinate-descent sweeps over all solves */
    int converged;         /* every solve of the search met the optimality conditions
                              to its tolerance (within the sweep cap, or finished by
                              feature-sign search after it); when not - a Gram matrix so
                              singular the objective has no minimum - the ranking is of
                              an unfinished one */
} lop_lasso_info;
int lop_select_lasso(const double *A, const double *r, const double *norm, int c, int nkeep,
                     int *keep, double *beta, lop_lasso_info *info);

/* ---- reconstruction ------------------------------------------------------------- */

typedef enum {
    LOP_RECON_WEIGHTS,     /* He et al.: refit all weights (and bias) of the kept channels */
    LOP_RECON_SCALE,       /* ThiNet: one least-squares factor per kept channel */
    /* Or'd into either: fit a layer whose input passes through dropout (through
     * flattens) for the noise dropout adds in training, minimising the expected
     * training-mode error ||Y - XW||^2 + (1-q)/q sum_j G_jj w_j^2 (q the keep
     * probability, G = X'X) instead of the evaluation-mode one - for a network that is
     * fine-tuned next.  The error reported stays the evaluation-mode one. */
    LOP_RECON_DROPOUT = 16
} lop_recon;

/* Keep input channels keep[0..nkeep) (0-based, increasing) of the conv (or linear
 * layer) the statistics were sampled at: fit what remains (mode) by least squares on
 * the statistics, with a ridge relative to the Gram's mean diagonal, then remove the
 * other channels from their whole group (lop_graph_prune).  rel_error (may be NULL) receives the fit's
 * relative error on the samples, ||Y - Y'||^2 / ||Y||^2.  Statistics from before a
 * change of the network are refused.  On failure the graph is unchanged. */
int lop_reconstruct(lop_graph *g, const lop_stats *s, const int *keep, int nkeep,
                    lop_recon mode, double ridge, double *rel_error);
/* The same for a channel group that several layers read: each of the parts (sampled at
 * different consumers of the group, in one graph generation) is refitted to keep, then
 * the channels are removed once.  rel_errors (may be NULL) receives one error per
 * part.  On failure the graph is unchanged. */
int lop_reconstruct_group(lop_graph *g, const lop_stats *const *parts, int nparts,
                          const int *keep, int nkeep, lop_recon mode, double ridge,
                          double *rel_errors);

/* The relative error lop_reconstruct would report when keeping the first k channels
 * of order (a permutation of 0..c-1, most worth keeping first) with refit mode, for
 * every k = 1..c at once: rel_error[k - 1] (c entries).  with_bias says whether the
 * conv has a bias (the weights refit fits a change to it; lop_reconstruct reads it
 * from the conv).  One Cholesky factorisation of the normal equations permuted into
 * order serves every count: O(D^3 + D^2 n) for D = c kh kw patch entries, where c
 * separate fits cost c factorisations.  The ridge is relative to the mean diagonal of
 * the whole system (each of lop_reconstruct's fits uses its own, a difference of
 * second order in the ridge); when it needs raising for the factorisation to
 * succeed, every count gets the raised one. */
int lop_prefix_errors(const lop_stats *s, const int *order, lop_recon mode, int with_bias,
                      double ridge, double *rel_error);

/* ---- Hessian importance --------------------------------------------------------- */

typedef struct lop_hessian_opts {
    int images;            /* calibration images the loss is averaged over (default 128) */
    int batch;             /* images per forward/backward pass (>= 2, default 64) */
    int max_iter;          /* power-iteration cap (default 100, as in SOLVERS.md) */
    double tol;            /* stop when the eigenvalue moves by less (relative, 1e-3) */
    uint64_t seed;         /* calibration subset and starting vector (default 1) */
} lop_hessian_opts;

lop_hessian_opts lop_hessian_opts_default(void);

/* Dominant eigenpair of the training loss's Hessian restricted to the weights of
 * conv2d/linear `node` (power iteration on central-difference Hessian-vector
 * products).  eigenvector (may be NULL) receives a unit vector shaped like the
 * weights; iterations (may be NULL) the number of products used.  The network's
 * parameters and random state are restored afterwards. */
int lop_hessian_top(lop_graph *g, const lop_dataset *d, int node, const lop_hessian_opts *o,
                    double *eigenvalue, float *eigenvector, int *iterations);
/* Importance of each filter of conv2d/linear `node` (score gets one entry per output
 * channel): the L1 norm of eigenvector's entries for it, times its squared weight
 * norm when weighted.  Rank with lop_select_top - within each slice when the group
 * node's output carries has slices, as lop.select.hessian does. */
int lop_hessian_importance(const lop_graph *g, int node, const float *eigenvector,
                           int weighted, double *score);

/* ==== train: SGD, schedules, training loops (engine/train/) ====================== */

typedef struct lop_sgd {
    float lr;
    float momentum;        /* 0 disables the velocity buffer */
    float weight_decay;    /* L2, applied to conv/linear weights only */
    int nesterov;
} lop_sgd;

/* One update of every trainable parameter from its accumulated gradient:
 *   g' = g + wd * w;  v = momentum * v + g';  step = nesterov ? g' + momentum * v : v;
 *   w -= lr * step. */
int lop_sgd_step(lop_graph *g, const lop_sgd *opt);

typedef enum { LOP_SCHEDULE_CONSTANT, LOP_SCHEDULE_STEP, LOP_SCHEDULE_COSINE } lop_schedule;

/* Learning rate for progress t in [0, 1] of the run (epoch + fraction / epochs). */
float lop_lr_at(lop_schedule s, float base, double t, int epochs, int step_epochs,
                float gamma);

/* ---- training loops ------------------------------------------------------------- */

typedef struct lop_progress {
    const char *phase;     /* "train" or "eval" */
    int epoch, epochs;     /* 1-based epoch */
    long done, total;      /* samples done / total in this phase */
    double loss;           /* running mean loss */
    double top1;           /* running accuracy in [0, 1] */
    float lr;
} lop_progress;

/* Called after each batch; a nonzero return stops the loop with LOP_ECANCEL. */
typedef int (*lop_progress_fn)(void *ud, const lop_progress *p);

/* A feature hint: the output of node `student` of the trained graph learns the output
 * of node `teacher` of the teacher, its channel c from the teacher's channel
 * channels[c] (channels NULL: channel c), the other dimensions equal.  A pruned
 * network's activation keeps some of the original's channels; channels says which. */
typedef struct lop_hint {
    int student, teacher;
    const int *channels;
} lop_hint;

typedef struct lop_train_opts {
    int epochs;            /* default 1 */
    int batch;             /* default 128 */
    lop_sgd sgd;           /* default lr 0.05, momentum 0.9, wd 5e-4, nesterov */
    lop_schedule schedule; /* default cosine */
    int step_epochs;       /* step schedule: period in epochs */
    float gamma;           /* step schedule: factor */
    lop_augment augment;   /* default none */
    uint64_t seed;         /* shuffling and augmentation */
    /* Run only epochs [from_epoch, until_epoch) of the `epochs`-long schedule (defaults
     * 0 and 0 = all), so training interrupted after an epoch can be resumed: each
     * epoch's shuffle and augmentation come from its own stream of `seed`, and the
     * learning rate continues where it was.  SGD momentum lives in the graph's nodes,
     * so a model loaded from a file restarts it from zero. */
    int from_epoch, until_epoch;
    /* Distillation (default off): when teacher is set, each batch also runs through it
     * (evaluation mode, not trained) and the loss is lop_distill_xent's with weight
     * distill (default 0.5) and temperature (default 4).  The teacher must be another
     * graph taking the same images and giving as many class scores. */
    lop_graph *teacher;
    float distill, temperature;
    /* Feature hints (default none; they need a teacher): each adds hint_weight / nhints
     * times the relative squared error between its two nodes' outputs on the batch,
     * sum (s - t)^2 / sum t^2 over images, channels and positions, to the loss, so the
     * trained graph's activations there keep to the teacher's (FitNets). */
    const lop_hint *hints;
    int nhints;
    float hint_weight;     /* default 1 */
    lop_progress_fn progress;
    void *progress_ud;
} lop_train_opts;

lop_train_opts lop_train_opts_default(void);

typedef struct lop_eval { double top1; double loss; long n; } lop_eval;

/* Train g on d.  A run whose loss stops being finite, or whose last step leaves a
 * weight NaN or infinite, fails with LOP_ENUMERIC and puts g's parameters and SGD
 * velocities back as they were before the call (engine/train/rollback.c). */
int lop_train(lop_graph *g, const lop_dataset *d, const lop_train_opts *o,
              lop_eval *last_epoch);
int lop_evaluate(lop_graph *g, const lop_dataset *d, int batch, lop_progress_fn progress,
                 void *progress_ud, lop_eval *out);

#ifdef __cplusplus
}
#endif
#endif
