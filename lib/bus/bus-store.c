/* SPDX-License-Identifier: MIT */
/*
 * The client side of the daemon's store (doc/protocol.md "Store"): calls to the
 * builtin endpoint's store methods with binary bodies in the exact text form,
 * and local dispatch of the store messages the broker sends.
 *
 *   hyb_bus
 *    `- ssubs: bus_ssub -> bus_ssub ...   (our id, echoed by the broker as the
 *                                          message's call_id)
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

#include "bus-internal.h"
#include "common/util.h"
#include "hybrid/bus-store.h"

static const char store_member[] = "store";

typedef struct bus_ssub {
        hyb_slot slot;
        hyb_bus *bus;
        struct bus_ssub *next;
        uint64_t id;
        hyb_store_msg_fn fn;
} bus_ssub;

/* The store's code travels in the body of an error reply (decimal); else the status's. */
static int reply_code(const hyb_bus_reply *reply, hyb_error *reterr)
{
        int r = hyb_err_from_status(reply->status);
        char buf[24], *end;
        long v;

        if (r >= 0)
                return 0;
        if (reply->body_len > 0 && reply->body_len < sizeof buf) {
                memcpy(buf, reply->body, reply->body_len);
                buf[reply->body_len] = 0;
                errno = 0;
                v = strtol(buf, &end, 10);
                if (!errno && !*end && v < 0 && v > INT32_MIN)
                        r = (int)v;
        }
        return err_set(reterr, r, -1, "%s", reply->message[0] ? reply->message : hyb_strerror(r));
}

/* A 200 answer whose body is not wanted (a write's): nothing to keep of it. */
static int sink_none(const void *body, size_t len, void *ud)
{
        return 0;
}

typedef struct obj_sink {
        hyb_obj **ret;
        hyb_error *reterr;
} obj_sink;

/* A node read's 200 answer: the value's exact text, parsed where it was read. */
static int sink_obj(const void *body, size_t len, void *ud)
{
        obj_sink *o = ud;

        return hyb_obj_parse((const char *)body, len, o->ret, o->reterr) < 0 ? HYB_E_PROTOCOL : 0;
}

/* A call to the daemon's store.  ret NULL: a 200 answer is not kept (no reply is made of it).
 * ret_obj (with ret NULL): a 200 answer's body is parsed into *ret_obj where it was read, and
 * HYB_E_PROTOCOL returned when it does not parse.  Else *ret gets a 200 answer. */
static int store_call_into(hyb_bus *bus, const char *method, const void *body, size_t len,
                           hyb_bus_reply **ret, hyb_obj **ret_obj, hyb_error *reterr)
{
        hyb_bus_reply *reply = NULL;
        obj_sink os = { ret_obj, reterr };
        int (*sink)(const void *, size_t, void *) = ret ? NULL : ret_obj ? sink_obj : sink_none;
        int r;

        r = bus_call_sync_sink(bus, HYB_BUS_BUILTIN_ENDPOINT, method, body, len,
                               HYB_BODY_BINARY | BUS_CALL_BUILTIN, 0, sink, &os, &reply, reterr);
        if (r < 0 || !reply)
                return r; /* a local failure, or the answer went to sink */
        r = reply_code(reply, reterr);
        if (r >= 0 && sink) /* a 200 as a reply after all (not from the broker) */
                r = sink(reply->body, reply->body_len, &os);
        if (r < 0 || !ret)
                hyb_bus_reply_unref(reply);
        else
                *ret = reply;
        return r;
}

static int store_call(hyb_bus *bus, const char *method, const void *body, size_t len,
                      hyb_bus_reply **ret, hyb_error *reterr)
{
        return store_call_into(bus, method, body, len, ret, NULL, reterr);
}

static int read_whole(hyb_bus *bus, const char *furi, unsigned flags, hyb_obj **ret,
                      hyb_error *reterr)
{
        return store_call_into(bus, (flags & HYB_READ_KEYED) ? "storeReadKeyed" : "storeRead",
                               furi, strlen(furi), NULL, ret, reterr);
}

typedef struct paged {
        hyb_obj **keys, **vals;
        size_t n, alloc_k, alloc_v;
} paged;

