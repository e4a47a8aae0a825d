/* SPDX-License-Identifier: MIT */
/*
 * The host store served on the bus (doc/protocol.md "Store"): the store calls of
 * the builtin endpoint, policy.store, the per-connection and per-uid bounds on
 * store subscriptions, and the messages those subscriptions deliver.
 *
 *   hyb_broker
 *    |- store          the host store (referenced), its fd watched by store_ev
 *    |- acl[]          policy.store rules with their fURI patterns parsed once
 *    `- fmt[]          texts of values lately read or delivered, by obj: a value
 *                      read again, or one write fanned out, is formatted once
 *   bconn
 *    `- ssubs: bssub -> bssub ...   (client id, store slot; dropped with the conn)
 *
 * Bodies are the exact text form of objs (HYB_FORMAT_EXACT), binary frames, never
 * JSON.  A value a peer writes is parsed once (validated, and kept if retained); the
 * messages that carry it to subscribers reuse the bytes received (fwd[]: the obj and
 * its received text, while the store may still deliver it), so a forwarded value is
 * never formatted again.  Only what the broker makes itself is formatted: reads,
 * replays, the polys of in-place writes, the children of a branch write.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "broker-internal.h"
#include "bus/acl.h"
#include "common/util.h"
#include "hybrid/store.h"
#include "obj/obj-internal.h" /* obj_format_to into a cache slot's buffer */
#include "store/store-internal.h" /* store_kick_hold: a write's deliveries without the eventfd */

struct bstore_rule {
        const broker_store_rule *r;
        hyb_furi *pattern;
};

struct bssub {
        struct bssub *next;
        bconn *conn;
        uint64_t id;
        hyb_slot *slot;
        breplay rp;             /* its replay in pages (replay.c), and its messages meanwhile */
};

/* ---------------------------------------------------------------- access */

static bool rule_applies(const broker_store_rule *r, uid_t uid, const char *app)
{
        if (!r->any_uid && r->uid != uid)
                return false;
        return !r->app || bus_glob_match(r->app, strlen(r->app), app, strlen(app));
}

static int first_key(const hyb_furi *furi, const hyb_obj *value, void *ud)
{
        (void)value;
        *(hyb_furi **)ud = hyb_furi_ref((hyb_furi *)furi);
        return 1;
}

/*
 * A delete by pattern or branch whose first segment is a wildcard (`/#`, `/+/x`, the branch
 * `/`) would also delete what the store holds under a reserved first segment `seg` (/sys/,
 * /log/; a database file written by an embedded store may hold such keys): refused with 403
 * when it would reach one, as a delete naming /seg/ is.  Reached through the same pattern
 * with `seg` as its first segment.
 */
static int reserved_delete_reach(hyb_broker *b, const char *seg, const hyb_furi *f, hyb_error *e)
{
        const char *path = hyb_furi_get_path_str(f), *rest;
        hyb_furi *cand = NULL, *hit = NULL;
        char buf[4096];
        size_t pl;
        int n, r;

        if (!b->store || !path || path[0] != '/' ||
            (!hyb_furi_is_pattern(f) && !hyb_furi_is_branch(f)))
                return 0;
        pl = strlen(path);
        /* a branch `p/` deletes p's children: `p/+/#` */
        if (hyb_furi_is_branch(f) && pl && path[pl - 1] == '/')
                n = snprintf(buf, sizeof buf, "%.*s/+/#", (int)(pl - 1), path);
        else
                n = snprintf(buf, sizeof buf, "%s", path);
        if (n < 0 || (size_t)n >= sizeof buf)
                return 0;
        rest = strchr(buf + 1, '/');
        if (strncmp(buf, "/#", 2) == 0 && (!buf[2] || buf[2] == '/'))
                n = snprintf(buf, sizeof buf, "/%s/#", seg);
        else if (strncmp(buf, "/+", 2) == 0 && (!buf[2] || buf[2] == '/')) {
                char tmp[4096];
                n = snprintf(tmp, sizeof tmp, "/%s%s", seg, rest ? rest : "");
                if (n < 0 || (size_t)n >= sizeof tmp)
                        return 0;
                memcpy(buf, tmp, (size_t)n + 1);
        } else
                return 0; /* a literal first segment: /seg/ itself is refused by name */
        if (hyb_furi_parse(buf, (size_t)n, NULL, &cand, NULL) < 0)
                return 0;
        r = hyb_store_scan(b->store, cand, first_key, &hit, NULL);
        hyb_furi_unref(cand);
        if (r <= 0 || !hit)
                return 0;
        r = err_set(e, HYB_E_FORBIDDEN, -1, "%s is read-only: the delete of %s would reach it",
                    hyb_furi_get_str(hit), hyb_furi_get_str(f));
        hyb_furi_unref(hit);
        return r;
}

/* Is path `/seg` or under `/seg/`? */
static bool under(const char *path, const char *seg)
{
        size_t n = strlen(seg);

        return path[0] == '/' && strncmp(path + 1, seg, n) == 0 &&
               (path[n + 1] == '\0' || path[n + 1] == '/');
}

/* A system service's own app, connected over the Unix socket as the daemon's own uid or as
 * root.  A peer of another transport (a WebSocket peer, an edge session, a peer host of the
 * cluster) never is: those run as uid 65534, which may well be the daemon's own uid. */
static bool service_peer(const bconn *c, const char *service)
{
        return !c->transport && !c->remote && c->app && strcmp(c->app, service) == 0 &&
               (c->uid == 0 || c->uid == geteuid());
}

/* /sys/info/... is written by the sysinfo service (hybrid-sysinfo) alone.  Every other peer
 * is refused there as anywhere under /sys/. */
static bool sysinfo_writer(const bconn *c, const char *path)
{
        return strncmp(path, "/sys/info/", 10) == 0 && service_peer(c, "org.hybridos.sysinfo");
}

/* What a refusal calls the right: read, write, delete or subscribe. */
static const char *right_name(unsigned right)
{
        return right == BROKER_STORE_READ     ? "read"
               : right == BROKER_STORE_WRITE  ? "write"
               : right == BROKER_STORE_DELETE ? "delete"
                                              : "subscribe";
}

static unsigned token_action_of(unsigned right)
{
        return right == BROKER_STORE_READ     ? HYB_TOKEN_ACT_READ
               : right == BROKER_STORE_WRITE  ? HYB_TOKEN_ACT_WRITE
               : right == BROKER_STORE_DELETE ? HYB_TOKEN_ACT_DELETE
                                              : HYB_TOKEN_ACT_SUB;
}

int store_acl_check(hyb_broker *b, const bconn *c, unsigned right, const hyb_furi *f, hyb_error *e)
{
        const char *path = hyb_furi_get_path_str(f);
        uid_t uid = c->uid;
        const char *app = c->app;

        /* The kernel's own objects are read-only, whatever the policy (doc/config.md). */
        if ((right & (BROKER_STORE_WRITE | BROKER_STORE_DELETE)) && path &&
            under(path, "sys") &&
            !sysinfo_writer(c, path))
                return err_set(e, HYB_E_FORBIDDEN, -1, "%s is read-only", path);
        if ((right & BROKER_STORE_DELETE) && reserved_delete_reach(b, "sys", f, e) < 0)
                return HYB_E_FORBIDDEN;
        /* The log service's records (/log/<app>/<seq>) are written and deleted by hybrid-logd
         * alone, so a record read back at its restart is one it kept (doc/hybrid-logd.md). */
        if ((right & (BROKER_STORE_WRITE | BROKER_STORE_DELETE)) &&
            !service_peer(c, "org.hybridos.logd")) {
                if (path && under(path, "log"))
                        return err_set(e, HYB_E_FORBIDDEN, -1, "%s is written by hybrid-logd alone",
                                       path);
                if ((right & BROKER_STORE_DELETE) && reserved_delete_reach(b, "log", f, e) < 0)
                        return HYB_E_FORBIDDEN;
        }
        if (!c->tok && !b->c->store_policy)
                return 0;
        /* A branch `p/` reads what p matches, and writes or deletes p's children: the rules
         * are asked about p, or about p/+. */
        hyb_furi *asked = NULL;
        const char *text = hyb_furi_get_str(f);
        size_t tl = strlen(text);
        if (hyb_furi_is_branch(f) && tl > 1 && text[tl - 1] == '/') {
                char buf[4096];
                int n = snprintf(buf, sizeof buf, "%.*s%s", (int)(tl - 1), text,
                                 right == BROKER_STORE_READ ? "" : "/+");
                if (n > 0 && (size_t)n < sizeof buf)
                        (void)hyb_furi_parse(buf, (size_t)n, NULL, &asked, NULL);
        }
        bool allowed = false;
        if (c->tok) {
                /* A token session: the token's capabilities instead of policy.store (which
                 * is the uid policy); a pattern must lie within a granted pattern. */
                allowed = hyb_token_allowed(c->tok, asked ? asked : f, token_action_of(right));
                hyb_furi_unref(asked);
                if (allowed)
                        return 0;
                return err_set(e, HYB_E_FORBIDDEN, -1, "the token does not allow %s of %s",
                               right_name(right), text);
        }
        for (size_t i = 0; i < b->n_acl && !allowed; i++) {
                const struct bstore_rule *a = &b->acl[i];

                allowed = (a->r->rights & right) == right && rule_applies(a->r, uid, app) &&
                          hyb_furi_match(asked ? asked : f, a->pattern);
        }
        hyb_furi_unref(asked);
        if (allowed)
                return 0;
        return err_set(e, HYB_E_FORBIDDEN, -1, "policy.store denies %s of %s to uid %u app %s",
                       right_name(right), hyb_furi_get_str(f), (unsigned)uid, app);
}

