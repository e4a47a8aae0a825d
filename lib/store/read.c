/* SPDX-License-Identifier: MIT */
/*
 * The read operations of the store: a node (one hash lookup, or an element of
 * a stored lst/rec above it), a pattern (a stream of the matches in key
 * order), a branch (one rec of full fURI => value) and scan.  Every read
 * first catches up with other processes' writes (store_sync), then reads
 * memory under st->lock.
 */
#include "store-internal.h"
#include "furi/furi-internal.h" /* the node read's fast path reads fURI fields inline */

typedef struct coll {
        hyb_furi **keys;
        hyb_obj **vals;
        size_t n, alloc_k, alloc_v;
        int kind;
        const hyb_furi *target;
        hyb_error *e;
        int r;
        const hyb_furi *after;  /* a page: the matches after this key */
        size_t limit;           /* a page: at most this many (0: all) */
        bool more;              /* a page: a match past limit was found (the walk stopped) */
} coll;

/* Reloading after another process's writes found a row that cannot be read. */
static int corrupt(hyb_store *st, hyb_error *e)
{
        return err_set(e, HYB_E_CORRUPT, -1,
                       "%s: corrupt: reloading after another process's writes found a row that "
                       "cannot be read (see 'hybrid store check')", st->db.path);
}

static void coll_free(coll *c)
{
        for (size_t i = 0; i < c->n; i++) {
                hyb_furi_unref(c->keys[i]);
                hyb_obj_unref(c->vals[i]);
        }
        free(c->keys);
        free(c->vals);
}

static int collect(const char *path, const store_pos *p, void *ud)
{
        coll *c = ud;
        hyb_furi *f = NULL;
        int r;

        if (c->limit && c->n == c->limit) {
                c->more = true;
                return 1; /* stop the walk here: the bound is on the work, not on the answer */
        }
        if ((r = store_check_type(c->target, c->kind, p->value, c->e)) < 0) {
                c->r = r;
                return 1;
        }
        if (p->tn && p->tn->value)
                f = hyb_furi_ref(p->tn->furi);
        else if ((r = hyb_furi_parse(path, (size_t)-1, NULL, &f, NULL)) < 0)
                return 0; /* an element whose key cannot form a fURI is skipped */
        if (grow_array((void **)&c->keys, &c->alloc_k, c->n + 1, sizeof(hyb_furi *)) < 0 ||
            grow_array((void **)&c->vals, &c->alloc_v, c->n + 1, sizeof(hyb_obj *)) < 0) {
                hyb_furi_unref(f);
                c->r = -ENOMEM;
                return 1;
        }
        c->keys[c->n] = f;
        c->vals[c->n++] = hyb_obj_ref((hyb_obj *)p->value);
        return 0;
}

/* What a read has done already (the `done` argument below). */
enum {
        DONE_CHECK = 0x1,       /* store_check_furi passed, or the fURI needs none */
        DONE_SYNC = 0x2,        /* other processes' writes taken in (store_sync) */
};

/* Collects the matches of target (a branch stands for its base) into c, in key order. */
static int gather(hyb_store *st, const hyb_furi *target, unsigned done, coll *c, hyb_error *e)
{
        hyb_furi *t = NULL;
        int r;

        if (!(done & DONE_CHECK) && (r = store_check_furi(st, target, e)) < 0)
                return r;
        c->kind = store_type_word(target);
        c->target = target;
        c->e = e;
        if (hyb_furi_is_branch(target)) {
                _cleanup_free_ char *base = store_branch_base(target);
                if (!base)
                        return -ENOMEM;
                r = hyb_furi_parse(base, (size_t)-1, NULL, &t, e);
                if (r < 0)
                        return r;
        } else if ((r = hyb_furi_strip_query(target, &t)) < 0)
                return r;
        if (!(done & DONE_SYNC) && (r = store_sync(st)) == HYB_E_CORRUPT)
                return corrupt(st, e);
        pthread_mutex_lock(&st->lock);
        r = store_walk(st, t, true, c->after, collect, c);
        pthread_mutex_unlock(&st->lock);
        hyb_furi_unref(t);
        if (c->r < 0)
                return c->r;
        return r < 0 ? r : 0;
}

/* The rec {key fURI: value} of what c collected, in its order. */
static int coll_to_rec(const coll *c, hyb_obj **ret)
{
        hyb_obj **keys = calloc(c->n + 1, sizeof(hyb_obj *));
        int r = keys ? 0 : -ENOMEM;

        for (size_t i = 0; i < c->n && r == 0; i++)
                r = hyb_obj_new_uri(c->keys[i], &keys[i]);
        if (r == 0)
                r = hyb_obj_new_rec(keys, c->vals, c->n, ret);
        for (size_t i = 0; keys && i < c->n; i++)
                hyb_obj_unref(keys[i]);
        free(keys);
        return r;
}

