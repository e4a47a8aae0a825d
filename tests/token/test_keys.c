/* SPDX-License-Identifier: MIT */
/*
 * hyb_key (hybrid/token.h) against independent implementations: keys made
 * by the `openssl` tool and by Python `cryptography` load as they are, our
 * files read back in both, signatures cross-verify (raw r||s here, DER there,
 * converted by the test), block-0-style JWS verify in PyJWT, and the RFC 7638
 * thumbprint is computed by Python's hashlib from the canonical JSON.
 */
#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hybrid/token.h"
#include "suites.h"
#include "testutil.h"
#include "token/crypto.h"
#include "token_test.h"

static char *dir;

static void setup(void)
{
        dir = test_tmpdir();
        ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
        test_rmrf(dir);
        free(dir);
        dir = NULL;
}

/* dir/name, in a rotating static buffer (a few live at once). */
static const char *at(const char *name)
{
        static char buf[4][4096];
        static int i;

        i = (i + 1) % 4;
        snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
        return buf[i];
}

static hyb_key *load_ok(const char *path)
{
        hyb_error e = { 0 };
        hyb_key *k = NULL;
        int r = hyb_key_load_file(path, &k, &e);

        ck_assert_msg(r == 0, "%s: %s (%s)", path, e.message, hyb_err_name(r));
        ck_assert_ptr_nonnull(k);
        return k;
}

static void write_text(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        ck_assert_int_eq(fclose(f), 0);
}

static int load_text(const char *text, hyb_key **ret, hyb_error *e)
{
        return hyb_key_load_memory(text, strlen(text), ret, e);
}

static mode_t file_mode(const char *path)
{
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        return st.st_mode & 07777;
}

/* Signs msg with priv (ours) and has Python verify it with pubfile. */
static void ours_verifies_in_python(hyb_key *priv, const char *pubfile)
{
        static const char msg[] = "signed here, verified by cryptography";
        uint8_t sig[64];
        char hex[129];

        write_text(at("msg"), msg);
        ck_assert_int_eq(hyb_key_sign(priv, msg, strlen(msg), sig), 0);
        for (int i = 0; i < 64; i++)
                snprintf(hex + 2 * i, 3, "%02x", sig[i]);
        ck_assert_int_eq(sh(TEST_PYTHON " '%s' verify '%s' '%s' %s", interop_py(), pubfile,
                            at("msg"), hex), 0);
        /* and a flipped bit does not verify there either (the check can fail) */
        hex[5] = hex[5] == '0' ? '1' : '0';
        ck_assert_int_ne(sh(TEST_PYTHON " '%s' verify '%s' '%s' %s 2>/dev/null", interop_py(),
                            pubfile, at("msg"), hex), 0);
}

/* ------------------------------------------------------- OpenSSL's keys */

