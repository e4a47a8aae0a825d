/* SPDX-License-Identifier: MIT */
/*
 * edge_suite: what the HTTP edge parses itself (doc/edge.md): DPoP proofs (RFC 9449 as
 * doc/edge.md "Authentication" describes them: accepted once, replay, another key, method,
 * URL, token, time, typ; a signature in its high-S form accepted as WebCrypto makes it),
 * route paths (decoded once, names, fURIs) and query strings (values as JSON, else text);
 * for CoAP (doc/edge.md "CoAP"), the path of the Uri-Path options and the params of the
 * Uri-Query options;
 * the WebSocket upgrade request's checks (RFC 6455 section 4.2.1, its example key) and the
 * one-packet-per-message check (doc/edge.md "WebSocket: remote bus peers").
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "edge/coap-parse.h"
#include "edge/edge-internal.h"
#include "suites.h"
#include "token/crypto.h"

#define NOW 1700000000
#define HTU "http://127.0.0.1:8080/store/x"
static const char TOKEN[] = "a.token.text";

/* A proof by key with these claims; high_s: the signature's other form (n - s). */
static char *proof(const hyb_key *key, const char *typ, const char *htm, const char *htu,
                   long long iat, const char *jti, const char *token, bool high_s)
{
        static const uint8_t n[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                      0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
        uint8_t th[CRYPTO_SHA256_LEN], sig[64];
        char *jwk = NULL, *h64 = NULL, *c64 = NULL, *s64 = NULL, *ath = NULL, *out = NULL, *hdr,
             *cl;
        json_t *j;

        ck_assert_int_eq(hyb_key_to_jwk(key, 0, &jwk), 0);
        j = json_pack("{s:s, s:s, s:o}", "typ", typ, "alg", "ES256", "jwk",
                      json_loads(jwk, 0, NULL));
        hdr = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        crypto_sha256(token, strlen(token), th);
        ck_assert_int_eq(b64u_encode(th, sizeof th, &ath), 0);
        j = json_pack("{s:s, s:s, s:I, s:s, s:s}", "htm", htm, "htu", htu, "iat", (json_int_t)iat,
                      "jti", jti, "ath", ath);
        cl = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        ck_assert_int_eq(b64u_encode(hdr, strlen(hdr), &h64), 0);
        ck_assert_int_eq(b64u_encode(cl, strlen(cl), &c64), 0);
        ck_assert_int_ge(asprintf(&out, "%s.%s", h64, c64), 0);
        ck_assert_int_eq(hyb_key_sign(key, out, strlen(out), sig), 0);
        if (high_s) {
                int borrow = 0;

                for (int i = 31; i >= 0; i--) {
                        int d = (int)n[i] - (int)sig[32 + i] - borrow;

                        borrow = d < 0;
                        sig[32 + i] = (uint8_t)(d + (borrow ? 256 : 0));
                }
        }
        ck_assert_int_eq(b64u_encode(sig, sizeof sig, &s64), 0);
        char *full = NULL;
        ck_assert_int_ge(asprintf(&full, "%s.%s", out, s64), 0);
        free(jwk);
        free(hdr);
        free(cl);
        free(h64);
        free(c64);
        free(s64);
        free(ath);
        free(out);
        return full;
}

static int check(struct edge_dpop_cache **cache, const char *p, const hyb_key *holder,
                 const char *htm, hyb_error *e)
{
        return edge_dpop_check(cache, p, strlen(p), holder, htm, HTU, TOKEN, strlen(TOKEN), NOW, e);
}

START_TEST(test_dpop)
{
        struct edge_dpop_cache *cache = NULL;
        hyb_key *holder = NULL, *other = NULL;
        hyb_error e;
        char *p;

        ck_assert_int_eq(hyb_key_generate(&holder), 0);
        ck_assert_int_eq(hyb_key_generate(&other), 0);

        p = proof(holder, "dpop+jwt", "GET", HTU, NOW, "jti-000000000001", TOKEN, false);
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), 0);
        /* the same proof again: refused (jti) */
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_nonnull(strstr(e.message, "used before"));
        free(p);

        /* the high-S form of a valid signature is the same signature: accepted */
        p = proof(holder, "dpop+jwt", "GET", HTU, NOW, "jti-000000000002", TOKEN, true);
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), 0);
        free(p);

        /* refusals, each for its reason */
        p = proof(other, "dpop+jwt", "GET", HTU, NOW, "jti-000000000003", TOKEN, false);
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_nonnull(strstr(e.message, "holder"));
        free(p);
        p = proof(holder, "dpop+jwt", "GET", HTU, NOW, "jti-000000000004", TOKEN, false);
        ck_assert_int_eq(check(&cache, p, holder, "POST", &e), HYB_E_UNAUTHORIZED);
        free(p);
        p = proof(holder, "dpop+jwt", "GET", "http://127.0.0.1:8080/store/y", NOW,
                  "jti-000000000005", TOKEN, false);
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), HYB_E_UNAUTHORIZED);
        free(p);
        p = proof(holder, "dpop+jwt", "GET", HTU, NOW - 61, "jti-000000000006", TOKEN, false);
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_nonnull(strstr(e.message, "iat"));
        free(p);
        p = proof(holder, "dpop+jwt", "GET", HTU, NOW + 61, "jti-000000000007", TOKEN, false);
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), HYB_E_UNAUTHORIZED);
        free(p);
        p = proof(holder, "dpop+jwt", "GET", HTU, NOW, "jti-000000000008", "another.token", false);
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_nonnull(strstr(e.message, "ath"));
        free(p);
        p = proof(holder, "JWT", "GET", HTU, NOW, "jti-000000000009", TOKEN, false);
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), HYB_E_UNAUTHORIZED);
        free(p);
        p = proof(holder, "dpop+jwt", "GET", HTU, NOW, "short", TOKEN, false);
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), HYB_E_UNAUTHORIZED);
        free(p);
        /* a changed claim after signing */
        p = proof(holder, "dpop+jwt", "GET", HTU, NOW, "jti-000000000010", TOKEN, false);
        char *dot = strchr(p, '.');
        dot[1] = dot[1] == 'e' ? 'f' : 'e';
        ck_assert_int_eq(check(&cache, p, holder, "GET", &e), HYB_E_UNAUTHORIZED);
        free(p);
        ck_assert_int_eq(check(&cache, "", holder, "GET", &e), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(check(&cache, "a.b", holder, "GET", &e), HYB_E_UNAUTHORIZED);
        ck_assert_int_eq(check(&cache, "a.b.c.d", holder, "GET", &e), HYB_E_UNAUTHORIZED);

        edge_dpop_cache_free(cache);
        hyb_key_unref(holder);
        hyb_key_unref(other);
}
END_TEST