/* Appends the items of one page ([items=>[fURI=>value,...], next=>/cursor]) to pg; *ret_next
 * gets the cursor's text (malloc'd) when more follow, else NULL. */
static int page_take(paged *pg, const hyb_obj *page, char **ret_next)
{
        const hyb_obj *items = NULL, *next = NULL;

        *ret_next = NULL;
        if (hyb_obj_get_kind(page) != HYB_OBJ_REC)
                return HYB_E_PROTOCOL;
        for (size_t i = 0; i < hyb_obj_get_len(page); i++) {
                const hyb_obj *k = hyb_obj_get_rec_key(page, i);
                const char *s = hyb_obj_get_kind(k) == HYB_OBJ_STR ? hyb_obj_get_str(k, NULL) : "";

                if (strcmp(s, "items") == 0)
                        items = hyb_obj_get_rec_value(page, i);
                else if (strcmp(s, "next") == 0)
                        next = hyb_obj_get_rec_value(page, i);
        }
        if (!items || hyb_obj_get_kind(items) != HYB_OBJ_REC ||
            (next && hyb_obj_get_kind(next) != HYB_OBJ_URI))
                return HYB_E_PROTOCOL;
        for (size_t i = 0; i < hyb_obj_get_len(items); i++) {
                if (grow_array((void **)&pg->keys, &pg->alloc_k, pg->n + 1, sizeof(hyb_obj *)) < 0 ||
                    grow_array((void **)&pg->vals, &pg->alloc_v, pg->n + 1, sizeof(hyb_obj *)) < 0)
                        return -ENOMEM;
                pg->keys[pg->n] = hyb_obj_ref((hyb_obj *)hyb_obj_get_rec_key(items, i));
                pg->vals[pg->n++] = hyb_obj_ref((hyb_obj *)hyb_obj_get_rec_value(items, i));
        }
        if (next) {
                *ret_next = strdup(hyb_furi_get_str(hyb_obj_get_uri(next)));
                if (!*ret_next)
                        return -ENOMEM;
        }
        return 0;
}

/*
 * A pattern or branch read through storeReadPage, page after page (the daemon walks at most
 * store.limits.max_read_keys matches per call, so other peers are served between pages):
 * the same answer a storeRead gives, for any number of matches.  A daemon without
 * storeReadPage (404 on the first page) is read with one storeRead.
 */
static int read_paged(hyb_bus *bus, const char *furi, unsigned flags, bool branch, hyb_obj **ret,
                      hyb_error *reterr)
{
        paged pg = { 0 };
        char *cursor = NULL;
        int r = 0;

        for (bool first = true; r >= 0; first = false) {
                hyb_bus_reply *reply = NULL;
                hyb_obj *page = NULL;
                json_t *req = json_pack("{s:s}", "furi", furi);
                char *body, *next = NULL;

                if (req && cursor)
                        json_object_set_new(req, "cursor", json_string(cursor));
                body = req ? json_dumps(req, JSON_COMPACT) : NULL;
                json_decref(req);
                if (!body) {
                        r = -ENOMEM;
                        break;
                }
                r = store_call(bus, "storeReadPage", body, strlen(body), &reply, reterr);
                free(body);
                if (r < 0) {
                        if (first && r == hyb_err_from_status(404)) {
                                hyb_error_clear(reterr);
                                r = 1; /* an older daemon */
                        }
                        break;
                }
                if (hyb_obj_parse((const char *)reply->body, reply->body_len, &page, NULL) < 0)
                        r = err_set(reterr, HYB_E_PROTOCOL, -1, "storeReadPage: not a page");
                else
                        r = page_take(&pg, page, &next);
                hyb_obj_unref(page);
                hyb_bus_reply_unref(reply);
                /* a cursor that does not move would page forever */
                if (r >= 0 && next && cursor && strcmp(next, cursor) == 0)
                        r = err_set(reterr, HYB_E_PROTOCOL, -1, "storeReadPage: the cursor did not move");
                free(cursor);
                cursor = next;
                if (r < 0 || !cursor)
                        break;
        }
        free(cursor);
        if (r == 1)
                r = read_whole(bus, furi, flags, ret, reterr);
        else if (r >= 0 && (branch || (flags & HYB_READ_KEYED)))
                r = hyb_obj_new_rec(pg.keys, pg.vals, pg.n, ret);
        else if (r >= 0)
                r = hyb_obj_new_objs(pg.vals, pg.n, ret);
        for (size_t i = 0; i < pg.n; i++) {
                hyb_obj_unref(pg.keys[i]);
                hyb_obj_unref(pg.vals[i]);
        }
        free(pg.keys);
        free(pg.vals);
        return r;
}

