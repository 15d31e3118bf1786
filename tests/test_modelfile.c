/*
 * test_modelfile.c - .lop files: a saved graph loads back bit-exactly (structure,
 * attributes, parameters, forward output); the bytes follow the documented layout;
 * every damaged, truncated or hostile file is refused with a message and without
 * leaks or a half-built graph escaping; saving is atomic; failed allocations at every
 * site of a load or save are clean - for ONNX files too (protobuf-c allocates through
 * the engine), whose content tests/lua/onnx_spec.lua checks against PyTorch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "gradcheck.h"
#include "lopper.h"

static char dir[64];          /* scratch directory for this run */
static char path[128];        /* dir/model.lop */

/* A bytes buffer: files read whole, payloads edited in memory. */
typedef struct bytes {
    unsigned char *p;
    size_t n;
} bytes;

static void bytes_free(bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

static int add(lop_graph *g, lop_kind kind, const char *name, const int *in, int nin,
               const lop_attrs *a)
{
    int id = -1;
    assert_int_equal(lop_graph_add(g, kind, name, in, nin, a, &id), LOP_OK);
    return id;
}

/* Every kind the file must describe, with non-default attributes where a kind has
 * them (floats that are not short decimals, a conv without bias, strided pooling):
 *   x 3x8x8 -> c1 conv 3x3 pad 1 -> bn -> relu ----+-> add -> concat -> maxpool
 *   x -> c2 conv 1x1, no bias ----------------------+      (add, relu)
 *   maxpool -> flatten -> fc1 --+-> add -> dropout -> out linear 5
 *   maxpool -> gap -> fc2 ------+ */
static lop_graph *build_full(uint64_t seed)
{
    lop_graph *g = lop_graph_new(seed);
    assert_non_null(g);
    lop_attrs a = lop_attrs_default();
    a.in_ndim = 3;
    a.in_shape[0] = 3;
    a.in_shape[1] = a.in_shape[2] = 8;
    int x = add(g, LOP_INPUT, "x", NULL, 0, &a);
    a = lop_attrs_default();
    a.out_channels = 4;
    a.kernel_h = a.kernel_w = 3;
    a.pad_h = a.pad_w = 1;
    int c1 = add(g, LOP_CONV2D, "block1/conv:1", &x, 1, &a);
    a = lop_attrs_default();
    a.eps = 1e-3f;
    a.momentum = 0.3f;
    int bn = add(g, LOP_BATCHNORM, "block1/bn", &c1, 1, &a);
    a = lop_attrs_default();
    int r1 = add(g, LOP_RELU, "block1/relu", &bn, 1, &a);
    a.out_channels = 4;
    a.kernel_h = a.kernel_w = 1;
    a.bias = 0;
    int c2 = add(g, LOP_CONV2D, "shortcut.conv-2", &x, 1, &a);
    a = lop_attrs_default();
    int pair[2] = {r1, c2};
    int sum = add(g, LOP_ADD, "sum", pair, 2, &a);
    pair[0] = sum;
    pair[1] = r1;
    int cat = add(g, LOP_CONCAT, "cat", pair, 2, &a);
    a.kernel_h = a.kernel_w = 2;
    a.stride_h = a.stride_w = 2;
    int mp = add(g, LOP_MAXPOOL, "pool", &cat, 1, &a);
    a = lop_attrs_default();
    int fl = add(g, LOP_FLATTEN, "flat", &mp, 1, &a);
    int gap = add(g, LOP_GLOBAL_AVGPOOL, "gap", &mp, 1, &a);
    a.out_channels = 6;
    pair[0] = add(g, LOP_LINEAR, "fc1", &fl, 1, &a);
    a.bias = 0;
    pair[1] = add(g, LOP_LINEAR, "fc2", &gap, 1, &a);
    a = lop_attrs_default();
    int s2 = add(g, LOP_ADD, "sum2", pair, 2, &a);
    a.p = 0.3f;
    int dp = add(g, LOP_DROPOUT, "drop", &s2, 1, &a);
    a = lop_attrs_default();
    a.out_channels = 5;
    add(g, LOP_LINEAR, "out", &dp, 1, &a);
    return g;
}

/* Overwrite every parameter with seeded values, so the round trip carries data that
 * initialisation could not reproduce; a negative zero and a subnormal ride along. */
static void randomize(lop_graph *g, uint64_t seed)
{
    lop_rng rng;
    lop_rng_seed(&rng, seed);
    for (int i = 0; i < lop_graph_size(g); i++)
        for (int k = 0; k < lop_node_nparams(g, i); k++) {
            lop_tensor *t = lop_node_param(g, i, k);
            int var = strcmp(lop_node_param_name(g, i, k), "running_var") == 0;
            for (size_t e = 0; e < t->numel; e++)
                t->data[e] = var ? (float)(0.5 + lop_rng_uniform(&rng))
                                 : (float)lop_rng_normal(&rng);
        }
    lop_tensor *w = lop_node_param(g, 1, 0);
    w->data[0] = -0.0f;
    w->data[1] = 1e-40f;
}

static lop_graph *build_random(void)
{
    lop_graph *g = build_full(7);
    randomize(g, 99);
    return g;
}

static bytes read_file(const char *p)
{
    bytes b = {0};
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    b.n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.p = malloc(b.n + 1);
    assert_non_null(b.p);
    assert_int_equal(fread(b.p, 1, b.n, f), b.n);
    fclose(f);
    return b;
}

static void write_file(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* The decompressed content of a gzip file, read with zlib independently of the
 * engine. */
static bytes gunzip_file(const char *p)
{
    bytes b = {0};
    gzFile gz = gzopen(p, "rb");
    assert_non_null(gz);
    unsigned char chunk[4096];
    int got;
    while ((got = gzread(gz, chunk, sizeof chunk)) > 0) {
        b.p = realloc(b.p, b.n + (size_t)got + 1);
        assert_non_null(b.p);
        memcpy(b.p + b.n, chunk, (size_t)got);
        b.n += (size_t)got;
    }
    assert_int_equal(got, 0);
    assert_int_equal(gzclose(gz), Z_OK);
    return b;
}

static void gzip_file(const char *p, const void *data, size_t n)
{
    gzFile gz = gzopen(p, "wb");
    assert_non_null(gz);
    if (n > 0)
        assert_int_equal(gzwrite(gz, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(gz), Z_OK);
}

/* Load and expect failure: a status, a message naming the file, *out untouched. */
static int load_fails(const char *p)
{
    lop_graph *sentinel = (lop_graph *)&sentinel, *out = sentinel;
    int st = lop_graph_load(p, &out);
    assert_int_not_equal(st, LOP_OK);
    assert_ptr_equal(out, sentinel);
    assert_non_null(strstr(lop_errmsg(), p));
    return st;
}

static void assert_same_graph(const lop_graph *a, const lop_graph *b)
{
    assert_int_equal(lop_graph_size(a), lop_graph_size(b));
    for (int i = 0; i < lop_graph_size(a); i++) {
        assert_int_equal(lop_node_kind(a, i), lop_node_kind(b, i));
        assert_string_equal(lop_node_name(a, i), lop_node_name(b, i));
        assert_memory_equal(lop_node_attrs(a, i), lop_node_attrs(b, i), sizeof(lop_attrs));
        assert_int_equal(lop_node_ninputs(a, i), lop_node_ninputs(b, i));
        for (int k = 0; k < lop_node_ninputs(a, i); k++)
            assert_int_equal(lop_node_input(a, i, k), lop_node_input(b, i, k));
        assert_int_equal(lop_node_nparams(a, i), lop_node_nparams(b, i));
        for (int k = 0; k < lop_node_nparams(a, i); k++) {
            assert_string_equal(lop_node_param_name(a, i, k), lop_node_param_name(b, i, k));
            const lop_tensor *ta = lop_node_param(a, i, k), *tb = lop_node_param(b, i, k);
            assert_true(lop_tensor_same_shape(ta, tb));
            assert_memory_equal(ta->data, tb->data, ta->numel * sizeof(float));
        }
    }
}

/* Both graphs give the same output on x, to the bit. */
static void assert_same_output(lop_graph *a, lop_graph *b, const lop_tensor *x)
{
    assert_int_equal(lop_graph_forward(a, x, 0), LOP_OK);
    assert_int_equal(lop_graph_forward(b, x, 0), LOP_OK);
    const lop_tensor *ya = lop_graph_output(a), *yb = lop_graph_output(b);
    assert_true(lop_tensor_same_shape(ya, yb));
    assert_memory_equal(ya->data, yb->data, ya->numel * sizeof(float));
}

static void test_round_trip_is_bit_exact(void **state)
{
    (void)state;
    lop_graph *g = build_random(), *h = NULL;
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    assert_int_equal(lop_graph_load(path, &h), LOP_OK);
    assert_non_null(h);
    assert_same_graph(g, h);

    int shape[4] = {3, 3, 8, 8};
    lop_tensor *x = gradcheck_random(4, shape, 5);
    assert_same_output(g, h, x);

    /* Saving the loaded graph reproduces the same content. */
    bytes first = gunzip_file(path);
    assert_int_equal(lop_graph_save(h, path), LOP_OK);
    bytes second = gunzip_file(path);
    assert_int_equal(first.n, second.n);
    assert_memory_equal(first.p, second.p, first.n);
    bytes_free(&first);
    bytes_free(&second);
    lop_tensor_release(x);
    lop_graph_free(g);
    lop_graph_free(h);
}

static void test_empty_graph_round_trips(void **state)
{
    (void)state;
    lop_graph *g = lop_graph_new(1), *h = NULL;
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    assert_int_equal(lop_graph_load(path, &h), LOP_OK);
    assert_int_equal(lop_graph_size(h), 0);
    lop_graph_free(g);
    lop_graph_free(h);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The decompressed bytes against the documented layout: magic line, header ending in
 * "end\n", every parameter as little-endian float32 in node order, CRC32 of all that. */
static void test_layout_matches_the_format(void **state)
{
    (void)state;
    lop_graph *g = build_random();
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    bytes b = gunzip_file(path);
    b.p[b.n] = '\0';
    const char *text = (const char *)b.p;
    assert_int_equal(strncmp(text, "LOPPER-MODEL 2\nnodes 15\ninput x inputs=- in_ndim=3 "
                                   "in_shape=3,8,8 ", 50), 0);
    assert_non_null(strstr(text, "\nconv2d shortcut.conv-2 inputs=0 in_ndim=0 "
                                 "in_shape=0,0,0 out_channels=4 kernel_h=1 kernel_w=1 "
                                 "stride_h=1 stride_w=1 pad_h=0 pad_w=0 pad_bottom=0 "
                                 "pad_right=0 ceil_mode=0 exclude_pad=0 groups=1 bias=0 "
                                 "eps=9.99999975e-06 momentum=0.100000001 p=0.5\n"));
    assert_non_null(strstr(text, "\nconcat cat inputs=5,3 "));
    assert_non_null(strstr(text, "\nparams 12\nparam 1 weight 4 4,3,3,3\n"));
    const char *end = strstr(text, "\nend\n");
    assert_non_null(end);
    size_t at = (size_t)(end - text) + 5;

    for (int i = 0; i < lop_graph_size(g); i++)
        for (int k = 0; k < lop_node_nparams(g, i); k++) {
            const lop_tensor *t = lop_node_param(g, i, k);
            assert_true(at + 4 * t->numel <= b.n);
            for (size_t e = 0; e < t->numel; e++, at += 4) {
                uint32_t bits;
                memcpy(&bits, &t->data[e], 4);
                assert_int_equal(le32(b.p + at), bits);
            }
        }
    assert_int_equal(at + 4, b.n);
    assert_int_equal(le32(b.p + at), (uint32_t)crc32(0, b.p, (uInt)at));
    bytes_free(&b);
    lop_graph_free(g);
}

static void test_every_truncated_file_is_refused(void **state)
{
    (void)state;
    lop_graph *g = build_random();
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    bytes file = read_file(path), payload = gunzip_file(path);
    char cut[160];
    snprintf(cut, sizeof cut, "%s/cut.lop", dir);
    for (size_t n = 0; n < file.n; n++) {
        write_file(cut, file.p, n);
        load_fails(cut);
    }
    /* A valid gzip stream whose content stops short. */
    for (size_t n = 0; n < payload.n; n++) {
        gzip_file(cut, payload.p, n);
        assert_int_equal(load_fails(cut), LOP_EFORMAT);
    }
    gzip_file(cut, payload.p, payload.n - 4);
    load_fails(cut);
    assert_non_null(strstr(lop_errmsg(), "truncated"));
    bytes_free(&file);
    bytes_free(&payload);
    lop_graph_free(g);
}

static void test_flipped_bytes_are_refused(void **state)
{
    (void)state;
    lop_graph *g = build_random();
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    bytes file = read_file(path), payload = gunzip_file(path);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/flip.lop", dir);
    lop_rng rng;
    lop_rng_seed(&rng, 2024);
    int crc_caught = 0;
    for (int trial = 0; trial < 300; trial++) {
        size_t at = (size_t)lop_rng_below(&rng, (int)payload.n);
        unsigned char mask = (unsigned char)(1 + lop_rng_below(&rng, 255));
        payload.p[at] ^= mask;
        gzip_file(bad, payload.p, payload.n);
        assert_int_equal(load_fails(bad), LOP_EFORMAT);
        crc_caught += strstr(lop_errmsg(), "CRC mismatch") != NULL;
        payload.p[at] ^= mask;
    }
    /* Most of the payload is tensor data, which only the checksum protects. */
    assert_true(crc_caught > 100);

    /* In the compressed file.  Bytes 3..9 of a gzip header are flags, time stamp and
     * OS, which zlib does not check, so those are skipped. */
    for (int trial = 0; trial < 300; trial++) {
        size_t at = (size_t)lop_rng_below(&rng, (int)file.n - 7);
        at = at < 3 ? at : at + 7;
        unsigned char mask = (unsigned char)(1 + lop_rng_below(&rng, 255));
        file.p[at] ^= mask;
        write_file(bad, file.p, file.n);
        load_fails(bad);
        file.p[at] ^= mask;
    }
    bytes_free(&file);
    bytes_free(&payload);
    lop_graph_free(g);
}

/* The saved payload (NUL-terminated after its CRC) with the first occurrence of
 * `from` in its header - or every one, with all - replaced by `to` and the CRC
 * recomputed, so that the parser - not the checksum - must notice. */
static void write_edited(const char *p, const bytes *payload, const char *from,
                         const char *to, int all)
{
    const char *text = (const char *)payload->p;
    const char *end = strstr(text, "\nend\n");
    assert_non_null(end);
    size_t lf = strlen(from), lt = strlen(to), hits = 0;
    for (const char *h = strstr(text, from); h && h <= end && (all || !hits);
         h = strstr(h + lf, from))
        hits++;
    assert_true(hits > 0);
    size_t n = payload->n + hits * lt - hits * lf, at = 0;
    unsigned char *e = malloc(n);
    assert_non_null(e);
    const char *src = text;
    for (size_t k = 0; k < hits; k++) {
        const char *h = strstr(src, from);
        memcpy(e + at, src, (size_t)(h - src));
        at += (size_t)(h - src);
        memcpy(e + at, to, lt);
        at += lt;
        src = h + lf;
    }
    memcpy(e + at, src, (size_t)(text + payload->n - 4 - src));
    uint32_t crc = (uint32_t)crc32(0, e, (uInt)(n - 4));
    for (int i = 0; i < 4; i++)
        e[n - 4 + i] = (unsigned char)(crc >> (8 * i));
    gzip_file(p, e, n);
    free(e);
}

static void test_hostile_headers_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *expect;
    } cases[] = {
        {"LOPPER-MODEL 2\n", "LOPPER-MODEL 3\n", "version 3, this build reads versions 1 to 2"},
        {"LOPPER-MODEL 2\n", "LOPPER-MODEL 0\n", "version 0, this build reads versions 1 to 2"},
        {"LOPPER-MODEL 2\n", "LOPPER-MODEL one\n", "version"},
        {"LOPPER-MODEL", "LOPPER-MODAL", "not a Lopper model"},
        {"nodes 15\n", "nodes -1\n", "nodes count -1"},
        {"nodes 15\n", "nodes 2000000000\n", "nodes count"},
        {"nodes 15\n", "nodes 99999999999999999999\n", "expected 'nodes N'"},
        {"nodes 15\n", "nodes 14\n", "expected 'params N'"},
        {"nodes 15\n", "nodes 16\n", "space-separated fields"},
        {"nodes 15\n", "nodes  15\n", "expected 'nodes N'"},
        {"\nconv2d block1/conv:1 ", "\nconv3d block1/conv:1 ", "unknown kind 'conv3d'"},
        {"\nconv2d shortcut.conv-2 ", "\nconv2d block1/conv:1 ", "already exists"},
        {"\nrelu block1/relu ", "\nrelu block1?relu ", "invalid node name"},
        {"\nrelu block1/relu inputs=2 ", "\nrelu block1/relu inputs=9 ", "not an earlier"},
        {"\nrelu block1/relu inputs=2 ", "\nrelu block1/relu inputs=3 ", "not an earlier"},
        {"\nrelu block1/relu inputs=2 ", "\nrelu block1/relu inputs=-1 ", "not an earlier"},
        {"\nrelu block1/relu inputs=2 ", "\nrelu block1/relu inputs=- ", "takes"},
        {"\nrelu block1/relu inputs=2 ", "\nrelu block1/relu inputs=2, ", "bad inputs"},
        {"\nadd sum inputs=3,4 ", "\nadd sum inputs=3,4,4000000000 ", "bad inputs"},
        {"in_shape=3,8,8 ", "in_shape=3,8,8,8 ", "in_shape"},
        {"in_shape=3,8,8 ", "in_shape=3,8,-8 ", "dimension 3"},
        {"in_shape=3,8,8 ", "in_shape=3,8 ", "in_shape"},
        {" kernel_h=3 ", " kernel_x=3 ", "expected kernel_h="},
        {" kernel_h=3 ", " kernel_h=3  ", "fields"},
        {" kernel_h=3 ", " kernel_h= ", "expected kernel_h="},
        {" kernel_h=3 ", " kernel_h=+3 ", "expected kernel_h="},
        {" ceil_mode=0 exclude_pad=0 ", " exclude_pad=0 ceil_mode=0 ", "expected ceil_mode="},
        {" pad_right=0 ", " ", "expected 21 space-separated fields"},
        {" eps=0.00100000005 ", " eps=0.001x ", "expected eps="},
        {" eps=0.00100000005 ", " eps=-1 ", "eps"},
        {" p=0.5\n", " p=0.5 q=1\n", "fields"},
        {" p=0.5\n", " p=0.5 \n", "fields"},
        {" p=0.5\n", "\n", "fields"},
        {" p=0.5\n", " p=0.5\t\n", "byte 0x09"},
        /* 100000 channels would need megabytes of weights that a file this small
         * cannot hold. */
        {" out_channels=4 ", " out_channels=100000 ", "more than the file can hold"},
        {"\nparams 12\n", "\nparams 11\n", "lists 11 parameter tensors but its nodes have 12"},
        {"\nparams 12\n", "\nparams -3\n", "params count"},
        {"\nparam 1 weight 4 4,3,3,3\n", "\nparam 1 weight 4 4,3,3,2\n",
         "is 4x3x3x2 in the file but 4x3x3x3"},
        {"\nparam 1 weight 4 4,3,3,3\n", "\nparam 1 weight 4 2147483647,3,3,3\n",
         "in the file but 4x3x3x3"},
        {"\nparam 1 weight 4 4,3,3,3\n", "\nparam 1 weight 4 4,3,3,99999999999\n",
         "bad shape"},
        {"\nparam 1 weight 4 4,3,3,3\n", "\nparam 1 weight 3 4,3,3,3\n", "bad shape"},
        {"\nparam 1 weight 4 4,3,3,3\n", "\nparam 1 weight 9 4,3,3,3\n", "bad shape"},
        {"\nparam 1 weight 4 4,3,3,3\n", "\nparam 17 weight 4 4,3,3,3\n", "does not exist"},
        {"\nparam 1 weight 4 4,3,3,3\n", "\nparam 1 gamma 4 4,3,3,3\n", "no parameter 'gamma'"},
        {"\nparam 1 bias 1 4\n", "\nparam 1 weight 1 4\n", "listed twice"},
        {"\nparam 1 bias 1 4\n", "\nparam 1 bias 1\n", "expected 'param"},
        {"\nend\n", "\nfin\n", "expected 'end'"},
    };
    lop_graph *g = build_random();
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    bytes payload = gunzip_file(path);
    payload.p[payload.n] = '\0';   /* for strstr: the header comes first */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/hostile.lop", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_edited(bad, &payload, cases[i].from, cases[i].to, 0);
        int st = load_fails(bad);
        if (st != LOP_EFORMAT || !strstr(lop_errmsg(), cases[i].expect))
            fail_msg("case %zu (%s -> %s): %s, '%s'", i, cases[i].from, cases[i].to,
                     lop_status_name(st), lop_errmsg());
    }

    /* A node line past the length limit, and an absurd name within it. */
    char *longname = malloc(70010);
    assert_non_null(longname);
    memset(longname, 'a', 70000);
    strcpy(longname + 70000, " inputs=");
    write_edited(bad, &payload, "pool inputs=", longname, 0);
    assert_int_equal(load_fails(bad), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "longer than"));
    strcpy(longname + 128, " inputs=");   /* names have at most 127 characters */
    write_edited(bad, &payload, "pool inputs=", longname, 0);
    assert_int_equal(load_fails(bad), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "invalid node name"));
    free(longname);

    /* Bytes after the checksum, inside the stream and as a second gzip member. */
    unsigned char *more = malloc(payload.n + 1);
    assert_non_null(more);
    memcpy(more, payload.p, payload.n);
    more[payload.n] = 0;
    gzip_file(bad, more, payload.n + 1);
    assert_int_equal(load_fails(bad), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "after the checksum"));
    free(more);
    bytes file = read_file(path);
    unsigned char *twice = malloc(2 * file.n);
    assert_non_null(twice);
    memcpy(twice, file.p, file.n);
    memcpy(twice + file.n, file.p, file.n);
    write_file(bad, twice, 2 * file.n);
    assert_int_equal(load_fails(bad), LOP_EFORMAT);
    free(twice);

    /* The right content, but not gzip-compressed. */
    write_file(bad, payload.p, payload.n);
    assert_int_equal(load_fails(bad), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "not gzip"));

    /* A corrupted CRC field alone. */
    payload.p[payload.n - 1] ^= 0x10;
    gzip_file(bad, payload.p, payload.n);
    assert_int_equal(load_fails(bad), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "CRC mismatch"));

    bytes_free(&file);
    bytes_free(&payload);
    lop_graph_free(g);
}

