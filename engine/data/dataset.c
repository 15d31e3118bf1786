/*
 * dataset.c - what training does with a data set: copy a range, pad and normalise it
 * once up front, and per step shuffle the order and gather a batch, optionally with
 * the standard crop and flip augmentation.  Gathering is plain row copies so it never
 * costs more than moving the bytes.  A streamed set (images from a lop_source) offers
 * the same calls except padding and normalisation, which its opener's options set: a
 * subset shares the source, a batch reads its items through it.
 *
 * Augmentation draws from rng per item, in item order: with crop_pad = p > 0,
 * dy = lop_rng_below(rng, 2p + 1) - p, then dx the same way; then with flip,
 * mirror = lop_rng_below(rng, 2).  The item becomes
 *     out[c][y][x] = in[c][y + dy][xs + dx],  xs = mirror ? W - 1 - x : x,
 * with zero where the source lies outside the image: a random crop of the original
 * size from the image zero-padded by p, then mirrored.  Nothing is drawn for a
 * disabled augmentation, and nothing at all without one.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int lop_dataset_check(const lop_dataset *d, const char *fn)
{
    int ok = d && d->labels && d->n >= 1;
    if (ok && d->images)
        ok = d->images->ndim == 4 && d->images->shape[0] == d->n && !d->source;
    else if (ok)
        ok = d->source && d->source->read && d->source->c >= 1 && d->source->h >= 1 &&
             d->source->w >= 1;
    if (!ok)
        return lop_fail(LOP_EINVAL, "%s: not a loaded data set (need [N, C, H, W] images "
                        "or a source, and N labels)", fn);
    return LOP_OK;
}

/* Padding and normalisation rewrite the images in memory. */
static int check_in_memory(const lop_dataset *d, const char *fn)
{
    int st = lop_dataset_check(d, fn);
    if (st == LOP_OK && d->source)
        st = lop_fail(LOP_EINVAL, "%s: the data set is streamed from %s, not held in memory; "
                      "its image size and normalisation are options of the function that "
                      "opened it", fn, d->source->kind ? d->source->kind : "files");
    return st;
}

void lop_dataset_shape(const lop_dataset *d, int chw[3])
{
    chw[0] = chw[1] = chw[2] = 0;
    if (d && d->images && d->images->ndim == 4) {
        for (int i = 0; i < 3; i++)
            chw[i] = d->images->shape[i + 1];
    } else if (d && d->source) {
        chw[0] = d->source->c;
        chw[1] = d->source->h;
        chw[2] = d->source->w;
    }
}

int lop_dataset_check_input(const lop_dataset *d, const lop_graph *g, const char *who)
{
    int st = lop_dataset_check(d, who);
    if (st != LOP_OK)
        return st;
    if (!g || g->n < 1)
        return lop_fail(LOP_ESTATE, "%s: the network has no input", who);
    const lop_node *in = g->nodes[0];
    int chw[3];
    lop_dataset_shape(d, chw);
    if (in->ndim == 3 && in->dims[0] == chw[0] && in->dims[1] == chw[1] &&
        in->dims[2] == chw[2])
        return LOP_OK;
    char takes[48] = "";   /* at most three dimensions of 11 characters */
    for (int i = 0, len = 0; i < in->ndim; i++)
        len += snprintf(takes + len, sizeof takes - (size_t)len, "%s%d", i ? "x" : "",
                        in->dims[i]);
    return lop_fail(LOP_ESHAPE, "%s: the images are %dx%dx%d, the network takes %s", who,
                    chw[0], chw[1], chw[2], takes);
}

void lop_dataset_free(lop_dataset *d)
{
    if (!d)
        return;
    lop_tensor_release(d->images);
    lop_free(d->labels);
    lop_free(d->source_item);
    lop_source_release(d->source);
    memset(d, 0, sizeof *d);
}

