/* SPDX-License-Identifier: MIT */
/*
 * The TLS layer of the edge (lib/edge/tls.h): a server and a client TLS bufferevent over a
 * socketpair in one event loop, with the test-only certificates of tests/edge/certs
 * (README.md there): the handshake, the certificate checks (CA, name, pin, expiry), a peer
 * sending garbage or stalling, large transfers both ways under the buffer bound,
 * close_notify and a close without it, and evhttp serving through the layer.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "edge/https.h"
#include "edge/tls.h"
#include "hybrid/hybrid.h"
#include "suites.h"
#include "testutil.h"

#define BIG (2u << 20)

typedef struct side {
        struct bufferevent *bev;
        bool connected, eof, error, timeout, peer_closed;
        char err[200];
        char version[32], suite[96];
        uint8_t binding[EDGE_TLS_BINDING_SIZE];
        bool have_binding;
        size_t got;          /* bytes received and checked */
        bool bad_byte;       /* a byte that is not the pattern */
        size_t max_in;       /* most plaintext seen waiting in the input buffer */
        bool lazy;           /* drain from a timer, not from the read callback */
        bool hold;           /* take nothing for now */
        struct event *drain_ev;
        struct evbuffer *text; /* received, when kept as text */
        bool free_on_end;    /* free the bufferevent at EOF or error */
} side;

typedef struct world {
        struct event_base *base;
        struct event *guard;
        bool guard_fired;
        side s, c;
        bool (*until)(struct world *w);
} world;

static world W;

static uint8_t pattern(size_t i)
{
        return (uint8_t)(i * 31u + (i >> 11));
}

static const char *cert(const char *name)
{
        static char buf[8][512];
        static int k;
        char rel[128];

        snprintf(rel, sizeof(rel), "edge/certs/%s", name);
        k = (k + 1) % 8;
        snprintf(buf[k], sizeof(buf[k]), "%s", test_data_path(rel));
        return buf[k];
}

static void maybe_stop(void)
{
        if (W.until && W.until(&W))
                event_base_loopbreak(W.base);
}

static void consume(side *sd, struct evbuffer *in)
{
        size_t n;

        while ((n = evbuffer_get_length(in)) > 0) {
                uint8_t buf[16384];
                int k = evbuffer_remove(in, buf, n < sizeof(buf) ? n : sizeof(buf));

                if (k <= 0)
                        break;
                if (sd->text) {
                        evbuffer_add(sd->text, buf, (size_t)k);
                } else {
                        for (int i = 0; i < k; i++)
                                if (buf[i] != pattern(sd->got + (size_t)i))
                                        sd->bad_byte = true;
                }
                sd->got += (size_t)k;
        }
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
        side *sd = arg;

        if (sd->bev)
                consume(sd, bufferevent_get_input(sd->bev));
        maybe_stop();
}

static void on_read(struct bufferevent *bev, void *arg)
{
        side *sd = arg;
        size_t n = evbuffer_get_length(bufferevent_get_input(bev));

        if (n > sd->max_in)
                sd->max_in = n;
        if (sd->hold) {
                /* nothing taken: the TLS layer's bound stops reading the socket */
        } else if (sd->lazy) {
                struct timeval tv = { 0, 10000 };

                if (!evtimer_pending(sd->drain_ev, NULL))
                        evtimer_add(sd->drain_ev, &tv);
        } else {
                consume(sd, bufferevent_get_input(bev));
        }
        maybe_stop();
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
        side *sd = arg;
        edge_tls_conn *c = edge_tls_conn_get(bev);

        ck_assert_ptr_nonnull(c);
        if (what & BEV_EVENT_CONNECTED) {
                sd->connected = true;
                ck_assert(edge_tls_conn_is_established(c));
                snprintf(sd->version, sizeof(sd->version), "%s", edge_tls_conn_version(c));
                snprintf(sd->suite, sizeof(sd->suite), "%s", edge_tls_conn_ciphersuite(c));
                sd->have_binding = edge_tls_conn_channel_binding(c, sd->binding) == 0;
        }
        if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
                consume(sd, bufferevent_get_input(bev));
                sd->eof |= !!(what & BEV_EVENT_EOF);
                sd->error |= !!(what & BEV_EVENT_ERROR);
                sd->timeout |= !!(what & BEV_EVENT_TIMEOUT);
                sd->peer_closed = edge_tls_conn_peer_closed(c);
                snprintf(sd->err, sizeof(sd->err), "%s", edge_tls_conn_error(c));
                if (sd->free_on_end) {
                        bufferevent_free(bev);
                        sd->bev = NULL;
                }
        }
        maybe_stop();
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
        W.guard_fired = true;
        fprintf(stderr, "guard: server connected %d got %zu '%s'; client connected %d got %zu '%s'\n",
                W.s.connected, W.s.got, W.s.err, W.c.connected, W.c.got, W.c.err);
        event_base_loopbreak(W.base);
}

static void world_init(void)
{
        memset(&W, 0, sizeof(W));
        signal(SIGPIPE, SIG_IGN); /* as in any libevent program (hybridd too) */
        W.base = event_base_new();
        ck_assert_ptr_nonnull(W.base);
        W.guard = evtimer_new(W.base, on_guard, NULL);
        W.s.drain_ev = evtimer_new(W.base, on_drain_timer, &W.s);
        W.c.drain_ev = evtimer_new(W.base, on_drain_timer, &W.c);
        W.s.free_on_end = W.c.free_on_end = true;
}

