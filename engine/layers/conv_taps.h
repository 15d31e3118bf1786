/*
 * conv_taps.h - conv_taps.c's tap-by-tap kernels for ungrouped convolutions on maps no
 * larger than the kernel's window (VGG-16's 2x2 maps, any 1x1 map), shared only with
 * conv.c, which chooses them per layer.
 */
#ifndef LOPPER_CONV_TAPS_H
#define LOPPER_CONV_TAPS_H

#include <stddef.h>

/* An ungrouped convolution of c x h x w images into o channels of ho x wo, kernel
 * kh x kw, stride sh x sw, padding ph x pw.  Every pair (output position p, input
 * position q) that some kernel tap t joins is one product over a chunk of images:
 * Y_p += X_q W_t^T, and backward dX_q += dY_p W_t, dW_t += dY_p^T X_q.  Pairs whose
 * tap falls on padding cost nothing, where im2col multiplies them as zeros (forward,
 * a 3x3 pad-1 kernel on a 2x2 map takes 9 products a channel pair, where the pairs
 * are 16: conv_taps.c).  Images go in chunks of at most mf (forward) or m
 * (backward); products are cut into channel slices so that a chunk makes at least a
 * few jobs for the threads, by shapes alone: the bits do not depend on the number of
 * threads. */
typedef struct lop_taps {
    int c, h, w, o, ho, wo, kh, kw, sh, sw, ph, pw;
    int hw, hwo, taps;        /* h * w, ho * wo, kh * kw */
    int m;                    /* images per backward chunk */
    int mf, lanes;            /* images per forward chunk; its lanes, whole vectors */
    int oslices, cslices;     /* output / input channel slices of a position's products */
} lop_taps;

void lop_taps_plan(lop_taps *p, int c, int h, int w, int o, int kh, int kw, int sh, int sw,
                   int ph, int pw, int batch);
/* Floats of scratch lop_taps_forward (backward = 0) or lop_taps_backward needs. */
size_t lop_taps_scratch_floats(const lop_taps *p, int backward);
/* y [batch][o][ho][wo] = conv(x [batch][c][h][w]) with weights w [o][c][kh][kw] plus
 * bias (may be NULL).  A forward that transforms the weights first (a 3x3 pad-1 kernel
 * on a 2x2 map) can keep them for the next pass: lop_taps_kept_floats(p) floats (0:
 * nothing to keep) at kept, made there when made is 0, else read as they are; kept NULL
 * makes them in scratch. */
size_t lop_taps_kept_floats(const lop_taps *p);
void lop_taps_forward(const lop_taps *p, const float *w, const float *bias, const float *x,
                      int batch, float *kept, int made, float *scratch, float *y);
/* dw += the weight gradient; dx = (or, with accumulate, +=) the input gradient, from
 * the output gradient dy.  The bias gradient is the caller's. */
void lop_taps_backward(const lop_taps *p, const float *w, const float *x, const float *dy,
                       int batch, int accumulate, float *scratch, float *dx, float *dw);

/* For tests and benchmarks (conv.c): mode 1 runs every ungrouped layer on these
 * kernels, 0 none, -1 (the default) those conv.c's measured rule picks.  Not
 * thread-safe: set it between passes. */
void lop_debug_conv_taps(int mode);

#endif
