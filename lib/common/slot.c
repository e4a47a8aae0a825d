/* SPDX-License-Identifier: MIT */
#include "slot.h"
#include "util.h"

void slot_init(hyb_slot *slot, const slot_ops *ops, void *userdata)
{
        atomic_init(&slot->n_ref, 1);
        slot->ops = ops;
        slot->userdata = userdata;
        slot->destroy = NULL;
}

HYB_EXPORT hyb_slot *hyb_slot_ref(hyb_slot *slot)
{
        if (slot)
                atomic_fetch_add(&slot->n_ref, 1);
        return slot;
}

HYB_EXPORT hyb_slot *hyb_slot_unref(hyb_slot *slot)
{
        hyb_destroy_fn destroy;
        void *ud;

        if (!slot || atomic_fetch_sub(&slot->n_ref, 1) != 1)
                return NULL;
        destroy = slot->destroy;
        ud = slot->userdata;
        slot->ops->disconnect(slot); /* frees the enclosing object */
        if (destroy)
                destroy(ud);
        return NULL;
}

HYB_EXPORT void *hyb_slot_get_userdata(const hyb_slot *slot)
{
        return slot ? slot->userdata : NULL;
}

HYB_EXPORT void hyb_slot_set_destroy(hyb_slot *slot, hyb_destroy_fn destroy)
{
        if (slot)
                slot->destroy = destroy;
}
