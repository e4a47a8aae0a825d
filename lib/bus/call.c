/* SPDX-License-Identifier: MIT */
/*
 * Calls (sync and async), replies, and the callee side: requests, deferred
 * replies, cancels.  A sync call lives on the caller's stack; only async calls
 * and requests are allocated.
 */
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>

#include "bus-internal.h"
#include "names.h"
#include "common/util.h"
#include "common/ref.h"

#define LOCAL_GRACE_US (2u * 1000000u) /* the broker answers 504 first; this guards a dead broker */

/* ---------------------------------------------------------------- replies */

hyb_bus_reply *bus_reply_new(int status, unsigned flags, const char *sender, size_t sender_len,
                             const char *msg, size_t msg_len, const void *body, size_t body_len)
{
        hyb_bus_reply *r = malloc(sizeof *r + sender_len + msg_len + body_len + 3);
        char *p;

        if (!r)
                return NULL;
        r->n_ref = 1;
        r->status = status;
        r->flags = flags;
        p = (char *)(r + 1);
        r->sender = p;
        memcpy(p, sender, sender_len);
        p[sender_len] = 0;
        p += sender_len + 1;
        r->message = p;
        memcpy(p, msg, msg_len);
        p[msg_len] = 0;
        p += msg_len + 1;
        r->body = (const uint8_t *)p;
        if (body_len)
                memcpy(p, body, body_len);
        p[body_len] = 0;
        r->body_len = body_len;
        return r;
}

static void bus_reply_free(hyb_bus_reply *reply)
{
        free(reply);
}

HYB_DEFINE_REF_UNREF(hyb_bus_reply, hyb_bus_reply, bus_reply_free)

HYB_EXPORT int hyb_bus_reply_get_status(const hyb_bus_reply *reply)
{
        hyb_assert_return(reply, -EINVAL);
        return reply->status;
}

HYB_EXPORT int hyb_bus_reply_get_error(const hyb_bus_reply *reply)
{
        hyb_assert_return(reply, -EINVAL);
        return hyb_err_from_status(reply->status);
}

HYB_EXPORT const char *hyb_bus_reply_get_message(const hyb_bus_reply *reply)
{
        return reply ? reply->message : NULL;
}

HYB_EXPORT const void *hyb_bus_reply_get_body(const hyb_bus_reply *reply, size_t *ret_len)
{
        if (!reply)
                return NULL;
        if (ret_len)
                *ret_len = reply->body_len;
        return reply->body;
}

HYB_EXPORT bool hyb_bus_reply_is_binary(const hyb_bus_reply *reply)
{
        return reply && (reply->flags & WIRE_F_BINARY);
}

HYB_EXPORT const char *hyb_bus_reply_get_sender(const hyb_bus_reply *reply)
{
        return reply ? reply->sender : NULL;
}

/* ---------------------------------------------------------------- pending calls */

/* The deadline heap: deadlines[0] is the call whose local deadline comes first. */
static void heap_place(hyb_bus *bus, bus_call *c, size_t i)
{
        bus->deadlines[i] = c;
        c->heap_idx = i;
}

static void heap_up(hyb_bus *bus, size_t i)
{
        bus_call *c = bus->deadlines[i];

        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (bus->deadlines[parent]->deadline_us <= c->deadline_us)
                        break;
                heap_place(bus, bus->deadlines[parent], i);
                i = parent;
        }
        heap_place(bus, c, i);
}

static void heap_down(hyb_bus *bus, size_t i)
{
        size_t n = bus->n_calls;
        bus_call *c = bus->deadlines[i];

        for (;;) {
                size_t l = 2 * i + 1, m;
                if (l >= n)
                        break;
                m = l + 1 < n && bus->deadlines[l + 1]->deadline_us < bus->deadlines[l]->deadline_us
                            ? l + 1
                            : l;
                if (c->deadline_us <= bus->deadlines[m]->deadline_us)
                        break;
                heap_place(bus, bus->deadlines[m], i);
                i = m;
        }
        heap_place(bus, c, i);
}

int bus_call_link(hyb_bus *bus, bus_call *c)
{
        if (bus->n_calls == bus->deadlines_alloc) {
                size_t na = bus->deadlines_alloc ? bus->deadlines_alloc * 2 : 8;
                bus_call **h = reallocarray_safe(bus->deadlines, na, sizeof *h);
                if (!h)
                        return -ENOMEM;
                bus->deadlines = h;
                bus->deadlines_alloc = na;
        }
        c->prev = bus->calls_tail;
        c->next = NULL;
        if (bus->calls_tail)
                bus->calls_tail->next = c;
        else
                bus->calls_head = c;
        bus->calls_tail = c;
        bus->deadlines[bus->n_calls] = c;
        c->heap_idx = bus->n_calls;
        bus->n_calls++;
        heap_up(bus, c->heap_idx);
        c->linked = true;
        return 0;
}

