/* SPDX-License-Identifier: MIT */
/*
 * bus.c - hyb_bus for Node: connect (on a worker thread: the handshake blocks),
 * asynchronous calls resolved from the loop, procedures with argument policies
 * (hyb_endpoint_register_method), events and subscriptions.
 */
#include "hybrid-node.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * One call in flight.  Its promise is index.js's: the call carries index.js's number for it
 * (id), and the answer goes to the onReply dispatcher (id, mode, value), which settles it
 * (no napi_deferred per call: creating and settling one cost more than the promise index.js
 * makes and settles in JS).  A call made with a handle (busCall's holder: a call the caller
 * may cancel) keeps its slot and is owned by the handle's external: on_reply leaves it to the
 * finalizer; a handle collected while the call is pending hands the slot to the bus
 * (floating) and on_reply frees the call.
 */
typedef struct hn_call {
        struct hn_bus *b;
        hyb_slot *slot; /* calls with a handle */
        uint32_t id;    /* index.js's number for the call */
        bool done;      /* settled: answered, failed or cancelled */
        bool detached;  /* the handle went while pending: on_reply frees */
        struct hn_call *next; /* in the bus's spare calls */
} hn_call;

/* Targets (endpoint and method) a bus keeps for busCallTo, at most this many */
#define HN_TARGETS 64
#define HN_SPARE_CALLS 16

typedef struct hn_bus {
        hn_io io; /* first: a hn_io * is a hn_bus * */
        hyb_bus *bus;
        struct hn_target {
                char *endpoint, *method;
        } targets[HN_TARGETS];
        unsigned n_targets;
        /* answered calls made without a handle, kept for the next ones (at most HN_SPARE_CALLS) */
        struct hn_call *spare;
        unsigned n_spare;
        /* connect, on the worker thread */
        char *path, *app, *runner, *token, *key, *ca_file, *pin;
        int conn_r;
        hyb_error conn_err;
        napi_deferred conn_def;
        napi_async_work conn_work;
} hn_bus;

typedef struct hn_req {
        hyb_bus_request *req; /* NULL once answered */
        hn_bus *b;
        uint32_t id;
} hn_req;

typedef struct hn_ud {
        hn_bus *b;
        uint32_t id; /* subscriptions */
        char name[]; /* procedures */
} hn_ud;

static int bus_process(hn_io *io)
{
        return hyb_bus_process(((hn_bus *)io)->bus);
}

static int bus_get_events(hn_io *io)
{
        return hyb_bus_get_events(((hn_bus *)io)->bus);
}

static int bus_get_timeout(hn_io *io, uint64_t *ret)
{
        return hyb_bus_get_timeout(((hn_bus *)io)->bus, ret);
}

static void bus_on_broken(hn_io *io, int r)
{
        hn_bus *b = (hn_bus *)io;
        napi_env env = io->env;
        const char *msg = NULL;
        int status = hyb_bus_get_close_reason(b->bus, &msg);
        napi_value argv[3];

        hyb_bus_close(b->bus); /* fails what is pending with 502 */
        hn_io_close(io);
        argv[0] = hn_io_self(io);
        if (!argv[0])
                return;
        napi_create_int32(env, status ? status : 502, &argv[1]);
        napi_create_string_utf8(env, msg && *msg ? msg : hyb_strerror(r), NAPI_AUTO_LENGTH,
                                &argv[2]);
        hn_dispatch(env, hn_get_env(env)->on_close, 3, argv);
}

static void free_conn_args(hn_bus *b)
{
        free(b->path);
        free(b->app);
        free(b->runner);
        free(b->token);
        free(b->ca_file);
        free(b->pin);
        if (b->key) {
                memset(b->key, 0, strlen(b->key));
                free(b->key);
        }
        b->path = b->app = b->runner = b->token = b->key = b->ca_file = b->pin = NULL;
}

static void bus_release(hn_io *io)
{
        hn_bus *b = (hn_bus *)io;
        free_conn_args(b);
        for (unsigned i = 0; i < b->n_targets; i++) {
                free(b->targets[i].endpoint);
                free(b->targets[i].method);
        }
        while (b->spare) {
                struct hn_call *c = b->spare;
                b->spare = c->next;
                free(c);
        }
        hyb_bus_unref(b->bus);
        free(b);
}

static void bus_finalize(napi_env env, void *data, void *hint)
{
        hn_bus *b = data;
        if (b->bus)
                hyb_bus_close(b->bus);
        hn_io_finalize(&b->io);
}

static hn_bus *get_bus(napi_env env, napi_value obj, bool open)
{
        hn_bus *b = NULL;

        if (napi_unwrap(env, obj, (void **)&b) != napi_ok || !b) {
                napi_throw_type_error(env, NULL, "not a hybrid Bus");
                return NULL;
        }
        if (open && (!b->bus || b->io.closed)) {
                napi_throw(env, hn_error_new(env, HYB_E_CLOSED, 0, "the bus is closed"));
                return NULL;
        }
        return b;
}

