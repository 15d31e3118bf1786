/*
 * error.c - the engine's error channel: a status code is returned, and a message
 * describing the failure is kept per thread for the caller (the Lua binding raises it).
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char last_error[512];

int lop_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

const char *lop_errmsg(void)
{
    return last_error;
}

const char *lop_status_name(int status)
{
    static const char *const names[] = {
        "LOP_OK", "LOP_ENOMEM", "LOP_EINVAL", "LOP_ESHAPE", "LOP_EIO",
        "LOP_EFORMAT", "LOP_ESTATE", "LOP_ECANCEL", "LOP_ENUMERIC",
    };
    if (status < 0 || status >= (int)(sizeof names / sizeof names[0]))
        return "LOP_UNKNOWN";
    return names[status];
}
