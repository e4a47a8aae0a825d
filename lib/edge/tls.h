/* SPDX-License-Identifier: MIT */
/*
 * TLS for the network edge (doc/edge-tls.md): mbedTLS 2.28 over libevent 2.1, which has
 * no mbedTLS bufferevent of its own.  A TLS connection is a libevent *filter* bufferevent
 * over a socket bufferevent; mbedTLS reads and writes the socket bufferevent's buffers
 * through its BIO callbacks (mbedtls_ssl_set_bio):
 *
 *   user / evhttp  <-- plaintext -->  [filter bufferevent]  <-- ciphertext -->  [socket bev]  fd
 *                                       in/out filters call mbedtls_ssl_read/write
 *
 * The filter bufferevent is what the user holds: bufferevent_read/write, callbacks and
 * bufferevent_free as with any bufferevent; it plugs into evhttp with
 * edge_tls_evhttp_attach (evhttp_set_bevcb).  Its event callback sees
 *   BEV_EVENT_CONNECTED                      the handshake completed (both roles)
 *   BEV_EVENT_EOF | BEV_EVENT_READING        the peer sent close_notify (a clean end)
 *   BEV_EVENT_ERROR | BEV_EVENT_READING      a failure: bad certificate, alert, garbage,
 *        (| BEV_EVENT_TIMEOUT)               handshake timeout, TCP close without
 *        (| BEV_EVENT_EOF)                   close_notify; edge_tls_conn_error() says what
 * The write callback runs once the written bytes reached the kernel (not merely the socket
 * bufferevent), so a caller that frees the bufferevent from it (evhttp does) loses nothing.
 *
 * mbedTLS calls stay in lib/edge/tls*.c (and lib/token/crypto.c); everything else sees
 * this header only.
 */
#ifndef HYB_EDGE_TLS_H
#define HYB_EDGE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/bufferevent.h>
#include <event2/util.h>

#include "hybrid/common.h"

struct evhttp;
struct mbedtls_x509_crt;

/* The handshake must complete within this time (from the bufferevent's creation). */
#define EDGE_TLS_HANDSHAKE_TIMEOUT_MS 10000
/* Plaintext read but not yet consumed, and ciphertext not yet decrypted, per direction. */
#define EDGE_TLS_MAX_BUFFER (256 * 1024)
/* RFC 9266 tls-exporter: the label and length of the channel binding. */
#define EDGE_TLS_BINDING_LABEL "EXPORTER-Channel-Binding"
#define EDGE_TLS_BINDING_SIZE 32
#define EDGE_TLS_PIN_SIZE 32
/* Server handshakes in progress from one source address, and in all: one more is refused. */
#define EDGE_TLS_HANDSHAKES_PER_SOURCE 16
#define EDGE_TLS_HANDSHAKES_MAX 256

/* A TLS configuration, server or client, shared by its connections (refcounted). */
typedef struct edge_tls edge_tls;
/* One TLS connection, owned by its bufferevent (edge_tls_conn_get). */
typedef struct edge_tls_conn edge_tls_conn;

/*
 * A server configuration from a PEM certificate file (the certificate first, then any
 * intermediates) and the PEM private key file of that certificate.  TLS 1.2 only (mbedTLS
 * 2.28 has no production TLS 1.3), ECDHE with AES-GCM or ChaCha20-Poly1305, no
 * renegotiation, no session tickets.
 * Errors (message in *reterr): -ENOENT/-EACCES/... a file that cannot be read,
 * HYB_E_PARSE a file that holds no certificate or key, HYB_E_CONFIG a key that is not
 * the certificate's, -ENOMEM.
 */
int edge_tls_server_new(const char *cert_file, const char *key_file, edge_tls **ret,
                        hyb_error *reterr);
/*
 * A client configuration.  The server's certificate is verified: against the CA
 * certificates of ca_file (PEM) when given, and its public key against pin (sha256 of its
 * DER SubjectPublicKeyInfo, EDGE_TLS_PIN_SIZE bytes) when given; with a pin and no CA file
 * the pin is the trust (a self-signed certificate is fine) and the validity dates are still
 * checked.  At least one of the two is required: there is no "verify nothing" mode.
 * Errors: -EINVAL (neither), -ENOENT/... ca_file unreadable, HYB_E_PARSE no certificate
 * in it, -ENOMEM.
 */
