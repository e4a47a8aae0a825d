/* SPDX-License-Identifier: MIT */
/*
 * Registrations through the builtin endpoint (procedures, bubbles,
 * subscriptions, monitor) and local dispatch of events and monitor records.
 * The broker sends an event once per connection; here it fans out to every
 * local subscription whose globs match.
 */
#include <jansson.h>

#include "acl.h"
#include "bus-internal.h"
#include "names.h"
#include "common/util.h"

static void noop_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *ud)
{
}

/* Fire-and-forget builtin call (used from slot destructors: they must not block). */
static void builtin_async(hyb_bus *bus, const char *method, json_t *params)
{
        char *text = json_dumps(params, JSON_COMPACT);
        json_decref(params);
        if (!text)
                return;
        if (bus && !bus->closed)
                hyb_bus_call_async(bus, HYB_BUS_BUILTIN_ENDPOINT, method, text, strlen(text), 0, 0,
                                   noop_reply, NULL, NULL);
        free(text);
}

static int builtin_json(hyb_bus *bus, const char *method, json_t *params, hyb_bus_reply **ret,
                        hyb_error *reterr)
{
        char *text = params ? json_dumps(params, JSON_COMPACT) : NULL;
        json_decref(params);
        if (!text)
                return -ENOMEM;
        int r = bus_builtin(bus, method, text, ret, reterr);
        free(text);
        return r;
}

/* ---------------------------------------------------------------- procedures */

int bus_method_register(hyb_bus *bus, bus_method *m, const char *for_host, const char *for_app,
                        hyb_error *reterr)
{
        json_t *policy = bus_policy_json(m->args, m->n_args);
        json_t *j = json_pack("{s:s, s:s, s:s, s:o}", "methodName", m->name, "forHost",
                              for_host ? for_host : "*", "forApp", for_app ? for_app : "*", "policy",
                              policy ? policy : json_array());
        int r;

        if (!j)
                return -ENOMEM;
        r = builtin_json(bus, "registerProcedure", j, NULL, reterr);
        if (r < 0)
                return r;
        m->registered = true;
        m->next = bus->methods;
        bus->methods = m;
        return 0;
}

void bus_method_revoke(bus_method *m)
{
        hyb_bus *bus = m->bus;

        if (bus) {
                for (bus_method **pp = &bus->methods; *pp; pp = &(*pp)->next)
                        if (*pp == m) {
                                *pp = m->next;
                                break;
                        }
                bus_chan_method_revoked(bus, m->name);
                if (m->registered)
                        builtin_async(bus, "revokeProcedure", json_pack("{s:s}", "methodName", m->name));
        }
        free(m->name);
        free(m->args);
        free(m);
}

static void method_slot_disconnect(hyb_slot *slot)
{
        bus_method_revoke((bus_method *)slot);
}

const slot_ops bus_method_slot_ops = { .disconnect = method_slot_disconnect, .can_float = true };

HYB_EXPORT int hyb_bus_register_procedure(hyb_bus *bus, const char *method, const char *for_host,
                                          const char *for_app, hyb_bus_method_fn handler,
                                          void *userdata, hyb_slot **ret_slot, hyb_error *reterr)
{
        return hyb_endpoint_register_method(bus, method, NULL, 0, for_host, for_app, 0, handler, userdata,
                                       ret_slot, reterr);
}

/* ---------------------------------------------------------------- bubbles */

static void bubble_slot_disconnect(hyb_slot *slot)
{
        bus_bubble *b = (bus_bubble *)slot;
        builtin_async(b->bus, "revokeEvent", json_pack("{s:s}", "bubbleName", b->name));
        hyb_bus_unref(b->bus);
        free(b->name);
        free(b);
}

static const slot_ops bubble_slot_ops = { .disconnect = bubble_slot_disconnect };

HYB_EXPORT int hyb_bus_register_event(hyb_bus *bus, const char *bubble, const char *for_host,
                                      const char *for_app, hyb_slot **ret_slot, hyb_error *reterr)
{
        return hyb_bus_register_event_flags(bus, bubble, for_host, for_app, 0, ret_slot, reterr);
}

