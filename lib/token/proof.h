/* SPDX-License-Identifier: MIT */
/*
 * The proof of possession of the connect handshake (doc/token.md "Handshake",
 * doc/protocol.md "Handshake"), shared by the client (lib/bus) and the broker:
 *
 *   T = SHA-256( "HYBRID-TOKEN-PROOF-1" 0x00
 *                u16be(len A) A                    A: the verifier id (the broker's audience)
 *                Nb (32 bytes)                     the broker's nonce (CHALLENGE)
 *                Nc (32 bytes)                     the client's nonce (AUTH)
 *                SHA-256(token text) (32 bytes)
 *                u16be(len B) B )                  B: the channel binding, "unix-uid:<decimal uid>"
 *   proof = ES256 signature of T (SHA-256 then ECDSA P-256) by the last holder key,
 *           raw r||s (low-S), base64url without padding (86 characters).
 */
#ifndef HYB_TOKEN_PROOF_H
#define HYB_TOKEN_PROOF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hybrid/token.h"

#define TOKEN_PROOF_LABEL "HYBRID-TOKEN-PROOF-1"
enum {
        TOKEN_NONCE_LEN = 32,
        TOKEN_PROOF_B64_LEN = 86,
        TOKEN_BINDING_MAX = 64,
};

/* The channel binding of a Unix socket peer with effective uid uid: "unix-uid:<uid>". */
void token_binding_unix(uid_t uid, char out[TOKEN_BINDING_MAX]);

/* T above into out.  0, or -EINVAL (an audience or binding over 65535 bytes). */
int token_proof_transcript(const char *audience, const uint8_t nb[TOKEN_NONCE_LEN],
                           const uint8_t nc[TOKEN_NONCE_LEN], const char *token, size_t token_len,
                           const char *binding, uint8_t out[32]);

/* The proof text (TOKEN_PROOF_B64_LEN characters and a NUL) by holder (a private key). */
int token_proof_sign(const hyb_key *holder, const uint8_t transcript[32],
                     char out[TOKEN_PROOF_B64_LEN + 1]);

/* 0 when proof (text) is holder's signature of transcript; HYB_E_UNAUTHORIZED otherwise. */
int token_proof_verify(const hyb_key *holder, const uint8_t transcript[32], const char *proof,
                       size_t proof_len);

/* 64 lower- or upper-case hex digits to 32 bytes: 0 or -EINVAL. */
int token_nonce_from_hex(const char *hex, size_t len, uint8_t out[TOKEN_NONCE_LEN]);
void token_nonce_to_hex(const uint8_t n[TOKEN_NONCE_LEN], char out[2 * TOKEN_NONCE_LEN + 1]);

#endif
