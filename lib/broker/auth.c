/* SPDX-License-Identifier: MIT */
/*
 * The connect handshake (doc/protocol.md "Handshake"): a challenge with a fresh
 * 32-byte getrandom() nonce, one AUTH answer, checked against the local uid
 * policy or, with auth.tokens accept|require, a security token and its proof of
 * possession (doc/token.md "Handshake"; the exact bytes in lib/token/proof.h), whose
 * signatures are checked on the threads of auth-pool.c, all at the same time, while the
 * loop serves the other peers (the connection is not read meanwhile).
 * A token session keeps its verified result: every later operation is a
 * pattern match against it (auth_bus_check, store_acl_check), never a signature
 * check.  The session ends at the token's exp (a timer) or when the revocation
 * hook says so (broker_auth_sweep).
 */
#include <jansson.h>
#include <stdio.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "broker-internal.h"
#include "bus/names.h"
#include "common/util.h"
#include "token/crypto.h"
#include "token/keys.h"
#include "token/proof.h"
#include "token/staged.h"

#define AUTH_CLI_APP "org.hybridos.cli"
#define AUTH_MAX_BODY 8192u /* an AUTH packet: the JSON around a token of at most 4 KiB */
#define AUTH_REFUSED "unauthorized" /* the one text a peer refused for its credentials sees */

/* What a revocation entry may name of a session's token (copied at connect). */
struct bauth_ids {
        char *jti, *issuer_kid;
        uint64_t epo;
        size_t n;
        char *sig_hashes[HYB_TOKEN_MAX_BLOCKS];
        char *holder_kids[HYB_TOKEN_MAX_BLOCKS];
};

static void ids_free(struct bauth_ids *d)
{
        if (!d)
                return;
        free(d->jti);
        free(d->issuer_kid);
        for (size_t i = 0; i < d->n; i++) {
                free(d->sig_hashes[i]);
                free(d->holder_kids[i]);
        }
        free(d);
}

static struct bauth_ids *ids_copy(const hyb_token_ids *ids)
{
        struct bauth_ids *d;

        if (ids->n_blocks > HYB_TOKEN_MAX_BLOCKS || !(d = calloc(1, sizeof *d)))
                return NULL;
        d->epo = ids->epo;
        d->jti = ids->jti ? strdup(ids->jti) : NULL;
        d->issuer_kid = ids->issuer_kid ? strdup(ids->issuer_kid) : NULL;
        bool oom = (ids->jti && !d->jti) || (ids->issuer_kid && !d->issuer_kid);
        for (size_t i = 0; i < ids->n_blocks; i++) {
                d->n = i + 1;
                d->sig_hashes[i] = ids->sig_hashes[i] ? strdup(ids->sig_hashes[i]) : NULL;
                d->holder_kids[i] = ids->holder_kids[i] ? strdup(ids->holder_kids[i]) : NULL;
                if ((ids->sig_hashes[i] && !d->sig_hashes[i]) || (ids->holder_kids[i] && !d->holder_kids[i]))
                        oom = true;
        }
        if (oom) {
                ids_free(d);
                return NULL;
        }
        return d;
}

/*
 * Verified tokens by the SHA-256 of their text, so a peer that reconnects with the same
 * token costs one signature check (its proof), not one per block.  An entry holds the
 * immutable result and its revocation handles; it is used only under the configuration it
 * was verified with (a reload changes audience, issuers or lifetime cap: b->c changes),
 * only before the token's exp, and the revocation hook is asked again at every connect.
 */
#define AUTH_CACHE_SLOTS 64u
struct bauth_cache {
        struct bauth_slot {
                uint8_t hash[CRYPTO_SHA256_LEN];
                const broker_config *cfg;
                hyb_token_result *res;
                struct bauth_ids *ids;
        } slot[AUTH_CACHE_SLOTS];
        unsigned next; /* the slot the next insertion replaces */
};

static void ids_free(struct bauth_ids *d);

static void cache_slot_clear(struct bauth_slot *s)
{
        s->res = hyb_token_result_unref(s->res);
        ids_free(s->ids);
        s->ids = NULL;
        s->cfg = NULL;
}

void auth_broker_free(hyb_broker *b)
{
        if (!b->tok_cache)
                return;
        for (unsigned i = 0; i < AUTH_CACHE_SLOTS; i++)
                cache_slot_clear(&b->tok_cache->slot[i]);
        free(b->tok_cache);
        b->tok_cache = NULL;
}

static struct bauth_slot *cache_find(hyb_broker *b, const uint8_t hash[CRYPTO_SHA256_LEN], int64_t now)
{
        if (!b->tok_cache)
                return NULL;
        for (unsigned i = 0; i < AUTH_CACHE_SLOTS; i++) {
                struct bauth_slot *s = &b->tok_cache->slot[i];

                if (!s->res)
                        continue;
                if (s->cfg != b->c || hyb_token_result_get_exp(s->res) <= now) {
                        cache_slot_clear(s); /* stale: another configuration, or expired */
                        continue;
                }
                if (crypto_memeq(s->hash, hash, CRYPTO_SHA256_LEN))
                        return s;
        }
        return NULL;
}

static struct bauth_ids *ids_copy_of(const struct bauth_ids *d);

static void cache_put(hyb_broker *b, const uint8_t hash[CRYPTO_SHA256_LEN], hyb_token_result *res,
                      const struct bauth_ids *ids)
{
        struct bauth_slot *s;

        if (!b->tok_cache && !(b->tok_cache = calloc(1, sizeof *b->tok_cache)))
                return; /* no cache: the next connect verifies again */
        s = &b->tok_cache->slot[b->tok_cache->next++ % AUTH_CACHE_SLOTS];
        cache_slot_clear(s);
        s->ids = ids_copy_of(ids);
        if (!s->ids)
                return;
        memcpy(s->hash, hash, CRYPTO_SHA256_LEN);
        s->cfg = b->c;
        s->res = hyb_token_result_ref(res);
}

static void ids_view(const struct bauth_ids *d, hyb_token_ids *v)
{
        *v = (hyb_token_ids){
                .jti = d->jti,
                .issuer_kid = d->issuer_kid,
                .epo = d->epo,
                .n_blocks = d->n,
                .sig_hashes = (const char *const *)d->sig_hashes,
                .holder_kids = (const char *const *)d->holder_kids,
        };
}

static struct bauth_ids *ids_copy_of(const struct bauth_ids *d)
{
        hyb_token_ids v;

        ids_view(d, &v);
        return ids_copy(&v);
}

