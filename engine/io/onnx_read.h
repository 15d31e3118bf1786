/*
 * onnx_read.h - what the ONNX reader's two files share (engine/io/onnx_read.c: the
 * model, its names and constants; engine/io/onnx_ops.c: one function per operator):
 * the table of values the graph's names stand for, and the helpers that read them.
 */
#ifndef LOPPER_ONNX_READ_H
#define LOPPER_ONNX_READ_H

#include "internal.h"
#include "onnx.pb-c.h"

#define MAX_NODES 10000               /* as for .lop files */
#define MAX_DIM 1000000               /* largest tensor or map dimension taken */
#define MAX_VALUES 0x7fffffffL        /* elements in one tensor */
#define BATCH INT64_MIN               /* the batch size in folded shapes: unknown */

#define SUPPORTED                                                                     \
    "Conv, BatchNormalization, Relu, Clip (to [0, 6] or [0, inf)), MaxPool, "         \
    "AveragePool, GlobalAveragePool, ReduceMean (spatial), Pad (zeros, H and W), "    \
    "Flatten, Reshape (to 2-D), Gemm, MatMul + Add, Add, "                            \
    "Concat, Gather (channels), Dropout, Identity, Constant, and Shape/Gather/"       \
    "Unsqueeze/Concat on constant shapes"

enum { T_FLOAT = 1, T_INT32 = 6, T_INT64 = 7, T_BOOL = 9 };

typedef const Onnx__NodeProto node_t;

/* What a value name stands for. */
enum { V_UNSET, V_ACT, V_CONST };

typedef struct value {
    const char *name;            /* points into the parsed model */
    int kind;
    int produced;                /* by a node (not an initializer or the input) */
    int uses;                    /* as a node input or the graph output */
    int user;                    /* index of the last node reading it, -1 if none */
    /* V_ACT: an engine node's output.  squeezed: ONNX sees [N, C, 1, 1] where the
     * engine has a feature vector (after global pooling with keepdims).  pad: zero
     * padding (top, left, bottom, right) of the Pad node pad_node still to be taken: by
     * the Conv or AveragePool reading it when they can, else as a pad layer. */
    int node, squeezed, pad[4];
    node_t *pad_node;
    /* V_CONST: a tensor of the file (t), or folded int64 values (ints, owned). */
    const Onnx__TensorProto *t;
    int type, ndim;
    int64_t dims[LOP_MAX_DIMS];
    size_t n;
    int64_t *ints;
} value;

typedef struct ctx {
    const char *path;
    Onnx__ModelProto *model;
    const Onnx__GraphProto *gp;
    lop_graph *g;
    value *vals;                 /* open addressing, cap entries */
    size_t cap;
    const char **names;          /* the engine's node names so far, also cap slots */
    unsigned char *skip;         /* nodes already taken (the Add after a MatMul) */
    int64_t batch;               /* the input's declared batch size, or BATCH */
    int opset;
} ctx;

/* Errors: one LOP_EFORMAT message naming the file, the node (its name, else its
 * first output) and its operator, then what is wrong. */
int lop_onnx_fail(const ctx *c, node_t *nd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The entry for name: found (NULL if not), or a fresh one (kind V_UNSET) when create
 * is set. */
value *lop_onnx_value(ctx *c, const char *name, int create);
/* The defined value input k of nd names; NULL for an absent optional input ("") or
 * an undefined one. */
value *lop_onnx_input(ctx *c, node_t *nd, size_t k);

/* Constant input k of nd of the wanted class (T_FLOAT, or T_INT64 for any integer
 * type); NULL after an error naming its role when it is missing or of another type. */
value *lop_onnx_const(ctx *c, node_t *nd, size_t k, int type, const char *role);
/* Value i of an integer constant. */
int64_t lop_onnx_int(const value *v, size_t i);
/* dst[i] = scale * value i of a FLOAT constant, for all its values. */
void lop_onnx_floats(const value *v, float scale, float *dst);
/* Make v a folded INT64 constant of n values (owned by v) of the given rank. */
int lop_onnx_ints_new(value *v, int ndim, size_t n);

/* An engine name for a wanted one (characters the engine refuses made '_', cut to
 * fit, made unique) into out[LOP_NAME_MAX]; add a node under such a name. */
void lop_onnx_name(const ctx *c, const char *want, char *out);
int lop_onnx_graph_add(ctx *c, lop_kind kind, const char *name, const int *ins, int nin,
                       const lop_attrs *a, int *id);

/* The reader of an operator (onnx_ops.c), NULL for one outside the set. */
typedef int (*lop_onnx_op_fn)(ctx *c, node_t *nd);
lop_onnx_op_fn lop_onnx_op_find(const char *op_type);
/* Give activation v's pending Pad a pad layer of its own (nothing if none). */
int lop_onnx_take_pad(ctx *c, value *v);

#endif