HYB_EXPORT int hyb_bus_register_event_flags(hyb_bus *bus, const char *bubble, const char *for_host,
                                            const char *for_app, unsigned flags, hyb_slot **ret_slot,
                                            hyb_error *reterr)
{
        bus_bubble *b;
        int r;

        hyb_assert_return(bus && bubble && !(flags & ~HYB_EVENT_CLUSTER), -EINVAL);
        r = bus_name_check_ident(bubble, strlen(bubble), reterr);
        if (r < 0)
                return r;
        json_t *j = json_pack("{s:s, s:s, s:s}", "bubbleName", bubble, "forHost", for_host ? for_host : "*",
                              "forApp", for_app ? for_app : "*");
        if (j && (flags & HYB_EVENT_CLUSTER) && json_object_set_new(j, "cluster", json_true()) < 0)
                j = (json_decref(j), NULL);
        if (!j)
                return -ENOMEM;
        r = builtin_json(bus, "registerEvent", j, NULL, reterr);
        if (r < 0)
                return r;
        if (!ret_slot)
                return 0; /* lives as long as the connection */
        b = calloc(1, sizeof *b);
        if (!b || !(b->name = strdup(bubble))) {
                free(b);
                return -ENOMEM;
        }
        slot_init(&b->slot, &bubble_slot_ops, NULL);
        b->bus = hyb_bus_ref(bus);
        *ret_slot = &b->slot;
        return 0;
}

HYB_EXPORT int hyb_bus_fire(hyb_bus *bus, const char *bubble, const void *body, size_t len,
                            unsigned flags, uint32_t *ret_delivered, uint32_t *ret_failed)
{
        wire_hdr h = { .type = WIRE_EVENT, .flags = (uint8_t)(flags & WIRE_F_BINARY) };
        bus_call c = { .bus = bus };
        json_int_t d = 0, f = 0;
        int r;

        hyb_assert_return(bus && bubble && (body || len == 0), -EINVAL);
        if (strlen(bubble) > BUS_IDENT_MAX)
                return HYB_E_NOT_ACCEPTABLE;
        if (!ret_delivered && !ret_failed)
                return bus_send(bus, &h, NULL, 0, bubble, strlen(bubble), body, len);

        /* With counts: a round trip like a call, answered by the broker. */
        h.flags |= WIRE_F_COUNTS;
        h.call_id = c.id = bus->next_id++;
        c.deadline_us = hyb_now_usec() + (uint64_t)HYB_BUS_DEFAULT_TIMEOUT_MS * 1000u;
        r = bus_call_link(bus, &c);
        if (r < 0)
                return r;
        hyb_bus_ref(bus); /* a callback run by the wait may drop the caller's last one */
        r = bus_send(bus, &h, NULL, 0, bubble, strlen(bubble), body, len);
        if (r >= 0)
                r = bus_wait_for(bus, &c.done, c.deadline_us);
        bus_call_unlink(&c);
        hyb_bus_unref(bus);
        if (!c.reply)
                return r < 0 ? r : HYB_E_CLOSED;
        r = hyb_err_from_status(c.reply->status);
        if (r == 0) {
                json_t *j = json_loadb((const char *)c.reply->body, c.reply->body_len, 0, NULL);
                if (!j || json_unpack(j, "{s:I, s:I}", "delivered", &d, "failed", &f) < 0 || d < 0 ||
                    f < 0 || d > UINT32_MAX || f > UINT32_MAX)
                        r = HYB_E_PROTOCOL;
                json_decref(j);
        }
        hyb_bus_reply_unref(c.reply);
        if (r < 0)
                return r;
        if (ret_delivered)
                *ret_delivered = (uint32_t)d;
        if (ret_failed)
                *ret_failed = (uint32_t)f;
        return 0;
}

/* ---------------------------------------------------------------- subscriptions */

