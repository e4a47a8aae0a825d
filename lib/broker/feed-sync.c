/* SPDX-License-Identifier: MIT */
/*
 * The revocation feed between daemons (doc/token.md "Between daemons", doc/cluster.md
 * "Topics"): with a cluster link, every entry this daemon applies is published retained on
 * <prefix>_hybrid/feed/<seq> and every daemon subscribes <prefix>_hybrid/feed/+, so an
 * entry delivered to one hub reaches all of them, and a daemon that was away gets the
 * entries it missed as the broker's retained messages when it subscribes again.
 *
 * No new trust: an entry is applied only when it verifies against auth.issuers, like any
 * delivered one (hyb_token_feed_apply).  Whoever else may publish on the broker can only
 * send junk (refused; logged 10 lines at once, then one a second, with a count), a replay
 * (ignored), or overwrite a retained entry (a daemon holding that entry publishes it
 * again: the repair).
 *
 * Entries arrive in any order (a broker sends the retained messages of a filter in its own
 * order): an entry past head+1 that verifies is kept aside (at most FS_PENDING_MAX, within
 * head+FS_PENDING_MAX) and applied once the ones before it came.  A gap that stays (head+1
 * never came, or a verified entry was not kept aside) makes the daemon subscribe again,
 * which has the broker send every retained entry once more, after 1 s, doubling up to
 * 60 s (back to 1 s while entries are applied).
 *
 * The fetch from auth.feed_peers (below) runs in a thread of its own; it only reads the
 * peers' list (a jansson array no one changes once loaded, referenced by the loop for the
 * thread) and hands its entries back through an eventfd: the feed, the log and the
 * sessions are only touched from the loop.
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "broker-internal.h"
#include "bus/bus-internal.h"
#include "common/util.h"
#include "hybrid/bus.h"

/* A payload longer than this is no entry (a token block is far smaller). */
#define FS_ENTRY_MAX 8192

/* ----------------------------------------------------------- feed_peers */

/*
 * auth.feed_peers: when this daemon's feed has a gap (an entry past head+1 was delivered or
 * came from the broker) and at the start, a thread connects to the peers in their order
 * (a bus client like any other, as @localhost/org.hybridos.cli/feed<pid>, with the peer's
 * token when one is configured) and asks each for the entries after the head
 * (listRevocations, pages of 200) until one gives some: at most FF_MAX_ENTRIES entries of
 * at most FS_ENTRY_MAX bytes a fetch.  The loop then applies them in order as if a peer had
 * delivered them (each checked against auth.issuers).  Fetches are one at a time, at most
 * one a second; one that left the gap open or reached no peer is tried again after 1 s,
 * doubling up to 60 s, while the gap stays.  The daemon's stop does not wait for a peer
 * that stalls: it writes stop_fd, which ends the thread's current wait (the connect, the
 * handshake or a call) at once.
 */
#define FF_MAX_ENTRIES 500
#define FF_PAGE 200
#define FF_MIN_GAP_MS 1000
#define FF_RETRY_MAX_MS 60000

struct feedfetch {
        hyb_broker *b;
        pthread_t thread;
        bool running;     /* a thread is out: joined when it says it is done */
        atomic_bool stop; /* the daemon stops: the thread gives up between calls */
        int efd;          /* the thread's "done" (eventfd) */
        int stop_fd;      /* the daemon stops (eventfd, written by feedfetch_stop): every
                           * wait of the thread's connection (connect, handshake, a call)
                           * watches it and gives up at once (bus_connect_cancellable) */
        struct event *done_ev, *retry_ev;
        uint64_t gap_seq; /* the highest seq seen past a gap: fetch until the head is there */
        bool failed;      /* the last fetch reached no peer: try again later */
        unsigned retry_ms;
        uint64_t last_ms; /* when the last fetch began (CLOCK_MONOTONIC) */
        /* the thread's input (read only while it runs) */
        json_t *peers;
        uint64_t after;
        /* its output, read by the loop once done */
        char **entries;
        size_t n_entries;
        char *from;    /* the peer that gave them */
        char *errors;  /* what failed, one line per peer, for the log */
        bool answered; /* a peer answered listRevocations */
};

