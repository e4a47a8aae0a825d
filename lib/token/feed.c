/* SPDX-License-Identifier: MIT */
/*
 * The revocation feed (doc/token.md "Revocation feed").
 *
 * An entry is one JWS block signed by a trusted issuer:
 *
 *   {"alg":"ES256","typ":"hyb-rev+jwt","kid":<issuer thumbprint>}
 *   {"v":1,"seq":N,"iat":T, and one or more of
 *    "jti", "sig_hash", "holder", "issuer", "min_epo"}
 *
 * It is checked like a token (token_split, strict base64url, the header
 * template, the signature, only then the claims) and fails closed.  A feed
 * applies entry head+1 only: an older seq is a replay or a rollback
 * (ignored), a later one a gap (the caller fetches the missing entries).
 * The applied handles are kept in jansson objects used as hash sets, so the
 * verifier's hook is a few hash lookups.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/ref.h"
#include "common/sized.h"
#include "common/util.h"
#include "crypto.h"
#include "hybrid/obj.h"
#include "hybrid/store.h"
#include "token-internal.h"

#define FEED_BRANCH "/sys/token/feed/"
#define FEED_MAX_SEQ (((uint64_t)1 << 53) - 1)

static const char *const entry_claims[] = {
        "v", "seq", "iat", "jti", "sig_hash", "holder", "issuer", "min_epo", NULL,
};

/* The members that name a handle, and whether each is a 43-character base64url hash. */
static const struct {
        const char *name;
        bool hash;
} handles[] = {
        {"jti", false},
        {"sig_hash", true},
        {"holder", true},
        {"issuer", true},
};

struct hyb_token_feed {
        atomic_uint n_ref;
        pthread_mutex_t lock;
        hyb_token_trust *trust;
        hyb_store *store;
        struct feed_entry {
                char *text;
                char *json; /* content_json */
        } * entries;        /* entries[i] is seq i + 1 */
        size_t n, alloc;
        /* Hash sets of the applied handles: member name -> {value: true}. */
        json_t *revoked;
        json_t *min_epo; /* issuer kid -> the highest min_epo it signed */
};

static void feed_free(hyb_token_feed *f)
{
        for (size_t i = 0; i < f->n; i++) {
                free(f->entries[i].text);
                free(f->entries[i].json);
        }
        free(f->entries);
        json_decref(f->revoked);
        json_decref(f->min_epo);
        hyb_token_trust_unref(f->trust);
        hyb_store_unref(f->store);
        pthread_mutex_destroy(&f->lock);
        free(f);
}

HYB_DEFINE_REF_UNREF(hyb_token_feed, hyb_token_feed, feed_free)

static bool is_hash(const char *s)
{
        if (strlen(s) != 43)
                return false;
        for (size_t i = 0; i < 43; i++)
                if (!token_is_b64url_char((unsigned char)s[i]))
                        return false;
        return true;
}

static int bad(hyb_error *e, const char *fmt, const char *what)
{
        return err_set(e, HYB_E_UNAUTHORIZED, -1, fmt, what);
}

/* ------------------------------------------------------------ make */

HYB_EXPORT void hyb_token_feed_rev_init_sized(hyb_token_feed_rev *rev, size_t size)
{
        sized_init(rev, size, NULL, sizeof(*rev));
}

/* The symbol of programs built before _init_sized (the header's macro hides the name). */
HYB_EXPORT void (hyb_token_feed_rev_init)(hyb_token_feed_rev *rev)
{
        hyb_token_feed_rev_init_sized(rev, sizeof(*rev));
}

