/* SPDX-License-Identifier: MIT */
/*
 * The write operations of the store: retained, transient, noobj = delete,
 * branch writes, writes through stored polys (reads are in read.c).  Every
 * write is applied to memory and queued for commit under st->lock, so
 * writes, their messages and their database ops share one order; a
 * synchronous write then waits for its group commit (commit.c).
 */
#include <stdio.h>

#include "store-internal.h"

typedef struct wctx {
        hyb_store *st;
        bool transient;
        db_op *ops, **tail;
        hyb_error *e;
        /* store_write_checked: asked where the node write lands, before it is made */
        store_write_check_fn check;
        void *check_ud;
} wctx;

int store_check_furi(hyb_store *st, const hyb_furi *f, hyb_error *e)
{
        bool hash_alone = !hyb_furi_is_absolute(f) && hyb_furi_get_n_segments(f) == 1 &&
                          hyb_furi_get_segment_kind(f, 0) == HYB_SEG_HASH && !hyb_furi_get_host(f);

        if (hyb_furi_get_host(f) || hyb_furi_get_scheme(f))
                return err_set(e, -EINVAL, -1,
                               "'%s' is not a host-scope fURI (%s scope): route it with "
                               "hyb_scope",
                               hyb_furi_get_str(f),
                               hyb_furi_get_scope(f) == HYB_SCOPE_GLOBAL ? "global" : "cluster");
        if (hash_alone)
                return 0;
        if (st->relative && hyb_furi_is_absolute(f))
                return err_set(e, -EINVAL, -1, "'%s' is absolute: a program store holds "
                               "relative fURIs", hyb_furi_get_str(f));
        if (!st->relative && !hyb_furi_is_absolute(f))
                return err_set(e, -EINVAL, -1,
                               "'%s' is relative (program scope): a store holds absolute fURIs",
                               hyb_furi_get_str(f));
        return 0;
}

/* The kind a `?int`-style query asks for, or -1. */
int store_type_word(const hyb_furi *f)
{
        if (!hyb_furi_get_query(f))
                return -1;
        for (int k = HYB_OBJ_NOOBJ + 1; k <= HYB_OBJ_CODE; k++)
                if (hyb_furi_query_has(f, hyb_obj_kind_name((hyb_obj_kind)k)))
                        return k;
        return -1;
}

int store_check_type(const hyb_furi *f, int kind, const hyb_obj *v, hyb_error *e)
{
        if (kind < 0 || !v || hyb_obj_is_noobj(v) || (int)hyb_obj_get_kind(v) == kind)
                return 0;
        return err_set(e, HYB_E_TYPE, -1, "'%s' wants %s, the value is %s", hyb_furi_get_str(f),
                       hyb_obj_kind_name((hyb_obj_kind)kind),
                       hyb_obj_kind_name(hyb_obj_get_kind(v)));
}

/* Queues the database op of a write; enc (NULL = a delete) is taken over. */
static int add_op(wctx *w, const hyb_furi *key, db_value *enc)
{
        db_op *op;

        if (!w->st->persistent)
                return 0;
        op = calloc(1, sizeof(*op));
        if (!op || !(op->key = strdup(hyb_furi_get_path_str(key)))) {
                free(op);
                if (enc)
                        db_value_done(enc);
                return -ENOMEM;
        }
        if (enc)
                op->value = *enc;
        else
                op->value.type = SQLITE_NULL;
        *w->tail = op;
        w->tail = &op->next;
        return 0;
}

static int check_depth(wctx *w, const hyb_obj *v)
{
        size_t d = obj_depth(v);

        if (d > w->st->opts.max_depth)
                return err_set(w->e, HYB_E_LIMIT, -1, "value nested %zu deep exceeds the limit "
                               "of %zu", d, w->st->opts.max_depth);
        return 0;
}

