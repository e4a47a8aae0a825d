/* SPDX-License-Identifier: MIT */
/*
 * The cluster: key of the daemon's configuration (doc/config.md "cluster"), apart from the
 * link itself so the configuration builds without libmosquitto.
 */
#ifndef HYB_CLUSTER_OPTIONS_H
#define HYB_CLUSTER_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hybrid/common.h"

/* cluster: of the daemon's configuration (doc/config.md "cluster"). */
typedef struct cluster_options {
        char *broker;        /* mqtt://HOST[:PORT] or mqtts://HOST[:PORT]; NULL: no cluster */
        char *client_id;     /* NULL: "hybrid-<host>" */
        char *username;      /* NULL: none */
        char *password_file; /* first line is the password; NULL: none */
        char *ca_file, *cert_file, *key_file; /* TLS (mqtts://): CA, client certificate, key */
        char *prefix;        /* topic prefix; "" by default */
        char *call_secret_file; /* the cluster's shared secret that signs calls between
                                 * hosts (lib/broker/xhost.c); NULL: unsigned */
        uint32_t keepalive_s; /* default 30 */
        int qos;             /* 0 or 1 (default 1) */
        uint32_t session_expiry_s; /* how long the broker keeps our session; default 3600 */
        /* bounds of the cluster scope (lib/cluster/scope.c) */
        uint32_t queue_max;        /* writes queued while the broker is unreachable; 1000 */
        uint32_t mirror_max_keys;  /* retained values mirrored; 65536 */
        uint32_t max_pending_reads; /* reads waiting for a retained message; 64 */
        uint32_t read_timeout_ms;  /* a read outside the mirror waits this long; 1000 */
} cluster_options;

#define CLUSTER_DEFAULT_KEEPALIVE_S 30u
#define CLUSTER_DEFAULT_SESSION_EXPIRY_S 3600u
#define CLUSTER_DEFAULT_QUEUE_MAX 1000u
#define CLUSTER_DEFAULT_MIRROR_MAX_KEYS 65536u
#define CLUSTER_DEFAULT_MAX_PENDING_READS 64u
#define CLUSTER_DEFAULT_READ_TIMEOUT_MS 1000u
/* The reconnection backoff: first delay and cap. */
#define CLUSTER_BACKOFF_FIRST_MS 100u
#define CLUSTER_BACKOFF_MAX_MS 2000u

/* Sets the defaults (all strings NULL). */
void cluster_options_init(cluster_options *o);
/* Frees the strings and sets the defaults again. */
void cluster_options_clear(cluster_options *o);
/* Deep copy into *dst (which is overwritten); 0 or -ENOMEM (dst then holds the defaults). */
int cluster_options_copy(cluster_options *dst, const cluster_options *src);
/*
 * Splits a broker URL: mqtt://HOST[:PORT] (port 1883) or mqtts://HOST[:PORT] (8883); an
 * IPv6 address in brackets.  host gets HOST (size bytes at most).  0, or -EINVAL.
 */
int cluster_parse_url(const char *url, char *host, size_t size, int *ret_port, bool *ret_tls);
/*
 * The MQTT password: the first line of the file path (at most 1023 bytes), into *ret
 * (malloc'd; the caller wipes and frees it).  what names the setting in the error
 * ("cluster.password_file", ...).  0, -EINVAL (unreadable, e says why) or -ENOMEM.
 */
int cluster_read_password(const char *path, const char *what, char **ret, hyb_error *e);

#endif
