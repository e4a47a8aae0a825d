/* SPDX-License-Identifier: MIT */
/* bus_suite: events, builtin events, monitor, malformed frames and every limit. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "broker/broker-internal.h"
#include "bus/wire.h"
#include "hybrid/obj.h"
#include "hybrid/store.h"
#include "test_bus.h"

typedef struct got_events {
        atomic_int n;
        char source[128];
        char bubble[64];
        char body[256];
} got_events;

static void on_event(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        got_events *g = ud;
        size_t len;
        const char *b = hyb_bus_event_get_body(ev, &len);
        snprintf(g->source, sizeof g->source, "%s", hyb_bus_event_get_source(ev));
        snprintf(g->bubble, sizeof g->bubble, "%s", hyb_bus_event_get_bubble(ev));
        snprintf(g->body, sizeof g->body, "%.*s", (int)(len < 255 ? len : 255), b);
        atomic_fetch_add(&g->n, 1);
}

START_TEST(test_events_exact_and_counts)
{
        tbroker t;
        got_events g = { 0 }, g2 = { 0 };
        hyb_slot *sub = NULL, *bub = NULL;
        hyb_error err;
        uint32_t d = 99, f = 99;
        tb_start(&t, NULL, false);
        hyb_bus *gen = tb_connect(&t, "org.test.gen", "main");
        hyb_bus *s1 = tb_connect(&t, "org.test.sub", "one");
        hyb_bus *s2 = tb_connect(&t, "org.test.sub", "two");

        ck_assert_int_eq(hyb_bus_subscribe(s1, "@localhost/org.test.gen/main", "TEMP", on_event, &g, &sub, &err),
                         HYB_E_NOT_FOUND);
        ck_assert_int_eq(hyb_bus_register_event(gen, "TEMP", NULL, NULL, &bub, &err), 0);
        ck_assert_int_eq(hyb_bus_register_event(gen, "temp", NULL, NULL, NULL, &err), HYB_E_CONFLICT);
        ck_assert_int_eq(hyb_bus_register_event(gen, "Secret", NULL, "org.only.*", NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(s1, "@localhost/org.test.gen/main", "Secret", on_event, &g, NULL, &err),
                         HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_fire(gen, "TEMP", "21.5", 4, 0, &d, &f), 0);
        ck_assert_uint_eq(d, 0);
        ck_assert_uint_eq(f, 0);

        ck_assert_int_eq(hyb_bus_subscribe(s1, "@localhost/org.test.gen/main", "temp", on_event, &g, &sub, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(s2, "@localhost/org.test.gen/main", "TEMP", on_event, &g2, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_fire(gen, "TEMP", "21.5", 4, 0, &d, &f), 0);
        ck_assert_uint_eq(d, 2);
        ck_assert_uint_eq(f, 0);
        pump_until(s1, &g.n, 1, 2000);
        ck_assert_int_eq(atomic_load(&g.n), 1);
        ck_assert_str_eq(g.source, "@localhost/org.test.gen/main");
        ck_assert_str_eq(g.bubble, "TEMP");
        ck_assert_str_eq(g.body, "21.5");
        /* listEventSubscribers: the generator sees both. */
        hyb_bus_reply *rep = NULL;
        size_t len;
        ck_assert_int_eq(hyb_bus_call_builtin(gen, "listEventSubscribers", "{\"bubbleName\":\"TEMP\"}", &rep, &err), 0);
        const char *body = hyb_bus_reply_get_body(rep, &len);
        ck_assert_ptr_nonnull(strstr(body, "@localhost/org.test.sub/one"));
        ck_assert_ptr_nonnull(strstr(body, "@localhost/org.test.sub/two"));
        hyb_bus_reply_unref(rep);

        /* Unsubscribe: the next fire reaches one subscriber. */
        hyb_slot_unref(sub);
        ck_assert_int_eq(hyb_bus_flush(s1), 0);
        hyb_bus_reply *r2 = NULL;
        ck_assert_int_eq(hyb_bus_call_builtin(s1, "echo", "{}", &r2, &err), 0); /* unsubscribe processed */
        hyb_bus_reply_unref(r2);
        ck_assert_int_eq(hyb_bus_fire(gen, "TEMP", "22", 2, 0, &d, &f), 0);
        ck_assert_uint_eq(d, 1);
        /* Firing an unregistered bubble with counts: 404. */
        ck_assert_int_eq(hyb_bus_fire(gen, "NOPE", "1", 1, 0, &d, &f), HYB_E_NOT_FOUND);
        /* One-way fire. */
        ck_assert_int_eq(hyb_bus_fire(gen, "TEMP", "23", 2, 0, NULL, NULL), 0);
        pump_until(s2, &g2.n, 3, 2000);
        ck_assert_int_eq(atomic_load(&g2.n), 3);
        ck_assert_str_eq(g2.body, "23");

        /* Revoking the bubble: exact subscribers get LostEventBubble. */
        got_events lost = { 0 };
        ck_assert_int_eq(hyb_bus_subscribe(s2, HYB_BUS_BUILTIN_ENDPOINT, "LostEventBubble", on_event, &lost, NULL,
                                           &err), 0);
        hyb_slot_unref(bub);
        ck_assert_int_eq(hyb_bus_flush(gen), 0);
        pump_until(s2, &lost.n, 1, 2000);
        ck_assert_int_ge(atomic_load(&lost.n), 1);
        ck_assert_str_eq(lost.bubble, "LostEventBubble");
        ck_assert_ptr_nonnull(strstr(lost.body, "TEMP"));

        hyb_bus_unref(s2);
        hyb_bus_unref(s1);
        hyb_bus_unref(gen);
        tb_stop(&t);
}
END_TEST

