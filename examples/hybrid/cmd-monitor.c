/* SPDX-License-Identifier: MIT */
/*
 * hybrid monitor [--count N]   (administrators)
 *
 * One flushed line per packet the broker routes:
 *   <kind>\t<from>\t<to>\t<member>\t<call id>\t<status>\t<body>
 * bodies longer than 256 bytes are cut and marked "...(<length> bytes)".  With --json
 * each packet is a JSON object instead.  "ready" goes to stderr once enabled.
 */
#include <stdio.h>

#include <jansson.h>

#include <hybrid/hybrid.h>

#include "cli-bus.h"

#define BODY_SHOWN 256

typedef struct monitor {
        bool json;
        long left;
        bool done;
} monitor;

static void on_packet(hyb_bus *bus, const hyb_bus_monitor_record *rec, void *userdata)
{
        monitor *m = userdata;
        size_t shown = rec->body_len > BODY_SHOWN ? BODY_SHOWN : rec->body_len;
        bool binary = rec->flags & HYB_BODY_BINARY;

        if (m->done)
                return;
        if (m->json) {
                json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:b, s:I, s:s%}",
                                      "kind", rec->kind, "from", rec->from, "to", rec->to,
                                      "member", rec->member, "callId", (json_int_t)rec->call_id,
                                      "status", rec->status, "binary", binary, "length",
                                      (json_int_t)rec->body_len, "body",
                                      binary ? "" : (const char *)rec->body, binary ? 0 : shown);
                char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

                if (s)
                        cli_println("%s", s);
                free(s);
                json_decref(o);
        } else {
                printf("%s\t%s\t%s\t%s\t%llu\t%d\t", rec->kind, rec->from, rec->to, rec->member,
                       (unsigned long long)rec->call_id, rec->status);
                clibus_print_body(rec->body, shown, binary);
                if (shown < rec->body_len)
                        printf("...(%zu bytes)", rec->body_len);
                fputc('\n', stdout);
                fflush(stdout);
        }
        if (m->left > 0 && --m->left == 0)
                m->done = true;
}

static int run_monitor(cli_ctx *ctx)
{
        monitor m = { .json = ctx->json };
        hyb_bus *bus = NULL;
        hyb_slot *slot = NULL;
        hyb_error e;
        long count;
        int r, st;

        if (ctx->nargs != 0)
                return cli_usage(ctx, "monitor takes no arguments");
        if (!cli_opt_long(ctx, "count", -1, 1, 1000000000, &count))
                return EXIT_USAGE;
        m.left = count;
        clibus_block_signals();
        st = clibus_connect(ctx, &bus);
        if (st)
                return st;
        hyb_error_clear(&e);
        r = hyb_bus_monitor(bus, on_packet, &m, &slot, &e);
        if (r < 0) {
                st = clibus_fail(clibus_exit_status(r), "monitor", r, &e);
                goto out;
        }
        fputs("ready\n", stderr);
        fflush(stderr);
        r = clibus_run(bus, &m.done, NULL, NULL);
        st = r < 0 ? clibus_stream_fail("monitor", bus, r) : EXIT_OK;
out:
        hyb_slot_unref(slot);
        hyb_bus_unref(bus);
        return st;
}

static const cli_option monitor_options[] = {
        { "count", true, "--count N       exit after N packets" },
        { NULL, false, NULL },
};

const cli_command cmd_monitor = {
        .name = "monitor",
        .run = run_monitor,
        .options = monitor_options,
        .summary = "print every packet the broker routes (administrators only)",
        .usage = "usage: hybrid monitor [--count N]\n"
                 "One line per packet: <kind>\\t<from>\\t<to>\\t<member>\\t<call id>\\t<status>\\t<body>.\n",
        .globals = CLI_G_BUSCMD,
};
