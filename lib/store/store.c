/* SPDX-License-Identifier: MIT */
/*
 * The store handle: open/close, the message queue and its eventfd,
 * subscriptions, process/wait, and catching up with other processes'
 * writes through the database's change journal.
 *
 *   write ──► index + subs_match ──► queue: msg → msg → done → msg ──► process()
 *                                     (FIFO under st->lock)            (callbacks run
 *                                                                       without the lock)
 *
 * One FIFO for messages and completions keeps per-subscriber write order:
 * messages are queued under the lock in the order the writes are applied,
 * and only one thread dispatches at a time (st->dispatching).
 */
#include <math.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "store-internal.h"
#include "common/ref.h"
#include "common/sized.h"

HYB_EXPORT void hyb_store_options_init_sized(hyb_store_options *opts, size_t size)
{
        hyb_store_options d = { .size = sizeof(d),
                                .durability = HYB_DURABILITY_NORMAL,
                                .max_value_bytes = 1u << 20,
                                .max_depth = 32,
                                .max_subscriptions = 65536,
                                .busy_timeout_ms = 5000,
                                .journal_max = 4096,
                                .poll_interval_ms = 25 };

        sized_init(opts, size, &d, sizeof(d));
}

/* The symbol of programs built before _init_sized (the header's macro hides the name). */
HYB_EXPORT void (hyb_store_options_init)(hyb_store_options *opts)
{
        hyb_store_options_init_sized(opts, sizeof(*opts));
}

/*
 * Under st->lock.  A kick while held is owed to the holder's release instead; the hold and the
 * release take no lock, so the owed flag and the hold count pair up as in Dekker's algorithm
 * (all sequentially consistent): the kicker sets kick_owed and then looks at kick_holds again,
 * the release lowers kick_holds and then looks at kick_owed, so at least one of the two sees
 * the other and the kick is written by someone.
 */
void store_kick(hyb_store *st)
{
        uint64_t one = 1;

        if (atomic_load(&st->kick_holds)) {
                atomic_store(&st->kick_owed, true);
                if (atomic_load(&st->kick_holds))
                        return;
                /* released meanwhile: the release may not have seen the debt */
                atomic_store(&st->kick_owed, false);
        }
        if (write(st->efd, &one, sizeof(one)) < 0) {
                /* EAGAIN: the counter is already non-zero, the fd already readable */
        }
        st->kicked = true;
}

void store_kick_hold(hyb_store *st)
{
        atomic_fetch_add(&st->kick_holds, 1);
}

void store_kick_release(hyb_store *st)
{
        unsigned h = atomic_load(&st->kick_holds);

        /* a release without a hold changes nothing */
        while (h && !atomic_compare_exchange_weak(&st->kick_holds, &h, h - 1))
                ;
        if (h != 1 || !atomic_load(&st->kick_owed))
                return;
        pthread_mutex_lock(&st->lock);
        if (atomic_exchange(&st->kick_owed, false) &&
            (st->q_head || (st->pending && !st->has_committer)))
                store_kick(st);
        pthread_mutex_unlock(&st->lock);
}

static void sub_unref(store_sub *s)
{
        if (s && atomic_fetch_sub(&s->n_ref, 1) == 1) {
                if (s->release)
                        s->release(s->slot.userdata);
                hyb_furi_unref(s->pattern);
                free(s);
        }
}

void store_sub_set_release(hyb_slot *slot, void (*release)(void *userdata))
{
        ((store_sub *)slot)->release = release;
}

void store_queue_one(hyb_store *st, store_sub *s, const hyb_furi *target, hyb_obj *payload,
                     bool retain)
{
        store_msg *m = calloc(1, sizeof(*m));

        if (!m)
                return; /* out of memory: the message is lost, nothing else breaks */
        atomic_fetch_add(&s->n_ref, 1);
        m->sub = s;
        m->target = hyb_furi_ref(target);
        m->payload = hyb_obj_ref(payload ? payload : hyb_obj_noobj());
        m->retain = retain;
        if (!st->q_head)
                store_kick(st);
        *st->q_tail = m;
        st->q_tail = &m->next;
}

