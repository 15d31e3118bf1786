/*
 * l_build.c - building networks from Lua: lop.net makes a net holding its input node,
 * and each builder method (net:conv2d, net:relu, ...) appends one node and returns its
 * name.  Option tables are checked strictly - an unknown key is an error that names it
 * - so a typo in a model builder fails where it is made instead of quietly becoming a
 * default.  Relations between values (kernel fits the input, groups divide channels)
 * are left to the engine, whose messages name the node.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "l_net.h"

/* An (h, w) option given as one integer for both or as {h, w}. */
static void opt_pair(lua_State *L, int arg, const char *what, const char *key, int def,
                     int min, int *h, int *w)
{
    int t = lopl_push_opt(L, arg, key);
    if (t == LUA_TNIL) {
        *h = *w = def;
    } else if (t == LUA_TNUMBER) {
        *h = *w = lopl_to_int(L, -1, what, key, min);
    } else if (t == LUA_TTABLE && luaL_len(L, -1) == 2) {
        lua_geti(L, -1, 1);
        *h = lopl_to_int(L, -1, what, key, min);
        lua_geti(L, -2, 2);
        *w = lopl_to_int(L, -1, what, key, min);
        lua_pop(L, 2);
    } else {
        luaL_error(L, "%s: option '%s' must be an integer or a pair {h, w}", what, key);
    }
    lua_pop(L, 1);
}

/* Common start of a builder net:<kind>(name, ...): checks the net and the name and
 * writes "<kind> '<name>'" into what, for messages. */
static lop_graph *begin(lua_State *L, lop_kind kind, char *what, size_t size)
{
    lop_graph *g = lopl_check_net(L, 1);
    const char *name = lopl_check_cstring(L, 2);
    snprintf(what, size, "%s '%.64s'", lop_kind_name(kind), name);
    return g;
}

/* Append the node; returns its name (argument 2) to Lua. */
static int finish(lua_State *L, lop_graph *g, lop_kind kind, const int *inputs, int ninputs,
                  const lop_attrs *a)
{
    int id;
    if (lop_graph_add(g, kind, lua_tostring(L, 2), inputs, ninputs, a, &id) != LOP_OK)
        return luaL_error(L, "net:%s: %s", lop_kind_name(kind), lop_errmsg());
    lopl_account(L, 2 * sizeof(float) * lop_node_params(g, id));
    lua_pushvalue(L, 2);
    return 1;
}

static const char *const no_options[] = {NULL};

/* net:<kind>(name, input) for kinds without options. */
static int build_plain(lua_State *L, lop_kind kind)
{
    char what[96];
    lop_graph *g = begin(L, kind, what, sizeof what);
    int in = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, what, no_options);
    lop_attrs a = lop_attrs_default();
    return finish(L, g, kind, &in, 1, &a);
}

static int build_relu(lua_State *L) { return build_plain(L, LOP_RELU); }
static int build_relu6(lua_State *L) { return build_plain(L, LOP_RELU6); }
static int build_gap(lua_State *L) { return build_plain(L, LOP_GLOBAL_AVGPOOL); }
static int build_flatten(lua_State *L) { return build_plain(L, LOP_FLATTEN); }

static int build_conv2d(lua_State *L)
{
    static const char *const known[] = {"out", "kernel", "stride", "pad", "groups", "bias",
                                        NULL};
    char what[96];
    lop_graph *g = begin(L, LOP_CONV2D, what, sizeof what);
    int in = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, what, known);
    lop_attrs a = lop_attrs_default();
    a.out_channels = lopl_opt_required_int(L, 4, what, "out", 1);
    opt_pair(L, 4, what, "kernel", 3, 1, &a.kernel_h, &a.kernel_w);
    opt_pair(L, 4, what, "stride", 1, 1, &a.stride_h, &a.stride_w);
    opt_pair(L, 4, what, "pad", 0, 0, &a.pad_h, &a.pad_w);
    a.groups = lopl_opt_int(L, 4, what, "groups", 1, 1);
    a.bias = lopl_opt_bool(L, 4, what, "bias", 1);
    return finish(L, g, LOP_CONV2D, &in, 1, &a);
}

