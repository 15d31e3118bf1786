/*
 * l_normalize.c - the normalisation options every file-backed data opener takes
 * (lop.data.folder, lop.data.read_image, lop.data.npy): mean = and std = as a number
 * or one per channel, or normalize = "imagenet" for torchvision's preset, parsed and
 * checked against the channel count in one place so that every opener accepts and
 * refuses the same things with the same words.
 */
#include <string.h>

#include "binding.h"

/* ImageNet's channel statistics (torchvision's Normalize for its pretrained models). */
static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* Option key at arg: absent (0), a number (1) or a list of 1 to 3 numbers (their
 * count) into v[0..3), a single value repeated. */
static int channel_values(lua_State *L, int arg, const char *fn, const char *key, float *v)
{
    int t = lopl_push_opt(L, arg, key), n = 0;
    if (t == LUA_TNUMBER) {
        v[0] = (float)lua_tonumber(L, -1);
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
            v[k] = (float)lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        n = (int)len;
    } else if (t != LUA_TNIL) {
        luaL_error(L, "%s: option '%s' must be a number or a list of numbers, got %s", fn, key,
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    for (int k = n; k < 3 && n == 1; k++)
        v[k] = v[0];
    return n;
}

void lopl_opt_normalization(lua_State *L, int arg, const char *fn, lopl_norm *out)
{
    memset(out, 0, sizeof *out);
    out->std[0] = out->std[1] = out->std[2] = 1;
    out->nmean = channel_values(L, arg, fn, "mean", out->mean);
    out->nstd = channel_values(L, arg, fn, "std", out->std);
    for (int k = 0; k < (out->nstd ? out->nstd : 0); k++)
        if (!(out->std[k] > 0))
            luaL_error(L, "%s: option 'std' must be positive, got %f", fn, (double)out->std[k]);
    int t = lopl_push_opt(L, arg, "normalize");
    const char *v = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (t != LUA_TNIL && (!v || (strcmp(v, "imagenet") != 0 && strcmp(v, "none") != 0)))
        luaL_error(L, "%s: option 'normalize' must be \"imagenet\" or \"none\", got %s", fn,
                   luaL_tolstring(L, -1, NULL));
    out->preset = v && strcmp(v, "imagenet") == 0;
    lua_pop(L, 1);
    if (out->preset) {
        if (out->nmean || out->nstd)
            luaL_error(L, "%s: give normalize = \"imagenet\" or mean and std, not both", fn);
        memcpy(out->mean, imagenet_mean, sizeof out->mean);
        memcpy(out->std, imagenet_std, sizeof out->std);
    }
}

const char *lopl_normalization_misfit(lua_State *L, const lopl_norm *n, int channels,
                                      const char *source)
{
    if (n->preset && channels != 3)
        return lua_pushfstring(L, "normalize = \"imagenet\" needs 3-channel images; %s has %d",
                               source, channels);
    const char *key = n->nmean > 1 && n->nmean != channels ? "mean"
                      : n->nstd > 1 && n->nstd != channels ? "std" : NULL;
    if (!key)
        return NULL;
    return lua_pushfstring(L, "%s has %d-channel images; option '%s' has %d values (give 1%s)",
                           source, channels, key, key[0] == 'm' ? n->nmean : n->nstd,
                           channels == 1 ? "" : channels <= 3 ? lua_pushfstring(L, " or %d", channels)
                                                              : " for every channel");
}
