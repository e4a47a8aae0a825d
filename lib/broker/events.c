/* SPDX-License-Identifier: MIT */
/*
 * Events: bubbles, exact and standing (glob) subscriptions, fan-out.
 * Each bubble keeps the array of connections subscribed to it (with how many
 * of their subscriptions match), maintained when bubbles or subscriptions
 * come and go, so a fire does no pattern matching at all:
 *
 *   bbubble "TEMP1" -> [ {connA, 2}, {connC, 1} ]
 *    broker->patterns: bsub(endpoint glob, bubble glob) -> ...
 */
#include <stdio.h>

#include <jansson.h>

#include "broker-internal.h"
#include "bus/names.h"
#include "common/util.h"

bbubble *events_find_bubble(bconn *owner, const char *name, size_t len)
{
        for (bbubble *bb = owner->bubbles; bb; bb = bb->next)
                if (bus_name_equal(bb->name, bb->name_len, name, len))
                        return bb;
        return NULL;
}

static int bubble_add(bbubble *bb, bconn *c)
{
        for (size_t i = 0; i < bb->n_subs; i++)
                if (bb->subs[i].conn == c) {
                        bb->subs[i].count++;
                        return 0;
                }
        if (grow_array((void **)&bb->subs, &bb->alloc, bb->n_subs + 1, sizeof *bb->subs) < 0)
                return -ENOMEM;
        bb->subs[bb->n_subs++] = (bsubscriber){ c, 1 };
        return 0;
}

static void bubble_del(bbubble *bb, bconn *c, bool all)
{
        for (size_t i = 0; i < bb->n_subs; i++)
                if (bb->subs[i].conn == c) {
                        if (all || --bb->subs[i].count == 0)
                                bb->subs[i] = bb->subs[--bb->n_subs];
                        return;
                }
}

static bool sub_matches(const bsub *s, const bbubble *bb)
{
        return bus_glob_match(s->endpoint, strlen(s->endpoint), bb->owner->name, bb->owner->name_len) &&
               bus_glob_match(s->bubble, strlen(s->bubble), bb->name, bb->name_len) &&
               route_acl(bb->owner, bb->hosts, bb->apps, s->conn);
}

/* Calls fn on every bubble of every endpoint (the builtin one included). */
#define FOREACH_BUBBLE(b, bb, body)                                                 \
        do {                                                                        \
                for (bbubble *bb = (b)->builtin ? (b)->builtin->bubbles : NULL; bb; \
                     bb = bb->next) {                                               \
                        body;                                                       \
                }                                                                   \
                for (bconn *_c = (b)->conns; _c; _c = _c->next) {                   \
                        if (_c->state != BCONN_READY)                               \
                                continue;                                           \
                        for (bbubble *bb = _c->bubbles; bb; bb = bb->next) {        \
                                body;                                               \
                        }                                                           \
                }                                                                   \
        } while (0)

int events_register(bconn *c, const char *name, const char *hosts, const char *apps, bool cluster,
                    hyb_error *e)
{
        hyb_broker *b = c->b;
        bbubble *bb;
        int r;

        r = bus_name_check_ident(name, strlen(name), e);
        if (r < 0)
                return r;
        if (events_find_bubble(c, name, strlen(name)))
                return err_set(e, HYB_E_CONFLICT, -1, "bubble %s already registered", name);
        if (!c->builtin && c->n_regs >= b->c->max_subscriptions)
                return err_set(e, HYB_E_TOO_MANY, -1, "too many registrations");
        if (!c->builtin) {
                unsigned subs, regs;
                size_t policy;
                quota_uid_objects(c, &subs, &regs, &policy);
                if (regs >= b->c->uid_max_registrations)
                        return err_set(e, HYB_E_TOO_MANY, -1, "quota uid_max_registrations exceeded");
        }
        bb = calloc(1, sizeof *bb);
        if (!bb || !(bb->name = strdup(name))) {
                free(bb);
                return -ENOMEM;
        }
        if ((r = bus_acl_compile(hosts, &bb->hosts, e)) < 0 || (r = bus_acl_compile(apps, &bb->apps, e)) < 0) {
                bus_acl_free(bb->hosts);
                free(bb->name);
                free(bb);
                return r;
        }
        bb->name_len = strlen(name);
        bb->cluster = cluster;
        bb->owner = c;
        bb->serial = ++b->next_serial;
        bb->next = c->bubbles;
        c->bubbles = bb;
        c->n_regs++;
        /* Standing patterns cover bubbles that appear later. */
        for (bsub *s = b->patterns; s; s = s->pnext)
                if (s->conn->state == BCONN_READY && sub_matches(s, bb))
                        for (unsigned i = 0; i < s->count; i++)
                                bubble_add(bb, s->conn);
        return 0;
}

