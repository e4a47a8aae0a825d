/* SPDX-License-Identifier: MIT */
/*
 * bench/edge.c - the network edge of hybridd beside its Unix socket and beside nginx
 * (bench/README.md, "bench-edge"; bench/run-edge.sh starts the daemons).
 *
 *   bench-edge serve SOCKET        the echo procedure: @localhost/org.example.bench.echo/edge
 *                                  `echo` answers its params as they came
 *   bench-edge upstream PATH       nginx's upstream: a minimal HTTP/1.1 responder on the Unix
 *                                  socket PATH answering every request 200 with its body
 *                                  (keep-alive, pipelining), on libevent bufferevents
 *   bench-edge bare                an evhttp server answering every request 200 with its
 *                                  body in process: the floor of an evhttp server
 *                                  (bench/edge-cpu.sh --bare); prints "READY <port>"
 *   bench-edge [options]           the client: the table
 *
 * Client options: --sock SOCKET (hybridd's Unix socket), --http HOST:PORT (its listen.http),
 * --nginx HOST:PORT (nginx proxying to `upstream`), --token FILE --key FILE (a token of the
 * daemon's issuer for the token rows, with its holder key), --ws URL (ws://.../bus/ws), --coap
 * HOST:PORT, --hybridd-pid PID (for the RSS row), --clients N (idle WebSocket clients, default
 * 1000), --mosquitto-ws TEXT (what run-edge.sh found of mosquitto's WebSocket listener),
 * --rows LIST (only these of unix,tcp,http,token,nginx,ws,coap,rss), --rounds R (default 3), --calls N (sequential calls per RTT figure, default 5000),
 * --secs S (seconds per rate figure, default 2), --conns C (connections of a rate figure,
 * default 16), --verbose (a RESULT line per round).
 *
 * Every answer is checked (status 200 and the echoed body): a failing call stops the program
 * rather than being timed.  Rows a missing peer or feature cannot fill print "-".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <mbedtls/base64.h>
#include <mbedtls/sha256.h>

#include <hybrid/bus.h>
#include <hybrid/endpoint.h>
#include <hybrid/token.h>

#ifdef HAVE_COAP
#include <coap3/coap.h>
#endif

#include "bench-util.h"

#define ECHO_APP "org.example.bench.echo"
#define ECHO_EP "@localhost/" ECHO_APP "/edge"
#define ECHO_PATH "/bus/" ECHO_APP "/edge/echo"
#define ECHO_BODY "{\"words\":\"hi\"}"
#define MAX_CONNS 256

static volatile sig_atomic_t stopping;
static void on_term(int sig)
{
        (void)sig;
        stopping = 1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        fputs("bench-edge: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        exit(1);
}

/* ------------------------------------------------------------------ the echo procedure */

static int on_echo(hyb_bus_request *req, void *userdata)
{
        size_t len = 0;
        const void *body = hyb_bus_request_get_body(req, &len);

        (void)userdata;
        return hyb_bus_request_reply(req, 200, body, len, 0);
}

static int cmd_serve(const char *sock)
{
        hyb_bus *bus = NULL;
        hyb_error err = { 0 };
        int r;

        if (hyb_bus_connect(sock, ECHO_APP, "edge", &bus, &err) < 0)
                die("serve: connect %s: %s", sock, err.message);
        if (hyb_endpoint_register_method(bus, "echo", NULL, 0, NULL, NULL, 0, on_echo, NULL, NULL,
                                         &err) < 0)
                die("serve: register: %s", err.message);
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        printf("READY\n");
        fflush(stdout);
        while (!stopping) {
                while ((r = hyb_bus_process(bus)) > 0)
                        ;
                if (r == 0)
                        r = hyb_bus_wait(bus, 200000);
                if (r < 0 && r != -EINTR)
                        break;
        }
        hyb_bus_unref(bus);
        return 0;
}

/* ------------------------------------------------------------------ nginx's upstream */

/* One request at a time from the input: headers, then Content-Length bytes; answered 200
 * with the body.  Anything else ends the connection (nginx sends nothing else). */
static void up_read(struct bufferevent *bev, void *ud)
{
        struct evbuffer *in = bufferevent_get_input(bev);

        (void)ud;
        for (;;) {
                struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
                size_t hlen, blen = 0;
                char *head;
                const char *cl;

                if (end.pos < 0)
                        return;
                hlen = (size_t)end.pos + 4;
                head = (char *)evbuffer_pullup(in, (ev_ssize_t)hlen);
                for (cl = head; cl && cl < head + hlen; cl = memchr(cl, '\n', (size_t)(head + hlen - cl))) {
                        if (*cl == '\n')
                                cl++;
                        if (strncasecmp(cl, "content-length:", 15) == 0) {
                                blen = strtoul(cl + 15, NULL, 10);
                                break;
                        }
                }
                if (evbuffer_get_length(in) < hlen + blen)
                        return;
                evbuffer_drain(in, hlen);
                evbuffer_add_printf(bufferevent_get_output(bev),
                                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                    "Content-Length: %zu\r\n\r\n",
                                    blen);
                evbuffer_remove_buffer(in, bufferevent_get_output(bev), blen);
        }
}

