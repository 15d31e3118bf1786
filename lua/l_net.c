/*
 * l_net.c - networks in Lua: the net userdata owning one engine graph, loading and
 * saving model files (.lop, or ONNX by content when loading and by extension when
 * saving), the counts recipes compare (params, FLOPs, time), running a
 * forward pass, cloning, and the printed summary table.  Building nets lives in
 * l_build.c and node handles in l_node.c; this file installs all three.
 */
#include <stdio.h>
#include <string.h>

#include "l_net.h"

lopl_net *lopl_new_net(lua_State *L)
{
    lopl_net *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->g = NULL;
    luaL_setmetatable(L, LOPL_NET);
    return u;
}

lopl_net *lopl_to_net(lua_State *L, int arg)
{
    return luaL_checkudata(L, arg, LOPL_NET);
}

lop_graph *lopl_check_net(lua_State *L, int arg)
{
    lopl_net *u = lopl_to_net(L, arg);
    if (!u->g)
        luaL_argerror(L, arg, "net is closed");
    return u->g;
}

void lopl_format_shape(char *buf, size_t size, const int *shape, int ndim)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? "x%d" : "%d", shape[i]);
}

/* Tell the collector about a graph's parameters and their gradients. */
static void account_graph(lua_State *L, const lop_graph *g)
{
    lopl_account(L, 2 * sizeof(float) * lop_graph_params(g));
}

/* lop.load(path) -> net; raises with the engine's message (which names the file). */
static int net_load(lua_State *L)
{
    const char *path = lopl_check_cstring(L, 1);
    lopl_net *u = lopl_new_net(L);
    if (lop_graph_load(path, &u->g) != LOP_OK)
        return lopl_fail(L, "lop.load");
    account_graph(L, u->g);
    return 1;
}

/* net:save(path [, {fold_batchnorm=}]): ONNX when path ends in ".onnx", else .lop. */
static int net_save(lua_State *L)
{
    static const char *const known[] = {"fold_batchnorm", NULL};
    lop_graph *g = lopl_check_net(L, 1);
    const char *path = lopl_check_cstring(L, 2);
    size_t len = strlen(path);
    int onnx = len >= 5 && strcmp(path + len - 5, ".onnx") == 0;
    lopl_check_opts(L, 3, "net:save", known);
    lop_onnx_opts o = {.fold_batchnorm = lopl_opt_bool(L, 3, "net:save", "fold_batchnorm", 0)};
    if (o.fold_batchnorm && !onnx)
        return luaL_error(L, "net:save: fold_batchnorm applies to .onnx files only");
    if ((onnx ? lop_graph_save_onnx(g, path, &o) : lop_graph_save(g, path)) != LOP_OK)
        return lopl_fail(L, "net:save");
    return 0;
}

static int net_params(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lop_graph_params(lopl_check_net(L, 1)));
    return 1;
}

static int net_flops(lua_State *L)
{
    lua_pushnumber(L, lop_graph_flops(lopl_check_net(L, 1)));
    return 1;
}

static int net_size(lua_State *L)
{
    lua_pushinteger(L, lop_graph_size(lopl_check_net(L, 1)));
    return 1;
}

