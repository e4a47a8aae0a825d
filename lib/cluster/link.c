/* SPDX-License-Identifier: MIT */
/*
 * The daemon's MQTT link (link.h): one libmosquitto client driven from a libevent loop.
 *
 *   cluster_link
 *    |- mosq                 libmosquitto client (MQTT 5, clean start off)
 *    |- rd, wr, misc         the socket's read/write events, the 1 s housekeeping timer
 *    |- retry, probe         backoff timer, the non-blocking connect probe
 *    |- handlers[]           topic prefix -> message fn
 *    |- subs: lsub -> ...    filter, count, mid of its SUBSCRIBE, waiters for its SUBACK,
 *    |                       its subscription identifier (one copy per message, below)
 *    |- pubs: pubop -> ...   mid of a QoS 1 PUBLISH -> done fn (PUBACK)
 *    |- next_seq, dedupe     the "seq" property of what it publishes, and what it received
 *    |                       (dedupe.h: QoS 1 redeliveries are taken once)
 *    |- deferred             done calls that run from the loop, not from inside a call
 *    `- more, flush          publications held for the end of the caller's turn
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mqtt_protocol.h>

#include "cluster/dedupe.h"
#include "cluster/link.h"
#include "common/util.h"
#include "hybrid/log.h"
#include "token/crypto.h"

/* Packets read from the broker in one loop turn at most (the rest: the next turn). */
#define CLUSTER_READ_BURST 64

/* The largest MQTT 5 subscription identifier (a variable byte integer). */
#define MQTT_MAX_SUB_ID 268435455u

struct handler {
        char *prefix;
        size_t len;
        cluster_msg_fn fn;
        void *ud;
};

struct statefn {
        cluster_state_fn fn;
        void *ud;
};

struct waiter {
        struct waiter *next;
        cluster_done_fn fn;
        void *ud;
        int r;
};

struct lsub {
        struct lsub *next;
        char *filter;
        size_t head;    /* filter_head(filter) */
        int qos;
        unsigned n;
        int mid;        /* of the SUBSCRIBE in flight; 0: none */
        uint32_t sid;   /* its MQTT 5 subscription identifier */
        bool acked;
        bool live;      /* the broker granted it on this connection (or kept it) */
        int state;      /* 0: no SUBACK yet, 1: granted, -EACCES: refused */
        struct waiter *waiters;
};

struct pubop {
        struct pubop *next;
        int mid;
        size_t len; /* counted in out_bytes until the broker has it */
        cluster_done_fn fn;
        void *ud;
};

struct cluster_link {
        struct event_base *base;
        cluster_options o;
        char host[256];
        int port;
        bool tls;
        char *client_id;
        char *password;
        bool wiped;     /* the session of an earlier run of the daemon is gone */
        struct mosquitto *mosq;
        struct event *rd, *wr, *misc, *retry, *probe, *defer, *flush;
        int probe_fd;
        struct sockaddr_storage addr;
        socklen_t addr_len;
        bool connected, socket_up, lost_pending;
        bool in_turn;   /* on_read is handling what it read */
        bool more;      /* cluster_link_more: the next publication waits for the flush event */
        unsigned out_n; /* packets queued since the last write (a PUBLISH, a PUBACK) */
        uint64_t msgs_in; /* messages libmosquitto handed over */
        unsigned backoff_ms;
        uint64_t connects;
        uint32_t next_sid;
        uint32_t max_packet; /* CONNECT's Maximum Packet Size; 0: none */
        bool sid_ok;    /* the broker takes subscription identifiers */
        struct handler *handlers;
        size_t n_handlers;
        struct statefn *states;
        size_t n_states;
        struct lsub *subs;
        struct pubop *pubs;
        size_t out_bytes; /* payload bytes published and not yet acknowledged (QoS 0: sent) */
        uint64_t next_seq; /* the next publication's number (dedupe.h) */
        cluster_dedupe *dedupe;
        uint8_t *seq_key; /* cluster_link_set_seq_key: the "seq" property's MAC key, or NULL */
        size_t seq_key_len;
        uint64_t dups;  /* redeliveries dropped */
        bool msg_seen;  /* the message being dispatched is a retained one that came before */
        struct waiter *deferred, **deferred_tail;
        cluster_log_fn log;
        cluster_log_wanted_fn log_wanted;
        cluster_turn_fn turn;
        void *turn_ud;
        bool lib_log;   /* libmosquitto has our log callback */
        void *log_ud;
};

static void attempt(cluster_link *l);
static void wipe_session(cluster_link *l);
static void cb_log(struct mosquitto *m, void *ud, int level, const char *str);

/* libmosquitto formats a line for every packet while it has a log callback: given only
 * while its lines (debug) can reach a log. */
static void update_lib_log(cluster_link *l)
{
        bool want = l->log && (!l->log_wanted || l->log_wanted(HYB_LOG_DEBUG, l->log_ud));

        if (want != l->lib_log) {
                mosquitto_log_callback_set(l->mosq, want ? cb_log : NULL);
                l->lib_log = want;
        }
}

static void logf_(cluster_link *l, int level, const char *fmt, ...) _printf_(3, 4);
static void logf_(cluster_link *l, int level, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        if (!l->log)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        l->log(level, msg, l->log_ud);
}

/* ---------------------------------------------------------------- deferred done calls */

static void defer_done(cluster_link *l, cluster_done_fn fn, void *ud, int r)
{
        struct waiter *w;

        if (!fn)
                return;
        w = calloc(1, sizeof *w);
        if (!w) {
                fn(l, r, ud); /* out of memory: at once rather than never */
                return;
        }
        w->fn = fn;
        w->ud = ud;
        w->r = r;
        *l->deferred_tail = w;
        l->deferred_tail = &w->next;
        event_active(l->defer, EV_TIMEOUT, 0);
}

