/*
 * tensor.c - float32 tensors over reference-counted storage.  A tensor header has one
 * owner count of its own and holds one count on its storage, so a view can outlive
 * the tensor it was cut from.
 */
#include <string.h>

#include "internal.h"

struct lop_storage {
    float *data;
    size_t size;     /* elements */
    int refs;
    int borrowed;    /* data belongs to someone else (lop_tensor_borrow): never freed */
};

size_t lop_shape_numel(int ndim, const int *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    return n;
}

static int check_shape(int ndim, const int *shape)
{
    if (ndim < 0 || ndim > LOP_MAX_DIMS)
        return lop_fail(LOP_ESHAPE, "tensor rank %d is outside 0..%d", ndim, LOP_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0)
            return lop_fail(LOP_ESHAPE, "tensor dimension %d has size %d", i + 1, shape[i]);
    return LOP_OK;
}

static lop_tensor *header_new(int ndim, const int *shape, lop_storage *st, size_t offset)
{
    lop_tensor *t = lop_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->numel = lop_shape_numel(ndim, shape);
    t->storage = st;
    t->data = st->data + offset;
    t->refs = 1;
    st->refs++;
    return t;
}

lop_tensor *lop_tensor_new(int ndim, const int *shape)
{
    if (check_shape(ndim, shape) != LOP_OK)
        return NULL;
    size_t n = lop_shape_numel(ndim, shape);
    lop_storage *st = lop_calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->data = lop_calloc(n, sizeof(float));
    if (!st->data) {
        lop_free(st);
        return NULL;
    }
    st->size = n;
    lop_tensor *t = header_new(ndim, shape, st, 0);
    if (!t) {
        lop_free(st->data);
        lop_free(st);
        return NULL;
    }
    return t;
}

lop_tensor *lop_tensor_view(lop_tensor *base, size_t offset, int ndim, const int *shape)
{
    if (check_shape(ndim, shape) != LOP_OK)
        return NULL;
    size_t n = lop_shape_numel(ndim, shape);
    size_t base_off = (size_t)(base->data - base->storage->data);
    if (offset > base->numel || n > base->numel - offset) {
        lop_fail(LOP_ESHAPE, "view of %zu elements at offset %zu exceeds a tensor of %zu",
                 n, offset, base->numel);
        return NULL;
    }
    return header_new(ndim, shape, base->storage, base_off + offset);
}

lop_tensor *lop_tensor_borrow(float *data, int ndim, const int *shape)
{
    if (check_shape(ndim, shape) != LOP_OK)
        return NULL;
    lop_storage *st = lop_calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->data = data;
    st->size = lop_shape_numel(ndim, shape);
    st->borrowed = 1;
    lop_tensor *t = header_new(ndim, shape, st, 0);
    if (!t)
        lop_free(st);
    return t;
}

lop_tensor *lop_tensor_clone(const lop_tensor *t)
{
    lop_tensor *c = lop_tensor_new(t->ndim, t->shape);
    if (c)
        memcpy(c->data, t->data, t->numel * sizeof(float));
    return c;
}

void lop_tensor_retain(lop_tensor *t)
{
    t->refs++;
}

void lop_tensor_release(lop_tensor *t)
{
    if (!t || --t->refs > 0)
        return;
    lop_storage *st = t->storage;
    if (--st->refs == 0) {
        if (!st->borrowed)
            lop_free(st->data);
        lop_free(st);
    }
    lop_free(t);
}

int lop_tensor_ensure(lop_tensor **t, int ndim, const int *shape)
{
    lop_tensor *cur = *t;
    int st = check_shape(ndim, shape);
    if (st != LOP_OK)
        return st;
    size_t n = lop_shape_numel(ndim, shape);
    /* Reshape in place only when this header is the storage's sole user. */
    if (cur && cur->refs == 1 && cur->storage->refs == 1 && cur->data == cur->storage->data &&
        n <= cur->storage->size) {
        cur->ndim = ndim;
        for (int i = 0; i < ndim; i++)
            cur->shape[i] = shape[i];
        cur->numel = n;
        return LOP_OK;
    }
    lop_tensor *fresh = lop_tensor_new(ndim, shape);
    if (!fresh)
        return LOP_ENOMEM;
    lop_tensor_release(cur);
    *t = fresh;
    return LOP_OK;
}

int lop_tensor_same_shape(const lop_tensor *a, const lop_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

void lop_tensor_fill(lop_tensor *t, float v)
{
    for (size_t i = 0; i < t->numel; i++)
        t->data[i] = v;
}
