/* SPDX-License-Identifier: MIT */
/*
 * store.c - the host store for Node: the backend chosen by the one rule of
 * hyb_bus_backend_open_host_with (db, else socket / $HYBRID_BUS, else the default
 * daemon, else the default database).  Reads, writes and deletes run on Node's
 * worker threads (the backend contract allows its ops from several threads);
 * messages of watches are delivered by hyb_backend_process on the loop thread.
 *
 * The cluster scope //... is routed by the rule of hyb_bus_scope_open: a daemon that
 * serves the host store serves it too; on the embedded store, the MQTT broker of the
 * cluster option (else $HYBRID_CLUSTER) does, through hyb_cluster_backend_new, whose fd is
 * watched beside the host store's (both in one epoll fd); with neither, HYB_E_SCOPE.
 */
#include "hybrid-node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

typedef struct hn_store {
        hn_io io; /* first */
        hyb_backend *be;
        hyb_backend *cbe;       /* the MQTT backend of //... on the embedded store, or NULL */
        hyb_scope *sc;          /* routes //... (be for a daemon, cbe, or HYB_E_SCOPE) */
        int epfd;               /* with cbe: an epoll fd of be's and cbe's fds; else -1 */
        char *db, *path, *app, *runner, *token, *key, *ca_file, *pin, *cluster;
        int r, source;
        unsigned ops;           /* operations running on worker threads */
        uint64_t last_process;  /* when process last ran (hyb_now_usec) */
        char *where;
        hyb_error err;
        napi_deferred def;
        napi_async_work work;
} hn_store;

enum { OP_READ, OP_WRITE, OP_DELETE };

typedef struct hn_op {
        hn_store *s;
        hyb_backend *be;        /* where the fURI routes (referenced) */
        int op;
        hyb_furi *furi;
        hyb_obj *value;
        unsigned flags;
        hyb_obj *result;
        int r;
        hyb_error err;
        napi_deferred d;
        napi_async_work w;
} hn_op;

typedef struct hn_watch {
        hn_store *s;
        uint32_t id;
} hn_watch;

/*
 * While operations run on worker threads, a daemon backend's lock may be held by one of
 * them across its whole round trip to the daemon, and every call of the backend waits for
 * it: from the loop thread that would freeze Node for as long as the daemon takes to
 * answer (up to the call deadline when it does not).  So then the loop thread leaves the
 * backend alone unless the daemon has shown it is answering: the fd became readable, or
 * an operation just completed.  op_complete runs process at once when it ended the last
 * operation, and also when process has not run for STALE_USEC, so that operations which
 * always overlap do not starve the watches.
 */
#define STALE_USEC 20000

static int store_process(hn_io *io)
{
        hn_store *s = (hn_store *)io;
        hyb_backend *be;
        int r;

        if (s->ops > 0 && !io->woke_readable)
                return 0;
        /* A listener may close the store (store_drop_backend): the backend stays until
         * its process call, which is delivering to that listener, has returned. */
        be = hyb_backend_ref(s->be);
        s->last_process = hyb_now_usec();
        r = hyb_backend_process(be);
        hyb_backend_unref(be);
        if (s->cbe && !io->closed) {
                int rc;

                be = hyb_backend_ref(s->cbe);
                rc = hyb_backend_process(be);
                hyb_backend_unref(be);
                if (rc < 0 && r >= 0)
                        r = rc;
                else if (rc > 0 && r == 0)
                        r = rc;
        }
        return r;
}

static int store_get_events(hn_io *io)
{
        hn_store *s = (hn_store *)io;

        if (s->ops > 0)
                return 0; /* readable only: the daemon's messages still wake process */
        if (s->cbe)
                return 0; /* the epoll fd: readable only (be is the embedded store then) */
        return hyb_backend_get_events(s->be);
}

static int store_get_timeout(hn_io *io, uint64_t *ret)
{
        hn_store *s = (hn_store *)io;

        uint64_t t = UINT64_MAX;
        int r;

        if (s->ops > 0) {
                *ret = UINT64_MAX; /* op_complete kicks process */
                return 0;
        }
        r = hyb_backend_get_timeout(s->be, ret);
        if (r >= 0 && s->cbe && hyb_backend_get_timeout(s->cbe, &t) >= 0 && t < *ret)
                *ret = t;
        return r;
}

