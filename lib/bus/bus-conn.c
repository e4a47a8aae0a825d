/* SPDX-License-Identifier: MIT */
/*
 * The client connection: connect + handshake, buffered non-blocking I/O,
 * packet dispatch, and loop integration (fd/events/timeout/process, wait,
 * libevent adapter).  No threads, no global state.
 */
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bus-internal.h"
#include "bus-ws.h"
#include "names.h"
#include "common/util.h"
#include "common/ref.h"
#include "common/sized.h"
#include "hybrid/token.h"
#include "token/proof.h"
#include "token/crypto.h"

#define RBUF_MIN (64u * 1024)
/* What answers of packets read together may hold back for their one write (bus_send) */
#define BUS_HOLD_MAX (64u * 1024)
/* ... and for how long: past it, they leave once the packet being dispatched is done */
#define BUS_HOLD_USEC 1000u

HYB_EXPORT int hyb_bus_get_default_socket(char **ret_path)
{
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        char *p;

        hyb_assert_return(ret_path, -EINVAL);
        if (xdg && *xdg) {
                if (asprintf(&p, "%s/hybrid/bus.sock", xdg) < 0)
                        return -ENOMEM;
        } else if (!(p = strdup("/run/hybrid/bus.sock")))
                return -ENOMEM;
        *ret_path = p;
        return 0;
}

/* ---------------------------------------------------------------- raw I/O */

static void bus_close_fd(hyb_bus *bus);
static bool bus_frame_buffered(const hyb_bus *bus);

/*
 * A write the daemon's end refused: the peer is gone.  The caller gets HYB_E_CLOSED (as
 * for a bus closed already); the socket stays readable at EOF, so the next
 * hyb_bus_process reads what the daemon sent last (an ERROR with its reason), closes
 * the bus and fails the pending calls.
 */
static int send_error(int err)
{
        return err == EPIPE || err == ECONNRESET ? HYB_E_CLOSED : -err;
}

static int bus_flush_some(hyb_bus *bus)
{
        bus->held = false;
        while (bus->wpos < bus->wlen) {
                ssize_t n;

                if (bus->ws) {
                        n = bus_ws_write(bus->ws, bus->wbuf + bus->wpos, bus->wlen - bus->wpos);
                        if (n == -EAGAIN)
                                return 0;
                        if (n < 0)
                                return send_error((int)-n);
                        bus->wpos += (size_t)n;
                        continue;
                }
                n = send(bus->fd, bus->wbuf + bus->wpos, bus->wlen - bus->wpos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return send_error(errno);
                }
                bus->wpos += (size_t)n;
        }
        bus->wpos = bus->wlen = 0;
        if (bus->walloc > 16 * RBUF_MIN) {
                free(bus->wbuf);
                bus->wbuf = NULL;
                bus->walloc = 0;
        }
        if (bus->ep_out)
                bus_ep_sync(bus);
        return 1;
}

int bus_wbuf_append(hyb_bus *bus, const void *p, size_t len)
{
        if (bus->wpos > 0 && bus->wpos == bus->wlen)
                bus->wpos = bus->wlen = 0;
        if (bus->wlen + len > bus->walloc) {
                if (bus->wpos > 0) {
                        memmove(bus->wbuf, bus->wbuf + bus->wpos, bus->wlen - bus->wpos);
                        bus->wlen -= bus->wpos;
                        bus->wpos = 0;
                }
                if (grow_array((void **)&bus->wbuf, &bus->walloc, bus->wlen + len, 1) < 0)
                        return -ENOMEM;
        }
        memcpy(bus->wbuf + bus->wlen, p, len);
        bus->wlen += len;
        return 0;
}

int bus_send(hyb_bus *bus, wire_hdr *h, const char *to, size_t to_len, const char *member,
             size_t member_len, const void *body, size_t body_len)
{
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        size_t total, done = 0, pend;
        int n_iov, r;

        if (bus->closed)
                return HYB_E_CLOSED;
        if (to_len > WIRE_ENDPOINT_MAX || member_len > WIRE_MEMBER_MAX)
                return HYB_E_NOT_ACCEPTABLE;
        if (body_len > bus->max_body)
                return HYB_E_TOO_LARGE;
        n_iov = wire_build(h, NULL, 0, to, to_len, member, member_len, body, body_len, hdr, iov);
        total = iov[0].iov_len + (n_iov > 1 ? iov[1].iov_len : 0);

        if (bus->ws) {
                /* one packet, one binary message, framed into wbuf */
                r = bus_ws_queue(bus, iov, n_iov);
                if (r < 0)
                        return r;
                if (!bus->corked) {
                        r = bus_flush_some(bus);
                        if (r < 0)
                                return r;
                }
                goto out;
        }
        pend = bus->wlen - bus->wpos;
        if (bus->batching && !bus->corked && (pend == 0 || bus->held) &&
            pend + total <= BUS_HOLD_MAX) {
                /* an answer within a batch read at once: held for the batch's one write */
                r = bus_wbuf_append(bus, iov[0].iov_base, iov[0].iov_len);
                if (r == 0 && n_iov > 1)
                        r = bus_wbuf_append(bus, iov[1].iov_base, iov[1].iov_len);
                if (r < 0) {
                        bus->wlen = bus->wpos + pend;
                        return r;
                }
                if (!bus->held)
                        bus->held_at = hyb_now_usec();
                bus->held = true;
                goto out;
        }
        if ((pend == 0 || bus->held) && !bus->corked) {
                /* Nothing queued but what a batch held: write directly, one syscall, no
                 * copy of this packet (the held ones first). */
                struct iovec all[3];
                int k = 0;

                if (pend)
                        all[k++] = (struct iovec){ bus->wbuf + bus->wpos, pend };
                for (int i = 0; i < n_iov; i++)
                        all[k++] = iov[i];
                struct msghdr mh = { .msg_iov = all, .msg_iovlen = (size_t)k };
                for (;;) {
                        ssize_t n = sendmsg(bus->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno != EAGAIN)
                                return send_error(errno);
                        done = n < 0 ? 0 : (size_t)n;
                        break;
                }
                bus->held = false;
                if (pend) {
                        if (done >= pend) {
                                done -= pend;
                                bus->wpos = bus->wlen = 0;
                        } else {
                                bus->wpos += done;
                                done = 0;
                        }
                }
                if (done == total)
                        goto out;
        }
        /* Queue what is left. */
        for (int i = 0; i < n_iov; i++) {
                size_t l = iov[i].iov_len;
                if (done >= l) {
                        done -= l;
                        continue;
                }
                r = bus_wbuf_append(bus, (uint8_t *)iov[i].iov_base + done, l - done);
                if (r < 0)
                        return r;
                done = 0;
        }
out:
        if (bus->efd >= 0 && bus->ep_out != (bus->wlen > bus->wpos))
                bus_ep_sync(bus);
        if (bus->base)
                bus_update_event(bus);
        return 0;
}

