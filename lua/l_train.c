/*
 * l_train.c - lop.train and lop.evaluate: their option tables, checked in full before
 * the engine runs, and their progress report - one updating line on stderr, or a Lua
 * function.  That function runs under lua_pcall inside the engine's callback, so an
 * error in it never unwinds through the engine's C frames: the callback cancels the
 * loop, the engine cleans up and returns, and then the saved error is raised.  The
 * function may do anything, even close the net or the data set in use; the callback
 * notices and stops the loop before the engine touches them again.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "binding.h"

/* Options at arg, checked against known; none becomes an empty table. */
static void check_options(lua_State *L, int arg, const char *fn, const char *const *known)
{
    if (!lopl_check_opts(L, arg, fn, known)) {
        lua_newtable(L);
        lua_replace(L, arg);
    }
}

/* ---- progress ------------------------------------------------------------------- */

enum { SHOW_NOTHING, SHOW_LINE, SHOW_CALL };

typedef struct progress {
    lua_State *L;
    int mode;
    const char *fn_name;       /* "train" or "evaluate", for messages */
    /* Stack slots: the progress function (SHOW_CALL) and on_epoch, or nil; the slot
     * that receives an error either of them raises. */
    int fn, on_epoch, err;
    const char *broken;        /* set when a Lua function closed or changed what is in use */
    /* What the engine is working on (the net at 1, the data set at 2), to notice a Lua
     * function closing or changing it: a set is known by its images (which padding
     * replaces) and labels (which streamed sets have alone). */
    lop_graph *g;
    uint64_t generation;
    int nodes;
    /* The same for lop.train's teacher (slot 4), when there is one. */
    lop_graph *teacher;
    uint64_t teacher_generation;
    int teacher_nodes;
    const lop_tensor *images;
    const int *labels;
    long skipped;              /* the source's count of skipped images at the start */
    /* Rate and time left count only the engine's time, not that of Lua functions
     * (on_epoch typically evaluates). */
    double start, paused, epoch_start, rate, eta;
    int first_epoch;           /* the first epoch this call runs (later when resuming) */
    int last_epoch;            /* its last (0: the schedule's last) */
    const lop_progress *p;     /* the report being delivered */
    int epoch_report;          /* delivering it to on_epoch */
    /* The terminal line: printed at most every 0.1 s, last state always shown, cut to
     * the terminal's width so that it never wraps (a wrapped line cannot be updated). */
    double shown;
    int pending, printed, width;
    char line[200];
} progress;

/* Push option `key` of the table at opts if it is a function, else nil (raising if it
 * is something else); returns its slot. */
static int push_function_option(lua_State *L, int opts, const char *fn_name, const char *key)
{
    int t = lua_getfield(L, opts, key);
    if (t != LUA_TNIL && t != LUA_TFUNCTION)
        luaL_error(L, "%s: option '%s' must be a function, got %s", fn_name, key,
                   luaL_typename(L, -1));
    return lua_gettop(L);
}

/* Read the `progress` and `on_epoch` options of the table at opts into s; pushes their
 * slots and the error slot. */
static void progress_begin(lua_State *L, progress *s, int opts, const char *fn_name)
{
    memset(s, 0, sizeof *s);
    s->L = L;
    s->fn_name = fn_name;
    s->g = lopl_check_net(L, 1);
    s->generation = lop_graph_generation(s->g);
    s->nodes = lop_graph_size(s->g);
    const lop_dataset *d = lopl_check_dataset(L, 2);
    s->images = d->images;
    s->labels = d->labels;
    s->skipped = d->source ? __atomic_load_n(&d->source->skipped, __ATOMIC_ACQUIRE) : 0;
    int t = lua_getfield(L, opts, "progress");
    if (t == LUA_TNIL)
        s->mode = isatty(2) ? SHOW_LINE : SHOW_NOTHING;
    else if (t == LUA_TBOOLEAN)
        s->mode = lua_toboolean(L, -1) ? SHOW_LINE : SHOW_NOTHING;
    else if (t == LUA_TFUNCTION)
        s->mode = SHOW_CALL;
    else
        luaL_error(L, "%s: option 'progress' must be true, false or a function, got %s",
                   fn_name, luaL_typename(L, -1));
    lua_pop(L, 1);
    if (s->mode == SHOW_CALL) {
        s->fn = push_function_option(L, opts, fn_name, "progress");
    } else {
        lua_pushnil(L);
        s->fn = lua_gettop(L);
    }
    s->on_epoch = push_function_option(L, opts, fn_name, "on_epoch");
    lua_pushnil(L);
    s->err = lua_gettop(L);
    /* The callback pushes three values; make sure it never has to grow the stack. */
    luaL_checkstack(L, 8, "progress");
    struct winsize ws;
    s->width = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col - 1
                                                                 : (int)sizeof s->line;
    s->start = s->shown = s->epoch_start = lop_seconds();
    s->first_epoch = 1;
    s->last_epoch = 0;
}