static void world_free(void)
{
        if (W.s.bev)
                bufferevent_free(W.s.bev);
        if (W.c.bev)
                bufferevent_free(W.c.bev);
        if (W.s.text)
                evbuffer_free(W.s.text);
        if (W.c.text)
                evbuffer_free(W.c.text);
        event_free(W.s.drain_ev);
        event_free(W.c.drain_ev);
        event_free(W.guard);
        /* one more turn: deferred frees and finalizers */
        event_base_loop(W.base, EVLOOP_NONBLOCK);
        event_base_free(W.base);
}

/* Runs the loop until pred holds (generous guard: a loaded machine is slow, never wrong). */
static void run_until(bool (*pred)(world *w))
{
        struct timeval tv = { 120, 0 };

        W.until = pred;
        if (pred(&W))
                return;
        evtimer_add(W.guard, &tv);
        event_base_loop(W.base, 0);
        evtimer_del(W.guard);
        ck_assert_msg(!W.guard_fired, "the loop ran 120 s without reaching its goal");
}

static void attach(side *sd, struct bufferevent *bev)
{
        ck_assert_ptr_nonnull(bev);
        sd->bev = bev;
        bufferevent_setcb(bev, on_read, NULL, on_event, sd);
}

static edge_tls *server_tls(const char *crt, const char *key)
{
        edge_tls *t = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = edge_tls_server_new(cert(crt), cert(key), &t, &e);
        ck_assert_msg(r == 0, "server: %s", e.message);
        return t;
}

static edge_tls *client_tls(const char *ca, const char *pinfile)
{
        uint8_t pin[EDGE_TLS_PIN_SIZE];
        edge_tls *t = NULL;
        hyb_error e;
        int r;

        if (pinfile) {
                char *text = test_read_file(cert(pinfile), NULL);

                ck_assert_ptr_nonnull(text);
                ck_assert_int_eq(edge_tls_parse_pin(text, pin), 0);
                free(text);
        }
        hyb_error_clear(&e);
        r = edge_tls_client_new(ca ? cert(ca) : NULL, pinfile ? pin : NULL, &t, &e);
        ck_assert_msg(r == 0, "client: %s", e.message);
        return t;
}

