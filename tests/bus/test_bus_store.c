/* SPDX-License-Identifier: MIT */
/* bus_suite: the host store served by the broker (doc/protocol.md "Store"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "test_bus.h"
#include "testutil.h"

typedef struct got_msgs {
        atomic_int n;
        char lines[64][128];
} got_msgs;

static void on_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        got_msgs *g = ud;
        char *s = NULL;
        int i = atomic_load(&g->n);

        hyb_obj_format(payload, HYB_FORMAT_EXACT, &s);
        if (i < 64)
                snprintf(g->lines[i], sizeof g->lines[i], "%s %s%s", hyb_furi_get_str(target), s,
                         retain ? "" : " (transient)");
        hyb_free(s);
        atomic_fetch_add(&g->n, 1);
}

static hyb_obj *obj_of(const char *text)
{
        hyb_obj *o = NULL;
        ck_assert_int_eq(hyb_obj_parse(text, strlen(text), &o, NULL), 0);
        return o;
}

static int put(hyb_bus *bus, const char *furi, const char *text, unsigned flags, hyb_error *e)
{
        hyb_obj *o = obj_of(text);
        int r = hyb_bus_store_write(bus, furi, o, flags, e);
        hyb_obj_unref(o);
        return r;
}

static void start(tbroker *t, const char *limits, const char *yaml)
{
        hyb_store *st = NULL;
        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        tb_start_store(t, limits, false, yaml, st);
        hyb_store_unref(st);
}

/* One client's writes reach another's subscription in write order, with replay first,
 * transient writes flagged, deletes as noobj. */
