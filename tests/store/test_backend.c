/* SPDX-License-Identifier: MIT */
/*
 * Backends and the scope router through the public API.  tb below is a tiny
 * in-memory backend written against hyb_backend_vtable, as any program may
 * write one: exact keys, patterns by hyb_furi_match, no polys.  It logs every
 * op it receives, so a test can see which backend a scope routed to and with
 * which fURI.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hybrid/mmadt.h"
#include "hybrid/store.h"
#include "suites.h"
#include "testutil.h"

#define TB_MAX 32

typedef struct tb_sub {
        hyb_furi *pattern;
        hyb_store_msg_fn fn;
        void *ud;
        bool live;
} tb_sub;

typedef struct tb_msg {
        tb_sub *sub;
        hyb_furi *target;
        hyb_obj *payload;
        bool retain;
} tb_msg;

typedef struct tb {
        hyb_furi *keys[TB_MAX];
        hyb_obj *vals[TB_MAX];
        size_t n;
        tb_sub *subs[TB_MAX];
        size_t n_subs;
        tb_msg q[TB_MAX];
        size_t n_q;
        char log[TB_MAX][96];
        size_t n_log;
        int destroyed;
        bool closed;    /* the peer went away: every op says HYB_E_CLOSED */
} tb;

static void tb_log(tb *t, const char *op, const hyb_furi *f)
{
        ck_assert_uint_lt(t->n_log, TB_MAX);
        snprintf(t->log[t->n_log++], sizeof(t->log[0]), "%s %s", op, f ? hyb_furi_get_str(f) : "");
}

static long tb_find(tb *t, const hyb_furi *f)
{
        for (size_t i = 0; i < t->n; i++)
                if (hyb_furi_equal(t->keys[i], f))
                        return (long)i;
        return -1;
}

static void tb_queue(tb *t, const hyb_furi *f, const hyb_obj *v, bool retain, tb_sub *only)
{
        for (size_t i = 0; i < t->n_subs; i++) {
                tb_sub *s = t->subs[i];
                if (!s->live || (only && s != only) || !hyb_furi_match(f, s->pattern))
                        continue;
                ck_assert_uint_lt(t->n_q, TB_MAX);
                t->q[t->n_q++] = (tb_msg){ s, hyb_furi_ref(f), hyb_obj_ref(v), retain };
        }
}

static int tb_read(void *impl, const hyb_furi *target, unsigned flags, hyb_obj **ret,
                   hyb_error *e)
{
        tb *t = impl;
        hyb_obj *m[TB_MAX];
        size_t n = 0;
        long i;

        tb_log(t, flags & HYB_READ_KEYED ? "kread" : "read", target);
        if (t->closed)
                return HYB_E_CLOSED;
        if (!hyb_furi_is_pattern(target)) {
                i = tb_find(t, target);
                *ret = i < 0 ? hyb_obj_noobj() : hyb_obj_ref(t->vals[i]);
                return 0;
        }
        for (size_t k = 0; k < t->n; k++)
                if (hyb_furi_match(t->keys[k], target))
                        m[n++] = t->vals[k];
        return hyb_obj_new_objs(m, n, ret);
}

static int tb_write(void *impl, const hyb_furi *target, const hyb_obj *value, unsigned flags,
                    hyb_error *e)
{
        tb *t = impl;
        long i;

        tb_log(t, flags & HYB_WRITE_TRANSIENT ? "twrite" : "write", target);
        if (t->closed)
                return HYB_E_CLOSED;
        ck_assert(!hyb_obj_is_noobj(value)); /* the contract: a delete comes as del */
        if (!(flags & HYB_WRITE_TRANSIENT)) {
                i = tb_find(t, target);
                if (i < 0) {
                        ck_assert_uint_lt(t->n, TB_MAX);
                        i = (long)t->n++;
                        t->keys[i] = hyb_furi_ref(target);
                } else
                        hyb_obj_unref(t->vals[i]);
                t->vals[i] = hyb_obj_ref(value);
        }
        tb_queue(t, target, value, !(flags & HYB_WRITE_TRANSIENT), NULL);
        return 0;
}