/* ---- for the edge (lib/edge/http-auth.c): the same cache and the same last stage */

void auth_ids_free(struct bauth_ids *ids)
{
        ids_free(ids);
}

bool auth_cache_get(hyb_broker *b, const uint8_t th[CRYPTO_SHA256_LEN], hyb_token_result **ret,
                    struct bauth_ids **ret_ids)
{
        struct bauth_slot *s = cache_find(b, th, (int64_t)time(NULL));
        struct bauth_ids *ids = s ? ids_copy_of(s->ids) : NULL;

        if (!ids)
                return false; /* not cached (or no memory to copy it: verified again) */
        *ret = hyb_token_result_ref(s->res);
        *ret_ids = ids;
        return true;
}

void auth_cache_keep(hyb_broker *b, const uint8_t th[CRYPTO_SHA256_LEN], hyb_token_result *res,
                     struct bauth_ids *ids)
{
        cache_put(b, th, res, ids);
        ids_free(ids);
}

int auth_challenge(bconn *c)
{
        hyb_broker *b = c->b;
        char hex[2 * TOKEN_NONCE_LEN + 1], body[768];
        size_t got = 0;
        wire_hdr h = { .type = WIRE_CHALLENGE };
        int n;

        while (got < sizeof c->nonce) {
                ssize_t k = getrandom(c->nonce + got, sizeof c->nonce - got, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)k;
        }
        c->nonce_sent = true;
        token_nonce_to_hex(c->nonce, hex);
        if (b->c->auth_tokens != BROKER_AUTH_OFF) {
                /* The verifier id a proof names (doc/token.md "Handshake"), and whether a
                 * token is required. */
                json_t *aud = json_string(broker_auth_audience(b));
                char *a = aud ? json_dumps(aud, JSON_ENCODE_ANY) : NULL;

                json_decref(aud);
                if (!a)
                        return -ENOMEM;
                n = snprintf(body, sizeof body,
                             "{\"protocol\":\"%s\",\"version\":%d,\"nonce\":\"%s\",\"maxBody\":%zu,"
                             "\"host\":\"%s\",\"audience\":%s,\"tokens\":\"%s\","
                             "\"earlyToken\":true}",
                             WIRE_PROTOCOL, WIRE_VERSION, hex, b->c->max_body,
                             b->c->host ? b->c->host : "localhost", a,
                             b->c->auth_tokens == BROKER_AUTH_REQUIRE ? "require" : "accept");
                free(a);
        } else {
                n = snprintf(body, sizeof body,
                             "{\"protocol\":\"%s\",\"version\":%d,\"nonce\":\"%s\",\"maxBody\":%zu,"
                             "\"host\":\"%s\"}",
                             WIRE_PROTOCOL, WIRE_VERSION, hex, b->c->max_body,
                             b->c->host ? b->c->host : "localhost");
        }
        if (n < 0 || (size_t)n >= sizeof body)
                return -ENAMETOOLONG;
        return bconn_send(c, &h, NULL, 0, NULL, 0, NULL, 0, body, (size_t)n);
}

const char *broker_auth_audience(hyb_broker *b)
{
        if (b->c->auth_audience)
                return b->c->auth_audience;
        if (!b->hostname[0] && (gethostname(b->hostname, sizeof b->hostname - 1) < 0 || !b->hostname[0]))
                snprintf(b->hostname, sizeof b->hostname, "localhost");
        return b->hostname;
}

static void auth_fail(bconn *c, int status, const char *msg)
{
        wire_hdr h = { .type = WIRE_AUTH_RESULT, .status = (uint16_t)status };
        if (c->remote)
                broker_log(c->b, HYB_LOG_INFO, "auth refused for remote peer %s (%s): %d %s",
                           c->remote_addr ? c->remote_addr : "?", c->transport, status, msg);
        else
                broker_log(c->b, HYB_LOG_INFO, "auth refused for uid %u pid %d: %d %s",
                           (unsigned)c->uid, (int)c->pid, status, msg);
        bconn_send(c, &h, NULL, 0, NULL, 0, msg, strlen(msg), NULL, 0);
        bconn_close(c, NULL);
}

/* A refusal for credentials: the peer sees one uniform 401, the log says why. */
static void auth_refuse(bconn *c, const char *why)
{
        wire_hdr h = { .type = WIRE_AUTH_RESULT, .status = 401 };
        if (c->remote)
                broker_log(c->b, HYB_LOG_INFO, "auth refused for remote peer %s (%s): 401 %s",
                           c->remote_addr ? c->remote_addr : "?", c->transport, why);
        else
                broker_log(c->b, HYB_LOG_INFO, "auth refused for uid %u pid %d: 401 %s",
                           (unsigned)c->uid, (int)c->pid, why);
        bconn_send(c, &h, NULL, 0, NULL, 0, AUTH_REFUSED, strlen(AUTH_REFUSED), NULL, 0);
        bconn_close(c, NULL);
}

void broker_auth_set_revoked(hyb_broker *b, hyb_token_revoked_fn fn, void *ud)
{
        b->revoked = fn;
        b->revoked_ud = ud;
}

typedef struct capture {
        hyb_broker *b;
        struct bauth_ids *ids;
} capture;

/* The verifier's revocation hook at connect: keeps the token's handles for later sweeps. */
static int capture_revoked(void *ud, const hyb_token_ids *ids)
{
        capture *cap = ud;

        ids_free(cap->ids);
        cap->ids = ids_copy(ids);
        if (!cap->ids)
                return -ENOMEM; /* cannot keep watching it: refuse (fail closed) */
        if (cap->b->revoked)
                return cap->b->revoked(cap->b->revoked_ud, ids);
        return 0;
}

int auth_revoked_check(hyb_broker *b, const struct bauth_ids *ids, hyb_error *e)
{
        hyb_token_ids v;
        int r;

        if (!b->revoked)
                return 0;
        ids_view(ids, &v);
        r = b->revoked(b->revoked_ud, &v);
        if (r == 0)
                return 0;
        return err_set(e, HYB_E_UNAUTHORIZED, -1, "token: %s",
                       r > 0 ? "revoked" : "revocation state unknown");
}

