/* SPDX-License-Identifier: MIT */
#include "slot.h"
#include "ref.h"
#include "util.h"

void slot_init(hyb_slot *slot, const slot_ops *ops, void *userdata)
{
        atomic_init(&slot->n_ref, 1);
        slot->ops = ops;
        slot->userdata = userdata;
        slot->destroy = NULL;
        slot->floating = false;
}

void slot_init_floating(hyb_slot *slot, const slot_ops *ops, void *userdata)
{
        slot_init(slot, ops, userdata);
        slot->floating = true;
}

void slot_drop_floating(hyb_slot *slot)
{
        if (!slot->floating)
                return;
        slot->floating = false;
        hyb_slot_unref(slot);
}

static void slot_release(hyb_slot *slot)
{
        hyb_destroy_fn destroy = slot->destroy;
        void *ud = slot->userdata;

        slot->ops->disconnect(slot); /* frees the enclosing object */
        if (destroy)
                destroy(ud);
}

HYB_DEFINE_REF_UNREF(hyb_slot, hyb_slot, slot_release)

HYB_EXPORT void *hyb_slot_get_userdata(const hyb_slot *slot)
{
        return slot ? slot->userdata : NULL;
}

HYB_EXPORT void *hyb_slot_set_userdata(hyb_slot *slot, void *userdata)
{
        void *old;

        if (!slot)
                return NULL;
        old = slot->userdata;
        slot->userdata = userdata;
        if (slot->ops->userdata_changed)
                slot->ops->userdata_changed(slot);
        return old;
}

HYB_EXPORT int hyb_slot_set_destroy_callback(hyb_slot *slot, hyb_destroy_fn destroy)
{
        hyb_assert_return(slot, -EINVAL);
        slot->destroy = destroy;
        return 0;
}

HYB_EXPORT int hyb_slot_get_destroy_callback(const hyb_slot *slot, hyb_destroy_fn *ret_destroy)
{
        hyb_assert_return(slot, -EINVAL);
        if (ret_destroy)
                *ret_destroy = slot->destroy;
        return slot->destroy != NULL;
}

HYB_EXPORT int hyb_slot_set_floating(hyb_slot *slot, bool floating)
{
        hyb_assert_return(slot, -EINVAL);
        if (!slot->ops->can_float)
                return -EOPNOTSUPP;
        if (slot->floating == floating)
                return 0;
        slot->floating = floating;
        if (floating)
                hyb_slot_ref(slot); /* the owner's reference */
        else
                hyb_slot_unref(slot); /* the caller must hold one of its own */
        return 0;
}

HYB_EXPORT int hyb_slot_get_floating(const hyb_slot *slot)
{
        hyb_assert_return(slot, -EINVAL);
        return slot->floating;
}
