/* SPDX-License-Identifier: MIT */
/*
 * bus_suite, tcase "channel": the broker's side of direct channels (doc/protocol.md
 * "Direct channels"), with raw peers: openChannel's checks and each refusal code, the two
 * channel ends passed with SCM_RIGHTS (a connected pair, one end each, none kept by the
 * broker), close on a peer gone, a monitor attached, a reload and closeChannel, and the
 * bounds limits.max_channels, uid_max_channels, uid_max_channels_per_callee and
 * max_channels_total, and those on channel ends not received (per peer, per uid, in all,
 * and the kernel's own where it applies), each measured.
 */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker-internal.h"
#include "bus/wire.h"
#include "test_bus.h"
#include "testutil.h"

#define BUILTIN "@localhost/org.hybridos.bus/builtin"

/* A raw peer: its socket and the fds received on it, oldest first. */
typedef struct rpeer {
        int fd;
        int fds[64];
        unsigned n_fds;
        char name[128];
} rpeer;

/* One frame read: header, names and body (NUL-terminated copies). */
typedef struct rframe {
        wire_hdr h;
        char *from, *to, *member, *body;
} rframe;

static void rframe_free(rframe *f)
{
        free(f->from);
        free(f->to);
        free(f->member);
        free(f->body);
        memset(f, 0, sizeof *f);
}

/* Reads exactly len bytes with recvmsg, keeping every fd that comes with them. */
static int peer_read(rpeer *p, void *buf, size_t len, int timeout_ms)
{
        size_t off = 0;

        while (off < len) {
                struct pollfd pf = {.fd = p->fd, .events = POLLIN};
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * 32)];
                } u;
                struct iovec iov = {(char *)buf + off, len - off};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = u.buf,
                                    .msg_controllen = sizeof u.buf};

                if (poll(&pf, 1, timeout_ms) <= 0)
                        return -1;
                ssize_t n = recvmsg(p->fd, &mh, MSG_CMSG_CLOEXEC);
                if (n <= 0)
                        return -1;
                ck_assert(!(mh.msg_flags & MSG_CTRUNC));
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                                continue;
                        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < k; i++) {
                                ck_assert_uint_lt(p->n_fds, sizeof p->fds / sizeof p->fds[0]);
                                memcpy(&p->fds[p->n_fds++], CMSG_DATA(cm) + i * sizeof(int),
                                       sizeof(int));
                        }
                }
                off += (size_t)n;
        }
        return 0;
}

static char *dup_n(const char *s, size_t n)
{
        char *d = malloc(n + 1);

        ck_assert_ptr_nonnull(d);
        memcpy(d, s, n);
        d[n] = 0;
        return d;
}

static int peer_frame(rpeer *p, rframe *f, int timeout_ms)
{
        uint8_t hb[WIRE_HDR_SIZE];

        memset(f, 0, sizeof *f);
        if (peer_read(p, hb, sizeof hb, timeout_ms) < 0)
                return -1;
        ck_assert_int_eq(wire_hdr_decode(hb, &f->h), 0);
        size_t n = wire_names_len(&f->h) + f->h.body_len;
        char *rest = malloc(n + 1);
        ck_assert_ptr_nonnull(rest);
        ck_assert_int_eq(peer_read(p, rest, n, timeout_ms), 0);
        f->from = dup_n(rest, f->h.from_len);
        f->to = dup_n(rest + f->h.from_len, f->h.to_len);
        f->member = dup_n(rest + f->h.from_len + f->h.to_len, f->h.member_len);
        f->body = dup_n(rest + wire_names_len(&f->h), f->h.body_len);
        free(rest);
        return f->h.type;
}

/* The oldest fd received and not yet taken, or -1. */
static int peer_take_fd(rpeer *p)
{
        int fd;

        if (!p->n_fds)
                return -1;
        fd = p->fds[0];
        memmove(p->fds, p->fds + 1, sizeof(int) * --p->n_fds);
        return fd;
}

static void peer_connect(rpeer *p, tbroker *t, const char *app, const char *runner)
{
        memset(p, 0, sizeof *p);
        p->fd = raw_connect(t, app, runner, true);
        snprintf(p->name, sizeof p->name, "@localhost/%s/%s", app, runner);
}

static void peer_close(rpeer *p)
{
        int fd;

        while ((fd = peer_take_fd(p)) >= 0)
                close(fd);
        if (p->fd >= 0)
                close(p->fd);
        p->fd = -1;
}

static void peer_send_call(rpeer *p, uint64_t id, const char *to, const char *member,
                           const char *body)
{
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        wire_hdr h = {.type = WIRE_CALL, .call_id = id, .timeout_ms = 5000};
        size_t bl = body ? strlen(body) : 0;
        int n = wire_build(&h, NULL, 0, to, strlen(to), member, strlen(member), body, bl, buf, iov);
        size_t total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);

        ck_assert_int_eq(writev(p->fd, iov, n), (ssize_t)total);
}

/* Reads frames until the RESULT of call id (other frames, a monitor's copies, skipped); its status,
 * body kept. */
static int peer_result(rpeer *p, uint64_t id, char **ret_body)
{
        for (;;) {
                rframe f;

                ck_assert_int_ge(peer_frame(p, &f, 5000), 0);
                if (f.h.type == WIRE_RESULT && f.h.call_id == id) {
                        int st = f.h.status;

                        if (ret_body) {
                                *ret_body = f.body;
                                f.body = NULL;
                        }
                        rframe_free(&f);
                        return st;
                }
                rframe_free(&f);
        }
}

static int peer_call(rpeer *p, uint64_t id, const char *to, const char *member, const char *body,
                     char **ret)
{
        peer_send_call(p, id, to, member, body);
        return peer_result(p, id, ret);
}

static void peer_register(rpeer *p, const char *method, const char *for_app)
{
        char body[256];

        snprintf(body, sizeof body, "{\"methodName\":\"%s\",\"forApp\":\"%s\"}", method, for_app);
        ck_assert_int_eq(peer_call(p, 900, BUILTIN, "registerProcedure", body, NULL), 200);
}

/* openChannel to ep: its status; *msg (if given) the RESULT's status message or body. */
static int open_ch(rpeer *p, uint64_t id, const char *ep, char **ret_body)
{
        char body[512];

        snprintf(body, sizeof body, "{\"endpoint\":\"%s\"}", ep);
        return peer_call(p, id, BUILTIN, "openChannel", body, ret_body);
}

/* Reads the RESULT of call id and returns its status message (member), malloc'd. */
static int open_ch_msg(rpeer *p, uint64_t id, const char *ep, char **ret_msg)
{
        char body[512];

        snprintf(body, sizeof body, "{\"endpoint\":\"%s\"}", ep);
        peer_send_call(p, id, BUILTIN, "openChannel", body);
        for (;;) {
                rframe f;

                ck_assert_int_ge(peer_frame(p, &f, 5000), 0);
                if (f.h.type == WIRE_RESULT && f.h.call_id == id) {
                        int st = f.h.status;

                        *ret_msg = f.member;
                        f.member = NULL;
                        rframe_free(&f);
                        return st;
                }
                rframe_free(&f);
        }
}

/* Expects the refusal st with a message containing want. */
static void refused(rpeer *p, uint64_t id, const char *ep, int st, const char *want)
{
        char *msg = NULL;

        ck_assert_int_eq(open_ch_msg(p, id, ep, &msg), st);
        ck_assert_msg(strstr(msg, want), "message \"%s\" lacks \"%s\"", msg, want);
        free(msg);
        ck_assert_uint_eq(p->n_fds, 0); /* a refusal passes no fd */
}

/* The next CHANNEL frame on p (others skipped), member `want`; its header and body. */
static void expect_channel(rpeer *p, const char *want, rframe *f)
{
        for (;;) {
                ck_assert_int_ge(peer_frame(p, f, 5000), 0);
                if (f->h.type == WIRE_CHANNEL)
                        break;
                rframe_free(f);
        }
        ck_assert_str_eq(f->member, want);
}