/* Drops the backend once closed and no operation uses it on a worker thread. */
static void store_drop_backend(hn_store *s)
{
        if (s->io.closed && s->io.pending == 0 && s->be) {
                s->sc = hyb_scope_unref(s->sc);
                s->cbe = hyb_backend_unref(s->cbe);
                s->be = hyb_backend_unref(s->be);
        }
}

static void store_on_broken(hn_io *io, int r)
{
        hn_store *s = (hn_store *)io;
        napi_env env = io->env;
        napi_value argv[3];

        hn_io_close(io);
        store_drop_backend(s);
        argv[0] = hn_io_self(io);
        if (!argv[0])
                return;
        napi_create_int32(env, hyb_err_to_status(r), &argv[1]);
        napi_create_string_utf8(env, hyb_strerror(r), NAPI_AUTO_LENGTH, &argv[2]);
        hn_dispatch(env, hn_get_env(env)->on_close, 3, argv);
}

static void free_open_args(hn_store *s)
{
        free(s->db);
        free(s->path);
        free(s->app);
        free(s->runner);
        free(s->token);
        free(s->ca_file);
        free(s->pin);
        free(s->cluster);
        if (s->key) {
                memset(s->key, 0, strlen(s->key));
                free(s->key);
        }
        s->db = s->path = s->app = s->runner = s->token = s->key = s->ca_file = s->pin = NULL;
        s->cluster = NULL;
}

static void store_release(hn_io *io)
{
        hn_store *s = (hn_store *)io;
        free_open_args(s);
        hyb_free(s->where);
        hyb_scope_unref(s->sc);
        hyb_backend_unref(s->cbe);
        hyb_backend_unref(s->be);
        if (s->epfd >= 0)
                close(s->epfd);
        free(s);
}

static void store_finalize(napi_env env, void *data, void *hint)
{
        hn_io_finalize(&((hn_store *)data)->io);
}

static hn_store *get_store(napi_env env, napi_value obj, bool open)
{
        hn_store *s = NULL;

        if (napi_unwrap(env, obj, (void **)&s) != napi_ok || !s) {
                napi_throw_type_error(env, NULL, "not a hybrid Store");
                return NULL;
        }
        if (open && (!s->be || s->io.closed)) {
                napi_throw(env, hn_error_new(env, HYB_E_CLOSED, 0, "the store is closed"));
                return NULL;
        }
        return s;
}

/* ------------------------------------------------------------ open */

static void open_execute(napi_env env, void *data)
{
        hn_store *s = data;
        hyb_bus_connect_options o;
        hyb_key *key = NULL;

        hyb_error_clear(&s->err);
        hyb_bus_connect_options_init(&o);
        o.path = s->path;
        o.app = s->app;
        o.runner = s->runner;
        o.ca_file = s->ca_file; /* a wss:// socket only */
        o.pin = s->pin;
        if (s->token) {
                if (!s->key) {
                        s->r = -EINVAL;
                        snprintf(s->err.message, sizeof s->err.message,
                                 "a token needs its holder's private key (key)");
                        return;
                }
                s->r = hyb_key_load_memory(s->key, strlen(s->key), &key, &s->err);
                if (s->r < 0)
                        return;
                o.token = s->token;
                o.key = key;
        }
        s->r = hyb_bus_backend_open_host_with(s->db, &o, NULL, &s->be, &s->source, &s->where,
                                              &s->err);
        hyb_key_unref(key);
        if (s->r < 0)
                return;
        /* //...: the daemon serving the host store, else the broker of the cluster option
         * or $HYBRID_CLUSTER (hyb_bus_scope_open's rule) */
        s->r = hyb_scope_new(s->be, NULL, s->app, &s->sc);
        if (s->r >= 0 && hyb_bus_backend_get_bus(s->be)) {
                s->r = hyb_scope_set_backend(s->sc, HYB_SCOPE_CLUSTER, s->be);
        } else if (s->r >= 0 && (s->cluster || (getenv("HYBRID_CLUSTER") &&
                                                *getenv("HYBRID_CLUSTER")))) {
                s->r = hyb_cluster_backend_new(s->cluster, &s->cbe, &s->err);
                if (s->r >= 0)
                        s->r = hyb_scope_set_backend(s->sc, HYB_SCOPE_CLUSTER, s->cbe);
        }
}