static void run_deferred(evutil_socket_t fd, short what, void *ud)
{
        cluster_link *l = ud;
        struct waiter *w = l->deferred;

        l->deferred = NULL;
        l->deferred_tail = &l->deferred;
        while (w) {
                struct waiter *n = w->next;
                w->fn(l, w->r, w->ud);
                free(w);
                w = n;
        }
}

/* ---------------------------------------------------------------- socket events */

static void update_write(cluster_link *l)
{
        if (l->socket_up && l->wr && mosquitto_want_write(l->mosq) && !event_pending(l->wr, EV_WRITE, NULL))
                event_add(l->wr, NULL);
}

/*
 * libmosquitto runs in its "threaded" mode (set at creation, no thread of its own): what it
 * sends is queued, never written from inside its calls.  So a message read from the broker
 * is delivered to the daemon's peers before its PUBACK is written (as a plain libmosquitto
 * client with its own loop thread does), and the link writes what was queued here: at once
 * outside a turn of reading (a publication leaves in the call that made it), at the end of
 * the turn otherwise.  A write that fails is left to on_write, from the loop.
 */
static void flush_out(cluster_link *l)
{
        bool cork;
        int fd, on = 1, off = 0, rc;

        if (!l->socket_up || !l->wr || l->in_turn)
                return;
        cork = l->out_n >= 2;
        l->out_n = 0;
        if (!mosquitto_want_write(l->mosq) || event_pending(l->wr, EV_WRITE, NULL)) {
                update_write(l);
                return;
        }
        /* libmosquitto writes each packet with a write of its own: with TCP_NODELAY each
         * would be a TCP segment of its own, each a wake-up and a receive for the broker
         * (and an ACK back).  Several queued (a burst's PUBACKs, a batch of publications)
         * leave corked, in as few segments as they fit; one alone leaves as it is, at
         * once (no two more system calls for it). */
        fd = mosquitto_socket(l->mosq);
        if (cork && setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on) < 0)
                cork = false;
        rc = mosquitto_loop_write(l->mosq, 1);
        l->out_n = 0; /* a QoS 0 publication's "published" comes from this write */
        if (cork)
                (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
        if (rc != MOSQ_ERR_SUCCESS) {
                event_active(l->wr, EV_WRITE, 0);
                return;
        }
        update_write(l);
}

/* The flush event: what cluster_link_more held back in this loop turn. */
static void on_flush(evutil_socket_t fd, short what, void *ud)
{
        flush_out(ud);
}

static void schedule_retry(cluster_link *l)
{
        struct timeval tv = { l->backoff_ms / 1000, (l->backoff_ms % 1000) * 1000 };

        evtimer_add(l->retry, &tv);
        l->backoff_ms = l->backoff_ms * 2 > CLUSTER_BACKOFF_MAX_MS ? CLUSTER_BACKOFF_MAX_MS
                                                                    : l->backoff_ms * 2;
}

/* The connection is gone (a read/write error, the keepalive, a refused CONNACK). */
static void lost(cluster_link *l, int rc)
{
        bool was = l->connected;

        l->lost_pending = false;
        if (!l->socket_up)
                return;
        l->socket_up = false;
        l->connected = false;
        if (l->rd)
                event_free(l->rd);
        if (l->wr)
                event_free(l->wr);
        l->rd = l->wr = NULL;
        evtimer_del(l->misc);
        for (struct lsub *s = l->subs; s; s = s->next)
                s->mid = 0;
        logf_(l, was ? HYB_LOG_WARNING : HYB_LOG_INFO, "cluster: connection to %s lost: %s",
              l->o.broker, mosquitto_strerror(rc));
        if (was)
                for (size_t i = 0; i < l->n_states; i++)
                        l->states[i].fn(l, false, false, l->states[i].ud);
        schedule_retry(l);
}

static void turn(cluster_link *l, bool begin)
{
        if (l->turn)
                l->turn(l, begin, l->turn_ud);
}

/*
 * What the socket has, in one loop turn: libmosquitto's loop_read reads one packet when
 * nothing of ours waits for an acknowledgement (a subscriber's case), so after a message the
 * link asks again until the socket would block (at most CLUSTER_READ_BURST packets; the rest
 * on the next turn), then runs the done calls those packets made due (PUBACKs, SUBACKs), all
 * between the turn hooks: what the daemon sends its peers meanwhile leaves together.
 */
static void on_read(evutil_socket_t fd, short what, void *ud)
{
        cluster_link *l = ud;
        int rc = MOSQ_ERR_SUCCESS;

        l->in_turn = true;
        turn(l, true);
        for (int i = 0; i < CLUSTER_READ_BURST; i++) {
                uint64_t msgs = l->msgs_in;

                errno = 0;
                rc = mosquitto_loop_read(l->mosq, 1);
                /* again only after a message: libmosquitto reads as many packets as it
                 * waits acknowledgements for, so after those (or a would-block, or any
                 * other packet) there is nothing to expect */
                if (rc != MOSQ_ERR_SUCCESS || l->lost_pending || errno == EAGAIN ||
                    errno == EWOULDBLOCK || l->msgs_in == msgs)
                        break;
        }
        if (rc == MOSQ_ERR_SUCCESS && !l->lost_pending && l->deferred)
                run_deferred(-1, 0, l);
        turn(l, false);
        l->in_turn = false;
        if (rc != MOSQ_ERR_SUCCESS || l->lost_pending) {
                lost(l, rc ? rc : MOSQ_ERR_CONN_LOST);
                return;
        }
        flush_out(l); /* the PUBACKs of what was read, what the done calls published */
}

