/*
 * l_node.c - node handles: a light reference to one node of a net.  The net userdata
 * is the handle's first user value (so the net outlives its handles) and the node's
 * name the second (for messages once the id means nothing).  Every use checks the
 * graph's generation, so a handle that surgery made stale raises instead of reading
 * whatever node now sits at its old id.
 */
#include <string.h>

#include "l_net.h"

enum { HANDLE_OK, HANDLE_CLOSED, HANDLE_STALE };

/* State of the handle at arg, its graph and name (kept alive by the handle). */
static int handle_state(lua_State *L, int arg, lop_graph **gp, const char **name)
{
    lopl_node *h = luaL_checkudata(L, arg, LOPL_NODE);
    lua_getiuservalue(L, arg, 1);
    lop_graph *g = lopl_to_net(L, -1)->g;
    lua_getiuservalue(L, arg, 2);
    *name = lua_tostring(L, -1);
    lua_pop(L, 2); /* both stay referenced by the handle's user values */
    *gp = g;
    if (!g)
        return HANDLE_CLOSED;
    /* the name check backs up the generation for anything that forgets to bump it */
    if (h->generation != lop_graph_generation(g) || h->id >= lop_graph_size(g) ||
        strcmp(lop_node_name(g, h->id), *name) != 0)
        return HANDLE_STALE;
    return HANDLE_OK;
}

/* The node id of the handle at arg and its graph; raises on a closed net or a stale
 * handle. */
static int check_handle(lua_State *L, int arg, lop_graph **gp)
{
    const char *name;
    int st = handle_state(L, arg, gp, &name);
    if (st == HANDLE_CLOSED)
        luaL_error(L, "node '%s': net is closed", name);
    if (st == HANDLE_STALE)
        luaL_error(L, "stale node handle for '%s': the network was changed by surgery; "
                   "get it again with net:node('%s')", name, name);
    return ((lopl_node *)lua_touserdata(L, arg))->id;
}

int lopl_check_node_ref(lua_State *L, int net_arg, int arg)
{
    net_arg = lua_absindex(L, net_arg);
    arg = lua_absindex(L, arg);
    lop_graph *g = lopl_check_net(L, net_arg);
    if (lua_type(L, arg) == LUA_TSTRING) {
        size_t len;
        const char *name = lua_tolstring(L, arg, &len);
        int id = strlen(name) == len ? lop_graph_find(g, name) : -1;
        if (id < 0)
            luaL_error(L, "no node named '%s'", name);
        return id;
    }
    if (!luaL_testudata(L, arg, LOPL_NODE))
        luaL_typeerror(L, arg, "node name or handle");
    lop_graph *hg;
    int id = check_handle(L, arg, &hg);
    lua_getiuservalue(L, arg, 1);
    int same = lua_rawequal(L, -1, net_arg);
    lua_pop(L, 1);
    if (!same)
        luaL_argerror(L, arg, "this node handle belongs to another net");
    return id;
}

void lopl_push_node(lua_State *L, int net_arg, int id)
{
    net_arg = lua_absindex(L, net_arg);
    lop_graph *g = lopl_check_net(L, net_arg);
    lopl_node *h = lua_newuserdatauv(L, sizeof *h, 2);
    h->id = id;
    h->generation = lop_graph_generation(g);
    luaL_setmetatable(L, LOPL_NODE);
    lua_pushvalue(L, net_arg);
    lua_setiuservalue(L, -2, 1);
    lua_pushstring(L, lop_node_name(g, id));
    lua_setiuservalue(L, -2, 2);
}

/* Push t as a tensor sharing the net's storage, or nil. */
static int push_shared(lua_State *L, lop_tensor *t, const char *what)
{
    if (!t) {
        lua_pushnil(L);
        return 1;
    }
    lopl_tensor *u = lopl_new_tensor(L);
    lop_tensor_retain(t);
    lopl_set_tensor(L, u, t, what);
    return 1;
}