void store_acl_free(struct bstore_rule *acl, size_t n)
{
        for (size_t i = 0; i < n; i++)
                hyb_furi_unref(acl[i].pattern);
        free(acl);
}

int store_acl_build(const broker_config *c, struct bstore_rule **ret, size_t *ret_n)
{
        struct bstore_rule *acl;

        *ret = NULL;
        *ret_n = 0;
        if (!c->n_store_rules)
                return 0;
        acl = calloc(c->n_store_rules, sizeof(*acl));
        if (!acl)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_store_rules; i++) {
                int r = hyb_furi_parse(c->store_rules[i].furi, strlen(c->store_rules[i].furi),
                                       NULL, &acl[i].pattern, NULL);
                if (r < 0) {
                        store_acl_free(acl, i);
                        return r;
                }
                acl[i].r = &c->store_rules[i];
        }
        *ret = acl;
        *ret_n = c->n_store_rules;
        return 0;
}

void store_acl_set(hyb_broker *b, struct bstore_rule *acl, size_t n)
{
        store_acl_free(b->acl, b->n_acl);
        b->acl = acl;
        b->n_acl = n;
}

/* ---------------------------------------------------------------- delivery */

/*
 * Received texts of written values (the pass-through).  do_write adds the obj it parsed
 * with the frame's body before it hands the obj to the store; the store queues messages
 * that name that very obj (referenced), and sub_msg sends the received bytes for it.
 * The entries go when the store has no message queued any more; if one could still be
 * queued when the frame is released (another thread dispatching the store), its text is
 * copied first.
 */
static int fwd_add(hyb_broker *b, hyb_obj *o, const char *text, size_t len)
{
        int r = grow_array((void **)&b->fwd, &b->alloc_fwd, b->n_fwd + 1, sizeof *b->fwd);

        if (r < 0)
                return r;
        b->fwd[b->n_fwd++] = (struct bfwd){ .obj = hyb_obj_ref(o), .text = text, .len = len };
        return 0;
}

static const char *fwd_find(hyb_broker *b, const hyb_obj *o, size_t *ret_len)
{
        for (size_t i = b->n_fwd; i-- > 0;)
                if (b->fwd[i].obj == o) {
                        *ret_len = b->fwd[i].len;
                        return b->fwd[i].text;
                }
        return NULL;
}

static void fwd_clear(hyb_broker *b)
{
        for (size_t i = 0; i < b->n_fwd; i++) {
                hyb_obj_unref(b->fwd[i].obj);
                free(b->fwd[i].owned);
        }
        b->n_fwd = 0;
}

/* Nothing the store queued is left to deliver: no message can name a fwd[] obj. */
static bool store_idle(hyb_broker *b)
{
        uint64_t at = 0;

        return hyb_store_get_timeout(b->store, &at) == 0 && at != 0;
}

/* The frame whose body the last entries point into is about to be released; idle: the
 * caller just found store_idle(b) (a message another thread queues after that check could
 * as well come after this one's). */
static void fwd_settle(hyb_broker *b, bool idle)
{
        if (!b->n_fwd)
                return;
        if (idle || store_idle(b)) {
                fwd_clear(b);
                return;
        }
        for (size_t i = 0; i < b->n_fwd; i++) {
                struct bfwd *w = &b->fwd[i];

                if (w->owned)
                        continue;
                w->owned = malloc(w->len ? w->len : 1);
                if (!w->owned) {
                        /* out of memory: its messages get the value formatted */
                        hyb_obj_unref(w->obj);
                        *w = b->fwd[--b->n_fwd];
                        i--;
                        continue;
                }
                memcpy(w->owned, w->text, w->len);
                w->text = w->owned;
        }
}

static void store_io(evutil_socket_t fd, short what, void *ud)
{
        hyb_broker *b = ud;
        uint64_t at = UINT64_MAX, now;

        /* Bounded: a burst of writes must not starve the sockets.  Once nothing is queued,
         * another round would only read the store's eventfd in vain (a syscall a delivery). */
        for (int i = 0; i < 64 && hyb_store_process(b->store) > 0 && !store_idle(b); i++)
                ;
        if (b->n_fwd && store_idle(b))
                fwd_clear(b);
        /* Come back when the store asks to (work left over, or its poll for writes made by
         * other processes on the same database file). */
        if (b->shutting_down || !b->store_timer || hyb_store_get_timeout(b->store, &at) < 0 ||
            at == UINT64_MAX)
                return;
        now = hyb_now_usec();
        struct timeval tv = { 0, 0 };
        if (at > now) {
                tv.tv_sec = (time_t)((at - now) / 1000000);
                tv.tv_usec = (suseconds_t)((at - now) % 1000000);
        }
        evtimer_add(b->store_timer, &tv);
}

/*
 * The exact text of a value, from a small direct-mapped cache keyed by the obj: the store
 * hands out the obj it holds (one pointer per stored value), so a value read again and again,
 * or one write fanned out to many subscribers, is formatted once.  An entry holds a reference
 * of its obj, so the address cannot be reused by another value while it is cached; only short
 * texts are kept (the cache's buffers stay within FMT_SLOTS * FMT_MAX_TEXT bytes).  A miss
 * formats into the buffer the slot's previous text had (a read of many keys misses nearly
 * every time: no malloc and free a miss then).  *ret_free gets what the caller frees when the
 * text is not cached.
 */
static const char *format_cached(hyb_broker *b, const hyb_obj *o, size_t *ret_len,
                                 char **ret_free)
{
        /* Fibonacci hashing: objs sit a few cache lines apart, low bits alone would collide. */
        size_t i = (size_t)(((uint64_t)(uintptr_t)o * 0x9E3779B97F4A7C15ull) >> 32) % FMT_SLOTS;
        struct bfmt *slot = &b->fmt[i];
        obj_buf buf;

        *ret_free = NULL;
        if (slot->obj == o) {
                *ret_len = slot->len;
                return slot->text;
        }
        /* The slot's text is overwritten: it caches nothing from here on. */
        hyb_obj_unref(slot->obj);
        slot->obj = NULL;
        slot->len = 0;
        buf = (obj_buf){ .data = slot->text, .alloc = slot->alloc };
        obj_format_to(o, HYB_FORMAT_EXACT, &buf);
        if (!buf.err && !buf.data)
                obj_buf_put(&buf, "", 0);
        else if (!buf.err)
                buf.data[buf.len] = '\0'; /* an empty text leaves the old one's bytes */
        /* grow_array keeps the old buffer when it fails: still the slot's */
        slot->text = buf.data;
        slot->alloc = buf.data ? buf.alloc : 0;
        if (buf.err)
                return NULL;
        *ret_len = buf.len;
        if (buf.alloc > FMT_MAX_TEXT) {
                /* too long to keep (a buffer over FMT_MAX_TEXT bytes, so the cache stays
                 * within its bound): the caller's, and the slot starts afresh */
                *ret_free = buf.data;
                slot->text = NULL;
                slot->alloc = 0;
                return buf.data;
        }
        slot->obj = hyb_obj_ref(o);
        slot->len = buf.len;
        return buf.data;
}

