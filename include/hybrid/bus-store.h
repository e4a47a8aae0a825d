/* SPDX-License-Identifier: MIT */
/*
 * hybrid/bus-store.h - the host store of a hybridd, over a bus connection
 * (doc/bus.md "Store", packets in doc/protocol.md "Store").
 *
 * The same operations as hyb_store (hybrid/store.h), served by the daemon's
 * store: node, pattern and branch reads, retained and transient writes,
 * deletes, subscriptions with replay.  Values travel in the exact text form
 * of objs.  The daemon enforces policy.store: a denied operation fails with
 * HYB_E_FORBIDDEN (403).  Errors the store itself raises (HYB_E_TYPE,
 * -EINVAL, HYB_E_PARSE, HYB_E_LIMIT, ...) come back as the same codes an
 * embedded store returns, with its message in *reterr.
 */
#ifndef HYBRID_BUS_STORE_H
#define HYBRID_BUS_STORE_H

#include <hybrid/common.h>
#include <hybrid/bus.h>
#include <hybrid/obj.h>
#include <hybrid/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Reads furi (a node, a pattern or a branch; see hyb_store_read) from the
 * daemon's store.  *ret is a new reference (noobj when nothing is stored).
 * A pattern or branch is read in pages (storeReadPage, doc/protocol.md), one
 * call per page, and returned whole: the daemon bounds each call's walk
 * (store.limits.max_read_keys), not the answer.  Pages go by key, so a write
 * between two pages is seen or not by where it falls, never twice.  Errors:
 * those of hyb_store_read, HYB_E_FORBIDDEN, HYB_E_UNAVAILABLE (the daemon
 * hosts no store), HYB_E_CLOSED, HYB_E_PROTOCOL (a page that does not parse),
 * -EINVAL.
 */
HYB_EXPORT int hyb_bus_store_read(hyb_bus *bus, const char *furi, hyb_obj **ret, hyb_error *reterr);

/*
 * Writes value at furi in the daemon's store (flags: HYB_WRITE_TRANSIENT to
 * notify subscribers without storing).  noobj deletes.  Returns once the
 * daemon acknowledged the write (committed at its durability).  Errors: those
 * of hyb_store_write, HYB_E_FORBIDDEN (policy.store; a write under /sys/),
 * HYB_E_UNAVAILABLE, HYB_E_CLOSED, -EINVAL.
 */
HYB_EXPORT int hyb_bus_store_write(hyb_bus *bus, const char *furi, const hyb_obj *value,
                                   unsigned flags, hyb_error *reterr);

/* Deletes furi (a node, every match of a pattern, the children of a branch). */
HYB_EXPORT int hyb_bus_store_delete(hyb_bus *bus, const char *furi, hyb_error *reterr);

/*
 * Subscribes fn to every write, transient write and delete of the daemon's
 * store whose fURI matches pattern (flags: HYB_SUBSCRIBE_REPLAY to first get
 * the retained values that match).  Messages arrive in write order and run
 * fn from hyb_bus_process (or the attached loop, or a sync call's wait) with
 * borrowed arguments; retain is false for a transient write.  Unref the slot
 * to unsubscribe (NULL ret_slot: lives as long as the bus).  A subscriber that
 * does not read is cut off by the daemon (ERROR 507) like a slow event
 * subscriber.  Errors: HYB_E_FORBIDDEN (the pattern is not within a pattern
 * policy.store lets us subscribe to), HYB_E_TOO_MANY (max_store_subscriptions
 * or uid_max_store_subscriptions), HYB_E_PARSE, -EINVAL, HYB_E_CLOSED.
 */
HYB_EXPORT int hyb_bus_store_subscribe(hyb_bus *bus, const char *pattern, unsigned flags,
                                       hyb_store_msg_fn fn, void *userdata, hyb_slot **ret_slot,
                                       hyb_error *reterr);

