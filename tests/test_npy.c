/*
 * test_npy.c - the NumPy data set (engine/data/npy.c, npy_header.c) against numpy
 * itself and against hand-written files: arrays numpy wrote in every accepted dtype,
 * layout and format version read back bit for bit equal to numpy's own conversion
 * (tests/npy/make_fixtures.py), the first 1000 Fashion-MNIST test images equal to the
 * IDX reader's, hand-written headers in each accepted spelling and each way one can
 * be wrong (the message naming the file, the output untouched, nothing left mapped),
 * label range errors, failed allocations, and a 256 MB sparse file that opens
 * without being read.  Items are read through the source's read() directly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lopper.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist/"

static char dir[] = "/tmp/lopper_test_npy_XXXXXX";

static int make_dir(void **state)
{
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* dir/name, valid until the end of the run. */
static const char *path_of(const char *name)
{
    static char *paths[4096];
    static int n;
    char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    assert_true(n < 4096);
    paths[n] = strdup(buf);
    assert_non_null(paths[n]);
    return paths[n++];
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The contents of path, which must be exactly len bytes long (freed by the caller). */
static void *read_exactly(const char *path, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    unsigned char *buf = malloc(len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, len + 1, f), len);
    fclose(f);
    return buf;
}

/* A .npy file by hand: magic, version major.0, the header's length (2 bytes for 1.0,
 * 4 otherwise, little-endian), the header text as given, then len data bytes. */
static const char *write_npy(const char *name, int major, const char *header,
                             const void *data, size_t len)
{
    size_t hlen = strlen(header), pre = major == 1 ? 10 : 12;
    unsigned char *buf = malloc(pre + hlen + len + 1);
    assert_non_null(buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + pre, header, hlen);
    if (len)
        memcpy(buf + pre + hlen, data, len);
    const char *path = path_of(name);
    write_bytes(path, buf, pre + hlen + len);
    free(buf);
    return path;
}

/* How many mappings of this process show the file at path (its whole name ends the
 * line): a failed open must leave none, an open set exactly its images file's one. */
static int mapped(const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0, plen = strlen(path);
    ssize_t len;
    int n = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        n += (size_t)len > plen && line[len - plen - 1] == ' ' &&
             strcmp(line + len - plen, path) == 0;
    }
    free(line);
    fclose(f);
    return n;
}

/* Item `item` of d's source into a fresh buffer (freed by the caller). */
static float *read_item(const lop_dataset *d, int item)
{
    const lop_source *s = d->source;
    size_t n = (size_t)s->c * s->h * s->w;
    float *out = malloc(n * sizeof *out);
    assert_non_null(out);
    char why[256] = "";
    int st = s->read(d->source, item, 0, out, why, sizeof why);
    if (st != LOP_OK)
        fail_msg("read(%d): %s", item, why);
    return out;
}

/* ---- hand-written files ---------------------------------------------------------- */

#define HDR(descr, shape) "{'descr': '" descr "', 'fortran_order': False, 'shape': " shape ", }\n"

static const unsigned char two_u8[8] = {0, 51, 102, 255, 1, 2, 3, 254};

/* Two labels 0 and 1, the partner of most hand-written image files. */
static const char *labels2(void)
{
    static const unsigned char y[2] = {0, 1};
    return write_npy("labels2.npy", 1, HDR("|u1", "(2,)"), y, 2);
}

/* Open that must succeed with two 1x2x2 images: two_u8 / 255 (or the floats given). */
static void open_two(const char *images, const float *want)
{
    lop_dataset d;
    lop_npy_opts o = lop_npy_opts_default();
    const char *labels = labels2();
    int st = lop_dataset_open_npy(images, labels, &o, &d);
    if (st != LOP_OK)
        fail_msg("%s: %s", images, lop_errmsg());
    assert_int_equal(mapped(images), 1);   /* the images stay mapped, the labels do not */
    assert_int_equal(mapped(labels), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.classes, 2);
    assert_null(d.images);
    assert_int_equal(d.source->c, 1);
    assert_int_equal(d.source->h, 2);
    assert_int_equal(d.source->w, 2);
    for (int i = 0; i < 2; i++) {
        float *x = read_item(&d, i);
        for (int k = 0; k < 4; k++) {
            float ref = want ? want[4 * i + k] : (float)two_u8[4 * i + k] / 255.0f;
            assert_memory_equal(&x[k], &ref, sizeof ref);
        }
        free(x);
    }
    lop_dataset_free(&d);
    assert_int_equal(mapped(images), 0);
}

