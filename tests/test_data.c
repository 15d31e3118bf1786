/*
 * test_data.c - the data loaders and batch preparation, checked against hand-built
 * files, raw bytes read back independently, and naive reference loops: IDX and
 * CIFAR-10 reading (including every way a file can be damaged), the real
 * Fashion-MNIST, subsets, padding, normalisation, shuffling and augmented batches.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "lopper.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist/"

/* ---- temporary files --------------------------------------------------------- */

static char tmpdir[] = "/tmp/lopper_test_data_XXXXXX";
static char *created[512];
static int ncreated;

/* A path in the temporary directory, removed by the group teardown. */
static const char *tmp_path(const char *name)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    for (int i = 0; i < ncreated; i++)
        if (strcmp(created[i], buf) == 0)
            return created[i];
    assert_true(ncreated < (int)(sizeof created / sizeof created[0]));
    created[ncreated] = strdup(buf);
    assert_non_null(created[ncreated]);
    return created[ncreated++];
}

static void write_file(const char *path, const void *buf, size_t len, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        if (len > 0)
            assert_int_equal(gzwrite(f, buf, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
}

static unsigned char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static int setup_dir(void **state)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    for (int i = 0; i < ncreated; i++) {
        unlink(created[i]);
        free(created[i]);
    }
    ncreated = 0;
    return rmdir(tmpdir);
}

/* ---- IDX building -------------------------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* IDX bytes: magic, ndim big-endian dimensions, then data. */
static size_t make_idx(unsigned char *buf, uint32_t magic, int ndim, const uint32_t *dims,
                       const unsigned char *data, size_t ndata)
{
    put_be32(buf, magic);
    for (int i = 0; i < ndim; i++)
        put_be32(buf + 4 + 4 * i, dims[i]);
    memcpy(buf + 4 + 4 * ndim, data, ndata);
    return 4 + 4 * (size_t)ndim + ndata;
}

/* The small set used by the IDX tests: 3 images of 2x3 and their labels. */
enum { SN = 3, SH = 2, SW = 3 };
static const unsigned char small_pixels[SN * SH * SW] = {
    0, 255, 1, 2, 128, 254, 10, 20, 30, 40, 50, 60, 77, 88, 99, 111, 222, 7,
};
static const unsigned char small_labels[SN] = {3, 0, 7};

static size_t small_images_idx(unsigned char *buf)
{
    uint32_t dims[3] = {SN, SH, SW};
    return make_idx(buf, 0x803, 3, dims, small_pixels, sizeof small_pixels);
}

static size_t small_labels_idx(unsigned char *buf)
{
    uint32_t dims[1] = {SN};
    return make_idx(buf, 0x801, 1, dims, small_labels, sizeof small_labels);
}

/* Sentinel contents for an output that a failing call must leave alone. */
static const lop_dataset untouched = {.images = (lop_tensor *)(uintptr_t)0x10,
                                      .labels = (int *)(uintptr_t)0x20, .n = 77, .classes = 88,
                                      .source = (lop_source *)(uintptr_t)0x30,
                                      .source_item = (int *)(uintptr_t)0x40};

/* Leave a message that names no file, so a stale message cannot pass a check. */
static void clear_message(void)
{
    assert_int_equal(lop_dataset_subset(NULL, 0, 1, NULL), LOP_EINVAL);
}

/* A loader's status st must be `status`, its message must mention needle, and its
 * output out must be untouched. */
static void expect_failure(int st, const lop_dataset *out, int status, const char *needle)
{
    if (st != status)
        fail_msg("expected %s, got %s (%s)", lop_status_name(status), lop_status_name(st),
                 lop_errmsg());
    if (!strstr(lop_errmsg(), needle))
        fail_msg("message '%s' does not mention '%s'", lop_errmsg(), needle);
    assert_memory_equal(out, &untouched, sizeof *out);
}

static void expect_idx_failure(const char *images, const char *labels, int status,
                               const char *needle)
{
    lop_dataset out = untouched;
    clear_message();
    expect_failure(lop_dataset_load_idx(images, labels, &out), &out, status, needle);
}

/* ---- IDX tests ------------------------------------------------------------------- */

static void check_small(const lop_dataset *d)
{
    assert_int_equal(d->n, SN);
    assert_int_equal(d->classes, 10);
    assert_int_equal(d->images->ndim, 4);
    assert_int_equal(d->images->shape[0], SN);
    assert_int_equal(d->images->shape[1], 1);
    assert_int_equal(d->images->shape[2], SH);
    assert_int_equal(d->images->shape[3], SW);
    for (int i = 0; i < SN * SH * SW; i++)
        assert_true(d->images->data[i] == (float)small_pixels[i] / 255.0f);
    assert_true(d->images->data[0] == 0.0f && d->images->data[1] == 1.0f);
    for (int i = 0; i < SN; i++)
        assert_int_equal(d->labels[i], small_labels[i]);
}

static void test_idx_roundtrip(void **state)
{
    unsigned char im[64], lb[64];
    size_t nim = small_images_idx(im), nlb = small_labels_idx(lb);
    for (int gz_im = 0; gz_im < 2; gz_im++)
        for (int gz_lb = 0; gz_lb < 2; gz_lb++) {
            const char *pim = tmp_path(gz_im ? "rt-images.gz" : "rt-images");
            const char *plb = tmp_path(gz_lb ? "rt-labels.gz" : "rt-labels");
            write_file(pim, im, nim, gz_im);
            write_file(plb, lb, nlb, gz_lb);
            lop_dataset d;
            assert_int_equal(lop_dataset_load_idx(pim, plb, &d), LOP_OK);
            check_small(&d);
            lop_dataset_free(&d);
            assert_null(d.images);
            assert_null(d.labels);
        }
    lop_dataset_free(NULL);
}

static void test_idx_classes(void **state)
{
    unsigned char im[64], lb[64];
    uint32_t dims[1] = {SN};
    const unsigned char high[SN] = {0, 12, 3};
    const char *pim = tmp_path("cls-images"), *plb = tmp_path("cls-labels");
    write_file(pim, im, small_images_idx(im), 0);
    write_file(plb, lb, make_idx(lb, 0x801, 1, dims, high, SN), 0);
    lop_dataset d;
    assert_int_equal(lop_dataset_load_idx(pim, plb, &d), LOP_OK);
    assert_int_equal(d.classes, 13);
    assert_int_equal(d.labels[1], 12);
    lop_dataset_free(&d);
}

static void test_idx_bad_headers(void **state)
{
    unsigned char im[64], lb[64], buf[64];
    size_t nim = small_images_idx(im), nlb = small_labels_idx(lb);
    const char *good_im = tmp_path("good-images"), *good_lb = tmp_path("good-labels");
    const char *bad = tmp_path("bad");
    write_file(good_im, im, nim, 0);
    write_file(good_lb, lb, nlb, 0);

    /* Wrong magic numbers, including the other kind of IDX file and a non-byte type. */
    const uint32_t bad_magic[] = {0x801, 0x802, 0x804, 0x903, 0x0d03, 0x1f8b0803};
    for (size_t k = 0; k < sizeof bad_magic / sizeof bad_magic[0]; k++) {
        memcpy(buf, im, nim);
        put_be32(buf, bad_magic[k]);
        write_file(bad, buf, nim, 0);
        expect_idx_failure(bad, good_lb, LOP_EFORMAT, bad);
    }
    memcpy(buf, lb, nlb);
    put_be32(buf, 0x803);
    write_file(bad, buf, nlb, 0);
    expect_idx_failure(good_im, bad, LOP_EFORMAT, bad);
    expect_idx_failure(good_lb, good_im, LOP_EFORMAT, good_lb);   /* swapped */

    /* Counts that disagree: both files are internally consistent. */
    uint32_t dims1[1] = {SN - 1};
    write_file(bad, buf, make_idx(buf, 0x801, 1, dims1, small_labels, SN - 1), 0);
    expect_idx_failure(good_im, bad, LOP_EFORMAT, "labels");

    /* Zero, huge and overflowing dimensions, refused from the header alone (the
     * label count matches, so only the dimension check can catch them). */
    const uint32_t bad_dims[][3] = {
        {0, SH, SW}, {SN, 0, SW}, {SN, SH, 0}, {SN, 0xFFFFFFFFu, 1}, {SN, 0x80000000u, 1},
        {SN, 65536, 65536}, {SN, 1u << 20, 1u << 20}, {SN, 0xFFFFFFFFu, 0xFFFFFFFFu},
    };
    for (size_t k = 0; k < sizeof bad_dims / sizeof bad_dims[0]; k++) {
        write_file(bad, buf, make_idx(buf, 0x803, 3, bad_dims[k], small_pixels, 18), 0);
        expect_idx_failure(bad, good_lb, LOP_EFORMAT, bad);
        expect_idx_failure(bad, good_lb, LOP_EFORMAT, "dimension");
    }

    /* Missing files: an I/O error carrying the system's reason. */
    const char *missing = tmp_path("does-not-exist.gz");
    expect_idx_failure(missing, good_lb, LOP_EIO, missing);
    expect_idx_failure(missing, good_lb, LOP_EIO, strerror(ENOENT));
    expect_idx_failure(good_im, missing, LOP_EIO, missing);
    expect_idx_failure(tmpdir, good_lb, LOP_EIO, tmpdir);         /* a directory */
}

/* Every proper prefix of a valid file, plain and gzip-compressed (the compressed
 * bytes are cut, so gzip headers, deflate blocks and trailers all end early). */
static void test_idx_truncation(void **state)
{
    unsigned char im[64], lb[64];
    size_t nim = small_images_idx(im), nlb = small_labels_idx(lb);
    const char *good_im = tmp_path("tr-images"), *good_lb = tmp_path("tr-labels");
    const char *cut = tmp_path("cut"), *gz = tmp_path("tr-full.gz");
    write_file(good_im, im, nim, 0);
    write_file(good_lb, lb, nlb, 0);

    for (int which = 0; which < 2; which++) {
        const unsigned char *raw = which ? lb : im;
        size_t nraw = which ? nlb : nim;
        for (int compressed = 0; compressed < 2; compressed++) {
            unsigned char *bytes = (unsigned char *)raw;
            size_t n = nraw;
            if (compressed) {
                write_file(gz, raw, nraw, 1);
                bytes = read_whole(gz, &n);
            }
            for (size_t len = 0; len < n; len++) {
                write_file(cut, bytes, len, 0);
                if (which)
                    expect_idx_failure(good_im, cut, LOP_EFORMAT, cut);
                else
                    expect_idx_failure(cut, good_lb, LOP_EFORMAT, cut);
            }
            if (compressed)
                free(bytes);
        }
    }
}

static void test_idx_trailing_and_corrupt(void **state)
{
    unsigned char im[64], lb[64];
    size_t nim = small_images_idx(im), nlb = small_labels_idx(lb);
    const char *good_im = tmp_path("tc-images"), *good_lb = tmp_path("tc-labels");
    const char *bad = tmp_path("tc-bad");
    write_file(good_im, im, nim, 0);
    write_file(good_lb, lb, nlb, 0);

    /* One byte more than the header promises, plain and inside the gzip stream. */
    im[nim] = 0;
    lb[nlb] = 0;
    for (int gz = 0; gz < 2; gz++) {
        write_file(bad, im, nim + 1, gz);
        expect_idx_failure(bad, good_lb, LOP_EFORMAT, bad);
        write_file(bad, lb, nlb + 1, gz);
        expect_idx_failure(good_im, bad, LOP_EFORMAT, bad);
    }

    /* Damaged compressed data: the CRC, the length, and a byte inside the deflate
     * stream (whatever it decodes to, it cannot pass both checks). */
    const char *gzfile = tmp_path("tc-full.gz");
    write_file(gzfile, im, nim, 1);
    size_t n;
    unsigned char *bytes = read_whole(gzfile, &n);
    const size_t spots[] = {n - 8, n - 5, n - 4, n - 1, 12, n / 2};
    for (size_t k = 0; k < sizeof spots / sizeof spots[0]; k++) {
        bytes[spots[k]] ^= 0x5a;
        write_file(bad, bytes, n, 0);
        expect_idx_failure(bad, good_lb, LOP_EFORMAT, bad);
        bytes[spots[k]] ^= 0x5a;
    }
    /* Sanity: the undamaged bytes load. */
    write_file(bad, bytes, n, 0);
    lop_dataset d;
    assert_int_equal(lop_dataset_load_idx(bad, good_lb, &d), LOP_OK);
    check_small(&d);
    lop_dataset_free(&d);
    free(bytes);
}

/* ---- the real Fashion-MNIST -------------------------------------------------------- */

/* The first `count` data bytes after an IDX header of hdr bytes, read with zlib
 * directly (independently of the loader). */
static unsigned char *raw_idx_bytes(const char *path, size_t hdr, size_t count)
{
    gzFile f = gzopen(path, "rb");
    assert_non_null(f);
    unsigned char *buf = malloc(hdr + count);
    assert_non_null(buf);
    size_t done = 0;
    while (done < hdr + count) {
        int got = gzread(f, buf + done, (unsigned)(hdr + count - done));
        assert_true(got > 0);
        done += (size_t)got;
    }
    gzclose(f);
    memmove(buf, buf + hdr, count);
    return buf;
}

static void check_fmnist(const char *images, const char *labels, int n)
{
    lop_dataset d;
    assert_int_equal(lop_dataset_load_idx(images, labels, &d), LOP_OK);
    assert_int_equal(d.n, n);
    assert_int_equal(d.classes, 10);
    int shape[4] = {n, 1, 28, 28};
    assert_int_equal(d.images->ndim, 4);
    assert_memory_equal(d.images->shape, shape, sizeof shape);

    int per_class[10] = {0};
    for (int i = 0; i < n; i++) {
        assert_in_range(d.labels[i], 0, 9);
        per_class[d.labels[i]]++;
    }
    for (int k = 0; k < 10; k++)
        assert_int_equal(per_class[k], n / 10);

    float lo = 1, hi = 0;
    for (size_t i = 0; i < d.images->numel; i++) {
        float v = d.images->data[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(lo == 0.0f && hi == 1.0f);

    /* The first two images and all labels, against the bytes themselves. */
    unsigned char *px = raw_idx_bytes(images, 16, 2 * 784);
    for (int i = 0; i < 2 * 784; i++)
        assert_true(d.images->data[i] == (float)px[i] / 255.0f);
    free(px);
    unsigned char *lb = raw_idx_bytes(labels, 8, (size_t)n);
    for (int i = 0; i < n; i++)
        assert_int_equal(d.labels[i], lb[i]);
    free(lb);
    lop_dataset_free(&d);
}

static void test_fashion_mnist(void **state)
{
    if (access(FMNIST_DIR "train-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    check_fmnist(FMNIST_DIR "train-images-idx3-ubyte.gz",
                 FMNIST_DIR "train-labels-idx1-ubyte.gz", 60000);
    check_fmnist(FMNIST_DIR "t10k-images-idx3-ubyte.gz",
                 FMNIST_DIR "t10k-labels-idx1-ubyte.gz", 10000);
}

/* ---- CIFAR-10 ---------------------------------------------------------------------- */

enum { CREC = 3073 };

static int cifar_label(int file, int r)
{
    return (file * 3 + r * 7) % 10;
}

static unsigned char cifar_byte(int file, int r, int i)
{
    return (unsigned char)(file * 101 + r * 13 + i * 7 + i / 1024);
}

static void write_cifar(const char *path, int file, int records)
{
    unsigned char *buf = malloc((size_t)records * CREC);
    assert_non_null(buf);
    for (int r = 0; r < records; r++) {
        buf[r * CREC] = (unsigned char)cifar_label(file, r);
        for (int i = 0; i < 3072; i++)
            buf[r * CREC + 1 + i] = cifar_byte(file, r, i);
    }
    write_file(path, buf, (size_t)records * CREC, 0);
    free(buf);
}

static void expect_cifar_failure(const char *const *paths, int npaths, int status,
                                 const char *needle)
{
    lop_dataset out = untouched;
    clear_message();
    expect_failure(lop_dataset_load_cifar10(paths, npaths, &out), &out, status, needle);
}

static void test_cifar(void **state)
{
    const char *a = tmp_path("batch_a.bin"), *b = tmp_path("batch_b.bin");
    write_cifar(a, 0, 2);
    write_cifar(b, 1, 3);
    for (int order = 0; order < 2; order++) {
        const char *paths[2] = {order ? b : a, order ? a : b};
        /* (file, record) of each loaded item in the expected order */
        const int ab[5][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {1, 2}};
        const int ba[5][2] = {{1, 0}, {1, 1}, {1, 2}, {0, 0}, {0, 1}};
        lop_dataset d;
        assert_int_equal(lop_dataset_load_cifar10(paths, 2, &d), LOP_OK);
        assert_int_equal(d.n, 5);
        assert_int_equal(d.classes, 10);
        int shape[4] = {5, 3, 32, 32};
        assert_memory_equal(d.images->shape, shape, sizeof shape);
        for (int k = 0; k < 5; k++) {
            int f = order ? ba[k][0] : ab[k][0], r = order ? ba[k][1] : ab[k][1];
            assert_int_equal(d.labels[k], cifar_label(f, r));
            for (int i = 0; i < 3072; i++)
                assert_true(d.images->data[k * 3072 + i] == (float)cifar_byte(f, r, i) / 255.0f);
        }
        lop_dataset_free(&d);
    }

    /* One file alone, and the same file twice. */
    const char *twice[2] = {a, a};
    lop_dataset d;
    assert_int_equal(lop_dataset_load_cifar10(twice, 2, &d), LOP_OK);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.labels[2], cifar_label(0, 0));
    lop_dataset_free(&d);

    /* Sizes that are not whole records, an empty file, a bad label, a missing file. */
    const char *bad = tmp_path("batch_bad.bin");
    unsigned char *buf = malloc(2 * CREC + 1);
    assert_non_null(buf);
    memset(buf, 1, 2 * CREC + 1);
    const size_t bad_sizes[] = {0, 1, CREC - 1, CREC + 1, 2 * CREC + 1};
    for (size_t k = 0; k < sizeof bad_sizes / sizeof bad_sizes[0]; k++) {
        write_file(bad, buf, bad_sizes[k], 0);
        const char *paths[2] = {a, bad};
        expect_cifar_failure(paths, 2, LOP_EFORMAT, bad);
    }
    buf[CREC] = 10;   /* second record's label */
    write_file(bad, buf, 2 * CREC, 0);
    const char *paths[2] = {bad, a};
    expect_cifar_failure(paths, 2, LOP_EFORMAT, bad);
    free(buf);
    const char *missing[2] = {a, tmp_path("missing.bin")};
    expect_cifar_failure(missing, 2, LOP_EIO, missing[1]);
    expect_cifar_failure(paths, 0, LOP_EINVAL, "");
    const char *dir[1] = {tmpdir};
    expect_cifar_failure(dir, 1, LOP_EIO, tmpdir);
}

/* ---- in-memory data sets ------------------------------------------------------------ */

/* n items of [c, h, w] with distinct pseudo-random values, labels i % 10. */
static lop_dataset make_dataset(int n, int c, int h, int w, uint64_t seed)
{
    lop_dataset d;
    int shape[4] = {n, c, h, w};
    lop_rng r;
    lop_rng_seed(&r, seed);
    d.images = lop_tensor_new(4, shape);
    assert_non_null(d.images);
    for (size_t i = 0; i < d.images->numel; i++)
        d.images->data[i] = (float)lop_rng_uniform(&r) + 0.5f;
    d.labels = malloc((size_t)n * sizeof *d.labels);
    assert_non_null(d.labels);
    for (int i = 0; i < n; i++)
        d.labels[i] = i % 10;
    d.n = n;
    d.classes = 10;
    return d;
}

static float at(const lop_tensor *t, int i, int c, int y, int x)
{
    return t->data[(((size_t)i * t->shape[1] + c) * t->shape[2] + y) * t->shape[3] + x];
}

static void test_subset(void **state)
{
    lop_dataset d = make_dataset(7, 2, 3, 4, 1);
    lop_dataset s;
    assert_int_equal(lop_dataset_subset(&d, 2, 4, &s), LOP_OK);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.classes, 10);
    int shape[4] = {4, 2, 3, 4};
    assert_memory_equal(s.images->shape, shape, sizeof shape);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s.labels[i], (i + 2) % 10);
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 4; x++)
                    assert_true(at(s.images, i, c, y, x) == at(d.images, i + 2, c, y, x));
    }
    /* A copy, not a view. */
    float before = d.images->data[2 * 24];
    s.images->data[0] = -1;
    s.labels[0] = 9;
    assert_true(d.images->data[2 * 24] == before);
    assert_int_equal(d.labels[2], 2);
    lop_dataset_free(&s);

    assert_int_equal(lop_dataset_subset(&d, 0, 7, &s), LOP_OK);
    assert_memory_equal(s.images->data, d.images->data, d.images->numel * sizeof(float));
    lop_dataset_free(&s);

    const int bad[][2] = {{-1, 2}, {0, 0}, {0, -1}, {6, 2}, {7, 1}, {1, INT_MAX}, {INT_MAX, 1}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        lop_dataset out = untouched;
        assert_int_equal(lop_dataset_subset(&d, bad[k][0], bad[k][1], &out), LOP_EINVAL);
        assert_true(lop_errmsg()[0] != '\0');
        assert_memory_equal(&out, &untouched, sizeof out);
    }
    lop_dataset empty = {0};
    lop_dataset out = untouched;
    assert_int_equal(lop_dataset_subset(&empty, 0, 1, &out), LOP_EINVAL);
    assert_memory_equal(&out, &untouched, sizeof out);
    lop_dataset_free(&d);
}

