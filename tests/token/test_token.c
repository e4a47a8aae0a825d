/* SPDX-License-Identifier: MIT */
/*
 * Tokens through the public API: issue, attenuate, inspect, verify, allowed.
 * Every attack case asserts the same thing: hyb_token_verify returns
 * HYB_E_UNAUTHORIZED and hands out no result.  Attack blocks are made with
 * token_block_make / sign_raw, i.e. signed properly by the key an attacker
 * would hold, so each case reaches the check it is about.
 */
#include <check.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <mbedtls/md.h>

#include "hybrid/token.h"
#include "suites.h"
#include "token/crypto.h"
#include "token/staged.h"
#include "token/token-internal.h"
#include "token_test.h"

#define NOW TOKEN_TEST_NOW
#define AUD TOKEN_TEST_AUD

static hyb_key *issuer, *holder, *holder2, *holder3, *other;
static hyb_token_trust *trust;

static void setup(void)
{
        ck_assert_int_eq(hyb_key_generate(&issuer), 0);
        ck_assert_int_eq(hyb_key_generate(&holder), 0);
        ck_assert_int_eq(hyb_key_generate(&holder2), 0);
        ck_assert_int_eq(hyb_key_generate(&holder3), 0);
        ck_assert_int_eq(hyb_key_generate(&other), 0);
        trust = token_test_trust(issuer, other);
        ck_assert_int_eq(hyb_token_trust_add(trust, "hub", other), -EEXIST);
}

static void teardown(void)
{
        hyb_key_unref(issuer);
        hyb_key_unref(holder);
        hyb_key_unref(holder2);
        hyb_key_unref(holder3);
        hyb_key_unref(other);
        hyb_token_trust_unref(trust);
}

/* ------------------------------------------------------------- helpers */

static const hyb_token_cap default_caps[] = {
        { "/home/kitchen/#", HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_SUB },
        { "/home/+/temp", HYB_TOKEN_ACT_READ },
        { "bus://hub/org.example/r1/#", HYB_TOKEN_ACT_CALL },
};

static char *issue_full(const hyb_token_cap *caps, size_t n_caps, unsigned dlg, uint64_t ttl)
{
        return token_test_issue(issuer, holder, caps, n_caps, dlg, ttl, 0);
}

static char *issue(unsigned dlg)
{
        return issue_full(default_caps, 3, dlg, 3600);
}

static int verify_full(const char *tok, const char *aud, int64_t now, hyb_token_result **ret,
                       hyb_error *e)
{
        hyb_token_verify_opts o;

        hyb_token_verify_opts_init(&o);
        o.audience = aud;
        o.now = now;
        return hyb_token_verify(tok, trust, &o, ret, e);
}

/* Verifies and returns the result, failing the test when the token is refused. */
static hyb_token_result *accept(const char *tok)
{
        hyb_token_result *r = NULL;
        hyb_error e = { 0 };

        ck_assert_msg(verify_full(tok, AUD, NOW + 10, &r, &e) == 0, "refused: %s", e.message);
        ck_assert_ptr_nonnull(r);
        return r;
}

/* The one assertion of every attack case. */
#define assert_rejected_at(tok, aud, now)                                                        \
        do {                                                                                     \
                hyb_token_result *_r = (hyb_token_result *)0x1;                                  \
                hyb_error _e = { 0 };                                                            \
                int _rc = verify_full((tok), (aud), (now), &_r, &_e);                            \
                ck_assert_msg(_rc == HYB_E_UNAUTHORIZED, "%s:%d: expected 401, got %d (%s)",     \
                              __FILE__, __LINE__, _rc, _e.message);                              \
                ck_assert_ptr_eq(_r, (hyb_token_result *)0x1);                                   \
                ck_assert_int_eq(_e.code, HYB_E_UNAUTHORIZED);                                   \
                if (getenv("HYB_TOKEN_TEST_REASONS"))                                            \
                        fprintf(stderr, "%d: %s\n", __LINE__, _e.message);                       \
        } while (0)
#define assert_rejected(tok) assert_rejected_at((tok), AUD, NOW + 10)

static char *b64(const void *data, size_t n)
{
        char *s = NULL;

        ck_assert_int_eq(b64u_encode(data, n, &s), 0);
        return s;
}

/* One block of the given header and payload bytes, signed by key (sig_override: used as is). */
static char *sign_raw(const hyb_key *key, const char *hdr, const void *payload, size_t plen)
{
        char *h = b64(hdr, strlen(hdr)), *p = b64(payload, plen), *s, *out;
        uint8_t sig[64];
        size_t len;

        len = strlen(h) + strlen(p) + 2;
        out = malloc(len + 90);
        snprintf(out, len, "%s.%s", h, p);
        ck_assert_int_eq(hyb_key_sign(key, out, strlen(out), sig), 0);
        s = b64(sig, sizeof sig);
        strcat(out, ".");
        strcat(out, s);
        free(h);
        free(p);
        free(s);
        return out;
}

static char *header0(const hyb_key *k)
{
        static char buf[200];

        snprintf(buf, sizeof buf, "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\"}",
                 hyb_key_get_kid(k));
        return buf;
}

static char *cnf_text(const hyb_key *k)
{
        json_t *j = token_cnf_json(k);
        char *s = json_dumps(j, JSON_COMPACT);

        json_decref(j);
        return s;
}

/* Claims of a valid block 0 with `extra` spliced in (members replacing defaults come first). */
static char *claims0(const char *extra)
{
        char *cnf = cnf_text(holder), *out = NULL;

        ck_assert_int_gt(asprintf(&out,
                                  "{%s%s\"v\":1,\"iss\":\"hub\",\"sub\":\"alice\",\"aud\":\"" AUD
                                  "\",\"iat\":%lld,\"exp\":%lld,\"jti\":\"j1\",\"cnf\":%s,"
                                  "\"cap\":[{\"resource\":\"/home/#\",\"actions\":[\"read\"]}]}",
                                  extra, *extra ? "," : "", NOW, NOW + 3600, cnf),
                         0);
        free(cnf);
        return out;
}

/* The claims of claims0("") with member name set to the JSON text value (NULL: removed). */
static char *claims_with(const char *name, const char *value)
{
        char *claims = claims0(""), *text;
        json_t *j = json_loads(claims, 0, NULL);

        ck_assert_ptr_nonnull(j);
        if (value) {
                json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);

                ck_assert_msg(v != NULL, "bad test JSON %s", value);
                json_object_set_new(j, name, v);
        } else {
                json_object_del(j, name);
        }
        text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        free(claims);
        return text;
}

/* A block 0 with custom claims text, signed by the issuer with the standard header. */
static char *block0_text(const char *claims)
{
        return sign_raw(issuer, header0(issuer), claims, strlen(claims));
}

static char *join(const char *a, const char *b)
{
        char *s = NULL;

        ck_assert_int_gt(asprintf(&s, "%s~%s", a, b), 0);
        return s;
}

/* The token a~b must be rejected (a macro, so a failure names the case's line). */
#define assert_rejected_joined(a, b)                     \
        do {                                             \
                char *_joined = join((a), (b));          \
                assert_rejected(_joined);                \
                free(_joined);                           \
        } while (0)

static char *attenuate_opts(const char *tok, const hyb_key *by, const hyb_key *to,
                            const hyb_token_cap *caps, size_t n_caps, uint64_t ttl)
{
        hyb_token_attenuate_opts o;
        char *out = NULL;
        hyb_error e = { 0 };

        hyb_token_attenuate_opts_init(&o);
        o.holder = to;
        o.caps = caps;
        o.n_caps = n_caps;
        o.now = NOW;
        o.ttl_s = ttl;
        ck_assert_msg(hyb_token_attenuate(tok, by, &o, &out, &e) == 0, "attenuate: %s",
                      e.message);
        return out;
}

