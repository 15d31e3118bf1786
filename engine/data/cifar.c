/*
 * data_cifar.c - reader for the CIFAR-10 binary batches (data_batch_1..5.bin,
 * test_batch.bin).  The format has no header, so the only integrity checks are that a
 * file is a whole number of records and that every label is a CIFAR-10 class; both
 * are made, because a wrong file would otherwise load as plausible-looking noise.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)   /* channel-major: R, G, B planes */
#define CIFAR_RECORD (1 + CIFAR_PIXELS)               /* label byte, then pixels */
#define CIFAR_CLASSES 10

/* Read the records of one file into images/labels from item *next on, at most up to
 * item n; the sizes were checked before, so a mismatch here means the file changed. */
static int read_file(const char *path, int *next, int n, float *images, int *labels)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return lop_fail(LOP_EIO, "cannot open %s: %s", path, strerror(errno));
    unsigned char rec[CIFAR_RECORD];
    int st = LOP_OK;
    for (long r = 0;; r++) {
        size_t got = fread(rec, 1, sizeof rec, fp);
        if (got == 0 && !ferror(fp))
            break;
        if (got != sizeof rec) {
            st = ferror(fp) ? lop_fail(LOP_EIO, "error reading %s: %s", path, strerror(errno))
                            : lop_fail(LOP_EFORMAT, "%s: file changed while being read", path);
            break;
        }
        if (*next == n) {
            st = lop_fail(LOP_EFORMAT, "%s: file changed while being read", path);
            break;
        }
        if (rec[0] >= CIFAR_CLASSES) {
            st = lop_fail(LOP_EFORMAT, "%s: record %ld has label %d; CIFAR-10 labels are 0..9",
                          path, r, rec[0]);
            break;
        }
        labels[*next] = rec[0];
        float *dst = images + (size_t)*next * CIFAR_PIXELS;
        for (int i = 0; i < CIFAR_PIXELS; i++)
            dst[i] = rec[1 + i] / 255.0f;
        ++*next;
    }
    fclose(fp);
    return st;
}

int lop_dataset_load_cifar10(const char *const *paths, int npaths, lop_dataset *out)
{
    if (!paths || npaths < 1 || !out)
        return lop_fail(LOP_EINVAL, "lop_dataset_load_cifar10: need an output and at least "
                        "one file");
    /* Sizes first: the whole set is allocated once, and a bad file fails early. */
    long total = 0;
    for (int i = 0; i < npaths; i++) {
        struct stat sb;
        if (!paths[i])
            return lop_fail(LOP_EINVAL, "lop_dataset_load_cifar10: path %d is NULL", i + 1);
        if (stat(paths[i], &sb) != 0)
            return lop_fail(LOP_EIO, "cannot open %s: %s", paths[i], strerror(errno));
        if (!S_ISREG(sb.st_mode))
            return lop_fail(LOP_EIO, "%s is not a regular file", paths[i]);
        if (sb.st_size == 0 || sb.st_size % CIFAR_RECORD != 0)
            return lop_fail(LOP_EFORMAT, "%s: size %lld is not a whole number of %d-byte "
                            "CIFAR-10 records", paths[i], (long long)sb.st_size, CIFAR_RECORD);
        if (sb.st_size / CIFAR_RECORD > INT_MAX - total)
            return lop_fail(LOP_EFORMAT, "more than %d CIFAR-10 records in %d files", INT_MAX,
                            npaths);
        total += (long)(sb.st_size / CIFAR_RECORD);
    }

    int n = (int)total;
    int shape[4] = {n, 3, CIFAR_SIDE, CIFAR_SIDE};
    lop_tensor *images = lop_tensor_new(4, shape);
    int *labels = lop_malloc((size_t)n * sizeof *labels);
    int st = images && labels ? LOP_OK : LOP_ENOMEM;
    int next = 0;
    for (int i = 0; i < npaths && st == LOP_OK; i++)
        st = read_file(paths[i], &next, n, images->data, labels);
    if (st == LOP_OK && next != n)
        st = lop_fail(LOP_EFORMAT, "CIFAR-10 files changed while being read");
    if (st != LOP_OK) {
        lop_tensor_release(images);
        lop_free(labels);
        return st;
    }
    *out = (lop_dataset){.images = images, .labels = labels, .n = n,
                         .classes = CIFAR_CLASSES};
    return LOP_OK;
}
