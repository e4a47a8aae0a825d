/* SPDX-License-Identifier: MIT */
/*
 * The broker's configuration (doc/config.md): defaults,
 * copies, the file/string entry points and the policy queries the broker asks
 * on every connect.  The YAML walker itself is config-load.c; doc/config.md is
 * the user-facing reference.
 */
#include <jansson.h>
#include <stdio.h>

#include "broker/config-internal.h"
#include "bus/acl.h"
#include "hybrid/furi.h"
#include "hybrid/token.h"

#include "common/util.h"

int broker_config_init(broker_config *c)
{
        *c = (broker_config){ 0 };
        for (size_t i = 0; i < broker_n_limits; i++)
                broker_limit_put(c, &broker_limits[i], broker_limits[i].dflt);
        c->store_durability = -1;
        c->auth_max_lifetime_s = BROKER_AUTH_DEFAULT_LIFETIME_S;
        c->auth_verify_threads = BROKER_AUTH_VERIFY_THREADS;
        c->auth_max_verifying = BROKER_AUTH_MAX_VERIFYING;
        c->auth_uid_max_verifying = BROKER_AUTH_UID_MAX_VERIFYING;
        cluster_options_init(&c->cluster);
        c->host = strdup("localhost");
        c->log_level = strdup("info");
        if (!c->host || !c->log_level) {
                broker_config_clear(c);
                return -ENOMEM;
        }
        return 0;
}

void broker_config_free_apps(broker_app_policy *apps, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; j < apps[i].n_globs; j++)
                        free(apps[i].globs[j]);
                free(apps[i].globs);
        }
        free(apps);
}

void broker_config_free_store_rules(broker_store_rule *rules, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(rules[i].app);
                free(rules[i].furi);
        }
        free(rules);
}

