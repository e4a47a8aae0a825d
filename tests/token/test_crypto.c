/* SPDX-License-Identifier: MIT */
/*
 * The crypto layer (lib/token/crypto.h): strict base64url, SHA-256, and the
 * P-256 signature checks of the token spec's attack list (high-S, r or s zero
 * or >= n, DER instead of raw, off-curve and infinity points).  Expected values
 * come from the RFCs (4648, 6234, 6979), not from our own output.
 */
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecp.h>

#include "suites.h"
#include "token/crypto.h"
#include "token_test.h"

/* ----------------------------------------------------------- base64url */

/* RFC 4231 test case 2, the message given in two parts (the cluster's signed calls). */
START_TEST(test_hmac_rfc4231)
{
        static const uint8_t want[CRYPTO_SHA256_LEN] = {
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
        };
        const void *parts[] = { "what do ya ", "want for nothing?" };
        size_t lens[] = { 11, 17 };
        uint8_t out[CRYPTO_SHA256_LEN];

        ck_assert_int_eq(crypto_hmac_sha256_parts("Jefe", 4, parts, lens, 2, out), 0);
        ck_assert(memcmp(out, want, sizeof want) == 0);
        ck_assert_int_eq(crypto_hmac_sha256_parts("", 0, parts, lens, 2, out), -EINVAL);
}
END_TEST

START_TEST(test_b64u_rfc4648_vectors)
{
        /* RFC 4648 section 10, base64 without padding; '-' and '_' for 62 and 63 */
        static const struct {
                const char *in, *out;
        } v[] = {
                { "", "" },         { "f", "Zg" },         { "fo", "Zm8" },
                { "foo", "Zm9v" },  { "foob", "Zm9vYg" },  { "fooba", "Zm9vYmE" },
                { "foobar", "Zm9vYmFy" },
                { "\xfb\xff", "-_8" }, /* standard base64: "+/8=" */
                { "\xff\xff\xfe", "___-" },
        };
        char buf[64];
        uint8_t dec[64];
        size_t n;

        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                size_t len = strlen(v[i].in);
                ck_assert_uint_eq(b64u_encoded_len(len), strlen(v[i].out));
                ck_assert_uint_eq(b64u_encode_to(v[i].in, len, buf), strlen(v[i].out));
                ck_assert_str_eq(buf, v[i].out);
                ck_assert_int_eq(b64u_decode_to(v[i].out, strlen(v[i].out), dec, sizeof(dec), &n), 0);
                ck_assert_uint_eq(n, len);
                ck_assert(memcmp(dec, v[i].in, len) == 0);
        }
}
END_TEST

START_TEST(test_b64u_strict)
{
        /* each is refused: padding, whitespace, the standard alphabet, a length of
         * 1 mod 4, non-canonical trailing bits, NUL, non-ASCII */
        static const char *bad[] = {
                "Zg==", "Zg=", "Zm9v YmE", "Zm9v\nYmE", "+/8", "ab/c", "Z", "Zm9vY",
                "Zh",   /* 'h' = 33: low 4 bits not zero (canonical is "Zg") */
                "Zm9",  /* '9' = 61: low 2 bits not zero (canonical is "Zm8") */
                "-_9",  /* canonical "-_8" */
                "Zg.",  "\xc3\xa9", "Zm\x80v",
        };
        uint8_t dec[16];
        uint8_t *p;
        size_t n;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ck_assert_msg(b64u_decode_to(bad[i], strlen(bad[i]), dec, sizeof(dec), &n) ==
                                      HYB_E_PARSE, "accepted '%s'", bad[i]);
                ck_assert_int_eq(b64u_decode(bad[i], strlen(bad[i]), &p, &n), HYB_E_PARSE);
        }
        ck_assert_int_eq(b64u_decode_to("Zm9v\0YmE", 8, dec, sizeof(dec), &n), HYB_E_PARSE);
        /* fits exactly, and one byte too small */
        ck_assert_int_eq(b64u_decode_to("Zm9vYmFy", 8, dec, 6, &n), 0);
        ck_assert_int_eq(b64u_decode_to("Zm9vYmFy", 8, dec, 5, &n), HYB_E_LIMIT);
        ck_assert_int_eq(b64u_decode("Zm9vYmE", 7, &p, &n), 0);
        ck_assert_uint_eq(n, 5);
        ck_assert(memcmp(p, "fooba", 5) == 0);
        free(p);
}
END_TEST