/* An attenuation block with the given claims text, signed by key. */
static char *att_block(const hyb_key *key, const char *claims)
{
        return sign_raw(key, "{\"alg\":\"ES256\",\"typ\":\"hyb-att+jwt\"}", claims,
                        strlen(claims));
}

/* The prv of the last block of tok. */
static void last_prv(const char *tok, char out[44])
{
        const char *sig = strrchr(tok, '.') + 1;
        uint8_t raw[64];
        size_t n;

        ck_assert_int_eq(b64u_decode_to(sig, strlen(sig), raw, sizeof raw, &n), 0);
        token_sig_hash(raw, out);
}

static char *att_claims(const char *tok, const hyb_key *new_holder, const char *extra)
{
        char prv[44], *cnf = cnf_text(new_holder), *out = NULL;

        last_prv(tok, prv);
        ck_assert_int_gt(asprintf(&out, "{\"v\":1,\"prv\":\"%s\",\"cnf\":%s%s%s}", prv, cnf,
                                  *extra ? "," : "", extra),
                         0);
        free(cnf);
        return out;
}

/* ---------------------------------------------------------------- good */

START_TEST(test_good_token)
{
        char *tok = issue(0), *json = NULL;
        hyb_token_result *r = accept(tok);
        const char *res;
        unsigned acts;

        ck_assert_str_eq(hyb_token_result_get_sub(r), "alice");
        ck_assert_str_eq(hyb_token_result_get_iss(r), "hub");
        ck_assert_int_eq(hyb_token_result_get_exp(r), NOW + 3600);
        ck_assert_str_eq(hyb_token_result_get_holder_kid(r), hyb_key_get_kid(holder));
        ck_assert(hyb_key_equal(hyb_token_result_get_holder(r), holder));
        ck_assert_uint_eq(hyb_token_result_get_n_blocks(r), 1);
        ck_assert_uint_eq(hyb_token_result_get_n_caps(r), 3);
        ck_assert_int_eq(hyb_token_result_get_cap(r, 1, &res, &acts), 0);
        ck_assert_str_eq(res, "/home/+/temp");
        ck_assert_uint_eq(acts, HYB_TOKEN_ACT_READ);
        ck_assert_int_eq(hyb_token_result_get_cap(r, 3, &res, &acts), -ERANGE);
        ck_assert_int_eq(strlen(hyb_token_result_get_jti(r)), 22);

        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/temp", HYB_TOKEN_ACT_READ), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/temp",
                                               HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_SUB), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/garage/temp", HYB_TOKEN_ACT_READ), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/garage/temp", HYB_TOKEN_ACT_SUB), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/temp", HYB_TOKEN_ACT_WRITE), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/#", HYB_TOKEN_ACT_SUB), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/#", HYB_TOKEN_ACT_READ), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/office/temp", HYB_TOKEN_ACT_READ), 0);
        /* bus names are lower-cased */
        ck_assert_int_eq(hyb_token_allowed_str(r, "bus://HUB/org.Example/R1/Ping",
                                               HYB_TOKEN_ACT_CALL), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "bus://hub/org.example/r2/ping",
                                               HYB_TOKEN_ACT_CALL), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "bus://hub/org.example/r1/ping",
                                               HYB_TOKEN_ACT_REG), 0);

        ck_assert_int_eq(hyb_token_result_to_json(r, &json), 0);
        json_t *j = json_loads(json, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(json_string_value(json_object_get(j, "sub")), "alice");
        ck_assert_int_eq(json_integer_value(json_object_get(j, "exp")), NOW + 3600);
        ck_assert_str_eq(json_string_value(json_object_get(j, "holder")),
                         hyb_key_get_kid(holder));
        ck_assert_uint_eq(json_array_size(json_object_get(j, "cap")), 3);
        json_decref(j);
        hyb_free(json);
        hyb_token_result_unref(r);
        hyb_free(tok);
}
END_TEST

/* The stages the daemon runs on its threads (lib/token/staged.h): a signature left
 * unchecked is a bad signature at its block (fail closed), checks run on other threads in
 * any order give hyb_token_verify's verdict, and the holder read in advance is the one
 * the verified token names. */
static void *check_sig(void *ud)
{
        void **a = ud;

        token_staged_check(a[0], (size_t)(uintptr_t)a[1]);
        return NULL;
}

