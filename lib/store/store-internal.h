/* SPDX-License-Identifier: MIT */
/*
 * Internal structures of the fURI tuple store (lib/store/).  One handle:
 *
 *   hyb_store ──lock──┬─ store_index   ordered trie of stored keys        (index.c)
 *                     ├─ subs_index    subscription trie: literal/+/#     (subs.c)
 *                     ├─ queue         messages + completions, FIFO      (store.c)
 *                     ├─ pending ops   group-commit queue                (commit.c)
 *                     └─ store_db ─db.lock─ SQLite WAL + journal          (db.c)
 *
 * Lock order: db.lock is a leaf.  Every db_* function takes and releases it
 * inside, and no code waits for st->lock while holding it; so the commit
 * leader (which drops st->lock around db_commit) and the journal poller
 * never deadlock with writers.
 */
#ifndef HYB_STORE_INTERNAL_H
#define HYB_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>

#include "hybrid/store.h"
#include "common/slot.h"
#include "common/util.h"

/* ---- index.c: stored keys in key order ---- */
typedef struct index_node index_node;
struct index_node {
        uint64_t hash;          /* hyb_furi_hash(furi), while value is set */
        hyb_furi *furi;         /* the key (no query), set while value is */
        hyb_obj *value;         /* NULL = nothing stored here */
        char *seg;              /* decoded segment (NUL-terminated copy) */
        size_t seg_len;
        index_node *parent;
        index_node **children;  /* sorted by seg_compare */
        size_t n_children, alloc_children;
        uint64_t mark;          /* resync generation */
};

/* A slot of the hash table: copies of the node's key and value pointers (index.c). */
typedef struct hslot {
        uint64_t hash;
        const hyb_furi *furi;
        hyb_obj *value;         /* borrowed: the node holds the reference */
        index_node *node;       /* NULL = an empty slot */
} hslot;

/* A slot of the table by key identity: the stored key fURI object itself (its address) and
 * the value, for readers that pass the very fURI object a value was written with. */
typedef struct pslot {
        const hyb_furi *furi;   /* NULL = an empty slot */
        hyb_obj *value;         /* borrowed: the node holds the reference */
} pslot;

typedef struct store_index {
        index_node abs_root;    /* `/a/b` */
        index_node rel_root;    /* `a/b` (program stores only) */
        size_t n_values;
        /* Every node with a value, by hyb_furi_hash of its key: a node read of a literal
         * fURI is one lookup instead of a walk of the trie. */
        hslot *slots;
        size_t n_slots;         /* a power of two (0 before the first value) */
        /* The same nodes (those a host node read may answer without checks: host scope, no
         * scheme), by the address of their key fURI object: a read passing that very object
         * finds its value without loading the object (index_get_value_ptr).  Sized on its
         * own, fuller than slots (load up to 4/5): its slots are half the size of slots',
         * four to a cache line, and a hit probes 1.3 to 3 of them on average (load 2/5 to
         * 4/5), so the table a read touches stays small (2 MiB at 100 000 keys), which is
         * what keeps it in the cache. */
        pslot *pslots;
        size_t n_pslots;        /* a power of two (0 before the first eligible value) */
        size_t n_pvalues;       /* slots in use */
} store_index;

int seg_compare(const char *a, size_t alen, const char *b, size_t blen);
bool seg_is_index(const char *s, size_t len, size_t *ret);
void index_init(store_index *ix);
void index_done(store_index *ix);
index_node *index_find_child(index_node *n, const char *seg, size_t len);
index_node *index_lookup(store_index *ix, const hyb_furi *key);
/* The node holding a value at exactly key (the query is ignored), or NULL: a hash lookup. */
index_node *index_get(const store_index *ix, const hyb_furi *key);
/* The value stored at exactly key (borrowed), or NULL, without touching the trie node;
 * h is hyb_furi_hash(key) (the batched read has it already). */
const hyb_obj *index_get_value(const store_index *ix, const hyb_furi *key, uint64_t h);
/* The value stored under the key fURI object key itself (borrowed), or NULL: found by the
 * object's address, without reading the object.  Only host-scope keys without a scheme are
 * there (a read of one needs no check); NULL says nothing about keys equal to key. */
const hyb_obj *index_get_value_ptr(const store_index *ix, const hyb_furi *key);
/* The home slot of a fURI object's address in the table by address (a 64-bit mixer:
 * allocations are 16-byte aligned and close together, so the address's low bits alone would
 * cluster). */