/* ------------------------------------------------------------ connect */

static void connect_execute(napi_env env, void *data)
{
        hn_bus *b = data;
        hyb_bus_connect_options o;
        hyb_key *key = NULL;

        hyb_error_clear(&b->conn_err);
        hyb_bus_connect_options_init(&o);
        o.path = b->path;
        o.app = b->app;
        o.runner = b->runner;
        o.ca_file = b->ca_file; /* wss:// only; NULL: $HYBRID_CA */
        o.pin = b->pin;
        if (b->token) {
                if (!b->key) {
                        b->conn_r = -EINVAL;
                        snprintf(b->conn_err.message, sizeof b->conn_err.message,
                                 "a token needs its holder's private key (key)");
                        return;
                }
                b->conn_r = hyb_key_load_memory(b->key, strlen(b->key), &key, &b->conn_err);
                if (b->conn_r < 0)
                        return;
                o.token = b->token;
                o.key = key;
        }
        b->conn_r = hyb_bus_connect_with(&o, &b->bus, &b->conn_err);
        hyb_key_unref(key);
}

static void connect_complete(napi_env env, napi_status status, void *data)
{
        hn_bus *b = data;
        napi_value v;

        napi_delete_async_work(env, b->conn_work);
        b->conn_work = NULL;
        free_conn_args(b);
        b->io.pending--;
        if (b->conn_r >= 0 && hn_io_start(&b->io, hyb_bus_get_fd(b->bus)) < 0) {
                b->conn_r = -EIO;
                snprintf(b->conn_err.message, sizeof b->conn_err.message,
                         "cannot watch the bus fd");
        }
        if (b->conn_r < 0) {
                hyb_bus_close(b->bus);
                hn_io_close(&b->io);
                napi_reject_deferred(env, b->conn_def,
                                     hn_error_new(env, b->conn_r, 0, b->conn_err.message));
        } else {
                napi_create_string_utf8(env, hyb_bus_get_endpoint_name(b->bus), NAPI_AUTO_LENGTH,
                                        &v);
                napi_resolve_deferred(env, b->conn_def, v);
        }
        b->conn_def = NULL;
        hn_io_update_ref(&b->io);
}

/* busHandle(busObject) -> an external for busCall and busCallJSON, which read it without the
 * property lookup of napi_unwrap.  It holds no reference: index.js keeps it on the Bus object
 * only (bus._h), so it cannot outlive the hn_bus, which is freed after that object. */
static napi_value js_handle(napi_env env, napi_callback_info info)
{
        size_t argc = 1;
        napi_value argv[1], ext;
        hn_bus *b;

        if (!hn_get_args(env, info, &argc, argv, 1, "busHandle: 1 argument") ||
            !(b = get_bus(env, argv[0], false)))
                return NULL;
        HN_CALL(env, napi_create_external(env, b, NULL, NULL, &ext));
        return ext;
}

/* busConnect(busObject, path, app, runner, token, key, caFile, pin) -> Promise<endpoint name> */
static napi_value js_connect(napi_env env, napi_callback_info info)
{
        size_t argc = 8;
        napi_value argv[8];
        hn_bus *b;

        if (!hn_get_args(env, info, &argc, argv, 8, "busConnect: 8 arguments"))
                return NULL;
        if (!(b = calloc(1, sizeof *b))) {
                napi_throw_error(env, "ENOMEM", "out of memory");
                return NULL;
        }
        b->io.process = bus_process;
        b->io.get_events = bus_get_events;
        b->io.get_timeout = bus_get_timeout;
        b->io.on_broken = bus_on_broken;
        b->io.release = bus_release;
        b->path = hn_get_string(env, argv[1], true);
        if (!(b->app = hn_get_string(env, argv[2], false)) ||
            !(b->runner = hn_get_string(env, argv[3], false))) {
                free_conn_args(b);
                free(b);
                return NULL;
        }
        b->token = hn_get_string(env, argv[4], true);
        b->key = hn_get_string(env, argv[5], true);
        b->ca_file = hn_get_string(env, argv[6], true);
        b->pin = hn_get_string(env, argv[7], true);
        if (hn_exception_pending(env)) { /* an option that is not a string, or with a NUL */
                free_conn_args(b);
                free(b);
                return NULL;
        }
        if (napi_wrap(env, argv[0], b, bus_finalize, NULL, NULL) != napi_ok) {
                free_conn_args(b);
                free(b);
                hn_throw_last(env);
                return NULL;
        }
        /* from here on the finalizer owns b */
        return hn_io_open_async(&b->io, env, argv[0], "hybrid.Bus", "hybrid.connect",
                                connect_execute, connect_complete, b, &b->conn_work,
                                &b->conn_def);
}