START_TEST(test_staged)
{
        char *t1 = issue(1), *t2 = attenuate_opts(t1, holder, holder2, NULL, 0, 600);
        hyb_token_verify_opts o;
        hyb_token_result *r = NULL;
        token_staged *st = NULL;
        hyb_error e;
        char want[64];

        hyb_token_verify_opts_init(&o);
        o.audience = AUD;
        o.now = NOW;
        for (size_t skip = 0; skip < 2; skip++) {
                hyb_error_clear(&e);
                ck_assert_int_eq(token_staged_new(t2, strlen(t2), trust, &st, &e), 0);
                ck_assert_uint_eq(token_staged_n_sigs(st), 2);
                for (size_t i = 0; i < 2; i++)
                        if (i != skip)
                                token_staged_check(st, i);
                ck_assert_int_eq(token_staged_finish(st, trust, &o, &r, &e), HYB_E_UNAUTHORIZED);
                snprintf(want, sizeof want, "block %zu: bad signature", skip);
                ck_assert_str_eq(e.message, want);
                st = token_staged_free(st);
        }
        /* both on two threads, the last block first */
        ck_assert_int_eq(token_staged_new(t2, strlen(t2), trust, &st, NULL), 0);
        ck_assert(hyb_key_equal(token_staged_holder(st), holder2));
        pthread_t th[2];
        void *args[2][2] = { { st, (void *)(uintptr_t)1 }, { st, (void *)(uintptr_t)0 } };
        for (int i = 0; i < 2; i++)
                ck_assert_int_eq(pthread_create(&th[i], NULL, check_sig, args[i]), 0);
        for (int i = 0; i < 2; i++)
                pthread_join(th[i], NULL);
        hyb_error_clear(&e);
        ck_assert_msg(token_staged_finish(st, trust, &o, &r, &e) == 0, "%s", e.message);
        ck_assert_uint_eq(hyb_token_result_get_n_blocks(r), 2);
        ck_assert_str_eq(hyb_token_result_get_holder_kid(r), hyb_key_get_kid(holder2));
        hyb_token_result_unref(r);
        token_staged_free(st);
        /* refused before any signature: an unknown kid, as hyb_token_verify says it */
        hyb_token_trust *none = token_test_trust(other, holder3);
        hyb_error_clear(&e);
        ck_assert_int_eq(token_staged_new(t2, strlen(t2), none, &st, &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_nonnull(strstr(e.message, "unknown kid"));
        hyb_token_trust_unref(none);
        hyb_free(t1);
        hyb_free(t2);
}
END_TEST

START_TEST(test_issue_arguments)
{
        hyb_token_issue_opts o;
        const char *aud[] = { AUD };
        hyb_token_cap bad[] = { { "/home//temp", HYB_TOKEN_ACT_READ } };
        hyb_token_cap noact[] = { { "/home/temp", 0 } };
        char *tok = NULL;
        hyb_key *pub = NULL;
        char *pem = NULL;

        hyb_token_issue_opts_init(&o);
        o.iss = "hub";
        o.sub = "alice";
        o.aud = aud;
        o.n_aud = 1;
        o.holder = holder;
        o.caps = bad;
        o.n_caps = 1;
        ck_assert_int_eq(hyb_token_issue(issuer, &o, &tok, NULL), -EINVAL);
        o.caps = noact;
        ck_assert_int_eq(hyb_token_issue(issuer, &o, &tok, NULL), -EINVAL);
        o.caps = default_caps;
        o.n_caps = 3;
        o.dlg = 4;
        ck_assert_int_eq(hyb_token_issue(issuer, &o, &tok, NULL), -EINVAL);
        o.dlg = 0;
        o.n_aud = 0;
        ck_assert_int_eq(hyb_token_issue(issuer, &o, &tok, NULL), -EINVAL);
        o.n_aud = 1;
        /* a public key cannot issue */
        ck_assert_int_eq(hyb_key_to_pem(issuer, HYB_KEY_EXPORT_PUBLIC, &pem), 0);
        ck_assert_int_eq(hyb_key_load_memory(pem, strlen(pem), &pub, NULL), 0);
        ck_assert_int_eq(hyb_token_issue(pub, &o, &tok, NULL), -ENOKEY);
        ck_assert_ptr_null(tok);
        hyb_key_unref(pub);
        hyb_free(pem);
}
END_TEST

START_TEST(test_inspect)
{
        char *tok = issue(1), *t2 = attenuate_opts(tok, holder, holder2, NULL, 0, 0), *json = NULL;
        json_t *j, *b;

        ck_assert_int_eq(hyb_token_inspect(t2, &json, NULL), 0);
        j = json_loads(json, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert(json_is_false(json_object_get(j, "verified")));
        b = json_object_get(j, "blocks");
        ck_assert_uint_eq(json_array_size(b), 2);
        ck_assert_str_eq(json_string_value(json_object_get(
                                 json_object_get(json_array_get(b, 0), "header"), "typ")),
                         "hyb-auth+jwt");
        ck_assert_str_eq(json_string_value(json_object_get(
                                 json_object_get(json_array_get(b, 0), "claims"), "sub")),
                         "alice");
        ck_assert_str_eq(json_string_value(json_object_get(
                                 json_object_get(json_array_get(b, 1), "header"), "typ")),
                         "hyb-att+jwt");
        json_decref(j);
        hyb_free(json);
        ck_assert_int_eq(hyb_token_inspect("abc", &json, NULL), HYB_E_UNAUTHORIZED);
        hyb_free(tok);
        hyb_free(t2);
}
END_TEST

/* ------------------------------------------------------ bytes and text */

START_TEST(test_every_character_flip)
{
        char *tok = issue(0);
        size_t n = strlen(tok);

        /* Any one character changed anywhere (header, payload, signature, dots) is refused. */
        for (size_t i = 0; i < n; i++) {
                char save = tok[i];

                tok[i] = save == 'A' ? 'B' : 'A';
                assert_rejected(tok);
                tok[i] = save;
        }
        hyb_token_result_unref(accept(tok));
        hyb_free(tok);
}
END_TEST

/* The P-256 group order n, big-endian. */
static const uint8_t order_n[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

/* tok with its last signature replaced by sig (len bytes). */
static char *with_sig(const char *tok, const uint8_t *sig, size_t len)
{
        const char *dot = strrchr(tok, '.');
        char *s = b64(sig, len), *out = NULL;

        ck_assert_int_gt(asprintf(&out, "%.*s.%s", (int)(dot - tok), tok, s), 0);
        free(s);
        return out;
}

START_TEST(test_signature_forms)
{
        char *tok = issue(0), *t;
        const char *dot = strrchr(tok, '.');
        uint8_t sig[64], alt[64], der[72];
        size_t n;
        int borrow = 0;

        ck_assert_int_eq(b64u_decode_to(dot + 1, strlen(dot + 1), sig, sizeof sig, &n), 0);
        /* r and s swapped */
        memcpy(alt, sig + 32, 32);
        memcpy(alt + 32, sig, 32);
        t = with_sig(tok, alt, 64);
        assert_rejected(t);
        free(t);
        /* high-S: (r, n - s) is the same signature mathematically */
        memcpy(alt, sig, 32);
        for (int i = 31; i >= 0; i--) {
                int d = order_n[i] - sig[32 + i] - borrow;

                borrow = d < 0;
                alt[32 + i] = (uint8_t)(d + (borrow ? 256 : 0));
        }
        t = with_sig(tok, alt, 64);
        assert_rejected(t);
        free(t);
        /* r = s = 0; r = n; s = n */
        memset(alt, 0, 64);
        t = with_sig(tok, alt, 64);
        assert_rejected(t);
        free(t);
        memcpy(alt, order_n, 32);
        memcpy(alt + 32, sig + 32, 32);
        t = with_sig(tok, alt, 64);
        assert_rejected(t);
        free(t);
        memcpy(alt, sig, 32);
        memcpy(alt + 32, order_n, 32);
        t = with_sig(tok, alt, 64);
        assert_rejected(t);
        free(t);
        /* DER: SEQUENCE { INTEGER r, INTEGER s } (each 33 bytes with a leading 0) */
        der[0] = 0x30;
        der[1] = 70;
        der[2] = 0x02;
        der[3] = 33;
        der[4] = 0;
        memcpy(der + 5, sig, 32);
        der[37] = 0x02;
        der[38] = 33;
        der[39] = 0;
        memcpy(der + 40, sig + 32, 32);
        t = with_sig(tok, der, 72);
        assert_rejected(t);
        free(t);
        /* empty and truncated signatures */
        t = with_sig(tok, sig, 0);
        assert_rejected(t);
        free(t);
        t = with_sig(tok, sig, 63);
        assert_rejected(t);
        free(t);
        hyb_free(tok);
}
END_TEST

START_TEST(test_alg_none_and_hs256)
{
        char *claims = claims0(""), *p = b64(claims, strlen(claims)), *h, *t = NULL, *pem = NULL;
        char hdr[200];
        uint8_t mac[32];
        char *macs;

        /* alg none, with and without a signature */
        snprintf(hdr, sizeof hdr, "{\"alg\":\"none\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\"}",
                 hyb_key_get_kid(issuer));
        h = b64(hdr, strlen(hdr));
        ck_assert_int_gt(asprintf(&t, "%s.%s.", h, p), 0);
        assert_rejected(t);
        free(t);
        t = sign_raw(issuer, hdr, claims, strlen(claims));
        assert_rejected(t);
        free(t);
        free(h);
        /* HS256 keyed with the issuer's public key (the classic key-confusion attack) */
        snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\"}",
                 hyb_key_get_kid(issuer));
        h = b64(hdr, strlen(hdr));
        ck_assert_int_eq(hyb_key_to_pem(issuer, HYB_KEY_EXPORT_PUBLIC, &pem), 0);
        ck_assert_int_gt(asprintf(&t, "%s.%s", h, p), 0);
        ck_assert_int_eq(mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                                         (const unsigned char *)pem, strlen(pem),
                                         (const unsigned char *)t, strlen(t), mac),
                         0);
        macs = b64(mac, sizeof mac);
        free(t);
        ck_assert_int_gt(asprintf(&t, "%s.%s.%s", h, p, macs), 0);
        assert_rejected(t);
        free(t);
        /* the same MAC stretched to 64 bytes still is no ES256 signature */
        uint8_t mac2[64];
        memcpy(mac2, mac, 32);
        memcpy(mac2 + 32, mac, 32);
        free(macs);
        macs = b64(mac2, 64);
        ck_assert_int_gt(asprintf(&t, "%s.%s.%s", h, p, macs), 0);
        assert_rejected(t);
        free(t);
        free(macs);
        free(h);
        hyb_free(pem);
        free(p);
        free(claims);
}
END_TEST

START_TEST(test_header_templates)
{
        const char *kid = hyb_key_get_kid(issuer);
        char *claims = claims0(""), *t, hdr[400];
        const char *bad[] = {
                "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\",\"jku\":\"https://x/k\"}",
                "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\",\"jwk\":{}}",
                "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\",\"x5u\":\"https://x\"}",
                "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\",\"crit\":[\"exp\"]}",
                "{\"alg\":\"ES384\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\"}",
                "{\"alg\":\"RS256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\"}",
                "{\"alg\":\"es256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\"}",
                "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                "{\"alg\":\"ES256\",\"typ\":\"hyb-att+jwt\",\"kid\":\"%s\"}",
                "{\"alg\":\"ES256\",\"typ\":\"hyb-rev+jwt\",\"kid\":\"%s\"}",
                "{\"alg\":\"ES256\",\"kid\":\"%s\"}",
                "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\",\"alg\":\"ES256\"}",
                "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"../../etc/%s\"}",
                "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\",\"kid\":\"%.42s/\"}",
                "{\"alg\":[\"ES256\"],\"typ\":\"hyb-auth+jwt\",\"kid\":\"%s\"}",
                "[\"ES256\",\"%s\"]",
        };

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                snprintf(hdr, sizeof hdr, bad[i], kid);
                t = sign_raw(issuer, hdr, claims, strlen(claims));
                assert_rejected(t);
                free(t);
        }
        /* attenuation blocks: the authority typ, a kid, the feed's typ, another alg */
        {
                char *t0 = issue(1), *ac = att_claims(t0, holder2, ""), *blk, *tt;
                char att_hdr[200];
                const char *att_bad[] = {
                        "{\"alg\":\"ES256\",\"typ\":\"hyb-auth+jwt\"}",
                        "{\"alg\":\"ES256\",\"typ\":\"hyb-att+jwt\",\"kid\":\"%s\"}",
                        "{\"alg\":\"ES256\",\"typ\":\"hyb-rev+jwt\"}",
                        "{\"alg\":\"ES384\",\"typ\":\"hyb-att+jwt\"}",
                        "{\"alg\":\"ES256\",\"typ\":\"hyb-att+jwt\",\"jwk\":{}}",
                };

                for (size_t i = 0; i < sizeof att_bad / sizeof att_bad[0]; i++) {
                        snprintf(att_hdr, sizeof att_hdr, att_bad[i], hyb_key_get_kid(holder));
                        blk = sign_raw(holder, att_hdr, ac, strlen(ac));
                        assert_rejected_joined(t0, blk);
                        free(blk);
                }
                /* the control: the template */
                blk = att_block(holder, ac);
                tt = join(t0, blk);
                hyb_token_result_unref(accept(tt));
                free(tt);
                free(blk);
                free(ac);
                hyb_free(t0);
        }
        /* the template itself, member order aside, is accepted */
        snprintf(hdr, sizeof hdr, "{\"kid\":\"%s\",\"typ\":\"hyb-auth+jwt\",\"alg\":\"ES256\"}",
                 kid);
        t = sign_raw(issuer, hdr, claims, strlen(claims));
        hyb_token_result_unref(accept(t));
        free(t);
        free(claims);
}
END_TEST

START_TEST(test_kid_and_issuer)
{
        char *claims = claims0(""), *t;
        char *other_claims = NULL;
        hyb_key *unknown = NULL;

        /* signed by a key the trust store does not hold */
        ck_assert_int_eq(hyb_key_generate(&unknown), 0);
        t = sign_raw(unknown, header0(unknown), claims, strlen(claims));
        assert_rejected(t);
        free(t);
        /* kid of the issuer, signature by another key */
        t = sign_raw(unknown, header0(issuer), claims, strlen(claims));
        assert_rejected(t);
        free(t);
        /* a trusted key (other's), but iss says "hub": the key trusted for hub is not that one */
        t = sign_raw(other, header0(other), claims, strlen(claims));
        assert_rejected(t);
        free(t);
        /* iss "other" signed by hub's key */
        other_claims = claims_with("iss", "\"other\"");
        t = block0_text(other_claims);
        assert_rejected(t);
        free(t);
        free(other_claims);
        /* an unknown issuer name */
        other_claims = claims_with("iss", "\"nobody\"");
        t = block0_text(other_claims);
        assert_rejected(t);
        free(t);
        free(other_claims);
        /* the control: other's key for iss other is accepted */
        other_claims = claims_with("iss", "\"other\"");
        t = sign_raw(other, header0(other), other_claims, strlen(other_claims));
        hyb_token_result_unref(accept(t));
        free(t);
        free(other_claims);
        hyb_key_unref(unknown);
        free(claims);
}
END_TEST

/* ------------------------------------------------------------- claims */

START_TEST(test_times)
{
        char *tok = issue(0);
        hyb_token_result *r = NULL;
        hyb_error e;
        int64_t exp = NOW + 3600;

        /* 60 s leeway on both sides, no more */
        ck_assert_int_eq(verify_full(tok, AUD, exp + 59, &r, &e), 0);
        hyb_token_result_unref(r);
        assert_rejected_at(tok, AUD, exp + 60);
        assert_rejected_at(tok, AUD, exp + 100000);
        ck_assert_int_eq(verify_full(tok, AUD, NOW - 60, &r, &e), 0);
        hyb_token_result_unref(r);
        assert_rejected_at(tok, AUD, NOW - 61);
        hyb_free(tok);

        /* nbf later than iat */
        char *c = claims0("\"nbf\":1800001000");
        tok = block0_text(c);
        assert_rejected_at(tok, AUD, NOW + 10);
        assert_rejected_at(tok, AUD, NOW + 1000 - 61);
        ck_assert_int_eq(verify_full(tok, AUD, NOW + 1000 - 60, &r, &e), 0);
        hyb_token_result_unref(r);
        free(tok);
        free(c);
}
END_TEST

START_TEST(test_lifetime)
{
        const char *bad[] = {
                "\"exp\":null",
                "\"exp\":1800003600.0",
                "\"exp\":\"1800003600\"",
                "\"exp\":-1",
                "\"exp\":1e10",
                "\"iat\":1800000000.5",
                "\"iat\":\"1800000000\"",
                "\"nbf\":\"1800000000\"",
                "\"nbf\":1800000000.0",
                "\"iat\":null",
                "\"exp\":1800000000",                 /* exp == iat: no lifetime */
                "\"exp\":1799999999",                 /* before iat */
                "\"exp\":1802592001",                 /* 30 days + 1 s */
                "\"iat\":1800000100",                 /* issued in the future (over the leeway) */
        };
        hyb_token_result *r = NULL;
        hyb_token_verify_opts o;
        hyb_error e;
        char *c, *t;

        /* each replaces the member of a valid claims set */
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                char name[8] = { 0 }, *text;
                const char *v = strchr(bad[i], ':') + 1;

                sscanf(bad[i], "\"%7[a-z]\"", name);
                text = claims_with(name, strcmp(v, "null") == 0 ? NULL : v);
                t = block0_text(text);
                assert_rejected_at(t, AUD, NOW);
                free(t);
                free(text);
        }
        /* exactly 30 days is accepted; a verifier with a shorter cap refuses it */
        c = claims0("");
        json_t *j = json_loads(c, 0, NULL);
        json_object_set_new(j, "exp", json_integer(NOW + 30 * 86400));
        char *text = json_dumps(j, JSON_COMPACT);
        t = block0_text(text);
        hyb_token_verify_opts_init(&o);
        o.audience = AUD;
        o.now = NOW;
        ck_assert_int_eq(hyb_token_verify(t, trust, &o, &r, &e), 0);
        hyb_token_result_unref(r);
        r = NULL;
        o.max_lifetime_s = 86400;
        ck_assert_int_eq(hyb_token_verify(t, trust, &o, &r, &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_null(r);
        free(t);
        free(text);
        json_decref(j);
        free(c);
}
END_TEST

START_TEST(test_audience)
{
        char *tok = issue(0), *t;

        assert_rejected_at(tok, "hub-b", NOW + 10);
        assert_rejected_at(tok, "hub", NOW + 10);
        hyb_free(tok);
        const char *auds[] = { "[\"hub-b\",\"hub-a\"]", "[]", "42", "[\"hub-a\",7]", "\"\"",
                               "[\"hub-a\",\"hub-a\",\"hub-a\",\"hub-a\",\"hub-a\",\"hub-a\","
                               "\"hub-a\",\"hub-a\",\"hub-a\",\"hub-a\",\"hub-a\",\"hub-a\","
                               "\"hub-a\",\"hub-a\",\"hub-a\",\"hub-a\",\"hub-a\"]" };
        for (size_t i = 0; i < sizeof auds / sizeof auds[0]; i++) {
                char *claims = claims0("");
                json_t *cj = json_loads(claims, 0, NULL);
                char *text;

                json_object_set_new(cj, "aud", json_loads(auds[i], JSON_DECODE_ANY, NULL));
                text = json_dumps(cj, JSON_COMPACT);
                t = block0_text(text);
                if (i == 0) {
                        hyb_token_result_unref(accept(t));
                        assert_rejected_at(t, "hub-c", NOW + 10);
                } else {
                        assert_rejected(t);
                }
                free(t);
                free(text);
                json_decref(cj);
                free(claims);
        }
}
END_TEST

START_TEST(test_claim_members)
{
        const char *bad[] = {
                "\"v\":2", "\"v\":\"1\"", "\"sub\":\"\"", "\"sub\":7", "\"jti\":null",
                "\"iss\":null", "\"cnf\":null", "\"cap\":null", "\"cap\":[]", "\"dlg\":4",
                "\"dlg\":-1", "\"dlg\":1.0", "\"epo\":\"0\"", "\"prv\":\"x\"", "\"admin\":true",
                "\"cap\":[{\"resource\":\"/a\",\"actions\":[\"fly\"]}]",
                "\"cap\":[{\"resource\":\"/a\",\"actions\":[]}]",
                "\"cap\":[{\"resource\":\"/a\"}]",
                "\"cap\":[{\"resource\":\"/a\",\"actions\":[\"read\"],\"x\":1}]",
                "\"cap\":[{\"resource\":\"/home//temp\",\"actions\":[\"read\"]}]",
                "\"cap\":[{\"resource\":\"/home/../admin\",\"actions\":[\"read\"]}]",
                "\"cap\":[{\"resource\":\"/home/%2F/temp\",\"actions\":[\"read\"]}]",
                "\"cap\":[{\"resource\":\"/home/x?q\",\"actions\":[\"read\"]}]",
                "\"cnf\":{\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\"}}",
                "\"cnf\":{\"kid\":\"abc\"}",
        };

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                char name[8] = { 0 }, *text, *t;
                const char *v = strchr(bad[i], ':') + 1;

                sscanf(bad[i], "\"%7[a-z]\"", name);
                text = claims_with(name, strcmp(v, "null") == 0 ? NULL : v);
                t = block0_text(text);
                assert_rejected(t);
                free(t);
                free(text);
        }
}
END_TEST

/* A P-256 point that is not on the curve, and the point at infinity, as the holder key. */
START_TEST(test_cnf_off_curve)
{
        const char *bad[] = {
                /* x = 1, y = 1 */
                "{\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\","
                "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\","
                "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}}",
                /* (0, 0) stands for infinity in some encodings */
                "{\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\","
                "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}}",
        };

        for (size_t i = 0; i < 2; i++) {
                char *claims = claims0(""), *text, *t;
                json_t *j = json_loads(claims, 0, NULL);

                json_object_set_new(j, "cnf", json_loads(bad[i], 0, NULL));
                text = json_dumps(j, JSON_COMPACT);
                t = block0_text(text);
                assert_rejected(t);
                free(t);
                free(text);
                json_decref(j);
                free(claims);
        }
}
END_TEST

/* ------------------------------------------------------ malformed input */

START_TEST(test_malformed_base64url)
{
        char *tok = issue(0), *t = NULL;
        char *dot1 = strchr(tok, '.');
        size_t hl = (size_t)(dot1 - tok);

        /* padding, the standard alphabet, whitespace, a stray character */
        const char *inserts[] = { "=", "+", "/", " ", "\n", "%", "==" };
        for (size_t i = 0; i < sizeof inserts / sizeof inserts[0]; i++) {
                ck_assert_int_gt(asprintf(&t, "%.*s%s%s", (int)hl, tok, inserts[i], dot1), 0);
                assert_rejected(t);
                free(t);
        }
        /* a part whose length is 1 mod 4 */
        ck_assert_int_gt(asprintf(&t, "%.*sA%s", (int)hl, tok, dot1), 0);
        if (hl % 4 == 0)
                assert_rejected(t);
        free(t);
        /* non-canonical: the last header character with unused low bits set. The header
         * {"alg":..} encodes to a length 2 or 3 mod 4, so its last character carries
         * 2 or 4 unused bits. */
        t = strdup(tok);
        ck_assert(hl % 4 != 0 && hl % 4 != 1);
        {
                static const char alphabet[] =
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                int v = (int)(strchr(alphabet, t[hl - 1]) - alphabet);

                t[hl - 1] = alphabet[v | 1];
                assert_rejected(t);
        }
        free(t);
        /* empty parts, missing parts, extra dots, empty blocks */
        const char *shapes[] = { "", ".", "..", "a.b", "a.b.c.d", "~", "~~" };
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                assert_rejected(shapes[i]);
        assert_rejected_joined(tok, "");
        hyb_free(tok);
}
END_TEST

START_TEST(test_malformed_json)
{
        const char *hdr = header0(issuer);
        char *good = claims0(""), *t;
        size_t gl = strlen(good);

        /* truncated JSON at every length */
        for (size_t n = 1; n < gl; n += 7) {
                t = sign_raw(issuer, hdr, good, n);
                assert_rejected(t);
                free(t);
        }
        /* duplicate keys */
        char *dup = claims0("\"sub\":\"root\"");
        t = block0_text(dup);
        assert_rejected(t);
        free(t);
        free(dup);
        /* NUL: escaped in a string, and a raw byte */
        dup = claims0("\"x\\u0000\":1");
        t = block0_text(dup);
        assert_rejected(t);
        free(t);
        free(dup);
        {
                char *raw = strdup(good);

                raw[gl - 1] = 0; /* `}` becomes NUL */
                t = sign_raw(issuer, hdr, raw, gl);
                assert_rejected(t);
                free(t);
                free(raw);
        }
        /* invalid UTF-8 in a string */
        dup = claims0("\"x\":\"\xff\xfe\"");
        t = block0_text(dup);
        assert_rejected(t);
        free(t);
        free(dup);
        dup = claims0("\"x\":\"\xc0\xaf\"");
        t = block0_text(dup);
        assert_rejected(t);
        free(t);
        free(dup);
        /* deep nesting, under the size limit */
        {
                char deep[1200];
                size_t k = 0;

                k += (size_t)snprintf(deep + k, sizeof deep - k, "\"x\":");
                for (int d = 0; d < 500; d++)
                        deep[k++] = '[';
                for (int d = 0; d < 500; d++)
                        deep[k++] = ']';
                deep[k] = 0;
                dup = claims0(deep);
                t = block0_text(dup);
                assert_rejected(t);
                free(t);
                free(dup);
        }
        /* huge arrays: 33 capabilities, 20 actions */
        {
                char big[3000];
                size_t k = (size_t)snprintf(big, sizeof big, "[");

                for (int i = 0; i < 33; i++)
                        k += (size_t)snprintf(big + k, sizeof big - k,
                                              "%s{\"resource\":\"/a%d\",\"actions\":[\"read\"]}",
                                              i ? "," : "", i);
                big[k++] = ']';
                big[k] = 0;
                char *claims = claims0(""), *text;
                json_t *j = json_loads(claims, 0, NULL);

                json_object_set_new(j, "cap", json_loads(big, 0, NULL));
                ck_assert_uint_eq(json_array_size(json_object_get(j, "cap")), 33);
                text = json_dumps(j, JSON_COMPACT);
                t = block0_text(text);
                assert_rejected(t);
                free(t);
                free(text);
                json_t *acts = json_array();
                for (int i = 0; i < 20; i++)
                        json_array_append_new(acts, json_string("read"));
                json_object_set_new(j, "cap",
                                    json_pack("[{s:s,s:o}]", "resource", "/a", "actions", acts));
                text = json_dumps(j, JSON_COMPACT);
                t = block0_text(text);
                assert_rejected(t);
                free(t);
                free(text);
                json_decref(j);
                free(claims);
        }
        /* not an object */
        t = sign_raw(issuer, hdr, "[1,2]", 5);
        assert_rejected(t);
        free(t);
        free(good);
}
END_TEST

START_TEST(test_oversized)
{
        char *tok = issue(0), *t = NULL;
        char pad[4200];

        /* a validly signed block 0 under the total size: the payload part is over its limit */
        char *base = claims0("");
        size_t n = 2800 - strlen(base); /* claims of ~2800 bytes: ~3735 base64url characters */

        free(base);
        memset(pad, 'a', n);
        pad[n] = 0;
        char *x = NULL;
        ck_assert_int_gt(asprintf(&x, "\"x\":\"%s\"", pad), 0);
        char *c = claims0(x);
        t = block0_text(c);
        ck_assert_uint_le(strlen(t), 4096);
        ck_assert_uint_gt(strchr(strchr(t, '.') + 1, '.') - strchr(t, '.') - 1, 3600);
        assert_rejected(t);
        free(t);
        free(c);
        free(x);
        /* issue does not make such a token: 32 long capabilities */
        {
                hyb_token_cap caps[32];
                char names[32][80];
                hyb_token_issue_opts o;
                const char *aud[] = { AUD };
                char *big = NULL;

                for (int i = 0; i < 32; i++) {
                        snprintf(names[i], sizeof names[i],
                                 "/site/building-%02d/wing/+/floor/room/sensor/#", i);
                        caps[i] = (hyb_token_cap){ names[i], HYB_TOKEN_ACT_READ };
                }
                hyb_token_issue_opts_init(&o);
                o.iss = "hub";
                o.sub = "alice";
                o.aud = aud;
                o.n_aud = 1;
                o.holder = holder;
                o.caps = caps;
                o.n_caps = 32;
                ck_assert_int_eq(hyb_token_issue(issuer, &o, &big, NULL), HYB_E_LIMIT);
                ck_assert_ptr_null(big);
        }
        /* the total size */
        memset(pad, 'A', 4100);
        pad[4100] = 0;
        assert_rejected_joined(tok, pad);
        hyb_free(tok);
}
END_TEST

/* --------------------------------------------------------- attenuation */

START_TEST(test_attenuation_narrows)
{
        char *t0 = issue(2);
        hyb_token_cap narrow[] = { { "/home/kitchen/temp", HYB_TOKEN_ACT_READ } };
        char *t1 = attenuate_opts(t0, holder, holder2, narrow, 1, 600);
        hyb_token_result *r = accept(t1);

        ck_assert_uint_eq(hyb_token_result_get_n_blocks(r), 2);
        ck_assert_str_eq(hyb_token_result_get_holder_kid(r), hyb_key_get_kid(holder2));
        ck_assert_int_eq(hyb_token_result_get_exp(r), NOW + 600);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/temp", HYB_TOKEN_ACT_READ), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/temp", HYB_TOKEN_ACT_SUB), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/light", HYB_TOKEN_ACT_READ), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "bus://hub/org.example/r1/x",
                                               HYB_TOKEN_ACT_CALL), 0);
        hyb_token_result_unref(r);

        /* a second attenuation by the new holder */
        char *t2 = attenuate_opts(t1, holder2, holder3, NULL, 0, 0);
        r = accept(t2);
        ck_assert_uint_eq(hyb_token_result_get_n_blocks(r), 3);
        ck_assert_str_eq(hyb_token_result_get_holder_kid(r), hyb_key_get_kid(holder3));
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/temp", HYB_TOKEN_ACT_READ), 1);
        ck_assert_int_eq(hyb_token_result_get_exp(r), NOW + 600);
        hyb_token_result_unref(r);

        /* dlg 2 is used up: no third attenuation */
        hyb_token_attenuate_opts o;
        char *t3 = NULL;
        hyb_token_attenuate_opts_init(&o);
        o.holder = holder;
        ck_assert_int_eq(hyb_token_attenuate(t2, holder3, &o, &t3, NULL), -EPERM);
        /* only the current holder can attenuate */
        ck_assert_int_eq(hyb_token_attenuate(t1, holder, &o, &t3, NULL), -EPERM);
        ck_assert_ptr_null(t3);
        hyb_free(t0);
        hyb_free(t1);
        hyb_free(t2);
}
END_TEST

