/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for a live, in-process broker (lib/broker/): every input
 * gets a fresh broker on a Unix socket in a temp dir and three clients
 * connected to it.  Clients 0 and 1 log in first (as org.fuzz.a/c0 and
 * org.fuzz.b/c1, uid 0: an administrator), client 2 stays at the challenge so
 * the input can drive the handshake itself.  The input is then a list of
 * chunks, each written to one client's socket, the broker running between
 * chunks until it goes quiet:
 *
 *   +------+--------+--------+----------------+
 *   | sel  | len lo | len hi | len bytes ...  |   sel & 3: client (3 = 2)
 *   +------+--------+--------+----------------+   sel & 0x80: then close it
 *
 * so one input can register a procedure from one client, call it from the
 * other, answer it, subscribe, fire, cancel, monitor, disconnect mid-call...
 * Everything the broker sends must be well-formed frames.  Whatever the
 * input did, a bystander that connects afterwards must still log in and get
 * its echo back; then every client disconnects, the broker must drop every
 * connection, and freeing it must leave nothing behind (LeakSanitizer).  Seeds: tests/fuzz/corpus/broker/,
 * made by tests/fuzz/broker-seeds.py.  The broker, sockets and pump: broker-harness.c.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker-harness.h"

#define N_CLIENTS 4 /* 0..2 driven by the input, 3 the bystander */
#define ECHO_ID 0x4543484f
#define ECHO_BODY "\"still serving\""
#define RX_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct client {
        fz_client fz;
        unsigned n_frames; /* frames received from the broker */
        unsigned n_auth_ok; /* AUTH_RESULT 200 received */
        bool echo_ok; /* the RESULT 200 of the bystander's echo, body unchanged */
} client;

static void on_frame(fz_client *fc, const wire_packet *p)
{
        client *c = (client *)fc;

        c->n_frames++;
        if (p->h.type == WIRE_AUTH_RESULT && p->h.status == 200)
                c->n_auth_ok++;
        if (p->h.type == WIRE_RESULT && p->h.call_id == ECHO_ID && p->h.status == 200 &&
            p->h.body_len == strlen(ECHO_BODY) && memcmp(p->body, ECHO_BODY, p->h.body_len) == 0)
                c->echo_ok = true;
}

static void client_connect(client *c)
{
        *c = (client){ 0 };
        fz_client_connect(&c->fz, RX_MAX, on_frame);
}

static void client_login(client *c, const char *app, const char *runner)
{
        char body[160];
        wire_hdr h = { .type = WIRE_AUTH };
        int n = snprintf(body, sizeof body,
                         "{\"protocol\":\"%s\",\"version\":%d,\"app\":\"%s\",\"runner\":\"%s\"}",
                         WIRE_PROTOCOL, WIRE_VERSION, app, runner);

        fz_client_send(&c->fz, &h, NULL, 0, NULL, 0, body, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        hyb_broker_config *cfg = NULL;
        hyb_broker *b;
        client cl[N_CLIENTS];

        fz_setup_once("broker");
        /* A small max_body and queue so the fuzzer reaches the 413 and queue-full paths. */
        if (hyb_broker_config_new(&cfg) < 0 ||
            hyb_broker_config_set_limit(cfg, "max_body", 4096) < 0 ||
            hyb_broker_config_set_limit(cfg, "max_frame", 8192) < 0 ||
            hyb_broker_config_set_limit(cfg, "send_queue_bytes", 65536) < 0 ||
            hyb_broker_config_set_limit(cfg, "max_pending_calls", 8) < 0)
                abort();
        b = fz_broker_start(cfg);

        for (int i = 0; i < N_CLIENTS - 1; i++)
                client_connect(&cl[i]);
        cl[N_CLIENTS - 1] = (client){ .fz.fd = -1 };
        fz_pump();
        client_login(&cl[0], "org.fuzz.a", "c0");
        client_login(&cl[1], "org.fuzz.b", "c1");
        fz_pump();
        assert(cl[0].n_auth_ok == 1 && cl[1].n_auth_ok == 1);

        while (size >= 3) {
                int who = data[0] & 3;
                bool close_after = data[0] & 0x80;
                size_t len = (size_t)data[1] | (size_t)data[2] << 8;
                data += 3;
                size -= 3;
                if (len > size)
                        len = size;
                if (who == 3)
                        who = 2;
                fz_client_write(&cl[who].fz, data, len);
                fz_pump();
                if (close_after && cl[who].fz.fd >= 0) {
                        fz_client_close(&cl[who].fz);
                        fz_pump();
                }
                data += len;
                size -= len;
        }

        /* The bystander: a name the input may have taken gets 409, so it tries a few. */
        client_connect(&cl[3]);
        fz_pump();
        for (int k = 0; k < 4 && cl[3].n_auth_ok == 0; k++) {
                char runner[16];
                snprintf(runner, sizeof runner, "bystander%d", k);
                client_login(&cl[3], "org.fuzz.d", runner);
                fz_pump();
        }
        assert(cl[3].n_auth_ok == 1);
        {
                static const char to[] = "@localhost/org.hybridos.bus/builtin";
                wire_hdr h = { .type = WIRE_CALL, .call_id = ECHO_ID, .timeout_ms = 1000 };

                fz_client_send(&cl[3].fz, &h, to, strlen(to), "echo", 4, ECHO_BODY,
                               strlen(ECHO_BODY));
                fz_pump();
                assert(cl[3].echo_ok);
        }

        fz_finish(b, cfg);
        return 0;
}
