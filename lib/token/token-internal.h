/* SPDX-License-Identifier: MIT */
/*
 * The token format inside (doc/token.md "Format"): a token is up to four JWS
 * compact blocks joined by `~`.
 *
 *   block 0 (authority)          block 1 (attenuation)          ...
 *   hdr.payload.sig   ~          hdr.payload.sig   ~
 *    |     |      |               |     |      `- by block 0's cnf key
 *    |     |      `- by the trust  |     `- v prv cnf [cap aud exp nbf dlg iat]
 *    |     |         store key     `- {"alg":"ES256","typ":"hyb-att+jwt"}
 *    |     `- v iss sub aud iat nbf exp jti cnf cap dlg epo
 *    `- {"alg":"ES256","typ":"hyb-auth+jwt","kid":<thumbprint of iss's key>}
 *
 * Everything here is checked in the order of doc/token.md "Verification": the
 * text before any decoding, the base64url, the header, the signature, and only
 * then the claims.
 */
#ifndef HYB_TOKEN_INTERNAL_H
#define HYB_TOKEN_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "hybrid/furi.h"
#include "hybrid/token.h"

/* The `typ` header member of each block kind (doc/token.md). */
#define TOKEN_TYP_AUTHORITY "hyb-auth+jwt"
#define TOKEN_TYP_ATTENUATION "hyb-att+jwt"
#define TOKEN_TYP_REVOCATION "hyb-rev+jwt"

/* Hard limits, checked on the text before anything is decoded. */
enum {
        TOKEN_MAX_SIZE = 4096,          /* the whole token, bytes */
        TOKEN_MAX_BLOCKS = 4,
        TOKEN_MAX_HEADER_B64 = 256,     /* one block's header part, base64url characters */
        TOKEN_MAX_PAYLOAD_B64 = 3600,
        TOKEN_SIG_B64 = 86,             /* 64 raw bytes, unpadded */
        TOKEN_SIG_LEN = 64,
        TOKEN_MAX_JSON_DEPTH = 4,       /* claims { cap [ { actions [ */
        TOKEN_MAX_CAPS = 32,            /* capabilities in one block */
        TOKEN_MAX_EFFECTIVE_CAPS = 128, /* after intersecting the blocks */
        TOKEN_MAX_AUD = 16,
        TOKEN_MAX_STRING = 256,         /* iss, sub, aud, jti, a resource pattern */
};

/* A capability as the verifier keeps it: a parsed pattern and an action mask. */
typedef struct token_cap {
        hyb_furi *pattern;
        unsigned actions;       /* HYB_TOKEN_ACT_* */
        /* Canonical text every fURI within the pattern starts with (up to its first
         * wildcard): a memcmp rules most capabilities out before the matcher runs. */
        const char *prefix;     /* borrowed from pattern */
        uint32_t prefix_len;
} token_cap;

/* Fills c from a parsed pattern (the reference is taken over) and its actions. */
void token_cap_set(token_cap *c, hyb_furi *pattern, unsigned actions);

/* The result of a verification (or of decoding for inspect/attenuate). */
struct hyb_token_result {
        atomic_uint n_ref;
        char *sub;
        char *iss;
        char *jti;
        char *holder_kid;
        hyb_key *holder;        /* the last block's cnf key */
        int64_t exp;            /* effective: the minimum over the blocks */
        int64_t nbf;            /* effective: the maximum */
        uint64_t epo;
        unsigned n_blocks;
        token_cap *caps;
        size_t n_caps;
};

/* One block split into its three parts (pointers into the token text). */
typedef struct token_part {
        const char *hdr, *payload, *sig;
        size_t hdr_len, payload_len, sig_len;
        const char *signed_text; /* hdr "." payload: what the signature covers */
        size_t signed_len;
} token_part;

/*
 * Splits text into blocks and parts after checking size, charset and counts;
 * *ret_n gets the number of blocks. HYB_E_UNAUTHORIZED with the reason in e.
 */
int token_split(const char *text, size_t len, token_part parts[TOKEN_MAX_BLOCKS], size_t *ret_n,
                hyb_error *e);

/*
 * Strict JSON of a header or claims set: an object, no duplicate keys, no NUL,
 * valid UTF-8, at most TOKEN_MAX_JSON_DEPTH deep (checked before jansson
 * parses). *ret gets a new reference.
 */
int token_json_parse(const uint8_t *data, size_t len, json_t **ret, hyb_error *e);

