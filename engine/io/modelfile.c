/*
 * modelfile.c - .lop model files.  One gzip stream holds a magic line with the format
 * version, a data-only text header (every node's kind, name, inputs and attributes,
 * then the name and shape of every parameter tensor), the tensors as little-endian
 * float32 and a CRC32 of all of that.  A model file is untrusted input: the reader
 * parses strictly, bounds every line and count, and rebuilds the graph through
 * lop_graph_add so each node is validated exactly as if a program had built it.  The
 * writer replaces the target atomically (files.c) and always writes the newest format
 * version; the reader also reads older ones, whose node lines lack the attributes
 * added since (those take their defaults).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/gzstatus.h"
#include "internal.h"

#define MAGIC "LOPPER-MODEL "
#define FORMAT_VERSION 2           /* what this build writes */
#define OLDEST_VERSION 1           /* the oldest it reads */
/* Twenty times the largest common CNN; also keeps lop_graph_add's name lookups, which
 * are linear, from turning a small hostile file into minutes of work. */
#define MAX_NODES 10000
#define LINE_CAP 65536             /* longest header line, '\n' included */
#define CHUNK 65536                /* bytes moved per gzread / gzwrite */
#define DEFLATE_MAX_RATIO 1032.0   /* no deflate stream inflates to more than this */
#define NODE_FIELDS (3 + (int)NATTRS)   /* kind, name, inputs=, attributes (at most) */
#define PARAM_FIELDS 5                  /* param, node, name, ndim, shape */

/* The attributes in the order a node line lists them; ints are written as
 * comma-separated lists of `count` values.  `since` is the format version that
 * added the attribute: a file of an older version lists only the attributes it knew,
 * in the same order, and the others take their defaults (lop_attrs_default). */
enum { ATTR_INT, ATTR_FLOAT };
static const struct attr_field {
    const char *key;
    size_t offset;
    int type, count, since;
} attr_fields[] = {
    {"in_ndim", offsetof(lop_attrs, in_ndim), ATTR_INT, 1, 1},
    {"in_shape", offsetof(lop_attrs, in_shape), ATTR_INT, 3, 1},
    {"out_channels", offsetof(lop_attrs, out_channels), ATTR_INT, 1, 1},
    {"kernel_h", offsetof(lop_attrs, kernel_h), ATTR_INT, 1, 1},
    {"kernel_w", offsetof(lop_attrs, kernel_w), ATTR_INT, 1, 1},
    {"stride_h", offsetof(lop_attrs, stride_h), ATTR_INT, 1, 1},
    {"stride_w", offsetof(lop_attrs, stride_w), ATTR_INT, 1, 1},
    {"pad_h", offsetof(lop_attrs, pad_h), ATTR_INT, 1, 1},
    {"pad_w", offsetof(lop_attrs, pad_w), ATTR_INT, 1, 1},
    {"pad_bottom", offsetof(lop_attrs, pad_bottom), ATTR_INT, 1, 2},
    {"pad_right", offsetof(lop_attrs, pad_right), ATTR_INT, 1, 2},
    {"ceil_mode", offsetof(lop_attrs, ceil_mode), ATTR_INT, 1, 2},
    {"exclude_pad", offsetof(lop_attrs, exclude_pad), ATTR_INT, 1, 2},
    {"groups", offsetof(lop_attrs, groups), ATTR_INT, 1, 1},
    {"bias", offsetof(lop_attrs, bias), ATTR_INT, 1, 1},
    {"eps", offsetof(lop_attrs, eps), ATTR_FLOAT, 1, 1},
    {"momentum", offsetof(lop_attrs, momentum), ATTR_FLOAT, 1, 1},
    {"p", offsetof(lop_attrs, p), ATTR_FLOAT, 1, 1},
};
#define NATTRS (sizeof attr_fields / sizeof attr_fields[0])
static_assert(sizeof(lop_attrs) == 17 * sizeof(int) + 3 * sizeof(float),
              "a new lop_attrs field needs a row in attr_fields (and a format version)");

/* Header numbers are printed and parsed in the "C" locale whatever the host program
 * chose with setlocale, so a file written under a decimal-comma locale reads anywhere. */
typedef struct c_locale {
    locale_t c, prev;
} c_locale;

