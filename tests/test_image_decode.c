/*
 * test_image_decode.c - PNG and JPEG decoding for image folders, on files written in
 * the test: every PNG colour type and bit depth against hand-computed values (grey,
 * RGB, alpha dropped, palettes with and without tRNS, 1/2/4-bit grey, 16-bit as
 * round(v / 257), interlaced, a gAMA chunk ignored), colour to grey with 0.299 /
 * 0.587 / 0.114, JPEG against its source pixels, and every way a file is refused:
 * truncated (PNG and JPEG, at many lengths), corrupt, a chunk longer than the file,
 * not an image, too many pixels declared, and each allocation failing in turn.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/image.h"
#include "image_files.h"

#define WHY 512

/* Decode and check the shape; returns the pixels (the caller frees im). */
static void decode_ok(const unsigned char *data, size_t len, int channels, lop_image *im,
                      int w, int h, int c)
{
    char why[WHY] = "";
    int st = lop_image_decode(data, len, channels, LOP_IMAGE_MAX_PIXELS, im, why, sizeof why);
    if (st != LOP_OK)
        fail_msg("decode failed: %s", why);
    assert_int_equal(im->w, w);
    assert_int_equal(im->h, h);
    assert_int_equal(im->c, c);
}

static void decode_png_ok(const test_png *p, int channels, lop_image *im, int c)
{
    size_t len;
    unsigned char *bytes = test_png_bytes(p, &len);
    decode_ok(bytes, len, channels, im, p->w, p->h, c);
    free(bytes);
}

/* A decode that must fail with status st and a message containing `says`. */
static void decode_fails(const unsigned char *data, size_t len, long max_pixels, int st,
                         const char *says)
{
    char why[WHY] = "";
    lop_image im = {0};
    int got = lop_image_decode(data, len, 3, max_pixels, &im, why, sizeof why);
    if (got != st)
        fail_msg("expected %s, got %s (%s)", lop_status_name(st), lop_status_name(got), why);
    if (!strstr(why, says))
        fail_msg("message '%s' does not say '%s'", why, says);
    assert_null(im.px);
}

/* A w x h x c test pattern with distinct values. */
static unsigned char *pattern(int w, int h, int c)
{
    unsigned char *px = malloc((size_t)w * h * c);
    for (int i = 0; i < w * h * c; i++)
        px[i] = (unsigned char)(i * 37 + 11);
    return px;
}

static void test_sniff(void **state)
{
    const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const unsigned char jpg[] = {0xff, 0xd8, 0xff, 0xe0};
    assert_int_equal(lop_image_sniff(png, 8), LOP_IMAGE_PNG);
    assert_int_equal(lop_image_sniff(png, 7), LOP_IMAGE_UNKNOWN);
    assert_int_equal(lop_image_sniff(jpg, 3), LOP_IMAGE_JPEG);
    assert_int_equal(lop_image_sniff(jpg, 2), LOP_IMAGE_UNKNOWN);
    assert_int_equal(lop_image_sniff((const unsigned char *)"GIF89a", 6), LOP_IMAGE_UNKNOWN);
}

static void test_png_grey_and_rgb(void **state)
{
    for (int c = 1; c <= 3; c += 2) {
        unsigned char *px = pattern(7, 5, c);
        test_png p = {7, 5, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, 0, px,
                      NULL, 0, NULL, 0, 0};
        lop_image im;
        decode_png_ok(&p, 0, &im, c);
        assert_memory_equal(im.px, px, 7 * 5 * c);
        lop_image_free(&im);
        decode_png_ok(&p, 3, &im, c);   /* grey stays one plane: preprocessing repeats it */
        assert_memory_equal(im.px, px, 7 * 5 * c);
        lop_image_free(&im);
        p.interlace = 1;                /* Adam7: the same pixels */
        decode_png_ok(&p, 0, &im, c);
        assert_memory_equal(im.px, px, 7 * 5 * c);
        lop_image_free(&im);
        p.interlace = 0;
        p.gamma = 1.0;                  /* gAMA is not applied: values as stored */
        decode_png_ok(&p, 0, &im, c);
        assert_memory_equal(im.px, px, 7 * 5 * c);
        lop_image_free(&im);
        free(px);
    }
}

