/* SPDX-License-Identifier: MIT */
/* Shared between config.c (defaults, copies, queries), config-limits.c and config-load.c. */
#ifndef HYB_BROKER_CONFIG_INTERNAL_H
#define HYB_BROKER_CONFIG_INTERNAL_H

#include <yaml.h>

#include "broker/config.h"

/* Deep copy; 0 or -ENOMEM (dst is then zeroed). */
int broker_config_copy(broker_config *dst, const broker_config *src);
void broker_config_free_apps(broker_app_policy *apps, size_t n);
void broker_config_free_store_rules(broker_store_rule *rules, size_t n);
/* Loads the one document of parser over *c, all-or-nothing.  *too_big is set by a read
 * handler that stopped at CONFIG_MAX_BYTES (NULL for string input). */
int broker_config_parse(broker_config *c, yaml_parser_t *parser, const bool *too_big,
                        hyb_error *reterr);

#endif
