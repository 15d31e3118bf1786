/*
 * l_select.c - channel selection from Lua: lop.sample (statistics of one conv's or
 * linear layer's inputs and outputs), lop.combine (of several layers reading one
 * channel group), the selection rules lop.select.thinet / lasso / first /
 * random / l1 (all taking the statistics) and lop.select.hessian (taking the net and
 * data), ThiNet's full ranking lop.select.thinet_order and the reconstruction error of
 * every kept count of a ranking, lop.select.errors, and lop.reconstruct /
 * reconstruct_group (least-squares fit + removal).  Keep lists are 1-based
 * and increasing; `keep` in the options is the kept fraction, c' = ceil(keep * c) -
 * for l1 and hessian, whose channels may be a group that grouped convolutions slice,
 * that fraction of each slice, ranked within it.
 */
#include <string.h>

#include "binding.h"

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

/* The map at the top of the stack (reference_channels): one 1-based channel of the
 * reference per output of the layer sampled, as 0-based ints (n of them). */
static int *check_ref_channels(lua_State *L, const char *fn, int n)
{
    if (!lua_istable(L, -1))
        luaL_error(L, "%s: reference_channels must be a list of channels", fn);
    if (luaL_len(L, -1) != n)
        luaL_error(L, "%s: reference_channels lists %I channels, the layer has %d outputs", fn,
                   (lua_Integer)luaL_len(L, -1), n);
    int *map = lua_newuserdatauv(L, (size_t)n * sizeof *map, 0);
    for (int k = 0; k < n; k++) {
        int isint = 0;
        lua_Integer c = 0;
        if (lua_geti(L, -2, k + 1) == LUA_TNUMBER)
            c = lua_tointegerx(L, -1, &isint);
        if (!isint || c < 1 || c > 1 << 30)
            luaL_error(L, "%s: reference_channels[%d] must be a channel index >= 1", fn, k + 1);
        map[k] = (int)(c - 1);
        lua_pop(L, 1);
    }
    return map;   /* the userdata stays on the stack, above the list */
}

/* A new statistics userdata for net at net_arg, pushed; filled by the caller. */
static lopl_stats *new_stats(lua_State *L, int net_arg)
{
    lopl_stats *u = lua_newuserdatauv(L, sizeof *u, 1);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, LOPL_STATS);
    lua_pushvalue(L, net_arg);
    lua_setiuservalue(L, -2, 1);
    return u;
}

static void account_stats(lua_State *L, const lop_stats *s)
{
    size_t D = (size_t)s->c * s->kh * s->kw;
    lopl_account(L, sizeof(double) * (D * D + D * (size_t)s->n + (size_t)s->c * s->c));
}

/* The layer (a name or handle of net 1) at arg 3, or entry i of the list there when
 * i > 0, checked as one that can be sampled; a bad list entry is named by its index. */
static int check_sampled_layer(lua_State *L, const char *fn, int i)
{
    if (i == 0) {
        int node = lopl_check_node_ref(L, 1, 3);
        lop_kind kind = lop_node_kind(lopl_check_net(L, 1), node);
        if (kind != LOP_CONV2D && kind != LOP_LINEAR)
            luaL_argerror(L, 3, "not a conv2d or linear layer");
        return node;
    }
    int t = lua_geti(L, 3, i);
    if (t != LUA_TSTRING && t != LUA_TUSERDATA)
        luaL_error(L, "%s: layers[%d] must be a node name or handle, not %s", fn, i,
                   luaL_typename(L, -1));
    int node = lopl_check_node_ref(L, 1, -1);
    lop_kind kind = lop_node_kind(lopl_check_net(L, 1), node);
    if (kind != LOP_CONV2D && kind != LOP_LINEAR)
        luaL_error(L, "%s: layers[%d] is not a conv2d or linear layer", fn, i);
    lua_pop(L, 1);
    return node;
}