void bus_call_unlink(bus_call *c)
{
        hyb_bus *bus = c->bus;
        size_t i;

        if (!c->linked)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                bus->calls_head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        else
                bus->calls_tail = c->prev;
        i = c->heap_idx;
        bus->n_calls--;
        if (i != bus->n_calls) {
                /* The last leaf takes c's place and moves whichever way its deadline says. */
                bus_call *last = bus->deadlines[bus->n_calls];
                heap_place(bus, last, i);
                heap_up(bus, i);
                heap_down(bus, last->heap_idx);
        }
        c->linked = false;
        if (c->chan) {
                bus_chan_call_done(c->chan);
                bus_chan_unref(c->chan);
                c->chan = NULL;
        }
        if (c->peer) {
                c->peer->n_broker--;
                c->peer = NULL;
        }
}

/* Tells the callee (over the call's channel) or the broker that c is given up. */
static void call_send_cancel(hyb_bus *bus, bus_call *c)
{
        wire_hdr h = { .type = WIRE_CANCEL, .call_id = c->id, .status = 410 };

        if (c->chan) {
                wire_hdr hc = { .type = WIRE_CANCEL, .call_id = c->id };
                bus_chan_send(c->chan, &hc, NULL, 0, NULL, 0, NULL, 0);
                return;
        }
        bus_send(bus, &h, NULL, 0, NULL, 0, NULL, 0);
}

static void call_complete(bus_call *c, hyb_bus_reply *rep)
{
        hyb_bus *bus = c->bus;

        bus_call_unlink(c);
        c->done = true;
        if (!c->cb) {
                c->reply = rep; /* sync: the waiting caller takes it */
                return;
        }
        /* The callback may drop the caller's last reference to this call's slot (a
         * binding's collector does): hold one of our own until we are done with it. */
        hyb_slot_ref(&c->slot);
        if (rep)
                c->cb(bus, rep, c->slot.userdata);
        hyb_bus_reply_unref(rep);
        slot_drop_floating(&c->slot);
        hyb_slot_unref(&c->slot);
}

void bus_dispatch_result(hyb_bus *bus, const wire_packet *p)
{
        uint64_t id = p->h.call_id;
        bus_call *c = NULL;

        /* Calls are linked as their ids are given, so the list runs in id order: walk in from
         * the nearer end.  The oldest call's reply (in-order answers) and the newest one's (a
         * sync call made with many async ones pending) are found at once. */
        if (bus->calls_head && id >= bus->calls_head->id && id <= bus->calls_tail->id) {
                if (id - bus->calls_head->id <= bus->calls_tail->id - id) {
                        for (c = bus->calls_head; c && c->id < id; c = c->next)
                                ;
                } else {
                        for (c = bus->calls_tail; c && c->id > id; c = c->prev)
                                ;
                }
        }
        if (!c || c->id != id) {
                bus_orphan_result(bus, p); /* cancelled or expired locally: drop */
                return;
        }
        if (c->chan)
                return; /* a call sent over a channel is answered there only */
        if (c->open_channel && p->h.status == 200 && c->cb != bus_chan_open_result)
                /* The application's own openChannel: the fd that came with it is one it
                 * can never get, and left in the queue of received fds it would be taken
                 * by the next channel the library opens (to another endpoint). */
                bus_chan_drop_granted(bus, p);
        if (c->sink && (p->h.status == 0 || p->h.status == 200)) {
                /* a sync call that takes the body where it lies: no reply made */
                c->sink_r = c->sink(p->body, p->h.body_len, c->sink_ud);
                c->sunk = true;
                call_complete(c, NULL);
                return;
        }
        hyb_bus_reply *rep = bus_reply_new(p->h.status ? p->h.status : 200, p->h.flags & WIRE_F_BINARY,
                                           p->from, p->h.from_len, p->member, p->h.member_len, p->body,
                                           p->h.body_len);
        call_complete(c, rep);
}

