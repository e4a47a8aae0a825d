/* SPDX-License-Identifier: MIT */
/*
 * Per-peer state: accept (SO_PEERCRED), framing on the input evbuffer (filled by
 * conn_readable, one recvmsg per wake-up), bounded send queues (a frame goes straight to the
 * socket when nothing is queued before it; the frames of a batch of frames read together
 * leave in one sendmsg; the bufferevent writes only what is left), close/reap, liveness (ping/drop) and the endpoint table.
 * The edge's HTTP and CoAP sessions are not sockets but one end of a bufferevent pair
 * (bconn.pair): the same framing, queues and bounds, without the system calls.
 */
#include <errno.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sys/socket.h>
#include <unistd.h>

#include "broker-internal.h"
#include "bus/names.h"
#include "common/util.h"

bconn *broker_lookup(hyb_broker *b, const char *name, size_t len)
{
        uint64_t h = bus_name_hash(name, len);
        for (bconn *c = b->ep_hash[h & (EP_BUCKETS - 1)]; c; c = c->hnext)
                if (c->state == BCONN_READY && bus_name_equal(c->name, c->name_len, name, len))
                        return c;
        return NULL;
}

void broker_ep_insert(hyb_broker *b, bconn *c)
{
        uint64_t h = bus_name_hash(c->name, c->name_len);
        bconn **head = &b->ep_hash[h & (EP_BUCKETS - 1)];
        c->hnext = *head;
        *head = c;
}

static void ep_remove(hyb_broker *b, bconn *c)
{
        uint64_t h = bus_name_hash(c->name, c->name_len);
        for (bconn **pp = &b->ep_hash[h & (EP_BUCKETS - 1)]; *pp; pp = &(*pp)->hnext)
                if (*pp == c) {
                        *pp = c->hnext;
                        return;
                }
}

void bconn_say_why(bconn *c, int status, const char *msg)
{
        char text[256];
        wire_hdr h = { .type = WIRE_ERROR, .status = (uint16_t)status };
        uint8_t buf[WIRE_HDR_SIZE + sizeof text];
        struct iovec iov[2];
        size_t n = strlen(msg);

        if (c->state == BCONN_DEAD || !c->bev)
                return;
        bconn_spill(c);
        if (n >= sizeof text)
                n = sizeof text - 1;
        memcpy(text, msg, n);
        wire_build(&h, NULL, 0, NULL, 0, text, n, NULL, 0, buf, iov);
        evbuffer_add(bufferevent_get_output(c->bev), buf, iov[0].iov_len);
}

bool bconn_room(bconn *c, size_t n)
{
        const char *which;
        size_t queued;
        char detail[96];

        if (c->state == BCONN_DEAD || !c->bev)
                return false;
        queued = bconn_queued(c);
        if (queued + n > c->b->c->send_queue_bytes)
                which = "send_queue_bytes";
        else if (!(which = quota_bytes_over(c, n)))
                return true;
        /* A slow consumer: say so explicitly and drop it; never lose silently, never grow.
         * Its backlog is charged to it, so it, not the sender, is the one cut off. */
        if (c->state == BCONN_READY)
                snprintf(detail, sizeof detail, "slow reader, %zu bytes queued and %zu more",
                         queued, n);
        else /* not logged in yet: whatever it is, it is not a reader falling behind */
                snprintf(detail, sizeof detail, "%zu bytes queued and %zu more before login",
                         queued, n);
        quota_cut(c, 507, which, detail);
        return false;
}

/* The socket of a connection that is not a pair: its read event's, without the
 * bufferevent's lock and callback (bufferevent_getfd). */
static inline evutil_socket_t bconn_fd(const bconn *c)
{
        return c->rev ? event_get_fd(c->rev) : bufferevent_getfd(c->bev);
}

/*
 * Writes iov straight to the socket when nothing is queued before it (one sendmsg, no
 * evbuffer bookkeeping, no write event armed); returns how many bytes went out.  Anything
 * already queued must go first, so then nothing is written here.  An error other than
 * EAGAIN is left to the bufferevent: the caller queues everything, libevent's write fails
 * and conn_event closes the connection.
 */
static size_t bconn_write_direct(bconn *c, struct evbuffer *out, struct iovec *iov, size_t n_iov)
{
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n_iov };

        /* Also while a batch of frames read together is dispatched: those leave in one
         * write per peer when the loop flushes the queues, not one sendmsg per frame. */
        if (c->b->batching || c->pair || evbuffer_get_length(out) > 0)
                return 0;
        for (;;) {
                ssize_t w = sendmsg(bconn_fd(c), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0 && errno == EINTR)
                        continue;
                return w < 0 ? 0 : (size_t)w;
        }
}

/*
 * Batches.  While frames read together are dispatched (b->batching), a frame for a peer
 * whose send queue is empty is copied to the peer's batch instead of being written; the
 * batch leaves in one sendmsg together with the next frame sent outside the batching
 * (usually the reply to the last frame read), or when conn_readable is done with what it
 * read (broker_flush_batches).  Queued in the bufferevent instead, each batch cost arming
 * the write event, a wake-up for it, the write and disarming: 6 syscalls a pipelined batch
 * of calls, 3 with the batch.  A batch holds whole frames, at most BCONN_BATCH_MAX bytes,
 * is charged to its peer like its send queue (bconn_room counts both) and only exists while
 * the queue is empty, so the order of frames is kept.
 */
