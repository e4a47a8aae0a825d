/* SPDX-License-Identifier: MIT */
/*
 * Bus names (doc/bus.md): validation, parsing, case-insensitive
 * comparison and hashing.  Names compare case-insensitively; the registrant's
 * case is kept for display.
 *
 *   endpoint  @<host>/<app>/<runner>
 *   member    @<host>/<app>/<runner>/<method-or-bubble>
 *
 * Every check returns 0, or HYB_E_NOT_ACCEPTABLE (406) with a message naming
 * the part and the byte offset in *reterr.
 */
#ifndef HYB_BUS_NAMES_H
#define HYB_BUS_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hybrid/common.h"

#define BUS_HOST_MAX 127
#define BUS_APP_MAX 127
#define BUS_IDENT_MAX 63
/* "@" host "/" app "/" runner "/" name */
#define BUS_MEMBER_MAX (1 + BUS_HOST_MAX + 1 + BUS_APP_MAX + 1 + BUS_IDENT_MAX + 1 + BUS_IDENT_MAX)

#define BUS_APP_SELF "org.hybridos.bus"
#define BUS_RUNNER_BUILTIN "builtin"

/* host: DNS labels of [A-Za-z0-9-], not starting/ending with '-', <= 127 bytes. */
int bus_name_check_host(const char *s, size_t len, hyb_error *reterr);
/* app: identifiers joined by single dots, <= 127 bytes (`my-app` is refused). */
int bus_name_check_app(const char *s, size_t len, hyb_error *reterr);
/* runner, method, bubble: [A-Za-z_][A-Za-z0-9_]*, <= 63 bytes. */
int bus_name_check_ident(const char *s, size_t len, hyb_error *reterr);

/* Borrowed views into the parsed text. name is NULL/0 for an endpoint. */
typedef struct bus_name {
        const char *host;
        size_t host_len;
        const char *app;
        size_t app_len;
        const char *runner;
        size_t runner_len;
        const char *name;
        size_t name_len;
} bus_name;

/* Parses and validates "@host/app/runner". */
int bus_name_parse_endpoint(const char *s, size_t len, bus_name *ret, hyb_error *reterr);
/* Parses and validates "@host/app/runner/name". */
int bus_name_parse_member(const char *s, size_t len, bus_name *ret, hyb_error *reterr);

/* Case-insensitive (ASCII) equality and a hash consistent with it. */
bool bus_name_equal(const char *a, size_t alen, const char *b, size_t blen);
uint64_t bus_name_hash(const char *s, size_t len);

#endif
