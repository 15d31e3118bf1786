/*
 * vec.h - the one vector type of the engine's hand-vectorised kernels (conv_stencil.c,
 * the Winograd transforms), in GCC / clang vector extensions so that the same source
 * builds for AVX-512, AVX2 or narrower ISAs (which split each vector), and the
 * operations on it that the compilers do not give: loads and stores of the first n
 * lanes or of a range of them, a strided gather, packing selected lanes out of a
 * vector and spreading them back, and splitting a row of tiles by column and joining
 * it again - each in AVX-512 or AVX2 instructions where the build has them, else lane
 * by lane (which made the Winograd transforms 2-3x slower than the stencil kernel on
 * an AVX2 machine).  Every file built on it must see the same VEC_LANES (the Makefile
 * gives them the same -march).
 */
#ifndef LOPPER_VEC_H
#define LOPPER_VEC_H

#include <stddef.h>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* AVX2 without AVX-512 has masked loads and stores, gathers and a lane permute, but no
 * compress or expand: those are built from the permute (vec_store_selected,
 * vec_spread). */
#if !defined(__AVX512F__) && defined(__AVX2__)
#define VEC_AVX2 1
#endif

/* One vector of floats: 16 with AVX-512, else 8, naturally aligned as a variable;
 * float arrays are read and written through vec_unaligned (vec_load, vec_store),
 * which may be unaligned and alias them. */
#ifdef __AVX512F__
#define VEC_LANES 16
#else
#define VEC_LANES 8
#endif
typedef float vec __attribute__((vector_size(VEC_LANES * sizeof(float))));
typedef float vec_unaligned __attribute__((vector_size(VEC_LANES * sizeof(float)),
                                           aligned(4), may_alias));

/* An empty statement that needs v in a vector register (x86 with AVX, where a vec
 * fits one; elsewhere nothing): keeps the compiler from spilling an accumulator. */
#if defined(__AVX__) && (defined(__x86_64__) || defined(__i386__))
#define IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define IN_REGISTER(v) ((void)0)
#endif

static inline vec vec_load(const float *p)
{
    return *(const vec_unaligned *)p;
}

static inline void vec_store(float *p, vec v)
{
    *(vec_unaligned *)p = v;
}

#ifdef VEC_AVX2
/* All ones in lanes [0, n), zero in the others: AVX2's load and store mask. */
static inline __m256i vec_avx2_first_lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* All ones in lanes [lo, hi), zero in the others. */
static inline __m256i vec_avx2_lanes(int lo, int hi)
{
    return _mm256_andnot_si256(vec_avx2_first_lanes(lo), vec_avx2_first_lanes(hi));
}
#endif

/* Lanes [0, n) of a vector from p[0..n), 0 <= n <= VEC_LANES, the others 0; nothing
 * past p[n - 1] is read. */
static inline vec vec_load_first(const float *p, int n)
{
#ifdef __AVX512F__
    return (vec)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
#elif defined(VEC_AVX2)
    return n == VEC_LANES ? vec_load(p) : (vec)_mm256_maskload_ps(p, vec_avx2_first_lanes(n));
#else
    vec v = {0};
    for (int l = 0; l < n; l++)
        v[l] = p[l];
    return v;
#endif
}

/* Lanes [lo, hi) of a vector from p[lo .. hi), 0 <= lo <= hi <= VEC_LANES, the others
 * 0; nothing else of p is read (p itself may point before an array whose first float
 * is p[lo]). */
static inline vec vec_load_lanes(const float *p, int lo, int hi)
{
#ifdef __AVX512F__
    return (vec)_mm512_maskz_loadu_ps((__mmask16)((1u << hi) - (1u << lo)), p);
#elif defined(VEC_AVX2)
    if (lo == 0 && hi == VEC_LANES)
        return vec_load(p);
    return (vec)_mm256_maskload_ps(p, vec_avx2_lanes(lo, hi));
#else
    vec v = {0};
    for (int l = lo; l < hi; l++)
        v[l] = p[l];
    return v;
#endif
}