static void test_colour_to_grey(void **state)
{
    /* Hand-computed 0.299 R + 0.587 G + 0.114 B, rounded (none is near a half). */
    const unsigned char rgb[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30,
                                 100, 150, 200, 255, 255, 255, 0, 0, 0, 37, 201, 90};
    const unsigned char grey[] = {76, 150, 29, 18, 141, 255, 0, 139};
    size_t len;
    unsigned char *bytes = test_png8(rgb, 8, 1, 3, &len);
    lop_image im;
    decode_ok(bytes, len, 1, &im, 8, 1, 1);
    assert_memory_equal(im.px, grey, sizeof grey);
    lop_image_free(&im);
    free(bytes);
    /* A colour JPEG decodes to RGB first, then the same formula: flat colour blocks
     * survive JPEG within a level or two. */
    unsigned char flat[16 * 16 * 3];
    for (int i = 0; i < 16 * 16; i++)
        memcpy(flat + 3 * i, i < 128 ? rgb + 9 : rgb + 12, 3);   /* two flat halves */
    bytes = test_jpeg(flat, 16, 16, 3, 100, 0, &len);
    decode_ok(bytes, len, 1, &im, 16, 16, 1);
    assert_true(abs(im.px[0] - 18) <= 2);
    assert_true(abs(im.px[255] - 141) <= 2);
    lop_image_free(&im);
    tjFree(bytes);
}

static void test_png_alpha_dropped(void **state)
{
    /* RGBA and grey + alpha: colour values as stored whatever the alpha. */
    const unsigned char rgba[] = {10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255};
    const unsigned char rgb[] = {10, 20, 30, 40, 50, 60, 70, 80, 90};
    test_png p = {3, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, rgba, NULL, 0, NULL, 0, 0};
    lop_image im;
    decode_png_ok(&p, 0, &im, 3);
    assert_memory_equal(im.px, rgb, sizeof rgb);
    lop_image_free(&im);
    const unsigned char ga[] = {5, 0, 99, 255, 200, 7};
    const unsigned char g[] = {5, 99, 200};
    test_png q = {3, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, ga, NULL, 0, NULL, 0, 0};
    decode_png_ok(&q, 0, &im, 1);
    assert_memory_equal(im.px, g, sizeof g);
    lop_image_free(&im);
}

static void test_png_palette(void **state)
{
    const png_color pal[4] = {{255, 0, 0}, {0, 128, 0}, {1, 2, 3}, {250, 251, 252}};
    const unsigned char trns[4] = {0, 100, 255, 7};
    const unsigned char idx8[] = {3, 0, 2, 1, 1};
    const unsigned char idx4[] = {0x30, 0x21, 0x10};   /* 3 0 2 1 1 (0): 4-bit packed */
    const unsigned char want[] = {250, 251, 252, 255, 0, 0, 1, 2, 3, 0, 128, 0, 0, 128, 0};
    for (int depth = 4; depth <= 8; depth += 4)
        for (int t = 0; t < 2; t++) {
            test_png p = {5, 1, PNG_COLOR_TYPE_PALETTE, depth, 0, depth == 8 ? idx8 : idx4,
                          pal, 4, t ? trns : NULL, t ? 4 : 0, 0};
            lop_image im;
            decode_png_ok(&p, 0, &im, 3);
            assert_memory_equal(im.px, want, sizeof want);
            lop_image_free(&im);
        }
}

static void test_png_low_depth_grey(void **state)
{
    /* 1 bit: 0 and 255; 2 bits: v * 85; 4 bits: v * 17 (libpng's bit replication). */
    const unsigned char b1[] = {0xa0};                       /* 1 0 1 0 */
    const unsigned char b2[] = {0x1b};                       /* 0 1 2 3 */
    const unsigned char b4[] = {0x0f, 0x79};                 /* 0 15 7 9 */
    const unsigned char w1[] = {255, 0, 255, 0}, w2[] = {0, 85, 170, 255},
                        w4[] = {0, 255, 119, 153};
    const unsigned char *rows[] = {b1, b2, b4}, *want[] = {w1, w2, w4};
    for (int i = 0; i < 3; i++) {
        test_png p = {4, 1, PNG_COLOR_TYPE_GRAY, 1 << i, 0, rows[i], NULL, 0, NULL, 0, 0};
        lop_image im;
        decode_png_ok(&p, 0, &im, 1);
        assert_memory_equal(im.px, want[i], 4);
        lop_image_free(&im);
    }
}