static int set_node(wctx *w, const hyb_furi *key, hyb_obj *value)
{
        db_value enc = { .type = SQLITE_NULL };
        int r;

        if ((r = check_depth(w, value)) < 0)
                return r;
        /* The store's bound on how many fURIs hold a value: a new key past it is refused,
         * overwrites and deletes still work (so a full store can be emptied). */
        if (w->st->opts.max_keys && w->st->index.n_values >= w->st->opts.max_keys &&
            !index_get(&w->st->index, key))
                return err_set(w->e, HYB_E_INSUFFICIENT_STORAGE, -1,
                               "store full: %zu fURIs hold a value, the limit max_keys is %zu",
                               w->st->index.n_values, w->st->opts.max_keys);
        if ((r = store_encode(w->st, value, w->st->persistent, &enc, w->e)) < 0)
                return r;
        r = index_set(&w->st->index, key, value, NULL);
        if (r < 0) {
                db_value_done(&enc);
                return r;
        }
        r = add_op(w, key, &enc);
        store_queue_msgs(w->st, key, value, true, NULL, 0);
        return r;
}

static int delete_node(wctx *w, index_node *tn)
{
        hyb_furi *key = hyb_furi_ref(tn->furi);
        int r;

        index_clear(&w->st->index, tn, NULL);
        r = add_op(w, key, NULL);
        store_queue_msgs(w->st, key, hyb_obj_noobj(), true, NULL, 0);
        hyb_furi_unref(key);
        return r;
}

/* `r/a/b/y -> 3` when r/a/b holds a rec: the rec is updated in place and stored again. */
static int write_into(wctx *w, index_node *anchor, size_t depth, const hyb_furi *key,
                      hyb_obj *value)
{
        _cleanup_free_ store_sub **arr = NULL;
        size_t n = 0, alloc = 0;
        hyb_obj *nv = NULL;
        hyb_furi *akey;
        db_value enc = { .type = SQLITE_NULL };
        int r;

        r = poly_set(anchor->value, key, depth, value, &nv, w->e);
        if (r < 0 || !nv)
                return r; /* an error, or a delete of something absent */
        if ((r = check_depth(w, nv)) < 0 ||
            (r = store_encode(w->st, nv, w->st->persistent, &enc, w->e)) < 0) {
                hyb_obj_unref(nv);
                return r;
        }
        akey = hyb_furi_ref(anchor->furi);
        r = index_set(&w->st->index, akey, nv, NULL);
        if (r == 0)
                r = add_op(w, akey, &enc);
        else
                db_value_done(&enc);
        /* Subscribers of the stored key get the new poly; those that match only the inner
         * fURI get the inner write. */
        if (r == 0 && w->st->subs.n) {
                subs_match(&w->st->subs, akey, &arr, &n, &alloc);
                for (size_t i = 0; i < n; i++)
                        if (!arr[i]->dead)
                                store_queue_one(w->st, arr[i], akey, nv, true);
                store_queue_msgs(w->st, key, value, true, arr, n);
        }
        hyb_furi_unref(akey);
        hyb_obj_unref(nv);
        return r;
}

static bool is_poly(const hyb_obj *o)
{
        return o && (hyb_obj_get_kind(o) == HYB_OBJ_LST || hyb_obj_get_kind(o) == HYB_OBJ_REC);
}

/* Where a write of key lands (st->lock held): the node holding a value at key (returned), or
 * else, when the deepest stored key above it holds a lst/rec, that node (*ret_holder, and
 * *ret_depth its segments): the write goes into its value.  NULL and no holder: a new key. */