static void up_event(struct bufferevent *bev, short what, void *ud)
{
        (void)what;
        (void)ud;
        bufferevent_free(bev);
}

static void up_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl,
                      void *ud)
{
        struct bufferevent *bev =
                bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);

        (void)sa;
        (void)sl;
        (void)ud;
        if (!bev) {
                close(fd);
                return;
        }
        bufferevent_setcb(bev, up_read, NULL, up_event, NULL);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void up_stop(evutil_socket_t fd, short what, void *ud)
{
        (void)fd;
        (void)what;
        event_base_loopexit(ud, NULL);
}

static int cmd_upstream(const char *path)
{
        struct event_base *base = event_base_new();
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        struct evconnlistener *l;
        struct event *term;

        if (!base || strlen(path) >= sizeof sun.sun_path)
                die("upstream: bad path or no memory");
        strcpy(sun.sun_path, path);
        unlink(path);
        l = evconnlistener_new_bind(base, up_accept, NULL, LEV_OPT_CLOSE_ON_FREE, 1024,
                                    (struct sockaddr *)&sun, (int)sizeof sun);
        if (!l)
                die("upstream: listen on %s: %s", path, strerror(errno));
        term = evsignal_new(base, SIGTERM, up_stop, base);
        event_add(term, NULL);
        printf("READY\n");
        fflush(stdout);
        event_base_dispatch(base);
        event_free(term);
        evconnlistener_free(l);
        event_base_free(base);
        unlink(path);
        return 0;
}

/* ------------------------------------------------------------------ the evhttp floor */

/* Answers every request 200 with its body as JSON, with the Date and Content-Length that the
 * edge sends too: what evhttp costs a request when nothing is behind it. */
static void bare_request(struct evhttp_request *req, void *ud)
{
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);

        (void)ud;
        evhttp_add_header(h, "Content-Type", "application/json");
        evhttp_send_reply(req, 200, "OK", evhttp_request_get_input_buffer(req));
}

/*
 * bench-edge bare: an evhttp server on a free port of 127.0.0.1 answering in process (no
 * session, no procedure): prints "READY <port>".  Measured as the nginx row's server
 * (bench/edge-cpu.sh --bare), it is the floor of a request served by evhttp.
 */
static int cmd_bare(void)
{
        struct event_base *base = event_base_new();
        struct evhttp *http = base ? evhttp_new(base) : NULL;
        struct evhttp_bound_socket *bound;
        struct sockaddr_in sin;
        socklen_t sl = sizeof sin;
        struct event *term;

        if (!http)
                die("bare: no memory");
        evhttp_set_gencb(http, bare_request, NULL);
        bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
        if (!bound || getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &sl) < 0)
                die("bare: cannot listen: %s", strerror(errno));
        term = evsignal_new(base, SIGTERM, up_stop, base);
        event_add(term, NULL);
        printf("READY %u\n", (unsigned)ntohs(sin.sin_port));
        fflush(stdout);
        event_base_dispatch(base);
        event_free(term);
        evhttp_free(http);
        event_base_free(base);
        return 0;
}

/* ------------------------------------------------------------------ HTTP client */

typedef struct hconn {
        int fd;
        char buf[16384];
        size_t len;
        uint64_t t0;
} hconn;

