/* SPDX-License-Identifier: MIT */
/*
 * The bus-client backend of the scope router: a hybridd's host store reached
 * through one bus connection, keeping the backend contract of hybrid/store.h.
 *
 *   bus_backend
 *    |- bus            the connection (referenced), used under `lock`
 *    |- subs: bbsub -> bbsub ...    (fn/userdata of the router's subscriptions)
 *    `- queue: bbmsg -> bbmsg ...   (messages received, not yet delivered)
 *
 * Messages that arrive while an op waits for its answer (the bus dispatches
 * incoming packets during a sync call) are queued, never delivered from inside
 * the op: callbacks run from the backend's process only, in arrival order,
 * which is write order at the daemon's store.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-internal.h"
#include "bus-ws.h"
#include "common/util.h"
#include "hybrid/token.h"
#include "hybrid/bus-store.h"
#include "store/store-internal.h"

typedef struct bbsub bbsub;
typedef struct bus_backend bus_backend;

typedef struct bbmsg {
        struct bbmsg *next;
        bbsub *sub;
        hyb_furi *target;
        hyb_obj *payload;
        bool retain;
} bbmsg;

struct bbsub {
        bbsub *next;
        bus_backend *be;
        hyb_slot *bus_slot;   /* the bus subscription */
        hyb_store_msg_fn fn;
        void *userdata;
};

struct bus_backend {
        pthread_mutex_t lock; /* recursive: a callback may call the backend's ops */
        hyb_bus *bus;
        bbsub *subs;
        bbmsg *head, **tail;
};

static void lock(bus_backend *be)
{
        pthread_mutex_lock(&be->lock);
}

static void unlock(bus_backend *be)
{
        pthread_mutex_unlock(&be->lock);
}

static int closed(bus_backend *be, hyb_error *e)
{
        const char *why = NULL;
        int st = hyb_bus_get_close_reason(be->bus, &why);

        if (st > 0)
                return err_set(e, HYB_E_CLOSED, -1, "hybridd closed the connection: %d %s", st,
                               why ? why : "");
        return err_set(e, HYB_E_CLOSED, -1, "the connection to hybridd is closed");
}

static void on_bus_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        bbsub *s = ud;
        bus_backend *be = s->be;
        bbmsg *m = calloc(1, sizeof *m);

        if (!m)
                return;
        m->sub = s;
        m->target = hyb_furi_ref(target);
        m->payload = hyb_obj_ref(payload);
        m->retain = retain;
        *be->tail = m;
        be->tail = &m->next;
}

static void msg_free(bbmsg *m)
{
        hyb_furi_unref(m->target);
        hyb_obj_unref(m->payload);
        free(m);
}

static int op_read(void *impl, const hyb_furi *target, unsigned flags, hyb_obj **ret,
                   hyb_error *e)
{
        bus_backend *be = impl;
        int r;

        lock(be);
        if (!hyb_bus_is_open(be->bus))
                r = closed(be, e);
        else
                r = bus_store_read_flags(be->bus, hyb_furi_get_str(target), flags, ret, e);
        unlock(be);
        return r;
}

static int op_write(void *impl, const hyb_furi *target, const hyb_obj *value, unsigned flags,
                    hyb_error *e)
{
        bus_backend *be = impl;
        int r;

        lock(be);
        if (!hyb_bus_is_open(be->bus))
                r = closed(be, e);
        else
                r = hyb_bus_store_write(be->bus, hyb_furi_get_str(target), value, flags, e);
        unlock(be);
        return r;
}

static int op_del(void *impl, const hyb_furi *target, unsigned flags, hyb_error *e)
{
        bus_backend *be = impl;
        int r;

        lock(be);
        if (!hyb_bus_is_open(be->bus))
                r = closed(be, e);
        else if (flags & HYB_WRITE_TRANSIENT)
                r = hyb_bus_store_write(be->bus, hyb_furi_get_str(target), hyb_obj_noobj(),
                                        HYB_WRITE_TRANSIENT, e);
        else
                r = hyb_bus_store_delete(be->bus, hyb_furi_get_str(target), e);
        unlock(be);
        return r;
}

static int op_subscribe(void *impl, const hyb_furi *pattern, unsigned flags, hyb_store_msg_fn fn,
                        void *userdata, void **ret_cookie, hyb_error *e)
{
        bus_backend *be = impl;
        bbsub *s = calloc(1, sizeof *s);
        int r;

        if (!s)
                return -ENOMEM;
        s->be = be;
        s->fn = fn;
        s->userdata = userdata;
        lock(be);
        if (!hyb_bus_is_open(be->bus))
                r = closed(be, e);
        else
                r = hyb_bus_store_subscribe(be->bus, hyb_furi_get_str(pattern), flags, on_bus_msg,
                                            s, &s->bus_slot, e);
        if (r >= 0) {
                s->next = be->subs;
                be->subs = s;
                *ret_cookie = s;
        }
        unlock(be);
        if (r < 0)
                free(s);
        return r;
}

