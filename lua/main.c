/*
 * main.c - the `lopper` executable: Lua 5.4 with the lopper module preloaded as the
 * global `lop`.  `lopper script.lua args...` runs a script with the command line in
 * `arg` and `...` exactly as lua5.4 does; with no script it is a REPL on GNU readline
 * (history in ~/.lopper_history) where an expression typed alone prints its value.
 * When stdin is not a terminal the REPL reads plain lines without prompts, so a
 * session can be scripted.  `lopper --convert in out` converts a model between .lop
 * and ONNX (lop.load(in):save(out): the input is told by content, the output by
 * its extension).
 *
 * The structure follows lua.c, Lua's own interpreter: everything runs inside one
 * protected call (pmain), chunks run under a message handler that appends a
 * traceback (here only to messages that carry a source position), a REPL line is
 * first tried as "return <line>", and a syntax error ending in "<eof>" means the
 * chunk is incomplete and needs another line.  Ctrl-C while Lua code runs sets a hook
 * that raises "interrupted!" at the next Lua instruction and asks training/evaluation
 * loops to stop after their current batch (a second Ctrl-C kills the process, for
 * when some other long C call never returns to Lua); Ctrl-C at the prompt abandons
 * the chunk being typed.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lualib.h>

#include "binding.h"
#include "lopper_lua.h"

#define PROMPT "lop> "
#define PROMPT2 "...> "
#define HISTORY_LINES 1000

static lua_State *running;                 /* the state Ctrl-C interrupts */
static volatile sig_atomic_t prompt_sigint; /* Ctrl-C seen while reading a line */
static int interactive;                    /* stdin is a terminal: readline, prompts */
static int abandon_chunk;                  /* Ctrl-C at a prompt: drop pending lines */
static char *line;                         /* the last line read (owned here, so */
static size_t line_cap;                    /*  pushing it may raise without a leak) */
static char history_path[4096];

/* ---- OpenBLAS kernels -------------------------------------------------------- */

/* Is `flag` a whole word of the /proc/cpuinfo "flags" line? */
static int has_flag(const char *flags, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = strstr(flags, flag); p; p = strstr(p + 1, flag))
        if (p[-1] == ' ' && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

/* Debian's OpenBLAS picks kernels by CPU model and falls back to slow SSE3 ones on
 * models it does not know (virtual CPUs often report none); OPENBLAS_CORETYPE
 * overrides that, but OpenBLAS reads it in its library constructor, before main.  So
 * when it is unset, choose by instruction-set flags as scripts/tools/blas_coretype.sh
 * does, set it and run this program again; the variable being set stops a second
 * round. */
static void choose_blas_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE"))
        return;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    const char *type = NULL;
    char *s = NULL;
    size_t cap = 0;
    while (getline(&s, &cap, f) > 0) {
        if (strncmp(s, "flags", 5) != 0)
            continue;
        if (has_flag(s, "avx512f") && has_flag(s, "avx512bw") && has_flag(s, "avx512dq") &&
            has_flag(s, "avx512vl") && has_flag(s, "avx512cd"))
            type = "SkylakeX";
        else if (has_flag(s, "avx2") && has_flag(s, "fma"))
            type = "Haswell";
        break;
    }
    free(s);
    fclose(f);
    if (type && setenv("OPENBLAS_CORETYPE", type, 1) == 0)
        execv("/proc/self/exe", argv);   /* returns only on failure: keep going as is */
}

/* ---- running chunks ---------------------------------------------------------- */

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void set_sigint(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* Ctrl-C while Lua runs: stop at the next instruction (lua_sethook is safe here). */
static void on_sigint_running(int sig)
{
    (void)sig;
    lopl_interrupt = 1;   /* a training or evaluation loop stops after its batch */
    set_sigint(SIG_DFL);
    lua_sethook(running, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT,
                1);
}

static void on_sigint_prompt(int sig)
{
    (void)sig;
    prompt_sigint = 1;
}

/* Whether msg's first line has a source position ("chunk:12:"), as Lua's own runtime
 * errors, error(msg) and the engine's errors raised from Lua calls do; a message raised
 * without one (error(msg, 0): the option parser's and the scripts' reports of bad
 * input) is meant for the user as it stands. */
static int has_position(const char *msg)
{
    for (const char *p = msg; *p && *p != '\n'; p++) {
        if (*p != ':' || !isdigit((unsigned char)p[1]))
            continue;
        const char *q = p + 1;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q == ':')
            return 1;
    }
    return 0;
}