static index_node *write_target(store_index *ix, const hyb_furi *key, index_node **ret_holder,
                                size_t *ret_depth)
{
        index_node *tn, *anchor = NULL;
        size_t ns = hyb_furi_get_n_segments(key), depth = 0;

        *ret_holder = NULL;
        /* a stored node decides alone (its ancestors do not matter): one hash lookup */
        tn = index_get(ix, key);
        if (tn)
                return tn;
        tn = hyb_furi_is_absolute(key) ? &ix->abs_root : &ix->rel_root;
        /* the deepest stored ancestor decides: a poly is written through */
        for (size_t i = 0; i < ns && tn; i++) {
                size_t len;
                const char *s = hyb_furi_get_segment(key, i, &len);
                tn = index_find_child(tn, s, len);
                if (tn && tn->value && i + 1 < ns) {
                        anchor = tn;
                        depth = i + 1;
                }
        }
        if (tn && tn->value)
                return tn;
        if (anchor && is_poly(anchor->value)) {
                *ret_holder = anchor;
                *ret_depth = depth;
        }
        return NULL;
}

static int write_node(wctx *w, const hyb_furi *key, hyb_obj *value)
{
        index_node *tn, *holder;
        size_t depth = 0;

        if (w->transient)
                return store_queue_msgs(w->st, key, value, false, NULL, 0);
        tn = write_target(&w->st->index, key, &holder, &depth);
        if (w->check) {
                int r = w->check(holder ? holder->furi : NULL, holder ? holder->value : NULL,
                                 w->check_ud, w->e);
                if (r < 0)
                        return r;
        }
        if (tn)
                return hyb_obj_is_noobj(value) ? delete_node(w, tn) : set_node(w, key, value);
        if (holder)
                return write_into(w, holder, depth, key, value);
        return hyb_obj_is_noobj(value) ? 0 : set_node(w, key, value);
}

typedef struct keys {
        hyb_furi **v;
        size_t n, alloc;
} keyset;

static int collect_key(const char *path, const store_pos *p, void *ud)
{
        keyset *k = ud;

        if (!p->tn || !p->tn->value)
                return 0;
        if (grow_array((void **)&k->v, &k->alloc, k->n + 1, sizeof(hyb_furi *)) < 0)
                return -ENOMEM;
        k->v[k->n++] = hyb_furi_ref(p->tn->furi);
        return 0;
}

static int delete_pattern(wctx *w, const hyb_furi *pattern)
{
        keyset k = { 0 };
        int r;

        r = store_walk(w->st, pattern, false, NULL, collect_key, &k);
        for (size_t i = 0; i < k.n; i++) {
                index_node *tn = index_lookup(&w->st->index, k.v[i]);
                if (r == 0 && tn && tn->value)
                        r = delete_node(w, tn);
                hyb_furi_unref(k.v[i]);
        }
        free(k.v);
        return r;
}

/* The text of a branch without its trailing `/` ("/x/" -> "/x", "/" -> ""). */
char *store_branch_base(const hyb_furi *f)
{
        const char *p = hyb_furi_get_path_str(f);
        size_t len = strlen(p);

        if (len && p[len - 1] == '/')
                len--;
        return strndup_safe(p, len);
}