void store_queue_done(hyb_store *st, hyb_store_done_fn done, void *ud, int r)
{
        store_msg *m = calloc(1, sizeof(*m));

        if (!m) {
                done(-ENOMEM, ud);
                return;
        }
        m->done = done;
        m->userdata = ud;
        m->r = r;
        if (!st->q_head)
                store_kick(st);
        *st->q_tail = m;
        st->q_tail = &m->next;
}

int store_queue_msgs(hyb_store *st, const hyb_furi *target, hyb_obj *payload, bool retain,
                     store_sub **skip, size_t n_skip)
{
        _cleanup_free_ store_sub **arr = NULL;
        size_t n = 0, alloc = 0;
        int r;

        if (st->subs.n == 0)
                return 0;
        r = subs_match(&st->subs, target, &arr, &n, &alloc);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                bool skipped = false;
                for (size_t k = 0; k < n_skip && !skipped; k++)
                        skipped = skip[k] == arr[i];
                if (!skipped && !arr[i]->dead)
                        store_queue_one(st, arr[i], target, payload, retain);
        }
        return 0;
}

/* Longest EXACT text of an int or a finite real ("-1.2345678901234567e-308" is 24). */
#define SCALAR_TEXT_MAX 32

int store_encode(hyb_store *st, const hyb_obj *v, bool keep, db_value *ret, hyb_error *e)
{
        hyb_obj_kind k = hyb_obj_get_kind(v);
        bool plain = !hyb_obj_get_type_id(v) && !hyb_obj_get_value_id(v);
        char *s = NULL;
        size_t len;
        int r;

        /* A plain int or real fits any limit from SCALAR_TEXT_MAX up and is stored natively
         * (exact): no text is made.  -0.0 stays text (its sign is the text's to keep). */
        if (plain && st->opts.max_value_bytes >= SCALAR_TEXT_MAX &&
            (k == HYB_OBJ_INT || k == HYB_OBJ_REAL)) {
                double d = k == HYB_OBJ_REAL ? hyb_obj_get_real(v) : 0;
                if (k == HYB_OBJ_INT && (!keep || st->db.native)) {
                        if (keep)
                                *ret = (db_value){ .type = SQLITE_INTEGER,
                                                   .i = hyb_obj_get_int(v) };
                        return 0;
                }
                if (k == HYB_OBJ_REAL && isfinite(d) && d != 0 && (!keep || st->db.native)) {
                        if (keep)
                                *ret = (db_value){ .type = SQLITE_FLOAT, .d = d };
                        return 0;
                }
        }
        r = hyb_obj_format(v, HYB_FORMAT_EXACT, &s);
        if (r < 0)
                return err_set(e, HYB_E_TYPE, -1, "a %s cannot be stored",
                               hyb_obj_kind_name(k));
        len = strlen(s);
        if (len > st->opts.max_value_bytes) {
                r = err_set(e, HYB_E_LIMIT, -1, "value of %zu bytes exceeds the limit of %zu",
                            len, st->opts.max_value_bytes);
                hyb_free(s);
                return r;
        }
        if (keep)
                *ret = (db_value){ .type = SQLITE_TEXT, .text = s };
        else
                hyb_free(s);
        return 0;
}

static void msg_free(store_msg *m)
{
        hyb_furi_unref(m->target);
        hyb_obj_unref(m->payload);
        sub_unref(m->sub);
        free(m);
}

/* ---- loading and resync ---- */

typedef struct row {
        hyb_furi *key;
        hyb_obj *value;
} row;

typedef struct rows {
        row *v;
        size_t n, alloc;
} rows;

static void rows_free(rows *rs)
{
        for (size_t i = 0; i < rs->n; i++) {
                hyb_furi_unref(rs->v[i].key);
                hyb_obj_unref(rs->v[i].value);
        }
        free(rs->v);
}

static int collect_row(const char *key, hyb_obj *value, void *ud)
{
        rows *rs = ud;
        int r = grow_array((void **)&rs->v, &rs->alloc, rs->n + 1, sizeof(row));

        if (r < 0)
                return r;
        /* a row we cannot read is damage: db_load reports it, naming the key */
        if (hyb_furi_parse(key, (size_t)-1, NULL, &rs->v[rs->n].key, NULL) < 0)
                return HYB_E_CORRUPT;
        rs->v[rs->n++].value = hyb_obj_ref(value);
        return 0;
}