int auth_finish(hyb_broker *b, token_staged *st, hyb_token_result **ret, struct bauth_ids **ret_ids,
                hyb_error *e)
{
        hyb_token_result *res = NULL;
        capture cap = { .b = b };
        hyb_token_verify_opts o;
        hyb_error ve;
        int r;

        hyb_token_verify_opts_init(&o);
        o.audience = broker_auth_audience(b);
        o.max_lifetime_s = b->c->auth_max_lifetime_s;
        o.revoked = capture_revoked;
        o.userdata = &cap;
        hyb_error_clear(&ve);
        r = token_staged_finish(st, b->c->auth_trust, &o, &res, &ve);
        if (r < 0) {
                ids_free(cap.ids);
                return err_set(e, r == -ENOMEM ? r : HYB_E_UNAUTHORIZED, -1, "token: %s",
                               ve.message[0] ? ve.message : hyb_strerror(r));
        }
        if (hyb_token_result_get_exp(res) <= (int64_t)time(NULL)) {
                ids_free(cap.ids);
                hyb_token_result_unref(res);
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "token: expired");
        }
        if (!cap.ids && !(cap.ids = calloc(1, sizeof *cap.ids))) {
                hyb_token_result_unref(res);
                return -ENOMEM;
        }
        *ret = res;
        *ret_ids = cap.ids;
        return 0;
}

/*
 * One connection's token verification (auth-pool.c): the signatures of its blocks (or
 * none, for a token verified before: the cache) and its proof of possession, checked at
 * the same time on the pool's threads; then, on the loop, the verification in the order
 * of doc/token.md "Verification" (token_staged_finish), the revocation hook, the proof's
 * result, and the rest of auth_run's checks.  The job holds what it needs (the AUTH
 * packet, the configuration it was started under); a connection that closes meanwhile
 * only sets c to NULL (auth_conn_free).
 */
typedef struct bauth_job {
        bpool_job pj;
        hyb_broker *b;
        bconn *c;                       /* NULL once the connection went */
        hyb_broker_config *cfg;         /* the configuration it started under (a reference) */
        json_t *packet;                 /* the AUTH packet */
        uint8_t th[CRYPTO_SHA256_LEN];  /* SHA-256 of the token: the cache's key */
        token_staged *st;               /* a token not seen before, else NULL */
        hyb_token_result *seen;         /* a token seen before: its result */
        struct bauth_ids *seen_ids;     /* and its revocation handles */
        hyb_key *holder;                /* who must have signed the proof, or NULL */
        uint8_t transcript[32];
        uint8_t proof[64];
        bool proof_form;                /* the proof is 64 bytes of base64url */
        bool proof_ok;                  /* written by the proof's last part */
        /* With a verifying thread to spare (a token verified before: the proof alone), the
         * proof's verification as two tasks, u2 Q and u1 G, on two threads at the same
         * time; the part that ends last judges.  Else (NULL) one task: the two
         * multiplications of a verification and the signatures of the token's blocks are
         * then as many tasks as threads or more, and a split would only add work (each part
         * inverts s). */
        p256_split *proof_split;
        atomic_uint proof_parts;        /* parts still running */
        /* A token announced ahead of its AUTH (auth_early): the job checks its blocks only
         * and, done, keeps the verdict for the AUTH, which must carry the same token. */
        bool early;
        bool early_done;                /* the verdict below is there */
        int early_r;                    /* 0: early_res and early_ids hold; < 0: early_why */
        hyb_token_result *early_res;
        struct bauth_ids *early_ids;
        char early_why[400];
        json_t *deferred;               /* the AUTH that came while the checks ran */
        /* A one-block token announced with a verifying thread to spare: block 0's check as
         * two tasks (u2 Q and u1 G) on two threads, done by the time the peer's proof is
         * signed (one multiplication each); the part that ends last sets the result. */
        p256_split *blk_split;
        atomic_uint blk_parts;
        /* An AUTH whose token was announced (v->seen from the announcement): the token
         * goes into the cache once its proof held, as a new one does. */
        bool announced;
} bauth_job;

static void job_free(bauth_job *v)
{
        if (v->c && v->c->auth_job == v)
                v->c->auth_job = NULL;
        if (v->c && v->c->early_job == v)
                v->c->early_job = NULL;
        hyb_token_result_unref(v->early_res);
        ids_free(v->early_ids);
        json_decref(v->deferred);
        token_staged_free(v->st);
        p256_split_free(v->proof_split);
        p256_split_free(v->blk_split);
        hyb_token_result_unref(v->seen);
        ids_free(v->seen_ids);
        hyb_key_unref(v->holder);
        json_decref(v->packet);
        hyb_broker_config_unref(v->cfg);
        free(v);
}

/* On a worker: signature i of the token's blocks, then the proof (or its parts u2 Q and
 * u1 G). */
static void job_run(bpool_job *pj, unsigned i)
{
        bauth_job *v = (bauth_job *)pj;
        size_t n_sigs = v->st ? token_staged_n_sigs(v->st) : 0;

        if (v->blk_split) {
                /* an announcement's block 0 in two parts (no proof in this job) */
                p256_split_run(v->blk_split, i == 0 ? P256_SPLIT_Q : P256_SPLIT_G);
                if (atomic_fetch_sub(&v->blk_parts, 1) == 1)
                        token_staged_set_check(v->st, 0, p256_split_finish(v->blk_split) == 0);
                return;
        }
        if (i < n_sigs) {
                token_staged_check(v->st, i);
                return;
        }
        if (!v->proof_split) {
                v->proof_ok = hyb_key_verify(v->holder, v->transcript, sizeof v->transcript, v->proof,
                                             sizeof v->proof) == 0;
                return;
        }
        p256_split_run(v->proof_split, i == n_sigs ? P256_SPLIT_Q : P256_SPLIT_G);
        /* the other part's writes are seen through this atomic (acquire and release) */
        if (atomic_fetch_sub(&v->proof_parts, 1) == 1)
                v->proof_ok = p256_split_finish(v->proof_split) == 0;
}

static void auth_run(bconn *c, json_t *j);
static void auth_accept(bconn *c, json_t *j, hyb_token_result *tok, struct bauth_ids *tok_ids);

/*
 * On the loop, the tasks done: the verification's verdict, in the order of the checks
 * done one after the other before: the token (with its revocation), its exp, the proof.
 * 0 with *ret and *ret_ids, or < 0 with the reason in why.
 */