/* The kinds and attributes of format version 2: x 3x7x6 -> pad (1 above, 2 below,
 * 3 on the right) -> conv 3x3 -> relu6 -> maxpool 3x3 stride 2 in ceil mode ->
 * avgpool 2x2 stride 2 pad 1 in ceil mode without padding in its divisors.  They come
 * back with every attribute, and the header spells them out. */
static lop_graph *build_version_2(void)
{
    lop_graph *g = lop_graph_new(3);
    assert_non_null(g);
    lop_attrs a = lop_attrs_input(3, 7, 6);
    int id = add(g, LOP_INPUT, "x", NULL, 0, &a);
    a = lop_attrs_default();
    a.pad_h = 1;
    a.pad_bottom = 2;
    a.pad_right = 3;
    id = add(g, LOP_PAD, "pad", &id, 1, &a);
    a = lop_attrs_default();
    a.out_channels = 4;
    a.kernel_h = a.kernel_w = 3;
    id = add(g, LOP_CONV2D, "conv", &id, 1, &a);
    id = add(g, LOP_RELU6, "relu6", &id, 1, NULL);
    a = lop_attrs_default();
    a.kernel_h = a.kernel_w = 3;
    a.stride_h = a.stride_w = 2;
    a.ceil_mode = 1;
    id = add(g, LOP_MAXPOOL, "max", &id, 1, &a);
    a.kernel_h = a.kernel_w = 2;
    a.pad_h = a.pad_w = 1;
    a.exclude_pad = 1;
    add(g, LOP_AVGPOOL, "avg", &id, 1, &a);
    return g;
}

