/* SPDX-License-Identifier: MIT */
/*
 * Accounting, after dbus-broker: every byte the broker holds for a peer and every object
 * a peer makes it keep is charged to the peer's uid, and the bytes also to the daemon.
 *
 *   hyb_broker.mem ............................. limits.max_memory
 *   hyb_broker.quotas -> bquota(uid) -> ...     one per uid with a connection
 *        bytes ............................. limits.uid_max_bytes
 *        n_conns / n_unauth ................ uid_max_connections / uid_max_unauth_connections
 *        pending ........................... uid_max_pending_calls
 *   (subscriptions, registrations and policy text are summed over the uid's connections
 *    when one asks for more: uid_max_subscriptions / _registrations / _policy_bytes)
 *   bconn.held = its input buffer + its send queue + the missing part of a frame it is
 *                sending (charged when the header announces it, before it is read)
 *
 * A send queue is charged to the connection that reads it, so a slow reader pays for its
 * own backlog: neither the sender nor a bystander is ever cut off for it.  Beside its own
 * uid_max_bytes, a uid may hold at most 3/4 of what the other uids leave of max_memory.  Root and the
 * admins are not exempt (a root-owned runaway client is a runaway all the same).
 *
 * Cutting a peer off must reach it even though its queue is full, so the queue keeps a
 * ring of offsets where a frame starts (one at most every MARK_STEP bytes): quota_cut()
 * keeps the frame being written and what follows up to the next mark, drops the rest and
 * queues the ERROR frame that says which quota was broken.
 */
#include <assert.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker-internal.h"
#include "common/util.h"

#define MARK_STEP 4096u
/* A drop from the peak after which memory is given back to the system (a cut-off or closed
 * peer, a drained backlog): glibc keeps freed heap otherwise. */
#define TRIM_AFTER (4u * 1024 * 1024)

static void charge(bconn *c, size_t add, size_t sub)
{
        hyb_broker *b = c->b;

        c->held += add;
        b->mem += add;
        if (b->mem > b->mem_hwm)
                b->mem_hwm = b->mem;
        if (c->q)
                c->q->bytes += add;
        assert(c->held >= sub && b->mem >= sub);
        c->held -= sub;
        b->mem -= sub;
        if (c->q)
                c->q->bytes -= sub;
}

void quota_charge(bconn *c, size_t add, size_t sub)
{
        charge(c, add, sub);
}

static void in_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *ud)
{
        charge(ud, info->n_added, info->n_deleted);
}

static void out_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *ud)
{
        bconn *c = ud;

        c->tx_tail += info->n_added;
        c->tx_head += info->n_deleted;
        charge(c, info->n_added, info->n_deleted);
        if (c->replay_wait && info->n_deleted)
                store_replay_wake(c);
}

int quota_watch(bconn *c)
{
        c->in_cb = evbuffer_add_cb(bufferevent_get_input(c->bev), in_changed, c);
        c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), out_changed, c);
        return c->in_cb && c->out_cb ? 0 : -ENOMEM;
}

static bquota *quota_find(hyb_broker *b, uid_t uid)
{
        for (bquota *q = b->quotas; q; q = q->next)
                if (q->uid == uid && !q->principal)
                        return q;
        return NULL;
}

static void quota_unlink(hyb_broker *b, bquota *q)
{
        for (bquota **pp = &b->quotas; *pp; pp = &(*pp)->next)
                if (*pp == q) {
                        *pp = q->next;
                        break;
                }
        free(q->principal);
        free(q);
}