static void op_unsubscribe(void *impl, void *cookie)
{
        bus_backend *be = impl;
        bbsub *s = cookie;

        lock(be);
        for (bbsub **pp = &be->subs; *pp; pp = &(*pp)->next)
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
        /* Its queued messages go too: once this returns nothing reaches it. */
        be->tail = &be->head;
        for (bbmsg **pp = &be->head; *pp;) {
                bbmsg *m = *pp;
                if (m->sub == s) {
                        *pp = m->next;
                        msg_free(m);
                } else {
                        pp = &m->next;
                        be->tail = &m->next;
                }
        }
        hyb_slot_unref(s->bus_slot); /* storeUnsubscribe, if the connection is still up */
        unlock(be);
        free(s);
}

static int op_get_fd(void *impl)
{
        bus_backend *be = impl;
        int r;

        lock(be);
        r = hyb_bus_get_fd(be->bus);
        unlock(be);
        return r;
}

static int op_get_events(void *impl)
{
        bus_backend *be = impl;
        int r;

        lock(be);
        r = hyb_bus_get_events(be->bus);
        unlock(be);
        if (r < 0)
                return HYB_BACKEND_EVENT_IN;
        return (r & HYB_BUS_EVENT_IN ? HYB_BACKEND_EVENT_IN : 0) |
               (r & HYB_BUS_EVENT_OUT ? HYB_BACKEND_EVENT_OUT : 0);
}

static int op_get_timeout(void *impl, uint64_t *ret_usec)
{
        bus_backend *be = impl;
        int r = 0;

        lock(be);
        if (be->head)
                *ret_usec = 0; /* queued messages wait for process */
        else if (hyb_bus_get_timeout(be->bus, ret_usec) < 0)
                *ret_usec = 0; /* closed: process reports it */
        unlock(be);
        return r;
}

static int op_process(void *impl)
{
        bus_backend *be = impl;
        int done = 0, r = 0;

        lock(be);
        /* Read what the socket has (a bounded batch), then deliver in arrival order. */
        for (int i = 0; i < 64 && hyb_bus_is_open(be->bus); i++) {
                r = hyb_bus_process(be->bus);
                if (r <= 0)
                        break;
                done = 1;
        }
        /* Callbacks run without the lock, so another thread's op does not wait on them (the
         * contract keeps process and the unref of slots on one thread at a time); a callback
         * that unsubscribes purges that subscription's queued messages. */
        while (be->head) {
                bbmsg *m = be->head;
                hyb_store_msg_fn fn = m->sub->fn;
                void *ud = m->sub->userdata;

                be->head = m->next;
                if (!be->head)
                        be->tail = &be->head;
                unlock(be);
                fn(m->target, m->payload, m->retain, ud);
                msg_free(m);
                lock(be);
                done = 1;
        }
        if (done)
                r = 1;
        else if (!hyb_bus_is_open(be->bus))
                r = HYB_E_CLOSED; /* after every message received was delivered */
        else if (r > 0)
                r = 0;
        unlock(be);
        return r;
}

static void op_destroy(void *impl)
{
        bus_backend *be = impl;

        while (be->head) {
                bbmsg *m = be->head;
                be->head = m->next;
                msg_free(m);
        }
        /* Subscriptions hold references of the backend: none is left here. */
        hyb_bus_unref(be->bus);
        pthread_mutex_destroy(&be->lock);
        free(be);
}

static const hyb_backend_vtable bus_backend_vtable = {
        .size = sizeof(hyb_backend_vtable),
        .read = op_read,
        .write = op_write,
        .del = op_del,
        .subscribe = op_subscribe,
        .unsubscribe = op_unsubscribe,
        .get_fd = op_get_fd,
        .get_events = op_get_events,
        .get_timeout = op_get_timeout,
        .process = op_process,
        .destroy = op_destroy,
};