static void format_cache_clear(hyb_broker *b)
{
        for (size_t i = 0; i < FMT_SLOTS; i++) {
                hyb_free(b->fmt[i].text);
                hyb_obj_unref(b->fmt[i].obj);
                b->fmt[i] = (struct bfmt){ 0 };
        }
}

const char *store_value_text(hyb_broker *b, const hyb_obj *o, size_t *ret_len, char **ret_free)
{
        const char *val = fwd_find(b, o, ret_len);

        *ret_free = NULL;
        return val ? val : format_cached(b, o, ret_len, ret_free);
}

/* One message of s: "furi\nvalue", sent, or held while s has a replay to finish. */
static void sub_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        replay_message(&((struct bssub *)ud)->rp, target, payload, retain);
}

/* ---------------------------------------------------------------- calls */

static void reply_err(bconn *c, uint64_t id, int r, const hyb_error *e)
{
        char code[24];
        int n = snprintf(code, sizeof code, "%d", r);

        route_reply(c, id, hyb_err_to_status(r), e && e->message[0] ? e->message : hyb_strerror(r),
                    code, (size_t)n, WIRE_F_BINARY);
}

static int parse_furi(const char *s, size_t len, hyb_furi **ret, hyb_error *e)
{
        return hyb_furi_parse(s, len, NULL, ret, e);
}

/* ---------------------------------------------------------------- /sys/bus */

/* Is f (a fURI or a pattern) about /sys/bus: first segment `sys`, second `bus` or a wildcard? */
static bool is_sys_bus(const hyb_furi *f)
{
        const char *path = hyb_furi_get_path_str(f);
        size_t l0 = 0, l1 = 0;
        const char *s0, *s1;

        /* Every read of a node asks.  A canonical text that starts with `/` has no scheme,
         * and then a first segment `sys` starts it as "/sys" (an authority, "//host", is not
         * the host scope): anything else is not /sys/bus, without looking at its segments. */
        if (path[0] == '/' && strncmp(path, "/sys", 4) != 0)
                return false;
        s0 = hyb_furi_get_segment(f, 0, &l0);
        s1 = hyb_furi_get_segment(f, 1, &l1);
        if (!hyb_furi_is_absolute(f) || hyb_furi_get_scope(f) != HYB_SCOPE_HOST || !s0 ||
            hyb_furi_get_segment_kind(f, 0) != HYB_SEG_LITERAL || l0 != 3 || memcmp(s0, "sys", 3))
                return false;
        return s1 && (hyb_furi_get_segment_kind(f, 1) != HYB_SEG_LITERAL ||
                      (l1 == 3 && memcmp(s1, "bus", 3) == 0));
}

static int put_count(hyb_store *st, const char *furi, uint64_t v)
{
        hyb_obj *o = NULL;
        int r = hyb_obj_new_int(v > INT64_MAX ? INT64_MAX : (int64_t)v, &o);

        if (r >= 0)
                r = hyb_store_write_str(st, furi, o, 0, NULL);
        hyb_obj_unref(o);
        return r;
}

/* The broker's counters as a memory store of /sys/bus/..., so reads of nodes, patterns and
 * branches there mean what they mean anywhere (doc/protocol.md "Store"). */
static int sys_bus_snapshot(hyb_broker *b, hyb_store **ret)
{
        hyb_store *st = NULL;
        char furi[600];
        int r;

        r = hyb_store_open(NULL, NULL, &st, NULL);
        if (r < 0)
                return r;
#define PUT(name, v)                                                                               \
        do {                                                                                       \
                if (r >= 0)                                                                        \
                        r = put_count(st, name, v);                                                \
        } while (0)
        PUT("/sys/bus/connections", b->n_conns);
        PUT("/sys/bus/connections_total", b->accepted);
        PUT("/sys/bus/endpoints", b->n_endpoints);
        PUT("/sys/bus/messages_in", b->msgs_in);
        PUT("/sys/bus/messages_out", b->msgs_out);
        PUT("/sys/bus/bytes_in", b->bytes_in);
        PUT("/sys/bus/bytes_out", b->bytes_out);
        PUT("/sys/bus/drops", b->drops);
        PUT("/sys/bus/channels", b->n_channels);
        PUT("/sys/bus/channels_refused", b->chan_refused);
        for (bconn *c = b->conns; c && r >= 0; c = c->next) {
                const char *app, *runner;

                if (c->state != BCONN_READY || !c->name)
                        continue;
                /* "@host/app/runner" -> /sys/bus/endpoint/<app>/<runner>/... */
                app = strchr(c->name, '/');
                runner = app ? strchr(app + 1, '/') : NULL;
                if (!runner)
                        continue;
                app++;
                runner++;
                static const char *const names[] = { "messages_in", "messages_out", "bytes_in",
                                                      "bytes_out", "store_subscriptions", "channels" };
                const uint64_t vals[] = { c->msgs_in, c->msgs_out, c->bytes_in, c->bytes_out,
                                          c->n_ssubs, (uint64_t)c->n_ch_out + c->n_ch_in };
                for (size_t i = 0; i < ELEMENTSOF(names) && r >= 0; i++) {
                        snprintf(furi, sizeof furi, "/sys/bus/endpoint/%.*s/%s/%s",
                                 (int)(runner - 1 - app), app, runner, names[i]);
                        PUT(furi, vals[i]);
                }
        }
#undef PUT
        if (r < 0) {
                hyb_store_unref(st);
                return r;
        }
        *ret = st;
        return 0;
}

/* ---------------------------------------------------------------- kernel objs */

/* The daemon's kernel obj at f (a node, not a pattern): 1 with *ret, 0 none, < 0 an error. */
static int kernel_read(hyb_broker *b, const hyb_furi *f, hyb_obj **ret, hyb_error *e)
{
        int r;

        *ret = NULL;
        if (!b->kernel || hyb_furi_is_pattern(f))
                return 0;
        r = b->kernel(f, ret, e, b->kernel_ud);
        if (r <= 0) {
                hyb_obj_unref(*ret);
                *ret = NULL;
        } else if (!*ret) {
                *ret = hyb_obj_noobj();
        }
        return r;
}

HYB_EXPORT int hyb_broker_set_kernel(hyb_broker *b, hyb_broker_kernel_fn fn, void *userdata)
{
        hyb_assert_return(b, -EINVAL);
        b->kernel = fn;
        b->kernel_ud = fn ? userdata : NULL;
        return 0;
}

size_t store_read_cap(const hyb_broker *b)
{
        return b->c->store_max_read_keys ? b->c->store_max_read_keys : STORE_MAX_READ_KEYS_DEFAULT;
}

/* The values of a keyed rec as a stream: what a plain pattern read gives. */
int store_values_of(const hyb_obj *rec, hyb_obj **ret)
{
        size_t n = hyb_obj_get_len(rec);
        hyb_obj **v = calloc(n + 1, sizeof(*v));
        int r;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                v[i] = (hyb_obj *)hyb_obj_get_rec_value(rec, i);
        r = hyb_obj_new_objs(v, n, ret);
        free(v);
        return r;
}

/*
 * One page of target's matches after `after` (NULL: the first), at most limit, as a rec of
 * fURI => value (*ret_next: the cursor when more follow): from the host store, or from the
 * counters for /sys/bus.  Every pattern or branch read of the daemon comes here, so the work
 * one request does on the loop is bounded by store.limits.max_read_keys.
 */
static int read_page(hyb_broker *b, const hyb_furi *f, const hyb_furi *after, size_t limit,
                     hyb_obj **ret, hyb_furi **ret_next, hyb_error *e)
{
        hyb_store *sys = NULL;
        int r;

        if (!is_sys_bus(f))
                return hyb_store_read_page(b->store, f, after, limit, ret, ret_next, e);
        r = sys_bus_snapshot(b, &sys);
        if (r >= 0)
                r = hyb_store_read_page(sys, f, after, limit, ret, ret_next, e);
        hyb_store_unref(sys);
        return r;
}

