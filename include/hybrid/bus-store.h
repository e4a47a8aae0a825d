/* SPDX-License-Identifier: MIT */
/*
 * hybrid/bus-store.h - the host store of a hybridd, over a bus connection
 * (doc/bus.md "Store", packets in doc/protocol.md "Store").
 *
 * The same operations as hyb_store (hybrid/store.h), served by the daemon's
 * store: node, pattern and branch reads, retained and transient writes,
 * deletes, subscriptions with replay.  Values travel in the exact text form
 * of objs.  The daemon enforces policy.store: a denied operation fails with
 * HYB_E_FORBIDDEN (403).  Errors the store itself raises (HYB_E_TYPE,
 * -EINVAL, HYB_E_PARSE, HYB_E_LIMIT, ...) come back as the same codes an
 * embedded store returns, with its message in *reterr.
 */
#ifndef HYBRID_BUS_STORE_H
#define HYBRID_BUS_STORE_H

#include <hybrid/common.h>
#include <hybrid/bus.h>
#include <hybrid/obj.h>
#include <hybrid/store.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Reads furi (a node, a pattern or a branch; see hyb_store_read) from the
 * daemon's store.  *ret is a new reference (noobj when nothing is stored).
 * Errors: those of hyb_store_read, HYB_E_FORBIDDEN, HYB_E_UNAVAILABLE (the
 * daemon hosts no store), HYB_E_CLOSED, -EINVAL.
 */
HYB_EXPORT int hyb_bus_store_read(hyb_bus *bus, const char *furi, hyb_obj **ret, hyb_error *reterr);

/*
 * Writes value at furi in the daemon's store (flags: HYB_WRITE_TRANSIENT to
 * notify subscribers without storing).  noobj deletes.  Returns once the
 * daemon acknowledged the write (committed at its durability).  Errors: those
 * of hyb_store_write, HYB_E_FORBIDDEN (policy.store; a write under /sys/),
 * HYB_E_UNAVAILABLE, HYB_E_CLOSED, -EINVAL.
 */
HYB_EXPORT int hyb_bus_store_write(hyb_bus *bus, const char *furi, const hyb_obj *value,
                                   unsigned flags, hyb_error *reterr);

/* Deletes furi (a node, every match of a pattern, the children of a branch). */
HYB_EXPORT int hyb_bus_store_delete(hyb_bus *bus, const char *furi, hyb_error *reterr);

/*
 * Subscribes fn to every write, transient write and delete of the daemon's
 * store whose fURI matches pattern (flags: HYB_SUBSCRIBE_REPLAY to first get
 * the retained values that match).  Messages arrive in write order and run
 * fn from hyb_bus_process (or the attached loop, or a sync call's wait) with
 * borrowed arguments; retain is false for a transient write.  Unref the slot
 * to unsubscribe (NULL ret_slot: lives as long as the bus).  A subscriber that
 * does not read is cut off by the daemon (ERROR 507) like a slow event
 * subscriber.  Errors: HYB_E_FORBIDDEN (the pattern is not within a pattern
 * policy.store lets us subscribe to), HYB_E_TOO_MANY (max_store_subscriptions
 * or uid_max_store_subscriptions), HYB_E_PARSE, -EINVAL, HYB_E_CLOSED.
 */
HYB_EXPORT int hyb_bus_store_subscribe(hyb_bus *bus, const char *pattern, unsigned flags,
                                       hyb_store_msg_fn fn, void *userdata, hyb_slot **ret_slot,
                                       hyb_error *reterr);

#ifdef __cplusplus
}
#endif

#endif
