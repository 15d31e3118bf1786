/*
 * fuzz_onnx.c - libFuzzer target for the ONNX reader (engine/io/onnx_read.c and
 * onnx_ops.c): the bytes are an ONNX file.  Loading must fail with a message or
 * succeed; a model that loads is run once when small (fuzz_common.h) and must write
 * back to ONNX, and what the writer wrote must read back to a graph of the same size
 * and parameter count (batchnorm folded or not, as the input's last byte says).
 *
 * Random byte flips rarely get a protobuf past its length prefixes, so the mutator
 * below mostly works on the parsed model instead: it changes an attribute, a tensor's
 * dims, type or data length, rewires a node's inputs to other names (or to names
 * nothing defines), adds inputs, changes an operator, drops, swaps or duplicates
 * nodes, and touches the input's shape and the opset, then packs the model again.
 * Every change is logged and undone before protobuf-c frees the model, so the parsed
 * model's ownership is never disturbed.
 * Built by `make fuzz`, run briefly by `make test` (tests/fuzz/run_fuzz.sh); see
 * docs/tests.md.
 */
#include <stdint.h>

#include "fuzz_common.h"
#include "onnx.pb-c.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[320], out[320];
    fuzz_path(in, sizeof in, "in");
    fuzz_path(out, sizeof out, "out.onnx");
    fuzz_write_file(in, data, size);
    lop_graph *g = NULL;
    int st = lop_graph_load_onnx(in, &g);
    fuzz_check_failure(st, "lop_graph_load_onnx");
    if (st != LOP_OK)
        return 0;
    if (fuzz_small(g))
        fuzz_forward(g);
    lop_onnx_opts o = {.fold_batchnorm = size > 0 && (data[size - 1] & 1)};
    st = lop_graph_save_onnx(g, out, &o);
    fuzz_check_failure(st, "lop_graph_save_onnx");
    if (st != LOP_OK)
        fuzz_bug("a graph read from ONNX cannot be written to ONNX");
    lop_graph *back = NULL;
    if (lop_graph_load_onnx(out, &back) != LOP_OK)
        fuzz_bug("an ONNX file Lopper wrote does not read back");
    if (!o.fold_batchnorm && (lop_graph_size(back) != lop_graph_size(g) ||
                              lop_graph_params(back) != lop_graph_params(g)))
        fuzz_bug("an ONNX file Lopper wrote reads back as another graph");
    lop_graph_free(back);
    lop_graph_free(g);
    return 0;
}

/* ---- the structure-aware mutator ------------------------------------------------ */

#define MAX_UNDO 64

static struct {
    void *addr;
    unsigned char old[16];
    size_t n;
} undo[MAX_UNDO];
static int nundo;
static void *owned[MAX_UNDO];   /* arrays made here, freed after packing */
static int nowned;
static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* Remember what is at addr before it changes; 0 when the log is full. */
static int save(void *addr, size_t n)
{
    if (nundo == MAX_UNDO || n > sizeof undo[0].old)
        return 0;
    undo[nundo].addr = addr;
    undo[nundo].n = n;
    memcpy(undo[nundo].old, addr, n);
    nundo++;
    return 1;
}

/* lvalue = value, undone by undo_all; the place is evaluated once (it may hold a
 * random index). */
#define SET(lvalue, value)                                                              \
    do {                                                                                \
        __typeof__(&(lvalue)) at_ = &(lvalue);                                          \
        if (save(at_, sizeof *at_))                                                     \
            *at_ = (value);                                                             \
    } while (0)

static void undo_all(void)
{
    while (nundo > 0) {
        nundo--;
        memcpy(undo[nundo].addr, undo[nundo].old, undo[nundo].n);
    }
    while (nowned > 0)
        free(owned[--nowned]);
}

/* A copy of array (n pointers) with `more` slots more, kept until undo_all. */
static void **grow_by(void **array, size_t n, size_t more)
{
    if (nowned == MAX_UNDO)
        return NULL;
    void **a = malloc((n + more) * sizeof *a);
    if (!a)
        return NULL;
    if (n)
        memcpy(a, array, n * sizeof *a);
    owned[nowned++] = a;
    return a;
}

static void **grow(void **array, size_t n)
{
    return grow_by(array, n, 1);
}

static int64_t interesting_int(void)
{
    static const int64_t v[] = {0, 1, 2, 3, 4, 7, 8, -1, -2, -3, 13, 17, 18, 255, 256,
                                46341, 65535, 65536, 999999, 1000000, 1000001, 0x7fffffff,
                                0x80000000LL, -0x80000000LL, 0x100000000LL, 1LL << 40,
                                INT64_MAX, INT64_MIN};
    return rnd() & 1 ? v[below(sizeof v / sizeof v[0])] : (int64_t)below(40) - 8;
}

