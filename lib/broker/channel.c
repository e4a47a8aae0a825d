/* SPDX-License-Identifier: MIT */
/*
 * Direct channels (doc/protocol.md "Direct channels"): after the broker has checked a
 * caller once, caller and callee talk over a socketpair the broker made and passed to both
 * ends (SCM_RIGHTS), two socket hops a call instead of four.  The broker keeps no end; it
 * keeps which two connections a channel joins, so that it can tell each end to close it
 * (a connection gone, a monitor attached, the configuration reloaded), and counts them for
 * the bounds:
 *
 *   caller->ch_out: bchan -> ...  (n_ch_out <= limits.max_channels)
 *   callee->ch_in:  bchan -> ...  (n_ch_in  <= limits.max_channels)
 *   caller->q->channels           (<= limits.uid_max_channels)
 *   callee->ch_in of one caller uid (<= limits.uid_max_channels_per_callee, 0: no bound)
 *   hyb_broker.n_channels         (<= limits.max_channels_total)
 *
 * and the ends not yet received (ends_room): those waiting here (c->n_fds: the daemon's
 * own descriptors) and those passed that the peer has not read (c->n_fds_out: the kernel
 * charges them to the daemon's user and refuses more, ETOOMANYREFS, past its
 * RLIMIT_NOFILE).  Both are bounded per peer (twice max_channels each), per uid (a quarter
 * of the budget) and in all (the budget: half the daemon's soft RLIMIT_NOFILE), so that no
 * peer, and no uid, can use up what the kernel lets the daemon pass to the others.  A
 * count of ends passed is an upper bound: it is forgotten once the peer's socket holds no
 * unread byte (SIOCOUTQ 0: SIOCOUTQ of a Unix socket is the kernel's memory of the unread
 * buffers, not their bytes, so nothing less than empty tells how far the peer read).  It is
 * looked at when a channel of the peer opens or closes and when the peer sends frames (an
 * event loop writes after it has read: a busy peer's socket is seldom empty at all of
 * these), and survives the connection (chan_ghost) while the peer keeps the socket
 * without reading it.
 *
 * A channel end rides on the bytes of the send queue's head in one sendmsg: its frame is
 * queued like any other (the order of frames is kept), and while ends wait to be passed
 * (the socket would block) the bufferevent writes nothing: fd_ev writes the queue's head
 * with the ends.  An end passed early is fine (the peer keeps received ends in order until
 * the frame that claims it is read), one passed late is not, hence the stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker-internal.h"
#include "bus/names.h"
#include "bus/policy.h"
#include "common/util.h"

static const char builtin_name[] = "@localhost/org.hybridos.bus/builtin";

#define CHAN_FDS_PER_MSG 32u /* ends passed in one sendmsg, at most */

/* A connection gone whose peer had not read every end passed to it: a duplicate of the
 * daemon's end of the socket (shut down), to see when the peer has read them or closed. */
struct chan_ghost {
        struct chan_ghost *next;
        int fd;
        uid_t uid;
        unsigned n; /* ends charged */
};

/* ---------------------------------------------------------------- ends not received */

/* Has the peer of socket fd read everything written to it (or closed)?  SIOCOUTQ of a
 * Unix socket is what the peer has not consumed yet; the ends go with the bytes. */
static bool sock_drained(int fd)
{
        int n = 0;

        return ioctl(fd, SIOCOUTQ, &n) < 0 || n == 0;
}

/* Forgets c's ends passed once its peer has read them all. */
static void ends_seen(bconn *c)
{
        if (!c->n_fds_out || !c->bev || c->pair)
                return;
        if (sock_drained(bufferevent_getfd(c->bev))) {
                c->b->n_fds_out -= c->n_fds_out;
                c->n_fds_out = 0;
        }
}

void channel_peer_active(bconn *c)
{
        ends_seen(c);
}

