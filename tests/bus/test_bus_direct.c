/* SPDX-License-Identifier: MIT */
/*
 * bus_suite, tcase "direct": direct channels, the library's side (doc/bus.md "Direct
 * channels").
 *
 * The service side is driven by a small stand-in broker of this file (fb_*): it takes
 * the service's connection, answers its builtin calls, and hands it a CHANNEL open
 * with one end of a socketpair attached, as the broker does; the test holds the other
 * end and plays the caller, a hostile one too (it writes whatever it likes on it).
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/bus-internal.h"
#include "bus/wire.h"
#include "hybrid/endpoint.h"
#include "suites.h"
#include "test_bus.h"
#include "testutil.h"

#define SVC_NAME "@localhost/org.test.svc/main"
#define CALLER_NAME "@localhost/org.test.caller/main"

/* ---------------------------------------------------------------- a stand-in broker */

typedef struct fbroker {
        char *dir;
        char sock[256];
        int lfd, conn;
        pthread_t thread;
        pthread_mutex_t wlock; /* one frame per sendmsg, from either thread */
        atomic_bool stop;
        atomic_int n_calls; /* builtin calls the service made */
} fbroker;

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        ck_assert_ptr_nonnull(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

/* Writes one frame (with fd attached when fd >= 0) as one sendmsg: true if all of it went. */
static bool frame_try_send(int sock, pthread_mutex_t *lock, wire_hdr *h, const char *from,
                           size_t from_len, const char *member, const void *body, size_t len,
                           int fd)
{
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        union {
                struct cmsghdr align;
                char b[CMSG_SPACE(sizeof(int))];
        } cm;
        int n = wire_build(h, from, from_len, NULL, 0, member, member ? strlen(member) : 0, body,
                           len, buf, iov);
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        size_t total = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);

        if (fd >= 0) {
                memset(&cm, 0, sizeof cm);
                mh.msg_control = cm.b;
                mh.msg_controllen = sizeof cm.b;
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof fd);
        }
        if (lock)
                pthread_mutex_lock(lock);
        ssize_t w = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (lock)
                pthread_mutex_unlock(lock);
        return w == (ssize_t)total;
}

static void frame_send(int sock, pthread_mutex_t *lock, wire_hdr *h, const char *from,
                       size_t from_len, const char *member, const void *body, size_t len, int fd)
{
        ck_assert_msg(frame_try_send(sock, lock, h, from, from_len, member, body, len, fd),
                      "sendmsg: %s", strerror(errno));
}

/* Reads one frame: 0 with *h and (malloc'd) names + body, or -1 at EOF / after 30 s. */
static int frame_read(int fd, wire_hdr *h, char **rest)
{
        uint8_t hb[WIRE_HDR_SIZE];

        *rest = NULL;
        if (raw_read_exact(fd, hb, sizeof hb, 30000) < 0 || wire_hdr_decode(hb, h) < 0)
                return -1;
        size_t n = wire_frame_len(h) - WIRE_HDR_SIZE;
        *rest = malloc(n + 1);
        ck_assert_ptr_nonnull(*rest);
        if (raw_read_exact(fd, *rest, n, 30000) < 0) {
                free(*rest);
                *rest = NULL;
                return -1;
        }
        (*rest)[n] = 0;
        return 0;
}

static void *fb_main(void *ud)
{
        fbroker *fb = ud;
        wire_hdr h;
        char *rest;

        while (!atomic_load(&fb->stop)) {
                struct pollfd p = { .fd = fb->conn, .events = POLLIN };
                if (poll(&p, 1, 50) <= 0)
                        continue;
                if (frame_read(fb->conn, &h, &rest) < 0)
                        break;
                if (h.type == WIRE_CALL) {
                        wire_hdr r = { .type = WIRE_RESULT, .status = 200, .call_id = h.call_id };
                        atomic_fetch_add(&fb->n_calls, 1);
                        /* the service may be gone already (a revoke as it closes) */
                        if (!frame_try_send(fb->conn, &fb->wlock, &r, HYB_BUS_BUILTIN_ENDPOINT,
                                            strlen(HYB_BUS_BUILTIN_ENDPOINT), NULL, "{}", 2, -1)) {
                                free(rest);
                                break;
                        }
                }
                free(rest);
        }
        return NULL;
}

static void *fb_accept(void *ud)
{
        fbroker *fb = ud;
        wire_hdr h = { .type = WIRE_CHALLENGE };
        const char *ch = "{\"protocol\":\"HYBRID\",\"version\":1,\"maxBody\":1048576}";
        const char *res = "{\"endpoint\":\"" SVC_NAME "\"}";
        char *rest;

        fb->conn = accept4(fb->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fb->conn < 0)
                return NULL;
        frame_send(fb->conn, NULL, &h, NULL, 0, NULL, ch, strlen(ch), -1);
        if (frame_read(fb->conn, &h, &rest) < 0 || h.type != WIRE_AUTH) {
                free(rest);
                return NULL;
        }
        free(rest);
        h = (wire_hdr){ .type = WIRE_AUTH_RESULT, .status = 200 };
        frame_send(fb->conn, NULL, &h, NULL, 0, NULL, res, strlen(res), -1);
        return fb_main(fb);
}

/* The service's connection to a stand-in broker (served on its own thread). */
static hyb_bus *fb_start(fbroker *fb)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        hyb_bus_connect_options o;
        hyb_bus *bus = NULL;
        hyb_error err;

        memset(fb, 0, sizeof *fb);
        fb->dir = test_tmpdir();
        snprintf(fb->sock, sizeof fb->sock, "%s/fb.sock", fb->dir);
        strcpy(sa.sun_path, fb->sock);
        fb->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fb->lfd, 0);
        ck_assert_int_eq(bind(fb->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(fb->lfd, 4), 0);
        pthread_mutex_init(&fb->wlock, NULL);
        ck_assert_int_eq(pthread_create(&fb->thread, NULL, fb_accept, fb), 0);
        hyb_bus_connect_options_init(&o);
        o.path = fb->sock;
        o.app = "org.test.svc";
        o.runner = "main";
        ck_assert_msg(hyb_bus_connect_with(&o, &bus, &err) == 0, "%s", err.message);
        return bus;
}

static void fb_stop(fbroker *fb)
{
        atomic_store(&fb->stop, true);
        pthread_join(fb->thread, NULL);
        close(fb->conn);
        close(fb->lfd);
        pthread_mutex_destroy(&fb->wlock);
        test_rmrf(fb->dir);
        free(fb->dir);
}

/*
 * Opens channel id to the service as the broker does: a CHANNEL open carrying one end
 * of a socketpair.  Returns the caller's end.
 */
static int fb_open_x(fbroker *fb, uint64_t id, const char *methods_json, int max_pending,
                     int max_queue, int max_body, const char *extra);

static int fb_open(fbroker *fb, uint64_t id, const char *methods_json, int max_pending,
                   int max_queue, int max_body)
{
        return fb_open_x(fb, id, methods_json, max_pending, max_queue, max_body, "");
}

/* As fb_open, extra (",\"key\":value..." or "") ending the open's body. */
static int fb_open_x(fbroker *fb, uint64_t id, const char *methods_json, int max_pending,
                     int max_queue, int max_body, const char *extra)
{
        int sp[2];
        char body[512];
        /* the caller's name, then its info "<transport>\0<principal>" */
        static const char from[] = CALLER_NAME "unix\0";
        size_t from_len = sizeof from - 1, info_len = 5;
        wire_hdr h = { .type = WIRE_CHANNEL, .call_id = id, .aux = 4242,
                       .info_len = (uint16_t)info_len };

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        snprintf(body, sizeof body,
                 "{\"methods\":%s,\"max_pending\":%d,\"max_queue\":%d,\"max_body\":%d%s}",
                 methods_json, max_pending, max_queue, max_body, extra);
        frame_send(fb->conn, &fb->wlock, &h, from, from_len, "open", body, strlen(body), sp[1]);
        close(sp[1]);
        return sp[0];
}

static void fb_close(fbroker *fb, uint64_t id, int status, int grace_ms)
{
        char body[128];
        wire_hdr h = { .type = WIRE_CHANNEL, .call_id = id, .status = (uint16_t)status };

        snprintf(body, sizeof body, "{\"reason\":\"test\",\"grace_ms\":%d}", grace_ms);
        frame_send(fb->conn, &fb->wlock, &h, NULL, 0, "close", body, strlen(body), -1);
}

/* The caller's CALL on its channel end. */
static void ch_call(int fd, uint64_t id, const char *method, const char *json)
{
        wire_hdr h = { .type = WIRE_CALL, .call_id = id, .timeout_ms = 30000 };

        frame_send(fd, NULL, &h, NULL, 0, method, json, strlen(json), -1);
}

/* Reads the RESULT of call id: its status; *ret_body (malloc'd names + body) if asked. */
static int ch_result(int fd, uint64_t id, char **ret_rest, wire_hdr *ret_h)
{
        wire_hdr h;
        char *rest;

        ck_assert_int_eq(frame_read(fd, &h, &rest), 0);
        ck_assert_int_eq(h.type, WIRE_RESULT);
        ck_assert_uint_eq(h.call_id, id);
        if (ret_h)
                *ret_h = h;
        if (ret_rest)
                *ret_rest = rest;
        else
                free(rest);
        return h.status;
}

/* Waits for EOF on the caller's end (the service closed its end): true if it came. */
static bool ch_eof(int fd)
{
        char buf[4096];

        for (int i = 0; i < 3000; i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 10) < 0)
                        return false;
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n == 0)
                        return true;
                if (n < 0 && errno != EAGAIN)
                        return true;
        }
        return false;
}

/* ---------------------------------------------------------------- the service */

static atomic_int n_add, n_secret, n_cancelled;
static char seen_caller[128];
static uid_t seen_uid;
static char seen_transport[16];
static hyb_bus_request *held[8];
static atomic_int n_held;

