/* SPDX-License-Identifier: MIT */
/*
 * `hybrid store put|get|del|watch|check`: the fURI tuple store through the
 * public API only (doc/hybrid.md, doc/store.md).  The host-scope backend is
 * chosen by the rule of doc/hybrid.md "Which store" (hyb_bus_backend_open_host):
 * the embedded store on --db, or a daemon's; fURIs go through the scope router
 * so `//x` fails with the scope's name, and relative fURIs are refused (exit 2).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hybrid/hybrid.h>
#include <jansson.h>

#include "cli.h"
#include "cli-bus.h"

static const cli_option store_options[] = {
        { "durability", true, "--durability memory|normal|full   how writes reach the disk (default normal)" },
        { "transient", false, "--transient     put: notify subscribers without storing" },
        { "replay", false, "--replay        watch: first print the stored values that match" },
        { "count", true, "--count N       watch: exit after N messages" },
        { NULL, false, NULL },
};

static int fail(int status, int r, const hyb_error *e)
{
        char code[24];

        /* The numeric bus status where one applies (403 from policy.store), else the name. */
        if (r <= -(HYB_E_BASE + 100) && r > -(HYB_E_BASE + 600))
                snprintf(code, sizeof code, "%d", hyb_err_to_status(r));
        else
                snprintf(code, sizeof code, "%s", hyb_err_name(r));
        return cli_fail(status, "store", code, "%s",
                        e && e->message[0] ? e->message : hyb_strerror(r));
}

static int status_of(int r)
{
        if (r == HYB_E_CLOSED)
                return EXIT_UNREACHABLE; /* the daemon closed the connection */
        return r == -EINVAL || r == HYB_E_PARSE ? EXIT_USAGE : EXIT_FAILED;
}

static int print_obj_line(const char *prefix, const hyb_obj *o, bool json)
{
        char *s = NULL;
        int r;

        if (json)
                r = hyb_obj_to_json(o, &s, NULL);
        else
                r = hyb_obj_format(o, HYB_FORMAT_EXACT, &s); /* reads back as the same obj */
        if (r < 0)
                return r;
        if (prefix)
                cli_println("%s\t%s", prefix, s);
        else
                cli_println("%s", s);
        hyb_free(s);
        return 0;
}

static volatile sig_atomic_t stop;

typedef struct watch_ctx {
        bool json;
        long left; /* messages still wanted; < 0: no limit */
} watch_ctx;

static void print_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        watch_ctx *w = ud;

        if (stop)
                return;
        if (hyb_obj_is_noobj(payload) && !w->json)
                cli_println("%s\tnoobj", hyb_furi_get_str(target));
        else
                print_obj_line(hyb_furi_get_str(target), payload, w->json);
        if (w->left > 0 && --w->left == 0)
                stop = 1;
}

/* ---- store check ---- */

typedef struct check_ctx {
        bool json;
        json_t *problems;
} check_ctx;

/* A damaged key may hold any bytes: ASCII controls and bytes past it are shown as \xNN, so a
 * line stays one line and JSON stays valid UTF-8. */
static char *printable(const char *s)
{
        char *out = malloc(4 * strlen(s) + 1), *q = out;

        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p < 0x20 || *p >= 0x7f || *p == '\\')
                        q += sprintf(q, "\\x%02x", *p);
                else
                        *q++ = (char)*p;
        }
        *q = '\0';
        return out;
}

static void print_problem(const char *furi, const char *problem, void *ud)
{
        check_ctx *c = ud;
        char *f = furi ? printable(furi) : NULL, *what = printable(problem);

        if (c->json)
                json_array_append_new(c->problems, json_pack("{s:s?,s:s}", "furi", f, "problem",
                                                             what ? what : "?"));
        else
                cli_println("%s\t%s", f ? f : "(database)", what ? what : "?");
        free(f);
        free(what);
}