START_TEST(test_openssl_keys_load)
{
        /* SEC1 alone, SEC1 after an EC PARAMETERS block, PKCS#8, and the SPKI public key */
        ck_assert_int_eq(sh("cd '%s' && openssl ecparam -name prime256v1 -genkey -noout -out sec1.pem"
                            " && openssl ecparam -name prime256v1 -genkey -out params.pem"
                            " && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
                            " -out pkcs8.pem && openssl pkey -in pkcs8.pem -pubout -out pub.pem"
                            " && openssl pkey -in sec1.pem -pubout -out sec1.pub"
                            " && openssl ec -in sec1.pem -no_public -out nopub.pem"
                            " 2>/dev/null", dir), 0);
        ck_assert_int_eq(sh("grep -q 'BEGIN EC PRIVATE KEY' '%s' && grep -q 'BEGIN EC PARAMETERS' '%s'"
                            " && grep -q 'BEGIN PRIVATE KEY' '%s' && grep -q 'BEGIN PUBLIC KEY' '%s'",
                            at("sec1.pem"), at("params.pem"), at("pkcs8.pem"), at("pub.pem")), 0);
        hyb_key *sec1 = load_ok(at("sec1.pem")), *params = load_ok(at("params.pem"));
        hyb_key *p8 = load_ok(at("pkcs8.pem")), *pub = load_ok(at("pub.pem"));
        hyb_key *sec1pub = load_ok(at("sec1.pub"));

        ck_assert(hyb_key_has_private(sec1) && hyb_key_has_private(params) &&
                  hyb_key_has_private(p8));
        ck_assert(!hyb_key_has_private(pub));
        /* a private key and its public key have one kid; different keys differ */
        ck_assert_str_eq(hyb_key_get_kid(p8), hyb_key_get_kid(pub));
        ck_assert_str_eq(hyb_key_get_kid(sec1), hyb_key_get_kid(sec1pub));
        /* SEC1 without its optional public key: computed from the private scalar */
        hyb_key *nopub = load_ok(at("nopub.pem"));
        ck_assert(hyb_key_has_private(nopub) && hyb_key_equal(nopub, sec1pub));
        ck_assert_int_eq(sh("grep -q 'BEGIN EC PRIVATE KEY' '%s' && ! openssl asn1parse -in '%s' "
                            "| grep -q 'cont \\[ 1 \\]'", at("nopub.pem"), at("nopub.pem")), 0);
        hyb_key_unref(nopub);
        ck_assert(hyb_key_equal(p8, pub));
        ck_assert(!hyb_key_equal(p8, sec1));
        ck_assert_str_ne(hyb_key_get_kid(p8), hyb_key_get_kid(sec1));
        ck_assert_uint_eq(strlen(hyb_key_get_kid(p8)), 43);

        /* what the PKCS#8 key signs, its public key verifies, and Python agrees */
        uint8_t sig[64];
        ck_assert_int_eq(hyb_key_sign(p8, "m", 1, sig), 0);
        ck_assert_int_eq(hyb_key_verify(pub, "m", 1, sig, 64), 0);
        ck_assert_int_eq(hyb_key_verify(sec1pub, "m", 1, sig, 64), HYB_E_AUTH);
        ours_verifies_in_python(params, at("params.pem"));
        hyb_key_unref(sec1);
        hyb_key_unref(params);
        hyb_key_unref(p8);
        hyb_key_unref(pub);
        hyb_key_unref(sec1pub);
}
END_TEST

/* Our files are what OpenSSL writes for the same key, byte for byte. */
START_TEST(test_our_files_in_openssl)
{
        hyb_key *k = NULL;
        hyb_error e = { 0 };

        ck_assert_int_eq(hyb_key_generate(&k), 0);
        ck_assert_int_eq(hyb_key_save_private(k, at("k.pem"), &e), 0);
        ck_assert_int_eq(hyb_key_save_public(k, at("k.pub"), &e), 0);
        ck_assert_int_eq(sh("cd '%s' && openssl pkey -in k.pem -out o.pem && cmp -s k.pem o.pem"
                            " && openssl pkey -in k.pem -pubout -out o.pub && cmp -s k.pub o.pub"
                            " && openssl pkey -pubin -in k.pub -out o2.pub && cmp -s k.pub o2.pub",
                            dir), 0);
        ck_assert_int_eq(sh("head -1 '%s' | grep -qx -- '-----BEGIN PRIVATE KEY-----'", at("k.pem")), 0);
        ck_assert_int_eq(sh("head -1 '%s' | grep -qx -- '-----BEGIN PUBLIC KEY-----'", at("k.pub")), 0);
        /* an OpenSSL signature (DER) of a file, converted to raw r||s by Python, verifies here */
        ck_assert_int_eq(sh("cd '%s' && printf 'openssl signed' > m && "
                            "openssl dgst -sha256 -sign k.pem -out m.der m", dir), 0);
        char *hex = sh_out(TEST_PYTHON " -c \"import sys; from cryptography.hazmat.primitives."
                           "asymmetric.utils import decode_dss_signature as d; "
                           "N=0x" P256_N_HEX "; r,s=d(open(sys.argv[1],'rb').read()); "
                           "s=min(s,N-s); print((r.to_bytes(32,'big')+s.to_bytes(32,'big')).hex())\""
                           " '%s'", at("m.der"));
        ck_assert_ptr_nonnull(hex);
        uint8_t sig[64];
        hex_to_bytes(hex, sig, 64);
        ck_assert_int_eq(hyb_key_verify(k, "openssl signed", 14, sig, 64), 0);
        ck_assert_int_eq(hyb_key_verify(k, "openssl signeD", 14, sig, 64), HYB_E_AUTH);
        free(hex);
        hyb_key_unref(k);
}
END_TEST

/* ---------------------------------------------- Python `cryptography` */

