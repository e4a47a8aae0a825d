/* SPDX-License-Identifier: MIT */
/*
 * hybrid/bus.h - the data bus client (doc/bus.md; the wire protocol: doc/protocol.md).
 *
 * A hyb_bus is one connection to a broker, authenticated as the endpoint
 * `@localhost/<app>/<runner>`.  Through it an app calls procedures (sync or
 * async), offers procedures, registers and fires events and subscribes to
 * events.  The model is sd-bus:
 *   - opaque, reference-counted handles; every function returns an int (< 0 is
 *     -errno or HYB_E_*, see common.h) and takes an optional `hyb_error *reterr`;
 *   - every registration (procedure, event, subscription, async call, monitor)
 *     returns a hyb_slot: unref it to unregister / cancel;
 *   - no hidden threads, no global loop: integrate the connection in any loop
 *     with get_fd / get_events / get_timeout / process, use hyb_bus_wait for
 *     simple programs, or hyb_bus_attach_event for a libevent base.
 * One connection is used from one thread at a time.
 *
 * Bus statuses (200, 404, 504...) map to HYB_E_* codes with hyb_err_from_status();
 * a failed call returns that code and puts the callee's message in *reterr.
 *
 * Bodies are opaque bytes: JSON text by default, raw binary with HYB_BODY_BINARY.
 * The broker forwards them unparsed; the limit is the broker's max_body
 * (default 16 MiB, see hyb_bus_get_max_body).
 */
#ifndef HYBRID_BUS_H
#define HYBRID_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

#include <hybrid/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base; /* libevent; the header does not include libevent */

typedef struct hyb_bus hyb_bus;
typedef struct hyb_bus_reply hyb_bus_reply;
typedef struct hyb_bus_request hyb_bus_request;
typedef struct hyb_bus_event hyb_bus_event;

/* Body flags (the `flags` argument of calls, replies and fires). */
typedef enum hyb_body_flags {
        HYB_BODY_JSON = 0,
        HYB_BODY_BINARY = 1,
} hyb_body_flags;

/* The broker's own endpoint and the name of its builtin methods' endpoint. */
#define HYB_BUS_BUILTIN_ENDPOINT "@localhost/org.hybridos.bus/builtin"

/* Timeout used when a call passes 0. */
enum { HYB_BUS_DEFAULT_TIMEOUT_MS = 30000 };

/* Events for hyb_bus_get_events (same values as poll(2)'s POLLIN / POLLOUT). */
typedef enum hyb_bus_events {
        HYB_BUS_EVENT_IN = 0x001,
        HYB_BUS_EVENT_OUT = 0x004,
} hyb_bus_events;

/* ------------------------------------------------------------------ connection */

/*
 * The default socket path: $XDG_RUNTIME_DIR/hybrid/bus.sock when the variable is
 * set, else /run/hybrid/bus.sock.  *ret_path is freed with hyb_free().
 * Errors: -ENOMEM.
 */
HYB_EXPORT int hyb_bus_get_default_socket(char **ret_path);

/*
 * Connects to the broker at `path` (NULL: the socket named by the environment
 * variable HYBRID_BUS when it is set and not empty (ignored in setuid programs),
 * else hyb_bus_get_default_socket()); `path` (or $HYBRID_BUS) may also be a
 * WebSocket URL, ws://HOST[:PORT][/PATH] or wss://HOST[:PORT][/PATH] (the path
 * defaults to /bus/ws), which needs a token and, for wss://, $HYBRID_CA or
 * $HYBRID_PIN to verify the server (see hyb_bus_connect_with), and
 * authenticates as @localhost/<app>/<runner> by local uid policy, or, when
 * $HYBRID_TOKEN and $HYBRID_KEY name a token file and its holder's private key
 * file (ignored in setuid programs), with that token (hyb_bus_connect_with; one
 * of them alone, or a file that cannot be used: HYB_E_UNAUTHORIZED).  Blocks until
 * the handshake is done (bounded by the broker's auth timeout).
 * On success *ret holds the only reference (release with hyb_bus_unref).
 * Errors: -EINVAL (NULL app/runner/ret), HYB_E_NOT_ACCEPTABLE (bad app or runner
 * name, or a reserved one), HYB_E_CONFLICT (endpoint name already connected),
 * HYB_E_FORBIDDEN (this uid may not claim the app), HYB_E_UNAVAILABLE (no broker
 * listening, its listen queue full, too many connections), HYB_E_UPGRADE_REQUIRED
 * (protocol version), HYB_E_PROTOCOL, -errno from socket calls.  *reterr says which.
 */
