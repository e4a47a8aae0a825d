/* SPDX-License-Identifier: MIT */
/*
 * CoAP (RFC 7252) on listen.coap (doc/edge.md "CoAP"): libcoap 3 parses and answers the
 * datagrams (retransmission, deduplication, Block2 of large answers, Observe), the routes
 * are those of HTTP, served by the same transport-neutral layer (routes.c edge_op_*,
 * sse.c edge_stream_subscribe) with a session of the anonymous principal per request.
 *
 * libcoap in the daemon's libevent loop: its epoll fd (coap_context_get_coap_fd; its timers
 * are a timerfd inside it) is watched for reading, and each wakeup runs coap_io_process
 * with COAP_IO_NO_WAIT; a libevent timer follows coap_io_prepare_epoll's next timeout too.
 * The loop never blocks on CoAP.
 *
 * A request waits for the broker as a libcoap "async" (RFC 7252 separate response): the
 * handler registers it (an empty ACK goes out for a CON) and coap_async_trigger hands a
 * copy of the request back to the handler once the answer is there.
 *
 *   request --> handler: parse, edge_op_start --> async registered
 *   broker answer --> creq done, coap_async_trigger --> handler again: the answer
 *
 * Observe: GET /watch/<pattern> or /events/<app>/<runner>/<bubble> with Observe 0 makes an
 * observable resource for that path (libcoap observes only registered resources) and a
 * subscription (cobs) with its own session.  The copy of the request handed back (its
 * registration) carries the Uri-Query "hyb-obs=<id>", so libcoap stores that query with the
 * observer and coap_resource_notify_observers(res, query) notifies that observer alone:
 * each observer drains its own queue, one message per notification, in order.
 * Notifications are confirmable, so a peer that does not acknowledge gets no more; its
 * queue is bounded (EDGE_COAP_MAX_QUEUED), past which the subscription ends (5.03).  An
 * observer libcoap dropped (RST, deregistration, failed notifications) is found missing
 * at its next notification (notify returns 0) or when its session goes, and freed.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <coap3/coap.h>
#include <event2/event.h>
#include <jansson.h>

#include "common/util.h"
#include "coap-parse.h"
#include "edge-internal.h"

/* Bounds of the CoAP edge (doc/edge.md "CoAP"). */
#define EDGE_COAP_MAX_PENDING 256u         /* requests waiting for the broker, in all */
#define EDGE_COAP_MAX_PENDING_PER_ADDRESS 16u
#define EDGE_COAP_MAX_OBSERVERS 128u       /* subscriptions (each a session), in all */
#define EDGE_COAP_MAX_OBSERVERS_PER_ADDRESS 8u
#define EDGE_COAP_MAX_QUEUED 32u           /* notifications waiting for one observer */
#define EDGE_COAP_MAX_SESSIONS 256u        /* libcoap's idle sessions (peer endpoints) */
#define EDGE_COAP_SESSION_IDLE_S 60u
#define EDGE_COAP_UPLOAD_IDLE_S 30         /* a Block1 upload with no block for that long ends */
#define EDGE_COAP_PATH_MAX 1024u
#define EDGE_COAP_OPT_TIMEOUT 65001        /* Hybrid-Timeout-Ms: a call's deadline, digits */
#define EDGE_COAP_OBS_PATH "hyb-obs"        /* observers' private resources: hyb-obs/<id> */

enum { TAG_REQ = 1, TAG_OBS };

typedef struct creq {
        int tag; /* TAG_REQ: first, what an async's app data points to */
        struct creq *next;
        struct edge_coap *ec;
        struct sockaddr_storage addr;
        coap_session_t *session;
        coap_async_t *async;
        edge_op *op;
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
} edge_coap;

/* ----------------------------------------------------------------- addresses */

static void addr_of(coap_session_t *s, struct sockaddr_storage *ss)
{
        const coap_address_t *a = coap_session_get_addr_remote(s);

        memset(ss, 0, sizeof *ss);
        if (a && a->addr.sa.sa_family == AF_INET)
                memcpy(ss, &a->addr.sin, sizeof a->addr.sin);
        else if (a && a->addr.sa.sa_family == AF_INET6)
                memcpy(ss, &a->addr.sin6, sizeof a->addr.sin6);
}

/* The same host (the port is not looked at). */
static bool addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
        if (a->ss_family == AF_INET6)
                return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                              &((const struct sockaddr_in6 *)b)->sin6_addr,
                              sizeof(struct in6_addr)) == 0;
        return false;
}

/* Requests and uploads of one address (both hold memory for it while the broker works). */
static unsigned pending_of(edge_coap *ec, const struct sockaddr_storage *ss)
{
        unsigned n = 0;

        for (creq *q = ec->reqs; q; q = q->next)
                n += addr_same(&q->addr, ss);
        for (cupload *u = ec->uploads; u; u = u->next)
                n += addr_same(&u->addr, ss);
        return n;
}

static unsigned observers_of(edge_coap *ec, const struct sockaddr_storage *ss)
{
        unsigned n = 0;

        for (cobs *o = ec->obs; o; o = o->next)
                n += addr_same(&o->addr, ss);
        return n;
}

/* ----------------------------------------------------------------- the loop */

static void coap_run(edge_coap *ec);

static void kick(edge_coap *ec)
{
        event_active(ec->kick_ev, EV_TIMEOUT, 0);
}

static void on_io(evutil_socket_t fd, short what, void *ud)
{
        (void)fd;
        (void)what;
        coap_run(ud);
}

/* ----------------------------------------------------------------- answers */

