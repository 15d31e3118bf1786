/*
 * onnx_ops.c - one reader per ONNX operator the engine has a layer for (the list is
 * SUPPORTED in onnx_read.h): each checks its attributes (an unknown one is an error,
 * never ignored), its inputs and its constants, then adds the engine node, copies
 * the weights, and says what its output stands for.  Shape arithmetic on constants
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters write a flatten)
 * is evaluated here, MatMul + Add becomes one linear layer, a zero Pad joins the
 * padding of the Conv or AveragePool after it (or becomes a pad layer), Clip to
 * [0, 6] is ReLU6, Identity and a one-input Concat are aliases.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx_read.h"

#define MAX_SHAPE 64   /* values in a folded shape constant (Concat, Gather) */

/* ---- attributes ----------------------------------------------------------------- */

static const Onnx__AttributeProto *attr_find(node_t *nd, const char *name)
{
    for (size_t i = 0; i < nd->n_attribute; i++)
        if (nd->attribute[i]->name && strcmp(nd->attribute[i]->name, name) == 0)
            return nd->attribute[i];
    return NULL;
}

/* Refuse any attribute not in known (a NULL-terminated list). */
static int attrs_known(const ctx *c, node_t *nd, const char *const *known)
{
    for (size_t i = 0; i < nd->n_attribute; i++) {
        const char *name = nd->attribute[i]->name ? nd->attribute[i]->name : "";
        int ok = 0;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, name) == 0;
        if (!ok)
            return lop_onnx_fail(c, nd, "attribute '%.40s' is not supported", name);
    }
    return LOP_OK;
}

/* A scalar attribute: an integer (out_i) or a float (out_f), def when absent. */
static int attr_scalar(const ctx *c, node_t *nd, const char *name, double def,
                       int64_t *out_i, float *out_f)
{
    const Onnx__AttributeProto *a = attr_find(nd, name);
    if (a && !(out_i ? a->has_i : a->has_f))
        return lop_onnx_fail(c, nd, "attribute '%s' must be %s", name,
                             out_i ? "an integer" : "a float");
    if (out_i)
        *out_i = a ? a->i : (int64_t)def;
    else
        *out_f = a ? a->f : (float)def;
    return LOP_OK;
}

static int attr_int(const ctx *c, node_t *nd, const char *name, int64_t def, int64_t *out)
{
    return attr_scalar(c, nd, name, (double)def, out, NULL);
}

static int attr_float(const ctx *c, node_t *nd, const char *name, float def, float *out)
{
    return attr_scalar(c, nd, name, def, NULL, out);
}

/* An integer list attribute of exactly n entries into out (left as is if absent). */
static int attr_ints(const ctx *c, node_t *nd, const char *name, size_t n, int64_t *out)
{
    const Onnx__AttributeProto *a = attr_find(nd, name);
    if (!a)
        return LOP_OK;
    if (a->n_ints != n)
        return lop_onnx_fail(c, nd, "attribute '%s' has %zu values, expected %zu", name,
                             a->n_ints, n);
    memcpy(out, a->ints, n * sizeof *out);
    return LOP_OK;
}

/* ---- adding engine nodes -------------------------------------------------------- */

/* Add an engine node named after nd (its name, else its first output) plus suffix,
 * reading the activations ins[0..nin); the engine's refusal becomes nd's error. */
static int add_named(ctx *c, node_t *nd, const char *suffix, lop_kind kind, const int *ins,
                     int nin, const lop_attrs *a, int *id)
{
    char want[2 * LOP_NAME_MAX], name[LOP_NAME_MAX];
    const char *base = nd->name && nd->name[0] ? nd->name : nd->output[0];
    snprintf(want, sizeof want, "%s%s", base[0] ? base : nd->op_type, suffix);
    lop_onnx_name(c, want, name);
    int st = lop_onnx_graph_add(c, kind, name, ins, nin, a, id);
    if (st != LOP_OK) {
        char why[300];
        snprintf(why, sizeof why, "%s", lop_errmsg());
        return st == LOP_ENOMEM ? st : lop_onnx_fail(c, nd, "%s", why);
    }
    return LOP_OK;
}

/* Add a node named after nd reading the activations ins[0..nin), and make nd's first
 * output that node. */
static int add_node(ctx *c, node_t *nd, lop_kind kind, const int *ins, int nin,
                    const lop_attrs *a, int squeezed, int *id)
{
    int st = add_named(c, nd, "", kind, ins, nin, a, id);
    if (st != LOP_OK)
        return st;
    value *out = lop_onnx_value(c, nd->output[0], 0);
    out->kind = V_ACT;
    out->node = *id;
    out->squeezed = squeezed;
    return LOP_OK;
}

/* Copy constant v (times scale) into parameter `param` of node id, whose shape must
 * have v's element count (and v's dims, unless loose). */
static int set_param(ctx *c, node_t *nd, int id, const char *param, const value *v,
                     float scale, int loose)
{
    lop_tensor *t = lop_node_param(c->g, id, lop_node_find_param(c->g, id, param));
    int same = t->numel == v->n && (loose || t->ndim == v->ndim);
    for (int i = 0; same && !loose && i < t->ndim; i++)
        same = t->shape[i] == v->dims[i];
    if (!same)
        return lop_onnx_fail(c, nd, "tensor '%.80s' (%zu values) does not fit the layer's "
                             "%s (%zu values)", v->name, v->n, param, t->numel);
    lop_onnx_floats(v, scale, t->data);
    return LOP_OK;
}

/* Make nd's first output the same value as v (pass-through operators). */
static int alias(ctx *c, node_t *nd, const value *v)
{
    value *out = lop_onnx_value(c, nd->output[0], 0);
    const char *name = out->name;
    int uses = out->uses, user = out->user;
    *out = *v;
    out->name = name;
    out->uses = uses;
    out->user = user;
    out->ints = NULL;   /* folded values stay owned by v: copy them */
    if (!v->ints)
        return LOP_OK;
    int st = lop_onnx_ints_new(out, v->ndim, v->n);
    if (st == LOP_OK)
        memcpy(out->ints, v->ints, v->n * sizeof *v->ints);
    return st;
}