static int tb_del(void *impl, const hyb_furi *target, unsigned flags, hyb_error *e)
{
        tb *t = impl;
        long i = tb_find(t, target);

        tb_log(t, "del", target);
        if (i >= 0) {
                hyb_furi_unref(t->keys[i]);
                hyb_obj_unref(t->vals[i]);
                t->n--;
                t->keys[i] = t->keys[t->n];
                t->vals[i] = t->vals[t->n];
        }
        tb_queue(t, target, hyb_obj_noobj(), true, NULL);
        return 0;
}

static int tb_subscribe(void *impl, const hyb_furi *pattern, unsigned flags, hyb_store_msg_fn fn,
                        void *userdata, void **ret_cookie, hyb_error *e)
{
        tb *t = impl;
        tb_sub *s = calloc(1, sizeof(*s));

        tb_log(t, flags & HYB_SUBSCRIBE_REPLAY ? "rsub" : "sub", pattern);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_lt(t->n_subs, TB_MAX);
        s->pattern = hyb_furi_ref(pattern);
        s->fn = fn;
        s->ud = userdata;
        s->live = true;
        t->subs[t->n_subs++] = s;
        for (size_t k = 0; (flags & HYB_SUBSCRIBE_REPLAY) && k < t->n; k++)
                tb_queue(t, t->keys[k], t->vals[k], true, s);
        *ret_cookie = s;
        return 0;
}

static void tb_unsubscribe(void *impl, void *cookie)
{
        tb_sub *s = cookie;

        tb_log(impl, "unsub", s->pattern);
        s->live = false; /* freed with the backend: queued messages may still name it */
}

static int tb_process(void *impl)
{
        tb *t = impl;
        size_t n = t->n_q;

        if (t->closed && n == 0)
                return HYB_E_CLOSED; /* what was received first, then the error */
        for (size_t i = 0; i < n; i++) {
                tb_msg *m = &t->q[i];
                if (m->sub->live)
                        m->sub->fn(m->target, m->payload, m->retain, m->sub->ud);
                hyb_furi_unref(m->target);
                hyb_obj_unref(m->payload);
        }
        memmove(t->q, t->q + n, (t->n_q - n) * sizeof(t->q[0]));
        t->n_q -= n;
        return n > 0;
}

static void tb_destroy(void *impl)
{
        tb *t = impl;

        t->destroyed++;
        for (size_t i = 0; i < t->n; i++) {
                hyb_furi_unref(t->keys[i]);
                hyb_obj_unref(t->vals[i]);
        }
        for (size_t i = 0; i < t->n_subs; i++) {
                hyb_furi_unref(t->subs[i]->pattern);
                free(t->subs[i]);
        }
        for (size_t i = 0; i < t->n_q; i++) {
                hyb_furi_unref(t->q[i].target);
                hyb_obj_unref(t->q[i].payload);
        }
        t->n = t->n_subs = t->n_q = 0;
}

static const hyb_backend_vtable tb_vtable = {
        .size = sizeof(hyb_backend_vtable),
        .read = tb_read,
        .write = tb_write,
        .del = tb_del,
        .subscribe = tb_subscribe,
        .unsubscribe = tb_unsubscribe,
        .process = tb_process,
        .destroy = tb_destroy,
};

static hyb_backend *tb_new(tb *t)
{
        hyb_backend *b = NULL;

        memset(t, 0, sizeof(*t));
        ck_assert_int_eq(hyb_backend_new(&tb_vtable, t, &b), 0);
        return b;
}

static hyb_furi *furi(const char *text)
{
        hyb_furi *f = NULL;

        ck_assert_int_eq(hyb_furi_parse(text, (size_t)-1, NULL, &f, NULL), 0);
        return f;
}

static hyb_obj *obj(const char *text)
{
        hyb_obj *o = NULL;

        ck_assert_int_eq(hyb_obj_parse(text, (size_t)-1, &o, NULL), 0);
        return o;
}

static int swrite(hyb_scope *sc, const char *f, const char *v, hyb_error *e)
{
        hyb_furi *t = furi(f);
        hyb_obj *o = obj(v);
        int r = hyb_scope_write(sc, t, o, 0, e);

        hyb_furi_unref(t);
        hyb_obj_unref(o);
        return r;
}

