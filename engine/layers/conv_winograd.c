/*
 * conv_winograd.c - 3x3 stride-1 convolution by Winograd's minimal filtering
 * F(2x2,3x3) or F(4x4,3x3) (Lavin and Gray 2015), the plan of NNPACK: each r x r output
 * tile is y = A^T [(G g G^T) . (B^T d B)] A over its (r + 2) x (r + 2) input tile d.
 * Summed over input channels, the element-wise products become (r + 2)^2 independent
 * matrix products (output channels x input channels x tiles), which OpenBLAS runs near
 * peak once a chunk of images gives them enough tiles; the transforms around them
 * (conv_winograd_f2.c, conv_winograd_f4.c) are a few additions and small multiples per
 * value.  The weight gradient runs the same way backwards: dM = A dY A^T per tile,
 * dU[xi] = dM[xi] V[xi]^T, dW += G^T dU G.  The transforms read their tiles straight
 * from the images and write them straight into the output, VEC_LANES tiles at a time
 * with masked loads and stores (zero padding, cropped edges), rows of tiles padded with
 * a few junk tiles where that keeps a load within one row (packed out of the vectors
 * before the products, so that only real tiles are multiplied): copying each tile's
 * rows into a padded strip first, as this file did before, took a third of a thin
 * pruned layer's time.
 */
#include "internal.h"
#include "layers/conv_winograd_tiles.h"
#include "layers/gemm.h"
#include "layers/small_gemm.h"

/* Floats from one position's matrix to the next's: n and a cache line more, so that
 * the streams a transform reads or writes at once do not fall into the same cache
 * sets (n is often a power of two). */
static size_t slab(size_t n)
{
    return n + 16;
}

/* Vectors of tiles whose loads (find_loads) are found at once and then used for every
 * channel in turn: finding them again for each channel cost as much as a transform on
 * small maps, and every channel a vector at a time scattered the accesses to V, M and
 * the planes on large maps (64 -> 64 on 56x56, one thread: the output step 7.3 ms on
 * the strip rows this replaced, 9.3-11.0 a vector at a time, 9.3-9.9 four vectors at
 * a time, 7.2-7.4 sixteen). */
enum { LOADS_BLOCK = 16 };

/* Junk tiles are packed out of V (lop_wino's compact) when the products they would
 * add, c o junk / span per tile and position, outweigh this many times the packing's
 * c + o: measured on one thread at batch 64, 16 -> 16 on 28x28 (a junk tile in 8)
 * runs 1.20-1.47 ms with the junk multiplied and 1.33-1.68 packed, 32 -> 32 on 12x12
 * (one in 4) 0.78 against 0.70, 64 -> 64 on 56x56 (2 in 16) 48.1 against 44.7. */
enum { COMPACT_WEIGHT = 2 };

/* Groups of VEC_LANES kernels ahead that lop_wino_pack asks the memory for: a batch-1
 * pass reads a wide layer's weights once, from memory, and the loads waited on it
 * (ResNet-18's 512-channel 7x7 layers at batch 1: 1.28-1.34 -> 1.15-1.19 ms with 4
 * groups ahead, 1.16-1.17 with 2, 1.17-1.19 with 8). */
enum { PACK_AHEAD = 4 };

void lop_wino_plan(lop_wino *p, int r, int c, int h, int w, int o, int ph, int pw)
{
    p->r = r;
    p->positions = (r + 2) * (r + 2);
    p->c = c;
    p->h = h;
    p->w = w;
    p->o = o;
    p->ph = ph;
    p->pw = pw;
    p->ho = h + 2 * ph - 2;
    p->wo = w + 2 * pw - 2;
    p->th = (p->ho + r - 1) / r;
    p->tw = (p->wo + r - 1) / r;
    int per_load = VEC_LANES / r;
    p->span = (p->tw + per_load - 1) / per_load * per_load;
    if (p->tw < per_load) {   /* a power of two: loads hold whole rows of tiles */
        p->span = 1;
        while (p->span < p->tw)
            p->span *= 2;
    }
    /* The junk tiles go through the products too where packing them out of every
     * stored vector costs more than multiplying them (thin layers) */
    int junk = p->span - p->tw;
    p->compact = (long)c * o * junk > (long)COMPACT_WEIGHT * (c + o) * p->span;
    p->tiles = p->th * (p->compact ? p->tw : p->span);
}