static size_t bus_parse_limit(const hyb_bus *bus)
{
        return bus->max_body > WIRE_DEFAULT_MAX_BODY ? bus->max_body : WIRE_DEFAULT_MAX_BODY;
}

/* Makes room for len more bytes at the end of rbuf. */
static int rbuf_reserve(hyb_bus *bus, size_t len)
{
        if (bus->rpos == bus->rlen)
                bus->rpos = bus->rlen = 0;
        if (bus->ralloc - bus->rlen >= len)
                return 0;
        if (bus->rpos > 0) {
                memmove(bus->rbuf, bus->rbuf + bus->rpos, bus->rlen - bus->rpos);
                bus->rlen -= bus->rpos;
                bus->rpos = 0;
        }
        return grow_array((void **)&bus->rbuf, &bus->ralloc, bus->rlen + len, 1);
}

int bus_rbuf_append(hyb_bus *bus, const void *p, size_t len)
{
        if (rbuf_reserve(bus, len) < 0)
                return -ENOMEM;
        memcpy(bus->rbuf + bus->rlen, p, len);
        bus->rlen += len;
        return 0;
}

/*
 * One read: without MSG_DONTWAIT in flags only from bus_wait_read (a blocking Unix
 * socket, ws:// never), which gets -EINTR back instead of a retry (the wait's time left
 * is counted again).  1 got bytes, 0 nothing now (or SO_RCVTIMEO ran out), HYB_E_CLOSED
 * at EOF, -errno.
 */
static int bus_read_flags(hyb_bus *bus, int flags)
{
        size_t need = RBUF_MIN;
        wire_hdr h;

        if (bus->ws) {
                if (bus->rpos == bus->rlen && bus->ralloc > 16 * RBUF_MIN) {
                        free(bus->rbuf);
                        bus->rbuf = NULL;
                        bus->rpos = bus->rlen = bus->ralloc = 0;
                }
                bus->drained = false;
                return bus_ws_read(bus);
        }

        if (bus->rpos == bus->rlen) {
                bus->rpos = bus->rlen = 0;
                /* Give back the memory of a huge message once it is consumed. */
                if (bus->ralloc > 16 * RBUF_MIN) {
                        free(bus->rbuf);
                        bus->rbuf = NULL;
                        bus->ralloc = 0;
                }
        }
        /* Make room for the whole pending frame when its header is known. */
        if (bus->rlen - bus->rpos >= WIRE_HDR_SIZE && wire_hdr_decode(bus->rbuf + bus->rpos, &h) == 0 &&
            h.body_len <= bus_parse_limit(bus) && wire_frame_len(&h) > need)
                need = wire_frame_len(&h);
        if (bus->ralloc - bus->rpos < need || bus->ralloc - bus->rlen < RBUF_MIN / 4) {
                if (bus->rpos > 0) {
                        memmove(bus->rbuf, bus->rbuf + bus->rpos, bus->rlen - bus->rpos);
                        bus->rlen -= bus->rpos;
                        bus->rpos = 0;
                }
                size_t want = need > RBUF_MIN && need > bus->rlen ? need : bus->rlen + RBUF_MIN;
                if (grow_array((void **)&bus->rbuf, &bus->ralloc, want, 1) < 0)
                        return -ENOMEM;
        }
        for (;;) {
                /* The broker passes direct channels' fds with the bytes of their frames
                 * (doc/bus.md "Direct channels"): they wait in the fd FIFO for them. */
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(4 * sizeof(int))];
                } cm;
                struct iovec iov = { bus->rbuf + bus->rlen, bus->ralloc - bus->rlen };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                                     .msg_controllen = sizeof cm.buf };
                ssize_t n = recvmsg(bus->fd, &mh, flags | MSG_CMSG_CLOEXEC);
                if (n >= 0 && mh.msg_controllen > 0) {
                        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                        continue;
                                size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                for (size_t i = 0; i < nfd; i++) {
                                        int fd;
                                        memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
                                        bus_fd_push(bus, fd);
                                }
                        }
                }
                if (n < 0) {
                        if (errno == EINTR && (flags & MSG_DONTWAIT))
                                continue;
                        if (errno == EINTR)
                                return -EINTR;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                if (n == 0)
                        return HYB_E_CLOSED;
                /* A short read most likely emptied the socket: the next step polls first
                 * instead of paying a recv() that would say EAGAIN. */
                bus->drained = (size_t)n < bus->ralloc - bus->rlen;
                bus->rlen += (size_t)n;
                return 1;
        }
}

/* One non-blocking read. 1 got bytes, 0 nothing now, HYB_E_CLOSED at EOF, -errno. */
static int bus_read(hyb_bus *bus)
{
        return bus_read_flags(bus, MSG_DONTWAIT);
}

int bus_read_nb(hyb_bus *bus)
{
        int r = bus_read(bus);

        if (r < 0)
                bus_close_fd(bus);
        return r;
}

int bus_flush_nb(hyb_bus *bus)
{
        int r = bus_flush_some(bus);

        if (r < 0)
                bus_close_fd(bus);
        return r;
}

/* Takes the next complete packet out of rbuf. 1, 0 (incomplete) or < 0. */
static int bus_next(hyb_bus *bus, wire_packet *p)
{
        size_t used;

        /* Nothing buffered: rbuf may still be NULL, and NULL + 0 is undefined in C. */
        if (bus->rpos == bus->rlen)
                return 0;
        int r = wire_parse(bus->rbuf + bus->rpos, bus->rlen - bus->rpos, bus_parse_limit(bus), p, &used);
        if (r > 0)
                bus->rpos += used;
        return r;
}

int bus_poll(hyb_bus *bus, uint64_t deadline_us)
{
        struct pollfd pfd[2] = {
                { .fd = bus->n_chans > 0 ? bus->efd : bus->fd, .events = POLLIN },
                { .fd = bus->cancellable ? bus->cancel_fd : -1, .events = POLLIN },
        };
        int ms = -1;

        if (bus->closed)
                return HYB_E_CLOSED;
        if (bus->wlen > bus->wpos && bus->n_chans == 0)
                pfd[0].events |= POLLOUT;
        if (bus->n_chans > 0 && (bus_chan_buffered(bus) || bus_frame_buffered(bus)))
                return 1;
        if (bus_ws_pending(bus->ws)) {
                /* input a poll would not announce (TLS plaintext): ready now */
                if (pfd[0].events & POLLOUT && poll(pfd, 1, 0) > 0 && (pfd[0].revents & POLLOUT))
                        bus_flush_some(bus);
                return 1;
        }
        if (deadline_us != UINT64_MAX) {
                uint64_t now = hyb_now_usec();
                ms = deadline_us <= now ? 0 : (int)((deadline_us - now + 999) / 1000);
        }
        if (bus->n_chans > 0 && !bus->cancellable)
                return bus_chan_poll(bus, ms); /* the set's events serve the next step */
        int r = poll(pfd, 2, ms);
        if (r < 0)
                return -errno;
        if (pfd[1].revents)
                return -ECANCELED; /* bus_connect_cancellable: the caller gives up */
        if (r > 0 && (pfd[0].revents & POLLOUT))
                bus_flush_some(bus);
        if (r > 0 && bus->n_chans > 0)
                bus_chan_flush(bus); /* the set is readable: maybe room to write */
        return r;
}