/* ---- padding -------------------------------------------------------------------- */

static int has_pad(const value *v)
{
    return v->pad[0] || v->pad[1] || v->pad[2] || v->pad[3];
}

/* A pad layer (zeros: p = top, left, bottom, right) named after nd plus suffix,
 * reading node in. */
static int pad_layer(ctx *c, node_t *nd, const char *suffix, int in, const int *p, int *id)
{
    lop_attrs a = lop_attrs_default();
    a.pad_h = p[0];
    a.pad_w = p[1];
    a.pad_bottom = p[2];
    a.pad_right = p[3];
    return add_named(c, nd, suffix, LOP_PAD, &in, 1, &a, id);
}

int lop_onnx_take_pad(ctx *c, value *v)
{
    if (!has_pad(v))
        return LOP_OK;
    int id, st = pad_layer(c, v->pad_node, "", v->node, v->pad, &id);
    if (st != LOP_OK)
        return st;
    /* v now stands for the layer; so does the Pad's own output when v is an alias of
     * it (an Identity after the Pad), so that its other readers share the layer */
    value *own = lop_onnx_value(c, v->pad_node->output[0], 0);
    if (own && own != v && has_pad(own)) {
        memset(own->pad, 0, sizeof own->pad);
        own->node = id;
    }
    memset(v->pad, 0, sizeof v->pad);
    v->node = id;
    return LOP_OK;
}

/* Padding p (top, left, bottom, right) taken into the layer (a->pad_h, pad_w) when
 * symmetric and within limit_h x limit_w. */
static int absorb_padding(const int *p, int limit_h, int limit_w, lop_attrs *a)
{
    if (p[0] != p[2] || p[1] != p[3] || p[0] > limit_h || p[1] > limit_w)
        return 0;
    a->pad_h = p[0];
    a->pad_w = p[1];
    return 1;
}

/* The padding a Conv or AveragePool (counting padding) wants, own (top, left,
 * bottom, right), plus x's pending Pad: taken into the layer when it can be, else a
 * pad layer "<node>_pad" in front.  A Pad that other nodes read too (and that is not
 * the graph's output, whose layer must come last: user -1) becomes its own pad layer
 * then, shared by every reader that cannot take it either, and the layer takes its own
 * padding after it: the Pad is computed once, and a file Lopper writes reads back as
 * the same graph.  *in receives the node the layer reads. */
static int take_padding(ctx *c, node_t *nd, value *x, const int64_t *own, int limit_h,
                        int limit_w, lop_attrs *a, int *in)
{
    int p[4];
    for (int i = 0; i < 4; i++)
        p[i] = (int)own[i] + x->pad[i];   /* each at most MAX_DIM */
    *in = x->node;
    if (absorb_padding(p, limit_h, limit_w, a))
        return LOP_OK;
    if (has_pad(x) && x->uses > 1 && x->user != -1) {
        int st = lop_onnx_take_pad(c, x);
        if (st != LOP_OK)
            return st;
        for (int i = 0; i < 4; i++)
            p[i] = (int)own[i];
        *in = x->node;
        if (absorb_padding(p, limit_h, limit_w, a))
            return LOP_OK;
    }
    a->pad_h = a->pad_w = 0;
    return pad_layer(c, nd, "_pad", x->node, p, in);
}

/* The activation input k of nd; rank3 demands a (C,H,W) map; padded leaves a pending
 * Pad for the caller to take, otherwise it becomes a pad layer first. */
static int act_input_padded(ctx *c, node_t *nd, size_t k, int rank3, int padded, value **out)
{
    value *v = lop_onnx_input(c, nd, k);
    if (!v || v->kind != V_ACT)
        return lop_onnx_fail(c, nd, "input %zu must be computed from the graph input, not a "
                             "constant", k + 1);
    int st = padded ? LOP_OK : lop_onnx_take_pad(c, v);
    if (st != LOP_OK)
        return st;
    int shape[3];
    if (rank3 && (lop_node_shape(c->g, v->node, shape) != 3 || v->squeezed))
        return lop_onnx_fail(c, nd, "input '%.80s' must be a feature map [N, C, H, W]", v->name);
    *out = v;
    return LOP_OK;
}

static int act_input(ctx *c, node_t *nd, size_t k, int rank3, value **out)
{
    return act_input_padded(c, nd, k, rank3, 0, out);
}

/* ONNX rank of an activation (batch included). */
static int act_rank(const ctx *c, const value *v)
{
    int shape[3];
    return v->squeezed ? 4 : lop_node_shape(c->g, v->node, shape) + 1;
}
/* ---- operators ------------------------------------------------------------------ */

/* Spatial attributes of Conv and the pools: kernel and strides into a, the pads
 * (top, left, bottom, right) into p for the caller to place. */