/* `store check`: exit 0 when sound (prints "ok"), 1 listing the damage, 3 when the file cannot
 * be checked (missing, not a store database). */
static int run_check(cli_ctx *ctx)
{
        check_ctx c = { .json = ctx->json };
        hyb_error e = { 0 };
        int r;

        if (ctx->nargs != 1)
                return cli_usage(ctx, "'store check' takes no arguments (the file is --db FILE)");
        if (cli_opt(ctx, "durability") || cli_flag(ctx, "replay") || cli_opt(ctx, "count"))
                return cli_usage(ctx, "'store check' takes only --db and --json");
        c.problems = json_array();
        if (!c.problems)
                return fail(EXIT_FAILED, -ENOMEM, NULL);
        r = hyb_store_check(ctx->db, print_problem, &c, &e);
        if (r < 0) {
                json_decref(c.problems);
                return fail(EXIT_UNREACHABLE, r, &e);
        }
        if (c.json) {
                json_t *doc = json_pack("{s:s,s:b,s:o}", "database", ctx->db, "sound", r == 0,
                                        "problems", c.problems);
                char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
                if (text)
                        cli_println("%s", text);
                free(text);
                json_decref(doc);
        } else {
                json_decref(c.problems);
                if (r == 0)
                        cli_println("ok");
        }
        if (r == 0)
                return EXIT_OK;
        return cli_fail(EXIT_FAILED, "store", hyb_err_name(HYB_E_CORRUPT),
                        "%s: %d problem%s found (the database is corrupt)", ctx->db, r,
                        r == 1 ? "" : "s");
}

static void on_signal(int sig)
{
        (void)sig;
        stop = 1;
}

