/* SPDX-License-Identifier: MIT */
/*
 * The https listener of the edge (doc/edge-tls.md): an evhttp bound to `listen.https`
 * whose connections are TLS connections (tls.h) of the `tls:` certificate and key.  Until
 * the routes are registered on it (edge_https_get_evhttp), every request is answered 404
 * with a JSON body {"status": 404, "code": "HYB_E_NOT_FOUND", "message": ...}.
 */
#ifndef HYB_EDGE_HTTPS_H
#define HYB_EDGE_HTTPS_H

#include <stddef.h>
#include <stdint.h>

#include "hybrid/common.h"

struct event_base;
struct evhttp;

typedef struct edge_https edge_https;

/*
 * Splits "HOST:PORT" (HOST: an IPv4 address, a host name, or an IPv6 address in
 * brackets; PORT: 0..65535, 0 for any free port) into host (brackets removed, NUL-ended)
 * and port.  0 or -EINVAL (bad form), -ENAMETOOLONG (host longer than host_size - 1).
 */
int edge_parse_hostport(const char *s, char *host, size_t host_size, uint16_t *port);
/*
 * Listens on hostport with TLS from cert_file and key_file.  Errors (message in *reterr):
 * those of edge_tls_server_new, -EINVAL (hostport), -EADDRINUSE/-EACCES/... (bind).
 */
int edge_https_start(struct event_base *base, const char *hostport, const char *cert_file,
                     const char *key_file, edge_https **ret, hyb_error *reterr);
/* Failed TLS connections are told to fn ("ADDRESS: why"; see edge_tls_set_log). */
void edge_https_set_log(edge_https *h, void (*fn)(const char *message, void *userdata),
                        void *userdata);
/* "HOST:PORT" as bound (the port chosen by the kernel for port 0); borrowed. */
const char *edge_https_get_address(const edge_https *h);
/* The evhttp, for routes (borrowed). */
struct evhttp *edge_https_get_evhttp(const edge_https *h);
/* Closes the listener and every connection; NULL-safe; returns NULL. */
edge_https *edge_https_free(edge_https *h);

#endif