static int window_attrs(const ctx *c, node_t *nd, lop_attrs *a, int64_t *p, int need_kernel)
{
    int64_t k[2] = {0, 0}, s[2] = {1, 1}, d[2] = {1, 1};
    memset(p, 0, 4 * sizeof *p);
    const Onnx__AttributeProto *ap = attr_find(nd, "auto_pad");
    if (ap && !(ap->has_s && ((ap->s.len == 6 && memcmp(ap->s.data, "NOTSET", 6) == 0) ||
                              (ap->s.len == 5 && memcmp(ap->s.data, "VALID", 5) == 0))))
        return lop_onnx_fail(c, nd, "auto_pad other than NOTSET or VALID is not supported "
                             "(give explicit pads)");
    int st = attr_ints(c, nd, "kernel_shape", 2, k);
    if (st == LOP_OK)
        st = attr_ints(c, nd, "strides", 2, s);
    if (st == LOP_OK)
        st = attr_ints(c, nd, "pads", 4, p);
    if (st == LOP_OK)
        st = attr_ints(c, nd, "dilations", 2, d);
    if (st != LOP_OK)
        return st;
    if (need_kernel && !attr_find(nd, "kernel_shape"))
        return lop_onnx_fail(c, nd, "attribute 'kernel_shape' is required");
    if (d[0] != 1 || d[1] != 1)
        return lop_onnx_fail(c, nd, "dilations %lldx%lld are not supported (only 1x1)",
                             (long long)d[0], (long long)d[1]);
    for (int i = 0; i < 4; i++)
        if (k[i % 2] < 0 || k[i % 2] > MAX_DIM || s[i % 2] < 1 || s[i % 2] > MAX_DIM ||
            p[i] < 0 || p[i] > MAX_DIM)
            return lop_onnx_fail(c, nd, "kernel, strides or pads out of range");
    a->kernel_h = (int)k[0];
    a->kernel_w = (int)k[1];
    a->stride_h = (int)s[0];
    a->stride_w = (int)s[1];
    return LOP_OK;
}

/* Pads a layer must take itself (MaxPool's, or AveragePool's without the padding
 * counted): symmetric ones only. */
static int symmetric_pads(const ctx *c, node_t *nd, const int64_t *p, lop_attrs *a)
{
    if (p[0] != p[2] || p[1] != p[3])
        return lop_onnx_fail(c, nd, "asymmetric pads [%lld, %lld, %lld, %lld] are supported "
                             "only where the padding is zeros that count (Conv, AveragePool "
                             "with count_include_pad=1)", (long long)p[0], (long long)p[1],
                             (long long)p[2], (long long)p[3]);
    a->pad_h = (int)p[0];
    a->pad_w = (int)p[1];
    return LOP_OK;
}

static int op_conv(ctx *c, node_t *nd)
{
    static const char *const known[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                        "pads", "strides", NULL};
    lop_attrs a = lop_attrs_default();
    value *x = NULL, *w = NULL, *b = NULL;
    int64_t groups, pads[4];
    int id, in, st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input_padded(c, nd, 0, 1, 1, &x);
    if (st == LOP_OK && !(w = lop_onnx_const(c, nd, 1, T_FLOAT, "weight")))
        st = LOP_EFORMAT;
    if (st == LOP_OK && lop_onnx_input(c, nd, 2) &&
        !(b = lop_onnx_const(c, nd, 2, T_FLOAT, "bias")))
        st = LOP_EFORMAT;
    if (st == LOP_OK)
        st = attr_int(c, nd, "group", 1, &groups);
    if (st == LOP_OK)
        st = window_attrs(c, nd, &a, pads, 0);
    if (st != LOP_OK)
        return st;
    if (w->ndim != 4 || w->dims[0] < 1)
        return lop_onnx_fail(c, nd, "weight '%.80s' must be [M, C/group, kH, kW]", w->name);
    if (attr_find(nd, "kernel_shape") && (a.kernel_h != w->dims[2] || a.kernel_w != w->dims[3]))
        return lop_onnx_fail(c, nd, "kernel_shape does not match the weight");
    if (groups < 1 || groups > MAX_DIM)
        return lop_onnx_fail(c, nd, "group %lld out of range", (long long)groups);
    /* Before the layer allocates its weight from the input's channels: a declared
     * input of a million channels must not cost a huge allocation. */
    int shape[3];
    lop_node_shape(c->g, x->node, shape);
    if (w->dims[1] * groups != shape[0])
        return lop_onnx_fail(c, nd, "weight '%.80s' takes %lld input channels (%lld per group, "
                             "%lld groups); the input has %d", w->name,
                             (long long)(w->dims[1] * groups), (long long)w->dims[1],
                             (long long)groups, shape[0]);
    a.out_channels = (int)w->dims[0];
    a.kernel_h = (int)w->dims[2];
    a.kernel_w = (int)w->dims[3];
    a.groups = (int)groups;
    a.bias = b != NULL;
    st = take_padding(c, nd, x, pads, MAX_DIM, MAX_DIM, &a, &in);
    if (st == LOP_OK)
        st = add_node(c, nd, LOP_CONV2D, &in, 1, &a, 0, &id);
    if (st == LOP_OK)
        st = set_param(c, nd, id, "weight", w, 1.0f, 0);
    if (st == LOP_OK && b)
        st = set_param(c, nd, id, "bias", b, 1.0f, 1);
    return st;
}

static int op_batchnorm(ctx *c, node_t *nd)
{
    static const char *const known[] = {"epsilon", "momentum", "training_mode", "spatial",
                                        NULL};
    static const char *const params[] = {"weight", "bias", "running_mean", "running_var"};
    static const char *const roles[] = {"scale", "bias", "mean", "variance"};
    lop_attrs a = lop_attrs_default();
    value *x = NULL, *p[4] = {NULL};
    int64_t training, spatial;
    float momentum;
    int id, st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 0, &x);
    for (int k = 0; k < 4 && st == LOP_OK; k++)
        if (!(p[k] = lop_onnx_const(c, nd, (size_t)k + 1, T_FLOAT, roles[k])))
            st = LOP_EFORMAT;
    if (st == LOP_OK)
        st = attr_float(c, nd, "epsilon", 1e-5f, &a.eps);
    if (st == LOP_OK)
        st = attr_float(c, nd, "momentum", 0.9f, &momentum);
    if (st == LOP_OK)
        st = attr_int(c, nd, "training_mode", 0, &training);
    if (st == LOP_OK)
        st = attr_int(c, nd, "spatial", 1, &spatial);
    if (st != LOP_OK)
        return st;
    if (training != 0 || spatial != 1 || (nd->n_output > 1 && nd->output[1][0]))
        return lop_onnx_fail(c, nd, "only inference-mode batch normalization is supported");
    int in[3];   /* checked before the layer allocates them from the input's channels */
    lop_node_shape(c->g, x->node, in);
    for (int k = 0; k < 4; k++)
        if (p[k]->n != (size_t)in[0])
            return lop_onnx_fail(c, nd, "the %s '%.80s' has %zu values for %d channels",
                                 roles[k], p[k]->name, p[k]->n, in[0]);
    a.momentum = 1.0f - momentum;   /* ONNX keeps the old statistics' share */
    st = add_node(c, nd, LOP_BATCHNORM, &x->node, 1, &a, x->squeezed, &id);
    for (int k = 0; k < 4 && st == LOP_OK; k++)
        st = set_param(c, nd, id, params[k], p[k], 1.0f, 1);
    return st;
}