/* A close: status and grace as doc/protocol.md says, for channel id. */
static void expect_close(rpeer *p, uint64_t id, int status, int grace_ms)
{
        rframe f;

        expect_channel(p, "close", &f);
        ck_assert_uint_eq(f.h.call_id, id);
        ck_assert_int_eq(f.h.status, status);
        json_t *j = json_loads(f.body, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert(json_is_string(json_object_get(j, "reason")));
        ck_assert_int_eq(json_integer_value(json_object_get(j, "grace_ms")), grace_ms);
        json_decref(j);
        rframe_free(&f);
}

static unsigned count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

/* The fd count once it is want, or what it is after 15 s (a peer that left may linger while
 * the broker writes it what is queued). */
static unsigned count_fds_settle(unsigned want)
{
        unsigned n = count_fds();

        for (int i = 0; i < 1500 && n != want; i++) {
                usleep(10000);
                n = count_fds();
        }
        return n;
}

/* a and b are the two ends of one connected stream pair: what one writes the other reads. */
static void assert_pair(int a, int b)
{
        int type = 0;
        socklen_t sl = sizeof type;
        char buf[8];

        ck_assert_int_eq(getsockopt(a, SOL_SOCKET, SO_TYPE, &type, &sl), 0);
        ck_assert_int_eq(type, SOCK_STREAM);
        ck_assert_int_eq(write(a, "ping", 4), 4);
        ck_assert_int_eq(raw_read_exact(b, buf, 4, 3000), 0);
        ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
        ck_assert_int_eq(write(b, "pong", 4), 4);
        ck_assert_int_eq(raw_read_exact(a, buf, 4, 3000), 0);
        ck_assert_int_eq(memcmp(buf, "pong", 4), 0);
}

/* An open channel from cli to svc: both ends taken (returned), the id. */
static uint64_t opened(rpeer *cli, rpeer *svc, uint64_t call, int *ret_cli_fd, int *ret_svc_fd)
{
        char *body = NULL;
        rframe f;

        ck_assert_int_eq(open_ch(cli, call, svc->name, &body), 200);
        json_t *j = json_loads(body, 0, NULL);
        free(body);
        ck_assert_ptr_nonnull(j);
        uint64_t id = (uint64_t)json_integer_value(json_object_get(j, "channel"));
        json_decref(j);
        ck_assert_uint_ne(id, 0);
        expect_channel(svc, "open", &f);
        ck_assert_uint_eq(f.h.call_id, id);
        rframe_free(&f);
        *ret_cli_fd = peer_take_fd(cli);
        *ret_svc_fd = peer_take_fd(svc);
        ck_assert_int_ge(*ret_cli_fd, 0);
        ck_assert_int_ge(*ret_svc_fd, 0);
        return id;
}

/* The ends of the channels a test opened (opened_kept), closed together by ends_close. */
typedef struct kept_ends {
        int fd[16];
        int n;
} kept_ends;

/* opened(), both ends kept in e: the id. */
static uint64_t opened_kept(kept_ends *e, rpeer *cli, rpeer *svc, uint64_t call)
{
        ck_assert_int_le(e->n + 2, (int)(sizeof e->fd / sizeof e->fd[0]));
        uint64_t id = opened(cli, svc, call, &e->fd[e->n], &e->fd[e->n + 1]);
        e->n += 2;
        return id;
}

static void ends_close(kept_ends *e)
{
        for (int i = 0; i < e->n; i++)
                close(e->fd[i]);
        e->n = 0;
}

/*
 * n raw services org.test.svc<i>/main, each offering add to all, and when c is not NULL
 * n raw callers org.test.cli<i>/main (connected in turn: svc0, cli0, svc1, ...).
 */
static void peers_start(tbroker *t, rpeer *s, rpeer *c, int n)
{
        for (int i = 0; i < n; i++) {
                char app[32];

                snprintf(app, sizeof app, "org.test.svc%d", i);
                peer_connect(&s[i], t, app, "main");
                peer_register(&s[i], "add", "*");
                if (c) {
                        snprintf(app, sizeof app, "org.test.cli%d", i);
                        peer_connect(&c[i], t, app, "main");
                }
        }
}

/*
 * A broker (limits and admin_self as tb_start's) with a raw service org.test.svc/main
 * offering add to all and a raw caller org.test.cli/main; pair_stop closes both (caller
 * first) and stops the broker.
 */
static void pair_start(tbroker *t, const char *limits, bool admin_self, rpeer *svc, rpeer *cli)
{
        tb_start(t, limits, admin_self);
        peer_connect(svc, t, "org.test.svc", "main");
        peer_connect(cli, t, "org.test.cli", "main");
        peer_register(svc, "add", "*");
}

static void pair_stop(tbroker *t, rpeer *svc, rpeer *cli)
{
        peer_close(cli);
        peer_close(svc);
        tb_stop(t);
}

/* ---------------------------------------------------------------- open */

START_TEST(test_channel_open)
{
        tbroker t;
        rpeer svc, cli;
        rframe f;
        char *body = NULL;

        pair_start(&t, NULL, false, &svc, &cli);
        peer_register(&svc, "secret", "org.test.other");
        unsigned n0 = count_fds();

        ck_assert_int_eq(open_ch(&cli, 1, "@LOCALHOST/org.test.svc/MAIN", &body), 200);
        json_t *j = json_loads(body, 0, NULL);
        ck_assert_ptr_nonnull(j);
        uint64_t id = (uint64_t)json_integer_value(json_object_get(j, "channel"));
        ck_assert_uint_ne(id, 0);
        /* the callee's name as registered, and only the methods its access lists open */
        ck_assert_str_eq(json_string_value(json_object_get(j, "endpoint")),
                         "@localhost/org.test.svc/main");
        json_t *m = json_object_get(j, "methods");
        ck_assert_uint_eq(json_array_size(m), 1);
        ck_assert_str_eq(json_string_value(json_array_get(m, 0)), "add");
        json_int_t ino_cli = json_integer_value(json_object_get(j, "ino"));
        json_decref(j);
        free(body);

        /* the callee: CHANNEL open with the caller, its uid and the bounds of the channel */
        expect_channel(&svc, "open", &f);
        ck_assert_uint_eq(f.h.call_id, id);
        ck_assert_uint_eq(f.h.aux, (uint32_t)getuid());
        ck_assert_uint_eq(f.h.info_len, 0);
        ck_assert_str_eq(f.from, "@localhost/org.test.cli/main");
        ck_assert_str_eq(f.to, "@localhost/org.test.svc/main");
        j = json_loads(f.body, 0, NULL);
        ck_assert_ptr_nonnull(j);
        m = json_object_get(j, "methods");
        ck_assert_uint_eq(json_array_size(m), 1);
        ck_assert_str_eq(json_string_value(json_array_get(m, 0)), "add");
        ck_assert_int_eq(json_integer_value(json_object_get(j, "max_pending")), 1024);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "max_queue")), 64 * 1024 * 1024);
        /* limits.uid_max_pending_calls (default 4096): the callee bounds one uid over its channels */
        ck_assert_int_eq(json_integer_value(json_object_get(j, "uid_max_pending")), 4096);
        /* limits.max_body (16 MiB), but a channel carries call bodies up to 64 KiB only */
        ck_assert_int_eq(json_integer_value(json_object_get(j, "max_body")), 64 * 1024);
        json_int_t ino_svc = json_integer_value(json_object_get(j, "ino"));
        json_decref(j);
        rframe_free(&f);

        /* one end each, joined; the broker keeps none */
        ck_assert_uint_eq(cli.n_fds, 1);
        ck_assert_uint_eq(svc.n_fds, 1);
        ck_assert_uint_eq(count_fds_settle(n0 + 2), n0 + 2);
        int a = peer_take_fd(&cli), b = peer_take_fd(&svc);
        assert_pair(a, b);
        /* each frame names the inode of the end that is its own */
        struct stat sa, sb;
        ck_assert_int_eq(fstat(a, &sa), 0);
        ck_assert_int_eq(fstat(b, &sb), 0);
        ck_assert_int_eq(ino_cli, (json_int_t)sa.st_ino);
        ck_assert_int_eq(ino_svc, (json_int_t)sb.st_ino);

        /* one channel per caller and callee */
        refused(&cli, 2, "@localhost/org.test.svc/main", 409,
                "a direct channel to @localhost/org.test.svc/main is open");

        /* the caller goes: the callee drops the channel at once */
        peer_close(&cli);
        expect_close(&svc, id, 410, 0);
        close(a);
        close(b);
        /* the test's socket and the broker's end of the caller's connection are gone too */
        ck_assert_uint_eq(count_fds_settle(n0 - 2), n0 - 2);
        peer_close(&svc);
        tb_stop(&t);
}
END_TEST