static void batch_unlist(bconn *c)
{
        if (!c->in_batched)
                return;
        for (bconn **pp = &c->b->batched; *pp; pp = &(*pp)->batch_next)
                if (*pp == c) {
                        *pp = c->batch_next;
                        break;
                }
        c->batch_next = NULL;
        c->in_batched = false;
}

/* The batch is sent or queued: release its charge (a queued copy is charged by the queue). */
static void batch_done(bconn *c)
{
        if (c->batch_len)
                quota_charge(c, 0, c->batch_len);
        c->batch_len = 0;
        batch_unlist(c);
        /* a small buffer is kept for the next batch; a large one goes back */
        if (c->batch_alloc > 4096) {
                free(c->batch);
                c->batch = NULL;
                c->batch_alloc = 0;
        }
}

void bconn_batch_drop(bconn *c)
{
        batch_done(c);
}

static int batch_add(bconn *c, const struct iovec *iov, int n, size_t total)
{
        size_t need = c->batch_len + total;

        if (need > c->batch_alloc) {
                size_t a = c->batch_alloc ? c->batch_alloc : 4096;
                uint8_t *p;

                while (a < need)
                        a *= 2;
                p = realloc(c->batch, a);
                if (!p)
                        return -ENOMEM;
                c->batch = p;
                c->batch_alloc = a;
        }
        for (int i = 0; i < n; i++) {
                memcpy(c->batch + c->batch_len, iov[i].iov_base, iov[i].iov_len);
                c->batch_len += iov[i].iov_len;
        }
        quota_charge(c, total, 0);
        if (!c->in_batched) {
                c->batch_next = c->b->batched;
                c->b->batched = c;
                c->in_batched = true;
        }
        return 0;
}

/*
 * A forwarded frame into the batch: its new header, then its body copied from where it
 * was read (in, at offset skip).  0, or -ENOMEM (nothing added).
 */
static int batch_add_frame(bconn *c, const uint8_t *hdr, size_t hdr_len, struct evbuffer *in,
                           size_t skip, size_t blen)
{
        struct evbuffer_ptr pos;
        struct iovec iov = { (void *)hdr, hdr_len };
        size_t before = c->batch_len;

        if (blen && evbuffer_ptr_set(in, &pos, skip, EVBUFFER_PTR_SET) < 0)
                return -ENOMEM;
        if (batch_add(c, &iov, 1, hdr_len + blen) < 0)
                return -ENOMEM;
        /* batch_add grew the buffer for the whole frame and charged it: the body follows */
        if (blen && evbuffer_copyout_from(in, &pos, c->batch + c->batch_len, blen) != (ev_ssize_t)blen) {
                quota_charge(c, 0, hdr_len + blen);
                c->batch_len = before;
                return -ENOMEM;
        }
        c->batch_len += blen;
        return 0;
}

/* Moves the batch to the send queue, without writing: before anything else is queued. */
void bconn_spill(bconn *c)
{
        if (!c->batch_len || !c->bev) {
                if (!c->bev)
                        batch_done(c);
                return;
        }
        evbuffer_add(bufferevent_get_output(c->bev), c->batch, c->batch_len);
        batch_done(c);
        quota_mark(c);
}

/*
 * The batch, then the frame in iov (n may be 0), in one sendmsg when nothing is queued
 * before them; what the socket does not take is queued in one evbuffer operation.
 */
