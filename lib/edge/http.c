/* SPDX-License-Identifier: MIT */
/*
 * The HTTP listener of the edge (listen.http, doc/edge.md): libevent's evhttp parses
 * HTTP/1.1 and enforces the size limits (request line and headers: EDGE_MAX_HEADERS_BYTES,
 * 431/400; the body: limits.max_body, 413) and the slow-client timeout (EDGE_TIMEOUT_S to
 * send the headers or the body).  A connection is counted at its first request against the
 * caps per source address and in total (503 and a close past them).  Every connection's
 * bufferevent is made in one place (evhttp_set_bevcb), where a TLS layer plugs in.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>

#include "common/util.h"
#include "console.h"
#include "edge-internal.h"
#include "https.h"

/* ----------------------------------------------------------------- tasks */

void edge_task_add(edge_http *eh, edge_task *t, void (*kill)(edge_task *t))
{
        t->kill = kill;
        t->prev = NULL;
        t->next = eh->tasks;
        if (eh->tasks)
                eh->tasks->prev = t;
        eh->tasks = t;
}

void edge_task_del(edge_http *eh, edge_task *t)
{
        if (t->prev)
                t->prev->next = t->next;
        else if (eh->tasks == t)
                eh->tasks = t->next;
        if (t->next)
                t->next->prev = t->prev;
        t->prev = t->next = NULL;
}

/* ----------------------------------------------------------------- replies */

void edge_send(struct evhttp_request *req, int kind, int status, const char *reason,
               struct evbuffer *body, void (*cb)(struct evhttp_connection *, void *), void *ud)
{
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

        (void)bev;
        switch (kind) {
        case 0:
                /* evhttp writes a body after the headers of a HEAD answer too, which a
                 * keep-alive client would take for the next answer: the length alone. */
                if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD && body) {
                        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
                        char len[24];

                        if (!evhttp_find_header(h, "Content-Length")) {
                                snprintf(len, sizeof len, "%zu", evbuffer_get_length(body));
                                evhttp_add_header(h, "Content-Length", len);
                        }
                        body = NULL;
                }
                evhttp_send_reply(req, status, reason, body);
                break;
        case 1:
                evhttp_send_reply_start(req, status, reason);
                break;
        case 2:
                evhttp_send_reply_chunk_with_cb(req, body, cb, ud);
                break;
        default:
                evhttp_send_reply_end(req);
                break;
        }
}

void edge_send_now(struct evhttp_connection *evcon)
{
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
        bufferevent_data_cb rd = NULL, wr = NULL;
        bufferevent_event_cb ev = NULL;
        struct evbuffer *out;
        void *arg = NULL;
        evutil_socket_t fd;
        int n;

        if (!bev || bufferevent_get_underlying(bev) || (fd = bufferevent_getfd(bev)) < 0 ||
            !(bufferevent_get_enabled(bev) & EV_WRITE))
                return;
        bufferevent_getcb(bev, &rd, &wr, &ev, &arg);
        out = bufferevent_get_output(bev);
        if (!wr || arg != evcon || evbuffer_get_length(out) == 0)
                return;
        /* the socket bufferevent keeps its output's front frozen outside its own write */
        evbuffer_unfreeze(out, 1);
        n = evbuffer_write(out, fd);
        evbuffer_freeze(out, 1);
        if (n > 0 && evbuffer_get_length(out) == 0)
                bufferevent_trigger(bev, EV_WRITE, 0); /* evhttp: written (the watermark is 0) */
}

void edge_reply_headers(edge_http *eh, struct evhttp_request *req, size_t len)
{
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        time_t now = time(NULL);
        char num[24], *p = num + sizeof num;

        if (now != eh->date_at || !eh->date[0]) {
                if (evutil_date_rfc1123(eh->date, sizeof eh->date, NULL) <= 0)
                        eh->date[0] = '\0';
                eh->date_at = now;
        }
        if (eh->date[0])
                evhttp_add_header(h, "Date", eh->date);
        *--p = '\0';
        do
                *--p = (char)('0' + len % 10);
        while ((len /= 10));
        evhttp_add_header(h, "Content-Length", p);
}

