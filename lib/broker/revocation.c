/* SPDX-License-Identifier: MIT */
/*
 * The revocation feed in the daemon (doc/token.md "Revocation feed"): one
 * hyb_token_feed trusting auth.issuers, persisted in the host store under
 * /sys/token/feed/<seq> (read-only to peers: store_acl_check) and loaded from
 * it when the store is attached or the configuration reloaded.  Any peer may
 * deliver an entry (builtin deliverRevocation): the issuer's signature is the
 * authority.  An applied entry is announced (builtin event RevocationApplied)
 * and the token sessions it touches are closed at once (broker_auth_sweep), and
 * handed to the other daemons of the cluster (feed-sync.c).
 * A stored entry that no longer verifies makes the feed unknown: every token
 * is then refused (fail closed) until the store or auth.issuers is fixed.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

#include "broker-internal.h"
#include "common/util.h"

#define LIST_DEFAULT 100
#define LIST_MAX 200

/* The verifier's hook: the feed's answer, or "cannot tell" while it is broken. */
static int feed_revoked(void *ud, const hyb_token_ids *ids)
{
        hyb_broker *b = ud;

        if (b->feed_broken)
                return -EIO;
        return b->feed ? hyb_token_feed_revoked(b->feed, ids) : 0;
}

void broker_feed_setup(hyb_broker *b)
{
        hyb_token_feed *feed = NULL;
        hyb_error e = {0};
        int r;

        b->feed = hyb_token_feed_unref(b->feed);
        b->feed_broken = false;
        broker_auth_set_revoked(b, feed_revoked, b);
        if (!b->c->auth_trust)
                return; /* no issuer: no token verifies, nothing to revoke */
        r = hyb_token_feed_new(b->c->auth_trust, &feed);
        if (r >= 0 && b->store)
                r = hyb_token_feed_attach_store(feed, b->store, &e);
        if (r < 0) {
                broker_log(b, HYB_LOG_ERROR,
                           "revocation feed: %s: every token is refused until it is repaired",
                           *e.message ? e.message : hyb_strerror(r));
                b->feed_broken = true;
        } else if (hyb_token_feed_get_seq(feed)) {
                broker_log(b, HYB_LOG_INFO, "revocation feed: %" PRIu64 " entries loaded",
                           hyb_token_feed_get_seq(feed));
        }
        b->feed = feed;
        broker_auth_sweep(b);
        feedsync_refetch(b); /* entries the other daemons hold (a no-op outside a cluster) */
        feedfetch_gap(b, 0); /* a fetch that waited for the feed (the start without a store) */
}

void broker_feed_free(hyb_broker *b)
{
        b->feed = hyb_token_feed_unref(b->feed);
}

static int feed_usable(hyb_broker *b, hyb_error *e)
{
        if (!b->feed)
                return err_set(e, HYB_E_UNAVAILABLE, -1,
                               "no revocation feed: auth.issuers names no issuer");
        if (b->feed_broken)
                return err_set(e, HYB_E_UNAVAILABLE, -1,
                               "the revocation feed could not be loaded (see the daemon's log)");
        return 0;
}

/* An entry was applied: log it, announce it, end the sessions it touches, and (publish)
 * hand it to the other daemons of the cluster. */
void revocation_applied(hyb_broker *b, uint64_t seq, const char *from, bool publish)
{
        char *content = NULL;

        hyb_token_feed_get_entry(b->feed, seq, NULL, &content);
        broker_log(b, HYB_LOG_NOTICE, "revocation entry %" PRIu64 " applied from %s: %s", seq,
                   from, content ? content : "");
        if (content) {
                char *ev = NULL;

                if (asprintf(&ev, "{\"seq\":%" PRIu64 ",\"entry\":%s}", seq, content) > 0)
                        events_builtin(b, "RevocationApplied", ev);
                free(ev);
        }
        free(content);
        /* The sessions it touches end now, before anything else is served. */
        broker_auth_sweep(b);
        if (publish)
                feedsync_publish(b, seq);
}

