/*
 * l_folder.c - image folders in Lua: lop.data.folder(root, opts) opens a streamed data
 * set of root/<class>/<image> files and returns it with its class names, and
 * lop.data.read_image(path, opts) reads one file - raw, or through the same
 * preprocessing a folder applies - for tests, debugging and users' own checks.  Both
 * check every option before the engine runs, so a typo is an error, not a default.
 */
#include <string.h>

#include "binding.h"

/* ImageNet's channel statistics (torchvision's Normalize for its pretrained models). */
static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* Option `key` at arg: a number for every channel, or a list of 1 or `channels`
 * numbers; into v (3 entries).  Returns whether it was given. */
static int opt_channel_values(lua_State *L, int arg, const char *fn, const char *key,
                              int channels, float *v)
{
    int t = lopl_push_opt(L, arg, key);
    int n = 0;
    if (t == LUA_TNUMBER) {
        v[0] = v[1] = v[2] = (float)lua_tonumber(L, -1);
        n = 1;
    } else if (t == LUA_TTABLE) {
        lua_Integer len = luaL_len(L, -1);
        if (len != 1 && len != channels)
            luaL_error(L, channels == 1 ? "%s: option '%s' needs 1 value, got %I"
                                        : "%s: option '%s' needs 1 or 3 values, got %I",
                       fn, key, len);
        for (int c = 0; c < (int)len; c++) {
            if (lua_geti(L, -1, c + 1) != LUA_TNUMBER)
                luaL_error(L, "%s: option '%s': value %d is not a number", fn, key, c + 1);
            v[c] = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        for (int c = (int)len; c < 3; c++)
            v[c] = v[0];
        n = 1;
    } else if (t != LUA_TNIL) {
        luaL_error(L, "%s: option '%s' must be a number or a list of numbers, got %s", fn,
                   key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return n;
}

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
    int given = opt_channel_values(L, arg, fn, "mean", o->channels, o->mean);
    given |= opt_channel_values(L, arg, fn, "std", o->channels, o->std);
    for (int c = 0; c < o->channels; c++)
        if (o->std[c] == 0)
            luaL_error(L, "%s: option 'std' must not be 0", fn);
    int t = lopl_push_opt(L, arg, "normalize");
    const char *preset = t == LUA_TNIL ? "none" : t == LUA_TSTRING ? lua_tostring(L, -1) : "";
    if (strcmp(preset, "imagenet") == 0) {
        if (given)
            luaL_error(L, "%s: give normalize = \"imagenet\" or mean/std, not both", fn);
        if (o->channels != 3)
            luaL_error(L, "%s: normalize = \"imagenet\" needs channels = 3", fn);
        memcpy(o->mean, imagenet_mean, sizeof o->mean);
        memcpy(o->std, imagenet_std, sizeof o->std);
    } else if (strcmp(preset, "none") != 0) {
        luaL_error(L, "%s: option 'normalize' must be \"imagenet\" or \"none\"", fn);
    }
    lua_pop(L, 1);
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
