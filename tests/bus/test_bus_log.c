/* SPDX-License-Identifier: MIT */
/*
 * bus_suite "log": hyb_log / hyb_log_send (include/hybrid/log.h) and the broker's
 * builtin Log event.  Without a bus, and with a broker but no logd, the line goes to
 * stderr in the form `<time> <level> <@host/app/runner> <message>`; with a logd (here
 * a stand-in registering "log" as org.hybridos.logd) the record reaches it and stderr
 * stays empty.  The broker offers its own lines as builtin Log, to org.hybridos.logd
 * only.  stderr is captured through a pipe.
 */
#include <errno.h>
#include <poll.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "test_bus.h"

typedef struct capture {
        int saved, rd;
        char buf[4096];
        size_t len;
} capture;

static void capture_start(capture *c)
{
        int p[2];

        ck_assert_int_eq(pipe(p), 0);
        fflush(stderr);
        c->saved = dup(STDERR_FILENO);
        ck_assert_int_ge(c->saved, 0);
        ck_assert_int_ge(dup2(p[1], STDERR_FILENO), 0);
        close(p[1]);
        c->rd = p[0];
        c->len = 0;
        c->buf[0] = '\0';
}

/* Reads what came so far (waiting up to ms for a first byte). */
static void capture_read(capture *c, int ms)
{
        struct pollfd pf = { .fd = c->rd, .events = POLLIN };

        while (c->len + 1 < sizeof c->buf && poll(&pf, 1, ms) > 0) {
                ssize_t n = read(c->rd, c->buf + c->len, sizeof c->buf - 1 - c->len);

                if (n <= 0)
                        break;
                c->len += (size_t)n;
                c->buf[c->len] = '\0';
                ms = 0;
        }
}

static void capture_stop(capture *c)
{
        fflush(stderr);
        dup2(c->saved, STDERR_FILENO);
        close(c->saved);
        capture_read(c, 0);
        close(c->rd);
}

static bool matches(const char *text, const char *re)
{
        regex_t rx;
        bool ok;

        ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
        ok = regexec(&rx, text, 0, NULL, 0) == 0;
        regfree(&rx);
        return ok;
}

#define TIME_RE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "

START_TEST(log_without_bus)
{
        capture c;
        char re[256];
        int r;

        capture_start(&c);
        r = hyb_log(NULL, HYB_LOG_WARNING, "disk %d%% full", 93);
        capture_stop(&c);
        ck_assert_int_eq(r, 1);
        snprintf(re, sizeof re, TIME_RE "warning @localhost/[^/ ]+/p%ld disk 93%% full\n$",
                 (long)getpid());
        ck_assert_msg(matches(c.buf, re), "stderr '%s' does not match /%s/", c.buf, re);
}
END_TEST

/* The stderr line is one line, whatever the message holds: control characters are
 * escaped as `hybrid log` prints them (doc/hybrid.md), so a message cannot make what
 * reads as a second record. */
START_TEST(log_without_bus_one_line)
{
        capture c;
        char re[256];
        int r;

        capture_start(&c);
        r = hyb_log(NULL, HYB_LOG_INFO, "a\nerror @localhost/org.hybridos.bus/builtin b\r\tc%c", 1);
        capture_stop(&c);
        ck_assert_int_eq(r, 1);
        snprintf(re, sizeof re,
                 TIME_RE "info @localhost/[^/ ]+/p%ld a\\\\nerror @localhost/org\\.hybridos\\.bus/"
                         "builtin b\\\\r\\\\tc\\\\x01\n$",
                 (long)getpid());
        ck_assert_msg(matches(c.buf, re), "stderr '%s' does not match /%s/", c.buf, re);
}
END_TEST