static int c_locale_enter(c_locale *l)
{
    l->prev = uselocale((locale_t)0);
    l->c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!l->c)
        return lop_fail(LOP_ENOMEM, "out of memory creating the C locale");
    uselocale(l->c);
    return LOP_OK;
}

static void c_locale_leave(c_locale *l)
{
    uselocale(l->prev);
    freelocale(l->c);
}

/* ---- writing ------------------------------------------------------------------ */

typedef struct writer {
    const char *path;
    gzFile gz;
    uLong crc;             /* of every byte written so far */
    int write_errno;       /* errno of the first failed gzwrite, 0 if none */
    char *line;            /* LINE_CAP bytes: the header line being built */
    size_t len;
    int overflow;          /* the line outgrew LINE_CAP */
    unsigned char *chunk;  /* CHUNK bytes of little-endian floats */
} writer;

/* Later writes after a failure are skipped; the failure is reported once at the end. */
static void put(writer *w, const void *p, size_t n)
{
    w->crc = crc32(w->crc, p, (uInt)n);
    if (w->write_errno != 0 || n == 0)
        return;
    errno = 0;
    if (gzwrite(w->gz, p, (unsigned)n) != (int)n)
        w->write_errno = errno ? errno : EIO;
}

static void addf(writer *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void addf(writer *w, const char *fmt, ...)
{
    if (w->overflow)
        return;
    size_t room = LINE_CAP - w->len;   /* the last byte is kept for the newline */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->line + w->len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        w->overflow = 1;
    else
        w->len += (size_t)n;
}

/* "a,b,c", or "-" for an empty list. */
static void add_ints(writer *w, const int *v, int n)
{
    if (n == 0)
        addf(w, "-");
    for (int i = 0; i < n; i++)
        addf(w, i ? ",%d" : "%d", v[i]);
}

static int end_line(writer *w)
{
    if (w->overflow)
        return lop_fail(LOP_EINVAL, "cannot save %s: header line '%.40s...' is longer "
                        "than %d bytes", w->path, w->line, LINE_CAP);
    w->line[w->len++] = '\n';
    put(w, w->line, w->len);
    w->len = 0;
    return LOP_OK;
}

static void add_node(writer *w, const lop_graph *g, int id)
{
    const lop_attrs *a = lop_node_attrs(g, id);
    int ninputs = lop_node_ninputs(g, id);
    addf(w, "%s %s inputs=", lop_kind_name(lop_node_kind(g, id)), lop_node_name(g, id));
    if (ninputs == 0)
        addf(w, "-");
    for (int k = 0; k < ninputs; k++)
        addf(w, k ? ",%d" : "%d", lop_node_input(g, id, k));
    for (size_t f = 0; f < NATTRS; f++) {
        const char *field = (const char *)a + attr_fields[f].offset;
        addf(w, " %s=", attr_fields[f].key);
        if (attr_fields[f].type == ATTR_FLOAT)
            addf(w, "%.9g", (double)*(const float *)field);   /* 9 digits round-trip */
        else
            add_ints(w, (const int *)field, attr_fields[f].count);
    }
}

/* Only a node line can outgrow LINE_CAP (its input list has no bound), so the other
 * lines' end_line cannot fail. */
static int write_header(writer *w, const lop_graph *g)
{
    int n = lop_graph_size(g), nparams = 0, st = LOP_OK;
    addf(w, "%s%d", MAGIC, FORMAT_VERSION);
    end_line(w);
    addf(w, "nodes %d", n);
    end_line(w);
    for (int i = 0; i < n && st == LOP_OK; i++) {
        add_node(w, g, i);
        st = end_line(w);
        nparams += lop_node_nparams(g, i);
    }
    if (st != LOP_OK)
        return st;
    addf(w, "params %d", nparams);
    end_line(w);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < lop_node_nparams(g, i); k++) {
            const lop_tensor *t = lop_node_param(g, i, k);
            addf(w, "param %d %s %d ", i, lop_node_param_name(g, i, k), t->ndim);
            add_ints(w, t->shape, t->ndim);
            end_line(w);
        }
    addf(w, "end");
    return end_line(w);
}

static void put_floats(writer *w, const float *x, size_t n)
{
    while (n > 0) {
        size_t m = n < CHUNK / 4 ? n : CHUNK / 4;
        lop_floats_to_le(w->chunk, x, m);
        put(w, w->chunk, 4 * m);
        x += m;
        n -= m;
    }
}