static int net_nodes(lua_State *L)
{
    int n = lop_graph_size(lopl_check_net(L, 1));
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lopl_push_node(L, 1, i);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int net_node(lua_State *L)
{
    lopl_push_node(L, 1, lopl_check_node_ref(L, 1, 2));
    return 1;
}

static int net_has(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    lua_pushboolean(L, strlen(name) == len && lop_graph_find(g, name) >= 0);
    return 1;
}

static int net_input_shape(lua_State *L)
{
    lopl_push_node_shape(L, lopl_check_net(L, 1), 0);
    return 1;
}

static int net_output_shape(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    lopl_push_node_shape(L, g, lop_graph_size(g) - 1);
    return 1;
}

/* net:forward(x, {train = false}) -> a copy of the output, so later passes do not
 * change what the caller holds. */
static int net_forward(lua_State *L)
{
    static const char *const known[] = {"train", NULL};
    lop_graph *g = lopl_check_net(L, 1);
    lop_tensor *x = lopl_check_tensor(L, 2);
    lopl_check_opts(L, 3, "net:forward", known);
    int train = lopl_opt_bool(L, 3, "net:forward", "train", 0);
    if (lop_graph_forward(g, x, train) != LOP_OK)
        return luaL_error(L, "%s", lop_errmsg()); /* already says "forward: ..." */
    lopl_set_tensor(L, lopl_new_tensor(L), lop_tensor_clone(lop_graph_output(g)),
                    "net:forward");
    return 1;
}

static int net_clone(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    lopl_net *u = lopl_new_net(L);
    u->g = lop_graph_clone(g);
    if (!u->g)
        return lopl_fail(L, "net:clone");
    account_graph(L, u->g);
    return 1;
}

/* net:freeze([on = true]) -> net: the deployment setting (lop_graph_freeze): evaluation
 * passes keep the transformed weights from one pass to the next.  Training, surgery and
 * handing a parameter tensor to Lua (node:weight(), node:param()) unfreeze it. */
static int net_freeze(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    int on = 1;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TBOOLEAN);
        on = lua_toboolean(L, 2);
    }
    if (on && !lop_graph_frozen(g))   /* kept weights: up to 36/9 of a 3x3 layer's own */
        lopl_account(L, 4 * sizeof(float) * lop_graph_params(g));
    lop_graph_freeze(g, on);
    lua_settop(L, 1);
    return 1;
}

static int net_frozen(lua_State *L)
{
    lua_pushboolean(L, lop_graph_frozen(lopl_check_net(L, 1)));
    return 1;
}

/* net:time{batch = 1, reps = 20} -> fastest pass's total ms, {node name -> ms}. */
/* name -> milliseconds, one entry per node. */
static void push_node_ms(lua_State *L, lop_graph *g, const double *ms)
{
    int n = lop_graph_size(g);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, ms[i]);
        lua_setfield(L, -2, lop_node_name(g, i));
    }
}

/* net:time{batch, reps} -> forward ms, {node = ms};
 * net:time{batch, reps, train = true} -> training step ms, {node = forward ms},
 * {node = backward ms}. */
static int net_time(lua_State *L)
{
    static const char *const known[] = {"batch", "reps", "train", NULL};
    lop_graph *g = lopl_check_net(L, 1);
    lopl_check_opts(L, 2, "net:time", known);
    int batch = lopl_opt_int(L, 2, "net:time", "batch", 1, 1);
    int reps = lopl_opt_int(L, 2, "net:time", "reps", 20, 1);
    int train = lopl_opt_bool(L, 2, "net:time", "train", 0);
    int n = lop_graph_size(g);
    double *fwd = lua_newuserdatauv(L, (size_t)n * sizeof *fwd, 0);
    double *bwd = lua_newuserdatauv(L, (size_t)n * sizeof *bwd, 0), total;
    int st = train ? lop_graph_time_train(g, batch, reps, fwd, bwd, &total)
                   : lop_graph_time(g, batch, reps, fwd, &total);
    if (st != LOP_OK)
        return lopl_fail(L, "net:time");
    lua_pushnumber(L, total);
    push_node_ms(L, g, fwd);
    if (!train)
        return 2;
    push_node_ms(L, g, bwd);
    return 3;
}

static int net_close(lua_State *L)
{
    lopl_net *u = lopl_to_net(L, 1);
    lop_graph_free(u->g);
    u->g = NULL;
    return 0;
}

/* ---- the printed summary ---- */

/* 1234567 -> "1,234,567"; 0 -> "-" so empty columns stay quiet. */
static void format_count(char *buf, size_t size, size_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%zu", v);
    size_t j = 0;
    for (int i = 0; i < n && j + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[j++] = ',';
        buf[j++] = digits[i];
    }
    buf[j] = '\0';
    if (v == 0)
        snprintf(buf, size, "-");
}

/* 12345678 -> "12.35M"; 0 -> "-". */
static void format_si(char *buf, size_t size, double v)
{
    if (v == 0)
        snprintf(buf, size, "-");
    else if (v < 1e3)
        snprintf(buf, size, "%.0f", v);
    else if (v < 1e6)
        snprintf(buf, size, "%.1fK", v / 1e3);
    else if (v < 1e9)
        snprintf(buf, size, "%.2fM", v / 1e6);
    else
        snprintf(buf, size, "%.2fG", v / 1e9);
}

#define INPUTS_WIDTH 32

