/*
 * image_files.h - PNG and JPEG files for the image tests (test_image_decode.c,
 * test_image_folder.c), written by libpng's classic writer (every colour type, bit
 * depth, palette, tRNS, interlacing and gAMA, which the simplified writer cannot all
 * produce) and by TurboJPEG, into memory or a file.  Nothing binary is committed.
 * Functions are static inline so each test uses what it needs.
 */
#ifndef LOPPER_TEST_IMAGE_FILES_H
#define LOPPER_TEST_IMAGE_FILES_H

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

typedef struct test_bytes {
    unsigned char *p;
    size_t n, cap;
} test_bytes;

static inline void test_bytes_put(test_bytes *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static inline void test_png_write_cb(png_structp png, png_bytep data, size_t n)
{
    test_bytes_put(png_get_io_ptr(png), data, n);
}

static inline void test_png_flush_cb(png_structp png)
{
}

/* What a test PNG holds: rows of packed samples as libpng takes them (16-bit samples
 * big-endian, depths below 8 packed from the high bits). */
typedef struct test_png {
    int w, h, type, depth, interlace;
    const unsigned char *rows;      /* h rows of png_get_rowbytes bytes, contiguous */
    const png_color *palette;
    int npalette;
    const unsigned char *trns;      /* palette alpha entries */
    int ntrns;
    double gamma;                   /* gAMA chunk when > 0 */
} test_png;

/* The PNG file of p, in memory (malloc'd, *len bytes). */
static inline unsigned char *test_png_bytes(const test_png *p, size_t *len)
{
    test_bytes out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || setjmp(png_jmpbuf(png)))
        abort();   /* a bad test description */
    png_set_write_fn(png, &out, test_png_write_cb, test_png_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)p->w, (png_uint_32)p->h, p->depth, p->type,
                 p->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (p->palette)
        png_set_PLTE(png, info, p->palette, p->npalette);
    if (p->trns)
        png_set_tRNS(png, info, p->trns, p->ntrns, NULL);
    if (p->gamma > 0)
        png_set_gAMA(png, info, p->gamma);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep *rows = malloc((size_t)p->h * sizeof *rows);
    for (int y = 0; y < p->h; y++)
        rows[y] = (png_bytep)p->rows + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *len = out.n;
    return out.p;
}

/* An 8-bit grey (c = 1) or RGB (c = 3) PNG of w x h interleaved pixels. */
static inline unsigned char *test_png8(const unsigned char *px, int w, int h, int c,
                                       size_t *len)
{
    test_png p = {w, h, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, 0, px,
                  NULL, 0, NULL, 0, 0};
    return test_png_bytes(&p, len);
}

/* A JPEG of w x h interleaved grey (c = 1) or RGB pixels, 4:4:4 (tjFree it). */
static inline unsigned char *test_jpeg(const unsigned char *px, int w, int h, int c,
                                       int quality, int progressive, size_t *len)
{
    tjhandle tj = tjInitCompress();
    unsigned char *out = NULL;
    unsigned long n = 0;
    if (!tj || tjCompress2(tj, px, w, w * c, h, c == 1 ? TJPF_GRAY : TJPF_RGB, &out, &n,
                           c == 1 ? TJSAMP_GRAY : TJSAMP_444, quality,
                           progressive ? TJFLAG_PROGRESSIVE : 0) != 0)
        abort();
    tjDestroy(tj);
    *len = n;
    return out;
}

static inline void test_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
        abort();
}

#endif