/* vec_load_lanes where all of p[0 .. VEC_LANES) may be read: on AVX2 loaded whole and
 * the other lanes cleared, since Zen 1's masked load (vmaskmovps) stalls the loads
 * behind it.  conv_winograd.c's input transforms, whose edge tiles' rows are partial
 * loads, on one thread at batch 64: F(4x4) 32 -> 32 on 16x16 1.55 -> 1.35 ms, F(2x2)
 * 64 -> 64 on 8x8 1.5 -> 0.85. */
static inline vec vec_load_lanes_readable(const float *p, int lo, int hi)
{
#ifdef VEC_AVX2
    if (lo == 0 && hi == VEC_LANES)
        return vec_load(p);
    return (vec)_mm256_and_ps(_mm256_loadu_ps(p), _mm256_castsi256_ps(vec_avx2_lanes(lo, hi)));
#else
    return vec_load_lanes(p, lo, hi);
#endif
}

/* The lanes of a and b together, where each has zeros in the lanes the other holds
 * (bit by bit: a zero's sign is kept). */
static inline vec vec_merge(vec a, vec b)
{
    typedef int bits __attribute__((vector_size(VEC_LANES * sizeof(int))));
    return (vec)((bits)a | (bits)b);
}

/* Lanes [0, n) of a vector from p[0], p[stride], ..., p[(n - 1) * stride], the others
 * 0; nothing else is read. */
static inline vec vec_gather_first(const float *p, int stride, int n)
{
#ifdef __AVX512F__
    __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i at = _mm512_mullo_epi32(lane, _mm512_set1_epi32(stride));
    return (vec)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), (__mmask16)((1u << n) - 1),
                                         at, p, 4);
#elif defined(VEC_AVX2)
    __m256i at = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                    _mm256_set1_epi32(stride));
    return (vec)_mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, at,
                                         _mm256_castsi256_ps(vec_avx2_first_lanes(n)), 4);
#else
    vec v = {0};
    for (int l = 0; l < n; l++)
        v[l] = p[(size_t)l * stride];
    return v;
#endif
}

/* Stores lanes [0, n) of v at p[0..n), 0 < n <= VEC_LANES, and nothing past them. */
static inline void vec_store_first(float *p, vec v, int n)
{
#ifdef __AVX512F__
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
#elif defined(VEC_AVX2)
    /* halves, pairs and singles: AMD's masked stores are microcoded and slow */
    if (n == VEC_LANES) {
        vec_store(p, v);
        return;
    }
    __m128 part = _mm256_castps256_ps128((__m256)v);
    if (n >= 4) {
        _mm_storeu_ps(p, part);
        part = _mm256_extractf128_ps((__m256)v, 1);
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi((__m64 *)p, part);
        part = _mm_movehl_ps(part, part);
        p += 2;
        n -= 2;
    }
    if (n)
        _mm_store_ss(p, part);
#else
    for (int l = 0; l < n; l++)
        p[l] = v[l];
#endif
}

/* Lanes [lo, hi) of v into p[lo .. hi), 0 <= lo <= hi <= VEC_LANES; nothing else of p
 * is written. */
static inline void vec_store_lanes(float *p, vec v, int lo, int hi)
{
#ifdef __AVX512F__
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << hi) - (1u << lo)), (__m512)v);
#elif defined(VEC_AVX2)
    if (lo > 0)   /* lane lo to the front, then vec_store_first's plain stores */
        v = (vec)_mm256_permutevar8x32_ps(
            (__m256)v, _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                        _mm256_set1_epi32(lo)));
    vec_store_first(p + lo, v, hi - lo);
#else
    for (int l = lo; l < hi; l++)
        p[l] = v[l];
#endif
}

/* A row of tiles split by column (vec_split2_of, vec_split4_of) lies in its vectors'
 * lanes in an order of the build's choosing: in order on AVX-512 and in the portable
 * build, and on AVX2 in the order in-lane shuffles leave them (each 128-bit half
 * gathers its own tiles), since AVX2's lane-crossing permutes cost several times more.
 * vec_store_selected and vec_spread take the order and put the tiles back in order. */
typedef enum { VEC_IN_ORDER, VEC_SPLIT2, VEC_SPLIT4 } vec_order;