/* Of all 65536 two-byte inputs, exactly the canonical encodings of one byte
 * decode (64 first characters x 4 second ones whose low 4 bits are zero), and
 * each re-encodes to itself. */
START_TEST(test_b64u_exhaustive_two_chars)
{
        char s[3] = { 0 };
        uint8_t dec[4];
        char back[8];
        size_t n;
        int ok = 0;

        for (int a = 0; a < 256; a++)
                for (int b = 0; b < 256; b++) {
                        s[0] = (char)a;
                        s[1] = (char)b;
                        if (b64u_decode_to(s, 2, dec, sizeof(dec), &n) < 0)
                                continue;
                        ok++;
                        ck_assert_uint_eq(n, 1);
                        b64u_encode_to(dec, 1, back);
                        ck_assert_str_eq(back, s);
                }
        /* 64 first characters x 4 canonical second ones */
        ck_assert_int_eq(ok, 256);
}
END_TEST

/* ------------------------------------------------------------ SHA-256 */

START_TEST(test_sha256_vectors)
{
        uint8_t h[32], want[32];
        const void *parts[] = { "a", "", "bc" };
        size_t lens[] = { 1, 0, 2 };

        /* FIPS 180-2 / RFC 6234 test vectors */
        crypto_sha256("abc", 3, h);
        hex_to_bytes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want, 32);
        ck_assert(memcmp(h, want, 32) == 0);
        crypto_sha256_parts(parts, lens, 3, h);
        ck_assert(memcmp(h, want, 32) == 0);
        crypto_sha256("", 0, h);
        hex_to_bytes("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want, 32);
        ck_assert(memcmp(h, want, 32) == 0);
}
END_TEST

START_TEST(test_memeq_zero_random)
{
        uint8_t a[48], b[48], z[48] = { 0 };

        ck_assert_int_eq(crypto_random(a, sizeof(a)), 0);
        memcpy(b, a, sizeof(a));
        ck_assert(crypto_memeq(a, b, sizeof(a)));
        for (size_t i = 0; i < sizeof(a); i++) {
                b[i] ^= 0x80;
                ck_assert(!crypto_memeq(a, b, sizeof(a)));
                b[i] ^= 0x80;
        }
        /* 48 random bytes are not all zero (chance 2^-384) and two draws differ */
        ck_assert(!crypto_memeq(a, z, sizeof(a)));
        ck_assert_int_eq(crypto_random(b, sizeof(b)), 0);
        ck_assert(!crypto_memeq(a, b, sizeof(a)));
        crypto_zero(a, sizeof(a));
        ck_assert(crypto_memeq(a, z, sizeof(a)));
}
END_TEST

/* ----------------------------------------------------------- P-256 */

/* RFC 6979 A.2.5: the P-256 key and the SHA-256 signature of "sample". */
static const char rfc_d[] = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721";
static const char rfc_pub[] = "04"
                              "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
                              "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299";
static const char rfc_r[] = "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716";
static const char rfc_s[] = "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8";

START_TEST(test_p256_rfc6979_low_s)
{
        uint8_t d[32], pub[65], got_pub[65], h[32], sig[64], want[64], n[32], high[64];
        p256_key *k = NULL;

        hex_to_bytes(rfc_d, d, 32);
        hex_to_bytes(rfc_pub, pub, 65);
        ck_assert_int_eq(p256_from_private(d, NULL, &k), 0);
        p256_get_public(k, got_pub);
        ck_assert(memcmp(got_pub, pub, 65) == 0);
        crypto_sha256("sample", 6, h);
        ck_assert_int_eq(p256_sign_hash(k, h, sig), 0);

        /* The RFC's s is above n/2: we hand out (r, n - s), the same signature low-S. */
        hex_to_bytes(rfc_r, want, 32);
        hex_to_bytes(P256_N_HEX, n, 32);
        hex_to_bytes(rfc_s, high + 32, 32);
        memcpy(high, want, 32);
        be_sub(n, high + 32, want + 32);
        ck_assert(memcmp(sig, want, 64) == 0);
        ck_assert_int_eq(p256_verify_hash(k, h, sig, 64), 0);
        /* the RFC's own (high-S) signature is valid ECDSA but refused */
        ck_assert_int_eq(p256_verify_hash(k, h, high, 64), HYB_E_AUTH);
        /* the matching public point is accepted alongside d, another refused */
        p256_free(k);
        k = NULL;
        ck_assert_int_eq(p256_from_private(d, pub, &k), 0);
        p256_free(k);
        k = NULL;
        pub[64] ^= 1;
        ck_assert_int_eq(p256_from_private(d, pub, &k), HYB_E_PARSE);
        ck_assert_ptr_null(k);
}
END_TEST

