/* SPDX-License-Identifier: MIT */
/*
 * Pieces every token operation shares: the trust store, the verified result
 * object, and one block's decoding and signing.
 */
#include <string.h>

#include "common/ref.h"
#include "common/sized.h"
#include "common/util.h"
#include "crypto.h"
#include "token-internal.h"

/* ------------------------------------------------------------ trust store */

typedef struct trust_entry {
        char *issuer;
        hyb_key *key;
} trust_entry;

struct hyb_token_trust {
        atomic_uint n_ref;
        trust_entry *e;
        size_t n, alloc;
};

static void trust_free(hyb_token_trust *t)
{
        for (size_t i = 0; i < t->n; i++) {
                free(t->e[i].issuer);
                hyb_key_unref(t->e[i].key);
        }
        free(t->e);
        free(t);
}

HYB_DEFINE_REF_UNREF(hyb_token_trust, hyb_token_trust, trust_free)

HYB_EXPORT int hyb_token_trust_new(hyb_token_trust **ret)
{
        hyb_token_trust *t;

        hyb_assert_return(ret, -EINVAL);
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        atomic_init(&t->n_ref, 1);
        *ret = t;
        return 0;
}

HYB_EXPORT int hyb_token_trust_add(hyb_token_trust *t, const char *issuer, const hyb_key *key)
{
        char *name;

        hyb_assert_return(t && issuer && key, -EINVAL);
        hyb_assert_return(*issuer && strlen(issuer) <= TOKEN_MAX_STRING, -EINVAL);
        if (hyb_token_trust_get(t, issuer))
                return -EEXIST;
        if (grow_array((void **)&t->e, &t->alloc, t->n + 1, sizeof *t->e) < 0)
                return -ENOMEM;
        name = strdup(issuer);
        if (!name)
                return -ENOMEM;
        t->e[t->n++] = (trust_entry){name, hyb_key_ref(key)};
        return 0;
}

HYB_EXPORT const hyb_key *hyb_token_trust_get(const hyb_token_trust *t, const char *issuer)
{
        if (!t || !issuer)
                return NULL;
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->e[i].issuer, issuer) == 0)
                        return t->e[i].key;
        return NULL;
}

const hyb_key *token_trust_find_kid(const hyb_token_trust *t, const char *kid,
                                    const char **ret_issuer)
{
        for (size_t i = 0; t && i < t->n; i++)
                if (strcmp(hyb_key_get_kid(t->e[i].key), kid) == 0) {
                        *ret_issuer = t->e[i].issuer;
                        return t->e[i].key;
                }
        return NULL;
}

/* ----------------------------------------------------------------- result */

static void result_free(hyb_token_result *r)
{
        free(r->sub);
        free(r->iss);
        free(r->jti);
        free(r->holder_kid);
        hyb_key_unref(r->holder);
        token_caps_free(r->caps, r->n_caps);
        free(r);
}

HYB_DEFINE_REF_UNREF(hyb_token_result, hyb_token_result, result_free)

HYB_EXPORT const char *hyb_token_result_get_sub(const hyb_token_result *r)
{
        return r ? r->sub : NULL;
}

HYB_EXPORT const char *hyb_token_result_get_iss(const hyb_token_result *r)
{
        return r ? r->iss : NULL;
}

HYB_EXPORT const char *hyb_token_result_get_jti(const hyb_token_result *r)
{
        return r ? r->jti : NULL;
}

HYB_EXPORT const char *hyb_token_result_get_holder_kid(const hyb_token_result *r)
{
        return r ? r->holder_kid : NULL;
}

HYB_EXPORT const hyb_key *hyb_token_result_get_holder(const hyb_token_result *r)
{
        return r ? r->holder : NULL;
}

HYB_EXPORT int64_t hyb_token_result_get_exp(const hyb_token_result *r)
{
        return r ? r->exp : 0;
}

HYB_EXPORT unsigned hyb_token_result_get_n_blocks(const hyb_token_result *r)
{
        return r ? r->n_blocks : 0;
}

HYB_EXPORT size_t hyb_token_result_get_n_caps(const hyb_token_result *r)
{
        return r ? r->n_caps : 0;
}

HYB_EXPORT int hyb_token_result_get_cap(const hyb_token_result *r, size_t i,
                                        const char **ret_resource, unsigned *ret_actions)
{
        hyb_assert_return(r, -EINVAL);
        if (i >= r->n_caps)
                return -ERANGE;
        if (ret_resource)
                *ret_resource = hyb_furi_get_str(r->caps[i].pattern);
        if (ret_actions)
                *ret_actions = r->caps[i].actions;
        return 0;
}

