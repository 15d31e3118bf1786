/*
 * test_fuzz_cases.c - what the fuzz harnesses (tests/fuzz/, docs/tests.md) found wrong
 * in the model readers, kept as small generated cases rather than binary files: each
 * must now be refused with its one message, before any large allocation (the peak
 * memory is watched), and without leaks (make test SANITIZE=1).  The ONNX models are
 * built through the structures protobuf-c generates from onnx.proto, so each case
 * reads as what it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "lopper.h"
#include "onnx.pb-c.h"

static char dir[64];     /* scratch directory for this run */
static char path[128];   /* dir/model.onnx */

/* ---- a small ONNX model builder ------------------------------------------------- */

#define MAX_ITEMS 12

/* One FLOAT input of the given shape (batch first), nodes without attributes, FLOAT
 * initializers holding zeros, one output; opset 13. */
typedef struct model {
    Onnx__ModelProto m;
    Onnx__OperatorSetIdProto opset, *opsets[1];
    Onnx__GraphProto g;
    Onnx__ValueInfoProto in, out, *ins[1], *outs[1];
    Onnx__TypeProto type;
    Onnx__TypeProto__Tensor tensor;
    Onnx__TensorShapeProto shape;
    Onnx__TensorShapeProto__Dimension dim[4], *dims[4];
    Onnx__NodeProto node[MAX_ITEMS], *nodes[MAX_ITEMS];
    char *node_in[MAX_ITEMS][48], *node_out[MAX_ITEMS][1];
    Onnx__TensorProto init[MAX_ITEMS], *inits[MAX_ITEMS];
    int64_t init_dims[MAX_ITEMS][4];
} model;

