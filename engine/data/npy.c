/*
 * npy.c - NumPy arrays as a streamed data set (lop_dataset_open_npy): the images file
 * stays memory-mapped and is never read whole, so a set larger than memory trains as
 * easily as a small one; the source's read() turns one image at a time into floats
 * (uint8 / 255 or float32 as stored, NHWC to NCHW, then (v - mean) / std) on the
 * loader's worker threads.  The labels are small: read whole, checked, kept in memory.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data/npy.h"
#include "internal.h"

#define NPY_MAX_CLASSES 100000
#define NPY_MAX_CHANNELS 1024
#define NPY_MAX_IMAGE ((size_t)1 << 27)   /* floats per image (512 MB) */
#define NPY_WORKERS 2   /* conversion is cheap; a second thread overlaps page faults */

typedef struct npy_source {
    lop_source base;       /* first: the loader sees a lop_source */
    lop_npy_file file;     /* the images, mapped */
    int n;
    int channels_last;
    size_t item_bytes;
    /* Channel c converts with parameter set c when there are at most 3 channels, set 0
     * otherwise (lop_npy_opts).  uint8 images: lut[set][byte], the whole conversion;
     * float32: mean and std. */
    int sets;
    float mean[3], std[3];
    float lut[3][256];
    char path[];           /* file.path points here */
} npy_source;

lop_npy_opts lop_npy_opts_default(void)
{
    lop_npy_opts o = {.channels_last = 0, .classes = 0};
    for (int k = 0; k < 3; k++) {
        o.mean[k] = 0.0f;
        o.std[k] = 1.0f;
    }
    return o;
}