static int on_add(hyb_bus_request *req, void *ud)
{
        size_t len;
        const char *body = hyb_bus_request_get_body(req, &len);
        json_t *j = json_loadb(body, len, 0, NULL);
        const char *tr = NULL;
        char out[64];
        int n = snprintf(out, sizeof out, "{\"sum\":%lld}",
                         (long long)(json_integer_value(json_object_get(j, "a")) +
                                     json_integer_value(json_object_get(j, "b"))));

        json_decref(j);
        snprintf(seen_caller, sizeof seen_caller, "%s", hyb_bus_request_get_caller(req));
        hyb_bus_request_get_caller_uid(req, &seen_uid);
        hyb_bus_request_get_caller_principal(req, &tr, NULL);
        snprintf(seen_transport, sizeof seen_transport, "%s", tr ? tr : "");
        atomic_fetch_add(&n_add, 1);
        return hyb_bus_request_reply(req, 200, out, (size_t)n, HYB_BODY_JSON);
}

static int on_secret(hyb_bus_request *req, void *ud)
{
        atomic_fetch_add(&n_secret, 1);
        return 0;
}

static void on_cancel(hyb_bus_request *req, void *ud)
{
        atomic_fetch_add(&n_cancelled, 1);
}

/* Keeps the request unanswered (a deferred reply) until the test answers it. */
static int on_hold(hyb_bus_request *req, void *ud)
{
        int i = atomic_fetch_add(&n_held, 1);

        ck_assert_int_lt(i, 8);
        held[i] = hyb_bus_request_ref(req);
        hyb_bus_request_set_cancel_handler(req, on_cancel, NULL);
        return 0;
}

static int on_big(hyb_bus_request *req, void *ud)
{
        static char big[64 * 1024];

        memset(big, 'x', sizeof big);
        return hyb_bus_request_reply(req, 200, big, sizeof big, HYB_BODY_BINARY);
}

static const hyb_arg_policy add_args[] = {
        { "a", HYB_JSON_INTEGER, 1 },
        { "b", HYB_JSON_INTEGER, 1 },
};

static hyb_slot *secret_slot;

static void count_reply(hyb_bus *bus, const hyb_bus_reply *rep, void *ud)
{
        atomic_fetch_add((atomic_int *)ud, 1);
}

/* The handlers' counters back to 0, as each test starts its service. */
static void reset_counts(void)
{
        atomic_store(&n_add, 0);
        atomic_store(&n_secret, 0);
        atomic_store(&n_cancelled, 0);
        atomic_store(&n_held, 0);
}

/* svc offers add (a and b integers), served by on_add. */
static void register_add(hyb_bus *svc)
{
        hyb_error err;

        ck_assert_int_eq(hyb_endpoint_register_method(svc, "add", add_args, 2, NULL, NULL, 0, on_add,
                                                      NULL, NULL, &err), 0);
}

/* svc offers hold (held, answered by the test), served by on_hold. */
static void register_hold(hyb_bus *svc)
{
        hyb_error err;

        ck_assert_int_eq(hyb_endpoint_register_method(svc, "hold", NULL, 0, NULL, NULL, 0, on_hold,
                                                      NULL, NULL, &err), 0);
}

/* svc offers secret to app only (NULL: to all), its slot kept in secret_slot. */
static void register_secret(hyb_bus *svc, const char *app)
{
        hyb_error err;

        ck_assert_int_eq(hyb_endpoint_register_method(svc, "secret", NULL, 0, NULL, app, 0,
                                                      on_secret, NULL, &secret_slot, &err), 0);
}

static hyb_bus *svc_setup(fbroker *fb, tsvc *s)
{
        hyb_error err;
        hyb_bus *svc = fb_start(fb);

        reset_counts();
        register_add(svc);
        register_secret(svc, NULL);
        register_hold(svc);
        ck_assert_int_eq(hyb_endpoint_register_method(svc, "big", NULL, 0, NULL, NULL, 0, on_big,
                                                      NULL, NULL, &err), 0);
        svc_start(s, svc);
        return svc;
}

static void svc_teardown(fbroker *fb, tsvc *s, hyb_bus *svc)
{
        svc_stop(s);
        for (int i = 0; i < atomic_load(&n_held); i++)
                hyb_bus_request_unref(held[i]);
        hyb_slot_unref(secret_slot);
        secret_slot = NULL;
        hyb_bus_unref(svc);
        fb_stop(fb);
}

/*
 * Waits until *n reaches want (at most 3000 naps of 1 ms, pumping the caller's bus c in
 * each when c is not NULL), then checks it is exactly want.
 */
static void wait_count(atomic_int *n, int want, hyb_bus *c)
{
        for (int i = 0; i < 3000 && atomic_load(n) < want; i++) {
                if (c)
                        hyb_bus_process(c);
                usleep(1000);
        }
        ck_assert_int_eq(atomic_load(n), want);
}

/* Answers the first held call 200 {} (with the service's thread stopped meanwhile). */
static void reply_held(tsvc *s, hyb_bus *svc)
{
        svc_stop(s);
        ck_assert_int_eq(hyb_bus_request_reply(held[0], 200, "{}", 2, HYB_BODY_JSON), 0);
        svc_start(s, svc);
}

/* A call of add on a channel the broker closed: refused 403 "direct channel closed: test". */
static void ch_expect_closed(int fd, uint64_t id, const char *json)
{
        char *rest;
        wire_hdr h;

        ch_call(fd, id, "add", json);
        ck_assert_int_eq(ch_result(fd, id, &rest, &h), 403);
        ck_assert_mem_eq(rest + h.from_len, "direct channel closed: test", h.member_len);
        free(rest);
}

/*
 * Channel id (hold and add) whose call 1, a hold, the service holds; then the broker
 * closes the channel with status and grace_ms.  Returns the caller's end.
 */
static int hold_then_close(fbroker *fb, uint64_t id, int status, int grace_ms)
{
        int fd = fb_open(fb, id, "[\"hold\",\"add\"]", 4, 1 << 20, 1 << 20);

        ch_call(fd, 1, "hold", "{}");
        wait_count(&n_held, 1, NULL);
        fb_close(fb, id, status, grace_ms);
        return fd;
}

/*
 * On the channel of hold_then_close (caller's end fd): a new call 2 (add of json) is
 * refused and does not run (n_add stays n_add_was); the held call 1 is still answered on
 * the channel, then the service closes its end.  fd is closed here.
 */
static void closed_refuses_then_drains(tsvc *s, hyb_bus *svc, int fd, const char *json,
                                       int n_add_was)
{
        ch_expect_closed(fd, 2, json);
        ck_assert_int_eq(atomic_load(&n_add), n_add_was);
        reply_held(s, svc);
        ck_assert_int_eq(ch_result(fd, 1, NULL, NULL), 200);
        ck_assert(ch_eof(fd));
        close(fd);
}

/*
 * A CALL on the channel runs the handler as a broker CALL would: the caller's name,
 * uid and transport are the ones the broker named when it opened the channel, and the
 * answer comes back on the channel, from the service's name.  A method the broker did
 * not list gets 403 and its handler never runs; a body the argument policy refuses
 * gets 400.  None of it passes through the broker connection.
 */
START_TEST(test_service_dispatch_and_checks)
{
        fbroker fb;
        tsvc s;
        hyb_bus *svc = svc_setup(&fb, &s);
        int calls_before = atomic_load(&fb.n_calls);
        int fd = fb_open(&fb, 7, "[\"ADD\",\"hold\",\"big\"]", 4, 1 << 20, 1 << 20);
        wire_hdr h;
        char *rest;

        ch_call(fd, 1, "add", "{\"a\":1,\"b\":2}");
        ck_assert_int_eq(ch_result(fd, 1, &rest, &h), 200);
        ck_assert_uint_eq(h.from_len, strlen(SVC_NAME));
        ck_assert_mem_eq(rest, SVC_NAME, h.from_len);
        ck_assert_str_eq(rest + h.from_len + h.member_len, "{\"sum\":3}");
        free(rest);
        ck_assert_str_eq(seen_caller, CALLER_NAME);
        ck_assert_uint_eq(seen_uid, 4242);
        ck_assert_str_eq(seen_transport, "unix");

        /* not on the channel's list (registered, so the broker path would run it) */
        ch_call(fd, 2, "secret", "{}");
        ck_assert_int_eq(ch_result(fd, 2, NULL, NULL), 403);
        ck_assert_int_eq(atomic_load(&n_secret), 0);
        /* argument policy */
        ch_call(fd, 3, "add", "{\"a\":\"x\",\"b\":2}");
        ck_assert_int_eq(ch_result(fd, 3, NULL, NULL), 400);
        ck_assert_int_eq(atomic_load(&n_add), 1);
        /* the broker saw none of these */
        ck_assert_int_eq(atomic_load(&fb.n_calls), calls_before);
        close(fd);
        svc_teardown(&fb, &s, svc);
}
END_TEST

/*
 * max_pending: a caller with that many calls unanswered on its channel gets 429 for the
 * next; once one is answered, calls run again.  A CANCEL on the channel reaches the
 * handler's cancel callback, and only for the call on that channel.
 */
START_TEST(test_service_max_pending_and_cancel)
{
        fbroker fb;
        tsvc s;
        hyb_bus *svc = svc_setup(&fb, &s);
        int fd = fb_open(&fb, 8, "[\"hold\",\"add\"]", 2, 1 << 20, 1 << 20);
        wire_hdr c = { .type = WIRE_CANCEL, .call_id = 1 };

        ch_call(fd, 1, "hold", "{}");
        ch_call(fd, 2, "hold", "{}");
        ch_call(fd, 3, "add", "{\"a\":1,\"b\":1}");
        ck_assert_int_eq(ch_result(fd, 3, NULL, NULL), 429);
        ck_assert_int_eq(atomic_load(&n_held), 2);
        ck_assert_int_eq(atomic_load(&n_add), 0);
        /* the cancel frees a place */
        frame_send(fd, NULL, &c, NULL, 0, NULL, NULL, 0, -1);
        wait_count(&n_cancelled, 1, NULL);
        ch_call(fd, 4, "add", "{\"a\":1,\"b\":1}");
        ck_assert_int_eq(ch_result(fd, 4, NULL, NULL), 200);
        close(fd);
        svc_teardown(&fb, &s, svc);
}
END_TEST

/*
 * The broker's close: calls the service accepted before are answered, a CALL read
 * after the grace gets 403 "direct channel closed: <reason>", and the service closes
 * its end once nothing is pending, whatever the caller does.  Its fd is gone then:
 * the process holds as many fds as before the channel opened.
 */
