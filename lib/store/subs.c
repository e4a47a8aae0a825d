/* SPDX-License-Identifier: MIT */
/*
 * The subscription index: a trie of pattern segments, as mosquitto's
 * subscription tree.  Each node has literal children (sorted, binary search),
 * at most one `+` child and one `#` child, and the subscriptions whose
 * pattern ends there.
 *
 *   abs_root
 *     ├── "sensors"
 *     │     ├── "+" ── "temp"   subs: [/sensors/+/temp]
 *     │     └── "#"             subs: [/sensors/#]
 *     └── "+" ── "x"            subs: [/+/x]
 *   rel_root
 *     └── "#"                   subs: [#]   (`#` alone also matches absolute fURIs)
 *
 * Matching a fURI of depth d visits at most the literal, `+` and `#` child at
 * each level: cost grows with d (times the fan-out of `+` paths), never with
 * the number of subscriptions.
 */
#include <assert.h>

#include "store-internal.h"

void subs_init(subs_index *si)
{
        memset(si, 0, sizeof(*si));
}

static void node_free(sub_node *n);

/* Frees what n holds; n itself stays (a root is embedded in subs_index). */
static void node_clear(sub_node *n)
{
        for (size_t i = 0; i < n->n_lits; i++)
                node_free(n->lits[i]);
        if (n->plus)
                node_free(n->plus);
        if (n->hash)
                node_free(n->hash);
        free(n->lits);
        free(n->subs);
        free(n->seg);
}

static void node_free(sub_node *n)
{
        node_clear(n);
        free(n);
}

void subs_done(subs_index *si)
{
        node_clear(&si->abs_root);
        node_clear(&si->rel_root);
        memset(si, 0, sizeof(*si));
}

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
        int c = memcmp(a, b, alen < blen ? alen : blen);

        return c ? c : alen < blen ? -1 : alen > blen ? 1 : 0;
}

static sub_node *find_lit(sub_node *n, const char *seg, size_t len, size_t *ret_pos)
{
        size_t lo = 0, hi = n->n_lits;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = bytes_cmp(seg, len, n->lits[mid]->seg, n->lits[mid]->seg_len);
                if (c == 0) {
                        if (ret_pos)
                                *ret_pos = mid;
                        return n->lits[mid];
                }
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        if (ret_pos)
                *ret_pos = lo;
        return NULL;
}

static sub_node *new_node(sub_node *parent, const char *seg, size_t len)
{
        sub_node *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->seg = strndup_safe(seg, len);
        if (!c->seg) {
                free(c);
                return NULL;
        }
        c->seg_len = len;
        c->parent = parent;
        return c;
}

static int child_add(sub_node *n, hyb_furi_seg_kind kind, const char *seg, size_t len,
                     sub_node **ret)
{
        sub_node **slot, *c;
        size_t pos;

        if (kind == HYB_SEG_PLUS)
                slot = &n->plus;
        else if (kind == HYB_SEG_HASH)
                slot = &n->hash;
        else {
                c = find_lit(n, seg, len, &pos);
                if (!c) {
                        if (grow_array((void **)&n->lits, &n->alloc_lits, n->n_lits + 1,
                                       sizeof(sub_node *)) < 0)
                                return -ENOMEM;
                        c = new_node(n, seg, len);
                        if (!c)
                                return -ENOMEM;
                        memmove(n->lits + pos + 1, n->lits + pos,
                                (n->n_lits - pos) * sizeof(sub_node *));
                        n->lits[pos] = c;
                        n->n_lits++;
                }
                *ret = c;
                return 0;
        }
        if (!*slot) {
                *slot = new_node(n, kind == HYB_SEG_PLUS ? "+" : "#", 1);
                if (!*slot)
                        return -ENOMEM;
        }
        *ret = *slot;
        return 0;
}

