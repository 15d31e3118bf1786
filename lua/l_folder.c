/*
 * l_folder.c - image folders in Lua: lop.data.folder(root, opts) opens a streamed data
 * set of root/<class>/<image> files and returns it with its class names, and
 * lop.data.read_image(path, opts) reads one file - raw, or through the same
 * preprocessing a folder applies - for tests, debugging and users' own checks.  Both
 * check every option before the engine runs, so a typo is an error, not a default.
 */
#include <string.h>

#include "binding.h"

/* size = n | {h, w}: into o->size_h, o->size_w. */
static void opt_size(lua_State *L, int arg, const char *fn, lop_folder_opts *o)
{
    int t = lopl_push_opt(L, arg, "size");
    if (t == LUA_TNUMBER) {
        o->size_h = o->size_w = lopl_to_int(L, -1, fn, "size", 1);
    } else if (t == LUA_TTABLE && luaL_len(L, -1) == 2) {
        lua_geti(L, -1, 1);
        o->size_h = lopl_to_int(L, -1, fn, "size", 1);
        lua_geti(L, -2, 2);
        o->size_w = lopl_to_int(L, -1, fn, "size", 1);
        lua_pop(L, 2);
    } else {
        luaL_error(L, "%s: option 'size' must be a size or {height, width}, got %s", fn,
                   t == LUA_TNIL ? "none" : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* The preprocessing options shared by folder and read_image (size required). */
static void check_pipeline(lua_State *L, int arg, const char *fn, lop_folder_opts *o)
{
    *o = lop_folder_opts_default();
    opt_size(L, arg, fn, o);
    o->resize = lopl_opt_int(L, arg, fn, "resize", 0, 0);
    o->channels = lopl_opt_int(L, arg, fn, "channels", 3, 1);
    if (o->channels != 1 && o->channels != 3)
        luaL_error(L, "%s: option 'channels' must be 1 or 3, got %d", fn, o->channels);
    o->random_crop = lopl_opt_bool(L, arg, fn, "random_crop", 0);
    o->flip = lopl_opt_bool(L, arg, fn, "flip", 0);
    lopl_norm norm;
    lopl_opt_normalization(L, arg, fn, &norm);
    const char *misfit = lopl_normalization_misfit(L, &norm, o->channels, "the folder (option 'channels')");
    if (misfit)
        luaL_error(L, "%s: %s", fn, misfit);
    memcpy(o->mean, norm.mean, sizeof o->mean);
    memcpy(o->std, norm.std, sizeof o->std);
}

/* lop.data.folder(root, {size=, resize=0, channels=3, random_crop=false, flip=false,
 * mean=, std=, normalize="none", workers=2, skip_bad=false}) -> ds, {class names}. */
int lopl_data_folder(lua_State *L)
{
    static const char *const known[] = {"size", "resize", "channels", "random_crop", "flip",
                                        "mean", "std", "normalize", "workers", "skip_bad",
                                        NULL};
    const char *fn = "data.folder";
    const char *root = lopl_check_cstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lopl_check_opts(L, 2, fn, known);
    lop_folder_opts o;
    check_pipeline(L, 2, fn, &o);
    o.workers = lopl_opt_int(L, 2, fn, "workers", 2, 1);
    o.skip_bad = lopl_opt_bool(L, 2, fn, "skip_bad", 0);
    lopl_dataset *u = lopl_new_dataset(L);
    if (lop_dataset_open_folder(root, &o, &u->d) != LOP_OK)
        return lopl_fail(L, fn);
    lopl_dataset_loaded(L, u);
    lua_createtable(L, u->d.classes, 0);
    for (int k = 0; k < u->d.classes; k++) {
        lua_pushstring(L, lop_folder_class_name(&u->d, k));
        lua_rawseti(L, -2, k + 1);
    }
    return 2;
}

/* lop.data.read_image(path, {channels=}) -> [C, H, W] tensor of the decoded values
 * 0..255 (channels as stored unless given); with size (and folder's preprocessing
 * options, seed = 0 for the evaluation transform) what a folder makes of the file. */
int lopl_data_read_image(lua_State *L)
{
    static const char *const known[] = {"size", "resize", "channels", "random_crop", "flip",
                                        "mean", "std", "normalize", "seed", NULL};
    const char *fn = "data.read_image";
    const char *path = lopl_check_cstring(L, 1);
    int has = lopl_check_opts(L, 2, fn, known);
    int processed = has && lopl_push_opt(L, 2, "size") != LUA_TNIL;
    lua_pop(L, 1);
    lop_folder_opts o;
    int channels = 0;
    lua_Integer seed = 0;
    if (processed) {
        check_pipeline(L, 2, fn, &o);
        seed = lopl_opt_int(L, 2, fn, "seed", 0, 0);
    } else {
        for (const char *const *k = known; *k; k++) {
            int given = strcmp(*k, "channels") != 0 && lopl_push_opt(L, 2, *k) != LUA_TNIL;
            if (given)
                luaL_error(L, "%s: option '%s' needs 'size' (without it the image is read "
                           "as stored)", fn, *k);
            lua_settop(L, 2);
        }
        channels = lopl_opt_int(L, 2, fn, "channels", 0, 1);
        if (channels != 0 && channels != 1 && channels != 3)
            luaL_error(L, "%s: option 'channels' must be 1 or 3, got %d", fn, channels);
    }
    lopl_tensor *t = lopl_new_tensor(L);
    lop_tensor *x = NULL;
    if (lop_image_read(path, processed ? &o : NULL, channels, (uint64_t)seed, &x) != LOP_OK)
        return lopl_fail(L, fn);
    lopl_set_tensor(L, t, x, fn);
    lopl_account(L, x->numel * sizeof(float));
    return 1;
}