int lop_dataset_from_tensor(const lop_tensor *images, const int *labels, int classes,
                            lop_dataset *out)
{
    const char *fn = "lop_dataset_from_tensor";
    if (!images || !labels || !out)
        return lop_fail(LOP_EINVAL, "%s: NULL argument", fn);
    if (images->ndim != 4 || images->shape[0] < 1)
        return lop_fail(LOP_ESHAPE, "%s: images must be [N, C, H, W] with N >= 1 (got %d "
                        "dimensions)", fn, images->ndim);
    if (classes < 0)
        return lop_fail(LOP_EINVAL, "%s: %d classes", fn, classes);
    int n = images->shape[0], top = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] == INT_MAX || (classes > 0 && labels[i] >= classes))
            return lop_fail(LOP_EINVAL, "label %d of item %d is outside 0..%d", labels[i],
                            i + 1, classes > 0 ? classes - 1 : INT_MAX - 1);
        if (labels[i] > top)
            top = labels[i];
    }
    size_t item = images->numel / (size_t)n;
    for (size_t k = 0; k < images->numel; k++)
        if (!isfinite(images->data[k]))
            return lop_fail(LOP_EINVAL, "image %zu holds %g, not a finite number",
                            k / item + 1, (double)images->data[k]);
    lop_tensor *copy = lop_tensor_clone(images);
    int *own = lop_malloc((size_t)n * sizeof *own);
    if (!copy || !own) {
        lop_tensor_release(copy);
        lop_free(own);
        return LOP_ENOMEM;
    }
    memcpy(own, labels, (size_t)n * sizeof *own);
    *out = (lop_dataset){.images = copy, .labels = own, .n = n,
                         .classes = classes > 0 ? classes : top + 1};
    return LOP_OK;
}

/* Items [start, start + count) of a streamed set: the same source, mapped items. */
static int subset_streamed(const lop_dataset *d, int start, int count, lop_dataset *out)
{
    int *labels = lop_malloc((size_t)count * sizeof *labels);
    int *items = lop_malloc((size_t)count * sizeof *items);
    if (!labels || !items) {
        lop_free(labels);
        lop_free(items);
        return LOP_ENOMEM;
    }
    for (int i = 0; i < count; i++)
        items[i] = lop_dataset_source_item(d, start + i);
    memcpy(labels, d->labels + start, (size_t)count * sizeof *labels);
    *out = (lop_dataset){.labels = labels, .n = count, .classes = d->classes,
                         .source = lop_source_retain(d->source), .source_item = items};
    return LOP_OK;
}

int lop_dataset_subset(const lop_dataset *d, int start, int count, lop_dataset *out)
{
    int st = lop_dataset_check(d, "lop_dataset_subset");
    if (st != LOP_OK)
        return st;
    if (!out || start < 0 || count < 1 || start > d->n - count)
        return lop_fail(LOP_EINVAL, "lop_dataset_subset: %d items from %d do not fit in a "
                        "data set of %d", count, start, d->n);
    if (d->source)
        return subset_streamed(d, start, count, out);
    int shape[4] = {count, d->images->shape[1], d->images->shape[2], d->images->shape[3]};
    lop_tensor *images = lop_tensor_new(4, shape);
    int *labels = lop_malloc((size_t)count * sizeof *labels);
    if (!images || !labels) {
        lop_tensor_release(images);
        lop_free(labels);
        return LOP_ENOMEM;
    }
    size_t item = images->numel / (size_t)count;
    memcpy(images->data, d->images->data + (size_t)start * item, images->numel * sizeof(float));
    memcpy(labels, d->labels + start, (size_t)count * sizeof *labels);
    *out = (lop_dataset){.images = images, .labels = labels, .n = count,
                         .classes = d->classes};
    return LOP_OK;
}