static float interesting_float(void)
{
    static const float v[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 2.0f, 1e-45f, 1e38f, 3e38f,
                              -3e38f};
    switch (below(4)) {
    case 0:
        return NAN;
    case 1:
        return INFINITY;
    default:
        return v[below(sizeof v / sizeof v[0])];
    }
}

static const char *const op_names[] = {
    "Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool",
    "ReduceMean", "Flatten", "Reshape", "Gemm", "MatMul", "Add", "Concat", "Gather",
    "Dropout", "Identity", "Constant", "Shape", "Unsqueeze", "Pad", "Sigmoid"};
static const char *const attr_names[] = {
    "kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "epsilon",
    "momentum", "training_mode", "spatial", "ceil_mode", "count_include_pad", "axes",
    "keepdims", "axis", "transA", "transB", "alpha", "beta", "ratio", "mode", "value",
    "storage_order", "allowzero"};

/* Some value name of the graph: an initializer, the input, a node's output, "", or
 * now and then one that nothing defines (an absent name is NULL, which a repeated
 * string cannot hold). */
static char *any_name(const Onnx__GraphProto *g)
{
    static char empty[] = "";
    static char fresh[64][4];
    if (below(8) == 0) {
        size_t k = below(64);
        snprintf(fresh[k], sizeof fresh[k], "u%zu", k);
        return fresh[k];
    }
    size_t total = g->n_initializer + g->n_input + g->n_node + 1, k = below(total);
    if (k < g->n_initializer)
        return g->initializer[k]->name ? g->initializer[k]->name : empty;
    k -= g->n_initializer;
    if (k < g->n_input)
        return g->input[k]->name ? g->input[k]->name : empty;
    k -= g->n_input;
    if (k < g->n_node && g->node[k]->n_output > 0)
        return g->node[k]->output[below(g->node[k]->n_output)];
    return empty;
}

static Onnx__TensorProto *any_tensor(const Onnx__GraphProto *g)
{
    size_t k = below(g->n_initializer + g->n_node);
    if (g->n_initializer + g->n_node == 0)
        return NULL;
    if (k < g->n_initializer)
        return g->initializer[k];
    const Onnx__NodeProto *nd = g->node[k - g->n_initializer];
    for (size_t i = 0; i < nd->n_attribute; i++)
        if (nd->attribute[i]->t)
            return nd->attribute[i]->t;
    return NULL;
}

static void mutate_tensor(Onnx__TensorProto *t)
{
    static const int32_t types[] = {0, 1, 2, 6, 7, 9, 10, 11, 13, 16, 99};
    switch (below(5)) {
    case 0:
        if (t->n_dims)
            SET(t->dims[below(t->n_dims)], interesting_int());
        break;
    case 1:
        if (t->n_dims)
            SET(t->n_dims, t->n_dims - 1);
        break;
    case 2: {
        int64_t *d = (int64_t *)grow((void **)t->dims, t->n_dims);   /* 8-byte slots */
        if (d) {
            d[t->n_dims] = interesting_int();
            SET(t->dims, d);
            SET(t->n_dims, t->n_dims + 1);
        }
        break;
    }
    case 3:
        SET(t->has_data_type, 1);
        SET(t->data_type, types[below(sizeof types / sizeof types[0])]);
        break;
    default:
        if (t->has_raw_data && t->raw_data.len)
            SET(t->raw_data.len, below(t->raw_data.len));
        else if (t->n_float_data)
            SET(t->n_float_data, below(t->n_float_data));
        break;
    }
}

static void mutate_attr(Onnx__AttributeProto *a)
{
    switch (below(4)) {
    case 0:
        SET(a->name, (char *)attr_names[below(sizeof attr_names / sizeof attr_names[0])]);
        break;
    case 1:
        if (a->n_ints)
            SET(a->n_ints, below(a->n_ints));
        break;
    default:
        if (a->n_ints)
            SET(a->ints[below(a->n_ints)], interesting_int());
        else if (a->has_i)
            SET(a->i, interesting_int());
        else if (a->has_f)
            SET(a->f, interesting_float());
        else if (a->t)
            mutate_tensor(a->t);
        break;
    }
}

