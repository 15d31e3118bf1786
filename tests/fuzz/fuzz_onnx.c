/*
 * fuzz_onnx.c - libFuzzer target for the ONNX reader (engine/io/onnx_read.c and
 * onnx_ops.c): the bytes are an ONNX file.  Loading must fail with a message or
 * succeed; a model that loads is run once when small (fuzz_common.h) and written back
 * to ONNX, and what the writer wrote must read back to a graph of the same size and
 * parameter count (batchnorm folded or not, as the input's last byte says).
 * Built by `make fuzz`, run briefly by `make test` (tests/fuzz/run_fuzz.sh); see
 * docs/tests.md.
 */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[320], out[320];
    fuzz_path(in, sizeof in, "in");
    fuzz_path(out, sizeof out, "out.onnx");
    fuzz_write_file(in, data, size);
    lop_graph *g = NULL;
    int st = lop_graph_load_onnx(in, &g);
    fuzz_check_failure(st, "lop_graph_load_onnx");
    if (st != LOP_OK)
        return 0;
    if (fuzz_small(g))
        fuzz_forward(g);
    lop_onnx_opts o = {.fold_batchnorm = size > 0 && (data[size - 1] & 1)};
    st = lop_graph_save_onnx(g, out, &o);
    fuzz_check_failure(st, "lop_graph_save_onnx");
    if (st == LOP_OK) {
        lop_graph *back = NULL;
        if (lop_graph_load_onnx(out, &back) != LOP_OK)
            fuzz_bug("an ONNX file Lopper wrote does not read back");
        if (!o.fold_batchnorm && (lop_graph_size(back) != lop_graph_size(g) ||
                                  lop_graph_params(back) != lop_graph_params(g)))
            fuzz_bug("an ONNX file Lopper wrote reads back as another graph");
        lop_graph_free(back);
    }
    lop_graph_free(g);
    return 0;
}
