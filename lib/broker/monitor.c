/* SPDX-License-Identifier: MIT */
/*
 * The monitor facility (like `busctl monitor`): administrators that enabled it
 * get a MONITOR copy of every call, result, event and cancel the broker routes.
 * Costs nothing while nobody monitors (callers test b->n_monitors first).
 */
#include "broker-internal.h"

void monitor_copy(hyb_broker *b, unsigned type, const wire_hdr *h, const char *from, size_t from_len,
                  const char *to, size_t to_len, const char *member, size_t member_len,
                  const void *body, size_t len)
{
        wire_hdr m = *h;

        m.type = WIRE_MONITOR;
        m.aux = type;
        m.info_len = 0;
        m.timeout_ms = 0;
        m.flags &= WIRE_F_BINARY;
        for (bconn *c = b->conns; c; c = c->next) {
                if (!c->monitor || c->state != BCONN_READY)
                        continue;
                /* A monitor never sees its own monitor traffic twice: copies are not monitored. */
                bconn_send(c, &m, from, from_len, to, to_len, member, member_len, body, len);
        }
}
