/*
 * conv_winograd_tiles.h - the transforms of each Winograd tile size, F(2x2,3x3) in
 * conv_winograd_f2.c and F(4x4,3x3) in conv_winograd_f4.c, for conv_winograd.c, which
 * runs the loops over channels and images around them and the products between them.
 * r is the output tile's side, alpha = r + 2 the input tile's, and a transformed
 * matrix's positions lie `step` floats apart.
 *
 * The tile transforms run on VEC_LANES tiles at once, one tile a lane.  So that a
 * vector is full whatever the map's size, conv_winograd.c lays out a strip row: the
 * rows of tiles of one or more images end to end, each row of tiles followed by one
 * junk tile that makes room for the two columns by which its last tile reaches past
 * r * tw.  A vector's tiles start at `rows` (column r * lane from there), `pitch`
 * floats from one row of the strip row to the next; `real` marks the lanes whose
 * tiles are real, and those are the consecutive tiles of the run at out or m (junk
 * lanes are skipped).  Whole-vector reads reach r * VEC_LANES + r - 1 columns past
 * `rows`.
 * - pack_kernels: U = G g G^T of the n <= VEC_LANES 3x3 kernels whose taps are the
 *   lanes of g[0..8] into dst[xi * step + lane];
 * - input_vector: B^T d B of a vector of tiles of alpha rows (of the zero-padded
 *   input) into out[xi * step + real tile];
 * - output_vector: A^T M A of a vector of tiles, M at m[xi * step + real tile], into
 *   r output rows;
 * - output_grad_vector: A dY A^T of a vector of tiles, dY in r rows (zero beyond the
 *   output's edges), into out[xi * step + real tile];
 * - weight_grads: dw[9 l .. 9 l + 8] += G^T dU G for the n <= VEC_LANES channel pairs
 *   l, dU at du[xi * step + l].
 */
#ifndef LOPPER_CONV_WINOGRAD_TILES_H
#define LOPPER_CONV_WINOGRAD_TILES_H

#include "layers/conv_winograd.h"
#include "layers/vec.h"

typedef struct lop_wino_tiles {
    void (*pack_kernels)(const vec *g, int n, float *dst, size_t step);
    void (*input_vector)(const float *rows, int pitch, unsigned real, float *out,
                         size_t step);
    void (*output_vector)(const float *m, size_t step, unsigned real, float *rows,
                          int pitch);
    void (*output_grad_vector)(const float *rows, int pitch, unsigned real, float *out,
                               size_t step);
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

#endif