static int op_relu(ctx *c, node_t *nd)
{
    static const char *const known[] = {NULL};
    lop_attrs a = lop_attrs_default();
    value *x = NULL;
    int id, st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 0, &x);
    return st == LOP_OK ? add_node(c, nd, LOP_RELU, &x->node, 1, &a, x->squeezed, &id) : st;
}

/* Clip to [0, 6] is ReLU6 and to [0, inf) ReLU (the bounds attributes before opset
 * 11, constant inputs since). */
static int op_clip(ctx *c, node_t *nd)
{
    static const char *const known[] = {"min", "max", NULL};
    lop_attrs a = lop_attrs_default();
    value *x = NULL, *bound[2] = {NULL, NULL};
    float lo, hi;
    int id, st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 0, &x);
    if (st == LOP_OK)
        st = attr_float(c, nd, "min", -INFINITY, &lo);
    if (st == LOP_OK)
        st = attr_float(c, nd, "max", INFINITY, &hi);
    for (size_t k = 1; k <= 2 && st == LOP_OK; k++)
        if (lop_onnx_input(c, nd, k) &&
            !(bound[k - 1] = lop_onnx_const(c, nd, k, T_FLOAT, k == 1 ? "min" : "max")))
            st = LOP_EFORMAT;
    if (st != LOP_OK)
        return st;
    for (int k = 0; k < 2; k++) {
        if (bound[k] && bound[k]->n != 1)
            return lop_onnx_fail(c, nd, "the %s bound must be a scalar", k ? "max" : "min");
        if (bound[k])
            lop_onnx_floats(bound[k], 1.0f, k ? &hi : &lo);
    }
    if (lo != 0.0f || (hi != 6.0f && hi != INFINITY))
        return lop_onnx_fail(c, nd, "Clip to [%g, %g] is not supported: only [0, 6] (ReLU6) "
                             "and [0, inf) (ReLU)", (double)lo, (double)hi);
    return add_node(c, nd, hi == 6.0f ? LOP_RELU6 : LOP_RELU, &x->node, 1, &a, x->squeezed,
                    &id);
}

/* MaxPool and AveragePool: ceil_mode as the engine has it; padding counted in the
 * average (count_include_pad=1) is zeros, taken as for a Conv, while excluded padding
 * and MaxPool's padding (never a maximum) must be symmetric and stay in the pool. */
static int op_pool(ctx *c, node_t *nd)
{
    static const char *const known[] = {"auto_pad", "ceil_mode", "count_include_pad",
                                        "dilations", "kernel_shape", "pads", "storage_order",
                                        "strides", NULL};
    int avg = strcmp(nd->op_type, "AveragePool") == 0;
    lop_attrs a = lop_attrs_default();
    value *x = NULL;
    int64_t ceil_mode = 0, include_pad = 0, order = 0, pads[4];
    int id, in, st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = window_attrs(c, nd, &a, pads, 1);
    if (st == LOP_OK)
        st = attr_int(c, nd, "ceil_mode", 0, &ceil_mode);
    if (st == LOP_OK)
        st = attr_int(c, nd, "count_include_pad", 0, &include_pad);
    if (st == LOP_OK)
        st = attr_int(c, nd, "storage_order", 0, &order);
    /* zeros of a Pad before are data, which every average counts */
    int counted = avg && (include_pad != 0 || !(pads[0] || pads[1] || pads[2] || pads[3]));
    if (st == LOP_OK)
        st = act_input_padded(c, nd, 0, 1, counted, &x);
    if (st != LOP_OK)
        return st;
    if (ceil_mode != 0 && ceil_mode != 1)
        return lop_onnx_fail(c, nd, "ceil_mode must be 0 or 1");
    if (order != 0 || (nd->n_output > 1 && nd->output[1][0]))
        return lop_onnx_fail(c, nd, "the indices output is not supported");
    a.ceil_mode = (int)ceil_mode;
    if (counted) {
        st = take_padding(c, nd, x, pads, a.kernel_h / 2, a.kernel_w / 2, &a, &in);
    } else {
        in = x->node;
        st = symmetric_pads(c, nd, pads, &a);
        a.exclude_pad = avg && (a.pad_h > 0 || a.pad_w > 0);
    }
    if (st == LOP_OK)
        st = add_node(c, nd, avg ? LOP_AVGPOOL : LOP_MAXPOOL, &in, 1, &a, 0, &id);
    return st;
}

