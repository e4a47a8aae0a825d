/* SPDX-License-Identifier: MIT */
/*
 * hybrid/token.h - keys and security tokens (doc/token.md).
 *
 * Keys.  A hyb_key is a P-256 (secp256r1) key: a key pair, or a public key
 * alone.  Keys are read from PEM (PKCS#8 `BEGIN PRIVATE KEY`, SEC1
 * `BEGIN EC PRIVATE KEY`, SubjectPublicKeyInfo `BEGIN PUBLIC KEY`) or from a
 * JWK (RFC 7517, `"kty":"EC","crv":"P-256"`), as OpenSSL, Python
 * `cryptography` and JOSE libraries write them; they are written as PKCS#8
 * (private, mode 0600) and SubjectPublicKeyInfo (public) PEM and as JWK.  The
 * key id (`kid`) is the RFC 7638 JWK thumbprint of the public key, base64url.
 * Signatures are ES256 (RFC 7518): SHA-256, ECDSA P-256, raw r||s (64 bytes),
 * always low-S; verification accepts nothing else.
 *
 * A hyb_key is immutable once made and may be shared between threads.
 */
#ifndef HYBRID_TOKEN_H
#define HYBRID_TOKEN_H

#include <hybrid/common.h>
#include <hybrid/furi.h>
#include <hybrid/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ keys */

typedef struct hyb_key hyb_key;

/* What an export includes. */
typedef enum hyb_key_export_flags {
        HYB_KEY_EXPORT_PUBLIC = 0,       /* the public key only (the default) */
        HYB_KEY_EXPORT_PRIVATE = 1 << 0, /* the private key too; -ENOKEY for a public key */
        _HYB_KEY_EXPORT_FORCE_32BIT = 0x7fffffff,
} hyb_key_export_flags;

/* Length of a raw ES256 signature (r||s). */
enum { HYB_KEY_SIGNATURE_SIZE = 64 };

/*
 * Generates a new P-256 key pair from the system's CSPRNG.  *ret gets the
 * caller's reference (hyb_key_unref).  0, -EINVAL, -ENOMEM or HYB_E_INTERNAL.
 */
HYB_EXPORT int hyb_key_generate(hyb_key **ret);

/*
 * Reads a key from len bytes of text (need not be NUL-terminated): PEM in
 * one of the three forms above, or a JWK JSON object (detected by its `{`).
 * A private key (PKCS#8, SEC1, JWK with `d`) gives a key pair; its public
 * point, when the file stores one, must match the private scalar.
 * *ret gets the caller's reference.
 * Errors (the message in *reterr says what and why):
 *   HYB_E_PARSE           not a key (bad PEM/DER/JSON, encrypted key, bad
 *                         base64url in a JWK, point not on the curve, ...);
 *   HYB_E_NOT_ACCEPTABLE  a well-formed key of another kind: RSA, another
 *                         curve (P-384, ...), a symmetric JWK; the message
 *                         names it;
 *   -EINVAL, -ENOMEM.
 */
HYB_EXPORT int hyb_key_load_memory(const char *data, size_t len, hyb_key **ret, hyb_error *reterr);

/*
 * As hyb_key_load_memory on the contents of the file at path (at most
 * 64 KiB).  Also -errno of open/read (the message names the file).
 */
HYB_EXPORT int hyb_key_load_file(const char *path, hyb_key **ret, hyb_error *reterr);

/* Takes a reference.  Returns key; NULL is a no-op. */
HYB_EXPORT hyb_key *hyb_key_ref(const hyb_key *key);
/* Drops a reference; the last one frees the key and clears its private part.
 * Returns NULL; NULL is a no-op. */
HYB_EXPORT hyb_key *hyb_key_unref(hyb_key *key);

/* true when key holds the private part (it can sign); false for NULL. */
HYB_EXPORT bool hyb_key_has_private(const hyb_key *key);

/*
 * The key id: the RFC 7638 thumbprint of the public key (SHA-256 over
 * `{"crv":"P-256","kty":"EC","x":"...","y":"..."}`), base64url without
 * padding, 43 characters.  Borrowed, valid while key lives.  NULL for NULL.
 */
HYB_EXPORT const char *hyb_key_get_kid(const hyb_key *key);

/* true when a and b have the same public key (constant time); false when either is NULL. */
HYB_EXPORT bool hyb_key_equal(const hyb_key *a, const hyb_key *b);

