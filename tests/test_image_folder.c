/*
 * test_image_folder.c - lop_dataset_open_folder and its source's read(), on folders
 * the test writes: classes and files in bytewise order (hidden entries and top-level
 * files ignored), labels, every item read back to the pixels written, the real
 * Fashion-MNIST test images written as PNGs and read back identical to the IDX
 * loader's, read() from two threads at once, every error naming its file (a text
 * file, an empty class, no classes, a missing root, a subfolder, a truncated image,
 * an image smaller than the crop), skip_bad counting what it skips, bad options,
 * each allocation of the scan failing in turn, and lop_image_read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lopper.h"
#include "image_files.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist/"
#define WHY 512

static char tmpdir[] = "/tmp/lopper_test_image_folder_XXXXXX";

static const char *path_of(const char *rel)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, rel);
    return p;
}

static void make_dir(const char *rel)
{
    assert_int_equal(mkdir(path_of(rel), 0700), 0);
}

/* A 6 x 5 grey PNG whose every pixel is v at rel. */
static void write_flat_png(const char *rel, unsigned char v)
{
    unsigned char px[30];
    memset(px, v, sizeof px);
    size_t len;
    unsigned char *png = test_png8(px, 6, 5, 1, &len);
    test_write_file(path_of(rel), png, len);
    free(png);
}

static int open_fails(const char *rel, const lop_folder_opts *o, int st, const char *says)
{
    lop_dataset d;
    int got = lop_dataset_open_folder(path_of(rel), o, &d);
    if (got != st)
        fail_msg("%s: expected %s, got %s (%s)", rel, lop_status_name(st),
                 lop_status_name(got), lop_errmsg());
    if (!strstr(lop_errmsg(), says))
        fail_msg("%s: message '%s' does not say '%s'", rel, lop_errmsg(), says);
    return 1;
}

static lop_folder_opts grey_opts(int size)
{
    lop_folder_opts o = lop_folder_opts_default();
    o.channels = 1;
    o.size_h = o.size_w = size;
    return o;
}

/* ---- layout and order ----------------------------------------------------------- */

