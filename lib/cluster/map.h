/* SPDX-License-Identifier: MIT */
/*
 * The fixed mapping between the cluster scope and MQTT (doc/cluster.md "Mapping between
 * fURIs and topics"), one copy for the daemon (lib/broker/cluster-serve.c) and for
 * programs without a daemon (embed.c):
 *
 *   //a/b/c   <->  topic <prefix>a/b/c   (the fURI's canonical text after `//`)
 *   //a/+/c, //a/#, //a/   topic filters a/+/c, a/#, a/#
 *   value     <->  its JSON mapping; a payload that is not JSON reads as a str of its text;
 *                  an empty retained payload is a delete
 *   <prefix>_hybrid/...    reserved for hybrid's own traffic, never data
 *
 * A mirror of retained values (a memory hyb_store) keeps //a/b at /a/b.
 */
#ifndef HYB_CLUSTER_MAP_H
#define HYB_CLUSTER_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "hybrid/furi.h"
#include "hybrid/obj.h"

/* A payload larger than this is not parsed nor mirrored: the store's default
 * max_value_bytes. */
#define CLUSTER_MAX_VALUE_BYTES (1024u * 1024u)
/* Room in an MQTT packet beside its payload: the topic (at most 64 KiB) and properties. */
#define CLUSTER_PACKET_ROOM (192u * 1024u)

/* The text after `//` of a cluster fURI (its canonical form, no query), or NULL. */
const char *cluster_map_text(const hyb_furi *f);
/* Is the first level of rest (a topic after the prefix) the reserved _hybrid? */
bool cluster_map_reserved(const char *rest);
/*
 * The topic (or topic filter) of a cluster fURI: prefix (NULL: "") + its text after `//`;
 * a branch `//a/` is the filter `a/#`.  *ret is malloc'd.  -EINVAL for a query or a fURI
 * MQTT cannot carry (too long), HYB_E_FORBIDDEN for the reserved _hybrid, with a message.
 */
int cluster_map_topic(const char *prefix, const hyb_furi *f, char **ret, hyb_error *e);
/*
 * The cluster fURI of a topic (a new reference), or NULL when the topic is not visible in
 * the cluster scope: not under prefix, a `$` topic, _hybrid/, or a topic that is not the
 * canonical text of a cluster fURI (empty or upper-case first level, a dot in it, an empty
 * level...).
 */
hyb_furi *cluster_map_furi_of_topic(const char *prefix, const char *topic);
/* The mirror's fURI for a cluster fURI: //a/b -> /a/b (patterns and branches alike). */
int cluster_map_mirror_of(const hyb_furi *f, hyb_furi **ret);
/* The cluster fURI of a mirror key: /a/b -> //a/b. */
int cluster_map_cluster_of(const hyb_furi *m, hyb_furi **ret);
/* Rebuilds a rec of mirror key => value with the cluster fURIs as keys. */
int cluster_map_remap_keys(const hyb_obj *rec, hyb_obj **ret);
/*
 * The value of a payload: noobj for an empty retained one (a delete), else its JSON
 * mapping, else a str of its text.  -EINVAL for a payload that is neither JSON nor UTF-8
 * text, HYB_E_LIMIT for one over CLUSTER_MAX_VALUE_BYTES.
 */
int cluster_map_value_of(const void *payload, size_t len, bool retain, hyb_obj **ret);
/* The payload of a value: its JSON mapping (*ret: hyb_free).  Errors of hyb_obj_to_json. */
int cluster_map_payload_of(const hyb_obj *v, char **ret, hyb_error *e);

#endif