int edge_http_status(int s)
{
        switch (s) {
        case 200:
        case 201:
        case 202:
        case 204:
                return 200;
        case 400:
        case 406:
        case 422:
                return 400;
        case 401:
        case 403:
        case 404:
        case 413:
        case 429:
        case 502:
        case 503:
        case 504:
                return s;
        case 507:
                return 429; /* a quota of the principal's session */
        case 409:
                return 409;
        default:
                return 502; /* the callee failed (500), went away (410), ... */
        }
}

void edge_send_error(struct evhttp_request *req, int status, const char *code, const char *fmt, ...)
{
        char msg[512];
        struct evbuffer *out;
        char *text;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        text = edge_error_json(status, code, "%s", msg);
        out = evbuffer_new();
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        if (out && text)
                evbuffer_add(out, text, strlen(text));
        edge_send(req, 0, status, status == 401 ? "Unauthorized" : "Error", out, NULL, NULL);
        if (out)
                evbuffer_free(out);
        free(text);
}

void edge_send_result(struct evhttp_request *req, const wire_packet *p)
{
        int s = edge_http_status(p->h.status);

        if (s == 200) {
                struct evbuffer *out = evbuffer_new();
                bool bin = p->h.flags & WIRE_F_BINARY;

                evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                                  bin ? "application/octet-stream" : "application/json");
                if (out) {
                        if (p->h.body_len)
                                evbuffer_add(out, p->body, p->h.body_len);
                        else if (!bin)
                                evbuffer_add(out, "null", 4);
                }
                edge_send(req, 0, 200, "OK", out, NULL, NULL);
                if (out)
                        evbuffer_free(out);
                return;
        }
        edge_send_error(req, s, hyb_err_name(hyb_err_from_status(p->h.status)), "%.*s",
                        (int)p->h.member_len, p->member ? p->member : "");
}

/* ----------------------------------------------------------------- connection caps */

typedef struct edge_addr {
        struct edge_addr *next;
        struct sockaddr_storage ss; /* the address, port 0 */
        unsigned n;
        unsigned n_unsent; /* its connections that sent no request yet */
} edge_addr;

/* One HTTP connection of listen.http from its accept, or of listen.https from its first
 * request, to its close. */
typedef struct edge_conn {
        struct edge_conn *next;
        struct evhttp_connection *evcon;
        edge_addr *addr;
        bool unsent; /* no request yet: counted in n_unsent, not in n */
        bool busy;   /* a request of it is being served (its reply not sent yet) */
        uint64_t used; /* when its last request was counted or answered (conn_seq order) */
        void (*gone)(struct evhttp_connection *evcon, void *ud); /* the request in flight */
        void *gone_ud;
} edge_conn;

static edge_conn *conn_find(edge_http *eh, struct evhttp_connection *evcon)
{
        for (edge_conn *c = eh->conns; c; c = c->next)
                if (c->evcon == evcon)
                        return c;
        return NULL;
}

static void conn_closed(struct evhttp_connection *evcon, void *ud)
{
        edge_http *eh = ud;
        edge_conn *c = NULL;

        for (edge_conn **pp = &eh->conns; *pp; pp = &(*pp)->next)
                if ((*pp)->evcon == evcon) {
                        c = *pp;
                        *pp = c->next;
                        break;
                }
        if (!c)
                return;
        if (c->gone)
                c->gone(evcon, c->gone_ud);
        if (c->unsent) {
                eh->n_unsent--;
                c->addr->n_unsent--;
        } else {
                eh->n_conns--;
                c->addr->n--;
        }
        if (c->addr->n == 0 && c->addr->n_unsent == 0) {
                for (edge_addr **pp = &eh->addrs; *pp; pp = &(*pp)->next)
                        if (*pp == c->addr) {
                                *pp = c->addr->next;
                                free(c->addr);
                                break;
                        }
        }
        free(c);
}

/* Orders the connections by their last use: the least recently used idle one goes first. */
static uint64_t conn_seq;