/* The CoAP code of an answer (status as in doc/edge.md "Statuses") to method. */
static coap_pdu_code_t coap_code(int status, int method)
{
        if (status == 200) {
                if (method == EDGE_M_PUT)
                        return COAP_RESPONSE_CODE(204); /* 2.04 Changed */
                if (method == EDGE_M_DELETE)
                        return COAP_RESPONSE_CODE(202); /* 2.02 Deleted */
                return COAP_RESPONSE_CODE(205);         /* 2.05 Content */
        }
        switch (status) {
        case 400: case 401: case 403: case 404: case 405: case 406: case 408: case 409:
        case 412: case 413: case 415: case 429:
        case 500: case 501: case 502: case 503: case 504:
                return COAP_RESPONSE_CODE(status);
        default:
                return COAP_RESPONSE_CODE(status >= 500 ? 502 : 400);
        }
}

static void release_copy(coap_session_t *s, void *p)
{
        (void)s;
        free(p);
}

/*
 * Fills resp: the code, and the body (JSON, Content-Format 50, or 42 for a binary result)
 * by Block2 when it does not fit one datagram (libcoap keeps the copy for the next blocks).
 * An answer over limits.max_body becomes a 5.02.
 */
static void respond(edge_coap *ec, coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
                    const coap_string_t *query, coap_pdu_t *resp, int method, int status,
                    bool binary, const char *body, size_t len)
{
        char *copy, *big = NULL;

        if (len > ec->b->c->max_body) {
                big = edge_error_json(502, "HYB_E_TOO_BIG",
                                      "the answer (%zu bytes) is over limits.max_body for CoAP",
                                      len);
                status = 502;
                binary = false;
                body = big ? big : "";
                len = big ? strlen(big) : 0;
        }
        coap_pdu_set_code(resp, coap_code(status, method));
        if (status == 200 && (method == EDGE_M_PUT || method == EDGE_M_DELETE))
                len = 0; /* 2.04, 2.02: no payload */
        if (len) {
                copy = malloc(len);
                if (copy) {
                        memcpy(copy, body, len);
                        if (!coap_add_data_large_response(
                                    res, s, req, resp, query,
                                    binary ? COAP_MEDIATYPE_APPLICATION_OCTET_STREAM
                                           : COAP_MEDIATYPE_APPLICATION_JSON,
                                    -1, 0, len, (const uint8_t *)copy, release_copy, copy))
                                coap_pdu_set_code(resp, COAP_RESPONSE_CODE(500));
                } else {
                        coap_pdu_set_code(resp, COAP_RESPONSE_CODE(500));
                }
        }
        free(big);
}

static void respond_error(edge_coap *ec, coap_resource_t *res, coap_session_t *s,
                          const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp,
                          int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 9, 10)));
static void respond_error(edge_coap *ec, coap_resource_t *res, coap_session_t *s,
                          const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp,
                          int status, const char *code, const char *fmt, ...)
{
        char msg[512];
        char *text;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        text = edge_error_json(status, code, "%s", msg);
        respond(ec, res, s, req, query, resp, EDGE_M_GET, status, false, text ? text : "",
                text ? strlen(text) : 0);
        free(text);
}

static const char *status_code_name(int status)
{
        switch (status) {
        case 400: return "HYB_E_BAD_REQUEST";
        case 401: return "HYB_E_UNAUTHORIZED";
        case 404: return "HYB_E_NOT_FOUND";
        case 413: return "HYB_E_TOO_BIG";
        case 503: return "HYB_E_UNAVAILABLE";
        default: return "HYB_E_BAD_CALLEE";
        }
}

/* ----------------------------------------------------------------- parsing */

/* An unreserved or sub-delim character of a path segment (RFC 3986) stays as it is. */
static bool path_char(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

int edge_coap_path(const coap_pdu_t *pdu, char *out, size_t size)
{
        coap_opt_iterator_t it;
        coap_opt_filter_t f;
        coap_opt_t *o;
        size_t n = 0;

        coap_option_filter_clear(&f);
        coap_option_filter_set(&f, COAP_OPTION_URI_PATH);
        coap_option_iterator_init(pdu, &it, &f);
        while ((o = coap_option_next(&it))) {
                const uint8_t *v = coap_opt_value(o);
                uint32_t len = coap_opt_length(o);

                if (n + 1 >= size)
                        return -E2BIG;
                out[n++] = '/';
                for (uint32_t i = 0; i < len; i++) {
                        if (path_char(v[i])) {
                                if (n + 1 >= size)
                                        return -E2BIG;
                                out[n++] = (char)v[i];
                        } else {
                                if (n + 3 >= size)
                                        return -E2BIG;
                                snprintf(out + n, 4, "%%%02X", v[i]);
                                n += 3;
                        }
                }
        }
        if (n == 0) {
                if (size < 2)
                        return -E2BIG;
                out[n++] = '/';
        }
        out[n] = 0;
        return 0;
}

int edge_coap_query_params(const coap_pdu_t *pdu, char **ret)
{
        coap_opt_iterator_t it;
        coap_opt_filter_t f;
        coap_opt_t *o;
        json_t *obj = json_object();
        int r = 0;

        if (!obj)
                return -ENOMEM;
        coap_option_filter_clear(&f);
        coap_option_filter_set(&f, COAP_OPTION_URI_QUERY);
        coap_option_iterator_init(pdu, &it, &f);
        while (r == 0 && (o = coap_option_next(&it))) {
                const char *v = (const char *)coap_opt_value(o);
                uint32_t len = coap_opt_length(o);
                const char *eq = memchr(v, '=', len);
                char *key, *value;

                if (memchr(v, 0, len)) {
                        r = -EINVAL;
                        break;
                }
                /* "k=v"; a bare "k" is the empty string */
                key = strndup(v, eq ? (size_t)(eq - v) : len);
                value = eq ? strndup(eq + 1, len - (size_t)(eq + 1 - v)) : strdup("");
                r = key && value ? edge_params_add(obj, key, value) : -ENOMEM;
                free(key);
                free(value);
        }
        if (r == 0 && !(*ret = json_dumps(obj, JSON_COMPACT)))
                r = -ENOMEM;
        json_decref(obj);
        return r;
}

static bool has_option(const coap_pdu_t *pdu, uint16_t num, uint32_t *value)
{
        coap_opt_iterator_t it;
        coap_opt_t *o = coap_check_option(pdu, num, &it);

        if (!o)
                return false;
        if (value)
                *value = coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o));
        return true;
}

