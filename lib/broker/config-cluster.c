/* SPDX-License-Identifier: MIT */
/*
 * The cluster: key of the daemon's configuration (doc/config.md "cluster", doc/cluster.md):
 *
 *   cluster:
 *     broker: mqtt://127.0.0.1:1883      or mqtts://HOST[:PORT] (TLS); required
 *     client_id: hybrid-kitchen          default hybrid-<host>
 *     username: kitchen                  password_file: /etc/hybrid/mqtt.pass (first line)
 *     ca_file: FILE   cert_file: FILE   key_file: FILE      (mqtts://)
 *     prefix: site1/                     topic prefix, "" by default
 *     keepalive_s: 30    qos: 1    session_expiry_s: 3600
 *     queue_max: 1000    mirror_max_keys: 65536    max_pending_reads: 64
 *     read_timeout_ms: 1000
 *     call_secret_file: /etc/hybrid/cluster.secret   signs calls between hosts (xhost.c)
 */
#include <stdio.h>

#include "broker/config-internal.h"
#include "cluster/options.h"

#include "common/util.h"

static int get_text(loader *l, const char *path, const char *what, bool empty_ok, char **ret)
{
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = loader_get_string(l, path, what, &s, &len);
        if (r < 0)
                return r;
        if ((!empty_ok && len == 0) || len >= 4096 || memchr(s, 0, len))
                return loader_fail(l, loader_event(l)->start_mark, path, "bad %s", what);
        free(*ret);
        *ret = strndup_safe(s, len);
        return *ret ? 0 : -ENOMEM;
}

static int get_u32(loader *l, const char *path, uint32_t lo, uint32_t hi, uint32_t *ret)
{
        const char *s = NULL;
        size_t len = 0;
        uint64_t v = 0;
        int r;

        r = loader_get_string(l, path, "a number", &s, &len);
        if (r < 0)
                return r;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9' || v > hi) {
                        v = (uint64_t)hi + 1;
                        break;
                }
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (len == 0 || v < lo || v > hi)
                return loader_fail(l, loader_event(l)->start_mark, path,
                                   "expected a number %u..%u, got '%.*s'", lo, hi,
                                   (int)(len > 40 ? 40 : len), s);
        *ret = (uint32_t)v;
        return 0;
}

#define OPT(l) (&loader_config(l)->cluster)

static int set_broker(loader *l, const char *path, const field *f)
{
        char host[256];
        int port;
        bool tls;
        int r = get_text(l, path, "URL", false, &OPT(l)->broker);

        if (r < 0)
                return r;
        if (cluster_parse_url(OPT(l)->broker, host, sizeof host, &port, &tls) < 0)
                return loader_fail(l, loader_event(l)->start_mark, path,
                                   "expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got '%.80s'",
                                   OPT(l)->broker);
        return 0;
}

static int set_client_id(loader *l, const char *path, const field *f)
{
        return get_text(l, path, "client id", false, &OPT(l)->client_id);
}

static int set_username(loader *l, const char *path, const field *f)
{
        return get_text(l, path, "user name", false, &OPT(l)->username);
}

static int set_password_file(loader *l, const char *path, const field *f)
{
        return get_text(l, path, "file name", false, &OPT(l)->password_file);
}

static int set_call_secret_file(loader *l, const char *path, const field *f)
{
        return get_text(l, path, "file name", false, &OPT(l)->call_secret_file);
}

static int set_ca_file(loader *l, const char *path, const field *f)
{
        return get_text(l, path, "file name", false, &OPT(l)->ca_file);
}

static int set_cert_file(loader *l, const char *path, const field *f)
{
        return get_text(l, path, "file name", false, &OPT(l)->cert_file);
}

static int set_key_file(loader *l, const char *path, const field *f)
{
        return get_text(l, path, "file name", false, &OPT(l)->key_file);
}

static int set_prefix(loader *l, const char *path, const field *f)
{
        int r = get_text(l, path, "topic prefix", true, &OPT(l)->prefix);
        const char *p = OPT(l)->prefix;

        if (r < 0)
                return r;
        if (strpbrk(p, "+#") || p[0] == '$')
                return loader_fail(l, loader_event(l)->start_mark, path,
                                   "a topic prefix has no + or # and does not start with $");
        return 0;
}

static int set_keepalive(loader *l, const char *path, const field *f)
{
        return get_u32(l, path, 5, 65535, &OPT(l)->keepalive_s);
}

static int set_qos(loader *l, const char *path, const field *f)
{
        uint32_t v = 0;
        int r = get_u32(l, path, 0, 1, &v);

        if (r >= 0)
                OPT(l)->qos = (int)v;
        return r;
}

static int set_session_expiry(loader *l, const char *path, const field *f)
{
        return get_u32(l, path, 1, UINT32_MAX - 1, &OPT(l)->session_expiry_s);
}

static int set_queue_max(loader *l, const char *path, const field *f)
{
        return get_u32(l, path, 1, 1000000, &OPT(l)->queue_max);
}

static int set_mirror_max_keys(loader *l, const char *path, const field *f)
{
        return get_u32(l, path, 1, 16777216, &OPT(l)->mirror_max_keys);
}

static int set_max_pending_reads(loader *l, const char *path, const field *f)
{
        return get_u32(l, path, 1, 65536, &OPT(l)->max_pending_reads);
}

static int set_read_timeout(loader *l, const char *path, const field *f)
{
        return get_u32(l, path, 1, 600000, &OPT(l)->read_timeout_ms);
}

int broker_config_set_cluster(loader *l, const char *path, const field *f)
{
        static const field fields[] = {
                { "broker", set_broker },
                { "client_id", set_client_id },
                { "username", set_username },
                { "password_file", set_password_file },
                { "ca_file", set_ca_file },
                { "cert_file", set_cert_file },
                { "key_file", set_key_file },
                { "prefix", set_prefix },
                { "keepalive_s", set_keepalive },
                { "qos", set_qos },
                { "session_expiry_s", set_session_expiry },
                { "queue_max", set_queue_max },
                { "mirror_max_keys", set_mirror_max_keys },
                { "max_pending_reads", set_max_pending_reads },
                { "read_timeout_ms", set_read_timeout },
                { "call_secret_file", set_call_secret_file },
        };
        yaml_mark_t m = loader_event(l)->start_mark;
        int r;

        if (loader_is_null(loader_event(l))) {
                cluster_options_clear(OPT(l));
                return 0;
        }
        r = loader_walk_map(l, path, fields, ELEMENTSOF(fields));
        if (r < 0)
                return r;
        if (!OPT(l)->broker)
                return loader_fail(l, m, path, "needs broker: mqtt://HOST[:PORT]");
#ifndef HYB_HAVE_CLUSTER
        return loader_fail(l, m, path, "this hybridd was built without libmosquitto: no cluster");
#else
        return 0;
#endif
}