static bool pending_has(hyb_store *st, const char *key)
{
        for (db_op *op = st->inflight; op; op = op->next)
                if (strcmp(op->key, key) == 0)
                        return true;
        for (db_op *op = st->pending; op; op = op->next)
                if (strcmp(op->key, key) == 0)
                        return true;
        return false;
}

static bool same_stored(const hyb_obj *a, const hyb_obj *b)
{
        const hyb_furi *ia = hyb_obj_get_value_id(a), *ib = hyb_obj_get_value_id(b);

        if (!hyb_obj_equal(a, b))
                return false;
        return (!ia && !ib) || (ia && ib && hyb_furi_equal(ia, ib));
}

/* With st->lock held: makes memory equal to the database, notifying every difference. */
int store_resync_locked(hyb_store *st);
int store_resync_locked(hyb_store *st)
{
        rows rs = { 0 };
        uint64_t gen = ++st->generation;
        _cleanup_free_ hyb_furi **gone = NULL;
        size_t n_gone = 0, alloc_gone = 0;
        int r;

        r = db_load(&st->db, collect_row, &rs, NULL);
        if (r < 0) {
                rows_free(&rs);
                return r;
        }
        for (size_t i = 0; i < rs.n; i++) {
                index_node *tn = index_lookup(&st->index, rs.v[i].key);
                if (pending_has(st, hyb_furi_get_path_str(rs.v[i].key))) {
                        if (tn)
                                tn->mark = gen;
                        continue;
                }
                if (!tn || !tn->value || !same_stored(tn->value, rs.v[i].value)) {
                        if (index_set(&st->index, rs.v[i].key, rs.v[i].value, NULL) < 0)
                                continue;
                        tn = index_lookup(&st->index, rs.v[i].key);
                        store_queue_msgs(st, rs.v[i].key, rs.v[i].value, true, NULL, 0);
                }
                tn->mark = gen;
        }
        for (index_node *n = &st->index.abs_root; n; n = index_next(n, &st->index.abs_root))
                if (n->value && n->mark != gen && !pending_has(st, hyb_furi_get_path_str(n->furi)) &&
                    grow_array((void **)&gone, &alloc_gone, n_gone + 1, sizeof(hyb_furi *)) == 0)
                        gone[n_gone++] = hyb_furi_ref(n->furi);
        for (size_t i = 0; i < n_gone; i++) {
                index_node *tn = index_lookup(&st->index, gone[i]);
                if (tn && tn->value) {
                        index_clear(&st->index, tn, NULL);
                        store_queue_msgs(st, gone[i], hyb_obj_noobj(), true, NULL, 0);
                }
                hyb_furi_unref(gone[i]);
        }
        rows_free(&rs);
        return 1;
}

/* Applies other processes' journal rows; > 0 when something changed.  wait false (reads and
 * writes): skip the poll when another thread is using the connection (a commit and its fsync,
 * or a poll), rather than wait for it: the commit leader's fsync must not hold up the writers
 * that queue the next batch.  process() waits, so it never misses a poll. */
