/*
 * bench_winograd.c - the measurements behind conv.c's rules for Winograd F(2x2,3x3) and
 * F(4x4,3x3) and for the tap-by-tap path on small maps: one 3x3 pad-1 convolution
 * C -> O at batch 64 (and a small batch forward, 1 unless given), each pass timed on
 * the path conv.c would take without either (stencil or im2col), on F(2x2), on F(4x4)
 * and, on maps up to 4x4, tap by tap (conv_taps.c), interleaved round by round in one
 * process, on 1 and 2 threads; the fastest round of each is reported in ms, with the
 * ratios current / F(2x2), current / F(4x4) and current / taps (above 1: the other
 * path wins).  A third argument times only the maps up to that size.  Backward
 * (weight and input gradient together, as the layer runs them) is split by timing each
 * tile size's kernels alone on one thread.  Numbers are reported, never asserted.
 * `make build/bench_winograd && build/bench_winograd [rounds [small batch [largest map
 * [C:O:map,...]]]]`: the fourth argument times those shapes instead of the list below
 * (pruned widths, say).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/conv_taps.h"
#include "layers/conv_winograd.h"
#include "lopper.h"

enum { BATCH = 64, MODES = 4, TAPS_MAX_MAP = 4 };

typedef struct shape { int c, o, map; } shape;

static const shape shapes[] = {
    {16, 16, 32}, {16, 16, 16}, {16, 16, 8}, {16, 16, 4}, {16, 16, 2},
    {32, 32, 32}, {32, 32, 16}, {32, 32, 8}, {32, 32, 4}, {32, 32, 2},
    {64, 64, 32}, {64, 64, 16}, {64, 64, 8}, {64, 64, 4}, {64, 64, 2},
    {128, 128, 32}, {128, 128, 16}, {128, 128, 8}, {128, 128, 4}, {128, 128, 2},
    {256, 256, 16}, {256, 256, 8}, {256, 256, 4}, {256, 256, 2},
    {512, 512, 4}, {512, 512, 2},
    /* 3x3 and 1x1 maps, and pruned VGG-16's last stage (2x2) */
    {64, 64, 3}, {128, 128, 3}, {256, 256, 3}, {64, 64, 1}, {256, 256, 1},
    {128, 256, 2}, {256, 128, 2}, {128, 128, 2},
    {3, 64, 32}, {32, 64, 16}, {64, 128, 16}, {128, 256, 8}, {256, 512, 4}, {128, 64, 16},
    /* the 28x28 networks' maps (vgg-small, resnet-small) */
    {16, 16, 28}, {32, 32, 28}, {32, 32, 14}, {64, 64, 14}, {64, 64, 7}, {128, 128, 7},
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

enum { MAX_GIVEN = 64 };

/* "C:O:map,C:O:map,..." into out (at most MAX_GIVEN): how many, 0 if malformed. */
static int parse_shapes(const char *text, shape *out)
{
    int n = 0, used;
    while (n < MAX_GIVEN &&
           sscanf(text, "%d:%d:%d%n", &out[n].c, &out[n].o, &out[n].map, &used) == 3) {
        const shape *s = &out[n++];
        if (s->c < 1 || s->o < 1 || s->map < 1 || s->c > 4096 || s->o > 4096 || s->map > 4096)
            return 0;
        text += used;
        if (*text == '\0')
            return n;
        if (*text++ != ',')
            return 0;
    }
    return 0;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_winograd: %s: %s\n", what, lop_errmsg());
    exit(1);
}