/* An epoll fd readable while the host store's or the cluster backend's fd is. */
static int store_epoll(hn_store *s)
{
        struct epoll_event ev = { .events = EPOLLIN };
        int fds[2], i;

        if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
                return -errno;
        fds[0] = hyb_backend_get_fd(s->be);
        fds[1] = hyb_backend_get_fd(s->cbe);
        for (i = 0; i < 2; i++) {
                if (fds[i] < 0)
                        return fds[i];
                ev.data.fd = fds[i];
                if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0)
                        return -errno;
        }
        return s->epfd;
}

static void open_complete(napi_env env, napi_status status, void *data)
{
        hn_store *s = data;
        napi_value info, v;
        int fd;

        napi_delete_async_work(env, s->work);
        s->work = NULL;
        free_open_args(s);
        s->io.pending--;
        if (s->r >= 0) {
                fd = s->cbe ? store_epoll(s) : hyb_backend_get_fd(s->be);
                if (fd < 0 || hn_io_start(&s->io, fd) < 0) {
                        s->r = fd < 0 ? fd : -EIO;
                        snprintf(s->err.message, sizeof s->err.message,
                                 "cannot watch the store's fd");
                }
        }
        if (s->r < 0) {
                hn_io_close(&s->io);
                store_drop_backend(s);
                napi_reject_deferred(env, s->def, hn_error_new(env, s->r, 0, s->err.message));
        } else {
                napi_create_object(env, &info);
                napi_create_int32(env, s->source, &v);
                napi_set_named_property(env, info, "source", v);
                napi_create_string_utf8(env, s->where ? s->where : "", NAPI_AUTO_LENGTH, &v);
                napi_set_named_property(env, info, "where", v);
                napi_resolve_deferred(env, s->def, info);
        }
        s->def = NULL;
        hn_io_update_ref(&s->io);
}

/* storeOpen(storeObject, db, socket, app, runner, token, key, caFile, pin, cluster)
 * -> Promise<{source, where}> */
static napi_value js_open(napi_env env, napi_callback_info info)
{
        size_t argc = 10;
        napi_value argv[10];
        hn_store *s;

        if (!hn_get_args(env, info, &argc, argv, 10, "storeOpen: 10 arguments"))
                return NULL;
        if (!(s = calloc(1, sizeof *s))) {
                napi_throw_error(env, "ENOMEM", "out of memory");
                return NULL;
        }
        s->epfd = -1;
        s->io.process = store_process;
        s->io.get_events = store_get_events;
        s->io.get_timeout = store_get_timeout;
        s->io.on_broken = store_on_broken;
        s->io.release = store_release;
        s->db = hn_get_string(env, argv[1], true);
        s->path = hn_get_string(env, argv[2], true);
        if (!(s->app = hn_get_string(env, argv[3], false)) ||
            !(s->runner = hn_get_string(env, argv[4], false))) {
                free_open_args(s);
                free(s);
                return NULL;
        }
        s->token = hn_get_string(env, argv[5], true);
        s->key = hn_get_string(env, argv[6], true);
        s->ca_file = hn_get_string(env, argv[7], true);
        s->pin = hn_get_string(env, argv[8], true);
        s->cluster = hn_get_string(env, argv[9], true);
        if (hn_exception_pending(env)) { /* an option that is not a string, or with a NUL */
                free_open_args(s);
                free(s);
                return NULL;
        }
        if (napi_wrap(env, argv[0], s, store_finalize, NULL, NULL) != napi_ok) {
                free_open_args(s);
                free(s);
                hn_throw_last(env);
                return NULL;
        }
        return hn_io_open_async(&s->io, env, argv[0], "hybrid.Store", "hybrid.store",
                                open_execute, open_complete, s, &s->work, &s->def);
}

/* ------------------------------------------------------------ operations */

static void op_execute(napi_env env, void *data)
{
        hn_op *o = data;

        hyb_error_clear(&o->err);
        switch (o->op) {
        case OP_READ:
                o->r = hyb_backend_read(o->be, o->furi, HYB_READ_KEYED, &o->result, &o->err);
                break;
        case OP_WRITE:
                o->r = hyb_backend_write(o->be, o->furi, o->value, o->flags, &o->err);
                break;
        default:
                o->r = hyb_backend_delete(o->be, o->furi, o->flags, &o->err);
                break;
        }
}

