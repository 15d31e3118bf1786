/*
 * image_preprocess.c - decoded pixels to a network input: resize so the shorter side
 * has a given length, crop, mirror, normalise, in one sweep over the crop.
 *
 * The resize is PIL's BILINEAR (what torchvision's Resize uses on PIL images): a
 * triangle filter widened by the shrink factor, so downscaling averages every input
 * pixel instead of skipping most (antialiased), separable, with PIL's window bounds
 * and weights normalised per output pixel.  It runs in float (PIL rounds to 8 bits
 * after each pass, so the two differ by less than one level of 255).  Only the
 * output pixels inside the crop are computed: the horizontal pass over the input rows
 * the crop's vertical taps touch, then the vertical pass, and each finished row is
 * written mirrored or not, normalised, into the planar output.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data/image.h"

/* The filter taps of outputs [o0, o0 + n) of resizing `in` samples to `out`: output j
 * reads count[j] inputs from first[j] with weights w[j * ksize ...]. */
typedef struct taps {
    int ksize;
    int *first, *count;
    float *w;
} taps;

static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int taps_make(int in, int out, int o0, int n, taps *t)
{
    double scale = (double)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale;   /* the triangle's support (1) widened */
    int ksize = (int)ceil(support) * 2 + 1;
    t->ksize = ksize;
    t->first = lop_malloc(2 * (size_t)n * sizeof(int));
    t->w = lop_malloc((size_t)n * (size_t)ksize * sizeof(float));
    if (!t->first || !t->w)
        return LOP_ENOMEM;
    t->count = t->first + n;
    for (int j = 0; j < n; j++) {
        double center = (o0 + j + 0.5) * scale, sum = 0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        lo = lo < 0 ? 0 : lo;
        hi = hi > in ? in : hi;
        hi = hi - lo > ksize ? lo + ksize : hi;
        float *w = t->w + (size_t)j * ksize;
        for (int i = 0; i < hi - lo; i++)
            sum += triangle((lo + i - center + 0.5) / filterscale);
        for (int i = 0; i < hi - lo; i++) {
            double k = triangle((lo + i - center + 0.5) / filterscale);
            w[i] = (float)(sum != 0.0 ? k / sum : k);
        }
        t->first[j] = lo;
        t->count[j] = hi - lo;
    }
    return LOP_OK;
}

static void taps_free(taps *t)
{
    lop_free(t->first);
    lop_free(t->w);
}

/* Write one finished row of the crop (ow pixels of ic interleaved channels) as row y
 * of the oc output planes: mirrored if asked, repeated when grey becomes colour. */
static void emit_row(const lop_image_plan *p, int ic, const float *row, int y, float *out)
{
    for (int c = 0; c < p->oc; c++) {
        float *dst = out + ((size_t)c * p->oh + y) * p->ow;
        const float *src = row + (ic == 1 ? 0 : c);
        float div = p->div, mean = p->mean[c], std = p->std[c];
        if (p->flip)
            for (int x = 0; x < p->ow; x++)
                dst[x] = (src[(size_t)(p->ow - 1 - x) * ic] / div - mean) / std;
        else
            for (int x = 0; x < p->ow; x++)
                dst[x] = (src[(size_t)x * ic] / div - mean) / std;
    }
}

/* The crop straight from the pixels (no resize). */
static int run_direct(const lop_image *im, const lop_image_plan *p, float *out)
{
    int ic = im->c;
    float *row = lop_malloc((size_t)p->ow * ic * sizeof(float));
    if (!row)
        return LOP_ENOMEM;
    for (int y = 0; y < p->oh; y++) {
        const unsigned char *src = im->px + ((size_t)(p->y0 + y) * im->w + p->x0) * ic;
        for (size_t i = 0; i < (size_t)p->ow * ic; i++)
            row[i] = src[i];
        emit_row(p, ic, row, y, out);
    }
    lop_free(row);
    return LOP_OK;
}

/* Horizontal pass: input row r (ic interleaved channels) through tx into dst (ow
 * pixels).  ic is 1 or 3; written twice so each loop has a constant stride. */
static void resize_row(const unsigned char *src, int ic, const taps *tx, int ow, float *dst)
{
    for (int x = 0; x < ow; x++) {
        const float *w = tx->w + (size_t)x * tx->ksize;
        const unsigned char *s = src + (size_t)tx->first[x] * ic;
        int n = tx->count[x];
        if (ic == 1) {
            float a = 0;
            for (int k = 0; k < n; k++)
                a += w[k] * s[k];
            dst[x] = a;
        } else {
            float a = 0, b = 0, c = 0;
            for (int k = 0; k < n; k++) {
                a += w[k] * s[3 * k];
                b += w[k] * s[3 * k + 1];
                c += w[k] * s[3 * k + 2];
            }
            dst[3 * x] = a;
            dst[3 * x + 1] = b;
            dst[3 * x + 2] = c;
        }
    }
}