START_TEST(test_service_close)
{
        fbroker fb;
        tsvc s;
        hyb_bus *svc = svc_setup(&fb, &s);
        int fds0 = count_fds();
        int fd = hold_then_close(&fb, 9, 403, 0);

        /* the held call is still answered on it, then the service's end closes, the
         * caller's staying open */
        closed_refuses_then_drains(&s, svc, fd, "{\"a\":1,\"b\":1}", 0);
        ck_assert_int_eq(count_fds(), fds0);
        svc_teardown(&fb, &s, svc);
}
END_TEST

/*
 * uid_max_pending: one uid's connections, each with its own channel to the service,
 * cannot keep more calls pending there in all than the broker lets one uid keep pending
 * through it (limits.uid_max_pending_calls): one more is 429 and its handler does not run,
 * while each channel is still below its own max_pending.  Once one is answered, that
 * uid's calls run again.
 */
START_TEST(test_service_uid_max_pending)
{
        fbroker fb;
        tsvc s;
        hyb_bus *svc = svc_setup(&fb, &s);
        /* the same caller uid (4242) on both, as two connections of one user */
        int fd1 = fb_open_x(&fb, 30, "[\"hold\",\"add\"]", 4, 1 << 20, 1 << 20,
                            ",\"uid_max_pending\":3");
        int fd2 = fb_open_x(&fb, 31, "[\"hold\",\"add\"]", 4, 1 << 20, 1 << 20,
                            ",\"uid_max_pending\":3");

        ch_call(fd1, 1, "hold", "{}");
        ch_call(fd1, 2, "hold", "{}");
        ch_call(fd2, 1, "hold", "{}");
        wait_count(&n_held, 3, NULL);
        ch_call(fd2, 2, "add", "{\"a\":1,\"b\":1}");
        ck_assert_int_eq(ch_result(fd2, 2, NULL, NULL), 429);
        ch_call(fd1, 3, "add", "{\"a\":1,\"b\":1}");
        ck_assert_int_eq(ch_result(fd1, 3, NULL, NULL), 429);
        ck_assert_int_eq(atomic_load(&n_add), 0);
        reply_held(&s, svc);
        ck_assert_int_eq(ch_result(fd1, 1, NULL, NULL), 200);
        ch_call(fd2, 3, "add", "{\"a\":1,\"b\":1}");
        ck_assert_int_eq(ch_result(fd2, 3, NULL, NULL), 200);
        ck_assert_int_eq(atomic_load(&n_add), 1);
        close(fd1);
        close(fd2);
        svc_teardown(&fb, &s, svc);
}
END_TEST

/*
 * fds are claimed in order by the frames that carry them, and one may come ahead of its
 * frame (on the bytes of an earlier one).  The late answer of a call given up here that
 * is not an openChannel (a store read whose data has a "channel" key) must not take it:
 * the CHANNEL open that follows gets its end and serves its caller.
 */
START_TEST(test_service_late_answer_keeps_fd)
{
        fbroker fb;
        tsvc s;
        hyb_bus *svc = svc_setup(&fb, &s);
        static const char from[] = CALLER_NAME "unix\0";
        const char *late = "{\"channel\":5,\"note\":\"user data\"}";
        const char *open = "{\"methods\":[\"add\"],\"max_pending\":4,\"max_queue\":1048576,"
                           "\"max_body\":1048576}";
        wire_hdr r = { .type = WIRE_RESULT, .status = 200, .call_id = 4242 };
        wire_hdr o = { .type = WIRE_CHANNEL, .call_id = 40, .aux = 4242, .info_len = 5 };
        int sp[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        /* the end rides on the late answer's bytes, its open comes next */
        frame_send(fb.conn, &fb.wlock, &r, HYB_BUS_BUILTIN_ENDPOINT,
                   strlen(HYB_BUS_BUILTIN_ENDPOINT), NULL, late, strlen(late), sp[1]);
        close(sp[1]);
        frame_send(fb.conn, &fb.wlock, &o, from, sizeof from - 1, "open", open, strlen(open), -1);
        ch_call(sp[0], 1, "add", "{\"a\":2,\"b\":3}");
        ck_assert_int_eq(ch_result(sp[0], 1, NULL, NULL), 200);
        ck_assert_int_eq(atomic_load(&n_add), 1);
        close(sp[0]);
        svc_teardown(&fb, &s, svc);
}
END_TEST

/*
 * An end the broker could not pass (the kernel refuses SCM_RIGHTS past the daemon's
 * RLIMIT_NOFILE of ends in flight, ETOOMANYREFS, and the frame goes without it) must not
 * be made up by the next end received, which came early for a LATER channel: that
 * channel's caller would be served under the identity (name, uid) and method list of
 * the first.  Each frame names its end's inode: channel 50's never came, so 50 does not
 * open; channel 51 gets its own end and its caller is seen as itself.
 */
START_TEST(test_service_end_matches_its_frame)
{
        fbroker fb;
        tsvc s;
        hyb_bus *svc = svc_setup(&fb, &s);
        static const char victim[] = "@localhost/org.test.victim/main" "unix\0";
        static const char from[] = CALLER_NAME "unix\0";
        wire_hdr o50 = { .type = WIRE_CHANNEL, .call_id = 50, .aux = 1111, .info_len = 5 };
        wire_hdr o51 = { .type = WIRE_CHANNEL, .call_id = 51, .aux = 4242, .info_len = 5 };
        int lost[2], sp[2];
        struct stat st_lost, st_sp;
        char b50[256], b51[256];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, lost), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        ck_assert_int_eq(fstat(lost[1], &st_lost), 0);
        ck_assert_int_eq(fstat(sp[1], &st_sp), 0);
        snprintf(b50, sizeof b50, "{\"methods\":[\"add\"],\"max_pending\":4,\"max_queue\":1048576,"
                 "\"max_body\":1048576,\"ino\":%llu}", (unsigned long long)st_lost.st_ino);
        snprintf(b51, sizeof b51, "{\"methods\":[\"add\"],\"max_pending\":4,\"max_queue\":1048576,"
                 "\"max_body\":1048576,\"ino\":%llu}", (unsigned long long)st_sp.st_ino);
        /* 50's end is not passed; 51's rides ahead, on 50's bytes */
        frame_send(fb.conn, &fb.wlock, &o50, victim, sizeof victim - 1, "open", b50, strlen(b50),
                   sp[1]);
        close(sp[1]);
        frame_send(fb.conn, &fb.wlock, &o51, from, sizeof from - 1, "open", b51, strlen(b51), -1);
        ch_call(sp[0], 1, "add", "{\"a\":2,\"b\":3}");
        ck_assert_int_eq(ch_result(sp[0], 1, NULL, NULL), 200);
        ck_assert_str_eq(seen_caller, CALLER_NAME);
        ck_assert_uint_eq(seen_uid, 4242);
        close(sp[0]);
        close(lost[0]);
        close(lost[1]);
        svc_teardown(&fb, &s, svc);
}
END_TEST

/*
 * A soft close (503 with a grace: a monitor attached, the configuration reloaded) lets
 * no new call run on the channel: a hostile caller that goes on writing on its end
 * during the grace gets 403 "direct channel closed" (its library sends such a call
 * again through the broker, which checks it under the new policy or shows it to the
 * monitor), never the handler run under the old check.  What was accepted before is
 * answered, then the service closes its end without waiting for the grace to end.
 */
START_TEST(test_service_soft_close_refuses_new_calls)
{
        fbroker fb;
        tsvc s;
        hyb_bus *svc = svc_setup(&fb, &s);
        int fd = hold_then_close(&fb, 20, 503, 60000);
        int fd2;

        /* frames from the broker are read in order: once channel 21 answers, the
         * service has read the close of channel 20 */
        fd2 = fb_open(&fb, 21, "[\"add\"]", 4, 1 << 20, 1 << 20);
        ch_call(fd2, 1, "add", "{\"a\":1,\"b\":1}");
        ck_assert_int_eq(ch_result(fd2, 1, NULL, NULL), 200);
        ck_assert_int_eq(atomic_load(&n_add), 1);

        /* the call accepted before the close is answered, then the end closes (the
         * grace of 60 s is not waited for) */
        closed_refuses_then_drains(&s, svc, fd, "{\"a\":2,\"b\":2}", 1);
        close(fd2);
        svc_teardown(&fb, &s, svc);
}
END_TEST

/*
 * A caller that never reads its answers: the output queued for it grows past max_queue
 * and the service closes the channel (no more than that is kept for it), while it goes
 * on serving another channel.  A malformed frame closes a channel too.
 */