HYB_EXPORT int hyb_token_feed_entry_make(const hyb_key *issuer, const hyb_token_feed_rev *rev,
                                         char **ret_entry, hyb_error *reterr)
{
        hyb_token_feed_rev o;
        json_t *hdr = NULL, *claims = NULL;
        const char *vals[ELEMENTSOF(handles)];
        bool any = false;
        int r;

        hyb_assert_return(issuer && rev && ret_entry, -EINVAL);
        hyb_token_feed_rev_init(&o);
        memcpy(&o, rev, rev->size && rev->size < sizeof o ? rev->size : sizeof o);
        if (!hyb_key_has_private(issuer))
                return err_set(reterr, -ENOKEY, -1, "the issuer key has no private part");
        if (o.seq == 0 || o.seq > FEED_MAX_SEQ)
                return err_set(reterr, -EINVAL, -1, "seq must be 1 .. 2^53-1");
        if (o.min_epo > FEED_MAX_SEQ)
                return err_set(reterr, -EINVAL, -1, "min_epo must be below 2^53");
        vals[0] = o.jti;
        vals[1] = o.sig_hash;
        vals[2] = o.holder_kid;
        vals[3] = o.issuer_kid;
        for (size_t i = 0; i < ELEMENTSOF(handles); i++) {
                if (!vals[i])
                        continue;
                if (!*vals[i] || strlen(vals[i]) > TOKEN_MAX_STRING ||
                    (handles[i].hash && !is_hash(vals[i])))
                        return err_set(reterr, -EINVAL, -1, "%s is not %s", handles[i].name,
                                       handles[i].hash ? "a base64url SHA-256 (43 characters)"
                                                       : "a string of 1 to 256 bytes");
                any = true;
        }
        if (!any && o.min_epo == 0)
                return err_set(reterr, -EINVAL, -1,
                               "an entry names a jti, sig_hash, holder, issuer or min_epo");
        hdr = json_pack("{s:s,s:s,s:s}", "alg", "ES256", "typ", TOKEN_TYP_REVOCATION, "kid",
                        hyb_key_get_kid(issuer));
        claims = json_pack("{s:i,s:I,s:I}", "v", 1, "seq", (json_int_t)o.seq, "iat",
                           (json_int_t)(o.now ? o.now : (int64_t)time(NULL)));
        r = hdr && claims ? 0 : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(handles); i++)
                if (vals[i] &&
                    json_object_set_new(claims, handles[i].name, json_string(vals[i])) < 0)
                        r = -ENOMEM;
        if (r >= 0 && o.min_epo &&
            json_object_set_new(claims, "min_epo", json_integer((json_int_t)o.min_epo)) < 0)
                r = -ENOMEM;
        if (r >= 0)
                r = token_block_make(issuer, hdr, claims, ret_entry);
        json_decref(hdr);
        json_decref(claims);
        return r;
}

/* ---------------------------------------------------------- verify */

static int header_check(json_t *hdr, const char **ret_kid, hyb_error *e)
{
        json_t *alg = json_object_get(hdr, "alg"), *typ = json_object_get(hdr, "typ");
        json_t *kid = json_object_get(hdr, "kid");

        if (json_object_size(hdr) != 3 || !json_is_string(alg) || !json_is_string(typ) ||
            !json_is_string(kid))
                return bad(e, "%s", "entry header is not the template");
        if (json_string_length(alg) != 5 || strcmp(json_string_value(alg), "ES256") != 0)
                return bad(e, "%s", "entry alg is not ES256");
        if (json_string_length(typ) != strlen(TOKEN_TYP_REVOCATION) ||
            strcmp(json_string_value(typ), TOKEN_TYP_REVOCATION) != 0)
                return bad(e, "entry typ is not %s", TOKEN_TYP_REVOCATION);
        if (json_string_length(kid) != 43 || !is_hash(json_string_value(kid)))
                return bad(e, "%s", "entry kid is not a key thumbprint");
        *ret_kid = json_string_value(kid);
        return 0;
}

static int claim_uint(json_t *claims, const char *name, bool required, uint64_t min, uint64_t *ret,
                      hyb_error *e)
{
        json_t *v = json_object_get(claims, name);

        if (!v)
                return required ? bad(e, "entry claim %s is missing", name) : 0;
        if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
            (uint64_t)json_integer_value(v) > FEED_MAX_SEQ)
                return bad(e, "entry claim %s is not an integer in range", name);
        *ret = (uint64_t)json_integer_value(v);
        return 1;
}

