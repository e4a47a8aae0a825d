/* SPDX-License-Identifier: MIT */
/*
 * Making tokens: issue (block 0), attenuate (one more block), and inspect
 * (decode without verifying, for people).
 */
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "crypto.h"
#include "token-internal.h"

/* [{"resource": canonical pattern, "actions": [...]}] of the given caps, checked. */
static int caps_json(const hyb_token_cap *caps, size_t n, json_t **ret, hyb_error *e)
{
        token_cap *tc;
        int r = 0;

        if (n == 0 || n > TOKEN_MAX_CAPS)
                return err_set(e, -EINVAL, -1, "%zu capabilities: 1 to %d are allowed", n,
                               TOKEN_MAX_CAPS);
        tc = calloc(n, sizeof *tc);
        if (!tc)
                return -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (!caps[i].resource || caps[i].actions == 0 ||
                    (caps[i].actions & ~(unsigned)0xff))
                        r = err_set(e, -EINVAL, -1, "capability %zu has no resource or actions", i);
                else if (token_resource_parse(caps[i].resource, strlen(caps[i].resource),
                                              &tc[i].pattern, e) < 0)
                        r = err_set(e, -EINVAL, -1,
                                    "capability %zu: %s is not a canonical fURI pattern", i,
                                    caps[i].resource);
                tc[i].actions = caps[i].actions;
        }
        if (r >= 0) {
                *ret = token_caps_to_json(tc, n);
                if (!*ret)
                        r = -ENOMEM;
        }
        token_caps_free(tc, n);
        return r;
}

static int aud_json(const char *const *aud, size_t n, json_t **ret, hyb_error *e)
{
        json_t *a;

        if (n == 0 || n > TOKEN_MAX_AUD)
                return err_set(e, -EINVAL, -1, "%zu audiences: 1 to %d are allowed", n,
                               TOKEN_MAX_AUD);
        for (size_t i = 0; i < n; i++)
                if (!aud[i] || !*aud[i] || strlen(aud[i]) > TOKEN_MAX_STRING)
                        return err_set(e, -EINVAL, -1, "audience %zu is empty or too long", i);
        /* One audience is written as a string, as most JWTs do. */
        if (n == 1) {
                a = json_string(aud[0]);
        } else {
                a = json_array();
                for (size_t i = 0; a && i < n; i++)
                        if (json_array_append_new(a, json_string(aud[i])) < 0) {
                                json_decref(a);
                                a = NULL;
                        }
        }
        if (!a)
                return err_set(e, -EINVAL, -1, "an audience is not UTF-8");
        *ret = a;
        return 0;
}

static bool name_ok(const char *s)
{
        return s && *s && strlen(s) <= TOKEN_MAX_STRING;
}

static int finish(json_t *hdr, json_t *claims, const hyb_key *key, const char *prefix,
                  char **ret_token, hyb_error *e)
{
        char *block = NULL, *out;
        size_t pl = prefix ? strlen(prefix) : 0, bl;
        int r;

        if (!hdr || !claims)
                return -ENOMEM;
        r = token_block_make(key, hdr, claims, &block);
        if (r < 0)
                return r;
        bl = strlen(block);
        /* What a verifier would refuse is not made: the payload part's limit too. */
        if (strchr(strchr(block, '.') + 1, '.') - strchr(block, '.') - 1 > TOKEN_MAX_PAYLOAD_B64) {
                free(block);
                return err_set(e, HYB_E_LIMIT, -1,
                               "the claims would be over %d base64url characters",
                               TOKEN_MAX_PAYLOAD_B64);
        }
        if (pl + (pl ? 1 : 0) + bl > TOKEN_MAX_SIZE) {
                free(block);
                return err_set(e, HYB_E_LIMIT, -1, "the token would be %zu bytes, over %d",
                               pl + 1 + bl, TOKEN_MAX_SIZE);
        }
        out = malloc(pl + bl + 2);
        if (!out) {
                free(block);
                return -ENOMEM;
        }
        if (pl) {
                memcpy(out, prefix, pl);
                out[pl++] = '~';
        }
        memcpy(out + pl, block, bl + 1);
        free(block);
        *ret_token = out;
        return 0;
}

