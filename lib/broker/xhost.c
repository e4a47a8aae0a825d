/* SPDX-License-Identifier: MIT */
/*
 * Bus calls between hosts (xhost.h, doc/cluster.md "Bus calls between hosts").
 *
 *   hyb_broker.xhost -> xhost
 *    `- peers: xpeer -> xpeer ...   one per remote host, each with its pseudo bconn:
 *         conn->in:  calls this host made to that host (route.c pending entries)
 *         conn->out: calls that host made here, being served by local endpoints
 *
 * A CALL for @<other>/app/runner leaves as the frame a local callee would get (from
 * "@<this host>/app/runner", no caller info, aux 0) on <P>call/<other>; the target rebuilds
 * it with `to` "@localhost/app/runner" and routes it from the pseudo connection of the
 * caller's host, whose name, app and token are those of the caller while route_call runs.
 * Answers go back on the response topic the CALL named, each with its correlation data.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "broker-internal.h"
#include "bus/acl.h"
#include "bus/names.h"
#include "common/util.h"
#include "xhost.h"

#define XHOST_TRANSPORT "cluster"
/* Call ids of a host remembered, to run a CALL the broker delivers again (QoS 1, its
 * PUBACK lost with the connection) once: more than the broker resends at once. */
#define XHOST_SEEN_CALLS 64

typedef struct xpeer {
        struct xpeer *next;
        bconn *conn;
        char host[BUS_HOST_MAX + 1];    /* lower case */
        bool offline;                   /* its presence said "offline" (its will) */
        char who[WIRE_ENDPOINT_MAX + 1]; /* conn->name: the caller or callee of the moment */
        char app[BUS_APP_MAX + 1];       /* conn->app */
        uint64_t seen[XHOST_SEEN_CALLS]; /* the call ids it sent last (a QoS 1 redelivery) */
        unsigned seen_next;
} xpeer;

typedef struct xhost {
        hyb_broker *b;
        const xhost_ops *ops;
        void *ud;
        char p[XHOST_TOPIC_MAX];        /* "<prefix>_hybrid/" */
        char own[BUS_HOST_MAX + 1];     /* this host, lower case */
        xpeer *peers;
        unsigned n_peers;
        uint64_t ev_gen;                /* events of other hosts delivered (bconn.ev_mark) */
        uint64_t ev_dropped;            /* events not published: XHOST_EVENT_BACKLOG reached */
        xsign *sign;                    /* cluster.call_secret_file: calls signed, or NULL */
        uint64_t refused;               /* calls refused for their signature (logged 1, 2, 4...) */
} xhost;

static const char self_app[] = BUS_APP_SELF;

/* ---------------------------------------------------------------- topics */

int xhost_topic(char *out, const char *prefix, const char *kind, const char *host, size_t host_len)
{
        int n = snprintf(out, XHOST_TOPIC_MAX, "%s%s/%.*s", prefix, kind, (int)host_len, host);
        if (n < 0 || (size_t)n >= XHOST_TOPIC_MAX)
                return -ENAMETOOLONG;
        for (char *q = out + strlen(prefix); *q; q++)
                *q = (char)tolower((unsigned char)*q);
        return 0;
}

int xhost_will_topic(const hyb_broker *b, char *topic)
{
        const xhost *x = b->xhost;
        if (!x)
                return -ENOENT;
        return xhost_topic(topic, x->p, "presence", x->own, strlen(x->own));
}

static void corr_put(uint8_t out[XHOST_CORR_LEN], uint64_t id)
{
        for (unsigned i = 0; i < XHOST_CORR_LEN; i++)
                out[i] = (uint8_t)(id >> (8 * i));
}

static bool corr_get(const xmsg *m, uint64_t *id)
{
        if (!m->corr || m->corr_len != XHOST_CORR_LEN)
                return false;
        *id = 0;
        for (unsigned i = 0; i < XHOST_CORR_LEN; i++)
                *id |= (uint64_t)m->corr[i] << (8 * i);
        return true;
}

/* ---------------------------------------------------------------- peers */

static xpeer *peer_find(xhost *x, const char *host, size_t len)
{
        for (xpeer *p = x->peers; p; p = p->next)
                if (bus_name_equal(p->host, strlen(p->host), host, len))
                        return p;
        return NULL;
}

