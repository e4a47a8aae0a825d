/* SPDX-License-Identifier: MIT */
/*
 * Client connection internals shared by bus-conn.c, call.c, event.c and endpoint.c.
 *
 *   hyb_bus
 *    |- fd, rbuf [consumed | unparsed bytes | free], wbuf (output not yet written)
 *    |- calls:   bus_call <-> bus_call <-> ...   (pending, oldest first: replies
 *    |                                            mostly come in order)
 *    |- deadlines: binary min-heap of the same calls by deadline_us, so the
 *    |             next local deadline is O(1) and a link/unlink O(log n)
 *    |- methods: bus_method -> ...               (procedures this endpoint offers)
 *    |- subs:    bus_sub -> ...                  (event subscriptions, local fan-out)
 *    |- deferred: hyb_bus_request -> ...         (answered later; cancel lookup)
 *    `- monitors: bus_monitor -> ...
 * Every incoming packet is copied out of rbuf before callbacks run, so nested
 * calls from a handler may refill and move rbuf freely.
 */
#ifndef HYB_BUS_INTERNAL_H
#define HYB_BUS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hybrid/bus.h"
#include "hybrid/endpoint.h"
#include "hybrid/obj.h"
#include "common/slot.h"
#include "wire.h"

struct event;
struct epoll_event;

typedef struct bus_call {
        hyb_slot slot; /* first: the async call's slot */
        hyb_bus *bus;
        struct bus_call *prev, *next;
        uint64_t id;
        uint64_t deadline_us; /* local guard: broker deadline + grace */
        size_t heap_idx;      /* position in hyb_bus.deadlines while linked */
        hyb_bus_reply_fn cb;  /* NULL for a sync call */
        hyb_bus_reply *reply; /* sync: set when done */
        struct bus_chan *chan; /* sent over this direct channel (referenced), else NULL */
        struct bus_peer *peer; /* sent through the broker to this peer's endpoint, else NULL */
        /* A channel call, to send again through the broker should the service say it was
         * not run (403 "direct channel closed"): the sync caller's own arguments, or for an
         * async call a copy (r_copy, freed with the call). */
        const char *r_endpoint, *r_method;
        const void *r_body;
        size_t r_len;
        unsigned r_flags;
        void *r_copy;
        bool done;
        bool linked;
        bool open_channel; /* a CALL of builtin openChannel: its RESULT 200 brings an fd */
        /* bus_call_sync_sink: a 200 answer from the broker is given to sink where it was
         * read (no reply is made); sunk then, with sink's return in sink_r */
        int (*sink)(const void *body, size_t len, void *ud);
        void *sink_ud;
        int sink_r;
        bool sunk;
} bus_call;

typedef struct bus_method {
        hyb_slot slot;
        hyb_bus *bus;
        struct bus_method *next;
        char *name;
        hyb_bus_method_fn handler;
        hyb_arg_policy *args; /* owned copy; NULL when no policy */
        size_t n_args;
        unsigned flags;
        struct bus_method *group_next; /* table registrations: the other methods of the slot */
        bool registered;
} bus_method;

typedef struct bus_sub {
        hyb_slot slot;
        hyb_bus *bus;
        struct bus_sub *next;
        char *endpoint;
        char *bubble;
        hyb_bus_event_fn cb;
        bool registered;
} bus_sub;

typedef struct bus_bubble {
        hyb_slot slot;
        hyb_bus *bus;
        char *name;
} bus_bubble;

typedef struct bus_monitor {
        hyb_slot slot;
        hyb_bus *bus;
        struct bus_monitor *next;
        hyb_bus_monitor_fn cb;
} bus_monitor;

struct hyb_bus_reply {
        atomic_uint n_ref;
        int status;
        unsigned flags;
        const char *sender;
        const char *message;
        const uint8_t *body;
        size_t body_len;
        /* sender, message, body follow, each NUL-terminated */
};

