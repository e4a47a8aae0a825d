/* SPDX-License-Identifier: MIT */
/*
 * bus_suite, tcase "wait": how a synchronous call waits for its answer (hyb_bus_set_spin).
 * It reads its connection without sleeping for up to the spin, then sleeps in poll(); a
 * spin that comes back empty makes the next waits of that connection sleep at once (1,
 * 2, 4 ... 256 of them), and the spin is bounded by its own time, not by the call's
 * deadline.
 *
 * poll() and recv() are wrapped for this executable (the library is linked in
 * statically): the wrappers count the calls the current thread makes (the broker of
 * these tests runs on a thread of its own), then call the C library's.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include "bus/bus-internal.h"
#include "suites.h"
#include "test_bus.h"
#include "testutil.h"

static _Thread_local unsigned long poll_calls, recv_calls;

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
        return real(fd, buf, len, flags);
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
         * spin, every call slept in one poll() before reading its answer. */
        ck_assert_int_eq(hyb_bus_set_spin(b, HYB_BUS_SPIN_MAX_USEC), 0);
        poll_calls = 0;
        for (int i = 0; i < 20; i++)
                echo(b);
        ck_assert_uint_eq(poll_calls, 0);

        /* Spin 0: each call sleeps in poll() at once. */
        ck_assert_int_eq(hyb_bus_set_spin(b, 0), 0);
        poll_calls = 0;
        for (int i = 0; i < 20; i++)
                echo(b);
        ck_assert_uint_ge(poll_calls, 20);
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
        poll_calls = recv_calls = 0;
        unanswered(b);
        ck_assert_uint_ge(poll_calls, 1);
        ck_assert_uint_lt(recv_calls, 10000);
        ck_assert_uint_eq(b->spin_backoff, 1);
        ck_assert_uint_eq(b->spin_skip, 1);
        tb_resume(&t);

        /* The next wait sleeps at once: no read before its poll(). */
        poll_calls = recv_calls = 0;
        echo(b);
        ck_assert_uint_ge(poll_calls, 1);
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
        poll_calls = 0;
        echo(b);
        ck_assert_uint_eq(poll_calls, 0);
        ck_assert_uint_eq(b->spin_backoff, 0);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

/* The spin is opt-in: a new connection's calls sleep in poll() at once. */
START_TEST(test_no_spin_by_default)
{
        tbroker t;
        hyb_bus *b;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "plain");
        ck_assert_uint_eq(b->spin_us, 0);
        poll_calls = 0;
        for (int i = 0; i < 5; i++)
                echo(b);
        ck_assert_uint_ge(poll_calls, 5);
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
        suite_add_tcase(s, tc);
}