static uint64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ff_note(struct feedfetch *ff, const char *bus, const char *what, const char *msg)
{
        char *s = NULL;

        if (asprintf(&s, "%s%s%s: %s: %s", ff->errors ? ff->errors : "", ff->errors ? "; " : "",
                     bus, what, msg) >= 0) {
                free(ff->errors);
                ff->errors = s;
        }
}

/* Asks one peer for the entries after ff->after; 1 when it gave some. */
static int ff_ask(struct feedfetch *ff, json_t *peer)
{
        const char *bus = json_string_value(json_object_get(peer, "bus"));
        const char *key_file = json_string_value(json_object_get(peer, "key"));
        hyb_bus_connect_options o;
        hyb_bus *conn = NULL;
        hyb_key *key = NULL;
        hyb_error e = {0};
        uint64_t after = ff->after;
        char runner[32];
        int r;

        hyb_bus_connect_options_init(&o);
        snprintf(runner, sizeof runner, "feed%d", (int)getpid());
        o.path = bus;
        o.app = "org.hybridos.cli";
        o.runner = runner;
        o.token = json_string_value(json_object_get(peer, "token_text"));
        o.ca_file = json_string_value(json_object_get(peer, "ca"));
        o.pin = json_string_value(json_object_get(peer, "pin"));
        if (key_file && (r = hyb_key_load_file(key_file, &key, &e)) < 0) {
                ff_note(ff, bus, "key", *e.message ? e.message : hyb_strerror(r));
                return 0;
        }
        o.key = key;
        r = bus_connect_cancellable(&o, ff->stop_fd, &conn, &e);
        hyb_key_unref(key);
        if (r < 0) {
                ff_note(ff, bus, "connect", *e.message ? e.message : hyb_strerror(r));
                return 0;
        }
        while (!atomic_load(&ff->stop) && ff->n_entries < FF_MAX_ENTRIES) {
                hyb_bus_reply *reply = NULL;
                char params[64];
                const void *body;
                size_t len, got = 0;
                json_t *res, *items;

                size_t want = FF_MAX_ENTRIES - ff->n_entries < FF_PAGE
                                      ? FF_MAX_ENTRIES - ff->n_entries
                                      : FF_PAGE;

                snprintf(params, sizeof params, "{\"after\":%" PRIu64 ",\"limit\":%zu}", after,
                         want);
                hyb_error_clear(&e);
                r = hyb_bus_call_builtin(conn, "listRevocations", params, &reply, &e);
                if (r < 0) {
                        ff_note(ff, bus, "listRevocations",
                                *e.message ? e.message : hyb_strerror(r));
                        break;
                }
                body = hyb_bus_reply_get_body(reply, &len);
                res = json_loadb(body, len, 0, NULL);
                hyb_bus_reply_unref(reply);
                items = json_object_get(res, "entries");
                if (!json_is_array(items)) {
                        ff_note(ff, bus, "listRevocations", "an answer without entries");
                        json_decref(res);
                        break;
                }
                for (size_t i = 0; i < json_array_size(items) && ff->n_entries < FF_MAX_ENTRIES;
                     i++) {
                        json_t *it = json_array_get(items, i);
                        json_t *seq = json_object_get(it, "seq");
                        const char *text = json_string_value(json_object_get(it, "entry"));
                        char **grown, *dup;

                        /* entries after+1, after+2, ... only: anything else ends the page */
                        if (!json_is_integer(seq) ||
                            (uint64_t)json_integer_value(seq) != after + 1 || !text ||
                            strlen(text) > FS_ENTRY_MAX)
                                break;
                        grown = realloc(ff->entries, (ff->n_entries + 1) * sizeof *grown);
                        dup = strdup(text);
                        if (grown)
                                ff->entries = grown;
                        if (!grown || !dup) {
                                free(dup);
                                break;
                        }
                        ff->entries[ff->n_entries++] = dup;
                        after++;
                        got++;
                }
                json_decref(res);
                ff->answered = true;
                if (got < want)
                        break;
        }
        hyb_bus_unref(conn);
        if (ff->n_entries && !ff->from)
                ff->from = strdup(bus);
        return ff->n_entries > 0;
}

