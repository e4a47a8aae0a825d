/* SPDX-License-Identifier: MIT */
/*
 * The daemon's side of the cluster (doc/cluster.md): the MQTT link of cluster: and the
 * cluster scope //... served over it to the peers' store calls (store-serve.c calls in
 * here after its access check: policy.store and tokens govern //... as any fURI).
 *
 *   bcluster
 *    |- link            lib/cluster/link.h (also b->link, for the calls between hosts)
 *    |- mirror          a memory store of the retained values under the mirrored filters,
 *    |                  at /a/b for //a/b; its subscriptions deliver to the peers
 *    |- pats: cpat ...  mirrored topic filters: users (subscriptions, waiting reads), SUBACK
 *    |- subs: csub ...  peers' subscriptions: a cpat and a slot on the mirror
 *    |- reads: cread    reads outside the mirror, waiting for the broker (bounded)
 *    |- q: cqitem ...   writes made while the broker is unreachable (bounded), in order,
 *    |                  each also kept in the host store at /sys/cluster/queue/<seq>
 *    |- writes          writes waiting for the broker's PUBACK, to answer the peer
 *    |- stale           after a reconnection into a new session: the mirror's keys whose
 *    |                  retained message has not come again (deleted when they stay so)
 *    `- trace_fd        the bench's trace (HYBRID_CLUSTER_TRACE), -1 when not enabled
 *
 * Mapping: //a/b/c is topic <prefix>a/b/c (the fURI's canonical text after `//`); the
 * payload is the value's JSON; a retained empty payload is a delete.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stddef.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "broker-internal.h"
#include "common/util.h"
#ifdef HYB_HAVE_CLUSTER
#include "cluster/link.h"
#include "cluster/map.h"
#include "store/store-internal.h" /* store_kick_hold: the mirror's deliveries without its eventfd */
#include <mqtt_protocol.h>
#endif

#ifndef HYB_HAVE_CLUSTER

int broker_cluster_start(hyb_broker *b, hyb_error *e)
{
        return 0;
}

void broker_cluster_stop(hyb_broker *b)
{
}

static void no_cluster(bconn *c, uint64_t id, const hyb_furi *f)
{
        char code[24], msg[300];
        int n = snprintf(code, sizeof code, "%d", HYB_E_SCOPE);

        snprintf(msg, sizeof msg, "cluster scope (%s) is not available: this hybridd was built "
                 "without libmosquitto", hyb_furi_get_str(f));
        route_reply(c, id, hyb_err_to_status(HYB_E_SCOPE), msg, code, (size_t)n, WIRE_F_BINARY);
}

void cluster_read(bconn *c, uint64_t id, const hyb_furi *f, unsigned flags, bool page,
                  const hyb_furi *after, size_t limit)
{
        no_cluster(c, id, f);
}

void cluster_write(bconn *c, uint64_t id, const hyb_furi *f, const hyb_obj *v, unsigned wflags)
{
        no_cluster(c, id, f);
}

void cluster_subscribe(bconn *c, uint64_t id, uint64_t sid, const hyb_furi *f, unsigned flags)
{
        no_cluster(c, id, f);
}

int cluster_unsubscribe(bconn *c, uint64_t id, uint64_t sid)
{
        return 0;
}

bool cluster_has_sub(bconn *c, uint64_t sid)
{
        return false;
}

void cluster_conn_gone(bconn *c)
{
}

#else

static const char queue_root[] = "/sys/cluster/queue/";

typedef struct bcluster bcluster;

struct cpat {
        struct cpat *next;
        char *filter;
        hyb_furi *cpat;   /* //a/# */
        hyb_furi *mpat;   /* /a/# in the mirror */
        unsigned n;
        bool acked, settled; /* SUBACK: granted; came */
};

struct csub {
        struct csub *next;
        bcluster *cl;
        bconn *conn;
        uint64_t sid;
        uint64_t call_id; /* the storeSubscribe to answer at SUBACK */
        unsigned flags;
        bool answered;
        struct cpat *pat;
        hyb_slot *slot;
        breplay rp;       /* its replay from the mirror in pages (replay.c) */
};

struct cread {
        struct cread *next;
        bcluster *cl;
        bconn *conn;
        bquota *q;        /* its uid's share, while the connection lives */
        uint64_t id;
        unsigned flags;
        bool page;
        size_t limit;
        hyb_furi *f, *after;
        struct cpat *pat;
        struct event *timer;
};

struct cqitem {
        struct cqitem *next;
        bcluster *cl;
        uint64_t seq;
        uid_t uid;
        bool charged;     /* counted in its uid's share (not one queued before a restart) */
        char *topic;
        char *payload;
        size_t len;
        bool retain, sent;
};

struct cwrite {
        struct cwrite *next;
        bcluster *cl;
        bconn *conn;
        uint64_t id;
};

struct bcluster {
        hyb_broker *b;
        cluster_link *link;
        const cluster_options *o;
        hyb_store *mirror;
        struct event *mirror_ev, *drain_ev;
        struct cpat *pats;
        struct csub *subs;
        struct cread *reads;
        unsigned n_reads;
        struct cqitem *q, **q_tail;
        unsigned n_q;
        struct quid {
                uid_t uid;
                unsigned n;
        } *quids;         /* queued writes by uid, for its share of queue_max */
        size_t n_quids;
        uint64_t next_seq;
        struct cwrite *writes;
        unsigned n_writes;
        bool mirror_full_logged;
        hyb_store *stale;
        struct event *resync_ev;
        int trace_fd;
        bool was_batching; /* b->batching before the link's turn (on_turn) */
};

/* ---------------------------------------------------------------- the bench's trace */

/*
 * With HYBRID_CLUSTER_TRACE=FILE in the daemon's environment (read once, at the start),
 * each cluster write a peer makes is noted in FILE as `W <ns> <fURI> <value>` and each
 * delivery of a cluster value to a peer's subscription as `D <ns> <fURI> <value>`: ns is
 * CLOCK_MONOTONIC, which all processes of a machine share, taken when the write enters
 * the daemon and when the subscription's callback is called; the line itself is written
 * after the publication or the delivery, out of the interval it measures.  bench-cluster
 * pairs the W lines of daemon A with the D lines of daemon B: daemon-to-daemon
 * propagation, without the client hops.  Without the variable, nothing is noted.
 */