/*
 * The copy of req an async hands back: its type, code, token and options without Block1
 * and Size1 (nor its payload: the request was read already).  With obs (an observer's
 * id), its Uri-Path and Uri-Query are hyb-obs/<obs>: the registration lands on the
 * observer's own resource.
 */
static coap_pdu_t *request_copy(coap_session_t *s, const coap_pdu_t *req, const char *obs)
{
        coap_bin_const_t tok = coap_pdu_get_token(req);
        coap_pdu_t *c = coap_pdu_init(coap_pdu_get_type(req), coap_pdu_get_code(req),
                                      coap_pdu_get_mid(req), coap_session_max_pdu_size(s));
        coap_opt_iterator_t it;
        coap_opt_t *o;
        bool added = !obs;

        if (!c || !coap_add_token(c, tok.length, tok.s))
                goto fail;
        coap_option_iterator_init(req, &it, COAP_OPT_ALL);
        while ((o = coap_option_next(&it))) {
                if (!added && it.number > COAP_OPTION_URI_PATH) {
                        if (!coap_add_option(c, COAP_OPTION_URI_PATH, strlen(EDGE_COAP_OBS_PATH),
                                             (const uint8_t *)EDGE_COAP_OBS_PATH) ||
                            !coap_add_option(c, COAP_OPTION_URI_PATH, strlen(obs),
                                             (const uint8_t *)obs))
                                goto fail;
                        added = true;
                }
                if (it.number == COAP_OPTION_BLOCK1 || it.number == COAP_OPTION_SIZE1 ||
                    (obs && (it.number == COAP_OPTION_URI_PATH ||
                             it.number == COAP_OPTION_URI_QUERY)))
                        continue;
                if (!coap_add_option(c, it.number, coap_opt_length(o), coap_opt_value(o)))
                        goto fail;
        }
        if (!added && (!coap_add_option(c, COAP_OPTION_URI_PATH, strlen(EDGE_COAP_OBS_PATH),
                                        (const uint8_t *)EDGE_COAP_OBS_PATH) ||
                       !coap_add_option(c, COAP_OPTION_URI_PATH, strlen(obs),
                                        (const uint8_t *)obs)))
                goto fail;
        return c;
fail:
        if (c)
                coap_delete_pdu(c);
        return NULL;
}

/* ----------------------------------------------------------------- requests */

static void req_free(creq *q)
{
        edge_coap *ec = q->ec;

        for (creq **pp = &ec->reqs; *pp; pp = &(*pp)->next)
                if (*pp == q) {
                        *pp = q->next;
                        ec->n_reqs--;
                        break;
                }
        if (q->async)
                coap_free_async(q->session, q->async);
        edge_op_cancel(q->op);
        free(q->body);
        free(q);
}

static void on_answer(const edge_answer *a, void *ud)
{
        creq *q = ud;

        q->op = NULL; /* the op frees itself after this */
        q->done = true;
        q->status = a->status;
        q->binary = a->binary;
        q->body = a->len ? malloc(a->len) : NULL;
        if (q->body) {
                memcpy(q->body, a->body, a->len);
                q->len = a->len;
        } else if (a->len) {
                q->status = 500;
        }
        if (q->async) {
                coap_async_trigger(q->async);
                kick(q->ec);
        }
}

/* ----------------------------------------------------------------- observers */

static void obs_drop_queue(cobs *o)
{
        while (o->head) {
                cmsg *m = o->head;
                o->head = m->next;
                free(m);
        }
        o->tail = NULL;
        o->n = 0;
}

static void obs_free(cobs *o)
{
        edge_coap *ec = o->ec;

        for (cobs **pp = &ec->obs; *pp; pp = &(*pp)->next)
                if (*pp == o) {
                        *pp = o->next;
                        ec->n_obs--;
                        break;
                }
        if (o->async)
                coap_free_async(o->session, o->async);
        if (o->res) {
                /* deleted by coap_run, outside the handler or notification loop that may be
                 * running it now */
                coap_resource_set_userdata(o->res, NULL);
                if (ec->n_dead == ec->alloc_dead) {
                        size_t na = ec->alloc_dead ? 2 * ec->alloc_dead : 16;
                        coap_resource_t **nd = realloc(ec->dead, na * sizeof *nd);

                        if (nd) {
                                ec->dead = nd;
                                ec->alloc_dead = na;
                        }
                }
                if (ec->n_dead < ec->alloc_dead)
                        ec->dead[ec->n_dead++] = o->res; /* else it stays, inert, till the stop */
        }
        edge_peer_free(o->peer);
        edge_route_clear(&o->r);
        obs_drop_queue(o);
        free(o->end_body);
        free(o);
}