START_TEST(test_p256_always_low_s)
{
        uint8_t h[32], sig[64], half[32];
        p256_key *k = NULL;

        hex_to_bytes(P256_HALF_N_HEX, half, 32);
        ck_assert_int_eq(p256_generate(&k), 0);
        ck_assert(p256_has_private(k));
        /* about half of raw ECDSA signatures are high-S: 64 messages hit both */
        for (int i = 0; i < 64; i++) {
                crypto_sha256(&i, sizeof(i), h);
                ck_assert_int_eq(p256_sign_hash(k, h, sig), 0);
                ck_assert_msg(memcmp(sig + 32, half, 32) <= 0, "high-S signature made");
                ck_assert_int_eq(p256_verify_hash(k, h, sig, 64), 0);
        }
        p256_free(k);
}
END_TEST

/* Every forgery of the spec's list is refused with the one code HYB_E_AUTH. */
START_TEST(test_p256_signature_attacks)
{
        uint8_t h[32], sig[64], bad[80], n[32], tmp[32];
        p256_key *k = NULL, *other = NULL;

        hex_to_bytes(P256_N_HEX, n, 32);
        ck_assert_int_eq(p256_generate(&k), 0);
        ck_assert_int_eq(p256_generate(&other), 0);
        crypto_sha256("the message", 11, h);
        ck_assert_int_eq(p256_sign_hash(k, h, sig), 0);
        ck_assert_int_eq(p256_verify_hash(k, h, sig, 64), 0);

        /* high-S: (r, n - s) is valid ECDSA, refused */
        memcpy(bad, sig, 32);
        be_sub(n, sig + 32, bad + 32);
        ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
        /* r = s = 0 */
        memset(bad, 0, 64);
        ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
        /* r = n, s = n, r = 0, s = 0, r = 2^256 - 1 */
        memcpy(bad, n, 32);
        memcpy(bad + 32, sig + 32, 32);
        ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
        memcpy(bad, sig, 32);
        memcpy(bad + 32, n, 32);
        ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
        memcpy(bad, sig, 64);
        memset(bad, 0, 32);
        ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
        memcpy(bad, sig, 64);
        memset(bad + 32, 0, 32);
        ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
        memcpy(bad, sig, 64);
        memset(bad, 0xff, 32);
        ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
        /* r and s swapped */
        memcpy(bad, sig + 32, 32);
        memcpy(bad + 32, sig, 32);
        ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
        /* DER instead of raw */
        size_t dl = der_signature(sig, bad);
        ck_assert_int_eq(p256_verify_hash(k, h, bad, dl), HYB_E_AUTH);
        /* a byte short, a byte more */
        ck_assert_int_eq(p256_verify_hash(k, h, sig, 63), HYB_E_AUTH);
        memcpy(bad, sig, 64);
        bad[64] = 0;
        ck_assert_int_eq(p256_verify_hash(k, h, bad, 65), HYB_E_AUTH);
        /* every single bit flip of the signature, a flip in the hash, another key */
        for (int i = 0; i < 64 * 8; i++) {
                memcpy(bad, sig, 64);
                bad[i / 8] ^= (uint8_t)(1u << (i % 8));
                ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
        }
        memcpy(tmp, h, 32);
        tmp[31] ^= 1;
        ck_assert_int_eq(p256_verify_hash(k, tmp, sig, 64), HYB_E_AUTH);
        ck_assert_int_eq(p256_verify_hash(other, h, sig, 64), HYB_E_AUTH);
        p256_free(k);
        p256_free(other);
}
END_TEST

