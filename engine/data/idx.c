/*
 * data_idx.c - reader for the IDX files MNIST and Fashion-MNIST ship in.  Files may be
 * gzip-compressed or plain (zlib's gzread passes plain files through), and a file
 * that holds fewer or more bytes than its header promises is rejected, so a damaged
 * download never turns into a silently short or misaligned data set.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "core/gzstatus.h"
#include "internal.h"

#define IDX_IMAGES_MAGIC 0x00000803u   /* unsigned bytes, 3 dimensions (N, H, W) */
#define IDX_LABELS_MAGIC 0x00000801u   /* unsigned bytes, 1 dimension (N) */
/* Far above any real IDX set, low enough that a corrupt header cannot make us
 * allocate an absurd amount before the short file is noticed. */
#define IDX_MAX_ELEMS ((uint64_t)1 << 31)
#define IDX_CHUNK 16384

typedef struct idx_file {
    gzFile gz;
    const char *path;
    int dims[3];
    size_t count;          /* data bytes the header promises */
} idx_file;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int read_exact(const idx_file *f, void *buf, size_t len, const char *what)
{
    unsigned char *p = buf;
    while (len > 0) {
        unsigned want = len > (1u << 30) ? 1u << 30 : (unsigned)len;
        int got = gzread(f->gz, p, want);
        if (got <= 0) {
            int st = lop_gz_status(f->gz, f->path);
            return st != LOP_OK ? st
                                : lop_fail(LOP_EFORMAT, "%s: file is truncated (ends inside "
                                           "the %s)", f->path, what);
        }
        p += got;
        len -= (size_t)got;
    }
    return LOP_OK;
}

static int expect_end(const idx_file *f)
{
    unsigned char extra;
    int got = gzread(f->gz, &extra, 1);
    if (got > 0)
        return lop_fail(LOP_EFORMAT, "%s: unexpected data after the %zu bytes the header "
                        "promises", f->path, f->count);
    return lop_gz_status(f->gz, f->path);
}

/* Open path and check its header: magic number, ndim dimensions, each nonzero. */
static int idx_open(const char *path, uint32_t magic, int ndim, idx_file *f)
{
    unsigned char head[4 + 4 * 3];
    f->path = path;
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        return lop_fail(LOP_EIO, "cannot open %s: %s", path,
                        errno ? strerror(errno) : "unknown error");
    gzbuffer(f->gz, 1u << 17);
    int st = read_exact(f, head, 4 + 4 * (size_t)ndim, "header");
    if (st != LOP_OK)
        return st;
    uint32_t m = be32(head);
    if (m != magic)
        return lop_fail(LOP_EFORMAT, "%s: magic number 0x%08x, expected 0x%08x (an IDX %s "
                        "file of unsigned bytes)", path, (unsigned)m, (unsigned)magic,
                        ndim == 1 ? "label" : "image");
    uint64_t total = 1;
    for (int i = 0; i < ndim; i++) {
        uint32_t d = be32(head + 4 + 4 * i);
        if (d == 0 || d > INT_MAX || d > IDX_MAX_ELEMS / total)
            return lop_fail(LOP_EFORMAT, "%s: dimension %d of size %u is zero or too large",
                            path, i + 1, (unsigned)d);
        total *= d;
        f->dims[i] = (int)d;
    }
    f->count = (size_t)total;
    return LOP_OK;
}

/* Read f->count bytes into pixels (as byte / 255) or labels, whichever is given. */
static int read_values(const idx_file *f, float *pixels, int *labels)
{
    unsigned char buf[IDX_CHUNK];
    for (size_t done = 0; done < f->count;) {
        size_t n = f->count - done < IDX_CHUNK ? f->count - done : IDX_CHUNK;
        int st = read_exact(f, buf, n, pixels ? "pixel data" : "label data");
        if (st != LOP_OK)
            return st;
        if (pixels) {
            float *dst = pixels + done;
            for (size_t i = 0; i < n; i++)
                dst[i] = buf[i] / 255.0f;
        } else {
            int *dst = labels + done;
            for (size_t i = 0; i < n; i++)
                dst[i] = buf[i];
        }
        done += n;
    }
    return expect_end(f);
}

int lop_dataset_load_idx(const char *images_path, const char *labels_path,
                         lop_dataset *out)
{
    if (!images_path || !labels_path || !out)
        return lop_fail(LOP_EINVAL, "lop_dataset_load_idx: NULL argument");
    idx_file im = {0}, lb = {0};
    lop_tensor *images = NULL;
    int *labels = NULL;

    /* Both headers first, so mismatched files fail before any bulk reading. */
    int st = idx_open(images_path, IDX_IMAGES_MAGIC, 3, &im);
    if (st == LOP_OK)
        st = idx_open(labels_path, IDX_LABELS_MAGIC, 1, &lb);
    if (st == LOP_OK && im.dims[0] != lb.dims[0])
        st = lop_fail(LOP_EFORMAT, "%s holds %d images but %s holds %d labels", images_path,
                      im.dims[0], labels_path, lb.dims[0]);
    int n = im.dims[0];
    if (st == LOP_OK) {
        int shape[4] = {n, 1, im.dims[1], im.dims[2]};
        images = lop_tensor_new(4, shape);
        labels = lop_malloc((size_t)n * sizeof *labels);
        if (!images || !labels)
            st = LOP_ENOMEM;
    }
    if (st == LOP_OK)
        st = read_values(&im, images->data, NULL);
    if (st == LOP_OK)
        st = read_values(&lb, NULL, labels);
    if (im.gz)
        gzclose(im.gz);
    if (lb.gz)
        gzclose(lb.gz);
    if (st != LOP_OK) {
        lop_tensor_release(images);
        lop_free(labels);
        return st;
    }

    int max_label = 0;
    for (int i = 0; i < n; i++)
        if (labels[i] > max_label)
            max_label = labels[i];
    /* Ten classes for (Fashion-)MNIST even when a small subset misses the top ones. */
    *out = (lop_dataset){.images = images, .labels = labels, .n = n,
                         .classes = max_label < 10 ? 10 : max_label + 1};
    return LOP_OK;
}
