/* SPDX-License-Identifier: MIT */
/* The one clock of the library: every deadline and get_timeout is CLOCK_MONOTONIC in µs. */
#include <time.h>

#include "util.h"

HYB_EXPORT uint64_t hyb_now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
