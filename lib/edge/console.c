/* SPDX-License-Identifier: MIT */
/*
 * The browser console's static files (doc/console.md), served from memory.
 *
 * Only the exact paths of the embedded table exist: a path is compared as received,
 * before any percent-decoding, so `/console/%2e%2e/x`, `/console/../x` or
 * `/console/wire.mjs/` name no asset and are answered 404; nothing here opens a file.
 * Every answer (404 and 405 included) carries the console's security headers: a strict
 * Content-Security-Policy (scripts, styles and connections of this origin only, no
 * inline script, no framing), nosniff, no referrer.
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "console.h"
#include "edge-internal.h"

#define CONSOLE_PREFIX "/console/"

/* connect-src 'self' covers ws:// and wss:// of the page's own host and port (CSP 3). */
static const char console_csp[] =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const edge_console_asset *edge_console_find(const char *path)
{
        for (size_t i = 0; i < edge_console_n_assets; i++)
                if (strcmp(edge_console_assets[i].path, path) == 0)
                        return &edge_console_assets[i];
        return NULL;
}

static void add_headers(struct evhttp_request *req)
{
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);

        evhttp_add_header(h, "Content-Security-Policy", console_csp);
        evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
        evhttp_add_header(h, "Referrer-Policy", "no-referrer");
        evhttp_add_header(h, "X-Frame-Options", "DENY");
        evhttp_add_header(h, "Cache-Control", "no-cache");
}

bool edge_console_serve(struct evhttp_request *req, const char *raw_path)
{
        const edge_console_asset *a;
        struct evbuffer *out;
        enum evhttp_cmd_type m = evhttp_request_get_command(req);

        if (!raw_path || (strcmp(raw_path, "/") != 0 &&
                          strncmp(raw_path, CONSOLE_PREFIX, strlen(CONSOLE_PREFIX)) != 0))
                return false;
        add_headers(req);
        a = edge_console_find(raw_path);
        if (!a) {
                edge_send_error(req, 404, "HYB_E_NOT_FOUND", "no such console file");
                return true;
        }
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
                edge_send_error(req, 405, "HYB_E_BAD_REQUEST", "the console takes GET and HEAD");
                return true;
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", a->type);
        out = evbuffer_new();
        if (!out) {
                edge_send_error(req, 503, "HYB_E_UNAVAILABLE", "out of memory");
                return true;
        }
        /* The table is static: the buffer refers to it, no copy (edge_send answers a HEAD
         * with its length alone). */
        evbuffer_add_reference(out, a->data, a->len, NULL, NULL);
        edge_send(req, 0, 200, "OK", out, NULL, NULL);
        evbuffer_free(out);
        return true;
}