/*
 * The key as PEM text, NUL-terminated, in *ret (free with hyb_free()):
 * SubjectPublicKeyInfo `BEGIN PUBLIC KEY`, or with HYB_KEY_EXPORT_PRIVATE
 * PKCS#8 `BEGIN PRIVATE KEY`.  0, -EINVAL, -ENOKEY (private asked of a
 * public key), -ENOMEM.
 */
HYB_EXPORT int hyb_key_to_pem(const hyb_key *key, hyb_key_export_flags flags, char **ret);

/*
 * The key as a compact JWK JSON object, NUL-terminated, in *ret (free with
 * hyb_free()): `{"kty":"EC","crv":"P-256","x":..,"y":..,"kid":..}`, and `d`
 * only with HYB_KEY_EXPORT_PRIVATE.  0, -EINVAL, -ENOKEY, -ENOMEM.
 */
HYB_EXPORT int hyb_key_to_jwk(const hyb_key *key, hyb_key_export_flags flags, char **ret);

/*
 * Writes the private key to path as PKCS#8 PEM, atomically (a temporary file
 * in the same directory, fsync, rename): readers see the old file or the new
 * one.  The file gets mode 0600; an existing file's mode is never widened
 * (an existing 0400 file stays 0400).  Errors: -ENOKEY (public key only),
 * -errno of the file operations (the message names the file), -EINVAL.
 */
HYB_EXPORT int hyb_key_save_private(const hyb_key *key, const char *path, hyb_error *reterr);

/*
 * Writes the public key to path as SubjectPublicKeyInfo PEM, atomically as
 * above, mode 0644 less the umask (an existing file's mode is never widened).
 * -errno (the message names the file), -EINVAL.
 */
HYB_EXPORT int hyb_key_save_public(const hyb_key *key, const char *path, hyb_error *reterr);

/*
 * ES256 signature of len bytes at msg: SHA-256, ECDSA P-256 (deterministic,
 * RFC 6979), raw r||s, low-S, written to sig (HYB_KEY_SIGNATURE_SIZE bytes).
 * 0, -EINVAL, -ENOKEY (public key only), HYB_E_INTERNAL.
 */
HYB_EXPORT int hyb_key_sign(const hyb_key *key, const void *msg, size_t len, uint8_t *sig);

/*
 * Verifies an ES256 signature (raw r||s, sig_len must be 64) of len bytes at
 * msg.  0 when valid; HYB_E_AUTH when not, whatever the reason (DER form,
 * high-S, r or s zero or >= n, wrong key, altered message); -EINVAL for NULL
 * arguments.
 */
HYB_EXPORT int hyb_key_verify(const hyb_key *key, const void *msg, size_t len, const uint8_t *sig,
                              size_t sig_len);


/* ---------------------------------------------------------------- tokens */

/*
 * A token is one to four blocks joined by `~`, each a JWS compact
 * serialisation `b64u(header).b64u(claims).b64u(signature)` signed ES256
 * (doc/token.md "Format").  Block 0, the authority, is signed by an issuer
 * and is an ordinary JWT: it names the holder's public key (`cnf`) and the
 * rights (`cap`).  Each further block is an attenuation signed by the holder
 * key of the block before it: it names a new holder and may narrow the
 * rights, the audience and the validity, never widen them.
 *
 * Every verification failure is HYB_E_UNAUTHORIZED (bus status 401), the one
 * error a peer sees; the reason is in reterr's message, for the log.
 */

/* Actions a capability grants (a bit set). */
typedef enum hyb_token_action {
        HYB_TOKEN_ACT_CALL = 1 << 0,    /* call a procedure */
        HYB_TOKEN_ACT_REG = 1 << 1,     /* register a procedure or event */
        HYB_TOKEN_ACT_SUB = 1 << 2,     /* subscribe to events or store changes */
        HYB_TOKEN_ACT_PUB = 1 << 3,     /* fire an event */
        HYB_TOKEN_ACT_READ = 1 << 4,    /* store read */
        HYB_TOKEN_ACT_WRITE = 1 << 5,   /* store write */
        HYB_TOKEN_ACT_DELETE = 1 << 6,  /* store delete */
        HYB_TOKEN_ACT_ADMIN = 1 << 7,   /* monitor, list subscribers, end others' calls */
        _HYB_TOKEN_ACT_FORCE_32BIT = 0x7fffffff,
} hyb_token_action;

