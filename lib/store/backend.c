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
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
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
        /* the table must reach process, the last required op (destroy may lie past it) */
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

const hyb_backend_vtable *backend_get_vtable(const hyb_backend *b)
{
        return b ? b->vt : NULL;
}

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
        ms = deadline_poll_ms(t, timeout_usec);
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

/*
 * Delivery per handle.  The store queues a message for every matching
 * subscription at the write and hands it out in hyb_store_process, on
 * whichever thread runs it.  A handle's subscriptions are registered with
 * relay() as their callback: it only moves the message into the handle's own
 * queue (under the queue's lock) and signals the handle's eventfd; the
 * handle's process then runs the caller's callbacks, on its own thread.  So
 * each thread that holds its own handle of a shared store gets its
 * subscriptions served on that thread, in write order:
 *
 *   write ─> store queue ─process (any thread)─> relay ─> the handle's relay_q
 *                                                             └─ handle's process ─> fn(ud)
 *
 * Lifetimes: a relay_sub is referenced by the handle's cookie (until
 * unsubscribe), by the store's subscription (until its last queued message
 * is gone: store_sub_set_release) and by each message in the relay_q; it references
 * its relay_q, which outlives the handle if messages still name it.
 */
typedef struct relay_q {
        atomic_uint n_ref;
        pthread_mutex_t lock;
        int efd;                        /* readable while head is not NULL */
        struct relay_msg *head, **tail;
} relay_q;

typedef struct relay_sub {
        atomic_uint n_ref;
        relay_q *q;
        hyb_slot *store_slot;
        hyb_store_msg_fn fn;
        void *userdata;
        bool dead;                      /* under q->lock */
} relay_sub;

typedef struct relay_msg {
        struct relay_msg *next;
        relay_sub *sub;
        hyb_furi *target;
        hyb_obj *payload;
        bool retain;
} relay_msg;

typedef struct store_handle {
        hyb_store *st;
        relay_q *q;
        int pfd;                        /* epoll over the store's fd and q->efd */
} store_handle;

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
                return store_read_keyed(((store_handle *)impl)->st, target, ret, e);
        return hyb_store_read(((store_handle *)impl)->st, target, ret, e);
}

static int store_op_write(void *impl, const hyb_furi *target, const hyb_obj *value,
                          unsigned flags, hyb_error *e)
{
        return hyb_store_write(((store_handle *)impl)->st, target, value, flags, e);
}

static int store_op_del(void *impl, const hyb_furi *target, unsigned flags, hyb_error *e)
{
        return hyb_store_write(((store_handle *)impl)->st, target, hyb_obj_noobj(), flags, e);
}


static void relay_q_unref(relay_q *q)
{
        if (!q || atomic_fetch_sub(&q->n_ref, 1) != 1)
                return;
        assert(!q->head);
        pthread_mutex_destroy(&q->lock);
        if (q->efd >= 0)
                close(q->efd);
        free(q);
}

static void relay_sub_unref(void *p)
{
        relay_sub *rs = p;

        if (!rs || atomic_fetch_sub(&rs->n_ref, 1) != 1)
                return;
        relay_q_unref(rs->q);
        free(rs);
}

static void relay_msg_free(relay_msg *m)
{
        relay_sub_unref(m->sub);
        hyb_furi_unref(m->target);
        hyb_obj_unref(m->payload);
        free(m);
}

static void relay(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        relay_sub *rs = ud;
        relay_q *q = rs->q;
        relay_msg *m = calloc(1, sizeof(*m));
        uint64_t one = 1;

        if (!m)
                return; /* out of memory: the message is lost, as in the store's own queue */
        m->target = hyb_furi_ref(target);
        m->payload = hyb_obj_ref(payload);
        m->retain = retain;
        pthread_mutex_lock(&q->lock);
        if (rs->dead) {
                pthread_mutex_unlock(&q->lock);
                hyb_furi_unref(m->target);
                hyb_obj_unref(m->payload);
                free(m);
                return;
        }
        atomic_fetch_add(&rs->n_ref, 1);
        m->sub = rs;
        *q->tail = m;
        q->tail = &m->next;
        if (write(q->efd, &one, sizeof(one)) < 0) {
                /* EAGAIN: the counter is already non-zero, the fd readable */
        }
        pthread_mutex_unlock(&q->lock);
}

static int store_op_subscribe(void *impl, const hyb_furi *pattern, unsigned flags,
                              hyb_store_msg_fn fn, void *userdata, void **ret_cookie,
                              hyb_error *e)
{
        store_handle *h = impl;
        relay_sub *rs = calloc(1, sizeof(*rs));
        int r;

        if (!rs)
                return -ENOMEM;
        atomic_init(&rs->n_ref, 2); /* the cookie's and the store subscription's */
        atomic_fetch_add(&h->q->n_ref, 1);
        rs->q = h->q;
        rs->fn = fn;
        rs->userdata = userdata;
        r = hyb_store_subscribe(h->st, pattern, flags, relay, rs, &rs->store_slot, e);
        if (r < 0) {
                relay_q_unref(rs->q);
                free(rs);
                return r;
        }
        /* nothing frees the store's subscription before our unsubscribe: setting it now is
         * in time even if another thread already relays a replayed value */
        store_sub_set_release(rs->store_slot, relay_sub_unref);
        *ret_cookie = rs;
        return 0;
}

