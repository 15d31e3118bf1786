/*
 * onnx_read.c - ONNX models in: a ModelProto parsed by protobuf-c (code generated at
 * build time from Debian's onnx.proto) becomes a Lopper graph, node by node, for the
 * operators the engine has layers for (docs/onnx.md lists them; onnx_ops.c reads
 * each).  This file holds the model level: the file, the table of what each value
 * name stands for (an engine node's output or a constant), the initializers and
 * Constant nodes, the one input, the engine's node names, and the walk over the
 * nodes.  An ONNX file is untrusted input: its size, node count and every dimension
 * are bounded, every name, index and tensor length is checked, and anything outside
 * the supported set is one error naming the operator, the node and what is
 * supported.  The graph is built aside and handed out only when complete, so nothing
 * is ever half loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_read.h"

#define MAX_FILE_BYTES 0x7fffffffL   /* protobuf's own limit: 2 GiB */

/* ---- errors --------------------------------------------------------------------- */

static int fail(const ctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A LOP_EFORMAT message after the file's name; names from the file may hold any
 * bytes, so what is not printable ASCII shows as '?'. */
static int fail(const ctx *c, const char *fmt, ...)
{
    char msg[440];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    return lop_fail(LOP_EFORMAT, "%s: %s", c->path, msg);
}

/* The same naming the node (its name, else its first output) and its operator. */
int lop_onnx_fail(const ctx *c, node_t *nd, const char *fmt, ...)
                  {
                  char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = nd->name && nd->name[0] ? nd->name
                       : nd->n_output > 0       ? nd->output[0]
                                                : "";
    return fail(c, "node '%.80s' (%.40s): %s", name, nd->op_type ? nd->op_type : "?", msg);
}

/* ---- the value table ------------------------------------------------------------ */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603u;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* The entry for name: found, or a fresh one (kind V_UNSET) when create is set. */
value *lop_onnx_value(ctx *c, const char *name, int create)
{
    for (size_t i = hash(name) & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        value *v = &c->vals[i];
        if (!v->name) {
            if (!create)
                return NULL;
            v->name = name;
            v->node = -1;
            return v;
        }
        if (strcmp(v->name, name) == 0)
            return v;
    }
}

/* The slot of an engine node name: where it is, or the free slot it would take. */
static const char **name_slot(const ctx *c, const char *name)
{
    size_t i = hash(name) & (c->cap - 1);
    while (c->names[i] && strcmp(c->names[i], name) != 0)
        i = (i + 1) & (c->cap - 1);
    return &c->names[i];
}

/* The defined value an input names ("" is an absent optional input: NULL). */
value *lop_onnx_input(ctx *c, node_t *nd, size_t k)
{
    if (k >= nd->n_input || !nd->input[k][0])
        return NULL;
    value *v = lop_onnx_value(c, nd->input[k], 0);
    return v && v->kind != V_UNSET ? v : NULL;
}

/* ---- constants ------------------------------------------------------------------ */

static const char *type_name(int type)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16",
                                        "INT16", "INT32", "INT64", "STRING", "BOOL",
                                        "FLOAT16", "DOUBLE", "UINT32", "UINT64"};
    return type >= 0 && type < (int)(sizeof names / sizeof names[0]) ? names[type] : "?";
}