/*
 * How many of a page's first items fit an answer of max bytes: each value measured in turn
 * (its text from the broker's format cache, store_value_text) until the one that passes it;
 * keyed counts each item's key too (a keyed or paged answer: fURI=>value; a plain pattern
 * read answers the values alone).  A page is cut to them before its answer is formatted,
 * so that a page of big values costs about max bytes of formatting, not the whole page's
 * (1 024 values of 1 MB, then half of them, ... on the daemon's loop).  An estimate (the
 * separators around each item): the answer's own length is checked again once formatted.
 * 0, or < 0 out of memory.
 */
int store_items_that_fit(hyb_broker *b, const hyb_obj *items, bool keyed, size_t max,
                         size_t *ret_n)
{
        size_t n = hyb_obj_get_len(items), total = 16, k;

        for (k = 0; k < n; k++) {
                const hyb_furi *kf = keyed ? hyb_obj_get_uri(hyb_obj_get_rec_key(items, k)) : NULL;
                char *owned = NULL;
                size_t vl = 0;

                if (!store_value_text(b, hyb_obj_get_rec_value(items, k), &vl, &owned))
                        return -ENOMEM;
                hyb_free(owned);
                total += (kf ? strlen(hyb_furi_get_str(kf)) + 2 : 0) + vl + 2; /* "k=>v," */
                if (total > max)
                        break;
        }
        *ret_n = k;
        return 0;
}

/*
 * Cuts the page *items (fURI=>value pairs in key order, *next its cursor) to its first k
 * pairs (0 < k < its length): *next becomes the k-th pair's key, from which the next page
 * goes on, as when the walk had stopped there.  0 or -ENOMEM (the page left as it was).
 */
int store_page_cut(hyb_obj **items, hyb_furi **next, size_t k)
{
        const hyb_obj **keys = calloc(k, sizeof(*keys)), **vals = calloc(k, sizeof(*vals));
        hyb_obj *cut = NULL;
        int r = -ENOMEM;

        if (keys && vals) {
                for (size_t i = 0; i < k; i++) {
                        keys[i] = hyb_obj_get_rec_key(*items, i);
                        vals[i] = hyb_obj_get_rec_value(*items, i);
                }
                r = hyb_obj_new_rec((hyb_obj **)keys, (hyb_obj **)vals, k, &cut);
        }
        if (r >= 0) {
                hyb_furi_unref(*next);
                *next = hyb_furi_ref((hyb_furi *)hyb_obj_get_uri(keys[k - 1]));
                hyb_obj_unref(*items);
                *items = cut;
        }
        free(keys);
        free(vals);
        return r;
}

static int over_cap(hyb_broker *b, const hyb_furi *f, hyb_error *e)
{
        return err_set(e, HYB_E_LIMIT, -1,
                       "the read of %s matches more than store.limits.max_read_keys (%zu) keys: "
                       "read it in pages (storeReadPage with \"limit\" and \"cursor\"; the "
                       "client library and 'hybrid store get' page by themselves)",
                       hyb_furi_get_str(f), store_read_cap(b));
}

static void do_read(bconn *c, uint64_t id, const char *body, size_t len, unsigned flags)
{
        hyb_broker *b = c->b;
        hyb_furi *f = NULL, *next = NULL;
        hyb_obj *o = NULL, *items = NULL;
        char *text = NULL;
        const char *out = NULL;
        size_t out_len = 0;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = parse_furi(body, len, &f, &e);
        if (r >= 0)
                r = store_acl_check(b, c, BROKER_STORE_READ, f, &e);
        if (r >= 0 && b->cluster && hyb_furi_get_scope(f) == HYB_SCOPE_CLUSTER) {
                /* the cluster scope: from the mirror, or once the MQTT broker answered */
                cluster_read(c, id, f, flags, false, NULL, 0);
                hyb_furi_unref(f);
                return;
        }
        if (r < 0 || (r = kernel_read(b, f, &o, &e)) != 0) {
                /* refused, or a kernel obj of the daemon (/sys/scheduler, /type/...) */
        } else if (hyb_furi_is_pattern(f) || hyb_furi_is_branch(f)) {
                /* At most max_read_keys matches, and the walk stops there: a read of more is
                 * refused after that much work, not after walking all of them. */
                size_t fit = 0;

                r = read_page(b, f, NULL, store_read_cap(b), &items, &next, &e);
                c->yield = true; /* the loop serves others before this peer's next frame */
                if (r >= 0 && next)
                        r = over_cap(b, f, &e);
                /* measured before the whole answer is formatted (store_items_that_fit) */
                else if (r >= 0 &&
                         (r = store_items_that_fit(b, items,
                                                   hyb_furi_is_branch(f) || (flags & HYB_READ_KEYED),
                                                   b->c->max_body, &fit)) >= 0 &&
                         fit < hyb_obj_get_len(items))
                        r = err_set(&e, HYB_E_LIMIT, -1,
                                    "the answer to %s is over max_body %zu: read a narrower "
                                    "pattern, or in smaller pages", hyb_furi_get_str(f),
                                    (size_t)b->c->max_body);
                else if (r >= 0 && (hyb_furi_is_branch(f) || (flags & HYB_READ_KEYED)))
                        o = hyb_obj_ref(items);
                else if (r >= 0)
                        r = store_values_of(items, &o);
        } else if (is_sys_bus(f)) {
                /* The kernel's own objects: read from the counters, never stored. */
                hyb_store *sys = NULL;
                hyb_backend *sb = NULL;

                r = sys_bus_snapshot(b, &sys);
                if (r >= 0)
                        r = hyb_backend_new_store(sys, &sb);
                if (r >= 0)
                        r = hyb_backend_read(sb, f, flags, &o, &e);
                hyb_backend_unref(sb);
                hyb_store_unref(sys);
        } else {
                r = hyb_backend_read(b->store_be, f, flags, &o, &e);
        }
        if (r >= 0 && !(out = format_cached(b, o, &out_len, &text)))
                r = -ENOMEM;
        /* A pattern or branch read of a large store would make a RESULT larger than any
         * frame a peer accepts (max_body): refuse it with 413, as the store refuses a value
         * over its limits, and let the peer read narrower patterns. */
        if (r >= 0 && out_len > b->c->max_body)
                r = err_set(&e, HYB_E_LIMIT, -1,
                            "the answer to %s is %zu bytes, over max_body %zu: read a narrower "
                            "pattern, or in smaller pages", hyb_furi_get_str(f), out_len,
                            (size_t)b->c->max_body);
        if (r < 0)
                reply_err(c, id, r, &e);
        else
                route_reply(c, id, 200, NULL, out, out_len, WIRE_F_BINARY);
        hyb_free(text);
        hyb_obj_unref(o);
        hyb_obj_unref(items);
        hyb_furi_unref(next);
        hyb_furi_unref(f);
}

/* The answer of a page: [items=>[fURI=>value,...], next=>/cursor] (next when more follow). */
int store_page_answer(const hyb_obj *items, const hyb_furi *next, char **ret)
{
        hyb_obj *k[2] = { NULL, NULL }, *v[2] = { (hyb_obj *)items, NULL }, *o = NULL;
        size_t n = next ? 2 : 1;
        int r;

        r = hyb_obj_new_str("items", 5, &k[0]);
        if (r >= 0 && next && (r = hyb_obj_new_str("next", 4, &k[1])) >= 0)
                r = hyb_obj_new_uri(next, &v[1]);
        if (r >= 0)
                r = hyb_obj_new_rec(k, v, n, &o);
        if (r >= 0)
                r = hyb_obj_format(o, HYB_FORMAT_EXACT, ret);
        hyb_obj_unref(o);
        hyb_obj_unref(k[0]);
        hyb_obj_unref(k[1]);
        hyb_obj_unref(v[1]);
        return r;
}

/*
 * storeReadPage {"furi": F, "limit": N, "cursor": C}: the matches of F after the key C (the
 * "next" of the previous page; none: from the first), at most N (1..max_read_keys, default
 * max_read_keys), as [items=>[fURI=>value,...], next=>C'] in key order.  A page that would
 * be over max_body is cut to fewer items (at least one).
 */