static void test_version_2_kinds_round_trip(void **state)
{
    (void)state;
    lop_graph *g = build_version_2(), *h = NULL;
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    assert_int_equal(lop_graph_load(path, &h), LOP_OK);
    assert_same_graph(g, h);
    int shape[4] = {2, 3, 7, 6};
    lop_tensor *x = gradcheck_random(4, shape, 6);
    for (size_t i = 0; i < x->numel; i++)
        x->data[i] *= 10.0f;   /* past relu6's cap */
    assert_same_output(g, h, x);

    bytes b = gunzip_file(path);
    b.p[b.n] = '\0';
    const char *text = (const char *)b.p;
    assert_non_null(strstr(text, "\npad pad inputs=0 in_ndim=0 in_shape=0,0,0 out_channels=0 "
                                 "kernel_h=0 kernel_w=0 stride_h=1 stride_w=1 pad_h=1 pad_w=0 "
                                 "pad_bottom=2 pad_right=3 ceil_mode=0 exclude_pad=0 "));
    assert_non_null(strstr(text, "\nrelu6 relu6 inputs=2 "));
    assert_non_null(strstr(text, "\nmaxpool max inputs=3 in_ndim=0 in_shape=0,0,0 "
                                 "out_channels=0 kernel_h=3 kernel_w=3 stride_h=2 stride_w=2 "
                                 "pad_h=0 pad_w=0 pad_bottom=0 pad_right=0 ceil_mode=1 "
                                 "exclude_pad=0 "));
    assert_non_null(strstr(text, " kernel_h=2 kernel_w=2 stride_h=2 stride_w=2 pad_h=1 "
                                 "pad_w=1 pad_bottom=0 pad_right=0 ceil_mode=1 "
                                 "exclude_pad=1 "));

    /* attributes a kind refuses are refused in a file too */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad.lop", dir);
    write_edited(bad, &b, "ceil_mode=1 exclude_pad=0", "ceil_mode=1 exclude_pad=1", 0);
    assert_int_equal(load_fails(bad), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "maxpool 'max': exclude_pad is an avgpool option"));
    write_edited(bad, &b, "ceil_mode=1 exclude_pad=1", "ceil_mode=2 exclude_pad=1", 0);
    assert_int_equal(load_fails(bad), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "avgpool 'avg': ceil_mode must be 0 or 1, got 2"));
    write_edited(bad, &b, "pad_h=1 pad_w=0 pad_bottom=2", "pad_h=1 pad_w=0 pad_bottom=-2", 0);
    assert_int_equal(load_fails(bad), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "pad 'pad': padding top 1, bottom -2"));
    bytes_free(&b);
    lop_tensor_release(x);
    lop_graph_free(g);
    lop_graph_free(h);
}

