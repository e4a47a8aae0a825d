/* SPDX-License-Identifier: MIT */
/*
 * The cluster scope //... for a program without a daemon (doc/cluster.md "Programs without
 * a daemon"): a backend of the scope router (hybrid/store.h) that talks MQTT to the broker
 * itself, with the daemon's mapping (map.h).
 *
 *   cembed
 *    |- mosq          libmosquitto client, MQTT 5, clean start; its own thread
 *    |                (mosquitto_loop_start) reads, pings and reconnects
 *    |- filts: efilt  topic filters subscribed, each with its subscription identifier,
 *    |                its users (watches, reads) and whether it is settled (below)
 *    |- subs: esub    the program's subscriptions (the backend's cookies), one filter each
 *    |- head..tail    messages for the subscriptions, delivered by process (bounded)
 *    |- mirror        a memory store of the retained values under the filters: //a/b at /a/b
 *    |- acks          SUBACK/PUBACK that came before their waiter looked for them
 *    `- sync          markers: <prefix>_hybrid/sync/<client id>
 *
 * Settling.  After a SUBSCRIBE the broker sends the filter's retained values; the backend
 * then publishes a marker (QoS 1) on its own sync topic, which the broker handles after the
 * SUBSCRIBE, so when the marker comes back every retained value of the filter came before
 * it: the filter is settled, the mirror holds what the broker retains under it, and reads
 * of it are answered from the mirror.  A subscription returns once its filter is settled
 * (so `ready` comes after the SUBACK); with HYB_SUBSCRIBE_REPLAY it first gets the mirror's
 * values.  A read outside every settled filter subscribes, waits for the marker (or its key,
 * for a node read; at most read_timeout_ms), answers from the mirror and unsubscribes.  A
 * broker that refuses to carry the marker (an ACL) makes reads wait for the deadline.
 *
 * Locking: one mutex (lock) over everything; libmosquitto is never called with it held
 * (its callbacks, which take lock, run with libmosquitto's own locks held).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "cluster/map.h"
#include "cluster/options.h"
#include "common/util.h"
#include "hybrid/bus-store.h"

#define EMBED_DEFAULT_TIMEOUT_MS 5000u
#define EMBED_DEFAULT_MAX_SUBSCRIPTIONS 1024u
#define EMBED_DEFAULT_MAX_PENDING 4096u
#define EMBED_MAX_PENDING_BYTES (64u * 1024u * 1024u)
#define EMBED_MAX_ACKS 256u
#define MQTT_MAX_SUB_ID 268435455u

typedef struct cembed cembed;

typedef struct efilt {
        struct efilt *next;
        char *filter;           /* <prefix>a/# */
        hyb_furi *cpat, *mpat;  /* //a/# and /a/# in the mirror */
        uint32_t sid;
        unsigned users;         /* watches and reads */
        int mid;                /* of its SUBSCRIBE; 0: none known yet */
        int state;              /* 0: no SUBACK yet, 1: granted, -EACCES: refused */
        uint64_t sync;          /* the marker that settles it */
        bool settled;
} efilt;

typedef struct esub {
        struct esub *next;
        efilt *filt;
        hyb_store_msg_fn fn;
        void *ud;
        unsigned refs;          /* the cookie's and one per queued message */
        bool dead;
} esub;

typedef struct emsg {
        struct emsg *next;
        esub *sub;
        hyb_furi *f;
        hyb_obj *v;
        bool retain;
        size_t cost;
} emsg;

typedef struct eack {
        int mid, r;
} eack;

struct cembed {
        pthread_mutex_t lock;
        pthread_cond_t cond;    /* CLOCK_MONOTONIC */
        struct mosquitto *mosq;
        cluster_options o;
        char host[256];
        int port;
        bool tls;
        char *password, *client_id, *sync_topic, *url;
        uint32_t timeout_ms, max_subs, max_pending;
        bool started, connected, loop_running;
        char why[200];          /* the last connection failure */
        efilt *filts;
        uint32_t next_sid;
        esub *subs;
        unsigned n_subs, n_reads;
        emsg *head, **tail;
        unsigned n_msgs;
        size_t msg_bytes;
        uint64_t dropped, dropped_told; /* messages dropped; of them, reported by process */
        eack acks[EMBED_MAX_ACKS];
        unsigned n_acks;
        uint64_t sync_sent, sync_seen;
        unsigned n_waiting;     /* callers waiting for the broker (quickack) */
        hyb_store *mirror;
        hyb_store *stale;       /* after a reconnection: kept values not seen again */
        uint64_t resync;        /* the marker that ends the resynchronisation; 0: none */
        int efd;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
        (void)mosquitto_lib_init();
}

static uint64_t deadline_after(uint32_t ms)
{
        return hyb_now_usec() + (uint64_t)ms * 1000u;
}

/* Waits on cond until the absolute deadline (µs, CLOCK_MONOTONIC); false when it passed. */
static bool wait_until(cembed *ce, uint64_t deadline)
{
        uint64_t now = hyb_now_usec();
        struct timespec ts;

        if (now >= deadline)
                return false;
        ts.tv_sec = (time_t)(deadline / 1000000u);
        ts.tv_nsec = (long)(deadline % 1000000u) * 1000;
        ce->n_waiting++;
        (void)pthread_cond_timedwait(&ce->cond, &ce->lock, &ts);
        ce->n_waiting--;
        return true;
}

/* An acknowledgement (mid) that came: 1 and *r when there, else 0.  Under lock. */
static int ack_take(cembed *ce, int mid, int *r)
{
        for (unsigned i = 0; i < ce->n_acks; i++)
                if (ce->acks[i].mid == mid) {
                        *r = ce->acks[i].r;
                        ce->acks[i] = ce->acks[--ce->n_acks];
                        return 1;
                }
        return 0;
}

static void ack_put(cembed *ce, int mid, int r)
{
        if (ce->n_acks == EMBED_MAX_ACKS) /* the oldest waiters gave up long ago */
                memmove(ce->acks, ce->acks + 1, sizeof ce->acks[0] * --ce->n_acks);
        ce->acks[ce->n_acks++] = (eack){ mid, r };
        pthread_cond_broadcast(&ce->cond);
}

/*
 * While a caller waits for the broker or a marker is out (under lock): the broker's next
 * packets are what the caller waits for, and mosquitto by default writes with Nagle's
 * algorithm, so it holds them until we acknowledge what it sent before (an UNSUBACK, a
 * SUBACK, a QoS 0 message), which the kernel would delay by up to 40 ms, as nothing of ours
 * goes back: acknowledge now (TCP_QUICKACK sends a pending ACK at once).  Called from
 * libmosquitto's thread right after it read a packet.
 */