HYB_EXPORT int hyb_bus_connect(const char *path, const char *app, const char *runner, hyb_bus **ret,
                               hyb_error *reterr);

typedef struct hyb_key hyb_key; /* hybrid/token.h */

/* What hyb_bus_connect_with connects as (a size-stamped struct: set size, or use _init). */
typedef struct hyb_bus_connect_options {
        size_t size;            /* sizeof(hyb_bus_connect_options) */
        const char *path;       /* the broker's socket; NULL: as hyb_bus_connect */
        const char *app;        /* the app name to claim (required) */
        const char *runner;     /* the runner name (required) */
        const char *token;      /* a security token (text, doc/token.md) to present; NULL:
                                 * the uid policy alone */
        const hyb_key *key;     /* the token's last holder key, with its private part
                                 * (required with token): signs the proof of possession */
        /* For a wss:// path (ignored otherwise): how the server's certificate is verified.
         * At least one of the two, else both from $HYBRID_CA and $HYBRID_PIN; with
         * neither the connect fails (-EINVAL): verification cannot be turned off. */
        const char *ca_file;    /* PEM file of the CA certificates to trust; the URL's host
                                 * must be one of the certificate's names (a DNS name, or an
                                 * IP address name for an address) */
        const char *pin;        /* SHA-256 of the server's DER SubjectPublicKeyInfo: base64
                                 * ("sha256//" prefix allowed, as curl's --pinnedpubkey) or
                                 * 64 hex digits.  Alone it is the whole trust (a self-signed
                                 * certificate passes, validity dates are still checked);
                                 * with ca_file both must hold */
} hyb_bus_connect_options;

/*
 * Initialises the `size` bytes at opts, the struct as the caller's header declares it
 * (sizeof *opts where it is compiled): stamps `size` and zeroes the rest.
 * Nothing beyond `size` is written; nothing at all for NULL or a size too small to hold
 * the size member.  Call it through the macro hyb_bus_connect_options_init(opts) below.
 */
HYB_EXPORT void hyb_bus_connect_options_init_sized(hyb_bus_connect_options *opts, size_t size);
/*
 * Deprecated: the symbol of programs built before hyb_bus_connect_options_init_sized.  It
 * cannot know the caller's size and writes this library's sizeof(hyb_bus_connect_options).
 * In source, hyb_bus_connect_options_init(opts) is this macro, which passes the caller's size.
 */
HYB_EXPORT void hyb_bus_connect_options_init(hyb_bus_connect_options *opts);
#define hyb_bus_connect_options_init(opts) \
        hyb_bus_connect_options_init_sized((opts), sizeof *(opts))

/*
 * Connects as hyb_bus_connect does, with the options of opts (borrowed for the call
 * only).  With a token, the handshake proves possession of opts->key (doc/token.md
 * "Handshake"): the broker's nonce, a fresh client nonce, the broker's audience, the
 * hash of the token and this process's effective uid are signed; when the broker offers it
 * (doc/protocol.md "Handshake"), the token is sent ahead of the proof, so the broker checks
 * it while the proof is signed.  Besides the errors
 * of hyb_bus_connect: HYB_E_UNAUTHORIZED (the broker refused the credentials: no
 * token where one is required, a token it does not accept, a proof that does not
 * hold; or a token without a private key here), -EINVAL (NULL opts/ret, size 0, a
 * token without key).  *reterr says which.
 * A ws:// or wss:// path (doc/bus.md "Remote brokers"): TCP to HOST (getaddrinfo,
 * IPv4 or IPv6), TLS for wss:// verified by opts->ca_file and/or opts->pin (neither:
 * $HYBRID_CA and $HYBRID_PIN), the RFC 6455 upgrade with the subprotocol
 * hybrid.bus.v1, all within 15 s; then the same handshake with the channel binding
 * "ws-none" (ws://) or the TLS session's "tls-exporter:..." (wss://).  A token is
 * required.  Further errors: HYB_E_UNAUTHORIZED (no token: nothing is sent; or an
 * upgrade refused with 401), -EINVAL (a malformed URL or pin; wss:// with no CA file
 * and no pin anywhere: verification cannot be turned off), HYB_E_AUTH (the server's
 * certificate does not verify, does not name the host or is not the pinned key),
 * HYB_E_UNAVAILABLE (cannot resolve or connect, timed out), HYB_E_PROTOCOL (an
 * upgrade answer that breaks RFC 6455 or does not choose hybrid.bus.v1), the code
 * of another HTTP status that refused the upgrade (HYB_E_NOT_FOUND for 404...).
 */
