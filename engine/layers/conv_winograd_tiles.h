/*
 * conv_winograd_tiles.h - the transforms of each Winograd tile size, F(2x2,3x3) in
 * conv_winograd_f2.c and F(4x4,3x3) in conv_winograd_f4.c, for conv_winograd.c, which
 * runs the loops over channels and images around them and the products between them.
 * r is the output tile's side, alpha = r + 2 the input tile's, and a transformed
 * matrix's positions lie `step` floats apart.
 *
 * The tile transforms run on VEC_LANES tiles at once, one tile a lane.  So that a
 * vector is full whatever the map's size, they work on a strip row: the rows of tiles
 * of one or more images laid end to end, each row of tiles a strip of `period` tiles
 * (r * period columns) of which the last is junk, there only to make room for the two
 * columns by which a row's last tile reaches past its r * tw.  Tile v of a strip row
 * starts at column r * v, and is the real tile v - v / period of the run the
 * transforms read or write (junk ones are skipped); a strip row has `tiles` tiles,
 * junk included, and `pitch` floats from one of its rows to the next (at least
 * r * tiles rounded up to whole vectors, + r, which whole-vector reads reach).
 * - pack_kernels: U = G g G^T of the n <= VEC_LANES 3x3 kernels whose taps are the
 *   lanes of g[0..8] into dst[xi * step + lane];
 * - input_tiles: B^T d B of each tile of a strip row of alpha rows (of the
 *   zero-padded input) into out[xi * step + real tile];
 * - output_tiles: A^T M A of each tile, M at m[xi * step + real tile], into a strip
 *   row of r output rows;
 * - output_grad_tiles: A dY A^T of each tile, dY in a strip row of r rows (zero
 *   beyond the output's edges), into out[xi * step + real tile];
 * - weight_grads: dw[9 l .. 9 l + 8] += G^T dU G for the n <= VEC_LANES channel pairs
 *   l, dU at du[xi * step + l].
 */
#ifndef LOPPER_CONV_WINOGRAD_TILES_H
#define LOPPER_CONV_WINOGRAD_TILES_H

#include "layers/conv_winograd.h"
#include "layers/vec.h"

typedef struct lop_wino_tiles {
    void (*pack_kernels)(const vec *g, int n, float *dst, size_t step);
    void (*input_tiles)(const float *rows, int pitch, int tiles, int period, float *out,
                        size_t step);
    void (*output_tiles)(const float *m, size_t step, int tiles, int period, float *rows,
                         int pitch);
    void (*output_grad_tiles)(const float *rows, int pitch, int tiles, int period,
                              float *out, size_t step);
    void (*weight_grads)(const float *du, size_t step, int n, float *dw);
} lop_wino_tiles;

extern const lop_wino_tiles lop_wino_f2, lop_wino_f4;

/* dw[9 l + j] += taps[j] lane l for the first n lanes: weight_grads' results, tap by
 * tap, added into n consecutive 3x3 kernels. */
static inline void lop_wino_add_taps(const vec taps[9], int n, float *dw)
{
    float t[9][VEC_LANES];
    for (int j = 0; j < 9; j++)
        vec_store(t[j], taps[j]);
    for (int l = 0; l < n; l++)
        for (int j = 0; j < 9; j++)
            dw[9 * l + j] += t[j][l];
}

/* The strip row's tiles [v, v + VEC_LANES) that are real, as a lane mask; *first is
 * the first one's index among the real tiles. */
static inline unsigned lop_wino_real_lanes(int v, int tiles, int period, int *first)
{
    int n = tiles - v < VEC_LANES ? tiles - v : VEC_LANES, rows = v / period;
    unsigned mask = (1u << n) - 1;
    for (int l = period - 1 - (v - rows * period); l < n; l += period)
        mask &= ~(1u << l);
    *first = v - rows;
    return mask;
}

#endif