/* ---------------------------------------------------------------- refusals */

START_TEST(test_channel_refusals)
{
        tbroker t;
        rpeer svc, cli, mon, closed;

        tb_start(&t, NULL, true);
        peer_connect(&svc, &t, "org.test.svc", "main");
        peer_connect(&cli, &t, "org.test.cli", "main");
        peer_connect(&closed, &t, "org.test.closed", "main");
        peer_register(&svc, "add", "*");
        peer_register(&closed, "secret", "org.test.other");

        refused(&cli, 1, "not a name", 406, "malformed endpoint name");
        refused(&cli, 2, "@localhost/org.test.none/main", 404, "no such endpoint");
        refused(&cli, 3, "@otherhost/org.test.svc/main", 404, "no such endpoint");
        refused(&cli, 4, BUILTIN, 501, "direct channels need a local Unix connection");
        refused(&cli, 5, cli.name, 400, "oneself");
        refused(&cli, 6, closed.name, 403,
                "no procedure of @localhost/org.test.closed/main is open to the caller");
        char *msg = NULL;
        peer_send_call(&cli, 7, BUILTIN, "openChannel", "{}");
        ck_assert_int_eq(peer_result(&cli, 7, NULL), 400);
        peer_send_call(&cli, 8, BUILTIN, "openChannel",
                       "{\"endpoint\":\"@localhost/org.test.svc/main\\u0000x\"}");
        ck_assert_int_eq(peer_result(&cli, 8, NULL), 406);
        peer_send_call(&cli, 9, BUILTIN, "openChannel", "not json");
        ck_assert_int_eq(peer_result(&cli, 9, NULL), 400);
        (void)msg;

        /* a monitor attached: no channel opens */
        peer_connect(&mon, &t, "org.test.mon", "main");
        ck_assert_int_eq(peer_call(&mon, 1, BUILTIN, "monitor", "{\"enable\":true}", NULL), 200);
        refused(&cli, 10, svc.name, 503, "a monitor is attached");
        ck_assert_int_eq(peer_call(&mon, 2, BUILTIN, "monitor", "{\"enable\":false}", NULL), 200);
        int a, b;
        uint64_t id = opened(&cli, &svc, 11, &a, &b);
        ck_assert_uint_ne(id, 0);
        close(a);
        close(b);

        /* the service still serves calls through the broker meanwhile, and the broker others */
        ck_assert_int_eq(peer_call(&cli, 12, BUILTIN, "echo", "{\"x\":1}", NULL), 200);
        peer_close(&mon);
        peer_close(&closed);
        pair_stop(&t, &svc, &cli);
}
END_TEST

START_TEST(test_channel_off)
{
        tbroker t;
        rpeer svc, cli;

        pair_start(&t, "max_channels=0", false, &svc, &cli);
        refused(&cli, 1, svc.name, 503, "direct channels are off");
        pair_stop(&t, &svc, &cli);
}
END_TEST

/* ---------------------------------------------------------------- bounds */

/* limits.max_channels: as caller and as callee, each; freed when a channel closes. */
START_TEST(test_channel_max_per_conn)
{
        tbroker t;
        rpeer s[3], c[3];
        kept_ends e = { .n = 0 };

        tb_start(&t, "max_channels=2", false);
        peers_start(&t, s, c, 3);
        /* as caller: two channels, the third refused */
        opened_kept(&e, &c[0], &s[0], 1);
        uint64_t id01 = opened_kept(&e, &c[0], &s[1], 2);
        refused(&c[0], 3, s[2].name, 429, "quota max_channels exceeded");
        /* as callee: s[0] serves c[0] and c[1]; c[2] is refused */
        opened_kept(&e, &c[1], &s[0], 1);
        refused(&c[2], 1, s[0].name, 429, "quota max_channels exceeded");
        /* a closed channel frees its place: c[0] closes its channel to s[1] */
        char body[64];
        snprintf(body, sizeof body, "{\"channel\":%llu}", (unsigned long long)id01);
        ck_assert_int_eq(peer_call(&c[0], 4, BUILTIN, "closeChannel", body, NULL), 200);
        expect_close(&s[1], id01, 410, 0);
        ck_assert_int_eq(peer_call(&c[0], 5, BUILTIN, "closeChannel", body, NULL), 404);
        opened_kept(&e, &c[0], &s[2], 6);
        /* reopening after a close is no 409 */
        ck_assert_int_eq(peer_call(&c[0], 7, BUILTIN, "closeChannel", body, NULL), 404);
        ends_close(&e);
        for (int i = 0; i < 3; i++) {
                peer_close(&c[i]);
                peer_close(&s[i]);
        }
        tb_stop(&t);
}
END_TEST

/* limits.uid_max_channels: the callers of one uid together. */
START_TEST(test_channel_max_uid)
{
        tbroker t;
        rpeer s[3], c[2];
        kept_ends e = { .n = 0 };

        tb_start(&t, "max_channels=2,uid_max_channels=3", false);
        peers_start(&t, s, NULL, 3);
        peer_connect(&c[0], &t, "org.test.cli0", "main");
        peer_connect(&c[1], &t, "org.test.cli1", "main");
        uint64_t id00 = opened_kept(&e, &c[0], &s[0], 1);
        opened_kept(&e, &c[0], &s[1], 2);
        opened_kept(&e, &c[1], &s[2], 1);
        refused(&c[1], 2, s[0].name, 429, "quota uid_max_channels exceeded");
        /* c[0] goes: its two channels are the uid's no more */
        peer_close(&c[0]);
        expect_close(&s[0], id00, 410, 0);
        opened_kept(&e, &c[1], &s[0], 3);
        ends_close(&e);
        peer_close(&c[1]);
        for (int i = 0; i < 3; i++)
                peer_close(&s[i]);
        tb_stop(&t);
}
END_TEST

/* limits.max_channels_total: all channels of the broker. */
START_TEST(test_channel_max_total)
{
        tbroker t;
        rpeer s[2], c[2];
        kept_ends e = { .n = 0 };

        tb_start(&t, "max_channels_total=2", false);
        peers_start(&t, s, c, 2);
        opened_kept(&e, &c[0], &s[0], 1);
        uint64_t id11 = opened_kept(&e, &c[1], &s[1], 1);
        refused(&c[0], 2, s[1].name, 429, "quota max_channels_total exceeded");
        /* the callee s[1] goes: its caller is told (410), and the place is free again */
        peer_close(&s[1]);
        expect_close(&c[1], id11, 410, 0);
        opened_kept(&e, &c[1], &s[0], 2);
        ends_close(&e);
        peer_close(&c[0]);
        peer_close(&c[1]);
        peer_close(&s[0]);
        tb_stop(&t);
}
END_TEST

/* ---------------------------------------------------------------- soft close */

START_TEST(test_channel_monitor_closes)
{
        tbroker t;
        rpeer svc, cli, mon;
        int a, b;

        pair_start(&t, NULL, true, &svc, &cli);
        uint64_t id = opened(&cli, &svc, 1, &a, &b);
        peer_connect(&mon, &t, "org.test.mon", "main");
        ck_assert_int_eq(peer_call(&mon, 1, BUILTIN, "monitor", "{\"enable\":true}", NULL), 200);
        expect_close(&svc, id, 503, 1000);
        expect_close(&cli, id, 503, 1000);
        /* forgotten by the broker: closeChannel no longer knows it, the place is free */
        char body[64];
        snprintf(body, sizeof body, "{\"channel\":%llu}", (unsigned long long)id);
        ck_assert_int_eq(peer_call(&cli, 2, BUILTIN, "closeChannel", body, NULL), 404);
        ck_assert_int_eq(peer_call(&mon, 2, BUILTIN, "monitor", "{\"enable\":false}", NULL), 200);
        close(a);
        close(b);
        uint64_t id2 = opened(&cli, &svc, 3, &a, &b);
        ck_assert_uint_ne(id2, id);
        close(a);
        close(b);
        peer_close(&mon);
        pair_stop(&t, &svc, &cli);
}
END_TEST

