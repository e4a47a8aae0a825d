/* SPDX-License-Identifier: MIT */
/*
 * The bus client over WebSocket (bus-ws.h has the picture): URL, connect, TLS, the
 * RFC 6455 opening handshake, and the glue between wslay's event API and the buffers of
 * bus-conn.c.  wslay never touches the socket itself: its send callback appends frames to
 * the bus's write buffer (which bus-conn.c flushes as for a Unix socket), its receive
 * callback reads the socket (through TLS for wss://).
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wslay/wslay.h>

#include "bus-internal.h"
#include "bus-ws.h"
#include "common/util.h"
#include "edge/tls.h"
#include "token/crypto.h"

struct bus_ws {
        hyb_bus *bus; /* not referenced: the bus owns us */
        int fd;
        wslay_event_context_ptr ctx;
        edge_tls *tls_conf;
        edge_tls_conn *tls; /* wss:// only */
        /* bytes that came after the upgrade response: the first frames */
        uint8_t *pre;
        size_t pre_pos, pre_len;
        size_t budget;     /* raw bytes this bus_ws_read may still take */
        bool throttled;    /* stopped at the budget with input left */
        bool progress;     /* a byte or a message came in */
        bool eof;          /* the socket or TLS said end of stream */
        bool shut;         /* bus_ws_shutdown ran */
        size_t pong_backlog; /* bytes of pongs queued since the output was seen empty */
        int err;           /* why we are closing (our side found the fault), else 0 */
        int sys_err;       /* a socket or TLS failure, -errno */
        unsigned fragments; /* frames of the message being received */
};

bool bus_ws_is_url(const char *addr)
{
        return addr && (strncasecmp(addr, "ws://", 5) == 0 || strncasecmp(addr, "wss://", 6) == 0);
}

/* ------------------------------------------------------------------ URL */

int bus_ws_url_parse(const char *url, bus_ws_url *u, hyb_error *reterr)
{
        const char *p, *h, *he, *path;
        size_t hl;

        memset(u, 0, sizeof(*u));
        u->tls = strncasecmp(url, "wss://", 6) == 0;
        p = url + (u->tls ? 6 : 5);
        path = p + strcspn(p, "/?#");
        if (memchr(p, '@', (size_t)(path - p)))
                return err_set(reterr, -EINVAL, -1, "%s: user information is not supported", url);
        if (strchr(p, '#'))
                return err_set(reterr, -EINVAL, -1, "%s: a WebSocket URL has no fragment", url);
        h = p;
        if (*h == '[') {
                he = memchr(h, ']', (size_t)(path - h));
                if (!he)
                        return err_set(reterr, -EINVAL, -1, "%s: unterminated IPv6 address", url);
                h++;
                hl = (size_t)(he - h);
                he++;
        } else {
                he = memchr(h, ':', (size_t)(path - h));
                if (!he)
                        he = path;
                hl = (size_t)(he - h);
        }
        if (hl == 0 || hl >= sizeof(u->host))
                return err_set(reterr, -EINVAL, -1, "%s: no host or a host name too long", url);
        memcpy(u->host, h, hl);
        for (size_t i = 0; i < hl; i++)
                if (!isalnum((unsigned char)u->host[i]) && !strchr(".-_:%", u->host[i]))
                        return err_set(reterr, -EINVAL, -1, "%s: bad character in the host", url);
        if (*he == ':') {
                size_t pl = (size_t)(path - he - 1);
                char *end;
                unsigned long n;

                if (pl == 0 || pl >= sizeof(u->port))
                        return err_set(reterr, -EINVAL, -1, "%s: bad port", url);
                memcpy(u->port, he + 1, pl);
                n = strtoul(u->port, &end, 10);
                if (*end || n == 0 || n > 65535 || !isdigit((unsigned char)u->port[0]))
                        return err_set(reterr, -EINVAL, -1, "%s: bad port", url);
        } else if (he != path)
                return err_set(reterr, -EINVAL, -1, "%s: bad host", url);
        else
                strcpy(u->port, u->tls ? "443" : "80");
        if (strchr(u->host, ':'))
                snprintf(u->hostport, sizeof(u->hostport), "[%s]:%s", u->host, u->port);
        else
                snprintf(u->hostport, sizeof(u->hostport), "%s:%s", u->host, u->port);
        if (!*path)
                path = BUS_WS_DEFAULT_PATH;
        else if (*path != '/')
                return err_set(reterr, -EINVAL, -1, "%s: the path must start with '/'", url);
        if (strlen(path) >= sizeof(u->path))
                return err_set(reterr, -EINVAL, -1, "%s: path too long", url);
        for (const char *c = path; *c; c++)
                if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
                        return err_set(reterr, -EINVAL, -1, "%s: bad character in the path", url);
        strcpy(u->path, path);
        return 0;
}

