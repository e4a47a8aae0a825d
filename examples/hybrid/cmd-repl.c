/* SPDX-License-Identifier: MIT */
/*
 * `hybrid repl [--db FILE]` and `hybrid run FILE` (spec/mmadt.md "REPL and
 * scripts"): read statements, a newline ending one once brackets, quotes,
 * comments and the `_/ \_`, `_] [_` pairs balance; print `==>obj` per result,
 * nothing for noobj, `[ERROR] message` on stdout for an error.  The repl goes
 * on after an error and exits 1 at the end if any statement failed; run stops
 * at the first error.  The host scope is an in-process store, or the database
 * named by --db / $HYBRID_DB.  Public API only.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hybrid/hybrid.h>

#include "cli.h"

typedef struct repl {
        hyb_mmadt *vm;
        bool failed;
        bool stop_at_error;
        bool input_lines; /* not a terminal: report lines of the whole input */
        int line0;        /* lines of input before the chunk being run */
} repl;

static int print_result(const hyb_obj *o, void *userdata)
{
        char *s = NULL;

        if (hyb_obj_format(o, HYB_FORMAT_REPL, &s) < 0)
                return 0;
        printf("==>%s\n", s);
        fflush(stdout);
        hyb_free(s);
        return 0;
}

/* The error; a position is made relative to the whole input (chunks compile one by one). */
static void print_error(const repl *R, const hyb_error *e, int r)
{
        const char *m = e->message[0] ? e->message : hyb_strerror(r), *at;
        char suffix[64];

        snprintf(suffix, sizeof(suffix), " at line %d column %d", e->line, e->column);
        at = strstr(m, suffix);
        if (R->input_lines && R->line0 > 0 && e->line > 0 && at && !at[strlen(suffix)])
                printf("[ERROR] %.*s at line %d column %d\n", (int)(at - m), m,
                       e->line + R->line0, e->column);
        else
                printf("[ERROR] %s\n", m);
        fflush(stdout);
}

/* Compiles and runs one complete chunk; false when run should stop. */
static bool run_chunk(repl *R, const char *text, size_t len)
{
        hyb_mmadt_program *p = NULL;
        hyb_error e;
        int r;

        r = hyb_mmadt_compile(R->vm, text, len, &p, &e);
        if (r < 0) {
                print_error(R, &e, r);
                R->failed = true;
                return !R->stop_at_error;
        }
        for (size_t i = 0; i < hyb_mmadt_program_get_n_statements(p); i++) {
                r = hyb_mmadt_run_statement(R->vm, p, i, NULL, print_result, NULL, &e);
                if (r < 0) {
                        print_error(R, &e, r);
                        R->failed = true;
                        if (R->stop_at_error)
                                break;
                }
                /* a scheduler turn between statements */
                r = hyb_mmadt_step(R->vm, &e);
                if (r < 0) {
                        print_error(R, &e, r);
                        R->failed = true;
                        if (R->stop_at_error)
                                break;
                }
        }
        hyb_mmadt_program_unref(p);
        return !(R->failed && R->stop_at_error);
}

/*
 * Reads one line (with its newline, if any) into *line; 1 when read, 0 at the end of input.
 * While no input is ready, the scheduler takes turns (threads and fibers keep running).
 */
static int read_line(repl *R, int fd, char **buf, size_t *len, size_t *alloc, char **line,
                     size_t *line_len)
{
        bool busy = true;

        for (;;) {
                char *nl = *len ? memchr(*buf, '\n', *len) : NULL;
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                ssize_t n;
                int r;

                if (nl) {
                        *line_len = nl - *buf + 1;
                        *line = *buf;
                        return 1;
                }
                /* step the scheduler while waiting, as long as it has something to do */
                r = poll(&pfd, 1, busy ? 10 : -1);
                if (r == 0) {
                        hyb_error e;
                        r = hyb_mmadt_step(R->vm, &e);
                        if (r < 0) {
                                print_error(R, &e, r);
                                R->failed = true;
                        }
                        busy = r > 0;
                        continue;
                }
                if (*len + 4096 > *alloc) {
                        char *nb = realloc(*buf, *alloc = (*len + 4096) * 2);
                        if (!nb)
                                return 0;
                        *buf = nb;
                }
                n = read(fd, *buf + *len, *alloc - *len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0) {
                        if (*len == 0)
                                return 0;
                        *line = *buf; /* the last line, without a newline */
                        *line_len = *len;
                        return 1;
                }
                *len += n;
        }
}