static lop_tensor *random_tensor(int ndim, const int *dims, unsigned seed)
{
    lop_tensor *t = lop_tensor_new(ndim, dims);
    if (!t)
        die("tensor");
    for (size_t i = 0; i < t->numel; i++) {
        seed = seed * 1664525u + 1013904223u;
        t->data[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return t;
}

/* Fastest of `rounds` rounds, per mode (current, F(2x2), F(4x4), taps) interleaved, of the
 * forward at batch 64, backward at batch 64 and forward at batch `small` (ms per
 * pass). */
static void time_layer(const shape *s, int rounds, int small, double best[MODES][3])
{
    lop_graph *g = lop_graph_new(1);
    lop_attrs in = lop_attrs_input(s->c, s->map, s->map), a = lop_attrs_default();
    a.out_channels = s->o;
    a.kernel_h = a.kernel_w = 3;
    a.pad_h = a.pad_w = 1;
    int x, id;
    if (lop_graph_add(g, LOP_INPUT, "x", NULL, 0, &in, &x) != LOP_OK ||
        lop_graph_add(g, LOP_CONV2D, "conv", &x, 1, &a, &id) != LOP_OK)
        die("graph");
    int xd[4] = {BATCH, s->c, s->map, s->map}, yd[4] = {BATCH, s->o, s->map, s->map};
    int x1[4] = {small, s->c, s->map, s->map};
    lop_tensor *xt = random_tensor(4, xd, 1), *dy = random_tensor(4, yd, 2);
    lop_tensor *one = random_tensor(4, x1, 3);
    double flops = 2.0 * s->c * s->o * 9 * s->map * s->map * BATCH;
    int reps = (int)(2e9 / flops) + 1, reps1 = reps * BATCH / small;
    if (reps > 20)
        reps = 20;
    if (reps1 > 200)
        reps1 = 200;
    for (int m = 0; m < MODES; m++)
        for (int p = 0; p < 3; p++)
            best[m][p] = 1e30;
    for (int r = 0; r < rounds; r++)
        for (int m = 0; m < MODES; m++) {
            if (m == 3 && s->map > TAPS_MAX_MAP)
                continue;
            lop_debug_conv_winograd(m == 3 ? 0 : 2 * m);   /* none, F(2x2), F(4x4) */
            lop_debug_conv_taps(m == 3);
            double t[3];
            double t0 = lop_seconds();
            for (int i = 0; i < reps; i++)
                if (lop_graph_forward(g, xt, 1) != LOP_OK)
                    die("forward");
            t[0] = (lop_seconds() - t0) / reps;
            t0 = lop_seconds();
            for (int i = 0; i < reps; i++)
                if (lop_graph_backward(g, dy) != LOP_OK)
                    die("backward");
            t[1] = (lop_seconds() - t0) / reps;
            t0 = lop_seconds();
            for (int i = 0; i < reps1; i++)
                if (lop_graph_forward(g, one, 0) != LOP_OK)
                    die("forward 1");
            t[2] = (lop_seconds() - t0) / reps1;
            for (int p = 0; p < 3; p++)
                if (1e3 * t[p] < best[m][p])
                    best[m][p] = 1e3 * t[p];
        }
    lop_debug_conv_winograd(-1);
    lop_debug_conv_taps(-1);
    lop_tensor_release(xt);
    lop_tensor_release(dy);
    lop_tensor_release(one);
    lop_graph_free(g);
}

/* The Winograd backward's two halves on one thread over the whole batch in chunks of
 * nb images (ms): weight gradient, input gradient. */
static void split_backward(const shape *s, int r, int nb, double *wgrad, double *dx)
{
    lop_wino f, d;
    lop_wino_plan(&f, r, s->c, s->map, s->map, s->o, 1, 1);
    lop_wino_plan(&d, r, s->o, s->map, s->map, s->c, 1, 1);
    int xd[4] = {BATCH, s->c, s->map, s->map}, yd[4] = {BATCH, s->o, s->map, s->map};
    int wd[4] = {s->o, s->c, 3, 3};
    lop_tensor *xt = random_tensor(4, xd, 1), *dy = random_tensor(4, yd, 2);
    lop_tensor *w = random_tensor(4, wd, 3), *dw = random_tensor(4, wd, 4);
    lop_tensor *dxt = random_tensor(4, xd, 5);
    size_t need = lop_wino_wgrad_floats(&f, nb), other = lop_wino_scratch_floats(&d, nb);
    float *scratch = malloc((need > other ? need : other) * sizeof *scratch);
    float *u = malloc(lop_wino_weight_floats(&d) * sizeof *u);
    if (!scratch || !u)
        die("scratch");
    *wgrad = *dx = 1e30;
    for (int round = 0; round < 3; round++) {
        double t0 = lop_seconds();
        for (int b = 0; b < BATCH; b += nb)
            lop_wino_wgrad(&f, xt->data + (size_t)b * s->c * s->map * s->map,
                           dy->data + (size_t)b * s->o * s->map * s->map,
                           BATCH - b < nb ? BATCH - b : nb, scratch, dw->data);
        double t1 = lop_seconds();
        lop_wino_pack(&d, w->data, 1, 0, d.o, u);
        for (int b = 0; b < BATCH; b += nb)
            lop_wino_chunk(&d, u, dy->data + (size_t)b * s->o * s->map * s->map,
                           BATCH - b < nb ? BATCH - b : nb, NULL, 1, scratch,
                           dxt->data + (size_t)b * s->c * s->map * s->map);
        double t2 = lop_seconds();
        if (1e3 * (t1 - t0) < *wgrad)
            *wgrad = 1e3 * (t1 - t0);
        if (1e3 * (t2 - t1) < *dx)
            *dx = 1e3 * (t2 - t1);
    }
    free(scratch);
    free(u);
    lop_tensor_release(xt);
    lop_tensor_release(dy);
    lop_tensor_release(w);
    lop_tensor_release(dw);
    lop_tensor_release(dxt);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3, small = argc > 2 ? atoi(argv[2]) : 1;
    int largest = argc > 3 ? atoi(argv[3]) : 1 << 30;
    const shape *list = shapes;
    int count = NSHAPES;
    shape given[MAX_GIVEN];
    if (argc > 4) {
        count = parse_shapes(argv[4], given);
        list = given;
    }
    if (rounds < 1 || small < 1 || small > BATCH || largest < 1 || count < 1) {
        fprintf(stderr, "usage: bench_winograd [rounds [small batch, 1..%d [largest map "
                "[C:O:map,... (up to %d, each 1..4096)]]]]\n", BATCH, MAX_GIVEN);
        return 1;
    }
    for (int threads = 2; threads >= 1; threads--) {
        if (lop_set_threads(threads) != LOP_OK)
            die("threads");
        printf("%d thread(s), batch %d, fastest of %d rounds, ms: current path, F(2x2), "
               "F(4x4), taps (ratios current / each)\n", threads, BATCH, rounds);
        printf("%-16s %-48s %-48s forward batch %-30d %s\n", "C->O map", "forward", "backward",
               small, "1-thread wgrad / dx F(2x2), F(4x4)");
        for (int i = 0; i < count; i++) {
            const shape *s = &list[i];
            if (s->map > largest)
                continue;
            double best[MODES][3];
            time_layer(s, rounds, small, best);
            printf("%4d->%-4d %2dx%-2d", s->c, s->o, s->map, s->map);
            for (int p = 0; p < 3; p++) {
                int taps = s->map <= TAPS_MAX_MAP;
                printf("  %7.3f/%7.3f/%7.3f/%7.3f=%4.2f/%4.2f/%4.2f", best[0][p], best[1][p],
                       best[2][p], taps ? best[3][p] : 0.0, best[0][p] / best[1][p],
                       best[0][p] / best[2][p], taps ? best[0][p] / best[3][p] : 0.0);
            }
            for (int r = 2; threads == 1 && r <= 4; r += 2) {
                int tiles = (s->map + r - 1) / r * ((s->map + r - 1) / r);
                int nb = (512 + tiles - 1) / tiles;
                nb = nb > 16 ? 16 : nb;
                double wg, dx;
                split_backward(s, r, nb, &wg, &dx);
                printf("  %7.3f / %7.3f", wg, dx);
            }
            printf("\n");
            fflush(stdout);
        }
    }
    return 0;
}