/* Defaults and bounds of the verification policy. */
enum {
        HYB_TOKEN_DEFAULT_TTL_S = 3600,                 /* of an issued token */
        HYB_TOKEN_DEFAULT_MAX_LIFETIME_S = 30 * 86400,  /* exp - iat a verifier accepts */
        HYB_TOKEN_MAX_LEEWAY_S = 60,                    /* clock skew allowed on exp/nbf/iat */
        HYB_TOKEN_MAX_SIZE = 4096,                      /* bytes of a token */
        HYB_TOKEN_MAX_BLOCKS = 4,
};

/*
 * Parses a comma-separated list of action names ("read,write") into a
 * HYB_TOKEN_ACT_* set in *ret_actions.  0, HYB_E_PARSE for an unknown or
 * empty name, -EINVAL.
 */
HYB_EXPORT int hyb_token_actions_parse(const char *text, unsigned *ret_actions);

/* One capability as given to issue/attenuate (a small value struct; strings borrowed). */
typedef struct hyb_token_cap {
        const char *resource;   /* a fURI pattern in canonical form; bus names as
                                 * bus://host/app/runner/name (lower-cased when issued) */
        unsigned actions;       /* HYB_TOKEN_ACT_* */
} hyb_token_cap;

/* --- the trust store: issuer name -> public key --- */

typedef struct hyb_token_trust hyb_token_trust;

/* A new empty trust store; *ret gets the caller's reference.  0, -EINVAL, -ENOMEM. */
HYB_EXPORT int hyb_token_trust_new(hyb_token_trust **ret);
HYB_EXPORT hyb_token_trust *hyb_token_trust_ref(const hyb_token_trust *trust);
/* Drops a reference (the last one frees the store); returns NULL; NULL is a no-op. */
HYB_EXPORT hyb_token_trust *hyb_token_trust_unref(hyb_token_trust *trust);
/*
 * Trusts key (only its public part is used; a reference is taken) for tokens
 * whose `iss` is issuer (1 to 256 bytes, copied).  -EEXIST when issuer is
 * already trusted, -EINVAL, -ENOMEM.
 */
HYB_EXPORT int hyb_token_trust_add(hyb_token_trust *trust, const char *issuer, const hyb_key *key);
/* The key trusted for issuer, borrowed (valid while trust lives), or NULL. */
HYB_EXPORT const hyb_key *hyb_token_trust_get(const hyb_token_trust *trust, const char *issuer);

/* --- issue and attenuate --- */

/*
 * What hyb_token_issue writes into block 0.  Initialise with
 * hyb_token_issue_opts_init(); members beyond `size` read as 0.
 */
typedef struct hyb_token_issue_opts {
        size_t size;                    /* sizeof(hyb_token_issue_opts) */
        const char *iss;                /* issuer name (required) */
        const char *sub;                /* the principal (required) */
        const char *const *aud;         /* audiences (at least one) */
        size_t n_aud;
        const hyb_key *holder;          /* the holder's public key, written as cnf.jwk (required) */
        const hyb_token_cap *caps;      /* 1 to 32 capabilities */
        size_t n_caps;
        int64_t now;                    /* iat and nbf, Unix seconds; 0: the current time */
        uint64_t ttl_s;                 /* exp = now + ttl_s; 0: HYB_TOKEN_DEFAULT_TTL_S */
        unsigned dlg;                   /* attenuation blocks that may follow (0 to 3) */
        uint64_t epo;                   /* revocation epoch */
} hyb_token_issue_opts;

/*
 * Initialises the `size` bytes at opts, the struct as the caller's header declares it
 * (sizeof *opts where it is compiled): stamps `size` and zeroes the rest.
 * Nothing beyond `size` is written; nothing at all for NULL or a size too small to hold
 * the size member.  Call it through the macro hyb_token_issue_opts_init(opts) below.
 */
HYB_EXPORT void hyb_token_issue_opts_init_sized(hyb_token_issue_opts *opts, size_t size);
/*
 * Deprecated: the symbol of programs built before hyb_token_issue_opts_init_sized.  It
 * cannot know the caller's size and writes this library's sizeof(hyb_token_issue_opts).
 * In source, hyb_token_issue_opts_init(opts) is this macro, which passes the caller's size.
 */
