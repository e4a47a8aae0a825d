/* SPDX-License-Identifier: MIT */
/*
 * Direct channels, the library's side (doc/bus.md "Direct channels"): after the broker
 * checked a caller once, it hands a socketpair to the caller and to the service, and
 * calls between the two go over it instead of through the broker.
 *
 *   hyb_bus
 *    |- efd: epoll set {broker socket (data.ptr = bus), channel sockets (data.ptr = chan)}
 *    |- fd_fifo: fds received on the broker socket, claimed in order by the frames that
 *    |           carry them (a CHANNEL open, an openChannel's RESULT 200)
 *    |- chans: bus_chan -> ...   (both sides; the service's and the caller's)
 *    `- peers: bus_peer -> ...   (the caller's record per endpoint it calls)
 *
 * Channel sockets carry CALL/CANCEL one way and RESULT the other, never fds: they are
 * read with plain recv(), which drops any fd a hostile peer attaches.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-internal.h"
#include "common/util.h"

#define CHAN_RBUF_MIN (16u * 1024)
#define CHAN_EVS 16
/* Reads of the channel read last (bus_chan_read_hot) between two looks at the set */
#define BUS_HOT_MAX 16
#define BACKOFF_MIN 64u
#define BACKOFF_MAX 4096u

/* ---------------------------------------------------------------- fds received */

void bus_fd_push(hyb_bus *bus, int fd)
{
        if (bus->n_fd_fifo >= BUS_FD_FIFO_MAX || bus->closed) {
                close(fd); /* the broker never sends that many ahead: not ours to keep */
                return;
        }
        bus->fd_fifo[bus->n_fd_fifo++] = fd;
}

int bus_fd_claim(hyb_bus *bus)
{
        int fd;

        if (bus->n_fd_fifo == 0)
                return -1;
        fd = bus->fd_fifo[0];
        memmove(bus->fd_fifo, bus->fd_fifo + 1, (bus->n_fd_fifo - 1) * sizeof(int));
        bus->n_fd_fifo--;
        return fd;
}

/*
 * The end whose inode the frame names (the broker says which it passed with it): ends
 * ahead of it in the queue came for frames that did not take them, and are closed.
 * None matches: the frame's end never came (the kernel would not pass it), and what is
 * queued belongs to later frames.  A broker that names no inode: the oldest.
 */
static int fd_claim_ino(hyb_bus *bus, json_int_t ino)
{
        if (ino <= 0)
                return bus_fd_claim(bus);
        for (size_t i = 0; i < bus->n_fd_fifo; i++) {
                struct stat st;

                if (fstat(bus->fd_fifo[i], &st) < 0 || (json_int_t)st.st_ino != ino)
                        continue;
                int fd = bus->fd_fifo[i];
                for (size_t k = 0; k < i; k++)
                        close(bus->fd_fifo[k]);
                memmove(bus->fd_fifo, bus->fd_fifo + i + 1, (bus->n_fd_fifo - i - 1) * sizeof(int));
                bus->n_fd_fifo -= i + 1;
                return fd;
        }
        return -1;
}

/* The inode a frame's body names for its end ("ino"), or 0. */
static json_int_t body_ino(json_t *j)
{
        json_t *v = json_object_get(j, "ino");

        return json_is_integer(v) ? json_integer_value(v) : 0;
}

void bus_fds_close(hyb_bus *bus)
{
        while (bus->n_fd_fifo > 0)
                close(bus->fd_fifo[--bus->n_fd_fifo]);
}

void bus_ep_sync(hyb_bus *bus)
{
        bool want = bus->wlen > bus->wpos;
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = bus };

        if (bus->efd < 0 || bus->fd < 0)
                return;
        if (epoll_ctl(bus->efd, EPOLL_CTL_MOD, bus->fd, &ev) == 0)
                bus->ep_out = want;
}

/* ---------------------------------------------------------------- records */

bus_chan *bus_chan_ref(bus_chan *ch)
{
        ch->n_ref++;
        return ch;
}

void bus_chan_unref(bus_chan *ch)
{
        if (!ch || --ch->n_ref > 0)
                return;
        if (ch->fd >= 0)
                close(ch->fd);
        for (size_t i = 0; i < ch->n_methods; i++)
                free(ch->methods[i]);
        free(ch->methods);
        free(ch->rbuf);
        free(ch->wbuf);
        free(ch->from);
        free(ch);
}