START_TEST(test_events_standing_pattern)
{
        tbroker t;
        got_events g = { 0 }, ne = { 0 }, be = { 0 };
        hyb_error err;
        uint32_t d, f;
        tb_start(&t, NULL, false);
        hyb_bus *s = tb_connect(&t, "org.test.watch", "main");

        ck_assert_int_eq(hyb_bus_subscribe(s, "@localhost/org.example.*/*", "TEMP*", on_event, &g, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(s, HYB_BUS_BUILTIN_ENDPOINT, "NewEndpoint", on_event, &ne, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(s, "@localhost/org.hybridos.bus/builtin", "brokenendpoint", on_event, &be,
                                           NULL, &err), 0);
        /* Generators that appear later are covered. */
        hyb_bus *g1 = tb_connect(&t, "org.example.kitchen", "sensor");
        hyb_bus *g2 = tb_connect(&t, "org.other.kitchen", "sensor");
        pump_until(s, &ne.n, 2, 2000);
        ck_assert_int_eq(atomic_load(&ne.n), 2);
        ck_assert_ptr_nonnull(strstr(ne.body, "@localhost/org.other.kitchen/sensor"));

        ck_assert_int_eq(hyb_bus_register_event(g1, "TEMP1", NULL, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_register_event(g1, "Humidity", NULL, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_register_event(g2, "TEMP1", NULL, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_fire(g1, "TEMP1", "{\"v\":30}", 8, 0, &d, &f), 0);
        ck_assert_uint_eq(d, 1);
        ck_assert_int_eq(hyb_bus_fire(g1, "Humidity", "{}", 2, 0, &d, &f), 0);
        ck_assert_uint_eq(d, 0);
        ck_assert_int_eq(hyb_bus_fire(g2, "TEMP1", "{}", 2, 0, &d, &f), 0);
        ck_assert_uint_eq(d, 0);
        pump_until(s, &g.n, 1, 2000);
        ck_assert_int_eq(atomic_load(&g.n), 1);
        ck_assert_str_eq(g.source, "@localhost/org.example.kitchen/sensor");
        ck_assert_str_eq(g.body, "{\"v\":30}");

        /* A bubble registered after the subscription, and case-insensitive globs. */
        ck_assert_int_eq(hyb_bus_register_event(g1, "temperature", NULL, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_fire(g1, "temperature", "1", 1, 0, &d, &f), 0);
        ck_assert_uint_eq(d, 1);

        /* Generator gone: BrokenEndpoint (lostConnection). */
        hyb_bus_unref(g1);
        pump_until(s, &be.n, 1, 2000);
        ck_assert_int_eq(atomic_load(&be.n), 1);
        ck_assert_ptr_nonnull(strstr(be.body, "lostConnection"));
        ck_assert_ptr_nonnull(strstr(be.body, "@localhost/org.example.kitchen/sensor"));
        /* Bad patterns are refused. */
        ck_assert_int_eq(hyb_bus_subscribe(s, "", "x", on_event, &g, NULL, &err), HYB_E_NOT_ACCEPTABLE);
        hyb_bus_unref(g2);
        hyb_bus_unref(s);
        tb_stop(&t);
}
END_TEST

typedef struct got_mon {
        atomic_int n;
        int calls;
        size_t size;
        char kind[16];
} got_mon;

static void on_monitor(hyb_bus *bus, const hyb_bus_monitor_record *rec, void *ud)
{
        got_mon *m = ud;
        m->size = rec->size;
        if (!strcmp(rec->kind, "call") && !strcmp(rec->member, "echo"))
                m->calls++;
        atomic_fetch_add(&m->n, 1);
}

START_TEST(test_monitor)
{
        tbroker t;
        got_mon m = { 0 };
        hyb_slot *slot = NULL;
        hyb_error err;
        tb_start(&t, NULL, true);
        hyb_bus *mon = tb_connect(&t, "org.test.mon", "main");
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        ck_assert_int_eq(hyb_bus_monitor(mon, on_monitor, &m, &slot, &err), 0);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "listEndpoints", "{}", NULL, &err), 0);
        /* The builtin answer to a is monitored: at least one result. */
        pump_until(mon, &m.n, 1, 2000);
        ck_assert_int_ge(atomic_load(&m.n), 1);
        ck_assert_uint_eq(m.size, sizeof(hyb_bus_monitor_record)); /* the size stamp */
        hyb_slot_unref(slot);
        hyb_bus_unref(a);
        hyb_bus_unref(mon);
        tb_stop(&t);

        if (getuid() != 0) { /* root is always an administrator */
                tb_start(&t, NULL, false);
                a = tb_connect(&t, "org.test.a", "main");
                ck_assert_int_eq(hyb_bus_monitor(a, on_monitor, &m, &slot, &err), HYB_E_FORBIDDEN);
                hyb_bus_unref(a);
                tb_stop(&t);
        }
}
END_TEST

void bus_tcase_events(Suite *s)
{
        TCase *tc = tcase_create("events");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_events_exact_and_counts);
        tcase_add_test(tc, test_events_standing_pattern);
        tcase_add_test(tc, test_monitor);
        suite_add_tcase(s, tc);
}

/* ---------------------------------------------------------------- limits and hostile input */

static void raw_send(int fd, wire_hdr *h, const char *to, const char *member, const void *body, size_t len)
{
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        int n = wire_build(h, NULL, 0, to, to ? strlen(to) : 0, member, member ? strlen(member) : 0, body, len,
                           buf, iov);
        ck_assert_int_gt(writev(fd, iov, n), 0);
}

static void assert_serving(tbroker *t)
{
        hyb_bus *x = tb_connect(t, "org.test.alive", "main");
        ck_assert_int_eq(hyb_bus_call_builtin(x, "echo", "{}", NULL, NULL), 0);
        hyb_bus_unref(x);
}

START_TEST(test_malformed_frames)
{
        tbroker t;
        int st, fd;
        tb_start(&t, "max_body=1024,auth_timeout_ms=300", false);

        /* A bad type after auth: an error then close; the broker keeps serving others. */
        fd = raw_connect(&t, "org.test.raw", "main", true);
        uint8_t junk[WIRE_HDR_SIZE];
        memset(junk, 0xff, sizeof junk);
        ck_assert_int_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_ERROR);
        ck_assert_int_eq(st, 422);
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), -1);
        close(fd);
        assert_serving(&t);

        /* A header announcing more than max_frame: 413 and close. */
        fd = raw_connect(&t, "org.test.raw", "two", true);
        wire_hdr h = { .type = WIRE_CALL, .call_id = 1 };
        uint8_t hb[WIRE_HDR_SIZE];
        h.body_len = 100u * 1024 * 1024;
        wire_hdr_encode(&h, hb);
        ck_assert_int_eq(write(fd, hb, sizeof hb), (ssize_t)sizeof hb);
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_ERROR);
        ck_assert_int_eq(st, 413);
        close(fd);

        /* Body over max_body but within max_frame: RESULT 413, connection stays. */
        fd = raw_connect(&t, "org.test.raw", "three", true);
        char *body = calloc(1, 2000);
        memset(body, 'x', 1999);
        h = (wire_hdr){ .type = WIRE_CALL, .call_id = 7, .timeout_ms = 1000 };
        raw_send(fd, &h, HYB_BUS_BUILTIN_ENDPOINT, "echo", body, 2000);
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_RESULT);
        ck_assert_int_eq(st, 413);
        h = (wire_hdr){ .type = WIRE_CALL, .call_id = 8, .timeout_ms = 1000 };
        raw_send(fd, &h, HYB_BUS_BUILTIN_ENDPOINT, "echo", "{}", 2);
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_RESULT);
        ck_assert_int_eq(st, 200);
        /* A truncated frame, then hang up mid-way. */
        ck_assert_int_eq(write(fd, hb, 10), 10);
        close(fd);
        free(body);
        assert_serving(&t);

        /* aux on a CALL is the caller's uid, stated by the broker only: the call answered
         * without it is a malformed header with it (422, then close). */
        fd = raw_connect(&t, "org.test.raw", "four", true);
        h = (wire_hdr){ .type = WIRE_CALL, .call_id = 9, .timeout_ms = 1000 };
        raw_send(fd, &h, HYB_BUS_BUILTIN_ENDPOINT, "echo", "{}", 2);
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_RESULT);
        ck_assert_int_eq(st, 200);
        h = (wire_hdr){ .type = WIRE_CALL, .call_id = 10, .timeout_ms = 1000, .aux = 4242 };
        raw_send(fd, &h, HYB_BUS_BUILTIN_ENDPOINT, "echo", "{}", 2);
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_ERROR);
        ck_assert_int_eq(st, 422);
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), -1);
        close(fd);
        assert_serving(&t);

        /* Anything but AUTH before authentication closes; so does silence past auth_timeout_ms. */
        fd = raw_connect(&t, NULL, NULL, false);
        h = (wire_hdr){ .type = WIRE_CALL, .call_id = 1 };
        raw_send(fd, &h, HYB_BUS_BUILTIN_ENDPOINT, "echo", "{}", 2);
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), -1);
        close(fd);
        fd = raw_connect(&t, NULL, NULL, false);
        ck_assert_int_eq(raw_read_frame(fd, &st, 3000), -1); /* closed by the broker */
        close(fd);
        /* auth.tokens off (the default): the uid policy alone, a token is not read. */
        fd = raw_connect(&t, NULL, NULL, false);
        const char *auth = "{\"protocol\":\"HYBRID\",\"version\":1,\"app\":\"a\",\"runner\":\"r\",\"token\":\"x\"}";
        h = (wire_hdr){ .type = WIRE_AUTH };
        raw_send(fd, &h, NULL, NULL, auth, strlen(auth));
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_AUTH_RESULT);
        ck_assert_int_eq(st, 200);
        close(fd);
        /* Protocol version 2: 426. */
        fd = raw_connect(&t, NULL, NULL, false);
        auth = "{\"protocol\":\"HYBRID\",\"version\":2,\"app\":\"a\",\"runner\":\"r\"}";
        raw_send(fd, &h, NULL, NULL, auth, strlen(auth));
        ck_assert_int_eq(raw_read_frame(fd, &st, 2000), WIRE_AUTH_RESULT);
        ck_assert_int_eq(st, 426);
        close(fd);
        assert_serving(&t);
        tb_stop(&t);
}
END_TEST