/* One holder's proofs take EDGE_DPOP_JTI_PER_HOLDER slots of the replay cache at most: a
 * holder sending valid proofs as fast as it can is refused past it, another holder is
 * still served (without the share, 4 096 proofs of one holder locked every holder out for
 * the 60 s window). */
START_TEST(test_dpop_holder_share)
{
        struct edge_dpop_cache *cache = NULL;
        hyb_key *greedy = NULL, *other = NULL;
        uint8_t h[32];
        char *p;
        hyb_error e;

        /* A holder alone may use the first half of the cache (a client polling fast is served) */
        memset(h, 0, sizeof h);
        for (unsigned i = 0; i < EDGE_DPOP_JTI_SLOTS / 2; i++) {
                memcpy(h, &i, sizeof i);
                ck_assert_int_eq(edge_dpop_remember(&cache, h, 1, NOW, NOW, &e), 0);
        }
        /* ... then, past its share, it waits while other holders are served */
        unsigned over = EDGE_DPOP_JTI_SLOTS;
        memcpy(h, &over, sizeof over);
        ck_assert_int_eq(edge_dpop_remember(&cache, h, 1, NOW, NOW, &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_nonnull(strstr(e.message, "too many proofs of this holder"));
        for (unsigned i = 0; i < EDGE_DPOP_JTI_PER_HOLDER; i++) {
                unsigned k = EDGE_DPOP_JTI_SLOTS + 1 + i;
                memcpy(h, &k, sizeof k);
                ck_assert_int_eq(edge_dpop_remember(&cache, h, 2, NOW, NOW, &e), 0);
        }
        /* the second holder is past its share now too */
        unsigned k2 = 3 * EDGE_DPOP_JTI_SLOTS;
        memcpy(h, &k2, sizeof k2);
        ck_assert_int_eq(edge_dpop_remember(&cache, h, 2, NOW, NOW, &e), HYB_E_UNAUTHORIZED);
        /* a replayed jti is refused whoever sends it */
        unsigned zero = 0;
        memcpy(h, &zero, sizeof zero);
        ck_assert_int_eq(edge_dpop_remember(&cache, h, 3, NOW, NOW, &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_nonnull(strstr(e.message, "used before"));

        /* Through the whole check: a signed proof of a third key is served, and once the
         * greedy holder's proofs leave the window it is served again. */
        ck_assert_int_eq(hyb_key_generate(&greedy), 0);
        ck_assert_int_eq(hyb_key_generate(&other), 0);
        p = proof(other, "dpop+jwt", "GET", HTU, NOW, "other-000000001", TOKEN, false);
        ck_assert_int_eq(check(&cache, p, other, "GET", &e), 0);
        free(p);
        edge_dpop_cache_free(cache);
        cache = NULL;
        for (unsigned i = 0; i < EDGE_DPOP_JTI_SLOTS / 2; i++) {
                memcpy(h, &i, sizeof i);
                ck_assert_int_eq(edge_dpop_remember(&cache, h, 1, NOW, NOW, &e), 0);
        }
        p = proof(greedy, "dpop+jwt", "GET", HTU, NOW + EDGE_DPOP_WINDOW_S + 2, "greedy-later-01",
                  TOKEN, false);
        ck_assert_int_eq(edge_dpop_check(&cache, p, strlen(p), greedy, "GET", HTU, TOKEN,
                                         strlen(TOKEN), NOW + EDGE_DPOP_WINDOW_S + 2, &e), 0);
        free(p);
        edge_dpop_cache_free(cache);
        hyb_key_unref(greedy);
        hyb_key_unref(other);
}
END_TEST

START_TEST(test_routes)
{
        edge_route r;
        hyb_error e;

        ck_assert_int_eq(edge_route_parse("/bus/org.example.calc/main/add", &r, &e), 0);
        ck_assert_int_eq(r.kind, EDGE_ROUTE_BUS);
        ck_assert_str_eq(r.endpoint, "@localhost/org.example.calc/main");
        ck_assert_str_eq(r.member, "add");
        edge_route_clear(&r);
        ck_assert_int_eq(edge_route_parse("/events/org.example.calc/main/tick", &r, &e), 0);
        ck_assert_int_eq(r.kind, EDGE_ROUTE_EVENTS);
        edge_route_clear(&r);
        ck_assert_int_eq(edge_route_parse("/store/public%2Fa/b", &r, &e), 0);
        ck_assert_int_eq(r.kind, EDGE_ROUTE_STORE);
        ck_assert_str_eq(r.furi, "/public/a/b"); /* decoded once */
        ck_assert_str_eq(r.path, "/store/public/a/b");
        edge_route_clear(&r);
        ck_assert_int_eq(edge_route_parse("/store/a%252Fb", &r, &e), 0);
        ck_assert_str_eq(r.path, "/store/a%2Fb"); /* once only */
        edge_route_clear(&r);
        ck_assert_int_eq(edge_route_parse("/watch/sensors/+/temp", &r, &e), 0);
        ck_assert_int_eq(r.kind, EDGE_ROUTE_WATCH);
        edge_route_clear(&r);

        ck_assert_int_eq(edge_route_parse("/bus/org.example.calc/main", &r, &e), 404);
        ck_assert_int_eq(edge_route_parse("/bus/org.example.calc/main/add/more", &r, &e), 404);
        ck_assert_int_eq(edge_route_parse("/bus/../main/add", &r, &e), 400);
        ck_assert_int_eq(edge_route_parse("/bus/org.example.calc/ma%2Fin/add", &r, &e), 404);
        ck_assert_int_eq(edge_route_parse("/store/a%00b", &r, &e), 400);
        ck_assert_int_eq(edge_route_parse("/store/", &r, &e), 400);
        ck_assert_int_eq(edge_route_parse("/store/a//b", &r, &e), 400);
        ck_assert_int_eq(edge_route_parse("/other/x", &r, &e), 404);
        ck_assert_int_eq(edge_route_parse("bus/a/b/c", &r, &e), 400);
}
END_TEST

START_TEST(test_query)
{
        char *out = NULL;

        ck_assert_int_eq(
                edge_query_params("n=5&s=abc&j=%7B%22k%22%3Atrue%7D&q=%22x%22&f=1.5&b=false", &out),
                0);
        ck_assert_str_eq(
                out,
                "{\"n\":5,\"s\":\"abc\",\"j\":{\"k\":true},\"q\":\"x\",\"f\":1.5,\"b\":false}");
        free(out);
        ck_assert_int_eq(edge_query_params("", &out), 0);
        ck_assert_str_eq(out, "{}");
        free(out);
        ck_assert_int_eq(edge_query_params(NULL, &out), 0);
        ck_assert_str_eq(out, "{}");
        free(out);
        ck_assert_int_eq(edge_query_params("a=1&a=2", &out), -EINVAL); /* a repeated key */
        ck_assert_int_eq(edge_query_params("=1", &out), -EINVAL);      /* an empty key */
}
END_TEST

/* A CoAP GET with these Uri-Path and Uri-Query options (NULL-ended lists). */
static coap_pdu_t *coap_get(const char *const *path, const char *const *query)
{
        coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, 1, 1024);

        ck_assert_ptr_nonnull(pdu);
        for (; path && *path; path++)
                ck_assert(coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(*path),
                                          (const uint8_t *)*path));
        for (; query && *query; query++)
                ck_assert(coap_add_option(pdu, COAP_OPTION_URI_QUERY, strlen(*query),
                                          (const uint8_t *)*query));
        return pdu;
}

START_TEST(test_coap_options)
{
        static const char *const p1[] = {"store", "public", "a b", "x#y", "100%", NULL};
        static const char *const p2[] = {"store", "a/b", NULL};
        static const char *const p3[] = {"store", "public", "..", "secret", NULL};
        static const char *const q1[] = {"n=5", "s=abc", "q=\"x\"", "flag", "e=a=b", NULL};
        static const char *const q2[] = {"a=1", "a=2", NULL};
        static const char *const q3[] = {"=1", NULL};
        char path[256], small[8], *out = NULL;
        coap_pdu_t *pdu;
        edge_route r;
        hyb_error e;

        coap_startup();
        /* each option one segment, percent-encoded but for unreserved and sub-delims */
        pdu = coap_get(p1, NULL);
        ck_assert_int_eq(edge_coap_path(pdu, path, sizeof path), 0);
        ck_assert_str_eq(path, "/store/public/a%20b/x%23y/100%25");
        ck_assert_int_eq(edge_coap_path(pdu, small, sizeof small), -E2BIG);
        coap_delete_pdu(pdu);
        /* a '/' inside an option is %2F: one decoding makes it a '/', as in HTTP */
        pdu = coap_get(p2, NULL);
        ck_assert_int_eq(edge_coap_path(pdu, path, sizeof path), 0);
        ck_assert_str_eq(path, "/store/a%2Fb");
        ck_assert_int_eq(edge_route_parse(path, &r, &e), 0);
        ck_assert_str_eq(r.furi, "/a/b");
        edge_route_clear(&r);
        coap_delete_pdu(pdu);
        /* dot segments reach the fURI rules as they do over HTTP */
        pdu = coap_get(p3, NULL);
        ck_assert_int_eq(edge_coap_path(pdu, path, sizeof path), 0);
        ck_assert_str_eq(path, "/store/public/../secret");
        coap_delete_pdu(pdu);
        /* no Uri-Path: "/" */
        pdu = coap_get(NULL, q1);
        ck_assert_int_eq(edge_coap_path(pdu, path, sizeof path), 0);
        ck_assert_str_eq(path, "/");
        /* Uri-Query: values as JSON, else strings; a bare key is ""; only the first '=' splits */
        ck_assert_int_eq(edge_coap_query_params(pdu, &out), 0);
        ck_assert_str_eq(out, "{\"n\":5,\"s\":\"abc\",\"q\":\"x\",\"flag\":\"\",\"e\":\"a=b\"}");
        free(out);
        coap_delete_pdu(pdu);
        pdu = coap_get(NULL, q2);
        ck_assert_int_eq(edge_coap_query_params(pdu, &out), -EINVAL); /* a repeated key */
        coap_delete_pdu(pdu);
        pdu = coap_get(NULL, q3);
        ck_assert_int_eq(edge_coap_query_params(pdu, &out), -EINVAL); /* an empty key */
        coap_delete_pdu(pdu);
        pdu = coap_get(NULL, NULL);
        ck_assert_int_eq(edge_coap_query_params(pdu, &out), 0);
        ck_assert_str_eq(out, "{}");
        free(out);
        coap_delete_pdu(pdu);
}
END_TEST

/* The URI a CoAP proof signs: RFC 7252 section 6.5 from the options. */
START_TEST(test_coap_uri)
{
        static const char *const p1[] = {"~sensors", "temp.xml", NULL};
        static const char *const p2[] = {"store", "a b", NULL};
        static const char *const q2[] = {"k=1&2", "p=/x?y", NULL};
        struct sockaddr_storage ss4, ss6;
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss4;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss6;
        uint8_t port[2] = {0x16, 0x33}, opt[EDGE_COAP_PROOF_LEN];
        char uri[256], small[20];
        edge_coap_cred c;
        coap_pdu_t *pdu;

        coap_startup();
        memset(&ss4, 0, sizeof ss4);
        memset(&ss6, 0, sizeof ss6);
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(0x7f000001);
        v4->sin_port = htons(5683);
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_loopback;
        v6->sin6_port = htons(61616);
        /* RFC 7252 6.3's example: Uri-Host, Uri-Port 5683 (the default: no port), "~" kept */
        pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, 1, 1024);
        ck_assert(coap_add_option(pdu, COAP_OPTION_URI_HOST, 11, (const uint8_t *)"example.com"));
        ck_assert(coap_add_option(pdu, COAP_OPTION_URI_PORT, 2, port));
        for (const char *const *p = p1; *p; p++)
                ck_assert(coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(*p),
                                          (const uint8_t *)*p));
        ck_assert_int_eq(edge_coap_uri(pdu, &ss6, uri, sizeof uri), 0);
        ck_assert_str_eq(uri, "coap://example.com/~sensors/temp.xml");
        ck_assert_int_eq(edge_coap_uri(pdu, &ss6, small, sizeof small), -E2BIG);
        coap_delete_pdu(pdu);
        /* no Uri-Host: the destination address; a query's "&" encoded, "/" and "?" kept */
        pdu = coap_get(p2, q2);
        ck_assert_int_eq(edge_coap_uri(pdu, &ss4, uri, sizeof uri), 0);
        ck_assert_str_eq(uri, "coap://127.0.0.1/store/a%20b?k=1%262&p=/x?y");
        ck_assert_int_eq(edge_coap_uri(pdu, &ss6, uri, sizeof uri), 0);
        ck_assert_str_eq(uri, "coap://[::1]:61616/store/a%20b?k=1%262&p=/x?y");
        /* no credentials, then one option of 120 bytes, then a second one */
        ck_assert_int_eq(edge_coap_cred_read(pdu, &c), 0);
        for (size_t i = 0; i < sizeof opt; i++)
                opt[i] = (uint8_t)i;
        ck_assert(coap_add_option(pdu, EDGE_COAP_OPT_PROOF, sizeof opt, opt));
        ck_assert_int_eq(edge_coap_cred_read(pdu, &c), 1);
        ck_assert_int_eq(c.th[31], 31);
        ck_assert(c.iat == 0x2021222324252627LL);
        ck_assert_int_eq(c.jti[0], 40);
        ck_assert_int_eq(c.sig[63], 119);
        ck_assert(coap_add_option(pdu, EDGE_COAP_OPT_PROOF, sizeof opt, opt));
        ck_assert_int_eq(edge_coap_cred_read(pdu, &c), -EINVAL);
        coap_delete_pdu(pdu);
        pdu = coap_get(p2, NULL);
        ck_assert(coap_add_option(pdu, EDGE_COAP_OPT_PROOF, sizeof opt - 1, opt));
        ck_assert_int_eq(edge_coap_cred_read(pdu, &c), -EINVAL); /* 119 bytes */
        coap_delete_pdu(pdu);
}
END_TEST