HYB_EXPORT int hyb_bus_connect_with(const hyb_bus_connect_options *opts, hyb_bus **ret,
                                    hyb_error *reterr);

HYB_EXPORT hyb_bus *hyb_bus_ref(const hyb_bus *bus);
/*
 * Drops a reference; the last one closes the connection (pending async calls
 * are cancelled without their callback running; slots the caller still holds
 * stay valid but inert until unref'd).  Returns NULL; NULL is a no-op.
 */
HYB_EXPORT hyb_bus *hyb_bus_unref(hyb_bus *bus);

/* Closes the connection now (idempotent); the handle stays valid until unref. */
HYB_EXPORT void hyb_bus_close(hyb_bus *bus);
/* True while the connection is authenticated and open. */
HYB_EXPORT bool hyb_bus_is_open(const hyb_bus *bus);
/*
 * Why the broker closed this connection, when it said so before closing (a
 * quota cut-off, the daemon shutting down): returns the bus status it gave
 * (507, 503...) and sets *ret_message (may be NULL; borrowed from bus) to its
 * text; returns 0 when the connection is open or closed without a reason.
 */
HYB_EXPORT int hyb_bus_get_close_reason(const hyb_bus *bus, const char **ret_message);

/* "@localhost/<app>/<runner>", borrowed (valid while bus lives). */
HYB_EXPORT const char *hyb_bus_get_endpoint_name(const hyb_bus *bus);
/* The largest body the broker accepts (announced in the handshake). */
HYB_EXPORT size_t hyb_bus_get_max_body(const hyb_bus *bus);

/* ------------------------------------------------------------ loop integration */

/*
 * The fd to watch for readability; -EBADF when closed.  For a Unix connection it is an
 * epoll fd (close-on-exec) holding the broker socket and the socket of every direct
 * channel (doc/bus.md "Direct channels"): it turns readable when any of them has input,
 * and also when output the library queued can be written (so hyb_bus_get_events says
 * HYB_BUS_EVENT_IN only).  poll, epoll, libevent, Python's loop.add_reader and libuv's
 * uv_poll all watch an epoll fd like a socket.  For ws:// and wss:// it is the TCP
 * socket.  Either way it stays the connection's: watch it, do not read, write or close
 * it; setting O_NONBLOCK on it changes nothing for the library.
 */
HYB_EXPORT int hyb_bus_get_fd(const hyb_bus *bus);
/* HYB_BUS_EVENT_IN (Unix connections: always IN only), plus HYB_BUS_EVENT_OUT on a ws://
 * or wss:// connection while output is queued; < 0 when closed. */
HYB_EXPORT int hyb_bus_get_events(const hyb_bus *bus);
/*
 * *ret_usec gets the absolute CLOCK_MONOTONIC time (µs, see hyb_now_usec) by
 * which hyb_bus_process must be called again (the nearest local call deadline;
 * 0 when a packet is ready now, or when input waits that a poll of the fd would
 * not announce: TLS plaintext of a wss:// connection already decrypted, bytes left
 * over the read budget of one process), or UINT64_MAX for none.  Ask before each
 * poll.  Returns 0 or -EBADF.
 */
HYB_EXPORT int hyb_bus_get_timeout(const hyb_bus *bus, uint64_t *ret_usec);
/*
 * Does pending work without blocking: flushes output, reads what the broker
 * socket (and, when direct channels are open, each channel socket) has,
 * dispatches at most one incoming packet (a reply, call, event, cancel)
 * and expires local deadlines.  Returns > 0 if something was done (call again),
 * 0 if idle, < 0 on failure (HYB_E_CLOSED once the broker hung up).
 */
HYB_EXPORT int hyb_bus_process(hyb_bus *bus);
/*
 * Blocks until the connection has input (or can take queued output) or until
 * timeout_usec passes (a relative wait; UINT64_MAX: no limit).  > 0 ready, 0 timeout, < 0 error
 * (-EINTR is returned as is).
 */