/* Checks a decoded header against the template of block `index`; kid (block 0) is borrowed. */
int token_header_check(json_t *hdr, size_t index, const char **ret_kid, hyb_error *e);

/* An integer NumericDate (not a float, not a string) in [0, 2^53). */
int token_claim_time(json_t *claims, const char *name, bool required, int64_t *ret, hyb_error *e);

/* A non-empty string of at most TOKEN_MAX_STRING bytes; borrowed from claims. */
int token_claim_string(json_t *claims, const char *name, bool required, const char **ret,
                       hyb_error *e);

/* Only the listed members are present (the claims of a block kind). */
int token_claims_only(json_t *claims, const char *const *allowed, hyb_error *e);

/* Actions: "call" -> HYB_TOKEN_ACT_CALL, ...; 0 for an unknown word. */
unsigned token_action_from_name(const char *s, size_t n);
const char *token_action_name(unsigned bit);

/*
 * Parses a `cap` claim (array of {"resource": PATTERN, "actions": [..]}) into
 * ret_caps and ret_n (owned by the caller: token_caps_free).
 */
int token_caps_parse(json_t *cap, token_cap **ret_caps, size_t *ret_n, hyb_error *e);
void token_caps_free(token_cap *caps, size_t n);

/*
 * The intersection of the effective capabilities with a child block's: a
 * child pattern within a parent pattern keeps the child's, a parent pattern
 * within the child's keeps the parent's, both with the common actions; any
 * other pair grants nothing (fail closed). Replaces caps and n.
 */
int token_caps_intersect(token_cap **caps, size_t *n, const token_cap *child, size_t n_child,
                         hyb_error *e);

/* The parsed form of a resource a capability may name, lower-cased when it is a bus://
 * name; rejects text a verifier must not reason about (see token-cap.c). */
int token_resource_parse(const char *text, size_t len, hyb_furi **ret, hyb_error *e);

/* {"resource": ..., "actions": [...]} of caps, as a JSON array (new reference). */
json_t *token_caps_to_json(const token_cap *caps, size_t n);

/* A block's three parts decoded (header and claims strictly parsed on demand). */
typedef struct token_block {
        json_t *hdr;
        json_t *claims;
        uint8_t sig[TOKEN_SIG_LEN];
} token_block;

void token_block_clear(token_block *b);

/* Decodes the header (checked against the template of its position) and the signature. */
int token_block_decode_head(const token_part *p, size_t index, token_block *b, const char **ret_kid,
                            hyb_error *e);

/* As token_block_decode_head for a one-block JWS of another kind (the feed): check judges
 * the decoded header and gives its kid. */
typedef int (*token_header_fn)(json_t *hdr, const char **ret_kid, hyb_error *e);
int token_block_decode_head_with(const token_part *p, token_block *b, token_header_fn check,
                                 const char **ret_kid, hyb_error *e);

/* true for the 64 characters of base64url (RFC 4648 section 5). */
bool token_is_b64url_char(unsigned char c);

/* Decodes and strictly parses the claims (after the signature was checked). */
int token_block_decode_claims(const token_part *p, size_t index, token_block *b, hyb_error *e);

/* base64url(SHA-256(sig)), 43 characters and a NUL: what `prv` names. */
void token_sig_hash(const uint8_t sig[TOKEN_SIG_LEN], char out[44]);

/*
 * The holder key of a block's `cnf` claim: exactly {"jwk": {kty, crv, x, y}}
 * (no private part, no other members), a point on the curve.  *ret gets a
 * reference.
 */
int token_cnf_key(json_t *claims, size_t index, hyb_key **ret, hyb_error *e);

/* {"jwk": {kty, crv, x, y}} of key's public part (new reference), or NULL. */
json_t *token_cnf_json(const hyb_key *key);

/*
 * Signs header and claims with key into one block "h.p.s" (*ret, free()).
 * Tests use it to make the blocks an attacker would.
 */
int token_block_make(const hyb_key *key, json_t *hdr, json_t *claims, char **ret);

/* The audience claim as 1 to TOKEN_MAX_AUD strings; true when id is one of them. */
int token_aud_check(json_t *claims, const char *name, size_t index, const char *id, bool required,
                    hyb_error *e);

/* The first trusted key whose thumbprint is kid (and the issuer it is trusted for), or NULL. */
const hyb_key *token_trust_find_kid(const hyb_token_trust *t, const char *kid,
                                    const char **ret_issuer);

#endif