START_TEST(test_attenuation_cannot_widen)
{
        char *t0 = issue(1), *c, *blk, *t1;
        hyb_token_result *r;

        /* broader cap, extra action, later exp, wider aud, bigger dlg: all in one block, signed
         * by the rightful holder */
        c = att_claims(t0, holder2,
                       "\"cap\":[{\"resource\":\"#\",\"actions\":[\"call\",\"reg\",\"sub\","
                       "\"pub\",\"read\",\"write\",\"delete\",\"admin\"]},"
                       "{\"resource\":\"/home/kitchen/#\",\"actions\":[\"read\",\"write\"]}],"
                       "\"exp\":1900000000,\"aud\":[\"hub-a\",\"hub-b\"],\"dlg\":3");
        blk = att_block(holder, c);
        t1 = join(t0, blk);
        r = accept(t1);
        /* no right beyond the parent's */
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/temp", HYB_TOKEN_ACT_WRITE), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/office/x", HYB_TOKEN_ACT_READ), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/kitchen/temp", HYB_TOKEN_ACT_READ), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/garage/temp", HYB_TOKEN_ACT_READ), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "bus://hub/a/b/c", HYB_TOKEN_ACT_ADMIN), 0);
        for (size_t i = 0; i < hyb_token_result_get_n_caps(r); i++) {
                unsigned acts;
                ck_assert_int_eq(hyb_token_result_get_cap(r, i, NULL, &acts), 0);
                ck_assert_uint_eq(acts & ~(unsigned)(HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_SUB |
                                                     HYB_TOKEN_ACT_CALL), 0);
        }
        /* exp stays the parent's */
        ck_assert_int_eq(hyb_token_result_get_exp(r), NOW + 3600);
        assert_rejected_at(t1, AUD, NOW + 3600 + 60);
        /* the wider audience is not honoured */
        assert_rejected_at(t1, "hub-b", NOW + 10);
        hyb_token_result_unref(r);
        /* dlg 3 in block 1 gives no more depth: block 0 allowed one attenuation */
        char *c2 = att_claims(t1, holder3, "");
        char *blk2 = att_block(holder2, c2);
        char *t2 = join(t1, blk2);
        assert_rejected(t2);
        free(c);
        free(blk);
        free(t1);
        free(c2);
        free(blk2);
        free(t2);
        hyb_free(t0);
}
END_TEST

