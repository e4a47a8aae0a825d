/* SPDX-License-Identifier: MIT */
/*
 * mbedTLS over libevent (tls.h has the picture).  One edge_tls holds what connections
 * share: the mbedtls_ssl_config, the certificates and keys, the DRBG.  One edge_tls_conn
 * per connection: the mbedtls_ssl_context, the socket bufferevent under the filter, the
 * handshake timer and a "kick" event that resumes work a callback could not finish.
 *
 * The filter bufferevent of libevent owns the socket bufferevent's callbacks; we read them
 * back (bufferevent_getcb) and install wrappers around them, so the handshake runs before
 * the filter sees any byte, the socket's events are translated (a TCP close without
 * close_notify is an error), and edge_tls_conn_get() finds the connection of a bufferevent.
 *
 * Output: the write callback of a bufferevent means "written"; libevent's filter calls it
 * once the plaintext moved into the socket bufferevent, which is not on the wire yet, and
 * evhttp frees the connection from that callback.  So the output filter takes plaintext out
 * of the user's buffer only once its ciphertext reached the kernel: it encrypts from an
 * offset (plain_pending bytes already encrypted) and drains them after a direct send.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <mbedtls/asn1.h>
#include <mbedtls/base64.h>
#include <mbedtls/constant_time.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "edge/tls.h"
#include "edge/edge-internal.h"

#include "common/util.h"
#include "token/crypto.h"

#define RECORD_MAX 16384 /* plaintext bytes of one TLS record */
#define SPKI_MAX 1024    /* DER SubjectPublicKeyInfo: P-521 and RSA-4096 fit easily */

struct edge_tls {
        unsigned n_ref;
        bool server;
        bool has_ca, has_pin;
        uint8_t pin[EDGE_TLS_PIN_SIZE];
        unsigned handshake_timeout_ms;
        size_t max_buffer;
        mbedtls_ssl_config conf;
        mbedtls_x509_crt own_cert, ca;
        mbedtls_pk_context own_key;
        mbedtls_entropy_context entropy;
        mbedtls_ctr_drbg_context drbg;
        edge_tls_conn *stepping; /* the connection in mbedtls_ssl_handshake (export keys) */
        edge_tls_log_fn log;
        void *log_ud;
        /* Server handshakes in progress, by source address (a short list: at most hs_max). */
        unsigned hs_per_source, hs_max, hs_total;
        struct hs_source {
                char addr[INET6_ADDRSTRLEN + 4];
                unsigned n;
        } *sources;
        size_t n_sources;
        /* The connections counted there, oldest first (a newcomer may take the place of
         * the oldest of the source holding the most: evict_handshake). */
        edge_tls_conn *hs_head, *hs_tail;
};

struct edge_tls_conn {
        edge_tls *tls;
        mbedtls_ssl_context ssl;
        struct bufferevent *top, *u; /* the filter the user holds, the socket under it */
        bufferevent_data_cb f_read, f_write;  /* the filter's callbacks on u */
        bufferevent_event_cb f_event;
        void *f_arg;
        struct event *timer, *kick;
        size_t plain_pending; /* bytes at the head of top's output already encrypted */
        bool connected;       /* the TCP connection exists (client: after connect) */
        bool established, failed, peer_closed, tcp_eof, in_blocked, have_keys;
        bool close_wanted, sent_close; /* edge_tls_shutdown asked; close_notify queued */
        uint8_t master[48], randoms[64];
        char peer[INET6_ADDRSTRLEN + 10]; /* "ADDRESS:PORT", for the log */
        char src[INET6_ADDRSTRLEN + 4];   /* the source key (an IPv6 one with "/64"): the handshake cap's key */
        bool admitted, released;          /* counted in tls->sources; no longer */
        edge_tls_conn *hs_prev, *hs_next; /* tls->hs_head list, while admitted */
        mbedtls_tls_prf_types prf;
        char error[200];
        int fd; /* fd-based client connections (edge_tls_fd_open): the socket, else -1 */
        uint8_t ip[16]; /* fd-based clients of an IP address: the address the certificate */
        size_t ip_len;  /* must name (4 or 16 bytes; 0: a host name) */
        size_t w_pending; /* fd-based: the length of the write -EAGAIN left half sent */
};

static const int suites[] = {
        MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        0,
};

static int tls_err(hyb_error *reterr, int code, const char *what, const char *file, int mret)
{
        char buf[120];

        mbedtls_strerror(mret, buf, sizeof(buf));
        return err_set(reterr, code, -1, "%s %s: %s", what, file, buf);
}

/* An unreadable file is its errno (the loader reports it), a readable one mbedTLS refuses
 * is a parse error. */
static int file_error(hyb_error *reterr, const char *what, const char *file, int mret)
{
        FILE *f = fopen(file, "re");

        if (!f)
                return err_set(reterr, -errno, -1, "cannot read %s %s: %s", what, file,
                               strerror(errno));
        fclose(f);
        return tls_err(reterr, HYB_E_PARSE, what == NULL ? "file" : what, file, mret);
}

/* RFC 5705 / RFC 9266 need the master secret and both randoms of the handshake. */
static int export_keys(void *p, const unsigned char *ms, const unsigned char *kb, size_t maclen,
                       size_t keylen, size_t ivlen, const unsigned char client_random[32],
                       const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
        edge_tls *t = p;
        edge_tls_conn *c = t->stepping;

        if (!c)
                return 0;
        memcpy(c->master, ms, sizeof(c->master));
        memcpy(c->randoms, client_random, 32);
        memcpy(c->randoms + 32, server_random, 32);
        c->prf = prf;
        c->have_keys = true;
        return 0;
}

static void tls_free(edge_tls *t)
{
        mbedtls_ssl_config_free(&t->conf);
        mbedtls_x509_crt_free(&t->own_cert);
        mbedtls_x509_crt_free(&t->ca);
        mbedtls_pk_free(&t->own_key);
        mbedtls_ctr_drbg_free(&t->drbg);
        mbedtls_entropy_free(&t->entropy);
        free(t->sources);
        free(t);
}

