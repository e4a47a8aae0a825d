/* SPDX-License-Identifier: MIT */
/*
 * hybrid listen <endpoint-or-glob> <bubble-or-glob> [--count N]
 *
 * A standing subscription: one flushed line `<endpoint>\t<bubble>\t<body>` per event
 * (binary bodies as 0x<hex>), "ready" on stderr once the broker accepted it.  Ends on
 * SIGTERM / SIGINT, or after N events with --count.
 */
#include <stdio.h>

#include <hybrid/hybrid.h>

#include "cli-bus.h"

typedef struct listener {
        long left; /* events still wanted; < 0: no limit */
        bool done;
} listener;

static void on_event(hyb_bus *bus, const hyb_bus_event *ev, void *userdata)
{
        listener *l = userdata;
        const void *body;
        size_t len;

        if (l->done)
                return;
        body = hyb_bus_event_get_body(ev, &len);
        printf("%s\t%s\t", hyb_bus_event_get_source(ev), hyb_bus_event_get_bubble(ev));
        clibus_print_body(body, len, hyb_bus_event_is_binary(ev));
        fputc('\n', stdout);
        fflush(stdout);
        if (l->left > 0 && --l->left == 0)
                l->done = true;
}

static int run_listen(cli_ctx *ctx)
{
        listener l = { 0 };
        hyb_bus *bus = NULL;
        hyb_slot *slot = NULL;
        hyb_error e;
        long count;
        int r, st;

        if (ctx->nargs != 2)
                return cli_usage(ctx, "listen wants <endpoint-or-glob> <bubble-or-glob>");
        if (!cli_opt_long(ctx, "count", -1, 1, 1000000000, &count))
                return EXIT_USAGE;
        /* a malformed glob would match nothing and leave us waiting forever */
        st = clibus_check_endpoint(ctx, ctx->args[0], true);
        if (!st)
                st = clibus_check_member(ctx, "bubble", ctx->args[1], true);
        if (st)
                return st;
        l.left = count;
        clibus_block_signals();
        st = clibus_connect(ctx, &bus);
        if (st)
                return st;
        hyb_error_clear(&e);
        r = hyb_bus_subscribe(bus, ctx->args[0], ctx->args[1], on_event, &l, &slot, &e);
        if (r < 0) {
                st = clibus_fail(r == HYB_E_NOT_ACCEPTABLE ? EXIT_USAGE : clibus_exit_status(r),
                                 "listen", r, &e);
                goto out;
        }
        fputs("ready\n", stderr);
        fflush(stderr);
        r = clibus_run(bus, &l.done, NULL, NULL);
        st = r < 0 ? clibus_stream_fail("listen", bus, r) : EXIT_OK;
out:
        hyb_slot_unref(slot);
        hyb_bus_unref(bus);
        return st;
}

static const cli_option listen_options[] = {
        { "count", true, "--count N       exit after N events" },
        { NULL, false, NULL },
};

const cli_command cmd_listen = {
        .name = "listen",
        .run = run_listen,
        .options = listen_options,
        .summary = "print events as they come",
        .usage = "usage: hybrid listen <endpoint-or-glob> <bubble-or-glob> [--count N]\n"
                 "One line per event: <endpoint>\\t<bubble>\\t<body>; globs use * and ?, and the\n"
                 "endpoint has the form @host/app/runner.  Prints 'ready' on stderr once subscribed.\n",
        .globals = CLI_G_BUSCMD,
};