static void bconn_put(bconn *c, const struct iovec *iov, int n, size_t total)
{
        struct evbuffer *out = bufferevent_get_output(c->bev);
        struct iovec all[1 + BCONN_SEND_IOV];
        size_t pend = c->batch_len, done = 0;
        int k = 0;

        if (pend)
                all[k++] = (struct iovec){ c->batch, pend };
        for (int i = 0; i < n; i++)
                all[k++] = iov[i];
        if (pend + total == 0) {
                batch_unlist(c);
                return;
        }
        if (evbuffer_get_length(out) == 0 && !c->pair) {
                struct msghdr mh = { .msg_iov = all, .msg_iovlen = (size_t)k };
                ssize_t w;

                do
                        w = sendmsg(bconn_fd(c), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                while (w < 0 && errno == EINTR);
                done = w < 0 ? 0 : (size_t)w;
        }
        if (done < pend + total) {
                /* Queue the unwritten rest in one evbuffer operation (it copies). */
                struct evbuffer_iovec rest[1 + BCONN_SEND_IOV];
                int r = 0;

                for (int i = 0; i < k; i++) {
                        if (done >= all[i].iov_len) {
                                done -= all[i].iov_len;
                                continue;
                        }
                        rest[r].iov_base = (uint8_t *)all[i].iov_base + done;
                        rest[r++].iov_len = all[i].iov_len - done;
                        done = 0;
                }
                evbuffer_add_iovec(out, rest, r);
                batch_done(c);
                quota_mark(c);
                return;
        }
        batch_done(c);
}

static void flush_batches_cb(evutil_socket_t fd, short what, void *ud)
{
        (void)fd;
        (void)what;
        broker_flush_batches(ud);
}

/*
 * The edge's sessions are read one callback each (the pair's deferred reads, all run in
 * the loop turn after the HTTP, WebSocket or CoAP reads that wrote them): what they send
 * to a socket peer waits in its batch until those callbacks ran, then leaves in one
 * sendmsg per peer for all of them, not one per call.  The flush is an event made active
 * now: it runs after the callbacks already active in this turn, before the loop polls.
 */
void broker_flush_batches_soon(hyb_broker *b)
{
        if (!b->batched)
                return;
        if (!b->flush_ev)
                b->flush_ev = event_new(b->base, -1, 0, flush_batches_cb, b);
        if (b->flush_ev)
                event_active(b->flush_ev, EV_TIMEOUT, 0);
        else
                broker_flush_batches(b);
}

void broker_flush_batches(hyb_broker *b)
{
        while (b->batched) {
                bconn *c = b->batched;

                /* a peer closed meanwhile keeps them queued for its linger, as before */
                if (c->state == BCONN_DEAD || !c->bev)
                        bconn_spill(c);
                else
                        bconn_put(c, NULL, 0, 0);
                batch_unlist(c); /* also when its batch was dropped */
        }
}

/* May n more bytes for c join this dispatch turn's batch (batching, nothing queued before
 * them, room in the batch)? */
static bool batch_fits(const bconn *c, struct evbuffer *out, size_t n)
{
        return c->b->batching && evbuffer_get_length(out) == 0 &&
               c->batch_len + n <= BCONN_BATCH_MAX;
}

/* After a direct write of done bytes of a frame: queues what is left of its header, and
 * returns how much of its body was written. */
static size_t queue_header_rest(struct evbuffer *out, const uint8_t *hdr, size_t hdr_len,
                                size_t done)
{
        if (done >= hdr_len)
                return done - hdr_len;
        evbuffer_add(out, hdr + done, hdr_len - done);
        return 0;
}

int bconn_send_built(bconn *c, const struct iovec *iov, int n)
{
        size_t total = 0;

        if (n < 0 || n > BCONN_SEND_IOV)
                return -EINVAL;
        for (int i = 0; i < n; i++)
                total += iov[i].iov_len;
        if (c->state == BCONN_DEAD || !c->bev)
                return -ENOTCONN;
        if (!bconn_room(c, total))
                return -ENOBUFS;
        bconn_count_out(c, total);
        if (batch_fits(c, bufferevent_get_output(c->bev), total) &&
            batch_add(c, iov, n, total) == 0)
                return 0;
        bconn_put(c, iov, n, total);
        return 0;
}

int bconn_send(bconn *c, wire_hdr *h, const char *from, size_t from_len, const char *to,
               size_t to_len, const char *member, size_t member_len, const void *body, size_t len)
{
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];

        if (c->state == BCONN_DEAD || !c->bev)
                return -ENOTCONN;
        if (member_len > WIRE_MEMBER_MAX)
                member_len = WIRE_MEMBER_MAX;
        int n = wire_build(h, from, from_len, to, to_len, member, member_len, body, len, buf, iov);
        return bconn_send_built(c, iov, n);
}

#define FORWARD_IOV 16

/*
 * To an edge session (a pair): a small frame is put together here and added in one
 * evbuffer_add.  Each add to the pair moves what was added to the edge's end and schedules
 * its read; the header and the body added apart cost that twice.  True when done.
 */
static bool forward_inline(bconn *c, struct evbuffer *out, const uint8_t *hdr, size_t hdr_len,
                           bframe *f, size_t skip)
{
        uint8_t one[WIRE_HDR_SIZE + WIRE_NAMES_MAX + BCONN_PAIR_INLINE];
        size_t blen = f->h.body_len;
        struct evbuffer_ptr pos;

        if (hdr_len > WIRE_HDR_SIZE + WIRE_NAMES_MAX)
                return false;
        memcpy(one, hdr, hdr_len);
        if (f->flat) {
                if (blen)
                        memcpy(one + hdr_len, f->flat + skip, blen);
        } else if (blen && (evbuffer_ptr_set(f->in, &pos, skip, EVBUFFER_PTR_SET) < 0 ||
                            evbuffer_copyout_from(f->in, &pos, one + hdr_len, blen) != (ev_ssize_t)blen))
                return false;
        if (evbuffer_add(out, one, hdr_len + blen) < 0)
                return false;
        if (!f->flat)
                evbuffer_drain(f->in, skip + blen);
        f->consumed = true;
        quota_mark(c);
        return true;
}

/* bconn_forward of a frame read into the broker's flat buffer: the same steps, the body
 * taken from where it lies (f->flat) instead of the input evbuffer. */
static void forward_flat(bconn *c, struct evbuffer *out, const uint8_t *hdr, size_t hdr_len,
                         bframe *f, size_t skip)
{
        size_t blen = f->h.body_len, done;
        struct iovec iov[2] = { { (void *)hdr, hdr_len }, { (void *)(f->flat + skip), blen } };

        f->consumed = true;
        if (!c->pair && batch_fits(c, out, hdr_len + blen) &&
            batch_add(c, iov, 2, hdr_len + blen) == 0)
                return; /* with the peer's other frames of this turn, in one sendmsg */
        bconn_spill(c); /* after what was batched for it */
        if (c->pair && blen <= BCONN_PAIR_INLINE && forward_inline(c, out, hdr, hdr_len, f, skip))
                return;
        done = bconn_write_direct(c, out, iov, blen ? 2 : 1);
        if (done >= hdr_len + blen)
                return;
        done = queue_header_rest(out, hdr, hdr_len, done);
        if (blen > done)
                evbuffer_add(out, f->flat + skip + done, blen - done);
        quota_mark(c);
}

