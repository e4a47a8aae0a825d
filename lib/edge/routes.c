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
#include <stdarg.h>
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

void edge_route_init(edge_route *r)
{
        r->kind = 0;
        r->path = r->furi = NULL;
        r->endpoint[0] = r->member[0] = '\0';
}

void edge_route_move(edge_route *dst, edge_route *src)
{
        dst->kind = src->kind;
        dst->path = src->path;
        dst->furi = src->furi;
        memcpy(dst->endpoint, src->endpoint, strnlen(src->endpoint, sizeof src->endpoint - 1) + 1);
        dst->endpoint[sizeof dst->endpoint - 1] = '\0';
        memcpy(dst->member, src->member, strnlen(src->member, sizeof src->member - 1) + 1);
        dst->member[sizeof dst->member - 1] = '\0';
        edge_route_init(src);
}

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
        {
                /* "@localhost/<app>/<runner>", cut as snprintf would cut it */
                static const char host[] = "@localhost/";
                size_t al = strlen(app), rl = strlen(runner), n = 0, cap = sizeof r->endpoint - 1;
                const struct {
                        const char *s;
                        size_t len;
                } part[] = { { host, sizeof host - 1 }, { app, al }, { "/", 1 }, { runner, rl } };

                for (size_t i = 0; i < ELEMENTSOF(part) && n < cap; i++) {
                        size_t k = part[i].len < cap - n ? part[i].len : cap - n;

                        memcpy(r->endpoint + n, part[i].s, k);
                        n += k;
                }
                r->endpoint[n] = '\0';
        }
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

        edge_route_init(r);
        if (!raw_path || raw_path[0] != '/')
                return err_set(e, 400, -1, "malformed path"), 400;
        /* without a '%' the decoding is a copy (decode_plus 0: '+' stays '+') */
        if (strchr(raw_path, '%')) {
                path = evhttp_uridecode(raw_path, 0, &len);
        } else {
                len = strlen(raw_path);
                path = strndup(raw_path, len);
        }
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

int edge_params_add(json_t *params, const char *key, const char *value)
{
        json_t *v;

        if (!*key || json_object_get(params, key))
                return -EINVAL; /* an empty or a repeated key */
        v = json_loads(value, JSON_DECODE_ANY, NULL);
        if (!v)
                v = json_string(value); /* NULL when not UTF-8 */
        if (!v || json_object_set_new(params, key, v) < 0)
                return -EINVAL;
        return 0;
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
        for (kv = q.tqh_first; kv; kv = kv->next.tqe_next)
                if ((r = edge_params_add(obj, kv->key, kv->value)) < 0)
                        break;
        evhttp_clear_headers(&q);
        if (r == 0 && !(*ret = json_dumps(obj, JSON_COMPACT)))
                r = -ENOMEM;
        json_decref(obj);
        return r;
}

/* ------------------------------------------------------------------- errors */

char *edge_error_json(int status, const char *code, const char *fmt, ...)
{
        char msg[512];
        char *text;
        json_t *j;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        j = json_pack("{s:i, s:s, s:s}", "status", status, "code", code ? code : "", "message",
                      msg);
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        return text;
}

bool edge_method_allowed(int kind, int method)
{
        switch (kind) {
        case EDGE_ROUTE_BUS:
                return method == EDGE_M_GET || method == EDGE_M_POST;
        case EDGE_ROUTE_STORE:
                return method == EDGE_M_GET || method == EDGE_M_PUT || method == EDGE_M_DELETE;
        default:
                return method == EDGE_M_GET;
        }
}

/* ---------------------------------------------------- /bus/ and /store/ requests */

/*
 * A request of any transport in flight: the transport hands over the route, the method,
 * the body (or the params of a GET call) and a session, and gets one answer (cb) back.
 */
struct edge_op {
        edge_peer *peer;
        edge_route r;
        int method;
        bool keyed; /* a store read of a pattern or branch */
        edge_answer_fn cb;
        void *ud;
};

/* Answers once and frees o (its session with it). */
static void op_answer(edge_op *o, int status, bool binary, const char *body, size_t len)
{
        edge_answer a = {.status = status, .binary = binary, .body = body, .len = len};

        o->cb(&a, o->ud);
        edge_peer_free(o->peer);
        edge_route_clear(&o->r);
        free(o);
}