HYB_EXPORT const char *hyb_bus_event_get_source(const hyb_bus_event *ev)
{
        return ev ? ev->source : NULL;
}

HYB_EXPORT const char *hyb_bus_event_get_bubble(const hyb_bus_event *ev)
{
        return ev ? ev->bubble : NULL;
}

HYB_EXPORT const void *hyb_bus_event_get_body(const hyb_bus_event *ev, size_t *ret_len)
{
        if (!ev)
                return NULL;
        if (ret_len)
                *ret_len = ev->body_len;
        return ev->body;
}

HYB_EXPORT bool hyb_bus_event_is_binary(const hyb_bus_event *ev)
{
        return ev && (ev->flags & WIRE_F_BINARY);
}

static void sub_slot_disconnect(hyb_slot *slot)
{
        bus_sub *s = (bus_sub *)slot;
        hyb_bus *bus = s->bus;

        if (bus) {
                for (bus_sub **pp = &bus->subs; *pp; pp = &(*pp)->next)
                        if (*pp == s) {
                                *pp = s->next;
                                break;
                        }
                builtin_async(bus, "unsubscribeEvent",
                              json_pack("{s:s, s:s}", "endpointName", s->endpoint, "bubbleName", s->bubble));
        }
        free(s->endpoint);
        free(s->bubble);
        free(s);
}

static const slot_ops sub_slot_ops = { .disconnect = sub_slot_disconnect, .can_float = true };

HYB_EXPORT int hyb_bus_subscribe(hyb_bus *bus, const char *endpoint_glob, const char *bubble_glob,
                                 hyb_bus_event_fn cb, void *userdata, hyb_slot **ret_slot,
                                 hyb_error *reterr)
{
        bus_sub *s;
        int r;

        hyb_assert_return(bus && endpoint_glob && bubble_glob && cb, -EINVAL);
        json_t *j = json_pack("{s:s, s:s}", "endpointName", endpoint_glob, "bubbleName", bubble_glob);
        if (!j)
                return -ENOMEM;
        s = calloc(1, sizeof *s);
        if (!s || !(s->endpoint = strdup(endpoint_glob)) || !(s->bubble = strdup(bubble_glob))) {
                if (s)
                        free(s->endpoint);
                free(s);
                json_decref(j);
                return -ENOMEM;
        }
        r = builtin_json(bus, "subscribeEvent", j, NULL, reterr);
        if (r < 0) {
                free(s->endpoint);
                free(s->bubble);
                free(s);
                return r;
        }
        if (ret_slot)
                slot_init(&s->slot, &sub_slot_ops, userdata);
        else
                slot_init_floating(&s->slot, &sub_slot_ops, userdata);
        s->bus = bus;
        s->cb = cb;
        s->registered = true;
        s->next = bus->subs;
        bus->subs = s;
        if (ret_slot)
                *ret_slot = &s->slot;
        return 0;
}

void bus_dispatch_event(hyb_bus *bus, const wire_packet *p)
{
        size_t fl = p->h.from_len, ml = p->h.member_len, bl = p->h.body_len;
        char *copy;
        hyb_bus_event ev;

        /* The callback gets C strings: names hiding a NUL byte would reach it cut short. */
        if (!bus->subs || memchr(p->from, 0, fl) || memchr(p->member, 0, ml))
                return;
        copy = malloc(fl + ml + bl + 3);
        if (!copy)
                return;
        memcpy(copy, p->from, fl);
        copy[fl] = 0;
        memcpy(copy + fl + 1, p->member, ml);
        copy[fl + 1 + ml] = 0;
        if (bl)
                memcpy(copy + fl + ml + 2, p->body, bl);
        copy[fl + ml + 2 + bl] = 0;
        ev = (hyb_bus_event){ .source = copy, .bubble = copy + fl + 1,
                              .body = (const uint8_t *)copy + fl + ml + 2, .body_len = bl,
                              .flags = p->h.flags & WIRE_F_BINARY };

        hyb_bus_ref(bus);
        for (bus_sub *s = bus->subs, *next; s; s = next) {
                bool match = bus_glob_match(s->endpoint, strlen(s->endpoint), ev.source, fl) &&
                             bus_glob_match(s->bubble, strlen(s->bubble), ev.bubble, ml);
                /* Hold s so a callback unsubscribing it cannot free it under us. */
                hyb_slot_ref(&s->slot);
                if (match)
                        s->cb(bus, &ev, s->slot.userdata);
                next = s->bus ? s->next : NULL;
                hyb_slot_unref(&s->slot);
        }
        hyb_bus_unref(bus);
        free(copy);
}

