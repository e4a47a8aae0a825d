/* SPDX-License-Identifier: MIT */
/*
 * Credentials of an HTTP request (doc/edge.md "Authentication"):
 *
 *   Authorization: Bearer <token>     a security token (doc/token.md), verified by the
 *                                     broker's rules (auth.issuers, audience, lifetime,
 *                                     revocation: broker_edge_verify)
 *   DPoP: <proof>                     RFC 9449: a JWT signed (ES256) by the token's holder
 *                                     key over the request's method (htm), URL (htu), the
 *                                     time (iat) and a unique id (jti), naming the token's
 *                                     hash (ath)
 *
 * Every token names a holder key, so every token needs its proof: a token copied off
 * the wire is useless without the holder's private key, and a proof is good for one
 * request (jti replay cache of EDGE_DPOP_JTI_SLOTS, iat within EDGE_DPOP_WINDOW_S).
 * Without credentials a request is served only on a route edge.anonymous names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/util.h"
#include "edge-internal.h"
#include "hybrid/furi.h"
#include "token/crypto.h"

#define DPOP_MAX_BYTES 4096u
#define DPOP_JTI_MAX 128u

struct edge_dpop_cache {
        struct dpop_slot {
                uint8_t hash[CRYPTO_SHA256_LEN]; /* of the jti */
                int64_t iat;
                bool used;
        } slot[EDGE_DPOP_JTI_SLOTS];
};

void edge_dpop_cache_free(struct edge_dpop_cache *c)
{
        free(c);
}

bool edge_anonymous(const broker_config *c, const char *route)
{
        for (size_t i = 0; i < c->n_edge_anonymous; i++)
                if (hyb_furi_match_str(route, c->edge_anonymous[i], NULL) == 1)
                        return true;
        return false;
}

/* Decodes one base64url part of the JWT into a JSON object. */
static json_t *part_json(const char *s, size_t n)
{
        uint8_t *buf = NULL;
        size_t len = 0;
        json_t *j;

        if (b64u_decode(s, n, &buf, &len) < 0)
                return NULL;
        j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
        free(buf);
        if (j && !json_is_object(j)) {
                json_decref(j);
                return NULL;
        }
        return j;
}

/*
 * JOSE's ES256 does not ask for low-S, and signers such as WebCrypto make either half: a
 * high s becomes n - s (the same signature's other form) for hyb_key_verify, which takes
 * low-S only.  A proof's uniqueness rests on its jti, not on its bytes.
 */
