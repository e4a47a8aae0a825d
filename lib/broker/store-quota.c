/* SPDX-License-Identifier: MIT */
/*
 * What peers add to the host store through the bus, and its bounds (doc/config.md
 * "store"): store.limits.max_bytes for everything written over the bus, and
 * uid_max_keys / uid_max_bytes for what one uid holds there.  A retained write
 * charges its fURI's text plus its value's text to the writer's uid (an overwrite
 * moves the charge to the new writer); a delete releases it.
 *
 *   squota
 *    |- slot[]  open hash of charged keys:  "fURI" -> {uid, bytes}   (linear probing,
 *    |          deletes by backward shift, so no tombstones)
 *    `- uids    uid -> {keys, bytes}, kept while the uid holds something
 *
 * A write into a stored lst/rec (`/cfg/list/0`), or a delete inside it, is charged to
 * the key that holds the value, at the value's new size (store-serve.c): every entry
 * here is a key the store holds.  Writes the store gets by other ways (boot programs,
 * another process on the same file) are not charged to anyone.
 */
#include <stdio.h>

#include "broker-internal.h"
#include "common/util.h"
#include "furi/furi-internal.h" /* furi_hash_bytes: the hash a parsed fURI carries */

typedef struct sq_entry {
        char *key;              /* NULL: an empty slot */
        size_t key_len;
        uint64_t hash;
        uid_t uid;
        size_t bytes;
} sq_entry;

typedef struct sq_uid {
        struct sq_uid *next;
        uid_t uid;
        size_t keys, bytes;
} sq_uid;

struct squota {
        sq_entry *slot;
        size_t n_slots;         /* a power of two, or 0 */
        size_t n;
        size_t bytes;           /* sum of every entry's bytes */
        sq_uid *uids;
        uint64_t moves;         /* bumped whenever an entry is added, removed or moved */
        /* squota_check's look-up, for the squota_charge of the same write: valid while
         * moves is unchanged and the charge names the same key text (pointer, length, hash) */
        struct {
                const char *key;
                size_t len;
                uint64_t hash, moves;
                sq_entry *s;    /* NULL: not charged */
        } last;
};

/* The hash of a key text: hyb_furi_hash() of the fURI whose path text it is (furi_hash_bytes
 * over the same bytes), so a write's check and charge take the one its parsed fURI carries
 * instead of hashing the text again. */
uint64_t squota_hash(const char *key, size_t key_len)
{
        return furi_hash_bytes(key, key_len);
}

static sq_entry *find(const squota *q, const char *key, size_t len, uint64_t h)
{
        if (!q->n_slots)
                return NULL;
        for (size_t i = h & (q->n_slots - 1);; i = (i + 1) & (q->n_slots - 1)) {
                sq_entry *s = &q->slot[i];
                if (!s->key)
                        return NULL;
                if (s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0)
                        return s;
        }
}

static sq_uid *uid_get(squota *q, uid_t uid, bool create)
{
        sq_uid *u;

        for (u = q->uids; u; u = u->next)
                if (u->uid == uid)
                        return u;
        if (!create || !(u = calloc(1, sizeof(*u))))
                return NULL;
        u->uid = uid;
        u->next = q->uids;
        q->uids = u;
        return u;
}

static void uid_drop_empty(squota *q)
{
        for (sq_uid **pp = &q->uids; *pp;) {
                sq_uid *u = *pp;
                if (u->keys == 0 && u->bytes == 0) {
                        *pp = u->next;
                        free(u);
                } else
                        pp = &u->next;
        }
}

static int grow(squota *q)
{
        size_t n = q->n_slots ? q->n_slots * 2 : 64;
        sq_entry *v = calloc(n, sizeof(*v));

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < q->n_slots; i++) {
                sq_entry *s = &q->slot[i];
                size_t j;

                if (!s->key)
                        continue;
                for (j = s->hash & (n - 1); v[j].key; j = (j + 1) & (n - 1))
                        ;
                v[j] = *s;
        }
        free(q->slot);
        q->slot = v;
        q->n_slots = n;
        q->moves++;
        return 0;
}