void broker_config_free_strv(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void free_furiv(hyb_furi **v, size_t n)
{
        for (size_t i = 0; v && i < n; i++)
                hyb_furi_unref(v[i]);
        free(v);
}

int broker_config_set_anonymous(broker_config *c, char **v, size_t n)
{
        hyb_furi **f = n ? calloc(n, sizeof *f) : NULL;

        if (n && !f)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (hyb_furi_parse(v[i], strlen(v[i]), NULL, &f[i], NULL) < 0) {
                        free_furiv(f, n);
                        return -EINVAL;
                }
        broker_config_free_strv(c->edge_anonymous, c->n_edge_anonymous);
        free_furiv(c->edge_anonymous_furi, c->n_edge_anonymous);
        c->edge_anonymous = v;
        c->edge_anonymous_furi = f;
        c->n_edge_anonymous = n;
        return 0;
}

void broker_config_clear(broker_config *c)
{
        if (!c)
                return;
        free(c->host);
        free(c->listen_unix);
        free(c->listen_http);
        free(c->listen_coap);
        broker_config_free_strv(c->edge_anonymous, c->n_edge_anonymous);
        free_furiv(c->edge_anonymous_furi, c->n_edge_anonymous);
        free(c->admins);
        broker_config_free_apps(c->apps, c->n_apps);
        free(c->log_level);
        broker_config_free_store_rules(c->store_rules, c->n_store_rules);
        broker_config_clear_boot(c); /* and store_path */
        free(c->auth_audience);
        hyb_token_trust_unref(c->auth_trust);
        json_decref(c->auth_feed_peers);
        free(c->listen_https);
        free(c->tls_cert);
        free(c->tls_key);
        cluster_options_clear(&c->cluster);
        memset(c, 0, sizeof(*c));
}

char *broker_strdup_or_null(const char *s, bool *oom)
{
        char *p;

        if (!s)
                return NULL;
        p = strdup(s);
        if (!p)
                *oom = true;
        return p;
}

/* Deep copy, so a failed load leaves the caller's config untouched. */
int broker_config_copy(broker_config *dst, const broker_config *src)
{
        bool oom = false;

        *dst = *src;
        dst->host = broker_strdup_or_null(src->host, &oom);
        dst->listen_unix = broker_strdup_or_null(src->listen_unix, &oom);
        dst->listen_http = broker_strdup_or_null(src->listen_http, &oom);
        dst->listen_coap = broker_strdup_or_null(src->listen_coap, &oom);
        dst->edge_anonymous = NULL;
        dst->edge_anonymous_furi = NULL;
        dst->n_edge_anonymous = 0;
        if (src->n_edge_anonymous) {
                dst->edge_anonymous = calloc(src->n_edge_anonymous, sizeof(char *));
                dst->edge_anonymous_furi = calloc(src->n_edge_anonymous, sizeof(hyb_furi *));
                if (!dst->edge_anonymous || !dst->edge_anonymous_furi) {
                        oom = true;
                        free(dst->edge_anonymous);
                        free(dst->edge_anonymous_furi);
                        dst->edge_anonymous = NULL;
                        dst->edge_anonymous_furi = NULL;
                } else {
                        dst->n_edge_anonymous = src->n_edge_anonymous;
                }
                for (size_t i = 0; dst->edge_anonymous && i < src->n_edge_anonymous; i++) {
                        dst->edge_anonymous[i] = broker_strdup_or_null(src->edge_anonymous[i], &oom);
                        dst->edge_anonymous_furi[i] = src->edge_anonymous_furi
                                                              ? hyb_furi_ref(src->edge_anonymous_furi[i])
                                                              : NULL;
                }
        }
        dst->log_level = broker_strdup_or_null(src->log_level, &oom);
        dst->auth_audience = broker_strdup_or_null(src->auth_audience, &oom);
        dst->auth_trust = hyb_token_trust_ref(src->auth_trust);
        dst->auth_feed_peers = json_incref(src->auth_feed_peers);
        dst->listen_https = broker_strdup_or_null(src->listen_https, &oom);
        dst->tls_cert = broker_strdup_or_null(src->tls_cert, &oom);
        dst->tls_key = broker_strdup_or_null(src->tls_key, &oom);
        if (cluster_options_copy(&dst->cluster, &src->cluster) < 0)
                oom = true;
        dst->store_rules = NULL;
        dst->n_store_rules = 0;
        dst->admins = NULL;
        dst->apps = NULL;
        dst->n_admins = 0;
        dst->n_apps = 0;
        if (broker_config_copy_boot(dst, src) < 0)
                oom = true;
        if (oom)
                goto fail;

        if (src->n_admins) {
                dst->admins = mallocarray(src->n_admins, sizeof(uid_t));
                if (!dst->admins)
                        goto fail;
                memcpy(dst->admins, src->admins, src->n_admins * sizeof(uid_t));
                dst->n_admins = src->n_admins;
        }
        if (src->n_apps) {
                dst->apps = calloc(src->n_apps, sizeof(broker_app_policy));
                if (!dst->apps)
                        goto fail;
                dst->n_apps = src->n_apps;
                for (size_t i = 0; i < src->n_apps; i++) {
                        broker_app_policy *a = &dst->apps[i];

                        a->uid = src->apps[i].uid;
                        a->globs = calloc(src->apps[i].n_globs + 1, sizeof(char *));
                        if (!a->globs)
                                goto fail;
                        for (size_t j = 0; j < src->apps[i].n_globs; j++) {
                                a->globs[j] = strdup(src->apps[i].globs[j]);
                                if (!a->globs[j])
                                        goto fail;
                                a->n_globs = j + 1;
                        }
                }
        }
        if (src->n_store_rules) {
                dst->store_rules = calloc(src->n_store_rules, sizeof(broker_store_rule));
                if (!dst->store_rules)
                        goto fail;
                for (size_t i = 0; i < src->n_store_rules; i++) {
                        broker_store_rule *d = &dst->store_rules[i];

                        *d = src->store_rules[i];
                        d->app = broker_strdup_or_null(src->store_rules[i].app, &oom);
                        d->furi = broker_strdup_or_null(src->store_rules[i].furi, &oom);
                        dst->n_store_rules = i + 1;
                        if (oom)
                                goto fail;
                }
        }
        return 0;
fail:
        broker_config_clear(dst);
        return -ENOMEM;
}

int broker_config_load_string(broker_config *c, const char *yaml, size_t len, hyb_error *reterr)
{
        yaml_parser_t parser;
        int r;

        hyb_assert_return(c && (yaml || len == 0), -EINVAL);

        if (len > CONFIG_MAX_BYTES)
                return err_set(reterr, HYB_E_CONFIG, CONFIG_MAX_BYTES,
                               "config: larger than %d bytes", CONFIG_MAX_BYTES);
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
        r = broker_config_parse(c, &parser, NULL, reterr);
        yaml_parser_delete(&parser);
        return r;
}

typedef struct file_input {
        FILE *f;
        size_t total;
        bool too_big;
} file_input;

/* libyaml's read handler: the file, cut off (as a read error) past CONFIG_MAX_BYTES. */
static int read_bounded(void *data, unsigned char *buf, size_t size, size_t *size_read)
{
        file_input *in = data;
        size_t n = fread(buf, 1, size, in->f);

        if (n == 0 && ferror(in->f))
                return 0;
        in->total += n;
        if (in->total > CONFIG_MAX_BYTES) {
                in->too_big = true;
                return 0;
        }
        *size_read = n;
        return 1;
}

int broker_config_load_file(broker_config *c, const char *path, hyb_error *reterr)
{
        yaml_parser_t parser;
        file_input in = { 0 };
        int r;

        hyb_assert_return(c && path, -EINVAL);

        in.f = fopen(path, "re");
        if (!in.f) {
                r = -errno;
                return err_set(reterr, r, -1, "%s: %s", path, strerror(-r));
        }
        if (!yaml_parser_initialize(&parser)) {
                fclose(in.f);
                return -ENOMEM;
        }
        yaml_parser_set_input(&parser, read_bounded, &in);
        r = broker_config_parse(c, &parser, &in.too_big, reterr);
        yaml_parser_delete(&parser);
        if (r >= 0)
                r = broker_config_boot_from_file(c, path, in.f);
        fclose(in.f);
        if (r < 0 && r != -ENOMEM)
                err_prefix(reterr, "%s", path);
        return r;
}

bool broker_config_may_claim(const broker_config *c, uid_t uid, const char *app, size_t len)
{
        if (c->n_apps == 0)
                return true;
        /* Listed policy applies to root too: ubus's "root bypasses everything" is what we avoid. */
        for (size_t i = 0; i < c->n_apps; i++) {
                if (c->apps[i].uid != uid)
                        continue;
                for (size_t j = 0; j < c->apps[i].n_globs; j++)
                        if (bus_glob_match(c->apps[i].globs[j], strlen(c->apps[i].globs[j]), app,
                                           len))
                                return true;
                return false;
        }
        return false;
}

bool broker_config_is_admin(const broker_config *c, uid_t uid)
{
        if (uid == 0)
                return true;
        for (size_t i = 0; i < c->n_admins; i++)
                if (c->admins[i] == uid)
                        return true;
        return false;
}