/* ------------------------------------------------------------------ raw I/O */

ssize_t bus_ws_write(bus_ws *ws, const void *buf, size_t len)
{
        ssize_t n;

        if (ws->fd < 0)
                return -EAGAIN; /* bus_ws_attach_bytes: output stays in the write buffer */
        if (ws->tls)
                return edge_tls_fd_write(ws->tls, buf, len);
        do
                n = send(ws->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
}

/* > 0 bytes, 0 EOF, -EAGAIN, -errno. */
static ssize_t raw_read(bus_ws *ws, void *buf, size_t len)
{
        ssize_t n;

        if (ws->tls)
                return edge_tls_fd_read(ws->tls, buf, len);
        if (ws->fd < 0)
                return 0; /* bus_ws_attach_bytes: the stream ends with its bytes */
        do
                n = recv(ws->fd, buf, len, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
}

/* The cancel fd of bus_connect_cancellable, or -1 (poll skips it). */
static int cancel_fd_of(const hyb_bus *bus)
{
        return bus->cancellable ? bus->cancel_fd : -1;
}

/* Waits for events on fd until deadline: 0, -ETIMEDOUT, or -ECANCELED once cancel_fd
 * (>= 0) is readable. */
static int wait_fd(int fd, int cancel_fd, short events, uint64_t deadline)
{
        struct pollfd pfd[2] = { { .fd = fd, .events = events },
                                 { .fd = cancel_fd, .events = POLLIN } };

        for (;;) {
                int r = poll(pfd, 2, deadline_poll_ms(deadline, UINT64_MAX));

                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (pfd[1].revents)
                        return -ECANCELED;
                return r == 0 ? -ETIMEDOUT : 0;
        }
}

/* ------------------------------------------------------------------ wslay callbacks */

static ssize_t cb_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *ud)
{
        bus_ws *ws = ud;
        ssize_t n;

        (void)flags;
        if (ws->pre_pos < ws->pre_len) {
                n = (ssize_t)(ws->pre_len - ws->pre_pos < len ? ws->pre_len - ws->pre_pos : len);
                memcpy(buf, ws->pre + ws->pre_pos, (size_t)n);
                ws->pre_pos += (size_t)n;
                ws->progress = true;
                return n;
        }
        if (ws->budget == 0) {
                ws->throttled = true;
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        n = raw_read(ws, buf, len < ws->budget ? len : ws->budget);
        if (n > 0) {
                ws->budget -= (size_t)n;
                ws->progress = true;
                return n;
        }
        if (n == -EAGAIN || n == 0) {
                /* The end of the stream is "nothing more now" for wslay: a failure here
                 * would make it drop the whole frames it holds unread (the broker's last
                 * ERROR, a close frame that came with the FIN); bus_ws_read ends it. */
                if (n == 0)
                        ws->eof = true;
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        ws->sys_err = (int)n;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
}

/* Frames go to the bus's write buffer; bus-conn.c writes it out. */
static ssize_t cb_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
        bus_ws *ws = ud;

        (void)flags;
        if (bus_wbuf_append(ws->bus, data, len) < 0) {
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
        }
        return (ssize_t)len;
}

static int cb_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
        (void)ud;
        if (crypto_random(buf, len) < 0) {
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
        }
        return 0;
}

/* Ends the connection for a fault of the peer: close frame with code, then HYB_E_*. */
static void refuse(bus_ws *ws, uint16_t code, const char *why, int err)
{
        if (ws->err)
                return;
        ws->err = err;
        (void)wslay_event_queue_close(ws->ctx, code, (const uint8_t *)why, strlen(why));
        wslay_event_shutdown_read(ws->ctx);
}

/* The bus status a server's close code stands for (hyb_bus_get_close_reason). */
static uint16_t close_code_status(uint16_t code)
{
        switch (code) {
        case 1013: /* try again later */
                return 503;
        case WSLAY_CODE_PROTOCOL_ERROR:
        case WSLAY_CODE_UNSUPPORTED_DATA:
        case WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA:
                return 400;
        case WSLAY_CODE_POLICY_VIOLATION:
                return 401; /* the daemon's: no AUTH accepted (doc/edge.md) */
        case WSLAY_CODE_MESSAGE_TOO_BIG:
                return 413;
        case WSLAY_CODE_INTERNAL_SERVER_ERROR:
                return 500;
        default:
                return 502;
        }
}

/* A server's close frame with a code other than 1000 and 1001 (a normal end, the server
 * going away) says why it ended the connection: kept as the bus's close reason unless an
 * ERROR packet gave one before. */
static void keep_close_reason(bus_ws *ws, const struct wslay_event_on_msg_recv_arg *arg)
{
        hyb_bus *bus = ws->bus;
        size_t rl = arg->msg_length > 2 ? arg->msg_length - 2 : 0;
        int n;

        if (!arg->status_code || arg->status_code == WSLAY_CODE_NORMAL_CLOSURE ||
            arg->status_code == WSLAY_CODE_GOING_AWAY || bus->close_status)
                return;
        bus->close_status = close_code_status(arg->status_code);
        n = snprintf(bus->close_msg, sizeof bus->close_msg,
                     "the server closed the WebSocket: %u%s%.*s", arg->status_code,
                     rl ? " " : "", (int)rl, rl ? (const char *)arg->msg + 2 : "");
        /* the reason is UTF-8 (wslay checked it): controls are not shown as they are */
        for (int i = 0; i < n && (size_t)i < sizeof bus->close_msg; i++)
                if ((unsigned char)bus->close_msg[i] < 0x20 || bus->close_msg[i] == 0x7f)
                        bus->close_msg[i] = '?';
}

/* wslay keeps each frame's payload in a buffer of its own (~50 bytes past the payload): a
 * server sending a message as 1-byte fragments would cost ~50 times the message bound.
 * Past this many frames the message is refused (1009), as the daemon's edge refuses it. */
#define BUS_WS_MAX_FRAGMENTS 1024u

static void cb_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *ud)
{
        bus_ws *ws = ud;

        (void)ctx;
        if (arg->opcode & 0x8)
                return; /* control frames: one frame each, 125 bytes at most */
        if (arg->opcode != WSLAY_CONTINUATION_FRAME)
                ws->fragments = 0;
        if (++ws->fragments > BUS_WS_MAX_FRAGMENTS)
                refuse(ws, WSLAY_CODE_MESSAGE_TOO_BIG, "a message in too many fragments",
                       HYB_E_PROTOCOL);
}