START_TEST(test_p256_bad_points)
{
        uint8_t pub[65], bad[65], p[32];
        p256_key *k = NULL, *x = NULL;

        ck_assert_int_eq(p256_generate(&k), 0);
        p256_get_public(k, pub);
        ck_assert_int_eq(p256_from_public(pub, 65, &x), 0);
        ck_assert(p256_public_equal(k, x));
        ck_assert(!p256_has_private(x));
        p256_free(x);
        x = NULL;

        /* off the curve: y changed by one bit */
        memcpy(bad, pub, 65);
        bad[64] ^= 1;
        ck_assert_int_eq(p256_from_public(bad, 65, &x), HYB_E_PARSE);
        /* the point at infinity: its one-byte SEC1 form, and (0, 0) */
        bad[0] = 0x00;
        ck_assert_int_eq(p256_from_public(bad, 1, &x), HYB_E_PARSE);
        memset(bad, 0, 65);
        bad[0] = 0x04;
        ck_assert_int_eq(p256_from_public(bad, 65, &x), HYB_E_PARSE);
        /* compressed form, wrong prefix, wrong length */
        memcpy(bad, pub, 33);
        bad[0] = 0x02 | (pub[64] & 1);
        ck_assert_int_eq(p256_from_public(bad, 33, &x), HYB_E_PARSE);
        memcpy(bad, pub, 65);
        bad[0] = 0x06; /* hybrid form */
        ck_assert_int_eq(p256_from_public(bad, 65, &x), HYB_E_PARSE);
        ck_assert_int_eq(p256_from_public(pub, 64, &x), HYB_E_PARSE);
        /* x = p (a coordinate outside the field) */
        hex_to_bytes(P256_P_HEX, p, 32);
        memcpy(bad, pub, 65);
        memcpy(bad + 1, p, 32);
        ck_assert_int_eq(p256_from_public(bad, 65, &x), HYB_E_PARSE);
        ck_assert_ptr_null(x);
        p256_free(k);
}
END_TEST

START_TEST(test_p256_private_range)
{
        uint8_t d[32] = { 0 }, pub[65], g[65];
        p256_key *k = NULL;

        /* d = 0 and d = n are not keys */
        ck_assert_int_eq(p256_from_private(d, NULL, &k), HYB_E_PARSE);
        hex_to_bytes(P256_N_HEX, d, 32);
        ck_assert_int_eq(p256_from_private(d, NULL, &k), HYB_E_PARSE);
        /* d = 1: the public point is the generator G (SEC 2, section 2.4.2) */
        memset(d, 0, 32);
        d[31] = 1;
        ck_assert_int_eq(p256_from_private(d, NULL, &k), 0);
        p256_get_public(k, pub);
        hex_to_bytes("04"
                     "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
                     "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5",
                     g, 65);
        ck_assert(memcmp(pub, g, 65) == 0);
        p256_free(k);
}
END_TEST

/*
 * The table path of p256_verify_hash (a kept table of multiples of each key) against
 * mbedtls_ecdsa_verify, on the same inputs: both must give the same answer, and the
 * answer SEC1 4.1.4 gives (expected values below come from the algorithm, e.g. a
 * high-S signature is valid ECDSA, r = n is not).
 */
static void *split_q_thread(void *ud)
{
        p256_split_run(ud, P256_SPLIT_Q);
        return NULL;
}

/* The split verification (p256_split_*) without the low-S rule: its parts one after the
 * other on this thread (in either order), or u2 Q on a thread of its own (a new thread:
 * no kept table) while this one does u1 G. */
static int split_path(const p256_key *k, const uint8_t h[32], const uint8_t sig[64], int how)
{
        p256_split *s = NULL;
        pthread_t th;
        int r = p256_split_new(k, h, sig, 64, false, &s);

        if (r < 0)
                return r;
        if (how == 2) {
                ck_assert_int_eq(pthread_create(&th, NULL, split_q_thread, s), 0);
                p256_split_run(s, P256_SPLIT_G);
                ck_assert_int_eq(pthread_join(th, NULL), 0);
        } else {
                p256_split_run(s, how ? P256_SPLIT_G : P256_SPLIT_Q);
                p256_split_run(s, how ? P256_SPLIT_Q : P256_SPLIT_G);
        }
        r = p256_split_finish(s);
        p256_split_free(s);
        return r;
}

static unsigned split_calls;

static void both_paths(const p256_key *k, const uint8_t h[32], const uint8_t sig[64], int want)
{
        int a = p256_ecdsa_check(k, h, sig, 64, true), b = p256_ecdsa_check(k, h, sig, 64, false);
        int c = split_path(k, h, sig, (int)(split_calls++ % 3));

        ck_assert_msg(a == b, "table path %d, mbedTLS %d", a, b);
        ck_assert_msg(c == b, "split path %d, mbedTLS %d", c, b);
        ck_assert_int_eq(a, want);
}