/* A server bufferevent and a client one over a socketpair. */
static void pair(edge_tls *st, edge_tls *ct, const char *name)
{
        int sv[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        evutil_make_socket_nonblocking(sv[0]);
        evutil_make_socket_nonblocking(sv[1]);
        attach(&W.s, edge_tls_bufferevent_new(st, W.base, sv[0], NULL));
        attach(&W.c, edge_tls_bufferevent_new(ct, W.base, sv[1], name));
}

static bool both_connected(world *w)
{
        return (w->s.connected && w->c.connected) || w->s.error || w->c.error;
}

/* After run_until(both_connected): it was the handshake, not an error. */
static void assert_connected(void)
{
        ck_assert_msg(W.s.connected && W.c.connected && !W.s.error && !W.c.error,
                      "server '%s', client '%s'", W.s.err, W.c.err);
}

static bool both_ended(world *w)
{
        return (w->s.eof || w->s.error) && (w->c.eof || w->c.error);
}

static bool server_ended(world *w)
{
        return w->s.eof || w->s.error;
}

/* A handshake that must fail on the client's side: returns its message. */
static void expect_refused(edge_tls *st, edge_tls *ct, const char *name, const char *why)
{
        world_init();
        pair(st, ct, name);
        run_until(both_ended);
        ck_assert(!W.c.connected);
        ck_assert(W.c.error);
        ck_assert_msg(strstr(W.c.err, why), "client error '%s' lacks '%s'", W.c.err, why);
        /* the server hears the alert (or the close) and fails too */
        ck_assert(W.s.error);
        ck_assert(!W.s.connected);
        world_free();
}

START_TEST(test_handshake)
{
        edge_tls *st = server_tls("server.pem", "server.key");
        edge_tls *ct = client_tls("ca.pem", NULL);
        uint8_t first[EDGE_TLS_BINDING_SIZE], a[16], b[16];
        char text[EDGE_TLS_BINDING_TEXT_MAX];
        const struct mbedtls_x509_crt *peer;

        world_init();
        pair(st, ct, "localhost");
        run_until(both_connected);
        assert_connected();
        ck_assert_str_eq(W.s.version, "TLSv1.2");
        ck_assert_str_eq(W.c.version, "TLSv1.2");
        ck_assert_str_eq(W.s.suite, W.c.suite);
        ck_assert_msg(strstr(W.c.suite, "ECDHE-ECDSA") &&
                      (strstr(W.c.suite, "GCM") || strstr(W.c.suite, "CHACHA20-POLY1305")),
                      "suite %s", W.c.suite);
        /* the channel binding: the same on both ends, RFC 9266's size */
        ck_assert(W.s.have_binding && W.c.have_binding);
        ck_assert_mem_eq(W.s.binding, W.c.binding, EDGE_TLS_BINDING_SIZE);
        ck_assert_int_eq(edge_tls_conn_binding_text(edge_tls_conn_get(W.c.bev), text), 0);
        ck_assert_uint_eq(strlen(text), 56);
        ck_assert(strncmp(text, "tls-exporter:", 13) == 0);
        /* RFC 5705: a context changes the output, the label too */
        ck_assert_int_eq(edge_tls_conn_export(edge_tls_conn_get(W.s.bev), "EXPORTER-x",
                                              (const uint8_t *)"", 0, a, sizeof(a)), 0);
        ck_assert_int_eq(edge_tls_conn_export(edge_tls_conn_get(W.c.bev), "EXPORTER-x", NULL, 0,
                                              b, sizeof(b)), 0);
        ck_assert(memcmp(a, b, sizeof(a)) != 0);
        ck_assert_int_eq(edge_tls_conn_export(edge_tls_conn_get(W.c.bev), "EXPORTER-x",
                                              (const uint8_t *)"", 0, b, sizeof(b)), 0);
        ck_assert_mem_eq(a, b, sizeof(a));
        /* the client has the server's certificate, the server no client certificate */
        peer = edge_tls_conn_peer_cert(edge_tls_conn_get(W.c.bev));
        ck_assert_ptr_nonnull(peer);
        ck_assert_ptr_null(edge_tls_conn_peer_cert(edge_tls_conn_get(W.s.bev)));
        memcpy(first, W.c.binding, sizeof(first));
        world_free();

        /* another connection, another binding */
        world_init();
        pair(st, ct, "localhost");
        run_until(both_connected);
        assert_connected();
        ck_assert(memcmp(first, W.c.binding, sizeof(first)) != 0);
        world_free();
        edge_tls_unref(st);
        edge_tls_unref(ct);
}
END_TEST

START_TEST(test_refusals)
{
        edge_tls *st = server_tls("server.pem", "server.key");
        edge_tls *expired = server_tls("expired.pem", "expired.key");
        edge_tls *wrong = client_tls("wrongca.pem", NULL);
        edge_tls *good = client_tls("ca.pem", NULL);
        edge_tls *pin_bad = client_tls(NULL, "wrongca.pin");
        edge_tls *ca_pin_bad = client_tls("ca.pem", "wrongca.pin");

        expect_refused(st, wrong, "localhost", "verification failed");
        expect_refused(st, good, "otherhost", "verification failed");
        expect_refused(expired, good, "localhost", "expired");
        expect_refused(st, pin_bad, "localhost", "pinned");
        expect_refused(st, ca_pin_bad, "localhost", "pinned");
        edge_tls_unref(st);
        edge_tls_unref(expired);
        edge_tls_unref(wrong);
        edge_tls_unref(good);
        edge_tls_unref(pin_bad);
        edge_tls_unref(ca_pin_bad);
}
END_TEST

START_TEST(test_pinned)
{
        edge_tls *st = server_tls("server.pem", "server.key");
        edge_tls *pin = client_tls(NULL, "server.pin");
        edge_tls *both = client_tls("ca.pem", "server.pin");
        uint8_t p[EDGE_TLS_PIN_SIZE];
        hyb_error e;
        edge_tls *none = NULL;

        /* with a pin and no CA, the name is not what is trusted: any name will do */
        world_init();
        pair(st, pin, "not-in-the-certificate");
        run_until(both_connected);
        assert_connected();
        world_free();
        world_init();
        pair(st, both, "localhost");
        run_until(both_connected);
        assert_connected();
        world_free();
        /* no "verify nothing" client, and pins are 32 bytes of base64 */
        hyb_error_clear(&e);
        ck_assert_int_eq(edge_tls_client_new(NULL, NULL, &none, &e), -EINVAL);
        ck_assert_int_eq(edge_tls_parse_pin("sha256//AAAA", p), -EINVAL);
        ck_assert_int_eq(edge_tls_parse_pin("not base64!", p), -EINVAL);
        ck_assert_int_eq(edge_tls_parse_pin(" sha256//kYsN1Ety4+tzh9dQq8dP0tSkZJ9/pYIiI8W0lJ3oSX8=\n",
                                            p), 0);
        edge_tls_unref(st);
        edge_tls_unref(pin);
        edge_tls_unref(both);
}
END_TEST

static bool raw_end(world *w)
{
        return w->s.eof || w->s.error;
}

/* Waits until the peer of fd closes (read 0 or an error), reading what comes. */
static bool raw_sees_close(int fd)
{
        char buf[4096];

        for (int i = 0; i < 600; i++) {
                struct pollfd p = { fd, POLLIN, 0 };
                ssize_t n;

                /* the loop runs the frees (finalizers) that close the server's socket */
                event_base_loop(W.base, EVLOOP_NONBLOCK);
                if (poll(&p, 1, 100) < 0)
                        return false;
                n = read(fd, buf, sizeof(buf));
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        return true;
        }
        return false;
}

START_TEST(test_garbage_and_stall)
{
        static const char http[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
        edge_tls *st = server_tls("server.pem", "server.key");
        int sv[2];

        /* garbage: refused at once, not by the timer (set far away here) */
        edge_tls_set_limits(st, 600000, EDGE_TLS_MAX_BUFFER);
        world_init();
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        attach(&W.s, edge_tls_bufferevent_new(st, W.base, sv[0], NULL));
        ck_assert_int_eq(write(sv[1], http, sizeof(http) - 1), (ssize_t)sizeof(http) - 1);
        run_until(raw_end);
        ck_assert(W.s.error);
        ck_assert(!W.s.timeout);
        ck_assert(!W.s.connected);
        ck_assert_msg(strstr(W.s.err, "TLS handshake"), "error '%s'", W.s.err);
        ck_assert(raw_sees_close(sv[1]));
        close(sv[1]);
        world_free();

        /* a stall mid-handshake (half a record header): closed by the handshake timer */
        edge_tls_set_limits(st, 200, EDGE_TLS_MAX_BUFFER);
        world_init();
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        attach(&W.s, edge_tls_bufferevent_new(st, W.base, sv[0], NULL));
        ck_assert_int_eq(write(sv[1], "\x16\x03\x01", 3), 3);
        run_until(raw_end);
        ck_assert(W.s.error);
        ck_assert(W.s.timeout);
        ck_assert_msg(strstr(W.s.err, "timed out"), "error '%s'", W.s.err);
        ck_assert(raw_sees_close(sv[1]));
        close(sv[1]);
        world_free();

        /* and one that sends nothing at all */
        world_init();
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        attach(&W.s, edge_tls_bufferevent_new(st, W.base, sv[0], NULL));
        run_until(raw_end);
        ck_assert(W.s.error && W.s.timeout);
        ck_assert(raw_sees_close(sv[1]));
        close(sv[1]);
        world_free();
        edge_tls_unref(st);
}
END_TEST

static bool both_got_big(world *w)
{
        return (w->s.got >= BIG && w->c.got >= BIG) || w->s.error || w->c.error;
}

static void write_pattern(struct bufferevent *bev, size_t n)
{
        uint8_t *buf = malloc(n);

        ck_assert_ptr_nonnull(buf);
        for (size_t i = 0; i < n; i++)
                buf[i] = pattern(i);
        ck_assert_int_eq(bufferevent_write(bev, buf, n), 0);
        free(buf);
}

START_TEST(test_large_transfers)
{
        const size_t bound = 64 * 1024;
        edge_tls *st = server_tls("server.pem", "server.key");
        edge_tls *ct = client_tls("ca.pem", NULL);

        edge_tls_set_limits(st, EDGE_TLS_HANDSHAKE_TIMEOUT_MS, bound);
        edge_tls_set_limits(ct, EDGE_TLS_HANDSHAKE_TIMEOUT_MS, bound);
        world_init();
        W.s.lazy = W.c.lazy = true; /* readers that let data wait: the bound must hold */
        pair(st, ct, "localhost");
        /* written before the handshake completes: held, then sent */
        write_pattern(W.c.bev, BIG);
        write_pattern(W.s.bev, BIG);
        run_until(both_got_big);
        ck_assert_msg(!W.s.error && !W.c.error, "errors: '%s' '%s'", W.s.err, W.c.err);
        ck_assert_uint_eq(W.s.got, BIG);
        ck_assert_uint_eq(W.c.got, BIG);
        ck_assert(!W.s.bad_byte && !W.c.bad_byte);
        ck_assert_msg(W.s.max_in <= bound + 16384 && W.c.max_in <= bound + 16384,
                      "plaintext waiting: %zu and %zu bytes, bound %zu", W.s.max_in, W.c.max_in,
                      bound);
        world_free();
        edge_tls_unref(st);
        edge_tls_unref(ct);
}
END_TEST

static bool server_eof_client_end(world *w)
{
        return (w->s.eof || w->s.error) && (w->c.eof || w->c.error);
}

START_TEST(test_close_notify)
{
        edge_tls *st = server_tls("server.pem", "server.key");
        edge_tls *ct = client_tls("ca.pem", NULL);

        /* the client says bye and closes cleanly; the server frees on EOF, which answers
         * with its own close_notify */
        world_init();
        W.s.text = evbuffer_new();
        W.c.text = evbuffer_new();
        pair(st, ct, "localhost");
        run_until(both_connected);
        assert_connected();
        ck_assert_int_eq(edge_tls_shutdown(NULL), -EINVAL);
        bufferevent_write(W.c.bev, "bye", 3);
        ck_assert_int_eq(edge_tls_shutdown(W.c.bev), 0);
        run_until(server_eof_client_end);
        ck_assert_msg(W.s.eof && !W.s.error, "server: '%s'", W.s.err);
        ck_assert(W.s.peer_closed);
        ck_assert_str_eq(W.s.err, "");
        ck_assert_uint_eq(evbuffer_get_length(W.s.text), 3);
        ck_assert(memcmp(evbuffer_pullup(W.s.text, 3), "bye", 3) == 0);
        ck_assert_msg(W.c.eof && !W.c.error, "client: '%s'", W.c.err);
        ck_assert(W.c.peer_closed);
        world_free();

        /* a TCP close without close_notify is an error (a truncation attack looks so) */
        world_init();
        pair(st, ct, "localhost");
        run_until(both_connected);
        assert_connected();
        W.c.free_on_end = false;
        shutdown(bufferevent_getfd(W.c.bev), SHUT_WR);
        run_until(server_ended);
        ck_assert(W.s.error && W.s.eof);
        ck_assert(!W.s.peer_closed);
        ck_assert_msg(strstr(W.s.err, "without close_notify"), "error '%s'", W.s.err);
        world_free();
        edge_tls_unref(st);
        edge_tls_unref(ct);
}
END_TEST

/* ---- evhttp through the layer */

static size_t body_size;

static void http_gen(struct evhttp_request *req, void *arg)
{
        struct evbuffer *b = evbuffer_new();
        uint8_t *buf = malloc(body_size);

        for (size_t i = 0; i < body_size; i++)
                buf[i] = pattern(i);
        evbuffer_add(b, buf, body_size);
        free(buf);
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
}

static bool client_done(world *w)
{
        return w->c.eof || w->c.error;
}

START_TEST(test_evhttp)
{
        edge_tls *st = server_tls("server.pem", "server.key");
        edge_tls *ct = client_tls("ca.pem", NULL);
        struct evhttp *http;
        struct evhttp_bound_socket *bs;
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        static const char req[] = "GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        char head[64];
        const char *text, *body;
        size_t n;
        int fd, small = 4096;

        world_init();
        http = evhttp_new(W.base);
        ck_assert_ptr_nonnull(http);
        edge_tls_evhttp_attach(http, st);
        evhttp_set_gencb(http, http_gen, NULL);
        bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
        ck_assert_ptr_nonnull(bs);
        ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &len), 0);
        /* a body far larger than the socket buffers: evhttp frees the connection from its
         * write callback, which must mean "sent" */
        body_size = 3u << 20;
        W.c.text = evbuffer_new();
        /* a small receive window: the server's kernel takes a part of the answer only, the
         * rest waits in the server's buffers when evhttp is done with the connection */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, len), 0);
        evutil_make_socket_nonblocking(fd);
        attach(&W.c, edge_tls_bufferevent_new(ct, W.base, fd, "localhost"));
        bufferevent_write(W.c.bev, req, sizeof(req) - 1);
        run_until(client_done);
        ck_assert_msg(W.c.connected, "client: '%s'", W.c.err);
        n = evbuffer_get_length(W.c.text);
        ck_assert_msg(n > 12, "an answer of %zu bytes", n);
        text = (const char *)evbuffer_pullup(W.c.text, -1);
        ck_assert_ptr_nonnull(text);
        ck_assert_msg(memcmp(text, "HTTP/1.1 200", 12) == 0, "answer: %.60s", text);
        body = memmem(text, n, "\r\n\r\n", 4);
        ck_assert_ptr_nonnull(body);
        body += 4;
        snprintf(head, sizeof(head), "Content-Length: %zu", body_size);
        ck_assert(memmem(text, (size_t)(body - text), head, strlen(head)));
        ck_assert_uint_eq(n - (size_t)(body - text), body_size);
        for (size_t i = 0; i < body_size; i++)
                if ((uint8_t)body[i] != pattern(i))
                        ck_abort_msg("body byte %zu differs", i);
        evhttp_free(http);
        world_free();
        edge_tls_unref(st);
        edge_tls_unref(ct);
}
END_TEST

