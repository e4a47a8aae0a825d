/* SPDX-License-Identifier: MIT */
/*
 * Observe (RFC 7641) on the CoAP edge (doc/edge.md "CoAP", "Observe"): GET /watch/<pattern>
 * or /events/<app>/<runner>/<bubble> with Observe 0 makes a subscription (cobs) with its own
 * session (of the anonymous principal, or of the token its credentials name once checked:
 * on_obs_verified), its own queue and its own observable resource,
 * hyb-obs/<id>: libcoap observes registered resources only, and one resource per observer
 * means coap_resource_notify_observers reaches that observer alone, so each drains its own
 * queue, one message per notification, in order.  The registration reaches that resource
 * as the copy of the request its async hands back (coap-parse.c).
 *
 *   GET Observe 0 --> subscribe (builtin), async registered, empty ACK
 *   subscribed    --> async triggered --> the copy on hyb-obs/<id>: libcoap adds the
 *                     observer, the answer 2.05 {}
 *   event         --> queued, coap_resource_notify_observers --> one notification
 *
 * Notifications are confirmable: a peer that does not acknowledge gets no more, and past
 * EDGE_COAP_MAX_QUEUED waiting messages its observation ends (5.03).  An observer libcoap
 * dropped (RST, deregistration, failed notifications) is found at its next notification
 * (notify returns 0), or when its session goes, and freed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap-internal.h"

static unsigned observers_of(edge_coap *ec, const struct sockaddr_storage *ss)
{
        unsigned n = 0;

        for (cobs *o = ec->obs; o; o = o->next)
                n += edge_addr_same(&o->addr, ss);
        return n;
}

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

void edge_coap_obs_free(cobs *o)
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
        edge_coap_auth_cancel(o->verify);
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
static void obs_end(cobs *o, int status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
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
        o->end_body = edge_error_json(status, edge_coap_status_name(status), "%s", msg);
        edge_peer_free(o->peer); /* its session ends now */
        o->peer = NULL;
        edge_coap_kick(o->ec);
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
        edge_coap_kick(o->ec);
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
                edge_coap_kick(o->ec);
        }
}

cobs *edge_coap_obs_by_token(edge_coap *ec, coap_session_t *s, coap_bin_const_t tok)
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
        coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_NON, edge_coap_code(o->end_status, EDGE_M_GET),
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
void edge_coap_obs_flush(edge_coap *ec)
{
        cobs *o = ec->obs, *next;

        for (; o; o = next) {
                next = o->next;
                if (o->state != OBS_LIVE || (!o->head && !o->ended))
                        continue;
                if (o->ended) {
                        obs_send_end(o);
                        edge_coap_obs_free(o);
                } else if (!coap_resource_notify_observers(o->res, NULL)) {
                        edge_coap_obs_free(o);
                }
        }
}

/* A notification for o (libcoap's handler call for its observer). */
void edge_coap_obs_notify(edge_coap *ec, cobs *o, coap_resource_t *res, coap_session_t *s,
                          const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp)
{
        cmsg *m = o->head;

        if (m) {
                o->head = m->next;
                if (!o->head)
                        o->tail = NULL;
                o->n--;
                edge_coap_respond(ec, res, s, req, query, resp, EDGE_M_GET, 200, false, m->text,
                                  m->len);
                free(m);
                if (o->head || o->ended)
                        edge_coap_kick(ec);
                return;
        }
        /* nothing due (an end is sent by obs_flush, never as an error notification) */
        edge_coap_respond(ec, res, s, req, query, resp, EDGE_M_GET, 200, false, "{}", 2);
}

/* o's own observable resource, hyb-obs/<id> (libcoap observes registered resources only;
 * one per observer, so a notification goes to that observer alone). */
static coap_resource_t *observable(edge_coap *ec, cobs *o)
{
        char name[64];
        coap_str_const_t *n;
        coap_resource_t *r;

        snprintf(name, sizeof name, EDGE_COAP_OBS_PATH "/%s", o->idbuf);
        n = coap_new_str_const((const uint8_t *)name, strlen(name));
        r = n ? coap_resource_init(n,
                                   COAP_RESOURCE_FLAGS_RELEASE_URI | COAP_RESOURCE_FLAGS_NOTIFY_CON)
              : NULL;
        if (!r) {
                if (n)
                        coap_delete_str_const(n);
                return NULL;
        }
        coap_register_request_handler(r, COAP_REQUEST_GET, edge_coap_on_request);
        coap_resource_set_get_observable(r, 1);
        coap_resource_set_userdata(r, o);
        coap_add_resource(ec->ctx, r);
        return r;
}

/* The verdict on the credentials of o's registration: subscribed as the token's
 * principal, or refused (the registration's answer says so). */
static void on_obs_verified(void *ud, hyb_token_result *tok, int status, const char *msg)
{
        cobs *o = ud;
        hyb_error e;
        int st;

        o->verify = NULL;
        if (!status) {
                hyb_error_clear(&e);
                st = edge_peer_new(o->ec->b, tok, "coap", &o->peer, &e);
                if (st < 0) {
                        status = edge_http_status(hyb_err_to_status(st));
                        msg = e.message[0] ? e.message : hyb_strerror(st);
                } else {
                        edge_peer_set_event_cb(o->peer, on_obs_event, o);
                        if (edge_stream_subscribe(o->peer, &o->r, on_obs_subscribed, o) == 0)
                                return; /* on_obs_subscribed answers */
                        status = 503;
                        msg = "cannot subscribe now";
                }
        }
        o->state = OBS_FAILED;
        o->end_status = status;
        free(o->end_body);
        o->end_body = edge_error_json(status, edge_coap_status_name(status), "%s", msg);
        if (o->async) {
                coap_async_trigger(o->async);
                edge_coap_kick(o->ec);
        }
}