/* Forgets the ghosts whose ends were read (or whose peer closed): of uid only unless all. */
static void ghosts_seen(hyb_broker *b, bool all, uid_t uid)
{
        for (struct chan_ghost **pg = &b->chan_ghosts; *pg;) {
                struct chan_ghost *g = *pg;

                if ((all || g->uid == uid) && sock_drained(g->fd)) {
                        *pg = g->next;
                        b->n_fds_out -= g->n;
                        close(g->fd);
                        free(g);
                } else {
                        pg = &g->next;
                }
        }
}

/*
 * Ends not received the daemon allows in all: half its soft RLIMIT_NOFILE (the kernel's
 * bound on ends in flight of its user, and on the descriptors it holds itself; the other
 * half for everything else), at most 2^20.
 */
static unsigned ends_budget(void)
{
        struct rlimit rl;
        rlim_t half;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                return 1u << 20;
        half = rl.rlim_cur / 2;
        return half > (1u << 20) ? 1u << 20 : half < 1 ? 1 : (unsigned)half;
}

/* The ends of uid not received: waiting here, passed and not read, and of its ghosts. */
static unsigned uid_ends(hyb_broker *b, uid_t uid)
{
        unsigned n = 0;

        ghosts_seen(b, false, uid);
        for (struct chan_ghost *g = b->chan_ghosts; g; g = g->next)
                if (g->uid == uid)
                        n += g->n;
        for (bconn *c = b->conns; c; c = c->next)
                if (c->uid == uid && (c->n_fds || c->n_fds_out)) {
                        ends_seen(c);
                        n += c->n_fds + c->n_fds_out;
                }
        return n;
}

/*
 * May the ends of a new channel go to callee and caller (one each)?  Per peer: fewer than
 * twice max_channels passed and not read; per uid: a quarter of the budget; in all: the
 * budget.  The two peers' counts are refreshed at each open (an ioctl each, once they
 * were passed ends), the others' only when a bound is reached.
 */
static bool ends_room(bconn *callee, bconn *caller)
{
        hyb_broker *b = caller->b;
        unsigned budget = ends_budget(), uid_bound = budget / 4 ? budget / 4 : 1;

        ends_seen(callee);
        ends_seen(caller);
        if (callee->n_fds_out >= 2u * b->c->max_channels ||
            caller->n_fds_out >= 2u * b->c->max_channels)
                return false;
        if (b->n_chan_fds + b->n_fds_out + 2 > budget) {
                ghosts_seen(b, true, 0);
                for (bconn *c = b->conns; c; c = c->next)
                        ends_seen(c);
                if (b->n_chan_fds + b->n_fds_out + 2 > budget)
                        return false;
        }
        /* no uid can be at its bound while all together are below it */
        if (b->n_chan_fds + b->n_fds_out + 2 <= uid_bound)
                return true;
        if (callee->uid == caller->uid)
                return uid_ends(b, caller->uid) + 2 <= uid_bound;
        return uid_ends(b, callee->uid) + 1 <= uid_bound &&
               uid_ends(b, caller->uid) + 1 <= uid_bound;
}

void channel_conn_detach(bconn *c)
{
        hyb_broker *b = c->b;
        struct chan_ghost *g;
        int fd;

        ends_seen(c);
        if (!c->n_fds_out)
                return;
        g = c->bev && !c->pair ? malloc(sizeof *g) : NULL;
        fd = g ? fcntl(bufferevent_getfd(c->bev), F_DUPFD_CLOEXEC, 0) : -1;
        if (fd < 0) {
                /* no way to watch them: the kernel's ETOOMANYREFS stays the last bound */
                broker_log(b, HYB_LOG_WARNING, "%s: %u channel ends not read lost from the count",
                           c->name ? c->name : "peer", c->n_fds_out);
                free(g);
                b->n_fds_out -= c->n_fds_out;
                c->n_fds_out = 0;
                return;
        }
        /* the peer sees the end of the connection when the broker closes its fd, as before */
        shutdown(fd, SHUT_RDWR);
        g->fd = fd;
        g->uid = c->uid;
        g->n = c->n_fds_out;
        g->next = b->chan_ghosts;
        b->chan_ghosts = g;
        c->n_fds_out = 0;
}

