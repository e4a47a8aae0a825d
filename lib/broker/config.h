/* SPDX-License-Identifier: MIT */
/*
 * The broker's configuration (doc/config.md): defaults, the limits table and
 * the YAML loader (libyaml events).  Unknown keys and bad values are errors
 * with the key path and line:column in *reterr (HYB_E_CONFIG).
 *
 *   host: localhost
 *   listen: {unix: /run/hybrid/bus.sock, http: 127.0.0.1:8080}
 *   edge: {anonymous: [route pattern, ...]}
 *   limits: {<one key per row of BROKER_LIMITS>}
 *   store: {path: FILE, durability: memory|normal|full, limits: {max_value_bytes, max_depth,
 *          max_keys, max_read_keys, max_bytes, uid_max_keys, uid_max_bytes}}
 *   policy: {admins: [uid, ...], apps: {"<uid>": [app-glob, ...]},
 *            store: [{uid, app, furi, allow: [read, write, delete, subscribe]}, ...]}
 *   log: {level: error|warning|info|debug, syslog: bool}
 *   boot: {data: {<fURI>: <obj literal>, ...}, programs: [{inline: TEXT} | {file: PATH}, ...]}
 *   listen: {https: HOST:PORT}   tls: {cert: FILE, key: FILE}     (config-tls.c)
 *   cluster: {broker: mqtt://HOST:PORT, ...}                         (config-cluster.c)
 */
#ifndef HYB_BROKER_CONFIG_H
#define HYB_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cluster/options.h"
#include "hybrid/common.h"

#define CONFIG_KIB ((uint64_t)1024)
#define CONFIG_MIB (CONFIG_KIB * 1024)
#define CONFIG_GIB (CONFIG_MIB * 1024)
/* Room for the frame header when only max_body is given. */
#define CONFIG_HEADER_ROOM (64 * CONFIG_KIB)
/* Frame lengths travel as 32-bit numbers. */
#define CONFIG_FRAME_MAX ((uint64_t)UINT32_MAX)
#define CONFIG_BODY_MAX (CONFIG_FRAME_MAX - CONFIG_HEADER_ROOM)
/* A size that must also fit size_t (32-bit targets). */
#define CONFIG_SIZE_CAP(v) ((uint64_t)(v) < (uint64_t)SIZE_MAX ? (uint64_t)(v) : (uint64_t)SIZE_MAX)
/* store.limits.max_keys when not given: fURIs the host store holds (doc/config.md). */
#define STORE_MAX_KEYS_DEFAULT ((size_t)1 << 18)
/* store.limits.max_read_keys when not given: matches one read or page may walk. */
#define STORE_MAX_READ_KEYS_DEFAULT ((size_t)1024)
/* store.limits.max_bytes, uid_max_keys, uid_max_bytes when not given: what peers may add to
 * the host store over the bus, all together and per uid (a uid gets half of it). */
#define STORE_MAX_BYTES_DEFAULT ((size_t)256 << 20)
#define STORE_UID_MAX_KEYS_DEFAULT (STORE_MAX_KEYS_DEFAULT / 2)
#define STORE_UID_MAX_BYTES_DEFAULT (STORE_MAX_BYTES_DEFAULT / 2)

/*
 * THE limits table.  One row per key of the `limits:` mapping; the row is all
 * there is to a limit: it declares the broker_config field (same name), and
 * gives the loader, hyb_broker_config_set_limit/get_limit, hyb_broker_new and
 * the documentation test their range, default and unit.
 *
 *   X(name, unit, min, max, default, doc)
 *
 * unit: SIZE  bytes, size_t, K/M/G suffixes accepted in YAML
 *       COUNT a number of things, uint32_t
 *       MS    milliseconds, uint32_t
 *       S     seconds, uint32_t
 * Relations between rows are in broker_limit_relations (config-limits.c).
 */
