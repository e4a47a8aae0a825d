/* SPDX-License-Identifier: MIT */
/*
 * hybrid log send [--level L] MESSAGE...
 * hybrid log [show] [--follow] [--from APP-GLOB] [--level L] [--since T] [--json]
 *
 * The client of hybrid-logd (@localhost/org.hybridos.logd/main, doc/hybrid-logd.md).
 * `send` logs as the connection's own endpoint (--app, --runner): logd takes the
 * record's app and runner from the name the broker verified.  `show` prints the
 * records oldest first, one line `<time> <level> <@host/app/runner> <message>` each
 * (or the record as one JSON object with --json), reading logd's query method page by
 * page; --follow then prints new records as logd fires them (bubble Record), with
 * "ready" on stderr once it is subscribed and the history is out.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <hybrid/hybrid.h>

#include "cli-bus.h"

#define LOGD_ENDPOINT "@localhost/org.hybridos.logd/main"
#define LOGD_PATTERN "@localhost/org.hybridos.logd/*"

static const char *const levels[] = { "error", "warning", "notice", "info", "debug" };

static int level_rank(const char *s)
{
        for (int i = 0; i < 5; i++)
                if (strcmp(s, levels[i]) == 0)
                        return i;
        return -1;
}

static int bad_level(const cli_ctx *ctx, const char *v)
{
        return cli_usage(ctx, "--level wants debug, info, notice, warning or error, not '%s'", v);
}

/* ------------------------------------------------------------------ send */

static int run_send(cli_ctx *ctx)
{
        const char *lv = cli_opt(ctx, "level");
        hyb_bus *bus = NULL;
        hyb_error e;
        json_t *msg, *body;
        char *text;
        int r, st;

        if (cli_flag(ctx, "follow") || cli_opt(ctx, "from") || cli_opt(ctx, "since"))
                return cli_usage(ctx, "log send takes --level only");
        if (lv && level_rank(lv) < 0)
                return bad_level(ctx, lv);
        if (ctx->nargs < 2)
                return cli_usage(ctx, "log send wants a MESSAGE");
        /* the words of the message, joined by one space as logger(1) does */
        msg = json_string(ctx->args[1]);
        for (int i = 2; msg && i < ctx->nargs; i++) {
                char *s = NULL;

                if (asprintf(&s, "%s %s", json_string_value(msg), ctx->args[i]) < 0)
                        s = NULL;
                json_decref(msg);
                msg = s ? json_string(s) : NULL;
                free(s);
        }
        body = msg ? json_pack("{s:o, s:s}", "message", msg, "level", lv ? lv : "info") : NULL;
        text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (!text)
                return cli_fail(EXIT_FAILED, "log", "ENOMEM", "out of memory (or a message that "
                                                            "is not UTF-8)");
        st = clibus_connect(ctx, &bus);
        if (st) {
                free(text);
                return st;
        }
        hyb_error_clear(&e);
        r = hyb_bus_call(bus, LOGD_ENDPOINT, "log", text, strlen(text), HYB_BODY_JSON, 0, NULL,
                         &e);
        free(text);
        st = EXIT_OK;
        if (r == HYB_E_NOT_FOUND)
                st = cli_fail(EXIT_FAILED, "log", "404", "%s (is hybrid-logd running?)",
                              e.message[0] ? e.message : hyb_strerror(r));
        else if (r < 0)
                st = clibus_fail(clibus_exit_status(r), "log", r, &e);
        hyb_bus_unref(bus);
        return st;
}

/* ------------------------------------------------------------------ show */

typedef struct shower {
        const char *app_glob; /* NULL: all */
        int max_rank;         /* levels[0..max_rank] are shown */
        int64_t since;        /* µs since the epoch */
        bool json;
        bool live;            /* the history is out: print events as they come */
        uint64_t last_seq;    /* the last record printed from the history */
        bool any;             /* a record printed from the history */
        json_t *early;        /* events that came while the history was read */
} shower;

/* "2026-12-06T14:30:00.123Z" */
static void format_time(int64_t us, char *buf, size_t size)
{
        time_t t = (time_t)(us / 1000000);
        struct tm tm;

        gmtime_r(&t, &tm);
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(us % 1000000 / 1000));
}