HYB_EXPORT int hyb_token_issue(const hyb_key *issuer, const hyb_token_issue_opts *opts,
                               char **ret_token, hyb_error *reterr)
{
        hyb_token_issue_opts o;
        json_t *hdr = NULL, *claims = NULL, *cap = NULL, *aud = NULL, *cnf = NULL;
        uint8_t jti_raw[16];
        char jti[32];
        int64_t now;
        int r;

        hyb_assert_return(issuer && opts && ret_token, -EINVAL);
        hyb_token_issue_opts_init(&o);
        memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
        if (!hyb_key_has_private(issuer))
                return err_set(reterr, -ENOKEY, -1, "the issuer key has no private part");
        if (!name_ok(o.iss) || !name_ok(o.sub) || !o.holder)
                return err_set(reterr, -EINVAL, -1, "iss, sub and holder are required");
        if (o.dlg > TOKEN_MAX_BLOCKS - 1)
                return err_set(reterr, -EINVAL, -1, "dlg %u: at most %d", o.dlg,
                               TOKEN_MAX_BLOCKS - 1);
        if (o.ttl_s > HYB_TOKEN_DEFAULT_MAX_LIFETIME_S * 12ull || o.epo >= (1ull << 53))
                return err_set(reterr, -EINVAL, -1, "ttl or epoch out of range");
        now = o.now ? o.now : (int64_t)time(NULL);
        r = crypto_random(jti_raw, sizeof jti_raw);
        if (r < 0)
                return r;
        b64u_encode_to(jti_raw, sizeof jti_raw, jti);
        r = caps_json(o.caps, o.n_caps, &cap, reterr);
        if (r >= 0)
                r = aud_json(o.aud, o.n_aud, &aud, reterr);
        if (r >= 0 && !(cnf = token_cnf_json(o.holder)))
                r = -ENOMEM;
        if (r < 0) {
                json_decref(cap);
                json_decref(aud);
                return r;
        }
        hdr = json_pack("{s:s,s:s,s:s}", "alg", "ES256", "typ", TOKEN_TYP_AUTHORITY, "kid",
                        hyb_key_get_kid(issuer));
        claims = json_pack(
                "{s:i,s:s,s:s,s:o,s:I,s:I,s:I,s:s,s:o,s:o,s:i,s:I}", "v", 1, "iss", o.iss, "sub",
                o.sub, "aud", aud, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
                (json_int_t)(now + (int64_t)(o.ttl_s ? o.ttl_s : HYB_TOKEN_DEFAULT_TTL_S)), "jti",
                jti, "cnf", cnf, "cap", cap, "dlg", (int)o.dlg, "epo", (json_int_t)o.epo);
        if (!claims)
                r = err_set(reterr, -EINVAL, -1, "iss or sub is not UTF-8");
        else
                r = finish(hdr, claims, issuer, NULL, ret_token, reterr);
        json_decref(hdr);
        json_decref(claims);
        return r;
}

/* Splits and decodes every block of token without verifying any signature. */
static int decode_unverified(const char *token, token_part parts[TOKEN_MAX_BLOCKS],
                             token_block b[TOKEN_MAX_BLOCKS], size_t *ret_n, hyb_error *e)
{
        const char *kid;
        int r;

        r = token_split(token, strlen(token), parts, ret_n, e);
        for (size_t i = 0; r >= 0 && i < *ret_n; i++) {
                r = token_block_decode_head(&parts[i], i, &b[i], &kid, e);
                if (r >= 0)
                        r = token_block_decode_claims(&parts[i], i, &b[i], e);
        }
        if (r < 0 && r != -ENOMEM)
                r = HYB_E_UNAUTHORIZED;
        return r;
}

static void blocks_clear(token_block *b, size_t n)
{
        for (size_t i = 0; i < n; i++)
                token_block_clear(&b[i]);
}

/* How many more blocks the (unverified) chain allows, as a verifier will count them. */
static int64_t delegation_left(token_block *b, size_t n)
{
        int64_t left = 0;

        for (size_t i = 0; i < n; i++) {
                json_t *d = json_object_get(b[i].claims, "dlg");
                int64_t v = json_is_integer(d) ? (int64_t)json_integer_value(d) : -1;

                if (i > 0) {
                        if (left == 0)
                                return 0;
                        left--;
                }
                if (i == 0)
                        left = v < 0 ? 0 : v;
                else if (v >= 0 && v < left)
                        left = v;
        }
        return left;
}

