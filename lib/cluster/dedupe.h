/* SPDX-License-Identifier: MIT */
/*
 * Messages MQTT delivers twice (doc/cluster.md "Duplicates").  QoS 1 sends a message again
 * when its PUBACK was lost with the connection: a publisher resends it on its next
 * connection (the broker then forwards both copies), and the broker resends what it sent
 * a subscriber whose session it kept.  Neither copy says which it is to the receiver (DUP
 * is per hop), so each daemon numbers its publications: the MQTT 5 user property "seq" is
 * "<n> <origin>", origin the publishing daemon's MQTT client id and n a counter that starts
 * at the wall clock's nanoseconds when the daemon starts (so a restarted daemon goes on
 * above its earlier numbers).  The receiver keeps, per origin, the highest n seen and which
 * of the CLUSTER_DEDUPE_WINDOW numbers below it came:
 *
 *   origins (most recently used first, at most CLUSTER_DEDUPE_ORIGINS)
 *    `- origin "hybrid-a": hi = 1733519000000000123, bits: [hi, hi-1, ... hi-1023]
 *
 * A number in the window that came before is a duplicate.  One above hi slides the window.
 * One below the window, or of an origin forgotten (the least recently used goes when a new
 * one needs room), is not known: taken as new.  A live (not retained) message more than
 * CLUSTER_DEDUPE_RESTART below the highest is a new run of its origin whose clock was set
 * back: the window starts again from it (a retained one may be any old message the broker
 * kept, and changes nothing).  So a duplicate can only get through when
 * more than the window's count of newer messages of its origin came between its copies,
 * or past CLUSTER_DEDUPE_ORIGINS other origins: far more than a broker keeps in flight.
 */
#ifndef HYB_CLUSTER_DEDUPE_H
#define HYB_CLUSTER_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_DEDUPE_WINDOW 1024u   /* numbers remembered below the highest, per origin */
#define CLUSTER_DEDUPE_ORIGINS 256u   /* origins remembered at once */
#define CLUSTER_DEDUPE_ORIGIN_MAX 256u /* a longer origin is not tracked */
#define CLUSTER_DEDUPE_RESTART (UINT64_C(1) << 32) /* ns: about 4.3 s */

typedef struct cluster_dedupe cluster_dedupe;

enum {
        CLUSTER_SEQ_NEW = 0,     /* first time seen (now remembered) */
        CLUSTER_SEQ_SEEN = 1,    /* came before: a duplicate */
        CLUSTER_SEQ_UNKNOWN = 2, /* below the window or not trackable: cannot tell */
};

/* A new, empty table, or NULL (out of memory). */
cluster_dedupe *cluster_dedupe_new(void);
/* Frees d; NULL is fine.  Returns NULL. */
cluster_dedupe *cluster_dedupe_free(cluster_dedupe *d);
/* Notes message n of origin[0..len), live (not retained) or not: CLUSTER_SEQ_NEW, _SEEN or
 * _UNKNOWN (also when out of memory: never a wrong "seen"). */
int cluster_dedupe_check(cluster_dedupe *d, const char *origin, size_t len, uint64_t n, bool live);
/* Parses the "seq" user property's value "<n> <origin>": true with *n, *origin (pointing
 * into value) and *len; false when it is not of that form. */
bool cluster_dedupe_parse(const char *value, uint64_t *n, const char **origin, size_t *len);
/* Origins remembered now (at most CLUSTER_DEDUPE_ORIGINS). */
size_t cluster_dedupe_count(const cluster_dedupe *d);

#endif