static void do_read_page(bconn *c, uint64_t id, const char *body, size_t len)
{
        hyb_broker *b = c->b;
        hyb_furi *f = NULL, *after = NULL, *next = NULL;
        hyb_obj *items = NULL;
        json_t *p = NULL, *jf, *jl, *jc;
        json_error_t je;
        char *text = NULL;
        size_t limit = store_read_cap(b);
        hyb_error e;
        int r = 0;

        hyb_error_clear(&e);
        p = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
        jf = p ? json_object_get(p, "furi") : NULL;
        jl = p ? json_object_get(p, "limit") : NULL;
        jc = p ? json_object_get(p, "cursor") : NULL;
        if (!json_is_object(p) || !json_is_string(jf) || (jl && !json_is_integer(jl)) ||
            (jc && !json_is_string(jc))) {
                r = err_set(&e, HYB_E_BAD_REQUEST, -1,
                            "storeReadPage wants {\"furi\": STRING, \"limit\": INT, \"cursor\": "
                            "STRING}");
                goto out;
        }
        if (jl) {
                json_int_t v = json_integer_value(jl);
                if (v < 1 || (uint64_t)v > store_read_cap(b)) {
                        r = err_set(&e, HYB_E_BAD_REQUEST, -1,
                                    "limit must be 1..%zu (store.limits.max_read_keys)",
                                    store_read_cap(b));
                        goto out;
                }
                limit = (size_t)v;
        }
        r = parse_furi(json_string_value(jf), json_string_length(jf), &f, &e);
        if (r >= 0 && jc &&
            (hyb_furi_parse(json_string_value(jc), json_string_length(jc), NULL, &after, NULL) < 0 ||
             hyb_furi_is_pattern(after) || hyb_furi_is_branch(after) ||
             hyb_furi_get_query(after)))
                r = err_set(&e, HYB_E_BAD_REQUEST, -1,
                            "malformed cursor (use the \"next\" of the previous page)");
        if (r >= 0)
                r = store_acl_check(b, c, BROKER_STORE_READ, f, &e);
        if (r >= 0 && b->cluster && hyb_furi_get_scope(f) == HYB_SCOPE_CLUSTER) {
                cluster_read(c, id, f, 0, true, after, limit);
                goto done;
        }
        c->yield = true; /* the loop serves others before this peer's next frame */
        for (; r >= 0; limit = (limit + 1) / 2) {
                hyb_obj *kobj = NULL;

                hyb_obj_unref(items);
                hyb_furi_unref(next);
                items = NULL;
                next = NULL;
                hyb_free(text);
                text = NULL;
                r = kernel_read(b, f, &kobj, &e);
                if (r > 0) {
                        /* a kernel obj of the daemon: one item, unless the cursor is past it */
                        hyb_obj *key = NULL;
                        r = hyb_obj_new_uri(f, &key);
                        if (r >= 0)
                                r = hyb_obj_new_rec(&key, &kobj, after ? 0 : 1, &items);
                        hyb_obj_unref(key);
                } else if (r == 0) {
                        size_t fit = 0;

                        r = read_page(b, f, after, limit, &items, &next, &e);
                        /* cut to what fits max_body before formatting (store_items_that_fit) */
                        if (r >= 0 &&
                            (r = store_items_that_fit(b, items, true, b->c->max_body, &fit)) >= 0 &&
                            fit < hyb_obj_get_len(items)) {
                                limit = fit > 0 ? fit : 1;
                                r = store_page_cut(&items, &next, limit);
                        }
                }
                hyb_obj_unref(kobj);
                if (r >= 0)
                        r = store_page_answer(items, next, &text);
                if (r < 0 || strlen(text) <= b->c->max_body)
                        break;
                if (limit == 1) {
                        r = err_set(&e, HYB_E_LIMIT, -1,
                                    "one match of %s is over max_body %zu: read it alone",
                                    hyb_furi_get_str(f), (size_t)b->c->max_body);
                        break;
                }
        }
out:
        if (r < 0)
                reply_err(c, id, r, &e);
        else
                route_reply(c, id, 200, NULL, text, strlen(text), WIRE_F_BINARY);
done:
        hyb_free(text);
        hyb_obj_unref(items);
        hyb_furi_unref(next);
        hyb_furi_unref(after);
        hyb_furi_unref(f);
        json_decref(p);
}

/*
 * A write waiting for its commit (durability full): the store commits it on its own thread
 * (hyb_store_options.commit_thread) while the loop serves everyone else, and write_done
 * answers the writer once the write is on disk.  A connection that goes away first leaves
 * its writes behind (conn NULL): they are still committed, nobody is answered.
 */
struct bswrite {
        struct bswrite *next;
        bconn *conn;
        uint64_t id;
};

static void write_done(int r, void *ud)
{
        struct bswrite *w = ud;
        bconn *c = w->conn;

        if (c) {
                for (struct bswrite **pp = &c->swrites; *pp; pp = &(*pp)->next)
                        if (*pp == w) {
                                *pp = w->next;
                                break;
                        }
                if (r < 0)
                        reply_err(c, w->id, r, NULL);
                else
                        route_reply(c, w->id, 200, NULL, NULL, 0, WIRE_F_BINARY);
        }
        free(w);
}

/* Durability full: the write is answered from write_done (1); else at once (0), or < 0. */
static int store_write(bconn *c, uint64_t id, const hyb_furi *f, hyb_obj *v, unsigned wflags,
                       store_write_check_fn check, void *check_ud, hyb_error *e)
{
        hyb_broker *b = c->b;
        struct bswrite *w;
        int r;

        if (b->c->store_durability != HYB_DURABILITY_FULL || (wflags & HYB_WRITE_TRANSIENT))
                return check ? store_write_checked(b->store, f, v, wflags, check, check_ud, false,
                                                   NULL, NULL, e)
                             : hyb_store_write(b->store, f, v, wflags, e);
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->conn = c;
        w->id = id;
        r = check ? store_write_checked(b->store, f, v, wflags, check, check_ud, true, write_done,
                                        w, e)
                  : hyb_store_write_async(b->store, f, v, wflags, write_done, w, e);
        if (r < 0) {
                free(w);
                return r;
        }
        w->next = c->swrites;
        c->swrites = w;
        return 1;
}

/* The text a key is charged under: its path ("/a/b"), without a query. */
static const char *key_text(const hyb_furi *f, size_t *ret_len)
{
        const char *k = hyb_furi_get_path_str(f);

        if (!k)
                k = hyb_furi_get_str(f);
        *ret_len = strlen(k);
        return k;
}

typedef struct keylist {
        hyb_furi **v;
        size_t n;
} keylist;

/* The keys a delete of the pattern or branch f removes (not the elements inside stored polys
 * that a read of f also reaches: the delete leaves those). */
static int keys_of(hyb_broker *b, const hyb_furi *f, keylist *k, hyb_error *e)
{
        return store_delete_keys(b->store, f, &k->v, &k->n, e);
}

static void keylist_done(keylist *k)
{
        store_keys_free(k->v, k->n);
}

static const hyb_obj *lst_or_rec_value(const hyb_obj *v, size_t i)
{
        return hyb_obj_get_kind(v) == HYB_OBJ_LST ? hyb_obj_get_at(v, i)
                                                  : hyb_obj_get_rec_value(v, i);
}

/* The children a branch write (`p/ -> [a=>1, b=>noobj]`) stores or deletes: their keys as the
 * store makes them (store_branch_keys: `'a/b'` is the one segment a%2Fb, `1`, `'1'` and `<1>`
 * are all the child 1, a uri key may name a deeper child), and one quota item per distinct
 * key, for the last element naming it (what the key holds after the write): its value's text,
 * or a delete (items[j] is the child keys[of[j]]). */
typedef struct branch_charge {
        hyb_furi **keys;
        size_t n;
        squota_item *items;
        size_t *of;
        size_t n_items;
} branch_charge;

static void branch_charge_done(branch_charge *bc)
{
        free(bc->items);
        free(bc->of);
        store_keys_free(bc->keys, bc->n);
}

/* The length of o's exact text (what a key holding it is charged for) in *ret; 0 or < 0. */
static int exact_len(const hyb_obj *o, size_t *ret)
{
        char *t = NULL;
        int r = hyb_obj_format(o, HYB_FORMAT_EXACT, &t);

        if (r >= 0)
                *ret = strlen(t);
        hyb_free(t);
        return r;
}