/* Takes ch out of the bus: its socket closes (the other end sees EOF). */
static void chan_unlink(bus_chan *ch)
{
        hyb_bus *bus = ch->bus;

        if (!ch->linked)
                return;
        ch->linked = false;
        for (bus_chan **pp = &bus->chans; *pp; pp = &(*pp)->next)
                if (*pp == ch) {
                        *pp = ch->next;
                        break;
                }
        bus->n_chans--;
        if (bus->chan_hot == ch)
                bus->chan_hot = NULL;
        /* events not handled yet must not reach a freed record */
        for (int i = bus->evs_pos; i < bus->n_evs; i++)
                if (bus->evs[i].data.ptr == ch)
                        bus->evs[i].data.ptr = NULL;
        if (ch->fd >= 0) {
                /* A fork()ed child dropping its copy of the bus shares the epoll set with
                 * its parent: its close of the fd leaves the parent's registration be, a
                 * DEL would take the parent's channel out of the parent's waits. */
                if (bus->efd >= 0 && bus->efd_pid == getpid())
                        epoll_ctl(bus->efd, EPOLL_CTL_DEL, ch->fd, NULL);
                close(ch->fd);
                ch->fd = -1;
        }
        if (ch->peer && ch->peer->chan == ch)
                ch->peer->chan = NULL;
        ch->peer = NULL;
}

static void on_close_result(hyb_bus *bus, const hyb_bus_reply *rep, void *userdata)
{
}

/* Tells the broker that channel id is gone on our side (it frees its place in the
 * bounds and closes the other end): the answer does not matter. */
static void send_close_channel(hyb_bus *bus, uint64_t id)
{
        char body[64];
        int n = snprintf(body, sizeof body, "{\"channel\":%llu}", (unsigned long long)id);

        if (!bus->closed && id)
                hyb_bus_call_async(bus, HYB_BUS_BUILTIN_ENDPOINT, "closeChannel", body, (size_t)n,
                                   0, 0, on_close_result, NULL, NULL);
}

/*
 * The channel goes: on the caller's side its pending calls fail with 502.  When we
 * close it on our own, the broker is told (closeChannel), so that it frees its place
 * in the bounds and tells the other end.
 */
static void chan_close(bus_chan *ch)
{
        hyb_bus *bus = ch->bus;

        if (!ch->linked)
                return;
        bus_chan_ref(ch);
        if (!ch->broker_closed && bus) {
                ch->broker_closed = true;
                /* not from a fork()ed child: the channel is its parent's */
                if (bus->efd_pid == getpid())
                        send_close_channel(bus, ch->id);
        }
        chan_unlink(ch);
        bus_chan_unref(ch); /* the list's */
        if (!ch->service && bus)
                bus_fail_chan_calls(bus, ch);
        bus_chan_unref(ch);
}

static bool chan_frame_buffered(const bus_chan *ch);
static int chan_read(bus_chan *ch);

/* What a frame read on ch may carry: a service takes call bodies up to its channel's
 * max_body (at most WIRE_CHANNEL_MAX_BODY); a caller takes answers as large as through
 * the broker (the bus's max_body) */
static size_t chan_parse_limit(const bus_chan *ch)
{
        return ch->service ? ch->max_body : ch->bus->max_body;
}

/*
 * A service's channel closing on the broker's word: the caller can write no more to it
 * (shutdown SHUT_RD: its send fails, it goes through the broker), and each CALL it wrote
 * before is answered 403 "direct channel closed: <reason>" without running (the caller
 * sends it again through the broker), then the channel closes.
 */
static void chan_close_refusing(bus_chan *ch)
{
        hyb_bus *bus = ch->bus;
        char msg[160];

        if (!ch->linked)
                return;
        bus_chan_ref(ch);
        snprintf(msg, sizeof msg, "direct channel closed: %s", ch->reason);
        if (ch->fd >= 0 && shutdown(ch->fd, SHUT_RD) == 0) {
                for (int i = 0; i < 4096 && ch->fd >= 0; i++) {
                        wire_packet p;
                        size_t used;
                        int r = ch->rpos < ch->rlen ? wire_parse(ch->rbuf + ch->rpos, ch->rlen - ch->rpos,
                                                                 chan_parse_limit(ch), &p, &used)
                                                    : 0;
                        if (r < 0)
                                break;
                        if (r == 0) {
                                if (chan_read(ch) <= 0)
                                        break;
                                continue;
                        }
                        ch->rpos += used;
                        if (p.h.type == WIRE_CALL) {
                                wire_hdr h = { .type = WIRE_RESULT, .status = 403,
                                               .call_id = p.h.call_id };
                                bus_chan_send(ch, &h, bus->name, bus->name_len, msg, strlen(msg),
                                              NULL, 0);
                        }
                }
        }
        chan_close(ch);
        bus_chan_unref(ch);
}

