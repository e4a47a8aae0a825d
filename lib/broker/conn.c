/* SPDX-License-Identifier: MIT */
/*
 * Per-peer state: accept (SO_PEERCRED), framing on the bufferevent input,
 * bounded send queues, close/reap, liveness (ping/drop) and the endpoint table.
 */
#include <stdio.h>
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

bool bconn_room(bconn *c, size_t n)
{
        if (c->state == BCONN_DEAD || !c->bev)
                return false;
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) + n <= c->b->c->send_queue_bytes)
                return true;
        /* A slow consumer: say so explicitly and drop it; never lose silently, never grow. */
        wire_hdr h = { .type = WIRE_ERROR, .status = 507 };
        static const char msg[] = "send queue full: slow consumer disconnected";
        uint8_t buf[WIRE_HDR_SIZE + sizeof msg];
        struct iovec iov[2];
        wire_build(&h, NULL, 0, NULL, 0, msg, sizeof msg - 1, NULL, 0, buf, iov);
        evbuffer_add(bufferevent_get_output(c->bev), buf, iov[0].iov_len);
        broker_log(c->b, HYB_LOG_WARNING, "%s: send queue full, disconnecting", c->name ? c->name : "peer");
        bconn_close(c, "notResponding");
        return false;
}

int bconn_send(bconn *c, wire_hdr *h, const char *from, size_t from_len, const char *to,
               size_t to_len, const char *member, size_t member_len, const void *body, size_t len)
{
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        struct evbuffer *out;

        if (c->state == BCONN_DEAD || !c->bev)
                return -ENOTCONN;
        if (member_len > WIRE_MEMBER_MAX)
                member_len = WIRE_MEMBER_MAX;
        if (!bconn_room(c, WIRE_HDR_SIZE + from_len + to_len + member_len + len))
                return -ENOBUFS;
        int n = wire_build(h, from, from_len, to, to_len, member, member_len, body, len, buf, iov);
        out = bufferevent_get_output(c->bev);
        evbuffer_add(out, buf, iov[0].iov_len);
        if (n > 1)
                evbuffer_add(out, body, len);
        return 0;
}

