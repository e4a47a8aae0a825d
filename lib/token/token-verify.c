/* SPDX-License-Identifier: MIT */
/*
 * Verification (doc/token.md "Verification"), fail closed, in this order:
 *
 *   1. size, block count, part sizes, charset          (token_split)
 *   2. strict base64url of every part, header template (token_block_decode_head)
 *   3. signature: block 0 by the trusted key whose thumbprint is its kid,
 *      block i by block i-1's cnf key; only then the claims of the block
 *   4. claims: members and types; block 0's iss trusted with that very key;
 *      block i's prv = SHA-256 of block i-1's signature
 *   5. times (leeway <= 60 s), audience, delegation depth, lifetime cap
 *   6. revocation (the caller's hook)
 *
 * Every failure is HYB_E_UNAUTHORIZED; the message says which check failed.
 */
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "crypto.h"
#include "keys.h"
#include "staged.h"
#include "token-internal.h"

static const char *const block0_claims[] = {
        "v", "iss", "sub", "aud", "iat", "nbf", "exp", "jti", "cnf", "cap", "dlg", "epo", NULL,
};
static const char *const attenuation_claims[] = {
        "v", "prv", "cnf", "cap", "aud", "iat", "nbf", "exp", "dlg", NULL,
};

/* The verification state across blocks. */
typedef struct chain {
        const hyb_token_verify_opts *o;
        int64_t now;
        int64_t leeway;
        hyb_key *holder; /* the current holder: signs the next block */
        int64_t exp, nbf;
        int64_t dlg_left;
        token_cap *caps;
        size_t n_caps;
        char sig_hash[TOKEN_MAX_BLOCKS][44];
        char *holder_kid[TOKEN_MAX_BLOCKS];
        /* Read with the claims, judged after the chain in the order of the list above. */
        int64_t iat_max;        /* the latest iat of any block */
        int64_t lifetime;       /* block 0's exp - iat */
        bool aud_ok[TOKEN_MAX_BLOCKS];
        int dlg_over;           /* the first block beyond the delegation allowed, or -1 */
} chain;

static void chain_done(chain *c)
{
        hyb_key_unref(c->holder);
        token_caps_free(c->caps, c->n_caps);
        for (size_t i = 0; i < TOKEN_MAX_BLOCKS; i++)
                free(c->holder_kid[i]);
}

static int claim_small_int(json_t *claims, const char *name, size_t index, json_int_t max,
                           json_int_t *ret, hyb_error *e)
{
        json_t *v = json_object_get(claims, name);

        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: %s is not an integer 0..%lld",
                               index, name, (long long)max);
        *ret = json_integer_value(v);
        return 1;
}

/* The claims every block may carry: v, cnf, cap, aud, times, dlg. */
static int common_claims(chain *c, json_t *claims, size_t index, hyb_error *e)
{
        json_int_t v = 0, dlg = 0;
        int64_t exp = 0, nbf = 0, iat = 0;
        token_cap *caps = NULL;
        size_t n_caps = 0;
        hyb_key *holder = NULL;
        int r, has;

        if ((r = claim_small_int(claims, "v", index, 1, &v, e)) < 0)
                return r;
        if (v != 1)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: v is not 1", index);
        r = token_claim_time(claims, "exp", index == 0, &exp, e);
        if (r > 0 && exp < c->exp)
                c->exp = exp;
        if (r >= 0 && (r = token_claim_time(claims, "nbf", false, &nbf, e)) > 0 && nbf > c->nbf)
                c->nbf = nbf;
        if (r >= 0 && (r = token_claim_time(claims, "iat", index == 0, &iat, e)) > 0 &&
            iat > c->iat_max)
                c->iat_max = iat;
        if (r < 0) {
                err_prefix(e, "block %zu", index);
                return r;
        }
        if (index == 0)
                c->lifetime = exp - iat;
        /* the form now, whether it names this verifier later */
        r = token_aud_check(claims, "aud", index, NULL, index == 0, e);
        if (r < 0)
                return r;
        c->aud_ok[index] = token_aud_check(claims, "aud", index, c->o->audience, false, NULL) >= 0;
        has = claim_small_int(claims, "dlg", index, TOKEN_MAX_BLOCKS - 1, &dlg, e);
        if (has < 0)
                return has;
        if (index == 0) {
                c->dlg_left = dlg;
        } else if (c->dlg_left == 0) {
                if (c->dlg_over < 0)
                        c->dlg_over = (int)index;
        } else {
                /* A block may only use up delegation, never add to it. */
                c->dlg_left--;
                if (has && dlg < c->dlg_left)
                        c->dlg_left = dlg;
        }
        if (json_object_get(claims, "cap") || index == 0) {
                r = token_caps_parse(json_object_get(claims, "cap"), &caps, &n_caps, e);
                if (r < 0) {
                        err_prefix(e, "block %zu", index);
                        return r;
                }
                if (index == 0) {
                        c->caps = caps;
                        c->n_caps = n_caps;
                } else {
                        r = token_caps_intersect(&c->caps, &c->n_caps, caps, n_caps, e);
                        token_caps_free(caps, n_caps);
                        if (r < 0)
                                return r;
                }
        }
        r = token_cnf_key(claims, index, &holder, e);
        if (r < 0)
                return r;
        hyb_key_unref(c->holder);
        c->holder = holder;
        c->holder_kid[index] = strdup(hyb_key_get_kid(holder));
        return c->holder_kid[index] ? 0 : -ENOMEM;
}