/* lop.sample(net, data, layer, {images = 500, points = 10, batch = 64, seed = 1,
 * reference = original_net, reference_channels = {...}, residual = false}) ->
 * statistics of a conv2d or linear layer (defaults: the engine's, images at most the
 * data set's size).  With a list of layers, a list of their statistics, each the same
 * as sampling it alone gives, from one calibration pass (reference_channels then has
 * one entry per layer: its map, or false). */
static int l_sample(lua_State *L)
{
    static const char *const known[] = {"images", "points", "batch", "seed", "reference",
                                        "reference_channels", "residual", NULL};
    const char *fn = "lop.sample";
    lop_graph *g = lopl_check_net(L, 1);
    lop_dataset *d = lopl_check_dataset(L, 2);
    const int many = lua_type(L, 3) == LUA_TTABLE;
    lopl_check_opts(L, 4, fn, known);
    lop_sample_opts o = lop_sample_opts_default();
    o.images = lopl_opt_int(L, 4, fn, "images", d->n < o.images ? d->n : o.images, 1);
    o.points = lopl_opt_int(L, 4, fn, "points", o.points, 1);
    o.batch = lopl_opt_int(L, 4, fn, "batch", o.batch, 1);
    o.seed = (uint64_t)lopl_opt_int(L, 4, fn, "seed", (int)o.seed, 0);
    o.residual = lopl_opt_bool(L, 4, fn, "residual", o.residual);
    lop_graph *ref = NULL;
    if (lopl_push_opt(L, 4, "reference") != LUA_TNIL)
        ref = lopl_check_net(L, -1);
    lua_pop(L, 1);
    int count = 1;
    if (many) {
        lua_Integer len = luaL_len(L, 3);
        if (len < 1 || len > 1 << 20)
            return luaL_argerror(L, 3, "a list of one or more layers");
        count = (int)len;
    }
    /* Nodes, then maps (NULL = none), in userdata kept on the stack until the call
     * returns; each map's own userdata goes in the anchor table. */
    int *nodes = lua_newuserdatauv(L, (size_t)count * sizeof *nodes, 0);
    const int **maps = lua_newuserdatauv(L, (size_t)count * sizeof *maps, 0);
    lua_newtable(L);
    const int anchor = lua_gettop(L);
    for (int i = 0; i < count; i++) {
        nodes[i] = check_sampled_layer(L, fn, many ? i + 1 : 0);
        maps[i] = NULL;
    }
    if (lopl_push_opt(L, 4, "reference_channels") != LUA_TNIL) {
        if (many && !lua_istable(L, -1))
            luaL_error(L, "%s: reference_channels must list one map (or false) per layer", fn);
        if (many && luaL_len(L, -1) != count)
            luaL_error(L, "%s: reference_channels lists %I maps for %d layers", fn,
                       (lua_Integer)luaL_len(L, -1), count);
        for (int i = 0; i < count; i++) {
            if (many && lua_geti(L, -1, i + 1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
                lua_pop(L, 1);
                continue;
            }
            int shape[3];
            lop_node_shape(g, nodes[i], shape);
            maps[i] = check_ref_channels(L, fn, shape[0]);
            lua_rawseti(L, anchor, i + 1);   /* keeps the map alive until the call returns */
            if (many)
                lua_pop(L, 1);
        }
    }
    lua_settop(L, anchor);
    lua_createtable(L, count, 0);   /* the statistics, in order */
    lopl_stats **us = lua_newuserdatauv(L, (size_t)count * sizeof *us, 0);
    for (int i = 0; i < count; i++) {
        us[i] = new_stats(L, 1);
        lua_rawseti(L, anchor + 1, i + 1);
    }
    lop_stats *out = lua_newuserdatauv(L, (size_t)count * sizeof *out, 0);
    if (lop_sample_layers(g, d, nodes, count, &o, maps, ref, out) != LOP_OK)
        return lopl_fail(L, fn);
    for (int i = 0; i < count; i++) {
        us[i]->s = out[i];
        us[i]->live = 1;
        account_stats(L, &out[i]);
    }
    lua_settop(L, anchor + 1);
    if (!many)
        lua_geti(L, -1, 1);
    return 1;
}

/* The statistics listed in the table at arg, checked live and all of net (of the
 * first's net when net is NULL), into parts (a userdata scratch pushed on the stack);
 * returns how many. */
static int check_stats_list(lua_State *L, int arg, const char *fn, lop_graph *net,
                            const lop_stats ***parts)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer n = luaL_len(L, arg);
    if (n < 1 || n > 1 << 16)
        luaL_argerror(L, arg, "a list of statistics");
    *parts = lua_newuserdatauv(L, (size_t)n * sizeof **parts, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, arg, i);
        lopl_stats *u = luaL_testudata(L, -1, LOPL_STATS);
        if (!u || !u->live)
            luaL_error(L, "%s: item %I is not live statistics (lop.sample)", fn, i);
        lua_getiuservalue(L, -1, 1);
        lop_graph *g = lopl_check_net(L, -1);
        if (!net)
            net = g;
        else if (g != net)
            luaL_error(L, "%s: item %I was sampled from another network", fn, i);
        lua_pop(L, 2);
        (*parts)[i - 1] = &u->s;
    }
    return (int)n;
}