/* The length of the value text key holds now; 0 and false when it holds nothing. */
static size_t held_len(hyb_broker *b, const hyb_furi *key, bool *ret_has)
{
        hyb_obj *o = NULL;
        size_t n = 0;

        *ret_has = hyb_store_read(b->store, key, &o, NULL) >= 0 && !hyb_obj_is_noobj(o) &&
                   exact_len(o, &n) >= 0;
        hyb_obj_unref(o);
        return *ret_has ? n : 0;
}

/* After a write into (or a delete inside) the lst/rec that holder holds: holder's charge is
 * its value's new size (released when it holds nothing).  A write makes it uid's, as an
 * overwrite of the key would (the write was checked for that); a delete (keep_owner) leaves
 * it with whoever holds it, so nobody's bytes move onto another uid unchecked.  What is
 * written into a value is charged to the key holding it, never by the element's path: a
 * lst's elements shift when one is deleted. */
static void recharge_holder(hyb_broker *b, uid_t uid, const hyb_furi *holder, bool keep_owner)
{
        bool has;
        size_t n = held_len(b, holder, &has), kl;
        const char *k = key_text(holder, &kl);

        if (!has)
                squota_release(b, k, kl, hyb_furi_hash(holder));
        else if (keep_owner)
                squota_resize(b, k, kl, hyb_furi_hash(holder), n);
        else /* out of memory in the charge only leaves it as it was */
                (void)squota_charge(b, uid, k, kl, hyb_furi_hash(holder), n);
}

/* Two items' keys in an order of their own (hash, length, text): 0 for the same key. */
static int item_key_cmp(const squota_item *a, const squota_item *b)
{
        if (a->hash != b->hash)
                return a->hash < b->hash ? -1 : 1;
        if (a->key_len != b->key_len)
                return a->key_len < b->key_len ? -1 : 1;
        return memcmp(a->key, b->key, a->key_len);
}

static const branch_charge *sort_bc; /* qsort has no context argument; the loop thread only */

/* By key, and among equal keys the last element first. */
static int by_key_last_first(const void *x, const void *y)
{
        size_t i = *(const size_t *)x, j = *(const size_t *)y;
        int c = item_key_cmp(&sort_bc->items[i], &sort_bc->items[j]);

        if (c)
                return c;
        return i < j ? 1 : i > j ? -1 : 0;
}

static int branch_charge_init(branch_charge *bc, const hyb_furi *f, const hyb_obj *v,
                              hyb_error *e)
{
        _cleanup_free_ char *base = store_branch_base(f);
        _cleanup_free_ size_t *order = NULL;
        squota_item *all;
        size_t n = hyb_obj_get_len(v);
        int r;

        *bc = (branch_charge){ 0 };
        if (!base)
                return -ENOMEM;
        /* not a lst or rec: the store refuses the write, nothing to charge */
        if (hyb_obj_get_kind(v) != HYB_OBJ_LST && hyb_obj_get_kind(v) != HYB_OBJ_REC)
                return 0;
        r = store_branch_keys(base, v, &bc->keys, e);
        if (r < 0)
                return r;
        bc->n = n;
        all = calloc(n ? n : 1, sizeof(*all));
        order = calloc(n ? n : 1, sizeof(*order));
        bc->of = calloc(n ? n : 1, sizeof(*bc->of));
        bc->items = all;
        if (!all || !order || !bc->of)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const hyb_obj *val = lst_or_rec_value(v, i);
                size_t vl = 0;

                if (!hyb_obj_is_noobj(val) && (r = exact_len(val, &vl)) < 0)
                        return r;
                all[i].key = key_text(bc->keys[i], &all[i].key_len); /* the key's own text */
                all[i].hash = hyb_furi_hash(bc->keys[i]);
                all[i].value_len = vl;
                all[i].del = hyb_obj_is_noobj(val);
                order[i] = i;
        }
        sort_bc = bc;
        qsort(order, n, sizeof(*order), by_key_last_first);
        sort_bc = NULL;
        /* one item a key: the first of each run of equal keys, its last element */
        for (size_t k = 0; k < n; k++) {
                size_t i = order[k];
                if (k > 0 && item_key_cmp(&all[order[k - 1]], &all[i]) == 0)
                        continue;
                bc->of[bc->n_items++] = i;
        }
        {
                squota_item *items = calloc(bc->n_items ? bc->n_items : 1, sizeof(*items));
                if (!items)
                        return -ENOMEM;
                for (size_t j = 0; j < bc->n_items; j++)
                        items[j] = all[bc->of[j]];
                free(all);
                bc->items = items;
        }
        return 0;
}

/* After the branch write (whatever its result: one that failed part-way did only some
 * children), each distinct child is charged for what the store now holds there, decided
 * after the write, since an earlier child may have deleted or replaced the value a later one
 * lands in: a key of its own is charged at what it holds (released when it holds nothing);
 * a child inside a stored lst/rec recharges the key holding it, after the keys of their own
 * (deletes first, keeping its owner, then writes, making it uid's). */
static void branch_charge_apply(hyb_broker *b, uid_t uid, const branch_charge *bc)
{
        hyb_furi **holders = calloc(bc->n_items ? bc->n_items : 1, sizeof(*holders));

        for (size_t j = 0; j < bc->n_items; j++) {
                const squota_item *it = &bc->items[j];
                const hyb_furi *key = bc->keys[bc->of[j]];
                hyb_furi *h = NULL;
                size_t vl;
                bool has;

                if (store_holder_of(b->store, key, holders ? &holders[j] : &h) > 0) {
                        if (!holders) /* out of memory: recharged now, in element order */
                                recharge_holder(b, uid, h, it->del);
                        hyb_furi_unref(h);
                        continue;
                }
                vl = held_len(b, key, &has);
                if (!has)
                        squota_release(b, it->key, it->key_len, it->hash);
                else /* out of memory in the charge only leaves the child uncharged */
                        (void)squota_charge(b, uid, it->key, it->key_len, it->hash, vl);
        }
        for (int pass = 0; holders && pass < 2; pass++)
                for (size_t j = 0; j < bc->n_items; j++)
                        if (holders[j] && bc->items[j].del == (pass == 0))
                                recharge_holder(b, uid, holders[j], pass == 0);
        store_keys_free(holders, bc->n_items);
}

/*
 * The quota check of a node write, asked by the store where the write lands, under its lock
 * and right before the write (store_write_checked), so nothing can move the write elsewhere
 * in between.  A write of the key itself is checked as that key at its new size; a write into
 * the lst/rec a stored key holds, as the holder grown by the whole element (more than it
 * grows).  holder is kept for the charge after the write (a delete is not checked: it only
 * wants to know the holder).
 */
typedef struct node_check {
        hyb_broker *b;
        uid_t uid;
        const hyb_furi *f;
        size_t value_len;
        bool del;
        hyb_furi *holder;       /* out: the key whose lst/rec the write went into, a reference */
} node_check;

static int node_check_fn(const hyb_furi *holder, const hyb_obj *holder_value, void *ud,
                         hyb_error *e)
{
        node_check *q = ud;
        size_t kl, hl, cur = 0;
        const char *key = key_text(q->f, &kl), *hk;

        if (!holder)
                return q->del ? 0 : squota_check(q->b, q->uid, key, kl, hyb_furi_hash(q->f),
                                                 q->value_len, e);
        q->holder = hyb_furi_ref((hyb_furi *)holder);
        if (q->del)
                return 0;
        if (exact_len(holder_value, &cur) < 0)
                return -ENOMEM;
        hk = key_text(holder, &hl);
        return squota_check(q->b, q->uid, hk, hl, hyb_furi_hash(holder), cur + kl + q->value_len,
                            e);
}

/*
 * A retained write or delete of c, within what its uid and everyone may add to the host store
 * over the bus (store-quota.c): checked before, charged or released after.  value_len is the
 * value's text as sent (the exact form the store keeps).  A branch write (`p/ -> [a=>1]`) is
 * checked and charged as the children it writes, under the keys the store gives them, all
 * of them together (a pattern takes no value but noobj).
 */