static uint64_t trace_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void trace_note(bcluster *cl, char kind, uint64_t t, const char *pre, const char *furi,
                       const char *val, size_t vl)
{
        char head[32], digits[24];
        size_t nd = 0, hl = 0;

        /* by hand, in one writev: snprintf costs the daemon a third of a message */
        do
                digits[nd++] = (char)('0' + t % 10);
        while ((t /= 10) && nd < sizeof digits);
        head[hl++] = kind;
        head[hl++] = ' ';
        while (nd)
                head[hl++] = digits[--nd];
        head[hl++] = ' ';
        struct iovec iov[6] = {
                { head, hl },
                { (void *)pre, strlen(pre) },
                { (void *)furi, strlen(furi) },
                { (void *)" ", 1 },
                { (void *)val, vl },
                { (void *)"\n", 1 },
        };
        (void)!writev(cl->trace_fd, iov, 6);
}

/* Answers a read of f from the mirror. */
static void answer_read(bcluster *cl, bconn *c, uint64_t id, const hyb_furi *f, unsigned flags,
                        bool page, const hyb_furi *after, size_t limit)
{
        hyb_furi *mf = NULL, *mafter = NULL, *next = NULL, *cnext = NULL;
        hyb_obj *o = NULL, *items = NULL, *keyed = NULL;
        char *text = NULL;
        hyb_error e;
        int r;

        if (!c || c->state == BCONN_DEAD)
                return;
        hyb_error_clear(&e);
        r = cluster_map_mirror_of(f, &mf);
        if (r >= 0 && after)
                r = cluster_map_mirror_of(after, &mafter);
        if (r >= 0 && (page || hyb_furi_is_pattern(f) || hyb_furi_is_branch(f))) {
                size_t fit = 0;

                r = hyb_store_read_page(cl->mirror, mf, mafter,
                                        page ? limit : store_read_cap(cl->b), &items, &next, &e);
                /* a page is cut to what fits max_body before it is formatted, as the host
                 * store's (store_items_that_fit) */
                if (r >= 0 && page &&
                    (r = store_items_that_fit(cl->b, items, true, cl->b->c->max_body, &fit)) >= 0 &&
                    fit < hyb_obj_get_len(items))
                        r = store_page_cut(&items, &next, fit > 0 ? fit : 1);
                if (r >= 0)
                        r = cluster_map_remap_keys(items, &keyed);
                if (r >= 0 && next)
                        r = cluster_map_cluster_of(next, &cnext);
                if (r >= 0 && page)
                        r = store_page_answer(keyed, cnext, &text);
                else if (r >= 0 && next)
                        r = err_set(&e, HYB_E_LIMIT, -1,
                                    "the read of %s matches more than store.limits.max_read_keys "
                                    "(%zu) keys: read it in pages", hyb_furi_get_str(f),
                                    store_read_cap(cl->b));
                else if (r >= 0 && (hyb_furi_is_branch(f) || (flags & HYB_READ_KEYED)))
                        o = hyb_obj_ref(keyed);
                else if (r >= 0)
                        r = store_values_of(keyed, &o);
        } else if (r >= 0) {
                r = hyb_store_read(cl->mirror, mf, &o, &e);
        }
        if (r >= 0 && !text)
                r = hyb_obj_format(o, HYB_FORMAT_EXACT, &text);
        if (r >= 0 && strlen(text) > cl->b->c->max_body)
                r = err_set(&e, HYB_E_LIMIT, -1, "the answer to %s is over max_body %zu",
                            hyb_furi_get_str(f), (size_t)cl->b->c->max_body);
        if (r < 0) {
                char code[24];
                int n = snprintf(code, sizeof code, "%d", r);

                route_reply(c, id, hyb_err_to_status(r),
                            e.message[0] ? e.message : hyb_strerror(r), code, (size_t)n,
                            WIRE_F_BINARY);
        } else
                route_reply(c, id, 200, NULL, text, strlen(text), WIRE_F_BINARY);
        hyb_free(text);
        hyb_obj_unref(o);
        hyb_obj_unref(items);
        hyb_obj_unref(keyed);
        hyb_furi_unref(mf);
        hyb_furi_unref(mafter);
        hyb_furi_unref(next);
        hyb_furi_unref(cnext);
}

static void reply_code(bconn *c, uint64_t id, int r, const char *msg)
{
        char code[24];
        int n = snprintf(code, sizeof code, "%d", r);

        if (c && c->state != BCONN_DEAD)
                route_reply(c, id, hyb_err_to_status(r), msg && msg[0] ? msg : hyb_strerror(r),
                            code, (size_t)n, WIRE_F_BINARY);
}

/* ---------------------------------------------------------------- mirrored filters */

static void pat_acked(cluster_link *l, int r, void *ud);

static int pat_get(bcluster *cl, const hyb_furi *f, struct cpat **ret, hyb_error *e)
{
        struct cpat *p;
        char *filter = NULL;
        int r;

        r = cluster_map_topic(cl->o->prefix, f, &filter, e);
        if (r < 0)
                return r;
        for (p = cl->pats; p; p = p->next)
                if (strcmp(p->filter, filter) == 0) {
                        free(filter);
                        p->n++;
                        *ret = p;
                        return 0;
                }
        p = calloc(1, sizeof *p);
        if (!p) {
                free(filter);
                return -ENOMEM;
        }
        p->filter = filter;
        p->n = 1;
        if (hyb_furi_is_branch(f)) {
                /* //a/ is the filter a/#: the mirror keeps what is below it */
                char *t = NULL;
                const char *rest = cluster_map_text(f);
                r = asprintf(&t, "//%s#", rest) < 0 ? -ENOMEM : 0;
                if (r >= 0)
                        r = hyb_furi_parse(t, strlen(t), NULL, &p->cpat, e);
                free(t);
        } else
                p->cpat = hyb_furi_ref((hyb_furi *)f);
        if (r >= 0)
                r = cluster_map_mirror_of(p->cpat, &p->mpat);
        if (r >= 0)
                r = cluster_link_subscribe(cl->link, p->filter, cl->o->qos, pat_acked, cl);
        if (r < 0) {
                hyb_furi_unref(p->cpat);
                hyb_furi_unref(p->mpat);
                free(p->filter);
                free(p);
                return r == -EINVAL ? err_set(e, -EINVAL, -1, "%s: not an MQTT topic filter",
                                              hyb_furi_get_str(f))
                                    : r;
        }
        p->next = cl->pats;
        cl->pats = p;
        *ret = p;
        return 0;
}