/* lop.combine({s1, s2, ...}) -> statistics a selection rule takes for a channel group
 * that each si's layer reads (a residual stage): the sum of their relative errors */
static int l_combine(lua_State *L)
{
    const lop_stats **parts;
    int n = check_stats_list(L, 1, "lop.combine", NULL, &parts);
    lua_geti(L, 1, 1);
    lua_getiuservalue(L, -1, 1);   /* the net of the first, which every rule looks up */
    lopl_stats *u = lua_newuserdatauv(L, sizeof *u, 1);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, LOPL_STATS);
    lua_pushvalue(L, -2);
    lua_setiuservalue(L, -2, 1);
    if (lop_stats_combine(parts, n, &u->s) != LOP_OK)
        return lopl_fail(L, "lop.combine");
    u->live = 1;
    lopl_account(L, sizeof(double) * ((size_t)u->s.c * u->s.c + 2 * (size_t)u->s.c));
    return 1;
}

/* The kept count the options at arg ask for out of c channels in `slices` equal
 * slices: keep (a fraction in (0, 1], default 0.5) of each, through lop_keep_count. */
static int kept_count(lua_State *L, int arg, const char *what, int c, int slices)
{
    double keep = lopl_opt_number(L, arg, what, "keep", 0.5, 0, 1, 1, "in (0, 1]");
    return slices * lop_keep_count(keep, c / slices);
}

/* The slices of the group node's output carries (1 when it carries none). */
static int carried_slices(lua_State *L, const lop_graph *g, int node, const char *fn)
{
    lop_groups gs;
    if (lop_graph_groups(g, &gs) != LOP_OK)
        return lopl_fail(L, fn);
    int gi = lop_groups_find(&gs, node), slices = gi >= 0 ? gs.groups[gi].slices : 1;
    lop_groups_free(&gs);
    return slices;
}

/* Push 0-based channel indices as a 1-based Lua array. */
static void push_keep(lua_State *L, const int *keep, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, keep[i] + 1);
        lua_rawseti(L, -2, i + 1);
    }
}

