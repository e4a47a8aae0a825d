/* SPDX-License-Identifier: MIT */
/*
 * The read operations of the store: a node (one hash lookup, or an element of
 * a stored lst/rec above it), a pattern (a stream of the matches in key
 * order), a branch (one rec of full fURI => value) and scan.  Every read
 * first catches up with other processes' writes (store_sync), then reads
 * memory under st->lock.
 */
#include "store-internal.h"

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

/* Collects the matches of target (a branch stands for its base) into c, in key order. */
static int gather(hyb_store *st, const hyb_furi *target, bool synced, coll *c, hyb_error *e)
{
        hyb_furi *t = NULL;
        int r;

        if (!synced && (r = store_check_furi(st, target, e)) < 0)
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
        if (!synced && (r = store_sync(st)) == HYB_E_CORRUPT)
                return corrupt(st, e);
        pthread_mutex_lock(&st->lock);
        r = store_walk(st, t, true, c->after, collect, c);
        pthread_mutex_unlock(&st->lock);
        hyb_furi_unref(t);
        if (c->r < 0)
                return c->r;
        return r < 0 ? r : 0;
}

/* Every read but a node read that found its node: patterns, branches, and node misses (the
 * node may be an element of a stored lst/rec above it: gather walks).  Out of line, so the
 * node read's hit path stays short. */
static __attribute__((noinline)) int read_gathered(hyb_store *st, const hyb_furi *target,
                                                   bool synced, hyb_obj **ret,
                                                   hyb_error *reterr)
{
        coll c = { 0 };
        hyb_obj **keys = NULL;
        int r;

        r = gather(st, target, synced, &c, reterr);
        if (r < 0) {
                coll_free(&c);
                return r;
        }
        if (hyb_furi_is_branch(target)) {
                keys = calloc(c.n + 1, sizeof(hyb_obj *));
                r = keys ? 0 : -ENOMEM;
                for (size_t i = 0; i < c.n && r == 0; i++)
                        r = hyb_obj_new_uri(c.keys[i], &keys[i]);
                if (r == 0)
                        r = hyb_obj_new_rec(keys, c.vals, c.n, ret);
                for (size_t i = 0; keys && i < c.n; i++)
                        hyb_obj_unref(keys[i]);
                free(keys);
        } else if (hyb_furi_is_pattern(target))
                r = hyb_obj_new_objs(c.vals, c.n, ret);
        else
                *ret = c.n ? hyb_obj_ref(c.vals[0]) : hyb_obj_noobj();
        coll_free(&c);
        return r;
}

HYB_EXPORT int hyb_store_read(const hyb_store *cst, const hyb_furi *target, hyb_obj **ret,
                              hyb_error *reterr)
{
        hyb_store *st = store_mut(cst);
        const hyb_obj *sv;
        hyb_obj *v = NULL;
        int r;

        hyb_assert_return(st && target && ret, -EINVAL);
        if (hyb_furi_is_pattern(target) || hyb_furi_is_branch(target))
                return read_gathered(st, target, false, ret, reterr);
        /* A node read: a stored node is one hash lookup and a new reference.  The host-store
         * case first, from fields the read needs anyway. */
        if (st->relative || hyb_furi_get_scope(target) != HYB_SCOPE_HOST ||
            hyb_furi_get_scheme(target)) {
                r = store_check_furi(st, target, reterr);
                if (r < 0)
                        return r;
        }
        /* (a memory store has no other process's writes to take in) */
        if (st->persistent && store_sync(st) == HYB_E_CORRUPT)
                return corrupt(st, reterr);
        pthread_mutex_lock(&st->lock);
        sv = index_get_value(&st->index, target);
        if (sv)
                v = hyb_obj_ref((hyb_obj *)sv);
        pthread_mutex_unlock(&st->lock);
        if (!v)
                return read_gathered(st, target, true, ret, reterr);
        /* a type word (`/x?int`) is a query: without one there is nothing to check */
        if (hyb_furi_get_query(target)) {
                r = store_check_type(target, store_type_word(target), v, reterr);
                if (r < 0) {
                        hyb_obj_unref(v);
                        return r;
                }
        }
        *ret = v;
        return 0;
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

HYB_EXPORT int hyb_store_scan(const hyb_store *cst, const hyb_furi *pattern, hyb_store_each_fn fn,
                              void *userdata, hyb_error *reterr)
{
        hyb_store *st = store_mut(cst);
        coll c = { 0 };
        int r;

        hyb_assert_return(st && pattern && fn, -EINVAL);
        r = gather(st, pattern, false, &c, reterr);
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
        hyb_obj **keys = NULL;
        int r;

        hyb_assert_return(st && target && limit > 0 && ret && ret_next, -EINVAL);
        hyb_assert_return(!after || (!hyb_furi_is_pattern(after) && !hyb_furi_is_branch(after) &&
                                     !hyb_furi_get_query(after)),
                          -EINVAL);
        *ret_next = NULL;
        r = gather(st, target, false, &c, reterr);
        if (r < 0) {
                coll_free(&c);
                return r;
        }
        keys = calloc(c.n + 1, sizeof(hyb_obj *));
        r = keys ? 0 : -ENOMEM;
        for (size_t i = 0; i < c.n && r == 0; i++)
                r = hyb_obj_new_uri(c.keys[i], &keys[i]);
        if (r == 0)
                r = hyb_obj_new_rec(keys, c.vals, c.n, ret);
        for (size_t i = 0; keys && i < c.n; i++)
                hyb_obj_unref(keys[i]);
        free(keys);
        if (r == 0 && c.more && c.n)
                *ret_next = hyb_furi_ref(c.keys[c.n - 1]);
        coll_free(&c);
        return r;
}
