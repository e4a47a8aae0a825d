/* SPDX-License-Identifier: MIT */
/*
 * CoAP (RFC 7252) on listen.coap (doc/edge.md "CoAP"): libcoap 3 parses and answers the
 * datagrams (retransmission, deduplication, Block2 of large answers, Observe), the routes
 * are those of HTTP, served by the same transport-neutral layer (routes.c edge_op_*,
 * sse.c edge_stream_subscribe) with a session per request: of the anonymous principal on
 * the routes of edge.anonymous, else of the token the request's credentials name, once
 * checked (coap-auth.c).
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
 * Observations: coap-observe.c.  What the edge reads out of options: coap-parse.c.
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
#include "coap-internal.h"

/* libcoap must know our two options over 255 (edge_coap_start). */
_Static_assert(COAP_OPT_FILTER_LONG >= 2, "libcoap's option filter holds too few long options");

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

/* Requests and uploads in all (both hold memory while the broker works or blocks come). */
static unsigned pending_total(edge_coap *ec)
{
        unsigned n = ec->n_reqs;

        for (cupload *u = ec->uploads; u; u = u->next)
                n++;
        return n;
}

/* Requests and uploads of one address. */
static unsigned pending_of(edge_coap *ec, const struct sockaddr_storage *ss)
{
        unsigned n = 0;

        for (creq *q = ec->reqs; q; q = q->next)
                n += edge_addr_same(&q->addr, ss);
        for (cupload *u = ec->uploads; u; u = u->next)
                n += edge_addr_same(&u->addr, ss);
        return n;
}

/* ----------------------------------------------------------------- the loop */

static void coap_run(edge_coap *ec);

