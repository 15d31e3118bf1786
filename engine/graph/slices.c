/*
 * slices.c - which early nodes an evaluation pass runs a few images at a time, depth
 * first, and where each slice's activations live (graph.c's forward_slices).  At batch
 * 64 a thin network's early activations overflow the caches (ResNet-20's 16 channels
 * on 32x32: 4 MiB a tensor, some 50 MiB over a pass), so every layer writes its output
 * to memory and reads its input, and every residual block its shortcut, back from it.
 * Run through those layers SLICE_IMAGES images at a time, with the activations that
 * nothing after the slices reads kept in a few buffers that the slices reuse, a
 * slice's tensors stay in cache.  Measured one layer at a time at batch 8 against 64
 * (one thread, ms per 64 images): ResNet-20's 16- and 32-channel layers on 32x32 and
 * 16x16 maps 35-40% faster, VGG-16's 32- and 64-channel ones 10-15%; layers on 8x8
 * maps 10-35% slower (their products want more images than a slice has), and so are
 * wide layers on small maps.  So the slices cover the nodes from the input up to the
 * first whose map is smaller than SLICE_MIN_MAP or whose slice would outgrow
 * SLICE_MAX_FLOATS.  Whole passes at batch 64 (ms, one thread / two, without -> with
 * slices): ResNet-20 20.5 -> 14.0 / 10.7 -> 7.2, ResNet-56 53.3 -> 36.9 / 30.4 ->
 * 22.1, resnet-small 16.9 -> 11.7 / 9.3 -> 6.7.  With slices of up to 1 MiB a node,
 * VGG-16 (32 channels on 32x32 first) and vgg-small also ran sliced: 1.1-1.3x faster on
 * one thread, but 1.05-1.2x slower on two (a slice's layers too short to share), so the
 * bound is half an L2 and they run whole.  The rule reads shapes alone, never the
 * number of threads, so a pass gives the same bits on any number of them.
 */
#include <limits.h>

#include "internal.h"

enum {
    SLICE_IMAGES = 8,
    /* 13x13 and larger maps: at least 16 F(4x4) tiles an image, so that a slice's 8
     * images fill the 128 tiles a Winograd chunk is sized for */
    SLICE_MIN_MAP = 13 * 13,
    SLICE_MAX_FLOATS = 1 << 17,   /* one node's output for a slice: 512 KiB, half an L2 */
};

/* lop_debug_forward_slices's choice: images per slice (0: no slices), -1 the rule. */
static int slice_mode = -1;

void lop_debug_forward_slices(int images)
{
    slice_mode = images >= 0 ? images : -1;
}

/* Whether node n's output suits slices of `images` images. */
static int suits(const lop_node *n, int images)
{
    if (n->ndim != 3 || n->dims[1] * n->dims[2] < SLICE_MIN_MAP)
        return 0;
    size_t floats = (size_t)images * lop_shape_numel(n->ndim, n->dims);
    return slice_mode >= 0 || floats <= SLICE_MAX_FLOATS;
}

/* The last node of the sliced prefix of 0..last (0: none).  A fused chain's nodes
 * share one shape, so the prefix never ends inside a chain. */
static int prefix_end(const lop_graph *g, int last, int images)
{
    int end = 0;
    while (end < last && suits(g->nodes[end + 1], images))
        end++;
    return end;
}

/* Where the prefix's outputs go (s->place): the input, the last node asked for and
 * every node a later node reads into their whole tensors; the others, read only
 * within the slices, into pool buffers, a buffer reused once every reader of its last
 * owner has run.  A chain's output is written when its head runs; a node reads its
 * inputs when it runs, or (fused away) no later than that. */
static int assign_places(const lop_graph *g, int last, const int *fused, lop_slices *s)
{
    int end = s->end;
    int *last_read = lop_malloc(((size_t)end + 1) * sizeof *last_read);
    int *owner = lop_malloc(((size_t)end + 1) * sizeof *owner);   /* of each buffer */
    if (!last_read || !owner) {
        lop_free(last_read);
        lop_free(owner);
        return LOP_ENOMEM;
    }
    for (int i = 0; i <= end; i++) {
        last_read[i] = i == 0 || i == last ? INT_MAX : 0;
        s->place[i] = LOP_SLICE_UNWRITTEN;
    }
    for (int j = 1; j < g->n; j++)
        for (int k = 0; k < g->nodes[j]->ninputs; k++) {
            int i = g->nodes[j]->inputs[k];
            if (i <= end)
                last_read[i] = j > end ? INT_MAX : (j > last_read[i] ? j : last_read[i]);
        }
    s->buffers = 0;
    s->buffer_floats = 0;
    s->place[0] = LOP_SLICE_WHOLE;
    for (int t = 1; t <= end; t++) {   /* t: when node t (or its chain) runs */
        if (fused[t] == LOP_FUSED_AWAY)
            continue;
        int out = fused[t] >= 0 ? fused[t] : t;   /* the node whose output t writes */
        if (last_read[out] == INT_MAX) {
            s->place[out] = LOP_SLICE_WHOLE;
            continue;
        }
        int b = 0;
        while (b < s->buffers && last_read[owner[b]] >= t)
            b++;
        if (b == s->buffers)
            s->buffers++;
        owner[b] = out;
        s->place[out] = b;
        const lop_node *n = g->nodes[out];
        size_t floats = (size_t)s->images * lop_shape_numel(n->ndim, n->dims);
        if (floats > s->buffer_floats)
            s->buffer_floats = floats;
    }
    lop_free(last_read);
    lop_free(owner);
    return LOP_OK;
}

int lop_slices_plan(const lop_graph *g, int last, int batch, const int *fused, lop_slices *s)
{
    s->place = NULL;
    s->images = slice_mode >= 0 ? slice_mode : SLICE_IMAGES;
    s->end = s->images < 1 || batch <= s->images ? 0 : prefix_end(g, last, s->images);
    if (s->end == 0)
        return LOP_OK;
    /* slices as even as the batch allows: the largest takes images rounded up */
    int slices = (batch + s->images - 1) / s->images;
    s->images = (batch + slices - 1) / slices;
    s->place = lop_malloc(((size_t)s->end + 1) * sizeof *s->place);
    if (!s->place)
        return LOP_ENOMEM;
    int st = assign_places(g, last, fused, s);
    if (st == LOP_OK && (size_t)s->buffers * s->buffer_floats > INT_MAX)
        st = lop_fail(LOP_ENOMEM, "forward: slice buffers of %d x %zu floats", s->buffers,
                      s->buffer_floats);
    if (st != LOP_OK) {
        lop_free(s->place);
        s->place = NULL;
    }
    return st;
}