START_TEST(test_broken_chains)
{
        char *t0 = issue(3);
        char *t1 = attenuate_opts(t0, holder, holder2, NULL, 0, 0);
        char *t2 = attenuate_opts(t1, holder2, holder3, NULL, 0, 0);
        char *c, *blk, *t;

        hyb_token_result_unref(accept(t2));
        /* block 1 signed by someone other than block 0's holder */
        c = att_claims(t0, holder2, "");
        blk = att_block(holder2, c);
        assert_rejected_joined(t0, blk);
        free(blk);
        blk = att_block(issuer, c);
        assert_rejected_joined(t0, blk);
        free(blk);
        free(c);
        /* wrong prv: the hash of another token's signature */
        char *x0 = issue(3);
        c = att_claims(x0, holder2, "");
        blk = att_block(holder, c);
        assert_rejected_joined(t0, blk);
        free(blk);
        free(c);
        hyb_free(x0);
        /* no prv at all */
        char *cnf = cnf_text(holder2), *cc = NULL;
        ck_assert_int_gt(asprintf(&cc, "{\"v\":1,\"cnf\":%s}", cnf), 0);
        blk = att_block(holder, cc);
        assert_rejected_joined(t0, blk);
        free(blk);
        free(cc);
        free(cnf);
        /* reordered: blocks 1 and 2 swapped */
        {
                const char *b1 = t1 + strlen(t0) + 1, *b2 = t2 + strlen(t1) + 1;
                t = NULL;
                ck_assert_int_gt(asprintf(&t, "%s~%s~%s", t0, b2, b1), 0);
                assert_rejected(t);
                free(t);
                /* block 0 dropped: an attenuation block in position 0 */
                ck_assert_int_gt(asprintf(&t, "%s", b1), 0);
                assert_rejected(t);
                free(t);
                /* block 0 twice */
                assert_rejected_joined(t0, t0);
        }
        /* truncated text, at every length */
        size_t n = strlen(t2);
        for (size_t k = 1; k < n; k += 5) {
                char save = t2[k];

                t2[k] = 0;
                /* a cut exactly at a block boundary leaves a shorter, valid chain of the
                 * earlier holder (who still has to prove possession of its key) */
                if (k != strlen(t0) && k != strlen(t1))
                        assert_rejected(t2);
                t2[k] = save;
        }
        hyb_free(t0);
        hyb_free(t1);
        hyb_free(t2);
}
END_TEST