static void send_builtin_event(bconn *to, const char *bubble, const char *json)
{
        static const char bi[] = "@localhost/org.hybridos.bus/builtin";
        wire_hdr h = { .type = WIRE_EVENT };
        bconn_send(to, &h, bi, sizeof bi - 1, NULL, 0, bubble, strlen(bubble), json, strlen(json));
}

/* Removes exact subscriptions others hold on bb and tells them (LostEventBubble). */
static void bubble_drop(bconn *owner, bbubble *bb, bool owner_gone)
{
        hyb_broker *b = owner->b;
        char json[600];

        snprintf(json, sizeof json, "{\"endpointName\":\"%s\",\"bubbleName\":\"%s\"}", owner->name, bb->name);
        for (size_t i = 0; i < bb->n_subs; i++) {
                bconn *s = bb->subs[i].conn;
                bool exact = false;
                for (bsub **pp = &s->subs; *pp;) {
                        bsub *x = *pp;
                        if (!x->pattern && bus_name_equal(x->endpoint, strlen(x->endpoint), owner->name, owner->name_len) &&
                            bus_name_equal(x->bubble, strlen(x->bubble), bb->name, strlen(bb->name))) {
                                *pp = x->next;
                                s->n_subs--;
                                free(x->endpoint);
                                free(x->bubble);
                                free(x);
                                exact = true;
                                continue;
                        }
                        pp = &x->next;
                }
                if (exact) {
                        send_builtin_event(s, "LostEventBubble", json);
                        if (owner_gone) {
                                snprintf(json, sizeof json, "{\"endpointName\":\"%s\"}", owner->name);
                                send_builtin_event(s, "LostEventGenerator", json);
                                snprintf(json, sizeof json, "{\"endpointName\":\"%s\",\"bubbleName\":\"%s\"}",
                                         owner->name, bb->name);
                        }
                }
        }
        (void)b;
        events_builtin(b, "LostEventBubble", json);
        free(bb->subs);
        free(bb->name);
        bus_acl_free(bb->hosts);
        bus_acl_free(bb->apps);
        free(bb);
}

int events_revoke(bconn *c, const char *name)
{
        for (bbubble **pp = &c->bubbles; *pp; pp = &(*pp)->next) {
                bbubble *bb = *pp;
                if (bus_name_equal(bb->name, strlen(bb->name), name, strlen(name))) {
                        *pp = bb->next;
                        c->n_regs--;
                        bubble_drop(c, bb, false);
                        return 0;
                }
        }
        return HYB_E_NOT_FOUND;
}

static bool has_glob(const char *s)
{
        return !bus_glob_is_literal(s, strlen(s));
}

int events_subscribe(bconn *c, const char *ep, const char *bubble, hyb_error *e)
{
        hyb_broker *b = c->b;
        /* A subscription to another host's endpoint stands, as a pattern does: its events
         * come from the cluster (xhost.c). */
        bool pattern = has_glob(ep) || has_glob(bubble) || (b->xhost && xhost_ep_remote(b, ep));
        bbubble *target = NULL;
        bsub *s;

        if (!*ep || !*bubble || strlen(ep) > WIRE_ENDPOINT_MAX || strlen(bubble) > BUS_IDENT_MAX)
                return err_set(e, HYB_E_NOT_ACCEPTABLE, -1, "bad endpoint or bubble pattern");
        if (!pattern) {
                bconn *gen = broker_lookup(b, ep, strlen(ep));
                if (!gen || !(target = events_find_bubble(gen, bubble, strlen(bubble))))
                        return err_set(e, HYB_E_NOT_FOUND, -1, "no such event: %s/%s", ep, bubble);
                if (!route_acl(gen, target->hosts, target->apps, c))
                        return err_set(e, HYB_E_FORBIDDEN, -1, "access list denies the subscription");
        }
        /* The same subscription twice only counts up. */
        for (s = c->subs; s; s = s->next)
                if (s->pattern == pattern && bus_name_equal(s->endpoint, strlen(s->endpoint), ep, strlen(ep)) &&
                    bus_name_equal(s->bubble, strlen(s->bubble), bubble, strlen(bubble)))
                        break;
        if (!s) {
                if (c->n_subs >= b->c->max_subscriptions)
                        return err_set(e, HYB_E_TOO_MANY, -1, "too many subscriptions");
                unsigned subs, regs;
                size_t policy;
                quota_uid_objects(c, &subs, &regs, &policy);
                if (subs >= b->c->uid_max_subscriptions)
                        return err_set(e, HYB_E_TOO_MANY, -1, "quota uid_max_subscriptions exceeded");
                s = calloc(1, sizeof *s);
                if (!s || !(s->endpoint = strdup(ep)) || !(s->bubble = strdup(bubble))) {
                        if (s)
                                free(s->endpoint);
                        free(s);
                        return -ENOMEM;
                }
                s->conn = c;
                s->pattern = pattern;
                s->next = c->subs;
                c->subs = s;
                c->n_subs++;
                if (pattern) {
                        s->pnext = b->patterns;
                        b->patterns = s;
                        if (b->xhost)
                                xhost_event_filter(b, s->endpoint, s->bubble, true);
                }
        }
        s->count++;
        if (target)
                return bubble_add(target, c);
        FOREACH_BUBBLE(b, bb, if (sub_matches(s, bb)) bubble_add(bb, c));
        return 0;
}

