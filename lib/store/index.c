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
 *
 * Beside the trie, a hash table (open addressing) holds every node that has
 * a value, keyed by hyb_furi_hash of its key: node reads and writes find
 * their node in one lookup instead of a walk.
 *
 *   slots[h & (n-1)]: {hash, furi, value, node} ─► node /a/2 in the trie
 *
 * A second table finds a host key by the address of its fURI object: a reader holding the
 * very object a value was written with (or had from a scan) gets the value without loading
 * the object, one cache miss fewer.
 *
 *   pslots[mix(&furi) & (m-1)]: {furi, value}
 */
#include <assert.h>
#include <sys/mman.h>

#include "store-internal.h"
#include "furi/furi-internal.h" /* the pointer table's eligibility test reads fields inline */

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

/* Frees what n holds; n itself stays (a root is embedded in store_index). */
static void node_clear(index_node *n)
{
        for (size_t i = 0; i < n->n_children; i++) {
                node_clear(n->children[i]);
                free(n->children[i]);
        }
        free(n->children);
        hyb_furi_unref(n->furi);
        hyb_obj_unref(n->value);
        free(n->seg);
}

/* A pruned child (never a root). */
static void node_free(index_node *n)
{
        node_clear(n);
        free(n);
}

void index_done(store_index *ix)
{
        node_clear(&ix->abs_root);
        node_clear(&ix->rel_root);
        free(ix->slots);
        free(ix->pslots);
        memset(ix, 0, sizeof(*ix));
}

/* ---- the hash table of nodes with a value ---- */

#define HUGE_PAGE ((size_t)2 << 20)

/* Open addressing, linear probing, load at most 1/2.  A slot repeats the node's key and value
 * pointers, so a read that finds its slot touches neither the node nor (when the caller's
 * fURI is the stored one) the stored fURI: at 100 000 keys a read is bound by cache misses. */
static hslot *slot_find(const store_index *ix, const hyb_furi *key, uint64_t h)
{
        size_t mask = ix->n_slots - 1;

        if (!ix->n_slots)
                return NULL;
        for (size_t i = h & mask;; i = (i + 1) & mask) {
                hslot *sl = &ix->slots[i];
                if (!sl->node)
                        return NULL;
                if (sl->hash == h && (sl->furi == key || hyb_furi_equal(sl->furi, key)))
                        return sl;
        }
}

static void slot_put(hslot *slots, size_t n_slots, const hslot *x)
{
        size_t i = x->hash & (n_slots - 1);

        while (slots[i].node)
                i = (i + 1) & (n_slots - 1);
        slots[i] = *x;
}

/* A zeroed slot array.  From 2 MiB up it asks for transparent huge pages: a read probes one
 * random slot, and with 4 KiB pages most probes of a big table would also miss the TLB. */
static void *slots_new(size_t n, size_t elem)
{
        size_t size = n * elem;
        void *p;

        if (size < HUGE_PAGE)
                return calloc(n, elem);
        if (posix_memalign(&p, HUGE_PAGE, size) != 0)
                return NULL;
        (void)madvise(p, size, MADV_HUGEPAGE); /* advice only: fine if refused */
        memset(p, 0, size);
        return p;
}

/* ---- the table by key object address ---- */

/* Keys a node read answers without store_check_furi or a type check (read.c node_fast; a
 * stored key has no query, is no pattern and no branch). */
static bool ptr_eligible(const hyb_furi *f)
{
        return f->scope == HYB_SCOPE_HOST && !f->scheme && !f->query && !f->pattern &&
               !f->branch;
}

static void pslot_put(pslot *ps, size_t n, const hyb_furi *f, hyb_obj *value)
{
        size_t i = index_ptr_home(f, n - 1);

        while (ps[i].furi)
                i = (i + 1) & (n - 1);
        ps[i] = (pslot){ .furi = f, .value = value };
}

static pslot *pslot_find(const store_index *ix, const hyb_furi *f)
{
        size_t mask = ix->n_pslots - 1;

        if (!ix->n_pslots)
                return NULL;
        for (size_t i = index_ptr_home(f, mask);; i = (i + 1) & mask) {
                pslot *p = &ix->pslots[i];
                if (p->furi == f)
                        return p;
                if (!p->furi)
                        return NULL;
        }
}

/* Makes room for one more entry in the table by address: doubles it when one more would fill
 * it beyond 4/5. */
static int pslot_reserve(store_index *ix)
{
        size_t nn;
        pslot *nps;

        if ((ix->n_pvalues + 1) * 5 <= ix->n_pslots * 4)
                return 0;
        nn = ix->n_pslots ? ix->n_pslots * 2 : 64;
        nps = slots_new(nn, sizeof(pslot));
        if (!nps)
                return -ENOMEM;
        for (size_t i = 0; i < ix->n_pslots; i++)
                if (ix->pslots[i].furi)
                        pslot_put(nps, nn, ix->pslots[i].furi, ix->pslots[i].value);
        free(ix->pslots);
        ix->pslots = nps;
        ix->n_pslots = nn;
        return 0;
}