static int loop(repl *R, int fd, bool prompt)
{
        R->input_lines = !prompt;
        char *in = NULL, *stmt = NULL, *line;
        size_t in_len = 0, in_alloc = 0, len = 0, alloc = 0, n;

        for (;;) {
                if (prompt && len == 0) {
                        fputs("hybrid> ", stdout);
                        fflush(stdout);
                }
                if (!read_line(R, fd, &in, &in_len, &in_alloc, &line, &n))
                        break;
                if (len + n + 1 > alloc) {
                        char *nb = realloc(stmt, (alloc = (len + n + 1) * 2));
                        if (!nb)
                                break;
                        stmt = nb;
                }
                memcpy(stmt + len, line, n);
                len += n;
                stmt[len] = '\0';
                memmove(in, in + n, in_len - n);
                in_len -= n;
                if (!hyb_mmadt_is_complete(stmt, len))
                        continue;
                if (!run_chunk(R, stmt, len)) {
                        len = 0;
                        break;
                }
                for (size_t i = 0; i < len; i++)
                        R->line0 += stmt[i] == '\n';
                len = 0;
        }
        if (len > 0)
                run_chunk(R, stmt, len); /* the end of input ends the last statement */
        free(in);
        free(stmt);
        hyb_mmadt_halt_all(R->vm);
        return R->failed ? EXIT_FAILED : EXIT_OK;
}

/* The host store: the database given by --db or $HYBRID_DB, else in-process memory. */
static int open_host(const cli_ctx *ctx, hyb_store **ret)
{
        const char *env = getenv("HYBRID_DB");
        const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
        char dflt[4096];
        hyb_error e;
        int r;

        if (xdg && *xdg)
                snprintf(dflt, sizeof(dflt), "%s/hybrid/store.db", xdg);
        else
                snprintf(dflt, sizeof(dflt), "%s/.local/share/hybrid/store.db", home ? home : ".");
        *ret = NULL;
        if (!ctx->db || (strcmp(ctx->db, dflt) == 0 && !(env && *env)))
                return 0;
        r = hyb_store_open(ctx->db, NULL, ret, &e);
        if (r < 0)
                return cli_fail(EXIT_UNREACHABLE, "open database", hyb_err_name(r), "%s: %s",
                                ctx->db, e.message);
        return 0;
}

static int start(const cli_ctx *ctx, repl *R)
{
        hyb_store *host = NULL;
        hyb_scope *scope = NULL;
        int r = open_host(ctx, &host);

        if (r > 0)
                return r;
        r = hyb_scope_new(host, ctx->app ? ctx->app : "org.hybridos.cli", &scope);
        hyb_store_unref(host);
        if (r >= 0)
                r = hyb_mmadt_new(scope, ctx->app, NULL, &R->vm);
        hyb_scope_unref(scope);
        if (r < 0)
                return cli_fail(EXIT_FAILED, "mmadt", hyb_err_name(r), "%s", hyb_strerror(r));
        return 0;
}

static int run_repl(cli_ctx *ctx)
{
        repl R = {0};
        int r;

        if (ctx->nargs > 0)
                return cli_usage(ctx, "repl takes no arguments");
        r = start(ctx, &R);
        if (r)
                return r;
        r = loop(&R, STDIN_FILENO, isatty(STDIN_FILENO));
        hyb_mmadt_unref(R.vm);
        return r;
}

static int run_file(cli_ctx *ctx)
{
        repl R = {.stop_at_error = true};
        int fd, r;

        if (ctx->nargs != 1)
                return cli_usage(ctx, "run needs one FILE");
        fd = strcmp(ctx->args[0], "-") == 0 ? STDIN_FILENO
                                            : open(ctx->args[0], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return cli_fail(EXIT_FAILED, "run", "ENOENT", "cannot open %s", ctx->args[0]);
        r = start(ctx, &R);
        if (!r) {
                r = loop(&R, fd, false);
                hyb_mmadt_unref(R.vm);
        }
        if (fd != STDIN_FILENO)
                close(fd);
        return r;
}

const cli_command cmd_repl = {
        .name = "repl",
        .run = run_repl,
        .options = NULL,
        .usage = "hybrid repl [--db FILE]      the mm-ADT REPL (statements from stdin)\n",
};

const cli_command cmd_run = {
        .name = "run",
        .run = run_file,
        .options = NULL,
        .usage = "hybrid run FILE              run an mm-ADT program; stops at the first error\n",
};