struct hyb_bus_request {
        atomic_uint n_ref;
        hyb_bus *bus; /* referenced while the request lives */
        struct hyb_bus_request *prev, *next;
        uint64_t id;
        uint64_t deadline_us;
        unsigned flags;
        bool answered;
        bool cancelled;
        bool linked;
        bool chan_counted; /* counted in chan->n_pending until answered or cancelled */
        hyb_bus_cancel_fn cancel_cb;
        void *cancel_ud;
        struct bus_chan *chan; /* read on this direct channel (referenced): answer there */
        const char *caller;
        uint32_t caller_uid; /* from the broker's CALL (aux) */
        const char *transport; /* the caller info at the end of `from`, or NULL (none) */
        const char *principal;
        const char *method;
        const uint8_t *body;
        size_t body_len;
};

struct hyb_bus_event {
        const char *source;
        const char *bubble;
        const uint8_t *body;
        size_t body_len;
        unsigned flags;
};

/*
 * A direct channel (channel.c, doc/bus.md "Direct channels"): a socket the broker made
 * and passed to both ends.  On the caller's side (service false) it carries our CALLs
 * and CANCELs to one endpoint and its RESULTs back; on the service's side (service true)
 * a caller's CALLs and CANCELs to us, our RESULTs back.
 */
typedef struct bus_chan {
        unsigned n_ref;        /* the bus's list, each call or request on it, a dispatch */
        hyb_bus *bus;          /* NULL once the bus is gone */
        struct bus_chan *next; /* hyb_bus.chans */
        int fd;                /* -1 once closed */
        uint64_t id;           /* the broker's channel id */
        bool service;
        bool linked;           /* in hyb_bus.chans (and in the epoll set) */
        bool closing;          /* closing: no new calls on it */
        bool broker_closed;    /* the broker sent close (it forgot the channel) */
        bool ep_out;           /* EPOLLOUT asked for (output queued) */
        bool drained;          /* the last read came back short */
        uint32_t rcvtimeo_ms;  /* the SO_RCVTIMEO set on fd (bus_chan_wait_read); 0: none */
        uint64_t close_at;     /* service, closing: the broker's grace end */
        char reason[128];
        char **methods;        /* the methods the broker allows on it */
        size_t n_methods;
        uint8_t *rbuf;
        size_t rpos, rlen, ralloc;
        uint8_t *wbuf;
        size_t wpos, wlen, walloc;
        size_t max_body;
        /* service side */
        char *from;            /* the caller's name + caller info, as a CALL's `from` */
        uint16_t from_len, info_len;
        uint32_t uid;
        size_t max_pending, max_queue, n_pending;
        size_t uid_max_pending; /* service: pending over all channels of the caller's uid */
        /* caller side */
        struct bus_peer *peer;
        size_t n_calls;        /* our calls pending on it */
        uint64_t first_id, last_id; /* the ids of our first and latest call on it */
} bus_chan;

/* The caller side's record of one endpoint it calls (case-insensitive name). */
typedef struct bus_peer {
        struct bus_peer *next;
        char *endpoint;
        bus_chan *chan;   /* open channel, or NULL */
        size_t n_broker;  /* calls to it in flight through the broker */
        uint64_t seen;    /* calls made to it */
        bool opening;     /* an openChannel is in flight */
        uint32_t backoff; /* after a refusal: calls that make no new request */
        uint32_t skip;
} bus_peer;

#define BUS_FD_FIFO_MAX 256u /* received fds not claimed yet (the broker bounds them); more are closed */
#define BUS_PEERS_MAX 64u  /* endpoints a caller keeps a channel record for */