/* The subscription ends with status: the next notification says so, then it is freed. */
static void obs_end(cobs *o, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void obs_end(cobs *o, int status, const char *fmt, ...)
{
        char msg[256];
        va_list ap;

        if (o->ended)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        o->ended = true;
        o->end_status = status;
        free(o->end_body);
        o->end_body = edge_error_json(status, status_code_name(status), "%s", msg);
        edge_peer_free(o->peer); /* its session ends now */
        o->peer = NULL;
        kick(o->ec);
}

static void on_obs_event(edge_peer *peer, const wire_packet *p, int status, void *ud)
{
        cobs *o = ud;
        const char *kind = NULL;
        char *text = NULL;
        cmsg *m;

        (void)peer;
        if (!p) {
                obs_end(o, edge_http_status(status), "the subscription's session ended");
                return;
        }
        if (o->r.kind == EDGE_ROUTE_WATCH)
                text = edge_store_message(p, &kind);
        else if (!(p->h.flags & WIRE_F_BINARY))
                text = strndup(p->h.body_len ? (const char *)p->body : "null",
                               p->h.body_len ? p->h.body_len : 4);
        if (!text)
                return; /* an unreadable or binary message is not notified */
        if (o->n >= EDGE_COAP_MAX_QUEUED) {
                free(text);
                obs_drop_queue(o);
                broker_log(o->ec->b, HYB_LOG_WARNING,
                           "edge: CoAP observer of %s ended: %u notifications waiting", o->r.path,
                           EDGE_COAP_MAX_QUEUED);
                obs_end(o, 503, "the observer did not keep up: %u notifications waiting",
                        EDGE_COAP_MAX_QUEUED);
                return;
        }
        m = malloc(sizeof *m + strlen(text) + 1);
        if (m) {
                m->next = NULL;
                m->len = strlen(text);
                memcpy(m->text, text, m->len + 1);
                if (o->tail)
                        o->tail->next = m;
                else
                        o->head = m;
                o->tail = m;
                o->n++;
        }
        free(text);
        kick(o->ec);
}

static void on_obs_subscribed(edge_peer *peer, const wire_packet *p, void *ud)
{
        cobs *o = ud;

        (void)peer;
        if (!p || p->h.status != 200) {
                int st = p ? edge_http_status(p->h.status) : 502;

                o->state = OBS_FAILED;
                o->end_status = st;
                o->end_body = edge_error_json(
                        st, p ? hyb_err_name(hyb_err_from_status(p->h.status)) : "HYB_E_BAD_CALLEE",
                        "%.*s", p ? (int)p->h.member_len : 0, p && p->member ? p->member : "");
        } else {
                o->state = OBS_OPEN;
        }
        if (o->async) {
                coap_async_trigger(o->async);
                kick(o->ec);
        }
}

static cobs *obs_by_token(edge_coap *ec, coap_session_t *s, coap_bin_const_t tok)
{
        for (cobs *o = ec->obs; o; o = o->next)
                if (o->session == s && o->token_len == tok.length &&
                    memcmp(o->token, tok.s, tok.length) == 0)
                        return o;
        return NULL;
}

/*
 * The end of o's observation: its status (5.03 for a slow observer) in a message of its
 * own, a NON with the token and no Observe option (RFC 7641 3.2: a final response).  Not
 * as a notification: libcoap 4.3.1 writes to an observer it has just dropped when a
 * notification handler answers an error.  Its resource goes after (coap_run), silently
 * when no notification is due.
 */
static void obs_send_end(cobs *o)
{
        const char *b = o->end_body ? o->end_body : "";
        coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_NON, coap_code(o->end_status, EDGE_M_GET),
                                        coap_new_message_id(o->session),
                                        coap_session_max_pdu_size(o->session));
        uint8_t buf[4];

        if (!pdu)
                return;
        if (!coap_add_token(pdu, o->token_len, o->token) ||
            !coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                             coap_encode_var_safe(buf, sizeof buf, COAP_MEDIATYPE_APPLICATION_JSON),
                             buf) ||
            !coap_add_data(pdu, strlen(b), (const uint8_t *)b)) {
                coap_delete_pdu(pdu);
                return;
        }
        coap_send(o->session, pdu); /* takes pdu */
}

/* Observers whose next notification is due: notified; ended: told; those libcoap dropped
 * (deregistration, RST, failed notifications): freed. */
static void obs_flush(edge_coap *ec)
{
        cobs *o = ec->obs, *next;

        for (; o; o = next) {
                next = o->next;
                if (o->state != OBS_LIVE || (!o->head && !o->ended))
                        continue;
                if (o->ended) {
                        obs_send_end(o);
                        obs_free(o);
                } else if (!coap_resource_notify_observers(o->res, NULL)) {
                        obs_free(o);
                }
        }
}

/* A notification for o (libcoap's handler call for its observer). */
static void obs_notify(edge_coap *ec, cobs *o, coap_resource_t *res, coap_session_t *s,
                       const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp)
{
        cmsg *m = o->head;

        if (m) {
                o->head = m->next;
                if (!o->head)
                        o->tail = NULL;
                o->n--;
                respond(ec, res, s, req, query, resp, EDGE_M_GET, 200, false, m->text, m->len);
                free(m);
                if (o->head || o->ended)
                        kick(ec);
                return;
        }
        /* nothing due (an end is sent by obs_flush, never as an error notification) */
        respond(ec, res, s, req, query, resp, EDGE_M_GET, 200, false, "{}", 2);
}

/* ----------------------------------------------------------------- the handler */

static void on_request(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
                       const coap_string_t *query, coap_pdu_t *resp);

/* o's own observable resource, hyb-obs/<id> (libcoap observes registered resources only;
 * one per observer, so a notification goes to that observer alone). */
static coap_resource_t *observable(edge_coap *ec, cobs *o)
{
        char name[64];
        coap_str_const_t *n;
        coap_resource_t *r;

        snprintf(name, sizeof name, EDGE_COAP_OBS_PATH "/%s", o->idbuf);
        n = coap_new_str_const((const uint8_t *)name, strlen(name));
        r = n ? coap_resource_init(n, COAP_RESOURCE_FLAGS_RELEASE_URI |
                                              COAP_RESOURCE_FLAGS_NOTIFY_CON)
              : NULL;
        if (!r) {
                if (n)
                        coap_delete_str_const(n);
                return NULL;
        }
        coap_register_request_handler(r, COAP_REQUEST_GET, on_request);
        coap_resource_set_get_observable(r, 1);
        coap_resource_set_userdata(r, o);
        coap_add_resource(ec->ctx, r);
        return r;
}

