/*
 * clock.c - the engine's one clock: seconds on a monotonic clock, for the per-node
 * timing of a forward pass (graph/) and for callers that measure rates and ETAs (the
 * Lua progress line), kept at the bottom so no subsystem borrows it from another.
 */
#include <time.h>

#include "lopper.h"

double lop_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