static int quota_write(bconn *c, uint64_t id, const hyb_furi *f, hyb_obj *v, size_t value_len,
                       unsigned wflags, hyb_error *e)
{
        hyb_broker *b = c->b;
        bool many = hyb_furi_is_pattern(f) || hyb_furi_is_branch(f);
        keylist k = { 0 };
        branch_charge bc = { 0 };
        node_check q = { .b = b, .uid = c->uid, .f = f, .value_len = value_len };
        size_t kl;
        const char *key = key_text(f, &kl);
        int r = 0;

        if (hyb_obj_is_noobj(v)) {
                q.del = true;
                if (many && squota_get_n(b))
                        r = keys_of(b, f, &k, e);
                if (r >= 0)
                        r = store_write(c, id, f, v, wflags,
                                        !many && squota_get_n(b) ? node_check_fn : NULL, &q, e);
                /* a delete inside a stored lst/rec shrinks the key holding it */
                if (r >= 0 && q.holder)
                        recharge_holder(b, c->uid, q.holder, true);
                else if (r >= 0 && !many)
                        squota_release(b, key, kl, hyb_furi_hash(f));
                hyb_furi_unref(q.holder);
                for (size_t i = 0; r >= 0 && i < k.n; i++) {
                        const char *ki = key_text(k.v[i], &kl);
                        squota_release(b, ki, kl, hyb_furi_hash(k.v[i]));
                }
                keylist_done(&k);
                return r;
        }
        /* a pattern takes only noobj: the store refuses the write, which charges nothing */
        if (hyb_furi_is_pattern(f))
                return store_write(c, id, f, v, wflags, NULL, NULL, e);
        if (!many) {
                /* checked by the store where the write lands, right before it is made */
                r = store_write(c, id, f, v, wflags, node_check_fn, &q, e);
                if (r >= 0 && q.holder)
                        recharge_holder(b, c->uid, q.holder, false);
                else if (r >= 0) /* out of memory in the charge only leaves it uncharged */
                        (void)squota_charge(b, c->uid, key, kl, hyb_furi_hash(f), value_len);
                hyb_furi_unref(q.holder);
                return r;
        }
        r = branch_charge_init(&bc, f, v, e);
        if (r >= 0)
                r = squota_check_many(b, c->uid, bc.items, bc.n_items, e);
        if (r >= 0) {
                r = store_write(c, id, f, v, wflags, NULL, NULL, e);
                branch_charge_apply(b, c->uid, &bc);
        }
        branch_charge_done(&bc);
        return r;
}

static void do_write(bconn *c, uint64_t id, const char *body, size_t len, unsigned wflags, bool del)
{
        hyb_broker *b = c->b;
        const char *nl = del ? NULL : memchr(body, '\n', len);
        size_t fl = del ? len : nl ? (size_t)(nl - body) : len;
        hyb_furi *f = NULL;
        hyb_obj *v = NULL, *kobj = NULL;
        hyb_error e;
        bool idle, held = false;
        int r;

        hyb_error_clear(&e);
        if (!del && !nl) {
                r = err_set(&e, HYB_E_BAD_REQUEST, -1, "store write without a value");
                goto out;
        }
        r = parse_furi(body, fl, &f, &e);
        if (r < 0)
                goto out;
        if (del)
                v = hyb_obj_noobj();
        else if ((r = hyb_obj_parse(nl + 1, len - fl - 1, &v, &e)) < 0) {
                /* Nested past what the parser takes: past the store's max_depth too, so the
                 * same 413 HYB_E_LIMIT as a value nested past max_depth (not a 500). */
                if (r == HYB_E_DEPTH)
                        r = HYB_E_LIMIT;
                /* A number beyond what an int or real holds is the sender's literal that does
                 * not parse (400), not an arithmetic error of the daemon's (500). */
                if (r == HYB_E_OVERFLOW)
                        e.code = r = HYB_E_PARSE;
                goto out;
        }
        r = store_acl_check(b, c,
                            hyb_obj_is_noobj(v) ? BROKER_STORE_DELETE : BROKER_STORE_WRITE, f, &e);
        if (r < 0)
                goto out;
        if (b->cluster && hyb_furi_get_scope(f) == HYB_SCOPE_CLUSTER) {
                /* the cluster scope: published (answered at the PUBACK) or queued */
                cluster_write(c, id, f, v, wflags);
                hyb_obj_unref(v);
                hyb_furi_unref(f);
                return;
        }
        r = kernel_read(b, f, &kobj, &e);
        hyb_obj_unref(kobj);
        if (r > 0)
                r = err_set(&e, HYB_E_FORBIDDEN, -1, "%s is read-only", hyb_furi_get_str(f));
        if (r < 0)
                goto out;
        /* Registered before the store has it: whichever thread delivers it finds the text.
         * Not noobj (a delete): that obj is shared by every delete, whoever made it. */
        if (!del && !hyb_obj_is_noobj(v) && (r = fwd_add(b, v, nl + 1, len - fl - 1)) < 0)
                goto out;
        /* What the write queues is delivered below, by this thread: no eventfd kick for it
         * (its write and the read that clears it, two syscalls a delivered message). */
        store_kick_hold(b->store);
        held = true;
        if (!(wflags & HYB_WRITE_TRANSIENT))
                r = quota_write(c, id, f, v, del ? 0 : len - fl - 1, wflags, &e);
        else
                r = hyb_store_write(b->store, f, v, wflags, &e);
out:
        if (r < 0)
                reply_err(c, id, r, &e);
        else if (r == 0)
                route_reply(c, id, 200, NULL, NULL, 0, WIRE_F_BINARY);
        /* else: answered by write_done once committed */
        hyb_obj_unref(v);
        hyb_furi_unref(f);
        /* Deliver now, in write order, before reading more; a write nobody subscribes to
         * left the store nothing to do (no process, no read of its eventfd). */
        idle = r >= 0 && store_idle(b);
        if (r >= 0 && !idle)
                store_io(-1, 0, b);
        if (held)
                store_kick_release(b->store); /* kicks if store_io left work */
        fwd_settle(b, idle);
}

static struct bssub *find_sub(bconn *c, uint64_t id, struct bssub ***ret_pp)
{
        for (struct bssub **pp = &c->ssubs; *pp; pp = &(*pp)->next)
                if ((*pp)->id == id) {
                        if (ret_pp)
                                *ret_pp = pp;
                        return *pp;
                }
        return NULL;
}

/* "<id> <flags> <pattern>": the id is the client's, echoed in each message's call_id. */
static void do_subscribe(bconn *c, uint64_t id, const char *body, size_t len)
{
        hyb_broker *b = c->b;
        char head[64], *end;
        const char *sp1, *sp2;
        unsigned long long sid, fl;
        struct bssub *s = NULL;
        hyb_furi *f = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        sp1 = memchr(body, ' ', len);
        sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - body)) : NULL;
        if (!sp2 || (size_t)(sp2 - body) >= sizeof head) {
                r = err_set(&e, HYB_E_BAD_REQUEST, -1,
                            "storeSubscribe wants '<id> <flags> <pattern>'");
                goto out;
        }
        memcpy(head, body, (size_t)(sp2 - body));
        head[sp2 - body] = 0;
        errno = 0;
        sid = strtoull(head, &end, 10);
        if (errno || *end != ' ' || (fl = strtoull(end + 1, &end, 10), *end) || fl > 1) {
                r = err_set(&e, HYB_E_BAD_REQUEST, -1, "storeSubscribe: bad id or flags");
                goto out;
        }
        r = parse_furi(sp2 + 1, len - (size_t)(sp2 + 1 - body), &f, &e);
        if (r < 0)
                goto out;
        if (!hyb_furi_is_absolute(f)) {
                r = err_set(&e, -EINVAL, -1, "a store subscription needs an absolute fURI");
                goto out;
        }
        if (find_sub(c, sid, NULL) || cluster_has_sub(c, sid)) {
                r = err_set(&e, HYB_E_CONFLICT, -1, "subscription id %llu in use", sid);
                goto out;
        }
        r = store_acl_check(b, c, BROKER_STORE_SUBSCRIBE, f, &e);
        if (r < 0)
                goto out;
        if (c->n_ssubs >= b->c->max_store_subscriptions) {
                r = err_set(&e, HYB_E_TOO_MANY, -1, "quota max_store_subscriptions exceeded");
                goto out;
        }
        if (c->q && c->q->store_subs >= b->c->uid_max_store_subscriptions) {
                r = err_set(&e, HYB_E_TOO_MANY, -1, "quota uid_max_store_subscriptions exceeded");
                goto out;
        }
        if (b->cluster && hyb_furi_get_scope(f) == HYB_SCOPE_CLUSTER) {
                /* acknowledged once the MQTT broker's SUBACK came */
                cluster_subscribe(c, id, sid, f, (unsigned)fl);
                hyb_furi_unref(f);
                return;
        }
        s = calloc(1, sizeof *s);
        if (!s) {
                r = -ENOMEM;
                goto out;
        }
        s->conn = c;
        s->id = sid;
        /* the replay is sent in pages by the broker (replay.c), the store replays nothing */
        r = replay_init(&s->rp, c, sid, b->store, "", fl ? f : NULL);
        if (r >= 0)
                r = hyb_store_subscribe(b->store, f, 0, sub_msg, s, &s->slot, &e);
        if (r < 0) {
                replay_stop(&s->rp);
                free(s);
                goto out;
        }
        s->next = c->ssubs;
        c->ssubs = s;
        c->n_ssubs++;
        if (c->q)
                c->q->store_subs++;