static int on_hold(hyb_bus_request *req, void *ud)
{
        hyb_bus_request **held = ud;
        for (int i = 0; i < 8; i++)
                if (!held[i]) {
                        held[i] = hyb_bus_request_ref(req);
                        break;
                }
        return 0;
}

typedef struct status_list {
        atomic_int n;
        int status[8];
} status_list;

static void on_status(hyb_bus *bus, const hyb_bus_reply *rep, void *ud)
{
        status_list *l = ud;
        int i = atomic_load(&l->n);
        if (i < 8)
                l->status[i] = hyb_bus_reply_get_status(rep);
        atomic_fetch_add(&l->n, 1);
}

START_TEST(test_pending_limit_429)
{
        tbroker t;
        tsvc s;
        hyb_bus_request *held[8] = { 0 };
        status_list l = { 0 };
        hyb_error err;
        tb_start(&t, "max_pending_calls=2", false);
        hyb_bus *b = tb_connect(&t, "org.test.hold", "main");
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        ck_assert_int_eq(hyb_bus_register_procedure(b, "hold", NULL, NULL, on_hold, held, NULL, &err), 0);
        svc_start(&s, b);
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(hyb_bus_call_async(a, "@localhost/org.test.hold/main", "hold", "{}", 2, 0, 500,
                                                    on_status, &l, NULL), 0);
        pump_until(a, &l.n, 3, 3000);
        ck_assert_int_eq(atomic_load(&l.n), 3);
        /* The third is refused at once; the first two time out (504). */
        ck_assert_int_eq(l.status[0], 429);
        ck_assert_int_eq(l.status[1], 504);
        ck_assert_int_eq(l.status[2], 504);
        svc_stop(&s);
        for (int i = 0; i < 8; i++)
                hyb_bus_request_unref(held[i]);
        hyb_bus_unref(a);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/* The edge's end of a session: counts the RESULTs that reached it (on the broker's thread). */
static atomic_int walk_results, walk_bad;

static void walk_count(struct bufferevent *bev, void *ud)
{
        struct evbuffer *in = bufferevent_get_input(bev);

        (void)ud;
        for (;;) {
                uint8_t hb[WIRE_HDR_SIZE];
                size_t len = evbuffer_get_length(in);
                wire_hdr h;

                if (len < WIRE_HDR_SIZE || evbuffer_copyout(in, hb, sizeof hb) != (ev_ssize_t)sizeof hb ||
                    wire_hdr_decode(hb, &h) < 0 || len < wire_frame_len(&h))
                        return;
                if (h.type == WIRE_RESULT && h.status == 200)
                        atomic_fetch_add(&walk_results, 1);
                else
                        atomic_fetch_add(&walk_bad, 1);
                evbuffer_drain(in, wire_frame_len(&h));
        }
}

/*
 * An edge session's frames are batched while they are dispatched (one write per peer and
 * loop turn); a store read that walks a pattern makes the broker serve others before the
 * session's next frame (a timer), and the answers of the frames served from that timer must
 * leave as well: three pipelined pattern reads, three RESULTs.
 */
START_TEST(test_edge_session_pipelined_walks_answered)
{
        tbroker t;
        hyb_error err;
        hyb_store *st = NULL;
        struct bufferevent *bev = NULL;
        char yaml[256];

        snprintf(yaml, sizeof yaml,
                 "policy:\n"
                 "  store:\n"
                 "    - {uid: 65534, furi: /e/#, allow: [read]}\n"
                 "    - {uid: %u, furi: /e/#, allow: [read, write]}\n",
                 (unsigned)getuid());
        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        tb_start_store(&t, NULL, false, yaml, st);
        hyb_store_unref(st);
        hyb_bus *w = tb_connect(&t, "org.test.writer", "main");
        hyb_obj *one = NULL;
        ck_assert_int_eq(hyb_obj_parse("1", 1, &one, NULL), 0);
        ck_assert_int_eq(hyb_bus_store_write(w, "/e/a", one, 0, &err), 0);
        hyb_obj_unref(one);
        atomic_store(&walk_results, 0);
        atomic_store(&walk_bad, 0);
        tb_pause(&t);
        ck_assert_int_eq(broker_edge_session(t.broker, NULL, "http", &bev, &err), 0);
        bufferevent_setcb(bev, walk_count, NULL, NULL, NULL);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        for (uint64_t id = 1; id <= 3; id++) {
                uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                struct iovec iov[2];
                wire_hdr h = { .type = WIRE_CALL, .flags = WIRE_F_BINARY, .call_id = id };

                wire_build(&h, NULL, 0, HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT),
                           "storeRead", 9, "/e/#", 4, hdr, iov);
                ck_assert_int_eq(bufferevent_write(bev, hdr, iov[0].iov_len), 0);
                ck_assert_int_eq(bufferevent_write(bev, "/e/#", 4), 0);
        }
        tb_resume(&t);
        for (int i = 0; i < 20000 && atomic_load(&walk_results) + atomic_load(&walk_bad) < 3; i++)
                usleep(1000);
        ck_assert_int_eq(atomic_load(&walk_bad), 0);
        ck_assert_int_eq(atomic_load(&walk_results), 3);
        tb_pause(&t);
        broker_pair_close(bev);
        tb_resume(&t);
        hyb_bus_unref(w);
        tb_stop(&t);
}
END_TEST

