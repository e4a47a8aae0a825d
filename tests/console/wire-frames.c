/* SPDX-License-Identifier: MIT */
/*
 * The C wire code's side of the console codec test (tests/console/wire.test.mjs):
 *
 *   wire-frames emit        prints frames made by wire_build, one per line: NAME HEX
 *   wire-frames parse HEX   parses one frame with wire_parse and prints its fields as JSON
 *                           (exit 1 when wire_parse refuses it or it is not exactly one frame)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/wire.h"

static void emit(const char *name, wire_hdr *h, const char *from, const char *to,
                 const char *member, const void *body, size_t body_len)
{
        static uint8_t hdr[WIRE_HDR_SIZE + WIRE_NAMES_MAX];
        struct iovec iov[2];
        int n = wire_build(h, from, strlen(from), to, strlen(to), member, strlen(member), body,
                           body_len, hdr, iov);

        printf("%s ", name);
        for (int i = 0; i < n; i++)
                for (size_t j = 0; j < iov[i].iov_len; j++)
                        printf("%02x", ((const uint8_t *)iov[i].iov_base)[j]);
        printf("\n");
}

static int parse(const char *hex)
{
        size_t len = strlen(hex) / 2, consumed = 0;
        uint8_t *buf = malloc(len ? len : 1);
        wire_packet p;
        int r;

        if (!buf)
                return 1;
        for (size_t i = 0; i < len; i++)
                if (sscanf(hex + 2 * i, "%2hhx", &buf[i]) != 1)
                        return 1;
        r = wire_parse(buf, len, WIRE_DEFAULT_MAX_BODY, &p, &consumed);
        if (r != 1 || consumed != len) {
                printf("{\"error\":%d}\n", r);
                free(buf);
                return 1;
        }
        printf("{\"type\":%u,\"flags\":%u,\"status\":%u,\"callId\":\"%llu\",\"timeout\":%u,"
               "\"from\":\"%.*s\",\"to\":\"%.*s\",\"member\":\"%.*s\",\"aux\":%u,\"bodyLen\":%u}\n",
               p.h.type, p.h.flags, p.h.status, (unsigned long long)p.h.call_id, p.h.timeout_ms,
               (int)p.h.from_len, p.from, (int)p.h.to_len, p.to, (int)p.h.member_len, p.member,
               p.h.aux, p.h.body_len);
        free(buf);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc == 3 && strcmp(argv[1], "parse") == 0)
                return parse(argv[2]);
        if (argc != 2 || strcmp(argv[1], "emit") != 0) {
                fprintf(stderr, "usage: wire-frames emit | parse HEX\n");
                return 2;
        }
        static const char challenge[] = "{\"protocol\":\"HYBRID\",\"version\":1}";
        static const uint8_t bin[] = {0, 1, 2, 0xff};
        wire_hdr h;

        memset(&h, 0, sizeof h);
        h.type = WIRE_CHALLENGE;
        emit("challenge", &h, "", "", "", challenge, sizeof challenge - 1);

        memset(&h, 0, sizeof h);
        h.type = WIRE_CALL;
        h.call_id = 0x1122334455667788ull;
        h.timeout_ms = 5000;
        emit("call", &h, "", "@localhost/org.example.thermo/main", "setTarget", "{\"celsius\":22}",
             14);

        memset(&h, 0, sizeof h);
        h.type = WIRE_RESULT;
        h.status = 403;
        h.call_id = 9;
        emit("result", &h, "@localhost/org.hybridos.bus/builtin", "", "forbidden", "", 0);

        memset(&h, 0, sizeof h);
        h.type = WIRE_EVENT;
        h.flags = WIRE_F_BINARY;
        h.status = 202;
        h.call_id = 3;
        emit("event", &h, "@localhost/org.hybridos.bus/builtin", "", "store", bin, sizeof bin);
        return 0;
}