HYB_EXPORT int hyb_bus_wait(hyb_bus *bus, uint64_t timeout_usec);
/* Writes all queued output, blocking. 0 or < 0. */
HYB_EXPORT int hyb_bus_flush(hyb_bus *bus);
/*
 * Corks the connection (cork true): packets are queued instead of written at
 * once, until hyb_bus_flush, a wait, hyb_bus_process or the attached loop
 * writes them; so a burst of asynchronous calls (pipelined store reads) goes
 * out in one write and the broker answers it in one.  Uncorking flushes what
 * is queued (blocking, as hyb_bus_flush).  Sync calls work corked (their wait
 * writes the queue).  0, or < 0 from the flush.
 */
HYB_EXPORT int hyb_bus_set_cork(hyb_bus *bus, bool cork);
/* hyb_bus_set_spin: a spin that covers a daemon's answer from another CPU on this
 * class of machine, and the largest value (microseconds). */
enum { HYB_BUS_SPIN_TYPICAL_USEC = 50, HYB_BUS_SPIN_MAX_USEC = 1000000 };
/*
 * Makes a synchronous operation (hyb_bus_call, the sync store and builtin calls:
 * everything that waits for its own answer) keep reading its connection without
 * sleeping for up to usec microseconds before it sleeps in poll(); 0 (the default of
 * every new connection) sleeps at once.  Opt-in: it trades the caller's CPU time for
 * latency.  A daemon on another CPU then answers a caller whose CPU is still running:
 * on a machine whose idle CPUs halt, that saves the caller's wake-up (15-20 us on a
 * VM).  Useless on one CPU, where the daemon can answer only once the spinner gives
 * the CPU up.  ws:// and wss:// connections never spin, nor do waits while direct
 * channels are open (hyb_bus_set_direct: the wait sleeps at once, in recv() on the
 * channel or in epoll_wait; doc/bus.md "How a synchronous call waits").  A spin that
 * ends without an answer makes the next waits of this connection sleep at once (1, 2,
 * 4 ... up to 256 of them, reset by the next spin that gets its answer), so a slow peer
 * costs at most one spin in 256 waits.  Waits without a call of their own (hyb_bus_wait, an
 * attached event loop) never spin.  Setting the value starts that count afresh.
 * Returns 0, or -EINVAL (bus NULL, usec above HYB_BUS_SPIN_MAX_USEC).
 */
HYB_EXPORT int hyb_bus_set_spin(hyb_bus *bus, uint32_t usec);
/*
 * Direct channels (doc/bus.md "Direct channels"): on (the default of every Unix
 * connection), the second call to an endpoint asks the broker for a direct channel to
 * it, and once the broker opened one, calls to that endpoint go over it (one hop each
 * way instead of two) as long as their method is one the broker allowed; the broker
 * still decides who may talk to whom.  Off, no new channel is asked for, the idle ones
 * close at once and the others once their pending calls ended; calls then go through
 * the broker.  A service answers channels opened to it either way.  ws:// and wss://
 * connections never use channels.  Returns 0, or -EINVAL (bus NULL).
 */
HYB_EXPORT int hyb_bus_set_direct(hyb_bus *bus, bool on);
/*
 * Lets a libevent base drive the connection (read, write, timers): callbacks
 * then run from event_base_dispatch.  One base at a time; the bus holds no
 * reference on the base.  Errors: -EBUSY (already attached), -ENOMEM.
 */
HYB_EXPORT int hyb_bus_attach_event(hyb_bus *bus, struct event_base *base);
/* Undoes hyb_bus_attach_event; a no-op when not attached. */
HYB_EXPORT int hyb_bus_detach_event(hyb_bus *bus);

/* ------------------------------------------------------------------------ calls */

/* A completed call: status, message and body, ref-counted. */
HYB_EXPORT hyb_bus_reply *hyb_bus_reply_ref(const hyb_bus_reply *reply);
HYB_EXPORT hyb_bus_reply *hyb_bus_reply_unref(hyb_bus_reply *reply);
/* The bus status (200, 404, 504, ...). */
HYB_EXPORT int hyb_bus_reply_get_status(const hyb_bus_reply *reply);
/* hyb_err_from_status(status): 0 for 2xx. */
HYB_EXPORT int hyb_bus_reply_get_error(const hyb_bus_reply *reply);
/* The callee's (or broker's) message, "" when none; borrowed. */
HYB_EXPORT const char *hyb_bus_reply_get_message(const hyb_bus_reply *reply);
/* The body (not NUL-terminated for binary; JSON bodies are followed by a NUL
 * byte not counted in *ret_len), borrowed from the reply. */
