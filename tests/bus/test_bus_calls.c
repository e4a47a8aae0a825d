/* SPDX-License-Identifier: MIT */
/*
 * bus_suite: the broker runs in-process on its own event_base thread; clients
 * use the public API.  Expected statuses come from doc/protocol.md.
 */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker/broker-internal.h" /* broker_auth_set_revoked, _sweep */
#include "bus/bus-internal.h"
#include "bus/wire.h"
#include "suites.h"
#include "test_bus.h"
#include "testutil.h"

/* ---------------------------------------------------------------- harness */

static void *broker_main(void *ud)
{
        tbroker *t = ud;
        event_base_dispatch(t->base);
        return NULL;
}

static void on_stop(evutil_socket_t fd, short what, void *ud)
{
        tbroker *t = ud;
        event_base_loopbreak(t->base);
}

void tb_start(tbroker *t, const char *limits, bool admin_self)
{
        tb_start_store(t, limits, admin_self, NULL, NULL);
}

void tb_start_store(tbroker *t, const char *limits, bool admin_self, const char *yaml,
                    hyb_store *st)
{
        hyb_error err;

        memset(t, 0, sizeof *t);
        t->dir = test_tmpdir();
        snprintf(t->sock, sizeof t->sock, "%s/bus.sock", t->dir);
        ck_assert_int_eq(hyb_broker_config_new(&t->cfg), 0);
        ck_assert_int_eq(hyb_broker_config_set_socket(t->cfg, t->sock), 0);
        if (limits) {
                char *copy = strdup(limits), *save = NULL;
                for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                        char *eq = strchr(kv, '=');
                        ck_assert_ptr_nonnull(eq);
                        *eq = 0;
                        ck_assert_int_eq(hyb_broker_config_set_limit(t->cfg, kv, strtoull(eq + 1, NULL, 10)), 0);
                }
                free(copy);
        }
        if (admin_self)
                ck_assert_int_eq(hyb_broker_config_add_admin(t->cfg, getuid()), 0);
        if (yaml)
                ck_assert_msg(hyb_broker_config_load_string(t->cfg, yaml, strlen(yaml), &err) == 0,
                              "config: %s", err.message);
        t->base = event_base_new();
        ck_assert_ptr_nonnull(t->base);
        ck_assert_int_eq(hyb_broker_new(t->cfg, t->base, &t->broker, &err), 0);
        if (st)
                ck_assert_int_eq(hyb_broker_set_store(t->broker, st), 0);
        ck_assert_int_eq(hyb_broker_start(t->broker, &err), 0);
        ck_assert_int_eq(access(t->sock, F_OK), 0);
        ck_assert_int_eq(pipe(t->stop_pipe), 0);
        t->stop_ev = event_new(t->base, t->stop_pipe[0], EV_READ, on_stop, t);
        event_add(t->stop_ev, NULL);
        ck_assert_int_eq(pthread_create(&t->thread, NULL, broker_main, t), 0);
}

void tb_pause(tbroker *t)
{
        char c;

        ck_assert_int_eq(write(t->stop_pipe[1], "x", 1), 1);
        pthread_join(t->thread, NULL);
        ck_assert_int_eq(read(t->stop_pipe[0], &c, 1), 1);
}

void tb_resume(tbroker *t)
{
        event_add(t->stop_ev, NULL);
        ck_assert_int_eq(pthread_create(&t->thread, NULL, broker_main, t), 0);
}

void tb_stop(tbroker *t)
{
        ck_assert_int_eq(write(t->stop_pipe[1], "x", 1), 1);
        pthread_join(t->thread, NULL);
        event_free(t->stop_ev);
        hyb_broker_free(t->broker);
        /* The socket goes away with the broker. */
        ck_assert_int_ne(access(t->sock, F_OK), 0);
        hyb_broker_config_unref(t->cfg);
        event_base_free(t->base);
        close(t->stop_pipe[0]);
        close(t->stop_pipe[1]);
        test_rmrf(t->dir);
        free(t->dir);
}

hyb_bus *tb_connect(tbroker *t, const char *app, const char *runner)
{
        hyb_bus *bus = NULL;
        hyb_error err;
        int r = hyb_bus_connect(t->sock, app, runner, &bus, &err);
        ck_assert_msg(r == 0, "connect %s/%s: %s", app, runner, err.message);
        return bus;
}

/* ---------------------------------------------------------------- token sessions */

void tkeys_make(tkeys *k, const char *mode)
{
        char pub[512];

        memset(k, 0, sizeof *k);
        k->dir = test_tmpdir();
        ck_assert_int_eq(hyb_key_generate(&k->iss), 0);
        ck_assert_int_eq(hyb_key_generate(&k->holder), 0);
        ck_assert_int_eq(hyb_key_generate(&k->other), 0);
        snprintf(pub, sizeof pub, "%s/iss.pub", k->dir);
        ck_assert_int_eq(hyb_key_save_public(k->iss, pub, NULL), 0);
        snprintf(k->yaml, sizeof k->yaml,
                 "auth:\n  tokens: %s\n  audience: hub-test\n  issuers:\n    acme: %s\n", mode,
                 pub);
}

void tkeys_free(tkeys *k)
{
        hyb_key_unref(k->iss);
        hyb_key_unref(k->holder);
        hyb_key_unref(k->other);
        test_rmrf(k->dir);
        free(k->dir);
}

char *tk_issue(tkeys *k, const char *aud, uint64_t ttl, const char *caps)
{
        hyb_token_issue_opts o;
        hyb_token_cap cap[8];
        char *copy = strdup(caps), *save = NULL, *tok = NULL;
        const char *auds[] = {aud};
        size_t n = 0;
        hyb_error e;

        for (char *c = strtok_r(copy, ";", &save); c && n < 8; c = strtok_r(NULL, ";", &save)) {
                char *eq = strrchr(c, '=');

                ck_assert_ptr_nonnull(eq);
                *eq = '\0';
                cap[n].resource = c;
                ck_assert_int_eq(hyb_token_actions_parse(eq + 1, &cap[n].actions), 0);
                n++;
        }
        hyb_token_issue_opts_init(&o);
        o.iss = "acme";
        o.sub = "alice";
        o.aud = auds;
        o.n_aud = 1;
        o.holder = k->holder;
        o.caps = cap;
        o.n_caps = n;
        o.ttl_s = ttl;
        hyb_error_clear(&e);
        ck_assert_msg(hyb_token_issue(k->iss, &o, &tok, &e) == 0, "issue: %s", e.message);
        free(copy);
        return tok;
}

int tk_connect(tbroker *t, const char *app, const char *runner, const char *tok,
               const hyb_key *key, hyb_bus **ret)
{
        hyb_bus_connect_options o;
        hyb_error e;

        hyb_bus_connect_options_init(&o);
        o.path = t->sock;
        o.app = app;
        o.runner = runner;
        o.token = tok;
        o.key = key;
        hyb_error_clear(&e);
        *ret = NULL;
        return hyb_bus_connect_with(&o, ret, &e);
}

void tb_start_yaml(tbroker *t, const char *yaml)
{
        hyb_store *st = NULL;

        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        tb_start_store(t, NULL, false, yaml, st);
        hyb_store_unref(st);
}

void tb_start_token_session(tbroker *t, tsession *ts)
{
        tkeys_make(&ts->k, "accept");
        tb_start_yaml(t, ts->k.yaml);
        ts->tok = tk_issue(&ts->k, "hub-test", 3600,
                           "bus://localhost/org.test.svc/main/add=call;"
                           "bus://localhost/org.test.cli/main/#=reg");
}

hyb_bus *tsession_connect(tbroker *t, tsession *ts)
{
        hyb_bus *bus = NULL;

        ck_assert_int_eq(tk_connect(t, "org.test.cli", "main", ts->tok, ts->k.holder, &bus), 0);
        return bus;
}