/* ------------------------------------------------------------ calls */


static void call_settled(hn_bus *b)
{
        b->io.pending--;
        if (b->io.pending == 0)
                hn_io_update_ref_soon(&b->io);
}

static void call_handle_finalize(napi_env env, void *data, void *hint)
{
        hn_call *c = data;

        if (!c->done) {
                hyb_slot_set_floating(c->slot, true); /* the call goes on without its handle */
                hyb_slot_unref(c->slot);
                c->slot = NULL;
                c->detached = true;
                return;
        }
        hyb_slot_unref(c->slot);
        free(c);
}

/* The modes of onReply(id, mode, value[, values...]) */
enum { REPLY_PARSE = 0, REPLY_VALUE = 1, REPLY_ERROR = 2, REPLY_RECORD = 3 };

static void on_reply(hyb_bus *bus, const hyb_bus_reply *rep, void *userdata)
{
        hn_call *c = userdata;
        hn_bus *b = c->b;
        napi_env env = b->io.env;
        napi_handle_scope hs;
        napi_value argv[3 + HN_RECORD_KEYS];
        int status = hyb_bus_reply_get_status(rep);
        int mode = REPLY_ERROR, n = 0;
        bool scope = hn_io_needs_scope(&b->io);

        if (scope)
                napi_open_handle_scope(env, &hs);
        if (status >= 200 && status < 300) {
                size_t len = 0;
                const void *body = hyb_bus_reply_get_body(rep, &len);
                bool text = false, binary = hyb_bus_reply_is_binary(rep);
                uint32_t shape = 0;
                /* a flat record: its values, made into the object by its shape's constructor */
                if (!binary && (n = hn_record_values(env, body, len, argv + 3, &shape)) >= 0 &&
                    napi_create_uint32(env, shape, &argv[2]) == napi_ok) {
                        mode = REPLY_RECORD;
                } else {
                        n = 0;
                        argv[2] = hn_from_body_or_text(env, body, len, binary, &text);
                        if (argv[2])
                                mode = text ? REPLY_PARSE : REPLY_VALUE;
                        else
                                napi_get_and_clear_last_exception(env, &argv[2]);
                }
        } else {
                argv[2] = hn_error_new(env, hyb_err_from_status(status), status,
                                       hyb_bus_reply_get_message(rep));
        }
        if (napi_create_uint32(env, c->id, &argv[0]) == napi_ok &&
            napi_create_int32(env, mode, &argv[1]) == napi_ok)
                hn_dispatch(env, hn_get_env(env)->on_reply, 3 + (size_t)n, argv);
        if (scope)
                napi_close_handle_scope(env, hs);
        c->done = true;
        call_settled(b);
        if (!c->slot && !c->detached && b->n_spare < HN_SPARE_CALLS) {
                c->next = b->spare; /* kept for the next call without a handle */
                b->spare = c;
                b->n_spare++;
        } else if (!c->slot || c->detached) {
                free(c);
        }
}

/* The bus of a call's first argument: index.js passes the bus's handle (busHandle); a Bus
 * object is unwrapped.  NULL (thrown) for a closed bus or anything else. */
static hn_bus *call_bus(napi_env env, napi_value v)
{
        hn_bus *b;

        if (napi_get_value_external(env, v, (void **)&b) == napi_ok && b) {
                if (!b->bus || b->io.closed) {
                        napi_throw(env, hn_error_new(env, HYB_E_CLOSED, 0, "the bus is closed"));
                        return NULL;
                }
                return b;
        }
        return get_bus(env, v, true);
}

/* Sends a call whose answer goes to onReply with id; with holder (not NULL), holder.handle is
 * set to the handle busCancel takes.  Returns false (thrown) when the library refuses it. */
static bool send_call(napi_env env, hn_bus *b, uint32_t id, const char *endpoint,
                      const char *method, const char *body, size_t len, uint32_t timeout,
                      napi_value holder)
{
        napi_value handle;
        hn_call *c;
        int r;

        if (!holder && b->spare) {
                c = b->spare;
                b->spare = c->next;
                b->n_spare--;
                memset(c, 0, sizeof *c);
        } else if (!(c = calloc(1, sizeof *c))) {
                napi_throw_error(env, "ENOMEM", "out of memory");
                return false;
        }
        c->b = b;
        c->id = id;
        r = hyb_bus_call_async(b->bus, endpoint, method, body, len, HYB_BODY_JSON, timeout,
                               on_reply, c, holder ? &c->slot : NULL);
        if (r < 0) {
                napi_throw(env, hn_error_new(env, r, 0, NULL));
                free(c);
                return false;
        }
        if (holder) {
                if (napi_create_external(env, c, call_handle_finalize, NULL, &handle) == napi_ok) {
                        /* from here the handle owns c (call_handle_finalize) */
                        napi_set_named_property(env, holder, "handle", handle);
                } else {
                        /* no handle to cancel with: the call goes on, on_reply frees it */
                        hyb_slot_set_floating(c->slot, true);
                        c->slot = hyb_slot_unref(c->slot);
                }
        }
        /* a call made from a continuation io_run runs: io_run rearms once */
        if (b->io.pending++ == 0)
                hn_io_update_ref_soon(&b->io);
        hn_io_rearm_soon(&b->io);
        return true;
}