static void low_s(uint8_t sig[64])
{
        static const uint8_t n[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                      0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
        static const uint8_t half[32] = {0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00,
                                         0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42,
                                         0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};
        uint8_t *s = sig + 32;
        int borrow = 0;

        if (memcmp(s, half, 32) <= 0 || memcmp(s, n, 32) >= 0)
                return; /* low already, or out of range: the verifier refuses it */
        for (int i = 31; i >= 0; i--) {
                int d = (int)n[i] - (int)s[i] - borrow;

                borrow = d < 0;
                s[i] = (uint8_t)(d + (borrow ? 256 : 0));
        }
}

/* Does the header's jwk name the holder key?  (Its x and y, as the holder's JWK has them.) */
static bool jwk_is_holder(json_t *jwk, const hyb_key *holder)
{
        char *text = NULL;
        json_t *h;
        bool same = false;

        if (!json_is_object(jwk) || hyb_key_to_jwk(holder, 0, &text) < 0)
                return false;
        h = json_loads(text, 0, NULL);
        free(text);
        if (h) {
                const char *x1 = json_string_value(json_object_get(jwk, "x"));
                const char *y1 = json_string_value(json_object_get(jwk, "y"));
                const char *x2 = json_string_value(json_object_get(h, "x"));
                const char *y2 = json_string_value(json_object_get(h, "y"));
                const char *kty = json_string_value(json_object_get(jwk, "kty"));
                const char *crv = json_string_value(json_object_get(jwk, "crv"));

                same = x1 && y1 && x2 && y2 && kty && crv && strcmp(kty, "EC") == 0 &&
                       strcmp(crv, "P-256") == 0 && strcmp(x1, x2) == 0 && strcmp(y1, y2) == 0 &&
                       !json_object_get(jwk, "d");
        }
        json_decref(h);
        return same;
}

int edge_dpop_check(struct edge_dpop_cache **cache, const char *proof, size_t proof_len,
                    const hyb_key *holder, const char *htm, const char *htu, const char *token,
                    size_t token_len, int64_t now, hyb_error *e)
{
        const char *d1, *d2, *typ, *alg, *m, *u, *jti, *ath;
        uint8_t sig[64], th[CRYPTO_SHA256_LEN], jh[CRYPTO_SHA256_LEN];
        char ath_want[64];
        size_t sig_len = 0, jti_len;
        json_t *hdr = NULL, *cl = NULL;
        json_int_t iat;
        int r = HYB_E_UNAUTHORIZED;

        if (!proof || proof_len == 0 || proof_len > DPOP_MAX_BYTES || memchr(proof, 0, proof_len))
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "DPoP: a proof header is required");
        d1 = memchr(proof, '.', proof_len);
        d2 = d1 ? memchr(d1 + 1, '.', proof_len - (size_t)(d1 + 1 - proof)) : NULL;
        if (!d2 || memchr(d2 + 1, '.', proof_len - (size_t)(d2 + 1 - proof)))
                return err_set(e, r, -1, "DPoP: not a compact JWS");
        hdr = part_json(proof, (size_t)(d1 - proof));
        cl = part_json(d1 + 1, (size_t)(d2 - d1 - 1));
        if (!hdr || !cl) {
                err_set(e, r, -1, "DPoP: header or claims are not base64url JSON objects");
                goto out;
        }
        typ = json_string_value(json_object_get(hdr, "typ"));
        alg = json_string_value(json_object_get(hdr, "alg"));
        if (!typ || !alg || strcmp(typ, "dpop+jwt") != 0 || strcmp(alg, "ES256") != 0) {
                err_set(e, r, -1, "DPoP: typ must be dpop+jwt and alg ES256");
                goto out;
        }
        if (!jwk_is_holder(json_object_get(hdr, "jwk"), holder)) {
                err_set(e, r, -1, "DPoP: the jwk is not the token's holder key");
                goto out;
        }
        if (b64u_decode_to(d2 + 1, proof_len - (size_t)(d2 + 1 - proof), sig, sizeof sig,
                           &sig_len) < 0 ||
            sig_len != sizeof sig ||
            (low_s(sig), hyb_key_verify(holder, proof, (size_t)(d2 - proof), sig, sig_len)) < 0) {
                err_set(e, r, -1, "DPoP: the signature is not the holder's");
                goto out;
        }
        m = json_string_value(json_object_get(cl, "htm"));
        u = json_string_value(json_object_get(cl, "htu"));
        jti = json_string_value(json_object_get(cl, "jti"));
        ath = json_string_value(json_object_get(cl, "ath"));
        if (!m || !u || !jti || !ath || !json_is_integer(json_object_get(cl, "iat"))) {
                err_set(e, r, -1, "DPoP: htm, htu, iat, jti and ath are required");
                goto out;
        }
        iat = json_integer_value(json_object_get(cl, "iat"));
        if (strcmp(m, htm) != 0 || strcmp(u, htu) != 0) {
                err_set(e, r, -1, "DPoP: the proof is for %.16s %.200s, not this request", m, u);
                goto out;
        }
        if (iat < now - EDGE_DPOP_WINDOW_S || iat > now + EDGE_DPOP_WINDOW_S) {
                err_set(e, r, -1, "DPoP: iat outside the accepted window (%d s)",
                        EDGE_DPOP_WINDOW_S);
                goto out;
        }
        crypto_sha256(token, token_len, th);
        b64u_encode_to(th, sizeof th, ath_want);
        ath_want[b64u_encoded_len(sizeof th)] = 0;
        if (strcmp(ath, ath_want) != 0) {
                err_set(e, r, -1, "DPoP: ath is not the hash of this token");
                goto out;
        }
        jti_len = strlen(jti);
        if (jti_len < 8 || jti_len > DPOP_JTI_MAX) {
                err_set(e, r, -1, "DPoP: jti must be 8..%u characters", DPOP_JTI_MAX);
                goto out;
        }
        if (cache) {
                struct dpop_slot *free_slot = NULL;

                if (!*cache && !(*cache = calloc(1, sizeof **cache))) {
                        r = -ENOMEM;
                        goto out;
                }
                crypto_sha256(jti, jti_len, jh);
                for (unsigned i = 0; i < EDGE_DPOP_JTI_SLOTS; i++) {
                        struct dpop_slot *s = &(*cache)->slot[i];

                        if (s->used && s->iat < now - EDGE_DPOP_WINDOW_S - 1)
                                s->used = false; /* outside the window: iat refuses it anyway */
                        if (s->used && memcmp(s->hash, jh, sizeof jh) == 0) {
                                err_set(e, r, -1, "DPoP: this proof (jti) was used before");
                                goto out;
                        }
                        if (!s->used && !free_slot)
                                free_slot = s;
                }
                if (!free_slot) {
                        /* Full of proofs still in their window: none may be forgotten (it
                         * could be replayed), so this one waits for room. */
                        err_set(e, r, -1, "DPoP: too many proofs in the window, try again");
                        goto out;
                }
                memcpy(free_slot->hash, jh, sizeof jh);
                free_slot->iat = iat;
                free_slot->used = true;
        }
        r = 0;
out:
        json_decref(hdr);
        json_decref(cl);
        return r;
}