static void on_write(evutil_socket_t fd, short what, void *ud)
{
        cluster_link *l = ud;
        int rc = mosquitto_loop_write(l->mosq, 64);

        if (rc != MOSQ_ERR_SUCCESS || l->lost_pending) {
                lost(l, rc ? rc : MOSQ_ERR_CONN_LOST);
                return;
        }
        update_write(l);
}

static void on_misc(evutil_socket_t fd, short what, void *ud)
{
        cluster_link *l = ud;
        int rc;

        update_lib_log(l);
        rc = mosquitto_loop_misc(l->mosq);

        if (rc != MOSQ_ERR_SUCCESS || l->lost_pending) {
                lost(l, rc ? rc : MOSQ_ERR_KEEPALIVE);
                return;
        }
        flush_out(l);
}

/* The probe got through: libmosquitto's own (blocking, but now quick) connect. */
static void do_connect(cluster_link *l)
{
        mosquitto_property *props = NULL;
        struct timeval sec = { 1, 0 };
        int rc, fd, fl;

        if (!l->wiped)
                wipe_session(l);
        update_lib_log(l);
        rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                          l->o.session_expiry_s);
        if (rc == MOSQ_ERR_SUCCESS && l->max_packet)
                rc = mosquitto_property_add_int32(&props, MQTT_PROP_MAXIMUM_PACKET_SIZE, l->max_packet);
        if (rc == MOSQ_ERR_SUCCESS)
                rc = mosquitto_connect_bind_v5(l->mosq, l->host, l->port, (int)l->o.keepalive_s,
                                               NULL, props);
        mosquitto_property_free_all(&props);
        if (rc != MOSQ_ERR_SUCCESS) {
                logf_(l, HYB_LOG_INFO, "cluster: cannot connect to %s: %s", l->o.broker,
                      rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
                schedule_retry(l);
                return;
        }
        fd = mosquitto_socket(l->mosq);
        fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        l->rd = event_new(l->base, fd, EV_READ | EV_PERSIST, on_read, l);
        l->wr = event_new(l->base, fd, EV_WRITE, on_write, l);
        l->socket_up = true;
        if (!l->rd || !l->wr || event_add(l->rd, NULL) < 0) {
                lost(l, MOSQ_ERR_NOMEM);
                return;
        }
        evtimer_add(l->misc, &sec);
        flush_out(l); /* the CONNECT */
}

static void probe_done(evutil_socket_t fd, short what, void *ud)
{
        cluster_link *l = ud;
        int err = ETIMEDOUT;
        socklen_t len = sizeof err;

        if (what & EV_WRITE) {
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
        }
        event_free(l->probe);
        l->probe = NULL;
        close(l->probe_fd);
        l->probe_fd = -1;
        if (err) {
                logf_(l, HYB_LOG_DEBUG, "cluster: broker %s unreachable: %s", l->o.broker,
                      strerror(err));
                schedule_retry(l);
                return;
        }
        do_connect(l);
}

/* A non-blocking connect to the broker's address: is it there? */
static void attempt(cluster_link *l)
{
        struct timeval tv = { CLUSTER_BACKOFF_MAX_MS / 1000 + 1, 0 };
        int fd;

        if (l->socket_up || l->probe)
                return;
        fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                schedule_retry(l);
                return;
        }
        if (connect(fd, (struct sockaddr *)&l->addr, l->addr_len) < 0 && errno != EINPROGRESS) {
                logf_(l, HYB_LOG_DEBUG, "cluster: broker %s unreachable: %m", l->o.broker);
                close(fd);
                schedule_retry(l);
                return;
        }
        l->probe_fd = fd;
        l->probe = event_new(l->base, fd, EV_WRITE, probe_done, l);
        if (!l->probe || event_add(l->probe, &tv) < 0) {
                if (l->probe)
                        event_free(l->probe);
                l->probe = NULL;
                close(fd);
                l->probe_fd = -1;
                schedule_retry(l);
        }
}

static void on_retry(evutil_socket_t fd, short what, void *ud)
{
        attempt(ud);
}

/* ---------------------------------------------------------------- libmosquitto callbacks */

static void send_subscribe(cluster_link *l, struct lsub *s)
{
        mosquitto_property *props = NULL;
        int rc = MOSQ_ERR_SUCCESS;

        s->live = false;
        if (l->sid_ok)
                rc = mosquitto_property_add_varint(&props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, s->sid);
        if (rc == MOSQ_ERR_SUCCESS)
                rc = mosquitto_subscribe_v5(l->mosq, &s->mid, s->filter, s->qos,
                                            MQTT_SUB_OPT_RETAIN_AS_PUBLISHED, props);
        mosquitto_property_free_all(&props);
        if (rc != MOSQ_ERR_SUCCESS) {
                s->mid = 0;
                logf_(l, HYB_LOG_WARNING, "cluster: cannot subscribe %s: %s", s->filter,
                      mosquitto_strerror(rc));
        }
}

