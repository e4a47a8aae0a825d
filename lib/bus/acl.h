/* SPDX-License-Identifier: MIT */
/*
 * Globs and access lists (doc/bus.md: event patterns and access lists).
 *
 * Glob: `*` any run, `?` one byte, ASCII case-insensitive, everything else literal.
 * Access list (forHost / forApp): items separated by runs of `,` `;` and spaces
 * (no empty items); each item is `*`, a glob, `!glob` (deny), `$self` (the
 * owner's host), `$owner` (the owner's app).  Items are read in order: a
 * matching allow item allows, a matching `!glob` denies, a non-matching item is
 * skipped; the first match decides; the end of the list denies.  A registration
 * that gives no list (NULL or "") gets `*`.
 */
#ifndef HYB_BUS_ACL_H
#define HYB_BUS_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "hybrid/common.h"

bool bus_glob_match(const char *pat, size_t plen, const char *s, size_t slen);
/* True when the glob has no `*`/`?` (so exact, case-insensitive comparison suffices). */
bool bus_glob_is_literal(const char *pat, size_t plen);

typedef struct bus_acl bus_acl;

/* Longest access list text accepted: a peer must not make the broker keep (and walk on
 * every call) megabytes of items. */
#define BUS_ACL_TEXT_MAX 4096u

/* Compiles an access list; text NULL or "" gives `*`.  HYB_E_NOT_ACCEPTABLE (406)
 * with a message and offset for an invalid list (e.g. `!` alone, `$bogus`, longer
 * than BUS_ACL_TEXT_MAX). */
int bus_acl_compile(const char *text, bus_acl **ret, hyb_error *reterr);
bus_acl *bus_acl_free(bus_acl *acl);
/* Does the list allow value?  self_host / owner_app resolve `$self` / `$owner`. */
bool bus_acl_allows(const bus_acl *acl, const char *value, size_t len, const char *self_host,
                    const char *owner_app);
/* The normalised text of the list ("*" for the default), for introspection. */
const char *bus_acl_text(const bus_acl *acl);

#endif