static void test_header_spellings(void **state)
{
    static const char *const headers[] = {
        HDR("|u1", "(2, 1, 2, 2)"),
        "{'shape': (2, 1, 2, 2), 'fortran_order': False, 'descr': '|u1'}",
        "{\"descr\":\"|u1\",\"fortran_order\":False,\"shape\":(2,1,2,2,),}",
        "  {\n\t'descr' : '<u1' ,\n 'fortran_order' :False,'shape':( 2 , 1 , 2 , 2 , ) , }"
        "\n   \t  \n",
        HDR(">u1", "(2, 2, 2)"),   /* [N, H, W]: one channel */
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2, 2)}",  /* unpadded */
    };
    char name[32];
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        snprintf(name, sizeof name, "spelling%zu.npy", i);
        open_two(write_npy(name, 1, headers[i], two_u8, 8), NULL);
    }
    /* Format 2.0 and 3.0 (4-byte header length) and an odd data offset (unaligned
     * floats), big-endian floats. */
    open_two(write_npy("v2.npy", 2, HDR("|u1", "(2, 1, 2, 2)"), two_u8, 8), NULL);
    open_two(write_npy("v3.npy", 3, HDR("|u1", "(2, 1, 2, 2)"), two_u8, 8), NULL);
    float f[8] = {0.5f, -1.0f, 3.25f, 1e-30f, -0.0f, INFINITY, 65504.0f, 7.0f};
    unsigned char le[32], be[32];
    memcpy(le, f, sizeof f);
    for (int i = 0; i < 8; i++)
        for (int b = 0; b < 4; b++)
            be[4 * i + b] = le[4 * i + 3 - b];
    open_two(write_npy("f4.npy", 1, HDR("<f4", "(2, 1, 2, 2)") " ", le, 32), f);
    open_two(write_npy("f4be.npy", 2, HDR(">f4", "(2, 2, 2)"), be, 32), f);
}

/* Open must fail with status st and a message holding fragment and naming `names`;
 * out stays as it was and nothing stays mapped. */
static void open_fails(const char *images, const char *labels, const lop_npy_opts *opts,
                       int st, const char *fragment, const char *names)
{
    lop_npy_opts o = opts ? *opts : lop_npy_opts_default();
    lop_dataset d, before;
    memset(&d, 0x5a, sizeof d);
    before = d;
    int got = lop_dataset_open_npy(images, labels, &o, &d);
    const char *msg = lop_errmsg();
    if (got != st || !strstr(msg, fragment) || (names && !strstr(msg, names)))
        fail_msg("%s: got %s \"%s\", expected %s with \"%s\"", images, lop_status_name(got),
                 msg, lop_status_name(st), fragment);
    assert_memory_equal(&d, &before, sizeof d);
    assert_int_equal(mapped(images), 0);
    assert_int_equal(mapped(labels), 0);
}

/* Images files refused for their header or size: header text, data bytes (zeros),
 * what the message must say. */
