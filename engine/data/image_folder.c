/*
 * image_folder.c - a data set streamed from a folder of images, root/<class>/<image>:
 * the scan that lists classes and files when the set is opened, and the source whose
 * read() turns one file into one preprocessed image on a loader's worker thread.
 *
 * Opening does not decode anything (a folder may hold a million images) but opens
 * every file to check its first bytes, so a stray text file fails at open time, not
 * an hour into training.  The file names live in one arena; an item is its class and
 * the offset of its name.  read() only reads that state, so any number of threads
 * may call it at once; it reports through its `why` buffer, never lop_fail.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/image.h"

#define FOLDER_PATH_MAX 4096
#define FOLDER_MAX_SIDE 65535   /* size_h, size_w and resize */
#define FOLDER_MAX_WORKERS 64

typedef struct folder_source {
    lop_source base;       /* first: a lop_source * is a folder_source * */
    lop_folder_opts o;
    char *root;
    char *names;           /* arena: class names, then file names, each 0-terminated */
    size_t *class_name;    /* per class: offset of its name in the arena */
    size_t *item_name;     /* per item: offset of its file name */
    int *item_class;
    int nclasses, n;
} folder_source;

lop_folder_opts lop_folder_opts_default(void)
{
    lop_folder_opts o;
    memset(&o, 0, sizeof o);
    o.channels = 3;
    o.workers = 2;
    for (int c = 0; c < 3; c++)
        o.std[c] = 1;
    return o;
}

static int check_opts(const lop_folder_opts *o, const char *fn)
{
    if (!o)
        return lop_fail(LOP_EINVAL, "%s: no options", fn);
    if (o->channels != 1 && o->channels != 3)
        return lop_fail(LOP_EINVAL, "%s: channels must be 1 or 3, got %d", fn, o->channels);
    if (o->size_h < 1 || o->size_w < 1 || o->size_h > FOLDER_MAX_SIDE ||
        o->size_w > FOLDER_MAX_SIDE || (long)o->size_h * o->size_w > LOP_IMAGE_MAX_PIXELS)
        return lop_fail(LOP_EINVAL, "%s: the output size must be 1..%d on each side and at "
                        "most %ld pixels, got %dx%d", fn, FOLDER_MAX_SIDE,
                        LOP_IMAGE_MAX_PIXELS, o->size_h, o->size_w);
    if (o->resize < 0 || o->resize > FOLDER_MAX_SIDE)
        return lop_fail(LOP_EINVAL, "%s: resize must be 0 (none) or 1..%d, got %d", fn,
                        FOLDER_MAX_SIDE, o->resize);
    if (o->workers < 1 || o->workers > FOLDER_MAX_WORKERS)
        return lop_fail(LOP_EINVAL, "%s: workers must be 1..%d, got %d", fn,
                        FOLDER_MAX_WORKERS, o->workers);
    for (int c = 0; c < o->channels; c++)
        if (!isfinite(o->mean[c]) || !isfinite(o->std[c]) || o->std[c] == 0)
            return lop_fail(LOP_EINVAL, "%s: channel %d has mean %g and std %g (need finite "
                            "values, std not 0)", fn, c, o->mean[c], o->std[c]);
    return LOP_OK;
}

/* ---- files ---------------------------------------------------------------------- */

static void say_errno(char *why, size_t whylen, const char *path, const char *what, int e)
{
    char msg[128];
    if (strerror_r(e, msg, sizeof msg) != 0)
        snprintf(msg, sizeof msg, "error %d", e);
    snprintf(why, whylen, "%s: %s: %s", path, what, msg);
}

/* Open path for reading as a regular file (O_NONBLOCK: a FIFO must not hang the
 * scan); its size in *size. */