static void *ff_main(void *ud)
{
        struct feedfetch *ff = ud;
        uint64_t one = 1;

        for (size_t i = 0; i < json_array_size(ff->peers) && !atomic_load(&ff->stop); i++)
                if (ff_ask(ff, json_array_get(ff->peers, i)))
                        break;
        if (write(ff->efd, &one, sizeof one) < 0) {
                /* the loop polls no other way: the stop path joins the thread anyway */
        }
        return NULL;
}

static void ff_arm_retry(struct feedfetch *ff, unsigned ms)
{
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

        if (!evtimer_pending(ff->retry_ev, NULL))
                evtimer_add(ff->retry_ev, &tv);
}

/* Is a fetch due: a gap past the head, or a fetch that reached no peer? */
static bool ff_due(struct feedfetch *ff)
{
        hyb_broker *b = ff->b;

        return b->c->auth_feed_peers && b->feed && !b->feed_broken &&
               (ff->failed || ff->gap_seq > hyb_token_feed_get_seq(b->feed));
}

static void ff_start(struct feedfetch *ff)
{
        hyb_broker *b = ff->b;
        uint64_t now = mono_ms();

        if (ff->running || !ff_due(ff))
                return;
        if (ff->last_ms && now - ff->last_ms < FF_MIN_GAP_MS) {
                ff_arm_retry(ff, (unsigned)(FF_MIN_GAP_MS - (now - ff->last_ms)));
                return;
        }
        ff->last_ms = now;
        ff->peers = json_incref(b->c->auth_feed_peers);
        ff->after = hyb_token_feed_get_seq(b->feed);
        ff->answered = false;
        atomic_store(&ff->stop, false);
        if (pthread_create(&ff->thread, NULL, ff_main, ff) != 0) {
                broker_log(b, HYB_LOG_ERROR, "revocation feed: cannot start a fetch: %s",
                           strerror(errno));
                ff->peers = (json_decref(ff->peers), NULL);
                ff_arm_retry(ff, FF_RETRY_MAX_MS);
                return;
        }
        ff->running = true;
}

static void ff_clear(struct feedfetch *ff)
{
        for (size_t i = 0; i < ff->n_entries; i++)
                free(ff->entries[i]);
        free(ff->entries);
        ff->entries = NULL;
        ff->n_entries = 0;
        free(ff->from);
        free(ff->errors);
        ff->from = ff->errors = NULL;
        json_decref(ff->peers);
        ff->peers = NULL;
}

static void ff_done(evutil_socket_t fd, short what, void *ud)
{
        struct feedfetch *ff = ud;
        hyb_broker *b = ff->b;
        uint64_t v, applied = 0, refused = 0, head0, head;
        char from[300];
        hyb_error why = {0}, first = {0};

        if (read(ff->efd, &v, sizeof v) < 0 || !ff->running)
                return;
        pthread_join(ff->thread, NULL);
        ff->running = false;
        head0 = b->feed ? hyb_token_feed_get_seq(b->feed) : 0;
        snprintf(from, sizeof from, "feed peer %s", ff->from ? ff->from : "?");
        for (size_t i = 0; b->feed && !b->feed_broken && i < ff->n_entries; i++) {
                uint64_t seq = 0;
                int r = hyb_token_feed_apply(b->feed, ff->entries[i], &seq, &why);

                if (r == HYB_TOKEN_FEED_APPLIED) {
                        applied++;
                        revocation_applied(b, seq, from, true);
                } else if (r < 0) {
                        if (!refused++)
                                first = why;
                        break;
                } else if (r == HYB_TOKEN_FEED_GAP) {
                        break;
                }
        }
        head = b->feed ? hyb_token_feed_get_seq(b->feed) : 0;
        if (ff->errors)
                broker_log(b, HYB_LOG_WARNING, "revocation feed: fetching after %" PRIu64 ": %s",
                           head0, ff->errors);
        if (refused)
                broker_log(b, HYB_LOG_WARNING, "revocation feed: an entry from %s refused: %s",
                           from, first.message);
        if (applied)
                broker_log(b, HYB_LOG_INFO,
                           "revocation feed: %" PRIu64 " entries fetched from %s, head %" PRIu64,
                           applied, ff->from, head);
        ff->failed = !ff->answered && !applied;
        ff_clear(ff);
        if (!ff_due(ff)) {
                ff->retry_ms = 0;
        } else if (applied) {
                ff->retry_ms = 0;
                ff_start(ff); /* progress, and more is missing: at once (at most 1 a second) */
        } else {
                /* the gap stays, or no peer answered: again later, less often */
                ff->retry_ms = ff->retry_ms ? ff->retry_ms * 2 : FF_MIN_GAP_MS;
                if (ff->retry_ms > FF_RETRY_MAX_MS)
                        ff->retry_ms = FF_RETRY_MAX_MS;
                ff_arm_retry(ff, ff->retry_ms);
        }
}

