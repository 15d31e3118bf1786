/*
 * binding.h - what the files of the Lua binding share: the userdata types and their
 * metatable names, the checked accessors, and the one way engine errors are raised.
 *
 * Rules every binding function follows (see ../shared/STYLE.md):
 *  - check every argument before calling the engine;
 *  - create result userdata (with its metatable, resource pointer NULL) BEFORE
 *    acquiring the resource, so an error never leaks and __gc is always safe;
 *  - raise only when no C frame owns memory (engine calls clean up on failure).
 */
#ifndef LOPPER_BINDING_H
#define LOPPER_BINDING_H

#include <lauxlib.h>
#include <signal.h>
#include <lua.h>

#include "lopper.h"

#define LOPL_TENSOR "lopper.tensor"
#define LOPL_NET "lopper.net"
#define LOPL_NODE "lopper.node"
#define LOPL_DATASET "lopper.dataset"

typedef struct lopl_tensor { lop_tensor *t; } lopl_tensor;
typedef struct lopl_net { lop_graph *g; } lopl_net;
/* A node handle: the net userdata is its first user value; stale when the graph's
 * generation moved on (surgery renumbered nodes). */
typedef struct lopl_node { int id; uint64_t generation; } lopl_node;
typedef struct lopl_dataset { lop_dataset d; int loaded; } lopl_dataset;

/* Set (to 1) by a host's SIGINT handler - the lopper executable's does - so that long
 * engine loops driven from Lua (training, evaluation) stop after the current batch
 * with an "interrupted" error; cleared when that error is raised. */
extern volatile sig_atomic_t lopl_interrupt;

/* Raise "<what>: <engine message>", the engine's own operation prefix (the part of
 * what after its last '.' or ':', as in "sample: ") dropped. */
int lopl_fail(lua_State *L, const char *what);

/* Install metatable `name` with __index = methods (plus the given metamethods). */
void lopl_newmeta(lua_State *L, const char *name, const luaL_Reg *methods,
                  const luaL_Reg *metamethods);

/* Tensors.  lopl_new_tensor pushes an empty tensor userdata (safe to collect);
 * lopl_set_tensor then hands it one reference to t, or raises the engine error with
 * `what` when t is NULL.  lopl_check_tensor raises unless arg is a live tensor. */
lopl_tensor *lopl_new_tensor(lua_State *L);
void lopl_set_tensor(lua_State *L, lopl_tensor *u, lop_tensor *t, const char *what);
lop_tensor *lopl_check_tensor(lua_State *L, int arg);
/* Tell the garbage collector about `bytes` of C memory just allocated, so loops
 * that drop large tensors stay bounded. */
void lopl_account(lua_State *L, size_t bytes);

/* Nets, nodes and datasets (each raises on a wrong or closed object). */
lop_graph *lopl_check_net(lua_State *L, int arg);
/* A node of the net at net_arg given at arg as a name or a handle of that net. */
int lopl_check_node_ref(lua_State *L, int net_arg, int arg);
void lopl_push_node(lua_State *L, int net_arg, int id);
lop_dataset *lopl_check_dataset(lua_State *L, int arg);
/* A new closed dataset userdata on the stack for an engine call to fill; once filled,
 * lopl_dataset_loaded opens it (a failure leaves it closed for the collector). */
lopl_dataset *lopl_new_dataset(lua_State *L);
void lopl_dataset_loaded(lua_State *L, lopl_dataset *u);

/* Option tables.  lopl_check_opts raises unless the value at arg is absent or a table
 * whose keys are all among `known` (NULL-terminated), naming an unknown key; it
 * returns whether a table is there.  The getters read key from that table (def when
 * absent or no table), raising with `what` in the message on a wrong type or range. */
int lopl_check_opts(lua_State *L, int arg, const char *what, const char *const *known);
int lopl_opt_int(lua_State *L, int arg, const char *what, const char *key, int def, int min);
int lopl_opt_bool(lua_State *L, int arg, const char *what, const char *key, int def);
/* A finite number option with min <= v <= max (v > min when min_open); `range`
 * describes the bounds in the message. */
double lopl_opt_number(lua_State *L, int arg, const char *what, const char *key, double def,
                       double min, int min_open, double max, const char *range);
/* Like lopl_opt_int, but a missing key is an error. */
int lopl_opt_required_int(lua_State *L, int arg, const char *what, const char *key, int min);
/* Push options[key] of the table at arg (nil when there is no table); returns its type. */
int lopl_push_opt(lua_State *L, int arg, const char *key);
/* The integer at stack index idx, in [min, INT_MAX]; key names it in messages. */
int lopl_to_int(lua_State *L, int idx, const char *what, const char *key, int min);

/* Normalisation options of a data opener (l_normalize.c): mean = and std = (a number,
 * or a list of 1 to 3, one per channel) or normalize = "imagenet" | "none" (default).
 * lopl_opt_normalization parses them from the table at arg (raising on a wrong type,
 * a std <= 0, or the preset together with numbers); mean/std hold the values (one
 * number repeated; 0 and 1 when absent), nmean/nstd how many were given.
 * lopl_normalization_misfit pushes and returns a message when they do not fit images
 * of `channels` channels (source says whose, e.g. a file name), NULL when they do. */
typedef struct lopl_norm {
    float mean[3], std[3];
    int nmean, nstd, preset;
} lopl_norm;
void lopl_opt_normalization(lua_State *L, int arg, const char *fn, lopl_norm *out);
const char *lopl_normalization_misfit(lua_State *L, const lopl_norm *n, int channels,
                                      const char *source);

/* The keep list at arg: 1-based channel indices (in 1..channels when channels > 0),
 * any order, no duplicates; returned 0-based and sorted in a userdata pushed on the
 * stack, with *count entries. */
int *lopl_check_keep(lua_State *L, int arg, const char *what, int channels, int *count);

/* A string argument (not a number) without zero bytes: a path or a node name. */
const char *lopl_check_cstring(lua_State *L, int arg);

/* Each file adds its functions to the module table on top of the stack. */
void lopl_open_tensor(lua_State *L);
void lopl_open_net(lua_State *L);
void lopl_open_data(lua_State *L);
void lopl_open_train(lua_State *L);
void lopl_open_select(lua_State *L);
/* lop.data.npy (l_npy.c), registered in lopl_open_data's table. */
int lopl_data_npy(lua_State *L);
/* lop.data.folder and lop.data.read_image (l_folder.c), in lopl_open_data's table. */
int lopl_data_folder(lua_State *L);
int lopl_data_read_image(lua_State *L);

#endif
