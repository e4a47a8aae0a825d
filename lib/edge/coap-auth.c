/* SPDX-License-Identifier: MIT */
/*
 * Credentials over plain CoAP (doc/edge.md "CoAP credentials"), on the machinery of the
 * HTTP edge's (http-auth.c): the token verified as at a bus connect (token_staged on the
 * broker's pool of verifying threads, auth_finish, the broker's cache of verified tokens,
 * the revocation hook), a proof of possession checked by the token's holder key, and the
 * replay cache of DPoP proofs (edge_dpop_remember, an instance of the CoAP edge's own).
 *
 * A token (~600 bytes a block) does not go in every datagram: it is uploaded once, in the
 * spirit of ACE's /authz-info (RFC 9200), by POST /authz-info with the token as payload
 * and a proof; once verified it is kept by its SHA-256 (EDGE_COAP_TOKENS in all,
 * EDGE_COAP_TOKENS_PER_ADDRESS of one source address; past them the one least recently
 * used goes), and later requests carry that hash with their proof (option 65003).
 *
 *   request --> edge_coap_auth_start: options read, checks without signatures, the
 *               token kept (or staged) --> the pool: token signatures, proof signature
 *   pool done --> on the loop: the verdict, the jti remembered --> cb(tok)
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coap-internal.h"
#include "common/util.h"
#include "token/crypto.h"
#include "token/staged.h"

/* A token uploaded and verified. */
typedef struct ctok {
        uint8_t th[CRYPTO_SHA256_LEN];
        const broker_config *cfg; /* the configuration it was verified under */
        hyb_token_result *res;    /* NULL: a free slot */
        struct bauth_ids *ids;    /* its revocation handles */
        struct sockaddr_storage addr;
        uint64_t used;
} ctok;

struct cverify {
        bpool_job pj; /* first: the pool's view */
        cverify *next;          /* ec->verifying: in the pool */
        cverify *wnext;         /* ec->waiting: for room in the pool */
        bool queued;            /* in the pool (else waiting) */
        edge_coap *ec;          /* NULL once the edge stopped */
        edge_coap_auth_fn cb;   /* NULL once its owner went */
        void *ud;
        hyb_broker_config *cfg; /* the configuration it started under */
        struct sockaddr_storage addr;
        bool upload;
        uint8_t th[CRYPTO_SHA256_LEN];
        token_staged *st;           /* an upload of a token not verified before */
        hyb_token_result *seen;     /* a token verified before */
        struct bauth_ids *seen_ids; /* and its revocation handles */
        hyb_key *holder;
        uint8_t *input; /* what the proof signs */
        size_t input_len;
        uint8_t sig[64];
        uint8_t jti_hash[CRYPTO_SHA256_LEN];
        int64_t iat;
        bool sig_ok; /* written by the proof's task */
};

static void ctok_clear(ctok *t)
{
        t->res = hyb_token_result_unref(t->res);
        auth_ids_free(t->ids);
        t->ids = NULL;
}

/* The token of hash th kept and still good (stale ones are freed on the way), or NULL. */
static ctok *ctok_find(edge_coap *ec, const uint8_t th[CRYPTO_SHA256_LEN])
{
        int64_t now = (int64_t)time(NULL);
        ctok *found = NULL;

        if (!ec->tokens)
                return NULL;
        for (unsigned i = 0; i < EDGE_COAP_TOKENS; i++) {
                ctok *t = &ec->tokens[i];

                if (!t->res)
                        continue;
                if (t->cfg != ec->b->c || hyb_token_result_get_exp(t->res) <= now) {
                        ctok_clear(t); /* another configuration, or expired */
                        continue;
                }
                if (!found && crypto_memeq(t->th, th, CRYPTO_SHA256_LEN))
                        found = t;
        }
        return found;
}

/* Keeps res and ids (taken) under th for an upload from ss. */
static void ctok_keep(edge_coap *ec, const uint8_t th[CRYPTO_SHA256_LEN], hyb_token_result *res,
                      struct bauth_ids *ids, const struct sockaddr_storage *ss)
{
        ctok *t = ctok_find(ec, th), *lru = NULL, *lru_addr = NULL, *free_slot = NULL;
        unsigned of_addr = 0;