/* Version 1 files - what builds before pad_bottom, pad_right, ceil_mode and
 * exclude_pad wrote: node lines without those four - load with their defaults (the
 * shipped checkpoints are such files; tests/lua/checkpoints_spec.lua loads them).  A
 * node line of the other version's length is refused either way. */
static void test_version_1_files_still_load(void **state)
{
    (void)state;
    static const char *const added = " pad_bottom=0 pad_right=0 ceil_mode=0 exclude_pad=0";
    lop_graph *g = build_random(), *h = NULL;
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    bytes payload = gunzip_file(path);
    payload.p[payload.n] = '\0';
    char old[160];
    snprintf(old, sizeof old, "%s/v1.lop", dir);
    write_edited(old, &payload, added, "", 1);
    assert_int_equal(load_fails(old), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "expected 21 space-separated fields"));

    bytes v1 = gunzip_file(old);
    v1.p[v1.n] = '\0';
    assert_null(strstr((const char *)v1.p, "pad_bottom"));
    /* the line the version 1 writer wrote for this node, to the byte */
    assert_non_null(strstr((const char *)v1.p, "\nconv2d shortcut.conv-2 inputs=0 in_ndim=0 "
                           "in_shape=0,0,0 out_channels=4 kernel_h=1 kernel_w=1 stride_h=1 "
                           "stride_w=1 pad_h=0 pad_w=0 groups=1 bias=0 eps=9.99999975e-06 "
                           "momentum=0.100000001 p=0.5\n"));
    write_edited(old, &v1, "LOPPER-MODEL 2\n", "LOPPER-MODEL 1\n", 0);
    assert_int_equal(lop_graph_load(old, &h), LOP_OK);
    assert_same_graph(g, h);

    write_edited(old, &payload, "LOPPER-MODEL 2\n", "LOPPER-MODEL 1\n", 0);
    assert_int_equal(load_fails(old), LOP_EFORMAT);
    assert_non_null(strstr(lop_errmsg(), "expected 17 space-separated fields (kind, name, "
                                         "inputs and 14 attributes, in version 1)"));
    bytes_free(&v1);
    bytes_free(&payload);
    lop_graph_free(g);
    lop_graph_free(h);
}