START_TEST(test_too_many_blocks)
{
        char *t = issue(3), *next;
        const hyb_key *keys[] = { holder, holder2, holder3, holder, holder2 };

        for (int i = 0; i < 3; i++) {
                next = attenuate_opts(t, keys[i], keys[i + 1], NULL, 0, 0);
                hyb_free(t);
                t = next;
        }
        hyb_token_result_unref(accept(t));
        /* a fifth block, signed properly by the holder of the fourth */
        char *c = att_claims(t, keys[4], ""), *blk = att_block(keys[3], c);
        next = join(t, blk);
        assert_rejected(next);
        hyb_token_attenuate_opts o;
        char *out = NULL;
        hyb_token_attenuate_opts_init(&o);
        o.holder = keys[4];
        ck_assert_int_eq(hyb_token_attenuate(t, keys[3], &o, &out, NULL), HYB_E_LIMIT);
        free(next);
        free(blk);
        free(c);
        hyb_free(t);
}
END_TEST

/* ------------------------------------------------------------ patterns */

START_TEST(test_pattern_edges)
{
        hyb_token_cap caps[] = {
                { "home/+/temp", HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_SUB },
                { "home/kitchen/#", HYB_TOKEN_ACT_READ },
        };
        char *tok = issue_full(caps, 2, 0, 3600);
        hyb_token_result *r = accept(tok);
        hyb_furi *f = NULL;

        ck_assert_int_eq(hyb_token_allowed_str(r, "home/garage/temp", HYB_TOKEN_ACT_SUB), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "home/+/temp", HYB_TOKEN_ACT_SUB), 1);
        ck_assert_int_eq(hyb_token_allowed_str(r, "home//temp", HYB_TOKEN_ACT_READ), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "home/%2F/temp", HYB_TOKEN_ACT_READ), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "home/kitchen/../../admin", HYB_TOKEN_ACT_READ),
                         0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "home/../admin", HYB_TOKEN_ACT_READ), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "home/#", HYB_TOKEN_ACT_SUB), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "home/+/#", HYB_TOKEN_ACT_SUB), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "#", HYB_TOKEN_ACT_READ), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "/home/garage/temp", HYB_TOKEN_ACT_READ), 0);
        ck_assert_int_eq(hyb_token_allowed_str(r, "home/garage/temp?x", HYB_TOKEN_ACT_READ), 0);
        /* parsed fURIs take the same path: the store hands these over already parsed */
        ck_assert_int_eq(hyb_furi_parse("home/%2F/temp", (size_t)-1, NULL, &f, NULL), 0);
        ck_assert(!hyb_token_allowed(r, f, HYB_TOKEN_ACT_READ));
        hyb_furi_unref(f);
        ck_assert_int_eq(hyb_furi_parse("../home/x/temp", (size_t)-1, NULL, &f, NULL), 0);
        ck_assert(!hyb_token_allowed(r, f, HYB_TOKEN_ACT_READ));
        hyb_furi_unref(f);
        ck_assert_int_eq(hyb_furi_parse("home/#", (size_t)-1, NULL, &f, NULL), 0);
        ck_assert(!hyb_token_allowed(r, f, HYB_TOKEN_ACT_SUB));
        hyb_furi_unref(f);
        ck_assert_int_eq(hyb_furi_parse("home/kitchen/temp", (size_t)-1, NULL, &f, NULL), 0);
        ck_assert(hyb_token_allowed(r, f, HYB_TOKEN_ACT_READ));
        ck_assert(!hyb_token_allowed(r, f, 0));
        ck_assert(!hyb_token_allowed(NULL, f, HYB_TOKEN_ACT_READ));
        hyb_furi_unref(f);
        hyb_token_result_unref(r);
        hyb_free(tok);
}
END_TEST

