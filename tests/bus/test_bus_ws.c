/* SPDX-License-Identifier: MIT */
/*
 * The bus client's WebSocket pieces that need no server (lib/bus/bus-ws.c): URLs taken
 * apart (doc/bus.md "Remote brokers"), the answer to the upgrade checked against RFC 6455
 * section 4.1 (its sample key and accept value, section 1.3), and byte streams from a
 * "server" framed by hand per RFC 6455 section 5.2: unmasked binary frames, fragments, a
 * ping, a close frame, a masked frame, a text frame.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus-internal.h"
#include "bus/bus-ws.h"
#include "edge/tls.h"
#include "buspieces.h"

#define SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

START_TEST(url_forms)
{
        static const struct {
                const char *url;
                bool tls;
                const char *host, *port, *hostport, *path;
        } ok[] = {
                { "ws://127.0.0.1:8080/bus/ws", false, "127.0.0.1", "8080", "127.0.0.1:8080", "/bus/ws" },
                { "wss://hub.example:8443/bus/ws", true, "hub.example", "8443", "hub.example:8443", "/bus/ws" },
                { "WSS://hub.example/x?y=1", true, "hub.example", "443", "hub.example:443", "/x?y=1" },
                { "ws://hub.example", false, "hub.example", "80", "hub.example:80", "/bus/ws" },
                { "ws://[::1]:9000/bus/ws", false, "::1", "9000", "[::1]:9000", "/bus/ws" },
        };
        static const char *bad[] = {
                "ws://user@host/bus/ws", "ws://host/bus/ws#frag", "ws://:80/bus/ws", "ws://host:0/",
                "ws://host:65536/", "ws://host:+80/", "ws://host:80x/", "ws://host:/", "ws://[::1/",
                "ws://ho st/", "ws://host/a b", "ws://host/\x7f", "ws://[::1]x/", "ws:///bus/ws",
        };

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                bus_ws_url u;
                hyb_error e;

                hyb_error_clear(&e);
                ck_assert_msg(bus_ws_is_url(ok[i].url), "%s", ok[i].url);
                ck_assert_msg(bus_ws_url_parse(ok[i].url, &u, &e) == 0, "%s: %s", ok[i].url, e.message);
                ck_assert(u.tls == ok[i].tls);
                ck_assert_str_eq(u.host, ok[i].host);
                ck_assert_str_eq(u.port, ok[i].port);
                ck_assert_str_eq(u.hostport, ok[i].hostport);
                ck_assert_str_eq(u.path, ok[i].path);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                bus_ws_url u;
                hyb_error e;

                hyb_error_clear(&e);
                ck_assert_msg(bus_ws_url_parse(bad[i], &u, &e) == -EINVAL, "%s accepted", bad[i]);
                ck_assert_msg(e.message[0], "%s: no message", bad[i]);
        }
        ck_assert(!bus_ws_is_url("/run/hybrid/bus.sock"));
        ck_assert(!bus_ws_is_url("http://host/"));
}
END_TEST

static int check_head(const char *text, hyb_error *e)
{
        bus_ws_url u = { .host = "h", .port = "80", .hostport = "h:80", .path = "/bus/ws" };
        char *head = strdup(text);
        int r;

        ck_assert_ptr_nonnull(head);
        hyb_error_clear(e);
        r = bus_ws_check_response(head, SAMPLE_ACCEPT, &u, e);
        free(head);
        return r;
}

START_TEST(upgrade_answers)
{
        char accept[EDGE_WS_ACCEPT_SIZE], key[EDGE_WS_KEY_SIZE], key2[EDGE_WS_KEY_SIZE];
        hyb_error e;

        /* RFC 6455 1.3: the sample key's accept value */
        ck_assert_int_eq(edge_tls_ws_accept(SAMPLE_KEY, strlen(SAMPLE_KEY), accept), 0);
        ck_assert_str_eq(accept, SAMPLE_ACCEPT);
        /* a fresh key: 16 random bytes in base64, a new one each time */
        ck_assert_int_eq(edge_tls_ws_key(key), 0);
        ck_assert_int_eq(edge_tls_ws_key(key2), 0);
        ck_assert_uint_eq(strlen(key), 24);
        ck_assert_str_ne(key, key2);
        ck_assert_int_eq(edge_tls_ws_accept(key, strlen(key), accept), 0);

        ck_assert_int_eq(check_head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                    "Connection: Upgrade\r\nSec-WebSocket-Accept: " SAMPLE_ACCEPT
                                    "\r\nSec-WebSocket-Protocol: hybrid.bus.v1\r\n", &e), 0);
        /* header names and the tokens of Upgrade/Connection in any case, lists, spaces */
        ck_assert_int_eq(check_head("HTTP/1.1 101 OK\r\nupgrade:  WebSocket \r\n"
                                    "CONNECTION: keep-alive, upgrade\r\nsec-websocket-accept:"
                                    SAMPLE_ACCEPT "\r\nsec-websocket-protocol: hybrid.bus.v1\r\n", &e), 0);
        /* each missing or wrong piece is a protocol error naming it */
        ck_assert_int_eq(check_head("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: " SAMPLE_KEY "\r\n"
                                    "Sec-WebSocket-Protocol: hybrid.bus.v1\r\n", &e), HYB_E_PROTOCOL);
        ck_assert_ptr_nonnull(strstr(e.message, "Sec-WebSocket-Accept"));
        ck_assert_int_eq(check_head("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n", &e), HYB_E_PROTOCOL);
        ck_assert_ptr_nonnull(strstr(e.message, "hybrid.bus.v1"));
        ck_assert_int_eq(check_head("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"
                                    "Sec-WebSocket-Protocol: hybrid.bus.v1, other\r\n", &e), HYB_E_PROTOCOL);
        ck_assert_int_eq(check_head("HTTP/1.1 101 OK\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"
                                    "Sec-WebSocket-Protocol: hybrid.bus.v1\r\n", &e), HYB_E_PROTOCOL);
        ck_assert_int_eq(check_head("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: close\r\n"
                                    "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"
                                    "Sec-WebSocket-Protocol: hybrid.bus.v1\r\n", &e), HYB_E_PROTOCOL);
        ck_assert_int_eq(check_head("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"
                                    "Sec-WebSocket-Protocol: hybrid.bus.v1\r\n"
                                    "Sec-WebSocket-Extensions: permessage-deflate\r\n", &e), HYB_E_PROTOCOL);
        ck_assert_int_eq(check_head("SSH-2.0-OpenSSH\r\n", &e), HYB_E_PROTOCOL);
        /* a refusal is its status's code, the status line in the message */
        ck_assert_int_eq(check_head("HTTP/1.1 401 Unauthorized\r\n", &e), HYB_E_UNAUTHORIZED);
        ck_assert_ptr_nonnull(strstr(e.message, "401 Unauthorized"));
        ck_assert_int_eq(check_head("HTTP/1.1 404 Not Found\r\n", &e), HYB_E_NOT_FOUND);
        ck_assert_int_eq(check_head("HTTP/1.0 200 OK\r\n", &e), HYB_E_PROTOCOL);
        /* the status line as RFC 9112 4 has it: one space each side of 3 digits (fuzz_wsclient
         * found a vertical tab taken for the space: corpus/wsclient/resp-vtab-status) */
        static const char *const rest = "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                        "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"
                                        "Sec-WebSocket-Protocol: hybrid.bus.v1\r\n";
        static const char *const lines[] = { "HTTP/1.1\v101 Switching", "HTTP/1.1  101 OK",
                                             "HTTP/1.1\t101 OK", "HTTP/1.1 +101 OK",
                                             "HTTP/1.1 1010 OK", "HTTP/1.1 10 OK", "HTTP/1.2 101 OK",
                                             "HTTP/1.1 101\tOK" };
        char buf[512];

        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
                snprintf(buf, sizeof(buf), "%s%s", lines[i], rest);
                ck_assert_msg(check_head(buf, &e) == HYB_E_PROTOCOL, "'%s' accepted", lines[i]);
                ck_assert_ptr_nonnull(strstr(e.message, "not an HTTP response"));
        }
        snprintf(buf, sizeof(buf), "HTTP/1.1 101%s", rest); /* no reason phrase: allowed */
        ck_assert_int_eq(check_head(buf, &e), 0);
}
END_TEST

