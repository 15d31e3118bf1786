/*
 * files.c - what the model file formats (.lop in modelfile.c, ONNX in onnx_read.c and
 * onnx_write.c) share: replacing a file atomically, so a crash or a full disk never
 * leaves a half-written model behind, and float32 in little-endian byte order, which
 * both formats store whatever the host's order.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Create tmp (path + ".tmp.XXXXXX") exclusively, like mkstemp but with mode 0666 so
 * the umask applies as for any file the program writes: mkstemp's 0600 would make
 * every saved model unreadable to everyone but its owner. */
static int create_temp(const char *path, char *tmp)
{
    static const char letters[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t plen = strlen(path);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lop_rng rng;
    lop_rng_seed(&rng, (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
                           (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)tmp);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.", 5);
    tmp[plen + 11] = '\0';
    for (int attempt = 0; attempt < 100; attempt++) {
        for (int i = 0; i < 6; i++)
            tmp[plen + 5 + i] = letters[lop_rng_below(&rng, (int)sizeof letters - 1)];
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

int lop_file_replace(const char *path, lop_fill_fn fill, void *ctx)
{
    char *tmp = lop_malloc(strlen(path) + sizeof ".tmp.XXXXXX");
    if (!tmp)
        return LOP_ENOMEM;
    int st, fd = create_temp(path, tmp);
    if (fd < 0) {
        st = lop_fail(LOP_EIO, "cannot save %s: cannot create a temporary file beside it: "
                      "%s", path, strerror(errno));
    } else {
        st = fill(fd, ctx);
        if (st == LOP_OK && fsync(fd) != 0)
            st = lop_fail(LOP_EIO, "cannot save %s: fsync failed: %s", path, strerror(errno));
        if (close(fd) != 0 && st == LOP_OK)
            st = lop_fail(LOP_EIO, "cannot save %s: close failed: %s", path, strerror(errno));
        if (st == LOP_OK && rename(tmp, path) != 0)
            st = lop_fail(LOP_EIO, "cannot save %s: cannot rename %s over it: %s", path, tmp,
                          strerror(errno));
        if (st != LOP_OK)
            unlink(tmp);
    }
    lop_free(tmp);
    return st;
}

void lop_floats_to_le(unsigned char *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], sizeof u);
        dst[4 * i] = (unsigned char)u;
        dst[4 * i + 1] = (unsigned char)(u >> 8);
        dst[4 * i + 2] = (unsigned char)(u >> 16);
        dst[4 * i + 3] = (unsigned char)(u >> 24);
    }
}

void lop_floats_from_le(float *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                     (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
        memcpy(&dst[i], &u, sizeof u);
    }
}