START_TEST(log_bad_arguments)
{
        capture c;

        capture_start(&c);
        ck_assert_int_eq(hyb_log_send(NULL, (hyb_log_level)2, NULL, "x"), -EINVAL);
        ck_assert_int_eq(hyb_log_send(NULL, (hyb_log_level)8, NULL, "x"), -EINVAL);
        ck_assert_int_eq(hyb_log_send(NULL, HYB_LOG_INFO, NULL, NULL), -EINVAL);
        ck_assert_int_eq(hyb_log(NULL, HYB_LOG_INFO, NULL), -EINVAL);
        ck_assert_int_eq(hyb_log_send(NULL, HYB_LOG_INFO, "[1]", "x"), HYB_E_PARSE);
        ck_assert_int_eq(hyb_log_send(NULL, HYB_LOG_INFO, "{", "x"), HYB_E_PARSE);
        capture_stop(&c);
        /* nothing is logged for a refused call */
        ck_assert_str_eq(c.buf, "");
}
END_TEST

START_TEST(log_no_logd_falls_back)
{
        tbroker t;
        capture c;
        hyb_bus *bus;

        tb_start(&t, NULL, false);
        bus = tb_connect(&t, "org.test.logger", "main");
        capture_start(&c);
        ck_assert_int_eq(hyb_log_send(bus, HYB_LOG_ERROR, "{\"k\":1}", "no one listens"), 0);
        /* the broker's 404 arrives when the bus is processed */
        for (int i = 0; i < 250 && c.len == 0; i++) {
                hyb_bus_wait(bus, 20000);
                while (hyb_bus_process(bus) > 0)
                        ;
                capture_read(&c, 0);
        }
        capture_stop(&c);
        ck_assert_msg(matches(c.buf, TIME_RE "error @localhost/org\\.test\\.logger/main no one "
                                             "listens\n$"),
                      "stderr '%s'", c.buf);
        hyb_bus_unref(bus);
        tb_stop(&t);
}
END_TEST

typedef struct got {
        atomic_int n;
        char body[512];
        char caller[128];
        uid_t uid;
        int uid_r, uid_null_r;
} got;

static int on_log(hyb_bus_request *req, void *ud)
{
        got *g = ud;
        size_t len;
        const char *b = hyb_bus_request_get_body(req, &len);

        snprintf(g->body, sizeof g->body, "%.*s", (int)len, b);
        snprintf(g->caller, sizeof g->caller, "%s", hyb_bus_request_get_caller(req));
        g->uid = (uid_t)-1;
        g->uid_r = hyb_bus_request_get_caller_uid(req, &g->uid);
        g->uid_null_r = hyb_bus_request_get_caller_uid(req, NULL);
        atomic_fetch_add(&g->n, 1);
        return hyb_bus_request_reply(req, 200, "{\"seq\":1}", 9, HYB_BODY_JSON);
}

START_TEST(log_reaches_logd)
{
        static got g;
        tbroker t;
        tsvc svc;
        capture c;
        hyb_bus *logd, *bus;
        hyb_error e;
        json_t *j;

        memset(&g, 0, sizeof g);
        tb_start(&t, NULL, false);
        logd = tb_connect(&t, "org.hybridos.logd", "main");
        hyb_error_clear(&e);
        ck_assert_int_eq(hyb_bus_register_procedure(logd, "log", NULL, NULL, on_log, &g, NULL, &e), 0);
        svc_start(&svc, logd);
        bus = tb_connect(&t, "org.test.logger", "main");
        capture_start(&c);
        ck_assert_int_eq(hyb_log(bus, HYB_LOG_NOTICE, "hello %s", "there"), 0);
        ck_assert_int_eq(hyb_log_send(bus, HYB_LOG_DEBUG, "{\"disk\":93}", "with fields"), 0);
        pump_until(bus, &g.n, 2, 5000);
        /* the second reply too: then nothing may be written */
        for (int i = 0; i < 5; i++) {
                hyb_bus_wait(bus, 10000);
                while (hyb_bus_process(bus) > 0)
                        ;
        }
        capture_stop(&c);
        ck_assert_int_eq(atomic_load(&g.n), 2);
        ck_assert_str_eq(c.buf, "");
        ck_assert_str_eq(g.caller, "@localhost/org.test.logger/main");
        ck_assert_int_eq(g.uid_r, 0);
        ck_assert_int_eq(g.uid_null_r, -EINVAL);
        ck_assert_int_eq(g.uid, getuid()); /* the broker's SO_PEERCRED, same process here */
        j = json_loads(g.body, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "debug");
        ck_assert_str_eq(json_string_value(json_object_get(j, "message")), "with fields");
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "fields"), "disk")), 93);
        json_decref(j);
        hyb_bus_unref(bus);
        svc_stop(&svc);
        hyb_bus_unref(logd);
        tb_stop(&t);
}
END_TEST