HYB_EXPORT const void *hyb_bus_reply_get_body(const hyb_bus_reply *reply, size_t *ret_len);
HYB_EXPORT bool hyb_bus_reply_is_binary(const hyb_bus_reply *reply);
/* The endpoint that answered ("@localhost/org.hybridos.bus/builtin" for the broker). */
HYB_EXPORT const char *hyb_bus_reply_get_sender(const hyb_bus_reply *reply);

/*
 * Calls `method` of `endpoint` and waits for the answer.  body/len are copied
 * (len 0: empty body).  flags: HYB_BODY_*.  timeout_ms: the deadline the
 * broker enforces (0: HYB_BUS_DEFAULT_TIMEOUT_MS).  While waiting, incoming
 * calls, events and other replies of this connection are dispatched, so a
 * handler may itself call back the caller (A -> B -> A) without deadlock.
 * On 2xx returns 0 and, when ret != NULL, *ret gets a reply to unref.
 * Otherwise returns hyb_err_from_status(status) (HYB_E_NOT_FOUND, HYB_E_FORBIDDEN,
 * HYB_E_BAD_REQUEST, HYB_E_CALLEE_TIMEOUT, HYB_E_BAD_CALLEE, HYB_E_TOO_LARGE, ...)
 * with the message in *reterr, or HYB_E_CLOSED / -errno for local failures.
 */
HYB_EXPORT int hyb_bus_call(hyb_bus *bus, const char *endpoint, const char *method, const void *body,
                            size_t len, unsigned flags, uint32_t timeout_ms, hyb_bus_reply **ret,
                            hyb_error *reterr);

/*
 * hyb_bus_call for a caller that wants the reply body only, in a buffer of its own (a
 * binding's per-connection buffer: no reply object to query and free on the common path).
 * Same call, wait, dispatch and errors as hyb_bus_call.  On 2xx returns 0 with *ret_len the
 * reply body's length and *ret_flags (may be NULL) HYB_BODY_JSON or HYB_BODY_BINARY; the body
 * is copied into buf when it fits (*ret_len <= size; nothing is written after it, no NUL) and
 * *ret_reply is set to NULL; a longer body is not copied and *ret_reply gets the reply (read
 * it with hyb_bus_reply_get_body, then unref it).  On failure *ret_reply is NULL and buf is
 * untouched.  buf may be NULL with size 0.  -EINVAL for a NULL bus, endpoint, method,
 * ret_len or ret_reply.
 */
HYB_EXPORT int hyb_bus_call_into(hyb_bus *bus, const char *endpoint, const char *method,
                                 const void *body, size_t len, unsigned flags, uint32_t timeout_ms,
                                 void *buf, size_t size, size_t *ret_len, unsigned *ret_flags,
                                 hyb_bus_reply **ret_reply, hyb_error *reterr);

/*
 * The arguments of a hyb_bus_call_into that stay the same from call to call, kept by the
 * caller (a binding's per-connection state), and the call's results.  A foreign-function
 * interface (Python's cffi) pays for every argument of every call; hyb_bus_call_prepared
 * takes three.  Zero it, set size to sizeof(hyb_bus_call_args) and the "in" members; the
 * library reads and writes no byte of it past size.  endpoint and method are borrowed for
 * the duration of each call: the caller keeps them valid (and may leave them set from one
 * call to the next to the same target).
 */
typedef struct hyb_bus_call_args {
        size_t size;              /* in: sizeof(hyb_bus_call_args) */
        hyb_bus *bus;             /* in: the connection */
        const char *endpoint;     /* in: the endpoint called */
        const char *method;       /* in: its method */
        unsigned flags;           /* in: HYB_BODY_* of the body */
        uint32_t timeout_ms;      /* in: as hyb_bus_call's (0: HYB_BUS_DEFAULT_TIMEOUT_MS) */
        void *buf;                /* in: the reply buffer (may be NULL with buf_size 0) */
        size_t buf_size;          /* in */
        size_t ret_len;           /* out: the reply body's length */
        hyb_bus_reply *ret_reply; /* out: the reply when its body did not fit buf, else NULL */
        hyb_error err;            /* out: the error of a failed call */
        /* Members after err came later (a struct whose size stops at err still works): */
        int status;               /* out: a failed call's answer status (4xx/5xx, also one
                                   * with no code of its own, such as 418); 0 for a call that
                                   * failed without an answer (a local error, a lost daemon) */
} hyb_bus_call_args;