static int sync_remote(hyb_store *st, bool wait)
{
        db_change *c = NULL;
        size_t n = 0;
        bool gap = false, any_own = false;
        uint64_t now;
        int r, did = 0;

        if (!st->persistent)
                return 0;
        if (!wait) {
                if (pthread_mutex_trylock(&st->sync_lock) != 0)
                        return 0;
        } else
                pthread_mutex_lock(&st->sync_lock);
        now = hyb_now_usec();
        r = db_poll(&st->db, wait, &c, &n, &gap);
        if (r == -EBUSY) {
                /* The committer is at the disk: poll again after the interval, not at once
                 * (a loop calling process would otherwise spin while the fsync runs). */
                if (st->has_committer) {
                        pthread_mutex_lock(&st->lock);
                        st->last_poll_usec = now;
                        pthread_mutex_unlock(&st->lock);
                }
                pthread_mutex_unlock(&st->sync_lock);
                return 0;
        }
        /* last_poll_usec is read by get_timeout from other threads: set it under the lock */
        pthread_mutex_lock(&st->lock);
        st->last_poll_usec = now;
        if (r < 0) {
                pthread_mutex_unlock(&st->lock);
                pthread_mutex_unlock(&st->sync_lock);
                return r;
        }
        if (gap && (did = store_resync_locked(st)) < 0) {
                /* damage in kv: memory keeps what was read before, and the caller hears */
                pthread_mutex_unlock(&st->lock);
                pthread_mutex_unlock(&st->sync_lock);
                db_changes_free(c, n);
                return did;
        }
        for (size_t i = 0; i < n; i++)
                any_own |= c[i].own;
        for (size_t i = 0; i < n; i++) {
                hyb_furi *k = NULL;
                hyb_obj *v = NULL;
                bool later_own = false;

                if (c[i].own || pending_has(st, c[i].key))
                        continue;
                /* our own later write to the same key is what the database holds */
                for (size_t j = i + 1; any_own && j < n && !later_own; j++)
                        later_own = c[j].own && strcmp(c[j].key, c[i].key) == 0;
                if (later_own || c[i].bad ||
                    hyb_furi_parse(c[i].key, (size_t)-1, NULL, &k, NULL) < 0)
                        continue;
                v = hyb_obj_ref(c[i].value);
                if (v) {
                        if (index_set(&st->index, k, v, NULL) == 0)
                                store_queue_msgs(st, k, v, true, NULL, 0);
                } else {
                        index_node *tn = index_lookup(&st->index, k);
                        if (tn && tn->value) {
                                index_clear(&st->index, tn, NULL);
                                store_queue_msgs(st, k, hyb_obj_noobj(), true, NULL, 0);
                        }
                }
                did = 1;
                hyb_furi_unref(k);
                hyb_obj_unref(v);
        }
        pthread_mutex_unlock(&st->lock);
        pthread_mutex_unlock(&st->sync_lock);
        db_changes_free(c, n);
        return did;
}

int store_sync(hyb_store *st);
int store_sync(hyb_store *st)
{
        return sync_remote(st, false);
}

/* ---- open / close ---- */

static void store_free(hyb_store *st)
{
        store_msg *m;

        if (!st)
                return;
        commit_thread_stop(st);
        if (st->persistent) {
                pthread_mutex_lock(&st->lock);
                commit_run(st, NULL);
                pthread_mutex_unlock(&st->lock);
        }
        /* completions still run, so their userdata is released; messages are dropped */
        while ((m = st->q_head)) {
                st->q_head = m->next;
                if (!m->sub && m->done)
                        m->done(m->r, m->userdata);
                msg_free(m);
        }
        if (st->persistent)
                db_close(&st->db);
        db_op_free(st->pending);
        store_walk_order_free(st);
        index_done(&st->index);
        subs_done(&st->subs);
        if (st->efd >= 0)
                close(st->efd);
        pthread_cond_destroy(&st->committed);
        pthread_cond_destroy(&st->queued);
        pthread_cond_destroy(&st->commit_cv);
        pthread_mutex_destroy(&st->sync_lock);
        pthread_mutex_destroy(&st->lock);
        free(st);
}

static int load_row(const char *key, hyb_obj *value, void *ud)
{
        hyb_store *st = ud;
        hyb_furi *k = NULL;
        int r;

        if (hyb_furi_parse(key, (size_t)-1, NULL, &k, NULL) < 0)
                return HYB_E_CORRUPT; /* db_load reports it, naming the key */
        r = index_set(&st->index, k, value, NULL);
        hyb_furi_unref(k);
        return r;
}