/*
 * All EDGE_MAX_CONNECTIONS are open: the least recently used idle connection (no request
 * being served) of the source address holding the most is closed for a newcomer from
 * mine (NULL: an address without any), if that address holds more than mine does.  A
 * keep-alive connection may be closed while idle (RFC 9112 9.8), so hosts that hold the
 * total with idle connections take each other's places, never a newcomer's.  True when
 * one was closed.
 */
static bool conn_evict_idle(edge_http *eh, const edge_addr *mine)
{
        edge_addr *top = NULL;
        edge_conn *victim = NULL;

        for (edge_addr *a = eh->addrs; a; a = a->next)
                if (!top || a->n > top->n)
                        top = a;
        if (!top || top == mine || top->n <= (mine ? mine->n : 0))
                return false;
        for (edge_conn *c = eh->conns; c; c = c->next)
                if (c->addr == top && !c->unsent && !c->busy && !c->gone &&
                    (!victim || c->used < victim->used))
                        victim = c;
        if (!victim)
                return false;
        broker_log(eh->b, HYB_LOG_INFO,
                   "edge: idle connection closed: the least recently used of %u open from its "
                   "address, for a newcomer (%u open in all)",
                   top->n, eh->n_conns);
        evhttp_connection_free(victim->evcon); /* conn_closed uncounts and frees victim */
        return true;
}

/*
 * All EDGE_MAX_UNSENT connections that have sent no request yet are open: the oldest of
 * them of the source address holding the most is closed for a newcomer from mine (NULL: an
 * address without any), if that address holds more of them than mine does.  A client that
 * opens connections and sends nothing (slowloris) then takes its own places, never a
 * newcomer's from an address holding fewer.  True when one was closed.
 */
static bool conn_evict_unsent(edge_http *eh, const edge_addr *mine)
{
        edge_addr *top = NULL;
        edge_conn *victim = NULL;

        for (edge_addr *a = eh->addrs; a; a = a->next)
                if (!top || a->n_unsent > top->n_unsent)
                        top = a;
        if (!top || top == mine || top->n_unsent <= (mine ? mine->n_unsent : 0))
                return false;
        for (edge_conn *c = eh->conns; c; c = c->next)
                if (c->addr == top && c->unsent && (!victim || c->used < victim->used))
                        victim = c;
        if (!victim)
                return false;
        broker_log(eh->b, HYB_LOG_INFO,
                   "edge: connection closed before its first request: the oldest of %u without "
                   "one from its address, for a newcomer (%u in all)",
                   top->n_unsent, eh->n_unsent);
        evhttp_connection_free(victim->evcon); /* conn_closed uncounts and frees victim */
        return true;
}

/*
 * Counts evcon at its first request against the caps: false when one refuses it.  A
 * connection that has not sent a whole request is bounded by the timeout instead.
 */