#define BROKER_LIMITS(X)                                                                           \
        X(max_body, SIZE, 1, CONFIG_BODY_MAX, 16 * CONFIG_MIB,                                     \
          "Largest params/result body of a call, event or reply.")                                \
        X(max_frame, SIZE, 1, CONFIG_FRAME_MAX, 16 * CONFIG_MIB + CONFIG_HEADER_ROOM,              \
          "Largest frame (header plus body) read or written; follows max_body when not given.")   \
        X(max_pending_calls, COUNT, 1, 1048576, 1024,                                              \
          "Calls one connection may have outstanding; one more is answered 429.")                 \
        X(send_queue_bytes, SIZE, 1, CONFIG_SIZE_CAP(16 * CONFIG_GIB), 64 * CONFIG_MIB,            \
          "Bytes queued towards one connection that does not read.")                              \
        X(max_connections, COUNT, 1, 1048576, 1024, "Simultaneous client connections.")            \
        X(max_endpoints, COUNT, 1, 1048576, 1024, "Endpoints registered on the bus in all.")       \
        X(max_subscriptions, COUNT, 1, 1048576, 1024, "Event subscriptions per connection.")       \
        X(max_policy_bytes, SIZE, 2, CONFIG_MIB, 4 * CONFIG_KIB,                                   \
          "Argument-policy JSON text of one registered procedure; a longer one is refused 413.")  \
        X(auth_timeout_ms, MS, 1, 3600000, 10000, "Time a new connection has to authenticate.")    \
        X(ping_after_s, S, 1, 86400, 60, "Silence after which the broker pings a peer.")           \
        X(drop_after_s, S, 1, 86400, 90, "Silence after which a peer is dropped.")                 \
        X(max_memory, SIZE, 1, CONFIG_SIZE_CAP(64 * CONFIG_GIB), 64 * CONFIG_MIB,                  \
          "Bytes held in all input buffers and send queues of the daemon; over it, 507.")        \
        X(uid_max_bytes, SIZE, 1, CONFIG_SIZE_CAP(64 * CONFIG_GIB), 48 * CONFIG_MIB,               \
          "Bytes one uid's connections hold (a send queue counts for its reader); over it, 507.") \
        X(uid_max_connections, COUNT, 1, 1048576, 256, "Connections of one uid; one more is 429.") \
        X(uid_max_pending_calls, COUNT, 1, 1048576, 4096,                                          \
          "Calls one uid's connections have outstanding; one more is answered 429.")              \
        X(uid_max_subscriptions, COUNT, 1, 1048576, 8192,                                          \
          "Event subscriptions of one uid's connections; one more is 429.")                       \
        X(uid_max_registrations, COUNT, 1, 1048576, 4096,                                          \
          "Procedures and event bubbles one uid registers; one more is 429.")                     \
        X(uid_max_policy_bytes, SIZE, 1, CONFIG_SIZE_CAP(16 * CONFIG_GIB), 4 * CONFIG_MIB,         \
          "Argument-policy text of all procedures of one uid; over it, 507.")                     \
        X(max_unauth_connections, COUNT, 1, 1048576, 256,                                          \
          "Connections not yet authenticated, in all; one more is refused 503.")                  \
        X(uid_max_unauth_connections, COUNT, 1, 1048576, 64,                                       \
          "Connections of one uid not yet authenticated; one more is refused 429.")               \
        X(max_store_subscriptions, COUNT, 1, 1048576, 1024,                                        \
          "Store subscriptions per connection; one more is answered 429.")                        \
        X(uid_max_store_subscriptions, COUNT, 1, 1048576, 8192,                                    \
          "Store subscriptions of one uid's connections; one more is 429.")   \
        X(ws_max_connections, COUNT, 1, 1048576, 1024,                                             \
          "WebSocket connections of the edge (/bus/ws) open in all; one more is refused 503.")   \
        X(ws_max_per_address, COUNT, 1, 1048576, 64,                                               \
          "WebSocket connections of one source address; one more is refused 503.")             \
        X(ws_preauth_per_address, COUNT, 1, 1048576, 8,                                            \
          "WebSocket connections of one source address not yet authenticated; one more is 503.")   \
        X(max_cluster_calls, COUNT, 1, 1048576, 1024,                                              \
          "Calls in flight to other hosts of the cluster, and from them, each in all; one more is 429.") \
        X(max_channels, COUNT, 0, 1048576, 64,                                                     \
          "Direct channels one connection holds as caller, and serves as callee, each; one more is 429; 0 turns direct channels off.") \
        X(uid_max_channels, COUNT, 1, 1048576, 256,                                                \
          "Direct channels one uid's connections hold as callers; one more is 429.")             \
        X(uid_max_channels_per_callee, COUNT, 0, 1048576, 16,                                      \
          "Direct channels one uid's connections hold as callers to one callee; one more is 429; 0: no such bound.") \
        X(max_channels_total, COUNT, 1, 1048576, 4096,                                             \
          "Direct channels open in all; one more is 429.")