static const struct { const char *header; size_t len; const char *fragment; } bad_images[] = {
    {"{'descr': '|u1', 'fortran_order': False}", 8, "no 'shape' key"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2, 2), 'x': 1}", 8,
     "unknown key 'x'"},
    {"{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (8,)}", 8,
     "given twice"},
    {HDR("|u1", "(8)"), 8, "not a tuple"},
    {HDR("|u1", "[2, 1, 2, 2]"), 8, "expected '('"},
    {HDR("|u1", "(2, -1, 2, 2)"), 8, "expected a dimension"},
    {HDR("|u1", "(2, 01, 2, 2)"), 8, "leading zero"},
    {HDR("|u1", "(2, 2147483648, 2, 2)"), 8, "larger than 2147483647"},
    {HDR("|u1", "(1, 1, 1, 1, 1, 1, 1, 1, 8)"), 8, "more than 8 dimensions"},
    {HDR("|u1", "(2 1, 2, 2)"), 8, "expected ',' or ')'"},
    {"{'descr': '|u1', 'fortran_order': No, 'shape': (2, 1, 2, 2)}", 8,
     "expected True or False"},
    {"{'descr': '|u1', 'fortran_order': Falsey, 'shape': (2, 1, 2, 2)}", 8,
     "expected True or False"},
    {"{'descr': '|u1\\n', 'fortran_order': False, 'shape': (2, 1, 2, 2)}", 8,
     "unexpected character in a string"},
    {"{'descr': '|u1, 'fortran_order': False, 'shape': (2, 1, 2, 2)}", 8,
     "expected ',' or '}'"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2, 2)", 8,
     "expected ',' or '}'"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2, 2), 7: 1}", 8,
     "expected a quoted string"},
    {HDR("|u1", "(2, 1, 2, 2)") "x", 8, "unexpected text after the dict"},
    {"'descr': '|u1'", 8, "expected '{'"},
    {"", 8, "expected '{'"},
    {"{'descr': '|u1', 'fortran_order': True, 'shape': (2, 1, 2, 2), }", 8,
     "np.ascontiguousarray"},
    /* dtypes: not a plain type, no byte order, or not one images may have */
    {HDR("<U1", "(2, 1, 2, 2)"), 8, "unsupported dtype '<U1'"},
    {HDR("=f4", "(2, 1, 1, 1)"), 8, "unsupported dtype '=f4'"},
    {HDR("|f4", "(2, 1, 1, 1)"), 8, "unsupported dtype '|f4'"},
    {HDR("float32", "(2, 1, 1, 1)"), 8, "unsupported dtype 'float32'"},
    {HDR("<f8", "(2, 1, 1, 0)"), 0, "images of dtype '<f8'"},
    {HDR("|i1", "(2, 1, 2, 2)"), 8, "images of dtype '|i1'"},
    {HDR("|b1", "(2, 1, 2, 2)"), 8, "images of dtype '|b1'"},
    /* shapes images cannot have */
    {HDR("|u1", "(8,)"), 8, "expected [N, C, H, W]"},
    {HDR("|u1", "(2, 1, 1, 2, 2)"), 8, "expected [N, C, H, W]"},
    {HDR("|u1", "(0, 1, 2, 2)"), 0, "holds no images"},
    {HDR("|u1", "(2, 1, 0, 2)"), 0, "are empty"},
    {HDR("|u1", "(2, 2048, 1, 1)"), 4096,
     "2048 channels, more than 1024 (are they [N, H, W, C]? set channels_last)"},
    {HDR("|u1", "(2147483647, 2147483647, 2147483647, 2)"), 8, "is too large"},
    /* data size against the shape: both sizes named */
    {HDR("|u1", "(2, 1, 2, 2)"), 7, "needs 8 bytes of data, the file has 7"},
    {HDR("|u1", "(2, 1, 2, 2)"), 0, "needs 8 bytes of data, the file has 0"},
    {HDR("|u1", "(2, 1, 2, 2)"), 9, "the file has 9 bytes of data after its header, the "
                                    "shape (2, 1, 2, 2) of '|u1' needs 8"},
};

static void test_header_refusals(void **state)
{
    static const unsigned char zeros[4096];
    for (size_t i = 0; i < sizeof bad_images / sizeof bad_images[0]; i++) {
        const char *p = write_npy("bad.npy", 1, bad_images[i].header, zeros, bad_images[i].len);
        open_fails(p, labels2(), NULL, LOP_EFORMAT, bad_images[i].fragment, p);
    }
    /* magic, version, truncated headers */
    static const struct { const char *bytes; size_t len; const char *fragment; } rows[] = {
        {"\x93NUMPX\x01\x00\x02\x00{}", 12, "not a .npy file"},
        {"PK\x03\x04", 4, "not a .npy file"},   /* an .npz (zip) */
        {"\x93NUM", 4, "truncated"},
        {"\x93NUMPY\x01\x00\x50", 9, "truncated"},
        {"\x93NUMPY\x02\x00\x50\x00\x00", 11, "truncated"},
        {"\x93NUMPY\x01\x00\x50\x00{'descr'", 17,
         "header of 80 bytes runs past the end of the file"},
        {"\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14, "runs past the end"},
        {"\x93NUMPY\x04\x00\x02\x00\x00\x00{}", 14, "version 4.0 is not supported"},
        {"\x93NUMPY\x01\x01\x02\x00{}", 12, "version 1.1 is not supported"},
        {"", 0, "empty file"},
    };
    const char *lab = labels2(), *p = path_of("magic.npy");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        write_bytes(p, rows[i].bytes, rows[i].len);
        open_fails(p, lab, NULL, LOP_EFORMAT, rows[i].fragment, p);
    }
    open_fails(path_of("missing.npy"), lab, NULL, LOP_EIO, "cannot open", "missing.npy");
    open_fails(dir, lab, NULL, LOP_EIO, "is not a regular file", dir);
    /* Every truncation of a good file is refused. */
    const char *hdr = HDR("|u1", "(2, 1, 2, 2)");
    size_t len = 10 + strlen(hdr) + 8;
    unsigned char *whole = read_exactly(write_npy("good.npy", 1, hdr, two_u8, 8), len);
    for (size_t cut = 0; cut < len; cut++) {
        write_bytes(p, whole, cut);
        open_fails(p, lab, NULL, LOP_EFORMAT, "", p);
    }
    free(whole);
}