/* The checked claims of an entry (a new reference in *ret_claims), its seq and signer. */
static int entry_check(const char *entry, const hyb_token_trust *trust, json_t **ret_claims,
                       uint64_t *ret_seq, const char **ret_iss, char ret_kid[44], hyb_error *e)
{
        token_part parts[TOKEN_MAX_BLOCKS];
        token_block b = {0};
        const hyb_key *key;
        const char *kid = NULL;
        uint64_t v = 0, seq = 0, iat = 0, epo = 0;
        bool any = false;
        size_t n = 0;
        int r;

        r = token_split(entry, strlen(entry), parts, &n, e);
        if (r >= 0 && n != 1)
                r = bad(e, "%s", "an entry is one block");
        if (r >= 0)
                r = token_block_decode_head_with(&parts[0], &b, header_check, &kid, e);
        if (r < 0)
                goto out;
        key = token_trust_find_kid(trust, kid, ret_iss);
        if (!key) {
                r = bad(e, "entry signed by an unknown kid %s", kid);
                goto out;
        }
        if (hyb_key_verify(key, parts[0].signed_text, parts[0].signed_len, b.sig, TOKEN_SIG_LEN) <
            0) {
                r = bad(e, "%s", "entry: bad signature");
                goto out;
        }
        memcpy(ret_kid, kid, 44);
        r = token_block_decode_claims(&parts[0], 0, &b, e);
        if (r >= 0)
                r = token_claims_only(b.claims, entry_claims, e);
        if (r >= 0)
                r = claim_uint(b.claims, "v", true, 1, &v, e);
        if (r >= 0 && v != 1)
                r = bad(e, "%s", "entry claim v is not 1");
        if (r >= 0)
                r = claim_uint(b.claims, "seq", true, 1, &seq, e);
        if (r >= 0)
                r = claim_uint(b.claims, "iat", true, 0, &iat, e);
        if (r >= 0 && (r = claim_uint(b.claims, "min_epo", false, 1, &epo, e)) > 0)
                any = true;
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(handles); i++) {
                const char *s = NULL;

                r = token_claim_string(b.claims, handles[i].name, false, &s, e);
                if (r > 0 && handles[i].hash && !is_hash(s))
                        r = bad(e, "entry claim %s is not a base64url SHA-256", handles[i].name);
                if (r > 0)
                        any = true;
        }
        if (r >= 0 && !any)
                r = bad(e, "%s", "entry names nothing to revoke");
        if (r >= 0) {
                *ret_claims = json_incref(b.claims);
                *ret_seq = seq;
                r = 0;
        }
out:
        token_block_clear(&b);
        if (r < 0 && r != -ENOMEM)
                r = HYB_E_UNAUTHORIZED;
        return r;
}

/* What an entry says, for people: its claims without v, with the signer's name and kid. */
static char *content_json(json_t *claims, const char *iss, const char *kid)
{
        json_t *j = json_deep_copy(claims);
        char *out = NULL;

        if (j && json_object_del(j, "v") == 0 &&
            json_object_set_new(j, "iss", json_string(iss)) == 0 &&
            json_object_set_new(j, "kid", json_string(kid)) == 0)
                out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
        return out;
}

HYB_EXPORT int hyb_token_feed_entry_verify(const char *entry, const hyb_token_trust *trust,
                                           char **ret_json, hyb_error *reterr)
{
        json_t *claims = NULL;
        const char *iss = NULL;
        char kid[44];
        uint64_t seq;
        int r;

        hyb_assert_return(entry && trust, -EINVAL);
        r = entry_check(entry, trust, &claims, &seq, &iss, kid, reterr);
        if (r < 0 || !ret_json)
                goto out;
        *ret_json = content_json(claims, iss, kid);
        r = *ret_json ? 0 : -ENOMEM;
out:
        json_decref(claims);
        return r;
}

/* ------------------------------------------------------------ feed */

