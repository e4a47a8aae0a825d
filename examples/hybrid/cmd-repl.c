/* SPDX-License-Identifier: MIT */
/*
 * `hybrid repl [--db FILE]` and `hybrid run FILE` (doc/mmadt.md "REPL and
 * scripts"): read statements, a newline ending one once brackets, quotes,
 * comments and the `_/ \_`, `_] [_` pairs balance; print `==>obj` per result,
 * nothing for noobj, `[ERROR] message` on stdout for an error.  The repl goes
 * on after an error and exits 1 at the end if any statement failed; run stops
 * at the first error.  The host scope is chosen by the rule of every command
 * (hyb_bus_backend_open_host): --db, else --bus, else the daemon at the default
 * socket, else the default database.  Public API only.
 *
 * On a terminal (stdin and stdout) the repl edits lines with libedit: history
 * (kept in $HYBRID_HISTORY, else $XDG_STATE_HOME/hybrid/history), a "...> "
 * prompt while a statement is unfinished (an empty line ends it), Ctrl-C drops
 * the statement being typed or stops the one running, :help and :quit.  Any
 * other input (pipes, files) is read exactly as without a terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_LIBEDIT
#include <editline/readline.h>
#endif

#include <hybrid/hybrid.h>

#include <jansson.h>

#include "cli-bus.h"
#include "cli.h"

typedef struct repl {
        hyb_mmadt *vm;
        bool failed;
        bool stop_at_error;
        bool input_lines; /* not a terminal: report lines of the whole input */
        bool json;        /* --json: results as JSON documents, errors as {"error":..} */
        int line0;        /* lines of input before the chunk being run */
} repl;

/* Ctrl-C on a terminal: drop the statement being typed, stop the one running. */
static volatile sig_atomic_t interrupted;

static int print_result(const hyb_obj *o, void *userdata)
{
        const repl *R = userdata;
        char *s = NULL;

        if (interrupted)
                return 1; /* stops the run: hyb_mmadt_run_statement returns 1 */
        if (R->json) {
                if (hyb_obj_to_json(o, &s, NULL) < 0)
                        return 0;
                printf("%s\n", s);
        } else {
                if (hyb_obj_format(o, HYB_FORMAT_REPL, &s) < 0)
                        return 0;
                printf("==>%s\n", s);
        }
        fflush(stdout);
        hyb_free(s);
        return 0;
}

/* --json: {"error":{"name":..,"message":..}} on stdout, in the stream of results. */
static void print_json_error(int r, const char *m)
{
        json_t *j = json_pack("{s:{s:s, s:s}}", "error", "name", hyb_err_name(r), "message", m);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

        if (s)
                printf("%s\n", s);
        free(s);
        json_decref(j);
        fflush(stdout);
}