static void cb_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud)
{
        bus_ws *ws = ud;
        wire_hdr h;

        (void)ctx;
        if (ws->err)
                return;
        switch (arg->opcode) {
        case WSLAY_BINARY_FRAME:
                /* exactly one packet, byte for byte the frame of the Unix socket */
                if (arg->msg_length < WIRE_HDR_SIZE || wire_hdr_decode(arg->msg, &h) < 0 ||
                    wire_frame_len(&h) != arg->msg_length) {
                        refuse(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA,
                               "a message must hold exactly one bus packet", HYB_E_PROTOCOL);
                        return;
                }
                if (bus_rbuf_append(ws->bus, arg->msg, arg->msg_length) < 0) {
                        refuse(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory", -ENOMEM);
                        return;
                }
                ws->progress = true;
                return;
        case WSLAY_TEXT_FRAME:
                refuse(ws, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA,
                       "bus packets travel in binary messages", HYB_E_PROTOCOL);
                return;
        case WSLAY_CONNECTION_CLOSE:
                /* wslay answers with a close frame and stops reading */
                ws->eof = true;
                keep_close_reason(ws, arg);
                return;
        case WSLAY_PING:
                /* wslay queues its pong (a masked frame: 6 bytes of header); a server that
                 * pings and does not read them must not grow our output without end */
                ws->pong_backlog += 6 + arg->msg_length;
                if (ws->pong_backlog > BUS_WS_PONG_MAX)
                        refuse(ws, WSLAY_CODE_POLICY_VIOLATION,
                               "the server does not read the pongs to its pings", HYB_E_PROTOCOL);
                return;
        default:
                return; /* pong */
        }
}

/* ------------------------------------------------------------------ reading */

bool bus_ws_pending(const bus_ws *ws)
{
        return ws && !ws->err && !ws->eof &&
               (ws->throttled || ws->pre_pos < ws->pre_len || edge_tls_fd_pending(ws->tls) > 0);
}

void bus_ws_set_max_message(bus_ws *ws, size_t max)
{
        wslay_event_config_set_max_recv_msg_length(ws->ctx, max);
}

/* Moves queued control frames (pong, close) into wbuf and writes what the socket takes. */
static void send_queued(hyb_bus *bus)
{
        bus_ws *ws = bus->ws;

        if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) < 0 && !ws->err)
                ws->err = -ENOMEM;
        while (bus->wpos < bus->wlen) {
                ssize_t n = bus_ws_write(ws, bus->wbuf + bus->wpos, bus->wlen - bus->wpos);

                if (n <= 0)
                        return; /* the caller's next flush retries; a close is best effort */
                bus->wpos += (size_t)n;
        }
}

