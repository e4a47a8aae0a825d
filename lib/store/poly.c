/* SPDX-License-Identifier: MIT */
/*
 * Reading and writing through stored polys (lst/rec), and the pattern walk.
 *
 * A *position* is a stored trie node, an element inside a stored lst/rec, or
 * both (a trie node without a value of its own under a stored poly):
 *
 *   stored m -> [[0,1],[2,3]]        read m/1/0:
 *     m    (trie, value [[0,1],[2,3]])
 *     m/1  (no trie node; element 1 of m      = [2,3])
 *     m/1/0(no trie node; element 0 of [2,3]  = 2)      => 2
 *
 * Literal and `+` steps enter polys: lst elements are the segments 0, 1, ...;
 * rec pairs the segments their keys stand for (a one-segment uri, a str, an
 * int).  `#` walks stored keys only: it never expands a poly into its
 * elements (a read of `m/#` gives m itself, not m and all its insides).
 */
#include <stdio.h>

#include "store-internal.h"

static bool is_poly(const hyb_obj *o)
{
        hyb_obj_kind k = o ? hyb_obj_get_kind(o) : HYB_OBJ_NOOBJ;

        return k == HYB_OBJ_LST || k == HYB_OBJ_REC;
}

size_t obj_depth(const hyb_obj *o)
{
        size_t d = 0, n;

        switch (hyb_obj_get_kind(o)) {
        case HYB_OBJ_LST:
        case HYB_OBJ_OBJS:
                n = hyb_obj_get_len(o);
                for (size_t i = 0; i < n; i++) {
                        size_t x = obj_depth(hyb_obj_get_at(o, i));
                        if (x > d)
                                d = x;
                }
                return d + 1;
        case HYB_OBJ_REC:
                n = hyb_obj_get_len(o);
                for (size_t i = 0; i < n; i++) {
                        size_t x = obj_depth(hyb_obj_get_rec_key(o, i));
                        size_t y = obj_depth(hyb_obj_get_rec_value(o, i));
                        if (x > d)
                                d = x;
                        if (y > d)
                                d = y;
                }
                return d + 1;
        default:
                return 0;
        }
}

/* Percent-encodes what cannot stand raw in a segment (spec: space, non-ASCII, `%`, `+ # ? /`). */
int path_append(char **buf, size_t *len, size_t *alloc, const char *seg, size_t slen)
{
        static const char hex[] = "0123456789ABCDEF";
        int r = grow_array((void **)buf, alloc, *len + 2 + 3 * slen, 1);

        if (r < 0)
                return r;
        (*buf)[(*len)++] = '/';
        for (size_t i = 0; i < slen; i++) {
                unsigned char c = (unsigned char)seg[i];
                if (c <= 0x20 || c >= 0x7f || strchr("%+#?/", c)) {
                        (*buf)[(*len)++] = '%';
                        (*buf)[(*len)++] = hex[c >> 4];
                        (*buf)[(*len)++] = hex[c & 15];
                } else
                        (*buf)[(*len)++] = (char)c;
        }
        (*buf)[*len] = '\0';
        return 0;
}

bool poly_key_seg(const hyb_obj *key, char *buf, size_t bufsz, const char **ret, size_t *len)
{
        const hyb_furi *u;

        switch (hyb_obj_get_kind(key)) {
        case HYB_OBJ_URI:
                u = hyb_obj_get_uri(key);
                if (!u || hyb_furi_is_absolute(u) || hyb_furi_get_host(u) ||
                    hyb_furi_get_n_segments(u) != 1 || hyb_furi_is_branch(u) ||
                    hyb_furi_get_segment_kind(u, 0) != HYB_SEG_LITERAL)
                        return false;
                *ret = hyb_furi_get_segment(u, 0, len);
                return *len > 0;
        case HYB_OBJ_STR:
                *ret = hyb_obj_get_str(key, len);
                if (*len == 0 || memchr(*ret, '\0', *len) || (*len == 1 && **ret == '.') ||
                    (*len == 2 && memcmp(*ret, "..", 2) == 0))
                        return false;
                return true;
        case HYB_OBJ_INT:
                snprintf(buf, bufsz, "%lld", (long long)hyb_obj_get_int(key));
                *ret = buf;
                *len = strlen(buf);
                return true;
        default:
                return false;
        }
}