void edge_coap_kick(edge_coap *ec)
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
coap_pdu_code_t edge_coap_code(int status, int method)
{
        if (status == 201)
                return COAP_RESPONSE_CODE(201); /* 2.01 Created: a token uploaded */
        if (status == 200) {
                if (method == EDGE_M_PUT)
                        return COAP_RESPONSE_CODE(204); /* 2.04 Changed */
                if (method == EDGE_M_DELETE)
                        return COAP_RESPONSE_CODE(202); /* 2.02 Deleted */
                return COAP_RESPONSE_CODE(205);         /* 2.05 Content */
        }
        switch (status) {
        case 400:
        case 401:
        case 403:
        case 404:
        case 405:
        case 406:
        case 408:
        case 409:
        case 412:
        case 413:
        case 415:
        case 429:
        case 500:
        case 501:
        case 502:
        case 503:
        case 504:
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
void edge_coap_respond(edge_coap *ec, coap_resource_t *res, coap_session_t *s,
                       const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp,
                       int method, int status, bool binary, const char *body, size_t len)
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
        coap_pdu_set_code(resp, edge_coap_code(status, method));
        if ((status == 200 && (method == EDGE_M_PUT || method == EDGE_M_DELETE)) || status == 201)
                len = 0; /* 2.04, 2.02, 2.01: no payload */
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

void edge_coap_respond_error(edge_coap *ec, coap_resource_t *res, coap_session_t *s,
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
        edge_coap_respond(ec, res, s, req, query, resp, EDGE_M_GET, status, false, text ? text : "",
                          text ? strlen(text) : 0);
        free(text);
}

const char *edge_coap_status_name(int status)
{
        switch (status) {
        case 400:
                return "HYB_E_BAD_REQUEST";
        case 401:
                return "HYB_E_UNAUTHORIZED";
        case 403:
                return "HYB_E_FORBIDDEN";
        case 404:
                return "HYB_E_NOT_FOUND";
        case 413:
                return "HYB_E_TOO_BIG";
        case 500:
                return "HYB_E_INTERNAL";
        case 503:
                return "HYB_E_UNAVAILABLE";
        default:
                return "HYB_E_BAD_CALLEE";
        }
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
        edge_coap_auth_cancel(q->verify);
        edge_op_cancel(q->op);
        edge_route_clear(&q->r);
        free(q->in);
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
                edge_coap_kick(q->ec);
        }
}

/* q's answer is status with the error body of msg. */
static void req_error(creq *q, int status, const char *msg)
{
        q->done = true;
        q->status = status;
        q->binary = false;
        free(q->body);
        q->body = edge_error_json(status, edge_coap_status_name(status), "%s", msg);
        q->len = q->body ? strlen(q->body) : 0;
        if (q->async) {
                coap_async_trigger(q->async);
                edge_coap_kick(q->ec);
        }
}

/* The verdict on q's credentials: served as the token's principal, or refused. */
static void on_verified(void *ud, hyb_token_result *tok, int status, const char *msg)
{
        creq *q = ud;
        edge_peer *peer = NULL;
        hyb_error e;
        edge_op *op;
        int st;

        q->verify = NULL;
        if (status) {
                req_error(q, status, msg);
                return;
        }
        if (q->authz) {
                req_error(q, 201, ""); /* 2.01 Created, no payload */
                return;
        }
        hyb_error_clear(&e);
        st = edge_peer_new(q->ec->b, tok, "coap", &peer, &e);
        if (st < 0) {
                req_error(q, edge_http_status(hyb_err_to_status(st)),
                          e.message[0] ? e.message : hyb_strerror(st));
                return;
        }
        op = edge_op_start(peer, &q->r, q->method, q->in, q->in_len, q->timeout, on_answer, q);
        if (op)
                q->op = op; /* else answered at once: on_answer triggered the async */
}

/* ----------------------------------------------------------------- the handler */

/* Answers a request (or an observation) whose credentials could not be checked: the reason
 * goes to the daemon's log, the peer gets "unauthorized" for a 401 (one answer for every bad
 * credential) except "unknown token", which tells an honest client to upload it again. */
void edge_coap_refuse(edge_coap *ec, coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
                      const coap_string_t *query, coap_pdu_t *resp, const char *what, int vst,
                      const hyb_error *e)
{
        const char *shown = vst != 401                              ? e->message
                            : strstr(e->message, "unknown token") ? e->message
                                                                    : "unauthorized";

        broker_log(ec->b, HYB_LOG_INFO, "edge: CoAP %s%d %s", what, vst, e->message);
        edge_coap_respond_error(ec, res, s, req, query, resp, vst, edge_coap_status_name(vst), "%s",
                                shown);
}

void edge_coap_on_request(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
                          const coap_string_t *query, coap_pdu_t *resp);

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
                if (pending_total(ec) >= EDGE_COAP_MAX_PENDING ||
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

void edge_coap_on_request(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
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
        edge_coap_cred cred;
        const uint8_t *body;
        size_t body_len;
        bool authz, has_cred;
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
                        edge_coap_respond(ec, res, s, req, query, resp, q->method, q->status,
                                          q->binary, q->body, q->len);
                        req_free(q);
                        return;
                }
                if (tag && *tag == TAG_OBS && ((cobs *)tag)->state != OBS_SUBSCRIBING) {
                        edge_coap_observe_answer(ec, (cobs *)tag, res, s, req, query, resp);
                        return;
                }
                return; /* the same token again while it waits: the answer will come */
        }
        /* 2. on an observer's own resource: a notification (or a stray request) */
        if (res != ec->unknown) {
                o = coap_resource_get_userdata(res);
                if (o && o->session == s && o->state == OBS_LIVE && o->token_len == tok.length &&
                    memcmp(o->token, tok.s, tok.length) == 0 &&
                    !(req && edge_coap_option(req, COAP_OPTION_OBSERVE, &observe) &&
                      observe == 1)) {
                        edge_coap_obs_notify(ec, o, res, s, req, query, resp);
                        return;
                }
                if (o && req && edge_coap_option(req, COAP_OPTION_OBSERVE, &observe) &&
                    observe == 1 && o->session == s)
                        edge_coap_obs_free(o); /* deregistered on its own resource */
                edge_coap_respond_error(ec, res, s, req, query, resp, 404, "HYB_E_NOT_FOUND",
                                        "no such observation");
                return;
        }
        if (!req)
                return;
        /* 3. a new request */
        addr_of(s, &ss);
        method = method_of(coap_pdu_get_code(req));
        if (edge_coap_path(req, path, sizeof path) < 0) {
                edge_coap_respond_error(ec, res, s, req, query, resp, 404, "HYB_E_NOT_FOUND",
                                        "the path is too long");
                return;
        }
        hyb_error_clear(&e);
        authz = strcmp(path, EDGE_COAP_AUTHZ_PATH) == 0;
        if (authz) {
                edge_route_init(&r); /* the token upload: no route of the broker's */
        } else {
                st = edge_route_parse(path, &r, &e);
                if (st) {
                        edge_coap_respond_error(ec, res, s, req, query, resp, st,
                                                edge_coap_status_name(st), "%s", e.message);
                        return;
                }
        }
        if (!method || (authz ? method != EDGE_M_POST : !edge_method_allowed(r.kind, method))) {
                edge_coap_respond_error(ec, res, s, req, query, resp, 405, "HYB_E_BAD_REQUEST",
                                        "method not allowed on this route");
                edge_route_clear(&r);
                return;
        }
        /* credentials: option 65003 (coap-auth.c) */
        st = edge_coap_cred_read(req, &cred);
        if (st < 0 || (st == 0 && (authz || !edge_anonymous(ec->b->c, r.path)))) {
                edge_coap_respond_error(
                        ec, res, s, req, query, resp, 401, "HYB_E_UNAUTHORIZED",
                        st < 0 ? "malformed credentials (option %u)"
                               : "credentials required (option %u)",
                        EDGE_COAP_OPT_PROOF);
                edge_route_clear(&r);
                return;
        }
        has_cred = st > 0;
        if (!authz && edge_coap_option(req, COAP_OPTION_CONTENT_FORMAT, &v) &&
            v != COAP_MEDIATYPE_APPLICATION_JSON) {
                edge_coap_respond_error(ec, res, s, req, query, resp, 415, "HYB_E_BAD_REQUEST",
                                        "the payload must be JSON (Content-Format 50, or none)");
                edge_route_clear(&r);
                return;
        }
        if (r.kind == EDGE_ROUTE_WATCH || r.kind == EDGE_ROUTE_EVENTS) {
                bool obs = edge_coap_option(req, COAP_OPTION_OBSERVE, &observe);

                if (obs && observe == 0) {
                        edge_coap_observe_start(ec, res, s, req, query, resp, &r, &ss,
                                                has_cred ? &cred : NULL);
                        return;
                }
                edge_route_clear(&r);
                if (obs && observe == 1 &&
                    (o = edge_coap_obs_by_token(ec, s, coap_pdu_get_token(req)))) {
                        /* deregistration: the subscription and its session go */
                        edge_coap_obs_free(o);
                        edge_coap_respond(ec, res, s, req, query, resp, EDGE_M_GET, 200, false,
                                          "{}", 2);
                        return;
                }
                edge_coap_respond_error(ec, res, s, req, query, resp, 400, "HYB_E_BAD_REQUEST",
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
                                        edge_coap_respond_error(
                                                ec, res, s, req, query, resp, st,
                                                edge_coap_status_name(st),
                                                st == 413   ? "the body is over limits.max_body"
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
                        edge_coap_respond_error(ec, res, s, req, query, resp, 413, "HYB_E_TOO_BIG",
                                                "the body is over limits.max_body");
                        upload_free(up);
                        edge_route_clear(&r);
                        return;
                }
        }
        /* what the proof signs: the payload as sent (params of a GET come from the URI) */
        body = data;
        body_len = len;
        if (r.kind == EDGE_ROUTE_BUS) {
                coap_opt_iterator_t it;
                coap_opt_t *t = coap_check_option(req, EDGE_COAP_OPT_TIMEOUT, &it);

                if (t && edge_timeout_parse((const char *)coap_opt_value(t), coap_opt_length(t),
                                            &timeout) < 0) {
                        edge_coap_respond_error(ec, res, s, req, query, resp, 400,
                                                "HYB_E_BAD_REQUEST",
                                                "option %u (timeout): expected 1..%u ms in digits",
                                                EDGE_COAP_OPT_TIMEOUT, WIRE_TIMEOUT_MAX);
                        upload_free(up);
                        edge_route_clear(&r);
                        return;
                }
                if (method == EDGE_M_GET) {
                        if (edge_coap_query_params(req, &params) < 0) {
                                edge_coap_respond_error(ec, res, s, req, query, resp, 400,
                                                        "HYB_E_BAD_REQUEST", "malformed Uri-Query");
                                edge_route_clear(&r);
                                return;
                        }
                        data = (const uint8_t *)params;
                        len = strlen(params);
                }
        }
        if (pending_total(ec) >= EDGE_COAP_MAX_PENDING ||
            pending_of(ec, &ss) >= EDGE_COAP_MAX_PENDING_PER_ADDRESS) {
                unsigned n = pending_total(ec);

                broker_log(ec->b, HYB_LOG_WARNING, "edge: CoAP request refused: %u pending%s", n,
                           n >= EDGE_COAP_MAX_PENDING ? "" : " (per address)");
                edge_coap_respond_error(ec, res, s, req, query, resp, 503, "HYB_E_UNAVAILABLE",
                                        "too many requests pending");
                upload_free(up);
                edge_route_clear(&r);
                return;
        }
        q = calloc(1, sizeof *q);
        if (!q) {
                edge_coap_respond_error(ec, res, s, req, query, resp, 500, "HYB_E_INTERNAL",
                                        "out of memory");
                upload_free(up);
                edge_route_clear(&r);
                return;
        }
        q->tag = TAG_REQ;
        q->ec = ec;
        q->addr = ss;
        q->session = s;
        q->method = method;
        q->authz = authz;
        edge_route_init(&q->r);
        q->next = ec->reqs;
        ec->reqs = q;
        ec->n_reqs++;
        if (has_cred) {
                /* served once its credentials held: the route and body wait in q */
                int vst = 0;

                q->timeout = timeout;
                edge_route_move(&q->r, &r);
                if (len && !(q->in = malloc(len))) {
                        edge_coap_respond_error(ec, res, s, req, query, resp, 500,
                                                "HYB_E_INTERNAL", "out of memory");
                        req_free(q);
                        upload_free(up);
                        return;
                }
                if (len)
                        memcpy(q->in, data, len);
                q->in_len = len;
                hyb_error_clear(&e);
                q->verify = edge_coap_auth_start(ec, s, req, method, &cred, authz, body, body_len,
                                                 &ss, on_verified, q, &vst, &e);
                upload_free(up);
                if (!q->verify) {
                        edge_coap_refuse(ec, res, s, req, query, resp, "", vst, &e);
                        req_free(q);
                        return;
                }
                {
                        coap_pdu_t *copy = edge_coap_request_copy(s, req, NULL);

                        q->async = copy ? coap_register_async(s, copy, 0) : NULL;
                        if (copy)
                                coap_delete_pdu(copy);
                }
                if (!q->async) {
                        edge_coap_respond_error(ec, res, s, req, query, resp, 503,
                                                "HYB_E_UNAVAILABLE",
                                                "this token is in use by a pending request");
                        req_free(q); /* its check goes on, without it */
                        return;
                }
                coap_async_set_app_data(q->async, q);
                /* else no code: an empty ACK now (CON), the answer as a separate response */
                return;
        }
        {
                edge_peer *peer = NULL;

                hyb_error_clear(&e);
                st = edge_peer_new(ec->b, NULL, "coap", &peer, &e);
                if (st < 0) {
                        int hs = edge_http_status(hyb_err_to_status(st));
                        edge_coap_respond_error(ec, res, s, req, query, resp, hs, hyb_err_name(st),
                                                "%s", e.message[0] ? e.message : hyb_strerror(st));
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
                edge_coap_respond(ec, res, s, req, query, resp, method, q->status, q->binary,
                                  q->body, q->len);
                req_free(q);
                return;
        }
        q->op = op;
        {
                coap_pdu_t *copy = edge_coap_request_copy(s, req, NULL);

                q->async = copy ? coap_register_async(s, copy, 0) : NULL;
                if (copy)
                        coap_delete_pdu(copy);
        }
        if (!q->async) {
                edge_coap_respond_error(ec, res, s, req, query, resp, 503, "HYB_E_UNAVAILABLE",
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
                        edge_coap_obs_free(o);
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
        edge_coap_obs_flush(ec);
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
        /* Our critical options, known to libcoap (else 4.02).  Its filter of known options
         * holds two numbers over 255 (COAP_OPT_FILTER_LONG): these two; a third would be
         * refused, silently. */
        coap_register_option(ec->ctx, EDGE_COAP_OPT_TIMEOUT);
        coap_register_option(ec->ctx, EDGE_COAP_OPT_PROOF);
        coap_register_event_handler(ec->ctx, on_coap_event);
        ec->unknown = coap_resource_unknown_init2(edge_coap_on_request, 0);
        if (!ec->unknown)
                return -ENOMEM;
        coap_register_request_handler(ec->unknown, COAP_REQUEST_GET, edge_coap_on_request);
        coap_register_request_handler(ec->unknown, COAP_REQUEST_POST, edge_coap_on_request);
        coap_register_request_handler(ec->unknown, COAP_REQUEST_DELETE, edge_coap_on_request);
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
        edge_coap_auth_stop(ec); /* no verdict comes back from here on */
        while (ec->obs)
                edge_coap_obs_free(ec->obs);
        while (ec->reqs)
                req_free(ec->reqs);
        while (ec->uploads) {
                cupload *u = ec->uploads;
                ec->uploads = u->next;
                upload_free(u);
        }
        if (ec->ctx) {
                coap_set_app_data(ec->ctx, NULL); /* no handler of ours runs from here on */
                coap_free_context(ec->ctx);       /* the observers' resources with it */
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
