/*
 * graph_build.h - building small test graphs node by node, shared by the layer tests:
 * each helper asserts (cmocka) that the engine accepted the node.
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

#endif
