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
 * back, never crash.  Built by `make fuzz`, run briefly by `make test`.
 */
#include <zlib.h>

#include "fuzz_common.h"

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
