/*
 * npy_header.c - mapping a .npy file and reading its header (npy.h).  The header is a
 * Python dict literal, but only the one numpy writes: {'descr': '<f4',
 * 'fortran_order': False, 'shape': (N, C, H, W), } padded with spaces and a newline.
 * A small strict parser reads exactly that shape of text (keys in any order, either
 * quote, any spacing, trailing commas) and refuses everything else, so that no file can
 * make the reader guess; the data's size is then checked against the file's before any
 * element is touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/npy.h"
#include "internal.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6

typedef struct parser {
    const char *s;         /* the header text */
    size_t len, pos;
    char why[128];         /* what was wrong, when a step fails */
} parser;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int bad(parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    va_end(ap);
    return -1;
}

static void skip_space(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\r' || p->s[p->pos] == '\n'))
        p->pos++;
}

static int peek(const parser *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int expect(parser *p, char c)
{
    if (peek(p) != c)
        return bad(p, "expected '%c'", c);
    p->pos++;
    return 0;
}

/* A quoted string without escapes: 'x' or "x", printable ASCII, shorter than cap. */
static int parse_string(parser *p, char *out, size_t cap)
{
    int q = peek(p);
    if (q != '\'' && q != '"')
        return bad(p, "expected a quoted string");
    size_t n = 0;
    for (p->pos++; peek(p) != q; p->pos++) {
        int c = peek(p);
        if (c < 0x20 || c > 0x7e || c == '\\')
            return bad(p, "unexpected character in a string");
        if (n + 1 >= cap)
            return bad(p, "string too long");
        out[n++] = (char)c;
    }
    p->pos++;
    out[n] = '\0';
    return 0;
}

static int parse_bool(parser *p, int *out)
{
    static const char *const words[2] = {"False", "True"};
    for (int v = 0; v < 2; v++) {
        size_t n = strlen(words[v]);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, words[v], n) == 0) {
            p->pos += n;
            int c = peek(p);
            if (c == '_' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
                (c >= 'a' && c <= 'z'))
                break;   /* "Falsey" is a name, not False */
            *out = v;
            return 0;
        }
    }
    return bad(p, "expected True or False");
}

/* A non-negative decimal integer as Python writes one (no sign, no leading zero). */
static int parse_dim(parser *p, int *out)
{
    int c = peek(p);
    if (c < '0' || c > '9')
        return bad(p, "expected a dimension (a non-negative integer)");
    if (c == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9')
        return bad(p, "a dimension has a leading zero");
    long long v = 0;
    for (; (c = peek(p)) >= '0' && c <= '9'; p->pos++) {
        v = v * 10 + (c - '0');
        if (v > INT_MAX)
            return bad(p, "a dimension is larger than %d", INT_MAX);
    }
    *out = (int)v;
    return 0;
}

/* (), (5,), (5, 3), (5, 3,): a tuple; (5) is a number in Python, refused. */
static int parse_shape(parser *p, lop_npy_file *f)
{
    if (expect(p, '(') != 0)
        return -1;
    skip_space(p);
    f->ndim = 0;
    if (peek(p) == ')') {
        p->pos++;
        return 0;
    }
    for (;;) {
        if (f->ndim == LOP_NPY_MAX_DIMS)
            return bad(p, "more than %d dimensions", LOP_NPY_MAX_DIMS);
        if (parse_dim(p, &f->shape[f->ndim++]) != 0)
            return -1;
        skip_space(p);
        if (peek(p) == ',') {
            p->pos++;
            skip_space(p);
            if (peek(p) != ')')
                continue;
        } else if (peek(p) != ')') {
            return bad(p, "expected ',' or ')' in the shape");
        } else if (f->ndim == 1) {
            return bad(p, "the shape (n) is a number, not a tuple (a 1-tuple is (n,))");
        }
        p->pos++;
        return 0;
    }
}

/* The dict: each of descr, fortran_order and shape exactly once, nothing else. */
static int parse_dict(parser *p, lop_npy_file *f, int *fortran)
{
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};
    int seen[3] = {0, 0, 0};
    skip_space(p);
    if (expect(p, '{') != 0)
        return -1;
    for (;;) {
        skip_space(p);
        if (peek(p) == '}')
            break;
        char key[32];
        if (parse_string(p, key, sizeof key) != 0)
            return -1;
        int k = 0;
        while (k < 3 && strcmp(key, keys[k]) != 0)
            k++;
        if (k == 3)
            return bad(p, "unknown key '%s' (the keys are descr, fortran_order, shape)", key);
        if (seen[k]++)
            return bad(p, "key '%s' given twice", key);
        skip_space(p);
        if (expect(p, ':') != 0)
            return -1;
        skip_space(p);
        int st = k == 0 ? parse_string(p, f->descr, sizeof f->descr)
               : k == 1 ? parse_bool(p, fortran)
                        : parse_shape(p, f);
        if (st != 0)
            return st;
        skip_space(p);
        if (peek(p) == ',')
            p->pos++;
        else if (peek(p) != '}')
            return bad(p, "expected ',' or '}' after a value");
    }
    p->pos++;
    skip_space(p);
    if (p->pos != p->len)
        return bad(p, "unexpected text after the dict");
    for (int k = 0; k < 3; k++)
        if (!seen[k])
            return bad(p, "no '%s' key", keys[k]);
    return 0;
}

/* descr as numpy writes a plain number type: byte order, kind, size ('<f4', '|u1').
 * Order '|' (not applicable) only for one-byte types; '=' (native) never appears in a
 * file numpy wrote and is refused, since the writer's native order is unknown here. */