void bus_dispatch_result_chan(hyb_bus *bus, bus_chan *ch, const wire_packet *p)
{
        bus_call *c;

        /* Channel calls are few and mostly answered in order: from the oldest */
        for (c = bus->calls_head; c && c->id != p->h.call_id; c = c->next)
                ;
        if (!c || c->chan != ch) {
                /* The late answer of a call on it we gave up (504, cancel): dropped.  Any
                 * other: the callee misbehaves, the channel closes (its EOF fails the
                 * calls left on it with 502). */
                if (c || p->h.call_id > ch->last_id || p->h.call_id < ch->first_id)
                        shutdown(ch->fd, SHUT_RDWR);
                return;
        }
        if (p->h.status == 403 && p->h.member_len >= 21 &&
            memcmp(p->member, "direct channel closed", 21) == 0 && c->r_method) {
                /* Not run: the service's channel closed first.  The same call again,
                 * through the broker (which checks it anew), with the time it has left. */
                uint64_t now = hyb_now_usec();
                wire_hdr h = { .type = WIRE_CALL, .flags = (uint8_t)(c->r_flags & WIRE_F_BINARY),
                               .call_id = c->id };

                bus_peer *pr = ch->peer;

                /* (c->chan is ch) off the channel first: its close (now, if it was closing) fails only the
                 * calls still on it */
                c->chan = NULL;
                bus_chan_call_done(ch);
                bus_chan_unref(ch);
                if (c->deadline_us > now + 1000u) {
                        h.timeout_ms = (uint32_t)((c->deadline_us - now) / 1000u);
                        c->deadline_us += LOCAL_GRACE_US;
                        heap_down(bus, c->heap_idx);
                        if (bus_send(bus, &h, c->r_endpoint, strlen(c->r_endpoint), c->r_method,
                                     strlen(c->r_method), c->r_body, c->r_len) == 0) {
                                /* counted as through the broker: the caller's later calls to
                                 * that endpoint do not overtake it on a channel */
                                if (pr && !c->peer) {
                                        c->peer = pr;
                                        pr->n_broker++;
                                }
                                return;
                        }
                }
        }
        hyb_bus_reply *rep = bus_reply_new(p->h.status ? p->h.status : 200, p->h.flags & WIRE_F_BINARY,
                                           p->from, p->h.from_len, p->member, p->h.member_len, p->body,
                                           p->h.body_len);
        call_complete(c, rep);
}

void bus_fail_chan_calls(hyb_bus *bus, bus_chan *ch)
{
        for (;;) {
                bus_call *c;

                for (c = bus->calls_head; c && c->chan != ch; c = c->next)
                        ;
                if (!c)
                        break;
                call_complete(c, bus_reply_new(502, 0, "", 0, "callee closed the direct channel",
                                               32, NULL, 0));
        }
}

int bus_expire_calls(hyb_bus *bus)
{
        uint64_t now;
        int n = 0;

        if (bus->n_chans > 0)
                bus_chan_expire(bus);
        if (bus->n_calls == 0)
                return 0;
        now = hyb_now_usec();
        /* Earliest deadline first; the heap's top is read again after each callback,
         * which may have linked or unlinked calls. */
        while (bus->n_calls > 0 && bus->deadlines[0]->deadline_us <= now) {
                bus_call *c = bus->deadlines[0];
                if (c->open_channel)
                        bus->n_open_lost++; /* its RESULT (and fd) may still come */
                call_send_cancel(bus, c);
                call_complete(c, bus_reply_new(504, 0, "", 0, "no answer before the deadline", 29, NULL, 0));
                n++;
        }
        return n;
}

uint64_t bus_next_deadline(const hyb_bus *bus)
{
        uint64_t d = bus->n_calls > 0 ? bus->deadlines[0]->deadline_us : UINT64_MAX;

        if (bus->n_chans > 0) {
                uint64_t cd = bus_chan_next_deadline(bus);
                if (cd < d)
                        d = cd;
        }
        return d;
}

static int call_check(hyb_bus *bus, const char *endpoint, const char *method, size_t len,
                      uint32_t *timeout_ms)
{
        if (bus->closed)
                return HYB_E_CLOSED;
        if (strlen(endpoint) > WIRE_ENDPOINT_MAX || strlen(method) > WIRE_MEMBER_MAX)
                return HYB_E_NOT_ACCEPTABLE;
        if (len > bus->max_body)
                return HYB_E_TOO_LARGE;
        if (*timeout_ms == 0)
                *timeout_ms = HYB_BUS_DEFAULT_TIMEOUT_MS;
        if (*timeout_ms > WIRE_TIMEOUT_MAX)
                *timeout_ms = WIRE_TIMEOUT_MAX;
        return 0;
}

