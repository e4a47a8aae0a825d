/* SPDX-License-Identifier: MIT */
/*
 * bus_suite, tcase "review": regression tests for bugs found in the review of
 * the bus core (each test names the bug it pins down).  Expected behaviour is
 * from doc/protocol.md and doc/protocol.md.
 */
#include <dirent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "bus/bus-internal.h" /* the broker socket under the epoll fd */
#include "bus/wire.h"
#include "hybrid/endpoint.h"
#include "test_bus.h"
#include "testutil.h"

typedef struct got {
        atomic_int n;
        char body[256];
} got;

static void on_event(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        got *g = ud;
        size_t len;
        const char *b = hyb_bus_event_get_body(ev, &len);
        snprintf(g->body, sizeof g->body, "%.*s", (int)(len < 255 ? len : 255), b);
        atomic_fetch_add(&g->n, 1);
}

/*
 * broker events_conn_gone: a subscriber reaped before the (also dead) generator
 * stayed in the generator's subscriber array; reaping the generator then read the
 * freed subscriber (use-after-free, seen by valgrind/ASan).  hyb_broker_free with
 * both connected reaps the older connection (the subscriber) first.
 */
START_TEST(test_free_with_subscriber_before_generator)
{
        tbroker t;
        got g = { 0 };
        hyb_error err;
        uint32_t d = 0, f = 0;
        tb_start(&t, NULL, false);
        hyb_bus *sub = tb_connect(&t, "org.test.sub", "main");
        hyb_bus *gen = tb_connect(&t, "org.test.gen", "main");

        ck_assert_int_eq(hyb_bus_register_event(gen, "Tick", NULL, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(sub, "@localhost/org.test.gen/main", "Tick", on_event, &g, NULL, &err),
                         0);
        ck_assert_int_eq(hyb_bus_subscribe(sub, "@localhost/org.test.*/*", "T*", on_event, &g, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_fire(gen, "Tick", "1", 1, 0, &d, &f), 0);
        ck_assert_uint_eq(d, 1); /* once per connection though two subscriptions match */
        ck_assert_uint_eq(f, 0);
        pump_until(sub, &g.n, 2, 2000);
        ck_assert_int_eq(atomic_load(&g.n), 2); /* the library fans out to both local subscriptions */

        /* Both still connected: the broker goes away under them. */
        tb_stop(&t);
        hyb_bus_unref(gen);
        hyb_bus_unref(sub);
}
END_TEST

/* broker hyb_broker_start: accepted connections were not O_CLOEXEC (a fork+exec leaked them). */
START_TEST(test_accepted_fds_cloexec)
{
        tbroker t;
        tb_start(&t, NULL, false);
        hyb_bus *a = tb_connect(&t, "org.test.fds", "main");
        hyb_bus *b = tb_connect(&t, "org.test.fds", "two");
        int sockets = 0;

        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        for (struct dirent *e; (e = readdir(d));) {
                char link[64], path[300];
                int fd = atoi(e->d_name);
                if (e->d_name[0] == '.' || fd == dirfd(d))
                        continue;
                snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
                ssize_t n = readlink(path, link, sizeof link - 1);
                if (n <= 0)
                        continue;
                link[n] = 0;
                if (strncmp(link, "socket:", 7) != 0)
                        continue;
                sockets++;
                int fl = fcntl(fd, F_GETFD);
                ck_assert_msg(fl >= 0 && (fl & FD_CLOEXEC), "socket fd %d (%s) without FD_CLOEXEC", fd, link);
        }
        closedir(d);
        /* listener + two clients + two accepted */
        ck_assert_int_ge(sockets, 5);
        hyb_bus_unref(a);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/* A broker on its own thread whose shutdown is triggered through a pipe, from the base's thread. */
typedef struct sbroker {
        pthread_t thread;
        struct event_base *base;
        struct event *ev;
        hyb_broker *broker;
        hyb_broker_config *cfg;
        int pipe[2];
        char *dir;
        char sock[256];
} sbroker;

static void on_shutdown_pipe(evutil_socket_t fd, short what, void *ud)
{
        sbroker *s = ud;
        char c;
        ck_assert_int_eq(read(fd, &c, 1), 1);
        hyb_broker_shutdown(s->broker);
}

static void *sb_main(void *ud)
{
        sbroker *s = ud;
        event_base_dispatch(s->base);
        return NULL;
}

static void sb_start(sbroker *s)
{
        hyb_error err;
        memset(s, 0, sizeof *s);
        s->dir = test_tmpdir();
        snprintf(s->sock, sizeof s->sock, "%s/bus.sock", s->dir);
        ck_assert_int_eq(hyb_broker_config_new(&s->cfg), 0);
        ck_assert_int_eq(hyb_broker_config_set_socket(s->cfg, s->sock), 0);
        s->base = event_base_new();
        ck_assert_int_eq(hyb_broker_new(s->cfg, s->base, &s->broker, &err), 0);
        ck_assert_int_eq(hyb_broker_start(s->broker, &err), 0);
        ck_assert_int_eq(pipe2(s->pipe, O_CLOEXEC), 0);
        s->ev = event_new(s->base, s->pipe[0], EV_READ, on_shutdown_pipe, s);
        event_add(s->ev, NULL);
        ck_assert_int_eq(pthread_create(&s->thread, NULL, sb_main, s), 0);
}

/* Triggers hyb_broker_shutdown and waits until event_base_dispatch returned by itself. */
static void sb_shutdown_join(sbroker *s)
{
        ck_assert_int_eq(write(s->pipe[1], "x", 1), 1);
        pthread_join(s->thread, NULL);
}

static void sb_free(sbroker *s)
{
        event_free(s->ev);
        hyb_broker_free(s->broker);
        ck_assert_int_ne(access(s->sock, F_OK), 0);
        hyb_broker_config_unref(s->cfg);
        event_base_free(s->base);
        close(s->pipe[0]);
        close(s->pipe[1]);
        test_rmrf(s->dir);
        free(s->dir);
}

/*
 * broker conn_reap: on shutdown every connection was freed at once, dropping the
 * SystemShuttingDown event still queued for it (spec: builtin event
 * SystemShuttingDown reaches subscribers; broker.h: connections close once
 * their queued output is written).
 */
START_TEST(test_shutdown_event_delivered)
{
        sbroker s;
        got g = { 0 };
        hyb_bus *bus = NULL;
        hyb_error err;
        sb_start(&s);
        ck_assert_int_eq(hyb_bus_connect(s.sock, "org.test.down", "main", &bus, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(bus, HYB_BUS_BUILTIN_ENDPOINT, "SystemShuttingDown", on_event, &g, NULL,
                                           &err),
                         0);
        sb_shutdown_join(&s);
        pump_until(bus, &g.n, 1, 2000);
        ck_assert_int_eq(atomic_load(&g.n), 1);
        ck_assert_str_eq(g.body, "{}");
        /* Then the broker hung up. */
        while (hyb_bus_process(bus) > 0)
                ;
        ck_assert(!hyb_bus_is_open(bus));
        hyb_bus_unref(bus);
        sb_free(&s);
}
END_TEST

/* ---------------------------------------------------------------- raw peers */

/* Reads one whole frame: its header, and (malloc'd, caller frees) names + body; the generous
 * wait only matters when something is wrong (or under valgrind on a loaded machine). */
static int raw_read(int fd, wire_hdr *h, char **rest)
{
        uint8_t hb[WIRE_HDR_SIZE];
        if (raw_read_exact(fd, hb, sizeof hb, 30000) < 0 || wire_hdr_decode(hb, h) < 0)
                return -1;
        size_t n = wire_frame_len(h) - WIRE_HDR_SIZE;
        *rest = malloc(n + 1);
        if (raw_read_exact(fd, *rest, n, 30000) < 0) {
                free(*rest);
                return -1;
        }
        (*rest)[n] = 0;
        return 0;
}

static void raw_write(int fd, wire_hdr *h, const char *to, const char *member, const void *body, size_t len)
{
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        int n = wire_build(h, NULL, 0, to, to ? strlen(to) : 0, member, member ? strlen(member) : 0, body, len,
                           buf, iov);
        size_t total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);
        ck_assert_int_eq(writev(fd, iov, n), (ssize_t)total);
}

/* A builtin call from a raw peer; returns the RESULT status. */
static int raw_builtin(int fd, uint64_t id, const char *method, const char *json)
{
        wire_hdr h = { .type = WIRE_CALL, .call_id = id, .timeout_ms = 2000 };
        char *rest;
        raw_write(fd, &h, HYB_BUS_BUILTIN_ENDPOINT, method, json, strlen(json));
        ck_assert_int_eq(raw_read(fd, &h, &rest), 0);
        free(rest);
        ck_assert_int_eq(h.type, WIRE_RESULT);
        ck_assert_uint_eq(h.call_id, id);
        return h.status;
}

typedef struct got_mon {
        atomic_int n;
        int results_hello, echo_calls;
        size_t hello_len;
} got_mon;

static void on_monitor(hyb_bus *bus, const hyb_bus_monitor_record *rec, void *ud)
{
        got_mon *m = ud;
        if (!strcmp(rec->kind, "result") && !strcmp(rec->member, "hello")) {
                m->results_hello++;
                m->hello_len = rec->body_len;
        }
        if (!strcmp(rec->kind, "call") && !strcmp(rec->member, "echo"))
                m->echo_calls++;
        atomic_fetch_add(&m->n, 1);
}

static void on_reply(hyb_bus *bus, const hyb_bus_reply *rep, void *ud)
{
        got *g = ud;
        size_t len;
        hyb_bus_reply_get_body(rep, &len);
        snprintf(g->body, sizeof g->body, "%d %s %zu", hyb_bus_reply_get_status(rep),
                 hyb_bus_reply_get_message(rep), len);
        atomic_fetch_add(&g->n, 1);
}

/*
 * broker route_result / route_call (builtin branch): with a monitor on, the
 * frame was pulled up for the monitor copy (moving it to a new evbuffer chain)
 * and then f->member / f->to were still read from the freed chain.  A RESULT
 * carrying both a message and a body bigger than one read chunk, and a builtin
 * call with such a body, hit it (valgrind/ASan: invalid read).
 */
START_TEST(test_monitor_big_frames)
{
        tbroker t;
        got_mon m = { 0 };
        got g = { 0 };
        hyb_error err;
        hyb_slot *mslot = NULL;
        const size_t big = 300 * 1024;
        char *body = malloc(big);
        memset(body, 'x', big);

        tb_start(&t, NULL, true);
        hyb_bus *mon = tb_connect(&t, "org.test.mon", "main");
        hyb_bus *caller = tb_connect(&t, "org.test.caller", "main");
        ck_assert_int_eq(hyb_bus_monitor(mon, on_monitor, &m, &mslot, &err), 0);

        int fd = raw_connect(&t, "org.test.rawcallee", "main", true);
        ck_assert_int_eq(raw_builtin(fd, 1, "registerProcedure", "{\"methodName\":\"m\"}"), 200);

        ck_assert_int_eq(hyb_bus_call_async(caller, "@localhost/org.test.rawcallee/main", "m", "{}", 2, 0, 3000,
                                            on_reply, &g, NULL),
                         0);
        ck_assert_int_eq(hyb_bus_flush(caller), 0);
        wire_hdr h;
        char *rest;
        ck_assert_int_eq(raw_read(fd, &h, &rest), 0);
        free(rest);
        ck_assert_int_eq(h.type, WIRE_CALL);
        /* Answer with a message AND a big body (the public API never sends both; a raw peer may). */
        wire_hdr r = { .type = WIRE_RESULT, .status = 200, .call_id = h.call_id };
        raw_write(fd, &r, NULL, "hello", body, big);
        pump_until(caller, &g.n, 1, 3000);
        ck_assert_int_eq(atomic_load(&g.n), 1);
        ck_assert_str_eq(g.body, "200 hello 307200");

        /* A big builtin call (echo) while monitored. */
        hyb_bus_reply *rep = NULL;
        ck_assert_int_eq(hyb_bus_call(caller, HYB_BUS_BUILTIN_ENDPOINT, "echo", body, big, HYB_BODY_BINARY, 3000,
                                      &rep, &err),
                         0);
        size_t len;
        ck_assert_ptr_nonnull(hyb_bus_reply_get_body(rep, &len));
        ck_assert_uint_eq(len, big);
        hyb_bus_reply_unref(rep);

        for (int i = 0; i < 400 && (m.results_hello < 1 || m.echo_calls < 1); i++) {
                while (hyb_bus_process(mon) > 0)
                        ;
                hyb_bus_wait(mon, 5000);
        }
        ck_assert_int_eq(m.results_hello, 1);
        ck_assert_uint_eq(m.hello_len, big);
        ck_assert_int_ge(m.echo_calls, 1);

        close(fd);
        hyb_slot_unref(mslot);
        hyb_bus_unref(caller);
        hyb_bus_unref(mon);
        tb_stop(&t);
        free(body);
}
END_TEST

/*
 * broker builtin registerProcedure / registerEvent: a forApp that is not a string
 * was silently taken as "*" (opening what the registrant meant to restrict);
 * access lists and policies had no size cap (one peer could make the broker hold
 * and walk megabytes per registration).
 */
START_TEST(test_registration_params_bounded)
{
        tbroker t;
        tb_start(&t, NULL, false);
        int fd = raw_connect(&t, "org.test.reg", "main", true);
        char *json = malloc(200 * 1024);

        ck_assert_int_eq(raw_builtin(fd, 1, "registerProcedure", "{\"methodName\":\"a\",\"forApp\":[\"org.x\"]}"),
                         400);
        ck_assert_int_eq(raw_builtin(fd, 2, "registerEvent", "{\"bubbleName\":\"B\",\"forHost\":7}"), 400);
        ck_assert_int_eq(raw_builtin(fd, 3, "registerProcedure", "{\"methodName\":\"a\",\"forApp\":null}"), 200);

        /* 5000 bytes of valid items: over the 4096-byte cap, 406 like any bad list. */
        int n = sprintf(json, "{\"methodName\":\"b\",\"forApp\":\"");
        for (int i = 0; i < 2500; i++)
                n += sprintf(json + n, "a ");
        sprintf(json + n, "\"}");
        ck_assert_int_eq(raw_builtin(fd, 4, "registerProcedure", json), 406);
        n = sprintf(json, "{\"bubbleName\":\"C\",\"forHost\":\"");
        for (int i = 0; i < 2500; i++)
                n += sprintf(json + n, "a ");
        sprintf(json + n, "\"}");
        ck_assert_int_eq(raw_builtin(fd, 5, "registerEvent", json), 406);

        /* A 100 KiB argument policy: 413. */
        n = sprintf(json, "{\"methodName\":\"c\",\"policy\":[");
        for (int i = 0; i < 3000; i++)
                n += sprintf(json + n, "%s{\"key\":\"k%04d\",\"type\":\"string\"}", i ? "," : "", i);
        sprintf(json + n, "]}");
        ck_assert_int_eq(raw_builtin(fd, 6, "registerProcedure", json), 413);
        /* Nothing of the refused ones was registered. */
        ck_assert_int_eq(raw_builtin(fd, 7, "revokeProcedure", "{\"methodName\":\"b\"}"), 404);
        ck_assert_int_eq(raw_builtin(fd, 8, "revokeProcedure", "{\"methodName\":\"c\"}"), 404);
        ck_assert_int_eq(raw_builtin(fd, 9, "revokeEvent", "{\"bubbleName\":\"B\"}"), 404);
        ck_assert_int_eq(raw_builtin(fd, 10, "revokeProcedure", "{\"methodName\":\"a\"}"), 200);
        free(json);
        close(fd);
        tb_stop(&t);
}
END_TEST

/*
 * Pending-call cleanup through raw peers (doc/protocol.md "Calls"): a caller that
 * dies makes the broker send CANCEL (410) for its calls to the callee; a callee
 * that dies makes every caller get 502 at once (long before the deadline).
 */
START_TEST(test_pending_cleanup_both_ways)
{
        tbroker t;
        got g1 = { 0 }, g2 = { 0 };
        tb_start(&t, NULL, false);
        int callee = raw_connect(&t, "org.test.callee", "main", true);
        ck_assert_int_eq(raw_builtin(callee, 1, "registerProcedure", "{\"methodName\":\"hold\"}"), 200);
        const char *ep = "@localhost/org.test.callee/main";

        /* Caller death -> CANCEL 410 for exactly its call. */
        int dying = raw_connect(&t, "org.test.dying", "main", true);
        wire_hdr h = { .type = WIRE_CALL, .call_id = 42, .timeout_ms = 60000 };
        raw_write(dying, &h, ep, "hold", "{}", 2);
        char *rest;
        ck_assert_int_eq(raw_read(callee, &h, &rest), 0);
        free(rest);
        ck_assert_int_eq(h.type, WIRE_CALL);
        uint64_t first = h.call_id;
        close(dying);
        ck_assert_int_eq(raw_read(callee, &h, &rest), 0);
        free(rest);
        ck_assert_int_eq(h.type, WIRE_CANCEL);
        ck_assert_uint_eq(h.call_id, first);
        ck_assert_int_eq(h.status, 410);

        /* Two callers waiting 60 s each: the callee dies, both get 502 now. */
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_bus *b = tb_connect(&t, "org.test.b", "main");
        ck_assert_int_eq(hyb_bus_call_async(a, ep, "hold", "{}", 2, 0, 60000, on_reply, &g1, NULL), 0);
        ck_assert_int_eq(hyb_bus_call_async(b, ep, "hold", "{}", 2, 0, 60000, on_reply, &g2, NULL), 0);
        ck_assert_int_eq(hyb_bus_flush(a), 0);
        ck_assert_int_eq(hyb_bus_flush(b), 0);
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(raw_read(callee, &h, &rest), 0);
                free(rest);
                ck_assert_int_eq(h.type, WIRE_CALL);
        }
        close(callee);
        pump_until(a, &g1.n, 1, 3000);
        pump_until(b, &g2.n, 1, 3000);
        ck_assert_int_eq(atomic_load(&g1.n), 1);
        ck_assert_int_eq(atomic_load(&g2.n), 1);
        ck_assert_int_eq(atoi(g1.body), 502);
        ck_assert_int_eq(atoi(g2.body), 502);
        hyb_bus_unref(a);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/*
 * Framing (doc/protocol.md "Frame"): a frame dribbled one byte per write, and
 * several frames in one write, are each answered once and in order.
 */
START_TEST(test_frames_split_and_batched)
{
        tbroker t;
        tb_start(&t, NULL, false);
        int fd = raw_connect(&t, "org.test.split", "main", true);
        uint8_t buf[3 * (WIRE_HDR_SIZE + WIRE_NAMES_MAX + 16)];
        size_t len = 0;
        for (uint64_t id = 1; id <= 3; id++) {
                wire_hdr h = { .type = WIRE_CALL, .call_id = id, .timeout_ms = 1000 };
                struct iovec iov[2];
                uint8_t hb[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                int n = wire_build(&h, NULL, 0, HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT), "echo",
                                   4, "[1]", 3, hb, iov);
                ck_assert_int_eq(n, 2);
                memcpy(buf + len, iov[0].iov_base, iov[0].iov_len);
                len += iov[0].iov_len;
                memcpy(buf + len, iov[1].iov_base, iov[1].iov_len);
                len += iov[1].iov_len;
        }
        size_t one = len / 3;
        for (size_t i = 0; i < one; i++) {
                ck_assert_int_eq(write(fd, buf + i, 1), 1);
                usleep(200);
        }
        ck_assert_int_eq(write(fd, buf + one, len - one), (ssize_t)(len - one));
        for (uint64_t id = 1; id <= 3; id++) {
                wire_hdr h;
                char *rest;
                ck_assert_int_eq(raw_read(fd, &h, &rest), 0);
                ck_assert_int_eq(h.type, WIRE_RESULT);
                ck_assert_int_eq(h.status, 200);
                ck_assert_uint_eq(h.call_id, id);
                ck_assert_uint_eq(h.body_len, 3);
                ck_assert_int_eq(memcmp(rest + h.from_len + h.to_len + h.member_len, "[1]", 3), 0);
                free(rest);
        }
        close(fd);
        tb_stop(&t);
}
END_TEST


/*
 * Ordering and integrity under partial direct writes (doc/protocol.md "Calls": bodies are
 * moved as is; bus.md: a connection is a byte stream of whole frames).  A caller pipelines
 * hundreds of CALLs with bodies of up to 40 KB to a callee that reads slowly, so the
 * broker's writes to the callee go partial and later frames queue behind the rest; the
 * results come back the same way.  Every CALL must reach the callee whole and in order,
 * every RESULT the caller whole, in order, with its own id and body.
 */
#define PIPE_CALLS 600

static size_t pipe_len(int i)
{
        return 2 + 100 + ((size_t)i * 7919u) % 40000u;
}

/* Body i: a JSON string whose letters depend on i and the position. */
static char *pipe_body(int i)
{
        size_t n = pipe_len(i);
        char *b = malloc(n);
        b[0] = '"';
        for (size_t k = 1; k + 1 < n; k++)
                b[k] = (char)('a' + ((size_t)i * 7u + k) % 26u);
        b[n - 1] = '"';
        return b;
}

typedef struct pipe_peer {
        int fd;
        const char *ep;
        int bad;        /* first failed index + 1, 0 = all good */
        const char *why;
} pipe_peer;

static void *pipe_caller_write(void *ud)
{
        pipe_peer *p = ud;
        for (int i = 0; i < PIPE_CALLS; i++) {
                wire_hdr h = { .type = WIRE_CALL, .call_id = (uint64_t)i + 1, .timeout_ms = 60000 };
                uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                struct iovec iov[2];
                char *body = pipe_body(i);
                size_t len = pipe_len(i);
                int n = wire_build(&h, NULL, 0, p->ep, strlen(p->ep), "slow", 4, body, len, buf, iov);
                size_t total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0), off = 0;
                while (off < total) {
                        struct iovec v[2];
                        int k = 0;
                        size_t o = off;
                        for (int j = 0; j < n; j++) {
                                if (o >= iov[j].iov_len) {
                                        o -= iov[j].iov_len;
                                        continue;
                                }
                                v[k].iov_base = (char *)iov[j].iov_base + o;
                                v[k++].iov_len = iov[j].iov_len - o;
                                o = 0;
                        }
                        ssize_t w = writev(p->fd, v, k);
                        if (w <= 0) {
                                p->bad = i + 1;
                                p->why = "caller write failed";
                                free(body);
                                return NULL;
                        }
                        off += (size_t)w;
                }
                free(body);
        }
        return NULL;
}

/* Reads PIPE_CALLS RESULTs on the caller in order. */
static void *pipe_caller_read(void *ud)
{
        pipe_peer *p = ud;
        for (int i = 0; i < PIPE_CALLS; i++) {
                wire_hdr h;
                char *rest = NULL, *body = pipe_body(i);
                if (raw_read(p->fd, &h, &rest) < 0)
                        p->why = "caller: no RESULT";
                else if (h.type != WIRE_RESULT || h.status != 200)
                        p->why = "caller: not RESULT 200";
                else if (h.call_id != (uint64_t)i + 1)
                        p->why = "caller: RESULT out of order";
                else if (h.body_len != pipe_len(i) ||
                         memcmp(rest + h.from_len + h.to_len + h.member_len, body, pipe_len(i)) != 0)
                        p->why = "caller: RESULT body damaged";
                free(rest);
                free(body);
                if (p->why) {
                        p->bad = i + 1;
                        return NULL;
                }
        }
        return NULL;
}

START_TEST(test_pipelined_big_calls_slow_callee)
{
        tbroker t;
        tb_start(&t, "send_queue_bytes=67108864", false);
        int callee = raw_connect(&t, "org.test.slowcallee", "main", true);
        ck_assert_int_eq(raw_builtin(callee, 1, "registerProcedure", "{\"methodName\":\"slow\"}"), 200);
        int caller = raw_connect(&t, "org.test.pipeliner", "main", true);
        pipe_peer w = { .fd = caller, .ep = "@localhost/org.test.slowcallee/main" };
        pipe_peer r = { .fd = caller };
        pthread_t tw, tr;
        ck_assert_int_eq(pthread_create(&tw, NULL, pipe_caller_write, &w), 0);
        ck_assert_int_eq(pthread_create(&tr, NULL, pipe_caller_read, &r), 0);
        int bad = 0;
        const char *why = NULL;
        for (int i = 0; i < PIPE_CALLS && !bad; i++) {
                wire_hdr h;
                char *rest = NULL, *body = pipe_body(i);
                /* slow: let the broker's socket buffer to us fill up now and then */
                if (i % 40 == 0)
                        usleep(20000);
                if (raw_read(callee, &h, &rest) < 0)
                        why = "callee: no CALL";
                else if (h.type != WIRE_CALL)
                        why = "callee: not a CALL";
                else if (h.body_len != pipe_len(i) ||
                         memcmp(rest + h.from_len + h.to_len + h.member_len, body, pipe_len(i)) != 0)
                        why = "callee: CALL body damaged or out of order";
                if (why)
                        bad = i + 1;
                else {
                        wire_hdr rh = { .type = WIRE_RESULT, .call_id = h.call_id, .status = 200 };
                        raw_write(callee, &rh, NULL, NULL, body, pipe_len(i));
                }
                free(rest);
                free(body);
        }
        if (bad) {
                /* unblock the caller threads */
                shutdown(caller, SHUT_RDWR);
        }
        pthread_join(tw, NULL);
        pthread_join(tr, NULL);
        ck_assert_msg(!bad, "%s at call %d", why, bad - 1);
        ck_assert_msg(!w.bad, "%s at call %d", w.why, w.bad - 1);
        ck_assert_msg(!r.bad, "%s at call %d", r.why, r.bad - 1);
        close(callee);
        close(caller);
        tb_stop(&t);
}
END_TEST


/*
 * A peer closed by one of several frames read together (doc/protocol.md: an unexpected
 * packet type is ERROR 422 and the connection closes): the frames before it are answered
 * in order, then comes the ERROR, then end of stream; nothing after the bad frame is
 * dispatched (valgrind: no use of the closed connection while the batch goes on).
 */
START_TEST(test_close_mid_batch)
{
        tbroker t;
        tb_start(&t, NULL, false);
        int fd = raw_connect(&t, "org.test.midbatch", "main", true);
        uint8_t buf[5 * (WIRE_HDR_SIZE + WIRE_NAMES_MAX + 16)];
        size_t len = 0;
        for (uint64_t id = 1; id <= 5; id++) {
                wire_hdr h = { .type = id == 4 ? 99 : WIRE_CALL, .call_id = id, .timeout_ms = 1000 };
                struct iovec iov[2];
                uint8_t hb[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                int n = wire_build(&h, NULL, 0, HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT), "echo",
                                   4, "[1]", 3, hb, iov);
                ck_assert_int_eq(n, 2);
                memcpy(buf + len, iov[0].iov_base, iov[0].iov_len);
                len += iov[0].iov_len;
                memcpy(buf + len, iov[1].iov_base, iov[1].iov_len);
                len += iov[1].iov_len;
        }
        ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
        for (uint64_t id = 1; id <= 3; id++) {
                wire_hdr h;
                char *rest;
                ck_assert_int_eq(raw_read(fd, &h, &rest), 0);
                ck_assert_int_eq(h.type, WIRE_RESULT);
                ck_assert_int_eq(h.status, 200);
                ck_assert_uint_eq(h.call_id, id);
                free(rest);
        }
        wire_hdr h;
        char *rest;
        ck_assert_int_eq(raw_read(fd, &h, &rest), 0);
        ck_assert_int_eq(h.type, WIRE_ERROR);
        ck_assert_int_eq(h.status, 422);
        free(rest);
        ck_assert_int_eq(raw_read(fd, &h, &rest), -1); /* end of stream, no RESULT 5 */
        close(fd);
        tb_stop(&t);
}
END_TEST

/*
 * A service that read several CALLs at once holds their answers for one write (bus_send,
 * BUS_HOLD_MAX).  Held answers must leave even when the last packet of that read sends
 * nothing: here the third call is answered later (deferred), and the first two answers
 * reach the caller while it is still open, with no further packet for the service.
 */
static hyb_bus_request *held_later;

static int on_held_now(hyb_bus_request *req, void *ud)
{
        (void)ud;
        return hyb_bus_request_reply(req, 200, "\"now\"", 5, HYB_BODY_JSON);
}

static int on_held_later(hyb_bus_request *req, void *ud)
{
        (void)ud;
        held_later = hyb_bus_request_ref(req);
        return 0;
}

/* Waits until fd has n whole frames buffered (peeked, not read). */
static void wait_frames_buffered(int fd, int n)
{
        static uint8_t buf[1 << 16];

        for (int tries = 0; tries < 3000; tries++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t n_peek;
                size_t off = 0;
                int whole = 0;

                ck_assert_int_ge(poll(&p, 1, 10), 0);
                n_peek = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
                while (n_peek > 0 && off + WIRE_HDR_SIZE <= (size_t)n_peek) {
                        wire_hdr h;

                        ck_assert_int_eq(wire_hdr_decode(buf + off, &h), 0);
                        if (off + wire_frame_len(&h) > (size_t)n_peek)
                                break;
                        off += wire_frame_len(&h);
                        whole++;
                }
                if (whole >= n)
                        return;
        }
        ck_abort_msg("%d frames never arrived at the service together", n);
}

START_TEST(test_held_answers_leave_without_a_last_answer)
{
        tbroker t;
        hyb_error err;
        char *rest;
        wire_hdr h;

        tb_start(&t, NULL, false);
        hyb_bus *svc = tb_connect(&t, "org.test.held", "main");
        ck_assert_int_eq(hyb_endpoint_register_method(svc, "now", NULL, 0, NULL, NULL, 0, on_held_now,
                                                      NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_endpoint_register_method(svc, "later", NULL, 0, NULL, NULL, 0,
                                                      on_held_later, NULL, NULL, &err), 0);
        int caller = raw_connect(&t, "org.test.heldcaller", "main", true);
        const char *to = "@localhost/org.test.held/main";
        wire_hdr c1 = { .type = WIRE_CALL, .call_id = 1, .timeout_ms = 30000 };
        wire_hdr c2 = { .type = WIRE_CALL, .call_id = 2, .timeout_ms = 30000 };
        wire_hdr c3 = { .type = WIRE_CALL, .call_id = 3, .timeout_ms = 30000 };

        held_later = NULL;
        raw_write(caller, &c1, to, "now", "{}", 2);
        raw_write(caller, &c2, to, "now", "{}", 2);
        raw_write(caller, &c3, to, "later", "{}", 2);
        /* the service reads the three in one read, then runs until it has nothing to do */
        wait_frames_buffered(svc->fd, 3);
        for (int i = 0; i < 100 && (hyb_bus_process(svc) > 0 || !held_later); i++)
                ;
        ck_assert_ptr_nonnull(held_later);
        for (uint64_t id = 1; id <= 2; id++) {
                ck_assert_int_eq(raw_read(caller, &h, &rest), 0);
                ck_assert_int_eq(h.type, WIRE_RESULT);
                ck_assert_uint_eq(h.call_id, id);
                ck_assert_int_eq(h.status, 200);
                free(rest);
        }
        ck_assert_int_eq(hyb_bus_request_reply(held_later, 200, "\"later\"", 7, HYB_BODY_JSON), 0);
        held_later = hyb_bus_request_unref(held_later);
        for (int i = 0; i < 100 && hyb_bus_process(svc) > 0; i++)
                ;
        ck_assert_int_eq(raw_read(caller, &h, &rest), 0);
        ck_assert_int_eq(h.type, WIRE_RESULT);
        ck_assert_uint_eq(h.call_id, 3);
        free(rest);
        close(caller);
        hyb_bus_unref(svc);
        tb_stop(&t);
}
END_TEST

/*
 * Answers held for a batch wait at most BUS_HOLD_USEC (1 ms) plus the handler running when
 * it passed: the first call answers at once, the second spins 2 ms (by the clock, so the
 * bound is passed however loaded the machine is), and when the third runs the first answer
 * must already have left: it is readable at the caller.
 */
static int held_caller_fd;
static int held_first_seen; /* the third handler saw the first answer at the caller */

static int on_held_spin(hyb_bus_request *req, void *ud)
{
        uint64_t start = hyb_now_usec();

        (void)ud;
        while (hyb_now_usec() - start < 2000)
                ;
        return hyb_bus_request_reply(req, 200, "\"spun\"", 6, HYB_BODY_JSON);
}

static int on_held_look(hyb_bus_request *req, void *ud)
{
        struct pollfd p = { .fd = held_caller_fd, .events = POLLIN };

        (void)ud;
        held_first_seen = poll(&p, 1, 10000) == 1;
        return hyb_bus_request_reply(req, 200, "\"looked\"", 8, HYB_BODY_JSON);
}

START_TEST(test_held_answers_bounded_in_time)
{
        tbroker t;
        hyb_error err;
        char *rest;
        wire_hdr h;

        tb_start(&t, NULL, false);
        hyb_bus *svc = tb_connect(&t, "org.test.heldtime", "main");
        ck_assert_int_eq(hyb_endpoint_register_method(svc, "now", NULL, 0, NULL, NULL, 0, on_held_now,
                                                      NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_endpoint_register_method(svc, "spin", NULL, 0, NULL, NULL, 0, on_held_spin,
                                                      NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_endpoint_register_method(svc, "look", NULL, 0, NULL, NULL, 0, on_held_look,
                                                      NULL, NULL, &err), 0);
        int caller = raw_connect(&t, "org.test.heldtimecaller", "main", true);
        const char *to = "@localhost/org.test.heldtime/main";
        wire_hdr c1 = { .type = WIRE_CALL, .call_id = 1, .timeout_ms = 30000 };
        wire_hdr c2 = { .type = WIRE_CALL, .call_id = 2, .timeout_ms = 30000 };
        wire_hdr c3 = { .type = WIRE_CALL, .call_id = 3, .timeout_ms = 30000 };

        held_caller_fd = caller;
        held_first_seen = -1;
        raw_write(caller, &c1, to, "now", "{}", 2);
        raw_write(caller, &c2, to, "spin", "{}", 2);
        raw_write(caller, &c3, to, "look", "{}", 2);
        wait_frames_buffered(svc->fd, 3);
        for (int i = 0; i < 100 && (hyb_bus_process(svc) > 0 || held_first_seen < 0); i++)
                ;
        ck_assert_int_eq(held_first_seen, 1);
        for (uint64_t id = 1; id <= 3; id++) {
                ck_assert_int_eq(raw_read(caller, &h, &rest), 0);
                ck_assert_int_eq(h.type, WIRE_RESULT);
                ck_assert_uint_eq(h.call_id, id);
                free(rest);
        }
        close(caller);
        hyb_bus_unref(svc);
        tb_stop(&t);
}
END_TEST

void bus_tcase_review(Suite *s)
{
        TCase *tc = tcase_create("review");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_free_with_subscriber_before_generator);
        tcase_add_test(tc, test_accepted_fds_cloexec);
        tcase_add_test(tc, test_shutdown_event_delivered);
        tcase_add_test(tc, test_monitor_big_frames);
        tcase_add_test(tc, test_registration_params_bounded);
        tcase_add_test(tc, test_pending_cleanup_both_ways);
        tcase_add_test(tc, test_frames_split_and_batched);
        tcase_add_test(tc, test_pipelined_big_calls_slow_callee);
        tcase_add_test(tc, test_close_mid_batch);
        tcase_add_test(tc, test_held_answers_leave_without_a_last_answer);
        tcase_add_test(tc, test_held_answers_bounded_in_time);
        suite_add_tcase(s, tc);
}