START_TEST(test_python_keys_load)
{
        static const char *const priv[] = { "py-pkcs8.pem", "py-sec1.pem", "py-priv.jwk" };
        static const char *const pub[] = { "py-spki.pem", "py-pub.jwk" };

        ck_assert_int_eq(sh(TEST_PYTHON " '%s' genkeys '%s'", interop_py(), dir), 0);
        char *kid = sh_out("cat '%s'", at("py-kid"));
        ck_assert_ptr_nonnull(kid);
        for (size_t i = 0; i < 3; i++) {
                hyb_key *k = load_ok(at(priv[i]));
                ck_assert(hyb_key_has_private(k));
                /* the kid Python computed from the canonical JSON */
                ck_assert_str_eq(hyb_key_get_kid(k), kid);
                hyb_key_unref(k);
        }
        for (size_t i = 0; i < 2; i++) {
                hyb_key *k = load_ok(at(pub[i]));
                ck_assert(!hyb_key_has_private(k));
                ck_assert_str_eq(hyb_key_get_kid(k), kid);
                hyb_key_unref(k);
        }
        free(kid);
}
END_TEST

START_TEST(test_python_signatures)
{
        ck_assert_int_eq(sh(TEST_PYTHON " '%s' genkeys '%s'", interop_py(), dir), 0);
        hyb_key *priv = load_ok(at("py-sec1.pem")), *pub = load_ok(at("py-spki.pem"));
        static const char msg[] = "signed by cryptography";
        uint8_t low[64], high[64];

        write_text(at("msg"), msg);
        /* Python's signature, as raw r||s in its low-S and its high-S form */
        char *out = sh_out(TEST_PYTHON " '%s' sign '%s' '%s'", interop_py(), at("py-pkcs8.pem"),
                           at("msg"));
        ck_assert_ptr_nonnull(out);
        char *nl = strchr(out, '\n');
        ck_assert_ptr_nonnull(nl);
        hex_to_bytes(out, low, 64);
        hex_to_bytes(nl + 1, high, 64);
        free(out);
        ck_assert_int_eq(hyb_key_verify(pub, msg, strlen(msg), low, 64), 0);
        ck_assert_int_eq(hyb_key_verify(priv, msg, strlen(msg), low, 64), 0);
        /* high-S: valid ECDSA for Python, refused here */
        ck_assert_int_eq(hyb_key_verify(pub, msg, strlen(msg), high, 64), HYB_E_AUTH);
        /* DER instead of raw */
        uint8_t der[72];
        size_t dl = der_signature(low, der);
        ck_assert_int_eq(hyb_key_verify(pub, msg, strlen(msg), der, dl), HYB_E_AUTH);
        /* ours, verified by Python */
        ours_verifies_in_python(priv, at("py-spki.pem"));
        hyb_key_unref(priv);
        hyb_key_unref(pub);
}
END_TEST

/* A JWS signed by hyb_key_sign is an ES256 JWT for PyJWT (Debian's python3-jwt). */
START_TEST(test_pyjwt_verifies_our_jws)
{
        static const char header[] = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
        static const char payload[] = "{\"sub\":\"device-7\",\"exp\":4102444800}";
        hyb_key *k = NULL;
        hyb_error e = { 0 };
        char h64[64], p64[96], s64[96], signing[256], token[512];
        uint8_t sig[64];

        ck_assert_int_eq(hyb_key_generate(&k), 0);
        ck_assert_int_eq(hyb_key_save_public(k, at("k.pub"), &e), 0);
        b64u_encode_to(header, strlen(header), h64);
        b64u_encode_to(payload, strlen(payload), p64);
        snprintf(signing, sizeof(signing), "%s.%s", h64, p64);
        ck_assert_int_eq(hyb_key_sign(k, signing, strlen(signing), sig), 0);
        b64u_encode_to(sig, 64, s64);
        snprintf(token, sizeof(token), "%s.%s", signing, s64);
        char *claims = sh_out(TEST_PYTHON " '%s' jws '%s' '%s'", interop_py(), at("k.pub"), token);
        ck_assert_ptr_nonnull(claims);
        ck_assert_str_eq(claims, "{\"exp\": 4102444800, \"sub\": \"device-7\"}");
        free(claims);
        /* PyJWT refuses the same token with another payload (the check can fail) */
        snprintf(token, sizeof(token), "%s.%s.%s", h64, "eyJzdWIiOiJyb290In0", s64);
        ck_assert_int_ne(sh(TEST_PYTHON " '%s' jws '%s' '%s' 2>/dev/null", interop_py(),
                            at("k.pub"), token), 0);
        hyb_key_unref(k);
}
END_TEST

/* ------------------------------------------------------------ RFC 7638 */