/* Links c as pending with its local deadline, then sends the CALL. */
static int call_send(hyb_bus *bus, bus_call *c, const char *endpoint, const char *method,
                     const void *body, size_t len, unsigned flags, uint32_t timeout_ms)
{
        wire_hdr h = { .type = WIRE_CALL, .flags = (uint8_t)(flags & WIRE_F_BINARY), .call_id = c->id,
                       .timeout_ms = timeout_ms };
        bus_peer *peer = NULL;
        bus_chan *ch = NULL;
        int r;

        /* BUS_CALL_BUILTIN: the library's own builtin call (a store call), no channel */
        c->open_channel = !(flags & BUS_CALL_BUILTIN) && strcasecmp(method, "openChannel") == 0 &&
                          strcasecmp(endpoint, HYB_BUS_BUILTIN_ENDPOINT) == 0;
        if (bus->efd >= 0 && !bus->cancellable && !(flags & BUS_CALL_BUILTIN))
                ch = bus_chan_route(bus, endpoint, method, len, &peer);
        if (ch) {
                size_t el = strlen(endpoint), ml = strlen(method);

                /* A channel call may come back "not run" (the service's channel closed
                 * under it): what it takes to send it again through the broker */
                if (c->cb) {
                        char *cp = malloc(el + ml + len + 2);
                        if (!cp)
                                return -ENOMEM;
                        memcpy(cp, endpoint, el + 1);
                        memcpy(cp + el + 1, method, ml + 1);
                        if (len)
                                memcpy(cp + el + ml + 2, body, len);
                        c->r_copy = cp;
                        c->r_endpoint = cp;
                        c->r_method = cp + el + 1;
                        c->r_body = cp + el + ml + 2;
                } else {
                        c->r_endpoint = endpoint;
                        c->r_method = method;
                        c->r_body = body;
                }
                c->r_len = len;
                c->r_flags = flags;
                r = bus_chan_send(ch, &h, NULL, 0, method, ml, body, len);
                if (r == 0) {
                        /* Direct: no broker to answer 504 first, the deadline is ours alone. */
                        c->deadline_us = hyb_now_usec() + (uint64_t)timeout_ms * 1000u;
                        r = bus_call_link(bus, c);
                        if (r < 0)
                                return r;
                        c->chan = bus_chan_ref(ch);
                        ch->n_calls++;
                        if (!ch->first_id)
                                ch->first_id = c->id;
                        ch->last_id = c->id;
                        return 0;
                }
                /* the service no longer reads the channel: through the broker */
                peer = NULL;
        }
        c->deadline_us = hyb_now_usec() + (uint64_t)timeout_ms * 1000u + LOCAL_GRACE_US;
        r = bus_call_link(bus, c);
        if (r < 0)
                return r;
        r = bus_send(bus, &h, endpoint, strlen(endpoint), method, strlen(method), body, len);
        if (r == 0 && peer) {
                c->peer = peer;
                peer->n_broker++;
                bus_chan_maybe_open(bus, peer);
        }
        return r;
}

int bus_call_sync(hyb_bus *bus, const char *endpoint, const char *method, const void *body,
                  size_t len, unsigned flags, uint32_t timeout_ms, hyb_bus_reply **ret,
                  hyb_error *reterr)
{
        return bus_call_sync_sink(bus, endpoint, method, body, len, flags, timeout_ms, NULL, NULL,
                                  ret, reterr);
}

int bus_call_sync_sink(hyb_bus *bus, const char *endpoint, const char *method, const void *body,
                       size_t len, unsigned flags, uint32_t timeout_ms,
                       int (*sink)(const void *body, size_t len, void *ud), void *sink_ud,
                       hyb_bus_reply **ret, hyb_error *reterr)
{
        bus_call c = { .bus = bus, .sink = sink, .sink_ud = sink_ud };
        int r;

        r = call_check(bus, endpoint, method, len, &timeout_ms);
        if (r < 0)
                return err_set(reterr, r, -1, "%s", hyb_strerror(r));
        c.id = bus->next_id++;
        r = call_send(bus, &c, endpoint, method, body, len, flags, timeout_ms);
        if (r < 0) {
                bus_call_unlink(&c);
                return err_set(reterr, r, -1, "sending call: %s", hyb_strerror(r));
        }
        /* A callback run by the wait may close the bus and drop the caller's last
         * reference (a binding's close() from a procedure): hold one until done here. */
        hyb_bus_ref(bus);
        r = bus_wait_for(bus, &c.done, c.deadline_us);
        bus_call_unlink(&c);
        if (c.sunk) {
                hyb_bus_unref(bus);
                *ret = NULL;
                return c.sink_r;
        }
        if (!c.reply && bus->close_status)
                r = err_set(reterr, hyb_err_from_status(bus->close_status), -1,
                            "connection closed by the broker: %d %s", bus->close_status, bus->close_msg);
        else if (!c.reply)
                r = err_set(reterr, r < 0 ? r : HYB_E_CLOSED, -1, "connection closed during call");
        hyb_bus_unref(bus);
        if (!c.reply)
                return r;
        *ret = c.reply;
        return 0;
}