/* GlobalAveragePool, or ReduceMean over the two spatial axes. */
static int op_global_pool(ctx *c, node_t *nd)
{
    static const char *const known[] = {"axes", "keepdims", NULL};
    lop_attrs a = lop_attrs_default();
    value *x = NULL;
    int64_t keep = 1, axes[2] = {2, 3};
    int reduce = strcmp(nd->op_type, "ReduceMean") == 0;
    int id, st = attrs_known(c, nd, reduce ? known : known + 2);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 1, &x);
    if (st == LOP_OK && reduce)
        st = attr_int(c, nd, "keepdims", 1, &keep);
    if (st == LOP_OK && reduce)
        st = attr_find(nd, "axes") ? attr_ints(c, nd, "axes", 2, axes)
                                   : lop_onnx_fail(c, nd, "only axes [2, 3] are supported");
    if (st != LOP_OK)
        return st;
    for (int i = 0; i < 2; i++)
        axes[i] = axes[i] < 0 ? axes[i] + 4 : axes[i];
    if (!((axes[0] == 2 && axes[1] == 3) || (axes[0] == 3 && axes[1] == 2)))
        return lop_onnx_fail(c, nd, "only a mean over axes [2, 3] is supported");
    return add_node(c, nd, LOP_GLOBAL_AVGPOOL, &x->node, 1, &a, keep != 0, &id);
}

/* [N, ...] -> [N, features]: a flatten node for a map, nothing for a vector. */
static int to_2d(ctx *c, node_t *nd, value *x)
{
    int shape[3], id;
    lop_attrs a = lop_attrs_default();
    if (lop_node_shape(c->g, x->node, shape) == 3)
        return add_node(c, nd, LOP_FLATTEN, &x->node, 1, &a, 0, &id);
    value v = *x;
    v.squeezed = 0;
    return alias(c, nd, &v);
}

static int op_flatten(ctx *c, node_t *nd)
{
    static const char *const known[] = {"axis", NULL};
    value *x = NULL;
    int64_t axis;
    int st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 0, &x);
    if (st == LOP_OK)
        st = attr_int(c, nd, "axis", 1, &axis);
    if (st != LOP_OK)
        return st;
    if (axis != 1 && axis != 1 - act_rank(c, x))
        return lop_onnx_fail(c, nd, "only axis 1 (keep the batch) is supported");
    return to_2d(c, nd, x);
}

static int op_reshape(ctx *c, node_t *nd)
{
    static const char *const known[] = {"allowzero", NULL};
    value *x = NULL, *s = NULL;
    int shape[3];
    int st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 0, &x);
    if (st == LOP_OK && !(s = lop_onnx_const(c, nd, 1, T_INT64, "shape")))
        st = LOP_EFORMAT;
    if (st != LOP_OK)
        return st;
    size_t features = lop_shape_numel(lop_node_shape(c->g, x->node, shape), shape);
    int64_t b = s->n == 2 ? lop_onnx_int(s, 0) : 0, f = s->n == 2 ? lop_onnx_int(s, 1) : 0;
    int batch_ok = b == BATCH || b == 0 || (b == -1 && f != -1) || (b == c->batch && b > 0);
    if (s->ndim != 1 || s->n != 2 || !batch_ok || (f != -1 && f != (int64_t)features))
        return lop_onnx_fail(c, nd, "only a reshape to [N, %zu] (batch, features) is supported",
                             features);
    return to_2d(c, nd, x);
}

/* The weight [M, K] of linear node id from a constant [K, M] times scale. */
static int set_weight_km(ctx *c, int id, const value *w, float scale)
{
    lop_tensor *wt = lop_node_param(c->g, id, 0);
    float *tmp = lop_malloc(w->n * sizeof *tmp);
    if (!tmp)
        return LOP_ENOMEM;
    lop_onnx_floats(w, scale, tmp);
    int64_t k = w->dims[0], m = w->dims[1];
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < m; j++)
            wt->data[j * k + i] = tmp[i * m + j];
    lop_free(tmp);
    return LOP_OK;
}

static int op_gemm(ctx *c, node_t *nd)
{
    static const char *const known[] = {"alpha", "beta", "transA", "transB", NULL};
    lop_attrs a = lop_attrs_default();
    value *x = NULL, *w = NULL, *b = NULL;
    int64_t ta, tb;
    float alpha, beta;
    int shape[3], id, st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 0, &x);
    if (st == LOP_OK && !(w = lop_onnx_const(c, nd, 1, T_FLOAT, "B matrix")))
        st = LOP_EFORMAT;
    if (st == LOP_OK && lop_onnx_input(c, nd, 2) &&
        !(b = lop_onnx_const(c, nd, 2, T_FLOAT, "C bias")))
        st = LOP_EFORMAT;
    if (st == LOP_OK)
        st = attr_int(c, nd, "transA", 0, &ta);
    if (st == LOP_OK)
        st = attr_int(c, nd, "transB", 0, &tb);
    if (st == LOP_OK)
        st = attr_float(c, nd, "alpha", 1.0f, &alpha);
    if (st == LOP_OK)
        st = attr_float(c, nd, "beta", 1.0f, &beta);
    if (st != LOP_OK)
        return st;
    if (lop_node_shape(c->g, x->node, shape) != 1 || x->squeezed || ta != 0 ||
        (tb != 0 && tb != 1) || w->ndim != 2)
        return lop_onnx_fail(c, nd, "only [N, K] x B (transA=0, B a 2-D constant) is supported");
    int64_t m = tb ? w->dims[0] : w->dims[1], k = tb ? w->dims[1] : w->dims[0];
    if (k != shape[0] || m < 1)
        return lop_onnx_fail(c, nd, "B is %lldx%lld, which does not fit %d input features",
                             (long long)w->dims[0], (long long)w->dims[1], shape[0]);
    if (b && b->n != (size_t)m && b->n != 1)
        return lop_onnx_fail(c, nd, "C must have 1 or %lld values", (long long)m);
    a.out_channels = (int)m;
    a.bias = b != NULL;
    st = add_node(c, nd, LOP_LINEAR, &x->node, 1, &a, 0, &id);
    if (st != LOP_OK)
        return st;
    if (tb)
        lop_onnx_floats(w, alpha, lop_node_param(c->g, id, 0)->data);
    else if ((st = set_weight_km(c, id, w, alpha)) != LOP_OK)
        return st;
    if (b) {
        lop_tensor *bt = lop_node_param(c->g, id, 1);
        lop_onnx_floats(b, beta, bt->data);
        for (int64_t j = 1; b->n == 1 && j < m; j++)
            bt->data[j] = bt->data[0];
    }
    return LOP_OK;
}