static int push_param_named(lua_State *L, const char *pname)
{
    lop_graph *g;
    int id = check_handle(L, 1, &g);
    int k = lop_node_find_param(g, id, pname);
    lop_graph_freeze(g, 0);   /* the tensor handed out may be written */
    return push_shared(L, k < 0 ? NULL : lop_node_param(g, id, k), pname);
}

static int node_weight(lua_State *L) { return push_param_named(L, "weight"); }
static int node_bias(lua_State *L) { return push_param_named(L, "bias"); }

/* Index of the parameter named at arg; an unknown name raises, listing the node's. */
static int check_param(lua_State *L, lop_graph *g, int id, int arg)
{
    size_t len;
    const char *pname = luaL_checklstring(L, arg, &len);
    int k = strlen(pname) == len ? lop_node_find_param(g, id, pname) : -1;
    if (k >= 0)
        return k;
    int n = lop_node_nparams(g, id);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, n ? "it has " : "it has none");
    for (int i = 0; i < n; i++) {
        if (i)
            luaL_addstring(&b, ", ");
        luaL_addstring(&b, lop_node_param_name(g, id, i));
    }
    luaL_pushresult(&b);
    return luaL_error(L, "node '%s' (%s) has no parameter '%s' (%s)", lop_node_name(g, id),
                      lop_kind_name(lop_node_kind(g, id)), pname, lua_tostring(L, -1));
}

static int node_param(lua_State *L)
{
    lop_graph *g;
    int id = check_handle(L, 1, &g);
    int k = check_param(L, g, id, 2);
    lop_graph_freeze(g, 0);   /* the tensor handed out may be written */
    return push_shared(L, lop_node_param(g, id, k), "param");
}

/* node:grad(name): the accumulated gradient, or nil for a buffer without one. */
static int node_grad(lua_State *L)
{
    lop_graph *g;
    int id = check_handle(L, 1, &g);
    int k = check_param(L, g, id, 2);
    return push_shared(L, lop_node_grad(g, id, k), "grad");
}

static int node_params(lua_State *L)
{
    lop_graph *g;
    int id = check_handle(L, 1, &g);
    lua_pushinteger(L, (lua_Integer)lop_node_params(g, id));
    return 1;
}

static int node_flops(lua_State *L)
{
    lop_graph *g;
    int id = check_handle(L, 1, &g);
    lua_pushnumber(L, lop_node_flops(g, id));
    return 1;
}

