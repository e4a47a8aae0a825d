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
 * request (jti replay cache of EDGE_DPOP_JTI_SLOTS, EDGE_DPOP_JTI_PER_HOLDER of one holder,
 * iat within EDGE_DPOP_WINDOW_S).
 * Without credentials a request is served only on a route edge.anonymous names.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/util.h"
#include "edge-internal.h"
#include "hybrid/furi.h"
#include "token/crypto.h"
#include "token/staged.h"

#define DPOP_MAX_BYTES 4096u
#define DPOP_JTI_MAX 128u

struct edge_dpop_cache {
        struct dpop_slot {
                uint8_t hash[CRYPTO_SHA256_LEN]; /* of the jti */
                uint64_t holder;                 /* the first bytes of its holder's kid hash */
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
        hyb_furi *f = NULL;
        bool yes = false;

        if (c->n_edge_anonymous == 0)
                return false;
        /* the route parsed once; the patterns were parsed with the configuration */
        if (hyb_furi_parse(route, strlen(route), NULL, &f, NULL) < 0)
                return false;
        for (size_t i = 0; !yes && i < c->n_edge_anonymous; i++)
                yes = c->edge_anonymous_furi ? hyb_furi_match(f, c->edge_anonymous_furi[i])
                                             : hyb_furi_match_str(route, c->edge_anonymous[i], NULL) == 1;
        hyb_furi_unref(f);
        return yes;
}

/*
 * edge_anonymous for an HTTP request, remembering the last route's verdict: a client that
 * calls the same procedure again skips parsing its route as a fURI.  The verdict is kept
 * with a reference on the configuration it was made under (so that configuration's
 * address cannot be reused by a reloaded one while it is kept).
 */
static bool anonymous_route(edge_http *eh, const char *path)
{
        hyb_broker_config *cfg = eh->b->cfg;
        size_t n = strlen(path);
        bool yes;

        if (eh->anon_cfg == cfg && n == eh->anon_len && memcmp(path, eh->anon_path, n) == 0)
                return eh->anon_yes;
        yes = edge_anonymous(eh->b->c, path);
        if (n < sizeof eh->anon_path) {
                if (eh->anon_cfg != cfg) {
                        hyb_broker_config_unref(eh->anon_cfg);
                        eh->anon_cfg = hyb_broker_config_ref(cfg);
                }
                memcpy(eh->anon_path, path, n);
                eh->anon_len = n;
                eh->anon_yes = yes;
        }
        return yes;
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
void edge_sig_low_s(uint8_t sig[64])
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

uint64_t edge_holder_id(const hyb_key *holder)
{
        const char *kid = hyb_key_get_kid(holder);
        uint8_t kh[CRYPTO_SHA256_LEN];
        uint64_t id;

        crypto_sha256(kid, strlen(kid), kh);
        memcpy(&id, kh, sizeof id);
        return id;
}

/*
 * A proof in its three steps, so that its signature is checked on the pool's threads:
 * dpop_pre on the loop (the form, the jwk, the claims against the request: nothing that
 * costs a signature), dpop_sig anywhere (reads d only), dpop_post on the loop (the verdict
 * of the signature, then the replay cache: a jti is remembered only behind a good
 * signature, so forged proofs cannot fill the cache).
 */
typedef struct dpop {
        char *input; /* <header>.<claims>: what was signed (a copy) */
        size_t input_len;
        uint8_t sig[64];
        uint8_t jti_hash[CRYPTO_SHA256_LEN];
        uint64_t holder; /* the first bytes of the SHA-256 of the holder key's kid */
        int64_t iat;
} dpop;

static void dpop_clear(dpop *d)
{
        free(d->input);
        d->input = NULL;
}

static int dpop_pre(dpop *d, const char *proof, size_t proof_len, const hyb_key *holder,
                    const char *htm, const char *htu, const char *token, size_t token_len,
                    int64_t now, hyb_error *e)
{
        const char *d1, *d2, *typ, *alg, *m, *u, *jti, *ath;
        uint8_t th[CRYPTO_SHA256_LEN];
        char ath_want[64];
        size_t sig_len = 0, jti_len;
        json_t *hdr = NULL, *cl = NULL;
        json_int_t iat;
        int r = HYB_E_UNAUTHORIZED;

        memset(d, 0, sizeof *d);
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
        if (b64u_decode_to(d2 + 1, proof_len - (size_t)(d2 + 1 - proof), d->sig, sizeof d->sig,
                           &sig_len) < 0 ||
            sig_len != sizeof d->sig) {
                err_set(e, r, -1, "DPoP: the signature is not the holder's");
                goto out;
        }
        edge_sig_low_s(d->sig);
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
        crypto_sha256(jti, jti_len, d->jti_hash);
        d->holder = edge_holder_id(holder);
        d->iat = iat;
        d->input_len = (size_t)(d2 - proof);
        d->input = strndup(proof, d->input_len);
        r = d->input ? 0 : -ENOMEM;
out:
        json_decref(hdr);
        json_decref(cl);
        return r;
}

/* The signature of a proof dpop_pre accepted, by holder: true when it holds. */
static bool dpop_sig(const dpop *d, const hyb_key *holder)
{
        return hyb_key_verify(holder, d->input, d->input_len, d->sig, sizeof d->sig) == 0;
}

int edge_dpop_remember(struct edge_dpop_cache **cache, const uint8_t jti_hash[32], uint64_t holder,
                       int64_t iat, int64_t now, hyb_error *e)
{
        struct dpop_slot *free_slot = NULL;
        unsigned of_holder = 0, used = 0;

        if (!*cache && !(*cache = calloc(1, sizeof **cache)))
                return -ENOMEM;
        for (unsigned i = 0; i < EDGE_DPOP_JTI_SLOTS; i++) {
                struct dpop_slot *s = &(*cache)->slot[i];

                if (s->used && s->iat < now - EDGE_DPOP_WINDOW_S - 1)
                        s->used = false; /* outside the window: iat refuses it anyway */
                if (s->used && memcmp(s->hash, jti_hash, sizeof s->hash) == 0)
                        return err_set(e, HYB_E_UNAUTHORIZED, -1,
                                       "DPoP: this proof (jti) was used before");
                if (!s->used && !free_slot)
                        free_slot = s;
                if (s->used) {
                        used++;
                        if (s->holder == holder)
                                of_holder++;
                }
        }
        /* Once the cache is half full, a holder past its share is refused: one holder that
         * sends proofs as fast as it can then waits while the others are still served; a
         * holder alone may use the first half. */
        if (of_holder >= EDGE_DPOP_JTI_PER_HOLDER && used >= EDGE_DPOP_JTI_SLOTS / 2)
                return err_set(e, HYB_E_UNAUTHORIZED, -1,
                               "DPoP: too many proofs of this holder in the window, try again");
        if (!free_slot) {
                /* Full of proofs still in their window: none may be forgotten (it could be
                 * replayed), so this one waits for room. */
                return err_set(e, HYB_E_UNAUTHORIZED, -1,
                               "DPoP: too many proofs in the window, try again");
        }
        memcpy(free_slot->hash, jti_hash, sizeof free_slot->hash);
        free_slot->iat = iat;
        free_slot->holder = holder;
        free_slot->used = true;
        return 0;
}

static int dpop_post(struct edge_dpop_cache **cache, const dpop *d, bool sig_ok, int64_t now,
                     hyb_error *e)
{
        if (!sig_ok)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "DPoP: the signature is not the holder's");
        if (!cache)
                return 0;
        return edge_dpop_remember(cache, d->jti_hash, d->holder, d->iat, now, e);
}

int edge_dpop_check(struct edge_dpop_cache **cache, const char *proof, size_t proof_len,
                    const hyb_key *holder, const char *htm, const char *htu, const char *token,
                    size_t token_len, int64_t now, hyb_error *e)
{
        dpop d;
        int r = dpop_pre(&d, proof, proof_len, holder, htm, htu, token, token_len, now, e);

        if (r == 0)
                r = dpop_post(cache, &d, dpop_sig(&d, holder), now, e);
        dpop_clear(&d);
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

/*
 * One request's credentials being checked on the pool's threads (lib/broker/auth-pool.c),
 * so that the loop serves others meanwhile: the token's signatures (none for a token the
 * daemon verified before: the broker's cache of verified tokens, as at a bus connect) and
 * the proof's, at the same time.  Then, on the loop, the verdict in the order of a connect
 * (the token, its revocation, its exp, its holder), the proof's replay check, and the
 * request is served.  The edge's jobs count in the pool as one uid (EDGE_VERIFY_UID), so
 * the network takes at most auth.uid_max_verifying of its auth.max_verifying places; a
 * request past them waits in the edge's queue for one of the edge's jobs to end (bounded
 * by the connection caps: one request at a time per connection).
 */
typedef struct edge_verify {
        bpool_job pj;                    /* first: the pool's view */
        edge_task task;                  /* killed when the edge stops */
        edge_http *eh;                   /* NULL once killed */
        struct evhttp_request *req;      /* NULL once killed */
        struct evhttp_connection *evcon; /* watched; NULL once the client went */
        const char *scheme;
        edge_route r;
        hyb_broker_config *cfg; /* the configuration it started under */
        uint8_t th[CRYPTO_SHA256_LEN];
        token_staged *st;            /* a token not seen before, else NULL */
        hyb_token_result *seen;      /* a token verified before */
        struct bauth_ids *seen_ids;  /* and its revocation handles */
        hyb_key *holder;             /* who must sign the proof */
        dpop d;
        bool sig_ok;                 /* written by the proof's task */
        bool queued;                 /* in the pool (else waiting in eh->waiting) */
        struct edge_verify *wnext;
} edge_verify;

static void verify_free(edge_verify *v)
{
        token_staged_free(v->st);
        hyb_token_result_unref(v->seen);
        auth_ids_free(v->seen_ids);
        hyb_key_unref(v->holder);
        dpop_clear(&v->d);
        edge_route_clear(&v->r);
        hyb_broker_config_unref(v->cfg);
        free(v);
}

/* Stops watching the connection and leaves the task list (the edge is still there). */
static void verify_detach(edge_verify *v)
{
        if (v->evcon)
                edge_conn_watch(v->eh, v->evcon, NULL, NULL);
        v->evcon = NULL;
        edge_task_del(v->eh, &v->task);
}

static void verify_gone(struct evhttp_connection *evcon, void *ud)
{
        edge_verify *v = ud;

        (void)evcon;
        v->evcon = NULL; /* answered (and so freed by evhttp) without sending anything */
}

static void waiting_remove(edge_http *eh, edge_verify *v)
{
        for (edge_verify **pp = &eh->waiting; *pp; pp = &(*pp)->wnext)
                if (*pp == v) {
                        *pp = v->wnext;
                        break;
                }
}

/* The edge stops: evhttp frees the request; the job, if in the pool, ends without it. */
static void verify_kill(edge_task *t)
{
        edge_verify *v = (edge_verify *)((char *)t - offsetof(edge_verify, task));
        edge_http *eh = v->eh;

        v->eh = NULL;
        v->req = NULL;
        v->evcon = NULL;
        if (!v->queued) {
                waiting_remove(eh, v);
                verify_free(v);
        }
}

static void refuse(struct evhttp_request *req, int status, const char *msg)
{
        if (status == 401)
                evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                                  "DPoP algs=\"ES256\"");
        edge_send_error(req, status,
                        status == 401   ? "HYB_E_UNAUTHORIZED"
                        : status == 429 ? "HYB_E_TOO_MANY"
                                        : "HYB_E_UNAVAILABLE",
                        "%s", msg);
}

/* On a worker: signature i of the token's blocks, the last task the proof's. */
static void verify_run(bpool_job *pj, unsigned i)
{
        edge_verify *v = (edge_verify *)pj;
        size_t n_sigs = v->st ? token_staged_n_sigs(v->st) : 0;

        if (i < n_sigs)
                token_staged_check(v->st, i);
        else
                v->sig_ok = dpop_sig(&v->d, v->holder);
}

static void verify_done(bpool_job *pj, bool cancelled);

/* Hands v to the pool: 0, or the status to refuse the request with. */
static int verify_submit(edge_verify *v)
{
        edge_http *eh = v->eh;
        int r = auth_pool_submit(eh->b, &v->pj);

        if (r == 0) {
                v->queued = true;
                eh->n_verifying++;
                broker_log(eh->b, HYB_LOG_DEBUG, "edge: token being verified (%u signatures)",
                           v->pj.n_tasks);
                return 0;
        }
        if ((r == -EBUSY || r == -EAGAIN) && eh->n_verifying > 0) {
                /* One of the edge's jobs ends later and takes this one on (pump). */
                edge_verify **pp = &eh->waiting;

                while (*pp)
                        pp = &(*pp)->wnext;
                v->wnext = NULL;
                *pp = v;
                return 0;
        }
        broker_log(eh->b, HYB_LOG_WARNING, "edge: cannot verify a token now: %s",
                   r == -EBUSY || r == -EAGAIN ? "too many token verifications at once"
                                               : hyb_strerror(r));
        return 503;
}

/* Starts the waiting requests the pool takes now. */
static void pump(edge_http *eh)
{
        while (eh->waiting) {
                edge_verify *v = eh->waiting;
                int st;

                eh->waiting = v->wnext;
                v->wnext = NULL;
                st = verify_submit(v);
                if (st) {
                        refuse(v->req, st, "too many token verifications at once");
                        verify_detach(v);
                        verify_free(v);
                } else if (!v->queued) {
                        /* the pool is full again: back to the head of the queue */
                        waiting_remove(eh, v);
                        v->wnext = eh->waiting;
                        eh->waiting = v;
                        break;
                }
        }
}

int edge_token_verdict(hyb_broker *b, struct token_staged *st, hyb_token_result *seen,
                       const struct bauth_ids *seen_ids, const hyb_key *holder,
                       hyb_token_result **ret, struct bauth_ids **ret_ids, hyb_error *e)
{
        hyb_token_result *res = NULL;
        struct bauth_ids *ids = NULL;
        int r;

        if (seen) {
                r = auth_revoked_check(b, seen_ids, e);
                if (r < 0)
                        return r;
                if (hyb_token_result_get_exp(seen) <= (int64_t)time(NULL))
                        return err_set(e, HYB_E_UNAUTHORIZED, -1, "token: expired");
                res = hyb_token_result_ref(seen);
        } else {
                r = auth_finish(b, st, &res, &ids, e);
                if (r < 0)
                        return r;
        }
        /* The proof was checked against the holder key read in advance: the verified
         * token's holder must be that very key. */
        if (strcmp(hyb_key_get_kid(holder), hyb_token_result_get_holder_kid(res)) != 0) {
                err_set(e, HYB_E_UNAUTHORIZED, -1, "the proof's key is not the token's holder key");
                broker_log(b, HYB_LOG_INFO, "edge: 401 token %s of %s: %s",
                           hyb_token_result_get_jti(res), hyb_token_result_get_sub(res),
                           e->message);
                auth_ids_free(ids);
                hyb_token_result_unref(res);
                return HYB_E_UNAUTHORIZED;
        }
        *ret = res;
        *ret_ids = ids;
        return 0;
}

/* The verdict (on the loop, every task returned): 0 with *ret, else HYB_E_UNAUTHORIZED
 * with the reason in e. */
static int verdict(edge_verify *v, hyb_token_result **ret, hyb_error *e)
{
        hyb_broker *b = v->eh->b;
        hyb_token_result *res = NULL;
        struct bauth_ids *ids = NULL;
        int r;

        r = edge_token_verdict(b, v->st, v->seen, v->seen_ids, v->holder, &res, &ids, e);
        if (r < 0)
                return r;
        r = dpop_post(&v->eh->jti, &v->d, v->sig_ok, (int64_t)time(NULL), e);
        if (r < 0) {
                if (r != -ENOMEM)
                        broker_log(b, HYB_LOG_INFO, "edge: 401 token %s of %s: %s",
                                   hyb_token_result_get_jti(res), hyb_token_result_get_sub(res),
                                   e->message);
                auth_ids_free(ids);
                hyb_token_result_unref(res);
                return r;
        }
        /* Only a token whose proof held is kept: the cache never grows from refusals. */
        if (ids)
                auth_cache_keep(b, v->th, res, ids);
        *ret = res;
        return 0;
}

static void verify_done(bpool_job *pj, bool cancelled)
{
        edge_verify *v = (edge_verify *)pj;
        edge_http *eh = v->eh;
        hyb_token_result *tok = NULL;
        hyb_error e;
        int r;

        if (!eh) { /* killed: the request went with the edge */
                verify_free(v);
                return;
        }
        eh->n_verifying--;
        v->queued = false;
        verify_detach(v);
        if (cancelled || !evhttp_request_get_connection(v->req)) {
                /* (a request whose client went is freed by this answer, never sent) */
                refuse(v->req, 503, "the daemon is shutting down");
                verify_free(v);
                return;
        }
        if (eh->b->cfg != v->cfg) {
                /* Reloaded meanwhile: checked again under the configuration now in force
                 * (its proof's jti was not taken yet). */
                edge_route r2;

                edge_route_move(&r2, &v->r);
                edge_auth(eh, v->req, v->scheme, &r2);
                verify_free(v);
                pump(eh);
                return;
        }
        hyb_error_clear(&e);
        r = verdict(v, &tok, &e);
        if (r < 0) {
                if (r == -ENOMEM)
                        edge_send_error(v->req, 500, "HYB_E_INTERNAL", "out of memory");
                else
                        refuse(v->req, 401, "unauthorized");
        } else {
                edge_serve(eh, v->req, &v->r, tok, v->scheme);
                hyb_token_result_unref(tok);
        }
        verify_free(v);
        pump(eh);
}

/* The token and proof of req, checks that need no signature; then on the pool. */
static int verify_start(edge_http *eh, struct evhttp_request *req, const char *scheme,
                        edge_route *r, const char *t, size_t tl, hyb_error *e)
{
        hyb_broker *b = eh->b;
        const char *proof = evhttp_find_header(evhttp_request_get_input_headers(req), "DPoP");
        char htu[EDGE_MAX_HEADERS_BYTES + 16];
        edge_verify *v;
        int st;

        if (b->c->auth_tokens == BROKER_AUTH_OFF || !b->c->auth_trust)
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "tokens are not accepted (auth.tokens off)");
        if (tl == 0 || tl > HYB_TOKEN_MAX_SIZE || memchr(t, 0, tl))
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "malformed token");
        v = calloc(1, sizeof *v);
        if (!v)
                return -ENOMEM;
        v->cfg = hyb_broker_config_ref(b->cfg);
        crypto_sha256(t, tl, v->th);
        if (auth_cache_get(b, v->th, &v->seen, &v->seen_ids)) {
                v->holder = hyb_key_ref(hyb_token_result_get_holder(v->seen));
        } else {
                st = token_staged_new(t, tl, b->c->auth_trust, &v->st, e);
                if (st < 0)
                        goto fail;
                if (!token_staged_holder(v->st)) {
                        st = err_set(e, HYB_E_UNAUTHORIZED, -1, "token: no holder key");
                        goto fail;
                }
                v->holder = hyb_key_ref(token_staged_holder(v->st));
        }
        if (request_htu(req, scheme, htu, sizeof htu) < 0) {
                st = err_set(e, HYB_E_UNAUTHORIZED, -1, "DPoP: no Host header");
                goto fail;
        }
        st = dpop_pre(&v->d, proof, proof ? strlen(proof) : 0, v->holder,
                      method_name(evhttp_request_get_command(req)), htu, t, tl,
                      (int64_t)time(NULL), e);
        if (st < 0)
                goto fail;
        v->eh = eh;
        v->req = req;
        v->scheme = scheme;
        edge_route_move(&v->r, r);
        v->pj.run = verify_run;
        v->pj.done = verify_done;
        v->pj.uid = EDGE_VERIFY_UID;
        v->pj.n_tasks = (unsigned)(v->st ? token_staged_n_sigs(v->st) : 0) + 1;
        if (eh->waiting) {
                /* others wait already: behind them */
                edge_verify **pp = &eh->waiting;

                while (*pp)
                        pp = &(*pp)->wnext;
                *pp = v;
                st = 0;
        } else {
                st = verify_submit(v);
        }
        if (st) {
                *r = v->r; /* the caller answers */
                memset(&v->r, 0, sizeof v->r);
                verify_free(v);
                return st;
        }
        edge_task_add(eh, &v->task, verify_kill);
        v->evcon = evhttp_request_get_connection(req);
        if (v->evcon)
                edge_conn_watch(eh, v->evcon, verify_gone, v);
        return 0;