/* The prefilter of hyb_token_allowed never changes an answer of the store's matcher. */
START_TEST(test_allowed_is_the_matcher)
{
        const char *patterns[] = {
                "/a/b/#", "/a/b/+", "/a/+/c", "/a/b", "/a/b/", "a/#", "#", "/#", "+/b",
                "bus://hub/app/r1/#", "bus://+/app/#", "bus://hub/+/+/ping", "//kitchen/temp/#",
                "/a/%2B/c", "/x%20y/#",
        };
        const char *resources[] = {
                "/a/b", "/a/b/", "/a/b/c", "/a/bc", "/a/b/c/d", "/a/x/c", "/a/+/c", "/a/b/#",
                "/a/#", "a/b", "a", "x/b", "/", "bus://hub/app/r1/m", "bus://other/app/x",
                "bus://hub/app2/r1/ping", "bus://hub/#", "//kitchen/temp", "//kitchen/temp/x",
                "/a/%2B/c", "/x%20y/z", "/x%20y",
        };

        for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
                hyb_token_cap cap = { patterns[i], HYB_TOKEN_ACT_READ };
                char *tok = issue_full(&cap, 1, 0, 3600);
                hyb_token_result *r = accept(tok);

                for (size_t j = 0; j < sizeof resources / sizeof resources[0]; j++) {
                        hyb_furi *f = NULL, *p = NULL;

                        ck_assert_int_eq(hyb_furi_parse(resources[j], (size_t)-1, NULL, &f, NULL),
                                         0);
                        ck_assert_int_eq(hyb_furi_parse(patterns[i], (size_t)-1, NULL, &p, NULL),
                                         0);
                        ck_assert_msg(hyb_token_allowed(r, f, HYB_TOKEN_ACT_READ) ==
                                              hyb_furi_match(f, p),
                                      "%s within %s", resources[j], patterns[i]);
                        hyb_furi_unref(f);
                        hyb_furi_unref(p);
                }
                hyb_token_result_unref(r);
                hyb_free(tok);
        }
}
END_TEST