static bool wanted(const shower *s, json_t *rec)
{
        const char *app = json_string_value(json_object_get(rec, "app"));
        const char *lv = json_string_value(json_object_get(rec, "level"));
        int rank = lv ? level_rank(lv) : -1;

        if (!app || rank < 0 || rank > s->max_rank)
                return false;
        if (json_integer_value(json_object_get(rec, "time")) < s->since)
                return false;
        return !s->app_glob || fnmatch(s->app_glob, app, FNM_CASEFOLD) == 0;
}

/* The message on one line: control characters as \n, \r, \t or \xNN. */
static void put_message(const char *m)
{
        for (; *m; m++) {
                unsigned char c = (unsigned char)*m;

                if (c == '\n')
                        fputs("\\n", stdout);
                else if (c == '\r')
                        fputs("\\r", stdout);
                else if (c == '\t')
                        fputs("\\t", stdout);
                else if (c < 0x20 || c == 0x7f)
                        printf("\\x%02x", c);
                else
                        putchar(c);
        }
}

static void print_record(const shower *s, json_t *rec)
{
        char when[80];

        if (s->json) {
                char *text = json_dumps(rec, JSON_COMPACT);

                if (text)
                        cli_println("%s", text);
                free(text);
                return;
        }
        format_time(json_integer_value(json_object_get(rec, "time")), when, sizeof when);
        printf("%s %s @%s/%s/%s ", when, json_string_value(json_object_get(rec, "level")),
               json_string_value(json_object_get(rec, "host")),
               json_string_value(json_object_get(rec, "app")),
               json_string_value(json_object_get(rec, "runner")));
        put_message(json_string_value(json_object_get(rec, "message")));
        putchar('\n');
        fflush(stdout);
}

static void on_record(hyb_bus *bus, const hyb_bus_event *ev, void *userdata)
{
        shower *s = userdata;
        const char *src = hyb_bus_event_get_source(ev);
        const void *body;
        size_t len;
        json_t *rec;

        /* The pattern also matches other runners of logd's app: their "records" would
         * name any app they like.  Only logd's own endpoint speaks for the log. */
        if (!src || strcmp(src, LOGD_ENDPOINT) != 0)
                return;
        body = hyb_bus_event_get_body(ev, &len);
        rec = json_loadb(body, len, 0, NULL);
        if (!json_is_object(rec) || !json_is_integer(json_object_get(rec, "seq"))) {
                json_decref(rec);
                return;
        }
        if (!s->live) {
                json_array_append(s->early, rec);
        } else if (wanted(s, rec)) {
                print_record(s, rec);
        }
        json_decref(rec);
}