static bool key_is_seg(const hyb_obj *key, const char *seg, size_t len)
{
        char buf[32];
        const char *s;
        size_t l;

        return poly_key_seg(key, buf, sizeof(buf), &s, &l) && l == len && memcmp(s, seg, len) == 0;
}

static long rec_find(const hyb_obj *rec, const char *seg, size_t len)
{
        size_t n = hyb_obj_get_len(rec);

        for (size_t i = 0; i < n; i++)
                if (key_is_seg(hyb_obj_get_rec_key(rec, i), seg, len))
                        return (long)i;
        return -1;
}

const hyb_obj *poly_child(const hyb_obj *poly, const char *seg, size_t len)
{
        size_t idx;
        long i;

        if (hyb_obj_get_kind(poly) == HYB_OBJ_LST) {
                if (seg_is_index(seg, len, &idx) && idx < hyb_obj_get_len(poly))
                        return hyb_obj_get_at(poly, idx);
                return NULL;
        }
        if (hyb_obj_get_kind(poly) == HYB_OBJ_REC && (i = rec_find(poly, seg, len)) >= 0)
                return hyb_obj_get_rec_value(poly, (size_t)i);
        return NULL;
}

/* ---- writing through a poly ---- */

static int rebuild_ids(const hyb_obj *like, hyb_obj *o, hyb_obj **ret)
{
        hyb_obj *t = NULL;
        int r;

        if (hyb_obj_get_type_id(like)) {
                r = hyb_obj_with_type(o, (hyb_furi *)hyb_obj_get_type_id(like), &t);
                hyb_obj_unref(o);
                if (r < 0)
                        return r;
                o = t;
        }
        if (hyb_obj_get_value_id(like)) {
                r = hyb_obj_with_id(o, (hyb_furi *)hyb_obj_get_value_id(like), &t);
                hyb_obj_unref(o);
                if (r < 0)
                        return r;
                o = t;
        }
        *ret = o;
        return 0;
}

static int seg_uri(const char *seg, size_t len, hyb_obj **ret)
{
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, alloc = 0;
        int r = path_append(&buf, &n, &alloc, seg, len);

        if (r < 0)
                return r;
        return hyb_obj_new_uri_str(buf + 1, ret, NULL);
}