static void test_pad(void **state)
{
    /* 28 -> 32: two rows/columns of zeros on every side. */
    lop_dataset d = make_dataset(2, 1, 28, 28, 2);
    lop_tensor *orig = lop_tensor_clone(d.images);
    assert_int_equal(lop_dataset_pad(&d, 32), LOP_OK);
    int shape[4] = {2, 1, 32, 32};
    assert_memory_equal(d.images->shape, shape, sizeof shape);
    for (int i = 0; i < 2; i++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int inside = y >= 2 && y < 30 && x >= 2 && x < 30;
                float want = inside ? at(orig, i, 0, y - 2, x - 2) : 0.0f;
                assert_true(at(d.images, i, 0, y, x) == want);
            }
    assert_int_equal(d.labels[1], 1);
    lop_tensor_release(orig);

    /* Padding to the current size changes nothing; smaller is refused. */
    lop_tensor *same = d.images;
    orig = lop_tensor_clone(d.images);
    assert_int_equal(lop_dataset_pad(&d, 32), LOP_OK);
    assert_ptr_equal(d.images, same);
    assert_int_equal(lop_dataset_pad(&d, 31), LOP_EINVAL);
    assert_true(lop_errmsg()[0] != '\0');
    assert_ptr_equal(d.images, same);
    assert_memory_equal(d.images->shape, shape, sizeof shape);
    assert_memory_equal(d.images->data, orig->data, orig->numel * sizeof(float));
    lop_tensor_release(orig);
    lop_dataset_free(&d);

    /* Three channels, non-square 5x4 -> 8x8: odd margins put the extra row below. */
    d = make_dataset(3, 3, 5, 4, 3);
    orig = lop_tensor_clone(d.images);
    assert_int_equal(lop_dataset_pad(&d, 8), LOP_OK);
    const int top = 1, left = 2;   /* (8 - 5) / 2 rows above, (8 - 4) / 2 columns left */
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) {
                    int inside = y >= top && y < top + 5 && x >= left && x < left + 4;
                    float want = inside ? at(orig, i, c, y - top, x - left) : 0.0f;
                    assert_true(at(d.images, i, c, y, x) == want);
                }
    assert_int_equal(lop_dataset_pad(&d, 4), LOP_EINVAL);
    lop_tensor_release(orig);
    lop_dataset_free(&d);
}

