/*
 * load.c - lop_graph_load: which reader a model file needs, told by its content rather
 * than its name.  A .lop file is one gzip stream (first bytes 0x1f 0x8b), or - when
 * someone gunzipped it - starts with its magic line, which the .lop reader then
 * reports as not compressed; everything else goes to the ONNX reader, which says when
 * the bytes are neither.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int lop_graph_load(const char *path, lop_graph **out)
{
    static const char magic[] = "LOPPER-MODEL ";
    unsigned char head[sizeof magic - 1] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return lop_fail(LOP_EIO, "cannot open %s: %s", path, strerror(errno));
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    int gzip = n >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    int plain_lop = n == sizeof head && memcmp(head, magic, sizeof head) == 0;
    if (gzip || plain_lop || n == 0)
        return lop_graph_load_lop(path, out);
    return lop_graph_load_onnx(path, out);
}
