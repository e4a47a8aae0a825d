/* SPDX-License-Identifier: MIT */
/*
 * hybrid fire <bubble> <json | ->
 *
 * Registers the bubble on this CLI's endpoint (access lists --for-host/--for-app), fires
 * it once with the broker's counts and prints them as the broker reports them:
 * {"delivered":N,"failed":M}.  Only standing pattern subscriptions can see the event:
 * the endpoint exists for this one command.
 */
#include <stdlib.h>

#include <hybrid/hybrid.h>

#include "cli-bus.h"

static int run_fire(cli_ctx *ctx)
{
        hyb_bus *bus = NULL;
        hyb_slot *slot = NULL;
        hyb_error e;
        char *body = NULL;
        size_t len;
        uint32_t delivered = 0, failed = 0;
        int r, st;

        if (ctx->nargs != 2)
                return cli_usage(ctx, "fire wants <bubble> <json>");
        st = clibus_json_arg(ctx, ctx->args[1], &body, &len);
        if (st)
                return st;
        st = clibus_connect(ctx, &bus);
        if (st)
                goto out;
        hyb_error_clear(&e);
        r = hyb_bus_register_event_flags(bus, ctx->args[0], cli_opt(ctx, "for-host"),
                                         cli_opt(ctx, "for-app"),
                                         cli_flag(ctx, "cluster") ? HYB_EVENT_CLUSTER : 0, &slot, &e);
        if (r < 0 && r != HYB_E_CONFLICT) { /* already registered is what we want */
                st = clibus_fail(r == HYB_E_NOT_ACCEPTABLE ? EXIT_USAGE : clibus_exit_status(r),
                                 "fire", r, &e);
                goto out;
        }
        r = hyb_bus_fire(bus, ctx->args[0], body, len, HYB_BODY_JSON, &delivered, &failed);
        if (r < 0) {
                st = clibus_fail(clibus_exit_status(r), "fire", r, NULL);
                goto out;
        }
        cli_println("{\"delivered\":%u,\"failed\":%u}", delivered, failed);
        st = EXIT_OK;
out:
        hyb_slot_unref(slot);
        hyb_bus_unref(bus);
        free(body);
        return st;
}

static const cli_option fire_options[] = {
        { "for-host", true, "--for-host P    hosts allowed to subscribe (access list, default *)" },
        { "for-app", true, "--for-app P     apps allowed to subscribe (access list, default *)" },
        { "cluster", false, "--cluster       publish it to the other hosts of the daemon's cluster too" },
        { NULL, false, NULL },
};

const cli_command cmd_fire = {
        .name = "fire",
        .run = run_fire,
        .options = fire_options,
        .summary = "register a bubble, fire it, print the delivery counts",
        .usage = "usage: hybrid fire <bubble> <json> [--for-host P] [--for-app P] [--cluster]\n"
                 "Fires the event <bubble> of this client's endpoint and prints\n"
                 "{\"delivered\":N,\"failed\":M} as counted by the broker.\n",
        .globals = CLI_G_BUSCMD,
};
