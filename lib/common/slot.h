/* SPDX-License-Identifier: MIT */
/*
 * Internal side of hyb_slot: each module that registers things embeds a
 * slot at the start of its registration struct and gives a disconnect op,
 * called once when the last reference is dropped (before destroy(userdata)).
 *
 * A floating slot is one whose registration is owned by the object it was
 * made on (the bus), not by the caller: the owner holds one reference and
 * drops it (slot_drop_floating) when it goes away.  Registrations made with
 * a NULL ret_slot start floating.  Only modules whose owner tracks its
 * registrations set can_float.
 */
#ifndef HYB_SLOT_H
#define HYB_SLOT_H

#include <stdatomic.h>

#include "hybrid/common.h"

typedef struct slot_ops {
        /* Unregister and free the enclosing object (the slot is its first member). */
        void (*disconnect)(hyb_slot *slot);
        /* Optional: the userdata changed (registrations that share it pass it on). */
        void (*userdata_changed)(hyb_slot *slot);
        /* The owner drops a floating slot's reference when it goes away. */
        bool can_float;
} slot_ops;

struct hyb_slot {
        atomic_uint n_ref;
        const slot_ops *ops;
        void *userdata;
        hyb_destroy_fn destroy;
        bool floating;
};

/* Initialises an embedded slot with one reference (the caller's, or the owner's when floating). */
void slot_init(hyb_slot *slot, const slot_ops *ops, void *userdata);
/* For registrations made without a ret_slot: the owner holds the only reference. */
void slot_init_floating(hyb_slot *slot, const slot_ops *ops, void *userdata);
/* The owner goes away: drops its reference of a floating slot (disconnect and destroy run
 * when it was the last).  A no-op for slots that are not floating. */
void slot_drop_floating(hyb_slot *slot);

#endif
