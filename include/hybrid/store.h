/* SPDX-License-Identifier: MIT */
/*
 * hybrid/store.h - the fURI tuple store and the scope router (doc/store.md).
 *
 * A hyb_store holds objs at absolute fURIs, in memory (an ordered index for
 * node, prefix and pattern reads) and optionally in SQLite (WAL) with a
 * durability mode.  Writes notify subscriptions whose pattern matches; the
 * messages are queued at the write and delivered by hyb_store_process() on
 * the thread that calls it (loop-neutral: get_fd/get_timeout/process, or the
 * blocking hyb_store_wait).  A store handle may be used from several threads.
 *
 * A hyb_scope routes fURIs by scope: relative (program) fURIs to a memory
 * store private to the program, `~/x` to `/home/<program>/x` in the host
 * store, `/x` to the host store, `//...` (cluster, global) to a clear
 * HYB_E_SCOPE error until those scopes exist.
 */
#ifndef HYBRID_STORE_H
#define HYBRID_STORE_H

#include <hybrid/common.h>
#include <hybrid/furi.h>
#include <hybrid/obj.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hyb_store hyb_store;

typedef enum hyb_durability {
        HYB_DURABILITY_MEMORY = 0, /* no disk */
        HYB_DURABILITY_NORMAL = 1, /* WAL, synchronous=NORMAL: survives a process crash */
        HYB_DURABILITY_FULL = 2,   /* WAL, synchronous=FULL: survives power loss */
        _HYB_DURABILITY_FORCE_32BIT = 0x7fffffff, /* keeps the enum 32 bits wide in structs */
} hyb_durability;

/* Options; initialise with hyb_store_options_init() then set what you need. */
typedef struct hyb_store_options {
        size_t size;                 /* sizeof(hyb_store_options), set by _init */
        hyb_durability durability;   /* default NORMAL when a path is given */
        size_t max_value_bytes;      /* encoded size of one value; default 1 MiB */
        size_t max_depth;            /* nesting of one value; default 32 */
        size_t max_subscriptions;    /* per store handle; default 65536 */
        unsigned busy_timeout_ms;    /* wait on a locked database; default 5000 */
        size_t journal_max;          /* change-journal rows kept for other processes; default 4096 */
        unsigned poll_interval_ms;   /* how often process() looks for other processes' writes
                                        (get_timeout asks for it); default 25 */
} hyb_store_options;

HYB_EXPORT void hyb_store_options_init(hyb_store_options *opts);

/*
 * Opens a store.  path NULL (or durability MEMORY) = memory only.  opts may
 * be NULL for the defaults.  Errors: HYB_E_DATABASE (cannot open or not a
 * store database; message says why), HYB_E_CORRUPT (damage; the message names
 * the fURI), HYB_E_READ_ONLY, -EINVAL.
 */
HYB_EXPORT int hyb_store_open(const char *path, const hyb_store_options *opts, hyb_store **ret,
                              hyb_error *reterr);
/*
 * Opening reads every stored row and verifies it against its checksum: a row
 * that cannot be read (a flipped bit, a value that does not parse) fails the
 * open with HYB_E_CORRUPT and a message naming its fURI; nothing damaged is
 * ever returned as data.  The open also runs SQLite's quick check (b-tree
 * structure: a damaged page that lost rows fails it).  A file the
 * caller may read but not write (or in a directory it may not write) opens
 * read-only: reads work, writes fail with HYB_E_READ_ONLY; such a file with a
 * non-empty -wal file beside it (commits not yet in the file) is refused with
 * HYB_E_READ_ONLY.  A write that finds the disk full fails with -ENOSPC
 * ("disk full" in the message); the store stays usable and loses nothing.
 */
HYB_EXPORT hyb_store *hyb_store_ref(const hyb_store *st);
/* Drops a reference; the last one flushes pending writes and closes. Returns NULL. */
HYB_EXPORT hyb_store *hyb_store_unref(hyb_store *st);