START_TEST(test_server_files)
{
        edge_tls *t = NULL;
        hyb_error e;
        int r;

        hyb_error_clear(&e);
        r = edge_tls_server_new(cert("server.pem"), cert("wrongca.key"), &t, &e);
        ck_assert_int_eq(r, HYB_E_CONFIG);
        ck_assert_msg(strstr(e.message, "is not the key of the certificate"), "%s", e.message);
        hyb_error_clear(&e);
        r = edge_tls_server_new(cert("missing.pem"), cert("server.key"), &t, &e);
        ck_assert_int_eq(r, -ENOENT);
        ck_assert_msg(strstr(e.message, "missing.pem"), "%s", e.message);
        hyb_error_clear(&e);
        r = edge_tls_server_new(cert("README.md"), cert("server.key"), &t, &e);
        ck_assert_int_eq(r, HYB_E_PARSE);
        hyb_error_clear(&e);
        r = edge_tls_server_new(cert("server.pem"), cert("server.pem"), &t, &e);
        ck_assert_int_eq(r, HYB_E_PARSE);
        ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_connect_refused)
{
        edge_tls *ct = client_tls("ca.pem", NULL);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        struct bufferevent *plain;
        int fd;

        /* a port nobody listens on: bound, never listened, closed */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        close(fd);
        world_init();
        attach(&W.c, edge_tls_bufferevent_new(ct, W.base, -1, "localhost"));
        ck_assert_int_eq(edge_tls_connect(W.c.bev, (struct sockaddr *)&sa, (int)len), 0);
        run_until(client_done);
        ck_assert(W.c.error && !W.c.connected);
        ck_assert_msg(strstr(W.c.err, "connect: ") && strstr(W.c.err, "refused"), "error '%s'",
                      W.c.err);
        /* not a TLS bufferevent: no connection, no shutdown */
        plain = bufferevent_socket_new(W.base, -1, 0);
        ck_assert_ptr_null(edge_tls_conn_get(plain));
        ck_assert_int_eq(edge_tls_shutdown(plain), -EINVAL);
        bufferevent_free(plain);
        world_free();
        edge_tls_unref(ct);
}
END_TEST

