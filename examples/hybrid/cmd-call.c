/* SPDX-License-Identifier: MIT */
/*
 * hybrid call <endpoint> <method> [<json> | -] [--timeout MS]
 *
 * One synchronous call; the result body goes to stdout as received.  An error status
 * exits 1 with "hybrid: call: <status> <message>" (the callee's retMsg) on stderr.
 */
#include <stdlib.h>
#include <string.h>

#include <hybrid/hybrid.h>

#include "cli-bus.h"

static int run_call(cli_ctx *ctx)
{
        hyb_bus *bus = NULL;
        hyb_bus_reply *reply = NULL;
        hyb_error e;
        char *body = NULL;
        size_t len = 2;
        const void *out;
        size_t out_len;
        long timeout;
        int r, st;

        if (ctx->nargs < 2 || ctx->nargs > 3)
                return cli_usage(ctx, "call wants <endpoint> <method> [<json> | -]");
        if (!cli_opt_long(ctx, "timeout", 0, 1, 3600000, &timeout))
                return EXIT_USAGE;
        st = clibus_check_endpoint(ctx, ctx->args[0], false);
        if (st)
                return st;
        if (ctx->nargs == 3) {
                st = clibus_json_arg(ctx, ctx->args[2], &body, &len);
                if (st)
                        return st;
        } else if (!(body = strdup("{}"))) {
                return cli_fail(EXIT_FAILED, "call", "ENOMEM", "out of memory");
        }

        st = clibus_connect(ctx, &bus);
        if (st) {
                free(body);
                return st;
        }
        hyb_error_clear(&e);
        r = hyb_bus_call(bus, ctx->args[0], ctx->args[1], body, len, HYB_BODY_JSON,
                         (uint32_t)timeout, &reply, &e);
        free(body);
        if (r < 0) {
                st = clibus_fail(clibus_exit_status(r), "call", r, &e);
                hyb_bus_unref(bus);
                return st;
        }
        out = hyb_bus_reply_get_body(reply, &out_len);
        fwrite(out, 1, out_len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        hyb_bus_reply_unref(reply);
        hyb_bus_unref(bus);
        return EXIT_OK;
}

static const cli_option call_options[] = {
        { "timeout", true, "--timeout MS    the deadline the broker enforces (default 30000)" },
        { NULL, false, NULL },
};

const cli_command cmd_call = {
        .name = "call",
        .run = run_call,
        .options = call_options,
        .summary = "call a procedure, print its result",
        .usage = "usage: hybrid call <endpoint> <method> [<json> | -] [--timeout MS]\n"
                 "Calls <method> of <endpoint> (@host/app/runner) and prints the result body as\n"
                 "received.  The params default to {}; '-' reads them from stdin.  An error status\n"
                 "exits 1 with 'hybrid: call: <status> <message>' on stderr.\n",
        .globals = CLI_G_BUSCMD,
};