/* The Add that takes nd's output (used only there) plus a constant of n floats: the
 * bias of a MatMul; its index, or -1. */
static int bias_add_after(ctx *c, node_t *nd, size_t n, value **bias)
{
    const value *out = lop_onnx_value(c, nd->output[0], 0);
    if (out->uses != 1 || out->user < 0)
        return -1;
    node_t *add = c->gp->node[out->user];
    if (strcmp(add->op_type, "Add") != 0 || add->n_input != 2 || add->n_attribute != 0)
        return -1;
    int other = strcmp(add->input[0], nd->output[0]) == 0 ? 1 : 0;
    value *v = lop_onnx_input(c, add, (size_t)other);
    if (!v || v->kind != V_CONST || v->type != T_FLOAT || v->n != n || v->ndim > 2)
        return -1;
    *bias = v;
    return out->user;
}

static int op_matmul(ctx *c, node_t *nd)
{
    static const char *const known[] = {NULL};
    lop_attrs a = lop_attrs_default();
    value *x = NULL, *w = NULL, *b = NULL;
    int shape[3], id, st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 0, &x);
    if (st == LOP_OK && !(w = lop_onnx_const(c, nd, 1, T_FLOAT, "weight")))
        st = LOP_EFORMAT;
    if (st != LOP_OK)
        return st;
    if (lop_node_shape(c->g, x->node, shape) != 1 || x->squeezed || w->ndim != 2 ||
        w->dims[0] != shape[0] || w->dims[1] < 1)
        return lop_onnx_fail(c, nd, "only [N, K] x [K, M] with a constant [K, M] is supported");
    int64_t m = w->dims[1];
    int add = bias_add_after(c, nd, (size_t)m, &b);
    a.out_channels = (int)m;
    a.bias = add >= 0;
    st = add_node(c, nd, LOP_LINEAR, &x->node, 1, &a, 0, &id);
    if (st != LOP_OK)
        return st;
    if ((st = set_weight_km(c, id, w, 1.0f)) != LOP_OK)
        return st;
    if (add >= 0) {
        lop_onnx_floats(b, 1.0f, lop_node_param(c->g, id, 1)->data);
        c->skip[add] = 1;
        node_t *addn = c->gp->node[add];
        value *out = lop_onnx_value(c, addn->output[0], 0);
        out->kind = V_ACT;
        out->node = id;
    }
    return LOP_OK;
}

/* Add and Concat of activations (an engine node), or Concat of constant shapes. */
static int op_merge(ctx *c, node_t *nd)
{
    static const char *const known[] = {"axis", NULL};
    int concat = strcmp(nd->op_type, "Concat") == 0;
    lop_attrs a = lop_attrs_default();
    int64_t axis = 0;
    int st = attrs_known(c, nd, concat ? known : known + 1);
    if (st == LOP_OK && concat)
        st = attr_int(c, nd, "axis", 0, &axis);
    if (st != LOP_OK)
        return st;
    if (nd->n_input < 1 || nd->n_input > MAX_NODES)
        return lop_onnx_fail(c, nd, "needs 1 to %d inputs", MAX_NODES);
    size_t nconst = 0, total = 0;
    for (size_t k = 0; k < nd->n_input; k++) {
        value *v = lop_onnx_input(c, nd, k);
        if (!v)
            return lop_onnx_fail(c, nd, "input %zu is missing", k + 1);
        if (v->kind == V_CONST) {
            nconst++;
            total += v->n;
        }
    }
    if (concat && nconst == nd->n_input) {   /* shape arithmetic */
        if (axis != 0)
            return lop_onnx_fail(c, nd, "only 1-D constant shapes can be concatenated");
        value *out = lop_onnx_value(c, nd->output[0], 0);
        for (size_t k = 0; k < nd->n_input; k++)
            if (!lop_onnx_const(c, nd, k, T_INT64, "shape") || lop_onnx_input(c, nd, k)->ndim != 1)
                return lop_onnx_fail(c, nd, "only 1-D integer shapes can be concatenated");
        if (total > MAX_SHAPE)   /* Concat(c, c) chains would double it each time */
            return lop_onnx_fail(c, nd, "a constant shape of %zu values; at most %d are "
                                 "supported", total, MAX_SHAPE);
        if ((st = lop_onnx_ints_new(out, 1, total)) != LOP_OK)
            return st;
        for (size_t k = 0, j = 0; k < nd->n_input; k++) {
            value *v = lop_onnx_input(c, nd, k);
            for (size_t i = 0; i < v->n; i++)
                out->ints[j++] = lop_onnx_int(v, i);
        }
        return LOP_OK;
    }
    if (nconst > 0)
        return lop_onnx_fail(c, nd, "mixing constants and activations is supported only as "
                             "MatMul + Add (a linear layer's bias)");
    if (concat && nd->n_input == 1) {   /* DenseNet's first layer: a copy */
        value *x = NULL;
        if ((st = act_input_padded(c, nd, 0, 0, 1, &x)) != LOP_OK)
            return st;
        if (axis != 1 && axis != 1 - act_rank(c, x))
            return lop_onnx_fail(c, nd, "only axis 1 (channels) is supported");
        return alias(c, nd, x);
    }
    int *ins = lop_malloc(nd->n_input * sizeof *ins), id;
    if (!ins)
        return LOP_ENOMEM;
    value *first = lop_onnx_input(c, nd, 0);
    int rank = act_rank(c, first);
    for (size_t k = 0; k < nd->n_input && st == LOP_OK; k++) {
        value *v = NULL;
        if ((st = act_input(c, nd, k, 0, &v)) != LOP_OK)
            break;
        ins[k] = v->node;
        if (v->squeezed != first->squeezed)
            st = lop_onnx_fail(c, nd, "inputs of different ranks are not supported");
    }
    if (st == LOP_OK && concat && axis != 1 && axis != 1 - rank)
        st = lop_onnx_fail(c, nd, "only axis 1 (channels) is supported");
    if (st == LOP_OK)
        st = add_node(c, nd, concat ? LOP_CONCAT : LOP_ADD, ins, (int)nd->n_input, &a,
                      first->squeezed, &id);
    lop_free(ins);
    return st;
}