/* The edge's end of an edge session (an in-memory pair): the end seen, on the broker's thread. */
static void pair_event(struct bufferevent *bev, short what, void *ud)
{
        (void)bev;
        if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
                atomic_store((atomic_int *)ud, 1);
}

/*
 * An edge session is an in-memory pair, not a socket: its broker end's send queue must still
 * be bounded by limits.send_queue_bytes when the edge does not read (a stream whose client
 * stalls), and the outcome is that of a slow reader on a socket: cut off with an ERROR 507
 * after at most the queue's worth of packets, the end of the session seen by the edge.
 */
START_TEST(test_edge_pair_slow_reader_bounded)
{
        tbroker t;
        hyb_error err;
        struct bufferevent *bev = NULL;
        static atomic_int ended;
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        const char *sub = "{\"endpointName\":\"@localhost/org.test.gen/main\",\"bubbleName\":\"Data\"}";
        uint32_t d = 0, f = 0;
        bool seen = false;
        int fired = 0;

        atomic_store(&ended, 0);
        tb_start(&t, "max_body=16384,max_frame=65536,send_queue_bytes=65536", false);
        hyb_bus *gen = tb_connect(&t, "org.test.gen", "main");
        ck_assert_int_eq(hyb_bus_register_event(gen, "Data", NULL, NULL, NULL, &err), 0);
        tb_pause(&t);
        ck_assert_int_eq(broker_edge_session(t.broker, NULL, "http", &bev, &err), 0);
        wire_hdr h = { .type = WIRE_CALL, .call_id = 1 };
        wire_build(&h, NULL, 0, HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT),
                   "subscribeEvent", 14, sub, strlen(sub), hdr, iov);
        bufferevent_setcb(bev, NULL, NULL, pair_event, &ended);
        bufferevent_disable(bev, EV_READ); /* the edge never reads */
        bufferevent_enable(bev, EV_WRITE);
        ck_assert_int_eq(bufferevent_write(bev, hdr, iov[0].iov_len), 0);
        ck_assert_int_eq(bufferevent_write(bev, sub, strlen(sub)), 0);
        tb_resume(&t);
        char *chunk = malloc(8192);
        memset(chunk, 'a', 8192);
        /* delivered to the session once subscribed, until the broker cuts it off */
        for (int i = 0; i < 20000; i++) {
                ck_assert_int_eq(hyb_bus_fire(gen, "Data", chunk, seen ? 8192 : 1, HYB_BODY_BINARY, &d, &f), 0);
                if (d && seen)
                        fired++;
                if (d)
                        seen = true;
                else if (seen)
                        break;
                else
                        usleep(1000);
        }
        free(chunk);
        ck_assert(seen);
        ck_assert_uint_eq(d, 0);
        /* at most the queue's worth was taken for it before the cut */
        ck_assert_int_le(fired, 65536 / 8192 + 1);
        for (int i = 0; i < 20000 && !atomic_load(&ended); i++)
                usleep(1000);
        ck_assert_int_eq(atomic_load(&ended), 1);
        tb_pause(&t);
        /* what reached the edge: the RESULT, at most the queue's packets, and the ERROR 507 */
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t total = evbuffer_get_length(in), off = 0;
        int last = -1, status = 0;
        ck_assert_uint_le(total, 65536 + 2 * (8192 + 512));
        while (off + WIRE_HDR_SIZE <= total) {
                uint8_t hb[WIRE_HDR_SIZE];
                wire_hdr fh;
                struct evbuffer_ptr pos;
                ck_assert_int_eq(evbuffer_ptr_set(in, &pos, off, EVBUFFER_PTR_SET), 0);
                ck_assert_int_eq(evbuffer_copyout_from(in, &pos, hb, sizeof hb), (ev_ssize_t)sizeof hb);
                ck_assert_int_eq(wire_hdr_decode(hb, &fh), 0);
                last = fh.type;
                status = fh.status;
                off += wire_frame_len(&fh);
        }
        ck_assert_uint_eq(off, total);
        ck_assert_int_eq(last, WIRE_ERROR);
        ck_assert_int_eq(status, 507);
        broker_pair_close(bev);
        tb_resume(&t);
        hyb_bus_unref(gen);
        tb_stop(&t);
}
END_TEST