START_TEST(test_rfc7638_thumbprint)
{
        /* RFC 7517 appendix A.1, the EC public key example */
        static const char x[] = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
        static const char y[] = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";
        char jwk[512];
        hyb_key *k = NULL, *k2 = NULL;
        hyb_error e = { 0 };

        snprintf(jwk, sizeof(jwk), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\","
                                   "\"use\":\"enc\",\"kid\":\"1\"}", x, y);
        ck_assert_int_eq(load_text(jwk, &k, &e), 0);
        char *want = sh_out(TEST_PYTHON " '%s' thumbprint %s %s", interop_py(), x, y);
        ck_assert_ptr_nonnull(want);
        ck_assert_str_eq(hyb_key_get_kid(k), want);
        /* member order, whitespace and extra members do not change it; `kid` is recomputed */
        snprintf(jwk, sizeof(jwk), " {\n \"y\": \"%s\", \"alg\": \"ES256\",\n \"x\": \"%s\", "
                                   "\"crv\": \"P-256\", \"kty\": \"EC\", \"kid\": \"%s\" }\n",
                 y, x, "not-the-thumbprint");
        ck_assert_int_eq(load_text(jwk, &k2, &e), 0);
        ck_assert_str_eq(hyb_key_get_kid(k2), want);
        /* the export carries the thumbprint as its kid */
        char *out = NULL;
        ck_assert_int_eq(hyb_key_to_jwk(k, HYB_KEY_EXPORT_PUBLIC, &out), 0);
        ck_assert_ptr_nonnull(strstr(out, want));
        ck_assert_ptr_null(strstr(out, "\"d\""));
        hyb_free(out);
        free(want);
        hyb_key_unref(k);
        hyb_key_unref(k2);

        /* RFC 7638 section 3.1's example is an RSA key: refused, with the reason */
        k = NULL;
        ck_assert_int_eq(load_text("{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFb"
                                   "WhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjh"
                                   "MstzAA\",\"e\":\"AQAB\"}", &k, &e),
                         HYB_E_NOT_ACCEPTABLE);
        ck_assert_ptr_null(k);
        ck_assert_ptr_nonnull(strstr(e.message, "RSA"));
        ck_assert_ptr_nonnull(strstr(e.message, "P-256"));
}
END_TEST

/* ---------------------------------------------------------------- JWK */

START_TEST(test_jwk_round_trips)
{
        hyb_key *k = NULL, *pub = NULL, *priv = NULL, *pem = NULL;
        hyb_error e = { 0 };
        char *s = NULL;
        uint8_t sig[64];

        ck_assert_int_eq(hyb_key_generate(&k), 0);
        ck_assert(hyb_key_has_private(k));
        ck_assert_int_eq(hyb_key_to_jwk(k, HYB_KEY_EXPORT_PUBLIC, &s), 0);
        ck_assert_ptr_null(strstr(s, "\"d\""));
        ck_assert_int_eq(load_text(s, &pub, &e), 0);
        hyb_free(s);
        ck_assert(!hyb_key_has_private(pub));
        ck_assert(hyb_key_equal(k, pub));
        ck_assert_str_eq(hyb_key_get_kid(k), hyb_key_get_kid(pub));

        ck_assert_int_eq(hyb_key_to_jwk(k, HYB_KEY_EXPORT_PRIVATE, &s), 0);
        ck_assert_ptr_nonnull(strstr(s, "\"d\":\""));
        ck_assert_int_eq(load_text(s, &priv, &e), 0);
        hyb_free(s);
        ck_assert(hyb_key_has_private(priv));
        ck_assert_int_eq(hyb_key_sign(priv, "x", 1, sig), 0);
        ck_assert_int_eq(hyb_key_verify(k, "x", 1, sig, 64), 0);

        /* PEM both ways */
        ck_assert_int_eq(hyb_key_to_pem(k, HYB_KEY_EXPORT_PRIVATE, &s), 0);
        ck_assert_int_eq(load_text(s, &pem, &e), 0);
        hyb_free(s);
        ck_assert(hyb_key_has_private(pem) && hyb_key_equal(pem, k));
        hyb_key_unref(pem);
        ck_assert_int_eq(hyb_key_to_pem(k, HYB_KEY_EXPORT_PUBLIC, &s), 0);
        ck_assert_int_eq(load_text(s, &pem, &e), 0);
        hyb_free(s);
        ck_assert(!hyb_key_has_private(pem) && hyb_key_equal(pem, k));
        hyb_key_unref(pem);

        /* a public key has no private part to export, sign with or save */
        s = NULL;
        ck_assert_int_eq(hyb_key_to_jwk(pub, HYB_KEY_EXPORT_PRIVATE, &s), -ENOKEY);
        ck_assert_int_eq(hyb_key_to_pem(pub, HYB_KEY_EXPORT_PRIVATE, &s), -ENOKEY);
        ck_assert_ptr_null(s);
        ck_assert_int_eq(hyb_key_sign(pub, "x", 1, sig), -ENOKEY);
        ck_assert_int_eq(hyb_key_save_private(pub, at("nope"), &e), -ENOKEY);
        ck_assert_int_eq(access(at("nope"), F_OK), -1);
        ck_assert_int_eq(hyb_key_to_jwk(k, 1 << 5, &s), -EINVAL);
        hyb_key_unref(k);
        hyb_key_unref(pub);
        hyb_key_unref(priv);
        ck_assert_ptr_null(hyb_key_unref(NULL));
        ck_assert_ptr_null(hyb_key_get_kid(NULL));
        ck_assert(!hyb_key_has_private(NULL));
}
END_TEST

