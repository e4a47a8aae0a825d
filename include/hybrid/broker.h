/* SPDX-License-Identifier: MIT */
/*
 * hybrid/broker.h - the embeddable bus broker (doc/broker.md).
 *
 * A hyb_broker routes calls, results and events between the clients of one
 * Unix socket, enforces deadlines, access lists and every limit of its
 * configuration, and serves the builtin endpoint @localhost/org.hybridos.bus/builtin.
 * It runs on a libevent base the embedder owns (hybridd is a thin main around
 * it; integration tests run one on a thread with its own base).  All broker
 * functions must be called from the thread running that base.
 *
 *   hyb_broker_config *cfg;  hyb_broker *b;
 *   hyb_broker_config_new(&cfg);
 *   hyb_broker_config_load_file(cfg, "/etc/hybrid/boot.yaml", &err);
 *   hyb_broker_new(cfg, base, &b, &err);
 *   hyb_broker_start(b, &err);        socket exists from here on
 *   event_base_dispatch(base);
 *   ...hyb_broker_shutdown(b); ... hyb_broker_free(b);
 *
 * The library logs nothing above debug by itself: it hands log lines to the
 * callback set with hyb_broker_set_log, and the daemon decides where they go.
 * The same lines are offered to hybrid-logd as the builtin event Log (never
 * waiting for it; doc/hybrid-logd.md).
 */
#ifndef HYBRID_BROKER_H
#define HYBRID_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <hybrid/common.h>
#include <hybrid/store.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base; /* libevent */

typedef struct hyb_broker hyb_broker;
typedef struct hyb_broker_config hyb_broker_config;

/* Log levels: hyb_log_level in common.h (syslog numbering). */

/* ----------------------------------------------------------------- config */

/* A configuration with the defaults of doc/config.md.  Errors: -ENOMEM. */
HYB_EXPORT int hyb_broker_config_new(hyb_broker_config **ret);
HYB_EXPORT hyb_broker_config *hyb_broker_config_ref(const hyb_broker_config *cfg);
HYB_EXPORT hyb_broker_config *hyb_broker_config_unref(hyb_broker_config *cfg);
/*
 * Loads YAML (keys host, listen, limits, policy, log, store, boot, auth, edge) over the current values.
 * Errors: HYB_E_CONFIG with line:column in *reterr, -errno when unreadable.
 */
HYB_EXPORT int hyb_broker_config_load_file(hyb_broker_config *cfg, const char *path,
                                           hyb_error *reterr);
HYB_EXPORT int hyb_broker_config_load_string(hyb_broker_config *cfg, const char *yaml, size_t len,
                                             hyb_error *reterr);
/* Sets the Unix socket path (copied).  Errors: -EINVAL (NULL, empty or too long), -ENOMEM. */
HYB_EXPORT int hyb_broker_config_set_socket(hyb_broker_config *cfg, const char *path);
/* The socket path: the configured one, else $HYBRID_BUS when set and not empty, else the
 * default (see hyb_bus_get_default_socket).  *ret_path is freed with hyb_free(). */
HYB_EXPORT int hyb_broker_config_get_socket(const hyb_broker_config *cfg, char **ret_path);
/*
 * Sets a limit by its YAML name: max_body, max_frame, max_pending_calls,
 * send_queue_bytes, max_connections, max_endpoints, max_subscriptions,
 * max_policy_bytes, auth_timeout_ms, ping_after_s, drop_after_s, and the quotas
 * max_memory, uid_max_bytes, uid_max_connections, uid_max_pending_calls,
 * uid_max_subscriptions, uid_max_registrations, uid_max_policy_bytes,
 * max_unauth_connections, uid_max_unauth_connections (ranges in doc/config.md).  Setting
 * max_body at or above max_frame raises max_frame to max_body + 64 KiB.  Relations
 * between limits are checked by hyb_broker_new.
 * Errors: -EINVAL (unknown name, or a value outside the limit's range).
 */
HYB_EXPORT int hyb_broker_config_set_limit(hyb_broker_config *cfg, const char *name, uint64_t value);
HYB_EXPORT int hyb_broker_config_get_limit(const hyb_broker_config *cfg, const char *name,
                                           uint64_t *ret);
/* Adds an administrator uid (may monitor, sees all endpoints). */
HYB_EXPORT int hyb_broker_config_add_admin(hyb_broker_config *cfg, uint32_t uid);
/* HYB_LOG_* from log.level. */
HYB_EXPORT int hyb_broker_config_get_log_level(const hyb_broker_config *cfg);
/* log.syslog. */
HYB_EXPORT bool hyb_broker_config_get_syslog(const hyb_broker_config *cfg);

