/* SPDX-License-Identifier: MIT */
/*
 * One principal's session with the broker, seen from the edge: the bus protocol
 * (doc/protocol.md, from "Calls" on) over the edge's end of the in-memory bufferevent
 * pair that broker_edge_session made (no socket: a frame written here is in the broker's
 * input at once, and the callbacks of both ends run from the loop).  It sends CALLs
 * (procedures and the builtin's store and subscription methods), matches RESULTs to them
 * by call id, passes EVENTs on and answers PINGs.  It reads frames with the wire codec
 * the client library and the broker use (bus/wire.h).
 *
 * A session that served a request and holds nothing (no call in flight, no subscription,
 * no failed call) is kept for the next request of the same principal on the same
 * transport instead of being closed: up to EDGE_IDLE_SESSIONS of them, so a request does
 * not pay for a new session and broker peer (past that, the one kept longest is closed).
 * An idle session the broker closes (the
 * token expired or was revoked, the daemon stops) is dropped when next looked at.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "common/util.h"
#include "edge-internal.h"
#include "hybrid/bus.h"

/* A call's body up to this size is copied behind its header: one write to the pair */
#define EDGE_CALL_INLINE 1024

typedef struct pcall {
        struct pcall *next;
        uint64_t id;
        edge_reply_fn cb;
        void *ud;
} pcall;

struct edge_peer {
        struct bufferevent *bev;
        size_t max_frame;
        uint64_t next_id;
        pcall *calls;
        edge_event_fn on_event;
        void *event_ud;
        bool closed;
        bool paused;   /* not read: the stream's client does not keep up */
        bool eof;      /* the broker ended the session while it was paused */
        bool *freed; /* set while dispatching: the callback may free the peer */
        bool no_reuse;            /* subscribed, or a call failed: closed when freed */
        edge_http *eh;            /* the edge keeping idle sessions, or NULL */
        hyb_token_result *tok;    /* the principal (a reference; NULL: anonymous) */
        const char *transport;
        edge_peer *idle_next;     /* in eh->idle */
};

/* Fails the calls and ends the events; returns true when a callback freed p. */
static bool peer_lost(edge_peer *p, int status)
{
        bool freed = false;

        if (p->closed)
                return false;
        p->closed = true;
        bufferevent_disable(p->bev, EV_READ);
        p->freed = &freed;
        while (p->calls && !freed) {
                pcall *c = p->calls;

                p->calls = c->next;
                c->cb(p, NULL, c->ud);
                free(c);
        }
        if (!freed && p->on_event)
                p->on_event(p, NULL, status, p->event_ud);
        if (!freed)
                p->freed = NULL;
        return freed;
}

/* Handles one frame; returns false when the peer was freed by a callback. */
static bool peer_dispatch(edge_peer *p, const wire_packet *w)
{
        bool freed = false;

        switch (w->h.type) {
        case WIRE_RESULT:
                if (w->h.status >= 500)
                        p->no_reuse = true; /* a deadline, a callee gone: start afresh */
                for (pcall **pp = &p->calls; *pp; pp = &(*pp)->next) {
                        pcall *c = *pp;

                        if (c->id != w->h.call_id)
                                continue;
                        *pp = c->next;
                        p->freed = &freed;
                        c->cb(p, w, c->ud);
                        free(c);
                        if (freed)
                                return false;
                        p->freed = NULL;
                        break;
                }
                return true;
        case WIRE_EVENT:
                if (p->on_event) {
                        p->freed = &freed;
                        p->on_event(p, w, 200, p->event_ud);
                        if (freed)
                                return false;
                        p->freed = NULL;
                }
                return true;
        case WIRE_PING: {
                wire_hdr h = {.type = WIRE_PONG};
                uint8_t hb[WIRE_HDR_SIZE];

                wire_hdr_encode(&h, hb);
                bufferevent_write(p->bev, hb, sizeof hb);
                return true;
        }
        case WIRE_ERROR:
                (void)freed;
                return !peer_lost(p, w->h.status ? w->h.status : 502);
        default:
                return true;
        }
}

