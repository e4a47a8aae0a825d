/* SPDX-License-Identifier: MIT */
/*
 * The one internal crypto layer of libhybrid.  Only crypto.c includes mbedTLS
 * (2.28) headers; everything else (keys, tokens, the broker's handshake) goes
 * through these functions, so mbedTLS 3.x or another library can replace it
 * in one file.
 *
 * Everything is P-256 / SHA-256 / ES256 (RFC 7518 section 3.4): signatures are
 * raw r||s, 64 bytes big-endian, never DER; we only make and only accept
 * low-S signatures (s <= n/2).  Public points are the uncompressed SEC1 form
 * (0x04 || X || Y, 65 bytes).
 *
 * Return values follow the library: 0 success, < 0 a -errno or HYB_E_*.
 * A verification failure of any kind is HYB_E_AUTH (one code: callers must
 * not leak which check failed to a peer).
 */
#ifndef HYB_TOKEN_CRYPTO_H
#define HYB_TOKEN_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hybrid/common.h"

enum {
        CRYPTO_SHA256_LEN = 32,
        P256_SCALAR_LEN = 32, /* private scalar d, big-endian */
        P256_PUB_LEN = 65,    /* 0x04 || X || Y */
        P256_SIG_LEN = 64,    /* r || s */
};

/* --- randomness, hashing, comparison ------------------------------------ */

/* Fills buf with n bytes from the kernel CSPRNG (getrandom).  0 or -errno. */
int crypto_random(void *buf, size_t n);

/* out = SHA-256(data[0..n)). */
void crypto_sha256(const void *data, size_t n, uint8_t out[CRYPTO_SHA256_LEN]);

/*
 * out = SHA-256 over the concatenation of n_parts buffers (parts[i], lens[i]):
 * for hashes over several pieces (the handshake transcript) without copying.
 */
void crypto_sha256_parts(const void *const *parts, const size_t *lens, size_t n_parts,
                         uint8_t out[CRYPTO_SHA256_LEN]);

/*
 * out = HMAC-SHA256 (RFC 2104) with key[0..key_len) over the concatenation of n_parts
 * buffers (parts[i], lens[i]).  0, or -ENOMEM (-EINVAL for an empty key).
 */
int crypto_hmac_sha256_parts(const void *key, size_t key_len, const void *const *parts,
                             const size_t *lens, size_t n_parts, uint8_t out[CRYPTO_SHA256_LEN]);

/* true when a and b hold the same n bytes; the time taken does not depend on the contents. */
bool crypto_memeq(const void *a, const void *b, size_t n);

/* Clears n bytes at p in a way the compiler cannot drop (secrets before free). */
void crypto_zero(void *p, size_t n);

/* --- base64url (RFC 4648 section 5), strict ----------------------------- */

/* Characters b64u_encode writes for n bytes (no padding, no NUL). */
size_t b64u_encoded_len(size_t n);

/*
 * Encodes n bytes to base64url without padding into out, which must hold
 * b64u_encoded_len(n) + 1 bytes (a NUL is written).  Returns the length.
 */
size_t b64u_encode_to(const void *in, size_t n, char *out);

/* As b64u_encode_to into a new NUL-terminated string (free with free()).  0 or -ENOMEM. */
int b64u_encode(const void *in, size_t n, char **ret);

/*
 * Decodes len characters of strict base64url: only A-Z a-z 0-9 - _, no
 * padding, no whitespace, a length that is not 1 mod 4, and canonical (the
 * unused low bits of the last character are zero: exactly one text encodes a
 * byte string).  Writes at most out_size bytes to out; *ret_len gets the
 * decoded length.  Errors: HYB_E_PARSE (not strict base64url), HYB_E_LIMIT
 * (the result does not fit out_size).  out may be NULL with out_size 0 to
 * validate and measure only.
 */
int b64u_decode_to(const char *in, size_t len, uint8_t *out, size_t out_size, size_t *ret_len);

/* As b64u_decode_to into a new buffer (free with free()); *ret_len gets its length.
 * HYB_E_PARSE or -ENOMEM. */
int b64u_decode(const char *in, size_t len, uint8_t **ret, size_t *ret_len);

/* --- P-256 keys ---------------------------------------------------------- */

/* A P-256 key pair or public key (opaque; the private scalar is zeroised on free). */
typedef struct p256_key p256_key;

/* Generates a key pair from the CSPRNG.  0, -ENOMEM or HYB_E_INTERNAL. */
int p256_generate(p256_key **ret);

/*
 * A key pair from its private scalar d (big-endian, 32 bytes); the public
 * point is computed.  HYB_E_PARSE when d is 0 or >= n.  When pub is not NULL
 * (a file stored the public point as well) it must be the point of d, else
 * HYB_E_PARSE.
 */
int p256_from_private(const uint8_t d[P256_SCALAR_LEN], const uint8_t *pub, p256_key **ret);

/*
 * A public key from an uncompressed point (65 bytes, 0x04 || X || Y).
 * HYB_E_PARSE for any other length or form (compressed, the point at
 * infinity), coordinates >= p, or a point that is not on the curve.
 */
int p256_from_public(const uint8_t *pub, size_t len, p256_key **ret);

/* Frees (zeroising the private scalar).  NULL is a no-op. */
void p256_free(p256_key *k);

