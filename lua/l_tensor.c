/*
 * l_tensor.c - tensors in Lua: construction from shapes or nested tables, element
 * access with 1-based indices, conversion back to tables, printing.  A tensor
 * userdata holds one reference; weights handed out by nodes share the net's storage.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "binding.h"

static lopl_tensor *check_udata(lua_State *L, int arg)
{
    return luaL_checkudata(L, arg, LOPL_TENSOR);
}

lop_tensor *lopl_check_tensor(lua_State *L, int arg)
{
    lopl_tensor *u = check_udata(L, arg);
    if (!u->t)
        luaL_argerror(L, arg, "tensor is closed");
    return u->t;
}

lopl_tensor *lopl_new_tensor(lua_State *L)
{
    lopl_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = NULL;
    luaL_setmetatable(L, LOPL_TENSOR);
    return u;
}

void lopl_set_tensor(lua_State *L, lopl_tensor *u, lop_tensor *t, const char *what)
{
    if (!t)
        lopl_fail(L, what);
    u->t = t;
    lopl_account(L, t->numel * sizeof(float));
}

/* Shape of a nested table of numbers (rectangular, at most LOP_MAX_DIMS deep). */
static int nested_shape(lua_State *L, int idx, int *shape)
{
    int ndim = 0;
    lua_pushvalue(L, idx);
    while (lua_type(L, -1) == LUA_TTABLE) {
        if (ndim == LOP_MAX_DIMS)
            luaL_error(L, "tensor: more than %d nested levels", LOP_MAX_DIMS);
        lua_Integer len = luaL_len(L, -1);
        if (len < 1 || len > 0x7fffffff)
            luaL_error(L, "tensor: empty or oversized table at depth %d", ndim + 1);
        shape[ndim++] = (int)len;
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "tensor: leaves must be numbers, found %s", luaL_typename(L, -1));
    lua_pop(L, 1);
    return ndim;
}

/* Copy nested table at idx (of shape[depth..]) into data; checks every level. */
static float *fill_nested(lua_State *L, int idx, int depth, int ndim, const int *shape,
                          float *data)
{
    if (depth == ndim) {
        int ok;
        lua_Number v = lua_tonumberx(L, idx, &ok);
        if (!ok)
            luaL_error(L, "tensor: expected a number at depth %d, found %s", depth,
                       luaL_typename(L, idx));
        *data = (float)v;
        return data + 1;
    }
    if (lua_type(L, idx) != LUA_TTABLE || luaL_len(L, idx) != shape[depth])
        luaL_error(L, "tensor: ragged table (depth %d should hold %d entries)", depth + 1,
                   shape[depth]);
    for (int i = 1; i <= shape[depth]; i++) {
        lua_geti(L, idx, i);
        data = fill_nested(L, lua_gettop(L), depth + 1, ndim, shape, data);
        lua_pop(L, 1);
    }
    return data;
}

/* lop.tensor(d1, d2, ...) -> zeros of that shape; lop.tensor{...} -> from values. */
static int tensor_new(lua_State *L)
{
    int shape[LOP_MAX_DIMS];
    int ndim;
    if (lua_type(L, 1) == LUA_TTABLE) {
        ndim = nested_shape(L, 1, shape);
        if (ndim == 0)
            return luaL_argerror(L, 1, "expected a (nested) table of numbers");
        lopl_tensor *u = lopl_new_tensor(L);
        lopl_set_tensor(L, u, lop_tensor_new(ndim, shape), "tensor");
        fill_nested(L, 1, 0, ndim, shape, u->t->data);
        return 1;
    }
    ndim = lua_gettop(L);
    if (ndim < 1 || ndim > LOP_MAX_DIMS)
        return luaL_error(L, "tensor: give 1..%d sizes or a table of values", LOP_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        lua_Integer d = luaL_checkinteger(L, i + 1);
        if (d < 1 || d > 0x7fffffff)
            return luaL_argerror(L, i + 1, "sizes must be positive");
        shape[i] = (int)d;
    }
    if (lop_shape_numel(ndim, shape) > ((size_t)1 << 31))
        return luaL_error(L, "tensor: more than 2^31 elements");
    lopl_set_tensor(L, lopl_new_tensor(L), lop_tensor_new(ndim, shape), "tensor");
    return 1;
}