static bus_chan *chan_new(hyb_bus *bus, int fd, uint64_t id, bool service, json_t *methods)
{
        bus_chan *ch = calloc(1, sizeof *ch);
        size_t n = json_array_size(methods), i;
        json_t *v;

        if (!ch)
                return NULL;
        ch->n_ref = 1;
        ch->bus = bus;
        ch->fd = -1;
        ch->id = id;
        ch->service = service;
        /* the largest call body this channel carries; the caller's larger calls go through
         * the broker (a service's own value comes with its CHANNEL open) */
        ch->max_body = bus->max_body < WIRE_CHANNEL_MAX_BODY ? bus->max_body : WIRE_CHANNEL_MAX_BODY;
        ch->methods = calloc(n ? n : 1, sizeof(char *));
        if (!ch->methods)
                goto fail;
        json_array_foreach(methods, i, v) {
                if (!json_is_string(v))
                        continue;
                if (!(ch->methods[ch->n_methods] = strdup(json_string_value(v))))
                        goto fail;
                ch->n_methods++;
        }
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ch };
        if (epoll_ctl(bus->efd, EPOLL_CTL_ADD, fd, &ev) < 0)
                goto fail;
        ch->fd = fd;
        ch->linked = true;
        ch->next = bus->chans;
        bus->chans = ch;
        bus->n_chans++;
        return ch;
fail:
        bus_chan_unref(ch);
        return NULL;
}

static bus_chan *chan_find(hyb_bus *bus, uint64_t id)
{
        for (bus_chan *ch = bus->chans; ch; ch = ch->next)
                if (ch->id == id)
                        return ch;
        return NULL;
}

/* ---------------------------------------------------------------- output */

static void chan_ep(bus_chan *ch)
{
        bool want = ch->wlen > ch->wpos;
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = ch };

        if (want != ch->ep_out && ch->fd >= 0 &&
            epoll_ctl(ch->bus->efd, EPOLL_CTL_MOD, ch->fd, &ev) == 0)
                ch->ep_out = want;
}

static int chan_append(bus_chan *ch, const void *p, size_t len)
{
        if (ch->wpos > 0 && ch->wpos == ch->wlen)
                ch->wpos = ch->wlen = 0;
        if (ch->wlen + len > ch->walloc) {
                if (ch->wpos > 0) {
                        memmove(ch->wbuf, ch->wbuf + ch->wpos, ch->wlen - ch->wpos);
                        ch->wlen -= ch->wpos;
                        ch->wpos = 0;
                }
                if (grow_array((void **)&ch->wbuf, &ch->walloc, ch->wlen + len, 1) < 0)
                        return -ENOMEM;
        }
        memcpy(ch->wbuf + ch->wlen, p, len);
        ch->wlen += len;
        return 0;
}

/* The peer cannot be written to: shut down, the read side's EOF closes the channel. */
static void chan_broken(bus_chan *ch)
{
        if (ch->fd >= 0)
                shutdown(ch->fd, SHUT_RDWR);
}

static void chan_flush(bus_chan *ch)
{
        while (ch->fd >= 0 && ch->wpos < ch->wlen) {
                ssize_t n = send(ch->fd, ch->wbuf + ch->wpos, ch->wlen - ch->wpos,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        if (errno != EAGAIN)
                                chan_broken(ch);
                        break;
                }
                ch->wpos += (size_t)n;
        }
        if (ch->wpos == ch->wlen)
                ch->wpos = ch->wlen = 0;
        if (ch->linked)
                chan_ep(ch);
}

void bus_chan_flush(hyb_bus *bus)
{
        for (bus_chan *ch = bus->chans; ch; ch = ch->next)
                if (ch->wlen > ch->wpos)
                        chan_flush(ch);
}

int bus_chan_send(bus_chan *ch, wire_hdr *h, const char *from, size_t from_len,
                  const char *member, size_t member_len, const void *body, size_t body_len)
{
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        size_t done = 0;
        int n_iov;

        if (ch->fd < 0)
                return HYB_E_CLOSED;
        if (from_len > WIRE_ENDPOINT_MAX)
                from_len = 0;
        n_iov = wire_build(h, from, from_len, NULL, 0, member, member_len, body, body_len, hdr, iov);
        if (!ch->service && ch->wlen > ch->wpos &&
            ch->wlen - ch->wpos + iov[0].iov_len + (n_iov > 1 ? iov[1].iov_len : 0) > ch->max_queue) {
                /* A service that does not read its channel: the caller keeps no more for
                 * it than the broker would (the channel goes, its calls get 502, this one
                 * goes through the broker).  Nothing of this frame was written. */
                chan_broken(ch);
                return HYB_E_CLOSED;
        }
        if (ch->wlen == ch->wpos) {
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n_iov };
                for (;;) {
                        ssize_t n = sendmsg(ch->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno != EAGAIN) {
                                /* nothing of it went: the other end no longer reads (a
                                 * caller sends this call through the broker instead) */
                                chan_broken(ch);
                                return HYB_E_CLOSED;
                        }
                        done = n < 0 ? 0 : (size_t)n;
                        break;
                }
        }
        for (int i = 0; i < n_iov; i++) {
                size_t l = iov[i].iov_len;
                if (done >= l) {
                        done -= l;
                        continue;
                }
                if (chan_append(ch, (uint8_t *)iov[i].iov_base + done, l - done) < 0) {
                        chan_broken(ch);
                        return 0;
                }
                done = 0;
        }
        if (ch->wlen > ch->wpos) {
                /* A caller that does not read its answers: the service's bound */
                if (ch->service && ch->wlen - ch->wpos > ch->max_queue) {
                        chan_close(ch);
                        return 0;
                }
                chan_ep(ch);
        }
        return 0;
}