int edge_tls_client_new(const char *ca_file, const uint8_t *pin, edge_tls **ret,
                        hyb_error *reterr);
/*
 * A pin as users write it: "sha256//BASE64" (curl's --pinnedpubkey) or plain BASE64 of
 * the 32-byte hash, surrounding white space ignored.  0 or -EINVAL.
 */
int edge_tls_parse_pin(const char *text, uint8_t pin[EDGE_TLS_PIN_SIZE]);
/*
 * A callback told of every failed connection of t, with the peer's address and the
 * message of edge_tls_conn_error ("127.0.0.1:40522: TLS handshake: ..."); NULL: none.
 * For a daemon's log: a server has no other way to hear of refused handshakes.
 */
typedef void (*edge_tls_log_fn)(const char *message, void *userdata);
void edge_tls_set_log(edge_tls *t, edge_tls_log_fn fn, void *userdata);
/*
 * The caps on server handshakes in progress (>= 1 each): a connection past them is refused
 * at once (BEV_EVENT_ERROR, "TLS handshake refused: ..."), so a host that opens connections
 * and stalls them holds at most per_source of the total.  Unix-socket peers count as one
 * source.
 */
void edge_tls_set_handshake_caps(edge_tls *t, unsigned per_source, unsigned total);
/* Handshake timeout (ms, >= 1) and buffer bound (bytes, >= 16 KiB) of new connections. */
void edge_tls_set_limits(edge_tls *t, unsigned handshake_timeout_ms, size_t max_buffer);
edge_tls *edge_tls_ref(edge_tls *t);
edge_tls *edge_tls_unref(edge_tls *t);

/*
 * A TLS bufferevent over fd (-1: set later with bufferevent_setfd, as evhttp does, or
 * connect with edge_tls_connect), with BEV_OPT_CLOSE_ON_FREE (freeing it closes fd) and
 * deferred callbacks, enabled for reading.  A server waits for the ClientHello; a client
 * on a connected fd sends its ClientHello at once.  server_name (clients only; NULL: none)
 * is sent as SNI and checked against the certificate's names when a CA file verifies it.
 * The handshake timer starts now.  NULL on allocation failure.
 */
struct bufferevent *edge_tls_bufferevent_new(edge_tls *t, struct event_base *base,
                                             evutil_socket_t fd, const char *server_name);
/* Connects a client bufferevent made with fd -1 (bufferevent_socket_connect); the
 * handshake follows.  0 or -errno. */
int edge_tls_connect(struct bufferevent *bev, const struct sockaddr *sa, int salen);
/*
 * Client connections over a plain fd, for a program without libevent (the bus client of
 * lib/bus): the caller owns fd (a connected, non-blocking socket) and polls it itself.
 * edge_tls_fd_open runs the handshake on fd, polling until deadline_us (hyb_now_usec's
 * clock); server_name as for edge_tls_bufferevent_new (SNI, and the name checked against
 * the certificate when a CA file verifies it), except that an IPv4 or IPv6 address is
 * sent as no SNI and checked against the certificate's iPAddress names.  The edge_tls_conn_* getters above work on
 * the result (edge_tls_conn_binding_text: the client's side of the same binding).
 * Errors (message in *reterr): HYB_E_AUTH the handshake failed (a certificate that does
 * not verify, a wrong pin or name, an alert), HYB_E_UNAVAILABLE timed out or the socket
 * failed, -EINVAL, -ENOMEM.
 */
int edge_tls_fd_open(edge_tls *t, int fd, const char *server_name, uint64_t deadline_us,
                     edge_tls_conn **ret, hyb_error *reterr);
/* Plaintext bytes read (> 0), 0 at the peer's end (close_notify or a TCP EOF), -EAGAIN
 * (poll fd for input), -ECONNRESET or -EPROTO (edge_tls_conn_error says what). */
ssize_t edge_tls_fd_read(edge_tls_conn *c, void *buf, size_t len);
/* Plaintext bytes taken (> 0; at most one record), -EAGAIN (poll fd for output and call
 * again with the same bytes first: more may follow them, the retry takes only those of
 * the call that said -EAGAIN), -EPIPE, -EPROTO, or -EINVAL for a retry with fewer bytes. */