static int decode_descr(lop_npy_file *f)
{
    const char *d = f->descr;
    if (strlen(d) == 3 && strchr("<>|", d[0]) && strchr("uifb", d[1]) && strchr("1248", d[2])) {
        f->kind = d[1];
        f->size = d[2] - '0';
        if (f->size == 1 || d[0] != '|') {
            f->swap = f->size > 1 && d[0] == '>';
            return LOP_OK;
        }
    }
    return lop_fail(LOP_EFORMAT, "%s: unsupported dtype '%s' (not a plain number type with "
                    "a stated byte order, such as '<f4', '|u1' or '<i8')", f->path, d);
}

void lop_npy_shape_str(const lop_npy_file *f, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < f->ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%d", i ? ", " : "", f->shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, f->ndim == 1 ? ",)" : ")");
}

/* Everything after the mapping: header, dtype, shape, and the data's size. */
static int parse_file(lop_npy_file *f)
{
    const unsigned char *b = f->map;
    size_t size = f->map_len;
    size_t have = size < NPY_MAGIC_LEN ? size : NPY_MAGIC_LEN;
    if (memcmp(b, NPY_MAGIC, have) != 0)
        return lop_fail(LOP_EFORMAT, "%s: not a .npy file (it does not start with "
                        "\\x93NUMPY)", f->path);
    if (size < NPY_MAGIC_LEN + 2)
        return lop_fail(LOP_EFORMAT, "%s: file is truncated (%zu bytes, inside the .npy "
                        "header)", f->path, size);
    int major = b[6], minor = b[7];
    if (major < 1 || major > 3 || minor != 0)
        return lop_fail(LOP_EFORMAT, "%s: .npy format version %d.%d is not supported (1.0, "
                        "2.0 and 3.0 are)", f->path, major, minor);
    size_t lenbytes = major == 1 ? 2 : 4, start = NPY_MAGIC_LEN + 2 + lenbytes;
    if (size < start)
        return lop_fail(LOP_EFORMAT, "%s: file is truncated (%zu bytes, inside the .npy "
                        "header)", f->path, size);
    size_t hlen = b[8] | (size_t)b[9] << 8;
    if (lenbytes == 4)
        hlen |= (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (hlen > size - start)
        return lop_fail(LOP_EFORMAT, "%s: the header of %zu bytes runs past the end of the "
                        "file (%zu bytes)", f->path, hlen, size);

    parser p = {.s = (const char *)b + start, .len = hlen, .pos = 0};
    int fortran = 0;
    if (parse_dict(&p, f, &fortran) != 0)
        return lop_fail(LOP_EFORMAT, "%s: bad .npy header: %s (at byte %zu of the header)",
                        f->path, p.why, p.pos);
    int st = decode_descr(f);
    if (st != LOP_OK)
        return st;
    if (fortran)
        return lop_fail(LOP_EFORMAT, "%s: the array is in Fortran order; save "
                        "np.ascontiguousarray(x) instead", f->path);

    char shape[160];
    lop_npy_shape_str(f, shape, sizeof shape);
    /* Elements times at most 8 bytes must fit in 64 bits (a zero dimension: none). */
    uint64_t count = 1;
    for (int i = 0; i < f->ndim; i++)
        if (f->shape[i] == 0)
            count = 0;
    for (int i = 0; i < f->ndim && count; i++) {
        if (count > UINT64_MAX / 8 / (uint64_t)f->shape[i])
            return lop_fail(LOP_EFORMAT, "%s: the shape %s is too large", f->path, shape);
        count *= (uint64_t)f->shape[i];
    }
    uint64_t need = count * (uint64_t)f->size;
    size_t avail = size - start - hlen;
    if (need > avail)
        return lop_fail(LOP_EFORMAT, "%s: file is truncated: the shape %s of '%s' needs %llu "
                        "bytes of data, the file has %zu after its %zu-byte header", f->path,
                        shape, f->descr, (unsigned long long)need, avail, start + hlen);
    if (need < avail)
        return lop_fail(LOP_EFORMAT, "%s: the file has %zu bytes of data after its header, "
                        "the shape %s of '%s' needs %llu (more than one array in the file?)",
                        f->path, avail, shape, f->descr, (unsigned long long)need);
    f->count = (size_t)count;
    f->data = b + start + hlen;
    return LOP_OK;
}

int lop_npy_map(const char *path, lop_npy_file *f)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lop_fail(LOP_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    int rc = LOP_OK;
    if (fstat(fd, &st) != 0)
        rc = lop_fail(LOP_EIO, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = lop_fail(LOP_EIO, "%s is not a regular file", path);
    else if (st.st_size == 0)
        rc = lop_fail(LOP_EFORMAT, "%s: empty file (not a .npy file)", path);
    else if ((uint64_t)st.st_size > SIZE_MAX)
        rc = lop_fail(LOP_EIO, "%s: file too large to map", path);
    if (rc == LOP_OK) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            rc = lop_fail(LOP_EIO, "cannot map %s: %s", path, strerror(errno));
        else {
            f->map = m;
            f->map_len = (size_t)st.st_size;
        }
    }
    close(fd);
    if (rc == LOP_OK)
        rc = parse_file(f);
    if (rc != LOP_OK)
        lop_npy_unmap(f);
    return rc;
}

void lop_npy_unmap(lop_npy_file *f)
{
    if (f->map)
        munmap(f->map, f->map_len);
    f->map = NULL;
    f->data = NULL;
}
