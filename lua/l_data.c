/*
 * l_data.c - data sets in Lua: loading IDX (MNIST, Fashion-MNIST) and CIFAR-10 files,
 * the ready-made Fashion-MNIST train/test pair the reference models use, a set made
 * from a tensor, and what a script does with a data set (size, copy a range, pad,
 * normalise, look at an item, gather an augmented batch).  Streamed sets (image
 * folders, .npy files) are the same userdata: every method but pad and normalize works
 * on them, reading items through their source.  Items are 1-based; labels are the
 * class indices as stored in the files, 0..classes-1.  Every loader and method that
 * makes a data set creates its userdata first and lets the engine fill it, so a
 * failure leaves a closed data set for the collector, never a leak.
 */
#include <limits.h>
#include <string.h>

#include "binding.h"

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define FASHION_MNIST_MEAN 0.2860f   /* published pixel statistics of the train set */
#define FASHION_MNIST_STD 0.3530f

/* ---- the dataset userdata ------------------------------------------------------- */

static lopl_dataset *check_udata(lua_State *L, int arg)
{
    return luaL_checkudata(L, arg, LOPL_DATASET);
}

lop_dataset *lopl_check_dataset(lua_State *L, int arg)
{
    lopl_dataset *u = check_udata(L, arg);
    if (!u->loaded)
        luaL_argerror(L, arg, "dataset is closed");
    return &u->d;
}

/* An empty (closed) dataset userdata, to be filled by an engine call. */
lopl_dataset *lopl_new_dataset(lua_State *L)
{
    lopl_dataset *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(&u->d, 0, sizeof u->d);
    u->loaded = 0;
    luaL_setmetatable(L, LOPL_DATASET);
    return u;
}

/* Mark a dataset userdata filled by the engine (streamed sets hold only labels). */
void lopl_dataset_loaded(lua_State *L, lopl_dataset *u)
{
    u->loaded = 1;
    lopl_account(L, u->d.images ? u->d.images->numel * sizeof(float)
                                : (size_t)u->d.n * sizeof(int));
}

/* A tensor userdata holding nothing yet, so an allocation failure after it cannot leak. */
static lopl_tensor *new_tensor(lua_State *L)
{
    lopl_tensor *t = lua_newuserdatauv(L, sizeof *t, 0);
    t->t = NULL;
    luaL_setmetatable(L, LOPL_TENSOR);
    return t;
}

/* 1-based item index at arg -> 0-based. */
static int check_item(lua_State *L, const lop_dataset *d, int arg, const char *fn)
{
    lua_Integer i = luaL_checkinteger(L, arg);
    if (i < 1 || i > d->n)
        luaL_error(L, "%s: item %I is outside 1..%d", fn, i, d->n);
    return (int)(i - 1);
}

static int ds_size(lua_State *L)
{
    lua_pushinteger(L, lopl_check_dataset(L, 1)->n);
    return 1;
}

