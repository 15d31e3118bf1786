/*
 * l_select.c - channel selection from Lua: lop.sample (statistics of one conv's
 * inputs and outputs), the selection rules lop.select.thinet / lasso / first /
 * random / l1 (all taking the statistics) and lop.select.hessian (taking the net and
 * data), and lop.reconstruct (least-squares fit + removal).  Keep lists are 1-based
 * and increasing; `keep` in the options is the kept fraction, c' = ceil(keep * c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "l_net.h"

#define LOPL_STATS "lopper.stats"

/* A statistics userdata: its user value is the net it was sampled from. */
typedef struct lopl_stats { lop_stats s; int live; } lopl_stats;

static lopl_stats *check_stats(lua_State *L, int arg)
{
    lopl_stats *u = luaL_checkudata(L, arg, LOPL_STATS);
    if (!u->live)
        luaL_argerror(L, arg, "statistics are closed");
    return u;
}

static int stats_gc(lua_State *L)
{
    lopl_stats *u = luaL_checkudata(L, 1, LOPL_STATS);
    if (u->live)
        lop_stats_free(&u->s);
    u->live = 0;
    return 0;
}

/* The net the statistics came from (raises if it is gone or changed). */
static lop_graph *stats_net(lua_State *L, int arg, const lopl_stats *u)
{
    lua_getiuservalue(L, arg, 1);
    lop_graph *g = lopl_check_net(L, -1);
    lua_pop(L, 1);
    if (lop_graph_generation(g) != u->s.generation)
        luaL_argerror(L, arg, "stale statistics: the network changed since they were "
                      "sampled; sample again");
    return g;
}

/* lop.sample(net, data, conv, {images = 500, points = 10, batch = 64, seed = 1,
 * reference = original_net, residual = false}) -> statistics */
static int l_sample(lua_State *L)
{
    static const char *const known[] = {"images", "points", "batch", "seed", "reference",
                                        "residual", NULL};
    lop_graph *g = lopl_check_net(L, 1);
    lop_dataset *d = lopl_check_dataset(L, 2);
    int node = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, "lop.sample", known);
    lop_sample_opts o = {
        .images = lopl_opt_int(L, 4, "lop.sample", "images", d->n < 500 ? d->n : 500, 1),
        .points = lopl_opt_int(L, 4, "lop.sample", "points", 10, 1),
        .batch = lopl_opt_int(L, 4, "lop.sample", "batch", 64, 1),
        .seed = (uint64_t)lopl_opt_int(L, 4, "lop.sample", "seed", 1, 0),
        .residual = lopl_opt_bool(L, 4, "lop.sample", "residual", 0),
    };
    lop_graph *ref = NULL;
    if (lopl_push_opt(L, 4, "reference") != LUA_TNIL)
        ref = lopl_check_net(L, -1);
    lua_pop(L, 1);
    if (lop_node_kind(g, node) != LOP_CONV2D)
        return luaL_argerror(L, 3, "not a conv2d");
    lopl_stats *u = lua_newuserdatauv(L, sizeof *u, 1);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, LOPL_STATS);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    if (lop_sample(g, d, node, &o, ref, &u->s) != LOP_OK)
        return lopl_fail(L, "lop.sample");
    u->live = 1;
    size_t D = (size_t)u->s.c * u->s.kh * u->s.kw;
    lopl_account(L, sizeof(double) * (D * D + D * (size_t)u->s.n + (size_t)u->s.c * u->s.c));
    return 1;
}

/* How many of c channels the options keep: ceil(keep * c), keep in (0, 1]. */
static int kept_count(lua_State *L, int arg, const char *what, int c)
{
    double keep = lopl_opt_number(L, arg, what, "keep", 0.5, 0, 1, 1, "in (0, 1]");
    int n = (int)ceil(keep * c - 1e-9);
    return n < 1 ? 1 : n > c ? c : n;
}

/* Push 0-based increasing channel indices as a 1-based Lua array. */
static void push_keep(lua_State *L, const int *keep, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, keep[i] + 1);
        lua_rawseti(L, -2, i + 1);
    }
}

static int cmp_int(const void *a, const void *b)
{
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

typedef struct scored { double score; int channel; } scored;

static int cmp_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return (x->score < y->score) - (x->score > y->score);
    return (x->channel > y->channel) - (x->channel < y->channel);
}