/* hyb_bus_call, and the answer's status of a failed call in *ret_status (0 without one) */
static int call_status(hyb_bus *bus, const char *endpoint, const char *method, const void *body,
                       size_t len, unsigned flags, uint32_t timeout_ms, hyb_bus_reply **ret,
                       int *ret_status, hyb_error *reterr)
{
        hyb_bus_reply *reply = NULL;
        int r;

        *ret_status = 0;
        r = bus_call_sync(bus, endpoint, method, body, len, flags, timeout_ms, &reply, reterr);
        if (r < 0)
                return r;
        r = hyb_err_from_status(reply->status);
        if (r < 0) {
                *ret_status = reply->status;
                err_set(reterr, r, -1, "%s", reply->message[0] ? reply->message : hyb_strerror(r));
                hyb_bus_reply_unref(reply);
                return r;
        }
        if (ret)
                *ret = reply;
        else
                hyb_bus_reply_unref(reply);
        return 0;
}

HYB_EXPORT int hyb_bus_call(hyb_bus *bus, const char *endpoint, const char *method, const void *body,
                            size_t len, unsigned flags, uint32_t timeout_ms, hyb_bus_reply **ret,
                            hyb_error *reterr)
{
        int status;

        hyb_assert_return(bus && endpoint && method && (body || len == 0), -EINVAL);
        return call_status(bus, endpoint, method, body, len, flags, timeout_ms, ret, &status,
                           reterr);
}

/* hyb_bus_call_into, and the answer's status of a failed call in *ret_status */
static int call_into(hyb_bus *bus, const char *endpoint, const char *method, const void *body,
                     size_t len, unsigned flags, uint32_t timeout_ms, void *buf, size_t size,
                     size_t *ret_len, unsigned *ret_flags, hyb_bus_reply **ret_reply,
                     int *ret_status, hyb_error *reterr)
{
        hyb_bus_reply *reply = NULL;
        int r;

        *ret_status = 0;
        hyb_assert_return(ret_reply, -EINVAL);
        *ret_reply = NULL;
        hyb_assert_return(bus && endpoint && method && ret_len && (body || len == 0) &&
                                  (buf || size == 0),
                          -EINVAL);
        r = call_status(bus, endpoint, method, body, len, flags, timeout_ms, &reply, ret_status,
                        reterr);
        if (r < 0)
                return r;
        *ret_len = reply->body_len;
        if (ret_flags)
                *ret_flags = (reply->flags & WIRE_F_BINARY) ? HYB_BODY_BINARY : HYB_BODY_JSON;
        if (reply->body_len > size) {
                *ret_reply = reply;
                return 0;
        }
        if (reply->body_len)
                memcpy(buf, reply->body, reply->body_len);
        hyb_bus_reply_unref(reply);
        return 0;
}

HYB_EXPORT int hyb_bus_call_into(hyb_bus *bus, const char *endpoint, const char *method,
                                 const void *body, size_t len, unsigned flags, uint32_t timeout_ms,
                                 void *buf, size_t size, size_t *ret_len, unsigned *ret_flags,
                                 hyb_bus_reply **ret_reply, hyb_error *reterr)
{
        int status;

        return call_into(bus, endpoint, method, body, len, flags, timeout_ms, buf, size, ret_len,
                         ret_flags, ret_reply, &status, reterr);
}

/* The size of hyb_bus_call_args in HYBRID_0.1 (up to err): the smallest one taken */
#define CALL_ARGS_V1 offsetof(hyb_bus_call_args, status)

HYB_EXPORT int hyb_bus_call_prepared(hyb_bus_call_args *a, const void *body, size_t len)
{
        unsigned flags = HYB_BODY_JSON;
        hyb_bus_reply *reply = NULL;
        int r, status;

        hyb_assert_return(a && a->size >= CALL_ARGS_V1, -EINVAL);
        /* the reply pointer is set when the call returns: a call made with the same struct
         * by a handler during the wait must not leave its own there */
        r = call_into(a->bus, a->endpoint, a->method, body, len, a->flags, a->timeout_ms, a->buf,
                      a->buf_size, &a->ret_len, &flags, &reply, &status, &a->err);
        a->ret_reply = reply;
        if (a->size >= offsetof(hyb_bus_call_args, status) + sizeof(a->status))
                a->status = status;
        return r < 0 ? r : (int)flags;
}

