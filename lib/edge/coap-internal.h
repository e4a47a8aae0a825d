/* SPDX-License-Identifier: MIT */
/*
 * The CoAP edge (doc/edge.md "CoAP"), shared by its files:
 *
 *   coap.c          listen.coap: libcoap in the loop, the request handler, requests waiting
 *                   for the broker, Block1 uploads, the bounds per source address
 *   coap-auth.c     credentials: the token upload (/authz-info), the tokens kept by hash,
 *                   the proof of each request checked on the broker's verifying threads
 *   coap-observe.c  Observe: each observation a subscription with its own session, queue
 *                   and private resource
 *   coap-parse.c    what the edge reads out of a request's options; the copies of
 *                   requests that asyncs hand back
 */
#ifndef HYB_EDGE_COAP_INTERNAL_H
#define HYB_EDGE_COAP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <coap3/coap.h>
#include <event2/event.h>

#include "coap-parse.h"
#include "edge-internal.h"

/* Bounds of the CoAP edge (doc/edge.md "CoAP"). */
#define EDGE_COAP_MAX_PENDING 128u /* requests waiting for the broker and uploads, in all */
#define EDGE_COAP_MAX_PENDING_PER_ADDRESS 16u
#define EDGE_COAP_MAX_OBSERVERS 64u /* observations (each a session), in all */
#define EDGE_COAP_MAX_OBSERVERS_PER_ADDRESS 8u
#define EDGE_COAP_MAX_QUEUED 32u    /* notifications waiting for one observer */
#define EDGE_COAP_MAX_SESSIONS 256u /* libcoap's idle sessions (peer endpoints) */
#define EDGE_COAP_SESSION_IDLE_S 60u
#define EDGE_COAP_UPLOAD_IDLE_S 30 /* a Block1 upload with no block for that long ends */
#define EDGE_COAP_PATH_MAX 1024u
#define EDGE_COAP_OPT_TIMEOUT 65001  /* Hybrid-Timeout-Ms: a call's deadline, digits */
#define EDGE_COAP_OBS_PATH "hyb-obs" /* observers' private resources: hyb-obs/<id> */
#define EDGE_COAP_AUTHZ_PATH "/authz-info" /* the token upload (coap-auth.c) */
#define EDGE_COAP_TOKENS 32u             /* tokens uploaded and verified, kept in all */
#define EDGE_COAP_TOKENS_PER_ADDRESS 4u  /* of them, uploaded from one source address */

enum { TAG_REQ = 1, TAG_OBS };

typedef struct creq {
        int tag; /* TAG_REQ: first, what an async's app data points to */
        struct creq *next;
        struct edge_coap *ec;
        struct sockaddr_storage addr;
        coap_session_t *session;
        coap_async_t *async;
        edge_op *op;
        struct cverify *verify; /* its credentials being checked (coap-auth.c) */
        edge_route r;           /* kept while they are */
        char *in;               /* the body or params, kept while they are */
        size_t in_len;
        uint32_t timeout;
        bool authz;             /* a token upload: answered 2.01 */
        int method;
        bool done;
        int status;
        bool binary;
        char *body;
        size_t len;
} creq;

typedef struct cmsg {
        struct cmsg *next;
        size_t len;
        char text[];
} cmsg;

enum { OBS_SUBSCRIBING = 1, OBS_OPEN, OBS_FAILED, OBS_LIVE };

typedef struct cobs {
        int tag; /* TAG_OBS */
        struct cobs *next;
        struct edge_coap *ec;
        uint64_t id;
        char idbuf[24];
        coap_resource_t *res; /* its own: hyb-obs/<id> */
        coap_session_t *session;
        struct sockaddr_storage addr;
        uint8_t token[8];
        size_t token_len;
        coap_async_t *async;
        edge_peer *peer;
        struct cverify *verify; /* its credentials being checked (coap-auth.c) */
        edge_route r;
        cmsg *head, *tail;
        unsigned n;
        int state;
        bool ended;     /* no more messages: the end is the next notification */
        int end_status; /* OBS_FAILED or ended: the HTTP-like status of the end */
        char *end_body; /* its JSON error body */
} cobs;

/* A Block1 upload being gathered (RFC 7959): bounded by limits.max_body. */
typedef struct cupload {
        struct cupload *next;
        coap_session_t *session;
        struct sockaddr_storage addr;
        char *path;
        char *buf;
        size_t len;
        time_t last;
} cupload;

