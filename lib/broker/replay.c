/* SPDX-License-Identifier: MIT */
/*
 * Replays in pages (doc/protocol.md "Replays"): the retained values a new store subscription
 * asks for (storeSubscribe flag 1), from the host store (store-serve.c) or from the cluster's
 * mirror (cluster-serve.c).
 *
 * The subscription is made in its store without a replay: its messages start at once and wait
 * in r->held (whole frames, charged to the peer and counted as its queue by bconn_room), while
 * the broker sends the retained values that match in pages of at most
 * store.limits.max_read_keys, in key order: the first page now, then one page a turn of the
 * loop, all replays together getting max_read_keys messages a turn, shared by peer, so a
 * replay of a large tree never stalls the other peers.  A page is read when it is sent: a key
 * written after the subscription may be replayed with its new value and then also come as the
 * write's message (held, so after the replay), never the other way round.  A peer that does
 * not read its replay is not cut off for it: the pages wait while its send queue is over
 * replay_room and go on when it drains (quota.c out_changed -> store_replay_wake).
 *
 *   hyb_broker.replays: breplay <-> breplay ...   (the replays with pages left, in turn)
 *   breplay.held: bheld -> bheld ...              (the subscription's frames meanwhile)
 */
#include "broker-internal.h"
#include "common/util.h"
#include "hybrid/bus.h"
#include "store/store-internal.h" /* store_replay_page */

static const char store_member[] = "store";

/* A message frame held while its subscription's replay is still being sent. */
struct bheld {
        struct bheld *next;
        size_t len;
        uint8_t data[];
};
/* What a held frame of n bytes costs, charged as such: the frame, its header and malloc's. */
#define HELD_SIZE(n) (sizeof(struct bheld) + 16 + (n))

/* A replay sends while its peer's send queue is under this: a quarter of send_queue_bytes,
 * at most 256 KiB; it waits for the queue to drain to half of it otherwise. */
static size_t replay_room(const hyb_broker *b)
{
        size_t q = b->c->send_queue_bytes / 4;

        return q < 256u * 1024 ? q : 256u * 1024;
}

/* The peer's send queue alone (not bconn_queued): only its draining calls out_changed, which
 * wakes a waiting replay; the batch leaves at the end of the turn and held frames after the
 * replay, so waiting on them would never end. */