void bus_fail_all(hyb_bus *bus)
{
        if (!bus->closed) {
                bus->closed = true;
                if (bus->ev_io)
                        event_del(bus->ev_io);
                if (bus->ev_timer)
                        event_del(bus->ev_timer);
        }
        /* Fail pending calls with a local 502 so callbacks learn about it. */
        while (bus->calls_head) {
                bus_call *c = bus->calls_head;
                bus_call_unlink(c);
                c->done = true;
                if (c->cb && bus->n_ref == 0) {
                        /* Being freed: no callbacks into a dying bus. */
                        slot_drop_floating(&c->slot);
                } else if (c->cb) {
                        const char *m = bus->close_status ? bus->close_msg : "connection closed";
                        hyb_bus_reply *rep = bus_reply_new(bus->close_status ? bus->close_status : 502,
                                                           0, "", 0, m, strlen(m), NULL, 0);
                        hyb_slot_ref(&c->slot); /* the callback may drop the caller's last one */
                        if (rep)
                                c->cb(bus, rep, c->slot.userdata);
                        hyb_bus_reply_unref(rep);
                        slot_drop_floating(&c->slot);
                        hyb_slot_unref(&c->slot);
                }
        }
}

static void bus_close_fd(hyb_bus *bus)
{
        bus_fail_all(bus);
        bus_chan_close_all(bus);
        bus_fds_close(bus);
        if (bus->ws)
                bus_ws_shutdown(bus); /* close frame, close_notify: best effort */
        if (bus->fd >= 0) {
                close(bus->fd);
                bus->fd = -1;
        }
}

/* Dispatches one already-parsed packet. */
static int bus_dispatch(hyb_bus *bus, const wire_packet *p)
{
        wire_hdr h = { .type = WIRE_PONG };

        switch (p->h.type) {
        case WIRE_RESULT:
                bus_dispatch_result(bus, p);
                return 1;
        case WIRE_CALL:
                bus_dispatch_call(bus, p);
                return 1;
        case WIRE_EVENT:
                if (bus_store_is_msg(p))
                        bus_store_dispatch(bus, p);
                else
                        bus_dispatch_event(bus, p);
                return 1;
        case WIRE_CANCEL:
                bus_dispatch_cancel(bus, NULL, p);
                return 1;
        case WIRE_PING:
                bus_send(bus, &h, NULL, 0, NULL, 0, NULL, 0);
                return 1;
        case WIRE_PONG:
                return 1;
        case WIRE_MONITOR:
                bus_dispatch_monitor(bus, p);
                return 1;
        case WIRE_CHANNEL:
                bus_dispatch_channel(bus, p);
                return 1;
        case WIRE_ERROR:
                /* The broker's last word (e.g. 507 "quota uid_max_bytes exceeded: ..."):
                 * kept so pending calls and the caller's hyb_error carry it. */
                bus->close_status = p->h.status;
                snprintf(bus->close_msg, sizeof bus->close_msg, "%.*s",
                         (int)(p->h.member_len < sizeof bus->close_msg ? p->h.member_len
                                                                        : sizeof bus->close_msg - 1),
                         p->member);
                bus_close_fd(bus);
                return HYB_E_CLOSED;
        default:
                bus_close_fd(bus);
                return HYB_E_PROTOCOL;
        }
}

/* Is a whole packet in rbuf? */
static bool bus_frame_buffered(const hyb_bus *bus)
{
        wire_hdr h;

        return bus->rlen - bus->rpos >= WIRE_HDR_SIZE &&
               wire_hdr_decode(bus->rbuf + bus->rpos, &h) == 0 &&
               bus->rlen - bus->rpos >= wire_frame_len(&h);
}

static int bus_step_buffered(hyb_bus *bus)
{
        wire_packet p;
        bool was;
        int r;

        if (bus->closed)
                return HYB_E_CLOSED;
        r = bus_next(bus, &p);
        if (r < 0) {
                bus_close_fd(bus);
                return r;
        }
        if (r == 0)
                return 0;
        /* More packets were read with this one: its answer waits for theirs (bus_send) */
        was = bus->batching;
        bus->batching = !bus->ws && bus_frame_buffered(bus);
        r = bus_dispatch(bus, &p);
        bus->batching = was;
        /* slow handlers: answers held longer than BUS_HOLD_USEC leave now */
        if (bus->held && !bus->closed && hyb_now_usec() - bus->held_at > BUS_HOLD_USEC) {
                int f = bus_flush_some(bus);

                if (f < 0) {
                        bus_close_fd(bus);
                        return f;
                }
        }
        return r;
}

int bus_step(hyb_bus *bus)
{
        int r;

        if (bus->closed)
                return HYB_E_CLOSED;
        /* What a batch held waits for the batch's last answer, while packets of it remain */
        if (bus->wlen > bus->wpos && !(bus->held && bus_frame_buffered(bus))) {
                r = bus_flush_some(bus);
                if (r < 0) {
                        bus_close_fd(bus);
                        return r;
                }
        }
        r = bus_step_buffered(bus);
        if (r != 0)
                return r;
        if (bus->n_chans > 0) {
                /* Direct channels: the epoll set says which sockets to read. */
                bus_chan_flush(bus);
                r = bus_chan_step_buffered(bus);
                if (r != 0)
                        return r;
                if (bus_chan_read_hot(bus) > 0) {
                        bus_chan_step_buffered(bus);
                        return bus->closed ? HYB_E_CLOSED : 1;
                }
                r = bus_chan_wait(bus, 0);
                if (r < 0)
                        return r;
                if (r > 0) {
                        r = bus_step_buffered(bus);
                        if (r == 0)
                                bus_chan_step_buffered(bus);
                        return r < 0 ? r : 1;
                }
                return bus_expire_calls(bus);
        }
        if (bus->drained) {
                /* Skipped once only, so a level-triggered loop that calls us again reads. */
                bus->drained = false;
                return bus_expire_calls(bus);
        }
        r = bus_read(bus);
        if (r < 0) {
                bus_close_fd(bus);
                return r;
        }
        if (r > 0) {
                r = bus_step_buffered(bus);
                if (r != 0)
                        return r;
                return 1; /* read a partial frame: progress */
        }
        return bus_expire_calls(bus);
}

/* ---------------------------------------------------------------- handshake */