/* A copy of k, private part included when there is one.  0 or -ENOMEM. */
int p256_dup(const p256_key *k, p256_key **ret);

bool p256_has_private(const p256_key *k);

/* The uncompressed public point. */
void p256_get_public(const p256_key *k, uint8_t out[P256_PUB_LEN]);

/* The private scalar (caller zeroises it after use).  0, or -ENOKEY for a public key. */
int p256_get_private(const p256_key *k, uint8_t out[P256_SCALAR_LEN]);

/* true when both keys have the same public point. */
bool p256_public_equal(const p256_key *a, const p256_key *b);

/*
 * ES256 signature of a SHA-256 hash: deterministic (RFC 6979), raw r||s,
 * normalised to low-S.  0, -ENOKEY (public key only) or HYB_E_INTERNAL.
 */
int p256_sign_hash(const p256_key *k, const uint8_t hash[CRYPTO_SHA256_LEN],
                   uint8_t sig[P256_SIG_LEN]);

/*
 * Verifies a raw r||s signature over a SHA-256 hash.  0 when valid;
 * HYB_E_AUTH for everything else: sig_len != 64 (DER and other forms),
 * r or s zero or >= n, s > n/2 (high-S), or a signature that does not verify.
 * The calling thread keeps a table of multiples of each of the last 16 keys it
 * verified with (about 2.5 KiB each, freed when the thread exits): the second and
 * later verifications with a key take about 37 % fewer instructions.
 */
int p256_verify_hash(const p256_key *k, const uint8_t hash[CRYPTO_SHA256_LEN],
                     const uint8_t *sig, size_t sig_len);

/*
 * The ECDSA check of a raw r||s signature alone, without the low-S rule of
 * p256_verify_hash (any 1 <= s < n): 0 when valid, HYB_E_AUTH otherwise (as
 * p256_verify_hash for sig_len, r or s out of range, an invalid key point).
 * by_table true takes p256_verify_hash's path (this thread's kept table of
 * multiples of the key, made on first use), false mbedtls_ecdsa_verify.  Both
 * must agree on every input: for the tests and the fuzz target that check it.
 */
int p256_ecdsa_check(const p256_key *k, const uint8_t hash[CRYPTO_SHA256_LEN],
                     const uint8_t *sig, size_t sig_len, bool by_table);

/*
 * One verification of p256_verify_hash in parts, so that its two scalar multiplications
 * (SEC1 4.1.4: u1 G and u2 Q) can run on two threads at the same time:
 *
 *   p256_split_new    on any thread: the checks that need no multiplication (sig_len,
 *                     1 <= r, s < n, and with low_s s <= n/2); HYB_E_AUTH when they fail
 *                     (the verdict: no parts to run), -ENOMEM
 *   p256_split_run    part P256_SPLIT_Q (u2 Q, from the running thread's kept table of the
 *                     key, made on first use: the costly part for a key not seen) or
 *                     P256_SPLIT_G (u1 G); each part once, on any thread; the two parts may
 *                     run at the same time (each writes only its own half)
 *   p256_split_finish after both parts returned (the caller orders them, a mutex or a
 *                     join): 0 when the signature is valid, HYB_E_AUTH otherwise (a part
 *                     that failed or did not run included: fail closed)
 *
 * The verdict is p256_verify_hash's (low_s true) or p256_ecdsa_check's (false) on every
 * input (tests/token/test_crypto.c and the ecdsa fuzz target compare them).  k is copied.
 */
typedef struct p256_split p256_split;
enum { P256_SPLIT_Q = 0, P256_SPLIT_G = 1 };
int p256_split_new(const p256_key *k, const uint8_t hash[CRYPTO_SHA256_LEN], const uint8_t *sig,
                   size_t sig_len, bool low_s, p256_split **ret);
void p256_split_run(p256_split *s, unsigned part);
int p256_split_finish(const p256_split *s);
/* Frees s; NULL is a no-op. */
void p256_split_free(p256_split *s);

/* How many key tables the calling thread keeps (at most 16; for the tests). */
size_t p256_key_tables(void);

/* --- key files (PEM / DER) ------------------------------------------------ */

/*
 * Parses a key from PEM text (len bytes; need not be NUL-terminated):
 * PKCS#8 `BEGIN PRIVATE KEY`, SEC1 `BEGIN EC PRIVATE KEY` (an `EC PARAMETERS`
 * block before it is skipped) or SubjectPublicKeyInfo `BEGIN PUBLIC KEY`.
 * Errors (with a message in *reterr): HYB_E_PARSE (not a key we can read,
 * encrypted keys included), HYB_E_NOT_ACCEPTABLE (a valid key that is not
 * P-256: RSA, P-384, ...; the message names what it is), -ENOMEM.
 */
int p256_parse_pem(const char *data, size_t len, p256_key **ret, hyb_error *reterr);

/* The private key as PKCS#8 PEM (`BEGIN PRIVATE KEY`), a new string (free()).
 * 0, -ENOKEY (public key only), -ENOMEM or HYB_E_INTERNAL. */
int p256_write_pem_private(const p256_key *k, char **ret);

/* The public key as SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`), a new string (free()). */
int p256_write_pem_public(const p256_key *k, char **ret);

#endif