static void ff_retry(evutil_socket_t fd, short what, void *ud)
{
        ff_start(ud);
}

int feedfetch_start(hyb_broker *b)
{
        struct feedfetch *ff;

        if (b->feedfetch)
                return 0;
        ff = calloc(1, sizeof *ff);
        if (!ff)
                return -ENOMEM;
        ff->b = b;
        atomic_init(&ff->stop, false);
        ff->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        ff->stop_fd = ff->efd >= 0 ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
        if (ff->stop_fd < 0) {
                int r = -errno;

                if (ff->efd >= 0)
                        close(ff->efd);
                free(ff);
                return r;
        }
        ff->done_ev = event_new(b->base, ff->efd, EV_READ | EV_PERSIST, ff_done, ff);
        ff->retry_ev = evtimer_new(b->base, ff_retry, ff);
        b->feedfetch = ff;
        if (!ff->done_ev || !ff->retry_ev || event_add(ff->done_ev, NULL) < 0) {
                feedfetch_stop(b);
                return -ENOMEM;
        }
        ff->failed = true; /* at the start: asks once for entries made while it was down */
        feedfetch_gap(b, 0);
        return 0;
}

void feedfetch_stop(hyb_broker *b)
{
        struct feedfetch *ff = b->feedfetch;

        if (!ff)
                return;
        if (ff->running) {
                uint64_t one = 1;

                atomic_store(&ff->stop, true);
                /* ends the thread's wait on a peer that stalls; the flag covers the rest */
                if (write(ff->stop_fd, &one, sizeof one) < 0) {
                        /* an eventfd below its maximum takes it: cannot fail here */
                }
                pthread_join(ff->thread, NULL);
        }
        ff_clear(ff);
        if (ff->done_ev)
                event_free(ff->done_ev);
        if (ff->retry_ev)
                event_free(ff->retry_ev);
        close(ff->efd);
        close(ff->stop_fd);
        free(ff);
        b->feedfetch = NULL;
}

void feedfetch_gap(hyb_broker *b, uint64_t seq)
{
        struct feedfetch *ff = b->feedfetch;

        if (!ff)
                return;
        if (seq > ff->gap_seq)
                ff->gap_seq = seq;
        if (!ff->running && !evtimer_pending(ff->retry_ev, NULL))
                ff_start(ff);
}

#ifdef HYB_HAVE_CLUSTER
#include "cluster/link.h"

/* Entries past head+1 kept until the ones before them come. */
#define FS_PENDING_MAX 256
/* Repairs are skipped while the link holds this many bytes the broker has not taken. */
#define FS_OUT_MAX (1024u * 1024u)
/* "refused" lines: this many at once, then one a second. */
#define FS_LOG_BURST 10
#define FS_REFETCH_MIN_MS 1000
#define FS_REFETCH_MAX_MS 60000
/* Entries from the cluster checked on the loop (a signature each, about 1 ms): a burst of
 * this many, then this many a second; past it an entry is dropped unchecked and asked for
 * again at a refetch.  Tests only: HYBRID_TEST_FEED_CHECKS="BURST/PER_S" sets both. */
#define FS_CHECK_BURST 1024
#define FS_CHECK_PER_S 256

