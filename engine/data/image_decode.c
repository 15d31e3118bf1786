/*
 * image_decode.c - PNG and JPEG bytes to 8-bit grey or RGB pixels, for image folders.
 *
 * PNG goes through libpng's classic interface rather than its simplified one: the
 * simplified reader converts 16-bit data as if it were linear light and applies gAMA
 * chunks, which would change the values a PIL-based pipeline sees.  Here the values
 * are taken as stored (16-bit scaled to 8 with rounding, palettes expanded, alpha
 * dropped).  libpng reports errors by longjmp; the one setjmp is in decode_png, which
 * owns every allocation made after it through volatile pointers, so an error anywhere
 * in libpng frees everything and returns.  JPEG goes through TurboJPEG (libjpeg-turbo
 * 2.1 on Debian 12: the tj*2/3 interface), with warnings such as "Premature end of
 * JPEG file" made errors, so a truncated file is refused rather than half grey.
 * Neither library prints: libpng's warnings go to a handler that ignores them, and
 * TurboJPEG keeps its messages in the handle.
 */
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <turbojpeg.h>

#include "data/image.h"

static const unsigned char png_magic[LOP_IMAGE_MAGIC_LEN] = {0x89, 'P', 'N', 'G',
                                                             '\r', '\n', 0x1a, '\n'};

lop_image_type lop_image_sniff(const unsigned char *head, size_t len)
{
    if (len >= sizeof png_magic && memcmp(head, png_magic, sizeof png_magic) == 0)
        return LOP_IMAGE_PNG;
    if (len >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff)
        return LOP_IMAGE_JPEG;
    return LOP_IMAGE_UNKNOWN;
}

void lop_image_free(lop_image *im)
{
    if (!im)
        return;
    lop_free(im->px);
    memset(im, 0, sizeof *im);
}

static int too_large(long w, long h, long max_pixels, char *why, size_t whylen)
{
    if (w >= 1 && h >= 1 && w <= max_pixels / h)
        return 0;
    snprintf(why, whylen, "the image is %ldx%ld pixels; at most %ld pixels are decoded", w,
             h, max_pixels);
    return 1;
}

/* ---- PNG ------------------------------------------------------------------------ */

typedef struct png_input {
    const unsigned char *data;
    size_t len, pos;
    char *why;
    size_t whylen;
} png_input;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_input *in = png_get_error_ptr(png);
    snprintf(in->why, in->whylen, "PNG decoding failed: %s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    /* Ancillary-chunk trouble (bad CRC in a text chunk, an unknown sRGB profile): the
     * pixels are fine, and the engine never prints. */
}

static void png_read_memory(png_structp png, png_bytep dst, size_t n)
{
    png_input *in = png_get_io_ptr(png);
    if (n > in->len - in->pos)
        png_error(png, "the file ends early (truncated)");
    memcpy(dst, in->data + in->pos, n);
    in->pos += n;
}

/* Whether every chunk up to IEND fits in the file.  libpng allocates a chunk's
 * declared length before reading it, so without this a few hundred bytes could make
 * it ask for up to 2 GB (found by fuzz_image). */
static int chunks_fit(const unsigned char *data, size_t len)
{
    size_t at = LOP_IMAGE_MAGIC_LEN;
    while (at + 8 <= len) {
        const unsigned char *c = data + at;
        size_t n = (size_t)c[0] << 24 | (size_t)c[1] << 16 | (size_t)c[2] << 8 | c[3];
        if (n > len - at - 8 || len - at - 8 - n < 4)
            return 0;
        if (memcmp(c + 4, "IEND", 4) == 0)
            break;
        at += 12 + n;
    }
    return 1;
}