int bus_ws_read(hyb_bus *bus)
{
        bus_ws *ws = bus->ws;
        int r;

        if (ws->err)
                return ws->err;
        ws->budget = BUS_WS_READ_BUDGET;
        ws->throttled = ws->progress = false;
        if (bus->wpos == bus->wlen)
                ws->pong_backlog = 0; /* the server took all we sent */
        /* wslay reads until cb_recv says "would block" (nothing now, the end of the stream,
         * or the budget spent), a fault stops it, or a close frame came */
        r = wslay_event_recv(ws->ctx);
        if (r < 0 && !ws->eof && !ws->sys_err && !ws->err)
                ws->err = r == WSLAY_ERR_NOMEM ? -ENOMEM : HYB_E_PROTOCOL;
        send_queued(bus); /* pongs, and the close frame answering or refusing */
        if (!wslay_event_get_read_enabled(ws->ctx) && !ws->eof && !ws->err && !ws->sys_err)
                /* wslay stopped reading on its own: a framing error (1002) or a message
                 * over the bound (1009), its close frame sent above */
                ws->err = wslay_event_get_status_code_sent(ws->ctx) == WSLAY_CODE_MESSAGE_TOO_BIG
                                  ? HYB_E_TOO_LARGE
                                  : HYB_E_PROTOCOL;
        if (ws->err)
                return ws->err;
        if (ws->sys_err)
                return ws->sys_err == -ECONNRESET ? HYB_E_CLOSED : ws->sys_err;
        if (ws->eof)
                /* packets that came before the end are in rbuf: deliver them first */
                return ws->progress ? 1 : HYB_E_CLOSED;
        return ws->progress ? 1 : 0;
}