static hyb_bus_request *held;

/* A logd that never answers (it keeps the request). */
static int on_log_hold(hyb_bus_request *req, void *ud)
{
        got *g = ud;

        held = hyb_bus_request_ref(req);
        atomic_fetch_add(&g->n, 1);
        return 0;
}

START_TEST(log_unanswered_at_unref_goes_to_stderr)
{
        static got g;
        tbroker t;
        tsvc svc;
        capture c;
        hyb_bus *logd, *bus;
        hyb_error e;

        memset(&g, 0, sizeof g);
        held = NULL;
        tb_start(&t, NULL, false);
        logd = tb_connect(&t, "org.hybridos.logd", "main");
        hyb_error_clear(&e);
        ck_assert_int_eq(hyb_bus_register_procedure(logd, "log", NULL, NULL, on_log_hold, &g, NULL, &e),
                         0);
        svc_start(&svc, logd);
        bus = tb_connect(&t, "org.test.logger", "main");
        capture_start(&c);
        ck_assert_int_eq(hyb_log(bus, HYB_LOG_INFO, "last words"), 0);
        ck_assert_int_eq(hyb_bus_flush(bus), 0);
        pump_until(bus, &g.n, 1, 5000);
        capture_read(&c, 0);
        ck_assert_str_eq(c.buf, ""); /* still waiting for logd */
        /* freed with the record unanswered: logd may not have it, so stderr gets it */
        hyb_bus_unref(bus);
        capture_stop(&c);
        ck_assert_msg(matches(c.buf, TIME_RE "info @localhost/org\\.test\\.logger/main last words\n$"),
                      "stderr '%s'", c.buf);
        svc_stop(&svc);
        hyb_bus_request_unref(held);
        hyb_bus_unref(logd);
        tb_stop(&t);
}
END_TEST

typedef struct lines {
        atomic_int n;
        char body[512];
} lines;

static void on_line(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        lines *l = ud;
        size_t len;
        const char *b = hyb_bus_event_get_body(ev, &len);

        snprintf(l->body, sizeof l->body, "%.*s", (int)len, b);
        atomic_fetch_add(&l->n, 1);
}

START_TEST(broker_lines_as_event)
{
        static lines l;
        tbroker t;
        hyb_bus *logd, *other, *a, *b = NULL;
        hyb_slot *sub = NULL;
        hyb_error e;
        json_t *j;

        memset(&l, 0, sizeof l);
        tb_start(&t, NULL, false);
        other = tb_connect(&t, "org.test.other", "main");
        hyb_error_clear(&e);
        /* the lines name peers' uids and pids: for the logging service only */
        ck_assert_int_eq(hyb_bus_subscribe(other, HYB_BUS_BUILTIN_ENDPOINT, "Log", on_line, &l, NULL, &e),
                         HYB_E_FORBIDDEN);
        logd = tb_connect(&t, "org.hybridos.logd", "main");
        ck_assert_int_eq(hyb_bus_subscribe(logd, HYB_BUS_BUILTIN_ENDPOINT, "Log", on_line, &l, &sub, &e),
                         0);
        /* an endpoint name already taken: the broker logs "auth refused ... 409" at info */
        a = tb_connect(&t, "org.test.twice", "main");
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.test.twice", "main", &b, &e), HYB_E_CONFLICT);
        pump_until(logd, &l.n, 1, 5000);
        ck_assert_int_ge(atomic_load(&l.n), 1);
        j = json_loads(l.body, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "info");
        ck_assert_msg(strstr(json_string_value(json_object_get(j, "message")), "auth refused"),
                      "body %s", l.body);
        json_decref(j);
        hyb_slot_unref(sub);
        hyb_bus_unref(a);
        hyb_bus_unref(logd);
        hyb_bus_unref(other);
        tb_stop(&t);
}
END_TEST