HYB_EXPORT void hyb_token_issue_opts_init(hyb_token_issue_opts *opts);
#define hyb_token_issue_opts_init(opts) hyb_token_issue_opts_init_sized((opts), sizeof *(opts))

/*
 * Issues a one-block token signed by issuer (a key pair), with a fresh
 * random `jti`.  *ret_token gets the token text, NUL-terminated (free with
 * hyb_free()).  Errors: -EINVAL (a missing member, a resource that is not a
 * canonical fURI pattern, no action, dlg over 3; the message says which),
 * -ENOKEY (issuer has no private part), HYB_E_LIMIT (the token would exceed
 * HYB_TOKEN_MAX_SIZE), -ENOMEM.
 */
HYB_EXPORT int hyb_token_issue(const hyb_key *issuer, const hyb_token_issue_opts *opts,
                               char **ret_token, hyb_error *reterr);

/* What hyb_token_attenuate writes into the new block.  Zero members are "keep the parent's". */
typedef struct hyb_token_attenuate_opts {
        size_t size;                    /* sizeof(hyb_token_attenuate_opts) */
        const hyb_key *holder;          /* the new holder's public key (required) */
        const hyb_token_cap *caps;      /* narrower capabilities, or none */
        size_t n_caps;
        const char *const *aud;         /* narrower audiences, or none */
        size_t n_aud;
        int64_t now;                    /* iat (and nbf); 0: the current time */
        uint64_t ttl_s;                 /* exp = now + ttl_s; 0: no exp of its own */
} hyb_token_attenuate_opts;

/*
 * Initialises the `size` bytes at opts, the struct as the caller's header declares it
 * (sizeof *opts where it is compiled): stamps `size` and zeroes the rest.
 * Nothing beyond `size` is written; nothing at all for NULL or a size too small to hold
 * the size member.  Call it through the macro hyb_token_attenuate_opts_init(opts) below.
 */
HYB_EXPORT void hyb_token_attenuate_opts_init_sized(hyb_token_attenuate_opts *opts, size_t size);
/*
 * Deprecated: the symbol of programs built before hyb_token_attenuate_opts_init_sized.  It
 * cannot know the caller's size and writes this library's sizeof(hyb_token_attenuate_opts).
 * In source, hyb_token_attenuate_opts_init(opts) is this macro, which passes the caller's size.
 */
HYB_EXPORT void hyb_token_attenuate_opts_init(hyb_token_attenuate_opts *opts);
#define hyb_token_attenuate_opts_init(opts) \
        hyb_token_attenuate_opts_init_sized((opts), sizeof *(opts))

/*
 * Appends an attenuation block to token, signed by holder_key: the key pair
 * of the token's current holder (the last block's cnf).  The block names the
 * SHA-256 of the previous block's signature (`prv`) and the new holder.  The
 * block can only narrow: verifiers intersect it with the blocks before it.
 * *ret_token gets the longer token (free with hyb_free()).  Errors:
 * HYB_E_UNAUTHORIZED (token cannot be decoded), -EPERM (holder_key is not
 * the current holder, or no delegation is left: `dlg`), HYB_E_LIMIT (too
 * many blocks or bytes), -EINVAL, -ENOKEY, -ENOMEM.  The token is not
 * verified against a trust store: that is the verifier's job.
 */
HYB_EXPORT int hyb_token_attenuate(const char *token, const hyb_key *holder_key,
                                   const hyb_token_attenuate_opts *opts, char **ret_token,
                                   hyb_error *reterr);

/*
 * Every block's header and claims, UNVERIFIED, as one JSON document in
 * *ret_json (free with hyb_free()):
 * `{"verified":false,"blocks":[{"header":{..},"claims":{..}},...]}`.
 * Errors: HYB_E_UNAUTHORIZED when token cannot be decoded (the message says
 * why), -EINVAL, -ENOMEM.
 */
HYB_EXPORT int hyb_token_inspect(const char *token, char **ret_json, hyb_error *reterr);

/* --- verify and authorise --- */

/* The result of a verification (opaque, reference counted, immutable). */
typedef struct hyb_token_result hyb_token_result;