static int job_verdict(bauth_job *v, hyb_token_result **ret, struct bauth_ids **ret_ids, char *why,
                       size_t why_size)
{
        bconn *c = v->c;
        hyb_broker *b = c->b;
        hyb_token_result *res = NULL;
        capture cap = { .b = b };
        hyb_error e;
        int r;

        if (v->seen) {
                /* Verified before under this configuration: only revocation may have changed. */
                hyb_token_ids ids;

                res = hyb_token_result_ref(v->seen);
                ids_view(v->seen_ids, &ids);
                r = capture_revoked(&cap, &ids);
                if (r != 0) {
                        snprintf(why, why_size, "token: %s", r > 0 ? "revoked" : "revocation state unknown");
                        r = HYB_E_UNAUTHORIZED;
                        goto fail;
                }
        } else {
                hyb_token_verify_opts o;

                hyb_token_verify_opts_init(&o);
                o.audience = broker_auth_audience(b);
                o.max_lifetime_s = b->c->auth_max_lifetime_s;
                o.revoked = capture_revoked;
                o.userdata = &cap;
                hyb_error_clear(&e);
                r = token_staged_finish(v->st, b->c->auth_trust, &o, &res, &e);
                if (r < 0) {
                        snprintf(why, why_size, "token: %s", e.message[0] ? e.message : hyb_strerror(r));
                        goto fail;
                }
        }
        if (hyb_token_result_get_exp(res) <= (int64_t)time(NULL)) {
                snprintf(why, why_size, "token: expired");
                r = HYB_E_UNAUTHORIZED;
                goto fail;
        }
        /* The proof was checked against the holder key read in advance: the verified
         * token's holder must be that very key. */
        if (!v->proof_form || !v->proof_ok || !v->holder ||
            strcmp(hyb_key_get_kid(v->holder), hyb_token_result_get_holder_kid(res)) != 0) {
                snprintf(why, why_size,
                         "proof of possession: not by holder key %s for this challenge and uid %u",
                         hyb_token_result_get_holder_kid(res), (unsigned)c->uid);
                r = HYB_E_UNAUTHORIZED;
                goto fail;
        }
        if (!cap.ids && !(cap.ids = calloc(1, sizeof *cap.ids))) {
                r = -ENOMEM;
                snprintf(why, why_size, "out of memory");
                goto fail;
        }
        /* Only a token whose proof held is kept: the cache never grows from refusals. */
        if (!v->seen || v->announced)
                cache_put(b, v->th, res, cap.ids);
        *ret = res;
        *ret_ids = cap.ids;
        return 0;
fail:
        ids_free(cap.ids);
        hyb_token_result_unref(res);
        return r;
}

static void job_done(bpool_job *pj, bool cancelled)
{
        bauth_job *v = (bauth_job *)pj;
        bconn *c = v->c;
        hyb_token_result *tok = NULL;
        struct bauth_ids *tok_ids = NULL;
        char why[400];
        json_t *packet;

        if (c)
                c->auth_job = NULL;
        v->c = NULL;
        if (cancelled || !c || c->state != BCONN_AUTH) {
                job_free(v);
                return;
        }
        packet = json_incref(v->packet);
        if (c->b->cfg != v->cfg) {
                /* Reloaded meanwhile: verified again under the configuration now in force
                 * (its nonce was never judged: the same challenge still stands). */
                job_free(v);
                c->nonce_sent = true;
                auth_run(c, packet);
        } else {
                v->c = c; /* job_verdict reads it (and leaves auth_job NULL) */
                int r = job_verdict(v, &tok, &tok_ids, why, sizeof why);

                v->c = NULL;
                job_free(v);
                if (r < 0)
                        auth_refuse(c, why);
                else
                        auth_accept(c, packet, tok, tok_ids);
        }
        json_decref(packet);
        bconn_resume_reading(c);
}

/*
 * Starts verifying token and its proof (cnonce_hex, proof) against this connection's
 * nonce and channel binding.  0: the connection waits for the job (c->auth_job);
 * HYB_E_UNAUTHORIZED with the reason in why for what needs no signature to refuse;
 * -EBUSY / -EAGAIN over auth.max_verifying / auth.uid_max_verifying; another < 0.
 */