static int tensor_shape(lua_State *L)
{
    lop_tensor *t = lopl_check_tensor(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int tensor_numel(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lopl_check_tensor(L, 1)->numel);
    return 1;
}

static const float *push_nested(lua_State *L, const lop_tensor *t, int depth, const float *p)
{
    if (depth == t->ndim) {
        lua_pushnumber(L, *p);
        return p + 1;
    }
    luaL_checkstack(L, 4, "tensor too deep");
    lua_createtable(L, t->shape[depth], 0);
    for (int i = 1; i <= t->shape[depth]; i++) {
        p = push_nested(L, t, depth + 1, p);
        lua_rawseti(L, -2, i);
    }
    return p;
}

static int tensor_totable(lua_State *L)
{
    lop_tensor *t = lopl_check_tensor(L, 1);
    if (t->numel > ((size_t)1 << 26))
        return luaL_error(L, "totable: %zu elements is too many for a Lua table", t->numel);
    push_nested(L, t, 0, t->data);
    return 1;
}

static int tensor_clone(lua_State *L)
{
    lop_tensor *t = lopl_check_tensor(L, 1);
    lopl_set_tensor(L, lopl_new_tensor(L), lop_tensor_clone(t), "clone");
    return 1;
}

/* Flat offset of the 1-based indices at args first..first+ndim-1. */
static size_t offset_of(lua_State *L, const lop_tensor *t, int first)
{
    size_t off = 0;
    if (lua_gettop(L) - first + 1 < t->ndim)
        luaL_error(L, "tensor of rank %d needs %d indices", t->ndim, t->ndim);
    for (int i = 0; i < t->ndim; i++) {
        lua_Integer k = luaL_checkinteger(L, first + i);
        if (k < 1 || k > t->shape[i])
            luaL_error(L, "index %d is %d, outside 1..%d", i + 1, (int)k, t->shape[i]);
        off = off * (size_t)t->shape[i] + (size_t)(k - 1);
    }
    return off;
}

static int tensor_get(lua_State *L)
{
    lop_tensor *t = lopl_check_tensor(L, 1);
    lua_pushnumber(L, t->data[offset_of(L, t, 2)]);
    return 1;
}

/* t:set(value, i, j, ...) */
static int tensor_set(lua_State *L)
{
    lop_tensor *t = lopl_check_tensor(L, 1);
    float v = (float)luaL_checknumber(L, 2);
    t->data[offset_of(L, t, 3)] = v;
    return 0;
}

static int tensor_fill(lua_State *L)
{
    lop_tensor *t = lopl_check_tensor(L, 1);
    lop_tensor_fill(t, (float)luaL_checknumber(L, 2));
    lua_settop(L, 1);
    return 1;
}

/* t:copy(src): same shape, values copied in (how weights are replaced). */
static int tensor_copy(lua_State *L)
{
    lop_tensor *t = lopl_check_tensor(L, 1), *s = lopl_check_tensor(L, 2);
    if (!lop_tensor_same_shape(t, s))
        return luaL_argerror(L, 2, "shape differs from the destination's");
    memmove(t->data, s->data, t->numel * sizeof(float));
    lua_settop(L, 1);
    return 1;
}

static int tensor_sum(lua_State *L)
{
    lop_tensor *t = lopl_check_tensor(L, 1);
    double s = 0;
    for (size_t i = 0; i < t->numel; i++)
        s += t->data[i];
    lua_pushnumber(L, s);
    return 1;
}

/* t:max() -> largest value and its 1-based flat index. */
static int tensor_max(lua_State *L)
{
    lop_tensor *t = lopl_check_tensor(L, 1);
    size_t best = 0;
    for (size_t i = 1; i < t->numel; i++)
        if (t->data[i] > t->data[best])
            best = i;
    lua_pushnumber(L, t->data[best]);
    lua_pushinteger(L, (lua_Integer)best + 1);
    return 2;
}

static int tensor_tostring(lua_State *L)
{
    lopl_tensor *u = check_udata(L, 1);
    if (!u->t) {
        lua_pushliteral(L, "tensor (closed)");
        return 1;
    }
    const lop_tensor *t = u->t;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "tensor [");
    for (int i = 0; i < t->ndim; i++) {
        lua_pushfstring(L, i ? "x%d" : "%d", t->shape[i]);
        luaL_addvalue(&b);
    }
    luaL_addstring(&b, "] {");
    size_t show = t->numel < 6 ? t->numel : 6;
    for (size_t i = 0; i < show; i++) {
        char num[32];
        snprintf(num, sizeof num, i ? ", %.4g" : "%.4g", (double)t->data[i]);
        luaL_addstring(&b, num);
    }
    luaL_addstring(&b, t->numel > show ? ", ...}" : "}");
    luaL_pushresult(&b);
    return 1;
}

static int tensor_close(lua_State *L)
{
    lopl_tensor *u = check_udata(L, 1);
    lop_tensor_release(u->t);
    u->t = NULL;
    return 0;
}

void lopl_open_tensor(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"shape", tensor_shape}, {"numel", tensor_numel}, {"totable", tensor_totable},
        {"clone", tensor_clone}, {"get", tensor_get},     {"set", tensor_set},
        {"fill", tensor_fill},   {"copy", tensor_copy},   {"sum", tensor_sum},
        {"max", tensor_max},     {"close", tensor_close}, {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__tostring", tensor_tostring}, {"__gc", tensor_close}, {"__close", tensor_close},
        {"__len", tensor_numel},         {NULL, NULL},
    };
    lopl_newmeta(L, LOPL_TENSOR, methods, meta);
    lua_pushcfunction(L, tensor_new);
    lua_setfield(L, -2, "tensor");
}