int lop_dataset_pad(lop_dataset *d, int size)
{
    int st = check_in_memory(d, "lop_dataset_pad");
    if (st != LOP_OK)
        return st;
    const lop_tensor *old = d->images;
    int n = old->shape[0], c = old->shape[1], h = old->shape[2], w = old->shape[3];
    if (size < h || size < w)
        return lop_fail(LOP_EINVAL, "lop_dataset_pad: cannot pad %dx%d images to %dx%d", h, w,
                        size, size);
    if ((double)n * c * size * size > (double)(SIZE_MAX / sizeof(float)))
        return lop_fail(LOP_EINVAL, "lop_dataset_pad: %dx%d images are too large", size, size);
    if (size == h && size == w)
        return LOP_OK;
    int shape[4] = {n, c, size, size};
    lop_tensor *padded = lop_tensor_new(4, shape);   /* zero-filled */
    if (!padded)
        return LOP_ENOMEM;
    /* An odd difference puts the extra row/column at the bottom/right. */
    int top = (size - h) / 2, left = (size - w) / 2;
    for (size_t p = 0; p < (size_t)n * c; p++) {
        const float *src = old->data + p * h * w;
        float *dst = padded->data + (p * size + top) * size + left;
        for (int y = 0; y < h; y++)
            memcpy(dst + (size_t)y * size, src + (size_t)y * w, (size_t)w * sizeof(float));
    }
    lop_tensor_release(d->images);
    d->images = padded;
    return LOP_OK;
}

int lop_dataset_normalize(lop_dataset *d, const float *mean, const float *std, int nchannels)
{
    int st = check_in_memory(d, "lop_dataset_normalize");
    if (st != LOP_OK)
        return st;
    int c = d->images->shape[1];
    if (!mean || !std || (nchannels != 1 && nchannels != c))
        return lop_fail(LOP_EINVAL, "lop_dataset_normalize: need 1 or %d mean/std values, "
                        "got %d", c, nchannels);
    for (int k = 0; k < nchannels; k++)
        if (!(std[k] > 0) || mean[k] != mean[k])
            return lop_fail(LOP_EINVAL, "lop_dataset_normalize: channel %d has mean %g and "
                            "std %g; std must be positive and mean a number", k, mean[k],
                            std[k]);
    size_t plane = (size_t)d->images->shape[2] * d->images->shape[3];
    float *x = d->images->data;
    for (size_t p = 0; p < (size_t)d->n * c; p++) {
        int k = nchannels == 1 ? 0 : (int)(p % c);
        float m = mean[k], s = std[k];
        float *row = x + p * plane;
        for (size_t i = 0; i < plane; i++)
            row[i] = (row[i] - m) / s;
    }
    return LOP_OK;
}