/* ---------------------------------------------------------------- input */

/* One non-blocking read: 1 got bytes, 0 none now, < 0 EOF or error. */
/* flags: MSG_DONTWAIT, or 0 to sleep until input (the socket is blocking: the broker
 * makes the pair so, and every other read and write here passes MSG_DONTWAIT) */
static int chan_read_flags(bus_chan *ch, int flags)
{
        size_t need = CHAN_RBUF_MIN;
        wire_hdr h;

        if (ch->rpos == ch->rlen) {
                ch->rpos = ch->rlen = 0;
                if (ch->ralloc > 16 * CHAN_RBUF_MIN) {
                        free(ch->rbuf);
                        ch->rbuf = NULL;
                        ch->ralloc = 0;
                }
        }
        if (ch->rlen - ch->rpos >= WIRE_HDR_SIZE && wire_hdr_decode(ch->rbuf + ch->rpos, &h) == 0 &&
            h.body_len <= ch->max_body && wire_frame_len(&h) > need)
                need = wire_frame_len(&h);
        if (ch->ralloc - ch->rlen < need / 4 || ch->ralloc - ch->rpos < need) {
                if (ch->rpos > 0) {
                        memmove(ch->rbuf, ch->rbuf + ch->rpos, ch->rlen - ch->rpos);
                        ch->rlen -= ch->rpos;
                        ch->rpos = 0;
                }
                if (grow_array((void **)&ch->rbuf, &ch->ralloc, ch->rlen + need, 1) < 0)
                        return -ENOMEM;
        }
        for (;;) {
                ssize_t n = recv(ch->fd, ch->rbuf + ch->rlen, ch->ralloc - ch->rlen, flags);
                if (n < 0 && errno == EINTR && flags == MSG_DONTWAIT)
                        continue;
                if (n < 0 && (errno == EINTR || errno == EWOULDBLOCK))
                        return 0; /* a signal, or SO_RCVTIMEO ran out: the caller counts again */
                if (n < 0)
                        return errno == EAGAIN ? 0 : -errno;
                if (n == 0)
                        return HYB_E_CLOSED;
                ch->drained = (size_t)n < ch->ralloc - ch->rlen;
                ch->rlen += (size_t)n;
                return 1;
        }
}

static int chan_read(bus_chan *ch)
{
        return chan_read_flags(ch, MSG_DONTWAIT);
}

static bool chan_frame_buffered(const bus_chan *ch)
{
        wire_hdr h;

        return ch->rlen - ch->rpos >= WIRE_HDR_SIZE && wire_hdr_decode(ch->rbuf + ch->rpos, &h) == 0 &&
               ch->rlen - ch->rpos >= wire_frame_len(&h);
}

bool bus_chan_buffered(const hyb_bus *bus)
{
        for (const bus_chan *ch = bus->chans; ch; ch = ch->next)
                if (chan_frame_buffered(ch))
                        return true;
        return false;
}

/* Dispatches one frame of ch: 1 done, 0 none complete, < 0 the channel closed. */
static int chan_step(bus_chan *ch)
{
        hyb_bus *bus = ch->bus;
        wire_packet p;
        size_t used;
        int r;

        if (ch->rpos == ch->rlen)
                return 0;
        r = wire_parse(ch->rbuf + ch->rpos, ch->rlen - ch->rpos, chan_parse_limit(ch), &p, &used);
        if (r == 0)
                return 0;
        if (r < 0) {
                chan_close(ch); /* malformed, or a body above max_body */
                return r;
        }
        ch->rpos += used;
        bus_chan_ref(ch);
        if (ch->service && p.h.type == WIRE_CALL && p.h.from_len == 0 && p.h.to_len == 0 &&
            p.h.info_len == 0 && p.h.aux == 0) {
                /* as the broker would deliver it: the caller's name, info and uid */
                wire_packet q = p;
                q.from = ch->from;
                q.h.from_len = ch->from_len;
                q.h.info_len = ch->info_len;
                q.h.aux = ch->uid;
                bus_dispatch_call_chan(bus, ch, &q);
        } else if (ch->service && p.h.type == WIRE_CANCEL && wire_names_len(&p.h) == 0 &&
                   p.h.body_len == 0) {
                bus_dispatch_cancel(bus, ch, &p);
        } else if (!ch->service && p.h.type == WIRE_RESULT && p.h.to_len == 0 &&
                   p.h.info_len == 0) {
                bus_dispatch_result_chan(bus, ch, &p);
        } else {
                chan_close(ch);
                r = HYB_E_PROTOCOL;
        }
        bus_chan_unref(ch);
        return r < 0 ? r : 1;
}

int bus_chan_step_buffered(hyb_bus *bus)
{
        for (bus_chan *ch = bus->chans; ch; ch = ch->next)
                if (chan_frame_buffered(ch)) {
                        chan_step(ch);
                        return 1;
                }
        return 0;
}