int quota_principal(bconn *c, const hyb_token_result *tok, const char **which)
{
        hyb_broker *b = c->b;
        const char *iss = hyb_token_result_get_iss(tok), *sub = hyb_token_result_get_sub(tok);
        bquota *old = c->q, *q;
        char *key;

        if (!old)
                return 0;
        /* The issuer's length first: no two (issuer, sub) pairs give the same key. */
        if (asprintf(&key, "%zu:%s%s", iss ? strlen(iss) : 0, iss ? iss : "", sub ? sub : "") < 0) {
                *which = "memory";
                return 503;
        }
        for (q = b->quotas; q; q = q->next)
                if (q->principal && strcmp(q->principal, key) == 0)
                        break;
        if (q && q->n_conns >= b->c->uid_max_connections) {
                free(key);
                *which = "uid_max_connections";
                return 429;
        }
        if (!q) {
                q = calloc(1, sizeof *q);
                if (!q) {
                        free(key);
                        *which = "memory";
                        return 503;
                }
                q->uid = c->uid;
                q->principal = key;
                q->next = b->quotas;
                b->quotas = q;
        } else
                free(key);
        /* Before its first request: nothing pending, no subscription, only bytes held. */
        quota_unauth_end(c);
        old->bytes -= c->held;
        q->bytes += c->held;
        q->n_conns++;
        c->q = q;
        if (--old->n_conns == 0)
                quota_unlink(b, old);
        return 0;
}

int quota_attach(bconn *c, const char **which)
{
        hyb_broker *b = c->b;
        const broker_config *cf = b->c;
        bquota *q = quota_find(b, c->uid);

        if (q && q->n_conns >= cf->uid_max_connections) {
                *which = "uid_max_connections";
                return 429;
        }
        if (q && q->n_unauth >= cf->uid_max_unauth_connections) {
                *which = "uid_max_unauth_connections";
                return 429;
        }
        if (b->n_unauth >= cf->max_unauth_connections) {
                *which = "max_unauth_connections";
                return 503;
        }
        if (!q) {
                q = calloc(1, sizeof *q);
                if (!q) {
                        *which = "memory";
                        return 503;
                }
                q->uid = c->uid;
                q->next = b->quotas;
                b->quotas = q;
        }
        c->q = q;
        q->n_conns++;
        q->n_unauth++;
        b->n_unauth++;
        c->unauth = true;
        return 0;
}

bool quota_unauth_full(hyb_broker *b, uid_t uid)
{
        bquota *q = quota_find(b, uid);

        return b->n_unauth >= b->c->max_unauth_connections ||
               (q && q->n_unauth >= b->c->uid_max_unauth_connections);
}

void quota_unauth_end(bconn *c)
{
        if (!c->unauth)
                return;
        c->unauth = false;
        c->q->n_unauth--;
        c->b->n_unauth--;
}

void quota_detach(bconn *c)
{
        hyb_broker *b = c->b;
        bquota *q = c->q;

        channel_conn_detach(c); /* ends it has not read stay its uid's */
        if (c->bev) {
                if (c->in_cb)
                        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
                if (c->out_cb)
                        evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
        }
        c->in_cb = c->out_cb = NULL;
        charge(c, 0, c->held);
        /* Its procedures' policy text is gone too: count it towards giving memory back. */
        b->mem_hwm += c->policy_bytes;
        c->policy_bytes = 0;
        c->rx_resv = 0;
        free(c->marks);
        c->marks = NULL;
        c->m_n = c->m_alloc = 0;
        if (!q)
                return;
        quota_unauth_end(c);
        c->q = NULL;
        assert(q->n_conns > 0);
        if (--q->n_conns > 0)
                return;
        quota_unlink(b, q);
}

const char *quota_bytes_over(bconn *c, size_t n)
{
        const broker_config *cf = c->b->c;

        if (!c->q)
                return NULL;
        if (c->q->bytes + n > cf->uid_max_bytes)
                return "uid_max_bytes";
        if (c->b->mem + n > cf->max_memory)
                return "max_memory";
        /* Fair share (dbus-broker's idea, simplified): a uid may hold at most three quarters
         * of what the other uids leave free, so several hostile uids together still leave
         * room for everyone else, and the one asking for more is the one refused. */
        size_t others = c->b->mem - c->q->bytes;
        if (c->q->bytes + n > (cf->max_memory - others) / 4 * 3)
                return "max_memory";
        return NULL;
}