const uint8_t *bframe_body(bframe *f)
{
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

void bframe_move_body(bframe *f, struct evbuffer *out)
{
        evbuffer_drain(f->in, WIRE_HDR_SIZE + wire_names_len(&f->h));
        if (f->h.body_len)
                evbuffer_remove_buffer(f->in, out, f->h.body_len);
        f->consumed = true;
}

static void send_error_close(bconn *c, int status, const char *msg)
{
        wire_hdr h = { .type = WIRE_ERROR, .status = (uint16_t)status };
        if (c->bev && c->state != BCONN_DEAD) {
                uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                struct iovec iov[2];
                wire_build(&h, NULL, 0, NULL, 0, msg, strlen(msg), NULL, 0, buf, iov);
                evbuffer_add(bufferevent_get_output(c->bev), buf, iov[0].iov_len);
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

static void conn_read(struct bufferevent *bev, void *ud)
{
        bconn *c = ud;
        hyb_broker *b = c->b;
        struct evbuffer *in = bufferevent_get_input(bev);
        uint8_t hb[WIRE_HDR_SIZE];
        bframe f;

        c->last_rx_us = broker_now_us();
        c->ping_sent = false;
        while (c->state != BCONN_DEAD) {
                size_t have = evbuffer_get_length(in);
                if (have < WIRE_HDR_SIZE)
                        break;
                evbuffer_copyout(in, hb, WIRE_HDR_SIZE);
                if (wire_hdr_decode(hb, &f.h) < 0) {
                        send_error_close(c, 422, "malformed frame header");
                        return;
                }
                f.len = wire_frame_len(&f.h);
                if (f.len > b->c->max_frame ||
                    (c->state == BCONN_AUTH && f.len > 64u * 1024)) {
                        send_error_close(c, 413, "frame larger than max_frame");
                        return;
                }
                if (have < f.len) {
                        /* Wake up only when the whole frame is there. */
                        bufferevent_setwatermark(bev, EV_READ, f.len, 0);
                        return;
                }
                bufferevent_setwatermark(bev, EV_READ, 0, 0);
                const char *names = (const char *)evbuffer_pullup(in, (ev_ssize_t)(WIRE_HDR_SIZE + wire_names_len(&f.h)));
                if (!names) {
                        bconn_close(c, NULL);
                        return;
                }
                f.from = names + WIRE_HDR_SIZE;
                f.to = f.from + f.h.from_len;
                f.member = f.to + f.h.to_len;
                f.in = in;
                f.consumed = false;
                dispatch(c, &f);
                if (!f.consumed && c->bev)
                        evbuffer_drain(in, f.len);
        }
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
        c = calloc(1, sizeof *c);
        if (!c) {
                close(fd);
                return;
        }
        c->b = b;
        c->uid = cred.uid;
        c->gid = cred.gid;
        c->pid = cred.pid;
        c->admin = broker_config_is_admin(b->c, cred.uid);
        c->state = BCONN_AUTH;
        c->last_rx_us = broker_now_us();
        c->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
        c->timer = evtimer_new(b->base, auth_timeout, c);
        if (!c->bev || !c->timer) {
                if (c->bev)
                        bufferevent_free(c->bev);
                else
                        close(fd);
                if (c->timer)
                        event_free(c->timer);
                free(c);
                return;
        }
        c->next = b->conns;
        if (b->conns)
                b->conns->prev = c;
        b->conns = c;
        b->n_conns++;
        bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        struct timeval tv = { .tv_sec = b->c->auth_timeout_ms / 1000,
                              .tv_usec = (b->c->auth_timeout_ms % 1000) * 1000 };
        evtimer_add(c->timer, &tv);
        if (auth_challenge(c) < 0)
                bconn_close(c, NULL);
}

void bconn_close(bconn *c, const char *reason)
{
        hyb_broker *b = c->b;

        if (c->state == BCONN_DEAD)
                return;
        /* Only authenticated endpoints get a BrokenEndpoint. */
        c->reason = c->state == BCONN_READY ? (reason ? reason : "lostConnection") : NULL;
        c->state = BCONN_DEAD;
        if (c->bev)
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
        if (c->bev)
                bufferevent_free(c->bev);
        if (c->timer)
                event_free(c->timer);
        free(c->name);
        free(c->app);
        free(c);
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
        events_conn_gone(c);
        if (c->name) {
                ep_remove(b, c);
                b->n_endpoints--;
                if (c->reason) {
                        snprintf(json, sizeof json, "{\"endpointName\":\"%s\",\"reason\":\"%s\"}", c->name,
                                 c->reason);
                        events_builtin(b, "BrokenEndpoint", json);
                }
                broker_log(b, HYB_LOG_DEBUG, "%s gone (%s)", c->name, c->reason ? c->reason : "-");
        }
        /* Linger also while shutting down: SystemShuttingDown is in that output
         * (shutdown_done / bconn_free_all free whatever is still lingering). */
        if (c->bev && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
                struct timeval tv = { .tv_sec = 1 };
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

/* Liveness: ping the silent, drop the dead (BrokenEndpoint notResponding). */
void broker_tick(evutil_socket_t fd, short what, void *ud)
{
        hyb_broker *b = ud;
        uint64_t now = broker_now_us();

        for (bconn *c = b->conns; c; c = c->next) {
                if (c->state != BCONN_READY)
                        continue;
                uint64_t idle = now - c->last_rx_us;
                if (idle >= (uint64_t)b->c->drop_after_s * 1000000u) {
                        broker_log(b, HYB_LOG_INFO, "%s not responding, dropped", c->name);
                        bconn_close(c, "notResponding");
                } else if (idle >= (uint64_t)b->c->ping_after_s * 1000000u && !c->ping_sent) {
                        wire_hdr h = { .type = WIRE_PING };
                        c->ping_sent = true;
                        bconn_send(c, &h, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
                }
        }
}