static int tcp_connect(const char *hostport)
{
        char host[64];
        const char *colon = strrchr(hostport, ':');
        struct sockaddr_in sin = { .sin_family = AF_INET };
        int fd, one = 1;

        if (!colon || (size_t)(colon - hostport) >= sizeof host)
                die("not HOST:PORT: %s", hostport);
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = 0;
        sin.sin_port = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
                die("not an IPv4 address: %s", host);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
                die("connect %s: %s", hostport, strerror(errno));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
        while (n) {
                ssize_t k = write(fd, p, n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        die("write: %s", strerror(errno));
                p += k;
                n -= (size_t)k;
        }
}

/*
 * One whole response at the start of c->buf?  1 (checked: 200 and the echoed body, then
 * consumed), 0 (not whole yet); a wrong answer ends the program.
 */
static int h_parse(hconn *c, const char *want, const char *what)
{
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        size_t hlen, blen = 0;
        const char *p;
        int status;

        if (!end)
                return 0;
        hlen = (size_t)(end - c->buf) + 4;
        if (sscanf(c->buf, "HTTP/1.%*c %d", &status) != 1)
                die("%s: not an HTTP response", what);
        for (p = c->buf; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
                if (*p == '\n')
                        p++;
                if (strncasecmp(p, "content-length:", 15) == 0) {
                        blen = strtoul(p + 15, NULL, 10);
                        break;
                }
        }
        if (c->len < hlen + blen)
                return 0;
        if (status != 200 || blen != strlen(want) || memcmp(c->buf + hlen, want, blen) != 0)
                die("%s: answer %d '%.*s', wanted 200 '%s'", what, status, (int)blen, c->buf + hlen,
                    want);
        memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
        c->len -= hlen + blen;
        return 1;
}

static int h_read(hconn *c, const char *what)
{
        ssize_t k;

        if (c->len == sizeof c->buf)
                die("%s: response too large", what);
        k = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (k == 0)
                die("%s: the server closed the connection", what);
        if (k < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : (die("%s: read: %s", what, strerror(errno)), -1);
        c->len += (size_t)k;
        return 1;
}

/* The requests of a figure: one text, or one per call (a DPoP proof is good once). */
typedef struct reqs {
        char **text; /* n texts, or one */
        size_t n;
        size_t next;
} reqs;

static const char *req_next(reqs *q, size_t *len)
{
        const char *t = q->text[q->n == 1 ? 0 : q->next++];

        if (q->n > 1 && q->next > q->n)
                die("more calls than prepared requests");
        *len = strlen(t);
        return t;
}

/* RTT of calls sequential requests on one keep-alive connection (after calls/10 warm-up):
 * p50 and p99 in µs. */
static void http_rtt(const char *hostport, reqs *q, size_t calls, double *p50, double *p99,
                     const char *what)
{
        size_t warm = calls / 10;
        double *us = calloc(calls, sizeof *us);
        hconn *c = calloc(1, sizeof *c);

        if (!us || !c)
                die("no memory");
        c->fd = tcp_connect(hostport);
        for (size_t i = 0; i < warm + calls; i++) {
                size_t len;
                const char *t = req_next(q, &len);
                uint64_t t0 = bench_now_ns();

                write_all(c->fd, t, len);
                while (!h_parse(c, ECHO_BODY, what))
                        h_read(c, what);
                if (i >= warm)
                        us[i - warm] = (double)(bench_now_ns() - t0) / 1e3;
        }
        close(c->fd);
        *p50 = bench_percentile(us, calls, 50);
        *p99 = bench_percentile(us, calls, 99);
        free(us);
        free(c);
}

/* calls/s of conns keep-alive connections, each with one request in flight, for secs. */
static double http_rate(const char *hostport, reqs *q, unsigned conns, double secs, const char *what)
{
        struct pollfd pf[MAX_CONNS];
        hconn *c = calloc(conns, sizeof *c);
        uint64_t t0, until;
        size_t done = 0, len;
        const char *t;

        if (!c)
                die("no memory");
        for (unsigned i = 0; i < conns; i++) {
                c[i].fd = tcp_connect(hostport);
                /* one warm-up call each, blocking */
                t = req_next(q, &len);
                write_all(c[i].fd, t, len);
                while (!h_parse(&c[i], ECHO_BODY, what))
                        h_read(&c[i], what);
                fcntl(c[i].fd, F_SETFL, O_NONBLOCK);
                pf[i] = (struct pollfd){ .fd = c[i].fd, .events = POLLIN };
        }
        t0 = bench_now_ns();
        until = t0 + (uint64_t)(secs * 1e9);
        for (unsigned i = 0; i < conns; i++) {
                t = req_next(q, &len);
                write_all(c[i].fd, t, len);
        }
        for (;;) {
                uint64_t now = bench_now_ns();
                bool more = now < until;
                int k = poll(pf, conns, 1000);

                if (k < 0 && errno != EINTR)
                        die("poll: %s", strerror(errno));
                for (unsigned i = 0; k > 0 && i < conns; i++) {
                        if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)) || pf[i].fd < 0)
                                continue;
                        h_read(&c[i], what);
                        while (h_parse(&c[i], ECHO_BODY, what)) {
                                done++;
                                if (more) {
                                        t = req_next(q, &len);
                                        write_all(c[i].fd, t, len);
                                } else {
                                        pf[i].fd = -1; /* its last answer is in */
                                }
                        }
                }
                bool open = false;
                for (unsigned i = 0; i < conns; i++)
                        open |= pf[i].fd >= 0;
                if (!open)
                        break;
        }
        double rate = (double)done / ((double)(bench_now_ns() - t0) / 1e9);
        for (unsigned i = 0; i < conns; i++)
                close(c[i].fd);
        free(c);
        return rate;
}

static char *http_request(const char *hostport, const char *extra)
{
        char *t = NULL;

        if (asprintf(&t,
                     "POST " ECHO_PATH " HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\n\r\n" ECHO_BODY,
                     hostport, extra ? extra : "", strlen(ECHO_BODY)) < 0)
                die("no memory");
        return t;
}

/* ------------------------------------------------------------------ DPoP proofs */

static char *b64u(const void *data, size_t n)
{
        size_t olen = 0;
        char *out = malloc(4 * ((n + 2) / 3) + 1);

        if (!out || mbedtls_base64_encode((unsigned char *)out, 4 * ((n + 2) / 3) + 1, &olen, data, n) != 0)
                die("base64");
        out[olen] = 0;
        for (char *p = out; *p; p++)
                *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
        while (olen && out[olen - 1] == '=')
                out[--olen] = 0;
        return out;
}