/* Reads ch (an epoll event said so, or bus_chan_read_hot): EOF or error closes it.
 * chan_read's result. */
static int chan_input_flags(bus_chan *ch, int flags)
{
        int r = chan_read_flags(ch, flags);

        if (r < 0) {
                chan_close(ch);
                return r;
        }
        if (r > 0)
                ch->bus->chan_hot = ch;
        /* a frame that can never be whole (header bad, body above max_body) */
        if (ch->rlen - ch->rpos >= WIRE_HDR_SIZE) {
                wire_hdr h;
                if (wire_hdr_decode(ch->rbuf + ch->rpos, &h) < 0 || h.body_len > chan_parse_limit(ch))
                        chan_close(ch);
        }
        return r;
}

static int chan_input(bus_chan *ch)
{
        return chan_input_flags(ch, MSG_DONTWAIT);
}

/*
 * Nothing but this call's answer can need the connection while it sleeps when it serves
 * no procedure (so no call can come to it, on any socket, and it has no service side of a
 * channel), has no event, store or monitor subscription, no other call pending, nothing
 * to write, no epoll events kept unhandled, and may block (bus->fd_blocking: not ws://,
 * not cancellable, not a one-CPU machine).  A ping or a CHANNEL close of the broker waits
 * in its socket until the answer has come (or the deadline): both can.
 */
int bus_chan_wait_read(hyb_bus *bus, uint64_t deadline_us)
{
        bus_call *c = bus->calls_head;
        bus_chan *ch;
        int r;

        if (!bus->fd_blocking || bus->closed || bus->methods || bus->subs || bus->ssubs ||
            bus->monitors || bus->deferred || bus->n_calls != 1 || !c || c->cb || !(ch = c->chan) ||
            !ch->linked || ch->fd < 0 || ch->service || bus->wlen > bus->wpos || ch->wlen > ch->wpos ||
            bus->evs_pos < bus->n_evs)
                return -EAGAIN;
        if (bus_fd_rcvtimeo(ch->fd, &ch->rcvtimeo_ms, deadline_us) < 0)
                return -EAGAIN;
        bus_chan_ref(ch);
        r = chan_input_flags(ch, 0);
        bus_chan_unref(ch);
        return r < 0 ? 0 : r;
}

int bus_chan_poll(hyb_bus *bus, int ms)
{
        int n;

        /* Events kept from an earlier wait and not handled yet are asked for again
         * (level-triggered: what is still ready is reported again). */
        if (!bus->evs && !(bus->evs = calloc(CHAN_EVS, sizeof *bus->evs)))
                return -ENOMEM;
        bus->evs_pos = bus->n_evs = 0;
        n = epoll_wait(bus->efd, bus->evs, CHAN_EVS, ms);
        if (n < 0)
                return -errno;
        bus->n_evs = n;
        bus->hot_left = BUS_HOT_MAX;
        bus->drained = false; /* these events are for bus_chan_wait to handle */
        return n;
}