static int ds_shape(lua_State *L)
{
    int chw[3];
    lop_dataset_shape(lopl_check_dataset(L, 1), chw);
    lua_createtable(L, 3, 0);
    for (int i = 0; i < 3; i++) {
        lua_pushinteger(L, chw[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* Padding and normalisation rewrite images in memory; a streamed set's are options of
 * its opener. */
static void refuse_streamed(lua_State *L, const lop_dataset *d, const char *fn)
{
    if (d->source)
        luaL_error(L, "%s: the data set is streamed from %s, not held in memory; set its "
                   "image size and normalisation in the options of the function that "
                   "opened it", fn, d->source->kind ? d->source->kind : "files");
}

static int ds_classes(lua_State *L)
{
    lua_pushinteger(L, lopl_check_dataset(L, 1)->classes);
    return 1;
}

/* ds:subset(first, count) -> a new data set with a copy of those items. */
static int ds_subset(lua_State *L)
{
    const lop_dataset *d = lopl_check_dataset(L, 1);
    lua_Integer first = luaL_checkinteger(L, 2), count = luaL_checkinteger(L, 3);
    if (first < 1 || count < 1 || first > d->n || count > d->n - first + 1)
        return luaL_error(L, "subset: %I items from item %I do not fit in a data set of %d",
                          count, first, d->n);
    lopl_dataset *u = lopl_new_dataset(L);
    if (lop_dataset_subset(d, (int)first - 1, (int)count, &u->d) != LOP_OK)
        return lopl_fail(L, "subset");
    lopl_dataset_loaded(L, u);
    return 1;
}

/* ds:pad(size): zero-pad every image to size x size, centred; returns ds. */
static int ds_pad(lua_State *L)
{
    lop_dataset *d = lopl_check_dataset(L, 1);
    refuse_streamed(L, d, "pad");
    lua_Integer size = luaL_checkinteger(L, 2);
    if (size < d->images->shape[2] || size < d->images->shape[3] || size > 65536)
        return luaL_argerror(L, 2, lua_pushfstring(L, "cannot pad %dx%d images to %I",
                                                   d->images->shape[2], d->images->shape[3],
                                                   size));
    if (lop_dataset_pad(d, (int)size) != LOP_OK)
        return lopl_fail(L, "pad");
    lopl_account(L, d->images->numel * sizeof(float));
    lua_settop(L, 1);
    return 1;
}

/* Per-channel values at arg: a number (every channel) or a table of 1 or C numbers.
 * Returns how many were written to out (room for c). */
static int check_channel_values(lua_State *L, int arg, int c, float *out)
{
    if (lua_type(L, arg) == LUA_TNUMBER) {
        out[0] = (float)lua_tonumber(L, arg);
        return 1;
    }
    if (lua_type(L, arg) != LUA_TTABLE)
        luaL_argerror(L, arg, "expected a number or a table of numbers");
    lua_Integer len = luaL_len(L, arg);
    if (len != 1 && len != c)
        luaL_argerror(L, arg, c == 1 ? lua_pushfstring(L, "need 1 value, got %I", len)
                                     : lua_pushfstring(L, "need 1 or %d values, got %I", c, len));
    for (int k = 0; k < (int)len; k++) {
        if (lua_geti(L, arg, k + 1) != LUA_TNUMBER)
            luaL_argerror(L, arg, lua_pushfstring(L, "value %d is not a number", k + 1));
        out[k] = (float)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    return (int)len;
}

/* ds:normalize(mean, std): x = (x - mean) / std per channel, in place; returns ds. */
static int ds_normalize(lua_State *L)
{
    lop_dataset *d = lopl_check_dataset(L, 1);
    refuse_streamed(L, d, "normalize");
    int c = d->images->shape[1];
    /* Scratch in a userdata: freed by the collector whatever is raised below. */
    float *mean = lua_newuserdatauv(L, 2 * (size_t)c * sizeof(float), 0), *std = mean + c;
    int nm = check_channel_values(L, 2, c, mean), ns = check_channel_values(L, 3, c, std);
    if (nm != ns) {
        /* One value stands for every channel; spread it so the counts agree. */
        float *one = nm == 1 ? mean : std;
        for (int k = 1; k < c; k++)
            one[k] = one[0];
    }
    if (lop_dataset_normalize(d, mean, std, nm > ns ? nm : ns) != LOP_OK)
        return lopl_fail(L, "normalize");
    lua_settop(L, 1);
    return 1;
}

/* ds:image(i) -> a copy of item i as a [C, H, W] tensor (a streamed set's evaluation
 * transform). */
static int ds_image(lua_State *L)
{
    const lop_dataset *d = lopl_check_dataset(L, 1);
    int i = check_item(L, d, 2, "image");
    lopl_tensor *one = new_tensor(L);   /* [1, C, H, W], collected */
    if (lop_dataset_batch(d, &i, 1, NULL, NULL, &one->t, NULL) != LOP_OK)
        return lopl_fail(L, "image");
    lopl_tensor *t = new_tensor(L);
    if (!(t->t = lop_tensor_view(one->t, 0, 3, one->t->shape + 1)))
        return lopl_fail(L, "image");
    return 1;
}

/* ds:label(i) -> the class index of item i, 0..classes-1 as in the files. */
static int ds_label(lua_State *L)
{
    const lop_dataset *d = lopl_check_dataset(L, 1);
    lua_pushinteger(L, d->labels[check_item(L, d, 2, "label")]);
    return 1;
}

/* ds:batch({i, ...}, {crop=, flip=, seed=}) -> [B, C, H, W] tensor, {labels}. */
static int ds_batch(lua_State *L)
{
    static const char *const known[] = {"crop", "flip", "seed", NULL};
    const lop_dataset *d = lopl_check_dataset(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lopl_check_opts(L, 3, "batch", known);
    int chw[3];
    lop_dataset_shape(d, chw);
    int h = chw[1], w = chw[2];
    lop_augment aug = {0};
    aug.crop_pad = lopl_opt_int(L, 3, "batch", "crop", 0, 0);
    if (aug.crop_pad > h || aug.crop_pad > w)
        return luaL_error(L, "batch: option 'crop' must be at most %d for %dx%d images",
                          h < w ? h : w, h, w);
    aug.flip = lopl_opt_bool(L, 3, "batch", "flip", 0);
    /* A streamed set's own random transforms need a seed too: given one, or crop or
     * flip, it draws them; otherwise it gets its evaluation transform. */
    int seeded = lopl_push_opt(L, 3, "seed") != LUA_TNIL || aug.crop_pad || aug.flip;
    lua_pop(L, 1);
    lop_rng rng;
    lop_rng_seed(&rng, (uint64_t)lopl_opt_int(L, 3, "batch", "seed", 1, 0));
    lua_Integer count = luaL_len(L, 2);
    if (count < 1 || count > 0x3fffffff)
        return luaL_argerror(L, 2, "expected a non-empty list of item indices");
    int *idx = lua_newuserdatauv(L, 2 * (size_t)count * sizeof(int), 0), *labels = idx + count;
    for (lua_Integer k = 0; k < count; k++) {
        int ok = 0;
        lua_Integer i = lua_geti(L, 2, k + 1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &ok) : 0;
        if (!ok)
            return luaL_error(L, "batch: entry %I of the list is a %s, not an item index",
                              k + 1, luaL_typename(L, -1));
        if (i < 1 || i > d->n)
            return luaL_error(L, "batch: entry %I of the list is item %I, outside 1..%d",
                              k + 1, i, d->n);
        idx[k] = (int)(i - 1);
        lua_pop(L, 1);
    }
    lopl_tensor *x = new_tensor(L);
    if (lop_dataset_batch(d, idx, (int)count, &aug, seeded ? &rng : NULL, &x->t, labels) !=
        LOP_OK)
        return lopl_fail(L, "batch");
    lopl_account(L, x->t->numel * sizeof(float));
    lua_createtable(L, (int)count, 0);
    for (lua_Integer k = 0; k < count; k++) {
        lua_pushinteger(L, labels[k]);
        lua_rawseti(L, -2, k + 1);
    }
    return 2;
}

/* ds:skipped() -> how many bad images loops over the set's source skipped, and the
 * first one's message (nil when none); 0 for a set in memory. */
static int ds_skipped(lua_State *L)
{
    const lop_dataset *d = lopl_check_dataset(L, 1);
    long n = d->source ? __atomic_load_n(&d->source->skipped, __ATOMIC_ACQUIRE) : 0;
    lua_pushinteger(L, n);
    if (n > 0)
        lua_pushstring(L, d->source->first_skipped);
    else
        lua_pushnil(L);
    return 2;
}

static int ds_close(lua_State *L)
{
    lopl_dataset *u = check_udata(L, 1);
    if (u->loaded)
        lop_dataset_free(&u->d);
    u->loaded = 0;
    return 0;
}

static int ds_tostring(lua_State *L)
{
    const lopl_dataset *u = check_udata(L, 1);
    if (!u->loaded) {
        lua_pushliteral(L, "dataset (closed)");
        return 1;
    }
    int chw[3];
    lop_dataset_shape(&u->d, chw);
    const lop_source *src = u->d.source;
    lua_pushfstring(L, "dataset %d x %dx%dx%d, %d classes%s%s", u->d.n, chw[0], chw[1], chw[2],
                    u->d.classes, src ? ", streamed" : "",
                    src && src->kind ? lua_pushfstring(L, " (%s)", src->kind) : "");
    return 1;
}

/* ---- loading -------------------------------------------------------------------- */

/* Push a data set loaded from IDX files; returns the engine status (the data set is
 * closed on failure). */
static int load_idx_into(lua_State *L, const char *images, const char *labels)
{
    lopl_dataset *u = lopl_new_dataset(L);
    int st = lop_dataset_load_idx(images, labels, &u->d);
    if (st == LOP_OK)
        lopl_dataset_loaded(L, u);
    return st;
}

/* lop.data.idx(images_path, labels_path) -> ds (IDX files, gzip-compressed or plain). */
static int data_idx(lua_State *L)
{
    const char *images = luaL_checkstring(L, 1), *labels = luaL_checkstring(L, 2);
    if (load_idx_into(L, images, labels) != LOP_OK)
        return lopl_fail(L, "data.idx");
    return 1;
}

/* lop.data.cifar10{path, ...} (or one path) -> ds of 3x32x32 images, pixels 0..1. */
static int data_cifar10(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, 1);
        lua_rawseti(L, -2, 1);
        lua_replace(L, 1);
    }
    luaL_argexpected(L, lua_istable(L, 1), 1, "a table of file paths");
    lua_Integer n = luaL_len(L, 1);
    if (n < 1 || n > 1000)
        return luaL_argerror(L, 1, "expected 1..1000 file paths");
    const char **paths = lua_newuserdatauv(L, (size_t)n * sizeof *paths, 0);
    for (lua_Integer k = 0; k < n; k++) {
        if (lua_geti(L, 1, k + 1) != LUA_TSTRING)
            return luaL_argerror(L, 1, lua_pushfstring(L, "path %I is not a string", k + 1));
        paths[k] = lua_tostring(L, -1);   /* stays alive: the table holds it */
        lua_pop(L, 1);
    }
    lopl_dataset *u = lopl_new_dataset(L);
    if (lop_dataset_load_cifar10(paths, (int)n, &u->d) != LOP_OK)
        return lopl_fail(L, "data.cifar10");
    lopl_dataset_loaded(L, u);
    return 1;
}

/* lop.data.tensor(images, labels [, classes]) -> ds holding a copy of images (a
 * [N, C, H, W] tensor of finite values) with labels, a list of N class indices
 * 0..classes-1 (classes defaults to 1 + the largest label). */
static int data_tensor(lua_State *L)
{
    const char *fn = "data.tensor";
    const lop_tensor *t = lopl_check_tensor(L, 1);
    if (t->ndim != 4)
        return luaL_argerror(L, 1, lua_pushfstring(L, "expected an [N, C, H, W] tensor, got "
                                                   "%d dimensions", t->ndim));
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (n != t->shape[0])
        return luaL_argerror(L, 2, lua_pushfstring(L, "%I labels for %d images", n,
                                                   t->shape[0]));
    int classes = 0;
    if (!lua_isnoneornil(L, 3)) {
        lua_Integer k = luaL_checkinteger(L, 3);
        if (k < 1 || k > INT_MAX - 1)
            return luaL_argerror(L, 3, "expected a number of classes >= 1");
        classes = (int)k;
    }
    lua_Integer top = classes ? classes - 1 : INT_MAX - 1;
    int *labels = lua_newuserdatauv(L, (size_t)n * sizeof *labels, 0);
    for (lua_Integer k = 0; k < n; k++) {
        int ok = 0, type = lua_geti(L, 2, k + 1);
        lua_Integer v = type == LUA_TNUMBER ? lua_tointegerx(L, -1, &ok) : 0;
        if (!ok)
            return luaL_error(L, "%s: label %I is %s, not a class index", fn, k + 1,
                              type == LUA_TNUMBER ? lua_pushfstring(L, "%f", lua_tonumber(L, -1))
                                                  : luaL_typename(L, -1));
        if (v < 0 || v > top)
            return luaL_error(L, "%s: label %I is %I, outside 0..%I", fn, k + 1, v, top);
        labels[k] = (int)v;
        lua_pop(L, 1);
    }
    lopl_dataset *u = lopl_new_dataset(L);
    if (lop_dataset_from_tensor(t, labels, classes, &u->d) != LOP_OK)
        return lopl_fail(L, fn);
    lopl_dataset_loaded(L, u);
    return 1;
}

/* One split of Fashion-MNIST, prepared as fashion_mnist documents, pushed. */
static void fashion_split(lua_State *L, const char *dir, const char *prefix, int size,
                          int pad, int normalize)
{
    int base = lua_gettop(L);
    const char *images = lua_pushfstring(L, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    const char *labels = lua_pushfstring(L, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    int st = load_idx_into(L, images, labels);
    if (st != LOP_OK)
        luaL_error(L, "fashion_mnist: %s%s", lop_errmsg(),
                   st == LOP_EIO ? " (the Debian package dataset-fashion-mnist provides "
                                   "these files: apt-get install dataset-fashion-mnist)"
                                 : "");
    lopl_dataset *u = lua_touserdata(L, -1);
    if (size) {
        if (size > u->d.n)
            luaL_error(L, "fashion_mnist: %s_size %d is more than the %d images there",
                       strcmp(prefix, "train") ? "test" : "train", size, u->d.n);
        lopl_dataset *part = lopl_new_dataset(L);
        if (lop_dataset_subset(&u->d, 0, size, &part->d) != LOP_OK)
            lopl_fail(L, "fashion_mnist");
        lopl_dataset_loaded(L, part);
        lop_dataset_free(&u->d);   /* the full set is large: release it now */
        u->loaded = 0;
        u = part;
    }
    float mean = FASHION_MNIST_MEAN, std = FASHION_MNIST_STD;
    if ((normalize && lop_dataset_normalize(&u->d, &mean, &std, 1) != LOP_OK) ||
        (pad && lop_dataset_pad(&u->d, pad) != LOP_OK))
        lopl_fail(L, "fashion_mnist");
    if (pad)
        lopl_account(L, u->d.images->numel * sizeof(float));
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
}

/* lop.data.fashion_mnist{dir=, pad=32, normalize=true, train_size=, test_size=}
 * -> {train = ds, test = ds}.  Normalisation comes before padding, so the border is 0
 * like the fill of crop augmentation and of the convolutions' own padding. */
static int data_fashion_mnist(lua_State *L)
{
    static const char *const known[] = {"dir", "pad", "normalize", "train_size", "test_size",
                                        NULL};
    const char *fn = "fashion_mnist";
    lua_settop(L, 1);
    if (!lopl_check_opts(L, 1, fn, known)) {
        lua_newtable(L);
        lua_replace(L, 1);
    }
    const char *dir = FASHION_MNIST_DIR;
    int t = lua_getfield(L, 1, "dir");   /* the string stays on the stack while used */
    if (t != LUA_TNIL && t != LUA_TSTRING)
        return luaL_error(L, "%s: option 'dir' must be a string, got %s", fn,
                          luaL_typename(L, -1));
    if (t == LUA_TSTRING)
        dir = lua_tostring(L, -1);
    int pad = 32;
    t = lua_getfield(L, 1, "pad");
    int keep_size = t == LUA_TBOOLEAN && !lua_toboolean(L, -1);   /* pad = false */
    lua_pop(L, 1);
    if (keep_size)
        pad = 0;
    else if (t == LUA_TNUMBER)
        pad = lopl_opt_int(L, 1, fn, "pad", 32, 28);
    else if (t != LUA_TNIL)
        return luaL_error(L, "%s: option 'pad' must be a size or false", fn);
    int normalize = lopl_opt_bool(L, 1, fn, "normalize", 1);
    int train_size = lopl_opt_int(L, 1, fn, "train_size", 0, 1);
    int test_size = lopl_opt_int(L, 1, fn, "test_size", 0, 1);

    lua_createtable(L, 0, 2);
    fashion_split(L, dir, "train", train_size, pad, normalize);
    lua_setfield(L, -2, "train");
    fashion_split(L, dir, "t10k", test_size, pad, normalize);
    lua_setfield(L, -2, "test");
    return 1;
}

void lopl_open_data(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"size", ds_size},   {"shape", ds_shape},         {"classes", ds_classes},
        {"subset", ds_subset}, {"pad", ds_pad},           {"normalize", ds_normalize},
        {"image", ds_image}, {"label", ds_label},         {"batch", ds_batch},
        {"skipped", ds_skipped}, {"close", ds_close},     {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__tostring", ds_tostring}, {"__len", ds_size}, {"__gc", ds_close},
        {"__close", ds_close},       {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"idx", data_idx},
        {"cifar10", data_cifar10},
        {"tensor", data_tensor},
        {"fashion_mnist", data_fashion_mnist},
        {"npy", lopl_data_npy},
        {"folder", lopl_data_folder}, {"read_image", lopl_data_read_image},   /* l_folder.c */
        {NULL, NULL},
    };
    lopl_newmeta(L, LOPL_DATASET, methods, meta);
    luaL_newlib(L, funcs);
    lua_setfield(L, -2, "data");
}