static void test_normalize(void **state)
{
    const float mean3[3] = {0.25f, -1.0f, 2.0f}, std3[3] = {0.5f, 2.0f, 0.125f};
    for (int per_channel = 0; per_channel < 2; per_channel++) {
        lop_dataset d = make_dataset(4, 3, 5, 6, 4);
        lop_tensor *orig = lop_tensor_clone(d.images);
        const float mean1[1] = {0.3f}, std1[1] = {0.7f};
        int nch = per_channel ? 3 : 1;
        assert_int_equal(lop_dataset_normalize(&d, per_channel ? mean3 : mean1,
                                               per_channel ? std3 : std1, nch), LOP_OK);
        for (int i = 0; i < 4; i++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 5; y++)
                    for (int x = 0; x < 6; x++) {
                        double m = per_channel ? mean3[c] : mean1[0];
                        double s = per_channel ? std3[c] : std1[0];
                        double want = ((double)at(orig, i, c, y, x) - m) / s;
                        assert_float_equal(at(d.images, i, c, y, x), want,
                                           1e-6 * (1 + fabs(want)));
                    }
        lop_tensor_release(orig);
        lop_dataset_free(&d);
    }

    /* Refusals leave the data alone. */
    lop_dataset d = make_dataset(2, 3, 2, 2, 5);
    lop_tensor *orig = lop_tensor_clone(d.images);
    const float zero_std[3] = {1, 0, 1}, neg_std[3] = {1, 1, -2}, nan_std[3] = {1, NAN, 1};
    const float nan_mean[3] = {0, NAN, 0};
    assert_int_equal(lop_dataset_normalize(&d, mean3, std3, 2), LOP_EINVAL);
    assert_int_equal(lop_dataset_normalize(&d, mean3, std3, 0), LOP_EINVAL);
    assert_int_equal(lop_dataset_normalize(&d, mean3, zero_std, 3), LOP_EINVAL);
    assert_int_equal(lop_dataset_normalize(&d, mean3, neg_std, 3), LOP_EINVAL);
    assert_int_equal(lop_dataset_normalize(&d, mean3, nan_std, 3), LOP_EINVAL);
    assert_int_equal(lop_dataset_normalize(&d, nan_mean, std3, 3), LOP_EINVAL);
    assert_int_equal(lop_dataset_normalize(&d, NULL, std3, 3), LOP_EINVAL);
    assert_true(lop_errmsg()[0] != '\0');
    assert_memory_equal(d.images->data, orig->data, orig->numel * sizeof(float));
    lop_tensor_release(orig);
    lop_dataset_free(&d);
}