/* ---------------------------------------------------------------- monitor */

static void monitor_slot_disconnect(hyb_slot *slot)
{
        bus_monitor *m = (bus_monitor *)slot;
        hyb_bus *bus = m->bus;

        if (bus) {
                for (bus_monitor **pp = &bus->monitors; *pp; pp = &(*pp)->next)
                        if (*pp == m) {
                                *pp = m->next;
                                break;
                        }
                if (!bus->monitors)
                        builtin_async(bus, "monitor", json_pack("{s:b}", "enable", 0));
        }
        free(m);
}

static const slot_ops monitor_slot_ops = { .disconnect = monitor_slot_disconnect, .can_float = true };

HYB_EXPORT int hyb_bus_monitor(hyb_bus *bus, hyb_bus_monitor_fn cb, void *userdata,
                               hyb_slot **ret_slot, hyb_error *reterr)
{
        bus_monitor *m;
        int r;

        hyb_assert_return(bus && cb, -EINVAL);
        r = bus_builtin(bus, "monitor", "{\"enable\":true}", NULL, reterr);
        if (r < 0)
                return r;
        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        if (ret_slot)
                slot_init(&m->slot, &monitor_slot_ops, userdata);
        else
                slot_init_floating(&m->slot, &monitor_slot_ops, userdata);
        m->bus = bus;
        m->cb = cb;
        m->next = bus->monitors;
        bus->monitors = m;
        if (ret_slot)
                *ret_slot = &m->slot;
        return 0;
}

void bus_dispatch_monitor(hyb_bus *bus, const wire_packet *p)
{
        static const char *const kinds[] = { [WIRE_CALL] = "call", [WIRE_RESULT] = "result",
                                             [WIRE_CANCEL] = "cancel", [WIRE_EVENT] = "event" };
        size_t fl = p->h.from_len, tl = p->h.to_len, ml = p->h.member_len;
        char *names;

        if (!bus->monitors || p->h.aux >= ELEMENTSOF(kinds))
                return;
        names = malloc(fl + tl + ml + 3 + p->h.body_len);
        if (!names)
                return;
        memcpy(names, p->from, fl + tl + ml + p->h.body_len); /* contiguous on the wire */
        char *b = names + fl + tl + ml;
        memmove(names + fl + tl + ml + 3, b, p->h.body_len);
        memmove(names + fl + tl + 2, names + fl + tl, ml);
        names[fl + tl + 2 + ml] = 0;
        memmove(names + fl + 1, names + fl, tl);
        names[fl + 1 + tl] = 0;
        names[fl] = 0;
        hyb_bus_monitor_record rec = {
                .size = sizeof(hyb_bus_monitor_record), .kind = kinds[p->h.aux], .from = names, .to = names + fl + 1,
                .member = names + fl + tl + 2, .call_id = p->h.call_id, .status = p->h.status,
                .flags = p->h.flags & WIRE_F_BINARY, .body = names + fl + tl + ml + 3,
                .body_len = p->h.body_len,
        };
        hyb_bus_ref(bus);
        for (bus_monitor *m = bus->monitors, *next; m; m = next) {
                hyb_slot_ref(&m->slot);
                m->cb(bus, &rec, m->slot.userdata);
                next = m->bus ? m->next : NULL;
                hyb_slot_unref(&m->slot);
        }
        hyb_bus_unref(bus);
        free(names);
}
