/* SPDX-License-Identifier: MIT */
/*
 * Token verification in three stages, so that its signature checks can run on
 * other threads and at the same time (the daemon's connect, lib/broker/auth-pool.c):
 *
 *   token_staged_new     on the caller's thread: everything that needs no signature
 *                        (size, base64url, headers, block 0's key by its kid), and each
 *                        block's cnf key read in advance: the key that signs the next
 *                        block, and the last one the holder who signs the proof
 *   token_staged_check   signature i (0 <= i < token_staged_n_sigs), on any thread: it only
 *                        reads the stage's immutable parts and writes its own result slot;
 *                        different i may run at the same time
 *   token_staged_finish  on the caller's thread, after every check returned (the caller
 *                        orders the results, a mutex or a join): the verification of
 *                        token-verify.c in its order (doc/token.md "Verification") with the
 *                        results: a signature not checked or not good is "bad signature"
 *                        at its block, claims are judged only behind a good signature,
 *                        then policy and the revocation hook (called on this thread)
 *
 * hyb_token_verify is these three in sequence: one code path, one set of reasons.
 */
#ifndef HYB_TOKEN_STAGED_H
#define HYB_TOKEN_STAGED_H

#include <stdbool.h>
#include <stddef.h>

#include "hybrid/token.h"

typedef struct token_staged token_staged;

/*
 * Stage 1 for the token text[0..len) (copied) against trust (the keys it needs are
 * referenced until the stage is freed).
 * 0 with *ret, or HYB_E_UNAUTHORIZED (reason in e) for a token refused before any
 * signature (malformed, unknown kid), -ENOMEM.
 */
int token_staged_new(const char *text, size_t len, const hyb_token_trust *trust,
                     token_staged **ret, hyb_error *e);

/* The number of signature checks (one per block). */
size_t token_staged_n_sigs(const token_staged *s);

/* Runs signature check i; thread-safe against other i (see above). */
void token_staged_check(token_staged *s, size_t i);

/*
 * Signature check i as a split verification (lib/token/crypto.h, p256_split: its two
 * multiplications on two threads): 0 with *ret (the caller runs its parts, then reports
 * p256_split_finish's verdict with token_staged_set_check and frees it); HYB_E_AUTH when
 * the check fails without a multiplication (no signer key, a signature out of range:
 * the result is set already), -ENOMEM.  Instead of token_staged_check(s, i), with its
 * thread-safety.
 */
struct p256_split;
int token_staged_split(token_staged *s, size_t i, struct p256_split **ret);
void token_staged_set_check(token_staged *s, size_t i, bool ok);

/* The last block's cnf key as read in advance (borrowed), or NULL when it could not be read
 * (finish then refuses the token). */
const hyb_key *token_staged_holder(const token_staged *s);

/*
 * Stage 3 against trust and opts (as hyb_token_verify): 0 with a new result in *ret, or
 * HYB_E_UNAUTHORIZED with the reason in e, -ENOMEM.  The result's holder is
 * token_staged_holder's key (the same public key).
 */
int token_staged_finish(token_staged *s, const hyb_token_trust *trust,
                        const hyb_token_verify_opts *opts, hyb_token_result **ret, hyb_error *e);

/* Frees s (NULL is a no-op); NULL. */
token_staged *token_staged_free(token_staged *s);

#endif