        if (!t && !ec->tokens && !(ec->tokens = calloc(EDGE_COAP_TOKENS, sizeof *ec->tokens))) {
                hyb_token_result_unref(res);
                auth_ids_free(ids);
                return; /* not kept: the next request is refused, the upload can be made again */
        }
        if (!t) {
                for (unsigned i = 0; i < EDGE_COAP_TOKENS; i++) {
                        ctok *u = &ec->tokens[i];

                        if (!u->res) {
                                if (!free_slot)
                                        free_slot = u;
                                continue;
                        }
                        if (!lru || u->used < lru->used)
                                lru = u;
                        if (edge_addr_same(&u->addr, ss)) {
                                of_addr++;
                                if (!lru_addr || u->used < lru_addr->used)
                                        lru_addr = u;
                        }
                }
                /* One address past its share replaces its own; a full cache, the one used
                 * least recently. */
                t = of_addr >= EDGE_COAP_TOKENS_PER_ADDRESS ? lru_addr
                    : free_slot                               ? free_slot
                                                              : lru;
        }
        ctok_clear(t);
        memcpy(t->th, th, sizeof t->th);
        t->cfg = ec->b->c;
        t->res = res;
        t->ids = ids;
        t->addr = *ss;
        t->used = ++ec->token_clock;
}

static void verify_free(cverify *v)
{
        token_staged_free(v->st);
        hyb_token_result_unref(v->seen);
        auth_ids_free(v->seen_ids);
        hyb_key_unref(v->holder);
        free(v->input);
        hyb_broker_config_unref(v->cfg);
        free(v);
}

static void verify_unlink(cverify *v)
{
        if (!v->ec)
                return;
        for (cverify **pp = &v->ec->verifying; *pp; pp = &(*pp)->next)
                if (*pp == v) {
                        *pp = v->next;
                        break;
                }
        v->ec->n_in_pool--;
}

static void verify_done(bpool_job *pj, bool cancelled);

/*
 * Hands v to the pool: 0 (in the pool, or waiting behind the edge's own jobs there: one of
 * them ends later and takes it on), or the status to refuse it with.  The edge's jobs count
 * as one uid's (EDGE_VERIFY_UID, with the HTTP edge's): at most auth.uid_max_verifying in
 * the pool; what waits is bounded by the pending requests and observations it belongs to.
 */
static int verify_submit(edge_coap *ec, cverify *v, hyb_error *e)
{
        int r = auth_pool_submit(ec->b, &v->pj);

        if (r == 0) {
                v->queued = true;
                v->next = ec->verifying;
                ec->verifying = v;
                ec->n_in_pool++;
                return 0;
        }
        if ((r == -EBUSY || r == -EAGAIN) && ec->n_in_pool > 0) {
                cverify **pp = &ec->waiting;

                while (*pp)
                        pp = &(*pp)->wnext;
                v->wnext = NULL;
                *pp = v;
                return 0;
        }
        err_set(e, r, -1, "%s",
                r == -EBUSY || r == -EAGAIN ? "too many token verifications at once"
                                            : hyb_strerror(r));
        return r == -ENOMEM ? 500 : 503;
}

/* Starts what waits, while the pool takes it. */
static void pump(edge_coap *ec)
{
        while (ec->waiting) {
                cverify *v = ec->waiting;
                hyb_error e;
                int st;

                ec->waiting = v->wnext;
                if (!v->cb) { /* its owner went */
                        verify_free(v);
                        continue;
                }
                hyb_error_clear(&e);
                st = verify_submit(ec, v, &e);
                if (st) {
                        v->cb(v->ud, NULL, st, e.message);
                        verify_free(v);
                } else if (!v->queued) {
                        /* the pool is full again: back to the head of the queue */
                        for (cverify **pp = &ec->waiting; *pp; pp = &(*pp)->wnext)
                                if (*pp == v) {
                                        *pp = v->wnext;
                                        break;
                                }
                        v->wnext = ec->waiting;
                        ec->waiting = v;
                        break;
                }
        }
}

/* On a worker: signature i of the token's blocks, the last task the proof's. */
static void verify_run(bpool_job *pj, unsigned i)
{
        cverify *v = (cverify *)pj;
        size_t n_sigs = v->st ? token_staged_n_sigs(v->st) : 0;

        if (i < n_sigs)
                token_staged_check(v->st, i);
        else
                v->sig_ok = hyb_key_verify(v->holder, v->input, v->input_len, v->sig,
                                           sizeof v->sig) == 0;
}