int bus_chan_wait(hyb_bus *bus, uint64_t deadline_us)
{
        int n, did = 0;

        if (bus->efd < 0)
                return 0;
        if (!bus->evs && !(bus->evs = calloc(CHAN_EVS, sizeof *bus->evs)))
                return -ENOMEM;
        if (bus->evs_pos >= bus->n_evs) {
                int ms = 0;

                bus->evs_pos = bus->n_evs = 0;
                if (deadline_us == UINT64_MAX)
                        ms = -1;
                else if (deadline_us > 0) {
                        uint64_t now = hyb_now_usec();
                        ms = deadline_us <= now ? 0 : (int)((deadline_us - now + 999) / 1000);
                }
                if (ms == 0 && bus->drained) {
                        /* the last reads came back short: skip one poll (bus_step) */
                        bus->drained = false;
                        return 0;
                }
                n = epoll_wait(bus->efd, bus->evs, CHAN_EVS, ms);
                if (n < 0)
                        return errno == EINTR ? 0 : -errno;
                bus->n_evs = n;
                bus->hot_left = BUS_HOT_MAX;
        }
        bool drained = true;
        while (bus->evs_pos < bus->n_evs && !bus->closed) {
                struct epoll_event ev = bus->evs[bus->evs_pos++];

                if (!ev.data.ptr)
                        continue; /* a channel closed meanwhile */
                if (ev.data.ptr == bus) {
                        if (ev.events & EPOLLOUT) {
                                int r = bus_flush_nb(bus);
                                if (r < 0)
                                        return r;
                        }
                        if (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                                int r = bus_read_nb(bus);
                                if (r < 0)
                                        return r;
                                drained = drained && bus->drained;
                        }
                        did = 1;
                        continue;
                }
                bus_chan *ch = bus_chan_ref(ev.data.ptr); /* it may close here */
                if (ev.events & EPOLLOUT)
                        chan_flush(ch);
                if (ch->linked && (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                        chan_input(ch);
                        drained = drained && (!ch->linked || ch->drained);
                }
                bus_chan_unref(ch);
                did = 1;
        }
        bus->drained = did && drained;
        return did;
}

/*
 * An application's loop woke for the set, most often for the one channel that has our
 * answer (or a caller's call): that channel is read at once, which saves the epoll_wait
 * asking the set which socket it was.  Fair: only a channel its last read emptied (a
 * short read; a busy one is read through the set, with every other ready socket), and at
 * most BUS_HOT_MAX times between two epoll_waits.  A read that finds nothing (the loop
 * woke for another socket) costs a system call in vain: after one, the next 1, 2, 4 ...
 * 64 steps ask the set at once.  The set is level-triggered: whatever
 * another socket has keeps it readable, the loop wakes for it again.
 */
int bus_chan_read_hot(hyb_bus *bus)
{
        bus_chan *ch = bus->chan_hot;
        int r;

        if (!ch || bus->hot_left == 0 || bus->evs_pos < bus->n_evs || bus->drained ||
            !ch->drained || ch->fd < 0 || (!ch->service && ch->n_calls == 0))
                return 0;
        if (bus->hot_skip > 0) {
                bus->hot_skip--;
                return 0;
        }
        bus->hot_left--;
        bus_chan_ref(ch);
        r = chan_input(ch);
        if (r == 0) {
                /* the loop woke for another socket (a service with several callers): the
                 * next reads go through the set for a while */
                bus->hot_backoff = bus->hot_backoff ? (uint8_t)(bus->hot_backoff * 2) : 1;
                if (bus->hot_backoff > 64)
                        bus->hot_backoff = 64;
                bus->hot_skip = bus->hot_backoff;
        } else {
                bus->hot_backoff = 0;
        }
        /* what the set says next is for the other sockets, the next step asks it */
        bus->drained = r > 0 && ch->linked && ch->drained;
        bus_chan_unref(ch);
        return r != 0; /* bytes, or the channel closed (its calls failed): progress */
}

/* ---------------------------------------------------------------- caller side */

bus_chan *bus_chan_route(hyb_bus *bus, const char *endpoint, const char *method, size_t len,
                         bus_peer **ret_peer)
{
        bus_peer *pr;
        bus_chan *ch;

        *ret_peer = NULL;
        /* The endpoint called last first, compared as written (cheaper than ignoring case:
         * the common case of a program calling one service costs next to nothing). */
        pr = bus->peers;
        if (!pr || strcmp(pr->endpoint, endpoint) != 0) {
                bus_peer **pp;
                for (pp = &bus->peers; *pp; pp = &(*pp)->next)
                        if (strcasecmp((*pp)->endpoint, endpoint) == 0)
                                break;
                pr = *pp;
                if (pr) {
                        /* to the front: the next call to it is found at once */
                        *pp = pr->next;
                        pr->next = bus->peers;
                        bus->peers = pr;
                }
        }
        if (!pr) {
                if (bus->direct_off || bus->n_peers >= BUS_PEERS_MAX ||
                    strcasecmp(endpoint, HYB_BUS_BUILTIN_ENDPOINT) == 0 ||
                    strcasecmp(endpoint, bus->name) == 0)
                        return NULL;
                pr = calloc(1, sizeof *pr);
                if (!pr || !(pr->endpoint = strdup(endpoint))) {
                        free(pr);
                        return NULL;
                }
                pr->next = bus->peers;
                bus->peers = pr;
                bus->n_peers++;
        }
        *ret_peer = pr;
        pr->seen++;
        ch = pr->chan;
        if (!ch || ch->closing || ch->fd < 0 || pr->n_broker > 0 || len > ch->max_body)
                return NULL;
        for (size_t i = 0; i < ch->n_methods; i++)
                if (strcmp(ch->methods[i], method) == 0)
                        return ch;
        for (size_t i = 0; i < ch->n_methods; i++)
                if (strcasecmp(ch->methods[i], method) == 0)
                        return ch;
        return NULL;
}

static void peer_refused(bus_peer *pr)
{
        pr->backoff = pr->backoff ? pr->backoff * 2 : BACKOFF_MIN;
        if (pr->backoff > BACKOFF_MAX)
                pr->backoff = BACKOFF_MAX;
        pr->skip = pr->backoff;
}

void bus_chan_open_result(hyb_bus *bus, const hyb_bus_reply *rep, void *userdata)
{
        bus_peer *pr = userdata;
        json_t *j = NULL, *methods = NULL;
        json_int_t id = 0;
        const char *ep = NULL;
        bus_chan *ch;
        int fd = -1;

        pr->opening = false;
        if (rep->status != 200) {
                peer_refused(pr);
                return;
        }
        j = json_loadb((const char *)rep->body, rep->body_len, 0, NULL);
        fd = fd_claim_ino(bus, body_ino(j)); /* it came with this RESULT (or ahead of it) */
        if (fd < 0 || !j ||
            json_unpack(j, "{s:I, s:s, s:o}", "channel", &id, "endpoint", &ep, "methods", &methods) < 0 ||
            id <= 0 || !json_is_array(methods) || bus->closed || bus->direct_off || pr->chan) {
                /* granted, but not wanted (any more): the broker forgets it too */
                if (fd >= 0)
                        close(fd);
                if (id > 0)
                        send_close_channel(bus, (uint64_t)id);
                json_decref(j);
                peer_refused(pr);
                return;
        }
        ch = chan_new(bus, fd, (uint64_t)id, false, methods);
        json_decref(j);
        if (!ch) {
                close(fd);
                send_close_channel(bus, (uint64_t)id);
                peer_refused(pr);
                return;
        }
        /* what this caller queues towards a service that does not read it: as much as the
         * broker's default send queue holds (4 whole frames) */
        ch->max_queue = 4 * (bus->max_body + WIRE_HDR_SIZE + WIRE_NAMES_MAX);
        ch->peer = pr;
        pr->chan = ch;
        pr->backoff = 0;
}

void bus_chan_maybe_open(hyb_bus *bus, bus_peer *pr)
{
        char *body;
        json_t *j;

        if (bus->direct_off || pr->chan || pr->opening || pr->seen < 2)
                return;
        if (pr->skip > 0) {
                pr->skip--;
                return;
        }
        j = json_pack("{s:s}", "endpoint", pr->endpoint);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!body)
                return;
        pr->opening = true;
        if (hyb_bus_call_async(bus, HYB_BUS_BUILTIN_ENDPOINT, "openChannel", body, strlen(body), 0,
                               0, bus_chan_open_result, pr, NULL) < 0)
                pr->opening = false;
        free(body);
}