static int bus_read_packet_blocking(hyb_bus *bus, wire_packet *p, uint64_t deadline)
{
        for (;;) {
                int r = bus_next(bus, p);
                if (r != 0)
                        return r;
                r = bus_poll(bus, deadline);
                if (r < 0)
                        return r;
                if (r == 0)
                        return -ETIMEDOUT;
                r = bus_read(bus);
                if (r < 0)
                        return r;
        }
}

/* Sends an AUTH packet whose body is j as compact JSON; takes j's reference.  0 or < 0
 * (-ENOMEM, bus_send's error). */
static int bus_send_auth(hyb_bus *bus, json_t *j)
{
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        wire_hdr h = { .type = WIRE_AUTH };
        int r;

        json_decref(j);
        if (!text)
                return -ENOMEM;
        r = bus_send(bus, &h, NULL, 0, NULL, 0, text, strlen(text));
        free(text);
        return r;
}

static int bus_handshake(hyb_bus *bus, const hyb_bus_connect_options *o, hyb_error *reterr)
{
        const char *app = o->app, *runner = o->runner, *audience = NULL;
        uint8_t nb[TOKEN_NONCE_LEN], nc[TOKEN_NONCE_LEN], t[32];
        char nc_hex[2 * TOKEN_NONCE_LEN + 1], proof[TOKEN_PROOF_B64_LEN + 1], binding[TOKEN_BINDING_MAX];
        const char *nonce_hex = NULL;
        _cleanup_free_ char *aud_copy = NULL;
        uint64_t deadline = hyb_now_usec() + 15u * 1000000u;
        wire_packet p;
        json_t *j;
        json_int_t mb = 0;
        const char *proto = NULL;
        int version = 0, early = 0, r;

        r = bus_read_packet_blocking(bus, &p, deadline);
        if (r == HYB_E_CLOSED)
                return err_set(reterr, HYB_E_UNAVAILABLE, -1, "broker closed the connection");
        if (r < 0)
                return err_set(reterr, r == -ETIMEDOUT ? HYB_E_UNAVAILABLE : r, -1, "no challenge from broker");
        if (p.h.type == WIRE_ERROR)
                return err_set(reterr, hyb_err_from_status(p.h.status), -1, "broker refused: %.*s",
                               (int)p.h.member_len, p.member);
        if (p.h.type != WIRE_CHALLENGE || p.h.flags & WIRE_F_BINARY)
                return err_set(reterr, HYB_E_PROTOCOL, -1, "expected a challenge, got %s",
                               wire_type_name(p.h.type));
        j = json_loadb((const char *)p.body, p.h.body_len, 0, NULL);
        if (!j || json_unpack(j, "{s:s, s:i, s:I, s?s, s?s, s?b}", "protocol", &proto, "version",
                              &version, "maxBody", &mb, "nonce", &nonce_hex, "audience", &audience,
                              "earlyToken", &early) < 0 ||
            strcmp(proto, WIRE_PROTOCOL) != 0) {
                json_decref(j);
                return err_set(reterr, HYB_E_PROTOCOL, -1, "malformed challenge");
        }
        if (o->token) {
                if (!nonce_hex || token_nonce_from_hex(nonce_hex, strlen(nonce_hex), nb) < 0) {
                        json_decref(j);
                        return err_set(reterr, HYB_E_PROTOCOL, -1, "malformed nonce in challenge");
                }
                if (!audience) {
                        /* A broker that takes no tokens (auth.tokens off): it would ignore one. */
                        json_decref(j);
                        return err_set(reterr, HYB_E_UNAUTHORIZED, -1,
                                       "the broker does not accept tokens (auth.tokens off)");
                }
                aud_copy = strdup(audience);
                if (!aud_copy) {
                        json_decref(j);
                        return -ENOMEM;
                }
        }
        json_decref(j);
        if (version != WIRE_VERSION)
                return err_set(reterr, HYB_E_UPGRADE_REQUIRED, -1, "broker speaks version %d", version);
        if (mb <= 0 || (uint64_t)mb > UINT32_MAX)
                return err_set(reterr, HYB_E_PROTOCOL, -1, "bad maxBody in challenge");
        bus->max_body = (size_t)mb;
        /* A remote server may announce up to 4 GiB: over ws:// and wss:// the client takes
         * no larger body than BUS_WS_MAX_BODY either way, so a hostile server cannot make it
         * buffer more (doc/bus.md "Remote brokers") */
        if (bus->ws && bus->max_body > BUS_WS_MAX_BODY)
                bus->max_body = BUS_WS_MAX_BODY;
        if (bus->ws)
                bus_ws_set_max_message(bus->ws, WIRE_HDR_SIZE + WIRE_NAMES_MAX + bus_parse_limit(bus));

        if (o->token && early) {
                /* The broker checks the token's blocks while the proof is signed here
                 * (doc/protocol.md "Handshake"): the token goes ahead, the AUTH that
                 * follows carries it again with the proof. */
                r = bus_send_auth(bus, json_pack("{s:s, s:i, s:s, s:b}", "protocol",
                                                 WIRE_PROTOCOL, "version", WIRE_VERSION,
                                                 "token", o->token, "early", 1));
                if (r < 0)
                        return err_set(reterr, r, -1, "sending the token: %s", hyb_strerror(r));
        }
        if (o->token) {
                r = crypto_random(nc, sizeof nc);
                if (r < 0)
                        return err_set(reterr, r, -1, "client nonce: %s", hyb_strerror(r));
                token_nonce_to_hex(nc, nc_hex);
                if (bus->ws) {
                        /* ws-none, or the TLS session's tls-exporter (doc/token.md) */
                        r = bus_ws_binding(bus->ws, binding, sizeof binding);
                        if (r < 0)
                                return err_set(reterr, r, -1, "channel binding: %s",
                                               hyb_strerror(r));
                } else
                        token_binding_unix(geteuid(), binding);
                r = token_proof_transcript(aud_copy, nb, nc, o->token, strlen(o->token), binding, t);
                if (r >= 0)
                        r = token_proof_sign(o->key, t, proof);
                if (r < 0)
                        return err_set(reterr, r == -ENOKEY ? HYB_E_UNAUTHORIZED : r, -1,
                                       "cannot sign the proof of possession: %s", hyb_strerror(r));
                j = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "protocol", WIRE_PROTOCOL, "version",
                              WIRE_VERSION, "app", app, "runner", runner, "token", o->token, "nonce",
                              nc_hex, "proof", proof);
        } else
                j = json_pack("{s:s, s:i, s:s, s:s}", "protocol", WIRE_PROTOCOL, "version", WIRE_VERSION,
                              "app", app, "runner", runner);
        r = bus_send_auth(bus, j);
        /* A broker that refused the announced token (429, 503, 401) answered and closed
         * while the proof was signed: its answer is read below. */
        if (r < 0 && !(o->token && early && r == HYB_E_CLOSED))
                return err_set(reterr, r, -1, "sending auth: %s", hyb_strerror(r));
        while (r >= 0 && bus->wlen > bus->wpos) {
                r = bus_poll(bus, deadline);
                if (r <= 0)
                        return err_set(reterr, HYB_E_UNAVAILABLE, -1, "broker not reading");
        }

        r = bus_read_packet_blocking(bus, &p, deadline);
        if (r < 0)
                return err_set(reterr, r == -ETIMEDOUT || r == HYB_E_CLOSED ? HYB_E_UNAVAILABLE : r, -1,
                               "no auth result from broker");
        if (p.h.type != WIRE_AUTH_RESULT)
                return err_set(reterr, HYB_E_PROTOCOL, -1, "expected auth result");
        if (p.h.status != 200) {
                r = hyb_err_from_status(p.h.status);
                return err_set(reterr, r, -1, "%.*s", (int)p.h.member_len, p.member);
        }
        j = json_loadb((const char *)p.body, p.h.body_len, 0, NULL);
        const char *ep = NULL;
        if (!j || json_unpack(j, "{s:s}", "endpoint", &ep) < 0) {
                json_decref(j);
                return err_set(reterr, HYB_E_PROTOCOL, -1, "malformed auth result");
        }
        bus->name = strdup(ep);
        json_decref(j);
        if (!bus->name)
                return -ENOMEM;
        bus->name_len = strlen(bus->name);
        return 0;
}