#ifdef VEC_AVX2
/* Byte t: the lane that holds tile t. */
static inline unsigned long long vec_lane_of_tile(vec_order o)
{
    return o == VEC_SPLIT4 ? 0x0703060205010400ull
           : o == VEC_SPLIT2 ? 0x0706030205040100ull : 0x0706050403020100ull;
}

/* Byte l: the tile that lane l holds. */
static inline unsigned long long vec_tile_of_lane(vec_order o)
{
    return o == VEC_SPLIT4 ? 0x0705030106040200ull
           : o == VEC_SPLIT2 ? 0x0706030205040100ull : 0x0706050403020100ull;
}

/* Byte k: the lane of the k-th tile that mask selects (in order o).  vec_store_selected
 * and vec_spread build their permutes' lane indices bit by bit: BMI2's pext and pdep
 * would pack and spread them in one instruction each, but AMD before Zen 3 runs those
 * in microcode, about 4 cycles per set bit of their mask, so a vector's 64-bit byte
 * mask cost a few hundred cycles.  Built bit by bit, once per vector of tiles (the
 * tiles selected are the same at each of its positions), on Zen 1, one thread, batch
 * 64: F(4x4) on 16 -> 16 channels of 32x32 maps input transform 3.0-3.4 -> 2.5 ms,
 * output 2.7-3.0 -> 1.5; F(2x2) on 64 -> 64 of 8x8 input 2.0 -> 1.1, output 1.3 -> 0.4;
 * whole networks (VGG-16, ResNet-20, ResNet-56 at 32x32) 17-21% faster. */
static inline unsigned long long vec_avx2_packed_lanes(unsigned mask, vec_order o)
{
    unsigned long long lanes = vec_lane_of_tile(o), from = 0;
    for (int k = 0; mask; mask &= mask - 1, k += 8)
        from |= (lanes >> 8 * __builtin_ctz(mask) & 0xff) << k;
    return from;
}
#endif

/* The tiles of v (in order o) that mask selects (bit t for tile t), stored in the
 * tiles' order at p[0..): as many floats as mask has bits. */
static inline void vec_store_selected(float *p, vec v, unsigned mask, vec_order o)
{
#ifdef __AVX512F__
    (void)o;
    if ((mask & (mask + 1)) == 0) {   /* the first tiles: already in place */
        _mm512_mask_storeu_ps(p, (__mmask16)mask, (__m512)v);
        return;
    }
    __m512 packed = _mm512_maskz_compress_ps((__mmask16)mask, (__m512)v);
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << __builtin_popcount(mask)) - 1), packed);
#elif defined(VEC_AVX2)
    unsigned long long from = vec_avx2_packed_lanes(mask, o);
    __m256i at = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)from));
    vec_store_first(p, (vec)_mm256_permutevar8x32_ps((__m256)v, at),
                    __builtin_popcount(mask));
#else
    (void)o;
    for (int l = 0, k = 0; l < VEC_LANES; l++)
        if (mask >> l & 1)
            p[k++] = v[l];
#endif
}

/* v clamped lane by lane to [lo, hi]: min(max(v, lo), hi) as relu's v > lo ? v : lo
 * computes it (lo where v is NaN). */
static inline vec vec_clamp(vec v, vec lo, vec hi)
{
#ifdef __AVX512F__
    return (vec)_mm512_min_ps(_mm512_max_ps((__m512)v, (__m512)lo), (__m512)hi);
#elif defined(__AVX__)
    return (vec)_mm256_min_ps(_mm256_max_ps((__m256)v, (__m256)lo), (__m256)hi);
#else
    for (int l = 0; l < VEC_LANES; l++) {
        float x = v[l] > lo[l] ? v[l] : lo[l];
        v[l] = x < hi[l] ? x : hi[l];
    }
    return v;
#endif
}

/* The sum of v's lanes, halves added to halves (the same order on every call). */
static inline float vec_sum(vec v)
{
#ifdef __AVX512F__
    __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd((__m512)v), 1));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256((__m512)v), high);
#elif defined(__AVX__)
    __m256 h = (__m256)v;