/* Seconds and fractions in the forms --since takes; false if none fits. */
static bool parse_since(const char *v, int64_t *ret)
{
        struct tm tm = { 0 };
        char *end;

        if (v[0] == '@') {
                /* @SECONDS[.FRACTION] since the epoch, read exactly (no float rounding) */
                long long sec;
                long us = 0;
                int digits = 0;

                errno = 0;
                sec = strtoll(v + 1, &end, 10);
                if (errno || end == v + 1 || !isdigit((unsigned char)v[1]))
                        return false;
                if (*end == '.') {
                        for (end++; isdigit((unsigned char)*end); end++)
                                if (digits < 6) {
                                        us = us * 10 + (*end - '0');
                                        digits++;
                                }
                        while (digits++ < 6)
                                us *= 10;
                }
                if (*end || sec > INT64_MAX / 1000000 - 1)
                        return false;
                *ret = (int64_t)sec * 1000000 + us;
                return true;
        }
        if (v[0] == '-' && isdigit((unsigned char)v[1])) {
                /* -N[s|m|h|d]: that long ago */
                struct timespec now;
                long long n;
                int64_t unit = 1;

                errno = 0;
                n = strtoll(v + 1, &end, 10); /* ERANGE: LLONG_MAX, far enough back */

                switch (*end) {
                case 'd':
                        unit *= 24;
                        /* fall through */
                case 'h':
                        unit *= 60;
                        /* fall through */
                case 'm':
                        unit *= 60;
                        /* fall through */
                case 's':
                        end++;
                        break;
                case '\0':
                        break;
                default:
                        return false;
                }
                if (*end)
                        return false;
                if (n > INT64_MAX / 1000000 / unit) {
                        /* before the earliest time a record can carry: every record */
                        *ret = INT64_MIN;
                        return true;
                }
                clock_gettime(CLOCK_REALTIME, &now);
                *ret = ((int64_t)now.tv_sec - n * unit) * 1000000 + now.tv_nsec / 1000;
                return true;
        }
        /* YYYY-MM-DDTHH:MM:SS[.fff][Z], UTC: the form `hybrid log` prints */
        end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!end)
                return false;
        *ret = (int64_t)timegm(&tm) * 1000000;
        if (*end == '.') {
                char *frac = end + 1;
                long us = 0;
                int digits = 0;

                for (end = frac; isdigit((unsigned char)*end); end++)
                        if (digits < 6) {
                                us = us * 10 + (*end - '0');
                                digits++;
                        }
                if (end == frac)
                        return false;
                while (digits++ < 6)
                        us *= 10;
                *ret += us;
        }
        if (*end == 'Z')
                end++;
        return *end == '\0';
}

/* Reads and prints the history, page by page.  0, or an exit status. */
static int show_history(shower *s, hyb_bus *bus, bool follow)
{
        json_int_t after = -1;

        for (;;) {
                hyb_bus_reply *reply = NULL;
                json_t *q, *page, *list, *rec, *next;
                const char *body;
                size_t len, i;
                hyb_error e;
                char *text;
                int r;

                q = json_pack("{s:s, s:I}", "level", levels[s->max_rank], "limit", (json_int_t)500);
                if (s->app_glob)
                        json_object_set_new(q, "app", json_string(s->app_glob));
                if (s->since > INT64_MIN)
                        json_object_set_new(q, "since", json_integer(s->since));
                if (after >= 0)
                        json_object_set_new(q, "after", json_integer(after));
                text = json_dumps(q, JSON_COMPACT);
                json_decref(q);
                if (!text)
                        return cli_fail(EXIT_FAILED, "log", "ENOMEM", "out of memory");
                hyb_error_clear(&e);
                r = hyb_bus_call(bus, LOGD_ENDPOINT, "query", text, strlen(text), HYB_BODY_JSON, 0,
                                 &reply, &e);
                free(text);
                if (r == HYB_E_NOT_FOUND && follow)
                        return 0; /* no logd yet: its records will come when it does */
                if (r == HYB_E_NOT_FOUND)
                        return cli_fail(EXIT_FAILED, "log", "404", "%s (is hybrid-logd running?)",
                                        e.message[0] ? e.message : hyb_strerror(r));
                if (r < 0)
                        return clibus_fail(clibus_exit_status(r), "log", r, &e);
                body = hyb_bus_reply_get_body(reply, &len);
                page = json_loadb(body, len, 0, NULL);
                hyb_bus_reply_unref(reply);
                list = json_object_get(page, "records");
                if (!json_is_array(list)) {
                        json_decref(page);
                        return cli_fail(EXIT_FAILED, "log", "HYB_E_PROTOCOL",
                                        "logd answered without records");
                }
                json_array_foreach(list, i, rec) {
                        print_record(s, rec);
                        s->last_seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
                        s->any = true;
                }
                next = json_object_get(page, "next");
                if (!json_is_integer(next)) {
                        json_decref(page);
                        return 0;
                }
                /* each page resumes after the last one: a next that does not move on
                 * would print the same records forever */
                if (json_integer_value(next) <= after || json_integer_value(next) < 0) {
                        json_decref(page);
                        return cli_fail(EXIT_FAILED, "log", "HYB_E_PROTOCOL",
                                        "logd's next page does not follow the last one");
                }
                after = json_integer_value(next);
                json_decref(page);
        }
}

