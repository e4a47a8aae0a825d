/* SPDX-License-Identifier: MIT */
/*
 * Broker internals shared by broker.c, broker-conn.c, auth.c, route.c, channel.c, events.c,
 * builtin.c and monitor.c.
 *
 *   hyb_broker
 *    |- conns: bconn <-> bconn <-> ...        every accepted connection
 *    |- ep_hash[name] -> bconn -> ...         authenticated endpoints (+ the builtin pseudo-conn)
 *    |- pend_hash[id & mask] -> bpending      calls in flight, keyed by broker call id
 *    |- patterns: bsub -> bsub                standing (glob) subscriptions
 *    `- dead: bconn -> ...                    closed, waiting for the reaper
 *   bconn
 *    |- procs: bproc -> ...    bubbles: bbubble -> ...  (each bubble keeps its subscriber
 *    |                                                 array: fan-out does no glob matching)
 *    |- subs: bsub -> ...      (exact and pattern subscriptions it made)
 *    |- out: bpending list (calls it made)  in: bpending list (calls it serves)
 *    `- ch_out: bchan list (direct channels it opened)  ch_in: bchan list (it serves),
 *       fds: channel ends waiting to ride on its send queue (channel.c)
 */
#ifndef HYB_BROKER_INTERNAL_H
#define HYB_BROKER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "broker/config.h"
#include "bus/acl.h"
#include "bus/wire.h"
#include "hybrid/broker.h"
#include "hybrid/store.h"
#include "hybrid/token.h"

#define EP_BUCKETS 256u
#define PEND_BUCKETS 4096u
#define ROUTE_DEFAULT_TIMEOUT_MS 30000u /* a CALL's timeout 0 (doc/protocol.md) */
#define FMT_SLOTS 16384u    /* cached value texts (store-serve.c); a power of two */
#define BROKER_RX_FLAT (16u * 1024) /* conn_readable's read when nothing is buffered */
#define FMT_MAX_TEXT 256u   /* longest text cached */

typedef struct bconn bconn;

typedef struct bproc {
        struct bproc *next;
        char *name;
        size_t name_len;
        bus_acl *hosts, *apps;
        char *policy; /* JSON text of the argument policy, for listProcedures */
        uint64_t serial; /* registration order (broker->next_serial): list paging cursors */
} bproc;

typedef struct bsubscriber {
        bconn *conn;
        unsigned count; /* how many of conn's subscriptions match this bubble */
} bsubscriber;

typedef struct bbubble {
        struct bbubble *next;
        bconn *owner;
        char *name;
        size_t name_len;
        bus_acl *hosts, *apps;
        bsubscriber *subs;
        size_t n_subs, alloc;
        uint64_t serial; /* registration order, as bproc.serial */
        bool cluster;    /* registered with "cluster": fires go to the cluster too (xhost.c) */
} bbubble;

typedef struct bsub {
        struct bsub *next;      /* in conn->subs */
        struct bsub *pnext;     /* in broker->patterns (pattern subs only) */
        bconn *conn;
        char *endpoint, *bubble;
        bool pattern;
        unsigned count;
} bsub;

typedef struct bpending {
        struct bpending *hnext;
        struct bpending *oprev, *onext; /* caller's out list */
        struct bpending *iprev, *inext; /* callee's in list */
        uint64_t id, caller_id;
        bconn *caller, *callee;
        struct event *timer;
} bpending;

enum { BCONN_AUTH, BCONN_READY, BCONN_DEAD };

/* One uid's share of the broker (quota.c), shared by all of that uid's connections. */
typedef struct bquota {
        struct bquota *next;
        uid_t uid;
        /* A token principal of the network edge ("ISSUER SUB", quota_principal): its own
         * share with the uid limits, instead of the anonymous uid's; NULL: uid's share. */
        char *principal;
        unsigned n_conns, n_unauth;
        size_t bytes;           /* input buffers + send queues + partial-frame reservations */
        unsigned pending;       /* calls its connections have in flight */
        unsigned store_subs;    /* store subscriptions of its connections */
        unsigned cluster_reads; /* their reads waiting for the MQTT broker (cluster-serve.c) */
        unsigned channels;      /* direct channels its connections opened as callers (channel.c) */
} bquota;

/* A direct channel the broker opened between two local peers (channel.c): only its ends
 * hold the socketpair; the broker keeps the pair of connections and the id until it sends
 * close. */
typedef struct bchan {
        uint64_t id;
        bconn *caller, *callee;
        struct bchan *onext, **oprev; /* caller->ch_out */
        struct bchan *inext, **iprev; /* callee->ch_in */
} bchan;

struct bssub;
struct bstore_rule;