/* A proof (doc/edge.md "Authentication") for POST ECHO_PATH on hostport with token. */
static char *dpop_proof(const hyb_key *key, const char *jwk, const char *hostport, const char *ath,
                        unsigned long serial)
{
        char *hdr = NULL, *cl = NULL, *h64, *c64, *s64, *input = NULL, *out = NULL;
        uint8_t sig[HYB_KEY_SIGNATURE_SIZE];

        if (asprintf(&hdr, "{\"typ\":\"dpop+jwt\",\"alg\":\"ES256\",\"jwk\":%s}", jwk) < 0 ||
            asprintf(&cl, "{\"htm\":\"POST\",\"htu\":\"http://%s" ECHO_PATH "\",\"iat\":%lld,"
                          "\"jti\":\"bench-%ld-%lu\",\"ath\":\"%s\"}",
                     hostport, (long long)time(NULL), (long)getpid(), serial, ath) < 0)
                die("no memory");
        h64 = b64u(hdr, strlen(hdr));
        c64 = b64u(cl, strlen(cl));
        if (asprintf(&input, "%s.%s", h64, c64) < 0)
                die("no memory");
        if (hyb_key_sign(key, input, strlen(input), sig) < 0)
                die("hyb_key_sign");
        s64 = b64u(sig, sizeof sig);
        if (asprintf(&out, "%s.%s", input, s64) < 0)
                die("no memory");
        free(hdr);
        free(cl);
        free(h64);
        free(c64);
        free(s64);
        free(input);
        return out;
}

static char *read_file(const char *path)
{
        FILE *f = fopen(path, "r");
        char *buf = NULL;
        size_t cap = 0;
        ssize_t n;

        if (!f || (n = getline(&buf, &cap, f)) <= 0)
                die("cannot read %s", path);
        fclose(f);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = 0;
        return buf;
}

/* n requests with the token and a fresh proof each (signed before the clock starts). */
static void token_reqs(reqs *q, size_t n, const char *hostport, const char *token,
                       const hyb_key *key)
{
        static unsigned long serial;
        uint8_t th[32];
        char *jwk = NULL, *ath, *extra = NULL;

        if (hyb_key_to_jwk(key, 0, &jwk) < 0)
                die("hyb_key_to_jwk");
        mbedtls_sha256_ret((const unsigned char *)token, strlen(token), th, 0);
        ath = b64u(th, sizeof th);
        q->text = calloc(n, sizeof *q->text);
        q->n = n;
        q->next = 0;
        if (!q->text)
                die("no memory");
        for (size_t i = 0; i < n; i++) {
                char *proof = dpop_proof(key, jwk, hostport, ath, ++serial);

                if (asprintf(&extra, "Authorization: Bearer %s\r\nDPoP: %s\r\n", token, proof) < 0)
                        die("no memory");
                q->text[i] = http_request(hostport, extra);
                free(extra);
                free(proof);
        }
        hyb_free(jwk);
        free(ath);
}

/* The floor of a token request: one ES256 verification (the proof's), µs, median of n. */
static double verify_us(const hyb_key *key, size_t n)
{
        uint8_t sig[HYB_KEY_SIGNATURE_SIZE];
        const char *msg = "bench-edge: the floor of a request with a token";
        double *us = calloc(n, sizeof *us), m;

        if (!us || hyb_key_sign(key, msg, strlen(msg), sig) < 0)
                die("hyb_key_sign");
        for (size_t i = 0; i < n; i++) {
                uint64_t t0 = bench_now_ns();

                if (hyb_key_verify(key, msg, strlen(msg), sig, sizeof sig) != 0)
                        die("hyb_key_verify");
                us[i] = (double)(bench_now_ns() - t0) / 1e3;
        }
        m = bench_median(us, n);
        free(us);
        return m;
}

static void reqs_free(reqs *q)
{
        for (size_t i = 0; i < q->n; i++)
                free(q->text[i]);
        free(q->text);
        memset(q, 0, sizeof *q);
}

/* ------------------------------------------------------------------ Unix socket, TCP */

static void unix_rtt(hyb_bus *bus, size_t calls, double *p50, double *p99)
{
        size_t warm = calls / 10;
        double *us = calloc(calls, sizeof *us);

        if (!us)
                die("no memory");
        for (size_t i = 0; i < warm + calls; i++) {
                hyb_bus_reply *rep = NULL;
                hyb_error err = { 0 };
                uint64_t t0 = bench_now_ns();
                size_t len = 0;
                const void *body;

                if (hyb_bus_call(bus, ECHO_EP, "echo", ECHO_BODY, strlen(ECHO_BODY), 0, 10000, &rep,
                                 &err) < 0)
                        die("unix call: %s", err.message);
                if (i >= warm)
                        us[i - warm] = (double)(bench_now_ns() - t0) / 1e3;
                body = hyb_bus_reply_get_body(rep, &len);
                if (hyb_bus_reply_get_status(rep) != 200 || len != strlen(ECHO_BODY) ||
                    memcmp(body, ECHO_BODY, len) != 0)
                        die("unix call: answer %d", hyb_bus_reply_get_status(rep));
                hyb_bus_reply_unref(rep);
        }
        *p50 = bench_percentile(us, calls, 50);
        *p99 = bench_percentile(us, calls, 99);
        free(us);
}

/* A 1-byte TCP echo on loopback, for one loopback TCP round trip. */
static void *tcp_echo(void *ud)
{
        int lfd = *(int *)ud, fd, one = 1;
        char b;

        fd = accept(lfd, NULL, NULL);
        if (fd < 0)
                return NULL;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (read(fd, &b, 1) == 1)
                if (write(fd, &b, 1) != 1)
                        break;
        close(fd);
        return NULL;
}

