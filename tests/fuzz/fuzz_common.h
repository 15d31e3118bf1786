/*
 * fuzz_common.h - what the two libFuzzer targets (fuzz_onnx.c, fuzz_modelfile.c)
 * share.  The model readers take a path, so each input is written to a file in a
 * private directory (under /dev/shm when there is one: saving fsyncs; the name holds
 * the pid, so what a crashed process leaves is removed by the next); a model that
 * loads is then run once on a tiny batch when it is small, and saved back, so the
 * layers' forward passes and both writers see what the readers let through.  Real
 * bugs end the run with abort() and a message, which libFuzzer reports with the input.
 */
#ifndef LOPPER_FUZZ_COMMON_H
#define LOPPER_FUZZ_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Work bounds for the forward pass: libFuzzer wants thousands of inputs a second. */
#define FUZZ_MAX_FLOPS 4e6          /* per sample */
#define FUZZ_MAX_PARAMS 1000000
#define FUZZ_MAX_ACTIVATIONS 1e6    /* per sample, summed over the nodes' outputs */
#define FUZZ_BATCH 2

static char fuzz_dir[256];
static int fuzz_verbose;   /* FUZZ_VERBOSE=1: say what each call returned (replaying) */
static const char *const fuzz_files[] = {"in", "labels", "out.onnx", "out.lop", NULL};

/* Remove dir/<each of fuzz_files> and dir. */
static void fuzz_remove_dir(const char *dir)
{
    char path[512];
    for (const char *const *n = fuzz_files; *n; n++) {
        snprintf(path, sizeof path, "%s/%s", dir, *n);
        unlink(path);
    }
    rmdir(dir);
}

static void fuzz_cleanup(void)
{
    if (fuzz_dir[0])
        fuzz_remove_dir(fuzz_dir);
}

/* A crash or a timeout ends the process without atexit: the directories of dead
 * processes (lopper-fuzz-<pid>-XXXXXX) are removed by the next one. */
static void fuzz_sweep(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid;
        char path[512];
        if (sscanf(e->d_name, "lopper-fuzz-%ld-", &pid) != 1 || pid <= 0 ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "%s/%s", base, e->d_name);
        fuzz_remove_dir(path);
    }
    if (d)
        closedir(d);
}

/* One engine thread, so a run is deterministic and the two cores stay for the fuzzer
 * itself. */
static void fuzz_init(void)
{
    const char *v = getenv("FUZZ_VERBOSE");
    fuzz_verbose = v && atoi(v) > 0;
    setenv("LOP_THREADS", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
}

/* dir/name in this process's private directory, made on first use (so the parent of
 * -jobs, which runs no input, makes none). */
static void fuzz_path(char *out, size_t size, const char *name)
{
    if (!fuzz_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        base = base ? base : "/tmp";
        fuzz_sweep(base);
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/lopper-fuzz-%ld-XXXXXX", base,
                 (long)getpid());
        if (!mkdtemp(fuzz_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_cleanup);
    }
    snprintf(out, size, "%s/%s", fuzz_dir, name);
}

/* Replace the file at path by n bytes of data. */
static void fuzz_write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: open");
        abort();
    }
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            perror("fuzz: write");
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
    close(fd);
}

/* A failure that is a bug whatever the input: report it as a crash. */
static void fuzz_bug(const char *what)
{
    fprintf(stderr, "fuzz: BUG: %s: %s\n", what, lop_errmsg());
    fuzz_cleanup();
    abort();
}

/* A failed call must leave a message (the engine's contract). */
static void fuzz_check_failure(int st, const char *what)
{
    if (fuzz_verbose)
        fprintf(stderr, "fuzz: %s: %s %s\n", what, lop_status_name(st),
                st == LOP_OK ? "" : lop_errmsg());
    if (st != LOP_OK && lop_errmsg()[0] == '\0') {
        fprintf(stderr, "fuzz: BUG: %s failed (%s) without a message\n", what,
                lop_status_name(st));
        abort();
    }
}

/* Whether one forward pass of g is cheap enough to run for every input (and
 * possible: a graph without a layer, which a .lop file may hold, is refused). */
static inline int fuzz_small(const lop_graph *g)
{
    double acts = 0;
    if (lop_graph_size(g) < 2)
        return 0;
    int shape[3];
    for (int i = 0; i < lop_graph_size(g); i++)
        acts += (double)lop_shape_numel(lop_node_shape(g, i, shape), shape);
    return lop_graph_flops(g) <= FUZZ_MAX_FLOPS && lop_graph_params(g) <= FUZZ_MAX_PARAMS &&
           acts <= FUZZ_MAX_ACTIVATIONS;
}

/* One eval-mode forward pass on a fixed batch of FUZZ_BATCH samples; the engine
 * checked every shape when the graph was built, so it must not fail. */
static inline void fuzz_forward(lop_graph *g)
{
    int shape[1 + 3];
    int nd = lop_node_shape(g, 0, shape + 1);
    shape[0] = FUZZ_BATCH;
    lop_tensor *x = lop_tensor_new(nd + 1, shape);
    if (!x)
        fuzz_bug("lop_tensor_new for the input");
    for (size_t i = 0; i < x->numel; i++)
        x->data[i] = (float)sin(0.37 * (double)i);
    int st = lop_graph_forward(g, x, 0);
    if (st != LOP_OK)
        fuzz_bug("forward pass of a graph that loaded");
    const lop_tensor *y = lop_graph_output(g);
    int out[3];
    size_t want = FUZZ_BATCH * lop_shape_numel(lop_node_shape(g, lop_graph_size(g) - 1, out),
                                               out);
    if (!y || y->numel != want)
        fuzz_bug("forward pass: output of the wrong size");
    lop_tensor_release(x);
}

#endif