static int tls_alloc(bool server, edge_tls **ret)
{
        static const char pers[] = "libhybrid edge tls";
        edge_tls *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        t->n_ref = 1;
        t->server = server;
        t->handshake_timeout_ms = EDGE_TLS_HANDSHAKE_TIMEOUT_MS;
        t->max_buffer = EDGE_TLS_MAX_BUFFER;
        t->hs_per_source = EDGE_TLS_HANDSHAKES_PER_SOURCE;
        t->hs_max = EDGE_TLS_HANDSHAKES_MAX;
        mbedtls_ssl_config_init(&t->conf);
        mbedtls_x509_crt_init(&t->own_cert);
        mbedtls_x509_crt_init(&t->ca);
        mbedtls_pk_init(&t->own_key);
        mbedtls_entropy_init(&t->entropy);
        mbedtls_ctr_drbg_init(&t->drbg);
        r = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                  (const unsigned char *)pers, sizeof(pers) - 1);
        if (r == 0)
                r = mbedtls_ssl_config_defaults(&t->conf,
                                                server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                                MBEDTLS_SSL_TRANSPORT_STREAM,
                                                MBEDTLS_SSL_PRESET_DEFAULT);
        if (r != 0) {
                tls_free(t);
                return r == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EIO;
        }
        mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
        mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                     MBEDTLS_SSL_MINOR_VERSION_3);
        mbedtls_ssl_conf_ciphersuites(&t->conf, suites);
        mbedtls_ssl_conf_renegotiation(&t->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
        mbedtls_ssl_conf_extended_master_secret(&t->conf, MBEDTLS_SSL_EXTENDED_MS_ENABLED);
        mbedtls_ssl_conf_export_keys_ext_cb(&t->conf, export_keys, t);
        *ret = t;
        return 0;
}

int edge_tls_server_new(const char *cert_file, const char *key_file, edge_tls **ret,
                        hyb_error *reterr)
{
        edge_tls *t = NULL;
        int r;

        if (!cert_file || !key_file || !ret)
                return err_set(reterr, -EINVAL, -1, "a TLS server needs a certificate and a key");
        r = tls_alloc(true, &t);
        if (r < 0)
                return err_set(reterr, r, -1, "cannot set up TLS: %s", hyb_strerror(r));
        r = mbedtls_x509_crt_parse_file(&t->own_cert, cert_file);
        if (r != 0) {
                r = file_error(reterr, "certificate", cert_file, r);
                goto fail;
        }
        r = mbedtls_pk_parse_keyfile(&t->own_key, key_file, NULL);
        if (r != 0) {
                r = file_error(reterr, "key", key_file, r);
                goto fail;
        }
        if (mbedtls_pk_check_pair(&t->own_cert.pk, &t->own_key) != 0) {
                r = err_set(reterr, HYB_E_CONFIG, -1,
                            "the key %s is not the key of the certificate %s", key_file,
                            cert_file);
                goto fail;
        }
        r = mbedtls_ssl_conf_own_cert(&t->conf, &t->own_cert, &t->own_key);
        if (r != 0) {
                r = tls_err(reterr, -ENOMEM, "certificate", cert_file, r);
                goto fail;
        }
        /* no session cache and no ticket keys: every connection is a full handshake */
        *ret = t;
        return 0;
fail:
        tls_free(t);
        return r;
}

int edge_tls_client_new(const char *ca_file, const uint8_t *pin, edge_tls **ret,
                        hyb_error *reterr)
{
        edge_tls *t = NULL;
        int r;

        if (!ret || (!ca_file && !pin))
                return err_set(reterr, -EINVAL, -1,
                               "a TLS client needs a CA file or a pinned key to verify the server");
        r = tls_alloc(false, &t);
        if (r < 0)
                return err_set(reterr, r, -1, "cannot set up TLS: %s", hyb_strerror(r));
        if (ca_file) {
                r = mbedtls_x509_crt_parse_file(&t->ca, ca_file);
                if (r != 0) {
                        /* > 0: some certificates of the file did not parse */
                        r = file_error(reterr, "CA file", ca_file, r);
                        goto fail;
                }
                t->has_ca = true;
                mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
                mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        } else {
                /* The pin is the trust: chain and name are not checked (verify_peer). */
                mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
        }
        if (pin) {
                t->has_pin = true;
                memcpy(t->pin, pin, EDGE_TLS_PIN_SIZE);
        }
        *ret = t;
        return 0;
fail:
        tls_free(t);
        return r;
}

int edge_tls_parse_pin(const char *text, uint8_t pin[EDGE_TLS_PIN_SIZE])
{
        uint8_t buf[48];
        size_t len, n = 0;

        if (!text || !pin)
                return -EINVAL;
        while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
                text++;
        if (strncmp(text, "sha256//", 8) == 0)
                text += 8;
        len = strlen(text);
        while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' ||
                           text[len - 1] == '\n' || text[len - 1] == '\r'))
                len--;
        if (mbedtls_base64_decode(buf, sizeof(buf), &n, (const unsigned char *)text, len) != 0 ||
            n != EDGE_TLS_PIN_SIZE)
                return -EINVAL;
        memcpy(pin, buf, EDGE_TLS_PIN_SIZE);
        return 0;
}

void edge_tls_set_handshake_caps(edge_tls *t, unsigned per_source, unsigned total)
{
        t->hs_per_source = per_source ? per_source : 1;
        t->hs_max = total ? total : 1;
}

void edge_tls_set_log(edge_tls *t, edge_tls_log_fn fn, void *userdata)
{
        t->log = fn;
        t->log_ud = userdata;
}

void edge_tls_set_limits(edge_tls *t, unsigned handshake_timeout_ms, size_t max_buffer)
{
        t->handshake_timeout_ms = handshake_timeout_ms ? handshake_timeout_ms : 1;
        t->max_buffer = max_buffer < RECORD_MAX ? RECORD_MAX : max_buffer;
}

edge_tls *edge_tls_ref(edge_tls *t)
{
        if (t)
                t->n_ref++;
        return t;
}

edge_tls *edge_tls_unref(edge_tls *t)
{
        if (t && --t->n_ref == 0)
                tls_free(t);
        return NULL;
}