START_TEST(test_jwk_refused)
{
        hyb_key *a = NULL, *b = NULL, *k = NULL;
        hyb_error e = { 0 };
        char *ja = NULL, *jb = NULL, buf[1024];

        ck_assert_int_eq(hyb_key_generate(&a), 0);
        ck_assert_int_eq(hyb_key_generate(&b), 0);
        ck_assert_int_eq(hyb_key_to_jwk(a, HYB_KEY_EXPORT_PRIVATE, &ja), 0);
        ck_assert_int_eq(hyb_key_to_jwk(b, HYB_KEY_EXPORT_PRIVATE, &jb), 0);
        /* pick out a's x, y, d and b's d */
        char ax[44], ay[44], ad[44], bd[44];
        ck_assert_int_eq(sscanf(strstr(ja, "\"x\":"), "\"x\":\"%43[^\"]", ax), 1);
        ck_assert_int_eq(sscanf(strstr(ja, "\"y\":"), "\"y\":\"%43[^\"]", ay), 1);
        ck_assert_int_eq(sscanf(strstr(ja, "\"d\":"), "\"d\":\"%43[^\"]", ad), 1);
        ck_assert_int_eq(sscanf(strstr(jb, "\"d\":"), "\"d\":\"%43[^\"]", bd), 1);
        hyb_free(ja);
        hyb_free(jb);

#define REFUSED(code, ...)                                                     \
        do {                                                                   \
                snprintf(buf, sizeof(buf), __VA_ARGS__);                       \
                k = NULL;                                                      \
                ck_assert_msg(load_text(buf, &k, &e) == (code), "%s -> %s", buf, \
                              e.message);                                      \
                ck_assert_ptr_null(k);                                         \
        } while (0)

        /* d of another key */
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}",
                ax, ay, bd);
        /* a coordinate 31 bytes long, padded, non-canonical, or in the standard alphabet */
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%.40s\",\"y\":\"%s\"}", ax, ay);
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s=\",\"y\":\"%s\"}", ax, ay);
        /* 43 characters carry 258 bits: the last one's low 2 bits must be zero */
        static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char noncanon = alpha[(strchr(alpha, ax[42]) - alpha) | 1];
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%.42s%c\",\"y\":\"%s\"}", ax,
                noncanon, ay);
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%.42s+\",\"y\":\"%s\"}", ax, ay);
        /* off the curve: y of another point */
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", ax, ax);
        /* duplicate members, missing members, wrong types, not JSON */
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"x\":\"%s\"}",
                ax, ay, ay);
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\"}", ax);
        REFUSED(HYB_E_PARSE, "{\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", ax, ay);
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":7,\"y\":\"%s\"}", ay);
        REFUSED(HYB_E_PARSE, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"", ax, ay);
        REFUSED(HYB_E_PARSE, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
                ax, ay);
        /* other kinds of key: named in the message */
        REFUSED(HYB_E_NOT_ACCEPTABLE, "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"}", ax,
                ay);
        ck_assert_ptr_nonnull(strstr(e.message, "P-384"));
        REFUSED(HYB_E_NOT_ACCEPTABLE, "{\"kty\":\"oct\",\"k\":\"%s\"}", ad);
        REFUSED(HYB_E_NOT_ACCEPTABLE, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", ax);
        ck_assert_ptr_nonnull(strstr(e.message, "OKP"));
#undef REFUSED
        hyb_key_unref(a);
        hyb_key_unref(b);
}
END_TEST