static void model_init(model *md, int ndim, const int64_t *shape, const char *output)
{
    memset(md, 0, sizeof *md);
    onnx__model_proto__init(&md->m);
    onnx__operator_set_id_proto__init(&md->opset);
    md->opset.domain = "";
    md->opset.has_version = 1;
    md->opset.version = 13;
    md->opsets[0] = &md->opset;
    md->m.has_ir_version = 1;
    md->m.ir_version = 7;
    md->m.opset_import = md->opsets;
    md->m.n_opset_import = 1;
    md->m.graph = &md->g;
    onnx__graph_proto__init(&md->g);
    md->g.name = "case";
    onnx__tensor_shape_proto__init(&md->shape);
    for (int i = 0; i < ndim; i++) {
        onnx__tensor_shape_proto__dimension__init(&md->dim[i]);
        md->dim[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        md->dim[i].dim_value = shape[i];
        md->dims[i] = &md->dim[i];
    }
    md->shape.dim = md->dims;
    md->shape.n_dim = (size_t)ndim;
    onnx__type_proto__tensor__init(&md->tensor);
    md->tensor.has_elem_type = 1;
    md->tensor.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    md->tensor.shape = &md->shape;
    onnx__type_proto__init(&md->type);
    md->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    md->type.tensor_type = &md->tensor;
    onnx__value_info_proto__init(&md->in);
    md->in.name = "input";
    md->in.type = &md->type;
    md->ins[0] = &md->in;
    md->g.input = md->ins;
    md->g.n_input = 1;
    onnx__value_info_proto__init(&md->out);
    md->out.name = (char *)output;
    md->outs[0] = &md->out;
    md->g.output = md->outs;
    md->g.n_output = 1;
    md->g.node = md->nodes;
    md->g.initializer = md->inits;
}

static void model_node(model *md, const char *op, const char *const *inputs, int nin,
                       const char *output)
{
    size_t k = md->g.n_node++;
    assert_true(k < MAX_ITEMS && nin <= 48);
    Onnx__NodeProto *nd = &md->node[k];
    onnx__node_proto__init(nd);
    nd->op_type = (char *)op;
    nd->name = (char *)output;
    for (int i = 0; i < nin; i++)
        md->node_in[k][i] = (char *)inputs[i];
    nd->input = md->node_in[k];
    nd->n_input = (size_t)nin;
    md->node_out[k][0] = (char *)output;
    nd->output = md->node_out[k];
    nd->n_output = 1;
    md->nodes[k] = nd;
}

/* A FLOAT initializer of zeros (float_data, freed by model_save). */
static void model_init_zeros(model *md, const char *name, int ndim, const int64_t *dims)
{
    size_t k = md->g.n_initializer++, n = 1;
    assert_true(k < MAX_ITEMS);
    Onnx__TensorProto *t = &md->init[k];
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    for (int i = 0; i < ndim; i++) {
        md->init_dims[k][i] = dims[i];
        n *= (size_t)dims[i];
    }
    t->dims = md->init_dims[k];
    t->n_dims = (size_t)ndim;
    t->float_data = calloc(n ? n : 1, sizeof(float));
    assert_non_null(t->float_data);
    t->n_float_data = n;
    md->inits[k] = t;
}

/* An INT64 initializer of n values. */
static void model_init_ints(model *md, const char *name, int ndim, size_t n,
                            const int64_t *values)
{
    size_t k = md->g.n_initializer++;
    assert_true(k < MAX_ITEMS);
    Onnx__TensorProto *t = &md->init[k];
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    md->init_dims[k][0] = (int64_t)n;
    t->dims = md->init_dims[k];
    t->n_dims = (size_t)ndim;
    t->int64_data = (int64_t *)values;
    t->n_int64_data = n;
    md->inits[k] = t;
}

/* Pack to path; frees the initializers' data. */
static void model_save(model *md)
{
    size_t len = onnx__model_proto__get_packed_size(&md->m);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(onnx__model_proto__pack(&md->m, buf), len);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(buf);
    for (size_t k = 0; k < md->g.n_initializer; k++)
        free(md->init[k].float_data);   /* NULL for INT64 ones */
}

static long peak_rss_kb(void)
{
    struct rusage u;
    assert_int_equal(getrusage(RUSAGE_SELF, &u), 0);
    return u.ru_maxrss;
}

/* The file at path is refused as malformed with a message holding want, without
 * the process's peak memory growing by 64 MB on the way (the cases run smallest
 * first, so a peak reached earlier cannot hide one). */
static void assert_refused(const char *want)
{
    lop_graph *g = NULL;
    long before = peak_rss_kb();
    int st = lop_graph_load(path, &g);
    long grown = peak_rss_kb() - before;
    if (st == LOP_OK)
        fail_msg("expected a refusal saying '%s', but the file loaded", want);
    if (!strstr(lop_errmsg(), want))
        fail_msg("expected a refusal saying '%s', got %s: %s", want, lop_status_name(st),
                 lop_errmsg());
    assert_int_equal(st, LOP_EFORMAT);
    assert_null(g);
    if (grown > 64 * 1024)
        fail_msg("refusing it took %ld MB more memory", grown / 1024);
}

/* ---- ONNX ----------------------------------------------------------------------- */

/* No node at all, the output named after the input: it loaded as a graph of one
 * input node, which neither runs nor writes back to ONNX. */
static void test_onnx_graph_without_a_layer(void **state)
{
    model md;
    model_init(&md, 4, (const int64_t[]){1, 3, 4, 4}, "input");
    model_save(&md);
    assert_refused("the graph has no layer (its output is its input)");
}

/* A Conv whose weight is for 3 input channels, on an input declared with a million:
 * the layer allocated (and initialised) a 36-million-value weight from the input's
 * channel count before the file's 108 values were found not to fit - 5 s and 144 MB
 * for a 2.6 kB file. */
static void test_onnx_conv_weight_checked_before_allocating(void **state)
{
    model md;
    model_init(&md, 4, (const int64_t[]){1, 1000000, 8, 8}, "conv");
    model_init_zeros(&md, "w", 4, (const int64_t[]){4, 3, 3, 3});
    model_node(&md, "Conv", (const char *const[]){"input", "w"}, 2, "conv");
    model_save(&md);
    assert_refused("weight 'w' takes 3 input channels (3 per group, 1 groups); the input "
                   "has 1000000");
}

/* The same for BatchNormalization, whose four tensors are one value per channel. */
static void test_onnx_batchnorm_checked_before_allocating(void **state)
{
    static const char *const ins[] = {"input", "scale", "bias", "mean", "var"};
    model md;
    model_init(&md, 2, (const int64_t[]){1, 1000000}, "bn");
    for (int k = 1; k < 5; k++)
        model_init_zeros(&md, ins[k], 1, (const int64_t[]){4});
    model_node(&md, "BatchNormalization", ins, 5, "bn");
    model_save(&md);
    assert_refused("the scale 'scale' has 4 values for 1000000 channels");
}

/* Concat(c, c) of a constant shape, nine times over: each folded result was
 * allocated in full, doubling at every node - a 1.2 kB file of 26 such nodes took
 * 1 GB, 30 would take 16.  Folded shapes now hold at most 64 values. */
static void test_onnx_folded_shapes_are_bounded(void **state)
{
    static const char *const names[] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7",
                                        "c8", "c9"};
    static const int64_t one[] = {1};
    model md;
    model_init(&md, 2, (const int64_t[]){1, 3}, "out");
    model_init_ints(&md, "c0", 1, 1, one);
    for (int i = 1; i <= 9; i++)
        model_node(&md, "Concat", (const char *const[]){names[i - 1], names[i - 1]}, 2,
                   names[i]);
    model_node(&md, "Relu", (const char *const[]){"input"}, 1, "out");
    model_save(&md);
    assert_refused("node 'c7' (Concat): a constant shape of 128 values; at most 64 are "
                   "supported");
}