HYB_EXPORT int hyb_token_feed_new(const hyb_token_trust *trust, hyb_token_feed **ret)
{
        hyb_token_feed *f;

        hyb_assert_return(trust && ret, -EINVAL);
        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        atomic_init(&f->n_ref, 1);
        pthread_mutex_init(&f->lock, NULL);
        f->trust = hyb_token_trust_ref(trust);
        f->revoked = json_object();
        f->min_epo = json_object();
        if (!f->revoked || !f->min_epo) {
                feed_free(f);
                return -ENOMEM;
        }
        for (size_t i = 0; i < ELEMENTSOF(handles); i++)
                if (json_object_set_new(f->revoked, handles[i].name, json_object()) < 0) {
                        feed_free(f);
                        return -ENOMEM;
                }
        *ret = f;
        return 0;
}

/* Adds the handles of verified claims to the sets (under the lock). */
static int feed_index(hyb_token_feed *f, json_t *claims, const char *kid)
{
        json_t *v, *old;

        for (size_t i = 0; i < ELEMENTSOF(handles); i++) {
                v = json_object_get(claims, handles[i].name);
                if (v && json_object_set_new(json_object_get(f->revoked, handles[i].name),
                                             json_string_value(v), json_true()) < 0)
                        return -ENOMEM;
        }
        v = json_object_get(claims, "min_epo");
        old = json_object_get(f->min_epo, kid);
        if (v && (!old || json_integer_value(old) < json_integer_value(v)) &&
            json_object_set_new(f->min_epo, kid, json_integer(json_integer_value(v))) < 0)
                return -ENOMEM;
        return 0;
}

static int store_entry(hyb_store *st, uint64_t seq, const char *entry, hyb_error *e)
{
        char path[sizeof FEED_BRANCH + 24];
        hyb_obj *o = NULL;
        int r;

        snprintf(path, sizeof path, FEED_BRANCH "%llu", (unsigned long long)seq);
        r = hyb_obj_new_str(entry, strlen(entry), &o);
        if (r < 0)
                return r;
        r = hyb_store_write_str(st, path, o, 0, e);
        hyb_obj_unref(o);
        return r;
}

/* Applies a verified entry of seq head+1 (under the lock). */
static int feed_append(hyb_token_feed *f, const char *entry, json_t *claims, const char *iss,
                       const char *kid, uint64_t seq, hyb_error *e)
{
        struct feed_entry fe = {0};
        int r;

        if (grow_array((void **)&f->entries, &f->alloc, f->n + 1, sizeof *f->entries) < 0)
                return -ENOMEM;
        fe.text = strdup(entry);
        fe.json = content_json(claims, iss, kid);
        r = fe.text && fe.json ? 0 : -ENOMEM;
        if (r >= 0 && f->store)
                r = store_entry(f->store, seq, entry, e);
        if (r >= 0)
                r = feed_index(f, claims, kid);
        if (r < 0) {
                free(fe.text);
                free(fe.json);
                return r;
        }
        f->entries[f->n++] = fe;
        return HYB_TOKEN_FEED_APPLIED;
}

HYB_EXPORT int hyb_token_feed_apply(hyb_token_feed *f, const char *entry, uint64_t *ret_seq,
                                    hyb_error *reterr)
{
        json_t *claims = NULL;
        const char *iss;
        char kid[44];
        uint64_t seq;
        int r;

        hyb_assert_return(f && entry, -EINVAL);
        r = entry_check(entry, f->trust, &claims, &seq, &iss, kid, reterr);
        if (r < 0)
                return r;
        if (ret_seq)
                *ret_seq = seq;
        pthread_mutex_lock(&f->lock);
        if (seq <= f->n)
                r = HYB_TOKEN_FEED_OLD;
        else if (seq > f->n + 1)
                r = HYB_TOKEN_FEED_GAP;
        else
                r = feed_append(f, entry, claims, iss, kid, seq, reterr);
        pthread_mutex_unlock(&f->lock);
        json_decref(claims);
        return r;
}