static int build_batchnorm(lua_State *L)
{
    static const char *const known[] = {"eps", "momentum", NULL};
    char what[96];
    lop_graph *g = begin(L, LOP_BATCHNORM, what, sizeof what);
    int in = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, what, known);
    lop_attrs a = lop_attrs_default();
    a.eps = (float)lopl_opt_number(L, 4, what, "eps", a.eps, 0, 1, 1, "in (0, 1]");
    a.momentum = (float)lopl_opt_number(L, 4, what, "momentum", a.momentum, 0, 0, 1,
                                        "in [0, 1]");
    return finish(L, g, LOP_BATCHNORM, &in, 1, &a);
}

/* maxpool and avgpool; only an average can leave padding out of its divisor. */
static int build_pool(lua_State *L, lop_kind kind)
{
    static const char *const max_known[] = {"kernel", "stride", "pad", "ceil_mode", NULL};
    static const char *const avg_known[] = {"kernel", "stride", "pad", "ceil_mode",
                                            "exclude_pad", NULL};
    char what[96];
    lop_graph *g = begin(L, kind, what, sizeof what);
    int in = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, what, kind == LOP_AVGPOOL ? avg_known : max_known);
    lop_attrs a = lop_attrs_default();
    if (lopl_push_opt(L, 4, "kernel") == LUA_TNIL)
        luaL_error(L, "%s: option 'kernel' is required", what);
    lua_pop(L, 1);
    opt_pair(L, 4, what, "kernel", 0, 1, &a.kernel_h, &a.kernel_w);
    /* the stride defaults to the kernel, per axis */
    opt_pair(L, 4, what, "stride", 0, 1, &a.stride_h, &a.stride_w);
    if (a.stride_h == 0) {
        a.stride_h = a.kernel_h;
        a.stride_w = a.kernel_w;
    }
    opt_pair(L, 4, what, "pad", 0, 0, &a.pad_h, &a.pad_w);
    a.ceil_mode = lopl_opt_bool(L, 4, what, "ceil_mode", 0);
    a.exclude_pad = lopl_opt_bool(L, 4, what, "exclude_pad", 0);
    return finish(L, g, kind, &in, 1, &a);
}

static int build_maxpool(lua_State *L) { return build_pool(L, LOP_MAXPOOL); }
static int build_avgpool(lua_State *L) { return build_pool(L, LOP_AVGPOOL); }

/* net:pad(name, input, {top=0, bottom=0, left=0, right=0}): zeros around each plane. */
static int build_pad(lua_State *L)
{
    static const char *const known[] = {"top", "bottom", "left", "right", NULL};
    char what[96];
    lop_graph *g = begin(L, LOP_PAD, what, sizeof what);
    int in = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, what, known);
    lop_attrs a = lop_attrs_default();
    a.pad_h = lopl_opt_int(L, 4, what, "top", 0, 0);
    a.pad_bottom = lopl_opt_int(L, 4, what, "bottom", 0, 0);
    a.pad_w = lopl_opt_int(L, 4, what, "left", 0, 0);
    a.pad_right = lopl_opt_int(L, 4, what, "right", 0, 0);
    return finish(L, g, LOP_PAD, &in, 1, &a);
}

static int build_linear(lua_State *L)
{
    static const char *const known[] = {"out", "bias", NULL};
    char what[96];
    lop_graph *g = begin(L, LOP_LINEAR, what, sizeof what);
    int in = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, what, known);
    lop_attrs a = lop_attrs_default();
    a.out_channels = lopl_opt_required_int(L, 4, what, "out", 1);
    a.bias = lopl_opt_bool(L, 4, what, "bias", 1);
    return finish(L, g, LOP_LINEAR, &in, 1, &a);
}

static int build_dropout(lua_State *L)
{
    static const char *const known[] = {"p", NULL};
    char what[96];
    lop_graph *g = begin(L, LOP_DROPOUT, what, sizeof what);
    int in = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, what, known);
    lop_attrs a = lop_attrs_default();
    a.p = (float)lopl_opt_number(L, 4, what, "p", a.p, 0, 0, 0.999999, "in [0, 1)");
    return finish(L, g, LOP_DROPOUT, &in, 1, &a);
}