static void start_observe(edge_coap *ec, coap_resource_t *res, coap_session_t *s,
                          const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp,
                          edge_route *r, const struct sockaddr_storage *ss)
{
        coap_bin_const_t tok = coap_pdu_get_token(req);
        coap_pdu_t *copy;
        hyb_error e;
        cobs *o;
        int st;

        if (ec->n_obs >= EDGE_COAP_MAX_OBSERVERS || observers_of(ec, ss) >= EDGE_COAP_MAX_OBSERVERS_PER_ADDRESS) {
                broker_log(ec->b, HYB_LOG_WARNING, "edge: CoAP observe refused: %u observers%s",
                           ec->n_obs, ec->n_obs >= EDGE_COAP_MAX_OBSERVERS ? "" : " (per address)");
                respond_error(ec, res, s, req, query, resp, 503, "HYB_E_UNAVAILABLE",
                              "too many observers");
                edge_route_clear(r);
                return;
        }
        if (obs_by_token(ec, s, tok)) {
                respond_error(ec, res, s, req, query, resp, 400, "HYB_E_BAD_REQUEST",
                              "this token observes already");
                edge_route_clear(r);
                return;
        }
        o = calloc(1, sizeof *o);
        if (!o) {
                respond_error(ec, res, s, req, query, resp, 500, "HYB_E_INTERNAL", "out of memory");
                edge_route_clear(r);
                return;
        }
        o->tag = TAG_OBS;
        o->ec = ec;
        o->id = ++ec->next_obs;
        snprintf(o->idbuf, sizeof o->idbuf, "%llu", (unsigned long long)o->id);
        o->session = s;
        o->addr = *ss;
        o->token_len = tok.length > sizeof o->token ? sizeof o->token : tok.length;
        memcpy(o->token, tok.s, o->token_len);
        o->r = *r;
        memset(r, 0, sizeof *r);
        o->state = OBS_SUBSCRIBING;
        o->next = ec->obs;
        ec->obs = o;
        ec->n_obs++;
        o->res = observable(ec, o);
        hyb_error_clear(&e);
        st = o->res ? edge_peer_new(ec->b, NULL, "coap", &o->peer, &e) : -ENOMEM;
        if (st < 0) {
                int hs = edge_http_status(hyb_err_to_status(st));
                respond_error(ec, res, s, req, query, resp, hs, hyb_err_name(st), "%s",
                              e.message[0] ? e.message : hyb_strerror(st));
                obs_free(o);
                return;
        }
        edge_peer_set_event_cb(o->peer, on_obs_event, o);
        copy = request_copy(s, req, o->idbuf);
        o->async = copy ? coap_register_async(s, copy, 0) : NULL;
        if (copy)
                coap_delete_pdu(copy);
        if (!o->async || edge_stream_subscribe(o->peer, &o->r, on_obs_subscribed, o) < 0) {
                respond_error(ec, res, s, req, query, resp, 503, "HYB_E_UNAVAILABLE",
                              "cannot subscribe now");
                obs_free(o);
                return;
        }
        coap_async_set_app_data(o->async, o);
        /* no code: an empty ACK now, the answer once subscribed */
}

/* The registration handed back: answer it, and libcoap has the observer from now on. */
static void observe_answer(edge_coap *ec, cobs *o, coap_resource_t *res, coap_session_t *s,
                           const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp)
{
        o->async = NULL; /* libcoap frees it once this returns */
        if (o->state == OBS_FAILED) {
                const char *b = o->end_body ? o->end_body : "";
                respond(ec, res, s, req, query, resp, EDGE_M_GET, o->end_status, false, b,
                        strlen(b));
                obs_free(o);
                return;
        }
        if (res != o->res) {
                respond_error(ec, res, s, req, query, resp, 400, "HYB_E_BAD_REQUEST",
                              "this path cannot be observed");
                obs_free(o);
                return;
        }
        o->state = OBS_LIVE;
        respond(ec, res, s, req, query, resp, EDGE_M_GET, 200, false, "{}", 2);
        if (o->head || o->ended)
                kick(ec);
}

/* A Block1 block of an upload: the whole body in *ret (the upload's, freed by the caller)
 * once the last block is in, 0 while more are to come, or the status to answer. */
static int upload_block(edge_coap *ec, coap_session_t *s, const char *path,
                        const struct sockaddr_storage *ss, const uint8_t *data, size_t len,
                        size_t offset, size_t total, cupload **ret)
{
        cupload *u = NULL, **pp;

        for (pp = &ec->uploads; *pp; pp = &(*pp)->next)
                if ((*pp)->session == s && strcmp((*pp)->path, path) == 0) {
                        u = *pp;
                        break;
                }
        if (offset == 0) {
                if (u) { /* a new upload of the same path restarts it */
                        *pp = u->next;
                        free(u->path);
                        free(u->buf);
                        free(u);
                        u = NULL;
                }
                if (ec->n_reqs >= EDGE_COAP_MAX_PENDING ||
                    pending_of(ec, ss) >= EDGE_COAP_MAX_PENDING_PER_ADDRESS)
                        return 503;
                u = calloc(1, sizeof *u);
                if (!u || !(u->path = strdup(path))) {
                        free(u);
                        return 500;
                }
                u->session = s;
                u->addr = *ss;
                u->next = ec->uploads;
                ec->uploads = u;
        } else if (!u || offset != u->len) {
                return 408; /* 4.08 Request Entity Incomplete: a block out of order */
        }
        if (total > ec->b->c->max_body || u->len + len > ec->b->c->max_body) {
                for (pp = &ec->uploads; *pp; pp = &(*pp)->next)
                        if (*pp == u) {
                                *pp = u->next;
                                break;
                        }
                free(u->path);
                free(u->buf);
                free(u);
                return 413;
        }
        if (len) {
                char *nb = realloc(u->buf, u->len + len);

                if (!nb)
                        return 500;
                memcpy(nb + u->len, data, len);
                u->buf = nb;
                u->len += len;
        }
        u->last = time(NULL);
        if (offset + len < total)
                return 0;
        for (pp = &ec->uploads; *pp; pp = &(*pp)->next)
                if (*pp == u) {
                        *pp = u->next;
                        break;
                }
        *ret = u;
        return 0;
}