/* On the loop: 0 with *ret, else HYB_E_UNAUTHORIZED (reason in e) or -ENOMEM. */
static int verdict(cverify *v, hyb_token_result **ret, hyb_error *e)
{
        edge_coap *ec = v->ec;
        hyb_token_result *res = NULL;
        struct bauth_ids *ids = NULL;
        int r;

        if (v->upload) {
                r = edge_token_verdict(ec->b, v->st, v->seen, v->seen_ids, v->holder, &res, &ids,
                                       e);
                if (r < 0) {
                        if (r != -ENOMEM)
                                broker_log(ec->b, HYB_LOG_INFO,
                                           "edge: CoAP 4.01 token upload: %s", e->message);
                        return r;
                }
        } else {
                res = hyb_token_result_ref(v->seen); /* its revocation was asked at the start */
        }
        if (!v->sig_ok)
                r = err_set(e, HYB_E_UNAUTHORIZED, -1, "proof: the signature is not the holder's");
        else
                r = edge_dpop_remember(&ec->jti, v->jti_hash, edge_holder_id(v->holder), v->iat,
                                       (int64_t)time(NULL), e);
        if (r < 0) {
                if (r != -ENOMEM)
                        broker_log(ec->b, HYB_LOG_INFO, "edge: CoAP 4.01 token %s of %s: %s",
                                   hyb_token_result_get_jti(res), hyb_token_result_get_sub(res),
                                   e->message);
                auth_ids_free(ids);
                hyb_token_result_unref(res);
                return r;
        }
        if (v->upload) {
                /* Kept only once its proof held: refusals never fill the cache. */
                if (!ids) {
                        ids = v->seen_ids;
                        v->seen_ids = NULL;
                }
                ctok_keep(ec, v->th, hyb_token_result_ref(res), ids, &v->addr);
                broker_log(ec->b, HYB_LOG_DEBUG, "edge: CoAP token %s of %s uploaded",
                           hyb_token_result_get_jti(res), hyb_token_result_get_sub(res));
        }
        *ret = res;
        return 0;
}

static void verify_done(bpool_job *pj, bool cancelled)
{
        cverify *v = (cverify *)pj;
        edge_coap *ec = v->ec;
        hyb_token_result *tok = NULL;
        hyb_error e;
        int r;

        verify_unlink(v);
        if (!ec || !v->cb || cancelled) {
                if (v->cb && ec)
                        v->cb(v->ud, NULL, 503, "the daemon is shutting down");
                verify_free(v);
                if (ec && !cancelled)
                        pump(ec);
                return;
        }
        if (ec->b->cfg != v->cfg) {
                v->cb(v->ud, NULL, 503, "the configuration was reloaded meanwhile: try again");
        } else {
                hyb_error_clear(&e);
                r = verdict(v, &tok, &e);
                if (r == -ENOMEM)
                        v->cb(v->ud, NULL, 500, "out of memory");
                else if (r < 0)
                        v->cb(v->ud, NULL, 401, "unauthorized");
                else
                        v->cb(v->ud, tok, 0, NULL);
                hyb_token_result_unref(tok);
        }
        verify_free(v);
        pump(ec);
}