void tsession_free(tsession *ts)
{
        free(ts->tok);
        tkeys_free(&ts->k);
}

static int revoke_all(void *ud, const hyb_token_ids *ids)
{
        (void)ud;
        (void)ids;
        return 1;
}

void tb_revoke_all(tbroker *t)
{
        tb_pause(t);
        broker_auth_set_revoked(t->broker, revoke_all, NULL);
        broker_auth_sweep(t->broker);
        tb_resume(t);
}

static void *svc_main(void *ud)
{
        tsvc *s = ud;
        while (!atomic_load(&s->stop)) {
                int r = hyb_bus_process(s->bus);
                if (r < 0)
                        break;
                if (r == 0)
                        hyb_bus_wait(s->bus, 20000);
        }
        return NULL;
}

void svc_start(tsvc *s, hyb_bus *bus)
{
        s->bus = bus;
        atomic_store(&s->stop, false);
        ck_assert_int_eq(pthread_create(&s->thread, NULL, svc_main, s), 0);
}

void svc_stop(tsvc *s)
{
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
}

void pump_until(hyb_bus *bus, atomic_int *flag, int want, int ms)
{
        for (int i = 0; i < ms / 5 && atomic_load(flag) < want; i++) {
                while (hyb_bus_process(bus) > 0)
                        ;
                if (atomic_load(flag) >= want)
                        break;
                hyb_bus_wait(bus, 5000);
        }
}

int raw_read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
        size_t off = 0;
        while (off < len) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, timeout_ms) <= 0)
                        return -1;
                ssize_t n = read(fd, (char *)buf + off, len - off);
                if (n <= 0)
                        return -1;
                off += (size_t)n;
        }
        return 0;
}

int raw_read_frame(int fd, int *status, int timeout_ms)
{
        uint8_t hb[WIRE_HDR_SIZE];
        wire_hdr h;
        if (raw_read_exact(fd, hb, sizeof hb, timeout_ms) < 0 || wire_hdr_decode(hb, &h) < 0)
                return -1;
        size_t rest = wire_frame_len(&h) - WIRE_HDR_SIZE;
        char *buf = malloc(rest + 1);
        int r = raw_read_exact(fd, buf, rest, timeout_ms);
        free(buf);
        if (r < 0)
                return -1;
        if (status)
                *status = h.status;
        return h.type;
}

int raw_connect(tbroker *t, const char *app, const char *runner, bool authenticate)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), st;

        strcpy(sa.sun_path, t->sock);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(raw_read_frame(fd, NULL, 2000), WIRE_CHALLENGE);
        if (!authenticate)
                return fd;
        char body[256];
        snprintf(body, sizeof body, "{\"protocol\":\"HYBRID\",\"version\":1,\"app\":\"%s\",\"runner\":\"%s\"}", app,
                 runner);
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        wire_hdr h = { .type = WIRE_AUTH };
        int n = wire_build(&h, NULL, 0, NULL, 0, NULL, 0, body, strlen(body), buf, iov);
        ck_assert_int_eq(writev(fd, iov, n), (ssize_t)(iov[0].iov_len + iov[1].iov_len));
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_AUTH_RESULT);
        ck_assert_int_eq(st, 200);
        return fd;
}

/* ---------------------------------------------------------------- services used by the tests */

static int on_add(hyb_bus_request *req, void *ud)
{
        size_t len;
        const char *body = hyb_bus_request_get_body(req, &len);
        json_t *j = json_loadb(body, len, 0, NULL);
        char out[64];
        int n = snprintf(out, sizeof out, "{\"sum\":%lld}",
                         (long long)(json_integer_value(json_object_get(j, "a")) +
                                     json_integer_value(json_object_get(j, "b"))));
        json_decref(j);
        return hyb_bus_request_reply(req, 200, out, (size_t)n, HYB_BODY_JSON);
}

static int on_fail(hyb_bus_request *req, void *ud)
{
        return HYB_E_NOT_FOUND; /* no explicit reply: the library answers 404 */
}

static const hyb_arg_policy add_args[] = {
        { "a", HYB_JSON_INTEGER, 1 },
        { "b", HYB_JSON_INTEGER, 1 },
        { "label", HYB_JSON_STRING, 0 },
};

static const hyb_method_def calc_table[] = {
        HYB_METHOD("add", on_add, add_args),
        HYB_METHOD_NOARGS("fail", on_fail),
        HYB_METHOD_ACL("secret", on_add, add_args, "*", "org.allowed.*"),
};