/*
 * hyb_bus_call_into(a->bus, a->endpoint, a->method, body, len, a->flags, a->timeout_ms,
 * a->buf, a->buf_size, &a->ret_len, &flags, &a->ret_reply, &a->err): the same call, wait,
 * dispatch, results and errors, except that on 2xx it returns the reply body's flags,
 * HYB_BODY_JSON (0) or HYB_BODY_BINARY, instead of 0 (one result less to read back through
 * an FFI).  The "in" members are read when the call starts (a handler run during the wait
 * may make another call with the same struct); the "out" members are written when it
 * returns (ret_reply always: NULL unless the reply is handed over; ret_len on 2xx; err on
 * failure; status when a->size covers it), so a call made by such a handler leaves none of
 * its results there.  -EINVAL for a NULL a, a->size smaller than the struct's first version
 * (up to err, HYBRID_0.1: later versions append members and still take it), or a NULL
 * a->bus, a->endpoint or a->method.
 */
HYB_EXPORT int hyb_bus_call_prepared(hyb_bus_call_args *a, const void *body, size_t len);

/* Called once with the reply (any status; connection loss gives a local 502). */
typedef void (*hyb_bus_reply_fn)(hyb_bus *bus, const hyb_bus_reply *reply, void *userdata);

/*
 * Sends a call and returns at once; cb runs from hyb_bus_process (or the
 * attached loop, or a sync call's wait) with the reply.  With ret_slot != NULL
 * the caller owns a slot: unref'ing it before the reply cancels the call (the
 * broker sends a cancel to the callee, like builtin terminateCall) and cb never
 * runs.  With ret_slot NULL the call is floating.  body is copied.
 * Errors: -EINVAL, HYB_E_TOO_LARGE (body over max_body), HYB_E_CLOSED, -ENOMEM.
 */
HYB_EXPORT int hyb_bus_call_async(hyb_bus *bus, const char *endpoint, const char *method,
                                  const void *body, size_t len, unsigned flags, uint32_t timeout_ms,
                                  hyb_bus_reply_fn cb, void *userdata, hyb_slot **ret_slot);

/* Shorthand for hyb_bus_call(bus, HYB_BUS_BUILTIN_ENDPOINT, method, json, strlen(json), ...). */
HYB_EXPORT int hyb_bus_call_builtin(hyb_bus *bus, const char *method, const char *json,
                                    hyb_bus_reply **ret, hyb_error *reterr);

/* ------------------------------------------------------------------ procedures */

/*
 * A procedure handler.  Answer with hyb_bus_request_reply* before returning, or
 * take a reference (hyb_bus_request_ref) and answer later (deferred reply).
 * If the handler returns without either: a negative return answers
 * hyb_err_to_status(r) (e.g. HYB_E_NOT_FOUND -> 404), 0 answers 200 with an
 * empty body.  `req` is borrowed for the duration of the call.
 */
typedef int (*hyb_bus_method_fn)(hyb_bus_request *req, void *userdata);

HYB_EXPORT hyb_bus_request *hyb_bus_request_ref(const hyb_bus_request *req);
/* Dropping the last reference of an unanswered request answers 500. */
HYB_EXPORT hyb_bus_request *hyb_bus_request_unref(hyb_bus_request *req);
HYB_EXPORT hyb_bus *hyb_bus_request_get_bus(const hyb_bus_request *req);
/* The calling endpoint, borrowed. */
HYB_EXPORT const char *hyb_bus_request_get_caller(const hyb_bus_request *req);
/*
 * The calling endpoint's uid into *ret_uid, as the broker read it from the caller's
 * socket (SO_PEERCRED) when it connected; a client cannot choose it.  Lets a service
 * bound what it keeps per uid, since one uid may connect under many app names.
 * Returns 0, or -EINVAL when req or ret_uid is NULL.
 */