struct fs_pending {
        uint64_t seq;
        char *text;
};

struct feedsync {
        hyb_broker *b;
        cluster_link *link;
        char *topic;  /* "<prefix>_hybrid/feed/" */
        char *filter; /* "<prefix>_hybrid/feed/+" */
        struct fs_pending pending[FS_PENDING_MAX];
        size_t n_pending;
        uint64_t beyond; /* the highest seq of a verified entry not kept aside */
        bool republish;  /* a publication failed: publish every entry at the next connection */
        struct event *refetch_ev;
        unsigned refetch_ms; /* the next refetch's delay; 0 while no gap */
        time_t log_at;       /* when log_tokens was last refilled */
        unsigned log_tokens; /* "refused" lines that may be logged now */
        uint64_t refused, refused_unlogged;
        unsigned check_burst, check_per_s; /* FS_CHECK_BURST, FS_CHECK_PER_S */
        uint64_t check_at_ms;              /* when check_tokens was last refilled */
        unsigned check_tokens;             /* entries that may be checked now */
        bool recheck; /* an entry was dropped unchecked: refetch at least once */
};

/* Takes one check from the budget (check_burst, refilled check_per_s a second). */
static bool check_budget(struct feedsync *fs)
{
        uint64_t now = mono_ms(), add = (now - fs->check_at_ms) * fs->check_per_s / 1000;

        if (add || !fs->check_at_ms) {
                fs->check_tokens = !fs->check_at_ms || fs->check_tokens + add >= fs->check_burst
                                           ? fs->check_burst
                                           : fs->check_tokens + (unsigned)add;
                fs->check_at_ms = now ? now : 1;
        }
        if (!fs->check_tokens)
                return false;
        fs->check_tokens--;
        return true;
}

/* Logs a refusal: a burst of FS_LOG_BURST lines, then one a second, each saying how many
 * were not logged since the last. */
static void refused(struct feedsync *fs, const char *topic, const char *why)
{
        time_t now = time(NULL);

        fs->refused++;
        if (now > fs->log_at) {
                uint64_t add = (uint64_t)(now - fs->log_at);

                fs->log_tokens = add >= FS_LOG_BURST || fs->log_tokens + add >= FS_LOG_BURST
                                         ? FS_LOG_BURST
                                         : fs->log_tokens + (unsigned)add;
                fs->log_at = now;
        }
        if (!fs->log_tokens) {
                fs->refused_unlogged++;
                return;
        }
        fs->log_tokens--;
        if (fs->refused_unlogged)
                broker_log(fs->b, HYB_LOG_WARNING,
                           "revocation feed: %s refused: %s (and %" PRIu64
                           " more refused, not logged)",
                           topic, why, fs->refused_unlogged);
        else
                broker_log(fs->b, HYB_LOG_WARNING, "revocation feed: %s refused: %s", topic, why);
        fs->refused_unlogged = 0;
}

/* The seq a topic <P>feed/<seq> names: decimal, no leading zero, 1 .. 2^53-1; 0 if none. */
static uint64_t topic_seq(struct feedsync *fs, const char *topic)
{
        const char *s = topic + strlen(fs->topic);
        uint64_t v = 0;

        if (*s < '1' || *s > '9' || strlen(s) > 16)
                return 0;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return 0;
                v = v * 10 + (uint64_t)(*s - '0');
        }
        return v < ((uint64_t)1 << 53) ? v : 0;
}

static void publish_one(struct feedsync *fs, uint64_t seq);

static void pub_done(cluster_link *l, int r, void *ud)
{
        struct feedsync *fs = ud;

        if (r < 0 && r != -ECANCELED)
                fs->republish = true;
}

static void publish_one(struct feedsync *fs, uint64_t seq)
{
        hyb_broker *b = fs->b;
        char topic[512], *text = NULL;
        int r;

        if (!b->feed || hyb_token_feed_get_entry(b->feed, seq, &text, NULL) < 0)
                return;
        snprintf(topic, sizeof topic, "%s%" PRIu64, fs->topic, seq);
        r = cluster_link_publish(fs->link, topic, text, strlen(text), b->c->cluster.qos, true, NULL,
                                 pub_done, fs);
        if (r < 0)
                fs->republish = true; /* not connected: every entry goes out at the connection */
        free(text);
}