static int auth_token_start(bconn *c, json_t *packet, json_t *token, const char *cnonce_hex,
                            size_t cnonce_len, const char *proof, size_t proof_len, char *why,
                            size_t why_size)
{
        hyb_broker *b = c->b;
        uint8_t nc[TOKEN_NONCE_LEN];
        struct bauth_slot *slot;
        char binding[TOKEN_BINDING_MAX];
        bauth_job *v;
        const char *text;
        size_t len, n = 0;
        hyb_error e;
        int r;

        if (!json_is_string(token)) {
                snprintf(why, why_size, "the token is not a string");
                return HYB_E_UNAUTHORIZED;
        }
        text = json_string_value(token);
        len = json_string_length(token);
        if (strlen(text) != len) {
                snprintf(why, why_size, "NUL in the token");
                return HYB_E_UNAUTHORIZED;
        }
        if (!c->nonce_sent) {
                snprintf(why, why_size, "no challenge was sent");
                return HYB_E_UNAUTHORIZED;
        }
        if (!cnonce_hex || token_nonce_from_hex(cnonce_hex, cnonce_len, nc) < 0) {
                snprintf(why, why_size, "missing or malformed client nonce");
                return HYB_E_UNAUTHORIZED;
        }
        if (!proof) {
                snprintf(why, why_size, "no proof of possession");
                return HYB_E_UNAUTHORIZED;
        }
        v = calloc(1, sizeof *v);
        if (!v) {
                snprintf(why, why_size, "out of memory");
                return -ENOMEM;
        }
        v->b = b;
        v->cfg = hyb_broker_config_ref(b->cfg);
        v->packet = json_incref(packet);
        crypto_sha256(text, len, v->th);
        slot = cache_find(b, v->th, (int64_t)time(NULL));
        if (c->early_job) {
                /* A token was announced (auth_early, its checks done: auth_run waited): the
                 * AUTH must carry that very token, and takes its verdict. */
                bauth_job *ej = c->early_job;

                c->early_job = NULL;
                ej->c = NULL;
                if (!crypto_memeq(ej->th, v->th, sizeof v->th)) {
                        snprintf(why, why_size, "the token differs from the one announced");
                        job_free(ej);
                        r = HYB_E_UNAUTHORIZED;
                        goto fail;
                }
                if (ej->cfg == b->cfg && ej->early_r < 0) {
                        snprintf(why, why_size, "%s", ej->early_why);
                        job_free(ej);
                        r = HYB_E_UNAUTHORIZED;
                        goto fail;
                }
                if (ej->cfg == b->cfg && !slot) {
                        v->seen = TAKE_PTR(ej->early_res);
                        v->seen_ids = TAKE_PTR(ej->early_ids);
                        v->holder = hyb_key_ref(hyb_token_result_get_holder(v->seen));
                        v->announced = true;
                }
                /* else reloaded meanwhile (verified again now), or verified by another
                 * connection meanwhile (the cache) */
                job_free(ej);
        }
        if (v->seen) {
                /* the announcement's verdict */
        } else if (slot) {
                v->seen = hyb_token_result_ref(slot->res);
                v->seen_ids = ids_copy_of(slot->ids);
                v->holder = hyb_key_ref(hyb_token_result_get_holder(slot->res));
                if (!v->seen_ids) {
                        r = -ENOMEM;
                        snprintf(why, why_size, "out of memory");
                        goto fail;
                }
        } else {
                /* What needs no signature is judged now (the same reasons as ever). */
                hyb_error_clear(&e);
                r = b->c->auth_trust ? token_staged_new(text, len, b->c->auth_trust, &v->st, &e)
                                     : err_set(&e, HYB_E_UNAUTHORIZED, -1, "no issuer is trusted");
                if (r < 0) {
                        snprintf(why, why_size, "token: %s", e.message[0] ? e.message : hyb_strerror(r));
                        goto fail;
                }
                if (token_staged_holder(v->st))
                        v->holder = hyb_key_ref(token_staged_holder(v->st));
        }
        if (c->binding)
                snprintf(binding, sizeof binding, "%s", c->binding);
        else
                token_binding_unix(c->uid, binding);
        r = token_proof_transcript(broker_auth_audience(b), c->nonce, nc, text, len, binding,
                                   v->transcript);
        v->proof_form = r >= 0 && v->holder && proof_len == TOKEN_PROOF_B64_LEN &&
                        b64u_decode_to(proof, proof_len, v->proof, sizeof v->proof, &n) >= 0 &&
                        n == sizeof v->proof;
        n = v->st ? token_staged_n_sigs(v->st) : 0;
        if (v->proof_form && n + 1 < auth_pool_threads(b)) {
                /* the proof is ES256 over the transcript (SHA-256 of it, then ECDSA); a
                 * signature refused before any multiplication leaves proof_ok false */
                uint8_t h[CRYPTO_SHA256_LEN];

                crypto_sha256(v->transcript, sizeof v->transcript, h);
                r = p256_split_new(key_get_p256(v->holder), h, v->proof, sizeof v->proof, true,
                                   &v->proof_split);
                if (r == -ENOMEM) {
                        snprintf(why, why_size, "out of memory");
                        goto fail;
                }
                atomic_init(&v->proof_parts, 2);
        }
        v->pj.run = job_run;
        v->pj.done = job_done;
        v->pj.uid = c->uid;
        v->pj.n_tasks = (unsigned)n + (v->proof_split ? 2 : v->proof_form ? 1 : 0);
        r = auth_pool_submit(b, &v->pj);
        if (r < 0) {
                snprintf(why, why_size, "%s",
                         r == -EBUSY    ? "too many token verifications at once"
                         : r == -EAGAIN ? "too many token verifications of this uid at once"
                                        : hyb_strerror(r));
                goto fail;
        }
        /* The nonce is single-use; the connection is not read until the job is done. */
        c->nonce_sent = false;
        v->c = c;
        c->auth_job = v;
        if (c->rev)
                event_del(c->rev);
        else
                bufferevent_disable(c->bev, EV_READ);
        broker_log(b, HYB_LOG_DEBUG, "uid %u pid %d: token being verified (%u checks)",
                   (unsigned)c->uid, (int)c->pid, v->pj.n_tasks);
        return 0;
fail:
        c->nonce_sent = false;
        job_free(v);
        return r;
}

static bool token_covers_endpoint(const hyb_token_result *res, const char *app, const char *runner)
{
        char name[WIRE_ENDPOINT_MAX + 16];

        snprintf(name, sizeof name, "bus://localhost/%s/%s", app, runner);
        for (unsigned bit = HYB_TOKEN_ACT_CALL; bit <= HYB_TOKEN_ACT_ADMIN; bit <<= 1)
                if (hyb_token_allowed_str(res, name, bit) == 1)
                        return true;
        return false;
}

static bool result_admin(const hyb_token_result *res)
{
        return hyb_token_allowed_str(res, "bus://localhost/#", HYB_TOKEN_ACT_ADMIN) == 1;
}

bool auth_token_admin(const bconn *c)
{
        return c->tok && result_admin(c->tok);
}

/*
 * Ends a token session: ERROR 401 with the reason to the peer, then closed.  The log
 * names the peer's uid and pid unless !with_peer (edge sessions: both are the daemon's).
 */
static void session_end(bconn *c, bool with_peer, const char *why, const char *reason)
{
        char msg[200];

        if (with_peer)
                broker_log(c->b, HYB_LOG_INFO,
                           "%s (uid %u pid %d, token %s of %s): session closed, %s", c->name,
                           (unsigned)c->uid, (int)c->pid, hyb_token_result_get_jti(c->tok),
                           hyb_token_result_get_sub(c->tok), why);
        else
                broker_log(c->b, HYB_LOG_INFO, "%s (token %s of %s): session closed, %s",
                           c->name, hyb_token_result_get_jti(c->tok),
                           hyb_token_result_get_sub(c->tok), why);
        snprintf(msg, sizeof msg, "session closed: %s", why);
        bconn_say_why(c, 401, msg);
        bconn_close(c, reason);
}

void auth_session_expire(evutil_socket_t fd, short what, void *ud)
{
        bconn *c = ud;

        (void)fd;
        (void)what;
        if (c->state != BCONN_READY || !c->tok)
                return;
        if (hyb_token_result_get_exp(c->tok) > (int64_t)time(NULL)) {
                /* The wall clock is behind the monotonic timer: look again in a second. */
                struct timeval tv = { 1, 0 };
                evtimer_add(c->exp_ev, &tv);
                return;
        }
        session_end(c, !c->transport, "the token expired", "tokenExpired");
}

void broker_auth_sweep(hyb_broker *b)
{
        int64_t now = (int64_t)time(NULL);

        for (bconn *c = b->conns; c; c = c->next) {
                hyb_token_ids ids;
                int r;

                if (c->state != BCONN_READY || !c->tok)
                        continue;
                if (hyb_token_result_get_exp(c->tok) <= now) {
                        session_end(c, true, "the token expired", "tokenExpired");
                        continue;
                }
                if (!b->revoked || !c->tok_ids)
                        continue;
                ids_view(c->tok_ids, &ids);
                r = b->revoked(b->revoked_ud, &ids);
                if (r > 0)
                        session_end(c, true, "the token was revoked", "tokenRevoked");
                else if (r < 0)
                        session_end(c, true, "the token's revocation state is unknown",
                                    "tokenRevoked");
        }
}