static void op_complete(napi_env env, napi_status status, void *data)
{
        hn_op *o = data;
        hn_store *s = o->s;
        napi_value v;

        napi_delete_async_work(env, o->w);
        if (o->r < 0) {
                napi_reject_deferred(env, o->d, hn_error_new(env, o->r, 0, o->err.message));
        } else if (o->op == OP_READ) {
                v = hn_from_obj(env, o->result);
                if (!v)
                        napi_get_and_clear_last_exception(env, &v),
                                napi_reject_deferred(env, o->d, v);
                else
                        napi_resolve_deferred(env, o->d, v);
        } else {
                napi_resolve_deferred(env, o->d, hn_undefined(env));
        }
        hyb_obj_unref(o->result);
        hyb_obj_unref(o->value);
        hyb_furi_unref(o->furi);
        hyb_backend_unref(o->be);
        free(o);
        s->ops--;
        s->io.pending--;
        hn_io_update_ref(&s->io);
        store_drop_backend(s);
        /* messages the operation read off the connection wait for process: the daemon has
         * just answered, so process may wait for the lock of the others still running */
        if (s->ops == 0 || hyb_now_usec() - s->last_process >= STALE_USEC)
                hn_io_run_now(&s->io);
}

/* The backend of *furi (new reference in *ret): the host store's, or for //... the one
 * the router names (*furi is replaced by the target there); HYB_E_SCOPE naming what to set
 * when none serves //... */
static int store_route(hn_store *s, hyb_furi **furi, hyb_backend **ret, hyb_error *err)
{
        hyb_furi *t = NULL;
        int r;

        if (hyb_furi_get_scope(*furi) != HYB_SCOPE_CLUSTER) {
                *ret = hyb_backend_ref(s->be);
                return 0;
        }
        r = hyb_scope_route(s->sc, *furi, ret, &t, err);
        if (r < 0)
                return r;
        hyb_furi_unref(*furi);
        *furi = t;
        return 0;
}

/* storeOp(store, op, furi, value, transient) -> Promise */
static napi_value js_op(napi_env env, napi_callback_info info)
{
        size_t argc = 5;
        napi_value argv[5], promise, name;
        hn_store *s;
        hn_op *o;
        int32_t op = 0;
        bool transient = false;
        char *furi;
        int r;

        if (!hn_get_args(env, info, &argc, argv, 5, "storeOp: 5 arguments"))
                return NULL;
        if (!(s = get_store(env, argv[0], true)))
                return NULL;
        napi_get_value_int32(env, argv[1], &op);
        if (!(o = calloc(1, sizeof *o))) {
                napi_throw_error(env, "ENOMEM", "out of memory");
                return NULL;
        }
        o->s = s;
        o->op = op;
        napi_get_value_bool(env, argv[4], &transient);
        o->flags = transient ? HYB_WRITE_TRANSIENT : 0;
        if (!(furi = hn_get_string(env, argv[2], false)))
                goto fail;
        r = hyb_furi_parse(furi, (size_t)-1, NULL, &o->furi, &o->err);
        free(furi);
        if (r >= 0)
                r = store_route(s, &o->furi, &o->be, &o->err);
        if (r < 0) {
                hn_throw_code(env, r, &o->err);
                goto fail;
        }
        if (op == OP_WRITE && hn_to_obj(env, argv[3], &o->value) < 0)
                goto fail;
        if (napi_create_promise(env, &o->d, &promise) != napi_ok)
                goto fail;
        napi_create_string_utf8(env, "hybrid.store.op", NAPI_AUTO_LENGTH, &name);
        if (napi_create_async_work(env, NULL, name, op_execute, op_complete, o, &o->w) != napi_ok ||
            napi_queue_async_work(env, o->w) != napi_ok) {
                hn_throw_last(env);
                goto fail; /* the deferred is dropped with the promise */
        }
        s->ops++;
        s->io.pending++;
        hn_io_update_ref(&s->io);
        return promise;
fail:
        hyb_obj_unref(o->value);
        hyb_furi_unref(o->furi);
        hyb_backend_unref(o->be);
        free(o);
        hn_throw_last(env);
        return NULL;
}