static void test_order_and_labels(void **state)
{
    /* Classes sort bytewise: "B" < "a" < "a b" < "b"; ".hidden" and the top-level
     * README are ignored, as is a dot file inside a class.  Files sort bytewise too:
     * 1.png < 10.png < 2.png.  Each file is flat with its own value. */
    const char *dirs[] = {"order", "order/b", "order/a b", "order/a", "order/B",
                          "order/.hidden"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        make_dir(dirs[i]);
    const struct { const char *rel; int v; } files[] = {
        {"order/B/x.png", 10},   {"order/a/10.png", 20},    {"order/a/2.png", 21},
        {"order/a/1.png", 22},   {"order/a b/only.png", 30}, {"order/b/b.png", 40},
        {"order/b/a.png", 41},   {"order/.hidden/h.png", 99},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        write_flat_png(files[i].rel, (unsigned char)files[i].v);
    test_write_file(path_of("order/README.txt"), "not a class\n", 12);
    test_write_file(path_of("order/a/.DS_Store"), "junk", 4);

    lop_folder_opts o = grey_opts(5);
    o.size_w = 6;
    lop_dataset d;
    assert_int_equal(lop_dataset_open_folder(path_of("order"), &o, &d), LOP_OK);
    const int want_label[] = {0, 1, 1, 1, 2, 3, 3}, want_v[] = {10, 22, 20, 21, 30, 41, 40};
    const char *names[] = {"B", "a", "a b", "b"};
    assert_int_equal(d.n, 7);
    assert_int_equal(d.classes, 4);
    assert_null(d.images);
    assert_null(d.source_item);
    for (int k = 0; k < 4; k++)
        assert_string_equal(lop_folder_class_name(&d, k), names[k]);
    assert_null(lop_folder_class_name(&d, 4));
    lop_source *s = d.source;
    assert_int_equal(s->c, 1);
    assert_int_equal(s->h, 5);
    assert_int_equal(s->w, 6);
    assert_int_equal(s->workers, 2);
    assert_int_equal(s->skip_bad, 0);
    assert_int_equal(s->refs, 1);
    assert_int_equal(s->skipped, 0);
    float out[3 * 30];
    char why[WHY];
    for (int i = 0; i < 7; i++) {
        assert_int_equal(d.labels[i], want_label[i]);
        assert_int_equal(s->read(s, i, 0, out, why, sizeof why), LOP_OK);
        for (int j = 0; j < 30; j++)
            assert_true(out[j] == want_v[i] / 255.0f);
    }
    assert_int_equal(s->read(s, 7, 0, out, why, sizeof why), LOP_EINVAL);
    /* A subset shares the source, and so the names. */
    lop_dataset sub;
    assert_int_equal(lop_dataset_subset(&d, 4, 2, &sub), LOP_OK);
    assert_ptr_equal(sub.source, s);
    assert_int_equal(s->refs, 2);
    assert_string_equal(lop_folder_class_name(&sub, 2), "a b");
    lop_dataset_free(&d);
    assert_int_equal(s->refs, 1);
    assert_int_equal(s->read(s, 4, 0, out, why, sizeof why), LOP_OK);
    assert_true(out[0] == 30 / 255.0f);
    lop_dataset_free(&sub);
    assert_null(lop_folder_class_name(&sub, 0));

    /* Three channels: the grey plane repeated. */
    o.channels = 3;
    assert_int_equal(lop_dataset_open_folder(path_of("order"), &o, &d), LOP_OK);
    assert_int_equal(d.source->c, 3);
    assert_int_equal(d.source->read(d.source, 4, 0, out, why, sizeof why), LOP_OK);
    for (int j = 0; j < 90; j++)
        assert_true(out[j] == 30 / 255.0f);
    lop_dataset_free(&d);
}

/* ---- Fashion-MNIST -------------------------------------------------------------- */

#define FM_COUNT 300

static void test_fashion_mnist(void **state)
{
    /* The first FM_COUNT test images as fm/<label>/<index>.png, read back through the
     * folder: the IDX loader's values, bit for bit, in label-then-index order. */
    lop_dataset idx;
    assert_int_equal(lop_dataset_load_idx(FMNIST_DIR "t10k-images-idx3-ubyte.gz",
                                          FMNIST_DIR "t10k-labels-idx1-ubyte.gz", &idx),
                     LOP_OK);
    make_dir("fm");
    unsigned char px[784];
    char rel[64];
    for (int k = 0; k < 10; k++) {
        snprintf(rel, sizeof rel, "fm/%d", k);
        make_dir(rel);
    }
    for (int i = 0; i < FM_COUNT; i++) {
        for (int j = 0; j < 784; j++)
            px[j] = (unsigned char)(idx.images->data[i * 784 + j] * 255.0f + 0.5f);
        size_t len;
        unsigned char *png = test_png8(px, 28, 28, 1, &len);
        snprintf(rel, sizeof rel, "fm/%d/%05d.png", idx.labels[i], i);
        test_write_file(path_of(rel), png, len);
        free(png);
    }
    lop_folder_opts o = grey_opts(28);
    lop_dataset d;
    assert_int_equal(lop_dataset_open_folder(path_of("fm"), &o, &d), LOP_OK);
    assert_int_equal(d.n, FM_COUNT);
    assert_int_equal(d.classes, 10);
    float out[784];
    char why[WHY];
    int item = 0;
    for (int k = 0; k < 10; k++)
        for (int i = 0; i < FM_COUNT; i++) {
            if (idx.labels[i] != k)
                continue;
            assert_int_equal(d.labels[item], k);
            assert_int_equal(d.source->read(d.source, item, 0, out, why, sizeof why), LOP_OK);
            assert_memory_equal(out, idx.images->data + (size_t)i * 784, sizeof out);
            item++;
        }
    assert_int_equal(item, FM_COUNT);
    lop_dataset_free(&d);
    lop_dataset_free(&idx);
}

/* ---- threads -------------------------------------------------------------------- */

typedef struct reader {
    lop_source *s;
    int first, step, n, rounds, failures;
    float *out;            /* n * 3 * 20 * 20 floats */
} reader;

static void *read_items(void *arg)
{
    reader *r = arg;
    char why[WHY];
    for (int round = 0; round < r->rounds; round++)
        for (int i = r->first; i < r->n; i += r->step)
            if (r->s->read(r->s, i, 1000 + (uint64_t)i, r->out + (size_t)i * 1200, why,
                           sizeof why) != LOP_OK)
                r->failures++;
    return NULL;
}

static void test_threads(void **state)
{
    /* Two threads reading (resize, random crop, flip) at once give what one thread
     * gives: read() shares nothing writable. */
    lop_folder_opts o = lop_folder_opts_default();
    o.size_h = o.size_w = 20;
    o.resize = 24;
    o.random_crop = o.flip = 1;
    lop_dataset d;
    assert_int_equal(lop_dataset_open_folder(path_of("fm"), &o, &d), LOP_OK);
    int n = 60;
    float *one = malloc((size_t)n * 1200 * sizeof(float)), *two = malloc((size_t)n * 1200 * sizeof(float));
    reader solo = {d.source, 0, 1, n, 1, 0, one};
    read_items(&solo);
    assert_int_equal(solo.failures, 0);
    reader r[2] = {{d.source, 0, 2, n, 5, 0, two}, {d.source, 1, 2, n, 5, 0, two}};
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&t[k], NULL, read_items, &r[k]), 0);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(pthread_join(t[k], NULL), 0);
        assert_int_equal(r[k].failures, 0);
    }
    assert_memory_equal(one, two, (size_t)n * 1200 * sizeof(float));
    free(one);
    free(two);
    lop_dataset_free(&d);
}