struct hyb_bus {
        atomic_uint n_ref;
        int fd;
        /* A Unix connection's public fd: an epoll set of fd and every channel socket
         * (-1 for ws://).  EPOLLOUT of fd is asked for while output is queued (ep_out). */
        int efd;
        pid_t efd_pid; /* the process that made efd: a fork()ed child shares the set */
        bool ep_out;
        bool direct_off;      /* hyb_bus_set_direct(false) */
        bus_chan *chans;
        size_t n_chans;
        bus_peer *peers;
        size_t n_peers;
        int fd_fifo[BUS_FD_FIFO_MAX]; /* fds received on fd, oldest first */
        size_t n_fd_fifo;
        size_t n_open_lost; /* openChannel calls given up here (504, cancel) whose RESULT may still come */
        /* events an epoll_wait returned that are not handled yet */
        struct epoll_event *evs;
        int n_evs, evs_pos;
        /* The channel read last (not referenced; NULL once it goes): hyb_bus_process reads
         * it before asking the set (bus_chan_read_hot), at most hot_left times between two
         * epoll_waits, so that a busy channel cannot starve the other sockets. */
        bus_chan *chan_hot;
        uint8_t hot_left;
        /* A read of it that found nothing (the loop woke for another socket) makes the next
         * 1, 2, 4 ... 64 steps ask the set at once; one that finds input resets that. */
        uint8_t hot_skip, hot_backoff;
        bool closed;
        /* Why the broker closed us (its last ERROR frame): a status, 0 if it did not say. */
        uint16_t close_status;
        char close_msg[160];
        char *name;
        size_t name_len;
        size_t max_body;

        uint8_t *rbuf;
        size_t rpos, rlen, ralloc;
        uint8_t *wbuf;
        size_t wpos, wlen, walloc;

        uint64_t next_id;
        bus_call *calls_head, *calls_tail;
        size_t n_calls;
        bus_call **deadlines; /* min-heap by deadline_us, n_calls entries */
        size_t deadlines_alloc;
        bus_method *methods;
        bus_sub *subs;
        bus_monitor *monitors;
        struct bus_ssub *ssubs;  /* store subscriptions (bus-store.c) */
        uint64_t next_ssub;
        hyb_bus_request *deferred;

        struct event_base *base;
        struct event *ev_io;
        struct event *ev_timer;
        unsigned depth; /* nesting of sync waits, for the libevent adapter */
        bool drained;   /* the last read came back short: skip one read before polling */
        bool corked;    /* hyb_bus_set_cork: packets wait in wbuf for the next flush */
        /* bus_step_buffered dispatches a packet read together with more complete ones:
         * what it sends waits in wbuf (held), up to BUS_HOLD_MAX bytes, and leaves with the
         * next packet sent outside such a batch (one sendmsg for the answers of a read) */
        bool batching;
        bool held;      /* wbuf holds only packets of a batch (the socket took all before) */
        uint64_t held_at; /* when the first of them was held (BUS_HOLD_USEC) */
        uint32_t spin_us;      /* hyb_bus_set_spin: a sync wait reads this long before sleeping */
        uint16_t spin_skip;    /* sync waits left that sleep at once (a spin found nothing) */
        uint16_t spin_backoff; /* the last spin_skip set: doubles per spin in vain, up to 256 */
        struct bus_ws *ws; /* a ws:// or wss:// connection (bus-ws.c), else NULL: Unix */
        /* A Unix connection's socket is blocking once connected: a synchronous wait
         * sleeps in recv() itself, bounded by SO_RCVTIMEO (bus_wait_read); every other
         * read or write of the library passes MSG_DONTWAIT. */
        bool fd_blocking;     /* a sync wait may sleep in recv() (not ws://, not cancellable) */
        uint32_t rcvtimeo_ms; /* the SO_RCVTIMEO set on the socket; 0: none (no limit) */
        /* bus_connect_cancellable: every blocking wait of this connection (the connect,
         * the handshake, synchronous calls) also watches cancel_fd and gives up with
         * -ECANCELED once it is readable.  Not for the public API: hybridd's own fetch
         * threads, which must stop when the daemon stops. */
        bool cancellable;
        int cancel_fd;
};