static void mutate_node(Onnx__GraphProto *g, Onnx__NodeProto *nd)
{
    switch (below(8)) {
    case 0:
        SET(nd->op_type, (char *)op_names[below(sizeof op_names / sizeof op_names[0])]);
        break;
    case 1:
        if (nd->n_input)
            SET(nd->input[below(nd->n_input)], any_name(g));
        break;
    case 2:
        if (nd->n_input)
            SET(nd->n_input, nd->n_input - 1);
        break;
    case 3: {   /* one more input, or now and then dozens */
        size_t more = below(4) ? 1 : 1 + below(48);
        char **in = (char **)grow_by((void **)nd->input, nd->n_input, more);
        if (in) {
            for (size_t i = 0; i < more; i++)
                in[nd->n_input + i] = any_name(g);
            SET(nd->input, in);
            SET(nd->n_input, nd->n_input + more);
        }
        break;
    }
    case 4:
        if (nd->n_output)
            SET(nd->output[below(nd->n_output)], any_name(g));
        break;
    case 5:
        if (nd->n_attribute) {
            size_t k = below(nd->n_attribute), last = nd->n_attribute - 1;
            Onnx__AttributeProto *a = nd->attribute[k];
            SET(nd->attribute[k], nd->attribute[last]);
            SET(nd->attribute[last], a);
            SET(nd->n_attribute, last);
        }
        break;
    case 6:
        SET(nd->domain, rnd() & 1 ? (char *)"com.example" : (char *)"ai.onnx");
        break;
    default:
        if (nd->n_attribute)
            mutate_attr(nd->attribute[below(nd->n_attribute)]);
        break;
    }
}

static void mutate_graph(Onnx__ModelProto *m)
{
    Onnx__GraphProto *g = m->graph;
    size_t n = g->n_node;
    switch (below(10)) {
    case 0:
    case 1:
    case 2:
        if (n)
            mutate_node(g, g->node[below(n)]);
        break;
    case 3: {
        Onnx__TensorProto *t = any_tensor(g);
        if (t)
            mutate_tensor(t);
        break;
    }
    case 4:
        if (n >= 2) {
            size_t i = below(n), j = below(n);
            Onnx__NodeProto *a = g->node[i];
            SET(g->node[i], g->node[j]);
            SET(g->node[j], a);
        }
        break;
    case 5:
        if (n) {
            size_t k = below(n);
            Onnx__NodeProto *a = g->node[k];
            SET(g->node[k], g->node[n - 1]);
            SET(g->node[n - 1], a);
            SET(g->n_node, n - 1);
        }
        break;
    case 6: {
        Onnx__NodeProto **nodes = (Onnx__NodeProto **)grow((void **)g->node, n);
        if (nodes && n) {
            size_t at = below(n + 1);
            memmove(nodes + at + 1, nodes + at, (n - at) * sizeof *nodes);
            nodes[at] = g->node[below(n)];
            SET(g->node, nodes);
            SET(g->n_node, n + 1);
        }
        break;
    }
    case 7:
        if (g->n_output)
            SET(g->output[0]->name, any_name(g));
        break;
    case 8: {
        Onnx__ValueInfoProto *in = g->n_input ? g->input[below(g->n_input)] : NULL;
        Onnx__TypeProto *tp = in ? in->type : NULL;
        Onnx__TensorShapeProto *sh =
            tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type
                ? tp->tensor_type->shape
                : NULL;
        if (!sh || !sh->n_dim)
            break;
        Onnx__TensorShapeProto__Dimension *d = sh->dim[below(sh->n_dim)];
        if (rnd() % 4 == 0) {
            SET(sh->n_dim, below(sh->n_dim));
        } else if (rnd() % 4 == 0) {
            SET(d->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM);
            SET(d->dim_param, (char *)"N");
        } else {
            SET(d->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE);
            SET(d->dim_value, interesting_int());
        }
        break;
    }
    default:
        if (m->n_opset_import)
            SET(m->opset_import[0]->version, (int64_t)below(20));
        break;
    }
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    rng_state = seed * 0x9e3779b97f4a7c15u + 1;
    Onnx__ModelProto *m =
        rnd() % 4 ? onnx__model_proto__unpack(NULL, size, data) : NULL;   /* 1/4 bytes */
    if (!m || !m->graph) {
        if (m)
            onnx__model_proto__free_unpacked(m, NULL);
        return LLVMFuzzerMutate(data, size, max_size);
    }
    for (int k = 1 + (int)below(3); k > 0; k--)
        mutate_graph(m);
    size_t len = onnx__model_proto__get_packed_size(m);
    if (len <= max_size)
        onnx__model_proto__pack(m, data);
    undo_all();
    onnx__model_proto__free_unpacked(m, NULL);
    return len <= max_size ? len : LLVMFuzzerMutate(data, size, max_size);
}
