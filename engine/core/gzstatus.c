/*
 * gzstatus.c - zlib reports stream errors through gzerror with messages prefixed by
 * the path or "<fd:N>"; this turns them into statuses with messages naming the file.
 */
#include <errno.h>
#include <string.h>

#include "gzstatus.h"
#include "internal.h"

/* zlib's message without its "<path>: " or "<fd:N>: " prefix. */
static const char *reason(const char *msg, const char *path)
{
    size_t len = strlen(path);
    if (strncmp(msg, path, len) == 0 && strncmp(msg + len, ": ", 2) == 0)
        return msg + len + 2;
    const char *cut = strstr(msg, ">: ");
    if (strncmp(msg, "<fd:", 4) == 0 && cut)
        return cut + 3;
    return msg;
}

int lop_gz_status(gzFile gz, const char *path)
{
    int err;
    const char *msg = gzerror(gz, &err);
    switch (err) {
    case Z_OK:
        return LOP_OK;
    case Z_BUF_ERROR:
        return lop_fail(LOP_EFORMAT, "%s: file is truncated (the compressed stream ends early)",
                        path);
    case Z_ERRNO:
        return lop_fail(LOP_EIO, "error reading %s: %s", path, strerror(errno));
    case Z_MEM_ERROR:
        return lop_fail(LOP_ENOMEM, "out of memory decompressing %s", path);
    default:
        return lop_fail(LOP_EFORMAT, "%s: corrupt gzip data (%s)", path, reason(msg, path));
    }
}
