/* SPDX-License-Identifier: MIT */
/* Shared between config.c (defaults, copies, queries), config-limits.c and config-load.c. */
#ifndef HYB_BROKER_CONFIG_INTERNAL_H
#define HYB_BROKER_CONFIG_INTERNAL_H

#include <stdio.h>
#include <yaml.h>

#include "broker/config.h"
#include "common/util.h"

/* Deep copy; 0 or -ENOMEM (dst is then zeroed). */
int broker_config_copy(broker_config *dst, const broker_config *src);
void broker_config_free_apps(broker_app_policy *apps, size_t n);
void broker_config_free_store_rules(broker_store_rule *rules, size_t n);
/* strdup(s), or NULL for a NULL s; a failed copy sets *oom (config.c). */
char *broker_strdup_or_null(const char *s, bool *oom);
/* Loads the one document of parser over *c, all-or-nothing.  *too_big is set by a read
 * handler that stopped at CONFIG_MAX_BYTES (NULL for string input). */
int broker_config_parse(broker_config *c, yaml_parser_t *parser, const bool *too_big,
                        hyb_error *reterr);

/* boot: and store: (config-boot.c) */
void broker_config_clear_boot(broker_config *c);
int broker_config_copy_boot(broker_config *dst, const broker_config *src);
/* After a load of the file path (open as f): names path as the config file of the boot
 * entries it brought, and finds the column of each inline block program's text in it. */
int broker_config_boot_from_file(broker_config *c, const char *path, FILE *f);

/* The loader's walk, shared with config-boot.c (config-load.c). */
typedef struct loader loader;
typedef struct field field;
typedef int (*field_fn)(loader *l, const char *path, const field *f);
struct field {
        const char *key;
        field_fn fn;
};
int loader_fail(loader *l, yaml_mark_t m, const char *path, const char *fmt, ...) _printf_(4, 5);
int loader_next(loader *l);
const yaml_event_t *loader_event(loader *l);
broker_config *loader_config(loader *l);
/* A pointer a field function may keep for the nested ones it calls. */
void **loader_user(loader *l);
bool loader_is_null(const yaml_event_t *e);
int loader_get_string(loader *l, const char *path, const char *what, const char **ret,
                      size_t *ret_len);
/* One word of names[0..n) into *ret_index, else "expected a, b or c, got 'x'". */
int loader_get_choice(loader *l, const char *path, const char *what, const char *const *names,
                      size_t n, size_t *ret_index);
int loader_walk_map(loader *l, const char *path, const field *fields, size_t n_fields);
int loader_walk_list(loader *l, const char *path, const char *what,
                     int (*item)(loader *l, const char *path, size_t i, void *ud), void *ud);
/* The keys `store` and `boot` of the top mapping (config-boot.c). */
int broker_config_set_store(loader *l, const char *path, const field *f);
int broker_config_set_store_limits(loader *l, const char *path, const field *f);
int broker_config_set_boot(loader *l, const char *path, const field *f);
/* The key `auth` of the top mapping (config-auth.c). */
int broker_config_set_auth(loader *l, const char *path, const field *f);
/* listen.https, the key `tls` of the top mapping, and "https needs tls" once the whole
 * file is in (config-tls.c). */
int broker_config_set_listen_https(loader *l, const char *path, const field *f);
int broker_config_set_tls(loader *l, const char *path, const field *f);
int broker_config_check_https(loader *l);
/* The key `cluster` of the top mapping (config-cluster.c). */
int broker_config_set_cluster(loader *l, const char *path, const field *f);

#endif
