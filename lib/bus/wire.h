/* SPDX-License-Identifier: MIT */
/*
 * The bus wire format (doc/protocol.md): a 32-byte little-endian header, three
 * name fields and an opaque body.  Shared by the client and the broker; the
 * broker routes on the header and names only and moves the body as is.
 *
 *   +--------+------+-------+--------+---------+---------+------------+------------+------+
 *   |body_len| type | flags | status | call_id | timeout | from/to/member lengths | aux  |
 *   +--------+------+-------+--------+---------+---------+------------+------------+------+
 *   | from | to | member | body ...                                                       |
 */
#ifndef HYB_BUS_WIRE_H
#define HYB_BUS_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hybrid/common.h"

#define WIRE_VERSION 1
#define WIRE_PROTOCOL "HYBRID"
#define WIRE_HDR_SIZE 32u
#define WIRE_ENDPOINT_MAX 384u  /* "@" host(127) "/" app(127) "/" runner(63), with room */
#define WIRE_MEMBER_MAX 4096u   /* method, bubble or status message */
#define WIRE_NAMES_MAX (2 * WIRE_ENDPOINT_MAX + WIRE_MEMBER_MAX)
#define WIRE_TIMEOUT_MAX 3600000u
#define WIRE_DEFAULT_MAX_BODY (16u * 1024 * 1024)
/* The largest call body a direct channel carries (doc/protocol.md "Direct channels"): a call
 * with a larger one goes through the broker, so what a caller makes a service buffer on a
 * channel stays small (a service serves up to limits.max_channels of them) */
#define WIRE_CHANNEL_MAX_BODY (64u * 1024)

enum wire_type {
        WIRE_CHALLENGE = 1,
        WIRE_AUTH = 2,
        WIRE_AUTH_RESULT = 3,
        WIRE_CALL = 4,
        WIRE_RESULT = 5,
        WIRE_CANCEL = 6,
        WIRE_EVENT = 7,
        WIRE_PING = 8,
        WIRE_PONG = 9,
        WIRE_ERROR = 10,
        WIRE_MONITOR = 11,
        WIRE_CHANNEL = 12, /* broker -> peer: a direct channel opens or closes (doc/protocol.md) */
        _WIRE_TYPE_MAX = 12,
};

#define WIRE_F_BINARY 0x1u
#define WIRE_F_COUNTS 0x2u
#define WIRE_F_MASK 0x3u

typedef struct wire_hdr {
        uint32_t body_len;
        uint8_t type;
        uint8_t flags;
        uint16_t status;
        uint64_t call_id;
        uint32_t timeout_ms;
        uint16_t from_len;
        uint16_t to_len;
        uint16_t member_len;
        uint16_t info_len; /* bytes 26-27: on a CALL the broker delivers (and on the CHANNEL
                            * that opens a direct channel), the caller info at the end of
                            * `from` (doc/protocol.md "Frame"); else 0 */
        uint32_t aux;
} wire_hdr;

/* A decoded frame; pointers borrow the buffer it was parsed from (not NUL-terminated). */
typedef struct wire_packet {
        wire_hdr h;
        const char *from;
        const char *to;
        const char *member;
        const uint8_t *body;
} wire_packet;

static inline size_t wire_names_len(const wire_hdr *h)
{
        return (size_t)h->from_len + h->to_len + h->member_len;
}

static inline size_t wire_frame_len(const wire_hdr *h)
{
        return WIRE_HDR_SIZE + wire_names_len(h) + h->body_len;
}

void wire_hdr_encode(const wire_hdr *h, uint8_t out[WIRE_HDR_SIZE]);
/*
 * Decodes and range-checks a header: known type, known flags, reserved bits 0,
 * name lengths within their maxima, status 0 or 100..599, timeout <= max.
 * body_len is NOT checked here (the caller knows its limits): HYB_E_PROTOCOL.
 */
int wire_hdr_decode(const uint8_t in[WIRE_HDR_SIZE], wire_hdr *h);
/*
 * Parses one frame at buf.  Returns 1 with *p and *consumed set when a whole
 * frame is there, 0 when more bytes are needed, HYB_E_PROTOCOL for a bad
 * header, HYB_E_TOO_LARGE when body_len > max_body.
 */
int wire_parse(const uint8_t *buf, size_t len, size_t max_body, wire_packet *p, size_t *consumed);

/*
 * Fills hdr_buf (WIRE_HDR_SIZE + names) and iov[0..1] for a frame whose body is
 * `body`; returns the number of iovecs used (1 or 2).  hdr_buf must hold
 * WIRE_HDR_SIZE + WIRE_NAMES_MAX bytes; the names must respect their maxima.
 */
int wire_build(wire_hdr *h, const char *from, size_t from_len, const char *to, size_t to_len,
               const char *member, size_t member_len, const void *body, size_t body_len,
               uint8_t *hdr_buf, struct iovec iov[2]);

const char *wire_type_name(unsigned type);

#endif