static void peer_set_who(xpeer *p, const char *name, size_t len, const char *app, size_t app_len)
{
        memcpy(p->who, name, len);
        p->who[len] = 0;
        p->conn->name_len = len;
        memcpy(p->app, app, app_len);
        p->app[app_len] = 0;
}

static void peer_reset_who(xpeer *p)
{
        char n[WIRE_ENDPOINT_MAX + 1];
        int k = snprintf(n, sizeof n, "@%s/%s/cluster", p->host, self_app);
        peer_set_who(p, n, (size_t)k, self_app, sizeof self_app - 1);
}

/* At XHOST_MAX_HOSTS, a peer without calls either way makes room (what other hosts send
 * cannot fill the table for good): the oldest such, or NULL. */
static void peer_evict_idle(xhost *x)
{
        xpeer **victim = NULL;
        for (xpeer **pp = &x->peers; *pp; pp = &(*pp)->next)
                if (!(*pp)->conn->in && !(*pp)->conn->out)
                        victim = pp; /* peers are prepended: the last one is the oldest */
        if (!victim)
                return;
        xpeer *p = *victim;
        *victim = p->next;
        x->n_peers--;
        free(p->conn);
        free(p);
}

/* The peer of host (created when create and there is room): NULL if none. */
static xpeer *peer_get(xhost *x, const char *host, size_t len, bool create)
{
        xpeer *p = peer_find(x, host, len);
        if (p || !create || len > BUS_HOST_MAX)
                return p;
        if (x->n_peers >= XHOST_MAX_HOSTS)
                peer_evict_idle(x);
        if (x->n_peers >= XHOST_MAX_HOSTS)
                return NULL;
        p = calloc(1, sizeof *p);
        bconn *c = calloc(1, sizeof *c);
        if (!p || !c) {
                free(p);
                free(c);
                return NULL;
        }
        for (size_t i = 0; i < len; i++)
                p->host[i] = (char)tolower((unsigned char)host[i]);
        c->b = x->b;
        c->state = BCONN_READY;
        c->uid = c->gid = BROKER_EDGE_ANON_UID;
        c->name = p->who;
        c->app = p->app;
        c->host = p->host;
        c->transport = XHOST_TRANSPORT;
        c->xpeer = p;
        c->serial = UINT64_MAX;
        p->conn = c;
        peer_reset_who(p);
        p->next = x->peers;
        x->peers = p;
        x->n_peers++;
        return p;
}

/* The host went away: its calls end at once (502 to the callers here, CANCEL 410 to the
 * callees serving it). */
static void peer_gone(xpeer *p)
{
        bconn *c = p->conn;
        while (c->in) {
                bpending *q = c->in;
                bconn *caller = q->caller;
                uint64_t cid = q->caller_id;
                route_cancel(caller, cid, 410); /* frees q; its CANCEL goes to the gone host */
                char msg[BUS_HOST_MAX + 64];
                snprintf(msg, sizeof msg, "host %s left the cluster", p->host);
                route_reply(caller, cid, 502, msg, NULL, 0, 0);
        }
        while (c->out)
                route_cancel(c, c->out->caller_id, 410);
}

/* ---------------------------------------------------------------- attach */

int xhost_attach(hyb_broker *b, const char *prefix, const xhost_ops *ops, void *ud)
{
        const char *host = b->c->host ? b->c->host : "localhost";
        size_t pl = prefix ? strlen(prefix) : 0;

        if (!ops || !ops->publish || !ops->subscribe || !ops->unsubscribe)
                return -EINVAL;
        if (bus_name_equal(host, strlen(host), "localhost", 9))
                return HYB_E_CONFIG;
        if (pl && (strpbrk(prefix, "+#") || prefix[0] == '$'))
                return HYB_E_CONFIG;
        if (pl + sizeof "_hybrid/" + BUS_HOST_MAX + 64 > XHOST_TOPIC_MAX || strlen(host) > BUS_HOST_MAX)
                return HYB_E_CONFIG;
        xhost *x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        x->b = b;
        x->ops = ops;
        x->ud = ud;
        snprintf(x->p, sizeof x->p, "%s_hybrid/", pl ? prefix : "");
        if (b->c->cluster.call_secret_file) {
                char err[512];
                int r = xsign_load(b->c->cluster.call_secret_file, &x->sign, err, sizeof err);
                if (r < 0) {
                        if (r != -ENOMEM)
                                broker_log(b, HYB_LOG_ERROR, "%s", err);
                        free(x);
                        return r == -ENOMEM ? r : -EINVAL;
                }
        }
        for (size_t i = 0; host[i]; i++)
                x->own[i] = (char)tolower((unsigned char)host[i]);
        /* the link keeps its filters and subscribes them again on each connection */
        char t[XHOST_TOPIC_MAX];
        static const char *const kinds[] = { "call", "reply" };
        int r = 0;
        for (size_t i = 0; i < 2 && r == 0; i++)
                if ((r = xhost_topic(t, x->p, kinds[i], x->own, strlen(x->own))) == 0)
                        r = ops->subscribe(ud, t);
        if (r == 0 && (r = xhost_topic(t, x->p, "presence", "+", 1)) == 0)
                r = ops->subscribe(ud, t);
        if (r < 0) {
                xsign_free(x->sign);
                free(x);
                return r;
        }
        b->xhost = x;
        return 0;
}

