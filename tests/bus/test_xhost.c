/* SPDX-License-Identifier: MIT */
/*
 * xhost_suite: bus calls between hosts (doc/cluster.md "Bus calls between hosts") between
 * two in-process brokers "a" and "b" on one event_base, joined by a small in-memory
 * stand-in for the MQTT broker (exact topics and '+'/'#' filters, messages delivered on the
 * loop's next turn).  Clients use the public API over each broker's Unix socket; expected
 * statuses come from doc/protocol.md and doc/cluster.md.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker-internal.h"
#include "broker/xhost.h"
#include "bus/wire.h"
#include "suites.h"
#include "test_bus.h"
#include "testutil.h"

/* ---------------------------------------------------------------- the stand-in MQTT broker */

#define NODES 2
#define MAX_FILTERS 32
#define LOG_MAX 64

typedef struct xnode xnode;

typedef struct sent {           /* a copy of one published message */
        char topic[XHOST_TOPIC_MAX];
        char response_topic[XHOST_TOPIC_MAX];
        uint8_t corr[16];
        size_t corr_len;
        char *token;
        char *for_host, *for_app;
        uint8_t *payload;
        size_t len;
        bool retain;
        uint32_t expiry_s;
        xnode *to;              /* delivery target (NULL in the log) */
        struct sent *next, **pprev; /* xnet.queued, until delivered */
} sent;

struct xnode {
        struct xnet *net;
        hyb_broker *broker;
        hyb_broker_config *cfg;
        char *dir;
        char sock[256];
        char filters[MAX_FILTERS][XHOST_TOPIC_MAX];
        unsigned counts[MAX_FILTERS];   /* subscriptions per filter, as the link counts them */
        unsigned n_filters;
};

typedef struct xnet {
        struct event_base *base;
        pthread_t thread;
        struct event *stop_ev;
        int stop_pipe[2];
        xnode node[NODES];
        pthread_mutex_t lock;   /* the log, read by the test thread */
        sent log[LOG_MAX];
        unsigned n_log;
        sent *queued;           /* scheduled, not yet delivered (freed by net_stop) */
} xnet;

static bool filter_match(const char *f, const char *t)
{
        for (;;) {
                if (f[0] == '#')
                        return true;
                if (f[0] == '+') {
                        while (*t && *t != '/')
                                t++;
                        f++;
                } else {
                        while (*f && *f != '/' && *f == *t)
                                f++, t++;
                        if ((*f && *f != '/') || (*t && *t != '/'))
                                return false;
                }
                if (!*f || !*t)
                        return !*f && !*t;
                f++, t++;
        }
}

static void sent_copy(sent *s, const xmsg *m)
{
        memset(s, 0, sizeof *s);
        snprintf(s->topic, sizeof s->topic, "%s", m->topic);
        if (m->response_topic)
                snprintf(s->response_topic, sizeof s->response_topic, "%s", m->response_topic);
        ck_assert_uint_le(m->corr_len, sizeof s->corr);
        if (m->corr_len)
                memcpy(s->corr, m->corr, m->corr_len);
        s->corr_len = m->corr_len;
        s->token = m->token ? strdup(m->token) : NULL;
        s->for_host = m->for_host ? strdup(m->for_host) : NULL;
        s->for_app = m->for_app ? strdup(m->for_app) : NULL;
        s->payload = malloc(m->len + 1);
        memcpy(s->payload, m->payload, m->len);
        s->len = m->len;
        s->retain = m->retain;
        s->expiry_s = m->expiry_s;
}

static void sent_free(sent *s)
{
        free(s->token);
        free(s->for_host);
        free(s->for_app);
        free(s->payload);
}

static void deliver(evutil_socket_t fd, short what, void *ud)
{
        sent *s = ud;
        *s->pprev = s->next;
        if (s->next)
                s->next->pprev = s->pprev;
        xmsg m = { .topic = s->topic, .payload = s->payload, .len = s->len,
                   .response_topic = s->response_topic[0] ? s->response_topic : NULL,
                   .corr = s->corr_len ? s->corr : NULL, .corr_len = s->corr_len, .token = s->token,
                   .for_host = s->for_host, .for_app = s->for_app, .retain = s->retain };
        xhost_receive(s->to->broker, &m);
        sent_free(s);
        free(s);
}

/* Delivers m to every node subscribed to its topic but skip (NULL: none). */
static void net_send_skip(xnet *net, const xmsg *m, const xnode *skip)
{
        for (unsigned i = 0; i < NODES; i++) {
                xnode *n = &net->node[i];
                if (n == skip)
                        continue;
                for (unsigned k = 0; k < n->n_filters; k++)
                        if (filter_match(n->filters[k], m->topic)) {
                                sent *s = malloc(sizeof *s);
                                sent_copy(s, m);
                                s->to = n;
                                s->next = net->queued;
                                if (net->queued)
                                        net->queued->pprev = &s->next;
                                s->pprev = &net->queued;
                                net->queued = s;
                                struct timeval now = { 0, 0 };
                                ck_assert_int_eq(event_base_once(net->base, -1, EV_TIMEOUT, deliver, s, &now), 0);
                                break;
                        }
        }
}

static void net_send(xnet *net, const xmsg *m)
{
        net_send_skip(net, m, NULL);
}

static int fake_publish(void *ud, const xmsg *m)
{
        xnode *n = ud;
        pthread_mutex_lock(&n->net->lock);
        if (n->net->n_log < LOG_MAX)
                sent_copy(&n->net->log[n->net->n_log++], m);
        pthread_mutex_unlock(&n->net->lock);
        net_send(n->net, m);
        return 0;
}

static int fake_subscribe(void *ud, const char *filter)
{
        xnode *n = ud;
        for (unsigned k = 0; k < n->n_filters; k++)
                if (strcmp(n->filters[k], filter) == 0) {
                        n->counts[k]++;
                        return 0;
                }
        ck_assert_uint_lt(n->n_filters, MAX_FILTERS);
        n->counts[n->n_filters] = 1;
        snprintf(n->filters[n->n_filters++], XHOST_TOPIC_MAX, "%s", filter);
        return 0;
}

