/* SPDX-License-Identifier: MIT */
/*
 * What the CoAP edge (coap.c) reads out of a request's options, for it and its fuzz target.
 */
#ifndef HYB_EDGE_COAP_PARSE_H
#define HYB_EDGE_COAP_PARSE_H

#include <stddef.h>

#include <coap3/coap.h>

/*
 * The path of pdu's Uri-Path options as the raw path of a URI: "/" and each option
 * percent-encoded but for unreserved and sub-delim characters (so a "/" inside one is
 * %2F, decoded once by edge_route_parse as in HTTP); "/" for none.  0, or -E2BIG when it
 * does not fit size bytes.
 */
int edge_coap_path(const coap_pdu_t *pdu, char *out, size_t size);
/*
 * The params object of a GET call from pdu's Uri-Query options ("k=v", a bare "k" is the
 * empty string; each value as JSON when it parses, else a string): *ret malloc'd JSON
 * text, or -EINVAL (a NUL, an empty or repeated key, not UTF-8) / -ENOMEM.
 */
int edge_coap_query_params(const coap_pdu_t *pdu, char **ret);

#endif