static void call_slot_disconnect(hyb_slot *slot)
{
        bus_call *c = (bus_call *)slot;

        if (c->linked && c->bus) {
                /* Cancelled by the caller before the reply: tell the broker (or the
                 * callee, over the call's channel). */
                if (c->open_channel)
                        c->bus->n_open_lost++; /* its RESULT (and fd) may still come */
                call_send_cancel(c->bus, c);
                bus_call_unlink(c);
        }
        free(c->r_copy);
        free(c);
}

static const slot_ops call_slot_ops = { .disconnect = call_slot_disconnect, .can_float = true };

HYB_EXPORT int hyb_bus_call_async(hyb_bus *bus, const char *endpoint, const char *method,
                                  const void *body, size_t len, unsigned flags, uint32_t timeout_ms,
                                  hyb_bus_reply_fn cb, void *userdata, hyb_slot **ret_slot)
{
        bus_call *c;
        int r;

        hyb_assert_return(bus && endpoint && method && cb && (body || len == 0), -EINVAL);
        r = call_check(bus, endpoint, method, len, &timeout_ms);
        if (r < 0)
                return r;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        if (ret_slot)
                slot_init(&c->slot, &call_slot_ops, userdata);
        else
                slot_init_floating(&c->slot, &call_slot_ops, userdata);
        c->bus = bus;
        c->cb = cb;
        c->id = bus->next_id++;
        r = call_send(bus, c, endpoint, method, body, len, flags, timeout_ms);
        if (r < 0) {
                bus_call_unlink(c);
                free(c);
                return r;
        }
        if (bus->base)
                bus_update_event(bus);
        if (ret_slot)
                *ret_slot = &c->slot;
        return 0;
}

HYB_EXPORT int hyb_bus_call_builtin(hyb_bus *bus, const char *method, const char *json,
                                    hyb_bus_reply **ret, hyb_error *reterr)
{
        hyb_assert_return(bus && method, -EINVAL);
        if (!json)
                json = "{}";
        return hyb_bus_call(bus, HYB_BUS_BUILTIN_ENDPOINT, method, json, strlen(json), 0, 0, ret,
                            reterr);
}

int bus_builtin(hyb_bus *bus, const char *method, const char *json, hyb_bus_reply **ret,
                hyb_error *reterr)
{
        return hyb_bus_call_builtin(bus, method, json, ret, reterr);
}

/* ---------------------------------------------------------------- callee side */

static void req_unlink(hyb_bus_request *req)
{
        hyb_bus *bus = req->bus;

        if (!req->linked)
                return;
        if (req->prev)
                req->prev->next = req->next;
        else
                bus->deferred = req->next;
        if (req->next)
                req->next->prev = req->prev;
        req->linked = false;
}

/* The request's channel no longer counts it as pending. */
static void req_chan_done(hyb_bus_request *req)
{
        if (req->chan_counted) {
                req->chan_counted = false;
                bus_chan_request_done(req->chan);
        }
}

static int req_send(hyb_bus_request *req, int status, const char *msg, const void *body, size_t len,
                    unsigned flags)
{
        wire_hdr h = { .type = WIRE_RESULT, .flags = (uint8_t)(flags & WIRE_F_BINARY),
                       .status = (uint16_t)status, .call_id = req->id };
        size_t ml = msg ? strlen(msg) : 0;

        if (req->answered)
                return -EALREADY;
        if (req->cancelled)
                return HYB_E_GONE;
        if (status < 100 || status > 599)
                return -EINVAL;
        if (ml > WIRE_MEMBER_MAX)
                ml = WIRE_MEMBER_MAX;
        if (len > req->bus->max_body) {
                /* Tell the caller instead of leaving it to time out. */
                req_send(req, 413, "result larger than max_body", NULL, 0, 0);
                return HYB_E_TOO_LARGE;
        }
        req->answered = true;
        req_unlink(req);
        if (req->chan) {
                /* over the channel it came on: from = our name; dropped if it is gone */
                int r = 0;
                if (req->chan->fd >= 0)
                        r = bus_chan_send(req->chan, &h, req->bus->name, req->bus->name_len, msg,
                                          ml, body, len);
                req_chan_done(req);
                return r;
        }
        return bus_send(req->bus, &h, NULL, 0, msg, ml, body, len);
}

HYB_EXPORT int hyb_bus_request_reply(hyb_bus_request *req, int status, const void *body, size_t len,
                                     unsigned flags)
{
        hyb_assert_return(req && (body || len == 0), -EINVAL);
        return req_send(req, status, NULL, body, len, flags);
}

HYB_EXPORT int hyb_bus_request_reply_error(hyb_bus_request *req, int status, const char *message)
{
        hyb_assert_return(req, -EINVAL);
        return req_send(req, status, message, NULL, 0, 0);
}