static void publish_all(struct feedsync *fs)
{
        uint64_t head =
                fs->b->feed && !fs->b->feed_broken ? hyb_token_feed_get_seq(fs->b->feed) : 0;

        fs->republish = false;
        for (uint64_t seq = 1; seq <= head; seq++)
                publish_one(fs, seq);
}

static void pending_drop(struct feedsync *fs, size_t i)
{
        free(fs->pending[i].text);
        fs->pending[i] = fs->pending[--fs->n_pending];
}

/* A verified entry that was not kept aside: the gap is not closed before the head is there. */
static void note_beyond(struct feedsync *fs, uint64_t seq)
{
        if (seq > fs->beyond)
                fs->beyond = seq;
}

/* Keeps an entry that verified but is past head+1; the farthest goes when full. */
static void pending_add(struct feedsync *fs, uint64_t seq, const char *text, uint64_t head)
{
        size_t far = 0;
        char *t;

        if (seq > head + FS_PENDING_MAX) {
                note_beyond(fs, seq);
                return;
        }
        for (size_t i = 0; i < fs->n_pending; i++) {
                if (fs->pending[i].seq == seq)
                        return;
                if (fs->pending[i].seq > fs->pending[far].seq)
                        far = i;
        }
        if (fs->n_pending == FS_PENDING_MAX) {
                if (fs->pending[far].seq < seq) {
                        note_beyond(fs, seq);
                        return;
                }
                note_beyond(fs, fs->pending[far].seq);
                pending_drop(fs, far);
        }
        t = strdup(text);
        if (t)
                fs->pending[fs->n_pending++] = (struct fs_pending){seq, t};
}

static void refetch_arm(struct feedsync *fs)
{
        struct timeval tv;

        if (!fs->refetch_ms)
                fs->refetch_ms = FS_REFETCH_MIN_MS;
        if (evtimer_pending(fs->refetch_ev, NULL))
                return;
        tv.tv_sec = fs->refetch_ms / 1000;
        tv.tv_usec = (fs->refetch_ms % 1000) * 1000;
        evtimer_add(fs->refetch_ev, &tv);
}

static void gap_closed(struct feedsync *fs)
{
        fs->refetch_ms = 0;
        evtimer_del(fs->refetch_ev);
}

/* Offers one entry that came on topic (which names tseq) to the feed. */
static int offer(struct feedsync *fs, const char *topic, uint64_t tseq, const char *text,
                 uint64_t *ret_seq)
{
        hyb_broker *b = fs->b;
        hyb_error why = {0};
        uint64_t seq = 0, head;
        int r;

        r = hyb_token_feed_apply(b->feed, text, &seq, &why);
        *ret_seq = seq;
        head = hyb_token_feed_get_seq(b->feed);
        if (r == HYB_E_UNAUTHORIZED) {
                refused(fs, topic, why.message);
                return r;
        }
        if (r < 0) {
                broker_log(b, HYB_LOG_ERROR,
                           "revocation feed: entry %" PRIu64 " from %s not stored: %s", seq, topic,
                           *why.message ? why.message : hyb_strerror(r));
                return r;
        }
        if (seq != tseq)
                refused(fs, topic, "it holds an entry of another seq");
        if (r == HYB_TOKEN_FEED_APPLIED) {
                revocation_applied(b, seq, topic, seq != tseq);
        } else if (r == HYB_TOKEN_FEED_GAP) {
                pending_add(fs, seq, text, head);
        } else if (r == HYB_TOKEN_FEED_OLD && seq == tseq) {
                char *ours = NULL;

                if (hyb_token_feed_get_entry(b->feed, seq, &ours, NULL) == 0 &&
                    strcmp(ours, text) != 0)
                        refused(fs, topic,
                                "a different entry than this daemon's of the same seq "
                                "(two entries were signed with one seq)");
                free(ours);
        }
        return r;
}

