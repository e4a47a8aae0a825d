/* SPDX-License-Identifier: MIT */
/* Shared between config.c (defaults, copies, queries) and config-load.c (the YAML walker). */
#ifndef HYB_BROKER_CONFIG_INTERNAL_H
#define HYB_BROKER_CONFIG_INTERNAL_H

#include <yaml.h>

#include "broker/config.h"

#define CONFIG_KIB ((uint64_t)1024)
#define CONFIG_MIB (CONFIG_KIB * 1024)
#define CONFIG_GIB (CONFIG_MIB * 1024)
/* Room for the frame header when only max_body is given. */
#define CONFIG_HEADER_ROOM (64 * CONFIG_KIB)

/* Deep copy; 0 or -ENOMEM (dst is then zeroed). */
int broker_config_copy(broker_config *dst, const broker_config *src);
void broker_config_free_apps(broker_app_policy *apps, size_t n);
/* Loads the one document of parser over *c, all-or-nothing. */
int broker_config_parse(broker_config *c, yaml_parser_t *parser, hyb_error *reterr);

#endif