HYB_EXPORT int hyb_bus_request_get_caller_uid(const hyb_bus_request *req, uid_t *ret_uid);
/*
 * How the caller reached the bus and as whom, as the broker states it (doc/protocol.md
 * "Frame", the caller info; doc/edge.md): *ret_transport gets "unix" (a peer of the Unix
 * socket), "http" or "https" (a request to the daemon's edge on listen.http or listen.https),
 * "coap" (one on listen.coap);
 * "ws" or "wss" (a remote bus peer of the edge's WebSocket listener /bus/ws);
 * "cluster" (a caller on another host of the daemon's cluster, doc/cluster.md);
 * *ret_principal gets the `sub` of
 * the security token the caller authenticated with, or NULL when it used none (a uid-policy
 * peer: see hyb_bus_request_get_caller_uid; an anonymous HTTP or CoAP request).  Both borrowed from
 * req; either pointer may be NULL.  Returns 0, or -EINVAL when req is NULL.
 */
HYB_EXPORT int hyb_bus_request_get_caller_principal(const hyb_bus_request *req,
                                                   const char **ret_transport,
                                                   const char **ret_principal);
HYB_EXPORT const char *hyb_bus_request_get_method(const hyb_bus_request *req);
/* The params body (JSON bodies are NUL-terminated beyond *ret_len), borrowed. */
HYB_EXPORT const void *hyb_bus_request_get_body(const hyb_bus_request *req, size_t *ret_len);
HYB_EXPORT bool hyb_bus_request_is_binary(const hyb_bus_request *req);
/* Milliseconds left before the broker's deadline (0 when past). */
HYB_EXPORT uint32_t hyb_bus_request_get_time_left_ms(const hyb_bus_request *req);
/* True once the broker cancelled the call (deadline or caller's terminateCall). */
HYB_EXPORT bool hyb_bus_request_is_cancelled(const hyb_bus_request *req);
typedef void (*hyb_bus_cancel_fn)(hyb_bus_request *req, void *userdata);
/* cb runs once if the call is cancelled while the request is still unanswered. */
HYB_EXPORT void hyb_bus_request_set_cancel_handler(hyb_bus_request *req, hyb_bus_cancel_fn cb,
                                                   void *userdata);
/*
 * Answers the call with a status (200, 400, ...), a body (copied) and HYB_BODY_* flags.
 * Errors: -EALREADY (already answered), HYB_E_GONE (cancelled; nothing sent),
 * HYB_E_TOO_LARGE, HYB_E_CLOSED.
 */
HYB_EXPORT int hyb_bus_request_reply(hyb_bus_request *req, int status, const void *body, size_t len,
                                     unsigned flags);
/* Answers with an error status and a message (retMsg). Same errors as above. */
HYB_EXPORT int hyb_bus_request_reply_error(hyb_bus_request *req, int status, const char *message);

/*
 * Registers procedure `method` on this endpoint (builtin registerProcedure).
 * for_host / for_app: access lists (NULL = "*"); callers not matching get 403
 * from the broker.  Returns 0 with *ret_slot (NULL: lives as long as the bus).
 * Unref the slot to revoke.  Errors: HYB_E_NOT_ACCEPTABLE (bad name or list),
 * HYB_E_CONFLICT (already registered), HYB_E_TOO_MANY, HYB_E_CLOSED.
 */
HYB_EXPORT int hyb_bus_register_procedure(hyb_bus *bus, const char *method, const char *for_host,
                                          const char *for_app, hyb_bus_method_fn handler,
                                          void *userdata, hyb_slot **ret_slot, hyb_error *reterr);

/* ---------------------------------------------------------------------- events */

/* An event as delivered to a subscriber; all borrowed for the callback. */
HYB_EXPORT const char *hyb_bus_event_get_source(const hyb_bus_event *ev); /* generator endpoint */
HYB_EXPORT const char *hyb_bus_event_get_bubble(const hyb_bus_event *ev);
HYB_EXPORT const void *hyb_bus_event_get_body(const hyb_bus_event *ev, size_t *ret_len);
HYB_EXPORT bool hyb_bus_event_is_binary(const hyb_bus_event *ev);

typedef void (*hyb_bus_event_fn)(hyb_bus *bus, const hyb_bus_event *ev, void *userdata);