static inline size_t index_ptr_home(const hyb_furi *f, size_t mask)
{
        uint64_t x = (uint64_t)(uintptr_t)f;

        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        return (size_t)x & mask;
}

/* index_get_value_ptr inline, for the node read's hit path (read.c hyb_store_read): the
 * same probe, without a call. */
static inline const hyb_obj *index_ptr_value(const store_index *ix, const hyb_furi *key)
{
        size_t mask = ix->n_pslots - 1;

        if (!ix->n_pslots)
                return NULL;
        for (size_t i = index_ptr_home(key, mask);; i = (i + 1) & mask) {
                const pslot *p = &ix->pslots[i];
                if (p->furi == key)
                        return p->value;
                if (!p->furi)
                        return NULL;
        }
}

/* Starts loading the slot where index_get_value_ptr(ix, key) begins (a hint). */
void index_prefetch_ptr(const store_index *ix, const hyb_furi *key);
/* Starts loading the slot where a lookup of hash h begins (a hint: no effect on results).
 * A batched read prefetches every slot of the batch before the first lookup, so the
 * batch's cache misses overlap instead of following one another. */
void index_prefetch(const store_index *ix, uint64_t h);
/* Stores value (a new reference taken) at key; *ret_old (may be NULL) gets the old value. */
int index_set(store_index *ix, const hyb_furi *key, hyb_obj *value, hyb_obj **ret_old);
/* Clears n's value (returned in *ret_old, a reference) and prunes empty nodes. */
void index_clear(store_index *ix, index_node *n, hyb_obj **ret_old);
/* Pre-order successor of n within the subtree of top (NULL at the end). */
index_node *index_next(index_node *n, const index_node *top);

/* ---- subs.c: subscriptions by pattern ---- */
typedef struct store_sub store_sub;
typedef struct sub_node sub_node;
struct sub_node {
        char *seg;
        size_t seg_len;
        sub_node *parent;
        sub_node **lits;        /* literal children, sorted by bytes */
        size_t n_lits, alloc_lits;
        sub_node *plus, *hash;
        store_sub **subs;       /* subscriptions whose pattern ends here */
        size_t n_subs, alloc_subs;
};

typedef struct subs_index {
        sub_node abs_root, rel_root;
        size_t n;
} subs_index;

void subs_init(subs_index *si);
void subs_done(subs_index *si);
int subs_add(subs_index *si, store_sub *s);
void subs_remove(subs_index *si, store_sub *s);
/* Appends every subscription matching the node fURI f to *arr (grown). */
int subs_match(subs_index *si, const hyb_furi *f, store_sub ***arr, size_t *n, size_t *alloc);

struct store_sub {
        hyb_slot slot;          /* first: the caller's handle */
        atomic_uint n_ref;      /* the slot's + one per queued message */
        hyb_store *store;       /* referenced while the slot lives */
        hyb_furi *pattern;
        hyb_store_msg_fn fn;
        sub_node *node;
        atomic_bool dead;
        /* backend.c: runs with the userdata when the last reference goes (after every
         * queued message of this subscription was delivered or dropped), never earlier */
        void (*release)(void *userdata);
};

/* Sets the release hook of a subscription made by hyb_store_subscribe (its slot). */
void store_sub_set_release(hyb_slot *slot, void (*release)(void *userdata));

/* ---- db.c: SQLite persistence and the change journal ---- */
#define STORE_APP_ID 0x48796231 /* PRAGMA application_id: "Hyb1" */
#define SUMS_VERSION 1          /* PRAGMA user_version: every kv row has its sum */
/* A value as stored in kv.value (a column without type affinity, so SQLite keeps what is
 * bound): a plain int or finite non-zero real (no type or value id) binds natively, exact and
 * without formatting; anything else is its EXACT text form. */
typedef struct db_value {
        int type;               /* SQLITE_NULL (a delete), SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT */
        int64_t i;
        double d;
        char *text;             /* SQLITE_TEXT only (hyb_free) */
} db_value;

typedef struct db_op db_op;
struct db_op {
        db_op *next;
        char *key;              /* canonical fURI text */
        db_value value;
        /* the last op of a write carries its completion */
        struct commit_waiter *waiter;
        hyb_store_done_fn done;
        void *userdata;
};