ssize_t edge_tls_fd_write(edge_tls_conn *c, const void *buf, size_t len);
/* Plaintext already decrypted and not read yet: a poll of fd would not announce it. */
size_t edge_tls_fd_pending(const edge_tls_conn *c);
/* Sends close_notify if the socket takes it now, frees c; fd stays open.  NULL: no-op. */
void edge_tls_fd_close(edge_tls_conn *c);

/*
 * A clean close: sends close_notify after what is already written; nothing written later
 * is sent.  Reading goes on: free the bufferevent once the peer's close_notify
 * (BEV_EVENT_EOF) or an error arrived.
 * Freeing without it sends close_notify too when the socket still takes it.
 * 0, or -EINVAL (not a TLS bufferevent), -ENOTCONN (no handshake yet).
 */
int edge_tls_shutdown(struct bufferevent *bev);
/* Makes every connection http accepts from now on a TLS connection of t
 * (evhttp_set_bevcb); the caller keeps t alive as long as http (connections hold their own
 * reference). */
void edge_tls_evhttp_attach(struct evhttp *http, edge_tls *t);

/* The TLS connection of a bufferevent from edge_tls_bufferevent_new, else NULL. */
edge_tls_conn *edge_tls_conn_get(struct bufferevent *bev);
bool edge_tls_conn_is_established(const edge_tls_conn *c);
/* The last failure as text ("" if none), valid while the bufferevent lives. */
const char *edge_tls_conn_error(const edge_tls_conn *c);
/* True once the peer's close_notify arrived. */
bool edge_tls_conn_peer_closed(const edge_tls_conn *c);
/* "TLSv1.2" and the IANA-style suite name of mbedTLS ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-
 * SHA256"), or NULL before the handshake. */
const char *edge_tls_conn_version(const edge_tls_conn *c);
const char *edge_tls_conn_ciphersuite(const edge_tls_conn *c);
/* The peer's certificate (borrowed; NULL: none, e.g. a client of a server). */
const struct mbedtls_x509_crt *edge_tls_conn_peer_cert(const edge_tls_conn *c);
/*
 * RFC 5705 keying material exporter of TLS 1.2: PRF(master_secret, label,
 * client_random + server_random [+ uint16 length + context]) of len bytes (context NULL:
 * none, which differs from an empty one).  0, -ENOTCONN before the handshake, -EINVAL.
 */
int edge_tls_conn_export(const edge_tls_conn *c, const char *label, const uint8_t *context,
                         size_t context_len, uint8_t *out, size_t len);
/* The channel binding a token handshake binds to: RFC 9266 tls-exporter (label
 * EDGE_TLS_BINDING_LABEL, no context, 32 bytes).  0 or -ENOTCONN. */
int edge_tls_conn_channel_binding(const edge_tls_conn *c, uint8_t out[EDGE_TLS_BINDING_SIZE]);
/* The same as the ASCII binding B of the token handshake (doc/token.md "Handshake"):
 * "tls-exporter:" + base64url of the 32 bytes, NUL-terminated (56 characters, fits
 * TOKEN_BINDING_MAX).  0 or -ENOTCONN. */
#define EDGE_TLS_BINDING_TEXT_MAX 64
int edge_tls_conn_binding_text(const edge_tls_conn *c, char out[EDGE_TLS_BINDING_TEXT_MAX]);

/*
 * RFC 6455 section 4.2.2: the Sec-WebSocket-Accept of a Sec-WebSocket-Key (key_len bytes,
 * not NUL-terminated): base64(SHA-1(key + the protocol's GUID)), NUL-terminated in out.
 * The key must be the base64 of 16 bytes (24 characters).  0 or -EINVAL.  Here because
 * mbedTLS calls stay in this file (lib/edge/ws.c uses it).
 */
#ifndef EDGE_WS_ACCEPT_SIZE
#define EDGE_WS_ACCEPT_SIZE 29
#endif
int edge_tls_ws_accept(const char *key, size_t key_len, char out[EDGE_WS_ACCEPT_SIZE]);
/* A fresh Sec-WebSocket-Key for a client's upgrade: base64 of 16 CSPRNG bytes, 24
 * characters, NUL-terminated.  0 or -errno. */
#define EDGE_WS_KEY_SIZE 25
int edge_tls_ws_key(char out[EDGE_WS_KEY_SIZE]);

#endif