/* The error; a position is made relative to the whole input (chunks compile one by one). */
static void print_error(const repl *R, const hyb_error *e, int r)
{
        const char *m = e->message[0] ? e->message : hyb_strerror(r), *at;
        char suffix[64];

        if (R->json) {
                print_json_error(r, m);
                return;
        }
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
                r = hyb_mmadt_run_statement(R->vm, p, i, NULL, print_result, R, &e);
                if (r > 0 || interrupted) {
                        /* Ctrl-C: this statement and the rest of the chunk are dropped */
                        printf("[cancelled]\n");
                        fflush(stdout);
                        break;
                }
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

#ifdef HAVE_LIBEDIT
static const char repl_help[] =
        "mm-ADT statements end at a newline once brackets and quotes balance, or at ';'.\n"
        "  :help        this help\n"
        "  :quit        leave (Ctrl-D on an empty line too)\n"
        "  Ctrl-C       drop the statement being typed, or stop the one running\n"
        "  empty line   ends an unfinished statement ('...>' prompt) as it is\n"
        "  Up/Down      walk the history\n"
        "The language: doc/mmadt.md.  Examples: 1 + 2    a -> 12    *a    {1..3}.plus(1)\n";

static void on_interrupt(int sig)
{
        (void)sig;
        interrupted = 1;
}

/* The line the libedit callback delivered (NULL with eof set: Ctrl-D). */
static struct {
        char *line;
        bool done, eof;
} got;

static void on_line(char *line)
{
        got.line = line;
        got.eof = !line;
        got.done = true;
        rl_callback_handler_remove(); /* no prompt until the next install */
}

/* $HYBRID_HISTORY ("" for none), else $XDG_STATE_HOME/hybrid/history (~/.local/state). */
static char *history_path(void)
{
        const char *env = getenv("HYBRID_HISTORY"), *state = getenv("XDG_STATE_HOME");
        const char *home = getenv("HOME");
        char *dir = NULL, *path = NULL;

        if (env)
                return *env ? strdup(env) : NULL;
        if (state && *state) {
                if (asprintf(&dir, "%s/hybrid", state) < 0)
                        return NULL;
        } else if (home && *home) {
                if (asprintf(&dir, "%s/.local/state/hybrid", home) < 0)
                        return NULL;
        } else
                return NULL;
        mkdir(dir, 0700); /* the parent must exist: nothing else is created */
        if (asprintf(&path, "%s/history", dir) < 0)
                path = NULL;
        free(dir);
        return path;
}

/*
 * Reads one line with libedit, stepping the scheduler while the user types.  1 with
 * *line (malloc'ed), 0 at Ctrl-D, -1 when Ctrl-C interrupted the line.
 */
static int edit_line(repl *R, const char *prompt, char **line)
{
        bool busy = true;

        got.done = false;
        rl_callback_handler_install(prompt, on_line);
        while (!got.done) {
                struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
                int r = poll(&pfd, 1, busy ? 10 : -1);

                if (interrupted) {
                        interrupted = 0;
                        rl_replace_line("", 0);
                        rl_callback_handler_remove();
                        fputs("^C\n", stdout);
                        fflush(stdout);
                        return -1;
                }
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
                if (r > 0)
                        rl_callback_read_char();
        }
        if (got.eof) {
                fputc('\n', stdout);
                fflush(stdout);
                return 0;
        }
        *line = got.line;
        return 1;
}

static int interactive(repl *R)
{
        struct sigaction sa = {.sa_handler = on_interrupt}, old;
        char *hist = history_path(), *stmt = NULL, *line;
        size_t len = 0, alloc = 0;
        bool quit = false;

        rl_readline_name = "hybrid";
        rl_catch_signals = 0; /* Ctrl-C is ours: it cancels, it does not end the repl */
        using_history();
        stifle_history(1000);
        if (hist)
                read_history(hist);
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old); /* no SA_RESTART: poll wakes up */
        printf("hybrid %s mm-ADT repl; :help for help, :quit to leave\n", hyb_version());
        fflush(stdout);

        while (!quit) {
                int r = edit_line(R, len ? "...> " : "hybrid> ", &line);
                size_t n;

                if (r < 0) {
                        len = 0; /* Ctrl-C: the statement is dropped */
                        continue;
                }
                if (r == 0)
                        break;
                n = strlen(line);
                if (len == 0 && line[0] == ':') {
                        if (strcmp(line, ":quit") == 0 || strcmp(line, ":q") == 0)
                                quit = true;
                        else if (strcmp(line, ":help") == 0 || strcmp(line, ":h") == 0)
                                fputs(repl_help, stdout);
                        else
                                printf("unknown repl command %s (:help lists them)\n", line);
                        fflush(stdout); /* repl commands stay out of the history */
                        free(line);
                        continue;
                }
                if (n == 0 && len == 0) {
                        free(line); /* an empty line alone */
                        continue;
                }
                if (n > 0)
                        add_history(line);
                if (len + n + 2 > alloc) {
                        char *nb = realloc(stmt, (alloc = (len + n + 2) * 2));

                        if (!nb) {
                                free(line);
                                break;
                        }
                        stmt = nb;
                }
                memcpy(stmt + len, line, n);
                len += n;
                stmt[len++] = '\n';
                stmt[len] = '\0';
                free(line);
                /* an empty line ends an unfinished statement: the parser says what is missing */
                if (n == 0 || hyb_mmadt_is_complete(stmt, len)) {
                        interrupted = 0;
                        run_chunk(R, stmt, len);
                        interrupted = 0;
                        len = 0;
                }
        }
        if (len > 0)
                run_chunk(R, stmt, len); /* Ctrl-D ends the last statement, as the end of a pipe does */
        free(stmt);
        if (hist) {
                write_history(hist);
                free(hist);
        }
        sigaction(SIGINT, &old, NULL);
        hyb_mmadt_halt_all(R->vm);
        return R->failed ? EXIT_FAILED : EXIT_OK;
}
#endif

