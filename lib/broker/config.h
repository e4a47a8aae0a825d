/* SPDX-License-Identifier: MIT */
/*
 * The broker's configuration (doc/config.md): defaults and
 * the YAML loader (libyaml).  Unknown keys and bad values are errors with the
 * line and column in *reterr (HYB_E_CONFIG).
 *
 *   host: localhost
 *   listen: {unix: /run/hybrid/bus.sock}
 *   limits: {max_body, max_frame, max_pending_calls, send_queue_bytes, max_connections,
 *            max_endpoints, max_subscriptions, max_policy_bytes, auth_timeout_ms, ping_after_s, drop_after_s,
 *            max_memory, uid_max_bytes, uid_max_connections, uid_max_pending_calls,
 *            uid_max_subscriptions, uid_max_registrations, uid_max_policy_bytes,
 *            max_unauth_connections, uid_max_unauth_connections}
 *   policy: {admins: [uid, ...], apps: {"<uid>": [app-glob, ...]}}
 *   log: {level: error|warning|info|debug, syslog: bool}
 * Sizes accept plain integers or suffixes K/M/G (KiB...).
 */
#ifndef HYB_BROKER_CONFIG_H
#define HYB_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hybrid/common.h"

typedef struct broker_app_policy {
        uid_t uid;
        char **globs;   /* app-name globs this uid may claim */
        size_t n_globs;
} broker_app_policy;

typedef struct broker_config {
        char *host;               /* default "localhost" */
        char *listen_unix;        /* NULL: $XDG_RUNTIME_DIR/hybrid/bus.sock or /run/hybrid/bus.sock */
        size_t max_body;          /* default 16 MiB */
        size_t max_frame;         /* default max_body + 64 KiB of header */
        uint32_t max_pending_calls;  /* per connection, default 1024 */
        size_t send_queue_bytes;  /* per connection, default 64 MiB */
        uint32_t max_connections; /* default 1024 */
        uint32_t max_endpoints;   /* default 1024 */
        uint32_t max_subscriptions; /* per connection, default 1024 */
        size_t max_policy_bytes;  /* argument policy text per registered procedure, default 4 KiB */
        uint32_t auth_timeout_ms; /* default 10000 */
        uint32_t ping_after_s;    /* default 60 */
        uint32_t drop_after_s;    /* default 90 */
        /* Daemon-wide and per-uid quotas (conn.c "Accounting"); every uid, root included. */
        size_t max_memory;        /* bytes in all input buffers and send queues, default 64 MiB */
        size_t uid_max_bytes;     /* bytes one uid's connections hold, default 48 MiB */
        uint32_t uid_max_connections;   /* default 256 */
        uint32_t uid_max_pending_calls; /* default 4096 */
        uint32_t uid_max_subscriptions; /* default 8192 */
        uint32_t uid_max_registrations; /* procedures + bubbles, default 4096 */
        size_t uid_max_policy_bytes;    /* argument-policy text, default 4 MiB */
        uint32_t max_unauth_connections;     /* not yet authenticated, in all, default 256 */
        uint32_t uid_max_unauth_connections; /* not yet authenticated, per uid, default 64 */
        uid_t *admins;            /* uids allowed to monitor / list all; root always */
        size_t n_admins;
        broker_app_policy *apps;  /* empty: any local peer may claim any app name */
        size_t n_apps;
        char *log_level;          /* default "info" */
        bool log_syslog;          /* default false */
} broker_config;

/* Fills *c with the defaults (allocates host/log_level). 0 or -ENOMEM. */
int broker_config_init(broker_config *c);
/* Frees what *c owns and zeroes it. */
void broker_config_clear(broker_config *c);
/* Loads YAML over the values already in *c (call broker_config_init first). */
int broker_config_load_file(broker_config *c, const char *path, hyb_error *reterr);
int broker_config_load_string(broker_config *c, const char *yaml, size_t len, hyb_error *reterr);
/* May uid claim app name?  (no policy.apps: yes; else a glob of its entry must match) */
bool broker_config_may_claim(const broker_config *c, uid_t uid, const char *app, size_t len);
bool broker_config_is_admin(const broker_config *c, uid_t uid);

#endif