/* The scope's read of f, in the exact text form ("noobj" for noobj). */
static char *sread(hyb_scope *sc, const char *f)
{
        hyb_furi *t = furi(f);
        hyb_obj *o = NULL;
        hyb_error e = { 0 };
        char *s = NULL, *out;

        ck_assert_msg(hyb_scope_read(sc, t, &o, &e) == 0, "read %s: %s", f, e.message);
        if (hyb_obj_is_noobj(o))
                out = strdup("noobj");
        else {
                ck_assert_int_eq(hyb_obj_format(o, HYB_FORMAT_EXACT, &s), 0);
                out = strdup(s);
                hyb_free(s);
        }
        hyb_obj_unref(o);
        hyb_furi_unref(t);
        return out;
}

#define ck_assert_read(sc, f, want)                \
        do {                                       \
                char *_s = sread(sc, f);           \
                ck_assert_str_eq(_s, want);        \
                free(_s);                          \
        } while (0)

/* Which backend (by impl) and which target the router gives for f. */
static void route_is(hyb_scope *sc, const char *f, const tb *want, const char *target)
{
        hyb_furi *x = furi(f), *t = NULL;
        hyb_backend *b = NULL;

        ck_assert_int_eq(hyb_scope_route(sc, x, &b, &t, NULL), 0);
        ck_assert_ptr_eq(hyb_backend_get_impl(b), want);
        ck_assert_str_eq(hyb_furi_get_str(t), target);
        hyb_backend_unref(b); /* both are the caller's references */
        hyb_furi_unref(t);
        hyb_furi_unref(x);
}