void edge_coap_observe_start(edge_coap *ec, coap_resource_t *res, coap_session_t *s,
                             const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp,
                             edge_route *r, const struct sockaddr_storage *ss,
                             const edge_coap_cred *cred)
{
        coap_bin_const_t tok = coap_pdu_get_token(req);
        coap_pdu_t *copy;
        hyb_error e;
        cobs *o;
        int st;

        if (ec->n_obs >= EDGE_COAP_MAX_OBSERVERS ||
            observers_of(ec, ss) >= EDGE_COAP_MAX_OBSERVERS_PER_ADDRESS) {
                broker_log(ec->b, HYB_LOG_WARNING, "edge: CoAP observe refused: %u observers%s",
                           ec->n_obs, ec->n_obs >= EDGE_COAP_MAX_OBSERVERS ? "" : " (per address)");
                edge_coap_respond_error(ec, res, s, req, query, resp, 503, "HYB_E_UNAVAILABLE",
                                        "too many observers");
                edge_route_clear(r);
                return;
        }
        if (edge_coap_obs_by_token(ec, s, tok)) {
                edge_coap_respond_error(ec, res, s, req, query, resp, 400, "HYB_E_BAD_REQUEST",
                                        "this token observes already");
                edge_route_clear(r);
                return;
        }
        o = calloc(1, sizeof *o);
        if (!o) {
                edge_coap_respond_error(ec, res, s, req, query, resp, 500, "HYB_E_INTERNAL",
                                        "out of memory");
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
        edge_route_move(&o->r, r);
        o->state = OBS_SUBSCRIBING;
        o->next = ec->obs;
        ec->obs = o;
        ec->n_obs++;
        o->res = observable(ec, o);
        hyb_error_clear(&e);
        if (cred) {
                /* subscribed once the proof held (on_obs_verified): a GET, no payload */
                int vst = 500;

                o->verify = o->res ? edge_coap_auth_start(ec, s, req, EDGE_M_GET, cred, false,
                                                          NULL, 0, ss, on_obs_verified, o, &vst,
                                                          &e)
                                   : NULL;
                if (!o->verify) {
                        edge_coap_refuse(ec, res, s, req, query, resp, "observe ", vst, &e);
                        edge_coap_obs_free(o);
                        return;
                }
                copy = edge_coap_request_copy(s, req, o->idbuf);
                o->async = copy ? coap_register_async(s, copy, 0) : NULL;
                if (copy)
                        coap_delete_pdu(copy);
                if (!o->async) {
                        edge_coap_respond_error(ec, res, s, req, query, resp, 503,
                                                "HYB_E_UNAVAILABLE", "cannot subscribe now");
                        edge_coap_obs_free(o); /* its check goes on, without it */
                        return;
                }
                coap_async_set_app_data(o->async, o);
                return; /* no code: an empty ACK now, the answer once subscribed */
        }
        st = o->res ? edge_peer_new(ec->b, NULL, "coap", &o->peer, &e) : -ENOMEM;
        if (st < 0) {
                int hs = edge_http_status(hyb_err_to_status(st));
                edge_coap_respond_error(ec, res, s, req, query, resp, hs, hyb_err_name(st), "%s",
                                        e.message[0] ? e.message : hyb_strerror(st));
                edge_coap_obs_free(o);
                return;
        }
        edge_peer_set_event_cb(o->peer, on_obs_event, o);
        copy = edge_coap_request_copy(s, req, o->idbuf);
        o->async = copy ? coap_register_async(s, copy, 0) : NULL;
        if (copy)
                coap_delete_pdu(copy);
        if (!o->async || edge_stream_subscribe(o->peer, &o->r, on_obs_subscribed, o) < 0) {
                edge_coap_respond_error(ec, res, s, req, query, resp, 503, "HYB_E_UNAVAILABLE",
                                        "cannot subscribe now");
                edge_coap_obs_free(o);
                return;
        }
        coap_async_set_app_data(o->async, o);
        /* no code: an empty ACK now, the answer once subscribed */
}

/* The registration handed back: answer it, and libcoap has the observer from now on. */
void edge_coap_observe_answer(edge_coap *ec, cobs *o, coap_resource_t *res, coap_session_t *s,
                              const coap_pdu_t *req, const coap_string_t *query, coap_pdu_t *resp)
{
        o->async = NULL; /* libcoap frees it once this returns */
        if (o->state == OBS_FAILED) {
                const char *b = o->end_body ? o->end_body : "";
                edge_coap_respond(ec, res, s, req, query, resp, EDGE_M_GET, o->end_status, false, b,
                                  strlen(b));
                edge_coap_obs_free(o);
                return;
        }
        if (res != o->res) {
                edge_coap_respond_error(ec, res, s, req, query, resp, 400, "HYB_E_BAD_REQUEST",
                                        "this path cannot be observed");
                edge_coap_obs_free(o);
                return;
        }
        o->state = OBS_LIVE;
        edge_coap_respond(ec, res, s, req, query, resp, EDGE_M_GET, 200, false, "{}", 2);
        if (o->head || o->ended)
                edge_coap_kick(ec);
}