void auth_conn_free(bconn *c)
{
        bauth_job *ej = c->early_job;

        if (c->auth_job) {
                /* Its verification goes on to the end (the pool frees it): without c. */
                c->auth_job->c = NULL;
                c->auth_job = NULL;
        }
        c->early_job = NULL;
        if (ej && ej->early_done)
                job_free(ej); /* checked, its AUTH never came */
        else if (ej)
                ej->c = NULL; /* still being checked: the pool frees it */
        if (c->exp_ev)
                event_free(c->exp_ev);
        c->exp_ev = NULL;
        c->tok = hyb_token_result_unref(c->tok);
        free(c->tok_text);
        c->tok_text = NULL;
        ids_free(c->tok_ids);
        c->tok_ids = NULL;
}

/* One segment of an endpoint glob or a member name as a fURI segment: a glob is `+`. */
static int put_segment(char *out, size_t size, size_t *pos, const char *s, size_t n)
{
        bool glob = !bus_glob_is_literal(s, n);
        int k = snprintf(out + *pos, size - *pos, "/%.*s", glob ? 1 : (int)n, glob ? "+" : s);

        if (k < 0 || (size_t)k >= size - *pos)
                return -ENAMETOOLONG;
        *pos += (size_t)k;
        return 0;
}

/*
 * The bus resource of endpoint ep ("@host/app/runner", or a glob of it) and member
 * (NULL: the endpoint) as "bus://host/app/runner[/member]": glob segments become `+`; a
 * glob that does not spell three segments (`*` may span a `/`) covers everything from
 * its first glob segment on: `#`.
 */
static int bus_resource(const char *ep, const char *member, char *out, size_t size)
{
        size_t pos, n_seg = 1, first_glob = SIZE_MAX;
        const char *p = ep;

        if (*p == '@')
                p++;
        for (const char *q = p; *q; q++)
                n_seg += *q == '/';
        pos = (size_t)snprintf(out, size, "bus:/");
        for (size_t i = 0; i < n_seg; i++) {
                const char *end = strchr(p, '/');
                size_t n = end ? (size_t)(end - p) : strlen(p);

                if (!bus_glob_is_literal(p, n) && first_glob == SIZE_MAX)
                        first_glob = i;
                if (n_seg != 3 && first_glob != SIZE_MAX) {
                        if (pos + 3 > size)
                                return -ENAMETOOLONG;
                        memcpy(out + pos, "/#", 3);
                        return 0;
                }
                if (put_segment(out, size, &pos, p, n) < 0)
                        return -ENAMETOOLONG;
                p = end ? end + 1 : p + n;
        }
        if (member && put_segment(out, size, &pos, member, strlen(member)) < 0)
                return -ENAMETOOLONG;
        return 0;
}

int auth_bus_check(const bconn *c, const char *ep, const char *member, unsigned actions, hyb_error *e)
{
        char res[WIRE_ENDPOINT_MAX + WIRE_MEMBER_MAX + 16];

        if (!c->tok)
                return 0;
        if (bus_resource(ep, member, res, sizeof res) == 0 && hyb_token_allowed_str(c->tok, res, actions) == 1)
                return 0;
        return err_set(e, HYB_E_FORBIDDEN, -1, "the token does not allow %s on %s",
                       actions == HYB_TOKEN_ACT_CALL  ? "call"
                       : actions == HYB_TOKEN_ACT_REG ? "reg"
                       : actions == HYB_TOKEN_ACT_SUB ? "sub"
                       : actions == HYB_TOKEN_ACT_PUB ? "pub"
                                                      : "this",
                       res);
}

/*
 * Is runner, under the app org.hybridos.cli, the name a local process takes by default:
 * cli<pid> (the hybrid tool), p<pid> or p<pid>_<n> (the store scope of the library and the
 * bindings)?  Those names belong to processes of this host: a remote peer may not take them,
 * so it cannot squat the name a local CLI is about to claim.  ASCII case is ignored, as bus
 * names compare.
 */
static bool auth_local_runner(const char *runner)
{
        const char *p = runner;
        size_t n;

        if (strncasecmp(p, "cli", 3) == 0)
                p += 3;
        else if (*p == 'p' || *p == 'P')
                p++;
        else
                return false;
        n = strspn(p, "0123456789");
        if (n == 0)
                return false;
        if (p[n] == '\0')
                return true;
        if (p != runner + 1 || p[n] != '_')
                return false; /* cli<pid>_...: not a name of the tool */
        p += n + 1;
        n = strspn(p, "0123456789");
        return n > 0 && p[n] == '\0';
}

/*
 * The rest of the handshake once the credentials held (tok and tok_ids, taken over; NULL
 * without a token): the names, the endpoint, AUTH_RESULT 200.
 */