/* ------------------------------------------------------------------ one connection */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
        edge_tls_conn *c = ctx;

        if (evbuffer_add(bufferevent_get_output(c->u), buf, len) < 0)
                return MBEDTLS_ERR_SSL_ALLOC_FAILED;
        return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
        edge_tls_conn *c = ctx;
        int n = evbuffer_remove(bufferevent_get_input(c->u), buf, len);

        return n > 0 ? n : MBEDTLS_ERR_SSL_WANT_READ;
}

/* Sends what the socket takes now, without SIGPIPE; the socket bufferevent sends the rest. */
static void flush_direct(edge_tls_conn *c)
{
        struct evbuffer *out = bufferevent_get_output(c->u);
        evutil_socket_t fd = bufferevent_getfd(c->u);

        if (fd < 0)
                return; /* a connect in progress fails with EAGAIN/ENOTCONN: harmless */
        while (evbuffer_get_length(out) > 0) {
                struct evbuffer_iovec v[8];
                struct iovec iov[8];
                struct msghdr msg = { .msg_iov = iov };
                int n = evbuffer_peek(out, -1, NULL, v, 8);
                ssize_t k;

                if (n > 8)
                        n = 8;
                for (int i = 0; i < n; i++)
                        iov[i] = (struct iovec){ v[i].iov_base, v[i].iov_len };
                msg.msg_iovlen = (size_t)n;
                k = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k <= 0)
                        return; /* EAGAIN, or an error the socket bufferevent will report */
                /* a bufferevent's output is frozen at its start: only the bufferevent
                 * removes what it sent; we sent these bytes in its stead */
                evbuffer_unfreeze(out, 1);
                evbuffer_drain(out, (size_t)k);
                evbuffer_freeze(out, 1);
        }
}

static void report(edge_tls_conn *c, short what)
{
        bufferevent_trigger_event(c->top, what, BEV_TRIG_DEFER_CALLBACKS);
}

/* The peer's address, once, while the socket is surely connected (for log_failure). */
static void note_peer(edge_tls_conn *c)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        evutil_socket_t fd = bufferevent_getfd(c->u);
        char addr[INET6_ADDRSTRLEN];

        if (c->peer[0] || fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
                return;
        if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
                struct sockaddr_storage key;

                if (ss.ss_family == AF_INET) {
                        struct sockaddr_in *a = (struct sockaddr_in *)&ss;

                        inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
                        snprintf(c->peer, sizeof(c->peer), "%s:%u", addr, ntohs(a->sin_port));
                } else {
                        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

                        inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
                        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", addr, ntohs(a->sin6_port));
                }
                /* the handshake cap counts by the edge's source key: an IPv4 address (an
                 * IPv4-mapped one as IPv4), or an IPv6 /64 (edge-internal.h) */
                edge_addr_key((const struct sockaddr *)&ss, &key);
                if (key.ss_family == AF_INET) {
                        inet_ntop(AF_INET, &((struct sockaddr_in *)&key)->sin_addr, addr, sizeof(addr));
                        snprintf(c->src, sizeof(c->src), "%s", addr);
                } else {
                        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&key)->sin6_addr, addr, sizeof(addr));
                        snprintf(c->src, sizeof(c->src), "%.*s/64", (int)sizeof(c->src) - 4, addr);
                }
        } else {
                snprintf(c->peer, sizeof(c->peer), "local");
                snprintf(c->src, sizeof(c->src), "local");
        }
}

/* "ADDRESS: message" to the configuration's log callback. */
static void log_failure(edge_tls_conn *c)
{
        char line[sizeof(c->error) + sizeof(c->peer) + 4];

        note_peer(c);
        snprintf(line, sizeof(line), "%s: %s", c->peer[0] ? c->peer : "?", c->error);
        c->tls->log(line, c->tls->log_ud);
}

static struct hs_source *source_find(edge_tls *t, const char *addr)
{
        for (size_t i = 0; i < t->n_sources; i++)
                if (strcmp(t->sources[i].addr, addr) == 0)
                        return &t->sources[i];
        return NULL;
}

static void conn_fail(edge_tls_conn *c, short what, const char *fmt, ...) _printf_(3, 4);

/*
 * All hs_max handshakes are in progress: the oldest handshake of the source holding the most
 * is failed for a newcomer from mine (NULL: a source without any), if that source holds more
 * than mine does, so hosts that open connections and stall their handshakes (a slowloris)
 * take each other's places, never a newcomer's from a source holding fewer.  True when one
 * was failed (its slot released at once).
 */
static bool evict_handshake(edge_tls *t, const struct hs_source *mine)
{
        const struct hs_source *top = NULL;
        edge_tls_conn *victim;
        unsigned n;

        for (size_t i = 0; i < t->n_sources; i++)
                if (!top || t->sources[i].n > top->n)
                        top = &t->sources[i];
        if (!top || top == mine || top->n <= (mine ? mine->n : 0))
                return false;
        for (victim = t->hs_head; victim; victim = victim->hs_next)
                if (strcmp(victim->src, top->addr) == 0)
                        break;
        if (!victim)
                return false;
        n = top->n;
        conn_fail(victim, BEV_EVENT_READING,
                  "TLS handshake: closed for a newcomer: the oldest of %u in progress from its "
                  "source, %u in all", n, t->hs_total);
        return true;
}

/*
 * Counts a server connection's handshake under its source address: refused (-EUSERS, with
 * the message in c->error) past hs_per_source from one address, or past hs_max in all when
 * no source holds more than c's (evict_handshake), so one host cannot hold every handshake
 * slot of the listener.
 */