static int child_key(const char *base, const hyb_obj *k, size_t index, bool lst, hyb_furi **ret,
                     hyb_error *e)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = strlen(base), alloc = 0;
        char num[32];
        const char *seg;
        size_t slen;
        int r;

        r = grow_array((void **)&buf, &alloc, len + 1, 1);
        if (r < 0)
                return r;
        memcpy(buf, base, len + 1);
        if (lst) {
                snprintf(num, sizeof(num), "%zu", index);
                r = path_append(&buf, &len, &alloc, num, strlen(num));
        } else if (hyb_obj_get_kind(k) == HYB_OBJ_URI && hyb_obj_get_uri(k) &&
                   !hyb_furi_is_absolute(hyb_obj_get_uri(k)) && !hyb_furi_get_host(hyb_obj_get_uri(k)) &&
                   !hyb_furi_is_pattern(hyb_obj_get_uri(k)) &&
                   hyb_furi_get_n_segments(hyb_obj_get_uri(k)) > 0) {
                /* a uri key may name a deeper child: `x/ -> [a/b=>1]` stores x/a/b */
                const hyb_furi *u = hyb_obj_get_uri(k);
                for (size_t i = 0; i < hyb_furi_get_n_segments(u) && r == 0; i++) {
                        seg = hyb_furi_get_segment(u, i, &slen);
                        r = path_append(&buf, &len, &alloc, seg, slen);
                }
        } else if (poly_key_seg(k, num, sizeof(num), &seg, &slen))
                r = path_append(&buf, &len, &alloc, seg, slen);
        else {
                char *txt = NULL;
                hyb_obj_format(k, HYB_FORMAT_REPL, &txt);
                r = err_set(e, -EINVAL, -1, "rec key %s cannot name a child of '%s/'",
                            txt ? txt : "?", base);
                hyb_free(txt);
                return r;
        }
        if (r < 0)
                return r;
        r = hyb_furi_parse(buf, (size_t)-1, NULL, ret, e);
        if (r < 0)
                return r;
        /* The child stays below the branch: a uri key of `..` segments would name a key
         * elsewhere (`p/ -> [<../sys/x>=>1]`), past the check its writer passed for p/. */
        {
                const char *kp = hyb_furi_get_path_str(*ret);
                size_t bl = strlen(base);
                if (!kp || strncmp(kp, base, bl) != 0 || kp[bl] != '/' || kp[bl + 1] == '\0') {
                        char *txt = NULL;
                        hyb_furi_unref(*ret);
                        *ret = NULL;
                        hyb_obj_format(k, HYB_FORMAT_REPL, &txt);
                        r = err_set(e, -EINVAL, -1, "rec key %s names no child of '%s/' (it "
                                    "leads out of the branch)", txt ? txt : "?", base);
                        hyb_free(txt);
                        return r;
                }
        }
        return 0;
}

int store_holder_of(hyb_store *st, const hyb_furi *f, hyb_furi **ret)
{
        index_node *holder;
        size_t depth;

        *ret = NULL;
        pthread_mutex_lock(&st->lock);
        /* the walk a write of f takes (write_node): the two agree by construction */
        if (!write_target(&st->index, f, &holder, &depth) && holder)
                *ret = hyb_furi_ref(holder->furi);
        pthread_mutex_unlock(&st->lock);
        return *ret ? 1 : 0;
}

/* The pattern of every stored key below the branch base (store_branch_base): `base/+/#`. */
static int branch_children(const char *base, hyb_furi **ret, hyb_error *e)
{
        _cleanup_free_ char *pat = NULL;

        if (asprintf(&pat, "%s/+/#", base) < 0)
                return -ENOMEM;
        return hyb_furi_parse(pat, (size_t)-1, NULL, ret, e);
}

int store_delete_keys(hyb_store *st, const hyb_furi *f, hyb_furi ***ret, size_t *ret_n,
                      hyb_error *e)
{
        hyb_furi *p = NULL;
        keyset k = { 0 };
        int r = 0;

        if (hyb_furi_is_branch(f)) {
                _cleanup_free_ char *base = store_branch_base(f);
                if (!base)
                        return -ENOMEM;
                r = branch_children(base, &p, e);
                if (r < 0)
                        return r;
        }
        store_sync(st);
        pthread_mutex_lock(&st->lock);
        r = store_walk(st, p ? p : f, false, NULL, collect_key, &k);
        pthread_mutex_unlock(&st->lock);
        hyb_furi_unref(p);
        if (r < 0) {
                store_keys_free(k.v, k.n);
                return r;
        }
        *ret = k.v;
        *ret_n = k.n;
        return 0;
}

int store_branch_keys(const char *base, const hyb_obj *poly, hyb_furi ***ret, hyb_error *e)
{
        bool lst = hyb_obj_get_kind(poly) == HYB_OBJ_LST;
        size_t n = hyb_obj_get_len(poly);
        hyb_furi **keys = calloc(n ? n : 1, sizeof(*keys));
        int r = 0;

        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < n && r == 0; i++)
                r = child_key(base, lst ? NULL : hyb_obj_get_rec_key(poly, i), i, lst, &keys[i], e);
        if (r < 0) {
                store_keys_free(keys, n);
                return r;
        }
        *ret = keys;
        return 0;
}