/* Check a file tensor's shape, type and data length, and describe it in v. */
static int const_from_tensor(const ctx *c, node_t *nd, const Onnx__TensorProto *t, value *v)
{
    const char *name = t->name ? t->name : "";
    if (t->n_dims > LOP_MAX_DIMS)
        return fail(c, "tensor '%.80s' has rank %zu, at most %d is "
                    "supported", name, t->n_dims, LOP_MAX_DIMS);
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return fail(c, "tensor '%.80s' keeps its data in an external "
                    "file, which is not supported", name);
    size_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > MAX_DIM || (double)n * t->dims[i] > MAX_VALUES)
            return fail(c, "tensor '%.80s': dimension %zu is %lld (or the "
                        "tensor is too large)", name, i, (long long)t->dims[i]);
        n *= (size_t)t->dims[i];
        v->dims[i] = t->dims[i];
    }
    v->ndim = (int)t->n_dims;
    v->n = n;
    v->type = t->has_data_type ? t->data_type : 0;
    v->t = t;
    v->kind = V_CONST;
    size_t have, size;
    if (v->type == T_FLOAT) {
        have = t->has_raw_data ? t->raw_data.len : t->n_float_data * 4;
        size = 4;
    } else if (v->type == T_INT64) {
        have = t->has_raw_data ? t->raw_data.len : t->n_int64_data * 8;
        size = 8;
    } else if (v->type == T_BOOL || v->type == T_INT32) {
        have = t->has_raw_data ? t->raw_data.len * (v->type == T_BOOL ? 4 : 1)
                               : t->n_int32_data * 4;
        size = 4;
    } else {
        return LOP_OK;   /* refused where it is used: only there is it an error */
    }
    if (have != n * size) {
        const char *what = nd ? "Constant" : "initializer";
        return fail(c, "%s '%.80s' holds %zu bytes of %s data for %zu "
                    "values", what, name, have, type_name(v->type), n);
    }
    return LOP_OK;
}

/* Value i of an integer constant (INT64, INT32 or BOOL, checked by the caller). */
int64_t lop_onnx_int(const value *v, size_t i)
{
    if (v->ints)
        return v->ints[i];
    const Onnx__TensorProto *t = v->t;
    if (v->type == T_INT64 && t->has_raw_data) {
        uint64_t u = 0;
        for (int b = 7; b >= 0; b--)
            u = u << 8 | t->raw_data.data[8 * i + (size_t)b];
        return (int64_t)u;
    }
    if (v->type == T_INT64)
        return t->int64_data[i];
    if (v->type == T_BOOL && t->has_raw_data)
        return t->raw_data.data[i];
    if (t->has_raw_data) {
        uint32_t u = 0;
        for (int b = 3; b >= 0; b--)
            u = u << 8 | t->raw_data.data[4 * i + (size_t)b];
        return (int32_t)u;
    }
    return t->int32_data[i];
}

/* The constant input k of nd, of the wanted type class (T_FLOAT, or T_INT64 for any
 * integer); NULL after an error naming it when it is missing or of another type. */
value *lop_onnx_const(ctx *c, node_t *nd, size_t k, int type, const char *role)
{
    value *v = lop_onnx_input(c, nd, k);
    if (!v || v->kind != V_CONST) {
        lop_onnx_fail(c, nd, "the %s (input %zu) must be a constant tensor", role, k + 1);
        return NULL;
    }
    int ok = type == T_FLOAT ? v->type == T_FLOAT
                             : v->type == T_INT64 || v->type == T_INT32 || v->type == T_BOOL;
    if (!ok) {
        lop_onnx_fail(c, nd, "the %s '%.80s' is a %s tensor; only %s is supported here", role,
                      v->name, type_name(v->type), type == T_FLOAT ? "FLOAT" : "INT64");
        return NULL;
    }
    return v;
}

/* dst[i] = scale * value i of a FLOAT constant, for n values. */
void lop_onnx_floats(const value *v, float scale, float *dst)
{
    const Onnx__TensorProto *t = v->t;
    if (t->has_raw_data)
        lop_floats_from_le(dst, t->raw_data.data, v->n);
    else
        memcpy(dst, t->float_data, v->n * sizeof(float));
    if (scale != 1.0f)
        for (size_t i = 0; i < v->n; i++)
            dst[i] *= scale;
}

/* A folded INT64 constant of n values into v (which owns them). */
int lop_onnx_ints_new(value *v, int ndim, size_t n)
{
    v->ints = lop_malloc((n > 0 ? n : 1) * sizeof *v->ints);
    if (!v->ints)
        return LOP_ENOMEM;
    v->kind = V_CONST;
    v->type = T_INT64;
    v->t = NULL;
    v->ndim = ndim;
    v->dims[0] = (int64_t)n;
    v->n = n;
    return LOP_OK;
}

/* ---- engine node names ---------------------------------------------------------- */

static int name_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-' || ch == '/' || ch == ':';
}

/* The engine name of nd: its ONNX name (else its first output, else its operator)
 * with other characters made '_', cut to its last characters if too long, and made
 * unique with a _2, _3, ... suffix. */