/* ---- errors --------------------------------------------------------------------- */

static void test_errors(void **state)
{
    lop_folder_opts o = grey_opts(5);
    /* A text file among the images: named at open. */
    make_dir("text");
    make_dir("text/c");
    write_flat_png("text/c/a.png", 1);
    test_write_file(path_of("text/c/notes.txt"), "hello\n", 6);
    open_fails("text", &o, LOP_EFORMAT, "text/c/notes.txt: not a PNG or JPEG file");
    /* An empty class folder, a root without class folders, a missing root. */
    make_dir("empty");
    make_dir("empty/a");
    make_dir("empty/e");
    write_flat_png("empty/a/1.png", 1);
    open_fails("empty", &o, LOP_EFORMAT, "empty/e: the class folder holds no images");
    make_dir("noclass");
    write_flat_png("noclass/1.png", 1);
    open_fails("noclass", &o, LOP_EFORMAT, "noclass: no class folders");
    open_fails("missing", &o, LOP_EIO, "missing");
    /* A folder inside a class. */
    make_dir("sub");
    make_dir("sub/a");
    make_dir("sub/a/deeper");
    open_fails("sub", &o, LOP_EFORMAT, "sub/a/deeper: not an image file (a directory)");
    /* Bad options. */
    const lop_folder_opts good = grey_opts(5);
    lop_folder_opts bad[6];
    for (int i = 0; i < 6; i++)
        bad[i] = good;
    bad[0].channels = 2;
    bad[1].size_h = 0;
    bad[2].workers = 0;
    bad[3].std[0] = 0;
    bad[4].resize = -1;
    bad[5].size_w = 70000;
    for (int i = 0; i < 6; i++)
        open_fails("empty", &bad[i], LOP_EINVAL, "lop_dataset_open_folder");

    /* Bad images that pass the scan fail read(), named, with the library's words. */
    make_dir("late");
    make_dir("late/a");
    write_flat_png("late/a/ok.png", 1);
    unsigned char px[30] = {0};
    size_t len;
    unsigned char *png = test_png8(px, 6, 5, 1, &len);
    test_write_file(path_of("late/a/trunc.png"), png, len / 2);
    free(png);
    lop_dataset d;
    float out[64];
    char why[WHY];
    o = grey_opts(5);
    assert_int_equal(lop_dataset_open_folder(path_of("late"), &o, &d), LOP_OK);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.source->read(d.source, 1, 0, out, why, sizeof why), LOP_EFORMAT);
    assert_non_null(strstr(why, "late/a/trunc.png: PNG decoding failed"));
    lop_dataset_free(&d);
    o = grey_opts(8);   /* the 6 x 5 images are smaller than 8 x 8 */
    assert_int_equal(lop_dataset_open_folder(path_of("late"), &o, &d), LOP_OK);
    assert_int_equal(d.source->read(d.source, 0, 0, out, why, sizeof why), LOP_EFORMAT);
    assert_non_null(strstr(why, "late/a/ok.png: the image is 6x5"));
    assert_non_null(strstr(why, "smaller than the 8x8 crop"));
    lop_dataset_free(&d);
}