START_TEST(test_service_max_queue_and_garbage)
{
        fbroker fb;
        tsvc s;
        hyb_bus *svc = svc_setup(&fb, &s);
        int fds0 = count_fds();
        int slow = fb_open(&fb, 10, "[\"big\"]", 1000, 256 * 1024, 1 << 20);
        int bad = fb_open(&fb, 11, "[\"add\"]", 4, 1 << 20, 1 << 20);
        int good = fb_open(&fb, 12, "[\"add\"]", 4, 1 << 20, 1 << 20);
        int big = fb_open(&fb, 13, "[\"add\"]", 4, 1 << 20, 1 << 20);
        uint8_t junk[WIRE_HDR_SIZE];
        size_t queued_max = 0;
        bool opened = false;

        /* the service has read the open of channel 10 (else the loop below finds no record
         * at once, and ch_eof reads the answers as they come: the queue never grows) */
        for (int i = 0; i < 3000 && !opened; i++) {
                svc_stop(&s);
                for (bus_chan *ch = svc->chans; ch; ch = ch->next)
                        opened = opened || ch->id == 10;
                svc_start(&s, svc);
                if (!opened)
                        usleep(1000);
        }
        ck_assert(opened);
        /* 64 KiB answers, never read: the socket buffers fill, then the queue */
        for (uint64_t id = 1; id <= 200; id++) {
                wire_hdr h = { .type = WIRE_CALL, .call_id = id, .timeout_ms = 30000 };
                uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                struct iovec iov[2];
                int n = wire_build(&h, NULL, 0, NULL, 0, "big", 3, "{}", 2, buf, iov);
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
                if (sendmsg(slow, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                        break; /* the service closed it already (or we are the slow one) */
        }
        /* the service's record of it goes: every byte it held for it is let go */
        for (int i = 0; i < 3000; i++) {
                bool found = false;
                svc_stop(&s);
                for (bus_chan *ch = svc->chans; ch; ch = ch->next)
                        if (ch->id == 10) {
                                found = true;
                                if (ch->wlen - ch->wpos > queued_max)
                                        queued_max = ch->wlen - ch->wpos;
                        }
                svc_start(&s, svc);
                if (!found)
                        break;
                usleep(1000);
        }
        ck_assert_uint_le(queued_max, 256 * 1024);
        ck_assert(ch_eof(slow));
        close(slow);

        memset(junk, 0xff, sizeof junk);
        ck_assert_int_eq(write(bad, junk, sizeof junk), (ssize_t)sizeof junk);
        ck_assert(ch_eof(bad));
        close(bad);

        /* a call body one byte past WIRE_CHANNEL_MAX_BODY (64 KiB), though the broker's
         * open said 1 MiB: the service closes the channel at its header, holding none of it */
        {
                wire_hdr h = { .type = WIRE_CALL, .call_id = 1, .timeout_ms = 30000,
                               .member_len = 3, .body_len = 64 * 1024 + 1 };
                uint8_t hb[WIRE_HDR_SIZE + 3];
                wire_hdr_encode(&h, hb);
                memcpy(hb + WIRE_HDR_SIZE, "add", 3);
                ck_assert_int_eq(write(big, hb, sizeof hb), (ssize_t)sizeof hb);
                ck_assert(ch_eof(big));
                close(big);
        }

        ch_call(good, 1, "add", "{\"a\":2,\"b\":2}");
        ck_assert_int_eq(ch_result(good, 1, NULL, NULL), 200);
        close(good);
        ck_assert(hyb_bus_is_open(svc));
        svc_stop(&s);
        while (hyb_bus_process(svc) > 0)
                ;
        svc_start(&s, svc);
        for (int i = 0; i < 3000 && count_fds() != fds0; i++)
                usleep(1000);
        ck_assert_int_eq(count_fds(), fds0);
        svc_teardown(&fb, &s, svc);
}
END_TEST

/*
 * A method the service revokes leaves every channel's list: 404 while it is gone (as
 * through the broker), and registered again it stays off the list the broker computed
 * for the old one (403): the broker checks it anew for a new channel.
 */
START_TEST(test_service_revoked_method)
{
        fbroker fb;
        tsvc s;
        hyb_bus *svc = svc_setup(&fb, &s);
        int fd = fb_open(&fb, 13, "[\"secret\"]", 4, 1 << 20, 1 << 20);

        ch_call(fd, 1, "secret", "{}");
        ck_assert_int_eq(ch_result(fd, 1, NULL, NULL), 200);
        ck_assert_int_eq(atomic_load(&n_secret), 1);
        svc_stop(&s);
        hyb_slot_unref(secret_slot);
        secret_slot = NULL;
        svc_start(&s, svc);
        ch_call(fd, 2, "secret", "{}");
        ck_assert_int_eq(ch_result(fd, 2, NULL, NULL), 404);
        svc_stop(&s);
        ck_assert_int_eq(hyb_endpoint_register_method(svc, "secret", NULL, 0, NULL, NULL, 0,
                                                      on_secret, NULL, &secret_slot, NULL), 0);
        svc_start(&s, svc);
        ch_call(fd, 3, "secret", "{}");
        ck_assert_int_eq(ch_result(fd, 3, NULL, NULL), 403);
        ck_assert_int_eq(atomic_load(&n_secret), 1);
        close(fd);
        svc_teardown(&fb, &s, svc);
}
END_TEST

/* ---------------------------------------------------------------- end to end */

/* A broker with a host store (for its /sys/bus counters) whose admin is this uid. */
static void e2e_start(tbroker *t, const char *limits)
{
        hyb_store *st = NULL;

        ck_assert_int_eq(hyb_store_open(NULL, NULL, &st, NULL), 0);
        tb_start_store(t, limits, true, NULL, st);
        hyb_store_unref(st);
}

/* The frames the broker counted in from an endpoint (app/runner). */
static int64_t frames_in(hyb_bus *obs, const char *app_runner)
{
        char furi[256];
        hyb_obj *o = NULL;
        hyb_error e;

        snprintf(furi, sizeof furi, "/sys/bus/endpoint/%s/messages_in", app_runner);
        ck_assert_msg(hyb_bus_store_read(obs, furi, &o, &e) == 0, "%s: %s", furi, e.message);
        int64_t v = hyb_obj_get_int(o);
        hyb_obj_unref(o);
        return v;
}

static hyb_bus *e2e_service(tbroker *t, const char *app, tsvc *s)
{
        hyb_bus *svc = tb_connect(t, app, "main");

        reset_counts();
        register_add(svc);
        register_hold(svc);
        /* offered to another app only: never on the list of a channel of ours */
        register_secret(svc, "org.test.other");
        svc_start(s, svc);
        return svc;
}

/* A second service app/main with add only, on its own thread s. */
static hyb_bus *add_service(tbroker *t, const char *app, tsvc *s)
{
        hyb_bus *svc = tb_connect(t, app, "main");

        register_add(svc);
        svc_start(s, svc);
        return svc;
}

static void e2e_service_stop(tsvc *s, hyb_bus *svc)
{
        svc_stop(s);
        for (int i = 0; i < atomic_load(&n_held); i++)
                hyb_bus_request_unref(held[i]);
        atomic_store(&n_held, 0);
        hyb_slot_unref(secret_slot);
        secret_slot = NULL;
        hyb_bus_unref(svc);
}

/* The end of an e2e test: the caller c closed, the service stopped, then the broker. */
static void e2e_stop(tbroker *t, tsvc *s, hyb_bus *svc, hyb_bus *c)
{
        hyb_bus_unref(c);
        e2e_service_stop(s, svc);
        tb_stop(t);
}

/* A service of add_service stopped and closed. */
static void add_service_stop(tsvc *s, hyb_bus *svc)
{
        svc_stop(s);
        hyb_bus_unref(svc);
}

static int add(hyb_bus *b, const char *ep, int x)
{
        char body[64];
        hyb_bus_reply *rep = NULL;
        size_t len;
        int r;

        snprintf(body, sizeof body, "{\"a\":%d,\"b\":1}", x);
        r = hyb_bus_call(b, ep, "add", body, strlen(body), 0, 10000, &rep, NULL);
        if (r < 0)
                return r;
        const char *got = hyb_bus_reply_get_body(rep, &len);
        json_t *j = json_loadb(got, len, 0, NULL);
        ck_assert_msg(json_integer_value(json_object_get(j, "sum")) == x + 1, "add %d: %d %s \"%.*s\"", x, hyb_bus_reply_get_status(rep), hyb_bus_reply_get_message(rep), (int)len, (const char *)hyb_bus_reply_get_body(rep, NULL));
        json_decref(j);
        hyb_bus_reply_unref(rep);
        return 0;
}

/*
 * n calls of add from c (org.test.caller/main) to ep: each one served, and none of them
 * passed through the broker (obs sees no new frame of the caller's there).
 */
static void adds_go_direct(hyb_bus *c, hyb_bus *obs, const char *ep, int n)
{
        int64_t m0 = frames_in(obs, "org.test.caller/main");
        int n0 = atomic_load(&n_add);

        for (int i = 0; i < n; i++)
                ck_assert_int_eq(add(c, ep, i), 0);
        ck_assert_int_eq(atomic_load(&n_add), n0 + n);
        ck_assert_int_eq(frames_in(obs, "org.test.caller/main"), m0);
}

/* Calls until the caller holds a channel (the second call asks for it). */
static void until_direct(hyb_bus *c, const char *ep)
{
        for (int i = 0; i < 1000 && c->n_chans == 0; i++) {
                ck_assert_int_eq(add(c, ep, i), 0);
                if (c->n_chans == 0)
                        hyb_bus_wait(c, 1000);
        }
        ck_assert_uint_eq(c->n_chans, 1);
}

/*
 * After the first calls the broker sees no more of them: its count of the frames the
 * caller sent stays put over 50 calls, while each still gets its answer.  With direct
 * channels off it sees every call again, and the channel is gone at both ends.
 */
/*
 * A call body above WIRE_CHANNEL_MAX_BODY (64 KiB) goes through the broker even with the
 * channel open (the broker counts it); the small calls before and after it go direct.
 */
START_TEST(test_e2e_big_body_through_broker)
{
        tbroker t;
        tsvc s;
        const char *ep = "@localhost/org.test.svc/main";
        static char body[70 * 1024];
        hyb_bus_reply *rep = NULL;

        e2e_start(&t, NULL);
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        hyb_bus *c = tb_connect(&t, "org.test.caller", "main");
        hyb_bus *obs = tb_connect(&t, "org.test.obs", "main");

        until_direct(c, ep);
        int64_t m0 = frames_in(obs, "org.test.caller/main");
        ck_assert_int_eq(add(c, ep, 1), 0);
        ck_assert_int_eq(frames_in(obs, "org.test.caller/main"), m0);
        /* {"a":1,"b":1,"pad":"xxx..."}: 70 KiB */
        int n = snprintf(body, sizeof body, "{\"a\":1,\"b\":1,\"pad\":\"");
        memset(body + n, 'x', sizeof body - (size_t)n - 2);
        body[sizeof body - 2] = '"';
        body[sizeof body - 1] = '}';
        ck_assert_int_eq(hyb_bus_call(c, ep, "add", body, sizeof body, 0, 10000, &rep, NULL), 0);
        hyb_bus_reply_unref(rep);
        ck_assert_int_eq(frames_in(obs, "org.test.caller/main"), m0 + 1);
        ck_assert_uint_eq(c->n_chans, 1);
        m0 = frames_in(obs, "org.test.caller/main");
        ck_assert_int_eq(add(c, ep, 2), 0);
        ck_assert_int_eq(frames_in(obs, "org.test.caller/main"), m0);
        hyb_bus_unref(obs);
        e2e_stop(&t, &s, svc, c);
}
END_TEST

START_TEST(test_e2e_calls_go_direct)
{
        tbroker t;
        tsvc s;
        const char *ep = "@localhost/org.test.svc/main";
        int fds0;

        e2e_start(&t, NULL);
        fds0 = count_fds();
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        hyb_bus *c = tb_connect(&t, "org.test.caller", "main");
        hyb_bus *obs = tb_connect(&t, "org.test.obs", "main");

        until_direct(c, ep);
        adds_go_direct(c, obs, ep, 50);

        int64_t m0 = frames_in(obs, "org.test.caller/main");
        ck_assert_int_eq(hyb_bus_set_direct(c, false), 0);
        ck_assert_uint_eq(c->n_chans, 0);
        for (int i = 0; i < 10; i++)
                ck_assert_int_eq(add(c, ep, i), 0);
        /* the 10 calls, and the closeChannel that told the broker */
        ck_assert_int_eq(frames_in(obs, "org.test.caller/main"), m0 + 11);
        hyb_bus_unref(obs);
        hyb_bus_unref(c);
        e2e_service_stop(&s, svc);
        for (int i = 0; i < 3000 && count_fds() != fds0; i++)
                usleep(1000);
        ck_assert_int_eq(count_fds(), fds0);
        tb_stop(&t);
}
END_TEST

/* Reads one frame of the raw peer fd, keeping the fd that came with it (-1 none). */
static int raw_frame_fd(int fd, wire_hdr *h, char **rest, int *ret_fd)
{
        uint8_t buf[65536];
        size_t off = 0, need = WIRE_HDR_SIZE;

        *ret_fd = -1;
        while (off < need) {
                union {
                        struct cmsghdr a;
                        char b[CMSG_SPACE(4 * sizeof(int))];
                } cm;
                struct iovec iov = { buf + off, need - off };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                                     .msg_controllen = sizeof cm.b };
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 30000) <= 0)
                        return -1;
                ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
                if (n <= 0)
                        return -1;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                ck_assert_int_eq(*ret_fd, -1);
                                memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
                        }
                off += (size_t)n;
                if (off >= WIRE_HDR_SIZE && need == WIRE_HDR_SIZE) {
                        ck_assert_int_eq(wire_hdr_decode(buf, h), 0);
                        need = wire_frame_len(h);
                        ck_assert_uint_le(need, sizeof buf);
                }
        }
        *rest = malloc(need - WIRE_HDR_SIZE + 1);
        memcpy(*rest, buf + WIRE_HDR_SIZE, need - WIRE_HDR_SIZE);
        (*rest)[need - WIRE_HDR_SIZE] = 0;
        return 0;
}