void lop_onnx_name(const ctx *c, const char *want, char *out)
{
    char base[LOP_NAME_MAX - 8];
    size_t len = strlen(want), cut = len > sizeof base - 1 ? len - (sizeof base - 1) : 0;
    size_t n = 0;
    for (const char *s = want + cut; *s; s++)
        base[n++] = name_ok(*s) ? *s : '_';
    if (n == 0)
        base[n++] = '_';
    base[n] = '\0';
    snprintf(out, LOP_NAME_MAX, "%s", base);
    for (int k = 2; *name_slot(c, out); k++)
        snprintf(out, LOP_NAME_MAX, "%s_%d", base, k);
}

/* Add a node under a name from engine_name, and remember the name. */
int lop_onnx_graph_add(ctx *c, lop_kind kind, const char *name, const int *ins, int nin,
                       const lop_attrs *a, int *id)
{
    int st = lop_graph_add(c->g, kind, name, ins, nin, a, id);
    if (st == LOP_OK)
        *name_slot(c, name) = lop_node_name(c->g, *id);
    return st;
}

/* ---- the model ------------------------------------------------------------------ */

/* protobuf-c allocates through the engine (so tests can make it fail); data points
 * to a flag set by a failure, which tells a parse that ran out of memory from a
 * corrupt file. */
static void *pb_alloc(void *data, size_t size)
{
    void *p = lop_malloc(size);
    if (!p)
        *(int *)data = 1;
    return p;
}

static void pb_free(void *data, void *p)
{
    lop_free(p);
}

/* The whole file, parsed. */
static int parse_file(ctx *c)
{
    unsigned char *buf = NULL;
    int fd = open(c->path, O_RDONLY | O_CLOEXEC), st = LOP_OK;
    struct stat sb;
    if (fd < 0)
        return lop_fail(LOP_EIO, "cannot open %s: %s", c->path, strerror(errno));
    if (fstat(fd, &sb) != 0)
        st = lop_fail(LOP_EIO, "cannot read %s: %s", c->path, strerror(errno));
    else if (sb.st_size > MAX_FILE_BYTES)
        st = fail(c, "%lld bytes, an ONNX model holds at most 2 GiB",
                  (long long)sb.st_size);
    else if (!(buf = lop_malloc(sb.st_size > 0 ? (size_t)sb.st_size : 1)))
        st = LOP_ENOMEM;
    size_t got = 0;
    while (st == LOP_OK && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            st = lop_fail(LOP_EIO, "cannot read %s: %s", c->path,
                          r < 0 ? strerror(errno) : "it shrank while being read");
        else
            got += (size_t)r;
    }
    close(fd);
    if (st == LOP_OK) {
        int oom = 0;
        ProtobufCAllocator pb = {pb_alloc, pb_free, &oom};
        c->model = onnx__model_proto__unpack(&pb, got, buf);
        if (!c->model)
            st = oom ? LOP_ENOMEM
                     : fail(c, "neither a Lopper model (.lop) nor a readable ONNX model "
                            "(the protobuf data is truncated or corrupt)");
    }
    lop_free(buf);
    return st;
}

/* Opset of the default domain (7..17 read), and a graph to read. */
static int check_model(ctx *c)
{
    const Onnx__ModelProto *m = c->model;
    c->opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const char *d = m->opset_import[i]->domain;
        if ((!d || !d[0] || strcmp(d, "ai.onnx") == 0) && m->opset_import[i]->has_version)
            c->opset = (int)m->opset_import[i]->version;
    }
    if (!m->graph)
        return fail(c, "the ONNX model has no graph");
    if (c->opset < 7 || c->opset > 17)
        return fail(c, "ONNX opset %d; opsets 7 to 17 are supported",
                    c->opset);
    c->gp = m->graph;
    if (c->gp->n_node > MAX_NODES)
        return fail(c, "%zu nodes, at most %d are supported", 
                    c->gp->n_node, MAX_NODES);
    if (c->gp->n_output != 1)
        return fail(c, "the graph has %zu outputs; exactly one is "
                    "supported", c->gp->n_output);
    return LOP_OK;
}