typedef struct store_db {
        sqlite3 *db;
        sqlite3_stmt *upsert, *del, *jadd, *jsince, *jmin, *jmax, *jtrim, *dver, *all;
        sqlite3_stmt *begin_w, *begin_r, *commit, *rollback, *others, *self;
        int64_t others_version; /* data_version when n_others was read (-1: never) */
        int64_t n_others;       /* other registered handles: 0 = no journal row needed */
        bool native;            /* kv.value has no affinity: ints and reals bind natively */
        bool has_sum;           /* kv has its sum column */
        bool sums_complete;     /* user_version says every kv row has its sum */
        bool readonly;          /* opened immutable: reads only (see db.c) */
        char *path;
        pthread_mutex_t lock;
        int64_t origin;         /* random id of this handle in the journal */
        int64_t last_seq;       /* journal rows up to here are applied */
        int64_t data_version;
        size_t journal_max;
        unsigned commits;
} store_db;

typedef struct db_change {
        int64_t seq;
        bool own;
        char *key;
        hyb_obj *value;         /* NULL = delete (or a value that cannot be read) */
        bool bad;               /* the stored value could not be decoded: skip the row (the
                                   poll then reports a gap, so the caller resyncs from kv) */
} db_change;

int db_open(store_db *d, const char *path, const hyb_store_options *o, hyb_error *e);
/* dbfile.c: opens path: read-only with immutable=1 when we may not write it or its directory (then
 * *ret_readonly; a non-empty -wal file next to it is HYB_E_READ_ONLY), else read-write and
 * created (check_only: not created). */
int db_connect(const char *path, bool check_only, sqlite3 **ret, bool *ret_readonly,
               hyb_error *e);
/* The HYB_E_* / -errno code of an SQLite result code (SQLITE_FULL = -ENOSPC, ...). */
int db_code(int rc);
/* rowsum.c: the checksum of a kv row (kv.sum): the key, the value's storage class and its bytes. */
int64_t db_row_sum(const char *key, size_t key_len, int type, int64_t i, double d,
                   const char *text, size_t text_len);
/* The sum of a journal row's ops (journal.sum). */
int64_t db_journal_sum(const void *ops, size_t len);
/* Reads the row `furi, value, sum` of s: the value in *ret (a new reference), or
 * HYB_E_CORRUPT with *ret_why saying what is wrong (a missing sum only when need_sum). */
int db_row_check(sqlite3_stmt *s, bool need_sum, hyb_obj **ret, const char **ret_why);
void db_close(store_db *d);
/* Calls fn for every stored row (the whole table; value borrowed); under d->lock.  A row
 * that cannot be read, or that fn finds unreadable (HYB_E_CORRUPT), stops the load with
 * HYB_E_CORRUPT and a message naming its key. */
int db_load(store_db *d, int (*fn)(const char *key, hyb_obj *value, void *ud), void *ud,
            hyb_error *e);
/* One transaction: every op, and its journal row. */
int db_commit(store_db *d, db_op *ops, hyb_error *e);
/* Journal rows after last_seq (*ret_gap when some were trimmed before we saw them);
 * returns 0 with *n = 0 when nothing changed since the last call.  wait false: returns
 * -EBUSY at once when the connection is in use (a commit, its fsync, another poll). */
int db_poll(store_db *d, bool wait, db_change **ret, size_t *n, bool *ret_gap);
/* Decodes the record of a journal row at *p (< end) and moves *p past it: its key (malloc'd,
 * set unless the record is cut short) and, unless skip, its value (NULL for a delete; NULL
 * with *ret_bad for a text that does not parse).  HYB_E_DATABASE for a damaged record. */
int db_journal_next(const char **p, const char *end, bool skip, char **ret_key, hyb_obj **ret_value,
                    bool *ret_bad);
void db_value_done(db_value *v);
void db_changes_free(db_change *c, size_t n);
int db_journal_rows(store_db *d, int64_t *ret);

/* ---- commit.c: group commit ---- */
typedef struct commit_waiter {
        bool done;
        int r;
        char why[256];          /* what failed, when r < 0 */
} commit_waiter;

/* ---- the handle (store.c) ---- */
typedef struct store_msg store_msg;
struct store_msg {
        store_msg *next;
        store_sub *sub;         /* NULL: a completion */
        hyb_furi *target;
        hyb_obj *payload;
        bool retain;
        hyb_store_done_fn done;
        void *userdata;
        int r;
};