/* A frame as a server sends it (RFC 6455 5.2), unmasked unless mask is set. */
static size_t frame(uint8_t *out, bool fin, int op, const void *payload, size_t len, bool mask)
{
        size_t n = 0;

        out[n++] = (uint8_t)((fin ? 0x80 : 0) | op);
        if (len < 126)
                out[n++] = (uint8_t)((mask ? 0x80 : 0) | len);
        else {
                out[n++] = (uint8_t)((mask ? 0x80 : 0) | 126);
                out[n++] = (uint8_t)(len >> 8);
                out[n++] = (uint8_t)len;
        }
        if (mask) {
                memset(out + n, 0, 4); /* a zero mask leaves the payload as is */
                n += 4;
        }
        memcpy(out + n, payload, len);
        return n + len;
}

/* A RESULT packet (doc/protocol.md "Frame") of call id with body. */
static size_t packet(uint8_t *out, uint64_t id, const char *body)
{
        wire_hdr h = { .type = WIRE_RESULT, .status = 200, .call_id = id };
        uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        size_t n = 0;
        int k = wire_build(&h, NULL, 0, NULL, 0, "ok", 2, body, strlen(body), hdr, iov);

        for (int i = 0; i < k; i++) {
                memcpy(out + n, iov[i].iov_base, iov[i].iov_len);
                n += iov[i].iov_len;
        }
        return n;
}