static int call_status(hyb_bus *bus, const char *ep, const char *m, const char *body, char *msg, size_t msglen)
{
        hyb_error err;
        hyb_error_clear(&err);
        int r = hyb_bus_call(bus, ep, m, body, strlen(body), 0, 2000, NULL, &err);
        if (msg)
                snprintf(msg, msglen, "%s", err.message);
        return hyb_err_to_status(r);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_echo_json)
{
        tbroker t;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_bus_reply *rep = NULL;
        const char *body = "{\"hello\":[1,2,3]}";
        size_t len;

        ck_assert_str_eq(hyb_bus_get_endpoint_name(a), "@localhost/org.test.a/main");
        ck_assert_int_eq(hyb_bus_call(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", body, strlen(body), 0, 1000, &rep, NULL), 0);
        ck_assert_int_eq(hyb_bus_reply_get_status(rep), 200);
        const char *got = hyb_bus_reply_get_body(rep, &len);
        ck_assert_uint_eq(len, strlen(body));
        ck_assert_mem_eq(got, body, len);
        ck_assert(!hyb_bus_reply_is_binary(rep));
        ck_assert_str_eq(hyb_bus_reply_get_sender(rep), HYB_BUS_BUILTIN_ENDPOINT);
        hyb_bus_reply_unref(rep);
        ck_assert_int_eq(call_status(a, HYB_BUS_BUILTIN_ENDPOINT, "noSuchBuiltin", "{}", NULL, 0), 404);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

/* hyb_bus_call_into: the body in the caller's buffer when it fits (and not a byte more),
 * the reply handed over when it does not, nothing on failure. */
START_TEST(test_call_into)
{
        tbroker t;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        const char *body = "{\"hello\":[1,2,3]}";
        size_t blen = strlen(body), len = 0;
        char buf[64];
        unsigned fl = 99;
        hyb_bus_reply *rep = (hyb_bus_reply *)buf; /* must be overwritten */
        hyb_error err;

        memset(buf, 'x', sizeof buf);
        ck_assert_int_eq(hyb_bus_call_into(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", body, blen, 0, 1000,
                                           buf, sizeof buf, &len, &fl, &rep, NULL),
                         0);
        ck_assert_ptr_null(rep);
        ck_assert_uint_eq(len, blen);
        ck_assert_mem_eq(buf, body, blen);
        ck_assert_int_eq(buf[blen], 'x');
        ck_assert_uint_eq(fl, HYB_BODY_JSON);
        /* exactly the size fits */
        memset(buf, 'x', sizeof buf);
        ck_assert_int_eq(hyb_bus_call_into(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", body, blen, 0, 1000,
                                           buf, blen, &len, NULL, &rep, NULL),
                         0);
        ck_assert_ptr_null(rep);
        ck_assert_mem_eq(buf, body, blen);
        /* one byte short: the reply comes instead, buf untouched */
        memset(buf, 'x', sizeof buf);
        ck_assert_int_eq(hyb_bus_call_into(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", body, blen, 0, 1000,
                                           buf, blen - 1, &len, &fl, &rep, NULL),
                         0);
        ck_assert_ptr_nonnull(rep);
        ck_assert_uint_eq(len, blen);
        ck_assert_int_eq(buf[0], 'x');
        size_t rl;
        ck_assert_mem_eq(hyb_bus_reply_get_body(rep, &rl), body, blen);
        ck_assert_uint_eq(rl, blen);
        rep = hyb_bus_reply_unref(rep);
        /* binary bodies say so; no buffer at all works too */
        static const uint8_t bin[] = {0, 1, 2, 0xff};
        ck_assert_int_eq(hyb_bus_call_into(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", bin, sizeof bin,
                                           HYB_BODY_BINARY, 1000, buf, sizeof buf, &len, &fl, &rep,
                                           NULL),
                         0);
        ck_assert_ptr_null(rep);
        ck_assert_uint_eq(len, sizeof bin);
        ck_assert_mem_eq(buf, bin, sizeof bin);
        ck_assert_uint_eq(fl, HYB_BODY_BINARY);
        ck_assert_int_eq(hyb_bus_call_into(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", body, blen, 0, 1000,
                                           NULL, 0, &len, &fl, &rep, NULL),
                         0);
        ck_assert_ptr_nonnull(rep);
        rep = hyb_bus_reply_unref(rep);
        /* a failed call: its code and message, no reply, buf untouched */
        memset(buf, 'x', sizeof buf);
        rep = (hyb_bus_reply *)buf;
        ck_assert_int_eq(hyb_bus_call_into(a, HYB_BUS_BUILTIN_ENDPOINT, "noSuchBuiltin", "{}", 2, 0,
                                           1000, buf, sizeof buf, &len, &fl, &rep, &err),
                         HYB_E_NOT_FOUND);
        ck_assert_ptr_null(rep);
        ck_assert_int_eq(err.code, HYB_E_NOT_FOUND);
        ck_assert_int_eq(buf[0], 'x');
        ck_assert_int_eq(hyb_bus_call_into(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", "{}", 2, 0, 1000,
                                           buf, sizeof buf, NULL, &fl, &rep, NULL),
                         -EINVAL);
        ck_assert_ptr_null(rep);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

START_TEST(test_echo_16mib_binary)
{
        tbroker t;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        size_t n = 16u * 1024 * 1024, len;
        uint8_t *big = malloc(n);
        hyb_bus_reply *rep = NULL;

        for (size_t i = 0; i < n; i++)
                big[i] = (uint8_t)(i * 31 + 7);
        ck_assert_uint_eq(hyb_bus_get_max_body(a), n);
        ck_assert_int_eq(hyb_bus_call(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", big, n, HYB_BODY_BINARY, 20000, &rep,
                                      NULL), 0);
        const uint8_t *got = hyb_bus_reply_get_body(rep, &len);
        ck_assert_uint_eq(len, n);
        ck_assert(hyb_bus_reply_is_binary(rep));
        ck_assert(memcmp(got, big, n) == 0);
        hyb_bus_reply_unref(rep);
        /* One byte more than the limit is refused before it leaves. */
        ck_assert_int_eq(hyb_bus_call(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", big, 1, 0, 1000, NULL, NULL), 0);
        uint8_t *over = realloc(big, n + 1);
        ck_assert_int_eq(hyb_bus_call(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", over, n + 1, HYB_BODY_BINARY, 1000,
                                      NULL, NULL), HYB_E_TOO_LARGE);
        free(over);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

START_TEST(test_calls_policy_acl)
{
        tbroker t;
        tsvc s;
        char msg[256];
        tb_start(&t, NULL, false);
        hyb_bus *b = tb_connect(&t, "org.test.calc", "main");
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_bus *ok = tb_connect(&t, "org.allowed.x", "main");
        hyb_slot *slot = NULL;
        hyb_error err;
        hyb_bus_reply *rep = NULL;
        size_t len;
        const char *ep = "@localhost/org.test.calc/main";

        ck_assert_int_eq(hyb_endpoint_register_table(b, calc_table, sizeof calc_table[0], 3, NULL, &slot, &err), 0);
        svc_start(&s, b);

        ck_assert_int_eq(hyb_bus_call(a, ep, "add", "{\"a\":2,\"b\":40}", 14, 0, 2000, &rep, &err), 0);
        const char *got = hyb_bus_reply_get_body(rep, &len);
        ck_assert_str_eq(got, "{\"sum\":42}");
        ck_assert_str_eq(hyb_bus_reply_get_sender(rep), ep);
        hyb_bus_reply_unref(rep);
        /* Names compare case-insensitively. */
        ck_assert_int_eq(call_status(a, "@LOCALHOST/org.TEST.calc/Main", "ADD", "{\"a\":1,\"b\":1}", NULL, 0), 200);

        /* Policies: 400 naming the key, the handler never runs. */
        ck_assert_int_eq(call_status(a, ep, "add", "{\"a\":1}", msg, sizeof msg), 400);
        ck_assert_ptr_nonnull(strstr(msg, "\"b\""));
        ck_assert_int_eq(call_status(a, ep, "add", "{\"a\":1,\"b\":\"x\"}", msg, sizeof msg), 400);
        ck_assert_ptr_nonnull(strstr(msg, "\"b\""));
        ck_assert_int_eq(call_status(a, ep, "add", "{\"a\":1,\"b\":2,\"label\":3}", msg, sizeof msg), 400);
        ck_assert_ptr_nonnull(strstr(msg, "label"));
        ck_assert_int_eq(call_status(a, ep, "add", "[1,2]", NULL, 0), 400);
        ck_assert_int_eq(call_status(a, ep, "add", "{not json", NULL, 0), 400);
        ck_assert_int_eq(hyb_bus_call(a, ep, "add", "\x01\x02", 2, HYB_BODY_BINARY, 2000, NULL, NULL),
                         HYB_E_BAD_REQUEST);

        /* forApp "org.allowed.*": 403 for others. */
        ck_assert_int_eq(call_status(a, ep, "secret", "{\"a\":1,\"b\":2}", NULL, 0), 403);
        ck_assert_int_eq(call_status(ok, ep, "secret", "{\"a\":1,\"b\":2}", NULL, 0), 200);

        /* 404: unknown method, unknown endpoint; a handler's own error code. */
        ck_assert_int_eq(call_status(a, ep, "nope", "{}", NULL, 0), 404);
        ck_assert_int_eq(call_status(a, "@localhost/org.test.none/main", "add", "{}", NULL, 0), 404);
        ck_assert_int_eq(call_status(a, ep, "fail", "{}", NULL, 0), 404);

        /* Revoking the table: the method is gone. */
        svc_stop(&s);
        hyb_slot_unref(slot);
        ck_assert_int_eq(hyb_bus_flush(b), 0);
        svc_start(&s, b);
        ck_assert_int_eq(call_status(a, ep, "add", "{\"a\":1,\"b\":2}", NULL, 0), 404);
        svc_stop(&s);

        hyb_bus_unref(ok);
        hyb_bus_unref(a);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

START_TEST(test_connect_refusals)
{
        tbroker t;
        hyb_bus *x = NULL;
        hyb_error err;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");

        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.test.a", "main", &x, &err), HYB_E_CONFLICT);
        ck_assert_int_eq(hyb_bus_connect(t.sock, "ORG.test.A", "MAIN", &x, &err), HYB_E_CONFLICT);
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.hybridos.bus", "main", &x, &err), HYB_E_NOT_ACCEPTABLE);
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.test.b", "builtin", &x, &err), HYB_E_NOT_ACCEPTABLE);
        ck_assert_int_eq(hyb_bus_connect(t.sock, "my-app", "main", &x, &err), HYB_E_NOT_ACCEPTABLE);
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.test.b", "9main", &x, &err), HYB_E_NOT_ACCEPTABLE);
        ck_assert_ptr_null(x);
        /* The name is free again once its owner leaves. */
        hyb_bus_unref(a);
        usleep(100000);
        a = tb_connect(&t, "org.test.a", "main");
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

/* A broker whose listen queue is full (a hostile local user can fill it): the connect says
 * so, as a 503 with the socket's path, instead of failing later in the handshake with a
 * send on a socket that never got connected. */
START_TEST(test_connect_queue_full)
{
        char *dir = test_tmpdir();
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int lfd, filler[4], n = 0, r = 0;
        hyb_bus *x = NULL;
        hyb_error err;

        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/full.sock", dir);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(lfd, 0);
        ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(lfd, 0), 0); /* never accepted */
        /* Fill the queue with plain connections until one is refused for lack of room. */
        for (; n < 4; n++) {
                filler[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                ck_assert_int_ge(filler[n], 0);
                if (connect(filler[n], (struct sockaddr *)&sa, sizeof sa) < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        close(filler[n]);
                        break;
                }
        }
        ck_assert_int_lt(n, 4);
        hyb_error_clear(&err);
        r = hyb_bus_connect(sa.sun_path, "org.test.a", "main", &x, &err);
        ck_assert_msg(r == HYB_E_UNAVAILABLE, "connect to a full queue: %d (%s)", r, err.message);
        ck_assert_ptr_null(x);
        ck_assert_ptr_nonnull(strstr(err.message, sa.sun_path));
        ck_assert_ptr_nonnull(strstr(err.message, "queue is full"));
        while (n-- > 0)
                close(filler[n]);
        close(lfd);
        test_rmrf(dir);
        free(dir);
}
END_TEST

/* A service whose "slow" method defers; "release" answers the deferred one. */
typedef struct slowsvc {
        hyb_bus_request *held;
        atomic_int cancelled;
        atomic_int calls;
} slowsvc;

static void on_cancel(hyb_bus_request *req, void *ud)
{
        slowsvc *s = ud;
        atomic_fetch_add(&s->cancelled, 1);
        if (s->held == req) {
                s->held = NULL;
                hyb_bus_request_unref(req);
        }
}

static int on_slow(hyb_bus_request *req, void *ud)
{
        slowsvc *s = ud;
        atomic_fetch_add(&s->calls, 1);
        if (s->held)
                hyb_bus_request_unref(s->held);
        s->held = hyb_bus_request_ref(req);
        hyb_bus_request_set_cancel_handler(req, on_cancel, s);
        return 0;
}

static int on_release(hyb_bus_request *req, void *ud)
{
        slowsvc *s = ud;
        if (!s->held)
                return HYB_E_GONE;
        ck_assert_int_eq(hyb_bus_request_reply(s->held, 200, "\"late\"", 6, 0), 0);
        ck_assert_int_eq(hyb_bus_request_reply(s->held, 200, "\"twice\"", 7, 0), -EALREADY);
        hyb_bus_request_unref(s->held);
        s->held = NULL;
        return hyb_bus_request_reply(req, 200, "{}", 2, 0);
}

static int on_die(hyb_bus_request *req, void *ud)
{
        hyb_bus_close(hyb_bus_request_get_bus(req));
        return 0;
}

static const hyb_method_def slow_table[] = {
        HYB_METHOD_NOARGS("slow", on_slow),
        HYB_METHOD_NOARGS("release", on_release),
        HYB_METHOD_NOARGS("die", on_die),
};

typedef struct got_reply {
        atomic_int n;
        int status;
        char body[64];
} got_reply;

static void on_reply(hyb_bus *bus, const hyb_bus_reply *rep, void *ud)
{
        got_reply *g = ud;
        size_t len;
        const char *b = hyb_bus_reply_get_body(rep, &len);
        g->status = hyb_bus_reply_get_status(rep);
        snprintf(g->body, sizeof g->body, "%.*s", (int)len, b);
        atomic_fetch_add(&g->n, 1);
}

/* A reply callback that drops the caller's last reference to its own call slot (what a
 * binding's garbage collector may do): the library must not touch the slot after that. */
typedef struct self_unref {
        hyb_slot *slot;
        atomic_int n;
        int status;
} self_unref;

static void on_reply_unref_self(hyb_bus *bus, const hyb_bus_reply *rep, void *ud)
{
        self_unref *u = ud;

        u->status = hyb_bus_reply_get_status(rep);
        u->slot = hyb_slot_unref(u->slot);
        atomic_fetch_add(&u->n, 1);
}

static int never_answers(hyb_bus_request *req, void *ud)
{
        return 0; /* nobody processes this bus: the call stays pending */
}

START_TEST(test_reply_callback_unrefs_its_slot)
{
        tbroker t;
        self_unref u = { 0 };

        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        /* answered, then timed out locally: both paths complete the call */
        ck_assert_int_eq(hyb_bus_call_async(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", "1", 1, 0, 2000,
                                            on_reply_unref_self, &u, &u.slot), 0);
        pump_until(a, &u.n, 1, 5000);
        ck_assert_int_eq(atomic_load(&u.n), 1);
        ck_assert_int_eq(u.status, 200);
        ck_assert_ptr_null(u.slot);
        ck_assert_int_eq(hyb_bus_call_async(a, "@localhost/org.test.nobody/main", "m", "{}", 2, 0, 2000,
                                            on_reply_unref_self, &u, &u.slot), 0);
        pump_until(a, &u.n, 2, 5000);
        ck_assert_int_eq(atomic_load(&u.n), 2);
        ck_assert_int_eq(u.status, 404);
        ck_assert_ptr_null(u.slot);
        /* failed by the connection's end: the broker goes with the call pending */
        hyb_bus *hold = tb_connect(&t, "org.test.hold", "main");
        ck_assert_int_eq(hyb_bus_register_procedure(hold, "m", NULL, NULL, never_answers, NULL, NULL,
                                                    NULL), 0);
        ck_assert_int_eq(hyb_bus_call_async(a, "@localhost/org.test.hold/main", "m", "{}", 2, 0, 60000,
                                            on_reply_unref_self, &u, &u.slot), 0);
        ck_assert_int_eq(hyb_bus_flush(a), 0);
        tb_stop(&t);
        pump_until(a, &u.n, 3, 10000);
        ck_assert_int_eq(atomic_load(&u.n), 3);
        ck_assert_int_ne(u.status, 200);
        ck_assert_ptr_null(u.slot);
        hyb_bus_unref(hold);
        hyb_bus_unref(a);
}
END_TEST

/* ---------------------------------------------------------------- many pending calls */

#define HEAP_CALLS 10000

typedef struct heap_run {
        hyb_slot *slots[HEAP_CALLS];
        bool cancelled[HEAP_CALLS];
        int status[HEAP_CALLS];
        uint64_t last_deadline; /* of the latest call expired */
        bool in_order;
        atomic_int n;
} heap_run;

static heap_run *heap_cur;

static void on_heap_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *ud)
{
        heap_run *h = heap_cur;
        size_t i = (size_t)(uintptr_t)ud;
        /* The call's slot is its bus_call (slot first): its local deadline. */
        uint64_t d = ((const bus_call *)h->slots[i])->deadline_us;

        if (d < h->last_deadline)
                h->in_order = false;
        h->last_deadline = d;
        h->status[i] = hyb_bus_reply_get_status(reply);
        atomic_fetch_add(&h->n, 1);
}

/* What hyb_bus_get_timeout must say with nothing buffered: the earliest local deadline,
 * found the slow way over the pending list. */
static uint64_t earliest_pending(const hyb_bus *bus)
{
        uint64_t m = UINT64_MAX;
        for (const bus_call *c = bus->calls_head; c; c = c->next)
                if (c->deadline_us < m)
                        m = c->deadline_us;
        return m;
}

/* 10^4 async calls to a broker that stops answering, with deadlines in shuffled order and a
 * fifth of them cancelled at random: hyb_bus_get_timeout keeps naming the earliest deadline
 * (the pending list walked as reference), and the local 504s come earliest deadline first. */
START_TEST(test_many_pending_deadlines)
{
        tbroker t;
        heap_run *h = calloc(1, sizeof *h);
        uint64_t next;
        unsigned seed = 12345;
        int cancelled = 0;

        ck_assert_ptr_nonnull(h);
        h->in_order = true;
        heap_cur = h;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        tb_pause(&t); /* nothing answers: every call ends at its local deadline */
        /* the calls alone: no openChannel of the library's own among them */
        ck_assert_int_eq(hyb_bus_set_direct(a, false), 0);
        ck_assert_int_eq(hyb_bus_get_timeout(a, &next), 0);
        ck_assert_uint_eq(next, UINT64_MAX);
        for (size_t i = 0; i < HEAP_CALLS; i++) {
                uint32_t ms = 1 + rand_r(&seed) % 500;
                ck_assert_int_eq(hyb_bus_call_async(a, "@localhost/org.test.nobody/main", "m", "{}",
                                                    2, 0, ms, on_heap_reply, (void *)(uintptr_t)i,
                                                    &h->slots[i]),
                                 0);
                if (i % 97 == 0) {
                        ck_assert_int_eq(hyb_bus_get_timeout(a, &next), 0);
                        ck_assert_uint_eq(next, earliest_pending(a));
                }
        }
        ck_assert_uint_eq(a->n_calls, HEAP_CALLS);
        /* Cancel a fifth, from anywhere in the heap (the earliest among them too). */
        for (int k = 0; k < HEAP_CALLS / 5; k++) {
                size_t i = (size_t)rand_r(&seed) % HEAP_CALLS;
                if (k == 0) /* the earliest */
                        i = (size_t)(uintptr_t)a->deadlines[0]->slot.userdata;
                if (h->cancelled[i])
                        continue;
                h->cancelled[i] = true;
                cancelled++;
                ck_assert_ptr_null(hyb_slot_unref(h->slots[i]));
                ck_assert_int_eq(hyb_bus_get_timeout(a, &next), 0);
                ck_assert_uint_eq(next, earliest_pending(a));
        }
        ck_assert_uint_eq(a->n_calls, (size_t)(HEAP_CALLS - cancelled));
        /* Run until every call left has expired. */
        for (int spins = 0; atomic_load(&h->n) < HEAP_CALLS - cancelled && spins < 100000;
             spins++) {
                while (hyb_bus_process(a) > 0)
                        ;
                if (atomic_load(&h->n) >= HEAP_CALLS - cancelled)
                        break;
                ck_assert_int_eq(hyb_bus_get_timeout(a, &next), 0);
                ck_assert_uint_eq(next, earliest_pending(a));
                uint64_t now = hyb_now_usec();
                hyb_bus_wait(a, next == UINT64_MAX ? 100000 : next > now ? next - now : 0);
        }
        ck_assert_int_eq(atomic_load(&h->n), HEAP_CALLS - cancelled);
        ck_assert(h->in_order);
        for (size_t i = 0; i < HEAP_CALLS; i++)
                ck_assert_int_eq(h->status[i], h->cancelled[i] ? 0 : 504);
        ck_assert_uint_eq(a->n_calls, 0);
        ck_assert_int_eq(hyb_bus_get_timeout(a, &next), 0);
        ck_assert_uint_eq(next, UINT64_MAX);
        for (size_t i = 0; i < HEAP_CALLS; i++)
                if (!h->cancelled[i])
                        hyb_slot_unref(h->slots[i]);
        hyb_bus_unref(a);
        tb_resume(&t);
        tb_stop(&t);
        heap_cur = NULL;
        free(h);
}
END_TEST

/* ---------------------------------------------------------------- replies out of order */

#define OOO_CALLS 300

typedef struct ooo {
        hyb_bus_request *reqs[OOO_CALLS];
        atomic_int n_reqs, n_replies, bad;
} ooo;

typedef struct ooo_call {
        ooo *o;
        int i;
} ooo_call;

static int ooo_keep(hyb_bus_request *req, void *ud)
{
        ooo *o = ud;
        int i = atomic_fetch_add(&o->n_reqs, 1);

        ck_assert_int_lt(i, OOO_CALLS);
        o->reqs[i] = hyb_bus_request_ref(req); /* answered later, out of order */
        return 0;
}

static void ooo_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *ud)
{
        ooo_call *c = ud;
        char want[32];
        size_t len;
        const char *b = hyb_bus_reply_get_body(reply, &len);

        snprintf(want, sizeof want, "{\"i\":%d}", c->i);
        if (hyb_bus_reply_get_status(reply) != 200 || len != strlen(want) || memcmp(b, want, len))
                atomic_fetch_add(&c->o->bad, 1);
        atomic_fetch_add(&c->o->n_replies, 1);
}

/* Replies in shuffled order, and a sync call's reply while hundreds of async calls wait:
 * each reply reaches its own call (the pending list is searched from either end). */
START_TEST(test_replies_out_of_order)
{
        tbroker t;
        ooo *o = calloc(1, sizeof *o);
        ooo_call *calls = calloc(OOO_CALLS, sizeof *calls);
        int perm[OOO_CALLS];
        unsigned seed = 777;
        char body[32];
        hyb_error err;

        ck_assert_ptr_nonnull(o);
        ck_assert_ptr_nonnull(calls);
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_bus *b = tb_connect(&t, "org.test.b", "main");
        ck_assert_int_eq(hyb_bus_register_procedure(b, "m", NULL, NULL, ooo_keep, o, NULL, &err),
                         0);
        for (int i = 0; i < OOO_CALLS; i++) {
                calls[i] = (ooo_call){.o = o, .i = i};
                snprintf(body, sizeof body, "{\"i\":%d}", i);
                ck_assert_int_eq(hyb_bus_call_async(a, "@localhost/org.test.b/main", "m", body,
                                                    strlen(body), 0, 30000, ooo_reply, &calls[i],
                                                    NULL),
                                 0);
        }
        ck_assert_int_eq(hyb_bus_flush(a), 0);
        pump_until(b, &o->n_reqs, OOO_CALLS, 20000);
        ck_assert_int_eq(atomic_load(&o->n_reqs), OOO_CALLS);
        /* the newest call, answered while every other one waits */
        ck_assert_int_eq(
                hyb_bus_call(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", "[7]", 3, 0, 10000, NULL, &err),
                0);
        ck_assert_int_eq(atomic_load(&o->n_replies), 0);
        for (int i = 0; i < OOO_CALLS; i++)
                perm[i] = i;
        for (int i = OOO_CALLS - 1; i > 0; i--) {
                int j = (int)(rand_r(&seed) % (unsigned)(i + 1)), x = perm[i];
                perm[i] = perm[j];
                perm[j] = x;
        }
        for (int k = 0; k < OOO_CALLS; k++) {
                hyb_bus_request *req = o->reqs[perm[k]];
                size_t len;
                const void *rb = hyb_bus_request_get_body(req, &len);
                ck_assert_int_eq(hyb_bus_request_reply(req, 200, rb, len, HYB_BODY_JSON), 0);
                hyb_bus_request_unref(req);
        }
        ck_assert_int_eq(hyb_bus_flush(b), 0);
        pump_until(a, &o->n_replies, OOO_CALLS, 20000);
        ck_assert_int_eq(atomic_load(&o->n_replies), OOO_CALLS);
        ck_assert_int_eq(atomic_load(&o->bad), 0);
        ck_assert_uint_eq(a->n_calls, 0);
        hyb_bus_unref(a);
        hyb_bus_unref(b);
        tb_stop(&t);
        free(calls);
        free(o);
}
END_TEST

/* The daemon gone before we read its EOF: a call's write fails, and says the connection is
 * closed (not EPIPE); the next process reads the end and the bus reports closed. */
START_TEST(test_send_after_daemon_gone)
{
        tbroker t;
        hyb_error err;

        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        tb_stop(&t);
        ck_assert(hyb_bus_is_open(a));
        ck_assert_int_eq(hyb_bus_call(a, HYB_BUS_BUILTIN_ENDPOINT, "echo", "1", 1, 0, 1000, NULL, &err),
                         HYB_E_CLOSED);
        int r = 0;
        for (int i = 0; i < 5 && r >= 0; i++) /* a level-triggered loop's turns */
                r = hyb_bus_process(a);
        ck_assert_int_eq(r, HYB_E_CLOSED);
        ck_assert(!hyb_bus_is_open(a));
        hyb_bus_unref(a);
}
END_TEST

/* hyb_bus_call_prepared: hyb_bus_call_into with the struct's members as its arguments
 * (target, buffer, flags, timeout in; length, reply, error out; the body's flags returned),
 * a size too small, a missing struct, bus or target refused. */
START_TEST(test_call_prepared)
{
        tbroker t;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_bus *b = tb_connect(&t, "org.test.slow", "main");
        slowsvc ss = { 0 };
        hyb_slot *tbl = NULL;
        hyb_error err;
        const char *body = "{\"hello\":[1,2,3]}";
        size_t blen = strlen(body), rl;
        char buf[64];
        static const uint8_t bin[] = {0, 1, 2, 0xff};
        hyb_bus_call_args ca;

        memset(&ca, 0, sizeof ca);
        ca.size = sizeof ca;
        ca.bus = a;
        ca.buf = buf;
        ca.buf_size = sizeof buf;
        ca.endpoint = HYB_BUS_BUILTIN_ENDPOINT;
        ca.method = "echo";
        memset(buf, 'x', sizeof buf);
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, body, blen),
                         HYB_BODY_JSON);
        ck_assert_ptr_null(ca.ret_reply);
        ck_assert_uint_eq(ca.ret_len, blen);
        ck_assert_mem_eq(buf, body, blen);
        ck_assert_int_eq(buf[blen], 'x');
        /* flags in: a binary body comes back binary */
        ca.flags = HYB_BODY_BINARY;
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, bin, sizeof bin),
                         HYB_BODY_BINARY);
        ck_assert_uint_eq(ca.ret_len, sizeof bin);
        ck_assert_mem_eq(buf, bin, sizeof bin);
        ca.flags = HYB_BODY_JSON;
        /* buf_size in: one byte short, the reply is handed over */
        ca.buf_size = blen - 1;
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, body, blen),
                         HYB_BODY_JSON);
        ck_assert_ptr_nonnull(ca.ret_reply);
        ck_assert_mem_eq(hyb_bus_reply_get_body(ca.ret_reply, &rl), body, blen);
        ca.ret_reply = hyb_bus_reply_unref(ca.ret_reply);
        ca.buf_size = sizeof buf;
        /* a failed call: its code and message in err */
        ca.method = "noSuchBuiltin";
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, "{}", 2), HYB_E_NOT_FOUND);
        ck_assert_ptr_null(ca.ret_reply);
        ck_assert_int_eq(ca.err.code, HYB_E_NOT_FOUND);
        ck_assert_str_ne(ca.err.message, "");
        /* timeout_ms in: a callee that never serves its calls, a 200 ms deadline */
        ck_assert_int_eq(hyb_endpoint_register_table(b, slow_table, sizeof slow_table[0], 3, &ss,
                                                     &tbl, &err),
                         0);
        ca.timeout_ms = 200;
        ca.endpoint = "@localhost/org.test.slow/main";
        ca.method = "slow";
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, "{}", 2), HYB_E_CALLEE_TIMEOUT);
        ck_assert_int_eq(ca.status, 504);
        ca.timeout_ms = 0;
        /* status out: the answer's own (a status without a code of its own, 418, from a
         * served procedure: test_bus.py test_errors_raised_by_procedures) */
        ca.endpoint = HYB_BUS_BUILTIN_ENDPOINT;
        ca.method = "echo";
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, body, blen), HYB_BODY_JSON);
        ck_assert_int_eq(ca.status, 0);
        ca.method = "noSuchBuiltin";
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, "{}", 2), HYB_E_NOT_FOUND);
        ck_assert_int_eq(ca.status, 404);
        ca.method = "echo";
        /* the HYBRID_0.1 struct (up to err, no status): taken, nothing written past it */
        {
                size_t v1 = offsetof(hyb_bus_call_args, status);
                unsigned char *p = malloc(v1 + 16);
                ck_assert_ptr_nonnull(p);
                memset(p + v1, 0xA5, 16);
                memcpy(p, &ca, v1);
                ((hyb_bus_call_args *)p)->size = v1;
                ((hyb_bus_call_args *)p)->method = "noSuchBuiltin";
                ck_assert_int_eq(hyb_bus_call_prepared((hyb_bus_call_args *)p, "{}", 2),
                                 HYB_E_NOT_FOUND);
                for (size_t i = v1; i < v1 + 16; i++)
                        ck_assert_uint_eq(p[i], 0xA5);
                free(p);
        }
        /* a struct smaller than the first version, no struct, no bus */
        ca.size = offsetof(hyb_bus_call_args, status) - 1;
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, body, blen),
                         -EINVAL);
        ca.size = sizeof ca;
        ck_assert_int_eq(hyb_bus_call_prepared(NULL, body, blen),
                         -EINVAL);
        ca.method = NULL;
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, body, blen), -EINVAL);
        ca.method = "echo";
        ca.endpoint = NULL;
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, body, blen), -EINVAL);
        ca.endpoint = HYB_BUS_BUILTIN_ENDPOINT;
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, body, blen), HYB_BODY_JSON);
        ca.bus = NULL;
        ck_assert_int_eq(hyb_bus_call_prepared(&ca, body, blen), -EINVAL);
        hyb_slot_unref(tbl);
        hyb_bus_unref(b);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

