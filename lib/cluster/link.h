/* SPDX-License-Identifier: MIT */
/*
 * The daemon's one MQTT connection to the cluster's broker (doc/cluster.md), on
 * libmosquitto, driven from the daemon's libevent loop: no thread of its own.
 *
 * The link connects with MQTT 5, clean start off and a session expiry, so the broker keeps
 * the session (subscriptions, QoS 1 messages) while the daemon is away; it reconnects by
 * itself with a backoff that doubles from 100 ms and is capped at 2 s.  Its users:
 *
 *   - cluster_link_on_message: messages dispatched by topic prefix (the longest registered
 *     prefix that starts the topic wins; "" takes what no other prefix takes).  The cluster
 *     scope registers "<prefix>"; bus calls between hosts register "<prefix>_hybrid/".
 *   - cluster_link_subscribe: a topic filter, kept by the link and subscribed again on a
 *     connection whose session the broker did not keep (and, in a kept one, when its
 *     SUBACK had not come); done runs once the broker's SUBACK came (0, or -EACCES when
 *     refused).
 *   - cluster_link_publish: done runs once the broker acknowledged it (QoS 1: PUBACK; QoS 0:
 *     written out), 0 or -EIO when the broker refused it; a QoS 1 message in flight when the
 *     connection drops is sent again on the next one (the session's own retry).
 *   - cluster_link_on_state: told of each connection made (session_present as the broker
 *     said) and lost.
 *
 * Why no libmosquitto thread: every callback then runs on the daemon's loop thread, so the
 * broker's state (connections, store, subscriptions) needs no lock, and the link costs no
 * wake-up pipe.  The one blocking step is the TCP connect of a (re)connection: the link
 * first probes the address with a non-blocking connect from the loop and calls
 * libmosquitto's connect (which alone can send the CONNECT properties MQTT 5 needs for a
 * session expiry) only once the probe got through, so an unreachable broker never stalls
 * the loop.  Names are resolved when the link is made.
 */
#ifndef HYB_CLUSTER_LINK_H
#define HYB_CLUSTER_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mosquitto.h>

#include "cluster/options.h"
#include "hybrid/common.h"

struct event_base;

typedef struct cluster_link cluster_link;

/* A message received; topic and payload are borrowed for the call.  props: its MQTT 5
 * properties (response topic, correlation data...), NULL when none. */
typedef void (*cluster_msg_fn)(cluster_link *l, const char *topic, const void *payload,
                               size_t len, bool retain, int qos, const mosquitto_property *props,
                               void *userdata);
/* An operation finished: r is 0, or -errno. */
typedef void (*cluster_done_fn)(cluster_link *l, int r, void *userdata);
/* The link connected (session_present: the broker kept our session) or lost its connection. */
typedef void (*cluster_state_fn)(cluster_link *l, bool connected, bool session_present,
                                 void *userdata);
/* Called with begin true before the link handles what it read in one loop turn (messages,
 * acknowledgements and the done calls they make due) and with false after it. */
typedef void (*cluster_turn_fn)(cluster_link *l, bool begin, void *userdata);
/* A line for the daemon's log (level: HYB_LOG_*). */
typedef void (*cluster_log_fn)(int level, const char *msg, void *userdata);
/* Would a line of level reach a log now? */
typedef bool (*cluster_log_wanted_fn)(int level, void *userdata);

/*
 * Makes a link for options o (copied; o->broker must be set) on the loop base, and starts
 * connecting at once (the first attempt runs from the loop).  default_client_id is used
 * when o->client_id is NULL.  Errors: -EINVAL with a message (bad URL, a password file that
 * cannot be read, TLS files libmosquitto refuses), -ENOMEM.
 */
int cluster_link_new(struct event_base *base, const cluster_options *o,
                     const char *default_client_id, cluster_log_fn log, void *log_userdata,
                     cluster_link **ret, hyb_error *reterr);
/* Disconnects and frees the link; pending operations' done callbacks run with -ECANCELED.
 * NULL is fine.  Returns NULL. */
cluster_link *cluster_link_free(cluster_link *l);

/*
 * libmosquitto's own lines go to the log at HYB_LOG_DEBUG; it formats one for every packet
 * while it has a log callback, which costs about a quarter of what a message costs the
 * daemon.  With fn, the link asks fn (with the log's userdata) at each connection and then
 * once a second whether a debug line is wanted, and gives libmosquitto a log callback only
 * then.  Without (the default), libmosquitto's lines are always taken.
 */
void cluster_link_set_log_wanted(cluster_link *l, cluster_log_wanted_fn fn);

/* Registers fn for topics starting with prefix (copied); one handler per prefix, a second
 * replaces the first.  0, -ENOMEM. */
int cluster_link_on_message(cluster_link *l, const char *prefix, cluster_msg_fn fn,
                            void *userdata);
/* Sets fn (one; NULL: none) to bracket each loop turn's reading: a daemon batches what it
 * sends its peers in between (the deliveries of the messages read together, the answers to
 * the writes their PUBACKs acknowledge) and sends it at the end. */
void cluster_link_on_turn(cluster_link *l, cluster_turn_fn fn, void *userdata);
/* Registers fn for connection changes (several may be registered).  0, -ENOMEM. */
int cluster_link_on_state(cluster_link *l, cluster_state_fn fn, void *userdata);