START_TEST(test_router_routes_each_scope)
{
        tb H, P, C, G;
        hyb_backend *h = tb_new(&H), *p = tb_new(&P), *c = tb_new(&C), *g = tb_new(&G);
        hyb_scope *sc = NULL;
        hyb_furi *f;
        hyb_error e = { 0 };

        ck_assert_int_eq(hyb_scope_new(h, p, "prog", &sc), 0);
        ck_assert_int_eq(swrite(sc, "a/b", "1", NULL), 0);
        ck_assert_int_eq(swrite(sc, "~/x", "2", NULL), 0);
        ck_assert_int_eq(swrite(sc, "/h", "3", NULL), 0);
        /* cluster and global: no backend yet, a clear error naming the scope */
        ck_assert_int_eq(swrite(sc, "//kitchen/t", "4", &e), HYB_E_SCOPE);
        ck_assert_ptr_nonnull(strstr(e.message, "cluster"));
        ck_assert_int_eq(swrite(sc, "//host.example/x", "5", &e), HYB_E_SCOPE);
        ck_assert_ptr_nonnull(strstr(e.message, "global"));
        ck_assert_int_eq(hyb_scope_set_backend(sc, HYB_SCOPE_CLUSTER, c), 0);
        ck_assert_int_eq(hyb_scope_set_backend(sc, HYB_SCOPE_GLOBAL, g), 0);
        ck_assert_int_eq(swrite(sc, "//kitchen/t", "4", NULL), 0);
        ck_assert_int_eq(swrite(sc, "//host.example/x", "5", NULL), 0);

        ck_assert_uint_eq(P.n_log, 1);
        ck_assert_str_eq(P.log[0], "write a/b");
        ck_assert_uint_eq(H.n_log, 2);
        ck_assert_str_eq(H.log[0], "write /home/prog/x");
        ck_assert_str_eq(H.log[1], "write /h");
        ck_assert_uint_eq(C.n_log, 1);
        ck_assert_str_eq(C.log[0], "write //kitchen/t");
        ck_assert_uint_eq(G.n_log, 1);
        ck_assert_str_eq(G.log[0], "write //host.example/x");

        /* reads come back from the backend the scope routes to */
        ck_assert_read(sc, "a/b", "1");
        ck_assert_read(sc, "~/x", "2");
        ck_assert_read(sc, "/home/prog/x", "2");
        ck_assert_read(sc, "/h", "3");
        ck_assert_read(sc, "//kitchen/t", "4");
        ck_assert_read(sc, "//host.example/x", "5");
        ck_assert_read(sc, "/a/b", "noobj"); /* a host key, not the program's a/b */
        ck_assert_str_eq(P.log[P.n_log - 1], "read a/b");
        ck_assert_str_eq(H.log[H.n_log - 1], "read /a/b");

        route_is(sc, "a/b", &P, "a/b");
        route_is(sc, "~/x/y", &H, "/home/prog/x/y");
        route_is(sc, "/h", &H, "/h");
        route_is(sc, "//kitchen/t", &C, "//kitchen/t");
        route_is(sc, "//host.example/x", &G, "//host.example/x");

        {
                hyb_backend *x = NULL;
                ck_assert_int_eq(hyb_scope_get_backend(sc, HYB_SCOPE_HOME, &x), 0);
                ck_assert_ptr_eq(x, h);
                hyb_backend_unref(x);
                ck_assert_int_eq(hyb_scope_get_backend(sc, HYB_SCOPE_PROGRAM, &x), 0);
                ck_assert_ptr_eq(x, p);
                hyb_backend_unref(x);
                ck_assert_int_eq(hyb_scope_get_backend(sc, HYB_SCOPE_CLUSTER, &x), 0);
                ck_assert_ptr_eq(x, c);
                hyb_backend_unref(x);
                ck_assert_int_eq(hyb_scope_get_backend(sc, (hyb_furi_scope)9, &x), -EINVAL);
        }

        /* a delete, and a write of noobj, reach the backend's del op */
        f = furi("~/x");
        ck_assert_int_eq(hyb_scope_delete(sc, f, 0, NULL), 0);
        ck_assert_str_eq(H.log[H.n_log - 1], "del /home/prog/x");
        hyb_furi_unref(f);
        f = furi("a/b");
        ck_assert_int_eq(hyb_scope_write(sc, f, hyb_obj_noobj(), 0, NULL), 0);
        ck_assert_str_eq(P.log[P.n_log - 1], "del a/b");
        hyb_furi_unref(f);
        ck_assert_read(sc, "a/b", "noobj");

        /* the cluster scope cleared: the error again; host and program cannot be cleared */
        ck_assert_int_eq(hyb_scope_set_backend(sc, HYB_SCOPE_CLUSTER, NULL), 0);
        ck_assert_int_eq(swrite(sc, "//kitchen/t", "4", &e), HYB_E_SCOPE);
        {
                hyb_backend *x = NULL;
                ck_assert_int_eq(hyb_scope_get_backend(sc, HYB_SCOPE_CLUSTER, &x), HYB_E_SCOPE);
        }
        ck_assert_int_eq(hyb_scope_set_backend(sc, HYB_SCOPE_HOST, NULL), -EINVAL);
        ck_assert_int_eq(hyb_scope_set_backend(sc, HYB_SCOPE_PROGRAM, NULL), -EINVAL);
        ck_assert_int_eq(hyb_scope_set_backend(sc, HYB_SCOPE_HOME, h), -EINVAL);
        ck_assert_int_eq(C.destroyed, 0); /* we still hold c */

        /* the router holds its own references: ours go first, the backends live on */
        hyb_backend_unref(h);
        hyb_backend_unref(p);
        hyb_backend_unref(c);
        hyb_backend_unref(g);
        ck_assert_int_eq(C.destroyed, 1);
        ck_assert_int_eq(H.destroyed + P.destroyed + G.destroyed, 0);
        hyb_scope_unref(sc);
        ck_assert_int_eq(H.destroyed, 1);
        ck_assert_int_eq(P.destroyed, 1);
        ck_assert_int_eq(G.destroyed, 1);
}
END_TEST

typedef struct seen {
        char lines[16][96];
        int n, destroyed;
} seen;

static void on_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        seen *s = ud;
        char *txt = NULL;

        ck_assert_int_lt(s->n, 16);
        hyb_obj_format(payload, HYB_FORMAT_EXACT, &txt);
        snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s %s %s", hyb_furi_get_str(target),
                 txt, retain ? "r" : "t");
        hyb_free(txt);
}

static void on_destroy(void *ud)
{
        ((seen *)ud)->destroyed++;
}