/*
 * A hostile caller (a raw connection) opens a channel to the service and writes on its
 * end whatever it likes: a method the broker did not allow it gets 403 and its handler
 * never runs; one it may call, with arguments the policy refuses, 400; with good ones,
 * its answer.
 */
START_TEST(test_e2e_hostile_caller)
{
        tbroker t;
        tsvc s;
        wire_hdr h = { .type = WIRE_CALL, .call_id = 1, .timeout_ms = 10000 };
        const char *open = "{\"endpoint\":\"@localhost/org.test.svc/main\"}";
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        char *rest;
        int cfd = -1, n;

        e2e_start(&t, NULL);
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        int raw = raw_connect(&t, "org.test.raw", "main", true);

        n = wire_build(&h, NULL, 0, HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT),
                       "openChannel", 11, open, strlen(open), buf, iov);
        ck_assert_int_eq(writev(raw, iov, n), (ssize_t)(iov[0].iov_len + iov[1].iov_len));
        ck_assert_int_eq(raw_frame_fd(raw, &h, &rest, &cfd), 0);
        ck_assert_int_eq(h.type, WIRE_RESULT);
        ck_assert_msg(h.status == 200, "openChannel: %d %s", h.status, rest);
        ck_assert_int_ge(cfd, 0);
        /* the broker's list: not "secret" (offered to another app) */
        ck_assert_ptr_null(strstr(rest, "secret"));
        free(rest);

        ch_call(cfd, 1, "secret", "{}");
        ck_assert_int_eq(ch_result(cfd, 1, NULL, NULL), 403);
        ck_assert_int_eq(atomic_load(&n_secret), 0);
        ch_call(cfd, 2, "add", "{\"a\":\"x\",\"b\":1}");
        ck_assert_int_eq(ch_result(cfd, 2, NULL, NULL), 400);
        ch_call(cfd, 3, "add", "{\"a\":40,\"b\":2}");
        ck_assert_int_eq(ch_result(cfd, 3, &rest, &h), 200);
        ck_assert_str_eq(rest + h.from_len + h.member_len, "{\"sum\":42}");
        free(rest);
        ck_assert_str_eq(seen_caller, "@localhost/org.test.raw/main");
        ck_assert_uint_eq(seen_uid, geteuid());
        ck_assert_int_eq(atomic_load(&n_add), 1);
        close(cfd);
        close(raw);
        e2e_service_stop(&s, svc);
        tb_stop(&t);
}
END_TEST

/*
 * A channel call's deadline is the caller's alone: 504 at its timeout, and the CANCEL
 * sent on the channel reaches the handler's cancel callback.  A cancel by the
 * application (the async call's slot dropped) reaches it the same way.
 */
START_TEST(test_e2e_deadline_and_cancel)
{
        tbroker t;
        tsvc s;
        const char *ep = "@localhost/org.test.svc/main";
        hyb_error err;
        hyb_slot *slot = NULL;
        atomic_int got = 0;

        e2e_start(&t, NULL);
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        hyb_bus *c = tb_connect(&t, "org.test.caller", "main");
        until_direct(c, ep);
        hyb_error_clear(&err);
        ck_assert_int_eq(hyb_bus_call(c, ep, "hold", "{}", 2, 0, 300, NULL, &err),
                         HYB_E_CALLEE_TIMEOUT);
        ck_assert_uint_eq(c->n_chans, 1); /* it went over the channel */
        wait_count(&n_cancelled, 1, NULL);

        ck_assert_int_eq(hyb_bus_call_async(c, ep, "hold", "{}", 2, 0, 30000, count_reply, &got,
                                            &slot), 0);
        wait_count(&n_held, 2, c);
        hyb_slot_unref(slot);
        wait_count(&n_cancelled, 2, NULL);
        ck_assert_int_eq(atomic_load(&got), 0);
        /* the channel serves on */
        ck_assert_int_eq(add(c, ep, 5), 0);
        ck_assert_uint_eq(c->n_chans, 1);
        e2e_stop(&t, &s, svc, c);
}
END_TEST

static void status_reply(hyb_bus *bus, const hyb_bus_reply *rep, void *ud)
{
        atomic_store((atomic_int *)ud, hyb_bus_reply_get_status(rep));
}

/*
 * The service goes with calls pending on the channel: each fails at once with 502, the
 * channel goes, and the next call goes through the broker (which says the service is
 * gone).
 */
START_TEST(test_e2e_callee_gone)
{
        tbroker t;
        tsvc s;
        const char *ep = "@localhost/org.test.svc/main";
        atomic_int st1 = 0, st2 = 0;

        e2e_start(&t, NULL);
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        hyb_bus *c = tb_connect(&t, "org.test.caller", "main");
        until_direct(c, ep);
        ck_assert_int_eq(hyb_bus_call_async(c, ep, "hold", "{}", 2, 0, 60000, status_reply, &st1,
                                            NULL), 0);
        ck_assert_int_eq(hyb_bus_call_async(c, ep, "hold", "{}", 2, 0, 60000, status_reply, &st2,
                                            NULL), 0);
        wait_count(&n_held, 2, c);
        /* gone without answering (no 500 "dropped": the connection is closed first) */
        svc_stop(&s);
        hyb_bus_close(svc);
        for (int i = 0; i < 3000 && (!atomic_load(&st1) || !atomic_load(&st2)); i++) {
                while (hyb_bus_process(c) > 0)
                        ;
                hyb_bus_wait(c, 10000);
        }
        ck_assert_int_eq(atomic_load(&st1), 502);
        ck_assert_int_eq(atomic_load(&st2), 502);
        ck_assert_uint_eq(c->n_chans, 0);
        ck_assert_int_eq(add(c, ep, 1), HYB_E_NOT_FOUND);
        hyb_bus_unref(c);
        svc_start(&s, svc); /* for e2e_service_stop: it returns at once (closed) */
        e2e_service_stop(&s, svc);
        tb_stop(&t);
}
END_TEST

/* A calls B, whose handler calls A back while A waits: both calls go over channels. */
static hyb_bus *nested_a;

static int on_ping(hyb_bus_request *req, void *ud)
{
        return hyb_bus_request_reply(req, 200, "\"pong\"", 6, HYB_BODY_JSON);
}

static int on_relay(hyb_bus_request *req, void *ud)
{
        hyb_bus *b = hyb_bus_request_get_bus(req);
        hyb_bus_reply *rep = NULL;
        int r = hyb_bus_call(b, "@localhost/org.test.a/main", "ping", "{}", 2, 0, 10000, &rep, NULL);

        if (r < 0)
                return r;
        hyb_bus_reply_unref(rep);
        return hyb_bus_request_reply(req, 200, "\"relayed\"", 9, HYB_BODY_JSON);
}