void channel_broker_free(hyb_broker *b)
{
        while (b->chan_ghosts) {
                struct chan_ghost *g = b->chan_ghosts;

                b->chan_ghosts = g->next;
                b->n_fds_out -= g->n;
                close(g->fd);
                free(g);
        }
}

/* ---------------------------------------------------------------- passing ends */

static void fds_drop(bconn *c)
{
        for (unsigned i = 0; i < c->n_fds; i++)
                close(c->fds[i]);
        c->b->n_chan_fds -= c->n_fds;
        c->n_fds = 0;
        if (c->fd_ev)
                event_del(c->fd_ev);
}

static void fd_flush(bconn *c);

static void fd_writable(evutil_socket_t fd, short what, void *ud)
{
        (void)fd;
        (void)what;
        fd_flush(ud);
}

/* Passes the waiting ends with the head of c's send queue, as far as the socket takes it. */
static void fd_flush(bconn *c)
{
        struct evbuffer *out;

        if (!c->n_fds)
                return;
        if (c->state == BCONN_DEAD || !c->bev) {
                fds_drop(c);
                return;
        }
        out = bufferevent_get_output(c->bev);
        while (c->n_fds) {
                struct evbuffer_iovec v[16];
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * CHAN_FDS_PER_MSG)];
                } u;
                unsigned nf = c->n_fds < CHAN_FDS_PER_MSG ? c->n_fds : CHAN_FDS_PER_MSG;
                int k = evbuffer_peek(out, -1, NULL, v, 16);
                struct msghdr mh = {0};
                struct cmsghdr *cm;
                ssize_t w;

                if (k <= 0) {
                        /* the frames were dropped (a peer cut off): no bytes to ride on */
                        fds_drop(c);
                        break;
                }
                if (k > 16)
                        k = 16;
                memset(&u, 0, sizeof u);
                mh.msg_iov = (struct iovec *)v;
                mh.msg_iovlen = (size_t)k;
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nf);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * nf);
                memcpy(CMSG_DATA(cm), c->fds, sizeof(int) * nf);
                do
                        w = sendmsg(bufferevent_getfd(c->bev), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                while (w < 0 && errno == EINTR);
                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                        if (!c->fd_ev)
                                c->fd_ev = event_new(c->b->base, bufferevent_getfd(c->bev),
                                                     EV_WRITE, fd_writable, c);
                        if (!c->fd_ev || event_add(c->fd_ev, NULL) < 0) {
                                fds_drop(c);
                                bconn_close(c, "lostConnection");
                                return;
                        }
                        bufferevent_disable(c->bev, EV_WRITE);
                        return;
                }
                if (w < 0 && errno == ETOOMANYREFS) {
                        /* The kernel's bound on ends in flight of the daemon's uid (its
                         * RLIMIT_NOFILE, without CAP_SYS_RESOURCE): the frames go without
                         * them (a peer ignores an open without an end), the peer stays. */
                        broker_log(c->b, HYB_LOG_WARNING,
                                   "%s: %u channel ends not passed: too many in flight",
                                   c->name ? c->name : "peer", c->n_fds);
                        fds_drop(c);
                        break;
                }
                if (w <= 0) {
                        fds_drop(c);
                        bconn_close(c, "lostConnection");
                        return;
                }
                /* the ends went with the first byte written: ours are closed.  The
                 * bufferevent keeps its output's start frozen outside its own writes. */
                evbuffer_unfreeze(out, 1);
                evbuffer_drain(out, (size_t)w);
                evbuffer_freeze(out, 1);
                for (unsigned i = 0; i < nf; i++)
                        close(c->fds[i]);
                memmove(c->fds, c->fds + nf, sizeof(int) * (c->n_fds - nf));
                c->n_fds -= nf;
                c->b->n_chan_fds -= nf;
                c->n_fds_out += nf; /* in flight until the peer reads them */
                c->b->n_fds_out += nf;
        }
        if (c->fd_ev)
                event_del(c->fd_ev);
        bufferevent_enable(c->bev, EV_WRITE); /* the rest of the queue, as usual */
}