START_TEST(test_router_subscriptions)
{
        tb H, P;
        hyb_backend *h = tb_new(&H), *p = tb_new(&P);
        hyb_scope *sc = NULL;
        hyb_slot *sh = NULL, *sp = NULL;
        hyb_furi *ph = furi("~/#"), *pp = furi("v/+");
        seen a = { 0 }, b = { 0 }, other = { 0 };

        ck_assert_int_eq(hyb_scope_new(h, p, "prog", &sc), 0);
        ck_assert_int_eq(swrite(sc, "~/old", "0", NULL), 0);
        ck_assert_int_eq(hyb_scope_subscribe(sc, ph, HYB_SUBSCRIBE_REPLAY, on_msg, &a, &sh, NULL),
                         0);
        ck_assert_int_eq(hyb_scope_subscribe(sc, pp, 0, on_msg, &b, &sp, NULL), 0);
        ck_assert_str_eq(H.log[H.n_log - 1], "rsub /home/prog/#");
        ck_assert_str_eq(P.log[P.n_log - 1], "sub v/+");
        ck_assert_int_eq(hyb_slot_set_destroy_callback(sh, on_destroy), 0);
        ck_assert_int_eq(a.n, 0); /* nothing runs before process */
        ck_assert_int_eq(swrite(sc, "~/cfg", "7", NULL), 0);
        ck_assert_int_eq(swrite(sc, "v/1", "8", NULL), 0);
        ck_assert_int_eq(swrite(sc, "/elsewhere", "9", NULL), 0);
        ck_assert_int_gt(hyb_scope_process(sc), 0);
        ck_assert_int_eq(hyb_scope_process(sc), 0);
        ck_assert_int_eq(a.n, 2);
        ck_assert_str_eq(a.lines[0], "/home/prog/old 0 r"); /* replayed first */
        ck_assert_str_eq(a.lines[1], "/home/prog/cfg 7 r");
        ck_assert_int_eq(b.n, 1);
        ck_assert_str_eq(b.lines[0], "v/1 8 r");

        /* the slot's userdata is what the callback gets, also after it changes */
        ck_assert_ptr_eq(hyb_slot_set_userdata(sp, &other), &b);
        ck_assert_int_eq(swrite(sc, "v/2", "10", NULL), 0);
        hyb_scope_process(sc);
        ck_assert_int_eq(b.n, 1);
        ck_assert_int_eq(other.n, 1);
        ck_assert_str_eq(other.lines[0], "v/2 10 r");

        /* the slot outlives the router and the backend's other owners; unref unsubscribes */
        hyb_scope_unref(sc);
        hyb_backend_unref(p);
        hyb_backend_unref(h);
        ck_assert_int_eq(H.destroyed, 0);
        hyb_slot_unref(sh);
        ck_assert_int_eq(a.destroyed, 1);
        ck_assert_str_eq(H.log[H.n_log - 1], "unsub /home/prog/#");
        ck_assert_int_eq(H.destroyed, 1);
        ck_assert_int_eq(P.destroyed, 0);
        hyb_slot_unref(sp);
        ck_assert_str_eq(P.log[P.n_log - 1], "unsub v/+");
        ck_assert_int_eq(P.destroyed, 1);
        hyb_furi_unref(ph);
        hyb_furi_unref(pp);
}
END_TEST

/* The documented recovery: a backend whose peer went away is replaced in the router. */
START_TEST(test_router_replaces_closed_backend)
{
        tb H1, H2, P;
        hyb_backend *h1 = tb_new(&H1), *h2 = tb_new(&H2), *p = tb_new(&P);
        hyb_scope *sc = NULL;
        hyb_slot *old = NULL, *now = NULL;
        hyb_furi *pat = furi("/s/+");
        seen a = { 0 };

        ck_assert_int_eq(hyb_scope_new(h1, p, "prog", &sc), 0);
        ck_assert_int_eq(hyb_scope_subscribe(sc, pat, 0, on_msg, &a, &old, NULL), 0);
        ck_assert_int_eq(swrite(sc, "/s/1", "1", NULL), 0);
        H1.closed = true;
        ck_assert_int_eq(swrite(sc, "/s/2", "2", NULL), HYB_E_CLOSED);
        /* the message received before the break is delivered; then the error shows */
        ck_assert_int_eq(hyb_scope_process(sc), 1);
        ck_assert_int_eq(a.n, 1);
        ck_assert_int_eq(hyb_scope_process(sc), HYB_E_CLOSED);
        ck_assert_int_eq(swrite(sc, "a/b", "3", NULL), 0); /* the program scope still works */

        ck_assert_int_eq(hyb_scope_set_backend(sc, HYB_SCOPE_HOST, h2), 0);
        ck_assert_int_eq(hyb_scope_subscribe(sc, pat, HYB_SUBSCRIBE_REPLAY, on_msg, &a, &now,
                                             NULL),
                         0);
        ck_assert_int_eq(swrite(sc, "/s/2", "2", NULL), 0);
        ck_assert_int_eq(hyb_scope_process(sc), 1);
        ck_assert_int_eq(a.n, 2);
        ck_assert_str_eq(a.lines[1], "/s/2 2 r");
        ck_assert_str_eq(H2.log[H2.n_log - 1], "write /s/2");
        hyb_slot_unref(old); /* still valid after the break */
        ck_assert_str_eq(H1.log[H1.n_log - 1], "unsub /s/+");
        hyb_slot_unref(now);
        hyb_scope_unref(sc);
        hyb_backend_unref(h1);
        hyb_backend_unref(h2);
        hyb_backend_unref(p);
        ck_assert_int_eq(H1.destroyed + H2.destroyed + P.destroyed, 3);
        hyb_furi_unref(pat);
}
END_TEST

