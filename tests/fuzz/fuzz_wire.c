/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the frame decoder (lib/bus/wire.c): parses every frame
 * of the input as the client and the broker do, checks that each decoded
 * frame stays inside the input and re-encodes its header identically.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "bus/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        size_t off = 0;

        while (off < size) {
                wire_packet p;
                size_t used;
                int r = wire_parse(data + off, size - off, 1u << 20, &p, &used);
                if (r <= 0)
                        break;
                assert(used >= WIRE_HDR_SIZE && used <= size - off);
                assert(p.body + p.h.body_len == data + off + used);
                assert(p.h.from_len <= WIRE_ENDPOINT_MAX && p.h.to_len <= WIRE_ENDPOINT_MAX &&
                       p.h.member_len <= WIRE_MEMBER_MAX);
                uint8_t again[WIRE_HDR_SIZE];
                wire_hdr_encode(&p.h, again);
                assert(memcmp(again, data + off, WIRE_HDR_SIZE) == 0);
                (void)wire_type_name(p.h.type);
                off += used;
        }
        return 0;
}