START_TEST(test_p256_table_differential)
{
        uint8_t n[32], h[32], sig[64], bad[64], one[32] = { 0 };
        p256_key *keys[20];
        const size_t n_keys = sizeof(keys) / sizeof(keys[0]); /* more than the 16 tables */

        hex_to_bytes(P256_N_HEX, n, 32);
        one[31] = 1;
        for (size_t i = 0; i < n_keys; i++)
                ck_assert_int_eq(p256_generate(&keys[i]), 0);
        /* three passes: tables made, found, and (20 keys, 16 tables) replaced */
        for (int pass = 0; pass < 3; pass++) {
                for (size_t i = 0; i < n_keys; i++) {
                        p256_key *k = keys[i], *other = keys[(i + 1) % n_keys];
                        int m = pass * 100 + (int)i;

                        ck_assert_int_eq(crypto_random(h, sizeof h), 0);
                        ck_assert_int_eq(p256_sign_hash(k, h, sig), 0);
                        both_paths(k, h, sig, 0);
                        ck_assert_int_eq(p256_verify_hash(k, h, sig, 64), 0);
                        both_paths(other, h, sig, HYB_E_AUTH);
                        /* high-S (r, n - s): valid ECDSA, refused by p256_verify_hash only */
                        memcpy(bad, sig, 32);
                        be_sub(n, sig + 32, bad + 32);
                        both_paths(k, h, bad, 0);
                        ck_assert_int_eq(p256_verify_hash(k, h, bad, 64), HYB_E_AUTH);
                        /* the forgeries below on a few keys only (valgrind runs this too) */
                        if (pass > 0 || i >= 6)
                                continue;
                        /* one bit flipped in r, in s, in the hash */
                        memcpy(bad, sig, 64);
                        bad[m % 32] ^= (uint8_t)(1u << (m % 8));
                        both_paths(k, h, bad, HYB_E_AUTH);
                        memcpy(bad, sig, 64);
                        bad[32 + m % 32] ^= (uint8_t)(1u << (m % 8));
                        both_paths(k, h, bad, HYB_E_AUTH);
                        h[m % 32] ^= 0x80;
                        both_paths(k, h, sig, HYB_E_AUTH);
                        h[m % 32] ^= 0x80;
                        /* r or s = 0, = n, > n (2^256 - 1), = 1, = n - 1 */
                        static const int field[] = { 0, 32 };
                        for (int f = 0; f < 2; f++) {
                                memcpy(bad, sig, 64);
                                memset(bad + field[f], 0, 32);
                                both_paths(k, h, bad, HYB_E_AUTH);
                                memcpy(bad + field[f], n, 32);
                                both_paths(k, h, bad, HYB_E_AUTH);
                                memset(bad + field[f], 0xff, 32);
                                both_paths(k, h, bad, HYB_E_AUTH);
                                memcpy(bad + field[f], one, 32);
                                both_paths(k, h, bad, HYB_E_AUTH);
                                be_sub(n, one, bad + field[f]);
                                both_paths(k, h, bad, HYB_E_AUTH);
                        }
                        /* random r and s (almost all in range, none valid) */
                        ck_assert_int_eq(crypto_random(bad, sizeof bad), 0);
                        both_paths(k, h, bad, HYB_E_AUTH);
                }
        }
        ck_assert_uint_eq(p256_key_tables(), 16);
        for (size_t i = 0; i < n_keys; i++)
                p256_free(keys[i]);
}
END_TEST

/* The split verification fails closed: a part not run, the low-S rule, a short signature. */
START_TEST(test_p256_split_fail_closed)
{
        uint8_t n[32], h[32] = { 7 }, sig[64], high[64];
        p256_key *k = NULL;
        p256_split *s = NULL;

        hex_to_bytes(P256_N_HEX, n, 32);
        ck_assert_int_eq(p256_generate(&k), 0);
        ck_assert_int_eq(p256_sign_hash(k, h, sig), 0);
        ck_assert_int_eq(p256_split_new(k, h, sig, 64, true, &s), 0);
        ck_assert_int_eq(p256_split_finish(s), HYB_E_AUTH); /* no part run */
        p256_split_run(s, P256_SPLIT_G);
        ck_assert_int_eq(p256_split_finish(s), HYB_E_AUTH); /* u2 Q missing */
        p256_split_run(s, P256_SPLIT_Q);
        ck_assert_int_eq(p256_split_finish(s), 0);
        p256_split_free(s);
        s = NULL;
        /* high-S: valid ECDSA, refused with low_s as p256_verify_hash refuses it */
        memcpy(high, sig, 32);
        be_sub(n, sig + 32, high + 32);
        ck_assert_int_eq(p256_split_new(k, h, high, 64, true, &s), HYB_E_AUTH);
        ck_assert_ptr_null(s);
        ck_assert_int_eq(p256_split_new(k, h, sig, 63, false, &s), HYB_E_AUTH);
        ck_assert_ptr_null(s);
        p256_free(k);
}
END_TEST