#define BROKER_LIMIT_TYPE_SIZE size_t
#define BROKER_LIMIT_TYPE_COUNT uint32_t
#define BROKER_LIMIT_TYPE_MS uint32_t
#define BROKER_LIMIT_TYPE_S uint32_t

typedef enum broker_limit_unit {
        BROKER_UNIT_SIZE,
        BROKER_UNIT_COUNT,
        BROKER_UNIT_MS,
        BROKER_UNIT_S,
} broker_limit_unit;

/* One row of BROKER_LIMITS, as data. */
typedef struct broker_limit {
        const char *name;
        size_t offset;          /* offsetof(broker_config, name) */
        size_t width;           /* sizeof the field: 4 or sizeof(size_t) */
        broker_limit_unit unit;
        uint64_t min, max, dflt;
        const char *doc;
} broker_limit;

/* "a >= b" (or "a > b" when strict) between two limits, with the reason shown to the user. */
typedef struct broker_limit_relation {
        const char *a, *b;
        bool strict;
        const char *why;
} broker_limit_relation;

typedef struct broker_app_policy {
        uid_t uid;
        char **globs;   /* app-name globs this uid may claim */
        size_t n_globs;
} broker_app_policy;

/* Rights of a policy.store rule (doc/config.md). */
enum {
        BROKER_STORE_READ = 1u << 0,
        BROKER_STORE_WRITE = 1u << 1,
        BROKER_STORE_DELETE = 1u << 2,
        BROKER_STORE_SUBSCRIBE = 1u << 3,
};

/* auth.tokens (doc/config.md): the uid policy alone, a token optional, a token required. */
enum {
        BROKER_AUTH_OFF = 0,
        BROKER_AUTH_ACCEPT = 1,
        BROKER_AUTH_REQUIRE = 2,
};
#define BROKER_AUTH_DEFAULT_LIFETIME_S (30ull * 86400)
/* auth.verify_threads, auth.max_verifying, auth.uid_max_verifying: defaults and largest values */
#define BROKER_AUTH_VERIFY_THREADS 2u
#define BROKER_AUTH_VERIFY_THREADS_MAX 64u
#define BROKER_AUTH_MAX_VERIFYING 32u
#define BROKER_AUTH_UID_MAX_VERIFYING 8u
#define BROKER_AUTH_VERIFYING_MAX 65536u
/* auth.feed_peers: the daemons a feed with a gap is fetched from (feed-sync.c). */
#define BROKER_FEED_PEERS_MAX 16
#define BROKER_AUTH_MAX_LIFETIME_S (3650ull * 86400) /* the largest auth.max_lifetime_s */

/* One rule of policy.store: who (a uid, an app glob, both or neither), which fURIs, which rights. */
typedef struct broker_store_rule {
        bool any_uid;
        uid_t uid;
        char *app;      /* app-name glob; NULL: any app */
        char *furi;     /* fURI pattern (text, parsed when the rule is loaded) */
        unsigned rights;
} broker_store_rule;