/* ------------------------------------------------------------ watches */

static void on_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *userdata)
{
        hn_watch *w = userdata;
        napi_env env = w->s->io.env;
        napi_handle_scope hs;
        napi_value argv[5];

        napi_open_handle_scope(env, &hs);
        argv[0] = hn_io_self(&w->s->io);
        napi_create_uint32(env, w->id, &argv[1]);
        napi_create_string_utf8(env, hyb_furi_get_str(target), NAPI_AUTO_LENGTH, &argv[2]);
        argv[3] = hn_from_obj(env, payload);
        if (!argv[3]) {
                napi_value ex;
                napi_get_and_clear_last_exception(env, &ex);
                argv[3] = ex;
        }
        napi_get_boolean(env, retain, &argv[4]);
        if (argv[0])
                hn_dispatch(env, hn_get_env(env)->on_store_msg, 5, argv);
        napi_close_handle_scope(env, hs);
}

/* storeWatch(store, pattern, replay, id) -> slot */
static napi_value js_watch(napi_env env, napi_callback_info info)
{
        size_t argc = 4;
        napi_value argv[4], result = NULL;
        hn_store *s;
        hn_watch *w;
        hyb_furi *pattern = NULL;
        hyb_backend *be = NULL;
        hyb_slot *slot = NULL;
        hyb_error err;
        bool replay = false;
        char *text;
        int r;

        if (!hn_get_args(env, info, &argc, argv, 4, "storeWatch: 4 arguments"))
                return NULL;
        if (!(s = get_store(env, argv[0], true)) || !(text = hn_get_string(env, argv[1], false)))
                return NULL;
        hyb_error_clear(&err);
        r = hyb_furi_parse(text, (size_t)-1, NULL, &pattern, &err);
        free(text);
        if (r < 0) {
                hn_throw_code(env, r, &err);
                return NULL;
        }
        if ((r = store_route(s, &pattern, &be, &err)) < 0) {
                hyb_furi_unref(pattern);
                hn_throw_code(env, r, &err);
                return NULL;
        }
        napi_get_value_bool(env, argv[2], &replay);
        if (!(w = calloc(1, sizeof *w))) {
                hyb_backend_unref(be);
                hyb_furi_unref(pattern);
                napi_throw_error(env, "ENOMEM", "out of memory");
                return NULL;
        }
        w->s = s;
        napi_get_value_uint32(env, argv[3], &w->id);
        r = hyb_backend_subscribe(be, pattern, replay ? HYB_SUBSCRIBE_REPLAY : 0, on_msg, w,
                                  &slot, &err);
        hyb_backend_unref(be);
        hyb_furi_unref(pattern);
        if (r < 0) {
                free(w);
                hn_throw_code(env, r, &err);
                return NULL;
        }
        hyb_slot_set_destroy_callback(slot, free);
        result = hn_slot_wrap(env, slot);
        hn_io_kick(&s->io); /* the replay waits for process */
        return result;
}

static napi_value js_set_keep(napi_env env, napi_callback_info info)
{
        size_t argc = 2;
        napi_value argv[2];
        hn_store *s;
        uint32_t n = 0;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (!(s = get_store(env, argv[0], false)))
                return NULL;
        napi_get_value_uint32(env, argv[1], &n);
        if (!s->io.closed) {
                s->io.keep = n;
                hn_io_update_ref(&s->io);
        }
        return hn_undefined(env);
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
        size_t argc = 1;
        napi_value argv[1];
        hn_store *s;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (!(s = get_store(env, argv[0], false)))
                return NULL;
        if (s->be && !s->io.closed) {
                hn_io_close(&s->io);
                store_drop_backend(s);
        }
        return hn_undefined(env);
}

void hn_store_init(napi_env env, napi_value exports)
{
        HN_EXPORT_FN(env, exports, "storeOpen", js_open);
        HN_EXPORT_FN(env, exports, "storeOp", js_op);
        HN_EXPORT_FN(env, exports, "storeWatch", js_watch);
        HN_EXPORT_FN(env, exports, "storeSetKeep", js_set_keep);
        HN_EXPORT_FN(env, exports, "storeClose", js_close);
}
