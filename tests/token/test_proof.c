/* SPDX-License-Identifier: MIT */
/*
 * The proof of possession of the connect handshake (lib/token/proof.h, doc/token.md
 * "Handshake") on the library, for the spec's attack cases that concern the proof:
 * challenge replay (another connection's broker nonce, another client nonce), the wrong
 * channel binding, the wrong key, another verifier, another token, a proof altered,
 * high-S, zero, DER or padded.  The transcript is rebuilt here from the documented bytes,
 * and the good proof made with the public ES256 signing call, not with token_proof_sign.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid/hybrid.h"
#include "suites.h"
#include "token/crypto.h"
#include "token/proof.h"
#include "token_test.h"

static const char TOKEN[] = "eyJhbGciOiJFUzI1NiJ9.eyJ2IjoxfQ.c2ln";
static const char AUD[] = "hub-a";

typedef struct fixture {
        hyb_key *holder, *other;
        uint8_t nb[TOKEN_NONCE_LEN], nc[TOKEN_NONCE_LEN], t[32];
        char binding[TOKEN_BINDING_MAX];
        char proof[TOKEN_PROOF_B64_LEN + 1];
} fixture;

/* T of doc/token.md, byte by byte. */
static void transcript_by_hand(const char *aud, const uint8_t *nb, const uint8_t *nc,
                               const char *token, const char *binding, uint8_t out[32])
{
        uint8_t buf[512], th[32];
        size_t n = 0, al = strlen(aud), bl = strlen(binding);

        memcpy(buf + n, "HYBRID-TOKEN-PROOF-1\0", 21);
        n += 21;
        buf[n++] = (uint8_t)(al >> 8);
        buf[n++] = (uint8_t)al;
        memcpy(buf + n, aud, al);
        n += al;
        memcpy(buf + n, nb, 32);
        n += 32;
        memcpy(buf + n, nc, 32);
        n += 32;
        crypto_sha256(token, strlen(token), th);
        memcpy(buf + n, th, 32);
        n += 32;
        buf[n++] = (uint8_t)(bl >> 8);
        buf[n++] = (uint8_t)bl;
        memcpy(buf + n, binding, bl);
        n += bl;
        crypto_sha256(buf, n, out);
}

static void setup(fixture *f)
{
        memset(f, 0, sizeof *f);
        ck_assert_int_eq(hyb_key_generate(&f->holder), 0);
        ck_assert_int_eq(hyb_key_generate(&f->other), 0);
        for (int i = 0; i < TOKEN_NONCE_LEN; i++) {
                f->nb[i] = (uint8_t)(i * 7 + 1);
                f->nc[i] = (uint8_t)(255 - i);
        }
        token_binding_unix(1000, f->binding);
        ck_assert_str_eq(f->binding, "unix-uid:1000");
        ck_assert_int_eq(token_proof_transcript(AUD, f->nb, f->nc, TOKEN, strlen(TOKEN), f->binding,
                                                f->t),
                         0);
        ck_assert_int_eq(token_proof_sign(f->holder, f->t, f->proof), 0);
        ck_assert_uint_eq(strlen(f->proof), TOKEN_PROOF_B64_LEN);
}

static void teardown(fixture *f)
{
        hyb_key_unref(f->holder);
        hyb_key_unref(f->other);
}

/* Whether proof verifies for the holder over the transcript of these inputs. */
static int verify_with(fixture *f, const char *aud, const uint8_t *nb, const uint8_t *nc,
                       const char *token, const char *binding, const char *proof)
{
        uint8_t t[32];

        ck_assert_int_eq(
                token_proof_transcript(aud, nb, nc, token, strlen(token), binding, t), 0);
        return token_proof_verify(f->holder, t, proof, strlen(proof));
}

START_TEST(test_transcript_is_the_documented_bytes)
{
        fixture f;
        uint8_t want[32];

        setup(&f);
        transcript_by_hand(AUD, f.nb, f.nc, TOKEN, "unix-uid:1000", want);
        ck_assert(memcmp(want, f.t, 32) == 0);
        teardown(&f);
}
END_TEST

START_TEST(test_proof_by_any_es256_signer)
{
        fixture f;
        uint8_t sig[HYB_KEY_SIGNATURE_SIZE];
        char text[TOKEN_PROOF_B64_LEN + 1];

        setup(&f);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, f.proof, strlen(f.proof)), 0);
        /* the proof is ES256 over T: any ES256 signature of those 32 bytes is one */
        ck_assert_int_eq(hyb_key_sign(f.holder, f.t, 32, sig), 0);
        ck_assert_uint_eq(b64u_encode_to(sig, 64, text), TOKEN_PROOF_B64_LEN);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, text, strlen(text)), 0);
        teardown(&f);
}
END_TEST