#endif
#if defined(__AVX__)
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
#else
    for (int half = VEC_LANES / 2; half > 0; half /= 2)
        for (int l = 0; l < half; l++)
            v[l] += v[l + half];
    return v[0];
#endif
}

/* vec_store_selected undone in registers: v's first lanes spread in order over the
 * tiles that mask selects, laid out in order o, the other lanes 0. */
static inline vec vec_spread(vec v, unsigned mask, vec_order o)
{
#ifdef __AVX512F__
    (void)o;
    if ((mask & (mask + 1)) == 0)   /* the first tiles: already in place */
        return (vec)_mm512_maskz_mov_ps((__mmask16)mask, (__m512)v);
    return (vec)_mm512_maskz_expand_ps((__mmask16)mask, (__m512)v);
#elif defined(VEC_AVX2)
    /* lane l takes the rank among the selected tiles of the tile it holds, or is
     * cleared */
    unsigned long long tiles = vec_tile_of_lane(o), from = 0, keep = 0;
    for (int l = 0; l < VEC_LANES; l++) {
        unsigned tile = (unsigned)(tiles >> 8 * l & 0xff);
        if (mask >> tile & 1) {
            unsigned rank = (unsigned)__builtin_popcount(mask & ((1u << tile) - 1));
            from |= (unsigned long long)rank << 8 * l;
            keep |= 0xffull << 8 * l;
        }
    }
    __m256i at = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)from));
    __m256i kept = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128((long long)keep));
    return (vec)_mm256_and_ps(_mm256_permutevar8x32_ps((__m256)v, at),
                              _mm256_castsi256_ps(kept));
#else
    (void)o;
    vec s = {0};
    for (int l = 0, k = 0; l < VEC_LANES; l++)
        if (mask >> l & 1)
            s[l] = v[k++];
    return s;
#endif
}

/* The even and the odd lanes of the 2 VEC_LANES floats lo, hi, in order: the split of
 * the builds that keep tiles in order. */
static inline void vec_evens_odds(vec lo, vec hi, vec *even, vec *odd)
{
#if VEC_LANES == 16
    *even = __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                    26, 28, 30);
    *odd = __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25,
                                   27, 29, 31);
#else
    *even = __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14);
    *odd = __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15);
#endif
}

/* The n floats at p (0 <= n <= 2 VEC_LANES; nothing past them is read) split by
 * parity: even[i] = p[2i], odd[i] = p[2i + 1], the lanes past the floats 0 - a
 * stride-2 row read a vector of outputs at a time. */
static inline void vec_load_evens_odds(const float *p, int n, vec *even, vec *odd)
{
    vec zero = {0};
    vec lo = vec_load_first(p, n < VEC_LANES ? n : VEC_LANES);
    vec hi = n <= VEC_LANES ? zero
             : vec_load_first(p + VEC_LANES, n < 2 * VEC_LANES ? n - VEC_LANES : VEC_LANES);
    vec_evens_odds(lo, hi, even, odd);
}

/* vec_evens_odds undone: the lanes of a and b alternated, lo = a0 b0 a1 b1 ..., hi its
 * second half. */
static inline void vec_alternate(vec a, vec b, vec *lo, vec *hi)
{
#if VEC_LANES == 16
    *lo = __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7,
                                  23);
    *hi = __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14,
                                  30, 15, 31);
#else
    *lo = __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11);
    *hi = __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15);
#endif
}

/* The VEC_LANES tiles of two columns in lo then hi (each VEC_LANES / 2 tiles): c0 and
 * c1 their first and second columns, in order VEC_SPLIT2. */
static inline void vec_split2_of(vec lo, vec hi, vec *c0, vec *c1)
{
#ifdef VEC_AVX2
    *c0 = (vec)_mm256_shuffle_ps((__m256)lo, (__m256)hi, _MM_SHUFFLE(2, 0, 2, 0));
    *c1 = (vec)_mm256_shuffle_ps((__m256)lo, (__m256)hi, _MM_SHUFFLE(3, 1, 3, 1));
#else
    vec_evens_odds(lo, hi, c0, c1);
#endif
}

/* vec_split2_of undone: the columns c0, c1 (order VEC_SPLIT2) as the row's two
 * vectors out[0], out[1]. */