void quota_rx_reserve(bconn *c, size_t n)
{
        if (n > c->rx_resv)
                charge(c, n - c->rx_resv, 0);
        else
                charge(c, 0, c->rx_resv - n);
        c->rx_resv = n;
}

void quota_mark(bconn *c)
{
        uint64_t t = c->tx_tail;

        while (c->m_n && c->marks[c->m_first] < c->tx_head) {
                c->m_first = (c->m_first + 1) % c->m_alloc;
                c->m_n--;
        }
        if (t == c->tx_head)
                return;
        if (c->m_n && t - c->marks[(c->m_first + c->m_n - 1) % c->m_alloc] < MARK_STEP)
                return;
        if (c->m_n == c->m_alloc) {
                size_t n = c->m_alloc ? 2 * c->m_alloc : 16;
                uint64_t *m = mallocarray(n, sizeof *m);
                if (!m)
                        return; /* a cut-off then keeps more of the queue: still framed */
                for (size_t i = 0; i < c->m_n; i++)
                        m[i] = c->marks[(c->m_first + i) % c->m_alloc];
                free(c->marks);
                c->marks = m;
                c->m_alloc = n;
                c->m_first = 0;
        }
        c->marks[(c->m_first + c->m_n) % c->m_alloc] = t;
        c->m_n++;
}

/* Drops the send queue after the first frame boundary at or past what is being written. */
static void queue_drop_unsent(bconn *c)
{
        struct evbuffer *out = bufferevent_get_output(c->bev), *keep;
        size_t len = evbuffer_get_length(out), n = len;

        while (c->m_n && c->marks[c->m_first] < c->tx_head) {
                c->m_first = (c->m_first + 1) % c->m_alloc;
                c->m_n--;
        }
        if (c->m_n)
                n = (size_t)(c->marks[c->m_first] - c->tx_head);
        c->m_n = 0;
        if (n >= len)
                return;
        /* A bufferevent keeps its output's start frozen outside its own writes (a drain
         * there silently does nothing): thawed for the drop, frozen again after. */
        evbuffer_unfreeze(out, 1);
        if (n == 0)
                evbuffer_drain(out, len);
        else if ((keep = evbuffer_new())) {
                evbuffer_remove_buffer(out, keep, n);
                evbuffer_drain(out, evbuffer_get_length(out));
                evbuffer_add_buffer(out, keep);
                evbuffer_free(keep);
        } /* else everything stays queued: slower, still framed */
        evbuffer_freeze(out, 1);
}

void quota_cut(bconn *c, int status, const char *which, const char *detail)
{
        char msg[256];

        if (c->state == BCONN_DEAD || !c->bev)
                return;
        c->b->drops++;
        broker_log(c->b, HYB_LOG_WARNING, "%s (uid %u pid %d): quota %s exceeded (%s): %d, disconnected",
                   c->name ? c->name : "unauthenticated peer", (unsigned)c->uid, (int)c->pid, which,
                   detail, status);
        bconn_batch_drop(c); /* whole frames, none of them being written */
        queue_drop_unsent(c);
        snprintf(msg, sizeof msg, "quota %s exceeded: %s", which, detail);
        bconn_say_why(c, status, msg);
        c->cut = true;
        bconn_close(c, "notResponding");
}

void quota_uid_objects(bconn *c, unsigned *subs, unsigned *regs, size_t *policy)
{
        *subs = *regs = 0;
        *policy = 0;
        for (bconn *o = c->b->conns; o; o = o->next) {
                /* A share's connections: the uid's, or a token principal's (quota_principal). */
                if (o->state == BCONN_DEAD || (c->q ? o->q != c->q : o->uid != c->uid))
                        continue;
                *subs += o->n_subs;
                *regs += o->n_regs;
                *policy += o->policy_bytes;
        }
}

void quota_trim(hyb_broker *b)
{
        if (b->mem_hwm - b->mem < TRIM_AFTER)
                return;
        b->mem_hwm = b->mem;
        malloc_trim(0);
}
