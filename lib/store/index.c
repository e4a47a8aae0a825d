/* SPDX-License-Identifier: MIT */
/*
 * The in-memory index of stored keys: a trie of decoded segments whose
 * children are kept sorted in key order, so a pre-order walk yields keys in
 * key order and a pattern walk prunes at every literal segment.
 *
 *   abs_root ("/")
 *     ├── "a"            value: -            (an inner node: no value)
 *     │    ├── "2"       value: 1            furi /a/2
 *     │    ├── "10"      value: 'x'          furi /a/10   (digits sort numerically)
 *     │    └── "b"       value: [k=>1]       furi /a/b
 *     └── "home" ...
 *   rel_root ("")        program stores only (relative keys)
 *
 * A node without a value and without children is pruned at once, so the
 * trie never holds more nodes than the keys' segments.
 */
#include <assert.h>

#include "store-internal.h"

static bool all_digits(const char *s, size_t len)
{
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

/* Key order of one segment, the same as hyb_furi_compare's (it must be: the store's order is
 * the key order, and a binary search needs a total order): all-digit segments first, among
 * them numerically (`2` < `10`), ties (`01`, `1`) by bytes; every other segment after them, by
 * bytes.  Comparing a digit segment with a non-digit one by bytes instead would not be
 * transitive (2 < 10 < 1a < 2), and the sorted children arrays would break. */
int seg_compare(const char *a, size_t alen, const char *b, size_t blen)
{
        bool da = all_digits(a, alen), db = all_digits(b, blen);
        int c;

        if (da != db)
                return da ? -1 : 1;
        if (da) {
                size_t za = 0, zb = 0;
                while (za + 1 < alen && a[za] == '0')
                        za++;
                while (zb + 1 < blen && b[zb] == '0')
                        zb++;
                if (alen - za != blen - zb)
                        return alen - za < blen - zb ? -1 : 1;
                c = memcmp(a + za, b + zb, alen - za);
                if (c)
                        return c < 0 ? -1 : 1;
        }
        c = memcmp(a, b, alen < blen ? alen : blen);
        if (c)
                return c < 0 ? -1 : 1;
        return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* A lst index: digits without a leading zero (or "0"), fitting size_t. */
bool seg_is_index(const char *s, size_t len, size_t *ret)
{
        size_t v = 0;

        if (!all_digits(s, len) || (len > 1 && s[0] == '0') || len > 18)
                return false;
        for (size_t i = 0; i < len; i++)
                v = v * 10 + (size_t)(s[i] - '0');
        *ret = v;
        return true;
}

void index_init(store_index *ix)
{
        memset(ix, 0, sizeof(*ix));
}

static void node_free(index_node *n)
{
        for (size_t i = 0; i < n->n_children; i++)
                node_free(n->children[i]);
        free(n->children);
        hyb_furi_unref(n->furi);
        hyb_obj_unref(n->value);
        free(n->seg);
        if (n->parent)
                free(n);
}

void index_done(store_index *ix)
{
        node_free(&ix->abs_root);
        node_free(&ix->rel_root);
        memset(ix, 0, sizeof(*ix));
}

/* Binary search; *ret_pos gets the insertion point when not found. */
static index_node *find(index_node *n, const char *seg, size_t len, size_t *ret_pos)
{
        size_t lo = 0, hi = n->n_children;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                index_node *c = n->children[mid];
                int cmp = seg_compare(seg, len, c->seg, c->seg_len);
                if (cmp == 0) {
                        if (ret_pos)
                                *ret_pos = mid;
                        return c;
                }
                if (cmp < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        if (ret_pos)
                *ret_pos = lo;
        return NULL;
}

index_node *index_find_child(index_node *n, const char *seg, size_t len)
{
        return find(n, seg, len, NULL);
}

static int child_add(index_node *n, const char *seg, size_t len, index_node **ret)
{
        index_node *c;
        size_t pos;
        int r;

        c = find(n, seg, len, &pos);
        if (c) {
                *ret = c;
                return 0;
        }
        r = grow_array((void **)&n->children, &n->alloc_children, n->n_children + 1,
                       sizeof(index_node *));
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->seg = strndup_safe(seg, len);
        if (!c->seg) {
                free(c);
                return -ENOMEM;
        }
        c->seg_len = len;
        c->parent = n;
        memmove(n->children + pos + 1, n->children + pos,
                (n->n_children - pos) * sizeof(index_node *));
        n->children[pos] = c;
        n->n_children++;
        *ret = c;
        return 0;
}

static index_node *root_of(store_index *ix, const hyb_furi *f)
{
        return hyb_furi_is_absolute(f) ? &ix->abs_root : &ix->rel_root;
}

index_node *index_lookup(store_index *ix, const hyb_furi *key)
{
        index_node *n = root_of(ix, key);
        size_t ns = hyb_furi_n_segments(key);

        for (size_t i = 0; i < ns && n; i++) {
                size_t len;
                const char *s = hyb_furi_segment(key, i, &len);
                n = find(n, s, len, NULL);
        }
        return n;
}

/* Removes n from its parent if it holds nothing, then climbs. */
static void prune(index_node *n)
{
        while (n->parent && !n->value && n->n_children == 0) {
                index_node *p = n->parent;
                size_t pos;
                index_node *c = find(p, n->seg, n->seg_len, &pos);
                assert(c == n);
                (void)c;
                memmove(p->children + pos, p->children + pos + 1,
                        (p->n_children - pos - 1) * sizeof(index_node *));
                p->n_children--;
                node_free(n);
                n = p;
        }
}

int index_set(store_index *ix, const hyb_furi *key, hyb_obj *value, hyb_obj **ret_old)
{
        index_node *n = root_of(ix, key);
        size_t ns = hyb_furi_n_segments(key);
        hyb_furi *k;
        int r;

        r = hyb_furi_strip_query(key, &k);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ns; i++) {
                size_t len;
                const char *s = hyb_furi_segment(key, i, &len);
                r = child_add(n, s, len, &n);
                if (r < 0) {
                        hyb_furi_unref(k);
                        prune(n);
                        return r;
                }
        }
        if (ret_old)
                *ret_old = n->value;
        else
                hyb_obj_unref(n->value);
        if (!n->value)
                ix->n_values++;
        n->value = hyb_obj_ref(value);
        hyb_furi_unref(n->furi);
        n->furi = k;
        return 0;
}

void index_clear(store_index *ix, index_node *n, hyb_obj **ret_old)
{
        if (n->value)
                ix->n_values--;
        if (ret_old)
                *ret_old = n->value;
        else
                hyb_obj_unref(n->value);
        n->value = NULL;
        n->furi = hyb_furi_unref(n->furi);
        prune(n);
}

index_node *index_next(index_node *n, const index_node *top)
{
        if (n->n_children)
                return n->children[0];
        while (n != top && n->parent) {
                index_node *p = n->parent;
                size_t pos;
                find(p, n->seg, n->seg_len, &pos);
                if (pos + 1 < p->n_children)
                        return p->children[pos + 1];
                n = p;
        }
        return NULL;
}