START_TEST(test_channel_reload_closes)
{
        tbroker t;
        rpeer svc, cli;
        hyb_broker_config *cfg = NULL;
        hyb_error e;
        int a, b;

        pair_start(&t, NULL, false, &svc, &cli);
        uint64_t id = opened(&cli, &svc, 1, &a, &b);
        tb_pause(&t);
        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_int_eq(hyb_broker_config_set_socket(cfg, t.sock), 0);
        ck_assert_int_eq(hyb_broker_reload(t.broker, cfg, &e), 0);
        hyb_broker_config_unref(cfg);
        tb_resume(&t);
        expect_close(&svc, id, 503, 1000);
        expect_close(&cli, id, 503, 1000);
        close(a);
        close(b);
        /* the caller may open again (checked under the new configuration) */
        opened(&cli, &svc, 2, &a, &b);
        close(a);
        close(b);
        pair_stop(&t, &svc, &cli);
}
END_TEST

/* ---------------------------------------------------------------- passing ends in order */

/*
 * The caller does not read while the broker queues 8 MiB of echo results for it: its
 * socket is full, so the end of the channel must wait for the queue (the bufferevent may
 * not write the RESULT without it).  Read afterwards: every frame in order, the end
 * received by the time the openChannel RESULT is read, exactly one.
 */
START_TEST(test_channel_fd_behind_queue)
{
        tbroker t;
        rpeer svc, cli;
        enum { N = 32, BODY = 256 * 1024 };
        char *big = malloc(BODY + 16);
        rframe f;

        ck_assert_ptr_nonnull(big);
        big[0] = '"';
        memset(big + 1, 'x', BODY);
        big[BODY + 1] = '"';
        big[BODY + 2] = 0;
        pair_start(&t, NULL, false, &svc, &cli);
        for (int i = 0; i < N; i++)
                peer_send_call(&cli, 100 + (uint64_t)i, BUILTIN, "echo", big);
        char body[256];
        snprintf(body, sizeof body, "{\"endpoint\":\"%s\"}", svc.name);
        peer_send_call(&cli, 1, BUILTIN, "openChannel", body);
        /* the callee's end arrives (its queue is empty) */
        expect_channel(&svc, "open", &f);
        rframe_free(&f);
        ck_assert_uint_eq(svc.n_fds, 1);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(peer_frame(&cli, &f, 10000), WIRE_RESULT);
                ck_assert_uint_eq(f.h.call_id, 100 + (uint64_t)i);
                ck_assert_uint_eq(f.h.body_len, BODY + 2);
                rframe_free(&f);
        }
        ck_assert_int_eq(peer_frame(&cli, &f, 10000), WIRE_RESULT);
        ck_assert_uint_eq(f.h.call_id, 1);
        ck_assert_int_eq(f.h.status, 200);
        rframe_free(&f);
        ck_assert_uint_eq(cli.n_fds, 1);
        int a = peer_take_fd(&cli), b = peer_take_fd(&svc);
        assert_pair(a, b);
        close(a);
        close(b);
        /* and the connection goes on as usual */
        ck_assert_int_eq(peer_call(&cli, 2, BUILTIN, "echo", "{}", NULL), 200);
        free(big);
        pair_stop(&t, &svc, &cli);
}
END_TEST

/*
 * Channel ends the broker could not pass yet (the caller does not read) are bounded: twice
 * limits.max_channels per peer, twice limits.max_channels_total in all; one more open is
 * 503.  The caller opens and closes (closeChannel) channels while the broker holds 8 MiB of
 * answers for it: the first end may still find room in its socket and leave at once (it
 * then fills the socket), the next ones wait.  Measured: the callee sees every open the
 * broker accepted; the caller, once it reads, gets one end per accepted open, the waiting
 * ones together (they leave in one sendmsg once it reads) and exactly `bound` of them.
 */
static int peer_read_groups(rpeer *p, void *buf, size_t len, unsigned *groups, unsigned *n_groups)
{
        size_t off = 0;

        while (off < len) {
                struct pollfd pf = {.fd = p->fd, .events = POLLIN};
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * 32)];
                } u;
                struct iovec iov = {(char *)buf + off, len - off};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = u.buf,
                                    .msg_controllen = sizeof u.buf};

                if (poll(&pf, 1, 10000) <= 0)
                        return -1;
                ssize_t n = recvmsg(p->fd, &mh, MSG_CMSG_CLOEXEC);
                if (n <= 0)
                        return -1;
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < k; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                                close(fd);
                        }
                        ck_assert_uint_lt(*n_groups, 64);
                        groups[(*n_groups)++] = (unsigned)k;
                }
                off += (size_t)n;
        }
        return 0;
}

static void pending_ends(const char *limits, unsigned bound)
{
        tbroker t;
        rpeer svc, cli;
        enum { N = 32, BODY = 256 * 1024 };
        char *big = malloc(BODY + 16), body[256], lb[256];
        uint64_t call = 1, results = 0;
        unsigned accepted = 0, groups[64], n_groups = 0;
        int refused_at = -1;

        ck_assert_ptr_nonnull(big);
        big[0] = '"';
        memset(big + 1, 'x', BODY);
        big[BODY + 1] = '"';
        big[BODY + 2] = 0;
        pair_start(&t, limits, false, &svc, &cli);
        for (int i = 0; i < N; i++)
                peer_send_call(&cli, 1000 + (uint64_t)i, BUILTIN, "echo", big);
        snprintf(body, sizeof body, "{\"endpoint\":\"%s\"}", svc.name);
        snprintf(lb, sizeof lb, "{\"endpointName\":\"%s\"}", cli.name);
        for (int i = 0; i < 20 && refused_at < 0; i++) {
                char bubble[64];
                uint64_t id = 0;

                peer_send_call(&cli, call++, BUILTIN, "openChannel", body);
                /* The broker dispatches one peer's frames in order: once the bubble the
                 * caller registers next is listed, the open was answered (and an accepted
                 * one was sent to the callee before that list). */
                snprintf(bubble, sizeof bubble, "{\"bubbleName\":\"S%d\"}", i);
                peer_send_call(&cli, call++, BUILTIN, "registerEvent", bubble);
                snprintf(bubble, sizeof bubble, "/S%d\"", i);
                for (int tries = 0;; tries++) {
                        uint64_t lc = 100000 + (uint64_t)i * 1000 + (uint64_t)tries;
                        rframe f;
                        bool seen = false;

                        ck_assert_int_lt(tries, 900);
                        peer_send_call(&svc, lc, BUILTIN, "listEvents", lb);
                        for (;;) {
                                ck_assert_int_ge(peer_frame(&svc, &f, 5000), 0);
                                if (f.h.type == WIRE_CHANNEL && !strcmp(f.member, "open"))
                                        id = f.h.call_id;
                                bool done = f.h.type == WIRE_RESULT && f.h.call_id == lc;
                                if (done)
                                        seen = strstr(f.body, bubble) != NULL;
                                rframe_free(&f);
                                if (done)
                                        break;
                        }
                        if (seen)
                                break;
                        usleep(10000);
                }
                if (!id) {
                        refused_at = (int)call - 2;
                        break;
                }
                accepted++;
                char cb[64];
                snprintf(cb, sizeof cb, "{\"channel\":%llu}", (unsigned long long)id);
                peer_send_call(&cli, call++, BUILTIN, "closeChannel", cb);
                expect_close(&svc, id, 410, 0);
        }
        ck_assert_int_gt(refused_at, 0);
        ck_assert_uint_eq(svc.n_fds, accepted);
        /* Now read everything, in order, counting the ends and how they came. */
        for (uint64_t c = 0; c < N + call - 1; c++) {
                uint8_t hb[WIRE_HDR_SIZE];
                wire_hdr h;

                ck_assert_int_eq(peer_read_groups(&cli, hb, sizeof hb, groups, &n_groups), 0);
                ck_assert_int_eq(wire_hdr_decode(hb, &h), 0);
                size_t rest = wire_names_len(&h) + h.body_len;
                char *rb = malloc(rest + 1);
                ck_assert_ptr_nonnull(rb);
                ck_assert_int_eq(peer_read_groups(&cli, rb, rest, groups, &n_groups), 0);
                ck_assert_int_eq(h.type, WIRE_RESULT);
                if (h.call_id == (uint64_t)refused_at) {
                        ck_assert_int_eq(h.status, 503);
                        ck_assert_int_eq(memcmp(rb + h.from_len + h.to_len,
                                                "no room in a send queue for the channel",
                                                h.member_len),
                                         0);
                } else
                        ck_assert_int_eq(h.status, 200);
                free(rb);
                results++;
        }
        unsigned ends = 0;
        for (unsigned i = 0; i < n_groups; i++)
                ends += groups[i];
        ck_assert_uint_eq(ends, accepted);
        ck_assert_uint_ge(n_groups, 1);
        ck_assert_uint_eq(groups[n_groups - 1], bound);    /* those that waited, all at once */
        ck_assert_uint_eq(accepted - bound, n_groups - 1); /* at most the first left at once */
        ck_assert_uint_le(accepted, bound + 1);
        /* read, the caller may open again */
        while (svc.n_fds)
                close(peer_take_fd(&svc));
        int a, b;
        opened(&cli, &svc, 99999, &a, &b);
        assert_pair(a, b);
        close(a);
        close(b);
        free(big);
        pair_stop(&t, &svc, &cli);
}

