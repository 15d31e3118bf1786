/*
 * onnx_write.c - ONNX models out: a Lopper graph as an opset-13 ModelProto, built
 * from the structures protobuf-c generates from Debian's onnx.proto and packed by
 * protobuf-c, then written atomically (files.c).  Every node keeps its name, and its
 * output value is named after it; parameters are initializers named
 * "<node>@<parameter>" ('@' never occurs in a node name, so they cannot collide).
 * Global average pooling is written as ReduceMean over the spatial axes without
 * keepdims (so no Flatten is needed before a linear layer), a channel pick as Gather
 * on axis 1 with a constant index, a linear layer as Gemm with transB=1, relu6 as
 * Clip to [0, 6], a pad layer as Pad with constant zeros.  With fold_batchnorm the
 * writer writes a clone with batchnorm folded into convolutions (fold_batchnorm.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "onnx.pb-c.h"

#define OPSET 13
#define IR_VERSION 7   /* the IR version of opset 13 */
#define MAX_BYTES 0x7fffffffL

typedef struct writer {
    const lop_graph *g;
    void **blocks;               /* every allocation, freed together */
    size_t nblocks, cap;
    int oom;
    Onnx__GraphProto graph;
} writer;

/* ---- memory: one list of blocks, freed at the end -------------------------------- */

static void *wmalloc(writer *w, size_t size)
{
    if (w->oom)
        return NULL;
    if (w->nblocks == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 256;
        void **b = lop_realloc(w->blocks, cap * sizeof *b);
        if (!b) {
            w->oom = 1;
            return NULL;
        }
        w->blocks = b;
        w->cap = cap;
    }
    void *p = lop_calloc(1, size > 0 ? size : 1);
    if (!p)
        w->oom = 1;
    else
        w->blocks[w->nblocks++] = p;
    return p;
}

static char *wstrcat(writer *w, const char *a, const char *b)
{
    char *s = wmalloc(w, strlen(a) + strlen(b) + 1);
    if (s)
        sprintf(s, "%s%s", a, b);
    return s;
}

/* Append p to the array *items of *n entries.  The arrays only grow, so their
 * capacity is implied: 4, then doubled whenever *n reaches a power of two. */
static void push(writer *w, void ***items, size_t *n, void *p)
{
    if (!p)
        return;
    if (*n == 0 || (*n >= 4 && (*n & (*n - 1)) == 0)) {
        void **grown = wmalloc(w, (*n ? 2 * *n : 4) * sizeof *grown);
        if (!grown)
            return;
        if (*n)
            memcpy(grown, *items, *n * sizeof *grown);
        *items = grown;
    }
    (*items)[(*n)++] = p;
}

/* ---- building messages ---------------------------------------------------------- */