typedef struct save_job {
    writer *w;
    const lop_graph *g;
} save_job;

/* Header, tensors and checksum into the open temporary file fd. */
static int write_stream(int fd, void *ctx)
{
    writer *w = ((save_job *)ctx)->w;
    const lop_graph *g = ((save_job *)ctx)->g;
    int gzfd = dup(fd);
    if (gzfd < 0)
        return lop_fail(LOP_EIO, "cannot save %s: %s", w->path, strerror(errno));
    /* zlib owns (and closes) the duplicate; fd stays ours to fsync.  Huffman coding
     * alone ("h"): float data holds almost no repeated strings for LZ77 to find, and
     * skipping the search makes saving 3-4x faster for the same size. */
    w->gz = gzdopen(gzfd, "wbh");
    if (!w->gz) {
        close(gzfd);
        return lop_fail(LOP_ENOMEM, "cannot save %s: out of memory starting zlib", w->path);
    }
    c_locale loc;
    int st = c_locale_enter(&loc);
    if (st == LOP_OK) {
        st = write_header(w, g);
        c_locale_leave(&loc);
    }
    for (int i = 0; st == LOP_OK && i < lop_graph_size(g); i++)
        for (int k = 0; k < lop_node_nparams(g, i); k++) {
            const lop_tensor *t = lop_node_param(g, i, k);
            put_floats(w, t->data, t->numel);
        }
    uLong crc = w->crc;
    unsigned char tail[4] = {(unsigned char)crc, (unsigned char)(crc >> 8),
                             (unsigned char)(crc >> 16), (unsigned char)(crc >> 24)};
    if (st == LOP_OK)
        put(w, tail, sizeof tail);
    errno = 0;
    int zst = gzclose(w->gz);
    if (st != LOP_OK)
        return st;
    if (w->write_errno != 0 || zst != Z_OK) {
        int e = w->write_errno ? w->write_errno : errno ? errno : EIO;
        return lop_fail(LOP_EIO, "cannot save %s: write failed: %s", w->path, strerror(e));
    }
    return LOP_OK;
}

int lop_graph_save(const lop_graph *g, const char *path)
{
    if (lop_graph_size(g) > MAX_NODES)
        return lop_fail(LOP_EINVAL, "cannot save %s: %d nodes, a model file holds at most %d",
                        path, lop_graph_size(g), MAX_NODES);
    writer w = {.path = path};
    w.line = lop_malloc(LINE_CAP + CHUNK);
    if (!w.line)
        return LOP_ENOMEM;
    w.chunk = (unsigned char *)w.line + LINE_CAP;
    save_job job = {&w, g};
    int st = lop_file_replace(path, write_stream, &job);
    lop_free(w.line);
    return st;
}

/* ---- reading ------------------------------------------------------------------ */

typedef struct reader {
    const char *path;
    gzFile gz;
    unsigned char *buf;   /* CHUNK bytes of decompressed stream */
    size_t pos, len;      /* unread bytes are buf[pos, len) */
    uLong crc;            /* of every byte consumed so far */
    char *line;           /* the current header line without '\n' */
    size_t linelen;
    int *ints;            /* LINE_CAP / 2 parsed integers: all one line can hold */
    int lineno;           /* 0 once past the header, where errors name no line */
    int version;          /* the file's format version */
    double max_values;    /* parameter values the file's size could possibly hold */
} reader;

static int bad(const reader *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A LOP_EFORMAT failure naming the file (and the header line, if in the header). */
static int bad(const reader *r, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->lineno > 0)
        return lop_fail(LOP_EFORMAT, "%s: line %d: %s", r->path, r->lineno, msg);
    return lop_fail(LOP_EFORMAT, "%s: %s", r->path, msg);
}

/* Called with the buffer used up; leaves it empty only at the end of the stream. */
static int refill(reader *r)
{
    int n = gzread(r->gz, r->buf, CHUNK);
    r->pos = 0;
    r->len = n > 0 ? (size_t)n : 0;
    if (n > 0)
        return LOP_OK;
    int st = lop_gz_status(r->gz, r->path);
    if (n < 0 && st == LOP_OK)
        st = lop_fail(LOP_EFORMAT, "%s: corrupt gzip data", r->path);
    return st;
}

