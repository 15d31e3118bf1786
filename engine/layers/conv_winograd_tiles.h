/*
 * conv_winograd_tiles.h - the transforms of each Winograd tile size, F(2x2,3x3) in
 * conv_winograd_f2.c and F(4x4,3x3) in conv_winograd_f4.c, for conv_winograd.c, which
 * runs the loops over channels, images and rows of tiles around them and the products
 * between them.  Each works on one kernel, one channel pair or one row of tiles; r is
 * the output tile's side, alpha = r + 2 the input tile's, tw the tiles in a row, and a
 * transformed matrix's positions lie `step` floats apart:
 * - pack_kernel: U = G g G^T of one 3x3 kernel g into dst[xi * step];
 * - input_row: B^T d B of each tile of a row of tiles, whose alpha plane rows start
 *   at `plane` (pitch pw), into out[xi * step + tx];
 * - output_row: A^T M A of each tile of a row, M at m[xi * step + tx], into r output
 *   rows of r * tw floats, row i at rows + i * pitch;
 * - output_grad_row: A dY A^T of each tile of a row, dY in r rows laid out as
 *   output_row's (zero beyond the output's edges), into out[xi * step + tx];
 * - weight_grad: dw[0..8] += G^T dU G for one channel pair, dU at du[xi * step].
 * The row transforms work on VEC_LANES tiles at once, whole vectors also past the last
 * tile: input_row reads plane rows up to column r * twv + r - 1, output_row writes and
 * output_grad_row reads rows of pitch r * twv floats (twv: tw rounded up to whole
 * vectors; the plan's pitch), and reads of m may run up to VEC_LANES - 1 floats past
 * a position's last tile; what they store at out stops at the last tile.
 */
#ifndef LOPPER_CONV_WINOGRAD_TILES_H
#define LOPPER_CONV_WINOGRAD_TILES_H

#include "layers/conv_winograd.h"
#include "layers/vec.h"

typedef struct lop_wino_tiles {
    void (*pack_kernel)(const float *g, float *dst, size_t step);
    void (*input_row)(const float *plane, int pw, int tw, float *out, size_t step);
    void (*output_row)(const float *m, size_t step, int tw, float *rows, int pitch);
    void (*output_grad_row)(const float *rows, int pitch, int tw, float *out, size_t step);
    void (*weight_grad)(const float *du, size_t step, float *dw);
} lop_wino_tiles;

extern const lop_wino_tiles lop_wino_f2, lop_wino_f4;

/* The tiles of a row's vector from tile tx on: VEC_LANES, or those left at its end. */
static inline int tiles_left(int tw, int tx)
{
    return tw - tx < VEC_LANES ? tw - tx : VEC_LANES;
}

#endif