/*
 * busCall(bus, id, endpoint, method, params, timeoutMs[, holder]) -> undefined: sends the
 * call; its answer goes to onReply with id (index.js's number for the call's promise).  With
 * a holder object, holder.handle is set to a handle busCancel takes.  busCallJSON is the same
 * with params already the JSON text of the mapping (index.js makes it for plain data).
 * Throws (nothing sent, onReply never runs) for a closed bus, bad arguments or a call the
 * library refuses.
 */
static napi_value call_common(napi_env env, napi_callback_info info, bool text)
{
        size_t argc = 7, len = 2;
        napi_value argv[7];
        hn_bus *b;
        char ep_buf[256], me_buf[128], js_buf[1024];
        char *endpoint = NULL, *method = NULL, *json = NULL;
        const char *body = "{}"; /* params undefined: no parameters */
        uint32_t timeout = 0, id = 0;
        napi_valuetype t;
        bool ok = false;

        if (!hn_get_args(env, info, &argc, argv, 6, "busCall: 6 arguments") ||
            !(b = call_bus(env, argv[0])))
                return NULL;
        if (napi_get_value_uint32(env, argv[1], &id) != napi_ok) {
                napi_throw_type_error(env, NULL, "busCall: the call's id must be a number");
                return NULL;
        }
        if (!(endpoint = hn_get_string_buf(env, argv[2], ep_buf, sizeof ep_buf)) ||
            !(method = hn_get_string_buf(env, argv[3], me_buf, sizeof me_buf)))
                goto out;
        if (text) {
                if (!(json = hn_get_string_buf(env, argv[4], js_buf, sizeof js_buf)))
                        goto out;
                len = strlen(json);
                body = json;
        } else if (napi_typeof(env, argv[4], &t) == napi_ok && t != napi_undefined) {
                if (!(json = hn_to_json(env, argv[4], &len)))
                        goto out;
                body = json;
        }
        napi_get_value_uint32(env, argv[5], &timeout);
        ok = send_call(env, b, id, endpoint, method, body, len, timeout,
                       argc >= 7 ? argv[6] : NULL);
out:
        if (endpoint != ep_buf)
                free(endpoint);
        if (method != me_buf)
                free(method);
        if (text) {
                if (json != js_buf)
                        free(json);
        } else {
                hyb_free(json);
        }
        if (!ok) {
                hn_throw_last(env); /* unless one is pending already */
                return NULL;
        }
        return hn_undefined(env);
}

static napi_value js_call(napi_env env, napi_callback_info info)
{
        return call_common(env, info, false);
}

static napi_value js_call_json(napi_env env, napi_callback_info info)
{
        return call_common(env, info, true);
}

/*
 * busTarget(bus, endpoint, method) -> a number busCallTo takes for this endpoint and method,
 * kept as long as the bus; -1 when the bus keeps HN_TARGETS already (index.js then passes
 * the strings).  Throws for a closed bus or arguments that are not strings.
 */
static napi_value js_target(napi_env env, napi_callback_info info)
{
        size_t argc = 3;
        napi_value argv[3], v;
        hn_bus *b;
        struct hn_target *tg;
        int n = -1;

        if (!hn_get_args(env, info, &argc, argv, 3, "busTarget: 3 arguments") ||
            !(b = call_bus(env, argv[0])))
                return NULL;
        if (b->n_targets < HN_TARGETS) {
                tg = &b->targets[b->n_targets];
                if (!(tg->endpoint = hn_get_string(env, argv[1], false)))
                        return NULL;
                if (!(tg->method = hn_get_string(env, argv[2], false))) {
                        free(tg->endpoint);
                        tg->endpoint = NULL;
                        return NULL;
                }
                n = (int)b->n_targets++;
        }
        HN_CALL(env, napi_create_int32(env, n, &v));
        return v;
}

/* busCallTo(bus, id, target, length, timeoutMs) -> undefined: busCallJSON to the endpoint and
 * method of target (busTarget's number) with the first length bytes of callBuffer as the
 * JSON text, without a holder. */