static int admit(edge_tls_conn *c)
{
        edge_tls *t = c->tls;
        struct hs_source *e;

        if (!t->server || c->admitted || c->released)
                return 0;
        note_peer(c);
        if (!c->src[0])
                return 0; /* no socket yet */
        e = source_find(t, c->src);
        if (t->hs_total >= t->hs_max && !(e && e->n >= t->hs_per_source) &&
            evict_handshake(t, e))
                e = source_find(t, c->src); /* the eviction may have moved the entries */
        if (t->hs_total >= t->hs_max) {
                snprintf(c->error, sizeof(c->error), "%u TLS handshakes in progress already",
                         t->hs_total);
                return -EUSERS;
        }
        if (e && e->n >= t->hs_per_source) {
                snprintf(c->error, sizeof(c->error),
                         "%u TLS handshakes from %s in progress already", e->n, c->src);
                return -EUSERS;
        }
        if (!e) {
                e = reallocarray_safe(t->sources, t->n_sources + 1, sizeof(*e));
                if (!e)
                        return -ENOMEM;
                t->sources = e;
                e = &t->sources[t->n_sources++];
                memcpy(e->addr, c->src, sizeof(e->addr));
                e->n = 0;
        }
        e->n++;
        t->hs_total++;
        c->admitted = true;
        c->hs_prev = t->hs_tail;
        c->hs_next = NULL;
        if (t->hs_tail)
                t->hs_tail->hs_next = c;
        else
                t->hs_head = c;
        t->hs_tail = c;
        return 0;
}

static void release(edge_tls_conn *c)
{
        edge_tls *t = c->tls;
        struct hs_source *e;

        if (!c->admitted || c->released)
                return;
        c->released = true;
        t->hs_total--;
        if (c->hs_prev)
                c->hs_prev->hs_next = c->hs_next;
        else
                t->hs_head = c->hs_next;
        if (c->hs_next)
                c->hs_next->hs_prev = c->hs_prev;
        else
                t->hs_tail = c->hs_prev;
        c->hs_prev = c->hs_next = NULL;
        e = source_find(t, c->src);
        assert(e && e->n > 0);
        if (--e->n == 0)
                *e = t->sources[--t->n_sources];
}

static void conn_fail(edge_tls_conn *c, short what, const char *fmt, ...)
{
        va_list ap;

        if (c->failed)
                return;
        c->failed = true;
        va_start(ap, fmt);
        vsnprintf(c->error, sizeof(c->error), fmt, ap);
        va_end(ap);
        if (c->tls->log)
                log_failure(c);
        release(c);
        event_del(c->timer);
        flush_direct(c); /* an alert mbedTLS queued */
        bufferevent_disable(c->u, EV_READ);
        report(c, (short)(BEV_EVENT_ERROR | what));
}

static void conn_fail_tls(edge_tls_conn *c, const char *what, int r)
{
        char buf[120];

        if (r == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
                char info[200];
                uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);

                if (mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags) < 0)
                        snprintf(info, sizeof(info), "flags 0x%x", (unsigned)flags);
                info[strcspn(info, "\n")] = '\0';
                conn_fail(c, BEV_EVENT_READING, "%s: certificate verification failed: %s", what,
                          info);
                return;
        }
        if (c->error[0]) {
                /* verify_peer said why (a pin that does not match) */
                char why[sizeof(c->error)];

                memcpy(why, c->error, sizeof(why));
                conn_fail(c, BEV_EVENT_READING, "%s: %s", what, why);
                return;
        }
        mbedtls_strerror(r, buf, sizeof(buf));
        conn_fail(c, BEV_EVENT_READING, "%s: %s", what, buf);
}

static void pump_input(edge_tls_conn *c);

static void handshake_step(edge_tls_conn *c)
{
        int r;

        if (c->established || c->failed)
                return;
        if (admit(c) < 0) {
                char why[sizeof(c->error)];

                memcpy(why, c->error, sizeof(why));
                conn_fail(c, BEV_EVENT_READING, "TLS handshake refused: %s", why);
                return;
        }
        c->tls->stepping = c;
        r = mbedtls_ssl_handshake(&c->ssl);
        c->tls->stepping = NULL;
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
                flush_direct(c);
                return;
        }
        if (r != 0) {
                conn_fail_tls(c, "TLS handshake", r);
                return;
        }
        c->established = true;
        release(c);
        event_del(c->timer);
        flush_direct(c);
        report(c, BEV_EVENT_CONNECTED);
        /* plaintext written during the handshake, records that came with its end */
        event_active(c->kick, EV_WRITE, 0);
}

/* The filter's read path (plus the handshake before it). */
static void u_read(struct bufferevent *u, void *arg)
{
        edge_tls_conn *c = arg;

        if (c->failed) {
                evbuffer_drain(bufferevent_get_input(u), evbuffer_get_length(bufferevent_get_input(u)));
                return;
        }
        if (!c->established) {
                handshake_step(c);
                if (!c->established)
                        return;
        }
        pump_input(c);
}

static void check_eof(edge_tls_conn *c)
{
        if (!c->tcp_eof || c->failed || c->peer_closed || c->in_blocked)
                return;
        if (evbuffer_get_length(bufferevent_get_input(c->u)) > 0)
                return;
        if (!c->established)
                conn_fail(c, BEV_EVENT_READING | BEV_EVENT_EOF,
                          "TLS handshake: the peer closed the connection");
        else if (!c->sent_close)
                conn_fail(c, BEV_EVENT_READING | BEV_EVENT_EOF,
                          "the peer closed the connection without close_notify");
        else
                report(c, BEV_EVENT_READING | BEV_EVENT_EOF); /* after our own close_notify */
}

static void pump_input(edge_tls_conn *c)
{
        c->f_read(c->u, c->f_arg);
        check_eof(c);
}

static void u_write(struct bufferevent *u, void *arg)
{
        edge_tls_conn *c = arg;

        if (c->established && !c->failed)
                c->f_write(u, c->f_arg);
}

static void u_event(struct bufferevent *u, short what, void *arg)
{
        edge_tls_conn *c = arg;

        if (c->failed)
                return;
        if (what & BEV_EVENT_CONNECTED) {
                c->connected = true;
                handshake_step(c);
                return;
        }
        if (what & BEV_EVENT_EOF) {
                c->tcp_eof = true;
                if (c->established)
                        pump_input(c); /* records that came before the close */
                check_eof(c);
                return;
        }
        if (what & BEV_EVENT_ERROR) {
                int e = EVUTIL_SOCKET_ERROR();

                conn_fail(c, (short)(what & (BEV_EVENT_READING | BEV_EVENT_WRITING)), "%s: %s",
                          c->connected ? "connection" : "connect", evutil_socket_error_to_string(e));
        }
}

/*
 * False once the user freed the bufferevent: libevent's filter then freed the socket
 * bufferevent, which dropped our callbacks; the timer and the kick may still fire before
 * the filter's finalizer (conn_free) runs, and must leave it alone.
 */