static int check_block0(chain *c, const hyb_token_trust *trust, json_t *claims, const char *kid,
                        hyb_token_result *res, hyb_error *e)
{
        const char *iss = NULL, *sub = NULL, *jti = NULL;
        const hyb_key *trusted;
        json_int_t epo = 0;
        int r;

        r = token_claims_only(claims, block0_claims, e);
        if (r >= 0)
                r = token_claim_string(claims, "iss", true, &iss, e);
        if (r >= 0)
                r = token_claim_string(claims, "sub", true, &sub, e);
        if (r >= 0)
                r = token_claim_string(claims, "jti", true, &jti, e);
        if (r < 0) {
                err_prefix(e, "block 0");
                return r;
        }
        r = claim_small_int(claims, "epo", 0, ((json_int_t)1 << 53) - 1, &epo, e);
        if (r < 0)
                return r;
        /* The signature was checked with the key whose thumbprint is kid: that key must be
         * the one trusted for this issuer, not merely some trusted key. */
        trusted = hyb_token_trust_get(trust, iss);
        if (!trusted || strcmp(hyb_key_get_kid(trusted), kid) != 0)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "kid is not the key trusted for iss %s",
                               iss);
        r = common_claims(c, claims, 0, e);
        if (r < 0)
                return r;
        res->sub = strdup(sub);
        res->iss = strdup(iss);
        res->jti = strdup(jti);
        res->epo = (uint64_t)epo;
        return res->sub && res->iss && res->jti ? 0 : -ENOMEM;
}

static int check_attenuation(chain *c, json_t *claims, size_t index, hyb_error *e)
{
        const char *prv = NULL;
        int r;

        r = token_claims_only(claims, attenuation_claims, e);
        if (r >= 0)
                r = token_claim_string(claims, "prv", true, &prv, e);
        if (r < 0) {
                err_prefix(e, "block %zu", index);
                return r;
        }
        if (strlen(prv) != 43 || !crypto_memeq(prv, c->sig_hash[index - 1], 43))
                return err_set(e, HYB_E_UNAUTHORIZED, -1,
                               "block %zu: prv is not the hash of block %zu's signature", index,
                               index - 1);
        return common_claims(c, claims, index, e);
}

/* After the chain: times, audience, delegation depth, lifetime cap (then revocation). */
static int check_policy(chain *c, size_t n, hyb_error *e)
{
        uint64_t max = c->o->max_lifetime_s ? c->o->max_lifetime_s
                                            : HYB_TOKEN_DEFAULT_MAX_LIFETIME_S;

        if (c->iat_max > c->now + c->leeway)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "issued in the future (%lld, now %lld)",
                               (long long)c->iat_max, (long long)c->now);
        if (c->now + c->leeway < c->nbf)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "not valid before %lld (now %lld)",
                               (long long)c->nbf, (long long)c->now);
        if (c->now >= c->exp + c->leeway)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "expired at %lld (now %lld)",
                               (long long)c->exp, (long long)c->now);
        for (size_t i = 0; i < n; i++)
                if (!c->aud_ok[i])
                        return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: aud does not name %s",
                                       i, c->o->audience);
        if (c->dlg_over >= 0)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "block %d: no delegation left",
                               c->dlg_over);
        if (c->lifetime <= 0 || (uint64_t)c->lifetime > max)
                return err_set(e, HYB_E_UNAUTHORIZED, -1,
                               "lifetime of %lld s is not within 1..%llu s", (long long)c->lifetime,
                               (unsigned long long)max);
        return 0;
}

static int check_revoked(chain *c, hyb_token_result *res, const char *kid, size_t n, hyb_error *e)
{
        const char *hashes[TOKEN_MAX_BLOCKS], *kids[TOKEN_MAX_BLOCKS];
        hyb_token_ids ids = {
                .jti = res->jti,
                .issuer_kid = kid,
                .epo = res->epo,
                .n_blocks = n,
                .sig_hashes = hashes,
                .holder_kids = (const char *const *)kids,
        };
        int r;

        if (!c->o->revoked)
                return 0;
        for (size_t i = 0; i < n; i++) {
                hashes[i] = c->sig_hash[i];
                kids[i] = c->holder_kid[i];
        }
        r = c->o->revoked(c->o->userdata, &ids);
        if (r > 0)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "revoked");
        if (r < 0)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "revocation state unknown: %s",
                               hyb_strerror(r));
        return 0;
}

