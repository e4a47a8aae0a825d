/* SPDX-License-Identifier: MIT */
/*
 * What the CoAP edge (coap.c) reads out of a request's options, for it and its fuzz target.
 */
#ifndef HYB_EDGE_COAP_PARSE_H
#define HYB_EDGE_COAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Credentials over CoAP (doc/edge.md "CoAP credentials"): one option of the experimental
 * range, critical and unsafe (RFC 7252 5.4.6: number & 3 == 3).  One only: libcoap 4.3's
 * filter of known options holds two numbers over 255, and 65001 is the other. */
#define EDGE_COAP_OPT_PROOF 65003 /* th (32) | iat (8, big-endian) | jti (16) | sig (64) */
#define EDGE_COAP_PROOF_LEN 120u
#define EDGE_COAP_JTI_LEN 16u
#define EDGE_COAP_PROOF_CONTEXT "hybrid-coap-proof/1" /* and a NUL: the signed input's start */
#define EDGE_COAP_URI_MAX 2048u

/* A request's credentials as its option 65003 carries them. */
typedef struct edge_coap_cred {
        uint8_t th[32];  /* the SHA-256 of the token text */
        int64_t iat;
        uint8_t jti[EDGE_COAP_JTI_LEN];
        uint8_t sig[64]; /* r||s */
} edge_coap_cred;

/*
 * Reads option 65003 of pdu into *c: 0 when it is not there, 1 when it is, once and of
 * EDGE_COAP_PROOF_LEN bytes, -EINVAL otherwise.
 */
int edge_coap_cred_read(const coap_pdu_t *pdu, edge_coap_cred *c);
/*
 * The URI of pdu as RFC 7252 6.5 composes it from its options: "coap://", the Uri-Host (its
 * characters but unreserved and sub-delims percent-encoded), else the numeric address
 * local (the request's destination; IPv6 in brackets); ":" and the Uri-Port, else local's
 * port, unless it is 5683; "/" and each Uri-Path ("/" alone for none); "?" and the Uri-Query
 * options joined by "&" (percent-encoded but for unreserved, sub-delims other than "&",
 * ":", "@", "/", "?"); %XX in upper case.  0, -E2BIG when it does not fit size, -EINVAL for
 * a local address that is neither IPv4 nor IPv6.
 */
struct sockaddr_storage;
int edge_coap_uri(const coap_pdu_t *pdu, const struct sockaddr_storage *local, char *out,
                  size_t size);
/*
 * What the proof of c signs for a request of code (1 GET .. 4 DELETE) to uri whose payload
 * (the whole body, after Block1) hashes to body_hash, with the token hashing to th:
 * "hybrid-coap-proof/1" NUL, code (1 byte), the length of uri (2 bytes, big-endian), uri,
 * body_hash (32), th (32), iat (8, big-endian), jti (16).  *ret malloc'd with *len, or
 * -E2BIG (uri over 65535 bytes) / -ENOMEM.
 */
int edge_coap_proof_input(int code, const char *uri, const uint8_t body_hash[32],
                          const uint8_t th[32], const edge_coap_cred *c, uint8_t **ret,
                          size_t *len);

#endif
