/* SPDX-License-Identifier: MIT */
/*
 * The network edge's TLS keys of the daemon's configuration (doc/config.md):
 *
 *   listen:
 *     https: 0.0.0.0:8443                 HOST:PORT (IPv6 in brackets; port 0: any free one)
 *   tls: {cert: /etc/hybrid/cert.pem, key: /etc/hybrid/key.pem}
 *
 * The certificate and key are loaded and matched while the configuration loads (as the
 * issuer keys of auth: are), so a missing, unreadable or unparsable file, or a key that is
 * not the certificate's, is a configuration error at the line of the value; listen.https
 * without a tls: block is one at the line of listen.https.
 */
#include <stdio.h>

#include "broker/config-internal.h"
#include "edge/https.h"
#include "edge/tls.h"

#include "common/util.h"

/* What set_tls collects: the two values and where they were. */
typedef struct tls_keys {
        char *cert, *key;
        yaml_mark_t cert_mark, key_mark;
} tls_keys;

static int get_path(loader *l, const char *path, char **ret, yaml_mark_t *mark)
{
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = loader_get_string(l, path, "a file name", &s, &len);
        if (r < 0)
                return r;
        if (len == 0 || len >= 4096)
                return loader_fail(l, loader_event(l)->start_mark, path, "bad file name");
        free(*ret);
        *ret = strndup_safe(s, len);
        *mark = loader_event(l)->start_mark;
        return *ret ? 0 : -ENOMEM;
}

static int set_cert(loader *l, const char *path, const field *f)
{
        tls_keys *k = *loader_user(l);

        return get_path(l, path, &k->cert, &k->cert_mark);
}

static int set_key(loader *l, const char *path, const field *f)
{
        tls_keys *k = *loader_user(l);

        return get_path(l, path, &k->key, &k->key_mark);
}

int broker_config_set_tls(loader *l, const char *path, const field *f)
{
        static const field fields[] = {
                { "cert", set_cert },
                { "key", set_key },
        };
        broker_config *c = loader_config(l);
        yaml_mark_t m = loader_event(l)->start_mark;
        tls_keys k = { 0 };
        void *saved = *loader_user(l);
        edge_tls *t = NULL;
        hyb_error err;
        int r;

        if (loader_is_null(loader_event(l))) {
                free(c->tls_cert);
                free(c->tls_key);
                c->tls_cert = c->tls_key = NULL;
                return 0;
        }
        *loader_user(l) = &k;
        r = loader_walk_map(l, path, fields, ELEMENTSOF(fields));
        *loader_user(l) = saved;
        if (r < 0)
                goto out;
        if (!k.cert || !k.key) {
                r = loader_fail(l, m, path, "needs both cert and key");
                goto out;
        }
        hyb_error_clear(&err);
        r = edge_tls_server_new(k.cert, k.key, &t, &err);
        edge_tls_unref(t);
        if (r == -ENOMEM)
                goto out;
        if (r < 0) {
                /* the key is to blame for a mismatch or its own file, else the certificate */
                bool key_fault = r == HYB_E_CONFIG || strstr(err.message, k.key) != NULL;
                char sub[200];

                snprintf(sub, sizeof(sub), "%.120s.%s", path, key_fault ? "key" : "cert");
                r = loader_fail(l, key_fault ? k.key_mark : k.cert_mark, sub, "%s",
                                err.message[0] ? err.message : hyb_strerror(r));
                goto out;
        }
        free(c->tls_cert);
        free(c->tls_key);
        c->tls_cert = TAKE_PTR(k.cert);
        c->tls_key = TAKE_PTR(k.key);
out:
        free(k.cert);
        free(k.key);
        return r;
}

int broker_config_set_listen_https(loader *l, const char *path, const field *f)
{
        broker_config *c = loader_config(l);
        const yaml_event_t *e = loader_event(l);
        const char *s = NULL;
        size_t len = 0;
        char text[300], host[256];
        uint16_t port;
        int r;

        if (loader_is_null(e)) {
                free(c->listen_https);
                c->listen_https = NULL;
                return 0;
        }
        r = loader_get_string(l, path, "HOST:PORT", &s, &len);
        if (r < 0)
                return r;
        if (len >= sizeof(text) ||
            (memcpy(text, s, len), text[len] = '\0',
             edge_parse_hostport(text, host, sizeof(host), &port) < 0))
                return loader_fail(l, e->start_mark, path,
                                   "expected HOST:PORT (an IPv6 address in brackets), got '%.*s'",
                                   (int)(len > 64 ? 64 : len), s);
        free(c->listen_https);
        c->listen_https = strdup(text);
        if (!c->listen_https)
                return -ENOMEM;
        c->https_line = (unsigned)e->start_mark.line + 1;
        c->https_column = (unsigned)e->start_mark.column + 1;
        return 0;
}

int broker_config_check_https(loader *l)
{
        broker_config *c = loader_config(l);
        yaml_mark_t m = { 0 };

        if (!c->listen_https || (c->tls_cert && c->tls_key))
                return 0;
        m.line = c->https_line ? c->https_line - 1 : 0;
        m.column = c->https_column ? c->https_column - 1 : 0;
        return loader_fail(l, m, "listen.https", "needs tls: {cert: FILE, key: FILE}");
}
