/*
 * kinds.c - the table of layer kinds: names for files and messages, and the layer
 * implementation behind each kind.  Adding a kind at the end of the enum without a row
 * here fails to compile; one inserted in the middle leaves a hole of the right total
 * size, which tests/test_kinds.c (every kind: a name, an implementation) catches.
 */
#include <assert.h>
#include <string.h>

#include "internal.h"

static const char *const kind_names[] = {
    [LOP_INPUT] = "input",
    [LOP_CONV2D] = "conv2d",
    [LOP_BATCHNORM] = "batchnorm",
    [LOP_RELU] = "relu",
    [LOP_MAXPOOL] = "maxpool",
    [LOP_AVGPOOL] = "avgpool",
    [LOP_GLOBAL_AVGPOOL] = "global_avgpool",
    [LOP_FLATTEN] = "flatten",
    [LOP_LINEAR] = "linear",
    [LOP_ADD] = "add",
    [LOP_CONCAT] = "concat",
    [LOP_DROPOUT] = "dropout",
    [LOP_PICK] = "pick",
    [LOP_RELU6] = "relu6",
    [LOP_PAD] = "pad",
};
static_assert(sizeof kind_names / sizeof kind_names[0] == LOP_KIND_COUNT,
              "every layer kind needs a name");

static const lop_layer_ops *const kind_ops[] = {
    [LOP_INPUT] = NULL,   /* the graph handles inputs itself */
    [LOP_CONV2D] = &lop_conv2d_ops,
    [LOP_BATCHNORM] = &lop_batchnorm_ops,
    [LOP_RELU] = &lop_relu_ops,
    [LOP_MAXPOOL] = &lop_maxpool_ops,
    [LOP_AVGPOOL] = &lop_avgpool_ops,
    [LOP_GLOBAL_AVGPOOL] = &lop_global_avgpool_ops,
    [LOP_FLATTEN] = &lop_flatten_ops,
    [LOP_LINEAR] = &lop_linear_ops,
    [LOP_ADD] = &lop_add_ops,
    [LOP_CONCAT] = &lop_concat_ops,
    [LOP_DROPOUT] = &lop_dropout_ops,
    [LOP_PICK] = &lop_pick_ops,
    [LOP_RELU6] = &lop_relu6_ops,
    [LOP_PAD] = &lop_pad_ops,
};
static_assert(sizeof kind_ops / sizeof kind_ops[0] == LOP_KIND_COUNT,
              "every layer kind needs an implementation");

const char *lop_kind_name(lop_kind k)
{
    return (unsigned)k < LOP_KIND_COUNT && kind_names[k] ? kind_names[k] : "unknown";
}

int lop_kind_from_name(const char *name, lop_kind *out)
{
    for (int k = 0; k < LOP_KIND_COUNT; k++)
        if (kind_names[k] && strcmp(name, kind_names[k]) == 0) {
            *out = (lop_kind)k;
            return LOP_OK;
        }
    return lop_fail(LOP_EINVAL, "unknown layer kind '%s'", name);
}

const lop_layer_ops *lop_layer_ops_of(lop_kind kind)
{
    return (unsigned)kind < LOP_KIND_COUNT ? kind_ops[kind] : NULL;
}