/*
 * R.x past n: a valid signature whose R = u1 G + u2 Q has n <= R.x < p, so that r =
 * R.x - n (SEC1 4.1.4 reduces R.x mod n).  The table path checks x3 = r and x3 = r + n
 * apart (without inverting); such an R comes up once in about 2^128 signatures, so it is
 * made: R is a point of the curve with x = n + i (the smallest i >= 1 that has one), e
 * and s are random, u1 = e/s, u2 = r/s, and the key is Q = (R - u1 G) / u2, for which
 * (r, s) is a valid signature of e by construction.  mbedTLS's arithmetic throughout.
 */
START_TEST(test_p256_table_x_past_n)
{
        mbedtls_ecp_group grp;
        mbedtls_ecp_point R, Q;
        mbedtls_mpi x, y, t, e, sm, r, w, u1, u2, a, b;
        uint8_t h[32], sig[64], pub[65];
        size_t olen;
        p256_key *k = NULL;

        mbedtls_ecp_group_init(&grp);
        mbedtls_ecp_point_init(&R);
        mbedtls_ecp_point_init(&Q);
        mbedtls_mpi *all[] = { &x, &y, &t, &e, &sm, &r, &w, &u1, &u2, &a, &b };
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                mbedtls_mpi_init(all[i]);
        ck_assert_int_eq(mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1), 0);
        /* x = n + i with y^2 = x^3 - 3x + b a square mod p (p = 3 mod 4: y = (y^2)^((p+1)/4)) */
        ck_assert_int_eq(mbedtls_mpi_add_int(&x, &grp.N, 0), 0);
        for (int i = 1;; i++) {
                ck_assert_int_lt(i, 200);
                ck_assert_int_eq(mbedtls_mpi_add_int(&x, &x, 1), 0);
                ck_assert_int_eq(mbedtls_mpi_mul_mpi(&t, &x, &x), 0);
                ck_assert_int_eq(mbedtls_mpi_sub_int(&t, &t, 3), 0);
                ck_assert_int_eq(mbedtls_mpi_mul_mpi(&t, &t, &x), 0);
                ck_assert_int_eq(mbedtls_mpi_add_mpi(&t, &t, &grp.B), 0);
                ck_assert_int_eq(mbedtls_mpi_mod_mpi(&t, &t, &grp.P), 0);
                ck_assert_int_eq(mbedtls_mpi_add_int(&a, &grp.P, 1), 0);
                ck_assert_int_eq(mbedtls_mpi_shift_r(&a, 2), 0);
                ck_assert_int_eq(mbedtls_mpi_exp_mod(&y, &t, &a, &grp.P, NULL), 0);
                ck_assert_int_eq(mbedtls_mpi_mul_mpi(&a, &y, &y), 0);
                ck_assert_int_eq(mbedtls_mpi_mod_mpi(&a, &a, &grp.P), 0);
                if (mbedtls_mpi_cmp_mpi(&a, &t) == 0)
                        break;
        }
        ck_assert_int_eq(mbedtls_mpi_copy(&R.X, &x), 0);
        ck_assert_int_eq(mbedtls_mpi_copy(&R.Y, &y), 0);
        ck_assert_int_eq(mbedtls_mpi_lset(&R.Z, 1), 0);
        ck_assert_int_eq(mbedtls_ecp_check_pubkey(&grp, &R), 0);
        ck_assert_int_eq(mbedtls_mpi_sub_mpi(&r, &x, &grp.N), 0);
        for (int round = 0; round < 4; round++) {
                /* e < n (a hash below n), s random in [1, n) */
                ck_assert_int_eq(crypto_random(h, sizeof h), 0);
                h[0] &= 0x7f;
                ck_assert_int_eq(crypto_random(sig + 32, 32), 0);
                sig[32] &= 0x7f;
                sig[63] |= 1;
                ck_assert_int_eq(mbedtls_mpi_read_binary(&e, h, 32), 0);
                ck_assert_int_eq(mbedtls_mpi_read_binary(&sm, sig + 32, 32), 0);
                ck_assert_int_eq(mbedtls_mpi_inv_mod(&w, &sm, &grp.N), 0);
                ck_assert_int_eq(mbedtls_mpi_mul_mpi(&u1, &e, &w), 0);
                ck_assert_int_eq(mbedtls_mpi_mod_mpi(&u1, &u1, &grp.N), 0);
                ck_assert_int_eq(mbedtls_mpi_mul_mpi(&u2, &r, &w), 0);
                ck_assert_int_eq(mbedtls_mpi_mod_mpi(&u2, &u2, &grp.N), 0);
                /* Q = u2^-1 R + (n - u1 u2^-1) G */
                ck_assert_int_eq(mbedtls_mpi_inv_mod(&a, &u2, &grp.N), 0);
                ck_assert_int_eq(mbedtls_mpi_mul_mpi(&b, &u1, &a), 0);
                ck_assert_int_eq(mbedtls_mpi_mod_mpi(&b, &b, &grp.N), 0);
                ck_assert_int_eq(mbedtls_mpi_sub_mpi(&b, &grp.N, &b), 0);
                ck_assert_int_eq(mbedtls_ecp_muladd(&grp, &Q, &a, &R, &b, &grp.G), 0);
                ck_assert_int_eq(mbedtls_ecp_point_write_binary(&grp, &Q, MBEDTLS_ECP_PF_UNCOMPRESSED,
                                                                &olen, pub, sizeof pub), 0);
                ck_assert_int_eq(p256_from_public(pub, olen, &k), 0);
                ck_assert_int_eq(mbedtls_mpi_write_binary(&r, sig, 32), 0);
                both_paths(k, h, sig, 0);
                /* twice: the second time from the key's kept table */
                both_paths(k, h, sig, 0);
                /* r + 1 and the hash changed: refused by both */
                sig[31] ^= 1;
                both_paths(k, h, sig, HYB_E_AUTH);
                sig[31] ^= 1;
                h[31] ^= 1;
                both_paths(k, h, sig, HYB_E_AUTH);
                p256_free(k);
                k = NULL;
        }
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                mbedtls_mpi_free(all[i]);
        mbedtls_ecp_point_free(&R);
        mbedtls_ecp_point_free(&Q);
        mbedtls_ecp_group_free(&grp);
}
END_TEST