START_TEST(test_ws_upgrade)
{
        static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
        char accept[EDGE_WS_ACCEPT_SIZE];
        const char *hdr = NULL;
        hyb_error e;

        /* RFC 6455 section 1.3: the accept value of its example key */
        ck_assert_int_eq(edge_ws_check_upgrade(true, "websocket", "keep-alive, Upgrade", "13", key,
                                               "chat, hybrid.bus.v1", accept, &hdr, &e),
                         0);
        ck_assert_str_eq(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        /* tokens: case ignored for Upgrade and Connection, not for the subprotocol */
        ck_assert_int_eq(edge_ws_check_upgrade(true, "WebSocket", "UPGRADE", "13", key,
                                               "hybrid.bus.v1", accept, &hdr, &e),
                         0);
        ck_assert_int_eq(edge_ws_check_upgrade(true, "websocket", "Upgrade", "13", key,
                                               "hybrid.Bus.v1", accept, &hdr, &e),
                         400);
        ck_assert_int_eq(edge_ws_check_upgrade(true, "websocket", "Upgrade", "13", key,
                                               "hybrid.bus.v1x", accept, &hdr, &e),
                         400);
        ck_assert_int_eq(edge_ws_check_upgrade(true, "websocket", "Upgrade", "13", key, NULL,
                                               accept, &hdr, &e),
                         400);
        ck_assert_int_eq(edge_ws_check_upgrade(false, "websocket", "Upgrade", "13", key,
                                               "hybrid.bus.v1", accept, &hdr, &e),
                         400);
        ck_assert_int_eq(edge_ws_check_upgrade(true, NULL, "Upgrade", "13", key, "hybrid.bus.v1",
                                               accept, &hdr, &e),
                         426);
        ck_assert_str_eq(hdr, "Upgrade: websocket");
        ck_assert_int_eq(edge_ws_check_upgrade(true, "websocket", "keep-alive", "13", key,
                                               "hybrid.bus.v1", accept, &hdr, &e),
                         426);
        ck_assert_int_eq(edge_ws_check_upgrade(true, "websocket", "Upgrade", "8", key,
                                               "hybrid.bus.v1", accept, &hdr, &e),
                         426);
        ck_assert_str_eq(hdr, "Sec-WebSocket-Version: 13");
        /* a key must be the base64 of 16 bytes */
        ck_assert_int_eq(edge_ws_check_upgrade(true, "websocket", "Upgrade", "13", "c2hvcnQ=",
                                               "hybrid.bus.v1", accept, &hdr, &e),
                         400);
        ck_assert_int_eq(edge_ws_check_upgrade(true, "websocket", "Upgrade", "13",
                                               "dGhlIHNhbXBsZSBub25jZQ!!", "hybrid.bus.v1",
                                               accept, &hdr, &e),
                         400);
        ck_assert_int_eq(edge_ws_check_upgrade(true, "websocket", "Upgrade", "13",
                                               "dGhlIHNhbXBsZSBub25jZSE=", "hybrid.bus.v1",
                                               accept, &hdr, &e),
                         400); /* 17 bytes */
}
END_TEST

START_TEST(test_ws_packet)
{
        uint8_t hb[WIRE_HDR_SIZE + WIRE_NAMES_MAX], two[2 * WIRE_HDR_SIZE];
        struct iovec iov[2];
        wire_hdr h = {.type = WIRE_CALL, .call_id = 3};
        size_t n;

        wire_build(&h, NULL, 0, "@localhost/a/b", 14, "m", 1, "{}", 2, hb, iov);
        n = iov[0].iov_len;
        memcpy(hb + n, "{}", 2);
        ck_assert_int_eq(edge_ws_check_packet(hb, n + 2, 64), 0);
        ck_assert_int_eq(edge_ws_check_packet(hb, n + 1, 64), HYB_E_PROTOCOL); /* cut short */
        ck_assert_int_eq(edge_ws_check_packet(hb, n + 2, 1), HYB_E_PROTOCOL);  /* over max_body */
        ck_assert_int_eq(edge_ws_check_packet(hb, 3, 64), HYB_E_PROTOCOL);
        /* two PONGs in one message */
        wire_hdr p = {.type = WIRE_PONG};
        wire_hdr_encode(&p, two);
        wire_hdr_encode(&p, two + WIRE_HDR_SIZE);
        ck_assert_int_eq(edge_ws_check_packet(two, WIRE_HDR_SIZE, 64), 0);
        ck_assert_int_eq(edge_ws_check_packet(two, sizeof two, 64), HYB_E_PROTOCOL);
}
END_TEST

/* ss: the address text (IPv4 or IPv6) with a port */
static struct sockaddr_storage sa_of(const char *text, unsigned port)
{
        struct sockaddr_storage ss;

        memset(&ss, 0, sizeof ss);
        if (strchr(text, ':')) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons((uint16_t)port);
                ck_assert_int_eq(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
        } else {
                struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

                s4->sin_family = AF_INET;
                s4->sin_port = htons((uint16_t)port);
                ck_assert_int_eq(inet_pton(AF_INET, text, &s4->sin_addr), 1);
        }
        return ss;
}

static bool same(const char *a, const char *b)
{
        struct sockaddr_storage x = sa_of(a, 1000), y = sa_of(b, 2000);

        return edge_addr_same(&x, &y);
}

/* The per-address bounds count an IPv6 host by its /64, an IPv4-mapped address as IPv4
 * (doc/edge.md "Source addresses"). */
START_TEST(test_addr_same)
{
        struct sockaddr_storage k, ss;

        ck_assert(same("127.0.0.1", "127.0.0.1"));                 /* the port is not looked at */
        ck_assert(!same("127.0.0.1", "127.0.0.2"));
        ck_assert(same("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
        ck_assert(same("2001:db8:1:2:aaaa::5", "2001:db8:1:2::"));
        ck_assert(!same("2001:db8:1:2::1", "2001:db8:1:3::1"));     /* another /64 */
        ck_assert(!same("2001:db8:1:2::1", "2001:db9:1:2::1"));
        ck_assert(same("::ffff:192.0.2.7", "192.0.2.7"));           /* IPv4-mapped */
        ck_assert(same("192.0.2.7", "::ffff:192.0.2.7"));
        ck_assert(!same("::ffff:192.0.2.7", "::ffff:192.0.2.8"));   /* not one /64 */
        ck_assert(!same("::ffff:192.0.2.7", "192.0.2.8"));
        ck_assert(same("::1", "::2"));                              /* both in ::/64 */
        ck_assert(!same("::1", "127.0.0.1"));                       /* another family */
        ck_assert(!same("fe80::1", "fe80:0:0:1::1"));
        /* the key itself: the /64 with the rest zeroed, no port; IPv4 for a mapped one */
        ss = sa_of("2001:db8:1:2:3:4:5:6", 443);
        edge_addr_key((struct sockaddr *)&ss, &k);
        ss = sa_of("2001:db8:1:2::", 0);
        ck_assert_int_eq(memcmp(&k, &ss, sizeof k), 0);
        ss = sa_of("::ffff:10.1.2.3", 443);
        edge_addr_key((struct sockaddr *)&ss, &k);
        ss = sa_of("10.1.2.3", 0);
        ck_assert_int_eq(memcmp(&k, &ss, sizeof k), 0);
        ss.ss_family = AF_UNIX;
        edge_addr_key((struct sockaddr *)&ss, &k);
        ck_assert_int_eq(k.ss_family, 0);
}
END_TEST

Suite *edge_suite(void)
{
        Suite *s = suite_create("edge");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, test_dpop);
        tcase_add_test(tc, test_dpop_holder_share);
        tcase_add_test(tc, test_routes);
        tcase_add_test(tc, test_query);
        tcase_add_test(tc, test_coap_options);
        tcase_add_test(tc, test_coap_uri);
        tcase_add_test(tc, test_ws_upgrade);
        tcase_add_test(tc, test_ws_packet);
        tcase_add_test(tc, test_addr_same);
        suite_add_tcase(s, tc);
        return s;
}