/* A handler run during a hyb_bus_call_prepared's wait that makes a call with the same
 * struct (as a binding's nested call does) and gets a long reply, which it reads and
 * unrefs: when the waiting call then returns with a reply that fits buf, its ret_reply is
 * NULL (the header: "else NULL"), not the handler's reply, gone. */
static hyb_bus_call_args nested_ca;
static char nested_buf[64];
static int nested_reply_len;

static int on_nested(hyb_bus_request *req, void *ud)
{
        char body[128];
        const hyb_bus_call_args saved = nested_ca;
        size_t rl;

        (void)ud;
        memset(body, 'y', sizeof body);
        body[0] = body[sizeof body - 1] = '"';
        nested_ca.endpoint = HYB_BUS_BUILTIN_ENDPOINT;
        nested_ca.method = "echo";
        ck_assert_int_eq(hyb_bus_call_prepared(&nested_ca, body, sizeof body), HYB_BODY_JSON);
        ck_assert_uint_eq(nested_ca.ret_len, sizeof body);
        ck_assert_ptr_nonnull(nested_ca.ret_reply);
        ck_assert_ptr_nonnull(hyb_bus_reply_get_body(nested_ca.ret_reply, &rl));
        nested_reply_len = (int)rl;
        hyb_bus_reply_unref(nested_ca.ret_reply); /* read and dropped; the member left as is */
        nested_ca.endpoint = saved.endpoint;
        nested_ca.method = saved.method;
        return hyb_bus_request_reply(req, 200, "{}", 2, 0);
}