/* The n channels of highest score, increasing, into keep (scores[c]). */
static void top_scores(const double *score, int c, int n, int *keep, scored *tmp)
{
    for (int j = 0; j < c; j++)
        tmp[j] = (scored){score[j], j};
    qsort(tmp, (size_t)c, sizeof *tmp, cmp_scored);
    for (int i = 0; i < n; i++)
        keep[i] = tmp[i].channel;
    qsort(keep, (size_t)n, sizeof *keep, cmp_int);
}

/* lop.select.thinet(s, {keep = 0.5}) -> keep list */
static int select_thinet(lua_State *L)
{
    static const char *const known[] = {"keep", NULL};
    lopl_stats *u = check_stats(L, 1);
    lopl_check_opts(L, 2, "lop.select.thinet", known);
    int n = kept_count(L, 2, "lop.select.thinet", u->s.c);
    int *keep = lua_newuserdatauv(L, (size_t)u->s.c * sizeof(int), 0);
    if (lop_select_thinet(u->s.A, u->s.c, n, keep) != LOP_OK)
        return lopl_fail(L, "lop.select.thinet");
    push_keep(L, keep, n);
    return 1;
}

/* lop.select.lasso(s, {keep = 0.5}) -> keep list, beta (per channel) */
static int select_lasso(lua_State *L)
{
    static const char *const known[] = {"keep", NULL};
    lopl_stats *u = check_stats(L, 1);
    lopl_check_opts(L, 2, "lop.select.lasso", known);
    int c = u->s.c, n = kept_count(L, 2, "lop.select.lasso", c);
    int *keep = lua_newuserdatauv(L, (size_t)c * sizeof(int), 0);
    double *beta = lua_newuserdatauv(L, (size_t)c * sizeof(double), 0);
    if (lop_select_lasso(u->s.A, u->s.r, c, n, keep, beta) != LOP_OK)
        return lopl_fail(L, "lop.select.lasso");
    push_keep(L, keep, n);
    lua_createtable(L, c, 0);
    for (int j = 0; j < c; j++) {
        lua_pushnumber(L, beta[j]);
        lua_rawseti(L, -2, j + 1);
    }
    return 2;
}