START_TEST(test_slow_consumer_bounded)
{
        tbroker t;
        got_events g = { 0 }, be = { 0 };
        hyb_error err;
        uint32_t d, f, failed = 0;
        tb_start(&t, "max_body=16384,max_frame=65536,send_queue_bytes=65536", false);
        hyb_bus *gen = tb_connect(&t, "org.test.gen", "main");
        hyb_bus *slow = tb_connect(&t, "org.test.slow", "main");
        hyb_bus *w = tb_connect(&t, "org.test.watch", "main");
        ck_assert_int_eq(hyb_bus_register_event(gen, "Data", NULL, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(slow, "@localhost/org.test.gen/main", "Data", on_event, &g, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(w, HYB_BUS_BUILTIN_ENDPOINT, "BrokenEndpoint", on_event, &be, NULL, &err), 0);
        char *chunk = malloc(8192);
        memset(chunk, 'a', 8192);
        /* The slow subscriber never reads: the broker must cut it off, not buffer forever. */
        for (int i = 0; i < 2000 && failed == 0; i++) {
                ck_assert_int_eq(hyb_bus_fire(gen, "Data", chunk, 8192, HYB_BODY_BINARY, &d, &f), 0);
                failed += f;
                if (d == 0 && f == 0)
                        break; /* already dropped between two fires */
        }
        free(chunk);
        pump_until(w, &be.n, 1, 3000);
        ck_assert_int_eq(atomic_load(&be.n), 1);
        ck_assert_ptr_nonnull(strstr(be.body, "@localhost/org.test.slow/main"));
        /* The slow one learns it explicitly: its connection ends (ERROR 507 or EOF). */
        int r = 0;
        for (int i = 0; i < 10000 && r >= 0; i++) {
                r = hyb_bus_process(slow);
                if (r == 0)
                        hyb_bus_wait(slow, 10000);
        }
        ck_assert_int_lt(r, 0);
        ck_assert(!hyb_bus_is_open(slow));
        hyb_bus_unref(slow);
        hyb_bus_unref(w);
        hyb_bus_unref(gen);
        tb_stop(&t);
}
END_TEST

/* A peer cut off for a quota learns which one, through its hyb_error, and only it is cut off. */
START_TEST(test_quota_reason_reaches_client)
{
        tbroker t;
        hyb_error err;
        const size_t n = 512 * 1024;
        tb_start(&t, "uid_max_bytes=262144", false);
        hyb_bus *a = tb_connect(&t, "org.test.big", "main");
        char *body = malloc(n + 3);
        ck_assert_ptr_nonnull(body);
        body[0] = '"';
        memset(body + 1, 'q', n);
        body[n + 1] = '"';
        body[n + 2] = 0;
        memset(&err, 0, sizeof err);
        int r = hyb_bus_call_builtin(a, "echo", body, NULL, &err);
        free(body);
        ck_assert_int_eq(r, HYB_E_INSUFFICIENT_STORAGE);
        ck_assert_ptr_nonnull(strstr(err.message, "quota uid_max_bytes exceeded"));
        ck_assert(!hyb_bus_is_open(a));
        hyb_bus_unref(a);
        hyb_bus *b = tb_connect(&t, "org.test.small", "main");
        ck_assert_int_eq(hyb_bus_call_builtin(b, "echo", "{}", NULL, &err), 0);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

START_TEST(test_connection_limits)
{
        tbroker t;
        hyb_bus *x = NULL;
        hyb_error err;
        tb_start(&t, "max_connections=2", false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_bus *b = tb_connect(&t, "org.test.b", "main");
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.test.c", "main", &x, &err), HYB_E_UNAVAILABLE);
        ck_assert_int_eq(hyb_bus_call_builtin(a, "echo", "{}", NULL, &err), 0);
        hyb_bus_unref(b);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

static void nop_event(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
}

START_TEST(test_subscription_limit)
{
        tbroker t;
        hyb_error err;
        tb_start(&t, "max_subscriptions=2,max_endpoints=2", false);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        ck_assert_int_eq(hyb_bus_subscribe(a, "@localhost/*/*", "a*", nop_event, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(a, "@localhost/*/*", "b*", nop_event, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(a, "@localhost/*/*", "c*", nop_event, NULL, NULL, &err), HYB_E_TOO_MANY);
        hyb_bus *b = tb_connect(&t, "org.test.b", "main");
        hyb_bus *x = NULL;
        ck_assert_int_eq(hyb_bus_connect(t.sock, "org.test.c", "main", &x, &err), HYB_E_UNAVAILABLE);
        hyb_bus_unref(b);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

START_TEST(test_stale_socket_and_liveness)
{
        tbroker t;
        got_events be = { 0 };
        hyb_error err;
        tb_start(&t, "ping_after_s=1,drop_after_s=2", false);
        /* A raw peer that never answers pings is dropped: BrokenEndpoint notResponding. */
        hyb_bus *w = tb_connect(&t, "org.test.watch", "main");
        ck_assert_int_eq(hyb_bus_subscribe(w, HYB_BUS_BUILTIN_ENDPOINT, "BrokenEndpoint", on_event, &be, NULL, &err), 0);
        int fd = raw_connect(&t, "org.test.mute", "main", true);
        pump_until(w, &be.n, 1, 30000); /* generous: valgrind runs it 20-50x slower */
        /* The watcher answered its pings: it is never the one dropped (it was, under load,
         * when a tick saw 0.99 s of silence and the next 2.01 s: dropped, never pinged). */
        ck_assert_msg(hyb_bus_is_open(w), "the watching client was dropped");
        ck_assert_int_eq(atomic_load(&be.n), 1);
        ck_assert_ptr_nonnull(strstr(be.body, "notResponding"));
        ck_assert_ptr_nonnull(strstr(be.body, "org.test.mute"));
        /* The library client answered its pings meanwhile and is still here. */
        ck_assert(hyb_bus_is_open(w));
        ck_assert_int_eq(hyb_bus_call_builtin(w, "echo", "{}", NULL, &err), 0);
        close(fd);
        hyb_bus_unref(w);
        tb_stop(&t);
}
END_TEST

/* The tick's decision, at the phases that dropped a peer never pinged (ping 1 s, drop 2 s). */
START_TEST(test_liveness_pings_before_it_drops)
{
        const uint64_t s = 1000000, t0 = 100 * s;

        ck_assert_int_eq(broker_liveness(t0 + 987000, t0, false, 0, 1, 2), LIVENESS_OK);
        /* next tick late: 2.012 s of silence, never pinged: pinged now, not dropped */
        ck_assert_int_eq(broker_liveness(t0 + 2012000, t0, false, 0, 1, 2), LIVENESS_PING);
        /* pinged at 2.012 s: it has a whole drop-ping (1 s) to answer */
        ck_assert_int_eq(broker_liveness(t0 + 2999000, t0, true, t0 + 2012000, 1, 2), LIVENESS_OK);
        ck_assert_int_eq(broker_liveness(t0 + 3012000, t0, true, t0 + 2012000, 1, 2), LIVENESS_DROP);
        /* on time: pinged at 1 s of silence, dropped at 2 s */
        ck_assert_int_eq(broker_liveness(t0 + s, t0, false, 0, 1, 2), LIVENESS_PING);
        ck_assert_int_eq(broker_liveness(t0 + 2 * s, t0, true, t0 + s, 1, 2), LIVENESS_DROP);
        /* defaults: 60 s then 30 s more */
        ck_assert_int_eq(broker_liveness(t0 + 59 * s, t0, false, 0, 60, 90), LIVENESS_OK);
        ck_assert_int_eq(broker_liveness(t0 + 61 * s, t0, true, t0 + 60 * s, 60, 90), LIVENESS_OK);
        ck_assert_int_eq(broker_liveness(t0 + 90 * s, t0, true, t0 + 60 * s, 60, 90), LIVENESS_DROP);
}
END_TEST

/*
 * A slow reader cut off (quota send_queue_bytes) gets the frame being written and the
 * ERROR 507, not its backlog: the queue behind is dropped (quota.c queue_drop_unsent), so
 * what it holds is freed at once and it does not read megabytes it will be cut off after.
 * The finding: the drop was a no-op on a socket (the bufferevent keeps its output's start
 * frozen outside its own writes), and the peer read the whole 4 MiB backlog first.
 */
START_TEST(test_cut_drops_backlog)
{
        tbroker t;
        got_events be = { 0 };
        hyb_error err;
        uint32_t d, f, failed = 0;
        char sub[256];

        tb_start(&t, "max_body=16384,max_frame=65536,send_queue_bytes=4194304", false);
        hyb_bus *gen = tb_connect(&t, "org.test.gen", "main");
        hyb_bus *w = tb_connect(&t, "org.test.watch", "main");
        int slow = raw_connect(&t, "org.test.slow", "main", true);
        ck_assert_int_eq(hyb_bus_register_event(gen, "Data", NULL, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(w, HYB_BUS_BUILTIN_ENDPOINT, "BrokenEndpoint", on_event, &be, NULL, &err), 0);
        snprintf(sub, sizeof sub, "{\"endpointName\":\"@localhost/org.test.gen/main\",\"bubbleName\":\"Data\"}");
        {
                uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                struct iovec iov[2];
                wire_hdr h = { .type = WIRE_CALL, .call_id = 1, .timeout_ms = 5000 };
                int n = wire_build(&h, NULL, 0, HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT),
                                   "subscribeEvent", 14, sub, strlen(sub), buf, iov);
                ck_assert_int_eq(writev(slow, iov, n), (ssize_t)(iov[0].iov_len + iov[1].iov_len));
                int st = 0;
                ck_assert_int_eq(raw_read_frame(slow, &st, 3000), WIRE_RESULT);
                ck_assert_int_eq(st, 200);
        }
        char *chunk = malloc(8192);
        ck_assert_ptr_nonnull(chunk);
        memset(chunk, 'a', 8192);
        for (int i = 0; i < 4000 && failed == 0; i++) {
                ck_assert_int_eq(hyb_bus_fire(gen, "Data", chunk, 8192, HYB_BODY_BINARY, &d, &f), 0);
                failed += f;
                if (d == 0 && f == 0)
                        break;
        }
        free(chunk);
        pump_until(w, &be.n, 1, 5000);
        ck_assert_int_eq(atomic_load(&be.n), 1);
        /* Now read: the events before the ERROR are what the socket held and the frame then
         * being written, far less than the 4 MiB that were queued. */
        size_t before = 0;
        int last = -1, status = 0;
        for (;;) {
                uint8_t hb[WIRE_HDR_SIZE];
                wire_hdr h;

                if (raw_read_exact(slow, hb, sizeof hb, 5000) < 0)
                        break;
                ck_assert_int_eq(wire_hdr_decode(hb, &h), 0);
                size_t rest = wire_frame_len(&h) - WIRE_HDR_SIZE;
                char *rb = malloc(rest + 1);
                ck_assert_ptr_nonnull(rb);
                ck_assert_int_eq(raw_read_exact(slow, rb, rest, 5000), 0);
                free(rb);
                last = h.type;
                status = h.status;
                if (h.type == WIRE_ERROR)
                        break;
                before += wire_frame_len(&h);
        }
        ck_assert_int_eq(last, WIRE_ERROR);
        ck_assert_int_eq(status, 507);
        ck_assert_msg(before < 2u * 1024 * 1024, "the cut-off peer read %zu bytes of backlog", before);
        close(slow);
        hyb_bus_unref(w);
        hyb_bus_unref(gen);
        tb_stop(&t);
}
END_TEST

void bus_tcase_limits(Suite *s)
{
        TCase *tc = tcase_create("limits");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_malformed_frames);
        tcase_add_test(tc, test_pending_limit_429);
        tcase_add_test(tc, test_slow_consumer_bounded);
        tcase_add_test(tc, test_cut_drops_backlog);
        tcase_add_test(tc, test_edge_pair_slow_reader_bounded);
        tcase_add_test(tc, test_edge_session_pipelined_walks_answered);
        tcase_add_test(tc, test_connection_limits);
        tcase_add_test(tc, test_quota_reason_reaches_client);
        tcase_add_test(tc, test_subscription_limit);
        tcase_add_test(tc, test_stale_socket_and_liveness);
        tcase_add_test(tc, test_liveness_pings_before_it_drops);
        suite_add_tcase(s, tc);
}