static void tcp_rtt(size_t calls, double *p50, double *p99)
{
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof sin;
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd;
        double *us = calloc(calls, sizeof *us);
        char hp[64];
        pthread_t th;

        if (lfd < 0 || !us || bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 1) < 0 ||
            getsockname(lfd, (struct sockaddr *)&sin, &sl) < 0)
                die("tcp echo: %s", strerror(errno));
        pthread_create(&th, NULL, tcp_echo, &lfd);
        snprintf(hp, sizeof hp, "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
        fd = tcp_connect(hp);
        for (size_t i = 0; i < calls + calls / 10; i++) {
                char b = 'x';
                uint64_t t0 = bench_now_ns();

                if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1)
                        die("tcp echo: %s", strerror(errno));
                if (i >= calls / 10)
                        us[i - calls / 10] = (double)(bench_now_ns() - t0) / 1e3;
        }
        close(fd);
        pthread_join(th, NULL);
        close(lfd);
        *p50 = bench_percentile(us, calls, 50);
        *p99 = bench_percentile(us, calls, 99);
        free(us);
}

/* ------------------------------------------------------------------ CoAP client */

#ifdef HAVE_COAP
static int coap_done;

static coap_response_t coap_answer(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t id)
{
        const uint8_t *data = NULL;
        size_t len = 0;
        coap_pdu_code_t code = coap_pdu_get_code(received);

        (void)session;
        (void)sent;
        (void)id;
        coap_get_data(received, &len, &data);
        if (COAP_RESPONSE_CLASS(code) != 2 || len != strlen(ECHO_BODY) || memcmp(data, ECHO_BODY, len) != 0)
                die("coap: answer %d.%02d '%.*s', wanted 2.05 '%s'", COAP_RESPONSE_CLASS(code), code & 0x1f,
                    (int)len, data ? (const char *)data : "", ECHO_BODY);
        coap_done = 1;
        return COAP_RESPONSE_OK;
}

/* RTT of calls sequential non-confirmable POSTs (one datagram each way), p50/p99 in µs. */
static void coap_rtt(const char *hostport, size_t calls, double *p50, double *p99)
{
        static const char *const seg[] = { "bus", ECHO_APP, "edge", "echo" };
        char host[64];
        const char *colon = strrchr(hostport, ':');
        size_t warm = calls / 10;
        double *us = calloc(calls, sizeof *us);
        coap_address_t dst;
        coap_context_t *ctx;
        coap_session_t *s;

        if (!colon || (size_t)(colon - hostport) >= sizeof host || !us)
                die("coap: not HOST:PORT: %s", hostport);
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = 0;
        coap_startup();
        coap_set_log_level(LOG_EMERG);
        coap_address_init(&dst);
        dst.addr.sin.sin_family = AF_INET;
        dst.addr.sin.sin_port = htons((uint16_t)atoi(colon + 1));
        if (inet_pton(AF_INET, host, &dst.addr.sin.sin_addr) != 1)
                die("coap: not an IPv4 address: %s", host);
        dst.size = sizeof(struct sockaddr_in);
        ctx = coap_new_context(NULL);
        s = ctx ? coap_new_client_session(ctx, NULL, &dst, COAP_PROTO_UDP) : NULL;
        if (!s)
                die("coap: no session");
        coap_register_response_handler(ctx, coap_answer);
        for (size_t i = 0; i < warm + calls; i++) {
                coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_NON, COAP_REQUEST_CODE_POST,
                                                coap_new_message_id(s), coap_session_max_pdu_size(s));
                uint8_t tok[8];
                size_t tl = 0;
                uint64_t t0;

                if (!pdu)
                        die("coap: no pdu");
                coap_session_new_token(s, &tl, tok);
                coap_add_token(pdu, tl, tok);
                for (size_t k = 0; k < sizeof seg / sizeof seg[0]; k++)
                        coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(seg[k]), (const uint8_t *)seg[k]);
                coap_add_data(pdu, strlen(ECHO_BODY), (const uint8_t *)ECHO_BODY);
                coap_done = 0;
                t0 = bench_now_ns();
                if (coap_send(s, pdu) == COAP_INVALID_MID)
                        die("coap: send");
                while (!coap_done) {
                        if (coap_io_process(ctx, 10000) < 0)
                                die("coap: io");
                        if (!coap_done && bench_now_ns() - t0 > 10000000000ull)
                                die("coap: no answer in 10 s");
                }
                if (i >= warm)
                        us[i - warm] = (double)(bench_now_ns() - t0) / 1e3;
        }
        coap_session_release(s);
        coap_free_context(ctx);
        coap_cleanup();
        *p50 = bench_percentile(us, calls, 50);
        *p99 = bench_percentile(us, calls, 99);
        free(us);
}
#endif

/* ------------------------------------------------------------------ WebSocket clients */

/* A bus over url (ws:// or wss://) as a token session; NULL (with the reason on stderr
 * once) when the library or the daemon has no WebSocket. */