static void upload_free(cupload *u)
{
        if (!u)
                return;
        free(u->path);
        free(u->buf);
        free(u);
}

static int method_of(coap_pdu_code_t code)
{
        switch (code) {
        case COAP_REQUEST_CODE_GET:
                return EDGE_M_GET;
        case COAP_REQUEST_CODE_POST:
                return EDGE_M_POST;
        case COAP_REQUEST_CODE_PUT:
                return EDGE_M_PUT;
        case COAP_REQUEST_CODE_DELETE:
                return EDGE_M_DELETE;
        default:
                return 0;
        }
}

static void on_request(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
                       const coap_string_t *query, coap_pdu_t *resp)
{
        edge_coap *ec = coap_get_app_data(coap_session_get_context(s));
        coap_bin_const_t tok = coap_pdu_get_token(resp);
        char path[EDGE_COAP_PATH_MAX];
        _cleanup_free_ char *params = NULL;
        struct sockaddr_storage ss;
        cupload *up = NULL;
        const uint8_t *data = NULL;
        size_t len = 0, offset = 0, total = 0;
        uint32_t timeout = EDGE_DEFAULT_TIMEOUT_MS, v, observe;
        coap_async_t *async;
        edge_route r;
        hyb_error e;
        int method, st;
        creq *q;
        cobs *o;
        edge_op *op;

        if (!ec)
                return;
        /* 1. a request handed back by its async: the answer is there */
        async = req ? coap_find_async(s, tok) : NULL;
        if (async) {
                int *tag = coap_async_get_app_data(async);

                /* libcoap frees the async once this returns */
                if (tag && *tag == TAG_REQ && ((creq *)tag)->done) {
                        q = (creq *)tag;
                        q->async = NULL;
                        respond(ec, res, s, req, query, resp, q->method, q->status, q->binary,
                                q->body, q->len);
                        req_free(q);
                        return;
                }
                if (tag && *tag == TAG_OBS && ((cobs *)tag)->state != OBS_SUBSCRIBING) {
                        observe_answer(ec, (cobs *)tag, res, s, req, query, resp);
                        return;
                }
                return; /* the same token again while it waits: the answer will come */
        }
        /* 2. on an observer's own resource: a notification (or a stray request) */
        if (res != ec->unknown) {
                o = coap_resource_get_userdata(res);
                if (o && o->session == s && o->state == OBS_LIVE && o->token_len == tok.length &&
                    memcmp(o->token, tok.s, tok.length) == 0 &&
                    !(req && has_option(req, COAP_OPTION_OBSERVE, &observe) && observe == 1)) {
                        obs_notify(ec, o, res, s, req, query, resp);
                        return;
                }
                if (o && req && has_option(req, COAP_OPTION_OBSERVE, &observe) && observe == 1 &&
                    o->session == s)
                        obs_free(o); /* deregistered on its own resource */
                respond_error(ec, res, s, req, query, resp, 404, "HYB_E_NOT_FOUND",
                              "no such observation");
                return;
        }
        if (!req)
                return;
        /* 3. a new request */
        addr_of(s, &ss);
        method = method_of(coap_pdu_get_code(req));
        if (edge_coap_path(req, path, sizeof path) < 0) {
                respond_error(ec, res, s, req, query, resp, 404, "HYB_E_NOT_FOUND",
                              "the path is too long");
                return;
        }
        hyb_error_clear(&e);
        st = edge_route_parse(path, &r, &e);
        if (st) {
                respond_error(ec, res, s, req, query, resp, st, status_code_name(st), "%s",
                              e.message);
                return;
        }
        if (!method || !edge_method_allowed(r.kind, method)) {
                respond_error(ec, res, s, req, query, resp, 405, "HYB_E_BAD_REQUEST",
                              "method not allowed on this route");
                edge_route_clear(&r);
                return;
        }
        if (!edge_anonymous(ec->b->c, r.path)) {
                respond_error(ec, res, s, req, query, resp, 401, "HYB_E_UNAUTHORIZED",
                              "CoAP serves only the routes of edge.anonymous");
                edge_route_clear(&r);
                return;
        }
        if (has_option(req, COAP_OPTION_CONTENT_FORMAT, &v) && v != COAP_MEDIATYPE_APPLICATION_JSON) {
                respond_error(ec, res, s, req, query, resp, 415, "HYB_E_BAD_REQUEST",
                              "the payload must be JSON (Content-Format 50, or none)");
                edge_route_clear(&r);
                return;
        }
        if (r.kind == EDGE_ROUTE_WATCH || r.kind == EDGE_ROUTE_EVENTS) {
                bool obs = has_option(req, COAP_OPTION_OBSERVE, &observe);

                if (obs && observe == 0) {
                        start_observe(ec, res, s, req, query, resp, &r, &ss);
                        return;
                }
                edge_route_clear(&r);
                if (obs && observe == 1 && (o = obs_by_token(ec, s, coap_pdu_get_token(req)))) {
                        obs_free(o); /* deregistration: the subscription and its session go */
                        respond(ec, res, s, req, query, resp, EDGE_M_GET, 200, false, "{}", 2);
                        return;
                }
                respond_error(ec, res, s, req, query, resp, 400, "HYB_E_BAD_REQUEST",
                              "this route is observed: GET with Observe 0 (RFC 7641)");
                return;
        }
        /* the body, gathered from its Block1 blocks */
        if (method == EDGE_M_POST || method == EDGE_M_PUT) {
                coap_get_data_large(req, &len, &data, &offset, &total);
                if (offset > 0 || offset + len < total) {
                        st = upload_block(ec, s, path, &ss, data, len, offset, total, &up);
                        if (st || !up) {
                                if (st)
                                        respond_error(ec, res, s, req, query, resp, st,
                                                      status_code_name(st),
                                                      st == 413 ? "the body is over limits.max_body"
                                                      : st == 408 ? "a block out of order"
                                                                  : "cannot take the body now");
                                else /* more to come: libcoap answers 2.31 Continue */
                                        coap_pdu_set_code(resp, COAP_RESPONSE_CODE(204));
                                edge_route_clear(&r);
                                return;
                        }
                        data = (const uint8_t *)up->buf;
                        len = up->len;
                }
                if (len > ec->b->c->max_body) {
                        respond_error(ec, res, s, req, query, resp, 413, "HYB_E_TOO_BIG",
                                      "the body is over limits.max_body");
                        upload_free(up);
                        edge_route_clear(&r);
                        return;
                }
        }
        if (r.kind == EDGE_ROUTE_BUS) {
                coap_opt_iterator_t it;
                coap_opt_t *t = coap_check_option(req, EDGE_COAP_OPT_TIMEOUT, &it);

                if (t && edge_timeout_parse((const char *)coap_opt_value(t), coap_opt_length(t),
                                            &timeout) < 0) {
                        respond_error(ec, res, s, req, query, resp, 400, "HYB_E_BAD_REQUEST",
                                      "option %u (timeout): expected 1..%u ms in digits",
                                      EDGE_COAP_OPT_TIMEOUT, WIRE_TIMEOUT_MAX);
                        upload_free(up);
                        edge_route_clear(&r);
                        return;
                }
                if (method == EDGE_M_GET) {
                        if (edge_coap_query_params(req, &params) < 0) {
                                respond_error(ec, res, s, req, query, resp, 400,
                                              "HYB_E_BAD_REQUEST", "malformed Uri-Query");
                                edge_route_clear(&r);
                                return;
                        }
                        data = (const uint8_t *)params;
                        len = strlen(params);
                }
        }
        if (ec->n_reqs >= EDGE_COAP_MAX_PENDING ||
            pending_of(ec, &ss) >= EDGE_COAP_MAX_PENDING_PER_ADDRESS) {
                broker_log(ec->b, HYB_LOG_WARNING, "edge: CoAP request refused: %u pending%s",
                           ec->n_reqs, ec->n_reqs >= EDGE_COAP_MAX_PENDING ? "" : " (per address)");
                respond_error(ec, res, s, req, query, resp, 503, "HYB_E_UNAVAILABLE",
                              "too many requests pending");
                upload_free(up);
                edge_route_clear(&r);
                return;
        }
        q = calloc(1, sizeof *q);
        if (!q) {
                respond_error(ec, res, s, req, query, resp, 500, "HYB_E_INTERNAL", "out of memory");
                upload_free(up);
                edge_route_clear(&r);
                return;
        }
        q->tag = TAG_REQ;
        q->ec = ec;
        q->addr = ss;
        q->session = s;
        q->method = method;
        q->next = ec->reqs;
        ec->reqs = q;
        ec->n_reqs++;
        {
                edge_peer *peer = NULL;

                hyb_error_clear(&e);
                st = edge_peer_new(ec->b, NULL, "coap", &peer, &e);
                if (st < 0) {
                        int hs = edge_http_status(hyb_err_to_status(st));
                        respond_error(ec, res, s, req, query, resp, hs, hyb_err_name(st), "%s",
                                      e.message[0] ? e.message : hyb_strerror(st));
                        req_free(q);
                        upload_free(up);
                        edge_route_clear(&r);
                        return;
                }
                op = edge_op_start(peer, &r, method, (const char *)data, len, timeout, on_answer,
                                   q);
        }
        upload_free(up);
        if (!op) { /* answered at once */
                respond(ec, res, s, req, query, resp, method, q->status, q->binary, q->body,
                        q->len);
                req_free(q);
                return;
        }
        q->op = op;
        {
                coap_pdu_t *copy = request_copy(s, req, NULL);

                q->async = copy ? coap_register_async(s, copy, 0) : NULL;
                if (copy)
                        coap_delete_pdu(copy);
        }
        if (!q->async) {
                respond_error(ec, res, s, req, query, resp, 503, "HYB_E_UNAVAILABLE",
                              "this token is in use by a pending request");
                req_free(q);
                return;
        }
        coap_async_set_app_data(q->async, q);
        /* no code: an empty ACK now (CON), the answer as a separate response */
}

