/* SPDX-License-Identifier: MIT */
/*
 * Backends: the seam between the scope router and the places fURIs live
 * (include/hybrid/store.h states the contract every backend keeps).
 *
 *   hyb_scope ──route──> hyb_backend ──vtable──> impl
 *                          │                      ├─ hyb_store  (this file: store_ops)
 *                          │                      ├─ a bus client (lib/bus)
 *                          │                      └─ a program's own
 *                          └─ backend_sub (a hyb_slot) ──cookie──> the impl's registration
 *
 * The wrapper checks arguments, turns a write of noobj into a delete, and
 * owns the subscription slots: an impl names a registration by a cookie, the
 * slot's last unref hands the cookie back to its unsubscribe op.  That way a
 * backend written outside the library (a test double, a binding) needs no
 * slot constructor of its own.  The slot's userdata is what the callback
 * gets, read at each message, so hyb_slot_set_userdata works as everywhere.
 */
#include <assert.h>
#include <poll.h>
#include <stddef.h>

#include "store-internal.h"
#include "common/ref.h"

struct hyb_backend {
        atomic_uint n_ref;
        const hyb_backend_vtable *vt;
        void *impl;
};

/* The op named field, or NULL when the backend's table is too short to hold it. */
#define VT_OP(b, field)                                                                     \
        ((b)->vt->size >= offsetof(hyb_backend_vtable, field) + sizeof((b)->vt->field)     \
                 ? (b)->vt->field                                                          \
                 : NULL)

HYB_EXPORT int hyb_backend_new(const hyb_backend_vtable *vtable, void *impl, hyb_backend **ret)
{
        hyb_backend *b;

        hyb_assert_return(vtable && ret, -EINVAL);
        /* every required op lies before get_fd... except process: check the size covers it */
        hyb_assert_return(vtable->size >= offsetof(hyb_backend_vtable, process) +
                                                  sizeof(vtable->process),
                          -EINVAL);
        hyb_assert_return(vtable->read && vtable->write && vtable->del && vtable->subscribe &&
                                  vtable->unsubscribe && vtable->process,
                          -EINVAL);
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        atomic_init(&b->n_ref, 1);
        b->vt = vtable;
        b->impl = impl;
        *ret = b;
        return 0;
}

static void backend_free(hyb_backend *b)
{
        void (*destroy)(void *) = VT_OP(b, destroy);

        if (destroy)
                destroy(b->impl);
        free(b);
}

HYB_DEFINE_REF_UNREF(hyb_backend, hyb_backend, backend_free)

HYB_EXPORT void *hyb_backend_get_impl(const hyb_backend *b)
{
        return b ? b->impl : NULL;
}

HYB_EXPORT int hyb_backend_read(hyb_backend *b, const hyb_furi *target, unsigned flags,
                                hyb_obj **ret, hyb_error *reterr)
{
        hyb_assert_return(b && target && ret, -EINVAL);
        hyb_assert_return((flags & ~(unsigned)HYB_READ_KEYED) == 0, -EINVAL);
        return b->vt->read(b->impl, target, flags, ret, reterr);
}

HYB_EXPORT int hyb_backend_write(hyb_backend *b, const hyb_furi *target, const hyb_obj *value,
                                 unsigned flags, hyb_error *reterr)
{
        hyb_assert_return(b && target && value, -EINVAL);
        hyb_assert_return((flags & ~(unsigned)HYB_WRITE_TRANSIENT) == 0, -EINVAL);
        if (hyb_obj_is_noobj(value))
                return b->vt->del(b->impl, target, flags, reterr);
        return b->vt->write(b->impl, target, value, flags, reterr);
}

HYB_EXPORT int hyb_backend_delete(hyb_backend *b, const hyb_furi *target, unsigned flags,
                                  hyb_error *reterr)
{
        hyb_assert_return(b && target, -EINVAL);
        hyb_assert_return((flags & ~(unsigned)HYB_WRITE_TRANSIENT) == 0, -EINVAL);
        return b->vt->del(b->impl, target, flags, reterr);
}

/* ---- subscription slots ---- */

typedef struct backend_sub {
        hyb_slot slot; /* first: the slot is the registration */
        hyb_backend *b;
        hyb_store_msg_fn fn;
        void *cookie;
} backend_sub;