/* Can the text be a pattern or a branch?  A pattern has a `+` or `#` (a segment, host or
 * scheme), a branch a `/` at the end of its path (at the end of the text, or before a query)
 * or a last segment `.` or `..` ("/a/b/.." is the branch "/a/").  Text without any of these
 * is a node (or no fURI at all) without parsing it. */
static bool maybe_many(const char *furi)
{
        size_t n = strcspn(furi, "+#?");
        const char *last;

        if (furi[n] != '\0' || (n > 0 && furi[n - 1] == '/'))
                return true;
        last = strrchr(furi, '/');
        last = last ? last + 1 : furi;
        return strcmp(last, ".") == 0 || strcmp(last, "..") == 0;
}

int bus_store_read_flags(hyb_bus *bus, const char *furi, unsigned flags, hyb_obj **ret,
                         hyb_error *reterr)
{
        hyb_furi *f = NULL;
        bool many, branch;

        /* A node is one value: one call.  Patterns and branches are read in pages. */
        if (!maybe_many(furi))
                return read_whole(bus, furi, flags, ret, reterr);
        if (hyb_furi_parse(furi, (size_t)-1, NULL, &f, NULL) < 0)
                return read_whole(bus, furi, flags, ret, reterr); /* the daemon says why */
        branch = hyb_furi_is_branch(f);
        many = branch || hyb_furi_is_pattern(f);
        hyb_furi_unref(f);
        if (!many)
                return read_whole(bus, furi, flags, ret, reterr);
        return read_paged(bus, furi, flags, branch, ret, reterr);
}

HYB_EXPORT int hyb_bus_store_read(hyb_bus *bus, const char *furi, hyb_obj **ret, hyb_error *reterr)
{
        hyb_assert_return(bus && furi && ret, -EINVAL);
        return bus_store_read_flags(bus, furi, 0, ret, reterr);
}

HYB_EXPORT int hyb_bus_store_write(hyb_bus *bus, const char *furi, const hyb_obj *value,
                                   unsigned flags, hyb_error *reterr)
{
        char *text = NULL, *body, stack[512];
        size_t fl, tl;
        int r;

        hyb_assert_return(bus && furi && value && !(flags & ~HYB_WRITE_TRANSIENT), -EINVAL);
        r = hyb_obj_format(value, HYB_FORMAT_EXACT, &text);
        if (r < 0)
                return r;
        fl = strlen(furi);
        tl = strlen(text);
        /* The usual small write is put together on the stack: one allocation less a put. */
        body = fl + 1 + tl <= sizeof stack ? stack : malloc(fl + 1 + tl);
        if (!body) {
                hyb_free(text);
                return -ENOMEM;
        }
        memcpy(body, furi, fl);
        body[fl] = '\n';
        memcpy(body + fl + 1, text, tl);
        hyb_free(text);
        r = store_call(bus, (flags & HYB_WRITE_TRANSIENT) ? "storePublish" : "storeWrite", body,
                       fl + 1 + tl, NULL, reterr);
        if (body != stack)
                free(body);
        return r;
}

HYB_EXPORT int hyb_bus_store_delete(hyb_bus *bus, const char *furi, hyb_error *reterr)
{
        hyb_assert_return(bus && furi, -EINVAL);
        return store_call(bus, "storeDelete", furi, strlen(furi), NULL, reterr);
}

/* ---------------------------------------------------------------- subscriptions */

static void noop_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *ud)
{
}

static void ssub_unlink(bus_ssub *s)
{
        for (bus_ssub **pp = &s->bus->ssubs; *pp; pp = &(*pp)->next)
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
}