static void sub_free(hyb_broker *b, bsub *s)
{
        if (s->pattern && b->xhost)
                xhost_event_filter(b, s->endpoint, s->bubble, false);
        if (s->pattern)
                for (bsub **pp = &b->patterns; *pp; pp = &(*pp)->pnext)
                        if (*pp == s) {
                                *pp = s->pnext;
                                break;
                        }
        free(s->endpoint);
        free(s->bubble);
        free(s);
}

/* Takes one count of s off every bubble it covers. */
static void sub_unapply(hyb_broker *b, bsub *s, bool all)
{
        if (!s->pattern) {
                bconn *gen = broker_lookup(b, s->endpoint, strlen(s->endpoint));
                bbubble *bb = gen ? events_find_bubble(gen, s->bubble, strlen(s->bubble)) : NULL;
                if (bb)
                        for (unsigned i = 0; i < (all ? s->count : 1); i++)
                                bubble_del(bb, s->conn, false);
                return;
        }
        FOREACH_BUBBLE(b, bb, if (sub_matches(s, bb)) for (unsigned i = 0; i < (all ? s->count : 1); i++)
                                      bubble_del(bb, s->conn, false));
}

int events_unsubscribe(bconn *c, const char *ep, const char *bubble)
{
        for (bsub **pp = &c->subs; *pp; pp = &(*pp)->next) {
                bsub *s = *pp;
                if (bus_name_equal(s->endpoint, strlen(s->endpoint), ep, strlen(ep)) &&
                    bus_name_equal(s->bubble, strlen(s->bubble), bubble, strlen(bubble))) {
                        sub_unapply(c->b, s, false);
                        if (--s->count == 0) {
                                *pp = s->next;
                                c->n_subs--;
                                sub_free(c->b, s);
                        }
                        return 0;
                }
        }
        return HYB_E_NOT_FOUND;
}

void events_conn_gone(bconn *c)
{
        hyb_broker *b = c->b;

        /* Its subscriptions: off every bubble (all counts at once).  Every bubble, also
         * those of connections that are closed but not reaped yet: their reap walks
         * the subscriber array after c is freed (FOREACH_BUBBLE skips them). */
        for (bbubble *bb = b->builtin ? b->builtin->bubbles : NULL; bb; bb = bb->next)
                bubble_del(bb, c, true);
        for (bconn *o = b->conns; o; o = o->next)
                for (bbubble *bb = o->bubbles; bb; bb = bb->next)
                        bubble_del(bb, c, true);
        while (c->subs) {
                bsub *s = c->subs;
                c->subs = s->next;
                sub_free(b, s);
        }
        c->n_subs = 0;
        /* Its bubbles: subscribers learn about the loss. */
        bool had = c->bubbles != NULL;
        while (c->bubbles) {
                bbubble *bb = c->bubbles;
                c->bubbles = bb->next;
                if (c->builtin) {
                        free(bb->subs);
                        free(bb->name);
                        bus_acl_free(bb->hosts);
                        bus_acl_free(bb->apps);
                        free(bb);
                } else
                        bubble_drop(c, bb, true);
        }
        if (had && !c->builtin && c->name) {
                char json[600];
                snprintf(json, sizeof json, "{\"endpointName\":\"%s\"}", c->name);
                events_builtin(b, "LostEventGenerator", json);
        }
}

int events_fire_raw(bconn *gen, bbubble *bb, const void *body, size_t len, unsigned flags,
                    uint32_t *delivered, uint32_t *failed)
{
        hyb_broker *b = gen->b;
        wire_hdr h = { .type = WIRE_EVENT, .flags = (uint8_t)(flags & WIRE_F_BINARY) };
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        uint32_t d = 0, f = 0;
        int n = 0;

        /* Every subscriber gets the same bytes: build the header once. */
        if (bb->n_subs)
                n = wire_build(&h, gen->name, gen->name_len, NULL, 0, bb->name, bb->name_len, body, len, buf,
                               iov);
        for (size_t i = 0; i < bb->n_subs; i++) {
                if (bconn_send_built(bb->subs[i].conn, iov, n) == 0)
                        d++;
                else
                        f++;
        }
        if (b->n_monitors)
                monitor_copy(b, WIRE_EVENT, &h, gen->name, gen->name_len, NULL, 0, bb->name, bb->name_len, body,
                             len);
        if (delivered)
                *delivered = d;
        if (failed)
                *failed = f;
        return 0;
}

