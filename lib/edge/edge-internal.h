/* SPDX-License-Identifier: MIT */
/*
 * The network edge (doc/edge.md): the daemon's request responder for HTTP, on libevent's
 * evhttp, as a principal-aware client of the broker in the same process.
 *
 *   http.c      the listen.http listener: evhttp, size limits, slow-client timeouts,
 *               connection caps per source address and in total, the route table
 *   http-auth.c credentials: Authorization: Bearer <token> + DPoP proof, edge.anonymous
 *   routes.c    path and query parsing; /bus/ calls and /store/ reads, writes, deletes
 *   sse.c       /events/ and /watch/ as Server-Sent Events
 *   ws.c        the WebSocket listener /bus/ws: remote bus peers (wslay), each a
 *               session of the broker that does the token handshake itself
 *   peer.c      a session of one principal: the bus protocol over the in-memory pair
 *               the broker adopted as an authenticated peer (lib/broker/edge-peer.c)
 */
#ifndef HYB_EDGE_INTERNAL_H
#define HYB_EDGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>
#include <jansson.h>

#include "broker/broker-internal.h"
#include "bus/wire.h"
#include "hybrid/token.h"

/* Bounds of the HTTP edge (doc/edge.md "Limits"). */
#define EDGE_MAX_HEADERS_BYTES (16u * 1024) /* request line and headers */
#define EDGE_TIMEOUT_S 10                   /* to send the headers, the body, or read a reply */
#define EDGE_MAX_CONNECTIONS 256u           /* open HTTP connections in all */
#define EDGE_MAX_PER_ADDRESS 32u            /* open HTTP connections of one source address */
#define EDGE_MAX_UNSENT 256u                /* HTTP connections yet to send a request, in all */
#define EDGE_MAX_UNSENT_PER_ADDRESS 32u     /* the same, of one source address */
/* SSE bytes waiting for a client before the stream stops reading its session */
#define EDGE_SSE_MAX_QUEUED (256u * 1024)
#define EDGE_SSE_KEEPALIVE_S 15        /* a comment line on an idle stream */
#define EDGE_DPOP_WINDOW_S 60          /* |now - iat| of a proof */
#define EDGE_DPOP_JTI_SLOTS 4096u      /* proofs remembered (jti replay cache) */
#define EDGE_DPOP_JTI_PER_HOLDER 256u  /* of them, proofs of one holder key */
#define EDGE_DEFAULT_TIMEOUT_MS 30000u /* a call without X-Timeout-Ms */
#define EDGE_IDLE_SESSIONS 32u         /* sessions kept for the next request (peer.c) */

typedef struct edge_http edge_http;
typedef struct edge_peer edge_peer;

/* ---------------------------------------------------------------- peer.c */

/* A RESULT for a call (p), or p NULL when the session was lost (answer 502). */
typedef void (*edge_reply_fn)(edge_peer *peer, const wire_packet *p, void *ud);
/* An EVENT (events and store messages); p NULL when the session ended (ERROR or EOF):
 * status is the ERROR's status (507 for a slow reader, 401 for an expired token), or 502. */
typedef void (*edge_event_fn)(edge_peer *peer, const wire_packet *p, int status, void *ud);

/* A session of tok's principal (NULL: anonymous).  Errors of broker_edge_session. */
/* transport: "http" or "https", what the callee is told (the caller info). */
int edge_peer_new(hyb_broker *b, hyb_token_result *tok, const char *transport, edge_peer **ret,
                  hyb_error *e);
/* Ends the request's use of the session; no callback runs after it.  A session with
 * nothing in flight and no subscription is kept for the principal's next request (up to
 * EDGE_IDLE_SESSIONS: past that the one kept longest is closed), else closed.  NULL is a
 * no-op. */