static Onnx__AttributeProto *attr_new(writer *w, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = wmalloc(w, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    return a;
}

static void attr_int(writer *w, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_new(w, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
    push(w, (void ***)&n->attribute, &n->n_attribute, a);
}

static void attr_float(writer *w, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = attr_new(w, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
    push(w, (void ***)&n->attribute, &n->n_attribute, a);
}

static void attr_ints(writer *w, Onnx__NodeProto *n, const char *name, const int64_t *v,
                      size_t count)
{
    Onnx__AttributeProto *a = attr_new(w, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = wmalloc(w, count * sizeof *copy);
    if (!a || !copy)
        return;
    memcpy(copy, v, count * sizeof *copy);
    a->ints = copy;
    a->n_ints = count;
    push(w, (void ***)&n->attribute, &n->n_attribute, a);
}

/* A node of type op named after engine node id, reading its inputs' values. */
static Onnx__NodeProto *node_new(writer *w, int id, const char *op)
{
    Onnx__NodeProto *n = wmalloc(w, sizeof *n);
    if (!n)
        return NULL;
    onnx__node_proto__init(n);
    n->name = (char *)lop_node_name(w->g, id);
    n->op_type = (char *)op;
    for (int k = 0; k < lop_node_ninputs(w->g, id); k++)
        push(w, (void ***)&n->input, &n->n_input,
             (void *)lop_node_name(w->g, lop_node_input(w->g, id, k)));
    push(w, (void ***)&n->output, &n->n_output, (void *)lop_node_name(w->g, id));
    push(w, (void ***)&w->graph.node, &w->graph.n_node, n);
    return n;
}

/* An initializer "<node>@<what>" holding t, added as n's input. */
static void init_floats(writer *w, Onnx__NodeProto *n, int id, const char *what,
                        const lop_tensor *t)
{
    Onnx__TensorProto *tp = wmalloc(w, sizeof *tp);
    int64_t *dims = wmalloc(w, (size_t)t->ndim * sizeof *dims);
    float *v = wmalloc(w, t->numel * sizeof *v);
    char *name = wstrcat(w, lop_node_name(w->g, id), what);
    if (!tp || !dims || !v || !name || !n)
        return;
    onnx__tensor_proto__init(tp);
    lop_floats_to_le((unsigned char *)v, t->data, t->numel);
    for (int i = 0; i < t->ndim; i++)
        dims[i] = t->shape[i];
    tp->name = name;
    tp->dims = dims;
    tp->n_dims = (size_t)t->ndim;
    tp->has_data_type = 1;
    tp->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tp->has_raw_data = 1;
    tp->raw_data.data = (uint8_t *)v;
    tp->raw_data.len = 4 * t->numel;
    push(w, (void ***)&w->graph.initializer, &w->graph.n_initializer, tp);
    push(w, (void ***)&n->input, &n->n_input, name);
}

/* A parameter of node id as an initializer input of n. */
static void init_param(writer *w, Onnx__NodeProto *n, int id, const char *param)
{
    int k = lop_node_find_param(w->g, id, param);
    char suffix[32];
    snprintf(suffix, sizeof suffix, "@%s", param);
    if (k >= 0)
        init_floats(w, n, id, suffix, lop_node_param(w->g, id, k));
}

/* An INT64 initializer "<node>@<what>" of n values as an input of node nd. */
static void init_int64s(writer *w, Onnx__NodeProto *nd, int id, const char *what,
                        const int64_t *v, int n, int rank)
{
    Onnx__TensorProto *tp = wmalloc(w, sizeof *tp);
    int64_t *data = wmalloc(w, (size_t)n * sizeof *data);
    int64_t *dims = wmalloc(w, sizeof *dims);
    char *name = wstrcat(w, lop_node_name(w->g, id), what);
    if (!tp || !data || !dims || !name || !nd)
        return;
    onnx__tensor_proto__init(tp);
    memcpy(data, v, (size_t)n * sizeof *data);
    dims[0] = n;
    tp->name = name;
    tp->dims = dims;
    tp->n_dims = (size_t)rank;
    tp->has_data_type = 1;
    tp->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    tp->int64_data = data;
    tp->n_int64_data = (size_t)n;
    push(w, (void ***)&w->graph.initializer, &w->graph.n_initializer, tp);
    push(w, (void ***)&nd->input, &nd->n_input, name);
}

/* Float tensor [N, shape] value info named name, the batch a symbolic "N". */
static Onnx__ValueInfoProto *value_info(writer *w, const char *name, int ndim,
                                        const int *shape)
{
    Onnx__ValueInfoProto *vi = wmalloc(w, sizeof *vi);
    Onnx__TypeProto *tp = wmalloc(w, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = wmalloc(w, sizeof *tt);
    Onnx__TensorShapeProto *sp = wmalloc(w, sizeof *sp);
    if (!vi || !tp || !tt || !sp)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    for (int i = -1; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = wmalloc(w, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (i < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = "N";
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = shape[i];
        }
        push(w, (void ***)&sp->dim, &sp->n_dim, d);
    }
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = (char *)name;
    vi->type = tp;
    return vi;
}

/* ---- nodes ---------------------------------------------------------------------- */

static void window_attrs(writer *w, Onnx__NodeProto *n, const lop_attrs *a)
{
    int64_t k[2] = {a->kernel_h, a->kernel_w};
    int64_t s[2] = {a->stride_h > 0 ? a->stride_h : a->kernel_h,
                    a->stride_w > 0 ? a->stride_w : a->kernel_w};
    int64_t p[4] = {a->pad_h, a->pad_w, a->pad_h, a->pad_w};
    attr_ints(w, n, "kernel_shape", k, 2);
    attr_ints(w, n, "strides", s, 2);
    attr_ints(w, n, "pads", p, 4);
}

static int write_node(writer *w, int id)
{
    const lop_attrs *a = lop_node_attrs(w->g, id);
    Onnx__NodeProto *n = NULL;
    switch (lop_node_kind(w->g, id)) {
    case LOP_INPUT:
        break;
    case LOP_CONV2D:
        if ((n = node_new(w, id, "Conv"))) {
            int64_t d[2] = {1, 1};
            window_attrs(w, n, a);
            attr_ints(w, n, "dilations", d, 2);
            attr_int(w, n, "group", a->groups);
        }
        init_param(w, n, id, "weight");
        init_param(w, n, id, "bias");
        break;
    case LOP_BATCHNORM:
        if ((n = node_new(w, id, "BatchNormalization"))) {
            attr_float(w, n, "epsilon", a->eps);
            attr_float(w, n, "momentum", 1.0f - a->momentum);
        }
        init_param(w, n, id, "weight");
        init_param(w, n, id, "bias");
        init_param(w, n, id, "running_mean");
        init_param(w, n, id, "running_var");
        break;
    case LOP_RELU:
        n = node_new(w, id, "Relu");
        break;
    case LOP_RELU6: {
        float lo = 0.0f, hi = 6.0f;
        lop_tensor min = {.ndim = 0, .shape = {1}, .numel = 1, .data = &lo};
        lop_tensor max = {.ndim = 0, .shape = {1}, .numel = 1, .data = &hi};
        n = node_new(w, id, "Clip");
        init_floats(w, n, id, "@min", &min);
        init_floats(w, n, id, "@max", &max);
        break;
    }
    case LOP_PAD: {
        int64_t pads[8] = {0, 0, a->pad_h, a->pad_w, 0, 0, a->pad_bottom, a->pad_right};
        n = node_new(w, id, "Pad");
        init_int64s(w, n, id, "@pads", pads, 8, 1);
        break;
    }
    case LOP_MAXPOOL:
    case LOP_AVGPOOL:
        n = node_new(w, id, lop_node_kind(w->g, id) == LOP_MAXPOOL ? "MaxPool" : "AveragePool");
        if (n) {
            window_attrs(w, n, a);
            attr_int(w, n, "ceil_mode", a->ceil_mode);
        }
        if (n && lop_node_kind(w->g, id) == LOP_AVGPOOL)
            attr_int(w, n, "count_include_pad", !a->exclude_pad);
        break;
    case LOP_GLOBAL_AVGPOOL:
        if ((n = node_new(w, id, "ReduceMean"))) {
            int64_t axes[2] = {2, 3};
            attr_ints(w, n, "axes", axes, 2);
            attr_int(w, n, "keepdims", 0);
        }
        break;
    case LOP_FLATTEN:
        if ((n = node_new(w, id, "Flatten")))
            attr_int(w, n, "axis", 1);
        break;
    case LOP_LINEAR:
        if ((n = node_new(w, id, "Gemm")))
            attr_int(w, n, "transB", 1);
        init_param(w, n, id, "weight");
        init_param(w, n, id, "bias");
        break;
    case LOP_ADD:
        n = node_new(w, id, "Add");
        break;
    case LOP_CONCAT:
        if ((n = node_new(w, id, "Concat")))
            attr_int(w, n, "axis", 1);
        break;
    case LOP_DROPOUT:
        n = node_new(w, id, "Dropout");
        {
            lop_tensor ratio = {.ndim = 0, .shape = {1}, .numel = 1, .data = (float *)&a->p};
            init_floats(w, n, id, "@ratio", &ratio);
        }
        break;
    case LOP_PICK: {
        const lop_tensor *idx = lop_node_param(w->g, id, 0);
        int64_t *v = wmalloc(w, idx->numel * sizeof *v);
        if ((n = node_new(w, id, "Gather")) && v) {
            attr_int(w, n, "axis", 1);
            for (size_t i = 0; i < idx->numel; i++)
                v[i] = (int64_t)idx->data[i];
            init_int64s(w, n, id, "@index", v, (int)idx->numel, 1);
        }
        break;
    }
    default:
        return lop_fail(LOP_EINVAL, "cannot write node '%s' (%s) to ONNX",
                        lop_node_name(w->g, id), lop_kind_name(lop_node_kind(w->g, id)));
    }
    return w->oom ? LOP_ENOMEM : LOP_OK;
}

/* ---- the model ------------------------------------------------------------------ */

typedef struct packed {
    const char *path;
    const uint8_t *buf;
    size_t len;
} packed;

static int write_all(int fd, void *ctx)
{
    const packed *p = ctx;
    size_t done = 0;
    while (done < p->len) {
        ssize_t r = write(fd, p->buf + done, p->len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return lop_fail(LOP_EIO, "cannot save %s: write failed: %s", p->path,
                            strerror(errno));
        done += (size_t)r;
    }
    return LOP_OK;
}

/* The graph: one input (node 0), every node, the last node's value as the output. */
static int build_graph(writer *w)
{
    const lop_graph *g = w->g;
    int n = lop_graph_size(g), shape[3];
    if (n < 2 || lop_node_kind(g, 0) != LOP_INPUT)
        return lop_fail(LOP_EINVAL, "cannot write ONNX: the net needs an input and a layer");
    for (int i = 1; i < n; i++)
        if (lop_node_kind(g, i) == LOP_INPUT)
            return lop_fail(LOP_EINVAL, "cannot write ONNX: more than one input ('%s')",
                            lop_node_name(g, i));
    onnx__graph_proto__init(&w->graph);
    w->graph.name = "lopper";
    int st = LOP_OK;
    for (int i = 0; i < n && st == LOP_OK; i++)
        st = write_node(w, i);
    if (st != LOP_OK)
        return st;
    int nd = lop_node_shape(g, 0, shape);
    push(w, (void ***)&w->graph.input, &w->graph.n_input,
         value_info(w, lop_node_name(g, 0), nd, shape));
    nd = lop_node_shape(g, n - 1, shape);
    push(w, (void ***)&w->graph.output, &w->graph.n_output,
         value_info(w, lop_node_name(g, n - 1), nd, shape));
    return w->oom ? LOP_ENOMEM : LOP_OK;
}

static int write_model(const lop_graph *g, const char *path)
{
    writer w = {.g = g};
    uint8_t *buf = NULL;
    Onnx__ModelProto m;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    onnx__model_proto__init(&m);
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = "";
    opset.has_version = 1;
    opset.version = OPSET;
    m.has_ir_version = 1;
    m.ir_version = IR_VERSION;
    m.producer_name = "lopper";
    m.opset_import = opsets;
    m.n_opset_import = 1;
    m.graph = &w.graph;
    int st = build_graph(&w);
    size_t len = st == LOP_OK ? onnx__model_proto__get_packed_size(&m) : 0;
    if (st == LOP_OK && len > MAX_BYTES)
        st = lop_fail(LOP_EINVAL, "cannot save %s: %zu bytes, more than ONNX's 2 GiB", path,
                      len);
    if (st == LOP_OK && !(buf = lop_malloc(len)))
        st = LOP_ENOMEM;
    if (st == LOP_OK) {
        packed p = {path, buf, onnx__model_proto__pack(&m, buf)};
        st = lop_file_replace(path, write_all, &p);
    }
    lop_free(buf);
    for (size_t i = 0; i < w.nblocks; i++)
        lop_free(w.blocks[i]);
    lop_free(w.blocks);
    return st;
}

int lop_graph_save_onnx(const lop_graph *g, const char *path, const lop_onnx_opts *o)
{
    if (!o || !o->fold_batchnorm)
        return write_model(g, path);
    lop_graph *folded = lop_graph_clone(g);   /* batchnorm folded: lop_graph_fold_batchnorm */
    int st = folded ? lop_graph_fold_batchnorm(folded, NULL) : LOP_ENOMEM;
    if (st == LOP_OK)
        st = write_model(folded, path);
    lop_graph_free(folded);
    return st;
}
