/*
 * groups.c - channel groups: which channel axes of a graph must shrink together.
 * Every node's output channel axis is described as a layout, a list of segments
 * (channel space, position on the axis, features per channel); walking the graph in
 * order creates spaces at conv2d/linear, passes layouts through per-channel layers,
 * merges spaces at add (union-find), concatenates layouts at concat and widens blocks
 * at flatten.  After the walk, each grouped convolution splits the spaces it reads and
 * writes into slices (its groups), which pruning must shrink evenly.  Each root space
 * with a producer becomes one group, listing the members whose parameters pruning
 * must slice.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct seg { int space, pos, block; } seg;
typedef struct layout { int n; seg *s; } layout;
typedef struct space { int parent, channels, slices, bad; char why[96]; } space;
typedef struct tagged { int space; lop_member m; } tagged;

typedef struct walk {
    const lop_graph *g;
    space *sp;
    int nsp, capsp;
    layout *lay;            /* one per node */
    tagged *mem;
    int nmem, capmem;
} walk;

static int root(walk *w, int s)
{
    while (w->sp[s].parent != s)
        s = w->sp[s].parent = w->sp[w->sp[s].parent].parent;
    return s;
}

static void mark_bad(walk *w, int s, const char *why)
{
    s = root(w, s);
    if (!w->sp[s].bad) {
        w->sp[s].bad = 1;
        snprintf(w->sp[s].why, sizeof w->sp[s].why, "%s", why);
    }
}

static void unite(walk *w, int a, int b)
{
    a = root(w, a);
    b = root(w, b);
    if (a == b)
        return;
    if (b < a) {   /* the earlier space stays the root: groups come in producer order */
        int t = a;
        a = b;
        b = t;
    }
    if (w->sp[a].channels != w->sp[b].channels)
        mark_bad(w, a, "add of inputs with different channel counts");
    if (w->sp[b].bad)
        mark_bad(w, a, w->sp[b].why);
    w->sp[b].parent = a;
}

static int new_space(walk *w, int channels)
{
    if (w->nsp == w->capsp) {
        int cap = w->capsp ? 2 * w->capsp : 32;
        space *sp = lop_realloc(w->sp, (size_t)cap * sizeof *sp);
        if (!sp)
            return -1;
        w->sp = sp;
        w->capsp = cap;
    }
    space *s = &w->sp[w->nsp];
    memset(s, 0, sizeof *s);
    s->parent = w->nsp;
    s->channels = channels;
    s->slices = 1;
    return w->nsp++;
}

static int add_member(walk *w, int space_id, int node, lop_role role, int pos, int block)
{
    if (w->nmem == w->capmem) {
        int cap = w->capmem ? 2 * w->capmem : 64;
        tagged *m = lop_realloc(w->mem, (size_t)cap * sizeof *m);
        if (!m)
            return LOP_ENOMEM;
        w->mem = m;
        w->capmem = cap;
    }
    w->mem[w->nmem++] = (tagged){space_id, {node, role, pos, block}};
    return LOP_OK;
}

static int set_layout(walk *w, int node, int nseg)
{
    layout *l = &w->lay[node];
    l->n = nseg;
    l->s = lop_calloc((size_t)(nseg > 0 ? nseg : 1), sizeof *l->s);
    return l->s ? LOP_OK : LOP_ENOMEM;
}

static int copy_layout(walk *w, int node, const layout *from)
{
    if (set_layout(w, node, from->n) != LOP_OK)
        return LOP_ENOMEM;
    memcpy(w->lay[node].s, from->s, (size_t)from->n * sizeof *from->s);
    return LOP_OK;
}

/* A node whose output is a new space of `channels` channels. */
static int fresh_layout(walk *w, int node, int channels, int *space_id)
{
    int s = new_space(w, channels);
    if (s < 0 || set_layout(w, node, 1) != LOP_OK)
        return LOP_ENOMEM;
    w->lay[node].s[0] = (seg){s, 0, 1};
    *space_id = s;
    return LOP_OK;
}

/* Members for every segment of a node's input layout. */
static int members_of_input(walk *w, int node, const layout *in, lop_role role)
{
    for (int k = 0; k < in->n; k++)
        if (add_member(w, in->s[k].space, node, role, in->s[k].pos, in->s[k].block) != LOP_OK)
            return LOP_ENOMEM;
    return LOP_OK;
}

static int same_structure(const layout *a, const layout *b)
{
    if (a->n != b->n)
        return 0;
    for (int k = 0; k < a->n; k++)
        if (a->s[k].pos != b->s[k].pos || a->s[k].block != b->s[k].block)
            return 0;
    return 1;
}