static hyb_bus *ws_connect(const char *url, const char *token, const hyb_key *key, unsigned serial,
                           bool quiet)
{
        hyb_bus_connect_options o;
        hyb_error err = { 0 };
        hyb_bus *bus = NULL;
        char runner[48];

        snprintf(runner, sizeof runner, "b%ldw%u", (long)getpid(), serial);
        hyb_bus_connect_options_init(&o);
        o.path = url;
        o.app = "org.hybridos.cli"; /* a CLI session: its rights are the token's alone */
        o.runner = runner;
        o.token = token;
        o.key = key;
        if (hyb_bus_connect_with(&o, &bus, &err) < 0) {
                if (!quiet)
                        fprintf(stderr, "bench-edge: WebSocket connect %s: %s\n", url, err.message);
                return NULL;
        }
        return bus;
}

static long vm_rss_kb(long pid)
{
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof path, "/proc/%ld/status", pid);
        if (!(f = fopen(path, "r")))
                return -1;
        while (fgets(line, sizeof line, f))
                if (strncmp(line, "VmRSS:", 6) == 0)
                        kb = strtol(line + 6, NULL, 10);
        fclose(f);
        return kb;
}

/* ------------------------------------------------------------------ the table */

enum { R_UNIX, R_TCP, R_HTTP, R_HTTP_TOK, R_NGINX, R_WS, R_COAP, N_ROWS };
static const char *row_name[N_ROWS] = {
        [R_UNIX] = "Unix socket, hyb_bus_call (uid session)",
        [R_TCP] = "loopback TCP round trip (1 byte, no broker)",
        [R_HTTP] = "HTTP keep-alive POST /bus/..., anonymous route",
        [R_HTTP_TOK] = "HTTP keep-alive POST /bus/..., Bearer + DPoP",
        [R_NGINX] = "nginx -> Unix-socket echo upstream (keep-alive)",
        [R_WS] = "WebSocket ws:// /bus/ws, hyb_bus_call (token)",
        [R_COAP] = "CoAP coap:// POST /bus/... (NON), anonymous route",
};
static const char *row_id[N_ROWS] = {
        [R_UNIX] = "unix", [R_TCP] = "tcp", [R_HTTP] = "http",
        [R_HTTP_TOK] = "token", [R_NGINX] = "nginx", [R_WS] = "ws", [R_COAP] = "coap",
};

typedef struct opts {
        const char *sock, *http, *nginx, *token_file, *key_file, *ws, *mosq_ws, *rows, *coap;
        long hybridd_pid;
        unsigned rounds, conns, clients;
        size_t calls;
        double secs;
        bool verbose;
} opts;

/* Is id one of the comma-separated ids of list? */
static bool row_wanted(const char *list, const char *id)
{
        size_t n = strlen(id);

        for (const char *p = list; p && *p; p = strchr(p, ','), p = p ? p + 1 : NULL)
                if (strncmp(p, id, n) == 0 && (p[n] == ',' || p[n] == 0))
                        return true;
        return false;
}

static double loadavg(void)
{
        double l = NAN;
        FILE *f = fopen("/proc/loadavg", "r");

        if (f) {
                if (fscanf(f, "%lf", &l) != 1)
                        l = NAN;
                fclose(f);
        }
        return l;
}

static void cell(double v, const char *fmt)
{
        if (isnan(v))
                printf(" %10s |", "-");
        else
                printf(fmt, v);
}