/* Copy the next n bytes of the stream to dst. */
static int take(reader *r, void *dst, size_t n, const char *what)
{
    unsigned char *d = dst;
    while (n > 0) {
        if (r->pos == r->len) {
            int st = refill(r);
            if (st != LOP_OK)
                return st;
            if (r->len == 0)
                return bad(r, "truncated (the file ends inside the %s)", what);
        }
        size_t m = r->len - r->pos < n ? r->len - r->pos : n;
        memcpy(d, r->buf + r->pos, m);
        r->crc = crc32(r->crc, r->buf + r->pos, (uInt)m);
        r->pos += m;
        d += m;
        n -= m;
    }
    return LOP_OK;
}

/* The next header line into r->line, without its newline; printable ASCII only. */
static int read_line(reader *r)
{
    size_t len = 0;
    r->lineno++;
    for (;;) {
        if (r->pos == r->len) {
            int st = refill(r);
            if (st != LOP_OK)
                return st;
            if (r->len == 0)
                return bad(r, "truncated (the file ends inside the header)");
        }
        const unsigned char *start = r->buf + r->pos;
        const unsigned char *nl = memchr(start, '\n', r->len - r->pos);
        size_t m = nl ? (size_t)(nl - start) + 1 : r->len - r->pos;
        if (len + m > LINE_CAP)
            return bad(r, "header line longer than %d bytes", LINE_CAP);
        memcpy(r->line + len, start, m);
        r->crc = crc32(r->crc, start, (uInt)m);
        r->pos += m;
        len += m;
        if (nl)
            break;
    }
    r->line[--len] = '\0';
    r->linelen = len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)r->line[i];
        if (c < 0x20 || c > 0x7e)
            return bad(r, "unexpected byte 0x%02x in the header", c);
    }
    return LOP_OK;
}

/* Split the line at single spaces into at most max fields; the count, or -1 for more
 * fields or an empty one (a doubled, leading or trailing space). */
static int split(char *s, char **fields, int max)
{
    int n = 0;
    for (;;) {
        if (n == max || *s == ' ' || *s == '\0')
            return -1;
        fields[n++] = s;
        s = strchr(s, ' ');
        if (!s)
            return n;
        *s++ = '\0';
    }
}

/* The current line as read, for messages: split's cuts turned back into spaces. */
static const char *whole_line(reader *r)
{
    for (size_t i = 0; i < r->linelen; i++)
        if (r->line[i] == '\0')
            r->line[i] = ' ';
    return r->line;
}

/* An int (optional '-', decimal digits) at *s; advances past it.  0 if none or out
 * of range. */
static int scan_int(const char **s, int *out)
{
    const char *p = *s, *digits;
    int neg = *p == '-';
    long long v = 0;
    for (p += neg, digits = p; *p >= '0' && *p <= '9'; p++) {
        v = 10 * v + (*p - '0');
        if (v > (long long)INT_MAX + 1)
            return 0;
    }
    if (p == digits || (!neg && v > INT_MAX))
        return 0;
    *out = (int)(neg ? -v : v);
    *s = p;
    return 1;
}

static int parse_int(const char *s, int *out)
{
    return scan_int(&s, out) && *s == '\0';
}

/* "a,b,c" or "-" (empty) into v; the count, or -1 if malformed or longer than cap. */
static int parse_ints(const char *s, int *v, int cap)
{
    if (strcmp(s, "-") == 0)
        return 0;
    for (int n = 0; n < cap;) {
        if (!scan_int(&s, &v[n++]))
            return -1;
        if (*s == '\0')
            return n;
        if (*s++ != ',')
            return -1;
    }
    return -1;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    float v = strtof(s, &end);
    if (end == s || *end != '\0')
        return 0;
    *out = v;
    return 1;
}

/* The value of a "key=value" field, or NULL if the field has another key. */
static const char *value_of(const char *field, const char *key)
{
    size_t n = strlen(key);
    return strncmp(field, key, n) == 0 && field[n] == '=' ? field + n + 1 : NULL;
}