typedef struct edge_coap {
        hyb_broker *b;
        coap_context_t *ctx;
        coap_resource_t *unknown;
        struct event *io_ev, *timer_ev, *kick_ev, *sweep_ev;
        creq *reqs;
        cobs *obs;
        cupload *uploads;
        coap_resource_t **dead; /* observers' resources to delete outside libcoap's calls */
        size_t n_dead, alloc_dead;
        unsigned n_reqs, n_obs;
        uint64_t next_obs;
        struct cverify *verifying;   /* coap-auth.c: credentials being checked in the pool */
        struct cverify *waiting;     /* coap-auth.c: and waiting for room there */
        unsigned n_in_pool;
        struct ctok *tokens;         /* coap-auth.c: tokens uploaded (EDGE_COAP_TOKENS) */
        uint64_t token_clock;        /* their last use, in uses */
        struct edge_dpop_cache *jti; /* the proofs' replay cache (http-auth.c's kind) */
} edge_coap;

/* coap.c */
void edge_coap_kick(edge_coap *ec); /* runs libcoap soon (from the loop, not from here) */
coap_pdu_code_t edge_coap_code(int status, int method);
const char *edge_coap_status_name(int status);
/* Fills resp: the code of status for method and body (Block2 when large; over
 * limits.max_body a 5.02).  res and req as libcoap gave them to the handler. */
void edge_coap_respond(edge_coap *ec, coap_resource_t *res, coap_session_t *s,
                       const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp,
                       int method, int status, bool binary, const char *body, size_t len);
void edge_coap_respond_error(edge_coap *ec, coap_resource_t *res, coap_session_t *s,
                             const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp,
                             int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 9, 10)));
/* Answers a refused credential check with status vst (401, 403, 503...): logs e's reason,
 * prefixed by what ("" or "observe "), and shows the peer the uniform 401 text. */
void edge_coap_refuse(edge_coap *ec, coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
                      const coap_string_t *query, coap_pdu_t *resp, const char *what, int vst,
                      const hyb_error *e);
/* The handler of every method of every resource. */
void edge_coap_on_request(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
                          const coap_string_t *query, coap_pdu_t *resp);

/* coap-parse.c */
/* Is option num in pdu? Its value (uint) in *value (may be NULL). */
bool edge_coap_option(const coap_pdu_t *pdu, uint16_t num, uint32_t *value);
/* The copy of req an async hands back: without Block1, Size1 and payload; with obs (an
 * observer's id) its path is hyb-obs/<obs>, without Uri-Query.  NULL when out of memory. */
coap_pdu_t *edge_coap_request_copy(coap_session_t *s, const coap_pdu_t *req, const char *obs);

/* coap-auth.c */
typedef struct cverify cverify;
/* The verdict on a request's credentials: status 0 with tok (borrowed for the call), or
 * 401 / 500 / 503 with the message. */
typedef void (*edge_coap_auth_fn)(void *ud, hyb_token_result *tok, int status, const char *msg);
/*
 * Starts checking the credentials c of req (method EDGE_M_*, from ss on s) whose body
 * (after Block1; none: empty) is body: the proof over its URI, body and token.  upload:
 * a token upload to /authz-info (body is the token; kept once verified), else c names a
 * token uploaded before.  The signatures are checked on the broker's pool; cb(ud, ...) runs
 * on the loop once, later, unless edge_coap_auth_cancel comes first.  NULL when refused at
 * once: *status (401, 500, 503) and the message in *e.
 */
cverify *edge_coap_auth_start(edge_coap *ec, coap_session_t *s, const coap_pdu_t *req,
                              int method, const edge_coap_cred *c, bool upload,
                              const uint8_t *body, size_t len, const struct sockaddr_storage *ss,
                              edge_coap_auth_fn cb, void *ud, int *status, hyb_error *e);
/* cb will not run (its owner goes); the check ends on its own. */
void edge_coap_auth_cancel(cverify *v);
/* The edge stops: checks in flight end without callback, the tokens kept are released. */
void edge_coap_auth_stop(edge_coap *ec);

/* coap-observe.c */
/* A GET with Observe 0 of a stream route r (its contents taken) from ss; with cred (not
 * NULL) as the principal of the token it names, once its proof held. */
void edge_coap_observe_start(edge_coap *ec, coap_resource_t *res, coap_session_t *s,
                             const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp,
                             edge_route *r, const struct sockaddr_storage *ss,
                             const edge_coap_cred *cred);
/* The registration handed back by its async, once subscribed (or refused). */
void edge_coap_observe_answer(edge_coap *ec, cobs *o, coap_resource_t *res, coap_session_t *s,
                              const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp);
/* A notification of o (libcoap's handler call for its observer). */
void edge_coap_obs_notify(edge_coap *ec, cobs *o, coap_resource_t *res, coap_session_t *s,
                          const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp);
/* After each libcoap run: notifications due, ends told, observers libcoap dropped freed. */
void edge_coap_obs_flush(edge_coap *ec);
cobs *edge_coap_obs_by_token(edge_coap *ec, coap_session_t *s, coap_bin_const_t tok);
/* Frees o, its session and queue; its resource is deleted by the next run. */
void edge_coap_obs_free(cobs *o);

#endif