void bconn_forward(bconn *c, const uint8_t *hdr, size_t hdr_len, bframe *f)
{
        struct evbuffer *out = bufferevent_get_output(c->bev);
        size_t skip = WIRE_HDR_SIZE + wire_names_len(&f->h), blen = f->h.body_len, done = 0;

        bconn_count_out(c, hdr_len + blen);
        if (f->flat) {
                forward_flat(c, out, hdr, hdr_len, f, skip);
                return;
        }
        if (!c->pair && batch_fits(c, out, hdr_len + blen) &&
            batch_add_frame(c, hdr, hdr_len, f->in, skip, blen) == 0) {
                /* with the peer's other frames of this turn, in one sendmsg */
                evbuffer_drain(f->in, skip + blen);
                f->consumed = true;
                return;
        }
        bconn_spill(c); /* after what was batched for it */
        if (c->pair && blen <= BCONN_PAIR_INLINE && forward_inline(c, out, hdr, hdr_len, f, skip))
                return;

        if (!c->b->batching && evbuffer_get_length(out) == 0) {
                /* The body stays where it was read: gather it from the input chains. */
                struct iovec iov[1 + FORWARD_IOV];
                int k = 0;
                iov[0].iov_base = (void *)hdr;
                iov[0].iov_len = hdr_len;
                if (blen) {
                        struct evbuffer_ptr pos;
                        if (evbuffer_ptr_set(f->in, &pos, skip, EVBUFFER_PTR_SET) == 0)
                                k = evbuffer_peek(f->in, (ev_ssize_t)blen, &pos,
                                                  (struct evbuffer_iovec *)&iov[1], FORWARD_IOV);
                        if (k > FORWARD_IOV || k <= 0)
                                k = -1;
                        else {
                                /* The last extent is a whole chain: clip it to the body. */
                                size_t sum = 0;
                                for (int i = 1; i <= k; i++) {
                                        if (sum + iov[i].iov_len > blen)
                                                iov[i].iov_len = blen - sum;
                                        sum += iov[i].iov_len;
                                }
                                if (sum != blen)
                                        k = -1;
                        }
                }
                if (k >= 0)
                        done = bconn_write_direct(c, out, iov, (size_t)k + 1);
        }
        if (done >= hdr_len + blen) {
                evbuffer_drain(f->in, skip + blen);
                f->consumed = true;
                return;
        }
        done = queue_header_rest(out, hdr, hdr_len, done);
        evbuffer_drain(f->in, skip + done);
        if (blen > done)
                evbuffer_remove_buffer(f->in, out, blen - done);
        quota_mark(c);
        f->consumed = true;
}

const uint8_t *bframe_body(bframe *f)
{
        if (f->flat)
                return f->flat + WIRE_HDR_SIZE + wire_names_len(&f->h);
        uint8_t *p = evbuffer_pullup(f->in, (ev_ssize_t)f->len);
        if (!p)
                return NULL;
        /* The pull-up may have moved the frame to a new chain and freed the old
         * one: from/to/member must point into the new copy from now on. */
        f->from = (const char *)p + WIRE_HDR_SIZE;
        f->to = f->from + f->h.from_len;
        f->member = f->to + f->h.to_len;
        return p + WIRE_HDR_SIZE + wire_names_len(&f->h);
}

static void send_error_close(bconn *c, int status, const char *msg)
{
        wire_hdr h = { .type = WIRE_ERROR, .status = (uint16_t)status };
        if (c->bev && c->state != BCONN_DEAD) {
                uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                bconn_spill(c);
                struct iovec iov[2];
                wire_build(&h, NULL, 0, NULL, 0, msg, strlen(msg), NULL, 0, buf, iov);
                evbuffer_add(bufferevent_get_output(c->bev), buf, iov[0].iov_len);
                quota_mark(c);
        }
        bconn_close(c, "lostConnection");
}

