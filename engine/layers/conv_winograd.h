/*
 * conv_winograd.h - Winograd F(2x2,3x3) and F(4x4,3x3) kernels of conv_winograd.c for
 * 3x3 stride-1 ungrouped convolutions, shared only with conv.c, which chooses them per
 * layer.
 */
#ifndef LOPPER_CONV_WINOGRAD_H
#define LOPPER_CONV_WINOGRAD_H

#include <stddef.h>

struct lop_epilogue;   /* internal.h */

/* A 3x3 stride-1 convolution of c x h x w images into o channels, padded ph x pw
 * (each 0..2), cut into r x r output tiles (r = 2 or 4): th x tw per image, the last
 * row and column of tiles partial when r does not divide the output size (`tiles` per
 * image).  A chunk of m images is worked in the transformed domain as positions = (r + 2)^2
 * products, one per position xi of the (r + 2) x (r + 2) tile:
 * M[xi] (o x T) = U[xi] (o x c) V[xi] (c x T), T = m * tiles.
 *
 * lop_wino_pack writes U [positions][o][c] (lop_wino_weight_floats; output channels
 * [o0, o1) of it) from weights w [o][c][3][3], or with adjoint from the weights
 * [c][o][3][3] of the layer whose input gradient the plan computes (flipped and
 * transposed): that plan takes the layer's output gradient as input (c = the layer's
 * outputs), gives o = the layer's inputs and pads 2 - ph x 2 - pw.
 *
 * A chunk's scratch (lop_wino_scratch_floats) holds V [positions][c][T] and then
 * M [positions][o][T] (at lop_wino_v and lop_wino_m; each position's matrix a little
 * apart from the next).  lop_wino_chunk runs the three steps for m images x
 * [m][c][h][w] into y [m][o][ho][wo]: y = conv(x) as the epilogue e says (internal.h:
 * a convolution's bias, or the batchnorm and activation fused with it), or with e NULL
 * and accumulate, y += conv(x).  The steps are exported so that one image's work can
 * be shared by several threads (input channels, tile positions, output channels). */
typedef struct lop_wino {
    int r, positions;         /* output tile r x r; positions of the (r + 2)^2 input tile */
    int c, h, w, o, ph, pw;
    int ho, wo, th, tw;
    /* Tiles per row of tiles as the transforms lay them out: tw and junk tiles after
     * them (past the output's columns, never stored), so that each load of
     * VEC_LANES / r tiles (conv_winograd_tiles.h) lies in one row of tiles or holds
     * whole ones: a multiple of VEC_LANES / r, or a power of two below it.  With
     * compact the junk tiles are left out of V and M, else multiplied with the rest. */
    int span, compact;
    int tiles;                /* per image in V and M: th * tw, or th * span */
} lop_wino;

void lop_wino_plan(lop_wino *p, int r, int c, int h, int w, int o, int ph, int pw);
size_t lop_wino_weight_floats(const lop_wino *p);
void lop_wino_pack(const lop_wino *p, const float *w, int adjoint, int o0, int o1, float *u);
size_t lop_wino_scratch_floats(const lop_wino *p, int m);
float *lop_wino_v(const lop_wino *p, float *scratch);
float *lop_wino_m(const lop_wino *p, int m, float *scratch);
void lop_wino_chunk(const lop_wino *p, const float *u, const float *x, int m,
                    const struct lop_epilogue *e, int accumulate, float *scratch, float *y);
/* The steps: input channels [c0, c1) into V; the products of positions [xi0, xi1);
 * output channels [o0, o1) out of M. */
void lop_wino_input(const lop_wino *p, const float *x, int m, int c0, int c1, float *v);
void lop_wino_products(const lop_wino *p, const float *u, const float *v, int m, int xi0,
                       int xi1, float *mm);
void lop_wino_output(const lop_wino *p, const float *mm, int m, int o0, int o1,
                     const struct lop_epilogue *e, int accumulate, float *y);
/* One image's output channels [o0, o1) from its V (lop_wino_input over every input
 * channel, m = 1) and the weights w [o][c][3][3], their U made here: the channels'
 * weights packed, multiplied and transformed out into y [o][ho][wo] through e, all in
 * scratch (lop_wino_block_floats(p, o1 - o0) floats).  A pass whose weights are not
 * kept (lop_graph_freeze) makes U a block at a time this way, so that it stays in
 * cache between its making and its products instead of going out to memory. */
size_t lop_wino_block_floats(const lop_wino *p, int outs);
void lop_wino_block(const lop_wino *p, const float *w, const float *v, int o0, int o1,
                    const struct lop_epilogue *e, float *scratch, float *y);
/* dw [o][c][3][3] += the weight gradient of the plan's convolution over m images x
 * [m][c][h][w] and output gradients dy [m][o][ho][wo]: dU[xi] = dM[xi] V[xi]^T with
 * dM = A dY A^T per tile, then dw += G^T dU G; scratch holds lop_wino_wgrad_floats(p, m)
 * floats. */
size_t lop_wino_wgrad_floats(const lop_wino *p, int m);
void lop_wino_wgrad(const lop_wino *p, const float *x, const float *dy, int m,
                    float *scratch, float *dw);
/* Its steps, for a pass that shares one weight gradient over all its images out to
 * threads: V of input channels [c0, c1) (lop_wino_input at lop_wino_v), dM of output
 * channels [o0, o1) (at lop_wino_m), dU of positions [xi0, xi1) (at lop_wino_du), then
 * dw += G^T dU G for the channel pairs [k0, k1) of [o][c] (k0 a multiple of
 * VEC_LANES), all in lop_wino_wgrad_floats(p, m) floats. */
void lop_wino_grad_tiles(const lop_wino *p, const float *dy, int m, int o0, int o1,
                         float *dm);
float *lop_wino_du(const lop_wino *p, int m, float *scratch);
void lop_wino_wgrad_products(const lop_wino *p, const float *v, const float *dm, int m,
                             int xi0, int xi1, float *du);
void lop_wino_wgrad_fold(const lop_wino *p, const float *du, size_t k0, size_t k1,
                         float *dw);

/* For tests and benchmarks (conv.c): mode 2 or 4 runs every 3x3 stride-1 ungrouped
 * layer with padding up to 2 on these kernels with that tile size, 0 none, -1 (the
 * default) those conv.c's measured rules pick.  Not thread-safe: set it between
 * passes. */
void lop_debug_conv_winograd(int mode);

#endif
