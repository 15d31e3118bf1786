/*
 * l_groups.c - channel groups and pruning from Lua: net:groups(), net:group_of(node)
 * and net:prune(group, keep); net:insert_pick(conv), which gives a conv's inputs a group
 * of their own; net:fold_batchnorm(), batchnorm folded into convolutions for
 * inference.  A group is a plain table (channels, slices, prunable, why, members,
 * producer) that prints as its chain of members, or - a long one - as its producers
 * and consumers by name; it remembers the graph generation it came from, so pruning
 * with a group from before another surgery is an error rather than a cut in the wrong
 * place.
 */
#include <stdlib.h>
#include <string.h>

#include "l_net.h"

#define LOPL_GROUP "lopper.group"

static const char *role_name(lop_role r)
{
    return r == LOP_ROLE_PRODUCER ? "producer" : r == LOP_ROLE_CONSUMER ? "consumer" : "pass";
}

static void push_group(lua_State *L, const lop_graph *g, const lop_group *grp, int index)
{
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, index + 1);
    lua_setfield(L, -2, "index");
    lua_pushinteger(L, grp->channels);
    lua_setfield(L, -2, "channels");
    lua_pushinteger(L, grp->slices);
    lua_setfield(L, -2, "slices");
    lua_pushboolean(L, grp->prunable);
    lua_setfield(L, -2, "prunable");
    if (!grp->prunable) {
        lua_pushstring(L, grp->why);
        lua_setfield(L, -2, "why");
    }
    lua_pushinteger(L, (lua_Integer)lop_graph_generation(g));
    lua_setfield(L, -2, "generation");
    lua_createtable(L, grp->nmembers, 0);
    const char *producer = NULL;
    for (int k = 0; k < grp->nmembers; k++) {
        const lop_member *m = &grp->members[k];
        lua_createtable(L, 0, 4);
        lua_pushstring(L, lop_node_name(g, m->node));
        lua_setfield(L, -2, "node");
        lua_pushstring(L, role_name(m->role));
        lua_setfield(L, -2, "role");
        lua_pushinteger(L, m->offset);
        lua_setfield(L, -2, "offset");
        lua_pushinteger(L, m->block);
        lua_setfield(L, -2, "block");
        lua_rawseti(L, -2, k + 1);
        /* the first producer: a group merged with the input space starts with the
         * input's consumers */
        if (m->role == LOP_ROLE_PRODUCER && !producer) {
            producer = lop_node_name(g, m->node);
            lua_pushstring(L, producer);
            lua_setfield(L, -3, "producer");
        }
    }
    lua_setfield(L, -2, "members");
    luaL_setmetatable(L, LOPL_GROUP);
}

static int groups_box_gc(lua_State *L)
{
    lop_groups_free(lua_touserdata(L, 1));
    return 0;
}