/*
 * Registers bubble `bubble` on this endpoint (builtin registerEvent), with
 * access lists for subscribers (NULL = "*").  Unref the slot to revoke
 * (subscribers then get LostEventBubble).  Errors as hyb_bus_register_procedure.
 */
HYB_EXPORT int hyb_bus_register_event(hyb_bus *bus, const char *bubble, const char *for_host,
                                      const char *for_app, hyb_slot **ret_slot, hyb_error *reterr);

/* Flags of hyb_bus_register_event_flags. */
typedef enum hyb_event_flags {
        HYB_EVENT_CLUSTER = 1, /* fires of the bubble also go to the other hosts of the cluster */
} hyb_event_flags;

/*
 * As hyb_bus_register_event, with flags (0 or HYB_EVENT_CLUSTER; other bits: -EINVAL).
 * With HYB_EVENT_CLUSTER each fire is also published to the cluster the daemon belongs to
 * (doc/cluster.md "Events between hosts"), where the standing subscriptions of other hosts
 * that match @<this host>/app/runner and the bubble receive it, as for_host/for_app allow;
 * the delivered/failed counts of hyb_bus_fire count this host's subscribers only.  Errors as
 * hyb_bus_register_event, and HYB_E_NOT_IMPLEMENTED when the daemon is not in a cluster.
 */
HYB_EXPORT int hyb_bus_register_event_flags(hyb_bus *bus, const char *bubble, const char *for_host,
                                            const char *for_app, unsigned flags, hyb_slot **ret_slot,
                                            hyb_error *reterr);

/*
 * Fires a registered bubble.  With ret_delivered and ret_failed both NULL the
 * fire is one-way (no round trip); otherwise it waits for the broker's counts
 * of subscribers it was queued to / could not be queued to.
 * Errors: HYB_E_NOT_FOUND (bubble not registered; only reported with counts),
 * HYB_E_TOO_LARGE, HYB_E_CLOSED.
 */
HYB_EXPORT int hyb_bus_fire(hyb_bus *bus, const char *bubble, const void *body, size_t len,
                            unsigned flags, uint32_t *ret_delivered, uint32_t *ret_failed);

/*
 * Subscribes to events.  When endpoint_glob and bubble_glob are plain names
 * the subscription is exact (the bubble must exist: HYB_E_NOT_FOUND, and allow
 * us: HYB_E_FORBIDDEN).  With `*` / `?` (case-insensitive) it is a standing
 * pattern: it covers every matching bubble we may see, including generators
 * and bubbles that appear later.  cb runs for each event; unref the slot to
 * unsubscribe.  Errors: HYB_E_NOT_ACCEPTABLE (bad pattern), HYB_E_NOT_FOUND,
 * HYB_E_FORBIDDEN, HYB_E_TOO_MANY (max_subscriptions), HYB_E_CLOSED.
 */
HYB_EXPORT int hyb_bus_subscribe(hyb_bus *bus, const char *endpoint_glob, const char *bubble_glob,
                                 hyb_bus_event_fn cb, void *userdata, hyb_slot **ret_slot,
                                 hyb_error *reterr);

/* ---------------------------------------------------------------------- monitor */

/*
 * One packet seen by the broker; a value struct borrowed for the callback.
 * New members are appended: read one only when `size` covers it.
 */
typedef struct hyb_bus_monitor_record {
        size_t size;        /* sizeof(hyb_bus_monitor_record) of the library that filled it */
        const char *kind;   /* "call" "result" "event" "cancel" */
        const char *from;   /* sending endpoint */
        const char *to;     /* receiving endpoint ("" for events) */
        const char *member; /* method, bubble, or the result's message */
        uint64_t call_id;
        int status;         /* results: the status; else 0 */
        unsigned flags;     /* HYB_BODY_* */
        const void *body;
        size_t body_len;
} hyb_bus_monitor_record;

typedef void (*hyb_bus_monitor_fn)(hyb_bus *bus, const hyb_bus_monitor_record *rec, void *userdata);

/*
 * Starts monitoring every call, result, event and cancel routed by the broker
 * (administrators only: HYB_E_FORBIDDEN otherwise).  Unref the slot to stop.
 */
HYB_EXPORT int hyb_bus_monitor(hyb_bus *bus, hyb_bus_monitor_fn cb, void *userdata,
                               hyb_slot **ret_slot, hyb_error *reterr);

#ifdef __cplusplus
}
#endif

#endif