HYB_EXPORT int hyb_bus_backend_new(hyb_bus *bus, hyb_backend **ret)
{
        pthread_mutexattr_t a;
        bus_backend *be;
        int r;

        hyb_assert_return(bus && ret, -EINVAL);
        be = calloc(1, sizeof *be);
        if (!be)
                return -ENOMEM;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(&be->lock, &a);
        pthread_mutexattr_destroy(&a);
        be->bus = hyb_bus_ref(bus);
        be->tail = &be->head;
        r = hyb_backend_new(&bus_backend_vtable, be, ret);
        if (r < 0)
                op_destroy(be);
        return r;
}

/* ---------------------------------------------------------------- which store */

/* A connect failure that means "no daemon answers there" (rule 3 then falls back). */
static bool nobody_there(int r)
{
        return r == -ENOENT || r == -ECONNREFUSED || r == -ENOTDIR || r == -EACCES ||
               r == HYB_E_UNAVAILABLE;
}

static int embedded(const char *db, const hyb_store_options *opts, bool make_dirs,
                    hyb_backend **ret, hyb_error *reterr)
{
        hyb_store *st = NULL;
        int r;

        if (make_dirs) {
                /* The default database lives in a directory that may not exist yet. */
                char *dir = strdup(db);
                if (!dir)
                        return -ENOMEM;
                for (char *p = dir + 1; *p; p++)
                        if (*p == '/') {
                                *p = '\0';
                                mkdir(dir, 0700);
                                *p = '/';
                        }
                free(dir);
        }
        r = hyb_store_open(db, opts, &st, reterr);
        if (r < 0)
                return r;
        r = hyb_backend_new_store(st, ret);
        hyb_store_unref(st);
        return r;
}

static int daemon_backend(const hyb_bus_connect_options *conn, const char *path,
                          hyb_backend **ret, hyb_error *reterr)
{
        hyb_bus_connect_options o = *conn;
        hyb_bus *bus = NULL;
        int r;

        o.path = path;
        r = hyb_bus_connect_with(&o, &bus, reterr);
        if (r < 0)
                return r;
        r = hyb_bus_backend_new(bus, ret);
        hyb_bus_unref(bus);
        return r;
}

HYB_EXPORT int hyb_bus_backend_open_host(const char *db, const char *bus_path, const char *app,
                                         const char *runner, const hyb_store_options *opts,
                                         hyb_backend **ret, int *ret_source, char **ret_where,
                                         hyb_error *reterr)
{
        hyb_bus_connect_options o;

        hyb_bus_connect_options_init(&o);
        o.path = bus_path;
        o.app = app;
        o.runner = runner;
        return hyb_bus_backend_open_host_with(db, &o, opts, ret, ret_source, ret_where, reterr);
}

HYB_EXPORT int hyb_bus_backend_open_host_with(const char *db, const hyb_bus_connect_options *conn,
                                              const hyb_store_options *opts, hyb_backend **ret,
                                              int *ret_source, char **ret_where,
                                              hyb_error *reterr)
{
        hyb_bus_connect_options c = { 0 };
        const char *bus_path;
        const char *env, *xdg, *home;
        char *where = NULL, *dflt = NULL;
        int r, source;

        hyb_assert_return(ret, -EINVAL);
        r = bus_connect_options_copy(&c, conn);
        if (r < 0)
                return r;
        bus_path = c.path;
        if (!db && (env = secure_getenv("HYBRID_DB")) && *env)
                db = env;
        if (!bus_path && (env = secure_getenv("HYBRID_BUS")) && *env)
                bus_path = env;
        if (db) {
                /* 1. A database named: the embedded store on it, no daemon. */
                source = HYB_HOST_DB;
                r = embedded(db, opts, false, ret, reterr);
                if (r >= 0 && asprintf(&where, "the database %s", db) < 0)
                        where = NULL;
        } else if (bus_path) {
                /* 2. A daemon named: its store, or an error; never another store. */
                source = HYB_HOST_BUS;
                r = daemon_backend(&c, bus_path, ret, reterr);
                if (r < 0 && reterr) {
                        /* the connect's own message, copied: err_set writes over it */
                        char why[sizeof reterr->message];

                        snprintf(why, sizeof why, "%s",
                                 reterr->message[0] ? reterr->message : hyb_strerror(r));
                        if (r == HYB_E_UNAUTHORIZED || r == HYB_E_FORBIDDEN)
                                err_set(reterr, r, -1, "the daemon at %s refused the credentials: %s",
                                        bus_path, why);
                        else if (r == HYB_E_TOO_MANY)
                                err_set(reterr, r, -1, "the daemon at %s is busy: %s", bus_path, why);
                        else
                                err_set(reterr, r, -1, "no daemon answers at %s: %s", bus_path, why);
                } else if (r >= 0 &&
                           asprintf(&where, "the store of the daemon at %s", bus_path) < 0) {
                        where = NULL;
                }
        } else {
                /* 3. The daemon at the default socket if one answers, else the default db. */
                r = hyb_bus_get_default_socket(&dflt);
                if (r < 0)
                        return r;
                source = HYB_HOST_DEFAULT_BUS;
                r = daemon_backend(&c, dflt, ret, reterr);
                if (r >= 0) {
                        if (asprintf(&where, "the store of the daemon at %s", dflt) < 0)
                                where = NULL;
                } else if (nobody_there(r)) {
                        char path[4096];

                        source = HYB_HOST_DEFAULT_DB;
                        xdg = secure_getenv("XDG_DATA_HOME");
                        home = secure_getenv("HOME");
                        if (xdg && *xdg)
                                snprintf(path, sizeof path, "%s/hybrid/store.db", xdg);
                        else
                                snprintf(path, sizeof path, "%s/.local/share/hybrid/store.db",
                                         home ? home : ".");
                        if (reterr)
                                hyb_error_clear(reterr);
                        r = embedded(path, opts, true, ret, reterr);
                        if (r >= 0 && asprintf(&where, "the database %s (no daemon at %s)", path,
                                               dflt) < 0)
                                where = NULL;
                }
                hyb_free(dflt);
        }
        if (r < 0)
                return r;
        if (ret_source)
                *ret_source = source;
        if (ret_where)
                *ret_where = where;
        else
                free(where);
        return 0;
}