static void format_duration(char *buf, size_t size, double seconds)
{
    long s = seconds > 0 && seconds < 1e8 ? (long)(seconds + 0.5) : 0;
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

static void format_line(progress *s, const lop_progress *p)
{
    int train = strcmp(p->phase, "train") == 0;
    char eta[32], epoch[32] = "";
    format_duration(eta, sizeof eta, s->eta);
    if (train)
        snprintf(epoch, sizeof epoch, " epoch %d/%d", p->epoch, p->epochs);
    int n = snprintf(s->line, sizeof s->line,
                     "%s%s  %ld/%ld  %.0f img/s  ETA %s  loss %.4f  top-1 %.2f%%", p->phase,
                     epoch, p->done, p->total, s->rate, eta, p->loss, 100.0 * p->top1);
    if (train && n > 0 && (size_t)n < sizeof s->line)
        snprintf(s->line + n, sizeof s->line - (size_t)n, "  lr %.4g", (double)p->lr);
}

static void print_line(progress *s, double t)
{
    fprintf(stderr, "\r%.*s\x1b[K", s->width, s->line);
    fflush(stderr);
    s->shown = t;
    s->pending = 0;
    s->printed = 1;
}

/* Show the last state and move to a new line (before other output, and at the end). */
static void end_line(progress *s)
{
    if (s->pending)
        print_line(s, lop_seconds());
    if (s->printed) {
        fputc('\n', stderr);
        fflush(stderr);
    }
    s->printed = 0;
}

/* Runs under lua_pcall: the function at 1, the progress state at 2. */
static int call_with_report(lua_State *L)
{
    const progress *s = lua_touserdata(L, 2);
    const lop_progress *p = s->p;
    lua_createtable(L, 0, 11);
    lua_pushstring(L, p->phase);
    lua_setfield(L, -2, "phase");
    lua_pushinteger(L, p->epoch);
    lua_setfield(L, -2, "epoch");
    lua_pushinteger(L, p->epochs);
    lua_setfield(L, -2, "epochs");
    lua_pushinteger(L, p->done);
    lua_setfield(L, -2, "done");
    lua_pushinteger(L, p->total);
    lua_setfield(L, -2, "total");
    lua_pushnumber(L, p->loss);
    lua_setfield(L, -2, "loss");
    lua_pushnumber(L, p->top1);
    lua_setfield(L, -2, "top1");
    if (strcmp(p->phase, "train") == 0) {
        /* The float's shortest decimal form: lr = 0.05 reads back as 0.05. */
        char lr[32];
        snprintf(lr, sizeof lr, "%.7g", (double)p->lr);
        lua_pushnumber(L, strtod(lr, NULL));
        lua_setfield(L, -2, "lr");
    }
    lua_pushnumber(L, s->rate);
    lua_setfield(L, -2, "rate");
    lua_pushnumber(L, s->eta);
    lua_setfield(L, -2, "eta");
    if (s->epoch_report) {
        lua_pushnumber(L, lop_seconds() - s->epoch_start);
        lua_setfield(L, -2, "seconds");
    }
    lua_pushvalue(L, 1);
    lua_insert(L, -2);
    lua_call(L, 1, 0);
    return 0;
}

/* Call the Lua function in slot fn with the report, under pcall; nonzero when it
 * raised (the error is saved) or closed or changed the net or data set in use. */
static int call_lua(progress *s, int fn)
{
    lua_State *L = s->L;
    double t = lop_seconds();
    /* None of these pushes allocates (stack space was reserved), so nothing can raise
     * outside the pcall. */
    lua_pushcfunction(L, call_with_report);
    lua_pushvalue(L, fn);
    lua_pushlightuserdata(L, s);
    int st = lua_pcall(L, 2, 0, 0);
    s->paused += lop_seconds() - t;
    if (st != LUA_OK) {
        lua_replace(L, s->err);
        return 1;
    }
    const lopl_net *n = lua_touserdata(L, 1);
    const lopl_dataset *d = lua_touserdata(L, 2);
    const lopl_net *tn = s->teacher ? lua_touserdata(L, 4) : NULL;
    if (n->g != s->g || lop_graph_generation(s->g) != s->generation ||
        lop_graph_size(s->g) != s->nodes)
        s->broken = "a Lua function closed or changed the network in use";
    else if (tn && (tn->g != s->teacher || lop_graph_generation(s->teacher) !=
                   s->teacher_generation || lop_graph_size(s->teacher) != s->teacher_nodes))
        s->broken = "a Lua function closed or changed the teacher network";
    else if (!d->loaded || d->d.images != s->images || d->d.labels != s->labels)
        s->broken = "a Lua function closed or changed the data set in use";
    return s->broken != NULL;
}

/* The engine's progress callback; nonzero stops the loop. */
static int on_progress(void *ud, const lop_progress *p)
{
    progress *s = ud;
    if (lopl_interrupt) {
        lopl_interrupt = 0;
        s->broken = "interrupted";
        return 1;
    }
    double t = lop_seconds(), busy = t - s->start - s->paused;
    /* A resumed run is rated by its own images, not those of the epochs it skips, and
     * a run that stops early is timed to its own last epoch. */
    int last = s->last_epoch ? s->last_epoch : p->epochs;
    long done = (long)(p->epoch - s->first_epoch) * p->total + p->done;
    long all = (long)(last - s->first_epoch + 1) * p->total;
    s->rate = busy > 0 ? (double)done / busy : 0;
    s->eta = s->rate > 0 ? (double)(all - done) / s->rate : 0;
    s->p = p;
    if (s->mode == SHOW_LINE) {
        format_line(s, p);
        s->pending = 1;
        if (t - s->shown >= 0.1 || !s->printed || p->done == p->total)
            print_line(s, t);
    } else if (s->mode == SHOW_CALL && call_lua(s, s->fn)) {
        return 1;
    }
    /* The engine skips a last batch of one image (batchnorm needs two). */
    if (!lua_isnil(s->L, s->on_epoch) && p->total - p->done < 2) {
        end_line(s);
        s->epoch_report = 1;
        int stop = call_lua(s, s->on_epoch);
        s->epoch_report = 0;
        s->epoch_start = lop_seconds();
        return stop;
    }
    return 0;
}

/* After the engine returned: end the line, say how many unreadable images the run
 * skipped (unless a progress function takes the reports), and on failure raise the
 * error that stopped it (a Lua function's own, the reason the loop had to stop, or the
 * engine's).  Returns the number skipped. */
static long progress_end(progress *s, int st)
{
    lua_State *L = s->L;
    end_line(s);
    const lopl_dataset *u = lua_touserdata(L, 2);
    const lop_source *src = u->loaded ? u->d.source : NULL;
    long skipped = src ? __atomic_load_n(&src->skipped, __ATOMIC_ACQUIRE) - s->skipped : 0;
    if (skipped > 0 && s->mode != SHOW_CALL) {
        fprintf(stderr, "skipped %ld unreadable images (first: %s)\n", skipped,
                src->first_skipped);
        fflush(stderr);
    }
    if (st == LOP_OK)
        return skipped;
    if (!lua_isnil(L, s->err)) {
        lua_pushvalue(L, s->err);
        lua_error(L);
    }
    if (s->broken)
        luaL_error(L, "%s: %s", s->fn_name, s->broken);
    return lopl_fail(L, s->fn_name);
}

static int push_eval(lua_State *L, const lop_eval *e, long skipped)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, skipped);
    lua_setfield(L, -2, "skipped");
    lua_pushnumber(L, e->top1);
    lua_setfield(L, -2, "top1");
    lua_pushnumber(L, e->loss);
    lua_setfield(L, -2, "loss");
    lua_pushinteger(L, e->n);
    lua_setfield(L, -2, "n");
    return 1;
}