static void test_missing_or_unreadable_file_is_io_error(void **state)
{
    (void)state;
    char p[160];
    snprintf(p, sizeof p, "%s/no-such-file.lop", dir);
    assert_int_equal(load_fails(p), LOP_EIO);
    assert_int_equal(load_fails(dir), LOP_EIO);
}

/* Names in dir that look like leftover temporary files. */
static int leftovers(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void assert_file_is(const char *p, const bytes *want)
{
    bytes now = read_file(p);
    assert_int_equal(now.n, want->n);
    assert_memory_equal(now.p, want->p, now.n);
    bytes_free(&now);
}

/* input -> relu, then a concat of the relu `width` times. */
static lop_graph *build_wide(int width)
{
    lop_graph *g = lop_graph_new(1);
    lop_attrs a = lop_attrs_default();
    a.in_ndim = 1;
    a.in_shape[0] = 1;
    int x = add(g, LOP_INPUT, "x", NULL, 0, &a);
    a = lop_attrs_default();
    int r = add(g, LOP_RELU, "r", &x, 1, &a);
    int *in = malloc((size_t)width * sizeof *in);
    assert_non_null(in);
    for (int k = 0; k < width; k++)
        in[k] = r;
    add(g, LOP_CONCAT, "wide", in, width, &a);
    free(in);
    return g;
}

/* input -> relu -> relu ... with n nodes in all. */
static lop_graph *build_chain(int n)
{
    lop_graph *g = lop_graph_new(1);
    lop_attrs a = lop_attrs_default();
    a.in_ndim = 1;
    a.in_shape[0] = 2;
    int id = add(g, LOP_INPUT, "x", NULL, 0, &a);
    a = lop_attrs_default();
    char name[32];
    for (int i = 1; i < n; i++) {
        snprintf(name, sizeof name, "r%d", i);
        id = add(g, LOP_RELU, name, &id, 1, &a);
    }
    return g;
}

/* A file holds at most 10000 nodes: that many round-trip, and a bigger graph is
 * refused when saving rather than written and then unreadable. */
static void test_node_limit(void **state)
{
    (void)state;
    lop_graph *g = build_chain(10000), *h = NULL;
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    assert_int_equal(lop_graph_load(path, &h), LOP_OK);
    assert_same_graph(g, h);
    bytes before = read_file(path);
    lop_attrs a = lop_attrs_default();
    int last = lop_graph_size(g) - 1;
    add(g, LOP_RELU, "one_too_many", &last, 1, &a);
    assert_int_equal(lop_graph_save(g, path), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "at most 10000"));
    assert_file_is(path, &before);
    bytes_free(&before);
    lop_graph_free(g);
    lop_graph_free(h);
}