/* bus-conn.c */
/*
 * hyb_bus_connect_with, with every blocking wait of the connection (connect, handshake,
 * synchronous calls, flush) bounded by cancel_fd too: once it is readable (an eventfd
 * written by whoever stops the caller) the wait fails with -ECANCELED (the connect then
 * fails, *reterr says so).  cancel_fd stays the caller's: it must outlive the bus and is
 * never read or closed here.
 */
int bus_connect_cancellable(const hyb_bus_connect_options *opts, int cancel_fd, hyb_bus **ret,
                            hyb_error *reterr);
int bus_send(hyb_bus *bus, wire_hdr *h, const char *to, size_t to_len, const char *member,
             size_t member_len, const void *body, size_t body_len);
/* One non-blocking read of the broker socket / write of its queued output: >= 0, or
 * < 0 and the connection is closed (its calls failed). */
int bus_read_nb(hyb_bus *bus);
int bus_flush_nb(hyb_bus *bus);
/* Reads what is available (non-blocking) and dispatches at most one packet. >0 did work. */
int bus_step(hyb_bus *bus);
int bus_poll(hyb_bus *bus, uint64_t deadline_us);
int bus_wait_for(hyb_bus *bus, const bool *done, uint64_t deadline_us);
void bus_fail_all(hyb_bus *bus);
void bus_update_event(hyb_bus *bus);
/* Appends raw bytes to the write buffer / a packet to the read buffer (bus-ws.c's
 * framing).  0 or -ENOMEM. */
int bus_wbuf_append(hyb_bus *bus, const void *p, size_t len);
int bus_rbuf_append(hyb_bus *bus, const void *p, size_t len);

/* channel.c */
/* Keeps the broker socket's EPOLLOUT interest in step with queued output. */
void bus_ep_sync(hyb_bus *bus);
/* An fd received with bytes of the broker socket: queued for the frame that claims it. */
void bus_fd_push(hyb_bus *bus, int fd);
/* The oldest received fd (the caller owns it), or -1 (none: logged). */
int bus_fd_claim(hyb_bus *bus);
void bus_fds_close(hyb_bus *bus);
/* A CHANNEL frame from the broker (open or close). */
void bus_dispatch_channel(hyb_bus *bus, const wire_packet *p);
/* A RESULT from the broker that matches no pending call: one of an openChannel that
 * ended locally carries an fd, closed here. */
void bus_orphan_result(hyb_bus *bus, const wire_packet *p);
/* The RESULT 200 of an openChannel the library did not ask for itself (the application
 * called it): its fd is closed, the broker told (closeChannel). */
void bus_chan_drop_granted(hyb_bus *bus, const wire_packet *p);
void bus_chan_open_result(hyb_bus *bus, const hyb_bus_reply *rep, void *userdata);
/* Has the uid of ch's caller as many calls pending over all its channels as allowed? */
bool bus_chan_uid_full(const hyb_bus *bus, const bus_chan *ch);
/* With channels open: reads what the ready sockets have (epoll_wait until deadline_us,
 * 0: do not sleep) and dispatches one buffered frame of a channel.  >0 did work, 0
 * nothing, < 0 the broker connection failed. */
int bus_chan_wait(hyb_bus *bus, uint64_t deadline_us);
/*
 * A synchronous call's wait that sleeps in recv() on the one channel its answer comes on,
 * as bus_wait_read does on the broker socket (the service reading the call already wakes
 * this side, so the answer finds it waking): only when nothing else can need the
 * connection meanwhile.  1 read input, 0 none (SO_RCVTIMEO ran out, a signal, or the
 * channel closed on an error: its calls failed), -EAGAIN: wait on the epoll set instead.
 */
int bus_chan_wait_read(hyb_bus *bus, uint64_t deadline_us);
/* SO_RCVTIMEO on fd for a recv() that must end before deadline_us (bus-conn.c, which says
 * how); *set_ms is what fd has now.  0 set, -EAGAIN: too little time left, poll instead. */