/* Node's input names joined by commas, cut to INPUTS_WIDTH characters. */
static void format_inputs(char *buf, size_t size, const lop_graph *g, int id)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < lop_node_ninputs(g, id) && used < size; k++)
        used += (size_t)snprintf(buf + used, size - used, k ? ",%s" : "%s",
                                 lop_node_name(g, lop_node_input(g, id, k)));
    if (strlen(buf) > INPUTS_WIDTH)
        strcpy(buf + INPUTS_WIDTH - 3, "...");
}

typedef struct row {
    char inputs[256], shape[48], params[32], flops[32];
} row;

static void format_row(row *r, const lop_graph *g, int id)
{
    int shape[3];
    format_inputs(r->inputs, sizeof r->inputs, g, id);
    lopl_format_shape(r->shape, sizeof r->shape, shape, lop_node_shape(g, id, shape));
    format_count(r->params, sizeof r->params, lop_node_params(g, id));
    format_si(r->flops, sizeof r->flops, lop_node_flops(g, id));
}

static int net_tostring(lua_State *L)
{
    lop_graph *g = lopl_to_net(L, 1)->g;
    if (!g) {
        lua_pushliteral(L, "net (closed)");
        return 1;
    }
    int n = lop_graph_size(g);
    int wname = 4, wkind = 4, winputs = 6, wshape = 6;
    row r;
    for (int i = 0; i < n; i++) {
        format_row(&r, g, i);
        int len = (int)strlen(lop_node_name(g, i));
        wname = len > wname ? len : wname;
        len = (int)strlen(lop_kind_name(lop_node_kind(g, i)));
        wkind = len > wkind ? len : wkind;
        len = (int)strlen(r.inputs);
        winputs = len > winputs ? len : winputs;
        len = (int)strlen(r.shape);
        wshape = len > wshape ? len : wshape;
    }
    double total = lop_graph_flops(g);
    char line[512];
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    snprintf(line, sizeof line, "%4s  %-*s  %-*s  %-*s  %-*s  %11s  %9s  %6s\n", "#", wname,
             "name", wkind, "kind", winputs, "inputs", wshape, "output", "params", "FLOPs",
             "%FLOPs");
    luaL_addstring(&b, line);
    for (int i = 0; i < n; i++) {
        format_row(&r, g, i);
        double share = total > 0 ? 100.0 * lop_node_flops(g, i) / total : 0.0;
        snprintf(line, sizeof line, "%4d  %-*s  %-*s  %-*s  %-*s  %11s  %9s  %6.1f\n", i + 1,
                 wname, lop_node_name(g, i), wkind, lop_kind_name(lop_node_kind(g, i)),
                 winputs, r.inputs, wshape, r.shape, r.params, r.flops, share);
        luaL_addstring(&b, line);
    }
    char params[32], flops[32];
    format_count(params, sizeof params, lop_graph_params(g));
    format_si(flops, sizeof flops, total);
    snprintf(line, sizeof line, "total: %d nodes, %s params, %s FLOPs per sample "
             "(FLOPs count a multiply-add as 2)", n, params, flops);
    luaL_addstring(&b, line);
    luaL_pushresult(&b);
    return 1;
}

void lopl_open_net(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"save", net_save},
        {"params", net_params},
        {"flops", net_flops},
        {"size", net_size},
        {"nodes", net_nodes},
        {"node", net_node},
        {"has", net_has},
        {"forward", net_forward},
        {"input_shape", net_input_shape},
        {"output_shape", net_output_shape},
        {"clone", net_clone},
        {"freeze", net_freeze},
        {"frozen", net_frozen},
        {"time", net_time},
        {"close", net_close},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__tostring", net_tostring}, {"__gc", net_close}, {"__close", net_close},
        {NULL, NULL},
    };
    static const luaL_Reg functions[] = {
        {"net", lopl_net_new}, {"load", net_load}, {NULL, NULL},
    };
    lopl_newmeta(L, LOPL_NET, methods, meta);
    luaL_getmetatable(L, LOPL_NET);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, lopl_net_builders, 0);
    luaL_setfuncs(L, lopl_net_surgery, 0);
    lua_pop(L, 2);
    lopl_open_node(L);
    lopl_open_groups(L);
    luaL_setfuncs(L, functions, 0);
}