/*
 * The points the table path handles apart: u1 = 0 (a hash of 0, or of n, which reduces
 * to 0), and R at infinity.  With d = 1 (Q = G), R = (e + r) s^-1 G, which is the point
 * at infinity for e = n - r; with d = n - 1 (Q = -G), R = (e - r) s^-1 G: infinity for e = r.
 */
START_TEST(test_p256_table_edge_points)
{
        uint8_t n[32], d[32] = { 0 }, h[32], sig[64], e[32];
        p256_key *g = NULL, *neg = NULL;

        hex_to_bytes(P256_N_HEX, n, 32);
        d[31] = 1;
        ck_assert_int_eq(p256_from_private(d, NULL, &g), 0);
        be_sub(n, d, d); /* n - 1 */
        ck_assert_int_eq(p256_from_private(d, NULL, &neg), 0);
        for (int i = 0; i < 8; i++) {
                p256_key *k = i % 2 ? neg : g;

                /* e = 0: a valid signature of the all-zero hash, which also signs n */
                memset(h, 0, 32);
                ck_assert_int_eq(p256_sign_hash(k, h, sig), 0);
                both_paths(k, h, sig, 0);
                both_paths(k, n, sig, 0);
                /* 2^256 - 1 reduces to 2^256 - 1 - n: signed as that, valid for both */
                memset(h, 0xff, 32);
                ck_assert_int_eq(p256_sign_hash(k, h, sig), 0);
                both_paths(k, h, sig, 0);
                be_sub(h, n, e);
                both_paths(k, e, sig, 0);
                /* R at infinity: r any, s any in range */
                ck_assert_int_eq(crypto_random(sig, sizeof sig), 0);
                sig[0] &= 0x7f; /* r, s < n */
                sig[32] &= 0x7f;
                if (k == g)
                        be_sub(n, sig, e); /* e = n - r */
                else
                        memcpy(e, sig, 32); /* e = r */
                both_paths(k, e, sig, HYB_E_AUTH);
        }
        p256_free(g);
        p256_free(neg);
}
END_TEST

/* Heap bytes in use (glibc), or 0 when the allocator does not say (sanitizers). */
static size_t heap_in_use(void)
{
        return mallinfo2().uordblks;
}

struct tables_run {
        p256_key **keys;
        size_t n, first;
        size_t tables, grow_first16, grow_mid, grow_rest;
};