/* Gather: channels of a map (a pick node), or entries of a constant shape. */
static int op_gather(ctx *c, node_t *nd)
{
    static const char *const known[] = {"axis", NULL};
    value *x = lop_onnx_input(c, nd, 0), *idx = NULL;
    int64_t axis;
    int st = attrs_known(c, nd, known);
    if (st == LOP_OK && !(idx = lop_onnx_const(c, nd, 1, T_INT64, "indices")))
        st = LOP_EFORMAT;
    if (st == LOP_OK)
        st = attr_int(c, nd, "axis", 0, &axis);
    if (st != LOP_OK)
        return st;
    if (!x)
        return lop_onnx_fail(c, nd, "input 1 is missing");
    if (idx->ndim > 1)
        return lop_onnx_fail(c, nd, "only scalar or 1-D indices are supported");
    if (x->kind == V_CONST) {
        if (axis != 0 || x->ndim != 1 || !lop_onnx_const(c, nd, 0, T_INT64, "data"))
            return lop_onnx_fail(c, nd, "only axis 0 of a 1-D integer constant is supported");
        if (idx->n > MAX_SHAPE)
            return lop_onnx_fail(c, nd, "a constant shape of %zu values; at most %d are "
                                 "supported", idx->n, MAX_SHAPE);
        value *out = lop_onnx_value(c, nd->output[0], 0);
        if ((st = lop_onnx_ints_new(out, idx->ndim, idx->n)) != LOP_OK)
            return st;
        for (size_t i = 0; i < idx->n; i++) {
            int64_t j = lop_onnx_int(idx, i);
            j = j < 0 ? j + (int64_t)x->n : j;
            if (j < 0 || j >= (int64_t)x->n)
                return lop_onnx_fail(c, nd, "index %lld is out of range", (long long)j);
            out->ints[i] = lop_onnx_int(x, (size_t)j);
        }
        return LOP_OK;
    }
    int shape[3], id;
    if ((st = act_input(c, nd, 0, 1, &x)) != LOP_OK)
        return st;
    lop_node_shape(c->g, x->node, shape);
    if (axis != 1 || idx->ndim != 1 || idx->n < 1)
        return lop_onnx_fail(c, nd, "only a 1-D list of channels (axis 1) is supported");
    lop_attrs a = lop_attrs_default();
    a.out_channels = (int)idx->n;
    if ((st = add_node(c, nd, LOP_PICK, &x->node, 1, &a, 0, &id)) != LOP_OK)
        return st;
    float *dst = lop_node_param(c->g, id, 0)->data;
    for (size_t i = 0; i < idx->n; i++) {
        int64_t j = lop_onnx_int(idx, i);
        j = j < 0 ? j + shape[0] : j;
        if (j < 0 || j >= shape[0])
            return lop_onnx_fail(c, nd, "channel %lld is out of range", (long long)j);
        dst[i] = (float)j;
    }
    return LOP_OK;
}

static int op_dropout(ctx *c, node_t *nd)
{
    static const char *const known[] = {"ratio", "seed", NULL};
    lop_attrs a = lop_attrs_default();
    value *x = NULL, *r = NULL, *mode = NULL;
    int id, st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 0, &x);
    if (st == LOP_OK)
        st = attr_float(c, nd, "ratio", 0.5f, &a.p);
    if (st == LOP_OK && lop_onnx_input(c, nd, 1) &&
        !(r = lop_onnx_const(c, nd, 1, T_FLOAT, "ratio")))
        st = LOP_EFORMAT;
    if (st == LOP_OK && lop_onnx_input(c, nd, 2) &&
        !(mode = lop_onnx_const(c, nd, 2, T_INT64, "training_mode")))
        st = LOP_EFORMAT;
    if (st != LOP_OK)
        return st;
    if (r && r->n != 1)
        return lop_onnx_fail(c, nd, "ratio must be a scalar");
    if (r)
        lop_onnx_floats(r, 1.0f, &a.p);
    if ((mode && (mode->n != 1 || lop_onnx_int(mode, 0) != 0)) ||
        (nd->n_output > 1 && nd->output[1][0] &&
         lop_onnx_value(c, nd->output[1], 0)->uses > 0))
        return lop_onnx_fail(c, nd, "only inference-mode dropout without its mask is supported");
    return add_node(c, nd, LOP_DROPOUT, &x->node, 1, &a, x->squeezed, &id);
}

static int op_identity(ctx *c, node_t *nd)
{
    static const char *const known[] = {NULL};
    value *x = lop_onnx_input(c, nd, 0);
    int st = attrs_known(c, nd, known);
    if (st == LOP_OK && !x)
        st = lop_onnx_fail(c, nd, "input 1 is missing");
    return st == LOP_OK ? alias(c, nd, x) : st;
}

/* Pad with zeros of the two spatial axes, left pending for the Conv or AveragePool
 * reading it to take, or made a pad layer by any other reader (the pads an attribute
 * before opset 11, an input since). */