/* Every name into the table: initializers, inputs, node outputs; uses counted. */
static int index_names(ctx *c)
{
    const Onnx__GraphProto *gp = c->gp;
    size_t names = gp->n_initializer + gp->n_input + 1;
    for (size_t i = 0; i < gp->n_node; i++) {
        if (!gp->node[i]->op_type || gp->node[i]->n_output < 1 || !gp->node[i]->output[0][0])
            return fail(c, "node %zu has no operator or no output", 
                        i);
        /* node inputs too: an undefined one gets an entry (a full table never ends a
         * probe) */
        names += gp->node[i]->n_output + gp->node[i]->n_input;
    }
    for (c->cap = 16; c->cap < 2 * names; c->cap *= 2)
        ;
    c->vals = lop_calloc(c->cap, sizeof *c->vals);
    c->names = lop_calloc(c->cap, sizeof *c->names);
    c->skip = lop_calloc(gp->n_node + 1, 1);
    if (!c->vals || !c->names || !c->skip)
        return LOP_ENOMEM;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const char *name = gp->initializer[i]->name;
        if (!name || !name[0] || lop_onnx_value(c, name, 1)->t)
            return fail(c, "initializer %zu has no name or a repeated one",
                        i);
        int st = const_from_tensor(c, NULL, gp->initializer[i], lop_onnx_value(c, name, 0));
        if (st != LOP_OK)
            return st;
    }
    for (size_t i = 0; i < gp->n_node; i++)
        for (size_t k = 0; k < gp->node[i]->n_output; k++) {
            const char *name = gp->node[i]->output[k];
            if (!name[0])
                continue;
            value *v = lop_onnx_value(c, name, 1);
            if (v->kind != V_UNSET || v->produced)
                return lop_onnx_fail(c, gp->node[i], "output '%.80s' is produced twice", name);
            v->produced = 1;
            v->user = -1;
        }
    for (size_t i = 0; i < gp->n_node; i++)
        for (size_t k = 0; k < gp->node[i]->n_input; k++) {
            const char *name = gp->node[i]->input[k];
            if (!name[0])
                continue;
            value *v = lop_onnx_value(c, name, 1);
            v->uses++;
            v->user = (int)i;
        }
    value *out = lop_onnx_value(c, gp->output[0]->name ? gp->output[0]->name : "", 1);
    out->uses++;
    out->user = -1;
    return LOP_OK;
}

/* The one graph input that is not an initializer, as the engine's input node. */
static int add_input(ctx *c)
{
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < c->gp->n_input; i++) {
        const char *name = c->gp->input[i]->name ? c->gp->input[i]->name : "";
        const value *v = lop_onnx_value(c, name, 0);
        if (v && v->kind == V_CONST && !v->produced)
            continue;   /* older exporters list the initializers as inputs too */
        if (v && v->produced)
            return fail(c, "input '%.80s' is also a node's output", name);
        if (in)
            return fail(c, "the graph has more than one input; one is "
                        "supported");
        in = c->gp->input[i];
    }
    if (!in || !in->name || !in->name[0])
        return fail(c, "the graph has no input");
    const Onnx__TypeProto *tp = in->type;
    const Onnx__TensorShapeProto *sh = tp && tp->tensor_type ? tp->tensor_type->shape : NULL;
    if (!tp || !tp->tensor_type || tp->tensor_type->elem_type != T_FLOAT || !sh ||
        (sh->n_dim != 4 && sh->n_dim != 2))
        return fail(c, "input '%.80s' must be a FLOAT tensor [N, C, H, W] "
                    "or [N, F]", in->name);
    int dims[3] = {0, 0, 0};
    for (size_t i = 1; i < sh->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
        if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
            d->dim_value < 1 || d->dim_value > MAX_DIM)
            return fail(c, "input '%.80s': dimension %zu is not a fixed "
                        "size (only the batch may vary)", in->name, i);
        dims[i - 1] = (int)d->dim_value;
    }
    const Onnx__TensorShapeProto__Dimension *d0 = sh->dim[0];
    c->batch = d0->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                   ? d0->dim_value
                   : BATCH;
    lop_attrs a = sh->n_dim == 4 ? lop_attrs_input(dims[0], dims[1], dims[2])
                                 : lop_attrs_input(dims[0], 0, 0);
    char name[LOP_NAME_MAX];
    int id;
    lop_onnx_name(c, in->name, name);
    int st = lop_onnx_graph_add(c, LOP_INPUT, name, NULL, 0, &a, &id);
    if (st != LOP_OK)
        return st;
    value *v = lop_onnx_value(c, in->name, 1);
    v->kind = V_ACT;
    v->node = id;
    return LOP_OK;
}