/* Every read but a node read that found its node: patterns, branches, and node misses (the
 * node may be an element of a stored lst/rec above it: gather walks).  Out of line, so the
 * node read's hit path stays short. */
static __attribute__((noinline)) int read_gathered(hyb_store *st, const hyb_furi *target,
                                                   unsigned done, hyb_obj **ret,
                                                   hyb_error *reterr)
{
        coll c = { 0 };
        int r;

        r = gather(st, target, done, &c, reterr);
        if (r < 0) {
                coll_free(&c);
                return r;
        }
        if (hyb_furi_is_branch(target))
                r = coll_to_rec(&c, ret);
        else if (hyb_furi_is_pattern(target))
                r = hyb_obj_new_objs(c.vals, c.n, ret);
        else
                *ret = c.n ? hyb_obj_ref(c.vals[0]) : hyb_obj_noobj();
        coll_free(&c);
        return r;
}

/* A node read may take the hash-table fast path only when the fURI needs no check (a host
 * fURI without a scheme, on a host store); the others go through store_check_furi.  (The
 * fields are read inline: the hyb_furi_get_* calls would each go through the PLT.) */
static inline bool node_fast(const hyb_store *st, const hyb_furi *target)
{
        return !st->relative && target->scope == HYB_SCOPE_HOST && !target->scheme;
}

/* A `?T` query (`/x?int`) checks the type of the value read: without one there is nothing
 * to check.  On a mismatch v is released. */
static int node_checked(const hyb_furi *target, hyb_obj *v, hyb_obj **ret, hyb_error *reterr)
{
        int r;

        if (target->query) {
                r = store_check_type(target, store_type_word(target), v, reterr);
                if (r < 0) {
                        hyb_obj_unref(v);
                        return r;
                }
        }
        *ret = v;
        return 0;
}

/* A read past the lookup by the target's address: patterns and branches (gathered), node
 * reads by hash.  synced: the caller has taken in other processes' writes already (the
 * fURI is still to be checked). */
static int read_rest(hyb_store *st, const hyb_furi *target, bool synced, hyb_obj **ret,
                     hyb_error *reterr)
{
        const hyb_obj *sv;
        hyb_obj *v = NULL;
        int r;

        if (target->pattern || target->branch)
                return read_gathered(st, target, synced ? DONE_SYNC : 0, ret, reterr);
        /* A node read: a stored node is one hash lookup and a new reference.  The host-store
         * case first, from fields the read needs anyway. */
        if (!node_fast(st, target)) {
                r = store_check_furi(st, target, reterr);
                if (r < 0)
                        return r;
        }
        /* (a memory store has no other process's writes to take in) */
        if (!synced && st->persistent && store_sync(st) == HYB_E_CORRUPT)
                return corrupt(st, reterr);
        pthread_mutex_lock(&st->lock);
        sv = index_get_value(&st->index, target, target->hash);
        if (sv)
                v = hyb_obj_ref((hyb_obj *)sv);
        pthread_mutex_unlock(&st->lock);
        if (!v)
                return read_gathered(st, target, DONE_CHECK | DONE_SYNC, ret, reterr);
        return node_checked(target, v, ret, reterr);
}

/* hyb_store_read; synced: the caller has taken in other processes' writes already (the
 * fURI is still to be checked). */
static __attribute__((noinline)) int read_one(hyb_store *st, const hyb_furi *target, bool synced,
                                              hyb_obj **ret, hyb_error *reterr)
{
        const hyb_obj *sv;
        hyb_obj *v = NULL;
        bool looked = false;

        /* The very fURI object a value was written with finds it by its address, without
         * loading the object: one cache miss fewer.  (A memory store has no other process's
         * writes to take in; a file store takes them in first, after the checks below.) */
        if (synced || !st->persistent) {
                __builtin_prefetch(target, 0, 3); /* needed if the address is not a key's */
                pthread_mutex_lock(&st->lock);
                sv = index_get_value_ptr(&st->index, target);
                if (sv) {
                        *ret = hyb_obj_ref((hyb_obj *)sv);
                        pthread_mutex_unlock(&st->lock);
                        return 0;
                }
                if (!target->pattern && !target->branch && node_fast(st, target)) {
                        sv = index_get_value(&st->index, target, target->hash);
                        if (sv)
                                v = hyb_obj_ref((hyb_obj *)sv);
                        looked = true;
                }
                pthread_mutex_unlock(&st->lock);
                if (v)
                        return node_checked(target, v, ret, reterr);
                if (looked)
                        return read_gathered(st, target, DONE_CHECK | DONE_SYNC, ret, reterr);
        }
        return read_rest(st, target, synced, ret, reterr);
}