HYB_EXPORT int hyb_bus_scope_open(const char *app, const char *runner, const char *name,
                                  hyb_scope **ret, char **ret_where, hyb_error *reterr)
{
        hyb_backend *host = NULL;
        const char *cl_env;
        char dflt[32];
        int r;

        hyb_assert_return(app && name && ret, -EINVAL);
        if (!runner) {
                const char *bus_env = getenv("HYBRID_BUS");
                uint32_t rnd = 0;

                /* p<pid> is a local process's name: a remote broker refuses it under
                 * org.hybridos.cli (doc/protocol.md "Names"), so a ws:// or wss:// daemon
                 * is asked for w<pid>_<8 random hex digits> */
                if (bus_env && bus_ws_is_url(bus_env)) {
                        if (getentropy(&rnd, sizeof rnd) < 0)
                                rnd = (uint32_t)hyb_now_usec();
                        snprintf(dflt, sizeof dflt, "w%ld_%08" PRIx32, (long)getpid(), rnd);
                } else {
                        snprintf(dflt, sizeof dflt, "p%ld", (long)getpid());
                }
                runner = dflt;
        }
        hyb_bus_connect_options o;
        hyb_key *key = NULL;
        char *token = NULL;

        hyb_bus_connect_options_init(&o);
        o.app = app;
        o.runner = runner;
        r = bus_env_credentials(&token, &key, reterr);
        if (r < 0)
                return r;
        o.token = token;
        o.key = key;
        r = hyb_bus_backend_open_host_with(NULL, &o, NULL, &host, NULL, ret_where, reterr);
        free(token);
        hyb_key_unref(key);
        if (r < 0)
                return r;
        r = hyb_scope_new(host, NULL, name, ret);
        /* A daemon serves the cluster scope //... too (doc/cluster.md); without one, the MQTT
         * broker of $HYBRID_CLUSTER does (connected at the first use). */
        if (r >= 0 && hyb_bus_backend_get_bus(host)) {
                if ((r = hyb_scope_set_backend(*ret, HYB_SCOPE_CLUSTER, host)) < 0)
                        *ret = hyb_scope_unref(*ret);
        } else if (r >= 0 && (cl_env = secure_getenv("HYBRID_CLUSTER")) && *cl_env) {
                hyb_backend *cb = NULL;

                r = hyb_cluster_backend_new(cl_env, &cb, reterr);
                if (r >= 0)
                        r = hyb_scope_set_backend(*ret, HYB_SCOPE_CLUSTER, cb);
                hyb_backend_unref(cb);
                if (r < 0)
                        *ret = hyb_scope_unref(*ret);
        }
        hyb_backend_unref(host);
        if (r < 0 && ret_where) {
                hyb_free(*ret_where);
                *ret_where = NULL;
        }
        return r;
}

HYB_EXPORT hyb_bus *hyb_bus_backend_get_bus(const hyb_backend *b)
{
        const bus_backend *be;

        if (!b || backend_get_vtable(b) != &bus_backend_vtable)
                return NULL;
        be = hyb_backend_get_impl(b);
        return be ? be->bus : NULL;
}