/* ---- shuffling ----------------------------------------------------------------------- */

static int is_permutation(const int *p, int n)
{
    char *seen = calloc((size_t)n + 1, 1);
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        ok = p[i] >= 0 && p[i] < n && !seen[p[i]];
        if (ok)
            seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_shuffle(void **state)
{
    enum { N = 1000 };
    static int a[N], b[N], c[N];
    lop_rng r;
    lop_rng_seed(&r, 11);
    lop_shuffle(a, N, &r);
    lop_rng_seed(&r, 11);
    lop_shuffle(b, N, &r);
    lop_rng_seed(&r, 12);
    lop_shuffle(c, N, &r);
    assert_true(is_permutation(a, N));
    assert_true(is_permutation(c, N));
    assert_memory_equal(a, b, sizeof a);
    int same = 0, fixed = 0;
    for (int i = 0; i < N; i++) {
        same += a[i] == c[i];
        fixed += a[i] == i;
    }
    assert_true(same < 20);   /* two independent permutations agree in ~1 place */
    assert_true(fixed < 20);

    /* Consecutive calls continue the stream: a different permutation. */
    lop_shuffle(b, N, &r);
    assert_true(is_permutation(b, N));
    assert_memory_not_equal(b, c, sizeof b);

    int one = -5;
    lop_shuffle(&one, 1, &r);
    assert_int_equal(one, 0);
    lop_shuffle(NULL, 0, &r);

    /* All 24 orders of 4 items equally likely (1000 expected each, sd ~31). */
    int counts[24] = {0};
    for (int t = 0; t < 24000; t++) {
        int p[4];
        lop_shuffle(p, 4, &r);
        assert_true(is_permutation(p, 4));
        /* Lehmer code of p as an index 0..23 */
        int code = 0;
        for (int i = 0; i < 4; i++) {
            int smaller = 0;
            for (int j = i + 1; j < 4; j++)
                smaller += p[j] < p[i];
            code = code * (4 - i) + smaller;
        }
        counts[code]++;
    }
    for (int k = 0; k < 24; k++)
        assert_in_range(counts[k], 850, 1150);
}

/* ---- batches ------------------------------------------------------------------------- */

static void test_batch_plain(void **state)
{
    lop_dataset d = make_dataset(6, 2, 3, 4, 6);
    const int idx[4] = {4, 0, 4, 5};
    int labels[4] = {-1, -1, -1, -1};
    lop_tensor *x = NULL;
    assert_int_equal(lop_dataset_batch(&d, idx, 4, NULL, NULL, &x, labels), LOP_OK);
    int shape[4] = {4, 2, 3, 4};
    assert_non_null(x);
    assert_memory_equal(x->shape, shape, sizeof shape);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(labels[k], idx[k] % 10);
        for (int i = 0; i < 24; i++)
            assert_true(x->data[k * 24 + i] == d.images->data[idx[k] * 24 + i]);
    }

    /* A disabled augmentation is the plain gather; the output shrinks to fit. */
    lop_augment none = {0, 0};
    assert_int_equal(lop_dataset_batch(&d, idx + 1, 2, &none, NULL, &x, NULL), LOP_OK);
    assert_int_equal(x->shape[0], 2);
    assert_int_equal(x->numel, 48);
    assert_memory_equal(x->data, d.images->data, 24 * sizeof(float));

    /* Refusals leave x and labels alone. */
    lop_tensor *keep = x;
    float first = x->data[0];
    const int bad_idx[2][2] = {{0, -1}, {6, 0}};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(lop_dataset_batch(&d, bad_idx[k], 2, NULL, NULL, &x, labels),
                         LOP_EINVAL);
        assert_true(lop_errmsg()[0] != '\0');
    }
    assert_int_equal(lop_dataset_batch(&d, idx, 0, NULL, NULL, &x, labels), LOP_EINVAL);
    assert_int_equal(lop_dataset_batch(&d, idx, 2, NULL, NULL, NULL, labels), LOP_EINVAL);
    lop_augment neg = {-1, 0}, big = {4, 0}, flip = {0, 1};
    assert_int_equal(lop_dataset_batch(&d, idx, 2, &neg, NULL, &x, labels), LOP_EINVAL);
    lop_rng r;
    lop_rng_seed(&r, 1);
    assert_int_equal(lop_dataset_batch(&d, idx, 2, &big, &r, &x, labels), LOP_EINVAL);
    assert_int_equal(lop_dataset_batch(&d, idx, 2, &flip, NULL, &x, labels), LOP_EINVAL);
    assert_ptr_equal(x, keep);
    assert_int_equal(x->shape[0], 2);
    assert_true(x->data[0] == first);
    assert_int_equal(labels[0], idx[0] % 10);
    lop_tensor_release(x);
    lop_dataset_free(&d);
}