static void push_numbers(lua_State *L, const double *v, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* The statistics at 1 and the keep list scratch for a rule that takes {keep = ...}
 * (plus the other known keys); *n receives the kept count (of each of `slices`). */
static int *rule_args(lua_State *L, const char *fn, const char *const *known, int slices,
                      lopl_stats **u, int *n)
{
    *u = check_stats(L, 1);
    lopl_check_opts(L, 2, fn, known);
    *n = kept_count(L, 2, fn, (*u)->s.c, slices);
    return lua_newuserdatauv(L, (size_t)(*u)->s.c * sizeof(int), 0);
}

static const char *const keep_only[] = {"keep", NULL};

/* lop.select.thinet(s, {keep = 0.5}) -> keep list */
static int select_thinet(lua_State *L)
{
    lopl_stats *u;
    int n, *keep = rule_args(L, "lop.select.thinet", keep_only, 1, &u, &n);
    if (lop_select_thinet(u->s.A, u->s.c, n, keep) != LOP_OK)
        return lopl_fail(L, "lop.select.thinet");
    push_keep(L, keep, n);
    return 1;
}

/* lop.select.thinet_order(s) -> every channel, from most to least worth keeping */
static int select_thinet_order(lua_State *L)
{
    lopl_stats *u = check_stats(L, 1);
    int *order = lua_newuserdatauv(L, (size_t)u->s.c * sizeof(int), 0);
    if (lop_select_thinet_order(u->s.A, u->s.c, order) != LOP_OK)
        return lopl_fail(L, "lop.select.thinet_order");
    push_keep(L, order, u->s.c);
    return 1;
}

/* The refit mode ("weights", the default, or "scale") and the ridge (1e-6) in the
 * options at arg. */
static lop_recon check_mode(lua_State *L, int arg, const char *fn, double *ridge)
{
    lop_recon mode = LOP_RECON_WEIGHTS;
    if (lopl_push_opt(L, arg, "mode") != LUA_TNIL) {
        const char *m = luaL_checkstring(L, -1);
        if (strcmp(m, "scale") == 0)
            mode = LOP_RECON_SCALE;
        else if (strcmp(m, "weights") != 0)
            luaL_error(L, "%s: mode must be 'weights' or 'scale', not '%s'", fn, m);
    }
    lua_pop(L, 1);
    *ridge = lopl_opt_number(L, arg, fn, "ridge", 1e-6, 0, 0, 1, "in [0, 1]");
    return mode;
}

/* The refit mode of lop.reconstruct(_group): check_mode's, with LOP_RECON_DROPOUT when
 * option `dropout` (default false) asks for a fit for training. */
static lop_recon check_refit(lua_State *L, int arg, const char *fn, double *ridge)
{
    lop_recon mode = check_mode(L, arg, fn, ridge);
    return lopl_opt_bool(L, arg, fn, "dropout", 0) ? (lop_recon)(mode | LOP_RECON_DROPOUT)
                                                   : mode;
}

/* lop.select.errors(s, order, {mode = "weights" | "scale", ridge = 1e-6}) -> the
 * relative reconstruction error lop.reconstruct would report for the first k channels
 * of order (every channel once, 1-based), for k = 1..c */
static int select_errors(lua_State *L)
{
    static const char *const known[] = {"mode", "ridge", NULL};
    const char *fn = "lop.select.errors";
    lopl_stats *u = check_stats(L, 1);
    lop_graph *g = stats_net(L, 1, u);   /* whether the conv has a bias */
    luaL_checktype(L, 2, LUA_TTABLE);
    lopl_check_opts(L, 3, fn, known);
    double ridge;
    lop_recon mode = check_mode(L, 3, fn, &ridge);
    const int c = u->s.c;
    lua_Integer len = luaL_len(L, 2);
    if (len != c)
        return luaL_error(L, "%s: order must list all %d channels, not %I", fn, c, len);
    int *order = lua_newuserdatauv(L, (size_t)c * sizeof(int), 0);
    char *seen = lua_newuserdatauv(L, (size_t)c, 0);
    memset(seen, 0, (size_t)c);
    for (int i = 0; i < c; i++) {
        int isint = 0;
        lua_Integer ch = 0;
        if (lua_geti(L, 2, i + 1) == LUA_TNUMBER)
            ch = lua_tointegerx(L, -1, &isint);
        if (!isint || ch < 1 || ch > c)
            return luaL_error(L, "%s: order[%d] must be a channel in 1..%d", fn, i + 1, c);
        if (seen[ch - 1]++)
            return luaL_error(L, "%s: channel %d is listed twice in the order", fn, (int)ch);
        order[i] = (int)(ch - 1);
        lua_pop(L, 1);
    }
    double *err = lua_newuserdatauv(L, (size_t)c * sizeof(double), 0);
    if (lop_prefix_errors(&u->s, order, mode, lop_node_attrs(g, u->s.node)->bias, ridge, err) !=
        LOP_OK)
        return lopl_fail(L, fn);
    push_numbers(L, err, c);
    return 1;
}

/* lop.select.lasso(s, {keep = 0.5}) -> keep list, beta (per channel, normalised
 * problem), {lambda =, sweeps =, converged =} */
static int select_lasso(lua_State *L)
{
    lopl_stats *u;
    int n, *keep = rule_args(L, "lop.select.lasso", keep_only, 1, &u, &n), c = u->s.c;
    double *beta = lua_newuserdatauv(L, (size_t)c * sizeof(double), 0);
    lop_lasso_info info;
    if (lop_select_lasso(u->s.A, u->s.r, u->s.wnorm, c, n, keep, beta, &info) != LOP_OK)
        return lopl_fail(L, "lop.select.lasso");
    push_keep(L, keep, n);
    push_numbers(L, beta, c);
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, info.lambda);
    lua_setfield(L, -2, "lambda");
    lua_pushinteger(L, info.sweeps);
    lua_setfield(L, -2, "sweeps");
    lua_pushboolean(L, info.converged);
    lua_setfield(L, -2, "converged");
    return 3;
}