bool xhost_signed(const hyb_broker *b)
{
        return b->xhost && b->xhost->sign;
}

const uint8_t *xhost_secret(const hyb_broker *b, size_t *len)
{
        return xsign_secret(b->xhost ? b->xhost->sign : NULL, len);
}

void xhost_online(hyb_broker *b)
{
        xhost *x = b->xhost;
        char t[XHOST_TOPIC_MAX];

        if (x && xhost_topic(t, x->p, "presence", x->own, strlen(x->own)) == 0) {
                xmsg m = { .topic = t, .payload = (const uint8_t *)"online", .len = 6, .retain = true };
                x->ops->publish(x->ud, &m);
        }
}

void xhost_detach(hyb_broker *b)
{
        xhost *x = b->xhost;
        if (!x)
                return;
        for (xpeer *p = x->peers; p; p = p->next)
                peer_gone(p);
        while (x->peers) {
                xpeer *p = x->peers;
                x->peers = p->next;
                free(p->conn);
                free(p);
        }
        b->xhost = NULL;
        xsign_free(x->sign);
        free(x);
}

/* ---------------------------------------------------------------- route.c's side */

int xhost_route(hyb_broker *b, const bus_name *n, bconn **ret, const char **msg)
{
        xhost *x = b->xhost;
        char local[WIRE_ENDPOINT_MAX + 1];

        *ret = NULL;
        if (bus_name_equal(n->host, n->host_len, "localhost", 9))
                return 404;
        if (bus_name_equal(n->host, n->host_len, x->own, strlen(x->own))) {
                /* @<this host>/app/runner is the local @localhost/app/runner */
                int k = snprintf(local, sizeof local, "@localhost/%.*s/%.*s", (int)n->app_len, n->app,
                                 (int)n->runner_len, n->runner);
                *ret = broker_lookup(b, local, (size_t)k);
                return 404;
        }
        xpeer *p = peer_get(x, n->host, n->host_len, true);
        if (!p) {
                *msg = "too many hosts in the cluster";
                return 503;
        }
        if (p->offline) {
                *msg = "the host is not in the cluster (it left)";
                return 502;
        }
        *ret = p->conn;
        return 0;
}

bool xhost_room(const hyb_broker *b)
{
        return b->n_remote_out < b->c->max_cluster_calls;
}

/* Publishes the frame h (names, body) on topic t. */
static int send_frame(xhost *x, const char *t, wire_hdr *h, const char *from, size_t from_len, const char *to,
                      size_t to_len, const char *member, size_t member_len, const void *body, size_t len,
                      xmsg *m)
{
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        uint8_t *buf;
        int r;

        if (member_len > WIRE_MEMBER_MAX)
                member_len = WIRE_MEMBER_MAX;
        wire_build(h, from, from_len, to, to_len, member, member_len, body, len, hdr, iov);
        buf = malloc(iov[0].iov_len + len);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, hdr, iov[0].iov_len);
        if (len)
                memcpy(buf + iov[0].iov_len, body, len);
        m->topic = t;
        m->payload = buf;
        m->len = iov[0].iov_len + len;
        char ts[24], mac[65];
        if (m->sign && x->sign && (r = xsign_make(x->sign, m, ts, mac)) < 0) {
                free(buf);
                return r;
        }
        r = x->ops->publish(x->ud, m);
        free(buf);
        return r;
}

/* name "@localhost/rest" as "@<own>/rest" into out[WIRE_ENDPOINT_MAX + 1]: its length, 0 if
 * it does not fit. */
