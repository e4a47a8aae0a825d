/* SPDX-License-Identifier: MIT */
/*
 * The https listener (https.h): evhttp bound to one address, its connections made TLS by
 * edge_tls_evhttp_attach, a 404 JSON answer for whatever no route serves.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "edge/https.h"
#include "edge/tls.h"

#include "common/util.h"

/* Until the routes of the edge set their own: requests stay small, slow clients go. */
#define HTTPS_MAX_HEADERS (64 * 1024)
#define HTTPS_MAX_BODY (16 * 1024 * 1024)
#define HTTPS_TIMEOUT_S 60

struct edge_https {
        edge_tls *tls;
        struct evhttp *http;
        char address[300];
};

int edge_parse_hostport(const char *s, char *host, size_t host_size, uint16_t *port)
{
        const char *colon, *h = s, *p;
        size_t hlen;
        unsigned long v = 0;

        if (!s || !*s)
                return -EINVAL;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');

                if (!end || end[1] != ':')
                        return -EINVAL;
                h = s + 1;
                hlen = (size_t)(end - h);
                colon = end + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon || memchr(s, ':', (size_t)(colon - s)))
                        return -EINVAL; /* none, or an IPv6 address without brackets */
                hlen = (size_t)(colon - s);
        }
        if (hlen == 0)
                return -EINVAL;
        for (size_t i = 0; i < hlen; i++) {
                char ch = h[i];

                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
                      (s[0] == '[' && ch == ':')))
                        return -EINVAL;
        }
        p = colon + 1;
        if (!*p || strlen(p) > 5)
                return -EINVAL;
        for (; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long)(*p - '0');
        }
        if (v > 65535)
                return -EINVAL;
        if (hlen >= host_size)
                return -ENAMETOOLONG;
        if (s[0] == '[') {
                struct in6_addr a;
                char tmp[64];

                if (hlen >= sizeof(tmp))
                        return -EINVAL;
                memcpy(tmp, h, hlen);
                tmp[hlen] = '\0';
                if (inet_pton(AF_INET6, tmp, &a) != 1)
                        return -EINVAL;
        }
        memcpy(host, h, hlen);
        host[hlen] = '\0';
        *port = (uint16_t)v;
        return 0;
}

static void not_found(struct evhttp_request *req, void *arg)
{
        struct evbuffer *out = evhttp_request_get_output_buffer(req);
        const char *uri = evhttp_request_get_uri(req);
        json_t *j = json_pack("{s:i, s:s, s:s+}", "status", 404, "code", "HYB_E_NOT_FOUND",
                              "message", "no route for ", uri ? uri : "");
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;

        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        if (text)
                evbuffer_add_printf(out, "%s\n", text);
        evhttp_send_reply(req, 404, "Not Found", NULL);
        free(text);
        json_decref(j);
}

int edge_https_start(struct event_base *base, const char *hostport, const char *cert_file,
                     const char *key_file, edge_https **ret, hyb_error *reterr)
{
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        struct evhttp_bound_socket *bs;
        edge_https *h;
        char host[256], addr[INET6_ADDRSTRLEN];
        uint16_t port = 0;
        int r;

        r = edge_parse_hostport(hostport, host, sizeof(host), &port);
        if (r < 0)
                return err_set(reterr, -EINVAL, -1, "listen.https: bad address '%s' (HOST:PORT)",
                               hostport ? hostport : "");
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        r = edge_tls_server_new(cert_file, key_file, &h->tls, reterr);
        if (r < 0)
                goto fail;
        h->http = evhttp_new(base);
        if (!h->http) {
                r = -ENOMEM;
                goto fail;
        }
        edge_tls_evhttp_attach(h->http, h->tls);
        evhttp_set_gencb(h->http, not_found, h);
        evhttp_set_max_headers_size(h->http, HTTPS_MAX_HEADERS);
        evhttp_set_max_body_size(h->http, HTTPS_MAX_BODY);
        evhttp_set_timeout(h->http, HTTPS_TIMEOUT_S);
        bs = evhttp_bind_socket_with_handle(h->http, host, port);
        if (!bs) {
                r = errno ? -errno : -EADDRNOTAVAIL;
                err_set(reterr, r, -1, "cannot listen on https %s: %s", hostport, strerror(-r));
                goto fail;
        }
        if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
                if (ss.ss_family == AF_INET6) {
                        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

                        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
                        snprintf(h->address, sizeof(h->address), "[%s]:%u", addr,
                                 ntohs(s6->sin6_port));
                } else {
                        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

                        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
                        snprintf(h->address, sizeof(h->address), "%s:%u", addr,
                                 ntohs(s4->sin_port));
                }
        } else {
                snprintf(h->address, sizeof(h->address), "%s", hostport);
        }
        *ret = h;
        return 0;
fail:
        edge_https_free(h);
        return r;
}

void edge_https_set_log(edge_https *h, void (*fn)(const char *message, void *userdata),
                        void *userdata)
{
        edge_tls_set_log(h->tls, fn, userdata);
}

const char *edge_https_get_address(const edge_https *h)
{
        return h->address;
}

struct evhttp *edge_https_get_evhttp(const edge_https *h)
{
        return h->http;
}

edge_https *edge_https_free(edge_https *h)
{
        if (!h)
                return NULL;
        if (h->http)
                evhttp_free(h->http); /* its connections hold their own TLS references */
        edge_tls_unref(h->tls);
        free(h);
        return NULL;
}