static void test_skip_bad(void **state)
{
    lop_folder_opts o = grey_opts(5);
    o.skip_bad = 1;
    lop_dataset d;
    assert_int_equal(lop_dataset_open_folder(path_of("text"), &o, &d), LOP_OK);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.source->skip_bad, 1);
    assert_int_equal(d.source->skipped, 1);
    assert_non_null(strstr(d.source->first_skipped, "text/c/notes.txt: not a PNG or JPEG"));
    lop_dataset_free(&d);
    /* Nothing left in a class is still an error. */
    make_dir("allbad");
    make_dir("allbad/a");
    make_dir("allbad/b");
    write_flat_png("allbad/a/1.png", 1);
    test_write_file(path_of("allbad/b/x.txt"), "x", 1);
    test_write_file(path_of("allbad/b/y.txt"), "y", 1);
    open_fails("allbad", &o, LOP_EFORMAT, "allbad/b: the class folder holds no readable images");
}

static void test_alloc_failures(void **state)
{
    /* Each allocation of the scan failing in turn: ENOMEM and nothing left behind
     * (ASan checks the leaks at exit). */
    lop_folder_opts o = grey_opts(5);
    for (long n = 1;; n++) {
        lop_dataset d;
        lop_debug_fail_alloc(n);
        int st = lop_dataset_open_folder(path_of("order"), &o, &d);
        lop_debug_fail_alloc(0);
        if (st == LOP_OK) {
            assert_int_equal(d.n, 7);
            lop_dataset_free(&d);
            break;
        }
        assert_int_equal(st, LOP_ENOMEM);
    }
}

static void test_image_read(void **state)
{
    lop_tensor *t = NULL;
    assert_int_equal(lop_image_read(path_of("order/a/1.png"), NULL, 0, 0, &t), LOP_OK);
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[0], 1);
    assert_int_equal(t->shape[1], 5);
    assert_int_equal(t->shape[2], 6);
    for (size_t i = 0; i < t->numel; i++)
        assert_true(t->data[i] == 22);
    lop_tensor_release(t);
    assert_int_equal(lop_image_read(path_of("order/a/1.png"), NULL, 3, 0, &t), LOP_OK);
    assert_int_equal(t->shape[0], 3);
    assert_true(t->data[t->numel - 1] == 22);
    lop_tensor_release(t);
    lop_folder_opts o = grey_opts(4);
    assert_int_equal(lop_image_read(path_of("order/a/1.png"), &o, 0, 0, &t), LOP_OK);
    assert_int_equal(t->shape[1], 4);
    assert_true(t->data[0] == 22 / 255.0f);
    lop_tensor_release(t);
    t = NULL;
    assert_int_equal(lop_image_read(path_of("text/c/notes.txt"), NULL, 0, 0, &t), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "notes.txt: not a PNG or JPEG file"));
    assert_int_equal(lop_image_read(path_of("order/a/1.png"), NULL, 2, 0, &t), LOP_EINVAL);
    assert_null(t);
}

static int setup(void **state)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_labels),
        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_skip_bad),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_image_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