static void bus_free(hyb_bus *bus)
{
        hyb_bus_detach_event(bus);
        bus_close_fd(bus);
        /* Registrations still held by the caller become inert (bus pointers cleared);
         * floating ones die with the bus (their destroy callbacks run now). */
        for (bus_method *m = bus->methods, *n; m; m = n) {
                n = m->next;
                m->bus = NULL;
                slot_drop_floating(&m->slot);
        }
        for (bus_sub *s = bus->subs, *n; s; s = n) {
                n = s->next;
                s->bus = NULL;
                slot_drop_floating(&s->slot);
        }
        for (bus_monitor *m = bus->monitors, *n; m; m = n) {
                n = m->next;
                m->bus = NULL;
                slot_drop_floating(&m->slot);
        }
        bus_store_free_all(bus);
        for (bus_peer *pr = bus->peers, *n; pr; pr = n) {
                n = pr->next;
                free(pr->endpoint);
                free(pr);
        }
        if (bus->efd >= 0)
                close(bus->efd);
        free(bus->evs);
        bus_ws_free(bus->ws);
        free(bus->name);
        free(bus->rbuf);
        free(bus->wbuf);
        free(bus->deadlines);
        free(bus);
}

/*
 * $HYBRID_TOKEN (a token file) and $HYBRID_KEY (its holder's private key file): both
 * read, or neither set (*token NULL).  A file that cannot be read, or only one of the
 * two, is HYB_E_UNAUTHORIZED: the credentials the caller meant cannot be shown.
 */
int bus_env_credentials(char **ret_token, hyb_key **ret_key, hyb_error *reterr)
{
        const char *tf = secure_getenv("HYBRID_TOKEN"), *kf = secure_getenv("HYBRID_KEY");
        char buf[HYB_TOKEN_MAX_SIZE + 2];
        size_t n;
        FILE *f;
        int r;

        *ret_token = NULL;
        *ret_key = NULL;
        if ((!tf || !*tf) && (!kf || !*kf))
                return 0;
        if (!tf || !*tf || !kf || !*kf)
                return err_set(reterr, HYB_E_UNAUTHORIZED, -1,
                               "$HYBRID_TOKEN and $HYBRID_KEY go together");
        f = fopen(tf, "re");
        if (!f)
                return err_set(reterr, HYB_E_UNAUTHORIZED, -1, "cannot read the token %s: %s", tf,
                               strerror(errno));
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                buf[--n] = '\0';
        if (n == 0 || n > HYB_TOKEN_MAX_SIZE)
                return err_set(reterr, HYB_E_UNAUTHORIZED, -1, "the token %s is empty or too long", tf);
        hyb_error ke;

        hyb_error_clear(&ke);
        r = hyb_key_load_file(kf, ret_key, &ke);
        if (r < 0)
                return err_set(reterr, HYB_E_UNAUTHORIZED, -1, "cannot load the key %s: %s", kf,
                               ke.message[0] ? ke.message : hyb_strerror(r));
        *ret_token = strdup(buf);
        if (!*ret_token) {
                *ret_key = hyb_key_unref(*ret_key);
                return -ENOMEM;
        }
        return 0;
}

HYB_EXPORT void hyb_bus_connect_options_init_sized(hyb_bus_connect_options *opts, size_t size)
{
        sized_init(opts, size, NULL, sizeof(*opts));
}

/* The symbol of programs built before _init_sized (the header's macro hides the name). */
HYB_EXPORT void (hyb_bus_connect_options_init)(hyb_bus_connect_options *opts)
{
        hyb_bus_connect_options_init_sized(opts, sizeof(*opts));
}

HYB_EXPORT int hyb_bus_connect(const char *path, const char *app, const char *runner, hyb_bus **ret,
                               hyb_error *reterr)
{
        hyb_bus_connect_options o;
        hyb_key *key = NULL;
        char *token = NULL;
        int r;

        hyb_bus_connect_options_init(&o);
        o.path = path;
        o.app = app;
        o.runner = runner;
        /* The environment's credentials, as $HYBRID_BUS names the socket: a service started
         * with $HYBRID_TOKEN and $HYBRID_KEY connects with that token. */
        r = bus_env_credentials(&token, &key, reterr);
        if (r < 0)
                return r;
        o.token = token;
        o.key = key;
        r = hyb_bus_connect_with(&o, ret, reterr);
        free(token);
        hyb_key_unref(key);
        return r;
}

int bus_connect_options_copy(hyb_bus_connect_options *o, const hyb_bus_connect_options *opts)
{
        if (!opts || !opts->size)
                return -EINVAL;
        memset(o, 0, sizeof(*o));
        memcpy(o, opts, opts->size < sizeof(*o) ? opts->size : sizeof(*o));
        o->size = sizeof(*o);
        return o->app && o->runner ? 0 : -EINVAL;
}

/*
 * Do this thread and the broker at the other end of fd run on one and the same CPU
 * (both restricted to it, or a machine with one CPU online)?  Then a wait sleeping in
 * recv() gains nothing (no halted CPU to wake early) and only pays for the broker's
 * reading of the request waking it before the answer is there: its waits poll().
 * Asked once, at connect; anything unknown counts as "no".
 */