static int store_new(const char *path, const hyb_store_options *opts, bool relative,
                     hyb_store **ret, hyb_error *e)
{
        hyb_store *st;
        int r;

        st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        atomic_init(&st->n_ref, 1);
        pthread_mutex_init(&st->lock, NULL);
        pthread_mutex_init(&st->sync_lock, NULL);
        pthread_cond_init(&st->committed, NULL);
        pthread_cond_init(&st->queued, NULL);
        pthread_cond_init(&st->commit_cv, NULL);
        hyb_store_options_init(&st->opts);
        if (opts) {
                size_t sz = opts->size && opts->size < sizeof(*opts) ? opts->size : sizeof(*opts);
                memcpy(&st->opts, opts, sz);
                st->opts.size = sizeof(*opts);
        }
        if (!st->opts.max_value_bytes)
                st->opts.max_value_bytes = 1u << 20;
        if (!st->opts.max_depth)
                st->opts.max_depth = 32;
        if (!st->opts.max_subscriptions)
                st->opts.max_subscriptions = 65536;
        if (!st->opts.poll_interval_ms)
                st->opts.poll_interval_ms = 25;
        st->relative = relative;
        st->q_tail = &st->q_head;
        st->pending_tail = &st->pending;
        index_init(&st->index);
        subs_init(&st->subs);
        st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (st->efd < 0) {
                r = -errno;
                store_free(st);
                return r;
        }
        if (path && *path && st->opts.durability != HYB_DURABILITY_MEMORY) {
                r = db_open(&st->db, path, &st->opts, e);
                st->persistent = true;
                if (r == 0)
                        r = db_load(&st->db, load_row, st, e);
                if (r == 0 && st->opts.commit_thread && !st->db.readonly)
                        r = commit_thread_start(st);
                if (r < 0) {
                        store_free(st);
                        return r;
                }
        } else
                st->opts.durability = HYB_DURABILITY_MEMORY;
        *ret = st;
        return 0;
}

HYB_EXPORT int hyb_store_open(const char *path, const hyb_store_options *opts, hyb_store **ret,
                              hyb_error *reterr)
{
        hyb_assert_return(ret, -EINVAL);
        hyb_assert_return(!opts || opts->durability <= HYB_DURABILITY_FULL, -EINVAL);
        return store_new(path, opts, false, ret, reterr);
}

int store_open_program(hyb_store **ret)
{
        return store_new(NULL, NULL, true, ret, NULL);
}

HYB_DEFINE_REF_UNREF(hyb_store, hyb_store, store_free)

/* ---- subscriptions ---- */

static void sub_disconnect(hyb_slot *slot)
{
        store_sub *s = (store_sub *)slot;
        hyb_store *st = s->store;

        pthread_mutex_lock(&st->lock);
        subs_remove(&st->subs, s);
        s->dead = true;
        pthread_mutex_unlock(&st->lock);
        sub_unref(s);
        hyb_store_unref(st);
}

static const slot_ops sub_slot_ops = { .disconnect = sub_disconnect };

typedef struct replay_ctx {
        hyb_store *st;
        store_sub *sub;
} replay_ctx;

static int replay_one(const char *path, const store_pos *p, void *ud)
{
        replay_ctx *c = ud;
        hyb_furi *f = NULL;

        if (p->tn && p->tn->value) {
                store_queue_one(c->st, c->sub, p->tn->furi, (hyb_obj *)p->value, true);
                return 0;
        }
        if (hyb_furi_parse(path, (size_t)-1, NULL, &f, NULL) < 0)
                return 0;
        store_queue_one(c->st, c->sub, f, (hyb_obj *)p->value, true);
        hyb_furi_unref(f);
        return 0;
}

int store_check_furi(hyb_store *st, const hyb_furi *f, hyb_error *e);

HYB_EXPORT int hyb_store_subscribe(hyb_store *st, const hyb_furi *pattern, unsigned flags,
                                   hyb_store_msg_fn fn, void *userdata, hyb_slot **ret,
                                   hyb_error *reterr)
{
        size_t ns;
        store_sub *s;
        int r;

        hyb_assert_return(st && pattern && fn && ret, -EINVAL);
        hyb_assert_return((flags & ~HYB_SUBSCRIBE_REPLAY) == 0, -EINVAL);
        r = store_check_furi(st, pattern, reterr);
        if (r < 0)
                return r;
        ns = hyb_furi_get_n_segments(pattern);
        if (hyb_furi_is_branch(pattern) &&
            (ns == 0 || hyb_furi_get_segment_kind(pattern, ns - 1) != HYB_SEG_HASH))
                return err_set(reterr, -EINVAL, -1,
                               "subscribe to a node or a pattern, not the branch '%s' "
                               "(its children are '%s+')",
                               hyb_furi_get_str(pattern), hyb_furi_get_path_str(pattern));
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        slot_init(&s->slot, &sub_slot_ops, userdata);
        atomic_init(&s->n_ref, 1);
        s->fn = fn;
        r = hyb_furi_strip_query(pattern, &s->pattern);
        if (r < 0) {
                free(s);
                return r;
        }
        pthread_mutex_lock(&st->lock);
        if (st->subs.n >= st->opts.max_subscriptions) {
                pthread_mutex_unlock(&st->lock);
                sub_unref(s);
                return err_set(reterr, HYB_E_LIMIT, -1,
                               "too many subscriptions (limit %zu)", st->opts.max_subscriptions);
        }
        r = subs_add(&st->subs, s);
        if (r < 0) {
                pthread_mutex_unlock(&st->lock);
                sub_unref(s);
                return r;
        }
        /* Under the same lock as the add: replayed values come before any later write. */
        if (flags & HYB_SUBSCRIBE_REPLAY) {
                replay_ctx c = { st, s };
                store_walk(st, s->pattern, true, NULL, replay_one, &c);
        }
        s->store = hyb_store_ref(st);
        pthread_mutex_unlock(&st->lock);
        *ret = &s->slot;
        return 0;
}