static void cb_connect(struct mosquitto *m, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
        cluster_link *l = ud;
        bool session = flags & 1;

        if (rc != 0) {
                logf_(l, HYB_LOG_ERROR, "cluster: broker %s refused the connection: %s",
                      l->o.broker, mosquitto_reason_string(rc));
                l->lost_pending = true;
                return;
        }
        uint8_t sid_avail = 1;
        (void)mosquitto_property_read_byte(props, MQTT_PROP_SUBSCRIPTION_ID_AVAILABLE, &sid_avail,
                                           false);
        if (!sid_avail && l->sid_ok)
                logf_(l, HYB_LOG_WARNING, "cluster: broker %s takes no subscription identifiers: "
                      "a message matching several filters of this host counts once per filter",
                      l->o.broker);
        l->sid_ok = sid_avail != 0;
        l->connected = true;
        l->backoff_ms = CLUSTER_BACKOFF_FIRST_MS;
        l->connects++;
        logf_(l, HYB_LOG_INFO, "cluster: connected to %s as %s (session %s)", l->o.broker,
              l->client_id, session ? "kept" : "new");
        /* A new session has no subscriptions: all are made again (the retained values come
         * again, which resynchronises a mirror).  A kept session has those the broker
         * acknowledged, and sends what was published meanwhile: only the others. */
        for (struct lsub *s = l->subs; s; s = s->next)
                if (!session || !s->acked)
                        send_subscribe(l, s);
        for (size_t i = 0; i < l->n_states; i++)
                l->states[i].fn(l, true, session, l->states[i].ud);
}

static void cb_disconnect(struct mosquitto *m, void *ud, int rc, const mosquitto_property *p)
{
        cluster_link *l = ud;

        l->lost_pending = true;
}

static void cb_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
        cluster_link *l = ud;

        for (struct lsub *s = l->subs; s; s = s->next) {
                struct waiter *w;
                int r;

                if (s->mid != mid)
                        continue;
                s->mid = 0;
                r = n > 0 && granted[0] < 0x80 ? 0 : -EACCES;
                if (r < 0)
                        logf_(l, HYB_LOG_WARNING, "cluster: broker refused subscription %s",
                              s->filter);
                s->acked = r == 0;
                s->live = r == 0;
                s->state = r == 0 ? 1 : r;
                w = s->waiters;
                s->waiters = NULL;
                while (w) {
                        struct waiter *nx = w->next;
                        defer_done(l, w->fn, w->ud, r);
                        free(w);
                        w = nx;
                }
                return;
        }
}

static void cb_publish(struct mosquitto *m, void *ud, int mid, int reason,
                       const mosquitto_property *props)
{
        cluster_link *l = ud;

        for (struct pubop **pp = &l->pubs; *pp; pp = &(*pp)->next) {
                struct pubop *p = *pp;

                if (p->mid != mid)
                        continue;
                *pp = p->next;
                l->out_bytes -= p->len;
                l->out_n++; /* the PUBACK may release a publication libmosquitto held back
                             * (its send maximum): written at the end of the turn */
                if (p->fn)
                        defer_done(l, p->fn, p->ud, reason >= 0x80 ? -EIO : 0);
                free(p);
                return;
        }
}

/*
 * A broker sends a message once per subscription of this client that matches it (mosquitto
 * does), each copy with the identifier of its subscription (or one copy with several).  Of
 * these copies only the one of the oldest granted subscription matching the topic counts:
 * a call, an event or a transient value would otherwise be taken twice.  True for a copy
 * to take.
 */
/* The length of the literal start of a filter that every topic it matches begins with: up
 * to its first wildcard, less the '/' before a '#' ("a/#" matches "a" too). */
static size_t filter_head(const char *filter)
{
        size_t n = strcspn(filter, "+#");

        if (filter[n] == '#' && n > 0 && filter[n - 1] == '/')
                n--;
        return n;
}

static bool first_copy(cluster_link *l, const char *topic, const mosquitto_property *props)
{
        const mosquitto_property *p;
        struct lsub *first = NULL;
        uint32_t id;
        bool any = false;

        if (!l->sid_ok)
                return true;
        for (struct lsub *s = l->subs; s; s = s->next) {
                bool match = false;
                /* the literal start first: most filters (the link's own _hybrid/ ones)
                 * differ there, for a fraction of mosquitto_topic_matches_sub's cost */
                if (s->live && (!first || s->sid < first->sid) &&
                    strncmp(topic, s->filter, s->head) == 0 &&
                    mosquitto_topic_matches_sub(s->filter, topic, &match) == MOSQ_ERR_SUCCESS && match)
                        first = s;
        }
        for (p = mosquitto_property_read_varint(props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &id, false); p;
             p = mosquitto_property_read_varint(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, &id, true)) {
                any = true;
                if (first && id == first->sid)
                        return true;
        }
        /* no identifier (a broker that sends none), or no granted filter matching: taken */
        return !any || !first;
}

#define SEQ_MAC_LEN 16
/* The MAC of a "seq" property (cluster_link_set_seq_key), its property "seq-mac": the first
 * SEQ_MAC_LEN bytes of HMAC-SHA256(key, "hybrid-seq-1" NUL seq NUL topic NUL payload), in
 * lower-case hex, into hex[2 * SEQ_MAC_LEN + 1]. */
static int seq_mac(const cluster_link *l, const char *seq, const char *topic, const void *payload,
                   size_t len, char *hex)
{
        static const char prefix[] = "hybrid-seq-1";
        static const char digits[] = "0123456789abcdef";
        uint8_t out[CRYPTO_SHA256_LEN];
        const void *parts[] = { prefix, seq, topic, payload ? payload : "" };
        size_t lens[] = { sizeof prefix, strlen(seq) + 1, strlen(topic) + 1, payload ? len : 0 };
        int r = crypto_hmac_sha256_parts(l->seq_key, l->seq_key_len, parts, lens, 4, out);

        if (r < 0)
                return r;
        for (size_t i = 0; i < SEQ_MAC_LEN; i++) {
                hex[2 * i] = digits[out[i] >> 4];
                hex[2 * i + 1] = digits[out[i] & 15];
        }
        hex[2 * SEQ_MAC_LEN] = 0;
        return 0;
}