/* Tiles of m images as laid out, junk tiles included. */
static size_t laid_out(const lop_wino *p, int m)
{
    return (size_t)m * p->th * p->span;
}

size_t lop_wino_weight_floats(const lop_wino *p)
{
    return (size_t)p->positions * slab((size_t)p->o * p->c);
}

size_t lop_wino_scratch_floats(const lop_wino *p, int m)
{
    size_t cols = (size_t)m * p->tiles;
    return (size_t)p->positions * (slab(p->c * cols) + slab(p->o * cols));
}

float *lop_wino_v(const lop_wino *p, float *scratch)
{
    (void)p;
    return scratch;
}

float *lop_wino_m(const lop_wino *p, int m, float *scratch)
{
    return scratch + (size_t)p->positions * slab((size_t)p->c * m * p->tiles);
}

size_t lop_wino_wgrad_floats(const lop_wino *p, int m)
{
    return lop_wino_scratch_floats(p, m) + lop_wino_weight_floats(p);
}

static const lop_wino_tiles *tiles_of(const lop_wino *p)
{
    return p->r == 2 ? &lop_wino_f2 : &lop_wino_f4;
}

/* U = G g G^T for the kernels of output channels [o0, o1), each row of them into
 * `positions` contiguous runs, VEC_LANES input channels at a time (their taps
 * gathered into vectors).  Kernel (oc, ic) is w[oc][ic] or, adjoint, the flipped
 * w[ic][oc]. */
void lop_wino_pack(const lop_wino *p, const float *w, int adjoint, int o0, int o1, float *u)
{
    const lop_wino_tiles *t = tiles_of(p);
    size_t step = slab((size_t)p->o * p->c);
    size_t so = adjoint ? 9 : (size_t)p->c * 9, si = adjoint ? (size_t)p->o * 9 : 9;
    for (int oc = o0; oc < o1; oc++)
        for (int ic = 0; ic < p->c; ic += VEC_LANES) {
            int n = p->c - ic < VEC_LANES ? p->c - ic : VEC_LANES;
            const float *k = w + oc * so + ic * si;
            vec g[9];
            if (!adjoint)   /* the group PACK_AHEAD on: its 9 cache lines */
#pragma GCC unroll 9
                for (int l = 0; l < 9; l++)
                    __builtin_prefetch(k + (size_t)PACK_AHEAD * 9 * VEC_LANES + 16 * l, 0, 0);
            if (n == VEC_LANES)   /* inlined with n constant: no test a kernel */
                vec_gather_kernels(k, (int)si, VEC_LANES, g);
            else
                vec_gather_kernels(k, (int)si, n, g);
            for (int i = 0; adjoint && i < 4; i++) {   /* flipped: tap i is 8 - i */
                vec tap = g[i];
                g[i] = g[8 - i];
                g[8 - i] = tap;
            }
            t->pack_kernels(g, n, u + (size_t)oc * p->c + ic, step);
        }
}

/* The tile of m images' tiles that a cursor is at: image b, row of tiles ty, column
 * tx. */
typedef struct tile_cursor {
    int b, ty, tx;
} tile_cursor;

/* [*lo, *hi): the lanes of [from, to) whose columns (col + lane) lie in [0, w). */
static void lanes_inside(int from, int to, int col, int w, int *lo, int *hi)
{
    *lo = from > -col ? from : -col;
    *hi = to < w - col ? to : w - col;
    if (*hi < *lo)
        *hi = *lo;
}