/* What the revocation hook is asked: the handles a revocation entry can name. */
typedef struct hyb_token_ids {
        const char *jti;                /* block 0's token id */
        const char *issuer_kid;         /* thumbprint of the issuer key */
        uint64_t epo;                   /* block 0's epoch */
        size_t n_blocks;
        const char *const *sig_hashes;  /* per block: base64url SHA-256 of its signature */
        const char *const *holder_kids; /* per block: thumbprint of its cnf key */
} hyb_token_ids;

/* > 0: revoked; 0: not revoked; < 0: cannot tell (the token is refused: fail closed). */
typedef int (*hyb_token_revoked_fn)(void *userdata, const hyb_token_ids *ids);

typedef struct hyb_token_verify_opts {
        size_t size;                    /* sizeof(hyb_token_verify_opts) */
        const char *audience;           /* this verifier's id (required) */
        int64_t now;                    /* Unix seconds; 0: the current time */
        uint32_t leeway_s;              /* clock skew; 0: HYB_TOKEN_MAX_LEEWAY_S; at most that */
        uint64_t max_lifetime_s;        /* 0: HYB_TOKEN_DEFAULT_MAX_LIFETIME_S */
        hyb_token_revoked_fn revoked;   /* may be NULL: no revocation check */
        void *userdata;                 /* for revoked */
} hyb_token_verify_opts;

/*
 * Initialises the `size` bytes at opts, the struct as the caller's header declares it
 * (sizeof *opts where it is compiled): stamps `size` and zeroes the rest.
 * Nothing beyond `size` is written; nothing at all for NULL or a size too small to hold
 * the size member.  Call it through the macro hyb_token_verify_opts_init(opts) below.
 */
HYB_EXPORT void hyb_token_verify_opts_init_sized(hyb_token_verify_opts *opts, size_t size);
/*
 * Deprecated: the symbol of programs built before hyb_token_verify_opts_init_sized.  It
 * cannot know the caller's size and writes this library's sizeof(hyb_token_verify_opts).
 * In source, hyb_token_verify_opts_init(opts) is this macro, which passes the caller's size.
 */
HYB_EXPORT void hyb_token_verify_opts_init(hyb_token_verify_opts *opts);
#define hyb_token_verify_opts_init(opts) hyb_token_verify_opts_init_sized((opts), sizeof *(opts))

/*
 * Verifies token completely, in the order of doc/token.md "Verification":
 * size and charset, strict base64url, header templates, signatures (block 0
 * by the key trust holds for its `iss`, whose thumbprint must be its `kid`;
 * block i by block i-1's holder key), claims, times, audience, delegation
 * depth, lifetime cap, revocation.  On success *ret (caller's reference) gets
 * the result.  Every failure is HYB_E_UNAUTHORIZED with the reason in reterr;
 * also -EINVAL (arguments) and -ENOMEM.
 */
HYB_EXPORT int hyb_token_verify(const char *token, const hyb_token_trust *trust,
                                const hyb_token_verify_opts *opts, hyb_token_result **ret,
                                hyb_error *reterr);

HYB_EXPORT hyb_token_result *hyb_token_result_ref(const hyb_token_result *result);
/* Drops a reference; returns NULL; NULL is a no-op. */
HYB_EXPORT hyb_token_result *hyb_token_result_unref(hyb_token_result *result);

/* Borrowed strings, valid while result lives; NULL for a NULL result. */
HYB_EXPORT const char *hyb_token_result_get_sub(const hyb_token_result *result);
HYB_EXPORT const char *hyb_token_result_get_iss(const hyb_token_result *result);
HYB_EXPORT const char *hyb_token_result_get_jti(const hyb_token_result *result);
/* The thumbprint of the last holder key (who must prove possession). */
HYB_EXPORT const char *hyb_token_result_get_holder_kid(const hyb_token_result *result);
/* The last holder's public key, borrowed. */
HYB_EXPORT const hyb_key *hyb_token_result_get_holder(const hyb_token_result *result);
/* The effective expiry (the earliest exp of the blocks), Unix seconds; 0 for NULL. */
HYB_EXPORT int64_t hyb_token_result_get_exp(const hyb_token_result *result);
/* Number of blocks of the verified token. */
HYB_EXPORT unsigned hyb_token_result_get_n_blocks(const hyb_token_result *result);
/* Number of effective capabilities (after intersecting the blocks). */
HYB_EXPORT size_t hyb_token_result_get_n_caps(const hyb_token_result *result);
/*
 * The i-th effective capability: *ret_resource (borrowed canonical pattern)
 * and *ret_actions.  0, or -ERANGE / -EINVAL.
 */
