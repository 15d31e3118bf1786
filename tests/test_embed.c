/*
 * test_embed.c - embedding Lopper's scripting in a C program, as lua/lopper_lua.h
 * describes: the program opens the module in its own lua_State, runs a recipe file
 * with arguments from C and reads the table the recipe returns; a recipe that fails
 * hands its message to the C side through lua_pcall, and the state stays usable.
 * The recipe builds a tiny net whose parameter and FLOP counts are computed by hand
 * below.  This file doubles as the embedding example docs/embedding.md points to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lopper_lua.h"

static char dir[64];       /* scratch directory for the recipe files */

/* Called as recipe(channels, size, classes): input channels x size x size ->
 * conv 3x3 pad 1 to 4 channels -> relu -> global average pool -> linear to classes. */
static const char good_recipe[] =
    "local channels, size, classes = ...\n"
    "local lop = require 'lopper'\n"
    "local net = lop.net{input = {channels, size, size}, seed = 1}\n"
    "net:conv2d('c1', 'input', {out = 4, kernel = 3, pad = 1})\n"
    "net:relu('r1', 'c1')\n"
    "net:global_avgpool('gap', 'r1')\n"
    "net:linear('fc', 'gap', {out = classes})\n"
    "return {params = net:params(), flops = net:flops(), nodes = #net:nodes(),\n"
    "        kind = net:node('c1').kind}\n";

/* Line 3 raises with a plain message; line 4 would misuse the API. */
static const char failing_recipe[] =
    "local lop = require 'lopper'\n"
    "local net = lop.net{input = {3, 8, 8}}\n"
    "if ... == 'raise' then error('recipe gave up') end\n"
    "net:relu('r1', 'no_such_node')\n";

static void write_file(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    luaL_requiref(L, "lopper", luaopen_lopper, 1);
    lua_pop(L, 1);
    return L;
}

/* Run the recipe at path with (3, 8, 2): LUA_OK leaves its result on the stack. */
static int run_good(lua_State *L, const char *path)
{
    int status = luaL_loadfile(L, path);
    if (status != LUA_OK)
        return status;
    lua_pushinteger(L, 3);
    lua_pushinteger(L, 8);
    lua_pushinteger(L, 2);
    return lua_pcall(L, 3, 1, 0);
}

static double field_number(lua_State *L, const char *key)
{
    lua_getfield(L, -1, key);
    int isnum = 0;
    double v = lua_tonumberx(L, -1, &isnum);
    assert_true(isnum);
    lua_pop(L, 1);
    return v;
}

/* Hand counts for 3x8x8 -> conv 4x3x3x3 + bias -> relu -> gap -> linear 4 -> 2:
 * params: conv 4*3*3*3 + 4 = 112, linear 4*2 + 2 = 10;
 * FLOPs (a multiply-add is 2, biases not counted): conv 2*4*3*9*8*8 = 13824,
 * relu one per element 4*8*8 = 256, gap one per input element 256, linear 2*4*2 = 16. */
static void check_results(lua_State *L)
{
    assert_int_equal(lua_type(L, -1), LUA_TTABLE);
    assert_int_equal((long)field_number(L, "params"), 112 + 10);
    assert_int_equal((long)field_number(L, "flops"), 13824 + 256 + 256 + 16);
    assert_int_equal((long)field_number(L, "nodes"), 5);
    lua_getfield(L, -1, "kind");
    assert_string_equal(lua_tostring(L, -1), "conv2d");
    lua_pop(L, 1);
}

static void test_recipe_results(void **state)
{
    (void)state;
    char path[128];
    write_file("good.lua", good_recipe, path, sizeof path);
    lua_State *L = new_state();
    int status = run_good(L, path);
    if (status != LUA_OK)
        fail_msg("recipe failed: %s", lua_tostring(L, -1));
    check_results(L);
    lua_pop(L, 1);
    assert_int_equal(lua_gettop(L), 0);
    lua_close(L);
}

static void test_recipe_errors(void **state)
{
    (void)state;
    char good[128], bad[128];
    write_file("good.lua", good_recipe, good, sizeof good);
    write_file("bad.lua", failing_recipe, bad, sizeof bad);
    lua_State *L = new_state();

    /* error() in the recipe: the message carries the file and line. */
    assert_int_equal(luaL_loadfile(L, bad), LUA_OK);
    lua_pushstring(L, "raise");
    assert_int_equal(lua_pcall(L, 1, 0, 0), LUA_ERRRUN);
    const char *msg = lua_tostring(L, -1);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "bad.lua:3: recipe gave up"));
    lua_pop(L, 1);

    /* Misuse of the API: a Lua error naming the culprit, not a crash. */
    assert_int_equal(luaL_loadfile(L, bad), LUA_OK);
    assert_int_equal(lua_pcall(L, 0, 0, 0), LUA_ERRRUN);
    msg = lua_tostring(L, -1);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "no_such_node"));
    lua_pop(L, 1);

    /* A missing recipe is reported by the loader. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.lua", dir);
    assert_int_equal(luaL_loadfile(L, missing), LUA_ERRFILE);
    assert_non_null(strstr(lua_tostring(L, -1), "missing.lua"));
    lua_pop(L, 1);

    /* The same state still runs recipes and gives the same answers. */
    assert_int_equal(lua_gettop(L), 0);
    int status = run_good(L, good);
    if (status != LUA_OK)
        fail_msg("recipe failed after errors: %s", lua_tostring(L, -1));
    check_results(L);
    lua_pop(L, 1);
    lua_close(L);
}

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lop_embed_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char path[128];
    const char *names[] = {"good.lua", "bad.lua"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipe_results),
        cmocka_unit_test(test_recipe_errors),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
