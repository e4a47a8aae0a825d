/* SPDX-License-Identifier: MIT */
/*
 * Internal side of hyb_slot: each module that registers things embeds a
 * slot at the start of its registration struct and gives a disconnect op,
 * called once when the last reference is dropped (before destroy(userdata)).
 */
#ifndef HYB_SLOT_H
#define HYB_SLOT_H

#include <stdatomic.h>

#include "hybrid/common.h"

typedef struct slot_ops {
        /* Unregister and free the enclosing object (the slot is its first member). */
        void (*disconnect)(hyb_slot *slot);
} slot_ops;

struct hyb_slot {
        atomic_uint n_ref;
        const slot_ops *ops;
        void *userdata;
        hyb_destroy_fn destroy;
};

/* Initialises an embedded slot with one reference (the caller's). */
void slot_init(hyb_slot *slot, const slot_ops *ops, void *userdata);

#endif