HYB_EXPORT int hyb_token_result_get_cap(const hyb_token_result *result, size_t i,
                                        const char **ret_resource, unsigned *ret_actions);
/*
 * `{"sub":..,"exp":..,"holder":<kid>,"cap":[{"resource":..,"actions":[..]},..]}`
 * in *ret_json (free with hyb_free()).  0, -EINVAL, -ENOMEM.
 */
HYB_EXPORT int hyb_token_result_to_json(const hyb_token_result *result, char **ret_json);

/*
 * Authorisation: true when every action of `actions` is granted on resource
 * by one effective capability whose pattern covers it.  resource may be a
 * pattern: it is allowed only when it lies within a granted pattern (a
 * subscription to home/# is not covered by home/+/temp).  Bus names are
 * bus://host/app/runner/name, lower-cased.  Segments that decode to `.`,
 * `..` or hold a `/` are never allowed.  No allocation, no signature check:
 * this is the per-operation check on a cached result.  false for NULLs.
 */
HYB_EXPORT bool hyb_token_allowed(const hyb_token_result *result, const hyb_furi *resource,
                                  unsigned actions);
/*
 * As hyb_token_allowed on text (parsed and lower-cased when it is a bus://
 * name; text that is not a canonical fURI is not allowed).  1 allowed,
 * 0 not, -EINVAL.
 */
HYB_EXPORT int hyb_token_allowed_str(const hyb_token_result *result, const char *resource,
                                     unsigned actions);

/* ------------------------------------------------------------------ feed */

/*
 * The revocation feed (doc/token.md "Revocation feed").  An entry is one JWS
 * compact block, header exactly {"alg":"ES256","typ":"hyb-rev+jwt","kid":K}
 * with K the thumbprint of a key in the trust store, and claims
 * {"v":1,"seq":N,"iat":T} plus at least one of "jti" (a token id),
 * "sig_hash" (base64url SHA-256 of one block's signature), "holder" (a holder
 * key thumbprint), "issuer" (an issuer key thumbprint), "min_epo" (tokens of
 * the signing issuer whose `epo` is below it).  Sequence numbers start at 1
 * and grow by one: a feed applies entry last+1 only.
 */

typedef struct hyb_token_feed hyb_token_feed;

/* What hyb_token_feed_entry_make writes.  Initialise with hyb_token_feed_rev_init(). */
typedef struct hyb_token_feed_rev {
        size_t size;                    /* sizeof(hyb_token_feed_rev) */
        uint64_t seq;                   /* 1 .. 2^53-1 (required) */
        int64_t now;                    /* iat, Unix seconds; 0: the current time */
        const char *jti;                /* each of these may be NULL; at least one */
        const char *sig_hash;           /* member or min_epo must be given */
        const char *holder_kid;
        const char *issuer_kid;
        uint64_t min_epo;               /* 0: none */
} hyb_token_feed_rev;

/*
 * Initialises the `size` bytes at rev, the struct as the caller's header declares it
 * (sizeof *rev where it is compiled): stamps `size` and zeroes the rest.
 * Nothing beyond `size` is written; nothing at all for NULL or a size too small to hold
 * the size member.  Call it through the macro hyb_token_feed_rev_init(rev) below.
 */
HYB_EXPORT void hyb_token_feed_rev_init_sized(hyb_token_feed_rev *rev, size_t size);
/*
 * Deprecated: the symbol of programs built before hyb_token_feed_rev_init_sized.  It
 * cannot know the caller's size and writes this library's sizeof(hyb_token_feed_rev).
 * In source, hyb_token_feed_rev_init(rev) is this macro, which passes the caller's size.
 */
HYB_EXPORT void hyb_token_feed_rev_init(hyb_token_feed_rev *rev);
#define hyb_token_feed_rev_init(rev) hyb_token_feed_rev_init_sized((rev), sizeof *(rev))

/*
 * Signs a feed entry with issuer (a key pair whose public part verifiers
 * trust).  *ret_entry gets the entry text, NUL-terminated (free with
 * hyb_free()).  -EINVAL (seq 0, nothing named, a string that is empty or
 * over 256 bytes or not base64url where a thumbprint or hash is expected;
 * the message says which), -ENOKEY, -ENOMEM.
 */