int bus_fd_rcvtimeo(int fd, uint32_t *set_ms, uint64_t deadline_us);
/* hyb_bus_process with channels open and no events kept: reads the channel read last
 * (MSG_DONTWAIT) instead of asking the set first, when that channel was emptied by its
 * last read, expects input (a service's, or a caller's with calls pending on it) and
 * fewer than BUS_HOT_MAX such reads were made since the last epoll_wait.  1 got bytes
 * (dispatch them) or the channel closed at EOF, 0 not tried or nothing there (ask the
 * set). */
int bus_chan_read_hot(hyb_bus *bus);
/* With channels open, the wait of bus_poll: epoll_wait on the set (ms as poll's), its
 * events kept for bus_chan_wait (no second look at the set).  > 0 ready, 0 timeout,
 * -errno. */
int bus_chan_poll(hyb_bus *bus, int ms);
/* Dispatches one complete frame buffered on a channel: 1, or 0 none. */
int bus_chan_step_buffered(hyb_bus *bus);
bool bus_chan_buffered(const hyb_bus *bus);
/* Writes what channels have queued (non-blocking). */
void bus_chan_flush(hyb_bus *bus);
/* The caller side: the channel a call to endpoint/method goes over (not referenced),
 * or NULL: through the broker, with *ret_peer the endpoint's record (or NULL). */
bus_chan *bus_chan_route(hyb_bus *bus, const char *endpoint, const char *method, size_t len,
                         bus_peer **ret_peer);
/* After a call went through the broker to peer: opens a channel when it is time. */
void bus_chan_maybe_open(hyb_bus *bus, bus_peer *peer);
int bus_chan_send(bus_chan *ch, wire_hdr *h, const char *from, size_t from_len,
                  const char *member, size_t member_len, const void *body, size_t body_len);
bus_chan *bus_chan_ref(bus_chan *ch);
void bus_chan_unref(bus_chan *ch);
/* A call on the caller side's channel ended (answered, expired, cancelled). */
void bus_chan_call_done(bus_chan *ch);
/* A request on a service channel got its answer or was cancelled. */
void bus_chan_request_done(bus_chan *ch);
/* A method of this bus was revoked: it leaves every channel's list. */
void bus_chan_method_revoked(hyb_bus *bus, const char *name);
/* The next time a closing service channel must close (UINT64_MAX none); closes due ones. */
uint64_t bus_chan_next_deadline(const hyb_bus *bus);
void bus_chan_expire(hyb_bus *bus);
/* The bus closes: every channel goes (its calls failed by the caller). */
void bus_chan_close_all(hyb_bus *bus);

/* call.c */
void bus_dispatch_result(hyb_bus *bus, const wire_packet *p);
void bus_dispatch_call(hyb_bus *bus, const wire_packet *p);
/* A CALL read on service channel ch: p as the broker would deliver it (from, info, aux). */
void bus_dispatch_call_chan(hyb_bus *bus, bus_chan *ch, const wire_packet *p);
void bus_dispatch_cancel(hyb_bus *bus, bus_chan *ch, const wire_packet *p);
/* The caller side: a RESULT read on channel ch (closes ch when it matches no call on it). */
void bus_dispatch_result_chan(hyb_bus *bus, bus_chan *ch, const wire_packet *p);
/* Fails every call pending on ch with 502 (the channel is gone). */
void bus_fail_chan_calls(hyb_bus *bus, bus_chan *ch);
int bus_expire_calls(hyb_bus *bus);
uint64_t bus_next_deadline(const hyb_bus *bus);
hyb_bus_reply *bus_reply_new(int status, unsigned flags, const char *sender, size_t sender_len,
                             const char *msg, size_t msg_len, const void *body, size_t body_len);
/* Sync builtin call with a JSON body: 0 or the error (message in reterr). */
int bus_builtin(hyb_bus *bus, const char *method, const char *json, hyb_bus_reply **ret,
                hyb_error *reterr);