static void quickack(cembed *ce, struct mosquitto *m)
{
        int one = 1, fd;

        if (!ce->n_waiting && ce->sync_seen >= ce->sync_sent)
                return;
        fd = mosquitto_socket(m);
        if (fd >= 0)
                (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

/* ---------------------------------------------------------------- delivery */

static void sub_put(esub *s)
{
        if (--s->refs == 0)
                free(s);
}

static void msg_free(emsg *m)
{
        hyb_furi_unref(m->f);
        hyb_obj_unref(m->v);
        free(m);
}

/* Queues a message for s (under lock); dropped past the bounds. */
static void deliver(cembed *ce, esub *s, const hyb_furi *f, const hyb_obj *v, bool retain,
                    size_t cost)
{
        uint64_t one = 1;
        emsg *m;

        if (s->dead)
                return;
        if (ce->n_msgs >= ce->max_pending || ce->msg_bytes + cost > EMBED_MAX_PENDING_BYTES ||
            !(m = calloc(1, sizeof *m))) {
                ce->dropped++;
                (void)!write(ce->efd, &one, sizeof one);
                return;
        }
        m->sub = s;
        s->refs++;
        m->f = hyb_furi_ref(f);
        m->v = hyb_obj_ref(v);
        m->retain = retain;
        m->cost = cost;
        *ce->tail = m;
        ce->tail = &m->next;
        ce->n_msgs++;
        ce->msg_bytes += cost;
        (void)!write(ce->efd, &one, sizeof one);
}

/* ---------------------------------------------------------------- libmosquitto's thread */

static int note_stale(const hyb_furi *key, const hyb_obj *value, void *ud)
{
        return hyb_store_write(ud, key, hyb_obj_bool(true), 0, NULL) < 0 ? 1 : 0;
}

/* A new session (clean start): every filter is subscribed again, its retained values come
 * again, and the marker sent after them settles the filters and ends the resynchronisation:
 * the values kept that did not come again (deleted meanwhile) are dropped then (resync_end). */
static void on_connect(struct mosquitto *m, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
        cembed *ce = ud;
        mosquitto_property *p = NULL;
        char **filters = NULL;
        uint32_t *sids = NULL;
        size_t n = 0, i = 0;
        hyb_store_options so;
        hyb_furi *all = NULL;

        pthread_mutex_lock(&ce->lock);
        if (rc != 0) {
                snprintf(ce->why, sizeof ce->why, "the broker refused the connection: %s",
                         mosquitto_reason_string(rc));
                pthread_cond_broadcast(&ce->cond);
                pthread_mutex_unlock(&ce->lock);
                return;
        }
        for (efilt *f = ce->filts; f; f = f->next)
                n++;
        filters = calloc(n + 1, sizeof *filters);
        sids = calloc(n + 1, sizeof *sids);
        for (efilt *f = ce->filts; f && filters && sids; f = f->next) {
                filters[i] = strdup(f->filter);
                sids[i++] = f->sid;
                f->settled = false;
                f->sync = 0; /* set below, once the SUBSCRIBEs are out */
        }
        ce->stale = hyb_store_unref(ce->stale);
        hyb_store_options_init(&so);
        so.durability = HYB_DURABILITY_MEMORY;
        if (n && hyb_store_open(NULL, &so, &ce->stale, NULL) >= 0 &&
            (hyb_furi_parse("/#", (size_t)-1, NULL, &all, NULL) < 0 ||
             hyb_store_scan(ce->mirror, all, note_stale, ce->stale, NULL) != 0))
                ce->stale = hyb_store_unref(ce->stale); /* no resynchronisation then */
        hyb_furi_unref(all);
        pthread_mutex_unlock(&ce->lock);
        (void)mosquitto_subscribe_v5(m, NULL, ce->sync_topic, 1, 0, NULL);
        for (i = 0; filters && sids && i < n; i++) {
                if (filters[i] &&
                    mosquitto_property_add_varint(&p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, sids[i]) ==
                            MOSQ_ERR_SUCCESS)
                        (void)mosquitto_subscribe_v5(m, NULL, filters[i], ce->o.qos,
                                                     MQTT_SUB_OPT_RETAIN_AS_PUBLISHED, p);
                mosquitto_property_free_all(&p);
                free(filters[i]);
        }
        free(filters);
        free(sids);
        pthread_mutex_lock(&ce->lock);
        ce->connected = true;
        ce->why[0] = 0;
        if (n) {
                /* no marker is read before this callback returns: numbering it now is in time */
                char num[24];
                uint64_t k = ++ce->sync_sent;
                int l = snprintf(num, sizeof num, "%" PRIu64, k);

                for (efilt *f = ce->filts; f; f = f->next)
                        if (!f->sync)
                                f->sync = k;
                ce->resync = k;
                pthread_mutex_unlock(&ce->lock);
                (void)mosquitto_publish_v5(m, NULL, ce->sync_topic, l, num, 1, false, NULL);
                pthread_mutex_lock(&ce->lock);
        }
        pthread_cond_broadcast(&ce->cond);
        pthread_mutex_unlock(&ce->lock);
}

static int drop_stale(const hyb_furi *key, const hyb_obj *value, void *ud)
{
        cembed *ce = ud;
        hyb_furi *cf = NULL;

        (void)hyb_store_write(ce->mirror, key, hyb_obj_noobj(), 0, NULL);
        if (cluster_map_cluster_of(key, &cf) < 0)
                return 0;
        for (efilt *f = ce->filts; f; f = f->next) {
                if (!hyb_furi_match(key, f->mpat))
                        continue;
                for (esub *s = ce->subs; s; s = s->next)
                        if (s->filt == f)
                                deliver(ce, s, cf, hyb_obj_noobj(), true, 64);
        }
        hyb_furi_unref(cf);
        return 0;
}

/* The marker of a reconnection came (under lock): what did not come again was deleted. */
static void resync_end(cembed *ce)
{
        hyb_furi *all = NULL;

        if (ce->stale && hyb_furi_parse("/#", (size_t)-1, NULL, &all, NULL) >= 0)
                (void)hyb_store_scan(ce->stale, all, drop_stale, ce, NULL);
        hyb_furi_unref(all);
        ce->stale = hyb_store_unref(ce->stale);
        ce->resync = 0;
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc, const mosquitto_property *props)
{
        cembed *ce = ud;

        pthread_mutex_lock(&ce->lock);
        ce->connected = false;
        snprintf(ce->why, sizeof ce->why, "the connection to the broker was lost: %s",
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        pthread_cond_broadcast(&ce->cond);
        pthread_mutex_unlock(&ce->lock);
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
        cembed *ce = ud;
        int r = n >= 1 && granted[0] < 0x80 ? 1 : -EACCES;

        pthread_mutex_lock(&ce->lock);
        quickack(ce, m);
        for (efilt *f = ce->filts; f; f = f->next)
                if (f->mid == mid) {
                        f->state = r;
                        f->mid = 0; /* answered: a later SUBSCRIBE's id, once ids wrap, is not its */
                        pthread_cond_broadcast(&ce->cond);
                        pthread_mutex_unlock(&ce->lock);
                        return;
                }
        ack_put(ce, mid, r);
        pthread_mutex_unlock(&ce->lock);
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int reason,
                       const mosquitto_property *props)
{
        cembed *ce = ud;

        pthread_mutex_lock(&ce->lock);
        quickack(ce, m);
        ack_put(ce, mid, reason < 0x80 ? 0 : -EACCES);
        pthread_mutex_unlock(&ce->lock);
}

static void on_unsubscribe(struct mosquitto *m, void *ud, int mid)
{
        cembed *ce = ud;

        pthread_mutex_lock(&ce->lock);
        quickack(ce, m);
        pthread_mutex_unlock(&ce->lock);
}

/* Is sid one of the message's subscription identifiers (all of them match without any)? */
static bool has_sid(const mosquitto_property *props, uint32_t sid, bool *any)
{
        const mosquitto_property *p;
        uint32_t v = 0;
        bool first = true;

        *any = false;
        for (p = props; (p = mosquitto_property_read_varint(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER,
                                                            &v, !first));
             first = false) {
                *any = true;
                if (v == sid)
                        return true;
        }
        return false;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
        cembed *ce = ud;
        hyb_furi *cf = NULL, *mf = NULL;
        hyb_obj *v = NULL, *cur = NULL;
        bool changed = true, wanted = false, any;

        if (strcmp(msg->topic, ce->sync_topic) == 0) {
                char num[24];
                size_t l = msg->payloadlen <= 0 ? 0 : msg->payloadlen < 23 ? (size_t)msg->payloadlen : 23;
                uint64_t k;

                if (l) /* an empty marker (a hostile publisher): 0, never a marker we sent */
                        memcpy(num, msg->payload, l);
                num[l] = 0;
                k = strtoull(num, NULL, 10);
                pthread_mutex_lock(&ce->lock);
                if (k > ce->sync_seen && k <= ce->sync_sent)
                        ce->sync_seen = k;
                for (efilt *f = ce->filts; f; f = f->next)
                        if (f->state == 1 && f->sync && f->sync <= ce->sync_seen)
                                f->settled = true;
                if (ce->resync && ce->resync <= ce->sync_seen)
                        resync_end(ce);
                pthread_cond_broadcast(&ce->cond);
                pthread_mutex_unlock(&ce->lock);
                return;
        }
        cf = cluster_map_furi_of_topic(ce->o.prefix, msg->topic);
        if (!cf)
                return; /* not visible in the cluster scope */
        if (cluster_map_value_of(msg->payload, (size_t)msg->payloadlen, msg->retain, &v) < 0 ||
            cluster_map_mirror_of(cf, &mf) < 0)
                goto out;
        pthread_mutex_lock(&ce->lock);
        quickack(ce, m);
        for (efilt *f = ce->filts; f && !wanted; f = f->next)
                wanted = hyb_furi_match(cf, f->cpat);
        if (!wanted) {
                /* a filter dropped while its messages were on the way: kept, it would
                 * outlive the broker's value */
                pthread_mutex_unlock(&ce->lock);
                goto out;
        }
        if (msg->retain && ce->stale)
                (void)hyb_store_write(ce->stale, mf, hyb_obj_noobj(), 0, NULL); /* came again */
        if (msg->retain) {
                /* mirrored; a value equal to the mirrored one is news only to a settled
                 * filter (after a reconnection the broker sends every retained value again) */
                if (hyb_store_read(ce->mirror, mf, &cur, NULL) >= 0 && hyb_obj_equal(cur, v))
                        changed = false;
                else
                        (void)hyb_store_write(ce->mirror, mf, v, 0, NULL);
        }
        for (efilt *f = ce->filts; f; f = f->next) {
                bool mine = has_sid(props, f->sid, &any);
                if (!(any ? mine : hyb_furi_match(cf, f->cpat)))
                        continue;
                if (!f->settled && !changed)
                        continue;
                for (esub *s = ce->subs; s; s = s->next)
                        if (s->filt == f)
                                deliver(ce, s, cf, v, msg->retain,
                                        (size_t)msg->payloadlen + strlen(msg->topic) + 64);
        }
        pthread_cond_broadcast(&ce->cond); /* a node read may wait for this key */
        pthread_mutex_unlock(&ce->lock);
out:
        hyb_obj_unref(v);
        hyb_obj_unref(cur);
        hyb_furi_unref(cf);
        hyb_furi_unref(mf);
}

/* ---------------------------------------------------------------- the connection */

static int unavailable(cembed *ce, hyb_error *e, const char *why)
{
        return err_set(e, HYB_E_UNAVAILABLE, -1, "cannot reach the MQTT broker %s: %s",
                       ce->o.broker, why && *why ? why : "no answer");
}

/* A non-blocking connect to the broker, waited for until deadline: is it there? */
static int probe(cembed *ce, uint64_t deadline, hyb_error *e)
{
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
        char port[16];
        int fd, err = 0, r;
        socklen_t len = sizeof err;

        snprintf(port, sizeof port, "%d", ce->port);
        r = getaddrinfo(ce->host, port, &hints, &ai);
        if (r != 0)
                return unavailable(ce, e, gai_strerror(r));
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                r = -errno;
                freeaddrinfo(ai);
                return err_set(e, r, -1, "socket: %s", strerror(-r));
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
                err = errno;
        freeaddrinfo(ai);
        while (!err) {
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                uint64_t now = hyb_now_usec();
                if (now >= deadline) {
                        err = ETIMEDOUT;
                        break;
                }
                r = poll(&p, 1, (int)((deadline - now + 999) / 1000));
                if (r < 0 && errno != EINTR)
                        err = errno;
                else if (r > 0) {
                        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                                err = errno;
                        break;
                }
        }
        close(fd);
        return err ? unavailable(ce, e, strerror(err)) : 0;
}

/* Connects (the first time: probe, then libmosquitto's connect and its thread) and waits for
 * the CONNACK until deadline. */
static int ensure_connected(cembed *ce, uint64_t deadline, hyb_error *e)
{
        mosquitto_property *props = NULL;
        int rc, r;

        pthread_mutex_lock(&ce->lock);
        if (!ce->started) {
                ce->started = true;
                pthread_mutex_unlock(&ce->lock);
                r = probe(ce, deadline, e);
                if (r >= 0) {
                        rc = mosquitto_property_add_int32(&props, MQTT_PROP_MAXIMUM_PACKET_SIZE,
                                                          CLUSTER_MAX_VALUE_BYTES +
                                                                  CLUSTER_PACKET_ROOM);
                        if (rc == MOSQ_ERR_SUCCESS)
                                rc = mosquitto_connect_bind_v5(ce->mosq, ce->host, ce->port,
                                                               (int)ce->o.keepalive_s, NULL,
                                                               props);
                        mosquitto_property_free_all(&props);
                        if (rc != MOSQ_ERR_SUCCESS)
                                r = unavailable(ce, e, rc == MOSQ_ERR_ERRNO ? strerror(errno)
                                                                            : mosquitto_strerror(rc));
                }
                if (r >= 0 && mosquitto_loop_start(ce->mosq) != MOSQ_ERR_SUCCESS)
                        r = err_set(e, -ENOMEM, -1, "cannot start libmosquitto's thread");
                pthread_mutex_lock(&ce->lock);
                if (r < 0) {
                        ce->started = false; /* the next operation tries again */
                        pthread_mutex_unlock(&ce->lock);
                        return r;
                }
                ce->loop_running = true;
        }
        while (!ce->connected && wait_until(ce, deadline))
                ;
        r = ce->connected ? 0 : unavailable(ce, e, ce->why);
        pthread_mutex_unlock(&ce->lock);
        return r;
}

/* Publishes a marker; its number, or 0 when it could not be sent. */
static uint64_t sync_send(cembed *ce)
{
        char num[24];
        uint64_t k;
        int l;

        pthread_mutex_lock(&ce->lock);
        k = ++ce->sync_sent;
        pthread_mutex_unlock(&ce->lock);
        l = snprintf(num, sizeof num, "%" PRIu64, k);
        if (mosquitto_publish_v5(ce->mosq, NULL, ce->sync_topic, l, num, 1, false, NULL) !=
            MOSQ_ERR_SUCCESS)
                return 0;
        return k;
}

/* ---------------------------------------------------------------- filters */

static efilt *filt_find(cembed *ce, const char *filter)
{
        for (efilt *f = ce->filts; f; f = f->next)
                if (strcmp(f->filter, filter) == 0)
                        return f;
        return NULL;
}

/* The settled filter that covers asked, or NULL (under lock). */
static efilt *settled_filt(cembed *ce, const hyb_furi *asked)
{
        for (efilt *f = ce->filts; f; f = f->next)
                if (f->settled && hyb_furi_match(asked, f->cpat))
                        return f;
        return NULL;
}

static bool settled_cover(cembed *ce, const hyb_furi *asked)
{
        return settled_filt(ce, asked) != NULL;
}

/* The pattern a read or subscription of f asks for: f, or //a/# for a branch //a/. */
static int asked_of(const hyb_furi *f, hyb_furi **ret)
{
        char *t = NULL;
        int r;

        if (!hyb_furi_is_branch(f)) {
                *ret = hyb_furi_ref(f);
                return 0;
        }
        if (asprintf(&t, "//%s#", cluster_map_text(f)) < 0)
                return -ENOMEM;
        r = hyb_furi_parse(t, strlen(t), NULL, ret, NULL);
        free(t);
        return r;
}

static int purge_one(const hyb_furi *key, const hyb_obj *value, void *ud)
{
        cembed *ce = ud;

        for (efilt *f = ce->filts; f; f = f->next)
                if (hyb_furi_match(key, f->mpat))
                        return 0;
        (void)hyb_store_write(ce->mirror, key, hyb_obj_noobj(), 0, NULL);
        return 0;
}

/* Drops a user of f; the last one unsubscribes it and drops its values from the mirror. */
static void filt_release(cembed *ce, efilt *f)
{
        bool last;

        pthread_mutex_lock(&ce->lock);
        last = --f->users == 0;
        if (last) {
                for (efilt **pp = &ce->filts; *pp; pp = &(*pp)->next)
                        if (*pp == f) {
                                *pp = f->next;
                                break;
                        }
                (void)hyb_store_scan(ce->mirror, f->mpat, purge_one, ce, NULL);
        }
        pthread_mutex_unlock(&ce->lock);
        if (!last)
                return;
        /* also one never acknowledged: its SUBACK may still come */
        (void)mosquitto_unsubscribe(ce->mosq, NULL, f->filter);
        free(f->filter);
        hyb_furi_unref(f->cpat);
        hyb_furi_unref(f->mpat);
        free(f);
}

/*
 * Takes a user of the filter of asked (a new one subscribed), waits until it is settled or,
 * with node, until the mirror holds node, at most until deadline.  A filter granted by then
 * counts as settled from then on.  0 with *ret; HYB_E_CALLEE_TIMEOUT when the broker did not
 * acknowledge the SUBSCRIBE, HYB_E_FORBIDDEN when it refused it.
 */
static int replay_one(const hyb_furi *key, const hyb_obj *value, void *ud);

static int filt_acquire(cembed *ce, const hyb_furi *asked, const hyb_furi *node,
                        uint64_t deadline, esub *attach, bool replay, efilt **ret,
                        hyb_error *e)
{
        mosquitto_property *props = NULL;
        hyb_furi *mnode = NULL;
        char *filter = NULL, *t = NULL;
        efilt *f;
        bool fresh = false;
        int r, mid = 0, ack;

        r = cluster_map_topic(ce->o.prefix, asked, &filter, e);
        if (r < 0)
                return r;
        if (node && (r = cluster_map_mirror_of(node, &mnode)) < 0)
                goto out;
        pthread_mutex_lock(&ce->lock);
        f = filt_find(ce, filter);
        if (!f) {
                f = calloc(1, sizeof *f);
                if (!f || asprintf(&t, "//%s", filter + strlen(ce->o.prefix)) < 0 ||
                    hyb_furi_parse(t, strlen(t), NULL, &f->cpat, NULL) < 0 ||
                    cluster_map_mirror_of(f->cpat, &f->mpat) < 0) {
                        pthread_mutex_unlock(&ce->lock);
                        if (f) {
                                hyb_furi_unref(f->cpat);
                                free(f);
                        }
                        r = -ENOMEM;
                        goto out;
                }
                f->filter = filter;
                filter = NULL;
                f->sid = ce->next_sid++;
                if (ce->next_sid > MQTT_MAX_SUB_ID)
                        ce->next_sid = 1;
                f->next = ce->filts;
                ce->filts = f;
                fresh = true;
        }
        f->users++;
        pthread_mutex_unlock(&ce->lock);
        if (fresh) {
                uint64_t k;
                int rc = mosquitto_property_add_varint(&props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER,
                                                       f->sid);
                if (rc == MOSQ_ERR_SUCCESS)
                        rc = mosquitto_subscribe_v5(ce->mosq, &mid, f->filter, ce->o.qos,
                                                    MQTT_SUB_OPT_RETAIN_AS_PUBLISHED, props);
                mosquitto_property_free_all(&props);
                if (rc != MOSQ_ERR_SUCCESS) {
                        filt_release(ce, f);
                        r = err_set(e, rc == MOSQ_ERR_NO_CONN ? HYB_E_UNAVAILABLE : -EINVAL, -1,
                                    "cannot subscribe to %s: %s", t ? t : "?",
                                    mosquitto_strerror(rc));
                        goto out;
                }
                k = sync_send(ce);
                pthread_mutex_lock(&ce->lock);
                f->mid = mid;
                if (ack_take(ce, mid, &ack))
                        f->state = ack;
                f->sync = k;
                if (k && f->state == 1 && ce->sync_seen >= k)
                        f->settled = true;
                pthread_mutex_unlock(&ce->lock);
        }
        pthread_mutex_lock(&ce->lock);
        for (;;) {
                hyb_obj *v = NULL;
                if (f->settled || f->state < 0)
                        break;
                if (f->state == 1 && f->sync && ce->sync_seen >= f->sync) {
                        f->settled = true;
                        break;
                }
                if (mnode && f->state == 1 && hyb_store_read(ce->mirror, mnode, &v, NULL) >= 0 &&
                    !hyb_obj_is_noobj(v)) {
                        hyb_obj_unref(v);
                        break;
                }
                hyb_obj_unref(v);
                if (!wait_until(ce, deadline)) {
                        if (f->state == 1)
                                f->settled = true; /* no marker came: the deadline settles */
                        break;
                }
        }
        r = f->state;
        if (r == 1 && attach) {
                /* in the same hold of the lock: no message of the filter falls between */
                attach->filt = f;
                attach->next = ce->subs;
                ce->subs = attach;
                if (replay) {
                        void *a[2] = { ce, attach };
                        (void)hyb_store_scan(ce->mirror, f->mpat, replay_one, a, NULL);
                }
        }
        pthread_mutex_unlock(&ce->lock);
        if (r <= 0) {
                filt_release(ce, f);
                r = r < 0 ? err_set(e, HYB_E_FORBIDDEN, -1,
                                    "the MQTT broker refused the subscription to %s",
                                    hyb_furi_get_str(asked))
                          : err_set(e, HYB_E_CALLEE_TIMEOUT, -1,
                                    "the MQTT broker %s did not acknowledge the subscription to "
                                    "%s within %u ms", ce->o.broker, hyb_furi_get_str(asked),
                                    ce->o.read_timeout_ms);
                goto out;
        }
        *ret = f;
        r = 0;
out:
        free(filter);
        free(t);
        hyb_furi_unref(mnode);
        return r;
}

/* ---------------------------------------------------------------- the backend's ops */

static int check_cluster(const hyb_furi *f, hyb_error *e)
{
        if (hyb_furi_get_scope(f) != HYB_SCOPE_CLUSTER)
                return err_set(e, -EINVAL, -1, "%s is not a cluster-scope fURI",
                               hyb_furi_get_str(f));
        return 0;
}

static int keyed_page(cembed *ce, const hyb_furi *mpat, hyb_obj **ret, hyb_error *e)
{
        hyb_obj *items = NULL;
        hyb_furi *next = NULL;
        int r = hyb_store_read_page(ce->mirror, mpat, NULL,
                                    ce->o.mirror_max_keys ? ce->o.mirror_max_keys : 65536,
                                    &items, &next, e);
        if (r >= 0)
                r = cluster_map_remap_keys(items, ret);
        hyb_obj_unref(items);
        hyb_furi_unref(next);
        return r;
}

static int op_read(void *impl, const hyb_furi *target, unsigned flags, hyb_obj **ret,
                   hyb_error *e)
{
        cembed *ce = impl;
        uint64_t deadline = deadline_after(ce->o.read_timeout_ms);
        hyb_furi *asked = NULL, *mf = NULL;
        efilt *f = NULL;
        bool covered, pattern = hyb_furi_is_pattern(target) || hyb_furi_is_branch(target);
        int r;

        if ((r = check_cluster(target, e)) < 0)
                return r;
        if (hyb_furi_get_query(target))
                return err_set(e, -EINVAL, -1, "%s: a cluster fURI has no query here",
                               hyb_furi_get_str(target));
        r = asked_of(target, &asked);
        if (r >= 0)
                r = cluster_map_mirror_of(target, &mf);
        if (r >= 0)
                r = ensure_connected(ce, deadline_after(ce->timeout_ms), e);
        if (r < 0)
                goto out;
        pthread_mutex_lock(&ce->lock);
        /* a covered read is a user of the filter that covers it: dropped meanwhile by its
         * last other user, the filter would take its values out of the mirror under it */
        f = settled_filt(ce, asked);
        covered = f != NULL;
        if (f)
                f->users++;
        else if (ce->n_reads >= ce->o.max_pending_reads)
                r = err_set(e, HYB_E_TOO_MANY, -1,
                            "max_pending_reads (%u) reads already wait for the MQTT broker",
                            ce->o.max_pending_reads);
        else
                ce->n_reads++;
        pthread_mutex_unlock(&ce->lock);
        if (r < 0)
                goto out;
        if (covered) {
                /* what this backend wrote before is in the mirror once a marker is back */
                uint64_t k = sync_send(ce);
                pthread_mutex_lock(&ce->lock);
                while (k && ce->sync_seen < k && wait_until(ce, deadline))
                        ;
                pthread_mutex_unlock(&ce->lock);
        } else {
                r = filt_acquire(ce, asked, pattern ? NULL : target, deadline, NULL, false, &f, e);
                pthread_mutex_lock(&ce->lock);
                ce->n_reads--;
                pthread_mutex_unlock(&ce->lock);
                if (r < 0)
                        goto out;
        }
        if (hyb_furi_is_branch(target) || (pattern && (flags & HYB_READ_KEYED)))
                r = keyed_page(ce, mf, ret, e);
        else
                r = hyb_store_read(ce->mirror, mf, ret, e);
        if (f)
                filt_release(ce, f);
out:
        hyb_furi_unref(asked);
        hyb_furi_unref(mf);
        return r;
}

/* Publishes payload on the topic of target and waits for the broker's acknowledgement; when
 * a settled filter covers target, also for a marker (its copy is then in the mirror). */
static int publish(cembed *ce, const hyb_furi *target, const char *payload, size_t len,
                   bool retain, hyb_error *e)
{
        uint64_t deadline = deadline_after(ce->timeout_ms);
        char *topic = NULL;
        int r, rc, mid = 0, ack = 0;
        uint64_t k;
        bool covered;

        r = cluster_map_topic(ce->o.prefix, target, &topic, e);
        if (r >= 0)
                r = ensure_connected(ce, deadline, e);
        if (r < 0)
                goto out;
        /* under a settled filter the broker sends the write back to us: a marker published
         * right after it comes back after that copy, which the mirror then holds (a read
         * after the return sees the write) */
        pthread_mutex_lock(&ce->lock);
        covered = retain && settled_cover(ce, target);
        pthread_mutex_unlock(&ce->lock);
        rc = mosquitto_publish_v5(ce->mosq, &mid, topic, (int)len, payload, ce->o.qos, retain,
                                  NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
                r = err_set(e, rc == MOSQ_ERR_NO_CONN ? HYB_E_UNAVAILABLE : -EINVAL, -1,
                            "%s: cannot publish: %s", topic, mosquitto_strerror(rc));
                goto out;
        }
        k = covered ? sync_send(ce) : 0;
        pthread_mutex_lock(&ce->lock);
        if (ce->o.qos > 0) {
                while (!ack_take(ce, mid, &ack))
                        if (!wait_until(ce, deadline)) {
                                ack = HYB_E_CALLEE_TIMEOUT;
                                break;
                        }
        }
        while (ack >= 0 && k && ce->sync_seen < k && wait_until(ce, deadline))
                ;
        pthread_mutex_unlock(&ce->lock);
        if (ack == HYB_E_CALLEE_TIMEOUT) {
                r = err_set(e, ack, -1,
                            "%s: the MQTT broker %s did not acknowledge the publication within "
                            "%u ms", hyb_furi_get_str(target), ce->o.broker, ce->timeout_ms);
                goto out;
        }
        if (ack < 0)
                r = err_set(e, HYB_E_FORBIDDEN, -1, "%s: the MQTT broker refused the publication",
                            hyb_furi_get_str(target));
out:
        free(topic);
        return r;
}

static int single(const hyb_furi *target, hyb_error *e)
{
        int r = check_cluster(target, e);

        if (r >= 0 && (hyb_furi_is_pattern(target) || hyb_furi_is_branch(target)))
                r = err_set(e, -EINVAL, -1,
                            "%s: the cluster scope takes writes and deletes of single fURIs",
                            hyb_furi_get_str(target));
        return r;
}

static int op_write(void *impl, const hyb_furi *target, const hyb_obj *value, unsigned flags,
                    hyb_error *e)
{
        char *json = NULL;
        int r = single(target, e);

        if (r >= 0)
                r = cluster_map_payload_of(value, &json, e);
        /* no reader takes a message over the bound (cluster_map_value_of), this program
         * included: published, the write would succeed and never be seen */
        if (r >= 0 && strlen(json) > CLUSTER_MAX_VALUE_BYTES)
                r = err_set(e, HYB_E_LIMIT, -1,
                            "%s: a value of %zu bytes as JSON exceeds the cluster scope's "
                            "limit of %u", hyb_furi_get_str(target), strlen(json),
                            CLUSTER_MAX_VALUE_BYTES);
        if (r >= 0)
                r = publish(impl, target, json, strlen(json), !(flags & HYB_WRITE_TRANSIENT), e);
        hyb_free(json);
        return r;
}

static int op_del(void *impl, const hyb_furi *target, unsigned flags, hyb_error *e)
{
        int r = single(target, e);

        if (r >= 0 && (flags & HYB_WRITE_TRANSIENT))
                r = err_set(e, -EINVAL, -1, "%s: a transient delete means nothing in MQTT",
                            hyb_furi_get_str(target));
        if (r >= 0)
                r = publish(impl, target, "", 0, true, e);
        return r;
}

static int replay_one(const hyb_furi *key, const hyb_obj *value, void *ud)
{
        void **a = ud;
        cembed *ce = a[0];
        hyb_furi *cf = NULL;

        if (cluster_map_cluster_of(key, &cf) >= 0)
                deliver(ce, a[1], cf, value, true, 64);
        hyb_furi_unref(cf);
        return 0;
}

static int op_subscribe(void *impl, const hyb_furi *pattern, unsigned flags, hyb_store_msg_fn fn,
                        void *userdata, void **ret_cookie, hyb_error *e)
{
        cembed *ce = impl;
        hyb_furi *asked = NULL;
        efilt *f = NULL;
        esub *s;
        bool counted = false;
        int r = check_cluster(pattern, e);

        if (r < 0)
                return r;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->fn = fn;
        s->ud = userdata;
        s->refs = 1;
        pthread_mutex_lock(&ce->lock);
        if (ce->n_subs >= ce->max_subs)
                r = err_set(e, HYB_E_TOO_MANY, -1, "max_subscriptions (%u) cluster subscriptions "
                            "already", ce->max_subs);
        else
                counted = ++ce->n_subs; /* held while subscribing */
        pthread_mutex_unlock(&ce->lock);
        if (r >= 0)
                r = asked_of(pattern, &asked);
        if (r >= 0)
                r = ensure_connected(ce, deadline_after(ce->timeout_ms), e);
        if (r >= 0)
                r = filt_acquire(ce, asked, NULL, deadline_after(ce->o.read_timeout_ms), s,
                                 flags & HYB_SUBSCRIBE_REPLAY, &f, e);
        if (r < 0) {
                pthread_mutex_lock(&ce->lock);
                ce->n_subs -= counted;
                pthread_mutex_unlock(&ce->lock);
                free(s);
        } else
                *ret_cookie = s;
        hyb_furi_unref(asked);
        return r;
}

static void op_unsubscribe(void *impl, void *cookie)
{
        cembed *ce = impl;
        esub *s = cookie;
        efilt *f;

        pthread_mutex_lock(&ce->lock);
        for (esub **pp = &ce->subs; *pp; pp = &(*pp)->next)
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
        s->dead = true;
        ce->n_subs--;
        f = s->filt;
        sub_put(s);
        pthread_mutex_unlock(&ce->lock);
        filt_release(ce, f);
}

static int op_get_fd(void *impl)
{
        return ((cembed *)impl)->efd;
}

static int op_get_timeout(void *impl, uint64_t *ret_usec)
{
        cembed *ce = impl;

        pthread_mutex_lock(&ce->lock);
        *ret_usec = ce->head || ce->dropped > ce->dropped_told ? 0 : UINT64_MAX;
        pthread_mutex_unlock(&ce->lock);
        return 0;
}

static int op_process(void *impl)
{
        cembed *ce = impl;
        emsg *list, *m;
        uint64_t cnt;
        bool dropped;
        int r = 0;

        pthread_mutex_lock(&ce->lock);
        (void)!read(ce->efd, &cnt, sizeof cnt);
        list = ce->head;
        ce->head = NULL;
        ce->tail = &ce->head;
        ce->n_msgs = 0;
        ce->msg_bytes = 0;
        dropped = ce->dropped > ce->dropped_told;
        ce->dropped_told = ce->dropped;
        pthread_mutex_unlock(&ce->lock);
        while ((m = list)) {
                bool dead;
                list = m->next;
                pthread_mutex_lock(&ce->lock);
                dead = m->sub->dead;
                pthread_mutex_unlock(&ce->lock);
                if (!dead)
                        m->sub->fn(m->f, m->v, m->retain, m->sub->ud);
                pthread_mutex_lock(&ce->lock);
                sub_put(m->sub);
                pthread_mutex_unlock(&ce->lock);
                msg_free(m);
                r = 1;
        }
        /* messages were lost: the program did not keep up (max_pending_messages) */
        return dropped ? HYB_E_INSUFFICIENT_STORAGE : r;
}

static void cembed_free(cembed *ce)
{
        if (!ce)
                return;
        if (ce->mosq) {
                if (ce->loop_running) {
                        /* libmosquitto's thread ends once its DISCONNECT is out: waited for
                         * (its on_disconnect) at most timeout_ms, else the thread is
                         * cancelled; so it is when no session was up (a TLS handshake or a
                         * CONNACK that never came: a DISCONNECT cannot go out then, and a
                         * join would wait forever) */
                        bool clean = mosquitto_disconnect(ce->mosq) == MOSQ_ERR_SUCCESS;
                        uint64_t deadline = deadline_after(ce->timeout_ms);

                        pthread_mutex_lock(&ce->lock);
                        clean = clean && ce->connected;
                        while (clean && ce->connected && wait_until(ce, deadline))
                                ;
                        clean = clean && !ce->connected;
                        pthread_mutex_unlock(&ce->lock);
                        (void)mosquitto_loop_stop(ce->mosq, !clean);
                }
                mosquitto_destroy(ce->mosq);
        }
        while (ce->head) {
                emsg *m = ce->head;
                ce->head = m->next;
                sub_put(m->sub);
                msg_free(m);
        }
        while (ce->subs) {
                esub *s = ce->subs;
                ce->subs = s->next;
                free(s);
        }
        while (ce->filts) {
                efilt *f = ce->filts;
                ce->filts = f->next;
                free(f->filter);
                hyb_furi_unref(f->cpat);
                hyb_furi_unref(f->mpat);
                free(f);
        }
        hyb_store_unref(ce->mirror);
        hyb_store_unref(ce->stale);
        if (ce->efd >= 0)
                close(ce->efd);
        cluster_options_clear(&ce->o);
        if (ce->password)
                explicit_bzero(ce->password, strlen(ce->password));
        free(ce->password);
        free(ce->client_id);
        free(ce->sync_topic);
        free(ce->url);
        pthread_mutex_destroy(&ce->lock);
        pthread_cond_destroy(&ce->cond);
        free(ce);
}

static void op_destroy(void *impl)
{
        cembed_free(impl);
}

static const hyb_backend_vtable embed_ops = {
        .size = sizeof(hyb_backend_vtable),
        .read = op_read,
        .write = op_write,
        .del = op_del,
        .subscribe = op_subscribe,
        .unsubscribe = op_unsubscribe,
        .get_fd = op_get_fd,
        .get_timeout = op_get_timeout,
        .process = op_process,
        .destroy = op_destroy,
};

/* ---------------------------------------------------------------- the URL */

static int unhex(int c)
{
        return c >= '0' && c <= '9' ? c - '0'
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
}

/* A copy of s[0..n) with %XX decoded, or NULL (-EINVAL: a bad escape or a NUL). */
static char *decode(const char *s, size_t n)
{
        char *d = malloc(n + 1), *o = d;

        if (!d)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%' && i + 2 < n && unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
                        *o = (char)(unhex(s[i + 1]) * 16 + unhex(s[i + 2]));
                        i += 2;
                        if (!*o) {
                                free(d);
                                return NULL;
                        }
                        o++;
                } else if (s[i] == '%') {
                        free(d);
                        return NULL;
                } else
                        *o++ = s[i];
        }
        *o = 0;
        return d;
}

static int set_u32(uint32_t *dst, const char *key, const char *v, uint32_t min, uint32_t max,
                   hyb_error *e)
{
        char *end;
        unsigned long long x;

        errno = 0;
        x = strtoull(v, &end, 10);
        if (!*v || *end || errno || x < min || x > max)
                return err_set(e, -EINVAL, -1, "cluster URL: %s must be a number from %u to %u, "
                               "not '%s'", key, min, max, v);
        *dst = (uint32_t)x;
        return 0;
}

/* Parses the query of the URL (key=value&...) into ce. */
static int parse_query(cembed *ce, const char *q, hyb_error *e)
{
        static const char *const strs[] = { "prefix", "client_id", "username", "password_file",
                                            "ca_file", "cert_file", "key_file" };
        int r = 0;

        while (r >= 0 && q && *q) {
                const char *amp = strchr(q, '&'), *eq;
                size_t n = amp ? (size_t)(amp - q) : strlen(q);
                char *key, *val = NULL;
                uint32_t qos = 0;

                eq = memchr(q, '=', n);
                if (!eq)
                        return err_set(e, -EINVAL, -1, "cluster URL: '%.*s' is not key=value",
                                       (int)n, q);
                key = decode(q, (size_t)(eq - q));
                val = decode(eq + 1, n - (size_t)(eq + 1 - q));
                if (!key || !val) {
                        r = err_set(e, -EINVAL, -1, "cluster URL: a bad %%-escape in '%.*s'",
                                    (int)n, q);
                        goto next;
                }
                r = -ENOENT;
                for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
                        if (strcmp(key, strs[i]) == 0) {
                                char **dst[] = { &ce->o.prefix, &ce->o.client_id, &ce->o.username,
                                                 &ce->o.password_file, &ce->o.ca_file,
                                                 &ce->o.cert_file, &ce->o.key_file };
                                free(*dst[i]);
                                *dst[i] = val;
                                val = NULL;
                                r = 0;
                        }
                if (r != -ENOENT)
                        goto next;
                if (strcmp(key, "qos") == 0) {
                        r = set_u32(&qos, key, val, 0, 1, e);
                        ce->o.qos = (int)qos;
                } else if (strcmp(key, "keepalive_s") == 0)
                        r = set_u32(&ce->o.keepalive_s, key, val, 5, 65535, e);
                else if (strcmp(key, "read_timeout_ms") == 0)
                        r = set_u32(&ce->o.read_timeout_ms, key, val, 1, 600000, e);
                else if (strcmp(key, "timeout_ms") == 0)
                        r = set_u32(&ce->timeout_ms, key, val, 1, 600000, e);
                else if (strcmp(key, "mirror_max_keys") == 0)
                        r = set_u32(&ce->o.mirror_max_keys, key, val, 1, UINT32_MAX, e);
                else if (strcmp(key, "max_pending_reads") == 0)
                        r = set_u32(&ce->o.max_pending_reads, key, val, 1, UINT32_MAX, e);
                else if (strcmp(key, "max_subscriptions") == 0)
                        r = set_u32(&ce->max_subs, key, val, 1, UINT32_MAX, e);
                else if (strcmp(key, "max_pending_messages") == 0)
                        r = set_u32(&ce->max_pending, key, val, 1, UINT32_MAX, e);
                else
                        r = err_set(e, -EINVAL, -1, "cluster URL: unknown option '%s'", key);
next:
                free(key);
                free(val);
                q = amp ? amp + 1 : NULL;
        }
        return r;
}

HYB_EXPORT int hyb_cluster_backend_new(const char *url, hyb_backend **ret, hyb_error *reterr)
{
        hyb_store_options so;
        cembed *ce;
        const char *q;
        pthread_condattr_t ca;
        uint32_t rnd = 0;
        int r, rc;

        hyb_assert_return(ret, -EINVAL);
        if (!url) {
                url = secure_getenv("HYBRID_CLUSTER");
                if (!url || !*url)
                        return err_set(reterr, HYB_E_SCOPE, -1,
                                       "no MQTT broker named for the cluster scope: set "
                                       "$HYBRID_CLUSTER=mqtt://HOST:PORT");
        }
        (void)pthread_once(&lib_once, lib_init);
        ce = calloc(1, sizeof *ce);
        if (!ce)
                return -ENOMEM;
        pthread_mutex_init(&ce->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&ce->cond, &ca);
        pthread_condattr_destroy(&ca);
        ce->efd = -1;
        ce->tail = &ce->head;
        ce->next_sid = 1;
        cluster_options_init(&ce->o);
        ce->timeout_ms = EMBED_DEFAULT_TIMEOUT_MS;
        ce->max_subs = EMBED_DEFAULT_MAX_SUBSCRIPTIONS;
        ce->max_pending = EMBED_DEFAULT_MAX_PENDING;
        q = strchr(url, '?');
        ce->url = strdup(url);
        ce->o.broker = q ? strndup(url, (size_t)(q - url)) : strdup(url);
        if (!ce->url || !ce->o.broker) {
                r = -ENOMEM;
                goto fail;
        }
        if (cluster_parse_url(ce->o.broker, ce->host, sizeof ce->host, &ce->port, &ce->tls) < 0) {
                r = err_set(reterr, -EINVAL, -1,
                            "cluster URL: expected mqtt://HOST[:PORT][?OPTIONS] or "
                            "mqtts://HOST[:PORT][?OPTIONS], got '%s'", url);
                goto fail;
        }
        r = parse_query(ce, q ? q + 1 : NULL, reterr);
        if (r < 0)
                goto fail;
        if (!ce->o.prefix && !(ce->o.prefix = strdup(""))) {
                r = -ENOMEM;
                goto fail;
        }
        if (mosquitto_pub_topic_check(ce->o.prefix[0] ? ce->o.prefix : "x") != MOSQ_ERR_SUCCESS) {
                r = err_set(reterr, -EINVAL, -1, "cluster URL: prefix '%s' has + or #",
                            ce->o.prefix);
                goto fail;
        }
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
                rnd = (uint32_t)hyb_now_usec();
        if (ce->o.client_id)
                ce->client_id = strdup(ce->o.client_id);
        else if (asprintf(&ce->client_id, "hybrid-e%ld-%08" PRIx32, (long)getpid(), rnd) < 0)
                ce->client_id = NULL;
        if (!ce->client_id || asprintf(&ce->sync_topic, "%s_hybrid/sync/%s", ce->o.prefix,
                                       ce->client_id) < 0) {
                ce->sync_topic = NULL;
                r = -ENOMEM;
                goto fail;
        }
        if (mosquitto_pub_topic_check(ce->sync_topic) != MOSQ_ERR_SUCCESS) {
                r = err_set(reterr, -EINVAL, -1, "cluster URL: client_id '%s' has + or #",
                            ce->client_id);
                goto fail;
        }
        if (ce->o.password_file &&
            (r = cluster_read_password(ce->o.password_file, "cluster URL: password_file",
                                       &ce->password, reterr)) < 0)
                goto fail;
        hyb_store_options_init(&so);
        so.durability = HYB_DURABILITY_MEMORY;
        so.max_keys = ce->o.mirror_max_keys;
        r = hyb_store_open(NULL, &so, &ce->mirror, reterr);
        if (r < 0)
                goto fail;
        ce->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ce->mosq = mosquitto_new(ce->client_id, true, ce);
        if (ce->efd < 0 || !ce->mosq) {
                r = -ENOMEM;
                goto fail;
        }
        mosquitto_int_option(ce->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
        mosquitto_int_option(ce->mosq, MOSQ_OPT_TCP_NODELAY, 1);
        (void)mosquitto_reconnect_delay_set(ce->mosq, 1, 2, false);
        if (ce->o.username || ce->password) {
                rc = mosquitto_username_pw_set(ce->mosq, ce->o.username, ce->password);
                if (rc != MOSQ_ERR_SUCCESS) {
                        r = err_set(reterr, -EINVAL, -1, "cluster URL: username: %s",
                                    mosquitto_strerror(rc));
                        goto fail;
                }
        }
        if (ce->tls) {
                rc = mosquitto_tls_set(ce->mosq, ce->o.ca_file,
                                       ce->o.ca_file ? NULL : "/etc/ssl/certs", ce->o.cert_file,
                                       ce->o.key_file, NULL);
                if (rc != MOSQ_ERR_SUCCESS) {
                        r = err_set(reterr, -EINVAL, -1,
                                    "cluster URL: the TLS files (ca_file, cert_file, key_file) "
                                    "are refused: %s", mosquitto_strerror(rc));
                        goto fail;
                }
        }
        mosquitto_connect_v5_callback_set(ce->mosq, on_connect);
        mosquitto_disconnect_v5_callback_set(ce->mosq, on_disconnect);
        mosquitto_subscribe_v5_callback_set(ce->mosq, on_subscribe);
        mosquitto_publish_v5_callback_set(ce->mosq, on_publish);
        mosquitto_unsubscribe_callback_set(ce->mosq, on_unsubscribe);
        mosquitto_message_v5_callback_set(ce->mosq, on_message);
        r = hyb_backend_new(&embed_ops, ce, ret);
        if (r < 0)
                goto fail;
        return 0;
fail:
        cembed_free(ce);
        return r;
}
