/* SPDX-License-Identifier: MIT */
/*
 * hybrid-node.h - internals shared by the files of the Node-API addon.
 *
 * The addon is built for Node-API level 8 (NAPI_VERSION below): one binary serves
 * every Node release that offers that level (12.22, 14.17, 16 and later).  index.js is the
 * public layer; the functions here are its private `native` object.
 */
#ifndef HYBRID_NODE_H
#define HYBRID_NODE_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <stdbool.h>
#include <stdint.h>

#include <hybrid/bus.h>
#include <hybrid/bus-store.h>
#include <hybrid/common.h>
#include <hybrid/endpoint.h>
#include <hybrid/mmadt.h>
#include <hybrid/obj.h>
#include <hybrid/store.h>
#include <hybrid/token.h>

/* Record shapes kept per environment, and members a record of the shortcut may have
 * (hn_record_values) */
#define HN_SHAPES 64
#define HN_RECORD_KEYS 8
/* The size of the call buffer (hn_env.call_buffer) */
#define HN_CALL_BUFFER 4096

/* Per-environment data: the JS classes and dispatchers index.js hands over in setup(). */
typedef struct hn_env {
        napi_ref hybrid_error; /* class HybridError(message, status, code) */
        napi_ref uri;          /* class Uri(text) */
        napi_ref typed;        /* class Typed(type, value) */
        napi_ref real;         /* class Real(number) */
        napi_ref on_request;   /* (bus, method, params, request, caller, id, transport, principal) */
        napi_ref on_cancel;    /* (bus, id): the broker cancelled request id */
        napi_ref on_event;     /* (bus, id, source, bubble, data) */
        napi_ref on_store_msg; /* (store, id, furi, value, retain) */
        napi_ref on_close;     /* (bus or store, status, message) */
        napi_ref object_proto; /* Object.prototype: plain objects take the fast path */
        napi_ref map_cls;      /* Map */
        napi_ref json_parse;   /* JSON.parse: bodies it reads as the mapping does */
        napi_ref on_reply;     /* (id, mode, value, ...): a call's answer (bus.c on_reply) */
        napi_ref on_shape;     /* (shape, keys): a record shape hn_record_values saw first */
        uint32_t next_request; /* ids of incoming requests, for on_cancel */
        /* the record shapes handed to onShape (hn_record_values): key lists, at most HN_SHAPES */
        struct hn_shape {
                uint32_t hash;
                uint32_t len;
                char *keys; /* the keys joined with ',' */
        } shapes[HN_SHAPES];
        unsigned n_shapes, last_shape;
        /* callBuffer (HN_CALL_BUFFER bytes, outside the JS heap): index.js writes a call's
         * JSON text there for busCallTo */
        char *call_buffer;
        napi_ref call_buffer_ref;
} hn_env;

hn_env *hn_get_env(napi_env env);

/* Checks a napi_status; on failure throws (unless an exception is pending) and returns NULL. */
#define HN_CALL(env, call)                                                                         \
        do {                                                                                       \
                if ((call) != napi_ok) {                                                           \
                        hn_throw_last(env);                                                        \
                        return NULL;                                                               \
                }                                                                                  \
        } while (0)

void hn_throw_last(napi_env env);
/* Whether a JavaScript exception is pending (a getter threw, an argument was refused) */
bool hn_exception_pending(napi_env env);
/* A HybridError for a library code (status from the code unless status > 0). */
napi_value hn_error_new(napi_env env, int code, int status, const char *message);
void hn_throw_code(napi_env env, int code, const hyb_error *err);
napi_value hn_undefined(napi_env env);

/* Values <-> objs (doc/obj.md's mapping).  to_obj throws and returns < 0 on failure. */
int hn_to_obj(napi_env env, napi_value v, hyb_obj **ret);
napi_value hn_from_obj(napi_env env, const hyb_obj *o);
/* A JSON body (or binary) to a JS value; on a parse error a HybridError is thrown. */
napi_value hn_from_body(napi_env env, const void *body, size_t len, bool binary);
/*
 * hn_from_body for a caller that runs JSON.parse itself (index.js, on a call's answer): when
 * JSON.parse reads the body as the mapping does, returns the body as a string and sets *text
 * (JSON.parse of it is the value; should JSON.parse refuse it, fromJSON gives the library's
 * error); else returns hn_from_body's value and *text is false.  NULL when an exception is
 * thrown.
 */
napi_value hn_from_body_or_text(napi_env env, const void *body, size_t len, bool binary,
                                bool *text);
/*
 * A call's answer that is a flat record, read without JSON.parse: when body is a JSON object
 * of at most HN_RECORD_KEYS members whose keys are names ([A-Za-z_][A-Za-z0-9_-]*, at most 64
 * characters, no repeats, not __proto__) and whose values are ASCII strings without escapes
 * that do not start with '@', integers of at most 15 digits other than -0, true, false or
 * null (what JSON.parse and the mapping read alike), stores the members' values in vals (in
 * the body's order), the record's shape number in *shape and returns how many there are.
 * The shape (the list of keys) is handed to the onShape dispatcher the first time it is seen,
 * so the package makes one constructor per shape; at most HN_SHAPES shapes are kept per
 * environment, and a record of a new shape after that returns -1 (the caller takes the other
 * way).  Returns -1 for any other body, with nothing thrown.
 */
int hn_record_values(napi_env env, const char *body, size_t len, napi_value *vals,
                     uint32_t *shape);