struct bconn {
        hyb_broker *b;
        bconn *prev, *next;   /* broker->conns */
        bconn *hnext;         /* ep_hash chain */
        bconn *dnext;         /* dead list */
        struct bufferevent *bev;
        int state;
        uid_t uid;
        gid_t gid;
        pid_t pid;
        bool admin, monitor, reaped, builtin;
        char *name;           /* "@localhost/app/runner" */
        size_t name_len;
        char *app;
        bproc *procs;
        bbubble *bubbles;
        unsigned n_regs;      /* procedures + bubbles */
        bsub *subs;
        unsigned n_subs;
        struct bssub *ssubs;  /* store subscriptions (store-serve.c) */
        struct bswrite *swrites; /* its writes waiting for their commit (store-serve.c) */
        unsigned n_ssubs;
        /* Store messages held while a subscription's replay is sent in pages (replay.c):
         * their bytes, charged to q and counted with the send queue by bconn_room. */
        size_t store_held;
        /* A replay waits for its send queue to drain (quota.c out_changed wakes it). */
        bool replay_wait;
        uint64_t replay_turn;   /* the last turn of replay_run that served (or counted) it */
        bpending *out, *in;
        unsigned n_out;
        struct event *timer;  /* auth timeout, then linger on close */
        uint64_t last_rx_us;
        uint64_t ping_us;     /* when the broker pinged it (valid while ping_sent) */
        bool ping_sent;
        struct event *rev;    /* readable: conn_readable (the bufferevent only writes) */
        size_t rx_need;       /* bytes still missing of a partly read frame */
        /* A request that walked the store (store-serve.c) sets yield: the frames read with
         * it wait for the loop's next turn (resume_ev), so other peers are served between
         * one peer's pipelined reads. */
        bool yield;
        struct event *resume_ev;
        const char *reason;   /* BrokenEndpoint reason */
        uint64_t serial;      /* accept order (the builtin: UINT64_MAX): list paging cursors */
        /* Accounting (quota.c). */
        bquota *q;
        bool unauth;          /* counted in the unauthenticated budget */
        bool cut;             /* cut off by quota_cut: linger longer so the reason gets out */
        size_t policy_bytes;  /* argument-policy text of its procedures, charged to q */
        size_t held;          /* bytes charged to q and the broker */
        size_t rx_resv;       /* missing bytes of a partly read frame, charged ahead */
        uint64_t tx_head, tx_tail; /* bytes ever drained from / added to the send queue */
        /* Frames made for it while frames read together are dispatched (broker-conn.c):
         * sent with one sendmsg when the batch ends, charged like its send queue. */
        uint8_t *batch;
        size_t batch_len, batch_alloc;
        bconn *batch_next;    /* hyb_broker.batched */
        bool in_batched;
        uint64_t *marks;      /* ring of send-queue offsets where a frame starts */
        size_t m_first, m_n, m_alloc;
        struct evbuffer_cb_entry *in_cb, *out_cb;
        /* Counters read as /sys/bus/endpoint/... (store-serve.c). */
        uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
        /* Security tokens (auth.c). */
        uint8_t nonce[32];        /* the CHALLENGE's nonce; used by the one AUTH */
        bool nonce_sent;
        hyb_token_result *tok;    /* a token session: its verified result (rights), else NULL */
        struct bauth_ids *tok_ids; /* what a revocation may name of that token */
        struct event *exp_ev;     /* closes a token session at the token's exp */
        struct bauth_job *auth_job; /* its token being verified (auth.c): nothing is read meanwhile */
        /* A token announced ahead of its AUTH (doc/protocol.md "Handshake", auth.c): its
         * blocks' signatures checked while the peer signs its proof, or NULL. */
        struct bauth_job *early_job;
        /* A session of the network edge (lib/edge, edge-peer.c): the transport its calls
         * came by ("http"), else NULL (a peer of the Unix socket). */
        const char *transport;
        /* A remote bus peer of the edge's WebSocket listener (broker_ws_session): it must
         * authenticate with a token (the uid policy never applies to it), and its proof
         * binds to `binding` (doc/token.md "Handshake") instead of "unix-uid:<uid>". */
        bool remote;
        /* Its end is one of a bufferevent pair whose other end the edge holds inside the
         * daemon (broker_edge_session, broker_ws_session): no fd, no socket calls. */
        bool pair;
        char *binding;
        char *remote_addr; /* its "ADDRESS:PORT", for the log */
        /* Cross-host calls (xhost.c): the pseudo connection of a remote host has `xpeer`;
         * `host` is the peer's host for access lists (NULL: localhost); tok_text the text of
         * a token session's token, forwarded with its calls to other hosts. */
        struct xpeer *xpeer;
        const char *host;
        char *tok_text;
        uint64_t ev_mark;     /* the last event of another host it was given (xhost.c) */
        /* Direct channels (channel.c): those it opened as caller and those it serves, and
         * the channel ends still to be passed to it (SCM_RIGHTS) with the head of its send
         * queue, whose frames are queued already; while some wait, the bufferevent does not
         * write (fd_ev does, the fds with the bytes). */
        bchan *ch_out, *ch_in;
        unsigned n_ch_out, n_ch_in;
        int *fds;
        unsigned n_fds, fds_alloc;
        struct event *fd_ev;
        /* Ends passed to it that it may not have received yet: the kernel charges them to
         * the daemon's user until the peer reads them (channel.c ends_seen forgets them
         * once its socket holds nothing unread). */
        unsigned n_fds_out;
};

struct hyb_broker_config {
        atomic_uint n_ref;
        broker_config c;
};