/* Whether every vector that the loads of part q read (r + 2 rows from row0, those
 * inside the h rows of w columns, r columns to the right too, in any channel of the
 * images `image` floats apart) lies whole within the `floats` floats of the chunk
 * (lop_wino_loads' whole). */
static int within_chunk(const lop_wino_part *q, int r, int h, int w, size_t image,
                        size_t floats)
{
    int first = q->row0 < 0 ? -q->row0 : 0;
    int last = h - 1 - q->row0 < r + 1 ? h - 1 - q->row0 : r + 1;
    ptrdiff_t lowest = q->at + (ptrdiff_t)first * w;
    ptrdiff_t past = q->at + (ptrdiff_t)last * w + r + VEC_LANES +
                     (ptrdiff_t)(image - (size_t)h * w);
    return last >= first && lowest >= 0 && past <= (ptrdiff_t)floats;
}

/* The loads (conv_winograd_tiles.h) of the vector of tiles at the cursor, the first
 * of them tile tv of m images' cols tiles, in images of h x w floats `image` apart (a
 * channel's plane of each) whose rows and columns of tiles start at r ty - ph and
 * r tx - pw; the cursor moves past them. */
static void find_loads(const lop_wino *p, int cols, int tv, int h, int w, size_t image,
                       int ph, int pw, tile_cursor *at, lop_wino_loads *l)
{
    int r = p->r, per_load = VEC_LANES / r, parts_of[4];
    size_t chunk = (size_t)(cols / (p->th * p->span)) * image;   /* m images' floats */
    l->h = h;
    l->w = w;
    l->parts = 1;
    l->real = 0;
    l->whole = 1;
    for (int k = 0; k < r; k++) {
        int parts = 0;
        for (int t0 = 0; t0 < per_load && tv + k * per_load + t0 < cols;) {
            int run = p->span - at->tx < per_load - t0 ? p->span - at->tx : per_load - t0;
            int row = r * at->ty - ph, col = r * (at->tx - t0) - pw;   /* lane 0's column */
            int real = !p->compact ? run : p->tw - at->tx < run ? p->tw - at->tx : run;
            if (real > 0)
                l->real |= ((1u << real) - 1) << (k * per_load + t0);
            lop_wino_part *q = &l->part[parts++][k];
            q->at = (ptrdiff_t)(at->b * image) + (ptrdiff_t)row * w + col;
            q->row0 = row;
            lanes_inside(r * t0, r * (t0 + run), col, w, &q->lo, &q->hi);
            lanes_inside(r * t0, r * (t0 + run), col + r, w, &q->lo_shifted, &q->hi_shifted);
            l->whole &= within_chunk(q, r, h, w, image, chunk);
            t0 += run;
            if ((at->tx += run) == p->span) {
                at->tx = 0;
                if (++at->ty == p->th) {
                    at->ty = 0;
                    at->b++;
                }
            }
        }
        parts_of[k] = parts;
        if (parts > l->parts)
            l->parts = parts;
    }
    for (int k = 0; k < r; k++)   /* empty parts: no lanes in any row */
        for (int q = parts_of[k]; q < l->parts; q++)
            l->part[q][k] = (lop_wino_part){.row0 = h};
}

/* Where a walk over m images' tiles as laid out, LOADS_BLOCK vectors at a time, has
 * got to: the cursor, the next vector's first tile and the real tiles before it. */
typedef struct tile_walk {
    tile_cursor at;
    size_t next, real;
} tile_walk;

/* The loads of the walk's next (up to) LOADS_BLOCK vectors (find_loads, each vector's
 * first real tile in l->first), in images of h x w floats `image` apart padded ph x
 * pw; how many, 0 at the end. */
static int next_block(const lop_wino *p, int m, int h, int w, size_t image, int ph, int pw,
                      tile_walk *walk, lop_wino_loads *l)
{
    size_t all = laid_out(p, m);
    int nv = 0;
    for (; walk->next < all && nv < LOADS_BLOCK; walk->next += VEC_LANES, nv++) {
        find_loads(p, (int)all, (int)walk->next, h, w, image, ph, pw, &walk->at, &l[nv]);
        l[nv].first = walk->real;
        walk->real += (size_t)__builtin_popcount(l[nv].real);
    }
    return nv;
}