/* Empties slot i and shifts the entries after it back, so probing still finds them. */
static void remove_at(squota *q, size_t i)
{
        size_t mask = q->n_slots - 1, j = i;

        q->moves++;
        free(q->slot[i].key);
        q->slot[i] = (sq_entry){ 0 };
        q->n--;
        for (;;) {
                j = (j + 1) & mask;
                if (!q->slot[j].key)
                        return;
                size_t home = q->slot[j].hash & mask;
                /* can slot j's entry move to the hole i? (home not in (i, j] cyclically) */
                if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
                        q->slot[i] = q->slot[j];
                        q->slot[j] = (sq_entry){ 0 };
                        i = j;
                }
        }
}

static void release_entry(squota *q, size_t i)
{
        sq_entry *s = &q->slot[i];
        sq_uid *u = uid_get(q, s->uid, false);

        if (u) {
                u->keys--;
                u->bytes -= s->bytes;
        }
        q->bytes -= s->bytes;
        remove_at(q, i);
}

void squota_free(squota *q)
{
        if (!q)
                return;
        for (size_t i = 0; i < q->n_slots; i++)
                free(q->slot[i].key);
        free(q->slot);
        while (q->uids) {
                sq_uid *u = q->uids;
                q->uids = u->next;
                free(u);
        }
        free(q);
}

int squota_new(squota **ret)
{
        *ret = calloc(1, sizeof(**ret));
        return *ret ? 0 : -ENOMEM;
}

static size_t cfg_or(size_t v, size_t dflt)
{
        return v ? v : dflt;
}

/* May uid write items (n of them, in one write)?  Their sum is checked against each bound, so
 * a branch write's children pass or fail together.  *ret_s: the first item's entry (or NULL). */
static int check_items(hyb_broker *b, uid_t uid, const squota_item *items, size_t n,
                       sq_entry **ret_s, hyb_error *e)
{
        const broker_config *c = b->c;
        squota *q = b->squota;
        sq_uid *u = uid_get(q, uid, false);
        size_t u_keys = u ? u->keys : 0, u_bytes = u ? u->bytes : 0;
        size_t max_bytes = cfg_or(c->store_max_bytes, STORE_MAX_BYTES_DEFAULT);
        size_t uid_max_keys = cfg_or(c->store_uid_max_keys, STORE_UID_MAX_KEYS_DEFAULT);
        size_t uid_max_bytes = cfg_or(c->store_uid_max_bytes, STORE_UID_MAX_BYTES_DEFAULT);
        /* What the write adds and what it replaces or deletes, in all and of what uid holds
         * (the keys are distinct, so each charge is counted once: old <= q->bytes, u_old <=
         * u_bytes, freed <= u_keys), and the keys it adds to uid and deletes of uid's. */
        size_t add = 0, old = 0, u_add = 0, u_old = 0, new_keys = 0, freed = 0;

        for (size_t i = 0; i < n; i++) {
                sq_entry *s = find(q, items[i].key, items[i].key_len, items[i].hash);
                bool mine = s && s->uid == uid;

                if (i == 0)
                        *ret_s = s;
                old += s ? s->bytes : 0;
                u_old += mine ? s->bytes : 0;
                if (items[i].del) {
                        freed += mine;
                        continue;
                }
                add += items[i].key_len + items[i].value_len;
                u_add += items[i].key_len + items[i].value_len;
                new_keys += !mine;
        }
        /* Only what grows is refused: a write no larger than what it replaces always passes,
         * so a store at its bound can still be rewritten and emptied. */
        if (add > old && q->bytes - old + add > max_bytes)
                return err_set(e, HYB_E_INSUFFICIENT_STORAGE, -1,
                               "quota store.limits.max_bytes exceeded: the host store holds %zu "
                               "bytes written over the bus, %zu more would pass the limit %zu",
                               q->bytes, add - old, max_bytes);
        if (new_keys > freed && u_keys - freed + new_keys > uid_max_keys)
                return err_set(e, HYB_E_INSUFFICIENT_STORAGE, -1,
                               "quota store.limits.uid_max_keys exceeded: uid %u holds %zu keys in "
                               "the host store, %zu more would pass the limit %zu",
                               (unsigned)uid, u_keys, new_keys - freed, uid_max_keys);
        /* a new key is checked even when it is no larger than what it replaces: it was
         * another uid's */
        if ((new_keys > 0 || u_add > u_old) && u_bytes - u_old + u_add > uid_max_bytes)
                return err_set(e, HYB_E_INSUFFICIENT_STORAGE, -1,
                               "quota store.limits.uid_max_bytes exceeded: uid %u holds %zu bytes "
                               "in the host store, %zu more would pass the limit %zu",
                               (unsigned)uid, u_bytes, u_add > u_old ? u_add - u_old : 0,
                               uid_max_bytes);
        return 0;
}