/* The documented augmentation, recomputed with naive loops from an identically
 * seeded rng drawing in the same order. */
static void test_batch_augment_reference(void **state)
{
    enum { N = 5, C = 2, H = 5, W = 6, B = 40 };
    lop_dataset d = make_dataset(N, C, H, W, 8);
    const lop_augment augs[3] = {{2, 1}, {2, 0}, {0, 1}};
    for (int a = 0; a < 3; a++) {
        int idx[B], labels[B];
        for (int k = 0; k < B; k++)
            idx[k] = (k * 3) % N;
        lop_rng r, ref;
        lop_rng_seed(&r, 100 + a);
        lop_rng_seed(&ref, 100 + a);
        lop_tensor *x = NULL;
        assert_int_equal(lop_dataset_batch(&d, idx, B, &augs[a], &r, &x, labels), LOP_OK);
        int p = augs[a].crop_pad, shifted = 0, mirrored = 0;
        for (int k = 0; k < B; k++) {
            int dy = 0, dx = 0, mirror = 0;
            if (p) {
                dy = lop_rng_below(&ref, 2 * p + 1) - p;
                dx = lop_rng_below(&ref, 2 * p + 1) - p;
            }
            if (augs[a].flip)
                mirror = lop_rng_below(&ref, 2);
            shifted += dy != 0 || dx != 0;
            mirrored += mirror;
            assert_int_equal(labels[k], idx[k] % 10);
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H; y++)
                    for (int xo = 0; xo < W; xo++) {
                        int sy = y + dy, sx = (mirror ? W - 1 - xo : xo) + dx;
                        float want = sy >= 0 && sy < H && sx >= 0 && sx < W
                                         ? at(d.images, idx[k], c, sy, sx) : 0.0f;
                        assert_true(at(x, k, c, y, xo) == want);
                    }
        }
        /* The rng was consumed exactly as documented, and the cases were exercised. */
        assert_true(lop_rng_u64(&r) == lop_rng_u64(&ref));
        assert_true(p == 0 || shifted > B / 2);
        assert_true(!augs[a].flip || (mirrored > 5 && mirrored < B - 5));
        lop_tensor_release(x);
    }
    lop_dataset_free(&d);
}