static void test_png_16bit(void **state)
{
    const unsigned v[] = {0, 128, 129, 1000, 32896, 50000, 65407, 65535};
    unsigned char grey[16], rgb[48];
    for (int i = 0; i < 8; i++) {
        grey[2 * i] = (unsigned char)(v[i] >> 8);
        grey[2 * i + 1] = (unsigned char)(v[i] & 0xff);
        for (int c = 0; c < 3; c++) {   /* channel c holds v[(i + c) % 8] */
            rgb[6 * i + 2 * c] = (unsigned char)(v[(i + c) % 8] >> 8);
            rgb[6 * i + 2 * c + 1] = (unsigned char)(v[(i + c) % 8] & 0xff);
        }
    }
    test_png p = {8, 1, PNG_COLOR_TYPE_GRAY, 16, 0, grey, NULL, 0, NULL, 0, 0};
    lop_image im;
    decode_png_ok(&p, 0, &im, 1);
    for (int i = 0; i < 8; i++)
        assert_int_equal(im.px[i], (int)lround(v[i] / 257.0));
    lop_image_free(&im);
    test_png q = {8, 1, PNG_COLOR_TYPE_RGB, 16, 0, rgb, NULL, 0, NULL, 0, 0};
    decode_png_ok(&q, 0, &im, 3);
    for (int i = 0; i < 8; i++)
        for (int c = 0; c < 3; c++)
            assert_int_equal(im.px[3 * i + c], (int)lround(v[(i + c) % 8] / 257.0));
    lop_image_free(&im);
}

static void test_jpeg_decode(void **state)
{
    /* A smooth gradient at quality 100 decodes within 3 levels of its source (4:4:4),
     * baseline and progressive, grey and colour. */
    int w = 40, h = 24;
    unsigned char *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[(y * w + x) * 3 + c] = (unsigned char)(40 + 4 * x + 3 * y + 20 * c);
    for (int c = 1; c <= 3; c += 2)
        for (int prog = 0; prog < 2; prog++) {
            size_t len;
            unsigned char *bytes = test_jpeg(px, w, h * 3 / c, c, 100, prog, &len);
            lop_image im;
            decode_ok(bytes, len, 0, &im, w, h * 3 / c, c);
            int worst = 0;
            for (int i = 0; i < w * h * 3; i++)
                worst = abs(im.px[i] - px[i]) > worst ? abs(im.px[i] - px[i]) : worst;
            if (worst > 3)
                fail_msg("JPEG off by %d levels (channels %d, progressive %d)", worst, c, prog);
            lop_image_free(&im);
            tjFree(bytes);
        }
    free(px);
}

static void test_truncated(void **state)
{
    unsigned char *px = pattern(32, 32, 3);
    size_t len;
    unsigned char *png = test_png8(px, 32, 32, 3, &len);
    /* Every cut from just past the signature to just before the end: IEND missing
     * counts too. */
    for (size_t cut = 8; cut < len; cut += cut < 64 ? 1 : 7)
        decode_fails(png, cut, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT, "PNG decoding failed");
    decode_fails(png, len - 1, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT, "truncated");
    /* What fuzz_image found: a chunk after IHDR declaring 0x08000300 bytes (a tEXt
     * here) in a file of a few hundred.  libpng allocates that much before reading
     * it; the decoder refuses the file first. */
    const unsigned char text[] = {0x08, 0x00, 0x03, 0x00, 't', 'E', 'X', 't', 'a', 0, 'b'};
    unsigned char *bad = malloc(len + sizeof text);
    memcpy(bad, png, 33);                       /* signature and IHDR */
    memcpy(bad + 33, text, sizeof text);
    memcpy(bad + 33 + sizeof text, png + 33, len - 33);
    decode_fails(bad, len + sizeof text, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT,
                 "the file ends inside a chunk");
    free(bad);
    /* A flipped byte in the pixel data: the chunk's CRC no longer matches. */
    png[len / 2] ^= 0x55;
    decode_fails(png, len, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT, "PNG decoding failed");
    free(png);

    unsigned char *jpg = test_jpeg(px, 32, 32, 3, 90, 0, &len);
    decode_fails(jpg, len * 6 / 10, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT,
                 "Premature end of JPEG file");
    for (size_t cut = 3; cut < len; cut += 5)
        decode_fails(jpg, cut, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT, "JPEG decoding failed");
    /* Cut inside the quantisation tables, before the frame header gives the size. */
    decode_fails(jpg, 40, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT, "ends before the image size");
    tjFree(jpg);
    jpg = test_jpeg(px, 32, 32, 3, 90, 1, &len);   /* progressive */
    decode_fails(jpg, len * 6 / 10, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT,
                 "JPEG decoding failed");
    tjFree(jpg);
    free(px);
}