/*
 * Sends the frame in iov to c with the socket fd (owned from here: closed on failure).
 * The caller has checked the room (room_for).  0, or -errno.
 */
static int send_with_fd(bconn *c, const struct iovec *iov, int n, int fd)
{
        size_t total = 0;

        if (c->state == BCONN_DEAD || !c->bev || c->pair) {
                close(fd);
                return -ENOTCONN;
        }
        if (c->n_fds == c->fds_alloc) {
                unsigned a = c->fds_alloc ? 2 * c->fds_alloc : 4;
                int *p = realloc(c->fds, sizeof(int) * a);

                if (!p) {
                        close(fd);
                        return -ENOMEM;
                }
                c->fds = p;
                c->fds_alloc = a;
        }
        for (int i = 0; i < n; i++)
                total += iov[i].iov_len;
        bconn_count_out(c, total);
        bconn_spill(c); /* what was batched for it goes first */
        if (evbuffer_add_iovec(bufferevent_get_output(c->bev), (struct evbuffer_iovec *)iov, n) !=
            total) {
                close(fd);
                return -ENOMEM;
        }
        quota_mark(c);
        c->fds[c->n_fds++] = fd;
        c->b->n_chan_fds++;
        fd_flush(c);
        return 0;
}

/* ---------------------------------------------------------------- records */

static void chan_unlink(hyb_broker *b, bchan *ch)
{
        *ch->oprev = ch->onext;
        if (ch->onext)
                ch->onext->oprev = ch->oprev;
        *ch->iprev = ch->inext;
        if (ch->inext)
                ch->inext->iprev = ch->iprev;
        ch->caller->n_ch_out--;
        ch->callee->n_ch_in--;
        if (ch->caller->q)
                ch->caller->q->channels--;
        b->n_channels--;
        free(ch);
}

/* Sends CHANNEL close of ch to its end `to` (the other end is `peer`). */
static void send_close(bconn *to, bconn *peer, uint64_t id, int status, const char *reason,
                       unsigned grace_ms)
{
        wire_hdr h = {.type = WIRE_CHANNEL, .status = (uint16_t)status, .call_id = id};
        json_t *j;
        char *text;

        if (to->state == BCONN_DEAD || !to->bev)
                return;
        j = json_pack("{s:s,s:I}", "reason", reason, "grace_ms", (json_int_t)grace_ms);
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!text) {
                /* no way to tell it: it must not keep a channel the broker forgot */
                bconn_close(to, "lostConnection");
                return;
        }
        bconn_send(to, &h, peer->name, peer->name ? peer->name_len : 0, to->name, to->name_len,
                   "close", 5, text, strlen(text));
        free(text);
}

/* A look at both peers' sockets as ch closes, before a close frame goes: a busy peer's
 * may hold unread bytes whenever a channel opens, but seldom both then and now. */
static void ends_look(bchan *ch)
{
        ends_seen(ch->callee);
        ends_seen(ch->caller);
}

/* Closes ch: each end still connected is sent close, then the broker forgets it. */
static void chan_close(hyb_broker *b, bchan *ch, int status, const char *reason, unsigned grace_ms)
{
        ends_look(ch);
        send_close(ch->callee, ch->caller, ch->id, status, reason, grace_ms);
        send_close(ch->caller, ch->callee, ch->id, status, reason, grace_ms);
        chan_unlink(b, ch);
}

void channel_close_all(hyb_broker *b, int status, const char *reason, unsigned grace_ms)
{
        if (!b->n_channels)
                return;
        broker_log(b, HYB_LOG_INFO, "closing %u direct channels: %s", b->n_channels, reason);
        for (bconn *c = b->conns; c; c = c->next)
                while (c->ch_out)
                        chan_close(b, c->ch_out, status, reason, grace_ms);
}

