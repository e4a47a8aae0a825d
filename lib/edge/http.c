/* SPDX-License-Identifier: MIT */
/*
 * The HTTP listener of the edge (listen.http, doc/edge.md): libevent's evhttp parses
 * HTTP/1.1 and enforces the size limits (request line and headers: EDGE_MAX_HEADERS_BYTES,
 * 431/400; the body: limits.max_body, 413) and the slow-client timeout (EDGE_TIMEOUT_S to
 * send the headers or the body).  Every connection's bufferevent is made here
 * (evhttp_set_bevcb): a filter over the socket's, whose first read counts the connection
 * against the caps per source address and in total, and refuses it past them.  A TLS
 * layer plugs in at the same place (a TLS bufferevent under the filter).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <jansson.h>

#include "common/util.h"
#include "edge-internal.h"

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

void edge_send(struct evhttp_request *req, int kind, int status, const char *reason, struct evbuffer *body,
               void (*cb)(struct evhttp_connection *, void *), void *ud)
{
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

        if (bev)
                bufferevent_incref(bev);
        switch (kind) {
        case 0:
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
        if (bev) {
                bufferevent_flush(bev, EV_WRITE, BEV_NORMAL);
                bufferevent_decref(bev);
        }
}

int edge_http_status(int s)
{
        switch (s) {
        case 200: case 201: case 202: case 204:
                return 200;
        case 400: case 406: case 422:
                return 400;
        case 401: case 403: case 404: case 413: case 429: case 502: case 503: case 504:
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
        json_t *j;
        char *text;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        j = json_pack("{s:i, s:s, s:s}", "status", status, "code", code ? code : "", "message", msg);
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        out = evbuffer_new();
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
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
} edge_addr;

/* One HTTP connection, from the evhttp bevcb to the free of its bufferevent. */
typedef struct edge_conn {
        edge_http *eh;
        struct bufferevent *sock; /* the socket's bufferevent under the filter */
        edge_addr *addr; /* counted against it once the first bytes came */
        bool counted, refused;
} edge_conn;

static bool addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
        if (a->ss_family == AF_INET6)
                return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                              &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
        return false;
}

/* Counts the connection of fd: false when a cap refuses it. */
static bool conn_count(edge_conn *ec, int fd)
{
        edge_http *eh = ec->eh;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        edge_addr *a;

        memset(&ss, 0, sizeof ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
                return false;
        for (a = eh->addrs; a; a = a->next)
                if (addr_same(&a->ss, &ss))
                        break;
        if (eh->n_conns >= EDGE_MAX_CONNECTIONS) {
                broker_log(eh->b, HYB_LOG_WARNING, "edge: connection refused: %u open in all", eh->n_conns);
                return false;
        }
        if (a && a->n >= EDGE_MAX_PER_ADDRESS) {
                broker_log(eh->b, HYB_LOG_WARNING, "edge: connection refused: %u open from one address", a->n);
                return false;
        }
        if (!a) {
                a = calloc(1, sizeof *a);
                if (!a)
                        return false;
                a->ss = ss;
                a->next = eh->addrs;
                eh->addrs = a;
        }
        a->n++;
        eh->n_conns++;
        ec->addr = a;
        ec->counted = true;
        return true;
}

static void conn_free(void *ud)
{
        edge_conn *ec = ud;
        edge_http *eh = ec->eh;

        if (ec->counted) {
                eh->n_conns--;
                if (--ec->addr->n == 0) {
                        for (edge_addr **pp = &eh->addrs; *pp; pp = &(*pp)->next)
                                if (*pp == ec->addr) {
                                        *pp = ec->addr->next;
                                        free(ec->addr);
                                        break;
                                }
                }
        }
        free(ec);
}

static enum bufferevent_filter_result conn_in(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t limit,
                                              enum bufferevent_flush_mode mode, void *ud)
{
        edge_conn *ec = ud;

        (void)mode;
        if (!ec->counted && !ec->refused) {
                /* The first bytes: the fd is set by now (evhttp gives it to the socket's
                 * bufferevent).  Refused: shut down, so evhttp sees the end and frees it. */
                int fd = bufferevent_getfd(ec->sock);

                if (!conn_count(ec, fd)) {
                        ec->refused = true;
                        shutdown(fd, SHUT_RDWR);
                }
        }
        if (ec->refused) {
                evbuffer_drain(src, evbuffer_get_length(src));
                return BEV_OK;
        }
        evbuffer_remove_buffer(src, dst, limit > 0 ? (size_t)limit : evbuffer_get_length(src));
        return BEV_OK;
}

static struct bufferevent *conn_new(struct event_base *base, void *ud)
{
        edge_http *eh = ud;
        struct bufferevent *sock, *f;
        edge_conn *ec = calloc(1, sizeof *ec);

        if (!ec)
                return NULL;
        ec->eh = eh;
        sock = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!sock) {
                free(ec);
                return NULL;
        }
        ec->sock = sock;
        f = bufferevent_filter_new(sock, conn_in, NULL, BEV_OPT_CLOSE_ON_FREE, conn_free, ec);
        if (!f) {
                bufferevent_free(sock);
                free(ec);
                return NULL;
        }
        return f;
}