HYB_EXPORT uint64_t hyb_token_feed_get_seq(const hyb_token_feed *f)
{
        uint64_t n;

        if (!f)
                return 0;
        pthread_mutex_lock((pthread_mutex_t *)&f->lock);
        n = f->n;
        pthread_mutex_unlock((pthread_mutex_t *)&f->lock);
        return n;
}

HYB_EXPORT int hyb_token_feed_get_entry(const hyb_token_feed *f, uint64_t seq, char **ret_entry,
                                        char **ret_json)
{
        char *text = NULL, *json = NULL;
        int r = 0;

        hyb_assert_return(f && (ret_entry || ret_json), -EINVAL);
        pthread_mutex_lock((pthread_mutex_t *)&f->lock);
        if (seq == 0 || seq > f->n)
                r = -ENOENT;
        else if ((ret_entry && !(text = strdup(f->entries[seq - 1].text))) ||
                 (ret_json && !(json = strdup(f->entries[seq - 1].json))))
                r = -ENOMEM;
        if (r < 0) {
                free(text);
                free(json);
        } else {
                if (ret_entry)
                        *ret_entry = text;
                if (ret_json)
                        *ret_json = json;
        }
        pthread_mutex_unlock((pthread_mutex_t *)&f->lock);
        return r;
}

static bool in_set(hyb_token_feed *f, const char *member, const char *value)
{
        return value && json_object_get(json_object_get(f->revoked, member), value) != NULL;
}

HYB_EXPORT int hyb_token_feed_revoked(void *userdata, const hyb_token_ids *ids)
{
        hyb_token_feed *f = userdata;
        json_t *floor;
        int r = 0;

        hyb_assert_return(f && ids, -EINVAL);
        pthread_mutex_lock(&f->lock);
        if (in_set(f, "jti", ids->jti) || in_set(f, "issuer", ids->issuer_kid))
                r = 1;
        for (size_t i = 0; !r && i < ids->n_blocks; i++)
                if ((ids->sig_hashes && in_set(f, "sig_hash", ids->sig_hashes[i])) ||
                    (ids->holder_kids && in_set(f, "holder", ids->holder_kids[i])))
                        r = 1;
        if (!r && ids->issuer_kid && (floor = json_object_get(f->min_epo, ids->issuer_kid)) &&
            ids->epo < (uint64_t)json_integer_value(floor))
                r = 1;
        pthread_mutex_unlock(&f->lock);
        return r;
}

HYB_EXPORT int hyb_token_feed_attach_store(hyb_token_feed *f, hyb_store *st, hyb_error *reterr)
{
        char path[sizeof FEED_BRANCH + 24];
        int r = 0;

        hyb_assert_return(f && st, -EINVAL);
        pthread_mutex_lock(&f->lock);
        if (f->store) {
                pthread_mutex_unlock(&f->lock);
                return -EBUSY;
        }
        for (uint64_t seq = f->n + 1; r >= 0; seq++) {
                hyb_obj *o = NULL;
                json_t *claims = NULL;
                const char *text, *iss;
                char kid[44];
                uint64_t got;

                snprintf(path, sizeof path, FEED_BRANCH "%llu", (unsigned long long)seq);
                r = hyb_store_read_str(st, path, &o, reterr);
                if (r < 0)
                        break;
                text = hyb_obj_get_str(o, NULL);
                if (!text) {
                        hyb_obj_unref(o);
                        break; /* noobj: the first missing entry */
                }
                r = entry_check(text, f->trust, &claims, &got, &iss, kid, reterr);
                if (r >= 0 && got != seq)
                        r = err_set(reterr, HYB_E_UNAUTHORIZED, -1, "%s holds seq %llu", path,
                                    (unsigned long long)got);
                if (r >= 0)
                        r = feed_append(f, text, claims, iss, kid, seq, reterr);
                if (r < 0 && r != -ENOMEM)
                        err_prefix(reterr, "%s", path);
                json_decref(claims);
                hyb_obj_unref(o);
        }
        if (r >= 0) {
                f->store = hyb_store_ref(st);
                r = 0;
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}