/* Constant nodes first: a MatMul looks ahead at the constant its Add takes. */
static int add_constants(ctx *c)
{
    for (size_t i = 0; i < c->gp->n_node; i++) {
        node_t *nd = c->gp->node[i];
        if (strcmp(nd->op_type, "Constant") != 0)
            continue;
        const Onnx__AttributeProto *a = nd->n_attribute == 1 ? nd->attribute[0] : NULL;
        if (!a || !a->name || strcmp(a->name, "value") != 0 || !a->t)
            return lop_onnx_fail(c, nd, "only a 'value' tensor attribute is supported");
        int st = const_from_tensor(c, nd, a->t, lop_onnx_value(c, nd->output[0], 0));
        if (st != LOP_OK)
            return st;
    }
    return LOP_OK;
}

static int add_nodes(ctx *c)
{
    for (size_t i = 0; i < c->gp->n_node; i++) {
        node_t *nd = c->gp->node[i];
        if (c->skip[i] || strcmp(nd->op_type, "Constant") == 0)
            continue;
        if (nd->domain && nd->domain[0] && strcmp(nd->domain, "ai.onnx") != 0)
            return lop_onnx_fail(c, nd, "operators of domain '%.40s' are not supported",
                                 nd->domain);
        for (size_t k = 0; k < nd->n_input; k++)
            if (nd->input[k][0] && !lop_onnx_input(c, nd, k))
                return lop_onnx_fail(c, nd, "input '%.80s' is not defined before it (the nodes "
                                     "must be in topological order)", nd->input[k]);
        lop_onnx_op_fn op = lop_onnx_op_find(nd->op_type);
        if (!op)
            return lop_onnx_fail(c, nd, "operator %.40s is not supported (supported: " SUPPORTED
                                 ")", nd->op_type);
        if (nd->n_input < 1)
            return lop_onnx_fail(c, nd, "needs an input");
        int st = op(c, nd);
        if (st != LOP_OK)
            return st;
    }
    value *out = lop_onnx_value(c, c->gp->output[0]->name ? c->gp->output[0]->name : "", 0);
    int st = out && out->kind == V_ACT ? lop_onnx_take_pad(c, out) : LOP_OK;
    if (st != LOP_OK)
        return st;
    if (!out || out->kind != V_ACT || out->node != lop_graph_size(c->g) - 1)
        return fail(c, "the graph output must be computed by the last "
                    "layer (unused branches are not supported)");
    if (lop_graph_size(c->g) < 2)
        return fail(c, "the graph has no layer (its output is its input)");
    return LOP_OK;
}

int lop_graph_load_onnx(const char *path, lop_graph **out)
{
    ctx c = {.path = path, .batch = BATCH};
    int st = parse_file(&c);
    if (st == LOP_OK)
        st = check_model(&c);
    if (st == LOP_OK)
        st = index_names(&c);
    if (st == LOP_OK && !(c.g = lop_graph_new(0)))
        st = LOP_ENOMEM;
    if (st == LOP_OK)
        st = add_constants(&c);
    if (st == LOP_OK)
        st = add_input(&c);
    if (st == LOP_OK)
        st = add_nodes(&c);
    for (size_t i = 0; c.vals && i < c.cap; i++)
        lop_free(c.vals[i].ints);
    lop_free(c.vals);
    lop_free(c.names);
    lop_free(c.skip);
    if (c.model) {
        ProtobufCAllocator pb = {pb_alloc, pb_free, NULL};   /* freeing allocates nothing */
        onnx__model_proto__free_unpacked(c.model, &pb);
    }
    if (st != LOP_OK) {
        lop_graph_free(c.g);
        return st;
    }
    *out = c.g;
    return LOP_OK;
}