int main(int argc, char **argv)
{
        opts o = { .rounds = 3, .conns = 16, .clients = 1000, .calls = 5000, .secs = 2 };
        double p50[N_ROWS][16], p99[N_ROWS][16], rate[N_ROWS][16];
        double rss_per = NAN, rss0 = NAN, rss1 = NAN, floor_us[16];
        char *token = NULL;
        hyb_key *key = NULL;
        hyb_bus *ubus = NULL, *wbus = NULL;
        hyb_error err = { 0 };

        if (argc == 3 && strcmp(argv[1], "serve") == 0)
                return cmd_serve(argv[2]);
        if (argc == 3 && strcmp(argv[1], "upstream") == 0)
                return cmd_upstream(argv[2]);
        if (argc == 2 && strcmp(argv[1], "bare") == 0)
                return cmd_bare();
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

#define OPT(name) (strcmp(a, name) == 0 && v && (i++, true))
                if (OPT("--sock"))
                        o.sock = v;
                else if (OPT("--http"))
                        o.http = v;
                else if (OPT("--nginx"))
                        o.nginx = v;
                else if (OPT("--token"))
                        o.token_file = v;
                else if (OPT("--key"))
                        o.key_file = v;
                else if (OPT("--ws"))
                        o.ws = v;
                else if (OPT("--coap"))
                        o.coap = v;
                else if (OPT("--rows"))
                        o.rows = v;
                else if (OPT("--mosquitto-ws"))
                        o.mosq_ws = v;
                else if (OPT("--hybridd-pid"))
                        o.hybridd_pid = atol(v);
                else if (OPT("--rounds"))
                        o.rounds = (unsigned)atoi(v);
                else if (OPT("--conns"))
                        o.conns = (unsigned)atoi(v);
                else if (OPT("--clients"))
                        o.clients = (unsigned)atoi(v);
                else if (OPT("--calls"))
                        o.calls = (size_t)atol(v);
                else if (OPT("--secs"))
                        o.secs = atof(v);
                else if (strcmp(a, "--verbose") == 0)
                        o.verbose = true;
                else
                        die("unknown option %s (see bench/README.md)", a);
#undef OPT
        }
        if (!o.sock || !o.http)
                die("--sock and --http are required");
        if (o.rounds < 1 || o.rounds > 16 || o.conns < 1 || o.conns > MAX_CONNS || o.calls < 10)
                die("--rounds 1..16, --conns 1..%d, --calls >= 10", MAX_CONNS);
        signal(SIGPIPE, SIG_IGN);
        if (o.token_file && o.key_file) {
                token = read_file(o.token_file);
                if (hyb_key_load_file(o.key_file, &key, &err) < 0)
                        die("%s: %s", o.key_file, err.message);
        }
        {
                char runner[32];

                snprintf(runner, sizeof runner, "u%ld", (long)getpid());
                if (hyb_bus_connect(o.sock, "org.example.bench.client", runner, &ubus, &err) < 0)
                        die("connect %s: %s", o.sock, err.message);
        }

        /* 1 000 idle WebSocket clients, first, on the fresh daemon (a daemon that routed
         * traffic keeps its freed heap and new connections reuse it). */
        if (o.ws && token && o.hybridd_pid > 0 && o.clients > 0 && (!o.rows || row_wanted(o.rows, "rss"))) {
                hyb_bus **cl = calloc(o.clients, sizeof *cl);
                unsigned got = 0;

                if (!cl)
                        die("no memory");
                rss0 = (double)vm_rss_kb(o.hybridd_pid);
                fprintf(stderr, "== %u idle WebSocket clients (hybridd VmRSS %.0f kB)\n", o.clients, rss0);
                for (; got < o.clients; got++)
                        if (!(cl[got] = ws_connect(o.ws, token, key, got, false)))
                                break;
                if (got == o.clients) {
                        /* every client authenticated (connect returns after AUTH_RESULT 200);
                         * one call through the daemon lets it finish what it queued */
                        hyb_bus_reply *rep = NULL;

                        if (hyb_bus_call_builtin(ubus, "listEndpoints", "{}", &rep, &err) < 0)
                                die("listEndpoints: %s", err.message);
                        hyb_bus_reply_unref(rep);
                        rss1 = (double)vm_rss_kb(o.hybridd_pid);
                        rss_per = (rss1 - rss0) / o.clients;
                } else {
                        fprintf(stderr, "bench-edge: only %u WebSocket clients connected\n", got);
                }
                for (unsigned i = 0; i < got; i++)
                        hyb_bus_unref(cl[i]);
                free(cl);
        }

        for (unsigned r = 0; r < o.rounds; r++) {
                for (int k = 0; k < N_ROWS; k++) {
                        int row = r % 2 ? N_ROWS - 1 - k : k; /* alternate who goes first */
                        reqs q = { 0 };
                        char *one;

                        p50[row][r] = p99[row][r] = rate[row][r] = NAN;
                        if (row == R_HTTP_TOK)
                                floor_us[r] = NAN;
                        if (o.rows && !row_wanted(o.rows, row_id[row]))
                                continue;
                        switch (row) {
                        case R_UNIX:
                                unix_rtt(ubus, o.calls, &p50[row][r], &p99[row][r]);
                                break;
                        case R_TCP:
                                tcp_rtt(o.calls, &p50[row][r], &p99[row][r]);
                                break;
                        case R_HTTP:
                        case R_NGINX: {
                                const char *hp = row == R_HTTP ? o.http : o.nginx;

                                if (!hp)
                                        break;
                                one = http_request(hp, NULL);
                                q.text = &one;
                                q.n = 1;
                                http_rtt(hp, &q, o.calls, &p50[row][r], &p99[row][r], row_name[row]);
                                rate[row][r] = http_rate(hp, &q, o.conns, o.secs, row_name[row]);
                                free(one);
                                break;
                        }
                        case R_HTTP_TOK: {
                                /* the edge lets one holder key fill half of its 4 096 proofs of a
                                 * 60 s window: three rounds of 600 (+10 % warm-up) stay under it */
                                size_t n = o.calls < 600 ? o.calls : 600;

                                if (!token)
                                        break;
                                fprintf(stderr, "== round %u: signing %zu DPoP proofs\n", r + 1, n + n / 10);
                                token_reqs(&q, n + n / 10, o.http, token, key);
                                http_rtt(o.http, &q, n, &p50[row][r], &p99[row][r], row_name[row]);
                                reqs_free(&q);
                                floor_us[r] = verify_us(key, 200);
                                break;
                        }
                        case R_COAP:
#ifdef HAVE_COAP
                                if (o.coap)
                                        coap_rtt(o.coap, o.calls, &p50[row][r], &p99[row][r]);
#endif
                                break;
                        case R_WS: {
                                size_t warm = o.calls / 10;
                                double *us;

                                /* connected for the row (an idle client unread for long is
                                 * cut off by the server's ping timeout: fair) */
                                if (!o.ws || !token || !(wbus = ws_connect(o.ws, token, key, 999999 - r, false)))
                                        break;
                                us = calloc(o.calls, sizeof *us);
                                if (!us)
                                        die("no memory");
                                for (size_t i = 0; i < warm + o.calls; i++) {
                                        hyb_bus_reply *rep = NULL;
                                        uint64_t t0 = bench_now_ns();
                                        size_t len = 0;
                                        const void *body;

                                        if (hyb_bus_call(wbus, ECHO_EP, "echo", ECHO_BODY,
                                                         strlen(ECHO_BODY), 0, 10000, &rep, &err) < 0)
                                                die("ws call: %s", err.message);
                                        if (i >= warm)
                                                us[i - warm] = (double)(bench_now_ns() - t0) / 1e3;
                                        body = hyb_bus_reply_get_body(rep, &len);
                                        if (hyb_bus_reply_get_status(rep) != 200 ||
                                            len != strlen(ECHO_BODY) || memcmp(body, ECHO_BODY, len) != 0)
                                                die("ws call: answer %d", hyb_bus_reply_get_status(rep));
                                        hyb_bus_reply_unref(rep);
                                }
                                p50[row][r] = bench_percentile(us, o.calls, 50);
                                p99[row][r] = bench_percentile(us, o.calls, 99);
                                free(us);
                                wbus = hyb_bus_unref(wbus);
                                break;
                        }
                        }
                        if (o.verbose)
                                printf("RESULT round=%u row=%d p50_us=%.1f p99_us=%.1f calls_per_s=%.0f\n",
                                       r + 1, row, p50[row][r], p99[row][r], rate[row][r]);
                }
                fprintf(stderr, "== round %u of %u done\n", r + 1, o.rounds);
        }

        double m50[N_ROWS], m99[N_ROWS], mrate[N_ROWS], ratio_nginx[16];
        for (int row = 0; row < N_ROWS; row++) {
                m50[row] = bench_median(p50[row], o.rounds);
                m99[row] = bench_median(p99[row], o.rounds);
                mrate[row] = bench_median(rate[row], o.rounds);
        }
        for (unsigned r = 0; r < o.rounds; r++)
                ratio_nginx[r] = rate[R_HTTP][r] / rate[R_NGINX][r];
        double rn = bench_median(ratio_nginx, o.rounds);

        printf("\nbench-edge: %u rounds (medians), %zu sequential calls per RTT figure, rates with %u "
               "keep-alive connections for %.1f s; load average %.2f\n\n",
               o.rounds, o.calls, o.conns, o.secs, loadavg());
        printf("| %-50s | %10s | %10s | %10s |\n", "row (body {\"words\":\"hi\"} echoed)", "p50 us",
               "p99 us", "calls/s");
        printf("|%s|%s|%s|%s|\n", "----------------------------------------------------", "------------",
               "------------", "------------");
        for (int row = 0; row < N_ROWS; row++) {
                printf("| %-50s |", row_name[row]);
                cell(m50[row], " %10.1f |");
                cell(m99[row], " %10.1f |");
                cell(mrate[row], " %10.0f |");
                printf("\n");
        }
        if (!isnan(m50[R_HTTP_TOK]))
                printf("| %-50s | %10.1f | (its floor: one ES256 verify, hyb_key_verify here, median) |\n",
                       "  one ES256 verify (the proof's), in this process", bench_median(floor_us, o.rounds));
        printf("| %-50s | %s |\n", "mosquitto WebSocket listener (pub -> sub)",
               o.mosq_ws ? o.mosq_ws : "not tried");
        if (!isnan(rss_per))
                printf("| %-50s | %s%.1f KB per client (VmRSS %.0f -> %.0f kB) |\n",
                       "idle authenticated WebSocket clients: hybridd RSS", "", rss_per, rss0, rss1);
        else
                printf("| %-50s | %s |\n", "idle authenticated WebSocket clients: hybridd RSS", "-");

        printf("\nTargets (issue 12):\n");
        if (!isnan(m50[R_WS])) {
                double bound = (m50[R_UNIX] + m50[R_TCP]) * 1.2;

                printf("  WebSocket call RTT p50 %.1f us <= (Unix %.1f + TCP %.1f) x 1.2 = %.1f us: %s "
                       "(%.2fx the bound)\n",
                       m50[R_WS], m50[R_UNIX], m50[R_TCP], bound, m50[R_WS] <= bound ? "PASS" : "MISS",
                       m50[R_WS] / bound);
        } else {
                printf("  WebSocket call RTT: not measured (no ws:// in this build or no --ws/--token)\n");
        }
        if (!isnan(rn))
                printf("  HTTP keep-alive calls/s %.0f >= 0.8x nginx proxied %.0f: ratio %.2f (median of "
                       "the rounds' ratios): %s\n",
                       mrate[R_HTTP], mrate[R_NGINX], rn, rn >= 0.8 ? "PASS" : "MISS");
        else
                printf("  HTTP keep-alive vs nginx: not measured (no --nginx)\n");
        if (!isnan(rss_per))
                printf("  %u concurrent WebSocket clients held with %.1f KB each <= 32 KB: %s\n", o.clients,
                       rss_per, rss_per <= 32 ? "PASS" : "MISS");
        else
                printf("  %u concurrent WebSocket clients: not measured\n", o.clients);
        printf("(load average %.2f at the end; figures above 2 mean a shared, noisy run)\n", loadavg());
        hyb_bus_unref(wbus);
        hyb_bus_unref(ubus);
        hyb_key_unref(key);
        free(token);
        return 0;
}
