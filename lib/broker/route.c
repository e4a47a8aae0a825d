/* SPDX-License-Identifier: MIT */
/*
 * Call routing: the pending table (broker call id -> caller, caller's id,
 * callee), deadlines on libevent timers, results, cancels, and 502 to callers
 * when a callee goes away.  Bodies move from one evbuffer to the other as is.
 *
 *   pend_hash[id & (PEND_BUCKETS-1)] -> bpending -> bpending ...
 *   caller->out: bpending <-> ...   callee->in: bpending <-> ...
 *   pend_free: recycled entries, each with its timer event already allocated
 */
#include <errno.h>
#include <stdio.h>
#include <sys/random.h>

#include "broker-internal.h"
#include "bus/names.h"
#include "common/util.h"
#include "xhost.h"


static const char builtin_name[] = "@localhost/org.hybridos.bus/builtin";

bool route_acl(const bconn *owner, const bus_acl *hosts, const bus_acl *apps, const bconn *peer)
{
        static const char self[] = "localhost";
        const char *host = peer->host ? peer->host : self;
        if (peer->builtin)
                return true;
        return bus_acl_allows(hosts, host, strlen(host), self, owner->app) &&
               bus_acl_allows(apps, peer->app, strlen(peer->app), host, owner->app);
}

void route_reply(bconn *c, uint64_t call_id, int status, const char *msg, const void *body, size_t len,
                 unsigned flags)
{
        wire_hdr h = { .type = WIRE_RESULT, .flags = (uint8_t)flags, .status = (uint16_t)status,
                       .call_id = call_id };
        size_t ml = msg ? strlen(msg) : 0;
        if (c->xpeer) {
                xhost_send_result(c, call_id, status, builtin_name, sizeof builtin_name - 1, msg, ml, body, len,
                                  flags);
                return;
        }
        if (bconn_send(c, &h, builtin_name, sizeof builtin_name - 1, c->name, c->name_len, msg, ml, body,
                       len) == 0 &&
            c->b->n_monitors)
                monitor_copy(c->b, WIRE_RESULT, &h, builtin_name, sizeof builtin_name - 1, c->name,
                             c->name_len, msg, ml, body, len);
}

/* ---------------------------------------------------------------- pending table */

static void pending_timeout(evutil_socket_t fd, short what, void *ud);

static bpending *pending_new(hyb_broker *b)
{
        bpending *p = b->pend_free;

        if (p) {
                b->pend_free = p->hnext;
                struct event *t = p->timer;
                memset(p, 0, sizeof *p);
                p->timer = t;
        } else {
                p = calloc(1, sizeof *p);
                if (!p)
                        return NULL;
                p->timer = evtimer_new(b->base, pending_timeout, p);
                if (!p->timer) {
                        free(p);
                        return NULL;
                }
        }
        return p;
}

static bpending *pending_find(hyb_broker *b, uint64_t id)
{
        for (bpending *p = b->pend_hash[id & (PEND_BUCKETS - 1)]; p; p = p->hnext)
                if (p->id == id)
                        return p;
        return NULL;
}

static void pending_free(hyb_broker *b, bpending *p)
{
        for (bpending **pp = &b->pend_hash[p->id & (PEND_BUCKETS - 1)]; *pp; pp = &(*pp)->hnext)
                if (*pp == p) {
                        *pp = p->hnext;
                        break;
                }
        if (p->oprev)
                p->oprev->onext = p->onext;
        else
                p->caller->out = p->onext;
        if (p->onext)
                p->onext->oprev = p->oprev;
        if (p->iprev)
                p->iprev->inext = p->inext;
        else
                p->callee->in = p->inext;
        if (p->inext)
                p->inext->iprev = p->iprev;
        if (p->callee->xpeer)
                b->n_remote_out--;
        if (p->caller->xpeer)
                b->n_remote_in--;
        p->caller->n_out--;
        if (p->caller->q)
                p->caller->q->pending--;
        evtimer_del(p->timer);
        p->hnext = b->pend_free;
        b->pend_free = p;
}