static int fake_unsubscribe(void *ud, const char *filter)
{
        xnode *n = ud;
        for (unsigned k = 0; k < n->n_filters; k++)
                if (strcmp(n->filters[k], filter) == 0) {
                        if (--n->counts[k])
                                return 0;
                        memmove(n->filters[k], n->filters[k + 1], (n->n_filters - k - 1) * sizeof n->filters[0]);
                        memmove(&n->counts[k], &n->counts[k + 1], (n->n_filters - k - 1) * sizeof n->counts[0]);
                        n->n_filters--;
                        return 0;
                }
        return -ENOENT;
}

static const xhost_ops fake_ops = { fake_publish, fake_subscribe, fake_unsubscribe };

static void *net_main(void *ud)
{
        xnet *net = ud;
        event_base_dispatch(net->base);
        return NULL;
}

static void on_stop(evutil_socket_t fd, short what, void *ud)
{
        event_base_loopbreak(((xnet *)ud)->base);
}

/* Starts brokers "a" and "b" (yaml_a / yaml_b appended to their config, NULL: none). */
static void net_start(xnet *net, const char *yaml_a, const char *yaml_b)
{
        static const char *const hosts[NODES] = { "a", "b" };
        hyb_error err;

        memset(net, 0, sizeof *net);
        pthread_mutex_init(&net->lock, NULL);
        net->base = event_base_new();
        ck_assert_ptr_nonnull(net->base);
        for (unsigned i = 0; i < NODES; i++) {
                xnode *n = &net->node[i];
                char yaml[1024];
                const char *extra = i == 0 ? yaml_a : yaml_b;
                n->net = net;
                n->dir = test_tmpdir();
                snprintf(n->sock, sizeof n->sock, "%s/bus.sock", n->dir);
                snprintf(yaml, sizeof yaml, "host: %s\n%s", hosts[i], extra ? extra : "");
                ck_assert_int_eq(hyb_broker_config_new(&n->cfg), 0);
                ck_assert_int_eq(hyb_broker_config_set_socket(n->cfg, n->sock), 0);
                ck_assert_msg(hyb_broker_config_load_string(n->cfg, yaml, strlen(yaml), &err) == 0, "config: %s",
                              err.message);
                ck_assert_int_eq(hyb_broker_new(n->cfg, net->base, &n->broker, &err), 0);
                ck_assert_int_eq(hyb_broker_start(n->broker, &err), 0);
                ck_assert_int_eq(xhost_attach(n->broker, "", &fake_ops, n), 0);
                xhost_online(n->broker);
        }
        ck_assert_int_eq(pipe(net->stop_pipe), 0);
        net->stop_ev = event_new(net->base, net->stop_pipe[0], EV_READ, on_stop, net);
        event_add(net->stop_ev, NULL);
        ck_assert_int_eq(pthread_create(&net->thread, NULL, net_main, net), 0);
}

static void net_pause(xnet *net)
{
        char c;
        ck_assert_int_eq(write(net->stop_pipe[1], "x", 1), 1);
        pthread_join(net->thread, NULL);
        ck_assert_int_eq(read(net->stop_pipe[0], &c, 1), 1);
}

static void net_resume(xnet *net)
{
        event_add(net->stop_ev, NULL);
        ck_assert_int_eq(pthread_create(&net->thread, NULL, net_main, net), 0);
}

static void net_stop(xnet *net)
{
        net_pause(net);
        for (unsigned i = 0; i < NODES; i++) {
                xnode *n = &net->node[i];
                hyb_broker_free(n->broker);
                hyb_broker_config_unref(n->cfg);
                test_rmrf(n->dir);
                free(n->dir);
        }
        /* messages still scheduled are dropped */
        while (net->queued) {
                sent *q = net->queued;
                net->queued = q->next;
                sent_free(q);
                free(q);
        }
        event_free(net->stop_ev);
        event_base_free(net->base);
        close(net->stop_pipe[0]);
        close(net->stop_pipe[1]);
        for (unsigned i = 0; i < net->n_log; i++)
                sent_free(&net->log[i]);
        pthread_mutex_destroy(&net->lock);
}

static hyb_bus *connect_to(xnet *net, unsigned node, const char *app, const char *runner)
{
        hyb_bus *bus = NULL;
        hyb_error err;
        int r = hyb_bus_connect(net->node[node].sock, app, runner, &bus, &err);
        ck_assert_msg(r == 0, "connect %s/%s: %s", app, runner, err.message);
        return bus;
}

/* ---------------------------------------------------------------- services on a */

typedef struct seen {
        pthread_mutex_t lock;
        char caller[512], transport[32], principal[256];
        atomic_int calls, cancels;
        hyb_bus_request *held[8]; /* calls left unanswered (never), until the test ends */
        unsigned n_held;
} seen;

static int m_echo(hyb_bus_request *req, void *ud)
{
        seen *s = ud;
        const char *tr = NULL, *pr = NULL;
        size_t len;
        const void *body = hyb_bus_request_get_body(req, &len);

        pthread_mutex_lock(&s->lock);
        snprintf(s->caller, sizeof s->caller, "%s", hyb_bus_request_get_caller(req));
        hyb_bus_request_get_caller_principal(req, &tr, &pr);
        snprintf(s->transport, sizeof s->transport, "%s", tr ? tr : "");
        snprintf(s->principal, sizeof s->principal, "%s", pr ? pr : "");
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_add(&s->calls, 1);
        return hyb_bus_request_reply(req, 200, body, len, hyb_bus_request_is_binary(req) ? HYB_BODY_BINARY : 0);
}

static void on_cancel(hyb_bus_request *req, void *ud)
{
        seen *s = ud;
        atomic_fetch_add(&s->cancels, 1);
}

static int m_never(hyb_bus_request *req, void *ud)
{
        seen *s = ud;
        hyb_bus_request_set_cancel_handler(req, on_cancel, s);
        pthread_mutex_lock(&s->lock);
        if (s->n_held < 8)
                s->held[s->n_held++] = hyb_bus_request_ref(req);
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_add(&s->calls, 1);
        return 0;
}