static int run_resized(const lop_image *im, const lop_image_plan *p, float *out)
{
    int ic = im->c;
    size_t rowlen = (size_t)p->ow * ic;
    taps tx = {0}, ty = {0};
    float *rows = NULL, *row = NULL;
    int st = taps_make(im->w, p->rw, p->x0, p->ow, &tx);
    if (st == LOP_OK)
        st = taps_make(im->h, p->rh, p->y0, p->oh, &ty);
    if (st != LOP_OK)
        goto done;
    /* The input rows the crop's vertical taps read: [r0, r1). */
    int r0 = ty.first[0], r1 = r0;
    for (int y = 0; y < p->oh; y++)
        if (ty.first[y] + ty.count[y] > r1)
            r1 = ty.first[y] + ty.count[y];
    rows = lop_malloc((size_t)(r1 - r0) * rowlen * sizeof(float));
    row = lop_malloc(rowlen * sizeof(float));
    if (!rows || !row) {
        st = LOP_ENOMEM;
        goto done;
    }
    for (int r = r0; r < r1; r++)
        resize_row(im->px + (size_t)r * im->w * ic, ic, &tx, p->ow, rows + (r - r0) * rowlen);
    for (int y = 0; y < p->oh; y++) {
        const float *w = ty.w + (size_t)y * ty.ksize;
        const float *src = rows + (size_t)(ty.first[y] - r0) * rowlen;
        memset(row, 0, rowlen * sizeof(float));
        for (int k = 0; k < ty.count[y]; k++, src += rowlen)
            for (size_t i = 0; i < rowlen; i++)
                row[i] += w[k] * src[i];
        emit_row(p, ic, row, y, out);
    }
done:
    taps_free(&tx);
    taps_free(&ty);
    lop_free(rows);
    lop_free(row);
    return st;
}

int lop_image_run(const lop_image *im, const lop_image_plan *p, float *out)
{
    if (p->rh == im->h && p->rw == im->w)
        return run_direct(im, p, out);
    return run_resized(im, p, out);
}

void lop_image_plan_raw(const lop_image *im, int oc, lop_image_plan *p)
{
    memset(p, 0, sizeof *p);
    p->oc = oc;
    p->rh = p->oh = im->h;
    p->rw = p->ow = im->w;
    p->div = 1;
    for (int c = 0; c < 3; c++)
        p->std[c] = 1;
}

int lop_image_plan_folder(const lop_image *im, const lop_folder_opts *o, uint64_t seed,
                          lop_image_plan *p, char *why, size_t whylen)
{
    memset(p, 0, sizeof *p);
    p->oc = o->channels;
    p->rh = im->h;
    p->rw = im->w;
    int shorter = im->h < im->w ? im->h : im->w, longer = im->h < im->w ? im->w : im->h;
    if (o->resize > 0 && shorter != o->resize) {
        /* Shorter side to `resize`, the longer one in proportion, rounded down (as
         * torchvision's Resize(int) does). */
        long long scaled = (long long)o->resize * longer / shorter;
        if (scaled > LOP_IMAGE_MAX_PIXELS) {
            snprintf(why, whylen, "the %dx%d image would be %d x %lld after resizing", im->w,
                     im->h, o->resize, scaled);
            return LOP_EFORMAT;
        }
        p->rh = im->h == shorter ? o->resize : (int)scaled;
        p->rw = im->h == shorter ? (int)scaled : o->resize;
    }
    p->oh = o->size_h;
    p->ow = o->size_w;
    if (p->rh < p->oh || p->rw < p->ow) {
        if (p->rh == im->h && p->rw == im->w)
            snprintf(why, whylen, "the image is %dx%d (width x height), smaller than the "
                     "%dx%d crop", im->w, im->h, p->ow, p->oh);
        else
            snprintf(why, whylen, "the %dx%d image (width x height) is %dx%d after resizing "
                     "to %d, smaller than the %dx%d crop", im->w, im->h, p->rw, p->rh,
                     o->resize, p->ow, p->oh);
        return LOP_EFORMAT;
    }
    p->y0 = (p->rh - p->oh) / 2;
    p->x0 = (p->rw - p->ow) / 2;
    if (seed != 0) {
        lop_rng rng;
        lop_rng_seed(&rng, seed);
        if (o->random_crop) {
            p->y0 = lop_rng_below(&rng, p->rh - p->oh + 1);
            p->x0 = lop_rng_below(&rng, p->rw - p->ow + 1);
        }
        if (o->flip)
            p->flip = lop_rng_below(&rng, 2);
    }
    p->div = 255;
    for (int c = 0; c < 3; c++) {
        p->mean[c] = o->mean[c];
        p->std[c] = o->std[c];
    }
    return LOP_OK;
}
