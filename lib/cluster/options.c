/* SPDX-License-Identifier: MIT */
/* The cluster: options (options.h): defaults, copies, the broker URL. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/options.h"
#include "common/util.h"

void cluster_options_init(cluster_options *o)
{
        *o = (cluster_options){
                .keepalive_s = CLUSTER_DEFAULT_KEEPALIVE_S,
                .qos = 1,
                .session_expiry_s = CLUSTER_DEFAULT_SESSION_EXPIRY_S,
                .queue_max = CLUSTER_DEFAULT_QUEUE_MAX,
                .mirror_max_keys = CLUSTER_DEFAULT_MIRROR_MAX_KEYS,
                .max_pending_reads = CLUSTER_DEFAULT_MAX_PENDING_READS,
                .read_timeout_ms = CLUSTER_DEFAULT_READ_TIMEOUT_MS,
        };
}

void cluster_options_clear(cluster_options *o)
{
        free(o->broker);
        free(o->client_id);
        free(o->username);
        free(o->password_file);
        free(o->ca_file);
        free(o->cert_file);
        free(o->key_file);
        free(o->prefix);
        free(o->call_secret_file);
        cluster_options_init(o);
}

static int dup_str(char **dst, const char *src)
{
        *dst = NULL;
        if (!src)
                return 0;
        *dst = strdup(src);
        return *dst ? 0 : -ENOMEM;
}

int cluster_options_copy(cluster_options *dst, const cluster_options *src)
{
        int r = 0;

        *dst = *src;
        r |= dup_str(&dst->broker, src->broker);
        r |= dup_str(&dst->client_id, src->client_id);
        r |= dup_str(&dst->username, src->username);
        r |= dup_str(&dst->password_file, src->password_file);
        r |= dup_str(&dst->ca_file, src->ca_file);
        r |= dup_str(&dst->cert_file, src->cert_file);
        r |= dup_str(&dst->key_file, src->key_file);
        r |= dup_str(&dst->prefix, src->prefix);
        r |= dup_str(&dst->call_secret_file, src->call_secret_file);
        if (r) {
                cluster_options_clear(dst);
                return -ENOMEM;
        }
        return 0;
}

int cluster_parse_url(const char *url, char *host, size_t size, int *ret_port, bool *ret_tls)
{
        const char *p, *end, *colon;
        bool tls;
        long port;

        if (!url)
                return -EINVAL;
        if (strncmp(url, "mqtt://", 7) == 0) {
                tls = false;
                p = url + 7;
        } else if (strncmp(url, "mqtts://", 8) == 0) {
                tls = true;
                p = url + 8;
        } else
                return -EINVAL;
        if (*p == '[') {
                end = strchr(p, ']');
                if (!end || end == p + 1)
                        return -EINVAL;
                colon = end[1] == ':' ? end + 1 : NULL;
                if (end[1] && !colon)
                        return -EINVAL;
                if ((size_t)(end - p - 1) >= size)
                        return -EINVAL;
                memcpy(host, p + 1, (size_t)(end - p - 1));
                host[end - p - 1] = 0;
        } else {
                colon = strchr(p, ':');
                end = colon ? colon : p + strlen(p);
                if (end == p || (size_t)(end - p) >= size || memchr(p, '/', (size_t)(end - p)))
                        return -EINVAL;
                memcpy(host, p, (size_t)(end - p));
                host[end - p] = 0;
        }
        port = tls ? 8883 : 1883;
        if (colon) {
                char *e;

                errno = 0;
                port = strtol(colon + 1, &e, 10);
                if (errno || e == colon + 1 || *e || port < 1 || port > 65535)
                        return -EINVAL;
        }
        *ret_port = (int)port;
        *ret_tls = tls;
        return 0;
}

int cluster_read_password(const char *path, const char *what, char **ret, hyb_error *e)
{
        char buf[1024];
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f) {
                int saved = errno;

                return err_set(e, -EINVAL, -1, "%s %s: %s", what, path, strerror(saved));
        }
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
        *ret = strdup(buf);
        explicit_bzero(buf, sizeof buf);
        return *ret ? 0 : -ENOMEM;
}