int bus_ws_queue(hyb_bus *bus, const struct iovec *iov, int n)
{
        bus_ws *ws = bus->ws;
        struct wslay_event_msg m = { .opcode = WSLAY_BINARY_FRAME };
        size_t len = 0, off = 0;
        uint8_t *msg;
        int r;

        if (ws->err || ws->shut || !wslay_event_get_write_enabled(ws->ctx))
                return HYB_E_CLOSED;
        for (int i = 0; i < n; i++)
                len += iov[i].iov_len;
        msg = malloc(len ? len : 1);
        if (!msg)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                memcpy(msg + off, iov[i].iov_base, iov[i].iov_len);
                off += iov[i].iov_len;
        }
        m.msg = msg;
        m.msg_length = len;
        r = wslay_event_queue_msg(ws->ctx, &m); /* copies */
        free(msg);
        if (r == 0)
                r = wslay_event_send(ws->ctx);
        if (r == WSLAY_ERR_NO_MORE_MSG)
                return HYB_E_CLOSED;
        return r < 0 ? -ENOMEM : 0;
}

/* ------------------------------------------------------------------ connect */

static int tcp_connect(const bus_ws_url *u, int cancel_fd, uint64_t deadline, int *ret_fd,
                       hyb_error *reterr)
{
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV };
        struct addrinfo *res = NULL;
        int r, last = ECONNREFUSED;

        r = getaddrinfo(u->host, u->port, &hints, &res);
        if (r != 0)
                return err_set(reterr, HYB_E_UNAVAILABLE, -1, "cannot resolve %s: %s", u->host,
                               r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
        for (struct addrinfo *a = res; a; a = a->ai_next) {
                int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                                a->ai_protocol);
                int one = 1, soerr = 0;
                socklen_t sl = sizeof(soerr);

                if (fd < 0) {
                        last = errno;
                        continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
                        if (errno != EINPROGRESS) {
                                last = errno;
                                close(fd);
                                continue;
                        }
                        r = wait_fd(fd, cancel_fd, POLLOUT, deadline);
                        if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
                                soerr = errno;
                        if (r < 0 || soerr) {
                                last = r < 0 ? -r : soerr;
                                close(fd);
                                if (r == -ETIMEDOUT || r == -ECANCELED)
                                        break;
                                continue;
                        }
                }
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                freeaddrinfo(res);
                *ret_fd = fd;
                return 0;
        }
        freeaddrinfo(res);
        return err_set(reterr, HYB_E_UNAVAILABLE, -1, "cannot connect to %s: %s", u->hostport,
                       strerror(last));
}

static int tls_setup(bus_ws *ws, const bus_ws_url *u, const hyb_bus_connect_options *o,
                     uint64_t deadline, hyb_error *reterr)
{
        const char *ca = o->ca_file, *pin_text = o->pin;
        uint8_t pin[EDGE_TLS_PIN_SIZE];
        int r;

        if (!ca && !pin_text) {
                ca = secure_getenv("HYBRID_CA");
                pin_text = secure_getenv("HYBRID_PIN");
                if (ca && !*ca)
                        ca = NULL;
                if (pin_text && !*pin_text)
                        pin_text = NULL;
        }
        if (!ca && !pin_text)
                return err_set(reterr, -EINVAL, -1,
                               "wss://%s: the server cannot be verified: give a CA file "
                               "(--ca, $HYBRID_CA) or its pinned key (--pin, $HYBRID_PIN)",
                               u->hostport);
        if (pin_text) {
                /* 64 hex digits, or base64 with or without curl's "sha256//" */
                size_t n = strlen(pin_text);
                bool hex = n == 2 * EDGE_TLS_PIN_SIZE;

                for (size_t i = 0; hex && i < n; i++)
                        hex = isxdigit((unsigned char)pin_text[i]);
                if (hex) {
                        for (size_t i = 0; i < EDGE_TLS_PIN_SIZE; i++) {
                                char b[3] = { pin_text[2 * i], pin_text[2 * i + 1], 0 };
                                pin[i] = (uint8_t)strtoul(b, NULL, 16);
                        }
                } else if (edge_tls_parse_pin(pin_text, pin) < 0)
                        return err_set(reterr, -EINVAL, -1,
                                       "bad pin '%s': the SHA-256 of the server's public key "
                                       "(SubjectPublicKeyInfo), as base64 (sha256//...) or 64 "
                                       "hex digits", pin_text);
        }
        r = edge_tls_client_new(ca, pin_text ? pin : NULL, &ws->tls_conf, reterr);
        if (r < 0)
                return r;
        hyb_error e;

        hyb_error_clear(&e);
        r = edge_tls_fd_open(ws->tls_conf, ws->fd, u->host, deadline, &ws->tls, &e);
        if (r < 0) /* which server refused, then why */
                return err_set(reterr, r, -1, "wss://%s: %s", u->hostport,
                               e.message[0] ? e.message : hyb_strerror(r));
        return 0;
}