typedef struct svc_a {
        hyb_bus *bus;
        tsvc run;
        seen s;
} svc_a;

static void svc_a_start(xnet *net, svc_a *a, const char *for_host)
{
        hyb_error err;
        memset(a, 0, sizeof *a);
        pthread_mutex_init(&a->s.lock, NULL);
        a->bus = connect_to(net, 0, "org.test.svc", "main");
        ck_assert_int_eq(hyb_bus_register_procedure(a->bus, "echo", for_host, NULL, m_echo, &a->s, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_register_procedure(a->bus, "never", for_host, NULL, m_never, &a->s, NULL, &err), 0);
        svc_start(&a->run, a->bus);
}

static void svc_a_stop(svc_a *a)
{
        svc_stop(&a->run);
        for (unsigned i = 0; i < a->s.n_held; i++)
                hyb_bus_request_unref(a->s.held[i]);
        hyb_bus_unref(a->bus);
        pthread_mutex_destroy(&a->s.lock);
}

/* Waits (up to 20 s) until *v >= want. */
static void wait_for(atomic_int *v, int want)
{
        for (int i = 0; i < 4000 && atomic_load(v) < want; i++)
                usleep(5000);
        ck_assert_int_ge(atomic_load(v), want);
}

/* ---------------------------------------------------------------- tests */

/* A call from b to an endpoint of a: the answer, the caller as a sees it, and the MQTT 5
 * message that carried it (doc/cluster.md: topic, response topic, correlation data, the
 * frame byte for byte). */
START_TEST(test_call_across)
{
        xnet net;
        svc_a a;
        hyb_bus_reply *rep = NULL;
        hyb_error err;
        static const char body[] = "{\"x\": [1, 2.50]}";

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, NULL);
        hyb_bus *b = connect_to(&net, 1, "org.test.cli", "main");
        int r = hyb_bus_call(b, "@a/org.test.svc/main", "echo", body, strlen(body), 0, 20000, &rep, &err);
        ck_assert_msg(r == 0, "call: %d %s", r, err.message);
        size_t len;
        const char *got = hyb_bus_reply_get_body(rep, &len);
        ck_assert_uint_eq(len, strlen(body));
        ck_assert_int_eq(memcmp(got, body, len), 0); /* as sent, not re-encoded */
        ck_assert_int_eq(hyb_bus_reply_get_status(rep), 200);
        ck_assert_str_eq(hyb_bus_reply_get_sender(rep), "@a/org.test.svc/main");
        hyb_bus_reply_unref(rep);
        ck_assert_str_eq(a.s.caller, "@b/org.test.cli/main");
        ck_assert_str_eq(a.s.transport, "cluster");

        /* the CALL as published by b */
        pthread_mutex_lock(&net.lock);
        const sent *call = NULL, *res = NULL;
        for (unsigned i = 0; i < net.n_log; i++) {
                if (!call && strcmp(net.log[i].topic, "_hybrid/call/a") == 0)
                        call = &net.log[i];
                if (!res && strcmp(net.log[i].topic, "_hybrid/reply/b") == 0)
                        res = &net.log[i];
        }
        ck_assert_ptr_nonnull(call);
        ck_assert_ptr_nonnull(res);
        ck_assert_str_eq(call->response_topic, "_hybrid/reply/b");
        ck_assert_uint_eq(call->corr_len, 8);
        ck_assert_ptr_null(call->token);
        ck_assert_uint_eq(call->expiry_s, 20); /* the deadline, for the MQTT broker */
        wire_packet pk;
        size_t used;
        ck_assert_int_eq(wire_parse(call->payload, call->len, WIRE_DEFAULT_MAX_BODY, &pk, &used), 1);
        ck_assert_uint_eq(used, call->len);
        ck_assert_int_eq(pk.h.type, WIRE_CALL);
        uint64_t id = 0;
        for (unsigned i = 0; i < 8; i++)
                id |= (uint64_t)call->corr[i] << (8 * i);
        ck_assert_uint_eq(id, pk.h.call_id);
        ck_assert_uint_eq(pk.h.timeout_ms, 20000);
        ck_assert_int_eq(pk.h.aux, 0);
        ck_assert_int_eq(pk.h.info_len, 0);
        ck_assert_int_eq(strncmp(pk.from, "@b/org.test.cli/main", pk.h.from_len), 0);
        ck_assert_int_eq(strncmp(pk.to, "@a/org.test.svc/main", pk.h.to_len), 0);
        ck_assert_int_eq(strncmp(pk.member, "echo", pk.h.member_len), 0);
        ck_assert_uint_eq(pk.h.body_len, strlen(body));
        ck_assert_int_eq(memcmp(pk.body, body, pk.h.body_len), 0);
        /* the RESULT a published: same correlation data, the callee's global name */
        ck_assert_uint_eq(res->corr_len, 8);
        ck_assert_int_eq(memcmp(res->corr, call->corr, 8), 0);
        ck_assert_int_eq(wire_parse(res->payload, res->len, WIRE_DEFAULT_MAX_BODY, &pk, &used), 1);
        ck_assert_int_eq(pk.h.type, WIRE_RESULT);
        ck_assert_uint_eq(pk.h.call_id, id);
        ck_assert_int_eq(pk.h.status, 200);
        ck_assert_int_eq(strncmp(pk.from, "@a/org.test.svc/main", pk.h.from_len), 0);
        pthread_mutex_unlock(&net.lock);

        /* unknown procedure and endpoint on a: a's 404 */
        r = hyb_bus_call(b, "@a/org.test.svc/main", "nope", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_NOT_FOUND);
        r = hyb_bus_call(b, "@a/org.test.none/main", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_NOT_FOUND);
        /* the bus's own endpoint of a is not served to other hosts */
        r = hyb_bus_call(b, "@a/org.hybridos.bus/builtin", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_FORBIDDEN);
        /* "@b/..." on b is b's own endpoint */
        r = hyb_bus_call(b, "@b/org.test.none/main", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_NOT_FOUND);

        hyb_bus_unref(b);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* The deadline travels with the call: 504 to the caller, CANCEL to the callee on a. */
START_TEST(test_deadline)
{
        xnet net;
        svc_a a;
        hyb_error err;

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, NULL);
        hyb_bus *b = connect_to(&net, 1, "org.test.cli", "main");
        int r = hyb_bus_call(b, "@a/org.test.svc/main", "never", "{}", 2, 0, 300, NULL, &err);
        ck_assert_int_eq(r, HYB_E_CALLEE_TIMEOUT);
        ck_assert_int_eq(atomic_load(&a.s.calls), 1);
        wait_for(&a.s.cancels, 1);
        hyb_bus_unref(b);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

typedef struct areply {
        atomic_int n;
        int status;
        char msg[256];
} areply;

static void on_reply(hyb_bus *bus, const hyb_bus_reply *rep, void *ud)
{
        areply *a = ud;
        a->status = hyb_bus_reply_get_status(rep);
        snprintf(a->msg, sizeof a->msg, "%s", hyb_bus_reply_get_message(rep));
        atomic_fetch_add(&a->n, 1);
}

/* a leaves the cluster (its will: presence "offline") while b's call waits: 502 at once,
 * and the next call to a is 502 without waiting for a deadline. */
START_TEST(test_host_gone)
{
        xnet net;
        svc_a a;
        areply ar = { 0 };
        hyb_error err;

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, NULL);
        hyb_bus *b = connect_to(&net, 1, "org.test.cli", "main");
        ck_assert_int_eq(hyb_bus_call_async(b, "@a/org.test.svc/main", "never", "{}", 2, 0, 3600000, on_reply, &ar,
                                            NULL),
                         0);
        wait_for(&a.s.calls, 1);
        /* a's will, as the MQTT broker publishes it when a's connection breaks */
        net_pause(&net);
        xmsg will = { .topic = "_hybrid/presence/a", .payload = (const uint8_t *)"offline", .len = 7, .retain = true };
        net_send_skip(&net, &will, &net.node[0]); /* a's connection is gone: a does not get it */
        net_resume(&net);
        pump_until(b, &ar.n, 1, 20000);
        ck_assert_int_eq(atomic_load(&ar.n), 1);
        ck_assert_int_eq(ar.status, 502);
        ck_assert_ptr_nonnull(strstr(ar.msg, "left the cluster"));
        int r = hyb_bus_call(b, "@a/org.test.svc/main", "echo", "{}", 2, 0, 3600000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_BAD_CALLEE);
        /* back online: calls go through again */
        net_pause(&net);
        xmsg back = { .topic = "_hybrid/presence/a", .payload = (const uint8_t *)"online", .len = 6, .retain = true };
        net_send(&net, &back);
        net_resume(&net);
        for (int i = 0; i < 2000 && r != 0; i++) {
                r = hyb_bus_call(b, "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err);
                if (r)
                        usleep(5000);
        }
        ck_assert_int_eq(r, 0);
        hyb_bus_unref(b);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* With auth.tokens off the call carries @b/app/runner and a applies forHost/forApp to it. */
START_TEST(test_for_host)
{
        xnet net;
        svc_a a;
        hyb_error err;
        hyb_slot *sl = NULL;

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, "!b, *");
        hyb_bus *b = connect_to(&net, 1, "org.test.cli", "main");
        int r = hyb_bus_call(b, "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_FORBIDDEN);
        ck_assert_int_eq(atomic_load(&a.s.calls), 0);
        /* $self is a's own host: b is not it */
        hyb_bus *a2 = connect_to(&net, 0, "org.test.svc", "second");
        ck_assert_int_eq(hyb_bus_register_procedure(a2, "echo", "$self", NULL, m_echo, &a.s, &sl, &err), 0);
        tsvc run;
        svc_start(&run, a2);
        r = hyb_bus_call(b, "@a/org.test.svc/second", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_FORBIDDEN);
        /* forApp: b's app is what a sees */
        hyb_bus *a3 = connect_to(&net, 0, "org.test.svc", "third");
        ck_assert_int_eq(hyb_bus_register_procedure(a3, "echo", "*", "org.test.cli", m_echo, &a.s, NULL, &err), 0);
        tsvc run3;
        svc_start(&run3, a3);
        r = hyb_bus_call(b, "@a/org.test.svc/third", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_msg(r == 0, "forApp org.test.cli: %d %s", r, err.message);
        hyb_bus *b2 = connect_to(&net, 1, "org.test.other", "main");
        r = hyb_bus_call(b2, "@a/org.test.svc/third", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_FORBIDDEN);
        hyb_bus_unref(b2);
        svc_stop(&run3);
        hyb_bus_unref(a3);
        svc_stop(&run);
        hyb_slot_unref(sl);
        hyb_bus_unref(a2);
        hyb_bus_unref(b);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* Bounds: limits.max_cluster_calls on the calling host (all its peers together), and on the
 * target limits.max_pending_calls per calling host; each one more is 429. */
START_TEST(test_bounds)
{
        xnet net;
        svc_a a;
        areply ar[4];
        hyb_error err;

        net_start(&net, "limits:\n  max_pending_calls: 3\n", "limits:\n  max_cluster_calls: 2\n");
        svc_a_start(&net, &a, NULL);
        hyb_bus *b1 = connect_to(&net, 1, "org.test.cli", "one");
        hyb_bus *b2 = connect_to(&net, 1, "org.test.cli", "two");
        memset(ar, 0, sizeof ar);
        ck_assert_int_eq(hyb_bus_call_async(b1, "@a/org.test.svc/main", "never", "{}", 2, 0, 3600000, on_reply,
                                            &ar[0], NULL), 0);
        ck_assert_int_eq(hyb_bus_call_async(b2, "@a/org.test.svc/main", "never", "{}", 2, 0, 3600000, on_reply,
                                            &ar[1], NULL), 0);
        wait_for(&a.s.calls, 2);
        /* b has 2 calls out to other hosts: a third, from either peer, is 429 */
        int r = hyb_bus_call(b1, "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_TOO_MANY);
        ck_assert_ptr_nonnull(strstr(err.message, "max_cluster_calls"));
        ck_assert_int_eq(atomic_load(&a.s.calls), 2);
        /* a local call on b is not bound by it */
        r = hyb_bus_call(b1, "@localhost/org.hybridos.bus/builtin", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, 0);
        hyb_bus_unref(b2);
        hyb_bus_unref(b1);
        svc_a_stop(&a);
        net_stop(&net);

        /* on a: 3 pending calls from host b at most (max_pending_calls of its pseudo peer) */
        net_start(&net, "limits:\n  max_pending_calls: 3\n", NULL);
        svc_a_start(&net, &a, NULL);
        hyb_bus *bs[4];
        memset(ar, 0, sizeof ar);
        for (int i = 0; i < 4; i++) {
                char runner[8];
                snprintf(runner, sizeof runner, "r%d", i);
                bs[i] = connect_to(&net, 1, "org.test.cli", runner);
        }
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(hyb_bus_call_async(bs[i], "@a/org.test.svc/main", "never", "{}", 2, 0, 3600000,
                                                    on_reply, &ar[i], NULL), 0);
        wait_for(&a.s.calls, 3);
        r = hyb_bus_call(bs[3], "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_TOO_MANY);
        ck_assert_int_eq(atomic_load(&a.s.calls), 3);
        for (int i = 0; i < 4; i++)
                hyb_bus_unref(bs[i]);
        svc_a_stop(&a);
        net_stop(&net);

        /* on a: max_cluster_calls bounds the calls from other hosts in all */
        net_start(&net, "limits:\n  max_cluster_calls: 2\n", NULL);
        svc_a_start(&net, &a, NULL);
        memset(ar, 0, sizeof ar);
        for (int i = 0; i < 3; i++) {
                char runner[8];
                snprintf(runner, sizeof runner, "r%d", i);
                bs[i] = connect_to(&net, 1, "org.test.cli", runner);
        }
        for (int i = 0; i < 2; i++)
                ck_assert_int_eq(hyb_bus_call_async(bs[i], "@a/org.test.svc/main", "never", "{}", 2, 0, 3600000,
                                                    on_reply, &ar[i], NULL), 0);
        wait_for(&a.s.calls, 2);
        r = hyb_bus_call(bs[2], "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_int_eq(r, HYB_E_TOO_MANY);
        ck_assert_ptr_nonnull(strstr(err.message, "max_cluster_calls"));
        ck_assert_int_eq(atomic_load(&a.s.calls), 2);
        for (int i = 0; i < 3; i++)
                hyb_bus_unref(bs[i]);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* The hosts a daemon tracks are bounded (XHOST_MAX_HOSTS); what other hosts send cannot
 * fill the table for good: hosts without calls make room, so b still reaches a after news
 * of many more hosts, and a host with a call in flight keeps its place. */
START_TEST(test_hosts_bound)
{
        xnet net;
        svc_a a;
        areply ar = { 0 };
        hyb_error err;

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, NULL);
        hyb_bus *b = connect_to(&net, 1, "org.test.cli", "main");
        ck_assert_int_eq(hyb_bus_call_async(b, "@a/org.test.svc/main", "never", "{}", 2, 0, 3600000, on_reply, &ar,
                                            NULL), 0);
        wait_for(&a.s.calls, 1);
        net_pause(&net);
        for (unsigned i = 0; i < XHOST_MAX_HOSTS + 50; i++) {
                char topic[64];
                snprintf(topic, sizeof topic, "_hybrid/presence/h%u", i);
                xmsg m = { .topic = topic, .payload = (const uint8_t *)"offline", .len = 7, .retain = true };
                ck_assert_int_eq(xhost_receive(net.node[1].broker, &m), 0);
        }
        net_resume(&net);
        /* a is still known (its call in flight kept it): its will still ends the call */
        int r = hyb_bus_call(b, "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err);
        ck_assert_msg(r == 0, "call after many hosts: %d %s", r, err.message);
        net_pause(&net);
        xmsg will = { .topic = "_hybrid/presence/a", .payload = (const uint8_t *)"offline", .len = 7, .retain = true };
        net_send_skip(&net, &will, &net.node[0]); /* a's connection is gone: a does not get it */
        net_resume(&net);
        pump_until(b, &ar.n, 1, 20000);
        ck_assert_int_eq(ar.status, 502);
        /* a host seen last (h<max+49>) is known gone: 502 at once, not a deadline */
        char ep[64];
        snprintf(ep, sizeof ep, "@h%u/org.test.svc/main", XHOST_MAX_HOSTS + 49);
        r = hyb_bus_call(b, ep, "echo", "{}", 2, 0, 5000, NULL, &err); /* no room: 503 */
        ck_assert_int_eq(r, HYB_E_BAD_CALLEE);
        hyb_bus_unref(b);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* A caller that cancels its call, then one that goes away: each time the callee on a gets
 * CANCEL. */
START_TEST(test_caller_gone)
{
        xnet net;
        svc_a a;
        areply ar = { 0 };
        hyb_slot *slot = NULL;

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, NULL);
        hyb_bus *b = connect_to(&net, 1, "org.test.cli", "main");
        ck_assert_int_eq(hyb_bus_call_async(b, "@a/org.test.svc/main", "never", "{}", 2, 0, 3600000, on_reply, &ar,
                                            &slot), 0);
        wait_for(&a.s.calls, 1);
        hyb_slot_unref(slot); /* the cancel goes out at once */
        wait_for(&a.s.cancels, 1);
        ck_assert_int_eq(atomic_load(&ar.n), 0);
        atomic_store(&a.s.calls, 0);
        atomic_store(&a.s.cancels, 0);
        ck_assert_int_eq(hyb_bus_call_async(b, "@a/org.test.svc/main", "never", "{}", 2, 0, 3600000, on_reply, &ar,
                                            NULL), 0);
        wait_for(&a.s.calls, 1);
        hyb_bus_unref(b);
        wait_for(&a.s.cancels, 1);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* The edge's end of an edge session: the status of the RESULT read on it (0: none yet). */
static void edge_call_read(struct bufferevent *bev, void *ud)
{
        atomic_int *st = ud;
        struct evbuffer *in = bufferevent_get_input(bev);
        wire_hdr h;

        if (evbuffer_get_length(in) < WIRE_HDR_SIZE ||
            wire_hdr_decode(evbuffer_pullup(in, WIRE_HDR_SIZE), &h) < 0 ||
            evbuffer_get_length(in) < wire_frame_len(&h))
                return;
        atomic_store(st, h.type == WIRE_RESULT ? (int)h.status : -1);
}

/* A CALL on an edge session of b (lib/edge's peers: an in-memory pair served by the
 * network's loop, no handshake) to @a/...: its RESULT status. */
static int edge_call(hyb_broker *broker, xnet *net, hyb_token_result *tok)
{
        hyb_error e;
        struct bufferevent *bev = NULL;
        static atomic_int st;
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        static const char to[] = "@a/org.test.svc/main";

        atomic_store(&st, 0);
        net_pause(net);
        ck_assert_int_eq(broker_edge_session(broker, tok, "http", &bev, &e), 0);
        wire_hdr h = { .type = WIRE_CALL, .call_id = 5, .timeout_ms = 20000 };
        wire_build(&h, NULL, 0, to, sizeof to - 1, "echo", 4, "{}", 2, hdr, iov);
        bufferevent_setcb(bev, edge_call_read, NULL, NULL, &st);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        ck_assert_int_eq(bufferevent_write(bev, hdr, iov[0].iov_len), 0);
        ck_assert_int_eq(bufferevent_write(bev, "{}", 2), 0);
        net_resume(net);
        /* the answer comes on the network's thread */
        for (int i = 0; i < 20000 && atomic_load(&st) == 0; i++)
                usleep(1000);
        net_pause(net);
        broker_pair_close(bev);
        net_resume(net);
        ck_assert_int_gt(atomic_load(&st), 0);
        return atomic_load(&st);
}

/* An edge session with a token has no token text to forward: its call to another host is
 * refused 403 (it would reach a without its token, with more than its rights); the
 * anonymous edge principal's call goes through as any token-less call. */
START_TEST(test_edge_token_not_forwarded)
{
        xnet net;
        svc_a a;
        hyb_key *iss = NULL, *holder = NULL;
        hyb_token_trust *trust = NULL;
        hyb_token_result *res = NULL;
        char *tok = NULL;
        hyb_error e;

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, NULL);
        ck_assert_int_eq(hyb_key_generate(&iss), 0);
        ck_assert_int_eq(hyb_key_generate(&holder), 0);
        const char *aud[] = { "a", "b" };
        hyb_token_cap cap = { "bus://localhost/#", HYB_TOKEN_ACT_CALL };
        hyb_token_issue_opts o;
        hyb_token_issue_opts_init(&o);
        o.iss = "acme";
        o.sub = "alice";
        o.aud = aud;
        o.n_aud = 2;
        o.holder = holder;
        o.caps = &cap;
        o.n_caps = 1;
        ck_assert_int_eq(hyb_token_issue(iss, &o, &tok, &e), 0);
        ck_assert_int_eq(hyb_token_trust_new(&trust), 0);
        ck_assert_int_eq(hyb_token_trust_add(trust, "acme", iss), 0);
        hyb_token_verify_opts vo;
        hyb_token_verify_opts_init(&vo);
        vo.audience = "b";
        ck_assert_msg(hyb_token_verify(tok, trust, &vo, &res, &e) == 0, "verify: %s", e.message);

        ck_assert_int_eq(edge_call(net.node[1].broker, &net, res), 403);
        ck_assert_int_eq(atomic_load(&a.s.calls), 0);
        ck_assert_int_eq(edge_call(net.node[1].broker, &net, NULL), 200);
        ck_assert_int_eq(atomic_load(&a.s.calls), 1);
        ck_assert_str_eq(a.s.caller, "@b/org.hybridos.edge/http2");

        hyb_token_result_unref(res);
        hyb_token_trust_unref(trust);
        hyb_free(tok);
        hyb_key_unref(iss);
        hyb_key_unref(holder);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* What is not a frame of the protocol is dropped, and the host keeps serving. */
START_TEST(test_bad_messages)
{
        xnet net;
        svc_a a;
        hyb_error err;

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, NULL);
        net_pause(&net);
        static const uint8_t junk[] = "not a frame";
        xmsg m = { .topic = "_hybrid/call/a", .payload = junk, .len = sizeof junk };
        ck_assert_int_eq(xhost_receive(net.node[0].broker, &m), HYB_E_PROTOCOL);
        /* a CALL whose response topic is another host's than its caller's */
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        wire_hdr h = { .type = WIRE_CALL, .call_id = 7, .timeout_ms = 1000 };
        wire_build(&h, "@b/x/y", 6, "@a/org.test.svc/main", 20, "echo", 4, "{}", 2, hdr, iov);
        uint8_t frame[sizeof hdr + 2];
        memcpy(frame, hdr, iov[0].iov_len);
        memcpy(frame + iov[0].iov_len, "{}", 2);
        uint8_t corr[8] = { 7 };
        xmsg c = { .topic = "_hybrid/call/a", .payload = frame, .len = iov[0].iov_len + 2,
                   .response_topic = "_hybrid/reply/c", .corr = corr, .corr_len = 8 };
        ck_assert_int_eq(xhost_receive(net.node[0].broker, &c), HYB_E_PROTOCOL);
        c.response_topic = "_hybrid/reply/b";
        c.corr_len = 4;
        ck_assert_int_eq(xhost_receive(net.node[0].broker, &c), HYB_E_PROTOCOL);
        /* a frame with trailing bytes */
        c.corr_len = 8;
        c.len++;
        ck_assert_int_eq(xhost_receive(net.node[0].broker, &c), HYB_E_PROTOCOL);
        net_resume(&net);
        ck_assert_int_eq(atomic_load(&a.s.calls), 0);
        hyb_bus *b = connect_to(&net, 1, "org.test.cli", "main");
        ck_assert_int_eq(hyb_bus_call(b, "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err), 0);
        hyb_bus_unref(b);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* Any client of the broker may publish on _hybrid/reply/b: a RESULT it forges for b's call
 * to a must not be taken, so the call ids b sends are not guessable (not 1, 2, 3...). */
START_TEST(test_forged_reply)
{
        xnet net;
        svc_a a;
        areply ar = { 0 };

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, NULL);
        hyb_bus *b = connect_to(&net, 1, "org.test.cli", "main");
        ck_assert_int_eq(hyb_bus_call_async(b, "@a/org.test.svc/main", "never", "{}", 2, 0, 3600000, on_reply, &ar,
                                            NULL), 0);
        wait_for(&a.s.calls, 1);
        /* RESULTs "from a" for the first 4096 call ids, each with its correlation data */
        net_pause(&net);
        for (uint64_t id = 0; id < 4096; id++) {
                uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX], corr[8];
                struct iovec iov[2];
                wire_hdr h = { .type = WIRE_RESULT, .status = 200, .call_id = id };
                wire_build(&h, "@a/org.test.svc/main", 20, "@b/org.test.cli/main", 20, NULL, 0, "{\"forged\":1}", 12,
                           hdr, iov);
                uint8_t frame[sizeof hdr + 12];
                memcpy(frame, hdr, iov[0].iov_len);
                memcpy(frame + iov[0].iov_len, "{\"forged\":1}", 12);
                for (unsigned i = 0; i < 8; i++)
                        corr[i] = (uint8_t)(id >> (8 * i));
                xmsg m = { .topic = "_hybrid/reply/b", .payload = frame, .len = iov[0].iov_len + 12, .corr = corr,
                           .corr_len = 8 };
                xhost_receive(net.node[1].broker, &m);
        }
        net_resume(&net);
        /* b's call still waits: a's own answer (its will here) ends it, not a forgery */
        hyb_error err;
        ck_assert_int_eq(hyb_bus_call(b, "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err), 0);
        ck_assert_int_eq(atomic_load(&ar.n), 0);
        net_pause(&net);
        xmsg will = { .topic = "_hybrid/presence/a", .payload = (const uint8_t *)"offline", .len = 7, .retain = true };
        net_send_skip(&net, &will, &net.node[0]);
        net_resume(&net);
        pump_until(b, &ar.n, 1, 20000);
        ck_assert_int_eq(ar.status, 502);
        hyb_bus_unref(b);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* A QoS 1 message comes again (DUP) when the PUBACK was lost with the connection: a CALL
 * received twice runs once. */
START_TEST(test_call_redelivered)
{
        xnet net;
        svc_a a;
        hyb_error err;

        net_start(&net, NULL, NULL);
        svc_a_start(&net, &a, NULL);
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        uint64_t id = UINT64_C(0x8000000012345678);
        wire_hdr h = { .type = WIRE_CALL, .call_id = id, .timeout_ms = 20000 };
        wire_build(&h, "@c/x/y", 6, "@a/org.test.svc/main", 20, "echo", 4, "{}", 2, hdr, iov);
        uint8_t frame[sizeof hdr + 2], corr[8];
        memcpy(frame, hdr, iov[0].iov_len);
        memcpy(frame + iov[0].iov_len, "{}", 2);
        for (unsigned i = 0; i < 8; i++)
                corr[i] = (uint8_t)(id >> (8 * i));
        xmsg c = { .topic = "_hybrid/call/a", .payload = frame, .len = iov[0].iov_len + 2,
                   .response_topic = "_hybrid/reply/c", .corr = corr, .corr_len = 8 };
        net_pause(&net);
        ck_assert_int_eq(xhost_receive(net.node[0].broker, &c), 0);
        ck_assert_int_eq(xhost_receive(net.node[0].broker, &c), 0); /* in flight */
        net_resume(&net);
        wait_for(&a.s.calls, 1);
        /* b's call after it: once it is answered, a has run c's call once */
        hyb_bus *b = connect_to(&net, 1, "org.test.cli", "main");
        ck_assert_int_eq(hyb_bus_call(b, "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err), 0);
        net_pause(&net);
        ck_assert_int_eq(xhost_receive(net.node[0].broker, &c), 0); /* answered already */
        net_resume(&net);
        ck_assert_int_eq(hyb_bus_call(b, "@a/org.test.svc/main", "echo", "{}", 2, 0, 20000, NULL, &err), 0);
        ck_assert_int_eq(atomic_load(&a.s.calls), 3);
        hyb_bus_unref(b);
        svc_a_stop(&a);
        net_stop(&net);
}
END_TEST

/* The topic layout of doc/cluster.md, the prefix and the host in lower case. */
START_TEST(test_topics)
{
        char t[XHOST_TOPIC_MAX];
        ck_assert_int_eq(xhost_topic(t, "site1/_hybrid/", "call", "Hub-A.example", 13), 0);
        ck_assert_str_eq(t, "site1/_hybrid/call/hub-a.example");
        char big[XHOST_TOPIC_MAX + 8];
        memset(big, 'h', sizeof big - 1);
        big[sizeof big - 1] = 0;
        ck_assert_int_eq(xhost_topic(t, "", "call", big, strlen(big)), -ENAMETOOLONG);
}
END_TEST

/* ---------------------------------------------------------------- events */

typedef struct evs {
        pthread_mutex_t lock;
        atomic_int n;
        char src[8][512], bubble[8][64], body[8][64];
} evs;

static void on_event(hyb_bus *bus, const hyb_bus_event *ev, void *ud)
{
        evs *e = ud;
        size_t len;
        const char *body = hyb_bus_event_get_body(ev, &len);
        pthread_mutex_lock(&e->lock);
        int i = atomic_load(&e->n);
        if (i < 8) {
                snprintf(e->src[i], sizeof e->src[i], "%s", hyb_bus_event_get_source(ev));
                snprintf(e->bubble[i], sizeof e->bubble[i], "%s", hyb_bus_event_get_bubble(ev));
                snprintf(e->body[i], sizeof e->body[i], "%.*s", (int)len, body);
        }
        pthread_mutex_unlock(&e->lock);
        atomic_fetch_add(&e->n, 1);
}

static bool has_filter(xnet *net, unsigned node, const char *f)
{
        bool found = false;
        net_pause(net);
        for (unsigned k = 0; k < net->node[node].n_filters; k++)
                found |= strcmp(net->node[node].filters[k], f) == 0;
        net_resume(net);
        return found;
}

/* A bubble registered "cluster" on a: its fires reach b's standing subscriptions that match
 * @a/..., once per connection, as forHost/forApp allow; a bubble without it stays on a. */
START_TEST(test_events)
{
        xnet net;
        hyb_error err;
        evs e1 = { .lock = PTHREAD_MUTEX_INITIALIZER }, e2 = { .lock = PTHREAD_MUTEX_INITIALIZER };
        hyb_slot *s1 = NULL, *s2 = NULL, *s3 = NULL;

        net_start(&net, NULL, NULL);
        hyb_bus *sub = connect_to(&net, 1, "org.test.sub", "main");
        hyb_bus *sub2 = connect_to(&net, 1, "org.test.other", "main");
        /* a glob and an exact name of another host's endpoint (standing, not 404) */
        ck_assert_int_eq(hyb_bus_subscribe(sub, "@a/org.test.*", "Temp", on_event, &e1, &s1, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(sub, "@a/org.test.gen/main", "Temp", on_event, &e1, &s2, &err), 0);
        ck_assert_int_eq(hyb_bus_subscribe(sub2, "@*/org.test.gen/main", "*", on_event, &e2, &s3, &err), 0);
        ck_assert(has_filter(&net, 1, "_hybrid/event/a/#")); /* two parts: "*" spans "/" */
        ck_assert(has_filter(&net, 1, "_hybrid/event/a/org.test.gen/main/temp"));
        ck_assert(has_filter(&net, 1, "_hybrid/event/+/org.test.gen/main/+"));

        hyb_bus *gen = connect_to(&net, 0, "org.test.gen", "main");
        /* local only; then denied to b's apps but org.test.other; then for all */
        ck_assert_int_eq(hyb_bus_register_event(gen, "Local", NULL, NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_register_event_flags(gen, "Temp", NULL, NULL, HYB_EVENT_CLUSTER, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_register_event_flags(gen, "Hum", NULL, "org.test.other", HYB_EVENT_CLUSTER, NULL,
                                                      &err), 0);
        ck_assert_int_eq(hyb_bus_register_event_flags(gen, "Bad", NULL, NULL, 0x2, NULL, &err), -EINVAL);
        uint32_t d = 9, f = 9;
        ck_assert_int_eq(hyb_bus_fire(gen, "Local", "1", 1, 0, &d, &f), 0);
        ck_assert_int_eq(hyb_bus_fire(gen, "Hum", "2", 1, 0, &d, &f), 0);
        ck_assert_int_eq(hyb_bus_fire(gen, "Temp", "21.5", 4, 0, &d, &f), 0);
        ck_assert_uint_eq(d, 0); /* a's own subscribers: none */
        pump_until(sub2, &e2.n, 2, 20000);
        pump_until(sub, &e1.n, 1, 20000);
        ck_assert_int_eq(atomic_load(&e2.n), 2);
        ck_assert_str_eq(e2.src[0], "@a/org.test.gen/main");
        ck_assert_str_eq(e2.bubble[0], "Hum");
        ck_assert_str_eq(e2.body[0], "2");
        ck_assert_str_eq(e2.bubble[1], "Temp");
        /* sub: Temp only (Hum is for org.test.other; Local never left a) */
        ck_assert_str_eq(e1.src[0], "@a/org.test.gen/main");
        ck_assert_str_eq(e1.bubble[0], "Temp");
        ck_assert_str_eq(e1.body[0], "21.5");
        /* the last subscription of a filter gone: b unsubscribes it */
        hyb_slot_unref(s3);
        for (int i = 0; i < 2000 && has_filter(&net, 1, "_hybrid/event/+/org.test.gen/main/+"); i++)
                usleep(5000);
        ck_assert(!has_filter(&net, 1, "_hybrid/event/+/org.test.gen/main/+"));
        ck_assert(has_filter(&net, 1, "_hybrid/event/a/#")); /* two parts: "*" spans "/" */
        hyb_bus_unref(gen);
        hyb_slot_unref(s1);
        hyb_slot_unref(s2);
        hyb_bus_unref(sub2);
        hyb_bus_unref(sub);
        net_stop(&net);
}
END_TEST

/* Outside a cluster a "cluster" bubble is refused 501. */
START_TEST(test_events_no_cluster)
{
        tbroker t;
        hyb_error err;

        tb_start(&t, NULL, false);
        hyb_bus *gen = tb_connect(&t, "org.test.gen", "main");
        ck_assert_int_eq(hyb_bus_register_event_flags(gen, "Temp", NULL, NULL, HYB_EVENT_CLUSTER, NULL, &err),
                         HYB_E_NOT_IMPLEMENTED);
        ck_assert_int_eq(hyb_bus_register_event_flags(gen, "Temp", NULL, NULL, 0, NULL, &err), 0);
        hyb_bus_unref(gen);
        tb_stop(&t);
}
END_TEST

TCase *xsign_tcase(void); /* test_xsign.c */

Suite *xhost_suite(void)
{
        Suite *s = suite_create("xhost");
        TCase *tc = tcase_create("calls");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_topics);
        tcase_add_test(tc, test_call_across);
        tcase_add_test(tc, test_deadline);
        tcase_add_test(tc, test_host_gone);
        tcase_add_test(tc, test_forged_reply);
        tcase_add_test(tc, test_call_redelivered);
        tcase_add_test(tc, test_for_host);
        tcase_add_test(tc, test_bounds);
        tcase_add_test(tc, test_hosts_bound);
        tcase_add_test(tc, test_caller_gone);
        tcase_add_test(tc, test_bad_messages);
        tcase_add_test(tc, test_edge_token_not_forwarded);
        tcase_add_test(tc, test_events);
        tcase_add_test(tc, test_events_no_cluster);
        suite_add_tcase(s, tc);
        suite_add_tcase(s, xsign_tcase());
        return s;
}