HYB_EXPORT int hyb_token_attenuate(const char *token, const hyb_key *holder_key,
                                   const hyb_token_attenuate_opts *opts, char **ret_token,
                                   hyb_error *reterr)
{
        hyb_token_attenuate_opts o;
        token_part parts[TOKEN_MAX_BLOCKS];
        token_block b[TOKEN_MAX_BLOCKS] = {0};
        json_t *hdr = NULL, *claims = NULL, *x = NULL;
        hyb_key *current = NULL;
        char prv[44];
        size_t n = 0;
        int64_t now;
        int r;

        hyb_assert_return(token && holder_key && opts && ret_token, -EINVAL);
        hyb_token_attenuate_opts_init(&o);
        memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
        if (!o.holder)
                return err_set(reterr, -EINVAL, -1, "the new holder is required");
        if (!hyb_key_has_private(holder_key))
                return err_set(reterr, -ENOKEY, -1, "the holder key has no private part");
        r = decode_unverified(token, parts, b, &n, reterr);
        if (r >= 0 && n == TOKEN_MAX_BLOCKS)
                r = err_set(reterr, HYB_E_LIMIT, -1, "the token has %d blocks already",
                            TOKEN_MAX_BLOCKS);
        if (r >= 0)
                r = token_cnf_key(b[n - 1].claims, n - 1, &current, reterr);
        if (r >= 0 && !hyb_key_equal(current, holder_key))
                r = err_set(reterr, -EPERM, -1, "the key is not the token's holder (%s)",
                            hyb_key_get_kid(current));
        if (r >= 0 && delegation_left(b, n) == 0)
                r = err_set(reterr, -EPERM, -1, "the token allows no further delegation (dlg)");
        if (r < 0)
                goto out;
        token_sig_hash(b[n - 1].sig, prv);
        now = o.now ? o.now : (int64_t)time(NULL);
        hdr = json_pack("{s:s,s:s}", "alg", "ES256", "typ", TOKEN_TYP_ATTENUATION);
        claims = json_pack("{s:i,s:s,s:o*,s:I}", "v", 1, "prv", prv, "cnf",
                           token_cnf_json(o.holder), "iat", (json_int_t)now);
        if (!hdr || !claims || !json_object_get(claims, "cnf")) {
                r = -ENOMEM;
                goto out;
        }
        if (o.ttl_s)
                json_object_set_new(claims, "exp",
                                    json_integer((json_int_t)(now + (int64_t)o.ttl_s)));
        if (o.n_caps) {
                r = caps_json(o.caps, o.n_caps, &x, reterr);
                if (r < 0)
                        goto out;
                json_object_set_new(claims, "cap", x);
        }
        if (o.n_aud) {
                r = aud_json(o.aud, o.n_aud, &x, reterr);
                if (r < 0)
                        goto out;
                json_object_set_new(claims, "aud", x);
        }
        r = finish(hdr, claims, holder_key, token, ret_token, reterr);
out:
        json_decref(hdr);
        json_decref(claims);
        hyb_key_unref(current);
        blocks_clear(b, n);
        return r;
}

HYB_EXPORT int hyb_token_inspect(const char *token, char **ret_json, hyb_error *reterr)
{
        token_part parts[TOKEN_MAX_BLOCKS];
        token_block b[TOKEN_MAX_BLOCKS] = {0};
        json_t *blocks, *doc;
        size_t n = 0;
        char *s = NULL;
        int r;

        hyb_assert_return(token && ret_json, -EINVAL);
        r = decode_unverified(token, parts, b, &n, reterr);
        if (r < 0) {
                blocks_clear(b, n);
                return r;
        }
        blocks = json_array();
        for (size_t i = 0; blocks && i < n; i++)
                if (json_array_append_new(blocks, json_pack("{s:O,s:O}", "header", b[i].hdr,
                                                            "claims", b[i].claims)) < 0) {
                        json_decref(blocks);
                        blocks = NULL;
                }
        doc = json_pack("{s:b,s:o*}", "verified", 0, "blocks", blocks);
        if (doc)
                s = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        blocks_clear(b, n);
        if (!s)
                return -ENOMEM;
        *ret_json = s;
        return 0;
}