/* ----------------------------------------------------------------- sessions */

static int on_coap_event(coap_session_t *s, const coap_event_t event)
{
        edge_coap *ec = coap_get_app_data(coap_session_get_context(s));

        if (!ec || event != COAP_EVENT_SERVER_SESSION_DEL)
                return 0;
        for (cobs *o = ec->obs, *next; o; o = next) {
                next = o->next;
                if (o->session == s) {
                        o->async = NULL; /* libcoap frees the session's asyncs */
                        obs_free(o);
                }
        }
        for (creq *q = ec->reqs, *next; q; q = next) {
                next = q->next;
                if (q->session == s)
                        req_free(q);
        }
        for (cupload **pp = &ec->uploads; *pp;) {
                cupload *u = *pp;

                if (u->session == s) {
                        *pp = u->next;
                        upload_free(u);
                } else {
                        pp = &u->next;
                }
        }
        return 0;
}

/* Every few seconds: uploads left half-way end. */
static void on_sweep(evutil_socket_t fd, short what, void *ud)
{
        edge_coap *ec = ud;
        time_t now = time(NULL);

        (void)fd;
        (void)what;
        for (cupload **pp = &ec->uploads; *pp;) {
                cupload *u = *pp;

                if (now - u->last > EDGE_COAP_UPLOAD_IDLE_S) {
                        *pp = u->next;
                        upload_free(u);
                } else {
                        pp = &u->next;
                }
        }
}