/* A "key N" line with 0 <= N <= max. */
static int read_count(reader *r, const char *key, int max, int *count)
{
    char *f[2];
    int st = read_line(r);
    if (st != LOP_OK)
        return st;
    if (split(r->line, f, 2) != 2 || strcmp(f[0], key) != 0 || !parse_int(f[1], count))
        return bad(r, "expected '%s N', found '%.40s'", key, whole_line(r));
    if (*count < 0 || *count > max)
        return bad(r, "%s count %d is outside 0..%d", key, *count, max);
    return LOP_OK;
}

static int read_magic(reader *r)
{
    int st = read_line(r);
    if (st != LOP_OK)
        return st;
    size_t n = strlen(MAGIC);
    if (strncmp(r->line, MAGIC, n) != 0)
        return bad(r, "not a Lopper model file");
    if (!parse_int(r->line + n, &r->version))
        return bad(r, "unreadable format version '%.20s'", r->line + n);
    if (r->version < OLDEST_VERSION || r->version > FORMAT_VERSION)
        return bad(r, "model file version %d, this build reads versions %d to %d",
                   r->version, OLDEST_VERSION, FORMAT_VERSION);
    return LOP_OK;
}

/* How many attributes a node line of the file's version lists. */
static int attrs_in(const reader *r)
{
    int n = 0;
    for (size_t j = 0; j < NATTRS; j++)
        n += attr_fields[j].since <= r->version;
    return n;
}

/* The parameter values a node of these attributes allocates (and fills) in
 * lop_graph_add, from its first input's shape; 0 when that is not an earlier node. */
static double declared_params(const lop_graph *g, lop_kind kind, const int *in, int nin,
                              const lop_attrs *a)
{
    int shape[3];
    if (nin < 1 || in[0] < 0 || in[0] >= lop_graph_size(g))
        return 0;
    int nd = lop_node_shape(g, in[0], shape);
    double c = shape[0], features = (double)lop_shape_numel(nd, shape);
    double out = a->out_channels > 0 ? a->out_channels : 0;
    switch (kind) {
    case LOP_CONV2D:
        return out * c / (a->groups > 0 ? a->groups : 1) * (a->kernel_h > 0 ? a->kernel_h : 0) *
                   (a->kernel_w > 0 ? a->kernel_w : 0) + out;
    case LOP_LINEAR:
        return out * features + out;
    case LOP_BATCHNORM:
        return 4 * c;
    case LOP_PICK:
        return out;
    default:
        return 0;
    }
}

/* Node i's line, added to g through lop_graph_add, which validates it. */
static int read_node(reader *r, lop_graph *g, int i, double *values)
{
    char *f[NODE_FIELDS];
    int st = read_line(r), nattrs = attrs_in(r);
    if (st != LOP_OK)
        return st;
    if (split(r->line, f, NODE_FIELDS) != 3 + nattrs)
        return bad(r, "node %d: expected %d space-separated fields (kind, name, inputs and "
                   "%d attributes, in version %d)", i, 3 + nattrs, nattrs, r->version);
    const char *name = f[1];
    lop_kind kind;
    if (lop_kind_from_name(f[0], &kind) != LOP_OK)
        return bad(r, "node %d '%.63s': unknown kind '%.20s'", i, name, f[0]);
    const char *v = value_of(f[2], "inputs");
    int ninputs = v ? parse_ints(v, r->ints, LINE_CAP / 2) : -1;
    if (ninputs < 0)
        return bad(r, "node %d '%.63s': bad inputs field '%.40s'", i, name, f[2]);
    for (int k = 0; k < ninputs; k++)
        if (r->ints[k] < 0 || r->ints[k] >= i)
            return bad(r, "node %d '%.63s': input %d is node %d, not an earlier node", i,
                       name, k + 1, r->ints[k]);
    lop_attrs a = lop_attrs_default();
    for (size_t j = 0, k = 3; j < NATTRS; j++) {
        const struct attr_field *af = &attr_fields[j];
        if (af->since > r->version)
            continue;
        char *dst = (char *)&a + af->offset;
        v = value_of(f[k], af->key);
        int ok = v && (af->type == ATTR_FLOAT ? parse_float(v, (float *)dst)
                                              : parse_ints(v, (int *)dst, af->count) ==
                                                    af->count);
        if (!ok)
            return bad(r, "node %d '%.63s': expected %s=<%s>, found '%.40s'", i, name,
                       af->key, af->type == ATTR_FLOAT ? "number" : "integers", f[k]);
        k++;
    }
    /* A few hostile bytes can declare huge layers: refuse them before lop_graph_add
     * allocates and fills their parameters (a 200-byte file declaring a 20000 x 20000
     * linear layer cost 1.5 GB and 7 s before). */
    double declared = declared_params(g, kind, r->ints, ninputs, &a);
    if (*values + declared > r->max_values)
        return bad(r, "node %d '%.63s': parameters add up to %.0f values, more than the file "
                   "can hold", i, name, *values + declared);
    int id;
    st = lop_graph_add(g, kind, name, r->ints, ninputs, &a, &id);
    if (st != LOP_OK) {
        char why[300];   /* lop_errmsg names the node; the index says where it is */
        snprintf(why, sizeof why, "%s", lop_errmsg());
        if (st == LOP_ENOMEM)
            return lop_fail(st, "%s: node %d: %s", r->path, i, why);
        return bad(r, "node %d: %s", i, why);
    }
    /* The exact count, in case a layer allocates more than declared_params says. */
    *values += (double)lop_node_params(g, id);
    if (*values > r->max_values)
        return bad(r, "node %d '%s': parameters add up to %.0f values, more than the file "
                   "can hold", i, name, *values);
    return LOP_OK;
}