static void auth_accept(bconn *c, json_t *j, hyb_token_result *tok, struct bauth_ids *tok_ids)
{
        hyb_broker *b = c->b;
        const char *app = json_string_value(json_object_get(j, "app"));
        const char *runner = json_string_value(json_object_get(j, "runner"));
        char name[WIRE_ENDPOINT_MAX + 1], resp[WIRE_ENDPOINT_MAX + 64], why[400];

        if (!app || !runner || strlen(app) != json_string_length(json_object_get(j, "app")) ||
            strlen(runner) != json_string_length(json_object_get(j, "runner")) ||
            bus_name_check_app(app, strlen(app), NULL) < 0 ||
            bus_name_check_ident(runner, strlen(runner), NULL) < 0) {
                auth_fail(c, 406, "bad app or runner name");
                goto out;
        }
        if (bus_name_equal(app, strlen(app), BUS_APP_SELF, strlen(BUS_APP_SELF)) ||
            bus_name_equal(runner, strlen(runner), BUS_RUNNER_BUILTIN, strlen(BUS_RUNNER_BUILTIN))) {
                auth_fail(c, 406, "reserved app or runner name");
                goto out;
        }
        if (tok && !bus_name_equal(app, strlen(app), AUTH_CLI_APP, strlen(AUTH_CLI_APP)) &&
            !token_covers_endpoint(tok, app, runner)) {
                snprintf(why, sizeof why, "the token (%s) grants nothing on bus://localhost/%s/%s",
                         hyb_token_result_get_jti(tok), app, runner);
                auth_refuse(c, why);
                goto out;
        }
        if (c->remote && bus_name_equal(app, strlen(app), AUTH_CLI_APP, strlen(AUTH_CLI_APP)) &&
            auth_local_runner(runner)) {
                snprintf(why, sizeof why,
                         "runner %s of %s is kept for local processes (cli<pid>, p<pid>, "
                         "p<pid>_<n>): a remote peer takes another name",
                         runner, AUTH_CLI_APP);
                auth_fail(c, 403, why);
                goto out;
        }
        if (!tok && !broker_config_may_claim(b->c, c->uid, app, strlen(app))) {
                auth_fail(c, 403, "this uid may not claim the app name");
                goto out;
        }
        snprintf(name, sizeof name, "@localhost/%s/%s", app, runner);
        if (broker_lookup(b, name, strlen(name))) {
                auth_fail(c, 409, "endpoint name already connected");
                goto out;
        }
        if (b->n_endpoints >= b->c->max_endpoints) {
                auth_fail(c, 503, "too many endpoints");
                goto out;
        }
        /* A remote peer is charged to its token's principal from now on, not to the
         * anonymous uid all remote peers share (quota.c). */
        if (c->remote && tok) {
                const char *which = NULL;
                int st = quota_principal(c, tok, &which);

                if (st) {
                        snprintf(why, sizeof why, "quota %s of the token's principal exceeded", which);
                        auth_fail(c, st, why);
                        goto out;
                }
        }
        c->name = strdup(name);
        c->app = strdup(app);
        if (!c->name || !c->app) {
                auth_fail(c, 500, "out of memory");
                goto out;
        }
        c->name_len = strlen(name);
        if (tok) {
                int64_t left = hyb_token_result_get_exp(tok) - (int64_t)time(NULL);
                struct timeval tv = { .tv_sec = left > 0 ? (time_t)left : 0 };

                c->exp_ev = evtimer_new(b->base, auth_session_expire, c);
                if (!c->exp_ev || evtimer_add(c->exp_ev, &tv) < 0) {
                        auth_fail(c, 500, "out of memory");
                        goto out;
                }
                /* The token's rights replace the uid's: admin only by the token. */
                c->admin = result_admin(tok);
                /* Kept to be forwarded with its calls to other hosts (xhost.c), whose
                 * security service verifies it for itself. */
                if (b->xhost) {
                        const char *tt = json_string_value(json_object_get(j, "token"));
                        if (tt && !(c->tok_text = strdup(tt))) {
                                auth_fail(c, 500, "out of memory");
                                goto out;
                        }
                }
                c->tok = tok;
                c->tok_ids = tok_ids;
                tok = NULL;
                tok_ids = NULL;
        }
        c->state = BCONN_READY;
        quota_unauth_end(c);
        event_del(c->timer);
        broker_ep_insert(b, c);
        b->n_endpoints++;
        wire_hdr h = { .type = WIRE_AUTH_RESULT, .status = 200 };
        int n = snprintf(resp, sizeof resp, "{\"endpoint\":\"%s\",\"maxBody\":%zu}", name, b->c->max_body);
        bconn_send(c, &h, NULL, 0, NULL, 0, NULL, 0, resp, (size_t)n);
        if (c->tok)
                broker_log(b, HYB_LOG_DEBUG, "%s connected (uid %u pid %d) with token %s of %s", name,
                           (unsigned)c->uid, (int)c->pid, hyb_token_result_get_jti(c->tok),
                           hyb_token_result_get_sub(c->tok));
        else
                broker_log(b, HYB_LOG_DEBUG, "%s connected (uid %u pid %d)", name, (unsigned)c->uid,
                           (int)c->pid);
        snprintf(resp, sizeof resp, "{\"endpointName\":\"%s\"}", name);
        events_builtin(b, "NewEndpoint", resp);
out:
        hyb_token_result_unref(tok);
        ids_free(tok_ids);
}

/*
 * On the loop, an announced token's checks done: its verdict (auth_finish: the verification
 * in its order, its revocation, its exp) is kept for the AUTH; an AUTH that came meanwhile
 * goes on now.
 */
static void early_done(bpool_job *pj, bool cancelled)
{
        bauth_job *v = (bauth_job *)pj;
        bconn *c = v->c;
        hyb_error e;
        json_t *packet;

        if (cancelled || !c || c->state != BCONN_AUTH || c->early_job != v) {
                job_free(v);
                return;
        }
        if (c->auth_job == v)
                c->auth_job = NULL;
        v->early_done = true;
        if (v->cfg == c->b->cfg) {
                hyb_error_clear(&e);
                v->early_r = auth_finish(c->b, v->st, &v->early_res, &v->early_ids, &e);
                if (v->early_r < 0)
                        snprintf(v->early_why, sizeof v->early_why, "%s",
                                 e.message[0] ? e.message : hyb_strerror(v->early_r));
        }
        packet = TAKE_PTR(v->deferred);
        if (packet) {
                auth_run(c, packet);
                json_decref(packet);
        }
        bconn_resume_reading(c);
}

/*
 * A token announced ahead of its AUTH (a peer that read "earlyToken" in the challenge,
 * doc/protocol.md "Handshake"): the signatures of its blocks are checked on the pool while
 * the peer signs its proof of possession; the AUTH that follows must carry the same token
 * (else 401) and has only its proof left to check.  One announcement a connection, before
 * its AUTH; counted in auth.max_verifying and auth.uid_max_verifying like any verification.
 * A token verified before (the cache) needs nothing now.
 */