struct hyb_broker {
        struct event_base *base;
        hyb_broker_config *cfg;
        const broker_config *c;
        struct evconnlistener *listener;
        char *socket_path;
        struct edge_https *https; /* listen.https (lib/edge/https.h), or NULL */
        bool shutting_down;
        bool trim_wanted; /* peers were freed since the last tick: malloc_trim */
        bool batching;  /* dispatching one of several frames read at once: batch, don't write */
        bconn *batched; /* conns with a batch to send when the frames read at once are done */
        struct event *flush_ev; /* broker_flush_batches_soon */
        bool rx_flat_busy;      /* conn_readable is dispatching frames out of rx_flat */
        bconn *conns;
        unsigned n_conns, n_endpoints, n_monitors;
        bconn *ep_hash[EP_BUCKETS];
        bpending *pend_hash[PEND_BUCKETS];
        bpending *pend_free;
        const struct timeval *default_deadline; /* common timeout of ROUTE_DEFAULT_TIMEOUT_MS */
        uint64_t next_id;
        uint64_t next_serial; /* bconn, bproc and bbubble serials: conns and members are
                               * prepended, so every list runs in decreasing serial order */
        bsub *patterns;
        bconn *dead;
        bconn *builtin;
        struct event *reap_ev, *tick_ev, *shutdown_ev;
        struct event *accept_ev; /* re-enables accepting after EMFILE/ENFILE */
        hyb_log_fn log;
        void *log_ud;
        int log_level;
        bool in_log_line;       /* events_log_line is running: its own lines are not offered */
        uint64_t log_dropped;   /* Log events a subscriber had no room for since the last one */
        bquota *quotas;
        size_t mem;             /* bytes in all buffers and queues (limits.max_memory) */
        size_t mem_hwm;         /* highest mem since the last malloc_trim */
        unsigned n_unauth;
        uint64_t refuse_log_us; /* refusals at accept are logged at most once a second */
        unsigned refused_quiet;
        /* The host store served on the bus (store-serve.c). */
        hyb_store *store;
        hyb_backend *store_be;  /* a backend handle of it, for keyed reads */
        hyb_broker_kernel_fn kernel;    /* the daemon's kernel objs (hyb_broker_set_kernel) */
        void *kernel_ud;
        struct event *store_ev, *store_timer;
        /* Subscriptions whose replay has pages left, served in turn (replay.c), and the
         * timer that sends the next pages on the loop's next turn. */
        struct breplay *replays, **replays_tail;
        struct event *replay_timer;
        uint64_t replay_turns;
        struct bstore_rule *acl;
        size_t n_acl;
        struct squota *squota;  /* store-quota.c */
        /* The revocation check of token sessions (broker_auth_set_revoked). */
        hyb_token_revoked_fn revoked;
        void *revoked_ud;
        /* The revocation feed (revocation.c): NULL without auth.issuers; broken when a stored
         * entry no longer verifies (every token is then refused). */
        hyb_token_feed *feed;
        bool feed_broken;
        struct feedsync *feedsync; /* the feed between daemons (feed-sync.c), or NULL */
        struct feedfetch *feedfetch; /* fetches from auth.feed_peers (feed-sync.c), or NULL */
        char hostname[256];     /* the default audience (gethostname), filled on first use */
        struct bauth_cache *tok_cache; /* verified tokens by hash (auth.c), or NULL */
        struct bauth_pool *tok_pool;   /* the threads checking signatures (auth-pool.c), or NULL */
        /* Counters read as /sys/bus/... (like mosquitto's $SYS): frames and bytes read from and
         * queued to peers, peers cut off for a quota, connections accepted since the start. */
        uint64_t msgs_in, msgs_out, bytes_in, bytes_out, drops, accepted;
        uint64_t chan_refused; /* openChannel answered with a refusal */
        struct bfmt {           /* texts of values, by obj (store-serve.c format_cached) */
                hyb_obj *obj;
                char *text;
                size_t len;
                size_t alloc;   /* text's allocated size: the next value's text reuses it */
        } fmt[FMT_SLOTS];
        /* Values written by peers as they were received, while the store may still deliver
         * them (store-serve.c fwd_*): subscribers get these bytes, never a new encoding. */
        struct bfwd {
                hyb_obj *obj;   /* referenced: its address names no other value meanwhile */
                const char *text; /* the frame's body, or owned once the frame is gone */
                size_t len;
                char *owned;
        } *fwd;
        size_t n_fwd, alloc_fwd;
        struct edge_http *edge;  /* the HTTP edge (lib/edge), NULL without listen.http */
        struct edge_coap *coap;  /* the CoAP edge (lib/edge/coap.c), NULL without listen.coap */
        struct cluster_link *link; /* cluster: the MQTT link (lib/cluster/link.h), or NULL */
        struct bcluster *cluster;  /* the cluster scope served over it (cluster-serve.c) */
        uint64_t edge_serial;    /* edge session names */
        struct xhost *xhost;     /* bus calls between hosts (xhost.c), NULL outside a cluster */
        unsigned n_remote_out, n_remote_in; /* calls in flight to and from other hosts */
        unsigned n_channels;     /* direct channels open (channel.c) */
        unsigned n_chan_fds;     /* channel ends waiting to be passed to their peers */
        /* Channel ends passed and perhaps not received yet: those of live connections
         * (bconn.n_fds_out) and those of connections gone whose socket a peer still holds
         * unread (chan_ghosts, channel.c). */
        unsigned n_fds_out;
        struct chan_ghost *chan_ghosts;
        uint64_t next_chan_id;   /* the last channel id given (ids start at 1) */
        /* A read into a connection with nothing buffered lands here, and its whole frames
         * are dispatched from here (broker-conn.c conn_readable): only a partial frame is
         * copied to the connection's input evbuffer. */
        uint8_t rx_flat[BROKER_RX_FLAT];
};