START_TEST(test_actions_parse)
{
        unsigned a = 0;

        ck_assert_int_eq(hyb_token_actions_parse("read,write", &a), 0);
        ck_assert_uint_eq(a, HYB_TOKEN_ACT_READ | HYB_TOKEN_ACT_WRITE);
        ck_assert_int_eq(hyb_token_actions_parse("call,reg,sub,pub,read,write,delete,admin", &a),
                         0);
        ck_assert_uint_eq(a, 0xff);
        ck_assert_int_eq(hyb_token_actions_parse("read,", &a), HYB_E_PARSE);
        ck_assert_int_eq(hyb_token_actions_parse("", &a), HYB_E_PARSE);
        ck_assert_int_eq(hyb_token_actions_parse("Read", &a), HYB_E_PARSE);
}
END_TEST

/* ---------------------------------------------------------- revocation */

static int revoke_jti(void *ud, const hyb_token_ids *ids)
{
        const char *jti = ud;

        ck_assert_uint_ge(ids->n_blocks, 1);
        ck_assert_int_eq(strlen(ids->sig_hashes[0]), 43);
        ck_assert_int_eq(strlen(ids->holder_kids[ids->n_blocks - 1]), 43);
        ck_assert_int_eq(strlen(ids->issuer_kid), 43);
        if (!jti)
                return -EIO;
        return strcmp(ids->jti, jti) == 0;
}

START_TEST(test_revocation_hook)
{
        char *tok = issue(0);
        hyb_token_result *r = accept(tok);
        hyb_token_verify_opts o;
        hyb_token_result *r2 = NULL;
        char *jti = strdup(hyb_token_result_get_jti(r));

        hyb_token_result_unref(r);
        hyb_token_verify_opts_init(&o);
        o.audience = AUD;
        o.now = NOW;
        o.revoked = revoke_jti;
        o.userdata = "another";
        ck_assert_int_eq(hyb_token_verify(tok, trust, &o, &r2, NULL), 0);
        hyb_token_result_unref(r2);
        r2 = NULL;
        o.userdata = jti;
        ck_assert_int_eq(hyb_token_verify(tok, trust, &o, &r2, NULL), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_null(r2);
        /* the hook cannot tell: fail closed */
        o.userdata = NULL;
        ck_assert_int_eq(hyb_token_verify(tok, trust, &o, &r2, NULL), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_null(r2);
        free(jti);
        hyb_free(tok);
}
END_TEST

/* A revoked key anywhere in the chain: here the first holder's, after it attenuated. */
static int revoke_holder(void *ud, const hyb_token_ids *ids)
{
        for (size_t i = 0; i < ids->n_blocks; i++)
                if (strcmp(ids->holder_kids[i], (const char *)ud) == 0)
                        return 1;
        return 0;
}

static int revoke_epoch_below(void *ud, const hyb_token_ids *ids)
{
        return ids->epo < *(const uint64_t *)ud;
}

START_TEST(test_revocation_ids)
{
        char *t0 = issue(1), *t1 = attenuate_opts(t0, holder, holder2, NULL, 0, 0);
        hyb_token_verify_opts o;
        hyb_token_result *r = NULL;
        uint64_t min_epoch = 1;

        hyb_token_verify_opts_init(&o);
        o.audience = AUD;
        o.now = NOW;
        o.revoked = revoke_holder;
        o.userdata = (void *)hyb_key_get_kid(holder3);
        ck_assert_int_eq(hyb_token_verify(t1, trust, &o, &r, NULL), 0);
        hyb_token_result_unref(r);
        r = NULL;
        o.userdata = (void *)hyb_key_get_kid(holder);
        ck_assert_int_eq(hyb_token_verify(t1, trust, &o, &r, NULL), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(hyb_token_verify(t0, trust, &o, &r, NULL), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_null(r);
        o.revoked = revoke_epoch_below;
        o.userdata = &min_epoch;
        ck_assert_int_eq(hyb_token_verify(t1, trust, &o, &r, NULL), HYB_E_UNAUTHORIZED);
        min_epoch = 0;
        ck_assert_int_eq(hyb_token_verify(t1, trust, &o, &r, NULL), 0);
        hyb_token_result_unref(r);
        hyb_free(t0);
        hyb_free(t1);
}
END_TEST

Suite *token_suite(void)
{
        Suite *s = suite_create("token");
        TCase *tc = tcase_create("token");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_good_token);
        tcase_add_test(tc, test_issue_arguments);
        tcase_add_test(tc, test_inspect);
        tcase_add_test(tc, test_every_character_flip);
        tcase_add_test(tc, test_signature_forms);
        tcase_add_test(tc, test_alg_none_and_hs256);
        tcase_add_test(tc, test_header_templates);
        tcase_add_test(tc, test_kid_and_issuer);
        tcase_add_test(tc, test_times);
        tcase_add_test(tc, test_lifetime);
        tcase_add_test(tc, test_audience);
        tcase_add_test(tc, test_claim_members);
        tcase_add_test(tc, test_cnf_off_curve);
        tcase_add_test(tc, test_malformed_base64url);
        tcase_add_test(tc, test_malformed_json);
        tcase_add_test(tc, test_oversized);
        tcase_add_test(tc, test_attenuation_narrows);
        tcase_add_test(tc, test_attenuation_cannot_widen);
        tcase_add_test(tc, test_broken_chains);
        tcase_add_test(tc, test_too_many_blocks);
        tcase_add_test(tc, test_pattern_edges);
        tcase_add_test(tc, test_allowed_is_the_matcher);
        tcase_add_test(tc, test_actions_parse);
        tcase_add_test(tc, test_revocation_hook);
        tcase_add_test(tc, test_revocation_ids);
        tcase_add_test(tc, test_staged);
        suite_add_tcase(s, tc);
        return s;
}