/* Applies the kept entries that now follow the head. */
static void drain_pending(struct feedsync *fs)
{
        hyb_broker *b = fs->b;
        bool more = true;

        while (more) {
                uint64_t head = hyb_token_feed_get_seq(b->feed);

                more = false;
                for (size_t i = 0; i < fs->n_pending; i++) {
                        if (fs->pending[i].seq <= head) {
                                pending_drop(fs, i--);
                        } else if (fs->pending[i].seq == head + 1) {
                                char *text = fs->pending[i].text, topic[512];

                                fs->pending[i].text = NULL;
                                pending_drop(fs, i);
                                snprintf(topic, sizeof topic, "%s%" PRIu64, fs->topic, head + 1);
                                uint64_t got;

                                more = offer(fs, topic, head + 1, text, &got) ==
                                       HYB_TOKEN_FEED_APPLIED;
                                free(text);
                                break;
                        }
                }
        }
        if (fs->n_pending || fs->beyond > hyb_token_feed_get_seq(b->feed)) {
                uint64_t far = fs->beyond;

                for (size_t i = 0; i < fs->n_pending; i++)
                        if (fs->pending[i].seq > far)
                                far = fs->pending[i].seq;
                refetch_arm(fs);
                feedfetch_gap(b, far);
        } else {
                fs->beyond = 0;
                if (!fs->recheck)
                        gap_closed(fs);
        }
}

static void on_feed(cluster_link *l, const char *topic, const void *payload, size_t len,
                    bool retain, int qos, const mosquitto_property *props, void *ud)
{
        struct feedsync *fs = ud;
        hyb_broker *b = fs->b;
        uint64_t tseq = topic_seq(fs, topic), head, seq = 0;
        char *text, *ours = NULL;
        bool junk = false;
        int r;

        if (!b->feed || b->feed_broken)
                return; /* no issuer (or a broken feed): nothing can be checked; refetched at setup
                         */
        head = hyb_token_feed_get_seq(b->feed);
        if (!tseq) {
                refused(fs, topic, "not a topic <prefix>_hybrid/feed/<seq>");
                return;
        }
        /* Our own entry coming back, or another daemon's copy of it: nothing to check. */
        if (tseq <= head && hyb_token_feed_get_entry(b->feed, tseq, &ours, NULL) == 0 &&
            strlen(ours) == len && memcmp(ours, payload, len) == 0) {
                free(ours);
                return;
        }
        free(ours);
        if (len == 0 || len > FS_ENTRY_MAX || memchr(payload, 0, len)) {
                refused(fs, topic, len ? "not an entry" : "an empty (deleted) entry");
                junk = true;
        } else if (!check_budget(fs)) {
                /* a flood of entries to check would hold the loop: this one comes again
                 * with the broker's retained entries at the refetch */
                broker_log(b, HYB_LOG_DEBUG, "revocation feed: %s not checked (over the budget)",
                           topic);
                refused(fs, topic,
                        "not checked: over the budget of entries to check; asked for again "
                        "later");
                fs->recheck = true;
                refetch_arm(fs);
                return;
        } else if ((text = strndup(payload, len))) {
                r = offer(fs, topic, tseq, text, &seq);
                junk = r == HYB_E_UNAUTHORIZED || (r >= 0 && seq != tseq);
                free(text);
        }
        /* The broker's retained copy of an entry we hold is junk: put ours back (never for
         * a valid entry that differs, which two daemons would then overwrite in turn). */
        if (junk && retain && tseq <= hyb_token_feed_get_seq(b->feed) &&
            cluster_link_out_bytes(fs->link) < FS_OUT_MAX)
                publish_one(fs, tseq);
        drain_pending(fs);
        /* progress: a gap that stays is asked for again soon, not after a long backoff */
        if (fs->refetch_ms && hyb_token_feed_get_seq(b->feed) > head)
                fs->refetch_ms = FS_REFETCH_MIN_MS;
}