/* The host scope, by the rule of every command (doc/hybrid.md "Which store"): --db or
 * $HYBRID_DB, else --bus or $HYBRID_BUS (exit 3 if it does not answer), else the daemon at the
 * default socket if one answers, else the default database, said once on stderr. */
static int start(const cli_ctx *ctx, repl *R)
{
        hyb_backend *hb = NULL;
        hyb_scope *scope = NULL;
        hyb_error e;
        char *where = NULL;
        int source = 0, r;

        hyb_error_clear(&e);
        {
                hyb_bus_connect_options co;
                hyb_key *key = NULL;
                char *token = NULL;

                r = clibus_connect_options(ctx, &co, &token, &key);
                if (r)
                        return r;
                r = hyb_bus_backend_open_host_with(ctx->db_default ? NULL : ctx->db, &co, NULL, &hb,
                                                   &source, &where, &e);
                clibus_credentials_free(token, key);
        }
        if (r == HYB_E_UNAUTHORIZED)
                return cli_fail(EXIT_FAILED, "store", "401", "%s",
                                e.message[0] ? e.message : hyb_strerror(r));
        if (r < 0)
                return cli_fail(EXIT_UNREACHABLE, "store", hyb_err_name(r), "%s",
                                e.message[0] ? e.message : hyb_strerror(r));
        if (source == HYB_HOST_DEFAULT_BUS || source == HYB_HOST_DEFAULT_DB) {
                fprintf(stderr, "hybrid: using %s\n", where);
                fflush(stderr);
        }
        hyb_free(where);
        r = hyb_scope_new(hb, NULL, ctx->app ? ctx->app : "org.hybridos.cli", &scope);
        /* //...: the daemon's (doc/cluster.md), else the MQTT broker of --cluster or
         * $HYBRID_CLUSTER, connected at the first use */
        if (r >= 0 && hyb_bus_backend_get_bus(hb)) {
                r = hyb_scope_set_backend(scope, HYB_SCOPE_CLUSTER, hb);
        } else if (r >= 0 &&
                   (ctx->cluster || (getenv("HYBRID_CLUSTER") && *getenv("HYBRID_CLUSTER")))) {
                hyb_backend *cb = NULL;

                r = hyb_cluster_backend_new(ctx->cluster, &cb, &e);
                if (r >= 0)
                        r = hyb_scope_set_backend(scope, HYB_SCOPE_CLUSTER, cb);
                hyb_backend_unref(cb);
                if (r < 0) {
                        hyb_backend_unref(hb);
                        hyb_scope_unref(scope);
                        return cli_fail(EXIT_USAGE, "cluster", hyb_err_name(r), "%s",
                                        e.message[0] ? e.message : hyb_strerror(r));
                }
        }
        hyb_backend_unref(hb);
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
        R.json = ctx->json;
#ifdef HAVE_LIBEDIT
        if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
                r = interactive(&R);
        else
#endif
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
        R.json = ctx->json;
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
        .summary = "the mm-ADT REPL",
        .usage = "usage: hybrid repl\n"
                 "Reads mm-ADT statements (the language: doc/mmadt.md) and prints '==>obj' per\n"
                 "result, '[ERROR] message' for an error; exits 1 if a statement failed.\n"
                 "On a terminal: line editing and history, '...>' while a statement is\n"
                 "unfinished (an empty line ends it), Ctrl-C drops the statement, :help, :quit.\n"
                 "With --json each result is one JSON document per line.\n",
        .globals = CLI_G_DB | CLI_G_CLUSTER | CLI_G_BUS | CLI_G_APP | CLI_G_RUNNER | CLI_G_JSON | CLI_G_CRED,
};

const cli_command cmd_run = {
        .name = "run",
        .run = run_file,
        .options = NULL,
        .summary = "run an mm-ADT program; stops at the first error",
        .usage = "usage: hybrid run FILE|-\n"
                 "Runs the mm-ADT program in FILE ('-': stdin; the language: doc/mmadt.md),\n"
                 "printing as the REPL does; stops at the first error and exits 1.\n",
        .globals = CLI_G_DB | CLI_G_CLUSTER | CLI_G_BUS | CLI_G_APP | CLI_G_RUNNER | CLI_G_JSON | CLI_G_CRED,
};