/* ------------------------------------------------ other keys, bad files */

START_TEST(test_wrong_kind_of_key)
{
        static const struct {
                const char *file, *needle;
        } v[] = {
                { "p384-pkcs8.pem", "secp384r1" }, { "p384-sec1.pem", "secp384r1" },
                { "p384.pub", "secp384r1" },       { "rsa-pkcs8.pem", "RSA" },
                { "rsa-trad.pem", "RSA" },         { "rsa.pub", "RSA" },
                { "ed25519.pem", "P-256" },        { "py-p384.pem", "secp384r1" },
                { "py-rsa.pem", "RSA" },
        };

        ck_assert_int_eq(sh("{ cd '%s' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384"
                            " -out p384-pkcs8.pem && openssl ecparam -name secp384r1 -genkey -noout"
                            " -out p384-sec1.pem && openssl pkey -in p384-sec1.pem -pubout -out p384.pub"
                            " && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024"
                            " -out rsa-pkcs8.pem && openssl rsa -in rsa-pkcs8.pem -traditional"
                            " -out rsa-trad.pem && openssl pkey -in rsa-pkcs8.pem -pubout -out rsa.pub"
                            " && openssl genpkey -algorithm ed25519 -out ed25519.pem; } 2>/dev/null",
                            dir), 0);
        ck_assert_int_eq(sh(TEST_PYTHON " '%s' genkeys '%s'", interop_py(), dir), 0);
        ck_assert_int_eq(sh("grep -q 'BEGIN RSA PRIVATE KEY' '%s'", at("rsa-trad.pem")), 0);
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                hyb_key *k = NULL;
                hyb_error e = { 0 };
                int r = hyb_key_load_file(at(v[i].file), &k, &e);

                ck_assert_msg(r == HYB_E_NOT_ACCEPTABLE, "%s: %s (%s)", v[i].file, e.message,
                              hyb_err_name(r));
                ck_assert_ptr_null(k);
                ck_assert_msg(strstr(e.message, v[i].needle) && strstr(e.message, "P-256") &&
                                      strstr(e.message, v[i].file),
                              "%s: unclear message '%s'", v[i].file, e.message);
        }
}
END_TEST

START_TEST(test_bad_key_files)
{
        hyb_key *k = NULL, *g = NULL;
        hyb_error e = { 0 };

        /* an encrypted PKCS#8 key */
        ck_assert_int_eq(sh("cd '%s' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
                            " -aes-256-cbc -pass pass:secret -out enc.pem", dir), 0);
        ck_assert_int_eq(hyb_key_load_file(at("enc.pem"), &k, &e), HYB_E_PARSE);
        ck_assert_ptr_nonnull(strstr(e.message, "encrypted"));
        /* a SubjectPublicKeyInfo whose point is off the curve (y + 1) */
        ck_assert_int_eq(hyb_key_generate(&g), 0);
        char *pem = NULL;
        ck_assert_int_eq(hyb_key_to_pem(g, HYB_KEY_EXPORT_PUBLIC, &pem), 0);
        write_text(at("g.pub"), pem);
        hyb_free(pem);
        ck_assert_int_eq(sh("cd '%s' && openssl pkey -pubin -in g.pub -outform DER -out g.der"
                            " && " TEST_PYTHON " -c \"import sys,base64; d=bytearray(open('g.der','rb')"
                            ".read()); d[-1]^=1; open('bad.pub','w').write('-----BEGIN PUBLIC KEY-----\\n'"
                            "+base64.encodebytes(bytes(d)).decode()+'-----END PUBLIC KEY-----\\n')\"",
                            dir), 0);
        ck_assert_int_eq(hyb_key_load_file(at("bad.pub"), &k, &e), HYB_E_PARSE);
        ck_assert_msg(strstr(e.message, "curve"), "%s", e.message);
        /* the same point under id-ecDH (RFC 5480: for key agreement only) */
        ck_assert_int_eq(sh("cd '%s' && " TEST_PYTHON " -c \"import base64; d=bytes.fromhex("
                            "'3057301106052b8104010c06082a8648ce3d030107034200')+open('g.der','rb')"
                            ".read()[-65:]; open('ecdh.pub','w').write('-----BEGIN PUBLIC KEY-----\\n'"
                            "+base64.encodebytes(d).decode()+'-----END PUBLIC KEY-----\\n')\" && "
                            "openssl asn1parse -in ecdh.pub | grep -q 1.3.132.1.12",
                            dir), 0);
        ck_assert_int_eq(hyb_key_load_file(at("ecdh.pub"), &k, &e), HYB_E_NOT_ACCEPTABLE);
        ck_assert_msg(strstr(e.message, "P-256"), "%s", e.message);
        /* not a key at all, a NUL inside, a missing file (named), a directory */
        write_text(at("junk"), "hello\n");
        ck_assert_int_eq(hyb_key_load_file(at("junk"), &k, &e), HYB_E_PARSE);
        ck_assert_int_eq(hyb_key_load_memory("-----BEGIN PUBLIC KEY-----\n\0", 28, &k, &e),
                         HYB_E_PARSE);
        ck_assert_int_eq(load_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                                   &k, &e), HYB_E_PARSE);
        ck_assert_int_eq(hyb_key_load_file(at("missing.pem"), &k, &e), -ENOENT);
        ck_assert_ptr_nonnull(strstr(e.message, "missing.pem"));
        ck_assert_int_eq(hyb_key_load_file(dir, &k, &e), -EINVAL);
        ck_assert_ptr_null(k);
        hyb_key_unref(g);
}
END_TEST

