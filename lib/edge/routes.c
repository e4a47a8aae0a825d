/* SPDX-License-Identifier: MIT */
/*
 * The fixed routes of the edge (doc/edge.md "Routes"):
 *
 *   POST /bus/<app>/<runner>/<method>   JSON body -> CALL @localhost/<app>/<runner> <method>
 *   GET  /bus/<app>/<runner>/<method>   params from the query string
 *   GET|PUT|DELETE /store/<path>        the fURI /<path>: storeRead(Keyed), storeWrite, storeDelete
 *   GET  /events/<app>/<runner>/<bubble>, GET /watch/<pattern>   Server-Sent Events (sse.c)
 *
 * A path is percent-decoded exactly once; the names of /bus/ and /events/ must then be
 * valid bus names, and the fURI of /store/ and /watch/ must parse as a fURI (its rules
 * refuse `.` and `..` segments and empty segments), so `..`, `%2F` or `%2E%2E` can reach
 * nothing outside the route's own namespace.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "bus/names.h"
#include "common/util.h"
#include "edge-internal.h"
#include "hybrid/bus.h"
#include "hybrid/furi.h"
#include "hybrid/obj.h"

void edge_route_clear(edge_route *r)
{
        free(r->path);
        free(r->furi);
        r->path = r->furi = NULL;
}

/* The next segment of s (up to '/' or the end) into out; advances *s past it and its '/'. */
static int take_segment(const char **s, char *out, size_t size, bool last)
{
        const char *end = last ? *s + strlen(*s) : strchr(*s, '/');
        size_t n;

        if (!end)
                return -EINVAL;
        n = (size_t)(end - *s);
        if (n == 0 || n >= size)
                return -EINVAL;
        memcpy(out, *s, n);
        out[n] = 0;
        *s = *end ? end + 1 : end;
        return 0;
}

/* "<app>/<runner>/<member>" into r->endpoint and r->member; HTTP status or 0. */
static int parse_triple(const char *s, edge_route *r, hyb_error *e)
{
        char app[WIRE_ENDPOINT_MAX], runner[WIRE_ENDPOINT_MAX];

        if (take_segment(&s, app, sizeof app, false) < 0 ||
            take_segment(&s, runner, sizeof runner, false) < 0 ||
            take_segment(&s, r->member, sizeof r->member, true) < 0 || strchr(r->member, '/'))
                return err_set(e, 404, -1, "expected /<app>/<runner>/<name>"), 404;
        if (bus_name_check_app(app, strlen(app), NULL) < 0 ||
            bus_name_check_ident(runner, strlen(runner), NULL) < 0 ||
            bus_name_check_ident(r->member, strlen(r->member), NULL) < 0)
                return err_set(e, 400, -1, "malformed app, runner or member name"), 400;
        snprintf(r->endpoint, sizeof r->endpoint, "@localhost/%s/%s", app, runner);
        return 0;
}

int edge_route_parse(const char *raw_path, edge_route *r, hyb_error *e)
{
        static const struct {
                const char *prefix;
                int kind;
        } roots[] = {
                {"/bus/", EDGE_ROUTE_BUS},
                {"/store/", EDGE_ROUTE_STORE},
                {"/events/", EDGE_ROUTE_EVENTS},
                {"/watch/", EDGE_ROUTE_WATCH},
        };
        size_t len = 0;
        char *path;
        int st;

        memset(r, 0, sizeof *r);
        if (!raw_path || raw_path[0] != '/')
                return err_set(e, 400, -1, "malformed path"), 400;
        path = evhttp_uridecode(raw_path, 0, &len);
        if (!path)
                return err_set(e, 400, -1, "malformed path"), 400;
        if (strlen(path) != len) {
                free(path);
                return err_set(e, 400, -1, "NUL in the path"), 400;
        }
        r->path = path;
        for (size_t i = 0; i < ELEMENTSOF(roots); i++) {
                size_t pl = strlen(roots[i].prefix);
                const char *rest = path + pl;
                hyb_furi *f = NULL;

                if (strncmp(path, roots[i].prefix, pl) != 0)
                        continue;
                r->kind = roots[i].kind;
                switch (r->kind) {
                case EDGE_ROUTE_BUS:
                case EDGE_ROUTE_EVENTS:
                        st = parse_triple(rest, r, e);
                        if (st) {
                                edge_route_clear(r);
                                return st;
                        }
                        return 0;
                default:
                        /* "/store/a/b" -> "/a/b": the fURI rules decide what is valid */
                        r->furi = strdup(path + pl - 1);
                        if (!r->furi) {
                                edge_route_clear(r);
                                return err_set(e, 500, -1, "out of memory"), 500;
                        }
                        if (!*rest || hyb_furi_parse(r->furi, strlen(r->furi), NULL, &f, e) < 0 ||
                            !hyb_furi_is_absolute(f) || hyb_furi_get_host(f) ||
                            hyb_furi_get_scheme(f) || hyb_furi_get_query(f)) {
                                if (!*rest)
                                        err_set(e, 400, -1, "no fURI after %s", roots[i].prefix);
                                else if (f)
                                        err_set(e, 400, -1, "not a local fURI path: %s", r->furi);
                                hyb_furi_unref(f);
                                edge_route_clear(r);
                                return 400;
                        }
                        hyb_furi_unref(f);
                        return 0;
                }
        }
        err_set(e, 404, -1, "no route for %.200s", path);
        edge_route_clear(r);
        return 404;
}

