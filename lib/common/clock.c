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

int deadline_poll_ms(uint64_t deadline, uint64_t timeout_usec)
{
        uint64_t t = deadline;

        if (t != UINT64_MAX) {
                uint64_t now = hyb_now_usec();
                t = t > now ? t - now : 0; /* the deadline as a wait */
        }
        if (timeout_usec < t)
                t = timeout_usec;
        return t == UINT64_MAX ? -1 : t > 3600000000u ? 3600000 : (int)((t + 999) / 1000);
}