/* Gather from a constant shape copies as many values as it has indices (and each
 * Identity after it copies them again). */
static void test_onnx_gathered_shapes_are_bounded(void **state)
{
    static int64_t idx[65];
    static const int64_t shape[] = {5, 6};
    model md;
    model_init(&md, 2, (const int64_t[]){1, 3}, "out");
    model_init_ints(&md, "shape", 1, 2, shape);
    model_init_ints(&md, "idx", 1, 65, idx);
    model_node(&md, "Gather", (const char *const[]){"shape", "idx"}, 2, "picked");
    model_node(&md, "Relu", (const char *const[]){"input"}, 1, "out");
    model_save(&md);
    assert_refused("node 'picked' (Gather): a constant shape of 65 values; at most 64 are "
                   "supported");
}

/* A node naming 40 inputs that nothing defines: each got an entry in the reader's
 * table of names, sized for the defined names only, and once it was full the probe
 * for the next one never ended - a 300-byte file hung the loader.  An alarm ends this
 * case should that come back. */
static void test_onnx_undefined_inputs_do_not_hang(void **state)
{
    static const char *ins[41] = {"input"};
    static char names[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "x%d", i);
        ins[i + 1] = names[i];
    }
    model md;
    model_init(&md, 2, (const int64_t[]){1, 3}, "out");
    model_node(&md, "Relu", ins, 41, "out");
    model_save(&md);
    alarm(10);
    assert_refused("node 'out' (Relu): input 'x0' is not defined before it");
    alarm(0);
}

/* ---- .lop ----------------------------------------------------------------------- */

/* A Pad read only by a Pad that nothing reads: the first Pad's padding went into the
 * Conv after it, but the dead Pad made it a pad layer of its own, which the written
 * file kept and the file read back dropped (fuzz_onnx: "reads back as another graph").
 * Pads in a row now add up without a layer, which also makes Pad(Pad(x)) one pad
 * layer: 1 + 2 rows above, 2 + 1 columns after. */