static void sub_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        backend_sub *s = ud;

        s->fn(target, payload, retain, s->slot.userdata);
}

static void sub_disconnect(hyb_slot *slot)
{
        backend_sub *s = (backend_sub *)slot;

        /* the contract: once unsubscribe returns, sub_msg never runs with s again */
        s->b->vt->unsubscribe(s->b->impl, s->cookie);
        hyb_backend_unref(s->b);
        free(s);
}

static const slot_ops sub_slot_ops = { .disconnect = sub_disconnect };

HYB_EXPORT int hyb_backend_subscribe(hyb_backend *b, const hyb_furi *pattern, unsigned flags,
                                     hyb_store_msg_fn fn, void *userdata, hyb_slot **ret_slot,
                                     hyb_error *reterr)
{
        backend_sub *s;
        int r;

        hyb_assert_return(b && pattern && fn && ret_slot, -EINVAL);
        hyb_assert_return((flags & ~(unsigned)HYB_SUBSCRIBE_REPLAY) == 0, -EINVAL);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        slot_init(&s->slot, &sub_slot_ops, userdata);
        s->fn = fn;
        r = b->vt->subscribe(b->impl, pattern, flags, sub_msg, s, &s->cookie, reterr);
        if (r < 0) {
                free(s);
                return r;
        }
        assert(s->cookie);
        s->b = hyb_backend_ref(b);
        *ret_slot = &s->slot;
        return 0;
}

/* ---- the loop ---- */

HYB_EXPORT int hyb_backend_get_fd(hyb_backend *b)
{
        int (*op)(void *);

        hyb_assert_return(b, -EINVAL);
        op = VT_OP(b, get_fd);
        return op ? op(b->impl) : -EOPNOTSUPP;
}

HYB_EXPORT int hyb_backend_get_events(hyb_backend *b)
{
        int (*op)(void *);

        hyb_assert_return(b, -EINVAL);
        op = VT_OP(b, get_events);
        return op ? op(b->impl) : HYB_BACKEND_EVENT_IN;
}

HYB_EXPORT int hyb_backend_get_timeout(hyb_backend *b, uint64_t *ret_usec)
{
        int (*op)(void *, uint64_t *);

        hyb_assert_return(b && ret_usec, -EINVAL);
        op = VT_OP(b, get_timeout);
        if (!op) {
                *ret_usec = UINT64_MAX;
                return 0;
        }
        return op(b->impl, ret_usec);
}

HYB_EXPORT int hyb_backend_process(hyb_backend *b)
{
        hyb_assert_return(b, -EINVAL);
        return b->vt->process(b->impl);
}

HYB_EXPORT int hyb_backend_wait(hyb_backend *b, uint64_t timeout_usec)
{
        struct pollfd p = { .fd = -1 };
        uint64_t t = UINT64_MAX;
        int ms, r, events;

        hyb_assert_return(b, -EINVAL);
        r = hyb_backend_get_timeout(b, &t);
        if (r < 0)
                return r;
        if (t != UINT64_MAX) {
                uint64_t now = hyb_now_usec();
                t = t > now ? t - now : 0; /* the deadline as a wait */
        }
        if (timeout_usec < t)
                t = timeout_usec;
        ms = t == UINT64_MAX ? -1 : t > 3600000000u ? 3600000 : (int)((t + 999) / 1000);
        r = hyb_backend_get_fd(b);
        if (r < 0 && r != -EOPNOTSUPP)
                return r;
        events = hyb_backend_get_events(b);
        if (events < 0)
                return events;
        if (r >= 0)
                p = (struct pollfd){ .fd = r, .events = (short)events };
        /* poll with fd -1 (no fd) just sleeps */
        r = poll(&p, 1, ms);
        if (r < 0 && errno != EINTR)
                return -errno;
        return hyb_backend_process(b);
}

/* ---- the embedded store as a backend ---- */

typedef struct keyed_ctx {
        hyb_obj **keys, **vals;
        size_t n, alloc_k, alloc_v;
} keyed_ctx;