/* One float32 element at p (any alignment), byte-swapped from big-endian when swap. */
static inline float load_f32(const unsigned char *p, int swap)
{
    uint32_t u;
    memcpy(&u, p, 4);
    if (swap)
        u = (u >> 24) | ((u >> 8) & 0xff00u) | ((u << 8) & 0xff0000u) | (u << 24);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Image item into out ([c, h, w]): element (channel ch, pixel i) of the item is at
 * byte offset (channels_last ? i * c + ch : ch * plane + i) * size. */
static int npy_read(lop_source *s, int item, uint64_t seed, float *out, char *why,
                    size_t whylen)
{
    npy_source *ns = (npy_source *)s;
    if (item < 0 || item >= ns->n) {
        snprintf(why, whylen, "%s: item %d is outside 0..%d", ns->path, item, ns->n - 1);
        return LOP_EINVAL;
    }
    size_t c = (size_t)s->c, plane = (size_t)s->h * (size_t)s->w;
    size_t cstride = ns->channels_last ? 1 : plane, pstride = ns->channels_last ? c : 1;
    const unsigned char *src = ns->file.data + (size_t)item * ns->item_bytes;
    for (size_t ch = 0; ch < c; ch++) {
        int set = ns->sets == 1 ? 0 : (int)ch;
        float *dst = out + ch * plane;
        if (ns->file.kind == 'u') {
            const float *lut = ns->lut[set];
            const unsigned char *in = src + ch * cstride;
            for (size_t i = 0; i < plane; i++)
                dst[i] = lut[in[i * pstride]];
        } else {
            const unsigned char *in = src + ch * cstride * 4;
            float m = ns->mean[set], sd = ns->std[set];
            int swap = ns->file.swap;
            for (size_t i = 0; i < plane; i++)
                dst[i] = (load_f32(in + i * pstride * 4, swap) - m) / sd;
        }
    }
    return LOP_OK;
}

static void npy_destroy(lop_source *s)
{
    npy_source *ns = (npy_source *)s;
    lop_npy_unmap(&ns->file);
    lop_free(ns);
}

static int check_opts(const lop_npy_opts *o)
{
    if (o->classes < 0 || o->classes > NPY_MAX_CLASSES)
        return lop_fail(LOP_EINVAL, "npy: classes must be in 0..%d "
                        "(0: one more than the largest label), got %d", NPY_MAX_CLASSES,
                        o->classes);
    for (int k = 0; k < 3; k++)
        if (!isfinite(o->mean[k]) || !isfinite(o->std[k]) || !(o->std[k] > 0))
            return lop_fail(LOP_EINVAL, "npy: channel %d has mean %g and "
                            "std %g; std must be positive and both finite", k, o->mean[k],
                            o->std[k]);
    return LOP_OK;
}

/* The images' layout: c, h, w from [N, C, H, W], [N, H, W, C] or [N, H, W]. */
static int check_images(const lop_npy_file *f, int channels_last, int chw[3])
{
    char shape[160];
    lop_npy_shape_str(f, shape, sizeof shape);
    if (!((f->kind == 'u' && f->size == 1) || (f->kind == 'f' && f->size == 4)))
        return lop_fail(LOP_EFORMAT, "%s: images of dtype '%s' are not supported: save "
                        "uint8 or float32 (x.astype(np.float32))", f->path, f->descr);
    if (f->ndim != 3 && f->ndim != 4)
        return lop_fail(LOP_EFORMAT, "%s: images have shape %s; expected [N, C, H, W], "
                        "[N, H, W, C] (channels_last) or [N, H, W]", f->path, shape);
    if (f->ndim == 3) {
        chw[0] = 1;
        chw[1] = f->shape[1];
        chw[2] = f->shape[2];
    } else if (channels_last) {
        chw[0] = f->shape[3];
        chw[1] = f->shape[1];
        chw[2] = f->shape[2];
    } else {
        chw[0] = f->shape[1];
        chw[1] = f->shape[2];
        chw[2] = f->shape[3];
    }
    if (f->shape[0] == 0)
        return lop_fail(LOP_EFORMAT, "%s: holds no images (shape %s)", f->path, shape);
    if (chw[0] == 0 || chw[1] == 0 || chw[2] == 0)
        return lop_fail(LOP_EFORMAT, "%s: images of shape %s are empty (%dx%dx%d)", f->path,
                        shape, chw[0], chw[1], chw[2]);
    if (chw[0] > NPY_MAX_CHANNELS)
        return lop_fail(LOP_EFORMAT, "%s: images of shape %s have %d channels, more than "
                        "%d%s", f->path, shape, chw[0], NPY_MAX_CHANNELS,
                        channels_last ? "" : " (are they [N, H, W, C]? set channels_last)");
    /* No overflow: the file holds N >= 1 images of c * h * w values. */
    if ((size_t)chw[0] * (size_t)chw[1] * (size_t)chw[2] > NPY_MAX_IMAGE)
        return lop_fail(LOP_EFORMAT, "%s: images of %dx%dx%d are larger than %zu values each",
                        f->path, chw[0], chw[1], chw[2], NPY_MAX_IMAGE);
    return LOP_OK;
}

/* Label i of f, sign-extended for signed types (reinterpret as int64 to read it). */
static uint64_t label_bits(const lop_npy_file *f, size_t i)
{
    const unsigned char *p = f->data + i * (size_t)f->size;
    int bits = 8 * f->size;
    uint64_t u = 0;
    for (int b = 0; b < f->size; b++)   /* little-endian unless swap */
        u |= (uint64_t)p[f->swap ? f->size - 1 - b : b] << (8 * b);
    if (f->kind == 'i' && bits < 64 && (u >> (bits - 1)) & 1)
        u |= ~(uint64_t)0 << bits;
    return u;
}

/* The labels, checked (a 1-D integer array of n, each in 0..classes-1) and converted;
 * *classes becomes 1 + the largest when 0. */
static int read_labels(const lop_npy_file *f, int n, const char *images_path, int *classes,
                       int **out)
{
    char shape[160];
    lop_npy_shape_str(f, shape, sizeof shape);
    if (f->kind != 'u' && f->kind != 'i')
        return lop_fail(LOP_EFORMAT, "%s: labels of dtype '%s' are not supported: save an "
                        "integer array (y.astype(np.int64))", f->path, f->descr);
    if (f->ndim != 1)
        return lop_fail(LOP_EFORMAT, "%s: labels have shape %s; expected one dimension (n,)%s",
                        f->path, shape, f->ndim == 2 ? " (save y.ravel())" : "");
    if (f->shape[0] != n)
        return lop_fail(LOP_EFORMAT, "%s holds %d images but %s holds %d labels", images_path,
                        n, f->path, f->shape[0]);
    int limit = *classes ? *classes : NPY_MAX_CLASSES;
    int *labels = lop_malloc((size_t)n * sizeof *labels);
    if (!labels)
        return LOP_ENOMEM;
    int top = 0;
    for (int i = 0; i < n; i++) {
        uint64_t u = label_bits(f, (size_t)i);
        int neg = f->kind == 'i' && (int64_t)u < 0;
        if (neg || u >= (uint64_t)limit) {
            char val[24];
            if (neg)
                snprintf(val, sizeof val, "%lld", (long long)u);
            else
                snprintf(val, sizeof val, "%llu", (unsigned long long)u);
            lop_free(labels);
            return lop_fail(LOP_EFORMAT, "%s: the label at index %d is %s, outside 0..%d (%s)",
                            f->path, i, val, limit - 1, *classes ? "classes is given"
                                                                 : "the most classes allowed");
        }
        labels[i] = (int)u;
        if (labels[i] > top)
            top = labels[i];
    }
    if (!*classes)
        *classes = top + 1;
    *out = labels;
    return LOP_OK;
}

int lop_dataset_open_npy(const char *images_path, const char *labels_path,
                         const lop_npy_opts *o, lop_dataset *out)
{
    if (!images_path || !labels_path || !o || !out)
        return lop_fail(LOP_EINVAL, "lop_dataset_open_npy: NULL argument");
    int st = check_opts(o);
    if (st != LOP_OK)
        return st;
    lop_npy_file im, lb;
    int chw[3] = {0, 0, 0};
    st = lop_npy_map(images_path, &im);
    if (st != LOP_OK)
        return st;
    st = check_images(&im, o->channels_last, chw);
    if (st == LOP_OK)
        st = lop_npy_map(labels_path, &lb);
    if (st != LOP_OK) {
        lop_npy_unmap(&im);
        return st;
    }
    int n = im.shape[0], classes = o->classes, *labels = NULL;
    st = read_labels(&lb, n, images_path, &classes, &labels);
    lop_npy_unmap(&lb);
    size_t plen = strlen(images_path) + 1;
    npy_source *ns = st == LOP_OK ? lop_malloc(sizeof *ns + plen) : NULL;
    if (!ns) {
        lop_npy_unmap(&im);
        lop_free(labels);
        return st == LOP_OK ? LOP_ENOMEM : st;
    }

    memset(ns, 0, sizeof *ns);
    memcpy(ns->path, images_path, plen);
    ns->file = im;
    ns->file.path = ns->path;
    ns->n = n;
    ns->channels_last = im.ndim == 4 && o->channels_last;
    ns->item_bytes = (size_t)chw[0] * chw[1] * chw[2] * (size_t)im.size;
    ns->sets = chw[0] <= 3 ? chw[0] : 1;
    for (int k = 0; k < ns->sets; k++) {
        ns->mean[k] = o->mean[k];
        ns->std[k] = o->std[k];
        for (int b = 0; b < 256; b++)
            ns->lut[k][b] = ((float)b / 255.0f - o->mean[k]) / o->std[k];
    }
    lop_source *s = &ns->base;
    s->c = chw[0];
    s->h = chw[1];
    s->w = chw[2];
    s->workers = NPY_WORKERS;
    s->read = npy_read;
    s->destroy = npy_destroy;
    s->refs = 1;
    s->kind = ".npy";

    memset(out, 0, sizeof *out);
    out->labels = labels;
    out->n = n;
    out->classes = classes;
    out->source = s;
    return LOP_OK;
}