/* Subscribes again: the broker then sends every retained entry once more. */
static void refetch(evutil_socket_t fd, short what, void *ud)
{
        struct feedsync *fs = ud;
        hyb_broker *b = fs->b;
        /* a known gap: entries kept aside, or a verified one past the head not kept */
        bool gap = fs->n_pending || (b->feed && fs->beyond > hyb_token_feed_get_seq(b->feed));

        fs->recheck = false;
        if (fs->refetch_ms && b->feed)
                broker_log(b, HYB_LOG_INFO,
                           "revocation feed: a gap after %" PRIu64 ": asking the broker for the "
                           "entries again",
                           hyb_token_feed_get_seq(b->feed));
        if (cluster_link_unsubscribe(fs->link, fs->filter) == 0)
                (void)cluster_link_subscribe(fs->link, fs->filter, b->c->cluster.qos, NULL, NULL);
        if (fs->refetch_ms && !gap) {
                /* armed only for entries dropped unchecked: this one refetch brings them */
                fs->refetch_ms = 0;
        } else if (fs->refetch_ms) {
                fs->refetch_ms = fs->refetch_ms * 2 > FS_REFETCH_MAX_MS ? FS_REFETCH_MAX_MS
                                                                        : fs->refetch_ms * 2;
                refetch_arm(fs);
        }
}

static void on_state(cluster_link *l, bool connected, bool session_present, void *ud)
{
        struct feedsync *fs = ud;

        /* A new session (the first, or the broker lost ours) or a publication that did not
         * go out: every entry again, so a broker that lost its retained messages has them. */
        if (connected && (!session_present || fs->republish))
                publish_all(fs);
}

int feedsync_start(hyb_broker *b)
{
        const char *prefix = b->c->cluster.prefix ? b->c->cluster.prefix : "";
        struct feedsync *fs;
        int r = -ENOMEM;

        if (!b->link || b->feedsync)
                return 0;
        fs = calloc(1, sizeof *fs);
        if (!fs)
                return -ENOMEM;
        fs->b = b;
        fs->link = b->link;
        fs->check_burst = FS_CHECK_BURST;
        fs->check_per_s = FS_CHECK_PER_S;
        {
                const char *t = secure_getenv("HYBRID_TEST_FEED_CHECKS");
                unsigned burst, per_s;

                if (t && sscanf(t, "%u/%u", &burst, &per_s) == 2)
                        fs->check_burst = burst, fs->check_per_s = per_s;
        }
        if (asprintf(&fs->topic, "%s_hybrid/feed/", prefix) < 0)
                fs->topic = NULL;
        if (asprintf(&fs->filter, "%s_hybrid/feed/+", prefix) < 0)
                fs->filter = NULL;
        fs->refetch_ev = evtimer_new(b->base, refetch, fs);
        if (fs->topic && fs->filter && fs->refetch_ev &&
            (r = cluster_link_on_message(fs->link, fs->topic, on_feed, fs)) >= 0 &&
            (r = cluster_link_on_state(fs->link, on_state, fs)) >= 0)
                r = cluster_link_subscribe(fs->link, fs->filter, b->c->cluster.qos, NULL, NULL);
        b->feedsync = fs;
        if (r < 0) {
                feedsync_stop(b);
                return r;
        }
        if (cluster_link_is_connected(fs->link))
                publish_all(fs);
        return 0;
}

void feedsync_stop(hyb_broker *b)
{
        struct feedsync *fs = b->feedsync;

        if (!fs)
                return;
        while (fs->n_pending)
                pending_drop(fs, 0);
        if (fs->refetch_ev)
                event_free(fs->refetch_ev);
        free(fs->topic);
        free(fs->filter);
        free(fs);
        b->feedsync = NULL;
}

void feedsync_publish(hyb_broker *b, uint64_t seq)
{
        if (b->feedsync)
                publish_one(b->feedsync, seq);
}

void feedsync_refetch(hyb_broker *b)
{
        struct feedsync *fs = b->feedsync;

        if (!fs || !b->feed || b->feed_broken)
                return;
        publish_all(fs);
        refetch(-1, 0, fs);
}

#else

int feedsync_start(hyb_broker *b)
{
        return 0;
}

void feedsync_stop(hyb_broker *b)
{
}

void feedsync_publish(hyb_broker *b, uint64_t seq)
{
}

void feedsync_refetch(hyb_broker *b)
{
}

#endif