static void test_not_an_image(void **state)
{
    const char *text = "label,file\n3,x.png\n";
    decode_fails((const unsigned char *)text, strlen(text), LOP_IMAGE_MAX_PIXELS,
                 LOP_EFORMAT, "not a PNG or JPEG file");
    decode_fails((const unsigned char *)"", 0, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT,
                 "not a PNG or JPEG file");
}

static void test_too_many_pixels(void **state)
{
    unsigned char *px = pattern(20, 20, 1);
    size_t len;
    unsigned char *png = test_png8(px, 20, 20, 1, &len);
    decode_fails(png, len, 399, LOP_EFORMAT, "at most 399 pixels");
    lop_image im;
    char why[WHY];
    assert_int_equal(lop_image_decode(png, len, 1, 400, &im, why, sizeof why), LOP_OK);
    lop_image_free(&im);
    /* A PNG header declaring 10000 x 10000 pixels (CRC fixed) before a few bytes of
     * data: refused from the header, nothing allocated. */
    const unsigned char ihdr_at = 8 + 8;   /* after the signature, length and "IHDR" */
    png[ihdr_at + 0] = 0, png[ihdr_at + 1] = 0, png[ihdr_at + 2] = 0x27, png[ihdr_at + 3] = 0x10;
    png[ihdr_at + 4] = 0, png[ihdr_at + 5] = 0, png[ihdr_at + 6] = 0x27, png[ihdr_at + 7] = 0x10;
    unsigned long crc = crc32(0, png + 12, 4 + 13);
    for (int i = 0; i < 4; i++)
        png[ihdr_at + 13 + i] = (unsigned char)(crc >> (24 - 8 * i));
    lop_debug_fail_alloc(0);
    decode_fails(png, len, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT, "10000x10000");
    assert_int_equal(lop_debug_fail_alloc(0), 0);   /* no pixel buffer was asked for */
    free(png);
    /* The same for a JPEG: its SOF's height and width say 60000 x 60000. */
    unsigned char *jpg = test_jpeg(px, 20, 20, 1, 90, 0, &len);
    size_t sof = 2;
    while (sof + 9 < len && !(jpg[sof] == 0xff && jpg[sof + 1] == 0xc0))
        sof += 2 + ((size_t)jpg[sof + 2] << 8 | jpg[sof + 3]);
    assert_true(sof + 9 < len);
    jpg[sof + 5] = 0xea, jpg[sof + 6] = 0x60, jpg[sof + 7] = 0xea, jpg[sof + 8] = 0x60;
    decode_fails(jpg, len, LOP_IMAGE_MAX_PIXELS, LOP_EFORMAT, "60000x60000");
    tjFree(jpg);
    free(px);
}

static void test_alloc_failures(void **state)
{
    /* Each of the decoder's own allocations failing in turn: ENOMEM, nothing leaked
     * (the PNG path unwinds libpng's longjmp; ASan's leak check runs at exit). */
    unsigned char *px = pattern(9, 6, 3);
    size_t plen, jlen;
    unsigned char *png = test_png8(px, 9, 6, 3, &plen), *jpg = test_jpeg(px, 9, 6, 3, 90, 0, &jlen);
    for (int which = 0; which < 2; which++) {
        const unsigned char *data = which ? jpg : png;
        size_t len = which ? jlen : plen;
        for (long n = 1;; n++) {
            lop_image im = {0};
            char why[WHY] = "";
            lop_debug_fail_alloc(n);
            int st = lop_image_decode(data, len, 1, LOP_IMAGE_MAX_PIXELS, &im, why, sizeof why);
            lop_debug_fail_alloc(0);
            if (st == LOP_OK) {
                assert_true(n > 1);
                lop_image_free(&im);
                break;
            }
            assert_int_equal(st, LOP_ENOMEM);
            assert_non_null(strstr(why, "out of memory"));
        }
    }
    free(png);
    tjFree(jpg);
    free(px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_png_grey_and_rgb),
        cmocka_unit_test(test_colour_to_grey),
        cmocka_unit_test(test_png_alpha_dropped),
        cmocka_unit_test(test_png_palette),
        cmocka_unit_test(test_png_low_depth_grey),
        cmocka_unit_test(test_png_16bit),
        cmocka_unit_test(test_jpeg_decode),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_not_an_image),
        cmocka_unit_test(test_too_many_pixels),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