/* lop.select.first(s, {keep}) -> the first c' channels */
static int select_first(lua_State *L)
{
    lopl_stats *u;
    int n, *keep = rule_args(L, "lop.select.first", keep_only, 1, &u, &n);
    if (lop_select_first(u->s.c, n, keep) != LOP_OK)
        return lopl_fail(L, "lop.select.first");
    push_keep(L, keep, n);
    return 1;
}

/* lop.select.random(s, {keep, seed = 1}) -> a seeded random subset */
static int select_random(lua_State *L)
{
    static const char *const known[] = {"keep", "seed", NULL};
    lopl_stats *u;
    int n, *keep = rule_args(L, "lop.select.random", known, 1, &u, &n);
    uint64_t seed = (uint64_t)lopl_opt_int(L, 2, "lop.select.random", "seed", 1, 0);
    if (lop_select_random(u->s.c, n, seed, keep) != LOP_OK)
        return lopl_fail(L, "lop.select.random");
    push_keep(L, keep, n);
    return 1;
}

/* lop.select.l1(s, {keep}) -> the channels whose producing filters have the largest
 * L1 norm (Li et al.), summed over every producer of the group, per slice. */
static int select_l1(lua_State *L)
{
    lopl_stats *u = check_stats(L, 1);
    lop_graph *g = stats_net(L, 1, u);
    int slices = carried_slices(L, g, lop_node_input(g, u->s.node, 0), "lop.select.l1");
    int n, *keep = rule_args(L, "lop.select.l1", keep_only, slices, &u, &n);
    if (lop_select_l1(g, u->s.node, n, keep) != LOP_OK)
        return lopl_fail(L, "lop.select.l1");
    push_keep(L, keep, n);
    return 1;
}

