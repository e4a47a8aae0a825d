/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket listener of the edge (doc/edge.md "WebSocket"): `GET /bus/ws` on
 * listen.http (ws://) and listen.https (wss://) upgrades to RFC 6455, framed by wslay over
 * the connection's bufferevent, which this file takes over from evhttp once the upgrade
 * request is valid (evhttp has no WebSocket server).
 *
 * A WebSocket connection is a remote bus peer: each binary message carries exactly one bus
 * packet, the frame of the Unix socket byte for byte, in both directions.  The packets go
 * through an in-memory bufferevent pair (no socket, no system call) whose other end the
 * broker adopted as a new, unauthenticated peer
 * (broker_ws_session): the broker sends the CHALLENGE and checks the AUTH itself, with a
 * token only, its proof bound to "ws-none" (ws://) or the TLS exporter (wss://).  This file
 * only frames, validates and bounds:
 *
 *   client bufferevent (TCP or TLS) <-> wslay <-> [one packet per message] <-> pair
 *
 * Bounds: the upgrade request is evhttp's (headers size, EDGE_TIMEOUT_S); the AUTH must be
 * accepted within limits.auth_timeout_ms of the upgrade; limits.ws_preauth_per_address
 * connections of one source address not yet authenticated, limits.ws_max_per_address of
 * it in all and limits.ws_max_connections in all (one more: 503); a message over limits.max_frame is refused 1009 before it is
 * buffered; packets waiting for a client that does not read: WS_OUT_HIGH, then the session
 * is not read and the broker's send queue towards it grows, bounded and cut off as a slow
 * reader by limits.send_queue_bytes and the quotas as a Unix peer is; packets of the client
 * waiting for the broker: WS_IN_HIGH, then the client is not read.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <wslay/wslay.h>

#include "common/util.h"
#include "edge-internal.h"
#include "tls.h"

/* Bytes handed to the client's bufferevent before wslay waits for them to drain. */
#define WS_OUT_CHUNK (64u * 1024)
/* Packets of the client waiting for the broker's end: past this the client is not read. */
#define WS_IN_HIGH (256u * 1024)
/* Packets waiting for the client (wslay's queue and the bufferevent's) past which the
 * session is not read: the backlog then stays in the broker's send queue towards the
 * session, where limits.send_queue_bytes and the quotas bound it and cut a slow reader off
 * as they cut a peer of the Unix socket. */
#define WS_OUT_HIGH (64u * 1024)
/* Frames one message may come in: wslay keeps each frame's payload in a buffer of its own
 * (~50 bytes of the daemon's memory past its payload), so a message of max_frame 1-byte
 * fragments would cost about 50 times max_frame.  Past this count it is refused (1009). */
#define WS_MAX_FRAGMENTS 1024u
/* A close handshake the client does not finish within this is cut short. */
#define WS_LINGER_S 5

typedef struct ws_addr {
        struct ws_addr *next;
        struct sockaddr_storage ss; /* port 0 */
        unsigned n;                 /* its connections not yet authenticated */
        unsigned n_all;             /* all its WebSocket connections */
} ws_addr;

typedef struct edge_ws {
        edge_task task; /* first: the edge ends it when it stops */
        edge_http *eh;
        struct evhttp_connection *evcon;
        struct bufferevent *bev;  /* the client's, evhttp's until the upgrade */
        struct bufferevent *sess; /* the broker's session */
        wslay_event_context_ptr ctx;
        struct event *timer; /* the handshake deadline, then the close linger */
        ws_addr *addr;       /* its source address's counts */
        bool preauth;        /* counted there as not yet authenticated */
        uint64_t bserial;    /* its broker session's (accept order: the oldest is the least) */
        char peer[INET6_ADDRSTRLEN + 8];
        uint64_t announced; /* payload lengths of the message's frames so far */
        unsigned fragments; /* frames of the message so far */
        bool authed, closing, failing, dead, in_pump;
        bool rd_paused; /* the client is not read: the broker's end is full, or the client
                         * does not take what is sent to it (pongs, close frames) */
        bool sess_paused; /* the session is not read: the client does not take its packets */
        bool sess_ended;  /* the broker closed the session */
        bool close_later; /* its close frame waits for the session's last packets to go */
} edge_ws;

/* ----------------------------------------------------------------- the upgrade request */

/* Does the comma-separated header value hold token (ASCII case ignored unless exact:
 * subprotocol names are compared as they are, RFC 6455 section 11.5)? */
static bool has_token(const char *value, const char *token, bool exact)
{
        size_t tl = strlen(token);

        while (value && *value) {
                const char *end;
                size_t n;

                while (*value == ' ' || *value == '\t' || *value == ',')
                        value++;
                end = value;
                while (*end && *end != ',')
                        end++;
                n = (size_t)(end - value);
                while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
                        n--;
                if (n == tl && (exact ? strncmp(value, token, tl) : strncasecmp(value, token, tl)) == 0)
                        return true;
                value = end;
        }
        return false;
}

int edge_ws_check_upgrade(bool is_get, const char *upgrade, const char *connection,
                          const char *version, const char *key, const char *protocol,
                          char accept[EDGE_WS_ACCEPT_SIZE], const char **header, hyb_error *e)
{
        *header = NULL;
        if (!is_get) {
                err_set(e, HYB_E_BAD_REQUEST, -1, "a WebSocket upgrade is a GET");
                return 400;
        }
        if (!upgrade || !has_token(upgrade, "websocket", false) || !connection ||
            !has_token(connection, "upgrade", false)) {
                *header = "Upgrade: websocket";
                err_set(e, HYB_E_BAD_REQUEST, -1,
                        "/bus/ws is a WebSocket endpoint: Upgrade: websocket and Connection: "
                        "Upgrade are required");
                return 426;
        }
        if (!version || strcmp(version, "13") != 0) {
                *header = "Sec-WebSocket-Version: 13";
                err_set(e, HYB_E_BAD_REQUEST, -1, "Sec-WebSocket-Version must be 13");
                return 426;
        }
        if (!key || edge_tls_ws_accept(key, strlen(key), accept) < 0) {
                err_set(e, HYB_E_BAD_REQUEST, -1,
                        "Sec-WebSocket-Key must be the base64 of 16 bytes");
                return 400;
        }
        if (!protocol || !has_token(protocol, EDGE_WS_SUBPROTOCOL, true)) {
                err_set(e, HYB_E_BAD_REQUEST, -1,
                        "Sec-WebSocket-Protocol must offer " EDGE_WS_SUBPROTOCOL);
                return 400;
        }
        return 0;
}

int edge_ws_check_packet(const uint8_t *msg, size_t len, size_t max_body)
{
        wire_packet w;
        size_t used = 0;

        if (len < WIRE_HDR_SIZE || wire_parse(msg, len, max_body, &w, &used) != 1 || used != len)
                return HYB_E_PROTOCOL;
        return 0;
}

/* ----------------------------------------------------------------- counts */

static ws_addr *addr_get(edge_http *eh, const struct sockaddr_storage *ss, bool create)
{
        ws_addr *a;

        for (a = eh->ws_addrs; a; a = a->next)
                if (memcmp(&a->ss, ss, sizeof *ss) == 0)
                        return a;
        if (!create || !(a = calloc(1, sizeof *a)))
                return NULL;
        a->ss = *ss;
        a->next = eh->ws_addrs;
        eh->ws_addrs = a;
        return a;
}

/* The connection is authenticated (or gone): it leaves its address's pre-auth count. */
static void preauth_end(edge_ws *ws)
{
        if (ws->preauth) {
                ws->preauth = false;
                ws->addr->n--;
        }
}

/* The connection is gone: it leaves every count. */
static void ws_unaccount(edge_ws *ws)
{
        ws_addr *a = ws->addr;

        preauth_end(ws);
        ws->eh->n_ws--;
        if (--a->n_all)
                return;
        for (ws_addr **pp = &ws->eh->ws_addrs; *pp; pp = &(*pp)->next)
                if (*pp == a) {
                        *pp = a->next;
                        free(a);
                        return;
                }
}

/* ----------------------------------------------------------------- life */

static void ws_free(edge_ws *ws)
{
        edge_http *eh = ws->eh;

        edge_task_del(eh, &ws->task);
        if (ws->ctx)
                broker_log(eh->b, HYB_LOG_DEBUG,
                           "edge: WebSocket peer %s closed (close code sent %u, received %u)",
                           ws->peer, wslay_event_get_status_code_sent(ws->ctx),
                           wslay_event_get_status_code_received(ws->ctx));
        ws_unaccount(ws);
        if (ws->timer)
                event_free(ws->timer);
        if (ws->sess)
                broker_pair_close(ws->sess); /* the broker sees the session end */
        if (ws->ctx)
                wslay_event_context_free(ws->ctx);
        /* frees the request and the client's bufferevent (closing the socket) */
        evhttp_connection_free(ws->evcon);
        free(ws);
}

static void ws_kill(edge_task *t)
{
        ws_free((edge_ws *)t);
}

static void ws_pump(edge_ws *ws);
static void sess_resume(edge_ws *ws);
static size_t out_backlog(const edge_ws *ws);
static bool read_blocked(const edge_ws *ws);

static void linger_done(evutil_socket_t fd, short what, void *ud)
{
        edge_ws *ws = ud;

        (void)fd;
        (void)what;
        ws->dead = true;
        ws_pump(ws);
}

/* The close handshake began: the session reads no more, the linger timer runs. */
static void closing_begins(edge_ws *ws)
{
        struct timeval tv = {.tv_sec = WS_LINGER_S};

        ws->closing = true;
        if (ws->sess)
                bufferevent_disable(ws->sess, EV_READ);
        event_del(ws->timer);
        evtimer_assign(ws->timer, ws->eh->b->base, linger_done, ws);
        evtimer_add(ws->timer, &tv);
}

/*
 * Starts the close handshake with code (why: for the client, < 123 bytes).  For a client
 * that broke the protocol (1002, 1003, 1007, 1009) the connection is failed (RFC 6455
 * 7.1.7): closed once the close frame is out, without reading the rest of its data.
 */
static void ws_close(edge_ws *ws, uint16_t code, const char *why)
{
        if (ws->closing)
                return;
        ws->failing = code != WSLAY_CODE_NORMAL_CLOSURE && code != WSLAY_CODE_POLICY_VIOLATION &&
                      code != WSLAY_CODE_GOING_AWAY;
        /* Reading goes on for the client's close frame (its messages are ignored now). */
        wslay_event_queue_close(ws->ctx, code, (const uint8_t *)why, why ? strlen(why) : 0);
        closing_begins(ws);
}

/*
 * Runs wslay's reading and writing, then acts on what the callbacks decided: every event
 * of this connection ends here, so nothing is freed under wslay's feet.
 */
static void ws_pump(edge_ws *ws)
{
        int r;

        if (ws->in_pump)
                return;
        ws->in_pump = true;
        if (ws->rd_paused && !read_blocked(ws) && out_backlog(ws) <= WS_OUT_HIGH) {
                ws->rd_paused = false;
                bufferevent_enable(ws->bev, EV_READ);
        }
        if (!ws->dead && !ws->rd_paused && wslay_event_want_read(ws->ctx) &&
            evbuffer_get_length(bufferevent_get_input(ws->bev)) &&
            (r = wslay_event_recv(ws->ctx)) != 0) {
                /* a malformed frame (wslay queued a close frame without a code) or no
                 * memory: the connection is failed once that close frame is out */
                broker_log(ws->eh->b, HYB_LOG_DEBUG, "edge: WebSocket peer %s: wslay recv %d",
                           ws->peer, r);
                if (!ws->closing)
                        closing_begins(ws);
                ws->failing = true;
                if (!wslay_event_want_write(ws->ctx))
                        ws->dead = true;
        }
        if (!ws->dead && wslay_event_want_write(ws->ctx) && (r = wslay_event_send(ws->ctx)) != 0) {
                broker_log(ws->eh->b, HYB_LOG_DEBUG, "edge: WebSocket peer %s: wslay send %d",
                           ws->peer, r);
                ws->dead = true;
        }
        if (!ws->dead && ws->close_later && wslay_event_get_queued_msg_count(ws->ctx) == 0) {
                /* the session's last packets went: now the close frame (wslay sends control
                 * frames before the messages queued, so it had to wait) */
                ws->close_later = false;
                wslay_event_queue_close(ws->ctx,
                                        ws->authed ? WSLAY_CODE_NORMAL_CLOSURE
                                                   : WSLAY_CODE_POLICY_VIOLATION,
                                        (const uint8_t *)(ws->authed ? "session closed"
                                                                     : "not authenticated"),
                                        ws->authed ? 14 : 17);
                if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0)
                        ws->dead = true;
        }
        if (!ws->dead && ws->sess_paused) {
                sess_resume(ws); /* its ws_pump returns at once: we are in it */
                if (!ws->dead && wslay_event_want_write(ws->ctx) &&
                    wslay_event_send(ws->ctx) != 0)
                        ws->dead = true;
        }
        ws->in_pump = false;
        if (!ws->dead && !ws->closing && wslay_event_get_close_sent(ws->ctx)) {
                /* wslay failed the connection itself (an unmasked or malformed frame, a
                 * message over the limit): no close frame of the client to wait for */
                ws->failing = !wslay_event_get_read_enabled(ws->ctx);
                closing_begins(ws);
        }
        if (!ws->dead && ws->closing && !wslay_event_want_write(ws->ctx) &&
            wslay_event_get_close_sent(ws->ctx) &&
            (ws->failing || wslay_event_get_close_received(ws->ctx)) &&
            evbuffer_get_length(bufferevent_get_output(ws->bev)) == 0)
                ws->dead = true; /* both close frames went (or ours, failing it): over */
        if (ws->dead)
                ws_free(ws);
}

/* ----------------------------------------------------------------- wslay callbacks */

/* Bytes waiting for the client: wslay's queue and the bufferevent's output. */
static size_t out_backlog(const edge_ws *ws)
{
        return wslay_event_get_queued_msg_length(ws->ctx) +
               evbuffer_get_length(bufferevent_get_output(ws->bev));
}

/* Is the client not to be read now?  When the broker's end holds WS_IN_HIGH of its packets,
 * or when what the client's frames make us send (pongs to its pings) is not taken: a client
 * that pings and never reads must not grow wslay's queue. */
static bool read_blocked(const edge_ws *ws)
{
        return (ws->sess && evbuffer_get_length(bufferevent_get_output(ws->sess)) > WS_IN_HIGH) ||
               out_backlog(ws) > 2 * WS_OUT_HIGH;
}

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *ud)
{
        edge_ws *ws = ud;
        struct evbuffer *in = bufferevent_get_input(ws->bev);
        int n;

        (void)flags;
        /* Leave the rest in the kernel until the broker or the client drains. */
        if (read_blocked(ws)) {
                ws->rd_paused = true;
                bufferevent_disable(ws->bev, EV_READ);
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        n = evbuffer_remove(in, buf, len);
        if (n <= 0) {
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        return n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                          int flags, void *ud)
{
        edge_ws *ws = ud;
        struct evbuffer *out = bufferevent_get_output(ws->bev);
        size_t have = evbuffer_get_length(out);

        (void)flags;
        if (have >= WS_OUT_CHUNK) {
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        if (len > WS_OUT_CHUNK - have)
                len = WS_OUT_CHUNK - have;
        if (bufferevent_write(ws->bev, data, len) < 0) {
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
        }
        return (ssize_t)len;
}

static void ws_frame_start_cb(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg, void *ud)
{
        edge_ws *ws = ud;

        (void)ctx;
        /* A text message is refused before its payload is buffered. */
        if (arg->opcode == WSLAY_TEXT_FRAME) {
                ws_close(ws, WSLAY_CODE_UNSUPPORTED_DATA,
                         "text message: " EDGE_WS_SUBPROTOCOL " carries binary packets");
                return;
        }
        if (arg->opcode & 0x8)
                return; /* control frames: at most 125 bytes, wslay checks */
        /* The message's size as its frame headers announce it, before any of the payload
         * is kept (wslay counts what it buffered). */
        if (arg->opcode != WSLAY_CONTINUATION_FRAME) {
                ws->announced = 0;
                ws->fragments = 0;
        }
        ws->announced += arg->payload_length;
        if (ws->announced > ws->eh->b->c->max_frame)
                ws_close(ws, WSLAY_CODE_MESSAGE_TOO_BIG, "message over the size limit");
        else if (++ws->fragments > WS_MAX_FRAGMENTS)
                ws_close(ws, WSLAY_CODE_MESSAGE_TOO_BIG, "message in too many fragments");
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *ud)
{
        edge_ws *ws = ud;
        const broker_config *c = ws->eh->b->c;

        (void)ctx;
        if (ws->closing)
                return;
        switch (arg->opcode) {
        case WSLAY_BINARY_FRAME:
                if (edge_ws_check_packet(arg->msg, arg->msg_length, c->max_body) < 0) {
                        ws_close(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA,
                                 "a message must hold exactly one valid bus packet");
                        return;
                }
                if (!ws->sess || bufferevent_write(ws->sess, arg->msg, arg->msg_length) < 0)
                        ws_close(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
                return;
        case WSLAY_TEXT_FRAME:
                ws_close(ws, WSLAY_CODE_UNSUPPORTED_DATA,
                         "text message: " EDGE_WS_SUBPROTOCOL " carries binary packets");
                return;
        case WSLAY_CONNECTION_CLOSE:
                /* wslay answers it; the session ends with the connection */
                if (!ws->closing)
                        closing_begins(ws);
                return;
        default:
                return; /* ping (wslay answers it) and pong */
        }
}

/* ----------------------------------------------------------------- the broker's end */

static void sess_read(struct bufferevent *bev, void *ud);

/* The client took packets: read the session again. */
static void sess_resume(edge_ws *ws)
{
        size_t queued;

        if (!ws->sess_paused || !ws->sess || ws->closing)
                return;
        queued = out_backlog(ws);
        if (queued >= WS_OUT_HIGH / 2)
                return;
        ws->sess_paused = false;
        bufferevent_enable(ws->sess, EV_READ);
        sess_read(ws->sess, ws); /* the frames already read */
}

/* Queues the session's complete packets for the client (up to WS_OUT_HIGH waiting for it,
 * unless the session ended); no pump. */
static void sess_take(edge_ws *ws, struct bufferevent *bev)
{
        struct evbuffer *in = bufferevent_get_input(bev);
        const broker_config *c = ws->eh->b->c;

        while (!ws->closing) {
                size_t len = evbuffer_get_length(in), need, queued;
                uint8_t *buf;
                wire_hdr h;

                if (len < WIRE_HDR_SIZE)
                        break;
                if (wire_hdr_decode(evbuffer_pullup(in, WIRE_HDR_SIZE), &h) < 0 ||
                    wire_frame_len(&h) > c->max_frame) {
                        ws_close(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR, "bad frame from the broker");
                        break;
                }
                need = wire_frame_len(&h);
                if (len < need)
                        break;
                buf = evbuffer_pullup(in, (ev_ssize_t)need);
                if (!buf) {
                        ws_close(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
                        break;
                }
                /* A client that does not take its packets: leave the rest to the broker's
                 * send queue (and its bounds) until it does. */
                queued = out_backlog(ws);
                if (queued >= WS_OUT_HIGH && !ws->sess_ended) {
                        /* the pair still tells the end of the session (sess_event) */
                        ws->sess_paused = true;
                        bufferevent_disable(bev, EV_READ);
                        break;
                }
                if (queued + need > c->send_queue_bytes && !ws->sess_ended) {
                        broker_log(ws->eh->b, HYB_LOG_WARNING,
                                   "edge: WebSocket peer %s dropped: a slow reader (%zu bytes "
                                   "queued, limits.send_queue_bytes %zu)",
                                   ws->peer, queued + need, c->send_queue_bytes);
                        ws->dead = true;
                        break;
                }
                if (h.type == WIRE_AUTH_RESULT && h.status == 200) {
                        ws->authed = true;
                        preauth_end(ws);
                        if (!ws->closing)
                                event_del(ws->timer);
                }
                struct wslay_event_msg m = {
                        .opcode = WSLAY_BINARY_FRAME, .msg = buf, .msg_length = need};
                if (wslay_event_queue_msg(ws->ctx, &m) != 0) {
                        ws->dead = true;
                        break;
                }
                evbuffer_drain(in, need);
        }
}

static void sess_read(struct bufferevent *bev, void *ud)
{
        edge_ws *ws = ud;

        sess_take(ws, bev);
        ws_pump(ws);
}

static void sess_write(struct bufferevent *bev, void *ud)
{
        edge_ws *ws = ud;

        (void)bev;
        /* The broker took the client's packets: the client may be read again (ws_pump). */
        ws_pump(ws);
}

static void sess_event(struct bufferevent *bev, short what, void *ud)
{
        edge_ws *ws = ud;

        (void)bev;
        if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
                return;
        /* The broker closed the session (a refused AUTH, a timeout, a quota, a slow reader
         * cut off, shutdown): what it sent last (the ERROR saying why) is in our input even
         * if the session was not read, and goes to the client whatever its backlog. */
        ws->sess_ended = true;
        ws->sess_paused = false;
        sess_take(ws, bev);
        broker_pair_close(ws->sess); /* the broker's end is gone: freed only */
        ws->sess = NULL;
        if (!ws->closing && wslay_event_get_queued_msg_count(ws->ctx) > 0) {
                /* they go first, then the close (ws_pump); the linger timer bounds a client
                 * that does not take them */
                ws->close_later = true;
                closing_begins(ws);
                ws_pump(ws);
                return;
        }
        ws_close(ws, ws->authed ? WSLAY_CODE_NORMAL_CLOSURE : WSLAY_CODE_POLICY_VIOLATION,
                 ws->authed ? "session closed" : "not authenticated");
        ws_pump(ws);
}

/* ----------------------------------------------------------------- the client's end */

static void cli_read(struct bufferevent *bev, void *ud)
{
        (void)bev;
        ws_pump(ud);
}

static void cli_write(struct bufferevent *bev, void *ud)
{
        edge_ws *ws = ud;

        (void)bev;
        ws_pump(ws); /* may free ws: a pending close went out */
}

static void cli_event(struct bufferevent *bev, short what, void *ud)
{
        edge_ws *ws = ud;

        if ((what & BEV_EVENT_TIMEOUT) && !(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
                /* evhttp's slow-client timeouts may be re-armed after the takeover; this
                 * connection is bounded by its own timers and queue bounds instead */
                bufferevent_set_timeouts(bev, NULL, NULL);
                if ((what & BEV_EVENT_WRITING))
                        bufferevent_enable(bev, EV_WRITE);
                if ((what & BEV_EVENT_READING) && !ws->rd_paused)
                        bufferevent_enable(bev, EV_READ);
                return;
        }
        if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
                broker_log(ws->eh->b, HYB_LOG_DEBUG, "edge: WebSocket peer %s: %s", ws->peer,
                           what & BEV_EVENT_EOF ? "end of stream" : "connection error");
                ws->dead = true;
                ws_pump(ws);
        }
}

static void handshake_timeout(evutil_socket_t fd, short what, void *ud)
{
        edge_ws *ws = ud;

        (void)fd;
        (void)what;
        if (ws->authed)
                return;
        broker_log(ws->eh->b, HYB_LOG_INFO,
                   "edge: WebSocket peer %s closed: no AUTH accepted within "
                   "limits.auth_timeout_ms",
                   ws->peer);
        ws_close(ws, WSLAY_CODE_POLICY_VIOLATION, "authentication timed out");
        ws_pump(ws);
}

/*
 * The broker's budget of sessions not yet authenticated is full: the oldest such connection
 * of the source address holding the most of them makes room for the newcomer from mine,
 * if that address holds more than mine does (so hosts that hold the budget by
 * reconnecting take each other's places, not a newcomer's).  True when one was closed.
 */
static bool preauth_evict(edge_http *eh, const ws_addr *mine)
{
        ws_addr *top = NULL;
        edge_ws *victim = NULL;

        for (ws_addr *a = eh->ws_addrs; a; a = a->next)
                if (!top || a->n > top->n)
                        top = a;
        if (!top || top == mine || top->n <= mine->n)
                return false;
        for (edge_task *t = eh->tasks; t; t = t->next) {
                edge_ws *w = (edge_ws *)t;

                if (t->kill != ws_kill || !w->preauth || w->addr != top || w->closing || w->dead)
                        continue;
                if (!victim || w->bserial < victim->bserial)
                        victim = w;
        }
        /* the broker may have accepted its AUTH already (its answer not read yet) */
        if (!victim || !broker_ws_session_drop(eh->b, victim->bserial))
                return false;
        broker_log(eh->b, HYB_LOG_INFO,
                   "edge: WebSocket peer %s closed: the oldest of %u not yet authenticated "
                   "from its address, for a newcomer (the budget of remote sessions not yet "
                   "authenticated is full)",
                   victim->peer, top->n);
        preauth_end(victim);
        ws_close(victim, 1013 /* Try Again Later */, "too many connections not authenticated");
        ws_pump(victim);
        return true;
}

/* ----------------------------------------------------------------- upgrade */

/* Is the address of listen.http a loopback one (127.0.0.0/8, ::1)? */
static bool loopback_spec(const char *spec)
{
        struct sockaddr_storage ss;
        int sl = (int)sizeof ss;

        if (!spec || broker_parse_hostport(spec, &ss, &sl) < 0)
                return false;
        if (ss.ss_family == AF_INET)
                return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
        if (ss.ss_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
        return false;
}

static void refuse(struct evhttp_request *req, int status, const char *header, hyb_error *e)
{
        struct evkeyvalq *out = evhttp_request_get_output_headers(req);

        if (header) {
                const char *colon = strchr(header, ':');
                char name[64];

                snprintf(name, sizeof name, "%.*s", (int)(colon - header), header);
                evhttp_add_header(out, name, colon + 2);
        }
        if (status == 401)
                evhttp_add_header(out, "WWW-Authenticate", "Bearer");
        evhttp_add_header(out, "Connection", "close");
        edge_send_error(req, status,
                        status == 401   ? "HYB_E_UNAUTHORIZED"
                        : status == 403 ? "HYB_E_FORBIDDEN"
                        : status == 503 ? "HYB_E_UNAVAILABLE"
                                        : "HYB_E_BAD_REQUEST",
                        "%s", e->message);
}

void edge_ws_upgrade(edge_http *eh, struct evhttp_request *req, const char *scheme)
{
        static const struct wslay_event_callbacks cbs = {
                .recv_callback = ws_recv_cb,
                .send_callback = ws_send_cb,
                .on_frame_recv_start_callback = ws_frame_start_cb,
                .on_msg_recv_callback = ws_msg_cb,
        };
        hyb_broker *b = eh->b;
        struct evkeyvalq *in = evhttp_request_get_input_headers(req);
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        bool tls = strcmp(scheme, "https") == 0;
        char accept[EDGE_WS_ACCEPT_SIZE], binding[EDGE_TLS_BINDING_TEXT_MAX];
        const char *header = NULL;
        struct sockaddr_storage key;
        const struct sockaddr *sa;
        struct evbuffer *out;
        ws_addr *a;
        edge_ws *ws;
        hyb_error e;
        int st;

        hyb_error_clear(&e);
        st = edge_ws_check_upgrade(evhttp_request_get_command(req) == EVHTTP_REQ_GET,
                                   evhttp_find_header(in, "Upgrade"),
                                   evhttp_find_header(in, "Connection"),
                                   evhttp_find_header(in, "Sec-WebSocket-Version"),
                                   evhttp_find_header(in, "Sec-WebSocket-Key"),
                                   evhttp_find_header(in, "Sec-WebSocket-Protocol"), accept,
                                   &header, &e);
        if (st) {
                refuse(req, st, header, &e);
                return;
        }
        if (!bev || !(sa = evhttp_connection_get_addr(evcon)) ||
            (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
                err_set(&e, HYB_E_BAD_REQUEST, -1, "not a TCP connection");
                refuse(req, 400, NULL, &e);
                return;
        }
        if (b->c->auth_tokens == BROKER_AUTH_OFF) {
                err_set(&e, HYB_E_UNAUTHORIZED, -1,
                        "remote bus peers authenticate with a token, and auth.tokens is off");
                refuse(req, 401, NULL, &e);
                return;
        }
        if (!tls && !b->c->edge_ws_plain_remote && !loopback_spec(b->c->listen_http)) {
                err_set(&e, HYB_E_FORBIDDEN, -1,
                        "plain ws:// is served on a loopback listen.http only; use wss:// "
                        "(listen.https) or set edge.ws_plain_remote: true");
                refuse(req, 403, NULL, &e);
                return;
        }
        if (eh->n_ws >= b->c->ws_max_connections) {
                err_set(&e, HYB_E_UNAVAILABLE, -1,
                        "too many WebSocket connections (limits.ws_max_connections)");
                broker_log(b, HYB_LOG_WARNING, "edge: WebSocket refused: %u open in all", eh->n_ws);
                refuse(req, 503, NULL, &e);
                return;
        }
        edge_addr_key(sa, &key);
        a = addr_get(eh, &key, false);
        if (a && a->n_all >= b->c->ws_max_per_address) {
                err_set(&e, HYB_E_UNAVAILABLE, -1,
                        "too many WebSocket connections from this address "
                        "(limits.ws_max_per_address)");
                broker_log(b, HYB_LOG_WARNING,
                           "edge: WebSocket refused: %u open from one address", a->n_all);
                refuse(req, 503, NULL, &e);
                return;
        }
        if (a && a->n >= b->c->ws_preauth_per_address) {
                err_set(&e, HYB_E_UNAVAILABLE, -1,
                        "too many WebSocket connections not yet authenticated from this address "
                        "(limits.ws_preauth_per_address)");
                broker_log(b, HYB_LOG_WARNING,
                           "edge: WebSocket refused: %u not yet authenticated from one address",
                           a->n);
                refuse(req, 503, NULL, &e);
                return;
        }
        if (tls) {
                edge_tls_conn *tc = edge_tls_conn_get(bev);

                if (!tc || edge_tls_conn_binding_text(tc, binding) < 0) {
                        err_set(&e, HYB_E_BAD_REQUEST, -1, "no TLS session to bind to");
                        refuse(req, 400, NULL, &e);
                        return;
                }
        } else {
                snprintf(binding, sizeof binding, "%s", EDGE_WS_BINDING_PLAIN);
        }
        ws = calloc(1, sizeof *ws);
        if (!ws || !(a = addr_get(eh, &key, true))) {
                free(ws);
                err_set(&e, -ENOMEM, -1, "out of memory");
                refuse(req, 503, NULL, &e);
                return;
        }
        if (broker_ws_preauth_full(b))
                (void)preauth_evict(eh, a);
        a->n++;
        a->n_all++;
        ws->addr = a;
        ws->preauth = true;
        ws->eh = eh;
        ws->evcon = evcon;
        ws->bev = bev;
        eh->n_ws++;
        edge_task_add(eh, &ws->task, ws_kill);
        {
                char host[INET6_ADDRSTRLEN] = "";
                unsigned port;

                if (sa->sa_family == AF_INET6) {
                        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host,
                                  sizeof host);
                        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
                } else {
                        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host,
                                  sizeof host);
                        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
                }
                snprintf(ws->peer, sizeof ws->peer, "%s:%u", host, port);
        }
        st = broker_ws_session(b, tls ? "wss" : "ws", binding, ws->peer, &ws->sess, &ws->bserial,
                               &e);
        if (st < 0) {
                /* still evhttp's: answer, then forget the connection */
                ws->evcon = NULL;
                edge_task_del(eh, &ws->task);
                ws_unaccount(ws);
                free(ws);
                refuse(req, 503, NULL, &e);
                return;
        }
        ws->timer = evtimer_new(b->base, handshake_timeout, ws);
        if (!ws->timer || wslay_event_context_server_init(&ws->ctx, &cbs, ws) != 0) {
                broker_pair_close(ws->sess);
                if (ws->timer)
                        event_free(ws->timer);
                edge_task_del(eh, &ws->task);
                ws_unaccount(ws);
                free(ws);
                err_set(&e, -ENOMEM, -1, "out of memory");
                refuse(req, 503, NULL, &e);
                return;
        }
        wslay_event_config_set_max_recv_msg_length(ws->ctx, b->c->max_frame);
        /* From here on the connection is ours: evhttp neither reads nor times it out. */
        edge_conn_forget(eh, evcon);
        bufferevent_set_timeouts(bev, NULL, NULL);
        bufferevent_setcb(bev, cli_read, cli_write, cli_event, ws);
        out = bufferevent_get_output(bev);
        evbuffer_add_printf(out,
                            "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n"
                            "Sec-WebSocket-Protocol: " EDGE_WS_SUBPROTOCOL "\r\n"
                            "\r\n",
                            accept);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        bufferevent_setcb(ws->sess, sess_read, sess_write, sess_event, ws);
        bufferevent_enable(ws->sess, EV_READ | EV_WRITE);
        {
                struct timeval tv = {.tv_sec = b->c->auth_timeout_ms / 1000,
                                     .tv_usec = (b->c->auth_timeout_ms % 1000) * 1000};

                evtimer_add(ws->timer, &tv);
        }
        broker_log(b, HYB_LOG_DEBUG, "edge: WebSocket peer %s (%s)", ws->peer, tls ? "wss" : "ws");
        /* bytes the client sent right after its request */
        ws_pump(ws);
}

void edge_ws_stop(edge_http *eh)
{
        while (eh->ws_addrs) {
                ws_addr *a = eh->ws_addrs;

                eh->ws_addrs = a->next;
                free(a);
        }
}