static void store_op_unsubscribe(void *impl, void *cookie)
{
        relay_sub *rs = cookie;

        pthread_mutex_lock(&rs->q->lock);
        rs->dead = true; /* relay() queues nothing more, process() skips what is queued */
        pthread_mutex_unlock(&rs->q->lock);
        hyb_slot_unref(rs->store_slot);
        relay_sub_unref(rs);
}

static int store_op_get_fd(void *impl)
{
        return ((store_handle *)impl)->pfd;
}

static int store_op_get_events(void *impl)
{
        (void)impl;
        return HYB_BACKEND_EVENT_IN;
}

static int store_op_get_timeout(void *impl, uint64_t *ret_usec)
{
        store_handle *h = impl;
        bool ready;
        int r;

        pthread_mutex_lock(&h->q->lock);
        ready = h->q->head != NULL;
        pthread_mutex_unlock(&h->q->lock);
        if (ready) {
                *ret_usec = 0;
                return 0;
        }
        r = hyb_store_get_timeout(h->st, ret_usec);
        return r;
}

static int store_op_process(void *impl)
{
        store_handle *h = impl;
        relay_q *q = h->q;
        relay_msg *list, *m;
        uint64_t cnt;
        int r = hyb_store_process(h->st); /* relays to every handle's queue, ours included */

        if (r < 0)
                return r;
        pthread_mutex_lock(&q->lock);
        if (read(q->efd, &cnt, sizeof(cnt)) < 0) {
                /* EAGAIN: nothing was signalled */
        }
        /* what callbacks cause waits for the next call, as in the store */
        list = q->head;
        q->head = NULL;
        q->tail = &q->head;
        pthread_mutex_unlock(&q->lock);
        if (list)
                r = 1;
        while ((m = list)) {
                bool dead;
                list = m->next;
                pthread_mutex_lock(&q->lock);
                dead = m->sub->dead;
                pthread_mutex_unlock(&q->lock);
                if (!dead)
                        m->sub->fn(m->target, m->payload, m->retain, m->sub->userdata);
                relay_msg_free(m);
        }
        return r;
}

static void store_op_destroy(void *impl)
{
        store_handle *h = impl;
        relay_msg *m;

        if (h->q) {
                pthread_mutex_lock(&h->q->lock);
                m = h->q->head;
                h->q->head = NULL;
                h->q->tail = &h->q->head;
                pthread_mutex_unlock(&h->q->lock);
                while (m) {
                        relay_msg *next = m->next;
                        relay_msg_free(m);
                        m = next;
                }
        }
        if (h->pfd >= 0)
                close(h->pfd);
        relay_q_unref(h->q);
        hyb_store_unref(h->st);
        free(h);
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

HYB_EXPORT int hyb_backend_new_store(hyb_store *st, hyb_backend **ret)
{
        struct epoll_event ev = { .events = EPOLLIN };
        store_handle *h;
        int r;

        hyb_assert_return(st && ret, -EINVAL);
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->pfd = -1;
        h->q = calloc(1, sizeof(*h->q));
        if (!h->q) {
                free(h);
                return -ENOMEM;
        }
        atomic_init(&h->q->n_ref, 1);
        pthread_mutex_init(&h->q->lock, NULL);
        h->q->tail = &h->q->head;
        h->q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        h->st = hyb_store_ref(st);
        if (h->q->efd < 0) {
                r = -errno;
                store_op_destroy(h);
                return r;
        }
        /* one fd for a loop to wait on: the store's (messages to relay, commits) and ours */
        h->pfd = epoll_create1(EPOLL_CLOEXEC);
        if (h->pfd < 0 || epoll_ctl(h->pfd, EPOLL_CTL_ADD, hyb_store_get_fd(st), &ev) < 0 ||
            epoll_ctl(h->pfd, EPOLL_CTL_ADD, h->q->efd, &ev) < 0) {
                r = -errno;
                store_op_destroy(h);
                return r;
        }
        r = hyb_backend_new(&store_ops, h, ret);
        if (r < 0)
                store_op_destroy(h);
        return r;
}

int store_backend_new_program(hyb_backend **ret)
{
        hyb_store *st = NULL;
        int r = store_open_program(&st);

        if (r < 0)
                return r;
        r = hyb_backend_new_store(st, ret);
        hyb_store_unref(st);
        return r;
}