static void send_cancel(bconn *callee, uint64_t id, int status)
{
        wire_hdr h = { .type = WIRE_CANCEL, .status = (uint16_t)status, .call_id = id };
        if (callee->xpeer) {
                xhost_send_cancel(callee, id, status);
                return;
        }
        bconn_send(callee, &h, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
        if (callee->b->n_monitors)
                monitor_copy(callee->b, WIRE_CANCEL, &h, builtin_name, sizeof builtin_name - 1, callee->name,
                             callee->name_len, NULL, 0, NULL, 0);
}

static void pending_timeout(evutil_socket_t fd, short what, void *ud)
{
        bpending *p = ud;
        hyb_broker *b = p->caller->b;
        bconn *caller = p->caller, *callee = p->callee;
        uint64_t cid = p->caller_id, id = p->id;

        pending_free(b, p);
        send_cancel(callee, id, 504);
        route_reply(caller, cid, 504, "callee did not answer before the deadline", NULL, 0, 0);
}

/* ---------------------------------------------------------------- calls */

/* The id of a call to another host, its correlation data on the MQTT broker where any
 * client may publish a RESULT (doc/cluster.md): not guessable, so random, with the top
 * bit set to stay apart from the local ids (counted from 1). */
static uint64_t remote_call_id(hyb_broker *b)
{
        uint64_t id = 0;

        do {
                ssize_t k;
                while ((k = getrandom(&id, sizeof id, 0)) < 0 && errno == EINTR)
                        ;
                if (k != (ssize_t)sizeof id)
                        id = b->next_id++; /* no randomness: unique still */
                id |= UINT64_C(1) << 63;
        } while (pending_find(b, id));
        return id;
}

/* Checks c's pending-call bounds and makes the pending entry of the call f to callee, its
 * deadline armed (*t: the timeout in ms); NULL when the caller was answered instead. */
static bpending *pending_link(bconn *c, bconn *callee, bframe *f, uint32_t *t)
{
        hyb_broker *b = c->b;
        bpending *p;

        if (c->n_out >= b->c->max_pending_calls) {
                route_reply(c, f->h.call_id, 429, "too many pending calls", NULL, 0, 0);
                return NULL;
        }
        if (c->q && c->q->pending >= b->c->uid_max_pending_calls) {
                route_reply(c, f->h.call_id, 429, "quota uid_max_pending_calls exceeded", NULL, 0, 0);
                return NULL;
        }
        if (callee->xpeer && !xhost_room(b)) {
                route_reply(c, f->h.call_id, 429, "quota max_cluster_calls exceeded", NULL, 0, 0);
                return NULL;
        }
        if (c->xpeer && b->n_remote_in >= b->c->max_cluster_calls) {
                route_reply(c, f->h.call_id, 429, "quota max_cluster_calls exceeded", NULL, 0, 0);
                return NULL;
        }
        if (!callee->xpeer && !bconn_room(callee, f->len + WIRE_ENDPOINT_MAX)) {
                route_reply(c, f->h.call_id, 502, "callee cannot keep up (send queue full)", NULL, 0, 0);
                return NULL;
        }
        p = pending_new(b);
        if (!p) {
                route_reply(c, f->h.call_id, 500, "out of memory", NULL, 0, 0);
                return NULL;
        }
        p->id = callee->xpeer ? remote_call_id(b) : b->next_id++;
        p->caller_id = f->h.call_id;
        p->caller = c;
        p->callee = callee;
        p->hnext = b->pend_hash[p->id & (PEND_BUCKETS - 1)];
        b->pend_hash[p->id & (PEND_BUCKETS - 1)] = p;
        p->onext = c->out;
        if (c->out)
                c->out->oprev = p;
        c->out = p;
        c->n_out++;
        if (c->q)
                c->q->pending++;
        p->inext = callee->in;
        if (callee->in)
                callee->in->iprev = p;
        callee->in = p;
        if (callee->xpeer)
                b->n_remote_out++;
        if (c->xpeer)
                b->n_remote_in++;
        *t = f->h.timeout_ms ? f->h.timeout_ms : ROUTE_DEFAULT_TIMEOUT_MS;
        struct timeval tv = { .tv_sec = *t / 1000, .tv_usec = (*t % 1000) * 1000 };
        evtimer_add(p->timer, *t == ROUTE_DEFAULT_TIMEOUT_MS && b->default_deadline ? b->default_deadline
                                                                                    : &tv);
        return p;
}

/* A call to an endpoint of another host: the target host checks the procedure, its access
 * lists and the caller's token; here only the caller's bounds apply. */
static void call_remote(bconn *c, bconn *callee, bframe *f)
{
        uint32_t t;
        bpending *p = pending_link(c, callee, f, &t);
        if (!p)
                return;
        const char *msg = NULL;
        int st = xhost_forward_call(c, callee, p->id, t, f, &msg);
        if (st) {
                uint64_t cid = p->caller_id;
                pending_free(c->b, p);
                route_reply(c, cid, st, msg, NULL, 0, 0);
        }
}

static bproc *find_proc(bconn *callee, const char *name, size_t len)
{
        for (bproc *p = callee->procs; p; p = p->next)
                if (bus_name_equal(p->name, p->name_len, name, len))
                        return p;
        return NULL;
}

/*
 * `from` of a CALL made by c, with the caller info (doc/protocol.md "Frame") when c is a
 * session of the edge or of a token: the name, then "<transport>" NUL "<principal>" (the
 * token's sub; empty for the anonymous principal).  A principal that does not fit the
 * 384 bytes of `from` is left out (empty).  Returns from's length; *info_len the info's.
 */
size_t route_caller_info(const bconn *c, char from[WIRE_ENDPOINT_MAX], uint16_t *info_len)
{
        const char *tr = c->transport ? c->transport : "unix";
        const char *sub = c->tok ? hyb_token_result_get_sub(c->tok) : "";
        size_t tl = strlen(tr), sl = sub ? strlen(sub) : 0;

        memcpy(from, c->name, c->name_len);
        *info_len = 0;
        if (!c->transport && !c->tok)
                return c->name_len;
        if (c->name_len + tl + 1 + sl > WIRE_ENDPOINT_MAX)
                sl = 0;
        if (c->name_len + tl + 1 > WIRE_ENDPOINT_MAX)
                return c->name_len;
        memcpy(from + c->name_len, tr, tl);
        from[c->name_len + tl] = 0;
        if (sl)
                memcpy(from + c->name_len + tl + 1, sub, sl);
        *info_len = (uint16_t)(tl + 1 + sl);
        return c->name_len + *info_len;
}

void route_call(bconn *c, bframe *f)
{
        hyb_broker *b = c->b;
        bconn *callee;
        bproc *proc;
        bpending *p;
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        char msg[128];

        if (f->h.body_len > b->c->max_body) {
                route_reply(c, f->h.call_id, 413, "body larger than max_body", NULL, 0, 0);
                return;
        }
        if (f->h.member_len == 0 || f->h.to_len == 0) {
                route_reply(c, f->h.call_id, 400, "call without endpoint or method", NULL, 0, 0);
                return;
        }
        if (bus_name_equal(f->to, f->h.to_len, builtin_name, sizeof builtin_name - 1)) {
                /* The monitor sees every CALL, builtin ones included (doc/protocol.md). */
                if (b->n_monitors) {
                        /* bframe_body first: it re-points f->to / f->member (argument
                         * evaluation order would otherwise pass stale pointers). */
                        const uint8_t *body = bframe_body(f);
                        monitor_copy(b, WIRE_CALL, &f->h, c->name, c->name_len, f->to, f->h.to_len,
                                     f->member, f->h.member_len, body, f->h.body_len);
                }
                if (store_is_call(f->member, f->h.member_len))
                        store_call(c, f);
                else
                        builtin_call(c, f);
                return;
        }
        callee = broker_lookup(b, f->to, f->h.to_len);
        if (!callee) {
                /* Validate only on the miss path: a malformed name is 406, an unknown one 404,
                 * one of another host goes to the cluster (xhost.c). */
                bus_name n;
                const char *why = "no such endpoint";
                int st = 404;
                if (bus_name_parse_endpoint(f->to, f->h.to_len, &n, NULL) < 0) {
                        route_reply(c, f->h.call_id, 406, "malformed endpoint name", NULL, 0, 0);
                        return;
                }
                if (b->xhost && !c->xpeer)
                        st = xhost_route(b, &n, &callee, &why);
                if (!callee) {
                        route_reply(c, f->h.call_id, st ? st : 404, why, NULL, 0, 0);
                        return;
                }
                if (callee->xpeer) {
                        call_remote(c, callee, f);
                        return;
                }
        }
        proc = find_proc(callee, f->member, f->h.member_len);
        if (!proc && bus_name_check_ident(f->member, f->h.member_len, NULL) < 0) {
                route_reply(c, f->h.call_id, 406, "malformed procedure name", NULL, 0, 0);
                return;
        }
        if (!proc) {
                snprintf(msg, sizeof msg, "no such procedure: %.*s", (int)(f->h.member_len > 64 ? 64 : f->h.member_len),
                         f->member);
                route_reply(c, f->h.call_id, 404, msg, NULL, 0, 0);
                return;
        }
        if (!route_acl(callee, proc->hosts, proc->apps, c)) {
                route_reply(c, f->h.call_id, 403, "access list denies the call", NULL, 0, 0);
                return;
        }
        if (c->tok) {
                hyb_error e;

                hyb_error_clear(&e);
                if (auth_bus_check(c, callee->name, proc->name, HYB_TOKEN_ACT_CALL, &e) < 0) {
                        route_reply(c, f->h.call_id, 403, e.message, NULL, 0, 0);
                        return;
                }
        }
        uint32_t t;
        p = pending_link(c, callee, f, &t);
        if (!p)
                return;

        /* aux: the caller's uid (SO_PEERCRED), so that a callee can bound what it keeps per uid;
         * the caller info (transport, principal) ends `from` for edge and token sessions */
        wire_hdr h = { .type = WIRE_CALL, .flags = f->h.flags & WIRE_F_BINARY, .call_id = p->id,
                       .timeout_ms = t, .aux = (uint32_t)c->uid };
        char from[WIRE_ENDPOINT_MAX];
        size_t from_len = route_caller_info(c, from, &h.info_len);
        wire_build(&h, from, from_len, callee->name, callee->name_len, proc->name, proc->name_len,
                   NULL, f->h.body_len, buf, iov);
        if (b->n_monitors) {
                const uint8_t *body = bframe_body(f);
                monitor_copy(b, WIRE_CALL, &h, c->name, c->name_len, callee->name, callee->name_len,
                             proc->name, proc->name_len, body, f->h.body_len);
        }
        bconn_forward(callee, buf, iov[0].iov_len, f);
}

void route_result(bconn *c, bframe *f)
{
        hyb_broker *b = c->b;
        bpending *p = pending_find(b, f->h.call_id);
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];

        if (!p || p->callee != c)
                return; /* late (after 504 or cancel) or not ours: dropped */
        bconn *caller = p->caller;
        uint64_t cid = p->caller_id;
        pending_free(b, p);
        if (f->h.body_len > b->c->max_body) {
                route_reply(caller, cid, 413, "result larger than max_body", NULL, 0, 0);
                return;
        }
        if (caller->xpeer) {
                const uint8_t *rb = bframe_body(f);
                xhost_send_result(caller, cid, f->h.status ? f->h.status : 200, c->name, c->name_len, f->member,
                                  f->h.member_len, rb, f->h.body_len, f->h.flags & WIRE_F_BINARY);
                return;
        }
        if (!bconn_room(caller, f->len + 2 * WIRE_ENDPOINT_MAX))
                return; /* the caller is gone now as a slow consumer */
        /* Pulling the body up may move the frame to a new chain: pull up before
         * reading f->member (bframe_body re-points it). */
        const uint8_t *body = b->n_monitors ? bframe_body(f) : NULL;
        const char *member = f->member; /* re-pointed by bframe_body */
        wire_hdr h = { .type = WIRE_RESULT, .flags = f->h.flags & WIRE_F_BINARY,
                       .status = f->h.status ? f->h.status : 200, .call_id = cid };
        wire_build(&h, c->name, c->name_len, caller->name, caller->name_len, member, f->h.member_len, NULL,
                   f->h.body_len, buf, iov);
        if (body)
                monitor_copy(b, WIRE_RESULT, &h, c->name, c->name_len, caller->name, caller->name_len,
                             member, f->h.member_len, body, f->h.body_len);
        bconn_forward(caller, buf, iov[0].iov_len, f);
}

