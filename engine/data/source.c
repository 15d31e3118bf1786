/*
 * source.c - the streamed half of a data set: a lop_source shared by a data set, its
 * subsets and the loaders reading it (an atomic reference count, since loaders run
 * threads of their own), one item read through it with the batch augmentation on top,
 * and the count of bad images that skip_bad leaves out.  Reading runs on loaders'
 * worker threads, so nothing here calls lop_fail: a message goes to the caller's
 * buffer, and the caller's thread reports it.
 */
#include <stdio.h>

#include "internal.h"

/* The augmentation's stream is the item seed's, moved off the one a source seeding
 * its own rng with the same seed draws from, so the two transforms are independent. */
#define AUGMENT_STREAM 0xd1b54a32d192ed03ull

lop_source *lop_source_retain(lop_source *s)
{
    if (s)
        __atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void lop_source_release(lop_source *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0 && s->destroy)
        s->destroy(s);
}

uint64_t lop_item_seed(lop_rng *rng)
{
    uint64_t seed = lop_rng_u64(rng);
    return seed ? seed : 1;
}

int lop_source_read_item(lop_source *s, int item, uint64_t seed, const lop_augment *aug,
                         float *out, float *scratch, char *why, size_t whylen)
{
    int augment = seed && aug && (aug->crop_pad || aug->flip);
    why[0] = '\0';
    int st = s->read(s, item, seed, augment ? scratch : out, why, whylen);
    if (st == LOP_OK) {
        if (augment) {
            lop_rng r;
            lop_rng_seed(&r, seed ^ AUGMENT_STREAM);
            lop_augment_apply(out, scratch, s->c, s->h, s->w, aug, &r);
        }
        return LOP_OK;
    }
    if (!why[0])
        snprintf(why, whylen, "%s item %d could not be read (%s)",
                 s->kind ? s->kind : "source", item, lop_status_name(st));
    return st > LOP_OK && st <= LOP_ECANCEL ? st : LOP_EIO;
}

void lop_source_note_skip(lop_source *s, const char *why)
{
    if (__atomic_fetch_add(&s->skipped, 1, __ATOMIC_ACQ_REL) == 0)
        snprintf(s->first_skipped, sizeof s->first_skipped, "%s", why);
}
