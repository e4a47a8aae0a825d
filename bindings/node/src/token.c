/* SPDX-License-Identifier: MIT */
/*
 * token.c - keys and security tokens (hybrid/token.h) for Node: keygen, issue,
 * attenuate, verify, inspect.  Keys travel as PEM (or JWK) text.
 */
#include "hybrid-node.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static hyb_key *load_key(napi_env env, napi_value v)
{
        hyb_key *key = NULL;
        hyb_error err;
        char *text = hn_get_string(env, v, false);
        int r;

        if (!text)
                return NULL;
        hyb_error_clear(&err);
        r = hyb_key_load_memory(text, strlen(text), &key, &err);
        memset(text, 0, strlen(text));
        free(text);
        if (r < 0) {
                hn_throw_code(env, r, &err);
                return NULL;
        }
        return key;
}

static napi_value str_value(napi_env env, const char *s)
{
        napi_value v;
        napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v);
        return v;
}

/* keygen() -> {privateKey, publicKey, kid} */
static napi_value js_keygen(napi_env env, napi_callback_info info)
{
        hyb_key *key = NULL;
        char *priv = NULL, *pub = NULL;
        napi_value o = NULL;
        int r;

        r = hyb_key_generate(&key);
        if (r >= 0)
                r = hyb_key_to_pem(key, HYB_KEY_EXPORT_PRIVATE, &priv);
        if (r >= 0)
                r = hyb_key_to_pem(key, HYB_KEY_EXPORT_PUBLIC, &pub);
        if (r < 0) {
                hn_throw_code(env, r, NULL);
        } else {
                napi_create_object(env, &o);
                napi_set_named_property(env, o, "privateKey", str_value(env, priv));
                napi_set_named_property(env, o, "publicKey", str_value(env, pub));
                napi_set_named_property(env, o, "kid", str_value(env, hyb_key_get_kid(key)));
        }
        if (priv) {
                memset(priv, 0, strlen(priv));
                hyb_free(priv);
        }
        hyb_free(pub);
        hyb_key_unref(key);
        return o;
}

/* Strings of a JS array (malloc'd array of malloc'd strings). */
static char **get_strings(napi_env env, napi_value arr, uint32_t *ret_n)
{
        uint32_t n = 0;
        char **v;

        napi_get_array_length(env, arr, &n);
        v = calloc(n + 1, sizeof *v);
        if (!v)
                return NULL;
        for (uint32_t i = 0; i < n; i++) {
                napi_value e;
                napi_get_element(env, arr, i, &e);
                if (!(v[i] = hn_get_string(env, e, false))) {
                        for (uint32_t j = 0; j < i; j++)
                                free(v[j]);
                        free(v);
                        return NULL;
                }
        }
        *ret_n = n;
        return v;
}