static const hyb_method_def nested_table[] = {
        HYB_METHOD_NOARGS("outer", on_nested),
};

START_TEST(test_call_prepared_nested)
{
        tbroker t;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_slot *tbl = NULL;
        hyb_error err;

        ck_assert_int_eq(hyb_endpoint_register_table(a, nested_table, sizeof nested_table[0], 1,
                                                     NULL, &tbl, &err),
                         0);
        memset(&nested_ca, 0, sizeof nested_ca);
        nested_ca.size = sizeof nested_ca;
        nested_ca.bus = a;
        nested_ca.buf = nested_buf;
        nested_ca.buf_size = sizeof nested_buf;
        nested_ca.endpoint = hyb_bus_get_endpoint_name(a);
        nested_ca.method = "outer";
        nested_reply_len = 0;
        ck_assert_int_eq(hyb_bus_call_prepared(&nested_ca, "{}", 2), HYB_BODY_JSON);
        ck_assert_int_eq(nested_reply_len, 128);
        ck_assert_uint_eq(nested_ca.ret_len, 2);
        ck_assert_mem_eq(nested_buf, "{}", 2);
        ck_assert_ptr_null(nested_ca.ret_reply);
        hyb_slot_unref(tbl);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

START_TEST(test_deadline_cancel_deferred)
{
        tbroker t;
        tsvc s;
        slowsvc ss = { 0 };
        got_reply g = { 0 };
        hyb_slot *call = NULL, *tbl = NULL;
        hyb_error err;
        const char *ep = "@localhost/org.test.slow/main";
        tb_start(&t, NULL, false);
        hyb_bus *b = tb_connect(&t, "org.test.slow", "main");
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        ck_assert_int_eq(hyb_endpoint_register_table(b, slow_table, sizeof slow_table[0], 3, &ss, &tbl, &err), 0);
        svc_start(&s, b);

        /* 504 from the broker at the deadline, and a cancel reaches the callee. */
        ck_assert_int_eq(hyb_bus_call(a, ep, "slow", "{}", 2, 0, 200, NULL, &err), HYB_E_CALLEE_TIMEOUT);
        for (int i = 0; i < 200 && atomic_load(&ss.cancelled) < 1; i++)
                usleep(5000);
        ck_assert_int_eq(atomic_load(&ss.cancelled), 1);

        /* Deferred reply: answered later from another call's handler. */
        ck_assert_int_eq(hyb_bus_call_async(a, ep, "slow", "{}", 2, 0, 5000, on_reply, &g, NULL), 0);
        for (int i = 0; i < 200 && atomic_load(&ss.calls) < 2; i++) {
                hyb_bus_process(a);
                usleep(2000);
        }
        ck_assert_int_eq(call_status(a, ep, "release", "{}", NULL, 0), 200);
        pump_until(a, &g.n, 1, 2000);
        ck_assert_int_eq(atomic_load(&g.n), 1);
        ck_assert_int_eq(g.status, 200);
        ck_assert_str_eq(g.body, "\"late\"");

        /* The caller cancels (slot unref = terminateCall): the callee gets a cancel, no reply comes. */
        ck_assert_int_eq(hyb_bus_call_async(a, ep, "slow", "{}", 2, 0, 5000, on_reply, &g, &call), 0);
        for (int i = 0; i < 200 && atomic_load(&ss.calls) < 3; i++) {
                hyb_bus_process(a);
                usleep(2000);
        }
        hyb_slot_unref(call);
        ck_assert_int_eq(hyb_bus_flush(a), 0);
        for (int i = 0; i < 200 && atomic_load(&ss.cancelled) < 2; i++)
                usleep(5000);
        ck_assert_int_eq(atomic_load(&ss.cancelled), 2);
        ck_assert_int_eq(atomic_load(&g.n), 1);
        /* terminateCall of an unknown call id: 404. */
        ck_assert_int_eq(call_status(a, HYB_BUS_BUILTIN_ENDPOINT, "terminateCall", "{\"callId\":987654}", NULL, 0),
                         404);

        /* 502 at once when the callee disconnects with our call pending. */
        ck_assert_int_eq(hyb_bus_call(a, ep, "die", "{}", 2, 0, 10000, NULL, &err), HYB_E_BAD_CALLEE);
        svc_stop(&s);
        hyb_slot_unref(tbl);
        hyb_bus_unref(b);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

/* Nested A -> B -> A with sync calls on both sides. */
static int on_ping(hyb_bus_request *req, void *ud)
{
        return hyb_bus_request_reply(req, 200, "\"pong\"", 6, 0);
}

static int on_relay(hyb_bus_request *req, void *ud)
{
        hyb_bus_reply *rep = NULL;
        size_t len;
        int r = hyb_bus_call(hyb_bus_request_get_bus(req), hyb_bus_request_get_caller(req), "ping", "{}", 2, 0,
                             2000, &rep, NULL);
        if (r < 0)
                return r;
        const void *body = hyb_bus_reply_get_body(rep, &len);
        r = hyb_bus_request_reply(req, 200, body, len, 0);
        hyb_bus_reply_unref(rep);
        return r;
}

START_TEST(test_nested_sync)
{
        tbroker t;
        tsvc s;
        hyb_bus_reply *rep = NULL;
        hyb_error err;
        size_t len;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_bus *b = tb_connect(&t, "org.test.b", "main");
        ck_assert_int_eq(hyb_bus_register_procedure(a, "ping", NULL, NULL, on_ping, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_register_procedure(b, "relay", NULL, NULL, on_relay, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_register_procedure(b, "relay", NULL, NULL, on_relay, NULL, NULL, &err),
                         HYB_E_CONFLICT);
        svc_start(&s, b);
        for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(hyb_bus_call(a, "@localhost/org.test.b/main", "relay", "{}", 2, 0, 3000, &rep, &err), 0);
                ck_assert_str_eq(hyb_bus_reply_get_body(rep, &len), "\"pong\"");
                hyb_bus_reply_unref(rep);
        }
        svc_stop(&s);
        hyb_bus_unref(b);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

/* A callback that closes its own bus and drops the last reference to it while a synchronous call (or a
 * counted fire) of that bus waits (what a binding's close() from a callback does): the
 * waiting function must not read the freed connection; it fails with HYB_E_CLOSED. */
static int on_drop_bus(hyb_bus_request *req, void *ud)
{
        hyb_bus **pb = ud;
        hyb_bus_close(*pb);
        *pb = hyb_bus_unref(*pb);
        return 0;
}

static void on_event_drop_bus(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        hyb_bus **pb = ud;
        hyb_bus_close(*pb);
        *pb = hyb_bus_unref(*pb);
}

START_TEST(test_unref_bus_while_sync_call_waits)
{
        tbroker t;
        hyb_bus_reply *rep = NULL;
        hyb_error err;
        uint32_t d = 0, f = 0;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        ck_assert_int_eq(hyb_bus_register_procedure(a, "drop", NULL, NULL, on_drop_bus, &a, NULL, &err), 0);
        hyb_error_clear(&err);
        ck_assert_int_eq(hyb_bus_call(a, "@localhost/org.test.a/main", "drop", "{}", 2, 0, 10000, &rep, &err),
                         HYB_E_CLOSED);
        ck_assert_ptr_null(a);
        ck_assert_ptr_null(rep);
        ck_assert_int_eq(err.code, HYB_E_CLOSED);

        /* the same from an event callback while a counted fire waits for its counts */
        hyb_bus *g = tb_connect(&t, "org.test.gen", "main");
        ck_assert_int_eq(hyb_bus_register_event(g, "TEMP", NULL, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(g, "@localhost/org.test.gen/main", "TEMP", on_event_drop_bus, &g,
                                           NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_fire(g, "TEMP", "1", 1, 0, &d, &f), HYB_E_CLOSED);
        ck_assert_ptr_null(g);
        tb_stop(&t);
}
END_TEST

START_TEST(test_builtin_lists)
{
        tbroker t;
        hyb_bus_reply *rep = NULL;
        hyb_error err;
        size_t len;
        tb_start(&t, NULL, false);
        hyb_bus *b = tb_connect(&t, "org.test.calc", "main");
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        ck_assert_int_eq(hyb_endpoint_register_table(b, calc_table, sizeof calc_table[0], 3, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_register_event(b, "Changed", NULL, "org.nobody", NULL, &err), 0);

        ck_assert_int_eq(hyb_bus_call_builtin(a, "listProcedures", "{}", &rep, &err), 0);
        const char *lp = hyb_bus_reply_get_body(rep, &len);
        json_t *j = json_loadb(lp, len, 0, NULL);
        hyb_bus_reply_unref(rep);
        ck_assert(json_is_array(j));
        bool saw_add = false, saw_secret = false;
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
                const char *n = json_string_value(json_object_get(v, "procedureName"));
                if (n && !strcmp(n, "@localhost/org.test.calc/main/add")) {
                        saw_add = true;
                        json_t *pol = json_object_get(v, "policy");
                        ck_assert_int_eq(json_array_size(pol), 3);
                        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(pol, 0), "key")), "a");
                        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(pol, 0), "type")), "integer");
                        ck_assert(json_is_true(json_object_get(json_array_get(pol, 0), "required")));
                }
                if (n && strstr(n, "/secret"))
                        saw_secret = true;
        }
        json_decref(j);
        ck_assert(saw_add);
        ck_assert(!saw_secret); /* a may not call it: not listed */

        ck_assert_int_eq(hyb_bus_call_builtin(a, "listEvents", "{}", &rep, &err), 0);
        const char *body = hyb_bus_reply_get_body(rep, &len);
        ck_assert_ptr_nonnull(strstr(body, "@localhost/org.hybridos.bus/builtin/NewEndpoint"));
        ck_assert_ptr_null(strstr(body, "Changed")); /* forApp org.nobody */
        hyb_bus_reply_unref(rep);

        ck_assert_int_eq(hyb_bus_call_builtin(a, "listEndpoints", "{}", &rep, &err), 0);
        body = hyb_bus_reply_get_body(rep, &len);
        ck_assert_ptr_nonnull(strstr(body, "@localhost/org.test.calc/main"));
        hyb_bus_reply_unref(rep);

        /* Registration errors through the builtin endpoint. */
        ck_assert_int_eq(hyb_bus_call_builtin(a, "registerProcedure", "{\"methodName\":\"9bad\"}", NULL, &err),
                         HYB_E_NOT_ACCEPTABLE);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "registerProcedure", "{\"methodName\":\"m\",\"forApp\":\"!\"}", NULL,
                                              &err), HYB_E_NOT_ACCEPTABLE);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "revokeProcedure", "{\"methodName\":\"never\"}", NULL, &err),
                         HYB_E_NOT_FOUND);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "revokeEvent", "{\"bubbleName\":\"never\"}", NULL, &err),
                         HYB_E_NOT_FOUND);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "registerEvent", "{}", NULL, &err), HYB_E_BAD_REQUEST);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "listEndpoints", "[]", NULL, &err), HYB_E_BAD_REQUEST);
        hyb_bus_unref(a);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

