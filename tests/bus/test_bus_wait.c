/* SPDX-License-Identifier: MIT */
/*
 * bus_suite, tcase "wait": how a client waits for its answers.  A synchronous call on an
 * idle connection sleeps in the recv() that reads the answer (one system call per wake,
 * as a blocking read), not in a poll() followed by a recv(); the wait keeps its
 * semantics: local deadlines, -EINTR from hyb_bus_wait, and a socket another loop made
 * non-blocking (libuv's uv_poll does that to the fd it watches).
 *
 * poll() is wrapped for this executable (the library is linked in statically): the
 * wrapper counts the calls the current thread makes, then calls the C library's.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"
#include "test_bus.h"
#include "testutil.h"

static _Thread_local unsigned poll_calls;

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
        static int (*real)(struct pollfd *, nfds_t, int);

        if (!real)
                real = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
        poll_calls++;
        return real(fds, n, timeout);
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

START_TEST(test_sync_call_sleeps_in_recv)
{
        tbroker t;
        hyb_bus *b;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "main");
        echo(b);
        poll_calls = 0;
        for (int i = 0; i < 20; i++)
                echo(b);
        /* Before: one poll() per call, then the recv() of the answer. */
        ck_assert_uint_eq(poll_calls, 0);
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

START_TEST(test_wait_nonblocking_fd_and_deadline)
{
        tbroker t;
        hyb_bus *b;
        hyb_error err;
        int fd, fl;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "main");
        /* Another loop makes the socket non-blocking: calls still work, waits still wait. */
        fd = hyb_bus_get_fd(b);
        fl = fcntl(fd, F_GETFL);
        ck_assert_int_ge(fl, 0);
        ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
        echo(b);
        echo(b);
        ck_assert_int_eq(hyb_bus_process(b), 0);
        ck_assert_int_eq(hyb_bus_wait(b, 300000), 0);
        /* The broker stops reading: a call ends at its local deadline (longer than one
         * blocking receive), on a blocking socket as on a non-blocking one. */
        tb_pause(&t);
        hyb_error_clear(&err);
        ck_assert_int_eq(hyb_bus_call(b, HYB_BUS_BUILTIN_ENDPOINT, "echo", "[2]", 3, 0, 700, NULL,
                                      &err),
                         HYB_E_CALLEE_TIMEOUT);
        tb_resume(&t);
        hyb_bus_unref(b);

        b = tb_connect(&t, "org.test.wait", "blocking");
        tb_pause(&t);
        hyb_error_clear(&err);
        ck_assert_int_eq(hyb_bus_call(b, HYB_BUS_BUILTIN_ENDPOINT, "echo", "[3]", 3, 0, 700, NULL,
                                      &err),
                         HYB_E_CALLEE_TIMEOUT);
        tb_resume(&t);
        echo(b); /* the late answer of [3] is dropped, this one matches */
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

static void on_usr1(int sig)
{
        (void)sig;
}

typedef struct kicker {
        pthread_t target;
        atomic_bool done;
} kicker;

/* Signals the waiting thread until it has returned: no guess at when it sleeps. */
static void *kick_main(void *ud)
{
        kicker *k = ud;

        while (!atomic_load(&k->done)) {
                pthread_kill(k->target, SIGUSR1);
                usleep(20000);
        }
        return NULL;
}

START_TEST(test_wait_eintr)
{
        struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART }, old;
        kicker k = { .target = pthread_self() };
        pthread_t th;
        tbroker t;
        hyb_bus *b;
        int r;

        tb_start(&t, NULL, false);
        b = tb_connect(&t, "org.test.wait", "main");
        sigemptyset(&sa.sa_mask);
        ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
        ck_assert_int_eq(pthread_create(&th, NULL, kick_main, &k), 0);
        /* Nothing will come: only the signal ends the wait, even with SA_RESTART. */
        r = hyb_bus_wait(b, 60000000);
        atomic_store(&k.done, true);
        pthread_join(th, NULL);
        ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
        ck_assert_int_eq(r, -EINTR);
        echo(b); /* the connection is fine */
        hyb_bus_unref(b);
        tb_stop(&t);
}
END_TEST

void bus_tcase_wait(Suite *s)
{
        TCase *tc = tcase_create("wait");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_sync_call_sleeps_in_recv);
        tcase_add_test(tc, test_wait_nonblocking_fd_and_deadline);
        tcase_add_test(tc, test_wait_eintr);
        suite_add_tcase(s, tc);
}