static napi_value js_call_to(napi_env env, napi_callback_info info)
{
        size_t argc = 5;
        napi_value argv[5];
        hn_bus *b;
        hn_env *e = hn_get_env(env);
        uint32_t timeout = 0, id = 0, target = UINT32_MAX, len = UINT32_MAX;

        if (!hn_get_args(env, info, &argc, argv, 5, "busCallTo: 5 arguments") ||
            !(b = call_bus(env, argv[0])))
                return NULL;
        if (napi_get_value_uint32(env, argv[1], &id) != napi_ok ||
            napi_get_value_uint32(env, argv[2], &target) != napi_ok ||
            napi_get_value_uint32(env, argv[3], &len) != napi_ok || target >= b->n_targets ||
            len > HN_CALL_BUFFER || !e || !e->call_buffer) {
                napi_throw_type_error(env, NULL, "busCallTo: bus, id, target, length, timeout");
                return NULL;
        }
        napi_get_value_uint32(env, argv[4], &timeout);
        if (!send_call(env, b, id, b->targets[target].endpoint, b->targets[target].method,
                       e->call_buffer, len, timeout, NULL)) {
                hn_throw_last(env);
                return NULL;
        }
        return hn_undefined(env);
}

/* busCancel(bus, handle) -> whether it ended a pending call (the broker tells the callee, as
 * builtin terminateCall; onReply will not run for it: index.js rejects its promise).  A
 * settled call: false. */
static napi_value js_cancel(napi_env env, napi_callback_info info)
{
        size_t argc = 2;
        napi_value argv[2], v;
        hn_call *c = NULL;
        hn_bus *b;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (argc < 2 || !(b = get_bus(env, argv[0], false)) ||
            napi_get_value_external(env, argv[1], (void **)&c) != napi_ok || !c) {
                if (argc < 2 || b)
                        napi_throw_type_error(env, NULL, "busCancel: bus, handle");
                return NULL;
        }
        if (c->done || c->detached) {
                napi_get_boolean(env, false, &v);
                return v;
        }
        c->done = true;
        c->slot = hyb_slot_unref(c->slot); /* cancels: on_reply will not run */
        call_settled(b);
        hn_io_rearm(&b->io);
        napi_get_boolean(env, true, &v);
        return v;
}

/* ------------------------------------------------------------ procedures */

static void req_finalize(napi_env env, void *data, void *hint)
{
        hn_req *q = data;
        if (q->req) {
                hyb_bus_request_set_cancel_handler(q->req, NULL, NULL); /* q goes now */
                hyb_bus_request_unref(q->req); /* unanswered: the library answers 500 */
        }
        free(q);
}

/* The broker cancelled a call we have not answered (its deadline, the caller's terminateCall). */
static void on_cancel(hyb_bus_request *req, void *userdata)
{
        hn_req *q = userdata;
        napi_env env = q->b->io.env;
        napi_handle_scope hs;
        napi_value argv[2];

        napi_open_handle_scope(env, &hs);
        argv[0] = hn_io_self(&q->b->io);
        napi_create_uint32(env, q->id, &argv[1]);
        if (argv[0])
                hn_dispatch(env, hn_get_env(env)->on_cancel, 2, argv);
        napi_close_handle_scope(env, hs);
}

static int on_method(hyb_bus_request *req, void *userdata)
{
        hn_ud *p = userdata;
        hn_bus *b = p->b;
        napi_env env = b->io.env;
        napi_handle_scope hs;
        napi_value argv[8];
        hn_req *q;
        size_t len = 0;
        const void *body;
        const char *transport = NULL, *principal = NULL;

        if (!(q = malloc(sizeof *q)))
                return -ENOMEM;
        napi_open_handle_scope(env, &hs);
        argv[0] = hn_io_self(&b->io);
        napi_create_string_utf8(env, p->name, NAPI_AUTO_LENGTH, &argv[1]);
        body = hyb_bus_request_get_body(req, &len);
        argv[2] = hn_from_body(env, body, len, hyb_bus_request_is_binary(req));
        if (!argv[0] || !argv[2]) {
                napi_value ex;
                bool pending = false;
                napi_is_exception_pending(env, &pending);
                if (pending)
                        napi_get_and_clear_last_exception(env, &ex);
                napi_close_handle_scope(env, hs);
                free(q);
                return HYB_E_BAD_REQUEST;
        }
        q->req = hyb_bus_request_ref(req);
        q->b = b;
        q->id = ++hn_get_env(env)->next_request;
        if (napi_create_external(env, q, req_finalize, NULL, &argv[3]) != napi_ok) {
                hyb_bus_request_unref(q->req);
                free(q);
                napi_close_handle_scope(env, hs);
                return -ENOMEM;
        }
        napi_create_string_utf8(env, hyb_bus_request_get_caller(req), NAPI_AUTO_LENGTH, &argv[4]);
        napi_create_uint32(env, q->id, &argv[5]);
        hyb_bus_request_get_caller_principal(req, &transport, &principal);
        napi_create_string_utf8(env, transport ? transport : "unix", NAPI_AUTO_LENGTH, &argv[6]);
        if (principal)
                napi_create_string_utf8(env, principal, NAPI_AUTO_LENGTH, &argv[7]);
        else
                napi_get_null(env, &argv[7]);
        /* runs while q holds the unanswered request, so q is alive then */
        hyb_bus_request_set_cancel_handler(req, on_cancel, q);
        hn_dispatch(env, hn_get_env(env)->on_request, 8, argv);
        napi_close_handle_scope(env, hs);
        return 0;
}

