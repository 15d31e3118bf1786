/*
 * l_npy.c - lop.data.npy: NumPy .npy images and labels as a streamed data set
 * (engine/data/npy.c: the images stay memory-mapped and are converted as batches are
 * drawn), with what a script says about them: the layout, the class count, and the
 * normalisation as numbers, per-channel lists or the ImageNet preset.
 */
#include <string.h>

#include "binding.h"

static const char *const fn = "data.npy";

/* Option key of the options table at arg: absent (0 returned), a number (for every
 * channel: 1) or a list of 1 to 3 numbers (their count), written to out[0..3); a
 * single value is copied to all three. */
static int channel_values(lua_State *L, int arg, const char *key, float *out)
{
    int t = lopl_push_opt(L, arg, key), n = 0;
    if (t == LUA_TNUMBER) {
        out[0] = (float)lua_tonumber(L, -1);
        n = 1;
    } else if (t == LUA_TTABLE) {
        lua_Integer len = luaL_len(L, -1);
        if (len < 1 || len > 3)
            luaL_error(L, "%s: option '%s' must be a number or a list of 1 to 3 numbers (one "
                       "per channel), got a list of %I", fn, key, len);
        for (int k = 0; k < (int)len; k++) {
            if (lua_geti(L, -1, k + 1) != LUA_TNUMBER)
                luaL_error(L, "%s: value %d of option '%s' is a %s, not a number", fn, k + 1,
                           key, luaL_typename(L, -1));
            out[k] = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        n = (int)len;
    } else if (t != LUA_TNIL) {
        luaL_error(L, "%s: option '%s' must be a number or a list of numbers, got %s", fn, key,
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    if (n == 1)
        out[1] = out[2] = out[0];
    return n;
}

/* normalize = "imagenet" | "none" (default): whether the preset is asked for. */
static int imagenet_preset(lua_State *L, int arg)
{
    int t = lopl_push_opt(L, arg, "normalize");
    const char *v = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (t != LUA_TNIL && (!v || (strcmp(v, "imagenet") != 0 && strcmp(v, "none") != 0)))
        luaL_error(L, "%s: option 'normalize' must be \"imagenet\" or \"none\", got %s", fn,
                   luaL_tolstring(L, -1, NULL));
    int preset = v && strcmp(v, "imagenet") == 0;
    lua_pop(L, 1);
    return preset;
}

/* lop.data.npy(images, labels, {channels_last=, classes=, mean=, std=, normalize=}) -> ds
 * (streamed: the images file stays mapped while the data set lives). */
int lopl_data_npy(lua_State *L)
{
    static const char *const known[] = {"channels_last", "classes", "mean", "std",
                                        "normalize", NULL};
    static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};
    const char *images = lopl_check_cstring(L, 1), *labels = lopl_check_cstring(L, 2);
    lua_settop(L, 3);
    lopl_check_opts(L, 3, fn, known);
    lop_npy_opts o = lop_npy_opts_default();
    o.channels_last = lopl_opt_bool(L, 3, fn, "channels_last", 0);
    o.classes = lopl_opt_int(L, 3, fn, "classes", 0, 1);
    int nmean = channel_values(L, 3, "mean", o.mean), nstd = channel_values(L, 3, "std", o.std);
    int preset = imagenet_preset(L, 3);
    if (preset) {
        if (nmean || nstd)
            return luaL_error(L, "%s: give normalize = \"imagenet\" or mean and std, not both",
                              fn);
        memcpy(o.mean, imagenet_mean, sizeof o.mean);
        memcpy(o.std, imagenet_std, sizeof o.std);
    }

    lopl_dataset *u = lopl_new_dataset(L);
    if (lop_dataset_open_npy(images, labels, &o, &u->d) != LOP_OK)
        return lopl_fail(L, fn);
    /* Per-channel values must match the images' channels, known only now. */
    int c = u->d.source->c;
    const char *key = nmean > 1 && nmean != c ? "mean" : nstd > 1 && nstd != c ? "std" : NULL;
    if (preset && c != 3) {
        lop_dataset_free(&u->d);
        return luaL_error(L, "%s: normalize = \"imagenet\" needs 3-channel images, %s has %d",
                          fn, images, c);
    }
    if (key) {
        lop_dataset_free(&u->d);
        return luaL_error(L, "%s: %s has %d-channel images; option '%s' has %d values (give "
                          "1%s)", fn, images, c, key, strcmp(key, "mean") ? nstd : nmean,
                          c == 1 ? "" : c <= 3 ? lua_pushfstring(L, " or %d", c) : " for every channel");
    }
    lopl_dataset_loaded(L, u);
    return 1;
}