static lop_groups *groups_box(lua_State *L, const lop_graph *g)
{
    lop_groups *gs = lua_newuserdatauv(L, sizeof *gs, 0);
    memset(gs, 0, sizeof *gs);
    if (luaL_newmetatable(L, "lopper.groups_box")) {
        lua_pushcfunction(L, groups_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    if (lop_graph_groups(g, gs) != LOP_OK)
        lopl_fail(L, "net:groups");
    return gs;
}

/* net:groups() -> array of groups, in the order of their producers. */
static int net_groups(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    lop_groups *gs = groups_box(L, g);
    lua_createtable(L, gs->n, 0);
    for (int i = 0; i < gs->n; i++) {
        push_group(L, g, &gs->groups[i], i);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* net:group_of(node) -> the group node's output carries, or nil and why not. */
static int net_group_of(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    int id = lopl_check_node_ref(L, 1, 2);
    lop_groups *gs = groups_box(L, g);
    int gi = lop_groups_find(gs, id);
    if (gi < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "'%s' carries no single channel group", lop_node_name(g, id));
        return 2;
    }
    push_group(L, g, &gs->groups[gi], gi);
    return 1;
}

/* The node a group argument (group table, node name or handle) designates. */
static int group_node(lua_State *L, lop_graph *g, int arg)
{
    if (lua_type(L, arg) != LUA_TTABLE)
        return lopl_check_node_ref(L, 1, arg);
    if (lua_getfield(L, arg, "generation") != LUA_TNUMBER ||
        (uint64_t)lua_tointeger(L, -1) != lop_graph_generation(g))
        luaL_argerror(L, arg, "stale group: the network changed since it was listed; "
                      "get it again with net:group_of");
    if (lua_getfield(L, arg, "producer") != LUA_TSTRING)
        luaL_argerror(L, arg, "not a group from net:groups() or net:group_of()");
    int id = lop_graph_find(g, lua_tostring(L, -1));
    if (id < 0)
        luaL_argerror(L, arg, "the group's producer is not in this network");
    lua_pop(L, 2);
    return id;
}

/* net:mask(group, keep): zero every channel not in keep (1-based) and keep it zero
 * through training; net:mask(group) clears the group's mask. */
static int net_mask(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    int node = group_node(L, g, 2);
    lua_settop(L, 3);   /* keep list (or nil) stays at 3 under what is pushed next */
    lop_groups *gs = groups_box(L, g);
    int gi = lop_groups_find(gs, node);
    if (gi < 0)
        return luaL_argerror(L, 2, "carries no single channel group");
    int channels = gs->groups[gi].channels;
    unsigned char *mask = lua_newuserdatauv(L, (size_t)channels, 0);
    memset(mask, lua_isnoneornil(L, 3) ? 1 : 0, (size_t)channels);
    if (!lua_isnoneornil(L, 3)) {
        int n;
        int *keep = lopl_check_keep(L, 3, "net:mask", 0, &n);
        for (int i = 0; i < n; i++) {
            if (keep[i] >= channels)
                return luaL_error(L, "net:mask: channel %d is outside 1..%d", keep[i] + 1,
                                  channels);
            mask[keep[i]] = 1;
        }
    }
    if (lop_graph_set_mask(g, node, mask, channels) != LOP_OK)
        return lopl_fail(L, "net:mask");
    lua_settop(L, 1);
    return 1;
}

/* net:remove_masked() -> number of channels removed. */
static int net_remove_masked(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    int removed = 0;
    if (lop_graph_remove_masked(g, &removed) != LOP_OK)
        return lopl_fail(L, "net:remove_masked");
    lua_pushinteger(L, removed);
    return 1;
}

/* net:fold_batchnorm() -> number of batchnorms folded into the conv before them. */
static int net_fold_batchnorm(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    int folded = 0;
    if (lop_graph_fold_batchnorm(g, &folded) != LOP_OK)
        return lopl_fail(L, "net:fold_batchnorm");
    lua_pushinteger(L, folded);
    return 1;
}

/* net:replace_head_gap{data = ds, images = 2000}: GAP + one linear layer, fitted to
 * the old head's logits on the first `images` images of data (random without data). */
static int net_replace_head_gap(lua_State *L)
{
    static const char *const known[] = {"data", "images", NULL};
    lop_graph *g = lopl_check_net(L, 1);
    lopl_check_opts(L, 2, "net:replace_head_gap", known);
    const lop_dataset *d = NULL;
    int images = 0;
    if (lopl_push_opt(L, 2, "data") != LUA_TNIL) {
        d = lopl_check_dataset(L, -1);
        images = lopl_opt_int(L, 2, "net:replace_head_gap", "images",
                              d->n < 2000 ? d->n : 2000, 1);
    }
    if (lop_graph_replace_head_gap(g, d, images) != LOP_OK)
        return lopl_fail(L, "net:replace_head_gap");
    lua_settop(L, 1);
    return 1;
}

/* net:insert_pick(conv) -> the new pick node ("<conv>_pick"), between conv and its
 * input, picking every channel: the conv's inputs become a group of their own. */
static int net_insert_pick(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    int conv = lopl_check_node_ref(L, 1, 2);
    int pick;
    if (lop_graph_insert_pick(g, conv, &pick) != LOP_OK)
        return lopl_fail(L, "net:insert_pick");
    lopl_push_node(L, 1, pick);
    return 1;
}

/* net:prune(group, keep): keep = 1-based channel indices, any order, no duplicates. */
static int net_prune(lua_State *L)
{
    lop_graph *g = lopl_check_net(L, 1);
    int node = group_node(L, g, 2);
    int n;
    int *keep = lopl_check_keep(L, 3, "net:prune", 0, &n);
    lop_groups *gs = groups_box(L, g);   /* range errors in the caller's 1-based terms */
    int gi = lop_groups_find(gs, node);
    if (gi >= 0 && gs->groups[gi].prunable && keep[n - 1] >= gs->groups[gi].channels)
        return luaL_error(L, "net:prune: channel %d is outside 1..%d", keep[n - 1] + 1,
                          gs->groups[gi].channels);
    if (lop_graph_prune(g, node, keep, n) != LOP_OK)
        return lopl_fail(L, "net:prune");
    lua_settop(L, 1);
    return 1;
}

#define CHAIN_MAX 8   /* members a group may have to print as a chain */
#define NAMES_MAX 6   /* names the compact form lists per role */

/* Push "16 channels[ in 4 slices][; not prunable: why]" for the group at index 1. */
static void push_summary(lua_State *L)
{
    lua_getfield(L, 1, "channels");
    lua_getfield(L, 1, "slices");
    lua_getfield(L, 1, "prunable");
    lua_getfield(L, 1, "why");
    lua_Integer channels = lua_tointeger(L, -4), slices = lua_tointeger(L, -3);
    int unprunable = lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2);
    const char *why = lua_tostring(L, -1);
    lua_pushfstring(L, "%I channels", channels);
    if (slices > 1)
        lua_pushfstring(L, " in %I slices", slices);
    else
        lua_pushliteral(L, "");
    if (unprunable)
        lua_pushfstring(L, "; not prunable: %s", why ? why : "?");
    else
        lua_pushliteral(L, "");
    lua_concat(L, 3);
    lua_replace(L, -5);
    lua_pop(L, 3);
}

/* Push member k's node name and role (members at index 2); the caller pops 3. */
static void push_member(lua_State *L, lua_Integer k, const char **node, const char **role)
{
    lua_geti(L, 2, k);
    lua_getfield(L, -1, "node");
    lua_getfield(L, -2, "role");
    *node = lua_tostring(L, -2);
    *role = lua_tostring(L, -1);
    if (!*node)
        *node = "?";
    if (!*role)
        *role = "?";
}

/* "a -> b -> c[in] (16 channels)": every member in node order, consumers marked. */
static void add_chain(lua_State *L, luaL_Buffer *b, lua_Integer n)
{
    for (lua_Integer k = 1; k <= n; k++) {
        const char *node, *role;
        push_member(L, k, &node, &role);
        lua_pushfstring(L, "%s%s%s", k > 1 ? " -> " : "", node,
                        strcmp(role, "consumer") == 0 ? "[in]" : "");
        lua_replace(L, -4);
        lua_pop(L, 2);
        luaL_addvalue(b);
    }
    lua_pushliteral(L, " (");
    push_summary(L);
    lua_pushliteral(L, ")");
    lua_concat(L, 3);
    luaL_addvalue(b);
}

/* Push "a, b, ... (N more)", the nodes with `role` (a node listed twice in a row, as
 * a concat of one group twice makes it, counts once), and return how many there are. */
static int push_names(lua_State *L, lua_Integer n, const char *want)
{
    int count = 0;
    const char *last = NULL;
    lua_pushliteral(L, "");
    for (lua_Integer k = 1; k <= n; k++) {
        const char *node, *role;
        push_member(L, k, &node, &role);
        int listed = strcmp(role, want) == 0 && !(last && strcmp(last, node) == 0);
        if (listed && count < NAMES_MAX) {
            lua_pushfstring(L, "%s%s", count ? ", " : "", node);
            lua_rotate(L, -4, 1);   /* below the member, its node and its role */
        }
        lua_pop(L, 3);
        if (listed && count++ < NAMES_MAX)
            lua_concat(L, 2);
        if (strcmp(role, want) == 0)
            last = node;   /* kept alive by the members table */
    }
    if (count > NAMES_MAX) {
        lua_pushfstring(L, ", ... (%d more)", count - NAMES_MAX);
        lua_concat(L, 2);
    }
    return count;
}

/* "group of p: 16 channels" and a line each for its producers, its consumers and how
 * many nodes pass it through. */
static void add_compact(lua_State *L, luaL_Buffer *b, lua_Integer n)
{
    lua_getfield(L, 1, "producer");
    lua_pushfstring(L, "group of %s: ", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_remove(L, -2);
    push_summary(L);
    lua_concat(L, 2);
    luaL_addvalue(b);
    static const char *const roles[] = {"producer", "consumer"};
    for (int r = 0; r < 2; r++) {
        int count = push_names(L, n, roles[r]);
        if (count > 0)
            lua_pushfstring(L, "\n  %ss (%d): %s", roles[r], count, lua_tostring(L, -1));
        else
            lua_pushliteral(L, "");
        lua_remove(L, -2);
        luaL_addvalue(b);
    }
    int passes = push_names(L, n, "pass");
    lua_pop(L, 1);
    if (passes > 0) {
        lua_pushfstring(L, "\n  passed through by %d node%s", passes, passes > 1 ? "s" : "");
        luaL_addvalue(b);
    }
}

/* A group prints as its chain of members, or when longer than CHAIN_MAX in the compact
 * form.  Nothing stays on the stack across buffer operations but the piece being
 * added: the buffer may keep its storage there. */
static int group_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "members");
    lua_Integer n = lua_type(L, 2) == LUA_TTABLE ? luaL_len(L, 2) : 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (n <= CHAIN_MAX)
        add_chain(L, &b, n);
    else
        add_compact(L, &b, n);
    luaL_pushresult(&b);
    return 1;
}

const luaL_Reg lopl_net_surgery[] = {
    {"groups", net_groups},
    {"group_of", net_group_of},
    {"prune", net_prune},
    {"mask", net_mask},
    {"remove_masked", net_remove_masked},
    {"replace_head_gap", net_replace_head_gap},
    {"insert_pick", net_insert_pick},
    {"fold_batchnorm", net_fold_batchnorm},
    {NULL, NULL},
};

void lopl_open_groups(lua_State *L)
{
    luaL_newmetatable(L, LOPL_GROUP);
    lua_pushcfunction(L, group_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}