static size_t global_name(const xhost *x, const char *name, size_t len, char *out)
{
        static const char lh[] = "@localhost/";
        if (len < sizeof lh - 1 || !bus_name_equal(name, sizeof lh - 1, lh, sizeof lh - 1)) {
                if (len > WIRE_ENDPOINT_MAX)
                        return 0;
                memcpy(out, name, len);
                return len;
        }
        int k = snprintf(out, WIRE_ENDPOINT_MAX + 1, "@%s/%.*s", x->own, (int)(len - (sizeof lh - 1)),
                         name + sizeof lh - 1);
        return k > 0 && k <= (int)WIRE_ENDPOINT_MAX ? (size_t)k : 0;
}

int xhost_forward_call(bconn *c, bconn *callee, uint64_t id, uint32_t t, bframe *f, const char **msg)
{
        xhost *x = c->b->xhost;
        xpeer *p = callee->xpeer;
        char topic[XHOST_TOPIC_MAX], reply[XHOST_TOPIC_MAX], from[WIRE_ENDPOINT_MAX + 1];
        uint8_t corr[XHOST_CORR_LEN];
        size_t from_len = global_name(x, c->name, c->name_len, from);

        /* A token session whose token text is not at hand (the edge's) would reach the other
         * host with no token, that is with more than its rights: refused. */
        if (c->tok && !c->tok_text) {
                *msg = "this session's token cannot be forwarded to other hosts";
                return 403;
        }
        *msg = "the cluster link cannot take the call";
        if (!from_len || xhost_topic(topic, x->p, "call", p->host, strlen(p->host)) < 0 ||
            xhost_topic(reply, x->p, "reply", x->own, strlen(x->own)) < 0)
                return 500;
        const uint8_t *body = bframe_body(f);
        if (!body)
                return 500;
        corr_put(corr, id);
        wire_hdr h = { .type = WIRE_CALL, .flags = f->h.flags & WIRE_F_BINARY, .call_id = id, .timeout_ms = t };
        /* The broker drops a request that waited longer than its deadline (a host away). */
        xmsg m = { .response_topic = reply, .corr = corr, .corr_len = sizeof corr, .token = c->tok_text,
                   .expiry_s = (t + 999) / 1000, .sign = true };
        if (send_frame(x, topic, &h, from, from_len, f->to, f->h.to_len, f->member, f->h.member_len, body,
                       f->h.body_len, &m) < 0)
                return 502;
        return 0;
}

void xhost_send_result(bconn *caller, uint64_t call_id, int status, const char *from, size_t from_len,
                       const char *member, size_t member_len, const void *body, size_t len, unsigned flags)
{
        xhost *x = caller->b->xhost;
        xpeer *p = caller->xpeer;
        char topic[XHOST_TOPIC_MAX], gfrom[WIRE_ENDPOINT_MAX + 1];
        uint8_t corr[XHOST_CORR_LEN];
        size_t gl = global_name(x, from, from_len, gfrom);

        if (!gl || xhost_topic(topic, x->p, "reply", p->host, strlen(p->host)) < 0)
                return;
        corr_put(corr, call_id);
        wire_hdr h = { .type = WIRE_RESULT, .flags = (uint8_t)(flags & WIRE_F_BINARY), .status = (uint16_t)status,
                       .call_id = call_id };
        xmsg m = { .corr = corr, .corr_len = sizeof corr, .sign = true };
        if (send_frame(x, topic, &h, gfrom, gl, p->who, strlen(p->who), member, member_len, body, len, &m) < 0)
                broker_log(caller->b, HYB_LOG_WARNING, "cluster: the result of a call from %s was not sent",
                           p->host);
}

void xhost_send_cancel(bconn *callee, uint64_t id, int status)
{
        xhost *x = callee->b->xhost;
        xpeer *p = callee->xpeer;
        char topic[XHOST_TOPIC_MAX], from[WIRE_ENDPOINT_MAX + 1];
        uint8_t corr[XHOST_CORR_LEN];
        int k = snprintf(from, sizeof from, "@%s/%s/cluster", x->own, self_app);

        if (p->offline)
                return;
        if (xhost_topic(topic, x->p, "call", p->host, strlen(p->host)) < 0)
                return;
        corr_put(corr, id);
        wire_hdr h = { .type = WIRE_CANCEL, .status = (uint16_t)status, .call_id = id };
        xmsg m = { .corr = corr, .corr_len = sizeof corr, .sign = true };
        send_frame(x, topic, &h, from, (size_t)k, NULL, 0, NULL, 0, NULL, 0, &m);
}