/* The caller gives up on its call caller_id: cancel at the callee, no result follows. */
void route_cancel(bconn *c, uint64_t caller_id, int status)
{
        for (bpending *p = c->out; p; p = p->onext)
                if (p->caller_id == caller_id) {
                        bconn *callee = p->callee;
                        uint64_t id = p->id;
                        pending_free(c->b, p);
                        send_cancel(callee, id, status);
                        return;
                }
}

int route_terminate(bconn *c, uint64_t caller_id)
{
        for (bpending *p = c->out; p; p = p->onext)
                if (p->caller_id == caller_id) {
                        route_cancel(c, caller_id, 410);
                        return 0;
                }
        return HYB_E_NOT_FOUND;
}

void route_conn_gone(bconn *c)
{
        /* Calls it made: the callees may stop working on them. */
        while (c->out) {
                bpending *p = c->out;
                bconn *callee = p->callee;
                uint64_t id = p->id;
                pending_free(c->b, p);
                send_cancel(callee, id, 410);
        }
        /* Calls it served: 502 to each caller at once. */
        while (c->in) {
                bpending *p = c->in;
                bconn *caller = p->caller;
                uint64_t cid = p->caller_id;
                pending_free(c->b, p);
                route_reply(caller, cid, 502, "callee disconnected", NULL, 0, 0);
        }
        while (c->procs) {
                bproc *pr = c->procs;
                c->procs = pr->next;
                free(pr->name);
                free(pr->policy);
                bus_acl_free(pr->hosts);
                bus_acl_free(pr->apps);
                free(pr);
        }
}