/* The verdict of dedupe.h on a message's "seq" user property (CLUSTER_SEQ_UNKNOWN
 * without one: a plain MQTT client's message; with a key, also without a "seq-mac" that
 * verifies: a client of the broker without the key numbers nothing).  The first of each
 * property counts. */
static int seq_check(cluster_link *l, const struct mosquitto_message *msg,
                     const mosquitto_property *props, bool live)
{
        char *name = NULL, *value = NULL, *seq = NULL, *mac = NULL;
        int v = CLUSTER_SEQ_UNKNOWN;
        uint64_t n;
        const char *origin;
        size_t len;

        for (const mosquitto_property *p = mosquitto_property_read_string_pair(
                     props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
             p; p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true)) {
                if (!seq && strcmp(name, CLUSTER_SEQ_PROPERTY) == 0) {
                        seq = value;
                        value = NULL;
                } else if (!mac && l->seq_key && strcmp(name, CLUSTER_SEQ_MAC_PROPERTY) == 0) {
                        mac = value;
                        value = NULL;
                }
                free(name);
                free(value);
                name = value = NULL;
                if (seq && (mac || !l->seq_key))
                        break;
        }
        if (seq && l->seq_key) {
                char want[2 * SEQ_MAC_LEN + 1];

                if (!mac || strlen(mac) != 2 * SEQ_MAC_LEN ||
                    seq_mac(l, seq, msg->topic, msg->payload,
                            msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, want) < 0 ||
                    !crypto_memeq(want, mac, 2 * SEQ_MAC_LEN)) {
                        free(seq);
                        seq = NULL;
                }
        }
        if (seq && cluster_dedupe_parse(seq, &n, &origin, &len))
                v = cluster_dedupe_check(l->dedupe, origin, len, n, live);
        free(seq);
        free(mac);
        return v;
}

static void cb_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
        cluster_link *l = ud;
        struct handler *best = NULL;
        size_t tl;
        int seq;

        l->msgs_in++;
        if (msg->qos > 0)
                l->out_n++; /* its PUBACK, queued by libmosquitto (flush_out) */
        if (!msg->topic || !first_copy(l, msg->topic, props))
                return;
        /* A message that came before: a QoS 1 redelivery (dedupe.h).  A retained one may
         * also be the broker's answer to a new subscription (the same message again, with
         * its properties): handed on, marked, for the mirror to decide. */
        seq = props ? seq_check(l, msg, props, !msg->retain) : CLUSTER_SEQ_UNKNOWN;
        if (seq == CLUSTER_SEQ_SEEN && !msg->retain) {
                l->dups++;
                logf_(l, HYB_LOG_DEBUG, "cluster: a message on %s came again: taken once",
                      msg->topic);
                return;
        }
        tl = strlen(msg->topic);
        for (size_t i = 0; i < l->n_handlers; i++) {
                struct handler *h = &l->handlers[i];

                if (h->len <= tl && memcmp(h->prefix, msg->topic, h->len) == 0 &&
                    (!best || h->len > best->len))
                        best = h;
        }
        if (!best)
                return;
        l->msg_seen = seq == CLUSTER_SEQ_SEEN;
        best->fn(l, msg->topic, msg->payload, (size_t)(msg->payloadlen > 0 ? msg->payloadlen : 0),
                 msg->retain, msg->qos, props, best->ud);
        l->msg_seen = false;
}

static void cb_log(struct mosquitto *m, void *ud, int level, const char *str)
{
        cluster_link *l = ud;

        if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
                logf_(l, HYB_LOG_DEBUG, "cluster: libmosquitto: %s", str);
}

/* ---------------------------------------------------------------- life */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
        (void)mosquitto_lib_init();
}

static int resolve(cluster_link *l, hyb_error *e)
{
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
        char port[16];
        int r;

        snprintf(port, sizeof port, "%d", l->port);
        r = getaddrinfo(l->host, port, &hints, &ai);
        if (r != 0)
                return err_set(e, -EINVAL, -1, "cluster.broker %s: %s", l->o.broker,
                               gai_strerror(r));
        memcpy(&l->addr, ai->ai_addr, ai->ai_addrlen);
        l->addr_len = ai->ai_addrlen;
        freeaddrinfo(ai);
        return 0;
}

/* MQTT 5, no Nagle, the credentials and TLS of the options, on m. */
static int configure(cluster_link *l, struct mosquitto *m, hyb_error *e)
{
        int rc;

        mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
        mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
        if (l->o.username || l->password) {
                rc = mosquitto_username_pw_set(m, l->o.username, l->password);
                if (rc != MOSQ_ERR_SUCCESS)
                        return err_set(e, -EINVAL, -1, "cluster.username: %s",
                                       mosquitto_strerror(rc));
        }
        if (l->tls) {
                rc = mosquitto_tls_set(m, l->o.ca_file, l->o.ca_file ? NULL : "/etc/ssl/certs",
                                       l->o.cert_file, l->o.key_file, NULL);
                if (rc != MOSQ_ERR_SUCCESS)
                        return err_set(e, -EINVAL, -1,
                                       "cluster: the TLS files (ca_file, cert_file, key_file) are "
                                       "refused: %s", mosquitto_strerror(rc));
        }
        return 0;
}

static void wipe_connected(struct mosquitto *m, void *ud, int rc)
{
        *(int *)ud = rc == 0 ? 1 : -1;
}