void edge_peer_free(edge_peer *p);
/* Closes the kept sessions (the edge stops). */
void edge_peer_idle_free(edge_http *eh);
/* Sends a CALL of method to endpoint (full name) with body (flags WIRE_F_*); cb gets the
 * RESULT once.  0 or -ENOMEM / -EPIPE (closed). */
int edge_peer_call(edge_peer *p, const char *endpoint, const char *method, const void *body,
                   size_t len, unsigned flags, uint32_t timeout_ms, edge_reply_fn cb, void *ud);
void edge_peer_set_event_cb(edge_peer *p, edge_event_fn cb, void *ud);
/* Stops or resumes reading the session (a slow SSE client). */
void edge_peer_pause(edge_peer *p, bool pause);

/* ---------------------------------------------------------------- http.c */

/* Work in flight (a request waiting for the broker, an SSE stream): the edge ends them
 * without answering when it stops (their HTTP requests are freed with evhttp). */
typedef struct edge_task {
        struct edge_task *prev, *next;
        void (*kill)(struct edge_task *t);
} edge_task;
void edge_task_add(edge_http *eh, edge_task *t, void (*kill)(edge_task *t));
void edge_task_del(edge_http *eh, edge_task *t);

/* One evhttp serving the routes: listen.http's own, or listen.https's (lib/edge/https.h). */
typedef struct edge_front {
        edge_http *eh;
        const char *scheme; /* "http" or "https": the URL a proof names, the caller's transport */
} edge_front;

struct edge_http {
        edge_task *tasks;
        edge_front fronts[2];
        hyb_broker *b;
        struct evhttp *http;
        struct evhttp_bound_socket *bound;
        unsigned n_conns;
        unsigned n_unsent; /* http.c: connections accepted that sent no request yet */
        struct edge_conn *conns;     /* counted connections (http.c) */
        struct edge_addr *addrs;     /* open connections per source address */
        struct edge_dpop_cache *jti; /* http-auth.c */
        struct edge_verify *waiting; /* requests waiting for the pool (http-auth.c) */
        unsigned n_verifying;        /* the edge's jobs in the pool */
        edge_peer *idle;             /* sessions kept for the next request (peer.c) */
        unsigned n_idle;
        unsigned n_ws;               /* WebSocket connections (ws.c) */
        struct ws_addr *ws_addrs;    /* ws.c: those not yet authenticated, per source address */
        hyb_broker_config *anon_cfg; /* http-auth.c: the last route's edge.anonymous verdict, */
        size_t anon_len;             /* made under anon_cfg (a reference) for anon_path */
        bool anon_yes;
        char anon_path[256];
        time_t date_at;              /* http.c: the second date[] tells (edge_reply_headers) */
        char date[40];
};

/*
 * Adds the Date and Content-Length headers of a complete reply with a body of len bytes:
 * the date is formatted once a second, not for every reply as evhttp does when the reply
 * has none.  Not for a HEAD request (evhttp sends no body there).
 */
void edge_reply_headers(edge_http *eh, struct evhttp_request *req, size_t len);

/* Stops counting evcon against the HTTP connection caps (its closecb is cleared): the
 * WebSocket listener took it over and bounds it by its own caps. */
void edge_conn_forget(edge_http *eh, struct evhttp_connection *evcon);

/*
 * The evhttp_send_reply* calls, in one place (a TLS layer may need to act after each).
 * kind: 0 reply (status, reason, body), 1 start, 2 chunk (body, cb, ud), 3 end.
 */
void edge_send(struct evhttp_request *req, int kind, int status, const char *reason,
               struct evbuffer *body, void (*cb)(struct evhttp_connection *, void *), void *ud);
/*
 * The reply just queued on evcon (edge_send kind 0) goes to the socket now, in this turn of
 * the loop, and evhttp's "written" callback runs at once: without this, evhttp enables the
 * write event, waits a turn for it, writes, then turns the event off and reading back on,
 * an epoll_ctl each.  Plain connections only (a TLS one, whose bufferevent is a filter, is
 * left to evhttp), and only a reply written whole; a partial write or an error is left to
 * evhttp's own write event as before.  The callback may free the request and, for a
 * connection that closes after the reply, the connection: call it last, using neither after.
 * evcon NULL: nothing.
 */