/* ---------------------------------------------------------------- what arrives */

static int drop(xhost *x, const xmsg *m, const char *why)
{
        broker_log(x->b, HYB_LOG_WARNING, "cluster: message on %s dropped: %s", m->topic, why);
        return HYB_E_PROTOCOL;
}

/* Runs route.c's handler on the frame pk rebuilt with `to` to, as if c had sent it. */
static void route_frame(bconn *c, const wire_packet *pk, const char *to, size_t to_len,
                        void (*fn)(bconn *, bframe *))
{
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        bframe f = { .h = pk->h };
        struct evbuffer *in = evbuffer_new();

        if (!in)
                return;
        f.h.info_len = 0;
        f.h.aux = 0;
        wire_build(&f.h, pk->from, pk->h.from_len, to, to_len, pk->member, pk->h.member_len, pk->body,
                   pk->h.body_len, hdr, iov);
        if (evbuffer_add(in, hdr, iov[0].iov_len) == 0 &&
            (!pk->h.body_len || evbuffer_add(in, pk->body, pk->h.body_len) == 0)) {
                f.in = in;
                f.len = iov[0].iov_len + pk->h.body_len;
                if (bframe_body(&f))
                        fn(c, &f);
        }
        evbuffer_free(in);
}

/* A CALL or CANCEL for this host from another. */
static int on_call(xhost *x, const xmsg *m, const wire_packet *pk)
{
        hyb_broker *b = x->b;
        bus_name from, to;
        char reply[XHOST_TOPIC_MAX], local[WIRE_ENDPOINT_MAX + 1];
        uint64_t id;

        if (pk->h.info_len || pk->h.aux ||
            bus_name_parse_endpoint(pk->from, pk->h.from_len, &from, NULL) < 0)
                return drop(x, m, "not a call of another host");
        if (bus_name_equal(from.host, from.host_len, "localhost", 9) ||
            bus_name_equal(from.host, from.host_len, x->own, strlen(x->own)))
                return drop(x, m, "a call from this host's own name");
        if (pk->h.type == WIRE_CANCEL) {
                xpeer *p = peer_find(x, from.host, from.host_len);
                const char *why;
                if (p && x->sign && xsign_check(x->sign, m, p->host, strlen(p->host), pk->h.call_id, false,
                                                &why) < 0)
                        return drop(x, m, why);
                if (p)
                        route_cancel(p->conn, pk->h.call_id, pk->h.status == 504 ? 504 : 410);
                return 0;
        }
        if (!corr_get(m, &id) || id != pk->h.call_id)
                return drop(x, m, "correlation data is not the call id");
        if (!m->response_topic ||
            xhost_topic(reply, x->p, "reply", from.host, from.host_len) < 0 || strcmp(reply, m->response_topic) != 0)
                return drop(x, m, "response topic is not the caller host's");
        xpeer *p = peer_get(x, from.host, from.host_len, true);
        if (!p)
                return drop(x, m, "too many hosts in the cluster");
        p->offline = false;
        bool again = false;
        for (unsigned i = 0; i < XHOST_SEEN_CALLS && !again; i++)
                again = id && p->seen[i] == id;
        for (bpending *q = p->conn->out; q && !again; q = q->onext)
                again = q->caller_id == id;
        if (again) {
                broker_log(b, HYB_LOG_DEBUG, "cluster: call %" PRIx64 " of %s received again: run once",
                           id, p->host);
                return 0;
        }
        bconn *c = p->conn;
        peer_set_who(p, pk->from, pk->h.from_len, from.app, from.app_len);
        const char *why;
        if (x->sign && xsign_check(x->sign, m, p->host, strlen(p->host), id, true, &why) < 0) {
                /* logged at the 1st, 2nd, 4th, 8th... refusal: a flood does not flood the log */
                uint64_t n = ++x->refused;
                if ((n & (n - 1)) == 0)
                        broker_log(b, HYB_LOG_WARNING, "cluster: call of %s refused (%" PRIu64 " so far): %s",
                                   p->host, n, why);
                route_reply(c, id, 401, why, NULL, 0, 0);
                peer_reset_who(p);
                return 0;
        }
        /* remembered once it is known to come from a host of the cluster */
        p->seen[p->seen_next++ % XHOST_SEEN_CALLS] = id;

        hyb_token_result *tok = NULL;
        hyb_error e;
        hyb_error_clear(&e);
        if (m->token && b->c->auth_tokens != BROKER_AUTH_OFF) {
                if (broker_edge_verify(b, m->token, strlen(m->token), &tok, &e) < 0) {
                        route_reply(c, id, 401, e.message, NULL, 0, 0);
                        goto out;
                }
        } else if (b->c->auth_tokens == BROKER_AUTH_REQUIRE) {
                route_reply(c, id, 401, "this host requires a token (auth.tokens: require)", NULL, 0, 0);
                goto out;
        }
        if (bus_name_parse_endpoint(pk->to, pk->h.to_len, &to, NULL) < 0 ||
            !bus_name_equal(to.host, to.host_len, x->own, strlen(x->own))) {
                route_reply(c, id, 404, "no such endpoint on this host", NULL, 0, 0);
                goto out;
        }
        if (bus_name_equal(to.app, to.app_len, self_app, sizeof self_app - 1)) {
                route_reply(c, id, 403, "the bus's own endpoints are not served to other hosts", NULL, 0, 0);
                goto out;
        }
        int k = snprintf(local, sizeof local, "@localhost/%.*s/%.*s", (int)to.app_len, to.app, (int)to.runner_len,
                         to.runner);
        c->tok = tok;
        route_frame(c, pk, local, (size_t)k, route_call);
        c->tok = NULL;
out:
        hyb_token_result_unref(tok);
        peer_reset_who(p);
        return 0;
}