int edge_query_params(const char *query, char **ret)
{
        struct evkeyvalq q;
        struct evkeyval *kv;
        json_t *obj = json_object();
        int r = 0;

        TAILQ_INIT(&q);
        if (!obj)
                return -ENOMEM;
        if (query && *query && evhttp_parse_query_str(query, &q) < 0) {
                json_decref(obj);
                return -EINVAL;
        }
        for (kv = q.tqh_first; kv; kv = kv->next.tqe_next) {
                json_t *v;

                if (!*kv->key || json_object_get(obj, kv->key)) {
                        r = -EINVAL; /* an empty or a repeated key */
                        break;
                }
                v = json_loads(kv->value, JSON_DECODE_ANY, NULL);
                if (!v)
                        v = json_string(kv->value); /* NULL when not UTF-8 */
                if (!v || json_object_set_new(obj, kv->key, v) < 0) {
                        r = -EINVAL;
                        break;
                }
        }
        evhttp_clear_headers(&q);
        if (r == 0 && !(*ret = json_dumps(obj, JSON_COMPACT)))
                r = -ENOMEM;
        json_decref(obj);
        return r;
}

/* ------------------------------------------------------------------- serving */

typedef struct edge_req {
        edge_task task; /* first */
        edge_http *eh;
        struct evhttp_request *req;
        struct evhttp_connection *evcon; /* NULL once the client is gone */
        edge_peer *peer;
        edge_route r;
        bool keyed; /* a store read of a pattern or branch */
} edge_req;

static void req_done(edge_req *q)
{
        if (q->evcon)
                edge_conn_watch(q->eh, q->evcon, NULL, NULL);
        edge_task_del(q->eh, &q->task);
        edge_peer_free(q->peer);
        edge_route_clear(&q->r);
        free(q);
}

/* The edge stops: evhttp frees the request, nothing is answered. */
static void req_kill(edge_task *t)
{
        edge_req *q = (edge_req *)t;

        q->evcon = NULL;
        req_done(q);
}

/* The client went away before the answer: evhttp keeps the request (it is ours until
 * answered), and the answer, when it comes, frees it without sending anything. */
static void req_gone(struct evhttp_connection *evcon, void *ud)
{
        edge_req *q = ud;

        (void)evcon;
        q->evcon = NULL;
}

static void send_json(struct evhttp_request *req, int status, const char *text, size_t len)
{
        struct evbuffer *out = evbuffer_new();

        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        if (out)
                evbuffer_add(out, text, len);
        edge_send(req, 0, status, status == 200 ? "OK" : "Error", out, NULL, NULL);
        if (out)
                evbuffer_free(out);
}

static void on_call_reply(edge_peer *peer, const wire_packet *p, void *ud)
{
        edge_req *q = ud;

        (void)peer;
        if (!p)
                edge_send_error(q->req, 502, "HYB_E_BAD_CALLEE",
                                "the session with the broker was lost");
        else
                edge_send_result(q->req, p);
        q->peer = NULL; /* freed below by req_done, after this callback */
        req_done(q);
        edge_peer_free(peer);
}

/* A store answer's obj text (binary body) parsed; NULL and an error reply sent on failure. */
static hyb_obj *store_obj(edge_req *q, const wire_packet *p)
{
        hyb_obj *o = NULL;
        hyb_error e;

        hyb_error_clear(&e);
        if (hyb_obj_parse((const char *)p->body, p->h.body_len, &o, &e) < 0) {
                edge_send_error(q->req, 502, "HYB_E_PROTOCOL", "unreadable store answer: %s",
                                e.message);
                return NULL;
        }
        return o;
}