HYB_EXPORT int hyb_token_result_to_json(const hyb_token_result *r, char **ret_json)
{
        json_t *j;
        char *s;

        hyb_assert_return(r && ret_json, -EINVAL);
        j = json_pack("{s:s,s:I,s:s,s:o*}", "sub", r->sub, "exp", (json_int_t)r->exp, "holder",
                      r->holder_kid, "cap", token_caps_to_json(r->caps, r->n_caps));
        if (!j)
                return -ENOMEM;
        s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!s)
                return -ENOMEM;
        *ret_json = s;
        return 0;
}

/* --------------------------------------------------------------- options */

HYB_EXPORT void hyb_token_issue_opts_init_sized(hyb_token_issue_opts *o, size_t size)
{
        sized_init(o, size, NULL, sizeof(*o));
}

/* The symbol of programs built before _init_sized (the header's macro hides the name). */
HYB_EXPORT void (hyb_token_issue_opts_init)(hyb_token_issue_opts *o)
{
        hyb_token_issue_opts_init_sized(o, sizeof(*o));
}

HYB_EXPORT void hyb_token_attenuate_opts_init_sized(hyb_token_attenuate_opts *o, size_t size)
{
        sized_init(o, size, NULL, sizeof(*o));
}

/* The symbol of programs built before _init_sized (the header's macro hides the name). */
HYB_EXPORT void (hyb_token_attenuate_opts_init)(hyb_token_attenuate_opts *o)
{
        hyb_token_attenuate_opts_init_sized(o, sizeof(*o));
}

HYB_EXPORT void hyb_token_verify_opts_init_sized(hyb_token_verify_opts *o, size_t size)
{
        sized_init(o, size, NULL, sizeof(*o));
}

/* The symbol of programs built before _init_sized (the header's macro hides the name). */
HYB_EXPORT void (hyb_token_verify_opts_init)(hyb_token_verify_opts *o)
{
        hyb_token_verify_opts_init_sized(o, sizeof(*o));
}

/* ---------------------------------------------------------------- blocks */

void token_block_clear(token_block *b)
{
        json_decref(b->hdr);
        json_decref(b->claims);
        *b = (token_block){0};
}

static int decode_part(const char *in, size_t len, uint8_t *out, size_t out_size, size_t *ret_len,
                       size_t index, const char *what, hyb_error *e)
{
        size_t n;

        if (b64u_decode_to(in, len, out, out_size, ret_len ? ret_len : &n) < 0)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: %s is not strict base64url",
                               index, what);
        return 0;
}

/* Decodes every part's base64url, the signature and the header JSON (not yet judged). */
static int decode_head(const token_part *p, size_t index, token_block *b, hyb_error *e)
{
        uint8_t hdr[TOKEN_MAX_HEADER_B64];
        size_t n, hn;
        int r;

        /* Every part's base64url is checked before any JSON is parsed. */
        r = decode_part(p->hdr, p->hdr_len, hdr, sizeof hdr, &hn, index, "header", e);
        if (r >= 0)
                r = decode_part(p->payload, p->payload_len, NULL, 0, NULL, index, "payload", e);
        if (r >= 0)
                r = decode_part(p->sig, p->sig_len, b->sig, sizeof b->sig, &n, index, "signature",
                                e);
        if (r >= 0 && n != TOKEN_SIG_LEN)
                r = err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: signature is not 64 bytes",
                            index);
        if (r < 0)
                return r;
        r = token_json_parse(hdr, hn, &b->hdr, e);
        if (r < 0)
                err_prefix(e, "block %zu header", index);
        return r;
}

int token_block_decode_head(const token_part *p, size_t index, token_block *b, const char **ret_kid,
                            hyb_error *e)
{
        int r = decode_head(p, index, b, e);

        return r < 0 ? r : token_header_check(b->hdr, index, ret_kid, e);
}

int token_block_decode_head_with(const token_part *p, token_block *b, token_header_fn check,
                                 const char **ret_kid, hyb_error *e)
{
        int r = decode_head(p, 0, b, e);

        return r < 0 ? r : check(b->hdr, ret_kid, e);
}

int token_block_decode_claims(const token_part *p, size_t index, token_block *b, hyb_error *e)
{
        uint8_t payload[TOKEN_MAX_PAYLOAD_B64];
        size_t n;
        int r;

        r = decode_part(p->payload, p->payload_len, payload, sizeof payload, &n, index, "payload",
                        e);
        if (r >= 0)
                r = token_json_parse(payload, n, &b->claims, e);
        if (r < 0)
                err_prefix(e, "block %zu claims", index);
        return r;
}

