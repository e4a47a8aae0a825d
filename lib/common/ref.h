/* SPDX-License-Identifier: MIT */
/*
 * The one definition of the public `_ref`/`_unref` pair of a reference-counted
 * handle.  Every counted type has an atomic `n_ref` member, so a handle may be
 * released from another thread than the one that took it.  `_ref` takes a
 * const pointer: what a callback receives borrowed (`const hyb_obj *`,
 * `const hyb_bus_reply *`) can be kept by taking a reference, without a cast.
 * `_unref(NULL)` is a no-op and both return what sd-bus returns (the handle,
 * NULL).
 */
#ifndef HYB_REF_H
#define HYB_REF_H

#include <stdatomic.h>
#include <stdbool.h>

#include "hybrid/common.h"

static inline bool ref_counted_always(const void *p)
{
        (void)p;
        return true;
}

/*
 * Defines `type *prefix_ref(const type *)` and `type *prefix_unref(type *)`.
 * free_fn(type *) runs once, when the last reference goes.  counted(p) says
 * whether p is reference counted at all (static singletons are not).
 */
#define HYB_DEFINE_REF_UNREF_IF(type, prefix, free_fn, counted)                                   \
        HYB_EXPORT type *prefix##_ref(const type *cp)                                             \
        {                                                                                         \
                type *p = (type *)cp;                                                             \
                if (p && counted(p))                                                              \
                        atomic_fetch_add_explicit(&p->n_ref, 1, memory_order_relaxed);            \
                return p;                                                                         \
        }                                                                                         \
        HYB_EXPORT type *prefix##_unref(type *p)                                                  \
        {                                                                                         \
                if (!p || !counted(p))                                                            \
                        return NULL;                                                              \
                /* acq_rel: every write by other holders happens before the free (an     */      \
                /* acquire fence would do, but ThreadSanitizer does not see fences)       */      \
                if (atomic_fetch_sub_explicit(&p->n_ref, 1, memory_order_acq_rel) == 1)           \
                        free_fn(p);                                                               \
                return NULL;                                                                      \
        }

#define HYB_DEFINE_REF_UNREF(type, prefix, free_fn) \
        HYB_DEFINE_REF_UNREF_IF(type, prefix, free_fn, ref_counted_always)

#endif