void store_keys_free(hyb_furi **keys, size_t n)
{
        for (size_t i = 0; keys && i < n; i++)
                hyb_furi_unref(keys[i]);
        free(keys);
}

static int write_branch(wctx *w, const hyb_furi *t, hyb_obj *value)
{
        _cleanup_free_ char *base = store_branch_base(t);
        bool lst = hyb_obj_get_kind(value) == HYB_OBJ_LST;
        size_t n = hyb_obj_get_len(value);
        hyb_furi **keys = NULL;
        int r = 0;

        if (!base)
                return -ENOMEM;
        if (hyb_obj_is_noobj(value)) {
                /* the children of a branch: every stored key below it */
                hyb_furi *p = NULL;
                if (w->transient)
                        return err_set(w->e, -EINVAL, -1, "a transient delete needs a node");
                r = branch_children(base, &p, w->e);
                if (r < 0)
                        return r;
                r = delete_pattern(w, p);
                hyb_furi_unref(p);
                return r;
        }
        if (!is_poly(value))
                return err_set(w->e, -EINVAL, -1, "the branch '%s' takes a lst or rec (its "
                               "children) or noobj, not a %s", hyb_furi_get_str(t),
                               hyb_obj_kind_name(hyb_obj_get_kind(value)));
        /* every key first: a rec key that names no child refuses the whole write, before
         * any element is stored */
        r = store_branch_keys(base, value, &keys, w->e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r == 0; i++)
                r = write_node(w, keys[i], (hyb_obj *)(lst ? hyb_obj_get_at(value, i)
                                                           : hyb_obj_get_rec_value(value, i)));
        store_keys_free(keys, n);
        return r;
}

static int write_locked(wctx *w, const hyb_furi *target, hyb_obj *value)
{
        hyb_furi *t = NULL;
        int kind, r;

        r = store_check_furi(w->st, target, w->e);
        if (r < 0)
                return r;
        kind = store_type_word(target);
        if ((r = store_check_type(target, kind, value, w->e)) < 0)
                return r;
        if (hyb_obj_get_kind(value) == HYB_OBJ_OBJS)
                return err_set(w->e, -EINVAL, -1, "a stream cannot be stored at '%s': write its "
                               "values one by one", hyb_furi_get_str(target));
        if (hyb_furi_is_pattern(target) && !hyb_obj_is_noobj(value))
                return err_set(w->e, -EINVAL, -1, "the pattern '%s' takes only noobj (a delete)",
                               hyb_furi_get_str(target));
        if (hyb_furi_is_pattern(target) && w->transient)
                return err_set(w->e, -EINVAL, -1, "a transient write needs a node, not the "
                               "pattern '%s'", hyb_furi_get_str(target));
        if (!hyb_obj_is_noobj(value)) {
                if ((r = check_depth(w, value)) < 0)
                        return r;
                if (w->transient && (r = store_encode(w->st, value, false, NULL, w->e)) < 0)
                        return r;
        }
        r = hyb_furi_strip_query(target, &t);
        if (r < 0)
                return r;
        if (hyb_furi_is_branch(t))
                r = write_branch(w, t, value);
        else if (hyb_furi_is_pattern(t))
                r = delete_pattern(w, t);
        else
                r = write_node(w, t, value);
        hyb_furi_unref(t);
        return r;
}