static bool bus_one_cpu_with_peer(int fd)
{
        struct ucred cr;
        socklen_t len = sizeof cr;
        cpu_set_t ours, theirs;

        if (sched_getaffinity(0, sizeof ours, &ours) < 0 || CPU_COUNT(&ours) != 1)
                return false;
        if (sysconf(_SC_NPROCESSORS_ONLN) == 1)
                return true;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.pid <= 0 ||
            sched_getaffinity(cr.pid, sizeof theirs, &theirs) < 0)
                return false;
        return CPU_EQUAL(&ours, &theirs);
}

static int bus_connect(const hyb_bus_connect_options *opts, bool cancellable, int cancel_fd,
                       hyb_bus **ret, hyb_error *reterr)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *dflt = NULL;
        hyb_bus_connect_options o = { 0 };
        const char *path, *app, *runner;
        hyb_bus *bus;
        int r;

        hyb_assert_return(ret, -EINVAL);
        r = bus_connect_options_copy(&o, opts);
        if (r < 0)
                return r;
        path = o.path;
        app = o.app;
        runner = o.runner;
        if (o.token && !o.key)
                return err_set(reterr, -EINVAL, -1, "a token needs its holder key");
        if (o.token && !hyb_key_has_private(o.key))
                return err_set(reterr, HYB_E_UNAUTHORIZED, -1,
                               "the holder key has no private part: it cannot prove possession");
        r = bus_name_check_app(app, strlen(app), reterr);
        if (r < 0)
                return r;
        r = bus_name_check_ident(runner, strlen(runner), reterr);
        if (r < 0)
                return r;
        if (!path && (path = secure_getenv("HYBRID_BUS")) && !*path)
                path = NULL;
        if (!path) {
                r = hyb_bus_get_default_socket(&dflt);
                if (r < 0)
                        return r;
                path = dflt;
        }
        if (bus_ws_is_url(path)) {
                /* A remote broker: uid policy never applies over the network. */
                if (!o.token)
                        return err_set(reterr, HYB_E_UNAUTHORIZED, -1,
                                       "%s: a remote broker needs a token (--token and --key, "
                                       "or $HYBRID_TOKEN and $HYBRID_KEY)", path);
                bus = calloc(1, sizeof *bus);
                if (!bus)
                        return -ENOMEM;
                bus->n_ref = 1;
                bus->next_id = 1;
                bus->max_body = WIRE_DEFAULT_MAX_BODY;
                bus->fd = -1;
                bus->efd = -1;
                bus->cancellable = cancellable;
                bus->cancel_fd = cancel_fd;
                r = bus_ws_connect(bus, path, &o, reterr);
                if (r < 0) {
                        bus_free(bus);
                        return r;
                }
                goto handshake;
        }
        if (strlen(path) >= sizeof sa.sun_path)
                return err_set(reterr, -ENAMETOOLONG, -1, "socket path too long");
        memcpy(sa.sun_path, path, strlen(path));

        bus = calloc(1, sizeof *bus);
        if (!bus)
                return -ENOMEM;
        bus->n_ref = 1;
        bus->next_id = 1;
        bus->max_body = WIRE_DEFAULT_MAX_BODY;
        bus->cancellable = cancellable;
        bus->cancel_fd = cancel_fd;
        bus->efd = -1;
        bus->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (bus->fd < 0) {
                r = -errno;
                free(bus);
                return err_set(reterr, r, -1, "socket: %s", strerror(-r));
        }
        /* The public fd: an epoll set of the broker socket and every direct channel. */
        bus->efd = epoll_create1(EPOLL_CLOEXEC);
        bus->efd_pid = getpid();
        if (bus->efd < 0 ||
            epoll_ctl(bus->efd, EPOLL_CTL_ADD, bus->fd,
                      &(struct epoll_event){ .events = EPOLLIN, .data.ptr = bus }) < 0) {
                r = -errno;
                bus_free(bus);
                return err_set(reterr, r, -1, "epoll: %s", strerror(-r));
        }
        if (connect(bus->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
                r = errno;
                bus_free(bus);
                /* A Unix socket says EAGAIN when its listen queue has no room: the socket
                 * is not connected (nothing to wait for), and the handshake would only fail
                 * later with a vaguer message. */
                if (r == EAGAIN)
                        return err_set(reterr, HYB_E_UNAVAILABLE, -1,
                                       "cannot connect to %s: its listen queue is full (the "
                                       "broker accepts no more connections now; try again)",
                                       path);
                return err_set(reterr, HYB_E_UNAVAILABLE, -1, "cannot connect to %s: %s", path,
                               strerror(r));
        }
handshake:
        r = bus_handshake(bus, &o, reterr);
        if (r < 0) {
                bus_free(bus);
                return r;
        }
        if (!bus->ws && !cancellable && !bus_one_cpu_with_peer(bus->fd)) {
                /* From here a synchronous wait may sleep in recv() (bus_wait_read); the
                 * connect and the handshake above polled, as a cancellable one always does */
                int fl = fcntl(bus->fd, F_GETFL);

                bus->fd_blocking = fl >= 0 && fcntl(bus->fd, F_SETFL, fl & ~O_NONBLOCK) == 0;
        }
        *ret = bus;
        return 0;
}

HYB_EXPORT int hyb_bus_connect_with(const hyb_bus_connect_options *opts, hyb_bus **ret,
                                    hyb_error *reterr)
{
        return bus_connect(opts, false, -1, ret, reterr);
}

int bus_connect_cancellable(const hyb_bus_connect_options *opts, int cancel_fd, hyb_bus **ret,
                            hyb_error *reterr)
{
        hyb_assert_return(cancel_fd >= 0, -EBADF);
        return bus_connect(opts, true, cancel_fd, ret, reterr);
}

HYB_DEFINE_REF_UNREF(hyb_bus, hyb_bus, bus_free)

HYB_EXPORT int hyb_bus_get_close_reason(const hyb_bus *bus, const char **ret_message)
{
        hyb_assert_return(bus, -EINVAL);
        if (ret_message)
                *ret_message = bus->close_status ? bus->close_msg : NULL;
        return bus->close_status;
}

HYB_EXPORT void hyb_bus_close(hyb_bus *bus)
{
        if (!bus)
                return;
        /* The calls failed here run their callbacks, which may drop the caller's last
         * reference (a binding's close() from a call's callback, inside this close): the
         * bus stays until the close is done. */
        hyb_bus_ref(bus);
        bus_close_fd(bus);
        hyb_bus_unref(bus);
}

HYB_EXPORT bool hyb_bus_is_open(const hyb_bus *bus)
{
        return bus && !bus->closed;
}

HYB_EXPORT const char *hyb_bus_get_endpoint_name(const hyb_bus *bus)
{
        return bus ? bus->name : NULL;
}

HYB_EXPORT size_t hyb_bus_get_max_body(const hyb_bus *bus)
{
        return bus ? bus->max_body : 0;
}

/* ---------------------------------------------------------------- loop integration */

HYB_EXPORT int hyb_bus_get_fd(const hyb_bus *bus)
{
        hyb_assert_return(bus, -EINVAL);
        if (bus->closed)
                return -EBADF;
        return bus->efd >= 0 ? bus->efd : bus->fd;
}