static bool conn_count(edge_http *eh, struct evhttp_connection *evcon)
{
        /* The peer's address as evhttp accepted it (any bufferevent: TCP or TLS) */
        const struct sockaddr *sa = evhttp_connection_get_addr(evcon);
        struct sockaddr_storage ss;
        edge_addr *a;
        edge_conn *c = conn_find(eh, evcon);

        if (c && !c->unsent)
                return true;
        if (c) {
                a = c->addr;
        } else {
                memset(&ss, 0, sizeof ss);
                if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
                        return false;
                memcpy(&ss, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
                for (a = eh->addrs; a; a = a->next)
                        if (edge_addr_same(&a->ss, &ss))
                                break;
        }
        if (eh->n_conns >= EDGE_MAX_CONNECTIONS && !conn_evict_idle(eh, a)) {
                broker_log(eh->b, HYB_LOG_WARNING, "edge: connection refused: %u open in all",
                           eh->n_conns);
                return false;
        }
        if (a && a->n >= EDGE_MAX_PER_ADDRESS) {
                broker_log(eh->b, HYB_LOG_WARNING,
                           "edge: connection refused: %u open from one address", a->n);
                return false;
        }
        if (c) { /* its first request: from the unsent count to the open one */
                c->unsent = false;
                a->n_unsent--;
                eh->n_unsent--;
                a->n++;
                eh->n_conns++;
                return true;
        }
        c = calloc(1, sizeof *c);
        if (!c)
                return false;
        if (!a) {
                a = calloc(1, sizeof *a);
                if (!a) {
                        free(c);
                        return false;
                }
                a->ss = ss;
                a->next = eh->addrs;
                eh->addrs = a;
        }
        a->n++;
        eh->n_conns++;
        c->evcon = evcon;
        c->addr = a;
        c->next = eh->conns;
        eh->conns = c;
        evhttp_connection_set_closecb(evcon, conn_closed, eh);
        return true;
}

void edge_conn_forget(edge_http *eh, struct evhttp_connection *evcon)
{
        edge_conn *c = conn_find(eh, evcon);

        evhttp_connection_set_closecb(evcon, NULL, NULL);
        if (!c)
                return;
        c->gone = NULL;
        conn_closed(evcon, eh); /* uncounts and frees c */
}

void edge_conn_watch(edge_http *eh, struct evhttp_connection *evcon,
                     void (*gone)(struct evhttp_connection *evcon, void *ud), void *ud)
{
        edge_conn *c = evcon ? conn_find(eh, evcon) : NULL;

        if (c) {
                c->gone = gone;
                c->gone_ud = ud;
        }
}

/*
 * A connection of listen.http just accepted is counted against EDGE_MAX_UNSENT_PER_ADDRESS
 * and EDGE_MAX_UNSENT until its first request (conn_count), so that connections that send
 * nothing cannot take every descriptor of the daemon within the timeout: one over a cap is
 * closed at once.  evhttp tells of a new connection only at its first request, so
 * conn_new schedules this look at the connection right after evhttp's accept.
 */
typedef struct conn_kick {
        edge_task task; /* first: the edge ends it when it stops */
        edge_http *eh;
        struct bufferevent *bev; /* referenced until the look */
        struct event *ev;
} conn_kick;

static void kick_free(conn_kick *k)
{
        edge_task_del(k->eh, &k->task);
        event_free(k->ev);
        bufferevent_decref(k->bev);
        free(k);
}

static void kick_kill(edge_task *t)
{
        kick_free((conn_kick *)t);
}

static void conn_accepted(evutil_socket_t fd, short what, void *ud)
{
        conn_kick *k = ud;
        edge_http *eh = k->eh;
        struct evhttp_connection *evcon = NULL;
        const struct sockaddr *sa;
        struct sockaddr_storage ss;
        bufferevent_data_cb rd, wr;
        bufferevent_event_cb ev;
        void *arg = NULL;
        edge_addr *a;
        edge_conn *c;

        (void)fd;
        (void)what;
        /* evhttp's callbacks take the connection as their argument (none: already freed) */
        bufferevent_getcb(k->bev, &rd, &wr, &ev, &arg);
        if (arg && evhttp_connection_get_bufferevent(arg) == k->bev)
                evcon = arg;
        kick_free(k); /* the connection holds the bufferevent, if it is still there */
        if (!evcon || conn_find(eh, evcon) || !(sa = evhttp_connection_get_addr(evcon)) ||
            (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
                return;
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
        for (a = eh->addrs; a; a = a->next)
                if (edge_addr_same(&a->ss, &ss))
                        break;
        if (eh->n_unsent >= EDGE_MAX_UNSENT && !(a && a->n_unsent >= EDGE_MAX_UNSENT_PER_ADDRESS))
                (void)conn_evict_unsent(eh, a);
        if (eh->n_unsent >= EDGE_MAX_UNSENT ||
            (a && a->n_unsent >= EDGE_MAX_UNSENT_PER_ADDRESS) || !(c = calloc(1, sizeof *c))) {
                broker_log(eh->b, HYB_LOG_WARNING,
                           "edge: connection closed: %u without a request from its address, %u in all",
                           a ? a->n_unsent : 0, eh->n_unsent);
                evhttp_connection_free(evcon);
                return;
        }
        if (!a) {
                if (!(a = calloc(1, sizeof *a))) {
                        free(c);
                        evhttp_connection_free(evcon);
                        return;
                }
                a->ss = ss;
                a->next = eh->addrs;
                eh->addrs = a;
        }
        a->n_unsent++;
        eh->n_unsent++;
        c->unsent = true;
        c->used = ++conn_seq; /* its accept: the oldest goes first (conn_evict_unsent) */
        c->evcon = evcon;
        c->addr = a;
        c->next = eh->conns;
        eh->conns = c;
        evhttp_connection_set_closecb(evcon, conn_closed, eh);
}

/* Every connection's bufferevent is made here: the place a TLS layer plugs in. */
static struct bufferevent *conn_new(struct event_base *base, void *ud)
{
        edge_http *eh = ud;
        struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        conn_kick *k;

        if (!bev)
                return NULL;
        /* evhttp sets the socket and its callbacks after this returns, before the loop
         * runs another event: the look runs next, while the connection is surely there */
        k = calloc(1, sizeof *k);
        if (!k || !(k->ev = event_new(base, -1, 0, conn_accepted, k))) {
                free(k);
                bufferevent_free(bev);
                return NULL;
        }
        k->eh = eh;
        k->bev = bev;
        bufferevent_incref(bev);
        edge_task_add(eh, &k->task, kick_kill);
        event_active(k->ev, 0, 0);
        return bev;
}

/* ----------------------------------------------------------------- requests */

/*
 * The headers that frame a request, as RFC 9112 wants them (sections 3.2 and 6.3): one Host,
 * at most one Content-Length, of digits only.  evhttp takes the first Content-Length it finds
 * and reads "+1" as 1, where a proxy in front may take another: the two would see different
 * requests in the same bytes (request smuggling).  NULL, or why the request is refused.
 */
static const char *framing_error(struct evhttp_request *req)
{
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        unsigned hosts = 0, lengths = 0;

        for (struct evkeyval *kv = h ? h->tqh_first : NULL; kv; kv = kv->next.tqe_next) {
                if (strcasecmp(kv->key, "Host") == 0 && ++hosts > 1)
                        return "more than one Host header";
                if (strcasecmp(kv->key, "Content-Length") == 0) {
                        if (++lengths > 1)
                                return "more than one Content-Length header";
                        if (!kv->value[0] || strspn(kv->value, "0123456789") != strlen(kv->value))
                                return "Content-Length must be decimal digits";
                }
        }
        return NULL;
}

/* The reply of req is sent: its connection is idle again (conn_evict_idle). */
static void req_complete(struct evhttp_request *req, void *ud)
{
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        edge_conn *c = evcon ? conn_find(ud, evcon) : NULL;

        if (c) {
                c->busy = false;
                c->used = ++conn_seq;
        }
}

/* A request of evcon (counted) is being served until its reply is sent. */
static void conn_busy(edge_http *eh, struct evhttp_request *req, struct evhttp_connection *evcon)
{
        edge_conn *c = conn_find(eh, evcon);

        if (!c)
                return;
        c->busy = true;
        c->used = ++conn_seq;
        evhttp_request_set_on_complete_cb(req, req_complete, eh);
}

static void on_request(struct evhttp_request *req, void *ud)
{
        edge_front *front = ud;
        edge_http *eh = front->eh;
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
        const char *why;
        edge_route r;
        hyb_error e;
        int st;

        if (evcon && !conn_count(eh, evcon)) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
                edge_send_error(req, 503, "HYB_E_UNAVAILABLE", "too many connections");
                return;
        }
        if (evcon)
                conn_busy(eh, req, evcon);
        if ((why = framing_error(req))) {
                /* the rest of the stream cannot be trusted to start a request */
                evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
                edge_send_error(req, 400, "HYB_E_BAD_REQUEST", "%s", why);
                return;
        }
        if (u && evhttp_uri_get_path(u) && strcmp(evhttp_uri_get_path(u), EDGE_WS_PATH) == 0) {
                edge_ws_upgrade(eh, req, front->scheme);
                return;
        }
        /* The browser console's static files: anonymous, never a bus route */
        if (edge_console_serve(req, u ? evhttp_uri_get_path(u) : NULL))
                return;
        hyb_error_clear(&e);
        st = edge_route_parse(u ? evhttp_uri_get_path(u) : NULL, &r, &e);
        if (st) {
                edge_send_error(req, st, st == 404 ? "HYB_E_NOT_FOUND" : "HYB_E_BAD_REQUEST", "%s",
                                e.message);
                return;
        }
        edge_auth(eh, req, front->scheme, &r);
}

/* Serves the routes on http, with the edge's limits (the bufferevents are http's own). */
static void serve_on(struct evhttp *http, edge_front *front, const hyb_broker *b)
{
        evhttp_set_max_headers_size(http, EDGE_MAX_HEADERS_BYTES);
        evhttp_set_max_body_size(http, (ev_ssize_t)b->c->max_body);
        evhttp_set_timeout(http, EDGE_TIMEOUT_S);
        evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                                 EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
        evhttp_set_gencb(http, on_request, front);
}

int broker_edge_start(hyb_broker *b, hyb_error *e)
{
        const char *spec = b->c->listen_http;
        struct sockaddr_storage ss;
        int sl = (int)sizeof ss;
        char host[INET6_ADDRSTRLEN + 2];
        uint16_t port;
        edge_http *eh;

        int rc = edge_coap_start(b, e); /* listen.coap (coap.c) */

        if (rc < 0)
                return rc;
        if (!spec && !b->https)
                return 0;
        eh = calloc(1, sizeof *eh);
        if (!eh)
                return -ENOMEM;
        eh->b = b;
        eh->fronts[0] = (edge_front){ eh, "http" };
        eh->fronts[1] = (edge_front){ eh, "https" };
        b->edge = eh;
        /* listen.https (lib/edge/https.c, already listening): the same routes over TLS */
        if (b->https)
                serve_on(edge_https_get_evhttp(b->https), &eh->fronts[1], b);
        if (!spec)
                return 0;
        if (broker_parse_hostport(spec, &ss, &sl) < 0)
                return err_set(e, HYB_E_CONFIG, -1, "listen.http: not HOST:PORT: %s", spec);
        if (ss.ss_family == AF_INET6) {
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
        } else {
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
        }
        eh->http = evhttp_new(b->base);
        if (!eh->http)
                return -ENOMEM;
        serve_on(eh->http, &eh->fronts[0], b);
        evhttp_set_bevcb(eh->http, conn_new, eh);
        eh->bound = evhttp_bind_socket_with_handle(eh->http, host, port);
        if (!eh->bound) {
                int r = errno ? -errno : -EADDRINUSE;

                return err_set(e, r, -1, "listen.http: cannot listen on %s: %s", spec, strerror(-r));
        }
        /* The port bound (port 0 in the configuration: the one the kernel chose) */
        sl = (int)sizeof ss;
        if (getsockname(evhttp_bound_socket_get_fd(eh->bound), (struct sockaddr *)&ss, (socklen_t *)&sl) == 0)
                port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port);
        broker_log(b, HYB_LOG_INFO, "edge: HTTP on %s%s%s:%u", ss.ss_family == AF_INET6 ? "[" : "", host,
                   ss.ss_family == AF_INET6 ? "]" : "", (unsigned)port);
        return 0;
}

void broker_edge_stop(hyb_broker *b)
{
        edge_http *eh = b->edge;

        edge_coap_stop(b);
        if (!eh)
                return;
        b->edge = NULL;
        /* The requests and streams end here: evhttp_free below must not tell them of their
         * connections' close. */
        for (edge_conn *c = eh->conns; c; c = c->next)
                c->gone = NULL;
        while (eh->tasks) {
                edge_task *t = eh->tasks;

                edge_task_del(eh, t);
                t->kill(t);
        }
        if (eh->http)
                evhttp_free(eh->http); /* closes every connection: their counts go with them */
        /* listen.https's connections close now too, while their counts can be told */
        b->https = edge_https_free(b->https);
        while (eh->conns) {
                edge_conn *c = eh->conns;
                eh->conns = c->next;
                free(c);
        }
        while (eh->addrs) {
                edge_addr *a = eh->addrs;
                eh->addrs = a->next;
                free(a);
        }
        edge_peer_idle_free(eh);
        hyb_broker_config_unref(eh->anon_cfg);
        edge_dpop_cache_free(eh->jti);
        edge_ws_stop(eh);
        free(eh);
}