START_TEST(test_channel_pending_ends_per_peer)
{
        pending_ends("max_channels=2", 4);
}
END_TEST

START_TEST(test_channel_pending_ends_total)
{
        pending_ends("max_channels_total=1", 2);
}
END_TEST

/* ---------------------------------------------------------------- counters */

static int read_int(hyb_bus *bus, const char *furi)
{
        hyb_obj *o = NULL;
        hyb_error e;

        ck_assert_msg(hyb_bus_store_read(bus, furi, &o, &e) == 0, "%s: %s", furi, e.message);
        int v = (int)hyb_obj_get_int(o);
        hyb_obj_unref(o);
        return v;
}

/* /sys/bus/channels, /sys/bus/channels_refused and /sys/bus/endpoint/<app>/<runner>/channels
 * (doc/protocol.md). */
START_TEST(test_channel_counters)
{
        tbroker t;
        hyb_store *st = NULL;
        rpeer svc, cli, cli2;
        int fds[4];

        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        tb_start_store(&t, NULL, false, NULL, st);
        hyb_store_unref(st);
        hyb_bus *r = tb_connect(&t, "org.test.reader", "main");
        peer_connect(&svc, &t, "org.test.svc", "main");
        peer_connect(&cli, &t, "org.test.cli", "main");
        peer_connect(&cli2, &t, "org.test.cli2", "main");
        peer_register(&svc, "add", "*");
        ck_assert_int_eq(read_int(r, "/sys/bus/channels"), 0);
        opened(&cli, &svc, 1, &fds[0], &fds[1]);
        opened(&cli2, &svc, 1, &fds[2], &fds[3]);
        ck_assert_int_eq(read_int(r, "/sys/bus/channels"), 2);
        ck_assert_int_eq(read_int(r, "/sys/bus/channels_refused"), 0);
        /* refusals are counted, whatever their status: 409 (open already), 404 */
        ck_assert_int_eq(open_ch(&cli2, 2, svc.name, NULL), 409);
        ck_assert_int_eq(open_ch(&cli2, 3, "@localhost/org.test.none/main", NULL), 404);
        ck_assert_int_eq(read_int(r, "/sys/bus/channels_refused"), 2);
        ck_assert_int_eq(read_int(r, "/sys/bus/endpoint/org.test.svc/main/channels"), 2);
        ck_assert_int_eq(read_int(r, "/sys/bus/endpoint/org.test.cli/main/channels"), 1);
        ck_assert_int_eq(read_int(r, "/sys/bus/endpoint/org.test.reader/main/channels"), 0);
        peer_close(&cli);
        expect_close(&svc, 1, 410, 0);
        ck_assert_int_eq(read_int(r, "/sys/bus/channels"), 1);
        ck_assert_int_eq(read_int(r, "/sys/bus/endpoint/org.test.svc/main/channels"), 1);
        for (int i = 0; i < 4; i++)
                close(fds[i]);
        hyb_bus_unref(r);
        peer_close(&cli2);
        peer_close(&svc);
        tb_stop(&t);
}
END_TEST

/* ---------------------------------------------------------------- token sessions */

/*
 * A caller with a token (auth.tokens accept): the methods of a channel are those its token
 * may call, the callee is told its principal as on a CALL, and when the session ends (the
 * token revoked) the callee is told at once: close 403, grace 0.
 */
static void token_add_done(hyb_bus *bus, const hyb_bus_reply *rep, void *ud)
{
        *(int *)ud = hyb_bus_reply_get_status(rep);
}

/* The raw service's RESULT 200 of call id. */
static void peer_send_result(rpeer *p, uint64_t id, const char *body)
{
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        wire_hdr h = {.type = WIRE_RESULT, .status = 200, .call_id = id};
        int n = wire_build(&h, NULL, 0, NULL, 0, NULL, 0, body, strlen(body), buf, iov);
        size_t total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);

        ck_assert_int_eq(writev(p->fd, iov, n), (ssize_t)total);
}

START_TEST(test_channel_token_session)
{
        tbroker t;
        tsession ts;
        hyb_bus *bus = NULL;
        rpeer svc;
        rframe f;

        /* the token may call add of the service, and register on its own endpoint */
        tb_start_token_session(&t, &ts);

        peer_connect(&svc, &t, "org.test.svc", "main");
        peer_register(&svc, "add", "*");
        peer_register(&svc, "sub", "*");
        bus = tsession_connect(&t, &ts);
        /* The library asks for the channel itself with its second call to the service
         * (an openChannel the application makes is dropped: it could never use it). */
        for (int k = 0; k < 2; k++) {
                int got = 0;

                ck_assert_int_eq(hyb_bus_call_async(bus, svc.name, "add", "{}", 2, 0, 5000,
                                                    token_add_done, &got, NULL), 0);
                ck_assert_int_eq(hyb_bus_flush(bus), 0);
                for (;;) {
                        ck_assert_int_ge(peer_frame(&svc, &f, 5000), 0);
                        if (f.h.type == WIRE_CALL)
                                break;
                        rframe_free(&f);
                }
                peer_send_result(&svc, f.h.call_id, "{\"sum\":0}");
                rframe_free(&f);
                for (int i = 0; i < 500 && !got; i++) {
                        while (hyb_bus_process(bus) > 0)
                                ;
                        if (!got)
                                hyb_bus_wait(bus, 10000);
                }
                ck_assert_int_eq(got, 200);
        }

        expect_channel(&svc, "open", &f);
        uint64_t id = f.h.call_id;
        /* the caller info as on a CALL: "unix" NUL "alice" at the end of from */
        ck_assert_uint_eq(f.h.info_len, 10);
        ck_assert_uint_eq(f.h.from_len, strlen("@localhost/org.test.cli/main") + 10);
        ck_assert_int_eq(memcmp(f.from,
                                "@localhost/org.test.cli/main"
                                "unix\0alice",
                                f.h.from_len),
                         0);
        json_t *j = json_loads(f.body, 0, NULL);
        ck_assert_ptr_nonnull(j);
        json_t *m = json_object_get(j, "methods");
        ck_assert_uint_eq(json_array_size(m), 1); /* not "sub": the token may not call it */
        ck_assert_str_eq(json_string_value(json_array_get(m, 0)), "add");
        json_decref(j);
        rframe_free(&f);
        close(peer_take_fd(&svc));

        tb_revoke_all(&t);
        expect_close(&svc, id, 403, 0);

        hyb_bus_unref(bus);
        peer_close(&svc);
        tb_stop(&t);
        tsession_free(&ts);
}
END_TEST