static void push_ints(lua_State *L, const int *v, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

void lopl_push_node_shape(lua_State *L, const lop_graph *g, int id)
{
    int shape[3];
    push_ints(L, shape, lop_node_shape(g, id, shape));
}

static int node_shape(lua_State *L)
{
    lop_graph *g;
    int id = check_handle(L, 1, &g);
    lopl_push_node_shape(L, g, id);
    return 1;
}

static int node_inputs(lua_State *L)
{
    lop_graph *g;
    int id = check_handle(L, 1, &g);
    int n = lop_node_ninputs(g, id);
    lua_createtable(L, n, 0);
    for (int k = 0; k < n; k++) {
        lua_pushstring(L, lop_node_name(g, lop_node_input(g, id, k)));
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

static void set_pair(lua_State *L, const char *key, int h, int w)
{
    int v[2] = {h, w};
    push_ints(L, v, 2);
    lua_setfield(L, -2, key);
}

static void set_number(lua_State *L, const char *key, lua_Number v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

static void set_int(lua_State *L, const char *key, int v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

static void set_bool(lua_State *L, const char *key, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, key);
}

/* node:attrs(): the kind's attributes under the builder's option names, so they can
 * be passed back to a builder. */
static int node_attrs(lua_State *L)
{
    lop_graph *g;
    int id = check_handle(L, 1, &g);
    const lop_attrs *a = lop_node_attrs(g, id);
    lua_newtable(L);
    switch (lop_node_kind(g, id)) {
    case LOP_INPUT:
        push_ints(L, a->in_shape, a->in_ndim);
        lua_setfield(L, -2, "input");
        break;
    case LOP_CONV2D:
        set_int(L, "groups", a->groups);
        set_pair(L, "stride", a->stride_h, a->stride_w);
        set_pair(L, "pad", a->pad_h, a->pad_w);
        /* fall through */
    case LOP_LINEAR:
        set_int(L, "out", a->out_channels);
        set_bool(L, "bias", a->bias);
        if (lop_node_kind(g, id) == LOP_CONV2D)
            set_pair(L, "kernel", a->kernel_h, a->kernel_w);
        break;
    case LOP_AVGPOOL:
        set_bool(L, "exclude_pad", a->exclude_pad);
        /* fall through */
    case LOP_MAXPOOL:
        set_pair(L, "kernel", a->kernel_h, a->kernel_w);
        set_pair(L, "stride", a->stride_h ? a->stride_h : a->kernel_h,
                 a->stride_w ? a->stride_w : a->kernel_w);
        set_pair(L, "pad", a->pad_h, a->pad_w);
        set_bool(L, "ceil_mode", a->ceil_mode);
        break;
    case LOP_PAD:
        set_int(L, "top", a->pad_h);
        set_int(L, "bottom", a->pad_bottom);
        set_int(L, "left", a->pad_w);
        set_int(L, "right", a->pad_right);
        break;
    case LOP_BATCHNORM:
        set_number(L, "eps", a->eps);
        set_number(L, "momentum", a->momentum);
        break;
    case LOP_DROPOUT:
        set_number(L, "p", a->p);
        break;
    case LOP_PICK:
        set_int(L, "channels", a->out_channels);
        break;
    default:
        break;
    }
    return 1;
}

/* Fields .name, .kind and .id (1-based) come before the methods. */
static int node_index(lua_State *L)
{
    const char *key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    int field = strcmp(key, "name") == 0 ? 1 : strcmp(key, "kind") == 0 ? 2
              : strcmp(key, "id") == 0   ? 3 : 0;
    if (!field) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(1));
        return 1;
    }
    lop_graph *g;
    int id = check_handle(L, 1, &g);
    if (field == 1)
        lua_pushstring(L, lop_node_name(g, id));
    else if (field == 2)
        lua_pushstring(L, lop_kind_name(lop_node_kind(g, id)));
    else
        lua_pushinteger(L, id + 1);
    return 1;
}

/* Two handles are equal when they name the same node of the same net. */
static int node_eq(lua_State *L)
{
    lopl_node *a = luaL_testudata(L, 1, LOPL_NODE), *b = luaL_testudata(L, 2, LOPL_NODE);
    if (!a || !b || a->id != b->id || a->generation != b->generation) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_getiuservalue(L, 1, 1);
    lua_getiuservalue(L, 2, 1);
    lua_pushboolean(L, lua_rawequal(L, -1, -2));
    return 1;
}

/* "node conv1 (conv2d) 32x32x32"; never raises, so a stale handle still prints. */
static int node_tostring(lua_State *L)
{
    lop_graph *g;
    const char *name;
    int st = handle_state(L, 1, &g, &name);
    if (st != HANDLE_OK) {
        lua_pushfstring(L, "node %s (%s)", name, st == HANDLE_CLOSED ? "net closed" : "stale");
        return 1;
    }
    int id = ((lopl_node *)lua_touserdata(L, 1))->id, shape[3];
    char dims[48];
    lopl_format_shape(dims, sizeof dims, shape, lop_node_shape(g, id, shape));
    lua_pushfstring(L, "node %s (%s) %s", name, lop_kind_name(lop_node_kind(g, id)), dims);
    return 1;
}

void lopl_open_node(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"weight", node_weight}, {"bias", node_bias},     {"param", node_param},
        {"grad", node_grad},     {"params", node_params}, {"flops", node_flops},
        {"shape", node_shape},   {"inputs", node_inputs}, {"attrs", node_attrs},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__tostring", node_tostring}, {"__eq", node_eq}, {NULL, NULL},
    };
    lopl_newmeta(L, LOPL_NODE, methods, meta);
    /* replace __index = methods by a function that serves the fields first */
    luaL_getmetatable(L, LOPL_NODE);
    lua_getfield(L, -1, "__index");
    lua_pushcclosure(L, node_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