START_TEST(test_store_subscribe_order)
{
        tbroker t;
        got_msgs g = { 0 };
        hyb_slot *slot = NULL;
        hyb_error e;
        start(&t, NULL, NULL);
        hyb_bus *w = tb_connect(&t, "org.test.w", "main");
        hyb_bus *s = tb_connect(&t, "org.test.s", "main");

        ck_assert_int_eq(put(w, "/a/x", "1", 0, &e), 0);
        ck_assert_int_eq(put(w, "/b/x", "9", 0, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(s, "/a/#", HYB_SUBSCRIBE_REPLAY, on_msg, &g, &slot, &e), 0);
        for (int i = 0; i < 20; i++) {
                char v[16];
                snprintf(v, sizeof v, "%d", i);
                ck_assert_int_eq(put(w, "/a/y", v, 0, &e), 0);
        }
        ck_assert_int_eq(put(w, "/a/t", "'hi'", HYB_WRITE_TRANSIENT, &e), 0);
        ck_assert_int_eq(hyb_bus_store_delete(w, "/a/x", &e), 0);
        pump_until(s, &g.n, 23, 3000);
        ck_assert_int_eq(atomic_load(&g.n), 23);
        ck_assert_str_eq(g.lines[0], "/a/x 1");
        for (int i = 0; i < 20; i++) {
                char want[64];
                snprintf(want, sizeof want, "/a/y %d", i);
                ck_assert_str_eq(g.lines[1 + i], want);
        }
        ck_assert_str_eq(g.lines[21], "/a/t 'hi' (transient)");
        ck_assert_str_eq(g.lines[22], "/a/x noobj");
        /* A transient write is not stored. */
        hyb_obj *o = NULL;
        ck_assert_int_eq(hyb_bus_store_read(s, "/a/t", &o, &e), 0);
        ck_assert(hyb_obj_is_noobj(o));
        hyb_obj_unref(o);
        /* Unsubscribed: nothing more arrives. */
        hyb_slot_unref(slot);
        ck_assert_int_eq(put(w, "/a/y", "100", 0, &e), 0);
        ck_assert_int_eq(hyb_bus_store_read(s, "/a/y", &o, &e), 0); /* a round trip on s */
        hyb_obj_unref(o);
        pump_until(s, &g.n, 24, 200);
        ck_assert_int_eq(atomic_load(&g.n), 23);
        /* The broker keeps the texts of values it served: a write in place into a stored
         * poly, or a new value at the key, is what the next read shows. */
        ck_assert_int_eq(put(w, "/p", "[a=>1,b=>[c=>2]]", 0, &e), 0);
        ck_assert_int_eq(hyb_bus_store_read(s, "/p", &o, &e), 0);
        hyb_obj_unref(o);
        ck_assert_int_eq(put(w, "/p/b/c", "3", 0, &e), 0);
        ck_assert_int_eq(hyb_bus_store_read(s, "/p", &o, &e), 0);
        hyb_obj *want = obj_of("[a=>1,b=>[c=>3]]");
        ck_assert(hyb_obj_equal(o, want));
        hyb_obj_unref(want);
        hyb_obj_unref(o);
        /* /sys/ is read-only, with or without a policy. */
        ck_assert_int_eq(put(w, "/sys/bus/x", "1", 0, &e), HYB_E_FORBIDDEN);
        hyb_bus_unref(s);
        hyb_bus_unref(w);
        tb_stop(&t);
}
END_TEST

/* policy.store: rights per uid and app, pattern within pattern for subscriptions. */
START_TEST(test_store_policy)
{
        tbroker t;
        char yaml[512];
        hyb_error e;
        hyb_obj *o = NULL;
        got_msgs g = { 0 };
        snprintf(yaml, sizeof yaml,
                 "policy:\n"
                 "  store:\n"
                 "    - {uid: %u, furi: /a/+/t, allow: [read, subscribe]}\n"
                 "    - {app: org.test.writer, furi: /a/#, allow: [read, write]}\n"
                 "    - {uid: %u, app: org.test.admin, furi: /#, allow: [read, write, delete, subscribe]}\n",
                 (unsigned)getuid(), (unsigned)getuid());
        start(&t, NULL, yaml);
        hyb_bus *r = tb_connect(&t, "org.test.reader", "main");
        hyb_bus *w = tb_connect(&t, "org.test.writer", "main");
        hyb_bus *a = tb_connect(&t, "org.test.admin", "main");

        ck_assert_int_eq(put(w, "/a/b/t", "1", 0, &e), 0);
        ck_assert_int_eq(put(w, "/b", "1", 0, &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_store_delete(w, "/a/b/t", &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(put(r, "/a/b/t", "2", 0, &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_store_read(r, "/a/b/t", &o, &e), 0);
        ck_assert_int_eq(hyb_obj_get_int(o), 1);
        hyb_obj_unref(o);
        ck_assert_int_eq(hyb_bus_store_read(r, "/a/b/u", &o, &e), HYB_E_FORBIDDEN);
        /* /a/# is not within /a/+/t: refused; /a/+/t itself and /a/c/t are. */
        ck_assert_int_eq(hyb_bus_store_subscribe(r, "/a/#", 0, on_msg, &g, NULL, &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_store_subscribe(r, "/a/+/t", 0, on_msg, &g, NULL, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(r, "/a/c/t", 0, on_msg, &g, NULL, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(w, "/a/#", 0, on_msg, &g, NULL, &e), HYB_E_FORBIDDEN);
        /* A branch: reading /a/+/t/ reads what /a/+/t matches; writing /a/b/ writes /a/b/+. */
        ck_assert_int_eq(hyb_bus_store_read(r, "/a/+/t/", &o, &e), 0);
        ck_assert_int_eq(hyb_obj_get_kind(o), HYB_OBJ_REC);
        hyb_obj_unref(o);
        ck_assert_int_eq(hyb_bus_store_read(r, "/a/b/", &o, &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(put(w, "/a/b/", "[t=>3]", 0, &e), 0);
        ck_assert_int_eq(put(w, "/", "[b=>3]", 0, &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_store_delete(a, "/a/b/t", &e), 0);
        ck_assert_int_eq(put(a, "/sys/x", "1", 0, &e), HYB_E_FORBIDDEN);
        hyb_bus_unref(a);
        hyb_bus_unref(w);
        hyb_bus_unref(r);
        tb_stop(&t);
}
END_TEST

/* max_store_subscriptions bounds one connection; a subscriber that does not read is cut off
 * (ERROR 507, charged to its own queue) while the writer goes on. */
START_TEST(test_store_bounds)
{
        tbroker t;
        got_msgs g = { 0 };
        hyb_error e;
        start(&t, "max_store_subscriptions=2,send_queue_bytes=262144,max_frame=200000,max_body=100000",
              NULL);
        hyb_bus *w = tb_connect(&t, "org.test.w", "main");
        hyb_bus *s = tb_connect(&t, "org.test.slow", "main");

        ck_assert_int_eq(hyb_bus_store_subscribe(s, "/x/#", 0, on_msg, &g, NULL, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(s, "/y/#", 0, on_msg, &g, NULL, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(s, "/z/#", 0, on_msg, &g, NULL, &e), HYB_E_TOO_MANY);
        /* s never reads: 4000 writes of ~1 KiB overflow its 256 KiB queue. */
        char big[1100];
        memset(big, 'a', sizeof big);
        big[0] = '\'';
        big[sizeof big - 2] = '\'';
        big[sizeof big - 1] = 0;
        for (int i = 0; i < 4000; i++)
                ck_assert_int_eq(put(w, "/x/v", big, 0, &e), 0);
        /* s finds itself cut off with the reason. */
        hyb_obj *o = NULL;
        int r = 0;
        for (int i = 0; i < 100000 && r == 0; i++) {
                r = hyb_bus_process(s);
                if (r == 0)
                        r = hyb_bus_store_read(s, "/x/v", &o, &e);
                hyb_obj_unref(o);
                o = NULL;
                if (r > 0)
                        r = 0;
        }
        ck_assert_int_lt(r, 0);
        ck_assert_int_lt(atomic_load(&g.n), 4000);
        r = hyb_bus_store_read(s, "/x/v", &o, &e);
        ck_assert_int_lt(r, 0);
        /* The writer is untouched. */
        ck_assert_int_eq(put(w, "/x/w", "1", 0, &e), 0);
        hyb_bus_unref(s);
        hyb_bus_unref(w);
        tb_stop(&t);
}
END_TEST

static hyb_furi *furi_of(const char *text)
{
        hyb_furi *f = NULL;
        ck_assert_int_eq(hyb_furi_parse(text, strlen(text), NULL, &f, NULL), 0);
        return f;
}

/* The bus backend keeps the backend contract: messages that arrive during an op are not
 * delivered from inside it but by process, in write order; `~/x` reaches the daemon's
 * /home/<name>/x; once the daemon is gone every op and process say HYB_E_CLOSED. */
START_TEST(test_store_backend)
{
        tbroker t;
        got_msgs g = { 0 };
        hyb_backend *be = NULL;
        hyb_scope *sc = NULL;
        hyb_slot *slot = NULL;
        hyb_obj *o = NULL;
        hyb_error e;
        start(&t, NULL, NULL);
        hyb_bus *w = tb_connect(&t, "org.test.w", "main");
        hyb_bus *s = tb_connect(&t, "org.test.prog", "main");
        ck_assert_int_eq(hyb_bus_backend_new(s, &be), 0);
        ck_assert_int_eq(hyb_scope_new(be, NULL, "prog", &sc), 0);

        hyb_furi *pat = furi_of("/k/#"), *home = furi_of("~/x"), *k9 = furi_of("/k/9");
        ck_assert_int_eq(hyb_scope_subscribe(sc, pat, 0, on_msg, &g, &slot, &e), 0);
        for (int i = 0; i < 5; i++) {
                char v[8];
                snprintf(v, sizeof v, "%d", i);
                ck_assert_int_eq(put(w, "/k/a", v, 0, &e), 0);
        }
        /* An op on the backend waits for its answer, which comes after the five messages. */
        hyb_obj *seven = obj_of("7");
        ck_assert_int_eq(hyb_scope_write(sc, k9, seven, 0, &e), 0);
        ck_assert_int_eq(hyb_scope_write(sc, home, seven, 0, &e), 0);
        hyb_obj_unref(seven);
        ck_assert_int_eq(atomic_load(&g.n), 0);
        for (int i = 0; i < 200 && atomic_load(&g.n) < 6; i++)
                ck_assert_int_ge(hyb_backend_wait(be, 10000), 0);
        ck_assert_int_eq(atomic_load(&g.n), 6);
        for (int i = 0; i < 5; i++) {
                char want[32];
                snprintf(want, sizeof want, "/k/a %d", i);
                ck_assert_str_eq(g.lines[i], want);
        }
        ck_assert_str_eq(g.lines[5], "/k/9 7");
        ck_assert_int_eq(hyb_bus_store_read(w, "/home/prog/x", &o, &e), 0);
        ck_assert_int_eq(hyb_obj_get_int(o), 7);
        hyb_obj_unref(o);
        /* A keyed pattern read names each match. */
        ck_assert_int_eq(hyb_backend_read(be, pat, HYB_READ_KEYED, &o, &e), 0);
        ck_assert_int_eq(hyb_obj_get_kind(o), HYB_OBJ_REC);
        ck_assert_uint_eq(hyb_obj_get_len(o), 2);
        hyb_obj_unref(o);

        hyb_bus_unref(w);
        tb_stop(&t);
        int r = 0;
        for (int i = 0; i < 200 && r >= 0; i++)
                r = hyb_backend_wait(be, 10000);
        ck_assert_int_eq(r, HYB_E_CLOSED);
        ck_assert_int_eq(hyb_scope_read(sc, k9, &o, &e), HYB_E_CLOSED);
        hyb_slot_unref(slot);
        hyb_furi_unref(pat);
        hyb_furi_unref(home);
        hyb_furi_unref(k9);
        hyb_scope_unref(sc);
        hyb_backend_unref(be);
        hyb_bus_unref(s);
}
END_TEST

static int64_t read_int(hyb_bus *bus, const char *furi)
{
        hyb_obj *o = NULL;
        hyb_error e;
        int64_t v;

        ck_assert_msg(hyb_bus_store_read(bus, furi, &o, &e) == 0, "%s: %s", furi, e.message);
        ck_assert_msg(hyb_obj_get_kind(o) == HYB_OBJ_INT, "%s is not an int", furi);
        v = hyb_obj_get_int(o);
        hyb_obj_unref(o);
        return v;
}

/* The broker's counters read as /sys/bus/... through the store calls, read-only.  Counts come
 * from the protocol: a handshake is CHALLENGE out, AUTH in, AUTH_RESULT out; a call is one
 * frame in and one out. */
START_TEST(test_store_sys_bus)
{
        tbroker t;
        hyb_error e;
        hyb_obj *o = NULL;
        start(&t, NULL, NULL);
        hyb_bus *w = tb_connect(&t, "org.test.w", "main");
        hyb_bus *r = tb_connect(&t, "org.test.r", "main");

        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(put(w, "/x", "1", 0, &e), 0);
        ck_assert_int_eq(read_int(r, "/sys/bus/connections"), 2);
        ck_assert_int_eq(read_int(r, "/sys/bus/connections_total"), 2);
        ck_assert_int_eq(read_int(r, "/sys/bus/endpoints"), 2);
        ck_assert_int_eq(read_int(r, "/sys/bus/endpoint/org.test.w/main/messages_in"), 4);
        ck_assert_int_eq(read_int(r, "/sys/bus/endpoint/org.test.w/main/messages_out"), 5);
        ck_assert_int_gt(read_int(r, "/sys/bus/endpoint/org.test.w/main/bytes_in"), 4 * 32);
        /* r: its handshake plus the six reads above, the seventh being served now. */
        ck_assert_int_eq(read_int(r, "/sys/bus/endpoint/org.test.r/main/messages_in"), 8);
        ck_assert_int_ge(read_int(r, "/sys/bus/messages_in"), 12);
        ck_assert_int_eq(read_int(r, "/sys/bus/drops"), 0);
        /* Patterns and branches mean what they mean anywhere. */
        ck_assert_int_eq(hyb_bus_store_read(r, "/sys/bus/endpoint/org.test.w/main/+/", &o, &e), 0);
        ck_assert_int_eq(hyb_obj_get_kind(o), HYB_OBJ_REC);
        /* messages_in/_out, bytes_in/_out, store_subscriptions, channels */
        ck_assert_uint_eq(hyb_obj_get_len(o), 6);
        hyb_obj_unref(o);
        ck_assert_int_eq(hyb_bus_store_read(r, "/sys/bus/endpoint/+/main/store_subscriptions", &o, &e), 0);
        ck_assert_uint_eq(hyb_obj_get_len(o), 2);
        hyb_obj_unref(o);
        /* Read-only. */
        ck_assert_int_eq(put(r, "/sys/bus/drops", "0", 0, &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(hyb_bus_store_delete(r, "/sys/bus/drops", &e), HYB_E_FORBIDDEN);
        hyb_bus_unref(r);
        hyb_bus_unref(w);
        tb_stop(&t);
}
END_TEST

/* uid_max_store_subscriptions bounds all connections of one uid together; an unsubscription
 * gives the room back. */
START_TEST(test_store_uid_bound)
{
        tbroker t;
        got_msgs g = { 0 };
        hyb_slot *slot = NULL;
        hyb_error e;
        start(&t, "uid_max_store_subscriptions=3", NULL);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_bus *b = tb_connect(&t, "org.test.b", "main");

        ck_assert_int_eq(hyb_bus_store_subscribe(a, "/a/1", 0, on_msg, &g, NULL, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(a, "/a/2", 0, on_msg, &g, &slot, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(b, "/b/1", 0, on_msg, &g, NULL, &e), 0);
        ck_assert_int_eq(hyb_bus_store_subscribe(b, "/b/2", 0, on_msg, &g, NULL, &e), HYB_E_TOO_MANY);
        ck_assert_ptr_nonnull(strstr(e.message, "uid_max_store_subscriptions"));
        hyb_slot_unref(slot);
        hyb_obj *o = NULL;
        ck_assert_int_eq(hyb_bus_store_read(a, "/a/1", &o, &e), 0); /* the unsubscribe is in */
        hyb_obj_unref(o);
        ck_assert_int_eq(hyb_bus_store_subscribe(b, "/b/2", 0, on_msg, &g, NULL, &e), 0);
        hyb_bus_unref(b);
        hyb_bus_unref(a);
        tb_stop(&t);
}
END_TEST

typedef struct writer_arg {
        hyb_backend *be;
        int tid, n, failures;
} writer_arg;

static void *writer_thread(void *ud)
{
        writer_arg *a = ud;
        char f[64];

        for (int i = 0; i < a->n; i++) {
                hyb_obj *v = NULL;
                hyb_furi *t = NULL;
                snprintf(f, sizeof f, "/t/%d", a->tid);
                hyb_obj_new_int(i, &v);
                hyb_furi_parse(f, strlen(f), NULL, &t, NULL);
                if (hyb_backend_write(a->be, t, v, 0, NULL) < 0)
                        a->failures++;
                hyb_furi_unref(t);
                hyb_obj_unref(v);
        }
        return NULL;
}

typedef struct order_check {
        atomic_int n;
        int64_t last[2];
        int out_of_order;
} order_check;

static void on_order(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        order_check *o = ud;
        size_t len = 0;
        const char *seg = hyb_furi_get_segment(target, 1, &len);
        int tid = len == 1 && seg[0] == '1';

        if (hyb_obj_get_int(payload) != o->last[tid] + 1)
                o->out_of_order++;
        o->last[tid] = hyb_obj_get_int(payload);
        atomic_fetch_add(&o->n, 1);
}

/* Two threads write through one bus backend at once (its ops lock around the connection)
 * while this thread processes: every write arrives, each thread's in its order. */
START_TEST(test_store_backend_threads)
{
        tbroker t;
        hyb_backend *be = NULL;
        hyb_slot *slot = NULL;
        order_check o = { .last = { -1, -1 } };
        writer_arg a[2] = { { .tid = 0, .n = 300 }, { .tid = 1, .n = 300 } };
        pthread_t th[2];
        hyb_error e;
        start(&t, NULL, NULL);
        hyb_bus *bus = tb_connect(&t, "org.test.threads", "main");
        ck_assert_int_eq(hyb_bus_backend_new(bus, &be), 0);
        hyb_furi *pat = furi_of("/t/#");
        ck_assert_int_eq(hyb_backend_subscribe(be, pat, 0, on_order, &o, &slot, &e), 0);
        for (int i = 0; i < 2; i++) {
                a[i].be = be;
                ck_assert_int_eq(pthread_create(&th[i], NULL, writer_thread, &a[i]), 0);
        }
        for (int i = 0; i < 3000 && atomic_load(&o.n) < 600; i++)
                ck_assert_int_ge(hyb_backend_wait(be, 10000), 0);
        for (int i = 0; i < 2; i++)
                pthread_join(th[i], NULL);
        for (int i = 0; i < 200 && atomic_load(&o.n) < 600; i++)
                hyb_backend_wait(be, 10000);
        ck_assert_int_eq(a[0].failures + a[1].failures, 0);
        ck_assert_int_eq(atomic_load(&o.n), 600);
        ck_assert_int_eq(o.out_of_order, 0);
        hyb_slot_unref(slot);
        hyb_furi_unref(pat);
        hyb_backend_unref(be);
        hyb_bus_unref(bus);
        tb_stop(&t);
}
END_TEST

/* hyb_bus_scope_open follows the rule from the environment: $HYBRID_BUS names the daemon whose
 * store the host scope is; one that does not answer is an error, never another store; and
 * $HYBRID_DB wins over it. */
START_TEST(test_store_scope_open)
{
        tbroker t;
        hyb_scope *sc = NULL;
        hyb_obj *o = NULL;
        char *where = NULL, *dir = test_tmpdir(), db[512];
        hyb_error e;
        start(&t, NULL, NULL);
        hyb_bus *w = tb_connect(&t, "org.test.w", "main");
        ck_assert_int_eq(put(w, "/env/x", "5", 0, &e), 0);

        unsetenv("HYBRID_DB");
        setenv("HYBRID_BUS", t.sock, 1);
        ck_assert_int_eq(hyb_bus_scope_open("org.test.prog", NULL, "prog", &sc, &where, &e), 0);
        ck_assert_ptr_nonnull(strstr(where, t.sock));
        hyb_furi *f = furi_of("/env/x");
        ck_assert_int_eq(hyb_scope_read(sc, f, &o, &e), 0);
        ck_assert_int_eq(hyb_obj_get_int(o), 5);
        hyb_obj_unref(o);
        hyb_scope_unref(sc);
        hyb_free(where);

        snprintf(db, sizeof db, "%s/none.sock", dir);
        setenv("HYBRID_BUS", db, 1);
        ck_assert_int_lt(hyb_bus_scope_open("org.test.prog", NULL, "prog", &sc, NULL, &e), 0);
        {
                /* the message is the rule's words, then the connect's own message whole */
                hyb_error ce;
                hyb_bus *none = NULL;
                char want[sizeof e.message + 1024];

                hyb_error_clear(&ce);
                ck_assert_int_lt(hyb_bus_connect(db, "org.test.prog", "prog", &none, &ce), 0);
                ck_assert_str_ne(ce.message, "");
                snprintf(want, sizeof want, "no daemon answers at %s: %s", db, ce.message);
                ck_assert_str_eq(e.message, want);
        }

        snprintf(db, sizeof db, "%s/s.db", dir);
        setenv("HYBRID_DB", db, 1);
        ck_assert_int_eq(hyb_bus_scope_open("org.test.prog", NULL, "prog", &sc, &where, &e), 0);
        ck_assert_ptr_nonnull(strstr(where, db));
        ck_assert_int_eq(hyb_scope_read(sc, f, &o, &e), 0);
        ck_assert(hyb_obj_is_noobj(o));
        hyb_obj_unref(o);
        hyb_scope_unref(sc);
        hyb_free(where);
        unsetenv("HYBRID_DB");
        unsetenv("HYBRID_BUS");
        hyb_furi_unref(f);
        hyb_bus_unref(w);
        tb_stop(&t);
        test_rmrf(dir);
        free(dir);
}
END_TEST

static void count_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *ud)
{
        if (hyb_bus_reply_get_status(reply) == 200)
                atomic_fetch_add((atomic_int *)ud, 1);
}

/* A corked connection queues its packets (pipelined store reads leave in one write) until a
 * flush, a wait or process; a sync call works corked; uncorking flushes. */
START_TEST(test_store_cork)
{
        tbroker t;
        atomic_int n = 0;
        hyb_error e;
        hyb_obj *o = NULL;
        start(&t, NULL, NULL);
        hyb_bus *c = tb_connect(&t, "org.test.cork", "main");
        ck_assert_int_eq(put(c, "/k", "1", 0, &e), 0);

        ck_assert_int_eq(hyb_bus_set_cork(c, true), 0);
        for (int i = 0; i < 32; i++)
                ck_assert_int_eq(hyb_bus_call_async(c, HYB_BUS_BUILTIN_ENDPOINT, "storeRead", "/k",
                                                    2, HYB_BODY_BINARY, 0, count_reply, &n, NULL),
                                 0);
        /* Nothing written yet: all 32 wait in the queue, and the fd to watch (an epoll
         * set, bus.h) turns readable for it: room to write them. */
        ck_assert_int_eq(hyb_bus_get_events(c), HYB_BUS_EVENT_IN);
        struct pollfd pfd = { .fd = hyb_bus_get_fd(c), .events = POLLIN };
        ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
        ck_assert_int_eq(hyb_bus_flush(c), 0);
        ck_assert_int_eq(hyb_bus_get_events(c), HYB_BUS_EVENT_IN);
        pump_until(c, &n, 32, 3000);
        ck_assert_int_eq(atomic_load(&n), 32);
        ck_assert_int_eq(hyb_bus_store_read(c, "/k", &o, &e), 0); /* sync, corked */
        ck_assert_int_eq(hyb_obj_get_int(o), 1);
        hyb_obj_unref(o);
        ck_assert_int_eq(hyb_bus_call_async(c, HYB_BUS_BUILTIN_ENDPOINT, "storeRead", "/k", 2,
                                            HYB_BODY_BINARY, 0, count_reply, &n, NULL),
                         0);
        ck_assert_int_eq(hyb_bus_set_cork(c, false), 0); /* flushes */
        ck_assert_int_eq(hyb_bus_get_events(c) & HYB_BUS_EVENT_OUT, 0);
        pump_until(c, &n, 33, 3000);
        ck_assert_int_eq(atomic_load(&n), 33);
        hyb_bus_unref(c);
        tb_stop(&t);
}
END_TEST

static int raw_status(hyb_bus *bus, const char *method, const char *body)
{
        hyb_bus_reply *rep = NULL;
        hyb_error e;
        int r = hyb_bus_call(bus, HYB_BUS_BUILTIN_ENDPOINT, method, body, strlen(body),
                             HYB_BODY_BINARY, 2000, &rep, &e);
        int st = r == 0 ? hyb_bus_reply_get_status(rep) : hyb_err_to_status(r);
        hyb_bus_reply_unref(rep);
        return st;
}

/* Malformed store packets (doc/protocol.md "Store") are answered with an error status; the
 * connection and the broker go on. */
START_TEST(test_store_malformed)
{
        tbroker t;
        start(&t, NULL, NULL);
        hyb_bus *c = tb_connect(&t, "org.test.raw", "main");

        ck_assert_int_eq(raw_status(c, "storeWrite", "/a"), 400);          /* no value */
        ck_assert_int_eq(raw_status(c, "storeWrite", "/a\n[1,"), 400);     /* bad obj */
        ck_assert_int_eq(raw_status(c, "storeWrite", "a b\n1"), 400);      /* bad fURI */
        ck_assert_int_eq(raw_status(c, "storeWrite", "/a/+\n1"), 400);     /* pattern, value */
        ck_assert_int_eq(raw_status(c, "storeRead", ""), 400);
        ck_assert_int_eq(raw_status(c, "storeSubscribe", "/a"), 400);      /* no id, no flags */
        ck_assert_int_eq(raw_status(c, "storeSubscribe", "x 0 /a"), 400);
        ck_assert_int_eq(raw_status(c, "storeSubscribe", "1 7 /a"), 400);  /* unknown flags */
        ck_assert_int_eq(raw_status(c, "storeSubscribe", "99999999999999999999999 0 /a"), 400);
        ck_assert_int_eq(raw_status(c, "storeSubscribe", "1 0 rel"), 400); /* relative */
        ck_assert_int_eq(raw_status(c, "storeSubscribe", "1 0 /a"), 200);
        ck_assert_int_eq(raw_status(c, "storeSubscribe", "1 0 /b"), 409);  /* id in use */
        ck_assert_int_eq(raw_status(c, "storeUnsubscribe", "2"), 404);
        ck_assert_int_eq(raw_status(c, "storeUnsubscribe", "1x"), 400);
        ck_assert_int_eq(raw_status(c, "storeUnsubscribe", "1"), 200);
        ck_assert_int_eq(raw_status(c, "storeNothing", "/a"), 404);
        ck_assert_int_eq(raw_status(c, "storeWrite", "/a\n1"), 200);
        hyb_bus_unref(c);
        tb_stop(&t);
}
END_TEST

/* Without a store the store calls are answered 503. */
START_TEST(test_store_none)
{
        tbroker t;
        hyb_error e;
        hyb_obj *o = NULL;
        tb_start(&t, NULL, false);
        hyb_bus *c = tb_connect(&t, "org.test.c", "main");
        ck_assert_int_eq(hyb_bus_store_read(c, "/a", &o, &e), HYB_E_UNAVAILABLE);
        hyb_bus_unref(c);
        tb_stop(&t);
}
END_TEST

/* The kernel's objs a daemon adds (hyb_broker_set_kernel): read as they are, never stored;
 * a write or delete there is refused 403; a pattern read and other fURIs reach the store. */
static int kernel_k(const hyb_furi *f, hyb_obj **ret, hyb_error *e, void *ud)
{
        if (strcmp(hyb_furi_get_str(f), "/k/x") != 0)
                return 0;
        int r = hyb_obj_new_int(7, ret);

        (*(int *)ud)++;
        return r < 0 ? r : 1;
}

START_TEST(test_store_kernel)
{
        tbroker t;
        hyb_obj *o = NULL;
        hyb_error e;
        int asked = 0;
        start(&t, NULL, NULL);
        ck_assert_int_eq(hyb_broker_set_kernel(t.broker, kernel_k, &asked), 0);
        hyb_bus *c = tb_connect(&t, "org.test.c", "main");

        ck_assert_int_eq(hyb_bus_store_read(c, "/k/x", &o, &e), 0);
        ck_assert_int_eq(hyb_obj_get_int(o), 7);
        hyb_obj_unref(o);
        ck_assert_int_eq(put(c, "/k/x", "1", 0, &e), HYB_E_FORBIDDEN);
        ck_assert_str_eq(e.message, "/k/x is read-only");
        ck_assert_int_eq(hyb_bus_store_delete(c, "/k/x", &e), HYB_E_FORBIDDEN);
        ck_assert_int_eq(put(c, "/k/y", "2", 0, &e), 0);
        ck_assert_int_eq(hyb_bus_store_read(c, "/k/+", &o, &e), 0);
        hyb_obj *want = obj_of("{2}");
        ck_assert(hyb_obj_equal(o, want));
        hyb_obj_unref(want);
        hyb_obj_unref(o);
        ck_assert_int_eq(asked, 3);
        hyb_bus_unref(c);
        tb_stop(&t);
}
END_TEST

/* A branch written with a last segment `.` or `..` ("/d/x/.." is "/d/") reads as the branch
 * does (doc/store.md: a rec of fURI => value of the matches of /d), not as a node; a node
 * under it is one value. */
START_TEST(test_store_read_dot_branch)
{
        static const char *const texts[] = { "/d/", "/d/x/..", "/d/.", "/d/x/./.." };
        tbroker t;
        hyb_error e;
        hyb_obj *o = NULL;
        start(&t, NULL, NULL);
        hyb_bus *c = tb_connect(&t, "org.test.dots", "main");

        ck_assert_int_eq(put(c, "/d", "5", 0, &e), 0);
        ck_assert_int_eq(put(c, "/e/b", "2", 0, &e), 0);
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
                ck_assert_msg(hyb_bus_store_read(c, texts[i], &o, &e) == 0, "%s: %s", texts[i],
                              e.message);
                ck_assert_int_eq(hyb_obj_get_kind(o), HYB_OBJ_REC);
                ck_assert_msg(hyb_obj_get_len(o) == 1, "%s: %zu keys", texts[i], hyb_obj_get_len(o));
                ck_assert_int_eq(hyb_obj_get_int(hyb_obj_get_rec_value(o, 0)), 5);
                hyb_obj_unref(o);
        }
        ck_assert_int_eq(hyb_bus_store_read(c, "/e/x/../b", &o, &e), 0);
        ck_assert_int_eq(hyb_obj_get_kind(o), HYB_OBJ_INT);
        ck_assert_int_eq(hyb_obj_get_int(o), 2);
        hyb_obj_unref(o);
        hyb_bus_unref(c);
        tb_stop(&t);
}
END_TEST

/* Value i of test_store_read_texts: a str of 2 to 206 characters, in no order of length. */
static void text_of(char *buf, size_t size, int i)
{
        char pad[201];

        memset(pad, 'x', sizeof pad - 1);
        pad[sizeof pad - 1] = '\0';
        snprintf(buf, size, "'v%d-%.*s'", i, (i * 37) % 200, pad);
}

/* The broker keeps the texts of values it answered in a cache of 16 384 slots, each reusing
 * its buffer for the next value it holds: more values than slots, of lengths going up and
 * down, and one longer than the cache keeps, each read back exactly, twice. */
START_TEST(test_store_read_texts)
{
        enum { N = 20000 };
        tbroker t;
        hyb_error e;
        char key[32], text[256], big[1000], *s = NULL;
        hyb_obj *o = NULL;
        start(&t, NULL, NULL);
        hyb_bus *c = tb_connect(&t, "org.test.texts", "main");

        for (int i = 0; i < N; i++) {
                snprintf(key, sizeof key, "/t/%d", i);
                text_of(text, sizeof text, i);
                ck_assert_int_eq(put(c, key, text, 0, &e), 0);
        }
        memset(big, 'y', sizeof big - 1);
        big[0] = big[sizeof big - 2] = '\'';
        big[sizeof big - 1] = '\0';
        ck_assert_int_eq(put(c, "/t/big", big, 0, &e), 0);
        for (int round = 0; round < 2; round++) {
                for (int i = 0; i < N; i++) {
                        snprintf(key, sizeof key, "/t/%d", i);
                        text_of(text, sizeof text, i);
                        ck_assert_int_eq(hyb_bus_store_read(c, key, &o, &e), 0);
                        ck_assert_int_eq(hyb_obj_format(o, HYB_FORMAT_EXACT, &s), 0);
                        ck_assert_str_eq(s, text);
                        hyb_free(s);
                        hyb_obj_unref(o);
                        if (i % 5000 != 0)
                                continue;
                        ck_assert_int_eq(hyb_bus_store_read(c, "/t/big", &o, &e), 0);
                        ck_assert_int_eq(hyb_obj_format(o, HYB_FORMAT_EXACT, &s), 0);
                        ck_assert_str_eq(s, big);
                        hyb_free(s);
                        hyb_obj_unref(o);
                }
        }
        hyb_bus_unref(c);
        tb_stop(&t);
}
END_TEST

void bus_tcase_store(Suite *s)
{
        TCase *tc = tcase_create("store");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_store_subscribe_order);
        tcase_add_test(tc, test_store_policy);
        tcase_add_test(tc, test_store_kernel);
        tcase_add_test(tc, test_store_bounds);
        tcase_add_test(tc, test_store_none);
        tcase_add_test(tc, test_store_backend);
        tcase_add_test(tc, test_store_backend_threads);
        tcase_add_test(tc, test_store_scope_open);
        tcase_add_test(tc, test_store_cork);
        tcase_add_test(tc, test_store_malformed);
        tcase_add_test(tc, test_store_sys_bus);
        tcase_add_test(tc, test_store_uid_bound);
        tcase_add_test(tc, test_store_read_texts);
        tcase_add_test(tc, test_store_read_dot_branch);
        suite_add_tcase(s, tc);
}