/* The value of header name in the response head (NUL-terminated lines), trimmed; NULL. */
static const char *header(char *head, const char *name, char *out, size_t size)
{
        size_t nl = strlen(name);

        for (char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
                line += 2;
                if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
                        const char *v = line + nl + 1;
                        size_t vl = strcspn(v, "\r\n");

                        while (vl > 0 && (*v == ' ' || *v == '\t'))
                                v++, vl--;
                        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                                vl--;
                        if (vl >= size)
                                vl = size - 1;
                        memcpy(out, v, vl);
                        out[vl] = '\0';
                        return out;
                }
        }
        return NULL;
}

/* A comma-separated header value holding token (ASCII case ignored). */
static bool has_token(const char *value, const char *token)
{
        size_t tl = strlen(token);

        while (*value) {
                size_t l;

                value += strspn(value, " \t,");
                l = strcspn(value, ",");
                size_t e = l;
                while (e > 0 && (value[e - 1] == ' ' || value[e - 1] == '\t'))
                        e--;
                if (e == tl && strncasecmp(value, token, tl) == 0)
                        return true;
                value += l;
        }
        return false;
}

static int upgrade(bus_ws *ws, const bus_ws_url *u, uint64_t deadline, hyb_error *reterr)
{
        char key[EDGE_WS_KEY_SIZE], accept[EDGE_WS_ACCEPT_SIZE], req[1536];
        char head[BUS_WS_RESPONSE_MAX + 1], *end;
        size_t len, off = 0, got = 0;
        int r;

        r = edge_tls_ws_key(key);
        if (r < 0)
                return err_set(reterr, r, -1, "WebSocket key: %s", hyb_strerror(r));
        r = edge_tls_ws_accept(key, strlen(key), accept);
        if (r < 0)
                return err_set(reterr, r, -1, "WebSocket key: %s", hyb_strerror(r));
        len = (size_t)snprintf(req, sizeof(req),
                               "GET %s HTTP/1.1\r\n"
                               "Host: %s\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Key: %s\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "Sec-WebSocket-Protocol: " BUS_WS_SUBPROTOCOL "\r\n"
                               "\r\n",
                               u->path, u->hostport, key);
        if (len >= sizeof(req))
                return err_set(reterr, -EINVAL, -1, "WebSocket path too long");
        while (off < len) {
                ssize_t n = bus_ws_write(ws, req + off, len - off);

                if (n > 0) {
                        off += (size_t)n;
                        continue;
                }
                if (n != -EAGAIN ||
                    (r = wait_fd(ws->fd, cancel_fd_of(ws->bus), POLLOUT, deadline)) < 0)
                        return err_set(reterr, HYB_E_UNAVAILABLE, -1,
                                       "WebSocket upgrade to %s: %s", u->hostport,
                                       n != -EAGAIN ? strerror((int)-n)
                                                    : r == -ETIMEDOUT ? "timed out" : strerror(-r));
        }
        /* The response head; what follows it is the first frames (kept in pre). */
        for (;;) {
                ssize_t n;

                head[got] = '\0';
                end = memmem(head, got, "\r\n\r\n", 4);
                if (end) {
                        /* frames (binary) may follow; the head itself is text */
                        if (memchr(head, '\0', (size_t)(end - head)))
                                return err_set(reterr, HYB_E_PROTOCOL, -1,
                                               "WebSocket upgrade to %s: NUL byte in the "
                                               "response", u->hostport);
                        break;
                }
                if (got == BUS_WS_RESPONSE_MAX)
                        return err_set(reterr, HYB_E_PROTOCOL, -1,
                                       "WebSocket upgrade to %s: response head over %d bytes",
                                       u->hostport, BUS_WS_RESPONSE_MAX);
                if (ws->tls && edge_tls_fd_pending(ws->tls) == 0 &&
                    (r = wait_fd(ws->fd, cancel_fd_of(ws->bus), POLLIN, deadline)) < 0)
                        goto timeout;
                n = raw_read(ws, head + got, BUS_WS_RESPONSE_MAX - got);
                if (n == -EAGAIN) {
                        if (!ws->tls && (r = wait_fd(ws->fd, cancel_fd_of(ws->bus), POLLIN,
                                                     deadline)) < 0)
                                goto timeout;
                        continue;
                }
                if (n <= 0)
                        return err_set(reterr, HYB_E_UNAVAILABLE, -1,
                                       "WebSocket upgrade to %s: the server closed the "
                                       "connection%s%s", u->hostport, n < 0 ? ": " : "",
                                       n < 0 ? strerror((int)-n) : "");
                got += (size_t)n;
        }
        end += 4;
        ws->pre_len = got - (size_t)(end - head);
        if (ws->pre_len) {
                ws->pre = malloc(ws->pre_len);
                if (!ws->pre)
                        return -ENOMEM;
                memcpy(ws->pre, end, ws->pre_len);
        }
        end[-2] = '\0'; /* the head alone, its last line ending in \r\n */
        return bus_ws_check_response(head, accept, u, reterr);
timeout:
        return err_set(reterr, HYB_E_UNAVAILABLE, -1, "WebSocket upgrade to %s: %s", u->hostport,
                       r == -ETIMEDOUT ? "no answer in time" : strerror(-r));
}