static hn_req *get_req(napi_env env, napi_value v)
{
        hn_req *q = NULL;
        if (napi_get_value_external(env, v, (void **)&q) != napi_ok || !q) {
                napi_throw_type_error(env, NULL, "not a request");
                return NULL;
        }
        return q;
}

/* busReply(bus, request, value) -> result code (0, or < 0 when the call is gone/closed) */
static napi_value js_reply(napi_env env, napi_callback_info info)
{
        size_t argc = 3, len = 0;
        napi_value argv[3], ret;
        hn_bus *b;
        hn_req *q;
        char *body;
        int r = HYB_E_GONE;

        if (!hn_get_args(env, info, &argc, argv, 3, "busReply: 3 arguments") ||
            !(b = get_bus(env, argv[0], false)) || !(q = get_req(env, argv[1])))
                return NULL;
        if (!(body = hn_to_json(env, argv[2], &len)))
                return NULL; /* the request is still unanswered: the caller answers an error */
        if (q->req) {
                r = hyb_bus_request_reply(q->req, 200, body, len, HYB_BODY_JSON);
                hyb_bus_request_set_cancel_handler(q->req, NULL, NULL);
                q->req = hyb_bus_request_unref(q->req);
                hn_io_rearm(&b->io);
        }
        hyb_free(body);
        napi_create_int32(env, r, &ret);
        return ret;
}

/* busReplyError(bus, request, status, message) -> result code */
static napi_value js_reply_error(napi_env env, napi_callback_info info)
{
        size_t argc = 4;
        napi_value argv[4], ret;
        hn_bus *b;
        hn_req *q;
        int32_t status = 500;
        char *msg;
        int r = HYB_E_GONE;

        if (!hn_get_args(env, info, &argc, argv, 4, "busReplyError: 4 arguments"))
                return NULL;
        if (!(b = get_bus(env, argv[0], false)) || !(q = get_req(env, argv[1])))
                return NULL;
        napi_get_value_int32(env, argv[2], &status);
        if (status < 300 || status > 599)
                status = 500;
        if (!(msg = hn_get_string(env, argv[3], false)))
                return NULL;
        if (q->req) {
                r = hyb_bus_request_reply_error(q->req, status, msg);
                hyb_bus_request_set_cancel_handler(q->req, NULL, NULL);
                q->req = hyb_bus_request_unref(q->req);
                hn_io_rearm(&b->io);
        }
        free(msg);
        napi_create_int32(env, r, &ret);
        return ret;
}

static hn_ud *ud_new(hn_bus *b, const char *name, uint32_t id)
{
        size_t n = name ? strlen(name) + 1 : 1;
        hn_ud *u = calloc(1, sizeof *u + n);
        if (!u)
                return NULL;
        u->b = b;
        u->id = id;
        if (name)
                memcpy(u->name, name, n);
        return u;
}