/*
 * Before the daemon's first connection: a connection with clean start under the same client
 * id ends the session an earlier run of the daemon left at the broker (its subscriptions
 * were its peers', gone with it; kept, they would bring their messages for ever).  Waits
 * for the CONNACK, at most 2 s, once, at the start.
 */
static void wipe_session(cluster_link *l)
{
        struct mosquitto *m;
        int done = 0;

        m = mosquitto_new(l->client_id, true, &done);
        if (!m)
                return;
        mosquitto_connect_callback_set(m, wipe_connected);
        if (configure(l, m, NULL) >= 0 &&
            mosquitto_connect_bind_v5(m, l->host, l->port, (int)l->o.keepalive_s, NULL, NULL) ==
                    MOSQ_ERR_SUCCESS) {
                for (int i = 0; i < 40 && !done; i++)
                        if (mosquitto_loop(m, 50, 1) != MOSQ_ERR_SUCCESS)
                                break;
                if (done > 0) {
                        (void)mosquitto_disconnect(m);
                        (void)mosquitto_loop_write(m, 1);
                        l->wiped = true;
                }
        }
        mosquitto_destroy(m);
}

int cluster_link_new(struct event_base *base, const cluster_options *o,
                     const char *default_client_id, cluster_log_fn log, void *log_userdata,
                     cluster_link **ret, hyb_error *reterr)
{
        cluster_link *l;
        int r;

        hyb_assert_return(base && o && o->broker && ret, -EINVAL);
        (void)pthread_once(&lib_once, lib_init);
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->base = base;
        l->probe_fd = -1;
        l->log = log;
        l->log_ud = log_userdata;
        l->backoff_ms = CLUSTER_BACKOFF_FIRST_MS;
        l->deferred_tail = &l->deferred;
        l->next_sid = 1;
        l->sid_ok = true;
        {
                /* above every number an earlier run of this daemon used (dedupe.h) */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                l->next_seq = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        }
        r = cluster_options_copy(&l->o, o);
        if (r < 0) {
                free(l);
                return r;
        }
        if (!l->o.prefix && !(l->o.prefix = strdup(""))) {
                r = -ENOMEM;
                goto fail;
        }
        if (cluster_parse_url(o->broker, l->host, sizeof l->host, &l->port, &l->tls) < 0) {
                r = err_set(reterr, -EINVAL, -1,
                            "cluster.broker: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], "
                            "got '%s'", o->broker);
                goto fail;
        }
        r = resolve(l, reterr);
        if (r < 0)
                goto fail;
        l->client_id = strdup(o->client_id ? o->client_id
                              : default_client_id ? default_client_id : "hybrid");
        l->mosq = l->client_id ? mosquitto_new(l->client_id, false, l) : NULL;
        l->dedupe = cluster_dedupe_new();
        if (!l->mosq || !l->dedupe) {
                r = -ENOMEM;
                goto fail;
        }
        (void)mosquitto_threaded_set(l->mosq, true); /* queues what it sends: flush_out */
        if (o->password_file && (r = cluster_read_password(o->password_file, "cluster.password_file",
                                                           &l->password, reterr)) < 0)
                goto fail;
        r = configure(l, l->mosq, reterr);
        if (r < 0)
                goto fail;
        mosquitto_connect_v5_callback_set(l->mosq, cb_connect);
        mosquitto_disconnect_v5_callback_set(l->mosq, cb_disconnect);
        mosquitto_subscribe_v5_callback_set(l->mosq, cb_subscribe);
        mosquitto_publish_v5_callback_set(l->mosq, cb_publish);
        mosquitto_message_v5_callback_set(l->mosq, cb_message);
        update_lib_log(l);
        l->misc = event_new(base, -1, EV_PERSIST, on_misc, l);
        l->retry = evtimer_new(base, on_retry, l);
        l->defer = event_new(base, -1, 0, run_deferred, l);
        l->flush = event_new(base, -1, 0, on_flush, l);
        if (!l->misc || !l->retry || !l->defer || !l->flush) {
                r = -ENOMEM;
                goto fail;
        }
        {
                struct timeval now = { 0, 0 };
                evtimer_add(l->retry, &now);
        }
        *ret = l;
        return 0;
fail:
        cluster_link_free(l);
        return r;
}

cluster_link *cluster_link_free(cluster_link *l)
{
        if (!l)
                return NULL;
        if (l->mosq && l->connected) {
                (void)mosquitto_disconnect(l->mosq);
                (void)mosquitto_loop_write(l->mosq, 1);
        }
        if (l->rd)
                event_free(l->rd);
        if (l->wr)
                event_free(l->wr);
        if (l->misc)
                event_free(l->misc);
        if (l->retry)
                event_free(l->retry);
        if (l->probe)
                event_free(l->probe);
        if (l->probe_fd >= 0)
                close(l->probe_fd);
        while (l->pubs) {
                struct pubop *p = l->pubs;
                l->pubs = p->next;
                if (p->fn)
                        p->fn(l, -ECANCELED, p->ud);
                free(p);
        }
        while (l->subs) {
                struct lsub *s = l->subs;
                l->subs = s->next;
                while (s->waiters) {
                        struct waiter *w = s->waiters;
                        s->waiters = w->next;
                        if (w->fn)
                                w->fn(l, -ECANCELED, w->ud);
                        free(w);
                }
                free(s->filter);
                free(s);
        }
        while (l->deferred) {
                struct waiter *w = l->deferred;
                l->deferred = w->next;
                w->fn(l, -ECANCELED, w->ud);
                free(w);
        }
        if (l->defer)
                event_free(l->defer);
        if (l->flush)
                event_free(l->flush);
        for (size_t i = 0; i < l->n_handlers; i++)
                free(l->handlers[i].prefix);
        free(l->handlers);
        free(l->states);
        if (l->mosq)
                mosquitto_destroy(l->mosq);
        free(l->client_id);
        cluster_dedupe_free(l->dedupe);
        (void)cluster_link_set_seq_key(l, NULL, 0);
        if (l->password)
                explicit_bzero(l->password, strlen(l->password));
        free(l->password);
        cluster_options_clear(&l->o);
        free(l);
        return NULL;
}