void channel_conn_gone(bconn *c)
{
        hyb_broker *b = c->b;
        const char *why = c->reason && (!strcmp(c->reason, "tokenExpired") ||
                                        !strcmp(c->reason, "tokenRevoked"))
                                  ? "the caller's session ended"
                                  : "the caller is gone";
        int st = c->reason && strncmp(c->reason, "token", 5) == 0 ? 403 : 410;

        /* The callee drops the calls of a caller that is gone at once (grace 0). */
        while (c->ch_out) {
                bchan *ch = c->ch_out;

                send_close(ch->callee, c, ch->id, st, why, 0);
                chan_unlink(b, ch);
        }
        while (c->ch_in) {
                bchan *ch = c->ch_in;

                send_close(ch->caller, c, ch->id, 410, "the callee is gone", 0);
                chan_unlink(b, ch);
        }
        fds_drop(c);
        if (c->fd_ev) {
                event_free(c->fd_ev);
                c->fd_ev = NULL;
        }
        free(c->fds);
        c->fds = NULL;
        c->fds_alloc = 0;
        if (c->bev)
                bufferevent_enable(c->bev, EV_WRITE);
}

void channel_callee_changed(bconn *c, const char *reason)
{
        while (c->ch_in)
                chan_close(c->b, c->ch_in, 403, reason, 0);
}

int channel_close_by_peer(bconn *c, uint64_t id, hyb_error *e)
{
        for (bchan *ch = c->ch_out; ch; ch = ch->onext)
                if (ch->id == id) {
                        ends_look(ch);
                        send_close(ch->callee, c, id, 410, "the caller closed the channel", 0);
                        chan_unlink(c->b, ch);
                        return 0;
                }
        for (bchan *ch = c->ch_in; ch; ch = ch->inext)
                if (ch->id == id) {
                        ends_look(ch);
                        send_close(ch->caller, c, id, 410, "the callee closed the channel", 0);
                        chan_unlink(c->b, ch);
                        return 0;
                }
        return err_set(e, HYB_E_NOT_FOUND, -1, "no direct channel %llu of yours is open",
                       (unsigned long long)id);
}

/* ---------------------------------------------------------------- openChannel */

/* A peer of the Unix socket: not an edge or WebSocket session, not another host, not the
 * builtin endpoint. */
static bool local_unix(const bconn *c)
{
        return !c->transport && !c->xpeer && !c->builtin && !c->pair && !c->remote && c->bev;
}

/* Is there room for n more bytes towards c?  Unlike bconn_room, a no is only a no: the
 * peer is not cut off for it (a channel not opened costs nothing). */
static bool room_for(bconn *c, size_t n)
{
        size_t queued;

        if (c->state != BCONN_READY || !c->bev)
                return false;
        queued = bconn_queued(c);
        if (queued + n > c->b->c->send_queue_bytes || quota_bytes_over(c, n))
                return false;
        /* ends not yet passed: one per channel it may hold as caller and as callee */
        return c->n_fds < 2u * c->b->c->max_channels &&
               c->b->n_chan_fds < 2u * c->b->c->max_channels_total;
}

/* Does uid hold limits.uid_max_channels_per_callee of the channels callee serves?  One uid
 * with several connections could otherwise take all max_channels of them from the others. */
static bool uid_share_full(const bconn *callee, uid_t uid)
{
        unsigned bound = callee->b->c->uid_max_channels_per_callee, n = 0;

        if (!bound)
                return false;
        for (const bchan *ch = callee->ch_in; ch && n < bound; ch = ch->inext)
                if (ch->caller->uid == uid)
                        n++;
        return n >= bound;
}

/* Answers openChannel id with refusal st (counted: /sys/bus/channels_refused). */
static void refuse(bconn *c, uint64_t id, int st, const char *msg)
{
        c->b->chan_refused++;
        route_reply(c, id, st, msg, NULL, 0, 0);
}