void lop_shuffle(int *perm, int n, lop_rng *rng)
{
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = lop_rng_below(rng, i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* One item shifted by (dy, dx) and optionally mirrored, as the header comment says. */
static void shift_copy(float *dst, const float *src, int c, int h, int w, int dy, int dx,
                       int mirror)
{
    /* Output columns [x0, x1) of the unmirrored crop have a source pixel; |dx| <= w
     * (crop_pad is at most w) keeps the range non-negative. */
    int x0 = dx < 0 ? -dx : 0, x1 = dx > 0 ? w - dx : w;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++) {
            float *out = dst + ((size_t)ch * h + y) * w;
            int sy = y + dy;
            if (sy < 0 || sy >= h) {
                memset(out, 0, (size_t)w * sizeof(float));
                continue;
            }
            const float *in = src + ((size_t)ch * h + sy) * w;
            if (!mirror) {
                memset(out, 0, (size_t)x0 * sizeof(float));
                memcpy(out + x0, in + x0 + dx, (size_t)(x1 - x0) * sizeof(float));
                memset(out + x1, 0, (size_t)(w - x1) * sizeof(float));
            } else {
                /* out[x] = crop[w - 1 - x], nonzero for x in [w - x1, w - x0). */
                memset(out, 0, (size_t)(w - x1) * sizeof(float));
                for (int x = w - x1; x < w - x0; x++)
                    out[x] = in[w - 1 - x + dx];
                memset(out + (w - x0), 0, (size_t)x0 * sizeof(float));
            }
        }
}

void lop_augment_apply(float *dst, const float *src, int c, int h, int w,
                       const lop_augment *aug, lop_rng *rng)
{
    int pad = aug ? aug->crop_pad : 0, flip = aug ? aug->flip : 0;
    if (!pad && !flip) {
        memcpy(dst, src, (size_t)c * h * w * sizeof(float));
        return;
    }
    int dy = 0, dx = 0;
    if (pad) {
        dy = lop_rng_below(rng, 2 * pad + 1) - pad;
        dx = lop_rng_below(rng, 2 * pad + 1) - pad;
    }
    int mirror = flip && lop_rng_below(rng, 2);
    shift_copy(dst, src, c, h, w, dy, dx, mirror);
}

/* Streamed items through the source on this thread, as lop_dataset_batch documents. */
static int batch_streamed(const lop_dataset *d, const int *idx, int count,
                          const lop_augment *aug, lop_rng *rng, float *x)
{
    size_t item = (size_t)d->source->c * d->source->h * d->source->w;
    float *scratch = NULL;
    if (aug && (aug->crop_pad || aug->flip) && !(scratch = lop_malloc(item * sizeof *scratch)))
        return LOP_ENOMEM;
    int st = LOP_OK;
    char why[256];
    for (int k = 0; k < count && st == LOP_OK; k++) {
        uint64_t seed = rng ? lop_item_seed(rng) : 0;
        int at = lop_dataset_source_item(d, idx[k]);
        st = lop_source_read_item(d->source, at, seed, aug, x + (size_t)k * item, scratch,
                                  why, sizeof why);
        if (st != LOP_OK)
            lop_fail(st, "%s", why);
    }
    lop_free(scratch);
    return st;
}

int lop_dataset_batch(const lop_dataset *d, const int *idx, int count,
                      const lop_augment *aug, lop_rng *rng, lop_tensor **x, int *labels)
{
    int st = lop_dataset_check(d, "lop_dataset_batch");
    if (st != LOP_OK)
        return st;
    if (!idx || !x || count < 1)
        return lop_fail(LOP_EINVAL, "lop_dataset_batch: need indices, an output and a "
                        "positive count (got %d)", count);
    int chw[3];
    lop_dataset_shape(d, chw);
    int c = chw[0], h = chw[1], w = chw[2];
    int pad = aug ? aug->crop_pad : 0, flip = aug ? aug->flip : 0;
    if (pad < 0 || pad > h || pad > w)
        return lop_fail(LOP_EINVAL, "lop_dataset_batch: crop_pad %d is outside 0..%d", pad,
                        h < w ? h : w);
    if ((pad || flip) && !rng)
        return lop_fail(LOP_EINVAL, "lop_dataset_batch: augmentation needs an rng");
    for (int k = 0; k < count; k++)
        if (idx[k] < 0 || idx[k] >= d->n)
            return lop_fail(LOP_EINVAL, "lop_dataset_batch: index %d at position %d is "
                            "outside 0..%d", idx[k], k, d->n - 1);
    int shape[4] = {count, c, h, w};
    st = lop_tensor_ensure(x, 4, shape);
    if (st != LOP_OK)
        return st;

    size_t item = (size_t)c * h * w;
    float *out = (*x)->data;
    if (d->source)
        st = batch_streamed(d, idx, count, aug, rng, out);
    else
        for (int k = 0; k < count; k++)
            lop_augment_apply(out + (size_t)k * item, d->images->data + (size_t)idx[k] * item,
                              c, h, w, aug, rng);
    if (st == LOP_OK && labels)
        for (int k = 0; k < count; k++)
            labels[k] = d->labels[idx[k]];
    return st;
}
