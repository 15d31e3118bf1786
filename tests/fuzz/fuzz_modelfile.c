/*
 * fuzz_modelfile.c - libFuzzer target for the .lop reader (engine/io/modelfile.c,
 * through lop_graph_load).  A .lop file is a gzip stream ending in a CRC32, which
 * random mutations of the compressed bytes almost never get past; so an input that
 * starts like gzip (1f 8b) is the file as is - the gzip layer, the checksum, the
 * trailer - and any other input is the decompressed contents without the checksum:
 * the harness appends the right CRC32 and compresses it, so the mutations land on the
 * header text and the tensor data.  A model that loads is run once when small
 * (fuzz_common.h), saved as .lop, which must read back to a graph of the same size and
 * parameter count, and saved as ONNX, which may refuse it (with a message) or read
 * back, never crash.  The mutator below helps the header text along: half the time it
 * replaces one number of the header by an interesting one (0, -1, limits, sizes that
 * make layers huge) or one node's kind by another; otherwise libFuzzer's own byte
 * mutations.  Built by `make fuzz`, run briefly by `make test`.
 */
#include <zlib.h>

#include "fuzz_common.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

/* The contents plus their CRC32 (little-endian), as one gzip stream at path. */
static void write_gzip(const char *path, const uint8_t *data, size_t size)
{
    uLong crc = crc32(crc32(0L, Z_NULL, 0), data, (uInt)size);
    unsigned char tail[4] = {(unsigned char)crc, (unsigned char)(crc >> 8),
                             (unsigned char)(crc >> 16), (unsigned char)(crc >> 24)};
    gzFile gz = gzopen(path, "wb1");
    if (!gz || (size > 0 && gzwrite(gz, data, (unsigned)size) != (int)size) ||
        gzwrite(gz, tail, 4) != 4 || gzclose(gz) != Z_OK) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[320], lop[320], onnx[320];
    fuzz_path(in, sizeof in, "in");
    fuzz_path(lop, sizeof lop, "out.lop");
    fuzz_path(onnx, sizeof onnx, "out.onnx");
    if (size > (1u << 24))
        return 0;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
        fuzz_write_file(in, data, size);
    else
        write_gzip(in, data, size);
    lop_graph *g = NULL;
    int st = lop_graph_load(in, &g);
    fuzz_check_failure(st, "lop_graph_load");
    if (st != LOP_OK)
        return 0;
    if (fuzz_small(g))
        fuzz_forward(g);
    st = lop_graph_save(g, lop);
    fuzz_check_failure(st, "lop_graph_save");
    if (st == LOP_OK) {
        lop_graph *back = NULL;
        if (lop_graph_load(lop, &back) != LOP_OK)
            fuzz_bug("a .lop file Lopper wrote does not read back");
        if (lop_graph_size(back) != lop_graph_size(g) ||
            lop_graph_params(back) != lop_graph_params(g))
            fuzz_bug("a .lop file Lopper wrote reads back as another graph");
        lop_graph_free(back);
    }
    lop_onnx_opts o = {.fold_batchnorm = 0};
    st = lop_graph_save_onnx(g, onnx, &o);
    fuzz_check_failure(st, "lop_graph_save_onnx");
    if (st == LOP_OK) {
        lop_graph *back = NULL;
        st = lop_graph_load(onnx, &back);
        fuzz_check_failure(st, "lop_graph_load of the ONNX written");
        lop_graph_free(back);
    }
    lop_graph_free(g);
    return 0;
}

/* ---- the header-aware mutator --------------------------------------------------- */

static uint64_t rng_state;

static size_t below(size_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return n ? (size_t)(rng_state % n) : 0;
}

/* Replace data[at, at + len) by the text rep; the new size, or 0 if over max_size. */
static size_t splice(uint8_t *data, size_t size, size_t max_size, size_t at, size_t len,
                     const char *rep)
{
    size_t n = strlen(rep);
    if (size - len + n > max_size)
        return 0;
    memmove(data + at + n, data + at + len, size - at - len);
    memcpy(data + at, rep, n);
    return size - len + n;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    static const char *const numbers[] = {
        "0", "1", "2", "3", "-1", "-2", "7", "64", "255", "1000", "20000", "46341",
        "65536", "1000000", "2147483647", "-2147483648", "2147483648", "99999999999",
        "1e30", "nan", "-inf", "0.5", "1e-45"};
    static const char *const kinds[] = {
        "input", "conv2d", "batchnorm", "relu", "maxpool", "avgpool", "global_avgpool",
        "flatten", "linear", "add", "concat", "dropout", "pick", "relu6", "pad"};
    rng_state = seed * 0x9e3779b97f4a7c15u + 1;
    size_t header = 0;   /* where the "end" line starts: the header is before it */
    for (size_t i = 0; i + 5 <= size && !header; i++)
        if (memcmp(data + i, "\nend\n", 5) == 0)
            header = i;
    if (header == 0 || (size >= 2 && data[0] == 0x1f) || below(2))
        return LLVMFuzzerMutate(data, size, max_size);
    size_t got = 0;
    if (below(4)) {   /* a number: the digits after a random '=' ',' or ' ' */
        for (int tries = 0; tries < 16 && !got; tries++) {
            size_t at = below(header);
            while (at < header && data[at] != '=' && data[at] != ',' && data[at] != ' ')
                at++;
            size_t len = 0;
            while (at + 1 + len < header &&
                   ((data[at + 1 + len] >= '0' && data[at + 1 + len] <= '9') ||
                    strchr("-.e+", data[at + 1 + len])))
                len++;
            if (len)
                got = splice(data, size, max_size, at + 1, len,
                             numbers[below(sizeof numbers / sizeof numbers[0])]);
        }
    } else {          /* a node's kind: the first word of a line */
        for (int tries = 0; tries < 16 && !got; tries++) {
            size_t at = below(header);
            while (at < header && data[at] != '\n')
                at++;
            size_t len = 0;
            while (at + 1 + len < header && data[at + 1 + len] != ' ' &&
                   data[at + 1 + len] != '\n')
                len++;
            if (len)
                got = splice(data, size, max_size, at + 1, len,
                             kinds[below(sizeof kinds / sizeof kinds[0])]);
        }
    }
    return got ? got : LLVMFuzzerMutate(data, size, max_size);
}