HYB_EXPORT int hyb_token_feed_entry_make(const hyb_key *issuer, const hyb_token_feed_rev *rev,
                                         char **ret_entry, hyb_error *reterr);

/*
 * Verifies an entry against trust, as strictly as a token (size, charset,
 * strict base64url, header template, signature by the trusted key its kid
 * names, then the claims: exactly the members above, typed) and gives its
 * content as JSON in *ret_json (free with hyb_free(); may be NULL):
 * {"seq":..,"iat":..,"iss":<issuer name>,"kid":..,<the members named>}.
 * Every failure is HYB_E_UNAUTHORIZED with the reason in reterr; -EINVAL,
 * -ENOMEM.
 */
HYB_EXPORT int hyb_token_feed_entry_verify(const char *entry, const hyb_token_trust *trust,
                                           char **ret_json, hyb_error *reterr);

/* What hyb_token_feed_apply did with an entry. */
typedef enum hyb_token_feed_result {
        HYB_TOKEN_FEED_APPLIED = 0,     /* seq was last+1: applied, the head moved */
        HYB_TOKEN_FEED_OLD = 1,         /* seq <= last: a replay or a rollback, ignored */
        HYB_TOKEN_FEED_GAP = 2,         /* seq > last+1: not applied; fetch last+1.. first */
} hyb_token_feed_result;

/*
 * A new empty feed trusting the issuers of trust (a reference is taken).
 * *ret gets the caller's reference.  0, -EINVAL, -ENOMEM.  A feed may be used
 * from several threads (an internal lock).
 */
HYB_EXPORT int hyb_token_feed_new(const hyb_token_trust *trust, hyb_token_feed **ret);
HYB_EXPORT hyb_token_feed *hyb_token_feed_ref(const hyb_token_feed *feed);
/* Drops a reference (the last one frees the feed); returns NULL; NULL is a no-op. */
HYB_EXPORT hyb_token_feed *hyb_token_feed_unref(hyb_token_feed *feed);

/*
 * Offers an entry: verified (hyb_token_feed_entry_verify), then judged by its
 * seq.  Returns HYB_TOKEN_FEED_APPLIED, _OLD or _GAP (>= 0), or
 * HYB_E_UNAUTHORIZED for an entry that does not verify (nothing changes;
 * the reason in reterr), -EINVAL, -ENOMEM.  An applied entry is written to
 * the attached store, if any, before it takes effect: a store error is
 * returned and the entry is not applied.  *ret_seq (may be NULL) gets the
 * entry's seq whenever it verified.
 */
HYB_EXPORT int hyb_token_feed_apply(hyb_token_feed *feed, const char *entry, uint64_t *ret_seq,
                                    hyb_error *reterr);

/* The seq of the last applied entry (the head); 0 for an empty feed or NULL. */
HYB_EXPORT uint64_t hyb_token_feed_get_seq(const hyb_token_feed *feed);

/*
 * The applied entry seq (1 .. head): a copy of its text in *ret_entry and of
 * its content in *ret_json, as hyb_token_feed_entry_verify gives it (free
 * each with hyb_free(); either pointer may be NULL, not both).  0, -ENOENT
 * (no such entry), -EINVAL, -ENOMEM.
 */
HYB_EXPORT int hyb_token_feed_get_entry(const hyb_token_feed *feed, uint64_t seq,
                                        char **ret_entry, char **ret_json);

/*
 * The revocation check, of the type hyb_token_revoked_fn: pass it as
 * hyb_token_verify_opts.revoked with the feed as userdata.  1 when an applied
 * entry names ids->jti, any of ids->sig_hashes or ids->holder_kids, or
 * ids->issuer_kid, or when an entry signed by the key ids->issuer_kid has a
 * min_epo above ids->epo; else 0; -EINVAL for NULLs (fail closed).  Hash
 * lookups, no signature check.
 */
HYB_EXPORT int hyb_token_feed_revoked(void *feed, const hyb_token_ids *ids);

/*
 * Persists the feed in st under the branch /sys/token/feed/ (entry seq at
 * /sys/token/feed/<seq>, its text as a str) and loads what is stored there:
 * entries 1, 2, ... are applied (verified again) until the first one
 * missing.  Afterwards every applied entry is written there (a reference to
 * st is kept).  0, HYB_E_UNAUTHORIZED (a stored entry no longer verifies:
 * the load stops before it, the reason in reterr), store errors, -EBUSY (a
 * store is attached already), -EINVAL.
 */