/* Error objects that are not strings become one through __tostring if they can; errors
 * with a source position get a traceback (they are usually bugs), the others not. */
static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    if (has_position(msg))
        luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Call the function below its nargs arguments; on error leave the message. */
static int docall(lua_State *L, int nargs, int nresults)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    running = L;
    lopl_interrupt = 0;
    set_sigint(on_sigint_running);
    int status = lua_pcall(L, nargs, nresults, base);
    set_sigint(interactive ? on_sigint_prompt : SIG_DFL);
    lua_remove(L, base);
    return status;
}

/* Print the error message on top (prefixed outside the REPL) and pop it. */
static int report(lua_State *L, int status, const char *prefix)
{
    if (status != LUA_OK) {
        fflush(stdout);
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "%s%s\n", prefix, msg ? msg : "(error object is not a string)");
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

static int dochunk(lua_State *L, int status)
{
    if (status == LUA_OK)
        status = docall(L, 0, 0);
    return report(L, status, "lopper: ");
}

/* ---- the REPL ---------------------------------------------------------------- */

/* How the REPL shows results: like print (tostring, tab-separated), except that a
 * plain table shows a one-line preview of its first entries instead of an address. */
static const char show_source[] =
    "local MAX = 8\n"
    "local getmetatable, tostring, type, next, rawlen, rawget, math_type, min, pack, sort, "
    "  concat, format = debug.getmetatable, tostring, type, next, rawlen, rawget, math.type, "
    "  math.min, table.pack, table.sort, table.concat, string.format\n"
    "local function plain(t)\n"
    "  local mt = getmetatable(t)\n"
    "  return not (mt and mt.__tostring)\n"
    "end\n"
    "local function brief(v)\n"
    "  if type(v) == 'string' then return (format('%q', v):gsub('\\\\\\n', '\\\\n')) end\n"
    "  if type(v) == 'function' then return 'function' end\n"
    "  if type(v) == 'table' and plain(v) then return next(v) == nil and '{}' or '{...}' end\n"
    "  local s = tostring(v):match('^[^\\n]*')\n"
    "  return #s > 40 and s:sub(1, 37) .. '...' or s\n"
    "end\n"
    "local function preview(t)\n"
    "  local items, n, keys = {}, rawlen(t), {}\n"
    "  for i = 1, min(n, MAX) do items[#items + 1] = brief(rawget(t, i)) end\n"
    "  for k in next, t do\n"
    "    if not (math_type(k) == 'integer' and k >= 1 and k <= n) then keys[#keys + 1] = k end\n"
    "  end\n"
    "  sort(keys, function(a, b) return tostring(a) < tostring(b) end)\n"
    "  for i = 1, min(#keys, MAX - #items) do\n"
    "    local k = keys[i]\n"
    "    local name = type(k) == 'string' and k:match('^[%a_][%w_]*$') or '[' .. brief(k) .. ']'\n"
    "    items[#items + 1] = name .. ' = ' .. brief(rawget(t, k))\n"
    "  end\n"
    "  if n + #keys > #items then items[#items + 1] = format('... (%d more)', n + #keys - #items) end\n"
    "  return '{' .. concat(items, ', ') .. '}'\n"
    "end\n"
    "return function(...)\n"
    "  local out = pack(...)\n"
    "  for i = 1, out.n do\n"
    "    local v = out[i]\n"
    "    out[i] = type(v) == 'table' and plain(v) and preview(v) or tostring(v)\n"
    "  end\n"
    "  return concat(out, '\\t', 1, out.n)\n"
    "end\n";

/* Read one line into `line` (without its newline); 0 at end of input. */
static int read_line(const char *prompt)
{
    if (interactive) {
        free(line);
        line = readline(prompt);
        return line != NULL;
    }
    ssize_t n = getline(&line, &line_cap, stdin);
    if (n < 0)
        return 0;
    if (n > 0 && line[n - 1] == '\n')
        line[n - 1] = '\0';
    return 1;
}

/* At the prompt, Ctrl-C abandons what is being typed, as in a shell.  readline echoes
 * ^C, passes the signal on to on_sigint_prompt and then calls this hook, outside the
 * signal handler, where redrawing is safe. */
static int prompt_hook(void)
{
    if (prompt_sigint) {
        prompt_sigint = 0;
        abandon_chunk = 1;
        rl_replace_line("", 0);
        rl_crlf();
        rl_set_prompt(PROMPT);
        rl_on_new_line();
        rl_redisplay();
    }
    return 0;
}

static void save_history(void)
{
    if (write_history(history_path) == 0)
        history_truncate_file(history_path, HISTORY_LINES);
    rl_clear_history();
}

static void start_readline(void)
{
    rl_readline_name = "lopper";
    rl_signal_event_hook = prompt_hook;
    using_history();
    stifle_history(HISTORY_LINES);
    const char *home = getenv("HOME");
    int n = home ? snprintf(history_path, sizeof history_path, "%s/.lopper_history", home)
                 : -1;
    if (n > 0 && (size_t)n < sizeof history_path) {
        read_history(history_path);   /* a missing or unreadable file is no reason to stop */
        atexit(save_history);
    }
}

/* Push the next line; 0 at end of input. */
static int pushline(lua_State *L, int first)
{
    if (!read_line(first ? PROMPT : PROMPT2))
        return 0;
    lua_pushstring(L, line);
    return 1;
}

static int incomplete(lua_State *L, int status)
{
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    return status == LUA_ERRSYNTAX && len >= 5 && strcmp(msg + len - 5, "<eof>") == 0;
}

static void keep_in_history(const char *chunk)
{
    if (interactive && chunk[0])
        add_history(chunk);
}

/* Compile the next chunk: leaves a function (LUA_OK) or an error message alone on the
 * stack, or returns -1 at end of input.  A chunk is first tried as an expression, so
 * that its value can be printed; it needs another line while either reading of it
 * ends early (the message ends in "<eof>"). */
static int loadline(lua_State *L)
{
    lua_settop(L, 0);
    if (!pushline(L, 1))
        return -1;
    abandon_chunk = 0;
    for (;;) {
        size_t len;
        const char *chunk = lua_tolstring(L, 1, &len);
        const char *ret = lua_pushfstring(L, "return %s", chunk);
        int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
        int more = incomplete(L, status);
        if (status != LUA_OK) {
            lua_settop(L, 1);
            status = luaL_loadbuffer(L, chunk, len, "=stdin");
            more = status != LUA_OK && (more || incomplete(L, status));
        }
        if (!more || !pushline(L, 0)) {
            keep_in_history(chunk);
            lua_replace(L, 1);
            lua_settop(L, 1);
            return status;
        }
        lua_remove(L, -2);   /* the message; the new line is on top */
        if (abandon_chunk) { /* Ctrl-C while continuing: start again from this line */
            abandon_chunk = 0;
            lua_replace(L, 1);
            continue;
        }
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

static void repl(lua_State *L)
{
    if (luaL_loadstring(L, show_source) != LUA_OK)
        lua_error(L);
    lua_call(L, 0, 1);
    int show = luaL_ref(L, LUA_REGISTRYINDEX);
    if (interactive) {
        lua_getglobal(L, "lop");
        lua_getfield(L, -1, "version");
        printf("lopper %s on %s - `lop` is loaded; Ctrl-D exits\n",
               luaL_optstring(L, -1, "?"), LUA_RELEASE);
        lua_pop(L, 2);
        start_readline();
    }
    set_sigint(interactive ? on_sigint_prompt : SIG_DFL);
    int status;
    while ((status = loadline(L)) != -1) {
        if (status == LUA_OK)
            status = docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK && lua_gettop(L) > 0) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, show);
            lua_insert(L, 1);
            status = docall(L, lua_gettop(L) - 1, 1);
            if (status == LUA_OK)
                puts(lua_tostring(L, -1));
        }
        fflush(stdout);
        report(L, status, "");
        lua_settop(L, 0);
    }
    if (interactive)
        putchar('\n');
    luaL_unref(L, LUA_REGISTRYINDEX, show);
}

