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
 * A hyb_backend is the interface through which the scope router reaches a
 * scope: the embedded store is one backend, a connection to hybridd another.
 *
 * A hyb_scope routes fURIs by scope to backends: relative (program) fURIs to
 * a memory store private to the program, `~/x` to `/home/<program>/x` in the
 * host backend, `/x` to the host backend, `//...` (cluster, global) to a
 * backend set for them or a clear HYB_E_SCOPE error.
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
        size_t max_keys;             /* fURIs holding a value; a write adding one more fails
                                        with HYB_E_INSUFFICIENT_STORAGE; 0 (default): no bound */
        bool commit_thread;          /* a file store: hyb_store_write_async's writes are
                                        committed (and fsync'ed) on a thread of the store, not
                                        in hyb_store_process, so the caller's loop never waits
                                        for the disk; their done callbacks still run from
                                        hyb_store_process.  Default false. */
} hyb_store_options;

/*
 * Initialises the `size` bytes at opts, the struct as the caller's header declares it
 * (sizeof *opts where it is compiled): stamps `size` and writes the defaults (zeroes and the
 * documented default values) of the members that fit in it.
 * Nothing beyond `size` is written; nothing at all for NULL or a size too small to hold
 * the size member.  Call it through the macro hyb_store_options_init(opts) below.
 */
HYB_EXPORT void hyb_store_options_init_sized(hyb_store_options *opts, size_t size);
/*
 * Deprecated: the symbol of programs built before hyb_store_options_init_sized.  It
 * cannot know the caller's size and writes this library's sizeof(hyb_store_options).
 * In source, hyb_store_options_init(opts) is this macro, which passes the caller's size.
 */
HYB_EXPORT void hyb_store_options_init(hyb_store_options *opts);
#define hyb_store_options_init(opts) hyb_store_options_init_sized((opts), sizeof *(opts))

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
 * The read functions take a const store, as the bus's do: what they lock and what they
 * take in of other processes' writes is the store's own business, not a change a caller
 * sees; any thread may call them.
 * Fastest with the fURI object the key was first written with (the store keeps it as the
 * key and finds it by address); an equal fURI gives the same result.
 */
HYB_EXPORT int hyb_store_read(const hyb_store *st, const hyb_furi *target, hyb_obj **ret,
                              hyb_error *reterr);
HYB_EXPORT int hyb_store_read_str(const hyb_store *st, const char *target, hyb_obj **ret,
                                  hyb_error *reterr);
/*
 * Reads n targets at once: rets[i] gets what hyb_store_read(st, targets[i]) gives (node,
 * pattern or branch, with the same `?T` check), each a new reference for the caller.  The
 * fast way to read many keys: the node reads of a batch are looked up together, so the
 * cache misses of one key overlap with the others' (at 100 000 keys a single read spends
 * most of its time waiting on memory), and the store lock is taken once per batch instead
 * of once per key.  It is not a snapshot: a write made by another thread during the call
 * may be seen by some targets and not by others, as with n successive hyb_store_read calls.
 * targets[] and rets[] have n elements (n == 0 does nothing); the targets are borrowed and
 * left unchanged (the array type lets an array of owned fURIs pass without a cast).
 * Returns 0, or the error of the first target that fails (what hyb_store_read would have
 * returned for it, with *reterr set); then no reference is left in rets: all are NULL.
 */
HYB_EXPORT int hyb_store_read_many(const hyb_store *st, hyb_furi *const *targets, size_t n,
                                   hyb_obj **rets, hyb_error *reterr);

/*
 * One page of a read: the matches of target (a pattern, a branch `p/` or a node) after the
 * key `after` (NULL: from the first) in key order, at most limit (> 0) of them, as one rec
 * of full fURI => value (what HYB_READ_KEYED gives).  The walk stops at the limit, so a page
 * costs about limit matches however many there are.  *ret_next gets, when more matches
 * follow, the page's last key (a new reference: pass it as `after` for the next page), else
 * NULL.  A key written or deleted between pages is seen or not by where it falls against
 * the cursor; no match is given twice.  Errors as hyb_store_read; -EINVAL for limit 0 or an
 * `after` that is a pattern, a branch or has a query.
 */
HYB_EXPORT int hyb_store_read_page(const hyb_store *st, const hyb_furi *target,
                                   const hyb_furi *after, size_t limit, hyb_obj **ret,
                                   hyb_furi **ret_next, hyb_error *reterr);

/* Calls fn for every match of pattern (or the one node) in key order, with
 * borrowed arguments; fn returns 0 to go on, non-zero to stop (returned). */