/* The URL a proof names: <scheme>://<Host><path>, without the query (RFC 9449 htu). */
static int request_htu(struct evhttp_request *req, const char *scheme, char *out, size_t size)
{
        const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
        const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
        const char *path = u ? evhttp_uri_get_path(u) : NULL;
        int n;

        if (!host || !path)
                return -EINVAL;
        n = snprintf(out, size, "%s://%s%s", scheme, host, path);
        return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
        switch (cmd) {
        case EVHTTP_REQ_GET:
                return "GET";
        case EVHTTP_REQ_POST:
                return "POST";
        case EVHTTP_REQ_PUT:
                return "PUT";
        case EVHTTP_REQ_DELETE:
                return "DELETE";
        case EVHTTP_REQ_HEAD:
                return "HEAD";
        case EVHTTP_REQ_OPTIONS:
                return "OPTIONS";
        default:
                return "?";
        }
}

int edge_auth(edge_http *eh, struct evhttp_request *req, const char *scheme, const char *route,
              hyb_token_result **ret_tok, hyb_error *e)
{
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        const char *authz = evhttp_find_header(h, "Authorization");
        const char *proof = evhttp_find_header(h, "DPoP");
        hyb_token_result *tok = NULL;
        char htu[EDGE_MAX_HEADERS_BYTES + 16];
        const char *t;
        size_t tl;
        int r;

        *ret_tok = NULL;
        if (!authz) {
                if (edge_anonymous(eh->b->c, route))
                        return 0;
                err_set(e, 401, -1, "credentials required: Authorization: Bearer <token> and DPoP");
                return 401;
        }
        if (strncasecmp(authz, "Bearer ", 7) != 0 && strncasecmp(authz, "DPoP ", 5) != 0) {
                err_set(e, 401, -1, "Authorization: expected Bearer <token>");
                return 401;
        }
        t = authz + (authz[0] == 'B' || authz[0] == 'b' ? 7 : 5);
        while (*t == ' ')
                t++;
        tl = strlen(t);
        while (tl && t[tl - 1] == ' ')
                tl--;
        r = broker_edge_verify(eh->b, t, tl, &tok, e);
        if (r < 0) {
                broker_log(eh->b, HYB_LOG_INFO, "edge: 401 %s", e->message);
                err_set(e, 401, -1, "unauthorized");
                return 401;
        }
        if (request_htu(req, scheme, htu, sizeof htu) < 0 ||
            edge_dpop_check(&eh->jti, proof, proof ? strlen(proof) : 0,
                            hyb_token_result_get_holder(tok),
                            method_name(evhttp_request_get_command(req)), htu, t, tl,
                            (int64_t)time(NULL), e) < 0) {
                broker_log(eh->b, HYB_LOG_INFO, "edge: 401 token %s of %s: %s",
                           hyb_token_result_get_jti(tok), hyb_token_result_get_sub(tok),
                           e->message);
                hyb_token_result_unref(tok);
                err_set(e, 401, -1, "unauthorized");
                return 401;
        }
        *ret_tok = tok;
        return 0;
}