struct hyb_store {
        atomic_uint n_ref;
        pthread_mutex_t lock;
        pthread_cond_t committed;
        hyb_store_options opts;
        bool relative;          /* a program store: relative fURIs only */
        bool persistent;
        store_index index;
        subs_index subs;
        store_msg *q_head, **q_tail;
        bool dispatching;
        int efd;
        bool kicked;            /* efd written since hyb_store_process last read it */
        /* store_kick_hold: the holder delivers what is queued itself, so a kick is owed
         * (kick_owed) instead of written until store_kick_release.  Atomic: a hold and its
         * release take no lock (store.c "store_kick"). */
        atomic_uint kick_holds;
        atomic_bool kick_owed;
        /* group commit */
        db_op *pending, **pending_tail;
        db_op *inflight;
        bool committing;
        /* Synchronous writers inside hyb_store_write, and how many of them have their op in
         * st->pending: a leader waits (on queued) for the others to queue theirs before it
         * commits, so N writer threads share one commit instead of the first one back
         * committing alone (commit.c). */
        size_t sync_writers, pending_waiters;
        pthread_cond_t queued;
        store_db db;
        uint64_t last_poll_usec;
        /* Serialises whole journal polls (read the rows, then apply them under st->lock):
         * two threads applying their batches in the wrong order would bring back old
         * values.  Taken before st->lock, never while holding it. */
        pthread_mutex_t sync_lock;
        uint64_t generation;
        /* opts.commit_thread (commit.c): the thread that commits asynchronous writes, woken
         * on commit_cv when one is queued */
        pthread_t committer;
        bool has_committer, stop_committer;
        pthread_cond_t commit_cv;
        /* poly.c: the key order of the big recs walks last went through (st->lock) */
#define WALK_ORDERS 8
        struct walk_order *worder[WALK_ORDERS];
        uint64_t worder_clock;
};

/* The public reads take a const store (a read changes nothing a caller sees); they still
 * lock it and catch up with other processes' writes: the handle is theirs to change. */
static inline hyb_store *store_mut(const hyb_store *st)
{
        return (hyb_store *)st;
}

/* store.c helpers shared by the other files */
/* Makes efd readable: the loop calls hyb_store_process (under st->lock). */
void store_kick(hyb_store *st);
/*
 * For the thread that runs hyb_store_process itself right after a write (the broker's
 * loop): between store_kick_hold and store_kick_release the writes' kicks are owed, not
 * written, so a message delivered within costs no eventfd write and no read to clear it
 * (two system calls).  The release writes the kick still owed when work is left (queued
 * messages, or a commit for hyb_store_process).  Other threads' writes meanwhile are
 * covered the same way: the release, or the holder's own process, serves them.  Holds
 * nest.  Not under st->lock; neither takes it unless a kick is owed.
 */
void store_kick_hold(hyb_store *st);
void store_kick_release(hyb_store *st);
int store_queue_msgs(hyb_store *st, const hyb_furi *target, hyb_obj *payload, bool retain,
                     store_sub **skip, size_t n_skip);
void store_queue_one(hyb_store *st, store_sub *s, const hyb_furi *target, hyb_obj *payload,
                     bool retain);
void store_queue_done(hyb_store *st, hyb_store_done_fn done, void *ud, int r);
/* Checks v's size limit; keep: *ret gets the form to store (else nothing is formatted that
 * nobody reads, and *ret is untouched). */
int store_encode(hyb_store *st, const hyb_obj *v, bool keep, db_value *ret, hyb_error *e);

/* write.c helpers the reads share (read.c) */
/* The kind a `?int`-style query of f asks for, or -1. */
int store_type_word(const hyb_furi *f);
/* HYB_E_TYPE (naming f) when v is not of kind (-1: any kind). */
int store_check_type(const hyb_furi *f, int kind, const hyb_obj *v, hyb_error *e);
/* The text of a branch without its trailing `/` ("/x/" -> "/x"); NULL on ENOMEM. */
char *store_branch_base(const hyb_furi *f);
/* The keys a branch write of poly (a lst or rec) under the branch base (store_branch_base)
 * stores its elements at, in element order: what the store writes, so what the broker
 * charges to the writer's quota.  *ret (n of them, poly's length) is the caller's, to free
 * with store_keys_free; on error (a rec key that names no child: -EINVAL naming it in *e)
 * nothing is returned. */
int store_branch_keys(const char *base, const hyb_obj *poly, hyb_furi ***ret, hyb_error *e);
void store_keys_free(hyb_furi **keys, size_t n);
/* When f names an element inside a stored lst/rec (no key of its own; a write to f writes
 * into that value): 1 and *ret the key holding the value (a reference, the caller's); else 0
 * and NULL. */
int store_holder_of(hyb_store *st, const hyb_furi *f, hyb_furi **ret);
/* Where a node write lands, asked by store_write_checked under st->lock right before the write
 * is made: holder is the stored key whose lst/rec the write goes into (holder_value its value,
 * borrowed), or NULL when the write is of the node's own key.  A negative return refuses the
 * write, which then changes nothing and returns it (with the message the check set in e). */
