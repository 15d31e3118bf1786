/*
 * conv_stencil.h - the thin-layer convolution kernels of conv_stencil.c, shared only
 * with conv.c, which chooses between them and im2col + GEMM.
 */
#ifndef LOPPER_CONV_STENCIL_H
#define LOPPER_CONV_STENCIL_H

#include <stddef.h>

/* Stride-1 or stride-2 ungrouped convolution of one image without im2col
 * (conv_stencil.c), for thin layers.  lop_stencil_plan sets up a plan for c x h x w
 * images, o output channels, a kh x kw kernel, padding ph x pw (each below the
 * kernel size) and stride 1 or 2 on both axes (stride 2: forward passes only, the
 * input gradient and lop_stencil_wgrad take stride 1);
 * lop_stencil_pack rearranges weights into lop_stencil_weight_floats(s) floats: the
 * plan's own [o][c][kh][kw], or with adjoint those of the stride-1 layer whose input
 * gradient the plan computes.  That plan takes the layer's output gradient as input
 * (c = the layer's outputs), gives o = the layer's inputs, and pads kh - 1 - ph x
 * kw - 1 - pw; the layer's weights are then [c][o][kh][kw] in the plan's terms.
 * lop_stencil_image computes output channel blocks [block_first, block_last) of one
 * image (STENCIL_OUT channels each) into y [o][ho][wo]: y = conv(x) + bias (bias may
 * be NULL) or, with accumulate, y += conv(x); scratch holds
 * lop_stencil_scratch_floats(s) floats. */
enum { STENCIL_OUT = 8 };     /* output channels per block */
typedef struct lop_stencil {
    int c, h, w, o, kh, kw, ph, pw, stride;
    int hp, wp, ho, wo;       /* padded input size, output size */
    int pitch;                /* flattened row pitch: wp, or a phase's wp / 2 rounded up */
    int span;                 /* flattened output positions computed (padded width) */
    int blocks;               /* output channel blocks */
    size_t phase;             /* floats per phase of a padded channel, with read slack */
    size_t frame;             /* floats per padded input channel: stride^2 phases */
} lop_stencil;
void lop_stencil_plan(lop_stencil *s, int c, int h, int w, int o, int kh, int kw, int ph,
                      int pw, int stride);
size_t lop_stencil_weight_floats(const lop_stencil *s);
size_t lop_stencil_scratch_floats(const lop_stencil *s);
void lop_stencil_pack(const lop_stencil *s, const float *w, int adjoint, float *packed);
void lop_stencil_image(const lop_stencil *s, const float *packed, const float *x,
                       const float *bias, int block_first, int block_last, int accumulate,
                       float *scratch, float *y);
/* dw [o][c][kh][kw] += the weight gradient of the plan's convolution over m images x
 * [m][c][h][w] and output gradients dy [m][o][ho][wo]; scratch holds
 * lop_stencil_wgrad_floats(s, m) floats. */
size_t lop_stencil_wgrad_floats(const lop_stencil *s, int m);
void lop_stencil_wgrad(const lop_stencil *s, const float *x, const float *dy, int m,
                       float *scratch, float *dw);

#endif