typedef struct tally {
        atomic_int n;
        long long dropped; /* the "dropped" of the last line received */
} tally;

static void on_tally(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        tally *t = ud;
        size_t len;
        const char *b = hyb_bus_event_get_body(ev, &len);
        json_t *j = json_loadb(b, len, 0, NULL);

        t->dropped = json_integer_value(json_object_get(j, "dropped"));
        json_decref(j);
        atomic_fetch_add(&t->n, 1);
}

/*
 * A log reader that stops reading never slows the broker down nor gets cut off: the
 * lines it has no room for are skipped, and the next line it gets counts them.  Each
 * refused connect is one line at info; n of them, then one more once the reader has
 * caught up: every line is either received or counted as dropped.
 */
START_TEST(broker_lines_never_wait_for_the_reader)
{
        static tally tl;
        enum { N = 3000 };
        tbroker t;
        hyb_bus *logd, *a, *b = NULL;
        hyb_slot *sub = NULL;
        hyb_error e;
        int before;

        memset(&tl, 0, sizeof tl);
        tb_start(&t, "max_body=16384,max_frame=32768,send_queue_bytes=65536", false);
        logd = tb_connect(&t, "org.hybridos.logd", "main");
        hyb_error_clear(&e);
        ck_assert_int_eq(hyb_bus_subscribe(logd, HYB_BUS_BUILTIN_ENDPOINT, "Log", on_tally, &tl, &sub, &e),
                         0);
        a = tb_connect(&t, "org.test.twice", "main");
        /* the reader reads nothing meanwhile; every refusal is answered all the same */
        for (int i = 0; i < N; i++)
                ck_assert_int_eq(hyb_bus_connect(t.sock, "org.test.twice", "main", &b, &e),
                                 HYB_E_CONFLICT);
        /* drain what was queued for the reader: it is still connected */
        for (int i = 0; i < 50; i++) {
                hyb_bus_wait(logd, 20000);
                while (hyb_bus_process(logd) > 0)
                        ;
        }
        ck_assert(hyb_bus_is_open(logd));
        before = atomic_load(&tl.n);
        ck_assert_int_gt(before, 0);
        ck_assert_int_lt(before, N); /* the socket and half the queue cannot hold N lines */
        /* one more line: it says how many the reader missed */
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.test.twice", "main", &b, &e), HYB_E_CONFLICT);
        pump_until(logd, &tl.n, before + 1, 5000);
        ck_assert_int_eq(atomic_load(&tl.n), before + 1);
        ck_assert_int_eq(before + tl.dropped, N);
        hyb_slot_unref(sub);
        hyb_bus_unref(a);
        hyb_bus_unref(logd);
        tb_stop(&t);
}
END_TEST

void bus_tcase_log(Suite *s)
{
        TCase *tc = tcase_create("log");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, log_without_bus);
        tcase_add_test(tc, log_without_bus_one_line);
        tcase_add_test(tc, log_bad_arguments);
        tcase_add_test(tc, log_no_logd_falls_back);
        tcase_add_test(tc, log_reaches_logd);
        tcase_add_test(tc, log_unanswered_at_unref_goes_to_stderr);
        tcase_add_test(tc, broker_lines_as_event);
        tcase_add_test(tc, broker_lines_never_wait_for_the_reader);
        suite_add_tcase(s, tc);
}