static int run_store(cli_ctx *ctx)
{
        const char *sub = ctx->nargs > 0 ? ctx->args[0] : NULL, *dur = cli_opt(ctx, "durability");
        hyb_store_options opts;
        hyb_backend *hb = NULL, *b = NULL;
        char *where = NULL;
        int source = 0;
        hyb_scope *sc = NULL;
        hyb_furi *furi = NULL, *target = NULL;
        hyb_obj *value = NULL;
        hyb_slot *slot = NULL;
        hyb_error e = { 0 };
        int want, r, status = EXIT_OK;
        long count;

        if (!sub)
                return cli_usage(ctx, "a subcommand is needed: put, get, del, watch or check");
        if (strcmp(sub, "check") == 0)
                return run_check(ctx);
        if (strcmp(sub, "put") == 0)
                want = 3;
        else if (strcmp(sub, "get") == 0 || strcmp(sub, "del") == 0 || strcmp(sub, "watch") == 0)
                want = 2;
        else
                return cli_usage(ctx, "unknown subcommand '%s'", sub);
        if (ctx->nargs != want)
                return cli_usage(ctx, "'store %s' takes %s", sub,
                                 want == 3 ? "a fURI and an obj" : "one fURI or pattern");
        if (cli_flag(ctx, "replay") && strcmp(sub, "watch") != 0)
                return cli_usage(ctx, "--replay is for 'store watch'");
        if (cli_flag(ctx, "count") && strcmp(sub, "watch") != 0)
                return cli_usage(ctx, "--count is for 'store watch'");
        if (cli_flag(ctx, "transient") && strcmp(sub, "put") != 0)
                return cli_usage(ctx, "--transient is for 'store put'");
        if (!cli_opt_long(ctx, "count", -1, 1, 1000000000, &count))
                return EXIT_USAGE;

        hyb_store_options_init(&opts);
        if (!dur || strcmp(dur, "normal") == 0)
                opts.durability = HYB_DURABILITY_NORMAL;
        else if (strcmp(dur, "memory") == 0)
                opts.durability = HYB_DURABILITY_MEMORY;
        else if (strcmp(dur, "full") == 0)
                opts.durability = HYB_DURABILITY_FULL;
        else
                return cli_usage(ctx, "--durability is memory, normal or full, not '%s'", dur);

        r = hyb_furi_parse(ctx->args[1], (size_t)-1, NULL, &furi, &e);
        if (r < 0)
                return fail(EXIT_USAGE, r, &e);
        if (!hyb_furi_is_absolute(furi)) {
                status = cli_fail(EXIT_USAGE, "store", "EINVAL",
                                  "'%s' is relative: relative fURIs (program scope) mean nothing "
                                  "outside a running program",
                                  ctx->args[1]);
                goto out;
        }
        if (want == 3) {
                if (ctx->json)
                        r = hyb_obj_from_json(ctx->args[2], (size_t)-1, &value, &e);
                else
                        r = hyb_obj_parse(ctx->args[2], (size_t)-1, &value, &e);
                if (r < 0) {
                        status = fail(EXIT_USAGE, r, &e);
                        goto out;
                }
        }

        /* Which store (doc/hybrid.md): --db/$HYBRID_DB, else --bus/$HYBRID_BUS, else the daemon
         * at the default socket if one answers, else the default database, said once. */
        {
                hyb_bus_connect_options co;
                hyb_key *key = NULL;
                char *token = NULL;

                status = clibus_connect_options(ctx, &co, &token, &key);
                if (status)
                        goto out;
                r = hyb_bus_backend_open_host_with(ctx->db_default ? NULL : ctx->db, &co, &opts, &hb,
                                                   &source, &where, &e);
                clibus_credentials_free(token, key);
        }
        if (r < 0) {
                /* Refused for its credentials: the daemon was reached (401, exit 1). */
                status = fail(r == HYB_E_UNAUTHORIZED ? EXIT_FAILED : EXIT_UNREACHABLE, r, &e);
                goto out;
        }
        if (source == HYB_HOST_DEFAULT_BUS || source == HYB_HOST_DEFAULT_DB) {
                fprintf(stderr, "hybrid: using %s\n", where);
                fflush(stderr);
        }
        r = hyb_scope_new(hb, NULL, ctx->app, &sc);
        /* A daemon serves the cluster scope //... too, when it has cluster: (doc/cluster.md);
         * without one, the MQTT broker named by --cluster or $HYBRID_CLUSTER does. */
        if (r >= 0 && hyb_bus_backend_get_bus(hb))
                r = hyb_scope_set_backend(sc, HYB_SCOPE_CLUSTER, hb);
        else if (r >= 0 && hyb_furi_get_scope(furi) == HYB_SCOPE_CLUSTER &&
                 (ctx->cluster || (getenv("HYBRID_CLUSTER") && *getenv("HYBRID_CLUSTER")))) {
                hyb_backend *cb = NULL;

                r = hyb_cluster_backend_new(ctx->cluster, &cb, &e);
                if (r < 0) {
                        status = fail(EXIT_USAGE, r, &e);
                        goto out;
                }
                r = hyb_scope_set_backend(sc, HYB_SCOPE_CLUSTER, cb);
                hyb_backend_unref(cb);
        }
        if (r >= 0)
                r = hyb_scope_route(sc, furi, &b, &target, &e);
        if (r < 0) {
                status = fail(EXIT_FAILED, r, &e);
                goto out;
        }

        if (strcmp(sub, "put") == 0 || strcmp(sub, "del") == 0) {
                r = hyb_backend_write(b, target, value ? value : hyb_obj_noobj(),
                                      cli_flag(ctx, "transient") ? HYB_WRITE_TRANSIENT : 0, &e);
                if (r < 0)
                        status = fail(status_of(r), r, &e);
        } else if (strcmp(sub, "get") == 0) {
                if (hyb_furi_is_pattern(target) && !hyb_furi_is_branch(target)) {
                        /* keyed: one rec of fURI => value, in key order */
                        r = hyb_backend_read(b, target, HYB_READ_KEYED, &value, &e);
                        if (r < 0)
                                status = fail(status_of(r), r, &e);
                        else if (hyb_obj_get_len(value) == 0)
                                status = EXIT_FAILED;
                        for (size_t i = 0; r >= 0 && i < hyb_obj_get_len(value); i++)
                                print_obj_line(hyb_furi_get_str(hyb_obj_get_uri(
                                                       hyb_obj_get_rec_key(value, i))),
                                               hyb_obj_get_rec_value(value, i), ctx->json);
                } else {
                        r = hyb_backend_read(b, target, 0, &value, &e);
                        if (r < 0)
                                status = fail(status_of(r), r, &e);
                        else if (hyb_obj_is_noobj(value) ||
                                 (hyb_furi_is_branch(target) && hyb_obj_get_len(value) == 0))
                                status = EXIT_FAILED;
                        else
                                print_obj_line(NULL, value, ctx->json);
                }
        } else {
                watch_ctx w = { ctx->json, count };
                r = hyb_backend_subscribe(b, target, cli_flag(ctx, "replay") ? HYB_SUBSCRIBE_REPLAY : 0,
                                        print_msg, &w, &slot, &e);
                if (r < 0) {
                        status = fail(status_of(r), r, &e);
                        goto out;
                }
                signal(SIGINT, on_signal);
                signal(SIGTERM, on_signal);
                signal(SIGPIPE, SIG_IGN);
                fprintf(stderr, "ready\n");
                fflush(stderr);
                while (!stop) {
                        r = hyb_backend_wait(b, 200000);
                        if (r < 0 && r != -EINTR) {
                                /* The daemon went away: exit 3 with the reason, no reconnect. */
                                hyb_bus *bus = hyb_bus_backend_get_bus(b);

                                status = bus ? clibus_stream_fail("store", bus, r)
                                             : fail(status_of(r), r, NULL);
                                break;
                        }
                }
                hyb_slot_unref(slot);
        }
out:
        hyb_obj_unref(value);
        hyb_furi_unref(target);
        hyb_furi_unref(furi);
        hyb_backend_unref(b);
        hyb_scope_unref(sc);
        hyb_backend_unref(hb);
        hyb_free(where);
        return status;
}