static int do_write(hyb_store *st, const hyb_furi *target, hyb_obj *value, unsigned flags,
                    hyb_store_done_fn done, void *ud, bool async, store_write_check_fn check,
                    void *check_ud, hyb_error *e)
{
        wctx w = { .st = st, .transient = flags & HYB_WRITE_TRANSIENT, .e = e, .check = check,
                   .check_ud = check_ud };
        commit_waiter cw = { 0 };
        db_op *last = NULL;
        int r;

        w.tail = &w.ops;
        if (st->persistent && st->db.readonly && !w.transient)
                return err_set(e, HYB_E_READ_ONLY, -1,
                               "%s is read-only (no write access to the file or its directory)",
                               st->db.path);
        /* Catch up with other processes first: a delete must see what they stored.  A value
         * written to a node does not depend on what is stored there, and is ordered against
         * their writes of the same key by the journal (sync_remote skips a change that our
         * later or pending write replaces), so it does not poll: the poll's read transaction
         * costs a plain put a sixth of its time. */
        if (hyb_obj_is_noobj(value) || hyb_furi_is_pattern(target) || hyb_furi_is_branch(target))
                store_sync(st);
        pthread_mutex_lock(&st->lock);
        if (!async)
                commit_writer(st, true);
        r = write_locked(&w, target, value);
        for (db_op *op = w.ops, *next; op; op = next) {
                next = op->next;
                last = op;
                commit_enqueue(st, op);
        }
        if (async) {
                if (r == 0 && last) {
                        last->done = done;
                        last->userdata = ud;
                } else if (r == 0 && done)
                        store_queue_done(st, done, ud, 0);
                if (last)
                        commit_wake(st);
        } else if (last) {
                int rc;
                last->waiter = &cw;
                rc = commit_run(st, &cw);
                if (r == 0 && rc < 0) {
                        r = rc;
                        err_set(e, rc, -1, "commit failed: %s", cw.why);
                }
        }
        if (!async)
                commit_writer(st, false);
        pthread_mutex_unlock(&st->lock);
        return r;
}

HYB_EXPORT int hyb_store_write(hyb_store *st, const hyb_furi *target, const hyb_obj *value,
                               unsigned flags, hyb_error *reterr)
{
        hyb_assert_return(st && target && value, -EINVAL);
        hyb_assert_return((flags & ~HYB_WRITE_TRANSIENT) == 0, -EINVAL);
        /* Objs are immutable: the write path only takes references of value. */
        return do_write(st, target, (hyb_obj *)value, flags, NULL, NULL, false, NULL, NULL,
                        reterr);
}

HYB_EXPORT int hyb_store_write_str(hyb_store *st, const char *target, const hyb_obj *value,
                                   unsigned flags, hyb_error *reterr)
{
        hyb_furi *f = NULL;
        int r;

        hyb_assert_return(st && target && value, -EINVAL);
        r = hyb_furi_parse(target, (size_t)-1, NULL, &f, reterr);
        if (r < 0)
                return r;
        r = hyb_store_write(st, f, value, flags, reterr);
        hyb_furi_unref(f);
        return r;
}

HYB_EXPORT int hyb_store_write_async(hyb_store *st, const hyb_furi *target, const hyb_obj *value,
                                     unsigned flags, hyb_store_done_fn done, void *userdata,
                                     hyb_error *reterr)
{
        hyb_assert_return(st && target && value, -EINVAL);
        hyb_assert_return((flags & ~HYB_WRITE_TRANSIENT) == 0, -EINVAL);
        return do_write(st, target, (hyb_obj *)value, flags, done, userdata, true, NULL, NULL,
                        reterr);
}

int store_write_checked(hyb_store *st, const hyb_furi *node, hyb_obj *value, unsigned flags,
                        store_write_check_fn check, void *check_ud, bool async,
                        hyb_store_done_fn done, void *ud, hyb_error *e)
{
        hyb_assert_return(!hyb_furi_is_pattern(node) && !hyb_furi_is_branch(node), -EINVAL);
        return do_write(st, node, value, flags, done, ud, async, check, check_ud, e);
}

HYB_EXPORT int hyb_store_flush(hyb_store *st)
{
        int r;

        hyb_assert_return(st, -EINVAL);
        pthread_mutex_lock(&st->lock);
        r = commit_run(st, NULL);
        pthread_mutex_unlock(&st->lock);
        return r;
}