static bool conn_alive(edge_tls_conn *c)
{
        bufferevent_data_cb rd, wr;
        bufferevent_event_cb ev = NULL;
        void *arg;

        bufferevent_getcb(c->u, &rd, &wr, &ev, &arg);
        return ev == u_event;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
        edge_tls_conn *c = arg;

        if (!c->established && conn_alive(c))
                conn_fail(c, BEV_EVENT_READING | BEV_EVENT_TIMEOUT,
                          "TLS handshake: timed out after %u ms", c->tls->handshake_timeout_ms);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
        edge_tls_conn *c = arg;

        if (c->failed || !conn_alive(c))
                return;
        if (!c->established) {
                if (c->tls->server && admit(c) < 0) {
                        char why[sizeof(c->error)];

                        memcpy(why, c->error, sizeof(why));
                        conn_fail(c, BEV_EVENT_READING, "TLS handshake refused: %s", why);
                } else if (!c->tls->server && c->connected) {
                        handshake_step(c);
                }
                return;
        }
        bufferevent_flush(c->top, EV_WRITE, BEV_NORMAL);
        if (!c->failed)
                pump_input(c);
}

/* The user drained plaintext: resume decrypting what the bound held back. */
static void top_input_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
        edge_tls_conn *c = arg;

        if (info->n_deleted && c->in_blocked && evbuffer_get_length(buf) < c->tls->max_buffer) {
                c->in_blocked = false;
                event_active(c->kick, EV_READ, 0);
        }
}

/*
 * Plaintext added while writing is disabled: libevent's filter looks at its output only
 * when bytes are added or the socket drained, not when writing gets enabled, and evhttp
 * adds a reply first and enables writing after.  The kick, once that callback returned,
 * flushes it.
 */
static void top_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
        edge_tls_conn *c = arg;

        if (info->n_added && c->established && !(bufferevent_get_enabled(c->top) & EV_WRITE))
                event_active(c->kick, EV_WRITE, 0);
}

static enum bufferevent_filter_result in_filter(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                                void *arg)
{
        edge_tls_conn *c = arg;
        size_t got = 0;

        if (c->failed)
                return BEV_ERROR;
        if (!c->established || c->peer_closed)
                return BEV_NEED_MORE;
        for (;;) {
                struct evbuffer_iovec v;
                size_t want = RECORD_MAX;
                int r;

                if ((lim >= 0 && got >= (size_t)lim) ||
                    evbuffer_get_length(dst) >= c->tls->max_buffer) {
                        /* the bound: what stays is in mbedTLS or in the socket's buffer */
                        if (mbedtls_ssl_get_bytes_avail(&c->ssl) > 0 ||
                            evbuffer_get_length(src) > 0)
                                c->in_blocked = true;
                        break;
                }
                if (lim >= 0 && (size_t)lim - got < want)
                        want = (size_t)lim - got;
                if (evbuffer_reserve_space(dst, (ev_ssize_t)want, &v, 1) < 1)
                        break;
                r = mbedtls_ssl_read(&c->ssl, v.iov_base, want);
                if (r > 0) {
                        v.iov_len = (size_t)r;
                        evbuffer_commit_space(dst, &v, 1);
                        got += (size_t)r;
                        continue;
                }
                if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE || r == 0)
                        break;
                if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
                        c->peer_closed = true;
                        report(c, BEV_EVENT_READING | BEV_EVENT_EOF);
                        break;
                }
                conn_fail_tls(c, "TLS read", r);
                break;
        }
        flush_direct(c); /* alerts */
        if (got)
                return BEV_OK;
        return c->failed ? BEV_ERROR : BEV_NEED_MORE;
}

static void send_close_notify(edge_tls_conn *c);

static enum bufferevent_filter_result out_filter(struct evbuffer *src, struct evbuffer *dst,
                                                 ev_ssize_t lim, enum bufferevent_flush_mode mode,
                                                 void *arg)
{
        edge_tls_conn *c = arg;
        bool progress = false;

        if (c->failed)
                return BEV_ERROR;
        if (!c->established || c->sent_close)
                return BEV_NEED_MORE;
        for (;;) {
                uint8_t buf[RECORD_MAX];
                size_t n;
                ev_ssize_t k;
                int r;

                flush_direct(c);
                if (evbuffer_get_length(dst) > 0)
                        break; /* the kernel is full: the socket's write callback resumes */
                if (c->plain_pending) {
                        evbuffer_drain(src, c->plain_pending);
                        c->plain_pending = 0;
                        progress = true;
                }
                n = evbuffer_get_length(src);
                if (n == 0)
                        break;
                if (n > sizeof(buf))
                        n = sizeof(buf);
                k = evbuffer_copyout(src, buf, n);
                if (k <= 0)
                        break;
                r = mbedtls_ssl_write(&c->ssl, buf, (size_t)k);
                mbedtls_platform_zeroize(buf, (size_t)k);
                if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ)
                        break;
                if (r < 0) {
                        conn_fail_tls(c, "TLS write", r);
                        return BEV_ERROR;
                }
                c->plain_pending = (size_t)r;
        }
        if (c->close_wanted && evbuffer_get_length(src) == c->plain_pending)
                send_close_notify(c); /* after the last record of what was written */
        return progress ? BEV_OK : BEV_NEED_MORE;
}

static void send_close_notify(edge_tls_conn *c)
{
        if (!c->established || c->failed || c->sent_close)
                return;
        c->sent_close = true;
        if (mbedtls_ssl_close_notify(&c->ssl) == 0)
                flush_direct(c);
}

static void conn_free(void *arg)
{
        edge_tls_conn *c = arg;

        /* A last close_notify when the socket still takes it (nobody shut it down). */
        send_close_notify(c);
        release(c);
        if (c->timer)
                event_free(c->timer);
        if (c->kick)
                event_free(c->kick);
        mbedtls_ssl_free(&c->ssl);
        mbedtls_platform_zeroize(c->master, sizeof(c->master));
        edge_tls_unref(c->tls);
        free(c);
}