const cli_command cmd_store = {
        .name = "store",
        .run = run_store,
        .options = store_options,
        .summary = "the fURI tuple store: put, get, del, watch, check",
        .usage = "usage: hybrid store put <furi> <obj> [--transient]   (--json: <obj> is JSON)\n"
                 "       hybrid store get <furi|pattern|branch>\n"
                 "       hybrid store del <furi|pattern>\n"
                 "       hybrid store watch <pattern> [--replay] [--count N]\n"
                 "       hybrid store check\n"
                 "get prints a node's obj, one '<furi>\\t<obj>' line per match of a pattern, a\n"
                 "branch's rec; exits 1 when nothing matched.  Objs are printed in the exact form\n"
                 "(21.5, 'hi', [a=>1]); --json prints JSON.  watch prints '<furi>\\t<obj>' per\n"
                 "write ('noobj' for a delete) and 'ready' on stderr once subscribed.  check\n"
                 "runs SQLite's integrity check and verifies every row's checksum: prints 'ok'\n"
                 "and exits 0 when sound, else one '<furi>\\t<problem>' line per problem\n"
                 "('(database)' for damage outside a row) and exits 1; a file that cannot be\n"
                 "checked (missing, not a store database) exits 3.\n"
                 "The store: --db/$HYBRID_DB, else the daemon at --bus/$HYBRID_BUS (exit 3 if it\n"
                 "does not answer), else the daemon at the default socket if one answers, else\n"
                 "the default database (said on stderr).  put --transient notifies subscribers\n"
                 "without storing.\n",
        .globals = CLI_G_DB | CLI_G_CLUSTER | CLI_G_BUS | CLI_G_APP | CLI_G_RUNNER | CLI_G_JSON | CLI_G_CRED,
};
