/*
 * combine.c - selection statistics for a channel group that several layers read.  A
 * residual stage's channels feed every block of the stage and the next stage's first
 * block (or the classifier); a channel is worth keeping by what all of them lose
 * without it.  Each layer's sampled Gram A and cross term r are divided by that
 * layer's output energy yy and summed, so the selection rules, unchanged, minimise
 * the sum of the layers' relative reconstruction errors.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

int lop_stats_combine(const lop_stats *const *parts, int nparts, lop_stats *out)
{
    if (nparts < 1 || !parts || !parts[0] || !parts[0]->A)
        return lop_fail(LOP_EINVAL, "stats_combine: no statistics to combine");
    const int c = parts[0]->c;
    for (int i = 1; i < nparts; i++) {
        if (!parts[i] || !parts[i]->A)
            return lop_fail(LOP_EINVAL, "stats_combine: part %d has no statistics", i + 1);
        if (parts[i]->c != c)
            return lop_fail(LOP_ESHAPE, "stats_combine: part %d has %d channels, part 1 has "
                            "%d", i + 1, parts[i]->c, c);
        if (parts[i]->generation != parts[0]->generation)
            return lop_fail(LOP_ESTATE, "stats_combine: part %d was sampled from another "
                            "state of the network", i + 1);
    }
    lop_stats s = {0};
    s.node = parts[0]->node;
    s.generation = parts[0]->generation;
    s.c = c;
    s.A = lop_calloc((size_t)c * c, sizeof *s.A);
    s.r = lop_calloc((size_t)c, sizeof *s.r);
    s.wnorm = lop_calloc((size_t)c, sizeof *s.wnorm);
    if (!s.A || !s.r || !s.wnorm) {
        lop_stats_free(&s);
        return LOP_ENOMEM;
    }
    for (int i = 0; i < nparts; i++) {
        const lop_stats *p = parts[i];
        const double unit = p->yy > 0 ? 1.0 / p->yy : 0;   /* a dead layer counts nothing */
        for (size_t e = 0; e < (size_t)c * c; e++)
            s.A[e] += unit * p->A[e];
        for (int j = 0; j < c; j++) {
            s.r[j] += unit * p->r[j];
            s.wnorm[j] += unit * p->wnorm[j] * p->wnorm[j];
        }
        s.m += p->m;
        s.yy += p->yy > 0 ? 1 : 0;
    }
    for (int j = 0; j < c; j++)
        s.wnorm[j] = sqrt(s.wnorm[j]);
    *out = s;
    return LOP_OK;
}
