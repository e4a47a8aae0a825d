/* SPDX-License-Identifier: MIT */
/*
 * The network edge's principals as peers of the broker (lib/edge, doc/edge.md).
 *
 * The edge is a client of this broker inside the daemon, not a second implementation of
 * its rules: each principal it serves (a verified token, or the anonymous principal of
 * edge.anonymous routes) gets a session, one end of a bufferevent pair (an in-memory
 * transport: both ends live in this daemon's loop) that the broker adopts as an
 * authenticated peer.  The edge then speaks the bus protocol on the other end
 * (CALL, store methods, subscriptions), and every request is checked and limited as any
 * peer's is: access lists, the token's capabilities or policy.store, deadlines, quotas,
 * slow-subscriber bounds.  Only the handshake is skipped: the edge has verified the
 * credentials itself (the token here, its proof in lib/edge/auth.c).
 */
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "broker-internal.h"
#include "common/util.h"

int broker_edge_verify(hyb_broker *b, const char *token, size_t len, hyb_token_result **ret,
                       hyb_error *e)
{
        hyb_token_verify_opts o;
        hyb_token_result *res = NULL;
        hyb_error ve;
        char *text;
        int r;

        if (b->c->auth_tokens == BROKER_AUTH_OFF || !b->c->auth_trust)
                return err_set(e, HYB_E_UNAUTHORIZED, -1,
                               "tokens are not accepted (auth.tokens off)");
        if (len == 0 || len > HYB_TOKEN_MAX_SIZE || memchr(token, 0, len))
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "malformed token");
        text = strndup(token, len);
        if (!text)
                return -ENOMEM;
        hyb_token_verify_opts_init(&o);
        o.audience = broker_auth_audience(b);
        o.max_lifetime_s = b->c->auth_max_lifetime_s;
        o.revoked = b->revoked;
        o.userdata = b->revoked_ud;
        hyb_error_clear(&ve);
        r = hyb_token_verify(text, b->c->auth_trust, &o, &res, &ve);
        free(text);
        if (r < 0)
                return err_set(e, r == -ENOMEM ? r : HYB_E_UNAUTHORIZED, -1, "token: %s",
                               ve.message[0] ? ve.message : hyb_strerror(r));
        if (hyb_token_result_get_exp(res) <= (int64_t)time(NULL)) {
                hyb_token_result_unref(res);
                return err_set(e, HYB_E_UNAUTHORIZED, -1, "token: expired");
        }
        *ret = res;
        return 0;
}

int broker_edge_session(hyb_broker *b, hyb_token_result *tok, const char *transport,
                        struct bufferevent **ret_bev, hyb_error *e)
{
        char name[WIRE_ENDPOINT_MAX];
        struct bufferevent *mine, *theirs;
        int n;
        bconn *c;

        if (b->shutting_down)
                return err_set(e, HYB_E_UNAVAILABLE, -1, "the daemon is shutting down");
        if (b->n_conns >= b->c->max_connections || b->n_endpoints >= b->c->max_endpoints)
                return err_set(e, HYB_E_UNAVAILABLE, -1, "too many connections");
        if (broker_pair_new(b, &mine, &theirs) < 0)
                return err_set(e, -ENOMEM, -1, "out of memory");
        c = bconn_adopt_pair(b, mine, BROKER_EDGE_ANON_UID, BROKER_EDGE_ANON_UID, getpid());
        if (!c) {
                bufferevent_free(theirs);
                return err_set(e, HYB_E_TOO_MANY, -1, "quota of the edge's sessions exceeded");
        }
        n = snprintf(name, sizeof name, "@localhost/%s/%s%llu", BROKER_EDGE_APP, transport,
                     (unsigned long long)++b->edge_serial);
        c->name = strdup(name);
        c->app = strdup(BROKER_EDGE_APP);
        c->transport = transport;
        c->admin = false;
        if (!c->name || !c->app)
                goto oom;
        c->name_len = (size_t)n;
        if (tok) {
                int64_t left = hyb_token_result_get_exp(tok) - (int64_t)time(NULL);
                struct timeval tv = {.tv_sec = left > 0 ? (time_t)left : 0};

                c->exp_ev = evtimer_new(b->base, auth_session_expire, c);
                if (!c->exp_ev || evtimer_add(c->exp_ev, &tv) < 0)
                        goto oom;
                c->tok = hyb_token_result_ref(tok);
                c->admin =
                        hyb_token_allowed_str(tok, "bus://localhost/#", HYB_TOKEN_ACT_ADMIN) == 1;
                /* Charged to the token's principal, not to the anonymous uid (quota.c). */
                const char *which = NULL;
                if (quota_principal(c, tok, &which) != 0) {
                        bufferevent_free(theirs);
                        bconn_close(c, NULL);
                        return err_set(e, HYB_E_TOO_MANY, -1,
                                       "quota %s of the token's principal exceeded", which);
                }
        }
        c->state = BCONN_READY;
        quota_unauth_end(c);
        broker_ep_insert(b, c);
        b->n_endpoints++;
        broker_log(b, HYB_LOG_DEBUG, "%s: edge session of %s", c->name,
                   tok ? hyb_token_result_get_sub(tok) : "the anonymous principal");
        *ret_bev = theirs;
        return 0;
oom:
        bufferevent_free(theirs);
        bconn_close(c, NULL);
        return -ENOMEM;
}

int broker_ws_session(hyb_broker *b, const char *transport, const char *binding,
                      const char *peer, struct bufferevent **ret_bev, uint64_t *ret_serial,
                      hyb_error *e)
{
        struct timeval tv = {.tv_sec = b->c->auth_timeout_ms / 1000,
                             .tv_usec = (b->c->auth_timeout_ms % 1000) * 1000};
        struct bufferevent *mine, *theirs;
        bconn *c;

        if (b->shutting_down)
                return err_set(e, HYB_E_UNAVAILABLE, -1, "the daemon is shutting down");
        if (b->n_conns >= b->c->max_connections)
                return err_set(e, HYB_E_UNAVAILABLE, -1, "too many connections");
        if (broker_pair_new(b, &mine, &theirs) < 0)
                return err_set(e, -ENOMEM, -1, "out of memory");
        /* bconn_adopt_pair charges the uid's quotas (the unauthenticated budget among
         * them); on a refusal it frees mine, and the edge answers the client itself. */
        c = bconn_adopt_pair(b, mine, BROKER_EDGE_ANON_UID, BROKER_EDGE_ANON_UID, getpid());
        if (!c) {
                bufferevent_free(theirs);
                return err_set(e, HYB_E_UNAVAILABLE, -1, "quota of remote sessions exceeded");
        }
        c->transport = transport;
        c->remote = true;
        c->admin = false;
        c->binding = strdup(binding);
        c->remote_addr = strdup(peer);
        if (!c->binding || !c->remote_addr || evtimer_add(c->timer, &tv) < 0 || auth_challenge(c) < 0) {
                bufferevent_free(theirs);
                bconn_close(c, NULL);
                return err_set(e, -ENOMEM, -1, "out of memory");
        }
        *ret_bev = theirs;
        *ret_serial = c->serial;
        return 0;
}

bool broker_ws_preauth_full(hyb_broker *b)
{
        return quota_unauth_full(b, BROKER_EDGE_ANON_UID);
}

bool broker_ws_session_drop(hyb_broker *b, uint64_t serial)
{
        for (bconn *c = b->conns; c; c = c->next)
                if (c->serial == serial) {
                        if (!c->remote || c->state != BCONN_AUTH)
                                return false;
                        bconn_close(c, NULL);
                        return true;
                }
        return false;
}
