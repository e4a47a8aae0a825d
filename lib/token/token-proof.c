/* SPDX-License-Identifier: MIT */
/* The proof of possession of the connect handshake: see proof.h for the exact bytes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "crypto.h"
#include "proof.h"

void token_binding_unix(uid_t uid, char out[TOKEN_BINDING_MAX])
{
        snprintf(out, TOKEN_BINDING_MAX, "unix-uid:%u", (unsigned)uid);
}

int token_proof_transcript(const char *audience, const uint8_t nb[TOKEN_NONCE_LEN],
                           const uint8_t nc[TOKEN_NONCE_LEN], const char *token, size_t token_len,
                           const char *binding, uint8_t out[32])
{
        static const char label[] = TOKEN_PROOF_LABEL; /* with its NUL */
        size_t al, bl;
        uint8_t alen[2], blen[2], th[CRYPTO_SHA256_LEN];

        if (!audience || !nb || !nc || !token || !binding || !out)
                return -EINVAL;
        al = strlen(audience);
        bl = strlen(binding);
        if (al > 0xffff || bl > 0xffff)
                return -EINVAL;
        alen[0] = (uint8_t)(al >> 8);
        alen[1] = (uint8_t)al;
        blen[0] = (uint8_t)(bl >> 8);
        blen[1] = (uint8_t)bl;
        crypto_sha256(token, token_len, th);
        const void *parts[] = {label, alen, audience, nb, nc, th, blen, binding};
        const size_t lens[] = {sizeof label,    2,         al, TOKEN_NONCE_LEN,
                               TOKEN_NONCE_LEN, sizeof th, 2,  bl};
        crypto_sha256_parts(parts, lens, sizeof lens / sizeof lens[0], out);
        return 0;
}

int token_proof_sign(const hyb_key *holder, const uint8_t transcript[32],
                     char out[TOKEN_PROOF_B64_LEN + 1])
{
        uint8_t sig[HYB_KEY_SIGNATURE_SIZE];
        int r;

        r = hyb_key_sign(holder, transcript, 32, sig);
        if (r < 0)
                return r;
        out[b64u_encode_to(sig, sizeof sig, out)] = '\0';
        return 0;
}

int token_proof_verify(const hyb_key *holder, const uint8_t transcript[32], const char *proof,
                       size_t proof_len)
{
        uint8_t sig[HYB_KEY_SIGNATURE_SIZE];
        size_t n = 0;

        if (!holder || !proof || proof_len != TOKEN_PROOF_B64_LEN ||
            b64u_decode_to(proof, proof_len, sig, sizeof sig, &n) < 0 || n != sizeof sig)
                return HYB_E_UNAUTHORIZED;
        if (hyb_key_verify(holder, transcript, 32, sig, sizeof sig) < 0)
                return HYB_E_UNAUTHORIZED;
        return 0;
}

int token_nonce_from_hex(const char *hex, size_t len, uint8_t out[TOKEN_NONCE_LEN])
{
        if (!hex || len != 2 * TOKEN_NONCE_LEN)
                return -EINVAL;
        for (size_t i = 0; i < TOKEN_NONCE_LEN; i++) {
                int h = hex_digit(hex[2 * i]), l = hex_digit(hex[2 * i + 1]);

                if (h < 0 || l < 0)
                        return -EINVAL;
                out[i] = (uint8_t)(h << 4 | l);
        }
        return 0;
}

void token_nonce_to_hex(const uint8_t n[TOKEN_NONCE_LEN], char out[2 * TOKEN_NONCE_LEN + 1])
{
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < TOKEN_NONCE_LEN; i++) {
                out[2 * i] = digits[n[i] >> 4];
                out[2 * i + 1] = digits[n[i] & 15];
        }
        out[2 * TOKEN_NONCE_LEN] = '\0';
}
