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
 * made by tests/fuzz/broker-seeds.py.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "bus/wire.h"
#include "hybrid/broker.h"

#define N_CLIENTS 4 /* 0..2 driven by the input, 3 the bystander */
#define ECHO_ID 0x4543484f
#define ECHO_BODY "\"still serving\""
#define RX_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct client {
        int fd;
        uint8_t *rx;
        size_t rlen;
        unsigned n_frames; /* frames received from the broker */
        unsigned n_auth_ok; /* AUTH_RESULT 200 received */
        bool echo_ok; /* the RESULT 200 of the bystander's echo, body unchanged */
} client;

static struct event_base *base;
static char dir[] = "/tmp/hyb-fuzz-broker.XXXXXX";
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void remove_dir(void)
{
        unlink(sock_path);
        rmdir(dir);
}

static void setup_once(void)
{
        if (base)
                return;
        base = event_base_new();
        if (!base || !mkdtemp(dir))
                abort();
        snprintf(sock_path, sizeof sock_path, "%s/bus.sock", dir);
        atexit(remove_dir);
}

/* Reads what the broker sent; every complete frame must decode. */
static bool client_drain(client *c)
{
        bool got = false;

        if (c->fd < 0)
                return false;
        for (;;) {
                if (c->rlen == RX_MAX)
                        c->rlen = 0; /* a huge reply: only its frame headers are checked */
                ssize_t n = recv(c->fd, c->rx + c->rlen, RX_MAX - c->rlen, MSG_DONTWAIT);
                if (n <= 0)
                        break;
                got = true;
                c->rlen += (size_t)n;
                size_t off = 0;
                for (;;) {
                        wire_packet p;
                        size_t used;
                        int r = wire_parse(c->rx + off, c->rlen - off, UINT32_MAX, &p, &used);
                        /* The broker only ever sends frames its peers can decode. */
                        assert(r >= 0);
                        if (r == 0)
                                break;
                        c->n_frames++;
                        if (p.h.type == WIRE_AUTH_RESULT && p.h.status == 200)
                                c->n_auth_ok++;
                        if (p.h.type == WIRE_RESULT && p.h.call_id == ECHO_ID && p.h.status == 200 &&
                            p.h.body_len == strlen(ECHO_BODY) &&
                            memcmp(p.body, ECHO_BODY, p.h.body_len) == 0)
                                c->echo_ok = true;
                        off += used;
                }
                memmove(c->rx, c->rx + off, c->rlen - off);
                c->rlen -= off;
        }
        return got;
}

/* Runs the broker until neither it nor the clients have anything to do. */
static void pump(client *cl)
{
        int quiet = 0;

        for (int round = 0; round < 256 && quiet < 3; round++) {
                bool got = false;
                event_base_loop(base, EVLOOP_NONBLOCK);
                for (int i = 0; i < N_CLIENTS; i++)
                        got |= client_drain(&cl[i]);
                quiet = got ? 0 : quiet + 1;
        }
}

static void client_write(client *cl, int i, const uint8_t *p, size_t len)
{
        int stuck = 0;

        while (len > 0 && cl[i].fd >= 0 && stuck < 64) {
                ssize_t n = send(cl[i].fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n > 0) {
                        p += n;
                        len -= (size_t)n;
                        stuck = 0;
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        return; /* the broker closed this client */
                } else {
                        stuck++;
                }
                pump(cl);
        }
}

static void client_connect(client *cl, int i)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        cl[i] = (client){ .fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
        cl[i].rx = malloc(RX_MAX);
        memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
        if (cl[i].fd < 0 || !cl[i].rx || connect(cl[i].fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                abort();
}

static void client_login(client *cl, int i, const char *app, const char *runner)
{
        char body[160];
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        wire_hdr h = { .type = WIRE_AUTH };
        int n = snprintf(body, sizeof body,
                         "{\"protocol\":\"%s\",\"version\":%d,\"app\":\"%s\",\"runner\":\"%s\"}",
                         WIRE_PROTOCOL, WIRE_VERSION, app, runner);
        int k = wire_build(&h, NULL, 0, NULL, 0, NULL, 0, body, (size_t)n, hdr, iov);
        for (int j = 0; j < k; j++)
                client_write(cl, i, iov[j].iov_base, iov[j].iov_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        hyb_broker_config *cfg = NULL;
        hyb_broker *b = NULL;
        client cl[N_CLIENTS];

        setup_once();
        /* A small max_body and queue so the fuzzer reaches the 413 and queue-full paths. */
        if (hyb_broker_config_new(&cfg) < 0 || hyb_broker_config_set_socket(cfg, sock_path) < 0 ||
            hyb_broker_config_set_limit(cfg, "max_body", 4096) < 0 ||
            hyb_broker_config_set_limit(cfg, "max_frame", 8192) < 0 ||
            hyb_broker_config_set_limit(cfg, "send_queue_bytes", 65536) < 0 ||
            hyb_broker_config_set_limit(cfg, "max_pending_calls", 8) < 0 ||
            hyb_broker_new(cfg, base, &b, NULL) < 0)
                abort();
        hyb_broker_set_log(b, 0, NULL, NULL);
        if (hyb_broker_start(b, NULL) < 0)
                abort();

        for (int i = 0; i < N_CLIENTS - 1; i++)
                client_connect(cl, i);
        cl[N_CLIENTS - 1] = (client){ .fd = -1 };
        pump(cl);
        client_login(cl, 0, "org.fuzz.a", "c0");
        client_login(cl, 1, "org.fuzz.b", "c1");
        pump(cl);
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
                client_write(cl, who, data, len);
                pump(cl);
                if (close_after && cl[who].fd >= 0) {
                        close(cl[who].fd);
                        cl[who].fd = -1;
                        pump(cl);
                }
                data += len;
                size -= len;
        }

        /* The bystander: a name the input may have taken gets 409, so it tries a few. */
        client_connect(cl, 3);
        pump(cl);
        for (int k = 0; k < 4 && cl[3].n_auth_ok == 0; k++) {
                char runner[16];
                snprintf(runner, sizeof runner, "bystander%d", k);
                client_login(cl, 3, "org.fuzz.d", runner);
                pump(cl);
        }
        assert(cl[3].n_auth_ok == 1);
        {
                uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
                struct iovec iov[2];
                static const char to[] = "@localhost/org.hybridos.bus/builtin";
                wire_hdr h = { .type = WIRE_CALL, .call_id = ECHO_ID, .timeout_ms = 1000 };
                int k = wire_build(&h, NULL, 0, to, strlen(to), "echo", 4, ECHO_BODY,
                                   strlen(ECHO_BODY), hdr, iov);
                for (int j = 0; j < k; j++)
                        client_write(cl, 3, iov[j].iov_base, iov[j].iov_len);
                pump(cl);
                assert(cl[3].echo_ok);
        }

        for (int i = 0; i < N_CLIENTS; i++) {
                if (cl[i].fd >= 0)
                        close(cl[i].fd);
                free(cl[i].rx);
        }
        /* Every client is gone: the broker must notice each of them. */
        for (int round = 0; round < 1000 && hyb_broker_get_n_connections(b) > 0; round++)
                event_base_loop(base, EVLOOP_NONBLOCK);
        assert(hyb_broker_get_n_connections(b) == 0);
        hyb_broker_free(b);
        hyb_broker_config_unref(cfg);
        return 0;
}
