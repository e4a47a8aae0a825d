/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer: the two ECDSA paths of lib/token/crypto.c on the same input, which
 * must agree: p256_verify_hash's (a kept table of multiples of each key, built on
 * the key's first use and found again later in the run) and mbedtls_ecdsa_verify.
 *
 * Input: d (32 bytes, the private scalar; an invalid one is reduced to a valid
 * one), a flag byte, the hash (32), and a 64-byte mask.  The signature checked
 * is the key's own signature of the hash XOR the mask (flag bit 0 clear: a
 * valid signature when the mask is zero, tampered otherwise) or the mask itself
 * (bit 0 set: any r||s, out-of-range ones included).  Flag bit 1 checks with the
 * key of d + 1 instead (a wrong key); bit 2 takes the hash as n - r (with d = 1
 * that puts R at the point at infinity).  Short inputs are padded with zeros.
 * The split verification (p256_split_*, its two multiplications as parts; bit 3: the
 * part u1 G first) must give the same answer too.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t p256_n[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

/* out = a - b, big-endian 32 bytes, mod 2^256 */
static void be_sub32(const uint8_t a[32], const uint8_t b[32], uint8_t out[32])
{
        int borrow = 0;

        for (int i = 31; i >= 0; i--) {
                int v = a[i] - b[i] - borrow;
                borrow = v < 0;
                out[i] = (uint8_t)(v & 0xff);
        }
}

/* a key from d, or from d's bytes changed until they are a valid scalar */
static p256_key *key_of(uint8_t d[32])
{
        p256_key *k = NULL;

        for (int i = 0; i < 4 && p256_from_private(d, NULL, &k) < 0; i++)
                d[i] = (uint8_t)(d[i] ^ 0x5a ^ (i == 0 ? 0x80 : 0)); /* 0 or >= n: flip high bits */
        if (!k) {
                memset(d, 0, 32);
                d[31] = 1;
                if (p256_from_private(d, NULL, &k) < 0)
                        abort();
        }
        return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t in[32 + 1 + 32 + 64] = { 0 }, d[32], h[32], sig[64];
        p256_key *k, *check;
        uint8_t flags;

        memcpy(in, data, size < sizeof in ? size : sizeof in);
        memcpy(d, in, 32);
        flags = in[32];
        memcpy(h, in + 33, 32);
        k = key_of(d);
        if (flags & 1) {
                memcpy(sig, in + 65, 64);
        } else {
                if (p256_sign_hash(k, h, sig) < 0)
                        abort();
                for (int i = 0; i < 64; i++)
                        sig[i] ^= in[65 + i];
        }
        if (flags & 4)
                be_sub32(p256_n, sig, h); /* e = n - r */
        check = k;
        if (flags & 2) {
                uint8_t d2[32];
                memcpy(d2, d, 32);
                for (int i = 31; i >= 0 && ++d2[i] == 0; i--)
                        ;
                check = key_of(d2);
        }
        int a = p256_ecdsa_check(check, h, sig, sizeof sig, true);
        int b = p256_ecdsa_check(check, h, sig, sizeof sig, false);
        p256_split *sp = NULL;
        int c = p256_split_new(check, h, sig, sizeof sig, false, &sp);
        if (c == 0) {
                p256_split_run(sp, flags & 8 ? P256_SPLIT_G : P256_SPLIT_Q);
                p256_split_run(sp, flags & 8 ? P256_SPLIT_Q : P256_SPLIT_G);
                c = p256_split_finish(sp);
                p256_split_free(sp);
        }
        if (a != b || c != b) {
                fprintf(stderr, "ECDSA paths differ: table %d, split %d, mbedTLS %d\n", a, c, b);
                abort();
        }
        /* the key's own signature, untouched, verifies */
        if (!(flags & 7) && a != 0) {
                bool zero = true;
                for (int i = 0; i < 64; i++)
                        zero = zero && in[65 + i] == 0;
                if (zero) {
                        fprintf(stderr, "a valid signature refused\n");
                        abort();
                }
        }
        if (check != k)
                p256_free(check);
        p256_free(k);
        return 0;
}
