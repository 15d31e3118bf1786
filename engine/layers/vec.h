/*
 * vec.h - the one vector type of the engine's hand-vectorised kernels (conv_stencil.c,
 * the Winograd transforms), in GCC / clang vector extensions so that the same source
 * builds for AVX-512, AVX2 or narrower ISAs (which split each vector), and the
 * operations on it that the compilers do not give: loads and stores of the first n
 * lanes, a strided gather, packing selected lanes out of a vector and spreading them
 * back, and the (de)interleaving of two vectors' lanes.  Every file built on it must
 * see the same VEC_LANES (the Makefile gives them the same -march).
 */
#ifndef LOPPER_VEC_H
#define LOPPER_VEC_H

#ifdef __AVX512F__
#include <immintrin.h>
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

/* Lanes [0, n) of a vector from p[0..n), 0 <= n <= VEC_LANES, the others 0; nothing
 * past p[n - 1] is read. */
static inline vec vec_load_first(const float *p, int n)
{
#ifdef __AVX512F__
    return (vec)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
#else
    vec v = {0};
    for (int l = 0; l < n; l++)
        v[l] = p[l];
    return v;
#endif
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
#else
    for (int l = 0; l < n; l++)
        p[l] = v[l];
#endif
}

/* The lanes of v that mask selects (bit l for lane l), stored in order at p[0..):
 * as many floats as mask has bits. */
static inline void vec_store_selected(float *p, vec v, unsigned mask)
{
#ifdef __AVX512F__
    __m512 packed = _mm512_maskz_compress_ps((__mmask16)mask, (__m512)v);
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << __builtin_popcount(mask)) - 1), packed);
#else
    for (int l = 0, k = 0; l < VEC_LANES; l++)
        if (mask >> l & 1)
            p[k++] = v[l];
#endif
}

/* vec_store_selected undone in registers: v's first lanes spread in order over the
 * lanes that mask selects, the others 0. */
static inline vec vec_spread(vec v, unsigned mask)
{
#ifdef __AVX512F__
    return (vec)_mm512_maskz_expand_ps((__mmask16)mask, (__m512)v);
#else
    vec s = {0};
    for (int l = 0, k = 0; l < VEC_LANES; l++)
        if (mask >> l & 1)
            s[l] = v[k++];
    return s;
#endif
}

/* The lanes of a and b alternated: lo = a0 b0 a1 b1 ..., hi its second half. */
static inline void vec_interleave(vec a, vec b, vec *lo, vec *hi)
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

/* vec_interleave undone: the even and the odd lanes of the 2 * VEC_LANES floats lo, hi. */
static inline void vec_deinterleave(vec lo, vec hi, vec *even, vec *odd)
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

#endif