START_TEST(test_backend_new_checks)
{
        hyb_backend_vtable vt = tb_vtable;
        hyb_backend *b = NULL;
        hyb_furi *f = furi("/x");
        uint64_t t = 0, t0;
        tb T;

        memset(&T, 0, sizeof(T));
        ck_assert_int_eq(hyb_backend_new(NULL, &T, &b), -EINVAL);
        vt.del = NULL;
        ck_assert_int_eq(hyb_backend_new(&vt, &T, &b), -EINVAL);
        vt = tb_vtable;
        vt.size = offsetof(hyb_backend_vtable, process); /* too short to hold process */
        ck_assert_int_eq(hyb_backend_new(&vt, &T, &b), -EINVAL);
        /* a table from before destroy existed: destroy is past its size, so never called */
        vt.size = offsetof(hyb_backend_vtable, destroy);
        ck_assert_int_eq(hyb_backend_new(&vt, &T, &b), 0);
        ck_assert_int_eq(hyb_backend_get_fd(b), -EOPNOTSUPP);
        ck_assert_int_eq(hyb_backend_get_events(b), HYB_BACKEND_EVENT_IN);
        ck_assert_int_eq(hyb_backend_get_timeout(b, &t), 0);
        ck_assert_uint_eq(t, UINT64_MAX);
        ck_assert_int_eq(hyb_backend_read(b, f, 0x80, NULL, NULL), -EINVAL);
        ck_assert_int_eq(hyb_backend_write(b, f, hyb_obj_noobj(), 0x80, NULL), -EINVAL);
        /* no fd: wait sleeps out its timeout, then processes */
        t0 = hyb_now_usec();
        ck_assert_int_eq(hyb_backend_wait(b, 20000), 0);
        ck_assert_uint_ge(hyb_now_usec() - t0, 15000);
        ck_assert_ptr_null(hyb_backend_unref(b));
        ck_assert_int_eq(T.destroyed, 0);
        ck_assert_ptr_null(hyb_backend_unref(NULL));
        ck_assert_ptr_null(hyb_backend_get_impl(NULL));
        hyb_furi_unref(f);
}
END_TEST

