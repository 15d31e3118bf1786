/*
 * l_net.h - what the three files of the network binding share: l_net.c (the net
 * object: files, queries, running, printing), l_build.c (lop.net and the builder
 * methods) and l_node.c (node handles), plus l_groups.c, whose surgery methods the
 * net's method table includes.
 */
#ifndef LOPPER_L_NET_H
#define LOPPER_L_NET_H

#include "binding.h"

/* A new net userdata with no graph yet (so __gc is safe if filling it fails). */
lopl_net *lopl_new_net(lua_State *L);
/* The net userdata at arg, open or closed (NULL graph). */
lopl_net *lopl_to_net(lua_State *L, int arg);

/* lop.net{input = ..., seed = ..., name = ...} and the builder methods. */
int lopl_net_new(lua_State *L);
extern const luaL_Reg lopl_net_builders[];

/* net:groups(), net:group_of(), net:prune() and the group metatable. */
extern const luaL_Reg lopl_net_surgery[];
void lopl_open_groups(lua_State *L);

/* Node handle metatable; a node's per-sample output shape as a Lua array. */
void lopl_open_node(lua_State *L);
void lopl_push_node_shape(lua_State *L, const lop_graph *g, int id);

/* "32x16x16" into buf. */
void lopl_format_shape(char *buf, size_t size, const int *shape, int ndim);

#endif