static void coap_run(edge_coap *ec)
{
        struct timeval tv;
        unsigned ms;

        coap_io_process(ec->ctx, COAP_IO_NO_WAIT);
        obs_flush(ec);
        while (ec->n_dead) /* observers gone: their resources (none of libcoap's calls runs) */
                coap_delete_resource(ec->ctx, ec->dead[--ec->n_dead]);
        coap_tick_t now;

        coap_ticks(&now);
        ms = coap_io_prepare_epoll(ec->ctx, now);
        evtimer_del(ec->timer_ev);
        if (ms) {
                tv.tv_sec = ms / 1000;
                tv.tv_usec = (ms % 1000) * 1000;
                evtimer_add(ec->timer_ev, &tv);
        }
}

static void on_timer(evutil_socket_t fd, short what, void *ud)
{
        (void)fd;
        (void)what;
        coap_run(ud);
}

/* ----------------------------------------------------------------- start, stop */

static bool loopback(const struct sockaddr_storage *ss)
{
        if (ss->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
        if (ss->ss_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
        return false;
}

int edge_coap_start(hyb_broker *b, hyb_error *e)
{
        const char *spec = b->c->listen_coap;
        struct sockaddr_storage ss;
        int sl = (int)sizeof ss;
        coap_address_t addr;
        coap_endpoint_t *ep;
        edge_coap *ec;
        struct timeval sweep = {5, 0};
        int fd;

        if (!spec || b->coap)
                return 0;
        if (broker_parse_hostport(spec, &ss, &sl) < 0)
                return err_set(e, HYB_E_CONFIG, -1, "listen.coap: not HOST:PORT: %s", spec);
        coap_startup();
        coap_set_log_level(getenv("HYB_COAP_DEBUG") ? LOG_DEBUG : LOG_EMERG); /* libcoap: quiet */
        ec = calloc(1, sizeof *ec);
        if (!ec)
                return -ENOMEM;
        ec->b = b;
        b->coap = ec;
        ec->ctx = coap_new_context(NULL);
        if (!ec->ctx)
                return err_set(e, -ENOMEM, -1, "listen.coap: cannot make a CoAP context");
        coap_set_app_data(ec->ctx, ec);
        coap_context_set_block_mode(ec->ctx, COAP_BLOCK_USE_LIBCOAP);
        coap_context_set_max_idle_sessions(ec->ctx, EDGE_COAP_MAX_SESSIONS);
        coap_context_set_session_timeout(ec->ctx, EDGE_COAP_SESSION_IDLE_S);
        coap_register_option(ec->ctx, EDGE_COAP_OPT_TIMEOUT);
        coap_register_event_handler(ec->ctx, on_coap_event);
        ec->unknown = coap_resource_unknown_init2(on_request, 0);
        if (!ec->unknown)
                return -ENOMEM;
        coap_register_request_handler(ec->unknown, COAP_REQUEST_GET, on_request);
        coap_register_request_handler(ec->unknown, COAP_REQUEST_POST, on_request);
        coap_register_request_handler(ec->unknown, COAP_REQUEST_DELETE, on_request);
        coap_add_resource(ec->ctx, ec->unknown);
        coap_address_init(&addr);
        memcpy(&addr.addr, &ss, (size_t)sl);
        addr.size = (socklen_t)sl;
        ep = coap_new_endpoint(ec->ctx, &addr, COAP_PROTO_UDP);
        if (!ep)
                return err_set(e, -EADDRINUSE, -1, "listen.coap: cannot listen on %s", spec);
        fd = coap_context_get_coap_fd(ec->ctx);
        if (fd < 0)
                return err_set(e, -ENOTSUP, -1, "listen.coap: libcoap has no epoll fd");
        ec->io_ev = event_new(b->base, fd, EV_READ | EV_PERSIST, on_io, ec);
        ec->timer_ev = evtimer_new(b->base, on_timer, ec);
        ec->kick_ev = evtimer_new(b->base, on_timer, ec);
        ec->sweep_ev = event_new(b->base, -1, EV_PERSIST, on_sweep, ec);
        if (!ec->io_ev || !ec->timer_ev || !ec->kick_ev || !ec->sweep_ev ||
            event_add(ec->io_ev, NULL) < 0 || event_add(ec->sweep_ev, &sweep) < 0)
                return -ENOMEM;
        /* The address bound (port 0 in the configuration: the port the kernel chose) */
        broker_log(b, HYB_LOG_INFO, "edge: CoAP on %s", coap_endpoint_str(ep));
        if (!loopback(&ss))
                broker_log(b, HYB_LOG_WARNING,
                           "edge: listen.coap %s is not a loopback address: CoAP has no DTLS "
                           "here, anyone who reaches it is served the anonymous routes",
                           spec);
        coap_run(ec);
        return 0;
}

void edge_coap_stop(hyb_broker *b)
{
        edge_coap *ec = b->coap;

        if (!ec)
                return;
        b->coap = NULL;
        while (ec->obs)
                obs_free(ec->obs);
        while (ec->reqs)
                req_free(ec->reqs);
        while (ec->uploads) {
                cupload *u = ec->uploads;
                ec->uploads = u->next;
                upload_free(u);
        }
        if (ec->ctx) {
                coap_set_app_data(ec->ctx, NULL); /* no handler of ours runs from here on */
                coap_free_context(ec->ctx); /* the observers' resources with it */
        }
        free(ec->dead);
        if (ec->io_ev)
                event_free(ec->io_ev);
        if (ec->timer_ev)
                event_free(ec->timer_ev);
        if (ec->kick_ev)
                event_free(ec->kick_ev);
        if (ec->sweep_ev)
                event_free(ec->sweep_ev);
        free(ec);
}