/* A problem hyb_store_check found: furi is the damaged row's key, NULL for damage of the file's
 * structure or of the change journal; problem says what is wrong.  Borrowed for the call. */
typedef void (*hyb_store_check_fn)(const char *furi, const char *problem, void *userdata);

/*
 * Checks the store database at path without changing what it holds (a
 * pending -wal is checkpointed on close, as any close does): SQLite's
 * integrity check, then every stored row against its checksum and the obj and
 * fURI grammars, and every change-journal row against its sum.  fn (may be
 * NULL) gets each problem.  Returns the number of problems (0 = sound), or
 * < 0 when the file cannot be checked: -ENOENT, HYB_E_DATABASE (not an SQLite
 * or not a store database), HYB_E_READ_ONLY (read-only with commits pending
 * in its -wal file).
 */
HYB_EXPORT int hyb_store_check(const char *path, hyb_store_check_fn fn, void *userdata,
                               hyb_error *reterr);

/* Write flags (the `flags` argument of the write functions). */
typedef enum hyb_write_flags {
        HYB_WRITE_TRANSIENT = 0x1, /* notify subscribers only; store nothing */
} hyb_write_flags;

/*
 * Writes value at target (an absolute fURI; see doc/store.md "Operations"):
 * a node stores it; noobj deletes (a node, every match of a pattern, or the
 * children of a branch); a lst/rec written to a branch `x/` stores its
 * children; a write below a stored lst/rec updates it in place.  Returns
 * when the write is acknowledged (committed in NORMAL/FULL).  Errors:
 * HYB_E_LIMIT (value too big or deep), HYB_E_TYPE (typed write `a?int`
 * mismatch), -EINVAL (relative fURI, or a pattern with a non-noobj value),
 * HYB_E_READ_ONLY (a read-only database), -ENOSPC (disk full), HYB_E_DATABASE.
 */
HYB_EXPORT int hyb_store_write(hyb_store *st, const hyb_furi *target, const hyb_obj *value,
                               unsigned flags, hyb_error *reterr);
/* As hyb_store_write with a fURI string. */
HYB_EXPORT int hyb_store_write_str(hyb_store *st, const char *target, const hyb_obj *value,
                                   unsigned flags, hyb_error *reterr);

/* Completion of an asynchronous write: r as hyb_store_write would return. */
typedef void (*hyb_store_done_fn)(int r, void *userdata);
/*
 * Queues a write; queued writes from all callers share one commit (group
 * commit).  done (may be NULL) runs from hyb_store_process() once the write
 * is committed (never before).  Returns 0 when queued, < 0 if rejected at
 * once (then done is not called).
 */
HYB_EXPORT int hyb_store_write_async(hyb_store *st, const hyb_furi *target, const hyb_obj *value,
                                     unsigned flags, hyb_store_done_fn done, void *userdata,
                                     hyb_error *reterr);
/* Commits every queued write now and runs nothing else; 0 or < 0. */
HYB_EXPORT int hyb_store_flush(hyb_store *st);

/*
 * Reads target: a node gives its value (indexing into the nearest stored
 * lst/rec above it, else noobj); a pattern gives a stream (HYB_OBJ_OBJS) of
 * the matches in key order; a branch `p/` gives one rec of full fURI => value.
 * A `?T` query (`a?int`) checks the type (HYB_E_TYPE).  *ret is a new reference.
 */
HYB_EXPORT int hyb_store_read(hyb_store *st, const hyb_furi *target, hyb_obj **ret,
                              hyb_error *reterr);
HYB_EXPORT int hyb_store_read_str(hyb_store *st, const char *target, hyb_obj **ret,
                                  hyb_error *reterr);

/* Calls fn for every match of pattern (or the one node) in key order, with
 * borrowed arguments; fn returns 0 to go on, non-zero to stop (returned). */