struct token_staged {
        char *text;
        size_t n;
        token_part parts[TOKEN_MAX_BLOCKS];
        token_block b[TOKEN_MAX_BLOCKS];
        char kid[44];
        /* The key that signs block i: block 0's trusted key, then block i-1's cnf key as
         * read in advance (NULL: it could not be read; the replay refuses the chain at
         * block i-1's claims before it gets to block i). */
        hyb_key *signer[TOKEN_MAX_BLOCKS];
        hyb_key *holder;        /* the last block's cnf key as read in advance, or NULL */
        bool sig_ok[TOKEN_MAX_BLOCKS]; /* slot i written by token_staged_check(i) only */
};

token_staged *token_staged_free(token_staged *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n; i++) {
                token_block_clear(&s->b[i]);
                hyb_key_unref(s->signer[i]);
        }
        hyb_key_unref(s->holder);
        free(s->text);
        free(s);
        return NULL;
}

/* Block index's cnf key, read before its signature is checked: only to know which key
 * checks the next signature (or the proof); the claims are judged in the replay. */
static hyb_key *cnf_in_advance(const token_part *p, size_t index)
{
        token_block tmp = {0};
        hyb_key *k = NULL;
        hyb_error ignored;

        hyb_error_clear(&ignored);
        if (token_block_decode_claims(p, index, &tmp, &ignored) >= 0 &&
            token_cnf_key(tmp.claims, index, &k, &ignored) < 0)
                k = NULL;
        token_block_clear(&tmp);
        return k;
}

int token_staged_new(const char *text, size_t len, const hyb_token_trust *trust,
                     token_staged **ret, hyb_error *e)
{
        token_staged *s;
        const char *kid = NULL, *ignored;
        const hyb_key *trusted;
        int r;

        hyb_assert_return(text && trust && ret, -EINVAL);
        s = calloc(1, sizeof *s);
        if (!s || !(s->text = strndup(text, len))) {
                free(s);
                return -ENOMEM;
        }
        /* 1, 2: the text, base64url and headers of every block, before any signature. */
        r = token_split(s->text, strlen(s->text), s->parts, &s->n, e);
        for (size_t i = 0; r >= 0 && i < s->n; i++)
                r = token_block_decode_head(&s->parts[i], i, &s->b[i], i == 0 ? &kid : NULL, e);
        if (r < 0) {
                token_staged_free(s);
                return r == -ENOMEM ? r : HYB_E_UNAUTHORIZED;
        }
        memcpy(s->kid, kid, 44);
        trusted = token_trust_find_kid(trust, s->kid, &ignored);
        if (!trusted) {
                r = err_set(e, HYB_E_UNAUTHORIZED, -1, "unknown kid %s", s->kid);
                token_staged_free(s);
                return r;
        }
        s->signer[0] = hyb_key_ref(trusted);
        for (size_t i = 0; i < s->n; i++) {
                hyb_key *k = cnf_in_advance(&s->parts[i], i);

                if (i + 1 < s->n)
                        s->signer[i + 1] = k;
                else
                        s->holder = k;
        }
        *ret = s;
        return 0;
}

size_t token_staged_n_sigs(const token_staged *s)
{
        return s->n;
}

void token_staged_check(token_staged *s, size_t i)
{
        if (i >= s->n)
                return;
        s->sig_ok[i] = s->signer[i] &&
                       hyb_key_verify(s->signer[i], s->parts[i].signed_text, s->parts[i].signed_len,
                                      s->b[i].sig, TOKEN_SIG_LEN) == 0;
}

int token_staged_split(token_staged *s, size_t i, p256_split **ret)
{
        uint8_t h[CRYPTO_SHA256_LEN];
        int r;

        if (i >= s->n)
                return -EINVAL;
        s->sig_ok[i] = false;
        if (!s->signer[i])
                return HYB_E_AUTH;
        /* ES256 as hyb_key_verify does it: SHA-256 of the signed text, low-S */
        crypto_sha256(s->parts[i].signed_text, s->parts[i].signed_len, h);
        r = p256_split_new(key_get_p256(s->signer[i]), h, s->b[i].sig, TOKEN_SIG_LEN, true, ret);
        return r == -ENOMEM ? r : r < 0 ? HYB_E_AUTH : 0;
}

void token_staged_set_check(token_staged *s, size_t i, bool ok)
{
        if (i < s->n)
                s->sig_ok[i] = ok;
}