cverify *edge_coap_auth_start(edge_coap *ec, coap_session_t *s, const coap_pdu_t *req,
                              int method, const edge_coap_cred *c, bool upload,
                              const uint8_t *body, size_t len, const struct sockaddr_storage *ss,
                              edge_coap_auth_fn cb, void *ud, int *status, hyb_error *e)
{
        hyb_broker *b = ec->b;
        const coap_address_t *la = coap_session_get_addr_local(s);
        struct sockaddr_storage local;
        uint8_t bh[CRYPTO_SHA256_LEN];
        char uri[EDGE_COAP_URI_MAX];
        int64_t now = (int64_t)time(NULL);
        cverify *v;
        int r;

        *status = 401;
        if (b->c->auth_tokens == BROKER_AUTH_OFF || !b->c->auth_trust) {
                err_set(e, HYB_E_UNAUTHORIZED, -1, "tokens are not accepted (auth.tokens off)");
                return NULL;
        }
        if (c->iat < now - EDGE_DPOP_WINDOW_S || c->iat > now + EDGE_DPOP_WINDOW_S) {
                err_set(e, HYB_E_UNAUTHORIZED, -1, "proof: iat outside the accepted window (%d s)",
                        EDGE_DPOP_WINDOW_S);
                return NULL;
        }
        memset(&local, 0, sizeof local);
        if (la && la->addr.sa.sa_family == AF_INET)
                memcpy(&local, &la->addr.sin, sizeof la->addr.sin);
        else if (la && la->addr.sa.sa_family == AF_INET6)
                memcpy(&local, &la->addr.sin6, sizeof la->addr.sin6);
        if (edge_coap_uri(req, &local, uri, sizeof uri) < 0) {
                err_set(e, HYB_E_UNAUTHORIZED, -1, "proof: the request's URI is too long");
                return NULL;
        }
        v = calloc(1, sizeof *v);
        if (!v) {
                *status = 500;
                err_set(e, -ENOMEM, -1, "out of memory");
                return NULL;
        }
        v->cfg = hyb_broker_config_ref(b->cfg);
        v->addr = *ss;
        v->upload = upload;
        if (upload) {
                if (len == 0 || len > HYB_TOKEN_MAX_SIZE || memchr(body, 0, len)) {
                        err_set(e, HYB_E_UNAUTHORIZED, -1, "malformed token");
                        goto fail;
                }
                crypto_sha256(body, len, v->th);
                if (!crypto_memeq(c->th, v->th, sizeof v->th)) {
                        err_set(e, HYB_E_UNAUTHORIZED, -1,
                                "proof: not the hash of the token uploaded");
                        goto fail;
                }
                if (auth_cache_get(b, v->th, &v->seen, &v->seen_ids)) {
                        v->holder = hyb_key_ref(hyb_token_result_get_holder(v->seen));
                } else {
                        r = token_staged_new((const char *)body, len, b->c->auth_trust, &v->st, e);
                        if (r < 0) {
                                if (r == -ENOMEM)
                                        *status = 500;
                                goto fail;
                        }
                        if (!token_staged_holder(v->st)) {
                                err_set(e, HYB_E_UNAUTHORIZED, -1, "token: no holder key");
                                goto fail;
                        }
                        v->holder = hyb_key_ref(token_staged_holder(v->st));
                }
        } else {
                ctok *t;

                memcpy(v->th, c->th, sizeof v->th);
                t = ctok_find(ec, v->th);
                if (!t) {
                        err_set(e, HYB_E_UNAUTHORIZED, -1,
                                "unknown token: POST it to " EDGE_COAP_AUTHZ_PATH);
                        goto fail;
                }
                if (auth_revoked_check(b, t->ids, e) < 0)
                        goto fail;
                t->used = ++ec->token_clock;
                v->seen = hyb_token_result_ref(t->res);
                v->holder = hyb_key_ref(hyb_token_result_get_holder(t->res));
        }
        crypto_sha256(len ? body : (const uint8_t *)"", len, bh);
        r = edge_coap_proof_input(method, uri, bh, v->th, c, &v->input, &v->input_len);
        if (r < 0) {
                *status = r == -ENOMEM ? 500 : 401;
                err_set(e, r == -ENOMEM ? -ENOMEM : HYB_E_UNAUTHORIZED, -1, "proof: %s",
                        hyb_strerror(r));
                goto fail;
        }
        memcpy(v->sig, c->sig, sizeof v->sig);
        edge_sig_low_s(v->sig);
        crypto_sha256(c->jti, sizeof c->jti, v->jti_hash);
        v->iat = c->iat;
        v->ec = ec;
        v->cb = cb;
        v->ud = ud;
        v->pj.run = verify_run;
        v->pj.done = verify_done;
        v->pj.uid = EDGE_VERIFY_UID; /* with the HTTP edge's, as one uid in the pool */
        v->pj.n_tasks = (unsigned)(v->st ? token_staged_n_sigs(v->st) : 0) + 1;
        r = ec->waiting ? -EAGAIN : 0; /* others wait already: behind them */
        if (r == 0 && (*status = verify_submit(ec, v, e))) {
                v->ec = NULL;
                goto fail;
        }
        if (r < 0) {
                cverify **pp = &ec->waiting;

                while (*pp)
                        pp = &(*pp)->wnext;
                v->wnext = NULL;
                *pp = v;
        }
        return v;
fail:
        verify_free(v);
        return NULL;
}

void edge_coap_auth_cancel(cverify *v)
{
        if (v)
                v->cb = NULL;
}

void edge_coap_auth_stop(edge_coap *ec)
{
        while (ec->waiting) { /* never in the pool */
                cverify *v = ec->waiting;

                ec->waiting = v->wnext;
                verify_free(v);
        }
        while (ec->verifying) {
                cverify *v = ec->verifying;

                ec->verifying = v->next;
                v->ec = NULL; /* its job ends in the pool and frees it */
                v->cb = NULL;
        }
        if (ec->tokens) {
                for (unsigned i = 0; i < EDGE_COAP_TOKENS; i++)
                        ctok_clear(&ec->tokens[i]);
                free(ec->tokens);
                ec->tokens = NULL;
        }
        edge_dpop_cache_free(ec->jti);
        ec->jti = NULL;
}