int poly_set(const hyb_obj *container, const hyb_furi *f, size_t i, hyb_obj *value,
             hyb_obj **ret, hyb_error *e)
{
        size_t ns = hyb_furi_get_n_segments(f), len, n = hyb_obj_get_len(container), idx;
        const char *seg = hyb_furi_get_segment(f, i, &len);
        bool last = i + 1 == ns, del = hyb_obj_is_noobj(value);
        _cleanup_free_ hyb_obj **keys = NULL;
        _cleanup_free_ hyb_obj **vals = NULL;
        hyb_obj *child = NULL, *newkey = NULL, *o = NULL;
        const hyb_obj *old = NULL;
        long at = -1;
        size_t m = 0;
        int r;

        *ret = NULL;
        if (!is_poly(container))
                return err_set(e, HYB_E_TYPE, -1, "cannot write into %s at segment '%s'",
                               hyb_obj_kind_name(hyb_obj_get_kind(container)), seg);
        if (hyb_obj_get_kind(container) == HYB_OBJ_LST) {
                if (!seg_is_index(seg, len, &idx))
                        return err_set(e, -EINVAL, -1, "lst index '%s' is not a number", seg);
                if (idx > n || (idx == n && (del || !last)))
                        return del ? 0 : err_set(e, -EINVAL, -1,
                                                 "lst index %zu out of range (length %zu)",
                                                 idx, n);
                at = idx < n ? (long)idx : -1;
                if (at >= 0)
                        old = hyb_obj_get_at(container, idx);
        } else {
                at = rec_find(container, seg, len);
                if (at >= 0)
                        old = hyb_obj_get_rec_value(container, (size_t)at);
                else if (del)
                        return 0; /* nothing to delete */
        }

        if (!last) {
                if (old && !is_poly(old))
                        return err_set(e, HYB_E_TYPE, -1, "cannot write into %s at segment '%s'",
                                       hyb_obj_kind_name(hyb_obj_get_kind(old)),
                                       hyb_furi_get_segment(f, i + 1, NULL));
                if (!old) {
                        /* a missing inner key: the write creates the rec it needs */
                        hyb_obj *empty = NULL;
                        r = hyb_obj_new_rec(NULL, NULL, 0, &empty);
                        if (r < 0)
                                return r;
                        r = poly_set(empty, f, i + 1, value, &child, e);
                        hyb_obj_unref(empty);
                } else
                        r = poly_set(old, f, i + 1, value, &child, e);
                if (r < 0 || !child)
                        return r;
        } else if (!del)
                child = hyb_obj_ref(value);

        keys = calloc(n + 1, sizeof(hyb_obj *));
        vals = calloc(n + 1, sizeof(hyb_obj *));
        if (!keys || !vals) {
                hyb_obj_unref(child);
                return -ENOMEM;
        }
        for (size_t k = 0; k < n; k++) {
                bool is_rec = hyb_obj_get_kind(container) == HYB_OBJ_REC;
                if ((long)k == at) {
                        if (!child)
                                continue; /* deleted */
                        vals[m] = child;
                } else
                        vals[m] = (hyb_obj *)(is_rec ? hyb_obj_get_rec_value(container, k)
                                                     : hyb_obj_get_at(container, k));
                if (is_rec)
                        keys[m] = (hyb_obj *)hyb_obj_get_rec_key(container, k);
                m++;
        }
        if (at < 0 && child) {
                vals[m] = child;
                if (hyb_obj_get_kind(container) == HYB_OBJ_REC) {
                        r = seg_uri(seg, len, &newkey);
                        if (r < 0) {
                                hyb_obj_unref(child);
                                return r;
                        }
                        keys[m] = newkey;
                }
                m++;
        }
        if (hyb_obj_get_kind(container) == HYB_OBJ_REC)
                r = hyb_obj_new_rec(keys, vals, m, &o);
        else
                r = hyb_obj_new_lst(vals, m, &o);
        hyb_obj_unref(child);
        hyb_obj_unref(newkey);
        if (r < 0)
                return r;
        return rebuild_ids(container, o, ret);
}

/* ---- the walk ---- */

/*
 * A walk may resume after a key (a page's cursor): w->on says that the path walked so far is
 * the cursor's first segments.  While it is, children before the cursor's next segment are
 * skipped (found by binary search among stored children), the child equal to it stays on the
 * cursor's path, and nothing on that path is emitted (a prefix of the cursor or the cursor
 * itself comes before or at it); everything else is after it.  So a page costs its matches
 * plus one descent, not the matches of the pages before it.
 */
typedef struct walk {
        hyb_store *st;
        const hyb_furi *pat;
        size_t ns;
        bool virt, rel;
        store_walk_fn fn;
        void *ud;
        char *buf;
        size_t len, alloc;
        const hyb_furi *after;  /* NULL: from the first match */
        size_t na;              /* segments of after */
        bool on;                /* the path so far equals after's first segments */
} walk;

typedef struct kid {
        const char *seg;        /* NULL: the text is in num (qsort moves it) */
        size_t len;
        size_t ord;             /* the order it was listed in: pairs first, in rec order */
        index_node *tn;
        const hyb_obj *elem;
        char num[24];
} kid;

static const char *kid_seg(const kid *k)
{
        return k->seg ? k->seg : k->num;
}

/* In key order; kids of one segment (rec keys 1 and '1') in the order they were listed, so
 * that the first pair, the one a node read of the segment finds (rec_find), comes first. */