/* No socket pair to be had (the process at its RLIMIT_NOFILE): 503 with the system's reason,
 * and the broker goes on (the next open, with room again, works). */
START_TEST(test_channel_no_socketpair)
{
        tbroker t;
        rpeer svc, cli;
        struct rlimit old, low;
        int a, b;

        pair_start(&t, NULL, false, &svc, &cli);
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
        /* The limit just above the highest fd in use, and every free number below it taken. */
        int top = 0;
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.' && atoi(e->d_name) > top)
                        top = atoi(e->d_name);
        closedir(d);
        low = old;
        low.rlim_cur = (rlim_t)top + 1;
        if (setrlimit(RLIMIT_NOFILE, &low) < 0) {
                /* valgrind keeps the limit to itself (and emulates the fd table): nothing
                 * to measure there */
                fprintf(stderr, "test_channel_no_socketpair: RLIMIT_NOFILE cannot be lowered "
                                "here (%s): not checked\n",
                        strerror(errno));
                pair_stop(&t, &svc, &cli);
                return;
        }
        size_t n_holes = 0, max_holes = 1u << 17;
        int *holes = malloc(sizeof(int) * max_holes), fd = 0;
        ck_assert_ptr_nonnull(holes);
        while (n_holes < max_holes && (fd = dup(0)) >= 0)
                holes[n_holes++] = fd;
        ck_assert_msg(fd < 0 && errno == EMFILE, "no fd limit reached");
        refused(&cli, 1, svc.name, 503, "no socket pair for the channel: ");
        for (size_t i = 0; i < n_holes; i++)
                close(holes[i]);
        free(holes);
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        opened(&cli, &svc, 2, &a, &b);
        assert_pair(a, b);
        close(a);
        close(b);
        pair_stop(&t, &svc, &cli);
}
END_TEST

/*
 * A service revokes a procedure: the channels it serves are closed (403, grace 0), so a
 * procedure registered again under narrower access lists is not reachable on a channel
 * opened under the old ones; a new open sees the new lists.
 */
START_TEST(test_channel_revoke_closes)
{
        tbroker t;
        rpeer svc, cli;
        int a, b;

        pair_start(&t, NULL, false, &svc, &cli);
        uint64_t id = opened(&cli, &svc, 1, &a, &b);
        peer_send_call(&svc, 2, BUILTIN, "revokeProcedure", "{\"methodName\":\"add\"}");
        expect_close(&svc, id, 403, 0); /* sent before the RESULT */
        ck_assert_int_eq(peer_result(&svc, 2, NULL), 200);
        expect_close(&cli, id, 403, 0);
        close(a);
        close(b);
        peer_register(&svc, "add", "org.test.other");
        refused(&cli, 3, svc.name, 403, "no procedure of @localhost/org.test.svc/main is open to the caller");
        pair_stop(&t, &svc, &cli);
}
END_TEST

/* ---------------------------------------------------------------- fairness between uids */

/*
 * A raw peer of another uid: the test's end of a socket pair whose other end the broker
 * adopts as a connection of uid (what its accept does with the uid SO_PEERCRED reports),
 * then the handshake as raw_connect's.
 */
static void peer_adopt(rpeer *p, tbroker *t, uid_t uid, const char *app, const char *runner)
{
        int sv[2], st;

        memset(p, 0, sizeof *p);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        tb_pause(t);
        bconn *c = bconn_adopt(t->broker, sv[0], uid, (gid_t)uid, getpid());
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(auth_challenge(c), 0);
        tb_resume(t);
        p->fd = sv[1];
        ck_assert_int_eq(raw_read_frame(p->fd, NULL, 5000), WIRE_CHALLENGE);
        char body[256];
        snprintf(body, sizeof body,
                 "{\"protocol\":\"HYBRID\",\"version\":1,\"app\":\"%s\",\"runner\":\"%s\"}", app,
                 runner);
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        wire_hdr h = {.type = WIRE_AUTH};
        int n = wire_build(&h, NULL, 0, NULL, 0, NULL, 0, body, strlen(body), buf, iov);
        ck_assert_int_eq(writev(p->fd, iov, n), (ssize_t)(iov[0].iov_len + iov[1].iov_len));
        ck_assert_int_eq(raw_read_frame(p->fd, &st, 5000), WIRE_AUTH_RESULT);
        ck_assert_int_eq(st, 200);
        snprintf(p->name, sizeof p->name, "@localhost/%s/%s", app, runner);
}

#define UID_A 4242001u
#define UID_B 4242002u
#define UID_C 4242003u
#define UID_D 4242004u

/*
 * limits.uid_max_channels_per_callee: of the channels one service serves, the callers of one
 * uid hold at most that many (however many connections they have); another uid still gets
 * one, the uid still gets one to another service, and a freed slot is the uid's again.
 */
START_TEST(test_channel_uid_per_callee)
{
        tbroker t;
        rpeer s[2], a[3], b1;
        kept_ends e = {.n = 0};

        tb_start(&t, "max_channels=8,uid_max_channels_per_callee=2", false);
        peers_start(&t, s, NULL, 2);
        for (int i = 0; i < 3; i++) {
                char app[32];

                snprintf(app, sizeof app, "org.test.a%d", i);
                peer_adopt(&a[i], &t, UID_A, app, "main");
        }
        peer_adopt(&b1, &t, UID_B, "org.test.b", "main");
        uint64_t id0 = opened_kept(&e, &a[0], &s[0], 1);
        opened_kept(&e, &a[1], &s[0], 1);
        refused(&a[2], 1, s[0].name, 429, "quota uid_max_channels_per_callee exceeded");
        opened_kept(&e, &b1, &s[0], 1);  /* another uid: the service has room (3 of 8) */
        opened_kept(&e, &a[2], &s[1], 2); /* the share is per service */
        /* a[0] closes its channel: the uid's slot at s[0] is free again */
        char body[64];
        snprintf(body, sizeof body, "{\"channel\":%llu}", (unsigned long long)id0);
        ck_assert_int_eq(peer_call(&a[0], 3, BUILTIN, "closeChannel", body, NULL), 200);
        expect_close(&s[0], id0, 410, 0);
        opened_kept(&e, &a[2], &s[0], 4);
        refused(&a[0], 5, s[0].name, 429, "quota uid_max_channels_per_callee exceeded");
        ends_close(&e);
        for (int i = 0; i < 3; i++)
                peer_close(&a[i]);
        peer_close(&b1);
        peer_close(&s[0]);
        peer_close(&s[1]);
        tb_stop(&t);
}
END_TEST

/* The default share is 16 (doc/config.md); 0 leaves only max_channels. */
static void uid_share(const char *limits, unsigned n_ok, const char *quota)
{
        tbroker t;
        rpeer s, a[20];

        tb_start(&t, limits, false);
        peers_start(&t, &s, NULL, 1);
        for (unsigned i = 0; i <= n_ok; i++) {
                char app[32];
                int x, y;

                snprintf(app, sizeof app, "org.test.a%u", i);
                peer_adopt(&a[i], &t, UID_A, app, "main");
                if (i < n_ok) {
                        opened(&a[i], &s, 1, &x, &y);
                        close(x);
                        close(y);
                } else {
                        refused(&a[i], 1, s.name, 429, quota);
                }
        }
        for (unsigned i = 0; i <= n_ok; i++)
                peer_close(&a[i]);
        peer_close(&s);
        tb_stop(&t);
}

START_TEST(test_channel_uid_per_callee_default)
{
        uid_share("max_channels=19", 16, "quota uid_max_channels_per_callee exceeded");
}
END_TEST

START_TEST(test_channel_uid_per_callee_off)
{
        uid_share("max_channels=5,uid_max_channels_per_callee=0", 5, "quota max_channels exceeded");
}
END_TEST