static void auth_early(bconn *c, json_t *token)
{
        hyb_broker *b = c->b;
        const char *text;
        size_t len;
        bauth_job *v;
        hyb_error e;
        int r;

        if (b->c->auth_tokens == BROKER_AUTH_OFF || c->early_job || !c->nonce_sent ||
            !json_is_string(token)) {
                auth_refuse(c, "unexpected token announcement");
                return;
        }
        text = json_string_value(token);
        len = json_string_length(token);
        v = calloc(1, sizeof *v);
        if (!v) {
                auth_fail(c, 500, "out of memory");
                return;
        }
        v->b = b;
        v->c = c;
        v->early = true;
        v->cfg = hyb_broker_config_ref(b->cfg);
        crypto_sha256(text, len, v->th);
        c->early_job = v;
        if (strlen(text) != len || cache_find(b, v->th, (int64_t)time(NULL))) {
                /* nothing to check ahead: a NUL (refused at the AUTH), or verified before */
                v->early_done = true;
                v->early_r = strlen(text) != len ? HYB_E_UNAUTHORIZED : 0;
                snprintf(v->early_why, sizeof v->early_why, "NUL in the token");
                if (v->early_r == 0)
                        v->cfg = hyb_broker_config_unref(v->cfg); /* the AUTH takes the cache's */
                return;
        }
        hyb_error_clear(&e);
        r = b->c->auth_trust ? token_staged_new(text, len, b->c->auth_trust, &v->st, &e)
                             : err_set(&e, HYB_E_UNAUTHORIZED, -1, "no issuer is trusted");
        if (r < 0) {
                v->early_done = true;
                v->early_r = r == -ENOMEM ? r : HYB_E_UNAUTHORIZED;
                snprintf(v->early_why, sizeof v->early_why, "token: %s",
                         e.message[0] ? e.message : hyb_strerror(r));
                return;
        }
        v->pj.run = job_run;
        v->pj.done = early_done;
        v->pj.uid = c->uid;
        v->pj.n_tasks = (unsigned)token_staged_n_sigs(v->st);
        if (v->pj.n_tasks == 1 && auth_pool_threads(b) >= 2) {
                r = token_staged_split(v->st, 0, &v->blk_split);
                if (r == 0) {
                        atomic_init(&v->blk_parts, 2);
                        v->pj.n_tasks = 2;
                } else {
                        v->pj.n_tasks = 0; /* refused without a multiplication: the result is set */
                        if (r == -ENOMEM) {
                                c->early_job = NULL;
                                v->c = NULL;
                                job_free(v);
                                auth_fail(c, 500, "out of memory");
                                return;
                        }
                }
        }
        r = auth_pool_submit(b, &v->pj);
        if (r < 0) {
                c->early_job = NULL;
                v->c = NULL;
                job_free(v);
                if (r == -EAGAIN)
                        auth_fail(c, 429, "too many token verifications of this uid at once");
                else if (r == -EBUSY)
                        auth_fail(c, 503, "too many token verifications at once");
                else
                        auth_refuse(c, hyb_strerror(r));
                return;
        }
        broker_log(b, HYB_LOG_DEBUG, "uid %u pid %d: token announced, being verified (%u checks)",
                   (unsigned)c->uid, (int)c->pid, v->pj.n_tasks);
}

/* The AUTH packet j, parsed: the uid policy at once, a token through the pool (job_done). */
static void auth_run(bconn *c, json_t *j)
{
        hyb_broker *b = c->b;
        const char *cnonce = NULL, *proof = NULL;
        size_t cnonce_len = 0, proof_len = 0;
        json_t *token = json_object_get(j, "token");
        json_t *jn = json_object_get(j, "nonce"), *jp = json_object_get(j, "proof");
        int mode = b->c->auth_tokens, r;
        char why[400];

        if (json_is_string(jn)) {
                cnonce = json_string_value(jn);
                cnonce_len = json_string_length(jn);
        }
        if (json_is_string(jp)) {
                proof = json_string_value(jp);
                proof_len = json_string_length(jp);
        }
        if (token && json_is_null(token))
                token = NULL;
        if (c->remote && (!token || mode == BROKER_AUTH_OFF)) {
                /* A remote peer (WebSocket) authenticates with a token or not at all: there
                 * is no uid to apply a policy to. */
                auth_refuse(c, mode == BROKER_AUTH_OFF ? "a remote peer needs a token (auth.tokens off)"
                                                       : "a remote peer needs a token");
                return;
        }
        if (token && mode == BROKER_AUTH_OFF) {
                /* auth.tokens off: the uid policy alone (doc/config.md); the token is not read. */
                broker_log(b, HYB_LOG_DEBUG, "uid %u pid %d presented a token: ignored (auth.tokens off)",
                           (unsigned)c->uid, (int)c->pid);
                token = NULL;
        }
        if (!token && mode == BROKER_AUTH_REQUIRE) {
                auth_refuse(c, "no token (auth.tokens require)");
                return;
        }
        if (!token) {
                if (c->early_job) {
                        auth_refuse(c, "a token was announced, the AUTH has none");
                        return;
                }
                auth_accept(c, j, NULL, NULL);
                return;
        }
        if (c->early_job && !c->early_job->early_done) {
                /* the announced token's checks still run: this AUTH waits for them (the
                 * connection is not read meanwhile) and goes on in early_done */
                c->early_job->deferred = json_incref(j);
                c->auth_job = c->early_job;
                if (c->rev)
                        event_del(c->rev);
                else
                        bufferevent_disable(c->bev, EV_READ);
                return;
        }
        r = auth_token_start(c, j, token, cnonce, cnonce_len, proof, proof_len, why, sizeof why);
        if (r == -EAGAIN)
                auth_fail(c, 429, why);
        else if (r == -EBUSY)
                auth_fail(c, 503, why);
        else if (r < 0)
                auth_refuse(c, why);
}

void auth_handle(bconn *c, const wire_hdr *wh, const uint8_t *body)
{
        hyb_broker *b = c->b;
        const char *proto = NULL, *app = NULL, *runner = NULL, *cnonce = NULL, *proof = NULL;
        size_t cnonce_len = 0, proof_len = 0;
        json_t *j, *token = NULL;
        int version = 0, mode = b->c->auth_tokens, early = 0;

        if (mode != BROKER_AUTH_OFF && wh->body_len > AUTH_MAX_BODY) {
                auth_refuse(c, "auth packet too large");
                return;
        }
        if (!body || (wh->flags & WIRE_F_BINARY)) {
                auth_fail(c, 400, "auth body must be JSON");
                return;
        }
        /* JSON_ALLOW_NUL: an app or runner with "\u0000" is a bad name (406), checked below. */
        j = json_loadb((const char *)body, wh->body_len, JSON_ALLOW_NUL, NULL);
        if (!j || json_unpack(j, "{s:s, s:i, s?s, s?s, s?o, s?s%, s?s%, s?b}", "protocol", &proto,
                              "version", &version, "app", &app, "runner", &runner, "token", &token,
                              "nonce", &cnonce, &cnonce_len, "proof", &proof, &proof_len, "early",
                              &early) < 0) {
                /* With tokens on, a packet that carries a token is refused like any other
                 * credential: the one 401. */
                bool cred = mode != BROKER_AUTH_OFF && json_is_object(j) && json_object_get(j, "token");

                json_decref(j);
                if (cred)
                        auth_refuse(c, "malformed auth packet");
                else
                        auth_fail(c, 400, "malformed auth packet");
                return;
        }
        if (strcmp(proto, WIRE_PROTOCOL) != 0 || version != WIRE_VERSION ||
            json_string_length(json_object_get(j, "protocol")) != strlen(WIRE_PROTOCOL))
                auth_fail(c, 426, "unsupported protocol or version");
        else if (early)
                auth_early(c, token);
        else
                auth_run(c, j);
        json_decref(j);
}