static int kid_cmp(const void *a, const void *b)
{
        const kid *x = a, *y = b;
        int c = seg_compare(kid_seg(x), x->len, kid_seg(y), y->len);

        return c ? c : x->ord < y->ord ? -1 : x->ord > y->ord;
}

static bool same_seg(const char *a, size_t al, const char *b, size_t bl)
{
        return al == bl && memcmp(a, b, al) == 0;
}

/* How seg, the segment at index d of the path, compares with the cursor's: < 0 before it, 0
 * on its path, > 0 after it.  Only asked while w->on. */
static int after_cmp(const walk *w, size_t d, const char *seg, size_t len)
{
        const char *a;
        size_t alen = 0;

        if (d >= w->na)
                return 1; /* below the cursor's key: after it */
        a = hyb_furi_get_segment(w->after, d, &alen);
        return seg_compare(seg, len, a, alen);
}

/* The first child of tn not before the cursor's segment d (children are in seg_compare order). */
static size_t after_lower_bound(const walk *w, const index_node *tn, size_t d)
{
        size_t lo = 0, hi = tn->n_children;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const index_node *c = tn->children[mid];

                if (after_cmp(w, d, c->seg, c->seg_len) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static int emit(walk *w, const store_pos *p)
{
        const char *path = p->tn && p->tn->value ? hyb_furi_get_path_str(p->tn->furi)
                                                  : w->buf + (w->rel ? 1 : 0);
        if (w->on)
                return 0; /* the cursor, or a key above it: sent in an earlier page */
        return w->fn(path, p, w->ud);
}

/* Every stored key below tn (itself excluded), in key order. */
static int emit_below(walk *w, index_node *tn)
{
        int r;

        for (index_node *d = index_next(tn, tn); d; d = index_next(d, tn)) {
                store_pos q = { d, d->value };
                if (d->value && (r = w->fn(hyb_furi_get_path_str(d->furi), &q, w->ud)) != 0)
                        return r;
        }
        return 0;
}

/* `#` below tn, whose path is the cursor's first d segments: the keys after the cursor. */
static int emit_below_after(walk *w, index_node *tn, size_t d)
{
        int r = 0;

        if (d >= w->na)
                return emit_below(w, tn); /* tn is the cursor: all below it is after */
        for (size_t k = after_lower_bound(w, tn, d); k < tn->n_children && r == 0; k++) {
                index_node *c = tn->children[k];

                if (after_cmp(w, d, c->seg, c->seg_len) == 0) {
                        r = emit_below_after(w, c, d + 1); /* c is at or above the cursor */
                        continue;
                }
                if (c->value) {
                        store_pos q = { c, c->value };
                        r = w->fn(hyb_furi_get_path_str(c->furi), &q, w->ud);
                }
                if (r == 0)
                        r = emit_below(w, c);
        }
        return r;
}

static int step(walk *w, index_node *tn, const hyb_obj *val, size_t i);

/* Steps into the child seg of the path (its segment index i - 1; i is the pattern's next). */
static int enter(walk *w, index_node *c, const hyb_obj *elem, const char *seg, size_t len,
                 size_t i)
{
        size_t save = w->len;
        bool on = w->on;
        int r;

        if (on) {
                int cmp = after_cmp(w, i - 1, seg, len);
                if (cmp < 0)
                        return 0; /* before the cursor */
                w->on = cmp == 0;
        }
        r = path_append(&w->buf, &w->len, &w->alloc, seg, len);
        if (r < 0) {
                w->on = on;
                return r;
        }
        r = step(w, c, c && c->value ? c->value : elem, i);
        w->len = save;
        w->buf[save] = '\0';
        w->on = on;
        return r;
}

/* The cursor's segment d as a lst index: 0 to start at the first element, else the first
 * index that is not before it (past every element: SIZE_MAX).  Only asked while w->on. */
static size_t after_index(const walk *w, size_t d)
{
        const char *a;
        size_t alen = 0, v = 0;

        if (d >= w->na)
                return 0;
        a = hyb_furi_get_segment(w->after, d, &alen);
        for (size_t k = 0; k < alen; k++) {
                if (a[k] < '0' || a[k] > '9')
                        return SIZE_MAX; /* digits come before any other segment */
                if (v > (SIZE_MAX - 9) / 10)
                        return SIZE_MAX;
                v = v * 10 + (size_t)(a[k] - '0');
        }
        return v; /* enter() compares that element itself exactly */
}

/* `+` over the elements of a stored lst with no key stored below it: they are in key order
 * already (an index compares as its number), so a page resuming at the cursor starts at its
 * index without looking at the elements before it. */
static int step_plus_lst(walk *w, const hyb_obj *val, size_t i)
{
        size_t np = hyb_obj_get_len(val), k = w->on ? after_index(w, i - 1) : 0;
        char num[24];
        int r = 0;

        for (; k < np && r == 0; k++) {
                int n = snprintf(num, sizeof num, "%zu", k);
                r = enter(w, NULL, hyb_obj_get_at(val, k), num, (size_t)n, i);
        }
        return r;
}

/*
 * The key order of a stored rec's pairs, kept for the last WALK_ORDERS big recs walked (each
 * holding a reference of its rec, so the address names no other obj meanwhile; objs never
 * change): a big rec read or replayed page after page, or two peers' replays of two recs in
 * turn, sort each rec once, and each page starts at the cursor by binary search.  A walk holds
 * a reference of the order it goes through, so a walk into a rec nested inside may replace
 * the cache's entry meanwhile.  Recs under WALK_ORDER_MIN pairs are sorted each time (cheap),
 * not kept.  Under st->lock, as every walk.
 */
#define WALK_ORDER_MIN 64

struct walk_order {
        unsigned n_ref;         /* the cache's, and one per walk going through it */
        uint64_t used;          /* st->worder_clock when last walked: the oldest is replaced */
        hyb_obj *rec;
        uint32_t *at;           /* the rec's pair indexes in key order (pairs without a segment left out) */
        size_t n;
};

static void order_unref(struct walk_order *o)
{
        if (!o || --o->n_ref > 0)
                return;
        hyb_obj_unref(o->rec);
        free(o->at);
        free(o);
}

void store_walk_order_free(hyb_store *st)
{
        for (size_t i = 0; i < WALK_ORDERS; i++) {
                order_unref(st->worder[i]);
                st->worder[i] = NULL;
        }
}

typedef struct rec_kid {
        const char *seg;
        size_t len;
        uint32_t at;
        char num[24];
} rec_kid;

static const char *rec_kid_seg(const rec_kid *k)
{
        return k->seg ? k->seg : k->num;
}

/* key order, pairs of one segment in rec order (see kid_cmp) */
static int rec_kid_cmp(const void *a, const void *b)
{
        const rec_kid *x = a, *y = b;
        int c = seg_compare(rec_kid_seg(x), x->len, rec_kid_seg(y), y->len);

        return c ? c : x->at < y->at ? -1 : x->at > y->at;
}

/* The key order of rec: from the cache or made now; a reference for the caller (NULL: out of
 * memory, or too many pairs). */
static struct walk_order *rec_order(hyb_store *st, const hyb_obj *rec)
{
        size_t np = hyb_obj_get_len(rec), nk = 0, slot = 0;
        struct walk_order *o;
        rec_kid *kids;

        for (size_t i = 0; i < WALK_ORDERS; i++)
                if (st->worder[i] && st->worder[i]->rec == rec) {
                        st->worder[i]->used = ++st->worder_clock;
                        st->worder[i]->n_ref++;
                        return st->worder[i];
                }
        if (np > UINT32_MAX)
                return NULL;
        o = calloc(1, sizeof(*o));
        kids = calloc(np + 1, sizeof(*kids));
        if (o)
                o->at = calloc(np + 1, sizeof(*o->at));
        if (!o || !kids || !o->at) {
                if (o)
                        free(o->at);
                free(o);
                free(kids);
                return NULL;
        }
        for (size_t k = 0; k < np; k++) {
                rec_kid *x = &kids[nk];
                if (!poly_key_seg(hyb_obj_get_rec_key(rec, k), x->num, sizeof(x->num), &x->seg,
                                  &x->len))
                        continue;
                if (x->seg == x->num)
                        x->seg = NULL; /* qsort moves it: the text is found in num again */
                x->at = (uint32_t)k;
                nk++;
        }
        qsort(kids, nk, sizeof(*kids), rec_kid_cmp);
        size_t n = 0;
        for (size_t k = 0; k < nk; k++) {
                /* a segment once: its first pair, as a node read finds it (rec_find); so a
                 * page that ends on it does not leave the others half read */
                if (k > 0 && same_seg(rec_kid_seg(&kids[k]), kids[k].len,
                                      rec_kid_seg(&kids[k - 1]), kids[k - 1].len))
                        continue;
                o->at[n++] = kids[k].at;
        }
        free(kids);
        o->n = n;
        o->rec = hyb_obj_ref((hyb_obj *)rec);
        o->n_ref = 1;
        if (np < WALK_ORDER_MIN)
                return o;
        /* kept in an empty entry, else in place of the least recently walked */
        for (size_t i = 1; i < WALK_ORDERS && st->worder[slot]; i++)
                if (!st->worder[i] || st->worder[i]->used < st->worder[slot]->used)
                        slot = i;
        order_unref(st->worder[slot]);
        o->used = ++st->worder_clock;
        o->n_ref++;
        st->worder[slot] = o;
        return o;
}

/* `+` over the pairs of a stored rec with no key stored below it, in key order (rec_order);
 * resuming, from the first pair not before the cursor.  1 when done, 0 when the order could
 * not be made (the caller walks the slow way). */
static int step_plus_rec(walk *w, const hyb_obj *val, size_t i, int *ret)
{
        struct walk_order *o = rec_order(w->st, val);
        size_t lo = 0, hi;
        char num[24];
        const char *seg;
        size_t len;
        int r = 0;

        if (!o)
                return 0;
        hi = o->n;
        while (w->on && lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                (void)poly_key_seg(hyb_obj_get_rec_key(val, o->at[mid]), num, sizeof num, &seg,
                                   &len);
                if (after_cmp(w, i - 1, seg, len) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (size_t k = lo; k < o->n && r == 0; k++) {
                (void)poly_key_seg(hyb_obj_get_rec_key(val, o->at[k]), num, sizeof num, &seg,
                                   &len);
                r = enter(w, NULL, hyb_obj_get_rec_value(val, o->at[k]), seg, len, i);
        }
        order_unref(o);
        *ret = r;
        return 1;
}

static int step_plus(walk *w, index_node *tn, const hyb_obj *val, size_t i)
{
        size_t nt = tn ? tn->n_children : 0, np, nk = 0;
        _cleanup_free_ kid *kids = NULL;
        int r = 0;

        if (!w->virt || !is_poly(val)) {
                /* resuming: the children before the cursor's are not even looked at */
                size_t k0 = w->on && tn ? after_lower_bound(w, tn, i - 1) : 0;
                for (size_t k = k0; k < nt && r == 0; k++)
                        r = enter(w, tn->children[k], NULL, tn->children[k]->seg,
                                  tn->children[k]->seg_len, i);
                return r;
        }
        if (nt == 0 && hyb_obj_get_kind(val) == HYB_OBJ_LST)
                return step_plus_lst(w, val, i);
        if (nt == 0 && step_plus_rec(w, val, i, &r))
                return r;
        /* merge the stored children with the poly's elements, in key order */
        np = hyb_obj_get_len(val);
        kids = calloc(nt + np + 1, sizeof(kid));
        if (!kids)
                return -ENOMEM;
        for (size_t k = 0; k < np; k++) {
                kid *x = &kids[nk];
                if (hyb_obj_get_kind(val) == HYB_OBJ_LST) {
                        snprintf(x->num, sizeof(x->num), "%zu", k);
                        x->len = strlen(x->num);
                        x->elem = hyb_obj_get_at(val, k);
                } else {
                        if (!poly_key_seg(hyb_obj_get_rec_key(val, k), x->num, sizeof(x->num),
                                          &x->seg, &x->len))
                                continue;
                        if (x->seg == x->num)
                                x->seg = NULL;
                        x->elem = hyb_obj_get_rec_value(val, k);
                }
                x->ord = nk++;
        }
        for (size_t k = 0; k < nt; k++) {
                index_node *c = tn->children[k];
                bool found = false;
                for (size_t j = 0; j < nk && !found; j++)
                        if (!kids[j].tn && kids[j].len == c->seg_len &&
                            memcmp(kid_seg(&kids[j]), c->seg, c->seg_len) == 0) {
                                kids[j].tn = c;
                                found = true;
                        }
                if (!found) {
                        kids[nk].seg = c->seg;
                        kids[nk].len = c->seg_len;
                        kids[nk].tn = c;
                        kids[nk].ord = nk;
                        nk++;
                }
        }
        qsort(kids, nk, sizeof(kid), kid_cmp);
        for (size_t k = 0; k < nk && r == 0; k++) {
                /* a segment once: the first pair of it (a later pair of the same segment,
                 * 1 after '1', is what no node read finds either) */
                if (k > 0 && same_seg(kid_seg(&kids[k]), kids[k].len, kid_seg(&kids[k - 1]),
                                      kids[k - 1].len))
                        continue;
                r = enter(w, kids[k].tn, kids[k].elem, kid_seg(&kids[k]), kids[k].len, i);
        }
        return r;
}

static int step(walk *w, index_node *tn, const hyb_obj *val, size_t i)
{
        store_pos p = { tn, val };
        size_t len;
        const char *seg;
        index_node *c;
        const hyb_obj *elem;
        int r;

        if (i == w->ns)
                return val ? emit(w, &p) : 0;
        switch (hyb_furi_get_segment_kind(w->pat, i)) {
        case HYB_SEG_HASH:
                /* zero segments: this position itself; then every stored key below it */
                if (val && (r = emit(w, &p)) != 0)
                        return r;
                if (!tn)
                        return 0;
                return w->on ? emit_below_after(w, tn, i) : emit_below(w, tn);
        case HYB_SEG_PLUS:
                return step_plus(w, tn, val, i + 1);
        default:
                seg = hyb_furi_get_segment(w->pat, i, &len);
                c = tn ? index_find_child(tn, seg, len) : NULL;
                elem = w->virt && is_poly(val) ? poly_child(val, seg, len) : NULL;
                if (!c && !elem)
                        return 0;
                return enter(w, c, elem, seg, len, i + 1);
        }
}

int store_walk(hyb_store *st, const hyb_furi *pattern, bool virt, const hyb_furi *after,
               store_walk_fn fn, void *ud)
{
        walk w = { .st = st, .pat = pattern, .ns = hyb_furi_get_n_segments(pattern), .virt = virt, .fn = fn,
                   .ud = ud, .after = after, .na = after ? hyb_furi_get_n_segments(after) : 0 };
        bool after_abs = after && hyb_furi_is_absolute(after);
        int r = 0;

        r = grow_array((void **)&w.buf, &w.alloc, 64, 1);
        if (r < 0)
                return r;
        w.buf[0] = '\0';
        /* absolute keys come before relative ones */
        if (hyb_furi_is_absolute(pattern)) {
                w.on = after_abs;
                if (!after || after_abs)
                        r = step(&w, &st->index.abs_root, NULL, 0);
        } else if (w.ns == 1 && hyb_furi_get_segment_kind(pattern, 0) == HYB_SEG_HASH) {
                /* `#` alone matches every fURI, absolute or relative */
                w.on = after_abs;
                if (!after || after_abs)
                        r = step(&w, &st->index.abs_root, NULL, 0);
                if (r == 0) {
                        w.rel = true;
                        w.on = after && !after_abs;
                        r = step(&w, &st->index.rel_root, NULL, 0);
                }
        } else {
                w.rel = true;
                w.on = after && !after_abs;
                r = step(&w, &st->index.rel_root, NULL, 0);
        }
        free(w.buf);
        return r;
}