out:
        if (r < 0)
                reply_err(c, id, r, &e);
        else
                route_reply(c, id, 200, NULL, NULL, 0, WIRE_F_BINARY);
        hyb_furi_unref(f);
        if (r < 0)
                return;
        if (s && s->rp.pattern) {
                c->yield = true; /* the loop serves others before this peer's next frame */
                replay_begin(&s->rp); /* the first page follows the answer; the rest, a turn each */
        }
        store_io(-1, 0, b);
}

static void sub_free(bconn *c, struct bssub *s)
{
        replay_stop(&s->rp);
        hyb_slot_unref(s->slot);
        c->n_ssubs--;
        if (c->q)
                c->q->store_subs--;
        free(s);
}

static void do_unsubscribe(bconn *c, uint64_t id, const char *body, size_t len)
{
        char buf[32], *end;
        struct bssub **pp = NULL, *s;
        unsigned long long sid;

        if (len == 0 || len >= sizeof buf) {
                route_reply(c, id, 400, "storeUnsubscribe wants '<id>'", NULL, 0, 0);
                return;
        }
        memcpy(buf, body, len);
        buf[len] = 0;
        errno = 0;
        sid = strtoull(buf, &end, 10);
        if (errno || *end) {
                route_reply(c, id, 400, "storeUnsubscribe wants '<id>'", NULL, 0, 0);
                return;
        }
        s = find_sub(c, sid, &pp);
        if (!s && cluster_unsubscribe(c, id, sid))
                return;
        if (!s) {
                route_reply(c, id, 404, "no such store subscription", NULL, 0, 0);
                return;
        }
        *pp = s->next;
        sub_free(c, s);
        route_reply(c, id, 200, NULL, NULL, 0, WIRE_F_BINARY);
}

bool store_is_call(const char *member, size_t len)
{
        return len > 5 && memcmp(member, "store", 5) == 0;
}

void store_call(bconn *c, bframe *f)
{
        hyb_broker *b = c->b;
        const char *m = f->member;
        size_t ml = f->h.member_len;
        uint64_t id = f->h.call_id;
        const char *body;
        size_t len = f->h.body_len;

#define IS(name) (ml == sizeof(name) - 1 && memcmp(m, name, ml) == 0)
        if (!b->store) {
                route_reply(c, id, 503, "this broker hosts no store", NULL, 0, 0);
                return;
        }
        body = (const char *)bframe_body(f);
        m = f->member; /* bframe_body re-points the names */
        if (IS("storeRead"))
                do_read(c, id, body, len, 0);
        else if (IS("storeReadKeyed"))
                do_read(c, id, body, len, HYB_READ_KEYED);
        else if (IS("storeReadPage"))
                do_read_page(c, id, body, len);
        else if (IS("storeWrite"))
                do_write(c, id, body, len, 0, false);
        else if (IS("storePublish"))
                do_write(c, id, body, len, HYB_WRITE_TRANSIENT, false);
        else if (IS("storeDelete"))
                do_write(c, id, body, len, 0, true);
        else if (IS("storeSubscribe"))
                do_subscribe(c, id, body, len);
        else if (IS("storeUnsubscribe"))
                do_unsubscribe(c, id, body, len);
        else /* "storeRead\0junk" is no name at all: 406, as for any builtin method */
                builtin_reply_unknown(c, id, "store", m, ml);
#undef IS
}

void store_conn_gone(bconn *c)
{
        for (struct bswrite *w = c->swrites; w; w = w->next)
                w->conn = NULL; /* committed all the same, answered to no one */
        c->swrites = NULL;
        cluster_conn_gone(c);
        while (c->ssubs) {
                struct bssub *s = c->ssubs;
                c->ssubs = s->next;
                sub_free(c, s);
        }
}

/* ---------------------------------------------------------------- setup */

void store_detach(hyb_broker *b)
{
        if (b->store_ev) {
                event_free(b->store_ev);
                b->store_ev = NULL;
        }
        if (b->store_timer) {
                event_free(b->store_timer);
                b->store_timer = NULL;
        }
        if (b->replay_timer) {
                event_free(b->replay_timer);
                b->replay_timer = NULL;
        }
        store_acl_set(b, NULL, 0);
        format_cache_clear(b);
        squota_free(b->squota);
        b->squota = NULL;
        fwd_clear(b);
        free(b->fwd);
        b->fwd = NULL;
        b->alloc_fwd = 0;
        b->store_be = hyb_backend_unref(b->store_be);
        b->store = hyb_store_unref(b->store);
}

HYB_EXPORT int hyb_broker_set_store(hyb_broker *b, hyb_store *st)
{
        int fd, r;

        hyb_assert_return(b && st, -EINVAL);
        if (b->store)
                return -EBUSY;
        fd = hyb_store_get_fd(st);
        if (fd < 0)
                return fd;
        b->store = hyb_store_ref(st);
        r = squota_new(&b->squota);
        if (r >= 0)
                r = hyb_backend_new_store(st, &b->store_be); /* keyed reads */
        if (r < 0) {
                store_detach(b);
                return r;
        }
        b->store_ev = event_new(b->base, fd, EV_READ | EV_PERSIST, store_io, b);
        b->store_timer = evtimer_new(b->base, store_io, b);
        if (!b->store_ev || !b->store_timer || event_add(b->store_ev, NULL) < 0) {
                store_detach(b);
                return -ENOMEM;
        }
        r = store_acl_build(b->c, &b->acl, &b->n_acl);
        if (r < 0) {
                store_detach(b);
                return r;
        }
        store_io(-1, 0, b); /* arms the timer if the store wants one */
        broker_feed_setup(b); /* the revocation feed lives in this store */
        return 0;
}

HYB_EXPORT hyb_store *hyb_broker_get_store(const hyb_broker *b)
{
        return b ? b->store : NULL;
}

HYB_EXPORT int hyb_broker_config_open_store(const hyb_broker_config *cfg, hyb_store **ret,
                                            hyb_error *reterr)
{
        hyb_store_options o;

        hyb_assert_return(cfg && ret, -EINVAL);
        hyb_store_options_init(&o);
        if (cfg->c.store_durability >= 0)
                o.durability = (hyb_durability)cfg->c.store_durability;
        if (cfg->c.store_max_value_bytes)
                o.max_value_bytes = cfg->c.store_max_value_bytes;
        if (cfg->c.store_max_depth)
                o.max_depth = cfg->c.store_max_depth;
        /* At durability full the daemon's writes are committed and fsync'ed on the store's
         * thread: the loop goes on serving while the disk works (store-serve.c bswrite). */
        o.commit_thread = cfg->c.store_durability == HYB_DURABILITY_FULL;
        /* The host store is written by every local peer: its number of keys is bounded by
         * default (with max_value_bytes, its size), so millions of writes cannot grow the
         * daemon without end. */
        o.max_keys = cfg->c.store_max_keys ? cfg->c.store_max_keys : STORE_MAX_KEYS_DEFAULT;
        return hyb_store_open(cfg->c.store_path, &o, ret, reterr);
}