/* Literal expected images for one 3x3 picture; seeds are searched until the
 * documented draws give the wanted shift and mirroring. */
static void test_batch_hand_example(void **state)
{
    lop_dataset d = make_dataset(1, 1, 3, 3, 9);
    for (int i = 0; i < 9; i++)
        d.images->data[i] = (float)(i + 1);   /* 1 2 3 / 4 5 6 / 7 8 9 */
    const struct {
        int dy, dx, mirror;
        float want[9];
    } cases[] = {
        {1, -1, 1, {5, 4, 0, 8, 7, 0, 0, 0, 0}},
        {-1, 1, 0, {0, 0, 0, 2, 3, 0, 5, 6, 0}},
        {0, 0, 1, {3, 2, 1, 6, 5, 4, 9, 8, 7}},
        {1, 1, 0, {5, 6, 0, 8, 9, 0, 0, 0, 0}},
    };
    lop_augment aug = {1, 1};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint64_t seed = 0;
        for (;; seed++) {
            lop_rng ref;
            lop_rng_seed(&ref, seed);
            int dy = lop_rng_below(&ref, 3) - 1;
            int dx = lop_rng_below(&ref, 3) - 1;
            int mirror = lop_rng_below(&ref, 2);
            if (dy == cases[k].dy && dx == cases[k].dx && mirror == cases[k].mirror)
                break;
            assert_true(seed < 10000);
        }
        lop_rng r;
        lop_rng_seed(&r, seed);
        lop_tensor *x = NULL;
        const int idx[1] = {0};
        assert_int_equal(lop_dataset_batch(&d, idx, 1, &aug, &r, &x, NULL), LOP_OK);
        for (int i = 0; i < 9; i++)
            assert_true(x->data[i] == cases[k].want[i]);
        lop_tensor_release(x);
    }
    lop_dataset_free(&d);
}