static void *tables_thread(void *ud)
{
        struct tables_run *t = ud;
        uint8_t h[32] = { 1 }, sig[64];
        size_t m0, m1 = 0, m2 = 0;

        m0 = heap_in_use();
        for (size_t i = 0; i < t->n; i++) {
                ck_assert_int_eq(p256_sign_hash(t->keys[i], h, sig), 0);
                ck_assert_int_eq(p256_verify_hash(t->keys[i], h, sig, 64), 0);
                if (i + 1 == t->first) {
                        m1 = heap_in_use();
                        t->grow_first16 = m1 - m0;
                }
                if (i + 1 == 2 * t->first)
                        m2 = heap_in_use();
        }
        /* growth only: a heap a few bytes smaller (mbedTLS's numbers vary in size) is none */
        t->grow_mid = m2 > m1 ? m2 - m1 : 0;
        m0 = heap_in_use();
        t->grow_rest = m0 > m2 ? m0 - m2 : 0;
        t->tables = p256_key_tables();
        return NULL;
}

/*
 * The bound: a thread keeps at most 16 key tables, whatever number of keys it sees,
 * each of a few KiB, and frees them when it exits.
 */
START_TEST(test_p256_key_tables_bounded)
{
        enum { N = 64 };
        p256_key *keys[N];
        struct tables_run t = { .keys = keys, .n = N, .first = 16 };
        pthread_t th;
        size_t before, after;
        void *probe;

        /* one arena: the thread's allocations show in mallinfo2 */
        mallopt(M_ARENA_MAX, 1);
        for (size_t i = 0; i < N; i++)
                ck_assert_int_eq(p256_generate(&keys[i]), 0);
        before = heap_in_use();
        ck_assert_int_eq(pthread_create(&th, NULL, tables_thread, &t), 0);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        after = heap_in_use();
        ck_assert_uint_eq(t.tables, 16);
        /* whether mallinfo2 counts (not under ASan); volatile: the pair is not optimised out */
        probe = malloc(4096);
        ck_assert_ptr_nonnull(probe);
        memset(probe, 1, 4096);
        bool measured = heap_in_use() >= after + 4096;
        free(*(void *volatile *)&probe);
        if (measured) {
                fprintf(stderr, "key tables: 16 took %zu bytes (the thread's group included), "
                        "16 more keys %zu, 32 more %zu, left after the thread %zd\n",
                        t.grow_first16, t.grow_mid, t.grow_rest, (ssize_t)(after - before));
                /* 16 tables (and the thread's group with G's table): under 16 x 4 KiB + 8 KiB */
                ck_assert_msg(t.grow_first16 < 16 * 4096 + 8192, "16 tables took %zu bytes",
                              t.grow_first16);
                ck_assert_msg(t.grow_first16 > 16 * 1024, "16 tables took only %zu bytes",
                              t.grow_first16);
                /* more keys: tables replaced, not added (the allocator may keep a
                 * few KiB after the first replacements; then nothing more) */
                ck_assert_msg(t.grow_mid < 8192, "16 more keys grew the heap by %zu bytes",
                              t.grow_mid);
                ck_assert_msg(t.grow_rest < 1024, "32 more keys grew the heap by %zu bytes",
                              t.grow_rest);
                /* all freed with the thread */
                ck_assert_msg(after < before + 1024, "thread exit left %zu bytes", after - before);
        }
        for (size_t i = 0; i < N; i++)
                p256_free(keys[i]);
}
END_TEST

Suite *token_crypto_suite(void)
{
        Suite *s = suite_create("token_crypto");
        TCase *tc = tcase_create("crypto");

        tcase_add_test(tc, test_hmac_rfc4231);
        tcase_add_test(tc, test_b64u_rfc4648_vectors);
        tcase_add_test(tc, test_b64u_strict);
        tcase_add_test(tc, test_b64u_exhaustive_two_chars);
        tcase_add_test(tc, test_sha256_vectors);
        tcase_add_test(tc, test_memeq_zero_random);
        tcase_add_test(tc, test_p256_rfc6979_low_s);
        tcase_add_test(tc, test_p256_always_low_s);
        tcase_add_test(tc, test_p256_signature_attacks);
        tcase_add_test(tc, test_p256_bad_points);
        tcase_add_test(tc, test_p256_private_range);
        tcase_add_test(tc, test_p256_table_differential);
        tcase_add_test(tc, test_p256_table_x_past_n);
        tcase_add_test(tc, test_p256_split_fail_closed);
        tcase_add_test(tc, test_p256_table_edge_points);
        tcase_add_test(tc, test_p256_key_tables_bounded);
        suite_add_tcase(s, tc);
        return s;
}