START_TEST(test_e2e_nested_both_direct)
{
        tbroker t;
        tsvc s;
        hyb_error err;

        e2e_start(&t, NULL);
        hyb_bus *a = tb_connect(&t, "org.test.a", "main");
        hyb_bus *b = tb_connect(&t, "org.test.b", "main");
        hyb_bus *obs = tb_connect(&t, "org.test.obs", "main");
        nested_a = a;
        ck_assert_int_eq(hyb_endpoint_register_method(a, "ping", NULL, 0, NULL, NULL, 0, on_ping,
                                                      NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_endpoint_register_method(b, "relay", NULL, 0, NULL, NULL, 0, on_relay,
                                                      NULL, NULL, &err), 0);
        svc_start(&s, b);
        /* until A holds a channel to B and B one to A (A as the service of the other) */
        for (int i = 0; i < 200 && (a->n_chans < 2); i++) {
                ck_assert_int_eq(hyb_bus_call(a, "@localhost/org.test.b/main", "relay", "{}", 2, 0,
                                              10000, NULL, NULL), 0);
                hyb_bus_wait(a, 1000);
                while (hyb_bus_process(a) > 0)
                        ;
        }
        ck_assert_uint_eq(a->n_chans, 2);
        int64_t ma = frames_in(obs, "org.test.a/main"), mb = frames_in(obs, "org.test.b/main");
        for (int i = 0; i < 20; i++)
                ck_assert_int_eq(hyb_bus_call(a, "@localhost/org.test.b/main", "relay", "{}", 2, 0,
                                              10000, NULL, NULL), 0);
        ck_assert_int_eq(frames_in(obs, "org.test.a/main"), ma);
        ck_assert_int_eq(frames_in(obs, "org.test.b/main"), mb);
        svc_stop(&s);
        hyb_bus_unref(b);
        hyb_bus_unref(a);
        hyb_bus_unref(obs);
        tb_stop(&t);
}
END_TEST

static atomic_int n_mon_calls;

static void on_mon(hyb_bus *bus, const hyb_bus_monitor_record *rec, void *ud)
{
        if (strcmp(rec->kind, "call") == 0 && strcmp(rec->member, "add") == 0)
                atomic_fetch_add(&n_mon_calls, 1);
}

/*
 * An administrator attaches a monitor: the broker closes every channel, calls still
 * work, through the broker, and the monitor sees each of them.
 */
START_TEST(test_e2e_monitor_closes)
{
        tbroker t;
        tsvc s;
        const char *ep = "@localhost/org.test.svc/main";
        hyb_slot *mslot = NULL;
        hyb_error err;

        e2e_start(&t, NULL);
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        hyb_bus *c = tb_connect(&t, "org.test.caller", "main");
        hyb_bus *mon = tb_connect(&t, "org.test.mon", "main");
        until_direct(c, ep);
        atomic_store(&n_mon_calls, 0);
        ck_assert_msg(hyb_bus_monitor(mon, on_mon, NULL, &mslot, &err) == 0, "%s", err.message);
        for (int i = 0; i < 3000 && c->n_chans > 0; i++)
                hyb_bus_wait(c, 1000), hyb_bus_process(c);
        ck_assert_uint_eq(c->n_chans, 0);
        for (int i = 0; i < 10; i++)
                ck_assert_int_eq(add(c, ep, i), 0);
        for (int i = 0; i < 3000 && atomic_load(&n_mon_calls) < 10; i++) {
                while (hyb_bus_process(mon) > 0)
                        ;
                hyb_bus_wait(mon, 1000);
        }
        ck_assert_int_eq(atomic_load(&n_mon_calls), 10);
        ck_assert_uint_eq(c->n_chans, 0);
        hyb_slot_unref(mslot);
        hyb_bus_unref(mon);
        e2e_stop(&t, &s, svc, c);
}
END_TEST

/*
 * limits.max_channels 1: a caller gets a channel to the first service it calls twice,
 * none to the second (the broker says 429), and its calls to the second go through
 * the broker, every one answered.
 */
START_TEST(test_e2e_max_channels_falls_back)
{
        tbroker t;
        tsvc s, s2;

        e2e_start(&t, "max_channels=1");
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        hyb_bus *svc2 = add_service(&t, "org.test.svc2", &s2);
        hyb_bus *c = tb_connect(&t, "org.test.caller", "main");
        hyb_bus *obs = tb_connect(&t, "org.test.obs", "main");
        until_direct(c, "@localhost/org.test.svc/main");
        for (int i = 0; i < 5; i++)
                ck_assert_int_eq(add(c, "@localhost/org.test.svc2/main", i), 0);
        int64_t m0 = frames_in(obs, "org.test.caller/main");
        for (int i = 0; i < 20; i++)
                ck_assert_int_eq(add(c, "@localhost/org.test.svc2/main", i), 0);
        ck_assert_uint_eq(c->n_chans, 1);
        /* every call through the broker, and no new request (backed off) */
        ck_assert_int_eq(frames_in(obs, "org.test.caller/main"), m0 + 20);
        hyb_bus_unref(obs);
        hyb_bus_unref(c);
        add_service_stop(&s2, svc2);
        e2e_service_stop(&s, svc);
        tb_stop(&t);
}
END_TEST

/*
 * A caller with a token: its channel carries only the methods its token may call (a call
 * of another goes through the broker, which refuses it: 403), and when its session ends
 * (the token revoked) the service drops its channel at once.
 */
START_TEST(test_e2e_token_session)
{
        tbroker t;
        tsvc s;
        tsession ts;
        const char *ep = "@localhost/org.test.svc/main";
        hyb_bus *c = NULL;

        tb_start_token_session(&t, &ts);
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        c = tsession_connect(&t, &ts);
        until_direct(c, ep);
        ck_assert_int_eq(add(c, ep, 3), 0);
        ck_assert_str_eq(seen_caller, "@localhost/org.test.cli/main");
        /* not on its channel: through the broker, which checks the token */
        ck_assert_int_eq(hyb_bus_call(c, ep, "hold", "{}", 2, 0, 5000, NULL, NULL), HYB_E_FORBIDDEN);
        ck_assert_int_eq(atomic_load(&n_held), 0);

        tb_revoke_all(&t);
        bool gone = false;
        for (int i = 0; i < 3000 && !gone; i++) {
                svc_stop(&s);
                gone = svc->n_chans == 0;
                svc_start(&s, svc);
                if (!gone)
                        usleep(1000);
        }
        ck_assert(gone);
        e2e_stop(&t, &s, svc, c);
        tsession_free(&ts);
}
END_TEST

/* A raw peer's builtin call; reads frames until its RESULT (keeping any fd): the status. */
static int raw_builtin_fd(int fd, uint64_t id, const char *method, const char *json, int *ret_fd)
{
        wire_hdr h = { .type = WIRE_CALL, .call_id = id, .timeout_ms = 10000 };
        uint8_t buf[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        char *rest;
        int n = wire_build(&h, NULL, 0, HYB_BUS_BUILTIN_ENDPOINT, strlen(HYB_BUS_BUILTIN_ENDPOINT),
                           method, strlen(method), json, strlen(json), buf, iov);

        ck_assert_int_eq(writev(fd, iov, n), (ssize_t)(iov[0].iov_len + iov[1].iov_len));
        for (;;) {
                int got = -1;
                ck_assert_int_eq(raw_frame_fd(fd, &h, &rest, &got), 0);
                free(rest);
                if (got >= 0 && ret_fd)
                        *ret_fd = got;
                else if (got >= 0)
                        close(got);
                if (h.type == WIRE_RESULT && h.call_id == id)
                        return h.status;
        }
}

/*
 * The raw service's next frame on its broker socket that is a CALL (others skipped, an fd
 * that comes with one kept in *ret_fd): answered 200 with {"sum":n}, its id returned.
 */
static uint64_t raw_serve_one(int fd, int *ret_fd)
{
        wire_hdr h;
        char *rest;

        for (;;) {
                int got = -1;
                ck_assert_int_eq(raw_frame_fd(fd, &h, &rest, &got), 0);
                if (got >= 0) {
                        ck_assert_ptr_nonnull(ret_fd);
                        *ret_fd = got;
                }
                free(rest);
                if (h.type == WIRE_CALL) {
                        wire_hdr r = { .type = WIRE_RESULT, .status = 200, .call_id = h.call_id };
                        frame_send(fd, NULL, &r, NULL, 0, NULL, "{\"sum\":1}", 9, -1);
                        return h.call_id;
                }
        }
}

static void pump_status(hyb_bus *c, atomic_int *st)
{
        for (int i = 0; i < 3000 && !atomic_load(st); i++) {
                while (hyb_bus_process(c) > 0)
                        ;
                if (!atomic_load(st))
                        hyb_bus_wait(c, 10000);
        }
}

/*
 * A call the service says it did not run (403 "direct channel closed: ...", its channel
 * closed under the call) goes again through the broker, and so does a call whose write
 * the channel refuses (the service stopped reading it): the caller gets the service's
 * answer either way, never the channel's end.  The service is a raw peer here, so that
 * both cases happen for certain.
 */
/* A caller c holding a channel to a raw service (its broker socket *ret_raw): the
 * service's end of the channel. */
static int raw_service_channel(tbroker *t, const char *ep, hyb_bus **ret_c, int *ret_raw)
{
        atomic_int st = 0;
        int cfd = -1;
        wire_hdr h;
        char *rest;
        int raw = raw_connect(t, "org.test.rawsvc", "main", true);

        ck_assert_int_eq(raw_builtin_fd(raw, 900, "registerProcedure",
                                        "{\"methodName\":\"add\",\"forApp\":\"*\"}", NULL), 200);
        hyb_bus *c = tb_connect(t, "org.test.caller", "main");
        /* two calls through the broker; the second asks for a channel */
        for (int i = 0; i < 2; i++) {
                atomic_store(&st, 0);
                ck_assert_int_eq(hyb_bus_call_async(c, ep, "add", "{}", 2, 0, 10000, status_reply,
                                                    &st, NULL), 0);
                ck_assert_int_eq(hyb_bus_flush(c), 0);
                raw_serve_one(raw, &cfd);
                pump_status(c, &st);
                ck_assert_int_eq(atomic_load(&st), 200);
        }
        /* the CHANNEL open, with its fd */
        while (cfd < 0) {
                ck_assert_int_eq(raw_frame_fd(raw, &h, &rest, &cfd), 0);
                free(rest);
        }
        for (int i = 0; i < 3000 && c->n_chans == 0; i++) {
                while (hyb_bus_process(c) > 0)
                        ;
                if (c->n_chans == 0)
                        hyb_bus_wait(c, 1000);
        }
        ck_assert_uint_eq(c->n_chans, 1);
        *ret_c = c;
        *ret_raw = raw;
        return cfd;
}

/* The end of a raw-service test: the caller's end cfd, the caller c, the raw service, the broker. */
static void raw_service_stop(tbroker *t, int cfd, hyb_bus *c, int raw)
{
        close(cfd);
        hyb_bus_unref(c);
        close(raw);
        tb_stop(t);
}

/* An async call of c that the raw service reads on its channel end and answers "not run". */
static void call_not_run(hyb_bus *c, const char *ep, int cfd, atomic_int *st)
{
        wire_hdr h;
        char *rest;
        const char *msg = "direct channel closed: test";

        atomic_store(st, 0);
        ck_assert_int_eq(hyb_bus_call_async(c, ep, "add", "{}", 2, 0, 10000, status_reply, st,
                                            NULL), 0);
        ck_assert_int_eq(frame_read(cfd, &h, &rest), 0);
        ck_assert_int_eq(h.type, WIRE_CALL);
        free(rest);
        wire_hdr no = { .type = WIRE_RESULT, .status = 403, .call_id = h.call_id };
        frame_send(cfd, NULL, &no, ep, strlen(ep), msg, NULL, 0, -1);
}

/*
 * A call the service says it did not run (403 "direct channel closed: ...", its channel
 * closed under the call) goes again through the broker, and so does a call whose write
 * the channel refuses (the service stopped reading it): the caller gets the service's
 * answer either way, never the channel's end.  The service is a raw peer here, so that
 * both cases happen for certain.
 */
START_TEST(test_e2e_not_run_goes_through_broker)
{
        tbroker t;
        const char *ep = "@localhost/org.test.rawsvc/main";
        atomic_int st = 0;
        hyb_bus *c;
        int raw;

        e2e_start(&t, NULL);
        int cfd = raw_service_channel(&t, ep, &c, &raw);

        /* over the channel: answered "not run" there, then served through the broker */
        call_not_run(c, ep, cfd, &st);
        for (int i = 0; i < 100; i++)
                hyb_bus_process(c);
        raw_serve_one(raw, NULL); /* (with the id the broker gave it) */
        pump_status(c, &st);
        ck_assert_int_eq(atomic_load(&st), 200);
        ck_assert_uint_eq(c->n_chans, 1);

        /* the service stops reading its end: the write fails, the call goes the other way */
        ck_assert_int_eq(shutdown(cfd, SHUT_RD), 0);
        atomic_store(&st, 0);
        ck_assert_int_eq(hyb_bus_call_async(c, ep, "add", "{}", 2, 0, 10000, status_reply, &st,
                                            NULL), 0);
        ck_assert_int_eq(hyb_bus_flush(c), 0);
        raw_serve_one(raw, NULL);
        pump_status(c, &st);
        ck_assert_int_eq(atomic_load(&st), 200);
        raw_service_stop(&t, cfd, c, raw);
}
END_TEST

/*
 * A call sent again through the broker ("not run" on the channel) keeps its place: a
 * call the application makes after it, to the same endpoint, goes through the broker
 * behind it instead of overtaking it on the channel.
 */
START_TEST(test_e2e_not_run_keeps_order)
{
        tbroker t;
        const char *ep = "@localhost/org.test.rawsvc/main";
        atomic_int st = 0, st2 = 0;
        hyb_bus *c;
        int raw;

        e2e_start(&t, NULL);
        int cfd = raw_service_channel(&t, ep, &c, &raw);

        call_not_run(c, ep, cfd, &st);
        /* until the first call is sent again (it reaches the service's broker socket) */
        for (int i = 0; i < 3000; i++) {
                struct pollfd p = { .fd = raw, .events = POLLIN };
                hyb_bus_process(c);
                if (poll(&p, 1, 10) > 0)
                        break;
        }
        ck_assert_int_eq(hyb_bus_call_async(c, ep, "add", "{}", 2, 0, 10000, status_reply, &st2,
                                            NULL), 0);
        ck_assert_int_eq(hyb_bus_flush(c), 0);
        uint64_t first = raw_serve_one(raw, NULL);
        uint64_t second = raw_serve_one(raw, NULL); /* the later call, behind it */
        ck_assert_uint_lt(first, second);
        pump_status(c, &st);
        pump_status(c, &st2);
        ck_assert_int_eq(atomic_load(&st), 200);
        ck_assert_int_eq(atomic_load(&st2), 200);
        raw_service_stop(&t, cfd, c, raw);
}
END_TEST

/*
 * The same "not run" answer while the caller's channel is closing (direct channels
 * turned off with the call pending on it): the channel closes as its last call leaves
 * it, and that call still goes through the broker instead of failing with the channel.
 */
START_TEST(test_e2e_not_run_while_closing)
{
        tbroker t;
        const char *ep = "@localhost/org.test.rawsvc/main";
        atomic_int st = 0;
        hyb_bus *c;
        int raw;

        e2e_start(&t, NULL);
        int cfd = raw_service_channel(&t, ep, &c, &raw);

        call_not_run(c, ep, cfd, &st);
        ck_assert_int_eq(hyb_bus_set_direct(c, false), 0);
        ck_assert_uint_eq(c->n_chans, 1); /* closing: a call is pending on it */
        for (int i = 0; i < 100; i++)
                hyb_bus_process(c);
        raw_serve_one(raw, NULL);
        pump_status(c, &st);
        ck_assert_int_eq(atomic_load(&st), 200);
        ck_assert_uint_eq(c->n_chans, 0);
        raw_service_stop(&t, cfd, c, raw);
}
END_TEST

/* Runs the service's bus as an application's loop does (the loop woke for its fd): steps
 * until there is nothing more to do now. */
static void svc_turn(hyb_bus *svc)
{
        for (int i = 0; i < 1000 && hyb_bus_process(svc) > 0; i++)
                ;
}

/*
 * hyb_bus_process reads the channel it read last before asking the epoll set which
 * socket is ready (doc/bus.md "The fd to watch"), but fairly: a call the broker sends
 * while a caller writes one call on the channel per turn of the loop is served within
 * 16 such reads, not after the caller stops.  And it is not served at the first turn:
 * the loop read the channel first (no epoll_wait), which is what saves the call a
 * system call.
 */
START_TEST(test_service_hot_channel_fair)
{
        static const char from[] = CALLER_NAME "unix\0";
        wire_hdr bh = { .type = WIRE_CALL, .call_id = 77, .timeout_ms = 30000, .info_len = 5 };
        fbroker fb;
        hyb_bus *svc = fb_start(&fb);
        int turns, fd;

        reset_counts();
        register_add(svc);
        register_secret(svc, NULL);
        fd = fb_open(&fb, 11, "[\"add\"]", 1000, 1 << 24, 1 << 20);
        for (int i = 0; i < 3000 && svc->n_chans == 0; i++) {
                svc_turn(svc);
                if (svc->n_chans == 0)
                        hyb_bus_wait(svc, 10000);
        }
        ck_assert_uint_eq(svc->n_chans, 1);
        /* a first call: the channel is the socket read last */
        ch_call(fd, 1, "add", "{\"a\":1,\"b\":2}");
        for (int i = 0; i < 3000 && atomic_load(&n_add) == 0; i++) {
                hyb_bus_wait(svc, 10000);
                svc_turn(svc);
        }
        ck_assert_int_eq(ch_result(fd, 1, NULL, NULL), 200);

        /* the broker's call waits on the broker socket from now on */
        frame_send(fb.conn, &fb.wlock, &bh, from, sizeof from - 1, "secret", "{}", 2, -1);
        for (turns = 1; turns <= 64 && atomic_load(&n_secret) == 0; turns++) {
                ch_call(fd, 1 + (uint64_t)turns, "add", "{\"a\":1,\"b\":2}");
                svc_turn(svc);
                ck_assert_int_eq(ch_result(fd, 1 + (uint64_t)turns, NULL, NULL), 200);
        }
        ck_assert_int_eq(atomic_load(&n_secret), 1);
        ck_assert_int_gt(turns - 1, 1);
        ck_assert_int_le(turns - 1, 17);
        ck_assert_int_eq(atomic_load(&n_add), turns);
        close(fd);
        hyb_slot_unref(secret_slot);
        secret_slot = NULL;
        hyb_bus_unref(svc);
        fb_stop(&fb);
}
END_TEST

/*
 * A service whose loop wakes for one caller's channel, then for another's: the channel
 * read last is the wrong one each time, and reading it first would cost each call a
 * recv() in vain.  After such a miss the next steps ask the set at once (1, 2, 4 ... up
 * to 64), and every call is still answered on its own channel.
 */
START_TEST(test_service_hot_channel_misses)
{
        fbroker fb;
        hyb_bus *svc = fb_start(&fb);
        int fd[2];

        reset_counts();
        register_add(svc);
        fd[0] = fb_open(&fb, 21, "[\"add\"]", 1000, 1 << 24, 1 << 20);
        fd[1] = fb_open(&fb, 22, "[\"add\"]", 1000, 1 << 24, 1 << 20);
        for (int i = 0; i < 3000 && svc->n_chans < 2; i++) {
                svc_turn(svc);
                if (svc->n_chans < 2)
                        hyb_bus_wait(svc, 10000);
        }
        ck_assert_uint_eq(svc->n_chans, 2);
        for (int turn = 0; turn < 40; turn++) {
                int k = turn % 2;
                ch_call(fd[k], 1 + (uint64_t)turn, "add", "{\"a\":2,\"b\":3}");
                /* as a loop that waited for the set: the call is there to read */
                struct pollfd p = { .fd = hyb_bus_get_fd(svc), .events = POLLIN };
                ck_assert_int_eq(poll(&p, 1, 30000), 1);
                svc_turn(svc);
                ck_assert_int_eq(ch_result(fd[k], 1 + (uint64_t)turn, NULL, NULL), 200);
        }
        ck_assert_int_eq(atomic_load(&n_add), 40);
        /* 40 turns whose channel read last is the wrong one: about 6 misses (1, 2, 4 ...
         * steps skipped after each), not 40 */
        ck_assert_uint_ge(svc->hot_backoff, 16);
        ck_assert_uint_lt(svc->hot_backoff, 64); /* 64: a miss at every turn */
        close(fd[0]);
        close(fd[1]);
        hyb_bus_unref(svc);
        fb_stop(&fb);
}
END_TEST

/*
 * The caller's side of the same: an application loop (poll on the public fd, then
 * hyb_bus_process until it says 0) gets its channel answers, and the 502 of each call
 * pending when the service goes, from the channel read first.
 */
START_TEST(test_e2e_loop_reads_channel)
{
        tbroker t;
        tsvc s;
        const char *ep = "@localhost/org.test.svc/main";
        atomic_int st[8] = { 0 };

        e2e_start(&t, NULL);
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        hyb_bus *c = tb_connect(&t, "org.test.caller", "main");
        until_direct(c, ep);
        int64_t before = frames_in(c, "org.test.svc/main");
        for (int k = 0; k < 6; k++) {
                ck_assert_int_eq(hyb_bus_call_async(c, ep, "add", "{\"a\":1,\"b\":2}", 13, 0, 60000,
                                                    status_reply, &st[k], NULL), 0);
                for (int i = 0; i < 3000 && !atomic_load(&st[k]); i++) {
                        struct pollfd p = { .fd = hyb_bus_get_fd(c), .events = POLLIN };
                        poll(&p, 1, 10);
                        while (hyb_bus_process(c) > 0)
                                ;
                }
                ck_assert_int_eq(atomic_load(&st[k]), 200);
        }
        /* none went through the broker */
        ck_assert_int_eq(frames_in(c, "org.test.svc/main"), before);
        ck_assert_int_eq(hyb_bus_call_async(c, ep, "hold", "{}", 2, 0, 60000, status_reply, &st[6],
                                            NULL), 0);
        ck_assert_int_eq(hyb_bus_call_async(c, ep, "hold", "{}", 2, 0, 60000, status_reply, &st[7],
                                            NULL), 0);
        wait_count(&n_held, 2, c);
        svc_stop(&s);
        hyb_bus_close(svc);
        for (int i = 0; i < 3000 && (!atomic_load(&st[6]) || !atomic_load(&st[7])); i++) {
                struct pollfd p = { .fd = hyb_bus_get_fd(c), .events = POLLIN };
                poll(&p, 1, 10);
                while (hyb_bus_process(c) > 0)
                        ;
        }
        ck_assert_int_eq(atomic_load(&st[6]), 502);
        ck_assert_int_eq(atomic_load(&st[7]), 502);
        ck_assert_uint_eq(c->n_chans, 0);
        hyb_bus_unref(c);
        svc_start(&s, svc);
        e2e_service_stop(&s, svc);
        tb_stop(&t);
}
END_TEST

/*
 * A hostile service that never reads its channel: the caller's library keeps no more
 * for it than the broker would queue towards a peer (4 frames of max_body), then drops
 * the channel (its calls there get 502; the service's end sees EOF once drained) and
 * sends its calls through the broker, instead of buffering all it is asked to send.
 */
static void count_status(hyb_bus *bus, const hyb_bus_reply *rep, void *ud)
{
        int *st = ud;

        st[hyb_bus_reply_get_status(rep) == 502 ? 0 : 1]++;
}

START_TEST(test_e2e_service_never_reads)
{
        tbroker t;
        const char *ep = "@localhost/org.test.rawsvc/main";
        static char body[60000];
        int st[2] = { 0, 0 };
        hyb_bus *c;
        int raw, n_sent = 0;
        size_t got = 0;
        bool eof = false;

        e2e_start(&t, "max_body=65536");
        int cfd = raw_service_channel(&t, ep, &c, &raw);

        memset(body, 'a', sizeof body);
        body[0] = '"';
        body[sizeof body - 1] = '"';
        /* 100 calls of 60 kB: 6 MB, far above 4 frames plus what the socket holds */
        for (int i = 0; i < 100; i++) {
                ck_assert_int_eq(hyb_bus_call_async(c, ep, "add", body, sizeof body, 0, 60000,
                                                    count_status, st, NULL), 0);
                n_sent++;
        }
        /* the service's end: what was written, then EOF (bounded by the caller's queue) */
        for (int i = 0; i < 10000 && !eof; i++) {
                char buf[65536];
                struct pollfd p = { .fd = cfd, .events = POLLIN };
                ssize_t n;

                if (poll(&p, 1, 1) < 0)
                        break;
                n = recv(cfd, buf, sizeof buf, MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                        eof = true;
                else if (n > 0)
                        got += (size_t)n;
        }
        ck_assert_msg(eof, "the caller still holds the channel after %zu bytes", got);
        ck_assert_uint_le(got, 4u * (65536 + WIRE_HDR_SIZE + WIRE_NAMES_MAX) + 8u * 1024 * 1024);
        /* the caller drops it: the calls on it fail with 502 at once */
        for (int i = 0; i < 3000 && (c->n_chans > 0 || st[0] == 0); i++) {
                while (hyb_bus_process(c) > 0)
                        ;
                if (c->n_chans > 0 || st[0] == 0)
                        hyb_bus_wait(c, 1000);
        }
        ck_assert_uint_eq(c->n_chans, 0);
        ck_assert_int_gt(st[0], 0);
        ck_assert_int_lt(st[0], n_sent); /* the later ones went through the broker */
        raw_service_stop(&t, cfd, c, raw);
}
END_TEST

/*
 * The application calling builtin openChannel itself: the fd that comes with the 200 is
 * one the library never hands out.  It must not stay in the queue of received fds, where
 * the library's own next channel (to another endpoint) would take it and send calls
 * meant for that endpoint to the first service; it is closed and the broker told, so
 * that no fd is left for it in the caller or the service.
 */
START_TEST(test_e2e_app_open_channel)
{
        tbroker t;
        tsvc s, s2;
        const char *ep = "@localhost/org.test.svc/main";
        const char *epb = "@localhost/org.test.svcb/main";
        char body[128];
        hyb_bus_reply *rep = NULL;
        hyb_error err;
        int fds0;

        e2e_start(&t, NULL);
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        hyb_bus *svcb = add_service(&t, "org.test.svcb", &s2);
        hyb_bus *c = tb_connect(&t, "org.test.caller", "main");
        fds0 = count_fds();

        snprintf(body, sizeof body, "{\"endpoint\":\"%s\"}", ep);
        ck_assert_msg(hyb_bus_call(c, HYB_BUS_BUILTIN_ENDPOINT, "openChannel", body, strlen(body),
                                   0, 10000, &rep, &err) == 0, "%s", err.message);
        ck_assert_int_eq(hyb_bus_reply_get_status(rep), 200);
        hyb_bus_reply_unref(rep);

        /* the library's channel to the other service carries calls to it */
        until_direct(c, epb);
        for (int i = 0; i < 3; i++) {
                rep = NULL;
                ck_assert_int_eq(hyb_bus_call(c, epb, "add", "{\"a\":1,\"b\":1}", 13, 0, 10000,
                                              &rep, &err), 0);
                ck_assert_int_eq(hyb_bus_reply_get_status(rep), 200);
                ck_assert_str_eq(hyb_bus_reply_get_sender(rep), epb);
                hyb_bus_reply_unref(rep);
        }
        /* fds: the channel to svcb (both ends in this process), nothing for the other */
        for (int i = 0; i < 3000 && count_fds() != fds0 + 2; i++) {
                while (hyb_bus_process(c) > 0)
                        ;
                usleep(1000);
        }
        ck_assert_int_eq(count_fds(), fds0 + 2);
        hyb_bus_unref(c);
        add_service_stop(&s2, svcb);
        e2e_service_stop(&s, svc);
        tb_stop(&t);
}
END_TEST

static int open_channels(hyb_bus *bus)
{
        hyb_obj *o = NULL;
        hyb_error e;

        ck_assert_msg(hyb_bus_store_read(bus, "/sys/bus/channels", &o, &e) == 0, "%s", e.message);
        int v = (int)hyb_obj_get_int(o);
        hyb_obj_unref(o);
        return v;
}

/*
 * A fork()ed child that drops its copy of the parent's bus (as a child about to exec, or
 * a worker closing what it inherited, does) leaves the parent's channels alone: it tells
 * the broker nothing on the socket it shares with the parent, and takes nothing out of
 * the epoll set it shares too.  The parent's calls go on direct.
 */
START_TEST(test_e2e_fork_child_leaves_channels)
{
        tbroker t;
        tsvc s;
        const char *ep = "@localhost/org.test.svc/main";
        int status = -1;
        pid_t pid;

        e2e_start(&t, NULL);
        hyb_bus *svc = e2e_service(&t, "org.test.svc", &s);
        hyb_bus *c = tb_connect(&t, "org.test.caller", "main");
        hyb_bus *obs = tb_connect(&t, "org.test.obs", "main");

        until_direct(c, ep);
        ck_assert_int_eq(open_channels(c), 1);
        /* the child says it is done on a pipe (its exit status is a leak checker's, under
         * valgrind --error-exitcode: what it inherited is never freed) */
        int done[2];
        char byte = 0;
        ck_assert_int_eq(pipe(done), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                hyb_bus_unref(c);
                if (write(done[1], "1", 1) != 1)
                        _exit(1);
                _exit(0);
        }
        close(done[1]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(read(done[0], &byte, 1), 1);
        ck_assert_int_eq(byte, '1');
        close(done[0]);
        /* read after anything the child wrote on the shared socket */
        ck_assert_int_eq(open_channels(c), 1);
        adds_go_direct(c, obs, ep, 5);
        ck_assert_uint_eq(c->n_chans, 1);
        hyb_bus_unref(obs);
        e2e_stop(&t, &s, svc, c);
}
END_TEST

void bus_tcase_direct(Suite *s)
{
        TCase *tc = tcase_create("direct");

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_service_dispatch_and_checks);
        tcase_add_test(tc, test_service_max_pending_and_cancel);
        tcase_add_test(tc, test_service_close);
        tcase_add_test(tc, test_service_soft_close_refuses_new_calls);
        tcase_add_test(tc, test_service_uid_max_pending);
        tcase_add_test(tc, test_service_late_answer_keeps_fd);
        tcase_add_test(tc, test_service_end_matches_its_frame);
        tcase_add_test(tc, test_service_max_queue_and_garbage);
        tcase_add_test(tc, test_service_revoked_method);
        tcase_add_test(tc, test_e2e_calls_go_direct);
        tcase_add_test(tc, test_e2e_big_body_through_broker);
        tcase_add_test(tc, test_e2e_hostile_caller);
        tcase_add_test(tc, test_e2e_deadline_and_cancel);
        tcase_add_test(tc, test_e2e_callee_gone);
        tcase_add_test(tc, test_e2e_nested_both_direct);
        tcase_add_test(tc, test_e2e_monitor_closes);
        tcase_add_test(tc, test_e2e_max_channels_falls_back);
        tcase_add_test(tc, test_e2e_token_session);
        tcase_add_test(tc, test_e2e_not_run_goes_through_broker);
        tcase_add_test(tc, test_e2e_not_run_while_closing);
        tcase_add_test(tc, test_service_hot_channel_fair);
        tcase_add_test(tc, test_service_hot_channel_misses);
        tcase_add_test(tc, test_e2e_loop_reads_channel);
        tcase_add_test(tc, test_e2e_not_run_keeps_order);
        tcase_add_test(tc, test_e2e_service_never_reads);
        tcase_add_test(tc, test_e2e_app_open_channel);
        tcase_add_test(tc, test_e2e_fork_child_leaves_channels);
        suite_add_tcase(s, tc);
}