/* busProcedure(bus, name, [[key, type, required]...], forHost, forApp) -> slot */
static napi_value js_procedure(napi_env env, napi_callback_info info)
{
        size_t argc = 5;
        napi_value argv[5], result = NULL;
        hn_bus *b;
        char *name = NULL, *for_host = NULL, *for_app = NULL;
        hyb_arg_policy *pol = NULL;
        uint32_t n = 0, i;
        hyb_slot *slot = NULL;
        hyb_error err;
        hn_ud *u = NULL;
        int r;

        if (!hn_get_args(env, info, &argc, argv, 5, "busProcedure: 5 arguments"))
                return NULL;
        if (!(b = get_bus(env, argv[0], true)) || !(name = hn_get_string(env, argv[1], false)))
                return NULL;
        napi_get_array_length(env, argv[2], &n);
        pol = calloc(n ? n : 1, sizeof *pol);
        if (!pol)
                goto out;
        for (i = 0; i < n; i++) {
                napi_value e, k, t, req;
                int32_t type = 0;
                bool required = false;
                napi_get_element(env, argv[2], i, &e);
                napi_get_element(env, e, 0, &k);
                napi_get_element(env, e, 1, &t);
                napi_get_element(env, e, 2, &req);
                if (!(pol[i].key = hn_get_string(env, k, false)))
                        goto out;
                napi_get_value_int32(env, t, &type);
                napi_get_value_bool(env, req, &required);
                pol[i].type = (hyb_json_type)type;
                pol[i].required = required;
        }
        for_host = hn_get_string(env, argv[3], true);
        for_app = hn_get_string(env, argv[4], true);
        /* NULL is also an access list refused (a NUL in it): never "no list" then */
        if (hn_exception_pending(env) || !(u = ud_new(b, name, 0)))
                goto out;
        hyb_error_clear(&err);
        r = hyb_endpoint_register_method(b->bus, name, pol, n, for_host, for_app, 0, on_method, u,
                                         &slot, &err);
        if (r < 0) {
                hn_throw_code(env, r, &err);
                free(u);
        } else {
                hyb_slot_set_destroy_callback(slot, free);
                result = hn_slot_wrap(env, slot);
        }
        hn_io_rearm(&b->io);
out:
        if (pol)
                for (i = 0; i < n; i++)
                        free((char *)pol[i].key);
        free(pol);
        free(name);
        free(for_host);
        free(for_app);
        if (!result)
                hn_throw_last(env);
        return result;
}

/* ------------------------------------------------------------ events */

static void on_event(hyb_bus *bus, const hyb_bus_event *ev, void *userdata)
{
        hn_ud *u = userdata;
        napi_env env = u->b->io.env;
        napi_handle_scope hs;
        napi_value argv[5];
        size_t len = 0;
        const void *body;

        napi_open_handle_scope(env, &hs);
        argv[0] = hn_io_self(&u->b->io);
        napi_create_uint32(env, u->id, &argv[1]);
        napi_create_string_utf8(env, hyb_bus_event_get_source(ev), NAPI_AUTO_LENGTH, &argv[2]);
        napi_create_string_utf8(env, hyb_bus_event_get_bubble(ev), NAPI_AUTO_LENGTH, &argv[3]);
        body = hyb_bus_event_get_body(ev, &len);
        argv[4] = hn_from_body(env, body, len, hyb_bus_event_is_binary(ev));
        if (!argv[4]) {
                napi_value ex;
                napi_get_and_clear_last_exception(env, &ex);
                argv[4] = ex; /* the subscriber sees what could not be read */
        }
        if (argv[0])
                hn_dispatch(env, hn_get_env(env)->on_event, 5, argv);
        napi_close_handle_scope(env, hs);
}

/* busSubscribe(bus, endpointGlob, bubbleGlob, id) -> slot */
static napi_value js_subscribe(napi_env env, napi_callback_info info)
{
        size_t argc = 4;
        napi_value argv[4], result = NULL;
        hn_bus *b;
        char *ep = NULL, *bubble = NULL;
        uint32_t id = 0;
        hyb_slot *slot = NULL;
        hyb_error err;
        hn_ud *u = NULL;
        int r;

        if (!hn_get_args(env, info, &argc, argv, 4, "busSubscribe: 4 arguments"))
                return NULL;
        if (!(b = get_bus(env, argv[0], true)))
                return NULL;
        if (!(ep = hn_get_string(env, argv[1], false)) ||
            !(bubble = hn_get_string(env, argv[2], false)))
                goto out;
        napi_get_value_uint32(env, argv[3], &id);
        if (!(u = ud_new(b, NULL, id)))
                goto out;
        hyb_error_clear(&err);
        r = hyb_bus_subscribe(b->bus, ep, bubble, on_event, u, &slot, &err);
        if (r < 0) {
                hn_throw_code(env, r, &err);
                free(u);
        } else {
                hyb_slot_set_destroy_callback(slot, free);
                result = hn_slot_wrap(env, slot);
        }
        hn_io_rearm(&b->io);
out:
        free(ep);
        free(bubble);
        if (!result)
                hn_throw_last(env);
        return result;
}

/* busRegisterEvent(bus, bubble, forHost, forApp, cluster) -> slot; cluster true:
 * HYB_EVENT_CLUSTER (fires also go to the other hosts of the daemon's cluster) */