/* A RESULT of a call this host made. */
static int on_reply(xhost *x, const xmsg *m, const wire_packet *pk)
{
        bus_name from;
        uint64_t id;

        if (pk->h.type != WIRE_RESULT || !corr_get(m, &id) || id != pk->h.call_id ||
            bus_name_parse_endpoint(pk->from, pk->h.from_len, &from, NULL) < 0)
                return drop(x, m, "not a result");
        xpeer *p = peer_find(x, from.host, from.host_len);
        if (!p)
                return 0; /* no call to that host: late or not ours */
        /* a reader of <P>call/<host> knows the call ids: with a secret, only the target's
         * signed answer counts */
        const char *why;
        if (x->sign && xsign_check(x->sign, m, p->host, strlen(p->host), id, false, &why) < 0)
                return drop(x, m, why);
        /* route_result checks that the pending call id went to this host */
        peer_set_who(p, pk->from, pk->h.from_len, from.app, from.app_len);
        route_frame(p->conn, pk, NULL, 0, route_result);
        peer_reset_who(p);
        return 0;
}

static int on_presence(xhost *x, const xmsg *m, const char *host)
{
        size_t hl = strlen(host);
        if (bus_name_check_host(host, hl, NULL) < 0)
                return drop(x, m, "not a host name");
        bool online = m->len == 6 && memcmp(m->payload, "online", 6) == 0;
        if (bus_name_equal(host, hl, x->own, strlen(x->own))) {
                /* This host is connected, whatever another client of the broker published
                 * (or its will from an earlier connection, delivered late): the other
                 * hosts must not keep it for gone. */
                if (!online) {
                        broker_log(x->b, HYB_LOG_WARNING,
                                   "cluster: %s does not say online: this host says it again", m->topic);
                        xhost_online(x->b);
                }
                return 0;
        }
        xpeer *p = peer_find(x, host, hl);
        if (online) {
                if (p)
                        p->offline = false;
                return 0;
        }
        /* "offline" (the host's will, or its goodbye) or an empty retained message */
        if (!p && !(p = peer_get(x, host, hl, true)))
                return 0;
        p->offline = true;
        broker_log(x->b, HYB_LOG_INFO, "cluster: host %s left", p->host);
        peer_gone(p);
        return 0;
}

/* ---------------------------------------------------------------- events */

/* The topic filter of the other hosts' events a standing subscription (ep, bubble) may
 * match, into out[XHOST_TOPIC_MAX]: true, or false when it can match none.  An endpoint
 * name has exactly two '/', so a glob of three parts matches part by part (a part with a
 * glob character is '+'); any other glob takes every event of its hosts. */