static side stalled[3];

static bool third_refused(world *w)
{
        return stalled[2].error || stalled[0].error || stalled[1].error;
}

static bool first_gone(world *w)
{
        return stalled[0].error || stalled[0].eof;
}

START_TEST(test_handshake_caps)
{
        edge_tls *st = server_tls("server.pem", "server.key");
        edge_tls *ct = client_tls("ca.pem", NULL);
        int raw[3][2];

        /* two handshakes in progress per source: a third from the same source is refused
         * at once, not when the (far) timer would end it */
        edge_tls_set_limits(st, 600000, EDGE_TLS_MAX_BUFFER);
        edge_tls_set_handshake_caps(st, 2, 256);
        world_init();
        memset(stalled, 0, sizeof(stalled));
        for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                                            raw[i]), 0);
                stalled[i].free_on_end = true;
                attach(&stalled[i], edge_tls_bufferevent_new(st, W.base, raw[i][0], NULL));
        }
        run_until(third_refused);
        ck_assert(!stalled[0].error && !stalled[1].error);
        ck_assert(stalled[2].error && !stalled[2].timeout);
        ck_assert_msg(strstr(stalled[2].err, "TLS handshake refused: 2 TLS handshakes from local"),
                      "error '%s'", stalled[2].err);
        ck_assert(raw_sees_close(raw[2][1]));
        /* one stalled peer leaves: its slot is free again for a real client */
        close(raw[0][1]);
        run_until(first_gone);
        pair(st, ct, "localhost");
        run_until(both_connected);
        assert_connected();
        for (int i = 0; i < 3; i++) {
                if (stalled[i].bev)
                        bufferevent_free(stalled[i].bev);
                if (i > 0)
                        close(raw[i][1]);
        }
        world_free();
        edge_tls_unref(st);
        edge_tls_unref(ct);
}
END_TEST