static void test_label_refusals(void **state)
{
    const char *im = write_npy("im2.npy", 1, HDR("|u1", "(2, 1, 2, 2)"), two_u8, 8);
    const char *p;
    static const signed char neg[2] = {0, -3};
    p = write_npy("neg.npy", 1, HDR("|i1", "(2,)"), neg, 2);
    open_fails(im, p, NULL, LOP_EFORMAT, "the label at index 1 is -3, outside 0..99999", p);
    static const uint16_t big[2] = {100000 & 0xffff, 4};   /* 34464 fits */
    p = write_npy("cls.npy", 1, HDR("<u2", "(2,)"), big, 4);
    lop_npy_opts o = lop_npy_opts_default();
    o.classes = 10;
    open_fails(im, p, &o, LOP_EFORMAT, "the label at index 0 is 34464, outside 0..9 (classes "
               "is given)", p);
    static const int64_t huge[2] = {1, 100000};
    p = write_npy("huge.npy", 1, HDR("<i8", "(2,)"), huge, 16);
    open_fails(im, p, NULL, LOP_EFORMAT, "index 1 is 100000, outside 0..99999 (the most classes allowed)", p);
    static const uint64_t top[2] = {UINT64_MAX, 0};
    p = write_npy("top.npy", 1, HDR("<u8", "(2,)"), top, 16);
    open_fails(im, p, NULL, LOP_EFORMAT, "index 0 is 18446744073709551615", p);
    static const unsigned char bei[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    p = write_npy("bei.npy", 1, HDR(">i8", "(2,)"), bei, 16);
    open_fails(im, p, NULL, LOP_EFORMAT, "index 0 is -2,", p);
    static const unsigned char three[3] = {0, 1, 2};
    p = write_npy("three.npy", 1, HDR("|u1", "(3,)"), three, 3);
    open_fails(im, p, NULL, LOP_EFORMAT, "holds 2 images but", p);
    open_fails(im, p, NULL, LOP_EFORMAT, "holds 3 labels", im);
    p = write_npy("col.npy", 1, HDR("|u1", "(2, 1)"), three, 2);
    open_fails(im, p, NULL, LOP_EFORMAT, "save y.ravel()", p);
    static const float fl[2] = {0, 1};
    p = write_npy("fl.npy", 1, HDR("<f4", "(2,)"), fl, 8);
    open_fails(im, p, NULL, LOP_EFORMAT, "labels of dtype '<f4' are not supported", p);
    p = write_npy("bool.npy", 1, HDR("|b1", "(2,)"), three, 2);
    open_fails(im, p, NULL, LOP_EFORMAT, "labels of dtype '|b1'", p);
    p = write_npy("short.npy", 1, HDR("<i4", "(2,)"), three, 3);
    open_fails(im, p, NULL, LOP_EFORMAT, "needs 8 bytes of data, the file has 3", p);
    open_fails(im, path_of("nolabels.npy"), NULL, LOP_EIO, "cannot open", "nolabels.npy");
    /* Options: classes over the cap, std not positive, mean not finite. */
    const char *lab = labels2();
    o = lop_npy_opts_default();
    o.classes = 100001;
    open_fails(im, lab, &o, LOP_EINVAL, "classes must be in 0..100000", NULL);
    o = lop_npy_opts_default();
    o.std[2] = 0;
    open_fails(im, lab, &o, LOP_EINVAL, "std must be positive", NULL);
    o = lop_npy_opts_default();
    o.mean[1] = NAN;
    open_fails(im, lab, &o, LOP_EINVAL, "channel 1", NULL);
    /* classes given and larger than the labels need: kept. */
    o = lop_npy_opts_default();
    o.classes = 100000;
    lop_dataset d;
    assert_int_equal(lop_dataset_open_npy(im, lab, &o, &d), LOP_OK);
    assert_int_equal(d.classes, 100000);
    lop_dataset_free(&d);
}

/* ---- arrays numpy wrote ---------------------------------------------------------- */

typedef struct fixture {
    char name[64];
    int n, c, h, w, channels_last, classes, want_classes;
    float mean[3], std[3];
} fixture;

/* The fixtures' manifest (make_fixtures.py wrote it); returns the number of cases. */
static int load_manifest(fixture *fx, int cap)
{
    static int made;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/npy/make_fixtures.py %s/fx", dir);
    if (!made && system(cmd) != 0)
        fail_msg("tests/npy/make_fixtures.py failed (it needs python3-numpy)");
    made = 1;
    FILE *f = fopen(path_of("fx/manifest.txt"), "r");
    assert_non_null(f);
    int n = 0;
    while (n < cap && fscanf(f, "%63s %d %d %d %d %d %d %d %f %f %f %f %f %f", fx[n].name,
                             &fx[n].n, &fx[n].c, &fx[n].h, &fx[n].w, &fx[n].channels_last,
                             &fx[n].classes, &fx[n].want_classes, &fx[n].mean[0],
                             &fx[n].mean[1], &fx[n].mean[2], &fx[n].std[0], &fx[n].std[1],
                             &fx[n].std[2]) == 14)
        n++;
    fclose(f);
    return n;
}

static int open_fixture(const fixture *fx, lop_dataset *d)
{
    char im[96], lb[96];
    snprintf(im, sizeof im, "fx/%s.npy", fx->name);
    snprintf(lb, sizeof lb, "fx/%s.labels.npy", fx->name);
    lop_npy_opts o = lop_npy_opts_default();
    o.channels_last = fx->channels_last;
    o.classes = fx->classes;
    memcpy(o.mean, fx->mean, sizeof o.mean);
    memcpy(o.std, fx->std, sizeof o.std);
    return lop_dataset_open_npy(path_of(im), path_of(lb), &o, d);
}

/* Every value of every case bitwise equal to numpy's; labels and classes too. */
static void check_fixture(const fixture *fx)
{
    lop_dataset d;
    if (open_fixture(fx, &d) != LOP_OK)
        fail_msg("%s: %s", fx->name, lop_errmsg());
    assert_int_equal(d.n, fx->n);
    assert_int_equal(d.classes, fx->want_classes);
    assert_int_equal(d.source->c, fx->c);
    assert_int_equal(d.source->h, fx->h);
    assert_int_equal(d.source->w, fx->w);
    assert_true(d.source->workers >= 1);
    assert_null(d.source_item);
    char name[96];
    snprintf(name, sizeof name, "fx/%.63s.i32", fx->name);
    int32_t *labels = read_exactly(path_of(name), (size_t)fx->n * 4);
    for (int i = 0; i < fx->n; i++)
        assert_int_equal(d.labels[i], labels[i]);
    free(labels);
    size_t item = (size_t)fx->c * fx->h * fx->w * 4;
    snprintf(name, sizeof name, "fx/%.63s.f32", fx->name);
    unsigned char *want = read_exactly(path_of(name), item * fx->n);
    for (int i = 0; i < fx->n; i++) {
        float *x = read_item(&d, i);
        if (memcmp(x, want + item * i, item) != 0)
            fail_msg("%s: item %d differs from numpy's", fx->name, i);
        free(x);
    }
    free(want);
    lop_dataset_free(&d);
}

static void test_numpy_files(void **state)
{
    fixture fx[32];
    int n = load_manifest(fx, 32);
    assert_true(n >= 11);
    for (int i = 0; i < n; i++)
        check_fixture(&fx[i]);
}

/* The first 1000 Fashion-MNIST test images, saved by numpy, equal the IDX reader's. */
static void test_fashion_mnist(void **state)
{
    fixture fx[32];
    int n = load_manifest(fx, 32), k = 0;
    while (k < n && strcmp(fx[k].name, "fmnist") != 0)
        k++;
    assert_true(k < n);
    lop_dataset d, idx;
    assert_int_equal(open_fixture(&fx[k], &d), LOP_OK);
    assert_int_equal(lop_dataset_load_idx(FMNIST_DIR "t10k-images-idx3-ubyte.gz",
                                          FMNIST_DIR "t10k-labels-idx1-ubyte.gz", &idx),
                     LOP_OK);
    assert_int_equal(d.n, 1000);
    assert_int_equal(d.classes, 10);
    for (int i = 0; i < d.n; i++) {
        float *x = read_item(&d, i);
        assert_memory_equal(x, idx.images->data + (size_t)i * 784, 784 * sizeof(float));
        assert_int_equal(d.labels[i], idx.labels[i]);
        free(x);
    }
    lop_dataset_free(&idx);
    lop_dataset_free(&d);
}

/* ---- the source ------------------------------------------------------------------- */

typedef struct reader {
    const lop_dataset *d;
    int first, ok;
} reader;

static void *read_half(void *arg)
{
    reader *r = arg;
    const lop_source *s = r->d->source;
    size_t n = (size_t)s->c * s->h * s->w;
    float *x = malloc(n * sizeof *x);
    char why[256];
    r->ok = x != NULL;
    for (int rep = 0; rep < 50 && r->ok; rep++)
        for (int i = r->first; i < r->d->n && r->ok; i += 2) {
            r->ok = s->read(r->d->source, i, (uint64_t)rep + 1, x, why, sizeof why) == LOP_OK;
            for (size_t k = 0; k < n && r->ok; k++)
                r->ok = x[k] == (float)(i % 251) / 255.0f;
        }
    free(x);
    return NULL;
}

/* read(): several threads at once, seeds ignored, an item outside the set refused. */
static void test_read_threads_and_range(void **state)
{
    enum { N = 64, C = 3, H = 5, W = 7 };
    static unsigned char px[N * C * H * W];
    for (int i = 0; i < N; i++)
        memset(px + (size_t)i * C * H * W, i % 251, C * H * W);
    static unsigned char y[N];
    const char *im = write_npy("thr.npy", 1, HDR("|u1", "(64, 5, 7, 3)"), px, sizeof px);
    const char *lb = write_npy("thr_l.npy", 1, HDR("|u1", "(64,)"), y, N);
    lop_npy_opts o = lop_npy_opts_default();
    o.channels_last = 1;
    lop_dataset d;
    assert_int_equal(lop_dataset_open_npy(im, lb, &o, &d), LOP_OK);
    assert_int_equal(d.classes, 1);
    reader r[2] = {{&d, 0, 0}, {&d, 1, 0}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, read_half, &r[k]), 0);
    for (int k = 0; k < 2; k++) {
        pthread_join(t[k], NULL);
        assert_true(r[k].ok);
    }
    float x[C * H * W];
    char why[256] = "";
    assert_int_equal(d.source->read(d.source, N, 0, x, why, sizeof why), LOP_EINVAL);
    assert_non_null(strstr(why, "thr.npy: item 64 is outside 0..63"));
    assert_int_equal(d.source->read(d.source, -1, 0, x, why, sizeof why), LOP_EINVAL);
    lop_dataset_free(&d);
}