static napi_value js_register_event(napi_env env, napi_callback_info info)
{
        size_t argc = 5;
        napi_value argv[5], result = NULL;
        hn_bus *b;
        char *bubble = NULL, *for_host = NULL, *for_app = NULL;
        hyb_slot *slot = NULL;
        hyb_error err;
        bool cluster = false;
        int r;

        if (!hn_get_args(env, info, &argc, argv, 5, "busRegisterEvent: 5 arguments"))
                return NULL;
        if (!(b = get_bus(env, argv[0], true)) || !(bubble = hn_get_string(env, argv[1], false)))
                return NULL;
        for_host = hn_get_string(env, argv[2], true);
        for_app = hn_get_string(env, argv[3], true);
        napi_get_value_bool(env, argv[4], &cluster);
        hyb_error_clear(&err);
        /* NULL is also an access list refused (a NUL in it): never "no list" then */
        if (hn_exception_pending(env))
                r = 0;
        else if ((r = hyb_bus_register_event_flags(b->bus, bubble, for_host, for_app,
                                                   cluster ? HYB_EVENT_CLUSTER : 0, &slot,
                                                   &err)) < 0)
                hn_throw_code(env, r, &err);
        else
                result = hn_slot_wrap(env, slot);
        hn_io_rearm(&b->io);
        free(bubble);
        free(for_host);
        free(for_app);
        return result;
}

/* busFire(bus, bubble, value): one-way */
static napi_value js_fire(napi_env env, napi_callback_info info)
{
        size_t argc = 3, len = 0;
        napi_value argv[3];
        hn_bus *b;
        char *bubble, *body;
        int r;

        if (!hn_get_args(env, info, &argc, argv, 3, "busFire: 3 arguments"))
                return NULL;
        if (!(b = get_bus(env, argv[0], true)) || !(bubble = hn_get_string(env, argv[1], false)))
                return NULL;
        if (!(body = hn_to_json(env, argv[2], &len))) {
                free(bubble);
                return NULL;
        }
        r = hyb_bus_fire(b->bus, bubble, body, len, HYB_BODY_JSON, NULL, NULL);
        hyb_free(body);
        free(bubble);
        hn_io_rearm(&b->io);
        if (r < 0) {
                hn_throw_code(env, r, NULL);
                return NULL;
        }
        return hn_undefined(env);
}

/* busSetKeep(bus, n): registrations that keep the process alive */
static napi_value js_set_keep(napi_env env, napi_callback_info info)
{
        size_t argc = 2;
        napi_value argv[2];
        hn_bus *b;
        uint32_t n = 0;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (!(b = get_bus(env, argv[0], false)))
                return NULL;
        napi_get_value_uint32(env, argv[1], &n);
        if (!b->io.closed) {
                b->io.keep = n;
                hn_io_update_ref(&b->io);
        }
        return hn_undefined(env);
}

/* busClose(bus): pending calls fail with 502, handles are closed */
static napi_value js_close(napi_env env, napi_callback_info info)
{
        size_t argc = 1;
        napi_value argv[1];
        hn_bus *b;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (!(b = get_bus(env, argv[0], false)))
                return NULL;
        if (b->bus && !b->io.closed) {
                hn_io_close(&b->io);
                hyb_bus_close(b->bus);
        }
        return hn_undefined(env);
}

void hn_bus_init(napi_env env, napi_value exports)
{
        napi_value ab, u8;
        void *data = NULL;
        hn_env *e = hn_get_env(env);

        /* callBuffer: its memory is outside the JS heap, so it does not move (an
         * ArrayBuffer made here, not a small typed array V8 may keep on its heap); the
         * reference keeps it as long as the environment */
        if (e && napi_create_arraybuffer(env, HN_CALL_BUFFER, &data, &ab) == napi_ok &&
            napi_create_typedarray(env, napi_uint8_array, HN_CALL_BUFFER, ab, 0, &u8) == napi_ok &&
            napi_create_reference(env, ab, 1, &e->call_buffer_ref) == napi_ok) {
                e->call_buffer = data;
                napi_set_named_property(env, exports, "callBuffer", u8);
        }
        HN_EXPORT_FN(env, exports, "busConnect", js_connect);
        HN_EXPORT_FN(env, exports, "busHandle", js_handle);
        HN_EXPORT_FN(env, exports, "busCall", js_call);
        HN_EXPORT_FN(env, exports, "busCallJSON", js_call_json);
        HN_EXPORT_FN(env, exports, "busTarget", js_target);
        HN_EXPORT_FN(env, exports, "busCallTo", js_call_to);
        HN_EXPORT_FN(env, exports, "busCancel", js_cancel);
        HN_EXPORT_FN(env, exports, "busReply", js_reply);
        HN_EXPORT_FN(env, exports, "busReplyError", js_reply_error);
        HN_EXPORT_FN(env, exports, "busProcedure", js_procedure);
        HN_EXPORT_FN(env, exports, "busSubscribe", js_subscribe);
        HN_EXPORT_FN(env, exports, "busRegisterEvent", js_register_event);
        HN_EXPORT_FN(env, exports, "busFire", js_fire);
        HN_EXPORT_FN(env, exports, "busSetKeep", js_set_keep);
        HN_EXPORT_FN(env, exports, "busClose", js_close);
}