const hyb_key *token_staged_holder(const token_staged *s)
{
        return s->holder;
}

static bool same_key(const hyb_key *a, const hyb_key *b)
{
        return a && b && strcmp(hyb_key_get_kid(a), hyb_key_get_kid(b)) == 0;
}

/* 3 to 6 with the signature results of the stage, in the order of the list above. */
static int verify(token_staged *s, const hyb_token_trust *trust, const hyb_token_verify_opts *o,
                  hyb_token_result *res, hyb_error *e)
{
        const char *ignored;
        size_t n = s->n;
        chain c = {
                .o = o,
                .now = o->now ? o->now : (int64_t)time(NULL),
                .leeway = o->leeway_s && o->leeway_s < HYB_TOKEN_MAX_LEEWAY_S
                                  ? o->leeway_s
                                  : HYB_TOKEN_MAX_LEEWAY_S,
                .exp = INT64_MAX,
                .nbf = 0,
                .dlg_over = -1,
        };
        int r = 0;

        for (size_t i = 0; r >= 0 && i < n; i++) {
                const hyb_key *signer =
                        i == 0 ? token_trust_find_kid(trust, s->kid, &ignored) : c.holder;

                if (!signer) {
                        r = err_set(e, HYB_E_UNAUTHORIZED, -1, "unknown kid %s", s->kid);
                        break;
                }
                /* Checked, good, and by this very key (the one the chain names now). */
                if (!s->sig_ok[i] || !same_key(signer, s->signer[i])) {
                        r = err_set(e, HYB_E_UNAUTHORIZED, -1, "block %zu: bad signature", i);
                        break;
                }
                token_sig_hash(s->b[i].sig, c.sig_hash[i]);
                json_decref(s->b[i].claims); /* a stage is finished once; never mind */
                s->b[i].claims = NULL;
                r = token_block_decode_claims(&s->parts[i], i, &s->b[i], e);
                if (r >= 0)
                        r = i == 0 ? check_block0(&c, trust, s->b[i].claims, s->kid, res, e)
                                   : check_attenuation(&c, s->b[i].claims, i, e);
        }
        if (r >= 0)
                r = check_policy(&c, n, e);
        if (r >= 0)
                r = check_revoked(&c, res, s->kid, n, e);
        if (r >= 0 && !same_key(c.holder, s->holder))
                r = err_set(e, HYB_E_UNAUTHORIZED, -1, "the holder key changed"); /* cannot be */
        if (r >= 0) {
                res->holder = TAKE_PTR(c.holder);
                res->holder_kid = strdup(c.holder_kid[n - 1]);
                res->caps = TAKE_PTR(c.caps);
                res->n_caps = c.n_caps;
                res->exp = c.exp;
                res->nbf = c.nbf;
                res->n_blocks = (unsigned)n;
                if (!res->holder_kid)
                        r = -ENOMEM;
        }
        chain_done(&c);
        /* One code whatever failed (ENOMEM aside): the detail is in e for the log. */
        if (r < 0 && r != -ENOMEM)
                r = HYB_E_UNAUTHORIZED;
        return r;
}

int token_staged_finish(token_staged *s, const hyb_token_trust *trust,
                        const hyb_token_verify_opts *opts, hyb_token_result **ret, hyb_error *e)
{
        hyb_token_verify_opts o;
        hyb_token_result *res;
        int r;

        hyb_assert_return(s && trust && opts && ret, -EINVAL);
        /* Members beyond the caller's size read as 0 (the struct can grow). */
        hyb_token_verify_opts_init(&o);
        memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
        o.size = sizeof o;
        hyb_assert_return(o.audience && *o.audience, -EINVAL);
        res = calloc(1, sizeof *res);
        if (!res)
                return -ENOMEM;
        atomic_init(&res->n_ref, 1);
        r = verify(s, trust, &o, res, e);
        if (r < 0) {
                hyb_token_result_unref(res);
                return r;
        }
        *ret = res;
        return 0;
}

HYB_EXPORT int hyb_token_verify(const char *token, const hyb_token_trust *trust,
                                const hyb_token_verify_opts *opts, hyb_token_result **ret,
                                hyb_error *reterr)
{
        hyb_token_verify_opts o;
        token_staged *s = NULL;
        int r;

        hyb_assert_return(token && trust && opts && ret, -EINVAL);
        hyb_token_verify_opts_init(&o);
        memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
        o.size = sizeof o;
        hyb_assert_return(o.audience && *o.audience, -EINVAL);
        r = token_staged_new(token, strlen(token), trust, &s, reterr);
        if (r < 0)
                return r;
        for (size_t i = 0; i < token_staged_n_sigs(s); i++)
                token_staged_check(s, i);
        r = token_staged_finish(s, trust, &o, ret, reterr);
        token_staged_free(s);
        return r;
}