/* The embedded store's backend: keyed pattern reads, deletes, delivery through its fd. */
START_TEST(test_store_backend)
{
        hyb_store *st = NULL;
        hyb_backend *b = NULL;
        hyb_furi *pat = furi("/k/+"), *f;
        hyb_obj *o = NULL, *v = obj("1");
        hyb_slot *slot = NULL;
        char *txt = NULL;
        seen s = { 0 };
        uint64_t t = 0;

        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        ck_assert_int_eq(hyb_backend_new_store(st, &b), 0);
        hyb_store_unref(st); /* the backend holds its own reference */
        ck_assert_int_eq(hyb_backend_subscribe(b, pat, 0, on_msg, &s, &slot, NULL), 0);
        f = furi("/k/b");
        ck_assert_int_eq(hyb_backend_write(b, f, v, 0, NULL), 0);
        hyb_furi_unref(f);
        f = furi("/k/a");
        ck_assert_int_eq(hyb_backend_write(b, f, v, 0, NULL), 0);
        ck_assert_int_eq(hyb_backend_read(b, pat, HYB_READ_KEYED, &o, NULL), 0);
        ck_assert_int_eq(hyb_obj_format(o, HYB_FORMAT_EXACT, &txt), 0);
        ck_assert_str_eq(txt, "[/k/a=>1,/k/b=>1]");
        hyb_free(txt);
        o = hyb_obj_unref(o);
        ck_assert_int_eq(hyb_backend_read(b, pat, 0, &o, NULL), 0);
        ck_assert_int_eq(hyb_obj_get_kind(o), HYB_OBJ_OBJS);
        ck_assert_uint_eq(hyb_obj_get_len(o), 2);
        o = hyb_obj_unref(o);
        ck_assert_int_eq(hyb_backend_delete(b, f, 0, NULL), 0);
        ck_assert_int_eq(hyb_backend_read(b, f, 0, &o, NULL), 0);
        ck_assert(hyb_obj_is_noobj(o));
        o = hyb_obj_unref(o);
        hyb_furi_unref(f);

        ck_assert_int_ge(hyb_backend_get_fd(b), 0);
        ck_assert_int_eq(hyb_backend_get_events(b), HYB_BACKEND_EVENT_IN);
        ck_assert_int_eq(hyb_backend_get_timeout(b, &t), 0);
        ck_assert_uint_eq(t, 0); /* messages are ready now */
        ck_assert_int_gt(hyb_backend_wait(b, 1000000), 0);
        ck_assert_int_eq(s.n, 3);
        ck_assert_str_eq(s.lines[0], "/k/b 1 r");
        ck_assert_str_eq(s.lines[1], "/k/a 1 r");
        ck_assert_str_eq(s.lines[2], "/k/a noobj r");
        hyb_slot_unref(slot);
        hyb_backend_unref(b);
        hyb_furi_unref(pat);
        hyb_obj_unref(v);
}
END_TEST

/*
 * Two handles of one store, one per thread: each handle's subscriptions are
 * delivered by its own process, on its thread, in write order, whoever
 * writes and whoever else runs a process.
 */
#define N_THREAD_MSGS 300

typedef struct per_thread {
        hyb_backend *b;
        pthread_t want;
        int n, wrong_thread, out_of_order;
        atomic_int ready;
} per_thread;

static void thread_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        per_thread *pt = ud;

        if (!pthread_equal(pthread_self(), pt->want))
                pt->wrong_thread++;
        if (hyb_obj_get_int(payload) != pt->n)
                pt->out_of_order++;
        pt->n++;
}

static void *handle_thread(void *ud)
{
        per_thread *pt = ud;
        hyb_furi *p = furi("/t/#");
        hyb_slot *slot = NULL;
        uint64_t end = hyb_now_usec() + 20000000;

        pt->want = pthread_self();
        ck_assert_int_eq(hyb_backend_subscribe(pt->b, p, 0, thread_msg, pt, &slot, NULL), 0);
        atomic_store(&pt->ready, 1);
        while (pt->n < N_THREAD_MSGS && hyb_now_usec() < end)
                ck_assert_int_ge(hyb_backend_wait(pt->b, 100000), 0);
        hyb_slot_unref(slot);
        hyb_furi_unref(p);
        return NULL;
}

START_TEST(test_store_backend_per_thread)
{
        hyb_store *st = NULL;
        per_thread a = { 0 }, b = { 0 };
        hyb_furi *p = furi("/t/#");
        hyb_slot *slot = NULL;
        pthread_t th;
        uint64_t end;

        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        ck_assert_int_eq(hyb_backend_new_store(st, &a.b), 0);
        ck_assert_int_eq(hyb_backend_new_store(st, &b.b), 0);
        ck_assert_ptr_ne(a.b, b.b);
        a.want = pthread_self();
        ck_assert_int_eq(hyb_backend_subscribe(a.b, p, 0, thread_msg, &a, &slot, NULL), 0);
        ck_assert_int_eq(pthread_create(&th, NULL, handle_thread, &b), 0);
        while (!atomic_load(&b.ready))
                usleep(1000);
        for (int i = 0; i < N_THREAD_MSGS; i++) {
                char key[32];
                hyb_furi *f;
                hyb_obj *v = NULL;
                snprintf(key, sizeof(key), "/t/%d", i);
                f = furi(key);
                ck_assert_int_eq(hyb_obj_new_int(i, &v), 0);
                ck_assert_int_eq(hyb_backend_write(a.b, f, v, i % 2 ? HYB_WRITE_TRANSIENT : 0,
                                                   NULL),
                                 0);
                hyb_obj_unref(v);
                hyb_furi_unref(f);
                if (i % 7 == 0)
                        hyb_backend_process(a.b); /* relays b's messages too: b runs them */
        }
        end = hyb_now_usec() + 20000000;
        while (a.n < N_THREAD_MSGS && hyb_now_usec() < end)
                ck_assert_int_ge(hyb_backend_wait(a.b, 100000), 0);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_int_eq(a.n, N_THREAD_MSGS);
        ck_assert_int_eq(b.n, N_THREAD_MSGS);
        ck_assert_int_eq(a.wrong_thread, 0);
        ck_assert_int_eq(b.wrong_thread, 0);
        ck_assert_int_eq(a.out_of_order, 0);
        ck_assert_int_eq(b.out_of_order, 0);
        hyb_slot_unref(slot);
        hyb_backend_unref(a.b);
        hyb_backend_unref(b.b);
        hyb_store_unref(st);
        hyb_furi_unref(p);
}
END_TEST