#define BROKER_LIMIT_FIELD(name, unit, min, max, dflt, doc) BROKER_LIMIT_TYPE_##unit name;

/* One entry of `boot.data` (key: the fURI, text: the obj literal) or of `boot.programs`
 * (text: an inline program, or file: a program file), with the 1-based line and column of its
 * value in the config file (for an inline program: of the text's first character), and the
 * config file itself (NULL when loaded from a string), for error messages. */
typedef struct broker_boot_item {
        char *key;
        char *text;
        char *file;
        char *config_file;
        unsigned line, column;
} broker_boot_item;

typedef struct broker_config {
        char *host;               /* default "localhost" */
        char *listen_unix;        /* NULL: $HYBRID_BUS, else the default (hyb_bus_get_default_socket) */
        char *listen_http;        /* listen.http "HOST:PORT" of the edge (lib/edge); NULL: none */
        char *listen_coap;        /* listen.coap "HOST:PORT" (UDP) of the CoAP edge; NULL: none */
        char **edge_anonymous;    /* edge.anonymous: route patterns served without credentials */
        struct hyb_furi **edge_anonymous_furi; /* the same patterns parsed (once per config) */
        size_t n_edge_anonymous;
        bool edge_ws_plain_remote; /* edge.ws_plain_remote: ws:// on a non-loopback listen.http */
        BROKER_LIMITS(BROKER_LIMIT_FIELD)
        uid_t *admins;            /* uids allowed to monitor / list all; root always */
        size_t n_admins;
        broker_app_policy *apps;  /* empty: any local peer may claim any app name */
        size_t n_apps;
        size_t store_max_value_bytes; /* store.limits.max_value_bytes; 0: the store's default */
        size_t store_max_depth;   /* store.limits.max_depth; 0: the store's default */
        size_t store_max_keys;    /* store.limits.max_keys; 0: STORE_MAX_KEYS_DEFAULT */
        size_t store_max_read_keys; /* store.limits.max_read_keys; 0: STORE_MAX_READ_KEYS_DEFAULT */
        size_t store_max_bytes;   /* store.limits.max_bytes; 0: STORE_MAX_BYTES_DEFAULT */
        size_t store_uid_max_keys; /* store.limits.uid_max_keys; 0: STORE_UID_MAX_KEYS_DEFAULT */
        size_t store_uid_max_bytes; /* store.limits.uid_max_bytes; 0: STORE_UID_MAX_BYTES_DEFAULT */
        bool store_policy;        /* policy.store given: only its rules allow (else all may) */
        broker_store_rule *store_rules;
        size_t n_store_rules;
        char *log_level;          /* default "info" */
        bool log_syslog;          /* default false */
        /* boot: (config-boot.c) */
        broker_boot_item *boot_data;     /* in file order */
        size_t n_boot_data;
        broker_boot_item *boot_programs; /* in file order */
        size_t n_boot_programs;
        /* store: the daemon's host store (config-boot.c) */
        char *store_path;         /* NULL: memory only */
        int store_durability;     /* hyb_durability; -1: not given (NORMAL with a path) */
        /* auth: security tokens (config-auth.c) */
        int auth_tokens;          /* BROKER_AUTH_OFF (default), BROKER_AUTH_ACCEPT, BROKER_AUTH_REQUIRE */
        char *auth_audience;      /* NULL: the machine's host name */
        struct hyb_token_trust *auth_trust; /* auth.issuers with their keys; NULL: none */
        uint64_t auth_max_lifetime_s;       /* default 30 days */
        uint32_t auth_verify_threads;       /* threads checking token signatures (auth-pool.c) */
        uint32_t auth_max_verifying;        /* connections whose token is being verified, in all */
        uint32_t auth_uid_max_verifying;    /* of them, of one uid */
        /* auth.feed_peers: [{bus, token?, token_text?, key?, ca?, pin?}] (immutable once
         * loaded: copies share it), NULL: none */
        struct json_t *auth_feed_peers;
        /* listen.https and tls: (config-tls.c) */
        char *listen_https;       /* HOST:PORT of the https listener; NULL: none */
        unsigned https_line, https_column; /* of listen.https in the file, for errors */
        char *tls_cert, *tls_key; /* PEM files, loaded and matched when the config loads */
        cluster_options cluster;  /* cluster: (config-cluster.c); cluster.broker NULL: none */
} broker_config;