static void shape_text(char *buf, size_t size, int ndim, const int *shape)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, i ? "x%d" : "%d", shape[i]);
    if (ndim == 0)
        snprintf(buf, size, "scalar");
}

/* Parameter line j: which tensor of g it names, checked against what g holds.
 * seen[i] has bit k set once node i's parameter k has been listed. */
static_assert(LOP_MAX_PARAMS <= 8, "seen[] keeps a node's parameters as bits of a byte");
static int read_param(reader *r, const lop_graph *g, int j, unsigned char *seen,
                      lop_tensor **dst)
{
    char *f[PARAM_FIELDS];
    int node, ndim, shape[LOP_MAX_DIMS];
    int st = read_line(r);
    if (st != LOP_OK)
        return st;
    if (split(r->line, f, PARAM_FIELDS) != PARAM_FIELDS || strcmp(f[0], "param") != 0 ||
        !parse_int(f[1], &node) || !parse_int(f[3], &ndim))
        return bad(r, "parameter %d: expected 'param NODE NAME NDIM SHAPE', found '%.60s'",
                   j, whole_line(r));
    if (node < 0 || node >= lop_graph_size(g))
        return bad(r, "parameter %d: node %d does not exist", j, node);
    const char *nname = lop_node_name(g, node);
    int k = lop_node_find_param(g, node, f[2]);
    if (k < 0)
        return bad(r, "parameter %d: node %d '%s' has no parameter '%.63s'", j, node, nname,
                   f[2]);
    if (seen[node] & (1u << k))
        return bad(r, "parameter %d: '%s' of node %d '%s' is listed twice", j, f[2], node,
                   nname);
    seen[node] |= (unsigned char)(1u << k);
    lop_tensor *t = lop_node_param(g, node, k);
    int got = ndim >= 0 && ndim <= LOP_MAX_DIMS ? parse_ints(f[4], shape, ndim) : -1;
    if (got != ndim)
        return bad(r, "parameter %d: bad shape '%.40s' for rank '%.10s'", j, f[4], f[3]);
    if (ndim != t->ndim || memcmp(shape, t->shape, (size_t)ndim * sizeof(int)) != 0) {
        char in_file[64], in_graph[64];
        shape_text(in_file, sizeof in_file, ndim, shape);
        shape_text(in_graph, sizeof in_graph, t->ndim, t->shape);
        return bad(r, "parameter %d: '%s' of node %d '%s' is %s in the file but %s in the "
                   "graph", j, f[2], node, nname, in_file, in_graph);
    }
    *dst = t;
    return LOP_OK;
}

/* Everything after the magic line up to and including "end": the graph, and the
 * tensors whose data follow, in file order. */