static void bus_request_free(hyb_bus_request *req)
{
        if (!req->answered && !req->cancelled && !req->bus->closed)
                req_send(req, 500, "request dropped without a reply", NULL, 0, 0);
        req_unlink(req);
        req_chan_done(req);
        if (req->chan)
                bus_chan_unref(req->chan);
        hyb_bus_unref(req->bus);
        free(req);
}

HYB_DEFINE_REF_UNREF(hyb_bus_request, hyb_bus_request, bus_request_free)

HYB_EXPORT hyb_bus *hyb_bus_request_get_bus(const hyb_bus_request *req)
{
        return req ? req->bus : NULL;
}

HYB_EXPORT const char *hyb_bus_request_get_caller(const hyb_bus_request *req)
{
        return req ? req->caller : NULL;
}

HYB_EXPORT int hyb_bus_request_get_caller_uid(const hyb_bus_request *req, uid_t *ret_uid)
{
        hyb_assert_return(req && ret_uid, -EINVAL);
        *ret_uid = (uid_t)req->caller_uid;
        return 0;
}

HYB_EXPORT int hyb_bus_request_get_caller_principal(const hyb_bus_request *req,
                                                   const char **ret_transport,
                                                   const char **ret_principal)
{
        hyb_assert_return(req, -EINVAL);
        if (ret_transport)
                *ret_transport = req->transport ? req->transport : "unix";
        if (ret_principal)
                *ret_principal = req->principal && req->principal[0] ? req->principal : NULL;
        return 0;
}

HYB_EXPORT const char *hyb_bus_request_get_method(const hyb_bus_request *req)
{
        return req ? req->method : NULL;
}

HYB_EXPORT const void *hyb_bus_request_get_body(const hyb_bus_request *req, size_t *ret_len)
{
        if (!req)
                return NULL;
        if (ret_len)
                *ret_len = req->body_len;
        return req->body;
}

HYB_EXPORT bool hyb_bus_request_is_binary(const hyb_bus_request *req)
{
        return req && (req->flags & WIRE_F_BINARY);
}

HYB_EXPORT uint32_t hyb_bus_request_get_time_left_ms(const hyb_bus_request *req)
{
        uint64_t now = hyb_now_usec();
        if (!req || req->deadline_us <= now)
                return 0;
        return (uint32_t)((req->deadline_us - now) / 1000u);
}

HYB_EXPORT bool hyb_bus_request_is_cancelled(const hyb_bus_request *req)
{
        return req && req->cancelled;
}

HYB_EXPORT void hyb_bus_request_set_cancel_handler(hyb_bus_request *req, hyb_bus_cancel_fn cb,
                                                   void *userdata)
{
        if (!req)
                return;
        req->cancel_cb = cb;
        req->cancel_ud = userdata;
}

static hyb_bus_request *req_new(hyb_bus *bus, const wire_packet *p)
{
        size_t fl = p->h.from_len, ml = p->h.member_len, bl = p->h.body_len;
        size_t il = p->h.info_len;
        hyb_bus_request *req = malloc(sizeof *req + fl + ml + bl + 4);
        char *s;

        if (!req)
                return NULL;
        memset(req, 0, sizeof *req);
        req->n_ref = 1;
        req->bus = hyb_bus_ref(bus);
        req->id = p->h.call_id;
        req->flags = p->h.flags & WIRE_F_BINARY;
        req->deadline_us = hyb_now_usec() + (uint64_t)p->h.timeout_ms * 1000u;
        s = (char *)(req + 1);
        /* from: the name, then the caller info "<transport>\0<principal>" (info_len bytes) */
        memcpy(s, p->from, fl - il);
        s[fl - il] = 0;
        req->caller = s;
        req->caller_uid = p->h.aux;
        s += fl - il + 1;
        if (il) {
                const char *nul = memchr(p->from + fl - il, 0, il);
                size_t tl = nul ? (size_t)(nul - (p->from + fl - il)) : il;

                memcpy(s, p->from + fl - il, il);
                s[il] = 0;
                req->transport = s;
                req->principal = nul ? s + tl + 1 : NULL;
                s += il + 1;
        }
        memcpy(s, p->member, ml);
        s[ml] = 0;
        req->method = s;
        s += ml + 1;
        if (bl)
                memcpy(s, p->body, bl);
        s[bl] = 0;
        req->body = (const uint8_t *)s;
        req->body_len = bl;
        /* Linked from the start so a cancel reaches a handler blocked in a nested call. */
        req->next = bus->deferred;
        if (req->next)
                req->next->prev = req;
        bus->deferred = req;
        req->linked = true;
        return req;
}