void edge_send_now(struct evhttp_connection *evcon);
/* gone(evcon, ud) runs if evcon closes while the request or stream of ud is in flight;
 * gone NULL: none (the request ended).  Replaces evhttp_connection_set_closecb, which the
 * connection caps hold. */
void edge_conn_watch(edge_http *eh, struct evhttp_connection *evcon,
                     void (*gone)(struct evhttp_connection *evcon, void *ud), void *ud);
struct sockaddr;
struct sockaddr_storage;
/* The key a per-address bound counts sa by (addr.c): an IPv4 address (an IPv4-mapped IPv6
 * one as the IPv4 address), or an IPv6 address's /64 (the rest zeroed); no port.  Another
 * family (or NULL): all zero. */
void edge_addr_key(const struct sockaddr *sa, struct sockaddr_storage *key);
/* The same source as edge_addr_key counts it (the port is not looked at): the per-address
 * bounds of HTTP, WebSocket and CoAP. */
bool edge_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* Answers req with status and the JSON error body {"status","code","message"}. */
void edge_send_error(struct evhttp_request *req, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* The HTTP status for a bus status (doc/edge.md "Statuses"). */
int edge_http_status(int bus_status);
/* Answers with a bus RESULT: 2xx its body as is (JSON or octet-stream), else an error body. */
void edge_send_result(struct evhttp_request *req, const wire_packet *p);

/* ---------------------------------------------------------------- http-auth.c */

/*
 * Serves req (on a server of scheme "http" or "https") for route r (its contents taken)
 * as its principal: anonymous when edge.anonymous allows it, else the token of its
 * Authorization header with its DPoP proof, verified on the broker's pool of verifying
 * threads (the request is served from the pool's completion, on the loop).  A refusal is
 * answered here: 401 (credentials), 503 (no verification possible now).
 */
struct edge_route;
void edge_auth(edge_http *eh, struct evhttp_request *req, const char *scheme,
               struct edge_route *r);
/* The pool's per-uid bound applies to the edge's verifications as to one uid's. */
#define EDGE_VERIFY_UID ((uid_t)-2)
/* Is route (a decoded path) matched by a pattern of edge.anonymous? */
bool edge_anonymous(const broker_config *c, const char *route);
/*
 * Checks a DPoP proof (RFC 9449) by holder for method htm on URL htu and access token
 * token (its ath), at time now, against the replay cache (may be NULL: no replay check).
 * 0, or HYB_E_UNAUTHORIZED with the reason in *e.  Exposed for the fuzz target.
 */
int edge_dpop_check(struct edge_dpop_cache **cache, const char *proof, size_t proof_len,
                    const hyb_key *holder, const char *htm, const char *htu, const char *token,
                    size_t token_len, int64_t now, hyb_error *e);
void edge_dpop_cache_free(struct edge_dpop_cache *c);
/*
 * The replay cache's part of edge_dpop_check, for a proof whose signature held: remembers
 * the proof's jti (its SHA-256) of holder (the first bytes of the holder key's kid hash) with
 * its iat.  HYB_E_UNAUTHORIZED for a jti seen in the window, for a holder past its share
 * (EDGE_DPOP_JTI_PER_HOLDER) once the cache is half full, or for a full cache; -ENOMEM.
 */
int edge_dpop_remember(struct edge_dpop_cache **cache, const uint8_t jti_hash[32], uint64_t holder,
                       int64_t iat, int64_t now, hyb_error *e);

/*
 * Shared with the CoAP credentials (coap-auth.c).  A JOSE ES256 signature's s made low
 * (n - s for a high one: hyb_key_verify takes low-S only).
 */
void edge_sig_low_s(uint8_t sig[64]);
/* The id of a holder key in the replay cache: the first bytes of the SHA-256 of its kid. */
uint64_t edge_holder_id(const hyb_key *holder);
/*
 * The token part of a request's verdict, in the order of a connect, once the pool's tasks
 * returned: seen (a token verified before, with its revocation handles seen_ids) has its
 * revocation asked again and its exp checked; else st (staged, its signatures checked) is
 * finished by auth_finish.  Then the verified token's holder must be holder (the key the
 * proof was checked with).  0 with *ret (a reference) and *ret_ids (new handles of st, NULL
 * for seen; auth_ids_free), HYB_E_UNAUTHORIZED (reason in e), -ENOMEM.
 */
struct token_staged;
int edge_token_verdict(hyb_broker *b, struct token_staged *st, hyb_token_result *seen,
                       const struct bauth_ids *seen_ids, const hyb_key *holder,
                       hyb_token_result **ret, struct bauth_ids **ret_ids, hyb_error *e);

/* ---------------------------------------------------------------- routes.c */

enum edge_route_kind {
        EDGE_ROUTE_BUS = 1, /* /bus/<app>/<runner>/<method> */
        EDGE_ROUTE_STORE,   /* /store/<path> */
        EDGE_ROUTE_EVENTS,  /* /events/<app>/<runner>/<bubble> */
        EDGE_ROUTE_WATCH,   /* /watch/<pattern> */
};

typedef struct edge_route {
        int kind;
        char *path;                       /* the whole path, percent-decoded once */
        char endpoint[WIRE_ENDPOINT_MAX]; /* BUS, EVENTS: "@localhost/<app>/<runner>" */
        char member[WIRE_MEMBER_MAX];     /* BUS: the method; EVENTS: the bubble */
        char *furi;                       /* STORE, WATCH: "/<path>" as decoded */
} edge_route;

/*
 * Parses the path of a request URI (raw, percent-encoded, without the query): 0 with *r
 * filled (edge_route_clear it), or the HTTP status (400, 404) with the message in *e.
 */
int edge_route_parse(const char *raw_path, edge_route *r, hyb_error *e);
void edge_route_clear(edge_route *r);
/*
 * Moves *src into *dst (its strings and what it owns; src is left empty, as after
 * edge_route_clear).  Copies only the text in use of endpoint and member, not the whole
 * ~4.5 KB of their arrays (once per request: a whole-struct copy and memset cost more than
 * the rest of the route's handling).
 */
void edge_route_move(edge_route *dst, edge_route *src);
/* An empty route (no allocation), without writing the whole of its arrays. */
void edge_route_init(edge_route *r);
/*
 * The params object of a GET call from a query string (raw): each value as JSON when it
 * parses as JSON, else as a string.  *ret (malloc'd JSON text), or -EINVAL (a malformed
 * query, a repeated key) / -ENOMEM.
 */
int edge_query_params(const char *query, char **ret);

/* Adds key = value to the params object: value as JSON when it parses as JSON, else as a
 * string.  0, or -EINVAL (an empty or repeated key, a value that is not UTF-8). */
int edge_params_add(json_t *params, const char *key, const char *value);
/* A call's deadline in ms from decimal ASCII digits (1..WIRE_TIMEOUT_MAX): 0 or -EINVAL. */
int edge_timeout_parse(const char *text, size_t len, uint32_t *ret);

/* ------------------------------------------------- transport-neutral requests (routes.c) */

/* The methods of the routes, whatever the transport spells them. */
enum edge_method { EDGE_M_GET = 1, EDGE_M_POST, EDGE_M_PUT, EDGE_M_DELETE };
/* Does route kind take method? (HTTP answers 405, CoAP 4.05.) */
bool edge_method_allowed(int kind, int method);
/* The JSON error body {"status","code","message"} (malloc'd), NULL when out of memory. */
char *edge_error_json(int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The answer to a /bus/ or /store/ request: an HTTP status (doc/edge.md "Statuses"), and
 * the body: JSON (the error body when status is not 200), or binary (a binary RESULT). */
typedef struct edge_answer {
        int status;
        bool binary;
        const char *body; /* valid during the callback */
        size_t len;
} edge_answer;
typedef void (*edge_answer_fn)(const edge_answer *a, void *ud);

/* A /bus/ or /store/ request in flight. */
typedef struct edge_op edge_op;
/*
 * Serves route r (BUS or STORE; its contents taken) with method (allowed on it) by the
 * session peer (taken): body is a POST's or PUT's body, or for a GET on /bus/ the params
 * JSON; timeout_ms the call's deadline.  cb runs exactly once with the answer, maybe before
 * this returns (then the result is NULL), unless edge_op_cancel comes first.
 */
edge_op *edge_op_start(edge_peer *peer, edge_route *r, int method, const char *body, size_t len,
                       uint32_t timeout_ms, edge_answer_fn cb, void *ud);
/* Ends o without an answer (its session too). NULL is a no-op. */
void edge_op_cancel(edge_op *o);

/* Serves a parsed route for the principal tok (NULL: anonymous). Takes r's contents. */
void edge_serve(edge_http *eh, struct evhttp_request *req, edge_route *r, hyb_token_result *tok,
                const char *transport);

/* ---------------------------------------------------------------- ws.c */

#define EDGE_WS_PATH "/bus/ws"
#define EDGE_WS_SUBPROTOCOL "hybrid.bus.v1"
/* The channel binding of the token proof over plain ws:// (doc/token.md "Handshake"). */
#define EDGE_WS_BINDING_PLAIN "ws-none"
#define EDGE_WS_ACCEPT_SIZE 29

/*
 * Validates an upgrade request to /bus/ws from its method and headers (NULL: absent):
 * 0 with the Sec-WebSocket-Accept value in accept, or the HTTP status to refuse it with
 * (400, 426) with the message in *e and, for 426, *header the header to add ("Name: value").
 */
int edge_ws_check_upgrade(bool is_get, const char *upgrade, const char *connection,
                          const char *version, const char *key, const char *protocol,
                          char accept[EDGE_WS_ACCEPT_SIZE], const char **header, hyb_error *e);
/* Is msg (one WebSocket message) exactly one valid bus packet?  0 or HYB_E_PROTOCOL. */
int edge_ws_check_packet(const uint8_t *msg, size_t len, size_t max_body);
/* Serves GET /bus/ws on a server of scheme "http" or "https": the upgrade or its refusal. */
void edge_ws_upgrade(edge_http *eh, struct evhttp_request *req, const char *scheme);
/* Frees what the listener keeps (after the connections ended with the tasks). */
void edge_ws_stop(edge_http *eh);

/* ---------------------------------------------------------------- sse.c */

void edge_sse_start(edge_http *eh, struct evhttp_request *req, edge_route *r, edge_peer *peer);
/* Subscribes peer to the stream of r (EVENTS: subscribeEvent, WATCH: storeSubscribe); cb gets
 * the broker's answer.  0 or -ENOMEM / -EPIPE. */
int edge_stream_subscribe(edge_peer *peer, const edge_route *r, edge_reply_fn cb, void *ud);
/* A store message "<furi>\n<obj>" as JSON {"furi":..,"value":..} (value null for a delete),
 * malloc'd, with *kind "write", "publish" or "delete"; NULL when unreadable. */
char *edge_store_message(const wire_packet *p, const char **kind);

/* ---------------------------------------------------------------- coap.c */

/* listen.coap (doc/edge.md "CoAP"): started and stopped with the HTTP edge. */
int edge_coap_start(hyb_broker *b, hyb_error *e);
void edge_coap_stop(hyb_broker *b);

#endif