/* broker.c */
void broker_log(hyb_broker *b, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* broker-conn.c */
void bconn_accept(hyb_broker *b, int fd);
/* Makes a connection of the connected socket fd (owned from here on) for a peer with these
 * credentials: accounted, reading, not yet authenticated, no challenge sent, no auth timer
 * armed.  NULL (fd closed) on failure or a quota refusal. */
bconn *bconn_adopt(hyb_broker *b, int fd, uid_t uid, gid_t gid, pid_t pid);
/* The same for the broker's end of a bufferevent pair (made with BEV_OPT_DEFER_CALLBACKS on
 * b->base; adopted: freed on failure), whose partner the edge holds. */
bconn *bconn_adopt_pair(hyb_broker *b, struct bufferevent *end, uid_t uid, gid_t gid, pid_t pid);
/* Makes a bufferevent pair on b->base for an in-daemon session: *ret_broker is the broker's
 * end (for bconn_adopt_pair), *ret_edge the edge's.  0 or -ENOMEM. */
int broker_pair_new(hyb_broker *b, struct bufferevent **ret_broker, struct bufferevent **ret_edge);
/* Queues a frame; on a full send queue the peer is closed (507) and -ENOBUFS returned. */
int bconn_send(bconn *c, wire_hdr *h, const char *from, size_t from_len, const char *to,
               size_t to_len, const char *member, size_t member_len, const void *body, size_t len);
/* Sends a frame laid out in iov[0..n-1] (n <= BCONN_SEND_IOV: wire_build()'s iovecs, or a
 * header followed by body pieces, as a store message's header, prefix, key, newline and
 * value): straight to the socket when nothing is queued before it and no batch is being
 * dispatched, else queued (same bound as bconn_send).  -EINVAL (nothing sent) for a larger
 * n: the iovecs are copied into arrays of this size. */
#define BCONN_SEND_IOV 5
int bconn_send_built(bconn *c, const struct iovec *iov, int n);
/* Most bytes of frames batched for one peer before they are written out. */
#define BCONN_BATCH_MAX (64u * 1024)
/* A frame forwarded to an edge session with a body up to this size goes in one add */
#define BCONN_PAIR_INLINE 1024u
/* Sends the batches of every peer that got frames while a batch of frames was dispatched. */
void broker_flush_batches(hyb_broker *b);
/* The same from an event run later in this loop turn (the edge sessions' reads). */
void broker_flush_batches_soon(hyb_broker *b);
/* Drops c's batch: frames not written yet (quota_cut, a freed connection). */
void bconn_batch_drop(bconn *c);
/* Moves c's batch to its send queue (before a frame is queued there directly). */
void bconn_spill(bconn *c);
/* Checks that n more bytes fit c's send queue; closes c as a slow consumer if not. */
/* Queues an ERROR frame (status, msg) that tells the peer why it is being closed; the peer's
 * client library keeps it (hyb_bus_get_close_reason).  Call before bconn_close. */
void bconn_say_why(bconn *c, int status, const char *msg);
bool bconn_room(bconn *c, size_t n);
void bconn_close(bconn *c, const char *reason);
void bconn_free_all(hyb_broker *b);
bconn *broker_lookup(hyb_broker *b, const char *name, size_t len);
void broker_ep_insert(hyb_broker *b, bconn *c);
void broker_tick(evutil_socket_t fd, short what, void *ud);

enum { LIVENESS_OK, LIVENESS_PING, LIVENESS_DROP };
/*
 * What the once-a-second tick does with a peer silent since last_rx_us (pinged at
 * ping_us if ping_sent): ping it once silent ping_after_s, and drop it only once it was
 * pinged and left unanswered for drop_after_s - ping_after_s, so it is silent for at
 * least drop_after_s and always had the whole answer time the configuration gives,
 * whatever the tick's phase (a tick seeing 0.99 s of silence and the next 2.01 s must
 * not drop a peer that was never pinged).
 */
int broker_liveness(uint64_t now_us, uint64_t last_rx_us, bool ping_sent, uint64_t ping_us,
                    unsigned ping_after_s, unsigned drop_after_s);
void broker_reap(evutil_socket_t fd, short what, void *ud);

/* quota.c */
/* Charges a new connection to its uid: 0, or the HTTP-like status to refuse it with
 * (429 per uid, 503 in all) and *which names the quota. */
int quota_attach(bconn *c, const char **which);
/* Releases all that c holds (buffers, counts) before it is freed. */
void quota_detach(bconn *c);
/* c authenticated (or died before): it leaves the unauthenticated budget. */
void quota_unauth_end(bconn *c);
/* Installs the evbuffer callbacks that charge c's input and output bytes. */
int quota_watch(bconn *c);
/* May c hold n more bytes?  NULL if so, else the name of the quota it would break. */
const char *quota_bytes_over(bconn *c, size_t n);
/* Sets the bytes charged ahead for the partly read frame. */
void quota_rx_reserve(bconn *c, size_t n);
/* Records that the send queue's tail is a frame boundary (after each queued frame). */
void quota_mark(bconn *c);
/* Charges add bytes held for c (its batch, broker-conn.c) and releases sub. */
void quota_charge(bconn *c, size_t add, size_t sub);
/*
 * Cuts c off for breaking a quota: drops its unsent queue after the frame being written,
 * queues one ERROR frame (status, "quota <which>: <detail>"), logs the peer's name, uid
 * and quota, and closes it.
 */
void quota_cut(bconn *c, int status, const char *which, const char *detail);
/* Subscriptions, registrations and policy bytes of c's uid (live connections). */
/* Moves c, an edge session or remote peer just authenticated with tok, from the anonymous
 * uid's share to the token principal's (issuer and sub): one principal's use cannot starve
 * another's.  0, else the status (429: the principal's uid_max_connections; 503: memory)
 * and *which names the quota; c is then unchanged. */
int quota_principal(bconn *c, const hyb_token_result *tok, const char **which);
/* Is the unauthenticated budget of uid's share, or of the broker, used up? */
bool quota_unauth_full(hyb_broker *b, uid_t uid);
void quota_uid_objects(bconn *c, unsigned *subs, unsigned *regs, size_t *policy);
/* Gives memory back to the system after a large release. */
void quota_trim(hyb_broker *b);

/* auth-pool.c: signature checks on worker threads.  A job's run(j, i) runs task i
 * (0 <= i < n_tasks) on a worker, tasks of one job at the same time; done(j, cancelled)
 * runs on the loop once all returned (cancelled: the broker stops, the tasks may not have
 * run) and owns j from then on. */
typedef struct bpool_job bpool_job;
struct bpool_job {
        void (*run)(bpool_job *j, unsigned i);
        void (*done)(bpool_job *j, bool cancelled);
        unsigned n_tasks;
        uid_t uid;              /* for auth.uid_max_verifying */
        /* the pool's */
        unsigned next_task, left;
        bpool_job *qnext, *dnext, *inext, **iprev;
};
/* Queues j (starting the threads on first use): 0, -EBUSY (auth.max_verifying jobs in
 * flight), -EAGAIN (auth.uid_max_verifying of j->uid), -ENOMEM or another -errno. */
int auth_pool_submit(hyb_broker *b, bpool_job *j);
/* Jobs submitted and not yet collected (the fuzz harness waits for them). */
unsigned auth_pool_in_flight(const hyb_broker *b);
/* The verifying threads running (before the first job: auth.verify_threads). */
unsigned auth_pool_threads(const hyb_broker *b);
/* The broker shuts down: the pool no longer keeps the loop running (what is in flight is
 * cancelled by auth_pool_free). */
void auth_pool_shutdown(hyb_broker *b);
/* Stops and joins the threads; the jobs in flight get done(j, true) (hyb_broker_free). */
void auth_pool_free(hyb_broker *b);
/* Reading and dispatching c again after its verification (broker-conn.c). */
void bconn_resume_reading(bconn *c);

/* auth.c */
int auth_challenge(bconn *c);
void auth_handle(bconn *c, const wire_hdr *h, const uint8_t *body);
/* Releases what a connection holds of its token (conn_unlink_free). */
void auth_conn_free(bconn *c);
/*
 * For the edge (lib/edge/http-auth.c), the verification of a connect in its parts: a token
 * verified before is in the cache of verified tokens (by the SHA-256 th of its text), and
 * only its revocation is asked again; a new one is staged (token/staged.h), its
 * signatures checked on the pool, then finished here as a connect finishes it.
 */
struct bauth_ids;
void auth_ids_free(struct bauth_ids *ids);
/* A token verified before under the configuration in force and not expired: true with a
 * new reference in *ret and its revocation handles in *ret_ids (auth_ids_free). */
bool auth_cache_get(hyb_broker *b, const uint8_t th[32], hyb_token_result **ret,
                    struct bauth_ids **ret_ids);
/* The revocation hook asked for ids: 0, or HYB_E_UNAUTHORIZED (revoked, state unknown). */
int auth_revoked_check(hyb_broker *b, const struct bauth_ids *ids, hyb_error *e);
/* token_staged_finish under the configuration in force (audience, issuers, lifetime cap,
 * revocation) and the exp: 0 with *ret and *ret_ids, HYB_E_UNAUTHORIZED (reason in e),
 * -ENOMEM.  The staged checks must all have returned. */
struct token_staged;
int auth_finish(hyb_broker *b, struct token_staged *st, hyb_token_result **ret,
                struct bauth_ids **ret_ids, hyb_error *e);
/* Keeps res (referenced) under th in the cache, once its proof held; takes ids. */
void auth_cache_keep(hyb_broker *b, const uint8_t th[32], hyb_token_result *res,
                     struct bauth_ids *ids);
/* Releases the broker's cache of verified tokens (hyb_broker_free). */
void auth_broker_free(hyb_broker *b);
/* The verifier id of this broker: auth.audience, else the machine's host name. */
const char *broker_auth_audience(hyb_broker *b);
/*
 * The revocation check of token sessions: fn(ud, ids) answers > 0 when the token
 * is revoked, 0 when not, < 0 when it cannot tell (the token is refused, the session
 * closed: fail closed).  Asked at every token connect and by broker_auth_sweep.
 * fn NULL: no revocation check.
 */
void broker_auth_set_revoked(hyb_broker *b, hyb_token_revoked_fn fn, void *ud);
/*
 * Closes every token session whose token has expired or that the revocation hook
 * now says is revoked (the peer first gets ERROR 401 with the reason, the log the
 * peer's uid/pid and why).  Call after the revocation state changed.
 */
void broker_auth_sweep(hyb_broker *b);
/*
 * The timer callback (an evtimer with ud = the bconn) that closes a token session, bus
 * or edge, at its token's exp: ERROR 401 "session closed: the token expired", then
 * closed with reason tokenExpired.  Re-armed for a second when the wall clock is behind.
 */
void auth_session_expire(evutil_socket_t fd, short what, void *ud);
/*
 * Per-operation authorisation of a token session (doc/token.md "What each operation
 * needs"): may c exercise actions (HYB_TOKEN_ACT_*) on the bus member `member` of the
 * endpoint (or endpoint glob) ep "@host/app/runner", member NULL: the endpoint itself?
 * member may be a glob (subscriptions: it must lie within a granted pattern).  Peers
 * without a token: always 0 (the uid policy decides).  0, or HYB_E_FORBIDDEN with the
 * reason in *e.
 */
int auth_bus_check(const bconn *c, const char *ep, const char *member, unsigned actions, hyb_error *e);
/* Is c a token session whose rights cover `admin` on bus://host/# ? */
bool auth_token_admin(const bconn *c);

/* revocation.c */
/* (Re)builds the revocation feed from auth.issuers and the host store, installs it as the
 * revocation hook and sweeps the sessions (hyb_broker_set_store, _start, _reload). */
void broker_feed_setup(hyb_broker *b);
void broker_feed_free(hyb_broker *b);
/* The builtin methods deliverRevocation {entry} and listRevocations {after?, limit?}. */
struct json_t;
int revocation_deliver(bconn *c, struct json_t *p, struct json_t **ret, hyb_error *e);
int revocation_list(bconn *c, struct json_t *p, struct json_t **ret, hyb_error *e);
/* Entry seq was applied (from: its source, for the log): logs it, fires RevocationApplied,
 * ends the sessions it touches, and with publish hands it to the other daemons. */
void revocation_applied(hyb_broker *b, uint64_t seq, const char *from, bool publish);

/* feed-sync.c: the revocation feed between daemons over the cluster link (retained
 * <prefix>_hybrid/feed/<seq>).  start subscribes when b->link is set (0 otherwise); publish
 * hands an applied entry on; refetch (after broker_feed_setup) publishes every entry and
 * asks the broker for the retained ones again. */
int feedsync_start(hyb_broker *b);
void feedsync_stop(hyb_broker *b);
void feedsync_publish(hyb_broker *b, uint64_t seq);
void feedsync_refetch(hyb_broker *b);
/* auth.feed_peers: start (at listen; asks the peers once), stop (joins a running fetch),
 * gap (entry seq came past a gap: fetch until the head is there, now or when the backoff
 * allows; seq 0: only what an earlier call asked). */
int feedfetch_start(hyb_broker *b);
void feedfetch_stop(hyb_broker *b);
void feedfetch_gap(hyb_broker *b, uint64_t seq);

/* A frame in a connection's input buffer. */
typedef struct bframe {
        wire_hdr h;
        const char *from, *to, *member;
        struct evbuffer *in;    /* where the frame is, at its start; NULL: flat holds it */
        const uint8_t *flat;    /* the whole frame, contiguous (when in is NULL) */
        size_t len;     /* whole frame */
        bool consumed;  /* the handler drained it */
} bframe;
/* Contiguous body (pulls the frame up and re-points from/to/member into the copy). */
const uint8_t *bframe_body(bframe *f);
/* Sends hdr (header + names, built by the caller) then f's body to c, consumes f: straight to
 * the socket when c's queue is empty, else (or for the unwritten rest) queued.  The caller
 * has checked the room (bconn_room). */
void bconn_forward(bconn *c, const uint8_t *hdr, size_t hdr_len, bframe *f);

/* route.c */
void route_call(bconn *c, bframe *f);
void route_result(bconn *c, bframe *f);
void route_cancel(bconn *c, uint64_t caller_id, int status);
void route_conn_gone(bconn *c);
/* builtin terminateCall: 0 or HYB_E_NOT_FOUND. */
int route_terminate(bconn *c, uint64_t caller_id);
void route_reply(bconn *c, uint64_t call_id, int status, const char *msg, const void *body, size_t len,
                 unsigned flags);
bool route_acl(const bconn *owner, const bus_acl *hosts, const bus_acl *apps, const bconn *peer);
/* `from` of a CALL made by c into from (the name, then the caller info of an edge or token
 * session, doc/protocol.md "Frame"): from's length, *info_len the info's. */
size_t route_caller_info(const bconn *c, char from[WIRE_ENDPOINT_MAX], uint16_t *info_len);

/* channel.c: direct channels (doc/protocol.md "Direct channels") */
/* The builtin openChannel {endpoint}: answers the call (with a channel end, or a refusal). */
void channel_open(bconn *c, bframe *f);
/* The builtin closeChannel {channel}: c (either end) no longer uses channel id; the other
 * end is sent close.  0, or HYB_E_NOT_FOUND. */
int channel_close_by_peer(bconn *c, uint64_t id, hyb_error *e);
/* c is gone (conn_reap): its channels are closed (the other ends told, grace 0) and the
 * channel ends still waiting for it closed. */
void channel_conn_gone(bconn *c);
/* c's socket is about to be closed (quota_detach): ends passed to it and still unread
 * stay charged to its uid, watched on a duplicate of the socket (shut down both ways, so
 * the peer sees the end as before) until the peer reads or closes them. */
void channel_conn_detach(bconn *c);
/* c sent frames (an event loop writes after it has read its socket): ends passed to it
 * are forgotten if its socket now holds no unread byte.  Call only with c->n_fds_out != 0
 * (it costs an ioctl). */
void channel_peer_active(bconn *c);
/* The broker is freed: the sockets still watched for unread ends are closed. */
void channel_broker_free(hyb_broker *b);
/* The procedures of c changed so that the method lists of the channels it serves may be
 * wrong: each is closed (403, grace 0, reason). */
void channel_callee_changed(bconn *c, const char *reason);
/* Every channel is closed with status and reason, grace_ms for calls in flight (a monitor
 * attached, the configuration reloaded). */
void channel_close_all(hyb_broker *b, int status, const char *reason, unsigned grace_ms);

/* xhost.c (see xhost.h): the route.c side of calls between hosts */
/* The callee for `to` (parsed into n) when it is not a local endpoint: the local one of
 * "@<this host>/...", or the pseudo connection of another host.  0 with *ret (NULL: no
 * such endpoint), or the status to answer with (msg set). */
struct bus_name;
int xhost_route(hyb_broker *b, const struct bus_name *n, bconn **ret, const char **msg);
/* May one more call go out to another host (limits.max_cluster_calls)? */
bool xhost_room(const hyb_broker *b);
/* Sends the CALL f of c, pending as id with the timeout t, to the remote callee: 0, or the
 * status to answer the caller with and *msg (the caller of this function frees the pending
 * entry). */
int xhost_forward_call(bconn *c, bconn *callee, uint64_t id, uint32_t t, bframe *f, const char **msg);
/* Sends a RESULT for call_id to the remote caller (from: the callee's name, local form). */
void xhost_send_result(bconn *caller, uint64_t call_id, int status, const char *from, size_t from_len,
                       const char *member, size_t member_len, const void *body, size_t len,
                       unsigned flags);
/* Sends CANCEL (status) of the call id to the remote callee. */
void xhost_send_cancel(bconn *callee, uint64_t id, int status);
/* Publishes a fire of the cluster bubble bb of gen (body, WIRE_F_BINARY in flags). */
void xhost_publish_event(bconn *gen, const bbubble *bb, const void *body, size_t len, unsigned flags);
/* May the endpoint name or glob ep name an endpoint of another host? */
bool xhost_ep_remote(const hyb_broker *b, const char *ep);
/* A standing subscription (ep, bubble) came (on) or went: subscribes or unsubscribes the
 * topic filter of the other hosts' events it may match (nothing when it can match none). */
void xhost_event_filter(hyb_broker *b, const char *ep, const char *bubble, bool on);

/* events.c */
void events_fire(bconn *c, bframe *f);
int events_fire_raw(bconn *gen, bbubble *bb, const void *body, size_t len, unsigned flags,
                    uint32_t *delivered, uint32_t *failed);
bbubble *events_find_bubble(bconn *owner, const char *name, size_t len);
int events_register(bconn *c, const char *name, const char *hosts, const char *apps, bool cluster,
                    hyb_error *e);
int events_revoke(bconn *c, const char *name);
int events_subscribe(bconn *c, const char *ep, const char *bubble, hyb_error *e);
int events_unsubscribe(bconn *c, const char *ep, const char *bubble);
void events_conn_gone(bconn *c);
/* Fires a builtin event (bubble of the builtin endpoint) with a JSON body. */
void events_builtin(hyb_broker *b, const char *bubble, const char *json);
/* Offers one of the broker's log lines as the builtin event Log (see events.c). */
void events_log_line(hyb_broker *b, int level, const char *msg);
/* Does anyone subscribe to the builtin event Log? */
bool events_log_wanted(hyb_broker *b);

/* builtin.c */
int builtin_init(hyb_broker *b);
void builtin_call(bconn *c, bframe *f);
/* Answers a call of a method of the broker's kind ("builtin", "store") that it does not have:
 * 406 when name (len bytes) is no method name at all (a NUL, a bad character), else 404
 * naming it. */
void builtin_reply_unknown(bconn *c, uint64_t id, const char *kind, const char *name, size_t len);

/* store-serve.c */
/* Is member one of the store methods of the builtin endpoint ("store...")? */
bool store_is_call(const char *member, size_t len);
/* Serves a store call (doc/protocol.md "Store"); answers it. */
void store_call(bconn *c, bframe *f);
/* c is gone: drops its store subscriptions. */
void store_conn_gone(bconn *c);
/* The exact text of a store value for a message: the bytes a peer wrote, while the store
 * may still deliver that write, else the value formatted (a small cache keeps the texts of
 * values sent lately).  *ret_free gets what the caller frees (NULL when the text is the
 * broker's); NULL when out of memory. */
const char *store_value_text(hyb_broker *b, const hyb_obj *o, size_t *ret_len, char **ret_free);

/* replay.c: the replay of a store subscription in pages (doc/protocol.md "Replays") */
typedef struct breplay {
        bconn *conn;
        uint64_t id;            /* the subscription's id: the call_id of its messages */
        hyb_store *st;          /* the store it reads (the host store, the cluster mirror) */
        const char *prefix;     /* put before each key's text: "/" makes a mirror key //... */
        hyb_furi *pattern;      /* while pages are left to send (query stripped), else NULL */
        hyb_furi *after;        /* the last key sent */
        struct bheld *held, **held_tail; /* the subscription's messages meanwhile */
        struct breplay *rnext, **rprev;  /* hyb_broker.replays; rprev NULL: not listed */
        /* told each message sent or held (the cluster's trace file), or NULL */
        void (*sent)(struct breplay *r, const char *key, const char *val, size_t val_len);
} breplay;
/* Sets r up for the subscription id of c to the store st; with a pattern (NULL: no replay),
 * its messages are held from now until the replay, started by replay_begin once the
 * subscription is made in st, has sent its last page.  0 or -ENOMEM. */
int replay_init(breplay *r, bconn *c, uint64_t id, hyb_store *st, const char *prefix,
                const hyb_furi *pattern);
/* Sends the first page (after the subscription's answer); the rest go a page a turn.  The
 * caller serving the peer's frames sets c->yield: the peer's next frame waits a turn. */
void replay_begin(breplay *r);
/* Sends a message of r's subscription (a write, transient write or delete of key), or holds
 * it while the replay goes on. */
void replay_message(breplay *r, const hyb_furi *key, const hyb_obj *value, bool retain);
/* The subscription ends: what r holds is dropped (and its charge given back). */
void replay_stop(breplay *r);
/* c's send queue drained while a replay of its waits for room (c->replay_wait): the replay
 * goes on at the loop's next turn. */
void store_replay_wake(bconn *c);
/* What waits to be sent to c: its send queue, its batch, and the store messages held for it
 * while a replay of its goes on (c->bev set). */
static inline size_t bconn_queued(const bconn *c)
{
        return evbuffer_get_length(bufferevent_get_output(c->bev)) + c->batch_len +
               c->store_held;
}
/* Counts a frame of n bytes queued or written to c (/sys/bus counters). */
static inline void bconn_count_out(bconn *c, size_t n)
{
        c->msgs_out++;
        c->bytes_out += n;
        c->b->msgs_out++;
        c->b->bytes_out += n;
}
/* Releases the store and what serves it (hyb_broker_free). */
void store_detach(hyb_broker *b);

/* store-quota.c: what each uid added to the host store over the bus (store.limits.max_bytes,
 * uid_max_keys, uid_max_bytes) */
typedef struct squota squota;
int squota_new(squota **ret);
void squota_free(squota *q);
/* The hash of a key text (key_len bytes) as the quota table takes it: the same as
 * hyb_furi_hash() of the fURI whose path text (hyb_furi_get_path_str) it is, so a caller
 * holding that fURI passes its hash and the text is not hashed again. */
uint64_t squota_hash(const char *key, size_t key_len);
/* May uid write value_len bytes of value text at key (key_len, the fURI's path text; hash,
 * squota_hash of it)?  0, or HYB_E_INSUFFICIENT_STORAGE naming the quota in *e. */
int squota_check(hyb_broker *b, uid_t uid, const char *key, size_t key_len, uint64_t hash,
                 size_t value_len, hyb_error *e);
/* One key of a write that stores several (a branch write's children), for squota_check_many. */
typedef struct squota_item {
        const char *key;        /* the fURI's path text, key_len bytes */
        size_t key_len;
        uint64_t hash;          /* squota_hash of it */
        size_t value_len;
        bool del;               /* the write deletes the key (value_len unused) */
} squota_item;
/* May uid write all n items (distinct keys) in one write?  The same bounds as squota_check,
 * applied to their sum: what they add, less what they replace or delete; a write that grows
 * nothing always passes.  0 or HYB_E_INSUFFICIENT_STORAGE. */
int squota_check_many(hyb_broker *b, uid_t uid, const squota_item *items, size_t n,
                      hyb_error *e);
/* After the write: key's charge (key_len + value_len) is uid's.  hash as for squota_check.
 * Right after a squota_check of the same key text (the same pointer, kept alive in between)
 * that passed, the check's look-up is reused unless the table changed meanwhile. */
int squota_charge(hyb_broker *b, uid_t uid, const char *key, size_t key_len, uint64_t hash,
                  size_t value_len);
/* After a delete inside the lst/rec key holds: key's charge follows the value's new size
 * (key_len + value_len), its owner unchanged; nothing when key is not charged. */
void squota_resize(hyb_broker *b, const char *key, size_t key_len, uint64_t hash,
                   size_t value_len);
/* After a delete of key: its charge is released. */
void squota_release(hyb_broker *b, const char *key, size_t key_len, uint64_t hash);
size_t squota_get_n(const hyb_broker *b);
/* What uid holds (keys, bytes) and what all hold (bytes). */
void squota_get_usage(const hyb_broker *b, uid_t uid, size_t *ret_keys, size_t *ret_bytes,
                      size_t *ret_total);
/*
 * THE check of a store request (policy.store, and /sys/ read-only): may the peer c (its uid
 * and app, or for a token session its token's capabilities instead of policy.store)
 * exercise `right` (one BROKER_STORE_*) on f (a fURI or a pattern, which must lie within a
 * rule's pattern)?  0, or HYB_E_FORBIDDEN with the reason in *e.
 */
int store_acl_check(hyb_broker *b, const bconn *c, unsigned right, const hyb_furi *f, hyb_error *e);

/* The compiled policy.store rules of c (patterns parsed once; each points into c, which must
 * outlive them): 0, or -ENOMEM.  store_acl_set frees b's rules and installs acl (hyb_broker_set_store,
 * hyb_broker_reload). */
int store_acl_build(const broker_config *c, struct bstore_rule **ret, size_t *ret_n);
void store_acl_free(struct bstore_rule *acl, size_t n);
void store_acl_set(hyb_broker *b, struct bstore_rule *acl, size_t n);

/* edge-peer.c: the network edge's principals as peers of this broker (lib/edge) */
/*
 * Verifies a token presented to the edge (auth.issuers, auth.audience, auth.max_lifetime_s,
 * revocation) as a bus connect does, without the bus proof (the edge checks its own proof
 * against the result's holder key).  0 with *ret, or HYB_E_UNAUTHORIZED with the reason in
 * *e (auth.tokens off: no token is accepted).
 */
int broker_edge_verify(hyb_broker *b, const char *token, size_t len, hyb_token_result **ret,
                       hyb_error *e);
/*
 * A new session for one principal of the edge: a bufferevent pair inside the daemon (no
 * socket: both ends are served by b->base, their callbacks deferred to the loop so neither
 * side's callback runs inside the other's write), whose broker end is an
 * authenticated peer @localhost/org.hybridos.edge/<transport><serial> with the rights of tok
 * (its token's capabilities, as a token session of the bus) or, tok NULL, of the anonymous
 * principal (uid BROKER_EDGE_ANON_UID under policy.store and the access lists).  *ret_bev is
 * the edge's end (the caller's to end with broker_pair_close), speaking the bus protocol
 * (doc/protocol.md) from "Calls" on: no handshake.  0, or -errno / HYB_E_UNAVAILABLE (shutting down, quotas).
 */
#define BROKER_EDGE_APP "org.hybridos.edge"
#define BROKER_EDGE_ANON_UID ((uid_t)65534)
int broker_edge_session(hyb_broker *b, hyb_token_result *tok, const char *transport,
                        struct bufferevent **ret_bev, hyb_error *e);
/*
 * A new session for a remote bus peer (the WebSocket listener, lib/edge/ws.c): an in-memory
 * bufferevent pair (broker_pair_new) whose broker end is a new, unauthenticated peer (uid BROKER_EDGE_ANON_UID, caller
 * transport `transport`, "ws" or "wss": a static string) that is sent the CHALLENGE at once
 * and must answer with an AUTH carrying a token whose proof binds to `binding` ("ws-none",
 * or "tls-exporter:..."); without a token, or with auth.tokens off, its AUTH is refused 401.
 * peer ("ADDRESS:PORT") names it in the log.
 * limits.auth_timeout_ms runs from now.  *ret_bev is the edge's end (its callbacks unset; the
 * edge ends it with broker_pair_close), speaking the whole bus protocol (the handshake
 * included); *ret_serial names the session for
 * broker_ws_session_drop (the lower, the older).  0, or -errno / HYB_E_UNAVAILABLE
 * (shutting down, quotas: the reason in *e).
 */
/*
 * Ends the edge's end of an in-daemon session: what it wrote is handed to the broker, which
 * sees the end of the session (as a socket's EOF), then bev is freed.  The broker ends its
 * own end the same way, so the edge's event callback sees BEV_EVENT_EOF.
 */
void broker_pair_close(struct bufferevent *bev);
int broker_ws_session(hyb_broker *b, const char *transport, const char *binding,
                      const char *peer, struct bufferevent **ret_bev, uint64_t *ret_serial,
                      hyb_error *e);
/* Would a new remote session be refused for the budget of sessions not yet authenticated
 * (limits.max_unauth_connections, or uid_max_unauth_connections of uid 65534)? */
bool broker_ws_preauth_full(hyb_broker *b);
/* Closes the remote session `serial` at once if it is not authenticated yet (it leaves the
 * budget of unauthenticated sessions now): true, else false (gone, or authenticated). */
bool broker_ws_session_drop(hyb_broker *b, uint64_t serial);
/* The listen.http edge of the broker (lib/edge), started by hyb_broker_start. */
struct edge_http;
int broker_edge_start(hyb_broker *b, hyb_error *e);
void broker_edge_stop(hyb_broker *b);

/* cluster-serve.c: the MQTT link of cluster: and the cluster scope //... served over it
 * (doc/cluster.md).  start makes the link when cluster.broker is set (0 otherwise); stop
 * frees it, answering what waits with 503. */
int broker_cluster_start(hyb_broker *b, hyb_error *e);
void broker_cluster_stop(hyb_broker *b);
/* The store calls of store-serve.c on a fURI of the cluster scope, after its access check:
 * each answers the call (now, or once the broker acknowledged).  read: storeRead (flags
 * HYB_READ_KEYED) or, page true, storeReadPage (after: its cursor or NULL, limit). */
void cluster_read(bconn *c, uint64_t id, const hyb_furi *f, unsigned flags, bool page,
                  const hyb_furi *after, size_t limit);
void cluster_write(bconn *c, uint64_t id, const hyb_furi *f, const hyb_obj *v, unsigned wflags);
void cluster_subscribe(bconn *c, uint64_t id, uint64_t sid, const hyb_furi *f, unsigned flags);
/* storeUnsubscribe of a cluster subscription: 1 when sid was one (answered), else 0. */
int cluster_unsubscribe(bconn *c, uint64_t id, uint64_t sid);
/* Is sid one of c's cluster subscriptions? */
bool cluster_has_sub(bconn *c, uint64_t sid);
void cluster_conn_gone(bconn *c);
/* store-serve.c helpers shared with cluster-serve.c */
size_t store_read_cap(const hyb_broker *b);
int store_values_of(const hyb_obj *rec, hyb_obj **ret);
int store_page_answer(const hyb_obj *items, const hyb_furi *next, char **ret);
/* How many of items' first fURI=>value pairs fit an answer of max bytes (keyed: the keys
 * counted too), measured value by value before the answer is formatted.  0 or -ENOMEM. */
int store_items_that_fit(hyb_broker *b, const hyb_obj *items, bool keyed, size_t max,
                         size_t *ret_n);
/* Cuts a page (*items, its cursor *next) to its first k pairs, 0 < k < its length; *next
 * becomes the k-th key.  0 or -ENOMEM (nothing changed). */
int store_page_cut(hyb_obj **items, hyb_furi **next, size_t k);

/* monitor.c */
void monitor_copy(hyb_broker *b, unsigned type, const wire_hdr *h, const char *from, size_t from_len,
                  const char *to, size_t to_len, const char *member, size_t member_len,
                  const void *body, size_t len);

#endif