/* Removes f's slot (if there) and shifts the probe sequence back over it. */
static void pslot_remove(store_index *ix, const hyb_furi *f)
{
        size_t mask = ix->n_pslots - 1, i, j;
        pslot *p = pslot_find(ix, f);

        if (!p)
                return;
        i = (size_t)(p - ix->pslots);
        for (j = (i + 1) & mask; ix->pslots[j].furi; j = (j + 1) & mask) {
                size_t home = index_ptr_home(ix->pslots[j].furi, mask);
                bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (!stays) {
                        ix->pslots[i] = ix->pslots[j];
                        i = j;
                }
        }
        ix->pslots[i] = (pslot){ 0 };
        ix->n_pvalues--;
}

void index_prefetch_ptr(const store_index *ix, const hyb_furi *key)
{
        if (ix->n_pslots)
                __builtin_prefetch(&ix->pslots[index_ptr_home(key, ix->n_pslots - 1)], 0, 3);
}

const hyb_obj *index_get_value_ptr(const store_index *ix, const hyb_furi *key)
{
        pslot *p = pslot_find(ix, key);

        return p ? p->value : NULL;
}

static int hash_add(store_index *ix, index_node *n, hyb_obj *value)
{
        bool by_ptr = ptr_eligible(n->furi);

        if ((ix->n_values + 1) * 2 > ix->n_slots) {
                size_t nn = ix->n_slots ? ix->n_slots * 2 : 64;
                hslot *ns = slots_new(nn, sizeof(hslot));
                if (!ns)
                        return -ENOMEM;
                for (size_t i = 0; i < ix->n_slots; i++)
                        if (ix->slots[i].node)
                                slot_put(ns, nn, &ix->slots[i]);
                free(ix->slots);
                ix->slots = ns;
                ix->n_slots = nn;
        }
        if (by_ptr && pslot_reserve(ix) < 0)
                return -ENOMEM;
        n->hash = hyb_furi_hash(n->furi);
        slot_put(ix->slots, ix->n_slots,
                 &(hslot){ .hash = n->hash, .furi = n->furi, .value = value, .node = n });
        if (by_ptr) {
                pslot_put(ix->pslots, ix->n_pslots, n->furi, value);
                ix->n_pvalues++;
        }
        return 0;
}

/* Removes n's slot and shifts the probe sequence back over it (no tombstones). */
static void hash_remove(store_index *ix, index_node *n)
{
        size_t mask = ix->n_slots - 1, i = n->hash & mask, j;

        while (ix->slots[i].node != n) {
                if (!ix->slots[i].node)
                        return;
                i = (i + 1) & mask;
        }
        for (j = (i + 1) & mask; ix->slots[j].node; j = (j + 1) & mask) {
                size_t home = ix->slots[j].hash & mask;
                /* j's entry may move to i unless its home lies cyclically in (i, j] */
                bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (!stays) {
                        ix->slots[i] = ix->slots[j];
                        i = j;
                }
        }
        ix->slots[i] = (hslot){ 0 };
        pslot_remove(ix, n->furi);
}

index_node *index_get(const store_index *ix, const hyb_furi *key)
{
        hslot *sl = slot_find(ix, key, hyb_furi_hash(key));

        return sl ? sl->node : NULL;
}

const hyb_obj *index_get_value(const store_index *ix, const hyb_furi *key, uint64_t h)
{
        hslot *sl = slot_find(ix, key, h);

        return sl ? sl->value : NULL;
}

void index_prefetch(const store_index *ix, uint64_t h)
{
        if (ix->n_slots)
                __builtin_prefetch(&ix->slots[h & (ix->n_slots - 1)], 0, 3);
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
        size_t ns = hyb_furi_get_n_segments(key);

        for (size_t i = 0; i < ns && n; i++) {
                size_t len;
                const char *s = hyb_furi_get_segment(key, i, &len);
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
        size_t ns = hyb_furi_get_n_segments(key);
        index_node *n;
        hslot *sl;
        pslot *p;
        hyb_furi *k;
        int r;

        /* An overwrite through the key's own object updates that object's address slot too:
         * start loading it now, so its wait overlaps the hash slot's. */
        index_prefetch_ptr(ix, key);
        sl = slot_find(ix, key, hyb_furi_hash(key));

        if (sl) {
                /* An overwrite: the node and its key stay.  The old value and the key are
                 * read from the slot (equal to the node's), so only stores wait on the node. */
                n = sl->node;
                if (ret_old)
                        *ret_old = sl->value;
                else
                        hyb_obj_unref(sl->value);
                n->value = sl->value = hyb_obj_ref(value);
                p = pslot_find(ix, sl->furi);
                if (p)
                        p->value = sl->value;
                return 0;
        }
        n = root_of(ix, key);
        r = hyb_furi_strip_query(key, &k);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ns; i++) {
                size_t len;
                const char *s = hyb_furi_get_segment(key, i, &len);
                r = child_add(n, s, len, &n);
                if (r < 0) {
                        hyb_furi_unref(k);
                        prune(n);
                        return r;
                }
        }
        /* not in the hash table, so the node has no value yet */
        n->furi = k;
        r = hash_add(ix, n, value);
        if (r < 0) {
                n->furi = hyb_furi_unref(k);
                prune(n);
                return r;
        }
        if (ret_old)
                *ret_old = NULL;
        ix->n_values++;
        n->value = hyb_obj_ref(value);
        return 0;
}

void index_clear(store_index *ix, index_node *n, hyb_obj **ret_old)
{
        if (n->value) {
                ix->n_values--;
                hash_remove(ix, n);
        }
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