/* Drops empty nodes from n upwards. */
static void prune(sub_node *n)
{
        while (n->parent && n->n_subs == 0 && n->n_lits == 0 && !n->plus && !n->hash) {
                sub_node *p = n->parent;
                if (p->plus == n)
                        p->plus = NULL;
                else if (p->hash == n)
                        p->hash = NULL;
                else {
                        size_t pos;
                        sub_node *c = find_lit(p, n->seg, n->seg_len, &pos);
                        assert(c == n);
                        (void)c;
                        memmove(p->lits + pos, p->lits + pos + 1,
                                (p->n_lits - pos - 1) * sizeof(sub_node *));
                        p->n_lits--;
                }
                node_free(n);
                n = p;
        }
}

int subs_add(subs_index *si, store_sub *s)
{
        const hyb_furi *p = s->pattern;
        sub_node *n = hyb_furi_is_absolute(p) ? &si->abs_root : &si->rel_root;
        size_t ns = hyb_furi_get_n_segments(p);
        int r;

        for (size_t i = 0; i < ns; i++) {
                size_t len;
                const char *seg = hyb_furi_get_segment(p, i, &len);
                r = child_add(n, hyb_furi_get_segment_kind(p, i), seg, len, &n);
                if (r < 0) {
                        prune(n);
                        return r;
                }
        }
        r = grow_array((void **)&n->subs, &n->alloc_subs, n->n_subs + 1, sizeof(store_sub *));
        if (r < 0) {
                prune(n);
                return r;
        }
        n->subs[n->n_subs++] = s;
        s->node = n;
        si->n++;
        return 0;
}

void subs_remove(subs_index *si, store_sub *s)
{
        sub_node *n = s->node;

        if (!n)
                return;
        for (size_t i = 0; i < n->n_subs; i++)
                if (n->subs[i] == s) {
                        /* keep subscription order: delivery to a node's subs follows it */
                        memmove(n->subs + i, n->subs + i + 1,
                                (n->n_subs - i - 1) * sizeof(store_sub *));
                        n->n_subs--;
                        si->n--;
                        break;
                }
        s->node = NULL;
        prune(n);
}

static int push(store_sub **subs, size_t k, store_sub ***arr, size_t *n, size_t *alloc)
{
        if (k == 0)
                return 0;
        if (grow_array((void **)arr, alloc, *n + k, sizeof(store_sub *)) < 0)
                return -ENOMEM;
        memcpy(*arr + *n, subs, k * sizeof(store_sub *));
        *n += k;
        return 0;
}

static int match(sub_node *n, const hyb_furi *f, size_t i, size_t ns, store_sub ***arr,
                 size_t *cnt, size_t *alloc)
{
        size_t len;
        const char *seg;
        sub_node *c;
        int r;

        /* `#` matches zero or more trailing segments, whatever the branch-ness. */
        if (n->hash && (r = push(n->hash->subs, n->hash->n_subs, arr, cnt, alloc)) < 0)
                return r;
        if (i == ns) {
                /* Branch-ness must agree for patterns that do not end in `#`. */
                for (size_t k = 0; k < n->n_subs; k++)
                        if (hyb_furi_is_branch(n->subs[k]->pattern) == hyb_furi_is_branch(f) &&
                            (r = push(&n->subs[k], 1, arr, cnt, alloc)) < 0)
                                return r;
                return 0;
        }
        seg = hyb_furi_get_segment(f, i, &len);
        c = find_lit(n, seg, len, NULL);
        if (c && (r = match(c, f, i + 1, ns, arr, cnt, alloc)) < 0)
                return r;
        if (n->plus && (r = match(n->plus, f, i + 1, ns, arr, cnt, alloc)) < 0)
                return r;
        return 0;
}

int subs_match(subs_index *si, const hyb_furi *f, store_sub ***arr, size_t *n, size_t *alloc)
{
        size_t ns = hyb_furi_get_n_segments(f);
        int r;

        if (hyb_furi_is_absolute(f)) {
                /* The pattern `#` alone lives under rel_root and matches every fURI. */
                if (si->rel_root.hash &&
                    (r = push(si->rel_root.hash->subs, si->rel_root.hash->n_subs, arr, n,
                              alloc)) < 0)
                        return r;
                return match(&si->abs_root, f, 0, ns, arr, n, alloc);
        }
        return match(&si->rel_root, f, 0, ns, arr, n, alloc);
}