static void free_strings(char **v, uint32_t n)
{
        if (!v)
                return;
        for (uint32_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* caps: [[resource, "act,act"], ...] -> hyb_token_cap[]; throws on an unknown action */
static hyb_token_cap *get_caps(napi_env env, napi_value arr, char ***ret_res, uint32_t *ret_n)
{
        uint32_t n = 0;
        hyb_token_cap *caps;
        char **res;

        napi_get_array_length(env, arr, &n);
        caps = calloc(n + 1, sizeof *caps);
        res = calloc(n + 1, sizeof *res);
        if (!caps || !res) {
                free(caps);
                free(res);
                napi_throw_error(env, "ENOMEM", "out of memory");
                return NULL;
        }
        for (uint32_t i = 0; i < n; i++) {
                napi_value e, rv, av;
                char *acts;
                int r;
                napi_get_element(env, arr, i, &e);
                napi_get_element(env, e, 0, &rv);
                napi_get_element(env, e, 1, &av);
                if (!(res[i] = hn_get_string(env, rv, false)) ||
                    !(acts = hn_get_string(env, av, false))) {
                        free_strings(res, i + 1);
                        free(caps);
                        return NULL;
                }
                r = hyb_token_actions_parse(acts, &caps[i].actions);
                free(acts);
                if (r < 0) {
                        free_strings(res, i + 1);
                        free(caps);
                        napi_throw(env, hn_error_new(env, r, 0, "unknown token action"));
                        return NULL;
                }
                caps[i].resource = res[i];
        }
        *ret_res = res;
        *ret_n = n;
        return caps;
}

static int64_t get_i64(napi_env env, napi_value v)
{
        int64_t i = 0;
        napi_valuetype t;
        napi_typeof(env, v, &t);
        if (t == napi_number)
                napi_get_value_int64(env, v, &i);
        return i;
}

/* issue(issuerKey, iss, sub, [aud], holderKey, [[res, acts]], ttl, dlg, epo, now) -> token */
static napi_value js_issue(napi_env env, napi_callback_info info)
{
        size_t argc = 10;
        napi_value argv[10], result = NULL;
        hyb_key *issuer = NULL, *holder = NULL;
        char *iss = NULL, *sub = NULL, **aud = NULL, **res = NULL, *token = NULL;
        uint32_t n_aud = 0, n_caps = 0;
        hyb_token_cap *caps = NULL;
        hyb_token_issue_opts o;
        hyb_error err;
        int r;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (argc < 10) {
                napi_throw_type_error(env, NULL, "tokenIssue: 10 arguments");
                return NULL;
        }
        if (!(issuer = load_key(env, argv[0])) || !(iss = hn_get_string(env, argv[1], false)) ||
            !(sub = hn_get_string(env, argv[2], false)) ||
            !(aud = get_strings(env, argv[3], &n_aud)) || !(holder = load_key(env, argv[4])) ||
            !(caps = get_caps(env, argv[5], &res, &n_caps)))
                goto out;
        hyb_token_issue_opts_init(&o);
        o.iss = iss;
        o.sub = sub;
        o.aud = (const char *const *)aud;
        o.n_aud = n_aud;
        o.holder = holder;
        o.caps = caps;
        o.n_caps = n_caps;
        o.ttl_s = (uint64_t)get_i64(env, argv[6]);
        o.dlg = (unsigned)get_i64(env, argv[7]);
        o.epo = (uint64_t)get_i64(env, argv[8]);
        o.now = get_i64(env, argv[9]);
        hyb_error_clear(&err);
        r = hyb_token_issue(issuer, &o, &token, &err);
        if (r < 0)
                hn_throw_code(env, r, &err);
        else
                result = str_value(env, token);
out:
        hyb_free(token);
        hyb_key_unref(issuer);
        hyb_key_unref(holder);
        free(iss);
        free(sub);
        free_strings(aud, n_aud);
        free_strings(res, n_caps);
        free(caps);
        return result;
}

/* attenuate(token, holderKey, newHolderKey, [[res, acts]], [aud], ttl, now) -> token */
static napi_value js_attenuate(napi_env env, napi_callback_info info)
{
        size_t argc = 7;
        napi_value argv[7], result = NULL;
        hyb_key *key = NULL, *holder = NULL;
        char *tok = NULL, **aud = NULL, **res = NULL, *out_tok = NULL;
        uint32_t n_aud = 0, n_caps = 0;
        hyb_token_cap *caps = NULL;
        hyb_token_attenuate_opts o;
        hyb_error err;
        int r;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (argc < 7) {
                napi_throw_type_error(env, NULL, "tokenAttenuate: 7 arguments");
                return NULL;
        }
        if (!(tok = hn_get_string(env, argv[0], false)) || !(key = load_key(env, argv[1])) ||
            !(holder = load_key(env, argv[2])) || !(caps = get_caps(env, argv[3], &res, &n_caps)) ||
            !(aud = get_strings(env, argv[4], &n_aud)))
                goto out;
        hyb_token_attenuate_opts_init(&o);
        o.holder = holder;
        o.caps = n_caps ? caps : NULL;
        o.n_caps = n_caps;
        o.aud = n_aud ? (const char *const *)aud : NULL;
        o.n_aud = n_aud;
        o.ttl_s = (uint64_t)get_i64(env, argv[5]);
        o.now = get_i64(env, argv[6]);
        hyb_error_clear(&err);
        r = hyb_token_attenuate(tok, key, &o, &out_tok, &err);
        if (r < 0)
                hn_throw_code(env, r, &err);
        else
                result = str_value(env, out_tok);
out:
        hyb_free(out_tok);
        free(tok);
        hyb_key_unref(key);
        hyb_key_unref(holder);
        free_strings(aud, n_aud);
        free_strings(res, n_caps);
        free(caps);
        return result;
}

/* verify(token, [[issuer, publicKey]], audience, now, maxLifetime) -> result object */
static napi_value js_verify(napi_env env, napi_callback_info info)
{
        size_t argc = 5;
        napi_value argv[5], result = NULL;
        hyb_token_trust *trust = NULL;
        hyb_token_result *res = NULL;
        hyb_token_verify_opts o;
        char *tok = NULL, *aud = NULL, *json = NULL;
        uint32_t n = 0;
        hyb_error err;
        int r;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (argc < 5) {
                napi_throw_type_error(env, NULL, "tokenVerify: 5 arguments");
                return NULL;
        }
        if (!(tok = hn_get_string(env, argv[0], false)) ||
            !(aud = hn_get_string(env, argv[2], false)))
                goto out;
        if ((r = hyb_token_trust_new(&trust)) < 0) {
                hn_throw_code(env, r, NULL);
                goto out;
        }
        napi_get_array_length(env, argv[1], &n);
        for (uint32_t i = 0; i < n; i++) {
                napi_value e, iv, kv;
                hyb_key *k;
                char *issuer;
                napi_get_element(env, argv[1], i, &e);
                napi_get_element(env, e, 0, &iv);
                napi_get_element(env, e, 1, &kv);
                if (!(issuer = hn_get_string(env, iv, false)))
                        goto out;
                if (!(k = load_key(env, kv))) {
                        free(issuer);
                        goto out;
                }
                r = hyb_token_trust_add(trust, issuer, k);
                hyb_key_unref(k);
                free(issuer);
                if (r < 0) {
                        hn_throw_code(env, r, NULL);
                        goto out;
                }
        }
        hyb_token_verify_opts_init(&o);
        o.audience = aud;
        o.now = get_i64(env, argv[3]);
        o.max_lifetime_s = (uint64_t)get_i64(env, argv[4]);
        hyb_error_clear(&err);
        r = hyb_token_verify(tok, trust, &o, &res, &err);
        if (r < 0) {
                hn_throw_code(env, r, &err);
                goto out;
        }
        if ((r = hyb_token_result_to_json(res, &json)) < 0) {
                hn_throw_code(env, r, NULL);
                goto out;
        }
        if (!(result = hn_from_body(env, json, strlen(json), false)))
                goto out;
        napi_set_named_property(env, result, "iss", str_value(env, hyb_token_result_get_iss(res)));
        napi_set_named_property(env, result, "jti", str_value(env, hyb_token_result_get_jti(res)));
        {
                napi_value nb;
                napi_create_uint32(env, hyb_token_result_get_n_blocks(res), &nb);
                napi_set_named_property(env, result, "blocks", nb);
        }
out:
        hyb_free(json);
        hyb_token_result_unref(res);
        hyb_token_trust_unref(trust);
        free(tok);
        free(aud);
        return result;
}

/* inspect(token) -> {verified: false, blocks: [{header, claims}]} (not verified) */
static napi_value js_inspect(napi_env env, napi_callback_info info)
{
        size_t argc = 1;
        napi_value argv[1], result = NULL;
        char *tok, *json = NULL;
        hyb_error err;
        int r;

        HN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
        if (argc < 1 || !(tok = hn_get_string(env, argv[0], false)))
                return argc < 1 ? (napi_throw_type_error(env, NULL, "expected a token"), NULL)
                                : NULL;
        hyb_error_clear(&err);
        r = hyb_token_inspect(tok, &json, &err);
        if (r < 0)
                hn_throw_code(env, r, &err);
        else
                result = hn_from_body(env, json, strlen(json), false);
        hyb_free(json);
        free(tok);
        return result;
}

void hn_token_init(napi_env env, napi_value exports)
{
        HN_EXPORT_FN(env, exports, "tokenKeygen", js_keygen);
        HN_EXPORT_FN(env, exports, "tokenIssue", js_issue);
        HN_EXPORT_FN(env, exports, "tokenAttenuate", js_attenuate);
        HN_EXPORT_FN(env, exports, "tokenVerify", js_verify);
        HN_EXPORT_FN(env, exports, "tokenInspect", js_inspect);
}