/* A memory store's node read that did not find target by its address (st->lock held,
 * released here): the hash lookup of an equal key, or read_gathered.  Out of line, so the
 * address hit in hyb_store_read stays a short function without a stack frame. */
static __attribute__((noinline)) int read_mem_rest(hyb_store *st, const hyb_furi *target,
                                                   hyb_obj **ret, hyb_error *reterr)
{
        const hyb_obj *sv;
        hyb_obj *v = NULL;

        if (target->pattern || target->branch || !node_fast(st, target)) {
                pthread_mutex_unlock(&st->lock);
                return read_rest(st, target, true, ret, reterr);
        }
        /* The hash slot and the target's text (compared with the slot's) load together. */
        __builtin_prefetch(target->path, 0, 3);
        sv = index_get_value(&st->index, target, target->hash);
        if (sv)
                v = hyb_obj_ref((hyb_obj *)sv);
        pthread_mutex_unlock(&st->lock);
        if (v)
                return node_checked(target, v, ret, reterr);
        return read_gathered(st, target, DONE_CHECK | DONE_SYNC, ret, reterr);
}

HYB_EXPORT int hyb_store_read(const hyb_store *cst, const hyb_furi *target, hyb_obj **ret,
                              hyb_error *reterr)
{
        hyb_store *st = store_mut(cst);
        const hyb_obj *sv;

        hyb_assert_return(st && target && ret, -EINVAL);
        if (st->persistent)
                return read_one(st, target, false, ret, reterr);
        /* A memory store (no other process's writes to take in): the very fURI object a
         * value was written with finds it by its address, without loading the object.  No
         * prefetch of the object either: a hit never reads it, and loading it anyway fills
         * the cache with fURI objects that push the table by address out (half the rate at
         * 100 000 keys, bench/README.md "In-memory get: the table by address"). */
        pthread_mutex_lock(&st->lock);
        sv = index_ptr_value(&st->index, target);
        if (_unlikely_(!sv))
                return read_mem_rest(st, target, ret, reterr);
        *ret = hyb_obj_ref((hyb_obj *)sv);
        pthread_mutex_unlock(&st->lock);
        return 0;
}

/* How many targets one lock hold of hyb_store_read_many looks up: enough that the batch's
 * cache misses overlap, few enough that a writer never waits long. */
#define READ_BATCH 32

/*
 * One batch of hyb_store_read_many, in passes so that the cache misses of different targets
 * overlap instead of each read waiting on its own chain.  Under the lock:
 *   1. prefetch each target's slot in the table by key object address (no target is read);
 *   2. look each up there: a target that is the very fURI object a value was written with
 *      is answered; for the others, prefetch the fURI object;
 *   3. hash each of those that a node lookup may answer and prefetch its hash slot, and
 *      prefetch the next batch's address slots;
 *   4. look those up and prefetch each value found;
 *   5. take a reference to each value found.
 * Targets still unanswered (patterns, branches, checked fURIs, misses) then take
 * hyb_store_read's own path, without the lock.
 */
static int read_batch(hyb_store *st, hyb_furi *const *targets, size_t n,
                      hyb_furi *const *next, size_t n_next, hyb_obj **rets, hyb_error *reterr)
{
        const store_index *ix = &st->index;
        const hyb_obj *sv[READ_BATCH];
        bool by_ptr[READ_BATCH], fast[READ_BATCH];
        int r;

        pthread_mutex_lock(&st->lock);
        for (size_t i = 0; i < n; i++)
                index_prefetch_ptr(ix, targets[i]);
        for (size_t i = 0; i < n; i++) {
                sv[i] = index_get_value_ptr(ix, targets[i]);
                by_ptr[i] = sv[i] != NULL;
                if (!sv[i])
                        __builtin_prefetch(targets[i], 0, 3);
        }
        for (size_t i = 0; i < n; i++) {
                const hyb_furi *t = targets[i];
                fast[i] = !by_ptr[i] && !t->pattern && !t->branch && node_fast(st, t);
                if (fast[i])
                        index_prefetch(ix, t->hash);
        }
        for (size_t i = 0; i < n_next; i++)
                index_prefetch_ptr(ix, next[i]);
        for (size_t i = 0; i < n; i++) {
                if (fast[i])
                        sv[i] = index_get_value(ix, targets[i], targets[i]->hash);
                if (sv[i])
                        __builtin_prefetch(sv[i], 1, 3);
        }
        for (size_t i = 0; i < n; i++)
                rets[i] = sv[i] ? hyb_obj_ref((hyb_obj *)sv[i]) : NULL;
        pthread_mutex_unlock(&st->lock);
        for (size_t i = 0; i < n; i++) {
                if (by_ptr[i])
                        continue; /* a stored key: no query to check */
                if (rets[i])
                        r = node_checked(targets[i], rets[i], &rets[i], reterr);
                else if (fast[i]) /* checked (none needed) and synced: a node miss */
                        r = read_gathered(st, targets[i], DONE_CHECK | DONE_SYNC, &rets[i],
                                          reterr);
                else
                        r = read_one(st, targets[i], true, &rets[i], reterr);
                if (r < 0) {
                        rets[i] = NULL;
                        return r;
                }
        }
        return 0;
}