/* The callee's procedures the caller may call (access lists, and a token's `call`). */
static json_t *open_methods(bconn *caller, bconn *callee)
{
        json_t *a = json_array();

        if (!a)
                return NULL;
        for (bproc *pr = callee->procs; pr; pr = pr->next) {
                if (!route_acl(callee, pr->hosts, pr->apps, caller))
                        continue;
                if (caller->tok &&
                    auth_bus_check(caller, callee->name, pr->name, HYB_TOKEN_ACT_CALL, NULL) < 0)
                        continue;
                if (json_array_append_new(a, json_stringn(pr->name, pr->name_len)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

static const hyb_arg_policy open_args[] = {
        {"endpoint", HYB_JSON_STRING, 1},
};

void channel_open(bconn *c, bframe *f)
{
        hyb_broker *b = c->b;
        const broker_config *cf = b->c;
        uint64_t id = f->h.call_id;
        json_t *p = NULL, *methods = NULL, *j = NULL;
        char *to_callee = NULL, *to_caller = NULL;
        hyb_error e = {0};
        json_error_t jerr;
        const char *ep;
        size_t ep_len;
        bconn *callee;
        bus_name n;
        char msg[WIRE_ENDPOINT_MAX + 64];
        int sv[2] = {-1, -1}, st = 0;

        if (!local_unix(c)) {
                refuse(c, id, 501, "direct channels need a local Unix connection");
                return;
        }
        if (cf->max_channels == 0) {
                refuse(c, id, 503, "direct channels are off");
                return;
        }
        if (b->n_monitors) {
                refuse(c, id, 503, "a monitor is attached");
                return;
        }
        if (f->h.flags & WIRE_F_BINARY) {
                refuse(c, id, 400, "builtin methods take JSON params");
                return;
        }
        const uint8_t *body = bframe_body(f);
        p = f->h.body_len ? json_loadb((const char *)body, f->h.body_len, JSON_ALLOW_NUL, &jerr)
                          : json_object();
        if (!p) {
                refuse(c, id, 400, "params are not valid JSON");
                return;
        }
        if (bus_policy_check_json(open_args, ELEMENTSOF(open_args), p, &e) < 0) {
                refuse(c, id, 400, e.message);
                goto out;
        }
        ep = json_string_value(json_object_get(p, "endpoint"));
        ep_len = json_string_length(json_object_get(p, "endpoint"));
        if (strlen(ep) != ep_len || bus_name_parse_endpoint(ep, ep_len, &n, NULL) < 0) {
                refuse(c, id, 406, "malformed endpoint name");
                goto out;
        }
        callee = broker_lookup(b, ep, ep_len);
        if (!callee) {
                refuse(c, id, 404, "no such endpoint");
                goto out;
        }
        if (!local_unix(callee)) {
                refuse(c, id, 501, "direct channels need a local Unix connection");
                goto out;
        }
        if (callee == c) {
                refuse(c, id, 400, "no direct channel to oneself");
                goto out;
        }
        for (bchan *ch = c->ch_out; ch; ch = ch->onext)
                if (ch->callee == callee) {
                        snprintf(msg, sizeof msg, "a direct channel to %s is open", callee->name);
                        refuse(c, id, 409, msg);
                        goto out;
                }
        const char *quota = c->n_ch_out >= cf->max_channels                  ? "max_channels"
                            : callee->n_ch_in >= cf->max_channels            ? "max_channels"
                            : uid_share_full(callee, c->uid)                 ? "uid_max_channels_per_callee"
                            : c->q && c->q->channels >= cf->uid_max_channels ? "uid_max_channels"
                            : b->n_channels >= cf->max_channels_total        ? "max_channels_total"
                                                                             : NULL;
        if (quota) {
                snprintf(msg, sizeof msg, "quota %s exceeded", quota);
                refuse(c, id, 429, msg);
                goto out;
        }
        methods = open_methods(c, callee);
        if (!methods) {
                refuse(c, id, 500, "out of memory");
                goto out;
        }
        if (json_array_size(methods) == 0) {
                snprintf(msg, sizeof msg, "no procedure of %s is open to the caller", callee->name);
                refuse(c, id, 403, msg);
                goto out;
        }
        /* Each end's inode goes in its frame: a peer takes the end that is its frame's,
         * whatever else it received before (an end may come ahead of its frame, and one
         * the kernel refused to pass, ETOOMANYREFS, never comes). */
        struct stat st0, st1;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || fstat(sv[0], &st0) < 0 ||
            fstat(sv[1], &st1) < 0) {
                snprintf(msg, sizeof msg, "no socket pair for the channel: %s", strerror(errno));
                refuse(c, id, 503, msg);
                goto out;
        }
        j = json_pack("{s:O,s:I,s:I,s:I,s:I,s:I}", "methods", methods, "max_pending",
                      (json_int_t)cf->max_pending_calls, "max_queue",
                      (json_int_t)cf->send_queue_bytes, "max_body",
                      (json_int_t)(cf->max_body < WIRE_CHANNEL_MAX_BODY ? cf->max_body : WIRE_CHANNEL_MAX_BODY),
                      "uid_max_pending", (json_int_t)cf->uid_max_pending_calls, "ino",
                      (json_int_t)st0.st_ino);
        to_callee = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        j = json_pack("{s:I,s:s%,s:O,s:I}", "channel", (json_int_t)(b->next_chan_id + 1), "endpoint",
                      callee->name, callee->name_len, "methods", methods, "ino", (json_int_t)st1.st_ino);
        to_caller = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!to_callee || !to_caller) {
                refuse(c, id, 500, "out of memory");
                goto out;
        }
        size_t lc = strlen(to_callee), lr = strlen(to_caller);
        if (!room_for(callee, WIRE_HDR_SIZE + WIRE_NAMES_MAX + lc) ||
            !room_for(c, WIRE_HDR_SIZE + WIRE_NAMES_MAX + lr)) {
                refuse(c, id, 503, "no room in a send queue for the channel");
                goto out;
        }
        if (!ends_room(callee, c)) {
                refuse(c, id, 503, "too many channel ends not received");
                goto out;
        }
        bchan *ch = calloc(1, sizeof *ch);
        if (!ch) {
                refuse(c, id, 500, "out of memory");
                goto out;
        }
        ch->id = ++b->next_chan_id;
        ch->caller = c;
        ch->callee = callee;

        /* To the callee: CHANNEL open, from = the caller with its info as on a CALL. */
        {
                uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                struct iovec iov[2];
                char from[WIRE_ENDPOINT_MAX];
                wire_hdr h = {.type = WIRE_CHANNEL, .call_id = ch->id, .aux = (uint32_t)c->uid};
                size_t from_len = route_caller_info(c, from, &h.info_len);
                int k = wire_build(&h, from, from_len, callee->name, callee->name_len, "open", 4,
                                   to_callee, lc, buf, iov);

                st = send_with_fd(callee, iov, k, sv[0]);
                sv[0] = -1;
        }
        if (st < 0) {
                free(ch);
                refuse(c, id, 503, "the callee cannot take the channel");
                goto out;
        }
        /* To the caller: the RESULT of its openChannel, with the other end. */
        {
                uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                struct iovec iov[2];
                wire_hdr h = {.type = WIRE_RESULT, .status = 200, .call_id = id};
                int k = wire_build(&h, builtin_name, sizeof builtin_name - 1, c->name, c->name_len,
                                   NULL, 0, to_caller, lr, buf, iov);

                st = send_with_fd(c, iov, k, sv[1]);
                sv[1] = -1;
        }
        /* Recorded even if the caller's end could not go (it is dying then): the callee was
         * told, and the caller's end goes with the caller's connection (conn gone: close). */
        ch->onext = c->ch_out;
        if (c->ch_out)
                c->ch_out->oprev = &ch->onext;
        c->ch_out = ch;
        ch->oprev = &c->ch_out;
        ch->inext = callee->ch_in;
        if (callee->ch_in)
                callee->ch_in->iprev = &ch->inext;
        callee->ch_in = ch;
        ch->iprev = &callee->ch_in;
        c->n_ch_out++;
        callee->n_ch_in++;
        if (c->q)
                c->q->channels++;
        b->n_channels++;
        if (st < 0)
                chan_close(b, ch, 410, "the caller is gone", 0);
out:
        if (sv[0] >= 0)
                close(sv[0]);
        if (sv[1] >= 0)
                close(sv[1]);
        json_decref(p);
        json_decref(methods);
        free(to_callee);
        free(to_caller);
}