/* lop.select.hessian(net, data, layer, {keep = 0.5, images = 128, batch = 64,
 * max_iter = 100, tol = 1e-3, seed = 1, weighted = false}) -> keep list (the layer's
 * own filters, the most important of each slice of their group), eigenvalue,
 * products used, importance of every filter (a list, so a caller can rank at several
 * ratios from one power iteration).  Defaults: the engine's, images at most the data
 * set's size. */
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
    lop_hessian_opts o = lop_hessian_opts_default();
    o.images = lopl_opt_int(L, 4, fn, "images", d->n < o.images ? d->n : o.images, 2);
    o.batch = lopl_opt_int(L, 4, fn, "batch", o.batch, 2);
    o.max_iter = lopl_opt_int(L, 4, fn, "max_iter", o.max_iter, 1);
    o.tol = lopl_opt_number(L, 4, fn, "tol", o.tol, 0, 1, 1, "in (0, 1]");
    o.seed = (uint64_t)lopl_opt_int(L, 4, fn, "seed", (int)o.seed, 0);
    int weighted = lopl_opt_bool(L, 4, fn, "weighted", 0);
    const lop_tensor *w = lop_node_param(g, node, 0);
    int filters = w->shape[0], slices = carried_slices(L, g, node, fn);
    int n = kept_count(L, 4, fn, filters, slices);
    float *v = lua_newuserdatauv(L, w->numel * sizeof(float), 0);
    double *score = lua_newuserdatauv(L, (size_t)filters * sizeof(double), 0);
    int *keep = lua_newuserdatauv(L, (size_t)filters * sizeof(int), 0);
    double lambda;
    int iters;
    if (lop_hessian_top(g, d, node, &o, &lambda, v, &iters) != LOP_OK ||
        lop_hessian_importance(g, node, v, weighted, score) != LOP_OK)
        return lopl_fail(L, fn);
    if (lop_select_top_sliced(score, filters, slices, n, keep) != LOP_OK)
        return lopl_fail(L, fn);
    push_keep(L, keep, n);
    lua_pushnumber(L, lambda);
    lua_pushinteger(L, iters);
    push_numbers(L, score, filters);
    return 4;
}

/* lop.reconstruct(net, conv, s, keep, {mode = "weights" | "scale", ridge = 1e-6,
 * dropout = false}) -> net, relative reconstruction error on the samples */
static int l_reconstruct(lua_State *L)
{
    static const char *const known[] = {"mode", "ridge", "dropout", NULL};
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
    double ridge;
    lop_recon mode = check_refit(L, 5, "lop.reconstruct", &ridge);
    int n, *keep = lopl_check_keep(L, 4, "lop.reconstruct", u->s.c, &n);
    double rel_error;
    if (lop_reconstruct(g, &u->s, keep, n, mode, ridge, &rel_error) != LOP_OK)
        return lopl_fail(L, "lop.reconstruct");
    lua_settop(L, 1);
    lua_pushnumber(L, rel_error);
    return 2;
}

/* lop.reconstruct_group(net, {s1, s2, ...}, keep, {mode =, ridge =, dropout =}) -> net,
 * {relative error of each si}: every layer sampled (each reading the same channel
 * group) is refitted to keep, then the channels leave the group once */
static int l_reconstruct_group(lua_State *L)
{
    static const char *const known[] = {"mode", "ridge", "dropout", NULL};
    const char *fn = "lop.reconstruct_group";
    lop_graph *g = lopl_check_net(L, 1);
    lopl_check_opts(L, 4, fn, known);
    double ridge;
    lop_recon mode = check_refit(L, 4, fn, &ridge);
    const lop_stats **parts;
    int nparts = check_stats_list(L, 2, fn, g, &parts);
    int n, *keep = lopl_check_keep(L, 3, fn, parts[0]->c, &n);
    double *errors = lua_newuserdatauv(L, (size_t)nparts * sizeof *errors, 0);
    if (lop_reconstruct_group(g, parts, nparts, keep, n, mode, ridge, errors) != LOP_OK)
        return lopl_fail(L, fn);
    lua_pushvalue(L, 1);
    push_numbers(L, errors, nparts);
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
        {"thinet_order", select_thinet_order},                {"errors", select_errors},
        {NULL, NULL},
    };
    lopl_newmeta(L, LOPL_STATS, methods, meta);
    lua_pushcfunction(L, l_sample);
    lua_setfield(L, -2, "sample");
    lua_pushcfunction(L, l_reconstruct);
    lua_setfield(L, -2, "reconstruct");
    lua_pushcfunction(L, l_reconstruct_group);
    lua_setfield(L, -2, "reconstruct_group");
    lua_pushcfunction(L, l_combine);
    lua_setfield(L, -2, "combine");
    luaL_newlib(L, select);
    lua_setfield(L, -2, "select");
}