int bus_ws_check_response(char *head, const char *accept, const bus_ws_url *u,
                          hyb_error *reterr)
{
        char v[256];
        int status, r;

        /* status-line = HTTP-version SP 3DIGIT SP reason (RFC 9112 4): exactly one space
         * each side, not any white space as sscanf's " %d" would skip (a vertical tab, two
         * spaces), nor a sign */
        if (strncmp(head, "HTTP/1.", 7) != 0 || (head[7] != '0' && head[7] != '1') ||
            head[8] != ' ' || !isdigit((unsigned char)head[9]) ||
            !isdigit((unsigned char)head[10]) || !isdigit((unsigned char)head[11]) ||
            (head[12] != ' ' && head[12] != '\r' && head[12] != '\0'))
                return err_set(reterr, HYB_E_PROTOCOL, -1,
                               "WebSocket upgrade to %s: not an HTTP response", u->hostport);
        status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
        if (status != 101) {
                const char *reason = head + strcspn(head, " ");

                reason += strspn(reason, " ");
                reason += strcspn(reason, " ");
                reason += strspn(reason, " ");
                r = hyb_err_from_status(status);
                return err_set(reterr, r ? r : HYB_E_PROTOCOL, -1,
                               "WebSocket upgrade to %s%s refused: %d %.*s", u->hostport, u->path,
                               status, (int)strcspn(reason, "\r\n"), reason);
        }
        if (!header(head, "Upgrade", v, sizeof(v)) || strcasecmp(v, "websocket") != 0 ||
            !header(head, "Connection", v, sizeof(v)) || !has_token(v, "upgrade"))
                return err_set(reterr, HYB_E_PROTOCOL, -1,
                               "WebSocket upgrade to %s: the 101 answer does not upgrade to "
                               "websocket", u->hostport);
        if (!header(head, "Sec-WebSocket-Accept", v, sizeof(v)) || strcmp(v, accept) != 0)
                return err_set(reterr, HYB_E_PROTOCOL, -1,
                               "WebSocket upgrade to %s: wrong Sec-WebSocket-Accept",
                               u->hostport);
        if (!header(head, "Sec-WebSocket-Protocol", v, sizeof(v)) ||
            strcmp(v, BUS_WS_SUBPROTOCOL) != 0)
                return err_set(reterr, HYB_E_PROTOCOL, -1,
                               "WebSocket upgrade to %s: the server did not accept the "
                               "subprotocol " BUS_WS_SUBPROTOCOL, u->hostport);
        if (header(head, "Sec-WebSocket-Extensions", v, sizeof(v)))
                return err_set(reterr, HYB_E_PROTOCOL, -1,
                               "WebSocket upgrade to %s: the server chose an extension (%s) "
                               "we did not offer", u->hostport, v);
        return 0;
}

