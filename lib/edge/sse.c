/* SPDX-License-Identifier: MIT */
/*
 * Server-Sent Events (doc/edge.md "Streams"): GET /events/<app>/<runner>/<bubble>
 * subscribes the principal's session to that bubble (builtin subscribeEvent), GET
 * /watch/<pattern> to the store (storeSubscribe); each event or store message becomes
 * one SSE message.  A slow client is bounded as a slow bus subscriber is: once
 * EDGE_SSE_MAX_QUEUED bytes wait for it, the stream stops reading its session, the
 * broker's send queue to the session fills, and the broker cuts the session off (507,
 * limits.send_queue_bytes and the uid quotas), which ends the stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "common/util.h"
#include "edge-internal.h"
#include "hybrid/bus.h"
#include "hybrid/furi.h"
#include "hybrid/obj.h"

typedef struct sse {
        edge_task task; /* first */
        edge_http *eh;
        struct evhttp_request *req;
        struct evhttp_connection *evcon;
        edge_peer *peer;
        edge_route r;
        struct event *keepalive;
        bool started, paused;
} sse;

static void sse_free(sse *s, bool end)
{
        if (s->evcon)
                edge_conn_watch(s->eh, s->evcon, NULL, NULL);
        edge_task_del(s->eh, &s->task);
        if (s->keepalive)
                event_free(s->keepalive);
        edge_peer_free(s->peer);
        if (end && s->req)
                edge_send(s->req, 3, 0, NULL, NULL, NULL,
                          NULL); /* frees req (at once when the client is gone) */
        edge_route_clear(&s->r);
        free(s);
}

static void sse_kill(edge_task *t)
{
        sse *s = (sse *)t;

        s->req = NULL; /* evhttp frees it */
        s->evcon = NULL;
        sse_free(s, false);
}

static void sse_gone(struct evhttp_connection *evcon, void *ud)
{
        sse *s = ud;

        (void)evcon;
        s->evcon = NULL;
        sse_free(s, true);
}