HYB_EXPORT int hyb_bus_get_events(const hyb_bus *bus)
{
        hyb_assert_return(bus, -EINVAL);
        if (bus->closed)
                return -EBADF;
        /* The epoll set turns readable when queued output can leave, too. */
        if (bus->efd >= 0)
                return HYB_BUS_EVENT_IN;
        return HYB_BUS_EVENT_IN | (bus->wlen > bus->wpos ? HYB_BUS_EVENT_OUT : 0);
}

HYB_EXPORT int hyb_bus_get_timeout(const hyb_bus *bus, uint64_t *ret_usec)
{
        hyb_assert_return(bus && ret_usec, -EINVAL);
        if (bus->closed)
                return -EBADF;
        /* Buffered complete packets, or input a poll would not announce, mean "now". */
        wire_hdr h;
        if (bus_ws_pending(bus->ws)) {
                *ret_usec = 0;
                return 0;
        }
        if (bus->rlen - bus->rpos >= WIRE_HDR_SIZE && wire_hdr_decode(bus->rbuf + bus->rpos, &h) == 0 &&
            bus->rlen - bus->rpos >= wire_frame_len(&h)) {
                *ret_usec = 0;
                return 0;
        }
        if (bus->n_chans > 0 && bus_chan_buffered(bus)) {
                *ret_usec = 0;
                return 0;
        }
        *ret_usec = bus_next_deadline(bus);
        return 0;
}

HYB_EXPORT int hyb_bus_process(hyb_bus *bus)
{
        hyb_assert_return(bus, -EINVAL);
        hyb_bus_ref(bus);
        int r = bus_step(bus);
        hyb_bus_unref(bus);
        return r;
}

HYB_EXPORT int hyb_bus_wait(hyb_bus *bus, uint64_t timeout_usec)
{
        uint64_t deadline, next;

        hyb_assert_return(bus, -EINVAL);
        if (bus->closed)
                return HYB_E_CLOSED;
        if (hyb_bus_get_timeout(bus, &next) == 0 && next == 0)
                return 1;
        deadline = timeout_usec == UINT64_MAX ? UINT64_MAX : hyb_now_usec() + timeout_usec;
        if (next < deadline)
                deadline = next;
        return bus_poll(bus, deadline);
}

HYB_EXPORT int hyb_bus_set_cork(hyb_bus *bus, bool cork)
{
        hyb_assert_return(bus, -EINVAL);
        bus->corked = cork;
        return cork ? 0 : hyb_bus_flush(bus);
}

HYB_EXPORT int hyb_bus_flush(hyb_bus *bus)
{
        hyb_assert_return(bus, -EINVAL);
        while (!bus->closed && bus->wlen > bus->wpos) {
                int r = bus_flush_some(bus);
                if (r < 0) {
                        bus_close_fd(bus);
                        return r;
                }
                if (r == 0 && (r = bus_poll(bus, UINT64_MAX)) < 0)
                        return r;
        }
        return bus->closed ? HYB_E_CLOSED : 0;
}

static void bus_event_cb(evutil_socket_t fd, short what, void *ud)
{
        hyb_bus *bus = ud;
        int n = 0;

        hyb_bus_ref(bus);
        while (n++ < 1024 && hyb_bus_process(bus) > 0)
                ;
        if (!bus->closed)
                bus_update_event(bus);
        hyb_bus_unref(bus);
}

void bus_update_event(hyb_bus *bus)
{
        uint64_t next;
        short want = EV_READ | EV_PERSIST;

        if (!bus->base || bus->closed)
                return;
        if (bus->wlen > bus->wpos && bus->efd < 0)
                want |= EV_WRITE;
        if (event_get_events(bus->ev_io) != want) {
                event_del(bus->ev_io);
                event_assign(bus->ev_io, bus->base, hyb_bus_get_fd(bus), want, bus_event_cb, bus);
                event_add(bus->ev_io, NULL);
        }
        /* TLS plaintext, or a complete packet read with a synchronous call's answer
         * (or left by the 1024 of bus_event_cb): input the fd will not announce */
        if (bus_ws_pending(bus->ws) || bus_frame_buffered(bus) ||
            (bus->n_chans > 0 && bus_chan_buffered(bus)))
                event_active(bus->ev_io, EV_READ, 0);
        next = bus_next_deadline(bus);
        if (next != UINT64_MAX) {
                uint64_t now = hyb_now_usec(), d = next > now ? next - now : 0;
                struct timeval tv = { .tv_sec = (time_t)(d / 1000000u), .tv_usec = (suseconds_t)(d % 1000000u) };
                evtimer_add(bus->ev_timer, &tv);
        } else
                evtimer_del(bus->ev_timer);
}

HYB_EXPORT int hyb_bus_attach_event(hyb_bus *bus, struct event_base *base)
{
        hyb_assert_return(bus && base, -EINVAL);
        if (bus->base)
                return -EBUSY;
        if (bus->closed)
                return HYB_E_CLOSED;
        bus->ev_io = event_new(base, hyb_bus_get_fd(bus), EV_READ | EV_PERSIST, bus_event_cb, bus);
        bus->ev_timer = evtimer_new(base, bus_event_cb, bus);
        if (!bus->ev_io || !bus->ev_timer) {
                if (bus->ev_io)
                        event_free(bus->ev_io);
                if (bus->ev_timer)
                        event_free(bus->ev_timer);
                bus->ev_io = bus->ev_timer = NULL;
                return -ENOMEM;
        }
        bus->base = base;
        event_add(bus->ev_io, NULL);
        bus_update_event(bus);
        /* Packets may already sit in rbuf (read during connect or a sync call). */
        event_active(bus->ev_io, EV_READ, 0);
        return 0;
}

HYB_EXPORT int hyb_bus_detach_event(hyb_bus *bus)
{
        hyb_assert_return(bus, -EINVAL);
        if (!bus->base)
                return 0;
        event_free(bus->ev_io);
        event_free(bus->ev_timer);
        bus->ev_io = bus->ev_timer = NULL;
        bus->base = NULL;
        return 0;
}

HYB_EXPORT int hyb_bus_set_spin(hyb_bus *bus, uint32_t usec)
{
        hyb_assert_return(bus && usec <= HYB_BUS_SPIN_MAX_USEC, -EINVAL);
        bus->spin_us = usec;
        bus->spin_skip = bus->spin_backoff = 0;
        return 0;
}

/*
 * Before a synchronous wait sleeps: reads without sleeping for up to spin_us (the
 * answer of a daemon on another CPU then finds this CPU running, not halted: no
 * wake-up of it to pay).  1 read something, 0 nothing came (or no spin this time:
 * the caller sleeps in poll()), < 0 error of the read.  A spin in vain makes the
 * next 1, 2, 4 ... 256 waits sleep at once; one that gets its answer resets that.
 * Queued output (poll() writes it) and ws:// connections (their input is framed,
 * maybe encrypted) do not spin.
 */
