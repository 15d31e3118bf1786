/*
 * graph_build.h - building small test graphs node by node, and the random images and
 * tolerant comparisons the sampling tests feed and check them with, shared by the
 * tests: each helper asserts (cmocka) that the engine accepted what it was given.
 */
#ifndef GRAPH_BUILD_H
#define GRAPH_BUILD_H

#include "lopper.h"

/* A graph (seed 7) whose input node "x" takes (c, h, w) maps (ndim 3) or c features
 * (ndim 1); *x receives the input's id. */
lop_graph *new_graph(int ndim, int c, int h, int w, int *x);

/* Add a one-input node; returns its id. */
int add1(lop_graph *g, lop_kind kind, const char *name, int in, const lop_attrs *a);

/* A 3x3 conv2d with padding 1 and cout filters, with or without bias; returns its id. */
int conv(lop_graph *g, const char *name, int in, int cout, int bias);

/* A k x k conv2d (padding k / 2, with bias) of cout filters, the given stride and
 * groups; returns its id. */
int conv_k(lop_graph *g, const char *name, int in, int cout, int k, int stride, int groups);

/* Every value of node id's parameter `param` uniform in [lo, hi). */
void fill_param(lop_graph *g, int id, const char *param, double lo, double hi, lop_rng *r);

/* Batchnorm bn's gamma, beta and running statistics drawn away from the identity:
 * gamma in [0.5, 1.5), beta in [-0.5, 0.5), mean in [-0.3, 0.3), variance in [0.3, 2). */
void batchnorm_terms(lop_graph *g, int bn, lop_rng *r);

/* A batch of random maps [batch, c, h, w] (uniform in [-1, 1), seeded). */
lop_tensor *random_maps(int batch, int c, int h, int w, uint64_t seed);

/* n random images of c x h x w (uniform in [-1, 1), seeded), every label 0 of 10. */
lop_dataset random_images(int n, int c, int h, int w, uint64_t seed);

/* Fails the test unless |a - b| <= rel (|a| + |b| + 1e-3). */
void assert_near(double a, double b, double rel);

#endif