/* Handles the complete frames read; false when a callback freed p. */
static bool peer_read_frames(edge_peer *p)
{
        struct evbuffer *in = bufferevent_get_input(p->bev);

        while (!p->closed) {
                size_t len = evbuffer_get_length(in), need, used = 0;
                uint8_t *buf;
                wire_packet w;
                wire_hdr h;

                if (len < WIRE_HDR_SIZE)
                        return true;
                if (wire_hdr_decode(evbuffer_pullup(in, WIRE_HDR_SIZE), &h) < 0 ||
                    wire_frame_len(&h) > p->max_frame)
                        return !peer_lost(p, 502);
                need = wire_frame_len(&h);
                if (len < need)
                        return true;
                buf = evbuffer_pullup(in, (ev_ssize_t)need);
                if (!buf || wire_parse(buf, need, p->max_frame, &w, &used) != 1)
                        return !peer_lost(p, 502);
                if (!peer_dispatch(p, &w))
                        return false; /* freed, with its buffers */
                evbuffer_drain(in, used);
        }
        return true;
}

static void peer_read(struct bufferevent *bev, void *ud)
{
        edge_peer *p = ud;

        (void)bev;
        if (!p->paused) /* a read scheduled before the pause waits for the resume */
                peer_read_frames(p);
}

static void peer_event(struct bufferevent *bev, short what, void *ud)
{
        edge_peer *p = ud;

        if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
                return;
        /* The pair tells the end even while we do not read: as with a socket, what the
         * broker sent before it (the ERROR saying why) is read first, once we read again. */
        if (p->paused) {
                p->eof = true;
                return;
        }
        if (peer_read_frames(p))
                peer_lost(p, 502);
}

/* Closes p's session (our end of the pair: the broker sees the session go). */
static void peer_destroy(edge_peer *p)
{
        if (p->freed)
                *p->freed = true;
        while (p->calls) {
                pcall *c = p->calls;
                p->calls = c->next;
                free(c);
        }
        broker_pair_close(p->bev);
        hyb_token_result_unref(p->tok);
        free(p);
}

/* An idle session of tok's principal on transport, taken off the list; NULL if none. */
static edge_peer *idle_take(edge_http *eh, hyb_token_result *tok, const char *transport)
{
        for (edge_peer **pp = &eh->idle; *pp;) {
                edge_peer *p = *pp;

                if (p->closed) { /* the broker ended it meanwhile */
                        *pp = p->idle_next;
                        eh->n_idle--;
                        peer_destroy(p);
                        continue;
                }
                if (p->tok == tok && strcmp(p->transport, transport) == 0) {
                        *pp = p->idle_next;
                        eh->n_idle--;
                        p->idle_next = NULL;
                        return p;
                }
                pp = &p->idle_next;
        }
        return NULL;
}

void edge_peer_idle_free(edge_http *eh)
{
        while (eh->idle) {
                edge_peer *p = eh->idle;

                eh->idle = p->idle_next;
                peer_destroy(p);
        }
        eh->n_idle = 0;
}

int edge_peer_new(hyb_broker *b, hyb_token_result *tok, const char *transport, edge_peer **ret,
                  hyb_error *e)
{
        edge_peer *p;
        struct bufferevent *bev;
        int r;

        if (b->edge && (p = idle_take(b->edge, tok, transport))) {
                broker_log(b, HYB_LOG_DEBUG, "edge: edge session of %s kept from a former request",
                           tok ? hyb_token_result_get_sub(tok) : "the anonymous principal");
                *ret = p;
                return 0;
        }
        r = broker_edge_session(b, tok, transport, &bev, e);
        if (r < 0)
                return r;
        p = calloc(1, sizeof *p);
        if (!p) {
                broker_pair_close(bev);
                return err_set(e, -ENOMEM, -1, "out of memory");
        }
        p->bev = bev;
        p->max_frame = b->c->max_frame;
        p->next_id = 1;
        p->eh = b->edge;
        p->tok = hyb_token_result_ref(tok);
        p->transport = transport;
        bufferevent_setcb(p->bev, peer_read, NULL, peer_event, p);
        bufferevent_enable(p->bev, EV_READ | EV_WRITE);
        *ret = p;
        return 0;
}

