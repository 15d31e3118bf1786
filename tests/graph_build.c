/*
 * graph_build.c - see graph_build.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "gradcheck.h"
#include "graph_build.h"

void fill_param(lop_graph *g, int id, const char *param, double lo, double hi, lop_rng *r)
{
    int k = lop_node_find_param(g, id, param);
    assert_true(k >= 0);
    lop_tensor *t = lop_node_param(g, id, k);
    for (size_t i = 0; i < t->numel; i++)
        t->data[i] = (float)(lo + (hi - lo) * lop_rng_uniform(r));
}

void batchnorm_terms(lop_graph *g, int bn, lop_rng *r)
{
    fill_param(g, bn, "weight", 0.5, 1.5, r);
    fill_param(g, bn, "bias", -0.5, 0.5, r);
    fill_param(g, bn, "running_mean", -0.3, 0.3, r);
    fill_param(g, bn, "running_var", 0.3, 2.0, r);
}

lop_tensor *random_maps(int batch, int c, int h, int w, uint64_t seed)
{
    int shape[4] = {batch, c, h, w};
    lop_tensor *x = gradcheck_random(4, shape, seed);
    assert_non_null(x);
    return x;
}

lop_dataset random_images(int n, int c, int h, int w, uint64_t seed)
{
    int shape[4] = {n, c, h, w};
    lop_dataset d = {.images = gradcheck_random(4, shape, seed),
                     .labels = calloc((size_t)n, sizeof(int)), .n = n, .classes = 10};
    assert_non_null(d.images);
    assert_non_null(d.labels);
    return d;
}

void assert_near(double a, double b, double rel)
{
    double scale = fabs(a) + fabs(b) + 1e-3;
    if (fabs(a - b) > rel * scale)
        fail_msg("%.9g vs %.9g", a, b);
}

lop_graph *new_graph(int ndim, int c, int h, int w, int *x)
{
    lop_graph *g = lop_graph_new(7);
    assert_non_null(g);
    lop_attrs a = lop_attrs_default();
    a.in_ndim = ndim;
    a.in_shape[0] = c;
    a.in_shape[1] = h;
    a.in_shape[2] = w;
    assert_int_equal(lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &a, x), LOP_OK);
    return g;
}

int add1(lop_graph *g, lop_kind kind, const char *name, int in, const lop_attrs *a)
{
    int id;
    assert_int_equal(lop_graph_add(g, kind, name, &in, 1, a, &id), LOP_OK);
    return id;
}

int conv(lop_graph *g, const char *name, int in, int cout, int bias)
{
    lop_attrs a = lop_attrs_default();
    a.out_channels = cout;
    a.kernel_h = a.kernel_w = 3;
    a.pad_h = a.pad_w = 1;
    a.bias = bias;
    return add1(g, LOP_CONV2D, name, in, &a);
}

int conv_k(lop_graph *g, const char *name, int in, int cout, int k, int stride, int groups)
{
    lop_attrs a = lop_attrs_default();
    a.out_channels = cout;
    a.kernel_h = a.kernel_w = k;
    a.stride_h = a.stride_w = stride;
    a.pad_h = a.pad_w = k / 2;
    a.groups = groups;
    return add1(g, LOP_CONV2D, name, in, &a);
}