static void ssub_slot_disconnect(hyb_slot *slot)
{
        bus_ssub *s = (bus_ssub *)slot;
        hyb_bus *bus = s->bus;

        if (bus) {
                char buf[24];
                int n = snprintf(buf, sizeof buf, "%" PRIu64, s->id);

                ssub_unlink(s);
                /* A slot destructor must not block: fire and forget. */
                if (!bus->closed)
                        hyb_bus_call_async(bus, HYB_BUS_BUILTIN_ENDPOINT, "storeUnsubscribe", buf,
                                           (size_t)n, HYB_BODY_BINARY, 0, noop_reply, NULL, NULL);
        }
        free(s);
}

static const slot_ops ssub_slot_ops = { .disconnect = ssub_slot_disconnect, .can_float = true };

HYB_EXPORT int hyb_bus_store_subscribe(hyb_bus *bus, const char *pattern, unsigned flags,
                                       hyb_store_msg_fn fn, void *userdata, hyb_slot **ret_slot,
                                       hyb_error *reterr)
{
        bus_ssub *s;
        char *body;
        int n, r;

        hyb_assert_return(bus && pattern && fn && !(flags & ~HYB_SUBSCRIBE_REPLAY), -EINVAL);
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->id = ++bus->next_ssub;
        n = asprintf(&body, "%" PRIu64 " %u %s", s->id, flags & HYB_SUBSCRIBE_REPLAY ? 1u : 0u,
                     pattern);
        if (n < 0) {
                free(s);
                return -ENOMEM;
        }
        /* Linked first: the replay may follow the acknowledgement in the same read. */
        s->bus = bus;
        s->fn = fn;
        s->next = bus->ssubs;
        bus->ssubs = s;
        if (ret_slot)
                slot_init(&s->slot, &ssub_slot_ops, userdata);
        else
                slot_init_floating(&s->slot, &ssub_slot_ops, userdata);
        r = store_call(bus, "storeSubscribe", body, (size_t)n, NULL, reterr);
        free(body);
        if (r < 0) {
                ssub_unlink(s);
                free(s);
                return r;
        }
        if (ret_slot)
                *ret_slot = &s->slot;
        return 0;
}

bool bus_store_is_msg(const wire_packet *p)
{
        return p->h.member_len == sizeof store_member - 1 &&
               memcmp(p->member, store_member, sizeof store_member - 1) == 0 &&
               p->h.from_len == sizeof HYB_BUS_BUILTIN_ENDPOINT - 1 &&
               memcmp(p->from, HYB_BUS_BUILTIN_ENDPOINT, p->h.from_len) == 0;
}

void bus_store_dispatch(hyb_bus *bus, const wire_packet *p)
{
        const char *body = (const char *)p->body, *nl;
        size_t len = p->h.body_len;
        hyb_furi *f = NULL;
        hyb_obj *v = NULL;
        bus_ssub *s;

        for (s = bus->ssubs; s; s = s->next)
                if (s->id == p->h.call_id)
                        break;
        if (!s)
                return; /* unsubscribed meanwhile */
        nl = memchr(body, '\n', len);
        if (!nl || hyb_furi_parse(body, (size_t)(nl - body), NULL, &f, NULL) < 0)
                return;
        if (hyb_obj_parse(nl + 1, len - (size_t)(nl + 1 - body), &v, NULL) < 0) {
                hyb_furi_unref(f);
                return;
        }
        /* Hold s so a callback unsubscribing it cannot free it under us. */
        hyb_bus_ref(bus);
        hyb_slot_ref(&s->slot);
        s->fn(f, v, p->h.status == 200, s->slot.userdata);
        hyb_slot_unref(&s->slot);
        hyb_bus_unref(bus);
        hyb_obj_unref(v);
        hyb_furi_unref(f);
}

void bus_store_free_all(hyb_bus *bus)
{
        for (bus_ssub *s = bus->ssubs, *n; s; s = n) {
                n = s->next;
                s->bus = NULL;
                slot_drop_floating(&s->slot);
        }
        bus->ssubs = NULL;
}
