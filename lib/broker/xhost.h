/* SPDX-License-Identifier: MIT */
/*
 * Bus calls between hosts (doc/cluster.md "Bus calls between hosts"): the broker's side of
 * the cross-host protocol over an MQTT 5 link.  Every message is one bus frame, byte for
 * byte (doc/protocol.md "Frame"), with MQTT 5 properties around it:
 *
 *   <P>call/<host>       CALL and CANCEL frames for <host>; a CALL carries the response topic
 *                        <P>reply/<caller host>, the correlation data (the caller host's call
 *                        id, 8 bytes little-endian) and, from a token session, the user
 *                        property "token" (the caller's token text)
 *   <P>reply/<host>      RESULT frames for calls <host> made; correlation data as requested
 *   <P>presence/<host>   retained "online" while <host> is connected, "offline" (its will)
 *   <P>event/<host>/<app>/<runner>/<bubble>   EVENT frames of bubbles registered --cluster,
 *                        user properties "forHost" and "forApp" (the bubble's access lists)
 *
 * where <P> is "<cluster prefix>_hybrid/" and every name is lower case.
 *
 * The MQTT link itself is not here: xhost talks to it through xhost_ops and is given what
 * arrives under <P> with xhost_receive.  Each remote host is one pseudo connection of the
 * broker (bconn.xpeer): the callee of calls made to that host, the caller of calls that
 * host makes here, so the pending table, deadlines, cancels and 502s of route.c serve
 * both directions.
 */
#ifndef HYB_BROKER_XHOST_H
#define HYB_BROKER_XHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hybrid/broker.h"

#define XHOST_TOPIC_MAX 1024u
#define XHOST_MAX_HOSTS 256u    /* remote hosts known at once (pseudo connections) */
#define XHOST_CORR_LEN 8u

/* One MQTT 5 message of the protocol; the pointers are borrowed. */
typedef struct xmsg {
        const char *topic;
        const uint8_t *payload;         /* one whole bus frame (presence: "online"/"offline") */
        size_t len;
        const char *response_topic;     /* MQTT 5 response topic, or NULL */
        const uint8_t *corr;            /* MQTT 5 correlation data, or NULL */
        size_t corr_len;
        const char *token;              /* user property "token", or NULL */
        const char *for_host, *for_app; /* user properties of an EVENT, or NULL */
        const char *ts, *mac;           /* user properties of a signed CALL, CANCEL or RESULT, or NULL
                                         * (xhost-sign.c) */
        uint32_t expiry_s;              /* MQTT 5 message expiry interval (0: none) */
        bool retain;
        bool sign;                      /* a CALL, CANCEL or RESULT to sign when the cluster has a
                                         * secret (xhost-sign.c) */
        bool event;                     /* an EVENT: refused with -ENOBUFS while the link holds
                                         * XHOST_EVENT_BACKLOG bytes the broker has not taken */
} xmsg;

/* Bytes of publications the MQTT link may hold for a broker that does not take them (it
 * stalls without closing the connection) before events fired --cluster are dropped; calls
 * are bounded by limits.max_cluster_calls and writes by cluster.queue_max instead. */
#define XHOST_EVENT_BACKLOG (4u << 20)

/* What xhost needs of the MQTT link; each returns 0 or a negative errno.  publish sends m at
 * the link's QoS (or queues it while the link is down); subscribe and unsubscribe take one
 * topic filter. */
typedef struct xhost_ops {
        int (*publish)(void *ud, const xmsg *m);
        int (*subscribe)(void *ud, const char *filter);
        int (*unsubscribe)(void *ud, const char *filter);
} xhost_ops;

/*
 * Makes b a host of the cluster: calls to @<other host>/... go out through ops, and what
 * arrives for this host (config `host`, which must not be localhost) is served.  prefix: the
 * cluster prefix ("" or e.g. "site1/"); ops and ud must outlive b (or xhost_detach).
 * 0, HYB_E_CONFIG (host localhost, a prefix that is not a topic level prefix) or -ENOMEM.
 */
int xhost_attach(hyb_broker *b, const char *prefix, const xhost_ops *ops, void *ud);
/* The link is (again) connected: publishes the host's presence.  Call after every
 * (re)connect.  (xhost_attach subscribed the host's topics; the link keeps them.) */
void xhost_online(hyb_broker *b);
/* A message arrived under <P> (any other topic is ignored): 0, or HYB_E_PROTOCOL for one that
 * is not of the protocol (dropped; the daemon's log says why). */
int xhost_receive(hyb_broker *b, const xmsg *m);
/* The will the link must set at connect: <P>presence/<host> "offline", retained.  Writes the
 * topic to topic[XHOST_TOPIC_MAX]; 0 or -ENAMETOOLONG. */
int xhost_will_topic(const hyb_broker *b, char *topic);
/* Starts bus calls between hosts on the daemon's MQTT link (b->link, xhost-link.c): attach,
 * the will, the handlers.  0 without a link or with host localhost (no calls between hosts:
 * logged), else as xhost_attach. */
int xhost_link_start(hyb_broker *b);
/* Are calls between hosts signed (cluster.call_secret_file)? */
bool xhost_signed(const hyb_broker *b);
/* That secret (borrowed, *len bytes), or NULL. */
const uint8_t *xhost_secret(const hyb_broker *b, size_t *len);
/* Says goodbye (presence "offline") before the link goes, and detaches. */
void xhost_link_stop(hyb_broker *b);
/* Ends the cross-host calls in flight (502 to local callers) and frees what xhost holds. */
void xhost_detach(hyb_broker *b);

/*
 * Calls signed with the cluster's shared secret (xhost-sign.c, doc/cluster.md "Signed
 * calls").  xsign_load reads the secret of cluster.call_secret_file: 0, or -errno with a
 * message in err.  xsign_make stamps m (topic, payload, response topic, correlation data
 * and token set) with ts and mac, which point into ts[] and mac[]: 0 or -errno.
 * xsign_check verifies a received m of host (call: a CALL, with its time and the replay
 * cache checked; else a CANCEL or RESULT: its signature only): 0, or -EACCES with *why.
 */
typedef struct xsign xsign;
int xsign_load(const char *path, xsign **ret, char *err, size_t err_size);
xsign *xsign_free(xsign *s);
int xsign_make(const xsign *s, xmsg *m, char ts[24], char mac[65]);
int xsign_check(xsign *s, const xmsg *m, const char *host, size_t host_len, uint64_t id, bool call,
                const char **why);
/* Calls in the replay cache (at most 16384). */
size_t xsign_replay_count(const xsign *s);
/* The secret (borrowed, *len bytes): also the key of the link's "seq" MACs (xhost-link.c). */
const uint8_t *xsign_secret(const xsign *s, size_t *len);

/* Builds "<P><kind>/<host>" in lower case into out[XHOST_TOPIC_MAX]: 0 or -ENAMETOOLONG. */
int xhost_topic(char *out, const char *prefix, const char *kind, const char *host, size_t host_len);

#endif