typedef int (*hyb_store_each_fn)(const hyb_furi *furi, const hyb_obj *value, void *userdata);
HYB_EXPORT int hyb_store_scan(const hyb_store *st, const hyb_furi *pattern, hyb_store_each_fn fn,
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
HYB_EXPORT int hyb_store_get_fd(const hyb_store *st);
/*
 * *ret_usec gets the absolute CLOCK_MONOTONIC time (µs, see hyb_now_usec) by
 * which hyb_store_process must be called again: 0 when something is ready now,
 * UINT64_MAX for none.  Returns 0, or -EINVAL.
 */
HYB_EXPORT int hyb_store_get_timeout(const hyb_store *st, uint64_t *ret_usec);
/* Delivers what is ready; returns > 0 if it did something, 0 if idle, < 0 on failure. */
HYB_EXPORT int hyb_store_process(hyb_store *st);
/* Blocks up to timeout_usec (a relative wait; UINT64_MAX = forever) until something is
 * ready, then processes. */
HYB_EXPORT int hyb_store_wait(hyb_store *st, uint64_t timeout_usec);

/* --- backends: what the scope router reaches a scope through --- */

/*
 * A hyb_backend is one place fURIs live, seen through a small set of
 * operations: the embedded hyb_store is one (hyb_backend_new_store), a
 * connection to hybridd that serves its host store on the bus is another,
 * and a program may write its own (a test double, a cache, a bridge) by
 * filling a hyb_backend_vtable and calling hyb_backend_new.
 *
 * The contract every backend keeps (the embedded store keeps it; the
 * hyb_backend_* calls below check arguments, then call the op):
 *
 * Meaning.  read, write, delete and subscribe mean what hyb_store_read,
 *   hyb_store_write (a delete is a write of noobj) and hyb_store_subscribe
 *   mean, with the same errors (doc/store.md "Operations"): the store's
 *   conformance data gives the same results through every backend.  A
 *   backend that cannot carry an operation returns -EOPNOTSUPP; one refused
 *   by access control returns HYB_E_FORBIDDEN, with a message.
 * Acknowledgement.  write and delete return once the write is acknowledged:
 *   retained writes are committed with the backend's durability; a read
 *   made through the same backend after that return sees the write.
 * Delivery.  Message callbacks run only inside the backend's process op, on
 *   the thread that calls it; never from inside read, write, delete or
 *   subscribe.  Per subscription, messages arrive in the order the writes
 *   were made at the backend's store (write order), replayed values (flag
 *   HYB_SUBSCRIBE_REPLAY) first and before any later write; a write made
 *   through the backend before process runs is delivered by that process
 *   call or a later one, never lost while the backend is healthy.
 * Unsubscribe.  The unsubscribe op may run from inside a message callback
 *   of the same backend; once it returns, no further message reaches the
 *   subscription and its fn and userdata are not used again.
 * Threads.  read, write, delete and subscribe may be called from several
 *   threads at once: a backend over a single-threaded connection takes a
 *   lock around it.  A backend handle delivers the messages of the
 *   subscriptions made through it, and only those, inside its own process;
 *   its process and the unref of its slots run on one thread at a time (the
 *   thread that serves the handle, as for an sd-bus connection).  Threads
 *   that each serve subscriptions each take their own handle of the shared
 *   store (hyb_backend_new_store again; a bus backend likewise): all the
 *   handles see one key space and one write order.
 * Loop.  get_fd is readable when process has work; get_events says which
 *   poll events to wait for (HYB_BACKEND_EVENT_*); get_timeout gives the
 *   absolute CLOCK_MONOTONIC deadline (µs, hyb_now_usec) by which process
 *   must run again (0 = now, UINT64_MAX = none).  No hidden threads are
 *   needed by a caller: everything happens inside the calls.
 * Broken connection.  A backend that loses its peer (hybridd restarted or
 *   gone) does not reconnect by itself: it first delivers the messages it
 *   had received, then every op returns HYB_E_CLOSED (with a message in
 *   reterr where there is one) and process returns HYB_E_CLOSED once it has
 *   nothing left to deliver; no callback runs again.  Its subscriptions'
 *   slots stay valid (unref'ing them is safe and does nothing remote).  The
 *   owner makes a new backend and gives it to the router
 *   (hyb_scope_set_backend); subscriptions are made again there, with
 *   HYB_SUBSCRIBE_REPLAY to catch up on retained values.
 * Ownership.  Arguments are borrowed for the call: an op keeps what it
 *   needs by taking references.  An op returns new references in *ret.
 */
typedef struct hyb_backend hyb_backend;

/* Read flags (the `flags` argument of hyb_backend_read). */
typedef enum hyb_read_flags {
        /* A pattern read gives one rec of full fURI => value, in key order (as a branch read
         * does), instead of a stream of the values: what `hybrid store get` prints. */
        HYB_READ_KEYED = 0x1,
} hyb_read_flags;

/* Poll events of hyb_backend_get_events (same values as poll(2)'s POLLIN / POLLOUT). */
typedef enum hyb_backend_events {
        HYB_BACKEND_EVENT_IN = 0x001,
        HYB_BACKEND_EVENT_OUT = 0x004,
} hyb_backend_events;

/*
 * The operations of a backend, called with the impl pointer given to
 * hyb_backend_new.  size is sizeof(hyb_backend_vtable) as the backend was
 * compiled: fields past it are taken as NULL, so the table can grow.  The
 * table is not copied: it must live as long as the backend (a static const).
 * read, write, del, subscribe, unsubscribe and process are required; the
 * others may be NULL (no fd: get_fd gives -EOPNOTSUPP; get_events then
 * HYB_BACKEND_EVENT_IN; get_timeout UINT64_MAX; destroy nothing).
 */
typedef struct hyb_backend_vtable {
        size_t size;
        /* As hyb_store_read (flags: hyb_read_flags). */
        int (*read)(void *impl, const hyb_furi *target, unsigned flags, hyb_obj **ret,
                    hyb_error *reterr);
        /* As hyb_store_write (flags: hyb_write_flags); value is never noobj here. */
        int (*write)(void *impl, const hyb_furi *target, const hyb_obj *value, unsigned flags,
                     hyb_error *reterr);
        /* Deletes a node, every match of a pattern or the children of a branch, as a write
         * of noobj does (flags: HYB_WRITE_TRANSIENT notifies only). */
        int (*del)(void *impl, const hyb_furi *target, unsigned flags, hyb_error *reterr);
        /* As hyb_store_subscribe, but the registration is named by *ret_cookie (any pointer
         * but NULL) instead of a slot: the caller wraps it in a slot whose last unref calls
         * unsubscribe with it.  fn and userdata are the caller's (call fn with userdata). */
        int (*subscribe)(void *impl, const hyb_furi *pattern, unsigned flags,
                         hyb_store_msg_fn fn, void *userdata, void **ret_cookie,
                         hyb_error *reterr);
        void (*unsubscribe)(void *impl, void *cookie);
        int (*get_fd)(void *impl);
        int (*get_events)(void *impl);
        int (*get_timeout)(void *impl, uint64_t *ret_usec);
        /* Delivers what is ready; > 0 if it did something, 0 if idle, < 0 on failure. */
        int (*process)(void *impl);
        /* The backend's last reference went: free impl (the table is not used again). */
        void (*destroy)(void *impl);
} hyb_backend_vtable;

/*
 * Makes a backend of vtable and impl.  *ret holds one reference; the last
 * unref calls vtable->destroy(impl).  -EINVAL when a required op is missing
 * or vtable->size is too small for them.
 */
HYB_EXPORT int hyb_backend_new(const hyb_backend_vtable *vtable, void *impl, hyb_backend **ret);
HYB_EXPORT hyb_backend *hyb_backend_ref(const hyb_backend *b);
/* Drops a reference; returns NULL.  Subscription slots hold references of their own. */
HYB_EXPORT hyb_backend *hyb_backend_unref(hyb_backend *b);
/* The impl pointer given to hyb_backend_new (borrowed); NULL for a NULL backend. */
HYB_EXPORT void *hyb_backend_get_impl(const hyb_backend *b);

/*
 * The embedded store as a backend: *ret is a new handle that holds a
 * reference of st (the store stays usable directly).  Its ops are the
 * hyb_store_* calls.  Each call makes a new handle with its own delivery:
 * its fd (an epoll fd over the store's and its own) is readable when the
 * store has work or messages of its subscriptions wait, and its process
 * runs the store's process (which passes every handle its messages) and
 * then the callbacks of its own subscriptions only, in write order.
 */
HYB_EXPORT int hyb_backend_new_store(hyb_store *st, hyb_backend **ret);

/* The operations, for callers of a backend (the contract above). */
HYB_EXPORT int hyb_backend_read(hyb_backend *b, const hyb_furi *target, unsigned flags,
                                hyb_obj **ret, hyb_error *reterr);
/* A write of noobj is a delete (as for hyb_store_write). */
HYB_EXPORT int hyb_backend_write(hyb_backend *b, const hyb_furi *target, const hyb_obj *value,
                                 unsigned flags, hyb_error *reterr);
HYB_EXPORT int hyb_backend_delete(hyb_backend *b, const hyb_furi *target, unsigned flags,
                                  hyb_error *reterr);
/* *ret_slot is the slot: unref it to unsubscribe.  The slot holds a reference of b; its
 * userdata (hyb_slot_set_userdata) is what fn gets. */
HYB_EXPORT int hyb_backend_subscribe(hyb_backend *b, const hyb_furi *pattern, unsigned flags,
                                     hyb_store_msg_fn fn, void *userdata, hyb_slot **ret_slot,
                                     hyb_error *reterr);
HYB_EXPORT int hyb_backend_get_fd(hyb_backend *b);
HYB_EXPORT int hyb_backend_get_events(hyb_backend *b);
HYB_EXPORT int hyb_backend_get_timeout(hyb_backend *b, uint64_t *ret_usec);
HYB_EXPORT int hyb_backend_process(hyb_backend *b);
/* Blocks up to timeout_usec (a relative wait; UINT64_MAX = forever) until the backend's fd
 * is ready or its deadline passes, then processes (a backend without an fd sleeps until
 * one of the two).  As hyb_backend_process, or -errno of poll. */
HYB_EXPORT int hyb_backend_wait(hyb_backend *b, uint64_t timeout_usec);

/* --- the scope router --- */
typedef struct hyb_scope hyb_scope;

/*
 * A router for one program (doc/store.md "Scopes"):
 *
 *   abc, a/b        program scope -> the program backend, at abc
 *   ~/abc           home scope    -> the host backend, at /home/<name>/abc
 *   /abc            host scope    -> the host backend
 *   //abc, //h.ex/  cluster, global -> a backend set with hyb_scope_set_backend,
 *                                    else HYB_E_SCOPE naming the scope
 *
 * host: the host-scope backend (referenced); NULL makes an in-process memory
 * store (hyb_store_open(NULL, ...)).  program: the program-scope backend
 * (relative fURIs; referenced); NULL makes a memory store private to this
 * router.  Two routers (two OS threads, two programs) share a host by being
 * given the same host backend.  name: the program's name, used for `~/`.
 */
HYB_EXPORT int hyb_scope_new(hyb_backend *host, hyb_backend *program, const char *name,
                             hyb_scope **ret);
HYB_EXPORT hyb_scope *hyb_scope_ref(const hyb_scope *sc);
HYB_EXPORT hyb_scope *hyb_scope_unref(hyb_scope *sc);
/*
 * Sets (referenced) or, with NULL, clears the backend of one scope:
 * HYB_SCOPE_HOST (also serves HYB_SCOPE_HOME), HYB_SCOPE_PROGRAM,
 * HYB_SCOPE_CLUSTER or HYB_SCOPE_GLOBAL (the cluster and global scopes route
 * there with the fURI as given).  Host and program cannot be cleared.  Call
 * it while no other thread uses the router: routing reads the backends
 * without a lock.  Returns 0, or -EINVAL.
 */
HYB_EXPORT int hyb_scope_set_backend(hyb_scope *sc, hyb_furi_scope scope, hyb_backend *b);
/*
 * The backend serving scope (HYB_SCOPE_HOME gives the host's): *ret gets a
 * new reference, e.g. for a daemon to watch its fd in its own loop.
 * HYB_E_SCOPE when none is set (cluster, global), -EINVAL.
 */
HYB_EXPORT int hyb_scope_get_backend(hyb_scope *sc, hyb_furi_scope scope, hyb_backend **ret);
/*
 * Where a fURI's scope routes: *ret_backend gets a new reference of the
 * backend and *ret_target a new reference of the fURI to use there
 * (`~/a` -> `/home/<name>/a`); the caller unrefs both.  HYB_E_SCOPE with a
 * message naming the scope when no backend serves it.
 */
HYB_EXPORT int hyb_scope_route(hyb_scope *sc, const hyb_furi *furi, hyb_backend **ret_backend,
                               hyb_furi **ret_target, hyb_error *reterr);
/* The operations, routed (hyb_scope_route), then as hyb_backend_*. */
HYB_EXPORT int hyb_scope_write(hyb_scope *sc, const hyb_furi *target, const hyb_obj *value,
                               unsigned flags, hyb_error *reterr);
HYB_EXPORT int hyb_scope_delete(hyb_scope *sc, const hyb_furi *target, unsigned flags,
                                hyb_error *reterr);
HYB_EXPORT int hyb_scope_read(hyb_scope *sc, const hyb_furi *target, hyb_obj **ret,
                              hyb_error *reterr);
HYB_EXPORT int hyb_scope_subscribe(hyb_scope *sc, const hyb_furi *pattern, unsigned flags,
                                   hyb_store_msg_fn fn, void *userdata, hyb_slot **ret_slot,
                                   hyb_error *reterr);
/* Runs hyb_backend_process on every backend the router uses (all of them, also after one
 * fails): the first error, else > 0 if one did something, else 0. */
HYB_EXPORT int hyb_scope_process(hyb_scope *sc);

#ifdef __cplusplus
}
#endif

#endif