static void conn_discard(edge_tls_conn *c)
{
        if (c->timer)
                event_free(c->timer);
        if (c->kick)
                event_free(c->kick);
        mbedtls_ssl_free(&c->ssl);
        edge_tls_unref(c->tls);
        free(c);
}

/*
 * True when the subjectAltName of crt lists the address ip (4 or 16 bytes).  mbedTLS 2.28
 * keeps only the DNS names of that extension (crt->subject_alt_names), so its DER is read
 * again here: Extensions ::= SEQUENCE OF SEQUENCE { OID, critical BOOLEAN OPTIONAL,
 * OCTET STRING { SEQUENCE OF GeneralName } }, iPAddress being [7] IMPLICIT OCTET STRING.
 */
static bool crt_names_ip(const mbedtls_x509_crt *crt, const uint8_t *ip, size_t ip_len)
{
        unsigned char *p = crt->v3_ext.p, *end, *ext_end, *names_end;
        mbedtls_asn1_buf oid;
        size_t len;
        int critical;

        if (!p || crt->v3_ext.len == 0)
                return false;
        end = p + crt->v3_ext.len;
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
                return false;
        end = p + len;
        while (p < end) {
                if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
                        return false;
                ext_end = p + len;
                if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID))
                        return false;
                oid.p = p;
                p += oid.len;
                (void)mbedtls_asn1_get_bool(&p, ext_end, &critical);
                if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING))
                        return false;
                if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) != 0) {
                        p = ext_end;
                        continue;
                }
                if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
                        return false;
                names_end = p + len;
                while (p < names_end) {
                        unsigned char tag = *p;

                        if (mbedtls_asn1_get_tag(&p, names_end, &len, tag))
                                return false;
                        if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && len == ip_len &&
                            memcmp(p, ip, len) == 0)
                                return true;
                        p += len;
                }
                return false;
        }
        return false;
}

static int verify_peer(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
        edge_tls_conn *c = arg;
        edge_tls *t = c->tls;
        unsigned char der[SPKI_MAX], hash[32];
        int n;

        if (depth == 0 && c->ip_len && t->has_ca && !crt_names_ip(crt, c->ip, c->ip_len)) {
                char a[INET6_ADDRSTRLEN] = "";

                inet_ntop(c->ip_len == 4 ? AF_INET : AF_INET6, c->ip, a, sizeof(a));
                snprintf(c->error, sizeof(c->error),
                         "certificate verification failed: the certificate does not name the "
                         "address %s", a);
                return MBEDTLS_ERR_X509_FATAL_ERROR;
        }
        if (!t->has_pin)
                return 0;
        if (depth > 0) {
                if (!t->has_ca)
                        *flags = 0; /* the chain above a pinned key is not looked at */
                return 0;
        }
        n = mbedtls_pk_write_pubkey_der(&crt->pk, der, sizeof(der));
        if (n <= 0 || mbedtls_sha256_ret(der + sizeof(der) - n, (size_t)n, hash, 0) != 0 ||
            mbedtls_ct_memcmp(hash, t->pin, sizeof(hash)) != 0) {
                snprintf(c->error, sizeof(c->error), "the server's key is not the pinned key");
                return MBEDTLS_ERR_X509_FATAL_ERROR;
        }
        if (!t->has_ca) {
                *flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_NOT_TRUSTED |
                                      MBEDTLS_X509_BADCERT_CN_MISMATCH);
                if (*flags) {
                        /* pinned, but expired or otherwise bad: say so and stop here
                         * (VERIFY_OPTIONAL would let it pass) */
                        char info[160];

                        if (mbedtls_x509_crt_verify_info(info, sizeof(info), "", *flags) < 0)
                                info[0] = '\0';
                        info[strcspn(info, "\n")] = '\0';
                        snprintf(c->error, sizeof(c->error),
                                 "certificate verification failed: %s", info);
                        return MBEDTLS_ERR_X509_FATAL_ERROR;
                }
        }
        return 0;
}

struct bufferevent *edge_tls_bufferevent_new(edge_tls *t, struct event_base *base,
                                             evutil_socket_t fd, const char *server_name)
{
        struct timeval tv = { t->handshake_timeout_ms / 1000,
                              (t->handshake_timeout_ms % 1000) * 1000 };
        edge_tls_conn *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->tls = edge_tls_ref(t);
        c->connected = fd >= 0;
        mbedtls_ssl_init(&c->ssl);
        if (mbedtls_ssl_setup(&c->ssl, &t->conf) != 0 ||
            (server_name && !t->server && mbedtls_ssl_set_hostname(&c->ssl, server_name) != 0))
                goto fail;
        if (!t->server)
                mbedtls_ssl_set_verify(&c->ssl, verify_peer, c);
        mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
        c->timer = evtimer_new(base, on_timeout, c);
        c->kick = event_new(base, -1, 0, on_kick, c);
        if (!c->timer || !c->kick)
                goto fail;
        c->u = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!c->u)
                goto fail;
        c->top = bufferevent_filter_new(c->u, in_filter, out_filter,
                                        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, conn_free, c);
        if (!c->top) {
                bufferevent_free(c->u);
                goto fail;
        }
        /* From here on c belongs to the filter (conn_free). */
        bufferevent_getcb(c->u, &c->f_read, &c->f_write, &c->f_event, &c->f_arg);
        bufferevent_setcb(c->u, u_read, u_write, u_event, c);
        /* the ciphertext bound: the socket is not read while this much waits */
        bufferevent_setwatermark(c->u, EV_READ, 0, t->max_buffer);
        evbuffer_add_cb(bufferevent_get_input(c->top), top_input_drained, c);
        evbuffer_add_cb(bufferevent_get_output(c->top), top_output_added, c);
        bufferevent_enable(c->top, EV_READ | EV_WRITE);
        evtimer_add(c->timer, &tv);
        /* a client starts its handshake, a server counts it (evhttp sets the fd after this) */
        if (t->server || c->connected)
                event_active(c->kick, EV_WRITE, 0);
        return c->top;
fail:
        conn_discard(c);
        return NULL;
}