/* ---- the command line -------------------------------------------------------- */

static const char usage[] =
    "usage: lopper [options] [script [args]]\n"
    "  -e code  run code (may repeat)\n"
    "  --convert in out\n"
    "           convert a model: .lop or ONNX in (by content), out by extension\n"
    "           (.onnx is ONNX, anything else .lop)\n"
    "  -i       start the REPL after the script\n"
    "  -v       print the version\n"
    "  -h       print this help\n"
    "  --       stop handling options\n"
    "  -        run the script read from stdin\n"
    "With no script and no -e, start the REPL (it reads plain lines when stdin is not a\n"
    "terminal).  The module is preloaded as the global `lop`.\n";

typedef struct options {
    int script;   /* index of the script in argv, or argc if none */
    int repl, version, help, has_e;
    int convert;  /* index of --convert's input path in argv, 0 if none */
} options;

/* Returns 0 on a bad option (after printing why). */
static int parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    int i;
    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (strcmp(a, "-i") == 0) {
            o->repl = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            o->version = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->help = 1;
        } else if (strcmp(a, "--convert") == 0) {
            if (i + 2 >= argc) {
                fprintf(stderr, "lopper: '--convert' needs an input and an output path\n%s",
                        usage);
                return 0;
            }
            o->convert = i + 1;
            i += 2;
        } else if (strncmp(a, "-e", 2) == 0) {
            if (a[2] == '\0' && ++i >= argc) {
                fprintf(stderr, "lopper: '-e' needs an argument\n%s", usage);
                return 0;
            }
            o->has_e = 1;
        } else {
            fprintf(stderr, "lopper: unrecognized option '%s'\n%s", a, usage);
            return 0;
        }
    }
    o->script = i;
    return 1;
}