/* Frequencies read off the output images: flips ~1/2, each shift ~1/(2p+1). */
static void test_batch_frequencies(void **state)
{
    enum { B = 10000 };
    static int idx[B];
    lop_rng r;
    lop_rng_seed(&r, 77);
    lop_tensor *x = NULL;

    lop_dataset row = make_dataset(1, 1, 1, 4, 10);
    for (int i = 0; i < 4; i++)
        row.images->data[i] = (float)(i + 1);
    lop_augment flip = {0, 1};
    assert_int_equal(lop_dataset_batch(&row, idx, B, &flip, &r, &x, NULL), LOP_OK);
    int mirrored = 0;
    for (int k = 0; k < B; k++) {
        const float *v = x->data + 4 * k;
        int fwd = v[0] == 1 && v[1] == 2 && v[2] == 3 && v[3] == 4;
        int rev = v[0] == 4 && v[1] == 3 && v[2] == 2 && v[3] == 1;
        assert_true(fwd || rev);
        mirrored += rev;
    }
    assert_in_range(mirrored, B / 2 - 200, B / 2 + 200);   /* sd 50 */
    lop_dataset_free(&row);

    /* The centre pixel of a 5x5 image lands at (2 - dy, 2 - dx) for |dy|, |dx| <= 2. */
    lop_dataset sq = make_dataset(1, 1, 5, 5, 11);
    for (int i = 0; i < 25; i++)
        sq.images->data[i] = (float)(i + 1);
    lop_augment crop = {2, 0};
    assert_int_equal(lop_dataset_batch(&sq, idx, B, &crop, &r, &x, NULL), LOP_OK);
    int count[5][5] = {{0}};
    for (int k = 0; k < B; k++) {
        const float *v = x->data + 25 * k;
        int where = -1;
        for (int i = 0; i < 25; i++)
            if (v[i] == 13) {
                assert_int_equal(where, -1);
                where = i;
            }
        assert_true(where >= 0);
        count[where / 5][where % 5]++;
    }
    for (int y = 0; y < 5; y++)
        for (int xx = 0; xx < 5; xx++)
            assert_in_range(count[y][xx], 400 - 80, 400 + 80);   /* sd ~20 */
    lop_tensor_release(x);
    lop_dataset_free(&sq);
}

