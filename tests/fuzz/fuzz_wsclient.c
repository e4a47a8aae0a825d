/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what the bus client's WebSocket transport (lib/bus/bus-ws.c) reads
 * from a server or a user; wslay does the framing.  The first byte picks the path, the rest
 * is its input.
 *   0  a URL after "ws://" (odd second byte: "wss://"): on success the host is not empty,
 *      the port is 1..65535 in decimal, the path starts with '/' and holds no byte <= 0x20
 *      or >= 0x7f, and the Host header is host:port (IPv6 in brackets)
 *   1  the head of an answer to the upgrade, checked with the accept value of the RFC's
 *      sample key: 0 only for a 101 that carries that accept value and hybrid.bus.v1
 *   2  a byte stream from a server through a wslay client context (unmasked frames
 *      required, fragments joined, messages bounded) into the read buffer: every packet
 *      that reaches it is exactly one frame (wire_parse reads it whole, or refuses a
 *      malformed header, which closes the connection), the reads end
 *      (HYB_E_CLOSED at the end of the bytes, or an error), nothing leaks
 * Any violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus-internal.h"
#include "bus/bus-ws.h"
#include "edge/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
        fprintf(stderr, "fuzz_wsclient: %s\n", what);
        abort();
}

static void url(const uint8_t *data, size_t size)
{
        bool tls = size > 0 && (data[0] & 1);
        char *text = malloc(size + 8);
        bus_ws_url u;

        if (!text)
                return;
        strcpy(text, tls ? "wss://" : "ws://");
        if (size > 1)
                memcpy(text + strlen(text), data + 1, size - 1);
        text[(tls ? 6 : 5) + (size > 1 ? size - 1 : 0)] = '\0';
        if (bus_ws_url_parse(text, &u, NULL) == 0) {
                unsigned long port = strtoul(u.port, NULL, 10);
                char hp[sizeof(u.hostport)];

                if (!u.host[0] || port == 0 || port > 65535 || u.path[0] != '/' || u.tls != tls)
                        fail("url: accepted without host, port or path");
                for (const char *p = u.path; *p; p++)
                        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                                fail("url: a control or non-ASCII byte in the path");
                snprintf(hp, sizeof(hp), strchr(u.host, ':') ? "[%s]:%s" : "%s:%s", u.host, u.port);
                if (strcmp(hp, u.hostport) != 0)
                        fail("url: Host header is not host:port");
        }
        free(text);
}

static void response(const uint8_t *data, size_t size)
{
        /* RFC 6455 1.3: key dGhlIHNhbXBsZSBub25jZQ== gives this accept value */
        static const char accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        bus_ws_url u = { .host = "h", .port = "1", .hostport = "h:1", .path = "/bus/ws" };
        char *head = malloc(size + 1);
        hyb_error e;
        int r;

        if (!head)
                return;
        memcpy(head, data, size);
        head[size] = '\0';
        hyb_error_clear(&e);
        r = bus_ws_check_response(head, accept, &u, &e);
        if (r == 0) {
                memcpy(head, data, size);
                if (!memmem(head, size, accept, sizeof(accept) - 1) ||
                    !memmem(head, size, BUS_WS_SUBPROTOCOL, strlen(BUS_WS_SUBPROTOCOL)) ||
                    !memmem(head, size, " 101", 4))
                        fail("response: accepted without 101, the accept value or the subprotocol");
        } else if (!e.message[0])
                fail("response: refused without a message");
        free(head);
}

static void stream(const uint8_t *data, size_t size)
{
        hyb_bus *bus = calloc(1, sizeof(*bus));
        int r = 0, rounds = 0;

        if (!bus)
                return;
        bus->fd = -1;
        bus->max_body = 4096;
        if (bus_ws_attach_bytes(bus, data, size) < 0)
                goto out;
        bus_ws_set_max_message(bus->ws, WIRE_HDR_SIZE + WIRE_NAMES_MAX + 4096);
        while ((r = bus_ws_read(bus)) > 0)
                if (++rounds > 1000000)
                        fail("stream: the reads do not end");
        if (r == 0)
                fail("stream: 'nothing now' after the end of the bytes");
        /* the read buffer holds whole packets only, one after another */
        while (bus->rpos < bus->rlen) {
                wire_packet p;
                size_t used = 0;

                r = wire_parse(bus->rbuf + bus->rpos, bus->rlen - bus->rpos,
                               WIRE_DEFAULT_MAX_BODY, &p, &used);
                if (r == 0)
                        fail("stream: a message that is not one whole packet reached the buffer");
                if (r < 0)
                        break; /* a malformed header: bus-conn.c closes the connection */
                bus->rpos += used;
        }
out:
        bus_ws_shutdown(bus);
        bus_ws_free(bus->ws);
        free(bus->rbuf);
        free(bus->wbuf);
        free(bus);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        switch (data[0] % 3) {
        case 0:
                url(data + 1, size - 1);
                break;
        case 1:
                response(data + 1, size - 1);
                break;
        default:
                stream(data + 1, size - 1);
                break;
        }
        return 0;
}