/* ---------------------------------------------------------------- operations */

int cluster_link_on_message(cluster_link *l, const char *prefix, cluster_msg_fn fn, void *ud)
{
        struct handler *h;
        char *p;

        hyb_assert_return(l && prefix && fn, -EINVAL);
        for (size_t i = 0; i < l->n_handlers; i++)
                if (strcmp(l->handlers[i].prefix, prefix) == 0) {
                        l->handlers[i].fn = fn;
                        l->handlers[i].ud = ud;
                        return 0;
                }
        p = strdup(prefix);
        h = p ? realloc(l->handlers, (l->n_handlers + 1) * sizeof *h) : NULL;
        if (!h) {
                free(p);
                return -ENOMEM;
        }
        l->handlers = h;
        h[l->n_handlers++] = (struct handler){ p, strlen(p), fn, ud };
        return 0;
}

void cluster_link_set_log_wanted(cluster_link *l, cluster_log_wanted_fn fn)
{
        l->log_wanted = fn;
        update_lib_log(l);
}

void cluster_link_on_turn(cluster_link *l, cluster_turn_fn fn, void *ud)
{
        l->turn = fn;
        l->turn_ud = ud;
}

int cluster_link_on_state(cluster_link *l, cluster_state_fn fn, void *ud)
{
        struct statefn *s;

        hyb_assert_return(l && fn, -EINVAL);
        s = realloc(l->states, (l->n_states + 1) * sizeof *s);
        if (!s)
                return -ENOMEM;
        l->states = s;
        s[l->n_states++] = (struct statefn){ fn, ud };
        return 0;
}

static struct lsub *find_sub(cluster_link *l, const char *filter, struct lsub ***ret_pp)
{
        for (struct lsub **pp = &l->subs; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->filter, filter) == 0) {
                        if (ret_pp)
                                *ret_pp = pp;
                        return *pp;
                }
        return NULL;
}

int cluster_link_subscribe(cluster_link *l, const char *filter, int qos, cluster_done_fn done,
                           void *ud)
{
        struct lsub *s;
        struct waiter *w = NULL;

        hyb_assert_return(l && filter && qos >= 0 && qos <= 2, -EINVAL);
        if (mosquitto_sub_topic_check2(filter, strlen(filter)) != MOSQ_ERR_SUCCESS)
                return -EINVAL;
        s = find_sub(l, filter, NULL);
        if (s && s->acked) {
                s->n++;
                defer_done(l, done, ud, 0);
                return 0;
        }
        if (done) {
                w = calloc(1, sizeof *w);
                if (!w)
                        return -ENOMEM;
                w->fn = done;
                w->ud = ud;
        }
        if (s) {
                s->n++;
                if (w) {
                        w->next = s->waiters;
                        s->waiters = w;
                }
                return 0;
        }
        s = calloc(1, sizeof *s);
        if (!s || !(s->filter = strdup(filter))) {
                free(s);
                free(w);
                return -ENOMEM;
        }
        s->head = filter_head(s->filter);
        s->qos = qos;
        s->n = 1;
        s->sid = l->next_sid;
        l->next_sid = l->next_sid >= MQTT_MAX_SUB_ID ? 1 : l->next_sid + 1;
        s->waiters = w;
        s->next = l->subs;
        l->subs = s;
        if (l->connected) {
                send_subscribe(l, s);
                flush_out(l);
        }
        return 0;
}

int cluster_link_unsubscribe(cluster_link *l, const char *filter)
{
        struct lsub **pp = NULL, *s;

        hyb_assert_return(l && filter, -EINVAL);
        s = find_sub(l, filter, &pp);
        if (!s)
                return -ENOENT;
        if (--s->n > 0)
                return 0;
        *pp = s->next;
        if (l->connected) {
                (void)mosquitto_unsubscribe(l->mosq, NULL, s->filter);
                flush_out(l);
        }
        while (s->waiters) {
                struct waiter *w = s->waiters;
                s->waiters = w->next;
                defer_done(l, w->fn, w->ud, -ECANCELED);
                free(w);
        }
        free(s->filter);
        free(s);
        return 0;
}

/* The text of a "seq" property, "<n> <client id>" (dedupe.h), into buf (at least 21 + idl + 1
 * bytes; idl: the length of id).  What snprintf("%" PRIu64 " %s") writes, without its format
 * parsing: it costed about 1.3k instructions a publication (bench/README.md, cluster). */
static void seq_text(char *buf, uint64_t n, const char *id, size_t idl)
{
        char digits[20];
        size_t k = 0;

        do {
                digits[k++] = (char)('0' + n % 10);
                n /= 10;
        } while (n);
        for (size_t i = 0; i < k; i++)
                buf[i] = digits[k - 1 - i];
        buf[k] = ' ';
        memcpy(buf + k + 1, id, idl + 1);
}