static void test_save_is_atomic(void **state)
{
    (void)state;
    lop_graph *g = build_random(), *h = NULL;
    mode_t old_mask = umask(022);
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    assert_int_equal(lop_graph_save(g, path), LOP_OK);   /* over an existing file */
    umask(old_mask);
    assert_int_equal(leftovers(), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);   /* as fopen would: 0666 less the umask */
    bytes before = read_file(path);
    lop_graph *other = build_full(8);

    /* The directory does not exist. */
    char p[200];
    snprintf(p, sizeof p, "%s/missing/model.lop", dir);
    assert_int_equal(lop_graph_save(other, p), LOP_EIO);
    assert_non_null(strstr(lop_errmsg(), p));

    /* Writing fails part way (a file size limit works even for root): the old file
     * stays as it was and the temporary file is gone. */
    struct rlimit saved, tight;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    tight = saved;
    tight.rlim_cur = 200;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &tight), 0);
    int st = lop_graph_save(other, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(st, LOP_EIO);
    assert_non_null(strstr(lop_errmsg(), path));
    assert_file_is(path, &before);
    assert_int_equal(leftovers(), 0);

    /* The rename fails: the target is a non-empty directory. */
    char sub[200], inner[220];
    snprintf(sub, sizeof sub, "%s/taken", dir);
    snprintf(inner, sizeof inner, "%s/keep", sub);
    assert_int_equal(mkdir(sub, 0755), 0);
    write_file(inner, "x", 1);
    assert_int_equal(lop_graph_save(other, sub), LOP_EIO);
    assert_int_equal(leftovers(), 0);
    assert_int_equal(remove(inner), 0);
    assert_int_equal(rmdir(sub), 0);

    /* A directory we may not write to (root may write anywhere, so only as a user). */
    if (geteuid() != 0) {
        assert_int_equal(chmod(dir, 0555), 0);
        st = lop_graph_save(other, path);
        assert_int_equal(chmod(dir, 0755), 0);
        assert_int_equal(st, LOP_EIO);
        assert_file_is(path, &before);
    }

    /* A node whose input list cannot fit a header line is refused, not truncated. */
    lop_graph *wide = build_wide(40000);
    assert_int_equal(lop_graph_save(wide, path), LOP_EINVAL);
    assert_non_null(strstr(lop_errmsg(), "longer than"));
    assert_file_is(path, &before);
    assert_int_equal(leftovers(), 0);
    lop_graph_free(wide);
    /* A wide one that fits survives the round trip. */
    wide = build_wide(30000);
    assert_int_equal(lop_graph_save(wide, path), LOP_OK);
    assert_int_equal(lop_graph_load(path, &h), LOP_OK);
    assert_same_graph(wide, h);
    lop_graph_free(h);
    lop_graph_free(wide);

    bytes_free(&before);
    lop_graph_free(g);
    lop_graph_free(other);
}