void token_sig_hash(const uint8_t sig[TOKEN_SIG_LEN], char out[44])
{
        uint8_t h[CRYPTO_SHA256_LEN];

        crypto_sha256(sig, TOKEN_SIG_LEN, h);
        b64u_encode_to(h, sizeof h, out);
}

int token_cnf_key(json_t *claims, size_t index, hyb_key **ret, hyb_error *e)
{
        json_t *cnf = json_object_get(claims, "cnf");
        json_t *jwk = json_object_get(cnf, "jwk");
        static const char *const members[] = {"kty", "crv", "x", "y"};
        char *text;
        int r;

        if (!json_is_object(cnf) || json_object_size(cnf) != 1 || !json_is_object(jwk) ||
            json_object_size(jwk) != ELEMENTSOF(members))
                return err_set(e, HYB_E_UNAUTHORIZED, -1,
                               "block %zu: cnf is not {\"jwk\": {kty, crv, x, y}}", index);
        for (size_t i = 0; i < ELEMENTSOF(members); i++)
                if (!json_is_string(json_object_get(jwk, members[i])))
                        return err_set(e, HYB_E_UNAUTHORIZED, -1,
                                       "block %zu: cnf.jwk has no string %s", index, members[i]);
        text = json_dumps(jwk, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        /* The key layer checks kty/crv and that the point is on the curve. */
        r = hyb_key_load_memory(text, strlen(text), ret, NULL);
        free(text);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: cnf.jwk is not a P-256 key",
                               index);
        return 0;
}

json_t *token_cnf_json(const hyb_key *key)
{
        char *text = NULL;
        json_t *jwk, *out;

        if (hyb_key_to_jwk(key, HYB_KEY_EXPORT_PUBLIC, &text) < 0)
                return NULL;
        jwk = json_loads(text, 0, NULL);
        hyb_free(text);
        if (!jwk)
                return NULL;
        /* RFC 7800 names the key alone; its kid is recomputed by whoever needs it. */
        json_object_del(jwk, "kid");
        out = json_pack("{s:o}", "jwk", jwk);
        return out;
}

static char *b64u_json(json_t *j)
{
        char *text = json_dumps(j, JSON_COMPACT), *out = NULL;

        if (text && b64u_encode(text, strlen(text), &out) < 0)
                out = NULL;
        free(text);
        return out;
}

int token_block_make(const hyb_key *key, json_t *hdr, json_t *claims, char **ret)
{
        _cleanup_free_ char *h = b64u_json(hdr);
        _cleanup_free_ char *p = b64u_json(claims);
        char sig_text[TOKEN_SIG_B64 + 1];
        uint8_t sig[TOKEN_SIG_LEN];
        size_t hl, pl;
        char *out;
        int r;

        if (!h || !p)
                return -ENOMEM;
        hl = strlen(h);
        pl = strlen(p);
        out = malloc(hl + pl + TOKEN_SIG_B64 + 3);
        if (!out)
                return -ENOMEM;
        memcpy(out, h, hl);
        out[hl] = '.';
        memcpy(out + hl + 1, p, pl);
        r = hyb_key_sign(key, out, hl + 1 + pl, sig);
        if (r < 0) {
                free(out);
                return r;
        }
        b64u_encode_to(sig, sizeof sig, sig_text);
        out[hl + 1 + pl] = '.';
        memcpy(out + hl + pl + 2, sig_text, TOKEN_SIG_B64 + 1);
        *ret = out;
        return 0;
}

int token_aud_check(json_t *claims, const char *name, size_t index, const char *id, bool required,
                    hyb_error *e)
{
        json_t *aud = json_object_get(claims, name), *a;
        bool found = false;
        size_t i;

        if (!aud) {
                if (required)
                        return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: no %s", index, name);
                return 0;
        }
        if (json_is_string(aud)) {
                if (json_string_length(aud) == 0 || json_string_length(aud) > TOKEN_MAX_STRING)
                        return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: bad %s", index, name);
                found = id && strcmp(json_string_value(aud), id) == 0;
        } else if (json_is_array(aud) && json_array_size(aud) > 0 &&
                   json_array_size(aud) <= TOKEN_MAX_AUD) {
                json_array_foreach(aud, i, a)
                {
                        if (!json_is_string(a) || json_string_length(a) == 0 ||
                            json_string_length(a) > TOKEN_MAX_STRING)
                                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: bad %s",
                                               index, name);
                        found = found || (id && strcmp(json_string_value(a), id) == 0);
                }
        } else {
                return err_set(e, HYB_E_UNAUTHORIZED, -1,
                               "block %zu: %s is not a string or an array of 1 to %d strings",
                               index, name, TOKEN_MAX_AUD);
        }
        if (id && !found)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: %s does not name %s", index,
                               name, id);
        return 0;
}