static size_t queued(sse *s)
{
        struct bufferevent *bev = s->evcon ? evhttp_connection_get_bufferevent(s->evcon) : NULL;

        return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void sse_drained(struct evhttp_connection *evcon, void *ud)
{
        sse *s = ud;

        (void)evcon;
        if (s->paused && queued(s) < EDGE_SSE_MAX_QUEUED / 2) {
                s->paused = false;
                edge_peer_pause(s->peer, false);
        }
}

/* One SSE message: "event: <name>" and one "data:" line per line of text. */
static void sse_send(sse *s, const char *event, const char *text, size_t len)
{
        struct evbuffer *b = evbuffer_new();
        const char *p = text, *end = text + len;

        if (!b)
                return;
        if (event)
                evbuffer_add_printf(b, "event: %s\n", event);
        while (p <= end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

                evbuffer_add(b, "data: ", 6);
                evbuffer_add(b, p, n);
                evbuffer_add(b, "\n", 1);
                if (!nl)
                        break;
                p = nl + 1;
        }
        evbuffer_add(b, "\n", 1);
        edge_send(s->req, 2, 0, NULL, b, sse_drained, s);
        evbuffer_free(b);
        if (!s->paused && queued(s) >= EDGE_SSE_MAX_QUEUED) {
                s->paused = true;
                edge_peer_pause(s->peer, true);
        }
}

static void keepalive(evutil_socket_t fd, short what, void *ud)
{
        sse *s = ud;
        struct evbuffer *b = evbuffer_new();

        (void)fd;
        (void)what;
        if (!b)
                return;
        evbuffer_add(b, ": keepalive\n\n", 13);
        edge_send(s->req, 2, 0, NULL, b, NULL, NULL);
        evbuffer_free(b);
}

/* A store message "<furi>\n<obj>" as {"furi":..,"value":..} (value null for a delete). */
char *edge_store_message(const wire_packet *p, const char **kind)
{
        const char *body = (const char *)p->body, *nl = memchr(body, '\n', p->h.body_len);
        hyb_obj *o = NULL;
        char *vt = NULL, *text = NULL;
        json_t *j, *v;

        if (!nl || hyb_obj_parse(nl + 1, p->h.body_len - (size_t)(nl + 1 - body), &o, NULL) < 0)
                return NULL;
        *kind = hyb_obj_is_noobj(o) ? "delete" : p->h.status == 202 ? "publish" : "write";
        if (!hyb_obj_is_noobj(o) && hyb_obj_to_json(o, &vt, NULL) < 0) {
                hyb_obj_unref(o);
                return NULL;
        }
        hyb_obj_unref(o);
        v = vt ? json_loads(vt, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : json_null();
        free(vt);
        j = v ? json_pack("{s:s%, s:o}", "furi", body, (size_t)(nl - body), "value", v) : NULL;
        if (j)
                text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        return text;
}

static void on_event(edge_peer *peer, const wire_packet *p, int status, void *ud)
{
        sse *s = ud;

        (void)peer;
        if (!p && !s->started) {
                edge_send_error(s->req, 502, "HYB_E_BAD_CALLEE",
                                "the session with the broker was lost");
                s->req = NULL;
                sse_free(s, false);
                return;
        }
        if (!p) {
                char msg[96];
                int n = snprintf(msg, sizeof msg,
                                 "{\"status\":%d,\"message\":\"the stream's session ended\"}",
                                 edge_http_status(status));
                sse_send(s, "error", msg, (size_t)n);
                sse_free(s, true);
                return;
        }
        if (s->r.kind == EDGE_ROUTE_WATCH) {
                const char *kind = NULL;
                char *text = edge_store_message(p, &kind);

                if (text)
                        sse_send(s, kind, text, strlen(text));
                free(text);
                return;
        }
        if (p->h.flags & WIRE_F_BINARY)
                return; /* SSE carries text: binary events are not streamed */
        char name[WIRE_MEMBER_MAX + 1];
        snprintf(name, sizeof name, "%.*s", (int)p->h.member_len, p->member);
        /* an event name on one line: the bubble is a bus name, no CR/LF */
        sse_send(s, name, (const char *)p->body, p->h.body_len);
}

static void on_subscribed(edge_peer *peer, const wire_packet *p, void *ud)
{
        sse *s = ud;
        struct timeval tv = {EDGE_SSE_KEEPALIVE_S, 0};

        (void)peer;
        if (!p || p->h.status != 200) {
                if (p)
                        edge_send_result(s->req, p);
                else
                        edge_send_error(s->req, 502, "HYB_E_BAD_CALLEE",
                                        "the session with the broker was lost");
                s->req = NULL; /* answered: evhttp frees it */
                sse_free(s, false);
                return;
        }
        evhttp_add_header(evhttp_request_get_output_headers(s->req), "Content-Type",
                          "text/event-stream");
        evhttp_add_header(evhttp_request_get_output_headers(s->req), "Cache-Control", "no-store");
        edge_send(s->req, 1, 200, "OK", NULL, NULL, NULL);
        s->started = true;
        if (s->evcon) {
                /* A stream reads nothing more from its client: no read timeout.  A client
                 * that takes nothing for EDGE_TIMEOUT_S is cut off by the write timeout. */
                struct timeval wt = {EDGE_TIMEOUT_S, 0};
                bufferevent_set_timeouts(evhttp_connection_get_bufferevent(s->evcon), NULL, &wt);
        }
        /* the client sees the stream open before the first event */
        sse_send(s, "open", "{}", 2);
        s->keepalive =
                event_new(evhttp_connection_get_base(s->evcon), -1, EV_PERSIST, keepalive, s);
        if (s->keepalive)
                event_add(s->keepalive, &tv);
}

void edge_sse_start(edge_http *eh, struct evhttp_request *req, edge_route *r, edge_peer *peer)
{
        sse *s = calloc(1, sizeof *s);
        int rr;

        if (!s) {
                edge_peer_free(peer);
                edge_route_clear(r);
                edge_send_error(req, 500, "HYB_E_INTERNAL", "out of memory");
                return;
        }
        s->eh = eh;
        s->req = req;
        s->peer = peer;
        edge_route_move(&s->r, r);
        s->evcon = evhttp_request_get_connection(req);
        edge_task_add(eh, &s->task, sse_kill);
        if (s->evcon)
                edge_conn_watch(eh, s->evcon, sse_gone, s);
        edge_peer_set_event_cb(peer, on_event, s);
        rr = edge_stream_subscribe(peer, &s->r, on_subscribed, s);
        if (rr < 0) {
                edge_send_error(req, 502, "HYB_E_BAD_CALLEE", "cannot reach the broker: %s",
                                hyb_strerror(rr));
                s->req = NULL;
                sse_free(s, false);
        }
}

int edge_stream_subscribe(edge_peer *peer, const edge_route *r, edge_reply_fn cb, void *ud)
{
        char *body = NULL;
        int rr = -ENOMEM;

        if (r->kind == EDGE_ROUTE_EVENTS) {
                json_t *j = json_pack("{s:s, s:s}", "endpointName", r->endpoint, "bubbleName",
                                      r->member);

                body = j ? json_dumps(j, JSON_COMPACT) : NULL;
                json_decref(j);
                if (body)
                        rr = edge_peer_call(peer, HYB_BUS_BUILTIN_ENDPOINT, "subscribeEvent", body,
                                            strlen(body), 0, 0, cb, ud);
        } else if (asprintf(&body, "1 0 %s", r->furi) >= 0) {
                rr = edge_peer_call(peer, HYB_BUS_BUILTIN_ENDPOINT, "storeSubscribe", body,
                                    strlen(body), WIRE_F_BINARY, 0, cb, ud);
        } else {
                body = NULL;
        }
        free(body);
        return rr;
}