/* Channels [c0, c1) of m images into V, a vector of tiles at a time read straight
 * from x. */
void lop_wino_input(const lop_wino *p, const float *x, int m, int c0, int c1, float *v)
{
    const lop_wino_tiles *t = tiles_of(p);
    size_t cols = (size_t)m * p->tiles, step = slab(p->c * cols), plane = (size_t)p->h * p->w;
    tile_walk walk = {{0, 0, 0}, 0, 0};
    lop_wino_loads l[LOADS_BLOCK];
    for (int nv; (nv = next_block(p, m, p->h, p->w, p->c * plane, p->ph, p->pw, &walk, l));)
        for (int ch = c0; ch < c1; ch++)
            for (int k = 0; k < nv; k++) {
                l[k].in = x + ch * plane;
                t->input_vector(&l[k], v + ch * cols + l[k].first, step);
            }
}

void lop_wino_products(const lop_wino *p, const float *u, const float *v, int m, int xi0,
                       int xi1, float *mm)
{
    int cols = m * p->tiles;
    size_t us = slab((size_t)p->o * p->c), vs = slab((size_t)p->c * cols);
    size_t ms = slab((size_t)p->o * cols);
    int small = lop_small_gemm_suits(p->o, cols, p->c);
    for (int xi = xi0; xi < xi1; xi++)
        if (small)
            lop_small_gemm(p->o, cols, p->c, u + xi * us, v + xi * vs, cols, mm + xi * ms,
                           cols);
        else
            lop_sgemm(CblasNoTrans, CblasNoTrans, p->o, cols, p->c, 1.0f,
                      u + xi * us, p->c, v + xi * vs, cols, 0.0f, mm + xi * ms, cols);
}

/* What the output step does with output channel oc's values: e's epilogue, else add
 * them (accumulate) or store them. */
static lop_wino_put put_of(const lop_epilogue *e, int oc, int accumulate)
{
    lop_wino_put put = {.accumulate = !e && accumulate};
    if (e) {
        vec zero = {0};
        put.epilogue = 1;
        put.mul = zero + (e->mul ? e->mul[oc] : 1.0f);
        put.add = zero + (e->add ? e->add[oc] : 0.0f);
        put.lo = zero + e->lo;
        put.hi = zero + e->hi;
        put.clamp = lop_epilogue_clamps(e);   /* without bounds a NaN stays one */
        put.has_residual = e->residual != NULL;
        put.residual = e->residual ? e->residual - e->y : 0;
    }
    return put;
}

/* Output channels [o0, o1) of m images, a vector of tiles at a time straight into y
 * cropped to ho x wo, through the epilogue or added. */
void lop_wino_output(const lop_wino *p, const float *mm, int m, int o0, int o1,
                     const lop_epilogue *e, int accumulate, float *y)
{
    const lop_wino_tiles *t = tiles_of(p);
    size_t cols = (size_t)m * p->tiles, step = slab(p->o * cols);
    size_t plane = (size_t)p->ho * p->wo;
    tile_walk walk = {{0, 0, 0}, 0, 0};
    lop_wino_loads l[LOADS_BLOCK];
    for (int nv; (nv = next_block(p, m, p->ho, p->wo, p->o * plane, 0, 0, &walk, l));)
        for (int oc = o0; oc < o1; oc++) {
            lop_wino_put put = put_of(e, oc, accumulate);
            for (int k = 0; k < nv; k++) {
                l[k].out = y + oc * plane;
                t->output_vector(mm + oc * cols + l[k].first, step, &l[k], &put);
            }
        }
}