static int read_header(reader *r, lop_graph *g, lop_tensor ***tensors, int *count)
{
    int n, m, total = 0;
    double values = 0;
    int st = read_count(r, "nodes", MAX_NODES, &n);
    for (int i = 0; i < n && st == LOP_OK; i++)
        st = read_node(r, g, i, &values);
    if (st == LOP_OK)
        st = read_count(r, "params", LOP_MAX_PARAMS * MAX_NODES, &m);
    if (st != LOP_OK)
        return st;
    for (int i = 0; i < n; i++)
        total += lop_node_nparams(g, i);
    if (m != total)
        return bad(r, "the file lists %d parameter tensors but its nodes have %d", m, total);
    lop_tensor **dst = lop_malloc((size_t)(m > 0 ? m : 1) * sizeof *dst);
    unsigned char *seen = lop_calloc((size_t)(n > 0 ? n : 1), 1);
    if (!dst || !seen)
        st = LOP_ENOMEM;
    for (int j = 0; j < m && st == LOP_OK; j++)
        st = read_param(r, g, j, seen, &dst[j]);
    lop_free(seen);
    if (st == LOP_OK && (st = read_line(r)) == LOP_OK && strcmp(r->line, "end") != 0)
        st = bad(r, "expected 'end', found '%.40s'", r->line);
    if (st != LOP_OK) {
        lop_free(dst);
        return st;
    }
    *tensors = dst;
    *count = m;
    return LOP_OK;
}

/* The next n floats of the stream, little-endian on every host. */
static int read_floats(reader *r, float *x, size_t n)
{
    int st = take(r, x, n * sizeof(float), "tensor data");
    if (st == LOP_OK)   /* in place: each value's bytes are read before it is written */
        lop_floats_from_le(x, (const unsigned char *)x, n);
    return st;
}

/* The checksum, then the end of the stream. */
static int read_trailer(reader *r)
{
    uLong want = r->crc;
    unsigned char b[4];
    int st = take(r, b, sizeof b, "checksum");
    if (st != LOP_OK)
        return st;
    uLong got = (uLong)b[0] | (uLong)b[1] << 8 | (uLong)b[2] << 16 | (uLong)b[3] << 24;
    if (got != want)
        return bad(r, "CRC mismatch (the file says %08lx, its contents give %08lx)", got,
                   want);
    if (r->pos == r->len && (st = refill(r)) != LOP_OK)
        return st;
    if (r->pos < r->len)
        return bad(r, "unexpected data after the checksum");
    return LOP_OK;
}

static int reader_open(reader *r, const char *path)
{
    r->path = path;
    r->buf = lop_malloc(CHUNK + LINE_CAP / 2 * sizeof(int) + LINE_CAP);
    if (!r->buf)
        return LOP_ENOMEM;
    r->ints = (int *)(r->buf + CHUNK);
    r->line = (char *)(r->ints + LINE_CAP / 2);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lop_fail(LOP_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lop_fail(LOP_EIO, "cannot read %s: %s", path, strerror(e));
    }
    r->max_values = DEFLATE_MAX_RATIO * (double)sb.st_size / sizeof(float);
    r->gz = gzdopen(fd, "rb");
    if (!r->gz) {
        close(fd);
        return lop_fail(LOP_ENOMEM, "%s: out of memory starting zlib", path);
    }
    int st = refill(r);
    if (st == LOP_OK && r->len == 0)
        st = bad(r, "truncated (the file is empty)");
    else if (st == LOP_OK && gzdirect(r->gz))
        st = bad(r, "not gzip-compressed (a .lop file is one gzip stream)");
    return st;
}

int lop_graph_load_lop(const char *path, lop_graph **out)
{
    reader r = {0};
    lop_graph *g = NULL;
    lop_tensor **tensors = NULL;
    int count = 0;
    c_locale loc;
    int st = reader_open(&r, path);
    if (st == LOP_OK)
        st = read_magic(&r);
    if (st == LOP_OK && (st = c_locale_enter(&loc)) == LOP_OK) {
        g = lop_graph_new(0);
        st = g ? read_header(&r, g, &tensors, &count) : LOP_ENOMEM;
        c_locale_leave(&loc);
    }
    r.lineno = 0;
    for (int j = 0; j < count && st == LOP_OK; j++)
        st = read_floats(&r, tensors[j]->data, tensors[j]->numel);
    if (st == LOP_OK)
        st = read_trailer(&r);
    if (r.gz)
        gzclose(r.gz);
    lop_free(r.buf);
    lop_free(tensors);
    if (st != LOP_OK) {
        lop_graph_free(g);
        return st;
    }
    *out = g;
    return LOP_OK;
}
