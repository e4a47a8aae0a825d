/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket transport of the bus client (ws:// and wss:// addresses, doc/bus.md
 * "Remote brokers").  bus-conn.c keeps its buffers and its loop integration; for a
 * WebSocket connection it hands each outgoing packet to bus_ws_queue, which frames it as
 * one masked binary message into the write buffer, writes that buffer through
 * bus_ws_write (a plain send, or mbedTLS records for wss://), and reads with bus_ws_read,
 * which appends the packet of every complete binary message to the read buffer:
 *
 *   packets -> bus_ws_queue -> wbuf (WebSocket frames) -> bus_ws_write -> [TLS] -> fd
 *   packets <- rbuf <- on_msg (one packet a message) <- wslay <- bus_ws_read <- [TLS] <- fd
 *
 * The framing (masks, control frames, fragments, the size bound) is libwslay's event API.
 */
#ifndef HYB_BUS_WS_H
#define HYB_BUS_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "hybrid/bus.h"
#include "wire.h"

typedef struct bus_ws bus_ws;

/* The subprotocol both ends name in the upgrade (Sec-WebSocket-Protocol). */
#define BUS_WS_SUBPROTOCOL "hybrid.bus.v1"
/* The path a URL without one gets. */
#define BUS_WS_DEFAULT_PATH "/bus/ws"
/* TCP connect, TLS handshake and upgrade must be done within this time. */
#define BUS_WS_CONNECT_TIMEOUT_MS 15000
/* The HTTP response to the upgrade, headers included. */
#define BUS_WS_RESPONSE_MAX 8192
/* The largest packet body a WebSocket client sends or takes, whatever the server's maxBody:
 * a message is at most the header, the names and this (close 1009 past it). */
#define BUS_WS_MAX_BODY WIRE_DEFAULT_MAX_BODY
/* Raw bytes one bus_ws_read takes off the socket before it lets packets be dispatched. */
#define BUS_WS_READ_BUDGET (256u * 1024)
/* Bytes of pongs the client queues while its output was never seen empty: past this a
 * server that pings and does not read is cut off (close 1008, HYB_E_PROTOCOL). */
#define BUS_WS_PONG_MAX (256u * 1024)

/* A ws:// or wss:// URL taken apart. */
typedef struct bus_ws_url {
        bool tls;
        char host[256];     /* without brackets: what getaddrinfo and the certificate see */
        char port[8];       /* decimal, 1..65535; 80 or 443 when the URL has none */
        char hostport[272]; /* the Host header: host (IPv6 in brackets) ":" port */
        char path[1024];    /* from the first '/', query included; BUS_WS_DEFAULT_PATH */
} bus_ws_url;

/* True when addr is a ws:// or wss:// URL (ASCII case of the scheme ignored). */
bool bus_ws_is_url(const char *addr);

/* Parses url (bus_ws_is_url true).  0, or -EINVAL with the reason in *reterr: user
 * information, a fragment, no host, a bad port, a path not starting with '/', a control,
 * space or non-ASCII byte in the path, a part too long. */
int bus_ws_url_parse(const char *url, bus_ws_url *u, hyb_error *reterr);

/*
 * Checks the head of the server's answer to the upgrade (NUL-terminated, status line and
 * headers, each line ending in \r\n, the empty line cut off) against RFC 6455 4.1 and our
 * contract: 101, Upgrade: websocket, Connection: upgrade, Sec-WebSocket-Accept equal to
 * accept, Sec-WebSocket-Protocol exactly hybrid.bus.v1, no extension.  The head may be
 * changed.  0, HYB_E_PROTOCOL, or the code of the refusing HTTP status; *reterr says why
 * (u names the server in the message).
 */
int bus_ws_check_response(char *head, const char *accept, const bus_ws_url *u,
                          hyb_error *reterr);

/*
 * For tests and fuzzing: makes bus (fd -1, ws NULL) a WebSocket client whose server sent
 * exactly data[0..len) after the upgrade, then closed; what it writes stays in bus->wbuf.
 * bus_ws_read then reads those bytes.  0 or -ENOMEM (bus->ws set even then).
 */
int bus_ws_attach_bytes(hyb_bus *bus, const uint8_t *data, size_t len);

/*
 * Connects bus (fd -1, ws NULL) to the WebSocket URL: resolves the host (IPv4 and IPv6,
 * getaddrinfo), connects, runs TLS for wss:// (verifying the server with o->ca_file and/or
 * o->pin, else $HYBRID_CA / $HYBRID_PIN; neither is -EINVAL) and the HTTP upgrade, all
 * within BUS_WS_CONNECT_TIMEOUT_MS.  Sets bus->fd and bus->ws (freed by bus_ws_free even
 * on failure).  Errors: -EINVAL (a malformed URL, no way to verify the server),
 * HYB_E_UNAVAILABLE (cannot connect, timed out), HYB_E_AUTH (the server's certificate),
 * HYB_E_PROTOCOL (an upgrade answer that breaks RFC 6455 or the subprotocol), the code of
 * an HTTP status that refused the upgrade (HYB_E_UNAUTHORIZED for 401...).
 */
int bus_ws_connect(hyb_bus *bus, const char *url, const hyb_bus_connect_options *o,
                   hyb_error *reterr);

/* The channel binding B of the token handshake: "ws-none" or "tls-exporter:...". */
int bus_ws_binding(const bus_ws *ws, char *out, size_t size);

/* Frames the packet iov[0..n) as one binary message and appends it to bus->wbuf.
 * 0, -ENOMEM, HYB_E_CLOSED (the connection is closing). */
int bus_ws_queue(hyb_bus *bus, const struct iovec *iov, int n);

/* Writes raw bytes of wbuf: > 0 taken, -EAGAIN, or -errno (-EPIPE: the peer is gone). */
ssize_t bus_ws_write(bus_ws *ws, const void *buf, size_t len);

/*
 * Reads what the socket has (up to BUS_WS_READ_BUDGET), answers pings and appends the
 * packet of every complete message to bus->rbuf.  1 progress, 0 nothing to read now,
 * HYB_E_CLOSED (the peer closed: close frame, close_notify or EOF), HYB_E_PROTOCOL (a text
 * message, a message that is not one packet, a framing error: the close frame is sent),
 * HYB_E_TOO_LARGE (a message over the bound: closed with 1009), -errno.
 */
int bus_ws_read(hyb_bus *bus);

/* Input that a poll of the fd would not announce (TLS plaintext, bytes over the budget). */
bool bus_ws_pending(const bus_ws *ws);

/* The largest message accepted from the server (a packet's whole frame). */
void bus_ws_set_max_message(bus_ws *ws, size_t max);

/* Queues a close frame (1000) and sends what the socket takes now, then close_notify for
 * wss://.  Does not close bus->fd.  Idempotent. */
void bus_ws_shutdown(hyb_bus *bus);

/* Frees ws (NULL: no-op). */
void bus_ws_free(bus_ws *ws);

#endif