typedef int (*store_write_check_fn)(const hyb_furi *holder, const hyb_obj *holder_value,
                                    void *ud, hyb_error *e);
/* hyb_store_write of the node (not a pattern or branch) target, or hyb_store_write_async
 * (async, with done and ud), with check asked first, atomically with the write (a transient
 * write stores nothing and asks nothing). */
int store_write_checked(hyb_store *st, const hyb_furi *target, hyb_obj *value, unsigned flags,
                        store_write_check_fn check, void *check_ud, bool async,
                        hyb_store_done_fn done, void *ud, hyb_error *e);
/* The stored keys a delete of the pattern or branch f removes (*ret_n of them, in key order;
 * the caller's, to free with store_keys_free): keys that hold a value, not elements inside a
 * stored lst/rec, which such a delete leaves alone. */
int store_delete_keys(hyb_store *st, const hyb_furi *f, hyb_furi ***ret, size_t *ret_n,
                      hyb_error *e);

/* commit.c */
void commit_enqueue(hyb_store *st, db_op *op);
/* With st->lock held: a synchronous writer enters (true) or leaves (false). */
void commit_writer(hyb_store *st, bool enter);
/* With st->lock held: commits until w is done (sync) or once (w NULL). */
int commit_run(hyb_store *st, commit_waiter *w);
/* opts.commit_thread: starts the committer (0 or -errno); stops and joins it (no lock held). */
int commit_thread_start(hyb_store *st);
void commit_thread_stop(hyb_store *st);
/* With st->lock held: asynchronous writes were queued; the committer (if any) commits them. */
void commit_wake(hyb_store *st);
void db_op_free(db_op *op);

/* poly.c: positions (stored node or element of a stored poly) and walks */
typedef struct store_pos {
        index_node *tn;         /* trie node, or NULL for an element inside a poly */
        const hyb_obj *value;   /* borrowed; NULL = nothing here */
} store_pos;
typedef int (*store_walk_fn)(const char *path, const store_pos *p, void *ud);
/* Walks pattern (or node) segments; fn gets the canonical path text and the position of each
 * match with a value, in key order.  virt: `+`/literal steps also enter stored lst/rec.
 * after (a key, NULL: none): only the matches after it in key order, without walking the
 * ones before it.  fn returns non-zero to stop the walk (returned). */
int store_walk(hyb_store *st, const hyb_furi *pattern, bool virt, const hyb_furi *after,
               store_walk_fn fn, void *ud);
/* Drops what the walks keep between calls (the key order of the big recs last walked). */
void store_walk_order_free(hyb_store *st);
/* read.c: one page of what hyb_store_subscribe's replay delivers for pattern (a
 * subscription's pattern, its query stripped): the matches after the key `after` (NULL: from
 * the first), at most limit, walked as the replay walks them, in key order.  *ret_keys and
 * *ret_vals (malloc'd arrays of *ret_n new references each; the caller unrefs and frees
 * both) and *ret_more (matches follow the page).  Takes st->lock; -ENOMEM. */
int store_replay_page(hyb_store *st, const hyb_furi *pattern, const hyb_furi *after, size_t limit,
                      hyb_furi ***ret_keys, hyb_obj ***ret_vals, size_t *ret_n, bool *ret_more);
/* A new poly equal to container with segs[i..n) set to value (noobj = remove). */
int poly_set(const hyb_obj *container, const hyb_furi *f, size_t i, hyb_obj *value,
             hyb_obj **ret, hyb_error *e);
/* The segment a rec key stands for (uri of one segment, str, int); false if none. */
bool poly_key_seg(const hyb_obj *key, char *buf, size_t bufsz, const char **ret, size_t *len);
const hyb_obj *poly_child(const hyb_obj *poly, const char *seg, size_t len);
int path_append(char **buf, size_t *len, size_t *alloc, const char *seg, size_t slen);
size_t obj_depth(const hyb_obj *o);

/* scope.c needs nothing internal beyond the public API. */
int store_open_program(hyb_store **ret);
/* backend.c: a backend over a new program (relative-key) memory store. */
int store_backend_new_program(hyb_backend **ret);
/* backend.c: the table a backend was made with (lib/bus recognises its own backends by it). */
const hyb_backend_vtable *backend_get_vtable(const hyb_backend *b);
int store_check_furi(hyb_store *st, const hyb_furi *f, hyb_error *e);
int store_resync_locked(hyb_store *st);
int store_sync(hyb_store *st);

#endif