/*
 * The daemon's store as a backend of the scope router (hybrid/store.h
 * "backends"): *ret holds one reference and a reference of bus.  Give it to
 * hyb_scope_new as the host backend so `/x` and `~/x` reach the daemon's
 * store.  It keeps the backend contract: its ops lock around the connection,
 * messages arriving during an op are kept and delivered by
 * hyb_backend_process only, in write order; once the connection is lost every
 * op returns HYB_E_CLOSED and process does too after delivering what it had.
 * Use the bus for nothing else while the backend lives (or from the same
 * thread only, between backend calls).  Errors: -EINVAL, -ENOMEM.
 */
HYB_EXPORT int hyb_bus_backend_new(hyb_bus *bus, hyb_backend **ret);
/* The bus of a backend made by hyb_bus_backend_new (borrowed), or NULL for any other backend
 * (hyb_bus_get_close_reason on it says why the daemon closed the connection). */
HYB_EXPORT hyb_bus *hyb_bus_backend_get_bus(const hyb_backend *b);

/* Where hyb_bus_backend_open_host found the host store (doc/hybrid.md "Which store a command
 * uses"). */
typedef enum hyb_host_source {
        HYB_HOST_DB = 1,          /* 1. the database named (db argument or $HYBRID_DB) */
        HYB_HOST_BUS = 2,         /* 2. the daemon named (bus argument or $HYBRID_BUS) */
        HYB_HOST_DEFAULT_BUS = 3, /* 3. the daemon at the default socket */
        HYB_HOST_DEFAULT_DB = 4,  /* 3. no daemon there: the default database */
} hyb_host_source;

/*
 * Opens the host-scope backend by the one rule every program uses (the CLI,
 * the bindings, C programs that want the usual behaviour):
 *   1. db (NULL: $HYBRID_DB when set and not empty): the embedded store on
 *      that file (opts: its options, NULL for the defaults);
 *   2. else bus_path (NULL: $HYBRID_BUS): that daemon's store, connected as
 *      @localhost/<app>/<runner>; if it does not answer, the error (never a
 *      fallback to another store);
 *   3. else the daemon at the default socket (hyb_bus_get_default_socket) if
 *      one answers; otherwise the embedded default database
 *      $XDG_DATA_HOME/hybrid/store.db (~/.local/share/hybrid/store.db), its
 *      directory created.
 * *ret is the backend (hyb_backend_unref); *ret_source (may be NULL) says
 * which rule chose it (hyb_host_source), *ret_where (may be NULL; free with
 * hyb_free) describes it for a message ("the store of the daemon at PATH",
 * "the database PATH (no daemon at SOCKET)").  Errors: those of
 * hyb_store_open (rule 1, 3) and of hyb_bus_connect (rule 2, or a daemon at
 * the default socket that refused us), -EINVAL.
 */
HYB_EXPORT int hyb_bus_backend_open_host(const char *db, const char *bus_path, const char *app,
                                         const char *runner, const hyb_store_options *opts,
                                         hyb_backend **ret, int *ret_source, char **ret_where,
                                         hyb_error *reterr);

/*
 * hyb_bus_backend_open_host with the connection described by conn (borrowed for
 * the call): conn->path is bus_path, conn->app and conn->runner name the
 * connection, conn->token and conn->key (may be NULL) are the credentials a
 * daemon that serves the host store is shown (hyb_bus_connect_with).  Errors:
 * those of hyb_bus_backend_open_host and of hyb_bus_connect_with
 * (HYB_E_UNAUTHORIZED: the daemon refused the credentials).
 */
HYB_EXPORT int hyb_bus_backend_open_host_with(const char *db, const hyb_bus_connect_options *conn,
                                              const hyb_store_options *opts, hyb_backend **ret,
                                              int *ret_source, char **ret_where,
                                              hyb_error *reterr);

