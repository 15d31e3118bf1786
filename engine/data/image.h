/*
 * image.h - what the three parts of the image folder reader share: decoding PNG and
 * JPEG bytes into 8-bit pixels (image_decode.c), turning those pixels into a network
 * input - resize, crop, flip, normalise - (image_preprocess.c), and the folder itself
 * with its files (image_folder.c).  The fuzz harness drives the first two directly.
 *
 * None of these functions sets the thread's error message: they run on a loader's
 * worker threads and say what went wrong in a caller's `why` buffer instead.
 */
#ifndef LOPPER_IMAGE_H
#define LOPPER_IMAGE_H

#include "internal.h"

/* Largest image decoded (width x height), checked from the header before any pixel
 * buffer is allocated: a few hundred bytes of PNG or JPEG can declare gigapixels. */
#define LOP_IMAGE_MAX_PIXELS (64L << 20)
/* Largest file read into memory. */
#define LOP_IMAGE_MAX_FILE ((size_t)1 << 28)
/* Bytes that tell the formats apart (PNG's signature is the longest). */
#define LOP_IMAGE_MAGIC_LEN 8

typedef enum { LOP_IMAGE_UNKNOWN, LOP_IMAGE_PNG, LOP_IMAGE_JPEG } lop_image_type;

/* Which format the first len bytes of a file announce. */
lop_image_type lop_image_sniff(const unsigned char *head, size_t len);

/* Decoded pixels: h rows of w * c bytes, channels interleaved; c is 1 (grey) or 3
 * (R, G, B). */
typedef struct lop_image {
    int w, h, c;
    unsigned char *px;     /* lop_malloc'd; lop_image_free */
} lop_image;

/* Decode a PNG or JPEG held in memory (told by its first bytes).  channels 1 turns
 * colour into grey (the same integer formula as PIL's convert("L")); 3 or 0 keeps
 * the file's own (grey stays one channel: the preprocessing repeats it).  Palette,
 * low-bit-depth and 16-bit PNGs become 8-bit (16-bit values v as round(v / 257)), an
 * alpha channel is dropped, gamma chunks are ignored (values as stored).  Images of
 * more than max_pixels are refused before allocating.  Returns LOP_OK, LOP_EFORMAT
 * (bad or unsupported data: why says what the library reported) or LOP_ENOMEM. */
int lop_image_decode(const unsigned char *data, size_t len, int channels, long max_pixels,
                     lop_image *out, char *why, size_t whylen);
void lop_image_free(lop_image *im);

/* What the preprocessing does to one image: the size after resizing (the image's own
 * when there is no resize), the crop window in those coordinates, whether to mirror
 * it, and out = (v / div - mean[c]) / std[c] on each value v. */
typedef struct lop_image_plan {
    int oc;                /* output channels (1 or 3; a grey image is repeated) */
    int rh, rw;            /* size after resizing */
    int y0, x0, oh, ow;    /* the crop */
    int flip;
    float div, mean[3], std[3];
} lop_image_plan;

/* The plan an image folder with options o applies to im: resize, then the centred
 * crop (seed 0) or, training (seed != 0), a crop and flip drawn from a lop_rng seeded
 * with seed - y0, then x0 when o->random_crop, then the flip when o->flip.  An image
 * smaller than the crop is LOP_EFORMAT. */
int lop_image_plan_folder(const lop_image *im, const lop_folder_opts *o, uint64_t seed,
                          lop_image_plan *p, char *why, size_t whylen);
/* The plan that writes im's raw values (0..255) as oc planes, unchanged. */
void lop_image_plan_raw(const lop_image *im, int oc, lop_image_plan *p);
/* Run a plan: out receives oc x oh x ow floats, planar.  LOP_OK or LOP_ENOMEM. */
int lop_image_run(const lop_image *im, const lop_image_plan *p, float *out);

#endif