/* A JS value as JSON text (hyb_free it); throws and returns NULL on failure. */
char *hn_to_json(napi_env env, napi_value v, size_t *ret_len);

/*
 * Reads a call's arguments: at most *argc into argv (*argc becomes how many were passed;
 * napi fills the rest of argv with undefined).  With fewer than min, throws a TypeError
 * with usage as its message.  Returns false when an exception is pending.
 */
bool hn_get_args(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                 size_t min, const char *usage);
/* Argument helpers: a string argument (malloc'd; NULL for null/undefined when optional). */
char *hn_get_string(napi_env env, napi_value v, bool optional);
/* A string argument into buf (size n) when it fits, else a malloc'd copy: free it when it is
 * not buf.  NULL (a TypeError thrown) for a value that is not a string. */
char *hn_get_string_buf(napi_env env, napi_value v, char *buf, size_t n);
/* Calls a dispatcher with a fresh handle scope; an exception becomes uncaughtException. */
void hn_dispatch(napi_env env, napi_ref fn, size_t argc, napi_value *argv);

/* Slots handed to JS: an external whose finalizer drops the slot. */
napi_value hn_slot_wrap(napi_env env, hyb_slot *slot);

void hn_bus_init(napi_env env, napi_value exports);
void hn_store_init(napi_env env, napi_value exports);
void hn_token_init(napi_env env, napi_value exports);

/*
 * The libuv part shared by buses and stores: the fd watched with a uv_poll_t, the
 * library's deadline with a uv_timer_t.  The handles are unref'd (like
 * net.Socket.unref) while nothing is pending and nothing is registered, so a script
 * ends by itself; while `pending` (calls, operations) or `keep` (procedures,
 * subscriptions, watches) is non-zero they keep the loop alive and the JS object is
 * held strongly.
 */
typedef struct hn_io hn_io;
struct hn_io {
        uv_poll_t poll;
        uv_timer_t timer;
        napi_env env;
        napi_ref self; /* the JS object (weak while idle) */
        napi_async_context actx;
        int uv_events;     /* what is polled now; 0 none */
        uint64_t deadline; /* what the timer is set for; UINT64_MAX none */
        int open_handles;
        bool started, closed, finalized, strong;
        bool woke_readable; /* this run was started by the fd being readable (or run_now) */
        bool running;       /* inside io_run: it rearms and updates the refs when it ends */
        unsigned shared_scope; /* answers dispatched in io_run's handle scope this run */
        unsigned keep, pending;
        int (*process)(hn_io *io); /* one step: > 0 more, 0 idle, < 0 broken */
        int (*get_events)(hn_io *io);
        int (*get_timeout)(hn_io *io, uint64_t *ret_usec);
        void (*on_broken)(hn_io *io, int r); /* in a callback scope */
        void (*release)(hn_io *io);          /* frees the containing struct */
};

int hn_io_init(hn_io *io, napi_env env, napi_value self, const char *resource_name);
/*
 * Starts the async work that connects or opens the handle of io (self its JS object):
 * hn_io_init with resource_name, a promise (its deferred in *def, for complete to settle),
 * the work (named work_name, in *work, queued) holding io pending until complete undoes
 * that.  Returns the promise; throws and returns NULL on failure.
 */
napi_value hn_io_open_async(hn_io *io, napi_env env, napi_value self, const char *resource_name,
                            const char *work_name, napi_async_execute_callback execute,
                            napi_async_complete_callback complete, void *data,
                            napi_async_work *work, napi_deferred *def);
/* Starts watching fd (after a successful connect/open). */
int hn_io_start(hn_io *io, int fd);
/* Re-reads events and deadline from the library and updates poll and timer. */
void hn_io_rearm(hn_io *io);
/*
 * Whether a dispatch from io's process (a call's answer) needs its own handle scope: not
 * inside io_run, whose handle scope ends with the run, for the first HN_SHARED_SCOPE ones of
 * a run (a run dispatches one packet a step, but a step may expire many calls at once).
 */
#define HN_SHARED_SCOPE 64
static inline bool hn_io_needs_scope(hn_io *io)
{
        return !io->running || ++io->shared_scope > HN_SHARED_SCOPE;
}
/* hn_io_rearm, except inside io_run (a call made from a callback or a continuation that
 * io_run's callback scope runs), where io_run rearms once when it ends. */
void hn_io_rearm_soon(hn_io *io);
/* Runs process now, from the loop thread but outside process (an async work's completion);
 * woke_readable is set meanwhile, as when the fd woke it. */
void hn_io_run_now(hn_io *io);
/* Runs process soon from the loop (a zero timer): after work done elsewhere. */
void hn_io_kick(hn_io *io);
void hn_io_update_ref(hn_io *io);
/* hn_io_update_ref, except inside io_run, which updates the refs once when it ends (a call
 * answered and the next one made in the same run toggle nothing). */
void hn_io_update_ref_soon(hn_io *io);
/* Stops watching and closes the handles (idempotent). */
void hn_io_close(hn_io *io);
/* The JS object went away: after the handles are closed, release runs. */
void hn_io_finalize(hn_io *io);
/* The JS object of io (NULL when collected) */
napi_value hn_io_self(hn_io *io);

#define HN_EXPORT_FN(env, exports, name, fn)                                                       \
        do {                                                                                       \
                napi_value f_;                                                                     \
                napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f_);                  \
                napi_set_named_property(env, exports, name, f_);                                   \
        } while (0)

#endif