/*
 * The scope router a program wants by default: its host scope opened by the
 * rule above from the environment ($HYBRID_DB, else $HYBRID_BUS, else the
 * daemon at the default socket, else the default database), its program
 * scope in memory, `~/` at /home/<name>/.  app and runner name the bus
 * connection when a daemon serves the host scope (runner NULL: "p<pid>", or,
 * when $HYBRID_BUS is a ws:// or wss:// URL, "w<pid>_<8 random hex digits>":
 * a remote broker refuses p<pid> under org.hybridos.cli, doc/protocol.md);
 * when $HYBRID_TOKEN and $HYBRID_KEY name a token file and its holder's
 * private key file, the daemon is shown that token (doc/token.md); a file
 * that cannot be read is HYB_E_UNAUTHORIZED.  When a daemon serves the host
 * scope, the cluster scope `//...` is routed to it as well (it serves it when
 * it has a cluster: configuration, doc/cluster.md; else HYB_E_SCOPE).
 * *ret_where (may be NULL; hyb_free) says which store it is.  Errors: those
 * of hyb_bus_backend_open_host, -ENOMEM, -EINVAL.
 */
HYB_EXPORT int hyb_bus_scope_open(const char *app, const char *runner, const char *name,
                                  hyb_scope **ret, char **ret_where, hyb_error *reterr);

/*
 * The cluster scope `//...` for a program without a daemon (doc/cluster.md "Programs
 * without a daemon"): a backend that is an MQTT client of the broker itself, with the
 * daemon's mapping (fURI <-> topic, the value's JSON as the payload).  Give it to
 * hyb_scope_set_backend(sc, HYB_SCOPE_CLUSTER, b); hyb_bus_scope_open does when no daemon
 * serves the host scope and $HYBRID_CLUSTER is set.
 *
 * url: mqtt://HOST[:PORT] or mqtts://HOST[:PORT], optionally followed by ?KEY=VALUE&...
 * with the keys prefix, qos (0 or 1, default 1), client_id (default
 * hybrid-e<pid>-<8 random hex digits>), username, password_file, ca_file, cert_file,
 * key_file, keepalive_s (30), read_timeout_ms (1000: how long a read waits for the
 * broker), timeout_ms (5000: connecting and each acknowledgement), mirror_max_keys (65536),
 * max_pending_reads (64), max_subscriptions (1024), max_pending_messages (4096), values
 * %-encoded; NULL: $HYBRID_CLUSTER.  Nothing is sent before the first operation, which
 * connects (MQTT 5, clean start).
 *
 * Operations: write and delete (single fURIs) publish retained at qos (a delete: an empty
 * retained message) and return after the broker's PUBACK; a transient write is a plain
 * publish.  A read waits for the broker's retained values (at most read_timeout_ms; nothing
 * retained: noobj), or is answered from the values the backend mirrors for its
 * subscriptions.  A subscription is the MQTT subscription of the pattern's topic filter,
 * made before the call returns (after the SUBACK); its messages are delivered by
 * hyb_backend_process from the backend's fd, at most max_pending_messages waiting (past
 * that they are dropped and process returns HYB_E_INSUFFICIENT_STORAGE once).  Runs
 * libmosquitto's own thread, which reconnects (every 1 to 2 s) and subscribes again.
 *
 * *ret holds one reference.  Errors: HYB_E_SCOPE (url NULL and $HYBRID_CLUSTER unset or
 * empty), -EINVAL (a bad URL or option, a password_file that cannot be read, TLS files
 * libmosquitto refuses), HYB_E_NOT_IMPLEMENTED (built without libmosquitto), -ENOMEM.  The
 * operations fail with HYB_E_UNAVAILABLE when the broker cannot be reached within
 * timeout_ms, HYB_E_CALLEE_TIMEOUT when it does not acknowledge in time, HYB_E_FORBIDDEN
 * when it refuses a subscription or publication (or for `//_hybrid/...`), HYB_E_TOO_MANY
 * past max_pending_reads or max_subscriptions, -EINVAL for a pattern write or a transient
 * delete, HYB_E_LIMIT for a write of a value whose JSON is over 1 MiB (no reader would take
 * it: nothing is published).
 */
HYB_EXPORT int hyb_cluster_backend_new(const char *url, hyb_backend **ret, hyb_error *reterr);

#ifdef __cplusplus
}
#endif

#endif