fail:
        verify_free(v);
        return st;
}

void edge_auth(edge_http *eh, struct evhttp_request *req, const char *scheme, struct edge_route *r)
{
        const char *authz = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
        const char *t;
        size_t tl;
        hyb_error e;
        int st;

        if (!authz) {
                if (anonymous_route(eh, r->path)) {
                        edge_serve(eh, req, r, NULL, scheme);
                        return;
                }
                refuse(req, 401, "credentials required: Authorization: Bearer <token> and DPoP");
                edge_route_clear(r);
                return;
        }
        if (strncasecmp(authz, "Bearer ", 7) != 0 && strncasecmp(authz, "DPoP ", 5) != 0) {
                refuse(req, 401, "Authorization: expected Bearer <token>");
                edge_route_clear(r);
                return;
        }
        t = authz + (authz[0] == 'B' || authz[0] == 'b' ? 7 : 5);
        while (*t == ' ')
                t++;
        tl = strlen(t);
        while (tl && t[tl - 1] == ' ')
                tl--;
        hyb_error_clear(&e);
        st = verify_start(eh, req, scheme, r, t, tl, &e);
        if (st == 0)
                return; /* verify_done answers */
        if (st == -ENOMEM)
                edge_send_error(req, 500, "HYB_E_INTERNAL", "out of memory");
        else if (st > 0)
                refuse(req, st, "too many token verifications at once");
        else {
                broker_log(eh->b, HYB_LOG_INFO, "edge: 401 %s", e.message);
                refuse(req, 401, "unauthorized");
        }
        edge_route_clear(r);
}