edge_tls_conn *edge_tls_conn_get(struct bufferevent *bev)
{
        struct bufferevent *u = bev ? bufferevent_get_underlying(bev) : NULL;
        bufferevent_data_cb rd = NULL, wr = NULL;
        bufferevent_event_cb ev = NULL;
        void *arg = NULL;

        if (!u)
                return NULL;
        bufferevent_getcb(u, &rd, &wr, &ev, &arg);
        return ev == u_event ? arg : NULL;
}

int edge_tls_connect(struct bufferevent *bev, const struct sockaddr *sa, int salen)
{
        edge_tls_conn *c = edge_tls_conn_get(bev);

        if (!c || c->tls->server || c->connected)
                return -EINVAL;
        if (bufferevent_socket_connect(c->u, (struct sockaddr *)sa, salen) < 0)
                return -errno ? -errno : -EIO;
        return 0;
}

/* ---------------------------------------------------------------- fd-based clients */

static int fd_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
        edge_tls_conn *c = ctx;
        ssize_t n;

        do
                n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n >= 0)
                return (int)n;
        if (errno == EAGAIN)
                return MBEDTLS_ERR_SSL_WANT_WRITE;
        snprintf(c->error, sizeof(c->error), "send: %s", strerror(errno));
        return errno == EPIPE || errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET
                                                     : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int fd_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
        edge_tls_conn *c = ctx;
        ssize_t n;

        do
                n = recv(c->fd, buf, len, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n >= 0)
                return (int)n; /* 0: EOF, which mbedTLS reports as MBEDTLS_ERR_SSL_CONN_EOF */
        if (errno == EAGAIN)
                return MBEDTLS_ERR_SSL_WANT_READ;
        snprintf(c->error, sizeof(c->error), "recv: %s", strerror(errno));
        return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
}

/* The text of a failed handshake or record: certificate checks spelt out. */
static void fd_error(edge_tls_conn *c, const char *what, int r)
{
        char buf[120];

        if (r == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && !c->error[0]) {
                char info[160];
                uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);

                if (mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags) < 0)
                        snprintf(info, sizeof(info), "flags 0x%x", (unsigned)flags);
                info[strcspn(info, "\n")] = '\0';
                snprintf(c->error, sizeof(c->error), "%s: certificate verification failed: %s",
                         what, info);
                return;
        }
        if (c->error[0]) {
                char why[sizeof(c->error)];

                memcpy(why, c->error, sizeof(why));
                snprintf(c->error, sizeof(c->error), "%s: %.150s", what, why);
                return;
        }
        mbedtls_strerror(r, buf, sizeof(buf));
        snprintf(c->error, sizeof(c->error), "%s: %s", what, buf);
}

int edge_tls_fd_open(edge_tls *t, int fd, const char *server_name, uint64_t deadline_us,
                     edge_tls_conn **ret, hyb_error *reterr)
{
        edge_tls_conn *c;
        int r;

        if (!t || t->server || fd < 0 || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->tls = edge_tls_ref(t);
        c->fd = fd;
        c->connected = true;
        mbedtls_ssl_init(&c->ssl);
        /* An IP address is checked against the certificate's iPAddress names (verify_peer)
         * and sent as no SNI (RFC 6066); a name goes to mbedTLS as SNI and for its check. */
        if (server_name && inet_pton(AF_INET, server_name, c->ip) == 1)
                c->ip_len = 4;
        else if (server_name && inet_pton(AF_INET6, server_name, c->ip) == 1)
                c->ip_len = 16;
        if (mbedtls_ssl_setup(&c->ssl, &t->conf) != 0 ||
            (server_name && !c->ip_len && mbedtls_ssl_set_hostname(&c->ssl, server_name) != 0)) {
                edge_tls_fd_close(c);
                return -ENOMEM;
        }
        mbedtls_ssl_set_verify(&c->ssl, verify_peer, c);
        mbedtls_ssl_set_bio(&c->ssl, c, fd_bio_send, fd_bio_recv, NULL);
        for (;;) {
                struct pollfd pfd = { .fd = fd };

                t->stepping = c;
                r = mbedtls_ssl_handshake(&c->ssl);
                t->stepping = NULL;
                if (r == 0)
                        break;
                if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
                        fd_error(c, "TLS handshake", r);
                        r = err_set(reterr, HYB_E_AUTH, -1, "%s", c->error);
                        edge_tls_fd_close(c);
                        return r;
                }
                pfd.events = r == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT;
                r = poll(&pfd, 1, deadline_poll_ms(deadline_us, UINT64_MAX));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0) {
                        r = r < 0 ? -errno : -ETIMEDOUT;
                        edge_tls_fd_close(c);
                        return err_set(reterr, HYB_E_UNAVAILABLE, -1, "TLS handshake: %s",
                                       r == -ETIMEDOUT ? "timed out" : strerror(-r));
                }
        }
        c->established = true;
        *ret = c;
        return 0;
}

ssize_t edge_tls_fd_read(edge_tls_conn *c, void *buf, size_t len)
{
        int r;

        if (c->failed)
                return -EPROTO;
        if (c->peer_closed)
                return 0;
        r = mbedtls_ssl_read(&c->ssl, buf, len);
        if (r > 0)
                return r;
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
                return -EAGAIN;
        if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF) {
                c->peer_closed = true;
                return 0;
        }
        c->failed = true;
        fd_error(c, "TLS", r);
        return r == MBEDTLS_ERR_NET_CONN_RESET ? -ECONNRESET : -EPROTO;
}

ssize_t edge_tls_fd_write(edge_tls_conn *c, const void *buf, size_t len)
{
        int r;

        if (c->failed)
                return -EPROTO;
        /* After WANT_WRITE mbedTLS holds a record made of the first bytes of that call and
         * answers the next call with its length argument (at most a record) as if all were
         * sent: called with more bytes behind the same ones (a write buffer that grew), it
         * would count bytes it never encrypted.  The retry names exactly the first call's. */
        if (c->w_pending) {
                if (len < c->w_pending)
                        return -EINVAL;
                len = c->w_pending;
        }
        r = mbedtls_ssl_write(&c->ssl, buf, len);
        if (r >= 0) {
                c->w_pending = 0;
                return r;
        }
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
                c->w_pending = len;
                return -EAGAIN;
        }
        c->failed = true;
        fd_error(c, "TLS", r);
        return r == MBEDTLS_ERR_NET_CONN_RESET ? -EPIPE : -EPROTO;
}