static int keyed_one(const hyb_furi *furi, const hyb_obj *value, void *ud)
{
        keyed_ctx *k = ud;
        int r;

        if (grow_array((void **)&k->keys, &k->alloc_k, k->n + 1, sizeof(hyb_obj *)) < 0 ||
            grow_array((void **)&k->vals, &k->alloc_v, k->n + 1, sizeof(hyb_obj *)) < 0)
                return -ENOMEM;
        r = hyb_obj_new_uri(furi, &k->keys[k->n]);
        if (r < 0)
                return r;
        k->vals[k->n++] = hyb_obj_ref(value);
        return 0;
}

/* A pattern read as one rec of fURI => value, in key order. */
static int store_read_keyed(hyb_store *st, const hyb_furi *pattern, hyb_obj **ret,
                            hyb_error *e)
{
        keyed_ctx k = { 0 };
        int r = hyb_store_scan(st, pattern, keyed_one, &k, e);

        if (r == 0)
                r = hyb_obj_new_rec(k.keys, k.vals, k.n, ret);
        for (size_t i = 0; i < k.n; i++) {
                hyb_obj_unref(k.keys[i]);
                hyb_obj_unref(k.vals[i]);
        }
        free(k.keys);
        free(k.vals);
        return r;
}

static int store_op_read(void *impl, const hyb_furi *target, unsigned flags, hyb_obj **ret,
                         hyb_error *e)
{
        if ((flags & HYB_READ_KEYED) && hyb_furi_is_pattern(target) &&
            !hyb_furi_is_branch(target))
                return store_read_keyed(impl, target, ret, e);
        return hyb_store_read(impl, target, ret, e);
}

static int store_op_write(void *impl, const hyb_furi *target, const hyb_obj *value,
                          unsigned flags, hyb_error *e)
{
        return hyb_store_write(impl, target, value, flags, e);
}

static int store_op_del(void *impl, const hyb_furi *target, unsigned flags, hyb_error *e)
{
        return hyb_store_write(impl, target, hyb_obj_noobj(), flags, e);
}

static int store_op_subscribe(void *impl, const hyb_furi *pattern, unsigned flags,
                              hyb_store_msg_fn fn, void *userdata, void **ret_cookie,
                              hyb_error *e)
{
        hyb_slot *slot = NULL;
        int r = hyb_store_subscribe(impl, pattern, flags, fn, userdata, &slot, e);

        if (r < 0)
                return r;
        *ret_cookie = slot;
        return 0;
}

static void store_op_unsubscribe(void *impl, void *cookie)
{
        (void)impl;
        /* the store's own slot: drops the subscription (under the store's lock, so a
         * process() running on another thread skips its queued messages) */
        hyb_slot_unref(cookie);
}

static int store_op_get_fd(void *impl)
{
        return hyb_store_get_fd(impl);
}

static int store_op_get_events(void *impl)
{
        (void)impl;
        return HYB_BACKEND_EVENT_IN;
}

static int store_op_get_timeout(void *impl, uint64_t *ret_usec)
{
        return hyb_store_get_timeout(impl, ret_usec);
}

static int store_op_process(void *impl)
{
        return hyb_store_process(impl);
}

static void store_op_destroy(void *impl)
{
        hyb_store_unref(impl);
}

static const hyb_backend_vtable store_ops = {
        .size = sizeof(hyb_backend_vtable),
        .read = store_op_read,
        .write = store_op_write,
        .del = store_op_del,
        .subscribe = store_op_subscribe,
        .unsubscribe = store_op_unsubscribe,
        .get_fd = store_op_get_fd,
        .get_events = store_op_get_events,
        .get_timeout = store_op_get_timeout,
        .process = store_op_process,
        .destroy = store_op_destroy,
};

HYB_EXPORT int hyb_store_get_backend(hyb_store *st, hyb_backend **ret)
{
        int r;

        hyb_assert_return(st && ret, -EINVAL);
        r = hyb_backend_new(&store_ops, st, ret);
        if (r < 0)
                return r;
        hyb_store_ref(st);
        return 0;
}

int store_backend_new_program(hyb_backend **ret)
{
        hyb_store *st = NULL;
        int r = store_open_program(&st);

        if (r < 0)
                return r;
        r = hyb_store_get_backend(st, ret);
        hyb_store_unref(st);
        return r;
}