/* More than 3 channels use mean[0] and std[0] for all; 2 channels use [0] and [1]. */
static void test_channel_parameters(void **state)
{
    static const unsigned char px[2 * 5] = {0, 51, 102, 153, 255, 10, 20, 30, 40, 50};
    static const unsigned char y[2] = {0, 0};
    const char *lb = write_npy("cp_l.npy", 1, HDR("|u1", "(2,)"), y, 2);
    lop_npy_opts o = lop_npy_opts_default();
    o.mean[0] = 0.5f, o.mean[1] = -1.0f, o.mean[2] = 7.0f;
    o.std[0] = 0.25f, o.std[1] = 3.0f, o.std[2] = 9.0f;
    for (int c = 5; c >= 2; c -= 3) {
        const char *im = write_npy("cp.npy", 1, c == 5 ? HDR("|u1", "(2, 1, 1, 5)")
                                                       : HDR("|u1", "(5, 1, 1, 2)"), px, 10);
        lop_dataset d;
        o.channels_last = 1;
        if (c == 2) {   /* the same bytes as five 1x1 images of 2 channels */
            unsigned char l5[5] = {0};
            lb = write_npy("cp_l5.npy", 1, HDR("|u1", "(5,)"), l5, 5);
        }
        assert_int_equal(lop_dataset_open_npy(im, lb, &o, &d), LOP_OK);
        assert_int_equal(d.source->c, c);
        float *x = read_item(&d, 1);
        for (int k = 0; k < c; k++) {
            int set = c <= 3 ? k : 0;
            float ref = ((float)px[c + k] / 255.0f - o.mean[set]) / o.std[set];
            assert_memory_equal(&x[k], &ref, sizeof ref);
        }
        free(x);
        lop_dataset_free(&d);
    }
}