int squota_check_many(hyb_broker *b, uid_t uid, const squota_item *items, size_t n,
                      hyb_error *e)
{
        sq_entry *s = NULL;

        b->squota->last.key = NULL;
        return check_items(b, uid, items, n, &s, e);
}

int squota_check(hyb_broker *b, uid_t uid, const char *key, size_t key_len, uint64_t hash,
                 size_t value_len, hyb_error *e)
{
        squota *q = b->squota;
        squota_item it = { .key = key, .key_len = key_len, .hash = hash, .value_len = value_len };
        sq_entry *s = NULL;
        int r;

        q->last.key = NULL;
        r = check_items(b, uid, &it, 1, &s, e);
        if (r < 0)
                return r;
        /* The write's squota_charge follows, with the same key text (its caller holds it
         * meanwhile, so the same pointer is the same text): it need not look again. */
        q->last.key = key;
        q->last.len = key_len;
        q->last.hash = hash;
        q->last.moves = q->moves;
        q->last.s = s;
        return 0;
}

int squota_charge(hyb_broker *b, uid_t uid, const char *key, size_t key_len, uint64_t h,
                  size_t value_len)
{
        squota *q = b->squota;
        sq_entry *s;
        sq_uid *u;
        size_t size = key_len + value_len;

        if (q->last.key == key && q->last.len == key_len && q->last.hash == h &&
            q->last.moves == q->moves)
                s = q->last.s; /* squota_check just looked it up; nothing moved since */
        else
                s = find(q, key, key_len, h);
        q->last.key = NULL;

        if (s) {
                sq_uid *old = uid_get(q, s->uid, false);
                if (old) {
                        old->keys--;
                        old->bytes -= s->bytes;
                }
                q->bytes -= s->bytes;
        } else {
                size_t i;

                if ((q->n + 1) * 2 > q->n_slots && grow(q) < 0)
                        return -ENOMEM;
                for (i = h & (q->n_slots - 1); q->slot[i].key; i = (i + 1) & (q->n_slots - 1))
                        ;
                s = &q->slot[i];
                s->key = strndup_safe(key, key_len);
                if (!s->key)
                        return -ENOMEM;
                q->moves++;
                s->key_len = key_len;
                s->hash = h;
                q->n++;
        }
        u = uid_get(q, uid, true);
        s->uid = uid;
        s->bytes = size;
        q->bytes += size;
        if (u) {
                u->keys++;
                u->bytes += size;
        }
        uid_drop_empty(q);
        return 0;
}

void squota_resize(hyb_broker *b, const char *key, size_t key_len, uint64_t hash,
                   size_t value_len)
{
        squota *q = b->squota;
        sq_entry *s = find(q, key, key_len, hash);
        size_t size = key_len + value_len;
        sq_uid *u;

        if (!s)
                return;
        u = uid_get(q, s->uid, false);
        q->bytes = q->bytes - s->bytes + size;
        if (u)
                u->bytes = u->bytes - s->bytes + size;
        s->bytes = size;
}

void squota_release(hyb_broker *b, const char *key, size_t key_len, uint64_t hash)
{
        squota *q = b->squota;
        sq_entry *s;

        if (!q->n)
                return;
        s = find(q, key, key_len, hash);
        if (s)
                release_entry(q, (size_t)(s - q->slot));
        uid_drop_empty(q);
}

size_t squota_get_n(const hyb_broker *b)
{
        return b->squota ? b->squota->n : 0;
}

void squota_get_usage(const hyb_broker *b, uid_t uid, size_t *ret_keys, size_t *ret_bytes,
                      size_t *ret_total)
{
        const squota *q = b->squota;
        const sq_uid *u = NULL;

        for (u = q ? q->uids : NULL; u && u->uid != uid; u = u->next)
                ;
        *ret_keys = u ? u->keys : 0;
        *ret_bytes = u ? u->bytes : 0;
        *ret_total = q ? q->bytes : 0;
}