static int purge_key(const hyb_furi *key, const hyb_obj *value, void *ud)
{
        bcluster *cl = ud;
        hyb_furi *cf = NULL;
        bool kept = false;

        if (cluster_map_cluster_of(key, &cf) < 0)
                return 0;
        for (struct cpat *p = cl->pats; p && !kept; p = p->next)
                kept = hyb_furi_match(cf, p->cpat);
        hyb_furi_unref(cf);
        if (!kept)
                (void)hyb_store_write(cl->mirror, key, hyb_obj_noobj(), 0, NULL);
        return 0;
}

/* Drops one user of p; the last one unsubscribes and forgets what only p mirrored. */
static void pat_put(bcluster *cl, struct cpat *p)
{
        if (!p || --p->n > 0)
                return;
        for (struct cpat **pp = &cl->pats; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        (void)cluster_link_unsubscribe(cl->link, p->filter);
        (void)hyb_store_scan(cl->mirror, p->mpat, purge_key, cl, NULL);
        hyb_furi_unref(p->cpat);
        hyb_furi_unref(p->mpat);
        free(p->filter);
        free(p);
}

/* ---------------------------------------------------------------- subscriptions */

/* A message of the mirror for s: its cluster fURI is the mirror key's text with one more '/'
 * in front (//a/b for /a/b: the mirror holds canonical texts only, furi_of_topic). */
static void sub_msg(const hyb_furi *target, const hyb_obj *payload, bool retain, void *ud)
{
        replay_message(&((struct csub *)ud)->rp, target, payload, retain);
}

static void sub_free(bcluster *cl, struct csub *s)
{
        for (struct csub **pp = &cl->subs; *pp; pp = &(*pp)->next)
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
        if (s->conn) {
                s->conn->n_ssubs--;
                if (s->conn->q)
                        s->conn->q->store_subs--;
        }
        replay_stop(&s->rp);
        hyb_slot_unref(s->slot);
        pat_put(cl, s->pat);
        free(s);
}

/* A message sent (or held) for s's peer, replayed or not: a D line of the trace file. */
static void replay_sent(breplay *r, const char *key, const char *val, size_t vl)
{
        struct csub *s = (struct csub *)((char *)r - offsetof(struct csub, rp));

        if (s->cl->trace_fd >= 0)
                trace_note(s->cl, 'D', trace_now(), r->prefix, key, val, vl);
}

/* The broker acknowledged s's filter: the mirror subscription, then the answer. */
static void sub_ready(bcluster *cl, struct csub *s, int r)
{
        hyb_error e;

        hyb_error_clear(&e);
        /* the replay is sent in pages (replay.c), the mirror replays nothing */
        if (r >= 0)
                r = replay_init(&s->rp, s->conn, s->sid, cl->mirror, "/",
                                s->flags ? s->pat->mpat : NULL);
        s->rp.sent = replay_sent;
        if (r >= 0)
                r = hyb_store_subscribe(cl->mirror, s->pat->mpat, 0, sub_msg, s, &s->slot, &e);
        s->answered = true;
        if (r < 0) {
                reply_code(s->conn, s->call_id, r == -EACCES ? HYB_E_FORBIDDEN : r,
                           r == -EACCES ? "the MQTT broker refused the subscription" : e.message);
                sub_free(cl, s);
                return;
        }
        route_reply(s->conn, s->call_id, 200, NULL, NULL, 0, WIRE_F_BINARY);
        replay_begin(&s->rp); /* the first page follows the answer; the rest, a page a turn */
        (void)hyb_store_process(cl->mirror);
}

/* ---------------------------------------------------------------- reads */

static void read_free(bcluster *cl, struct cread *rd)
{
        for (struct cread **pp = &cl->reads; *pp; pp = &(*pp)->next)
                if (*pp == rd) {
                        *pp = rd->next;
                        break;
                }
        cl->n_reads--;
        if (rd->q)
                rd->q->cluster_reads--;
        if (rd->timer)
                event_free(rd->timer);
        pat_put(cl, rd->pat);
        hyb_furi_unref(rd->f);
        hyb_furi_unref(rd->after);
        free(rd);
}

static void read_finish(bcluster *cl, struct cread *rd, bool timed_out)
{
        if (timed_out && !rd->pat->acked) {
                reply_code(rd->conn, rd->id, HYB_E_CALLEE_TIMEOUT,
                           "the MQTT broker did not acknowledge the subscription in time");
        } else {
                if (timed_out)
                        broker_log(cl->b, HYB_LOG_INFO,
                                   "cluster: read of %s: no retained message within %u ms",
                                   hyb_furi_get_str(rd->f), cl->o->read_timeout_ms);
                answer_read(cl, rd->conn, rd->id, rd->f, rd->flags, rd->page, rd->after,
                            rd->limit);
        }
        read_free(cl, rd);
}

static void read_timeout(evutil_socket_t fd, short what, void *ud)
{
        struct cread *rd = ud;

        read_finish(rd->cl, rd, true);
}

/* ---------------------------------------------------------------- the link's events */

static void pat_acked(cluster_link *l, int r, void *ud)
{
        bcluster *cl = ud;
        int st;

        if (r == -ECANCELED)
                return; /* unsubscribed before its SUBACK, or the daemon stops */
again:
        for (struct cpat *p = cl->pats; p; p = p->next) {
                if (p->settled || (st = cluster_link_subscription_state(l, p->filter)) == 0)
                        continue;
                p->settled = true;
                p->acked = st == 1;
                p->n++; /* held while its users are answered */
                for (struct csub *s = cl->subs, *nx; s; s = nx) {
                        nx = s->next;
                        if (s->pat == p && !s->answered)
                                sub_ready(cl, s, st == 1 ? 0 : -EACCES);
                }
                if (st != 1)
                        for (struct cread *rd = cl->reads, *nx; rd; rd = nx) {
                                nx = rd->next;
                                if (rd->pat == p) {
                                        reply_code(rd->conn, rd->id, HYB_E_FORBIDDEN,
                                                   "the MQTT broker refused the subscription");
                                        read_free(cl, rd);
                                }
                        }
                pat_put(cl, p);
                goto again; /* the list may have changed */
        }
}

static void mirror_put(bcluster *cl, const hyb_furi *cf, const char *topic, const void *payload,
                       size_t len, bool retain)
{
        hyb_furi *mf = NULL;
        hyb_obj *v = NULL, *cur = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        if (cluster_map_mirror_of(cf, &mf) < 0)
                return;
        if (cluster_map_value_of(payload, len, retain, &v) < 0) {
                broker_log(cl->b, HYB_LOG_DEBUG,
                           "cluster: %s: a payload that is neither JSON nor UTF-8 text", topic);
                goto out;
        }
        /* What the write queues is delivered below, by this thread: no eventfd kick for it
         * (a write and the read that clears it: two system calls a message) */
        store_kick_hold(cl->mirror);
        if (retain) {
                /* the same value again (a resubscription, a reconnection): not delivered
                 * twice; nor a retained message that came before (a QoS 1 redelivery,
                 * link.h) while the mirror holds the key: a later write may have come
                 * meanwhile, which the old one must not undo */
                if (hyb_store_read(cl->mirror, mf, &cur, NULL) >= 0 &&
                    (hyb_obj_equal(cur, v) ||
                     (cluster_link_msg_seen(cl->link) && !hyb_obj_is_noobj(cur))))
                        goto release;
                r = hyb_store_write(cl->mirror, mf, v, 0, &e);
        } else
                r = hyb_store_write(cl->mirror, mf, v, HYB_WRITE_TRANSIENT, &e);
        if (r == HYB_E_INSUFFICIENT_STORAGE) {
                if (!cl->mirror_full_logged)
                        broker_log(cl->b, HYB_LOG_WARNING,
                                   "cluster: the mirror holds cluster.mirror_max_keys (%u) "
                                   "values: %s and others are not mirrored",
                                   cl->o->mirror_max_keys, hyb_furi_get_str(cf));
                cl->mirror_full_logged = true;
        } else if (r < 0)
                broker_log(cl->b, HYB_LOG_WARNING, "cluster: %s not mirrored: %s",
                           hyb_furi_get_str(cf), e.message[0] ? e.message : hyb_strerror(r));
        (void)hyb_store_process(cl->mirror);
release:
        store_kick_release(cl->mirror); /* kicks if the process left work */
out:
        hyb_obj_unref(v);
        hyb_obj_unref(cur);
        hyb_furi_unref(mf);
}

/* ---------------------------------------------------------------- resynchronisation */

/*
 * A new session (the broker lost the daemon's: restarted without persistence, or the
 * session expired) sends the retained values again, but nothing for those deleted
 * meanwhile.  The mirror's keys are noted as stale; each retained message that comes
 * clears its key; once every SUBSCRIBE is acknowledged and no retained message came for
 * read_timeout_ms, the keys still stale are deleted from the mirror (its subscribers get
 * the delete).
 */
static void resync_arm(bcluster *cl)
{
        struct timeval tv = { cl->o->read_timeout_ms / 1000,
                              (suseconds_t)(cl->o->read_timeout_ms % 1000) * 1000 };
        evtimer_add(cl->resync_ev, &tv);
}

static void resync_seen(bcluster *cl, const hyb_furi *cf)
{
        hyb_furi *mf = NULL;

        if (cluster_map_mirror_of(cf, &mf) >= 0)
                (void)hyb_store_write(cl->stale, mf, hyb_obj_noobj(), 0, NULL);
        hyb_furi_unref(mf);
        resync_arm(cl);
}

static int note_stale(const hyb_furi *key, const hyb_obj *value, void *ud)
{
        bcluster *cl = ud;

        return hyb_store_write(cl->stale, key, hyb_obj_bool(true), 0, NULL) < 0 ? -ENOMEM : 0;
}

static int drop_stale(const hyb_furi *key, const hyb_obj *value, void *ud)
{
        bcluster *cl = ud;

        (void)hyb_store_write(cl->mirror, key, hyb_obj_noobj(), 0, NULL);
        return 0;
}

static void resync_end(bcluster *cl)
{
        if (cl->resync_ev)
                evtimer_del(cl->resync_ev);
        cl->stale = hyb_store_unref(cl->stale);
}

static void resync_start(bcluster *cl)
{
        hyb_store_options so;
        hyb_furi *all = NULL;
        int r;

        resync_end(cl);
        hyb_store_options_init(&so);
        so.durability = HYB_DURABILITY_MEMORY;
        so.max_keys = cl->o->mirror_max_keys;
        r = hyb_store_open(NULL, &so, &cl->stale, NULL);
        if (r >= 0)
                r = hyb_furi_parse("/#", (size_t)-1, NULL, &all, NULL);
        if (r >= 0)
                r = hyb_store_scan(cl->mirror, all, note_stale, cl, NULL);
        hyb_furi_unref(all);
        if (r < 0) {
                broker_log(cl->b, HYB_LOG_WARNING, "cluster: the mirror cannot be resynchronised: %s",
                           hyb_strerror(r));
                resync_end(cl);
                return;
        }
        resync_arm(cl);
}

static void resync_timeout(evutil_socket_t fd, short what, void *ud)
{
        bcluster *cl = ud;
        hyb_furi *all = NULL;

        if (!cluster_link_is_connected(cl->link)) {
                resync_end(cl); /* the next connection decides again */
                return;
        }
        if (cluster_link_subscribing(cl->link)) {
                resync_arm(cl);
                return;
        }
        if (hyb_furi_parse("/#", (size_t)-1, NULL, &all, NULL) >= 0)
                (void)hyb_store_scan(cl->stale, all, drop_stale, cl, NULL);
        hyb_furi_unref(all);
        (void)hyb_store_process(cl->mirror);
        resync_end(cl);
}

static void on_data(cluster_link *l, const char *topic, const void *payload, size_t len,
                    bool retain, int qos, const mosquitto_property *props, void *ud)
{
        bcluster *cl = ud;
        hyb_furi *cf = cluster_map_furi_of_topic(cl->o->prefix, topic);
        bool wanted = false;

        if (!cf)
                return; /* not visible in the cluster scope */
        if (len > CLUSTER_MAX_VALUE_BYTES) {
                broker_log(cl->b, HYB_LOG_DEBUG, "cluster: %s: a payload of %zu bytes, over %u: "
                           "not mirrored", topic, len, (unsigned)CLUSTER_MAX_VALUE_BYTES);
                hyb_furi_unref(cf);
                return;
        }
        for (struct cpat *p = cl->pats; p && !wanted; p = p->next)
                wanted = hyb_furi_match(cf, p->cpat);
        if (wanted && retain && cl->stale)
                resync_seen(cl, cf);
        if (wanted)
                mirror_put(cl, cf, topic, payload, len, retain);
        /* a node read waiting for this key has its answer */
        for (struct cread *rd = cl->reads, *nx; wanted && rd; rd = nx) {
                nx = rd->next;
                if (retain && !rd->page && !hyb_furi_is_pattern(rd->f) &&
                    !hyb_furi_is_branch(rd->f) && hyb_furi_equal(rd->f, cf))
                        read_finish(cl, rd, false);
        }
        hyb_furi_unref(cf);
}

/* ---------------------------------------------------------------- the queue */

static void queue_key(uint64_t seq, char *buf, size_t size)
{
        snprintf(buf, size, "%s%020" PRIu64, queue_root, seq);
}

/* The count of queued writes of uid (created at 0 when add). */
static unsigned *quid_count(bcluster *cl, uid_t uid, bool add)
{
        struct quid *q;

        for (size_t i = 0; i < cl->n_quids; i++)
                if (cl->quids[i].uid == uid)
                        return &cl->quids[i].n;
        if (!add)
                return NULL;
        q = realloc(cl->quids, (cl->n_quids + 1) * sizeof *q);
        if (!q)
                return NULL;
        cl->quids = q;
        q[cl->n_quids] = (struct quid){ uid, 0 };
        return &q[cl->n_quids++].n;
}

static void q_done(cluster_link *l, int r, void *ud)
{
        struct cqitem *it = ud;
        bcluster *cl = it->cl;
        char key[64];

        if (r == -ECANCELED)
                return; /* the daemon stops: the item stays in the host store */
        if (r < 0)
                broker_log(cl->b, HYB_LOG_WARNING, "cluster: the broker refused queued %s",
                           it->topic);
        queue_key(it->seq, key, sizeof key);
        if (cl->b->store)
                (void)hyb_store_write_str(cl->b->store, key, hyb_obj_noobj(), 0, NULL);
        for (struct cqitem **pp = &cl->q; *pp; pp = &(*pp)->next)
                if (*pp == it) {
                        *pp = it->next;
                        if (cl->q_tail == &it->next)
                                cl->q_tail = pp;
                        break;
                }
        cl->n_q--;
        if (it->charged) {
                unsigned *n = quid_count(cl, it->uid, false);
                if (n && *n)
                        (*n)--;
        }
        free(it->topic);
        free(it->payload);
        free(it);
}

static void drain(evutil_socket_t fd, short what, void *ud)
{
        bcluster *cl = ud;

        for (struct cqitem *it = cl->q; it; it = it->next) {
                int r;

                if (it->sent)
                        continue;
                r = cluster_link_publish(cl->link, it->topic, it->payload, it->len, cl->o->qos,
                                         it->retain, NULL, q_done, it);
                if (r == -ENOTCONN)
                        return;
                it->sent = true;
                if (r < 0) {
                        broker_log(cl->b, HYB_LOG_WARNING, "cluster: queued %s dropped: %s",
                                   it->topic, strerror(-r));
                        q_done(cl->link, r, it);
                        return drain(fd, what, ud); /* the list changed under us */
                }
        }
}

static int enqueue(bcluster *cl, const char *topic, const char *payload, size_t len, bool retain,
                   bool persist, uint64_t seq, const uid_t *uid)
{
        struct cqitem *it = calloc(1, sizeof *it);
        unsigned *count = uid ? quid_count(cl, *uid, true) : NULL;

        if (!it || (uid && !count)) {
                free(it);
                return -ENOMEM;
        }
        it->cl = cl;
        it->seq = seq;
        it->topic = strdup(topic);
        it->payload = malloc(len ? len : 1);
        if (!it->topic || !it->payload) {
                free(it->topic);
                free(it->payload);
                free(it);
                return -ENOMEM;
        }
        memcpy(it->payload, payload, len);
        it->len = len;
        it->retain = retain;
        if (persist && cl->b->store) {
                hyb_obj *items[3] = { NULL, NULL, NULL }, *lst = NULL;
                char key[64];
                int r;

                queue_key(seq, key, sizeof key);
                r = hyb_obj_new_str(topic, strlen(topic), &items[0]);
                if (r >= 0)
                        r = hyb_obj_new_str(payload, len, &items[1]);
                if (r >= 0)
                        items[2] = hyb_obj_bool(retain);
                if (r >= 0)
                        r = hyb_obj_new_lst(items, 3, &lst);
                if (r >= 0)
                        r = hyb_store_write_str(cl->b->store, key, lst, 0, NULL);
                for (int i = 0; i < 3; i++)
                        hyb_obj_unref(items[i]);
                hyb_obj_unref(lst);
                if (r < 0) {
                        free(it->topic);
                        free(it->payload);
                        free(it);
                        return r;
                }
        }
        *cl->q_tail = it;
        cl->q_tail = &it->next;
        cl->n_q++;
        if (uid) {
                it->uid = *uid;
                it->charged = true;
                (*count)++;
        }
        if (seq >= cl->next_seq)
                cl->next_seq = seq + 1;
        return 0;
}

static int load_item(const hyb_furi *key, const hyb_obj *v, void *ud)
{
        bcluster *cl = ud;
        size_t n = 0, len = 0, sl = 0;
        const char *seg = hyb_furi_get_segment(key, 3, &sl);
        const hyb_obj *t, *p, *rt;
        const char *topic, *payload;
        char num[32];

        if (hyb_obj_get_kind(v) != HYB_OBJ_LST || hyb_obj_get_len(v) != 3 || !seg ||
            sl >= sizeof num)
                return 0;
        t = hyb_obj_get_at(v, 0);
        p = hyb_obj_get_at(v, 1);
        rt = hyb_obj_get_at(v, 2);
        if (hyb_obj_get_kind(t) != HYB_OBJ_STR || hyb_obj_get_kind(p) != HYB_OBJ_STR ||
            hyb_obj_get_kind(rt) != HYB_OBJ_BOOL)
                return 0;
        memcpy(num, seg, sl);
        num[sl] = 0;
        topic = hyb_obj_get_str(t, &n);
        payload = hyb_obj_get_str(p, &len);
        return enqueue(cl, topic, payload, len, hyb_obj_get_bool(rt), false,
                       strtoull(num, NULL, 10), NULL);
}

/* ---------------------------------------------------------------- calls */

static bcluster *cluster_of_conn(bconn *c)
{
        return c->b->cluster;
}

/* Is f covered by a mirrored filter the broker acknowledged? */
static bool mirrored(bcluster *cl, const hyb_furi *f)
{
        hyb_furi *asked = NULL;
        bool yes = false;

        if (hyb_furi_is_branch(f)) {
                char *t = NULL;
                if (asprintf(&t, "//%s#", cluster_map_text(f)) < 0)
                        return false;
                (void)hyb_furi_parse(t, strlen(t), NULL, &asked, NULL);
                free(t);
                if (!asked)
                        return false;
        }
        for (struct cpat *p = cl->pats; p && !yes; p = p->next)
                yes = p->acked && hyb_furi_match(asked ? asked : f, p->cpat);
        hyb_furi_unref(asked);
        return yes;
}

void cluster_read(bconn *c, uint64_t id, const hyb_furi *f, unsigned flags, bool page,
                  const hyb_furi *after, size_t limit)
{
        bcluster *cl = cluster_of_conn(c);
        struct cread *rd;
        struct timeval tv;
        hyb_error e;
        int r;

        if (mirrored(cl, f)) {
                answer_read(cl, c, id, f, flags, page, after, limit);
                return;
        }
        /* Reads waiting for the broker: max_pending_reads in all, half of them for one uid,
         * and for one connection (at least one each). */
        unsigned share = cl->o->max_pending_reads / 2 ? cl->o->max_pending_reads / 2 : 1, mine = 0;
        for (struct cread *x = cl->reads; x; x = x->next)
                mine += x->conn == c;
        if (cl->n_reads >= cl->o->max_pending_reads) {
                reply_code(c, id, HYB_E_TOO_MANY,
                           "cluster.max_pending_reads reads already wait for the MQTT broker");
                return;
        }
        if ((c->q && c->q->cluster_reads >= share) || mine >= share) {
                reply_code(c, id, HYB_E_TOO_MANY,
                           "half of cluster.max_pending_reads reads of this uid (or connection) "
                           "already wait for the MQTT broker");
                return;
        }
        hyb_error_clear(&e);
        rd = calloc(1, sizeof *rd);
        if (!rd) {
                reply_code(c, id, -ENOMEM, NULL);
                return;
        }
        rd->cl = cl;
        rd->conn = c;
        rd->id = id;
        rd->flags = flags;
        rd->page = page;
        rd->limit = limit;
        rd->f = hyb_furi_ref((hyb_furi *)f);
        rd->after = after ? hyb_furi_ref((hyb_furi *)after) : NULL;
        rd->timer = evtimer_new(c->b->base, read_timeout, rd);
        r = rd->timer ? pat_get(cl, f, &rd->pat, &e) : -ENOMEM;
        if (r < 0) {
                reply_code(c, id, r, e.message);
                if (rd->timer)
                        event_free(rd->timer);
                hyb_furi_unref(rd->f);
                hyb_furi_unref(rd->after);
                free(rd);
                return;
        }
        rd->next = cl->reads;
        cl->reads = rd;
        cl->n_reads++;
        rd->q = c->q;
        if (rd->q)
                rd->q->cluster_reads++;
        broker_log(cl->b, HYB_LOG_INFO,
                   "cluster: read of %s is outside the mirror: subscribing to %s and waiting up "
                   "to %u ms for its retained message", hyb_furi_get_str(f), rd->pat->filter,
                   cl->o->read_timeout_ms);
        tv.tv_sec = cl->o->read_timeout_ms / 1000;
        tv.tv_usec = (suseconds_t)(cl->o->read_timeout_ms % 1000) * 1000;
        evtimer_add(rd->timer, &tv);
}

static void write_done(cluster_link *l, int r, void *ud)
{
        struct cwrite *w = ud;
        bcluster *cl = w->cl;

        for (struct cwrite **pp = &cl->writes; *pp; pp = &(*pp)->next)
                if (*pp == w) {
                        *pp = w->next;
                        cl->n_writes--;
                        break;
                }
        if (r == -ECANCELED)
                reply_code(w->conn, w->id, HYB_E_UNAVAILABLE, "hybridd is shutting down");
        else if (r < 0)
                reply_code(w->conn, w->id, HYB_E_FORBIDDEN,
                           "the MQTT broker refused the publication");
        else if (w->conn && w->conn->state != BCONN_DEAD)
                route_reply(w->conn, w->id, 200, NULL, NULL, 0, WIRE_F_BINARY);
        free(w);
}

void cluster_write(bconn *c, uint64_t id, const hyb_furi *f, const hyb_obj *v, unsigned wflags)
{
        bcluster *cl = cluster_of_conn(c);
        bool del = hyb_obj_is_noobj(v), retain = !(wflags & HYB_WRITE_TRANSIENT);
        char *topic = NULL, *json = NULL;
        size_t len = 0;
        hyb_error e;
        uint64_t t = cl->trace_fd >= 0 ? trace_now() : 0;
        int r;

        hyb_error_clear(&e);
        if (hyb_furi_is_pattern(f) || hyb_furi_is_branch(f)) {
                r = err_set(&e, -EINVAL, -1,
                            "%s: the cluster scope takes writes and deletes of single fURIs",
                            hyb_furi_get_str(f));
                goto out;
        }
        if (del && !retain) {
                r = err_set(&e, -EINVAL, -1, "%s: a transient delete means nothing in MQTT",
                            hyb_furi_get_str(f));
                goto out;
        }
        r = cluster_map_topic(cl->o->prefix, f, &topic, &e);
        if (r >= 0 && !del) {
                r = hyb_obj_to_json(v, &json, &e);
                if (r >= 0)
                        len = strlen(json);
        }
        /* no host takes a message over the bound (cluster_map_value_of), this one included:
         * published, the write would be answered 200 and never be seen */
        if (r >= 0 && len > CLUSTER_MAX_VALUE_BYTES)
                r = err_set(&e, HYB_E_LIMIT, -1,
                            "%s: a value of %zu bytes as JSON exceeds the cluster scope's "
                            "limit of %u", hyb_furi_get_str(f), len, CLUSTER_MAX_VALUE_BYTES);
        if (r < 0)
                goto out;
        if (!cl->q && cluster_link_is_connected(cl->link)) {
                struct cwrite *w;

                if (cl->n_writes >= cl->o->queue_max) {
                        r = err_set(&e, HYB_E_INSUFFICIENT_STORAGE, -1,
                                    "cluster.queue_max (%u) writes already wait for the MQTT "
                                    "broker's acknowledgement", cl->o->queue_max);
                        goto out;
                }
                w = calloc(1, sizeof *w);

                if (!w) {
                        r = -ENOMEM;
                        goto out;
                }
                w->cl = cl;
                w->conn = c;
                w->id = id;
                /* one of several frames read at once: its PUBLISH leaves with the others' */
                if (cl->b->batching)
                        cluster_link_more(cl->link);
                r = cluster_link_publish(cl->link, topic, json ? json : "", len, cl->o->qos,
                                         retain, NULL, write_done, w);
                if (r >= 0) {
                        w->next = cl->writes;
                        cl->writes = w;
                        cl->n_writes++;
                        if (t)
                                trace_note(cl, 'W', t, "", hyb_furi_get_str(f), json ? json : "",
                                           len);
                        goto done; /* answered at the PUBACK */
                }
                free(w);
                if (r != -ENOTCONN) {
                        err_set(&e, r, -1, "%s: cannot publish: %s", topic, strerror(-r));
                        goto out;
                }
        }
        /* The broker is unreachable (or writes wait before this one): queued, in order. */
        if (cl->n_q >= cl->o->queue_max) {
                r = err_set(&e, HYB_E_INSUFFICIENT_STORAGE, -1,
                            "the MQTT broker is unreachable and cluster.queue_max (%u) writes "
                            "already wait for it", cl->o->queue_max);
                goto out;
        }
        unsigned share = cl->o->queue_max / 2 ? cl->o->queue_max / 2 : 1;
        unsigned *mine = quid_count(cl, c->uid, false);
        if (mine && *mine >= share) {
                r = err_set(&e, HYB_E_INSUFFICIENT_STORAGE, -1,
                            "the MQTT broker is unreachable and uid %u has half of "
                            "cluster.queue_max (%u) writes waiting for it", (unsigned)c->uid,
                            cl->o->queue_max);
                goto out;
        }
        r = enqueue(cl, topic, json ? json : "", len, retain, true, cl->next_seq, &c->uid);
        if (r >= 0 && cluster_link_is_connected(cl->link))
                event_active(cl->drain_ev, EV_TIMEOUT, 0);
out:
        if (r < 0)
                reply_code(c, id, r, e.message);
        else
                route_reply(c, id, 200, NULL, NULL, 0, WIRE_F_BINARY);
done:
        free(topic);
        hyb_free(json);
}

void cluster_subscribe(bconn *c, uint64_t id, uint64_t sid, const hyb_furi *f, unsigned flags)
{
        bcluster *cl = cluster_of_conn(c);
        struct csub *s;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        s = calloc(1, sizeof *s);
        if (!s) {
                reply_code(c, id, -ENOMEM, NULL);
                return;
        }
        s->cl = cl;
        s->conn = c;
        s->sid = sid;
        s->call_id = id;
        s->flags = flags;
        r = pat_get(cl, f, &s->pat, &e);
        if (r < 0) {
                reply_code(c, id, r, e.message);
                free(s);
                return;
        }
        s->next = cl->subs;
        cl->subs = s;
        c->n_ssubs++;
        if (c->q)
                c->q->store_subs++;
        if (s->pat->acked)
                sub_ready(cl, s, 0);
        /* else: answered at the SUBACK (pat_acked) */
}

int cluster_unsubscribe(bconn *c, uint64_t id, uint64_t sid)
{
        bcluster *cl = cluster_of_conn(c);

        if (!cl)
                return 0;
        for (struct csub *s = cl->subs; s; s = s->next)
                if (s->conn == c && s->sid == sid) {
                        if (!s->answered)
                                reply_code(c, s->call_id, -ECANCELED, "unsubscribed");
                        sub_free(cl, s);
                        route_reply(c, id, 200, NULL, NULL, 0, WIRE_F_BINARY);
                        return 1;
                }
        return 0;
}

bool cluster_has_sub(bconn *c, uint64_t sid)
{
        bcluster *cl = cluster_of_conn(c);

        for (struct csub *s = cl ? cl->subs : NULL; s; s = s->next)
                if (s->conn == c && s->sid == sid)
                        return true;
        return false;
}

void cluster_conn_gone(bconn *c)
{
        bcluster *cl = cluster_of_conn(c);

        if (!cl)
                return;
        for (struct csub *s = cl->subs, *nx; s; s = nx) {
                nx = s->next;
                if (s->conn == c)
                        sub_free(cl, s);
        }
        for (struct cread *rd = cl->reads; rd; rd = rd->next)
                if (rd->conn == c) {
                        rd->conn = NULL; /* answered to no one at its end */
                        if (rd->q)
                                rd->q->cluster_reads--;
                        rd->q = NULL;
                }
        for (struct cwrite *w = cl->writes; w; w = w->next)
                if (w->conn == c)
                        w->conn = NULL;
}

/* ---------------------------------------------------------------- life */

static void link_log(int level, const char *msg, void *ud)
{
        broker_log(ud, level, "%s", msg);
}

static bool link_log_wanted(int level, void *ud)
{
        hyb_broker *b = ud;

        return level <= b->log_level && (b->log || events_log_wanted(b));
}

/* What the link read in one turn: the frames it makes for peers (deliveries to
 * subscriptions, the answers to writes at their PUBACK) leave in one write per peer at the
 * end, as the frames of a batch read from a peer do (broker-conn.c). */
static void on_turn(cluster_link *l, bool begin, void *ud)
{
        bcluster *cl = ud;

        if (begin) {
                cl->was_batching = cl->b->batching;
                cl->b->batching = true;
                return;
        }
        cl->b->batching = cl->was_batching;
        if (!cl->was_batching)
                broker_flush_batches(cl->b);
}

static void on_state(cluster_link *l, bool connected, bool session, void *ud)
{
        bcluster *cl = ud;

        if (connected && cl->q)
                event_active(cl->drain_ev, EV_TIMEOUT, 0);
        if (connected && !session && cluster_link_get_connects(l) > 1)
                resync_start(cl);
}

static void mirror_io(evutil_socket_t fd, short what, void *ud)
{
        bcluster *cl = ud;

        for (int i = 0; i < 64 && hyb_store_process(cl->mirror) > 0; i++)
                ;
}

static void cluster_free(bcluster *cl)
{
        if (!cl)
                return;
        while (cl->reads) {
                struct cread *rd = cl->reads;
                reply_code(rd->conn, rd->id, HYB_E_UNAVAILABLE, "hybridd is shutting down");
                read_free(cl, rd);
        }
        while (cl->subs)
                sub_free(cl, cl->subs);
        /* the link's pending publications answer their writers (-ECANCELED) */
        cl->b->link = cluster_link_free(cl->link);
        cl->link = NULL;
        while (cl->q) {
                struct cqitem *it = cl->q;
                cl->q = it->next;
                free(it->topic);
                free(it->payload);
                free(it);
        }
        while (cl->pats) {
                struct cpat *p = cl->pats;
                cl->pats = p->next;
                hyb_furi_unref(p->cpat);
                hyb_furi_unref(p->mpat);
                free(p->filter);
                free(p);
        }
        if (cl->mirror_ev)
                event_free(cl->mirror_ev);
        if (cl->drain_ev)
                event_free(cl->drain_ev);
        resync_end(cl);
        if (cl->resync_ev)
                event_free(cl->resync_ev);
        if (cl->trace_fd >= 0)
                close(cl->trace_fd);
        free(cl->quids);
        hyb_store_unref(cl->mirror);
        free(cl);
}

int broker_cluster_start(hyb_broker *b, hyb_error *e)
{
        hyb_store_options so;
        bcluster *cl;
        char id[300];
        const char *trace;
        int r, fd;

        if (!b->c->cluster.broker || b->cluster)
                return 0;
        cl = calloc(1, sizeof *cl);
        if (!cl)
                return -ENOMEM;
        cl->b = b;
        cl->q_tail = &cl->q;
        cl->trace_fd = -1;
        snprintf(id, sizeof id, "hybrid-%s", b->c->host ? b->c->host : "localhost");
        r = cluster_link_new(b->base, &b->c->cluster, id, link_log, b, &cl->link, e);
        if (r < 0) {
                free(cl);
                return r;
        }
        b->link = cl->link;
        cluster_link_set_log_wanted(cl->link, link_log_wanted);
        cl->o = cluster_link_get_options(cl->link);
        /* What the broker may send: a value of the mirror or one bus frame (calls between
         * hosts), with its topic and properties (a token, a response topic, forHost and
         * forApp); a larger message is dropped by the broker, not read here. */
        size_t most = b->c->max_frame > CLUSTER_MAX_VALUE_BYTES ? b->c->max_frame : CLUSTER_MAX_VALUE_BYTES;
        most += CLUSTER_PACKET_ROOM;
        (void)cluster_link_set_max_packet(cl->link, most > MQTT_MAX_PAYLOAD ? 0 : (uint32_t)most);
        hyb_store_options_init(&so);
        so.durability = HYB_DURABILITY_MEMORY;
        so.max_keys = cl->o->mirror_max_keys;
        r = hyb_store_open(NULL, &so, &cl->mirror, e);
        if (r >= 0 && (fd = hyb_store_get_fd(cl->mirror)) >= 0) {
                cl->mirror_ev = event_new(b->base, fd, EV_READ | EV_PERSIST, mirror_io, cl);
                cl->drain_ev = event_new(b->base, -1, 0, drain, cl);
                cl->resync_ev = evtimer_new(b->base, resync_timeout, cl);
                if (!cl->mirror_ev || !cl->drain_ev || !cl->resync_ev || event_add(cl->mirror_ev, NULL) < 0)
                        r = -ENOMEM;
        } else if (r >= 0)
                r = -EIO;
        if (r >= 0)
                r = cluster_link_on_message(cl->link, cl->o->prefix ? cl->o->prefix : "",
                                            on_data, cl);
        if (r >= 0)
                r = cluster_link_on_state(cl->link, on_state, cl);
        if (r >= 0)
                cluster_link_on_turn(cl->link, on_turn, cl);
        if (r >= 0 && (trace = secure_getenv("HYBRID_CLUSTER_TRACE")) && *trace) {
                cl->trace_fd = open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (cl->trace_fd < 0) {
                        r = -errno;
                        r = err_set(e, r, -1, "HYBRID_CLUSTER_TRACE %s: %s", trace,
                                    strerror(-r));
                } else
                        broker_log(b, HYB_LOG_WARNING,
                                   "cluster: HYBRID_CLUSTER_TRACE: every cluster write and "
                                   "delivery is noted in %s", trace);
        }
        if (r >= 0 && b->store) {
                /* writes queued before a restart: published first, in their order */
                hyb_furi *qp = NULL;
                r = hyb_furi_parse("/sys/cluster/queue/+", (size_t)-1, NULL, &qp, e);
                if (r >= 0)
                        r = hyb_store_scan(b->store, qp, load_item, cl, e);
                hyb_furi_unref(qp);
                if (r >= 0 && cl->n_q)
                        broker_log(b, HYB_LOG_INFO,
                                   "cluster: %u writes queued before the restart wait for the "
                                   "broker", cl->n_q);
        }
        if (r < 0) {
                cluster_free(cl);
                b->link = NULL;
                return r;
        }
        b->cluster = cl;
        return 0;
}

void broker_cluster_stop(hyb_broker *b)
{
        cluster_free(b->cluster);
        b->cluster = NULL;
        b->link = NULL;
}

#endif