void lop_wino_chunk(const lop_wino *p, const float *u, const float *x, int m,
                    const lop_epilogue *e, int accumulate, float *scratch, float *y)
{
    float *v = lop_wino_v(p, scratch);
    float *mm = lop_wino_m(p, m, scratch);
    lop_wino_input(p, x, m, 0, p->c, v);
    lop_wino_products(p, u, v, m, 0, p->positions, mm);
    lop_wino_output(p, mm, m, 0, p->o, e, accumulate, y);
}

/* The plan of output channels [o0, o1) alone: the same input and tiles, o1 - o0
 * outputs. */
static lop_wino block_plan(const lop_wino *p, int o0, int o1)
{
    lop_wino b = *p;
    b.o = o1 - o0;
    return b;
}

size_t lop_wino_block_floats(const lop_wino *p, int outs)
{
    lop_wino b = block_plan(p, 0, outs);
    return lop_wino_weight_floats(&b) + (size_t)p->positions * slab((size_t)outs * p->tiles);
}

void lop_wino_block(const lop_wino *p, const float *w, const float *v, int o0, int o1,
                    const lop_epilogue *e, float *scratch, float *y)
{
    lop_wino b = block_plan(p, o0, o1);
    float *u = scratch, *mm = u + lop_wino_weight_floats(&b);
    lop_wino_pack(&b, w + (size_t)o0 * p->c * 9, 0, 0, b.o, u);
    lop_wino_products(&b, u, v, 1, 0, p->positions, mm);
    /* the block's channels are channels 0.. of its plan: its epilogue starts at o0 */
    lop_epilogue shifted = *e;
    shifted.mul = e->mul ? e->mul + o0 : NULL;
    shifted.add = e->add ? e->add + o0 : NULL;
    lop_wino_output(&b, mm, 1, 0, b.o, &shifted, 0, y + (size_t)o0 * p->ho * p->wo);
}

/* dM [positions][o][T] = A dY A^T per tile, dY's tile zero beyond the output's edges,
 * a vector of tiles at a time read straight from dy. */
void lop_wino_grad_tiles(const lop_wino *p, const float *dy, int m, int o0, int o1, float *dm)
{
    const lop_wino_tiles *t = tiles_of(p);
    size_t cols = (size_t)m * p->tiles, step = slab(p->o * cols);
    size_t plane = (size_t)p->ho * p->wo;
    tile_walk walk = {{0, 0, 0}, 0, 0};
    lop_wino_loads l[LOADS_BLOCK];
    for (int nv; (nv = next_block(p, m, p->ho, p->wo, p->o * plane, 0, 0, &walk, l));)
        for (int oc = o0; oc < o1; oc++)
            for (int k = 0; k < nv; k++) {
                l[k].in = dy + oc * plane;
                t->output_grad_vector(&l[k], dm + oc * cols + l[k].first, step);
            }
}

/* dU = dM V^T at each position takes the fastest of three forms for its shape (36
 * products, one thread, GFLOP/s: dot products (lop_small_gemm_nt) / V transposed then
 * lop_small_gemm / OpenBLAS).  Over few tiles (a chunk of 16 images on 4x4 maps, one
 * tile each) each dot product's lane sum and store outweigh its multiply-adds, while
 * V's transpose (cols x c) makes the product lop_small_gemm's, whole vectors of input
 * channels wide: o x c = 256 x 256 over 16 tiles 11.8 / 25.2 / 14.7, 64 x 64 over 32
 * 18.8 / 28.1 / 12.9, 16 x 16 over 16 12.0 / 16.5 / 14.7.  Over 128 tiles thin layers
 * keep the dot products (16 x 16 29.8 / 22.2 / 11.9, 13 x 13 27.7 / 10.4 / 15.0).
 * VGG-16's 256 -> 256 layers on 4x4 maps, one thread, batch 64, backward: 53.5-56.5
 * ms with the dot products, 42.4-43.7 with OpenBLAS, 40.4-41.8 with V transposed.
 * The transpose, at most SHORT_FLOATS floats (lop_small_gemm's bound on B), is on
 * the stack.  These were measured on Zen 1; where OpenBLAS runs its AVX-512 kernels,
 * they beat the dot products twice over (lop_small_gemm_nt_suits).  In an AVX-512
 * build whose OpenBLAS runs narrower kernels (lop_sgemm_blocked_runs), V transposed
 * in registers (lop_transpose) then lop_small_gemm wins on every shape whose
 * transpose fits, thin ones too (on Zen 5, one thread, 36 products, GFLOP/s: dot
 * products / V transposed / the blocked product: 16 x 16 over 128 84 / 140 / 66, 13 x
 * 13 over 128 83 / 95 / 47, 32 x 32 over 128 85 / 177 / 129, 64 x 64 over 64 70 / 202
 * / 167; OpenBLAS's AVX-512 kernels 177, 141, 179, 162). */
