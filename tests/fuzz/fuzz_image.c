/*
 * fuzz_image.c - libFuzzer target for the image folder's decoder and preprocessing
 * (engine/data/image_decode.c, image_preprocess.c): an input is one file's bytes,
 * PNG or JPEG by its first bytes as in a folder.  Every PNG chunk carries a CRC32
 * that random mutations break, so for inputs of even length the harness recomputes
 * the CRC of each whole chunk first (odd lengths go in as they are, CRC errors
 * included).  An image that decodes is preprocessed twice - the evaluation transform
 * and a training one (random crop, flip) - with channels, resize and crop size taken
 * from the input's length, so shrinking, growing and cropping all see odd sizes.  A
 * failure must say why; a decoded image must have a sane shape, and every output
 * value must be finite and within what 0..255 normalises to.  Images are capped at 4
 * megapixels here (the folder allows 64) to stay under libFuzzer's malloc limit.
 * Built by `make fuzz`, run briefly by `make test`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/image.h"

#define FUZZ_MAX_PIXELS (4L << 20)

static int verbose;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *v = getenv("FUZZ_VERBOSE");
    verbose = v && atoi(v) > 0;
    return 0;
}

static void bug(const char *what, const char *why)
{
    fprintf(stderr, "fuzz: BUG: %s (%s)\n", what, why);
    abort();
}

/* Recompute the CRC of every whole chunk after the PNG signature, in place. */
static void fix_png_crcs(unsigned char *p, size_t n)
{
    size_t at = LOP_IMAGE_MAGIC_LEN;
    while (at + 12 <= n) {
        size_t len = (size_t)p[at] << 24 | (size_t)p[at + 1] << 16 | (size_t)p[at + 2] << 8 |
                     p[at + 3];
        if (len > n - at - 12)
            break;
        uLong crc = crc32(0L, p + at + 4, (uInt)(4 + len));
        for (int i = 0; i < 4; i++)
            p[at + 8 + len + i] = (unsigned char)(crc >> (24 - 8 * i));
        at += 12 + len;
    }
}

/* Run the folder plan of o (seed 0 and a training seed) and check the values. */
static void preprocess(const lop_image *im, lop_folder_opts *o)
{
    for (uint64_t seed = 0; seed < 2; seed++) {
        char why[256] = "";
        lop_image_plan p;
        int st = lop_image_plan_folder(im, o, seed * 12345, &p, why, sizeof why);
        if (st == LOP_EFORMAT && why[0] && (o->size_h > 1 || o->size_w > 1)) {
            o->size_h = o->size_w = 1;   /* too small for the crop: a 1 x 1 one fits */
            st = lop_image_plan_folder(im, o, seed * 12345, &p, why, sizeof why);
        }
        if (st != LOP_OK)
            bug("no plan for a 1x1 crop", why);
        size_t n = (size_t)p.oc * p.oh * p.ow;
        float *out = malloc(n * sizeof *out);
        if (!out || lop_image_run(im, &p, out) != LOP_OK)
            bug("lop_image_run", "out of memory");
        for (size_t i = 0; i < n; i++)
            if (!isfinite(out[i]) || out[i] < -1e-4f || out[i] > 1.0001f)
                bug("a value outside 0..1", "");
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (size % 2 == 0 && lop_image_sniff(copy, size) == LOP_IMAGE_PNG)
        fix_png_crcs(copy, size);
    static const int resizes[] = {0, 1, 5, 16, 33, 0, 64};
    int channels = size % 3 == 0 ? 1 : 3;
    lop_image im = {0};
    char why[256] = "";
    int st = lop_image_decode(copy, size, channels, FUZZ_MAX_PIXELS, &im, why, sizeof why);
    if (verbose)
        fprintf(stderr, "fuzz: decode: %s %s\n", lop_status_name(st), why);
    if (st != LOP_OK) {
        if ((st != LOP_EFORMAT && st != LOP_ENOMEM) || !why[0])
            bug("a failure without LOP_EFORMAT and a message", why);
        free(copy);
        return 0;
    }
    if (im.w < 1 || im.h < 1 || (long)im.w * im.h > FUZZ_MAX_PIXELS ||
        (im.c != 1 && im.c != 3) || (channels == 1 && im.c != 1) || !im.px)
        bug("a decoded image of a bad shape", "");
    lop_folder_opts o = lop_folder_opts_default();
    o.channels = channels;
    o.resize = resizes[size / 3 % 7];
    o.size_h = 1 + (int)(size / 5 % 24);
    o.size_w = 1 + (int)(size / 7 % 24);
    o.random_crop = o.flip = 1;
    preprocess(&im, &o);
    lop_image_free(&im);
    free(copy);
    return 0;
}