/* The framing from now on: a wslay client context over ws's fd and pre bytes. */
static int ws_start(bus_ws *ws)
{
        static const struct wslay_event_callbacks cbs = {
                .recv_callback = cb_recv,
                .send_callback = cb_send,
                .genmask_callback = cb_genmask,
                .on_frame_recv_start_callback = cb_frame_start,
                .on_msg_recv_callback = cb_msg,
        };

        if (wslay_event_context_client_init(&ws->ctx, &cbs, ws) != 0)
                return -ENOMEM;
        bus_ws_set_max_message(ws, WIRE_HDR_SIZE + WIRE_NAMES_MAX + WIRE_DEFAULT_MAX_BODY);
        return 0;
}

int bus_ws_attach_bytes(hyb_bus *bus, const uint8_t *data, size_t len)
{
        bus_ws *ws = calloc(1, sizeof(*ws));

        if (!ws)
                return -ENOMEM;
        ws->bus = bus;
        ws->fd = -1;
        bus->ws = ws;
        if (len) {
                ws->pre = malloc(len);
                if (!ws->pre)
                        return -ENOMEM;
                memcpy(ws->pre, data, len);
                ws->pre_len = len;
        }
        return ws_start(ws);
}

int bus_ws_connect(hyb_bus *bus, const char *url, const hyb_bus_connect_options *o,
                   hyb_error *reterr)
{
        uint64_t deadline = hyb_now_usec() + BUS_WS_CONNECT_TIMEOUT_MS * 1000ull;
        bus_ws_url u;
        bus_ws *ws;
        int r;

        r = bus_ws_url_parse(url, &u, reterr);
        if (r < 0)
                return r;
        ws = calloc(1, sizeof(*ws));
        if (!ws)
                return -ENOMEM;
        ws->bus = bus;
        ws->fd = -1;
        bus->ws = ws;
        r = tcp_connect(&u, cancel_fd_of(bus), deadline, &ws->fd, reterr);
        if (r < 0)
                return r;
        bus->fd = ws->fd;
        if (u.tls) {
                r = tls_setup(ws, &u, o, deadline, reterr);
                if (r < 0)
                        return r;
        }
        r = upgrade(ws, &u, deadline, reterr);
        if (r < 0)
                return r;
        return ws_start(ws);
}

int bus_ws_binding(const bus_ws *ws, char *out, size_t size)
{
        char b[EDGE_TLS_BINDING_TEXT_MAX];
        int r;

        if (!ws->tls) {
                if (size < sizeof("ws-none"))
                        return -ENOBUFS;
                strcpy(out, "ws-none");
                return 0;
        }
        r = edge_tls_conn_binding_text(ws->tls, b);
        if (r < 0)
                return r;
        if (strlen(b) >= size)
                return -ENOBUFS;
        strcpy(out, b);
        return 0;
}

void bus_ws_shutdown(hyb_bus *bus)
{
        bus_ws *ws = bus->ws;

        if (!ws || ws->shut)
                return;
        ws->shut = true;
        if (ws->ctx && !ws->err && !ws->eof && !ws->sys_err) {
                (void)wslay_event_queue_close(ws->ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
                send_queued(bus);
        } else if (ws->ctx && (ws->err || ws->eof))
                send_queued(bus); /* our refusal or the answer to the peer's close */
        if (ws->tls) {
                edge_tls_fd_close(ws->tls);
                ws->tls = NULL;
        }
}

void bus_ws_free(bus_ws *ws)
{
        if (!ws)
                return;
        edge_tls_fd_close(ws->tls);
        edge_tls_unref(ws->tls_conf);
        if (ws->ctx)
                wslay_event_context_free(ws->ctx);
        free(ws->pre);
        free(ws);
}