static int run_show(cli_ctx *ctx)
{
        const char *lv = cli_opt(ctx, "level"), *since = cli_opt(ctx, "since");
        bool follow = cli_flag(ctx, "follow");
        shower s = { .app_glob = cli_opt(ctx, "from"), .max_rank = 4, .since = INT64_MIN,
                     .json = ctx->json };
        hyb_bus *bus = NULL;
        hyb_slot *slot = NULL;
        hyb_error e;
        size_t i;
        json_t *rec;
        int r, st;

        if (ctx->nargs > 1 || (ctx->nargs == 1 && strcmp(ctx->args[0], "show") != 0))
                return cli_usage(ctx, "log wants 'send MESSAGE' or '[show]' and options");
        if (lv && (s.max_rank = level_rank(lv)) < 0)
                return bad_level(ctx, lv);
        if (since && !parse_since(since, &s.since))
                return cli_usage(ctx, "--since wants YYYY-MM-DDTHH:MM:SS[.fff]Z (UTC), "
                                      "@SECONDS or -N[s|m|h|d], not '%s'", since);
        if (s.app_glob && !*s.app_glob)
                return cli_usage(ctx, "--from wants an app name or glob");
        s.early = json_array();
        if (!s.early)
                return cli_fail(EXIT_FAILED, "log", "ENOMEM", "out of memory");
        if (follow)
                clibus_block_signals();
        st = clibus_connect(ctx, &bus);
        if (st)
                goto out;
        if (follow) {
                /* a pattern: it stays when logd restarts */
                hyb_error_clear(&e);
                r = hyb_bus_subscribe(bus, LOGD_PATTERN, "Record", on_record, &s, &slot, &e);
                if (r < 0) {
                        st = clibus_fail(clibus_exit_status(r), "log", r, &e);
                        goto out;
                }
        }
        st = show_history(&s, bus, follow);
        if (st || !follow)
                goto out;
        /* what came while the history was read, without what it already printed */
        json_array_foreach(s.early, i, rec)
                if (!s.any || (uint64_t)json_integer_value(json_object_get(rec, "seq")) > s.last_seq)
                        if (wanted(&s, rec))
                                print_record(&s, rec);
        json_array_clear(s.early);
        s.live = true;
        fputs("ready\n", stderr);
        fflush(stderr);
        r = clibus_run(bus, NULL, NULL, NULL);
        st = r < 0 ? clibus_stream_fail("log", bus, r) : EXIT_OK;
out:
        hyb_slot_unref(slot);
        hyb_bus_unref(bus);
        json_decref(s.early);
        return st;
}

static int run_log(cli_ctx *ctx)
{
        if (ctx->nargs >= 1 && strcmp(ctx->args[0], "send") == 0)
                return run_send(ctx);
        return run_show(ctx);
}

static const cli_option log_options[] = {
        { "level", true, "--level L       send: the record's level (default info); show: L and more severe" },
        { "follow", false, "--follow        show: then print new records as they come" },
        { "from", true, "--from GLOB     show: only records of apps matching GLOB" },
        { "since", true, "--since T       show: only records from T on (UTC YYYY-MM-DDTHH:MM:SS[.fff]Z, @SECONDS, -N[s|m|h|d])" },
        { NULL, false, NULL },
};

const cli_command cmd_log = {
        .name = "log",
        .run = run_log,
        .options = log_options,
        .summary = "send a log record, show or follow the log (hybrid-logd)",
        .usage = "usage: hybrid log send [--level debug|info|notice|warning|error] MESSAGE...\n"
                 "       hybrid log [show] [--follow] [--from APP-GLOB] [--level L] [--since T] [--json]\n"
                 "send logs MESSAGE as this client's endpoint (--app, --runner).  show prints the\n"
                 "records oldest first, one line '<time> <level> <@host/app/runner> <message>' each\n"
                 "(one JSON object with --json); --level L shows L and everything more severe.\n"
                 "--follow then prints new records as they come ('ready' on stderr once subscribed)\n"
                 "until SIGTERM or SIGINT; it exits 3 if the daemon closes the connection.\n",
        .globals = CLI_G_BUSCMD,
};