/*
 * The VM reads through the router alone: reading `/l/0` asks the host backend
 * for `/l/0` and nothing else (indexing a stored lst is the store's work, not
 * the VM's).  The same program over the embedded store gets the element.
 */
START_TEST(test_mmadt_reads_through_backend)
{
        tb H;
        hyb_backend *h = tb_new(&H), *eb = NULL;
        hyb_store *st = NULL;
        hyb_scope *sc = NULL;
        hyb_mmadt *vm = NULL;
        hyb_obj *res = NULL;
        hyb_error e = { 0 };
        char *txt = NULL;

        ck_assert_int_eq(hyb_scope_new(h, NULL, "vmtest", &sc), 0);
        ck_assert_int_eq(hyb_mmadt_new(sc, "vmtest", NULL, &vm), 0);
        ck_assert_msg(hyb_mmadt_eval(vm, "/l -> [1,2,3]", (size_t)-1, NULL, &res, &e) == 0,
                      "%s", e.message);
        res = hyb_obj_unref(res);
        H.n_log = 0;
        ck_assert_msg(hyb_mmadt_eval(vm, "*/l/0", (size_t)-1, NULL, &res, &e) == 0, "%s",
                      e.message);
        res = hyb_obj_unref(res);
        ck_assert_uint_eq(H.n_log, 1);
        ck_assert_str_eq(H.log[0], "read /l/0");
        hyb_mmadt_unref(vm);
        hyb_scope_unref(sc);
        hyb_backend_unref(h);
        ck_assert_int_eq(H.destroyed, 1);

        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        ck_assert_int_eq(hyb_backend_new_store(st, &eb), 0);
        ck_assert_int_eq(hyb_scope_new(eb, NULL, "vmtest", &sc), 0);
        ck_assert_int_eq(hyb_mmadt_new(sc, "vmtest", NULL, &vm), 0);
        ck_assert_msg(hyb_mmadt_eval(vm, "/l -> [1,[2,3]]\n*/l/1/0\n*/l/1/+\n/r -> [a=>1,b=>2]\n*/r/b",
                                     (size_t)-1, NULL, &res, &e) == 0,
                      "%s", e.message);
        ck_assert_int_eq(hyb_obj_format(res, HYB_FORMAT_EXACT, &txt), 0);
        ck_assert_str_eq(txt, "{[1,[2,3]],2,2,3,[a=>1,b=>2],2}");
        hyb_free(txt);
        hyb_obj_unref(res);
        hyb_mmadt_unref(vm);
        hyb_scope_unref(sc);
        hyb_backend_unref(eb);
        hyb_store_unref(st);
}
END_TEST

Suite *backend_suite(void)
{
        Suite *s = suite_create("backend");
        TCase *tc = tcase_create("router");

        tcase_add_test(tc, test_router_routes_each_scope);
        tcase_add_test(tc, test_router_subscriptions);
        tcase_add_test(tc, test_router_replaces_closed_backend);
        tcase_add_test(tc, test_backend_new_checks);
        tcase_add_test(tc, test_store_backend);
        tcase_add_test(tc, test_store_backend_per_thread);
        tcase_add_test(tc, test_mmadt_reads_through_backend);
        suite_add_tcase(s, tc);
        return s;
}