/* ---- lop.train, lop.evaluate ---------------------------------------------------- */

/* Node `key` of a hint (the table at -1), by name, in graph g ("the net" or "the
 * teacher" in messages). */
static int hint_node(lua_State *L, int k, const char *key, lop_graph *g, const char *whose)
{
    if (lua_getfield(L, -1, key) != LUA_TSTRING)
        luaL_error(L, "train: hints[%d].%s must be a node name of %s, got %s", k, key, whose,
                   luaL_typename(L, -1));
    int id = lop_graph_find(g, lua_tostring(L, -1));
    if (id < 0)
        luaL_error(L, "train: hints[%d].%s: %s has no node '%s'", k, key, whose,
                   lua_tostring(L, -1));
    lua_pop(L, 1);
    return id;
}

/* lop.train's option hints = {{student = name, teacher = name, channels = {...}}, ...}
 * (channels: 1-based, the teacher's channel for each of the student node's, in order;
 * default the same channels) into o, its storage a userdata pushed on the stack. */
static void check_hints(lua_State *L, int opts, lop_graph *g, lop_train_opts *o)
{
    if (lua_getfield(L, opts, "hints") == LUA_TNIL)
        return;
    if (!lua_istable(L, -1))
        luaL_error(L, "train: option 'hints' must be a list of {student=, teacher=, "
                   "channels=} tables, got %s", luaL_typename(L, -1));
    if (!o->teacher)
        luaL_error(L, "train: option 'hints' needs option 'teacher'");
    int list = lua_gettop(L);
    lua_Integer n = luaL_len(L, list);
    if (n < 1 || n > 1 << 16)
        luaL_error(L, "train: option 'hints' must list 1 to 65536 hints");
    /* one block: the hints, then each one's channel map */
    size_t bytes = (size_t)n * sizeof(lop_hint);
    for (lua_Integer k = 1; k <= n; k++) {
        if (lua_geti(L, list, k) != LUA_TTABLE)
            luaL_error(L, "train: hints[%I] must be a table, got %s", k, luaL_typename(L, -1));
        int id = hint_node(L, (int)k, "student", g, "the net"), shape[3];
        int ndim = lop_node_shape(g, id, shape);
        if (id == 0 || ndim < 1)
            luaL_error(L, "train: hints[%I].student must be a layer, not the input", k);
        bytes += (size_t)shape[0] * sizeof(int);
        lua_pop(L, 1);
    }
    lop_hint *h = lua_newuserdatauv(L, bytes, 0);
    int *maps = (int *)(h + n);
    for (lua_Integer k = 1; k <= n; k++) {
        lua_geti(L, list, k);
        h[k - 1].student = hint_node(L, (int)k, "student", g, "the net");
        h[k - 1].teacher = hint_node(L, (int)k, "teacher", o->teacher, "the teacher");
        int shape[3], tshape[3];
        lop_node_shape(g, h[k - 1].student, shape);
        lop_node_shape(o->teacher, h[k - 1].teacher, tshape);
        h[k - 1].channels = NULL;
        int t = lua_getfield(L, -1, "channels");
        if (t != LUA_TNIL) {
            if (t != LUA_TTABLE || luaL_len(L, -1) != shape[0])
                luaL_error(L, "train: hints[%I].channels must list %d channels of the "
                           "teacher's node, one for each of the net's", k, shape[0]);
            for (int c = 0; c < shape[0]; c++) {
                int isint = 0;
                lua_Integer v = 0;
                if (lua_geti(L, -1, c + 1) == LUA_TNUMBER)
                    v = lua_tointegerx(L, -1, &isint);
                if (!isint || v < 1 || v > tshape[0])
                    luaL_error(L, "train: hints[%I].channels[%d] must be a channel in 1..%d",
                               k, c + 1, tshape[0]);
                maps[c] = (int)(v - 1);
                lua_pop(L, 1);
            }
            h[k - 1].channels = maps;
            maps += shape[0];
        }
        lua_pop(L, 2);
    }
    o->hints = h;
    o->nhints = (int)n;
    o->hint_weight = (float)lopl_opt_number(L, opts, "train", "hint_weight", o->hint_weight, 0,
                                            0, FLT_MAX, ">= 0");
}

