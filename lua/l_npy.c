/*
 * l_npy.c - lop.data.npy: NumPy .npy images and labels as a streamed data set
 * (engine/data/npy.c: the images stay memory-mapped and are converted as batches are
 * drawn), with what a script says about them: the layout, the class count, and the
 * normalisation as numbers, per-channel lists or the ImageNet preset.
 */
#include <string.h>

#include "binding.h"

static const char *const fn = "data.npy";

/* lop.data.npy(images, labels, {channels_last=, classes=, mean=, std=, normalize=}) -> ds
 * (streamed: the images file stays mapped while the data set lives). */
int lopl_data_npy(lua_State *L)
{
    static const char *const known[] = {"channels_last", "classes", "mean", "std",
                                        "normalize", NULL};
    const char *images = lopl_check_cstring(L, 1), *labels = lopl_check_cstring(L, 2);
    lua_settop(L, 3);
    lopl_check_opts(L, 3, fn, known);
    lop_npy_opts o = lop_npy_opts_default();
    o.channels_last = lopl_opt_bool(L, 3, fn, "channels_last", 0);
    o.classes = lopl_opt_int(L, 3, fn, "classes", 0, 1);
    lopl_norm norm;
    lopl_opt_normalization(L, 3, fn, &norm);
    memcpy(o.mean, norm.mean, sizeof o.mean);
    memcpy(o.std, norm.std, sizeof o.std);

    lopl_dataset *u = lopl_new_dataset(L);
    if (lop_dataset_open_npy(images, labels, &o, &u->d) != LOP_OK)
        return lopl_fail(L, fn);
    /* Per-channel values must match the images' channels, known only now. */
    const char *misfit = lopl_normalization_misfit(L, &norm, u->d.source->c, images);
    if (misfit) {
        lop_dataset_free(&u->d);
        return luaL_error(L, "%s: %s", fn, misfit);
    }
    lopl_dataset_loaded(L, u);
    return 1;
}