void edge_peer_free(edge_peer *p)
{
        edge_http *eh;

        if (!p)
                return;
        eh = p->eh;
        if (eh && !p->closed && !p->calls && !p->on_event && !p->no_reuse) {
                /* kept: still read, so that a close by the broker is seen; the list full,
                 * the session kept longest goes (one of a principal no longer seen, such as
                 * a token verified before a reload, must not hold its place for ever) */
                if (eh->n_idle >= EDGE_IDLE_SESSIONS) {
                        edge_peer **pp = &eh->idle;

                        while ((*pp)->idle_next)
                                pp = &(*pp)->idle_next;
                        peer_destroy(*pp);
                        *pp = NULL;
                        eh->n_idle--;
                }
                p->idle_next = eh->idle;
                eh->idle = p;
                eh->n_idle++;
                return;
        }
        peer_destroy(p);
}

void edge_peer_set_event_cb(edge_peer *p, edge_event_fn cb, void *ud)
{
        p->no_reuse = true; /* it subscribes: its session is its stream's alone */
        p->on_event = cb;
        p->event_ud = ud;
}

void edge_peer_pause(edge_peer *p, bool pause)
{
        if (p->closed)
                return;
        p->paused = pause;
        if (pause) {
                bufferevent_disable(p->bev, EV_READ);
                return;
        }
        bufferevent_enable(p->bev, EV_READ);
        /* What was read meanwhile, then the end if the broker ended the session: from the
         * loop (deferred), not inside the caller, which may be the stream's own callback. */
        if (p->eof)
                bufferevent_trigger_event(p->bev, BEV_EVENT_EOF, 0);
        else
                bufferevent_trigger(p->bev, EV_READ, 0);
}

int edge_peer_call(edge_peer *p, const char *endpoint, const char *method, const void *body,
                   size_t len, unsigned flags, uint32_t timeout_ms, edge_reply_fn cb, void *ud)
{
        /* the frame's header and names, and a small body after them (one write) */
        uint8_t hb[WIRE_HDR_SIZE + WIRE_NAMES_MAX + EDGE_CALL_INLINE];
        struct iovec iov[2];
        size_t el = strlen(endpoint), ml = strlen(method);
        pcall *c;

        if (p->closed)
                return -EPIPE;
        if (el > WIRE_ENDPOINT_MAX || ml > WIRE_MEMBER_MAX || len > UINT32_MAX)
                return -EINVAL;
        /* Only a session that made plain calls and store reads, writes and deletes is kept:
         * one that subscribed (or tried to) holds state in the broker. */
        if (strcmp(endpoint, HYB_BUS_BUILTIN_ENDPOINT) == 0 && strcmp(method, "storeRead") != 0 &&
            strcmp(method, "storeReadKeyed") != 0 && strcmp(method, "storeWrite") != 0 &&
            strcmp(method, "storeDelete") != 0)
                p->no_reuse = true;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->id = p->next_id++;
        c->cb = cb;
        c->ud = ud;
        wire_hdr h = {.type = WIRE_CALL,
                      .flags = (uint8_t)(flags & WIRE_F_BINARY),
                      .call_id = c->id,
                      .timeout_ms = timeout_ms};
        wire_build(&h, NULL, 0, endpoint, el, method, ml, body, len, hb, iov);
        if (len && len <= EDGE_CALL_INLINE) {
                /* each write to the pair moves the bytes and schedules the broker's read:
                 * a small call goes in one */
                memcpy(hb + iov[0].iov_len, body, len);
                iov[0].iov_len += len;
                len = 0;
        }
        if (bufferevent_write(p->bev, hb, iov[0].iov_len) < 0 ||
            (len && bufferevent_write(p->bev, body, len) < 0)) {
                free(c);
                return -ENOMEM;
        }
        c->next = p->calls;
        p->calls = c;
        return 0;
}