/* The share follows a reload like the other limits (the reload closes every channel). */
START_TEST(test_channel_uid_per_callee_reload)
{
        tbroker t;
        rpeer s, a[3];
        hyb_broker_config *cfg = NULL;
        hyb_error err;
        int x, y;

        tb_start(&t, "uid_max_channels_per_callee=1", false);
        peers_start(&t, &s, NULL, 1);
        for (int i = 0; i < 3; i++) {
                char app[32];

                snprintf(app, sizeof app, "org.test.a%d", i);
                peer_adopt(&a[i], &t, UID_A, app, "main");
        }
        uint64_t id = opened(&a[0], &s, 1, &x, &y);
        close(x);
        close(y);
        refused(&a[1], 1, s.name, 429, "quota uid_max_channels_per_callee exceeded");
        tb_pause(&t);
        ck_assert_int_eq(hyb_broker_config_new(&cfg), 0);
        ck_assert_int_eq(hyb_broker_config_set_socket(cfg, t.sock), 0);
        ck_assert_int_eq(hyb_broker_config_set_limit(cfg, "uid_max_channels_per_callee", 2), 0);
        ck_assert_int_eq(hyb_broker_reload(t.broker, cfg, &err), 0);
        hyb_broker_config_unref(cfg);
        tb_resume(&t);
        expect_close(&s, id, 503, 1000);
        expect_close(&a[0], id, 503, 1000);
        for (int i = 0; i < 2; i++) {
                opened(&a[i], &s, 2, &x, &y);
                close(x);
                close(y);
        }
        refused(&a[2], 2, s.name, 429, "quota uid_max_channels_per_callee exceeded");
        for (int i = 0; i < 3; i++)
                peer_close(&a[i]);
        peer_close(&s);
        tb_stop(&t);
}
END_TEST

/* ---------------------------------------------------------------- ends not received */

/*
 * The hostile peer h opens channels to svc and closes them again (closeChannel), never
 * reading its socket, at most max times: how many opens the broker accepted before the
 * first refusal.  A CALL h sends svc after each open tells when the broker has handled it
 * (it handles one peer's frames in order): an accepted open reached svc before it.
 */
static unsigned pin_ends(rpeer *h, rpeer *svc, unsigned max, uint64_t *call)
{
        unsigned accepted = 0;
        char body[256];

        snprintf(body, sizeof body, "{\"endpoint\":\"%s\"}", svc->name);
        for (unsigned i = 0; i < max; i++) {
                uint64_t id = 0;
                rframe f;

                peer_send_call(h, (*call)++, BUILTIN, "openChannel", body);
                peer_send_call(h, (*call)++, svc->name, "add", "{}");
                for (;;) {
                        ck_assert_int_ge(peer_frame(svc, &f, 10000), 0);
                        if (f.h.type == WIRE_CHANNEL && !strcmp(f.member, "open"))
                                id = f.h.call_id;
                        bool done = f.h.type == WIRE_CALL && !strcmp(f.member, "add");
                        rframe_free(&f);
                        if (done)
                                break;
                }
                while (svc->n_fds)
                        close(peer_take_fd(svc));
                if (!id)
                        break;
                accepted++;
                char cb[64];
                snprintf(cb, sizeof cb, "{\"channel\":%llu}", (unsigned long long)id);
                peer_send_call(h, (*call)++, BUILTIN, "closeChannel", cb);
                expect_close(svc, id, 410, 0);
        }
        return accepted;
}

/* p reads all it was sent (up to the answer of an echo): the ends received (closed), and
 * whether an open was refused for ends not received. */
static unsigned drain(rpeer *p, uint64_t *call, bool *refused_ends)
{
        uint64_t mark = (*call)++;
        unsigned n = 0;

        *refused_ends = false;
        peer_send_call(p, mark, BUILTIN, "echo", "{}");
        for (;;) {
                rframe f;

                ck_assert_int_ge(peer_frame(p, &f, 10000), 0);
                while (p->n_fds) {
                        close(peer_take_fd(p));
                        n++;
                }
                if (f.h.type == WIRE_RESULT && f.h.status == 503 &&
                    !strcmp(f.member, "too many channel ends not received"))
                        *refused_ends = true;
                bool done = f.h.type == WIRE_RESULT && f.h.call_id == mark;
                rframe_free(&f);
                if (done)
                        return n;
        }
}

/* Waits until the broker no longer knows p's endpoint (its connection was reaped). */
static void wait_gone(rpeer *asker, const char *name, uint64_t *call)
{
        for (int i = 0;; i++) {
                char *msg = NULL;
                int st = open_ch_msg(asker, (*call)++, name, &msg);

                free(msg);
                if (st == 404)
                        return;
                ck_assert_int_lt(i, 3000);
                usleep(10000);
        }
}

/* Lowers this process's soft RLIMIT_NOFILE to n (the old limits in *old, for the test to
 * set back): false, said on stderr as "test: not checked", where it cannot be set. */
static bool nofile_lower(struct rlimit *old, rlim_t n, const char *test)
{
        struct rlimit low;

        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, old), 0);
        low = *old;
        low.rlim_cur = n;
        if (old->rlim_cur < n || setrlimit(RLIMIT_NOFILE, &low) < 0) {
                fprintf(stderr, "%s: RLIMIT_NOFILE cannot be set to %llu here: not checked\n",
                        test, (unsigned long long)n);
                return false;
        }
        return true;
}

/*
 * Ends passed and not read, bounded against the daemon's RLIMIT_NOFILE (doc/protocol.md
 * "Ends not received"): with a soft limit of 128 the budget is 64, a uid's share 16, and
 * one peer takes twice max_channels (8 here).  Measured with peers that open and close
 * channels without reading: per peer, per uid (a connection the broker cut off while its
 * peer keeps the socket unread still counts, until the peer closes it), freed once read,
 * and in all (an open needs room for its two ends).
 */