static int decode_png(const unsigned char *data, size_t len, long max_pixels, lop_image *out,
                      char *why, size_t whylen)
{
    if (!chunks_fit(data, len)) {
        snprintf(why, whylen, "PNG decoding failed: the file ends inside a chunk (truncated)");
        return LOP_EFORMAT;
    }
    png_input in = {data, len, 0, why, whylen};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &in, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        snprintf(why, whylen, "out of memory starting the PNG decoder");
        return LOP_ENOMEM;
    }
    /* Changed after setjmp and read after the longjmp: volatile. */
    unsigned char *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    volatile int status = LOP_EFORMAT;
    if (setjmp(png_jmpbuf(png))) {
        lop_free(px);
        lop_free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return status;
    }
    png_set_read_fn(png, &in, png_read_memory);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, type;
    png_get_IHDR(png, info, &w, &h, &depth, &type, NULL, NULL, NULL);
    if (too_large((long)w, (long)h, max_pixels, why, whylen))
        png_longjmp(png, 1);
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_scale_16(png);
    png_set_strip_alpha(png);   /* also the alpha a palette's tRNS expands to */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    if (png_get_bit_depth(png, info) != 8 || (c != 1 && c != 3)) {
        snprintf(why, whylen, "PNG layout not supported (%d channels of %d bits)", c,
                 png_get_bit_depth(png, info));
        png_longjmp(png, 1);
    }
    size_t stride = (size_t)w * (size_t)c;
    px = lop_malloc(stride * h);
    rows = lop_malloc(h * sizeof(png_bytep));
    if (!px || !rows) {
        status = LOP_ENOMEM;
        snprintf(why, whylen, "out of memory for a %ux%u image", (unsigned)w, (unsigned)h);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = px + y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL);   /* the chunks after the pixels, up to IEND: truncation */
    png_destroy_read_struct(&png, &info, NULL);
    lop_free(rows);
    out->w = (int)w;
    out->h = (int)h;
    out->c = c;
    out->px = px;
    return LOP_OK;
}

/* ---- JPEG ----------------------------------------------------------------------- */

static int decode_jpeg(const unsigned char *data, size_t len, long max_pixels, lop_image *out,
                       char *why, size_t whylen)
{
    tjhandle tj = tjInitDecompress();
    if (!tj) {
        snprintf(why, whylen, "cannot start the JPEG decoder: %s", tjGetErrorStr2(NULL));
        return LOP_ENOMEM;
    }
    int st = LOP_EFORMAT, w = 0, h = 0, subsamp, colorspace;
    unsigned char *px = NULL;
    if (tjDecompressHeader3(tj, data, (unsigned long)len, &w, &h, &subsamp, &colorspace) != 0) {
        snprintf(why, whylen, "JPEG decoding failed: %s", tjGetErrorStr2(tj));
        goto done;
    }
    /* A file cut before its frame header: libjpeg-turbo 2.1 reports success without
     * setting the size (it reads the tables-only stream that is left). */
    if (w < 1 || h < 1) {
        snprintf(why, whylen, "JPEG decoding failed: the file ends before the image size");
        goto done;
    }
    if (too_large(w, h, max_pixels, why, whylen))
        goto done;
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        snprintf(why, whylen, "CMYK JPEG not supported (convert it to RGB)");
        goto done;
    }
    int c = colorspace == TJCS_GRAY ? 1 : 3;
    if (!(px = lop_malloc((size_t)w * (size_t)h * (size_t)c))) {
        st = LOP_ENOMEM;
        snprintf(why, whylen, "out of memory for a %dx%d image", w, h);
        goto done;
    }
    /* STOPONWARNING: libjpeg treats a truncated file as a warning and fills the rest
     * with grey.  LIMITSCANS: a progressive file of thousands of scans is an attack. */
    if (tjDecompress2(tj, data, (unsigned long)len, px, w, w * c, h,
                      c == 1 ? TJPF_GRAY : TJPF_RGB,
                      TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0) {
        snprintf(why, whylen, "JPEG decoding failed: %s", tjGetErrorStr2(tj));
        goto done;
    }
    out->w = w;
    out->h = h;
    out->c = c;
    out->px = px;
    px = NULL;
    st = LOP_OK;
done:
    lop_free(px);
    tjDestroy(tj);
    return st;
}

/* ---- both ----------------------------------------------------------------------- */

/* Colour to grey in place with PIL's convert("L") arithmetic: 0.299 R + 0.587 G +
 * 0.114 B in 16-bit fixed point (the weights sum to 65536), rounded. */
static void to_grey(lop_image *im)
{
    size_t n = (size_t)im->w * (size_t)im->h;
    unsigned char *p = im->px;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *s = p + 3 * i;
        p[i] = (unsigned char)((19595u * s[0] + 38470u * s[1] + 7471u * s[2] + 32768u) >> 16);
    }
    im->c = 1;
}

int lop_image_decode(const unsigned char *data, size_t len, int channels, long max_pixels,
                     lop_image *out, char *why, size_t whylen)
{
    lop_image im = {0};
    int st;
    switch (lop_image_sniff(data, len)) {
    case LOP_IMAGE_PNG:
        st = decode_png(data, len, max_pixels, &im, why, whylen);
        break;
    case LOP_IMAGE_JPEG:
        st = decode_jpeg(data, len, max_pixels, &im, why, whylen);
        break;
    default:
        snprintf(why, whylen, "not a PNG or JPEG file");
        return LOP_EFORMAT;
    }
    if (st != LOP_OK)
        return st;
    if (channels == 1 && im.c == 3)
        to_grey(&im);
    *out = im;
    return LOP_OK;
}