/* A TCP connection to the listener lfd from the address src: its accepted end (non-blocking)
 * and, in *cfd, the client's. */
static int tcp_from(int lfd, const char *src, int *cfd)
{
        struct sockaddr_in sa = { .sin_family = AF_INET }, from = { .sin_family = AF_INET };
        socklen_t len = sizeof(sa);
        int fd;

        ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
        *cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(inet_pton(AF_INET, src, &from.sin_addr), 1);
        ck_assert_int_eq(bind(*cfd, (struct sockaddr *)&from, sizeof(from)), 0);
        ck_assert_int_eq(connect(*cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        return fd;
}

static side hs[7];
static int hs_want;

static bool hs_failed(world *w)
{
        return hs[hs_want].error;
}

/* All handshake slots taken by stalled peers: a newcomer from a source holding fewer takes
 * the place of the oldest of the source holding the most (a slowloris cannot lock others
 * out); one from a source holding as many as any is refused (doc/edge-tls.md "Limits"). */
START_TEST(test_handshake_evict)
{
        static const char *const src[7] = { "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3",
                                            "127.0.0.2", "127.0.0.4", "127.0.0.4" };
        edge_tls *st = server_tls("server.pem", "server.key");
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int lfd, cfd[7];

        edge_tls_set_limits(st, 600000, EDGE_TLS_MAX_BUFFER);
        edge_tls_set_handshake_caps(st, 3, 4);
        world_init();
        memset(hs, 0, sizeof(hs));
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(lfd, 16), 0);
        for (int i = 0; i < 7; i++) {
                hs[i].free_on_end = true;
                attach(&hs[i], edge_tls_bufferevent_new(st, W.base, tcp_from(lfd, src[i], &cfd[i]), NULL));
                if (i == 4) {
                        /* .2 and .3 hold 2 each, all 4 slots: .2 holds as many as any */
                        hs_want = 4;
                        run_until(hs_failed);
                        ck_assert_msg(strstr(hs[4].err, "TLS handshake refused: 4 TLS handshakes in progress already"),
                                      "error '%s'", hs[4].err);
                        for (int k = 0; k < 4; k++)
                                ck_assert(!hs[k].error);
                } else if (i == 5) {
                        /* .4 holds none: the oldest of the first source holding the most
                         * (.2, hs[0]) goes for it */
                        hs_want = 0;
                        run_until(hs_failed);
                        ck_assert_msg(strstr(hs[0].err, "closed for a newcomer: the oldest of 2 in progress from its source"),
                                      "error '%s'", hs[0].err);
                } else if (i == 6) {
                        /* .4 holds 1, .2 1, .3 2: .3's oldest (hs[2]) goes */
                        hs_want = 2;
                        run_until(hs_failed);
                        ck_assert_msg(strstr(hs[2].err, "closed for a newcomer"), "error '%s'", hs[2].err);
                }
        }
        ck_assert(raw_sees_close(cfd[0]));
        ck_assert(raw_sees_close(cfd[2]));
        ck_assert(raw_sees_close(cfd[4]));
        ck_assert(!hs[1].error && !hs[3].error && !hs[5].error && !hs[6].error);
        for (int i = 0; i < 7; i++) {
                if (hs[i].bev)
                        bufferevent_free(hs[i].bev);
                close(cfd[i]);
        }
        close(lfd);
        world_free();
        edge_tls_unref(st);
}
END_TEST

START_TEST(test_hostport)
{
        static const struct {
                const char *in, *host;
                int port;
        } good[] = {
                { "127.0.0.1:8443", "127.0.0.1", 8443 },
                { "0.0.0.0:0", "0.0.0.0", 0 },
                { "[::1]:443", "::1", 443 },
                { "[fe80::1:2]:65535", "fe80::1:2", 65535 },
                { "hub-1.example:80", "hub-1.example", 80 },
        };
        static const char *const bad[] = {
                "", "127.0.0.1", "127.0.0.1:", ":80", "::1:80", "[::1]", "[::1]80", "[zz::1]:80",
                "host:65536", "host:-1", "host:80a", "host:123456", "ho st:80", "host/x:80",
                "[]:80",
        };
        char host[256], tiny[4];
        uint16_t port;

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                ck_assert_msg(edge_parse_hostport(good[i].in, host, sizeof(host), &port) == 0,
                              "'%s' refused", good[i].in);
                ck_assert_str_eq(host, good[i].host);
                ck_assert_int_eq(port, good[i].port);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                ck_assert_msg(edge_parse_hostport(bad[i], host, sizeof(host), &port) == -EINVAL,
                              "'%s' accepted", bad[i]);
        ck_assert_int_eq(edge_parse_hostport("localhost:1", tiny, sizeof(tiny), &port),
                         -ENAMETOOLONG);
}
END_TEST

/* ---- the exporter against another TLS implementation */

static pid_t child;
static int child_status = -1;

static void on_child_poll(evutil_socket_t fd, short what, void *arg)
{
        if (child > 0 && waitpid(child, &child_status, WNOHANG) == child)
                child = 0;
        maybe_stop();
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd >= 0 && !W.s.bev)
                attach(&W.s, edge_tls_bufferevent_new(arg, W.base, fd, NULL));
        else if (fd >= 0)
                close(fd);
}