size_t edge_tls_fd_pending(const edge_tls_conn *c)
{
        return c ? mbedtls_ssl_get_bytes_avail(&c->ssl) : 0;
}

void edge_tls_fd_close(edge_tls_conn *c)
{
        if (!c)
                return;
        if (c->established && !c->failed)
                (void)mbedtls_ssl_close_notify(&c->ssl); /* best effort: the socket may be full */
        mbedtls_platform_zeroize(c->master, sizeof(c->master));
        mbedtls_ssl_free(&c->ssl);
        edge_tls_unref(c->tls);
        free(c);
}

int edge_tls_shutdown(struct bufferevent *bev)
{
        edge_tls_conn *c = edge_tls_conn_get(bev);

        if (!c)
                return -EINVAL;
        if (!c->established || c->failed)
                return -ENOTCONN;
        /* what the user wrote goes first: out_filter sends it once all is encrypted */
        c->close_wanted = true;
        bufferevent_flush(c->top, EV_WRITE, BEV_FLUSH);
        if (evbuffer_get_length(bufferevent_get_output(c->top)) == c->plain_pending)
                send_close_notify(c);
        return 0;
}

static struct bufferevent *evhttp_bev(struct event_base *base, void *arg)
{
        return edge_tls_bufferevent_new(arg, base, -1, NULL);
}

void edge_tls_evhttp_attach(struct evhttp *http, edge_tls *t)
{
        evhttp_set_bevcb(http, evhttp_bev, t);
}

bool edge_tls_conn_is_established(const edge_tls_conn *c)
{
        return c && c->established && !c->failed;
}

const char *edge_tls_conn_error(const edge_tls_conn *c)
{
        return c ? c->error : "";
}

bool edge_tls_conn_peer_closed(const edge_tls_conn *c)
{
        return c && c->peer_closed;
}

const char *edge_tls_conn_version(const edge_tls_conn *c)
{
        return c && c->established ? mbedtls_ssl_get_version(&c->ssl) : NULL;
}

const char *edge_tls_conn_ciphersuite(const edge_tls_conn *c)
{
        return c && c->established ? mbedtls_ssl_get_ciphersuite(&c->ssl) : NULL;
}

const struct mbedtls_x509_crt *edge_tls_conn_peer_cert(const edge_tls_conn *c)
{
        return c && c->established ? mbedtls_ssl_get_peer_cert(&c->ssl) : NULL;
}

int edge_tls_conn_export(const edge_tls_conn *c, const char *label, const uint8_t *context,
                         size_t context_len, uint8_t *out, size_t len)
{
        uint8_t seed[64 + 2 + 256];
        size_t n = 64;

        if (!c || !label || !out || len == 0 || (context && context_len > 256))
                return -EINVAL;
        if (!c->established || !c->have_keys)
                return -ENOTCONN;
        memcpy(seed, c->randoms, 64);
        if (context) {
                seed[n++] = (uint8_t)(context_len >> 8);
                seed[n++] = (uint8_t)context_len;
                memcpy(seed + n, context, context_len);
                n += context_len;
        }
        if (mbedtls_ssl_tls_prf(c->prf, c->master, sizeof(c->master), label, seed, n, out, len) != 0)
                return -EIO;
        return 0;
}

int edge_tls_conn_channel_binding(const edge_tls_conn *c, uint8_t out[EDGE_TLS_BINDING_SIZE])
{
        return edge_tls_conn_export(c, EDGE_TLS_BINDING_LABEL, NULL, 0, out, EDGE_TLS_BINDING_SIZE);
}

int edge_tls_conn_binding_text(const edge_tls_conn *c, char out[EDGE_TLS_BINDING_TEXT_MAX])
{
        static const char prefix[] = "tls-exporter:";
        uint8_t cb[EDGE_TLS_BINDING_SIZE];
        int r = edge_tls_conn_channel_binding(c, cb);

        if (r < 0)
                return r;
        _Static_assert(sizeof(prefix) - 1 + 43 + 1 <= EDGE_TLS_BINDING_TEXT_MAX, "binding size");
        memcpy(out, prefix, sizeof(prefix) - 1);
        b64u_encode_to(cb, sizeof(cb), out + sizeof(prefix) - 1);
        return 0;
}

/* ----------------------------------------------------------------- WebSocket (ws.c) */

int edge_tls_ws_accept(const char *key, size_t key_len, char out[EDGE_WS_ACCEPT_SIZE])
{
        static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        uint8_t raw[18], digest[20];
        unsigned char buf[24 + sizeof guid];
        mbedtls_sha1_context sha;
        size_t n = 0;

        /* A base64 (standard alphabet, padded) nonce of 16 bytes: 24 characters. */
        if (key_len != 24 ||
            mbedtls_base64_decode(raw, sizeof raw, &n, (const unsigned char *)key, key_len) != 0 ||
            n != 16)
                return -EINVAL;
        memcpy(buf, key, 24);
        memcpy(buf + 24, guid, sizeof guid - 1);
        mbedtls_sha1_init(&sha);
        if (mbedtls_sha1_starts_ret(&sha) != 0 ||
            mbedtls_sha1_update_ret(&sha, buf, 24 + sizeof guid - 1) != 0 ||
            mbedtls_sha1_finish_ret(&sha, digest) != 0) {
                mbedtls_sha1_free(&sha);
                return -EINVAL;
        }
        mbedtls_sha1_free(&sha);
        if (mbedtls_base64_encode((unsigned char *)out, EDGE_WS_ACCEPT_SIZE, &n, digest,
                                  sizeof digest) != 0)
                return -EINVAL;
        return 0;
}

int edge_tls_ws_key(char out[EDGE_WS_KEY_SIZE])
{
        uint8_t raw[16];
        size_t n = 0;
        int r = crypto_random(raw, sizeof raw);

        if (r < 0)
                return r;
        if (mbedtls_base64_encode((unsigned char *)out, EDGE_WS_KEY_SIZE, &n, raw, sizeof raw) != 0 ||
            n != EDGE_WS_KEY_SIZE - 1)
                return -EIO;
        return 0;
}