static int open_file(const char *path, size_t *size, int *fd, char *why, size_t whylen)
{
    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (*fd < 0) {
        say_errno(why, whylen, path, "cannot open", errno);
        return LOP_EIO;
    }
    struct stat s;
    if (fstat(*fd, &s) != 0) {
        say_errno(why, whylen, path, "cannot read", errno);
        close(*fd);
        return LOP_EIO;
    }
    if (!S_ISREG(s.st_mode)) {
        snprintf(why, whylen, "%s: not an image file (%s)", path,
                 S_ISDIR(s.st_mode) ? "a directory" : "not a regular file");
        close(*fd);
        return LOP_EFORMAT;
    }
    *size = (size_t)s.st_size;
    return LOP_OK;
}

/* Up to len bytes from fd into buf; the count read in *got. */
static int read_all(int fd, unsigned char *buf, size_t len, size_t *got, const char *path,
                    char *why, size_t whylen)
{
    *got = 0;
    while (*got < len) {
        ssize_t r = read(fd, buf + *got, len - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            say_errno(why, whylen, path, "cannot read", errno);
            return LOP_EIO;
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return LOP_OK;
}

/* The whole file (a short read is the decoder's to report as truncation). */
static int read_file(const char *path, unsigned char **data, size_t *len, char *why,
                     size_t whylen)
{
    size_t size;
    int fd, st = open_file(path, &size, &fd, why, whylen);
    if (st != LOP_OK)
        return st;
    if (size > LOP_IMAGE_MAX_FILE) {
        snprintf(why, whylen, "%s: %zu bytes; image files over %zu bytes are refused", path,
                 size, LOP_IMAGE_MAX_FILE);
        close(fd);
        return LOP_EFORMAT;
    }
    *data = lop_malloc(size);
    if (!*data) {
        snprintf(why, whylen, "%s: out of memory reading %zu bytes", path, size);
        close(fd);
        return LOP_ENOMEM;
    }
    st = read_all(fd, *data, size, len, path, why, whylen);
    close(fd);
    if (st != LOP_OK) {
        lop_free(*data);
        *data = NULL;
    }
    return st;
}

/* Decode the file at path into *im (channels as lop_image_decode takes them); every
 * message names the file. */
static int decode_file(const char *path, int channels, lop_image *im, char *why,
                       size_t whylen)
{
    unsigned char *data = NULL;
    size_t len = 0;
    int st = read_file(path, &data, &len, why, whylen);
    if (st != LOP_OK)
        return st;
    char msg[256];
    st = lop_image_decode(data, len, channels, LOP_IMAGE_MAX_PIXELS, im, msg, sizeof msg);
    lop_free(data);
    if (st != LOP_OK)
        snprintf(why, whylen, "%s: %s", path, msg);
    return st;
}

/* Decode path and write what an image folder with options o makes of it into out. */
static int read_image(const char *path, const lop_folder_opts *o, uint64_t seed, float *out,
                      char *why, size_t whylen)
{
    lop_image im;
    int st = decode_file(path, o->channels, &im, why, whylen);
    if (st != LOP_OK)
        return st;
    lop_image_plan plan;
    char msg[256];
    st = lop_image_plan_folder(&im, o, seed, &plan, msg, sizeof msg);
    if (st == LOP_OK && (st = lop_image_run(&im, &plan, out)) != LOP_OK)
        snprintf(msg, sizeof msg, "out of memory preprocessing it");
    if (st != LOP_OK)
        snprintf(why, whylen, "%s: %s", path, msg);
    lop_image_free(&im);
    return st;
}

/* ---- the source ----------------------------------------------------------------- */

static void item_path(const folder_source *f, int item, char *path)
{
    /* Lengths were checked against FOLDER_PATH_MAX by the scan. */
    snprintf(path, FOLDER_PATH_MAX, "%s/%s/%s", f->root,
             f->names + f->class_name[f->item_class[item]], f->names + f->item_name[item]);
}

static int folder_read(lop_source *s, int item, uint64_t seed, float *out, char *why,
                       size_t whylen)
{
    const folder_source *f = (const folder_source *)s;
    if (item < 0 || item >= f->n) {
        snprintf(why, whylen, "image folder %s: item %d is outside 0..%d", f->root, item,
                 f->n - 1);
        return LOP_EINVAL;
    }
    char path[FOLDER_PATH_MAX];
    item_path(f, item, path);
    return read_image(path, &f->o, seed, out, why, whylen);
}

static void folder_destroy(lop_source *s)
{
    folder_source *f = (folder_source *)s;
    if (!f)
        return;
    lop_free(f->root);
    lop_free(f->names);
    lop_free(f->class_name);
    lop_free(f->item_name);
    lop_free(f->item_class);
    lop_free(f);
}

/* ---- the scan ------------------------------------------------------------------- */

/* out = dir/name; LOP_EINVAL (with the message) when that is too long. */
static int join_path(char out[FOLDER_PATH_MAX], const char *dir, const char *name)
{
    int len = snprintf(out, FOLDER_PATH_MAX, "%s/%s", dir, name);
    if (len < 0 || len >= FOLDER_PATH_MAX)
        return lop_fail(LOP_EINVAL, "%s/%s: path too long", dir, name);
    return LOP_OK;
}

/* Growable arrays and the name arena while scanning. */
typedef struct scan {
    folder_source *f;
    size_t names_len, names_cap, item_name_cap, item_class_cap;
} scan;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return LOP_OK;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *q = lop_realloc(*p, cap2 * elem);
    if (!q)
        return LOP_ENOMEM;
    *p = q;
    *cap = cap2;
    return LOP_OK;
}

/* Append name (0-terminated) to the arena; its offset in *off. */
static int add_name(scan *sc, const char *name, size_t *off)
{
    size_t len = strlen(name) + 1;
    void *p = sc->f->names;
    int st = grow(&p, &sc->names_cap, sc->names_len + len, 1);
    sc->f->names = p;
    if (st != LOP_OK)
        return st;
    memcpy(sc->f->names + sc->names_len, name, len);
    *off = sc->names_len;
    sc->names_len += len;
    return LOP_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort the names at offs[0..n) of the arena bytewise (through pointers: the arena
 * does not move until the next name is added). */
static int sort_names(const char *arena, size_t *offs, size_t n)
{
    const char **ptr = lop_malloc(n * sizeof *ptr);
    if (!ptr)
        return LOP_ENOMEM;
    for (size_t i = 0; i < n; i++)
        ptr[i] = arena + offs[i];
    qsort(ptr, n, sizeof *ptr, by_name);
    for (size_t i = 0; i < n; i++)
        offs[i] = (size_t)(ptr[i] - arena);
    lop_free(ptr);
    return LOP_OK;
}

/* The non-hidden entries of dir (for classes: only the directories), appended to
 * the arena and sorted bytewise: their offsets in a new array *offs of *count. */
static int list_dir(scan *sc, const char *dir, int dirs_only, size_t **offs, size_t *count)
{
    *offs = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return lop_fail(LOP_EIO, "cannot open the folder %s: %s", dir, strerror(errno));
    size_t n = 0, cap = 0;
    int st = LOP_OK;
    struct dirent *e;
    while ((errno = 0, e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[FOLDER_PATH_MAX];
        if ((st = join_path(path, dir, e->d_name)) != LOP_OK)
            break;
        if (dirs_only) {
            struct stat s;
            if (stat(path, &s) != 0) {
                st = lop_fail(LOP_EIO, "cannot read %s: %s", path, strerror(errno));
                break;
            }
            if (!S_ISDIR(s.st_mode))
                continue;   /* a README or labels file beside the classes */
        }
        size_t off;
        void *p = *offs;
        if ((st = grow(&p, &cap, n + 1, sizeof **offs)) != LOP_OK)
            break;
        *offs = p;
        if ((st = add_name(sc, e->d_name, &off)) != LOP_OK)
            break;
        (*offs)[n++] = off;
    }
    if (st == LOP_OK && errno != 0)
        st = lop_fail(LOP_EIO, "cannot list the folder %s: %s", dir, strerror(errno));
    closedir(d);
    if (st == LOP_OK && n > 1)
        st = sort_names(sc->f->names, *offs, n);
    if (st != LOP_OK) {
        lop_free(*offs);
        *offs = NULL;
        return st;
    }
    *count = n;
    return LOP_OK;
}

/* Check the first bytes of the file at path: LOP_OK for a PNG or JPEG, otherwise
 * the reason in why. */
static int check_file(const char *path, char *why, size_t whylen)
{
    size_t size, got;
    int fd, st = open_file(path, &size, &fd, why, whylen);
    if (st != LOP_OK)
        return st;
    unsigned char head[LOP_IMAGE_MAGIC_LEN];
    st = read_all(fd, head, sizeof head, &got, path, why, whylen);
    close(fd);
    if (st == LOP_OK && lop_image_sniff(head, got) == LOP_IMAGE_UNKNOWN) {
        snprintf(why, whylen, "%s: not a PNG or JPEG file", path);
        st = LOP_EFORMAT;
    }
    return st;
}

/* The files of class k, checked, appended to the items. */
static int scan_class(scan *sc, const char *root, int k)
{
    folder_source *f = sc->f;
    char dir[FOLDER_PATH_MAX], path[FOLDER_PATH_MAX], why[FOLDER_PATH_MAX + 256];
    size_t *offs = NULL, count = 0, kept = 0;
    int st = join_path(dir, root, f->names + f->class_name[k]);
    if (st == LOP_OK)
        st = list_dir(sc, dir, 0, &offs, &count);
    for (size_t i = 0; st == LOP_OK && i < count; i++) {
        if ((st = join_path(path, dir, f->names + offs[i])) != LOP_OK)
            break;
        st = check_file(path, why, sizeof why);
        if (st == LOP_EIO || st == LOP_EFORMAT) {
            if (!f->o.skip_bad) {
                st = lop_fail(st, "%s", why);
                break;
            }
            if (f->base.skipped++ == 0) {
                size_t len = strlen(why), room = sizeof f->base.first_skipped - 1;
                len = len < room ? len : room;   /* a long path may not fit: cut it */
                memcpy(f->base.first_skipped, why, len);
                f->base.first_skipped[len] = '\0';
            }
            st = LOP_OK;
            continue;
        }
        if (st != LOP_OK || f->n == 0x7ffffffe) {
            st = st != LOP_OK ? lop_fail(st, "%s", why)
                              : lop_fail(LOP_EINVAL, "%s: too many images", root);
            break;
        }
        void *a = f->item_name, *b = f->item_class;
        st = grow(&a, &sc->item_name_cap, (size_t)f->n + 1, sizeof *f->item_name);
        f->item_name = a;
        if (st == LOP_OK)
            st = grow(&b, &sc->item_class_cap, (size_t)f->n + 1, sizeof *f->item_class);
        f->item_class = b;
        if (st != LOP_OK)
            break;
        f->item_name[f->n] = offs[i];
        f->item_class[f->n++] = k;
        kept++;
    }
    lop_free(offs);
    if (st == LOP_OK && kept == 0)
        st = lop_fail(LOP_EFORMAT, "%s: the class folder holds no %simages", dir,
                      count ? "readable " : "");
    return st;
}

static int scan_root(scan *sc, const char *root)
{
    folder_source *f = sc->f;
    size_t count;
    int st = list_dir(sc, root, 1, &f->class_name, &count);
    if (st != LOP_OK)
        return st;
    if (count == 0)
        return lop_fail(LOP_EFORMAT, "%s: no class folders (expected %s/<class>/<image>)",
                        root, root);
    if (count > 0x7ffffffe)
        return lop_fail(LOP_EINVAL, "%s: too many class folders", root);
    f->nclasses = (int)count;
    for (int k = 0; st == LOP_OK && k < f->nclasses; k++)
        st = scan_class(sc, root, k);
    return st;
}

int lop_dataset_open_folder(const char *root, const lop_folder_opts *o, lop_dataset *out)
{
    const char *fn = "lop_dataset_open_folder";
    int st = check_opts(o, fn);
    if (st != LOP_OK)
        return st;
    if (!root || !out)
        return lop_fail(LOP_EINVAL, "%s: no folder or no data set", fn);
    scan sc = {0};
    size_t root_len = strlen(root);
    if (root_len + 4 >= FOLDER_PATH_MAX)
        return lop_fail(LOP_EINVAL, "%s: path too long", root);
    folder_source *f = lop_calloc(1, sizeof *f);
    if (!f)
        return LOP_ENOMEM;
    sc.f = f;
    f->o = *o;
    f->base.c = o->channels;
    f->base.h = o->size_h;
    f->base.w = o->size_w;
    f->base.workers = o->workers;
    f->base.skip_bad = o->skip_bad;
    f->base.read = folder_read;
    f->base.destroy = folder_destroy;
    f->base.refs = 1;
    f->base.kind = "image folder";
    int *labels = NULL;
    if (!(f->root = lop_malloc(root_len + 1))) {
        st = LOP_ENOMEM;
        goto fail;
    }
    memcpy(f->root, root, root_len + 1);
    if ((st = scan_root(&sc, root)) != LOP_OK)
        goto fail;
    if (!(labels = lop_malloc((size_t)f->n * sizeof *labels))) {
        st = LOP_ENOMEM;
        goto fail;
    }
    memcpy(labels, f->item_class, (size_t)f->n * sizeof *labels);
    memset(out, 0, sizeof *out);
    out->labels = labels;
    out->n = f->n;
    out->classes = f->nclasses;
    out->source = &f->base;
    return LOP_OK;
fail:
    folder_destroy(&f->base);
    return st;
}

const char *lop_folder_class_name(const lop_dataset *d, int k)
{
    if (!d || !d->source || d->source->read != folder_read)
        return NULL;
    const folder_source *f = (const folder_source *)d->source;
    return k >= 0 && k < f->nclasses ? f->names + f->class_name[k] : NULL;
}

int lop_image_read(const char *path, const lop_folder_opts *o, int channels, uint64_t seed,
                   lop_tensor **out)
{
    const char *fn = "lop_image_read";
    if (!path || !out)
        return lop_fail(LOP_EINVAL, "%s: no path or no output", fn);
    int st = o ? check_opts(o, fn) : LOP_OK;
    if (st != LOP_OK)
        return st;
    if (!o && channels != 0 && channels != 1 && channels != 3)
        return lop_fail(LOP_EINVAL, "%s: channels must be 0 (as stored), 1 or 3, got %d", fn,
                        channels);
    char why[512];
    lop_image im;
    if ((st = decode_file(path, o ? o->channels : channels, &im, why, sizeof why)) != LOP_OK)
        return lop_fail(st, "%s", why);
    lop_image_plan plan;
    if (o)
        st = lop_image_plan_folder(&im, o, seed, &plan, why, sizeof why);
    else
        lop_image_plan_raw(&im, channels ? channels : im.c, &plan);
    int shape[3] = {plan.oc, plan.oh, plan.ow};
    lop_tensor *t = st == LOP_OK ? lop_tensor_new(3, shape) : NULL;
    if (st != LOP_OK)
        st = lop_fail(st, "%s: %s", path, why);
    else if (!t || lop_image_run(&im, &plan, t->data) != LOP_OK)
        st = lop_fail(LOP_ENOMEM, "%s: out of memory", path);
    lop_image_free(&im);
    if (st != LOP_OK) {
        lop_tensor_release(t);
        return st;
    }
    *out = t;
    return LOP_OK;
}