void events_fire(bconn *c, bframe *f)
{
        bbubble *bb = events_find_bubble(c, f->member, f->h.member_len);
        bool counts = f->h.flags & WIRE_F_COUNTS;
        uint32_t d = 0, fl = 0;
        char json[64];

        if (f->h.body_len > c->b->c->max_body) {
                if (counts)
                        route_reply(c, f->h.call_id, 413, "body larger than max_body", NULL, 0, 0);
                return;
        }
        if (!bb) {
                /* A name that is no name ("TEMP\0x") is 406, as for calls; an unknown one 404. */
                if (counts && bus_name_check_ident(f->member, f->h.member_len, NULL) < 0)
                        route_reply(c, f->h.call_id, 406, "malformed bubble name", NULL, 0, 0);
                else if (counts)
                        route_reply(c, f->h.call_id, 404, "bubble not registered", NULL, 0, 0);
                return;
        }
        if (c->tok) {
                hyb_error e;

                hyb_error_clear(&e);
                if (auth_bus_check(c, c->name, bb->name, HYB_TOKEN_ACT_PUB, &e) < 0) {
                        if (counts)
                                route_reply(c, f->h.call_id, 403, e.message, NULL, 0, 0);
                        return;
                }
        }
        const uint8_t *body = bframe_body(f);
        events_fire_raw(c, bb, body, f->h.body_len, f->h.flags, &d, &fl);
        if (bb->cluster && c->b->xhost)
                xhost_publish_event(c, bb, body, f->h.body_len, f->h.flags);
        if (counts) {
                int n = snprintf(json, sizeof json, "{\"delivered\":%u,\"failed\":%u}", d, fl);
                route_reply(c, f->h.call_id, 200, NULL, json, (size_t)n, 0);
        }
}

void events_builtin(hyb_broker *b, const char *bubble, const char *json)
{
        bbubble *bb;

        if (!b->builtin)
                return;
        bb = events_find_bubble(b->builtin, bubble, strlen(bubble));
        if (bb)
                events_fire_raw(b->builtin, bb, json, strlen(json), 0, NULL, NULL);
}

bool events_log_wanted(hyb_broker *b)
{
        bbubble *bb = b->builtin ? events_find_bubble(b->builtin, "Log", 3) : NULL;

        return bb && bb->n_subs;
}

/*
 * The broker's log lines as the builtin event Log {"level","message"[,"dropped"]}, for
 * hybrid-logd.  The broker must never wait for, nor cut off, its log reader: a line goes
 * only to subscribers whose send queue is less than half full, and the others miss it;
 * the next line they get says how many were dropped before it.  Nothing is built when
 * nobody subscribes, and lines logged while a line is being sent (a subscriber closing)
 * are not offered again.
 */
void events_log_line(hyb_broker *b, int level, const char *msg)
{
        static const char *const names[8] = { "error", "error", "error", "error",
                                              "warning", "notice", "info", "debug" };
        wire_hdr h = { .type = WIRE_EVENT };
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        size_t total = 0;
        bbubble *bb;
        json_t *j;
        char *text;
        int n;

        if (!b->builtin || b->in_log_line || !(bb = events_find_bubble(b->builtin, "Log", 3)) ||
            !bb->n_subs)
                return;
        b->in_log_line = true;
        j = json_pack("{s:s, s:s}", "level", names[level & 7], "message", msg);
        if (j && b->log_dropped)
                json_object_set_new(j, "dropped", json_integer((json_int_t)b->log_dropped));
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (text) {
                bool sent = false;

                n = wire_build(&h, b->builtin->name, b->builtin->name_len, NULL, 0, bb->name,
                               bb->name_len, text, strlen(text), buf, iov);
                for (int i = 0; i < n; i++)
                        total += iov[i].iov_len;
                for (size_t i = 0; i < bb->n_subs; i++) {
                        bconn *c = bb->subs[i].conn;

                        if (c->state == BCONN_DEAD || !c->bev ||
                            bconn_queued(c) + total > b->c->send_queue_bytes / 2 ||
                            quota_bytes_over(c, total) || bconn_send_built(c, iov, n) < 0)
                                b->log_dropped++;
                        else
                                sent = true;
                }
                if (sent)
                        b->log_dropped = 0;
                free(text);
        }
        b->in_log_line = false;
}