START_TEST(test_channel_ends_unread)
{
        tbroker t;
        rpeer svc, cli, h[3], u[6];
        struct rlimit old;
        uint64_t call = 1;
        bool ref;
        int x, y;

        if (!nofile_lower(&old, 128, "test_channel_ends_unread"))
                return;
        pair_start(&t, "max_channels=4", false, &svc, &cli);
        for (int i = 0; i < 3; i++) {
                char app[32];

                snprintf(app, sizeof app, "org.test.h%d", i);
                peer_adopt(&h[i], &t, UID_A, app, "main");
        }
        /* per peer: 8; per uid: 16 */
        ck_assert_uint_eq(pin_ends(&h[0], &svc, 9, &call), 8);
        ck_assert_uint_eq(pin_ends(&h[1], &svc, 9, &call), 8);
        ck_assert_uint_eq(pin_ends(&h[2], &svc, 1, &call), 0);
        /* h[1] is cut off (a malformed frame) but keeps its socket unread: still uid A's */
        uint8_t junk[WIRE_HDR_SIZE];
        memset(junk, 0xff, sizeof junk);
        ck_assert_int_eq(write(h[1].fd, junk, sizeof junk), (ssize_t)sizeof junk);
        wait_gone(&cli, h[1].name, &call);
        ck_assert_uint_eq(pin_ends(&h[2], &svc, 1, &call), 0);
        /* closed by its peer: the kernel drops its ends, and the uid has room again */
        peer_close(&h[1]);
        ck_assert_uint_eq(pin_ends(&h[2], &svc, 9, &call), 8);
        /* h[0] reads: its 8 ends arrive (and the refusal), it may pin 8 again */
        ck_assert_uint_eq(drain(&h[0], &call, &ref), 8);
        ck_assert(ref);
        ck_assert_uint_eq(pin_ends(&h[0], &svc, 9, &call), 8);
        /* in all: 16 of uid A, 16 of B, 16 of C, then D until 63 (62 + the new two = 64) */
        for (int i = 0; i < 6; i++) {
                char app[32];

                snprintf(app, sizeof app, "org.test.u%d", i);
                peer_adopt(&u[i], &t, i < 2 ? UID_B : i < 4 ? UID_C : UID_D, app, "main");
        }
        for (int i = 0; i < 5; i++)
                ck_assert_uint_eq(pin_ends(&u[i], &svc, 9, &call), 8);
        ck_assert_uint_eq(pin_ends(&u[5], &svc, 9, &call), 7);
        refused(&cli, call++, svc.name, 503, "too many channel ends not received");
        /* u[5] reads its 7: another uid's caller gets its channel */
        ck_assert_uint_eq(drain(&u[5], &call, &ref), 7);
        opened(&cli, &svc, call++, &x, &y);
        assert_pair(x, y);
        close(x);
        close(y);
        for (int i = 0; i < 3; i++)
                peer_close(&h[i]);
        for (int i = 0; i < 6; i++)
                peer_close(&u[i]);
        pair_stop(&t, &svc, &cli);
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
END_TEST

/* cli closes channel id (closeChannel answered 200), svc is told (410), and cli then reads
 * all it was sent without an open refused for ends not received. */
static void closed_by_caller(rpeer *cli, rpeer *svc, uint64_t id, uint64_t *call)
{
        char cb[64];
        bool ref;

        snprintf(cb, sizeof cb, "{\"channel\":%llu}", (unsigned long long)id);
        ck_assert_int_eq(peer_call(cli, (*call)++, BUILTIN, "closeChannel", cb, NULL), 200);
        expect_close(svc, id, 410, 0);
        drain(cli, call, &ref);
        ck_assert(!ref);
}

/*
 * A service that reads every end passed to it but is rarely idle (here: one call from
 * another peer is waiting unread in its socket whenever a channel to it opens) has
 * received its ends all the same: opening and closing channels to it again and again,
 * far past twice max_channels, is never refused for ends not received.
 */
START_TEST(test_channel_ends_read_under_traffic)
{
        tbroker t;
        rpeer svc, cli, x;
        uint64_t call = 1;

        pair_start(&t, "max_channels=4", false, &svc, &cli);
        peer_connect(&x, &t, "org.test.x", "main");
        for (int i = 0; i < 3 * 8; i++) {
                struct pollfd pfd = { .fd = svc.fd, .events = POLLIN };
                int a, s;

                /* a call to svc that svc has not read yet when the open comes */
                peer_send_call(&x, call++, svc.name, "add", "{}");
                ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
                /* svc reads that call, then the open and its end (opened) */
                uint64_t id = opened(&cli, &svc, call++, &a, &s);
                assert_pair(a, s);
                close(a);
                close(s);
                closed_by_caller(&cli, &svc, id, &call);
        }
        peer_close(&x);
        pair_stop(&t, &svc, &cli);
}
END_TEST

/*
 * A service whose socket holds an unread call both when a channel to it opens and when it
 * closes, but which answers calls: the ends passed to it are seen read when its answer
 * comes (it read its socket before writing), so opens far past twice max_channels are never
 * refused for ends not received.
 */
START_TEST(test_channel_ends_read_answering)
{
        tbroker t;
        rpeer svc, cli, x;
        uint64_t call = 1;

        pair_start(&t, "max_channels=4", false, &svc, &cli);
        peer_connect(&x, &t, "org.test.x", "main");
        for (int i = 0; i < 3 * 8; i++) {
                struct pollfd pfd = { .fd = svc.fd, .events = POLLIN };
                uint64_t a_id = 0, a_x = call++, id;
                char *body = NULL;
                rframe f;
                int cfd, sfd;

                /* call A waits unread in svc's socket when the open comes */
                peer_send_call(&x, a_x, svc.name, "add", "{}");
                ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
                ck_assert_int_eq(open_ch(&cli, call++, svc.name, &body), 200);
                json_t *j = json_loads(body, 0, NULL);
                free(body);
                ck_assert_ptr_nonnull(j);
                id = (uint64_t)json_integer_value(json_object_get(j, "channel"));
                json_decref(j);
                /* svc reads A, then the open and its end */
                for (;;) {
                        ck_assert_int_ge(peer_frame(&svc, &f, 5000), 0);
                        bool open = f.h.type == WIRE_CHANNEL && !strcmp(f.member, "open");
                        if (f.h.type == WIRE_CALL)
                                a_id = f.h.call_id;
                        rframe_free(&f);
                        if (open)
                                break;
                }
                ck_assert_uint_ne(a_id, 0);
                cfd = peer_take_fd(&cli);
                sfd = peer_take_fd(&svc);
                assert_pair(cfd, sfd);
                close(cfd);
                close(sfd);
                /* svc, its socket read, answers A; x has the answer once the broker read it */
                peer_send_result(&svc, a_id, "{\"sum\":0}");
                ck_assert_int_eq(peer_result(&x, a_x, NULL), 200);
                /* call B waits unread in svc's socket when the channel closes (svc reads
                 * once the broker has answered the close) */
                peer_send_call(&x, call++, svc.name, "add", "{}");
                ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
                closed_by_caller(&cli, &svc, id, &call);
        }
        peer_close(&x);
        pair_stop(&t, &svc, &cli);
}
END_TEST

/*
 * The kernel's own bound on ends in flight: without CAP_SYS_RESOURCE, at most the daemon's
 * RLIMIT_NOFILE for its user, past which sendmsg fails (ETOOMANYREFS) and the ends are
 * lost.  The broker runs here as a uid of its own (real and effective; the saved uid stays
 * root to come back) with a soft limit of 64: a peer that opens and closes channels without
 * ever reading is refused at its uid's share of the budget (32 / 4 = 8), so another
 * caller still gets both ends of its channel.  Without the bound every one of the 192
 * opens was accepted and, past 64 in flight, channels came without their ends.
 */
START_TEST(test_channel_ends_kernel_limit)
{
        tbroker t;
        rpeer svc, cli, h;
        struct rlimit old;
        uint64_t call = 1;
        int x, y;

        if (geteuid() != 0) {
                fprintf(stderr, "test_channel_ends_kernel_limit: needs root to run the broker "
                                "as another uid: not checked\n");
                return;
        }
        if (!nofile_lower(&old, 64, "test_channel_ends_kernel_limit"))
                return;
        pair_start(&t, NULL, false, &svc, &cli);
        peer_adopt(&h, &t, UID_A, "org.test.h", "main");
        /* a uid nobody else uses: the kernel counts ends in flight per user */
        uid_t u = 2000000000u + (uid_t)(getpid() % 1000000);
        ck_assert_int_eq(setresuid(u, u, 0), 0);
        unsigned n = pin_ends(&h, &svc, 3 * 64, &call);
        opened(&cli, &svc, call++, &x, &y);
        assert_pair(x, y);
        ck_assert_int_eq(setresuid(0, 0, 0), 0);
        ck_assert_uint_eq(n, 8);
        close(x);
        close(y);
        peer_close(&h);
        pair_stop(&t, &svc, &cli);
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
END_TEST

void bus_tcase_channel(Suite *s)
{
        TCase *tc = tcase_create("channel");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_channel_open);
        tcase_add_test(tc, test_channel_refusals);
        tcase_add_test(tc, test_channel_off);
        tcase_add_test(tc, test_channel_max_per_conn);
        tcase_add_test(tc, test_channel_max_uid);
        tcase_add_test(tc, test_channel_max_total);
        tcase_add_test(tc, test_channel_monitor_closes);
        tcase_add_test(tc, test_channel_reload_closes);
        tcase_add_test(tc, test_channel_fd_behind_queue);
        tcase_add_test(tc, test_channel_pending_ends_per_peer);
        tcase_add_test(tc, test_channel_pending_ends_total);
        tcase_add_test(tc, test_channel_counters);
        tcase_add_test(tc, test_channel_token_session);
        tcase_add_test(tc, test_channel_no_socketpair);
        tcase_add_test(tc, test_channel_revoke_closes);
        tcase_add_test(tc, test_channel_uid_per_callee);
        tcase_add_test(tc, test_channel_uid_per_callee_default);
        tcase_add_test(tc, test_channel_uid_per_callee_off);
        tcase_add_test(tc, test_channel_uid_per_callee_reload);
        tcase_add_test(tc, test_channel_ends_unread);
        tcase_add_test(tc, test_channel_ends_read_under_traffic);
        tcase_add_test(tc, test_channel_ends_read_answering);
        tcase_add_test(tc, test_channel_ends_kernel_limit);
        suite_add_tcase(s, tc);
}
