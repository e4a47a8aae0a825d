/* SPDX-License-Identifier: MIT */
#ifndef HYB_SIZED_H
#define HYB_SIZED_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/*
 * The size-stamped option structs of the public headers (doc/common.md "Size-stamped
 * structs") all start with `size_t size`.  sized_init is the body of every
 * hyb_X_init_sized: the caller owns exactly `size` bytes at p, the struct as its
 * header declared it, which may be shorter (an older header) or longer (a newer one)
 * than this library's `dsize`.  It zeroes those `size` bytes, copies the library's
 * defaults (a whole struct of `dsize` bytes) into the part both know, and stamps
 * `size`.  A size that cannot hold the size member writes nothing (false).
 */
static inline bool sized_init(void *p, size_t size, const void *defaults, size_t dsize)
{
        if (!p || size < sizeof(size_t))
                return false;
        memset(p, 0, size);
        if (defaults)
                memcpy(p, defaults, size < dsize ? size : dsize);
        memcpy(p, &size, sizeof(size));
        return true;
}

#endif
