/* SPDX-License-Identifier: MIT */
/* Frame header encoding and range-checked decoding (doc/protocol.md). */
#include <string.h>

#include "common/util.h"
#include "wire.h"

static inline void put16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get16(const uint8_t *p)
{
        return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p)
{
        return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void wire_hdr_encode(const wire_hdr *h, uint8_t out[WIRE_HDR_SIZE])
{
        put32(out, h->body_len);
        out[4] = h->type;
        out[5] = h->flags;
        put16(out + 6, h->status);
        put64(out + 8, h->call_id);
        put32(out + 16, h->timeout_ms);
        put16(out + 20, h->from_len);
        put16(out + 22, h->to_len);
        put16(out + 24, h->member_len);
        put16(out + 26, h->info_len);
        put32(out + 28, h->aux);
}

int wire_hdr_decode(const uint8_t in[WIRE_HDR_SIZE], wire_hdr *h)
{
        h->body_len = get32(in);
        h->type = in[4];
        h->flags = in[5];
        h->status = get16(in + 6);
        h->call_id = get64(in + 8);
        h->timeout_ms = get32(in + 16);
        h->from_len = get16(in + 20);
        h->to_len = get16(in + 22);
        h->member_len = get16(in + 24);
        h->aux = get32(in + 28);

        if (h->type < 1 || h->type > _WIRE_TYPE_MAX)
                return HYB_E_PROTOCOL;
        if (h->flags & ~WIRE_F_MASK)
                return HYB_E_PROTOCOL;
        h->info_len = get16(in + 26);
        /* The caller info: only on a CALL or a CHANNEL, and within `from` */
        if (h->info_len != 0 &&
            ((h->type != WIRE_CALL && h->type != WIRE_CHANNEL) || h->info_len > h->from_len))
                return HYB_E_PROTOCOL;
        /* aux: the monitored type on MONITOR, the caller's uid on CALL and CHANNEL (set by
         * the broker) */
        if (h->type != WIRE_MONITOR && h->type != WIRE_CALL && h->type != WIRE_CHANNEL && h->aux != 0)
                return HYB_E_PROTOCOL;
        if (h->type == WIRE_MONITOR && (h->aux < WIRE_CALL || h->aux > WIRE_EVENT))
                return HYB_E_PROTOCOL;
        if (h->from_len > WIRE_ENDPOINT_MAX || h->to_len > WIRE_ENDPOINT_MAX ||
            h->member_len > WIRE_MEMBER_MAX)
                return HYB_E_PROTOCOL;
        if (h->status != 0 && (h->status < 100 || h->status > 599))
                return HYB_E_PROTOCOL;
        if (h->timeout_ms > WIRE_TIMEOUT_MAX)
                return HYB_E_PROTOCOL;
        return 0;
}

int wire_parse(const uint8_t *buf, size_t len, size_t max_body, wire_packet *p, size_t *consumed)
{
        size_t names, need;
        int r;

        *consumed = 0;
        if (len < WIRE_HDR_SIZE)
                return 0;
        r = wire_hdr_decode(buf, &p->h);
        if (r < 0)
                return r;
        if (p->h.body_len > max_body)
                return HYB_E_TOO_LARGE;
        names = wire_names_len(&p->h);
        need = WIRE_HDR_SIZE + names + p->h.body_len;
        if (len < need)
                return 0;
        p->from = (const char *)buf + WIRE_HDR_SIZE;
        p->to = p->from + p->h.from_len;
        p->member = p->to + p->h.to_len;
        p->body = (const uint8_t *)p->member + p->h.member_len;
        *consumed = need;
        return 1;
}

int wire_build(wire_hdr *h, const char *from, size_t from_len, const char *to, size_t to_len,
               const char *member, size_t member_len, const void *body, size_t body_len,
               uint8_t *hdr_buf, struct iovec iov[2])
{
        uint8_t *p = hdr_buf + WIRE_HDR_SIZE;

        h->from_len = (uint16_t)from_len;
        h->to_len = (uint16_t)to_len;
        h->member_len = (uint16_t)member_len;
        h->body_len = (uint32_t)body_len;
        wire_hdr_encode(h, hdr_buf);
        if (from_len)
                memcpy(p, from, from_len);
        p += from_len;
        if (to_len)
                memcpy(p, to, to_len);
        p += to_len;
        if (member_len)
                memcpy(p, member, member_len);
        p += member_len;
        iov[0].iov_base = hdr_buf;
        iov[0].iov_len = (size_t)(p - hdr_buf);
        if (body_len == 0)
                return 1;
        iov[1].iov_base = (void *)body;
        iov[1].iov_len = body_len;
        return 2;
}

const char *wire_type_name(unsigned type)
{
        static const char *const names[] = {
                [WIRE_CHALLENGE] = "challenge", [WIRE_AUTH] = "auth",   [WIRE_AUTH_RESULT] = "auth-result",
                [WIRE_CALL] = "call",           [WIRE_RESULT] = "result", [WIRE_CANCEL] = "cancel",
                [WIRE_EVENT] = "event",         [WIRE_PING] = "ping",   [WIRE_PONG] = "pong",
                [WIRE_ERROR] = "error",         [WIRE_MONITOR] = "monitor",
                [WIRE_CHANNEL] = "channel",
        };
        return type < ELEMENTSOF(names) && names[type] ? names[type] : "unknown";
}