/*
 * The `store:` key: the host store's file (borrowed; NULL when not given: memory only) and
 * durability (HYB_DURABILITY_* of hybrid/store.h; -1 when not given).
 */
HYB_EXPORT const char *hyb_broker_config_get_store_path(const hyb_broker_config *cfg);
HYB_EXPORT int hyb_broker_config_get_store_durability(const hyb_broker_config *cfg);

/* One entry of `boot.data` or `boot.programs` as loaded (doc/config.md "boot"); the strings
 * are borrowed from cfg (valid until it is freed or loaded again). */
typedef struct hyb_broker_boot_item {
        size_t size;           /* sizeof(hyb_broker_boot_item): set by the caller */
        const char *key;       /* boot.data: the fURI; boot.programs: NULL */
        const char *text;      /* boot.data: the obj literal; boot.programs: inline text, or NULL */
        const char *file;      /* boot.programs: the program file, or NULL */
        unsigned line, column; /* where the entry's value stands in the config file (1-based;
                                  an inline program: its text's first character, inside the
                                  quotes, on the line below `inline: |` for a block) */
        const char *config_file; /* the config file the entry was loaded from, or NULL (a
                                    string) */
} hyb_broker_boot_item;

/* Which list hyb_broker_config_get_boot reads. */
typedef enum hyb_broker_boot_list {
        HYB_BOOT_DATA = 0,
        HYB_BOOT_PROGRAMS = 1,
        _HYB_BOOT_LIST_FORCE_32 = 0x7fffffff,
} hyb_broker_boot_list;

/* Number of entries of list, in file order. */
HYB_EXPORT size_t hyb_broker_config_get_n_boot(const hyb_broker_config *cfg,
                                               hyb_broker_boot_list list);
/* Entry i of list into *ret (ret->size must be set; members past it are not written).
 * Errors: -EINVAL (NULL, bad size or list), -ERANGE (i out of range). */
HYB_EXPORT int hyb_broker_config_get_boot(const hyb_broker_config *cfg, hyb_broker_boot_list list,
                                          size_t i, hyb_broker_boot_item *ret);

/* ----------------------------------------------------------------- broker */

typedef void (*hyb_log_fn)(int level, const char *message, void *userdata);

/*
 * Creates a broker on `base` (borrowed; must outlive the broker) with `cfg`
 * (NULL: defaults; a reference is taken, do not change it afterwards).
 * Nothing is listened on yet.  If SIGPIPE is at its default disposition it is set
 * to ignored (a peer that vanishes mid-write must not kill the process).
 * Errors: -EINVAL, -ENOMEM, HYB_E_CONFIG (a limit out of its range or a broken
 * relation between limits, named in *reterr).
 */
HYB_EXPORT int hyb_broker_new(hyb_broker_config *cfg, struct event_base *base, hyb_broker **ret,
                              hyb_error *reterr);
/*
 * Frees the broker: closes the listener (removes the socket file) and every
 * connection.  Returns NULL; NULL is a no-op.
 */
HYB_EXPORT hyb_broker *hyb_broker_free(hyb_broker *b);
/* Sets the log callback (NULL: none).  Levels above `max_level` are not produced, neither
 * for fn nor as the builtin event Log (default max_level: HYB_LOG_INFO). */
HYB_EXPORT void hyb_broker_set_log(hyb_broker *b, int max_level, hyb_log_fn fn, void *userdata);
/*
 * Logs one line of the embedder's as the broker logs its own (hybridd's boot messages):
 * to the callback of hyb_broker_set_log and as the builtin event Log, when level is
 * within max_level.  message is copied (cut at 511 bytes).  NULL b or message: no-op.
 */
HYB_EXPORT void hyb_broker_log(hyb_broker *b, int level, const char *message);
/*
 * Creates the socket and starts accepting, and with listen.http the HTTP edge (doc/edge.md)
 * on that address (-EADDRINUSE and the other errors of bind(2) for it: nothing is left
 * listening then).  Of missing directories only the
 * runtime directory ($XDG_RUNTIME_DIR/hybrid, else /run/hybrid) is created (0755),
 * when the socket goes straight into it; any other gives -ENOENT.  A stale socket
 * (nobody accepting) is removed; a live one gives -EADDRINUSE.  The socket is bound under a temporary name, set to mode 0666
 * (authentication decides who may do what) and renamed into place, so it
 * appears only when connections are already accepted.
 * Errors: -EADDRINUSE, -ENAMETOOLONG, -EALREADY (started), -errno.
 */