void bus_chan_call_done(bus_chan *ch)
{
        if (ch->n_calls > 0)
                ch->n_calls--;
        if (ch->n_calls == 0 && ch->closing && ch->linked)
                chan_close(ch);
}

void bus_orphan_result(hyb_bus *bus, const wire_packet *p)
{
        /* An openChannel whose call ended here (its local deadline, a cancel) still brings
         * its fd.  Only then: the late answer of any other call (a store read whose data
         * has a "channel" key) must not take an fd that came early for a later frame. */
        if (bus->n_open_lost > 0 && p->h.status == 200 && bus->n_fd_fifo > 0 &&
            p->h.from_len == strlen(HYB_BUS_BUILTIN_ENDPOINT) &&
            strncasecmp(p->from, HYB_BUS_BUILTIN_ENDPOINT, p->h.from_len) == 0 &&
            p->h.body_len > 11 && memmem(p->body, p->h.body_len, "\"channel\":", 10)) {
                bus->n_open_lost--;
                bus_chan_drop_granted(bus, p);
        }
}

void bus_chan_drop_granted(hyb_bus *bus, const wire_packet *p)
{
        json_t *j = json_loadb((const char *)p->body, p->h.body_len, 0, NULL);
        int fd = fd_claim_ino(bus, body_ino(j));
        json_int_t id = 0;

        if (fd >= 0)
                close(fd);
        if (j && json_unpack(j, "{s:I}", "channel", &id) == 0 && id > 0)
                send_close_channel(bus, (uint64_t)id);
        json_decref(j);
}

HYB_EXPORT int hyb_bus_set_direct(hyb_bus *bus, bool on)
{
        hyb_assert_return(bus, -EINVAL);
        bus->direct_off = !on;
        if (on)
                return 0;
        for (bus_chan *ch = bus->chans, *n; ch; ch = n) {
                n = ch->next;
                if (ch->service)
                        continue;
                ch->closing = true;
                if (ch->n_calls == 0)
                        chan_close(ch);
        }
        return 0;
}

/* ---------------------------------------------------------------- service side */

