/* SPDX-License-Identifier: MIT */
/*
 * What the example services share: SIGTERM / SIGINT read from a signalfd and the error
 * lines (sample-service, sysinfo, sensor-sim, logd); the connect and the main loop that
 * runs the bus and calls a tick function once a period (all but logd, whose loop flushes
 * its store writes instead of ticking).  Public API only.
 */
#pragma once

#include <stdint.h>

#include <hybrid/bus.h>

/*
 * Blocks SIGTERM and SIGINT and returns a close-on-exec signalfd that reads them, or -1
 * (errno set).  The caller closes it.
 */
int service_signals(void);

/*
 * Prints "<prog>: <what>: <error name> <message>" on stderr for the failure r, the message
 * from e when it has one, else hyb_strerror(r).
 */
void service_report(const char *prog, const char *what, int r, const hyb_error *e);

/*
 * hyb_bus_connect(path, app, runner) with the failure reported as service_report(prog,
 * "connect", ...).  Returns what hyb_bus_connect returns; *ret is the caller's on success.
 */
int service_connect(const char *prog, const char *path, const char *app, const char *runner,
                    hyb_bus **ret);

/*
 * Called by service_run when a period is due: returns SERVICE_CONTINUE to go on (the next
 * tick one period later), or the exit status service_run is to return.
 */
#define SERVICE_CONTINUE (-1)
typedef int (*service_tick_fn)(hyb_bus *bus, void *userdata);

/*
 * Runs bus until a signal arrives on sfd (returns 0), the bus fails (the error on stderr,
 * returns 3) or tick returns a status (returns it).  The first tick is due at first
 * (absolute, hyb_now_usec), each next one period_usec after the previous one ran.
 */
int service_run(const char *prog, hyb_bus *bus, int sfd, uint64_t first, uint64_t period_usec,
                service_tick_fn tick, void *userdata);