/* ---- the loop ---- */

HYB_EXPORT int hyb_store_get_fd(const hyb_store *st)
{
        hyb_assert_return(st, -EINVAL);
        return st->efd;
}

HYB_EXPORT int hyb_store_get_timeout(const hyb_store *cst, uint64_t *ret_usec)
{
        hyb_store *st = store_mut(cst);
        uint64_t t = UINT64_MAX;

        hyb_assert_return(st && ret_usec, -EINVAL);
        pthread_mutex_lock(&st->lock);
        if (st->q_head || (st->pending && !st->has_committer))
                t = 0; /* due now: any time in the past (the committer needs no call) */
        else if (st->persistent && st->subs.n > 0)
                t = st->last_poll_usec + st->opts.poll_interval_ms * 1000u;
        pthread_mutex_unlock(&st->lock);
        *ret_usec = t;
        return 0;
}

HYB_EXPORT int hyb_store_process(hyb_store *st)
{
        store_msg *list, *m;
        uint64_t cnt;
        int did = 0, r;

        hyb_assert_return(st, -EINVAL);
        /* With a committer, the loop calling process must not wait for the connection while
         * the committer's fsync holds it: the poll is skipped and comes again later. */
        r = sync_remote(st, !st->has_committer);
        if (r > 0)
                did = 1;
        pthread_mutex_lock(&st->lock);
        if (st->pending && !st->committing && !st->has_committer) {
                commit_run(st, NULL);
                did = 1;
        }
        if (st->dispatching) {
                pthread_mutex_unlock(&st->lock);
                return did;
        }
        /* Cleared only when written: a call that finds the queue filled under a kick hold
         * (store_kick_hold) has no read to make. */
        if (st->kicked && read(st->efd, &cnt, sizeof(cnt)) < 0) {
                /* EAGAIN: nothing was signalled */
        }
        st->kicked = false;
        /* Deliver what is queued now; what callbacks queue waits for the next call. */
        list = st->q_head;
        st->q_head = NULL;
        st->q_tail = &st->q_head;
        st->dispatching = list != NULL;
        pthread_mutex_unlock(&st->lock);
        if (!list)
                return did;
        while ((m = list)) {
                list = m->next;
                if (m->sub) {
                        if (!m->sub->dead)
                                m->sub->fn(m->target, m->payload, m->retain,
                                           m->sub->slot.userdata);
                } else if (m->done)
                        m->done(m->r, m->userdata);
                msg_free(m);
        }
        pthread_mutex_lock(&st->lock);
        st->dispatching = false;
        if (st->q_head)
                store_kick(st);
        pthread_mutex_unlock(&st->lock);
        return 1;
}

HYB_EXPORT int hyb_store_wait(hyb_store *st, uint64_t timeout_usec)
{
        struct pollfd p;
        uint64_t t;
        int ms, r;

        hyb_assert_return(st, -EINVAL);
        hyb_store_get_timeout(st, &t);
        ms = deadline_poll_ms(t, timeout_usec);
        p = (struct pollfd){ .fd = st->efd, .events = POLLIN };
        r = poll(&p, 1, ms);
        if (r < 0 && errno != EINTR)
                return -errno;
        return hyb_store_process(st);
}