START_TEST(test_proof_bound_to_everything)
{
        fixture f;
        uint8_t nb2[TOKEN_NONCE_LEN], nc2[TOKEN_NONCE_LEN];
        char token2[sizeof TOKEN], b0[TOKEN_BINDING_MAX];

        setup(&f);
        memcpy(nb2, f.nb, sizeof nb2);
        nb2[31] ^= 1;
        memcpy(nc2, f.nc, sizeof nc2);
        nc2[0] ^= 0x80;
        memcpy(token2, TOKEN, sizeof TOKEN);
        token2[sizeof TOKEN - 2] = 'm';
        token_binding_unix(0, b0);

        ck_assert_int_eq(verify_with(&f, AUD, f.nb, f.nc, TOKEN, f.binding, f.proof), 0);
        /* replay on another connection: that connection's broker nonce differs */
        ck_assert_int_eq(verify_with(&f, AUD, nb2, f.nc, TOKEN, f.binding, f.proof),
                         HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(verify_with(&f, AUD, f.nb, nc2, TOKEN, f.binding, f.proof),
                         HYB_E_UNAUTHORIZED);
        /* the wrong channel binding: a proof made for uid 1000 shown by uid 0 */
        ck_assert_int_eq(verify_with(&f, AUD, f.nb, f.nc, TOKEN, b0, f.proof), HYB_E_UNAUTHORIZED);
        /* another verifier, another token */
        ck_assert_int_eq(verify_with(&f, "hub-b", f.nb, f.nc, TOKEN, f.binding, f.proof),
                         HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(verify_with(&f, AUD, f.nb, f.nc, token2, f.binding, f.proof),
                         HYB_E_UNAUTHORIZED);
        /* the wrong key */
        ck_assert_int_eq(token_proof_verify(f.other, f.t, f.proof, strlen(f.proof)),
                         HYB_E_UNAUTHORIZED);
        teardown(&f);
}
END_TEST

START_TEST(test_proof_forms)
{
        fixture f;
        uint8_t raw[64], n[32], der[80], zero[64] = { 0 };
        char text[200];
        size_t len;

        setup(&f);
        ck_assert_int_eq(b64u_decode_to(f.proof, strlen(f.proof), raw, sizeof raw, &len), 0);
        ck_assert_uint_eq(len, 64);

        /* every single character changed */
        for (size_t i = 0; i < TOKEN_PROOF_B64_LEN; i++) {
                strcpy(text, f.proof);
                text[i] = text[i] == 'A' ? 'B' : 'A';
                ck_assert_int_eq(token_proof_verify(f.holder, f.t, text, strlen(text)),
                                 HYB_E_UNAUTHORIZED);
        }
        /* high-S: (r, n - s) is valid ECDSA but not the one accepted form */
        uint8_t high[64];
        hex_to_bytes(P256_N_HEX, n, 32);
        memcpy(high, raw, 32);
        be_sub(n, raw + 32, high + 32);
        b64u_encode_to(high, 64, text);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, text, strlen(text)), HYB_E_UNAUTHORIZED);
        /* r = s = 0; s = n */
        b64u_encode_to(zero, 64, text);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, text, strlen(text)), HYB_E_UNAUTHORIZED);
        memcpy(high + 32, n, 32);
        b64u_encode_to(high, 64, text);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, text, strlen(text)), HYB_E_UNAUTHORIZED);
        /* r and s swapped */
        memcpy(high, raw + 32, 32);
        memcpy(high + 32, raw, 32);
        b64u_encode_to(high, 64, text);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, text, strlen(text)), HYB_E_UNAUTHORIZED);
        /* DER instead of raw */
        len = der_signature(raw, der);
        b64u_encode_to(der, len, text);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, text, strlen(text)), HYB_E_UNAUTHORIZED);
        /* padded, truncated, one character more, empty */
        snprintf(text, sizeof text, "%s==", f.proof);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, text, strlen(text)), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, f.proof, TOKEN_PROOF_B64_LEN - 1),
                         HYB_E_UNAUTHORIZED);
        snprintf(text, sizeof text, "%sA", f.proof);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, text, strlen(text)), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(token_proof_verify(f.holder, f.t, "", 0), HYB_E_UNAUTHORIZED);
        teardown(&f);
}
END_TEST

START_TEST(test_nonce_hex)
{
        char hex[2 * TOKEN_NONCE_LEN + 2];
        uint8_t n[TOKEN_NONCE_LEN], back[TOKEN_NONCE_LEN];

        for (int i = 0; i < TOKEN_NONCE_LEN; i++)
                n[i] = (uint8_t)(0xA0 + i);
        token_nonce_to_hex(n, hex);
        ck_assert_uint_eq(strlen(hex), 64);
        ck_assert(strncmp(hex, "a0a1a2", 6) == 0);
        ck_assert_int_eq(token_nonce_from_hex(hex, 64, back), 0);
        ck_assert(memcmp(n, back, sizeof n) == 0);
        hex[0] = 'A';
        ck_assert_int_eq(token_nonce_from_hex(hex, 64, back), 0); /* upper case too */
        ck_assert_int_eq(token_nonce_from_hex(hex, 63, back), -EINVAL);
        strcat(hex, "0");
        ck_assert_int_eq(token_nonce_from_hex(hex, 65, back), -EINVAL);
        hex[10] = 'g';
        ck_assert_int_eq(token_nonce_from_hex(hex, 64, back), -EINVAL);
        hex[10] = ' ';
        ck_assert_int_eq(token_nonce_from_hex(hex, 64, back), -EINVAL);
}
END_TEST

Suite *token_proof_suite(void)
{
        Suite *s = suite_create("token_proof");
        TCase *tc = tcase_create("proof");

        tcase_add_test(tc, test_transcript_is_the_documented_bytes);
        tcase_add_test(tc, test_proof_by_any_es256_signer);
        tcase_add_test(tc, test_proof_bound_to_everything);
        tcase_add_test(tc, test_proof_forms);
        tcase_add_test(tc, test_nonce_hex);
        suite_add_tcase(s, tc);
        return s;
}