START_TEST(test_event_loop_adapter)
{
        tbroker t;
        tsvc s;
        got_reply g = { 0 };
        hyb_error err;
        tb_start(&t, NULL, false);
        hyb_bus *b = tb_connect(&t, "org.test.calc", "main");
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        ck_assert_int_eq(hyb_endpoint_register_table(b, calc_table, sizeof calc_table[0], 3, NULL, NULL, &err), 0);
        svc_start(&s, b);
        struct event_base *base = event_base_new();
        ck_assert_int_eq(hyb_bus_attach_event(a, base), 0);
        ck_assert_int_eq(hyb_bus_attach_event(a, base), -EBUSY);
        ck_assert_int_eq(hyb_bus_call_async(a, "@localhost/org.test.calc/main", "add", "{\"a\":5,\"b\":6}", 13, 0,
                                            2000, on_reply, &g, NULL), 0);
        for (int i = 0; i < 400 && atomic_load(&g.n) < 1; i++)
                event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
        ck_assert_int_eq(atomic_load(&g.n), 1);
        ck_assert_str_eq(g.body, "{\"sum\":11}");
        hyb_bus_detach_event(a);
        event_base_free(base);
        svc_stop(&s);
        hyb_bus_unref(a);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/* A signal during a sync call (a runtime's SIGCHLD, a timer) does not end the wait: the
 * call still gets its answer (it used to return -EINTR and leave the call dangling). */
static int on_sleepy(hyb_bus_request *req, void *ud)
{
        usleep(300000);
        return hyb_bus_request_reply(req, 200, "\"awake\"", 7, 0);
}

static void on_sigusr1(int sig)
{
}

typedef struct pester {
        pthread_t target;
        atomic_bool stop;
        atomic_int sent;
} pester;

static void *pester_main(void *arg)
{
        pester *p = arg;
        while (!atomic_load(&p->stop)) {
                pthread_kill(p->target, SIGUSR1);
                atomic_fetch_add(&p->sent, 1);
                usleep(1000);
        }
        return NULL;
}

START_TEST(test_sync_call_signal)
{
        tbroker t;
        tsvc s;
        hyb_slot *slot = NULL;
        hyb_bus_reply *rep = NULL;
        hyb_error err;
        struct sigaction sa = { .sa_handler = on_sigusr1 }, old;
        pester p = { .target = pthread_self() };
        pthread_t th;
        size_t len;
        int r;

        tb_start(&t, NULL, false);
        hyb_bus *b = tb_connect(&t, "org.test.sleepy", "main");
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        ck_assert_int_eq(hyb_bus_register_procedure(b, "sleepy", NULL, NULL, on_sleepy, NULL, &slot, &err), 0);
        svc_start(&s, b);
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART: poll(2) fails with EINTR */
        ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
        ck_assert_int_eq(pthread_create(&th, NULL, pester_main, &p), 0);
        r = hyb_bus_call(a, "@localhost/org.test.sleepy/main", "sleepy", "{}", 2, 0, 10000, &rep, &err);
        atomic_store(&p.stop, true);
        pthread_join(th, NULL);
        sigaction(SIGUSR1, &old, NULL);
        ck_assert_msg(r == 0, "call: %d %s", r, err.message);
        /* the call lasted long enough for the signals to reach the wait */
        ck_assert_int_gt(atomic_load(&p.sent), 2);
        ck_assert_str_eq(hyb_bus_reply_get_body(rep, &len), "\"awake\"");
        hyb_bus_reply_unref(rep);
        svc_stop(&s);
        hyb_slot_unref(slot);
        hyb_bus_unref(b);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

Suite *bus_suite(void)
{
        Suite *s = suite_create("bus");
        TCase *tc = tcase_create("calls");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_echo_json);
        tcase_add_test(tc, test_call_into);
        tcase_add_test(tc, test_call_prepared);
        tcase_add_test(tc, test_call_prepared_nested);
        tcase_add_test(tc, test_echo_16mib_binary);
        tcase_add_test(tc, test_calls_policy_acl);
        tcase_add_test(tc, test_connect_refusals);
        tcase_add_test(tc, test_connect_queue_full);
        tcase_add_test(tc, test_deadline_cancel_deferred);
        tcase_add_test(tc, test_reply_callback_unrefs_its_slot);
        tcase_add_test(tc, test_many_pending_deadlines);
        tcase_add_test(tc, test_replies_out_of_order);
        tcase_add_test(tc, test_send_after_daemon_gone);
        tcase_add_test(tc, test_nested_sync);
        tcase_add_test(tc, test_unref_bus_while_sync_call_waits);
        tcase_add_test(tc, test_builtin_lists);
        tcase_add_test(tc, test_event_loop_adapter);
        tcase_add_test(tc, test_sync_call_signal);
        suite_add_tcase(s, tc);
        bus_tcase_events(s);
        bus_tcase_limits(s);
        bus_tcase_review(s);
        bus_tcase_slots(s);
        bus_tcase_builtin(s);
        bus_tcase_store(s);
        bus_tcase_log(s);
        bus_tcase_reload(s);
        bus_tcase_token(s);
        bus_tcase_wait(s);
        bus_tcase_channel(s);
        bus_tcase_direct(s);
        return s;
}