static inline void vec_join2_of(vec c0, vec c1, vec out[2])
{
#ifdef VEC_AVX2
    out[0] = (vec)_mm256_unpacklo_ps((__m256)c0, (__m256)c1);
    out[1] = (vec)_mm256_unpackhi_ps((__m256)c0, (__m256)c1);
#else
    vec_alternate(c0, c1, &out[0], &out[1]);
#endif
}

/* The VEC_LANES tiles of four columns in a[0..3] (each VEC_LANES / 4 tiles): q[k] their
 * columns k, in order VEC_SPLIT4. */
static inline void vec_split4_of(const vec a[4], vec q[4])
{
#ifdef VEC_AVX2
    /* each 128-bit half of a vector is one tile: a 4 x 4 transpose within the halves */
    __m256 a0 = (__m256)a[0], a1 = (__m256)a[1], a2 = (__m256)a[2], a3 = (__m256)a[3];
    __m256 lo01 = _mm256_unpacklo_ps(a0, a1), lo23 = _mm256_unpacklo_ps(a2, a3);
    __m256 hi01 = _mm256_unpackhi_ps(a0, a1), hi23 = _mm256_unpackhi_ps(a2, a3);
    q[0] = (vec)_mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(1, 0, 1, 0));
    q[1] = (vec)_mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(3, 2, 3, 2));
    q[2] = (vec)_mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(1, 0, 1, 0));
    q[3] = (vec)_mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(3, 2, 3, 2));
#else
    vec e0, o0, e1, o1;
    vec_split2_of(a[0], a[1], &e0, &o0);
    vec_split2_of(a[2], a[3], &e1, &o1);
    vec_evens_odds(e0, e1, &q[0], &q[2]);
    vec_evens_odds(o0, o1, &q[1], &q[3]);
#endif
}

/* The nine taps of n 3x3 kernels, each kernel's 9 floats contiguous and `stride`
 * floats after the previous one's: g[i] lane l = p[l * stride + i] for l < n, 0 for
 * the lanes past n; nothing else is read.  The Winograd weight transform's input: on
 * AVX-512 and AVX2 the kernels are loaded as rows and transposed in registers, 4-5x
 * faster than nine gathers on AVX-512 (which took 55% of a batch-1 512-channel F(2x2)
 * pass that makes its weights) and 3x faster on AVX2 (Zen 1, one thread: a 512 x 512
 * layer's kernels 2.8 -> 0.9 ms, as fast as they come from memory; ResNet-18's
 * 512-channel layers at batch 1, which make their weights each pass, 3.7 -> 2.9 ms on
 * two threads). */
static inline void vec_gather_kernels(const float *p, int stride, int n, vec g[9])
{
#ifdef __AVX512F__
    __m512 r[16], a[16], b[16];
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++)
        r[l] = l < n ? _mm512_maskz_loadu_ps(0x1ff, p + (size_t)l * stride)
                     : _mm512_setzero_ps();
    /* 16 x 16 transpose, only as far as the first 9 columns: pairs of rows
     * interleaved, then 4 x 4 blocks within each 128-bit lane, then across lanes */
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {   /* b[4i + j], lane L: column 4L + j of rows 4i.. */
        b[4 * i] = _mm512_shuffle_ps(a[4 * i], a[4 * i + 2], 0x44);
        b[4 * i + 1] = _mm512_shuffle_ps(a[4 * i], a[4 * i + 2], 0xee);
        b[4 * i + 2] = _mm512_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0x44);
        b[4 * i + 3] = _mm512_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512 even0 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0x88);   /* lanes 0, 2 */
        __m512 even1 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0x88);
        __m512 odd0 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0xdd);    /* lanes 1, 3 */
        __m512 odd1 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0xdd);
        g[j] = (vec)_mm512_shuffle_f32x4(even0, even1, 0x88);         /* column j */
        g[4 + j] = (vec)_mm512_shuffle_f32x4(odd0, odd1, 0x88);       /* column 4 + j */
        if (j == 0)
            g[8] = (vec)_mm512_shuffle_f32x4(even0, even1, 0xdd);     /* column 8 */
    }