/* Links c (id and deadline_us set) as pending: 0 or -ENOMEM.  Link calls as their ids are
 * given (ids grow): bus_dispatch_result relies on the list running in id order. */
int bus_call_link(hyb_bus *bus, bus_call *c);
void bus_call_unlink(bus_call *c);
/* bus_call_sync's flag (beside HYB_BODY_BINARY): the call goes to the broker's builtin
 * endpoint (endpoint is HYB_BUS_BUILTIN_ENDPOINT) with a method other than openChannel, so
 * it is never sent over a direct channel nor asks for one: neither is looked up. */
#define BUS_CALL_BUILTIN (1u << 30)
/* A sync call whose *ret gets the reply whatever its status (< 0 only for local failures). */
int bus_call_sync(hyb_bus *bus, const char *endpoint, const char *method, const void *body,
                  size_t len, unsigned flags, uint32_t timeout_ms, hyb_bus_reply **ret,
                  hyb_error *reterr);
/* bus_call_sync, but an answer of status 200 that comes through the broker is not made a
 * reply: sink(body, len, ud) takes its body where it was read (valid during the call only),
 * *ret is set to NULL, and sink's return is returned (< 0: an error of sink's, which sets
 * no reterr).  Any other answer is *ret, as from bus_call_sync (0 returned). */
int bus_call_sync_sink(hyb_bus *bus, const char *endpoint, const char *method, const void *body,
                       size_t len, unsigned flags, uint32_t timeout_ms,
                       int (*sink)(const void *body, size_t len, void *ud), void *sink_ud,
                       hyb_bus_reply **ret, hyb_error *reterr);

/* bus-store.c */
/* An EVENT from the builtin endpoint's member "store": a store subscription's message. */
bool bus_store_is_msg(const wire_packet *p);
void bus_store_dispatch(hyb_bus *bus, const wire_packet *p);
/* hyb_bus_store_read with hyb_read_flags (HYB_READ_KEYED: storeReadKeyed). */
int bus_store_read_flags(hyb_bus *bus, const char *furi, unsigned flags, hyb_obj **ret,
                         hyb_error *reterr);
/* The bus goes away: store subscriptions still held become inert. */
void bus_store_free_all(hyb_bus *bus);

/* event.c */
void bus_dispatch_event(hyb_bus *bus, const wire_packet *p);
void bus_dispatch_monitor(hyb_bus *bus, const wire_packet *p);
bus_method *bus_find_method(hyb_bus *bus, const char *name, size_t len);
/* Registers one method with the broker (policy JSON included); the caller links it. */
int bus_method_register(hyb_bus *bus, bus_method *m, const char *for_host, const char *for_app,
                        hyb_error *reterr);
void bus_method_revoke(bus_method *m);
extern const slot_ops bus_method_slot_ops;

/* endpoint.c */
int bus_policy_check(const hyb_arg_policy *args, size_t n, const void *body, size_t len,
                     hyb_error *reterr);
struct json_t *bus_policy_json(const hyb_arg_policy *args, size_t n);

/*
 * The credentials of the environment: $HYBRID_TOKEN (a token file) and $HYBRID_KEY (its
 * holder's private key file), both read (*ret_token, *ret_key: the caller's), or neither set
 * (both NULL).  One without the other, or a file that cannot be used: HYB_E_UNAUTHORIZED
 * (the credentials meant cannot be shown).  Ignored in setuid programs (secure_getenv).
 */
int bus_env_credentials(char **ret_token, struct hyb_key **ret_key, hyb_error *reterr);
/*
 * Copies the caller's size-stamped connect options into *o (the fields an older caller does
 * not know stay zero) and stamps it with our size.  -EINVAL without opts, without its size,
 * or without app or runner.
 */
int bus_connect_options_copy(hyb_bus_connect_options *o, const hyb_bus_connect_options *opts);

#endif