/* The rows of BROKER_LIMITS in order, and the relations between them. */
extern const broker_limit broker_limits[];
extern const size_t broker_n_limits;
extern const broker_limit_relation broker_limit_relations[];
extern const size_t broker_n_limit_relations;

/* The row called name[0..len), or NULL. */
const broker_limit *broker_limit_find(const char *name, size_t len);
/* The value of row l in c. */
uint64_t broker_limit_get(const broker_config *c, const broker_limit *l);
/* Stores v (already range-checked) into row l of c. */
void broker_limit_put(broker_config *c, const broker_limit *l, uint64_t v);
/* 0 when v is in [min, max] of row l, else -ERANGE. */
int broker_limit_check(const broker_limit *l, uint64_t v);
/* "size", "count", "ms" or "s": the unit column of doc/config.md. */
const char *broker_limit_unit_name(broker_limit_unit u);
/* v as a user writes it in YAML: sizes with the largest exact K/M/G suffix. */
void broker_limit_format(const broker_limit *l, uint64_t v, char *buf, size_t size);
/* "min..max" of row l, formatted as above, times with their unit ("1..16G", "1..3600000 ms"). */
void broker_limit_format_range(const broker_limit *l, char *buf, size_t size);
/*
 * Checks every relation against the values of c.  Returns the index of the
 * first broken one (its message in msg) or -1 when all hold.
 */
int broker_limits_check_relations(const broker_config *c, char *msg, size_t size);
/*
 * Range and relation check of every limit of c, for configs built with the
 * setters: 0, or HYB_E_CONFIG with the message in *reterr.
 */
int broker_config_validate(const broker_config *c, hyb_error *reterr);
/* Sets max_frame to max_body plus the header room (the "frame follows body" rule). */
void broker_config_frame_follows_body(broker_config *c);

/* Fills *c with the defaults (allocates host/log_level). 0 or -ENOMEM. */
int broker_config_init(broker_config *c);
/* Frees what *c owns and zeroes it. */
void broker_config_clear(broker_config *c);
/*
 * Loads YAML over the values already in *c (call broker_config_init first),
 * all-or-nothing.  At most CONFIG_MAX_BYTES of input and CONFIG_MAX_DEPTH
 * levels of nesting; the first error stops the load.
 */
int broker_config_load_file(broker_config *c, const char *path, hyb_error *reterr);
int broker_config_load_string(broker_config *c, const char *yaml, size_t len, hyb_error *reterr);
/* May uid claim app name?  (no policy.apps: yes; else a glob of its entry must match) */
bool broker_config_may_claim(const broker_config *c, uid_t uid, const char *app, size_t len);
bool broker_config_is_admin(const broker_config *c, uid_t uid);
/* listen.http's HOST:PORT (a numeric address; port 0: any free port) into *ss (*len: its
 * size in, the address's out).  0 or -EINVAL. */
struct sockaddr_storage;
int broker_parse_hostport(const char *spec, struct sockaddr_storage *ss, int *len);
/* Frees n strings of v and v. */
void broker_config_free_strv(char **v, size_t n);
/* Sets c's edge.anonymous to the n patterns v (taken, NULL when n is 0), parsed once into
 * edge_anonymous_furi; frees the former ones.  -ENOMEM or -EINVAL (a pattern that does
 * not parse) leaves c unchanged and v its caller's. */
int broker_config_set_anonymous(struct broker_config *c, char **v, size_t n);

/* Input bounds of the loader. */
#define CONFIG_MAX_BYTES (8 * 1024 * 1024)
#define CONFIG_MAX_DEPTH 16

#endif
