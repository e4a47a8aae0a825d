/* SPDX-License-Identifier: MIT */
/*
 * What the bus commands (call, serve, fire, listen, list, monitor) share: connecting
 * with the global options, turning library codes into doc/hybrid.md exit statuses and
 * error lines, JSON bodies from arguments or stdin, and a poll loop that also ends
 * cleanly on SIGTERM / SIGINT.
 */
#ifndef HYBRID_CLI_BUS_H
#define HYBRID_CLI_BUS_H

#include <stddef.h>
#include <stdint.h>

#include <hybrid/bus.h>

#include "cli.h"

/*
 * Connects as --app/--runner to --bus.  On failure prints
 * "hybrid: <command>: <code> <message>" and returns the exit status
 * (3 unreachable, 2 bad name, 1 refused); 0 on success.
 */
int clibus_connect(const cli_ctx *ctx, hyb_bus **ret);

/*
 * The connect options of ctx: path, app, runner and, with --token/--key (or
 * $HYBRID_TOKEN/$HYBRID_KEY), the token text and the holder key, which *o then
 * borrows from *ret_token and *ret_key (release them with clibus_credentials_free).
 * 0, or the exit status after printing a `401` error (a file that cannot be read,
 * a token without a key).
 */
int clibus_connect_options(const cli_ctx *ctx, hyb_bus_connect_options *o, char **ret_token,
                           hyb_key **ret_key);
void clibus_credentials_free(char *token, hyb_key *key);

/*
 * Checks that name has the form of an endpoint name, @host/app/runner (with glob: '*' and
 * '?' allowed, and a '*' may stand for several parts).  On a malformed name prints
 * "hybrid: <command>: 406 <which part is wrong> (the form is @host/app/runner...)" and
 * returns EXIT_USAGE; 0 when the form is right.
 */
int clibus_check_endpoint(const cli_ctx *ctx, const char *name, bool glob);

/* The same for a method or bubble name (what: "method", "bubble"): letters, digits, '_'. */
int clibus_check_member(const cli_ctx *ctx, const char *what, const char *name, bool glob);

/* The exit status for a library code: 1 for bus statuses, 3 for a lost connection. */
int clibus_exit_status(int r);

/* Prints "hybrid: <what>: <status or error name> <message>" and returns exit_status. */
int clibus_fail(int exit_status, const char *what, int r, const hyb_error *e);
/* As clibus_fail for the end of a stream on bus: when the daemon closed the connection and
 * said why (shutdown 503, quota 507...), prints that status and reason (exit 3). */
int clibus_stream_fail(const char *what, const hyb_bus *bus, int r);

/*
 * Reads a JSON body: the argument itself, or all of stdin when it is "-".  The text must
 * be one JSON value (any type).  Returns 0 with a malloc'ed *ret (NUL-terminated, length
 * in *ret_len), or prints the error and returns the exit status (2 for bad JSON).
 */
int clibus_json_arg(const cli_ctx *ctx, const char *arg, char **ret, size_t *ret_len);

/*
 * Called before each wait; returns the CLOCK_MONOTONIC time (µs) of its own next
 * deadline (UINT64_MAX: none) after doing whatever was due.
 */
typedef uint64_t (*clibus_tick_fn)(void *userdata);

/*
 * Runs the connection until *done turns true (0), SIGTERM/SIGINT arrives (0) or the
 * connection fails (< 0, e.g. HYB_E_CLOSED).  The signals are blocked from the call on
 * and read from a signalfd, so one arriving between two checks is never lost.
 */
int clibus_run(hyb_bus *bus, const bool *done, clibus_tick_fn tick, void *userdata);

/* Blocks SIGTERM and SIGINT so clibus_run can read them; call before registering. */
int clibus_block_signals(void);

/* CLOCK_MONOTONIC in µs. */
uint64_t clibus_now_us(void);

/* Writes a body on stdout as one line: JSON as is, binary bodies as 0x<hex>. */
void clibus_print_body(const void *body, size_t len, bool binary);

#endif
