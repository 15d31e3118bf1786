/*
 * gradcheck.h - finite-difference check of a graph's analytic gradients, shared by
 * the layer tests: every layer's backward is verified against central differences,
 * and on gradient buffers left full of NaN by an earlier pass.
 */
#ifndef GRADCHECK_H
#define GRADCHECK_H

#include "lopper.h"

/* For loss = sum(output .* R) with a seeded random R, compare the analytic gradient
 * w.r.t. the input x and every trainable parameter with central finite differences
 * of step h (at most 48 sampled entries per tensor).  Returns the worst relative
 * error |a - n| / max(1e-3, |a| + |n|), or a negative value if a graph call failed.
 * train selects the forward mode; dropout masks stay fixed (the rng is rewound). */
double gradcheck_graph(lop_graph *g, const lop_tensor *x, int train, double h,
                       uint64_t seed);

/* Backward passes must not read a gradient buffer nothing has written in the same
 * pass.  After one training pass at x (seeded random output gradient), every node's
 * activation gradient is filled with NaN; the next pass at x's batch size reuses those
 * buffers.  Returns 1 if one more pass leaves every activation and parameter gradient
 * finite (NaN leaks wherever a layer adds into an unwritten gradient), 0 if not, -1
 * if a graph call failed.  The buffers are left NaN again, so a gradcheck_graph at x
 * that follows runs on poisoned buffers too. */
int gradcheck_poisoned(lop_graph *g, const lop_tensor *x, uint64_t seed);

/* A tensor of the given shape with entries uniform in [-1, 1). */
lop_tensor *gradcheck_random(int ndim, const int *shape, uint64_t seed);

#endif