/* net:pick(name, input, {channels = k}): the first k channels (the index is the
 * node's "index" parameter, 0-based channel numbers). */
static int build_pick(lua_State *L)
{
    static const char *const known[] = {"channels", NULL};
    char what[96];
    lop_graph *g = begin(L, LOP_PICK, what, sizeof what);
    int in = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, what, known);
    lop_attrs a = lop_attrs_default();
    a.out_channels = lopl_opt_required_int(L, 4, what, "channels", 1);
    return finish(L, g, LOP_PICK, &in, 1, &a);
}

/* net:add(name, {a, b, ...}) and net:concat: the ids go in a userdata box, so an
 * error while reading the list leaks nothing. */
static int build_merge(lua_State *L, lop_kind kind)
{
    char what[96];
    lop_graph *g = begin(L, kind, what, sizeof what);
    luaL_checktype(L, 3, LUA_TTABLE);
    lopl_check_opts(L, 4, what, no_options);
    lua_Integer n = luaL_len(L, 3);
    if (n < 2 || n > 65536)
        return luaL_error(L, "%s: needs a list of 2 to 65536 inputs, got %I", what, n);
    int *ids = lua_newuserdatauv(L, (size_t)n * sizeof *ids, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_geti(L, 3, i);
        if (t != LUA_TSTRING && !luaL_testudata(L, -1, LOPL_NODE))
            return luaL_error(L, "%s: input %I must be a node name or handle, got %s", what,
                              i, luaL_typename(L, -1));
        ids[i - 1] = lopl_check_node_ref(L, 1, -1);
        lua_pop(L, 1);
    }
    lop_attrs a = lop_attrs_default();
    return finish(L, g, kind, ids, (int)n, &a);
}

static int build_add(lua_State *L) { return build_merge(L, LOP_ADD); }
static int build_concat(lua_State *L) { return build_merge(L, LOP_CONCAT); }

const luaL_Reg lopl_net_builders[] = {
    {"conv2d", build_conv2d},   {"batchnorm", build_batchnorm},
    {"relu", build_relu},       {"maxpool", build_maxpool},
    {"avgpool", build_avgpool}, {"global_avgpool", build_gap},
    {"flatten", build_flatten}, {"linear", build_linear},
    {"add", build_add},         {"concat", build_concat},
    {"dropout", build_dropout}, {"pick", build_pick},
    {"relu6", build_relu6},     {"pad", build_pad},         {NULL, NULL},
};

/* lop.net{input = {C, H, W} or {F}, seed = 1, name = "input"} */
int lopl_net_new(lua_State *L)
{
    static const char *const known[] = {"input", "seed", "name", NULL};
    const char *what = "lop.net";
    luaL_checktype(L, 1, LUA_TTABLE);
    lopl_check_opts(L, 1, what, known);
    int dims[3] = {0, 0, 0};
    lua_Integer rank = lua_getfield(L, 1, "input") == LUA_TTABLE ? luaL_len(L, -1) : 0;
    if (rank != 1 && rank != 3)
        return luaL_error(L, "%s: option 'input' must be the per-sample shape {C, H, W} or {F}",
                          what);
    for (int i = 0; i < rank; i++) {
        lua_geti(L, -1, i + 1);
        dims[i] = lopl_to_int(L, -1, what, "input", 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_Integer seed = 1;
    if (lua_getfield(L, 1, "seed") != LUA_TNIL) {
        int isint = 0;
        seed = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
        if (!isint)
            return luaL_error(L, "%s: option 'seed' must be an integer", what);
    }
    lua_pop(L, 1);
    const char *name = "input";
    if (lua_getfield(L, 1, "name") != LUA_TNIL) {
        size_t len;
        name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (!name || strlen(name) != len)
            return luaL_error(L, "%s: option 'name' must be a string without zero bytes",
                              what);
    }
    lopl_net *u = lopl_new_net(L);
    u->g = lop_graph_new((uint64_t)seed);
    if (!u->g)
        return lopl_fail(L, what);
    lop_attrs a = lop_attrs_input(dims[0], dims[1], dims[2]);
    if (lop_graph_add(u->g, LOP_INPUT, name, NULL, 0, &a, NULL) != LOP_OK)
        return lopl_fail(L, what);
    return 1;
}