/* Runs the bytes through a client; returns the last bus_ws_read code, packets in *bus. */
static int feed(hyb_bus *bus, const uint8_t *data, size_t len)
{
        int r;

        memset(bus, 0, sizeof(*bus));
        bus->fd = -1;
        bus->max_body = WIRE_DEFAULT_MAX_BODY;
        ck_assert_int_eq(bus_ws_attach_bytes(bus, data, len), 0);
        while ((r = bus_ws_read(bus)) > 0)
                ;
        return r;
}

static void drop(hyb_bus *bus)
{
        bus_ws_shutdown(bus);
        bus_ws_free(bus->ws);
        free(bus->rbuf);
        free(bus->wbuf);
}

/* The close frame the client wrote last: its status code, or -1. */
static int close_code(const hyb_bus *bus)
{
        /* client frames are masked: 0x88, 0x80|len, 4 mask bytes, payload ^ mask */
        for (size_t i = 0; i + 8 <= bus->wlen; i++)
                if (bus->wbuf[i] == 0x88 && (bus->wbuf[i + 1] & 0x80) && (bus->wbuf[i + 1] & 0x7f) >= 2) {
                        const uint8_t *m = bus->wbuf + i + 2;
                        return ((bus->wbuf[i + 6] ^ m[0]) << 8) | (bus->wbuf[i + 7] ^ m[1]);
                }
        return -1;
}

START_TEST(server_streams)
{
        uint8_t pk[256], pk2[256], in[2048];
        size_t lp = packet(pk, 7, "{\"a\":1}"), lp2 = packet(pk2, 8, "[2]"), n = 0;
        hyb_bus bus;
        wire_packet p;
        size_t used;

        /* two messages, the second in three fragments with a ping between, then the end of
         * the stream: both packets kept (the end does not lose what came with it) */
        n += frame(in + n, true, 2, pk, lp, false);
        n += frame(in + n, false, 2, pk2, 10, false);
        n += frame(in + n, true, 9, "hi", 2, false);
        n += frame(in + n, false, 0, pk2 + 10, 5, false);
        n += frame(in + n, true, 0, pk2 + 15, lp2 - 15, false);
        ck_assert_int_eq(feed(&bus, in, n), HYB_E_CLOSED);
        ck_assert_uint_eq(bus.rlen, lp + lp2);
        ck_assert_int_eq(wire_parse(bus.rbuf, bus.rlen, WIRE_DEFAULT_MAX_BODY, &p, &used), 1);
        ck_assert_uint_eq(p.h.call_id, 7);
        ck_assert_int_eq(wire_parse(bus.rbuf + used, bus.rlen - used, WIRE_DEFAULT_MAX_BODY, &p, &used), 1);
        ck_assert_uint_eq(p.h.call_id, 8);
        ck_assert(memmem(bus.wbuf, bus.wlen, "\x8a\x82", 2) != NULL); /* the masked pong */
        drop(&bus);

        /* the server's close frame (1000, with a reason) is answered with its code */
        n = frame(in, true, 8, "\x03\xe8" "bye", 5, false);
        ck_assert_int_eq(feed(&bus, in, n), HYB_E_CLOSED);
        ck_assert_int_eq(close_code(&bus), 1000);
        ck_assert_int_eq(hyb_bus_get_close_reason(&bus, NULL), 0); /* a normal end */
        drop(&bus);

        /* another code says why the server ended it (the daemon's 1008: no AUTH accepted
         * in time), for hyb_bus_get_close_reason and the calls still pending */
        {
                const char *why = NULL;

                n = frame(in, true, 8, "\x03\xf0" "authentication timed out", 26, false);
                ck_assert_int_eq(feed(&bus, in, n), HYB_E_CLOSED);
                ck_assert_int_eq(close_code(&bus), 1008);
                ck_assert_int_eq(hyb_bus_get_close_reason(&bus, &why), 401);
                ck_assert_ptr_nonnull(why);
                ck_assert_msg(strstr(why, "1008") && strstr(why, "authentication timed out"),
                              "close reason '%s'", why);
                drop(&bus);
                n = frame(in, true, 8, "\x03\xf1", 2, false); /* 1009, no reason */
                ck_assert_int_eq(feed(&bus, in, n), HYB_E_CLOSED);
                ck_assert_int_eq(hyb_bus_get_close_reason(&bus, &why), 413);
                ck_assert_msg(strstr(why, "1009"), "close reason '%s'", why);
                drop(&bus);
        }

        /* two packets in one message: 1007, nothing delivered */
        memcpy(pk + lp, pk2, lp2);
        n = frame(in, true, 2, pk, lp + lp2, false);
        ck_assert_int_eq(feed(&bus, in, n), HYB_E_PROTOCOL);
        ck_assert_uint_eq(bus.rlen, 0);
        ck_assert_int_eq(close_code(&bus), 1007);
        drop(&bus);

        /* a text message: 1007 */
        n = frame(in, true, 1, "hello", 5, false);
        ck_assert_int_eq(feed(&bus, in, n), HYB_E_PROTOCOL);
        ck_assert_int_eq(close_code(&bus), 1007);
        drop(&bus);

        /* a masked frame from a server: 1002 (RFC 6455 5.1) */
        n = frame(in, true, 2, pk2, lp2, true);
        ck_assert_int_eq(feed(&bus, in, n), HYB_E_PROTOCOL);
        ck_assert_int_eq(close_code(&bus), 1002);
        drop(&bus);

        /* a message announced over the bound: 1009 before its payload is read */
        in[0] = 0x82;
        in[1] = 127;
        for (int i = 0; i < 8; i++)
                in[2 + i] = (uint8_t)((uint64_t)(WIRE_HDR_SIZE + WIRE_NAMES_MAX + WIRE_DEFAULT_MAX_BODY + 1) >> (56 - 8 * i));
        memset(in + 10, 'x', 64); /* the first bytes of its payload */
        ck_assert_int_eq(feed(&bus, in, 74), HYB_E_TOO_LARGE);
        ck_assert_int_eq(close_code(&bus), 1009);
        drop(&bus);

        /* the stream simply ends: closed, what came whole is kept */
        n = frame(in, true, 2, pk2, lp2, false);
        ck_assert_int_eq(feed(&bus, in, n - 3), HYB_E_CLOSED);
        ck_assert_uint_eq(bus.rlen, 0);
        drop(&bus);
}
END_TEST