#elif defined(VEC_AVX2)
    /* Taps 0-7 of each kernel loaded as a row and transposed in registers (a 4 x 4
     * transpose within the halves of rows 0-3 and of rows 4-7, then the halves
     * joined), tap 8 one float a kernel: Zen 1 runs a gather as microcode, one lane at
     * a time */
    vec r[8], b[8];
    float last[8];
#pragma GCC unroll 8
    for (int l = 0; l < 8; l++) {
        r[l] = l < n ? vec_load(p + (size_t)l * stride) : (vec){0};
        last[l] = l < n ? p[(size_t)l * stride + 8] : 0.0f;
    }
    vec_split4_of(r, b);       /* b[j], half h: column 4h + j of rows 0-3 */
    vec_split4_of(r + 4, b + 4);   /* ... of rows 4-7 */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        g[j] = (vec)_mm256_permute2f128_ps((__m256)b[j], (__m256)b[4 + j], 0x20);
        g[4 + j] = (vec)_mm256_permute2f128_ps((__m256)b[j], (__m256)b[4 + j], 0x31);
    }
    /* in registers: stored one float at a time and loaded as a vector, they waited for
     * the stores to retire (store forwarding fails), a fifth of the transform's time */
    g[8] = (vec)_mm256_setr_ps(last[0], last[1], last[2], last[3], last[4], last[5],
                               last[6], last[7]);
#else
    for (int i = 0; i < 9; i++)
        g[i] = vec_gather_first(p + i, stride, n);
#endif
}

/* Four consecutive floats from each of n places `stride` floats apart (a 2x2 map of
 * each of n images), one vector each: q[j] lane l = p[l * stride + j] for l < n, 0 for
 * the lanes past n (all of them when n <= 0); nothing else is read.  On AVX2 each
 * place's four are loaded together and transposed (vec_split4_of, whose halves then
 * hold images 0-3 and 4-7 in order) instead of four gathers, which Zen 1 runs as
 * microcode (conv_taps.c's forward on 2x2 maps, 512 -> 512 at batch 64, one thread:
 * 12.5 -> 10.7-11.5 ms). */
static inline void vec_gather_quads(const float *p, int stride, int n, vec q[4])
{
#ifdef VEC_AVX2
    __m128 four[8];
#pragma GCC unroll 8
    for (int l = 0; l < 8; l++)
        four[l] = l < n ? _mm_loadu_ps(p + (size_t)l * stride) : _mm_setzero_ps();
    vec a[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)   /* place k in the low half, place k + 4 in the high */
        a[k] = (vec)_mm256_insertf128_ps(_mm256_castps128_ps256(four[k]), four[k + 4], 1);
    vec_split4_of(a, q);
#else
    for (int j = 0; j < 4; j++)
        q[j] = n > 0 ? vec_gather_first(p + j, stride, n) : (vec){0};
#endif
}

/* vec_split4_of undone: the columns q[0..3] (order VEC_SPLIT4) as the row's four
 * vectors out[0..3]. */
static inline void vec_join4_of(const vec q[4], vec out[4])
{
#ifdef VEC_AVX2
    __m256 lo01 = _mm256_unpacklo_ps((__m256)q[0], (__m256)q[1]);
    __m256 lo23 = _mm256_unpacklo_ps((__m256)q[2], (__m256)q[3]);
    __m256 hi01 = _mm256_unpackhi_ps((__m256)q[0], (__m256)q[1]);
    __m256 hi23 = _mm256_unpackhi_ps((__m256)q[2], (__m256)q[3]);
    out[0] = (vec)_mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(1, 0, 1, 0));
    out[1] = (vec)_mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(3, 2, 3, 2));
    out[2] = (vec)_mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(1, 0, 1, 0));
    out[3] = (vec)_mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(3, 2, 3, 2));
#else
    vec even0, even1, odd0, odd1;
    vec_alternate(q[0], q[2], &even0, &even1);
    vec_alternate(q[1], q[3], &odd0, &odd1);
    vec_join2_of(even0, odd0, out);
    vec_join2_of(even1, odd1, out + 2);
#endif
}

#endif
