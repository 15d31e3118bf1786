/*
 * l_options.c - the argument checks every binding file shares: `{key = value}` option
 * tables whose unknown keys are errors (a typo must not silently become a default),
 * typed option getters, and strict string arguments for paths and names.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "binding.h"

const char *lopl_check_cstring(lua_State *L, int arg)
{
    /* strictly a string: a number here is a mistake, not a name */
    luaL_checktype(L, arg, LUA_TSTRING);
    size_t len;
    const char *s = lua_tolstring(L, arg, &len);
    if (strlen(s) != len)
        luaL_argerror(L, arg, "string contains a zero byte");
    return s;
}

int lopl_check_opts(lua_State *L, int arg, const char *what, const char *const *known)
{
    if (lua_isnoneornil(L, arg))
        return 0;
    luaL_checktype(L, arg, LUA_TTABLE);
    arg = lua_absindex(L, arg);
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "%s: option keys must be names, got a %s key", what,
                       luaL_typename(L, -2));
        const char *key = lua_tostring(L, -2);
        int i = 0;
        while (known[i] && strcmp(key, known[i]) != 0)
            i++;
        if (!known[i]) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (i = 0; known[i]; i++) {
                luaL_addstring(&b, i ? ", " : "options are: ");
                luaL_addstring(&b, known[i]);
            }
            if (i == 0)
                luaL_addstring(&b, "it takes no options");
            luaL_pushresult(&b);
            luaL_error(L, "%s: unknown option '%s' (%s)", what, key, lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* Push options[key] of the table at arg, or nil when there is no table; its type. */
int lopl_push_opt(lua_State *L, int arg, const char *key)
{
    if (lua_type(L, arg) != LUA_TTABLE) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, arg, key);
}

/* The integer at idx, in [min, INT_MAX]; `key` names it in the message. */
int lopl_to_int(lua_State *L, int idx, const char *what, const char *key, int min)
{
    int isint = 0;
    lua_Integer v = lua_type(L, idx) == LUA_TNUMBER ? lua_tointegerx(L, idx, &isint) : 0;
    if (!isint)
        luaL_error(L, "%s: option '%s' must be an integer, got %s", what, key,
                   lua_type(L, idx) == LUA_TNUMBER ? luaL_tolstring(L, idx, NULL)
                                                   : luaL_typename(L, idx));
    if (v < min || v > INT_MAX)
        luaL_error(L, "%s: option '%s' must be an integer >= %d, got %I", what, key, min, v);
    return (int)v;
}

int lopl_opt_int(lua_State *L, int arg, const char *what, const char *key, int def, int min)
{
    int v = lopl_push_opt(L, arg, key) == LUA_TNIL ? def : lopl_to_int(L, -1, what, key, min);
    lua_pop(L, 1);
    return v;
}

int lopl_opt_required_int(lua_State *L, int arg, const char *what, const char *key, int min)
{
    if (lopl_push_opt(L, arg, key) == LUA_TNIL)
        luaL_error(L, "%s: option '%s' is required", what, key);
    int v = lopl_to_int(L, -1, what, key, min);
    lua_pop(L, 1);
    return v;
}

int lopl_opt_bool(lua_State *L, int arg, const char *what, const char *key, int def)
{
    int t = lopl_push_opt(L, arg, key);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        luaL_error(L, "%s: option '%s' must be true or false, got %s", what, key,
                   luaL_typename(L, -1));
    int v = t == LUA_TNIL ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Option `key` of the table at arg: a finite number with min <= v <= max, or v > min
 * when min_open; `range` describes that for the message. */
double lopl_opt_number(lua_State *L, int arg, const char *fn, const char *key, double def,
                       double min, int min_open, double max, const char *range)
{
    if (lopl_push_opt(L, arg, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    double v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !isfinite(v) || v < min || (min_open && v == min) ||
        v > max)
        luaL_error(L, "%s: option '%s' must be a number %s, got %s", fn, key, range,
                   luaL_tolstring(L, -1, NULL));
    lua_pop(L, 1);
    return v;
}