static size_t conn_queued(const bconn *c)
{
        return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

static void replay_list(hyb_broker *b, breplay *r)
{
        if (!b->replays)
                b->replays_tail = &b->replays;
        r->rnext = NULL;
        r->rprev = b->replays_tail;
        *b->replays_tail = r;
        b->replays_tail = &r->rnext;
}

static void replay_unlist(hyb_broker *b, breplay *r)
{
        if (!r->rprev)
                return;
        *r->rprev = r->rnext;
        if (r->rnext)
                r->rnext->rprev = r->rprev;
        else
                b->replays_tail = r->rprev;
        r->rnext = NULL;
        r->rprev = NULL;
}

static void replay_run(evutil_socket_t fd, short what, void *ud);

/* Arms the replay timer for the loop's next turn (with the sockets' events of that turn). */
static void replay_arm(hyb_broker *b)
{
        struct timeval now = { 0, 0 };

        if (b->shutting_down)
                return;
        if (!b->replay_timer)
                b->replay_timer = evtimer_new(b->base, replay_run, b);
        if (b->replay_timer && !evtimer_pending(b->replay_timer, NULL))
                evtimer_add(b->replay_timer, &now);
}

/* Holds the frame in iov until r's replay ends, charged to its peer like its send queue: a
 * peer that lets too much wait is cut off as a slow reader, as a send would have cut it off. */
static void replay_hold(breplay *r, const struct iovec *iov, int n)
{
        bconn *c = r->conn;
        struct bheld *h;
        size_t total = 0, at = 0;

        for (int i = 0; i < n; i++)
                total += iov[i].iov_len;
        if (!bconn_room(c, HELD_SIZE(total)))
                return;
        h = malloc(sizeof *h + total);
        if (!h) {
                quota_cut(c, 507, "max_memory", "no memory to hold a store message");
                return;
        }
        for (int i = 0; i < n; i++) {
                memcpy(h->data + at, iov[i].iov_base, iov[i].iov_len);
                at += iov[i].iov_len;
        }
        h->len = total;
        h->next = NULL;
        *r->held_tail = h;
        r->held_tail = &h->next;
        c->store_held += HELD_SIZE(total);
        quota_charge(c, HELD_SIZE(total), 0);
}

/* Releases what r holds for its replay; sends the held messages first when send. */
static void replay_release(breplay *r, bool send)
{
        bconn *c = r->conn;
        struct bheld *h;

        if (c)
                replay_unlist(c->b, r);
        while ((h = r->held)) {
                r->held = h->next;
                c->store_held -= HELD_SIZE(h->len);
                quota_charge(c, 0, HELD_SIZE(h->len));
                if (send) {
                        struct iovec v = { h->data, h->len };
                        send = bconn_send_built(c, &v, 1) == 0;
                }
                free(h);
        }
        r->held_tail = &r->held;
        r->pattern = hyb_furi_unref(r->pattern);
        r->after = hyb_furi_unref(r->after);
}

void replay_stop(breplay *r)
{
        replay_release(r, false);
}

/* One message of r's subscription: "<prefix><key>\n<value>", 200 for a retained value, 202
 * for a transient one; a live one (not replayed) waits while the replay goes on.  The value's
 * text is the one the peer wrote, or the format cache's (store_value_text). */
static void replay_frame(breplay *r, const hyb_furi *key, const hyb_obj *value, bool retain,
                         bool live)
{
        const char *k = hyb_furi_get_str(key), *val;
        char *val_free = NULL;
        size_t pl = strlen(r->prefix), kl = strlen(k), vl = 0;
        wire_hdr h = { .type = WIRE_EVENT, .flags = WIRE_F_BINARY, .status = retain ? 200 : 202,
                       .call_id = r->id };
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[4];

        val = store_value_text(r->conn->b, value, &vl, &val_free);
        if (!val)
                return;
        /* header and names from wire_build, then the key and the value without a copy */
        (void)wire_build(&h, HYB_BUS_BUILTIN_ENDPOINT, sizeof HYB_BUS_BUILTIN_ENDPOINT - 1, NULL,
                         0, store_member, sizeof store_member - 1, NULL, pl + kl + 1 + vl, buf,
                         iov);
        _Static_assert(5 <= BCONN_SEND_IOV, "a store message is 5 iovecs");
        struct iovec out[5] = {
                { buf, iov[0].iov_len },
                { (void *)r->prefix, pl },
                { (void *)k, kl },
                { (void *)"\n", 1 },
                { (void *)val, vl },
        };
        if (live && r->pattern)
                replay_hold(r, out, 5);
        else
                /* Straight to the socket when its queue is empty, as a reply would go: queued
                 * in the output buffer, it would wait for the loop's next turn to be written.
                 * A full queue cuts the subscriber off as a slow consumer (507), as for
                 * events. */
                (void)bconn_send_built(r->conn, out, 5);
        if (r->sent)
                r->sent(r, k, val, vl);
        hyb_free(val_free);
}

void replay_message(breplay *r, const hyb_furi *key, const hyb_obj *value, bool retain)
{
        if (r->conn && r->conn->state != BCONN_DEAD)
                replay_frame(r, key, value, retain, true);
}

/*
 * Sends the next page of r: at most limit messages, fewer when its peer's send queue fills
 * (the replay then waits for it to drain: c->replay_wait).  After the last page the replay
 * ends and the held messages follow.  Returns how many were sent.
 */
static size_t replay_step(hyb_broker *b, breplay *r, size_t limit)
{
        bconn *c = r->conn;
        hyb_furi **keys = NULL;
        hyb_obj **vals = NULL;
        size_t n = 0, sent = 0;
        bool more = false, was_batching = b->batching;

        if (c->state == BCONN_DEAD)
                return 0;
        if (conn_queued(c) >= replay_room(b)) {
                c->replay_wait = true;
                return 0;
        }
        if (store_replay_page(r->st, r->pattern, r->after, limit, &keys, &vals, &n, &more) < 0) {
                /* the peer would miss values without knowing it: it is told and let go */
                quota_cut(c, 507, "max_memory", "no memory for the next page of a store replay");
                return 0;
        }
        /* the page's frames leave together, a sendmsg per BCONN_BATCH_MAX bytes */
        b->batching = true;
        while (sent < n && c->state != BCONN_DEAD) {
                replay_frame(r, keys[sent], vals[sent], true, false);
                hyb_furi_unref(r->after);
                r->after = hyb_furi_ref(keys[sent]);
                if (++sent < n && conn_queued(c) >= replay_room(b)) {
                        c->replay_wait = true;
                        break;
                }
        }
        for (size_t i = 0; i < n; i++) {
                hyb_furi_unref(keys[i]);
                hyb_obj_unref(vals[i]);
        }
        free(keys);
        free(vals);
        if (c->state != BCONN_DEAD && sent == n && !more)
                replay_release(r, true);
        b->batching = was_batching;
        if (!was_batching)
                broker_flush_batches(b);
        return sent;
}

/* The loop's turn for replays: each peer with a replay listed and room in its queue gets one
 * page, of an equal share of max_read_keys (at least 16), in turn; its other replays wait in
 * line, so a peer's share does not grow with its number of subscriptions. */
static void replay_run(evutil_socket_t fd, short what, void *ud)
{
        hyb_broker *b = ud;
        uint64_t turn = ++b->replay_turns;
        size_t budget = store_read_cap(b), page, n = 0, peers = 0;
        bool again = false;

        (void)fd;
        (void)what;
        for (breplay *r = b->replays; r; r = r->rnext) {
                n++;
                if (r->conn->replay_turn != turn && !r->conn->replay_wait &&
                    r->conn->state != BCONN_DEAD) {
                        r->conn->replay_turn = turn;
                        peers++;
                }
        }
        page = peers ? budget / peers : budget;
        if (page < 16)
                page = 16;
        turn = ++b->replay_turns; /* the count above marked the peers with the last one */
        while (n-- && budget && b->replays) {
                breplay *r = b->replays;
                bconn *c = r->conn;

                replay_unlist(b, r);
                if (c->state == BCONN_DEAD)
                        continue; /* freed with its peer */
                if (!c->replay_wait && c->replay_turn != turn) {
                        c->replay_turn = turn;
                        budget -= replay_step(b, r, page < budget ? page : budget);
                }
                if (r->pattern && c->state != BCONN_DEAD)
                        replay_list(b, r);
        }
        for (breplay *r = b->replays; r && !again; r = r->rnext)
                again = !r->conn->replay_wait && r->conn->state != BCONN_DEAD;
        if (again)
                replay_arm(b);
}

void store_replay_wake(bconn *c)
{
        if (conn_queued(c) > replay_room(c->b) / 2)
                return;
        c->replay_wait = false;
        replay_arm(c->b);
}

int replay_init(breplay *r, bconn *c, uint64_t id, hyb_store *st, const char *prefix,
                const hyb_furi *pattern)
{
        *r = (breplay){ .conn = c, .id = id, .st = st, .prefix = prefix };
        r->held_tail = &r->held;
        return pattern ? hyb_furi_strip_query(pattern, &r->pattern) : 0;
}

void replay_begin(breplay *r)
{
        hyb_broker *b = r->conn->b;

        if (!r->pattern)
                return;
        replay_step(b, r, store_read_cap(b));
        if (r->pattern && r->conn->state != BCONN_DEAD) {
                replay_list(b, r);
                if (!r->conn->replay_wait)
                        replay_arm(b);
        }
}
