/*
 * rng.c - xoshiro256** seeded through splitmix64: fast, small, and the same sequence
 * on every machine, so seeded shuffles, crops and initialisations are repeatable.
 */
#include <math.h>

#include "lopper.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void lop_rng_seed(lop_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t lop_rng_u64(lop_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double lop_rng_uniform(lop_rng *r)
{
    return (double)(lop_rng_u64(r) >> 11) * 0x1.0p-53;
}

double lop_rng_normal(lop_rng *r)
{
    /* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]. */
    double u = 1.0 - lop_rng_uniform(r), v = lop_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

int lop_rng_below(lop_rng *r, int n)
{
    return n <= 1 ? 0 : (int)(lop_rng_uniform(r) * n);
}
