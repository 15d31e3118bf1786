/*
 * lopper_lua.h - embedding Lopper's scripting in another program: open the module in
 * your own lua_State (luaL_requiref(L, "lopper", luaopen_lopper, 0)), then run recipes
 * with luaL_dofile and read their results from the stack.  Link build/liblopperlua.a,
 * build/liblopper.a, liblua5.4, OpenBLAS and zlib.
 */
#ifndef LOPPER_LUA_H
#define LOPPER_LUA_H

#include <lua.h>

int luaopen_lopper(lua_State *L);

#endif