/* lop.select.first(s, {keep}) -> the first c' channels */
static int select_first(lua_State *L)
{
    static const char *const known[] = {"keep", NULL};
    lopl_stats *u = check_stats(L, 1);
    lopl_check_opts(L, 2, "lop.select.first", known);
    int n = kept_count(L, 2, "lop.select.first", u->s.c);
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        lua_pushinteger(L, i);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* lop.select.random(s, {keep, seed = 1}) -> a seeded random subset */
static int select_random(lua_State *L)
{
    static const char *const known[] = {"keep", "seed", NULL};
    lopl_stats *u = check_stats(L, 1);
    lopl_check_opts(L, 2, "lop.select.random", known);
    int c = u->s.c, n = kept_count(L, 2, "lop.select.random", c);
    lop_rng r;
    lop_rng_seed(&r, (uint64_t)lopl_opt_int(L, 2, "lop.select.random", "seed", 1, 0));
    int *perm = lua_newuserdatauv(L, (size_t)c * sizeof(int), 0);
    for (int j = 0; j < c; j++)
        perm[j] = j;
    lop_shuffle(perm, c, &r);
    qsort(perm, (size_t)n, sizeof *perm, cmp_int);
    push_keep(L, perm, n);
    return 1;
}

/* lop.select.l1(s, {keep}) -> the channels whose producing filters have the largest
 * L1 norm (Li et al.), summed over every producer of the group. */
static int select_l1(lua_State *L)
{
    static const char *const known[] = {"keep", NULL};
    lopl_stats *u = check_stats(L, 1);
    lopl_check_opts(L, 2, "lop.select.l1", known);
    lop_graph *g = stats_net(L, 1, u);
    int c = u->s.c, n = kept_count(L, 2, "lop.select.l1", c);
    lop_groups *gs = lua_newuserdatauv(L, sizeof *gs, 0);
    memset(gs, 0, sizeof *gs);
    double *score = lua_newuserdatauv(L, (size_t)c * sizeof(double), 0);
    scored *tmp = lua_newuserdatauv(L, (size_t)c * sizeof(scored), 0);
    int *keep = lua_newuserdatauv(L, (size_t)c * sizeof(int), 0);
    memset(score, 0, (size_t)c * sizeof(double));
    if (lop_graph_groups(g, gs) != LOP_OK)
        return lopl_fail(L, "lop.select.l1");
    int gi = lop_groups_find(gs, lop_node_input(g, u->s.node, 0));
    int producers = 0;
    for (int k = 0; gi >= 0 && k < gs->groups[gi].nmembers; k++) {
        const lop_member *m = &gs->groups[gi].members[k];
        if (m->role != LOP_ROLE_PRODUCER)
            continue;
        const lop_tensor *w = lop_node_param(g, m->node, 0);
        size_t per = w->numel / (size_t)w->shape[0];
        for (int j = 0; j < c && j < w->shape[0]; j++)
            for (size_t e = 0; e < per; e++)
                score[j] += fabs(w->data[(size_t)j * per + e]);
        producers++;
    }
    gi = gi >= 0 && gs->groups[gi].channels == c ? gi : -1;
    lop_groups_free(gs);
    if (gi < 0 || producers == 0)
        return luaL_error(L, "lop.select.l1: the input channels of '%s' have no producing "
                          "filters to rank", lop_node_name(g, u->s.node));
    top_scores(score, c, n, keep, tmp);
    push_keep(L, keep, n);
    return 1;
}

/* lop.select.hessian(net, data, layer, {keep = 0.5, images = 128, batch = 64,
 * max_iter = 100, tol = 1e-3, seed = 1, weighted = false}) -> keep list (the layer's
 * own filters), eigenvalue, products used, importance of every filter (a list, so a
 * caller can rank at several ratios from one power iteration).  Importance of filter
 * j: the L1 norm of the dominant eigenvector's entries for it (times ||w_j||^2 when
 * weighted). */
static int select_hessian(lua_State *L)
{
    static const char *const known[] = {"keep", "images", "batch", "max_iter", "tol",
                                        "seed", "weighted", NULL};
    const char *fn = "lop.select.hessian";
    lop_graph *g = lopl_check_net(L, 1);
    lop_dataset *d = lopl_check_dataset(L, 2);
    int node = lopl_check_node_ref(L, 1, 3);
    lopl_check_opts(L, 4, fn, known);
    lop_kind kind = lop_node_kind(g, node);
    if (kind != LOP_CONV2D && kind != LOP_LINEAR)
        return luaL_argerror(L, 3, "not a conv2d or linear layer");
    lop_hessian_opts o = {
        .images = lopl_opt_int(L, 4, fn, "images", d->n < 128 ? d->n : 128, 2),
        .batch = lopl_opt_int(L, 4, fn, "batch", 64, 2),
        .max_iter = lopl_opt_int(L, 4, fn, "max_iter", 100, 1),
        .tol = lopl_opt_number(L, 4, fn, "tol", 1e-3, 0, 1, 1, "in (0, 1]"),
        .seed = (uint64_t)lopl_opt_int(L, 4, fn, "seed", 1, 0),
    };
    int weighted = lopl_opt_bool(L, 4, fn, "weighted", 0);
    const lop_tensor *w = lop_node_param(g, node, 0);
    int filters = w->shape[0], n = kept_count(L, 4, fn, filters);
    size_t per = w->numel / (size_t)filters;
    float *v = lua_newuserdatauv(L, w->numel * sizeof(float), 0);
    double *score = lua_newuserdatauv(L, (size_t)filters * sizeof(double), 0);
    scored *tmp = lua_newuserdatauv(L, (size_t)filters * sizeof(scored), 0);
    int *keep = lua_newuserdatauv(L, (size_t)filters * sizeof(int), 0);
    double lambda;
    int iters;
    if (lop_hessian_top(g, d, node, &o, &lambda, v, &iters) != LOP_OK)
        return lopl_fail(L, fn);
    for (int j = 0; j < filters; j++) {
        double l1 = 0, w2 = 0;
        for (size_t e = 0; e < per; e++) {
            l1 += fabs(v[(size_t)j * per + e]);
            w2 += (double)w->data[(size_t)j * per + e] * w->data[(size_t)j * per + e];
        }
        score[j] = weighted ? l1 * w2 : l1;
    }
    top_scores(score, filters, n, keep, tmp);
    push_keep(L, keep, n);
    lua_pushnumber(L, lambda);
    lua_pushinteger(L, iters);
    lua_createtable(L, filters, 0);
    for (int j = 0; j < filters; j++) {
        lua_pushnumber(L, score[j]);
        lua_rawseti(L, -2, j + 1);
    }
    return 4;
}

/* lop.reconstruct(net, conv, s, keep, {mode = "weights" | "scale", ridge = 1e-6})
 * -> net, relative reconstruction error on the samples */
static int l_reconstruct(lua_State *L)
{
    static const char *const known[] = {"mode", "ridge", NULL};
    lop_graph *g = lopl_check_net(L, 1);
    int node = lopl_check_node_ref(L, 1, 2);
    lopl_stats *u = check_stats(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    lopl_check_opts(L, 5, "lop.reconstruct", known);
    lua_getiuservalue(L, 3, 1);
    int same_net = lopl_check_net(L, -1) == g;
    lua_pop(L, 1);
    if (!same_net || u->s.node != node)
        return luaL_argerror(L, 3, "statistics of another layer or network");
    lop_recon mode = LOP_RECON_WEIGHTS;
    if (lopl_push_opt(L, 5, "mode") != LUA_TNIL) {
        const char *m = luaL_checkstring(L, -1);
        if (strcmp(m, "scale") == 0)
            mode = LOP_RECON_SCALE;
        else if (strcmp(m, "weights") != 0)
            return luaL_error(L, "lop.reconstruct: mode must be 'weights' or 'scale', not '%s'",
                              m);
    }
    lua_pop(L, 1);
    double ridge = lopl_opt_number(L, 5, "lop.reconstruct", "ridge", 1e-6, 0, 0, 1, "in [0, 1]");
    lua_Integer n = luaL_len(L, 4);
    if (n < 1 || n > u->s.c)
        return luaL_argerror(L, 4, "keep must list 1 to all of the input channels");
    int *keep = lua_newuserdatauv(L, (size_t)n * sizeof(int), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        int isint;
        lua_geti(L, 4, i);
        lua_Integer c = lua_tointegerx(L, -1, &isint);
        if (!isint || c < 1 || c > u->s.c)
            return luaL_error(L, "lop.reconstruct: keep[%I] must be a channel in 1..%d", i,
                              u->s.c);
        keep[i - 1] = (int)c - 1;
        lua_pop(L, 1);
    }
    qsort(keep, (size_t)n, sizeof *keep, cmp_int);
    double rel_error;
    if (lop_reconstruct(g, &u->s, keep, (int)n, mode, ridge, &rel_error) != LOP_OK)
        return lopl_fail(L, "lop.reconstruct");
    lua_settop(L, 1);
    lua_pushnumber(L, rel_error);
    return 2;
}

static int stats_tostring(lua_State *L)
{
    lopl_stats *u = luaL_checkudata(L, 1, LOPL_STATS);
    if (!u->live)
        lua_pushliteral(L, "statistics (closed)");
    else
        lua_pushfstring(L, "statistics of %d input channels x %d outputs, %I samples", u->s.c,
                        u->s.n, (lua_Integer)u->s.m);
    return 1;
}

static int stats_channels(lua_State *L)
{
    lua_pushinteger(L, check_stats(L, 1)->s.c);
    return 1;
}

static int stats_samples(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_stats(L, 1)->s.m);
    return 1;
}

void lopl_open_select(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"channels", stats_channels}, {"samples", stats_samples}, {"close", stats_gc},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", stats_gc}, {"__close", stats_gc}, {"__tostring", stats_tostring},
        {NULL, NULL},
    };
    static const luaL_Reg select[] = {
        {"thinet", select_thinet}, {"lasso", select_lasso}, {"first", select_first},
        {"random", select_random}, {"l1", select_l1},       {"hessian", select_hessian},
        {NULL, NULL},
    };
    lopl_newmeta(L, LOPL_STATS, methods, meta);
    lua_pushcfunction(L, l_sample);
    lua_setfield(L, -2, "sample");
    lua_pushcfunction(L, l_reconstruct);
    lua_setfield(L, -2, "reconstruct");
    luaL_newlib(L, select);
    lua_setfield(L, -2, "select");
}