static int visit(walk *w, int id)
{
    const lop_node *n = w->g->nodes[id];
    const layout *in = n->ninputs > 0 ? &w->lay[n->inputs[0]] : NULL;
    int s;
    switch (n->kind) {
    case LOP_INPUT:
        if (fresh_layout(w, id, n->dims[0], &s) != LOP_OK)
            return LOP_ENOMEM;
        mark_bad(w, s, "it reaches the network input");
        return LOP_OK;
    case LOP_CONV2D:
        if (lop_conv_depthwise(w->g, n)) {
            /* filter c reads only channel c, so in and out are one group */
            if (copy_layout(w, id, in) != LOP_OK)
                return LOP_ENOMEM;
            return members_of_input(w, id, in, LOP_ROLE_PASS);
        }
        /* a grouped conv's slices are set once every add has merged its spaces */
        if (fresh_layout(w, id, n->dims[0], &s) != LOP_OK ||
            add_member(w, s, id, LOP_ROLE_PRODUCER, 0, 1) != LOP_OK)
            return LOP_ENOMEM;
        return members_of_input(w, id, in, LOP_ROLE_CONSUMER);
    case LOP_PICK:
        /* a channel space of its own; the channels it picks from stay whole */
        if (fresh_layout(w, id, n->dims[0], &s) != LOP_OK ||
            add_member(w, s, id, LOP_ROLE_PRODUCER, 0, 1) != LOP_OK)
            return LOP_ENOMEM;
        for (int k = 0; k < in->n; k++)
            mark_bad(w, in->s[k].space, "it feeds a channel pick");
        return LOP_OK;
    case LOP_LINEAR:
        if (fresh_layout(w, id, n->dims[0], &s) != LOP_OK ||
            add_member(w, s, id, LOP_ROLE_PRODUCER, 0, 1) != LOP_OK)
            return LOP_ENOMEM;
        return members_of_input(w, id, in, LOP_ROLE_CONSUMER);
    case LOP_FLATTEN: {
        const lop_node *src = lop_input_node(w->g, n, 0);
        int hw = src->ndim == 3 ? src->dims[1] * src->dims[2] : 1;
        if (copy_layout(w, id, in) != LOP_OK)
            return LOP_ENOMEM;
        for (int k = 0; k < in->n; k++) {
            w->lay[id].s[k].pos *= hw;
            w->lay[id].s[k].block *= hw;
        }
        /* its member describes its own (feature) axis, as a concat's does */
        return members_of_input(w, id, &w->lay[id], LOP_ROLE_PASS);
    }
    case LOP_ADD:
        for (int k = 1; k < n->ninputs; k++) {
            const layout *other = &w->lay[n->inputs[k]];
            if (!same_structure(in, other)) {
                for (int j = 0; j < in->n; j++)
                    mark_bad(w, in->s[j].space, "add of differently laid out inputs");
                for (int j = 0; j < other->n; j++)
                    mark_bad(w, other->s[j].space, "add of differently laid out inputs");
                continue;
            }
            for (int j = 0; j < in->n; j++)
                unite(w, in->s[j].space, other->s[j].space);
        }
        if (copy_layout(w, id, in) != LOP_OK)
            return LOP_ENOMEM;
        return members_of_input(w, id, in, LOP_ROLE_PASS);
    case LOP_CONCAT: {
        int total = 0, at = 0;
        for (int k = 0; k < n->ninputs; k++)
            total += w->lay[n->inputs[k]].n;
        if (set_layout(w, id, total) != LOP_OK)
            return LOP_ENOMEM;
        int offset = 0;
        for (int k = 0; k < n->ninputs; k++) {
            const lop_node *src = lop_input_node(w->g, n, k);
            const layout *l = &w->lay[n->inputs[k]];
            for (int j = 0; j < l->n; j++) {
                w->lay[id].s[at] = l->s[j];
                w->lay[id].s[at].pos += offset;
                if (add_member(w, l->s[j].space, id, LOP_ROLE_PASS, w->lay[id].s[at].pos,
                               l->s[j].block) != LOP_OK)
                    return LOP_ENOMEM;
                at++;
            }
            offset += src->dims[0];
        }
        return LOP_OK;
    }
    default:   /* batchnorm, relu, relu6, pad, pools, dropout, global_avgpool: channel
                  for channel */
        if (copy_layout(w, id, in) != LOP_OK)
            return LOP_ENOMEM;
        return members_of_input(w, id, in, LOP_ROLE_PASS);
    }
}

