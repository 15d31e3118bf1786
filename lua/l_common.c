/*
 * l_common.c - the helpers every binding file uses and none owns: raising an engine
 * error, installing a metatable, telling the collector about C memory, reading a keep
 * list, and the interrupt flag.  They live apart from luaopen_lopper (l_module.c) so
 * that the type files depend on this one file instead of on each other.
 */
#include <stdlib.h>
#include <string.h>

#include "binding.h"

volatile sig_atomic_t lopl_interrupt;

int lopl_fail(lua_State *L, const char *what)
{
    /* The engine names its operation ("sample: need images >= 1"); the binding's name
     * for it (lop.sample) replaces that, so a message has one prefix. */
    const char *msg = lop_errmsg(), *op = what;
    for (const char *p = what; *p; p++)
        if (*p == '.' || *p == ':')
            op = p + 1;
    size_t len = strlen(op);
    if (len > 0 && strncmp(msg, op, len) == 0 && msg[len] == ':' && msg[len + 1] == ' ')
        msg += len + 2;
    return luaL_error(L, "%s: %s", what, msg);
}

void lopl_newmeta(lua_State *L, const char *name, const luaL_Reg *methods,
                  const luaL_Reg *metamethods)
{
    luaL_newmetatable(L, name);
    if (metamethods)
        luaL_setfuncs(L, metamethods, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}

static const char account_key = 0;

void lopl_account(lua_State *L, size_t bytes)
{
    /* Lua cannot see C memory, and on Lua 5.4.4 incremental steps of alternating sizes
     * can keep a cycle from ever finishing (nothing gets finalized).  So count what was
     * allocated since the last full collection and collect once it passes both 64 MiB
     * and twice the Lua heap. */
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &account_key) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        *(size_t *)lua_newuserdatauv(L, sizeof(size_t), 0) = 0;
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &account_key);
    }
    size_t *pending = lua_touserdata(L, -1);
    lua_pop(L, 1);   /* the registry keeps it alive */
    *pending += bytes;
    size_t heap = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024;
    if (*pending >= ((size_t)64 << 20) && *pending >= 2 * heap) {
        *pending = 0;
        lua_gc(L, LUA_GCCOLLECT);
    }
}

static int by_value(const void *a, const void *b)
{
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

int *lopl_check_keep(lua_State *L, int arg, const char *what, int channels, int *count)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer n = luaL_len(L, arg);
    if (n < 1 || n > 1 << 24)
        luaL_argerror(L, arg, "keep must list at least one channel");
    int *keep = lua_newuserdatauv(L, (size_t)n * sizeof(int), 0);
    lua_Integer most = channels > 0 ? channels : 1 << 30;
    for (lua_Integer i = 1; i <= n; i++) {
        int isint = 0;
        lua_Integer c = 0;
        if (lua_geti(L, arg, i) == LUA_TNUMBER)   /* not a string that looks like one */
            c = lua_tointegerx(L, -1, &isint);
        if (!isint || c < 1 || c > most) {
            if (channels > 0)
                luaL_error(L, "%s: keep[%I] must be a channel in 1..%d", what, i, channels);
            luaL_error(L, "%s: keep[%I] must be a channel index >= 1", what, i);
        }
        keep[i - 1] = (int)(c - 1);
        lua_pop(L, 1);
    }
    qsort(keep, (size_t)n, sizeof *keep, by_value);
    for (lua_Integer i = 1; i < n; i++)
        if (keep[i] == keep[i - 1])
            luaL_error(L, "%s: channel %d is listed twice", what, keep[i] + 1);
    *count = (int)n;
    return keep;
}
