/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what other hosts send a daemon (lib/broker/xhost.c, doc/cluster.md
 * "Bus calls between hosts"): every input gets a fresh broker of host "a" joined to a
 * stand-in cluster link that records what it publishes, with one local client
 * (org.fuzz.a/c0) that offers procedure "m" and subscribes to "@b/*" "*".  The input is a
 * list of chunks, the broker running between chunks until it goes quiet:
 *
 *   +------+--------+--------+----------------+
 *   | sel  | len lo | len hi | len bytes ...  |
 *   +------+--------+--------+----------------+
 *
 *   sel & 7: 0 call/a  1 reply/a  2 presence/b  3 event/b/org.fuzz.x/main/t
 *            4 call/a with a token  5 presence/a  6 event/a/...  7 bytes written by c0
 *   sel & 8: with the response topic _hybrid/reply/b
 *   sel & 16: with bytes 8..15 as correlation data (a frame's call id: the valid choice)
 *
 * Everything the broker publishes must be one whole frame (presence: online/offline),
 * everything it sends c0 well-formed frames; afterwards a bystander must still log in and
 * get its echo back, and freeing the broker must leave nothing behind (LeakSanitizer).
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker-harness.h"
#include "broker/xhost.h"

#define ECHO_ID 0x4543484f
#define ECHO_BODY "\"still serving\""
#define RX_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct client {
        fz_client fz;
        unsigned n_auth_ok;
        bool echo_ok;
} client;

static void on_frame(fz_client *fc, const wire_packet *p)
{
        client *c = (client *)fc;
        if (p->h.type == WIRE_AUTH_RESULT && p->h.status == 200)
                c->n_auth_ok++;
        if (p->h.type == WIRE_RESULT && p->h.call_id == ECHO_ID && p->h.status == 200 &&
            p->h.body_len == strlen(ECHO_BODY) && memcmp(p->body, ECHO_BODY, p->h.body_len) == 0)
                c->echo_ok = true;
}

static int rec_publish(void *ud, const xmsg *m)
{
        unsigned *n = ud;
        (*n)++;
        if (strstr(m->topic, "/presence/")) {
                assert((m->len == 6 && !memcmp(m->payload, "online", 6)) ||
                       (m->len == 7 && !memcmp(m->payload, "offline", 7)));
                return 0;
        }
        wire_packet pk;
        size_t used;
        assert(wire_parse(m->payload, m->len, WIRE_DEFAULT_MAX_BODY, &pk, &used) == 1 && used == m->len);
        return 0;
}

static int rec_subscribe(void *ud, const char *filter)
{
        assert(strncmp(filter, "_hybrid/", 8) == 0);
        return 0;
}

static const xhost_ops rec_ops = { rec_publish, rec_subscribe, rec_subscribe };

static void send_builtin(client *c, uint64_t id, const char *method, const char *json)
{
        static const char to[] = "@localhost/org.hybridos.bus/builtin";
        wire_hdr h = { .type = WIRE_CALL, .call_id = id, .timeout_ms = 1000 };
        fz_client_send(&c->fz, &h, to, strlen(to), method, strlen(method), json, strlen(json));
}

static void login(client *c, const char *app, const char *runner)
{
        char body[160];
        wire_hdr h = { .type = WIRE_AUTH };
        int n = snprintf(body, sizeof body, "{\"protocol\":\"%s\",\"version\":%d,\"app\":\"%s\",\"runner\":\"%s\"}",
                         WIRE_PROTOCOL, WIRE_VERSION, app, runner);
        fz_client_send(&c->fz, &h, NULL, 0, NULL, 0, body, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const topics[8] = {
                "_hybrid/call/a", "_hybrid/reply/a", "_hybrid/presence/b", "_hybrid/event/b/org.fuzz.x/main/t",
                "_hybrid/call/a", "_hybrid/presence/a", "_hybrid/event/a/org.fuzz.a/c0/t", NULL,
        };
        static const char yaml[] = "host: a\nlimits:\n  max_body: 4096\n  max_frame: 8192\n"
                                   "  max_pending_calls: 8\n  max_cluster_calls: 8\n";
        hyb_broker_config *cfg = NULL;
        hyb_error e;
        client c0 = { 0 }, by = { 0 };
        unsigned published = 0;

        fz_setup_once("xhost");
        if (hyb_broker_config_new(&cfg) < 0 || hyb_broker_config_load_string(cfg, yaml, strlen(yaml), &e) < 0)
                abort();
        hyb_broker *b = fz_broker_start(cfg);
        if (xhost_attach(b, "", &rec_ops, &published) < 0)
                abort();
        xhost_online(b);
        fz_client_connect(&c0.fz, RX_MAX, on_frame);
        fz_pump();
        login(&c0, "org.fuzz.a", "c0");
        fz_pump();
        assert(c0.n_auth_ok == 1);
        send_builtin(&c0, 1, "registerProcedure", "{\"methodName\":\"m\"}");
        send_builtin(&c0, 2, "subscribeEvent", "{\"endpointName\":\"@b/*\",\"bubbleName\":\"*\"}");
        fz_pump();

        while (size >= 3) {
                unsigned sel = data[0];
                size_t len = (size_t)data[1] | (size_t)data[2] << 8;
                data += 3;
                size -= 3;
                if (len > size)
                        len = size;
                if ((sel & 7) == 7) {
                        fz_client_write(&c0.fz, data, len);
                } else {
                        xmsg m = { .topic = topics[sel & 7], .payload = data, .len = len,
                                   .response_topic = sel & 8 ? "_hybrid/reply/b" : NULL,
                                   .corr = sel & 16 && len >= 16 ? data + 8 : NULL,
                                   .corr_len = sel & 16 && len >= 16 ? 8 : 0,
                                   .token = (sel & 7) == 4 ? "not.a.token" : NULL,
                                   .for_host = sel & 32 ? "!$self, *" : NULL, .for_app = sel & 64 ? "org.fuzz.*" : NULL };
                        xhost_receive(b, &m);
                }
                fz_pump();
                data += len;
                size -= len;
        }

        /* the bystander */
        fz_client_connect(&by.fz, RX_MAX, on_frame);
        fz_pump();
        login(&by, "org.fuzz.d", "bystander");
        fz_pump();
        assert(by.n_auth_ok == 1);
        {
                static const char to[] = "@localhost/org.hybridos.bus/builtin";
                wire_hdr h = { .type = WIRE_CALL, .call_id = ECHO_ID, .timeout_ms = 1000 };
                fz_client_send(&by.fz, &h, to, strlen(to), "echo", 4, ECHO_BODY, strlen(ECHO_BODY));
                fz_pump();
                assert(by.echo_ok);
        }
        assert(published >= 1); /* at least the presence */
        fz_finish(b, cfg);
        return 0;
}