static int gcd(int a, int b)
{
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Space s must also shrink evenly in k equal slices: slices of both splits. */
static void add_slices(walk *w, int s, int k)
{
    space *r = &w->sp[root(w, s)];
    r->slices = r->slices / gcd(r->slices, k) * k;
}

/* Grouped conv n reads layout `in`.  Its input groups shrink evenly only when each is
 * made of whole slices of one space, the same space throughout: then that space's
 * slices line up with them.  Segments of several spaces (a concat of groups), or a
 * segment that starts or ends inside a conv group, cannot be cut that way. */
static void slice_input(walk *w, const lop_node *n, const layout *in)
{
    int per = lop_input_node(w->g, n, 0)->dims[0] / n->attr.groups;
    int first = root(w, in->s[0].space), mixed = 0, fits = 1;
    for (int k = 0; k < in->n; k++) {
        const seg *sg = &in->s[k];
        mixed |= root(w, sg->space) != first;
        fits &= sg->block == 1 && sg->pos % per == 0 && w->sp[sg->space].channels % per == 0;
    }
    if (!mixed && fits) {
        add_slices(w, first, w->sp[in->s[0].space].channels / per);
        return;
    }
    char why[LOP_NAME_MAX + 64];   /* cut to the group's why[] by mark_bad */
    if (mixed)
        snprintf(why, sizeof why, "grouped convolution '%s' reads it along with other groups",
                 n->name);
    else
        snprintf(why, sizeof why, "its channels straddle the groups of grouped convolution "
                 "'%s'", n->name);
    for (int k = 0; k < in->n; k++)
        mark_bad(w, in->s[k].space, why);
}

/* Every grouped (not depthwise) conv slices its output space and its input's. */
static void slice_grouped(walk *w)
{
    for (int i = 0; i < w->g->n; i++) {
        const lop_node *n = w->g->nodes[i];
        if (n->kind != LOP_CONV2D || n->attr.groups == 1 || lop_conv_depthwise(w->g, n))
            continue;
        add_slices(w, w->lay[i].s[0].space, n->attr.groups);
        slice_input(w, n, &w->lay[n->inputs[0]]);
    }
}

static void walk_free(walk *w)
{
    if (w->lay)
        for (int i = 0; i < w->g->n; i++)
            lop_free(w->lay[i].s);
    lop_free(w->lay);
    lop_free(w->sp);
    lop_free(w->mem);
}

void lop_groups_free(lop_groups *gs)
{
    if (!gs)
        return;
    for (int i = 0; i < gs->n; i++)
        lop_free(gs->groups[i].members);
    lop_free(gs->groups);
    gs->groups = NULL;
    gs->n = 0;
}

/* Turn root spaces that have a producer into groups, members in node order. */
static int collect(walk *w, lop_groups *out)
{
    int *group_of = lop_malloc((size_t)(w->nsp > 0 ? w->nsp : 1) * sizeof(int));
    if (!group_of)
        return LOP_ENOMEM;
    int ngroups = 0;
    for (int s = 0; s < w->nsp; s++)
        group_of[s] = -1;
    for (int k = 0; k < w->nmem; k++) {
        int r = root(w, w->mem[k].space);
        if (w->mem[k].m.role == LOP_ROLE_PRODUCER && group_of[r] < 0)
            group_of[r] = ngroups++;
    }
    lop_groups gs = {0, lop_calloc((size_t)(ngroups > 0 ? ngroups : 1), sizeof(lop_group))};
    int st = gs.groups ? LOP_OK : LOP_ENOMEM;
    if (st == LOP_OK)
        gs.n = ngroups;   /* only once there is an array for lop_groups_free to walk */
    for (int k = 0; k < w->nmem && st == LOP_OK; k++) {
        int r = root(w, w->mem[k].space), gi = group_of[r];
        if (gi < 0)
            continue;
        lop_group *grp = &gs.groups[gi];
        lop_member *m = lop_realloc(grp->members, (size_t)(grp->nmembers + 1) * sizeof *m);
        if (!m) {
            st = LOP_ENOMEM;
            break;
        }
        grp->members = m;
        grp->members[grp->nmembers++] = w->mem[k].m;
        grp->channels = w->sp[r].channels;
        grp->slices = w->sp[r].slices;
        grp->prunable = !w->sp[r].bad;
        snprintf(grp->why, sizeof grp->why, "%s", w->sp[r].bad ? w->sp[r].why : "");
    }
    lop_free(group_of);
    if (st != LOP_OK) {
        lop_groups_free(&gs);
        return st;
    }
    *out = gs;
    return LOP_OK;
}

int lop_graph_groups(const lop_graph *g, lop_groups *out)
{
    walk w = {.g = g};
    int st = LOP_OK;
    if (g->n == 0)
        return lop_fail(LOP_ESTATE, "groups: the graph is empty");
    w.lay = lop_calloc((size_t)g->n, sizeof *w.lay);
    if (!w.lay)
        return LOP_ENOMEM;
    for (int i = 0; i < g->n && st == LOP_OK; i++)
        st = visit(&w, i);
    if (st == LOP_OK) {
        const layout *last = &w.lay[g->n - 1];
        for (int k = 0; k < last->n; k++)
            mark_bad(&w, last->s[k].space, "it reaches the network output");
        slice_grouped(&w);
        st = collect(&w, out);
    }
    walk_free(&w);
    return st;
}

int lop_member_owns_channels(const lop_graph *g, const lop_member *m)
{
    lop_kind k = g->nodes[m->node]->kind;
    /* a conv2d that only passes a group through is depthwise */
    return m->role == LOP_ROLE_PRODUCER ||
           (m->role == LOP_ROLE_PASS && (k == LOP_BATCHNORM || k == LOP_CONV2D));
}

int lop_groups_find(const lop_groups *gs, int node)
{
    int found = -1;
    for (int i = 0; i < gs->n; i++)
        for (int k = 0; k < gs->groups[i].nmembers; k++) {
            const lop_member *m = &gs->groups[i].members[k];
            if (m->node != node || m->role == LOP_ROLE_CONSUMER)
                continue;
            if (found >= 0 && found != i)
                return -1;   /* a concat (or what follows one) carries several groups */
            found = i;
        }
    return found;
}

int lop_conv_depthwise(const lop_graph *g, const lop_node *n)
{
    return n->kind == LOP_CONV2D && n->attr.groups > 1 && n->attr.groups == n->dims[0] &&
           n->attr.groups == lop_input_node(g, n, 0)->dims[0];
}

int lop_count_kept(const unsigned char *kept, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += kept[i] != 0;
    return k;
}

/* The grouped convolution with the most groups among grp's members (slices > 1 come
 * from at least one): the one a message names. */
static const lop_node *slicing_conv(const lop_graph *g, const lop_group *grp)
{
    const lop_node *best = NULL;
    for (int k = 0; k < grp->nmembers; k++) {
        const lop_node *n = g->nodes[grp->members[k].node];
        if (grp->members[k].role != LOP_ROLE_PASS && n->kind == LOP_CONV2D &&
            n->attr.groups > 1 && (!best || n->attr.groups > best->attr.groups))
            best = n;
    }
    return best;
}

/* "2 3 2 2": how many of each slice's channels kept[] keeps, cut with "..." to fit. */
static void format_slice_counts(const lop_group *grp, const unsigned char *kept, char *buf,
                                size_t size)
{
    int per = grp->channels / grp->slices;
    size_t used = 0;
    buf[0] = '\0';
    for (int s = 0; s < grp->slices; s++) {
        int n = snprintf(buf + used, size - used, s ? " %d" : "%d",
                         lop_count_kept(kept + (size_t)s * per, per));
        if (n < 0 || used + (size_t)n >= size) {
            snprintf(buf + (used < size - 4 ? used : size - 4), 4, "...");
            return;
        }
        used += (size_t)n;
    }
}

int lop_group_check_slices(const lop_graph *g, const lop_group *grp, const unsigned char *kept,
                           int node, const char *what)
{
    int per = grp->channels / grp->slices, first = lop_count_kept(kept, per);
    for (int s = 1; s < grp->slices; s++) {
        int n = lop_count_kept(kept + (size_t)s * per, per);
        if (n == first)
            continue;
        const lop_node *conv = slicing_conv(g, grp);
        char counts[128];
        format_slice_counts(grp, kept, counts, sizeof counts);
        return lop_fail(LOP_EINVAL, "%s: keep %d of the %d channels in slice %d, but %d in "
                        "slice 1: grouped convolution '%s' (%d groups) needs the same number "
                        "kept in each of the %d slices of the %d channels of '%s' (kept per "
                        "slice: %s)", what, n, per, s + 1, first, conv->name, conv->attr.groups,
                        grp->slices, grp->channels, g->nodes[node]->name, counts);
    }
    return LOP_OK;
}