static bool event_filter(const xhost *x, const char *ep, const char *bubble, char *out)
{
        const char *part[3];
        size_t len[3], n = 0, pl = strlen(x->p);
        const char *q = ep[0] == '@' ? ep + 1 : ep;

        if (ep[0] != '@')
                return false;
        while (n < 3) {
                const char *end = strchr(q, '/');
                part[n] = q;
                len[n] = end ? (size_t)(end - q) : strlen(q);
                n++;
                if (!end)
                        break;
                q = end + 1;
                if (n == 3) {
                        n = 4; /* more than three parts */
                        break;
                }
        }
        bool host_lit = n >= 1 && bus_glob_is_literal(part[0], len[0]);
        if (host_lit && (bus_name_equal(part[0], len[0], "localhost", 9) ||
                         bus_name_equal(part[0], len[0], x->own, strlen(x->own))))
                return false;
        int k = snprintf(out, XHOST_TOPIC_MAX, "%sevent/", x->p);
        if (n != 3) {
                k += snprintf(out + k, XHOST_TOPIC_MAX - (size_t)k, "%s%.*s%s", host_lit ? "" : "#",
                              host_lit ? (int)len[0] : 0, part[0], host_lit ? "/#" : "");
        } else {
                for (size_t i = 0; i < 3 && k < (int)XHOST_TOPIC_MAX; i++) {
                        bool lit = bus_glob_is_literal(part[i], len[i]);
                        k += snprintf(out + k, XHOST_TOPIC_MAX - (size_t)k, "%.*s/", lit ? (int)len[i] : 1,
                                      lit ? part[i] : "+");
                }
                bool lit = bus_glob_is_literal(bubble, strlen(bubble));
                if (k < (int)XHOST_TOPIC_MAX)
                        k += snprintf(out + k, XHOST_TOPIC_MAX - (size_t)k, "%s", lit ? bubble : "+");
        }
        if (k >= (int)XHOST_TOPIC_MAX)
                return false;
        for (char *c = out + pl; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        return true;
}

bool xhost_ep_remote(const hyb_broker *b, const char *ep)
{
        char t[XHOST_TOPIC_MAX];
        return event_filter(b->xhost, ep, "*", t);
}

void xhost_event_filter(hyb_broker *b, const char *ep, const char *bubble, bool on)
{
        xhost *x = b->xhost;
        char t[XHOST_TOPIC_MAX];

        if (!event_filter(x, ep, bubble, t))
                return;
        int r = on ? x->ops->subscribe(x->ud, t) : x->ops->unsubscribe(x->ud, t);
        if (r < 0 && on)
                broker_log(b, HYB_LOG_WARNING, "cluster: cannot subscribe %s: %s", t, hyb_strerror(r));
}

void xhost_publish_event(bconn *gen, const bbubble *bb, const void *body, size_t len, unsigned flags)
{
        xhost *x = gen->b->xhost;
        char topic[XHOST_TOPIC_MAX], from[WIRE_ENDPOINT_MAX + 1];
        size_t fl = global_name(x, gen->name, gen->name_len, from);

        if (!fl)
                return;
        int k = snprintf(topic, sizeof topic, "%sevent/%.*s/%s", x->p, (int)fl - 1, from + 1, bb->name);
        if (k < 0 || (size_t)k >= sizeof topic)
                return;
        for (char *c = topic + strlen(x->p); *c; c++)
                *c = (char)tolower((unsigned char)*c);
        wire_hdr h = { .type = WIRE_EVENT, .flags = (uint8_t)(flags & WIRE_F_BINARY) };
        xmsg m = { .for_host = bus_acl_text(bb->hosts), .for_app = bus_acl_text(bb->apps), .event = true };
        int r = send_frame(x, topic, &h, from, fl, NULL, 0, bb->name, bb->name_len, body, len, &m);
        if (r == -ENOBUFS) {
                /* logged at the 1st, 2nd, 4th, 8th... drop: a flood does not flood the log */
                uint64_t n = ++x->ev_dropped;
                if ((n & (n - 1)) == 0)
                        broker_log(gen->b, HYB_LOG_WARNING,
                                   "cluster: %" PRIu64 " event(s) not published: the MQTT broker has "
                                   "not taken %u bytes (last: %s/%s)",
                                   x->ev_dropped, XHOST_EVENT_BACKLOG, gen->name, bb->name);
        } else if (r < 0)
                broker_log(gen->b, HYB_LOG_WARNING, "cluster: an event of %s/%s was not published", gen->name,
                           bb->name);
}

/* An EVENT of another host: to each local standing subscription it matches (once per
 * connection), as the bubble's access lists (the message's forHost/forApp) allow. */
static int on_event(xhost *x, const xmsg *m, const wire_packet *pk, const char *rest)
{
        hyb_broker *b = x->b;
        bus_name from;
        bus_acl *hosts = NULL, *apps = NULL;
        char topic[XHOST_TOPIC_MAX];

        if (pk->h.info_len || pk->h.aux || bus_name_parse_endpoint(pk->from, pk->h.from_len, &from, NULL) < 0 ||
            bus_name_check_ident(pk->member, pk->h.member_len, NULL) < 0)
                return drop(x, m, "not an event of another host");
        if (bus_name_equal(from.host, from.host_len, x->own, strlen(x->own)))
                return 0; /* our own, delivered here when it was fired */
        /* the topic names the generator and the bubble the frame names */
        int k = snprintf(topic, sizeof topic, "%.*s/%.*s", (int)pk->h.from_len - 1, pk->from + 1,
                         (int)pk->h.member_len, pk->member);
        if (k < 0 || (size_t)k >= sizeof topic || strcasecmp(topic, rest) != 0 ||
            bus_name_equal(from.host, from.host_len, "localhost", 9))
                return drop(x, m, "the topic is not the event's generator and bubble");
        if (bus_acl_compile(m->for_host, &hosts, NULL) < 0 || bus_acl_compile(m->for_app, &apps, NULL) < 0) {
                bus_acl_free(hosts);
                return drop(x, m, "bad forHost or forApp");
        }
        char ohost[BUS_HOST_MAX + 1], oapp[BUS_APP_MAX + 1];
        memcpy(ohost, from.host, from.host_len);
        ohost[from.host_len] = 0;
        memcpy(oapp, from.app, from.app_len);
        oapp[from.app_len] = 0;
        uint64_t gen = ++x->ev_gen;
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        wire_hdr h = { .type = WIRE_EVENT, .flags = pk->h.flags & WIRE_F_BINARY };
        int n = wire_build(&h, pk->from, pk->h.from_len, NULL, 0, pk->member, pk->h.member_len, pk->body,
                           pk->h.body_len, hdr, iov);
        for (bsub *s = b->patterns; s; s = s->pnext) {
                bconn *c = s->conn;
                if (c->state != BCONN_READY || c->ev_mark == gen)
                        continue;
                if (!bus_glob_match(s->endpoint, strlen(s->endpoint), pk->from, pk->h.from_len) ||
                    !bus_glob_match(s->bubble, strlen(s->bubble), pk->member, pk->h.member_len))
                        continue;
                if (!bus_acl_allows(hosts, x->own, strlen(x->own), ohost, oapp) ||
                    !bus_acl_allows(apps, c->app, strlen(c->app), ohost, oapp))
                        continue;
                c->ev_mark = gen;
                bconn_send_built(c, iov, n);
        }
        bus_acl_free(hosts);
        bus_acl_free(apps);
        return 0;
}

int xhost_receive(hyb_broker *b, const xmsg *m)
{
        xhost *x = b->xhost;
        size_t pl, used;
        wire_packet pk;
        const char *rest;

        if (!x || !m->topic)
                return 0;
        pl = strlen(x->p);
        if (strncmp(m->topic, x->p, pl) != 0)
                return 0;
        rest = m->topic + pl;
        if (strncmp(rest, "presence/", 9) == 0)
                return on_presence(x, m, rest + 9);
        if (strncmp(rest, "event/", 6) == 0) {
                int r = wire_parse(m->payload, m->len, b->c->max_body, &pk, &used);
                if (r != 1 || used != m->len || pk.h.type != WIRE_EVENT)
                        return drop(x, m, "not one whole EVENT frame");
                return on_event(x, m, &pk, rest + 6);
        }
        bool call = strncmp(rest, "call/", 5) == 0, reply = strncmp(rest, "reply/", 6) == 0;
        if (!call && !reply)
                return 0;
        if (strcmp(rest + (call ? 5 : 6), x->own) != 0)
                return 0;
        int r = wire_parse(m->payload, m->len, b->c->max_body, &pk, &used);
        if (r != 1 || used != m->len)
                return drop(x, m, "not one whole bus frame");
        if (call && (pk.h.type == WIRE_CALL || pk.h.type == WIRE_CANCEL))
                return on_call(x, m, &pk);
        if (reply)
                return on_reply(x, m, &pk);
        return drop(x, m, "unexpected packet type");
}