/* ----------------------------------------------------------------- requests */

static void on_request(struct evhttp_request *req, void *ud)
{
        edge_http *eh = ud;
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
        hyb_token_result *tok = NULL;
        edge_route r;
        hyb_error e;
        int st;

        (void)evcon;
        hyb_error_clear(&e);
        st = edge_route_parse(u ? evhttp_uri_get_path(u) : NULL, &r, &e);
        if (st) {
                edge_send_error(req, st, st == 404 ? "HYB_E_NOT_FOUND" : "HYB_E_BAD_REQUEST", "%s", e.message);
                return;
        }
        hyb_error_clear(&e);
        st = edge_auth(eh, req, r.path, &tok, &e);
        if (st) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                                  "DPoP algs=\"ES256\"");
                edge_send_error(req, st, "HYB_E_UNAUTHORIZED", "%s", e.message);
                edge_route_clear(&r);
                return;
        }
        edge_serve(eh, req, &r, tok);
        hyb_token_result_unref(tok);
}

int broker_edge_start(hyb_broker *b, hyb_error *e)
{
        const char *spec = b->c->listen_http;
        struct sockaddr_storage ss;
        int sl = (int)sizeof ss;
        char host[INET6_ADDRSTRLEN + 2];
        uint16_t port;
        edge_http *eh;

        if (!spec)
                return 0;
        if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sl) < 0)
                return err_set(e, HYB_E_CONFIG, -1, "listen.http: not HOST:PORT: %s", spec);
        if (ss.ss_family == AF_INET6) {
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
        } else {
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
        }
        eh = calloc(1, sizeof *eh);
        if (!eh)
                return -ENOMEM;
        eh->b = b;
        eh->http = evhttp_new(b->base);
        if (!eh->http) {
                free(eh);
                return -ENOMEM;
        }
        evhttp_set_max_headers_size(eh->http, EDGE_MAX_HEADERS_BYTES);
        evhttp_set_max_body_size(eh->http, (ev_ssize_t)b->c->max_body);
        evhttp_set_timeout(eh->http, EDGE_TIMEOUT_S);
        evhttp_set_allowed_methods(eh->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                                     EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
        evhttp_set_bevcb(eh->http, conn_new, eh);
        evhttp_set_gencb(eh->http, on_request, eh);
        eh->bound = evhttp_bind_socket_with_handle(eh->http, host, port);
        if (!eh->bound) {
                int r = -errno;
                evhttp_free(eh->http);
                free(eh);
                return err_set(e, r < 0 ? r : -EADDRINUSE, -1, "listen.http: cannot listen on %s: %s", spec,
                               strerror(r < 0 ? -r : EADDRINUSE));
        }
        b->edge = eh;
        broker_log(b, HYB_LOG_INFO, "edge: HTTP on %s", spec);
        return 0;
}

void broker_edge_stop(hyb_broker *b)
{
        edge_http *eh = b->edge;

        if (!eh)
                return;
        b->edge = NULL;
        while (eh->tasks) {
                edge_task *t = eh->tasks;

                edge_task_del(eh, t);
                t->kill(t);
        }
        evhttp_free(eh->http); /* closes every connection: their counts go with them */
        while (eh->addrs) {
                edge_addr *a = eh->addrs;
                eh->addrs = a->next;
                free(a);
        }
        edge_dpop_cache_free(eh->jti);
        free(eh);
}