static void test_onnx_pad_after_pad_adds_up(void **state)
{
    static const int64_t one[8] = {0, 0, 1, 1, 0, 0, 1, 1}, more[8] = {0, 0, 2, 0, 0, 0, 0, 1};
    model md;
    model_init(&md, 4, (const int64_t[]){1, 1, 5, 6}, "conv");
    model_init_ints(&md, "one", 1, 8, one);
    model_init_ints(&md, "more", 1, 8, more);
    model_init_zeros(&md, "w", 4, (const int64_t[]){2, 1, 3, 3});
    model_node(&md, "Pad", (const char *const[]){"input", "one"}, 2, "px");
    model_node(&md, "Pad", (const char *const[]){"px", "more"}, 2, "dead");
    model_node(&md, "Conv", (const char *const[]){"px", "w"}, 2, "conv");
    model_save(&md);
    lop_graph *g = NULL, *back = NULL;
    assert_int_equal(lop_graph_load(path, &g), LOP_OK);
    assert_int_equal(lop_graph_size(g), 2);   /* the input and the conv, padded 1 */
    char out[160];
    snprintf(out, sizeof out, "%s/back.onnx", dir);
    assert_int_equal(lop_graph_save_onnx(g, out, NULL), LOP_OK);
    assert_int_equal(lop_graph_load(out, &back), LOP_OK);
    assert_int_equal(lop_graph_size(back), 2);
    lop_graph_free(back);
    lop_graph_free(g);
    unlink(out);

    model_init(&md, 4, (const int64_t[]){1, 1, 5, 6}, "twice");
    model_init_ints(&md, "one", 1, 8, one);
    model_init_ints(&md, "more", 1, 8, more);
    model_node(&md, "Pad", (const char *const[]){"input", "one"}, 2, "px");
    model_node(&md, "Pad", (const char *const[]){"px", "more"}, 2, "twice");
    model_save(&md);
    assert_int_equal(lop_graph_load(path, &g), LOP_OK);
    assert_int_equal(lop_graph_size(g), 2);   /* the input and one pad layer */
    int shape[3];
    assert_int_equal(lop_node_shape(g, 1, shape), 3);
    assert_int_equal(shape[1], 5 + 1 + 2 + 1);
    assert_int_equal(shape[2], 6 + 1 + 1 + 1);
    lop_graph_free(g);
}

/* A .lop header (version 1 and its attribute fields as this build writes them, read
 * back from a file it saved) declaring a 20000 x 20000 linear layer: the reader let
 * lop_graph_add allocate and fill 400 million values (1.5 GB, 7 s) before finding that
 * the 200-byte file cannot hold them. */
static void test_lop_layer_size_checked_before_allocating(void **state)
{
    lop_graph *g = lop_graph_new(1);
    lop_attrs a = lop_attrs_input(20000, 0, 0);
    int x, fc;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "input", NULL, 0, &a, &x), LOP_OK);
    a = lop_attrs_default();
    a.out_channels = 2;
    assert_int_equal(lop_graph_add(g, LOP_LINEAR, "fc", &x, 1, &a, &fc), LOP_OK);
    snprintf(path, sizeof path, "%s/model.lop", dir);
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    lop_graph_free(g);
    /* the header up to "params", with the layer made 20000 wide */
    gzFile gz = gzopen(path, "rb");
    assert_non_null(gz);
    char text[4096];
    int n = gzread(gz, text, sizeof text - 1);
    gzclose(gz);
    assert_true(n > 0);
    text[n] = '\0';
    char *cut = strstr(text, "params ");
    char *width = strstr(text, "out_channels=2 ");
    assert_non_null(cut);
    assert_non_null(width);
    *cut = '\0';
    char header[4200];
    snprintf(header, sizeof header, "%.*sout_channels=20000 %sparams 2\nend\n",
             (int)(width - text), text, width + strlen("out_channels=2 "));
    gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, header, (unsigned)strlen(header)), (int)strlen(header));
    assert_int_equal(gzclose(gz), Z_OK);
    assert_refused("node 1 'fc': parameters add up to 400020000 values, more than the file "
                   "can hold");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_onnx_graph_without_a_layer),
    cmocka_unit_test(test_onnx_conv_weight_checked_before_allocating),
    cmocka_unit_test(test_onnx_batchnorm_checked_before_allocating),
    cmocka_unit_test(test_onnx_folded_shapes_are_bounded),
    cmocka_unit_test(test_onnx_gathered_shapes_are_bounded),
    cmocka_unit_test(test_onnx_undefined_inputs_do_not_hang),
    cmocka_unit_test(test_onnx_pad_after_pad_adds_up),
    cmocka_unit_test(test_lop_layer_size_checked_before_allocating),
};

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lop_fuzz_cases_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    return 0;
}

static int remove_dir(void **state)
{
    (void)state;
    static const char *const names[] = {"model.onnx", "model.lop"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    return rmdir(dir);
}

int main(void)
{
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