enum { SHORT_SUMS = 32, SHORT_FLOATS = 8192 };

static int short_sums(const lop_wino *p, int cols)
{
    if ((size_t)p->c * cols > SHORT_FLOATS)
        return 0;
    return lop_sgemm_blocked_runs() || (cols <= SHORT_SUMS && p->c >= 2 * VEC_LANES);
}

/* dU = dM V^T for a position whose V (c x cols) is transposed into vt first. */
static void short_product(const lop_wino *p, int cols, const float *dm, const float *v,
                          float *vt, float *du)
{
    lop_transpose(v, cols, p->c, cols, vt, p->c);
    lop_small_gemm(p->o, p->c, cols, dm, vt, p->c, du, p->c);
}

float *lop_wino_du(const lop_wino *p, int m, float *scratch)
{
    return lop_wino_m(p, m, scratch) + (size_t)p->positions * slab((size_t)p->o * m * p->tiles);
}

void lop_wino_wgrad_products(const lop_wino *p, const float *v, const float *dm, int m,
                             int xi0, int xi1, float *du)
{
    int cols = m * p->tiles;
    size_t vs = slab((size_t)p->c * cols), ms = slab((size_t)p->o * cols);
    size_t us = slab((size_t)p->o * p->c);
    int shorter = short_sums(p, cols), small = lop_small_gemm_nt_suits(p->o, p->c, cols);
    float vt[SHORT_FLOATS];
    for (int xi = xi0; xi < xi1; xi++)
        if (shorter)
            short_product(p, cols, dm + xi * ms, v + xi * vs, vt, du + xi * us);
        else if (small)
            lop_small_gemm_nt(p->o, p->c, cols, dm + xi * ms, cols, v + xi * vs, cols,
                              du + xi * us, p->c);
        else
            lop_sgemm(CblasNoTrans, CblasTrans, p->o, p->c, cols, 1.0f,
                      dm + xi * ms, cols, v + xi * vs, cols, 0.0f, du + xi * us, p->c);
}

/* dw += G^T dU G, dU [positions][o][c] */
void lop_wino_wgrad_fold(const lop_wino *p, const float *du, size_t k0, size_t k1, float *dw)
{
    const lop_wino_tiles *t = tiles_of(p);
    size_t us = slab((size_t)p->o * p->c);
    for (size_t k = k0; k < k1; k += VEC_LANES)
        t->weight_grads(du + k, us, k1 - k < VEC_LANES ? (int)(k1 - k) : VEC_LANES,
                        dw + k * 9);
}

void lop_wino_wgrad(const lop_wino *p, const float *x, const float *dy, int m,
                    float *scratch, float *dw)
{
    float *v = lop_wino_v(p, scratch), *dm = lop_wino_m(p, m, scratch);
    float *du = lop_wino_du(p, m, scratch);
    lop_wino_input(p, x, m, 0, p->c, v);
    lop_wino_grad_tiles(p, dy, m, 0, p->o, dm);
    lop_wino_wgrad_products(p, v, dm, m, 0, p->positions, du);
    lop_wino_wgrad_fold(p, du, 0, (size_t)p->o * p->c, dw);
}
