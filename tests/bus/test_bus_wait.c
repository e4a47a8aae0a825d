/* SPDX-License-Identifier: MIT */
/*
 * bus_suite, tcase "wait": how a synchronous call waits for its answer (hyb_bus_set_spin).
 * It reads its connection without sleeping for up to the spin, then sleeps: in a
 * blocking recv() of its Unix socket (SO_RCVTIMEO bounds it; the last stretch before the
 * deadline polls), or in poll() while output is queued or once the application made the
 * socket O_NONBLOCK.  A spin that comes back empty makes the next waits of that
 * connection sleep at once (1, 2, 4 ... 256 of them), and the spin is bounded by its own
 * time, not by the call's deadline.
 *
 * poll() and recv() are wrapped for this executable (the library is linked in
 * statically): the wrappers count the calls the current thread makes (the broker of
 * these tests runs on a thread of its own), then call the C library's.  A recv()
 * without MSG_DONTWAIT is a sleep.
 */
#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus-internal.h"
#include "suites.h"
#include "test_bus.h"
#include "testutil.h"

static _Thread_local unsigned long poll_calls, recv_calls, recv_sleeps;
/* recv() sleeps while this connection had output queued */
static _Thread_local const hyb_bus *watched;
static _Thread_local unsigned long sleeps_with_output;

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
        static int (*real)(struct pollfd *, nfds_t, int);

        if (!real)
                real = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
        poll_calls++;
        return real(fds, n, timeout);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
        static ssize_t (*real)(int, void *, size_t, int);

        if (!real)
                real = (ssize_t(*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
        recv_calls++;
        if (!(flags & MSG_DONTWAIT))
                recv_sleeps++;
        if (!(flags & MSG_DONTWAIT) && watched && watched->wlen > watched->wpos)
                sleeps_with_output++;
        return real(fd, buf, len, flags);
}

/* The broker socket is read with recvmsg() (it may carry direct channels' fds) */
ssize_t recvmsg(int fd, struct msghdr *mh, int flags)
{
        static ssize_t (*real)(int, struct msghdr *, int);

        if (!real)
                real = (ssize_t(*)(int, struct msghdr *, int))dlsym(RTLD_NEXT, "recvmsg");
        recv_calls++;
        if (!(flags & MSG_DONTWAIT))
                recv_sleeps++;
        if (!(flags & MSG_DONTWAIT) && watched && watched->wlen > watched->wpos)
                sleeps_with_output++;
        return real(fd, mh, flags);
}

/*
 * May this process run on one CPU only?  The broker of these tests is a thread of it,
 * so its connections then find the broker on their own CPU and their waits poll()
 * (bus_one_cpu_with_peer) instead of sleeping in recv().
 */
static bool one_cpu(void)
{
        cpu_set_t set;

        ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
        return CPU_COUNT(&set) == 1;
}

static void echo(hyb_bus *b)
{
        hyb_bus_reply *rep = NULL;
        size_t len;

        ck_assert_int_eq(hyb_bus_call(b, HYB_BUS_BUILTIN_ENDPOINT, "echo", "[1]", 3, 0, 5000, &rep,
                                      NULL),
                         0);
        ck_assert_int_eq(hyb_bus_reply_get_status(rep), 200);
        ck_assert_mem_eq(hyb_bus_reply_get_body(rep, &len), "[1]", 3);
        hyb_bus_reply_unref(rep);
}

/* A call nobody answers (the broker paused): it ends at its local deadline. */
static void unanswered(hyb_bus *b)
{
        hyb_error err;

        hyb_error_clear(&err);
        ck_assert_int_eq(hyb_bus_call(b, HYB_BUS_BUILTIN_ENDPOINT, "echo", "[2]", 3, 0, 1, NULL,
                                      &err),
                         HYB_E_CALLEE_TIMEOUT);
}

START_TEST(test_spin_answers_without_sleeping)
{
        tbroker t;
        hyb_bus *b;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "main");
        ck_assert_int_eq(hyb_bus_set_spin(NULL, 0), -EINVAL);
        ck_assert_int_eq(hyb_bus_set_spin(b, HYB_BUS_SPIN_MAX_USEC + 1), -EINVAL);

        /* A spin longer than any answer of this broker takes: no call sleeps.  Before the
         * spin, every call slept once (in recv()) before reading its answer. */
        ck_assert_int_eq(hyb_bus_set_spin(b, HYB_BUS_SPIN_MAX_USEC), 0);
        poll_calls = recv_sleeps = 0;
        for (int i = 0; i < 20; i++)
                echo(b);
        ck_assert_uint_eq(poll_calls + recv_sleeps, 0);

        /* Spin 0: each call sleeps at once, in a recv() that reads its answer. */
        ck_assert_int_eq(hyb_bus_set_spin(b, 0), 0);
        poll_calls = recv_sleeps = 0;
        for (int i = 0; i < 20; i++)
                echo(b);
        if (one_cpu()) {
                ck_assert_uint_ge(poll_calls, 20);
                ck_assert_uint_eq(recv_sleeps, 0);
        } else {
                ck_assert_uint_ge(recv_sleeps, 20);
                ck_assert_uint_eq(poll_calls, 0);
        }
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

START_TEST(test_spin_bounded_and_backs_off)
{
        tbroker t;
        hyb_bus *b;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "main");
        echo(b);

        /* Nobody answers: a spin of 50 us reads a bounded number of times, then the
         * wait sleeps until the call's local deadline (the call's 1 ms + 2 s of grace).  A
         * spin up to the deadline would read hundreds of thousands of times. */
        tb_pause(&t);
        /* the spin is opt-in: set it for this connection */
        ck_assert_int_eq(hyb_bus_set_spin(b, HYB_BUS_SPIN_TYPICAL_USEC), 0);
        poll_calls = recv_calls = recv_sleeps = 0;
        unanswered(b);
        ck_assert_uint_ge(poll_calls + recv_sleeps, 1);
        ck_assert_uint_lt(recv_calls, 10000);
        ck_assert_uint_eq(b->spin_backoff, 1);
        ck_assert_uint_eq(b->spin_skip, 1);
        tb_resume(&t);

        /* The next wait sleeps at once: no read before its sleep. */
        poll_calls = recv_calls = recv_sleeps = 0;
        echo(b);
        if (one_cpu()) {
                ck_assert_uint_ge(poll_calls, 1);
        } else {
                ck_assert_uint_ge(recv_sleeps, 1);
                ck_assert_uint_eq(recv_calls, recv_sleeps);
        }
        ck_assert_uint_eq(b->spin_skip, 0);

        /* The next spin in vain doubles the count of waits that sleep at once. */
        tb_pause(&t);
        unanswered(b);
        ck_assert_uint_eq(b->spin_backoff, 2);
        ck_assert_uint_eq(b->spin_skip, 2);
        tb_resume(&t);

        /* Setting the spin starts afresh; a spin that gets its answer resets the count. */
        ck_assert_int_eq(hyb_bus_set_spin(b, HYB_BUS_SPIN_MAX_USEC), 0);
        ck_assert_uint_eq(b->spin_skip, 0);
        ck_assert_uint_eq(b->spin_backoff, 0);
        poll_calls = recv_sleeps = 0;
        echo(b);
        ck_assert_uint_eq(poll_calls + recv_sleeps, 0);
        ck_assert_uint_eq(b->spin_backoff, 0);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/* The spin is opt-in: a new connection's calls sleep at once. */
START_TEST(test_no_spin_by_default)
{
        tbroker t;
        hyb_bus *b;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "plain");
        ck_assert_uint_eq(b->spin_us, 0);
        poll_calls = recv_sleeps = 0;
        for (int i = 0; i < 5; i++)
                echo(b);
        ck_assert_uint_ge(poll_calls + recv_sleeps, 5);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/* The local deadline of unanswered(): its 1 ms and the client's 2 s of grace. */
#define UNANSWERED_US (1000u + 2000000u)
/* Far more than any wait here may overrun its deadline, even on a loaded machine. */
#define OVERRUN_MAX_US (15u * 1000000u)

static uint64_t cpu_usec(void)
{
        struct rusage ru;

        ck_assert_int_eq(getrusage(RUSAGE_THREAD, &ru), 0);
        return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
               (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/*
 * The socket of a Unix connection is blocking, and a call the broker never answers
 * sleeps in recv() and still ends at its local deadline (the last stretch polls), not
 * before it and not long after.  With a recv() bounded by nothing it would never end;
 * with a poll() only, no recv() would sleep.
 */
START_TEST(test_blocking_wait_ends_at_deadline)
{
        tbroker t;
        hyb_bus *b;
        uint64_t t0, took;
        int fl;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "mute");
        fl = fcntl(b->fd, F_GETFL);
        ck_assert_int_ge(fl, 0);
        ck_assert_int_eq(fl & O_NONBLOCK, one_cpu() ? O_NONBLOCK : 0);
        echo(b);
        tb_pause(&t);
        poll_calls = recv_sleeps = 0;
        t0 = hyb_now_usec();
        unanswered(b);
        took = hyb_now_usec() - t0;
        ck_assert_uint_ge(took, UNANSWERED_US);
        ck_assert_uint_lt(took, UNANSWERED_US + OVERRUN_MAX_US);
        ck_assert_uint_ge(recv_sleeps, one_cpu() ? 0 : 1);
        ck_assert_uint_ge(poll_calls, 1);
        tb_resume(&t);
        /* the connection serves on */
        echo(b);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/*
 * The application made the fd it watches O_NONBLOCK (libuv's uv_poll_init does): that
 * fd is the epoll set around the broker socket (bus.h hyb_bus_get_fd), so the socket
 * stays blocking and a synchronous wait still sleeps in its recv().  The call ends at
 * its deadline without burning the CPU: a wait that took every EAGAIN for a timeout
 * would spin through the whole 2 s.
 */
START_TEST(test_app_nonblocking_fd_polls)
{
        tbroker t;
        hyb_bus *b;
        uint64_t t0, c0, took, cpu;
        int fd, fl;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "uv");
        fd = hyb_bus_get_fd(b);
        fl = fcntl(fd, F_GETFL);
        ck_assert_int_ge(fl, 0);
        ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
        echo(b);
        tb_pause(&t);
        poll_calls = recv_sleeps = 0;
        t0 = hyb_now_usec();
        c0 = cpu_usec();
        unanswered(b);
        cpu = cpu_usec() - c0;
        took = hyb_now_usec() - t0;
        ck_assert_uint_ge(took, UNANSWERED_US);
        ck_assert_uint_lt(took, UNANSWERED_US + OVERRUN_MAX_US);
        ck_assert_uint_lt(cpu, took / 20);
        ck_assert_uint_ge(poll_calls, 1);
        ck_assert_uint_ge(recv_sleeps, one_cpu() ? 0 : 1);
        ck_assert_int_ne(fd, b->fd);
        ck_assert_int_eq(fcntl(b->fd, F_GETFL) & O_NONBLOCK, one_cpu() ? O_NONBLOCK : 0);
        /* the flag stays the application's */
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
        tb_resume(&t);
        poll_calls = recv_sleeps = 0;
        echo(b);
        ck_assert_uint_eq(recv_sleeps, one_cpu() ? 0 : 1);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/*
 * A request larger than the socket takes at once: the rest stays queued, and the wait
 * polls for room to write it instead of sleeping in a recv() that no answer would end
 * (the broker waits for the rest of the request first).  Corked, the whole request is
 * still queued when the wait begins (the broker's thread cannot drain the socket while
 * the call writes it), so a wait that slept in recv() would end only at the deadline.
 */
static void echo_big(hyb_bus *b, const uint8_t *big, size_t n)
{
        hyb_bus_reply *rep = NULL;
        size_t len;

        poll_calls = sleeps_with_output = 0;
        watched = b;
        ck_assert_int_eq(hyb_bus_call(b, HYB_BUS_BUILTIN_ENDPOINT, "echo", big, n, HYB_BODY_BINARY,
                                      5000, &rep, NULL),
                         0);
        watched = NULL;
        ck_assert_uint_eq(sleeps_with_output, 0);
        ck_assert_uint_ge(poll_calls, 1);
        ck_assert_int_eq(hyb_bus_reply_get_status(rep), 200);
        const uint8_t *got = hyb_bus_reply_get_body(rep, &len);
        ck_assert_uint_eq(len, n);
        ck_assert(memcmp(got, big, n) == 0);
        hyb_bus_reply_unref(rep);
}

START_TEST(test_wait_writes_queued_output)
{
        tbroker t;
        hyb_bus *b;
        size_t n = 8u * 1024 * 1024;
        uint8_t *big = malloc(n);
        int sndbuf = 0;
        socklen_t sl = sizeof sndbuf;

        ck_assert_ptr_nonnull(big);
        for (size_t i = 0; i < n; i++)
                big[i] = (uint8_t)(i * 13 + 5);
        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "big");
        ck_assert_int_eq(getsockopt(b->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
        ck_assert_uint_lt((size_t)sndbuf, n / 4);
        echo_big(b, big, n);
        ck_assert_int_eq(hyb_bus_set_cork(b, true), 0);
        echo_big(b, big, n);
        echo_big(b, big, 3);
        ck_assert_int_eq(hyb_bus_set_cork(b, false), 0);
        free(big);
        echo(b);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

static atomic_int sigs;
static atomic_bool sig_stop;

static void on_sig(int sig)
{
        (void)sig;
        atomic_fetch_add(&sigs, 1);
}

static void *signaller(void *arg)
{
        pthread_t target = *(pthread_t *)arg;
        struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };

        while (!atomic_load(&sig_stop)) {
                pthread_kill(target, SIGUSR1);
                nanosleep(&ts, NULL);
        }
        return NULL;
}

/*
 * Signals during the wait (a handler without SA_RESTART: each ends the recv() asleep with
 * EINTR): the call still waits for its deadline, no earlier.
 */
START_TEST(test_signal_does_not_end_wait)
{
        struct sigaction sa = { .sa_handler = on_sig }, old;
        pthread_t self = pthread_self(), th;
        tbroker t;
        hyb_bus *b;
        uint64_t t0, took;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "sig");
        echo(b);
        tb_pause(&t);
        sigemptyset(&sa.sa_mask);
        ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
        atomic_store(&sigs, 0);
        atomic_store(&sig_stop, false);
        recv_sleeps = 0;
        ck_assert_int_eq(pthread_create(&th, NULL, signaller, &self), 0);
        t0 = hyb_now_usec();
        unanswered(b);
        took = hyb_now_usec() - t0;
        atomic_store(&sig_stop, true);
        pthread_join(th, NULL);
        ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
        ck_assert_uint_ge(took, UNANSWERED_US);
        ck_assert_uint_lt(took, UNANSWERED_US + OVERRUN_MAX_US);
        ck_assert_int_ge(atomic_load(&sigs), 3);
        ck_assert_uint_ge(recv_sleeps, one_cpu() ? 0 : 3);
        tb_resume(&t);
        echo(b);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/*
 * This thread and the broker (a thread of this process: its pid is the peer's) on one
 * and the same CPU: the connection stays non-blocking and its waits poll(), as nothing
 * could wake early.  Back on more CPUs, a new connection sleeps in recv() again.
 */
START_TEST(test_one_cpu_with_broker_polls)
{
        cpu_set_t all, one;
        tbroker t;
        hyb_bus *b;
        int cpu = -1;

        ck_assert_int_eq(sched_getaffinity(0, sizeof all, &all), 0);
        for (int i = 0; i < CPU_SETSIZE && cpu < 0; i++)
                if (CPU_ISSET(i, &all))
                        cpu = i;
        ck_assert_int_ge(cpu, 0);
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        tb_start(&t, NULL, false);
        ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
        b = tb_connect(&t, "org.test.wait", "onecpu");
        ck_assert(!b->fd_blocking);
        ck_assert_int_eq(fcntl(b->fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
        poll_calls = recv_sleeps = 0;
        echo(b);
        ck_assert_uint_ge(poll_calls, 1);
        ck_assert_uint_eq(recv_sleeps, 0);
        hyb_bus_unref(b);
        ck_assert_int_eq(sched_setaffinity(0, sizeof all, &all), 0);
        if (CPU_COUNT(&all) > 1) {
                b = tb_connect(&t, "org.test.wait", "cpus");
                ck_assert(b->fd_blocking);
                poll_calls = recv_sleeps = 0;
                echo(b);
                ck_assert_uint_ge(recv_sleeps, 1);
                ck_assert_uint_eq(poll_calls, 0);
                hyb_bus_unref(b);
        }
        tb_stop(&t);
}
END_TEST

/*
 * A connection driven by a libevent loop (hyb_bus_attach_event) makes a synchronous
 * call: the packet read together with its answer (here the answer of an earlier async
 * call, sent right after the sync call's) stays buffered when the wait returns, and no
 * socket input will announce it.  The loop must still dispatch it at once, not when the
 * async call's deadline (60 s) fires its timer.
 */
typedef struct held_pair {
        hyb_bus_request *held;
        atomic_int n_held;
} held_pair;

static int hp_hold(hyb_bus_request *req, void *ud)
{
        held_pair *h = ud;

        h->held = hyb_bus_request_ref(req);
        atomic_fetch_add(&h->n_held, 1);
        return 0;
}

static int on_twice(hyb_bus_request *req, void *ud)
{
        (void)ud;
        return hyb_bus_request_reply(req, 200, "{\"ok\":true}", 11, HYB_BODY_JSON);
}

static hyb_bus_request *never_held;

static int on_never(hyb_bus_request *req, void *ud)
{
        (void)ud;
        /* kept, answered never: the caller's deadline ends it */
        hyb_bus_request_unref(never_held);
        never_held = hyb_bus_request_ref(req);
        return 0;
}

static int call_svc(hyb_bus *b, const char *method, uint32_t timeout_ms)
{
        hyb_bus_reply *rep = NULL;
        hyb_error err;
        int r;

        hyb_error_clear(&err);
        r = hyb_bus_call(b, "@localhost/org.test.wsvc/main", method, "{}", 2, 0, timeout_ms, &rep,
                         &err);
        if (r == 0) {
                r = hyb_bus_reply_get_status(rep);
                hyb_bus_reply_unref(rep);
        }
        return r;
}

/*
 * A plain client's synchronous call over a direct channel sleeps in recv() on the channel
 * (nothing else can need its connection meanwhile), as its calls through the broker
 * sleep in recv() on the broker socket; it still ends at its deadline (a service that
 * never answers) and it answers 504 there.  A connection that serves a procedure may be
 * called while it waits (a nested call on any socket): its waits never sleep in a recv().
 */
START_TEST(test_channel_call_sleeps_in_recv)
{
        tbroker t;
        tsvc s;
        hyb_error err;
        hyb_bus *svc, *c;

        tb_start(&t, NULL, false);
        svc = tb_connect(&t, "org.test.wsvc", "main");
        ck_assert_int_eq(hyb_endpoint_register_method(svc, "twice", NULL, 0, NULL, NULL, 0, on_twice,
                                                      NULL, NULL, &err), 0);
        ck_assert_int_eq(hyb_endpoint_register_method(svc, "never", NULL, 0, NULL, NULL, 0, on_never,
                                                      NULL, NULL, &err), 0);
        svc_start(&s, svc);
        c = tb_connect(&t, "org.test.wclient", "main");
        for (int i = 0; i < 200 && c->n_chans == 0; i++) {
                ck_assert_int_eq(call_svc(c, "twice", 5000), 200);
                if (c->n_chans == 0)
                        hyb_bus_wait(c, 1000);
        }
        ck_assert_uint_eq(c->n_chans, 1);
        if (!one_cpu()) {
                recv_sleeps = poll_calls = 0;
                for (int i = 0; i < 20; i++)
                        ck_assert_int_eq(call_svc(c, "twice", 5000), 200);
                ck_assert_uint_ge(recv_sleeps, 20);
                /* a call the service holds: 504 at its deadline, from the recv() sleep */
                uint64_t t0 = hyb_now_usec();
                ck_assert_int_eq(call_svc(c, "never", 300), HYB_E_CALLEE_TIMEOUT);
                ck_assert_uint_ge(hyb_now_usec() - t0, 300000u);
                ck_assert_uint_le(hyb_now_usec() - t0, 300000u + OVERRUN_MAX_US);
                ck_assert_int_eq(call_svc(c, "twice", 5000), 200);
        }
        /* serving a procedure itself: the same calls wait on the epoll set */
        ck_assert_int_eq(hyb_endpoint_register_method(c, "twice", NULL, 0, NULL, NULL, 0, on_twice,
                                                      NULL, NULL, &err), 0);
        ck_assert_uint_eq(c->n_chans, 1);
        recv_sleeps = 0;
        for (int i = 0; i < 20; i++)
                ck_assert_int_eq(call_svc(c, "twice", 5000), 200);
        ck_assert_uint_eq(recv_sleeps, 0);
        hyb_bus_unref(c);
        svc_stop(&s);
        hyb_bus_request_unref(never_held);
        never_held = NULL;
        hyb_bus_unref(svc);
        tb_stop(&t);
}
END_TEST

/* answers the sync call first, then the held async one: one write of both */
static int hp_go(hyb_bus_request *req, void *ud)
{
        held_pair *h = ud;

        ck_assert_int_eq(hyb_bus_request_reply(req, 200, "[1]", 3, HYB_BODY_JSON), 0);
        ck_assert_ptr_nonnull(h->held);
        ck_assert_int_eq(hyb_bus_request_reply(h->held, 200, "[2]", 3, HYB_BODY_JSON), 0);
        hyb_bus_request_unref(h->held);
        h->held = NULL;
        return 0;
}

static void hp_reply(hyb_bus *bus, const hyb_bus_reply *reply, void *ud)
{
        struct event_base *base = ud;

        (void)bus;
        ck_assert_int_eq(hyb_bus_reply_get_status(reply), 200);
        event_base_loopbreak(base);
}

static void hp_give_up(evutil_socket_t fd, short what, void *ud)
{
        (void)fd;
        (void)what;
        event_base_loopbreak(ud);
}

START_TEST(test_attached_loop_dispatches_what_a_wait_left)
{
        held_pair h = { 0 };
        struct event_base *base;
        struct event *give_up;
        tbroker t;
        tsvc s;
        hyb_bus *a, *b;
        hyb_error err;
        int buffered = 0;

        tb_start(&t, NULL, false);
        a = tb_connect(&t, "org.test.wait", "loop");
        b = tb_connect(&t, "org.test.wait", "svc");
        ck_assert_int_eq(hyb_bus_register_procedure(b, "hold", NULL, NULL, hp_hold, &h, NULL, &err), 0);
        ck_assert_int_eq(hyb_bus_register_procedure(b, "go", NULL, NULL, hp_go, &h, NULL, &err), 0);
        base = event_base_new();
        ck_assert_ptr_nonnull(base);
        ck_assert_int_eq(hyb_bus_attach_event(a, base), 0);
        give_up = evtimer_new(base, hp_give_up, base);
        ck_assert_ptr_nonnull(give_up);
        svc_start(&s, b);
        for (int round = 0; round < 8; round++) {
                uint64_t next = UINT64_MAX;
                struct timeval tv = { .tv_sec = 10 };

                atomic_store(&h.n_held, 0);
                ck_assert_int_eq(hyb_bus_call_async(a, "@localhost/org.test.wait/svc", "hold", "[]",
                                                    2, 0, 60000, hp_reply, base, NULL),
                                 0);
                ck_assert_int_eq(hyb_bus_flush(a), 0);
                while (atomic_load(&h.n_held) == 0)
                        usleep(1000);
                ck_assert_int_eq(hyb_bus_call(a, "@localhost/org.test.wait/svc", "go", "[]", 2, 0,
                                              60000, NULL, &err),
                                 0);
                ck_assert_int_eq(hyb_bus_get_timeout(a, &next), 0);
                buffered += next == 0;
                /* the async call's answer: dispatched by the loop, whether it was read
                 * with the sync call's or is still in the socket */
                evtimer_add(give_up, &tv);
                ck_assert_int_eq(event_base_loop(base, 0), 0);
                ck_assert_msg(event_pending(give_up, EV_TIMEOUT, NULL),
                              "round %d (%d with the answer buffered): the loop gave up", round,
                              buffered);
                evtimer_del(give_up);
        }
        svc_stop(&s);
        event_free(give_up);
        hyb_bus_unref(a);
        event_base_free(base);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

void bus_tcase_wait(Suite *s)
{
        TCase *tc = tcase_create("wait");

        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_spin_answers_without_sleeping);
        tcase_add_test(tc, test_spin_bounded_and_backs_off);
        tcase_add_test(tc, test_no_spin_by_default);
        tcase_add_test(tc, test_blocking_wait_ends_at_deadline);
        tcase_add_test(tc, test_app_nonblocking_fd_polls);
        tcase_add_test(tc, test_wait_writes_queued_output);
        tcase_add_test(tc, test_signal_does_not_end_wait);
        tcase_add_test(tc, test_one_cpu_with_broker_polls);
        tcase_add_test(tc, test_attached_loop_dispatches_what_a_wait_left);
        tcase_add_test(tc, test_channel_call_sleeps_in_recv);
        suite_add_tcase(s, tc);
}