HYB_EXPORT int hyb_broker_start(hyb_broker *b, hyb_error *reterr);
/*
 * Fires SystemShuttingDown to subscribers, stops accepting (removes the
 * socket) and closes every connection once its queued output is written
 * (at most ~1 s; at once when nothing is queued).  After that the broker
 * holds no events on the base, so event_base_dispatch returns.  Idempotent.
 */
HYB_EXPORT int hyb_broker_shutdown(hyb_broker *b);
/*
 * Opens the host store the configuration names (`store:` in doc/config.md: its
 * path, durability and limits; memory only when no path is given), as
 * hyb_store_open does.  *ret is the caller's reference (hyb_store_unref).
 * Errors: those of hyb_store_open (HYB_E_DATABASE, HYB_E_CORRUPT, ...), -EINVAL.
 */
HYB_EXPORT int hyb_broker_config_open_store(const hyb_broker_config *cfg, hyb_store **ret,
                                            hyb_error *reterr);
/*
 * Makes st the host store the broker serves on the bus (doc/protocol.md
 * "Store"): reads, writes, deletes and subscriptions by its peers, under
 * policy.store.  The broker takes a reference and drives the store's
 * deliveries from its event base.  Without a store the store calls are
 * answered 503.  Errors: -EINVAL, -EBUSY (a store is already set), -ENOMEM.
 */
HYB_EXPORT int hyb_broker_set_store(hyb_broker *b, hyb_store *st);
/*
 * The kernel's own objs a daemon adds to what it serves (doc/protocol.md
 * "Store"): fn(f, &obj, err, userdata) is asked about each node read and each
 * write or delete of a node (never a pattern), after policy.store; it answers
 * 1 with *obj (a new reference) when f names a kernel obj, 0 when not (the
 * store answers), < 0 an error with err.  A read gets the obj; a write or
 * delete of a fURI it answers 1 for is refused 403 (read-only).  hybridd
 * answers /sys/scheduler and /type/ with its boot VM (hyb_mmadt_read_kernel).
 * fn NULL removes it.  Returns 0, or -EINVAL.
 */
typedef int (*hyb_broker_kernel_fn)(const hyb_furi *f, hyb_obj **ret, hyb_error *reterr,
                                    void *userdata);
HYB_EXPORT int hyb_broker_set_kernel(hyb_broker *b, hyb_broker_kernel_fn fn, void *userdata);
/*
 * Replaces the running configuration with cfg (SIGHUP in hybridd), without closing any
 * connection.  cfg is checked as hyb_broker_new checks it (limits, relations); on any error
 * nothing changes and the old configuration stays in force entirely.  The broker keeps a
 * private copy of cfg: the caller keeps its reference and may free or change cfg after.
 *
 * In force from the return on: every limit, policy.admins and policy.apps (for connections
 * that authenticate afterwards; a connection keeps the name and admin rights it got), and
 * policy.store (for every request after it, of old and new connections; a store
 * subscription already made keeps running), edge.anonymous (for every HTTP request after it).  Nothing is taken away at the reload itself: a
 * limit lowered below what a peer already holds refuses that peer's next addition (a
 * connection, subscription, registration, pending call, body), and a byte quota it already
 * exceeds cuts it off when it next reads or queues bytes, as when it crosses the bound.
 *
 * Read only at the start, so a change is logged at HYB_LOG_WARNING ("reload: KEY changed:
 * ignored until restart") and not used: host, listen.unix, listen.http, store.path, store.durability,
 * store.limits, log.syslog and boot.programs.  log.level is the embedder's to apply
 * (hyb_broker_set_log with hyb_broker_config_get_log_level(cfg)); boot.data is written by
 * hyb_boot_reload (hybrid/mmadt.h).
 *
 * Errors: -EINVAL (NULL), -ESHUTDOWN (after hyb_broker_shutdown), HYB_E_CONFIG (a limit
 * out of its range or a broken relation, named in *reterr), -ENOMEM.
 */
HYB_EXPORT int hyb_broker_reload(hyb_broker *b, const hyb_broker_config *cfg, hyb_error *reterr);
/* The store set by hyb_broker_set_store (borrowed), or NULL. */
HYB_EXPORT hyb_store *hyb_broker_get_store(const hyb_broker *b);
/* The socket path (borrowed), NULL before hyb_broker_start. */
HYB_EXPORT const char *hyb_broker_get_socket(const hyb_broker *b);
/* Number of open client connections (authenticated or not). */
HYB_EXPORT unsigned hyb_broker_get_n_connections(const hyb_broker *b);

#ifdef __cplusplus
}
#endif

#endif
