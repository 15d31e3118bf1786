/*
 * dataset.c - what training does with a loaded data set: copy a range, pad and
 * normalise it once up front, and per step shuffle the order and gather a batch,
 * optionally with the standard crop and flip augmentation.  Gathering is plain row
 * copies so it never costs more than moving the bytes.
 *
 * Augmentation draws from rng per item, in item order: with crop_pad = p > 0,
 * dy = lop_rng_below(rng, 2p + 1) - p, then dx the same way; then with flip,
 * mirror = lop_rng_below(rng, 2).  The item becomes
 *     out[c][y][x] = in[c][y + dy][xs + dx],  xs = mirror ? W - 1 - x : x,
 * with zero where the source lies outside the image: a random crop of the original
 * size from the image zero-padded by p, then mirrored.  Nothing is drawn for a
 * disabled augmentation, and nothing at all without one.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

static int check_dataset(const lop_dataset *d, const char *fn)
{
    if (!d || !d->images || d->images->ndim != 4 || d->images->shape[0] != d->n ||
        !d->labels)
        return lop_fail(LOP_EINVAL, "%s: not a loaded data set (need [N, C, H, W] images "
                        "and N labels)", fn);
    return LOP_OK;
}

void lop_dataset_free(lop_dataset *d)
{
    if (!d)
        return;
    lop_tensor_release(d->images);
    lop_free(d->labels);
    memset(d, 0, sizeof *d);
}

int lop_dataset_subset(const lop_dataset *d, int start, int count, lop_dataset *out)
{
    int st = check_dataset(d, "lop_dataset_subset");
    if (st != LOP_OK)
        return st;
    if (!out || start < 0 || count < 1 || start > d->n - count)
        return lop_fail(LOP_EINVAL, "lop_dataset_subset: %d items from %d do not fit in a "
                        "data set of %d", count, start, d->n);
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
    out->images = images;
    out->labels = labels;
    out->n = count;
    out->classes = d->classes;
    return LOP_OK;
}

int lop_dataset_pad(lop_dataset *d, int size)
{
    int st = check_dataset(d, "lop_dataset_pad");
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
    int st = check_dataset(d, "lop_dataset_normalize");
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

int lop_dataset_batch(const lop_dataset *d, const int *idx, int count,
                      const lop_augment *aug, lop_rng *rng, lop_tensor **x, int *labels)
{
    int st = check_dataset(d, "lop_dataset_batch");
    if (st != LOP_OK)
        return st;
    if (!idx || !x || count < 1)
        return lop_fail(LOP_EINVAL, "lop_dataset_batch: need indices, an output and a "
                        "positive count (got %d)", count);
    const lop_tensor *im = d->images;
    int c = im->shape[1], h = im->shape[2], w = im->shape[3];
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
    for (int k = 0; k < count; k++) {
        const float *src = im->data + (size_t)idx[k] * item;
        float *dst = (*x)->data + (size_t)k * item;
        if (!pad && !flip) {
            memcpy(dst, src, item * sizeof(float));
        } else {
            int dy = 0, dx = 0;
            if (pad) {
                dy = lop_rng_below(rng, 2 * pad + 1) - pad;
                dx = lop_rng_below(rng, 2 * pad + 1) - pad;
            }
            int mirror = flip && lop_rng_below(rng, 2);
            shift_copy(dst, src, c, h, w, dy, dx, mirror);
        }
        if (labels)
            labels[k] = d->labels[idx[k]];
    }
    return LOP_OK;
}