HYB_EXPORT int hyb_store_read_many(const hyb_store *cst, hyb_furi *const *targets, size_t n,
                                   hyb_obj **rets, hyb_error *reterr)
{
        hyb_store *st = store_mut(cst);
        int r = 0;

        hyb_assert_return(st && ((targets && rets) || n == 0), -EINVAL);
        for (size_t i = 0; i < n; i++) {
                hyb_assert_return(targets[i], -EINVAL);
                rets[i] = NULL;
        }
        /* (a memory store has no other process's writes to take in) */
        if (n && st->persistent && store_sync(st) == HYB_E_CORRUPT)
                return corrupt(st, reterr);
        for (size_t i = 0; i < n && r == 0; i += READ_BATCH) {
                size_t m = n - i < READ_BATCH ? n - i : READ_BATCH;
                size_t after = n - i - m;
                r = read_batch(st, targets + i, m, targets + i + m,
                               after < READ_BATCH ? after : READ_BATCH, rets + i, reterr);
        }
        if (r < 0)
                for (size_t i = 0; i < n; i++)
                        rets[i] = hyb_obj_unref(rets[i]);
        return r;
}

HYB_EXPORT int hyb_store_read_str(const hyb_store *st, const char *target, hyb_obj **ret,
                                  hyb_error *reterr)
{
        hyb_furi *f = NULL;
        int r;

        hyb_assert_return(st && target && ret, -EINVAL);
        r = hyb_furi_parse(target, (size_t)-1, NULL, &f, reterr);
        if (r < 0)
                return r;
        r = hyb_store_read(st, f, ret, reterr);
        hyb_furi_unref(f);
        return r;
}

int store_replay_page(hyb_store *st, const hyb_furi *pattern, const hyb_furi *after, size_t limit,
                      hyb_furi ***ret_keys, hyb_obj ***ret_vals, size_t *ret_n, bool *ret_more)
{
        coll c = { .target = pattern, .kind = store_type_word(pattern), .after = after,
                   .limit = limit };
        int r;

        pthread_mutex_lock(&st->lock);
        r = store_walk(st, pattern, true, after, collect, &c);
        pthread_mutex_unlock(&st->lock);
        if (c.r < 0 || r < 0) {
                coll_free(&c);
                return c.r < 0 ? c.r : r;
        }
        *ret_keys = c.keys;
        *ret_vals = c.vals;
        *ret_n = c.n;
        *ret_more = c.more;
        return 0;
}

HYB_EXPORT int hyb_store_scan(const hyb_store *cst, const hyb_furi *pattern, hyb_store_each_fn fn,
                              void *userdata, hyb_error *reterr)
{
        hyb_store *st = store_mut(cst);
        coll c = { 0 };
        int r;

        hyb_assert_return(st && pattern && fn, -EINVAL);
        r = gather(st, pattern, 0, &c, reterr);
        /* callbacks run without the lock: they may use the store */
        for (size_t i = 0; r == 0 && i < c.n; i++)
                r = fn(c.keys[i], c.vals[i], userdata);
        coll_free(&c);
        return r;
}

HYB_EXPORT int hyb_store_read_page(const hyb_store *cst, const hyb_furi *target,
                                   const hyb_furi *after, size_t limit, hyb_obj **ret,
                                   hyb_furi **ret_next, hyb_error *reterr)
{
        hyb_store *st = store_mut(cst);
        coll c = { .after = after, .limit = limit };
        int r;

        hyb_assert_return(st && target && limit > 0 && ret && ret_next, -EINVAL);
        hyb_assert_return(!after || (!hyb_furi_is_pattern(after) && !hyb_furi_is_branch(after) &&
                                     !hyb_furi_get_query(after)),
                          -EINVAL);
        *ret_next = NULL;
        r = gather(st, target, 0, &c, reterr);
        if (r < 0) {
                coll_free(&c);
                return r;
        }
        r = coll_to_rec(&c, ret);
        if (r == 0 && c.more && c.n)
                *ret_next = hyb_furi_ref(c.keys[c.n - 1]);
        coll_free(&c);
        return r;
}