/* ---------------------------------------------------------- file modes */

START_TEST(test_private_file_mode)
{
        hyb_key *k = NULL, *back;
        hyb_error e = { 0 };

        ck_assert_int_eq(hyb_key_generate(&k), 0);
        /* 0600 whatever the umask */
        mode_t old = umask(0);
        ck_assert_int_eq(hyb_key_save_private(k, at("new.pem"), &e), 0);
        ck_assert_int_eq(file_mode(at("new.pem")), 0600);
        ck_assert_int_eq(hyb_key_save_public(k, at("new.pub"), &e), 0);
        ck_assert_int_eq(file_mode(at("new.pub")), 0644);
        umask(077);
        ck_assert_int_eq(hyb_key_save_private(k, at("new2.pem"), &e), 0);
        ck_assert_int_eq(file_mode(at("new2.pem")), 0600);
        umask(0);

        /* an existing file keeps a narrower mode and loses a wider one */
        write_text(at("ro.pem"), "old");
        ck_assert_int_eq(chmod(at("ro.pem"), 0400), 0);
        ck_assert_int_eq(hyb_key_save_private(k, at("ro.pem"), &e), 0);
        ck_assert_int_eq(file_mode(at("ro.pem")), 0400);
        write_text(at("wide.pem"), "old");
        ck_assert_int_eq(chmod(at("wide.pem"), 0666), 0);
        ck_assert_int_eq(hyb_key_save_private(k, at("wide.pem"), &e), 0);
        ck_assert_int_eq(file_mode(at("wide.pem")), 0600);
        write_text(at("narrow.pub"), "old");
        ck_assert_int_eq(chmod(at("narrow.pub"), 0600), 0);
        ck_assert_int_eq(hyb_key_save_public(k, at("narrow.pub"), &e), 0);
        ck_assert_int_eq(file_mode(at("narrow.pub")), 0600);
        umask(old);

        /* the replaced files hold the key, and no temporary file is left */
        back = load_ok(at("ro.pem"));
        ck_assert(hyb_key_has_private(back) && hyb_key_equal(back, k));
        hyb_key_unref(back);
        back = load_ok(at("narrow.pub"));
        ck_assert(hyb_key_equal(back, k));
        hyb_key_unref(back);
        ck_assert_int_eq(sh("ls -A '%s' | grep -q tmp", dir), 1);
        ck_assert_int_eq(sh("ls -A '%s' | wc -l | grep -qx 6", dir), 0);

        /* not a regular file, and a directory that does not exist: refused, named */
        ck_assert_int_eq(hyb_key_save_private(k, dir, &e), -EEXIST);
        ck_assert_int_lt(hyb_key_save_private(k, at("no/such/dir.pem"), &e), 0);
        ck_assert_ptr_nonnull(strstr(e.message, "no/such/dir.pem:"));
        ck_assert_ptr_null(strstr(e.message, ".tmp"));
        hyb_key_unref(k);
}
END_TEST

/* One key signs and verifies from several threads at once (a key is immutable). */
static void *sign_many(void *ud)
{
        const hyb_key *k = ud;
        uint8_t sig[64];
        long bad = 0;

        for (int i = 0; i < 25; i++) {
                if (hyb_key_sign(k, &i, sizeof(i), sig) != 0 ||
                    hyb_key_verify(k, &i, sizeof(i), sig, 64) != 0)
                        bad++;
                i ^= 1 << 20;
                if (hyb_key_verify(k, &i, sizeof(i), sig, 64) != HYB_E_AUTH)
                        bad++;
                i ^= 1 << 20;
        }
        return (void *)bad;
}