static void dispatch(bconn *c, bframe *f)
{
        if (c->state == BCONN_AUTH) {
                if (f->h.type != WIRE_AUTH) {
                        bconn_close(c, NULL);
                        return;
                }
                auth_handle(c, &f->h, bframe_body(f));
                return;
        }
        switch (f->h.type) {
        case WIRE_CALL:
                route_call(c, f);
                break;
        case WIRE_RESULT:
                route_result(c, f);
                break;
        case WIRE_CANCEL:
                route_cancel(c, f->h.call_id, 410);
                break;
        case WIRE_EVENT:
                events_fire(c, f);
                break;
        case WIRE_PING: {
                wire_hdr h = { .type = WIRE_PONG };
                bconn_send(c, &h, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
                break;
        }
        case WIRE_PONG:
                break;
        default:
                send_error_close(c, 422, "unexpected packet type");
        }
}

/* A frame just read (whole, its header at hdr, f->in or f->flat set): its names found, counted
 * in the connection's and the broker's traffic, and dispatched, joining the batch when
 * batching (more frames follow in the same read, or an edge session). */
static void dispatch_read(bconn *c, bframe *f, const char *hdr, bool batching)
{
        hyb_broker *b = c->b;

        f->from = hdr + WIRE_HDR_SIZE;
        f->to = f->from + f->h.from_len;
        f->member = f->to + f->h.to_len;
        f->consumed = false;
        b->batching = batching;
        c->msgs_in++;
        c->bytes_in += f->len;
        b->msgs_in++;
        b->bytes_in += f->len;
        dispatch(c, f);
        b->batching = false;
}

static bool resume_later(bconn *c);

/* Decodes and checks the header of the frame that starts at hb into f (h, len): 0, or -1
 * when the connection was refused and closed for it. */
static int frame_header(bconn *c, const uint8_t *hb, bframe *f)
{
        /* aux and the caller info on a CALL are the broker's to set (the caller's uid,
         * transport and principal): a client's are malformed */
        if (wire_hdr_decode(hb, &f->h) < 0 ||
            (f->h.type == WIRE_CALL && (f->h.aux != 0 || f->h.info_len != 0))) {
                send_error_close(c, 422, "malformed frame header");
                return -1;
        }
        f->len = wire_frame_len(&f->h);
        if (f->len > c->b->c->max_frame || (c->state == BCONN_AUTH && f->len > 64u * 1024)) {
                send_error_close(c, 413, "frame larger than max_frame");
                return -1;
        }
        return 0;
}

static void conn_read(struct bufferevent *bev, void *ud)
{
        bconn *c = ud;
        struct evbuffer *in = bufferevent_get_input(bev);
        uint8_t hb[WIRE_HDR_SIZE];
        bframe f;

        c->last_rx_us = hyb_now_usec();
        c->ping_sent = false;
        /* While its token is verified (auth.c) a connection is not served: what it sent
         * after AUTH waits until then (bconn_resume_reading). */
        while (c->state != BCONN_DEAD && !c->auth_job) {
                size_t have = evbuffer_get_length(in);
                if (have < WIRE_HDR_SIZE)
                        break;
                evbuffer_copyout(in, hb, WIRE_HDR_SIZE);
                if (frame_header(c, hb, &f) < 0)
                        return;
                if (have < f.len) {
                        size_t need = f.len - have;
                        /* The missing part is charged now, before it is read: twenty peers
                         * announcing max_frame each cannot all be let in. */
                        if (c->rx_resv == 0) {
                                const char *which = quota_bytes_over(c, need);
                                if (which) {
                                        char detail[64];
                                        snprintf(detail, sizeof detail, "frame of %zu bytes", f.len);
                                        quota_cut(c, 507, which, detail);
                                        return;
                                }
                        }
                        quota_rx_reserve(c, need);
                        /* conn_readable reads the rest of the frame in as few reads as it can. */
                        c->rx_need = need;
                        return;
                }
                c->rx_need = 0;
                if (c->rx_resv)
                        quota_rx_reserve(c, 0);
                const char *names = (const char *)evbuffer_pullup(in, (ev_ssize_t)(WIRE_HDR_SIZE + wire_names_len(&f.h)));
                if (!names) {
                        bconn_close(c, NULL);
                        return;
                }
                f.in = in;
                f.flat = NULL;
                /* an edge session's frames: batched until the loop has run the other
                 * sessions' reads of this turn (broker_flush_batches_soon) */
                dispatch_read(c, &f, names, have > f.len || c->pair);
                if (!f.consumed && c->bev)
                        evbuffer_drain(in, f.len);
                if (c->yield) {
                        c->yield = false;
                        if (c->state != BCONN_DEAD && resume_later(c))
                                break;
                }
        }
}

static void conn_resume(evutil_socket_t fd, short what, void *ud)
{
        bconn *c = ud;

        if (c->state != BCONN_DEAD && c->bev)
                conn_read(c->bev, c);
        /* what the frames dispatched now batched (all of an edge session's are) */
        broker_flush_batches(c->b);
}

/*
 * After a request that walked the store: the frames still buffered are dispatched on the
 * loop's next turn (a timer due now runs after the loop polled the sockets again), so one
 * peer's pipelined reads take turns with the others' requests.  False when there is nothing
 * buffered or no timer (then the loop goes on at once).
 */
static bool resume_later(bconn *c)
{
        static const struct timeval now = { 0, 0 };

        if (!c->bev || evbuffer_get_length(bufferevent_get_input(c->bev)) < WIRE_HDR_SIZE)
                return false;
        if (!c->resume_ev)
                c->resume_ev = evtimer_new(c->b->base, conn_resume, c);
        return c->resume_ev && evtimer_add(c->resume_ev, &now) == 0;
}

void bconn_resume_reading(bconn *c)
{
        if (c->state == BCONN_DEAD || !c->bev || c->auth_job)
                return;
        if (c->rev)
                event_add(c->rev, NULL);
        else
                bufferevent_enable(c->bev, EV_READ);
        resume_later(c);
}

static void conn_event(struct bufferevent *bev, short what, void *ud);

#define READ_CHUNK (16u * 1024)
#define READ_CHUNK_MAX (1024u * 1024)

/*
 * A read for a connection with nothing buffered (the usual case: a request, its answer,
 * the next request): into the broker's flat buffer, and every whole frame in it dispatched
 * from there.  That spares a request the input evbuffer's reserve, commit, pull-up, drain
 * and callbacks, and the 16 KiB chain each read allocated and freed.  What is left over (a
 * partial frame, or the frames after one that yields or waits for its token's check) is
 * copied to the input evbuffer, where conn_read takes it as before.  The bytes read are
 * charged to the connection while they are held, as the input evbuffer charges them.
 */
static void conn_read_flat(bconn *c, evutil_socket_t fd)
{
        hyb_broker *b = c->b;
        uint8_t *buf = b->rx_flat;
        size_t got, pos = 0;
        bool yielded = false;
        ssize_t r;

        do
                r = recv(fd, buf, BROKER_RX_FLAT, MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return;
                conn_event(c->bev, BEV_EVENT_READING | (r == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
                return;
        }
        got = (size_t)r;
        quota_charge(c, got, 0);
        c->last_rx_us = hyb_now_usec();
        c->ping_sent = false;
        b->rx_flat_busy = true;
        while (c->state != BCONN_DEAD && !c->auth_job && got - pos >= WIRE_HDR_SIZE) {
                bframe f;

                if (frame_header(c, buf + pos, &f) < 0 || got - pos < f.len)
                        break;
                f.flat = buf + pos;
                f.in = NULL;
                /* (never a pair: those have no fd) */
                dispatch_read(c, &f, (const char *)f.flat, got - pos > f.len);
                pos += f.len;
                quota_charge(c, 0, f.len);
                if (c->yield) {
                        c->yield = false;
                        if (c->state != BCONN_DEAD) {
                                yielded = true;
                                break;
                        }
                }
        }
        b->rx_flat_busy = false;
        quota_charge(c, 0, got - pos);
        if (pos == got || c->state == BCONN_DEAD || !c->bev)
                return;
        /* the rest waits in the input evbuffer (charged there again) */
        if (evbuffer_add(bufferevent_get_input(c->bev), buf + pos, got - pos) < 0) {
                bconn_close(c, NULL);
                return;
        }
        /* after a yield, the next turn goes on; else conn_read notes the partial frame (what
         * it still needs is reserved) or leaves the frames to the token's check */
        if (!(yielded && resume_later(c)))
                conn_read(c->bev, c);
}

/*
 * The read side is ours, not the bufferevent's: one recvmsg straight into the input
 * evbuffer's free space (libevent's own read asks FIONREAD first: one more syscall per
 * read), then every complete frame in it is dispatched.  Writing stays with the bufferevent.
 * With nothing buffered the read goes to the broker's flat buffer instead (conn_read_flat).
 */
static void conn_readable(evutil_socket_t fd, short what, void *ud)
{
        bconn *c = ud;
        struct evbuffer *in = bufferevent_get_input(c->bev);
        struct evbuffer_iovec v[2];
        size_t want = c->rx_need > READ_CHUNK ? c->rx_need : READ_CHUNK;
        ssize_t r;

        if (c->n_fds_out)
                channel_peer_active(c);
        if (!c->rx_need && !c->b->rx_flat_busy && evbuffer_get_length(in) == 0) {
                conn_read_flat(c, fd);
                broker_flush_batches(c->b);
                return;
        }
        if (want > READ_CHUNK_MAX)
                want = READ_CHUNK_MAX;
        int n = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
        if (n <= 0) {
                bconn_close(c, NULL);
                return;
        }
        struct msghdr mh = { .msg_iov = (struct iovec *)v, .msg_iovlen = (size_t)n };
        do
                r = recvmsg(fd, &mh, MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        if (r <= 0) {
                evbuffer_commit_space(in, v, 0);
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return;
                conn_event(c->bev, BEV_EVENT_READING | (r == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
                return;
        }
        size_t got = (size_t)r;
        if (v[0].iov_len >= got) {
                v[0].iov_len = got;
                n = 1;
        } else
                v[1].iov_len = got - v[0].iov_len;
        evbuffer_commit_space(in, v, n);
        conn_read(c->bev, c);
        broker_flush_batches(c->b);
}

/*
 * The broker's end of an in-daemon pair: what the edge wrote is already in the input (the
 * pair moves it there, no copy, no system call); the same framing and dispatch as above.
 */
static void conn_pair_read(struct bufferevent *bev, void *ud)
{
        bconn *c = ud;

        if (c->state == BCONN_DEAD)
                return;
        conn_read(bev, c);
        broker_flush_batches_soon(c->b);
}

static void conn_event(struct bufferevent *bev, short what, void *ud)
{
        bconn *c = ud;
        if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
                /* Nothing more can be written either. */
                if (c->state != BCONN_DEAD)
                        bconn_close(c, "lostConnection");
                evbuffer_drain(bufferevent_get_output(bev), evbuffer_get_length(bufferevent_get_output(bev)));
                if (c->reaped && c->bev) {
                        if (c->pair)
                                broker_pair_close(c->bev);
                        else
                                bufferevent_free(c->bev);
                        c->bev = NULL;
                }
        }
}

static void auth_timeout(evutil_socket_t fd, short what, void *ud)
{
        bconn *c = ud;
        if (c->state == BCONN_AUTH)
                bconn_close(c, NULL);
}

void bconn_accept(hyb_broker *b, int fd)
{
        struct ucred cred;
        socklen_t sl = sizeof cred;
        bconn *c;

        if (b->shutting_down || b->n_conns >= b->c->max_connections) {
                /* Refuse explicitly: 503 then close. */
                wire_hdr h = { .type = WIRE_ERROR, .status = 503 };
                uint8_t buf[WIRE_HDR_SIZE + 64];
                struct iovec iov[2];
                wire_build(&h, NULL, 0, NULL, 0, "too many connections", 20, NULL, 0, buf, iov);
                if (write(fd, buf, iov[0].iov_len) < 0) {
                        /* closing anyway */
                }
                close(fd);
                broker_log(b, HYB_LOG_WARNING, "connection refused: max_connections reached");
                return;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0) {
                close(fd);
                return;
        }
        c = bconn_adopt(b, fd, cred.uid, cred.gid, cred.pid);
        if (!c)
                return;
        struct timeval tv = { .tv_sec = b->c->auth_timeout_ms / 1000,
                              .tv_usec = (b->c->auth_timeout_ms % 1000) * 1000 };
        evtimer_add(c->timer, &tv);
        if (auth_challenge(c) < 0)
                bconn_close(c, NULL);
}

/* bconn_adopt of fd, or (fd -1) bconn_adopt_pair of end */
static bconn *adopt(hyb_broker *b, int fd, struct bufferevent *end, uid_t uid, gid_t gid,
                    pid_t pid)
{
        struct ucred cred = { .uid = uid, .gid = gid, .pid = pid };
        const char *which = NULL;
        bconn *c;

        c = calloc(1, sizeof *c);
        if (!c) {
                if (end)
                        bufferevent_free(end);
                else
                        close(fd);
                return NULL;
        }
        c->b = b;
        c->uid = cred.uid;
        c->gid = cred.gid;
        c->pid = cred.pid;
        int st = quota_attach(c, &which);
        if (st) {
                wire_hdr h = { .type = WIRE_ERROR, .status = (uint16_t)st };
                char msg[96];
                uint8_t buf[WIRE_HDR_SIZE + sizeof msg];
                struct iovec iov[2];
                int n = snprintf(msg, sizeof msg, "quota %s exceeded", which);
                wire_build(&h, NULL, 0, NULL, 0, msg, (size_t)n, NULL, 0, buf, iov);
                if (end) {
                        /* the edge's caller is told by the error it gets */
                        bufferevent_free(end);
                } else {
                        if (write(fd, buf, iov[0].iov_len) < 0) {
                                /* closing anyway */
                        }
                        close(fd);
                }
                free(c);
                /* A flood of refusals must not flood the log: one line a second. */
                uint64_t now = hyb_now_usec();
                if (now - b->refuse_log_us >= 1000000u) {
                        broker_log(b, HYB_LOG_WARNING,
                                   "connection of uid %u pid %d refused: quota %s exceeded (%d); %u refusals not logged before it",
                                   (unsigned)cred.uid, (int)cred.pid, which, st, b->refused_quiet);
                        b->refuse_log_us = now;
                        b->refused_quiet = 0;
                } else
                        b->refused_quiet++;
                return NULL;
        }
        c->admin = broker_config_is_admin(b->c, cred.uid);
        c->state = BCONN_AUTH;
        c->last_rx_us = hyb_now_usec();
        if (end) {
                c->pair = true;
                c->bev = end;
        } else {
                c->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
                c->rev = event_new(b->base, fd, EV_READ | EV_PERSIST, conn_readable, c);
        }
        c->timer = evtimer_new(b->base, auth_timeout, c);
        if (!c->bev || !c->timer || (!end && !c->rev) || quota_watch(c) < 0) {
                quota_detach(c);
                if (c->rev)
                        event_free(c->rev);
                if (c->bev)
                        bufferevent_free(c->bev);
                else
                        close(fd);
                if (c->timer)
                        event_free(c->timer);
                free(c);
                return NULL;
        }
        c->serial = ++b->next_serial;
        c->next = b->conns;
        if (b->conns)
                b->conns->prev = c;
        b->conns = c;
        b->n_conns++;
        b->accepted++;
        if (c->pair) {
                bufferevent_setcb(c->bev, conn_pair_read, NULL, conn_event, c);
                bufferevent_enable(c->bev, EV_READ | EV_WRITE);
                return c;
        }
        /* libevent keeps the end of a bufferevent's input frozen outside its own reads. */
        evbuffer_unfreeze(bufferevent_get_input(c->bev), 0);
        bufferevent_setcb(c->bev, NULL, NULL, conn_event, c);
        bufferevent_enable(c->bev, EV_WRITE);
        event_add(c->rev, NULL);
        return c;
}

bconn *bconn_adopt(hyb_broker *b, int fd, uid_t uid, gid_t gid, pid_t pid)
{
        return adopt(b, fd, NULL, uid, gid, pid);
}

bconn *bconn_adopt_pair(hyb_broker *b, struct bufferevent *end, uid_t uid, gid_t gid, pid_t pid)
{
        return adopt(b, -1, end, uid, gid, pid);
}

int broker_pair_new(hyb_broker *b, struct bufferevent **ret_broker, struct bufferevent **ret_edge)
{
        struct bufferevent *pair[2];

        /* Deferred callbacks: a write on one end never runs the other end's callbacks
         * inside it (they run from the loop, without a system call), so neither side is
         * reentered or freed under its own feet. */
        if (bufferevent_pair_new(b->base, BEV_OPT_DEFER_CALLBACKS, pair) < 0)
                return -ENOMEM;
        *ret_broker = pair[0];
        *ret_edge = pair[1];
        return 0;
}

void broker_pair_close(struct bufferevent *bev)
{
        /* The partner gets what is still queued here, then BEV_EVENT_EOF. */
        if (bufferevent_pair_get_partner(bev))
                bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
        bufferevent_free(bev);
}

void bconn_close(bconn *c, const char *reason)
{
        hyb_broker *b = c->b;

        if (c->state == BCONN_DEAD)
                return;
        /* Only authenticated endpoints get a BrokenEndpoint. */
        c->reason = c->state == BCONN_READY ? (reason ? reason : "lostConnection") : NULL;
        c->state = BCONN_DEAD;
        quota_unauth_end(c);
        if (c->rev)
                event_del(c->rev);
        else if (c->pair && c->bev)
                bufferevent_disable(c->bev, EV_READ);
        c->dnext = b->dead;
        b->dead = c;
        event_active(b->reap_ev, 0, 0);
}

static void linger_done(evutil_socket_t fd, short what, void *ud);

static void conn_unlink_free(bconn *c)
{
        hyb_broker *b = c->b;

        if (c->prev)
                c->prev->next = c->next;
        else
                b->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        b->n_conns--;
        bconn_batch_drop(c); /* before quota_detach: it is charged to c's uid */
        free(c->batch);
        quota_detach(c);
        store_conn_gone(c); /* done by the reap already; a no-op then */
        if (c->resume_ev)
                event_free(c->resume_ev);
        if (c->rev)
                event_free(c->rev); /* before the bufferevent closes the fd */
        if (c->bev && c->pair)
                broker_pair_close(c->bev); /* the edge sees the end of the session */
        else if (c->bev)
                bufferevent_free(c->bev);
        if (c->timer)
                event_free(c->timer);
        auth_conn_free(c);
        free(c->binding);
        free(c->remote_addr);
        free(c->name);
        free(c->app);
        free(c);
        quota_trim(b);
        /* Shutting down and the last peer has read its last frame: nothing to wait for. */
        if (b->shutting_down && !b->conns && b->shutdown_ev)
                event_del(b->shutdown_ev);
}

static void conn_flushed(struct bufferevent *bev, void *ud)
{
        conn_unlink_free(ud);
}

static void linger_done(evutil_socket_t fd, short what, void *ud)
{
        conn_unlink_free(ud);
}

/* Unregisters a dead connection everywhere, then frees it once its output is written. */
static void conn_reap(bconn *c)
{
        hyb_broker *b = c->b;
        char json[600];

        c->reaped = true;
        if (c->monitor) {
                c->monitor = false;
                b->n_monitors--;
        }
        route_conn_gone(c);
        channel_conn_gone(c);
        events_conn_gone(c);
        store_conn_gone(c);
        if (c->name) {
                ep_remove(b, c);
                b->n_endpoints--;
                /* The edge's sessions come and go with each HTTP request: no NewEndpoint, no
                 * BrokenEndpoint for them. */
                if (c->reason && !c->transport) {
                        snprintf(json, sizeof json, "{\"endpointName\":\"%s\",\"reason\":\"%s\"}", c->name,
                                 c->reason);
                        events_builtin(b, "BrokenEndpoint", json);
                }
                broker_log(b, HYB_LOG_DEBUG, "%s gone (%s)", c->name, c->reason ? c->reason : "-");
        }
        /* Linger also while shutting down: SystemShuttingDown is in that output
         * (shutdown_done / bconn_free_all free whatever is still lingering). */
        bconn_spill(c);
        if (c->bev && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
                /* A peer cut off for a quota gets longer to read why. */
                struct timeval tv = { .tv_sec = c->cut ? 5 : 1 };
                bufferevent_setcb(c->bev, NULL, conn_flushed, conn_event, c);
                bufferevent_enable(c->bev, EV_WRITE);
                event_del(c->timer);
                event_assign(c->timer, b->base, -1, 0, linger_done, c);
                evtimer_add(c->timer, &tv);
                return;
        }
        conn_unlink_free(c);
}

void broker_reap(evutil_socket_t fd, short what, void *ud)
{
        hyb_broker *b = ud;

        while (b->dead) {
                bconn *c = b->dead;
                b->dead = c->dnext;
                conn_reap(c);
                b->trim_wanted = true;
        }
}

void bconn_free_all(hyb_broker *b)
{
        for (bconn *c = b->conns; c; c = c->next)
                bconn_close(c, NULL);
        broker_reap(-1, 0, b);
        /* Lingering ones: free now. */
        while (b->conns)
                conn_unlink_free(b->conns);
        if (b->builtin) {
                bconn *bi = b->builtin;
                b->builtin = NULL;
                events_conn_gone(bi);
                ep_remove(b, bi);
                free(bi->name);
                free(bi->app);
                free(bi);
        }
}

int broker_liveness(uint64_t now_us, uint64_t last_rx_us, bool ping_sent, uint64_t ping_us,
                    unsigned ping_after_s, unsigned drop_after_s)
{
        uint64_t grace = drop_after_s > ping_after_s ? (uint64_t)(drop_after_s - ping_after_s) * 1000000u : 0;

        if (ping_sent)
                return now_us - ping_us >= grace ? LIVENESS_DROP : LIVENESS_OK;
        return now_us - last_rx_us >= (uint64_t)ping_after_s * 1000000u ? LIVENESS_PING : LIVENESS_OK;
}

/* Liveness: ping the silent, drop the dead (BrokenEndpoint notResponding). */
void broker_tick(evutil_socket_t fd, short what, void *ud)
{
        hyb_broker *b = ud;
        uint64_t now = hyb_now_usec();

#ifdef __GLIBC__
        /* What gone peers held (registrations, buffers) goes back to the system, at most
         * one heap walk per tick however many peers come and go. */
        if (b->trim_wanted)
                malloc_trim(0);
#endif
        b->trim_wanted = false;
        quota_trim(b); /* a backlog drained without a close gives its memory back too */
        for (bconn *c = b->conns; c; c = c->next) {
                if (c->state != BCONN_READY)
                        continue;
                switch (broker_liveness(now, c->last_rx_us, c->ping_sent, c->ping_us, b->c->ping_after_s,
                                        b->c->drop_after_s)) {
                case LIVENESS_DROP:
                        broker_log(b, HYB_LOG_INFO, "%s not responding, dropped", c->name);
                        bconn_close(c, "notResponding");
                        break;
                case LIVENESS_PING: {
                        wire_hdr h = { .type = WIRE_PING };
                        c->ping_sent = true;
                        c->ping_us = now;
                        bconn_send(c, &h, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
                        break;
                }
                default:
                        break;
                }
        }
}