int cluster_link_publish(cluster_link *l, const char *topic, const void *payload, size_t len,
                         int qos, bool retain, mosquitto_property *props,
                         cluster_done_fn done, void *ud)
{
        struct pubop *p = NULL;
        mosquitto_property *all = NULL;
        char seq[24 + CLUSTER_DEDUPE_ORIGIN_MAX];
        size_t idl;
        int mid = 0, rc;
        bool more;

        hyb_assert_return(l && topic && (payload || !len) && qos >= 0 && qos <= 2, -EINVAL);
        more = l->more; /* for this call only, whatever becomes of it */
        l->more = false;
        if (len > MQTT_MAX_PAYLOAD)
                return -EINVAL;
        if (!l->connected)
                return -ENOTCONN;
        /* Every publication is tracked until libmosquitto reports it done (the PUBACK of
         * QoS 1, the write of QoS 0), so what waits for a stalled broker is counted. */
        if (!(p = calloc(1, sizeof *p)))
                return -ENOMEM;
        /* Numbered (dedupe.h) when the client id is short enough to be tracked; a resend
         * of libmosquitto's own (the PUBACK lost) is the same packet, with the same one.
         * The property goes at the end of the caller's list (libmosquitto takes a list
         * only from properties made with mosquitto_property_add_*, not a copy). */
        rc = MOSQ_ERR_SUCCESS;
        idl = strlen(l->client_id);
        if (idl <= CLUSTER_DEDUPE_ORIGIN_MAX) {
                char mac[2 * SEQ_MAC_LEN + 1];

                seq_text(seq, l->next_seq++, l->client_id, idl);
                if (l->seq_key && seq_mac(l, seq, topic, payload, len, mac) < 0) {
                        free(p);
                        return -ENOMEM;
                }
                rc = mosquitto_property_add_string_pair(props ? &props : &all,
                                                        MQTT_PROP_USER_PROPERTY,
                                                        CLUSTER_SEQ_PROPERTY, seq);
                if (rc == MOSQ_ERR_SUCCESS && l->seq_key)
                        rc = mosquitto_property_add_string_pair(props ? &props : &all,
                                                                MQTT_PROP_USER_PROPERTY,
                                                                CLUSTER_SEQ_MAC_PROPERTY, mac);
                if (rc != MOSQ_ERR_SUCCESS) {
                        free(p);
                        mosquitto_property_free_all(&all);
                        return -ENOMEM;
                }
                if (!props)
                        props = all;
        }
        rc = mosquitto_publish_v5(l->mosq, &mid, topic, (int)len, payload, qos, retain, props);
        mosquitto_property_free_all(&all);
        if (rc != MOSQ_ERR_SUCCESS) {
                free(p);
                return rc == MOSQ_ERR_NOMEM             ? -ENOMEM
                       : rc == MOSQ_ERR_NO_CONN         ? -ENOTCONN
                       : rc == MOSQ_ERR_OVERSIZE_PACKET ? -EMSGSIZE
                                                        : -EINVAL;
        }
        /* a PUBACK (or QoS 0's write) can only come from a later loop turn, after this */
        p->mid = mid;
        p->len = len;
        p->next = l->pubs;
        l->pubs = p;
        l->out_bytes += len;
        if (done && qos > 0) {
                p->fn = done;
                p->ud = ud;
        } else
                defer_done(l, done, ud, 0);
        l->out_n++;
        if (more) {
                /* more follow in this turn: written with them, from the loop (on_flush) */
                event_active(l->flush, EV_TIMEOUT, 0);
                return 0;
        }
        flush_out(l);
        return 0;
}

void cluster_link_more(cluster_link *l)
{
        if (l)
                l->more = true;
}

size_t cluster_link_out_bytes(const cluster_link *l)
{
        return l ? l->out_bytes : 0;
}

int cluster_link_set_will(cluster_link *l, const char *topic, const void *payload, size_t len,
                          int qos, bool retain)
{
        if (!l || !topic || len > INT32_MAX)
                return -EINVAL;
        int rc = mosquitto_will_set_v5(l->mosq, topic, (int)len, payload, qos, retain, NULL);
        return rc == MOSQ_ERR_SUCCESS ? 0 : rc == MOSQ_ERR_NOMEM ? -ENOMEM : -EINVAL;
}

int cluster_link_set_seq_key(cluster_link *l, const void *key, size_t len)
{
        uint8_t *k = NULL;

        hyb_assert_return(l && (key || !len), -EINVAL);
        if (len && !(k = malloc(len)))
                return -ENOMEM;
        if (len)
                memcpy(k, key, len);
        if (l->seq_key) {
                explicit_bzero(l->seq_key, l->seq_key_len);
                free(l->seq_key);
        }
        l->seq_key = k;
        l->seq_key_len = len;
        return 0;
}

int cluster_link_set_max_packet(cluster_link *l, uint32_t bytes)
{
        hyb_assert_return(l, -EINVAL);
        l->max_packet = bytes;
        return 0;
}

int cluster_link_subscription_state(const cluster_link *l, const char *filter)
{
        for (struct lsub *s = l->subs; s; s = s->next)
                if (strcmp(s->filter, filter) == 0)
                        return s->state;
        return -ENOENT;
}

bool cluster_link_subscribing(const cluster_link *l)
{
        for (struct lsub *s = l->subs; s; s = s->next)
                if (s->mid)
                        return true;
        return false;
}

bool cluster_link_msg_seen(const cluster_link *l)
{
        return l && l->msg_seen;
}

uint64_t cluster_link_get_dups(const cluster_link *l)
{
        return l ? l->dups : 0;
}

bool cluster_link_is_connected(const cluster_link *l)
{
        return l && l->connected;
}

const cluster_options *cluster_link_get_options(const cluster_link *l)
{
        return &l->o;
}

const char *cluster_link_get_client_id(const cluster_link *l)
{
        return l->client_id;
}

uint64_t cluster_link_get_connects(const cluster_link *l)
{
        return l->connects;
}