/* ---- memory mapping --------------------------------------------------------------- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* A 256 MB file (sparse: its holes read as zeros) opens and reads without resident
 * memory growing by anything like its size: it is mapped, not read. */
static void test_mapped_not_read(void **state)
{
    enum { N = 1024, HW = 256 };
    const char *hdr = HDR("<f4", "(1024, 1, 256, 256)");
    char head[128];
    size_t hlen = strlen(hdr), pre = 10;
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)hlen;
    head[9] = 0;
    memcpy(head + pre, hdr, hlen);
    const char *im = path_of("sparse.npy");
    int fd = open(im, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    size_t item = (size_t)HW * HW * 4, data = pre + hlen;
    assert_int_equal(write(fd, head, data), (ssize_t)data);
    assert_int_equal(ftruncate(fd, (off_t)(data + item * N)), 0);
    float mark[HW];   /* one row of item 700 */
    for (int i = 0; i < HW; i++)
        mark[i] = (float)i - 0.5f;
    assert_int_equal(pwrite(fd, mark, sizeof mark, (off_t)(data + item * 700)),
                     (ssize_t)sizeof mark);
    close(fd);
    static unsigned char y[N];
    y[5] = 9;
    const char *lb = write_npy("sparse_l.npy", 1, HDR("|u1", "(1024,)"), y, N);

    long before = rss_kb();
    lop_dataset d;
    lop_npy_opts o = lop_npy_opts_default();
    assert_int_equal(lop_dataset_open_npy(im, lb, &o, &d), LOP_OK);
    assert_int_equal(d.classes, 10);
    float *x = read_item(&d, 700);
    assert_memory_equal(x, mark, sizeof mark);
    for (size_t k = HW; k < (size_t)HW * HW; k++)
        assert_true(x[k] == 0.0f);
    free(x);
    free(read_item(&d, N - 1));
    long grown = rss_kb() - before;
    print_message("# resident memory grew by %ld kB opening and reading 2 items of a "
                  "%zu MB file\n", grown, item * N >> 20);
    assert_true(grown < 16 * 1024);
    lop_dataset_free(&d);
}

/* Each allocation of an open failing in turn: LOP_ENOMEM, nothing leaked or mapped. */
static void test_alloc_failures(void **state)
{
    const char *im = write_npy("af.npy", 1, HDR("|u1", "(2, 1, 2, 2)"), two_u8, 8);
    const char *lb = labels2();
    lop_npy_opts o = lop_npy_opts_default();
    lop_dataset d;
    int failed = 0;
    for (long k = 1; k < 100; k++) {
        lop_debug_fail_alloc(k);
        int st = lop_dataset_open_npy(im, lb, &o, &d);
        lop_debug_fail_alloc(0);
        if (st == LOP_OK) {
            lop_dataset_free(&d);
            break;
        }
        assert_int_equal(st, LOP_ENOMEM);
        assert_int_equal(mapped(im), 0);
        assert_int_equal(mapped(lb), 0);
        failed++;
    }
    assert_true(failed >= 2);   /* the labels and the source */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_spellings),
        cmocka_unit_test(test_header_refusals),
        cmocka_unit_test(test_label_refusals),
        cmocka_unit_test(test_numpy_files),
        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test(test_read_threads_and_range),
        cmocka_unit_test(test_channel_parameters),
        cmocka_unit_test(test_mapped_not_read),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