/* arg[0] is the script, arg[1..] its arguments, negative indices what came before
 * (with no script, arg[0] is the program). */
static void create_arg_table(lua_State *L, int argc, char **argv, int script)
{
    if (script == argc)
        script = 0;
    lua_createtable(L, argc - script - 1, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int run_e_options(lua_State *L, int argc, char **argv, int script)
{
    for (int i = 1; i < script; i++) {
        if (strncmp(argv[i], "-e", 2) != 0)
            continue;
        const char *code = argv[i][2] ? argv[i] + 2 : argv[++i];
        if (dochunk(L, luaL_loadbuffer(L, code, strlen(code), "=(command line)")) != LUA_OK)
            return 0;
    }
    return 1;
}

static int run_script(lua_State *L, int argc, char **argv, int script)
{
    const char *name = argv[script];
    if (strcmp(name, "-") == 0 && strcmp(argv[script - 1], "--") != 0)
        name = NULL;   /* stdin */
    int status = luaL_loadfile(L, name);
    if (status == LUA_OK) {
        int n = argc - script - 1;
        luaL_checkstack(L, n, "too many arguments to script");
        for (int i = script + 1; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = docall(L, n, 0);
    }
    return report(L, status, "lopper: ") == LUA_OK;
}

/* --convert: a failure is one line for the user, without position or traceback. */
static int run_convert(lua_State *L, const char *in, const char *out)
{
    static const char code[] =
        "local from, to = ...\n"
        "local ok, err = pcall(function() lop.load(from):save(to) end)\n"
        "if not ok then error((tostring(err):gsub('^%(%-%-convert%):%d+: ', '')), 0) end\n";
    int status = luaL_loadbuffer(L, code, sizeof code - 1, "=(--convert)");
    if (status == LUA_OK) {
        lua_pushstring(L, in);
        lua_pushstring(L, out);
        status = docall(L, 2, 0);
    }
    return report(L, status, "lopper: ") == LUA_OK;
}

/* Everything that touches Lua, inside one protected call; returns a boolean. */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    options o;
    if (!parse_options(argc, argv, &o))
        return 0;
    if (o.help) {
        fputs(usage, stdout);
        lua_pushboolean(L, 1);
        return 1;
    }
    luaL_checkversion(L);
    luaL_openlibs(L);
    lua_gc(L, LUA_GCGEN, 0, 0);   /* as lua5.4 runs, so scripts behave the same */
    luaL_requiref(L, "lopper", luaopen_lopper, 0);
    lua_setglobal(L, "lop");
    create_arg_table(L, argc, argv, o.script);
    if (o.version) {
        lua_getglobal(L, "lop");
        lua_getfield(L, -1, "version");
        printf("lopper %s on %s\n", luaL_optstring(L, -1, "?"), LUA_RELEASE);
        lua_pop(L, 2);
    }
    if (o.convert && !run_convert(L, argv[o.convert], argv[o.convert + 1]))
        return 0;
    if (!run_e_options(L, argc, argv, o.script))
        return 0;
    if (o.script < argc && !run_script(L, argc, argv, o.script))
        return 0;
    if (o.repl || (o.script == argc && !o.has_e && !o.version && !o.convert)) {
        interactive = isatty(STDIN_FILENO);
        repl(L);
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv)
{
    choose_blas_kernels(argv);
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "lopper: cannot create a Lua state: not enough memory\n");
        return EXIT_FAILURE;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = status == LUA_OK && lua_toboolean(L, -1);
    if (status != LUA_OK)
        report(L, status, "lopper: ");
    lua_close(L);
    free(line);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