static bool child_done(world *w)
{
        return child == 0 && (w->s.eof || w->s.error);
}

START_TEST(test_exporter_matches_openssl)
{
        edge_tls *st = server_tls("server.pem", "server.key");
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        struct event *acc, *poll_ev;
        struct timeval tick = { 0, 50000 };
        char *dir = test_tmpdir(), out[512], port[16], want[2 * EDGE_TLS_BINDING_SIZE + 1];
        char *text, *km;
        int lfd;

        world_init();
        W.s.free_on_end = true;
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(lfd, 0);
        ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(lfd, 4), 0);
        ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
        snprintf(port, sizeof(port), "127.0.0.1:%u", ntohs(sa.sin_port));
        snprintf(out, sizeof(out), "%s/s_client.out", dir);
        acc = event_new(W.base, lfd, EV_READ | EV_PERSIST, on_accept, st);
        poll_ev = event_new(W.base, -1, EV_PERSIST, on_child_poll, NULL);
        event_add(acc, NULL);
        event_add(poll_ev, &tick);
        child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);

                dup2(in, 0);
                dup2(o, 1);
                dup2(o, 2);
                execlp("openssl", "openssl", "s_client", "-connect", port, "-servername",
                       "localhost", "-CAfile", cert("ca.pem"), "-keymatexport",
                       EDGE_TLS_BINDING_LABEL, "-keymatexportlen", "32", (char *)NULL);
                _exit(127);
        }
        run_until(child_done);
        ck_assert_msg(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0,
                      "openssl s_client status %d", child_status);
        ck_assert_msg(W.s.connected && W.s.have_binding, "server: '%s'", W.s.err);
        /* s_client reads EOF on its input and closes with close_notify */
        ck_assert_msg(W.s.eof && !W.s.error, "server: '%s'", W.s.err);
        for (size_t i = 0; i < EDGE_TLS_BINDING_SIZE; i++)
                snprintf(want + 2 * i, 3, "%02X", W.s.binding[i]);
        text = test_read_file(out, NULL);
        ck_assert_ptr_nonnull(text);
        km = strstr(text, "Keying material: ");
        ck_assert_msg(km, "no keying material in: %.400s", text);
        km += strlen("Keying material: ");
        ck_assert_msg(strncmp(km, want, strlen(want)) == 0, "openssl %.64s, ours %s", km, want);
        free(text);
        event_free(acc);
        event_free(poll_ev);
        close(lfd);
        world_free();
        test_rmrf(dir);
        free(dir);
        edge_tls_unref(st);
}
END_TEST

/* ---- the fd-based client (edge_tls_fd_*, the wss:// bus client's TLS) */

#define FD_TOTAL (4u << 20)
#define FD_STEP 1000u

static int fd_go[2] = { -1, -1 };
static bool fd_hold;

static void on_fd_go(evutil_socket_t fd, short what, void *arg)
{
        char b;

        (void)what;
        (void)arg;
        if (read(fd, &b, 1) == 1) {
                fd_hold = false;
                W.s.hold = false;
                if (W.s.bev)
                        consume(&W.s, bufferevent_get_input(W.s.bev));
        }
        maybe_stop();
}