static void dispatch_call(hyb_bus *bus, bus_chan *ch, const wire_packet *p)
{
        hyb_error err;
        hyb_bus_request *req;
        bus_method *m;
        int r;

        req = req_new(bus, p);
        if (!req)
                return; /* the broker's deadline answers the caller */
        if (ch) {
                req->chan = bus_chan_ref(ch);
                /* The broker's checks, made when the channel opened, hold per call */
                bool listed = false;
                for (size_t i = 0; i < ch->n_methods && !listed; i++)
                        listed = strlen(ch->methods[i]) == p->h.member_len &&
                                 strncasecmp(ch->methods[i], p->member, p->h.member_len) == 0;
                if (ch->closing) {
                        /* closed by the broker: nothing new runs on it (see chan_closing) */
                        char msg[160];
                        snprintf(msg, sizeof msg, "direct channel closed: %s", ch->reason);
                        req_send(req, 403, msg, NULL, 0, 0);
                        goto out;
                }
                if (!listed && !bus_find_method(bus, p->member, p->h.member_len)) {
                        /* not (or no longer) offered at all: as the broker path says */
                        req_send(req, 404, "no such method", NULL, 0, 0);
                        goto out;
                }
                if (!listed) {
                        req_send(req, 403, "method not open to the caller on this direct channel",
                                 NULL, 0, 0);
                        goto out;
                }
                if (ch->n_pending >= ch->max_pending) {
                        req_send(req, 429, "quota max_pending_calls exceeded on the direct channel",
                                 NULL, 0, 0);
                        goto out;
                }
                if (bus_chan_uid_full(bus, ch)) {
                        /* one uid's many connections, each with a channel: bounded as the
                         * broker bounds the calls it routes for one uid */
                        req_send(req, 429,
                                 "quota uid_max_pending_calls exceeded on direct channels",
                                 NULL, 0, 0);
                        goto out;
                }
                req->chan_counted = true;
                ch->n_pending++;
        }
        /* Names arrive with a length: one hiding a NUL byte would reach the handler cut short. */
        if (memchr(p->from, 0, p->h.from_len - p->h.info_len) ||
            (p->h.info_len && (!req->principal || req->transport[0] == 0 ||
                               strlen(req->principal) != (size_t)(p->h.info_len - strlen(req->transport) - 1)))) {
                req_send(req, 406, "malformed caller name", NULL, 0, 0);
                goto out;
        }
        m = bus_find_method(bus, p->member, p->h.member_len);
        if (!m) {
                if (bus_name_check_ident(p->member, p->h.member_len, NULL) < 0)
                        req_send(req, 406, "malformed method name", NULL, 0, 0);
                else
                        req_send(req, 404, "no such method", NULL, 0, 0);
                goto out;
        }
        if (m->n_args > 0 || (req->flags & WIRE_F_BINARY)) {
                if (req->flags & WIRE_F_BINARY) {
                        if (!(m->flags & HYB_METHOD_BINARY) && m->n_args > 0) {
                                req_send(req, 400, "binary params not accepted", NULL, 0, 0);
                                goto out;
                        }
                } else if (bus_policy_check(m->args, m->n_args, req->body, req->body_len, &err) < 0) {
                        req_send(req, 400, err.message, NULL, 0, 0);
                        goto out;
                }
        }
        r = m->handler(req, m->slot.userdata);
        if (!req->answered && !req->cancelled && req->n_ref == 1) {
                if (r < 0)
                        req_send(req, hyb_err_to_status(r), hyb_strerror(r), NULL, 0, 0);
                else
                        req_send(req, 200, NULL, NULL, 0, 0);
        }
out:
        hyb_bus_request_unref(req);
}

void bus_dispatch_call(hyb_bus *bus, const wire_packet *p)
{
        dispatch_call(bus, NULL, p);
}

void bus_dispatch_call_chan(hyb_bus *bus, bus_chan *ch, const wire_packet *p)
{
        dispatch_call(bus, ch, p);
}

void bus_dispatch_cancel(hyb_bus *bus, bus_chan *ch, const wire_packet *p)
{
        hyb_bus_request *req;

        /* ids are the caller's: the broker's CANCEL matches broker calls only, a channel's
         * the calls read on that channel */
        for (req = bus->deferred; req; req = req->next)
                if (req->id == p->h.call_id && req->chan == ch)
                        break;
        if (!req || req->answered || req->cancelled)
                return;
        req->cancelled = true;
        req_unlink(req);
        req_chan_done(req);
        if (req->cancel_cb) {
                hyb_bus_request_ref(req);
                req->cancel_cb(req, req->cancel_ud);
                hyb_bus_request_unref(req);
        }
}
