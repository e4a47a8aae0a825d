/* SPDX-License-Identifier: MIT */
/* Helpers of the token tests: hex, 256-bit arithmetic, DER, running openssl and Python. */
#ifndef HYB_TOKEN_TEST_H
#define HYB_TOKEN_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "hybrid/token.h"

/* P-256 (SEC 2, section 2.4.2): the group order n, n >> 1, the field prime p. */
#define P256_N_HEX "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"
#define P256_HALF_N_HEX "7FFFFFFF800000007FFFFFFFFFFFFFFFDE737D56D38BCF4279DCE5617E3192A8"
#define P256_P_HEX "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF"

/* Decodes 2 * n hex digits into out; aborts the test on a bad digit. */
void hex_to_bytes(const char *hex, uint8_t *out, size_t n);
/* out = a - b for 32-byte big-endian numbers, a >= b. */
void be_sub(const uint8_t a[32], const uint8_t b[32], uint8_t out[32]);
/* The DER (SEQUENCE of two INTEGERs) of a raw r||s signature; returns its length (<= 72). */
size_t der_signature(const uint8_t raw[64], uint8_t *out);

/* Runs a shell command line (printf format); returns its exit status, -1 if it did not exit. */
int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* As sh, returning its stdout with trailing newlines cut (caller frees); NULL unless it exits 0. */
char *sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The time and audience the token suites issue and verify at. */
#define TOKEN_TEST_NOW 1800000000LL
#define TOKEN_TEST_AUD "hub-a"

/* A trust store with issuer as "hub" and other as "other"; the caller unrefs it. */
hyb_token_trust *token_test_trust(hyb_key *issuer, hyb_key *other);
/*
 * The token issuer grants, as "hub", to holder for subject "alice", audience TOKEN_TEST_AUD,
 * at TOKEN_TEST_NOW, with caps, dlg, ttl_s (0: the default) and epo; fails the test when it
 * is refused.  The caller hyb_free()s it.
 */
char *token_test_issue(const hyb_key *issuer, const hyb_key *holder, const hyb_token_cap *caps,
                       size_t n_caps, unsigned dlg, uint64_t ttl_s, uint64_t epo);

/* Debian's interpreter (python3-cryptography, python3-jwt) and our helper script. */
#define TEST_PYTHON "/usr/bin/python3"
const char *interop_py(void);

#endif