/*
 * Subscribes filter (an MQTT topic filter) at qos, retain-as-published (so a message that
 * the broker keeps arrives with retain set, also live).  The link counts subscriptions per
 * filter: the broker is asked once, and each call's done runs when the SUBACK came (at once
 * from the loop when it already had).  done may be NULL.  0, -EINVAL, -ENOMEM.
 */
int cluster_link_subscribe(cluster_link *l, const char *filter, int qos, cluster_done_fn done,
                           void *userdata);
/* Drops one subscription of filter; the broker is asked to unsubscribe with the last one.
 * 0, or -ENOENT when filter is not subscribed. */
int cluster_link_unsubscribe(cluster_link *l, const char *filter);
/*
 * Publishes payload[0..len) on topic.  props (may be NULL) are MQTT 5 properties made with
 * mosquitto_property_add_*, copied by libmosquitto; the link adds its "seq" property
 * (below) at the end of that list, which stays the caller's to free.  done (may be NULL) runs when the broker acknowledged it.  Returns 0, or
 * -ENOTCONN when the link is not connected (nothing sent: the caller queues), -EINVAL
 * (a bad topic, too long a payload), -ENOMEM.
 */
int cluster_link_publish(cluster_link *l, const char *topic, const void *payload, size_t len,
                         int qos, bool retain, mosquitto_property *props,
                         cluster_done_fn done, void *userdata);
/*
 * Says that more publications follow in the caller's loop turn (a batch of frames read at
 * once): the next cluster_link_publish only queues its packet, and the packets queued leave
 * together, from the loop, after the caller's turn (or with a later publication without
 * this call, whichever comes first).  Several packets queued leave corked (TCP_CORK), in
 * as few TCP segments as they fit, instead of a segment each.  Applies to the next call
 * only, even when it fails.
 */
void cluster_link_more(cluster_link *l);
/* Payload bytes published and not yet done: waiting for the broker's PUBACK (QoS 1) or to
 * be written (QoS 0).  A broker that stalls without closing the connection lets this grow;
 * callers with nothing else bounding their publications check it (xhost's events). */
size_t cluster_link_out_bytes(const cluster_link *l);
/*
 * Sets the will the broker publishes when the link's connection breaks without a clean
 * DISCONNECT (bus calls between hosts use it as the host's presence): payload[0..len) on
 * topic at qos, retained or not.  Takes effect from the next connection attempt; call it
 * right after cluster_link_new for the first.  0, -EINVAL, -ENOMEM.
 */
int cluster_link_set_will(cluster_link *l, const char *topic, const void *payload, size_t len,
                          int qos, bool retain);
/*
 * The key of the "seq" user property (dedupe.h): with one, each publication also carries
 * the user property "seq-mac", a MAC (HMAC-SHA256 with key over the "seq" value, the topic
 * and the payload, see link.c seq_mac), and a received "seq" without a "seq-mac" that
 * verifies counts for nothing (the message is taken as one without the property).  So a client of the
 * MQTT broker without the key cannot make the link drop another daemon's messages by
 * publishing that daemon's next numbers first.  key is copied; NULL/0 removes it.
 * 0, -ENOMEM, -EINVAL.
 */
int cluster_link_set_seq_key(cluster_link *l, const void *key, size_t len);
/*
 * The largest MQTT packet the link takes (MQTT 5 CONNECT's Maximum Packet Size: the
 * broker drops a message for this client rather than send a larger one, so a peer of the
 * broker publishing a huge payload costs this host nothing); 0 for the broker's own
 * limit.  Takes effect from the next connection attempt.  0, -EINVAL.
 */
int cluster_link_set_max_packet(cluster_link *l, uint32_t bytes);
/* The broker's answer to filter: 1 granted, 0 not yet, -EACCES refused, -ENOENT: not
 * subscribed. */
int cluster_link_subscription_state(const cluster_link *l, const char *filter);
/* Is a SUBSCRIBE of the link waiting for its SUBACK? */
bool cluster_link_subscribing(const cluster_link *l);
/*
 * The MQTT 5 user property that numbers each publication of the link ("<n> <client id>",
 * lib/cluster/dedupe.h), so that a receiving link takes a QoS 1 message the broker or the
 * publisher sent again once: such a copy that is not retained is not handed to the
 * handlers; a retained one is (a new subscription brings the retained message again, with
 * its properties), and cluster_link_msg_seen tells the handler.
 */
#define CLUSTER_SEQ_PROPERTY "seq"
#define CLUSTER_SEQ_MAC_PROPERTY "seq-mac" /* its MAC (cluster_link_set_seq_key) */
/* Called from a message handler: is this retained message one that came before? */
bool cluster_link_msg_seen(const cluster_link *l);
/* Copies of messages that came before, dropped so far. */
uint64_t cluster_link_get_dups(const cluster_link *l);
/* Is the link connected (CONNACK received)? */
bool cluster_link_is_connected(const cluster_link *l);
/* The options the link runs with (borrowed). */
const cluster_options *cluster_link_get_options(const cluster_link *l);
/* The client id the link connects with (borrowed). */
const char *cluster_link_get_client_id(const cluster_link *l);
/* Connections made so far (1 after the first CONNACK). */
uint64_t cluster_link_get_connects(const cluster_link *l);

#endif