/* ---- allocation failures --------------------------------------------------------------- */

/* Every allocation in turn fails: each call reports LOP_ENOMEM, leaves its output
 * alone, and (under ASan) leaks nothing; eventually the call succeeds. */
static void test_alloc_failures(void **state)
{
    unsigned char im[64], lb[64];
    const char *pim = tmp_path("af-images.gz"), *plb = tmp_path("af-labels");
    write_file(pim, im, small_images_idx(im), 1);
    write_file(plb, lb, small_labels_idx(lb), 0);
    const char *cif = tmp_path("af.bin");
    write_cifar(cif, 0, 2);
    lop_dataset src = make_dataset(5, 2, 3, 3, 13);

    for (int which = 0; which < 5; which++) {
        int failures = 0;
        for (long n = 1;; n++) {
            lop_dataset out = untouched;
            lop_tensor *x = NULL;
            const int idx[2] = {3, 1};
            lop_tensor *before = src.images;
            int h_before = before->shape[2];
            lop_debug_fail_alloc(n);
            int st;
            switch (which) {
            case 0: st = lop_dataset_load_idx(pim, plb, &out); break;
            case 1: st = lop_dataset_load_cifar10(&cif, 1, &out); break;
            case 2: st = lop_dataset_subset(&src, 1, 3, &out); break;
            case 3: st = lop_dataset_pad(&src, 6); break;
            default: st = lop_dataset_batch(&src, idx, 2, NULL, NULL, &x, NULL); break;
            }
            lop_debug_fail_alloc(0);
            if (st == LOP_OK) {
                if (which <= 2)
                    lop_dataset_free(&out);
                lop_tensor_release(x);
                break;
            }
            failures++;
            assert_int_equal(st, LOP_ENOMEM);
            assert_non_null(strstr(lop_errmsg(), "memory"));
            assert_memory_equal(&out, &untouched, sizeof out);
            assert_ptr_equal(src.images, before);
            assert_int_equal(src.images->shape[2], h_before);
            assert_null(x);
            assert_true(n < 100);
        }
        assert_true(failures >= 1);
    }
    assert_int_equal(src.images->shape[2], 6);   /* the pad went through in the end */
    lop_dataset_free(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_roundtrip),
        cmocka_unit_test(test_idx_classes),
        cmocka_unit_test(test_idx_bad_headers),
        cmocka_unit_test(test_idx_truncation),
        cmocka_unit_test(test_idx_trailing_and_corrupt),
        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test(test_cifar),
        cmocka_unit_test(test_subset),
        cmocka_unit_test(test_pad),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_shuffle),
        cmocka_unit_test(test_batch_plain),
        cmocka_unit_test(test_batch_augment_reference),
        cmocka_unit_test(test_batch_hand_example),
        cmocka_unit_test(test_batch_frequencies),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