HYB_EXPORT int hyb_token_feed_attach_store(hyb_token_feed *feed, hyb_store *st,
                                           hyb_error *reterr);

/* ---------------------------------------------------------- identity log */

/*
 * The identity log (doc/token.md "Identity log"): an append-only table
 * `identity_log` in an SQLite file, one row per enroll, rotate, grant or
 * revoke.  Each row holds the base64url SHA-256 of its canonical text (which
 * includes the previous row's hash, `prev`) and the issuer's ES256 signature
 * of that text, so rewriting history needs the issuer's private key and
 * breaks the chain after the rewritten row.  Dropping the newest rows leaves
 * a valid shorter log: each append also records the head (seq and hash) in a
 * witness file, <path>.head, which hyb_token_log_verify compares, as it does
 * a head the caller kept elsewhere.
 */

/* One row, as hyb_token_log_read hands it out (strings borrowed for the callback). */
typedef struct hyb_token_log_row {
        uint64_t seq;                   /* 1, 2, ... */
        int64_t at;                     /* Unix seconds */
        const char *kind;               /* "enroll", "rotate", "grant" or "revoke" */
        const char *subject;            /* who or what: a user, device, key id, token id */
        const char *detail;             /* free text, "" when none */
        const char *issuer_kid;         /* thumbprint of the signing key */
        const char *prev;               /* hash of the row before, "" for row 1 */
        const char *hash;               /* hash of this row's canonical text */
} hyb_token_log_row;

/*
 * Appends a row signed by issuer (a key pair) to the log at path (created
 * when missing) in one SQLite transaction, then replaces the witness
 * <path>.head with "SEQ:HASH\n" of that row (a temporary file, synced and
 * renamed).  now 0: the current time.  *ret_seq (may be NULL) gets the row's
 * seq.  -EINVAL (unknown kind, empty or over-long subject, detail over 1 KiB),
 * -ENOKEY, HYB_E_DATABASE (the message names the file), HYB_E_CORRUPT (the
 * last row has no hash), -ENOMEM; -errno when the row is in the log but the
 * witness could not be written (the message says so; *ret_seq is set).
 */
HYB_EXPORT int hyb_token_log_append(const char *path, const hyb_key *issuer, const char *kind,
                                    const char *subject, const char *detail, int64_t now,
                                    uint64_t *ret_seq, hyb_error *reterr);

/* Called per row in seq order; a non-zero return stops the read and is returned. */
typedef int (*hyb_token_log_each_fn)(const hyb_token_log_row *row, void *userdata);

/*
 * Reads the log at path (read-only), calling fn (may be NULL) for each row.
 * With trust (may be NULL: no check) every row is checked before fn sees it:
 * seq 1, 2, ... without holes, prev equal to the hash of the row before, the
 * hash recomputed from the columns, the signature by the trusted key named
 * by issuer_kid.  0, HYB_E_CORRUPT at the first row that fails (the message
 * says which and why), HYB_E_DATABASE (cannot open, not a log), -EINVAL.
 */
HYB_EXPORT int hyb_token_log_read(const char *path, const hyb_token_trust *trust,
                                  hyb_token_log_each_fn fn, void *userdata, hyb_error *reterr);

/*
 * Checks the log at path like hyb_token_log_read with trust (required), and
 * then that it still holds the heads it should: the one its witness
 * <path>.head names (when that file exists) and head (may be NULL), a
 * "SEQ:HASH" the caller remembered (a row's seq and its hash, as
 * hyb_token_log_read gives them).  A head past the last row means rows were
 * removed from the end; a head whose row has another hash means rows were
 * removed and others appended.  Neither source can tell when the log and
 * its witness were rolled back together (restored from an older copy): only
 * a head kept elsewhere can.  0, HYB_E_CORRUPT (the message says which check
 * failed: a row, or a head and where it came from), HYB_E_DATABASE, -EINVAL
 * (head is not SEQ:HASH), -ENOMEM.
 */
HYB_EXPORT int hyb_token_log_verify(const char *path, const hyb_token_trust *trust,
                                    const char *head, hyb_error *reterr);

#ifdef __cplusplus
}
#endif

#endif