/*
 * The child: a writer as the bus's write buffer is (bus-conn.c): the bytes not yet taken
 * stay at the front and more are appended behind them between two calls, so the call
 * after an -EAGAIN names the same first bytes and more.  Exit 0 once all went out and the
 * server acknowledged them, 2 if the socket never filled (the case not reached), 1 on an
 * error.
 */
static int fd_writer(int fd)
{
        uint8_t *buf = malloc(FD_TOTAL);
        edge_tls *ct = NULL;
        edge_tls_conn *c = NULL;
        size_t wpos = 0, wlen = 0;
        bool full = false;
        hyb_error e;

        if (!buf)
                return 1;
        for (size_t i = 0; i < FD_TOTAL; i++)
                buf[i] = pattern(i);
        hyb_error_clear(&e);
        if (edge_tls_client_new(cert("ca.pem"), NULL, &ct, &e) < 0 ||
            edge_tls_fd_open(ct, fd, "localhost", hyb_now_usec() + 120000000ull, &c, &e) < 0) {
                fprintf(stderr, "fd client: %s\n", e.message);
                return 1;
        }
        while (wpos < FD_TOTAL) {
                ssize_t n;

                wlen = wlen + FD_STEP < FD_TOTAL ? wlen + FD_STEP : FD_TOTAL;
                n = edge_tls_fd_write(c, buf + wpos, wlen - wpos);
                if (n > 0) {
                        wpos += (size_t)n;
                        continue;
                }
                if (n != -EAGAIN) {
                        fprintf(stderr, "fd client: write %zd: %s\n", n, edge_tls_conn_error(c));
                        return 1;
                }
                if (!full) {
                        full = true;
                        if (write(fd_go[1], "g", 1) != 1)
                                return 1;
                }
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                if (poll(&p, 1, 120000) != 1)
                        return 1;
        }
        /* the server says it got everything: the socket is empty and close_notify goes */
        for (;;) {
                uint8_t ack;
                ssize_t n = edge_tls_fd_read(c, &ack, 1);
                struct pollfd p = { .fd = fd, .events = POLLIN };

                if (n == 1)
                        break;
                if (n != -EAGAIN || poll(&p, 1, 120000) != 1) {
                        fprintf(stderr, "fd client: no acknowledgement (%zd)\n", n);
                        return 1;
                }
        }
        edge_tls_fd_close(c); /* close_notify: the server sees the end */
        edge_tls_unref(ct);
        close(fd);
        free(buf);
        return full ? 0 : 2;
}

static bool fd_server_done(world *w)
{
        return !fd_hold && (w->s.eof || w->s.error);
}

static bool fd_server_got_all(world *w)
{
        return w->s.got >= FD_TOTAL || w->s.bad_byte || w->s.eof || w->s.error;
}

START_TEST(test_fd_write_retry)
{
        edge_tls *st;
        struct event *go;
        pid_t pid;
        int sv[2], status = -1;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(pipe2(fd_go, O_CLOEXEC), 0);
        evutil_make_socket_nonblocking(sv[0]);
        evutil_make_socket_nonblocking(sv[1]);
        /* forked first: the child holds nothing of the server (valgrind sees no leak) */
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(sv[0]);
                _exit(fd_writer(sv[1]));
        }
        close(sv[1]);
        st = server_tls("server.pem", "server.key");
        world_init();
        /* The server takes nothing until the client's socket was full once. */
        fd_hold = true;
        W.s.hold = true;
        attach(&W.s, edge_tls_bufferevent_new(st, W.base, sv[0], NULL));
        go = event_new(W.base, fd_go[0], EV_READ | EV_PERSIST, on_fd_go, NULL);
        event_add(go, NULL);
        run_until(fd_server_got_all);
        if (W.s.bev)
                bufferevent_write(W.s.bev, "k", 1); /* all came, or a byte out of place */
        run_until(fd_server_done);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "the fd client: status %d", status);
        ck_assert_msg(!W.s.error, "server: '%s'", W.s.err);
        ck_assert_msg(!W.s.bad_byte, "the server got bytes out of order (lost ones)");
        ck_assert_uint_eq(W.s.got, FD_TOTAL);
        event_free(go);
        close(fd_go[0]);
        close(fd_go[1]);
        world_free();
        edge_tls_unref(st);
}
END_TEST

Suite *edge_tls_suite(void)
{
        Suite *s = suite_create("edge_tls");
        TCase *tc = tcase_create("tls");

        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, test_handshake);
        tcase_add_test(tc, test_refusals);
        tcase_add_test(tc, test_pinned);
        tcase_add_test(tc, test_garbage_and_stall);
        tcase_add_test(tc, test_large_transfers);
        tcase_add_test(tc, test_close_notify);
        tcase_add_test(tc, test_evhttp);
        tcase_add_test(tc, test_server_files);
        tcase_add_test(tc, test_exporter_matches_openssl);
        tcase_add_test(tc, test_connect_refused);
        tcase_add_test(tc, test_hostport);
        tcase_add_test(tc, test_handshake_caps);
        tcase_add_test(tc, test_handshake_evict);
        tcase_add_test(tc, test_fd_write_retry);
        suite_add_tcase(s, tc);
        return s;
}