/* Switch LC_NUMERIC to a locale whose decimal separator is a comma: an installed one,
 * or else one built with localedef into the scratch directory.  The name, or NULL. */
static const char *use_comma_locale(void)
{
    static const char *const names[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", "fr_FR"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (setlocale(LC_NUMERIC, names[i]))
            return names[i];
    static char locpath[128];
    char cmd[400];
    snprintf(locpath, sizeof locpath, "%s/locale", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 "
             ">/dev/null 2>&1", locpath, locpath);
    if (system(cmd) != 0)
        return NULL;
    setenv("LOCPATH", locpath, 1);
    return setlocale(LC_NUMERIC, "de_DE.UTF-8") ? "de_DE.UTF-8" : NULL;
}

/* Numbers in the header do not follow the host program's locale. */
static void test_locale_does_not_matter(void **state)
{
    (void)state;
    const char *comma = use_comma_locale();
    if (!comma)
        skip();   /* neither an installed locale nor localedef's sources */
    assert_int_equal(localeconv()->decimal_point[0], ',');
    lop_graph *g = build_random(), *h = NULL;
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    setlocale(LC_NUMERIC, "C");
    bytes b = gunzip_file(path);
    b.p[b.n] = '\0';
    assert_non_null(strstr((const char *)b.p, " eps=0.00100000005 "));
    bytes_free(&b);
    setlocale(LC_NUMERIC, comma);
    assert_int_equal(lop_graph_load(path, &h), LOP_OK);
    setlocale(LC_NUMERIC, "C");
    assert_same_graph(g, h);
    lop_graph_free(g);
    lop_graph_free(h);
}

/* Load p with its n-th allocation failing for n = 1, 2, ... until the load makes it
 * through: every failure is LOP_ENOMEM and hands out nothing; the load that succeeds
 * gives g back.  Returns the allocations a load took. */
static long load_under_failures(const char *p, const lop_graph *g)
{
    int st = LOP_ENOMEM;
    long n;
    for (n = 1; n < 100000 && st != LOP_OK; n++) {
        lop_graph *sentinel = (lop_graph *)&sentinel, *out = sentinel;
        lop_debug_fail_alloc(n);
        st = lop_graph_load(p, &out);
        lop_debug_fail_alloc(0);
        if (st == LOP_OK) {
            assert_same_graph(g, out);
            lop_graph_free(out);
        } else {
            assert_int_equal(st, LOP_ENOMEM);
            assert_ptr_equal(out, sentinel);
        }
    }
    assert_int_equal(st, LOP_OK);
    return n;
}

/* Save g over p (holding before) with the n-th allocation failing, for every n until
 * the save makes it through: every failure is LOP_ENOMEM, leaves p as it was and no
 * temporary file behind. */
static void save_under_failures(int (*save)(const lop_graph *, const char *),
                                const lop_graph *g, const char *p, const bytes *before)
{
    int st = LOP_ENOMEM;
    for (long n = 1; n < 100000 && st != LOP_OK; n++) {
        lop_debug_fail_alloc(n);
        st = save(g, p);
        lop_debug_fail_alloc(0);
        if (st != LOP_OK) {
            assert_int_equal(st, LOP_ENOMEM);
            assert_file_is(p, before);
        }
        assert_int_equal(leftovers(), 0);
    }
    assert_int_equal(st, LOP_OK);
}

/* Fail the n-th allocation of a load (then of a save) for n = 1, 2, ... until the call
 * makes it through: every failure is LOP_ENOMEM and leaves nothing behind. */
static void test_failed_allocations_are_clean(void **state)
{
    (void)state;
    lop_graph *g = build_random();
    assert_int_equal(lop_graph_save(g, path), LOP_OK);
    bytes before = read_file(path);
    assert_true(load_under_failures(path, g) > 20);   /* nodes and tensors in the way */
    lop_graph *other = build_full(8);
    save_under_failures(lop_graph_save, other, path, &before);
    bytes_free(&before);
    lop_graph_free(g);
    lop_graph_free(other);
}

static int save_onnx_folded(const lop_graph *g, const char *p)
{
    lop_onnx_opts fold = {.fold_batchnorm = 1};
    return lop_graph_save_onnx(g, p, &fold);
}

/* The same for an ONNX file: every kind of build_full goes through the writer and the
 * reader, and the load that succeeds gives the graph back. */
static void test_onnx_failed_allocations_are_clean(void **state)
{
    (void)state;
    char onnx[160];
    snprintf(onnx, sizeof onnx, "%s/model.onnx", dir);
    lop_graph *g = build_random();
    assert_int_equal(lop_graph_save_onnx(g, onnx, NULL), LOP_OK);
    bytes before = read_file(onnx);
    assert_true(load_under_failures(onnx, g) > 30);   /* protobuf's messages too */
    save_under_failures(save_onnx_folded, g, onnx, &before);
    lop_graph *folded = NULL;
    assert_int_equal(lop_graph_load_onnx(onnx, &folded), LOP_OK);
    assert_int_equal(lop_graph_size(folded), lop_graph_size(g) - 1);   /* bn went into c1 */
    assert_int_equal(lop_graph_find(folded, "block1/bn"), -1);
    lop_graph_free(folded);
    bytes_free(&before);
    unlink(onnx);
    lop_graph_free(g);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip_is_bit_exact),
    cmocka_unit_test(test_empty_graph_round_trips),
    cmocka_unit_test(test_layout_matches_the_format),
    cmocka_unit_test(test_every_truncated_file_is_refused),
    cmocka_unit_test(test_flipped_bytes_are_refused),
    cmocka_unit_test(test_hostile_headers_are_refused),
    cmocka_unit_test(test_version_2_kinds_round_trip),
    cmocka_unit_test(test_version_1_files_still_load),
    cmocka_unit_test(test_missing_or_unreadable_file_is_io_error),
    cmocka_unit_test(test_save_is_atomic),
    cmocka_unit_test(test_node_limit),
    cmocka_unit_test(test_locale_does_not_matter),
    cmocka_unit_test(test_failed_allocations_are_clean),
    cmocka_unit_test(test_onnx_failed_allocations_are_clean),
};

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lop_modelfile_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/model.lop", dir);
    return 0;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);   /* mkdtemp's name needs no quoting */
    return system(cmd);
}

int main(void)
{
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