static void chan_open(hyb_bus *bus, const wire_packet *p)
{
        json_t *j, *methods = NULL;
        json_int_t max_pending = 0, max_queue = 0, max_body = 0, uid_max_pending = 0;
        bus_chan *ch;
        int fd;

        j = json_loadb((const char *)p->body, p->h.body_len, 0, NULL);
        fd = fd_claim_ino(bus, body_ino(j));
        if (fd < 0) {
                json_decref(j);
                /* no end came with it: nothing to open (the broker forgets it) */
                if (p->h.call_id && !bus->closed && !chan_find(bus, p->h.call_id))
                        send_close_channel(bus, p->h.call_id);
                return;
        }
        if (!j || json_unpack(j, "{s:o, s:I, s:I, s:I}", "methods", &methods, "max_pending",
                              &max_pending, "max_queue", &max_queue, "max_body", &max_body) < 0 ||
            !json_is_array(methods) || max_pending <= 0 || max_queue <= 0 || max_body <= 0 ||
            p->h.call_id == 0 || p->h.from_len <= p->h.info_len || bus->closed ||
            chan_find(bus, p->h.call_id) ||
            json_unpack(j, "{s?I}", "uid_max_pending", &uid_max_pending) < 0 || uid_max_pending < 0) {
                json_decref(j);
                close(fd);
                if (p->h.call_id && !chan_find(bus, p->h.call_id))
                        send_close_channel(bus, p->h.call_id);
                return;
        }
        ch = chan_new(bus, fd, p->h.call_id, true, methods);
        json_decref(j);
        if (!ch) {
                close(fd);
                send_close_channel(bus, p->h.call_id);
                return;
        }
        ch->from = malloc(p->h.from_len);
        if (!ch->from) {
                chan_close(ch);
                return;
        }
        memcpy(ch->from, p->from, p->h.from_len);
        ch->from_len = p->h.from_len;
        ch->info_len = p->h.info_len;
        ch->uid = p->h.aux;
        ch->max_pending = (size_t)max_pending;
        /* a broker that does not say: no bound beyond max_pending per channel */
        ch->uid_max_pending = uid_max_pending > 0 ? (size_t)uid_max_pending : SIZE_MAX;
        ch->max_queue = (size_t)max_queue;
        ch->max_body = (size_t)max_body < WIRE_CHANNEL_MAX_BODY ? (size_t)max_body : WIRE_CHANNEL_MAX_BODY;
}

static void chan_closing(hyb_bus *bus, const wire_packet *p)
{
        bus_chan *ch = chan_find(bus, p->h.call_id);
        json_t *j;
        const char *reason = NULL;
        json_int_t grace = 0;

        if (!ch)
                return;
        j = json_loadb((const char *)p->body, p->h.body_len, 0, NULL);
        if (j)
                json_unpack(j, "{s?s, s?I}", "reason", &reason, "grace_ms", &grace);
        if (grace < 0 || grace > 60000)
                grace = 0;
        snprintf(ch->reason, sizeof ch->reason, "%s", reason ? reason : "closed by the broker");
        json_decref(j);
        ch->broker_closed = true;
        if (!ch->closing || hyb_now_usec() + (uint64_t)grace * 1000u < ch->close_at)
                ch->close_at = hyb_now_usec() + (uint64_t)grace * 1000u;
        ch->closing = true;
        /* A service accepts no new call from here on, whatever the grace: one read now
         * gets 403 "direct channel closed" and its caller sends it again through the
         * broker, which checks it under the new policy (a reload) or lets the monitor
         * see it.  The grace only bounds how long answers still in the making may take. */
        if (ch->service && ch->n_pending == 0)
                chan_close_refusing(ch);
        else if (!ch->service && ch->n_calls == 0)
                chan_close(ch);
}

void bus_dispatch_channel(hyb_bus *bus, const wire_packet *p)
{
        if (p->h.member_len == 4 && memcmp(p->member, "open", 4) == 0)
                chan_open(bus, p);
        else if (p->h.member_len == 5 && memcmp(p->member, "close", 5) == 0)
                chan_closing(bus, p);
}

void bus_chan_request_done(bus_chan *ch)
{
        if (ch->n_pending > 0)
                ch->n_pending--;
        if (ch->n_pending == 0 && ch->closing && ch->linked)
                chan_close_refusing(ch);
}

void bus_chan_method_revoked(hyb_bus *bus, const char *name)
{
        for (bus_chan *ch = bus->chans; ch; ch = ch->next) {
                if (!ch->service)
                        continue;
                for (size_t i = 0; i < ch->n_methods; i++)
                        if (strcasecmp(ch->methods[i], name) == 0) {
                                free(ch->methods[i]);
                                ch->methods[i] = ch->methods[--ch->n_methods];
                                break;
                        }
        }
}

bool bus_chan_uid_full(const hyb_bus *bus, const bus_chan *ch)
{
        size_t n = 0;

        if (ch->uid_max_pending == SIZE_MAX)
                return false;
        for (const bus_chan *o = bus->chans; o; o = o->next)
                if (o->service && o->uid == ch->uid)
                        n += o->n_pending;
        return n >= ch->uid_max_pending;
}

uint64_t bus_chan_next_deadline(const hyb_bus *bus)
{
        uint64_t d = UINT64_MAX;

        for (const bus_chan *ch = bus->chans; ch; ch = ch->next)
                if (ch->service && ch->closing && ch->n_pending == 0 && ch->close_at < d)
                        d = ch->close_at;
        return d;
}

void bus_chan_expire(hyb_bus *bus)
{
        uint64_t now = hyb_now_usec();

        for (bus_chan *ch = bus->chans, *n; ch; ch = n) {
                n = ch->next;
                if (ch->service && ch->closing && ch->n_pending == 0 && ch->close_at <= now)
                        chan_close_refusing(ch);
        }
}

void bus_chan_close_all(hyb_bus *bus)
{
        while (bus->chans)
                chan_close(bus->chans);
}