typedef int (*hyb_store_each_fn)(const hyb_furi *furi, const hyb_obj *value, void *userdata);
HYB_EXPORT int hyb_store_scan(hyb_store *st, const hyb_furi *pattern, hyb_store_each_fn fn,
                              void *userdata, hyb_error *reterr);

/* A message delivered to a subscription: payload is noobj for a delete.
 * Arguments are borrowed for the duration of the call. */
typedef void (*hyb_store_msg_fn)(const hyb_furi *target, const hyb_obj *payload, bool retain,
                                 void *userdata);

/* Subscription flags (the `flags` argument of the subscribe functions). */
typedef enum hyb_subscribe_flags {
        HYB_SUBSCRIBE_REPLAY = 0x1, /* first deliver the retained values that match */
} hyb_subscribe_flags;

/*
 * Subscribes fn to every write, transient write and delete whose fURI matches
 * pattern; per subscription, delivery order is write order.  *ret_slot is the slot:
 * unref it to unsubscribe.  Errors: HYB_E_LIMIT (max_subscriptions), -EINVAL.
 */
HYB_EXPORT int hyb_store_subscribe(hyb_store *st, const hyb_furi *pattern, unsigned flags,
                                   hyb_store_msg_fn fn, void *userdata, hyb_slot **ret_slot,
                                   hyb_error *reterr);

/*
 * Loop integration, as for the bus.  The fd is readable when messages or
 * completions are ready (or another process changed the database).
 */
HYB_EXPORT int hyb_store_get_fd(hyb_store *st);
/*
 * *ret_usec gets the absolute CLOCK_MONOTONIC time (µs, see hyb_now_usec) by
 * which hyb_store_process must be called again: 0 when something is ready now,
 * UINT64_MAX for none.  Returns 0, or -EINVAL.
 */
HYB_EXPORT int hyb_store_get_timeout(hyb_store *st, uint64_t *ret_usec);
/* Delivers what is ready; returns > 0 if it did something, 0 if idle, < 0 on failure. */
HYB_EXPORT int hyb_store_process(hyb_store *st);
/* Blocks up to timeout_usec (a relative wait; UINT64_MAX = forever) until something is
 * ready, then processes. */
HYB_EXPORT int hyb_store_wait(hyb_store *st, uint64_t timeout_usec);

/* --- the scope router --- */
typedef struct hyb_scope hyb_scope;

/*
 * A router for one program.  host: the host-scope store (referenced); NULL
 * creates an in-process memory store (the embedded default).  program: the
 * name used for `~/` (`/home/<program>/`).
 */
HYB_EXPORT int hyb_scope_new(hyb_store *host, const char *program, hyb_scope **ret);
HYB_EXPORT hyb_scope *hyb_scope_ref(const hyb_scope *sc);
HYB_EXPORT hyb_scope *hyb_scope_unref(hyb_scope *sc);
/* The store a fURI's scope routes to (borrowed), or HYB_E_SCOPE with a message naming the scope;
 * *ret_target gets the fURI to use in that store (e.g. `~/a` -> `/home/p/a`). */
HYB_EXPORT int hyb_scope_route(hyb_scope *sc, const hyb_furi *furi, hyb_store **ret_store,
                               hyb_furi **ret_target, hyb_error *reterr);
HYB_EXPORT int hyb_scope_write(hyb_scope *sc, const hyb_furi *target, const hyb_obj *value,
                               unsigned flags, hyb_error *reterr);
HYB_EXPORT int hyb_scope_read(hyb_scope *sc, const hyb_furi *target, hyb_obj **ret,
                              hyb_error *reterr);
HYB_EXPORT int hyb_scope_subscribe(hyb_scope *sc, const hyb_furi *pattern, unsigned flags,
                                   hyb_store_msg_fn fn, void *userdata, hyb_slot **ret_slot,
                                   hyb_error *reterr);
/* Delivers queued messages of every store the router uses; > 0 if it did something. */
HYB_EXPORT int hyb_scope_process(hyb_scope *sc);

#ifdef __cplusplus
}
#endif

#endif
