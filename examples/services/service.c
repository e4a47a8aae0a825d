/* SPDX-License-Identifier: MIT */
/* The signal, connect and main-loop code the example services share (service.h). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>

#include <hybrid/common.h>

#include "service.h"

int service_signals(void)
{
        sigset_t sigs;

        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        sigprocmask(SIG_BLOCK, &sigs, NULL);
        return signalfd(-1, &sigs, SFD_CLOEXEC);
}

void service_report(const char *prog, const char *what, int r, const hyb_error *e)
{
        fprintf(stderr, "%s: %s: %s %s\n", prog, what, hyb_err_name(r),
                e->message[0] ? e->message : hyb_strerror(r));
}

int service_connect(const char *prog, const char *path, const char *app, const char *runner,
                    hyb_bus **ret)
{
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = hyb_bus_connect(path, app, runner, ret, &e);
        if (r < 0)
                service_report(prog, "connect", r, &e);
        return r;
}

int service_run(const char *prog, hyb_bus *bus, int sfd, uint64_t first, uint64_t period_usec,
                service_tick_fn tick, void *userdata)
{
        uint64_t next = first;
        int r;

        for (;;) {
                struct pollfd p[2];
                uint64_t due = next, bus_due = UINT64_MAX, now;

                while ((r = hyb_bus_process(bus)) > 0)
                        ;
                if (r < 0) {
                        /* asked to stop as the daemon went (both stopped together): a stop */
                        struct pollfd s = { .fd = sfd, .events = POLLIN };
                        if (poll(&s, 1, 0) > 0 && (s.revents & POLLIN))
                                return 0;
                        fprintf(stderr, "%s: %s\n", prog, hyb_strerror(r));
                        return 3;
                }
                now = hyb_now_usec();
                if (now >= next) {
                        r = tick(bus, userdata);
                        if (r != SERVICE_CONTINUE)
                                return r;
                        next = now + period_usec;
                        continue;
                }
                if (hyb_bus_get_timeout(bus, &bus_due) == 0 && bus_due < due)
                        due = bus_due;
                p[0].fd = hyb_bus_get_fd(bus);
                p[0].events = (short)hyb_bus_get_events(bus);
                p[1].fd = sfd;
                p[1].events = POLLIN;
                if (poll(p, 2, due > now ? (int)((due - now + 999) / 1000) : 0) < 0 &&
                    errno != EINTR)
                        return 0;
                if (p[1].revents & POLLIN)
                        return 0;
        }
}
