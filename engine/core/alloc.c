/*
 * alloc.c - every allocation the engine makes goes through here, so that a failed
 * malloc becomes LOP_ENOMEM with a message, and so tests can make the n-th
 * allocation fail to prove that every error path cleans up.
 */
#include <stdlib.h>

#include "internal.h"

static _Thread_local long fail_countdown;   /* 0 = never fail */
static _Thread_local long alloc_count;

long lop_debug_fail_alloc(long n)
{
    long made = alloc_count;
    fail_countdown = n;
    alloc_count = 0;
    return made;
}

static int injected_failure(void)
{
    alloc_count++;
    if (fail_countdown > 0 && --fail_countdown == 0)
        return 1;
    return 0;
}

void *lop_malloc(size_t size)
{
    void *p = injected_failure() ? NULL : malloc(size ? size : 1);
    if (!p)
        lop_fail(LOP_ENOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *lop_calloc(size_t count, size_t size)
{
    void *p = injected_failure() ? NULL : calloc(count ? count : 1, size ? size : 1);
    if (!p)
        lop_fail(LOP_ENOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *lop_realloc(void *old, size_t size)
{
    void *p = injected_failure() ? NULL : realloc(old, size ? size : 1);
    if (!p)
        lop_fail(LOP_ENOMEM, "out of memory reallocating %zu bytes", size);
    return p;
}

void lop_free(void *p)
{
    free(p);
}
