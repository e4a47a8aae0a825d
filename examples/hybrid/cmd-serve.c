/* SPDX-License-Identifier: MIT */
/*
 * hybrid serve <method> <json-reply> [--delay MS] [--for-host P] [--for-app P]
 *
 * Offers one procedure on this CLI's endpoint that answers a fixed body.  With --delay
 * each call is answered later through the deferred reply API, so calls overlap and a
 * long delay makes a callee that "never answers" for deadline tests.  Prints the
 * endpoint name once the procedure is registered; SIGTERM / SIGINT end it (exit 0).
 */
#include <stdlib.h>
#include <string.h>

#include <hybrid/hybrid.h>

#include "cli-bus.h"

typedef struct pending {
        struct pending *next;
        hyb_bus_request *req;
        uint64_t due_us;
} pending;

typedef struct server {
        const char *reply;
        size_t reply_len;
        uint64_t delay_us;
        pending *queue; /* deferred answers, in arrival order (one delay: also due order) */
} server;

static void drop_pending(server *s, hyb_bus_request *req)
{
        for (pending **p = &s->queue; *p; p = &(*p)->next)
                if ((*p)->req == req) {
                        pending *dead = *p;

                        *p = dead->next;
                        hyb_bus_request_unref(dead->req);
                        free(dead);
                        return;
                }
}

static void on_cancel(hyb_bus_request *req, void *userdata)
{
        /* The broker gave up on the call (deadline or terminateCall): nothing to answer. */
        drop_pending(userdata, req);
}

static int on_call(hyb_bus_request *req, void *userdata)
{
        server *s = userdata;
        pending *p, **tail;

        if (s->delay_us == 0)
                return hyb_bus_request_reply(req, 200, s->reply, s->reply_len, HYB_BODY_JSON);
        p = calloc(1, sizeof(*p));
        if (!p)
                return hyb_bus_request_reply_error(req, 500, "out of memory");
        p->req = hyb_bus_request_ref(req);
        p->due_us = clibus_now_us() + s->delay_us;
        for (tail = &s->queue; *tail; tail = &(*tail)->next)
                ;
        *tail = p;
        hyb_bus_request_set_cancel_handler(req, on_cancel, s);
        return 0;
}

static uint64_t answer_due(void *userdata)
{
        server *s = userdata;
        uint64_t now = clibus_now_us();

        while (s->queue && s->queue->due_us <= now) {
                pending *p = s->queue;

                s->queue = p->next;
                /* A cancelled or closed call cannot be answered any more; that is fine. */
                (void)hyb_bus_request_reply(p->req, 200, s->reply, s->reply_len, HYB_BODY_JSON);
                hyb_bus_request_unref(p->req);
                free(p);
        }
        return s->queue ? s->queue->due_us : UINT64_MAX;
}

static int run_serve(cli_ctx *ctx)
{
        server s = { 0 };
        hyb_bus *bus = NULL;
        hyb_slot *slot = NULL;
        hyb_error e;
        char *reply = NULL;
        long delay;
        int r, st;

        if (ctx->nargs != 2)
                return cli_usage(ctx, "serve wants <method> <json-reply>");
        if (!cli_opt_long(ctx, "delay", 0, 0, 86400000, &delay))
                return EXIT_USAGE;
        st = clibus_json_arg(ctx, ctx->args[1], &reply, &s.reply_len);
        if (st)
                return st;
        s.reply = reply;
        s.delay_us = (uint64_t)delay * 1000u;

        clibus_block_signals();
        st = clibus_connect(ctx, &bus);
        if (st) {
                free(reply);
                return st;
        }
        hyb_error_clear(&e);
        r = hyb_bus_register_procedure(bus, ctx->args[0], cli_opt(ctx, "for-host"),
                                       cli_opt(ctx, "for-app"), on_call, &s, &slot, &e);
        if (r < 0) {
                st = clibus_fail(r == HYB_E_NOT_ACCEPTABLE ? EXIT_USAGE : clibus_exit_status(r),
                                 "serve", r, &e);
                goto out;
        }
        cli_println("%s", hyb_bus_get_endpoint_name(bus));

        r = clibus_run(bus, NULL, answer_due, &s);
        st = r < 0 ? clibus_stream_fail("serve", bus, r) : EXIT_OK;
out:
        while (s.queue) {
                pending *p = s.queue;

                s.queue = p->next;
                hyb_bus_request_unref(p->req);
                free(p);
        }
        hyb_slot_unref(slot);
        hyb_bus_unref(bus);
        free(reply);
        return st;
}

static const cli_option serve_options[] = {
        { "delay", true, "--delay MS      answer each call after MS milliseconds" },
        { "for-host", true, "--for-host P    hosts allowed to call (access list, default *)" },
        { "for-app", true, "--for-app P     apps allowed to call (access list, default *)" },
        { NULL, false, NULL },
};

const cli_command cmd_serve = {
        .name = "serve",
        .run = run_serve,
        .options = serve_options,
        .summary = "offer a procedure answering a fixed body",
        .usage = "usage: hybrid serve <method> <json-reply> [--delay MS] [--for-host P] [--for-app P]\n"
                 "Prints the endpoint name once registered; runs until SIGTERM or SIGINT (exit 0).\n",
        .globals = CLI_G_BUSCMD,
};