/* Walks the client's frames in wbuf (masked, RFC 6455 5.2): the bytes of its pongs, and
 * the code of its close frame (-1: none). */
static int walk_client_frames(const hyb_bus *bus, size_t *pong_bytes)
{
        int code = -1;

        *pong_bytes = 0;
        for (size_t i = 0; i + 2 <= bus->wlen;) {
                uint8_t op = bus->wbuf[i] & 0x0f;
                size_t len = bus->wbuf[i + 1] & 0x7f, h = 2;

                ck_assert(bus->wbuf[i + 1] & 0x80);
                if (len == 126) {
                        len = ((size_t)bus->wbuf[i + 2] << 8) | bus->wbuf[i + 3];
                        h = 4;
                } else if (len == 127) {
                        len = 0;
                        for (int k = 0; k < 8; k++)
                                len = (len << 8) | bus->wbuf[i + 2 + k];
                        h = 10;
                }
                ck_assert_uint_le(i + h + 4 + len, bus->wlen);
                if (op == 0xa)
                        *pong_bytes += h + 4 + len;
                if (op == 0x8 && len >= 2) {
                        const uint8_t *m = bus->wbuf + i + h;

                        code = ((m[4] ^ m[0]) << 8) | (m[5] ^ m[1]);
                }
                i += h + 4 + len;
        }
        return code;
}

/* A server that pings and never reads the pongs (here nothing is ever written): the client
 * ends the connection with 1008 once BUS_WS_PONG_MAX of them wait, and what waits stays
 * under that bound (before, 8000 pings left 1 MiB of pongs waiting, without end). */
START_TEST(server_ping_flood)
{
        enum { N = 8000 };
        uint8_t ping[125], *in = malloc((size_t)N * (2 + sizeof(ping)));
        size_t n = 0, pongs = 0;
        hyb_bus bus;

        ck_assert_ptr_nonnull(in);
        memset(ping, 'p', sizeof(ping));
        for (int i = 0; i < N; i++)
                n += frame(in + n, true, 9, ping, sizeof(ping), false);
        ck_assert_int_eq(feed(&bus, in, n), HYB_E_PROTOCOL);
        ck_assert_int_eq(walk_client_frames(&bus, &pongs), 1008);
        /* what waits for the server: at most the bound (wslay drops the pongs still
         * queued once the close frame goes) */
        ck_assert_msg(bus.wlen <= BUS_WS_PONG_MAX + 2 * (6 + sizeof(ping)) + 128,
                      "%zu bytes waiting for the server (%zu of pongs)", bus.wlen, pongs);
        drop(&bus);
        free(in);
}
END_TEST

TCase *bp_ws_tcase(void)
{
        TCase *tc = tcase_create("ws_client");

        tcase_add_test(tc, url_forms);
        tcase_add_test(tc, upgrade_answers);
        tcase_add_test(tc, server_streams);
        tcase_add_test(tc, server_ping_flood);
        return tc;
}