START_TEST(test_key_shared_between_threads)
{
        pthread_t t[4];
        hyb_key *k = NULL;
        void *bad;

        ck_assert_int_eq(hyb_key_generate(&k), 0);
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(pthread_create(&t[i], NULL, sign_many, hyb_key_ref(k)), 0);
        for (int i = 0; i < 4; i++) {
                ck_assert_int_eq(pthread_join(t[i], &bad), 0);
                ck_assert_ptr_null(bad);
                hyb_key_unref(k);
        }
        hyb_key_unref(k);
}
END_TEST

/*
 * The crypto layer keeps one P-256 group per thread (freed when the thread exits):
 * waves of short-lived threads each make a key, sign with it and with a shared key,
 * and verify a signature the main thread made; the main thread then checks what
 * each of them signed.  A group used by two threads at once, or freed while in use,
 * shows as a wrong answer here (and under ASan or valgrind as an error or a leak).
 */
struct wave_arg {
        const hyb_key *shared;
        uint8_t main_sig[64];
        hyb_key *own;            /* out: the thread's key */
        uint8_t own_sig[64];     /* out: by own over "wave" */
        uint8_t shared_sig[64];  /* out: by shared over "wave" */
        long bad;
};

static void *wave_thread(void *ud)
{
        struct wave_arg *a = ud;

        if (hyb_key_generate(&a->own) != 0 || hyb_key_sign(a->own, "wave", 4, a->own_sig) != 0 ||
            hyb_key_sign(a->shared, "wave", 4, a->shared_sig) != 0)
                a->bad++;
        if (hyb_key_verify(a->shared, "main", 4, a->main_sig, 64) != 0)
                a->bad++;
        if (hyb_key_verify(a->shared, "mail", 4, a->main_sig, 64) != HYB_E_AUTH)
                a->bad++;
        return NULL;
}

START_TEST(test_key_groups_per_thread)
{
        struct wave_arg a[6];
        pthread_t t[6];
        hyb_key *shared = NULL;
        uint8_t main_sig[64];

        ck_assert_int_eq(hyb_key_generate(&shared), 0);
        ck_assert_int_eq(hyb_key_sign(shared, "main", 4, main_sig), 0);
        for (int wave = 0; wave < 4; wave++) {
                for (int i = 0; i < 6; i++) {
                        a[i] = (struct wave_arg){.shared = shared};
                        memcpy(a[i].main_sig, main_sig, 64);
                        ck_assert_int_eq(pthread_create(&t[i], NULL, wave_thread, &a[i]), 0);
                }
                for (int i = 0; i < 6; i++) {
                        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
                        ck_assert_int_eq(a[i].bad, 0);
                        ck_assert_ptr_nonnull(a[i].own);
                        ck_assert_int_eq(hyb_key_verify(a[i].own, "wave", 4, a[i].own_sig, 64), 0);
                        ck_assert_int_eq(hyb_key_verify(shared, "wave", 4, a[i].shared_sig, 64), 0);
                        /* each thread's key is its own: its signature is no other key's */
                        ck_assert_int_eq(hyb_key_verify(shared, "wave", 4, a[i].own_sig, 64),
                                         HYB_E_AUTH);
                        hyb_key_unref(a[i].own);
                }
        }
        hyb_key_unref(shared);
}
END_TEST

Suite *token_keys_suite(void)
{
        Suite *s = suite_create("token_keys");
        TCase *tc = tcase_create("keys");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_openssl_keys_load);
        tcase_add_test(tc, test_our_files_in_openssl);
        tcase_add_test(tc, test_python_keys_load);
        tcase_add_test(tc, test_python_signatures);
        tcase_add_test(tc, test_pyjwt_verifies_our_jws);
        tcase_add_test(tc, test_rfc7638_thumbprint);
        tcase_add_test(tc, test_jwk_round_trips);
        tcase_add_test(tc, test_jwk_refused);
        tcase_add_test(tc, test_wrong_kind_of_key);
        tcase_add_test(tc, test_bad_key_files);
        tcase_add_test(tc, test_private_file_mode);
        tcase_add_test(tc, test_key_shared_between_threads);
        tcase_add_test(tc, test_key_groups_per_thread);
        suite_add_tcase(s, tc);
        return s;
}