static void op_error(edge_op *o, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void op_error(edge_op *o, int status, const char *code, const char *fmt, ...)
{
        char msg[512];
        char *text;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        text = edge_error_json(status, code, "%s", msg);
        op_answer(o, status, false, text ? text : "", text ? strlen(text) : 0);
        free(text);
}

/* A bus RESULT: 2xx its body as is (JSON, or binary), else the error body. */
static void op_result(edge_op *o, const wire_packet *p)
{
        int s = edge_http_status(p->h.status);

        if (s == 200) {
                bool bin = p->h.flags & WIRE_F_BINARY;

                if (p->h.body_len || bin)
                        op_answer(o, 200, bin, (const char *)p->body, p->h.body_len);
                else
                        op_answer(o, 200, false, "null", 4);
                return;
        }
        op_error(o, s, hyb_err_name(hyb_err_from_status(p->h.status)), "%.*s",
                 (int)p->h.member_len, p->member ? p->member : "");
}

static void on_call_reply(edge_peer *peer, const wire_packet *p, void *ud)
{
        (void)peer;
        if (!p)
                op_error(ud, 502, "HYB_E_BAD_CALLEE", "the session with the broker was lost");
        else
                op_result(ud, p);
}

/* A store answer's obj text (binary body) parsed; NULL and o answered on failure. */
static hyb_obj *store_obj(edge_op *o, const wire_packet *p)
{
        hyb_obj *obj = NULL;
        hyb_error e;

        hyb_error_clear(&e);
        if (hyb_obj_parse((const char *)p->body, p->h.body_len, &obj, &e) < 0) {
                op_error(o, 502, "HYB_E_PROTOCOL", "unreadable store answer: %s", e.message);
                return NULL;
        }
        return obj;
}

/* A keyed read's rec of fURI => value as a JSON object text, or NULL. */
static char *keyed_json(const hyb_obj *obj)
{
        json_t *all = json_object();
        char *text = NULL;
        bool bad = !all;

        for (size_t i = 0; !bad && i < hyb_obj_get_len(obj); i++) {
                const hyb_obj *k = hyb_obj_get_rec_key(obj, i);
                char *vt = NULL;
                json_t *v;

                if (hyb_obj_get_kind(k) != HYB_OBJ_URI ||
                    hyb_obj_to_json(hyb_obj_get_rec_value(obj, i), &vt, NULL) < 0) {
                        bad = true;
                        break;
                }
                v = json_loads(vt, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                free(vt);
                if (!v || json_object_set_new(all, hyb_furi_get_str(hyb_obj_get_uri(k)), v) < 0)
                        bad = true;
        }
        if (!bad)
                text = json_dumps(all, JSON_COMPACT);
        json_decref(all);
        return text;
}

static void on_store_reply(edge_peer *peer, const wire_packet *p, void *ud)
{
        edge_op *o = ud;
        hyb_obj *obj;
        char *text = NULL;
        hyb_error e;

        (void)peer;
        hyb_error_clear(&e);
        if (!p) {
                op_error(o, 502, "HYB_E_BAD_CALLEE", "the session with the broker was lost");
                return;
        }
        if (p->h.status < 200 || p->h.status > 299) {
                op_result(o, p);
                return;
        }
        if (o->method != EDGE_M_GET) {
                op_answer(o, 200, false, "null", 4);
                return;
        }
        if (!(obj = store_obj(o, p)))
                return;
        if (!o->keyed) {
                if (hyb_obj_is_noobj(obj))
                        op_error(o, 404, "HYB_E_NOT_FOUND", "nothing at %s", o->r.furi);
                else if (hyb_obj_to_json(obj, &text, &e) < 0)
                        op_error(o, 500, "HYB_E_INTERNAL", "%s", e.message);
                else
                        op_answer(o, 200, false, text, strlen(text));
        } else if (hyb_obj_is_noobj(obj) || hyb_obj_get_kind(obj) != HYB_OBJ_REC ||
                   hyb_obj_get_len(obj) == 0) {
                op_error(o, 404, "HYB_E_NOT_FOUND", "nothing matches %s", o->r.furi);
        } else if (!(text = keyed_json(obj))) {
                op_error(o, 500, "HYB_E_INTERNAL", "cannot encode the answer");
        } else {
                op_answer(o, 200, false, text, strlen(text));
        }
        free(text);
        hyb_obj_unref(obj);
}

/* Answered (o freed) on failure: false. */
static bool start_bus(edge_op *o, const char *body, size_t len, uint32_t timeout_ms)
{
        int r;

        if (o->method != EDGE_M_GET && len) {
                /* The body must be JSON: the callee gets it as sent */
                json_error_t je;
                json_t *j = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);

                if (!j) {
                        op_error(o, 400, "HYB_E_BAD_REQUEST", "the body is not JSON: %s", je.text);
                        return false;
                }
                json_decref(j);
        }
        r = edge_peer_call(o->peer, o->r.endpoint, o->r.member, body ? body : "", len, 0,
                           timeout_ms, on_call_reply, o);
        if (r < 0) {
                op_error(o, 502, "HYB_E_BAD_CALLEE", "cannot reach the broker: %s",
                         hyb_strerror(r));
                return false;
        }
        return true;
}

static bool start_store(edge_op *o, const char *in, size_t len)
{
        _cleanup_free_ char *body = NULL, *exact = NULL;
        const char *method;
        hyb_furi *f = NULL;
        hyb_obj *obj = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        if (hyb_furi_parse(o->r.furi, strlen(o->r.furi), NULL, &f, &e) < 0) {
                op_error(o, 400, "HYB_E_BAD_REQUEST", "%s", e.message);
                return false;
        }
        o->keyed = hyb_furi_is_pattern(f) || hyb_furi_is_branch(f);
        hyb_furi_unref(f);
        if (o->method == EDGE_M_GET) {
                method = o->keyed ? "storeReadKeyed" : "storeRead";
                body = strdup(o->r.furi);
        } else if (o->method == EDGE_M_DELETE) {
                method = "storeDelete";
                body = strdup(o->r.furi);
        } else {
                r = hyb_obj_from_json(in ? in : "", len, &obj, &e);
                if (r >= 0)
                        r = hyb_obj_format(obj, HYB_FORMAT_EXACT, &exact);
                hyb_obj_unref(obj);
                if (r < 0) {
                        op_error(o, 400, "HYB_E_BAD_REQUEST", "the body is not a JSON value: %s",
                                 e.message[0] ? e.message : hyb_strerror(r));
                        return false;
                }
                method = "storeWrite";
                if (asprintf(&body, "%s\n%s", o->r.furi, exact) < 0)
                        body = NULL;
        }
        if (!body) {
                op_error(o, 500, "HYB_E_INTERNAL", "out of memory");
                return false;
        }
        r = edge_peer_call(o->peer, HYB_BUS_BUILTIN_ENDPOINT, method, body, strlen(body),
                           WIRE_F_BINARY, 0, on_store_reply, o);
        if (r < 0) {
                op_error(o, 502, "HYB_E_BAD_CALLEE", "cannot reach the broker: %s",
                         hyb_strerror(r));
                return false;
        }
        return true;
}

edge_op *edge_op_start(edge_peer *peer, edge_route *r, int method, const char *body, size_t len,
                       uint32_t timeout_ms, edge_answer_fn cb, void *ud)
{
        /* not calloc: the route's arrays are large and filled by edge_route_move */
        edge_op *o = malloc(sizeof *o);

        if (!o) {
                edge_answer a = {.status = 500, .body = "", .len = 0};

                edge_peer_free(peer);
                edge_route_clear(r);
                cb(&a, ud);
                return NULL;
        }
        o->peer = peer;
        edge_route_move(&o->r, r);
        o->method = method;
        o->keyed = false;
        o->cb = cb;
        o->ud = ud;
        if (o->r.kind == EDGE_ROUTE_BUS)
                return start_bus(o, body, len, timeout_ms) ? o : NULL;
        return start_store(o, body, len) ? o : NULL;
}

void edge_op_cancel(edge_op *o)
{
        if (!o)
                return;
        edge_peer_free(o->peer);
        edge_route_clear(&o->r);
        free(o);
}

/* ------------------------------------------------------------------- HTTP */

typedef struct edge_req {
        edge_task task; /* first */
        edge_http *eh;
        struct evhttp_request *req;
        struct evhttp_connection *evcon; /* NULL once the client is gone */
        edge_op *op;
} edge_req;

static void req_done(edge_req *q)
{
        if (q->evcon)
                edge_conn_watch(q->eh, q->evcon, NULL, NULL);
        edge_task_del(q->eh, &q->task);
        free(q);
}

/* The edge stops: evhttp frees the request, nothing is answered. */
static void req_kill(edge_task *t)
{
        edge_req *q = (edge_req *)t;

        edge_op_cancel(q->op);
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

static void http_answer(const edge_answer *a, void *ud)
{
        edge_req *q = ud;
        const char *reason = a->status == 200 ? "OK" : a->status == 401 ? "Unauthorized" : "Error";
        struct evbuffer *out;

        evhttp_add_header(evhttp_request_get_output_headers(q->req), "Content-Type",
                          a->binary ? "application/octet-stream" : "application/json");
        if (evhttp_request_get_command(q->req) != EVHTTP_REQ_HEAD &&
            evbuffer_add(evhttp_request_get_output_buffer(q->req), a->body, a->len) == 0) {
                /* the body straight into the reply's buffer, its headers without printf */
                struct evhttp_connection *evcon = q->evcon;

                edge_reply_headers(q->eh, q->req, a->len);
                edge_send(q->req, 0, a->status, reason, NULL, NULL, NULL);
                req_done(q);
                edge_send_now(evcon); /* last: it may free the request and evcon */
                return;
        }
        out = evbuffer_new();
        if (out && a->len)
                evbuffer_add(out, a->body, a->len);
        edge_send(q->req, 0, a->status, reason, out, NULL, NULL);
        if (out)
                evbuffer_free(out);
        req_done(q);
}

static int http_method(enum evhttp_cmd_type cmd)
{
        switch (cmd) {
        case EVHTTP_REQ_GET:
                return EDGE_M_GET;
        case EVHTTP_REQ_POST:
                return EDGE_M_POST;
        case EVHTTP_REQ_PUT:
                return EDGE_M_PUT;
        case EVHTTP_REQ_DELETE:
                return EDGE_M_DELETE;
        default:
                return 0;
        }
}

/* X-Timeout-Ms: the call's deadline (1..3600000), else the default. */
static int call_timeout(struct evhttp_request *req, uint32_t *ret)
{
        const char *t = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Timeout-Ms");

        *ret = EDGE_DEFAULT_TIMEOUT_MS;
        return t ? edge_timeout_parse(t, strlen(t), ret) : 0;
}

int edge_timeout_parse(const char *t, size_t len, uint32_t *ret)
{
        unsigned long v = 0;

        if (len == 0 || len > 10)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (t[i] < '0' || t[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned long)(t[i] - '0');
        }
        if (v < 1 || v > WIRE_TIMEOUT_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

void edge_serve(edge_http *eh, struct evhttp_request *req, edge_route *r, hyb_token_result *tok,
                const char *transport)
{
        int method = http_method(evhttp_request_get_command(req));
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        _cleanup_free_ char *params = NULL;
        edge_peer *peer = NULL;
        const char *body = NULL;
        size_t len = 0;
        uint32_t timeout = EDGE_DEFAULT_TIMEOUT_MS;
        edge_req *q;
        edge_op *op;
        hyb_error e;
        int st;

        if (!edge_method_allowed(r->kind, method)) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                                  r->kind == EDGE_ROUTE_BUS     ? "GET, POST"
                                  : r->kind == EDGE_ROUTE_STORE ? "GET, PUT, DELETE"
                                                                : "GET");
                edge_send_error(req, 405, "HYB_E_BAD_REQUEST", "method not allowed on this route");
                edge_route_clear(r);
                return;
        }
        if (r->kind == EDGE_ROUTE_BUS && call_timeout(req, &timeout) < 0) {
                edge_send_error(req, 400, "HYB_E_BAD_REQUEST", "X-Timeout-Ms: expected 1..%u",
                                WIRE_TIMEOUT_MAX);
                edge_route_clear(r);
                return;
        }
        if (r->kind == EDGE_ROUTE_BUS && method == EDGE_M_GET) {
                const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);

                if (edge_query_params(evhttp_uri_get_query(u), &params) < 0) {
                        edge_send_error(req, 400, "HYB_E_BAD_REQUEST", "malformed query string");
                        edge_route_clear(r);
                        return;
                }
                body = params;
                len = strlen(params);
        } else if (method == EDGE_M_POST || method == EDGE_M_PUT) {
                len = evbuffer_get_length(in);
                body = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
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
        edge_task_add(eh, &q->task, req_kill);
        q->evcon = evhttp_request_get_connection(req);
        if (q->evcon)
                edge_conn_watch(eh, q->evcon, req_gone, q);
        op = edge_op_start(peer, r, method, body, len, timeout, http_answer, q);
        if (op)
                q->op = op; /* else answered, q freed */
}