/* lop.train(net, ds, {epochs=, batch=, lr=, momentum=, nesterov=, weight_decay=,
 * schedule=, step_epochs=, gamma=, crop=, flip=, seed=, first_epoch=1, last_epoch=epochs,
 * teacher=, distill=0.5, temperature=4, hints=, hint_weight=1, progress=, on_epoch=})
 * -> {top1=, loss=, n=, skipped=} of the last epoch (running figures, on augmented
 * data; skipped: unreadable images the whole run left out).
 * first_epoch/last_epoch (1-based, inclusive) run part of the schedule, e.g. to resume.
 * on_epoch(report) runs after each epoch with the progress fields plus `seconds`, the
 * epoch's wall time (the net may be evaluated there).  teacher: a net whose logits
 * the trained one also learns from (lop_distill_xent, weight distill at temperature).
 * hints: with a teacher, nodes of the net whose outputs also learn the teacher's (see
 * check_hints), hint_weight times their mean relative squared error added to the loss
 * (and to the reported loss). */
static int l_train(lua_State *L)
{
    static const char *const known[] = {
        "epochs", "batch", "lr",   "momentum", "nesterov", "weight_decay", "schedule",
        "step_epochs", "gamma", "crop", "flip", "seed", "first_epoch", "last_epoch",
        "teacher", "distill", "temperature", "hints", "hint_weight", "progress", "on_epoch",
        NULL,
    };
    static const char *const schedules[] = {"constant", "step", "cosine", NULL};
    const char *fn = "train";
    lua_settop(L, 3);
    lopl_check_net(L, 1);
    const lop_dataset *d = lopl_check_dataset(L, 2);
    check_options(L, 3, fn, known);
    lop_train_opts o = lop_train_opts_default();
    o.epochs = lopl_opt_int(L, 3, fn, "epochs", o.epochs, 1);
    o.batch = lopl_opt_int(L, 3, fn, "batch", o.batch, 2);
    if (o.batch > d->n && d->n >= 2)   /* same steps; spares the engine a huge buffer */
        o.batch = d->n;
    o.sgd.lr = (float)lopl_opt_number(L, 3, fn, "lr", o.sgd.lr, 0, 1, FLT_MAX, "> 0");
    o.sgd.momentum = (float)lopl_opt_number(L, 3, fn, "momentum", o.sgd.momentum, 0, 0, 0.999999,
                                       "in [0, 1)");
    o.sgd.nesterov = lopl_opt_bool(L, 3, fn, "nesterov", o.sgd.nesterov);
    o.sgd.weight_decay = (float)lopl_opt_number(L, 3, fn, "weight_decay", o.sgd.weight_decay, 0, 0,
                                           FLT_MAX, ">= 0");
    if (lua_getfield(L, 3, "schedule") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "train: option 'schedule' must be \"cosine\", \"step\" or "
                              "\"constant\", got %s", luaL_typename(L, -1));
        const char *name = lua_tostring(L, -1);
        int k = 0;
        while (schedules[k] && strcmp(schedules[k], name) != 0)
            k++;
        if (!schedules[k])
            return luaL_error(L, "train: unknown schedule '%s' (use \"cosine\", \"step\" or "
                              "\"constant\")", name);
        o.schedule = (lop_schedule)k;
    }
    lua_pop(L, 1);
    if (o.schedule == LOP_SCHEDULE_STEP && lua_getfield(L, 3, "step_epochs") == LUA_TNIL)
        return luaL_error(L, "train: schedule \"step\" needs option 'step_epochs'");
    lua_settop(L, 3);
    o.step_epochs = lopl_opt_int(L, 3, fn, "step_epochs", 1, 1);
    o.gamma = (float)lopl_opt_number(L, 3, fn, "gamma", o.gamma, 0, 1, FLT_MAX, "> 0");
    int chw[3];
    lop_dataset_shape(d, chw);
    int h = chw[1], w = chw[2];
    o.augment.crop_pad = lopl_opt_int(L, 3, fn, "crop", 0, 0);
    if (o.augment.crop_pad > h || o.augment.crop_pad > w)
        return luaL_error(L, "train: option 'crop' must be at most %d for %dx%d images",
                          h < w ? h : w, h, w);
    o.augment.flip = lopl_opt_bool(L, 3, fn, "flip", 0);
    o.seed = (uint64_t)lopl_opt_int(L, 3, fn, "seed", 1, 0);
    int first_epoch = lopl_opt_int(L, 3, fn, "first_epoch", 1, 1);
    int last_epoch = lopl_opt_int(L, 3, fn, "last_epoch", o.epochs, 1);
    if (first_epoch > last_epoch || last_epoch > o.epochs)
        return luaL_error(L, "train: need 1 <= first_epoch <= last_epoch <= epochs "
                          "(got %d, %d, %d)", first_epoch, last_epoch, o.epochs);
    o.from_epoch = first_epoch - 1;
    o.until_epoch = last_epoch;
    o.distill = (float)lopl_opt_number(L, 3, fn, "distill", o.distill, 0, 0, 1, "in [0, 1]");
    o.temperature = (float)lopl_opt_number(L, 3, fn, "temperature", o.temperature, 0, 1,
                                           FLT_MAX, "> 0");
    lua_settop(L, 3);
    lua_getfield(L, 3, "teacher");   /* slot 4: kept on the stack while training */
    if (!lua_isnil(L, 4)) {
        const lopl_net *t = luaL_testudata(L, 4, LOPL_NET);
        if (!t || !t->g)
            return luaL_error(L, "train: option 'teacher' must be an open net, got %s",
                              t ? "a closed net" : luaL_typename(L, 4));
        o.teacher = t->g;
        if (o.teacher == lopl_check_net(L, 1))
            return luaL_error(L, "train: option 'teacher' must be another network than the "
                              "one trained");
    }
    check_hints(L, 3, lopl_check_net(L, 1), &o);   /* their storage: slot 5, when given */
    if (!o.nhints && lua_getfield(L, 3, "hint_weight") != LUA_TNIL)
        return luaL_error(L, "train: option 'hint_weight' goes with option 'hints'");

    progress s;
    progress_begin(L, &s, 3, fn);
    s.first_epoch = first_epoch;
    s.last_epoch = last_epoch;
    if (o.teacher) {
        s.teacher = o.teacher;
        s.teacher_generation = lop_graph_generation(o.teacher);
        s.teacher_nodes = lop_graph_size(o.teacher);
    }
    o.progress = on_progress;
    o.progress_ud = &s;
    lop_eval last;
    long skipped = progress_end(&s, lop_train(s.g, d, &o, &last));
    return push_eval(L, &last, skipped);
}

/* lop.evaluate(net, ds, {batch=256, progress=}) -> {top1=, loss=, n=, skipped=}. */
static int l_evaluate(lua_State *L)
{
    static const char *const known[] = {"batch", "progress", NULL};
    const char *fn = "evaluate";
    lua_settop(L, 3);
    lopl_check_net(L, 1);
    const lop_dataset *d = lopl_check_dataset(L, 2);
    check_options(L, 3, fn, known);
    int batch = lopl_opt_int(L, 3, fn, "batch", 256, 1);
    if (batch > d->n && d->n >= 1)
        batch = d->n;
    progress s;
    progress_begin(L, &s, 3, fn);
    lop_eval e;
    long skipped = progress_end(&s, lop_evaluate(s.g, d, batch, on_progress, &s, &e));
    return push_eval(L, &e, skipped);
}

void lopl_open_train(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"train", l_train},
        {"evaluate", l_evaluate},
        {NULL, NULL},
    };
    luaL_setfuncs(L, funcs, 0);
}
