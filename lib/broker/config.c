/* SPDX-License-Identifier: MIT */
/*
 * The broker's configuration (doc/config.md): defaults,
 * copies, the file/string entry points and the policy queries the broker asks
 * on every connect.  The YAML walker itself is config-load.c; doc/config.md is
 * the user-facing reference.
 */
#include <stdio.h>

#include "broker/config-internal.h"
#include "bus/acl.h"

#include "common/util.h"

int broker_config_init(broker_config *c)
{
        *c = (broker_config){
                .max_body = 16 * CONFIG_MIB,
                .max_frame = 16 * CONFIG_MIB + CONFIG_HEADER_ROOM,
                .max_pending_calls = 1024,
                .send_queue_bytes = 64 * CONFIG_MIB,
                .max_connections = 1024,
                .max_endpoints = 1024,
                .max_subscriptions = 1024,
                .max_policy_bytes = 4 * CONFIG_KIB,
                .auth_timeout_ms = 10000,
                .ping_after_s = 60,
                .drop_after_s = 90,
                .max_memory = 64 * CONFIG_MIB,
                .uid_max_bytes = 48 * CONFIG_MIB,
                .uid_max_connections = 256,
                .uid_max_pending_calls = 4096,
                .uid_max_subscriptions = 8192,
                .uid_max_registrations = 4096,
                .uid_max_policy_bytes = 4 * CONFIG_MIB,
                .max_unauth_connections = 256,
                .uid_max_unauth_connections = 64,
        };
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

void broker_config_clear(broker_config *c)
{
        if (!c)
                return;
        free(c->host);
        free(c->listen_unix);
        free(c->admins);
        broker_config_free_apps(c->apps, c->n_apps);
        free(c->log_level);
        memset(c, 0, sizeof(*c));
}

static char *strdup_or_null(const char *s, bool *oom)
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
        dst->host = strdup_or_null(src->host, &oom);
        dst->listen_unix = strdup_or_null(src->listen_unix, &oom);
        dst->log_level = strdup_or_null(src->log_level, &oom);
        dst->admins = NULL;
        dst->apps = NULL;
        dst->n_admins = 0;
        dst->n_apps = 0;
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

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
        r = broker_config_parse(c, &parser, reterr);
        yaml_parser_delete(&parser);
        return r;
}

int broker_config_load_file(broker_config *c, const char *path, hyb_error *reterr)
{
        yaml_parser_t parser;
        FILE *f;
        int r;

        hyb_assert_return(c && path, -EINVAL);

        f = fopen(path, "re");
        if (!f) {
                r = -errno;
                return err_set(reterr, r, -1, "%s: %s", path, strerror(-r));
        }
        if (!yaml_parser_initialize(&parser)) {
                fclose(f);
                return -ENOMEM;
        }
        yaml_parser_set_input_file(&parser, f);
        r = broker_config_parse(c, &parser, reterr);
        yaml_parser_delete(&parser);
        fclose(f);
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