static int op_pad(ctx *c, node_t *nd)
{
    static const char *const known[] = {"mode", "pads", "value", NULL};
    value *x = NULL, *pv = NULL, *fill = NULL;
    int64_t p[8] = {0};
    float zero = 0.0f;
    int st = attrs_known(c, nd, known);
    if (st == LOP_OK)   /* a pending Pad before this one adds to it: zeros on zeros */
        st = act_input_padded(c, nd, 0, 1, 1, &x);
    if (st == LOP_OK && lop_onnx_input(c, nd, 1) &&
        !(pv = lop_onnx_const(c, nd, 1, T_INT64, "pads")))
        st = LOP_EFORMAT;
    if (st == LOP_OK && lop_onnx_input(c, nd, 2) &&
        !(fill = lop_onnx_const(c, nd, 2, T_FLOAT, "constant_value")))
        st = LOP_EFORMAT;
    if (st == LOP_OK && !pv)
        st = attr_ints(c, nd, "pads", 8, p);
    if (st == LOP_OK)
        st = attr_float(c, nd, "value", 0.0f, &zero);
    if (st != LOP_OK)
        return st;
    const Onnx__AttributeProto *mode = attr_find(nd, "mode");
    if (mode && !(mode->has_s && mode->s.len == 8 && memcmp(mode->s.data, "constant", 8) == 0))
        return lop_onnx_fail(c, nd, "only mode 'constant' is supported");
    if (fill && fill->n == 1)
        lop_onnx_floats(fill, 1.0f, &zero);
    if ((fill && fill->n != 1) || zero != 0.0f || (pv && pv->n != 8))
        return lop_onnx_fail(c, nd, "only padding with zeros of the 4 axes is supported");
    for (int i = 0; pv && i < 8; i++)
        p[i] = lop_onnx_int(pv, (size_t)i);
    static const int hw[4] = {2, 3, 6, 7};   /* top, left, bottom, right */
    if (p[0] || p[1] || p[4] || p[5])
        return lop_onnx_fail(c, nd, "only padding of H and W (not N or C) is supported");
    int before[4];   /* a pending Pad's, added to */
    memcpy(before, x->pad, sizeof before);
    for (int i = 0; i < 4; i++)
        if (p[hw[i]] < 0 || p[hw[i]] > MAX_DIM - before[i])
            return lop_onnx_fail(c, nd, "pads must be in 0..%d, those of a Pad right before "
                                 "it included (no cropping)", MAX_DIM);
    if ((st = alias(c, nd, x)) != LOP_OK)
        return st;
    value *out = lop_onnx_value(c, nd->output[0], 0);
    for (int i = 0; i < 4; i++)
        out->pad[i] = before[i] + (int)p[hw[i]];
    out->pad_node = nd;
    return LOP_OK;
}

/* Shape of an activation: [batch, dims...], the batch unknown (BATCH). */
static int op_shape(ctx *c, node_t *nd)
{
    static const char *const known[] = {NULL};
    value *x = NULL;
    int shape[3], st = attrs_known(c, nd, known);
    if (st == LOP_OK)
        st = act_input(c, nd, 0, 0, &x);
    if (st != LOP_OK)
        return st;
    int n = lop_node_shape(c->g, x->node, shape);
    value *out = lop_onnx_value(c, nd->output[0], 0);
    if ((st = lop_onnx_ints_new(out, 1, x->squeezed ? 4 : (size_t)n + 1)) != LOP_OK)
        return st;
    out->ints[0] = BATCH;
    for (int i = 0; i < n; i++)
        out->ints[i + 1] = shape[i];
    if (x->squeezed)
        out->ints[2] = out->ints[3] = 1;
    return LOP_OK;
}

/* Unsqueeze of a constant scalar at axis 0 (the axes an attribute before opset 13,
 * an input since). */
static int op_unsqueeze(ctx *c, node_t *nd)
{
    static const char *const known[] = {"axes", NULL};
    value *x = lop_onnx_input(c, nd, 0), *ax = NULL;
    int64_t axis = -1;
    int st = attrs_known(c, nd, known);
    if (st == LOP_OK && lop_onnx_input(c, nd, 1) &&
        !(ax = lop_onnx_const(c, nd, 1, T_INT64, "axes")))
        st = LOP_EFORMAT;
    if (st == LOP_OK && !ax)
        st = attr_ints(c, nd, "axes", 1, &axis);
    if (st != LOP_OK)
        return st;
    if (ax && ax->n == 1)
        axis = lop_onnx_int(ax, 0);
    if (!x || x->kind != V_CONST || x->ndim != 0 || axis != 0 ||
        !lop_onnx_const(c, nd, 0, T_INT64, "data"))
        return lop_onnx_fail(c, nd, "only an integer constant scalar at axis 0 is supported");
    value *out = lop_onnx_value(c, nd->output[0], 0);
    if ((st = lop_onnx_ints_new(out, 1, 1)) == LOP_OK)
        out->ints[0] = lop_onnx_int(x, 0);
    return st;
}

typedef struct op_entry {
    const char *name;
    lop_onnx_op_fn fn;
} op_entry;

static const op_entry ops[] = {
    {"Conv", op_conv},           {"BatchNormalization", op_batchnorm},
    {"Relu", op_relu},           {"Clip", op_clip},
    {"MaxPool", op_pool},
    {"AveragePool", op_pool},    {"GlobalAveragePool", op_global_pool},
    {"ReduceMean", op_global_pool}, {"Flatten", op_flatten},
    {"Reshape", op_reshape},     {"Gemm", op_gemm},
    {"MatMul", op_matmul},       {"Add", op_merge},
    {"Concat", op_merge},        {"Gather", op_gather},
    {"Dropout", op_dropout},     {"Identity", op_identity},
    {"Shape", op_shape},         {"Unsqueeze", op_unsqueeze},
    {"Pad", op_pad},
};

lop_onnx_op_fn lop_onnx_op_find(const char *op_type)
{
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (strcmp(ops[k].name, op_type) == 0)
            return ops[k].fn;
    return NULL;
}