static void on_store_reply(edge_peer *peer, const wire_packet *p, void *ud)
{
        edge_req *q = ud;
        enum evhttp_cmd_type cmd = evhttp_request_get_command(q->req);
        hyb_obj *o = NULL;
        char *text = NULL;
        hyb_error e;

        hyb_error_clear(&e);
        if (!p) {
                edge_send_error(q->req, 502, "HYB_E_BAD_CALLEE",
                                "the session with the broker was lost");
                goto out;
        }
        if (p->h.status < 200 || p->h.status > 299) {
                edge_send_result(q->req, p);
                goto out;
        }
        if (cmd != EVHTTP_REQ_GET) {
                send_json(q->req, 200, "null", 4);
                goto out;
        }
        if (!(o = store_obj(q, p)))
                goto out;
        if (!q->keyed) {
                if (hyb_obj_is_noobj(o)) {
                        edge_send_error(q->req, 404, "HYB_E_NOT_FOUND", "nothing at %s", q->r.furi);
                        goto out;
                }
                if (hyb_obj_to_json(o, &text, &e) < 0) {
                        edge_send_error(q->req, 500, "HYB_E_INTERNAL", "%s", e.message);
                        goto out;
                }
                send_json(q->req, 200, text, strlen(text));
                goto out;
        }
        /* keyed: a rec of fURI => value, or noobj */
        if (hyb_obj_is_noobj(o) || hyb_obj_get_kind(o) != HYB_OBJ_REC || hyb_obj_get_len(o) == 0) {
                edge_send_error(q->req, 404, "HYB_E_NOT_FOUND", "nothing matches %s", q->r.furi);
                goto out;
        }
        {
                json_t *all = json_object();
                bool bad = !all;

                for (size_t i = 0; !bad && i < hyb_obj_get_len(o); i++) {
                        const hyb_obj *k = hyb_obj_get_rec_key(o, i);
                        char *vt = NULL;
                        json_t *v;

                        if (hyb_obj_get_kind(k) != HYB_OBJ_URI ||
                            hyb_obj_to_json(hyb_obj_get_rec_value(o, i), &vt, &e) < 0) {
                                bad = true;
                                break;
                        }
                        v = json_loads(vt, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                        free(vt);
                        if (!v ||
                            json_object_set_new(all, hyb_furi_get_str(hyb_obj_get_uri(k)), v) < 0)
                                bad = true;
                }
                text = bad ? NULL : json_dumps(all, JSON_COMPACT);
                json_decref(all);
                if (!text)
                        edge_send_error(q->req, 500, "HYB_E_INTERNAL", "cannot encode the answer");
                else
                        send_json(q->req, 200, text, strlen(text));
        }
out:
        free(text);
        hyb_obj_unref(o);
        q->peer = NULL;
        req_done(q);
        edge_peer_free(peer);
}

/* X-Timeout-Ms: the call's deadline (1..3600000), else the default. */
static int call_timeout(struct evhttp_request *req, uint32_t *ret)
{
        const char *t = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Timeout-Ms");
        char *end;
        unsigned long v;

        *ret = EDGE_DEFAULT_TIMEOUT_MS;
        if (!t)
                return 0;
        errno = 0;
        v = strtoul(t, &end, 10);
        if (errno || end == t || *end || *t < '0' || *t > '9' || v < 1 || v > WIRE_TIMEOUT_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

static void serve_bus(edge_req *q)
{
        enum evhttp_cmd_type cmd = evhttp_request_get_command(q->req);
        struct evbuffer *in = evhttp_request_get_input_buffer(q->req);
        _cleanup_free_ char *params = NULL;
        const char *body;
        size_t len;
        uint32_t timeout;
        int r;

        if (call_timeout(q->req, &timeout) < 0) {
                edge_send_error(q->req, 400, "HYB_E_BAD_REQUEST", "X-Timeout-Ms: expected 1..%u",
                                WIRE_TIMEOUT_MAX);
                req_done(q);
                return;
        }
        if (cmd == EVHTTP_REQ_GET) {
                const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(q->req);

                r = edge_query_params(evhttp_uri_get_query(u), &params);
                if (r < 0) {
                        edge_send_error(q->req, 400, "HYB_E_BAD_REQUEST", "malformed query string");
                        req_done(q);
                        return;
                }
                body = params;
                len = strlen(params);
        } else {
                json_error_t je;
                json_t *j;

                len = evbuffer_get_length(in);
                body = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
                /* The body must be JSON: the callee gets it as sent */
                j = len ? json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je) : NULL;
                if (len && !j) {
                        edge_send_error(q->req, 400, "HYB_E_BAD_REQUEST",
                                        "the body is not JSON: %s", je.text);
                        req_done(q);
                        return;
                }
                json_decref(j);
        }
        r = edge_peer_call(q->peer, q->r.endpoint, q->r.member, body, len, 0, timeout,
                           on_call_reply, q);
        if (r < 0) {
                edge_send_error(q->req, 502, "HYB_E_BAD_CALLEE", "cannot reach the broker: %s",
                                hyb_strerror(r));
                req_done(q);
        }
}

static void serve_store(edge_req *q)
{
        enum evhttp_cmd_type cmd = evhttp_request_get_command(q->req);
        struct evbuffer *in = evhttp_request_get_input_buffer(q->req);
        _cleanup_free_ char *body = NULL, *exact = NULL;
        const char *method;
        hyb_furi *f = NULL;
        hyb_obj *o = NULL;
        hyb_error e;
        size_t len;
        int r;

        hyb_error_clear(&e);
        if (hyb_furi_parse(q->r.furi, strlen(q->r.furi), NULL, &f, &e) < 0) {
                edge_send_error(q->req, 400, "HYB_E_BAD_REQUEST", "%s", e.message);
                req_done(q);
                return;
        }
        q->keyed = hyb_furi_is_pattern(f) || hyb_furi_is_branch(f);
        hyb_furi_unref(f);
        if (cmd == EVHTTP_REQ_GET) {
                method = q->keyed ? "storeReadKeyed" : "storeRead";
                body = strdup(q->r.furi);
        } else if (cmd == EVHTTP_REQ_DELETE) {
                method = "storeDelete";
                body = strdup(q->r.furi);
        } else {
                len = evbuffer_get_length(in);
                r = hyb_obj_from_json(len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "",
                                      len, &o, &e);
                if (r >= 0)
                        r = hyb_obj_format(o, HYB_FORMAT_EXACT, &exact);
                hyb_obj_unref(o);
                if (r < 0) {
                        edge_send_error(q->req, 400, "HYB_E_BAD_REQUEST",
                                        "the body is not a JSON value: %s",
                                        e.message[0] ? e.message : hyb_strerror(r));
                        req_done(q);
                        return;
                }
                method = "storeWrite";
                if (asprintf(&body, "%s\n%s", q->r.furi, exact) < 0)
                        body = NULL;
        }
        if (!body) {
                edge_send_error(q->req, 500, "HYB_E_INTERNAL", "out of memory");
                req_done(q);
                return;
        }
        r = edge_peer_call(q->peer, HYB_BUS_BUILTIN_ENDPOINT, method, body, strlen(body),
                           WIRE_F_BINARY, 0, on_store_reply, q);
        if (r < 0) {
                edge_send_error(q->req, 502, "HYB_E_BAD_CALLEE", "cannot reach the broker: %s",
                                hyb_strerror(r));
                req_done(q);
        }
}

void edge_serve(edge_http *eh, struct evhttp_request *req, edge_route *r, hyb_token_result *tok,
                const char *transport)
{
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        edge_peer *peer = NULL;
        edge_req *q;
        hyb_error e;
        int st;

        bool ok =
                (r->kind == EDGE_ROUTE_BUS && (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_POST)) ||
                (r->kind == EDGE_ROUTE_STORE &&
                 (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_PUT || cmd == EVHTTP_REQ_DELETE)) ||
                ((r->kind == EDGE_ROUTE_EVENTS || r->kind == EDGE_ROUTE_WATCH) &&
                 cmd == EVHTTP_REQ_GET);
        if (!ok) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                                  r->kind == EDGE_ROUTE_BUS     ? "GET, POST"
                                  : r->kind == EDGE_ROUTE_STORE ? "GET, PUT, DELETE"
                                                                : "GET");
                edge_send_error(req, 405, "HYB_E_BAD_REQUEST", "method not allowed on this route");
                edge_route_clear(r);
                return;
        }
        hyb_error_clear(&e);
        st = edge_peer_new(eh->b, tok, transport, &peer, &e);
        if (st < 0) {
                int s = hyb_err_to_status(st);
                edge_send_error(req, edge_http_status(s), hyb_err_name(st), "%s", e.message);
                edge_route_clear(r);
                return;
        }
        if (r->kind == EDGE_ROUTE_EVENTS || r->kind == EDGE_ROUTE_WATCH) {
                edge_sse_start(eh, req, r, peer);
                return;
        }
        q = calloc(1, sizeof *q);
        if (!q) {
                edge_peer_free(peer);
                edge_send_error(req, 500, "HYB_E_INTERNAL", "out of memory");
                edge_route_clear(r);
                return;
        }
        q->eh = eh;
        q->req = req;
        q->peer = peer;
        q->r = *r;
        memset(r, 0, sizeof *r);
        edge_task_add(eh, &q->task, req_kill);
        q->evcon = evhttp_request_get_connection(req);
        if (q->evcon)
                edge_conn_watch(eh, q->evcon, req_gone, q);
        if (q->r.kind == EDGE_ROUTE_BUS)
                serve_bus(q);
        else
                serve_store(q);
}
