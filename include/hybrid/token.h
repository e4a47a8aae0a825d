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

#ifdef __cplusplus
}
#endif

#endif
