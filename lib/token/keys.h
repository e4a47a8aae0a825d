/* SPDX-License-Identifier: MIT */
/*
 * Internal side of hyb_key (hybrid/token.h) for the token layer: the P-256
 * key behind a handle, and JWKs as jansson values (a token's `cnf` member
 * holds the holder key as a JWK inside the claims).
 */
#ifndef HYB_TOKEN_KEYS_H
#define HYB_TOKEN_KEYS_H

#include <jansson.h>

#include "hybrid/token.h"
#include "token/crypto.h"

/* The key behind a handle (borrowed, valid while key lives). */
const p256_key *key_get_p256(const hyb_key *key);

/* A handle for k, which it takes over (freed on failure too).  0 or -ENOMEM. */
int key_new_steal(p256_key *k, hyb_key **ret);

/*
 * A key from a JWK object: `kty` "EC", `crv` "P-256", `x` and `y` (strict
 * base64url of exactly 32 bytes), optional `d` (32 bytes, must match x/y);
 * other members are ignored (`kid`, `use`, `alg` included: the kid is always
 * recomputed).  Errors as hyb_key_load_memory: HYB_E_PARSE,
 * HYB_E_NOT_ACCEPTABLE (RSA, oct, OKP, another curve), -ENOMEM.
 */
int key_from_jwk_json(const json_t *jwk, hyb_key **ret, hyb_error *reterr);

/*
 * The JWK of key as a new jansson object (caller json_decref()s):
 * kty, crv, x, y, and d when with_private (NULL then for a public key).
 * with_kid adds the `kid` member.  NULL on ENOMEM.
 */
json_t *key_to_jwk_json(const hyb_key *key, bool with_private, bool with_kid);

#endif