static int bus_spin(hyb_bus *bus, uint64_t deadline_us)
{
        uint64_t end;

        if (!bus->spin_us || bus->ws || bus->wlen > bus->wpos)
                return 0;
        end = hyb_now_usec() + bus->spin_us;
        if (end >= deadline_us)
                return 0;
        do {
                int r = bus_read(bus);
                if (r != 0) {
                        if (r > 0)
                                bus->spin_backoff = 0;
                        return r;
                }
        } while (hyb_now_usec() < end);
        bus->spin_backoff = bus->spin_backoff ? (uint16_t)(bus->spin_backoff * 2) : 1;
        if (bus->spin_backoff > 256)
                bus->spin_backoff = 256;
        bus->spin_skip = bus->spin_backoff;
        return 0;
}

/*
 * SO_RCVTIMEO for a recv() that must return before deadline_us: the kernel counts it in
 * ticks (up to 10 ms each, rounded up), so it is set at most to what is left less an
 * eighth (at least BUS_BLOCK_MARGIN_US), and the last BUS_BLOCK_MIN_US of a wait go
 * to poll(), which keeps the deadline to the ms.  The value set is kept while it fits
 * the wait (not above that bound, not far below the time left): calls with the same
 * timeout set it once.  0 set, -EAGAIN: this wait polls (too little left, or the
 * setsockopt failed).
 */
#define BUS_BLOCK_MIN_US 50000u
#define BUS_BLOCK_MARGIN_US 25000u

int bus_fd_rcvtimeo(int fd, uint32_t *set_ms, uint64_t deadline_us)
{
        uint64_t now, left, bound, set = (uint64_t)*set_ms * 1000u, want;
        struct timeval tv;

        if (deadline_us == UINT64_MAX) {
                if (*set_ms == 0)
                        return 0;
                want = 0; /* no limit */
        } else {
                now = hyb_now_usec();
                left = deadline_us > now ? deadline_us - now : 0;
                if (left < BUS_BLOCK_MIN_US)
                        return -EAGAIN;
                bound = left - (left / 8 > BUS_BLOCK_MARGIN_US ? left / 8 : BUS_BLOCK_MARGIN_US);
                if (set && set <= bound && (set >= 1000000u || set >= left / 16))
                        return 0;
                want = left / 2 / 1000u; /* ms; left / 2 <= bound as left >= BUS_BLOCK_MIN_US */
                if (want > UINT32_MAX)
                        want = UINT32_MAX;
        }
        tv = (struct timeval){ .tv_sec = (time_t)(want / 1000u),
                               .tv_usec = (suseconds_t)(want % 1000u * 1000u) };
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
                return -EAGAIN;
        *set_ms = (uint32_t)want;
        return 0;
}

static int bus_set_rcvtimeo(hyb_bus *bus, uint64_t deadline_us)
{
        return bus_fd_rcvtimeo(bus->fd, &bus->rcvtimeo_ms, deadline_us);
}

/*
 * A synchronous wait of a Unix connection sleeps in the read of its answer itself, as
 * a blocking client does: the peer reading the request already wakes this side, so the
 * answer finds it waking (bench/README.md "Where a call waits").  Not when output is
 * queued (poll() writes it as the socket takes it), nor on ws:// or cancellable
 * connections.  The socket is the library's own (the application watches the epoll
 * set around it, hyb_bus_get_fd), so nobody else makes it O_NONBLOCK.  With direct
 * channels open, waits go to bus_chan_wait instead.  1 read input, 0 none (SO_RCVTIMEO ran out, or a
 * signal: the caller counts the time left again), -EAGAIN: poll instead, else the
 * read's error (HYB_E_CLOSED at EOF).
 */
static int bus_wait_read(hyb_bus *bus, uint64_t deadline_us)
{
        int r;

        if (!bus->fd_blocking || bus->closed || bus->wlen > bus->wpos)
                return -EAGAIN;
        r = bus_set_rcvtimeo(bus, deadline_us);
        if (r < 0)
                return r;
        r = bus_read_flags(bus, 0);
        if (r == -EINTR)
                return 0;
        return r;
}

/*
 * Runs the connection until *done: dispatches buffered packets first (the
 * handlers of nested calls run here), then waits for input: spinning first
 * (bus_spin) unless a spin of this wait or of an earlier one came back empty,
 * then sleeping in recv() (bus_wait_read) or, where that cannot be, in poll().
 * Used by every synchronous operation.
 */
int bus_wait_for(hyb_bus *bus, const bool *done, uint64_t deadline_us)
{
        bool spin;
        int r = 0;

        hyb_bus_ref(bus);
        bus->depth++;
        spin = bus->spin_skip == 0;
        if (!spin)
                bus->spin_skip--;
        while (!*done) {
                r = bus_step_buffered(bus);
                if (r < 0)
                        break;
                if (r > 0)
                        continue;
                if (bus->n_chans > 0) {
                        /* A nested call may come on any socket: wait on them all, unless
                         * nothing but this call's answer can come (bus_chan_wait_read). */
                        bus_chan_flush(bus);
                        r = bus_chan_step_buffered(bus);
                        if (r > 0)
                                continue;
                        r = bus_chan_wait_read(bus, deadline_us);
                        if (r > 0)
                                continue;
                        if (r == 0) {
                                bus_expire_calls(bus);
                                continue;
                        }
                        r = bus_chan_wait(bus, deadline_us);
                        if (r < 0)
                                break;
                        if (r == 0)
                                bus_expire_calls(bus);
                        continue;
                }
                if (spin) {
                        r = bus_spin(bus, deadline_us);
                        if (r < 0) {
                                bus_close_fd(bus);
                                break;
                        }
                        if (r > 0)
                                continue;
                        spin = false; /* in vain (or not now): this wait sleeps from here */
                }
                r = bus_wait_read(bus, deadline_us);
                if (r > 0)
                        continue;
                if (r == 0) {
                        bus_expire_calls(bus);
                        continue;
                }
                if (r != -EAGAIN) {
                        bus_close_fd(bus);
                        break;
                }
                r = bus_poll(bus, deadline_us);
                if (r == -EINTR)
                        continue; /* a signal (a runtime's SIGCHLD...) is no reason to give up */
                if (r < 0)
                        break;
                if (r == 0) {
                        bus_expire_calls(bus);
                        continue;
                }
                r = bus_read(bus);
                if (r < 0) {
                        bus_close_fd(bus);
                        break;
                }
        }
        bus->depth--;
        r = *done ? 0 : bus->closed ? HYB_E_CLOSED : r;
        if (bus->base && !bus->closed)
                bus_update_event(bus);
        hyb_bus_unref(bus);
        return r;
}