int revocation_deliver(bconn *c, json_t *p, json_t **ret, hyb_error *e)
{
        hyb_broker *b = c->b;
        const char *entry = json_string_value(json_object_get(p, "entry"));
        uint64_t seq = 0, head;
        hyb_error why = {0};
        int r;

        r = feed_usable(b, e);
        if (r < 0)
                return r;
        r = hyb_token_feed_apply(b->feed, entry, &seq, &why);
        head = hyb_token_feed_get_seq(b->feed);
        switch (r) {
        case HYB_TOKEN_FEED_APPLIED: {
                char from[48];

                snprintf(from, sizeof from, "uid %u", (unsigned)c->uid);
                revocation_applied(b, seq, from, true);
                break;
        }
        case HYB_TOKEN_FEED_OLD:
                broker_log(b, HYB_LOG_WARNING,
                           "revocation entry %" PRIu64
                           " from uid %u ignored: the feed is at %" PRIu64
                           " (a replay or a rollback)",
                           seq, (unsigned)c->uid, head);
                break;
        case HYB_TOKEN_FEED_GAP:
                broker_log(b, HYB_LOG_WARNING,
                           "revocation entry %" PRIu64 " from uid %u refused: a gap after %" PRIu64
                           " (entries %" PRIu64 "..%" PRIu64 " are missing)",
                           seq, (unsigned)c->uid, head, head + 1, seq - 1);
                feedfetch_gap(b, seq); /* auth.feed_peers: the missing entries are asked for */
                return err_set(e, HYB_E_CONFLICT, -1,
                               "a gap: the feed is at %" PRIu64 "; deliver entry %" PRIu64 " first",
                               head, head + 1);
        default:
                if (r == HYB_E_UNAUTHORIZED) {
                        /* One uniform answer; the reason goes to the log only. */
                        broker_log(b, HYB_LOG_WARNING,
                                   "revocation entry from uid %u pid %d refused: %s",
                                   (unsigned)c->uid, (int)c->pid, why.message);
                        return err_set(e, HYB_E_UNAUTHORIZED, -1, "unauthorized");
                }
                broker_log(b, HYB_LOG_ERROR, "revocation entry %" PRIu64 " not stored: %s", seq,
                           *why.message ? why.message : hyb_strerror(r));
                return err_set(e, r, -1, "the entry could not be stored");
        }
        *ret = json_pack("{s:s,s:I,s:I}", "result",
                         r == HYB_TOKEN_FEED_APPLIED ? "applied" : "ignored", "seq",
                         (json_int_t)seq, "head", (json_int_t)head);
        return *ret ? 0 : -ENOMEM;
}

int revocation_list(bconn *c, json_t *p, json_t **ret, hyb_error *e)
{
        hyb_broker *b = c->b;
        json_t *after = json_object_get(p, "after"), *limit = json_object_get(p, "limit");
        json_t *out, *items;
        uint64_t from = 1, head;
        json_int_t n = LIST_DEFAULT;
        int r;

        r = feed_usable(b, e);
        if (r < 0)
                return r;
        if (after) {
                if (json_integer_value(after) < 0)
                        return err_set(e, HYB_E_BAD_REQUEST, -1, "after must be >= 0");
                from = (uint64_t)json_integer_value(after) + 1;
        }
        if (limit) {
                n = json_integer_value(limit);
                if (n < 1 || n > LIST_MAX)
                        return err_set(e, HYB_E_BAD_REQUEST, -1, "limit must be 1..%d", LIST_MAX);
        }
        head = hyb_token_feed_get_seq(b->feed);
        items = json_array();
        out = json_pack("{s:I,s:o}", "head", (json_int_t)head, "entries", items);
        if (!out)
                return -ENOMEM;
        for (uint64_t seq = from; seq <= head && n > 0; seq++, n--) {
                char *text = NULL, *content = NULL;
                json_t *cj;

                if (hyb_token_feed_get_entry(b->feed, seq, &text, &content) < 0) {
                        json_decref(out);
                        return -ENOMEM;
                }
                cj = json_loads(content, 0, NULL);
                if (!cj ||
                    json_array_append_new(items, json_pack("{s:I,s:s,s:o}", "seq", (json_int_t)seq,
                                                           "entry", text, "content", cj)) < 0) {
                        free(text);
                        free(content);
                        json_decref(out);
                        return -ENOMEM;
                }
                free(text);
                free(content);
        }
        *ret = out;
        return 0;
}
